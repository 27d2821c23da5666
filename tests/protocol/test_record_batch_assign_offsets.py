"""Tests for record_batch.assign_offsets: the single-pass walk equals the per-batch view + patch."""

from __future__ import annotations

import struct

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from kafkalike.protocol import record_batch as rb
from kafkalike.protocol.errors import CorruptRecordsError, ErrorCode, ProtocolError
from kafkalike.protocol.record_batch import (
    CorruptBatchError,
    CrcMismatchError,
    RecordBatchError,
    SimpleRecord,
    TruncatedBatchError,
    assign_offsets,
    build_batch,
    iter_batches,
)
from kafkalike.protocol.records import build_records_batch, decode_batches

_INT64 = struct.Struct(">q")
_INT16 = struct.Struct(">h")
_UINT32 = struct.Struct(">I")


def per_batch_reference(
    buf: bytearray, next_offset: int, leader_epoch: int, log_append_time_ms: int | None
) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int]], int]:
    """The walk as it was done before assign_offsets(): a RecordBatch view per batch, then patch calls.

    This is UnifiedLog.append's old leader loop (iter_batches, negative-delta check,
    set_base_offset, set_partition_leader_epoch, LogAppendTime rewrite with a new CRC).
    Returns (batch metas, kept epochs, records count).
    """
    offset = next_offset
    metas: list[tuple[int, int, int, int]] = []
    epochs: list[tuple[int, int]] = []
    count = 0
    for b in iter_batches(buf):
        if b.last_offset_delta < 0:
            raise CorruptBatchError(f"negative lastOffsetDelta {b.last_offset_delta}", b.position)
        b.set_base_offset(offset)
        if leader_epoch >= 0:
            b.set_partition_leader_epoch(leader_epoch)
        elif b.partition_leader_epoch >= 0:
            epochs.append((b.partition_leader_epoch, b.base_offset))
        if log_append_time_ms is not None:
            _INT64.pack_into(buf, b.position + rb.MAX_TIMESTAMP_AT, log_append_time_ms)
            _INT16.pack_into(buf, b.position + rb.ATTRIBUTES_AT, b.attributes | rb.TIMESTAMP_TYPE_MASK)
            crc = rb._crc32c.crc32c(memoryview(buf)[b.position + rb.ATTRIBUTES_AT : b.end_position])
            _UINT32.pack_into(buf, b.position + rb.CRC_AT, crc)
            b.max_timestamp = log_append_time_ms
        metas.append((b.position, b.size_in_bytes, b.last_offset, b.max_timestamp))
        count += b.records_count
        offset = b.last_offset + 1
    return metas, epochs, count


_record = st.builds(
    SimpleRecord,
    value=st.one_of(st.none(), st.binary(max_size=30)),
    key=st.one_of(st.none(), st.binary(max_size=8)),
    timestamp=st.integers(0, 2**41),
)


@st.composite
def _batch(draw: st.DrawFn) -> bytes:
    """One valid v2 batch: uncompressed or compressed, with or without an epoch / producer / gaps."""
    records = draw(st.lists(_record, min_size=1, max_size=5))
    epoch = draw(st.integers(-1, 50))
    if draw(st.booleans()):
        return build_records_batch(
            [(r.key, r.value, (), r.timestamp) for r in records],
            compression=draw(st.integers(0, 4)),
            partition_leader_epoch=epoch,
            producer_id=draw(st.sampled_from([-1, 7])),
        )
    gap = draw(st.integers(0, 3))
    return build_batch(
        records,
        base_offset=draw(st.integers(0, 2**40)),
        partition_leader_epoch=epoch,
        offset_deltas=[i * (gap + 1) for i in range(len(records))],
        timestamp_type=draw(st.integers(0, 1)),
    )


@st.composite
def _damage(draw: st.DrawFn, data: bytes) -> bytearray:
    """`data` unchanged, or with one kind of damage anywhere in it."""
    buf = bytearray(data)
    kinds = ["none", "flip", "crc", "cut", "legacy_magic", "bad_magic", "length", "delta", "tail"]
    kind = kinds[draw(st.integers(0, len(kinds) - 1))]
    batches = list(iter_batches(bytes(buf)))
    at = draw(st.sampled_from([b.position for b in batches]))
    if kind == "flip":
        i = draw(st.integers(0, len(buf) - 1))
        buf[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "crc":  # a bit the CRC covers, in one batch
        b = next(b for b in batches if b.position == at)
        buf[draw(st.integers(at + rb.ATTRIBUTES_AT, b.end_position - 1))] ^= 1 << draw(st.integers(0, 7))
    elif kind == "cut":
        del buf[draw(st.integers(0, len(buf) - 1)):]
    elif kind == "legacy_magic":
        buf[at + rb.MAGIC_AT] = draw(st.integers(0, 1))
    elif kind == "bad_magic":
        buf[at + rb.MAGIC_AT] = draw(st.integers(3, 255))
    elif kind == "length":
        struct.pack_into(">i", buf, at + rb.BATCH_LENGTH_AT, draw(st.sampled_from([-1, 0, 13, 14, 48, 2**31 - 1])))
    elif kind == "delta":  # a negative lastOffsetDelta with a CRC that matches it
        struct.pack_into(">i", buf, at + rb.LAST_OFFSET_DELTA_AT, draw(st.integers(-(2**31), -1)))
        end = at + struct.unpack_from(">i", buf, at + rb.BATCH_LENGTH_AT)[0] + rb.LOG_OVERHEAD
        _UINT32.pack_into(buf, at + rb.CRC_AT, rb._crc32c.crc32c(bytes(buf[at + rb.ATTRIBUTES_AT : end])))
    elif kind == "tail":
        buf += bytes(draw(st.integers(1, 70)))
    return buf


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(_batch(), min_size=1, max_size=6),
    data=st.data(),
    next_offset=st.integers(0, 2**50),
    leader_epoch=st.integers(-1, 2**31 - 1),
    log_append_time_ms=st.one_of(st.none(), st.integers(0, 2**42)),
)
def test_single_pass_walk_equals_per_batch_views_and_rejects_the_same_inputs(
    batches: list[bytes], data: st.DataObject, next_offset: int, leader_epoch: int, log_append_time_ms: int | None
) -> None:
    """On random (possibly damaged) batch sequences, assign_offsets patches the same bytes, reports the same batches,
    and raises the same error at the same byte."""
    original = data.draw(_damage(b"".join(batches)))
    expected_buf, got_buf = bytearray(original), bytearray(original)
    try:
        expected = per_batch_reference(expected_buf, next_offset, leader_epoch, log_append_time_ms)
        expected_error = None
    except RecordBatchError as exc:
        expected, expected_error = None, exc
    event(type(expected_error).__name__ if expected_error is not None else "valid")
    if expected_error is not None:
        with pytest.raises(type(expected_error)) as info:
            assign_offsets(got_buf, next_offset, leader_epoch, log_append_time_ms=log_append_time_ms)
        assert str(info.value) == str(expected_error)
        assert info.value.position == expected_error.position
        assert got_buf == expected_buf  # the batches before the bad one are patched alike
        return
    assert expected is not None
    metas, epochs, count = expected
    got = assign_offsets(got_buf, next_offset, leader_epoch, log_append_time_ms=log_append_time_ms)
    assert got_buf == expected_buf
    assert got.batches == metas and got.epochs == epochs and got.records_count == count
    if not metas:  # cut at byte 0
        assert (got.first_offset, got.last_offset, got.next_offset) == (-1, -1, next_offset)
        return
    assert (got.first_offset, got.last_offset, got.next_offset) == (next_offset, metas[-1][2], metas[-1][2] + 1)
    assert got.valid_bytes == len(original) and got.max_batch_size == max(m[1] for m in metas)
    max_ts = max(m[3] for m in metas)
    assert got.max_timestamp == max_ts
    assert got.offset_of_max_timestamp == next(m[2] for m in metas if m[3] == max_ts)
    list(iter_batches(got_buf))  # every CRC still valid after patching


def test_patched_batches_decode_with_the_assigned_offsets_and_log_append_time() -> None:
    """After the walk, records decode at consecutive offsets with the epoch and LogAppendTime set."""
    buf = bytearray(build_records_batch([(b"k", b"a", (), 5), (b"k", b"b", (), 6)], compression=1))
    buf += build_batch([SimpleRecord(b"c", timestamp=7)])
    result = assign_offsets(buf, 100, 9, log_append_time_ms=123_456)
    decoded = decode_batches(buf)
    assert [r.offset for b in decoded for r in b.records] == [100, 101, 102]
    assert [r.timestamp for b in decoded for r in b.records] == [123_456] * 3
    assert {b.partition_leader_epoch for b in decoded} == {9}
    assert (result.next_offset, result.records_count, len(result.batches)) == (103, 3, 2)


def test_empty_record_set_assigns_nothing() -> None:
    """An empty buffer gives no batches, first/last offset -1 and the same next offset."""
    result = assign_offsets(bytearray(), 42, 3)
    assert (result.first_offset, result.last_offset, result.next_offset, result.batches) == (-1, -1, 42, [])


def test_read_only_buffer_is_refused_with_a_type_error() -> None:
    """The walk patches in place, so bytes (read-only) raise TypeError before anything is read."""
    with pytest.raises(TypeError, match=r"^assign_offsets\(\) patches in place"):
        assign_offsets(build_batch([SimpleRecord(b"x")]), 0)


def test_crc_is_checked_before_anything_is_patched() -> None:
    """A CRC mismatch in the only batch raises CrcMismatchError and leaves the buffer untouched."""
    buf = bytearray(build_batch([SimpleRecord(b"x")]))
    buf[-1] ^= 1
    before = bytes(buf)
    with pytest.raises(CrcMismatchError):
        assign_offsets(buf, 10, 3)
    assert bytes(buf) == before


def test_batch_errors_are_the_codecs_protocol_errors() -> None:
    """RecordBatchError is a ProtocolError with CORRUPT_MESSAGE; corrupt batches are CorruptRecordsError too."""
    buf = bytearray(build_batch([SimpleRecord(b"x")]))
    buf[-1] ^= 1
    with pytest.raises(ProtocolError) as info:
        assign_offsets(buf, 0)
    assert isinstance(info.value, CorruptRecordsError) and info.value.error_code == ErrorCode.corrupt_message
    truncated = bytearray(build_batch([SimpleRecord(b"x")]))[:-1]
    with pytest.raises(TruncatedBatchError) as cut:
        assign_offsets(truncated, 0)
    assert isinstance(cut.value, ProtocolError) and not isinstance(cut.value, CorruptRecordsError)
