"""Base of the fixed-entry-size index files, held in memory and written through (Kafka's AbstractIndex).

An index file holds fixed-size big-endian entries sorted by offset, in Kafka's format (so Kafka's
DumpLogSegments reads our files as its own). An existing file is taken to hold
length // entry_size entries, as Kafka does.

Descriptors: none per partition (at most WRITE_DESCRIPTORS over the process). Kafka mmaps its index files and closes them; CPython 3.11's
mmap.mmap dup()s the descriptor and keeps the copy until the map is closed (`trackfd=False` only
exists from 3.13), so mmapped indexes would cost a broker two descriptors per partition on top of
the active segment's .log. Instead (docs/storage.md, "Descriptors per partition"):

* the active (writable) index keeps its entries in a bytearray. Its file is preallocated (sparse)
  to segment.index.bytes rounded down to whole entries when it becomes writable, as Kafka does.
  Every entry is written through to the file as it is added (one pwrite of the 8- or 12-byte
  entry per log.index.interval.bytes of appended data, on a descriptor taken from a process-wide
  LRU of at most WRITE_DESCRIPTORS, released at flush, roll and close), so the file in the
  page cache always holds the same entries as memory, as Kafka's memory-mapped index does: a
  reader of a live segment's .index / .timeindex (kafka-dump-log.sh, another process) sees every
  entry. Entries dropped by a truncation are zeroed in the file. fsync happens at flush (Kafka's
  mmap force); a crash loses nothing, because the loader rebuilds the indexes of every segment
  past the recovery point, and the active segment always, from the .log (log_loader.py step 4).
  A rebuild (LogSegment.recover) defers the writes with `deferred_writes()` and writes all
  entries at once at its end;
* a read-only (inactive) index is loaded on first use with one open / pread / close into an
  immutable bytes object and kept in a process-wide cache bounded by READ_ONLY_CACHE_BYTES
  (least recently used first out; an evicted index reloads on its next lookup). The file is the
  authority; nothing is ever written back from the cache.

Lookups are binary searches over the in-memory bytes, as fast as over a mapping.

Threads: the two process-wide structures (the read-only cache and the write-descriptor LRU) are
guarded by one lock (``_lock``), and a write-through holds it from taking its descriptor to the
end of its pwrite, so an eviction in another thread never closes a descriptor in use. So indexes
may be created, loaded and closed in worker threads (LogManager creates the logs of a large
LeaderAndIsr in one) while the event loop serves others; one index is still used by one thread
at a time.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict
from pathlib import Path

import structlog

from kafkalike.storage.errors import KafkaStorageError

log = structlog.get_logger(__name__)

READ_ONLY_CACHE_BYTES = 64 * 1024 * 1024
"""Budget (bytes) for the entries of read-only indexes kept in memory, over all logs."""

_read_only_cache: OrderedDict[int, tuple[AbstractIndex, int]] = OrderedDict()  # id -> (index, bytes)
_read_only_cache_bytes = 0

#: guards _read_only_cache, _read_only_cache_bytes and _write_fds (see the module doc, "Threads")
_lock = threading.RLock()


def read_only_cache_bytes() -> int:
    """Bytes of read-only index entries currently held in memory (all logs of the process)."""
    return _read_only_cache_bytes


def _cache_add(index: AbstractIndex) -> None:
    """Register a loaded read-only index; evict the least recently used others over budget."""
    with _lock:
        _cache_add_locked(index)


def _cache_add_locked(index: AbstractIndex) -> None:
    global _read_only_cache_bytes
    _cache_remove(index)
    size = len(index._buf)
    _read_only_cache[id(index)] = (index, size)
    _read_only_cache_bytes += size
    while _read_only_cache_bytes > READ_ONLY_CACHE_BYTES and len(_read_only_cache) > 1:
        key, (victim, vsize) = next(iter(_read_only_cache.items()))
        if victim is index:  # never evict the index being loaded
            break
        del _read_only_cache[key]
        _read_only_cache_bytes -= vsize
        victim._buf = b""
        victim._opened = False


WRITE_DESCRIPTORS = 64
"""Most descriptors kept open, over all logs, for writing through the active indexes of the
partitions written most recently (a bounded, process-wide cost, not one per partition)."""

_write_fds: OrderedDict[int, tuple[AbstractIndex, int]] = OrderedDict()  # id -> (index, fd)


def _write_fd(index: AbstractIndex) -> int:
    """An O_WRONLY descriptor on the index's file, from the bounded LRU or newly opened. The
    caller holds ``_lock`` until it no longer uses the descriptor."""
    item = _write_fds.get(id(index))
    if item is not None:
        _write_fds.move_to_end(id(index))
        return item[1]
    fd = os.open(index.path, os.O_WRONLY | os.O_CREAT, 0o644)
    _write_fds[id(index)] = (index, fd)
    while len(_write_fds) > WRITE_DESCRIPTORS:
        _, (_, old) = _write_fds.popitem(last=False)
        try:
            os.close(old)
        except OSError:
            pass
    return fd


def _drop_write_fd(index: AbstractIndex) -> None:
    """Close the index's write descriptor, if it holds one (flush, roll, close, rename, delete)."""
    with _lock:
        item = _write_fds.pop(id(index), None)
    if item is not None:
        try:
            os.close(item[1])
        except OSError:
            pass


def write_descriptors() -> int:
    """Descriptors currently held for writing through active indexes (<= WRITE_DESCRIPTORS)."""
    return len(_write_fds)


def _cache_remove(index: AbstractIndex) -> None:
    global _read_only_cache_bytes
    with _lock:
        item = _read_only_cache.pop(id(index), None)
        if item is not None:
            _read_only_cache_bytes -= item[1]


class AbstractIndex:
    """Shared mechanics: load, write-back, resize, trim, entry count, binary search, close.

    Subclasses set ENTRY (a struct.Struct) and implement `_key(slot)` for binary search over
    `self._buf`. Units: sizes in bytes; offsets absolute (entries store them relative to
    base_offset). File errors raise KafkaStorageError naming the file (KAFKA_STORAGE_ERROR).
    """

    ENTRY: struct.Struct
    WRITE_THROUGH = True
    """Entries reach the file as they are added (False only to measure what that costs)."""

    def __init__(self, path: Path, base_offset: int, max_index_size: int, writable: bool) -> None:
        self.path = Path(path)
        self.base_offset = base_offset
        self.entry_size = self.ENTRY.size
        self.max_index_size = max_index_size
        self.writable = writable
        self._buf: bytes | bytearray = b""  # the valid entries, when loaded
        self._opened = False  # _buf holds the entries (False: load from the file on next use)
        self._n = 0  # valid entries (meaningful when _opened)
        self._in_file = 0  # leading entries known to be identical in the file
        self._unsynced = False  # written to the file since the last fsync
        self._write_through = self.WRITE_THROUGH  # each appended entry goes to the file at once
        self._write_failed = False  # the last write-through failed (warned once)
        if writable:
            self._preallocate()

    # ------------------------------------------------------------------ file mechanics
    def _fail(self, what: str, exc: OSError) -> KafkaStorageError:
        return KafkaStorageError(f"cannot {what} index ({exc.strerror})", self.path)

    def _open(self) -> None:
        """Load the entries (file length // entry size of them) unless already in memory."""
        if self._opened:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise self._fail("open", exc) from exc
        else:
            try:
                n = os.fstat(fd).st_size // self.entry_size
                data = os.pread(fd, n * self.entry_size, 0) if n else b""
            except OSError as exc:
                raise self._fail("read", exc) from exc
            finally:
                os.close(fd)
        self._n = len(data) // self.entry_size
        self._in_file = self._n
        self._opened = True
        if self.writable:
            self._buf = bytearray(data)
        else:
            self._buf = data
            _cache_add(self)

    def _round(self, size: int) -> int:
        return (size // self.entry_size) * self.entry_size

    def _write_back(self, length: int | None = None, fsync: bool = False) -> None:
        """One open/pwrite/[ftruncate]/[fsync]/close: entries not yet in the file are written;
        with `length` the file is set to that many bytes; with fsync it is made durable."""
        pending = self._opened and self._in_file < self._n
        if not pending and length is None and not (fsync and self._unsynced):
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if pending:
                    es = self.entry_size
                    view = memoryview(self._buf)[self._in_file * es : self._n * es]
                    pos = self._in_file * es
                    while view:
                        k = os.pwrite(fd, view, pos)
                        view, pos = view[k:], pos + k
                    self._in_file = self._n
                    self._unsynced = True
                if length is not None and os.fstat(fd).st_size != length:
                    os.ftruncate(fd, length)
                    self._unsynced = True
                if fsync and self._unsynced:
                    os.fsync(fd)
                    self._unsynced = False
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._fail("write", exc) from exc

    def _preallocate(self) -> None:
        """Grow (sparsely) the file to segment.index.bytes rounded down to whole entries, or to
        its valid entries if they are more (Kafka's writable index length)."""
        self._open()
        self._write_back(max(self._round(self.max_index_size), self._n * self.entry_size))

    def _close_map(self) -> None:
        """Forget the in-memory entries without writing them (a crash, or to free memory)."""
        _drop_write_fd(self)
        if not self.writable:
            _cache_remove(self)
        self._buf = b""
        self._opened = False

    def resize(self, new_size: int) -> None:
        """Set the file length to new_size rounded down to whole entries (>= valid entries),
        writing the entries not yet in the file first."""
        self._open()
        self._write_back(max(self._round(new_size), self._n * self.entry_size))

    def trim_to_valid_size(self) -> None:
        """Write the entries and shrink the file to exactly them (on roll and close, as Kafka)."""
        if self._opened:
            self.resize(self._n * self.entry_size)

    def make_writable(self) -> None:
        """Become the active segment's index (again): entries held in a bytearray, file grown
        to segment.index.bytes."""
        if not self.writable:
            if self._opened:
                _cache_remove(self)
                self._buf = bytearray(self._buf)
            self.writable = True
        self._preallocate()

    def make_read_only(self) -> None:
        """Leave the active role: write and trim to valid size; entries become the read-only cache."""
        _drop_write_fd(self)
        self.trim_to_valid_size()
        if self.writable:
            self.writable = False
            if self._opened:
                self._buf = bytes(self._buf)
                _cache_add(self)

    def flush(self) -> None:
        """Write the entries not yet in the file and fsync it (part of a segment flush; Kafka's
        mmap force). Does nothing when the file is already durable. Releases the write
        descriptor (the next append takes one again)."""
        _drop_write_fd(self)
        self._write_back(fsync=True)

    def close(self) -> None:
        """Write, trim and forget the entries."""
        if self._opened:
            self.trim_to_valid_size()
            self._close_map()

    def delete(self) -> None:
        """Forget the entries and remove the file (missing file is fine)."""
        self._close_map()
        self._n = self._in_file = 0
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def rename(self, new_path: Path) -> None:
        """Rename the file (e.g. to .swap / from .cleaned); entries in memory stay valid."""
        _drop_write_fd(self)
        try:
            os.replace(self.path, new_path)
        except OSError as exc:
            raise self._fail("rename", exc) from exc
        self.path = Path(new_path)

    def reset(self) -> None:
        """Drop all entries (before a rebuild); the file is emptied (and preallocated again if
        writable)."""
        _drop_write_fd(self)
        if self._opened and not self.writable:
            _cache_remove(self)
        self._buf = bytearray() if self.writable else b""
        self._n = self._in_file = 0
        self._opened = True
        if not self.writable:
            _cache_add(self)
        self._write_back(0)
        if self.writable:
            self._write_back(self._round(self.max_index_size))

    # ------------------------------------------------------------------ entries
    @property
    def _entries(self) -> int:
        """Number of valid entries (loading them if needed)."""
        if not self._opened:
            self._open()
        return self._n

    @property
    def entries(self) -> int:
        """Number of valid entries."""
        return self._entries

    @property
    def _capacity(self) -> int:
        """Entries held in memory (0 when not loaded); kept for the storage benchmark."""
        return len(self._buf) // self.entry_size

    @property
    def max_entries(self) -> int:
        """Entries the preallocated file can hold (segment.index.bytes // entry size)."""
        return self.max_index_size // self.entry_size

    def is_full(self) -> bool:
        """True when no entry can be appended; the segment must roll (Kafka's isFull)."""
        return self.entries >= self.max_entries

    def sizeof_file(self) -> int:
        """Bytes the index file currently occupies (apparent size)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _append_raw(self, entry: bytes) -> None:
        """Add one packed entry at the end; the index must be writable (the active segment's,
        or one being rebuilt). Raises KafkaStorageError for a read-only index."""
        self._open()
        buf = self._buf
        if not self.writable or not isinstance(buf, bytearray):
            raise KafkaStorageError("append to a read-only index", self.path)
        end = self._n * self.entry_size
        if len(buf) != end:
            del buf[end:]
        buf += entry
        self._n += 1
        if self._write_through:
            self._write_entry(entry, end)

    def _write_entry(self, entry: bytes, pos: int) -> None:
        """Write one packed entry at byte `pos` of the file (write-through; also any earlier
        entries not yet in the file). Never raises: the entry is already in memory and its
        batch in the .log, so a failed write (ENOSPC filling a hole of the sparse file, EIO)
        must not fail the append; the entries stay pending (`_in_file` behind) and are written
        at the next append, flush, roll or close, where a failure raises KafkaStorageError as
        before. One warning per failure streak."""
        try:
            if self._in_file != self._n - 1:
                self._write_back()
                self._write_failed = False
                return
            with _lock:  # no other thread's eviction closes fd before the pwrite is done
                fd = _write_fd(self)
                short = os.pwrite(fd, entry, pos) != len(entry)
            if short:  # a short write of <= 12 bytes: retry whole
                _drop_write_fd(self)
                self._write_back()
                self._write_failed = False
                return
        except (OSError, KafkaStorageError) as exc:
            _drop_write_fd(self)
            if not self._write_failed:
                self._write_failed = True
                log.warning("index_write_through_failed", file=str(self.path), error=str(exc))
            return
        self._in_file = self._n
        self._unsynced = True
        self._write_failed = False

    def deferred_writes(self) -> "_DeferredWrites":
        """Context manager: appended entries stay in memory until it exits, then are written
        with one pwrite (used by a rebuild from the .log, which adds thousands at once)."""
        return _DeferredWrites(self)

    def truncate_to_entries(self, n: int) -> None:
        """Keep the first n entries."""
        self._open()
        n = min(self._n, max(0, n))
        if n == self._n:
            return
        if self.writable:
            assert isinstance(self._buf, bytearray)
            dropped_end = self._in_file * self.entry_size
            del self._buf[n * self.entry_size :]
            self._n = n
            self._in_file = min(self._in_file, n)
            if dropped_end > n * self.entry_size:
                self._zero_file_range(n * self.entry_size, dropped_end)
        else:  # not done by LogSegment (it truncates active indexes); written through at once
            _cache_remove(self)
            self._buf = self._buf[: n * self.entry_size]
            self._n = self._in_file = n
            _cache_add(self)
            self._write_back(n * self.entry_size)

    def _zero_file_range(self, start: int, end: int) -> None:
        """Zero bytes [start, end) of the file (entries dropped by a truncation), keeping its
        length: a reader of the file sees only the valid entries, as after Kafka's truncate of
        a memory-mapped index followed by new appends."""
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._fail("open", exc) from exc
        try:
            size = os.fstat(fd).st_size
            if start < size:
                os.pwrite(fd, bytes(min(end, size) - start), start)
                self._unsynced = True
        except OSError as exc:
            raise self._fail("write", exc) from exc
        finally:
            os.close(fd)

    def _largest_lower_bound_slot(self, target: int) -> int:
        """Slot of the largest entry whose key <= target, or -1."""
        lo, hi = 0, self.entries - 1
        if not self.writable and id(self) in _read_only_cache:
            with _lock:
                if id(self) in _read_only_cache:
                    _read_only_cache.move_to_end(id(self))
        if hi < 0 or self._key(0) > target:
            return -1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._key(mid) <= target:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _key(self, slot: int) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


class _DeferredWrites:
    """See AbstractIndex.deferred_writes."""

    def __init__(self, index: AbstractIndex) -> None:
        self.index = index

    def __enter__(self) -> AbstractIndex:
        self.index._write_through = False
        return self.index

    def __exit__(self, *exc: object) -> None:
        self.index._write_through = self.index.WRITE_THROUGH
        if exc[0] is None:
            self.index._write_back()
