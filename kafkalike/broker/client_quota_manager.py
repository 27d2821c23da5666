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

``request_percentage`` (KIP-124, Kafka's ClientRequestQuotaManager): the time the broker's event
loop spends running each request's handler (``RequestTimeMeter``, a trio instrument summing the
steps of the connection's task while the handler runs: the analogue of Kafka's request handler
thread time; waits in purgatory are not counted) is recorded per entity as a percentage of one
second (``nanosToPercentage``); over the quota, ``throttle_time_ms`` (capped at one window, as
Kafka's ``maxThrottleTimeMs``) goes into every response that has the field and the connection's
next request waits it out. Inter-broker requests (LeaderAndIsr, UpdateMetadata, StopReplica,
ControlledShutdown, WriteTxnMarkers, follower fetches) are exempt, as Kafka exempts ClusterAction.

Metrics (``QuotaMetricsCollector``): Kafka's per-entity sensors
``kafka.server:type=Produce|Fetch|Request,user=<u>,client-id=<c>`` attributes ``byte-rate`` /
``request-time`` and ``throttle-time``, named as the Prometheus JMX exporter's kafka-2_0_0.yml
quota rule renders them: ``kafka_server_quota_byte_rate``, ``kafka_server_quota_request_time``,
``kafka_server_quota_throttle_time`` with labels ``resource``, ``user``, ``clientId``.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import structlog
import trio

from kafkalike.broker import request_pipelining
from kafkalike.broker.sasl_scram import desanitize, sanitize
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.errors import BadVersion, NodeExists, NoNode
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.entities import build, entity, response_class_for
from kafkalike.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
#: the sensor type (Kafka's QuotaType / MBean type) each quota key is measured by
QUOTA_TYPES = {PRODUCER_BYTE_RATE: "Produce", CONSUMER_BYTE_RATE: "Fetch", REQUEST_PERCENTAGE: "Request"}
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


@attrs.define
class Avg:
    """Kafka's Avg over ``num`` samples of ``window_ms``: the mean of the values recorded in the
    live samples (0.0 when none), e.g. the throttle-time sensor (ms)."""

    window_ms: int
    num: int
    samples: list[list[float]] = attrs.field(factory=list)  # [start_ms, total, count]

    def record(self, value: float, now_ms: float) -> None:
        if not self.samples or now_ms >= self.samples[-1][0] + self.window_ms:
            self.samples.append([now_ms, 0.0, 0.0])
        self.samples[-1][1] += value
        self.samples[-1][2] += 1
        self._purge(now_ms)

    def _purge(self, now_ms: float) -> None:
        while self.samples and now_ms - self.samples[0][0] >= self.num * self.window_ms:
            self.samples.pop(0)

    def value(self, now_ms: float) -> float:
        self._purge(now_ms)
        count = sum(s[2] for s in self.samples)
        return sum(s[1] for s in self.samples) / count if count else 0.0


@attrs.frozen
class QuotaSensorValue:
    """One entity's quota sensors now (``ClientQuotaManager.sensor_values``): ``quota_type``
    Produce / Fetch / Request; ``user`` / ``client_id`` the measured entity ("" when not part of
    it); ``rate`` bytes/s (Produce, Fetch) or percent of one thread (Request); ``throttle_time_ms``
    the mean throttle time of the window's requests."""

    quota_type: str
    user: str
    client_id: str
    rate: float
    throttle_time_ms: float


class ClientQuotaManager:
    """Quotas from ZooKeeper (cached, following /config/changes) and the byte-rate sensors."""

    def __init__(self, window_num: int = 11, window_size_s: float = 1.0) -> None:
        self.window_num, self.window_ms = window_num, int(window_size_s * 1000)
        self.quotas: dict[QuotaEntity, dict[str, float]] = {}
        self._rates: dict[tuple[str, QuotaEntity], Rate] = {}
        self._throttle_times: dict[tuple[str, QuotaEntity], Avg] = {}
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

    def use_zookeeper(self, zk: Any) -> None:
        """Read and write quotas through ``zk`` (a ZooKeeperClient) without following changes
        (what ``kafkalike configs --zookeeper`` does: then ``load``, ``describe``, ``alter``)."""
        self._zk = zk

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

    def has_quota(self, key: str) -> bool:
        """True if some entity has a quota of ``key`` (e.g. request_percentage)."""
        return any(key in values for values in self.quotas.values())

    def record_and_get_throttle_time_ms(self, key: str, user: str, client_id: str, value: float,
                                        now_ms: float | None = None) -> int:
        """Record ``value`` (bytes; for request_percentage the percent of one second the request
        took) for the client's quota of ``key``; the throttle time (ms) if the rate is now above
        the quota, else 0 (ClientQuotaManager.maybeRecordAndGetThrottleTimeMs). request_percentage's
        throttle time is capped at one window (ClientRequestQuotaManager.maxThrottleTimeMs)."""
        found = self.matching(key, user, client_id)
        if found is None:
            return 0
        measured, quota = found
        now_ms = time.monotonic() * 1000 if now_ms is None else now_ms
        rate = self._rates.get((key, measured))
        if rate is None:
            rate = self._rates[(key, measured)] = Rate(self.window_ms, self.window_num)
            self._throttle_times[(key, measured)] = Avg(self.window_ms, self.window_num)
        rate.record(value, now_ms)
        observed = rate.rate(now_ms)
        throttle = 0
        if quota > 0 and observed > quota:
            throttle = int((observed - quota) / quota * rate.window_size_ms(now_ms))
            if key == REQUEST_PERCENTAGE:
                throttle = min(throttle, self.window_ms)
        self._throttle_times[(key, measured)].record(throttle, now_ms)
        return throttle

    def sensor_values(self, now_ms: float | None = None) -> list[QuotaSensorValue]:
        """Every measured entity's rate and mean throttle time now (for /metrics)."""
        now_ms = time.monotonic() * 1000 if now_ms is None else now_ms
        out = []
        for (key, ent), rate in sorted(self._rates.items(), key=lambda kv: (kv[0][0], kv[0][1].user or "",
                                                                             kv[0][1].client_id or "")):
            out.append(QuotaSensorValue(QUOTA_TYPES.get(key, key), ent.user or "", ent.client_id or "",
                                        rate.rate(now_ms), self._throttle_times[(key, ent)].value(now_ms)))
        return out

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


class ChannelMuter:
    """Which connections are muted until when (KIP-219: a throttled connection's next request
    waits out the throttle time). Shared by the byte-rate and the request quota wrappers."""

    def __init__(self) -> None:
        self.muted_until: dict[int, float] = {}

    async def wait_unmuted(self, conn: Any) -> None:
        """Sleep until ``conn`` (a ConnectionContext) is no longer muted."""
        until = self.muted_until.get(conn.connection_id)
        if until is not None:
            delay = until - trio.current_time()
            if delay > 0:
                await trio.sleep(delay)
            self.muted_until.pop(conn.connection_id, None)

    def mute(self, conn: Any, throttle_ms: int) -> None:
        """Mute ``conn`` for ``throttle_ms`` ms from now (a longer mute already set is kept)."""
        if throttle_ms > 0:
            muted_until = self.muted_until
            if len(muted_until) > 10000:  # forget connections long unmuted
                now = trio.current_time()
                for k in [k for k, v in muted_until.items() if v < now]:
                    del muted_until[k]
            until = trio.current_time() + throttle_ms / 1000.0
            muted_until[conn.connection_id] = max(until, muted_until.get(conn.connection_id, 0.0))


def install_throttling(apis: Any, manager: ClientQuotaManager, record_bytes: Callable[[Any], int],
                       muter: ChannelMuter | None = None) -> ChannelMuter:
    """Wrap Produce and Fetch of ``apis``: record the bytes (Produce: the request's records;
    Fetch: the response's records, consumers only, through ``record_bytes(response)``), put the
    throttle time in the answer and mute the connection that long (its next Produce/Fetch waits).
    Returns the ChannelMuter used (``muter`` or a new one)."""
    muter = muter if muter is not None else ChannelMuter()
    wait_unmuted, mute = muter.wait_unmuted, muter.mute

    produce, fetch = apis.handlers.get(ApiKey.PRODUCE), apis.handlers.get(ApiKey.FETCH)

    async def throttled_produce(header: Any, request: Any, conn: Any) -> Any:
        await wait_unmuted(conn)
        if not manager.quotas:  # no quota configured anywhere: nothing to measure
            return await produce(header, request, conn)
        request_pipelining.hold()  # this answer's throttle mutes the connection's next request
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
    return muter


class RequestTimeMeter(trio.abc.Instrument):
    """Loop time spent running chosen tasks: between ``track(task)`` and ``untrack(task)``, every
    step of ``task`` adds its duration (seconds) — kafkalike's analogue of Kafka's request handler
    thread time (``RequestChannel.Request.requestThreadTimeNanos``). Installed in the run loop
    only while some request_percentage quota exists (each step then costs two calls)."""

    def __init__(self) -> None:
        self._spent: dict[Any, float] = {}
        self._step_start: dict[Any, float] = {}
        self.installed = False

    def track(self, task: Any) -> None:
        self._spent[task] = 0.0
        self._step_start[task] = time.perf_counter()  # the tracking task is running right now

    def untrack(self, task: Any) -> float:
        """Stop tracking ``task``; the seconds its steps took since ``track`` (this step included)."""
        spent = self._spent.pop(task, 0.0)
        start = self._step_start.pop(task, None)
        return spent + (time.perf_counter() - start if start is not None else 0.0)

    def before_task_step(self, task: Any) -> None:
        if task in self._spent:
            self._step_start[task] = time.perf_counter()

    def after_task_step(self, task: Any) -> None:
        start = self._step_start.pop(task, None)
        if start is not None and task in self._spent:
            self._spent[task] += time.perf_counter() - start

    def ensure(self, wanted: bool) -> None:
        """Install the instrument in the running trio loop (``wanted``) or remove it."""
        if wanted and not self.installed:
            trio.lowlevel.add_instrument(self)
            self.installed = True
        elif not wanted and self.installed:
            try:
                trio.lowlevel.remove_instrument(self)
            except KeyError:
                pass
            self.installed = False


#: inter-broker APIs (ClusterAction): exempt from request quotas, as Kafka's maybeRecordExempt
EXEMPT_API_KEYS = frozenset({ApiKey.LEADER_AND_ISR, ApiKey.UPDATE_METADATA, ApiKey.STOP_REPLICA,
                             ApiKey.CONTROLLED_SHUTDOWN, ApiKey.WRITE_TXN_MARKERS})
#: Kafka's nanosToPercentagePerSecond, for seconds: 1 s of handler time = 100 %
SECONDS_TO_PERCENTAGE = 100.0


def install_request_quota(apis: Any, manager: ClientQuotaManager, muter: ChannelMuter,
                          meter: RequestTimeMeter | None = None) -> RequestTimeMeter:
    """Wrap every handler of ``apis`` (call it after the other wrappers, so authorization is
    timed too) with request_percentage enforcement: wait while the connection is muted; when a
    request_percentage quota exists, time the handler's loop steps (RequestTimeMeter), record
    them for the client's entity and, over the quota, put the throttle time in the response
    (the larger of it and a byte-rate throttle already there) and mute the connection.
    Inter-broker requests and follower fetches are exempt. Returns the meter."""
    meter = meter if meter is not None else RequestTimeMeter()

    def wrap(api_key: int, handler: Handler) -> Handler:
        async def quota_checked(header: Any, request: Any, conn: Any) -> Any:
            await muter.wait_unmuted(conn)
            wanted = manager.has_quota(REQUEST_PERCENTAGE)
            meter.ensure(wanted)
            if wanted:
                request_pipelining.hold()  # a throttle mutes the connection before its next request
            if (not wanted or api_key in EXEMPT_API_KEYS
                    or (api_key == ApiKey.FETCH and getattr(request, "replica_id", -1) >= 0)):
                return await handler(header, request, conn)
            task = trio.lowlevel.current_task()
            meter.track(task)
            try:
                response = await handler(header, request, conn)
            finally:
                spent_s = meter.untrack(task)
            throttle = manager.record_and_get_throttle_time_ms(
                REQUEST_PERCENTAGE, _user(conn), header.client_id or "", spent_s * SECONDS_TO_PERCENTAGE)
            if throttle <= 0:
                return response
            muter.mute(conn, throttle)
            if isinstance(response, list):  # a ready frame (Metadata's cached answer, Fetch)
                return with_frame_throttle_time(response, api_key, header.api_version, throttle)
            return with_throttle_time(response, throttle)
        return quota_checked

    for api_key, handler in list(apis.handlers.items()):
        apis.register(api_key, wrap(api_key, handler))
    return meter


def with_throttle_time(response: Any, throttle_ms: int) -> Any:
    """``response`` with throttle_time_ms = max(its own, ``throttle_ms``) when it is a response
    entity with that field (kio's ``throttle_time``, a timedelta); anything else unchanged."""
    if not dataclasses.is_dataclass(response) or isinstance(response, type):
        return response
    if "throttle_time" not in {f.name for f in dataclasses.fields(response)}:
        return response
    current = response.throttle_time  # type: ignore[attr-defined]  # checked just above
    wanted = datetime.timedelta(milliseconds=throttle_ms)
    return dataclasses.replace(response, throttle_time=max(current, wanted) if current is not None else wanted)


#: APIs answered with ready frames whose body starts with throttle_time_ms (int32), from version
FRAME_THROTTLE_FIRST = {ApiKey.METADATA: 3, ApiKey.FETCH: 1}


def with_frame_throttle_time(chunks: list[Any], api_key: int, api_version: int, throttle_ms: int) -> list[Any]:
    """A ready response frame (chunks; the first holds the size, the response header and the
    body's start) with its leading throttle_time_ms raised to ``throttle_ms``, for the APIs of
    FRAME_THROTTLE_FIRST; other frames are returned unchanged (no throttle field to set)."""
    from kafkalike.protocol.codec import response_header_version

    since = FRAME_THROTTLE_FIRST.get(api_key)
    if since is None or api_version < since or not chunks or not isinstance(chunks[0], (bytes, bytearray)):
        return chunks
    at = 4 + 4 + (1 if response_header_version(api_key, api_version) == 1 else 0)  # size, correlation id, tags
    first = bytearray(chunks[0])
    if len(first) < at + 4:
        return chunks
    current = int.from_bytes(first[at:at + 4], "big", signed=True)
    first[at:at + 4] = max(current, throttle_ms).to_bytes(4, "big", signed=True)
    return [bytes(first), *chunks[1:]]


class QuotaMetricsCollector:
    """prometheus-client collector of the quota sensors (module doc, "Metrics"), read at scrape."""

    def __init__(self, manager: ClientQuotaManager) -> None:
        self.manager = manager

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        labels = ["resource", "user", "clientId"]
        byte_rate = GaugeMetricFamily("kafka_server_quota_byte_rate", "Bytes/s per quota entity "
                                      "(kafka.server:type=Produce|Fetch,user=..,client-id=.. byte-rate)", labels=labels)
        request_time = GaugeMetricFamily("kafka_server_quota_request_time", "Request handler time, percent of one "
                                         "thread, per quota entity (kafka.server:type=Request,... request-time)",
                                         labels=labels)
        throttle = GaugeMetricFamily("kafka_server_quota_throttle_time", "Mean throttle time (ms) per quota entity "
                                     "(kafka.server:type=Produce|Fetch|Request,... throttle-time)", labels=labels)
        for v in self.manager.sensor_values():
            values = [v.quota_type, v.user, v.client_id]
            (request_time if v.quota_type == "Request" else byte_rate).add_metric(values, v.rate)
            throttle.add_metric(values, v.throttle_time_ms)
        yield byte_rate
        yield request_time
        yield throttle


def attrs_replace(entity_: Any, **changes: Any) -> Any:
    return dataclasses.replace(entity_, **changes)


def _user(conn: Any) -> str:
    principal = getattr(conn, "principal", "User:ANONYMOUS")
    return principal.partition(":")[2] or principal


def fetch_record_bytes(response: Any) -> int:
    """The record bytes of a Fetch response entity (file slices or bytes)."""
    from kafkalike.protocol.fetch import chunk_size
    return sum(chunk_size(p.records) for t in response.responses for p in t.partitions if p.records is not None)


__all__ = ["ClientQuotaManager", "ClientQuotaApis", "QuotaEntity", "Rate", "Avg", "QuotaSensorValue",
           "install_throttling", "install_request_quota", "ChannelMuter", "RequestTimeMeter", "QuotaMetricsCollector",
           "with_throttle_time", "fetch_record_bytes"]
