"""The Raft log of a KRaft node: ``__cluster_metadata-0``, an ordinary segment log (Kafka's KafkaMetadataLog).

``KafkaMetadataLog`` wraps a storage ``UnifiedLog`` in the metadata log dir with what Raft needs:
the end offset and the epoch of its last batch (``OffsetAndEpoch``), the end offset of an epoch
(for diverging-epoch answers, KIP-595/KIP-320), appends as leader (offsets assigned, every batch's
partitionLeaderEpoch set to the Raft epoch) and as follower (bytes kept as the leader wrote them),
truncation to a diverging epoch, and reads of whole batches. Every append is flushed (fsync)
before the caller counts it, as Kafka's Raft flushes before it reports an end offset. The files are
Kafka's, so ``kafka-dump-log.sh --cluster-metadata-decoder`` reads them.

Errors: the storage errors of UnifiedLog (KafkaStorageError, CorruptRecordError,
UnexpectedAppendOffsetError, OffsetOutOfRangeError), each naming the log.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.record_batch import valid_prefix_length
from kafkalike.protocol.records import DecodedBatch, decode_batches
from kafkalike.raft.quorum_state import OffsetAndEpoch
from kafkalike.storage import snapshots
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog

__all__ = ["KafkaMetadataLog", "METADATA_TOPIC", "METADATA_PARTITION_DIR", "Batch", "decode_raft_batch",
           "decode_committed"]

METADATA_TOPIC = "__cluster_metadata"

MAX_BATCH_SIZE_BYTES = 8 * 1024 * 1024
"""Kafka's KafkaRaftClient.MAX_BATCH_SIZE_BYTES: the metadata log's max.message.bytes (Kafka's
KafkaMetadataLog sets it to the Raft client's maxBatchSizeInBytes), so that a batch of 10,000
records (1.2 MB for 10,000 PartitionRecords) is accepted."""
METADATA_PARTITION_DIR = "__cluster_metadata-0"


@attrs.frozen
class Batch:
    """A committed batch handed to a Raft listener (Kafka's raft ``Batch``): offsets int64,
    ``epoch`` the Raft epoch, ``append_timestamp`` ms, ``records`` the metadata records (empty for
    a control batch, whose messages are in ``control_records``)."""

    base_offset: int
    last_offset: int
    epoch: int
    append_timestamp: int
    size_in_bytes: int
    records: tuple[mr.ApiMessageAndVersion, ...] = ()
    control_records: tuple[mr.ControlMessage, ...] = ()


def decode_raft_batch(batch: DecodedBatch) -> Batch:
    """A stored batch as a listener sees it. Raises MetadataParseError for a record that does not
    decode (an unknown record type)."""
    last = batch.base_offset + batch.last_offset_delta
    if batch.is_control:
        controls = tuple(mr.parse_control_record(r.key, r.value) for r in batch.records)
        return Batch(batch.base_offset, last, batch.partition_leader_epoch, batch.max_timestamp,
                     batch.size_in_bytes, control_records=controls)
    records = tuple(mr.deserialize_record(r.value or b"") for r in batch.records)
    return Batch(batch.base_offset, last, batch.partition_leader_epoch, batch.max_timestamp, batch.size_in_bytes,
                 records=records)


def decode_committed(data: bytes, from_offset: int, high_watermark: int) -> list[DecodedBatch]:
    """The batches of ``data`` (whole batches read from the log) with base offset >=
    ``from_offset`` and below ``high_watermark``. Pure: safe on a worker thread."""
    return [b for b in decode_batches(data, allow_truncated_tail=True)
            if from_offset <= b.base_offset < high_watermark]


class KafkaMetadataLog:
    """The metadata log in ``<metadata dir>/__cluster_metadata-0`` (see module doc)."""

    def __init__(self, log: UnifiedLog) -> None:
        self.log = log

    @classmethod
    def open(cls, metadata_dir: Path, config: LogConfig | None = None) -> KafkaMetadataLog:
        """Open (creating if absent, recovering a torn tail) the log under ``metadata_dir``. A log
        that ends before its latest snapshot (it was lost, or the snapshot was fetched) starts
        empty at the snapshot's end offset; one that holds it starts there (Kafka's
        KafkaMetadataLog: the log start offset is never below the oldest snapshot's when segments
        below it are gone). Its max.message.bytes is MAX_BATCH_SIZE_BYTES, as in Kafka."""
        config = attrs.evolve(config or LogConfig(), max_message_bytes=MAX_BATCH_SIZE_BYTES)
        self = cls(UnifiedLog.open(Path(metadata_dir) / METADATA_PARTITION_DIR, config))
        latest = self.latest_snapshot_id()
        if latest is not None and self.end_offset < latest.end_offset:
            self.log.truncate_fully_and_start_at(latest.end_offset)
        return self

    @property
    def dir(self) -> Path:
        """The partition directory (``__cluster_metadata-0``), where quorum-state lives too."""
        return self.log.dir

    @property
    def end_offset(self) -> int:
        """The log end offset (the offset the next record gets)."""
        return self.log.log_end_offset

    @property
    def start_offset(self) -> int:
        """The log start offset."""
        return self.log.log_start_offset

    @property
    def last_fetched_epoch(self) -> int:
        """The epoch of the last batch; for an empty log the latest snapshot's, else 0 (Kafka's
        lastFetchedEpoch)."""
        latest = self.log.leader_epoch_cache.latest_epoch
        if latest is not None:
            return latest
        snapshot = self.latest_snapshot_id()
        return snapshot.epoch if snapshot is not None else 0

    def end_offset_and_epoch(self) -> OffsetAndEpoch:
        """(last epoch, end offset): what a Vote compares."""
        return OffsetAndEpoch(self.last_fetched_epoch, self.end_offset)

    def end_offset_for_epoch(self, epoch: int) -> OffsetAndEpoch:
        """The end offset of ``epoch`` in this log and the largest epoch <= it that the log has
        (Kafka's KafkaMetadataLog.endOffsetForEpoch): an epoch older than the log's first is
        answered with the oldest snapshot's id; an epoch the log does not know with its own
        (last fetched epoch, end offset)."""
        found_epoch, offset = self.log.end_offset_for_epoch(epoch)
        if found_epoch < 0:
            return OffsetAndEpoch(self.last_fetched_epoch, self.end_offset)
        oldest = self.earliest_snapshot_id()
        if oldest is not None and offset == oldest.end_offset and found_epoch == epoch:
            return OffsetAndEpoch(oldest.epoch, oldest.end_offset)
        return OffsetAndEpoch(found_epoch, offset)

    # ------------------------------------------------------------------ snapshots (KIP-630)

    def latest_snapshot_id(self) -> snapshots.SnapshotId | None:
        """The newest complete snapshot in the partition dir."""
        found = snapshots.list_snapshots(self.dir)
        return found[-1] if found else None

    def earliest_snapshot_id(self) -> snapshots.SnapshotId | None:
        """The oldest complete snapshot in the partition dir."""
        found = snapshots.list_snapshots(self.dir)
        return found[0] if found else None

    def create_snapshot(self, end_offset: int, records: Sequence[mr.ApiMessage | mr.ApiMessageAndVersion],
                        last_contained_log_timestamp: int) -> snapshots.SnapshotId:
        """Write the snapshot of the state up to, not including, ``end_offset`` (committed: <=
        the high watermark; its epoch is that of the record before it). Raises ValueError for an
        offset above the high watermark or below the log start offset."""
        if not self.start_offset < end_offset <= self.high_watermark:
            raise ValueError(f"cannot snapshot at {end_offset}: outside ({self.start_offset}, high watermark "
                             f"{self.high_watermark}]")
        snapshot_id = snapshots.SnapshotId(end_offset, self.log.epoch_for_offset(end_offset - 1))
        snapshots.write_snapshot(self.dir, snapshot_id, records,
                                 last_contained_log_timestamp=last_contained_log_timestamp)
        return snapshot_id

    def delete_before_snapshot(self) -> int:
        """Move the log start offset to the latest snapshot's end offset and delete the segments
        wholly below it (Kafka's deleteBeforeSnapshot). Returns the log start offset."""
        latest = self.latest_snapshot_id()
        if latest is None or latest.end_offset > self.high_watermark:
            return self.start_offset
        return self.log.delete_records_before(latest.end_offset)

    def install_snapshot(self, snapshot_id: snapshots.SnapshotId, data: bytes) -> snapshots.Snapshot:
        """A follower's fetched snapshot: check it (CorruptSnapshotError), write it (.part, fsync,
        rename), and start the log empty at its end offset (truncateToLatestSnapshot)."""
        snapshot = snapshots.decode_snapshot(data, snapshots.snapshot_path(self.dir, snapshot_id))
        snapshots.write_snapshot_file(snapshots.snapshot_path(self.dir, snapshot_id), data)
        self.log.truncate_fully_and_start_at(snapshot_id.end_offset)
        return snapshot

    def read_snapshot_bytes(self, snapshot_id: snapshots.SnapshotId) -> bytes | None:
        """The bytes of snapshot ``snapshot_id``, None when there is no such snapshot."""
        try:
            return snapshots.snapshot_path(self.dir, snapshot_id).read_bytes()
        except FileNotFoundError:
            return None

    def append_as_leader(self, batch: bytes | bytearray, epoch: int) -> tuple[int, int]:
        """Append one batch at the next offset with partitionLeaderEpoch ``epoch``, flush it.
        Returns (base offset, last offset)."""
        info = self.log.append(bytearray(batch), leader_epoch=epoch, origin="raft_leader")
        self.log.flush()
        return info.first_offset, info.last_offset

    def append_as_follower(self, records: bytes | memoryview) -> int:
        """Append the leader's batches unchanged (a torn last batch of a Fetch answer is dropped
        first), flush them. Returns the new end offset."""
        whole = self._whole_batches(records)
        if whole:
            self.log.append(whole, assign_offsets=False)
            self.log.flush()
        return self.end_offset

    @staticmethod
    def _whole_batches(records: bytes | memoryview) -> bytes:
        n, _error = valid_prefix_length(records)
        return bytes(records[:n])

    def truncate_to_end_offset(self, diverging: OffsetAndEpoch) -> int:
        """Truncate after a diverging-epoch answer (Kafka's KafkaMetadataLog.truncateToEndOffset):
        to the smaller of the leader's end offset for that epoch and this log's own; when this log
        does not have that epoch, to its end of the epoch before. Returns the offset truncated to."""
        if diverging.epoch == 0:
            target = min(diverging.offset, self.end_offset)
        else:
            local = self.end_offset_for_epoch(diverging.epoch)
            target = min(local.offset, diverging.offset) if local.epoch == diverging.epoch else local.offset
        self.log.truncate_to(target)
        return target

    def update_high_watermark(self, offset: int) -> int:
        """Set the high watermark (clamped to the log); returns the value stored."""
        return self.log.update_high_watermark(offset)

    @property
    def high_watermark(self) -> int:
        """The high watermark the log holds."""
        return self.log.high_watermark

    def read(self, fetch_offset: int, max_bytes: int, max_offset: int | None = None) -> bytes:
        """Whole batches from the one holding ``fetch_offset`` (at least one batch, up to
        ``max_bytes`` after it), stopping before ``max_offset`` (exclusive) when given."""
        return self._whole_batches(read_slices(self.log.read(fetch_offset, max_bytes, max_offset)))

    def committed_batches(self, from_offset: int, high_watermark: int, max_bytes: int = 1 << 20) -> Iterator[DecodedBatch]:
        """Decoded batches with base offset >= ``from_offset`` and below ``high_watermark``."""
        if from_offset >= high_watermark:
            return
        yield from decode_committed(self.read(from_offset, max_bytes, high_watermark), from_offset, high_watermark)

    def close(self) -> None:
        """Flush and close the files."""
        self.log.flush()
        self.log.close()
