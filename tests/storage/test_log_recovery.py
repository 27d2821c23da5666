"""Crash recovery, index rebuilds, clean-shutdown fast path, checkpoints and LogManager start-up."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kafkalike.protocol.record_batch import iter_batches
from kafkalike.storage.checkpoints import (
    LeaderEpochCheckpointFile,
    MetaProperties,
    OffsetCheckpointFile,
    TopicPartition,
    check_meta_properties,
    read_meta_properties,
    write_meta_properties,
)
from kafkalike.storage.errors import InconsistentBrokerMetadataError, KafkaStorageError
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.log_manager import LogManager
from kafkalike.storage.unified_log import UnifiedLog
from storage_helpers import batch

SMALL = LogConfig(segment_bytes=2048, index_interval_bytes=100, segment_index_bytes=4096)


def _all_offsets(log: UnifiedLog) -> list[int]:
    if log.log_end_offset == log.log_start_offset:
        return []
    data = read_slices(log.read(log.log_start_offset, 10**9))
    return [o for b in iter_batches(data) for o in range(b.base_offset, b.last_offset + 1)]


def _fill(dir: Path, n: int = 30, size: int = 60) -> list[int]:
    log = UnifiedLog.open(dir, SMALL)
    ends = []
    for i in range(n):
        log.append(batch(2, value=bytes([i % 251]) * size), leader_epoch=i // 10)
        ends.append(log.log_end_offset)
    log.close_handlers()  # no flush, no trim: like kill -9
    return ends


def test_crash_cut_at_every_byte_of_last_batch_keeps_complete_batches(tmp_path: Path) -> None:
    """Cutting the last segment at every byte inside its last batch recovers exactly the complete batches."""
    src = tmp_path / "src" / "t-0"
    _fill(src)
    last_log = sorted(src.glob("*.log"))[-1]
    data = last_log.read_bytes()
    batches = list(iter_batches(data))
    last = batches[-1]
    work = tmp_path / "w" / "t-0"
    shutil.copytree(src, work)
    base = int(last_log.name[:20])
    for cut in range(last.position, last.end_position):
        (work / last_log.name).write_bytes(data[:cut])
        log = UnifiedLog.open(work, SMALL, recovery_point=base, had_clean_shutdown=False)
        assert log.log_end_offset == last.base_offset
        assert log.last_recovery.bytes_truncated == cut - last.position
        assert _all_offsets(log) == list(range(last.base_offset))
        # the log accepts appends right after the recovered tail
        assert log.append(batch(1)).first_offset == last.base_offset
        log.close_handlers()


def test_corrupt_middle_batch_truncates_and_drops_later_segments(tmp_path: Path) -> None:
    """A CRC mismatch in an unflushed segment truncates there and deletes the segments after it."""
    d = tmp_path / "t-0"
    _fill(d, n=40)
    logs = sorted(d.glob("*.log"))
    assert len(logs) >= 3
    victim = logs[-2]
    raw = bytearray(victim.read_bytes())
    second = list(iter_batches(raw))[1]
    raw[second.position + 70] ^= 0xFF
    victim.write_bytes(raw)
    log = UnifiedLog.open(d, SMALL, had_clean_shutdown=False)
    report = log.last_recovery
    assert report.truncated_file == str(victim)
    assert "CRC mismatch" in report.truncation_reason
    assert report.segments_deleted == (str(logs[-1]),)
    assert log.log_end_offset == second.base_offset
    assert not logs[-1].exists()


def test_zero_filled_tail_is_truncated(tmp_path: Path) -> None:
    """Zeros after the last batch (a torn write) are cut off as a corrupt tail."""
    d = tmp_path / "t-0"
    ends = _fill(d, n=5)
    active = sorted(d.glob("*.log"))[-1]
    with open(active, "ab") as f:
        f.write(bytes(4096))
    log = UnifiedLog.open(d, SMALL, had_clean_shutdown=False)
    assert log.log_end_offset == ends[-1]
    assert log.last_recovery.bytes_truncated == 4096


def test_missing_and_corrupt_indexes_are_rebuilt(tmp_path: Path) -> None:
    """A deleted .index and a garbage .timeindex are rebuilt byte for byte on open."""
    d = tmp_path / "t-0"
    log = UnifiedLog.open(d, SMALL)
    for i in range(40):
        log.append(batch(2, value=b"x" * 60, ts=1000 + i))
    log.close()
    segs = sorted(d.glob("*.log"))
    idx = segs[1].with_suffix(".index")
    tidx = segs[2].with_suffix(".timeindex")
    good_idx, good_tidx = idx.read_bytes(), tidx.read_bytes()
    assert len(good_idx) > 0 and len(good_tidx) > 0
    idx.unlink()
    tidx.write_bytes(b"\x01" * 13)
    log = UnifiedLog.open(d, SMALL, had_clean_shutdown=True)
    assert set(log.last_recovery.indexes_rebuilt) == {str(idx), str(tidx)}
    assert idx.read_bytes() == good_idx
    assert tidx.read_bytes() == good_tidx
    assert _all_offsets(log) == list(range(80))
    assert log.offset_for_timestamp(1020).offset == 40


def test_clean_reopen_checks_only_the_tail_past_the_recovery_point(tmp_path: Path) -> None:
    """After a clean shutdown the loader validates only the batches past the recovery point's index entry (older
    corruption goes unnoticed, a bad last batch is cut); after an unclean one it scans the segment."""
    mgr = LogManager([tmp_path / "d1"], SMALL)
    mgr.startup()
    tp = TopicPartition("t", 0)
    lg = mgr.get_or_create_log(tp)
    for _ in range(10):
        lg.append(batch(2, value=b"x" * 60))
    mgr.shutdown()
    assert (tmp_path / "d1" / ".kafka_cleanshutdown").exists()
    seg = sorted((tmp_path / "d1" / "t-0").glob("*.log"))[-1]
    raw = bytearray(seg.read_bytes())
    batches = list(iter_batches(raw))
    assert len(batches) >= 3
    raw[batches[0].end_position - 5] ^= 0xFF  # corrupt the segment's first batch's body
    seg.write_bytes(raw)

    mgr = LogManager([tmp_path / "d1"], SMALL)
    mgr.startup()
    lg = mgr.get_log(tp)
    assert lg is not None
    assert lg.last_recovery.clean_shutdown and lg.last_recovery.segments_recovered == 0
    assert lg.last_recovery.bytes_truncated == 0
    assert lg.log_end_offset == 20
    assert not (tmp_path / "d1" / ".kafka_cleanshutdown").exists()
    mgr.shutdown()

    raw[-5] ^= 0xFF  # and the last batch's: past the recovery point's index entry
    seg.write_bytes(raw)
    mgr = LogManager([tmp_path / "d1"], SMALL)
    mgr.startup()
    lg = mgr.get_log(tp)
    assert lg is not None and lg.last_recovery.clean_shutdown
    assert lg.last_recovery.bytes_truncated == batches[-1].size_in_bytes
    assert lg.log_end_offset == 18
    mgr.close_uncleanly()

    mgr = LogManager([tmp_path / "d1"], SMALL)
    mgr.startup()
    lg = mgr.get_log(tp)
    assert lg is not None and not lg.last_recovery.clean_shutdown
    assert lg.last_recovery.segments_recovered >= 1
    assert lg.log_end_offset == int(seg.name[:20])  # cut at the segment's corrupt first batch
    mgr.close_uncleanly()


def test_checkpoint_files_have_kafka_text_format(tmp_path: Path) -> None:
    """Checkpoints are 'version / count / entries' text files, written atomically."""
    mgr = LogManager([tmp_path / "d"], SMALL)
    mgr.startup()
    for p in range(2):
        lg = mgr.get_or_create_log(TopicPartition("orders", p))
        lg.append(batch(3), leader_epoch=4)
        lg.update_high_watermark(2)
    mgr.shutdown()
    rp = (tmp_path / "d" / "recovery-point-offset-checkpoint").read_text()
    assert rp == "0\n2\norders 0 3\norders 1 3\n"
    hw = (tmp_path / "d" / "replication-offset-checkpoint").read_text()
    assert hw == "0\n2\norders 0 2\norders 1 2\n"
    assert (tmp_path / "d" / "log-start-offset-checkpoint").read_text() == "0\n0\n"
    assert (tmp_path / "d" / "orders-0" / "leader-epoch-checkpoint").read_text() == "0\n1\n4 0\n"
    assert not list((tmp_path / "d").glob("*.tmp"))
    assert OffsetCheckpointFile(tmp_path / "d" / "replication-offset-checkpoint").read() == {
        TopicPartition("orders", 0): 2,
        TopicPartition("orders", 1): 2,
    }
    mgr2 = LogManager([tmp_path / "d"], SMALL)
    mgr2.startup()
    assert mgr2.get_log(TopicPartition("orders", 1)).high_watermark == 2  # type: ignore[union-attr]
    mgr2.shutdown()


def test_malformed_checkpoint_names_the_file(tmp_path: Path) -> None:
    """A malformed checkpoint raises KafkaStorageError naming it."""
    p = tmp_path / "leader-epoch-checkpoint"
    p.write_text("0\n2\n1 0\n")
    with pytest.raises(KafkaStorageError, match="leader-epoch-checkpoint") as info:
        LeaderEpochCheckpointFile(p).read()
    assert info.value.error_code == "KAFKA_STORAGE_ERROR"


def test_meta_properties_written_and_foreign_ids_refused(tmp_path: Path) -> None:
    """meta.properties uses Kafka's keys; a different broker.id or cluster.id is refused."""
    check_meta_properties(tmp_path, 1, "abcdefghijklmnopqrstuv")
    text = (tmp_path / "meta.properties").read_text()
    assert "version=0\n" in text and "broker.id=1\n" in text and "cluster.id=abcdefghijklmnopqrstuv\n" in text
    assert read_meta_properties(tmp_path) == MetaProperties(1, "abcdefghijklmnopqrstuv", 0)
    with pytest.raises(InconsistentBrokerMetadataError, match=r"^Configured broker.id 2 doesn't match stored broker.id Some\(1\)"):
        check_meta_properties(tmp_path, 2, "abcdefghijklmnopqrstuv")
    with pytest.raises(InconsistentBrokerMetadataError, match=r"^The Cluster ID other doesn't match stored clusterId"):
        check_meta_properties(tmp_path, 1, "other")
    write_meta_properties(tmp_path, MetaProperties(7, None))
    assert check_meta_properties(tmp_path, 7, "c1").cluster_id == "c1"


def test_unreadable_log_takes_only_that_partition_offline(tmp_path: Path) -> None:
    """A partition whose segment can't be opened goes offline with an error naming the file; others load."""
    mgr = LogManager([tmp_path / "d"], SMALL)
    mgr.startup()
    for p in range(3):
        mgr.get_or_create_log(TopicPartition("t", p)).append(batch(1))
    mgr.shutdown()
    bad = tmp_path / "d" / "t-1" / "00000000000000000000.log"
    bad.unlink()
    bad.mkdir()
    mgr = LogManager([tmp_path / "d"], SMALL)
    mgr.startup()
    assert set(mgr.logs) == {TopicPartition("t", 0), TopicPartition("t", 2)}
    err = mgr.offline[TopicPartition("t", 1)]
    assert str(bad) in str(err) and err.error_code == "KAFKA_STORAGE_ERROR"
    with pytest.raises(KafkaStorageError):
        mgr.get_or_create_log(TopicPartition("t", 1))
    mgr.shutdown()


def test_log_dir_lock_refuses_second_manager(tmp_path: Path) -> None:
    """A second LogManager on a locked log dir fails with KafkaStorageError."""
    a = LogManager([tmp_path / "d"])
    a.startup()
    b = LogManager([tmp_path / "d"])
    with pytest.raises(KafkaStorageError, match="locked"):
        b.startup()
    a.shutdown()


def test_leader_epochs_rebuilt_from_batches_on_recovery(tmp_path: Path) -> None:
    """After a crash that lost the leader-epoch-checkpoint, recovery rebuilds it from the batches."""
    d = tmp_path / "t-0"
    _fill(d, n=30)
    (d / "leader-epoch-checkpoint").unlink()
    log = UnifiedLog.open(d, SMALL, had_clean_shutdown=False)
    assert log.leader_epoch_cache.entries == [(0, 0), (1, 20), (2, 40)]
    assert log.end_offset_for_epoch(1) == (1, 40)


def test_interrupted_swap_is_completed(tmp_path: Path) -> None:
    """A leftover .log.swap replaces the segments it covers on load (cleaner crash mid-swap)."""
    d = tmp_path / "t-0"
    log = UnifiedLog.open(d, SMALL)
    for i in range(30):
        log.append(batch(2, value=b"x" * 60))
    log.close()
    segs = sorted(d.glob("*.log"))
    # pretend the cleaner rewrote the first segment into a .swap then crashed before the rename
    os.replace(segs[0], d / (segs[0].name + ".swap"))
    log = UnifiedLog.open(d, SMALL, had_clean_shutdown=True)
    assert log.last_recovery.swaps_completed == (str(segs[0]),)
    assert _all_offsets(log) == list(range(60))


def test_malformed_recovery_checkpoint_falls_back_to_full_scan(tmp_path: Path) -> None:
    """A garbled recovery-point checkpoint is ignored: the log loads with a full recovery scan."""
    mgr = LogManager([tmp_path / "d"], SMALL)
    mgr.startup()
    mgr.get_or_create_log(TopicPartition("t", 0)).append(batch(3))
    mgr.checkpoint_all()
    mgr.close_uncleanly()
    (tmp_path / "d" / "recovery-point-offset-checkpoint").write_text("garbage\n")
    mgr = LogManager([tmp_path / "d"], SMALL)
    mgr.startup()
    lg = mgr.get_log(TopicPartition("t", 0))
    assert lg is not None and lg.log_end_offset == 3 and lg.last_recovery.segments_recovered == 1
    mgr.shutdown()


def test_failed_startup_releases_dir_locks(tmp_path: Path) -> None:
    """A start-up refused for a foreign broker.id leaves the dir unlocked for the right broker."""
    mgr = LogManager([tmp_path / "d"])
    mgr.startup(broker_id=1, cluster_id="c")
    mgr.shutdown()
    with pytest.raises(InconsistentBrokerMetadataError):
        LogManager([tmp_path / "d"]).startup(broker_id=2, cluster_id="c")
    ok = LogManager([tmp_path / "d"])
    ok.startup(broker_id=1, cluster_id="c")
    ok.shutdown()
