"""One segment of a partition's log: <base>.log + <base>.index + <base>.timeindex (Kafka's LogSegment).

A segment holds the batches whose offsets start at `base_offset` (20-digit zero-padded in the file
names). Append writes batches as received and adds an offset index entry (batch last offset ->
byte position) and a time index entry every index.interval.bytes. Reads translate an offset to a
byte position (index lookup, then a walk over batch headers) and return file slices.
`recover()` rebuilds both indexes from the .log, validating every batch's CRC, and truncates a torn
or corrupt tail.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from kafkalike.protocol.record_batch import NO_TIMESTAMP, RecordBatch, RecordBatchError
from kafkalike.storage.errors import CorruptIndexError, KafkaStorageError
from kafkalike.storage.file_records import BatchHeaderInfo, FileRecords, FileSlice, scan_valid_batches
from kafkalike.storage.offset_index import OffsetIndex
from kafkalike.storage.time_index import TimeIndex
from kafkalike.storage.transaction_index import TXN_INDEX_SUFFIX, TransactionIndex

log = structlog.get_logger(__name__)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
DELETED_SUFFIX = ".deleted"
INT32_MAX = 2**31 - 1


def filename_prefix(offset: int) -> str:
    """The 20-digit zero-padded base offset used in segment file names."""
    return f"{offset:020d}"


def log_file(dir: Path, offset: int, suffix: str = "") -> Path:
    """<dir>/<20-digit offset>.log[suffix]."""
    return dir / (filename_prefix(offset) + LOG_SUFFIX + suffix)


def index_file(dir: Path, offset: int, suffix: str = "") -> Path:
    """<dir>/<20-digit offset>.index[suffix]."""
    return dir / (filename_prefix(offset) + INDEX_SUFFIX + suffix)


def time_index_file(dir: Path, offset: int, suffix: str = "") -> Path:
    """<dir>/<20-digit offset>.timeindex[suffix]."""
    return dir / (filename_prefix(offset) + TIME_INDEX_SUFFIX + suffix)


def txn_index_file(dir: Path, offset: int, suffix: str = "") -> Path:
    """<dir>/<20-digit offset>.txnindex[suffix] (aborted transactions, KIP-98)."""
    return dir / (filename_prefix(offset) + TXN_INDEX_SUFFIX + suffix)


class LogSegment:
    """A segment: FileRecords plus its OffsetIndex and TimeIndex.

    Units: positions and sizes in bytes, offsets absolute, timestamps ms. Errors: OSError from
    the file system surfaces as KafkaStorageError naming the file.
    """

    def __init__(
        self,
        dir: Path,
        base_offset: int,
        *,
        index_interval_bytes: int,
        max_index_size: int,
        active: bool,
        suffix: str = "",
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.dir = Path(dir)
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        self.log = FileRecords(log_file(self.dir, base_offset, suffix))
        self.offset_index = OffsetIndex(index_file(self.dir, base_offset, suffix), base_offset, max_index_size, active)
        self.time_index = TimeIndex(time_index_file(self.dir, base_offset, suffix), base_offset, max_index_size, active)
        self.txn_index = TransactionIndex(txn_index_file(self.dir, base_offset, suffix), base_offset)
        if active and self.log.size == 0 and (self.offset_index.entries or self.time_index.entries):
            # stale index files next to an empty .log (e.g. left by an earlier crash): start clean
            self.offset_index.reset()
            self.time_index.reset()
        self.bytes_since_last_index_entry = 0
        self._clock = clock or (lambda: int(time.time() * 1000))
        self.created_ms = self._clock()
        self.rolling_based_timestamp: int | None = None
        self._max_ts: int | None = None  # lazily from the time index
        self._offset_of_max_ts: int = base_offset

    # ------------------------------------------------------------------ info
    @property
    def size(self) -> int:
        """Bytes in the .log file."""
        return self.log.size

    def _load_max_ts(self) -> None:
        if self._max_ts is None:
            ts, off = self.time_index.last_entry()
            self._max_ts, self._offset_of_max_ts = ts, off

    def _cur_max_ts(self) -> int:
        return NO_TIMESTAMP if self._max_ts is None else self._max_ts

    @property
    def max_timestamp_so_far(self) -> int:
        """Largest batch maxTimestamp appended (ms), -1 if none (from the time index on load)."""
        self._load_max_ts()
        assert self._max_ts is not None
        return self._max_ts

    @property
    def largest_timestamp(self) -> int:
        """Max timestamp, or the .log file's mtime (ms) when no batch had one (Kafka's rule)."""
        ts = self.max_timestamp_so_far
        if ts > NO_TIMESTAMP:
            return ts
        try:
            return int(self.log.path.stat().st_mtime * 1000)
        except OSError:
            return 0

    def can_convert_to_relative_offset(self, offset: int) -> bool:
        """True if offset - base_offset fits the indexes' int32."""
        return 0 <= offset - self.base_offset <= INT32_MAX

    def should_roll(self, append_size: int, max_timestamp: int, last_offset: int, now_ms: int, segment_bytes: int, segment_ms: int) -> bool:
        """Kafka's LogSegment.shouldRoll: size, age (by batch timestamps), full index, offset overflow."""
        size = self.log.size
        if not 0 <= last_offset - self.base_offset <= INT32_MAX:
            return True
        if size == 0:
            return False
        if size > segment_bytes - append_size:
            return True
        oi, ti = self.offset_index, self.time_index
        if oi._entries >= oi.max_index_size // 8 or ti._entries >= ti.max_index_size // 12 - 1:
            return True
        rbt = self.rolling_based_timestamp
        if rbt is None:
            first = self.log.read_header(0)  # reopened segment: Kafka's lazy rollingBasedTimestamp
            rbt = self.rolling_based_timestamp = first.max_timestamp if first else NO_TIMESTAMP
        waited = max_timestamp - rbt if rbt >= 0 and max_timestamp >= 0 else now_ms - self.created_ms
        return waited > segment_ms

    # ------------------------------------------------------------------ append
    def append(self, data: memoryview, batches: list[tuple[int, int, int, int]]) -> None:
        """Append `data` (whole batches); `batches` lists (relative position, size, last offset,
        max timestamp) for each batch in data, in order. Offsets must fit this segment.
        Raises KafkaStorageError with nothing changed (the write was rolled back), or
        LogDirFailureError when the rollback failed (FileRecords.append)."""
        if not data:
            return
        physical = self.log.size
        self.log.append(data)  # all or nothing: a failed write changes no state here either
        if physical == 0:
            self.rolling_based_timestamp = max(b[3] for b in batches)
        self._load_max_ts()
        assert self._max_ts is not None
        for rel_pos, size, last_offset, max_ts in batches:
            if max_ts > self._max_ts:
                self._max_ts = max_ts
                self._offset_of_max_ts = last_offset
            if self.bytes_since_last_index_entry > self.index_interval_bytes:
                self.offset_index.append(last_offset, physical + rel_pos)
                self.time_index.maybe_append(self._max_ts, self._offset_of_max_ts)
                self.bytes_since_last_index_entry = 0
            self.bytes_since_last_index_entry += size

    # ------------------------------------------------------------------ reads
    def translate_offset(self, offset: int, starting_position: int = 0) -> BatchHeaderInfo | None:
        """Header of the first batch whose last offset >= offset, searching from the index; None if none."""
        _, pos = self.offset_index.lookup(offset)
        pos = max(pos, starting_position)
        for h in self.log.iter_headers(pos):
            if h.last_offset >= offset:
                return h
        return None

    def read(self, start_offset: int, max_size: int, max_position: int | None = None, min_one_message: bool = True) -> FileSlice | None:
        """Slice from the batch holding start_offset, at most max_size bytes (the first batch whole
        when min_one_message), not past max_position. None if no batch here holds start_offset."""
        h = self.translate_offset(start_offset)
        if h is None:
            return None
        max_position = self.log.size if max_position is None else min(max_position, self.log.size)
        if h.position >= max_position:
            return None
        adjusted = max(max_size, h.size) if min_one_message else max_size
        length = min(max_position - h.position, adjusted)
        if length <= 0:
            return None
        return self.log.slice(h.position, length)

    def read_next_offset(self) -> int:
        """Offset after the last batch (base_offset when empty)."""
        _, pos = self.offset_index.last_entry()
        nxt = self.base_offset
        for h in self.log.iter_headers(pos):
            nxt = h.last_offset + 1
        return nxt

    def find_offset_by_timestamp(self, timestamp: int, starting_offset: int,
                                 record_timestamps: Callable[[bytes], list[tuple[int, int]]]) -> tuple[int, int] | None:
        """(timestamp, offset) of the first record with timestamp >= `timestamp` and offset >=
        starting_offset, or None. record_timestamps(batch bytes) -> [(offset, ts)]."""
        _, ts_offset = self.time_index.lookup(timestamp)
        _, pos = self.offset_index.lookup(max(ts_offset, starting_offset))
        for h in self.log.iter_headers(pos):
            if h.max_timestamp >= timestamp and h.last_offset >= starting_offset:
                for off, ts in record_timestamps(self.log.read_all(h.position, h.position + h.size)):
                    if ts >= timestamp and off >= starting_offset:
                        return ts, off
        return None

    # ------------------------------------------------------------------ recovery / truncation
    def recover(self, on_batch: Callable[[RecordBatch], None] | None = None,
                max_batch_bytes: int | None = None) -> tuple[int, RecordBatchError | None]:
        """Rebuild both indexes from the .log, validating each batch (length, magic, CRC, offsets
        in order: file_records.scan_valid_batches); truncate at the first invalid or incomplete
        batch. Returns (bytes truncated, the error found)."""
        was_writable = self.offset_index.writable
        # reset first: make_writable would otherwise load the old (maybe preallocated) entries
        self.offset_index.reset()
        self.time_index.reset()
        self.offset_index.make_writable()
        self.time_index.make_writable()
        self._max_ts = NO_TIMESTAMP
        self._offset_of_max_ts = self.base_offset
        self.bytes_since_last_index_entry = 0
        self.rolling_based_timestamp = None
        mm = None
        try:
            mm = self.log.map_for_scan()
        except (OSError, ValueError) as exc:
            raise KafkaStorageError(f"cannot map log segment for recovery ({exc})", self.log.path) from exc
        valid_end, error = 0, None
        if mm is not None:
            state = {"first": True}

            def each(batch: RecordBatch) -> None:
                if state["first"]:
                    self.rolling_based_timestamp = batch.max_timestamp
                    state["first"] = False
                if batch.max_timestamp > self._cur_max_ts():
                    self._max_ts = batch.max_timestamp
                    self._offset_of_max_ts = batch.last_offset
                if self.bytes_since_last_index_entry > self.index_interval_bytes:
                    self.offset_index.append(batch.last_offset, batch.position)
                    self.time_index.maybe_append(self._cur_max_ts(), self._offset_of_max_ts)
                    self.bytes_since_last_index_entry = 0
                self.bytes_since_last_index_entry += batch.size_in_bytes
                if on_batch is not None:
                    on_batch(batch)

            try:
                with self.offset_index.deferred_writes(), self.time_index.deferred_writes():
                    valid_end, error = scan_valid_batches(mm, each, base_offset=self.base_offset)
            finally:
                try:
                    mm.close()
                except BufferError:  # a view still alive; let GC unmap it
                    pass
        truncated = self.log.truncate_to(valid_end)
        if not was_writable:
            self.time_index.maybe_append(self._cur_max_ts(), self._offset_of_max_ts, skip_full_check=True)
            self.offset_index.make_read_only()
            self.time_index.make_read_only()
        return truncated, error

    def check_tail(self, from_offset: int) -> tuple[int, RecordBatchError | None]:
        """Validate the batches from the offset index entry at or below `from_offset` (the
        recovery point: bytes before it were fsynced and are trusted) to the end of the .log,
        as recover() does (length, magic, CRC, offsets in order), and cut the file at the first
        invalid or incomplete batch; index entries of removed batches go too (when not even the
        batch at the index entry is valid, the walk starts from the entry before). Returns
        (bytes truncated, the error found). Costs a read of the bytes past the index entry: about
        index.interval.bytes after a clean shutdown, where the recovery point is the LEO."""
        size = self.log.size
        entry_offset, pos = self.offset_index.lookup(from_offset)
        if pos >= size:
            return 0, None
        try:
            mm = self.log.map_for_scan()
        except (OSError, ValueError) as exc:
            raise KafkaStorageError(f"cannot map log segment for validation ({exc})", self.log.path) from exc
        if mm is None:
            return 0, None
        valid_next: list[int] = []  # the offset after each valid batch
        try:
            while True:
                valid_end, error = scan_valid_batches(
                    mm, lambda b: valid_next.append(b.last_offset + 1), start=pos, base_offset=self.base_offset)
                if valid_next or pos == 0:
                    break
                # not even the batch the entry names is valid: start from the entry before it
                entry_offset, pos = self.offset_index.lookup(entry_offset - 1)
        finally:
            try:
                mm.close()
            except BufferError:  # a view still alive; let GC unmap it
                pass
        if valid_end >= size:
            return 0, None
        nxt = valid_next[-1] if valid_next else self.base_offset
        self.offset_index.truncate_to(nxt)
        self.time_index.truncate_to(nxt)
        self.log.truncate_to(valid_end)
        self._max_ts = None
        self._load_max_ts()
        _, last_pos = self.offset_index.last_entry()
        for h in self.log.iter_headers(last_pos):
            if h.max_timestamp > self._cur_max_ts():
                self._max_ts, self._offset_of_max_ts = h.max_timestamp, h.last_offset
        return size - valid_end, error

    def truncate_to(self, offset: int) -> tuple[int, int]:
        """Remove batches whose last offset >= offset (a batch holding `offset` goes whole).
        Returns (bytes removed, base offset of the first removed batch or `offset`)."""
        h = self.translate_offset(offset)
        if h is None:
            return 0, offset
        self.offset_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        self.txn_index.truncate_to(offset)
        removed = self.log.truncate_to(h.position)
        self.offset_index.resize(self.offset_index.max_index_size)
        self.time_index.resize(self.time_index.max_index_size)
        self.bytes_since_last_index_entry = 0
        if self.log.size == 0:
            self.rolling_based_timestamp = None
        self._max_ts = None
        self._load_max_ts()
        # The time index may not cover the remaining tail: walk it for the true max.
        _, pos = self.offset_index.last_entry()
        for hh in self.log.iter_headers(pos):
            if hh.max_timestamp > self._cur_max_ts():
                self._max_ts, self._offset_of_max_ts = hh.max_timestamp, hh.last_offset
        return removed, min(offset, h.base_offset)

    def sanity_check(self, require_indexes: bool) -> None:
        """Raise CorruptIndexError if an index is missing (when required) or malformed."""
        for idx in (self.offset_index, self.time_index):
            if require_indexes and not idx.path.exists():
                raise CorruptIndexError("missing index file", idx.path)
        self.offset_index.sanity_check()
        self.time_index.sanity_check()
        _, pos = self.offset_index.last_entry()
        if pos > self.log.size:
            raise CorruptIndexError(f"index points past the end of the log ({pos} > {self.log.size})", self.offset_index.path)

    # ------------------------------------------------------------------ lifecycle
    def on_become_inactive(self) -> None:
        """Roll: add the final time index entry, trim both indexes (Kafka's onBecomeInactiveSegment)."""
        self._load_max_ts()
        if self._max_ts is not None and self._max_ts > NO_TIMESTAMP:
            self.time_index.maybe_append(self._max_ts, self._offset_of_max_ts, skip_full_check=True)
        self.offset_index.make_read_only()
        self.time_index.make_read_only()

    def make_active(self) -> None:
        """Become the active segment again (after truncation removed later segments)."""
        self.offset_index.make_writable()
        self.time_index.make_writable()

    def flush(self) -> None:
        """fsync the .log; write both indexes' new entries to their files and fsync them (and
        the .txnindex when entries were appended)."""
        self.log.flush()
        self.offset_index.flush()
        self.time_index.flush()
        try:
            self.txn_index.flush()
        except OSError as exc:
            raise KafkaStorageError(f"fsync of transaction index failed ({exc.strerror})", self.txn_index.path) from exc

    def close(self) -> None:
        """Clean close: final time index entry if active, trim indexes, close the file."""
        if self.offset_index.writable:
            self.on_become_inactive()
        self.offset_index.close()
        self.time_index.close()
        self.log.close()

    def close_handlers(self) -> None:
        """Close without trimming or writing index entries (a crash: used when the directory is
        going away, and by tests)."""
        self.offset_index._close_map()
        self.time_index._close_map()
        self.log.close()

    def delete(self) -> None:
        """Remove the segment's files; in-flight slices keep the .log readable until sent."""
        log.debug("segment_deleted", path=str(self.log.path))
        self.offset_index.delete()
        self.time_index.delete()
        self.txn_index.delete()
        self.log.delete()

    def rename_suffix(self, old: str, new: str) -> None:
        """Change the file-name suffix of the segment's files (e.g. ".cleaned" -> ".swap" -> "")."""
        self.log.rename(log_file(self.dir, self.base_offset, new))
        self.txn_index.rename(txn_index_file(self.dir, self.base_offset, new))
        for idx, fn in ((self.offset_index, index_file), (self.time_index, time_index_file)):
            target = fn(self.dir, self.base_offset, new)
            if idx.path.exists():
                idx.rename(target)
            else:
                idx.path = target

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self.size}, path={self.log.path})"


def sync_dir(path: Path) -> None:
    """fsync a directory so renames and creations in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
