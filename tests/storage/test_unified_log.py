"""Tests for UnifiedLog append/read/roll/truncation/epochs and its on-disk layout."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from kafkalike.protocol.record_batch import SimpleRecord, build_batch, iter_batches, valid_prefix_length
from kafkalike.storage.errors import CorruptRecordError, OffsetOutOfRangeError, RecordTooLargeError, UnexpectedAppendOffsetError
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog

from storage_helpers import FakeClock, batch

SMALL = LogConfig(segment_bytes=1024, index_interval_bytes=128, segment_index_bytes=4096)


def offsets_in(data: bytes) -> list[int]:
    end, _ = valid_prefix_length(data)
    return [b.base_offset for b in iter_batches(data[:end])]


def test_append_assigns_offsets_and_patches_in_place(tmp_path: Path) -> None:
    """append patches baseOffset and partitionLeaderEpoch into the caller's buffer and returns offsets."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    first = batch(3)
    info1 = log.append(first, leader_epoch=5)
    info2 = log.append(batch(2), leader_epoch=5)
    assert (info1.first_offset, info1.last_offset, info1.log_end_offset) == (0, 2, 3)
    assert (info2.first_offset, info2.last_offset, info2.log_end_offset) == (3, 4, 5)
    assert struct.unpack_from(">qii", first, 0)[2] == 5
    [b] = list(iter_batches(first))
    assert b.is_valid()
    assert log.leader_epoch_cache.entries == [(5, 0)]
    log.close()


def test_segment_files_use_kafka_names_and_formats(tmp_path: Path) -> None:
    """Segments roll on segment.bytes into 20-digit .log/.index/.timeindex files in Kafka's formats."""
    log = UnifiedLog.open(tmp_path / "topic-3", SMALL)
    for _ in range(40):
        log.append(batch(2, value=b"x" * 40))
    log.close()
    names = sorted(os.listdir(tmp_path / "topic-3"))
    logs = [n for n in names if n.endswith(".log")]
    assert len(logs) > 3 and all(len(n) == 24 for n in logs)
    assert logs[0] == "00000000000000000000.log"
    for n in logs:
        base = int(n[:20])
        idx = (tmp_path / "topic-3" / (n[:20] + ".index")).read_bytes()
        assert len(idx) % 8 == 0
        data = (tmp_path / "topic-3" / n).read_bytes()
        for i in range(0, len(idx), 8):
            rel, pos = struct.unpack_from(">ii", idx, i)
            [b] = list(iter_batches(data[pos : pos + struct.unpack_from(">i", data, pos + 8)[0] + 12]))
            assert b.last_offset == base + rel
        tidx = (tmp_path / "topic-3" / (n[:20] + ".timeindex")).read_bytes()
        assert len(tidx) % 12 == 0 and len(tidx) >= 12


def test_read_returns_whole_first_batch_even_over_max_bytes(tmp_path: Path) -> None:
    """A read with max_bytes smaller than the first batch still returns that batch whole."""
    log = UnifiedLog.open(tmp_path / "t-0", LogConfig())
    big = batch(1, value=b"y" * 5000)
    log.append(big)
    log.append(batch(1))
    slices = log.read(0, 10)
    data = read_slices(slices)
    assert len(data) == len(big)
    assert offsets_in(data) == [0]


def test_read_respects_max_offset_and_spans_segments(tmp_path: Path) -> None:
    """Reads cross segment boundaries, and stop before the batch holding max_offset."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    for _ in range(30):
        log.append(batch(1, value=b"z" * 100))
    assert len(log.segments) > 2
    data = read_slices(log.read(0, 10**6))
    assert offsets_in(data) == list(range(30))
    assert offsets_in(read_slices(log.read(4, 10**6, max_offset=17))) == list(range(4, 17))
    assert log.read(30, 100) == []
    assert log.read(5, 100, max_offset=5) == []


def test_read_out_of_range_raises_offset_out_of_range(tmp_path: Path) -> None:
    """Reading past the LEO or below the log start offset raises OffsetOutOfRangeError."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    log.append(batch(2))
    with pytest.raises(OffsetOutOfRangeError, match=r"^offset 3 is out of range \[0, 2\]") as info:
        log.read(3, 100)
    assert info.value.error_code == "OFFSET_OUT_OF_RANGE"


def test_corrupt_append_is_refused_and_log_unchanged(tmp_path: Path) -> None:
    """A batch with a bad CRC, a truncated batch or legacy magic is CORRUPT_MESSAGE; nothing is written."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    good = batch(1)
    bad = bytearray(good)
    bad[-1] ^= 1
    for data in (good + bad, good[:-3], bytearray(good[:16]) + b"\x01" + good[17:]):
        with pytest.raises(CorruptRecordError) as info:
            log.append(bytearray(data))
        assert info.value.error_code == "CORRUPT_MESSAGE"
    assert log.log_end_offset == 0 and log.size_in_bytes == 0


def test_oversize_batch_is_message_too_large(tmp_path: Path) -> None:
    """A batch above max.message.bytes raises RecordTooLargeError."""
    log = UnifiedLog.open(tmp_path / "t-0", LogConfig(max_message_bytes=200))
    with pytest.raises(RecordTooLargeError):
        log.append(batch(1, value=b"x" * 300))


def test_follower_append_keeps_offsets_and_rejects_going_back(tmp_path: Path) -> None:
    """assign_offsets=False keeps the leader's offsets and epochs, and refuses offsets below the LEO."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    data = bytearray(build_batch([SimpleRecord(b"a")] * 4, base_offset=0, partition_leader_epoch=3))
    data += build_batch([SimpleRecord(b"b")] * 2, base_offset=4, partition_leader_epoch=4)
    info = log.append(data, assign_offsets=False)
    assert (info.first_offset, info.last_offset) == (0, 5)
    assert log.leader_epoch_cache.entries == [(3, 0), (4, 4)]
    with pytest.raises(UnexpectedAppendOffsetError):
        log.append(bytearray(build_batch([SimpleRecord(b"c")], base_offset=2)), assign_offsets=False)


def test_truncate_to_removes_suffix_and_epochs(tmp_path: Path) -> None:
    """truncate_to drops offsets >= target across segments, trims the epoch cache and clamps the HW."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    for i in range(30):
        log.append(batch(1, value=b"q" * 100), leader_epoch=i // 10)
    log.update_high_watermark(30)
    assert log.truncate_to(15)
    assert log.log_end_offset == 15 and log.high_watermark == 15
    assert log.leader_epoch_cache.entries == [(0, 0), (1, 10)]
    assert offsets_in(read_slices(log.read(0, 10**6))) == list(range(15))
    info = log.append(batch(1), leader_epoch=7)
    assert info.first_offset == 15
    assert log.end_offset_for_epoch(1) == (1, 15)
    assert log.end_offset_for_epoch(7) == (7, 16)
    assert log.end_offset_for_epoch(9) == (-1, -1)


def test_truncate_mid_batch_removes_whole_batch(tmp_path: Path) -> None:
    """Truncating to an offset inside a batch removes that batch; the LEO becomes its base offset."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    log.append(batch(3))
    log.append(batch(3))
    log.truncate_to(4)
    assert log.log_end_offset == 3


def test_truncate_fully_and_start_at(tmp_path: Path) -> None:
    """truncate_fully_and_start_at empties the log and starts it at the given offset."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    for _ in range(10):
        log.append(batch(1, value=b"q" * 200), leader_epoch=1)
    log.truncate_fully_and_start_at(500)
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark) == (500, 500, 500)
    assert log.leader_epoch_cache.entries == []
    assert log.append(batch(1)).first_offset == 500
    assert sorted(p.name for p in (tmp_path / "t-0").glob("*.log")) == ["00000000000000000500.log"]


def test_offset_for_timestamp_finds_first_record_at_or_after(tmp_path: Path) -> None:
    """offset_for_timestamp returns the first record whose timestamp >= the target, or None."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    for i in range(40):
        log.append(bytearray(build_batch([SimpleRecord(b"v" * 50, timestamp=1000 + 10 * i + j) for j in range(2)])))
    assert log.offset_for_timestamp(1000).offset == 0
    assert log.offset_for_timestamp(1201).offset == 41
    found = log.offset_for_timestamp(1205)
    assert (found.offset, found.timestamp) == (42, 1210)
    assert log.offset_for_timestamp(5000) is None
    assert log.offset_for_timestamp(-1).offset == 80
    assert log.offset_for_timestamp(-2).offset == 0
    assert log.offset_for_timestamp(-3).timestamp == 1391


def test_delete_records_before_moves_start_offset(tmp_path: Path) -> None:
    """delete_records_before moves the log start offset (<= HW) and deletes whole segments below it."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    for _ in range(30):
        log.append(batch(1, value=b"q" * 100))
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(10)
    log.update_high_watermark(30)
    segs = len(log.segments)
    assert log.delete_records_before(20) == 20
    assert len(log.segments) < segs
    with pytest.raises(OffsetOutOfRangeError):
        log.read(19, 100)
    assert offsets_in(read_slices(log.read(20, 10**6)))[0] <= 20


def test_flush_messages_policy_moves_recovery_point(tmp_path: Path) -> None:
    """flush.messages=1 fsyncs on every append (recovery point = LEO); default leaves it behind."""
    eager = UnifiedLog.open(tmp_path / "a-0", LogConfig(flush_messages=1))
    lazy = UnifiedLog.open(tmp_path / "b-0", LogConfig())
    for _ in range(3):
        eager.append(batch(2))
        lazy.append(batch(2))
    assert eager.recovery_point == 6
    assert lazy.recovery_point == 0


def test_flush_ms_policy(tmp_path: Path) -> None:
    """flush.ms flushes once enough time has passed since the last flush."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", LogConfig(flush_ms=1000), clock=clock)
    log.append(batch(2))
    assert not log.maybe_flush()
    clock.now += 1001
    assert log.maybe_flush() and log.recovery_point == 2


def test_statistics_snapshot(tmp_path: Path) -> None:
    """statistics() reports offsets, segments and bytes in one frozen object."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    for _ in range(20):
        log.append(batch(1, value=b"q" * 100))
    s = log.statistics()
    assert (s.log_start_offset, s.log_end_offset, s.segments) == (0, 20, len(log.segments))
    assert s.size_bytes == sum(p.stat().st_size for p in (tmp_path / "t-0").glob("*.log"))
    with pytest.raises(AttributeError):
        s.log_end_offset = 3  # type: ignore[misc]


def test_roll_over_stale_index_files_starts_clean(tmp_path: Path) -> None:
    """Leftover index files at a new segment's base offset are reset, so appends after the roll work."""
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    log.append(batch(10))
    (tmp_path / "t-0" / "00000000000000000010.index").write_bytes(struct.pack(">ii", 50, 999) * 3)
    (tmp_path / "t-0" / "00000000000000000010.timeindex").write_bytes(struct.pack(">qi", 10**15, 50) * 2)
    log.roll()
    for _ in range(20):
        log.append(batch(1, value=b"z" * 100))
    assert offsets_in(read_slices(log.read(10, 10**6)))[:3] == [10, 11, 12]
    log.close()
    idx = (tmp_path / "t-0" / "00000000000000000010.index").read_bytes()
    assert all(struct.unpack_from(">ii", idx, i)[0] < 20 for i in range(0, len(idx), 8))


def test_kip101_divergent_follower_truncates_to_leader_epoch_end(tmp_path: Path) -> None:
    """A replica with unreplicated epoch-2 data truncates to the new leader's end offset for epoch 2 (KIP-101), then copies its log."""
    a = UnifiedLog.open(tmp_path / "a" / "t-0", SMALL)  # old leader
    b = UnifiedLog.open(tmp_path / "b" / "t-0", SMALL)  # follower, then new leader
    for _ in range(5):
        data = batch(2)
        a.append(data, leader_epoch=1)
        b.append(bytearray(data), assign_offsets=False)
    for _ in range(3):  # epoch 2: a leads, b never receives these
        a.append(batch(2), leader_epoch=2)
    b.assign_epoch_start_offset(3, b.log_end_offset)  # b becomes leader in epoch 3 at offset 10
    for _ in range(2):
        b.append(batch(1, value=b"new"), leader_epoch=3)
    # a, now a follower, asks b for the end of its latest epoch (2)
    epoch, end = b.end_offset_for_epoch(a.leader_epoch_cache.latest_epoch)  # type: ignore[arg-type]
    assert (epoch, end) == (1, 10)
    a.truncate_to(end)
    assert a.log_end_offset == 10 and a.leader_epoch_cache.entries == [(1, 0)]
    fetched = bytearray(read_slices(b.read(a.log_end_offset, 10**6)))
    a.append(fetched, assign_offsets=False)
    assert read_slices(a.read(0, 10**6)) == read_slices(b.read(0, 10**6))
    assert a.leader_epoch_cache.entries == b.leader_epoch_cache.entries == [(1, 0), (3, 10)]
