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
marker) after a truncation (Kafka's truncateAndReload) and when the log is opened, from the
latest producer state snapshot on: ``<20-digit offset>.snapshot`` files in the partition
directory, Kafka's format (ProducerStateManager.writeSnapshot, version 1): int16 version, uint32
CRC-32C of everything after it, then an int32-counted array of entries (producer id int64,
epoch int16, last sequence int32, last offset int64, offset delta int32, timestamp int64,
coordinator epoch int32, current transaction first offset int64). The log takes one at every
segment roll (named after the new segment's base offset) and at clean shutdown (the log end
offset); ``rebuild`` loads the newest one at or below the log end offset and replays only the
batches from its offset. A corrupt snapshot (bad version, CRC or length) is deleted with one
log line and the next older one (or the log from its start) is used instead. As in Kafka, a
snapshot keeps only each producer's last batch, so after a restart only that batch of the
older ones deduplicates a retry.

Errors raised: ``DuplicateBatch`` and ``ProducerStateError(error_code)`` with Kafka's code.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import crc32c
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

    @property
    def log_end_offset(self) -> int: ...

log = structlog.get_logger(__name__)

NUM_BATCHES_TO_RETAIN = 5
INT32_MAX = 2**31 - 1


SNAPSHOT_SUFFIX = ".snapshot"
PRODUCER_SNAPSHOT_VERSION = 1
_SNAPSHOT_HEADER = struct.Struct(">hI")  # version, crc32c of the bytes after it
_SNAPSHOT_COUNT = struct.Struct(">i")
# producer id, epoch, last sequence, last offset, offset delta, timestamp, coordinator epoch,
# current txn first offset (Kafka's PRODUCER_SNAPSHOT_ENTRY_SCHEMA, 46 bytes)
_SNAPSHOT_ENTRY = struct.Struct(">qhiqiqiq")


class CorruptSnapshotError(Exception):
    """A .snapshot file that is not a valid version-1 producer snapshot (Kafka's
    CorruptSnapshotException): wrong version, CRC mismatch, truncated or trailing bytes."""


@attrs.frozen
class ProducerSnapshotEntry:
    """One producer in a .snapshot file (Kafka's snapshot entry schema): its epoch, its last
    batch (last sequence, last offset, offset delta = last - first offset; -1/-1/0 when it has
    written only markers), the max timestamp of that batch (ms), the coordinator epoch of its
    last marker and the first offset of its open transaction (-1 none)."""

    producer_id: int
    epoch: int
    last_seq: int
    last_offset: int
    offset_delta: int
    timestamp: int
    coordinator_epoch: int
    current_txn_first_offset: int


def snapshot_file(dir: Path, offset: int) -> Path:
    """<dir>/<20-digit offset>.snapshot."""
    return Path(dir) / f"{offset:020d}{SNAPSHOT_SUFFIX}"


def list_snapshot_files(dir: Path) -> list[tuple[int, Path]]:
    """(offset, path) of every <20-digit offset>.snapshot in ``dir``, oldest first ([] when
    the directory cannot be listed)."""
    out = []
    try:
        names = os.listdir(dir)
    except OSError:
        return []
    for name in names:
        if name.endswith(SNAPSHOT_SUFFIX) and len(name) == 20 + len(SNAPSHOT_SUFFIX) and name[:20].isdigit():
            out.append((int(name[:20]), Path(dir) / name))
    return sorted(out)


def encode_snapshot(entries: list[ProducerSnapshotEntry]) -> bytes:
    """The bytes of a version-1 snapshot file holding ``entries``."""
    body = bytearray(_SNAPSHOT_COUNT.pack(len(entries)))
    for e in entries:
        body += _SNAPSHOT_ENTRY.pack(e.producer_id, e.epoch, e.last_seq, e.last_offset, e.offset_delta,
                                     e.timestamp, e.coordinator_epoch, e.current_txn_first_offset)
    return _SNAPSHOT_HEADER.pack(PRODUCER_SNAPSHOT_VERSION, crc32c.crc32c(bytes(body))) + bytes(body)


def decode_snapshot(data: bytes) -> list[ProducerSnapshotEntry]:
    """Entries of a snapshot file's bytes. Raises CorruptSnapshotError (Kafka's readSnapshot
    checks: version 1, CRC-32C of the bytes after the CRC, the entry count matching the size)."""
    if len(data) < _SNAPSHOT_HEADER.size + _SNAPSHOT_COUNT.size:
        raise CorruptSnapshotError(f"snapshot of {len(data)} bytes is too short")
    version, crc = _SNAPSHOT_HEADER.unpack_from(data, 0)
    if version != PRODUCER_SNAPSHOT_VERSION:
        raise CorruptSnapshotError(f"snapshot contained an unknown file version {version}")
    body = data[_SNAPSHOT_HEADER.size:]
    computed = crc32c.crc32c(body)
    if computed != crc:
        raise CorruptSnapshotError(f"snapshot is corrupt (CRC is no longer valid). Stored crc: {crc}. "
                                   f"Computed crc: {computed}")
    (count,) = _SNAPSHOT_COUNT.unpack_from(body, 0)
    if count < 0 or len(body) != _SNAPSHOT_COUNT.size + count * _SNAPSHOT_ENTRY.size:
        raise CorruptSnapshotError(f"snapshot of {len(data)} bytes does not hold {count} entries")
    return [ProducerSnapshotEntry(*_SNAPSHOT_ENTRY.unpack_from(body, _SNAPSHOT_COUNT.size + i * _SNAPSHOT_ENTRY.size))
            for i in range(count)]


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

    def __init__(self, partition: str = "", dir: Path | None = None) -> None:
        self.dir = Path(dir) if dir is not None else None  # None: no .snapshot files
        self.last_snap_offset = 0  # offset of the snapshot the last rebuild started from (0: none)
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

    # ------------------------------------------------------------------ snapshots
    def snapshot_entries(self) -> list[ProducerSnapshotEntry]:
        """The producers as Kafka writes them to a snapshot (each with its last batch only)."""
        out = []
        for pid, e in self.producers.items():
            if e.batches:
                b = e.batches[-1]
                last_seq, last_offset, delta = b.last_seq, b.last_offset, b.last_offset - b.first_offset
            else:
                last_seq, last_offset, delta = -1, -1, 0
            out.append(ProducerSnapshotEntry(pid, e.epoch, last_seq, last_offset, delta, e.last_timestamp,
                                             e.coordinator_epoch, e.current_txn_first_offset))
        return out

    def take_snapshot(self, offset: int) -> Path | None:
        """Write ``<offset>.snapshot`` (the state as of the log reaching ``offset``: every
        batch below it applied) through a .tmp file, fsynced and renamed; None without a dir.
        Kafka's takeSnapshot at segment roll and clean shutdown. Raises OSError."""
        if self.dir is None:
            return None
        path = snapshot_file(self.dir, offset)
        tmp = path.with_name(path.name + ".tmp")
        data = encode_snapshot(self.snapshot_entries())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return path

    def delete_snapshots(self, below: int | None = None, above: int | None = None) -> int:
        """Delete the snapshots at offsets < ``below`` (their segments were deleted: Kafka's
        deleteSnapshotsBefore) and > ``above`` (the log was truncated below them); returns how
        many went."""
        if self.dir is None:
            return 0
        n = 0
        for off, p in list_snapshot_files(self.dir):
            if (below is not None and off < below) or (above is not None and off > above):
                p.unlink(missing_ok=True)
                n += 1
        return n

    def remove_stray_snapshots(self, segment_bases: list[int]) -> int:
        """Delete snapshots that belong to no segment, except the newest one when it lies past
        every segment base (the clean shutdown's); Kafka's removeStraySnapshots at load."""
        if self.dir is None:
            return 0
        bases = set(segment_bases)
        top = max(segment_bases, default=-1)
        strays = [(off, p) for off, p in list_snapshot_files(self.dir) if off not in bases]
        if strays and strays[-1][0] > top:
            strays.pop()
        for _off, p in strays:
            p.unlink(missing_ok=True)
        return len(strays)

    def _load_latest_snapshot(self, lg: _Log) -> int:
        """Load the newest valid snapshot at an offset in [first segment base, log end offset]
        (deleting those past the log end); returns its offset, 0 when none. A corrupt one is
        deleted, logged once, and the next older one tried (Kafka's loadFromSnapshot)."""
        self.last_snap_offset = 0
        if self.dir is None or not lg.segments:
            return 0
        leo, first_base = lg.log_end_offset, lg.segments[0].base_offset
        for off, path in reversed(list_snapshot_files(self.dir)):
            if off > leo:
                path.unlink(missing_ok=True)
                continue
            if off < first_base:
                break
            try:
                entries = decode_snapshot(path.read_bytes())
            except (CorruptSnapshotError, OSError) as exc:
                log_line = "producer_snapshot_corrupt" if isinstance(exc, CorruptSnapshotError) else "producer_snapshot_unreadable"
                log.warning(log_line, file=str(path), error=str(exc))
                path.unlink(missing_ok=True)
                continue
            for e in entries:
                self._load_entry(e)
            self.last_snap_offset = off
            return off
        return 0

    def _load_entry(self, e: ProducerSnapshotEntry) -> None:
        entry = ProducerStateEntry(e.epoch, coordinator_epoch=e.coordinator_epoch,
                                   current_txn_first_offset=e.current_txn_first_offset, last_timestamp=e.timestamp)
        if e.last_offset >= 0:
            entry.batches.append(BatchMetadata(e.last_seq - e.offset_delta, e.last_seq,
                                               e.last_offset - e.offset_delta, e.last_offset))
        self.producers[e.producer_id] = entry
        if e.current_txn_first_offset >= 0:
            self.ongoing_txns[e.current_txn_first_offset] = e.producer_id

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
        """Rebuild from the newest snapshot at or below the log end offset (``last_snap_offset``;
        snapshots past the log end are deleted) and the headers of every stored batch from its
        offset on (control batches: their marker record too); returns batches seen. ``on_aborted(segment, txn, lso)`` is called for every
        aborted transaction, with the segment holding its marker and the LSO after it (the
        log rebuilds its .txnindex files with it). Raises OSError when a header cannot be read."""
        self.clear()
        start = self._load_latest_snapshot(log)
        seen = 0
        for seg, h, load in _scan_headers(log, start):
            seen += 1

            def completed(txn: CompletedTxn, seg: LogSegment = seg) -> None:
                if txn.is_aborted and on_aborted is not None:
                    on_aborted(seg, txn, self.last_stable_offset_after(txn))

            self.apply_header(h, load, completed)
        self.on_high_watermark_updated(log.high_watermark)
        return seen


def _scan_headers(log: _Log, start: int = 0) -> Iterator[tuple[LogSegment, tuple[Any, ...], Callable[[], RecordBatch | None]]]:
    """(segment, header, loader of the whole batch) for every stored batch with a producer id
    and a base offset at or after ``start``, reading only the 61-byte headers (the loader reads
    the batch, used for markers)."""
    segments = list(log.segments)
    for i, seg in enumerate(segments):
        if i + 1 < len(segments) and segments[i + 1].base_offset <= start:
            continue  # wholly below the snapshot
        records = seg.log
        fd, size, pos = records.file.fd, records.size, 0
        if start > seg.base_offset:
            h = seg.translate_offset(start)
            if h is None:
                continue
            pos = h.position
        while pos + HEADER_SIZE <= size:
            raw = os.pread(fd, HEADER_SIZE, pos)
            if len(raw) < HEADER_SIZE:
                break
            header = HEADER.unpack(raw)
            batch_length, producer_id = header[1], header[9]
            if batch_length <= 0:
                break
            total = batch_length + LOG_OVERHEAD
            if producer_id >= 0 and header[0] >= start:
                def load(fd: int = fd, pos: int = pos, total: int = total) -> RecordBatch | None:
                    data = os.pread(fd, total, pos)
                    try:
                        return RecordBatch(data, 0)
                    except RecordBatchError:
                        return None
                yield seg, header, load
            pos += total
