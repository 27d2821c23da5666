"""Per-partition producer state: idempotence and transactions (Kafka's ProducerStateManager,
ProducerAppendInfo and ProducerStateEntry; KIP-98). Owned by the partition's UnifiedLog.

Idempotence: per producer id, its epoch and the metadata of its last five batches (first/last
sequence, first/last offset). A leader append of a batch with a producer id is checked first
(``check``): a batch equal to a cached one is a retry (``DuplicateBatch``: answer the original
offsets without appending); a sequence that does not follow the last one is
OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch INVALID_PRODUCER_EPOCH; a newer epoch must start
at sequence 0; an unknown producer may start anywhere (its state may have been removed by
retention).

Transactions: a transactional batch (attribute bit 4) from a producer with no open
transaction opens one at the batch's first offset (``current_txn_first_offset``; the
partition's ``ongoing_txns``, ordered by first offset); its next transactional batches continue
it. A non-transactional batch while its transaction is open is INVALID_TXN_STATE. A control
batch with a COMMIT/ABORT marker (``check_end_txn_marker`` on the leader first:
INVALID_PRODUCER_EPOCH for a marker epoch older than the producer's,
TRANSACTION_COORDINATOR_FENCED for a coordinator epoch older than the last one seen) ends it:
the transaction moves to ``unreplicated_txns`` until the high watermark passes its marker.
The first unstable offset is the smallest first offset among both; the partition's last
stable offset (LSO) is min(first unstable offset, high watermark) (Kafka's
UnifiedLog.lastStableOffset). An aborted transaction is returned as a ``CompletedTxn`` to the
log, which writes it to the segment's .txnindex with ``last_stable_offset_after``.

Followers apply the same batches (``apply_batch``, no checks: Kafka's AppendOrigin.REPLICATION),
so a follower that becomes leader knows every producer and open transaction. The whole state
is rebuilt from the batch headers (one 61-byte read per batch, plus the control record of a
marker) when the log is opened and after a truncation (Kafka's truncateAndReload); kafkalike
keeps no ``.snapshot`` files (docs/storage.md).

Errors raised: ``DuplicateBatch`` and ``ProducerStateError(error_code)`` with Kafka's code.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import structlog

from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.record_batch import (
    CONTROL_FLAG_MASK,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    TRANSACTIONAL_FLAG_MASK,
    RecordBatch,
    RecordBatchError,
    read_end_txn_marker,
)

if TYPE_CHECKING:
    from kafkalike.storage.log_segment import LogSegment


class _Log(Protocol):
    """What a rebuild reads of a UnifiedLog (not imported: UnifiedLog owns this manager)."""

    @property
    def segments(self) -> list[LogSegment]: ...

    @property
    def high_watermark(self) -> int: ...

log = structlog.get_logger(__name__)

NUM_BATCHES_TO_RETAIN = 5
INT32_MAX = 2**31 - 1


class DuplicateBatch(Exception):
    """A retried idempotent batch already in the log at [first_offset, last_offset]."""

    def __init__(self, first_offset: int, last_offset: int) -> None:
        super().__init__(f"duplicate batch at offsets {first_offset}-{last_offset}")
        self.first_offset = first_offset
        self.last_offset = last_offset


class ProducerStateError(Exception):
    """A batch or marker refused by the producer state; ``error_code`` is the Kafka ErrorCode
    (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE,
    TRANSACTION_COORDINATOR_FENCED)."""

    def __init__(self, error_code: ErrorCode, message: str = "") -> None:
        super().__init__(message or error_code.name.upper())
        self.error_code = error_code


@attrs.frozen
class BatchMetadata:
    """One appended batch of a producer: sequences and offsets (inclusive)."""

    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int


@attrs.define
class ProducerStateEntry:
    """A producer's epoch, its last (up to five) batches oldest first, the coordinator epoch of
    its last marker (-1 none), the first offset of its open transaction (-1 none) and the max
    timestamp of its last batch (ms, -1 unknown)."""

    epoch: int
    batches: deque[BatchMetadata] = attrs.Factory(lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))
    coordinator_epoch: int = -1
    current_txn_first_offset: int = -1
    last_timestamp: int = -1


ProducerEntry = ProducerStateEntry  # the name kafkalike used before transactions


@attrs.frozen
class CompletedTxn:
    """A transaction ended by a marker: producer, first data offset, marker offset, aborted?"""

    producer_id: int
    first_offset: int
    last_offset: int
    is_aborted: bool


def _next_seq(seq: int) -> int:
    return 0 if seq == INT32_MAX else seq + 1


class ProducerStateManager:
    """One partition's producer state (see the module doc). ``partition`` names it in log lines."""

    NUM_BATCHES_TO_RETAIN = NUM_BATCHES_TO_RETAIN

    def __init__(self, partition: str = "") -> None:
        self.producers: dict[int, ProducerStateEntry] = {}
        self.ongoing_txns: dict[int, int] = {}  # first offset -> producer id (open transactions)
        self.unreplicated_txns: dict[int, CompletedTxn] = {}  # first offset -> ended, marker not yet below the HW
        self.partition = partition

    # ------------------------------------------------------------------ leader checks
    def check(self, producer_id: int, epoch: int, first_seq: int, last_seq: int,
              is_transactional: bool = False) -> None:
        """Validate a client data batch before the leader appends it. Raises DuplicateBatch,
        ProducerStateError(OUT_OF_ORDER_SEQUENCE_NUMBER | INVALID_PRODUCER_EPOCH |
        INVALID_TXN_STATE) (Kafka's ProducerAppendInfo.appendDataBatch)."""
        entry = self.producers.get(producer_id)
        if entry is None:
            return
        if epoch < entry.epoch:
            raise ProducerStateError(ErrorCode.invalid_producer_epoch,
                                     f"producer {producer_id} epoch {epoch} is older than {entry.epoch}")
        if epoch == entry.epoch:
            for b in entry.batches:
                if b.first_seq == first_seq and b.last_seq == last_seq:
                    raise DuplicateBatch(b.first_offset, b.last_offset)
            if entry.batches and first_seq != _next_seq(entry.batches[-1].last_seq):
                log.info("out_of_order_sequence", partition=self.partition, producer_id=producer_id,
                         epoch=epoch, first_seq=first_seq, expected=_next_seq(entry.batches[-1].last_seq))
                raise ProducerStateError(
                    ErrorCode.out_of_order_sequence_number,
                    f"out of order sequence number for producer {producer_id}: {first_seq} "
                    f"(incoming batch seq) does not follow {entry.batches[-1].last_seq}")
        elif first_seq != 0:
            log.info("out_of_order_sequence", partition=self.partition, producer_id=producer_id,
                     epoch=epoch, first_seq=first_seq, expected=0)
            raise ProducerStateError(ErrorCode.out_of_order_sequence_number,
                                     f"invalid sequence number {first_seq} for new epoch {epoch} of "
                                     f"producer {producer_id} (expected 0)")
        if entry.current_txn_first_offset >= 0 and not is_transactional:
            raise ProducerStateError(
                ErrorCode.invalid_txn_state,
                f"Expected transactional write from producer {producer_id} in partition {self.partition}")

    def check_end_txn_marker(self, producer_id: int, producer_epoch: int, coordinator_epoch: int) -> None:
        """Validate a marker before the leader appends it (Kafka's appendEndTxnMarker with
        origin COORDINATOR). Raises ProducerStateError(INVALID_PRODUCER_EPOCH) for an epoch
        older than the producer's, (TRANSACTION_COORDINATOR_FENCED) for a coordinator epoch
        older than the last marker's."""
        entry = self.producers.get(producer_id)
        if entry is None:
            return
        if producer_epoch < entry.epoch:
            raise ProducerStateError(
                ErrorCode.invalid_producer_epoch,
                f"marker epoch {producer_epoch} of producer {producer_id} is older than {entry.epoch}")
        if coordinator_epoch < entry.coordinator_epoch:
            raise ProducerStateError(
                ErrorCode.transaction_coordinator_fenced,
                f"coordinator epoch {coordinator_epoch} of the marker for producer {producer_id} is older "
                f"than {entry.coordinator_epoch}")

    # ------------------------------------------------------------------ updates (leader and follower)
    def update(self, producer_id: int, epoch: int, first_seq: int, last_seq: int,
               first_offset: int, last_offset: int, *, is_transactional: bool = False,
               timestamp: int = -1) -> None:
        """Record an appended data batch (leader or follower)."""
        entry = self.producers.get(producer_id)
        if entry is None or epoch > entry.epoch:
            if entry is not None:  # a new epoch: earlier batches no longer deduplicate (KIP-98)
                log.info("producer_epoch_bumped", partition=self.partition, producer_id=producer_id,
                         old_epoch=entry.epoch, epoch=epoch, first_seq=first_seq, first_offset=first_offset)
                entry.epoch = epoch
                entry.batches.clear()
            else:
                entry = ProducerStateEntry(epoch)
                self.producers[producer_id] = entry
        elif epoch < entry.epoch:
            return
        entry.batches.append(BatchMetadata(first_seq, last_seq, first_offset, last_offset))
        entry.last_timestamp = timestamp
        if is_transactional and entry.current_txn_first_offset < 0:
            entry.current_txn_first_offset = first_offset
            self.ongoing_txns[first_offset] = producer_id

    def complete_txn(self, producer_id: int, producer_epoch: int, coordinator_epoch: int, committed: bool,
                     offset: int, timestamp: int = -1) -> CompletedTxn | None:
        """Record an appended marker at ``offset``: ends the producer's open transaction (None
        when it had none) and keeps the ended transaction as unreplicated until the HW passes
        ``offset``. The caller writes an aborted one to the .txnindex first
        (``last_stable_offset_after``)."""
        entry = self.producers.get(producer_id)
        if entry is None:
            entry = self.producers[producer_id] = ProducerStateEntry(producer_epoch)
        completed = None
        if entry.current_txn_first_offset >= 0:
            completed = CompletedTxn(producer_id, entry.current_txn_first_offset, offset, not committed)
            self.ongoing_txns.pop(entry.current_txn_first_offset, None)
            self.unreplicated_txns[completed.first_offset] = completed
        if producer_epoch != entry.epoch and producer_epoch > entry.epoch:
            entry.epoch = producer_epoch
            entry.batches.clear()
        entry.current_txn_first_offset = -1
        entry.coordinator_epoch = coordinator_epoch
        entry.last_timestamp = timestamp
        return completed

    def last_stable_offset_after(self, txn: CompletedTxn) -> int:
        """The LSO once ``txn`` ends: the first offset of the oldest open transaction of another
        producer, else txn.last_offset + 1 (Kafka's ProducerStateManager.lastStableOffset)."""
        others = [first for first, pid in self.ongoing_txns.items() if pid != txn.producer_id]
        return min(others) if others else txn.last_offset + 1

    def apply_batch(self, batch: RecordBatch, on_completed: Callable[[CompletedTxn], None] | None = None) -> None:
        """Apply one stored batch (offsets set) without checks, from its header view's fields
        (the header is not read again): a data batch with a producer id updates its producer, a
        marker ends its transaction (``on_completed`` gets the ended transaction before the
        state moves on, so the caller can compute the .txnindex LSO)."""
        self._apply(batch.base_offset, batch.attributes, batch.last_offset_delta, batch.max_timestamp,
                    batch.producer_id, batch.producer_epoch, batch.base_sequence, lambda: batch, on_completed)

    def apply_header(self, header: tuple[Any, ...], load: Callable[[], RecordBatch | None],
                     on_completed: Callable[[CompletedTxn], None] | None = None) -> None:
        """Apply one stored batch given its unpacked 61-byte header (record_batch.HEADER
        fields); ``load()`` returns the whole batch, read only for a control batch."""
        (base_offset, _length, _ple, _magic, _crc, attributes, last_delta, _bt, max_ts,
         producer_id, producer_epoch, base_sequence, _count) = header
        self._apply(base_offset, attributes, last_delta, max_ts, producer_id, producer_epoch, base_sequence,
                    load, on_completed)

    def _apply(self, base_offset: int, attributes: int, last_delta: int, max_ts: int, producer_id: int,
               producer_epoch: int, base_sequence: int, load: Callable[[], RecordBatch | None],
               on_completed: Callable[[CompletedTxn], None] | None) -> None:
        if producer_id < 0:
            return
        if attributes & CONTROL_FLAG_MASK:
            batch = load()
            marker = read_end_txn_marker(batch) if batch is not None else None
            if marker is None:
                return
            entry = self.producers.get(producer_id)
            if entry is not None and entry.current_txn_first_offset >= 0 and on_completed is not None:
                on_completed(CompletedTxn(producer_id, entry.current_txn_first_offset, base_offset,
                                          not marker.committed))
            self.complete_txn(producer_id, producer_epoch, marker.coordinator_epoch, marker.committed,
                              base_offset, max_ts)
            return
        if base_sequence < 0:  # not idempotent: nothing to remember
            return
        self.update(producer_id, producer_epoch, base_sequence, base_sequence + last_delta,
                    base_offset, base_offset + last_delta, is_transactional=bool(attributes & TRANSACTIONAL_FLAG_MASK),
                    timestamp=max_ts)

    def update_from_batches(self, records: memoryview) -> None:
        """Apply every batch of replicated bytes (whole batches, offsets set)."""
        pos, n = 0, len(records)
        while pos + HEADER_SIZE <= n:
            b = RecordBatch(records, pos)
            self.apply_batch(b)
            pos = b.end_position

    # ------------------------------------------------------------------ LSO
    @property
    def first_unstable_offset(self) -> int | None:
        """Smallest first offset of an open transaction or of an ended one whose marker is not
        yet below the high watermark; None when there is none."""
        firsts = list(self.ongoing_txns) + list(self.unreplicated_txns)
        return min(firsts) if firsts else None

    def on_high_watermark_updated(self, high_watermark: int) -> None:
        """Forget ended transactions whose marker is below the HW (Kafka's
        removeUnreplicatedTransactions)."""
        if self.unreplicated_txns:
            for first, txn in list(self.unreplicated_txns.items()):
                if txn.last_offset < high_watermark:
                    del self.unreplicated_txns[first]

    # ------------------------------------------------------------------ rebuild
    def clear(self) -> None:
        """Forget every producer and transaction (the log was emptied)."""
        self.producers.clear()
        self.ongoing_txns.clear()
        self.unreplicated_txns.clear()

    def truncate_and_reload(self, log: _Log) -> int:
        """After the log was truncated: rebuild from the batches left (Kafka's
        UnifiedLog.truncateTo -> ProducerStateManager.truncateAndReload), so batches older than
        the retained five and an older epoch whose batches survive deduplicate again."""
        return self.rebuild(log)

    def rebuild(self, log: _Log,
                on_aborted: Callable[[LogSegment, CompletedTxn, int], None] | None = None) -> int:
        """Rebuild from the headers of every stored batch (control batches: their marker record
        too); returns batches seen. ``on_aborted(segment, txn, lso)`` is called for every
        aborted transaction, with the segment holding its marker and the LSO after it (the
        log rebuilds its .txnindex files with it). Raises OSError when a header cannot be read."""
        self.clear()
        seen = 0
        for seg, h, load in _scan_headers(log):
            seen += 1

            def completed(txn: CompletedTxn, seg: LogSegment = seg) -> None:
                if txn.is_aborted and on_aborted is not None:
                    on_aborted(seg, txn, self.last_stable_offset_after(txn))

            self.apply_header(h, load, completed)
        self.on_high_watermark_updated(log.high_watermark)
        return seen


def _scan_headers(log: _Log) -> Iterator[tuple[LogSegment, tuple[Any, ...], Callable[[], RecordBatch | None]]]:
    """(segment, header, loader of the whole batch) for every stored batch with a producer id,
    reading only the 61-byte headers (the loader reads the batch, used for markers)."""
    for seg in list(log.segments):
        records = seg.log
        fd, size, pos = records.file.fd, records.size, 0
        while pos + HEADER_SIZE <= size:
            raw = os.pread(fd, HEADER_SIZE, pos)
            if len(raw) < HEADER_SIZE:
                break
            header = HEADER.unpack(raw)
            batch_length, producer_id = header[1], header[9]
            if batch_length <= 0:
                break
            total = batch_length + LOG_OVERHEAD
            if producer_id >= 0:
                def load(fd: int = fd, pos: int = pos, total: int = total) -> RecordBatch | None:
                    data = os.pread(fd, total, pos)
                    try:
                        return RecordBatch(data, 0)
                    except RecordBatchError:
                        return None
                yield seg, header, load
            pos += total
