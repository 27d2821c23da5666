"""The recovery-point and log-start-offset checkpoints the broker writes every minute are
written by the checkpoint writer thread, not by the caller (the broker's event loop): with
10,000 partitions each file, fsynced, held the loop up to hundreds of ms on a busy disk
(issue 15). Shutdown still writes the final ones itself, after the writer's."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from kafkalike.storage.checkpoints import (
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
    OffsetCheckpointFile,
    TopicPartition,
)
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.log_manager import LogManager


def test_recovery_point_and_log_start_offset_checkpoints_are_written_by_the_writer_thread_and_shutdown_writes_the_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """checkpoint_recovery_points / checkpoint_log_start_offsets return without writing on the
    caller's thread; the writer thread then writes the offsets of that call; shutdown writes
    the final offsets on its own thread."""
    root = tmp_path / "d"
    mgr = LogManager([root], LogConfig())
    mgr.startup()
    tp = TopicPartition("cp", 0)
    lg = mgr.get_or_create_log(tp)
    lg.append(bytearray(build_batch([SimpleRecord(value=b"v", key=None, timestamp=1)] * 5)), leader_epoch=0)
    lg.flush()
    lg.update_high_watermark(5)
    lg.delete_records_before(2)
    writers: dict[str, list[str]] = {}
    original = OffsetCheckpointFile.write

    def observed(self: OffsetCheckpointFile, offsets: dict) -> None:  # type: ignore[type-arg]
        writers.setdefault(Path(self.path).name, []).append(threading.current_thread().name)
        original(self, offsets)

    monkeypatch.setattr(OffsetCheckpointFile, "write", observed)
    mgr.checkpoint_recovery_points()
    mgr.checkpoint_log_start_offsets()
    deadline = time.monotonic() + 30
    while (OffsetCheckpointFile(root / RECOVERY_POINT_CHECKPOINT).read() != {tp: 5}
           or OffsetCheckpointFile(root / LOG_START_OFFSET_CHECKPOINT).read() != {tp: 2}):
        assert time.monotonic() < deadline, "the checkpoints were never written"
        time.sleep(0.01)
    me = threading.current_thread().name
    for name in (RECOVERY_POINT_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT):
        assert writers[name] and me not in writers[name], f"{name} was written on the caller's thread"
    lg.append(bytearray(build_batch([SimpleRecord(value=b"w", key=None, timestamp=2)] * 2)), leader_epoch=0)
    lg.delete_records_before(3)
    mgr.shutdown()
    assert OffsetCheckpointFile(root / RECOVERY_POINT_CHECKPOINT).read() == {tp: 7}
    assert OffsetCheckpointFile(root / LOG_START_OFFSET_CHECKPOINT).read() == {tp: 3}
    assert writers[RECOVERY_POINT_CHECKPOINT][-1] == me and writers[LOG_START_OFFSET_CHECKPOINT][-1] == me
