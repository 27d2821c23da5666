"""One transactional id's state and its state machine (Kafka 3.9's TransactionMetadata,
TransactionState, TxnTransitMetadata; KIP-98, KIP-360).

States and their ids (the int8 stored in TransactionLogValue.transaction_status)::

    Empty 0, Ongoing 1, PrepareCommit 2, PrepareAbort 3, CompleteCommit 4, CompleteAbort 5,
    Dead 6, PrepareEpochFence 7

A change is two steps, as in Kafka: ``prepare_*`` checks the move against
VALID_PREVIOUS_STATES, records the target in ``pending_state`` and returns a TxnTransitMetadata
(what will be written to __transaction_state); once the write is acknowledged
``complete_transition_to`` applies it; a failed write calls ``abort_transition``. While a
state is pending every other request for the id gets CONCURRENT_TRANSACTIONS (the callers
check ``pending_state``). PrepareEpochFence is never written: it bumps the epoch in memory
and is followed at once by PrepareAbort with the bumped epoch (fencing the old producer at
the partitions through the markers).
"""

from __future__ import annotations

import enum

import attrs

from kafkalike.coordinator.transaction.transaction_log import PartitionsSchema, TransactionLogValue
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition

__all__ = ["TransactionState", "VALID_PREVIOUS_STATES", "TxnTransitMetadata", "TransactionMetadata",
           "IllegalTransitionError", "NO_PRODUCER_ID", "NO_PRODUCER_EPOCH", "MAX_PRODUCER_EPOCH"]

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
MAX_PRODUCER_EPOCH = 32767  # Short.MaxValue


class TransactionState(enum.IntEnum):
    """Kafka's TransactionState; ``kafka_name`` is the name DescribeTransactions and
    ListTransactions carry ("Ongoing", "PrepareEpochFence", ...)."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def kafka_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))

    @classmethod
    def from_kafka_name(cls, name: str) -> "TransactionState | None":
        return _BY_NAME.get(name)


_BY_NAME = {s.kafka_name: s for s in TransactionState}

S = TransactionState
VALID_PREVIOUS_STATES: dict[TransactionState, frozenset[TransactionState]] = {
    S.EMPTY: frozenset({S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}),
    S.ONGOING: frozenset({S.ONGOING, S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}),
    S.PREPARE_COMMIT: frozenset({S.ONGOING}),
    S.PREPARE_ABORT: frozenset({S.ONGOING, S.PREPARE_EPOCH_FENCE}),
    S.COMPLETE_COMMIT: frozenset({S.PREPARE_COMMIT}),
    S.COMPLETE_ABORT: frozenset({S.PREPARE_ABORT}),
    S.DEAD: frozenset({S.EMPTY, S.COMPLETE_ABORT, S.COMPLETE_COMMIT}),
    S.PREPARE_EPOCH_FENCE: frozenset({S.ONGOING}),
}
"""{state: the states it may be entered from} (Kafka's TransactionState.validPreviousStates)."""


class IllegalTransitionError(RuntimeError):
    """A transition the state machine does not allow (a coordinator bug, never client input)."""


@attrs.frozen
class TxnTransitMetadata:
    """The state a transactional id moves to (what is written to __transaction_state).
    Times are wall-clock ms, -1 for none."""

    producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    txn_timeout_ms: int
    txn_state: TransactionState
    topic_partitions: frozenset[TopicPartition]
    txn_start_timestamp: int
    txn_last_update_timestamp: int

    def to_log_value(self) -> TransactionLogValue:
        """This state as TransactionLogValue (partitions null for Empty, as Kafka writes)."""
        parts: tuple[PartitionsSchema, ...] | None = None
        if self.txn_state != TransactionState.EMPTY:
            by_topic: dict[str, list[int]] = {}
            for tp in sorted(self.topic_partitions, key=lambda t: (t.topic, t.partition)):
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            parts = tuple(PartitionsSchema(t, tuple(ps)) for t, ps in by_topic.items())
        return TransactionLogValue(self.producer_id, self.producer_epoch, self.txn_timeout_ms,
                                   int(self.txn_state), parts, self.txn_last_update_timestamp,
                                   self.txn_start_timestamp)


@attrs.define
class TransactionMetadata:
    """The coordinator's view of one transactional id (see module doc)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    txn_timeout_ms: int
    state: TransactionState = TransactionState.EMPTY
    topic_partitions: set[TopicPartition] = attrs.field(factory=set)
    txn_start_timestamp: int = -1
    txn_last_update_timestamp: int = -1
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    pending_state: TransactionState | None = None
    has_failed_epoch_fence: bool = False

    @classmethod
    def from_log_value(cls, transactional_id: str, value: TransactionLogValue) -> "TransactionMetadata":
        """The metadata a loaded record describes. Raises ValueError for an unknown status."""
        state = TransactionState(value.transaction_status)
        parts = set() if state == TransactionState.EMPTY else {
            TopicPartition(p.topic, i) for p in value.transaction_partitions or () for i in p.partition_ids}
        return cls(transactional_id, value.producer_id, value.producer_epoch, value.transaction_timeout_ms,
                   state, parts, value.transaction_start_timestamp_ms,
                   value.transaction_last_update_timestamp_ms)

    # ------------------------------------------------------------------ queries
    @property
    def is_producer_epoch_exhausted(self) -> bool:
        """True when the epoch cannot be bumped twice more (Kafka: epoch >= Short.MaxValue - 1);
        InitProducerId then hands out a new producer id."""
        return self.producer_epoch >= MAX_PRODUCER_EPOCH - 1

    def snapshot(self) -> TxnTransitMetadata:
        """The current state as a TxnTransitMetadata (no transition)."""
        return TxnTransitMetadata(self.producer_id, self.producer_epoch, self.last_producer_epoch,
                                  self.txn_timeout_ms, self.state, frozenset(self.topic_partitions),
                                  self.txn_start_timestamp, self.txn_last_update_timestamp)

    # ------------------------------------------------------------------ transitions
    def _prepare(self, new_state: TransactionState, producer_id: int, epoch: int, last_epoch: int,
                 timeout_ms: int, partitions: frozenset[TopicPartition], start_ts: int,
                 update_ts: int) -> TxnTransitMetadata:
        if self.pending_state is not None:
            raise IllegalTransitionError(
                f"{self.transactional_id}: {new_state.kafka_name} while {self.pending_state.kafka_name} is pending")
        if self.state not in VALID_PREVIOUS_STATES[new_state]:
            raise IllegalTransitionError(
                f"{self.transactional_id}: {self.state.kafka_name} -> {new_state.kafka_name} is not allowed")
        self.pending_state = new_state
        return TxnTransitMetadata(producer_id, epoch, last_epoch, timeout_ms, new_state, partitions,
                                  start_ts, update_ts)

    def prepare_increment_producer_epoch(self, timeout_ms: int, expected_epoch: int | None,
                                         now_ms: int) -> TxnTransitMetadata | ErrorCode:
        """InitProducerId for an existing id (KIP-360): Empty with the epoch bumped. With
        ``expected_epoch`` (InitProducerId v3+): the current epoch (or no epoch yet) bumps, the
        previous epoch is a retry and keeps the current one, anything else is PRODUCER_FENCED."""
        bumped = self.producer_epoch + 1
        if expected_epoch is None:
            epoch, last = bumped, NO_PRODUCER_EPOCH
        elif self.producer_epoch == NO_PRODUCER_EPOCH or expected_epoch == self.producer_epoch:
            epoch, last = bumped, self.producer_epoch
        elif expected_epoch == self.last_producer_epoch:
            epoch, last = self.producer_epoch, self.last_producer_epoch
        else:
            return ErrorCode.producer_fenced
        return self._prepare(TransactionState.EMPTY, self.producer_id, epoch, last, timeout_ms,
                             frozenset(), -1, now_ms)

    def prepare_producer_id_rotation(self, new_producer_id: int, timeout_ms: int, now_ms: int,
                                     record_last_epoch: bool) -> TxnTransitMetadata:
        """A new producer id with epoch 0 (the old id's epoch is exhausted)."""
        return self._prepare(TransactionState.EMPTY, new_producer_id, 0,
                             self.producer_epoch if record_last_epoch else NO_PRODUCER_EPOCH,
                             timeout_ms, frozenset(), -1, now_ms)

    def prepare_fence_producer_epoch(self) -> TxnTransitMetadata:
        """PrepareEpochFence with the epoch bumped (not bumped again after a failed fence)."""
        if self.producer_epoch >= MAX_PRODUCER_EPOCH:
            raise IllegalTransitionError(f"{self.transactional_id}: producer epoch exhausted")
        epoch = self.producer_epoch if self.has_failed_epoch_fence else self.producer_epoch + 1
        return self._prepare(TransactionState.PREPARE_EPOCH_FENCE, self.producer_id, epoch,
                             NO_PRODUCER_EPOCH, self.txn_timeout_ms, frozenset(self.topic_partitions),
                             self.txn_start_timestamp, self.txn_last_update_timestamp)

    def prepare_add_partitions(self, added: set[TopicPartition], now_ms: int) -> TxnTransitMetadata:
        """Ongoing with ``added`` partitions; a new transaction starts its clock now."""
        start = now_ms if self.state in (TransactionState.EMPTY, TransactionState.COMPLETE_COMMIT,
                                         TransactionState.COMPLETE_ABORT) else self.txn_start_timestamp
        return self._prepare(TransactionState.ONGOING, self.producer_id, self.producer_epoch,
                             self.last_producer_epoch, self.txn_timeout_ms,
                             frozenset(self.topic_partitions | added), start, now_ms)

    def prepare_abort_or_commit(self, new_state: TransactionState, now_ms: int) -> TxnTransitMetadata:
        """PrepareCommit or PrepareAbort with the transaction's partitions."""
        return self._prepare(new_state, self.producer_id, self.producer_epoch, self.last_producer_epoch,
                             self.txn_timeout_ms, frozenset(self.topic_partitions),
                             self.txn_start_timestamp, now_ms)

    def prepare_complete(self, now_ms: int) -> TxnTransitMetadata:
        """CompleteCommit / CompleteAbort after every marker was written; partitions cleared."""
        new_state = (TransactionState.COMPLETE_COMMIT if self.state == TransactionState.PREPARE_COMMIT
                     else TransactionState.COMPLETE_ABORT)
        return self._prepare(new_state, self.producer_id, self.producer_epoch, self.last_producer_epoch,
                             self.txn_timeout_ms, frozenset(), self.txn_start_timestamp, now_ms)

    def complete_transition_to(self, transit: TxnTransitMetadata) -> None:
        """Apply ``transit`` after its record was written (Kafka's completeTransitionTo)."""
        if self.pending_state != transit.txn_state:
            raise IllegalTransitionError(
                f"{self.transactional_id}: completing {transit.txn_state.kafka_name} but "
                f"{self.pending_state.kafka_name if self.pending_state else 'nothing'} is pending")
        self.producer_id = transit.producer_id
        self.producer_epoch = transit.producer_epoch
        self.last_producer_epoch = transit.last_producer_epoch
        self.txn_timeout_ms = transit.txn_timeout_ms
        self.state = transit.txn_state
        self.topic_partitions = set(transit.topic_partitions)
        self.txn_start_timestamp = transit.txn_start_timestamp
        self.txn_last_update_timestamp = transit.txn_last_update_timestamp
        self.pending_state = None
        self.has_failed_epoch_fence = False

    def abort_transition(self) -> None:
        """Forget the pending state after a failed write (the state stays as it was)."""
        self.pending_state = None

    def enter_epoch_fence(self, transit: TxnTransitMetadata) -> None:
        """Apply a PrepareEpochFence in memory (it is never written): the bumped epoch becomes
        current, so the PrepareAbort that follows fences the old producer."""
        if self.pending_state != TransactionState.PREPARE_EPOCH_FENCE:
            raise IllegalTransitionError(f"{self.transactional_id}: no epoch fence pending")
        self.producer_epoch = transit.producer_epoch
        self.last_producer_epoch = NO_PRODUCER_EPOCH
        self.state = TransactionState.PREPARE_EPOCH_FENCE
        self.pending_state = None
