"""Leader epoch -> start offset history of one partition, persisted as leader-epoch-checkpoint
(Kafka's LeaderEpochFileCache, KIP-101 / KIP-279).

Each entry says "epoch E's leader wrote its first batch at offset O". Followers use
end_offset_for(epoch) (OffsetsForLeaderEpoch) to find where their log diverges from the leader's
and truncate there instead of to the high watermark.
"""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from kafkalike.storage.checkpoints import LeaderEpochCheckpointFile
from kafkalike.storage.errors import KafkaStorageError

log = structlog.get_logger(__name__)

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class LeaderEpochFileCache:
    """Sorted [(epoch, start_offset)], epochs and offsets both strictly increasing.

    Every change is flushed to the checkpoint file (atomic write) when a path is given, except
    ``assign(..., flush=False)``: the change is then only in memory (``dirty``) until ``flush()``,
    which may run in a worker thread (the broker batches a LeaderAndIsr's new-leader epochs that
    way) while the event loop goes on changing the entries: every write holds ``_write_lock``
    and writes a snapshot taken under it, so a later write never loses to an earlier one, and a
    change made during a write leaves the cache dirty. Mutations themselves stay on one thread.
    """

    def __init__(self, checkpoint: LeaderEpochCheckpointFile | Path | None) -> None:
        if checkpoint is not None and not isinstance(checkpoint, LeaderEpochCheckpointFile):
            checkpoint = LeaderEpochCheckpointFile(checkpoint)
        self.checkpoint = checkpoint
        self.entries: list[tuple[int, int]] = checkpoint.read() if checkpoint else []
        self._version = 0  # bumped by every change
        self._written_version = 0  # the version the file holds
        self._write_lock = threading.Lock()

    @property
    def dirty(self) -> bool:
        """True when a change is not written to the checkpoint file yet."""
        return self._version != self._written_version

    def _flush(self) -> None:
        with self._write_lock:
            version = self._version  # read before the snapshot: the snapshot is at least this new
            snapshot = list(self.entries)
            if self.checkpoint is not None:
                self.checkpoint.write(snapshot)
            self._written_version = version

    @property
    def latest_epoch(self) -> int | None:
        """Highest epoch, None when empty."""
        return self.entries[-1][0] if self.entries else None

    @property
    def earliest_entry(self) -> tuple[int, int] | None:
        """First (epoch, start offset), None when empty."""
        return self.entries[0] if self.entries else None

    def assign(self, epoch: int, start_offset: int, flush: bool = True) -> bool:
        """Record that `epoch` starts at `start_offset`; drops entries that would break
        monotonicity (epoch >= new epoch or start offset >= new offset). Returns True if changed.

        Raises ValueError for a negative epoch or offset.
        """
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"bad leader epoch entry ({epoch}, {start_offset})")
        if self.entries:
            last_epoch, last_off = self.entries[-1]
            if epoch == last_epoch and start_offset >= last_off:
                return False
        removed = []
        while self.entries and (self.entries[-1][0] >= epoch or self.entries[-1][1] >= start_offset):
            removed.append(self.entries.pop())
        if removed:
            log.debug("leader_epochs_truncated", removed=removed, new=(epoch, start_offset))
        self.entries.append((epoch, start_offset))
        self._version += 1
        if flush:
            self._flush()
        return True

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(epoch, end offset) for OffsetsForLeaderEpoch (Kafka's endOffsetFor).

        The end offset of epoch E is the start offset of the first epoch > E, or the log end
        offset when E is the latest. Epoch above the latest or UNDEFINED -> (-1, -1). Epoch below
        the first known -> (requested, first start offset). Epoch between known epochs -> (the
        largest known epoch <= requested, start of the next).
        """
        if requested_epoch == UNDEFINED_EPOCH or not self.entries:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if requested_epoch == self.entries[-1][0]:
            return requested_epoch, log_end_offset
        higher = next((e for e in self.entries if e[0] > requested_epoch), None)
        if higher is None:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        floor = None
        for e in self.entries:
            if e[0] <= requested_epoch:
                floor = e
        if floor is None:
            return requested_epoch, higher[1]
        return floor[0], higher[1]

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop entries whose start offset >= end_offset (after the log was truncated there)."""
        if end_offset >= 0 and self.entries and self.entries[-1][1] >= end_offset:
            self.entries = [e for e in self.entries if e[1] < end_offset]
            self._version += 1
            self._flush()

    def truncate_from_start(self, start_offset: int) -> None:
        """Drop entries wholly before start_offset; the last one at or before it moves to start_offset."""
        before = [e for e in self.entries if e[1] <= start_offset]
        if not before:
            return
        after = [e for e in self.entries if e[1] > start_offset]
        new = [(before[-1][0], start_offset)] + after
        if new != self.entries:
            self.entries = new
            self._version += 1
            self._flush()

    def clear(self) -> None:
        """Remove every entry (truncate_fully_and_start_at)."""
        if self.entries or self.dirty:
            self.entries = []
            self._version += 1
            self._flush()

    def flush(self) -> None:
        """Write the checkpoint if anything changed since the last write; a missing file with
        nothing to write is created empty, without fsync (Kafka's CheckpointFile). Safe to call
        from a worker thread while the owning thread changes the entries (see the class doc).
        Raises KafkaStorageError when the write fails (the change then stays dirty)."""
        if self.dirty:
            self._flush()
        elif self.checkpoint is not None and not self.checkpoint.path.exists():
            if self.entries:
                self._flush()
            else:
                self.checkpoint.create_empty()


def flush_leader_epoch_caches(
        caches: list[LeaderEpochFileCache]) -> list[tuple[LeaderEpochFileCache, KafkaStorageError]]:
    """Write each dirty cache's checkpoint (``LeaderEpochFileCache.flush``); meant for a worker
    thread (the broker batches a LeaderAndIsr's new leaders this way). Returns the caches whose
    write failed, with the KafkaStorageError naming the file (they stay dirty)."""
    failed = []
    for cache in caches:
        try:
            cache.flush()
        except KafkaStorageError as exc:
            failed.append((cache, exc))
    return failed
