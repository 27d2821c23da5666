"""The broker's checkpoint files (high watermarks, recovery points, log start offsets) are read
on the event loop and written by broker/checkpoint_writer.py in trio worker threads: never on
the loop's thread (10,000 partitions' file, fsynced, held the loop for hundreds of ms on a busy
disk, issue 15), a newer snapshot of a file replaces a queued one, close() waits for the writes
and takes no more, and the LogManager's shutdown writes the final files. A real LogManager on
disk."""

from __future__ import annotations

import threading
from pathlib import Path

import trio
from structlog.testing import capture_logs

from kafkalike.broker.checkpoint_writer import CheckpointWriter
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from kafkalike.storage.checkpoints import (
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
    OffsetCheckpointFile,
    TopicPartition,
)
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.log_manager import CheckpointSnapshot, LogManager


def _manager_with_one_log(root: Path) -> tuple[LogManager, TopicPartition]:
    mgr = LogManager([root], LogConfig())
    mgr.startup()
    tp = TopicPartition("cp", 0)
    lg = mgr.get_or_create_log(tp)
    lg.append(bytearray(build_batch([SimpleRecord(value=b"v", key=None, timestamp=1)] * 5)), leader_epoch=0)
    lg.flush()
    lg.update_high_watermark(3)
    lg.delete_records_before(2)
    return mgr, tp


class _ObservedWrites:
    """LogManager.write_checkpoint, recording the thread and file of each call; ``gate``, when
    set, holds each write until it is released."""

    def __init__(self, mgr: LogManager) -> None:
        self.mgr = mgr
        self.calls: list[tuple[str, str]] = []
        self.gate: threading.Event | None = None

    def __call__(self, snapshot: CheckpointSnapshot) -> None:
        self.calls.append((threading.current_thread().name, snapshot.file_name))
        if self.gate is not None:
            assert self.gate.wait(30), "the test never released the write"
        self.mgr.write_checkpoint(snapshot)


async def _wait_written(writer: CheckpointWriter, n: int) -> None:
    with trio.fail_after(30):
        while writer.written < n:
            await trio.sleep(0.01)


async def test_the_three_files_are_written_in_worker_threads_with_the_offsets_of_the_snapshot(tmp_path: Path) -> None:
    """High watermark 3, recovery point 5 and log start offset 2 are in the files, each written
    on a thread other than the event loop's; moves after the snapshot are not in them; after
    close() and the LogManager's shutdown the files hold the final offsets."""
    root = tmp_path / "d"
    mgr, tp = _manager_with_one_log(root)
    observed = _ObservedWrites(mgr)
    writer = CheckpointWriter(observed)
    loop_thread = threading.current_thread().name
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        writer.queue(mgr.high_watermark_checkpoint())
        writer.queue(mgr.recovery_point_checkpoint())
        writer.queue(mgr.log_start_offset_checkpoint())
        mgr.get_log(tp).update_high_watermark(4)  # after the snapshot: not in this write
        await _wait_written(writer, 3)
        assert OffsetCheckpointFile(root / REPLICATION_OFFSET_CHECKPOINT).read() == {tp: 3}
        assert OffsetCheckpointFile(root / RECOVERY_POINT_CHECKPOINT).read() == {tp: 5}
        assert OffsetCheckpointFile(root / LOG_START_OFFSET_CHECKPOINT).read() == {tp: 2}
        assert sorted(name for _, name in observed.calls) == sorted(
            [REPLICATION_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT])
        assert all(thread != loop_thread for thread, _ in observed.calls), observed.calls
        await writer.close()
        writer.queue(mgr.high_watermark_checkpoint())  # closed: taken no more
        await trio.sleep(0.1)
        assert writer.written == 3
        nursery.cancel_scope.cancel()
    mgr.shutdown()
    assert OffsetCheckpointFile(root / REPLICATION_OFFSET_CHECKPOINT).read() == {tp: 4}


async def test_a_newer_snapshot_replaces_a_queued_one_and_close_waits_for_the_running_write(tmp_path: Path) -> None:
    """While a high-watermark write is held in its thread, two more snapshots are queued: only
    the newer one is written after it (2 writes, not 3), and close(), called while the first is
    still held, returns only after both are written."""
    root = tmp_path / "d"
    mgr, tp = _manager_with_one_log(root)
    observed = _ObservedWrites(mgr)
    observed.gate = threading.Event()
    writer = CheckpointWriter(observed)
    lg = mgr.get_log(tp)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        writer.queue(mgr.high_watermark_checkpoint())
        with trio.fail_after(30):
            while not observed.calls:  # the first write has started and is held
                await trio.sleep(0.01)
        lg.update_high_watermark(4)
        writer.queue(mgr.high_watermark_checkpoint())
        lg.update_high_watermark(5)
        writer.queue(mgr.high_watermark_checkpoint())
        closed = trio.Event()

        async def close() -> None:
            await writer.close()
            closed.set()

        nursery.start_soon(close)
        await trio.sleep(0.2)
        assert not closed.is_set(), "close() returned while a write was held"
        observed.gate.set()
        with trio.fail_after(30):
            await closed.wait()
        assert writer.written == 2
        assert OffsetCheckpointFile(root / REPLICATION_OFFSET_CHECKPOINT).read() == {tp: 5}
        nursery.cancel_scope.cancel()
    mgr.shutdown()


async def test_cancelling_the_writer_waits_for_the_write_it_started(tmp_path: Path) -> None:
    """The task is cancelled while its write is held in the worker thread: the cancellation
    completes only once the write has finished, so no thread writes after the task is gone."""
    root = tmp_path / "d"
    mgr, tp = _manager_with_one_log(root)
    observed = _ObservedWrites(mgr)
    observed.gate = threading.Event()
    writer = CheckpointWriter(observed)
    released = False
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            writer.queue(mgr.high_watermark_checkpoint())
            while not observed.calls:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()

            def release() -> None:
                nonlocal released
                released = True
                observed.gate.set()  # type: ignore[union-attr]

            threading.Timer(0.3, release).start()
    assert released
    assert OffsetCheckpointFile(root / REPLICATION_OFFSET_CHECKPOINT).read() == {tp: 3}
    mgr.shutdown()


def test_a_failed_dir_is_logged_and_the_others_written(tmp_path: Path) -> None:
    """write_checkpoint with one dir that cannot be written (a file where the dir should be)
    logs hw_checkpoint_failed and still writes the other dir."""
    good = tmp_path / "good"
    good.mkdir()
    bad = tmp_path / "bad"
    bad.write_text("not a directory")
    tp = TopicPartition("cp", 0)
    with capture_logs() as logs:
        LogManager.write_checkpoint(CheckpointSnapshot(REPLICATION_OFFSET_CHECKPOINT, {bad: {tp: 1}, good: {tp: 7}}))
    assert OffsetCheckpointFile(good / REPLICATION_OFFSET_CHECKPOINT).read() == {tp: 7}
    assert [e["event"] for e in logs if e.get("log_level") == "warning"] == ["hw_checkpoint_failed"]
