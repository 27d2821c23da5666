"""Tests for message.timestamp.type=LogAppendTime in UnifiedLog: the leader stamps, followers copy."""

from __future__ import annotations

from pathlib import Path

from kafkalike.protocol import record_batch as rb
from kafkalike.protocol.record_batch import SimpleRecord, build_batch, iter_batches
from kafkalike.protocol.records import CODEC_GZIP, build_records_batch, decode_batches
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog

from storage_helpers import FakeClock

LOG_APPEND_TIME = LogConfig(message_timestamp_type="LogAppendTime", segment_bytes=1 << 20)
CREATE_TS = 1_600_000_000_000


def _producer_batches() -> bytearray:
    """Two batches as a producer sends them (CreateTime, offsets 0, no epoch), one gzip."""
    data = bytearray(build_batch([SimpleRecord(b"a", timestamp=CREATE_TS), SimpleRecord(b"b", timestamp=CREATE_TS + 5)]))
    data += build_records_batch([(b"k", b"c", (), CREATE_TS + 9)], compression=CODEC_GZIP)
    return data


def test_leader_append_stamps_log_append_time_and_recomputes_the_crc(tmp_path: Path) -> None:
    """A leader's append sets maxTimestamp to its clock and the timestamp-type bit, with a valid CRC."""
    clock = FakeClock(1_700_000_000_123)
    log = UnifiedLog.open(tmp_path / "t-0", LOG_APPEND_TIME, clock=clock)
    info = log.append(_producer_batches(), leader_epoch=2)
    assert info.log_append_time_ms == clock.now and info.max_timestamp == clock.now
    stored = read_slices(log.read(0, 1 << 20))
    batches = list(iter_batches(stored))  # verifies every CRC
    assert [b.timestamp_type for b in batches] == [rb.TIMESTAMP_LOG_APPEND_TIME] * 2
    assert [b.max_timestamp for b in batches] == [clock.now] * 2
    assert [r.timestamp for b in decode_batches(stored) for r in b.records] == [clock.now] * 3
    log.close()


def test_follower_append_of_log_append_time_batches_keeps_the_leaders_bytes(tmp_path: Path) -> None:
    """A follower stores the leader's LogAppendTime batches byte for byte, whatever its own clock says."""
    leader = UnifiedLog.open(tmp_path / "leader" / "t-0", LOG_APPEND_TIME, clock=FakeClock(1_700_000_000_000))
    leader.append(_producer_batches(), leader_epoch=4)
    leader.append(_producer_batches(), leader_epoch=4)
    leader_bytes = read_slices(leader.read(0, 1 << 20))
    follower_clock = FakeClock(1_700_000_999_999)
    follower = UnifiedLog.open(tmp_path / "follower" / "t-0", LOG_APPEND_TIME, clock=follower_clock)
    info = follower.append(memoryview(leader_bytes), assign_offsets=False)
    assert read_slices(follower.read(0, 1 << 20)) == leader_bytes
    assert info.log_append_time_ms == -1
    assert info.max_timestamp == 1_700_000_000_000
    assert follower.log_end_offset == leader.log_end_offset == 6
    assert follower.leader_epoch_cache.entries == leader.leader_epoch_cache.entries == [(4, 0)]
    leader.close()
    follower.close()
