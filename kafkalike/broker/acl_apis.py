"""CreateAcls, DescribeAcls, DeleteAcls (API keys 30, 29, 31; v1-v3, KIP-140, KIP-290 prefixed
patterns from v1): the kio translation around the AclAuthorizer (Kafka's kafka.server.AclApis).

Rules, as Kafka's AclApis:
- no authorizer configured: every answer is SECURITY_DISABLED, "No Authorizer is configured on
  the broker";
- DescribeAcls needs Describe on the cluster, CreateAcls and DeleteAcls Alter on the cluster,
  else CLUSTER_AUTHORIZATION_FAILED (every creation / filter result carries it);
- a creation that can't be stored (UNKNOWN/ANY fields, a CLUSTER resource not named
  ``kafka-cluster``, an empty name, a principal without ``type:``) gets INVALID_REQUEST with the
  reason; the others are stored;
- a DescribeAcls / DeleteAcls filter with UNKNOWN fields gets INVALID_REQUEST.
"""

from __future__ import annotations

from typing import Any

from kafkalike.broker.acl_authorizer import (
    CLUSTER_NAME,
    AccessControlEntry,
    AclAuthorizer,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourcePattern,
    ResourceType,
)
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.entities import build, entity, response_class_for
from kafkalike.protocol.errors import ErrorCode

SECURITY_DISABLED_MESSAGE = "No Authorizer is configured on the broker"


def _peer_host(conn: Any) -> str:
    peer = getattr(conn, "peer", None)
    return peer[0] if peer else ""


def binding_filter(f: Any) -> AclBindingFilter:
    """A kio DescribeAclsRequest / DeleteAclsFilter as an AclBindingFilter (v0 had no pattern
    type: LITERAL, kio's default)."""
    return AclBindingFilter(
        ResourceType(int(f.resource_type_filter)) if int(f.resource_type_filter) in ResourceType._value2member_map_
        else ResourceType.UNKNOWN,
        f.resource_name_filter,
        _enum(PatternType, getattr(f, "pattern_type_filter", PatternType.LITERAL)),
        f.principal_filter, f.host_filter, _enum(AclOperation, f.operation),
        _enum(AclPermissionType, f.permission_type))


def _enum(cls: Any, value: Any) -> Any:
    return cls(int(value)) if int(value) in cls._value2member_map_ else cls.UNKNOWN


def _filter_is_unknown(f: AclBindingFilter) -> bool:
    return ResourceType.UNKNOWN == f.resource_type or PatternType.UNKNOWN == f.pattern_type \
        or AclOperation.UNKNOWN == f.operation or AclPermissionType.UNKNOWN == f.permission_type


class AclApis:
    """The three handlers, bound to the broker's authorizer (None: security disabled)."""

    def __init__(self, authorizer: AclAuthorizer | None) -> None:
        self.authorizer = authorizer

    def register(self, apis: Any) -> None:
        """Route API keys 29-31 of ``apis`` (KafkaApis) here."""
        apis.register(ApiKey.DESCRIBE_ACLS, self.describe_acls)
        apis.register(ApiKey.CREATE_ACLS, self.create_acls)
        apis.register(ApiKey.DELETE_ACLS, self.delete_acls)

    def _check(self, conn: Any, operation: AclOperation, request: str) -> tuple[int, str | None]:
        if self.authorizer is None:
            return ErrorCode.security_disabled, SECURITY_DISABLED_MESSAGE
        if not self.authorizer.authorize(conn.principal, _peer_host(conn), operation, ResourceType.CLUSTER,
                                         CLUSTER_NAME, request=request):
            return ErrorCode.cluster_authorization_failed, "Cluster authorization failed."
        return ErrorCode.none, None

    async def describe_acls(self, header: Any, request: Any, conn: Any) -> Any:
        """DescribeAcls v1-v3: the ACLs matching the filter, grouped by resource pattern."""
        resp_cls = response_class_for(request)
        error, message = self._check(conn, AclOperation.DESCRIBE, "DescribeAcls")
        flt = binding_filter(request)
        if error == ErrorCode.none and _filter_is_unknown(flt):
            error, message = ErrorCode.invalid_request, "The filter must not contain UNKNOWN elements"
        if error != ErrorCode.none:
            return build(resp_cls, error_code=error, error_message=message, resources=())
        assert self.authorizer is not None
        resource_cls, acl_cls = entity(resp_cls, "DescribeAclsResource"), entity(resp_cls, "AclDescription")
        grouped: dict[ResourcePattern, list[AccessControlEntry]] = {}
        for b in self.authorizer.acls(flt):
            grouped.setdefault(b.pattern, []).append(b.entry)
        return build(resp_cls, error_code=ErrorCode.none, error_message=None, resources=tuple(
            build(resource_cls, resource_type=p.resource_type, resource_name=p.name, pattern_type=p.pattern_type,
                  acls=tuple(build(acl_cls, principal=e.principal, host=e.host, operation=e.operation,
                                   permission_type=e.permission_type) for e in entries))
            for p, entries in grouped.items()))

    async def create_acls(self, header: Any, request: Any, conn: Any) -> Any:
        """CreateAcls v1-v3: one result per creation, in order."""
        resp_cls = response_class_for(request)
        result_cls = entity(resp_cls, "AclCreationResult")
        error, message = self._check(conn, AclOperation.ALTER, "CreateAcls")
        if error != ErrorCode.none:
            return build(resp_cls, results=tuple(build(result_cls, error_code=error, error_message=message)
                                                 for _ in request.creations))
        assert self.authorizer is not None
        bindings = [AclBinding(
            ResourcePattern(_enum(ResourceType, c.resource_type), c.resource_name,
                            _enum(PatternType, getattr(c, "resource_pattern_type", PatternType.LITERAL))),
            AccessControlEntry(c.principal, c.host, _enum(AclOperation, c.operation),
                               _enum(AclPermissionType, c.permission_type))) for c in request.creations]
        try:
            results = await self.authorizer.create_acls(bindings)
        except Exception as exc:  # ZooKeeper unreachable, retries exhausted
            return build(resp_cls, results=tuple(build(result_cls, error_code=ErrorCode.unknown_server_error,
                                                       error_message=str(exc)) for _ in bindings))
        return build(resp_cls, results=tuple(
            build(result_cls, error_code=ErrorCode.none if r is None else ErrorCode.invalid_request,
                  error_message=r) for r in results))

    async def delete_acls(self, header: Any, request: Any, conn: Any) -> Any:
        """DeleteAcls v1-v3: per filter, the ACLs it deleted."""
        resp_cls = response_class_for(request)
        filter_cls, match_cls = entity(resp_cls, "DeleteAclsFilterResult"), entity(resp_cls, "DeleteAclsMatchingAcl")
        error, message = self._check(conn, AclOperation.ALTER, "DeleteAcls")
        if error != ErrorCode.none:
            return build(resp_cls, filter_results=tuple(
                build(filter_cls, error_code=error, error_message=message, matching_acls=())
                for _ in request.filters))
        assert self.authorizer is not None
        filters = [binding_filter(f) for f in request.filters]
        valid = [f for f in filters if not _filter_is_unknown(f)]
        try:
            deleted = dict(zip(map(id, valid), await self.authorizer.delete_acls(valid)))
        except Exception as exc:
            return build(resp_cls, filter_results=tuple(
                build(filter_cls, error_code=ErrorCode.unknown_server_error, error_message=str(exc),
                      matching_acls=()) for _ in filters))
        out = []
        for f in filters:
            if id(f) not in deleted:
                out.append(build(filter_cls, error_code=ErrorCode.invalid_request,
                                 error_message="The filter must not contain UNKNOWN elements", matching_acls=()))
                continue
            out.append(build(filter_cls, error_code=ErrorCode.none, error_message=None, matching_acls=tuple(
                build(match_cls, error_code=ErrorCode.none, error_message=None,
                      resource_type=b.pattern.resource_type, resource_name=b.pattern.name,
                      pattern_type=b.pattern.pattern_type, principal=b.entry.principal, host=b.entry.host,
                      operation=b.entry.operation, permission_type=b.entry.permission_type)
                for b in deleted[id(f)])))
        return build(resp_cls, filter_results=tuple(out))
