"""The offset index of a segment: relative offset -> byte position in the .log (Kafka's OffsetIndex).

File format (Kafka's, so DumpLogSegments reads it): 8-byte entries, big-endian
int32 (offset - base_offset) then int32 (position in bytes of the batch in the .log file).
One entry per log.index.interval.bytes of appended data, keyed by the batch's LAST offset
(Kafka 3.x LogSegment.append), sorted by offset.
"""

from __future__ import annotations

import struct

from kafkalike.storage.abstract_index import AbstractIndex
from kafkalike.storage.errors import CorruptIndexError

_ENTRY = struct.Struct(">ii")


class OffsetIndex(AbstractIndex):
    """Sparse index over one segment. lookup() gives the last entry at or before an offset."""

    ENTRY = _ENTRY

    def _key(self, slot: int) -> int:
        return _ENTRY.unpack_from(self._buf, slot * 8)[0]

    def entry(self, slot: int) -> tuple[int, int]:
        """(absolute offset, position) of entry `slot`."""
        self._open()
        rel, pos = _ENTRY.unpack_from(self._buf, slot * 8)
        return self.base_offset + rel, pos

    def last_entry(self) -> tuple[int, int]:
        """(absolute offset, position) of the last entry, or (base_offset, 0) when empty."""
        n = self.entries
        if n == 0:
            return self.base_offset, 0
        return self.entry(n - 1)

    @property
    def last_offset(self) -> int:
        """Offset of the last entry (base_offset when empty)."""
        return self.last_entry()[0]

    def lookup(self, target_offset: int) -> tuple[int, int]:
        """(offset, position) of the largest entry with offset <= target_offset, else (base, 0)."""
        slot = self._largest_lower_bound_slot(target_offset - self.base_offset)
        if slot < 0:
            return self.base_offset, 0
        return self.entry(slot)

    def append(self, offset: int, position: int) -> None:
        """Add (offset, position); offset must exceed the last entry's (else ignored if equal).

        Raises ValueError for an offset going backwards (Kafka's InvalidOffsetException).
        """
        self._open()
        if self._n:
            last = self.base_offset + _ENTRY.unpack_from(self._buf, self._n * 8 - 8)[0]
            if offset <= last:
                if offset == last:
                    return
                raise ValueError(f"offset index append of {offset} after {last} in {self.path}")
        self._append_raw(_ENTRY.pack(offset - self.base_offset, position))

    def truncate_to(self, offset: int) -> None:
        """Remove entries with offset >= `offset`."""
        slot = self._largest_lower_bound_slot(offset - self.base_offset)
        if slot < 0:
            self.truncate_to_entries(0)
        elif self.entry(slot)[0] == offset:
            self.truncate_to_entries(slot)
        else:
            self.truncate_to_entries(slot + 1)

    def sanity_check(self) -> None:
        """Raise CorruptIndexError if the file can't be this segment's index (Kafka's sanityCheck)."""
        self._open()
        length = self.sizeof_file()
        if length % 8 != 0:
            raise CorruptIndexError(f"index file size {length} is not a multiple of 8", self.path)
        n = self._n
        if n:
            last_off, last_pos = self.last_entry()
            first_off, first_pos = self.entry(0)
            if last_off < self.base_offset or last_off < first_off or last_pos < first_pos:
                raise CorruptIndexError(
                    f"corrupt index: last offset {last_off} / position {last_pos} vs base {self.base_offset}",
                    self.path,
                )
            if n > 1 and last_off == first_off:
                raise CorruptIndexError("corrupt index: repeated offsets (zero-filled?)", self.path)
