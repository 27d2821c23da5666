"""Followers: one fetcher task per source broker pulling the partitions this broker follows
(Kafka's ReplicaFetcherManager / ReplicaFetcherThread / AbstractFetcherThread).

Each followed partition goes through two states (Kafka's PartitionFetchState):

1. **Truncating** (after every LeaderAndIsr that makes this broker a follower): an
   OffsetsForLeaderEpoch request asks the leader where this replica's latest leader epoch
   ends in the leader's log (KIP-101/279); the follower truncates to
   min(leader's end offset, its own end offset for that epoch). If the leader does not know
   the epoch it answers with the largest smaller one, and the follower first truncates to
   its own end of that epoch and asks again. An unknown epoch on either side (empty epoch
   cache) falls back to the local high watermark — never "truncate to HW" otherwise.
2. **Fetching**: Fetch with replica_id = this broker, current_leader_epoch fencing, and
   the follower's log start offset; the leader's batches are appended unchanged
   (assign_offsets off), a partial trailing batch dropped, the local HW set to
   min(leader HW, LEO), and the log start offset raised to the leader's (DeleteRecords,
   retention; never past the local HW), which the next Fetch reports back to the leader
   (its DeleteRecords purgatory waits on it). OFFSET_OUT_OF_RANGE: the follower asks the leader's LEO and log
   start (ListOffsets as a replica) and truncates to the LEO or restarts at the log start.
   FENCED/UNKNOWN_LEADER_EPOCH and NOT_LEADER_OR_FOLLOWER park the partition until the
   controller's next LeaderAndIsr; other errors back off replica.fetch.backoff.ms.

Fetch sessions (KIP-227; Kafka's clients FetchSessionHandler): with Fetch v7+ each fetcher
keeps one session with its leader. The first fetch is full (epoch 0) and opens it; the next
ones are incremental and list only partitions added or whose fetch offset / log start
offset / leader epoch changed, plus forgotten ones (no longer fetchable: removed, parked,
backing off, truncating). A partition absent from an incremental answer has nothing new.
FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, another top-level error or a lost
connection restart with a full fetch.

Request versions follow inter.broker.protocol.version as Kafka's ReplicaFetcherThread
does (MetadataVersion.fetchRequestVersion / offsetForLeaderEpochRequestVersion /
listOffsetRequestVersion; ``fetcher_request_versions``), clamped to the versions kafkalike
has, and never above what the leader advertised in ApiVersions: IBP 3.9 sends Fetch v12,
OffsetForLeaderEpoch v4, ListOffsets v7; IBP 2.4 sends v11, v3, v5 (all of which
Wireshark 4.0 dissects).

Connections to the leader on the inter-broker listener are ReplicaFetcherBlockingSend (Kafka's
name): one request at a time, its answer read by the fetcher's own task, so the follower's
turnaround (answer in, records appended, next Fetch out) takes one trip through trio's
scheduler; a lost connection backs off and reconnects. A fetcher with no partitions left is
stopped (Kafka's shutdownIdleFetcherThreads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio

from kafkalike.broker.fetch_session import next_epoch
from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.replica_fetcher_blocking_send import ReplicaFetcherBlockingSend
from kafkalike.broker.replication_quota_manager import ReplicationQuotaManager
from kafkalike.protocol.api_keys import SUPPORTED_APIS, ApiKey, request_versions_for_ibp
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.fetch_request import (FetchPartitionFields, FetchRequestFields, FetchTopicFields,
                                              ForgottenTopicFields)
from kafkalike.protocol.record_batch import BATCH_LENGTH_AT, LOG_OVERHEAD
from kafkalike.storage import TopicPartition

if TYPE_CHECKING:
    from kafkalike.broker.partition import Partition

log = structlog.get_logger(__name__)

#: the requests a follower sends its leader
FETCHER_APIS = (ApiKey.FETCH, ApiKey.OFFSET_FOR_LEADER_EPOCH, ApiKey.LIST_OFFSETS)


def fetcher_request_versions(ibp: str | None) -> dict[int, int]:
    """{api key: version} of Fetch, OffsetForLeaderEpoch and ListOffsets that a follower
    sends at inter.broker.protocol.version ``ibp``: Kafka's choice (ReplicaFetcherThread via
    MetadataVersion; e.g. "2.4" -> Fetch 11, OffsetForLeaderEpoch 3, ListOffsets 5) clamped
    into SUPPORTED_APIS (IBP 3.5+ asks Fetch v15, kafkalike stops at v12; an IBP older than
    kafkalike's minimums gets the minimums). None or unparsable: the newest supported."""
    wanted = request_versions_for_ibp(ibp, FETCHER_APIS)
    out = {}
    for api in FETCHER_APIS:
        lo, hi = SUPPORTED_APIS[api]
        out[api] = max(lo, min(hi, wanted.get(api, hi)))
    return out


def complete_batches_length(records: memoryview) -> int:
    """Bytes of ``records`` holding whole batches (a fetch response may end inside one)."""
    pos, n = 0, len(records)
    while pos + LOG_OVERHEAD <= n:
        length = int.from_bytes(records[pos + BATCH_LENGTH_AT:pos + BATCH_LENGTH_AT + 4], "big", signed=True)
        if length <= 0 or pos + LOG_OVERHEAD + length > n:
            break
        pos += LOG_OVERHEAD + length
    return pos


@attrs.frozen
class InterBrokerClientConfig:
    """How this broker opens its own connections to other brokers (replica fetchers, the
    controller channel, controlled shutdown, transaction markers): the client SSLContext
    (``ssl.SSLContext``) when the inter-broker listener is SSL / SASL_SSL, else None; the
    SASL credentials (client.sasl.SaslClientConfig) when it is SASL_PLAINTEXT / SASL_SSL,
    else None. Kafka: the inter-broker listener's ssl.* / sasl.* configs in client mode."""

    ssl_context: Any = None
    sasl: Any = None


@attrs.frozen
class BrokerEndpoint:
    """Where a broker is reached on the inter-broker listener: a follower fetches from its
    leader's (LeaderAndIsr live_leaders, else the metadata cache)."""

    broker_id: int
    host: str
    port: int


@attrs.define
class PartitionFetchState:
    """A followed partition: its leader epoch, whether it still has to truncate, whether it
    is parked (waiting for a new LeaderAndIsr) or backing off until ``delayed_until``."""

    leader_epoch: int
    truncating: bool = True
    parked: bool = False
    delayed_until: float = 0.0
    lag: int = 0  # leader HW - our LEO after the last fetch (MaxLag, broker_metrics)
    caught_up: bool = False  # reached the leader's HW at the last fetch (Kafka's isReplicaInSync)


@attrs.frozen
class FetcherStatistics:
    """Snapshot of one fetcher: source broker, partitions, fetches, bytes, errors."""

    leader_id: int
    partitions: int
    fetches: int
    bytes_fetched: int
    errors: int
    connected: bool


class FetchSessionHandler:
    """The follower's half of a fetch session (Kafka's clients FetchSessionHandler and
    FetchMetadata): ``build(next)`` with {tp: request fields (FetchPartitionFields, compared
    with ``!=``)} the partitions to fetch now
    -> (session_id, session_epoch, partitions to send, forgotten tps);
    ``handle_response(error, session_id)`` after an answer, ``handle_error()`` after a lost
    connection or a failed call. Sans-IO."""

    def __init__(self) -> None:
        self.session_id = 0
        self.epoch = 0  # 0 = full fetch opening a session (INITIAL_EPOCH)
        self.session: dict[TopicPartition, Any] = {}
        self._sent_full = True

    def build(self, wanted: dict[TopicPartition, Any]
              ) -> tuple[int, int, dict[TopicPartition, Any], list[TopicPartition]]:
        if self.epoch == 0:
            self.session = dict(wanted)
            self._sent_full = True
            return self.session_id, 0, dict(wanted), []
        self._sent_full = False
        send = {tp: d for tp, d in wanted.items() if self.session.get(tp) != d}
        forgotten = [tp for tp in self.session if tp not in wanted]
        self.session = dict(wanted)
        return self.session_id, self.epoch, send, forgotten

    def handle_response(self, error: int, session_id: int) -> None:
        if error != ErrorCode.none:
            if error != ErrorCode.fetch_session_id_not_found:
                log.info("fetch_session_error", session_id=self.session_id, epoch=self.epoch,
                         error=ErrorCode(error).name.upper())
            self.reset(keep_id=error != ErrorCode.fetch_session_id_not_found)
        elif session_id == 0:
            self.reset(keep_id=False)  # sessionless answer (no room, or the session closed)
        elif self._sent_full:
            self.session_id, self.epoch = session_id, 1
        else:
            self.epoch = next_epoch(self.epoch)

    def handle_error(self) -> None:
        """Kafka's handleError: the next fetch is full, closing the old session."""
        self.reset(keep_id=True)

    def reset(self, keep_id: bool) -> None:
        if not keep_id:
            self.session_id = 0
        self.epoch = 0
        self.session = {}


class ReplicaFetcher:
    """Pulls every partition this broker follows from one leader broker."""

    def __init__(self, manager: "ReplicaFetcherManager", leader_id: int, host: str, port: int) -> None:
        self.manager = manager
        self.leader_id = leader_id
        self.host = host
        self.port = port
        self.partitions: dict[TopicPartition, PartitionFetchState] = {}
        self.cancel_scope = trio.CancelScope()
        self.wakeup = trio.Event()
        self.done = trio.Event()
        self.conn: Any = None
        self.fetches = 0
        self.bytes_fetched = 0
        self.errors = 0
        self.max_versions = fetcher_request_versions(manager.config["inter.broker.protocol.version"])
        self.session = FetchSessionHandler()

    def statistics(self) -> FetcherStatistics:
        return FetcherStatistics(self.leader_id, len(self.partitions), self.fetches,
                                 self.bytes_fetched, self.errors,
                                 self.conn is not None and not self.conn.closed)

    def _cfg(self, key: str) -> int:
        return int(self.manager.config[key])

    def _version(self, api_key: int) -> int:
        """The IBP's version of ``api_key`` (max_versions), lowered to what the leader serves."""
        return int(self.conn.api_version(api_key, max_version=self.max_versions[api_key]))

    async def run(self) -> None:
        backoff = self._cfg("replica.fetch.backoff.ms") / 1000.0
        try:
            with self.cancel_scope:
                while True:
                    if not self._ready():
                        self.wakeup = trio.Event()
                        with trio.move_on_after(self._next_delay()):
                            await self.wakeup.wait()
                        continue
                    try:
                        if self.conn is None or self.conn.closed:
                            # Kafka's ReplicaFetcherBlockingSend: answers are read in this task
                            self.conn = await ReplicaFetcherBlockingSend.connect(
                                self.host, self.port,
                                client_id=f"broker-{self.manager.broker_id}-fetcher-{self.leader_id}",
                                request_timeout_ms=self._cfg("replica.socket.timeout.ms"),
                                connect_timeout_ms=self._cfg("replica.socket.timeout.ms"),
                                ssl_context=self.manager.inter_broker.ssl_context,
                                sasl=self.manager.inter_broker.sasl)
                        if any(s.truncating and not s.parked for s in self.partitions.values()):
                            await self._truncate()
                        else:
                            await self._fetch()
                    except trio.Cancelled:
                        raise
                    except Exception as exc:
                        self.errors += 1
                        log.info("replica_fetch_failed", leader=self.leader_id, host=self.host,
                                 port=self.port, error=str(exc))
                        self.session.handle_error()
                        if self.conn is not None:
                            await self.conn.aclose()
                            self.conn = None
                        await trio.sleep(backoff)
        finally:
            if self.conn is not None:
                with trio.CancelScope(shield=True):
                    await self.conn.aclose()
            self.done.set()

    def _ready(self) -> bool:
        now = trio.current_time()
        return any(not s.parked and s.delayed_until <= now for s in self.partitions.values())

    def _next_delay(self) -> float:
        now = trio.current_time()
        waits = [s.delayed_until - now for s in self.partitions.values()
                 if not s.parked and s.delayed_until > now]
        return max(0.01, min(waits)) if waits else 3600.0

    def _delay(self, tp: TopicPartition) -> None:
        state = self.partitions.get(tp)
        if state is not None:
            state.delayed_until = trio.current_time() + self._cfg("replica.fetch.backoff.ms") / 1000.0

    # ------------------------------------------------------------------ truncation
    async def _truncate(self) -> None:
        """One OffsetsForLeaderEpoch round for the partitions still truncating."""
        wanted: dict[TopicPartition, tuple[PartitionFetchState, int]] = {}
        for tp, state in self.partitions.items():
            p = self.manager.get_partition(tp)
            if not state.truncating or state.parked or p is None:
                continue
            latest = p.log.leader_epoch_cache.latest_epoch
            if latest is None:
                self._finish_truncation(tp, state, p.high_watermark, "no local leader epoch: high watermark")
                continue
            wanted[tp] = (state, latest)
        if not wanted:
            return
        topics: dict[str, list[dict[str, int]]] = {}
        for tp, (state, epoch) in wanted.items():
            topics.setdefault(tp.topic, []).append(
                {"partition": tp.partition, "current_leader_epoch": state.leader_epoch, "leader_epoch": epoch})
        response = await self.conn.call(
            ApiKey.OFFSET_FOR_LEADER_EPOCH, api_version=self._version(ApiKey.OFFSET_FOR_LEADER_EPOCH),
            replica_id=self.manager.broker_id,
            topics=[{"topic": t, "partitions": parts} for t, parts in topics.items()])
        for t in response.topics:
            for r in t.partitions:
                tp = TopicPartition(t.topic, r.partition)
                entry = wanted.get(tp)
                if entry is None or self.partitions.get(tp) is not entry[0]:
                    continue  # removed or re-added meanwhile
                state, requested = entry
                p = self.manager.get_partition(tp)
                if p is None:
                    continue
                if r.error_code != ErrorCode.none:
                    self._on_partition_error(tp, ErrorCode(r.error_code), "OffsetsForLeaderEpoch")
                    continue
                leo = p.log_end_offset
                if r.end_offset < 0:
                    self._finish_truncation(tp, state, p.high_watermark, "leader does not know the epoch")
                elif r.leader_epoch < 0:
                    self._finish_truncation(tp, state, min(r.end_offset, leo), "leader end offset")
                else:
                    f_epoch, f_end = p.log.end_offset_for_epoch(r.leader_epoch)
                    if f_end < 0:
                        self._finish_truncation(tp, state, min(r.end_offset, leo), "leader end offset")
                    elif f_epoch != r.leader_epoch:
                        target = min(f_end, leo)
                        self._truncate_log(p, target)
                        log.info("follower_truncated_intermediate", partition=str(tp), offset=target,
                                 requested_epoch=requested, leader_epoch=r.leader_epoch)
                    else:
                        self._finish_truncation(tp, state, min(f_end, r.end_offset, leo),
                                                f"epoch {r.leader_epoch} ends at {r.end_offset} on the leader")

    def _truncate_log(self, p: Any, target: int) -> None:
        p.truncate_to(target)

    def _finish_truncation(self, tp: TopicPartition, state: PartitionFetchState, target: int, why: str) -> None:
        p = self.manager.get_partition(tp)
        if p is None:
            return
        before = p.log_end_offset
        self._truncate_log(p, max(0, target))
        state.truncating = False
        log.info("follower_truncated", partition=str(tp), leader=self.leader_id, offset=target,
                 log_end_offset_before=before, log_end_offset=p.log_end_offset, reason=why)

    # ------------------------------------------------------------------ fetching
    async def _fetch(self) -> None:
        now = trio.current_time()
        states = {tp: s for tp, s in self.partitions.items()
                  if not s.truncating and not s.parked and s.delayed_until <= now}
        wanted: dict[TopicPartition, FetchPartitionFields] = {}
        max_bytes = self._cfg("replica.fetch.max.bytes")
        quota = self.manager.quota
        for tp, state in states.items():
            p = self.manager.get_partition(tp)
            if p is None:
                continue
            if quota is not None and quota.should_throttle(tp, state.caught_up):
                continue  # KIP-73: follower throttle exceeded, this partition waits
            wanted[tp] = FetchPartitionFields(tp.partition, state.leader_epoch, p.log_end_offset, -1,
                                              p.log.log_start_offset, max_bytes)
        if not wanted:
            # nothing to fetch (all throttled): Kafka's fetcher waits replica.fetch.backoff.ms
            await trio.sleep(0.01 if quota is None or not states else self._cfg("replica.fetch.backoff.ms") / 1000.0)
            return
        version = self._version(ApiKey.FETCH)
        if version >= 7:
            session_id, epoch, send, forgotten = self.session.build(wanted)
        else:
            session_id, epoch, send, forgotten = 0, -1, wanted, []
        # plain records, not kio entities: this runs right after the broker sat idle, where
        # every object built costs several times its warm cost (docs/benchmarks.md, "Cold paths")
        topics: dict[str, list[FetchPartitionFields]] = {}
        for tp, fields in send.items():
            topics.setdefault(tp.topic, []).append(fields)
        forgotten_topics: dict[str, list[int]] = {}
        for tp in forgotten:
            forgotten_topics.setdefault(tp.topic, []).append(tp.partition)
        wait_ms = self._cfg("replica.fetch.wait.max.ms")
        response = await self.conn.send_fetch(
            FetchRequestFields(
                replica_id=self.manager.broker_id, max_wait_ms=wait_ms,
                min_bytes=self._cfg("replica.fetch.min.bytes"),
                max_bytes=self._cfg("replica.fetch.response.max.bytes"), isolation_level=0,
                session_id=session_id, session_epoch=epoch,
                topics=tuple(FetchTopicFields(t, tuple(ps)) for t, ps in topics.items()),
                forgotten_topics_data=tuple(ForgottenTopicFields(t, tuple(ps)) for t, ps in forgotten_topics.items())),
            version, timeout_ms=self._cfg("replica.socket.timeout.ms") + wait_ms)
        self.fetches += 1
        if version >= 7:
            self.session.handle_response(response.error_code, response.session_id)
        for t in response.responses:
            for d in t.partitions:
                tp = TopicPartition(t.topic, d.partition_index)
                state = states.get(tp)
                if state is None or self.partitions.get(tp) is not state or tp not in wanted:
                    continue
                p = self.manager.get_partition(tp)
                if p is None or p.is_leader:
                    continue
                if d.error_code != ErrorCode.none:
                    if d.error_code == ErrorCode.offset_out_of_range:
                        await self._handle_out_of_range(tp, p)
                    else:
                        self._on_partition_error(tp, ErrorCode(d.error_code), "Fetch")
                    continue
                records = d.records
                if records is not None and len(records):
                    records = records[:complete_batches_length(records)]
                    self.bytes_fetched += len(records)
                    if quota is not None and quota.is_throttled(tp):
                        quota.record(len(records))
                try:
                    p.append_records_to_follower(records, d.high_watermark)
                    state.lag = max(0, d.high_watermark - p.log_end_offset)
                    state.caught_up = state.lag == 0
                    # DeleteRecords / retention on the leader: follow its log start offset
                    # (Kafka's ReplicaFetcherThread: log.maybeIncrementLogStartOffset)
                    leader_start = d.log_start_offset  # -1 before Fetch v5
                    if leader_start > p.log.log_start_offset:
                        p.maybe_increment_log_start_offset(leader_start)
                except Exception as exc:
                    self.errors += 1
                    log.warning("follower_append_failed", partition=str(tp), error=str(exc))
                    self._delay(tp)
                    continue

    async def _handle_out_of_range(self, tp: TopicPartition, p: Any) -> None:
        """Kafka's handleOutOfRangeError: follow the leader's LEO down, or restart at its log
        start offset when the follower fell behind retention."""
        response = await self.conn.call(
            ApiKey.LIST_OFFSETS, api_version=self._version(ApiKey.LIST_OFFSETS),
            replica_id=self.manager.broker_id,
            isolation_level=0,
            topics=[{"name": tp.topic, "partitions": [
                {"partition_index": tp.partition, "timestamp": -1, "current_leader_epoch": -1},
            ]}])
        latest = response.topics[0].partitions[0]
        if latest.error_code != ErrorCode.none:
            self._on_partition_error(tp, ErrorCode(latest.error_code), "ListOffsets")
            return
        if latest.offset < p.log_end_offset:
            p.truncate_to(latest.offset)
            log.warning("follower_truncated_to_leader_end", partition=str(tp), offset=latest.offset)
            return
        response = await self.conn.call(
            ApiKey.LIST_OFFSETS, api_version=self._version(ApiKey.LIST_OFFSETS),
            replica_id=self.manager.broker_id,
            isolation_level=0,
            topics=[{"name": tp.topic, "partitions": [
                {"partition_index": tp.partition, "timestamp": -2, "current_leader_epoch": -1},
            ]}])
        earliest = response.topics[0].partitions[0]
        if earliest.error_code == ErrorCode.none:
            p.truncate_fully_and_start_at(earliest.offset)
            log.warning("follower_restarted_at_leader_log_start", partition=str(tp), offset=earliest.offset)

    def _on_partition_error(self, tp: TopicPartition, error: ErrorCode, api: str) -> None:
        self.errors += 1
        state = self.partitions.get(tp)
        if state is None:
            return
        if error in (ErrorCode.fenced_leader_epoch, ErrorCode.not_leader_or_follower):
            log.info("follower_partition_parked", partition=str(tp), api=api, error=error.name.upper())
            state.parked = error == ErrorCode.fenced_leader_epoch
            if not state.parked:
                self._delay(tp)
        else:
            log.info("follower_partition_error", partition=str(tp), api=api, error=error.name.upper())
            self._delay(tp)


class ReplicaFetcherManager:
    """One ReplicaFetcher per source broker (num.replica.fetchers = 1); Kafka's
    ReplicaFetcherManager, created by the ReplicaManager.

    Receives: ``broker_id`` (the replica id its fetches carry), ``config`` (the broker's
    KafkaConfig: replica.* keys and inter.broker.protocol.version),
    ``get_partition`` (tp -> the hosted Partition or None: where fetched batches are
    appended), ``nursery`` (where fetcher tasks run), ``inter_broker`` (SSL / SASL of the
    connections to leaders) and ``quota`` (the follower ReplicationQuotaManager: throttled
    partitions that have not caught up skip fetches while it is exceeded; KIP-73)."""

    def __init__(self, broker_id: int, config: KafkaConfig,
                 get_partition: Callable[[TopicPartition], "Partition | None"], nursery: trio.Nursery,
                 inter_broker: InterBrokerClientConfig, quota: ReplicationQuotaManager | None = None) -> None:
        self.broker_id = broker_id
        self.quota = quota  # the follower replication quota (KIP-73), None = never throttled
        self.config = config
        self.get_partition = get_partition
        self.nursery = nursery
        self.inter_broker = inter_broker
        self.fetchers: dict[int, ReplicaFetcher] = {}

    def add_fetchers(self, partitions: dict[TopicPartition, BrokerEndpoint]) -> None:
        """Start following each tp from its leader's endpoint; it truncates first."""
        for tp, leader in partitions.items():
            leader_id, host, port = leader.broker_id, leader.host, leader.port
            fetcher = self.fetchers.get(leader_id)
            if fetcher is not None and (fetcher.host, fetcher.port) != (host, port):
                fetcher.cancel_scope.cancel()
                fetcher = None
            if fetcher is None:
                fetcher = ReplicaFetcher(self, leader_id, host, port)
                self.fetchers[leader_id] = fetcher
                self.nursery.start_soon(self._run, fetcher)
            p = self.get_partition(tp)
            fetcher.partitions[tp] = PartitionFetchState(leader_epoch=p.leader_epoch if p else -1)
            fetcher.wakeup.set()
            log.info("follower_fetch_added", partition=str(tp), leader=leader_id)

    async def _run(self, fetcher: ReplicaFetcher) -> None:
        try:
            await fetcher.run()
        finally:
            if self.fetchers.get(fetcher.leader_id) is fetcher:
                del self.fetchers[fetcher.leader_id]

    async def remove_fetchers(self, tps: list[TopicPartition]) -> None:
        """Stop following ``tps``; fetchers left without partitions are stopped."""
        wanted = set(tps)
        for leader_id, fetcher in list(self.fetchers.items()):
            for tp in wanted & set(fetcher.partitions):
                del fetcher.partitions[tp]
            if not fetcher.partitions:
                fetcher.cancel_scope.cancel()
                del self.fetchers[leader_id]

    async def shutdown(self) -> None:
        for fetcher in list(self.fetchers.values()):
            fetcher.cancel_scope.cancel()
        for fetcher in list(self.fetchers.values()):
            with trio.move_on_after(5):
                await fetcher.done.wait()
        self.fetchers.clear()

    def statistics(self) -> list[FetcherStatistics]:
        return [f.statistics() for f in self.fetchers.values()]
