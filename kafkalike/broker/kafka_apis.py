"""KafkaApis: decode each request frame, dispatch it by API key, encode the response
(Kafka's kafka.server.KafkaApis).

Handlers are ``async def handler(header, request, conn) -> response | None``: ``response``
is the kio (or in-project) response entity of the request's version, or a ready chunk list;
None means no response (Produce with acks=0). Components register their handlers with
``register(api_key, handler)`` — the replica manager for Produce/Fetch/ListOffsets, the
group coordinator for the group APIs, and so on — so this module stays the dispatch table
plus the handlers that belong to no component (ApiVersions, Metadata, UpdateMetadata,
DescribeCluster) and the thin request/response translation of the replica manager's APIs
(Produce, Fetch, ListOffsets, OffsetForLeaderEpoch, LeaderAndIsr, StopReplica) and the
admin manager's (CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
AlterConfigs, IncrementalAlterConfigs): decode the kio entity into plain values, call the
component (the ReplicaManager / ZkAdminManager KafkaApis was built with), build the response
of the request's version with ``build()``.

Which versions are served is the broker property ``kafkalike.api.versions``: ``latest``
(SUPPORTED_APIS) or ``wireshark-4.0`` (TSHARK_COMPATIBLE_APIS, docs/protocol.md
"Wireshark"); ApiVersions advertises that table and requests outside it are refused.

Bad requests never crash the broker: an unknown API key, an unsupported version (other than
ApiVersions, which gets the KIP-511 fallback answer listing the same table) or a malformed
body closes that one connection with one log line, as Kafka does.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio

from kafkalike.broker import request_hops
from kafkalike.broker.broker_metrics import BrokerTopicStats, RequestStats
from kafkalike.broker.delayed_fetch import FetchPartitionInfo
from kafkalike.broker.describe_producers import active_producer_state
from kafkalike.broker.fetch_session import FetchManager, FetchRequestPartition
from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.metadata_cache import MetadataCache, MetadataSnapshot
from kafkalike.broker.partition import PartitionState
from kafkalike.broker.replica_fetcher import BrokerEndpoint
from kafkalike.broker.replica_manager import (NO_EPOCH, ReplicaManager, ReplicaStateChange, StopReplicaPartition,
                                              TxnMarkerEntry)
from kafkalike.broker.socket_server import CloseConnection, ConnectionContext
from kafkalike.broker.zk_admin_manager import ZkAdminManager
from kafkalike.controller.state_change_logger import (
    StateChangeLogger,
    log_leader_and_isr_handled,
    log_leader_and_isr_received,
    log_stop_replica_received,
)
from kafkalike.coordination import zk_data as zd
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import (
    RequestHeader,
    api_versions_response,
    encode_api_versions_fallback,
    encode_response_body,
    encode_response_chunks,
    frame_response_body,
    parse_request,
)
from kafkalike.protocol.leader_and_isr import (LeaderAndIsrPartitionError, LeaderAndIsrResponse,
                                               LeaderAndIsrTopicError)
from kafkalike.protocol.stop_replica import StopReplicaPartitionError, StopReplicaResponse
from kafkalike.protocol.errors import (
    ErrorCode,
    MalformedFrameError,
    UnknownApiKeyError,
    UnsupportedVersionError,
)

from kafkalike.protocol.entities import (AUTHORIZED_OPERATIONS_OMITTED, build, duration_ms, entity,
                                         response_class_for)
from kafkalike.storage import TopicPartition
from kafkalike.storage.log_manager import LogManager

if TYPE_CHECKING:
    from kafkalike.controller.kafka_controller import KafkaController

log = structlog.get_logger(__name__)

Handler = Callable[[RequestHeader, Any, ConnectionContext], Awaitable[Any]]


#: request frames larger than this (bytes) are decoded, and their answers encoded, in a worker
#: thread (``KafkaApis.handle``), Produce excepted (its records are never decoded on any path): a
#: 10,000-partition LeaderAndIsr or UpdateMetadata takes 0.1-0.3 s to decode, which on the event
#: loop is 0.1-0.3 s in which no other request is served (Kafka decodes on its network
#: threads, not where requests wait for one another)
OFF_LOOP_FRAME_BYTES = 64 * 1024

#: a LeaderAndIsr needing this many new logs or more has them created in a worker thread
#: (KafkaApis._new_logs_created_off_loop), LOGS_PER_THREAD_CALL per call (~1.5 ms each here: a
#: shutdown waits for at most one call). Fewer are created by the replica manager on the loop,
#: yielding every 20 ms: a worker thread's file calls each wait for the GIL, and while the loop
#: is busy with Python work that wait is up to the switch interval (5 ms) per call, which made
#: a 600-log LeaderAndIsr take 20+ s in tests/broker/test_leader_and_isr_yields.py
LOGS_OFF_LOOP_MIN = 1000
LOGS_PER_THREAD_CALL = 64


def _api_key_of(frame: memoryview) -> int:
    """The request header's api key (the frame's first two bytes, big-endian); -1 if shorter."""
    return int.from_bytes(frame[:2], "big", signed=True) if len(frame) >= 2 else -1


class KafkaApis:
    """Request dispatch for one broker. ``handle`` is the SocketServer's RequestHandler.

    Built last by KafkaServer.startup, from the components its handlers call (Kafka's
    KafkaApis is built the same way): ``config`` (kafkalike.api.versions,
    auto.create.topics.enable), ``broker_id``, ``cluster_id`` (Metadata, DescribeCluster),
    ``metadata_cache``, ``log_manager`` (logs of a big LeaderAndIsr created in worker threads),
    ``replica_manager``, ``fetch_manager`` (fetch sessions), ``admin_manager``, ``controller``
    (ElectLeaders), ``auto_create_topic`` (topic -> the error to answer meanwhile:
    AutoTopicCreationManager.create_topic) and ``on_metadata_update`` (called after each
    UpdateMetadata with the partitions it deleted). Other components add their handlers
    with ``register``."""

    def __init__(self, config: KafkaConfig, broker_id: int, cluster_id: str | None, *,
                 metadata_cache: MetadataCache, log_manager: LogManager, replica_manager: ReplicaManager,
                 fetch_manager: FetchManager, admin_manager: ZkAdminManager, controller: "KafkaController",
                 auto_create_topic: Callable[[str], Awaitable[int]],
                 on_metadata_update: Callable[[list[zd.TopicPartition]], Awaitable[None]],
                 state_change_logger: StateChangeLogger | None = None) -> None:
        self.config = config
        #: the broker's state-change.log lines for LeaderAndIsr / StopReplica (Kafka's ReplicaManager's)
        self.state_change_logger = state_change_logger or StateChangeLogger(broker_id, in_controller_context=False)
        self.broker_id = broker_id
        self.cluster_id = cluster_id
        self.metadata_cache = metadata_cache
        self.log_manager = log_manager
        self.replica_manager = replica_manager
        self.fetch_manager = fetch_manager
        self.admin_manager = admin_manager
        self.controller = controller
        self.auto_create_topic = auto_create_topic
        self.on_metadata_update = on_metadata_update
        #: {api key: (min, max)} served: kafkalike.api.versions (KafkaConfig.api_versions)
        self.supported: dict[int, tuple[int, int]] = config.api_versions
        #: (version, listener, cluster id) -> (MetadataCache.updates, encoded all-topics Metadata body)
        self._all_topics_metadata: dict[tuple[int, str, str | None], tuple[int, bytes]] = {}
        self._all_topics_metadata_lock = trio.Lock()
        #: counters read by broker_metrics at scrape time (RequestMetrics, BrokerTopicMetrics)
        self.request_stats, self.topic_stats = RequestStats(), BrokerTopicStats()
        #: kafkalike.debug.request.hops: a request_hops line per Produce/Fetch (broker/request_hops.py)
        self.request_hops: bool = bool(config["kafkalike.debug.request.hops"])
        self.handlers: dict[int, Handler] = {
            ApiKey.API_VERSIONS: self.handle_api_versions,
            ApiKey.METADATA: self.handle_metadata,
            ApiKey.UPDATE_METADATA: self.handle_update_metadata,
            ApiKey.DESCRIBE_CLUSTER: self.handle_describe_cluster,
            ApiKey.PRODUCE: self.handle_produce,
            ApiKey.FETCH: self.handle_fetch,
            ApiKey.LIST_OFFSETS: self.handle_list_offsets,
            ApiKey.DELETE_RECORDS: self.handle_delete_records,
            ApiKey.OFFSET_FOR_LEADER_EPOCH: self.handle_offset_for_leader_epoch,
            ApiKey.DESCRIBE_LOG_DIRS: self.handle_describe_log_dirs,
            ApiKey.ALTER_REPLICA_LOG_DIRS: self.handle_alter_replica_log_dirs,
            ApiKey.LEADER_AND_ISR: self.handle_leader_and_isr,
            ApiKey.STOP_REPLICA: self.handle_stop_replica,
            ApiKey.CREATE_TOPICS: self.handle_create_topics,
            ApiKey.DELETE_TOPICS: self.handle_delete_topics,
            ApiKey.CREATE_PARTITIONS: self.handle_create_partitions,
            ApiKey.DESCRIBE_CONFIGS: self.handle_describe_configs,
            ApiKey.ALTER_CONFIGS: self.handle_alter_configs,
            ApiKey.INCREMENTAL_ALTER_CONFIGS: self.handle_incremental_alter_configs,
            ApiKey.DESCRIBE_PRODUCERS: self.handle_describe_producers,
            ApiKey.WRITE_TXN_MARKERS: self.handle_write_txn_markers,
            ApiKey.ELECT_LEADERS: self.handle_elect_leaders,
        }

    def register(self, api_key: int, handler: Handler) -> None:
        """Route ``api_key`` to ``handler`` (replaces any earlier one)."""
        self.handlers[api_key] = handler

    async def handle(self, frame: memoryview, conn: ConnectionContext) -> Sequence[Any] | None:
        """Serve one request frame; returns response chunks or None (see module doc).

        Raises CloseConnection for an unknown API key, an unsupported version of anything
        but ApiVersions (versions outside ``self.supported``, the kafkalike.api.versions
        table), a malformed request, or an API no component serves yet.

        A frame over ``OFF_LOOP_FRAME_BYTES`` (not Produce) is decoded, and its answer
        encoded, in a worker thread, so that one big controller or admin request does not
        hold the event loop (the bytes and the immutable entities are shared with nothing).
        """
        off_loop = len(frame) > OFF_LOOP_FRAME_BYTES and _api_key_of(frame) != ApiKey.PRODUCE
        try:
            if off_loop:  # a big controller or admin request: decoded while the loop serves others
                header, request = await trio.to_thread.run_sync(parse_request, frame, self.supported)
            else:
                header, request = parse_request(frame, self.supported)
        except UnsupportedVersionError as exc:
            if exc.api_key == ApiKey.API_VERSIONS:
                return [encode_api_versions_fallback(exc.correlation_id, self.supported)]
            raise CloseConnection(f"unsupported version: {exc}") from None
        except UnknownApiKeyError as exc:
            raise CloseConnection(f"unknown api key: {exc}") from None
        except MalformedFrameError as exc:
            raise CloseConnection(f"malformed request: {exc}") from None
        handler = self.handlers.get(header.api_key)
        if handler is None:
            raise CloseConnection(f"{header.api_name} is not served by this broker yet")
        if self.request_hops and header.api_key in (ApiKey.PRODUCE, ApiKey.FETCH):
            request_hops.begin(header.api_name, "produce" if header.api_key == ApiKey.PRODUCE else
                               "follower" if request.replica_id >= 0 else "consumer", conn.received_ns, conn.written_ns)
        started = perf_counter()
        if header.api_key == ApiKey.LEADER_AND_ISR:
            async with self._new_logs_created_off_loop(request):
                response = await handler(header, request, conn)
        else:
            response = await handler(header, request, conn)
        self.request_stats.record(header.api_key, (perf_counter() - started) * 1000.0)
        if response is None:
            return None
        if isinstance(response, list):
            return response
        if off_loop:  # its answer is as big (a LeaderAndIsr's or StopReplica's per-partition errors)
            return await trio.to_thread.run_sync(encode_response_chunks, header, response)
        return encode_response_chunks(header, response)

    @contextlib.asynccontextmanager
    async def _new_logs_created_off_loop(self, request: Any) -> AsyncIterator[None]:
        """Around a LeaderAndIsr: create the logs it will need (partitions naming this broker
        as a replica, with no log here yet) in a worker thread, LOGS_PER_THREAD_CALL at a time,
        before the replica manager handles it; the replica manager's get_or_create_log then
        takes them (LogManager "Creation in a worker thread"). The ones it did not take (a
        stale request, a partition refused) are removed afterwards. Fewer than
        LOGS_OFF_LOOP_MIN new logs are left to the replica manager, as before."""
        lm, rm = self.log_manager, self.replica_manager
        me = self.broker_id
        states = ([(t.topic_name, p) for t in request.topic_states for p in t.partition_states]
                  or [(p.topic_name, p) for p in request.ungrouped_partition_states])
        wanted = [TopicPartition(topic, p.partition_index) for topic, p in states if me in p.replicas]
        new = [tp for tp in wanted if lm.get_log(tp) is None]
        if len(new) < LOGS_OFF_LOOP_MIN:
            yield
            return
        configs: dict[str, Any] = {}
        base = None  # the broker's defaults, built once (10,000 topics: 10,000 alike)
        for tp in new:
            if tp.topic not in configs:
                if rm.topic_configs.get(tp.topic):
                    configs[tp.topic] = rm.log_config_for(tp.topic)
                else:
                    base = base if base is not None else rm.log_config_for(tp.topic)
                    configs[tp.topic] = base
        planned: list[TopicPartition] = []
        for i in range(0, len(new), LOGS_PER_THREAD_CALL):
            await trio.sleep(0)  # planning 10,000 is a few hundred ms: one chunk per loop step
            chunk = lm.plan_new_logs((tp, configs[tp.topic]) for tp in new[i:i + LOGS_PER_THREAD_CALL])
            planned.extend(plan.tp for plan in chunk)
            try:
                made = await trio.to_thread.run_sync(lm.create_planned_logs, chunk)
            except BaseException:
                lm.forget_planned(chunk)
                raise
            lm.add_prepared(made)
        # a request cancelled here or in the handler (its connection closed: the controller
        # timed out and will send it again) keeps what is prepared for the next one to take
        yield
        unused = lm.pop_prepared(planned)  # refused partitions, a stale request
        if unused:
            lm.schedule_removal(await trio.to_thread.run_sync(lm.remove_unused_logs, unused))

    # ------------------------------------------------------------------ ApiVersions
    async def handle_api_versions(self, header: RequestHeader, request: Any,
                                  conn: ConnectionContext) -> Any:
        """ApiVersions v0-v3: the broker's version table (``self.supported``: SUPPORTED_APIS,
        or TSHARK_COMPATIBLE_APIS with kafkalike.api.versions=wireshark-4.0)."""
        return api_versions_response(header.api_version, self.supported)

    # ------------------------------------------------------------------ Metadata
    async def handle_metadata(self, header: RequestHeader, request: Any,
                              conn: ConnectionContext) -> Any:
        """Metadata v0-v12 from the metadata cache (Kafka protocol guide, Metadata).

        Unknown topics: auto-created when auto.create.topics.enable and the request allows it
        (v4+ allow_auto_topic_creation), answered LEADER_NOT_AVAILABLE meanwhile; otherwise
        UNKNOWN_TOPIC_OR_PARTITION. A partition whose leader is not alive: LEADER_NOT_AVAILABLE.
        Brokers are listed with their endpoint on the listener the request came on. Every
        topic named is auto-created, as Kafka does (10,000 names: 10,000 topics).

        Scale: the answer is built from an immutable MetadataSnapshot, in a worker
        thread when it names more than METADATA_INLINE_TOPICS topics, so the event loop keeps
        serving other connections; the encoded all-topics answer is kept per (version,
        listener) until the next UpdateMetadata (Kafka serves it from its MetadataSnapshot).
        Returns the ready frame.
        """
        cache = self.metadata_cache
        requested: list[str] | None
        if request.topics is None or (header.api_version == 0 and not request.topics):
            requested = None
        else:
            requested = [t.name for t in request.topics if t.name is not None]
        if requested is None:
            key = (header.api_version, conn.listener_name, self.cluster_id)
            cached = self._all_topics_metadata.get(key)
            if cached is None or cached[0] != cache.updates:
                async with self._all_topics_metadata_lock:  # clients refreshing at once: built once
                    cached = self._all_topics_metadata.get(key)
                    if cached is None or cached[0] != cache.updates:
                        snap = cache.snapshot()
                        body = await self._metadata_body(request, header.api_version, snap, None, {},
                                                         conn.listener_name)
                        if any(gen != snap.generation for gen, _ in self._all_topics_metadata.values()):
                            self._all_topics_metadata.clear()  # an older cache's answers: never served again
                        cached = self._all_topics_metadata[key] = (snap.generation, body)
            return [frame_response_body(header, cached[1])]

        errors: dict[str, int] = {}
        allow_auto = (getattr(request, "allow_auto_topic_creation", True)
                      and self.config["auto.create.topics.enable"])
        unknown = [name for name in dict.fromkeys(requested) if not cache.contains_topic(name)]
        if unknown and allow_auto:
            await self._auto_create(unknown, errors)
        else:
            errors.update((name, ErrorCode.unknown_topic_or_partition) for name in unknown)
        body = await self._metadata_body(request, header.api_version, cache.snapshot(requested), requested,
                                         errors, conn.listener_name)
        return [frame_response_body(header, body)]

    async def _auto_create(self, names: list[str], errors: dict[str, int]) -> None:
        """Auto-create ``names`` (Kafka creates every unknown topic a Metadata request names),
        AUTO_CREATE_IN_FLIGHT at a time so that their ZooKeeper round trips overlap instead of
        queueing one after another (10,000 names took minutes one by one); ``errors[name]`` gets
        each creation's answer (LEADER_NOT_AVAILABLE while it comes up, or why not)."""
        create = self.auto_create_topic
        pending = iter(names)

        async def worker() -> None:
            for name in pending:  # shared iterator: each name goes to one worker
                errors[name] = await create(name)

        async with trio.open_nursery() as nursery:
            for _ in range(min(AUTO_CREATE_IN_FLIGHT, len(names))):
                nursery.start_soon(worker)

    async def _metadata_body(self, request: Any, version: int, snap: MetadataSnapshot, names: list[str] | None,
                             errors: dict[str, int], listener: str) -> bytes:
        """The encoded Metadata response body; in a worker thread for big answers (the inputs
        are immutable: a snapshot, fresh lists)."""
        work = functools.partial(_encode_metadata, response_class_for(request), version, snap, names, errors,
                                 listener, self.cluster_id)
        if len(snap.topics) <= METADATA_INLINE_TOPICS and (names is None or len(names) <= METADATA_INLINE_TOPICS):
            return work()
        return await trio.to_thread.run_sync(work)

    # ------------------------------------------------------------------ UpdateMetadata
    async def handle_update_metadata(self, header: RequestHeader, request: Any,
                                     conn: ConnectionContext) -> Any:
        """UpdateMetadata v0-v7 from the controller: STALE_CONTROLLER_EPOCH for an older
        controller (the same controller epoch LeaderAndIsr and StopReplica are fenced by,
        kept in ReplicaManager as Kafka keeps it), STALE_BROKER_EPOCH for a request meant for
        an earlier registration of this broker; otherwise the cache is replaced (Kafka's
        KafkaApis.handleUpdateMetadataRequest, ReplicaManager.maybeUpdateMetadataCache)."""
        from kafkalike.protocol.update_metadata import UpdateMetadataResponse

        rm = self.replica_manager
        async with rm.state_change_lock:
            stale = rm.fence_controller_request("UpdateMetadata", request.controller_epoch,
                                                _broker_epoch(request, header.api_version, since=5))
            if stale is not None:
                return UpdateMetadataResponse(error_code=stale.value)
            deleted = self.metadata_cache.update(request, header.api_version)
            await self.on_metadata_update(deleted)
        return UpdateMetadataResponse(error_code=0)

    # ------------------------------------------------------------------ DescribeCluster
    async def handle_describe_cluster(self, header: RequestHeader, request: Any,
                                      conn: ConnectionContext) -> Any:
        """DescribeCluster v0-v1 (KIP-700): brokers on this listener, cluster id, controller."""
        cache = self.metadata_cache
        resp_cls = response_class_for(request)
        broker_cls = entity(resp_cls, "DescribeClusterBroker")
        brokers = []
        for node in cache.brokers.values():
            ep = node.endpoints.get(conn.listener_name)
            if ep is not None:
                brokers.append(build(broker_cls, broker_id=node.id, host=ep[0], port=ep[1], rack=node.rack))
        return build(resp_cls, error_code=ErrorCode.none, error_message=None, endpoint_type=1,
                     cluster_id=self.cluster_id or "",
                     controller_id=cache.controller_id if cache.controller_id is not None else -1,
                     brokers=tuple(brokers), cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED)

    # ------------------------------------------------------------------ replica manager APIs
    async def handle_produce(self, header: RequestHeader, request: Any,
                             conn: ConnectionContext) -> Any:
        """Produce v3-v9 (Kafka protocol guide, Produce): records stay memoryviews of the frame
        and are appended with offsets patched in place. acks=0 gets no response; if any
        partition failed, the connection is closed instead (Kafka's way of telling an acks=0
        producer). Unknown topics trigger auto-creation when enabled. Internal topics
        (__consumer_offsets) answer INVALID_TOPIC_EXCEPTION unless the client id is
        "__admin_client" (Kafka's rule). Every record is validated before the append (Kafka's
        LogValidator, kafkalike.storage.log_validator): INVALID_RECORD / CORRUPT_MESSAGE with
        error_message (v8+) and, for records refused one by one, record_errors (v8+, KIP-467)."""
        rm = self.replica_manager
        entries: list[tuple[TopicPartition, Any]] = []
        for t in request.topic_data:
            for p in t.partition_data:
                entries.append((TopicPartition(t.name, p.index), p.records))
        statuses = await rm.append_records(request.acks, duration_ms(request.timeout), entries,
                                           internal_topics_allowed=header.client_id == "__admin_client",
                                           transactional_id=request.transactional_id)
        unknown = {tp.topic for tp, s in statuses.items()
                   if s.error == ErrorCode.unknown_topic_or_partition}
        for tp, records in entries:  # BytesIn/MessagesIn, once per appended partition
            if (s := statuses[tp]).error == ErrorCode.none and s.required_offset > s.base_offset >= 0:
                self.topic_stats.record_in(tp.topic, len(records), s.required_offset - s.base_offset)
        for topic in sorted(unknown):
            await self._maybe_auto_create(topic)
        if request.acks == 0:
            failed = [f"{tp}: {s.error.name.upper()}" for tp, s in statuses.items()
                      if s.error != ErrorCode.none]
            if failed:
                raise CloseConnection(f"acks=0 produce failed ({', '.join(failed[:5])})")
            return None
        resp_cls = response_class_for(request)
        topic_cls = entity(resp_cls, "TopicProduceResponse")
        part_cls = entity(resp_cls, "PartitionProduceResponse")
        record_error_cls = getattr(sys.modules[resp_cls.__module__], "BatchIndexAndErrorMessage", None)
        by_topic: dict[str, list[Any]] = {}
        for tp, s in statuses.items():
            record_errors = () if record_error_cls is None else tuple(
                build(record_error_cls, batch_index=e.batch_index, batch_index_error_message=e.message)
                for e in s.record_errors)
            by_topic.setdefault(tp.topic, []).append(build(
                part_cls, index=tp.partition, error_code=s.error, base_offset=s.base_offset,
                log_append_time=_datetime_or_none(s.log_append_time_ms),
                log_start_offset=s.log_start_offset, record_errors=record_errors,
                error_message=s.error_message if s.error != ErrorCode.none else None))
        return build(resp_cls, responses=tuple(
            build(topic_cls, name=name, partition_responses=tuple(parts))
            for name, parts in by_topic.items()))

    async def _maybe_auto_create(self, topic: str) -> None:
        if self.config["auto.create.topics.enable"]:
            try:
                await self.auto_create_topic(topic)
            except Exception as exc:  # never fail the request because of auto-creation
                log.warning("auto_create_failed", topic=topic, error=str(exc))

    async def handle_fetch(self, header: RequestHeader, request: Any,
                           conn: ConnectionContext) -> Any:
        """Fetch v4-v12 (Kafka protocol guide, Fetch): consumers (replica_id -1) read up to the
        HW (isolation_level 1, read_committed: up to the LSO, with the aborted transactions),
        followers (replica_id >= 0) up to the LEO; long polling with max_wait_ms and
        min_bytes; records are file slices sent with os.sendfile. v7+ carries incremental
        fetch sessions (KIP-227, fetch_session.FetchManager): an incremental fetch reads (and
        long-polls on) every partition of its session and answers only the partitions with
        something new; session errors FETCH_SESSION_ID_NOT_FOUND / INVALID_FETCH_SESSION_EPOCH
        come back at top level with no partitions."""
        from time import monotonic

        rm = self.replica_manager
        fetch_data: dict[TopicPartition, FetchRequestPartition] = {}
        for t in request.topics:
            for p in t.partitions:
                fetch_data[TopicPartition(t.topic, p.partition)] = FetchRequestPartition(
                    p.fetch_offset, p.partition_max_bytes, getattr(p, "current_leader_epoch", -1),
                    getattr(p, "log_start_offset", -1))
        forgotten = [TopicPartition(t.topic, i) for t in getattr(request, "forgotten_topics_data", ())
                     for i in t.partitions]
        context = self.fetch_manager.new_context(
            header.api_version, getattr(request, "session_id", 0), getattr(request, "session_epoch", -1),
            request.replica_id >= 0, fetch_data, forgotten, int(monotonic() * 1000))
        resp_cls = response_class_for(request)
        if context.error != ErrorCode.none:
            return build(resp_cls, error_code=context.error, session_id=0, responses=())
        infos = [FetchPartitionInfo(tp, r.fetch_offset, r.max_bytes, r.current_leader_epoch, r.log_start_offset)
                 for tp, r in context.partitions()]
        results = await rm.fetch_messages(
            request.replica_id, duration_ms(request.max_wait), request.min_bytes,
            getattr(request, "max_bytes", 2**31 - 1), getattr(request, "isolation_level", 0), infos)
        session_id, answer = context.update_and_generate_response({d.tp: d for d in results})
        if request.replica_id < 0:  # BytesOut counts consumer fetches only (Kafka: not followers)
            for tp, d in answer:
                self.topic_stats.record_out(tp.topic, d.size)
        topic_cls = entity(resp_cls, "FetchableTopicResponse")
        part_cls = entity(resp_cls, "PartitionData")
        aborted_cls = entity(resp_cls, "AbortedTransaction")
        by_topic: dict[str, list[Any]] = {}
        for tp, d in answer:
            aborted = None if d.aborted_transactions is None else tuple(
                build(aborted_cls, producer_id=t.producer_id, first_offset=t.first_offset)
                for t in d.aborted_transactions)
            by_topic.setdefault(tp.topic, []).append(build(
                part_cls, partition_index=tp.partition, error_code=d.error,
                high_watermark=d.high_watermark, last_stable_offset=d.last_stable_offset,
                log_start_offset=d.log_start_offset, aborted_transactions=aborted,
                preferred_read_replica=-1, records=d.records))
        return build(resp_cls, error_code=ErrorCode.none, session_id=session_id, responses=tuple(
            build(topic_cls, topic=name, partitions=tuple(parts)) for name, parts in by_topic.items()))

    async def handle_list_offsets(self, header: RequestHeader, request: Any,
                                  conn: ConnectionContext) -> Any:
        """ListOffsets v1-v9: -2 earliest, -1 latest (HW for consumers, the LSO for
        read_committed ones, LEO for replicas),
        -3 max timestamp (KIP-734), -4 earliest-local, -5 latest-tiered (KIP-1005), else the
        first offset at or after a timestamp (ms)."""
        rm = self.replica_manager
        resp_cls = response_class_for(request)
        topic_cls = entity(resp_cls, "ListOffsetsTopicResponse")
        part_cls = entity(resp_cls, "ListOffsetsPartitionResponse")
        isolation = getattr(request, "isolation_level", 0) if request.replica_id == -1 else None
        topics = []
        for t in request.topics:
            parts = []
            for p in t.partitions:
                found = rm.fetch_offset_for_timestamp(
                    TopicPartition(t.name, p.partition_index), p.timestamp, isolation,
                    getattr(p, "current_leader_epoch", -1), request.replica_id)
                parts.append(build(part_cls, partition_index=p.partition_index, error_code=found.error,
                                   timestamp=found.timestamp, offset=found.offset, leader_epoch=found.leader_epoch))
            topics.append(build(topic_cls, name=t.name, partitions=tuple(parts)))
        return build(resp_cls, topics=tuple(topics))

    async def handle_delete_records(self, header: RequestHeader, request: Any,
                                    conn: ConnectionContext) -> Any:
        """DeleteRecords v0-v2 (KIP-107; ReplicaManager.delete_records): per partition the
        low watermark, or UNKNOWN_TOPIC_OR_PARTITION (low watermark -1) for a partition the
        metadata cache does not know (Kafka's KafkaApis.handleDeleteRecordsRequest)."""
        rm = self.replica_manager
        cache = self.metadata_cache
        resp_cls = response_class_for(request)
        topic_cls = entity(resp_cls, "DeleteRecordsTopicResult")
        part_cls = entity(resp_cls, "DeleteRecordsPartitionResult")
        results: dict[tuple[str, int], tuple[int, int]] = {}
        wanted: dict[TopicPartition, int] = {}
        for t in request.topics:
            for p in t.partitions:
                if cache.partition(zd.TopicPartition(t.name, p.partition_index)) is None:
                    results[(t.name, p.partition_index)] = (ErrorCode.unknown_topic_or_partition, -1)
                else:
                    wanted[TopicPartition(t.name, p.partition_index)] = p.offset
        timeout_ms = int(request.timeout.total_seconds() * 1000)
        if wanted:
            for tp, status in (await rm.delete_records(timeout_ms, wanted)).items():
                results[(tp.topic, tp.partition)] = (status.error, status.low_watermark)
        topics = []
        for t in request.topics:
            parts = tuple(build(part_cls, partition_index=p.partition_index,
                                error_code=results[(t.name, p.partition_index)][0],
                                low_watermark=results[(t.name, p.partition_index)][1])
                          for p in t.partitions)
            topics.append(build(topic_cls, name=t.name, partitions=parts))
        return build(resp_cls, topics=tuple(topics))

    async def handle_offset_for_leader_epoch(self, header: RequestHeader, request: Any,
                                             conn: ConnectionContext) -> Any:
        """OffsetForLeaderEpoch v2-v4 (KIP-101/279): where an epoch ends in the leader's log."""
        rm = self.replica_manager
        resp_cls = response_class_for(request)
        topic_cls = entity(resp_cls, "OffsetForLeaderTopicResult")
        part_cls = entity(resp_cls, "EpochEndOffset")
        topics = []
        for t in request.topics:
            parts = []
            for p in t.partitions:
                found = rm.last_offset_for_leader_epoch(
                    TopicPartition(t.topic, p.partition), getattr(p, "current_leader_epoch", -1),
                    p.leader_epoch)
                parts.append(build(part_cls, error_code=found.error, partition=p.partition,
                                   leader_epoch=found.leader_epoch, end_offset=found.end_offset))
            topics.append(build(topic_cls, topic=t.topic, partitions=tuple(parts)))
        return build(resp_cls, topics=tuple(topics))

    async def handle_describe_log_dirs(self, header: RequestHeader, request: Any,
                                       conn: ConnectionContext) -> Any:
        """DescribeLogDirs v1-v4 (KIP-113; Kafka's KafkaApis.handleDescribeLogDirsRequest):
        this broker's log dirs with their logs' sizes and offset lags (topics null: every
        log), KAFKA_STORAGE_ERROR for an offline dir (ReplicaManager.describe_log_dirs)."""
        resp_cls = response_class_for(request)
        result_cls, topic_cls = entity(resp_cls, "DescribeLogDirsResult"), entity(resp_cls, "DescribeLogDirsTopic")
        part_cls = entity(resp_cls, "DescribeLogDirsPartition")
        wanted = None if request.topics is None else {
            TopicPartition(t.topic, int(p)) for t in request.topics for p in t.partitions}
        results = []
        for d in self.replica_manager.describe_log_dirs(wanted):
            by_topic: dict[str, list[Any]] = {}
            for r in d.replicas:
                by_topic.setdefault(r.tp.topic, []).append(build(
                    part_cls, partition_index=r.tp.partition, partition_size=r.size,
                    offset_lag=r.offset_lag, is_future_key=r.is_future))
            results.append(build(result_cls, error_code=d.error, log_dir=d.log_dir,
                                 total_bytes=d.total_bytes, usable_bytes=d.usable_bytes,
                                 topics=tuple(build(topic_cls, name=t, partitions=tuple(ps))
                                              for t, ps in by_topic.items())))
        return build(resp_cls, error_code=ErrorCode.none, results=tuple(results))

    async def handle_alter_replica_log_dirs(self, header: RequestHeader, request: Any,
                                            conn: ConnectionContext) -> Any:
        """AlterReplicaLogDirs v1-v2 (KIP-113; Kafka's KafkaApis.handleAlterReplicaLogDirsRequest):
        move replicas of this broker between its log dirs, one error per partition
        (ReplicaManager.alter_replica_log_dirs: NONE, LOG_DIR_NOT_FOUND, KAFKA_STORAGE_ERROR,
        REPLICA_NOT_AVAILABLE). ALTER on the cluster is checked by auth_helper."""
        resp_cls = response_class_for(request)
        topic_cls = entity(resp_cls, "AlterReplicaLogDirTopicResult")
        part_cls = entity(resp_cls, "AlterReplicaLogDirPartitionResult")
        wanted = {TopicPartition(t.name, int(p)): d.path for d in request.dirs for t in d.topics for p in t.partitions}
        results = self.replica_manager.alter_replica_log_dirs(wanted)
        by_topic: dict[str, list[Any]] = {}
        for tp, err in results.items():
            by_topic.setdefault(tp.topic, []).append(build(part_cls, partition_index=tp.partition, error_code=err))
        return build(resp_cls, throttle_time_ms=0, results=tuple(
            build(topic_cls, topic_name=t, partitions=tuple(ps)) for t, ps in by_topic.items()))

    async def handle_leader_and_isr(self, header: RequestHeader, request: Any,
                                    conn: ConnectionContext) -> Any:
        """LeaderAndIsr v0-v6 from the controller (``_become_leader_or_follower``)."""
        scl, cid, version = self.state_change_logger, header.correlation_id, header.api_version
        log_leader_and_isr_received(scl, cid, version, request)
        started = perf_counter()
        response = await self._become_leader_or_follower(header.api_version, request)
        log_leader_and_isr_handled(scl, self.broker_id, cid, version, request, response,
                                   (perf_counter() - started) * 1000)
        return response

    async def handle_describe_producers(self, header: RequestHeader, request: Any,
                                        conn: ConnectionContext) -> Any:
        """DescribeProducers v0 (KIP-664): each partition's active idempotent producers from
        this broker's replica (kafkalike.broker.describe_producers)."""
        rm = self.replica_manager
        resp_cls = response_class_for(request)
        topic_cls, part_cls = entity(resp_cls, "TopicResponse"), entity(resp_cls, "PartitionResponse")
        state_cls = entity(resp_cls, "ProducerState")
        topics = []
        for t in request.topics:
            parts = []
            for index in t.partition_indexes:
                found = active_producer_state(rm, TopicPartition(t.name, index))
                parts.append(build(part_cls, partition_index=index, error_code=found.error, error_message=None,
                                   active_producers=tuple(build(state_cls, **attrs.asdict(p))
                                                          for p in found.producers)))
            topics.append(build(topic_cls, name=t.name, partitions=tuple(parts)))
        return build(resp_cls, topics=tuple(topics))

    async def handle_write_txn_markers(self, header: RequestHeader, request: Any,
                                       conn: ConnectionContext) -> Any:
        """WriteTxnMarkers v1 (KIP-98; Kafka protocol guide, WriteTxnMarkers; sent by a
        transaction coordinator): each marker's COMMIT/ABORT control batch is appended to
        its partitions this broker leads, answered once the ISR has it
        (ReplicaManager.write_txn_markers, which lists the per-partition errors)."""
        rm = self.replica_manager
        markers = [TxnMarkerEntry(m.producer_id, m.producer_epoch, m.coordinator_epoch, bool(m.transaction_result),
                                  tuple(TopicPartition(t.name, i) for t in m.topics for i in t.partition_indexes))
                   for m in request.markers]
        # Kafka waits request.timeout.ms (default 30000), a key kafkalike's config does not have
        results = await rm.write_txn_markers(markers, 30000)
        resp_cls = response_class_for(request)
        marker_cls, topic_cls = entity(resp_cls, "WritableTxnMarkerResult"), entity(resp_cls, "WritableTxnMarkerTopicResult")
        part_cls = entity(resp_cls, "WritableTxnMarkerPartitionResult")
        out = []
        for m, errors in zip(request.markers, results):
            topics = [build(topic_cls, name=t.name, partitions=tuple(
                build(part_cls, partition_index=i, error_code=errors[TopicPartition(t.name, i)])
                for i in t.partition_indexes)) for t in m.topics]
            out.append(build(marker_cls, producer_id=m.producer_id, topics=tuple(topics)))
        return build(resp_cls, markers=tuple(out))

    async def handle_stop_replica(self, header: RequestHeader, request: Any,
                                  conn: ConnectionContext) -> Any:
        """StopReplica v0-v3 from the controller (``_stop_replicas``)."""
        log_stop_replica_received(self.state_change_logger, header.correlation_id, header.api_version, request)
        return await self._stop_replicas(header.api_version, request)

    # ------------------------------------------------------------------ ZooKeeper control plane
    # LeaderAndIsr and StopReplica are translated into the replica manager's control-plane
    # calls (named records, docs/architecture.md "The control-plane seam"); what is ZooKeeper
    # mode's alone stays here: the controller-epoch / broker-epoch fencing (under the replica
    # manager's state_change_lock, held until the changes are made) and the response layout.
    async def _become_leader_or_follower(self, version: int, request: Any) -> LeaderAndIsrResponse:
        """LeaderAndIsr v0-v6 -> ReplicaManager.become_leader_or_follower. Errors:
        STALE_CONTROLLER_EPOCH, STALE_BROKER_EPOCH (v2+) for the request; per partition what
        the replica manager answers."""
        rm = self.replica_manager
        async with rm.state_change_lock:
            stale = rm.fence_controller_request("LeaderAndIsr", request.controller_epoch,
                                                _broker_epoch(request, version, since=2))
            if stale is not None:
                return LeaderAndIsrResponse(error_code=stale.value)
            endpoints = {ll.broker_id: BrokerEndpoint(ll.broker_id, ll.host_name, ll.port)
                         for ll in request.live_leaders}
            errors = await rm.become_leader_or_follower(leader_and_isr_changes(version, request), endpoints)
        return leader_and_isr_response(version, request, errors)

    async def _stop_replicas(self, version: int, request: Any) -> StopReplicaResponse:
        """StopReplica v0-v3 -> ReplicaManager.stop_replicas. Errors: STALE_CONTROLLER_EPOCH,
        STALE_BROKER_EPOCH (v1+) for the request; per partition FENCED_LEADER_EPOCH,
        KAFKA_STORAGE_ERROR."""
        rm = self.replica_manager
        async with rm.state_change_lock:
            stale = rm.fence_controller_request("StopReplica", request.controller_epoch,
                                                _broker_epoch(request, version, since=1))
            if stale is not None:
                return StopReplicaResponse(error_code=stale.value)
            results = await rm.stop_replicas(stop_replica_partitions(version, request))
        return StopReplicaResponse(error_code=0, partition_errors=tuple(
            StopReplicaPartitionError(topic_name=r.tp.topic, partition_index=r.tp.partition,
                                      error_code=r.error.value) for r in results))

    # ------------------------------------------------------------------ admin APIs
    async def handle_elect_leaders(self, header: RequestHeader, request: Any,
                                   conn: ConnectionContext) -> Any:
        """ElectLeaders v0-v2 (KIP-460; Kafka's KafkaApis.handleElectLeaders and
        ReplicaManager.electLeaders / DelayedElectLeader). election_type 0 = preferred (v0 has
        no field: preferred), 1 = unclean; topic_partitions null = every partition in this
        broker's metadata cache, and then the ELECTION_NOT_NEEDED ones are left out of the
        answer. The controller's election (KafkaController.elect_leaders) answers each
        partition (NONE, ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE,
        ELIGIBLE_LEADERS_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION,
        NOT_CONTROLLER on a broker that is not the controller); a NONE answer waits until this
        broker's metadata cache shows the new leader. Whatever is not done after ``timeout``
        ms is REQUEST_TIMED_OUT."""
        controller = self.controller
        cache = self.metadata_cache
        resp_cls = response_class_for(request)
        result_cls, part_cls = entity(resp_cls, "ReplicaElectionResult"), entity(resp_cls, "PartitionResult")
        election_type = int(getattr(request, "election_type", 0))
        all_partitions = request.topic_partitions is None
        if all_partitions:
            wanted = [TopicPartition(t, p) for t in cache.topics() for p in sorted(cache.partitions_of(t))]
        else:
            wanted = [TopicPartition(t.topic, int(p)) for t in request.topic_partitions for p in t.partitions]
        timeout_s = max(0, duration_ms(request.timeout)) / 1000.0
        results: dict[TopicPartition, tuple[int, str | None]] = {}
        if election_type not in (0, 1):
            results = {tp: (ErrorCode.invalid_request, f"unknown election type {election_type}") for tp in wanted}
        else:
            waiting: dict[TopicPartition, int] = {}
            with trio.move_on_after(timeout_s):
                answer = await controller.elect_leaders(wanted, election_type)
                results = {tp: (error, message) for tp, (error, message, _leader) in answer.items()}
                waiting = {tp: leader for tp, (error, _m, leader) in answer.items() if error == ErrorCode.none}
                while waiting:
                    for tp, leader in list(waiting.items()):
                        info = cache.partition(tp)
                        if info is not None and info.leader == leader:
                            del waiting[tp]
                    if waiting:
                        await trio.sleep(0.02)
            for tp in wanted:
                if tp not in results or tp in waiting:
                    results[tp] = (ErrorCode.request_timed_out, "The request timed out.")
        by_topic: dict[str, list[Any]] = {}
        for tp, (error, message) in results.items():
            if all_partitions and error == ErrorCode.election_not_needed:
                continue
            by_topic.setdefault(tp.topic, []).append(build(
                part_cls, partition_id=tp.partition, error_code=error, error_message=message))
        return build(resp_cls, throttle_time=datetime.timedelta(0), error_code=ErrorCode.none,
                     replica_election_results=tuple(build(result_cls, topic=t, partition_result=tuple(ps))
                                                    for t, ps in by_topic.items()))

    async def handle_create_topics(self, header: RequestHeader, request: Any,
                                   conn: ConnectionContext) -> Any:
        """CreateTopics v2-v7 (ZkAdminManager.create_topics)."""
        return await self.admin_manager.create_topics(header, request)

    async def handle_delete_topics(self, header: RequestHeader, request: Any,
                                   conn: ConnectionContext) -> Any:
        """DeleteTopics v1-v5 (ZkAdminManager.delete_topics)."""
        return await self.admin_manager.delete_topics(header, request)

    async def handle_create_partitions(self, header: RequestHeader, request: Any,
                                       conn: ConnectionContext) -> Any:
        """CreatePartitions v0-v3 (ZkAdminManager.create_partitions)."""
        return await self.admin_manager.create_partitions(header, request)

    async def handle_describe_configs(self, header: RequestHeader, request: Any,
                                      conn: ConnectionContext) -> Any:
        """DescribeConfigs v1-v4 (ZkAdminManager.describe_configs)."""
        return await self.admin_manager.describe_configs(header, request)

    async def handle_alter_configs(self, header: RequestHeader, request: Any,
                                   conn: ConnectionContext) -> Any:
        """AlterConfigs v0-v2 (ZkAdminManager.alter_configs)."""
        return await self.admin_manager.alter_configs(header, request, incremental=False)

    async def handle_incremental_alter_configs(self, header: RequestHeader, request: Any,
                                               conn: ConnectionContext) -> Any:
        """IncrementalAlterConfigs v0-v1 (ZkAdminManager.alter_configs, KIP-339)."""
        return await self.admin_manager.alter_configs(header, request, incremental=True)


def _broker_epoch(request: Any, version: int, *, since: int) -> int:
    """A controller request's broker_epoch (the field exists from version ``since``), else -1."""
    return int(request.broker_epoch) if version >= since else -1


def leader_and_isr_changes(version: int, request: Any) -> list[ReplicaStateChange]:
    """A LeaderAndIsr request (v0-v1 ungrouped partition states, v2+ per topic; topic ids from
    v5, a zero id meaning none) as the replica manager's ReplicaStateChange records, in the
    request's order."""
    if version >= 2:
        return [ReplicaStateChange(TopicPartition(t.topic_name, p.partition_index),
                                   _topic_id(getattr(t, "topic_id", None)), PartitionState.from_leader_and_isr(p))
                for t in request.topic_states for p in t.partition_states]
    return [ReplicaStateChange(TopicPartition(p.topic_name, p.partition_index), None,
                               PartitionState.from_leader_and_isr(p))
            for p in request.ungrouped_partition_states]


def _topic_id(topic_id: uuid.UUID | None) -> uuid.UUID | None:
    return topic_id if topic_id is not None and topic_id.int != 0 else None


def leader_and_isr_response(version: int, request: Any, errors: dict[TopicPartition, ErrorCode]
                            ) -> LeaderAndIsrResponse:
    """The LeaderAndIsr answer of ``version`` from the per-partition ``errors``: v5+ per topic
    (with the request's topic ids), in the request's order; older versions one entry per
    partition, in the order of ``errors``."""
    if version >= 5:
        by_topic: dict[str, list[LeaderAndIsrPartitionError]] = {}
        ids: dict[str, Any] = {}
        for t in request.topic_states:
            for p in t.partition_states:
                ids[t.topic_name] = t.topic_id
                by_topic.setdefault(t.topic_name, []).append(LeaderAndIsrPartitionError(
                    partition_index=p.partition_index,
                    error_code=errors[TopicPartition(t.topic_name, p.partition_index)].value))
        return LeaderAndIsrResponse(error_code=0, topics=tuple(
            LeaderAndIsrTopicError(topic_id=ids[t], partition_errors=tuple(errs))
            for t, errs in by_topic.items()))
    return LeaderAndIsrResponse(error_code=0, partition_errors=tuple(
        LeaderAndIsrPartitionError(topic_name=tp.topic, partition_index=tp.partition, error_code=err.value)
        for tp, err in errors.items()))


def stop_replica_partitions(version: int, request: Any) -> list[StopReplicaPartition]:
    """A StopReplica request (v0 ungrouped, v1-v2 per topic with one delete flag, v3 per
    partition with its leader epoch and delete flag) as StopReplicaPartition records."""
    if version == 0:
        return [StopReplicaPartition(TopicPartition(p.topic_name, p.partition_index), NO_EPOCH,
                                     request.delete_partitions) for p in request.ungrouped_partitions]
    if version <= 2:
        return [StopReplicaPartition(TopicPartition(t.name, i), NO_EPOCH, request.delete_partitions)
                for t in request.topics for i in t.partition_indexes]
    return [StopReplicaPartition(TopicPartition(t.topic_name, p.partition_index), p.leader_epoch,
                                 p.delete_partition)
            for t in request.topic_states for p in t.partition_states]


#: Metadata answers naming more topics than this are built and encoded in a worker thread
METADATA_INLINE_TOPICS = 100
#: auto-creations of one Metadata request in flight at once
AUTO_CREATE_IN_FLIGHT = 16


def _encode_metadata(resp_cls: type, version: int, snap: MetadataSnapshot, names: list[str] | None,
                     errors: dict[str, int], listener: str, cluster_id: str | None) -> bytes:
    """Build and encode one Metadata response body of ``version`` from ``snap``: ``names``
    (None: every topic of the snapshot, sorted) in order, ``errors[name]`` for the topics
    answered with an error and no partitions (unknown, being auto-created). Pure: reads only
    its arguments, so it may run in a worker thread."""
    topic_cls = entity(resp_cls, "MetadataResponseTopic")
    part_cls = entity(resp_cls, "MetadataResponsePartition")
    broker_cls = entity(resp_cls, "MetadataResponseBroker")
    brokers_alive = snap.brokers
    topics = []
    for name in (sorted(snap.topics) if names is None else names):
        parts = None if name in errors else snap.topics.get(name)
        if not parts:
            topics.append(build(topic_cls, error_code=errors.get(name, ErrorCode.unknown_topic_or_partition),
                                name=name, topic_id=None, is_internal=False, partitions=(),
                                topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED))
            continue
        partitions = []
        for index in sorted(parts):
            info = parts[index]
            alive = info.leader in brokers_alive
            partitions.append(build(
                part_cls,
                error_code=ErrorCode.none if alive else ErrorCode.leader_not_available,
                partition_index=index, leader_id=info.leader if alive else -1,
                leader_epoch=info.leader_epoch, replica_nodes=info.replicas,
                isr_nodes=info.isr, offline_replicas=info.offline_replicas))
        topics.append(build(topic_cls, error_code=ErrorCode.none, name=name,
                            topic_id=snap.topic_ids.get(name),
                            is_internal=name.startswith("__"), partitions=tuple(partitions),
                            topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED))
    brokers = []
    for node in snap.brokers.values():
        ep = node.endpoints.get(listener)
        if ep is not None:
            brokers.append(build(broker_cls, node_id=node.id, host=ep[0], port=ep[1], rack=node.rack))
    response = build(resp_cls, brokers=tuple(brokers), cluster_id=cluster_id,
                     controller_id=snap.controller_id if snap.controller_id is not None else -1,
                     topics=tuple(topics), cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED)
    return encode_response_body(ApiKey.METADATA, version, response)


def _datetime_or_none(ms: int) -> datetime.datetime | None:
    """Produce's log_append_time: None (-1 on the wire) unless LogAppendTime is in use."""
    if ms < 0:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.timezone.utc)
