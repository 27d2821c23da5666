"""Tests for kafkalike.storage.log_validator (Kafka's LogValidator as a framing walk): exact
error codes per malformed case, record_errors for keyless records on compacted topics, the
leader's UnifiedLog.append refusing without storing anything while a follower's append is
not validated, and hypothesis properties: valid batches always pass (and a real client,
aiokafka, reads them), and any single-byte mutation (CRC recomputed) is refused with a typed
error exactly when Kafka's own record reading (transcribed here from DefaultRecord.readFrom
and LogValidator.validateBatch) refuses it."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkalike.protocol import records as codecs
from kafkalike.protocol.record_batch import (ATTRIBUTES_AT, CRC_AT, HEADER, HEADER_SIZE, LAST_OFFSET_DELTA_AT, LOG_OVERHEAD,
                                             RECORDS_COUNT_AT, RecordBatchError, SimpleRecord, assign_offsets,
                                             build_batch)
from kafkalike.storage.errors import CorruptRecordError, InvalidRecordError
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.log_validator import LogValidator, RecordValidationError, validate_records
from kafkalike.storage.unified_log import UnifiedLog

TS = 1_700_000_000_000


def _recrc(data: bytearray) -> bytearray:
    struct.pack_into(">I", data, CRC_AT, crc32c.crc32c(memoryview(data)[ATTRIBUTES_AT:]))
    return data


def _compressed(batch: bytes, codec: int) -> bytearray:
    """`batch` with its records compressed by `codec` (length, attributes and CRC redone)."""
    data = bytearray(batch[:HEADER_SIZE]) + codecs.compress(codec, batch[HEADER_SIZE:])
    struct.pack_into(">i", data, 8, len(data) - LOG_OVERHEAD)
    struct.pack_into(">h", data, ATTRIBUTES_AT, codec)
    return _recrc(data)


def _three(key: bytes | None = b"k") -> bytearray:
    return bytearray(build_batch([SimpleRecord(value=b"v%d" % i, key=key, timestamp=TS + i) for i in range(3)]))


def _with_i32(batch: bytearray, at: int, value: int) -> bytearray:
    struct.pack_into(">i", batch, at, value)
    return _recrc(batch)


def _with_codec(batch: bytearray, codec: int) -> bytearray:
    """`batch` (uncompressed) claiming `codec` in its attributes, CRC redone."""
    struct.pack_into(">h", batch, ATTRIBUTES_AT, codec)
    return _recrc(batch)


def _raw_record_batch(body: bytes, count: int) -> bytearray:
    """A batch header (count records, lastOffsetDelta count-1) over a hand-encoded records body."""
    data = bytearray(build_batch([SimpleRecord(value=b"x")]))[:HEADER_SIZE] + body
    struct.pack_into(">i", data, 8, len(data) - LOG_OVERHEAD)
    struct.pack_into(">i", data, LAST_OFFSET_DELTA_AT, count - 1)
    struct.pack_into(">i", data, RECORDS_COUNT_AT, count)
    return _recrc(data)


def _record(fields: bytes) -> bytes:
    """One record: zigzag length byte + fields (attributes, ts delta, offset delta, ...)."""
    assert len(fields) < 64
    return bytes([len(fields) << 1]) + fields


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_valid_batches_pass_for_every_codec(codec: int) -> None:
    """A producer's batch with keys, null values and headers passes, uncompressed or with any codec."""
    recs = [SimpleRecord(value=None if i % 3 == 0 else b"x" * i, key=b"k%d" % i,
                         headers=(("h", b"1"), ("n", None)) if i % 2 else (), timestamp=TS + 7 * i) for i in range(50)]
    data = build_batch(recs)
    LogValidator(compacted_topic=True).validate(data if codec == 0 else _compressed(data, codec))


@pytest.mark.parametrize(("name", "make", "error"), [
    ("count -1", lambda: _with_i32(_three(), RECORDS_COUNT_AT, -1), InvalidRecordError),
    ("count 0", lambda: _with_i32(_three(), RECORDS_COUNT_AT, 0), InvalidRecordError),
    ("count 10^6", lambda: _with_i32(_three(), RECORDS_COUNT_AT, 10**6), InvalidRecordError),
    ("count and lastOffsetDelta 10^6",
     lambda: _with_i32(_with_i32(_three(), RECORDS_COUNT_AT, 10**6), LAST_OFFSET_DELTA_AT, 10**6 - 1),
     InvalidRecordError),
    ("negative lastOffsetDelta", lambda: _with_i32(_three(), LAST_OFFSET_DELTA_AT, -1), InvalidRecordError),
    ("producer id without a sequence",
     lambda: bytearray(build_batch([SimpleRecord(value=b"x")], producer_id=7, producer_epoch=0)), InvalidRecordError),
    ("control batch", lambda: bytearray(build_batch([SimpleRecord(value=b"x")], control=True)), InvalidRecordError),
    ("offset deltas 0, 2, 1",
     lambda: bytearray(build_batch([SimpleRecord(value=b"x")] * 3, offset_deltas=[0, 2, 1])), InvalidRecordError),
    ("offset deltas 1, 2", lambda: bytearray(build_batch([SimpleRecord(value=b"x")] * 2, offset_deltas=[1, 2],
                                                         last_offset_delta=1)), InvalidRecordError),
    ("record length 0", lambda: _raw_record_batch(b"\x00", 1), InvalidRecordError),
    ("record length negative", lambda: _raw_record_batch(b"\x01" + b"\x00" * 6, 1), InvalidRecordError),
    ("key longer than the record", lambda: _raw_record_batch(_record(b"\x00\x00\x00\x14\x00\x00"), 1),
     InvalidRecordError),
    ("fields shorter than the record", lambda: _raw_record_batch(_record(b"\x00\x00\x00\x01\x01\x00\x00"), 1),
     InvalidRecordError),
    ("negative header count", lambda: _raw_record_batch(_record(b"\x00\x00\x00\x01\x01\x01"), 1), InvalidRecordError),
    ("null header key", lambda: _raw_record_batch(_record(b"\x00\x00\x00\x01\x01\x02\x01\x01"), 1),
     InvalidRecordError),
    ("varint longer than 5 bytes", lambda: _raw_record_batch(_record(b"\x00\x00\x00\xff\xff\xff\xff\xff\x01\x01\x00"),
                                                             1), InvalidRecordError),
    ("bytes after the last record", lambda: _raw_record_batch(_record(b"\x00\x00\x00\x01\x01\x00") + b"\x00", 1),
     InvalidRecordError),
    ("gzip flag on plain records", lambda: _with_codec(_three(), 1), CorruptRecordError),
    ("snappy flag on plain records", lambda: _with_codec(bytearray(build_batch([SimpleRecord(value=b"\xff" * 30)])), 2),
     CorruptRecordError),
    ("lz4 flag on plain records", lambda: _with_codec(_three(), 3), CorruptRecordError),
    ("zstd flag on plain records", lambda: _with_codec(_three(), 4), CorruptRecordError),
    ("codec 7", lambda: _with_codec(_three(), 7), CorruptRecordError),
    ("gzip of a false count", lambda: _with_i32(_compressed(_three(), 1), RECORDS_COUNT_AT, 4), InvalidRecordError),
])
def test_malformed_batch_is_refused_with_kafkas_error(name: str, make, error: type) -> None:  # type: ignore[no-untyped-def]
    """Each malformed case raises the typed error whose code Kafka answers (INVALID_RECORD or CORRUPT_MESSAGE)."""
    data = make()
    with pytest.raises(error) as info:
        validate_records(data)
    assert type(info.value) in (error, RecordValidationError) or issubclass(type(info.value), error)
    if error is InvalidRecordError:
        assert not isinstance(info.value, CorruptRecordError)


def test_keyless_records_on_a_compacted_topic_list_their_batch_indexes() -> None:
    """A compacted topic refuses keyless records with INVALID_RECORD naming each one's index; others accept them."""
    data = build_batch([SimpleRecord(value=b"a", key=b"k"), SimpleRecord(value=b"b"), SimpleRecord(value=b"c"),
                        SimpleRecord(value=None, key=b"tombstone")])
    validate_records(data, compacted_topic=False)
    with pytest.raises(RecordValidationError) as info:
        validate_records(data, compacted_topic=True)
    assert [e.batch_index for e in info.value.record_errors] == [1, 2]
    assert info.value.error_code == "INVALID_RECORD"


def test_leader_append_refuses_without_storing_and_follower_append_is_not_validated(tmp_path: Path) -> None:
    """UnifiedLog.append as leader refuses a false count and keeps its LEO; a follower's append
    stores the leader's bytes unvalidated, as Kafka's appendAsFollower does."""
    log = UnifiedLog.open(tmp_path / "t-0", LogConfig())
    try:
        log.append(_three())
        with pytest.raises(InvalidRecordError):
            log.append(_with_i32(_three(), RECORDS_COUNT_AT, 10**6))
        assert log.log_end_offset == 3
        info = log.append(_three())
        assert (info.first_offset, log.log_end_offset) == (3, 6)
    finally:
        log.close()
    follower = UnifiedLog.open(tmp_path / "t-1", LogConfig())
    try:
        follower.append(_with_i32(_three(), RECORDS_COUNT_AT, 10**6), assign_offsets=False)
        assert follower.log_end_offset == 3
    finally:
        follower.close()


# ------------------------------------------------------------------------------ properties

_records = st.lists(
    st.builds(SimpleRecord,
              value=st.one_of(st.none(), st.binary(max_size=40)),
              key=st.one_of(st.none(), st.binary(max_size=10)),
              headers=st.lists(st.tuples(st.text(max_size=5), st.one_of(st.none(), st.binary(max_size=5))),
                               max_size=3).map(tuple),
              timestamp=st.integers(min_value=0, max_value=2**42)),
    min_size=1, max_size=12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=_records, codec=st.sampled_from([0, 1, 2, 3, 4]))
def test_batches_built_by_build_batch_always_pass(recs: list[SimpleRecord], codec: int) -> None:
    """Any batch build_batch makes (any keys, values, headers, timestamps; any codec) passes."""
    data = build_batch(recs)
    data = bytes(data if codec == 0 else _compressed(data, codec))
    validate_records(data)
    from aiokafka.record.default_records import DefaultRecordBatch

    assert [r.offset for r in DefaultRecordBatch(data)] == list(range(len(recs)))  # a real client reads it too


def _java_varint(buf: bytes, pos: int, max_bytes: int) -> tuple[int, int]:
    """Java's ByteUtils.readVarint (max_bytes 5) / readVarlong (10): IndexError on underflow,
    ValueError when too long, the value wrapped to 32 / 64 bits."""
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift >= 7 * max_bytes:
            raise ValueError("varint too long")
    value &= (1 << (32 if max_bytes == 5 else 64)) - 1
    return (value >> 1) ^ -(value & 1), pos


def _kafka_accepts(data: bytes) -> bool:
    """Whether Kafka's leader takes this (header- and CRC-valid) batch from a client: a plain
    transcription of LogValidator.validateBatch and DefaultRecord.readFrom (record by record,
    building nothing), plus kafkalike's one addition, offsetDelta == record index."""
    (_b, _l, _e, _m, _c, attributes, last_delta, _t0, _t1, producer_id, _pe, sequence, count) = HEADER.unpack_from(data)
    if last_delta + 1 <= 0 or count <= 0 or last_delta + 1 != count or attributes & 0x20:
        return False
    if producer_id >= 0 and sequence < 0:
        return False
    body = data[HEADER_SIZE:]
    if attributes & 0x07:
        try:
            body = codecs.decompress(attributes & 0x07, body)
        except Exception:
            return False
    pos = 0
    try:
        for index in range(count):
            size, pos = _java_varint(body, pos, 5)
            if len(body) - pos < size:
                return False
            start = pos
            pos += 1  # attributes: one byte
            _, pos = _java_varint(body, pos, 10)
            delta, pos = _java_varint(body, pos, 5)
            if delta != index:
                return False
            for _ in ("key", "value"):
                n, pos = _java_varint(body, pos, 5)
                pos += max(n, 0)
            headers, pos = _java_varint(body, pos, 5)
            if headers < 0:
                return False
            for _ in range(headers):
                n, pos = _java_varint(body, pos, 5)
                if n < 0:
                    return False
                pos += n
                n, pos = _java_varint(body, pos, 5)
                pos += max(n, 0)
            if pos - start != size:
                return False
    except (IndexError, ValueError):
        return False
    return pos == len(body)


@settings(max_examples=int(os.environ.get("KAFKALIKE_VALIDATOR_EXAMPLES", "400")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(recs=_records, codec=st.sampled_from([0, 0, 0, 1, 2, 3, 4]), where=st.integers(min_value=0),
       byte=st.integers(0, 255))
def test_single_byte_mutation_is_refused_exactly_when_kafka_refuses(recs: list[SimpleRecord], codec: int, where: int,
                                                                    byte: int) -> None:
    """Changing any one byte (CRC recomputed): a batch the header walk takes is refused by the
    validator with a typed error exactly when Kafka's record reading (transcribed above)
    refuses it, and passes otherwise; nothing else is ever raised."""
    data = build_batch(recs)
    data = bytearray(data) if codec == 0 else _compressed(data, codec)
    pos = where % len(data)
    if pos in range(CRC_AT, CRC_AT + 4):
        pos = HEADER_SIZE + (where % (len(data) - HEADER_SIZE))
    data[pos] = byte
    _recrc(data)
    try:
        assign_offsets(data, 0)
    except RecordBatchError:
        return
    if _kafka_accepts(bytes(data)):
        validate_records(data)
    else:
        with pytest.raises((InvalidRecordError, CorruptRecordError)):
            validate_records(data)


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_a_decompression_bomb_is_refused_within_the_limit(codec: int) -> None:
    """A small compressed body that inflates past the limit is refused with CORRUPT_MESSAGE,
    and validating it never holds much more than the limit in memory; under the limit it passes."""
    import tracemalloc

    data = _compressed(build_batch([SimpleRecord(value=b"\0" * (4 << 20), key=b"k")]), codec)
    assert len(data) < (1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptRecordError, match="inflate beyond|does not decompress|too large"):
            validate_records(data, max_decompressed_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if codec in (3, 4):  # decompressed into the bounded buffer (gzip, snappy: the codecs' own 256 MiB guard)
        assert peak < 3 << 20, peak
    validate_records(data, max_decompressed_bytes=8 << 20)
