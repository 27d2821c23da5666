"""Record-level decoding and re-encoding of stored v2 batches, for the log cleaner and ListOffsets.

The hot paths (append, fetch) never come here. Handles every codec Kafka batches use:
gzip, snappy (xerial framing as Kafka's SnappyOutputStream writes it, raw snappy accepted on
read), lz4 (LZ4 frame format, KafkaLZ4BlockOutputStream), zstd — through cramjam.
Follows the Kafka protocol guide, "Record" and "Record Batch".
(kafkalike/protocol/records.py holds the protocol layer's full codec; this module stays
independent so the storage engine works even before that is complete.)
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import attrs
import cramjam
import crc32c

from kafkalike.protocol.record_batch import (
    ATTRIBUTES_AT,
    CODEC_GZIP,
    CODEC_LZ4,
    CODEC_NONE,
    CODEC_SNAPPY,
    CODEC_ZSTD,
    CRC_AT,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    CorruptBatchError,
    RecordBatch,
)

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    """Decompress the records part of a batch. Raises CorruptBatchError on bad data/codec."""
    try:
        if codec == CODEC_NONE:
            return bytes(data)
        if codec == CODEC_GZIP:
            return bytes(cramjam.gzip.decompress(bytes(data)))
        if codec == CODEC_SNAPPY:
            raw = bytes(data)
            if raw.startswith(_XERIAL_MAGIC):
                out = bytearray()
                pos = 16
                while pos < len(raw):
                    (n,) = struct.unpack_from(">i", raw, pos)
                    pos += 4
                    out += bytes(cramjam.snappy.decompress_raw(raw[pos : pos + n]))
                    pos += n
                return bytes(out)
            return bytes(cramjam.snappy.decompress_raw(raw))
        if codec == CODEC_LZ4:
            return bytes(cramjam.lz4.decompress(bytes(data)))
        if codec == CODEC_ZSTD:
            return bytes(cramjam.zstd.decompress(bytes(data)))
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise CorruptBatchError(f"cannot decompress records (codec {codec}): {exc}", 0) from exc
    raise CorruptBatchError(f"unknown compression codec {codec}", 0)


def compress(codec: int, data: bytes) -> bytes:
    """Compress a records part with `codec` (same framings as decompress reads)."""
    if codec == CODEC_NONE:
        return data
    if codec == CODEC_GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec == CODEC_SNAPPY:
        out = bytearray(_XERIAL_HEADER)
        for i in range(0, len(data), _XERIAL_BLOCK):
            block = bytes(cramjam.snappy.compress_raw(data[i : i + _XERIAL_BLOCK]))
            out += struct.pack(">i", len(block)) + block
        return bytes(out)
    if codec == CODEC_LZ4:
        return bytes(cramjam.lz4.compress(data))
    if codec == CODEC_ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise CorruptBatchError(f"unknown compression codec {codec}", 0)


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
