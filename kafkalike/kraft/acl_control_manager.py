"""ACLs as records (Kafka 3.9's AclControlManager; the StandardAuthorizer's store in KRaft mode).

State (rebuilt by replay): {ACL id (a Uuid): StandardAcl}, and the set of ACLs, so that one ACL
is stored once. Codes are Kafka's wire codes (ResourceType, PatternType, AclOperation,
AclPermissionType); 0 is UNKNOWN and 1 ANY in each.

``create_acls`` (CreateAcls): each binding is checked as Kafka's ``validateNewAcl`` does, in this
order, each refusal INVALID_REQUEST with Kafka's message: "Invalid resourceType X" (UNKNOWN, ANY),
"Invalid patternType X" (not LITERAL / PREFIXED), "Invalid operation X" (UNKNOWN, ANY), "Invalid
permissionType X" (not DENY / ALLOW), "Resource name should not be empty", "Could not parse
principal from `P` (no colon is present separating the principal type from the principal
name)". A valid binding gets an AccessControlEntryRecord with a fresh random id unless the same
ACL exists already or came earlier in the request (then nothing is written); it answers success
either way.

``delete_acls`` (DeleteAcls): a filter with an UNKNOWN resource or pattern type answers
INVALID_REQUEST "Unknown patternFilter.", one with an UNKNOWN operation or permission type
"Unknown entryFilter."; the others answer the ACLs they match (an ACL matched by two filters is
in both answers) and each matched ACL gets one RemoveAccessControlEntryRecord.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import attrs
import structlog

from kafkalike.image.metadata_image import StandardAcl
from kafkalike.kraft.controller_result import ControllerResult
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode

__all__ = ["AclControlManager", "AclFilter", "AclCreateResult", "AclDeleteResult", "acl_filter_matches"]

log = structlog.get_logger("kafkalike.kraft")

UNKNOWN, ANY = 0, 1
PATTERN_MATCH, PATTERN_LITERAL, PATTERN_PREFIXED = 2, 3, 4
DENY, ALLOW = 2, 3
WILDCARD_RESOURCE = "*"

_RESOURCE_TYPES = {0: "UNKNOWN", 1: "ANY", 2: "TOPIC", 3: "GROUP", 4: "CLUSTER", 5: "TRANSACTIONAL_ID",
                   6: "DELEGATION_TOKEN", 7: "USER"}
_PATTERN_TYPES = {0: "UNKNOWN", 1: "ANY", 2: "MATCH", 3: "LITERAL", 4: "PREFIXED"}
_OPERATIONS = {0: "UNKNOWN", 1: "ANY", 2: "ALL", 3: "READ", 4: "WRITE", 5: "CREATE", 6: "DELETE", 7: "ALTER",
               8: "DESCRIBE", 9: "CLUSTER_ACTION", 10: "DESCRIBE_CONFIGS", 11: "ALTER_CONFIGS",
               12: "IDEMPOTENT_WRITE", 13: "CREATE_TOKENS", 14: "DESCRIBE_TOKENS"}
_PERMISSIONS = {0: "UNKNOWN", 1: "ANY", 2: "DENY", 3: "ALLOW"}


def _name(table: dict[int, str], code: int) -> str:
    return table.get(code, "UNKNOWN")


@attrs.frozen
class AclFilter:
    """A DescribeAcls / DeleteAcls filter in wire codes (Kafka's AclBindingFilter): ANY (1) or
    None matches everything; pattern type MATCH (2) matches the ACLs that apply to
    ``resource_name`` (its literal ACLs, the literal wildcard ``*``, every prefix pattern)."""

    resource_type: int = ANY
    resource_name: str | None = None
    pattern_type: int = ANY
    principal: str | None = None
    host: str | None = None
    operation: int = ANY
    permission_type: int = ANY


@attrs.frozen
class AclCreateResult:
    """One creation's answer: ``error`` NONE or INVALID_REQUEST with ``message``."""

    error: ErrorCode = ErrorCode.none
    message: str | None = None


@attrs.frozen
class AclDeleteResult:
    """One filter's answer: ``error`` and ``message``, and the ACLs it deleted."""

    error: ErrorCode = ErrorCode.none
    message: str | None = None
    deleted: tuple[StandardAcl, ...] = ()


def acl_filter_matches(flt: AclFilter, acl: StandardAcl) -> bool:
    """Kafka's AclBindingFilter.matches (ResourcePatternFilter and AccessControlEntryFilter)."""
    if flt.resource_type != ANY and flt.resource_type != acl.resource_type:
        return False
    if flt.pattern_type not in (ANY, PATTERN_MATCH) and flt.pattern_type != acl.pattern_type:
        return False
    if flt.resource_name is not None:
        if flt.pattern_type in (ANY, acl.pattern_type):
            if flt.resource_name != acl.resource_name:
                return False
        elif acl.pattern_type == PATTERN_LITERAL:
            if acl.resource_name not in (flt.resource_name, WILDCARD_RESOURCE):
                return False
        elif not flt.resource_name.startswith(acl.resource_name):
            return False
    return ((flt.principal is None or flt.principal == acl.principal)
            and (flt.host is None or flt.host == acl.host)
            and flt.operation in (ANY, acl.operation)
            and flt.permission_type in (ANY, acl.permission_type))


def validate_new_acl(acl: StandardAcl) -> str | None:
    """Kafka's AclControlManager.validateNewAcl: None, or the INVALID_REQUEST message."""
    if acl.resource_type in (UNKNOWN, ANY) or acl.resource_type not in _RESOURCE_TYPES:
        return f"Invalid resourceType {_name(_RESOURCE_TYPES, acl.resource_type)}"
    if acl.pattern_type not in (PATTERN_LITERAL, PATTERN_PREFIXED):
        return f"Invalid patternType {_name(_PATTERN_TYPES, acl.pattern_type)}"
    if acl.operation in (UNKNOWN, ANY) or acl.operation not in _OPERATIONS:
        return f"Invalid operation {_name(_OPERATIONS, acl.operation)}"
    if acl.permission_type not in (DENY, ALLOW):
        return f"Invalid permissionType {_name(_PERMISSIONS, acl.permission_type)}"
    if not acl.resource_name:
        return "Resource name should not be empty"
    if ":" not in acl.principal:
        return (f"Could not parse principal from `{acl.principal}` (no colon is present separating the "
                "principal type from the principal name)")
    return None


class AclControlManager:
    """See module doc. ``acls`` {id: StandardAcl} is the committed state."""

    def __init__(self) -> None:
        self.acls: dict[uuid.UUID, StandardAcl] = {}
        self._existing: set[StandardAcl] = set()

    def replay(self, record: mr.AccessControlEntryRecord | mr.RemoveAccessControlEntryRecord) -> None:
        """Apply a committed (Remove)AccessControlEntryRecord. A duplicate ACL or an unknown id
        (Kafka throws: the log is inconsistent) is logged and ignored."""
        if isinstance(record, mr.RemoveAccessControlEntryRecord):
            acl = self.acls.pop(record.id, None)
            if acl is None:
                log.error("acl_remove_unknown_id", acl_id=mr.uuid_to_base64(record.id))
                return
            self._existing.discard(acl)
            log.info("acl_replayed", acl_id=mr.uuid_to_base64(record.id), removed=True)
            return
        acl = StandardAcl.from_record(record)
        if acl in self._existing or record.id in self.acls:
            log.error("acl_duplicate", acl_id=mr.uuid_to_base64(record.id))
            return
        self.acls[record.id] = acl
        self._existing.add(acl)
        log.info("acl_replayed", acl_id=mr.uuid_to_base64(record.id), removed=False)

    def reset(self) -> None:
        """Forget everything (before a snapshot is loaded)."""
        self.acls.clear()
        self._existing.clear()

    def snapshot_records(self) -> list[mr.ApiMessage]:
        """The state as AccessControlEntryRecords (ids kept)."""
        return [acl.to_record(acl_id) for acl_id, acl in sorted(self.acls.items())]

    def create_acls(self, acls: Sequence[StandardAcl]) -> ControllerResult:
        """CreateAcls (module doc) -> response [AclCreateResult], one per ACL, in order."""
        results: list[AclCreateResult] = []
        records: list[mr.ApiMessage] = []
        to_create: set[StandardAcl] = set()
        for acl in acls:
            problem = validate_new_acl(acl)
            if problem is not None:
                results.append(AclCreateResult(ErrorCode.invalid_request, problem))
                continue
            if acl not in self._existing and acl not in to_create:
                to_create.add(acl)
                records.append(acl.to_record(self._new_acl_id(records)))
            results.append(AclCreateResult())
        return ControllerResult(tuple(records), results)

    def delete_acls(self, filters: Iterable[AclFilter]) -> ControllerResult:
        """DeleteAcls (module doc) -> response [AclDeleteResult], one per filter, in order."""
        results: list[AclDeleteResult] = []
        removed: dict[uuid.UUID, None] = {}
        for flt in filters:
            if flt.resource_type == UNKNOWN or flt.pattern_type == UNKNOWN:
                results.append(AclDeleteResult(ErrorCode.invalid_request, "Unknown patternFilter."))
                continue
            if flt.operation == UNKNOWN or flt.permission_type == UNKNOWN:
                results.append(AclDeleteResult(ErrorCode.invalid_request, "Unknown entryFilter."))
                continue
            deleted = []
            for acl_id, acl in self.acls.items():
                if acl_filter_matches(flt, acl):
                    deleted.append(acl)
                    removed[acl_id] = None
            results.append(AclDeleteResult(deleted=tuple(deleted)))
        records = tuple(mr.RemoveAccessControlEntryRecord(id=acl_id) for acl_id in removed)
        return ControllerResult(records, results)

    def _new_acl_id(self, pending: Sequence[mr.ApiMessage]) -> uuid.UUID:
        """A random id no ACL has, nor one created earlier in this request (Kafka's newAclId)."""
        taken = {getattr(r, "id", None) for r in pending}
        while True:
            acl_id = mr.random_uuid()
            if acl_id not in self.acls and acl_id not in taken:
                return acl_id
