"""ReplicaManager: the partitions this broker hosts, and the request paths that touch them
(Kafka's kafka.server.ReplicaManager, ZooKeeper mode).

- The control-plane seam (docs/architecture.md): ``become_leader_or_follower`` with
  ReplicaStateChange records (per partition the leader epoch must grow, else
  STALE_CONTROLLER_EPOCH, Kafka's answer; the broker must be in the replica list, else
  UNKNOWN_TOPIC_OR_PARTITION; logs are created on first sight with the topic's config,
  ``/config/topics/<t>`` over the broker defaults), then ``make_leaders`` (stop fetching)
  and ``make_followers`` ((re)start a fetcher from the new leader, replica_fetcher);
  ``stop_replicas`` with StopReplicaPartition records (stop fetching, drop the partition,
  delete its log when asked; leader epochs fence stale stops: FENCED_LEADER_EPOCH). The
  ZooKeeper controller's LeaderAndIsr / StopReplica requests are fenced (controller epoch,
  broker epoch: ``fence_controller_request``) and translated by KafkaApis.
- Produce (``append_records``): acks 0/1/-1; offsets assigned by patching the batch in
  place; acks=-1 waits in the "Produce" purgatory (DelayedProduce) until the ISR has it.
- Fetch (``fetch_messages``): file slices (never copied), consumers up to the HW, followers
  (replica_id >= 0) up to the LEO, whose fetch offsets move the HW and the ISR; long polls
  wait in the "Fetch" purgatory (DelayedFetch).
- ListOffsets (``fetch_offset_for_timestamp``), OffsetsForLeaderEpoch
  (``last_offset_for_leader_epoch``), DescribeLogDirs (``describe_log_dirs``, KIP-113).
- DeleteRecords (``delete_records``, KIP-107): the leader moves its log start offset; the
  answer waits in the "DeleteRecords" purgatory (DelayedDeleteRecords) until every follower
  on a live broker has reported a log start offset at least as high in its Fetch.
- Background tasks: ISR shrink check (every replica.lag.time.max.ms / 2), ISR change
  propagation to ``/isr_change_notification`` (Kafka's 2.5 s / 5 s / 60 s rule), HW
  checkpoint (replica.high.watermark.checkpoint.interval.ms), and the LogManager's
  scheduled work that Kafka's LogManager.startup schedules (retention every
  log.retention.check.interval.ms, flush.ms, recovery-point and log-start checkpoints every
  log.flush.(start.)offset.checkpoint.interval.ms, the log cleaner for compacted topics every
  log.cleaner.backoff.ms when log.cleaner.enable) — storage has no trio, so it runs here.

Topic/partition keys are storage's TopicPartition; ZooKeeper calls use coordination's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs
import structlog
import trio

from kafkalike.broker import request_hops, request_pipelining
from kafkalike.broker.add_partitions_to_txn_manager import AddPartitionsToTxnManager
from kafkalike.broker.delayed_delete_records import DelayedDeleteRecords, DeleteRecordsPartitionStatus
from kafkalike.broker.checkpoint_writer import CheckpointWriter
from kafkalike.broker.delayed_fetch import DelayedFetch, FetchPartitionInfo
from kafkalike.broker.delayed_operation import DelayedOperationPurgatory
from kafkalike.broker.delayed_produce import DelayedProduce, ProducePartitionStatus
from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.metadata_cache import MetadataCache
from kafkalike.broker.partition import DuplicateBatch, Partition, PartitionError, PartitionState, now_ms
from kafkalike.broker.replica_fetcher import BrokerEndpoint, InterBrokerClientConfig, ReplicaFetcherManager
from kafkalike.broker.replication_quota_manager import ReplicationQuotas
from kafkalike.coordination import BadVersion, NoNode
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import KafkaZkClient
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.fetch import FileRecords
from kafkalike.protocol.record_batch import HEADER_SIZE, LOG_OVERHEAD, MAGIC_AT, RecordBatch
from kafkalike.storage import (CorruptRecordError, KafkaStorageError, LogConfig,
                               OffsetOutOfRangeError, RecordTooLargeError, TopicPartition)
from kafkalike.storage.errors import InvalidRecordError
from kafkalike.storage.log_manager import LogManager
from kafkalike.storage.transaction_index import AbortedTxn
from kafkalike.storage.unified_log import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP

EARLIEST_LOCAL_TIMESTAMP = -4  # ListOffsets v8+ (KIP-405)
LATEST_TIERED_TIMESTAMP = -5  # ListOffsets v9+ (KIP-1005)

log = structlog.get_logger(__name__)

EPOCH_DURING_DELETE = -2
NO_EPOCH = -1
ISR_CHANGE_PROPAGATION_INTERVAL_MS = 2500
ISR_CHANGE_PROPAGATION_BLACKOUT_MS = 5000
ISR_CHANGE_MAX_DELAY_MS = 60000
READ_COMMITTED = 1
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


def broker_log_config(config: Any) -> LogConfig:
    """The broker-level LogConfig from a KafkaConfig's log.* / message.max.bytes values."""
    props: dict[str, Any] = {}
    for name, value in config.values.items():
        if value is None:
            continue
        props[name] = ",".join(value) if isinstance(value, list) else value
    return LogConfig.from_broker_properties(props)


@attrs.frozen
class FetchPartitionData:
    """One partition of a Fetch answer: error, HW, last stable offset, log start offset,
    records (protocol FileRecords slice, b"" when nothing, None on error), and for a
    read_committed fetch the aborted transactions overlapping the data (None otherwise)."""

    tp: TopicPartition
    error: ErrorCode
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: Any = None
    aborted_transactions: tuple[AbortedTxn, ...] | None = None

    @property
    def size(self) -> int:
        r = self.records
        if r is None:
            return 0
        return r.size if isinstance(r, FileRecords) else len(r)


@attrs.frozen
class TxnMarkerEntry:
    """One marker of a WriteTxnMarkers request: the producer, the coordinator epoch, COMMIT
    (True) or ABORT, and the partitions to write it to."""

    producer_id: int
    producer_epoch: int
    coordinator_epoch: int
    committed: bool
    partitions: tuple[TopicPartition, ...]


@attrs.frozen
class ReplicaManagerStatistics:
    """Snapshot: partitions led / followed, under-replicated count, ISR shrink/expand totals,
    purgatory sizes (requests waiting in Produce, Fetch, DeleteRecords)."""

    leader_count: int
    follower_count: int
    under_replicated_partitions: int
    isr_shrinks: int
    isr_expands: int
    delayed_produce: int
    delayed_fetch: int
    delayed_delete_records: int = 0


@attrs.frozen
class ReplicaLogDirInfo:
    """One log in a DescribeLogDirs answer: partition, size (bytes of its .log files), offset
    lag (offsets) and whether it is a -future log (Kafka's DescribeLogDirsPartition)."""

    tp: TopicPartition
    size: int
    offset_lag: int
    is_future: bool


@attrs.frozen
class LogDirDescription:
    """One log dir in a DescribeLogDirs answer (Kafka's DescribeLogDirsResult): absolute path,
    error (NONE or KAFKA_STORAGE_ERROR), volume total / usable bytes (-1 when unknown) and
    its logs."""

    log_dir: str
    error: ErrorCode
    total_bytes: int = -1
    usable_bytes: int = -1
    replicas: tuple[ReplicaLogDirInfo, ...] = ()


@attrs.frozen
class OffsetForTimestampResult:
    """One partition of a ListOffsets answer: error, the timestamp (ms) and offset found and
    the leader epoch of that offset (-1 each when none)."""

    error: ErrorCode
    timestamp: int = -1
    offset: int = -1
    leader_epoch: int = -1


@attrs.frozen
class EpochEndOffset:
    """One partition of an OffsetsForLeaderEpoch answer (KIP-101/279): error, the largest
    leader epoch <= the one asked and where it ends (offset), -1 each when unknown."""

    error: ErrorCode
    leader_epoch: int = -1
    end_offset: int = -1


@attrs.frozen
class ReplicaStateChange:
    """One partition's new state for this broker, as a control plane hands it over (ZooKeeper
    mode: a LeaderAndIsr partition state; KRaft: the partition's registration in a metadata
    delta). ``topic_id``: the topic's id (KIP-516), None when unknown (LeaderAndIsr before v5,
    a zero id)."""

    tp: TopicPartition
    topic_id: uuid.UUID | None
    state: PartitionState


@attrs.frozen
class StopReplicaPartition:
    """One partition to stop hosting: ``leader_epoch`` fences a stale stop (-1: unchecked,
    -2: the topic is being deleted), ``delete`` also deletes its log."""

    tp: TopicPartition
    leader_epoch: int = -1
    delete: bool = False


@attrs.frozen
class StopReplicaResult:
    """What ``stop_replicas`` did to one partition: NONE, FENCED_LEADER_EPOCH or
    KAFKA_STORAGE_ERROR (its log could not be deleted)."""

    tp: TopicPartition
    error: ErrorCode


@attrs.frozen
class ProduceRecordsError:
    """Why a Produce partition's records were refused before the append (Kafka's
    ProduceRequest.validateRecords): INVALID_RECORD or CORRUPT_MESSAGE, with the message."""

    error: ErrorCode
    message: str


def _validate_produce_records(records: Any) -> RecordBatch | ProduceRecordsError:
    """Kafka's ProduceRequest.validateRecords (v3+): exactly one batch of magic 2.

    Returns the batch's header view (protocol.record_batch.RecordBatch, parsed once here and
    handed down to Partition.append_records_to_leader) when the header looks right (the log
    then checks CRC and lengths: CORRUPT_MESSAGE), else the ProduceRecordsError to answer."""
    if records is None or len(records) == 0:
        return ProduceRecordsError(ErrorCode.invalid_record, "Produce requests must have at least one record batch")
    n = len(records)
    if n < MAGIC_AT + 1:
        return ProduceRecordsError(ErrorCode.corrupt_message, f"record batch of {n} bytes is truncated")
    magic = records[MAGIC_AT]
    if magic in (0, 1):
        return ProduceRecordsError(
            ErrorCode.invalid_record, "Produce requests are only allowed to contain record batches with magic version 2")
    if n < HEADER_SIZE:
        return ProduceRecordsError(ErrorCode.corrupt_message, f"record batch of {n} bytes is shorter than its header")
    batch = RecordBatch(records, 0)
    if 0 < batch.batch_length and LOG_OVERHEAD + batch.batch_length < n:
        return ProduceRecordsError(
            ErrorCode.invalid_record, "Produce requests are only allowed to contain exactly one record batch")
    return batch


# coordinator answers to a KIP-890 verification a producer retries (as NOT_ENOUGH_REPLICAS)
_VERIFICATION_RETRIABLE = frozenset({
    ErrorCode.concurrent_transactions, ErrorCode.coordinator_load_in_progress,
    ErrorCode.coordinator_not_available, ErrorCode.not_coordinator, ErrorCode.network_exception,
})


# partitions a LeaderAndIsr or StopReplica handles between two yields to the event loop: a
# 10,000-partition LeaderAndIsr creates 10,000 logs (seconds of disk work), and the broker
# must go on serving produce and fetch meanwhile, as Kafka's request handler threads do:
# a state change yields once it has held the loop this long (seconds)
STATE_CHANGE_YIELD_AFTER_S = 0.02


# partition.metadata files written per worker-thread call (each is an fsynced write and a
# directory fsync, ~5 ms here): a shutdown waits for at most one such call, not a whole batch
PARTITION_METADATA_WRITES_PER_THREAD_CALL = 32


# leader-epoch-checkpoint files written per worker-thread call (each an fsynced atomic write)
LEADER_EPOCH_WRITES_PER_THREAD_CALL = 32

# renamed *-delete log dirs removed per worker-thread call
LOG_DIRS_DELETED_PER_THREAD_CALL = 16


class _LoopYielder:
    """Lets the event loop run between the partitions of a state change once the change has
    held it for ``STATE_CHANGE_YIELD_AFTER_S`` (by elapsed time, not a partition count: one
    partition may cost microseconds or an fsync)."""

    def __init__(self) -> None:
        self._since = time.monotonic()

    async def __call__(self) -> None:
        now = time.monotonic()
        if now - self._since >= STATE_CHANGE_YIELD_AFTER_S:
            await trio.sleep(0)
            self._since = time.monotonic()


class ReplicaManager:
    """The broker's partitions (Kafka's ReplicaManager). Built by KafkaServer.startup from
    what it uses, as Kafka's KafkaServer builds its ReplicaManager:

    - ``config``: the broker's KafkaConfig (log.* defaults, min.insync.replicas,
      replica.lag.time.max.ms, fetch.max.bytes, checkpoint and retention intervals, and the
      replica.* keys its fetchers read);
    - ``broker_id``; ``broker_epoch``: a callable answering the current broker epoch (the
      czxid of this broker's registration, which changes when it registers again after a
      session expiry; controller requests for an older one are fenced);
    - ``log_manager`` (started: logs loaded), ``metadata_cache`` (endpoints of leaders, live
      brokers, known partitions), ``zk_client`` (ISR writes, /isr_change_notification,
      /log_dir_event_notification, topic configs);
    - ``nursery``: where its background tasks, fetchers and after-answer file writes run;
    - ``inter_broker``: SSL / SASL of its fetchers' connections to leaders;
    - ``add_partitions_to_txn_manager``: asks transaction coordinators before a producer's
      first transactional write to a partition (KIP-890 part 1), used when
      ``transaction.partition.verification.enable`` is true (None: no verification).

    ``startup()`` starts the background tasks; ``shutdown()`` stops the fetchers, answers
    what waits in the purgatories and checkpoints the high watermarks.

    ``state_change_lock`` is Kafka's replicaStateChangeLock: LeaderAndIsr, StopReplica and
    UpdateMetadata each hold it from their controller-epoch check to their last change, so
    a large request that yields to the event loop (every ``STATE_CHANGE_YIELD_AFTER_S``)
    is never interleaved with another controller request."""

    def __init__(self, config: KafkaConfig, broker_id: int, log_manager: LogManager,
                 metadata_cache: MetadataCache, zk_client: KafkaZkClient, nursery: trio.Nursery,
                 broker_epoch: Callable[[], int],
                 inter_broker: InterBrokerClientConfig = InterBrokerClientConfig(),
                 add_partitions_to_txn_manager: AddPartitionsToTxnManager | None = None,
                 replication_quotas: ReplicationQuotas | None = None) -> None:
        self.config = config
        # KIP-73 replication throttles (leader side here, follower side in the fetchers)
        self.replication_quotas = replication_quotas
        self.add_partitions_to_txn_manager = add_partitions_to_txn_manager
        # KIP-890 verification guards (Kafka's VerificationGuard): (partition, producer id) ->
        # the guard of a verification in flight; a marker for the producer removes it, so a
        # batch verified before an abort marker landed is refused, not appended
        self._verification_guards: dict[tuple[TopicPartition, int], object] = {}
        self.broker_id = broker_id
        self.log_manager = log_manager
        self.metadata_cache = metadata_cache
        self.zk_client = zk_client
        self.nursery = nursery
        self.broker_epoch = broker_epoch
        self.partitions: dict[TopicPartition, Partition] = {}
        self.controller_epoch = 0
        self.produce_purgatory = DelayedOperationPurgatory("Produce")
        self.fetch_purgatory = DelayedOperationPurgatory("Fetch")
        self.delete_records_purgatory = DelayedOperationPurgatory("DeleteRecords")
        self.topic_configs: dict[str, dict[str, str]] = {}
        self.isr_change_set: set[TopicPartition] = set()
        self.last_isr_change_ms = 0
        self.last_isr_propagation_ms = 0
        self._hw_checkpoint_started = False
        self._isr_changed = trio.Event()
        self.state_change_lock = trio.Lock()
        self._metadata_write_lock = trio.Lock()  # one partition.metadata batch at a time
        self._epoch_write_lock = trio.Lock()  # one leader-epoch-checkpoint batch at a time
        self._deletion_queued = trio.Event()  # set when StopReplica renamed a log to *-delete
        # Called as listener(tp, producer_id, producer_epoch, committed) once a transaction
        # marker (WriteTxnMarkers, KIP-98) appended on this leader is replicated to the ISR and
        # answered NONE (Kafka's KafkaApis.handleWriteTxnMarkersRequest then tells the group
        # coordinator: onTransactionCompleted). Listeners are synchronous and must not raise.
        self.txn_marker_listeners: list[Callable[[TopicPartition, int, int, bool], None]] = []
        self.fetcher_manager = ReplicaFetcherManager(broker_id, config, self.get_partition, nursery,
                                                     inter_broker, quota=replication_quotas.follower
                                                     if replication_quotas is not None else None)
        # any log's unrecoverable write failure (leader, follower, flush) takes its dir
        # offline through here
        log_manager.on_log_dir_failure = self.handle_log_dir_failure
        log_manager.file_delete_delay_ms = int(config["log.segment.delete.delay.ms"])
        # the high-watermark, recovery-point and log-start-offset files, written in worker threads
        self.checkpoint_writer = CheckpointWriter(log_manager.write_checkpoint)

    # ------------------------------------------------------------------ lifecycle
    async def startup(self) -> None:
        """Start the background tasks (Kafka's ReplicaManager.startup and the LogManager's
        scheduled work): ISR expiration, ISR change propagation, log maintenance, deletion
        of renamed log dirs, the checkpoint writer."""
        self.nursery.start_soon(self.checkpoint_writer.run)
        self.nursery.start_soon(self._isr_expiration_task)
        self.nursery.start_soon(self._isr_change_propagation_task)
        self.nursery.start_soon(self._log_maintenance_task)
        self.nursery.start_soon(self._log_deletion_task)

    async def shutdown(self) -> None:
        """Stop the fetchers, complete what waits in the purgatories, write the HW
        checkpoint and close the checkpoint writer (the LogManager's shutdown writes the final
        files after it)."""
        await self.fetcher_manager.shutdown()
        # each waiting operation checked once, not once per partition it watches
        for purgatory in (self.produce_purgatory, self.fetch_purgatory, self.delete_records_purgatory):
            purgatory.check_and_complete_every()
        self.checkpoint_writer.queue(self.log_manager.high_watermark_checkpoint())
        await self.checkpoint_writer.close()

    # ------------------------------------------------------------------ configs
    def log_config_for(self, topic: str) -> LogConfig:
        """Broker defaults overridden by the topic's /config/topics entry (cached)."""
        base = broker_log_config(self.config)
        overrides = self.topic_configs.get(topic)
        return LogConfig.from_properties(overrides, base) if overrides else base

    def min_isr_of(self, topic: str) -> int:
        """min.insync.replicas of a topic (override, else the broker's)."""
        raw = self.topic_configs.get(topic, {}).get("min.insync.replicas")
        try:
            return int(raw) if raw is not None else int(self.config["min.insync.replicas"])
        except ValueError:
            return int(self.config["min.insync.replicas"])

    async def _load_topic_config(self, topic: str) -> None:
        if topic in self.topic_configs:
            return
        try:
            self.topic_configs[topic] = await self.zk_client.get_entity_config(
                zd.CONFIG_TYPE_TOPIC, topic)
            if self.replication_quotas is not None:
                self.replication_quotas.update_topic(topic, self.topic_configs[topic])
        except Exception as exc:
            log.warning("topic_config_read_failed", topic=topic, error=str(exc))

    def update_topic_config(self, topic: str, config: dict[str, str]) -> None:
        """A topic's dynamic config changed (/config/changes): apply it to its logs."""
        self.topic_configs[topic] = dict(config)
        if self.replication_quotas is not None:
            self.replication_quotas.update_topic(topic, config)
        new = self.log_config_for(topic)
        for tp, lg in list(self.log_manager.logs.items()):
            if tp.topic == topic:
                lg.update_config(new)

    def reconfigure(self, config: KafkaConfig) -> None:
        """A dynamic broker config change (DynamicBrokerConfig, KIP-226): use ``config`` from
        now on and give every log its topic's config over the new broker defaults (Kafka's
        DynamicLogConfig.reconfigure: logs without an override take the new default)."""
        self.config = config
        self.fetcher_manager.config = config
        configs: dict[str, LogConfig] = {}
        for tp, lg in list(self.log_manager.logs.items()):
            if tp.topic not in configs:
                configs[tp.topic] = self.log_config_for(tp.topic)
            lg.update_config(configs[tp.topic])

    # ------------------------------------------------------------------ lookups
    def get_partition(self, tp: TopicPartition) -> Partition | None:
        return self.partitions.get(tp)

    def unknown_partition_error(self, tp: TopicPartition) -> ErrorCode:
        """Kafka's getPartitionOrError for a partition not hosted here: KAFKA_STORAGE_ERROR
        (its log dir is offline), NOT_LEADER_OR_FOLLOWER (the cluster has it), else
        UNKNOWN_TOPIC_OR_PARTITION."""
        if tp in self.log_manager.offline:
            return ErrorCode.kafka_storage_error
        if self.metadata_cache.partition(zd.TopicPartition(tp.topic, tp.partition)) is not None:
            return ErrorCode.not_leader_or_follower
        return ErrorCode.unknown_topic_or_partition

    def leader_partition(self, tp: TopicPartition) -> Partition:
        """The partition if this broker leads it; raises PartitionError otherwise."""
        p = self.partitions.get(tp)
        if p is None:
            raise PartitionError(self.unknown_partition_error(tp))
        if not p.is_leader:
            raise PartitionError(ErrorCode.not_leader_or_follower)
        return p

    def _complete_delayed(self, tp: TopicPartition) -> None:
        self.produce_purgatory.check_and_complete(tp)
        self.fetch_purgatory.check_and_complete(tp)
        self.delete_records_purgatory.check_and_complete(tp)

    def fence_controller_request(self, api: str, controller_epoch: int, broker_epoch: int = -1) -> ErrorCode | None:
        """Fence a ZooKeeper-mode controller request (LeaderAndIsr, StopReplica, UpdateMetadata)
        against the broker's one controller epoch (Kafka's ReplicaManager.controllerEpoch,
        which maybeUpdateMetadataCache checks too): STALE_CONTROLLER_EPOCH if it comes from an
        older controller, STALE_BROKER_EPOCH if it was meant for an earlier registration of this
        broker (``broker_epoch`` -1: the request version has no such field, or it is not set).
        Otherwise adopts ``controller_epoch`` and returns None. The caller holds
        ``state_change_lock`` until the request's changes are made."""
        if controller_epoch < self.controller_epoch:
            log.warning("stale_controller_epoch", api=api,
                        request_epoch=controller_epoch, current=self.controller_epoch)
            return ErrorCode.stale_controller_epoch
        if 0 <= broker_epoch < self.broker_epoch():
            log.warning("stale_broker_epoch", api=api,
                        request_epoch=broker_epoch, current=self.broker_epoch())
            return ErrorCode.stale_broker_epoch
        self.controller_epoch = controller_epoch
        return None

    # ------------------------------------------------------------------ control-plane seam
    # The state changes both of Kafka's control planes make (ZooKeeper mode: the LeaderAndIsr
    # and StopReplica handlers; KRaft: BrokerMetadataPublisher -> ReplicaManager.applyDelta):
    # become_leader_or_follower (checks, then make_leaders / make_followers), stop_replicas.
    # They take named records, never a request: KafkaApis translates the controller's requests
    # (and fences them by controller epoch and broker epoch) before calling them. Callers hold
    # ``state_change_lock``.
    async def become_leader_or_follower(self, changes: Sequence[ReplicaStateChange],
                                        leader_endpoints: Mapping[int, BrokerEndpoint]
                                        ) -> dict[TopicPartition, ErrorCode]:
        """Apply ``changes`` (Kafka's ReplicaManager.becomeLeaderOrFollower past its request
        checks): per partition the leader epoch must grow (else STALE_CONTROLLER_EPOCH, Kafka's
        answer; the same epoch with a topic id now known records the id and answers NONE),
        this broker must be a replica (else UNKNOWN_TOPIC_OR_PARTITION), the log's topic id
        must match (else INCONSISTENT_TOPIC_ID), its dir must be online (else
        KAFKA_STORAGE_ERROR). Logs are created on first sight with the topic's config
        (``/config/topics/<t>`` over the broker defaults). Then ``make_leaders`` and
        ``make_followers`` (followers fetch from ``leader_endpoints``, else from the metadata
        cache's endpoint on the inter-broker listener). Returns each partition's error, in
        the order of ``changes``. Yields to the event loop every ``STATE_CHANGE_YIELD_AFTER_S``.
        The new leaders' leader-epoch-checkpoint files are written afterwards, in a worker
        thread (``_write_leader_epochs``); a produce to one of them writes its file first."""
        for topic in {c.tp.topic for c in changes}:
            if not any(tp.topic == topic for tp in self.partitions):
                await self._load_topic_config(topic)
        errors: dict[TopicPartition, ErrorCode] = {}
        to_lead: list[ReplicaStateChange] = []
        to_follow: list[ReplicaStateChange] = []
        lm = self.log_manager
        maybe_yield = _LoopYielder()
        for change in changes:
            await maybe_yield()
            tp, state, request_id = change.tp, change.state, change.topic_id
            if tp in lm.offline:
                errors[tp] = ErrorCode.kafka_storage_error
                continue
            # KIP-516: the log's topic id (its partition.metadata) must match the control
            # plane's (Kafka's hasConsistentTopicId); an unknown id checks nothing
            log_id = lm.topic_id(tp)
            if request_id is not None and log_id is not None and log_id != request_id:
                log.error("leader_and_isr_inconsistent_topic_id", partition=str(tp),
                          log_topic_id=str(log_id), request_topic_id=str(request_id))
                errors[tp] = ErrorCode.inconsistent_topic_id
                continue
            p = self.partitions.get(tp)
            current_epoch = p.leader_epoch if p is not None else -1
            if state.leader_epoch > current_epoch:
                if self.broker_id not in state.replicas:
                    log.warning("leader_and_isr_not_a_replica", partition=str(tp),
                                replicas=list(state.replicas))
                    errors[tp] = ErrorCode.unknown_topic_or_partition
                    continue
            elif (p is not None and state.leader_epoch == current_epoch and request_id is not None
                  and log_id is None):
                # same epoch, the controller now knows the topic id: record it (Kafka: NONE)
                lm.assign_topic_id(tp, request_id)
                errors[tp] = ErrorCode.none
                continue
            else:
                log.info("leader_and_isr_stale_leader_epoch", partition=str(tp),
                         request_leader_epoch=state.leader_epoch, current=current_epoch)
                errors[tp] = ErrorCode.stale_controller_epoch
                continue
            if p is None:
                try:
                    self.get_or_create_partition(tp)
                except KafkaStorageError as exc:
                    log.error("log_create_failed", partition=str(tp), error=str(exc))
                    errors[tp] = ErrorCode.kafka_storage_error
                    continue
            if request_id is not None and log_id is None:
                lm.assign_topic_id(tp, request_id)
            errors[tp] = ErrorCode.none
            (to_lead if state.leader == self.broker_id else to_follow).append(change)

        await self.make_leaders(to_lead, maybe_yield)
        await self.make_followers(to_follow, leader_endpoints, maybe_yield)
        pending = lm.take_pending_partition_metadata()
        if pending:
            self.nursery.start_soon(self._write_partition_metadata, pending)
        if not self._hw_checkpoint_started:
            self._hw_checkpoint_started = True
            self.nursery.start_soon(self._hw_checkpoint_task)
        return errors

    def get_or_create_partition(self, tp: TopicPartition) -> Partition:
        """The hosted Partition of ``tp``, created (with its log, opened or created with the
        topic's LogConfig) on first sight (Kafka's ReplicaManager.getOrCreatePartition).
        Raises KafkaStorageError when the log cannot be created."""
        p = self.partitions.get(tp)
        if p is None:
            lg = self.log_manager.get_or_create_log(tp, self.log_config_for(tp.topic))
            p = self.partitions[tp] = Partition(tp, self.broker_id, lg)
        return p

    async def make_leaders(self, changes: Sequence[ReplicaStateChange],
                           maybe_yield: Callable[[], Awaitable[None]] | None = None) -> None:
        """Make this broker the leader of each (hosted: ``get_or_create_partition``) partition
        of ``changes`` (Kafka's ReplicaManager.makeLeaders): stop fetching it, install the new
        state (Partition.make_leader), complete the requests waiting on it; the new epochs'
        checkpoint files are written afterwards in a worker thread."""
        if not changes:
            return
        maybe_yield = maybe_yield or _LoopYielder()
        await self.fetcher_manager.remove_fetchers([c.tp for c in changes])
        led: list[Partition] = []
        for change in changes:
            await maybe_yield()
            p = self.partitions[change.tp]
            p.make_leader(change.state)
            self._complete_delayed(p.tp)
            led.append(p)
        epochs = [p for p in led if p.log.leader_epoch_cache.dirty]
        if epochs:
            self.nursery.start_soon(self._write_leader_epochs, epochs)

    async def make_followers(self, changes: Sequence[ReplicaStateChange],
                             leader_endpoints: Mapping[int, BrokerEndpoint],
                             maybe_yield: Callable[[], Awaitable[None]] | None = None) -> None:
        """Make this broker a follower of each (hosted) partition of ``changes`` (Kafka's
        ReplicaManager.makeFollowers): install the new state (Partition.make_follower),
        complete the requests waiting on it, and fetch from its leader: the endpoint in
        ``leader_endpoints``, else the metadata cache's on the inter-broker listener; a
        partition whose leader is unknown (-1 or no endpoint) is not fetched
        (``follower_leader_unavailable``). Every follower truncates first (replica_fetcher)."""
        if not changes:
            return
        maybe_yield = maybe_yield or _LoopYielder()
        await self.fetcher_manager.remove_fetchers([c.tp for c in changes])
        add: dict[TopicPartition, BrokerEndpoint] = {}
        for change in changes:
            await maybe_yield()
            p, state = self.partitions[change.tp], change.state
            p.make_follower(state)
            self._complete_delayed(p.tp)
            endpoint = leader_endpoints.get(state.leader)
            if endpoint is None:
                found = self.metadata_cache.endpoint(state.leader, self.config.inter_broker_listener_name)
                if found is not None:
                    endpoint = BrokerEndpoint(state.leader, found[0], found[1])
            if state.leader >= 0 and endpoint is not None:
                add[p.tp] = endpoint
            else:
                log.info("follower_leader_unavailable", partition=str(p.tp), leader=state.leader)
        self.fetcher_manager.add_fetchers(add)

    async def _write_partition_metadata(self, pending: list[tuple[TopicPartition, Any, Any]]) -> None:
        """Write the partition.metadata files of newly assigned topic ids in a worker thread,
        one batch at a time, after the LeaderAndIsr answer (Kafka's "flush-metadata-file"
        scheduler task), PARTITION_METADATA_WRITES_PER_THREAD_CALL per thread call so that a
        shutdown cancels between calls. A write that fails takes the log's dir offline, as Kafka's
        PartitionMetadataFile.maybeFlush does through the LogDirFailureChannel."""
        from kafkalike.storage.partition_metadata_file import write_partition_metadata

        failed = []
        async with self._metadata_write_lock:
            for i in range(0, len(pending), PARTITION_METADATA_WRITES_PER_THREAD_CALL):
                chunk = pending[i:i + PARTITION_METADATA_WRITES_PER_THREAD_CALL]
                failed += await trio.to_thread.run_sync(write_partition_metadata, chunk)
        for tp, partition_dir, exc in failed:
            lg = self.log_manager.get_log(tp)
            if lg is not None and lg.dir == partition_dir:
                log.error("partition_metadata_write_failed", partition=str(tp), error=str(exc))
                self.handle_log_dir_failure(partition_dir.parent, exc)

    async def _write_leader_epochs(self, partitions: list[Partition]) -> None:
        """Write the leader-epoch-checkpoint files that make_leader left in memory, in a worker
        thread, LEADER_EPOCH_WRITES_PER_THREAD_CALL per call (so a shutdown cancels between
        calls; what is left is written by the log's close). Kafka writes them in makeLeader, on
        its request handler thread. A cache already written (by a produce, or by a later
        change) is skipped; a failed write is logged and left in memory (written at the next
        change or close), as Partition.flush_leader_epoch."""
        from kafkalike.storage.leader_epoch_file_cache import flush_leader_epoch_caches

        async with self._epoch_write_lock:
            for i in range(0, len(partitions), LEADER_EPOCH_WRITES_PER_THREAD_CALL):
                caches = [p.log.leader_epoch_cache for p in partitions[i:i + LEADER_EPOCH_WRITES_PER_THREAD_CALL]
                          if p.log.leader_epoch_cache.dirty]
                if not caches:
                    continue
                failed = await trio.to_thread.run_sync(flush_leader_epoch_caches, caches)
                for cache, exc in failed:
                    log.warning("leader_epoch_checkpoint_failed", file=str(exc.path), error=str(exc))

    async def _log_deletion_task(self) -> None:
        """Remove the *-delete dirs of deleted logs once log.segment.delete.delay.ms has passed
        (Kafka's LogManager.deleteLogs, a scheduler task), in a worker thread,
        LOG_DIRS_DELETED_PER_THREAD_CALL dirs per call; wakes at the next due time, at most 1 s
        apart, or when StopReplica queues a dir."""
        lm = self.log_manager
        while True:
            due = lm.take_due_deletions()
            for i in range(0, len(due), LOG_DIRS_DELETED_PER_THREAD_CALL):
                chunk = due[i:i + LOG_DIRS_DELETED_PER_THREAD_CALL]
                removed = await trio.to_thread.run_sync(lm.delete_dirs, chunk)
                log.info("log_dirs_deleted", dirs=removed)
            if due:
                continue
            wait_s = 1.0
            next_due = lm.next_deletion_due_ms()
            if next_due is not None:
                wait_s = min(wait_s, max(0.0, (next_due - lm.clock()) / 1000.0))
            with trio.move_on_after(wait_s):
                await self._deletion_queued.wait()
            self._deletion_queued = trio.Event()

    # ------------------------------------------------------------------ StopReplica
    async def stop_replicas(self, partitions: Sequence[StopReplicaPartition]) -> list[StopReplicaResult]:
        """Stop hosting ``partitions`` (Kafka's ReplicaManager.stopReplicas; part of the
        control-plane seam, callers hold ``state_change_lock``): stop fetching / leading, answer
        what waits on them, delete their logs when asked. A partition whose leader epoch is
        newer than the one given (not -1 / -2) is left alone: FENCED_LEADER_EPOCH; a log that
        cannot be deleted: KAFKA_STORAGE_ERROR. Returns one result per partition, the fenced
        ones first. Yields every ``STATE_CHANGE_YIELD_AFTER_S``, like LeaderAndIsr. A deleted
        log's dir is renamed to ``*-delete`` at once and removed after
        log.segment.delete.delay.ms by ``_log_deletion_task`` in a worker thread (Kafka's
        LogManager.asyncDelete)."""
        results: list[StopReplicaResult] = []
        stopping: list[StopReplicaPartition] = []
        for item in partitions:
            p = self.partitions.get(item.tp)
            epoch = item.leader_epoch
            if p is not None and epoch not in (EPOCH_DURING_DELETE, NO_EPOCH) and epoch < p.leader_epoch:
                log.info("stop_replica_fenced", partition=str(item.tp), request_leader_epoch=epoch,
                         current=p.leader_epoch)
                results.append(StopReplicaResult(item.tp, ErrorCode.fenced_leader_epoch))
                continue
            stopping.append(item)
        await self.fetcher_manager.remove_fetchers([item.tp for item in stopping])
        lm = self.log_manager
        maybe_yield = _LoopYielder()
        deleted_any = False
        for item in stopping:
            await maybe_yield()
            tp, delete = item.tp, item.delete
            error = ErrorCode.none
            p = self.partitions.pop(tp, None)
            if p is not None:
                self.produce_purgatory.complete_all(tp)
                self.fetch_purgatory.complete_all(tp)
                self.delete_records_purgatory.check_and_complete(tp)  # -> UNKNOWN_TOPIC_OR_PARTITION
            if delete:
                try:
                    lm.delete_log(tp)
                    deleted_any = True
                except Exception as exc:
                    log.error("log_delete_failed", partition=str(tp), error=str(exc))
                    error = ErrorCode.kafka_storage_error
                if not any(t.topic == tp.topic for t in self.partitions):
                    self.topic_configs.pop(tp.topic, None)
            log.info("replica_stopped", partition=str(tp), deleted=delete)
            results.append(StopReplicaResult(tp, error))
        if deleted_any:
            self._deletion_queued.set()
        return results

    # ------------------------------------------------------------------ Produce
    async def append_records(self, required_acks: int, timeout_ms: int,
                             entries: list[tuple[TopicPartition, Any]],
                             internal_topics_allowed: bool = True,
                             transactional_id: str | None = None) -> dict[TopicPartition, ProducePartitionStatus]:
        """Append each (tp, records memoryview) as leader; with acks=-1 wait (DelayedProduce)
        until replicated or ``timeout_ms``. Returns the per-partition status (error,
        base offset, log append time, log start offset). ``internal_topics_allowed`` False
        (client produce) refuses __consumer_offsets with INVALID_TOPIC_EXCEPTION.

        Errors per partition: INVALID_REQUIRED_ACKS, UNKNOWN_TOPIC_OR_PARTITION,
        NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS(_AFTER_APPEND), INVALID_RECORD,
        CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, KAFKA_STORAGE_ERROR, REQUEST_TIMED_OUT,
        OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH; a retried idempotent batch
        answers NONE with its original base offset and is not appended again.

        KIP-890 part 1 (``transactional_id`` given, verification enabled): a transactional
        batch of a producer without an ongoing transaction on the partition is appended only
        once its transaction coordinator confirms the partition is in the producer's
        transaction (``_verify_transactions``); otherwise INVALID_TXN_STATE (or the
        coordinator's PRODUCER_FENCED / INVALID_PRODUCER_ID_MAPPING), and
        NOT_ENOUGH_REPLICAS when the coordinator could not answer (retriable).
        """
        statuses: dict[TopicPartition, ProducePartitionStatus] = {}
        if required_acks not in (-1, 0, 1):
            return {tp: ProducePartitionStatus(-1, ErrorCode.invalid_required_acks) for tp, _ in entries}
        guards = await self._verify_transactions(transactional_id, entries)
        for tp, records in entries:
            status = ProducePartitionStatus(-1)
            statuses[tp] = status
            if (verified := guards.get(tp)) is not None:
                error, guard, pid = verified
                if (error == ErrorCode.none and self._verification_guards.get((tp, pid)) is not guard
                        and not self._in_transaction(tp, pid)):
                    error = ErrorCode.invalid_txn_state  # a marker ended the transaction meanwhile
                if error != ErrorCode.none:
                    status.error = error
                    status.error_message = ("Partition was not added to the transaction"
                                            if error == ErrorCode.invalid_txn_state else None)
                    continue
                self._verification_guards.pop((tp, pid), None)  # the append below opens the txn
            if not internal_topics_allowed and tp.topic in INTERNAL_TOPICS:
                status.error = ErrorCode.invalid_topic_exception
                status.error_message = f"Cannot append to internal topic {tp.topic}"
                continue
            batch = _validate_produce_records(records)
            if isinstance(batch, ProduceRecordsError):
                status.error, status.error_message = batch.error, batch.message
                continue
            try:
                p = self.leader_partition(tp)
                info = p.append_records_to_leader(records, required_acks, self.min_isr_of(tp.topic), batch)
            except DuplicateBatch as dup:
                # a retried idempotent batch: answer the original offsets (Kafka 2.x+)
                log.info("duplicate_batch", partition=str(tp), first_offset=dup.first_offset)
                status.base_offset = dup.first_offset
                status.log_start_offset = p.log.log_start_offset
                status.required_offset = dup.last_offset + 1
                status.acks_pending = required_acks == -1
                continue
            except PartitionError as exc:
                status.error, status.error_message = exc.error_code, str(exc)
                continue
            except RecordTooLargeError as exc:
                status.error, status.error_message = ErrorCode.message_too_large, str(exc)
                continue
            except CorruptRecordError as exc:
                status.error, status.error_message = ErrorCode.corrupt_message, str(exc)
                continue
            except InvalidRecordError as exc:
                status.error, status.error_message = ErrorCode.invalid_record, str(exc)
                status.record_errors = tuple(getattr(exc, "record_errors", ()))
                continue
            except KafkaStorageError as exc:
                log.error("append_failed", partition=str(tp), error=str(exc))
                status.error, status.error_message = ErrorCode.kafka_storage_error, str(exc)
                continue
            status.base_offset = info.first_offset
            status.log_append_time_ms = info.log_append_time_ms
            status.log_start_offset = info.log_start_offset
            status.required_offset = info.last_offset + 1
            status.acks_pending = required_acks == -1
            # followers waiting in Fetch purgatory see the new LEO; the HW may have moved
            self._complete_delayed(tp)
        request_hops.mark("appended")
        if required_acks == -1 and any(s.acks_pending for s in statuses.values()):
            # only the followers are awaited now: the connection may serve its next request
            request_pipelining.local_work_done()
            op = DelayedProduce(timeout_ms, statuses, self.get_partition, self.min_isr_of)
            await self.produce_purgatory.try_complete_else_watch(
                op, [tp for tp, s in statuses.items() if s.acks_pending])
            request_hops.mark("woken")
        return statuses

    def _in_transaction(self, tp: TopicPartition, producer_id: int) -> bool:
        p = self.partitions.get(tp)
        entry = p.producer_state.producers.get(producer_id) if p is not None and p.log is not None else None
        return entry is not None and entry.current_txn_first_offset >= 0

    async def _verify_transactions(self, transactional_id: str | None, entries: list[tuple[TopicPartition, Any]],
                                   ) -> dict[TopicPartition, tuple[ErrorCode, object, int]]:
        """KIP-890 part 1 (Kafka 3.9's ReplicaManager.appendRecords with
        transaction.partition.verification.enable): for each transactional batch whose producer
        has no ongoing transaction on the partition this broker leads, place a verification
        guard and ask the coordinator (one AddPartitionsToTxn v4 for all of them). Returns
        {partition: (error for the producer, guard, producer id)} for the partitions asked
        about; the append must find the same guard still in place. Coordinator errors
        CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
        NOT_COORDINATOR and an unanswered question become NOT_ENOUGH_REPLICAS (Kafka's
        translation: producers retry it)."""
        manager = self.add_partitions_to_txn_manager
        if manager is None or not transactional_id:
            return {}
        asked: dict[TopicPartition, tuple[object, int]] = {}
        producer: tuple[int, int] | None = None
        for tp, records in entries:
            batch = _validate_produce_records(records)
            if isinstance(batch, ProduceRecordsError) or not batch.is_transactional:
                continue
            p = self.partitions.get(tp)
            if p is None or p.leader_id != self.broker_id or p.log is None:
                continue  # the append answers the partition's error
            if self._in_transaction(tp, batch.producer_id):
                continue  # already in a transaction here: verified when it began
            guard = self._verification_guards.setdefault((tp, batch.producer_id), object())
            asked[tp] = (guard, batch.producer_id)
            producer = (batch.producer_id, batch.producer_epoch)
        if producer is None:
            return {}
        errors = await manager.verify(transactional_id, producer[0], producer[1], list(asked))
        out: dict[TopicPartition, tuple[ErrorCode, object, int]] = {}
        for tp, (guard, pid) in asked.items():
            error = errors.get(tp, ErrorCode.network_exception)
            if error in _VERIFICATION_RETRIABLE:
                log.info("txn_verification_retriable", partition=str(tp), producer_id=pid, error=error.name.upper())
                error = ErrorCode.not_enough_replicas
            elif error != ErrorCode.none:
                log.info("txn_verification_refused", partition=str(tp), producer_id=pid,
                         transactional_id=transactional_id, error=error.name.upper())
            if error != ErrorCode.none and self._verification_guards.get((tp, pid)) is guard:
                del self._verification_guards[(tp, pid)]
            out[tp] = (error, guard, pid)
        return out

    async def write_txn_markers(self, markers: list[TxnMarkerEntry],
                                timeout_ms: int) -> list[dict[TopicPartition, ErrorCode]]:
        """WriteTxnMarkers (KIP-98; Kafka's KafkaApis.handleWriteTxnMarkersRequest): append each
        marker's control batch to each of its partitions this broker leads, with acks=-1
        semantics (the answer waits in the Produce purgatory until the ISR has the marker, or
        ``timeout_ms``). Returns, per marker, the error of each partition:
        UNKNOWN_TOPIC_OR_PARTITION (not hosted here), NOT_LEADER_OR_FOLLOWER,
        NOT_ENOUGH_REPLICAS(_AFTER_APPEND), INVALID_PRODUCER_EPOCH,
        TRANSACTION_COORDINATOR_FENCED, KAFKA_STORAGE_ERROR, REQUEST_TIMED_OUT. Each partition
        answered NONE is reported to every ``txn_marker_listeners`` entry."""
        all_statuses: list[dict[TopicPartition, ProducePartitionStatus]] = []
        for marker in markers:
            statuses: dict[TopicPartition, ProducePartitionStatus] = {}
            all_statuses.append(statuses)
            for tp in marker.partitions:
                status = statuses[tp] = ProducePartitionStatus(-1)
                self._verification_guards.pop((tp, marker.producer_id), None)  # KIP-890 guard void
                p = self.partitions.get(tp)
                if p is None:
                    status.error = ErrorCode.unknown_topic_or_partition
                    continue
                try:
                    info = p.append_txn_marker_to_leader(marker.producer_id, marker.producer_epoch,
                                                         marker.coordinator_epoch, marker.committed,
                                                         self.min_isr_of(tp.topic))
                except PartitionError as exc:
                    log.info("txn_marker_refused", partition=str(tp), producer_id=marker.producer_id,
                             error=exc.error_code.name, reason=str(exc))
                    status.error, status.error_message = exc.error_code, str(exc)
                    continue
                except KafkaStorageError as exc:
                    log.error("append_failed", partition=str(tp), error=str(exc))
                    status.error, status.error_message = ErrorCode.kafka_storage_error, str(exc)
                    continue
                status.base_offset = info.first_offset
                status.required_offset = info.last_offset + 1
                status.acks_pending = True
                self._complete_delayed(tp)
        for statuses in all_statuses:
            if any(s.acks_pending for s in statuses.values()):
                op = DelayedProduce(timeout_ms, statuses, self.get_partition, self.min_isr_of)
                await self.produce_purgatory.try_complete_else_watch(
                    op, [tp for tp, s in statuses.items() if s.acks_pending])
        out = []
        for marker, statuses in zip(markers, all_statuses):
            errors = {tp: s.error for tp, s in statuses.items()}
            for tp, error in errors.items():
                if error == ErrorCode.none:
                    for listener in self.txn_marker_listeners:
                        try:
                            listener(tp, marker.producer_id, marker.producer_epoch, marker.committed)
                        except Exception as exc:  # a listener's bug must not fail the marker
                            log.error("txn_marker_listener_failed", partition=str(tp), error=str(exc))
            out.append(errors)
        return out

    def handle_log_dir_failure(self, dir: Any, exc: KafkaStorageError) -> None:
        """A log in ``dir`` failed a write it could not undo (Kafka's
        ReplicaManager.handleLogDirFailure): the dir's logs go offline (LogManager), so its
        partitions answer KAFKA_STORAGE_ERROR and their fetchers stop. With no log dir left
        the broker halts at once, exit code 1, like Kafka's LogManager ("Shutdown broker
        because all log dirs in ... have failed", Exit.halt): no clean-shutdown marker, so the
        next start-up recovers the logs; leadership moves when the ZooKeeper session expires.
        With dirs left, the broker posts /log_dir_event_notification/log_dir_event_<seq>
        as Kafka's does (kafkalike's controller does not act on it yet: docs/storage.md)."""
        import os
        import sys

        lm = self.log_manager
        gone = lm.handle_log_dir_failure(dir, exc)
        if gone:
            self.nursery.start_soon(self.fetcher_manager.remove_fetchers, gone)
        if not lm.online_log_dirs():
            dirs = ", ".join(str(d) for d in lm.log_dirs)
            log.critical("broker_halted", reason=f"Shutdown broker because all log dirs in {dirs} have failed")
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        if gone:
            self.nursery.start_soon(self._propagate_log_dir_event)

    async def _propagate_log_dir_event(self) -> None:
        try:
            path = await self.zk_client.propagate_log_dir_event(self.broker_id)
            log.warning("log_dir_event_posted", path=path)
        except Exception as exc:
            log.error("log_dir_event_failed", error=str(exc))

    # ------------------------------------------------------------------ Fetch
    def _read_one(self, info: FetchPartitionInfo, max_bytes: int, replica_id: int,
                  min_one_message: bool, isolation_level: int = 0, fetch_time_ms: int = -1,
                  update_fetch_state: bool = True) -> FetchPartitionData:
        """One partition of a Fetch (Kafka's ReplicaManager.readFromLog ``read`` and
        Partition.fetchRecords): the leader epoch check (FENCED_LEADER_EPOCH /
        UNKNOWN_LEADER_EPOCH / NOT_LEADER_OR_FOLLOWER), for a follower that it is a replica
        (NOT_LEADER_OR_FOLLOWER), the read up to the LEO for a follower, the HW for a consumer,
        the LSO for a read_committed one (Kafka's FetchLogEnd, FetchHighWatermark,
        FetchTxnCommitted; OFFSET_OUT_OF_RANGE, KAFKA_STORAGE_ERROR), then with
        ``update_fetch_state`` the follower's fetch state at ``fetch_time_ms`` (ms): its LEO, which
        may move the HW, and ISR expansion. The read from the Fetch purgatory passes
        ``update_fetch_state=False``, as Kafka's readFromPurgatory does.

        A fetch at the log end offset (a follower's usual case) reads nothing: UnifiedLog.read
        answers [] before any segment lookup, and the answer, which then depends only on the
        HW, LSO and log start offset, is the partition's previous such answer when those did
        not move (``Partition.empty_fetch_answer``: FetchPartitionData is frozen)."""
        from_follower = replica_id >= 0
        tp = info.tp
        p = self.partitions.get(tp)
        if p is None:
            return FetchPartitionData(tp, self.unknown_partition_error(tp))
        lg = p.log
        fetch_offset = info.fetch_offset
        read_committed = not from_follower and isolation_level == READ_COMMITTED
        try:
            epoch = info.current_leader_epoch
            if (epoch >= 0 and epoch != p.leader_epoch) or p.leader_id != self.broker_id:
                p.check_leader_epoch(epoch)  # raises the error (fenced, unknown epoch, not leader)
            if from_follower:
                replica = p.remote_replicas.get(replica_id)
                if replica is None:  # Kafka's getReplicaOrException: not a replica of this partition
                    raise PartitionError(ErrorCode.not_leader_or_follower,
                                         f"replica {replica_id} is not a replica of {tp}")
                leo = lg.log_end_offset
                slices = lg.read(fetch_offset, max_bytes, None, min_one_message)
            else:
                slices = lg.read(fetch_offset, max_bytes,
                                 lg.last_stable_offset if read_committed else lg.high_watermark, min_one_message)
        except PartitionError as exc:
            return FetchPartitionData(tp, exc.error_code)
        except OffsetOutOfRangeError:
            return FetchPartitionData(tp, ErrorCode.offset_out_of_range, lg.high_watermark,
                                      lg.high_watermark, lg.log_start_offset)
        except KafkaStorageError as exc:
            log.error("read_failed", partition=str(tp), error=str(exc))
            return FetchPartitionData(tp, ErrorCode.kafka_storage_error)
        if from_follower and update_fetch_state:
            if fetch_time_ms < 0:
                fetch_time_ms = now_ms()
            if p.update_follower_fetch_state(replica_id, fetch_offset, info.log_start_offset, leo, fetch_time_ms):
                self._complete_delayed(tp)
            elif self.delete_records_purgatory.watchers:  # the follower's log start offset may have moved
                self.delete_records_purgatory.check_and_complete(tp)
            if replica_id not in p.isr:
                self._maybe_expand_isr(p, replica_id)
        hw = lg.high_watermark
        lso = lg.last_stable_offset
        log_start = lg.log_start_offset
        if not slices and not read_committed:  # nothing new: the previous such answer if it still holds
            cached = p.empty_fetch_answer
            if (cached is not None and cached.high_watermark == hw and cached.last_stable_offset == lso
                    and cached.log_start_offset == log_start):
                return cached
            answer = FetchPartitionData(tp, ErrorCode.none, hw, lso, log_start, b"", None)
            p.empty_fetch_answer = answer
            return answer
        records: Any = b""
        aborted: tuple[AbortedTxn, ...] | None = None
        quotas = self.replication_quotas
        if (from_follower and slices and quotas is not None
                and quotas.leader.should_throttle(tp, replica_id in p.isr)):
            slices = []  # KIP-73: a throttled, out-of-sync follower gets no records for now
        if slices:
            s = slices[0]
            records = FileRecords(s.file, s.position, s.length)
        if read_committed:  # Kafka's addAbortedTransactions (read from the .txnindex files)
            upper = min(lso, lg.fetch_upper_bound_offset(fetch_offset))
            aborted = tuple(lg.collect_aborted_transactions(fetch_offset, upper)) if slices else ()
        return FetchPartitionData(tp, ErrorCode.none, hw, lso, log_start, records, aborted)

    def read_from_local_log(self, infos: list[FetchPartitionInfo], max_bytes: int,
                            replica_id: int = -1, isolation_level: int = 0,
                            update_fetch_state: bool = True) -> list[FetchPartitionData]:
        """Read every partition of a fetch with a total byte budget ``max_bytes``: the first
        partition with data may exceed it by one batch (KIP-74); each partition gets
        min(its max_bytes, what is left). replica_id >= 0: a follower (reads to the LEO and,
        with ``update_fetch_state``, moves its fetch state, all partitions at one fetch time);
        -1 a consumer (reads to the HW, or with ``isolation_level`` 1, READ_COMMITTED, to the
        last stable offset with the aborted transactions). ``update_fetch_state=False`` is the
        read of a completed DelayedFetch (Kafka's readFromPurgatory)."""
        out = []
        remaining = max_bytes
        min_one = True
        fetch_time_ms = now_ms() if replica_id >= 0 and update_fetch_state else -1
        read_one = self._read_one
        for info in infos:
            limit = info.max_bytes
            if limit > remaining:
                limit = max(0, remaining)
            data = read_one(info, limit, replica_id, min_one, isolation_level, fetch_time_ms, update_fetch_state)
            if data.records:
                size = data.size
                if size > 0:
                    min_one = False
                    remaining = max(0, remaining - size)
            out.append(data)
        return out

    def _bytes_available(self, info: FetchPartitionInfo, from_follower: bool,
                         isolation_level: int = 0, min_bytes: int = 1) -> int | None:
        """DelayedFetch's check of one partition (Kafka's DelayedFetch.tryComplete): None when
        the fetch must answer now (not led here any more, its leader epoch moved, the fetch
        offset is outside the log), else the bytes readable at the fetch offset: up to the LEO
        for a follower, the HW for a consumer, the LSO for a read_committed one; 0 at once when
        that end is at the fetch offset (no read).

        When the fetch's ``min_bytes`` is at most HEADER_SIZE (61 bytes: the default of 1 for
        followers and consumers), an end beyond the fetch offset answers HEADER_SIZE without
        reading: a whole batch lies below that end, and a read returns at least one whole
        batch (KIP-74), so the fetch completes either way and is read once, on completion.
        Kafka's DelayedFetch reads nothing in its check either (it compares the positions of
        the fetch offset and of that end). The read it saves is cold at low rates: ~0.2 ms per
        completed follower Fetch after each append (docs/benchmarks.md, "Cold paths")."""
        p = self.partitions.get(info.tp)
        if p is None or p.leader_id != self.broker_id:
            return None
        if info.current_leader_epoch >= 0 and info.current_leader_epoch != p.leader_epoch:
            return None
        lg = p.log
        fetch_offset = info.fetch_offset
        leo = lg.log_end_offset
        if fetch_offset > leo or fetch_offset < lg.log_start_offset:
            return None
        if from_follower:
            end = leo
        else:  # a read_committed fetch waits on the LSO (Kafka's DelayedFetch, FetchTxnCommitted)
            end = lg.last_stable_offset if isolation_level == READ_COMMITTED else lg.high_watermark
        if end <= fetch_offset:
            return 0
        if min_bytes <= HEADER_SIZE:
            return HEADER_SIZE
        try:
            slices = lg.read(fetch_offset, info.max_bytes, None if from_follower else end)
        except (OffsetOutOfRangeError, KafkaStorageError):
            return None
        return sum(s.length for s in slices)

    async def fetch_messages(self, replica_id: int, max_wait_ms: int, min_bytes: int, max_bytes: int,
                             isolation_level: int, infos: list[FetchPartitionInfo]) -> list[FetchPartitionData]:
        """Serve a Fetch: read now; answer at once when max_wait <= 0, nothing was asked, an
        error occurred or min_bytes are there; else wait in the Fetch purgatory (DelayedFetch)
        and read again on completion or at max_wait_ms."""
        from_follower = replica_id >= 0
        max_bytes = min(max_bytes, int(self.config["fetch.max.bytes"])) if not from_follower else max_bytes
        first = self.read_from_local_log(infos, max_bytes, replica_id, isolation_level)
        readable, errored = 0, False
        for d in first:
            if d.records:
                readable += d.size
            elif d.error != ErrorCode.none:
                errored = True
        if max_wait_ms <= 0 or not infos or readable >= min_bytes or errored:
            request_hops.mark("read")
            return self._record_throttled(from_follower, first)

        def read() -> list[FetchPartitionData]:  # Kafka's readFromPurgatory: no fetch state update
            return self.read_from_local_log(infos, max_bytes, replica_id, isolation_level, update_fetch_state=False)

        quotas = self.replication_quotas
        leader_quota = quotas.leader if from_follower and quotas is not None else None
        bytes_available = self._bytes_available

        def available(i: FetchPartitionInfo) -> int | None:
            if leader_quota is not None and leader_quota.throttled and leader_quota.is_throttled(i.tp):
                p = self.partitions.get(i.tp)  # DelayedFetch: throttled bytes do not count
                if p is not None and replica_id not in p.isr and leader_quota.is_quota_exceeded():
                    return 0
            return bytes_available(i, from_follower, isolation_level, min_bytes)

        # no await since the read: the purgatory's first check would only repeat its finding
        op = DelayedFetch(max_wait_ms, infos, min_bytes, available, read, known_incomplete=True)
        await self.fetch_purgatory.try_complete_else_watch(op, [i.tp for i in infos])
        request_hops.mark("woken")
        return self._record_throttled(from_follower, op.result if op.result is not None else first)

    def _record_throttled(self, from_follower: bool, result: list[FetchPartitionData]) -> list[FetchPartitionData]:
        """Record the bytes a follower fetch returns for throttled partitions in the leader
        quota (Kafka's KafkaApis.handleFetchRequest: quotas.leader.record)."""
        quotas = self.replication_quotas
        if from_follower and quotas is not None and quotas.leader.throttled:
            quotas.leader.record(quotas.throttled_bytes((d.tp, d.size) for d in result))
        return result

    # ------------------------------------------------------------------ ISR
    def _maybe_expand_isr(self, p: Partition, replica_id: int) -> None:
        new_isr = p.isr_to_expand(replica_id)
        if new_isr is not None and not p.isr_update_in_flight:
            p.isr_update_in_flight = True
            self.nursery.start_soon(self._update_isr, p, new_isr, "expand")

    async def _update_isr(self, p: Partition, new_isr: tuple[int, ...], reason: str) -> None:
        """Write a new ISR to the partition state znode, conditional on its zkVersion
        (Kafka's ZK-era Partition.updateIsr); on success install it and note the change for
        /isr_change_notification. A BadVersion means the controller changed the state: keep
        ours until its LeaderAndIsr arrives (never overwrite)."""
        p.isr_update_in_flight = True
        epoch = p.leader_epoch
        try:
            state = zd.LeaderIsrAndControllerEpoch(
                leader=p.leader_id, leader_epoch=p.leader_epoch, isr=new_isr,
                controller_epoch=p.controller_epoch, zk_version=p.partition_epoch)
            try:
                version = await self.zk_client.update_partition_state(zd.TopicPartition(p.tp.topic, p.tp.partition), state)
            except (BadVersion, NoNode):
                log.info("isr_update_rejected_stale_zk_version", partition=str(p.tp),
                         partition_epoch=p.partition_epoch, proposed_isr=list(new_isr))
                return
            except Exception as exc:
                log.warning("isr_update_failed", partition=str(p.tp), error=str(exc))
                return
            if p.leader_epoch != epoch or not p.is_leader or self.partitions.get(p.tp) is not p:
                return
            log.info("isr_" + ("shrunk" if reason == "shrink" else "expanded"), partition=str(p.tp),
                     old_isr=list(p.isr), new_isr=list(new_isr))
            p.apply_isr(new_isr, version)
            self.isr_change_set.add(p.tp)
            self.last_isr_change_ms = now_ms()
            self._isr_changed.set()
            self._complete_delayed(p.tp)
        finally:
            p.isr_update_in_flight = False

    async def maybe_shrink_isrs(self) -> None:
        """One pass of Kafka's isr-expiration task over the partitions this broker leads."""
        lag = int(self.config["replica.lag.time.max.ms"])
        for p in list(self.partitions.values()):
            if p.isr_update_in_flight:
                continue
            new_isr = p.isr_to_shrink(lag)
            if new_isr is not None:
                await self._update_isr(p, new_isr, "shrink")

    async def _isr_expiration_task(self) -> None:
        interval = max(0.05, int(self.config["replica.lag.time.max.ms"]) / 2000.0)
        while True:
            await trio.sleep(interval)
            try:
                await self.maybe_shrink_isrs()
            except Exception:
                log.exception("isr_expiration_failed")

    async def maybe_propagate_isr_changes(self, force: bool = False) -> bool:
        """Post /isr_change_notification when changes are pending and either none arrived for
        5 s or the last post is 60 s old (Kafka's maybePropagateIsrChanges); ``force`` posts
        now. Returns True if a notification was written."""
        if not self.isr_change_set:
            return False
        now = now_ms()
        if not force and not (now - self.last_isr_change_ms > ISR_CHANGE_PROPAGATION_BLACKOUT_MS
                              or now - self.last_isr_propagation_ms > ISR_CHANGE_MAX_DELAY_MS):
            return False
        changed, self.isr_change_set = self.isr_change_set, set()
        try:
            path = await self.zk_client.propagate_isr_changes(
                zd.TopicPartition(tp.topic, tp.partition) for tp in changed)
        except Exception as exc:
            self.isr_change_set |= changed
            log.warning("isr_change_propagation_failed", error=str(exc))
            return False
        self.last_isr_propagation_ms = now
        log.info("isr_changes_propagated", path=path, partitions=sorted(map(str, changed)))
        return True

    async def _isr_change_propagation_task(self) -> None:
        while True:
            await trio.sleep(ISR_CHANGE_PROPAGATION_INTERVAL_MS / 1000.0)
            try:
                await self.maybe_propagate_isr_changes()
            except Exception:
                log.exception("isr_change_propagation_failed")

    async def _hw_checkpoint_task(self) -> None:
        interval = int(self.config["replica.high.watermark.checkpoint.interval.ms"]) / 1000.0
        while True:
            await trio.sleep(interval)
            try:
                self.checkpoint_writer.queue(self.log_manager.high_watermark_checkpoint())
            except Exception as exc:
                log.warning("hw_checkpoint_failed", error=str(exc))

    async def _log_maintenance_task(self) -> None:
        """Retention, flush, checkpoints and compaction on their Kafka intervals."""
        from kafkalike.storage.log_cleaner import LogCleaner

        cfg = self.config
        lm = self.log_manager
        jobs = {
            "retention": int(cfg["log.retention.check.interval.ms"]),
            "recovery_points": int(cfg["log.flush.offset.checkpoint.interval.ms"]) or 60000,
            "log_start": int(cfg["log.flush.start.offset.checkpoint.interval.ms"]) or 60000,
            "cleaner": int(cfg["log.cleaner.backoff.ms"]) if cfg["log.cleaner.enable"] else 0,
        }
        due = {name: now_ms() + interval for name, interval in jobs.items() if interval > 0}
        cleaner = LogCleaner()
        while True:
            await trio.sleep(1.0)
            now = now_ms()
            try:
                lm.flush_dirty_logs()
                for name, at in list(due.items()):
                    if now < at:
                        continue
                    due[name] = now + jobs[name]
                    if name == "retention":
                        deleted = lm.cleanup_logs()
                        if deleted:
                            log.info("log_retention_done", segments_deleted=deleted)
                    elif name == "recovery_points":
                        self.checkpoint_writer.queue(lm.recovery_point_checkpoint())
                    elif name == "log_start":
                        self.checkpoint_writer.queue(lm.log_start_offset_checkpoint())
                    elif name == "cleaner":
                        await self._clean_logs(cleaner)
            except Exception:
                log.exception("log_maintenance_failed")

    async def _clean_logs(self, cleaner: Any) -> None:
        lm = self.log_manager
        cleaned = False
        for tp, lg in list(lm.logs.items()):
            if not lg.config.compact or not cleaner.needs_cleaning(lg):
                continue
            steps = cleaner.clean(lg)
            try:
                while True:
                    next(steps)
                    await trio.sleep(0)
            except StopIteration as done:
                cleaned = True
                log.info("log_cleaned", partition=str(tp), stats=str(done.value))
        if cleaned:
            lm.checkpoint_cleaner_offsets()

    # ------------------------------------------------------------------ ListOffsets
    def fetch_offset_for_timestamp(self, tp: TopicPartition, timestamp: int, isolation_level: int | None,
                                   current_leader_epoch: int, replica_id: int) -> OffsetForTimestampResult:
        """ListOffsets for one partition: error, timestamp, offset, leader_epoch (-1 when none).

        -2 earliest (log start), -1 latest (HW for consumers, the LSO for read_committed
        ones, LEO for replicas/debug), -3
        max timestamp (KIP-734: the offset of the record carrying the largest timestamp, if
        below the fetchable end), -4 earliest-local (v8, KIP-405: the log start offset, as
        kafkalike has no tiered storage), -5 latest-tiered (v9, KIP-1005: offset -1, leader
        epoch -1 without tiered storage, as Kafka's UnifiedLog.fetchOffsetByTimestamp answers
        when remote storage is off), else the first offset with timestamp >= it below the
        fetchable end (-1/-1 when none). Leader only (NOT_LEADER_OR_FOLLOWER), epoch-fenced.
        Kafka's Partition.fetchOffsetForTimestamp.
        """
        p = self.partitions.get(tp)
        if p is None:
            return OffsetForTimestampResult(self.unknown_partition_error(tp), -1, -1, -1)
        try:
            p.check_leader_epoch(current_leader_epoch, require_leader=replica_id != -2)
        except PartitionError as exc:
            return OffsetForTimestampResult(exc.error_code, -1, -1, -1)
        lg = p.log
        if isolation_level is None:
            last_fetchable = lg.log_end_offset
        elif isolation_level == READ_COMMITTED:
            last_fetchable = lg.last_stable_offset
        else:
            last_fetchable = p.high_watermark
        if timestamp == LATEST_TIMESTAMP:
            return OffsetForTimestampResult(ErrorCode.none, -1, last_fetchable, p.leader_epoch)
        if timestamp == LATEST_TIERED_TIMESTAMP:
            return OffsetForTimestampResult(ErrorCode.none, -1, -1, -1)
        if timestamp == EARLIEST_LOCAL_TIMESTAMP:
            timestamp = EARLIEST_TIMESTAMP  # no tiered storage: the local log starts at the log start offset
        try:
            found = lg.offset_for_timestamp(timestamp)
        except ValueError:
            return OffsetForTimestampResult(ErrorCode.invalid_request, -1, -1, -1)
        except KafkaStorageError:
            return OffsetForTimestampResult(ErrorCode.kafka_storage_error, -1, -1, -1)
        if found is None:
            return OffsetForTimestampResult(ErrorCode.none, -1, -1, -1)
        if timestamp == EARLIEST_TIMESTAMP:
            return OffsetForTimestampResult(ErrorCode.none, -1, found.offset, found.leader_epoch)
        if found.offset >= last_fetchable:
            return OffsetForTimestampResult(ErrorCode.none, -1, -1, -1)
        return OffsetForTimestampResult(ErrorCode.none, found.timestamp, found.offset, found.leader_epoch)

    # ------------------------------------------------------------------ DeleteRecords
    async def delete_records(self, timeout_ms: int, offsets: dict[TopicPartition, int],
                             allow_internal_topics: bool = False) -> dict[TopicPartition, DeleteRecordsPartitionStatus]:
        """DeleteRecords (KIP-107): for each (tp, offset) move the leader's log start offset
        up to ``offset`` (-1 = the high watermark), then wait (DelayedDeleteRecords, at most
        ``timeout_ms`` ms) until every follower on a live broker reports a log start offset
        at least as high. Returns per partition the answer: error and low watermark (the
        smallest log start offset over the replicas, -1 on error).

        Errors: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, OFFSET_OUT_OF_RANGE
        (offset < -1 or past the high watermark), POLICY_VIOLATION (cleanup.policy without
        delete), INVALID_TOPIC_EXCEPTION (an internal topic, unless ``allow_internal_topics``),
        KAFKA_STORAGE_ERROR, REQUEST_TIMED_OUT (followers not caught up in time; the log start
        offset stays moved). Kafka's ReplicaManager.deleteRecords / deleteRecordsOnLocalLog.
        """
        statuses: dict[TopicPartition, DeleteRecordsPartitionStatus] = {}
        for tp, offset in offsets.items():
            status = DeleteRecordsPartitionStatus(-1)
            statuses[tp] = status
            if tp.topic in INTERNAL_TOPICS and not allow_internal_topics:
                status.error = ErrorCode.invalid_topic_exception
                status.error_message = f"Cannot delete records of internal topic {tp.topic}"
                continue
            try:
                p = self.partitions.get(tp)
                if p is None:
                    raise PartitionError(self.unknown_partition_error(tp))
                deleted = p.delete_records_on_leader(offset)
            except PartitionError as exc:
                status.error, status.error_message = exc.error_code, str(exc)
                continue
            except (OffsetOutOfRangeError, ValueError) as exc:
                status.error, status.error_message = ErrorCode.offset_out_of_range, str(exc)
                continue
            except KafkaStorageError as exc:
                log.error("delete_records_failed", partition=str(tp), error=str(exc))
                status.error, status.error_message = ErrorCode.kafka_storage_error, str(exc)
                continue
            status.required_offset = deleted.requested_offset
            status.low_watermark = deleted.low_watermark
            status.acks_pending = True
            log.info("records_deleted", partition=str(tp), log_start_offset=deleted.requested_offset,
                     low_watermark=deleted.low_watermark)
        pending = [tp for tp, s in statuses.items() if s.acks_pending]
        if pending:
            op = DelayedDeleteRecords(timeout_ms, statuses, self.get_partition,
                                      self.metadata_cache.alive_broker_ids)
            await self.delete_records_purgatory.try_complete_else_watch(op, pending)
        return statuses

    # ------------------------------------------------------------------ OffsetsForLeaderEpoch
    def last_offset_for_leader_epoch(self, tp: TopicPartition, current_leader_epoch: int,
                                     leader_epoch: int) -> EpochEndOffset:
        """Where ``leader_epoch`` ends in the leader's log, from its epoch cache (KIP-101/279):
        the largest epoch <= it and that epoch's end offset, (-1, -1) for an unknown epoch.
        Leader only: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH,
        UNKNOWN_LEADER_EPOCH."""
        p = self.partitions.get(tp)
        if p is None:
            return EpochEndOffset(self.unknown_partition_error(tp))
        try:
            p.check_leader_epoch(current_leader_epoch)
        except PartitionError as exc:
            return EpochEndOffset(exc.error_code)
        epoch, end = p.log.end_offset_for_epoch(leader_epoch)
        return EpochEndOffset(ErrorCode.none, epoch, end)

    # ------------------------------------------------------------------ DescribeLogDirs
    def describe_log_dirs(self, partitions: set[TopicPartition] | None) -> list[LogDirDescription]:
        """DescribeLogDirs (KIP-113; Kafka's ReplicaManager.describeLogDirs): one entry per
        configured log dir (absolute path). An offline dir (taken offline by a failed write,
        handle_log_dir_failure) answers KAFKA_STORAGE_ERROR with no partitions and sizes -1;
        an online one NONE, the volume's total / usable bytes (os.statvfs: f_blocks and f_bavail
        times f_frsize, Java's FileStore.getTotalSpace / getUsableSpace) and each hosted log
        of ``partitions`` (None: every log): its size (bytes of its .log files), offset lag
        (Kafka's getLogEndOffsetLag: max(HW - LEO, 0) for a current log, current LEO - its LEO
        for a -future log of AlterReplicaLogDirs) and is_future. A dir whose statvfs fails
        answers KAFKA_STORAGE_ERROR too."""
        import os

        lm = self.log_manager
        by_dir: dict[str, list[ReplicaLogDirInfo]] = {}
        for tp, lg in lm.logs.items():
            if partitions is not None and tp not in partitions:
                continue
            by_dir.setdefault(os.path.abspath(lg.dir.parent), []).append(ReplicaLogDirInfo(
                tp, lg.size_in_bytes, max(lg.high_watermark - lg.log_end_offset, 0), False))
            fut = lm.future_logs.get(tp)
            if fut is not None:
                by_dir.setdefault(os.path.abspath(fut.dir.parent), []).append(ReplicaLogDirInfo(
                    tp, fut.size_in_bytes, max(lg.log_end_offset - fut.log_end_offset, 0), True))
        out: list[LogDirDescription] = []
        seen: set[str] = set()
        for d in lm.log_dirs:
            path = os.path.abspath(d)
            if path in seen:  # Kafka: config.logDirs.toSet
                continue
            seen.add(path)
            if d in lm.offline_dirs:
                out.append(LogDirDescription(path, ErrorCode.kafka_storage_error))
                continue
            try:
                st = os.statvfs(path)
            except OSError as exc:
                log.warning("describe_log_dir_failed", dir=path, error=exc.strerror)
                out.append(LogDirDescription(path, ErrorCode.kafka_storage_error))
                continue
            replicas = sorted(by_dir.get(path, ()), key=lambda r: (r.tp.topic, r.tp.partition))
            out.append(LogDirDescription(path, ErrorCode.none, st.f_blocks * st.f_frsize,
                                         st.f_bavail * st.f_frsize, tuple(replicas)))
        return out

    # ------------------------------------------------------------------ AlterReplicaLogDirs
    def alter_replica_log_dirs(self, dirs: Mapping[TopicPartition, str]) -> dict[TopicPartition, ErrorCode]:
        """AlterReplicaLogDirs (KIP-113; Kafka's ReplicaManager.alterReplicaLogDirs): move each
        partition's replica to the log dir named (an absolute path of log.dirs). The dir is
        remembered for a replica not created yet (the next LeaderAndIsr creates it there).
        A hosted replica in another dir gets a -future log there, filled and swapped in by
        the ReplicaAlterLogDirsThread; one already there (or moving there) answers NONE, and a
        move to a different dir replaces the one under way. Errors per partition:
        LOG_DIR_NOT_FOUND (not a configured dir), KAFKA_STORAGE_ERROR (the dir or the
        partition is offline, or the future log cannot be made), REPLICA_NOT_AVAILABLE (no
        replica here yet: Kafka's answer for NotLeaderOrFollower)."""
        lm = self.log_manager
        out: dict[TopicPartition, ErrorCode] = {}
        for tp, path in dirs.items():
            try:
                dest = lm.log_dir_for(path)
            except LookupError as exc:
                log.warning("alter_replica_log_dir_refused", partition=str(tp), dir=path, error=str(exc))
                out[tp] = ErrorCode.log_dir_not_found
                continue
            if dest in lm.offline_dirs or tp in lm.offline:
                out[tp] = ErrorCode.kafka_storage_error
                continue
            fut = lm.future_logs.get(tp)
            if fut is not None and fut.dir.parent != dest:  # Kafka: futureReplicaDirChanged
                self.alter_log_dirs_thread().remove_partition(tp)
                lm.abort_future_log(tp)
            current = lm.get_log(tp)
            if current is None or tp not in self.partitions:
                lm.preferred_log_dirs[tp] = dest  # Kafka's maybeUpdatePreferredLogDir
                out[tp] = ErrorCode.replica_not_available
                continue
            if current.dir.parent == dest:
                lm.abort_future_log(tp)  # moving back where it is: nothing to copy
                out[tp] = ErrorCode.none
                continue
            try:
                lm.create_future_log(tp, dest)
            except KafkaStorageError as exc:
                log.error("future_log_create_failed", partition=str(tp), dir=str(dest), error=str(exc))
                out[tp] = ErrorCode.kafka_storage_error
                continue
            self.alter_log_dirs_thread().add_partition(tp)
            log.info("replica_log_dir_move_started", partition=str(tp), to=str(dest), log_end_offset=current.log_end_offset)
            out[tp] = ErrorCode.none
        return out

    def alter_log_dirs_thread(self) -> Any:
        """The ReplicaAlterLogDirsThread, started in the broker's nursery on first use."""
        thread = getattr(self, "_alter_log_dirs_thread", None)
        if thread is None:
            from kafkalike.broker.replica_alter_log_dirs_thread import ReplicaAlterLogDirsThread

            quotas = getattr(self, "replication_quotas", None)  # the throttle's hook (KIP-113 quota)
            thread = ReplicaAlterLogDirsThread(
                self.log_manager, self._on_future_log_swapped,
                fetch_max_bytes=int(self.config["replica.fetch.max.bytes"]),
                quota=getattr(quotas, "alter_log_dirs", None))
            self._alter_log_dirs_thread = thread
            self.nursery.start_soon(thread.run)
        return thread

    def _on_future_log_swapped(self, tp: TopicPartition, new: Any) -> None:
        p = self.partitions.get(tp)
        if p is not None:
            p.log = new
            if p.is_leader:
                p.maybe_increment_leader_hw()

    # ------------------------------------------------------------------ introspection
    def statistics(self) -> ReplicaManagerStatistics:
        """Frozen snapshot for the CLI, metrics and tests (UnderReplicatedPartitions, ...)."""
        parts = list(self.partitions.values())
        return ReplicaManagerStatistics(
            leader_count=sum(p.is_leader for p in parts),
            follower_count=sum(not p.is_leader for p in parts),
            under_replicated_partitions=sum(p.is_leader and len(p.isr) < len(p.assigned_replicas) for p in parts),
            isr_shrinks=sum(p.isr_shrinks for p in parts),
            isr_expands=sum(p.isr_expands for p in parts),
            delayed_produce=self.produce_purgatory.delayed,
            delayed_fetch=self.fetch_purgatory.delayed,
            delayed_delete_records=self.delete_records_purgatory.delayed)

    def partition_statistics(self) -> dict[str, Any]:
        """'topic-p' -> PartitionStatistics for every hosted partition."""
        return {str(tp): p.statistics() for tp, p in sorted(self.partitions.items())}
