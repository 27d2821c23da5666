"""Partition: one partition replica hosted by this broker, as leader or follower (Kafka's
kafka.cluster.Partition, ZooKeeper mode).

State (all from the controller's LeaderAndIsr, except what the leader itself changes):
  leader_id, leader_epoch, partition_epoch (the state znode's zkVersion), controller_epoch,
  assigned replicas, ISR; the local UnifiedLog.
As leader it also tracks every follower (``RemoteReplica``: log end offset from its fetch
offsets, last caught-up time) and moves the high watermark: HW = min LEO over the ISR
(leader included), never backwards. Consumers read below the HW, followers up to the LEO.

ISR changes: a follower that has not caught up to the leader's LEO for
replica.lag.time.max.ms leaves the ISR (``isr_to_shrink``); one whose LEO reaches the HW
(and the start of the current leader epoch) joins it (``isr_to_expand``). The new ISR is
*proposed* here and written by the ReplicaManager to ``/brokers/topics/<t>/partitions/<p>/state``
conditionally on ``partition_epoch``; ``apply_isr`` installs it only after the write
succeeded (Kafka's ZK-era Partition.updateIsr). Every method is synchronous; the caller is
the broker's one trio thread, so no lock is needed between checks and updates, except that
the ReplicaManager keeps at most one ISR write in flight per partition.

Idempotent and transactional producers: the log's ``ProducerStateManager``
(kafkalike.storage.producer_state_manager, Kafka keeps it in UnifiedLog) holds per producer its
epoch, last five batches and open transaction. The leader checks a client batch against it
before the append (a retry answers the original offsets without appending, DuplicateBatch);
the log updates it on every append, leader or follower, so a follower that becomes leader
already knows every producer and open transaction. Transaction markers (WriteTxnMarkers) are
appended by the leader with ``append_txn_marker_to_leader``; read_committed fetches read below
the log's last stable offset (LSO).

DeleteRecords (KIP-107): the leader moves its log start offset
(``delete_records_on_leader``); followers follow the leader's log start offset from its
Fetch answers (``maybe_increment_log_start_offset``) and report theirs in their Fetch
requests; ``low_watermark_if_leader`` is the smallest of them, which the DeleteRecords
purgatory waits on.

Errors are returned as Kafka ErrorCodes or raised as ``PartitionError(error_code)``:
NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, NOT_ENOUGH_REPLICAS,
OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH; storage's CorruptRecordError /
RecordTooLargeError pass through from the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
import structlog

from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.record_batch import RecordBatch, build_end_txn_marker
from kafkalike.storage import KafkaStorageError, LogAppendInfo, TopicPartition, UnifiedLog
from kafkalike.storage.producer_state_manager import DuplicateBatch, ProducerStateError, ProducerStateManager

__all__ = ["DuplicateBatch", "LogDeleteRecordsResult", "Partition", "PartitionError", "PartitionState", "PartitionStatistics",
           "ProducerStateManager", "RemoteReplica", "now_ms"]

log = structlog.get_logger(__name__)
_logger = log  # for methods whose parameter is named ``log``


def now_ms() -> int:
    return int(time.time() * 1000)


class PartitionError(Exception):
    """A request this replica can't serve; ``error_code`` is the Kafka ErrorCode to answer."""

    def __init__(self, error_code: ErrorCode, message: str = "") -> None:
        super().__init__(message or error_code.name.upper())
        self.error_code = error_code


@attrs.frozen
class PartitionState:
    """A partition's leader, epochs and replicas as a control plane hands them to this broker
    (ZooKeeper mode: a LeaderAndIsr partition state, Kafka's LeaderAndIsrPartitionState;
    KRaft: a PartitionRegistration of the metadata log). Broker ids are ints, epochs ints.

    ``partition_epoch`` is the version of the partition's state: the state znode's zkVersion
    in ZooKeeper mode (an ISR change this broker writes is conditional on it), the partition
    epoch in KRaft. ``controller_epoch`` is the epoch of the controller that made the change
    (ZooKeeper mode; -1 when there is none)."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    replicas: tuple[int, ...]
    partition_epoch: int
    controller_epoch: int = -1

    @classmethod
    def from_leader_and_isr(cls, state: Any) -> "PartitionState":
        """From a LeaderAndIsr request's partition state (any version): leader, leader_epoch,
        isr, replicas, zk_version, controller_epoch."""
        return cls(leader=state.leader, leader_epoch=state.leader_epoch, isr=tuple(state.isr),
                   replicas=tuple(state.replicas), partition_epoch=state.zk_version,
                   controller_epoch=state.controller_epoch)


@attrs.frozen
class LogDeleteRecordsResult:
    """What ``delete_records_on_leader`` did (Kafka's LogDeleteRecordsResult): the log start
    offset asked for (the HW for -1) and the partition's low watermark after it (offsets)."""

    requested_offset: int
    low_watermark: int


@attrs.define
class RemoteReplica:
    """The leader's view of one follower (Kafka's Replica): offsets and caught-up time (ms).

    log_end_offset -1 = not known since this broker became leader.
    """

    broker_id: int
    log_end_offset: int = -1
    log_start_offset: int = -1
    last_caught_up_time_ms: int = 0
    last_fetch_time_ms: int = 0
    last_fetch_leader_log_end_offset: int = -1


@attrs.frozen
class PartitionStatistics:
    """One-call snapshot of a partition replica (for the CLI, metrics and tests)."""

    topic: str
    partition: int
    is_leader: bool
    leader_id: int
    leader_epoch: int
    partition_epoch: int
    controller_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    high_watermark: int
    log_end_offset: int
    log_start_offset: int
    follower_log_end_offsets: dict[int, int]
    under_replicated: bool
    isr_shrinks: int
    isr_expands: int


class Partition:
    """One hosted partition replica. ``log`` is set on the first LeaderAndIsr."""

    def __init__(self, tp: TopicPartition, local_broker_id: int, log: UnifiedLog,
                 clock: Callable[[], int] = now_ms) -> None:
        self.tp = tp
        self.local_broker_id = local_broker_id
        self.log = log
        self.clock = clock
        self.leader_id = -1
        self.leader_epoch = -1
        self.leader_epoch_start_offset = -1
        self.partition_epoch = -1
        self.controller_epoch = -1
        self.assigned_replicas: tuple[int, ...] = ()
        self.isr: tuple[int, ...] = ()
        self.remote_replicas: dict[int, RemoteReplica] = {}
        self.isr_update_in_flight = False
        self.isr_shrinks = 0
        self.isr_expands = 0
        #: the ReplicaManager's last Fetch answer for this partition with nothing to read (a
        #: frozen FetchPartitionData), reused while the HW, LSO and log start offset hold
        self.empty_fetch_answer: Any = None

    @property
    def producer_state(self) -> ProducerStateManager:
        """The log's producer state (rebuilt from the batches when the log was opened)."""
        return self.log.producer_state_manager

    # ------------------------------------------------------------------ role
    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.local_broker_id

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    def _update_assignment(self, state: Any) -> None:
        if not isinstance(state, PartitionState):
            state = PartitionState.from_leader_and_isr(state)
        self.controller_epoch = state.controller_epoch
        self.assigned_replicas = state.replicas
        self.isr = state.isr
        self.partition_epoch = state.partition_epoch
        self.leader_epoch = state.leader_epoch
        self.leader_id = state.leader

    def make_leader(self, state: PartitionState | Any) -> bool:
        """Become leader from ``state`` (a PartitionState, or a LeaderAndIsr partition state,
        converted; already checked to carry a newer leader epoch). Records the epoch's start offset (the LEO) in the leader epoch cache
        without writing its checkpoint (``flush_leader_epoch()`` or the first append does),
        resets follower state (ISR followers count as caught up now, Kafka's rule) and moves
        the HW. Returns True if this broker was not leader before."""
        was_leader = self.is_leader
        self._update_assignment(state)
        now = self.clock()
        leo = self.log.log_end_offset
        self.leader_epoch_start_offset = leo
        latest = self.log.leader_epoch_cache.latest_epoch
        if latest is None or self.leader_epoch > latest:
            # in memory only: the LeaderAndIsr handler writes the checkpoints of all its new
            # leaders in a worker thread, and the first append at this epoch writes it first
            # (append_records_to_leader), so the epoch is on disk before any record of it is
            # acknowledged (Kafka writes it here, on a request handler thread)
            self.log.leader_epoch_cache.assign(self.leader_epoch, leo, flush=False)
        self.remote_replicas = {
            r: RemoteReplica(r, last_caught_up_time_ms=now if r in self.isr else 0)
            for r in self.assigned_replicas if r != self.local_broker_id
        }
        self.maybe_increment_leader_hw()
        log.info("became_leader", partition=str(self.tp), leader_epoch=self.leader_epoch,
                 isr=list(self.isr), log_end_offset=leo, high_watermark=self.high_watermark)
        return not was_leader

    def make_follower(self, state: PartitionState | Any) -> bool:
        """Become (or stay) follower of ``state.leader`` (a PartitionState, or a LeaderAndIsr
        partition state). Returns True if the leader changed (the fetcher must then truncate
        and fetch from the new leader)."""
        old_leader = self.leader_id
        self._update_assignment(state)
        self.remote_replicas = {}
        self.leader_epoch_start_offset = -1
        log.info("became_follower", partition=str(self.tp), leader=self.leader_id,
                 leader_epoch=self.leader_epoch, log_end_offset=self.log.log_end_offset)
        return old_leader != self.leader_id

    # ------------------------------------------------------------------ leader: produce
    def check_leader_epoch(self, current_leader_epoch: int, require_leader: bool = True) -> None:
        """Fence a request by the leader epoch it carries (-1 = unchecked, KIP-320):
        older -> FENCED_LEADER_EPOCH, newer -> UNKNOWN_LEADER_EPOCH; not leader (when
        required) -> NOT_LEADER_OR_FOLLOWER. Raises PartitionError."""
        if current_leader_epoch >= 0:
            if current_leader_epoch < self.leader_epoch:
                raise PartitionError(ErrorCode.fenced_leader_epoch)
            if current_leader_epoch > self.leader_epoch:
                raise PartitionError(ErrorCode.unknown_leader_epoch)
        if require_leader and not self.is_leader:
            raise PartitionError(ErrorCode.not_leader_or_follower)

    def append_records_to_leader(self, records: memoryview, required_acks: int,
                                 min_insync_replicas: int, batch: RecordBatch | None = None) -> LogAppendInfo:
        """Append a producer's batch as leader: offsets and the leader epoch are patched in
        place (never decoding records). ``batch`` is the header view of the batch at the start
        of ``records`` that the caller already parsed (ReplicaManager.append_records parses it
        once per Produce partition); None parses it here. Its producer fields are checked
        against the producer state; the view goes on into the log (UnifiedLog.append's
        ``parsed``), so the header is parsed once between the socket and the file. acks=-1
        with ISR < min.insync.replicas is refused before the append (NOT_ENOUGH_REPLICAS). The log validates every record first (Kafka's
        LogValidator). Raises PartitionError, CorruptRecordError, InvalidRecordError (incl.
        log_validator.RecordValidationError), RecordTooLargeError, KafkaStorageError."""
        if not self.is_leader:
            raise PartitionError(ErrorCode.not_leader_or_follower)
        if required_acks == -1 and len(self.isr) < min_insync_replicas:
            raise PartitionError(
                ErrorCode.not_enough_replicas,
                f"ISR {list(self.isr)} is smaller than min.insync.replicas {min_insync_replicas}")
        if batch is None:
            batch = RecordBatch(records, 0)
        if batch.producer_id >= 0 and batch.base_sequence >= 0:
            try:
                self.producer_state.check(batch.producer_id, batch.producer_epoch, batch.base_sequence,
                                          batch.base_sequence + batch.last_offset_delta, batch.is_transactional)
            except ProducerStateError as exc:
                raise PartitionError(exc.error_code, str(exc)) from None
        if self.log.leader_epoch_cache.dirty:
            self.flush_leader_epoch()
        info = self.log.append(records, assign_offsets=True, leader_epoch=self.leader_epoch, parsed=(batch,))
        self.maybe_increment_leader_hw()
        return info

    def append_txn_marker_to_leader(self, producer_id: int, producer_epoch: int, coordinator_epoch: int,
                                    committed: bool, min_insync_replicas: int) -> LogAppendInfo:
        """Append a COMMIT/ABORT control batch for ``producer_id`` as leader (WriteTxnMarkers,
        KIP-98; Kafka appends it with acks=-1 and origin COORDINATOR). Raises PartitionError:
        NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS (ISR below min.insync.replicas),
        INVALID_PRODUCER_EPOCH (marker epoch older than the producer's),
        TRANSACTION_COORDINATOR_FENCED (coordinator epoch older than the last marker's);
        KafkaStorageError from the log."""
        if not self.is_leader:
            raise PartitionError(ErrorCode.not_leader_or_follower)
        if len(self.isr) < min_insync_replicas:
            raise PartitionError(
                ErrorCode.not_enough_replicas,
                f"ISR {list(self.isr)} is smaller than min.insync.replicas {min_insync_replicas}")
        try:
            self.producer_state.check_end_txn_marker(producer_id, producer_epoch, coordinator_epoch)
        except ProducerStateError as exc:
            raise PartitionError(exc.error_code, str(exc)) from None
        if self.log.leader_epoch_cache.dirty:
            self.flush_leader_epoch()
        marker = bytearray(build_end_txn_marker(producer_id, producer_epoch, coordinator_epoch, committed, self.clock()))
        info = self.log.append(marker, assign_offsets=True, leader_epoch=self.leader_epoch, origin="coordinator")
        log.info("txn_marker_appended", partition=str(self.tp), producer_id=producer_id, producer_epoch=producer_epoch,
                 coordinator_epoch=coordinator_epoch, committed=committed, offset=info.first_offset)
        self.maybe_increment_leader_hw()
        return info

    def flush_leader_epoch(self) -> None:
        """Write the leader-epoch-checkpoint if make_leader's epoch is not on disk yet (one
        fsynced atomic write). A failed write (e.g. a full disk) is logged and the epoch stays in
        memory, written at the next change or close, as an append's own epoch (commit 1b057ff):
        the records are still appended."""
        try:
            self.log.leader_epoch_cache.flush()
        except KafkaStorageError as exc:
            log.warning("leader_epoch_checkpoint_failed", partition=str(self.tp), error=str(exc))

    def check_enough_replicas_reached_offset(self, required_offset: int,
                                             min_insync_replicas: int) -> tuple[bool, ErrorCode]:
        """acks=all: (done, error) — done once the HW passed ``required_offset`` (the last
        appended offset + 1); error NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below
        min.insync.replicas meanwhile; NOT_LEADER_OR_FOLLOWER if leadership moved
        (Kafka's Partition.checkEnoughReplicasReachOffset)."""
        if not self.is_leader:
            return True, ErrorCode.not_leader_or_follower
        if self.high_watermark >= required_offset:
            if len(self.isr) >= min_insync_replicas:
                return True, ErrorCode.none
            return True, ErrorCode.not_enough_replicas_after_append
        return False, ErrorCode.none

    # ------------------------------------------------------------------ leader: DeleteRecords
    def delete_records_on_leader(self, offset: int) -> LogDeleteRecordsResult:
        """DeleteRecords (KIP-107) as leader: move the log start offset up to ``offset``
        (-1 = the high watermark); segments wholly below it are deleted. Returns the
        requested offset and the low watermark. Raises PartitionError: NOT_LEADER_OR_FOLLOWER,
        POLICY_VIOLATION (cleanup.policy without "delete"), OFFSET_OUT_OF_RANGE (< 0 or past
        the high watermark). Follows Kafka's Partition.deleteRecordsOnLeader and
        UnifiedLog.maybeIncrementLogStartOffset (an offset at or below the current log start
        offset changes nothing and succeeds)."""
        if not self.is_leader:
            raise PartitionError(ErrorCode.not_leader_or_follower,
                                 f"Leader not local for partition {self.tp} on broker {self.local_broker_id}")
        if not self.log.config.delete:
            raise PartitionError(ErrorCode.policy_violation,
                                 f"Records of partition {self.tp} can not be deleted due to the configured policy")
        converted = self.high_watermark if offset == -1 else offset
        if converted < 0:
            raise PartitionError(ErrorCode.offset_out_of_range,
                                 f"The offset {converted} for partition {self.tp} is not valid")
        if converted > self.high_watermark:
            raise PartitionError(
                ErrorCode.offset_out_of_range,
                f"Cannot increment the log start offset to {converted} of partition {self.tp} "
                f"since it is larger than the high watermark {self.high_watermark}")
        before = self.log.log_start_offset
        self.log.delete_records_before(converted)
        if self.log.log_start_offset > before:
            log.info("log_start_offset_incremented", partition=str(self.tp), log_start_offset=self.log.log_start_offset,
                     reason="client_record_deletion")
        return LogDeleteRecordsResult(converted, self.low_watermark_if_leader(None))

    def low_watermark_if_leader(self, alive_brokers: Any) -> int:
        """The smallest log start offset over the leader and its followers (-1 for a follower
        not heard from since this broker became leader), skipping followers whose broker is
        not in ``alive_brokers`` (a set of ids; None = all count). Kafka's
        Partition.lowWatermarkIfLeader. Only meaningful on the leader."""
        low = self.log.log_start_offset
        for r, replica in self.remote_replicas.items():
            if alive_brokers is not None and r not in alive_brokers:
                continue
            if replica.log_start_offset < low:
                low = replica.log_start_offset
        return low

    # ------------------------------------------------------------------ leader: fetch
    def update_follower_fetch_state(self, replica_id: int, fetch_offset: int,
                                    follower_start_offset: int, leader_end_offset: int,
                                    fetch_time_ms: int) -> bool:
        """Record a follower's fetch: its LEO is the fetch offset; it is caught up if it asked
        for the leader's LEO, or for what was the LEO at its previous fetch (Kafka's
        Replica.updateFetchState). The HW is recomputed only when the follower's LEO changed
        (Kafka's Partition.updateFollowerFetchState: whatever else moves the HW, an append, an
        ISR change, another follower's fetch, recomputes it itself). Returns True if the HW
        moved."""
        replica = self.remote_replicas.get(replica_id)
        if replica is None:
            return False
        previous_end_offset = replica.log_end_offset
        if fetch_offset >= leader_end_offset:
            replica.last_caught_up_time_ms = max(replica.last_caught_up_time_ms, fetch_time_ms)
        elif fetch_offset >= replica.last_fetch_leader_log_end_offset >= 0:
            replica.last_caught_up_time_ms = max(replica.last_caught_up_time_ms,
                                                 replica.last_fetch_time_ms)
        replica.log_end_offset = fetch_offset
        replica.log_start_offset = follower_start_offset
        replica.last_fetch_time_ms = fetch_time_ms
        replica.last_fetch_leader_log_end_offset = leader_end_offset
        if fetch_offset == previous_end_offset:
            return False
        return self.maybe_increment_leader_hw()

    def maybe_increment_leader_hw(self) -> bool:
        """HW = min LEO over the ISR (leader included), only forwards. True if it moved."""
        if not self.is_leader:
            return False
        new_hw = self.log.log_end_offset
        for r in self.isr:
            if r == self.local_broker_id:
                continue
            replica = self.remote_replicas.get(r)
            leo = replica.log_end_offset if replica is not None else -1
            new_hw = min(new_hw, leo)
        if new_hw > self.log.high_watermark:
            self.log.update_high_watermark(new_hw)
            return True
        return False

    # ------------------------------------------------------------------ ISR
    def isr_to_expand(self, replica_id: int) -> tuple[int, ...] | None:
        """The ISR with follower ``replica_id`` added if it just fetched and is caught up
        (LEO >= HW and >= the leader epoch's start offset), else None (Kafka's
        maybeExpandIsr, run on that follower's fetch)."""
        if not self.is_leader or replica_id in self.isr or replica_id not in self.assigned_replicas:
            return None
        rep = self.remote_replicas.get(replica_id)
        if rep is None or rep.log_end_offset < 0:
            return None
        if rep.log_end_offset >= self.high_watermark and rep.log_end_offset >= self.leader_epoch_start_offset:
            return tuple(self.isr) + (replica_id,)
        return None

    def isr_to_shrink(self, lag_time_max_ms: int) -> tuple[int, ...] | None:
        """The ISR without followers that have not caught up for ``lag_time_max_ms`` (Kafka's
        getOutOfSyncReplicas), or None when all are in sync. The leader always stays."""
        if not self.is_leader:
            return None
        now = self.clock()
        out = [r for r in self.isr if r != self.local_broker_id and
               now - self.remote_replicas.get(r, RemoteReplica(r)).last_caught_up_time_ms > lag_time_max_ms]
        if not out:
            return None
        return tuple(r for r in self.isr if r not in out)

    def apply_isr(self, new_isr: tuple[int, ...], new_partition_epoch: int) -> None:
        """Install an ISR the leader has written to ZooKeeper (new zkVersion); moves the HW."""
        old = self.isr
        self.isr = tuple(new_isr)
        self.partition_epoch = new_partition_epoch
        if len(new_isr) < len(old):
            self.isr_shrinks += 1
        elif len(new_isr) > len(old):
            self.isr_expands += 1
        log.info("isr_updated", partition=str(self.tp), old_isr=list(old), new_isr=list(new_isr),
                 partition_epoch=new_partition_epoch)
        self.maybe_increment_leader_hw()

    # ------------------------------------------------------------------ follower
    def append_records_to_follower(self, records: memoryview, leader_high_watermark: int) -> LogAppendInfo | None:
        """Append the leader's batches unchanged (offsets and epochs kept) and move the local
        HW to min(leader HW, LEO). Raises storage's UnexpectedAppendOffsetError /
        CorruptRecordError."""
        info = None
        if records is not None and len(records):
            info = self.log.append(records, assign_offsets=False)  # updates the producer state too
        self.log.update_high_watermark(min(leader_high_watermark, self.log.log_end_offset))
        return info

    def maybe_increment_log_start_offset(self, leader_log_start_offset: int) -> bool:
        """Follower: follow the leader's log start offset (from its Fetch answer) as Kafka's
        ReplicaFetcherThread does (``log.maybeIncrementLogStartOffset(leaderLogStartOffset)``),
        deleting the segments wholly below it. Never past the local high watermark (Kafka
        refuses that with OFFSET_OUT_OF_RANGE; a later fetch brings the HW up). Returns True
        if the log start offset moved."""
        target = min(leader_log_start_offset, self.log.high_watermark)
        if target <= self.log.log_start_offset:
            return False
        self.log.delete_records_before(target)
        log.info("log_start_offset_incremented", partition=str(self.tp), log_start_offset=self.log.log_start_offset,
                 reason="leader_offset_incremented")
        return True

    def truncate_to(self, offset: int) -> None:
        """Follower truncation (leader-epoch based): the log reloads its producer state."""
        if offset < self.log.log_end_offset:
            self.log.truncate_to(offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Follower fell behind the leader's log start: empty log at ``offset``."""
        self.log.truncate_fully_and_start_at(offset)

    # ------------------------------------------------------------------ introspection
    def statistics(self) -> PartitionStatistics:
        """Frozen snapshot: role, epochs, ISR, HW, LEO, follower LEOs, ISR change counts."""
        return PartitionStatistics(
            topic=self.tp.topic, partition=self.tp.partition, is_leader=self.is_leader,
            leader_id=self.leader_id, leader_epoch=self.leader_epoch,
            partition_epoch=self.partition_epoch, controller_epoch=self.controller_epoch,
            replicas=self.assigned_replicas, isr=self.isr,
            high_watermark=self.log.high_watermark, log_end_offset=self.log.log_end_offset,
            log_start_offset=self.log.log_start_offset,
            follower_log_end_offsets={r: rep.log_end_offset for r, rep in self.remote_replicas.items()},
            under_replicated=self.is_leader and len(self.isr) < len(self.assigned_replicas),
            isr_shrinks=self.isr_shrinks, isr_expands=self.isr_expands)

    def __repr__(self) -> str:
        return (f"Partition({self.tp}, leader={self.leader_id}, epoch={self.leader_epoch}, "
                f"isr={list(self.isr)}, hw={self.log.high_watermark}, leo={self.log.log_end_offset})")
