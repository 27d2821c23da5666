"""ControllerChannelManager and ControllerBrokerRequestBatch: how the controller talks to brokers.

ControllerChannelManager (Kafka's kafka.controller.ControllerChannelManager) keeps, for every
live broker, ONE connection (kafkalike.client.KafkaConnection) and ONE send queue drained by
one trio task (Kafka's RequestSendThread): requests go out one at a time, in queue order;
a request is retried with exponential backoff (50 ms doubling to 1 s) on any connection
failure or timeout until the broker answers, or until the broker is removed (its znode
vanished), which cancels its task and drops what was queued. A request is built only once
the connection has negotiated versions: queue items carry a ``build(version)`` function, so
one controller serves brokers of any LeaderAndIsr / UpdateMetadata / StopReplica version.

ControllerBrokerRequestBatch (Kafka's AbstractControllerBrokerRequestBatch) collects the
requests of one controller action -- LeaderAndIsr per broker, UpdateMetadata for a set of
brokers and partitions, StopReplica per broker -- and ``send_requests_to_brokers`` sends them
in Kafka's order: LeaderAndIsr, then UpdateMetadata, then StopReplica. Every request carries
the controller id, the controller epoch and the target broker's epoch (czxid of its
registration), which brokers use to reject requests of a stale controller or meant for an
earlier incarnation of themselves (STALE_CONTROLLER_EPOCH, STALE_BROKER_EPOCH).
Partitions of topics queued for deletion are described with leader -2 (LeaderDuringDelete)
in UpdateMetadata so that metadata caches drop them.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs
import structlog
import trio

from kafkalike.client.connection import KafkaConnection
from kafkalike.client.errors import ClientError, UnsupportedApiVersionError
from kafkalike.controller.state_change_logger import (
    StateChangeLogger,
    leader_and_isr_partition_state_str,
    node_str,
    partition_str,
    scala_set,
)
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.zk_data import LeaderIsrAndControllerEpoch, TopicPartition
from kafkalike.protocol.api_keys import ApiKey, api_name, request_versions_for_ibp
from kafkalike.protocol.leader_and_isr import (
    LeaderAndIsrLiveLeader,
    LeaderAndIsrPartitionState,
    LeaderAndIsrRequest,
    LeaderAndIsrTopicState,
)
from kafkalike.protocol.schema import Message
from kafkalike.protocol.stop_replica import (
    StopReplicaPartitionState,
    StopReplicaPartitionV0,
    StopReplicaRequest,
    StopReplicaTopicState,
    StopReplicaTopicV1,
)
from kafkalike.protocol.update_metadata import (
    UpdateMetadataBroker,
    UpdateMetadataEndpoint,
    UpdateMetadataPartitionState,
    UpdateMetadataRequest,
    UpdateMetadataTopicState,
)

if TYPE_CHECKING:
    from kafkalike.controller.controller_context import ControllerContext

log = structlog.get_logger(__name__)
B = TypeVar("B")

#: Kafka's LeaderAndIsr.LeaderDuringDelete: the leader UpdateMetadata gives partitions of a
#: topic being deleted, which makes metadata caches drop them
LEADER_DURING_DELETE = -2
#: security protocol ids on the wire (Kafka's SecurityProtocol.id)
SECURITY_PROTOCOL_IDS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}

#: the requests the controller sends brokers, capped by inter.broker.protocol.version
CONTROLLER_APIS = (ApiKey.LEADER_AND_ISR, ApiKey.UPDATE_METADATA, ApiKey.STOP_REPLICA)

#: time (ms) added to controller.socket.timeout.ms per partition a request names. Kafka waits
#: controller.socket.timeout.ms (30 s) for any request, then reconnects and sends it again;
#: a kafkalike broker on a busy machine can take longer than that over a 10,000-partition
#: LeaderAndIsr (it creates 10,000 logs), and each resend queued behind the one still being
#: handled also timed out: the controller resent the same request for ever and the requests
#: queued after it were never sent (seen with the many-topics bench at load average 20, where
#: creating one log took 27-80 ms instead of 1.5 ms idle: 100 ms each leaves room for that)
REQUEST_TIMEOUT_MS_PER_PARTITION = 100.0

#: requests naming this many partitions or more are built (entities for each partition),
#: encoded, and their answers decoded, in a worker thread, not on the event loop the controller
#: shares with the broker
BUILD_OFF_LOOP_PARTITIONS = 1000


def max_versions_for_ibp(ibp: str | None) -> dict[int, int]:
    """{api key: newest LeaderAndIsr / UpdateMetadata / StopReplica version} allowed by
    inter.broker.protocol.version ("3.9", "2.4", "2.4-IV0", "0.10.2"; a release without
    "-IVn" means its last IV; None or unparsable: no cap), as Kafka's controller chooses them.
    The table is shared with the replica fetcher: kafkalike.protocol.api_keys.
    request_versions_for_ibp. Lets a cluster speak versions an older peer or tool
    (Wireshark's dissector) knows."""
    return request_versions_for_ibp(ibp, CONTROLLER_APIS)


Callback = Callable[[int, Any], None]
"""Called as callback(broker_id, response) in the broker's send task; must not block."""


@attrs.frozen
class QueueItem:
    """One request waiting in a broker's send queue: its API key, a builder taking the
    negotiated version, and an optional callback for the response."""

    api_key: int
    build: Callable[[int], Message]
    callback: Callback | None = None
    partitions: int = 0  # how many partitions the request names (its timeout and where it is built)


@attrs.frozen
class BrokerChannelStatistics:
    """One broker's channel: address, queued requests, sent/failed counts, connected or not."""

    broker_id: int
    host: str
    port: int
    queued: int
    sent: int
    retries: int
    connected: bool


@attrs.define
class _BrokerChannel:
    broker_id: int
    host: str
    port: int
    send: trio.MemorySendChannel[QueueItem]
    recv: trio.MemoryReceiveChannel[QueueItem]
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    conn: KafkaConnection | None = None
    sent: int = 0
    retries: int = 0


class ControllerChannelManager:
    """One connection and send queue per broker (see module doc).

    controller_id: this broker's id (the client id is ``controller-<id>``);
    request_timeout_ms: controller.socket.timeout.ms; nursery: where the send tasks run (may
    be given later with ``start``, as Kafka builds its ControllerChannelManager with the
    controller and starts it on failover); max_versions: {api key: newest version to send}
    (max_versions_for_ibp). ssl_context: a client SSLContext when the inter-broker listener
    is SSL (set by KafkaServer; None = PLAINTEXT). sasl: the broker's SaslClientConfig when
    the inter-broker listener is SASL_* (set by KafkaServer; None = no SASL).
    """

    def __init__(self, controller_id: int, nursery: trio.Nursery | None = None, *,
                 request_timeout_ms: float = 30000, initial_backoff_s: float = 0.05, max_backoff_s: float = 1.0,
                 max_versions: dict[int, int] | None = None) -> None:
        self.controller_id = controller_id
        self.max_versions = dict(max_versions or {})
        self.nursery = nursery
        self.request_timeout_ms = request_timeout_ms
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self._brokers: dict[int, _BrokerChannel] = {}
        self.ssl_context: Any = None
        self.sasl: Any = None
        #: state-change.log's "Received response ... with correlation id N" lines (set by
        #: KafkaController with the epoch it has now; default writes nothing)
        self.state_change_logger = StateChangeLogger(controller_id, in_controller_context=True)
        self.controller_epoch: Callable[[], int] = lambda: 0

    def start(self, nursery: trio.Nursery) -> None:
        """Run the brokers' send tasks in ``nursery`` from now on."""
        self.nursery = nursery

    # ---- brokers --------------------------------------------------------------------------

    def add_broker(self, broker_id: int, host: str, port: int) -> None:
        """Start a send queue (and task) for broker ``broker_id`` at host:port; a broker already
        present at another address is replaced."""
        existing = self._brokers.get(broker_id)
        if existing is not None:
            if (existing.host, existing.port) == (host, port):
                return
            self.remove_broker(broker_id)
        send, recv = trio.open_memory_channel[QueueItem](math.inf)
        channel = _BrokerChannel(broker_id, host, port, send, recv)
        if self.nursery is None:
            raise RuntimeError("ControllerChannelManager.add_broker before start(nursery)")
        self._brokers[broker_id] = channel
        self.nursery.start_soon(self._send_loop, channel)
        log.debug("controller_channel_added", target_broker=broker_id, host=host, port=port)

    def remove_broker(self, broker_id: int) -> None:
        """Stop broker ``broker_id``'s send task; queued requests are dropped (Kafka's
        removeBroker when a broker dies)."""
        channel = self._brokers.pop(broker_id, None)
        if channel is not None:
            channel.scope.cancel()
            channel.send.close()
            log.debug("controller_channel_removed", target_broker=broker_id)

    def shutdown(self) -> None:
        """Remove every broker (used when the controller resigns)."""
        for broker_id in list(self._brokers):
            self.remove_broker(broker_id)

    def has_broker(self, broker_id: int) -> bool:
        return broker_id in self._brokers

    # ---- sending --------------------------------------------------------------------------

    def send(self, broker_id: int, api_key: int, build: Callable[[int], Message],
             callback: Callback | None = None, *, partitions: int = 0) -> bool:
        """Queue a request for ``broker_id``; False (and dropped, as Kafka logs and drops) if
        the broker has no channel (it is not live). ``partitions``: how many the request names;
        its timeout is controller.socket.timeout.ms plus REQUEST_TIMEOUT_MS_PER_PARTITION each,
        and from BUILD_OFF_LOOP_PARTITIONS on ``build`` runs in a worker thread (it must then
        only read what it captured), as do the request's encoding and its answer's decoding."""
        channel = self._brokers.get(broker_id)
        if channel is None:
            log.warning("controller_request_dropped", target_broker=broker_id, api=api_name(api_key),
                        reason="broker not live")
            return False
        channel.send.send_nowait(QueueItem(api_key, build, callback, partitions))
        return True

    def _version_caps(self) -> dict[int, int | None]:
        return {k: self.max_versions.get(k) for k in (ApiKey.LEADER_AND_ISR, ApiKey.UPDATE_METADATA,
                                                       ApiKey.STOP_REPLICA)}

    def queue_size(self, broker_id: int | None = None) -> int:
        """Requests waiting (for one broker, or for all)."""
        chans = [self._brokers[broker_id]] if broker_id is not None and broker_id in self._brokers else (
            [] if broker_id is not None else list(self._brokers.values()))
        return sum(c.recv.statistics().current_buffer_used for c in chans)

    def statistics(self) -> list[BrokerChannelStatistics]:
        """Each broker channel's state now."""
        return [BrokerChannelStatistics(c.broker_id, c.host, c.port, c.recv.statistics().current_buffer_used,
                                        c.sent, c.retries, c.conn is not None and not c.conn.closed)
                for c in sorted(self._brokers.values(), key=lambda c: c.broker_id)]

    async def _send_loop(self, channel: _BrokerChannel) -> None:
        with channel.scope:
            try:
                async with trio.open_nursery() as conn_nursery:
                    async for item in channel.recv:
                        response = await self._send_with_retries(channel, item, conn_nursery)
                        if response is not None and item.callback is not None:
                            try:
                                item.callback(channel.broker_id, response)
                            except Exception:
                                log.exception("controller_callback_failed", target_broker=channel.broker_id)
                    conn_nursery.cancel_scope.cancel()
            finally:
                if channel.conn is not None:
                    with trio.CancelScope(shield=True):
                        await channel.conn.aclose()

    async def _send_with_retries(self, channel: _BrokerChannel, item: QueueItem, nursery: trio.Nursery) -> Any:
        backoff = self.initial_backoff_s
        attempts = 0
        while True:
            try:
                if channel.conn is None or channel.conn.closed:
                    channel.conn = await KafkaConnection.connect(
                        channel.host, channel.port, nursery=nursery, client_id=f"controller-{self.controller_id}",
                        request_timeout_ms=self.request_timeout_ms, node_id=channel.broker_id,
                        ssl_context=self.ssl_context, sasl=self.sasl)
                    conn = channel.conn
                    log.info("controller_channel_connected", target_broker=channel.broker_id, host=channel.host,
                             port=channel.port, **{_VERSION_KEYS[k]: _version_or_none(conn, k, v)
                                                   for k, v in self._version_caps().items()})
                version = channel.conn.api_version(item.api_key, max_version=self.max_versions.get(item.api_key))
                off_loop = item.partitions >= BUILD_OFF_LOOP_PARTITIONS
                if off_loop:
                    request = await trio.to_thread.run_sync(item.build, version)
                else:
                    request = item.build(version)
                timeout_ms = self.request_timeout_ms + item.partitions * REQUEST_TIMEOUT_MS_PER_PARTITION
                # the id send() gives the request: this task is the connection's only sender
                correlation_id = channel.conn._next_correlation_id
                # big ones are encoded (and their answers decoded) off the loop too
                response = await channel.conn.send(request, api_version=version, timeout_ms=timeout_ms,
                                                   off_loop=off_loop)
                channel.sent += 1
                scl = self.state_change_logger
                if scl.is_trace_enabled:
                    scl.with_controller_epoch(self.controller_epoch()).trace(
                        f"Received response {type(response).__name__}(errorCode="
                        f"{getattr(response, 'error_code', 0)}) for request {ApiKey(item.api_key).name} with "
                        f"correlation id {correlation_id} sent to broker "
                        f"{node_str(channel.host, channel.port, channel.broker_id)}")
                return response
            except UnsupportedApiVersionError as exc:
                log.error("controller_request_unsupported", target_broker=channel.broker_id,
                          api=api_name(item.api_key), error=str(exc))
                return None
            except ClientError as exc:
                channel.retries += 1
                attempts += 1
                (log.info if attempts == 1 or attempts % 20 == 0 else log.debug)(
                    "controller_request_retry", attempt=attempts, target_broker=channel.broker_id,
                         api=api_name(item.api_key), error=str(exc), backoff_ms=int(backoff * 1000))
                if channel.conn is not None:
                    await channel.conn.aclose()
                    channel.conn = None
                await trio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)


_VERSION_KEYS: dict[int, str] = {ApiKey.LEADER_AND_ISR: "leader_and_isr_version",
                                  ApiKey.UPDATE_METADATA: "update_metadata_version",
                                  ApiKey.STOP_REPLICA: "stop_replica_version"}


def _version_or_none(conn: Any, api_key: int, cap: int | None) -> int | None:
    try:
        return int(conn.api_version(api_key, max_version=cap))
    except Exception:
        return None


# ---- request building -----------------------------------------------------------------------


@attrs.frozen
class LeaderAndIsrEntry:
    """What LeaderAndIsr says about one partition to one broker."""

    tp: TopicPartition
    leader_isr: LeaderIsrAndControllerEpoch
    replicas: tuple[int, ...]
    adding: tuple[int, ...] = ()
    removing: tuple[int, ...] = ()
    is_new: bool = False


@attrs.frozen
class UpdateMetadataEntry:
    """What UpdateMetadata says about one partition (leader -2 while its topic is deleted)."""

    tp: TopicPartition
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    zk_version: int
    controller_epoch: int
    replicas: tuple[int, ...]
    offline_replicas: tuple[int, ...]


def _topic_uuid(topic_id: str | None) -> uuid.UUID:
    if not topic_id:
        return uuid.UUID(int=0)
    try:
        return zd.base64_to_uuid(topic_id)
    except ValueError:
        return uuid.UUID(int=0)


@attrs.frozen
class LeaderAndIsrBody:
    """What a LeaderAndIsr of one version says, whichever broker it goes to: the partition
    states (grouped by topic from v2) and the live leaders. Only the broker epoch (v2+) differs
    between two brokers sent the same partitions."""

    ungrouped_partition_states: tuple[LeaderAndIsrPartitionState, ...]
    topic_states: tuple[LeaderAndIsrTopicState, ...]
    live_leaders: tuple[LeaderAndIsrLiveLeader, ...]


def leader_and_isr_body(version: int, entries: Iterable[LeaderAndIsrEntry],
                        live_leaders: Iterable[tuple[int, str, int]], topic_ids: dict[str, str]) -> LeaderAndIsrBody:
    """The LeaderAndIsrBody of ``version`` (v0-v6 layouts; Kafka 3.x LeaderAndIsrRequest.json).
    live_leaders: (broker id, host, port) of the leaders named in ``entries``."""
    states = [LeaderAndIsrPartitionState(
        topic_name=e.tp.topic, partition_index=e.tp.partition, controller_epoch=e.leader_isr.controller_epoch,
        leader=e.leader_isr.leader, leader_epoch=e.leader_isr.leader_epoch, isr=tuple(e.leader_isr.isr),
        zk_version=e.leader_isr.zk_version, replicas=e.replicas, adding_replicas=e.adding,
        removing_replicas=e.removing, is_new=e.is_new) for e in entries]
    leaders = tuple(LeaderAndIsrLiveLeader(broker_id=b, host_name=h, port=p) for b, h, p in live_leaders)
    if version <= 1:
        return LeaderAndIsrBody(tuple(states), (), leaders)
    by_topic: dict[str, list[LeaderAndIsrPartitionState]] = defaultdict(list)
    for s in states:
        by_topic[s.topic_name].append(s)
    topics = tuple(LeaderAndIsrTopicState(topic_name=t, topic_id=_topic_uuid(topic_ids.get(t)),
                                          partition_states=tuple(ps)) for t, ps in sorted(by_topic.items()))
    return LeaderAndIsrBody((), topics, leaders)


def leader_and_isr_request(version: int, controller_id: int, controller_epoch: int, broker_epoch: int,
                           body: LeaderAndIsrBody) -> LeaderAndIsrRequest:
    """A LeaderAndIsr request of ``version`` to the broker of ``broker_epoch`` (v2+), saying ``body``."""
    if version <= 1:
        return LeaderAndIsrRequest(controller_id=controller_id, controller_epoch=controller_epoch,
                                   ungrouped_partition_states=body.ungrouped_partition_states, topic_states=(),
                                   live_leaders=body.live_leaders)
    return LeaderAndIsrRequest(controller_id=controller_id, controller_epoch=controller_epoch,
                               broker_epoch=broker_epoch, ungrouped_partition_states=(),
                               topic_states=body.topic_states, live_leaders=body.live_leaders)


def build_leader_and_isr(version: int, controller_id: int, controller_epoch: int, broker_epoch: int,
                         entries: Iterable[LeaderAndIsrEntry], live_leaders: Iterable[tuple[int, str, int]],
                         topic_ids: dict[str, str]) -> LeaderAndIsrRequest:
    """A LeaderAndIsr request of ``version`` (v0-v6 layouts; Kafka 3.x LeaderAndIsrRequest.json).
    live_leaders: (broker id, host, port) of the leaders named in ``entries``."""
    return leader_and_isr_request(version, controller_id, controller_epoch, broker_epoch,
                                  leader_and_isr_body(version, entries, live_leaders, topic_ids))


@attrs.frozen
class UpdateMetadataBody:
    """What an UpdateMetadata of one version says, whichever broker it goes to: the live
    brokers and the partition states (grouped by topic from v5). Only the broker epoch (v5+)
    differs between the brokers of one batch (Kafka's sendUpdateMetadataRequests builds the
    request once per version too, and sets each broker's epoch)."""

    live_brokers: tuple[UpdateMetadataBroker, ...]
    ungrouped_partition_states: tuple[UpdateMetadataPartitionState, ...]
    topic_states: tuple[UpdateMetadataTopicState, ...]


def update_metadata_body(version: int, entries: Iterable[UpdateMetadataEntry],
                         live_brokers: Iterable[zd.BrokerRegistration], topic_ids: dict[str, str]
                         ) -> UpdateMetadataBody:
    """The UpdateMetadataBody of ``version`` (v0-v7 layouts; Kafka 3.x UpdateMetadataRequest.json)."""
    brokers = []
    for reg in live_brokers:
        if version == 0:
            ep = reg.endpoint("PLAINTEXT") or (reg.endpoints[0] if reg.endpoints else None)
            brokers.append(UpdateMetadataBroker(id=reg.broker_id, v0_host=ep.host if ep else "",
                                                v0_port=ep.port if ep else -1, endpoints=()))
            continue
        eps = tuple(UpdateMetadataEndpoint(port=e.port, host=e.host, listener=e.listener_name,
                                           security_protocol=SECURITY_PROTOCOL_IDS.get(e.security_protocol, 0))
                    for e in reg.endpoints)
        brokers.append(UpdateMetadataBroker(id=reg.broker_id, endpoints=eps, rack=reg.rack))
    states = [UpdateMetadataPartitionState(
        topic_name=e.tp.topic, partition_index=e.tp.partition, controller_epoch=e.controller_epoch,
        leader=e.leader, leader_epoch=e.leader_epoch, isr=e.isr, zk_version=e.zk_version,
        replicas=e.replicas, offline_replicas=e.offline_replicas) for e in entries]
    if version <= 4:
        return UpdateMetadataBody(tuple(brokers), tuple(states), ())
    by_topic: dict[str, list[UpdateMetadataPartitionState]] = defaultdict(list)
    for s in states:
        by_topic[s.topic_name].append(s)
    topics = tuple(UpdateMetadataTopicState(topic_name=t, topic_id=_topic_uuid(topic_ids.get(t)),
                                            partition_states=tuple(ps)) for t, ps in sorted(by_topic.items()))
    return UpdateMetadataBody(tuple(brokers), (), topics)


def update_metadata_request(version: int, controller_id: int, controller_epoch: int, broker_epoch: int,
                            body: UpdateMetadataBody) -> UpdateMetadataRequest:
    """An UpdateMetadata request of ``version`` to the broker of ``broker_epoch`` (v5+), saying ``body``."""
    if version <= 4:
        return UpdateMetadataRequest(controller_id=controller_id, controller_epoch=controller_epoch,
                                     ungrouped_partition_states=body.ungrouped_partition_states, topic_states=(),
                                     live_brokers=body.live_brokers)
    return UpdateMetadataRequest(controller_id=controller_id, controller_epoch=controller_epoch,
                                 broker_epoch=broker_epoch, ungrouped_partition_states=(),
                                 topic_states=body.topic_states, live_brokers=body.live_brokers)


def build_update_metadata(version: int, controller_id: int, controller_epoch: int, broker_epoch: int,
                          entries: Iterable[UpdateMetadataEntry], live_brokers: Iterable[zd.BrokerRegistration],
                          topic_ids: dict[str, str]) -> UpdateMetadataRequest:
    """An UpdateMetadata request of ``version`` (v0-v7 layouts; Kafka 3.x UpdateMetadataRequest.json)."""
    return update_metadata_request(version, controller_id, controller_epoch, broker_epoch,
                                   update_metadata_body(version, entries, live_brokers, topic_ids))


class PerVersion(Generic[B]):
    """``get(version)`` -> ``build(version)``, built the first time a version is asked for and
    the same object after: a request body that a batch sends to several brokers is built once
    per negotiated version, not once per broker. Thread-safe: the brokers' send tasks build big
    requests in worker threads (BUILD_OFF_LOOP_PARTITIONS), and a second one asking while the
    first builds waits for it and reuses its body. ``builds``: how many were built."""

    def __init__(self, build: Callable[[int], B]) -> None:
        self._build = build
        self._built: dict[int, B] = {}
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, version: int) -> B:
        with self._lock:
            got = self._built.get(version)
            if got is None:
                got = self._built[version] = self._build(version)
                self.builds += 1
            return got


def build_stop_replica(version: int, controller_id: int, controller_epoch: int, broker_epoch: int,
                       entries: Iterable[tuple[TopicPartition, int, bool]], delete: bool) -> StopReplicaRequest:
    """A StopReplica request of ``version`` for (partition, leader epoch, delete) entries. v0-v2
    carry one delete flag for the whole request, so callers split by ``delete`` for them."""
    items = sorted(entries, key=lambda e: (e[0].topic, e[0].partition, e[1], e[2]))  # attrs compares slowly
    if version == 0:
        return StopReplicaRequest(controller_id=controller_id, controller_epoch=controller_epoch,
                                  delete_partitions=delete, topics=(), topic_states=(),
                                  ungrouped_partitions=tuple(StopReplicaPartitionV0(
                                      topic_name=tp.topic, partition_index=tp.partition) for tp, _, _ in items))
    by_topic: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
    for tp, epoch, dele in items:
        by_topic[tp.topic].append((tp.partition, epoch, dele))
    if version <= 2:
        return StopReplicaRequest(controller_id=controller_id, controller_epoch=controller_epoch,
                                  broker_epoch=broker_epoch, delete_partitions=delete, ungrouped_partitions=(),
                                  topic_states=(), topics=tuple(StopReplicaTopicV1(
                                      name=t, partition_indexes=tuple(p for p, _, _ in ps))
                                      for t, ps in sorted(by_topic.items())))
    return StopReplicaRequest(controller_id=controller_id, controller_epoch=controller_epoch,
                              broker_epoch=broker_epoch, ungrouped_partitions=(), topics=(),
                              topic_states=tuple(StopReplicaTopicState(topic_name=t, partition_states=tuple(
                                  StopReplicaPartitionState(partition_index=p, leader_epoch=e, delete_partition=d)
                                  for p, e, d in ps)) for t, ps in sorted(by_topic.items())))


class ControllerBrokerRequestBatch:
    """The requests of one controller action (Kafka's ControllerBrokerRequestBatch).

    ``new_batch()`` must find it empty (a previous action that forgot to send is a bug);
    ``add_*`` accumulate; ``send_requests_to_brokers(controller_epoch)`` sends and clears.
    ``stop_replica_callback(broker_id, response)`` is attached to StopReplica requests with
    delete=True (topic deletion progress).
    """

    def __init__(self, context: "ControllerContext", channel: ControllerChannelManager, controller_id: int,
                 stop_replica_callback: Callback | None = None,
                 state_change_logger: StateChangeLogger | None = None) -> None:
        self.context = context
        #: state-change.log's "Sending LeaderAndIsr request to broker 2 ..." lines
        self.state_change_logger = state_change_logger or StateChangeLogger(controller_id, in_controller_context=True)
        self.channel = channel
        self.controller_id = controller_id
        self.stop_replica_callback = stop_replica_callback
        self.leader_and_isr: dict[int, dict[TopicPartition, LeaderAndIsrEntry]] = defaultdict(dict)
        self.stop_replica: dict[int, dict[TopicPartition, tuple[int, bool]]] = defaultdict(dict)
        self.update_metadata_brokers: set[int] = set()
        self.update_metadata_partitions: dict[TopicPartition, UpdateMetadataEntry] = {}
        self.sent = {"LeaderAndIsr": 0, "UpdateMetadata": 0, "StopReplica": 0}

    def new_batch(self) -> None:
        """Start a batch. Raises RuntimeError if the previous one was not sent."""
        if self.leader_and_isr or self.stop_replica or self.update_metadata_brokers:
            pending = (list(self.leader_and_isr), list(self.stop_replica), sorted(self.update_metadata_brokers))
            self.clear()
            raise RuntimeError(f"controller request batch was not empty when a new batch started: {pending}")

    def clear(self) -> None:
        self.leader_and_isr.clear()
        self.stop_replica.clear()
        self.update_metadata_brokers.clear()
        self.update_metadata_partitions.clear()

    def add_leader_and_isr_request_for_brokers(self, broker_ids: Iterable[int], tp: TopicPartition,
                                               leader_isr: LeaderIsrAndControllerEpoch,
                                               is_new: bool = False) -> None:
        """LeaderAndIsr for ``tp`` to each of ``broker_ids`` (non-negative ids), and, as Kafka
        does, UpdateMetadata for ``tp`` to every live broker."""
        ctx = self.context
        assignment = ctx.full_assignment(tp)
        # one entry object for every broker told the same (see _send_leader_and_isr)
        entries: dict[bool, LeaderAndIsrEntry] = {}
        for b in broker_ids:
            if b < 0:
                continue
            prev = self.leader_and_isr[b].get(tp)
            new = is_new or (prev is not None and prev.is_new)
            entry = entries.get(new)
            if entry is None:
                entry = entries[new] = LeaderAndIsrEntry(
                    tp, leader_isr, tuple(assignment.replicas), tuple(assignment.adding_replicas),
                    tuple(assignment.removing_replicas), new)
            self.leader_and_isr[b][tp] = entry
        self.add_update_metadata_request_for_brokers(ctx.live_brokers, [tp])

    def add_stop_replica_request_for_brokers(self, broker_ids: Iterable[int], tp: TopicPartition,
                                             delete_partition: bool) -> None:
        """StopReplica for ``tp`` to each of ``broker_ids``; delete wins over a queued non-delete."""
        li = self.context.leadership.get(tp)
        epoch = -2 if delete_partition else (li.leader_epoch if li else -1)  # EpochDuringDelete = -2
        for b in broker_ids:
            if b < 0:
                continue
            prev = self.stop_replica[b].get(tp)
            self.stop_replica[b][tp] = (epoch, delete_partition or (prev is not None and prev[1]))

    def add_update_metadata_request_for_brokers(self, broker_ids: Iterable[int],
                                                partitions: Iterable[TopicPartition] = ()) -> None:
        """UpdateMetadata to ``broker_ids`` describing ``partitions`` as the context has them now
        (leader -2 for topics being deleted; partitions without a state are skipped)."""
        self.update_metadata_brokers.update(b for b in broker_ids if b >= 0)
        ctx = self.context
        for tp in partitions:
            li = ctx.leadership.get(tp)
            if li is None:
                continue
            replicas = tuple(ctx.assignments.get(tp, ()))
            offline = tuple(r for r in replicas if not ctx.is_replica_online(tp, r, include_shutting_down=False))
            leader = LEADER_DURING_DELETE if tp.topic in ctx.topics_to_delete else li.leader
            self.update_metadata_partitions[tp] = UpdateMetadataEntry(
                tp, leader, li.leader_epoch, tuple(li.isr), li.zk_version, li.controller_epoch, replicas, offline)

    def send_requests_to_brokers(self, controller_epoch: int) -> None:
        """Queue everything collected: LeaderAndIsr, then UpdateMetadata, then StopReplica;
        then clear the batch."""
        try:
            self._send_leader_and_isr(controller_epoch)
            self._send_update_metadata(controller_epoch)
            self._send_stop_replica(controller_epoch)
        finally:
            self.clear()

    def _broker_epoch(self, broker_id: int) -> int:
        return self.context.live_brokers.get(broker_id, -1)

    def _send_leader_and_isr(self, controller_epoch: int) -> None:
        ctx = self.context
        topic_ids = dict(ctx.topic_ids)
        cid = self.controller_id
        #: brokers told the very same entries (the usual case: every replica of a partition is
        #: sent its new state) share one body per version, built once
        bodies: dict[tuple[int, ...], PerVersion[LeaderAndIsrBody]] = {}
        for broker_id, parts in sorted(self.leader_and_isr.items()):
            if broker_id not in ctx.live_brokers:
                continue
            entries = list(parts.values())
            same = tuple(map(id, entries))
            body = bodies.get(same)
            if body is None:
                leaders = []
                for leader_id in sorted({e.leader_isr.leader for e in entries}):
                    reg = ctx.broker_info.get(leader_id)
                    ep = ctx.inter_broker_endpoint(leader_id) if reg else None
                    if ep is not None:
                        leaders.append((leader_id, ep.host, ep.port))

                def build_body(version: int, entries: list[LeaderAndIsrEntry] = entries,
                               leaders: list[Any] = leaders) -> LeaderAndIsrBody:
                    return leader_and_isr_body(version, entries, leaders, topic_ids)

                body = bodies[same] = PerVersion(build_body)
            broker_epoch = self._broker_epoch(broker_id)

            def build(version: int, body: PerVersion[LeaderAndIsrBody] = body, broker_epoch: int = broker_epoch
                      ) -> Message:
                return leader_and_isr_request(version, cid, controller_epoch, broker_epoch, body.get(version))

            log.debug("leader_and_isr_queued", target_broker=broker_id,
                      partitions=[str(e.tp) for e in entries[:20]], count=len(entries))
            self._log_leader_and_isr(controller_epoch, broker_id, entries)
            if self.channel.send(broker_id, ApiKey.LEADER_AND_ISR, build, partitions=len(entries)):
                self.sent["LeaderAndIsr"] += 1

    def _log_leader_and_isr(self, controller_epoch: int, broker_id: int, entries: list[LeaderAndIsrEntry]) -> None:
        """Kafka's sendLeaderAndIsrRequest lines: per partition (TRACE) and per broker (INFO)."""
        scl = self.state_change_logger.with_controller_epoch(controller_epoch)
        leaders = sum(1 for e in entries if e.leader_isr.leader == broker_id)
        if scl.is_trace_enabled:
            with scl.buffered():
                for e in entries:
                    li = e.leader_isr
                    kind = "become-leader" if li.leader == broker_id else "become-follower"
                    state = leader_and_isr_partition_state_str(
                        e.tp.topic, e.tp.partition, li.controller_epoch, li.leader, li.leader_epoch, li.isr,
                        li.zk_version, e.replicas, e.adding, e.removing, e.is_new, li.leader_recovery_state)
                    scl.trace(f"Sending {kind} LeaderAndIsr request {state} to broker {broker_id} for partition "
                              f"{partition_str(e.tp)}")
        scl.info(f"Sending LeaderAndIsr request to broker {broker_id} with {leaders} become-leader and "
                 f"{len(entries) - leaders} become-follower partitions")

    def _send_update_metadata(self, controller_epoch: int) -> None:
        ctx = self.context
        if not self.update_metadata_brokers:
            return
        entries = list(self.update_metadata_partitions.values())
        self.state_change_logger.with_controller_epoch(controller_epoch).info(
            f"Sending UpdateMetadata request to brokers {scala_set(sorted(self.update_metadata_brokers))} "
            f"for {len(entries)} partitions")
        live = [ctx.broker_info[b] for b in sorted(ctx.live_or_shutting_down_broker_ids()) if b in ctx.broker_info]
        topic_ids = dict(ctx.topic_ids)
        cid = self.controller_id
        # the same partitions and brokers for every broker: built once per version
        body = PerVersion(lambda version: update_metadata_body(version, entries, live, topic_ids))
        for broker_id in sorted(self.update_metadata_brokers):
            if broker_id not in ctx.live_brokers:
                continue
            broker_epoch = self._broker_epoch(broker_id)

            def build(version: int, broker_epoch: int = broker_epoch) -> Message:
                return update_metadata_request(version, cid, controller_epoch, broker_epoch, body.get(version))

            if self.channel.send(broker_id, ApiKey.UPDATE_METADATA, build, partitions=len(entries)):
                self.sent["UpdateMetadata"] += 1

    def _send_stop_replica(self, controller_epoch: int) -> None:
        ctx = self.context
        cid = self.controller_id
        for broker_id, parts in sorted(self.stop_replica.items()):
            if broker_id not in ctx.live_brokers:
                continue
            broker_epoch = self._broker_epoch(broker_id)
            for delete in (False, True):
                entries = [(tp, epoch, d) for tp, (epoch, d) in parts.items() if d == delete]
                if not entries:
                    continue
                # delete and non-delete go in separate requests: Kafka's line for that (pre-v3) shape
                self.state_change_logger.with_controller_epoch(controller_epoch).info(
                    f"Sending StopReplica request (delete = {'true' if delete else 'false'}) for {len(entries)} "
                    f"replicas to broker {broker_id}")

                def build(version: int, entries: list[Any] = entries, delete: bool = delete,
                          broker_epoch: int = broker_epoch) -> Message:
                    return build_stop_replica(version, cid, controller_epoch, broker_epoch, entries, delete)

                callback = self.stop_replica_callback if delete else None
                if self.channel.send(broker_id, ApiKey.STOP_REPLICA, build, callback, partitions=len(entries)):
                    self.sent["StopReplica"] += 1
