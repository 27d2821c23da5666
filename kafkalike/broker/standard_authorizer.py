"""StandardAuthorizer: the KRaft broker's authorizer (Kafka 3.9's
``org.apache.kafka.metadata.authorizer.StandardAuthorizer``), enabled by
``authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer`` (the ZooKeeper
authorizer's name ``kafka.security.authorizer.AclAuthorizer`` is taken as an alias on a KRaft broker).

Its ACLs are the metadata image's (AccessControlEntryRecords, written by the controller's
AclControlManager): the broker metadata publisher hands every new ``AclsImage`` to
``load_image``. Decisions are the ZooKeeper-mode AclAuthorizer's (``super.users``,
``allow.everyone.if.no.acl.found``, DENY before ALLOW, implied Describe / DescribeConfigs,
literal / wildcard / prefixed resources, the ``kafka.authorizer.logger`` audit line): Kafka's
StandardAuthorizerData follows the same rules. CreateAcls / DeleteAcls go to the active
controller (Kafka's ControllerMutator / AclMutator): a CLUSTER resource not named
``kafka-cluster`` or an empty resource name is refused on the broker first, as Kafka's AclApis
does ("The only valid name for the CLUSTER resource is kafka-cluster", "Invalid empty resource
name"); the controller checks the rest. The broker sees the new ACLs once its image has the
records (as in Kafka, a creation is not visible at once on every broker).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import structlog
import trio

from kafkalike.broker.acl_authorizer import (
    ACL_AUTHORIZER_CLASS,
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
    parse_super_users,
)
from kafkalike.broker.forwarding_manager import NodeToControllerChannel
from kafkalike.client.messages import build_request
from kafkalike.image.metadata_image import AclsImage
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode

__all__ = ["StandardAuthorizer", "STANDARD_AUTHORIZER_CLASS", "KRAFT_AUTHORIZER_CLASSES"]

log = structlog.get_logger(__name__)

STANDARD_AUTHORIZER_CLASS = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
#: the authorizer.class.name values a KRaft broker accepts
KRAFT_AUTHORIZER_CLASSES = (STANDARD_AUTHORIZER_CLASS, ACL_AUTHORIZER_CLASS)
#: the CreateAcls / DeleteAcls version sent to the controller
ACLS_VERSION = 3


def _enum(cls: Any, value: int) -> Any:
    return cls(value) if value in cls._value2member_map_ else cls.UNKNOWN


class StandardAuthorizer(AclAuthorizer):
    """See module doc. ``channel``: the broker's NodeToControllerChannel (CreateAcls and
    DeleteAcls are sent through it); ``super_users``, ``allow_everyone_if_no_acl_found`` as the
    AclAuthorizer's."""

    def __init__(self, channel: NodeToControllerChannel, super_users: Iterable[str] = (),
                 allow_everyone_if_no_acl_found: bool = False) -> None:
        super().__init__(super_users, allow_everyone_if_no_acl_found)
        self.channel = channel

    @classmethod
    def from_kraft_config(cls, config: Any, channel: NodeToControllerChannel) -> "StandardAuthorizer | None":
        """The authorizer ``authorizer.class.name`` names (None when empty). Raises ValueError
        (one line naming the key) for a class other than KRAFT_AUTHORIZER_CLASSES."""
        name = (config["authorizer.class.name"] or "").strip()
        if not name:
            return None
        if name not in KRAFT_AUTHORIZER_CLASSES:
            raise ValueError(f"invalid value {name!r} for configuration 'authorizer.class.name': a kafkalike "
                             f"KRaft broker provides {STANDARD_AUTHORIZER_CLASS} only")
        return cls(channel, parse_super_users(config["super.users"]), bool(config["allow.everyone.if.no.acl.found"]))

    async def start(self, zk: Any, nursery: trio.Nursery) -> None:
        """Nothing to load: the metadata publisher calls ``load_image``."""

    def load_image(self, image: AclsImage) -> None:
        """Every ACL of ``image`` becomes the cache (the previous one is replaced)."""
        acls: dict[ResourcePattern, set[AccessControlEntry]] = {}
        for acl in image.acls.values():
            pattern = ResourcePattern(_enum(ResourceType, acl.resource_type), acl.resource_name,
                                      _enum(PatternType, acl.pattern_type))
            acls.setdefault(pattern, set()).add(AccessControlEntry(
                acl.principal, acl.host, _enum(AclOperation, acl.operation),
                _enum(AclPermissionType, acl.permission_type)))
        self._acls = {p: frozenset(e) for p, e in acls.items()}
        self.cache_updates += 1
        log.info("acls_loaded", acls=len(image.acls), resources=len(self._acls))

    async def create_acls(self, bindings: Sequence[AclBinding]) -> list[str | None]:
        """CreateAcls through the controller: per binding None, or why it was refused.
        Raises ControllerUnavailableError when no controller answers."""
        results: list[str | None] = [None] * len(bindings)
        sent: list[int] = []
        for i, b in enumerate(bindings):
            if b.pattern.resource_type == ResourceType.CLUSTER and b.pattern.name != CLUSTER_NAME:
                results[i] = f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            elif not b.pattern.name:
                results[i] = "Invalid empty resource name"
            else:
                sent.append(i)
        if sent:
            request = build_request(ApiKey.CREATE_ACLS, ACLS_VERSION, creations=[{
                "resource_type": int(bindings[i].pattern.resource_type), "resource_name": bindings[i].pattern.name,
                "resource_pattern_type": int(bindings[i].pattern.pattern_type),
                "principal": bindings[i].entry.principal, "host": bindings[i].entry.host,
                "operation": int(bindings[i].entry.operation),
                "permission_type": int(bindings[i].entry.permission_type)} for i in sent])
            response = await self.channel.send(request)
            for i, r in zip(sent, response.results):
                if r.error_code != ErrorCode.none:
                    results[i] = r.error_message or ErrorCode(r.error_code).name
        log.info("acls_create_forwarded", acls=len(sent), refused=sum(r is not None for r in results))
        return results

    async def delete_acls(self, filters: Sequence[AclBindingFilter]) -> list[list[AclBinding]]:
        """DeleteAcls through the controller: per filter, the bindings it deleted. Raises
        ControllerUnavailableError when no controller answers, RuntimeError with the
        controller's message for a filter it refused."""
        if not filters:
            return []
        request = build_request(ApiKey.DELETE_ACLS, ACLS_VERSION, filters=[{
            "resource_type_filter": int(f.resource_type), "resource_name_filter": f.name,
            "pattern_type_filter": int(f.pattern_type), "principal_filter": f.principal, "host_filter": f.host,
            "operation": int(f.operation), "permission_type": int(f.permission_type)} for f in filters])
        response = await self.channel.send(request)
        out: list[list[AclBinding]] = []
        for r in response.filter_results:
            if r.error_code != ErrorCode.none:
                raise RuntimeError(r.error_message or ErrorCode(r.error_code).name)
            out.append([AclBinding(
                ResourcePattern(_enum(ResourceType, int(m.resource_type)), m.resource_name,
                                _enum(PatternType, int(m.pattern_type))),
                AccessControlEntry(m.principal, m.host, _enum(AclOperation, int(m.operation)),
                                   _enum(AclPermissionType, int(m.permission_type)))) for m in r.matching_acls])
        log.info("acls_delete_forwarded", filters=len(filters), deleted=sum(len(d) for d in out))
        return out
