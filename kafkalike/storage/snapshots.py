"""KRaft snapshot files: `<20-digit end offset>-<10-digit epoch>.checkpoint` (KIP-630), and
bootstrap.checkpoint, which has the same format.

A snapshot file (Kafka's Snapshots, RecordsSnapshotWriter, FileRawSnapshotWriter) is a sequence of
v2 record batches, offsets counted from 0 inside the file, every batch's partitionLeaderEpoch the
snapshot's epoch, uncompressed here:

    control batch   one record: key ControlRecordType SNAPSHOT_HEADER (0, 3), value SnapshotHeaderRecord
    record batches  metadata records: key null, value framed by MetadataRecordSerde
    control batch   one record: key (0, 4), value SnapshotFooterRecord

It is written to `<name>.checkpoint.part` (bootstrap.checkpoint: `bootstrap.checkpoint.tmp`), fsynced,
renamed to its final name, and the directory fsynced; a reader never sees a partial file under the
final name. The snapshot id (end offset, epoch) says the snapshot holds the state of the log up to,
not including, `end_offset`, whose last record has epoch `epoch` (Kafka's OffsetAndEpoch).

Errors: `read_snapshot` raises `CorruptSnapshotError` (a KafkaStorageError naming the file) for a
file that is torn, fails a CRC, lacks the header or footer, or holds a record that does not decode.
I/O errors become KafkaStorageError.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import RecordsError
from kafkalike.protocol.records import decode_batches
from kafkalike.storage.checkpoints import sync_dir_path
from kafkalike.storage.errors import KafkaStorageError

SUFFIX = ".checkpoint"
PART_SUFFIX = ".part"
BOOTSTRAP_FILE = "bootstrap.checkpoint"
"""BootstrapDirectory.BINARY_BOOTSTRAP_FILENAME: written by `storage format` in the metadata log dir."""
MAX_BATCH_BYTES = 8 * 1024 * 1024
"""Records per batch are cut at this size in bytes (KafkaRaftClient.MAX_BATCH_SIZE_BYTES, 8 MiB)."""

_NAME = re.compile(r"^(\d{20})-(\d{10})\.checkpoint$")


class CorruptSnapshotError(KafkaStorageError):
    """A snapshot or bootstrap file that is not a valid snapshot (message says why)."""


@attrs.frozen(order=True)
class SnapshotId:
    """Kafka's OffsetAndEpoch naming a snapshot: `end_offset` (exclusive) and `epoch`."""

    end_offset: int
    epoch: int

    @property
    def file_name(self) -> str:
        """`00000000000000000100-0000000002.checkpoint` (Snapshots.filenameFromSnapshotId)."""
        return f"{self.end_offset:020d}-{self.epoch:010d}{SUFFIX}"

    @classmethod
    def from_file_name(cls, name: str) -> SnapshotId | None:
        """The id in a snapshot file name, or None if `name` is not one (e.g. a .part file)."""
        m = _NAME.match(name)
        return cls(int(m.group(1)), int(m.group(2))) if m else None


@attrs.frozen
class Snapshot:
    """A snapshot read back: its header, records (with the versions they were written at) and
    footer, and the epoch of its batches."""

    header: mr.SnapshotHeaderRecord
    records: tuple[mr.ApiMessageAndVersion, ...]
    footer: mr.SnapshotFooterRecord
    epoch: int


def snapshot_path(log_dir: Path, snapshot_id: SnapshotId) -> Path:
    """Where snapshot `snapshot_id` of the metadata partition in `log_dir` lives."""
    return Path(log_dir) / snapshot_id.file_name


def list_snapshots(log_dir: Path) -> list[SnapshotId]:
    """The complete snapshots in `log_dir` (not .part files), oldest first."""
    found = (SnapshotId.from_file_name(p.name) for p in Path(log_dir).iterdir())
    return sorted(s for s in found if s is not None)


def encode_snapshot(records: Iterable[mr.ApiMessage | mr.ApiMessageAndVersion], *, epoch: int,
                    last_contained_log_timestamp: int, append_time_ms: int | None = None,
                    max_batch_bytes: int = MAX_BATCH_BYTES) -> bytes:
    """The bytes of a snapshot file: header batch, record batches, footer batch.

    `records`: messages (written at the version Kafka 3.9 writes) or ApiMessageAndVersion.
    `epoch`: every batch's partitionLeaderEpoch; `last_contained_log_timestamp` (ms) goes to the
    header; `append_time_ms` (default now) is every batch's timestamp. A batch is cut once it
    reaches `max_batch_bytes`.
    """
    now = int(time.time() * 1000) if append_time_ms is None else append_time_ms
    out = bytearray()
    offset = 0

    def control(message: mr.ControlMessage) -> None:
        nonlocal offset
        out.extend(mr.build_control_batch(message, offset, epoch=epoch, append_time_ms=now))
        offset += 1

    def flush(pending: list[mr.ApiMessage | mr.ApiMessageAndVersion]) -> None:
        nonlocal offset
        if pending:
            out.extend(mr.build_metadata_batch(pending, offset, epoch=epoch, append_time_ms=now))
            offset += len(pending)
            pending.clear()

    control(mr.SnapshotHeaderRecord(version=0, last_contained_log_timestamp=last_contained_log_timestamp))
    pending: list[mr.ApiMessage | mr.ApiMessageAndVersion] = []
    size = 0
    for item in records:
        pending.append(item)
        value = (mr.serialize_record(item.message, item.version) if isinstance(item, mr.ApiMessageAndVersion)
                 else mr.serialize_record(item))
        size += len(value) + 8  # the value, plus about 8 bytes of record overhead
        if size >= max_batch_bytes:
            flush(pending)
            size = 0
    flush(pending)
    control(mr.SnapshotFooterRecord(version=0))
    return bytes(out)


def write_snapshot_file(path: Path, data: bytes, *, part_suffix: str = PART_SUFFIX) -> None:
    """Write `data` to `path` + `part_suffix`, fsync, rename to `path`, fsync the directory.
    Raises KafkaStorageError on I/O errors (the partial file is removed)."""
    path = Path(path)
    part = path.with_name(path.name + part_suffix)
    try:
        with open(part, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise KafkaStorageError(f"cannot write snapshot ({exc.strerror})", path) from exc
    sync_dir_path(path.parent)


def write_snapshot(log_dir: Path, snapshot_id: SnapshotId,
                   records: Iterable[mr.ApiMessage | mr.ApiMessageAndVersion], *,
                   last_contained_log_timestamp: int, append_time_ms: int | None = None) -> Path:
    """Write snapshot `snapshot_id` (its epoch on every batch) into `log_dir` via
    `<name>.checkpoint.part`; returns the final path. Raises KafkaStorageError."""
    path = snapshot_path(log_dir, snapshot_id)
    write_snapshot_file(path, encode_snapshot(records, epoch=snapshot_id.epoch,
                                              last_contained_log_timestamp=last_contained_log_timestamp,
                                              append_time_ms=append_time_ms))
    return path


def write_bootstrap_checkpoint(metadata_log_dir: Path, records: Sequence[mr.ApiMessage | mr.ApiMessageAndVersion],
                               *, append_time_ms: int | None = None) -> Path:
    """Write `bootstrap.checkpoint` (BootstrapDirectory.writeBinaryFile): a snapshot of epoch 0
    whose header's last contained log timestamp is 0, written via `bootstrap.checkpoint.tmp`."""
    path = Path(metadata_log_dir) / BOOTSTRAP_FILE
    write_snapshot_file(path, encode_snapshot(records, epoch=0, last_contained_log_timestamp=0,
                                              append_time_ms=append_time_ms), part_suffix=".tmp")
    return path


def decode_snapshot(data: bytes, path: Path | str = "<bytes>") -> Snapshot:
    """Parse snapshot bytes (see the module docstring). Raises CorruptSnapshotError naming `path`
    for a torn or corrupt batch, a first record that is not a SnapshotHeader, a last one that is
    not a SnapshotFooter, another control record between them, or an undecodable record."""
    header: mr.SnapshotHeaderRecord | None = None
    footer: mr.SnapshotFooterRecord | None = None
    records: list[mr.ApiMessageAndVersion] = []
    epoch = -1
    try:
        batches = decode_batches(data)
    except RecordsError as exc:
        raise CorruptSnapshotError(f"corrupt snapshot: {exc}", path) from exc
    for batch in batches:
        epoch = batch.partition_leader_epoch
        for record in batch.records:
            if footer is not None:
                raise CorruptSnapshotError("records after the SnapshotFooter", path)
            try:
                if batch.is_control:
                    message = mr.parse_control_record(record.key, record.value)
                    if isinstance(message, mr.SnapshotHeaderRecord) and header is None:
                        header = message
                    elif isinstance(message, mr.SnapshotFooterRecord) and header is not None:
                        footer = message
                    else:
                        raise CorruptSnapshotError(f"unexpected control record {type(message).__name__}", path)
                elif header is None:
                    raise CorruptSnapshotError("the first record is not a SnapshotHeader", path)
                elif record.value is None:
                    raise CorruptSnapshotError(f"the record at offset {record.offset} has a null value", path)
                else:
                    records.append(mr.deserialize_record(record.value))
            except mr.MetadataParseError as exc:
                raise CorruptSnapshotError(f"undecodable record at offset {record.offset}: {exc}", path) from exc
    if header is None:
        raise CorruptSnapshotError("no SnapshotHeader", path)
    if footer is None:
        raise CorruptSnapshotError("no SnapshotFooter (the snapshot is incomplete)", path)
    return Snapshot(header, tuple(records), footer, epoch)


def read_snapshot(path: Path) -> Snapshot:
    """Read and check a snapshot or bootstrap.checkpoint file. Raises CorruptSnapshotError or
    KafkaStorageError (unreadable)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KafkaStorageError(f"cannot read snapshot ({exc.strerror})", path) from exc
    return decode_snapshot(data, path)
