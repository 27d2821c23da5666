"""Zero-copy view over Kafka's RecordBatch v2 header, batch iteration, and a tiny batch builder.

Holds: `RecordBatch` (a view over the 61-byte v2 header inside a bytearray/memoryview/bytes
buffer, with in-place patching of baseOffset and partitionLeaderEpoch), `iter_batches()` (walks
the batches stored back to back in one buffer and tells a truncated tail apart from a corrupt
batch), `assign_offsets()` (the leader's single-pass validate-and-patch walk over a Produce's
record set, reusing the views its caller parsed and returning one view per batch, so a
header is parsed once per append), the typed errors they raise, and `build_batch()` (makes a
valid uncompressed v2 batch from simple records, for tests and tools).

Follows the Kafka protocol guide, "Record Batch" (magic 2), and Kafka's DefaultRecordBatch:

    baseOffset: int64            @0   (patched by the broker; not covered by the CRC)
    batchLength: int32           @8   (bytes after this field: size in bytes = batchLength + 12)
    partitionLeaderEpoch: int32  @12  (patched by the broker; not covered by the CRC)
    magic: int8                  @16  (2)
    crc: uint32                  @17  (CRC-32C of attributes .. end of batch)
    attributes: int16            @21  (bits 0-2 codec, 3 timestamp type, 4 transactional,
                                       5 control, 6 delete horizon set (KIP-534))
    lastOffsetDelta: int32       @23
    baseTimestamp: int64         @27  (ms)
    maxTimestamp: int64          @35  (ms)
    producerId: int64            @43
    producerEpoch: int16         @51
    baseSequence: int32          @53
    recordsCount: int32          @57
    records                      @61

This module is sans-IO: it never imports trio and never touches files or sockets. It never
decodes individual records except in `build_batch()` (encoding) and `iter_simple_records()`
(uncompressed batches only, for tests); full record codecs and compression live in
kafkalike/protocol/records.py.

Errors: every error here is a `RecordBatchError`, itself a `kafkalike.protocol.errors.RecordsError`
(a `ProtocolError`) whose `error_code` is ErrorCode.corrupt_message (CORRUPT_MESSAGE, 2).
A legacy message set (magic 0 or 1) is refused with `UnsupportedMagicError` (CORRUPT_MESSAGE):
that is what a ZooKeeper-era Kafka 2.x broker answered to a Produce v3+ carrying magic < 2 (ProduceRequest.validateRecords raised
InvalidRecordException, then a subclass of CorruptRecordException). Kafka 2.5+ answers
INVALID_RECORD (87) instead; UNSUPPORTED_FOR_MESSAGE_FORMAT (43) is what Kafka uses for features
the *topic's* message format cannot carry, which is not this case.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Union

import attrs
import crc32c as _crc32c

from kafkalike.protocol import errors
from kafkalike.protocol.errors import CorruptRecordsError, RecordsError

# what the batch readers take: any buffer struct.unpack_from and slicing work on (storage hands
# its mmap'ed segments straight in)
Buffer = Union[bytes, bytearray, memoryview, mmap.mmap]

HEADER = struct.Struct(">qiibIhiqqqhii")
"""The 61-byte v2 header, all fields, big-endian."""
assert HEADER.size == 61

HEADER_SIZE = 61
"""Bytes in a v2 batch header (Kafka's RECORD_BATCH_OVERHEAD)."""
LOG_OVERHEAD = 12
"""baseOffset + batchLength: bytes before the part counted by batchLength."""
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
"""Smallest valid batchLength for magic 2 (an empty batch): 49."""
HEADER_SIZE_UP_TO_MAGIC = 17
LEGACY_MIN_LENGTH = 14
"""Kafka's LegacyRecord.RECORD_OVERHEAD_V0: a smaller length is corrupt whatever the magic."""

BASE_OFFSET_AT = 0
BATCH_LENGTH_AT = 8
PARTITION_LEADER_EPOCH_AT = 12
MAGIC_AT = 16
CRC_AT = 17
ATTRIBUTES_AT = 21
LAST_OFFSET_DELTA_AT = 23
BASE_TIMESTAMP_AT = 27
MAX_TIMESTAMP_AT = 35
PRODUCER_ID_AT = 43
PRODUCER_EPOCH_AT = 51
BASE_SEQUENCE_AT = 53
RECORDS_COUNT_AT = 57

_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_LENGTH_AND_EPOCH = struct.Struct(">qi")

CURRENT_MAGIC = 2
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1
NO_TIMESTAMP = -1

COMPRESSION_CODEC_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_FLAG_MASK = 0x10
CONTROL_FLAG_MASK = 0x20
DELETE_HORIZON_FLAG_MASK = 0x40

CODEC_NONE = 0
CODEC_GZIP = 1
CODEC_SNAPPY = 2
CODEC_LZ4 = 3
CODEC_ZSTD = 4
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

TIMESTAMP_CREATE_TIME = 0
TIMESTAMP_LOG_APPEND_TIME = 1


# --------------------------------------------------------------------------------------- errors


class RecordBatchError(RecordsError):
    """Base class: a buffer that does not hold valid v2 batches at `position` (bytes).

    A `kafkalike.protocol.errors.RecordsError` (so a `ProtocolError`): `error_code` is
    ErrorCode.corrupt_message (CORRUPT_MESSAGE, 2), and code that catches the codec's errors
    catches these too.
    """

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at byte {position})")
        self.position = position


class TruncatedBatchError(RecordBatchError):
    """The buffer ends inside a batch: a short read or a torn write, not corruption.

    `position` is where the incomplete batch starts; `needed` is how many bytes the batch
    would need (or 12 when even the length field is incomplete); `available` how many there are.
    A log's recovery truncates here; a fetch response may legitimately end like this (Kafka's
    clients drop a partial trailing batch).
    """

    def __init__(self, position: int, needed: int, available: int) -> None:
        super().__init__(
            f"truncated record batch: needs {needed} bytes, {available} available", position
        )
        self.needed = needed
        self.available = available


class CorruptBatchError(RecordBatchError, CorruptRecordsError):
    """A batch whose bytes are wrong: bad length, bad magic, or CRC mismatch (CORRUPT_MESSAGE).

    Also a `kafkalike.protocol.errors.CorruptRecordsError`, the codec's name for the same thing.
    """


class BadBatchLengthError(CorruptBatchError):
    """batchLength below the v2 minimum (49) or above the allowed maximum."""


class BadMagicError(CorruptBatchError):
    """A magic byte that no Kafka version ever wrote (not 0, 1 or 2)."""


class CrcMismatchError(CorruptBatchError):
    """The stored CRC-32C does not match the bytes from attributes to the end of the batch."""

    def __init__(self, position: int, stored: int, computed: int) -> None:
        super().__init__(
            f"record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}", position
        )
        self.stored = stored
        self.computed = computed


class UnsupportedMagicError(CorruptBatchError, errors.UnsupportedMagicError):
    """A legacy message set (magic 0 or 1); kafkalike stores only magic 2.

    Also a `kafkalike.protocol.errors.UnsupportedMagicError`. error_code is CORRUPT_MESSAGE, as a
    Kafka 2.x broker answered to a Produce v3+ carrying magic < 2 (see the module docstring for Kafka 2.5+'s INVALID_RECORD).
    """

    def __init__(self, position: int, magic: int) -> None:
        super().__init__(f"unsupported record batch magic {magic} (only magic 2)", position)
        self.magic = magic


# --------------------------------------------------------------------------------- header view


class RecordBatch:
    """A view over one v2 batch inside `buffer`, starting at byte `position`.

    Reading the header fields costs one struct.unpack_from at construction; the batch bytes are
    never copied. `set_base_offset()` / `set_partition_leader_epoch()` patch the buffer in place
    (the buffer must be writable: bytearray or a writable memoryview); the CRC does not cover
    these two fields, so it stays valid, as in Kafka.

    The constructor checks only that 61 header bytes are present (TruncatedBatchError); use
    `iter_batches()` / `validate()` for the length, magic and CRC checks.
    """

    __slots__ = (
        "buffer",
        "position",
        "base_offset",
        "batch_length",
        "partition_leader_epoch",
        "magic",
        "crc",
        "attributes",
        "last_offset_delta",
        "base_timestamp",
        "max_timestamp",
        "producer_id",
        "producer_epoch",
        "base_sequence",
        "records_count",
    )

    def __init__(self, buffer: Buffer, position: int = 0) -> None:
        available = len(buffer) - position
        if available < HEADER_SIZE:
            raise TruncatedBatchError(position, HEADER_SIZE, available)
        self.buffer = buffer
        self.position = position
        (
            self.base_offset,
            self.batch_length,
            self.partition_leader_epoch,
            self.magic,
            self.crc,
            self.attributes,
            self.last_offset_delta,
            self.base_timestamp,
            self.max_timestamp,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
            self.records_count,
        ) = HEADER.unpack_from(buffer, position)

    # -- derived fields
    @property
    def size_in_bytes(self) -> int:
        """Bytes this batch occupies: batchLength + 12."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def end_position(self) -> int:
        """Byte position just after this batch in the buffer."""
        return self.position + self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        """baseOffset + lastOffsetDelta (offset of the last record, kept even after compaction)."""
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        """last_offset + 1."""
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression_codec(self) -> int:
        """0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd (attributes bits 0-2)."""
        return self.attributes & COMPRESSION_CODEC_MASK

    @property
    def timestamp_type(self) -> int:
        """0 CreateTime, 1 LogAppendTime (attributes bit 3)."""
        return 1 if self.attributes & TIMESTAMP_TYPE_MASK else 0

    @property
    def is_transactional(self) -> bool:
        """attributes bit 4."""
        return bool(self.attributes & TRANSACTIONAL_FLAG_MASK)

    @property
    def is_control(self) -> bool:
        """attributes bit 5 (transaction markers and the like)."""
        return bool(self.attributes & CONTROL_FLAG_MASK)

    @property
    def has_delete_horizon(self) -> bool:
        """KIP-534: baseTimestamp holds the delete horizon (ms) for tombstones in this batch."""
        return bool(self.attributes & DELETE_HORIZON_FLAG_MASK)

    def view(self) -> memoryview:
        """The whole batch's bytes as a memoryview (no copy)."""
        return memoryview(self.buffer)[self.position : self.end_position]

    def records_view(self) -> memoryview:
        """The records part (after the 61-byte header), possibly compressed, as a memoryview."""
        return memoryview(self.buffer)[self.position + HEADER_SIZE : self.end_position]

    # -- checks
    def compute_crc(self) -> int:
        """CRC-32C of attributes .. end of batch (what the crc field must hold)."""
        mv = memoryview(self.buffer)[self.position + ATTRIBUTES_AT : self.end_position]
        return _crc32c.crc32c(mv)

    def is_valid(self) -> bool:
        """True when the whole batch is present and its CRC matches."""
        if len(self.buffer) < self.end_position or self.batch_length < MIN_BATCH_LENGTH:
            return False
        return self.compute_crc() == self.crc

    def validate(self) -> None:
        """Check magic, length, completeness and CRC.

        Raises UnsupportedMagicError / BadMagicError / BadBatchLengthError / CrcMismatchError
        (CORRUPT_MESSAGE) or TruncatedBatchError.
        """
        _check_header(self.buffer, self.position, len(self.buffer), None)
        computed = self.compute_crc()
        if computed != self.crc:
            raise CrcMismatchError(self.position, self.crc, computed)

    # -- in-place patching
    def set_base_offset(self, base_offset: int) -> None:
        """Write baseOffset into the buffer (does not change the CRC)."""
        _INT64.pack_into(self.buffer, self.position + BASE_OFFSET_AT, base_offset)
        self.base_offset = base_offset

    def set_partition_leader_epoch(self, epoch: int) -> None:
        """Write partitionLeaderEpoch into the buffer (does not change the CRC)."""
        _INT32.pack_into(self.buffer, self.position + PARTITION_LEADER_EPOCH_AT, epoch)
        self.partition_leader_epoch = epoch

    def __repr__(self) -> str:
        return (
            f"RecordBatch(base_offset={self.base_offset}, last_offset={self.last_offset}, "
            f"size={self.size_in_bytes}, count={self.records_count}, "
            f"epoch={self.partition_leader_epoch}, codec={CODEC_NAMES.get(self.compression_codec, '?')}, "
            f"max_ts={self.max_timestamp}, position={self.position})"
        )

    def explain(self) -> str:
        """A multi-line description of the header for humans (teaching tool)."""
        lines = [
            f"baseOffset           {self.base_offset}",
            f"batchLength          {self.batch_length}  (size {self.size_in_bytes} bytes)",
            f"partitionLeaderEpoch {self.partition_leader_epoch}",
            f"magic                {self.magic}",
            f"crc                  {self.crc:#010x}",
            f"attributes           {self.attributes:#06x}  (codec={CODEC_NAMES.get(self.compression_codec, '?')}, "
            f"timestampType={'LogAppendTime' if self.timestamp_type else 'CreateTime'}, "
            f"transactional={self.is_transactional}, control={self.is_control})",
            f"lastOffsetDelta      {self.last_offset_delta}",
            f"baseTimestamp        {self.base_timestamp}",
            f"maxTimestamp         {self.max_timestamp}",
            f"producerId           {self.producer_id}",
            f"producerEpoch        {self.producer_epoch}",
            f"baseSequence         {self.base_sequence}",
            f"recordsCount         {self.records_count}",
        ]
        return "\n".join(lines)


def _check_header(buffer: Buffer, position: int, end: int, max_batch_bytes: int | None) -> int:
    """Check what can be checked before the CRC; return the batch's size in bytes.

    Order (as Kafka's FileLogInputStream): need 12 bytes for baseOffset+length, else truncated;
    length < 14 (Kafka's smallest legacy record) -> BadBatchLengthError; with >= 17 bytes, magic
    0/1 -> UnsupportedMagicError, other != 2 -> BadMagicError; length out of bounds ->
    BadBatchLengthError; fewer bytes than the batch -> TruncatedBatchError.
    """
    available = end - position
    if available < LOG_OVERHEAD:
        raise TruncatedBatchError(position, LOG_OVERHEAD, available)
    batch_length = _INT32.unpack_from(buffer, position + BATCH_LENGTH_AT)[0]
    if batch_length < LEGACY_MIN_LENGTH:
        raise BadBatchLengthError(
            f"record batch length {batch_length} below the minimum {MIN_BATCH_LENGTH}", position
        )
    if available >= HEADER_SIZE_UP_TO_MAGIC:
        magic = buffer[position + MAGIC_AT]
        if magic != CURRENT_MAGIC:
            if magic in (0, 1):
                raise UnsupportedMagicError(position, magic)
            raise BadMagicError(f"bad record batch magic {magic}", position)
    if batch_length < MIN_BATCH_LENGTH:
        raise BadBatchLengthError(
            f"record batch length {batch_length} below the minimum {MIN_BATCH_LENGTH}", position
        )
    size = batch_length + LOG_OVERHEAD
    if max_batch_bytes is not None and size > max_batch_bytes:
        raise BadBatchLengthError(
            f"record batch size {size} above the maximum {max_batch_bytes}", position
        )
    if available < size:
        raise TruncatedBatchError(position, size, available)
    return size


def iter_batches(
    buffer: Buffer,
    position: int = 0,
    end: int | None = None,
    *,
    verify_crc: bool = True,
    max_batch_bytes: int | None = None,
) -> Iterator[RecordBatch]:
    """Yield a RecordBatch view for each batch stored back to back in buffer[position:end].

    Stops cleanly when exactly at `end` (default len(buffer)). Raises, at the offending batch's
    byte position (absolute within `buffer`):
      TruncatedBatchError  - the buffer ends inside a batch (short read / torn write);
      UnsupportedMagicError - magic 0 or 1 (legacy message sets);
      BadMagicError, BadBatchLengthError, CrcMismatchError - corruption (CORRUPT_MESSAGE).
    `max_batch_bytes` (bytes) bounds a single batch's size (e.g. message.max.bytes + 12 ...);
    `verify_crc=False` skips the CRC (e.g. when re-reading bytes already validated).
    """
    if end is None:
        end = len(buffer)
    mv = buffer if isinstance(buffer, memoryview) else memoryview(buffer)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    while position < end:
        size = _check_header(mv, position, end, max_batch_bytes)
        if size < HEADER_SIZE:  # pragma: no cover - excluded by MIN_BATCH_LENGTH
            raise BadBatchLengthError("record batch shorter than its header", position)
        batch = RecordBatch(mv, position)
        if verify_crc:
            computed = _crc32c.crc32c(mv[position + ATTRIBUTES_AT : position + size])
            if computed != batch.crc:
                raise CrcMismatchError(position, batch.crc, computed)
        yield batch
        position += size


_OFFSET_LENGTH_EPOCH = struct.Struct(">qii")
"""baseOffset, batchLength, partitionLeaderEpoch: one pack_into patches offset and epoch."""
_ATTRIBUTES = struct.Struct(">h")
_CRC = struct.Struct(">I")


@attrs.frozen
class AssignedOffsets:
    """What `assign_offsets()` did to a record set (offsets int64, timestamps ms, sizes bytes).

    batches: one (position, size, last offset, max timestamp) tuple per batch, in order, as
    LogSegment.append takes them (position relative to the walk's start). epochs: the
    (partitionLeaderEpoch, baseOffset) of each batch whose own epoch was kept and is >= 0 (only
    filled when the walk did not set the epoch). first_offset/last_offset are -1 for an empty
    record set; next_offset is the offset after the last record; max_batch_size is the largest
    batch, for max.message.bytes checks. views: the RecordBatch header view of each batch, in
    order, describing the patched bytes (buffer = the walked memoryview), to hand on to the
    record walk and the producer state without reading the header again.
    """

    first_offset: int
    last_offset: int
    next_offset: int
    records_count: int
    max_timestamp: int
    offset_of_max_timestamp: int
    max_batch_size: int
    valid_bytes: int
    batches: list[tuple[int, int, int, int]]
    epochs: list[tuple[int, int]]
    views: list[RecordBatch]


def assign_offsets(
    buffer: bytearray | memoryview,
    next_offset: int,
    leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    *,
    log_append_time_ms: int | None = None,
    verify_crc: bool = True,
    parsed: Sequence[RecordBatch] = (),
) -> AssignedOffsets:
    """Validate and patch a Produce's record set in one pass over its batches (the leader's append).

    For each v2 batch stored back to back in `buffer` (writable: bytearray or writable
    memoryview), in one walk: check the header as `iter_batches()` does (same errors, same
    order, same positions), check the CRC-32C (unless `verify_crc=False`), refuse a negative
    lastOffsetDelta, then write baseOffset = the next offset (starting at `next_offset`) and,
    when `leader_epoch >= 0`, partitionLeaderEpoch = leader_epoch, with one `pack_into`. With
    `log_append_time_ms` (topic message.timestamp.type=LogAppendTime) it also sets maxTimestamp
    to that time and the timestamp-type attribute bit, and recomputes the CRC, as Kafka's
    LogValidator.assignOffsetsNonCompressed / DefaultRecordBatch.setMaxTimestamp do. Records
    are never decoded. Equivalent to `iter_batches()` + `set_base_offset()` +
    `set_partition_leader_epoch()` per batch.

    Each batch's 61-byte header is parsed once: `parsed` holds header views the caller already
    built over the same bytes (ReplicaManager's validateRecords parses a Produce partition's
    one batch), used for the batches at their positions; the other batches get a RecordBatch
    view here. Every view is updated to the patched fields and rebound to the walked buffer
    (a copy when `buffer` was not the views' buffer), and returned in `views`.

    Returns AssignedOffsets. Raises TruncatedBatchError, UnsupportedMagicError, BadMagicError,
    BadBatchLengthError, CrcMismatchError, CorruptBatchError (negative lastOffsetDelta), all
    CORRUPT_MESSAGE, at the offending batch's position; batches before it are already patched.
    TypeError for a read-only buffer.
    """
    mv = buffer if isinstance(buffer, memoryview) else memoryview(buffer)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    if mv.readonly:
        raise TypeError("assign_offsets() patches in place: pass a bytearray or writable memoryview")
    end = len(mv)
    crc32c = _crc32c.crc32c
    pack_offset = _INT64.pack_into
    pack_offset_epoch = _OFFSET_LENGTH_EPOCH.pack_into
    set_epoch = leader_epoch >= 0
    batches: list[tuple[int, int, int, int]] = []
    add_batch = batches.append
    epochs: list[tuple[int, int]] = []
    views: list[RecordBatch] = []
    offset = next_offset
    count = 0
    max_ts = NO_TIMESTAMP
    offset_of_max = -1
    largest = 0
    position = 0
    while position < end:
        i = len(views)
        view: RecordBatch | None = parsed[i] if i < len(parsed) and parsed[i].position == position else None
        if view is None and end - position >= HEADER_SIZE:
            view = RecordBatch(mv, position)
        if view is not None:
            length = view.batch_length
            size = length + LOG_OVERHEAD
            ok = view.magic == CURRENT_MAGIC and length >= MIN_BATCH_LENGTH and position + size <= end
        else:
            ok = False
        if not ok or view is None:
            _check_header(mv, position, end, None)  # raises the error iter_batches() would
            raise BadBatchLengthError("record batch header not understood", position)  # pragma: no cover
        view.buffer = mv
        if verify_crc:
            computed = crc32c(mv[position + ATTRIBUTES_AT : position + size])
            if computed != view.crc:
                raise CrcMismatchError(position, view.crc, computed)
        delta = view.last_offset_delta
        if delta < 0:
            raise CorruptBatchError(f"negative lastOffsetDelta {delta}", position)
        if set_epoch:
            pack_offset_epoch(mv, position, offset, length, leader_epoch)
            view.partition_leader_epoch = leader_epoch
        else:
            pack_offset(mv, position, offset)
            if view.partition_leader_epoch >= 0:
                epochs.append((view.partition_leader_epoch, offset))
        view.base_offset = offset
        batch_max_ts = view.max_timestamp
        if log_append_time_ms is not None:
            batch_max_ts = view.max_timestamp = log_append_time_ms
            view.attributes |= TIMESTAMP_TYPE_MASK
            _INT64.pack_into(mv, position + MAX_TIMESTAMP_AT, batch_max_ts)
            _ATTRIBUTES.pack_into(mv, position + ATTRIBUTES_AT, view.attributes)
            view.crc = crc32c(mv[position + ATTRIBUTES_AT : position + size])
            _CRC.pack_into(mv, position + CRC_AT, view.crc)
        last = offset + delta
        if batch_max_ts > max_ts:
            max_ts, offset_of_max = batch_max_ts, last
        if size > largest:
            largest = size
        add_batch((position, size, last, batch_max_ts))
        views.append(view)
        count += view.records_count
        offset = last + 1
        position += size
    first = next_offset if batches else -1
    return AssignedOffsets(first, offset - 1 if batches else -1, offset, count, max_ts, offset_of_max,
                           largest, position, batches, epochs, views)


def valid_prefix_length(buffer: Buffer, position: int = 0, end: int | None = None) -> tuple[int, RecordBatchError | None]:
    """Bytes of complete, valid batches at the start of buffer[position:end], and the error that stopped the walk.

    Returns (byte position where valid data ends, None) when everything is valid, else
    (that position, the TruncatedBatchError or CorruptBatchError found there).
    """
    last_end = position
    try:
        for batch in iter_batches(buffer, position, end):
            last_end = batch.end_position
    except RecordBatchError as exc:
        return exc.position, exc
    return last_end, None


# ------------------------------------------------------------------- building (tests and tools)


@attrs.frozen
class SimpleRecord:
    """One record to put in a batch: key/value bytes (None = null), headers, timestamp in ms."""

    value: bytes | None = None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int = 0


def _zigzag_varint(value: int, out: bytearray) -> None:
    v = (value << 1) ^ (value >> 63)
    v &= 0xFFFFFFFFFFFFFFFF
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _encode_bytes(data: bytes | None, out: bytearray) -> None:
    if data is None:
        _zigzag_varint(-1, out)
    else:
        _zigzag_varint(len(data), out)
        out += data


def encode_record(record: SimpleRecord, offset_delta: int, timestamp_delta: int) -> bytes:
    """Encode one v2 Record (length-prefixed, varints zigzag): Kafka protocol guide, "Record"."""
    body = bytearray()
    body.append(0)  # attributes (unused)
    _zigzag_varint(timestamp_delta, body)
    _zigzag_varint(offset_delta, body)
    _encode_bytes(record.key, body)
    _encode_bytes(record.value, body)
    _zigzag_varint(len(record.headers), body)
    for hkey, hvalue in record.headers:
        _encode_bytes(hkey.encode(), body)
        _encode_bytes(hvalue, body)
    out = bytearray()
    _zigzag_varint(len(body), out)
    out += body
    return bytes(out)


def build_batch(
    records: Iterable[SimpleRecord | tuple[Any, ...]],
    base_offset: int = 0,
    *,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    timestamp_type: int = TIMESTAMP_CREATE_TIME,
    transactional: bool = False,
    control: bool = False,
    offset_deltas: Sequence[int] | None = None,
    last_offset_delta: int | None = None,
) -> bytes:
    """Build one valid uncompressed v2 batch; returns its bytes.

    records: SimpleRecord or (key, value, headers, timestamp_ms) tuples; offset deltas default
    to 0, 1, 2, ... (pass `offset_deltas` to leave gaps, as the log cleaner does), and
    `last_offset_delta` defaults to the last record's delta (an empty batch needs it given, as
    a compacted-away batch keeps its last offset). baseTimestamp is the first record's
    timestamp, maxTimestamp the largest. Raises ValueError for an empty batch without
    last_offset_delta.
    """
    recs = [r if isinstance(r, SimpleRecord) else SimpleRecord(key=r[0], value=r[1], headers=tuple(r[2]), timestamp=r[3]) for r in records]
    deltas = list(offset_deltas) if offset_deltas is not None else list(range(len(recs)))
    if len(deltas) != len(recs):
        raise ValueError("offset_deltas must have one entry per record")
    if last_offset_delta is None:
        if not recs:
            raise ValueError("an empty batch needs last_offset_delta")
        last_offset_delta = deltas[-1]
    base_ts = recs[0].timestamp if recs else NO_TIMESTAMP
    max_ts = max((r.timestamp for r in recs), default=NO_TIMESTAMP)
    body = bytearray()
    for rec, delta in zip(recs, deltas):
        body += encode_record(rec, delta, rec.timestamp - base_ts)
    attributes = 0
    if timestamp_type:
        attributes |= TIMESTAMP_TYPE_MASK
    if transactional:
        attributes |= TRANSACTIONAL_FLAG_MASK
    if control:
        attributes |= CONTROL_FLAG_MASK
    out = bytearray(HEADER_SIZE) + body
    HEADER.pack_into(
        out,
        0,
        base_offset,
        len(out) - LOG_OVERHEAD,
        partition_leader_epoch,
        CURRENT_MAGIC,
        0,
        attributes,
        last_offset_delta,
        base_ts,
        max_ts,
        producer_id,
        producer_epoch,
        base_sequence,
        len(recs),
    )
    crc = _crc32c.crc32c(memoryview(out)[ATTRIBUTES_AT:])
    struct.pack_into(">I", out, CRC_AT, crc)
    return bytes(out)


def _read_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    shift = 0
    raw = 0
    while True:
        if pos >= len(buf):
            raise CorruptBatchError("varint runs past the end of the batch", pos)
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise CorruptBatchError("varint too long", pos)
    return (raw >> 1) ^ -(raw & 1), pos


def _read_bytes(buf: Buffer, pos: int) -> tuple[bytes | None, int]:
    n, pos = _read_varint(buf, pos)
    if n < 0:
        return None, pos
    if pos + n > len(buf):
        raise CorruptBatchError("record field runs past the end of the batch", pos)
    return bytes(buf[pos : pos + n]), pos + n


def iter_simple_records(batch: RecordBatch) -> Iterator[tuple[int, SimpleRecord]]:
    """Decode an UNCOMPRESSED batch into (offset, SimpleRecord) pairs (tests and tools only).

    Raises CorruptBatchError for malformed records or a compressed batch (use
    kafkalike.protocol.records for compressed ones).
    """
    if batch.compression_codec != CODEC_NONE:
        raise CorruptBatchError("iter_simple_records handles only uncompressed batches", batch.position)
    buf = batch.records_view()
    pos = 0
    for _ in range(batch.records_count):
        length, pos = _read_varint(buf, pos)
        end = pos + length
        if end > len(buf):
            raise CorruptBatchError("record runs past the end of the batch", batch.position)
        pos += 1  # attributes
        ts_delta, pos = _read_varint(buf, pos)
        off_delta, pos = _read_varint(buf, pos)
        key, pos = _read_bytes(buf, pos)
        value, pos = _read_bytes(buf, pos)
        nh, pos = _read_varint(buf, pos)
        headers = []
        for _h in range(nh):
            hk, pos = _read_bytes(buf, pos)
            hv, pos = _read_bytes(buf, pos)
            headers.append(((hk or b"").decode(), hv))
        pos = end
        yield batch.base_offset + off_delta, SimpleRecord(
            value=value, key=key, headers=tuple(headers), timestamp=batch.base_timestamp + ts_delta
        )


CONTROL_TYPE_ABORT = 0
CONTROL_TYPE_COMMIT = 1
_CONTROL_KEY = struct.Struct(">hh")  # ControlRecordType key: version int16, type int16
_END_TXN_MARKER = struct.Struct(">hi")  # EndTransactionMarker value: version int16, coordinatorEpoch int32


def build_end_txn_marker(producer_id: int, producer_epoch: int, coordinator_epoch: int, committed: bool,
                         timestamp_ms: int, base_offset: int = 0, partition_leader_epoch: int = -1) -> bytes:
    """One control batch holding a transaction marker (Kafka's MemoryRecords.withEndTransactionMarker,
    KIP-98): attributes isTransactional | isControl, baseSequence -1, one record whose key is
    the ControlRecordType (version int16 0, type int16: 0 ABORT, 1 COMMIT) and whose value is
    the EndTransactionMarker (version int16 0, coordinatorEpoch int32). ``timestamp_ms`` in ms."""
    key = _CONTROL_KEY.pack(0, CONTROL_TYPE_COMMIT if committed else CONTROL_TYPE_ABORT)
    value = _END_TXN_MARKER.pack(0, coordinator_epoch)
    return build_batch([SimpleRecord(value=value, key=key, timestamp=timestamp_ms)], base_offset,
                       partition_leader_epoch=partition_leader_epoch, producer_id=producer_id,
                       producer_epoch=producer_epoch, base_sequence=NO_SEQUENCE, transactional=True, control=True)


@attrs.frozen
class EndTxnMarker:
    """A decoded transaction marker: control type (0 ABORT, 1 COMMIT), coordinator epoch (-1
    when the record carries no EndTransactionMarker value)."""

    control_type: int
    coordinator_epoch: int

    @property
    def committed(self) -> bool:
        return self.control_type == CONTROL_TYPE_COMMIT


def read_end_txn_marker(batch: RecordBatch) -> EndTxnMarker | None:
    """The marker in a control batch (its first record; Kafka's ControlRecordType.parse and
    EndTransactionMarker.deserialize), or None when the control record is not a transaction
    marker (an unknown type, e.g. a KRaft control record). Control batches are never
    compressed. Raises CorruptBatchError when the record does not frame."""
    if not batch.is_control or batch.records_count < 1:
        return None
    buf = batch.records_view()
    _length, pos = _read_varint(buf, 0)
    pos += 1  # attributes
    _ts, pos = _read_varint(buf, pos)
    _off, pos = _read_varint(buf, pos)
    key, pos = _read_bytes(buf, pos)
    value, pos = _read_bytes(buf, pos)
    if key is None or len(key) < 4:
        raise CorruptBatchError("control record key shorter than 4 bytes", batch.position)
    _version, control_type = _CONTROL_KEY.unpack_from(key)
    if control_type not in (CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT):
        return None
    coordinator_epoch = -1
    if value is not None and len(value) >= 6:
        coordinator_epoch = _END_TXN_MARKER.unpack_from(value)[1]
    return EndTxnMarker(control_type, coordinator_epoch)
