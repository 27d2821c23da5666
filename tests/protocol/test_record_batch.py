"""Tests for kafkalike.protocol.record_batch: header view, patching, iteration errors, builder."""

from __future__ import annotations

import struct

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.protocol import record_batch as rb
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.record_batch import (
    BadBatchLengthError,
    BadMagicError,
    CorruptBatchError,
    CrcMismatchError,
    RecordBatch,
    SimpleRecord,
    TruncatedBatchError,
    UnsupportedMagicError,
    build_batch,
    iter_batches,
    iter_simple_records,
)

_bytes_or_none = st.one_of(st.none(), st.binary(max_size=40))
_records = st.lists(
    st.builds(
        SimpleRecord,
        value=_bytes_or_none,
        key=_bytes_or_none,
        headers=st.lists(st.tuples(st.text(max_size=5), _bytes_or_none), max_size=2).map(tuple),
        timestamp=st.integers(min_value=0, max_value=2**41),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(records=_records, base_offset=st.integers(0, 2**40), epoch=st.integers(-1, 2**31 - 1))
def test_build_then_parse_round_trips(records: list[SimpleRecord], base_offset: int, epoch: int) -> None:
    """A built batch parses back to the same header fields and records."""
    data = build_batch(records, base_offset, partition_leader_epoch=epoch, producer_id=7, producer_epoch=1, base_sequence=3)
    batches = list(iter_batches(data))
    assert len(batches) == 1
    b = batches[0]
    assert b.base_offset == base_offset
    assert b.partition_leader_epoch == epoch
    assert b.magic == 2
    assert b.size_in_bytes == len(data)
    assert b.records_count == len(records)
    assert b.last_offset == base_offset + len(records) - 1
    assert b.max_timestamp == max(r.timestamp for r in records)
    assert b.base_timestamp == records[0].timestamp
    assert (b.producer_id, b.producer_epoch, b.base_sequence) == (7, 1, 3)
    assert b.compression_codec == 0 and not b.is_control and not b.is_transactional
    decoded = list(iter_simple_records(b))
    assert [o for o, _ in decoded] == list(range(base_offset, base_offset + len(records)))
    assert [r for _, r in decoded] == records


@settings(max_examples=60, deadline=None)
@given(records=_records, data=st.data())
def test_crc_mismatch_detected_at_any_covered_byte(records: list[SimpleRecord], data: st.DataObject) -> None:
    """Flipping any bit from attributes to the end of the batch is reported as a CRC mismatch."""
    buf = bytearray(build_batch(records))
    i = data.draw(st.integers(rb.ATTRIBUTES_AT, len(buf) - 1))
    bit = data.draw(st.integers(0, 7))
    buf[i] ^= 1 << bit
    with pytest.raises(CrcMismatchError) as info:
        list(iter_batches(buf))
    assert info.value.position == 0
    assert info.value.error_code == ErrorCode.corrupt_message


def test_every_byte_change_is_detected_somewhere() -> None:
    """Any single-byte change in a batch makes iteration fail or changes only the uncovered fields."""
    good = build_batch([SimpleRecord(b"v", b"k", timestamp=5)] * 3)
    for i in range(len(good)):
        buf = bytearray(good)
        buf[i] ^= 0xFF
        try:
            [b] = list(iter_batches(buf))
        except (CorruptBatchError, TruncatedBatchError):
            continue
        # Only baseOffset and partitionLeaderEpoch are outside the CRC.
        assert i < rb.BATCH_LENGTH_AT or rb.PARTITION_LEADER_EPOCH_AT <= i < rb.MAGIC_AT


def test_patching_offset_and_epoch_keeps_crc_valid() -> None:
    """set_base_offset/set_partition_leader_epoch patch in place and the CRC still validates."""
    buf = bytearray(build_batch([SimpleRecord(b"a"), SimpleRecord(b"b")]))
    b = RecordBatch(buf)
    b.set_base_offset(1234)
    b.set_partition_leader_epoch(9)
    [again] = list(iter_batches(buf))
    assert (again.base_offset, again.partition_leader_epoch, again.last_offset) == (1234, 9, 1235)
    assert again.is_valid()


def test_several_batches_iterate_in_order_with_positions() -> None:
    """Batches back to back in one buffer are yielded in order with their byte positions."""
    parts = [build_batch([SimpleRecord(bytes([i]))] * (i + 1), base_offset=i * 10) for i in range(4)]
    buf = b"".join(parts)
    got = list(iter_batches(buf))
    assert [b.base_offset for b in got] == [0, 10, 20, 30]
    positions = [0]
    for p in parts[:-1]:
        positions.append(positions[-1] + len(p))
    assert [b.position for b in got] == positions


def test_truncated_tail_is_distinguished_from_corruption() -> None:
    """Cutting the last batch anywhere gives TruncatedBatchError at that batch's start."""
    first = build_batch([SimpleRecord(b"x")])
    second = build_batch([SimpleRecord(b"y" * 30)], base_offset=1)
    whole = first + second
    for cut in range(len(first) + 1, len(whole)):
        it = iter_batches(whole[:cut])
        assert next(it).base_offset == 0
        with pytest.raises(TruncatedBatchError) as info:
            next(it)
        assert info.value.position == len(first)
        assert not isinstance(info.value, CorruptBatchError)


def test_bad_length_is_corrupt_not_truncated() -> None:
    """A batchLength below 49 (e.g. zero-filled tail) is a BadBatchLengthError at its position."""
    good = build_batch([SimpleRecord(b"x")])
    with pytest.raises(BadBatchLengthError) as info:
        list(iter_batches(good + bytes(64)))
    assert info.value.position == len(good)


def test_max_batch_bytes_is_enforced() -> None:
    """A batch larger than max_batch_bytes is refused as a bad length."""
    good = build_batch([SimpleRecord(b"x" * 100)])
    with pytest.raises(BadBatchLengthError, match=r"above the maximum 50"):
        list(iter_batches(good, max_batch_bytes=50))


@pytest.mark.parametrize("magic", [0, 1])
def test_legacy_magic_refused_with_typed_error(magic: int) -> None:
    """Magic 0/1 message sets raise UnsupportedMagicError carrying CORRUPT_MESSAGE."""
    buf = bytearray(build_batch([SimpleRecord(b"x")]))
    buf[rb.MAGIC_AT] = magic
    with pytest.raises(UnsupportedMagicError, match=r"^unsupported record batch magic \d") as info:
        list(iter_batches(buf))
    assert info.value.magic == magic
    assert info.value.error_code == ErrorCode.corrupt_message


def test_unknown_magic_is_bad_magic() -> None:
    """A magic byte of 7 is BadMagicError."""
    buf = bytearray(build_batch([SimpleRecord(b"x")]))
    buf[rb.MAGIC_AT] = 7
    with pytest.raises(BadMagicError):
        list(iter_batches(buf))


def test_crc_is_crc32c_over_attributes_to_end() -> None:
    """The stored CRC equals crc32c of bytes 21..end, as the Kafka protocol guide states."""
    data = build_batch([SimpleRecord(b"hello", b"k", timestamp=1)])
    assert struct.unpack_from(">I", data, rb.CRC_AT)[0] == crc32c.crc32c(data[21:])


def test_valid_prefix_length_reports_position_and_error() -> None:
    """valid_prefix_length returns where valid data ends and the error found there."""
    a = build_batch([SimpleRecord(b"x")])
    assert rb.valid_prefix_length(a + a) == (2 * len(a), None)
    pos, err = rb.valid_prefix_length(a + a[:10])
    assert pos == len(a) and isinstance(err, TruncatedBatchError)


def test_attribute_flags_are_decoded() -> None:
    """Timestamp type, transactional and control flags come from attributes bits 3-5."""
    data = build_batch([SimpleRecord(b"x")], timestamp_type=1, transactional=True, control=True)
    [b] = list(iter_batches(data))
    assert b.timestamp_type == 1 and b.is_transactional and b.is_control
    assert "LogAppendTime" in b.explain()


def test_empty_batch_keeps_last_offset_delta() -> None:
    """An empty batch (as left by compaction) carries its lastOffsetDelta."""
    data = build_batch([], base_offset=10, last_offset_delta=4)
    [b] = list(iter_batches(data))
    assert b.records_count == 0 and b.last_offset == 14
