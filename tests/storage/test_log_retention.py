"""Retention by time and by size deletes whole non-active segments and moves the log start offset."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkalike.protocol.record_batch import SimpleRecord, build_batch, iter_batches
from kafkalike.storage.batch_codec import iter_records
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.log_manager import LogManager
from kafkalike.storage.checkpoints import TopicPartition
from kafkalike.storage.unified_log import UnifiedLog
from storage_helpers import FakeClock, batch


def _segments(dir: Path) -> list[int]:
    return sorted(int(p.name[:20]) for p in dir.glob("*.log"))


def test_retention_by_time_deletes_old_segments_only(tmp_path: Path) -> None:
    """Segments whose newest timestamp is older than retention.ms go; newer ones and the active one stay."""
    clock = FakeClock(now=1_000_000)
    cfg = LogConfig(segment_bytes=1000, retention_ms=60_000)
    log = UnifiedLog.open(tmp_path / "t-0", cfg, clock=clock)
    for i in range(20):
        log.append(batch(1, value=b"x" * 200, ts=1_000_000 + i * 10_000))
    log.update_high_watermark(log.log_end_offset)
    before = _segments(tmp_path / "t-0")
    clock.now = 1_000_000 + 19 * 10_000 + 1  # newest record is fresh
    deleted = log.delete_old_segments()
    after = _segments(tmp_path / "t-0")
    assert deleted == len(before) - len(after) > 0
    assert log.log_start_offset == after[0]
    for base in after[:-1]:
        seg = next(s for s in log.segments if s.base_offset == base)
        assert clock.now - seg.largest_timestamp <= 60_000
    # everything old: all but the active segment go
    clock.now += 10**9
    log.delete_old_segments()
    assert len(log.segments) == 1 and log.log_start_offset == log.active_segment.base_offset
    assert read_slices(log.read(log.log_start_offset, 10**6))


def test_retention_by_size_keeps_log_under_limit(tmp_path: Path) -> None:
    """retention.bytes deletes the oldest segments while the log stays at or above the limit without them."""
    cfg = LogConfig(segment_bytes=1000, retention_ms=-1, retention_bytes=2500)
    log = UnifiedLog.open(tmp_path / "t-0", cfg)
    for _ in range(40):
        log.append(batch(1, value=b"x" * 200))
    log.update_high_watermark(log.log_end_offset)
    total = log.size_in_bytes
    assert total > 2500
    log.delete_old_segments()
    assert log.size_in_bytes >= 2500 - max(s.size for s in log.segments)
    assert log.size_in_bytes - log.segments[0].size < 2500
    assert log.log_start_offset == log.segments[0].base_offset > 0


def test_retention_never_deletes_above_high_watermark(tmp_path: Path) -> None:
    """Segments not wholly below the high watermark are kept even when expired."""
    clock = FakeClock(now=10**12)
    log = UnifiedLog.open(tmp_path / "t-0", LogConfig(segment_bytes=1000, retention_ms=1), clock=clock)
    for _ in range(20):
        log.append(batch(1, value=b"x" * 200, ts=1))
    assert log.delete_old_segments() == 0


def test_compact_only_policy_ignores_time_and_size(tmp_path: Path) -> None:
    """cleanup.policy=compact never deletes by retention.ms / retention.bytes."""
    clock = FakeClock(now=10**12)
    log = UnifiedLog.open(tmp_path / "t-0", LogConfig(segment_bytes=1000, retention_ms=1, retention_bytes=1, cleanup_policy="compact"),
                          clock=clock)
    for _ in range(20):
        log.append(batch(1, value=b"x" * 200, ts=1))
    log.update_high_watermark(log.log_end_offset)
    assert log.delete_old_segments() == 0


def test_log_manager_cleanup_and_start_offset_checkpoint(tmp_path: Path) -> None:
    """LogManager.cleanup_logs applies retention to every log and checkpoints the moved start offsets."""
    clock = FakeClock(now=10**12)
    mgr = LogManager([tmp_path / "d"], LogConfig(segment_bytes=1000, retention_bytes=1500), clock=clock)
    mgr.startup()
    tp = TopicPartition("t", 0)
    lg = mgr.get_or_create_log(tp)
    for _ in range(20):
        lg.append(batch(1, value=b"x" * 200))
    lg.update_high_watermark(lg.log_end_offset)
    assert mgr.cleanup_logs() > 0
    start = lg.log_start_offset
    lg.delete_records_before(start + 1)  # inside the first remaining segment
    mgr.shutdown()
    text = (tmp_path / "d" / "log-start-offset-checkpoint").read_text()
    assert text == f"0\n1\nt 0 {start + 1}\n"
    mgr = LogManager([tmp_path / "d"], LogConfig(segment_bytes=1000, retention_bytes=1500), clock=clock)
    mgr.startup()
    assert mgr.get_log(tp).log_start_offset == start + 1  # type: ignore[union-attr]
    mgr.shutdown()


def test_log_manager_maintenance_runs_due_tasks_and_compaction(tmp_path: Path) -> None:
    """maintenance() runs retention/checkpoints when their intervals pass; clean_logs() compacts compacted topics."""
    clock = FakeClock(now=10**12)
    configs = {"c": LogConfig(segment_bytes=600, cleanup_policy="compact"), "d": LogConfig(segment_bytes=1000, retention_bytes=1500)}
    mgr = LogManager([tmp_path / "d"], topic_config=configs.get, clock=clock)
    mgr.startup()
    d = mgr.get_or_create_log(TopicPartition("d", 0))
    c = mgr.get_or_create_log(TopicPartition("c", 0))
    for i in range(20):
        d.append(batch(1, value=b"x" * 200))
        c.append(bytearray(build_batch([SimpleRecord(b"v%d" % i, b"k%d" % (i % 3), timestamp=clock.now)])))
    for lg in (c, d):
        lg.roll()
        lg.update_high_watermark(lg.log_end_offset)
    first = mgr.maintenance()
    assert first["segments_deleted"] > 0 and first["checkpoints"] == 0
    assert mgr.maintenance() == {"segments_deleted": 0, "logs_flushed": 0, "checkpoints": 0}
    clock.now += 60_001
    assert mgr.maintenance()["checkpoints"] == 2
    assert (tmp_path / "d" / "recovery-point-offset-checkpoint").exists()
    steps = mgr.clean_logs()
    n = 0
    with pytest.raises(StopIteration) as stop:
        while True:
            next(steps)
            n += 1
    assert stop.value.value == 1
    data = read_slices(c.read(c.log_start_offset, 10**6))
    kept = [(r.offset, r.key) for b in iter_batches(data) for r in iter_records(b)]
    assert kept == [(17, b"k2"), (18, b"k0"), (19, b"k1")]  # the latest value of each key, offsets kept
    assert "c 0" in (tmp_path / "d" / "cleaner-offset-checkpoint").read_text()
    mgr.shutdown()
