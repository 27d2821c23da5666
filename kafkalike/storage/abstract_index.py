"""Base of the memory-mapped, fixed-entry-size index files (Kafka's AbstractIndex).

An index file holds fixed-size big-endian entries sorted by offset. While its segment is active the
file is preallocated (sparse) to segment.index.bytes rounded down to a whole number of entries and
mmapped read-write; when the segment rolls or the log closes it is trimmed to its valid entries,
so Kafka's DumpLogSegments reads our files as its own. An existing file is taken to hold
length // entry_size entries (as Kafka does); after an unclean shutdown the loader rebuilds the
indexes of every segment past the recovery point instead of trusting them.

Inactive segments open their index lazily (first lookup), so an idle partition costs no mmap.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from kafkalike.storage.errors import KafkaStorageError


class AbstractIndex:
    """Shared mechanics: open/mmap, resize, trim, entry count, binary search, close.

    Subclasses set ENTRY (a struct.Struct) and implement `_key(slot)` for binary search.
    Units: sizes in bytes; offsets absolute (entries store them relative to base_offset).
    """

    ENTRY: struct.Struct

    def __init__(self, path: Path, base_offset: int, max_index_size: int, writable: bool) -> None:
        self.path = Path(path)
        self.base_offset = base_offset
        self.entry_size = self.ENTRY.size
        self.max_index_size = max_index_size
        self.writable = writable
        self._mm: mmap.mmap | None = None
        self._opened = False
        self._entries = 0
        self._capacity = 0  # entries the current mapping can hold
        if writable:
            self._open()

    # ------------------------------------------------------------------ file mechanics
    def _open(self) -> None:
        """Open (creating if needed) and map the file; writable indexes are grown to max size."""
        if self._opened:
            return
        try:
            existed = self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                length = os.fstat(fd).st_size
                self._entries = length // self.entry_size if existed else 0
                if self.writable:
                    target = self._round(self.max_index_size)
                    if target < (self._entries * self.entry_size):
                        target = self._entries * self.entry_size
                    if length != target:
                        os.ftruncate(fd, target)
                    length = target
                self._map(fd, length)
            finally:
                os.close(fd)
        except OSError as exc:
            raise KafkaStorageError(f"cannot open index ({exc.strerror})", self.path) from exc
        self._opened = True

    def _round(self, size: int) -> int:
        return (size // self.entry_size) * self.entry_size

    def _map(self, fd: int, length: int) -> None:
        if length > 0:
            self._mm = mmap.mmap(fd, length, access=mmap.ACCESS_WRITE)
        else:
            self._mm = None
        self._capacity = length // self.entry_size

    def _close_map(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def resize(self, new_size: int) -> None:
        """Set the file length to new_size rounded down to whole entries (>= valid entries); remap."""
        self._open()
        target = max(self._round(new_size), self._entries * self.entry_size)
        self._close_map()
        try:
            fd = os.open(self.path, os.O_RDWR)
            try:
                os.ftruncate(fd, target)
                self._map(fd, target)
            finally:
                os.close(fd)
        except OSError as exc:
            raise KafkaStorageError(f"cannot resize index ({exc.strerror})", self.path) from exc

    def trim_to_valid_size(self) -> None:
        """Shrink the file to exactly its entries (done on roll and close, as Kafka does)."""
        if self._opened:
            self.resize(self._entries * self.entry_size)

    def make_writable(self) -> None:
        """Become the active segment's index again: grow to segment.index.bytes."""
        self.writable = True
        if self._opened:
            self.resize(self.max_index_size)
        else:
            self._open()

    def make_read_only(self) -> None:
        """Leave the active role: trim to valid size."""
        self.trim_to_valid_size()
        self.writable = False

    def flush(self) -> None:
        """msync the mapping (part of a segment flush)."""
        if self._mm is not None:
            self._mm.flush()

    def close(self) -> None:
        """Trim and unmap."""
        if self._opened:
            self.trim_to_valid_size()
            self._close_map()
            self._opened = False

    def delete(self) -> None:
        """Unmap and remove the file (missing file is fine)."""
        self._close_map()
        self._opened = False
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def rename(self, new_path: Path) -> None:
        """Rename the file (e.g. to .swap / from .cleaned); mapping stays valid."""
        os.replace(self.path, new_path)
        self.path = Path(new_path)

    def reset(self) -> None:
        """Drop all entries (before a rebuild)."""
        self._open()
        self._entries = 0
        if self.writable:
            self.resize(self.max_index_size)
        else:
            self.resize(0)

    # ------------------------------------------------------------------ entries
    @property
    def entries(self) -> int:
        """Number of valid entries."""
        self._open()
        return self._entries

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

    def _ensure_room(self) -> None:
        if self._entries >= self._capacity:
            # Appending past the preallocated size (e.g. the time index's reserved roll slot).
            self.resize(max(self._entries + 1, 2 * self._capacity, 64) * self.entry_size)

    def truncate_to_entries(self, n: int) -> None:
        """Keep the first n entries."""
        self._open()
        self._entries = min(self._entries, max(0, n))

    def _largest_lower_bound_slot(self, target: int) -> int:
        """Slot of the largest entry whose key <= target, or -1."""
        lo, hi = 0, self.entries - 1
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
