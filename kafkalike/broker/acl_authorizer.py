"""AclAuthorizer: Kafka's ZooKeeper-era authorizer (kafka.security.authorizer.AclAuthorizer,
Kafka 2.x/3.x; KIP-290 prefixed ACLs). Enabled by ``authorizer.class.name=
kafka.security.authorizer.AclAuthorizer``.

ACLs live in ZooKeeper exactly where Kafka keeps them (kafkalike.coordination.zk_data):

- literal resources ``/kafka-acl/<ResourceType>/<name>`` (the wildcard resource is the name
  ``*``), prefixed ones ``/kafka-acl-extended/prefixed/<ResourceType>/<prefix>``; each znode holds
  ``{"version":1,"acls":[{"principal":"User:alice","permissionType":"Allow","operation":"Read",
  "host":"*"}]}`` and is updated with a conditional set (its ZooKeeper version), retried on a race;
- every change is announced by a sequential ``acl_changes_<seq>`` under ``/kafka-acl-changes``
  (data ``Topic:t``) or ``/kafka-acl-extended-changes`` (JSON), which every broker's cache follows
  with a child watch (and re-lists every ``CHANGE_RELIST_S`` seconds, so a watch lost with a
  ZooKeeper session costs at most that long); notifications older than 15 minutes are deleted
  (Kafka's ZkNodeChangeNotificationListener, changeExpirationMs).

The decision (AclAuthorizer.authorizeAction): a principal in ``super.users`` may do anything; a
resource no ACL matches is allowed only with ``allow.everyone.if.no.acl.found=true`` (default
false: deny by default); otherwise a matching DENY wins, else a matching ALLOW is needed. An
ACL matches when its resource is the literal name, the literal wildcard ``*`` or a prefix of the
name; its principal is the session's or ``User:*``; its host is the client's address or ``*``;
its operation is the one asked or ``All``. Implied operations (ALLOW only): Describe is allowed
by Read, Write, Delete or Alter; DescribeConfigs by AlterConfigs. Each decision is logged on the
``kafka.authorizer.logger`` logger: denials at info, allowed at debug (Kafka's audit line).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import structlog
import trio

from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.errors import BadVersion, NodeExists, NoNode

log = structlog.get_logger(__name__)
audit = structlog.get_logger("kafka.authorizer.logger")

#: the value of authorizer.class.name that turns this authorizer on
ACL_AUTHORIZER_CLASS = "kafka.security.authorizer.AclAuthorizer"
#: the name of the one CLUSTER resource (Kafka's CLUSTER_NAME)
CLUSTER_NAME = "kafka-cluster"
WILDCARD_RESOURCE = "*"
WILDCARD_PRINCIPAL = "User:*"
WILDCARD_HOST = "*"
#: conditional-update attempts before an ACL write gives up (AclAuthorizer.maxUpdateRetries)
MAX_UPDATE_RETRIES = 10
#: change notifications older than this are deleted (ZkNodeChangeNotificationListener, 15 min)
CHANGE_EXPIRATION_MS = 15 * 60 * 1000
#: the change paths are listed again this often even without a watch firing (seconds)
CHANGE_RELIST_S = 10.0


class ResourceType(enum.IntEnum):
    """org.apache.kafka.common.resource.ResourceType (wire codes)."""

    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7

    @property
    def zk_name(self) -> str:
        """SecurityUtils.resourceTypeName: ``Topic``, ``TransactionalId``... (the ZooKeeper path part)."""
        return "".join(p.capitalize() for p in self.name.split("_"))

    @classmethod
    def parse(cls, text: str) -> "ResourceType":
        """From ``TOPIC``, ``Topic``, ``transactional_id`` or ``TransactionalId``; UNKNOWN otherwise."""
        key = text.replace("_", "").upper()
        return next((t for t in cls if t.name.replace("_", "") == key), cls.UNKNOWN)


class AclOperation(enum.IntEnum):
    """org.apache.kafka.common.acl.AclOperation (wire codes; bit positions of the
    ``*_authorized_operations`` fields)."""

    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14

    @property
    def zk_name(self) -> str:
        """SecurityUtils.operationName: ``Read``, ``ClusterAction``, ``IdempotentWrite``..."""
        return "".join(p.capitalize() for p in self.name.split("_"))

    @classmethod
    def parse(cls, text: str) -> "AclOperation":
        """From ``READ``, ``Read``, ``cluster_action``, ``ClusterAction``...; UNKNOWN otherwise."""
        key = text.replace("_", "").replace("-", "").upper()
        return next((o for o in cls if o.name.replace("_", "") == key), cls.UNKNOWN)


class AclPermissionType(enum.IntEnum):
    """org.apache.kafka.common.acl.AclPermissionType (wire codes)."""

    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3

    @property
    def zk_name(self) -> str:
        """``Allow`` / ``Deny`` as stored in the ACL znode."""
        return self.name.capitalize()

    @classmethod
    def parse(cls, text: str) -> "AclPermissionType":
        return next((p for p in cls if p.name == text.upper()), cls.UNKNOWN)


class PatternType(enum.IntEnum):
    """org.apache.kafka.common.resource.PatternType (wire codes; KIP-290)."""

    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4

    @classmethod
    def parse(cls, text: str) -> "PatternType":
        return next((p for p in cls if p.name == text.upper()), cls.UNKNOWN)


#: the operations each resource type has (Kafka's per-resource tables, used for the
#: ``*_authorized_operations`` bit fields: AclEntry.supportedOperations)
SUPPORTED_OPERATIONS: dict[ResourceType, tuple[AclOperation, ...]] = {
    ResourceType.TOPIC: (AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DESCRIBE,
                         AclOperation.DELETE, AclOperation.ALTER, AclOperation.DESCRIBE_CONFIGS,
                         AclOperation.ALTER_CONFIGS),
    ResourceType.GROUP: (AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE),
    ResourceType.CLUSTER: (AclOperation.CREATE, AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
                           AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER,
                           AclOperation.DESCRIBE),
    ResourceType.TRANSACTIONAL_ID: (AclOperation.DESCRIBE, AclOperation.WRITE),
    ResourceType.DELEGATION_TOKEN: (AclOperation.DESCRIBE,),
    ResourceType.USER: (AclOperation.CREATE_TOKENS, AclOperation.DESCRIBE_TOKENS),
}

#: ALLOW ACLs of these operations also allow the key (AclAuthorizer.authorizeAction's allowOps)
IMPLIED_BY: dict[AclOperation, tuple[AclOperation, ...]] = {
    AclOperation.DESCRIBE: (AclOperation.DESCRIBE, AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE,
                            AclOperation.ALTER),
    AclOperation.DESCRIBE_CONFIGS: (AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS),
}


class InvalidAclError(ValueError):
    """An ACL that can't be stored (Kafka answers INVALID_REQUEST); ``str(err)`` says why."""


@attrs.frozen(order=True)
class ResourcePattern:
    """A resource an ACL is attached to: type, name (``*`` = every resource of the type, for
    LITERAL), and how the name matches (LITERAL or PREFIXED)."""

    resource_type: ResourceType
    name: str
    pattern_type: PatternType = PatternType.LITERAL

    def __str__(self) -> str:  # Kafka's ResourcePattern.toString
        return (f"ResourcePattern(resourceType={self.resource_type.name}, name={self.name}, "
                f"patternType={self.pattern_type.name})")


@attrs.frozen(order=True)
class AccessControlEntry:
    """Who (``User:alice``, ``User:*``) may or may not (ALLOW/DENY) do what (an operation) from
    where (a host address, ``*``)."""

    principal: str
    host: str
    operation: AclOperation
    permission_type: AclPermissionType

    def __str__(self) -> str:  # Kafka's AccessControlEntry.toString
        return (f"(principal={self.principal}, host={self.host}, operation={self.operation.name}, "
                f"permissionType={self.permission_type.name})")


@attrs.frozen(order=True)
class AclBinding:
    """One ACL: a resource pattern and an entry (org.apache.kafka.common.acl.AclBinding)."""

    pattern: ResourcePattern
    entry: AccessControlEntry


@attrs.frozen
class AclBindingFilter:
    """A filter over ACLs (DescribeAcls, DeleteAcls; org.apache.kafka.common.acl.AclBindingFilter):
    ANY / None match anything; pattern type MATCH matches the resources that would apply to
    ``name`` (the literal name, the literal wildcard and every prefix of it)."""

    resource_type: ResourceType = ResourceType.ANY
    name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: AclOperation = AclOperation.ANY
    permission_type: AclPermissionType = AclPermissionType.ANY

    def matches(self, binding: AclBinding) -> bool:
        """ResourcePatternFilter.matches and AccessControlEntryFilter.matches."""
        p, e = binding.pattern, binding.entry
        if self.resource_type != ResourceType.ANY and self.resource_type != p.resource_type:
            return False
        if self.pattern_type not in (PatternType.ANY, PatternType.MATCH) and self.pattern_type != p.pattern_type:
            return False
        if self.name is not None:
            if self.pattern_type in (PatternType.ANY, p.pattern_type):
                if self.name != p.name:
                    return False
            elif p.pattern_type == PatternType.LITERAL:
                if p.name not in (self.name, WILDCARD_RESOURCE):
                    return False
            elif not self.name.startswith(p.name):
                return False
        return ((self.principal is None or self.principal == e.principal)
                and (self.host is None or self.host == e.host)
                and self.operation in (AclOperation.ANY, e.operation)
                and self.permission_type in (AclPermissionType.ANY, e.permission_type))

    def find_indefinite_field(self) -> str | None:
        """Why this filter can't be a definite binding (None when it can): used to refuse a
        creation made of ANY / null values."""
        if self.resource_type in (ResourceType.ANY, ResourceType.UNKNOWN):
            return "Resource type is ANY or UNKNOWN"
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            return "Pattern type must be LITERAL or PREFIXED"
        if self.name is None:
            return "Resource name is NULL"
        if self.principal is None:
            return "Principal is NULL"
        if self.host is None:
            return "Host is NULL"
        if self.operation in (AclOperation.ANY, AclOperation.UNKNOWN):
            return "Operation is ANY or UNKNOWN"
        if self.permission_type in (AclPermissionType.ANY, AclPermissionType.UNKNOWN):
            return "Permission type is ANY or UNKNOWN"
        return None


def validate_acl_binding(binding: AclBinding) -> None:
    """Kafka's AuthorizerUtils.validateAclBinding plus what ZooKeeper can hold; raises
    InvalidAclError."""
    p, e = binding.pattern, binding.entry
    if (p.resource_type in (ResourceType.ANY, ResourceType.UNKNOWN)
            or p.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED)
            or e.operation in (AclOperation.ANY, AclOperation.UNKNOWN)
            or e.permission_type in (AclPermissionType.ANY, AclPermissionType.UNKNOWN)):
        raise InvalidAclError("ACL binding contains unknown elements")
    if p.resource_type == ResourceType.CLUSTER and p.name != CLUSTER_NAME:
        raise InvalidAclError(f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}")
    if not p.name:
        raise InvalidAclError("Invalid empty resource name specified")
    if "/" in p.name or p.name in (".", ".."):
        raise InvalidAclError(f"resource name {p.name!r} can't be a ZooKeeper path element")
    kind, sep, name = e.principal.partition(":")
    if not sep or not kind or not name:
        raise InvalidAclError(f"Principal string {e.principal!r} must be of the form 'principalType:name'")


def parse_super_users(value: str | None) -> frozenset[str]:
    """``super.users``: principals separated by ``;`` (``User:admin;User:alice``)."""
    return frozenset(p.strip() for p in (value or "").split(";") if p.strip())


def _entries_from_zk(data: bytes | None) -> frozenset[AccessControlEntry]:
    return frozenset(
        AccessControlEntry(a.principal, a.host, AclOperation.parse(a.operation), AclPermissionType.parse(a.permission_type))
        for a in zd.decode_acls(data))


def _entries_to_zk(entries: Iterable[AccessControlEntry]) -> bytes:
    return zd.encode_acls([zd.AclEntryJson(e.principal, e.permission_type.zk_name, e.operation.zk_name, e.host)
                           for e in sorted(entries)])


def _matches(entry: AccessControlEntry, principal: str, host: str, operation: AclOperation,
             permission: AclPermissionType) -> bool:
    """AclAuthorizer.matchingAclExists for one entry."""
    return (entry.permission_type == permission
            and entry.principal in (principal, WILDCARD_PRINCIPAL)
            and entry.operation in (operation, AclOperation.ALL)
            and entry.host in (host, WILDCARD_HOST))


def decide(acls: Sequence[AccessControlEntry], principal: str, host: str, operation: AclOperation,
           allow_everyone_if_no_acl_found: bool) -> bool:
    """The decision for a non-super user given every ACL that applies to the resource (literal
    name, literal wildcard, prefixes): no ACL -> ``allow_everyone_if_no_acl_found``; a
    matching DENY -> denied; else allowed iff a matching ALLOW of the operation or of one that
    implies it exists (AclAuthorizer.authorizeAction)."""
    if not acls:
        return allow_everyone_if_no_acl_found
    if any(_matches(e, principal, host, operation, AclPermissionType.DENY) for e in acls):
        return False
    return any(_matches(e, principal, host, op, AclPermissionType.ALLOW)
               for op in IMPLIED_BY.get(operation, (operation,)) for e in acls)


class AclAuthorizer:
    """The authorizer of one broker: an in-memory cache of every ACL, kept current from
    ZooKeeper, and the writes of CreateAcls / DeleteAcls.

    ``authorize`` is synchronous (cache only). ``start(zk, nursery)`` creates Kafka's ACL paths,
    loads every ACL and follows the change notifications; ``create_acls`` / ``delete_acls``
    write ZooKeeper and need a started authorizer.
    """

    def __init__(self, super_users: Iterable[str] = (), allow_everyone_if_no_acl_found: bool = False) -> None:
        self.super_users = frozenset(super_users)
        self.allow_everyone_if_no_acl_found = allow_everyone_if_no_acl_found
        #: {resource pattern: its ACL entries}; patterns without ACLs are absent
        self._acls: dict[ResourcePattern, frozenset[AccessControlEntry]] = {}
        self._zk: Any = None
        #: highest change notification handled per change path (its sequence number)
        self._last_change: dict[str, int] = {}
        self._write_lock = trio.Lock()
        #: bumped whenever the cache changes (tests and callers waiting for a change)
        self.cache_updates = 0

    @classmethod
    def from_config(cls, config: Any) -> "AclAuthorizer | None":
        """The authorizer named by ``authorizer.class.name`` (None when empty). Raises
        ValueError (one line naming the key) for another class."""
        name = (config["authorizer.class.name"] or "").strip()
        if not name:
            return None
        if name != ACL_AUTHORIZER_CLASS:
            raise ValueError(f"invalid value {name!r} for configuration 'authorizer.class.name': "
                             f"kafkalike provides {ACL_AUTHORIZER_CLASS} only")
        return cls(parse_super_users(config["super.users"]), bool(config["allow.everyone.if.no.acl.found"]))

    # ------------------------------------------------------------------ start-up and the cache
    async def start(self, zk: Any, nursery: trio.Nursery) -> None:
        """Create the ACL paths, load every ACL (AclAuthorizer.loadCache), then follow the
        change notifications in a task of ``nursery``."""
        self._zk = zk
        await zk.ensure_paths(zd.acl_paths())
        await self.load_cache()
        for path in (zd.LITERAL_ACL_CHANGES_PATH, zd.EXTENDED_ACL_CHANGES_PATH):
            children = await zk.get_children(path)
            self._last_change[path] = max((_seq(c) for c in children), default=-1)
        nursery.start_soon(self._follow_changes)
        log.info("acl_authorizer_started", resources=len(self._acls), super_users=sorted(self.super_users),
                 allow_everyone_if_no_acl_found=self.allow_everyone_if_no_acl_found)

    async def load_cache(self) -> None:
        """Read every ACL znode of both stores into the cache."""
        acls: dict[ResourcePattern, frozenset[AccessControlEntry]] = {}
        for pattern_type in (PatternType.LITERAL, PatternType.PREFIXED):
            store = zd.acl_store_path(pattern_type.name)
            for type_name in await self._zk.get_children(store):
                rtype = ResourceType.parse(type_name)
                names = await self._zk.get_children(f"{store}/{type_name}")
                got = await self._zk.get_many([f"{store}/{type_name}/{n}" for n in names])
                for name, item in zip(names, got):
                    if item is None:
                        continue
                    try:
                        entries = _entries_from_zk(item[0])
                    except zd.ZNodeDecodeError as exc:
                        log.error("acl_znode_unreadable", path=f"{store}/{type_name}/{name}", error=str(exc))
                        continue
                    if entries:
                        acls[ResourcePattern(rtype, name, pattern_type)] = entries
        self._acls = acls
        self.cache_updates += 1

    async def _reload_resource(self, pattern: ResourcePattern) -> None:
        path = zd.acl_resource_path(pattern.pattern_type.name, pattern.resource_type.zk_name, pattern.name)
        try:
            data, _stat = await self._zk.get(path)
            entries = _entries_from_zk(data)
        except NoNode:
            entries = frozenset()
        self._set_cache(pattern, entries)

    def _set_cache(self, pattern: ResourcePattern, entries: frozenset[AccessControlEntry]) -> None:
        if entries:
            self._acls[pattern] = entries
        else:
            self._acls.pop(pattern, None)
        self.cache_updates += 1

    async def _follow_changes(self) -> None:
        """ZkNodeChangeNotificationListener for both change paths: on a child watch (or every
        CHANGE_RELIST_S), handle the notifications newer than the last one handled, reloading
        each named resource from ZooKeeper; delete notifications older than 15 minutes."""
        while True:
            try:
                watches = []
                for path in (zd.LITERAL_ACL_CHANGES_PATH, zd.EXTENDED_ACL_CHANGES_PATH):
                    children, watch = await self._zk.get_children_and_watch(path)
                    watches.append(watch)
                    await self._handle_notifications(path, children)
                async with trio.open_nursery() as nursery:
                    async def wait(w: Any) -> None:
                        await w.wait()
                        nursery.cancel_scope.cancel()
                    for w in watches:
                        nursery.start_soon(wait, w)
                    nursery.cancel_scope.deadline = trio.current_time() + CHANGE_RELIST_S
            except trio.Cancelled:
                raise
            except Exception as exc:  # ZooKeeper away: try again (the cache keeps serving)
                log.warning("acl_changes_not_read", error=str(exc))
                await trio.sleep(1.0)

    async def _handle_notifications(self, path: str, children: list[str]) -> None:
        last = self._last_change.get(path, -1)
        new = [c for c in sorted(children, key=_seq) if _seq(c) > last]
        for child in new:
            node = f"{path}/{child}"
            try:
                data, _stat = await self._zk.get(node)
                change = zd.AclChangeNotification.from_bytes(data, literal=path == zd.LITERAL_ACL_CHANGES_PATH)
                pattern = ResourcePattern(ResourceType.parse(change.resource_type), change.name,
                                          PatternType.parse(change.pattern_type))
                await self._reload_resource(pattern)
                log.debug("acl_change_applied", notification=node, resource=str(pattern))
            except NoNode:
                pass
            except (zd.ZNodeDecodeError, ValueError) as exc:
                log.error("acl_change_unreadable", notification=node, error=str(exc))
            self._last_change[path] = _seq(child)
        if new:  # purgeObsoleteNotifications, as Kafka: after handling new ones
            now_ms = int(time.time() * 1000)
            for child in children:
                stat = await self._zk.exists(f"{path}/{child}")
                if stat is not None and now_ms - stat.ctime_ms > CHANGE_EXPIRATION_MS:
                    try:
                        await self._zk.delete(f"{path}/{child}")
                    except NoNode:
                        pass

    # ------------------------------------------------------------------ decisions
    def matching_acls(self, resource_type: ResourceType, name: str) -> list[AccessControlEntry]:
        """Every entry that applies to resource ``name`` of ``resource_type``: its literal ACLs,
        the literal wildcard's, and those of every prefix pattern of it."""
        out: list[AccessControlEntry] = []
        for key in (ResourcePattern(resource_type, name), ResourcePattern(resource_type, WILDCARD_RESOURCE)):
            out.extend(self._acls.get(key, ()))
        for pattern, entries in self._acls.items():
            if (pattern.pattern_type == PatternType.PREFIXED and pattern.resource_type == resource_type
                    and name.startswith(pattern.name)):
                out.extend(entries)
        return out

    def authorize(self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType,
                  name: str, *, request: str = "", log_if_denied: bool = True, log_if_allowed: bool = False) -> bool:
        """May ``principal`` (``User:bob``) connected from ``host`` (an IP address) do
        ``operation`` on the resource? See the module doc for the rules."""
        if principal in self.super_users:
            allowed = True
        else:
            acls = self.matching_acls(resource_type, name)
            allowed = decide(acls, principal, host, operation, self.allow_everyone_if_no_acl_found)
        if (log_if_denied and not allowed) or (log_if_allowed and allowed):
            (audit.info if not allowed else audit.debug)(
                "denied" if not allowed else "allowed", principal=principal, operation=operation.zk_name,
                host=host, resource=f"{resource_type.zk_name}:LITERAL:{name}", request=request)
        return allowed

    def authorized_operations(self, principal: str, host: str, resource_type: ResourceType, name: str) -> int:
        """The ``*_authorized_operations`` bit field: bit ``op`` set for each operation of the
        resource type the principal may do on it (Kafka's AuthHelper.authorizedOperations)."""
        bits = 0
        for op in SUPPORTED_OPERATIONS.get(resource_type, ()):
            if self.authorize(principal, host, op, resource_type, name, log_if_denied=False, log_if_allowed=False):
                bits |= 1 << int(op)
        return bits

    def acls(self, flt: AclBindingFilter = AclBindingFilter()) -> list[AclBinding]:
        """Every ACL matching ``flt``, sorted by resource then entry."""
        return sorted(AclBinding(p, e) for p, entries in self._acls.items() for e in entries
                      if flt.matches(AclBinding(p, e)))

    # ------------------------------------------------------------------ writes
    async def create_acls(self, bindings: Sequence[AclBinding]) -> list[str | None]:
        """Store ``bindings`` (AclAuthorizer.createAcls): per binding None, or why it was refused
        (InvalidAclError's text: INVALID_REQUEST). ZooKeeper errors propagate."""
        results: list[str | None] = [None] * len(bindings)
        by_pattern: dict[ResourcePattern, set[AccessControlEntry]] = {}
        for i, b in enumerate(bindings):
            try:
                validate_acl_binding(b)
            except InvalidAclError as exc:
                results[i] = f"Failed to create ACL {b.pattern} {b.entry}: {exc}"
                continue
            by_pattern.setdefault(b.pattern, set()).add(b.entry)
        async with self._write_lock:
            for pattern, entries in by_pattern.items():
                await self._update_resource(pattern, lambda current, add=frozenset(entries): current | add)
        return results

    async def delete_acls(self, filters: Sequence[AclBindingFilter]) -> list[list[AclBinding]]:
        """Delete the ACLs each filter matches (AclAuthorizer.deleteAcls); returns, per filter,
        the bindings it deleted."""
        results: list[list[AclBinding]] = [[] for _ in filters]
        async with self._write_lock:
            await self.load_cache()  # what ZooKeeper holds now, not what this broker last saw
            for pattern in sorted({b.pattern for b in self.acls()}):
                def remove(current: frozenset[AccessControlEntry], pattern: ResourcePattern = pattern
                           ) -> frozenset[AccessControlEntry]:
                    return frozenset(e for e in current
                                     if not any(f.matches(AclBinding(pattern, e)) for f in filters))
                before = self._acls.get(pattern, frozenset())
                after = await self._update_resource(pattern, remove)
                for e in sorted(before - after):
                    for i, f in enumerate(filters):
                        if f.matches(AclBinding(pattern, e)):
                            results[i].append(AclBinding(pattern, e))
        return results

    async def _update_resource(self, pattern: ResourcePattern, change: Any) -> frozenset[AccessControlEntry]:
        """Read-modify-write one resource znode with its version (AclAuthorizer.updateResourceAcls):
        create it if absent, delete it when no ACL is left, retry on a concurrent write; then a
        change notification and the cache. Returns the entries now stored."""
        zk = self._zk
        if zk is None:
            raise RuntimeError("the authorizer is not started")
        path = zd.acl_resource_path(pattern.pattern_type.name, pattern.resource_type.zk_name, pattern.name)
        for _attempt in range(MAX_UPDATE_RETRIES):
            try:
                data, stat = await zk.get(path)
                current, version = _entries_from_zk(data), stat.version
            except NoNode:
                current, version = frozenset(), None
            new = frozenset(change(current))
            if new == current:
                self._set_cache(pattern, current)
                return current
            try:
                if version is None:
                    await zk.create(path, _entries_to_zk(new), make_parents=True)
                elif new:
                    await zk.set(path, _entries_to_zk(new), version=version)
                else:
                    await zk.delete(path, version=version)
            except (BadVersion, NodeExists, NoNode):
                continue  # someone else wrote it: read again
            notification = zd.AclChangeNotification(pattern.resource_type.zk_name, pattern.name,
                                                    pattern.pattern_type.name)
            await zk.create(f"{zd.acl_change_path(pattern.pattern_type.name)}/{zd.ACL_CHANGE_PREFIX}",
                            notification.to_bytes(), sequential=True, make_parents=True)
            self._set_cache(pattern, new)
            log.info("acls_updated", resource=str(pattern), acls=len(new))
            return new
        raise RuntimeError(f"Failed to update ACLs for {pattern} after trying a maximum of "
                           f"{MAX_UPDATE_RETRIES} times")


def _seq(name: str) -> int:
    """The sequence number of ``acl_changes_0000000012``; -1 for another name."""
    digits = name.rsplit("_", 1)[-1]
    return int(digits) if digits.isdigit() else -1
