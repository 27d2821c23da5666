"""The time index of a segment: timestamp -> offset (Kafka's TimeIndex).

File format (Kafka's): 12-byte entries, big-endian int64 timestamp (ms) then int32
(offset - base_offset). Timestamps strictly increase; an entry is written beside each offset
index entry when the segment's max timestamp so far grew, and once more when the segment rolls
(the last slot is reserved for that, so `is_full` is entries >= max_entries - 1, as in Kafka).
"""

from __future__ import annotations

import struct

from kafkalike.protocol.record_batch import NO_TIMESTAMP
from kafkalike.storage.abstract_index import AbstractIndex
from kafkalike.storage.errors import CorruptIndexError

_ENTRY = struct.Struct(">qi")


class TimeIndex(AbstractIndex):
    """Sparse index of (max timestamp so far, offset) pairs over one segment."""

    ENTRY = _ENTRY

    def _key(self, slot: int) -> int:
        return _ENTRY.unpack_from(self._buf, slot * 12)[0]

    def entry(self, slot: int) -> tuple[int, int]:
        """(timestamp ms, absolute offset) of entry `slot`."""
        self._open()
        ts, rel = _ENTRY.unpack_from(self._buf, slot * 12)
        return ts, self.base_offset + rel

    def last_entry(self) -> tuple[int, int]:
        """Last (timestamp, offset), or (NO_TIMESTAMP=-1, base_offset) when empty."""
        n = self.entries
        if n == 0:
            return NO_TIMESTAMP, self.base_offset
        return self.entry(n - 1)

    def is_full(self) -> bool:
        """Kafka keeps the last slot for the roll-time entry."""
        return self.entries >= self.max_entries - 1

    def maybe_append(self, timestamp: int, offset: int, skip_full_check: bool = False) -> None:
        """Append (timestamp, offset) if timestamp is larger than the last entry's.

        Raises ValueError if offset goes backwards or the index is full (without skip_full_check).
        """
        self._open()
        if not skip_full_check and self.is_full():
            raise ValueError(f"time index {self.path} is full")
        last_ts, last_off = self.last_entry()
        if self._n and offset < last_off:
            raise ValueError(f"time index append of offset {offset} after {last_off} in {self.path}")
        if timestamp > last_ts:
            self._append_raw(_ENTRY.pack(timestamp, offset - self.base_offset))

    def lookup(self, target_timestamp: int) -> tuple[int, int]:
        """(timestamp, offset) of the largest entry with timestamp <= target, else (-1, base)."""
        slot = self._largest_lower_bound_slot(target_timestamp)
        if slot < 0:
            return NO_TIMESTAMP, self.base_offset
        return self.entry(slot)

    def truncate_to(self, offset: int) -> None:
        """Remove entries whose offset >= `offset` (entries are sorted by offset too)."""
        n = self.entries
        keep = n
        while keep > 0 and self.entry(keep - 1)[1] >= offset:
            keep -= 1
        self.truncate_to_entries(keep)

    def sanity_check(self) -> None:
        """Raise CorruptIndexError if the file can't be this segment's time index."""
        self._open()
        length = self.sizeof_file()
        if length % 12 != 0:
            raise CorruptIndexError(f"time index file size {length} is not a multiple of 12", self.path)
        if self._n:
            last_ts, last_off = self.last_entry()
            first_ts, first_off = self.entry(0)
            if last_off < self.base_offset or last_ts < first_ts or last_off < first_off:
                raise CorruptIndexError(
                    f"corrupt time index: last entry ({last_ts}, {last_off}) vs base {self.base_offset}",
                    self.path,
                )
