"""LogManager's creation of new logs off the event loop (plan_new_logs on the loop,
create_planned_logs in a worker thread, add_prepared, then get_or_create_log takes them): the
logs are the ones get_or_create_log would have made, spread over the log dirs the same way,
and the prepared logs nobody takes leave no directory behind."""

from __future__ import annotations

import threading
from pathlib import Path

from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from kafkalike.storage.checkpoints import TopicPartition
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.log_manager import LogManager


def _manager(*roots: Path) -> LogManager:
    mgr = LogManager(list(roots), LogConfig())
    mgr.startup()
    return mgr


def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    """Run fn in another thread (as trio.to_thread does) and return its result."""
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn(*args)))
    t.start()
    t.join()
    return out[0]


def test_logs_created_in_a_worker_thread_are_taken_by_get_or_create_log_and_serve_appends(tmp_path: Path) -> None:
    """Logs created by create_planned_logs in another thread are what get_or_create_log returns
    (no second creation), they accept appends, and the partitions are spread over both log dirs
    as get_or_create_log spreads them."""
    a, b = tmp_path / "a", tmp_path / "b"
    mgr = _manager(a, b)
    tps = [TopicPartition("wide", p) for p in range(40)]
    plans = mgr.plan_new_logs((tp, None) for tp in tps)
    assert [p.tp for p in plans] == tps
    assert mgr.plan_new_logs((tp, None) for tp in tps) == []  # already planned: not twice
    mgr.add_prepared(_in_thread(mgr.create_planned_logs, plans))
    assert mgr.prepared_count() == 40 and mgr.get_log(tps[0]) is None  # not served before taken

    for tp, plan in zip(tps, plans):
        lg = mgr.get_or_create_log(tp)
        assert lg.dir == plan.dir and mgr.get_log(tp) is lg
    assert mgr.prepared_count() == 0
    assert sum(1 for d in a.iterdir() if d.is_dir()) == sum(1 for d in b.iterdir() if d.is_dir()) == 20
    lg = mgr.get_or_create_log(tps[7])
    lg.append(bytearray(build_batch([SimpleRecord(value=b"v", key=None, timestamp=1)] * 3)), leader_epoch=0)
    assert lg.log_end_offset == 3
    mgr.shutdown()


def test_prepared_logs_nobody_takes_are_removed_and_a_deleted_partition_takes_its_prepared_log_along(
        tmp_path: Path) -> None:
    """discard_prepared renames the unused logs' dirs *-delete (removed like deleted logs);
    delete_log of a partition whose log is only prepared removes that one too; a prepared log
    made with another config than the one asked for is replaced by a new one."""
    root = tmp_path / "d"
    mgr = _manager(root)
    tps = [TopicPartition("t", p) for p in range(3)]
    mgr.add_prepared(mgr.create_planned_logs(mgr.plan_new_logs((tp, None) for tp in tps)))
    assert sorted(d.name for d in root.iterdir() if d.is_dir()) == ["t-0", "t-1", "t-2"]

    mgr.delete_log(tps[0])
    other = LogConfig(segment_bytes=1024 * 1024)
    lg = mgr.get_or_create_log(tps[1], other)
    assert lg.config == other
    assert mgr.discard_prepared() == 1  # t-2
    live = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.endswith("-delete"))
    assert live == ["t-1"]
    assert mgr.delete_dirs(mgr.take_due_deletions(now_ms=mgr.clock() + 10**9)) == 3
    assert sorted(d.name for d in root.iterdir() if d.is_dir()) == ["t-1"]
    mgr.shutdown()
