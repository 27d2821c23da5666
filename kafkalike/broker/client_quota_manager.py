"""Client quotas: ``producer_byte_rate`` / ``consumer_byte_rate`` per user, client id and their
defaults, stored in ZooKeeper as Kafka stores them, measured and throttled as Kafka's
ClientQuotaManager does (KIP-13, KIP-55 user quotas, KIP-219 throttling, KIP-546
Describe/AlterClientQuotas).

ZooKeeper (Kafka's ConfigEntityZNode, shared with SCRAM credentials): ``/config/users/<user>``,
``/config/users/<user>/clients/<client-id>``, ``/config/clients/<client-id>``, with ``<default>``
as the name of a default entity; data ``{"version":1,"config":{"producer_byte_rate":"1048576"}}``;
each change is announced by ``/config/changes/config_change_<seq>`` (``{"version":2,
"entity_path":"users/alice"}``). Names are sanitized (URL-encoded) as Kafka's Sanitizer.

Which quota applies (Kafka's precedence, first match): user+client, user+default client, user,
default user+client, default user+default client, default user, client, default client. The
rate is measured per matched entity over ``quota.window.num`` (11) samples of
``quota.window.size.seconds`` (1 s) (Kafka's Rate with its window-size rule); a request that
takes the rate above the quota gets ``throttle_time_ms = (rate - quota) / quota * window`` in
its response and its connection is muted for that long (KIP-219; here: the next request on the
connection waits). Produce records the request's record bytes, Fetch the response's record bytes
(consumers only; replication is not throttled by client quotas, as Kafka).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
import trio

from kafkalike.broker.sasl_scram import desanitize, sanitize
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.errors import BadVersion, NodeExists, NoNode
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.entities import build, entity, response_class_for
from kafkalike.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
#: the client quota keys Kafka's AlterClientQuotas accepts for user / client-id entities
QUOTA_KEYS = (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, "request_percentage", "controller_mutation_rate")
DEFAULT = "<default>"
USER, CLIENT_ID = "user", "client-id"
#: ComponentData.match_type (DescribeClientQuotas): exact name, the default entity, any specified
MATCH_EXACT, MATCH_DEFAULT, MATCH_ANY = 0, 1, 2
RELIST_S = 10.0


@attrs.frozen
class QuotaEntity:
    """A quota's entity: user and/or client id, each a name or DEFAULT (None: not part of it)."""

    user: str | None = None
    client_id: str | None = None

    @property
    def entity_path(self) -> str:
        """``users/alice``, ``users/<default>/clients/c1``, ``clients/c1`` (sanitized names)."""
        parts = []
        if self.user is not None:
            parts.append(f"users/{self.user if self.user == DEFAULT else sanitize(self.user)}")
        if self.client_id is not None:
            parts.append(f"clients/{self.client_id if self.client_id == DEFAULT else sanitize(self.client_id)}")
        return "/".join(parts)


@attrs.define
class Rate:
    """Kafka's Rate over ``num`` samples of ``window_ms``: value per second."""

    window_ms: int
    num: int
    samples: list[list[float]] = attrs.field(factory=list)  # [start_ms, total]

    def record(self, value: float, now_ms: float) -> None:
        if not self.samples or now_ms >= self.samples[-1][0] + self.window_ms:
            self.samples.append([now_ms, 0.0])
        self.samples[-1][1] += value
        while self.samples and now_ms - self.samples[0][0] >= self.num * self.window_ms:  # purgeObsoleteSamples
            self.samples.pop(0)

    def window_size_ms(self, now_ms: float) -> float:
        """Rate.windowSize: elapsed since the oldest sample, at least num-1 full windows."""
        elapsed = now_ms - self.samples[0][0] if self.samples else 0.0
        full = int(elapsed // self.window_ms)
        if full < self.num - 1:
            elapsed += (self.num - 1 - full) * self.window_ms
        return elapsed

    def rate(self, now_ms: float) -> float:
        return sum(s[1] for s in self.samples) / (self.window_size_ms(now_ms) / 1000.0)


class ClientQuotaManager:
    """Quotas from ZooKeeper (cached, following /config/changes) and the byte-rate sensors."""

    def __init__(self, window_num: int = 11, window_size_s: float = 1.0) -> None:
        self.window_num, self.window_ms = window_num, int(window_size_s * 1000)
        self.quotas: dict[QuotaEntity, dict[str, float]] = {}
        self._rates: dict[tuple[str, QuotaEntity], Rate] = {}
        self._zk: Any = None
        self._last_change = ""

    # ------------------------------------------------------------------ ZooKeeper
    async def start(self, zk: Any, nursery: trio.Nursery) -> None:
        """Load every quota, then follow /config/changes (a task of ``nursery``)."""
        self._zk = zk
        children = await zk.get_children(zd.CONFIG_CHANGES_PATH)
        self._last_change = children[-1] if children else ""
        await self.load()
        nursery.start_soon(self._follow_changes)

    async def load(self) -> None:
        """Read /config/users (and their clients/) and /config/clients."""
        quotas: dict[QuotaEntity, dict[str, float]] = {}

        async def read(path: str, ent: QuotaEntity) -> None:
            try:
                data, _ = await self._zk.get(path)
                config = zd.ConfigEntity.from_json(data).config
            except (NoNode, zd.ZNodeDecodeError):
                return
            values = {k: float(v) for k, v in config.items() if k in QUOTA_KEYS and _is_number(v)}
            if values:
                quotas[ent] = values

        def name(n: str) -> str:
            return n if n == DEFAULT else desanitize(n)
        for u in await self._children("/config/users"):
            await read(f"/config/users/{u}", QuotaEntity(user=name(u)))
            for c in await self._children(f"/config/users/{u}/clients"):
                await read(f"/config/users/{u}/clients/{c}", QuotaEntity(name(u), name(c)))
        for c in await self._children("/config/clients"):
            await read(f"/config/clients/{c}", QuotaEntity(client_id=name(c)))
        self.quotas = quotas

    async def _children(self, path: str) -> list[str]:
        try:
            return list(await self._zk.get_children(path))
        except NoNode:
            return []

    async def _follow_changes(self) -> None:
        while True:
            try:
                children, watch = await self._zk.get_children_and_watch(zd.CONFIG_CHANGES_PATH)
                new = [c for c in children if c > self._last_change]
                if new:
                    self._last_change = new[-1]
                    kinds = set()
                    for c in new:
                        try:
                            data, _ = await self._zk.get(f"{zd.CONFIG_CHANGES_PATH}/{c}")
                            kinds.add(zd.ConfigChangeNotification.from_json(data).entity_path.split("/")[0])
                        except (NoNode, zd.ZNodeDecodeError):
                            continue
                    if kinds & {zd.CONFIG_TYPE_USER, zd.CONFIG_TYPE_CLIENT}:
                        await self.load()
                        log.info("client_quotas_reloaded", entities=len(self.quotas))
                with trio.move_on_after(RELIST_S):
                    await watch.wait()
            except trio.Cancelled:
                raise
            except Exception as exc:
                log.warning("client_quota_changes_not_read", error=str(exc))
                await trio.sleep(1.0)

    # ------------------------------------------------------------------ measuring
    def matching(self, key: str, user: str, client_id: str) -> tuple[QuotaEntity, float] | None:
        """The first quota of ``key`` in Kafka's precedence, as (the entity it is measured
        per, the quota)."""
        order = [
            (QuotaEntity(user, client_id), QuotaEntity(user, client_id)),
            (QuotaEntity(user, DEFAULT), QuotaEntity(user, client_id)),
            (QuotaEntity(user), QuotaEntity(user)),
            (QuotaEntity(DEFAULT, client_id), QuotaEntity(user, client_id)),
            (QuotaEntity(DEFAULT, DEFAULT), QuotaEntity(user, client_id)),
            (QuotaEntity(DEFAULT), QuotaEntity(user)),
            (QuotaEntity(client_id=client_id), QuotaEntity(client_id=client_id)),
            (QuotaEntity(client_id=DEFAULT), QuotaEntity(client_id=client_id)),
        ]
        for configured, measured in order:
            value = self.quotas.get(configured, {}).get(key)
            if value is not None:
                return measured, value
        return None

    def record_and_get_throttle_time_ms(self, key: str, user: str, client_id: str, value: float,
                                        now_ms: float | None = None) -> int:
        """Record ``value`` bytes for the client's quota of ``key``; the throttle time (ms) if
        the rate is now above the quota, else 0 (ClientQuotaManager.maybeRecordAndGetThrottleTimeMs)."""
        found = self.matching(key, user, client_id)
        if found is None:
            return 0
        measured, quota = found
        now_ms = time.monotonic() * 1000 if now_ms is None else now_ms
        rate = self._rates.get((key, measured))
        if rate is None:
            rate = self._rates[(key, measured)] = Rate(self.window_ms, self.window_num)
        rate.record(value, now_ms)
        observed = rate.rate(now_ms)
        if quota <= 0 or observed <= quota:
            return 0
        return int((observed - quota) / quota * rate.window_size_ms(now_ms))

    # ------------------------------------------------------------------ Describe/AlterClientQuotas
    def describe(self, components: list[tuple[str, int, str | None]], strict: bool) -> list[tuple[QuotaEntity, dict[str, float]]]:
        """The quotas matching DescribeClientQuotas' components (entity type, match type, name)."""
        out = []
        for ent, values in sorted(self.quotas.items(), key=lambda kv: (kv[0].user or "", kv[0].client_id or "")):
            parts = {USER: ent.user, CLIENT_ID: ent.client_id}
            ok = True
            for etype, mtype, match in components:
                have = parts.get(etype)
                if have is None or (mtype == MATCH_EXACT and have != match) or (mtype == MATCH_DEFAULT and have != DEFAULT):
                    ok = False
            if strict and {t for t, v in parts.items() if v is not None} != {c[0] for c in components}:
                ok = False
            if ok:
                out.append((ent, values))
        return out

    async def alter(self, ent: QuotaEntity, ops: list[tuple[str, float, bool]]) -> None:
        """Apply ``ops`` (key, value, remove) to the entity's znode (other keys, e.g. SCRAM
        credentials, kept), then a /config/changes notification and the cache."""
        path = "/config/" + ent.entity_path
        for _ in range(10):
            try:
                data, stat = await self._zk.get(path)
                config, version = dict(zd.ConfigEntity.from_json(data).config), stat.version
            except NoNode:
                config, version = {}, None
            for key, value, remove in ops:
                if remove:
                    config.pop(key, None)
                else:
                    config[key] = repr(float(value)) if key == "controller_mutation_rate" else str(_number(value))
            body = zd.ConfigEntity(config).to_json()
            try:
                if version is None:
                    await self._zk.create(path, body, make_parents=True)
                else:
                    await self._zk.set(path, body, version=version)
            except (BadVersion, NodeExists):
                continue
            await self._zk.create(zd.config_change_notification_prefix(),
                                  zd.ConfigChangeNotification(ent.entity_path).to_json(), sequential=True)
            await self.load()
            return
        raise RuntimeError(f"could not update {path}: concurrent writes")


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _number(v: float) -> str:
    """Kafka writes long quotas (byte rates) as integers, e.g. "1048576"."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


# ---------------------------------------------------------------------------- the APIs
class ClientQuotaApis:
    """DescribeClientQuotas v0-1 and AlterClientQuotas v0-1 (KIP-546) over a ClientQuotaManager;
    ``authorize(conn, operation_name)`` answers DescribeConfigs / AlterConfigs on the cluster
    (None: no authorizer, everything allowed)."""

    def __init__(self, manager: ClientQuotaManager, authorize: Callable[[Any, str], bool] | None = None) -> None:
        self.manager = manager
        self.authorize = authorize

    def register(self, apis: Any) -> None:
        apis.register(ApiKey.DESCRIBE_CLIENT_QUOTAS, self.describe_client_quotas)
        apis.register(ApiKey.ALTER_CLIENT_QUOTAS, self.alter_client_quotas)

    async def describe_client_quotas(self, header: Any, request: Any, conn: Any) -> Any:
        resp_cls = response_class_for(request)
        if self.authorize is not None and not self.authorize(conn, "DescribeConfigs"):
            return build(resp_cls, error_code=ErrorCode.cluster_authorization_failed,
                         error_message="Cluster authorization failed.", entries=None)
        components = [(c.entity_type, int(c.match_type), c.match) for c in request.components]
        bad = [c for c in components if c[0] not in (USER, CLIENT_ID) or c[1] not in (0, 1, 2)]
        if bad:
            return build(resp_cls, error_code=ErrorCode.invalid_request,
                         error_message=f"Invalid quota filter component {bad[0]}", entries=None)
        entry_cls, ent_cls, value_cls = (entity(resp_cls, "EntryData"), entity(resp_cls, "EntityData"),
                                         entity(resp_cls, "ValueData"))
        entries = []
        for ent, values in self.manager.describe(components, bool(request.strict)):
            parts = [(USER, ent.user), (CLIENT_ID, ent.client_id)]
            entries.append(build(entry_cls, entity=tuple(
                build(ent_cls, entity_type=t, entity_name=None if n == DEFAULT else n) for t, n in parts if n is not None),
                values=tuple(build(value_cls, key=k, value=v) for k, v in sorted(values.items()))))
        return build(resp_cls, error_code=ErrorCode.none, error_message=None, entries=tuple(entries))

    async def alter_client_quotas(self, header: Any, request: Any, conn: Any) -> Any:
        resp_cls = response_class_for(request)
        entry_cls, ent_cls = entity(resp_cls, "EntryData"), entity(resp_cls, "EntityData")
        allowed = self.authorize is None or self.authorize(conn, "AlterConfigs")
        results = []
        for e in request.entries:
            ents = tuple(build(ent_cls, entity_type=d.entity_type, entity_name=d.entity_name) for d in e.entity)
            error, message = ErrorCode.none, None
            parts = {d.entity_type: (DEFAULT if d.entity_name is None else d.entity_name) for d in e.entity}
            ops = [(o.key, float(o.value), bool(o.remove)) for o in e.ops]
            if not allowed:
                error, message = ErrorCode.cluster_authorization_failed, "Cluster authorization failed."
            elif not parts or set(parts) - {USER, CLIENT_ID} or len(parts) != len(e.entity):
                error, message = ErrorCode.invalid_request, f"Invalid quota entity {sorted(parts)}"
            elif bad := [k for k, _, _ in ops if k not in QUOTA_KEYS]:
                error, message = ErrorCode.invalid_request, f"Invalid configuration key {bad[0]}"
            elif bad_v := [v for _, v, r in ops if not r and v <= 0]:
                error, message = ErrorCode.invalid_request, f"Quota value must be positive, got {bad_v[0]}"
            elif not request.validate_only:
                try:
                    await self.manager.alter(QuotaEntity(parts.get(USER), parts.get(CLIENT_ID)), ops)
                except Exception as exc:
                    error, message = ErrorCode.unknown_server_error, str(exc)
            results.append(build(entry_cls, error_code=error, error_message=message, entity=ents))
        return build(resp_cls, entries=tuple(results))


# ---------------------------------------------------------------------------- throttling
Handler = Callable[[Any, Any, Any], Awaitable[Any]]


def install_throttling(apis: Any, manager: ClientQuotaManager, record_bytes: Callable[[Any], int]) -> None:
    """Wrap Produce and Fetch of ``apis``: record the bytes (Produce: the request's records;
    Fetch: the response's records, consumers only, through ``record_bytes(response)``), put the
    throttle time in the answer and mute the connection that long (its next Produce/Fetch waits)."""
    muted_until: dict[int, float] = {}

    async def wait_unmuted(conn: Any) -> None:
        until = muted_until.get(conn.connection_id)
        if until is not None:
            delay = until - trio.current_time()
            if delay > 0:
                await trio.sleep(delay)
            muted_until.pop(conn.connection_id, None)

    def mute(conn: Any, throttle_ms: int) -> None:
        if throttle_ms > 0:
            if len(muted_until) > 10000:  # forget connections long unmuted
                now = trio.current_time()
                for k in [k for k, v in muted_until.items() if v < now]:
                    del muted_until[k]
            muted_until[conn.connection_id] = trio.current_time() + throttle_ms / 1000.0

    produce, fetch = apis.handlers.get(ApiKey.PRODUCE), apis.handlers.get(ApiKey.FETCH)

    async def throttled_produce(header: Any, request: Any, conn: Any) -> Any:
        await wait_unmuted(conn)
        if not manager.quotas:  # no quota configured anywhere: nothing to measure
            return await produce(header, request, conn)
        size = sum(len(p.records) for t in request.topic_data for p in t.partition_data if p.records is not None)
        throttle = manager.record_and_get_throttle_time_ms(PRODUCER_BYTE_RATE, _user(conn), header.client_id or "",
                                                           size)
        response = await produce(header, request, conn)
        mute(conn, throttle)
        if response is None or throttle <= 0 or isinstance(response, list):
            return response
        return attrs_replace(response, throttle_time=datetime.timedelta(milliseconds=throttle))

    async def throttled_fetch(header: Any, request: Any, conn: Any) -> Any:
        await wait_unmuted(conn)
        response = await fetch(header, request, conn)
        if request.replica_id >= 0 or isinstance(response, list) or not manager.quotas:
            return response
        throttle = manager.record_and_get_throttle_time_ms(CONSUMER_BYTE_RATE, _user(conn), header.client_id or "",
                                                           record_bytes(response))
        mute(conn, throttle)
        if throttle <= 0:
            return response
        return attrs_replace(response, throttle_time=datetime.timedelta(milliseconds=throttle))

    if produce is not None:
        apis.register(ApiKey.PRODUCE, throttled_produce)
    if fetch is not None:
        apis.register(ApiKey.FETCH, throttled_fetch)


def attrs_replace(entity_: Any, **changes: Any) -> Any:
    import dataclasses
    return dataclasses.replace(entity_, **changes)


def _user(conn: Any) -> str:
    principal = getattr(conn, "principal", "User:ANONYMOUS")
    return principal.partition(":")[2] or principal


def fetch_record_bytes(response: Any) -> int:
    """The record bytes of a Fetch response entity (file slices or bytes)."""
    from kafkalike.protocol.fetch import chunk_size
    return sum(chunk_size(p.records) for t in response.responses for p in t.partitions if p.records is not None)


__all__ = ["ClientQuotaManager", "ClientQuotaApis", "QuotaEntity", "Rate", "install_throttling",
           "fetch_record_bytes"]
