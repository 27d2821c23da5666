"""All logs of a broker across its log dirs, their checkpoints and periodic work (Kafka's LogManager).

Start-up: lock each log dir (`.lock`, flock, as Kafka does), check meta.properties against the
configured broker.id / cluster.id, read the dir's checkpoints, note whether the last shutdown was
clean (`.kafka_cleanshutdown` present), then open every `<topic>-<partition>` directory. A
partition that can't be loaded is recorded in `offline` (with the KafkaStorageError naming the
file) and the others keep loading. Each partition's `partition.metadata` (KIP-516) gives its
topic id (`topic_ids`); a malformed one takes that partition offline. Directories named
`*-delete` (a deletion the last run did not finish) are removed.

Creation in a worker thread: a LeaderAndIsr for thousands of new partitions creates thousands of
logs (a directory, the .log, two preallocated indexes, ~1.5 ms each, far more when the disk is
busy), which on the event loop would hold every other request up. So the caller first asks
`plan_new_logs()` (on the loop: which partitions, which log dir, which config), runs
`create_planned_logs()` on the plans in a worker thread (it touches no LogManager state), and
hands the results to `add_prepared()`; `get_or_create_log()` then takes a prepared log instead
of creating one, and `discard_prepared()` removes those nobody took (a LeaderAndIsr that was
refused). A prepared log is not in `logs` (no checkpoint, maintenance or request sees it) until
it is taken.

Deletion (`delete_log`, Kafka's asyncDelete) only renames a log's dir to `*-delete`; the dirs are
handed out by `take_due_deletions()` after log.segment.delete.delay.ms and removed by
`delete_dirs()` (the broker runs it in a worker thread).

Periodic work the broker schedules: `cleanup_logs()` (retention,
log.retention.check.interval.ms), `flush_dirty_logs()` (flush.ms), the checkpoint files
(log.flush.offset.checkpoint.interval.ms, log.flush.start.offset.checkpoint.interval.ms,
replica.high.watermark.checkpoint.interval.ms: `*_checkpoint()` reads the offsets into a
CheckpointSnapshot on the caller's thread, `write_checkpoint()` writes one, and touches no
LogManager state, so the broker runs it in a worker thread: broker/checkpoint_writer.py), and
the log cleaner (log_cleaner.LogCleaner).
`shutdown()` flushes and closes every log, writes all checkpoints and the clean-shutdown marker
(not in a dir that failed). A log that fails a write it cannot undo reports it through
`on_log_dir_failure`; `handle_log_dir_failure()` takes its whole dir offline (Kafka's
LogManager.handleLogDirFailure).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any
from pathlib import Path

import attrs
import structlog

from kafkalike.storage.checkpoints import (
    CLEAN_SHUTDOWN_FILE,
    CLEANER_OFFSET_CHECKPOINT,
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
    OffsetCheckpointFile,
    TopicPartition,
    check_meta_properties,
    sync_dir_path,
)
from kafkalike.storage.errors import KafkaStorageError
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.partition_metadata_file import PartitionMetadataFile
from kafkalike.storage.unified_log import UnifiedLog

log = structlog.get_logger(__name__)

LOCK_FILE = ".lock"
DELETE_DIR_SUFFIX = "-delete"
FUTURE_DIR_SUFFIX = "-future"  # <topic>-<partition>.<uuid hex>-future: a replica moving here (KIP-113)


@attrs.frozen
class CheckpointSnapshot:
    """The offsets one checkpoint file is to hold in each log dir: ``file_name`` (e.g.
    replication-offset-checkpoint) and dir -> {partition: offset}, read from the logs at one
    moment (LogManager.high_watermark_checkpoint and the like) and written later, maybe in a
    worker thread (LogManager.write_checkpoint)."""

    file_name: str
    offsets: Mapping[Path, Mapping[TopicPartition, int]]


@attrs.frozen
class NewLogPlan:
    """One log to create off the event loop (LogManager.plan_new_logs): the partition, the
    directory it will have (``<log dir>/<topic>-<partition>``) and its LogConfig."""

    tp: TopicPartition
    dir: Path
    config: LogConfig


@attrs.frozen
class PreparedLog:
    """What LogManager.create_planned_logs made of one plan: the open log, or the
    KafkaStorageError that kept it from being created (the partition is then created, or
    fails, on the loop as before)."""

    plan: NewLogPlan
    log: UnifiedLog | None
    error: KafkaStorageError | None = None


@attrs.frozen
class MaintenanceIntervals:
    """How often LogManager.maintenance() runs each task (ms); Kafka's broker defaults."""

    retention_check_ms: int = 300000  # log.retention.check.interval.ms
    flush_check_ms: int = 1000  # log.flush.scheduler.interval.ms (Kafka: Long.MAX)
    recovery_point_checkpoint_ms: int = 60000  # log.flush.offset.checkpoint.interval.ms
    log_start_offset_checkpoint_ms: int = 60000  # log.flush.start.offset.checkpoint.interval.ms


@attrs.frozen
class LogManagerStatistics:
    """Snapshot: dirs, partitions online/offline, total bytes."""

    log_dirs: tuple[str, ...]
    online_partitions: int
    offline_partitions: tuple[str, ...]
    size_bytes: int
    clean_shutdown_dirs: tuple[str, ...]


class LogManager:
    """Owns every UnifiedLog of one broker. Not thread-safe; call from one task.

    log_dirs: Kafka's log.dirs. default_config: broker-level LogConfig; topic_configs: per
    topic overrides (a callable topic -> LogConfig | None). clock: ms wall clock (tests pass a
    fake one).
    """

    def __init__(
        self,
        log_dirs: Iterable[Path | str],
        default_config: LogConfig | None = None,
        *,
        topic_config: Callable[[str], LogConfig | None] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.log_dirs = [Path(d) for d in log_dirs]
        if not self.log_dirs:
            raise ValueError("log.dirs is empty")
        self.default_config = default_config or LogConfig()
        self._topic_config = topic_config
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.logs: dict[TopicPartition, UnifiedLog] = {}
        self.offline: dict[TopicPartition, KafkaStorageError] = {}
        self.offline_dirs: dict[Path, KafkaStorageError] = {}
        self.clean_shutdown_dirs: set[Path] = set()
        self._locks: dict[Path, int] = {}
        self._started = False
        self.intervals = MaintenanceIntervals()
        self._due: dict[str, int] = {}
        self.cleaner: Any = None  # a LogCleaner, made on first use
        # KIP-516: each log's topic id (from its partition.metadata, or assigned by LeaderAndIsr),
        # and the assigned ones whose file is not written yet (take_pending_partition_metadata)
        self.topic_ids: dict[TopicPartition, uuid.UUID] = {}
        self._pending_metadata: dict[TopicPartition, uuid.UUID] = {}
        # (due clock ms, dir): logs renamed to *-delete by delete_log, not removed yet
        self._pending_deletions: list[tuple[int, Path]] = []
        # renamed *-delete dir -> the log swapped out by replace_current_with_future_log: its
        # files stay open for reads in flight until its dir is due for removal (or shutdown)
        self._retired_logs: dict[Path, UnifiedLog] = {}
        # the broker's log.segment.delete.delay.ms (Kafka's LogManager reads the broker default
        # config's file.delete.delay.ms); the broker sets it at start-up
        self.file_delete_delay_ms = self.default_config.file_delete_delay_ms
        # called with (dir, error) when a log fails a write it cannot undo (the broker sets it to
        # ReplicaManager.handle_log_dir_failure); None: handle_log_dir_failure here
        self.on_log_dir_failure: Callable[[Path, KafkaStorageError], None] | None = None
        # logs created in a worker thread and not taken by get_or_create_log yet, and the
        # partitions planned (plan_new_logs) whose creation is under way
        self._prepared: dict[TopicPartition, UnifiedLog] = {}
        self._planned: set[TopicPartition] = set()
        #: logs created since start-up by get_or_create_log itself (on the caller's thread: the
        #: event loop) and taken ready-made from create_planned_logs (a worker thread)
        self.logs_created_inline = 0
        self.logs_created_prepared = 0
        # KIP-113 (AlterReplicaLogDirs): the -future log of each replica moving between dirs, and
        # the dir asked for a replica not created yet (Kafka's preferredLogDirs)
        self.future_logs: dict[TopicPartition, UnifiedLog] = {}
        self.preferred_log_dirs: dict[TopicPartition, Path] = {}

    def config_for(self, topic: str) -> LogConfig:
        """The LogConfig for a topic: its override if any, else the broker default."""
        cfg = self._topic_config(topic) if self._topic_config else None
        return cfg or self.default_config

    # ------------------------------------------------------------------ start-up
    def startup(self, broker_id: int | None = None, cluster_id: str | None = None) -> None:
        """Lock dirs, check meta.properties (when broker_id is given), load every log.

        Raises InconsistentBrokerMetadataError for a foreign broker.id / cluster.id, and
        KafkaStorageError if a log dir can't be created or locked (another process holds it).
        A partition that fails to load goes to `self.offline` instead of raising.
        """
        try:
            self._startup(broker_id, cluster_id)
        except BaseException:
            self._release_locks()
            raise

    def _startup(self, broker_id: int | None, cluster_id: str | None) -> None:
        for d in self.log_dirs:
            try:
                d.mkdir(parents=True, exist_ok=True)
                fd = os.open(d / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise KafkaStorageError(f"cannot create log dir ({exc.strerror})", d) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                raise KafkaStorageError("log dir is locked by another process", d / LOCK_FILE) from exc
            self._locks[d] = fd
            if broker_id is not None:
                check_meta_properties(d, broker_id, cluster_id)
        for d in self.log_dirs:
            self._load_dir(d)
        self._started = True

    def _load_dir(self, d: Path) -> None:
        marker = d / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        if clean:
            self.clean_shutdown_dirs.add(d)
        recovery_points = self._read_checkpoint(d / RECOVERY_POINT_CHECKPOINT)
        start_offsets = self._read_checkpoint(d / LOG_START_OFFSET_CHECKPOINT)
        high_watermarks = self._read_checkpoint(d / REPLICATION_OFFSET_CHECKPOINT)
        cleaner_offsets = self._read_checkpoint(d / CLEANER_OFFSET_CHECKPOINT)
        for entry in sorted(d.iterdir()):
            if not entry.is_dir():
                continue
            if entry.name.endswith(DELETE_DIR_SUFFIX):
                shutil.rmtree(entry, ignore_errors=True)
                continue
            if entry.name.endswith(FUTURE_DIR_SUFFIX):  # a move the last run did not finish
                log.warning("future_log_abandoned", dir=str(entry))
                shutil.rmtree(entry, ignore_errors=True)
                continue
            try:
                tp = TopicPartition.parse_dir_name(entry.name)
            except ValueError:
                continue
            try:
                lg = UnifiedLog.open(
                    entry,
                    self.config_for(tp.topic),
                    recovery_point=recovery_points.get(tp, 0),
                    log_start_offset=start_offsets.get(tp, 0),
                    had_clean_shutdown=clean,
                    clock=self.clock,
                )
            except KafkaStorageError as exc:
                log.error("partition_offline", partition=str(tp), error=str(exc))
                self.offline[tp] = exc
                continue
            metadata = PartitionMetadataFile(entry)
            if metadata.exists():
                try:
                    self.topic_ids[tp] = metadata.read()
                except KafkaStorageError as exc:  # a partition whose topic id is unknown must not serve
                    log.error("partition_offline", partition=str(tp), error=str(exc))
                    lg.close_handlers()
                    self.offline[tp] = exc
                    continue
            lg.on_failure = self._log_failed
            if tp in high_watermarks:
                lg.update_high_watermark(high_watermarks[tp])
            if tp in cleaner_offsets:
                lg.cleaner_checkpoint = cleaner_offsets[tp]
            self.logs[tp] = lg
        if clean:
            marker.unlink(missing_ok=True)

    @staticmethod
    def _read_checkpoint(path: Path) -> dict[TopicPartition, int]:
        """A checkpoint's entries; a malformed file is logged and ignored (recovery then starts
        from offset 0, which is safe: it only costs a longer scan)."""
        try:
            return OffsetCheckpointFile(path).read()
        except KafkaStorageError as exc:
            log.error("checkpoint_ignored", file=str(path), error=str(exc))
            return {}

    # ------------------------------------------------------------------ logs
    def get_log(self, tp: TopicPartition) -> UnifiedLog | None:
        """The partition's open log, or None (not hosted here, or offline)."""
        return self.logs.get(tp)

    def get_or_create_log(self, tp: TopicPartition, config: LogConfig | None = None) -> UnifiedLog:
        """The partition's log, created in the log dir holding the fewest partitions if absent.

        Raises KafkaStorageError if the partition is offline or its directory can't be made.
        """
        if tp in self.offline:
            raise self.offline[tp]
        lg = self.logs.get(tp)
        if lg is not None:
            return lg
        config = config or self.config_for(tp.topic)
        prepared = self._take_prepared(tp, config)
        if prepared is not None:
            return prepared
        target = self._preferred_dir(tp) or self._target_dir()
        lg = UnifiedLog.open(target / str(tp), config, had_clean_shutdown=True, clock=self.clock)
        lg.on_failure = self._log_failed
        self.logs[tp] = lg
        self.logs_created_inline += 1
        log.info("log_created", partition=str(tp), dir=str(target))
        return lg

    def _preferred_dir(self, tp: TopicPartition) -> Path | None:
        """The online dir AlterReplicaLogDirs asked for ``tp`` before its log existed (taken:
        Kafka forgets it once the log is created), else None."""
        d = self.preferred_log_dirs.pop(tp, None)
        return d if d is not None and d in self.online_log_dirs() else None

    # ------------------------------------------------------------------ future logs (KIP-113)
    def log_dir_for(self, path: str) -> Path:
        """The configured log dir named by ``path`` (compared as absolute paths). Raises
        LookupError (Kafka's LogDirNotFoundException: LOG_DIR_NOT_FOUND) for any other path."""
        wanted = os.path.abspath(path)
        for d in self.log_dirs:
            if os.path.abspath(d) == wanted:
                return d
        raise LookupError(f"Log dir {path} is not found in the config.")

    def create_future_log(self, tp: TopicPartition, dest: Path) -> UnifiedLog:
        """The -future log of ``tp`` in ``dest`` (created empty at the current log's start
        offset, with its partition.metadata copied), or the existing one when it is already in
        ``dest``; one in another dir is deleted first (Kafka's maybeCreateFutureReplica).
        Raises KafkaStorageError when ``dest`` is offline or the log cannot be made."""
        if dest in self.offline_dirs:
            raise KafkaStorageError(f"Log directory {dest} is offline", dest)
        current = self.logs[tp]
        fut = self.future_logs.get(tp)
        if fut is not None:
            if fut.dir.parent == dest:
                return fut
            self.abort_future_log(tp)
        d = dest / f"{tp}.{uuid.uuid4().hex}{FUTURE_DIR_SUFFIX}"
        fut = UnifiedLog.open(d, current.config, had_clean_shutdown=True, clock=self.clock)
        if current.log_start_offset > 0:
            fut.truncate_fully_and_start_at(current.log_start_offset)
        meta = current.dir / "partition.metadata"
        try:
            if meta.exists():
                shutil.copyfile(meta, d / "partition.metadata")
        except OSError as exc:
            fut.delete()
            raise KafkaStorageError(f"cannot copy partition.metadata ({exc.strerror})", d) from exc
        self.future_logs[tp] = fut
        log.info("future_log_created", partition=str(tp), dir=str(d))
        return fut

    def abort_future_log(self, tp: TopicPartition) -> None:
        """Delete the -future log of ``tp`` (the move was cancelled or its partition went)."""
        fut = self.future_logs.pop(tp, None)
        if fut is not None:
            fut.delete()
            log.info("future_log_deleted", partition=str(tp), dir=str(fut.dir))

    def replace_current_with_future_log(self, tp: TopicPartition) -> UnifiedLog:
        """Swap the caught-up -future log of ``tp`` in (Kafka's replaceCurrentWithFutureLog):
        it is closed (its producer state snapshot written), its dir renamed to
        <topic>-<partition> and opened again (nothing replayed) as the log, with the current
        log's high watermark, log start offset and newer leader epochs; the old dir is renamed
        to <topic>-<partition>.<uuid hex>-delete and removed after log.segment.delete.delay.ms
        (its files stay open for reads in flight until then: closed by ``take_due_deletions`` or
        at shutdown). Call on the loop with the future log's
        end offset equal to the current one's. Raises KafkaStorageError when the future log
        cannot be renamed or opened (the current log then stays, the future one is deleted)."""
        fut, current = self.future_logs.pop(tp), self.logs[tp]
        target = fut.dir.with_name(str(tp))
        try:
            fut.close()
            os.replace(fut.dir, target)
            new = UnifiedLog.open(target, current.config, recovery_point=fut.log_end_offset,
                                  log_start_offset=current.log_start_offset, had_clean_shutdown=True,
                                  clock=self.clock)
        except (OSError, KafkaStorageError) as exc:
            for d in (fut.dir, target):
                shutil.rmtree(d, ignore_errors=True)
            if isinstance(exc, KafkaStorageError):
                raise
            raise KafkaStorageError(f"cannot rename the future log ({exc.strerror})", fut.dir) from exc
        doomed = current.dir.with_name(f"{tp}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}")
        try:
            os.replace(current.dir, doomed)
        except OSError as exc:
            log.warning("log_rename_for_delete_failed", partition=str(tp), error=exc.strerror)
            doomed = current.dir
        new.update_high_watermark(min(current.high_watermark, new.log_end_offset))
        latest = new.leader_epoch_cache.latest_epoch
        for epoch, start in current.leader_epoch_cache.entries:
            if latest is None or epoch > latest:
                new.leader_epoch_cache.assign(epoch, start, flush=False)
        new.leader_epoch_cache.flush()
        current.on_failure = None
        current.generation += 1  # a compaction of the old log in progress aborts
        new.on_failure = self._log_failed
        new.cleaner_checkpoint = current.cleaner_checkpoint
        self.logs[tp] = new
        self._pending_deletions.append((self.clock() + self.file_delete_delay_ms, doomed))
        self._retired_logs[doomed] = current
        log.info("future_log_swapped_in", partition=str(tp), dir=str(target), old_dir=str(doomed),
                 log_end_offset=new.log_end_offset)
        return new

    def _target_dir(self, planned: dict[Path, int] | None = None) -> Path:
        """The online log dir holding the fewest partitions (``planned``: more to count per
        dir); raises KafkaStorageError when no dir is online."""
        counts = {d: 0 for d in self.online_log_dirs()}
        if not counts:
            raise KafkaStorageError("no online log dir", self.log_dirs[0])
        if len(counts) > 1:  # one online dir: nothing to count (the count is O(logs) per new log)
            for lg2 in [*self.logs.values(), *self._prepared.values()]:
                parent = lg2.dir.parent
                if parent in counts:
                    counts[parent] += 1
            for d, n in (planned or {}).items():
                if d in counts:
                    counts[d] += n
        return min(counts, key=lambda d: (counts[d], str(d)))

    # ------------------------------------------------------------------ creation off the loop
    def plan_new_logs(self, partitions: Iterable[tuple[TopicPartition, LogConfig | None]]) -> list[NewLogPlan]:
        """Plans for the logs of ``partitions`` (partition, its LogConfig or None: the topic's)
        that do not exist yet: not open, not offline, not prepared or planned already. Spread
        over the online log dirs as get_or_create_log would. Call on the loop; run
        ``create_planned_logs`` on the result in a worker thread, then ``add_prepared``.
        Returns [] when no log dir is online (get_or_create_log then answers the error)."""
        plans: list[NewLogPlan] = []
        if not self.online_log_dirs():
            return plans
        per_dir: dict[Path, int] = {}
        single = len(self.online_log_dirs()) == 1
        target = self._target_dir() if single else None
        for tp, config in partitions:
            if tp in self.logs or tp in self.offline or tp in self._prepared or tp in self._planned:
                continue
            d = self._preferred_dir(tp) or (target if target is not None else self._target_dir(per_dir))
            per_dir[d] = per_dir.get(d, 0) + 1
            plans.append(NewLogPlan(tp, d / str(tp), config or self.config_for(tp.topic)))
            self._planned.add(tp)
        return plans

    def create_planned_logs(self, plans: Iterable[NewLogPlan]) -> list[PreparedLog]:
        """Create (open) the logs of ``plans``: directory, .log, preallocated .index and
        .timeindex, as get_or_create_log does. Safe in a worker thread: reads only the
        clock, changes no LogManager state. A plan that fails holds its KafkaStorageError."""
        out: list[PreparedLog] = []
        for plan in plans:
            try:
                lg = UnifiedLog.open(plan.dir, plan.config, had_clean_shutdown=True, clock=self.clock)
            except KafkaStorageError as exc:
                out.append(PreparedLog(plan, None, exc))
            else:
                out.append(PreparedLog(plan, lg))
        return out

    def add_prepared(self, prepared: Iterable[PreparedLog]) -> None:
        """Keep the logs ``create_planned_logs`` made until get_or_create_log takes them. One
        whose partition meanwhile got a log, went offline or whose dir failed is closed and
        removed; a failed plan is forgotten (get_or_create_log then tries on the loop)."""
        for p in prepared:
            tp = p.plan.tp
            self._planned.discard(tp)
            if p.log is None:
                continue
            if tp in self.logs or tp in self.offline or tp in self._prepared or p.plan.dir.parent in self.offline_dirs:
                self.schedule_removal(self.remove_unused_logs([p.log]))
            else:
                self._prepared[tp] = p.log

    def forget_planned(self, plans: Iterable[NewLogPlan]) -> None:
        """Plans whose creation will not happen (the worker-thread call was cancelled)."""
        for plan in plans:
            self._planned.discard(plan.tp)

    def discard_prepared(self, partitions: Iterable[TopicPartition] | None = None) -> int:
        """Close and remove the prepared logs of ``partitions`` (None: all) that nobody took
        (their dirs are renamed ``*-delete`` and removed like deleted logs); returns how many.
        For many, off the loop: ``pop_prepared``, ``remove_unused_logs`` in a worker thread,
        then ``schedule_removal``."""
        unused = self.pop_prepared(partitions)
        self.schedule_removal(self.remove_unused_logs(unused))
        return len(unused)

    def pop_prepared(self, partitions: Iterable[TopicPartition] | None = None) -> list[UnifiedLog]:
        """Take the prepared logs of ``partitions`` (None: all) out of the pool, untouched."""
        tps = list(self._prepared) if partitions is None else [tp for tp in partitions if tp in self._prepared]
        return [self._prepared.pop(tp) for tp in tps]

    @staticmethod
    def remove_unused_logs(logs: Iterable[UnifiedLog]) -> list[Path]:
        """Close these logs (nobody used them) and rename their dirs
        ``<topic>-<partition>.<hex>-delete``; returns the renamed dirs for ``schedule_removal``.
        Safe in a worker thread (touches no LogManager state)."""
        doomed_dirs = []
        for lg in logs:
            lg.close_handlers()
            doomed = lg.dir.with_name(f"{lg.dir.name}.{os.urandom(16).hex()}{DELETE_DIR_SUFFIX}")
            try:
                os.replace(lg.dir, doomed)
            except OSError as exc:
                log.warning("log_rename_for_delete_failed", dir=str(lg.dir), error=exc.strerror)
                doomed = lg.dir
            doomed_dirs.append(doomed)
        return doomed_dirs

    def schedule_removal(self, dirs: Iterable[Path]) -> None:
        """Queue dirs for removal now (``take_due_deletions``)."""
        now = self.clock()
        self._pending_deletions.extend((now, d) for d in dirs)

    def prepared_count(self) -> int:
        """Logs created off the loop and not taken yet."""
        return len(self._prepared)

    def _take_prepared(self, tp: TopicPartition, config: LogConfig) -> UnifiedLog | None:
        """The prepared log of ``tp`` registered as its log, if there is one made with
        ``config`` (one made with another config, e.g. before the topic's overrides were read,
        is removed and the caller creates the log as before)."""
        lg = self._prepared.pop(tp, None)
        if lg is None:
            return None
        if lg.config != config or lg.dir.parent in self.offline_dirs:
            self.schedule_removal(self.remove_unused_logs([lg]))
            return None
        lg.on_failure = self._log_failed
        self.logs[tp] = lg
        self.logs_created_prepared += 1
        log.info("log_created", partition=str(tp), dir=str(lg.dir.parent), off_loop=True)
        return lg


    def delete_log(self, tp: TopicPartition) -> None:
        """Remove a partition's log (StopReplica with delete), as Kafka's LogManager.asyncDelete:
        close its files and rename its dir to <topic>-<partition>.<random hex>-delete at once (one
        rename: cheap), then leave the removal of the renamed dir to whoever calls
        ``take_due_deletions()`` after the broker's log.segment.delete.delay.ms
        (``file_delete_delay_ms``, Kafka's default 60000 ms). A dir still there at
        the next start-up is removed by the load (``_load_dir``). A dir that cannot be renamed
        is queued under its own name. Never raises for a missing log."""
        lg = self.logs.pop(tp, None)
        self.abort_future_log(tp)
        self.preferred_log_dirs.pop(tp, None)
        self.offline.pop(tp, None)
        self.topic_ids.pop(tp, None)
        self._pending_metadata.pop(tp, None)
        self.discard_prepared([tp])
        if lg is None:
            return
        lg.close_handlers()
        doomed = lg.dir.with_name(f"{lg.dir.name}.{os.urandom(16).hex()}{DELETE_DIR_SUFFIX}")
        try:
            os.replace(lg.dir, doomed)
        except OSError as exc:
            log.warning("log_rename_for_delete_failed", partition=str(tp), error=exc.strerror)
            doomed = lg.dir
        self._pending_deletions.append((self.clock() + self.file_delete_delay_ms, doomed))
        log.info("log_scheduled_for_deletion", partition=str(tp), dir=str(doomed),
                 delay_ms=self.file_delete_delay_ms)

    def take_due_deletions(self, now_ms: int | None = None) -> list[Path]:
        """Dirs renamed by ``delete_log`` whose delay has passed at ``now_ms`` (default: the
        clock), removed from the queue; the caller deletes them (``delete_dirs``, e.g. in a worker
        thread). Kafka's LogManager.deleteLogs."""
        now = self.clock() if now_ms is None else now_ms
        due = [d for at, d in self._pending_deletions if at <= now]
        if due:
            self._pending_deletions = [(at, d) for at, d in self._pending_deletions if at > now]
            for d in due:
                retired = self._retired_logs.pop(d, None)
                if retired is not None:
                    retired.close_handlers()
        return due

    def _close_retired_logs(self) -> None:
        """Close the files of every swapped-out log not removed yet (shutdown: its dir is
        removed at the next start)."""
        for retired in self._retired_logs.values():
            retired.close_handlers()
        self._retired_logs.clear()

    def next_deletion_due_ms(self) -> int | None:
        """When the next renamed dir becomes due (clock ms), None when none is pending."""
        return min((at for at, _ in self._pending_deletions), default=None)

    @staticmethod
    def delete_dirs(dirs: Iterable[Path]) -> int:
        """Remove these dirs and everything under them (safe in a worker thread: touches no
        LogManager state); a dir that cannot be removed is logged and left for the next
        start-up. Returns how many were removed."""
        removed = 0
        for d in dirs:
            try:
                shutil.rmtree(d)
                removed += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("log_dir_delete_failed", dir=str(d), error=exc.strerror)
        return removed

    # ------------------------------------------------------------------ topic ids (KIP-516)
    def topic_id(self, tp: TopicPartition) -> uuid.UUID | None:
        """The log's topic id (from partition.metadata or assigned), None if not known."""
        return self.topic_ids.get(tp)

    def assign_topic_id(self, tp: TopicPartition, topic_id: uuid.UUID) -> bool:
        """Give a log without one its topic id (Kafka's UnifiedLog.assignTopicId); the
        partition.metadata write is queued (take_pending_partition_metadata). Returns False,
        changing nothing, when the log already has another id (INCONSISTENT_TOPIC_ID) or is
        not hosted here; True otherwise."""
        current = self.topic_ids.get(tp)
        if current is not None:
            return current == topic_id
        if tp not in self.logs:
            return False
        self.topic_ids[tp] = topic_id
        self._pending_metadata[tp] = topic_id
        return True

    def take_pending_partition_metadata(self) -> list[tuple[TopicPartition, Path, uuid.UUID]]:
        """The assigned topic ids whose partition.metadata is not written yet, as
        (partition, partition dir, topic id) for partition_metadata_file.write_partition_metadata
        (which the broker runs in a worker thread); the queue is emptied."""
        items = [(tp, self.logs[tp].dir, tid) for tp, tid in self._pending_metadata.items() if tp in self.logs]
        self._pending_metadata.clear()
        return items

    def update_topic_config(self, topic: str, config: LogConfig) -> None:
        """Apply a changed topic config (/config/changes) to every open log of the topic."""
        for tp, lg in self.logs.items():
            if tp.topic == topic:
                lg.update_config(config)

    # ------------------------------------------------------------------ periodic work
    def cleanup_logs(self) -> int:
        """Retention pass over every log; returns segments deleted."""
        total = 0
        for tp, lg in list(self.logs.items()):
            try:
                total += lg.delete_old_segments()
            except KafkaStorageError as exc:
                self._mark_offline(tp, exc)
        return total

    def flush_dirty_logs(self) -> int:
        """flush.ms policy over every log; returns how many were flushed."""
        n = 0
        for tp, lg in list(self.logs.items()):
            try:
                n += lg.maybe_flush()
            except KafkaStorageError as exc:
                self._mark_offline(tp, exc)
        return n

    def _mark_offline(self, tp: TopicPartition, exc: KafkaStorageError) -> None:
        log.error("partition_offline", partition=str(tp), error=str(exc))
        lg = self.logs.pop(tp, None)
        if lg is not None:
            lg.close_handlers()
        self.offline[tp] = exc

    def _log_failed(self, lg: UnifiedLog, exc: KafkaStorageError) -> None:
        """UnifiedLog.on_failure of every log here: its dir goes offline (via the broker's hook)."""
        if self.on_log_dir_failure is not None:
            self.on_log_dir_failure(lg.dir.parent, exc)
        else:
            self.handle_log_dir_failure(lg.dir.parent, exc)

    def online_log_dirs(self) -> list[Path]:
        """The log dirs not taken offline by handle_log_dir_failure."""
        return [d for d in self.log_dirs if d not in self.offline_dirs]

    def handle_log_dir_failure(self, dir: Path, exc: KafkaStorageError) -> list[TopicPartition]:
        """Take a log dir offline (Kafka's LogManager.handleLogDirFailure): its logs are closed
        without flushing and listed in `offline` (KAFKA_STORAGE_ERROR from then on), no new log
        is created there and no checkpoint or clean-shutdown marker is written to it, so the
        next start-up recovers its logs. Returns the partitions taken offline (none if the dir
        was already offline). When no dir is left online the broker must halt, as Kafka's does
        ("Shutdown broker because all log dirs in ... have failed"); that is the caller's
        (ReplicaManager.handle_log_dir_failure) job."""
        dir = Path(dir)
        if dir in self.offline_dirs:
            return []
        log.error("log_dir_offline", dir=str(dir), error=str(exc))
        self.offline_dirs[dir] = exc
        for tp in [tp for tp, lg in self._prepared.items() if lg.dir.parent == dir]:
            self._prepared.pop(tp).close_handlers()
        gone = [tp for tp, lg in self.logs.items() if lg.dir.parent == dir]
        for tp in gone:
            self._mark_offline(tp, exc)
        return gone

    def _by_dir(self) -> dict[Path, dict[TopicPartition, UnifiedLog]]:
        online = self.online_log_dirs()
        if len(self.log_dirs) == 1 and online:  # one dir: every log is in it (no Path per log)
            return {online[0]: dict(self.logs)}
        out: dict[Path, dict[TopicPartition, UnifiedLog]] = {d: {} for d in online}
        for tp, lg in self.logs.items():
            parent = lg.dir.parent
            if parent not in self.offline_dirs:
                out.setdefault(parent, {})[tp] = lg
        return out

    def recovery_point_checkpoint(self) -> CheckpointSnapshot:
        """The recovery points of every log, as recovery-point-offset-checkpoint in each dir
        (log.flush.offset.checkpoint.interval.ms). A log recovers from an older recovery point
        than the one it has, never a newer: a late write loses nothing."""
        return CheckpointSnapshot(RECOVERY_POINT_CHECKPOINT, self._recovery_points())

    def log_start_offset_checkpoint(self) -> CheckpointSnapshot:
        """log-start-offset-checkpoint in each dir: only logs whose start offset moved past
        their first segment, as Kafka."""
        return CheckpointSnapshot(LOG_START_OFFSET_CHECKPOINT, self._log_start_offsets())

    def _recovery_points(self) -> dict[Path, dict[TopicPartition, int]]:
        return {d: {tp: lg.recovery_point for tp, lg in logs.items()} for d, logs in self._by_dir().items()}

    def _log_start_offsets(self) -> dict[Path, dict[TopicPartition, int]]:
        return {d: {tp: lg.log_start_offset for tp, lg in logs.items()
                    if lg.log_start_offset > lg.segments[0].base_offset}
                for d, logs in self._by_dir().items()}

    def _high_watermarks(self) -> dict[Path, dict[TopicPartition, int]]:
        return {d: {tp: lg.high_watermark for tp, lg in logs.items()} for d, logs in self._by_dir().items()}

    def high_watermark_checkpoint(self) -> CheckpointSnapshot:
        """The high watermarks of every log, as replication-offset-checkpoint in each dir
        (replica.high.watermark.checkpoint.interval.ms)."""
        return CheckpointSnapshot(REPLICATION_OFFSET_CHECKPOINT, self._high_watermarks())

    @staticmethod
    def write_checkpoint(snapshot: CheckpointSnapshot) -> None:
        """Write ``snapshot``'s file in each of its dirs (formatted, fsynced, renamed:
        OffsetCheckpointFile). It reads nothing of the LogManager, so it may run in a worker
        thread: 10,000 partitions' file, fsynced, held the event loop 0.2-0.4 s on a busy disk
        (issue 15). A dir whose write fails is logged (``hw_checkpoint_failed`` for the
        high-watermark file, ``checkpoint_failed`` for the others) and the other dirs are still
        written."""
        for d, offsets in snapshot.offsets.items():
            try:
                OffsetCheckpointFile(d / snapshot.file_name).write(offsets)
            except KafkaStorageError as exc:
                event = ("hw_checkpoint_failed" if snapshot.file_name == REPLICATION_OFFSET_CHECKPOINT
                         else "checkpoint_failed")
                log.warning(event, file=snapshot.file_name, dir=str(d), error=str(exc))

    @staticmethod
    def _write_checkpoint_now(snapshot: CheckpointSnapshot) -> None:
        """Write ``snapshot``'s file in each of its dirs; raises KafkaStorageError (shutdown
        and maintenance() decide what a failure means, unlike write_checkpoint)."""
        for d, offsets in snapshot.offsets.items():
            OffsetCheckpointFile(d / snapshot.file_name).write(offsets)

    def checkpoint_cleaner_offsets(self) -> None:
        """Write cleaner-offset-checkpoint for compacted logs."""
        for d, logs in self._by_dir().items():
            OffsetCheckpointFile(d / CLEANER_OFFSET_CHECKPOINT).write(
                {tp: lg.cleaner_checkpoint for tp, lg in logs.items() if lg.cleaner_checkpoint is not None}
            )

    def checkpoint_all(self) -> None:
        """Write every checkpoint file in every log dir (atomically), on the caller's thread
        (shutdown: these are the last ones; the broker's checkpoint writer is closed first).
        Raises KafkaStorageError."""
        self._write_checkpoint_now(self.recovery_point_checkpoint())
        self._write_checkpoint_now(self.log_start_offset_checkpoint())
        self._write_checkpoint_now(self.high_watermark_checkpoint())
        self.checkpoint_cleaner_offsets()

    # ------------------------------------------------------------------ one call for the broker's timer
    def maintenance(self) -> dict[str, int]:
        """Run the periodic tasks that are due, by Kafka's broker intervals (`self.intervals`):
        retention (log.retention.check.interval.ms), flush.ms checks
        (log.flush.scheduler.interval.ms, here 1 s by default since Kafka's default is "never"),
        recovery-point and log-start-offset checkpoints (log.flush.offset.checkpoint.interval.ms,
        log.flush.start.offset.checkpoint.interval.ms; written here, on the caller's thread,
        where the broker hands them to its checkpoint writer). Call it every second or so from one task.
        Returns what ran: {"segments_deleted": n, "logs_flushed": n, "checkpoints": n}.
        """
        now = self.clock()
        done = {"segments_deleted": 0, "logs_flushed": 0, "checkpoints": 0}
        iv = self.intervals
        due = self._due
        if now - due.get("retention", now - iv.retention_check_ms) >= iv.retention_check_ms:
            done["segments_deleted"] = self.cleanup_logs()
            due["retention"] = now
        if now - due.get("flush", now - iv.flush_check_ms) >= iv.flush_check_ms:
            done["logs_flushed"] = self.flush_dirty_logs()
            due["flush"] = now
        if now - due.get("recovery_cp", now) >= iv.recovery_point_checkpoint_ms:
            self._write_checkpoint_now(self.recovery_point_checkpoint())
            self.checkpoint_cleaner_offsets()
            due["recovery_cp"] = now
            done["checkpoints"] += 1
        due.setdefault("recovery_cp", now)
        if now - due.get("start_cp", now) >= iv.log_start_offset_checkpoint_ms:
            self._write_checkpoint_now(self.log_start_offset_checkpoint())
            due["start_cp"] = now
            done["checkpoints"] += 1
        due.setdefault("start_cp", now)
        return done

    def clean_logs(self) -> Generator[None, None, int]:
        """One compaction round over every log that needs cleaning (LogCleaner.needs_cleaning),
        as a generator yielding between chunks of work; returns the number of logs cleaned.

        Drive it from a task: ``for _ in lm.clean_logs(): await trio.sleep(0)``.
        """
        from kafkalike.storage.log_cleaner import LogCleaner

        if self.cleaner is None:
            self.cleaner = LogCleaner(clock=self.clock)
        cleaned = 0
        for tp, lg in list(self.logs.items()):
            if self.logs.get(tp) is not lg or not self.cleaner.needs_cleaning(lg):
                continue
            stats = yield from self.cleaner.clean(lg)
            if not stats.aborted:
                cleaned += 1
        if cleaned:
            self.checkpoint_cleaner_offsets()
        return cleaned

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Clean shutdown: flush + close every log, write checkpoints, write .kafka_cleanshutdown,
        unlock dirs. The next start-up then only validates each log's tail past its recovery
        point. A dir that failed (offline, a log that could not be closed, a checkpoint that
        could not be written, e.g. on a full disk) gets no marker: its logs are recovered."""
        failed_dirs = set(self.offline_dirs)
        self.discard_prepared()
        for fut in self.future_logs.values():  # removed at the next start (an unfinished move)
            fut.close_handlers()
        self._close_retired_logs()
        for tp, lg in list(self.logs.items()):
            try:
                lg.close()
            except KafkaStorageError as exc:
                failed_dirs.add(lg.dir.parent)
                self._mark_offline(tp, exc)
        try:
            self.checkpoint_all()
        except KafkaStorageError as exc:  # e.g. a full disk: no marker, the next start recovers
            log.error("checkpoint_failed", error=str(exc))
            failed_dirs.add(exc.path.parent)
        for d in self.log_dirs:
            if d in self._locks and d not in failed_dirs:
                try:
                    marker = d / CLEAN_SHUTDOWN_FILE
                    marker.touch()
                    sync_dir_path(d)
                except OSError as exc:
                    log.error("clean_shutdown_marker_failed", dir=str(d), error=exc.strerror)
        self._release_locks()
        log.info("log_manager_shutdown", logs=len(self.logs))

    def close_uncleanly(self) -> None:
        """Drop everything without flushing or markers (tests: simulates kill -9)."""
        for lg in self.logs.values():
            lg.close_handlers()
        self._close_retired_logs()
        self._release_locks()

    def _release_locks(self) -> None:
        for fd in self._locks.values():
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._locks.clear()

    def statistics(self) -> LogManagerStatistics:
        """Frozen snapshot of the manager: dirs, online/offline partitions, bytes."""
        return LogManagerStatistics(
            log_dirs=tuple(str(d) for d in self.log_dirs),
            online_partitions=len(self.logs),
            offline_partitions=tuple(sorted(str(tp) for tp in self.offline)),
            size_bytes=sum(lg.size_in_bytes for lg in self.logs.values()),
            clean_shutdown_dirs=tuple(sorted(str(d) for d in self.clean_shutdown_dirs)),
        )
