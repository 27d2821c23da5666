"""Record-level validation of a leader's append: Kafka's LogValidator, as a framing walk.

Holds `LogValidator` (what a topic asks of the records it takes: compacted or not),
`validate_records()` (the walk over every batch of a Produce's record set), `RecordError`
(one refused record, Produce v8+'s record_errors entry, KIP-467) and `RecordValidationError`
(INVALID_RECORD carrying those). Follows Kafka 3.x's
storage/internals/log/LogValidator.java (validateBatch, validateRecord, validateKey) and the
record iterators of clients/.../record/DefaultRecordBatch.java and DefaultRecord.readFrom.

Why: a batch's CRC covers its bytes, not their meaning. A producer (or a bit flip before the
CRC was computed) can send a batch whose CRC is right while its record count, a record's
length or its compressed body is wrong; appended, such a batch makes every consumer of the
partition fail at that offset (kafka-python: CorruptRecordError; librdkafka re-fetches it
forever). Kafka walks every record of every batch on the leader before appending; so does
this module. Followers do not (Kafka's appendAsFollower skips LogValidator too).

What is checked, per batch (header and CRC were checked before, by record_batch.assign_offsets):
  - recordsCount > 0 and lastOffsetDelta + 1 == recordsCount      INVALID_RECORD
  - no control batch, no producerId >= 0 with baseSequence < 0   INVALID_RECORD
  - a compressed body decompresses (codec 1-4)                    CORRUPT_MESSAGE (see below)
  - each record frames: length varint, attributes, timestampDelta varlong, offsetDelta
    varint, key, value, header count, headers (key not null), each inside the record's
    declared length and ending exactly at it; the records end exactly at the batch end
    (or at the decompressed body's end)                          INVALID_RECORD
  - offsetDelta of record i is i (0..n-1 in order)                INVALID_RECORD
  - compacted topic: no record with a null key                    INVALID_RECORD + record_errors

Differences from Kafka, on purpose:
  - A body that does not decompress (a gzip flag on bytes that are not gzip, snappy/lz4/zstd
    garbage, codec 5-7) answers CORRUPT_MESSAGE. Kafka 3.x throws a plain KafkaException
    there (CompressionType.wrapForInput / "Failed to decompress record stream"), which
    ReplicaManager.appendToLocalLog's catch-all turns into UNKNOWN_SERVER_ERROR; the bytes
    are corrupt, which is what CORRUPT_MESSAGE (CorruptRecordException) says.
  - offsetDelta != record index is refused. Kafka leaves an uncompressed batch's deltas as
    they are and rebuilds a compressed batch whose deltas are off (a workaround for magic-1
    clients); kafkalike stores only magic 2, whose producers all write 0..n-1, and never
    re-encodes records, so it refuses rather than store offsets consumers cannot place.
  - Timestamp bounds (message.timestamp.difference.max.ms, INVALID_TIMESTAMP) are not checked
    here.

Cost: no per-record Python object: the walk indexes bytes with ints, one- and two-byte
varints inline (nearly every field); a buffer that is not bytes is copied once (~1 µs per
16 KiB), since bytes is the type whose indexing mypyc compiles to a plain byte load. A
compressed body is decompressed once, never beyond MAX_DECOMPRESSED_BYTES (256 MiB: gzip and
snappy through kafkalike.protocol.records' guards, lz4 and zstd into a bounded buffer; a
decompression bomb is refused with CORRUPT_MESSAGE), and walked the same way. Figures:
docs/benchmarks.md, "Record validation on produce".

Compiled: scripts/build-native compiles this module with mypyc (the compiler of mypy and
black) into an extension beside it, which Python imports instead of this file; without it
(no compiler, a failed build) this file runs, with the same results. Keep it mypyc-friendly:
plain int locals, bytes indexing, no memoryview in the walk. See docs/storage.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import cramjam

from kafkalike.protocol import records as _records
from kafkalike.protocol.record_batch import (
    CODEC_LZ4,
    CODEC_NONE,
    CODEC_ZSTD,
    CONTROL_FLAG_MASK,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    RecordBatch,
)
from kafkalike.storage.errors import CorruptRecordError, InvalidRecordError

_MAX_RECORD_ERRORS_SHOWN = 3
"""Kafka's processRecordErrors message names at most the first three record errors."""


@attrs.frozen
class RecordError:
    """One refused record: its index in the batch (0-based) and why (Produce v8+ record_errors)."""

    batch_index: int
    message: str


class RecordValidationError(InvalidRecordError):
    """INVALID_RECORD for records refused one by one (Kafka's RecordValidationException).

    `record_errors`: the RecordError of every refused record, for Produce v8+'s
    record_errors; the message names the first three, as Kafka's does.
    """

    def __init__(self, message: str, record_errors: tuple[RecordError, ...]) -> None:
        super().__init__(message)
        self.record_errors = record_errors


@attrs.frozen
class LogValidator:
    """What a leader's append must satisfy beyond header and CRC (Kafka's LogValidator).

    compacted_topic: cleanup.policy includes compact (records need keys). `validate(buffer)`
    raises or returns None; see `validate_records()`.
    """

    compacted_topic: bool = False

    def validate(self, buffer: bytes | bytearray | memoryview) -> None:
        """Walk every record of every batch in `buffer`; see `validate_records()`."""
        validate_records(buffer, compacted_topic=self.compacted_topic)


def validate_records(buffer: bytes | bytearray | memoryview, *, compacted_topic: bool = False,
                     max_decompressed_bytes: int = _records.MAX_DECOMPRESSED_BYTES,
                     batches: Sequence[RecordBatch] | None = None) -> None:
    """Validate every batch stored back to back in `buffer` (their headers and CRCs already checked).

    `batches`: the header views of those batches, already parsed (record_batch.assign_offsets
    returns them), so the headers are not read again; None reads each header here.

    Raises InvalidRecordError (INVALID_RECORD; RecordValidationError with record_errors for
    keyless records on a compacted topic) or CorruptRecordError (CORRUPT_MESSAGE: a body that
    does not decompress, or not within `max_decompressed_bytes` (bytes; default 256 MiB, the
    codecs' decompression-bomb guard), an unknown codec). `position` of a CorruptRecordError is
    the batch's byte position in `buffer`. Never raises anything else for any input bytes.
    """
    mv = _as_bytes(buffer)
    end = len(mv)
    if batches is not None:
        position = 0
        for b in batches:
            position = b.position
            batch_end = position + b.batch_length + LOG_OVERHEAD
            _validate_batch(mv, position, batch_end, end, b.attributes, b.last_offset_delta, b.producer_id,
                            b.base_sequence, b.records_count, compacted_topic, max_decompressed_bytes)
            position = batch_end
        if position != end:
            raise CorruptRecordError(f"{end - position} bytes after the last record batch", position)
        return
    position = 0
    unpack = HEADER.unpack_from
    while position + HEADER_SIZE <= end:
        (_base, length, _epoch, _magic, _crc, attributes, last_delta, _base_ts, _max_ts,
         producer_id, _producer_epoch, base_sequence, count) = unpack(mv, position)
        batch_end = position + length + LOG_OVERHEAD
        _validate_batch(mv, position, batch_end, end, attributes, last_delta, producer_id, base_sequence, count,
                        compacted_topic, max_decompressed_bytes)
        position = batch_end
    if position != end:
        raise CorruptRecordError(f"{end - position} bytes after the last record batch", position)


def _as_bytes(buffer: bytes | bytearray | memoryview) -> bytes:
    """`buffer` as bytes: the same object when it is bytes, else one copy (~1 µs per 16 KiB).

    The walk indexes bytes, not a memoryview: as fast in CPython, and the one type whose
    indexing mypyc compiles to a direct byte load (see docs/storage.md, "Compiled record walk").
    """
    if isinstance(buffer, bytes):
        return buffer
    mv = buffer if isinstance(buffer, memoryview) else memoryview(buffer)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv.tobytes()


def _validate_batch(mv: bytes, position: int, batch_end: int, end: int, attributes: int, last_delta: int,
                    producer_id: int, base_sequence: int, count: int, compacted_topic: bool,
                    max_decompressed_bytes: int) -> None:
    """One batch of `validate_records()`, from its header fields (already parsed)."""
    if batch_end > end or batch_end - position < HEADER_SIZE:
        raise CorruptRecordError(f"record batch of {batch_end - position} bytes does not fit", position)
    _check_batch(count, last_delta, attributes, producer_id, base_sequence)
    codec = attributes & 0x07
    if codec == CODEC_NONE:
        walk_records(mv, position + HEADER_SIZE, batch_end, count, compacted_topic)
    else:
        body = _decompress(codec, memoryview(mv)[position + HEADER_SIZE:batch_end], max_decompressed_bytes, position)
        walk_records(body, 0, len(body), count, compacted_topic)


def _decompress(codec: int, data: memoryview, limit: int, position: int) -> bytes:
    """The records part of a compressed batch, at most `limit` bytes; CorruptRecordError otherwise.

    gzip and snappy go through kafkalike.protocol.records (bounded by MAX_DECOMPRESSED_BYTES);
    lz4 and zstd are decompressed into a buffer that doubles from 8x the compressed size up to
    `limit`, so a small body that would inflate to gigabytes (a decompression bomb) costs at
    most `limit` bytes of memory instead of taking the broker down.
    """
    try:
        if codec not in (CODEC_LZ4, CODEC_ZSTD):
            body = _records.decompress(codec, data)
            if len(body) > limit:
                raise CorruptRecordError(f"compressed records inflate beyond {limit} bytes", position)
            return body
        module = cramjam.lz4 if codec == CODEC_LZ4 else cramjam.zstd
        size = min(limit, max(64 * 1024, 8 * len(data)))
        while True:
            out = bytearray(size)
            try:
                n = module.decompress_into(data, out)
                return memoryview(out)[:n].tobytes()
            except cramjam.DecompressionError as exc:
                if "whole buffer" not in str(exc):
                    raise
                if size >= limit:
                    raise CorruptRecordError(f"compressed records inflate beyond {limit} bytes", position) from None
                size = min(limit, 2 * size)
    except CorruptRecordError:
        raise
    except Exception as exc:  # CorruptRecordsError, UnsupportedCompressionError, DecompressionError
        raise CorruptRecordError(f"compressed records do not decompress: {exc}", position) from None


def _check_batch(count: int, last_delta: int, attributes: int, producer_id: int, base_sequence: int) -> None:
    """Kafka's LogValidator.validateBatch for a client's v2 batch: INVALID_RECORD."""
    if last_delta < 0:
        raise InvalidRecordError(f"Batch has an invalid offset range: lastOffsetDelta {last_delta}")
    if count <= 0:
        raise InvalidRecordError(f"Invalid reported count for record batch: {count}")
    if last_delta + 1 != count:
        raise InvalidRecordError(
            f"Inconsistent batch offset range [0, {last_delta}] and count of records {count}")
    if attributes & CONTROL_FLAG_MASK:
        raise InvalidRecordError("Clients are not allowed to write control records")
    if producer_id >= 0 and base_sequence < 0:
        raise InvalidRecordError(
            f"Invalid sequence number {base_sequence} in record batch with producerId {producer_id}")


def _varint_tail(buf: bytes, p: int, limit: int, raw: int, max_bytes: int) -> tuple[int, int]:
    """Continue a varint whose first byte (already read, `raw` = its low 7 bits) had the high
    bit set; `p` is just after that byte. Returns (zigzag-decoded value, position after it),
    wrapped to 32 bits (varint) or 64 bits (varlong) as Java's ByteUtils.readVarint/readVarlong.
    InvalidRecordError past `limit` or beyond `max_bytes` bytes (5 for varint, 10 for varlong)."""
    shift = 7
    n = 1
    while True:
        if p >= limit:
            raise InvalidRecordError("Found invalid record structure: varint runs past the record")
        b = buf[p]
        p += 1
        n += 1
        raw |= (b & 0x7F) << shift
        if b < 0x80:
            raw &= 0xFFFFFFFF if max_bytes == 5 else 0xFFFFFFFFFFFFFFFF
            return (raw >> 1) ^ -(raw & 1), p
        if n >= max_bytes:
            raise InvalidRecordError(f"Found invalid record structure: varint longer than {max_bytes} bytes")
        shift += 7


def walk_records(buf: bytes, p: int, end: int, count: int, compacted_topic: bool) -> None:
    """Frame `count` v2 records in buf[p:end] exactly (Kafka's DefaultRecord.readFrom, without
    building records): every varint in bounds, every field inside its record, offsetDelta of
    record i == i, the last record ending at `end`. Raises InvalidRecordError /
    RecordValidationError (compacted topic, null keys). No object per record, no copy.

    The loop reads each field without a bounds check of its own: a field that runs past its
    record leaves the position past the record's end, which the per-record end check refuses,
    and a read past the buffer raises IndexError, turned into INVALID_RECORD here.
    """
    try:
        _walk(buf, p, end, count, compacted_topic)
    except IndexError:
        raise InvalidRecordError("Incorrect declared batch size, premature EOF reached") from None


_ZIGZAG = tuple((b >> 1) ^ -(b & 1) for b in range(128))
"""The value of each one-byte zigzag varint (a tuple lookup is cheaper than decoding)."""


def _walk(buf: bytes, p: int, end: int, count: int, compacted_topic: bool) -> None:
    # One- and two-byte varints are decoded inline (lengths under 64 / 8,192 bytes, deltas under
    # 64 / 8,192: nearly every field of a producer's batch); longer ones go through
    # _varint_tail. The offsetDelta check compares the raw byte with i's encoding while i < 64.
    tail = _varint_tail
    zz = _ZIGZAG
    keyless: list[int] | None = None
    i2 = 0  # zigzag encoding of i (one byte while i < 64)
    for i in range(count):
        # record length (varint); at `end` the length check below refuses (or IndexError)
        b = buf[p]
        if b < 0x80:
            length = zz[b]
            p += 1
        else:
            b2 = buf[p + 1]
            if b2 < 0x80:
                raw = (b & 0x7F) | (b2 << 7)
                length = (raw >> 1) ^ -(raw & 1)
                p += 2
            else:
                length, p = tail(buf, p + 1, end, b & 0x7F, 5)
        rec_end = p + length
        if length <= 0 or rec_end > end:
            raise InvalidRecordError(
                f"Invalid record size: expected {length} bytes in record payload, but the batch has "
                f"only {end - p} remaining bytes (record {i})")
        # attributes (int8, unused) at p, then timestampDelta (varlong, skipped)
        b = buf[p + 1]
        if b < 0x80:
            p += 2
        elif buf[p + 2] < 0x80:
            p += 3
        else:
            _, p = tail(buf, p + 2, rec_end, b & 0x7F, 10)
        # offsetDelta (varint): must be i
        b = buf[p]
        if b == i2 and i < 64:
            p += 1
        else:
            if b < 0x80:
                delta = zz[b]
                p += 1
            else:
                delta, p = tail(buf, p + 1, rec_end, b & 0x7F, 5)
            if delta != i:
                raise InvalidRecordError(f"Invalid offset delta {delta} for record {i} (expected {i})")
        i2 += 2
        # key (varint length, negative = null)
        b = buf[p]
        if b < 0x80:
            n = zz[b]
            p += 1
        else:
            b2 = buf[p + 1]
            if b2 < 0x80:
                raw = (b & 0x7F) | (b2 << 7)
                n = (raw >> 1) ^ -(raw & 1)
                p += 2
            else:
                n, p = tail(buf, p + 1, rec_end, b & 0x7F, 5)
        if n >= 0:
            p += n
        elif compacted_topic:
            if keyless is None:
                keyless = []
            keyless.append(i)
        # value (varint length, negative = null)
        b = buf[p]
        if b < 0x80:
            n = zz[b]
            p += 1
        else:
            b2 = buf[p + 1]
            if b2 < 0x80:
                raw = (b & 0x7F) | (b2 << 7)
                n = (raw >> 1) ^ -(raw & 1)
                p += 2
            else:
                n, p = tail(buf, p + 1, rec_end, b & 0x7F, 5)
        if n > 0:
            p += n
        # headers: varint count, then a key (not null) and a value each, 2 bytes at least
        b = buf[p]
        p += 1
        if b:
            if b < 0x80:
                headers = zz[b]
            else:
                headers, p = tail(buf, p, rec_end, b & 0x7F, 5)
            if headers < 0:
                raise InvalidRecordError(f"Found invalid number of record headers {headers} (record {i})")
            if 2 * headers > rec_end - p:
                raise InvalidRecordError(f"Found invalid record structure: {headers} headers overrun record {i}")
            for _ in range(headers):
                b = buf[p]
                p += 1
                if b < 0x80:
                    n = zz[b]
                else:
                    n, p = tail(buf, p, rec_end, b & 0x7F, 5)
                if n < 0:
                    raise InvalidRecordError(f"Invalid negative header key size {n} (record {i})")
                p += n
                b = buf[p]
                p += 1
                if b < 0x80:
                    n = zz[b]
                else:
                    n, p = tail(buf, p, rec_end, b & 0x7F, 5)
                if n > 0:
                    p += n
                if p > rec_end:
                    break
        if p != rec_end:
            raise InvalidRecordError(
                f"Invalid record size: expected to read {length} bytes in record payload, "
                f"but instead read {length - (rec_end - p)} (record {i})")
    if p != end:
        raise InvalidRecordError(
            f"Incorrect declared batch size, records still remaining in file ({end - p} bytes after record {count - 1})")
    if keyless:
        errors = tuple(RecordError(i, "Compacted topic cannot accept message without key") for i in keyless)
        raise RecordValidationError(
            f"One or more records have been rejected due to {len(errors)} record errors in total, "
            f"and only showing the first three errors at most: "
            f"{[(e.batch_index, e.message) for e in errors[:_MAX_RECORD_ERRORS_SHOWN]]}",
            errors)
