"""Loading a partition directory into segments, with crash recovery (Kafka's LogLoader).

Steps, as Kafka 3.x does them:
1. remove leftovers: *.deleted, *.cleaned, *.tmp files;
2. complete an interrupted compaction swap: a <base>.log.swap replaces the .log segments whose base
   offsets fall in its offset range, then loses its .swap suffix;
3. open every <base>.log; an index that is missing or fails its sanity check is rebuilt;
4. after an unclean shutdown, every segment holding offsets at or past the recovery point is
   scanned batch by batch (length, magic, CRC-32C, offsets in order) and its indexes rebuilt;
   at the first torn or corrupt batch the segment is truncated and all later segments are
   deleted (reported in the RecoveryReport and logged). After a clean shutdown the same
   segments are validated from the recovery point's index entry without rebuilding indexes
   (LogSegment.check_tail), and cut the same way: Kafka trusts a clean shutdown's files, but
   a checkpoint proves nothing about bytes past the last batch;
5. the last segment becomes the active one; the log end offset is read from it.
The producer state and the .txnindex files are rebuilt afterwards by UnifiedLog.open
(ProducerStateManager.rebuild: the newest <offset>.snapshot at or below the recovered log end,
then the batch headers after it), so they always match the recovered batches.
A directory that cannot be read raises KafkaStorageError naming the file at fault.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import structlog

from kafkalike.protocol.record_batch import RecordBatch
from kafkalike.storage.errors import CorruptIndexError, KafkaStorageError
from kafkalike.storage.leader_epoch_file_cache import LeaderEpochFileCache
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.log_segment import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    SWAP_SUFFIX,
    TIME_INDEX_SUFFIX,
    LogSegment,
    index_file,
    log_file,
    time_index_file,
    txn_index_file,
)
from kafkalike.storage.transaction_index import TXN_INDEX_SUFFIX

log = structlog.get_logger(__name__)


@attrs.frozen
class RecoveryReport:
    """What loading found and fixed. Bytes and offsets; file paths as strings."""

    clean_shutdown: bool
    segments_loaded: int
    segments_recovered: int = 0
    bytes_truncated: int = 0
    truncated_file: str | None = None
    truncation_reason: str | None = None
    segments_deleted: tuple[str, ...] = ()
    indexes_rebuilt: tuple[str, ...] = ()
    swaps_completed: tuple[str, ...] = ()


@attrs.frozen
class LoadedLog:
    """What load_log hands to UnifiedLog: segments (last = active), offsets, the report."""
    segments: list[LogSegment]
    next_offset: int
    log_start_offset: int
    recovery_point: int
    report: RecoveryReport


def _base_of(name: str) -> int | None:
    head = name[:20]
    return int(head) if len(name) > 20 and head.isdigit() else None


def load_log(
    dir: Path,
    config: LogConfig,
    *,
    recovery_point: int,
    log_start_offset: int,
    had_clean_shutdown: bool,
    epoch_cache: LeaderEpochFileCache,
    clock: Callable[[], int],
) -> LoadedLog:
    """Open the segments of `dir`, recovering after an unclean shutdown. See module docstring.

    Raises KafkaStorageError naming the file that could not be read.
    """
    try:
        return _load(dir, config, recovery_point, log_start_offset, had_clean_shutdown, epoch_cache, clock)
    except KafkaStorageError:
        raise
    except OSError as exc:
        raise KafkaStorageError(f"cannot load log ({exc.strerror})", exc.filename or dir) from exc


def _new_segment(dir: Path, base: int, config: LogConfig, active: bool, clock: Callable[[], int], suffix: str = "") -> LogSegment:
    return LogSegment(
        dir,
        base,
        index_interval_bytes=config.index_interval_bytes,
        max_index_size=config.segment_index_bytes,
        active=active,
        suffix=suffix,
        clock=clock,
    )


def _load(dir: Path, config: LogConfig, recovery_point: int, log_start_offset: int, clean: bool,
          epoch_cache: LeaderEpochFileCache, clock: Callable[[], int]) -> LoadedLog:
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    rebuilt: list[str] = []
    deleted: list[str] = []
    swaps: list[str] = []

    # 1. leftovers
    for p in list(dir.iterdir()):
        name = p.name
        if name.endswith(DELETED_SUFFIX) or name.endswith(CLEANED_SUFFIX) or (name.endswith(".tmp") and _base_of(name) is not None):
            p.unlink(missing_ok=True)

    # 2. interrupted swaps
    for p in sorted(dir.glob("*" + LOG_SUFFIX + SWAP_SUFFIX)):
        base = _base_of(p.name)
        if base is None:
            continue
        seg = _new_segment(dir, base, config, False, clock, suffix=SWAP_SUFFIX)
        seg.recover()
        end = seg.read_next_offset()
        for other in sorted(dir.glob("*" + LOG_SUFFIX)):
            ob = _base_of(other.name)
            if ob is not None and base <= ob < end:
                for f in (other, index_file(dir, ob), time_index_file(dir, ob), txn_index_file(dir, ob)):
                    f.unlink(missing_ok=True)
        seg.rename_suffix(SWAP_SUFFIX, "")
        seg.close()
        swaps.append(str(log_file(dir, base)))
        log.warning("swap_completed", dir=str(dir), base_offset=base)
    for p in list(dir.iterdir()):
        if p.name.endswith(SWAP_SUFFIX):
            p.unlink(missing_ok=True)

    # 3. segments
    bases = sorted(b for p in dir.glob("*" + LOG_SUFFIX) if (b := _base_of(p.name)) is not None and p.name == f"{b:020d}{LOG_SUFFIX}")
    base_set = set(bases)
    for p in list(dir.iterdir()):
        if p.name.endswith((INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)):
            b = _base_of(p.name)
            if b is not None and b not in base_set:
                p.unlink(missing_ok=True)
    segments: list[LogSegment] = []
    for i, base in enumerate(bases):
        seg = _new_segment(dir, base, config, False, clock)
        will_recover = not clean and (i + 1 == len(bases) or bases[i + 1] > recovery_point)
        try:
            if not will_recover:
                seg.sanity_check(require_indexes=True)
        except CorruptIndexError as exc:
            log.warning("index_rebuilt", file=str(exc.path), reason=str(exc))
            seg.recover()
            rebuilt.append(str(exc.path))
        seg.offset_index._close_map()
        seg.offset_index._opened = False
        seg.time_index._close_map()
        seg.time_index._opened = False
        segments.append(seg)

    # 4. recovery (unclean), tail validation (clean)
    recovered = 0
    truncated_bytes = 0
    truncated_file = None
    reason = None
    if segments:
        start = 0
        for i, seg in enumerate(segments):
            if i + 1 < len(segments) and segments[i + 1].base_offset <= recovery_point:
                continue
            start = i
            break
        i = start
        while i < len(segments):
            seg = segments[i]

            def on_batch(batch: RecordBatch) -> None:
                if batch.partition_leader_epoch >= 0 and batch.partition_leader_epoch != epoch_cache.latest_epoch:
                    epoch_cache.assign(batch.partition_leader_epoch, batch.base_offset, flush=False)

            if clean:
                # Kafka trusts a clean shutdown here; a checkpoint is no proof that nothing lies
                # after the last batch, so the bytes past the recovery point are validated too
                n, err = seg.check_tail(recovery_point if i == start else seg.base_offset)
            else:
                n, err = seg.recover(on_batch=on_batch, max_batch_bytes=None)
                recovered += 1
            if n or err is not None:
                truncated_bytes += n
                truncated_file = str(seg.log.path)
                reason = str(err) if err is not None else "truncated"
                log.warning("log_tail_truncated", file=truncated_file, bytes=n, reason=reason, clean_shutdown=clean)
                for later in segments[i + 1 :]:
                    deleted.append(str(later.log.path))
                    later.delete()
                segments = segments[: i + 1]
                break
            i += 1

    # 5. active segment
    if not segments:
        segments.append(_new_segment(dir, log_start_offset, config, True, clock))
    else:
        segments[-1].make_active()
    active = segments[-1]
    next_offset = active.read_next_offset()
    if active.size == 0 and len(segments) > 1:
        next_offset = max(next_offset, active.base_offset)
    log_start = min(max(log_start_offset, segments[0].base_offset), next_offset)
    rp = next_offset if not clean else min(recovery_point, next_offset)
    epoch_cache.truncate_from_end(next_offset)
    if epoch_cache.entries:
        epoch_cache.truncate_from_start(log_start)
    epoch_cache.flush()
    report = RecoveryReport(
        clean_shutdown=clean,
        segments_loaded=len(segments),
        segments_recovered=recovered,
        bytes_truncated=truncated_bytes,
        truncated_file=truncated_file,
        truncation_reason=reason,
        segments_deleted=tuple(deleted),
        indexes_rebuilt=tuple(rebuilt),
        swaps_completed=tuple(swaps),
    )
    return LoadedLog(segments, next_offset, log_start, rp, report)
