"""Moving a replica between this broker's log dirs (KIP-113; Kafka's ReplicaAlterLogDirsThread
and ReplicaAlterLogDirsManager).

AlterReplicaLogDirs (ReplicaManager.alter_replica_log_dirs) creates the partition's -future log
in the target dir (``<topic>-<partition>.<uuid hex>-future``, LogManager.create_future_log) and
hands the partition to this task. The task copies the current log into the future one as a
follower copies its leader: from the future log's end offset, whole batches as stored (offsets,
leader epochs, producer ids kept; records never decoded), at most ``fetch_max_bytes`` per
partition per round, on the event loop (the current log is only ever appended to on the loop,
so a round sees it whole). Before each round the future log follows the current one:
truncated where their leader epochs diverge (the current log was truncated by a leader change,
Kafka's OffsetsForLeaderEpoch against the local log), restarted at the current log start
offset when that moved past it (DeleteRecords, retention), its high watermark set to
min(current HW, its LEO). When its end offset equals the current one it is swapped in
(LogManager.replace_current_with_future_log: the old dir gets Kafka's ``-delete`` suffix and
is removed asynchronously) and the Partition serves the new log at once.

Throttle hook: ``quota`` (an object with ``is_quota_exceeded() -> bool`` and ``record(bytes)``,
Kafka's ReplicaQuota for ``replica.alter.log.dirs.io.max.bytes.per.second``); while it is
exceeded no bytes are copied. ReplicaManager passes None (unthrottled) until the broker's
dynamic configs provide one.

A partition that is gone (deleted, its log offline) or whose future log fails a write is
dropped and its future log deleted (logged); Kafka would take the failing dir offline.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import structlog
import trio

from kafkalike.storage import TopicPartition
from kafkalike.storage.errors import KafkaStorageError
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.unified_log import UnifiedLog

log = structlog.get_logger(__name__)

_LENGTH = struct.Struct(">i")  # a batch's length field, at byte 8 of its header
_BASE_OFFSET = struct.Struct(">q")  # a batch's base offset, at byte 0


class ReplicaQuota(Protocol):
    """Kafka's ReplicaQuota as this task uses it (bytes/s bound on copying)."""

    def is_quota_exceeded(self) -> bool: ...

    def record(self, nbytes: int) -> None: ...


class _LogManager(Protocol):
    logs: dict[TopicPartition, UnifiedLog]
    future_logs: dict[TopicPartition, UnifiedLog]

    def abort_future_log(self, tp: TopicPartition) -> None: ...

    def replace_current_with_future_log(self, tp: TopicPartition) -> UnifiedLog: ...


@attrs.define
class AlterLogDirsStatistics:
    """Counters since start-up: bytes and batches copied, moves completed and abandoned."""

    bytes_copied: int = 0
    rounds: int = 0
    moves_completed: int = 0
    moves_abandoned: int = 0


def whole_batches(data: bytes, max_group: int) -> list[tuple[int, int]]:
    """(start, end) byte ranges of the whole v2 batches at the start of ``data`` (a read cut
    at max_bytes may end in a partial batch, which a follower drops; Kafka's rule), grouped so
    a group stays within ``max_group`` bytes (the log's segment.bytes) unless one batch is
    larger."""
    groups: list[tuple[int, int]] = []
    start = pos = 0
    n = len(data)
    while pos + 12 <= n:
        (length,) = _LENGTH.unpack_from(data, pos + 8)
        end = pos + 12 + length
        if length <= 0 or end > n:
            break
        if end - start > max_group and pos > start:
            groups.append((start, pos))
            start = pos
        pos = end
    if pos > start:
        groups.append((start, pos))
    return groups


class ReplicaAlterLogDirsThread:
    """One trio task moving every partition with a -future log (see the module doc).

    log_manager: the broker's LogManager (``logs``, ``future_logs``, swap and abort).
    on_swapped(tp, new_log): called after a swap so the Partition serves the new log.
    fetch_max_bytes: bytes copied per partition per round (Kafka: replica.fetch.max.bytes).
    idle_backoff_s: pause when every future log is caught up with nothing to swap.
    """

    def __init__(self, log_manager: _LogManager, on_swapped: Callable[[TopicPartition, UnifiedLog], None],
                 *, fetch_max_bytes: int = 1 << 20, quota: ReplicaQuota | None = None,
                 idle_backoff_s: float = 0.05) -> None:
        self.log_manager = log_manager
        self.on_swapped = on_swapped
        self.fetch_max_bytes = fetch_max_bytes
        self.quota = quota
        self.idle_backoff_s = idle_backoff_s
        self.partitions: set[TopicPartition] = set()
        self.stats = AlterLogDirsStatistics()
        self._wakeup = trio.Event()

    def add_partition(self, tp: TopicPartition) -> None:
        """Start (or keep) moving ``tp``; its future log must exist."""
        self.partitions.add(tp)
        self._wakeup.set()

    def remove_partition(self, tp: TopicPartition) -> None:
        """Stop moving ``tp`` (its future log is left to the caller)."""
        self.partitions.discard(tp)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Copy and swap until cancelled."""
        task_status.started()
        while True:
            if not self.partitions:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            progressed = False
            for tp in sorted(self.partitions, key=str):
                if self.quota is not None and self.quota.is_quota_exceeded():
                    break
                progressed |= self.do_work(tp)
                await trio.sleep(0)
            if not progressed:
                await trio.sleep(self.idle_backoff_s)

    def do_work(self, tp: TopicPartition) -> bool:
        """One round for ``tp``: follow the current log, copy a chunk, swap when caught up.
        Returns True when bytes were copied or the log swapped."""
        lm = self.log_manager
        current, fut = lm.logs.get(tp), lm.future_logs.get(tp)
        if current is None or fut is None:
            self._abandon(tp, "partition or future log gone")
            return False
        try:
            self._follow(current, fut)
            copied = self._copy(current, fut)
            if fut.log_end_offset == current.log_end_offset:
                new = lm.replace_current_with_future_log(tp)
                self.partitions.discard(tp)
                self.stats.moves_completed += 1
                self.on_swapped(tp, new)
                return True
        except KafkaStorageError as exc:
            log.error("alter_log_dir_failed", partition=str(tp), error=str(exc))
            self._abandon(tp, str(exc))
            return False
        except Exception as exc:  # a bug or bad bytes must not take the broker down
            log.exception("alter_log_dir_failed", partition=str(tp), error=repr(exc))
            self._abandon(tp, repr(exc))
            return False
        return copied > 0

    def _follow(self, current: UnifiedLog, fut: UnifiedLog) -> None:
        """Truncate or restart the future log where the current one moved under it."""
        if current.log_start_offset > fut.log_end_offset:
            fut.truncate_fully_and_start_at(current.log_start_offset)
            return
        latest = fut.leader_epoch_cache.latest_epoch
        if latest is not None:
            epoch, end = current.end_offset_for_epoch(latest)
            if epoch != latest or end < fut.log_end_offset:
                target = min(end if end >= 0 else 0, fut.log_end_offset)
                if epoch < 0:
                    target = current.log_start_offset
                log.info("future_log_truncated", partition=str(fut.topic_partition), epoch=latest,
                         current_epoch=epoch, target=target, log_end_offset=fut.log_end_offset)
                if target <= fut.log_start_offset:
                    fut.truncate_fully_and_start_at(max(target, current.log_start_offset))
                else:
                    fut.truncate_to(target)
        if fut.log_end_offset > current.log_end_offset:
            fut.truncate_to(current.log_end_offset)

    def _copy(self, current: UnifiedLog, fut: UnifiedLog) -> int:
        """Append the current log's next whole batches (up to fetch_max_bytes) to the future
        log; returns bytes copied."""
        start = fut.log_end_offset
        if start >= current.log_end_offset:
            return 0
        data = read_slices(current.read(start, self.fetch_max_bytes, max_offset=current.log_end_offset))
        if len(data) >= 12 and fut.log_end_offset == fut.log_start_offset:
            (base,) = _BASE_OFFSET.unpack_from(data, 0)
            if base < start:
                # the log start offset is inside the first batch (DeleteRecords): start the empty
                # future log at the batch's base offset (Kafka's
                # Partition.appendRecordsToFollowerOrFutureReplica on UnexpectedAppendOffset)
                fut.truncate_fully_and_start_at(base)
        mv, n = memoryview(data), 0
        for a, b in whole_batches(data, fut.config.segment_bytes):
            fut.append(mv[a:b], assign_offsets=False)
            n += b - a
        if n:
            if self.quota is not None:
                self.quota.record(n)
            self.stats.bytes_copied += n
        self.stats.rounds += 1
        fut.update_high_watermark(min(current.high_watermark, fut.log_end_offset))
        return n

    def _abandon(self, tp: TopicPartition, reason: str) -> None:
        self.partitions.discard(tp)
        if tp in self.log_manager.future_logs:
            self.log_manager.abort_future_log(tp)
        self.stats.moves_abandoned += 1
        log.warning("alter_log_dir_abandoned", partition=str(tp), reason=reason)
