"""Record-level decoding and re-encoding of stored v2 batches, for the log cleaner and ListOffsets.

The hot paths (append, fetch) never come here. Compression (gzip, snappy/xerial, lz4 frame,
zstd) is kafkalike.protocol.records'; this module adds what the cleaner needs on top: each
record's raw encoding (so surviving records are copied, not re-encoded) and rebuilding a batch
with a subset of its records. Follows the Kafka protocol guide, "Record" and "Record Batch".
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import attrs
import crc32c

from kafkalike.protocol import records as _records
from kafkalike.protocol.record_batch import (
    ATTRIBUTES_AT,
    CRC_AT,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    CorruptBatchError,
    RecordBatch,
)


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    """Decompress the records part of a batch (kafkalike.protocol.records' codecs).

    Raises CorruptBatchError for data that does not decompress or an unknown codec.
    """
    try:
        return _records.decompress(codec, data)
    except Exception as exc:  # CorruptRecordsError, UnsupportedCompressionError
        raise CorruptBatchError(f"cannot decompress records (codec {codec}): {exc}", 0) from exc


def compress(codec: int, data: bytes) -> bytes:
    """Compress a records part as Kafka producers do (gzip, snappy/xerial, lz4 frame with
    independent blocks, zstd) — kafkalike.protocol.records' codecs."""
    try:
        return _records.compress(codec, data)
    except Exception as exc:
        raise CorruptBatchError(f"cannot compress records (codec {codec}): {exc}", 0) from exc


@attrs.frozen
class DecodedRecord:
    """One record: absolute offset, timestamp (ms), key/value (None = null), its raw encoding."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    raw: bytes


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = raw = 0
    while True:
        if pos >= len(buf):
            raise CorruptBatchError("varint past end of records", 0)
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        if not b & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptBatchError("varint too long", 0)


def _field(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    n, pos = _varint(buf, pos)
    if n < 0:
        return None, pos
    if pos + n > len(buf):
        raise CorruptBatchError("record field past end of records", 0)
    return buf[pos : pos + n], pos + n


def iter_records(batch: RecordBatch) -> Iterator[DecodedRecord]:
    """Decode every record of a stored batch (decompressing if needed). CorruptBatchError if malformed."""
    buf = decompress(batch.compression_codec, batch.records_view())
    pos = 0
    for _ in range(batch.records_count):
        start = pos
        length, pos = _varint(buf, pos)
        end = pos + length
        if end > len(buf):
            raise CorruptBatchError("record past end of batch", batch.position)
        pos += 1
        ts_delta, pos = _varint(buf, pos)
        off_delta, pos = _varint(buf, pos)
        key, pos = _field(buf, pos)
        value, pos = _field(buf, pos)
        yield DecodedRecord(batch.base_offset + off_delta, batch.base_timestamp + ts_delta, key, value, buf[start:end])
        pos = end


def record_timestamps(batch_bytes: bytes) -> list[tuple[int, int]]:
    """[(offset, timestamp)] for every record of one batch given as bytes (ListOffsets)."""
    batch = RecordBatch(batch_bytes)
    return [(r.offset, r.timestamp) for r in iter_records(batch)]


def build_filtered_batch(batch: RecordBatch, kept: list[DecodedRecord]) -> bytes:
    """A copy of `batch` holding only `kept` records (same base offset, base timestamp,
    lastOffsetDelta, producer fields and codec; maxTimestamp recomputed; CRC recomputed).

    Keeping baseOffset and lastOffsetDelta means offsets never change and the batch still
    covers its original offset range, as Kafka's cleaner does.
    """
    body = b"".join(r.raw for r in kept)
    body = compress(batch.compression_codec, body)
    out = bytearray(HEADER_SIZE) + body
    max_ts = max((r.timestamp for r in kept), default=batch.max_timestamp)
    HEADER.pack_into(
        out,
        0,
        batch.base_offset,
        len(out) - LOG_OVERHEAD,
        batch.partition_leader_epoch,
        2,
        0,
        batch.attributes,
        batch.last_offset_delta,
        batch.base_timestamp,
        max_ts,
        batch.producer_id,
        batch.producer_epoch,
        batch.base_sequence,
        len(kept),
    )
    struct.pack_into(">I", out, CRC_AT, crc32c.crc32c(memoryview(out)[ATTRIBUTES_AT:]))
    return bytes(out)
