"""Full record decoding, the four compression codecs, and a record batch builder.

For the places that need individual records (log cleaner, group coordinator's
``__consumer_offsets``, tools, kafkalike's own consumer) — never the Produce/Fetch hot path,
which only validates headers and CRCs (kafkalike.protocol.record_batch).

Holds:
- ``Record``: one decoded record (absolute offset, timestamp ms, key, value, headers).
- ``DecodedBatch``: a batch's header fields plus its records.
- ``decode_batch(buf, position)``, ``decode_batches(buf)``, ``iter_records(buf)``.
- ``build_records_batch(records, compression=...)``: encode a v2 batch, optionally
  compressed (kafkalike's client and the tests use it).
- ``compress(codec, data)`` / ``decompress(codec, data)``: gzip (stdlib), snappy (cramjam;
  reads both raw snappy, as librdkafka writes it, and the xerial framing that Java's
  SnappyOutputStream and kafka-python write; writes xerial like Java), lz4 (cramjam, the
  LZ4 frame format with independent blocks, which Kafka's Lz4BlockInputStream requires) and
  zstd (cramjam).

Record layout (Kafka protocol guide, "Record"): length varint, attributes int8,
timestampDelta varlong, offsetDelta varint, key (varint length, -1 = null), value (same),
headers count varint, each header key (varint length + UTF-8) and value (varint length,
-1 = null). Varints are zigzag-encoded. Under LogAppendTime every record's timestamp is the
batch's maxTimestamp.

Errors (all ProtocolError): CorruptRecordsError (CORRUPT_MESSAGE) for a CRC mismatch,
malformed record or undecompressible payload; UnsupportedMagicError (CORRUPT_MESSAGE) for
legacy message sets (magic 0/1), which kafkalike refuses; UnsupportedCompressionError
(UNSUPPORTED_COMPRESSION_TYPE) for codec ids 5-7. Batch-level errors come straight from
record_batch (its CorruptBatchError is a CorruptRecordsError, its UnsupportedMagicError an
errors.UnsupportedMagicError); only a truncated batch is turned into CorruptRecordsError here.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
import cramjam
import crc32c as _crc32c

from kafkalike.protocol import record_batch as rb
from kafkalike.protocol.errors import CorruptRecordsError, UnsupportedCompressionError

__all__ = [
    "Record",
    "DecodedBatch",
    "decode_batch",
    "decode_batches",
    "iter_records",
    "build_records_batch",
    "compress",
    "decompress",
    "CODEC_NONE",
    "CODEC_GZIP",
    "CODEC_SNAPPY",
    "CODEC_LZ4",
    "CODEC_ZSTD",
    "MAX_DECOMPRESSED_BYTES",
]

CODEC_NONE = rb.CODEC_NONE
CODEC_GZIP = rb.CODEC_GZIP
CODEC_SNAPPY = rb.CODEC_SNAPPY
CODEC_LZ4 = rb.CODEC_LZ4
CODEC_ZSTD = rb.CODEC_ZSTD

MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024
"""Refuse to inflate one batch beyond this many bytes (a decompression bomb guard)."""

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = struct.Struct(">8sii")
_XERIAL_BLOCK = 32 * 1024
_I32 = struct.Struct(">i")


@attrs.frozen
class Record:
    """One record: absolute ``offset``, ``timestamp`` (ms), ``key``/``value`` bytes (None =
    null) and ``headers`` ((key str, value bytes|None), ...)."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@attrs.frozen
class DecodedBatch:
    """A v2 batch's header fields (as in record_batch.RecordBatch) and its decoded records."""

    base_offset: int
    partition_leader_epoch: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records: tuple[Record, ...]
    size_in_bytes: int

    @property
    def compression(self) -> int:
        """0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd."""
        return self.attributes & rb.COMPRESSION_CODEC_MASK

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & rb.TRANSACTIONAL_FLAG_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & rb.CONTROL_FLAG_MASK)

    @property
    def timestamp_type(self) -> int:
        """0 CreateTime, 1 LogAppendTime."""
        return 1 if self.attributes & rb.TIMESTAMP_TYPE_MASK else 0

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta


# ----------------------------------------------------------------------------- compression


def _snappy_raw(block: memoryview) -> bytes:
    """Decompress one raw snappy block, refusing a declared size above the bomb guard."""
    declared = 0
    for i in range(min(5, len(block))):  # the uncompressed length, an unsigned varint
        declared |= (block[i] & 0x7F) << (7 * i)
        if not block[i] & 0x80:
            break
    if declared > MAX_DECOMPRESSED_BYTES:
        raise CorruptRecordsError(f"snappy block declares {declared} bytes")
    return bytes(cramjam.snappy.decompress_raw(block))


def _snappy_decompress(data: bytes | memoryview) -> bytes:
    data = memoryview(data)
    if bytes(data[:8]) != _XERIAL_MAGIC:
        return _snappy_raw(data)
    if len(data) < _XERIAL_HEADER.size:
        raise CorruptRecordsError("xerial snappy header truncated")
    out = bytearray()
    pos = _XERIAL_HEADER.size
    while pos < len(data):
        if pos + 4 > len(data):
            raise CorruptRecordsError("xerial snappy block length truncated")
        n = _I32.unpack_from(data, pos)[0]
        pos += 4
        if n < 0 or pos + n > len(data):
            raise CorruptRecordsError(f"xerial snappy block of {n} bytes overruns the payload")
        out += _snappy_raw(data[pos:pos + n])
        if len(out) > MAX_DECOMPRESSED_BYTES:
            raise CorruptRecordsError("decompressed batch too large")
        pos += n
    return bytes(out)


def _snappy_compress(data: bytes) -> bytes:
    out = bytearray(_XERIAL_HEADER.pack(_XERIAL_MAGIC, 1, 1))
    view = memoryview(data)
    for start in range(0, len(view), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(view[start:start + _XERIAL_BLOCK]))
        out += _I32.pack(len(block)) + block
    return bytes(out)


def _lz4_compress(data: bytes) -> bytes:
    comp = cramjam.lz4.Compressor(level=None, content_checksum=False, block_linked=False)
    comp.compress(data)
    return bytes(comp.finish())


def _gzip_decompress(data: bytes | memoryview) -> bytes:
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = d.decompress(bytes(data), MAX_DECOMPRESSED_BYTES + 1)
    if len(out) > MAX_DECOMPRESSED_BYTES:
        raise CorruptRecordsError("decompressed batch too large")
    return out


def compress(codec: int, data: bytes) -> bytes:
    """Compress ``data`` as Kafka's producers do for ``codec`` (1 gzip, 2 snappy/xerial,
    3 lz4 frame, 4 zstd; 0 returns it unchanged). Raises UnsupportedCompressionError."""
    if codec == CODEC_NONE:
        return bytes(data)
    if codec == CODEC_GZIP:
        return gzip.compress(bytes(data), compresslevel=6, mtime=0)
    if codec == CODEC_SNAPPY:
        return _snappy_compress(bytes(data))
    if codec == CODEC_LZ4:
        return _lz4_compress(bytes(data))
    if codec == CODEC_ZSTD:
        return bytes(cramjam.zstd.compress(bytes(data)))
    raise UnsupportedCompressionError(f"unknown compression codec {codec}")


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    """Inverse of compress(); also reads raw (unframed) snappy. Raises CorruptRecordsError
    for a payload that does not decompress, UnsupportedCompressionError for codecs 5-7."""
    if codec == CODEC_NONE:
        return bytes(data)
    try:
        if codec == CODEC_GZIP:
            return _gzip_decompress(data)
        if codec == CODEC_SNAPPY:
            return _snappy_decompress(data)
        if codec == CODEC_LZ4:
            return bytes(cramjam.lz4.decompress(bytes(data)))
        if codec == CODEC_ZSTD:
            return bytes(cramjam.zstd.decompress(bytes(data)))
    except CorruptRecordsError:
        raise
    except Exception as exc:  # zlib.error, cramjam.DecompressionError, EOFError, ...
        raise CorruptRecordsError(f"{rb.CODEC_NAMES.get(codec)} payload does not "
                                  f"decompress: {exc}") from None
    raise UnsupportedCompressionError(f"unknown compression codec {codec}")


# ----------------------------------------------------------------------------- varints


def _read_varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    raw = 0
    shift = 0
    while True:
        if pos >= end:
            raise CorruptRecordsError("varint runs past the end of the record")
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        if not b & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptRecordsError("varint longer than 10 bytes")


def _write_varint(out: bytearray, value: int) -> None:
    v = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _read_blob(buf: Any, pos: int, end: int) -> tuple[bytes | None, int]:
    n, pos = _read_varint(buf, pos, end)
    if n < 0:
        if n != -1:
            raise CorruptRecordsError(f"invalid length {n} in record")
        return None, pos
    if pos + n > end:
        raise CorruptRecordsError("record field runs past the end of the record")
    return bytes(buf[pos:pos + n]), pos + n


def _decode_records(data: Any, count: int, base_offset: int, base_ts: int,
                    log_append_ts: int | None) -> tuple[Record, ...]:
    out = []
    pos = 0
    total = len(data)
    if count < 0 or count > total:
        raise CorruptRecordsError(f"invalid record count {count}")
    for _ in range(count):
        length, pos = _read_varint(data, pos, total)
        end = pos + length
        if length < 0 or end > total:
            raise CorruptRecordsError(f"record length {length} overruns the batch")
        pos += 1  # attributes (unused)
        ts_delta, pos = _read_varint(data, pos, end)
        off_delta, pos = _read_varint(data, pos, end)
        key, pos = _read_blob(data, pos, end)
        value, pos = _read_blob(data, pos, end)
        n_headers, pos = _read_varint(data, pos, end)
        if n_headers < 0 or n_headers > end - pos:
            raise CorruptRecordsError(f"invalid header count {n_headers}")
        headers = []
        for _h in range(n_headers):
            hkey, pos = _read_blob(data, pos, end)
            if hkey is None:
                raise CorruptRecordsError("record header with a null key")
            hvalue, pos = _read_blob(data, pos, end)
            try:
                headers.append((hkey.decode("utf-8"), hvalue))
            except UnicodeDecodeError:
                raise CorruptRecordsError("record header key is not UTF-8") from None
        if pos != end:
            raise CorruptRecordsError("record length does not match its fields")
        ts = log_append_ts if log_append_ts is not None else base_ts + ts_delta
        out.append(Record(base_offset + off_delta, ts, key, value, tuple(headers)))
    if pos != total:
        raise CorruptRecordsError(f"{total - pos} bytes left after the batch's records")
    return tuple(out)


# ----------------------------------------------------------------------------- batches


def decode_batch(buf: bytes | bytearray | memoryview, position: int = 0, *,
                 verify_crc: bool = True) -> DecodedBatch:
    """Decode the v2 batch at ``buf[position:]`` with all its records (decompressing).

    Raises CorruptRecordsError (bad length/CRC/record, truncated), UnsupportedMagicError
    (magic 0/1), UnsupportedCompressionError.
    """
    try:
        batch = next(rb.iter_batches(buf, position, position + _batch_extent(buf, position),
                                     verify_crc=verify_crc))
    except rb.TruncatedBatchError as exc:  # the others already are CorruptRecordsError
        raise CorruptRecordsError(str(exc)) from None
    return _decode(batch)


def _batch_extent(buf: Any, position: int) -> int:
    if len(buf) - position >= 12:
        n = _I32.unpack_from(buf, position + 8)[0]
        if n >= 0:
            return min(len(buf) - position, n + 12)
    return len(buf) - position


def _decode(batch: rb.RecordBatch) -> DecodedBatch:
    codec = batch.compression_codec
    if codec > CODEC_ZSTD:
        raise UnsupportedCompressionError(f"unknown compression codec {codec}")
    payload = batch.records_view()
    data = payload if codec == CODEC_NONE else decompress(codec, payload)
    log_append = batch.max_timestamp if batch.timestamp_type == rb.TIMESTAMP_LOG_APPEND_TIME \
        else None
    records = _decode_records(data, batch.records_count, batch.base_offset,
                              batch.base_timestamp, log_append)
    return DecodedBatch(
        base_offset=batch.base_offset,
        partition_leader_epoch=batch.partition_leader_epoch,
        attributes=batch.attributes,
        last_offset_delta=batch.last_offset_delta,
        base_timestamp=batch.base_timestamp,
        max_timestamp=batch.max_timestamp,
        producer_id=batch.producer_id,
        producer_epoch=batch.producer_epoch,
        base_sequence=batch.base_sequence,
        records=records,
        size_in_bytes=batch.size_in_bytes,
    )


def decode_batches(buf: bytes | bytearray | memoryview, *, verify_crc: bool = True,
                   allow_truncated_tail: bool = False) -> list[DecodedBatch]:
    """Decode every batch stored back to back in ``buf``.

    ``allow_truncated_tail``: ignore an incomplete last batch, as consumers do with a Fetch
    response cut at max_bytes. Raises as decode_batch().
    """
    out = []
    try:
        for batch in rb.iter_batches(buf, verify_crc=verify_crc):
            out.append(_decode(batch))
    except rb.TruncatedBatchError as exc:  # the others already are CorruptRecordsError
        if not allow_truncated_tail:
            raise CorruptRecordsError(str(exc)) from None
    return out


def iter_records(buf: bytes | bytearray | memoryview, *,
                 allow_truncated_tail: bool = False) -> Iterator[Record]:
    """Every record of every batch in ``buf``, in order. Raises as decode_batches()."""
    for batch in decode_batches(buf, allow_truncated_tail=allow_truncated_tail):
        yield from batch.records


def build_records_batch(
    records: Iterable[Record | tuple[Any, ...]],
    *,
    base_offset: int = 0,
    compression: int = CODEC_NONE,
    partition_leader_epoch: int = -1,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    control: bool = False,
    log_append_time: int | None = None,
) -> bytes:
    """Encode one v2 batch (Kafka protocol guide, "Record Batch"); returns its bytes.

    ``records``: Record objects (their ``offset`` is taken as the offset *delta* from
    ``base_offset`` when >= base_offset, else their position) or (key, value) /
    (key, value, headers) / (key, value, headers, timestamp_ms) tuples. Deltas follow the
    input order: 0, 1, 2, ... for tuples. ``compression`` 0-4 compresses the records part.
    ``log_append_time`` (ms) sets LogAppendTime and maxTimestamp. Raises ValueError for an
    empty batch, UnsupportedCompressionError for an unknown codec.
    """
    normalized: list[tuple[int, int, bytes | None, bytes | None, tuple[Any, ...]]] = []
    for i, r in enumerate(records):
        if isinstance(r, Record):
            delta = r.offset - base_offset if r.offset >= base_offset else i
            normalized.append((delta, r.timestamp, r.key, r.value, tuple(r.headers)))
        else:
            key, value = r[0], r[1]
            headers = tuple(r[2]) if len(r) > 2 else ()
            ts = r[3] if len(r) > 3 else 0
            normalized.append((i, ts, key, value, headers))
    if not normalized:
        raise ValueError("a batch needs at least one record")
    if not 0 <= compression <= CODEC_ZSTD:
        raise UnsupportedCompressionError(f"unknown compression codec {compression}")
    base_ts = normalized[0][1]
    max_ts = max(n[1] for n in normalized)
    body = bytearray()
    for delta, ts, key, value, headers in normalized:
        rec = bytearray(b"\x00")
        _write_varint(rec, ts - base_ts)
        _write_varint(rec, delta)
        for blob in (key, value):
            if blob is None:
                _write_varint(rec, -1)
            else:
                _write_varint(rec, len(blob))
                rec += blob
        _write_varint(rec, len(headers))
        for hkey, hvalue in headers:
            hk = hkey.encode("utf-8")
            _write_varint(rec, len(hk))
            rec += hk
            if hvalue is None:
                _write_varint(rec, -1)
            else:
                _write_varint(rec, len(hvalue))
                rec += hvalue
        _write_varint(body, len(rec))
        body += rec
    payload = compress(compression, bytes(body)) if compression else bytes(body)
    attributes = compression
    if transactional:
        attributes |= rb.TRANSACTIONAL_FLAG_MASK
    if control:
        attributes |= rb.CONTROL_FLAG_MASK
    if log_append_time is not None:
        attributes |= rb.TIMESTAMP_TYPE_MASK
        max_ts = log_append_time
    out = bytearray(rb.HEADER_SIZE) + payload
    rb.HEADER.pack_into(
        out, 0, base_offset, len(out) - rb.LOG_OVERHEAD, partition_leader_epoch,
        rb.CURRENT_MAGIC, 0, attributes, max(n[0] for n in normalized), base_ts, max_ts,
        producer_id, producer_epoch, base_sequence, len(normalized),
    )
    struct.pack_into(">I", out, rb.CRC_AT, _crc32c.crc32c(memoryview(out)[rb.ATTRIBUTES_AT:]))
    return bytes(out)
