"""The log a finished replica move swaps out (LogManager.replace_current_with_future_log, KIP-113)
keeps its files open only until its *-delete dir is due for removal or the log manager shuts
down. Nothing closed it: its files stayed open until a garbage collection (or, for its active
index's write descriptor, an eviction from abstract_index's process-wide LRU), and a later test
in the same process (tests/storage/test_index_descriptors.py) saw its .timeindex open."""

from __future__ import annotations

import os
from pathlib import Path

from kafkalike.storage.checkpoints import TopicPartition
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.log_manager import LogManager
from tests.storage.storage_helpers import batch

DELAY_MS = 60000


def _open_files_under(root: Path) -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith(str(root)):
            out.append(target)
    return out


def _swapped(tmp_path: Path, clock: list[int]) -> tuple[LogManager, Path]:
    """A log of 5 batches in dir a moved to dir b (the future log filled with the same batches,
    then swapped in); returns the manager and the old log's *-delete dir."""
    a, b = tmp_path / "a", tmp_path / "b"
    mgr = LogManager([a, b], LogConfig(file_delete_delay_ms=DELAY_MS, index_interval_bytes=1), clock=lambda: clock[0])
    mgr.startup()
    tp = TopicPartition("mv", 0)
    current = mgr.get_or_create_log(tp)
    source = current.dir.parent
    dest = b if source == a else a
    copies = []
    for i in range(5):
        records = batch(3, value=b"v%d" % i)
        current.append(records)  # offsets patched in place: the bytes a follower would copy
        copies.append(bytes(records))
    # index entries are written through on append with a write descriptor from the LRU
    assert [t for t in _open_files_under(current.dir) if t.endswith((".index", ".timeindex"))]
    future = mgr.create_future_log(tp, dest)
    for records in copies:
        future.append(records, assign_offsets=False, origin="replication")
    future.flush()
    mgr.replace_current_with_future_log(tp)
    doomed = [p for p in source.iterdir() if p.name.endswith("-delete")]
    assert len(doomed) == 1
    return mgr, doomed[0]


def test_the_swapped_out_log_is_closed_when_its_dir_is_due_for_removal(tmp_path: Path) -> None:
    clock = [1_000_000]
    mgr, doomed = _swapped(tmp_path, clock)
    clock[0] += DELAY_MS
    assert mgr.take_due_deletions() == [doomed]
    assert _open_files_under(doomed) == []
    LogManager.delete_dirs([doomed])
    mgr.shutdown()
    assert _open_files_under(tmp_path) == []


def test_a_shutdown_closes_the_swapped_out_log_not_yet_removed(tmp_path: Path) -> None:
    clock = [1_000_000]
    mgr, doomed = _swapped(tmp_path, clock)
    mgr.shutdown()
    assert _open_files_under(tmp_path) == []
