"""A full disk never leaves bytes after the log end, and loading never trusts bytes past the
last valid batch: UnifiedLog on a real, tiny tmpfs that fills up; a write whose
rollback fails takes the log offline; clean and unclean loads truncate garbage tails."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kafkalike.protocol.record_batch import iter_batches
from kafkalike.storage.errors import KafkaStorageError, LogDirFailureError
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog
from storage_helpers import batch

CONFIG = LogConfig(segment_bytes=8 << 20, index_interval_bytes=4096, segment_index_bytes=1 << 20)


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path`, unmounted (lazily if still busy) and removed after."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)
        path.rmdir()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs holding a 64 KiB filler file (deleted to free space)."""
    with tmpfs(tmp_path / "fs", "256k") as fs:
        (fs / "filler").write_bytes(b"\0" * (64 << 10))
        yield fs


def _offsets(lg: UnifiedLog) -> list[int]:
    data = read_slices(lg.read(lg.log_start_offset, 1 << 30))
    return [o for b in iter_batches(data) for o in range(b.base_offset, b.last_offset + 1)]


def _fill_until_full(lg: UnifiedLog, value_size: int = 7000) -> int:
    """Append 2-record batches until the disk is full; returns the number acknowledged."""
    acked = 0
    while True:
        try:
            lg.append(batch(2, value=b"x" * value_size))
        except KafkaStorageError:
            return acked
        acked += 1
        assert acked < 1000, "the tmpfs never filled up"


def test_write_failing_on_full_disk_leaves_nothing_after_the_log_end(small_fs: Path) -> None:
    """A write that hits ENOSPC half-way is rolled back: the file ends at the last acknowledged batch."""
    lg = UnifiedLog.open(small_fs / "t-0", CONFIG)
    acked = _fill_until_full(lg)
    assert acked > 0
    seg = lg.active_segment
    assert os.stat(seg.log.path).st_size == seg.size
    assert lg.log_end_offset == 2 * acked
    # still full: a second failure changes nothing either
    with pytest.raises(KafkaStorageError):
        lg.append(batch(2, value=b"y" * 7000))
    assert os.stat(seg.log.path).st_size == seg.size
    assert lg.log_end_offset == 2 * acked
    lg.close_handlers()


def test_clean_restart_after_disk_full_keeps_acknowledged_offsets(small_fs: Path) -> None:
    """After a full disk, a small append and a clean restart: LEO and records are exactly the acknowledged ones."""
    lg = UnifiedLog.open(small_fs / "t-0", CONFIG)
    acked = _fill_until_full(lg)
    (small_fs / "filler").unlink()
    info = lg.append(batch(1, value=b"small"))
    assert info.first_offset == 2 * acked
    end = lg.log_end_offset
    lg.close()
    again = UnifiedLog.open(small_fs / "t-0", CONFIG, recovery_point=end, had_clean_shutdown=True)
    try:
        assert again.log_end_offset == end
        assert _offsets(again) == list(range(end))
        assert again.append(batch(1)).first_offset == end
    finally:
        again.close()


def test_unclean_restart_after_disk_full_and_clean_restart_keeps_every_acknowledged_record(small_fs: Path) -> None:
    """Full disk, clean restart, more appends, then a crash: every acknowledged record survives recovery."""
    lg = UnifiedLog.open(small_fs / "t-0", CONFIG)
    acked = _fill_until_full(lg)
    (small_fs / "filler").unlink()
    lg.append(batch(1, value=b"small"))
    lg.close()
    lg = UnifiedLog.open(small_fs / "t-0", CONFIG, recovery_point=2 * acked + 1, had_clean_shutdown=True)
    for _ in range(3):
        lg.append(batch(1, value=b"after"))
    end = lg.log_end_offset
    assert end == 2 * acked + 4
    lg.close_handlers()  # like kill -9
    again = UnifiedLog.open(small_fs / "t-0", CONFIG, recovery_point=2 * acked + 1, had_clean_shutdown=False)
    try:
        assert again.log_end_offset == end
        assert _offsets(again) == list(range(end))
    finally:
        again.close()


def test_write_whose_rollback_fails_takes_the_log_offline(tmp_path: Path) -> None:
    """When the failed write cannot be undone (the descriptor no longer writable) the log refuses everything after."""
    lg = UnifiedLog.open(tmp_path / "t-0", CONFIG)
    lg.append(batch(3))
    seg = lg.active_segment
    ro = os.open(seg.log.path, os.O_RDONLY)
    try:
        os.dup2(ro, seg.log.file.fd)  # pwrite now fails with EBADF, and so does ftruncate
    finally:
        os.close(ro)
    with pytest.raises(LogDirFailureError):
        lg.append(batch(2))
    assert lg.failed
    with pytest.raises(KafkaStorageError):
        lg.append(batch(1))
    with pytest.raises(KafkaStorageError):
        lg.read(0, 1000)
    lg.close_handlers()


def _clean_log_with_tail(dir: Path, tail: bytes) -> tuple[int, int]:
    """Three batches closed cleanly, then `tail` appended to the .log; returns (LEO, valid size)."""
    lg = UnifiedLog.open(dir, CONFIG)
    for i in range(3):
        lg.append(batch(2, value=bytes([65 + i]) * 100))
    end, size = lg.log_end_offset, lg.active_segment.size
    lg.close()
    with open(sorted(dir.glob("*.log"))[-1], "ab") as f:
        f.write(tail)
    return end, size


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean"])
def test_load_truncates_garbage_after_the_last_batch(tmp_path: Path, clean: bool) -> None:
    """Garbage after the last batch is cut on load, even when the shutdown was clean."""
    d = tmp_path / "t-0"
    # what a torn write leaves: the tail of a batch, read as a header gives offsets near 2^63
    garbage = b"\x7a" * 8 + (300).to_bytes(4, "big") + os.urandom(500)
    end, size = _clean_log_with_tail(d, garbage)
    lg = UnifiedLog.open(d, CONFIG, recovery_point=end, had_clean_shutdown=clean)
    try:
        assert lg.log_end_offset == end
        assert lg.active_segment.size == size
        assert os.stat(lg.active_segment.log.path).st_size == size
        assert lg.last_recovery is not None and lg.last_recovery.bytes_truncated == len(garbage)
        assert _offsets(lg) == list(range(end))
        assert lg.append(batch(1)).first_offset == end
    finally:
        lg.close()


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean"])
def test_load_truncates_a_valid_batch_whose_offsets_go_backwards(tmp_path: Path, clean: bool) -> None:
    """A batch with a correct CRC but a base offset below the previous batch's end is invalid on load."""
    d = tmp_path / "t-0"
    end, size = _clean_log_with_tail(d, b"")
    log_file = sorted(d.glob("*.log"))[-1]
    data = log_file.read_bytes()
    first = next(iter_batches(data))
    with open(log_file, "ab") as f:
        f.write(data[first.position : first.end_position])  # offsets 0-1 again after 0-5
    lg = UnifiedLog.open(d, CONFIG, recovery_point=end, had_clean_shutdown=clean)
    try:
        assert lg.log_end_offset == end
        assert lg.active_segment.size == size
        assert _offsets(lg) == list(range(end))
    finally:
        lg.close()


def test_failed_log_dir_goes_offline_and_the_other_dir_keeps_serving(tmp_path: Path) -> None:
    """A write that cannot be undone takes only its log dir offline: its logs refuse, new logs go to the other dir,
    only the healthy dir is marked clean."""
    from kafkalike.storage.checkpoints import CLEAN_SHUTDOWN_FILE, TopicPartition
    from kafkalike.storage.log_manager import LogManager

    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    lm = LogManager([d1, d2], CONFIG)
    lm.startup()
    a, b = TopicPartition("a", 0), TopicPartition("b", 0)
    la, lb = lm.get_or_create_log(a), lm.get_or_create_log(b)
    assert {la.dir.parent, lb.dir.parent} == {d1, d2}
    for lg in (la, lb):
        lg.append(batch(2))
    seg = la.active_segment
    ro = os.open(seg.log.path, os.O_RDONLY)
    try:
        os.dup2(ro, seg.log.file.fd)
    finally:
        os.close(ro)
    calls: list[list[TopicPartition]] = []  # the broker's hook (ReplicaManager) stands here
    lm.on_log_dir_failure = lambda d, exc: calls.append(lm.handle_log_dir_failure(d, exc))
    with pytest.raises(LogDirFailureError):
        la.append(batch(1))
    failed_dir = la.dir.parent
    assert calls == [[a]]
    assert lm.online_log_dirs() == [lb.dir.parent]
    assert a in lm.offline and lm.get_log(a) is None
    assert lb.append(batch(1)).first_offset == 2
    c = lm.get_or_create_log(TopicPartition("c", 0))
    assert c.dir.parent == lb.dir.parent
    lm.shutdown()
    assert not (failed_dir / CLEAN_SHUTDOWN_FILE).exists()
    assert (lb.dir.parent / CLEAN_SHUTDOWN_FILE).exists()

    again = LogManager([d1, d2], CONFIG)
    again.startup()
    try:
        got = again.get_log(a)
        assert got is not None and not got.last_recovery.clean_shutdown
        assert got.log_end_offset == 2
    finally:
        again.shutdown()


def test_shutdown_on_a_full_disk_writes_no_clean_marker_and_loses_nothing(small_fs: Path) -> None:
    """LogManager.shutdown with the disk still full does not raise; without a marker the next start recovers every acknowledged record."""
    from kafkalike.storage.checkpoints import CLEAN_SHUTDOWN_FILE, TopicPartition
    from kafkalike.storage.log_manager import LogManager

    lm = LogManager([small_fs / "logs"], CONFIG)
    lm.startup()
    tp = TopicPartition("t", 0)
    acked = _fill_until_full(lm.get_or_create_log(tp))
    # the checkpoints written at shutdown need space too: take what is left
    fd = os.open(small_fs / "rest", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    lm.shutdown()
    assert not (small_fs / "logs" / CLEAN_SHUTDOWN_FILE).exists()
    (small_fs / "rest").unlink()
    (small_fs / "filler").unlink()
    again = LogManager([small_fs / "logs"], CONFIG)
    again.startup()
    try:
        lg = again.get_log(tp)
        assert lg is not None and not lg.last_recovery.clean_shutdown
        assert lg.log_end_offset == 2 * acked
        assert _offsets(lg) == list(range(2 * acked))
    finally:
        again.shutdown()


def test_append_whose_leader_epoch_checkpoint_cannot_be_written_keeps_offsets_unique(tmp_path: Path) -> None:
    """A stored batch whose new leader epoch cannot be checkpointed still moves the LEO: the next append never reuses its offsets."""
    d = tmp_path / "t-0"
    lg = UnifiedLog.open(d, CONFIG)
    lg.append(batch(2), leader_epoch=0)
    (d / "leader-epoch-checkpoint.tmp").mkdir()  # the atomic write's temp file cannot be made
    info = lg.append(batch(2), leader_epoch=1)
    assert (info.first_offset, lg.log_end_offset) == (2, 4)
    assert lg.append(batch(1), leader_epoch=1).first_offset == 4
    assert _offsets(lg) == list(range(5))
    (d / "leader-epoch-checkpoint.tmp").rmdir()
    lg.close()
    again = UnifiedLog.open(d, CONFIG, recovery_point=5, had_clean_shutdown=True)
    try:
        assert again.leader_epoch_cache.entries == [(0, 0), (1, 2)]
        assert again.log_end_offset == 5
    finally:
        again.close()
