"""A partition replica's log: an ordered list of segments plus its offsets (Kafka's UnifiedLog/LocalLog).

Holds `UnifiedLog` (append, read, truncation, retention, flush, statistics), `LogAppendInfo`,
`TimestampAndOffset` and `LogStatistics`. The log is plain synchronous code with no threads and
no trio: the broker calls it from its event loop. The hot paths follow docs/design.md decision 6:
append validates each batch's header and CRC-32C and patches baseOffset/partitionLeaderEpoch in
place, then writes the caller's bytes with one pwrite; read returns file slices for os.sendfile.

Offsets (all int64):
  log_start_offset  first offset a consumer may read (moved by retention and DeleteRecords)
  log_end_offset    offset the next appended record gets (LEO)
  high_watermark    stored here for replication-offset-checkpoint; clamped to [start, LEO]
  recovery_point    everything below it has been fsynced; recovery scans from here
Flush policy (Kafka's flush.messages / flush.ms, both "never" by default): by default the log relies
on the page cache and replication; it fsyncs a segment when it rolls and everything on close.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import structlog

from kafkalike.protocol.record_batch import (
    NO_TIMESTAMP,
    TIMESTAMP_TYPE_MASK,
    RecordBatch,
    RecordBatchError,
    iter_batches,
)
from kafkalike.protocol.record_batch import assign_offsets as assign_offsets_in_place
from kafkalike.storage import batch_codec, log_validator
from kafkalike.storage.checkpoints import LEADER_EPOCH_CHECKPOINT, TopicPartition
from kafkalike.storage.errors import (
    CorruptRecordError,
    KafkaStorageError,
    LogDirFailureError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    UnexpectedAppendOffsetError,
)
from kafkalike.storage.file_records import FileSlice
from kafkalike.storage.leader_epoch_file_cache import LeaderEpochFileCache
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.log_loader import RecoveryReport, _new_segment, load_log
from kafkalike.storage.log_segment import LogSegment, sync_dir
from kafkalike.storage.producer_state_manager import CompletedTxn, ProducerStateManager
from kafkalike.storage.transaction_index import AbortedTxn

log = structlog.get_logger(__name__)

_RECORD_VALIDATION_OFF = os.environ.get("KAFKALIKE_BENCH_UNSAFE_NO_RECORD_VALIDATION") == "1"
if _RECORD_VALIDATION_OFF:
    log.warning("record_validation_off", reason="KAFKALIKE_BENCH_UNSAFE_NO_RECORD_VALIDATION=1 (benchmarks only)")

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
MAX_TIMESTAMP = -3



@attrs.frozen
class LogAppendInfo:
    """Result of an append: offsets (first/last appended, LEO after), counts, bytes, ms.

    first_offset/last_offset are -1 for an empty append. log_append_time_ms is -1 unless the
    topic uses LogAppendTime.
    """

    first_offset: int
    last_offset: int
    log_end_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    records_count: int
    batches_count: int
    valid_bytes: int
    log_append_time_ms: int
    log_start_offset: int
    rolled: bool


@attrs.frozen
class TimestampAndOffset:
    """ListOffsets answer: record timestamp (ms, -1 unknown), offset, leader epoch (-1 unknown)."""

    timestamp: int
    offset: int
    leader_epoch: int = -1


@attrs.frozen
class LogStatistics:
    """One-call snapshot of a log's state (offsets, bytes, counts)."""

    topic_partition: str
    dir: str
    log_start_offset: int
    log_end_offset: int
    high_watermark: int
    recovery_point: int
    segments: int
    size_bytes: int
    active_segment_base_offset: int
    active_segment_bytes: int
    unflushed_messages: int
    latest_epoch: int
    cleanup_policy: str
    last_recovery: RecoveryReport | None


def _default_clock() -> int:
    return int(time.time() * 1000)


class UnifiedLog:
    """One partition replica's log. Create with `UnifiedLog.open(dir, config)`.

    Errors: every OSError becomes KafkaStorageError (path named); offsets outside the log raise
    OffsetOutOfRangeError; malformed appended bytes raise CorruptRecordError; oversize batches
    RecordTooLargeError.

    `validate_records` (class attribute, True): leader appends walk every record first
    (kafkalike.storage.log_validator, Kafka's LogValidator). Only the produce-validation
    benchmark turns it off: on its own instances, or for a whole broker process it starts with
    the environment variable KAFKALIKE_BENCH_UNSAFE_NO_RECORD_VALIDATION=1 (logged at import;
    never for real use: malformed batches would be stored again).
    """

    validate_records = not _RECORD_VALIDATION_OFF

    def __init__(
        self,
        dir: Path,
        config: LogConfig,
        segments: list[LogSegment],
        next_offset: int,
        log_start_offset: int,
        recovery_point: int,
        epoch_cache: LeaderEpochFileCache,
        clock: Callable[[], int],
        report: RecoveryReport | None = None,
    ) -> None:
        self.dir = Path(dir)
        self.config = config
        self.segments = segments
        self._bases = [s.base_offset for s in segments]
        self._next_offset = next_offset
        self._log_start_offset = log_start_offset
        self._recovery_point = recovery_point
        self._high_watermark = min(max(0, log_start_offset), next_offset)
        self.leader_epoch_cache = epoch_cache
        self.clock = clock
        self.last_recovery = report
        self.generation = 0  # bumped whenever the segment list changes (the cleaner checks it)
        self._last_flush_ms = clock()
        self._dir_dirty = False
        self._closed = False
        self.failed: LogDirFailureError | None = None  # set when a write could not be undone
        # called once when the log fails (LogManager sets it: the dir goes offline)
        self.on_failure: Callable[[UnifiedLog, LogDirFailureError], None] | None = None
        try:
            self.topic_partition: TopicPartition | None = TopicPartition.parse_dir_name(self.dir.name)
        except ValueError:
            self.topic_partition = None
        self.cleaner_checkpoint: int | None = None  # first dirty offset, set by LogManager/cleaner
        # idempotence and transactions (Kafka keeps ProducerStateManager inside UnifiedLog)
        self.producer_state_manager = ProducerStateManager(self.dir.name, self.dir)

    # ----------------------------------------------------------------- construction
    @classmethod
    def open(
        cls,
        dir: Path,
        config: LogConfig | None = None,
        *,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        had_clean_shutdown: bool = False,
        clock: Callable[[], int] | None = None,
    ) -> "UnifiedLog":
        """Open (creating if absent) the log in `dir`, recovering it if the shutdown was unclean.

        recovery_point / log_start_offset come from the log dir's checkpoints. Raises
        KafkaStorageError naming the unreadable file (the broker takes this partition offline).
        """
        config = config or LogConfig()
        clock = clock or _default_clock
        dir = Path(dir)
        try:
            dir.mkdir(parents=True, exist_ok=True)
            cache = LeaderEpochFileCache(dir / LEADER_EPOCH_CHECKPOINT)
        except OSError as exc:
            raise KafkaStorageError(f"cannot open log directory ({exc.strerror})", dir) from exc
        loaded = load_log(
            dir,
            config,
            recovery_point=recovery_point,
            log_start_offset=log_start_offset,
            had_clean_shutdown=had_clean_shutdown,
            epoch_cache=cache,
            clock=clock,
        )
        self = cls(dir, config, loaded.segments, loaded.next_offset, loaded.log_start_offset, loaded.recovery_point,
                   cache, clock, loaded.report)
        self._load_producer_state()
        log.info(
            "log_loaded",
            dir=str(dir),
            log_start_offset=self._log_start_offset,
            log_end_offset=self._next_offset,
            segments=len(self.segments),
            clean=had_clean_shutdown,
            truncated_bytes=loaded.report.bytes_truncated,
        )
        return self

    def _load_producer_state(self) -> None:
        """Rebuild the producer state from the newest .snapshot and the batches after it, and
        the .txnindex of every segment holding those batches (Kafka's LogLoader: producer
        state and aborted transactions are recovered with the log). A .txnindex that differs
        from what the batches say (torn tail, missing, stale) is rewritten; a segment wholly
        below the snapshot keeps its .txnindex unless its size is torn (then no snapshot is
        used). An unreadable header leaves the log without producer state (logged)."""
        aborted: dict[int, list[AbortedTxn]] = {}
        psm = self.producer_state_manager
        try:
            psm.remove_stray_snapshots(self._bases)
            if any(seg.txn_index.path.exists() and seg.txn_index.path.stat().st_size % 34
                   for seg in self.segments):
                psm.delete_snapshots(below=self._next_offset + 1)
        except OSError as exc:
            log.warning("producer_snapshot_cleanup_failed", dir=str(self.dir), error=str(exc))

        def on_aborted(seg: LogSegment, txn: CompletedTxn, lso: int) -> None:
            aborted.setdefault(seg.base_offset, []).append(
                AbortedTxn(txn.producer_id, txn.first_offset, txn.last_offset, lso))

        try:
            batches = psm.rebuild(self, on_aborted)
            start = psm.last_snap_offset
            for i, seg in enumerate(self.segments):
                if i + 1 < len(self.segments) and self.segments[i + 1].base_offset <= start:
                    continue  # wholly below the snapshot: its .txnindex stands
                new = aborted.get(seg.base_offset, [])
                if seg.base_offset < start:
                    new = [t for t in seg.txn_index.entries if t.last_offset < start] + new
                if seg.txn_index.replace(new):
                    log.warning("txn_index_rebuilt", file=str(seg.txn_index.path),
                                entries=len(aborted.get(seg.base_offset, [])))
        except (OSError, KafkaStorageError) as exc:
            log.warning("producer_state_rebuild_failed", dir=str(self.dir), error=str(exc))
            psm.clear()
            return
        if psm.producers:
            log.info("producer_state_loaded", dir=str(self.dir), producers=len(psm.producers), batches=batches,
                     ongoing_txns=len(psm.ongoing_txns), snapshot_offset=psm.last_snap_offset)

    def _take_producer_snapshot(self, offset: int) -> None:
        """Write the producer state snapshot at ``offset`` (segment roll, clean close). A
        failed write is logged and skipped: the next load replays more batches (Kafka takes the
        log dir offline instead; docs/storage.md)."""
        try:
            self.producer_state_manager.take_snapshot(offset)
        except OSError as exc:
            log.warning("producer_snapshot_failed", dir=str(self.dir), offset=offset, error=exc.strerror)

    def _update_producer_state(self, views: list[RecordBatch], seg: LogSegment) -> None:
        """Apply the appended batches with a producer id to the producer state; an ABORT marker
        adds its transaction to ``seg``'s .txnindex (Kafka's UnifiedLog.append ->
        segment.updateTxnIndex). ``views``: the appended batches' header views, parsed once
        earlier in the append (never read again here)."""
        psm = self.producer_state_manager

        def completed(txn: CompletedTxn) -> None:
            if not txn.is_aborted:
                return
            entry = AbortedTxn(txn.producer_id, txn.first_offset, txn.last_offset, psm.last_stable_offset_after(txn))
            try:
                seg.txn_index.append(entry)
            except (ValueError, KafkaStorageError) as exc:  # the marker is stored; recovery rebuilds the index
                log.warning("txn_index_append_failed", dir=str(self.dir), error=str(exc))

        for b in views:
            if b.producer_id >= 0:
                psm.apply_batch(b, completed)

    @property
    def last_stable_offset(self) -> int:
        """The LSO: min(first offset of an open transaction (or of an ended one whose marker
        is not yet below the HW), high watermark), never below the log start offset (Kafka's
        UnifiedLog.lastStableOffset). read_committed consumers read below it."""
        psm = self.producer_state_manager
        if not psm.ongoing_txns and not psm.unreplicated_txns:  # no transaction: the HW (every Fetch asks)
            return self._high_watermark
        first = psm.first_unstable_offset
        if first is None or first >= self._high_watermark:
            return self._high_watermark
        return max(first, self._log_start_offset)

    def fetch_upper_bound_offset(self, fetch_offset: int) -> int:
        """The offset a read from ``fetch_offset`` cannot pass: the next segment's base offset,
        or the LEO in the last segment (a read returns one segment's bytes to a consumer; Kafka's
        upper bound for collecting aborted transactions when the offset index has no entry past
        the fetch size)."""
        i = self._segment_index_for(fetch_offset)
        return self.segments[i + 1].base_offset if i + 1 < len(self.segments) else self._next_offset

    def collect_aborted_transactions(self, start_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [start_offset, upper_bound_offset): last offset >=
        start_offset and first offset < upper_bound_offset, from the .txnindex of the segment
        holding start_offset onward, stopping at an entry whose LSO reaches the upper bound
        (Kafka's UnifiedLog.collectAbortedTransactions)."""
        out: list[AbortedTxn] = []
        for i in range(self._segment_index_for(start_offset), len(self.segments)):
            seg = self.segments[i]
            if seg.base_offset >= upper_bound_offset and i > self._segment_index_for(start_offset):
                break
            found = seg.txn_index.collect_aborted_txns(start_offset, upper_bound_offset)
            out.extend(found.aborted)
            if found.is_complete:
                break
        return out

    # ----------------------------------------------------------------- offsets
    @property
    def log_start_offset(self) -> int:
        """First offset readable by consumers (moved by retention / DeleteRecords)."""
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        """Offset the next appended record gets (LEO)."""
        return self._next_offset

    @property
    def recovery_point(self) -> int:
        """Offsets below this are fsynced; recovery scans from here after a crash."""
        return self._recovery_point

    @property
    def high_watermark(self) -> int:
        """The stored high watermark (set by the partition's replication logic)."""
        return self._high_watermark

    @property
    def active_segment(self) -> LogSegment:
        """The last segment, the only one appended to."""
        return self.segments[-1]

    @property
    def size_in_bytes(self) -> int:
        """Total bytes of all .log files."""
        return sum(s.size for s in self.segments)

    def update_high_watermark(self, offset: int) -> int:
        """Set the high watermark, clamped to [log start offset, LEO]; returns the value stored."""
        self._high_watermark = max(self._log_start_offset, min(offset, self._next_offset))
        self.producer_state_manager.on_high_watermark_updated(self._high_watermark)
        return self._high_watermark

    # ----------------------------------------------------------------- append
    def append(
        self,
        records: bytes | bytearray | memoryview,
        *,
        assign_offsets: bool = True,
        leader_epoch: int = -1,
        origin: str = "client",
        parsed: Sequence[RecordBatch] = (),
    ) -> LogAppendInfo:
        """Append one or more v2 batches (bytes back to back).

        Each batch's 61-byte header is parsed once per append: ``parsed`` holds the header views
        the caller already built over ``records`` (the leader's Produce path: ReplicaManager's
        validateRecords), used for those batches; the other headers are parsed in the first walk
        (assign_offsets / the follower check), and those views feed the record walk and the
        producer state. ``parsed`` views are updated to the patched fields.

        assign_offsets=True (leader, Produce): one pass of record_batch.assign_offsets() checks
        each batch's header and CRC and patches its baseOffset to the next offset and, when
        leader_epoch >= 0, its partitionLeaderEpoch to leader_epoch — in place in `records` when
        it is writable (bytearray / writable memoryview), else in a copy. Topic config
        message.timestamp.type=LogAppendTime also rewrites maxTimestamp and the timestamp-type
        bit and recomputes the CRC (as Kafka's LogValidator does).
        assign_offsets=False (follower, replicated fetch data; Kafka's UnifiedLog.appendAsFollower):
        header and CRC are checked, but the bytes are stored exactly as the leader wrote them
        (no offset, epoch or timestamp rewrite, so a follower's segments equal the leader's);
        offsets must start at or after the LEO and increase (UnexpectedAppendOffsetError
        otherwise); the batches' own partitionLeaderEpoch values feed the leader epoch cache.

        assign_offsets=True then walks every record (log_validator.validate_records, Kafka's
        LogValidator): a false record count, records that do not frame, offset deltas other
        than 0..n-1, a control batch, keyless records on a compacted topic raise
        InvalidRecordError (INVALID_RECORD); a body that does not decompress CorruptRecordError.

        origin "coordinator" (a transaction marker the broker built for WriteTxnMarkers) skips the
        record walk, which refuses control batches from clients. Every appended batch with a
        producer id updates the producer state (``producer_state_manager``; an ABORT marker also
        the segment's .txnindex); the leader checks a client batch against it before (Partition).

        Raises CorruptRecordError (CORRUPT_MESSAGE; bad length/magic/CRC, a truncated batch, legacy
        magic 0/1, negative lastOffsetDelta, compressed records that do not decompress),
        InvalidRecordError (INVALID_RECORD, see above), RecordTooLargeError (MESSAGE_TOO_LARGE; batch >
        max.message.bytes or the whole append > segment.bytes), KafkaStorageError (write failed).
        """
        self._check_open()
        mv = records if isinstance(records, memoryview) else memoryview(records)
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        log_append_time = assign_offsets and self.config.message_timestamp_type == "LogAppendTime"
        if mv.readonly and assign_offsets:
            mv = memoryview(bytearray(mv))
        now = self.clock()
        if assign_offsets:
            try:
                assigned = assign_offsets_in_place(
                    mv, self._next_offset, leader_epoch, log_append_time_ms=now if log_append_time else None,
                    parsed=parsed,
                )
            except RecordBatchError as exc:
                raise CorruptRecordError(str(exc), exc.position) from None
            if assigned.max_batch_size > self.config.max_message_bytes:
                raise RecordTooLargeError(
                    f"batch of {assigned.max_batch_size} bytes exceeds max.message.bytes {self.config.max_message_bytes}"
                )
            if self.validate_records and origin == "client":  # Kafka's LogValidator: InvalidRecordError / CorruptRecordError
                log_validator.validate_records(mv, compacted_topic=self.config.compact, batches=assigned.views)
            metas, views = assigned.batches, assigned.views
            first_offset = assigned.first_offset
            max_ts, offset_of_max, count = assigned.max_timestamp, assigned.offset_of_max_timestamp, assigned.records_count
            if leader_epoch >= 0:
                epochs = [(leader_epoch, first_offset)] if metas else []
            else:
                epochs = assigned.epochs
        else:
            metas, views, epochs, first_offset, max_ts, offset_of_max, count = self._check_follower_batches(mv)
        if not metas:
            return LogAppendInfo(-1, -1, self._next_offset, NO_TIMESTAMP, -1, 0, 0, 0, -1, self._log_start_offset, False)
        total = metas[-1][0] + metas[-1][1]
        if total > self.config.segment_bytes:
            raise RecordTooLargeError(f"append of {total} bytes exceeds segment.bytes {self.config.segment_bytes}")
        last_offset = metas[-1][2]
        seg = self.active_segment
        rolled = False
        if seg.should_roll(total, max_ts, last_offset, now, self.config.segment_bytes,
                           self.config.segment_ms - self.config.segment_jitter_ms):
            seg = self.roll(first_offset)
            rolled = True
        if not seg.can_convert_to_relative_offset(last_offset) or not seg.can_convert_to_relative_offset(first_offset):
            seg = self.roll(first_offset)
            rolled = True
            if not seg.can_convert_to_relative_offset(last_offset):
                raise CorruptRecordError(f"append spans more than 2^31 offsets ({first_offset}..{last_offset})")
        try:
            seg.append(mv[:total], metas)
        except LogDirFailureError as exc:
            self._mark_failed(exc)
            raise
        self._next_offset = last_offset + 1
        self._update_producer_state(views, seg)
        for epoch, base in epochs:
            if epoch != self.leader_epoch_cache.latest_epoch:
                try:
                    self.leader_epoch_cache.assign(epoch, base)
                except KafkaStorageError as exc:
                    # the batches are stored and the epoch is in memory (written again at the
                    # next change or at close; recovery rebuilds it): failing the append now
                    # would answer an error for stored records
                    log.warning("leader_epoch_checkpoint_failed", dir=str(self.dir), epoch=epoch, error=str(exc))
        if self._next_offset - self._recovery_point >= self.config.flush_messages:
            self.flush()
        return LogAppendInfo(
            first_offset,
            last_offset,
            self._next_offset,
            max_ts,
            offset_of_max,
            count,
            len(metas),
            total,
            now if log_append_time else -1,
            self._log_start_offset,
            rolled,
        )

    def _check_follower_batches(
        self, mv: memoryview
    ) -> tuple[list[tuple[int, int, int, int]], list[RecordBatch], list[tuple[int, int]], int, int, int, int]:
        """Validate a follower's batches without changing a byte (appendAsFollower).

        Returns (batch metas for LogSegment.append, the batches' header views (each header
        parsed once, by iter_batches), (epoch, base offset) pairs, first offset,
        max timestamp, offset of the max timestamp, records count). Raises CorruptRecordError,
        RecordTooLargeError, UnexpectedAppendOffsetError.
        """
        metas: list[tuple[int, int, int, int]] = []
        views: list[RecordBatch] = []
        epochs: list[tuple[int, int]] = []
        expected = self._next_offset
        count = 0
        max_ts = NO_TIMESTAMP
        offset_of_max = -1
        first_offset = -1
        try:
            for b in iter_batches(mv):
                if b.size_in_bytes > self.config.max_message_bytes:
                    raise RecordTooLargeError(
                        f"batch of {b.size_in_bytes} bytes exceeds max.message.bytes {self.config.max_message_bytes}"
                    )
                if b.last_offset_delta < 0:
                    raise CorruptRecordError(f"negative lastOffsetDelta {b.last_offset_delta}", b.position)
                if b.base_offset < expected:
                    raise UnexpectedAppendOffsetError(
                        f"follower append at offset {b.base_offset} below expected {expected} (log end offset {self._next_offset})",
                        b.base_offset,
                        b.last_offset,
                    )
                if first_offset < 0:
                    first_offset = b.base_offset
                if b.max_timestamp > max_ts:
                    max_ts, offset_of_max = b.max_timestamp, b.last_offset
                metas.append((b.position, b.size_in_bytes, b.last_offset, b.max_timestamp))
                views.append(b)
                if b.partition_leader_epoch >= 0:
                    epochs.append((b.partition_leader_epoch, b.base_offset))
                count += b.records_count
                expected = b.last_offset + 1
        except RecordBatchError as exc:
            raise CorruptRecordError(str(exc), exc.position) from None
        return metas, views, epochs, first_offset, max_ts, offset_of_max, count

    def roll(self, expected_next_offset: int | None = None) -> LogSegment:
        """Start a new active segment at max(expected_next_offset, LEO); fsync the old one
        (Kafka flushes it asynchronously; here synchronously — see docs/storage.md)."""
        self._check_open()
        new_base = max(expected_next_offset or 0, self._next_offset)
        old = self.active_segment
        if old.base_offset == new_base and old.size == 0:
            return old
        if new_base <= old.base_offset:
            raise KafkaStorageError(f"cannot roll to offset {new_base} at or below the active segment's base {old.base_offset}",
                                    old.log.path)
        old.on_become_inactive()
        seg = _new_segment(self.dir, new_base, self.config, True, self.clock)
        if seg.size:
            seg.log.truncate_to(0)
        self.segments.append(seg)
        self._bases.append(new_base)
        self.generation += 1
        self._dir_dirty = True
        log.info("segment_rolled", dir=str(self.dir), base_offset=new_base, previous_size=old.size)
        self.flush(new_base)
        self._take_producer_snapshot(new_base)  # Kafka's roll -> producerStateManager.takeSnapshot
        return seg

    # ----------------------------------------------------------------- read
    def _segment_index_for(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self._bases, offset) - 1)

    def read(self, fetch_offset: int, max_bytes: int, max_offset: int | None = None, min_one_message: bool = True) -> list[FileSlice]:
        """File slices holding the batches from the one containing fetch_offset onward.

        max_bytes: byte budget; the first batch is returned whole even if larger
        (min_one_message, Kafka's rule since KIP-74); later bytes are cut at the budget, so
        the last batch may be partial (clients drop it). max_offset (exclusive, e.g. the high
        watermark for consumers) stops before the batch holding it. Slices may span segments.
        Returns [] at the LEO or when max_offset <= fetch_offset.
        Raises OffsetOutOfRangeError (OFFSET_OUT_OF_RANGE) if fetch_offset < log start offset
        or > LEO.
        """
        if self.failed is not None or self._closed:  # every Fetch reads every partition: no call when open
            self._check_open()
        if fetch_offset < self._log_start_offset or fetch_offset > self._next_offset:
            raise OffsetOutOfRangeError(
                f"offset {fetch_offset} is out of range [{self._log_start_offset}, {self._next_offset}] for {self.dir.name}",
                fetch_offset,
                self._log_start_offset,
                self._next_offset,
            )
        if fetch_offset == self._next_offset or (max_offset is not None and max_offset <= fetch_offset):
            return []
        slices: list[FileSlice] = []
        remaining = max_bytes
        i = self._segment_index_for(fetch_offset)
        offset = fetch_offset
        n = len(self.segments)
        while i < n:
            seg = self.segments[i]
            max_position = None
            # the batch holding max_offset can only be in this segment if max_offset is below the
            # next one's base (the LEO for the last): a consumer at HW == LEO looks up nothing
            segment_end = self.segments[i + 1].base_offset if i + 1 < n else self._next_offset
            if max_offset is not None and max_offset < segment_end:
                h = seg.translate_offset(max_offset)
                if h is not None:
                    max_position = h.position
            first = not slices
            if not first and remaining <= 0:
                break
            s = seg.read(offset, remaining, max_position, min_one_message=first and min_one_message)
            if s is not None:
                slices.append(s)
                remaining -= s.length
                if s.position + s.length < seg.size and (max_position is None or s.position + s.length < max_position):
                    break  # cut by the byte budget
            if max_position is not None:
                break
            i += 1
            if i < n:
                offset = self.segments[i].base_offset
        return slices

    def offset_for_timestamp(self, timestamp: int) -> TimestampAndOffset | None:
        """ListOffsets: the first offset whose record timestamp >= `timestamp` (ms).

        Special timestamps: -2 EARLIEST (log start offset), -1 LATEST (LEO), -3 MAX_TIMESTAMP
        (KIP-734: the record carrying the largest timestamp, ``_max_timestamp_record``). Returns None when no record is that
        recent. Record timestamps are read by decoding the candidate batch (not a hot path).
        """
        self._check_open()
        if timestamp == EARLIEST_TIMESTAMP:
            return TimestampAndOffset(NO_TIMESTAMP, self._log_start_offset, self.epoch_for_offset(self._log_start_offset))
        if timestamp == LATEST_TIMESTAMP:
            return TimestampAndOffset(NO_TIMESTAMP, self._next_offset,
                                      self.leader_epoch_cache.latest_epoch if self.leader_epoch_cache.latest_epoch is not None else -1)
        if timestamp == MAX_TIMESTAMP:
            return self._max_timestamp_record()
        if timestamp < 0:
            raise ValueError(f"unsupported ListOffsets timestamp {timestamp}")
        for seg in self.segments:
            if seg.size and seg.max_timestamp_so_far >= timestamp or seg is self.active_segment:
                found = seg.find_offset_by_timestamp(timestamp, self._log_start_offset, batch_codec.record_timestamps)
                if found is not None:
                    ts, off = found
                    return TimestampAndOffset(ts, off, self.epoch_for_offset(off))
        return None

    def _max_timestamp_record(self) -> TimestampAndOffset | None:
        """ListOffsets -3 (KIP-734): the record carrying the largest timestamp, as Kafka's
        UnifiedLog.fetchOffsetByTimestamp (3.8+, KAFKA-16310) finds it: the segment with the
        largest max timestamp (the first on ties), the first batch there whose max timestamp
        equals it, and in that batch the first record whose timestamp equals it (a
        LogAppendTime batch: its base offset, every record carries the batch's timestamp).
        Leader epoch: the batch's. Decodes that one batch only. None for an empty log."""
        best = None
        for seg in self.segments:
            if seg.size and seg.max_timestamp_so_far > NO_TIMESTAMP and (
                    best is None or seg.max_timestamp_so_far > best.max_timestamp_so_far):
                best = seg
        if best is None:
            return None
        max_ts = best.max_timestamp_so_far
        _, pos = best.offset_index.lookup(best._offset_of_max_ts)
        for h in best.log.iter_headers(pos):
            if h.max_timestamp != max_ts:
                continue
            raw = best.log.read_all(h.position, h.position + h.size)
            epoch = h.partition_leader_epoch if h.partition_leader_epoch >= 0 else -1
            if RecordBatch(raw).attributes & TIMESTAMP_TYPE_MASK:  # LogAppendTime
                return TimestampAndOffset(max_ts, h.base_offset, epoch)
            for off, ts in batch_codec.record_timestamps(raw):
                if ts == max_ts:
                    return TimestampAndOffset(max_ts, off, epoch)
            return None
        return None

    def epoch_for_offset(self, offset: int) -> int:
        """Leader epoch whose range holds `offset` (-1 unknown)."""
        epoch = -1
        for e, start in self.leader_epoch_cache.entries:
            if start <= offset:
                epoch = e
        return epoch

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetsForLeaderEpoch: (epoch, end offset); (-1, -1) if unknown (KIP-101/279)."""
        return self.leader_epoch_cache.end_offset_for(epoch, self._next_offset)

    def assign_epoch_start_offset(self, epoch: int, start_offset: int) -> None:
        """A new leader records that its epoch starts at start_offset (usually the LEO)."""
        self.leader_epoch_cache.assign(epoch, start_offset)

    # ----------------------------------------------------------------- truncation
    def truncate_to(self, target_offset: int) -> bool:
        """Follower truncation: remove everything at offsets >= target_offset. Returns True if
        anything was removed. A batch holding target_offset is removed whole (the LEO then becomes
        its base offset). Raises ValueError for a negative offset."""
        self._check_open()
        if target_offset < 0:
            raise ValueError(f"cannot truncate to a negative offset {target_offset}")
        if target_offset >= self._next_offset:
            return False
        if self.segments[0].base_offset > target_offset:
            self.truncate_fully_and_start_at(target_offset)
            return True
        while len(self.segments) > 1 and self.segments[-1].base_offset > target_offset:
            seg = self.segments.pop()
            self._bases.pop()
            seg.delete()
        active = self.active_segment
        active.make_active()
        _, new_end = active.truncate_to(target_offset)
        self.generation += 1
        self._next_offset = max(new_end, active.base_offset)
        self.leader_epoch_cache.truncate_from_end(self._next_offset)
        self._log_start_offset = min(self._log_start_offset, self._next_offset)
        self._recovery_point = min(self._recovery_point, self._next_offset)
        self._high_watermark = min(self._high_watermark, self._next_offset)
        if self.cleaner_checkpoint is not None:
            self.cleaner_checkpoint = min(self.cleaner_checkpoint, self._next_offset)
        try:  # Kafka's truncateTo -> producerStateManager.truncateAndReload
            self.producer_state_manager.truncate_and_reload(self)
        except OSError as exc:
            log.warning("producer_state_rebuild_failed", dir=str(self.dir), error=str(exc))
            self.producer_state_manager.clear()
        log.info("log_truncated", dir=str(self.dir), target=target_offset, log_end_offset=self._next_offset)
        return True

    def truncate_fully_and_start_at(self, new_offset: int) -> None:
        """Delete every segment and start empty at new_offset (log start = LEO = HW = new_offset);
        clears the leader epoch cache. Raises ValueError for a negative offset."""
        self._check_open()
        if new_offset < 0:
            raise ValueError(f"cannot start a log at a negative offset {new_offset}")
        for seg in self.segments:
            seg.delete()
        seg = _new_segment(self.dir, new_offset, self.config, True, self.clock)
        if seg.size:
            seg.log.truncate_to(0)
        self.segments = [seg]
        self._bases = [new_offset]
        self.generation += 1
        self._dir_dirty = True
        self._next_offset = self._log_start_offset = self._recovery_point = self._high_watermark = new_offset
        self.leader_epoch_cache.clear()
        self.cleaner_checkpoint = None
        self.producer_state_manager.clear()
        self.producer_state_manager.delete_snapshots(below=2**63 - 1)
        log.info("log_truncated_fully", dir=str(self.dir), start_offset=new_offset)

    # ----------------------------------------------------------------- retention
    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start offset up to `offset` (<= high watermark) and delete
        the segments wholly below it. Returns the new log start offset.
        Raises OffsetOutOfRangeError if offset > high watermark (Kafka's rule) or < 0."""
        self._check_open()
        if offset < 0 or offset > self._high_watermark:
            raise OffsetOutOfRangeError(
                f"cannot increment the log start offset to {offset} of {self.dir.name} since it is larger than "
                f"the high watermark {self._high_watermark}",
                offset,
                self._log_start_offset,
                self._next_offset,
            )
        if offset > self._log_start_offset:
            self._log_start_offset = offset
            self.leader_epoch_cache.truncate_from_start(offset)
            self._delete_segments_below_start()
        return self._log_start_offset

    def _delete_segments(self, count: int, reason: str) -> int:
        """Delete the first `count` segments (never the active one)."""
        count = min(count, len(self.segments) - 1)
        if count <= 0:
            return 0
        doomed = self.segments[:count]
        self.segments = self.segments[count:]
        self._bases = self._bases[count:]
        self.generation += 1
        for seg in doomed:
            seg.delete()
            log.info("segment_deleted", dir=str(self.dir), base_offset=seg.base_offset, reason=reason)
        new_start = self.segments[0].base_offset
        self.producer_state_manager.delete_snapshots(below=new_start)  # Kafka: deleted with their segments
        if new_start > self._log_start_offset:
            self._log_start_offset = new_start
            self.leader_epoch_cache.truncate_from_start(new_start)
        self._high_watermark = max(self._high_watermark, self._log_start_offset)
        self._recovery_point = max(self._recovery_point, self._log_start_offset)
        return count

    def _delete_segments_below_start(self) -> int:
        n = 0
        while n + 1 < len(self.segments) and self.segments[n + 1].base_offset <= self._log_start_offset:
            n += 1
        return self._delete_segments(n, "log_start_offset_breach")

    def delete_old_segments(self) -> int:
        """Retention pass (Kafka's deleteOldSegments): with cleanup.policy including delete,
        delete whole non-active segments older than retention.ms (by their largest timestamp)
        and, oldest first, while the log exceeds retention.bytes; in every policy delete segments
        wholly below the log start offset. Only segments below the high watermark are deleted.
        Returns the number of segments deleted."""
        self._check_open()
        deleted = self._delete_segments_below_start()
        if not self.config.delete:
            return deleted
        now = self.clock()
        if self.config.retention_ms >= 0:
            n = 0
            while n + 1 < len(self.segments):
                seg, nxt = self.segments[n], self.segments[n + 1]
                if now - seg.largest_timestamp > self.config.retention_ms and nxt.base_offset <= self._high_watermark:
                    n += 1
                else:
                    break
            deleted += self._delete_segments(n, "retention_ms_breach")
        if self.config.retention_bytes >= 0:
            diff = self.size_in_bytes - self.config.retention_bytes
            n = 0
            while (n + 1 < len(self.segments) and diff - self.segments[n].size >= 0
                   and self.segments[n + 1].base_offset <= self._high_watermark):
                diff -= self.segments[n].size
                n += 1
            deleted += self._delete_segments(n, "retention_size_breach")
        return deleted

    # ----------------------------------------------------------------- flush / close
    @property
    def unflushed_messages(self) -> int:
        """Offsets appended since the recovery point (Kafka counts offsets, not records)."""
        return self._next_offset - self._recovery_point

    def flush(self, offset: int | None = None) -> None:
        """fsync every segment holding offsets in [recovery point, offset) (default LEO) and move
        the recovery point to offset. Raises KafkaStorageError on fsync failure."""
        self._check_open()
        offset = self._next_offset if offset is None else min(offset, self._next_offset)
        if offset <= self._recovery_point and not self._dir_dirty:
            return
        for i in range(self._segment_index_for(self._recovery_point), len(self.segments)):
            seg = self.segments[i]
            if seg.base_offset >= offset and i > 0:
                break
            try:
                seg.flush()
            except LogDirFailureError as exc:
                self._mark_failed(exc)
                raise
        if self._dir_dirty:
            try:
                sync_dir(self.dir)
            except OSError as exc:
                raise KafkaStorageError(f"fsync of directory failed ({exc.strerror})", self.dir) from exc
            self._dir_dirty = False
        self._recovery_point = max(self._recovery_point, offset)
        self._last_flush_ms = self.clock()

    def maybe_flush(self) -> bool:
        """flush.ms policy: flush if flush.ms has passed since the last flush and data is unflushed."""
        if self._closed or self.unflushed_messages <= 0:
            return False
        if self.clock() - self._last_flush_ms >= self.config.flush_ms:
            self.flush()
            return True
        return False

    def close(self) -> None:
        """Clean close: fsync everything, trim the active segment's indexes, close files."""
        if self._closed:
            return
        self.flush()
        if self.failed is None:
            self._take_producer_snapshot(self._next_offset)  # Kafka: a snapshot at clean shutdown
        for seg in self.segments:
            seg.close()
        self.leader_epoch_cache.flush()
        self._closed = True
        log.info("log_closed", dir=str(self.dir), log_end_offset=self._next_offset)

    def close_handlers(self) -> None:
        """Close files without flushing (simulates a crash in tests; used on log dir failure)."""
        for seg in self.segments:
            seg.close_handlers()
        self._closed = True

    def delete(self) -> None:
        """Remove all segment files and the directory itself (topic deletion)."""
        import shutil

        for seg in self.segments:
            seg.delete()
        self._closed = True
        shutil.rmtree(self.dir, ignore_errors=True)

    def _check_open(self) -> None:
        if self.failed is not None:
            raise KafkaStorageError(f"log is offline after a failed write ({self.failed})", self.dir)
        if self._closed:
            raise KafkaStorageError("log is closed", self.dir)

    def _mark_failed(self, exc: LogDirFailureError) -> None:
        """A write or fsync that cannot be undone: from now on every call raises
        KafkaStorageError (KAFKA_STORAGE_ERROR) and nothing more is written; `on_failure`
        (LogManager's) takes the log dir offline, and the broker's hook behind it halts a broker
        left without log dirs (ReplicaManager.handle_log_dir_failure). The next start-up
        recovers the tail (no clean-shutdown marker is written for a failed dir)."""
        if self.failed is None:
            self.failed = exc
            log.error("log_failed", dir=str(self.dir), error=str(exc))
            if self.on_failure is not None:
                self.on_failure(self, exc)

    def update_config(self, config: LogConfig) -> None:
        """Apply a changed topic config (takes effect on the next append/roll/retention pass)."""
        self.config = config

    # ----------------------------------------------------------------- introspection
    def statistics(self) -> LogStatistics:
        """Frozen snapshot: offsets, segment count, bytes, recovery point, latest epoch."""
        latest = self.leader_epoch_cache.latest_epoch
        return LogStatistics(
            topic_partition=self.dir.name,
            dir=str(self.dir),
            log_start_offset=self._log_start_offset,
            log_end_offset=self._next_offset,
            high_watermark=self._high_watermark,
            recovery_point=self._recovery_point,
            segments=len(self.segments),
            size_bytes=self.size_in_bytes,
            active_segment_base_offset=self.active_segment.base_offset,
            active_segment_bytes=self.active_segment.size,
            unflushed_messages=self.unflushed_messages,
            latest_epoch=-1 if latest is None else latest,
            cleanup_policy=self.config.cleanup_policy,
            last_recovery=self.last_recovery,
        )

    def __repr__(self) -> str:
        return f"UnifiedLog({self.dir.name}, start={self._log_start_offset}, end={self._next_offset}, segments={len(self.segments)})"
