"""Log compaction (Kafka's LogCleaner / Cleaner): keep the last record per key, offsets unchanged.

For a log whose cleanup.policy includes "compact":
1. the cleanable range ends at the first uncleanable offset: the active segment's base, the high
   watermark, the last stable offset and the first segment younger than min.compaction.lag.ms,
   whichever is lowest,
   rounded down to a segment boundary (so the active segment is never touched);
2. an offset map (key -> latest offset) is built over the dirty part, from the cleaner checkpoint
   (cleaner-offset-checkpoint) to the end of the cleanable range;
3. the segments from the log start to the end of the range are rewritten, in groups whose total
   size fits segment.bytes, into `<base>.log.cleaned`: a record survives if no later record has its
   key; tombstones (null value) survive while their segment is dirty or younger than
   delete.retention.ms; records without a key are dropped (Kafka refuses them at produce on
   compacted topics). Batches whose records all survive are copied byte for byte; others are
   rebuilt with the same baseOffset, lastOffsetDelta and compression codec (decompressed and
   recompressed: gzip, snappy, lz4, zstd); a non-transactional batch left empty is dropped
   unless it carries a producer id (kept empty to preserve idempotent-producer state).
   Transactional and control batches follow "Transactions" below. Offsets never change;
4. each group is swapped in: .cleaned -> .swap (fsynced), old segment files deleted, .swap ->
   .log — the loader completes a swap interrupted by a crash.

Never blocks appends: `clean(log)` is a generator that yields after roughly every
`yield_every_bytes` of work; the broker drives it from a task with `await trio.sleep(0)` between
steps. It only reads inactive segments, and the swap (a few renames and a list update) happens
between two steps; if the segments it read were truncated or deleted meanwhile, the group is
abandoned. `clean_now(log)` runs a whole pass (tests, tools).

Transactions (Kafka's Cleaner with CleanedTransactionMetadata, KIP-98 and KIP-534): the cleanable
range also ends at the last stable offset, so batches of an ongoing transaction are never
cleaned. The aborted transactions (the .txnindex entries of the log's segments, ordered by first
offset) say which transactional batches are aborted: they never enter the offset map (an aborted
value cannot shadow a committed one) and their records are removed. A COMMIT/ABORT marker is
kept while the pass met any batch of its transaction; once it met none, the marker is rewritten
with a delete horizon (attribute bit 6, baseTimestamp = now + delete.retention.ms, record
timestamps unchanged) and is removed by the first pass after that horizon. The batch holding a
producer's last data offset (or, for a producer with no data left, its last marker of the
current epoch) is kept, empty if need be, so the producer's epoch and sequence survive. A
transactional batch left empty by compaction is otherwise dropped. The .txnindex of a cleaned
segment holds the aborted transactions whose ABORT marker is in it and whose data was still met.

Differences from Kafka: the offset map is a Python dict keyed by the key bytes (Kafka: a fixed
memory buffer of MD5 hashes, log.cleaner.dedupe.buffer.size); tombstone expiry uses the
segment's largest timestamp rather than KIP-534's per-batch delete horizon (only markers get a
delete horizon); an empty non-transactional batch with a producer id is always kept (Kafka keeps
only each producer's last one); the transaction tracking spans the whole pass rather than one
segment group, so a marker whose data sits in an earlier group of the same pass is kept.
"""

from __future__ import annotations

import os
import struct
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator

import attrs
import crc32c
import structlog

from kafkalike.protocol.record_batch import (
    ATTRIBUTES_AT,
    CONTROL_TYPE_ABORT,
    CRC_AT,
    DELETE_HORIZON_FLAG_MASK,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    RecordBatch,
    RecordBatchError,
    SimpleRecord,
    TruncatedBatchError,
    encode_record,
    iter_batches,
    read_end_txn_marker,
)
from kafkalike.storage import batch_codec
from kafkalike.storage.log_loader import _new_segment
from kafkalike.storage.log_segment import CLEANED_SUFFIX, SWAP_SUFFIX, LogSegment, sync_dir
from kafkalike.storage.transaction_index import AbortedTxn
from kafkalike.storage.unified_log import UnifiedLog

logger = structlog.get_logger(__name__)


@attrs.frozen
class CleanerStats:
    """One cleaning pass: bytes and record counts, the offsets it covered."""

    first_dirty_offset: int
    end_offset: int
    segments_read: int
    segments_written: int
    bytes_read: int
    bytes_written: int
    records_read: int
    records_retained: int
    tombstones_dropped: int
    aborted: bool = False
    aborted_records_dropped: int = 0
    markers_dropped: int = 0


def _segment_batches(seg: LogSegment, chunk: int = 1 << 20) -> Iterator[RecordBatch]:
    """Validated batches of an inactive segment, read with pread in chunks (never mmap: the log
    may truncate the file while the cleaner is suspended, and a mapping would then fault).
    Stops quietly if the file shrank; the swap step then notices the segment is gone."""
    f = seg.log.file  # keep the descriptor alive even if the segment is deleted meanwhile
    size = seg.size
    pos = 0
    while pos < size:
        buf = os.pread(f.fd, min(chunk, size - pos), pos)
        if not buf:
            return
        consumed = 0
        try:
            for b in iter_batches(buf):
                consumed = b.end_position
                yield b
        except TruncatedBatchError as exc:
            if consumed == 0:
                whole = os.pread(f.fd, exc.needed, pos)
                if len(whole) < exc.needed:
                    return
                [b] = list(iter_batches(whole))
                consumed = len(whole)
                yield b
        pos += consumed


@attrs.define
class _Progress:
    bytes_since_yield: int = 0


@attrs.define
class CleanedTransactionMetadata:
    """What one cleaning pass knows about transactions (Kafka's CleanedTransactionMetadata):
    the aborted transactions not yet reached (sorted by first offset), those whose first offset
    was passed and whose ABORT marker was not (producer id -> [txn, a batch of it was met]),
    and the producers with a committed transaction in progress whose batches were met.
    Batches must be fed in offset order."""

    pending: deque[AbortedTxn]
    ongoing_aborted: dict[int, list[object]] = attrs.Factory(dict)
    ongoing_committed: set[int] = attrs.Factory(set)

    @classmethod
    def for_log(cls, log: UnifiedLog, end: int, start: int = 0) -> CleanedTransactionMetadata:
        """The aborted transactions of `log` starting below `end` and ending (ABORT marker) at
        or after `start`, the first offset the pass will read (from every segment's
        .txnindex), oldest first offset first."""
        txns = [t for seg in log.segments for t in seg.txn_index.entries
                if t.first_offset < end and t.last_offset >= start]
        return cls(deque(sorted(txns, key=lambda t: (t.first_offset, t.last_offset))))

    def _consume_up_to(self, offset: int) -> None:
        while self.pending and self.pending[0].first_offset <= offset:
            txn = self.pending.popleft()
            self.ongoing_aborted.setdefault(txn.producer_id, [txn, False])

    def on_batch_read(self, batch: RecordBatch) -> bool:
        """A data batch: True if it belongs to an aborted transaction (its records go)."""
        self._consume_up_to(batch.last_offset)
        if not batch.is_transactional:
            return False
        aborted = self.ongoing_aborted.get(batch.producer_id)
        if aborted is not None:
            aborted[1] = True
            return True
        self.ongoing_committed.add(batch.producer_id)
        return False

    def on_control_batch_read(self, batch: RecordBatch) -> tuple[bool, AbortedTxn | None]:
        """A control batch: (may it be discarded because no batch of its transaction is left,
        the aborted transaction to keep in the cleaned .txnindex when it must stay)."""
        self._consume_up_to(batch.last_offset)
        if batch.records_count == 0:
            return True, None  # a marker already emptied by an earlier pass
        marker = read_end_txn_marker(batch)
        if marker is None:
            return False, None
        pid = batch.producer_id
        if marker.control_type == CONTROL_TYPE_ABORT:
            aborted = self.ongoing_aborted.pop(pid, None)
            if aborted is not None and aborted[1]:
                txn = aborted[0]
                assert isinstance(txn, AbortedTxn)
                return False, txn
            return True, None
        if pid in self.ongoing_committed:
            self.ongoing_committed.discard(pid)
            return False, None
        return True, None


def _last_batch_offsets(log: UnifiedLog) -> dict[int, tuple[int, int]]:
    """producer id -> (last data offset or -1, epoch): the batch each producer's state needs."""
    out = {}
    for pid, entry in log.producer_state_manager.producers.items():
        out[pid] = (entry.batches[-1].last_offset if entry.batches else -1, entry.epoch)
    return out


def _is_last_of_producer(batch: RecordBatch, last: dict[int, tuple[int, int]]) -> bool:
    """Kafka's isBatchLastRecordOfProducer."""
    if batch.producer_id < 0 or batch.producer_id not in last:
        return False
    last_data, epoch = last[batch.producer_id]
    if last_data >= 0:
        return batch.last_offset == last_data
    return batch.is_control and batch.producer_epoch == epoch


def with_delete_horizon(batch: RecordBatch, horizon_ms: int) -> bytes:
    """A copy of an uncompressed (control) batch with the delete-horizon flag (attributes bit 6)
    set and baseTimestamp = `horizon_ms`; record timestamps keep their absolute values (their
    deltas become relative to the horizon), maxTimestamp is unchanged (KIP-534, Kafka's
    MemoryRecordsBuilder with deleteHorizonMs)."""
    body = b"".join(
        encode_record(SimpleRecord(value=r.value, key=r.key, timestamp=r.timestamp),
                      r.offset - batch.base_offset, r.timestamp - horizon_ms)
        for r in batch_codec.iter_records(batch))
    out = bytearray(HEADER_SIZE) + body
    HEADER.pack_into(out, 0, batch.base_offset, len(out) - LOG_OVERHEAD, batch.partition_leader_epoch, 2, 0,
                     batch.attributes | DELETE_HORIZON_FLAG_MASK, batch.last_offset_delta, horizon_ms,
                     batch.max_timestamp, batch.producer_id, batch.producer_epoch, batch.base_sequence,
                     batch.records_count)
    struct.pack_into(">I", out, CRC_AT, crc32c.crc32c(memoryview(out)[ATTRIBUTES_AT:]))
    return bytes(out)


class LogCleaner:
    """Compacts logs. Stateless between passes apart from what it records on the log
    (`cleaner_checkpoint`, the first dirty offset, checkpointed by LogManager)."""

    def __init__(self, clock: Callable[[], int] | None = None, yield_every_bytes: int = 1 << 20) -> None:
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.yield_every_bytes = yield_every_bytes
        self.in_progress: set[int] = set()
        self.uncleanable: set[str] = set()

    # ---------------------------------------------------------------- planning
    def _cleanable_end(self, log: UnifiedLog, now: int) -> int:
        """Base offset of the first segment that may not be cleaned."""
        limit = min(log.active_segment.base_offset, log.high_watermark, log.last_stable_offset)
        lag = log.config.min_compaction_lag_ms
        end = log.segments[0].base_offset
        for i, seg in enumerate(log.segments[:-1]):
            nxt = log.segments[i + 1].base_offset
            if nxt > limit:
                break
            if lag > 0 and now - seg.largest_timestamp < lag:
                break
            end = nxt
        return end

    def dirty_ratio(self, log: UnifiedLog) -> float:
        """Dirty bytes / cleanable bytes (0.0 when nothing is cleanable)."""
        now = self.clock()
        end = self._cleanable_end(log, now)
        first_dirty = max(log.cleaner_checkpoint or 0, log.log_start_offset)
        total = dirty = 0
        for seg in log.segments[:-1]:
            if seg.base_offset >= end:
                break
            total += seg.size
            if _next_base(log, seg) > first_dirty:
                dirty += seg.size
        return dirty / total if total else 0.0

    def needs_cleaning(self, log: UnifiedLog) -> bool:
        """cleanup.policy has compact and the dirty ratio reaches min.cleanable.dirty.ratio, or a
        dirty segment is older than max.compaction.lag.ms."""
        if str(log.dir) in self.uncleanable or not log.config.compact:
            return False
        if self.dirty_ratio(log) >= log.config.min_cleanable_dirty_ratio:
            return True
        return self._max_lag_exceeded(log)

    def _max_lag_exceeded(self, log: UnifiedLog) -> bool:
        """max.compaction.lag.ms (KIP-354): a dirty segment older than this forces a pass."""
        lag = log.config.max_compaction_lag_ms
        if lag >= 2**63 - 1:
            return False
        now = self.clock()
        end = self._cleanable_end(log, now)
        first_dirty = max(log.cleaner_checkpoint or 0, log.log_start_offset)
        for seg in log.segments[:-1]:
            if seg.base_offset >= end:
                break
            if _next_base(log, seg) > first_dirty and now - seg.largest_timestamp > lag:
                return True
        return False

    # ---------------------------------------------------------------- cleaning
    def clean_now(self, log: UnifiedLog) -> CleanerStats:
        """Run a whole pass synchronously; returns its stats."""
        gen = self.clean(log)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value

    def clean(self, log: UnifiedLog) -> Generator[None, None, CleanerStats]:
        """A cleaning pass as a generator: yields between chunks of work, returns CleanerStats."""
        if id(log) in self.in_progress:
            raise RuntimeError(f"{log.dir} is already being cleaned")
        self.in_progress.add(id(log))
        try:
            return (yield from self._clean(log))
        except RecordBatchError as exc:
            # A corrupt stored batch: leave the log as it is and stop cleaning it (Kafka marks
            # the partition uncleanable); the broker keeps serving it.
            self.uncleanable.add(str(log.dir))
            logger.error("log_uncleanable", dir=str(log.dir), error=str(exc))
            return CleanerStats(0, 0, 0, 0, 0, 0, 0, 0, 0, aborted=True)
        except OSError as exc:
            # The log was closed under us (descriptor gone): give up this pass.
            logger.info("clean_aborted", dir=str(log.dir), error=str(exc))
            return CleanerStats(0, 0, 0, 0, 0, 0, 0, 0, 0, aborted=True)
        finally:
            self.in_progress.discard(id(log))

    def _maybe_yield(self, progress: _Progress, n: int) -> Iterator[None]:
        progress.bytes_since_yield += n
        if progress.bytes_since_yield >= self.yield_every_bytes:
            progress.bytes_since_yield = 0
            yield

    def _clean(self, log: UnifiedLog) -> Generator[None, None, CleanerStats]:
        now = self.clock()
        end = self._cleanable_end(log, now)
        first_dirty = max(log.cleaner_checkpoint or 0, log.log_start_offset)
        empty = CleanerStats(first_dirty, end, 0, 0, 0, 0, 0, 0, 0)
        if not log.config.compact or end <= log.segments[0].base_offset or first_dirty >= end:
            return empty
        progress = _Progress()
        to_clean = [s for s in log.segments[:-1] if s.base_offset < end]
        # 1. offset map over the dirty part
        offset_map: dict[bytes, int] = {}
        dirty_segments = {id(s) for s in to_clean if s is to_clean[-1] or _next_base(log, s) > first_dirty}
        bytes_read = 0
        # the map reads only the dirty segments: a transaction whose marker lies before them
        # must not make that producer's later batches look aborted
        map_start = min((s.base_offset for s in to_clean if id(s) in dirty_segments), default=end)
        map_txns = CleanedTransactionMetadata.for_log(log, end, map_start)
        for seg in to_clean:
            if id(seg) not in dirty_segments:
                continue
            for batch in _segment_batches(seg):
                if batch.is_control:
                    map_txns.on_control_batch_read(batch)
                    continue
                if map_txns.on_batch_read(batch) or batch.last_offset < first_dirty:
                    continue
                for rec in batch_codec.iter_records(batch):
                    if rec.key is not None and rec.offset >= first_dirty:
                        offset_map[rec.key] = rec.offset
                bytes_read += batch.size_in_bytes
                yield from self._maybe_yield(progress, batch.size_in_bytes)
        # 2. rewrite in groups
        groups: list[list[LogSegment]] = []
        for seg in to_clean:
            if (groups and sum(s.size for s in groups[-1]) + seg.size <= log.config.segment_bytes
                    and seg.base_offset - groups[-1][0].base_offset < 2**31 - 1):
                groups[-1].append(seg)
            else:
                groups.append([seg])
        records_read = retained = tombstones_dropped = written = segs_written = 0
        aborted_dropped = markers_dropped = 0
        txns = CleanedTransactionMetadata.for_log(log, end)
        last_of_producer = _last_batch_offsets(log)
        for group in groups:
            kept_aborted: list[AbortedTxn] = []
            base = group[0].base_offset
            cleaned = _new_segment(log.dir, base, log.config, True, log.clock, suffix=CLEANED_SUFFIX)
            cleaned.log.truncate_to(0)
            try:
                for seg in group:
                    keep_tombstones = id(seg) in dirty_segments or now - seg.largest_timestamp <= log.config.delete_retention_ms
                    for batch in _segment_batches(seg):
                        bytes_read += batch.size_in_bytes
                        is_last = _is_last_of_producer(batch, last_of_producer)
                        if batch.is_control:
                            can_discard, keep_txn = txns.on_control_batch_read(batch)
                            if keep_txn is not None:
                                kept_aborted.append(keep_txn)
                            kept_count = batch.records_count
                            if can_discard and batch.has_delete_horizon and batch.base_timestamp <= now:
                                markers_dropped += 1
                                kept_count = 0
                                out = batch_codec.build_filtered_batch(batch, []) if is_last else b""
                            elif can_discard and not batch.has_delete_horizon and batch.records_count:
                                out = with_delete_horizon(batch, now + log.config.delete_retention_ms)
                            else:
                                out = bytes(batch.view())
                        elif txns.on_batch_read(batch):
                            records_read += batch.records_count
                            aborted_dropped += batch.records_count
                            kept_count = 0
                            out = batch_codec.build_filtered_batch(batch, []) if is_last else b""
                        else:
                            records = list(batch_codec.iter_records(batch))
                            records_read += len(records)
                            kept = []
                            for rec in records:
                                if rec.key is None:
                                    continue
                                latest = offset_map.get(rec.key)
                                if latest is not None and rec.offset < latest:
                                    continue
                                if rec.value is None and not keep_tombstones:
                                    tombstones_dropped += 1
                                    continue
                                kept.append(rec)
                            kept_count = len(kept)
                            retained += kept_count
                            if kept_count == len(records):
                                out = bytes(batch.view())
                            elif kept or (batch.producer_id >= 0 and (not batch.is_transactional or is_last)):
                                out = batch_codec.build_filtered_batch(batch, kept)
                            else:
                                out = b""
                        if out:
                            nb = RecordBatch(out)
                            cleaned.append(memoryview(out), [(0, len(out), nb.last_offset, nb.max_timestamp)])
                            written += len(out)
                        yield from self._maybe_yield(progress, batch.size_in_bytes)
            except BaseException:
                # error, or the generator was dropped (GeneratorExit): leave no .cleaned file
                cleaned.close_handlers()
                cleaned.delete()
                raise
            # 3. swap, atomically with respect to the log's other users (no yield in here)
            if log._closed or any(all(s is not t for t in log.segments) for s in group):
                logger.info("clean_aborted", dir=str(log.dir), base_offset=base)
                cleaned.close_handlers()
                cleaned.delete()
                return attrs.evolve(empty, aborted=True)
            cleaned.on_become_inactive()
            # the aborted transactions whose ABORT marker stays here with some of their data
            # (read_committed fetches read them); the others have no data left to hide
            cleaned.txn_index.replace(kept_aborted)
            cleaned.flush()
            cleaned.rename_suffix(CLEANED_SUFFIX, SWAP_SUFFIX)
            sync_dir(log.dir)
            idx = next(i for i, s in enumerate(log.segments) if s is group[0])
            for s in group:
                s.delete()
            cleaned.rename_suffix(SWAP_SUFFIX, "")
            sync_dir(log.dir)
            log.segments[idx : idx + len(group)] = [cleaned]
            log._bases[idx : idx + len(group)] = [base]
            log.generation += 1
            segs_written += 1
        log.cleaner_checkpoint = end
        stats = CleanerStats(first_dirty, end, len(to_clean), segs_written, bytes_read, written, records_read,
                             retained, tombstones_dropped, aborted_records_dropped=aborted_dropped,
                             markers_dropped=markers_dropped)
        logger.info("log_cleaned", dir=str(log.dir), **attrs.asdict(stats))
        return stats


def _next_base(log: UnifiedLog, seg: LogSegment) -> int:
    for i, s in enumerate(log.segments):
        if s is seg:
            return log.segments[i + 1].base_offset if i + 1 < len(log.segments) else log.log_end_offset
    return log.log_end_offset
