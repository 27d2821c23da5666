"""Unit tests of kafkalike.bench.multicore's pieces that need no cluster: the placements, CPU
affinity of every thread of a real child process, the per-thread CPU split from /proc, and the
summary table. (The bench itself starts ZooKeeper and three brokers; docs/multicore.md has its
figures.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kafkalike.bench.multicore import (CpuSplit, RunResult, cpu_split, pin_process, placements, render_table,
                                       summarize, thread_cpu_seconds, thread_ids)
from kafkalike.bench.systems import BenchError


def test_placements_put_brokers_on_one_cpu_or_both_and_need_two() -> None:
    """1core: all on the lowest CPU; brokers1: brokers there, the client on the next; 2cores: both."""
    table = placements([5, 3, 9])
    assert (table["1core"].brokers, table["1core"].client) == (frozenset({3}), frozenset({3}))
    assert (table["brokers1"].brokers, table["brokers1"].client) == (frozenset({3}), frozenset({5}))
    assert (table["2cores"].brokers, table["2cores"].client) == (frozenset({3, 5}), frozenset({3, 5}))
    with pytest.raises(BenchError, match="at least 2 CPUs"):
        placements([0])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_pin_process_sets_every_thread_of_a_child_process() -> None:
    """Every thread of a real child process (main + 2 started threads) gets the CPU set, as
    ``taskset -a -p`` does; a process gone meanwhile pins nothing."""
    cpus = sorted(os.sched_getaffinity(0))
    code = ("import threading, sys\n"
            "ev = threading.Event()\n"
            "ts = [threading.Thread(target=ev.wait) for _ in range(2)]\n"
            "[t.start() for t in ts]\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        tids = thread_ids(child.pid)
        assert child.pid in tids and len(tids) == 3
        assert pin_process(child.pid, {cpus[0]}) == 3
        assert all(os.sched_getaffinity(t) == {cpus[0]} for t in tids)
        assert pin_process(child.pid, cpus) == 3
        assert all(os.sched_getaffinity(t) == set(cpus) for t in tids)
    finally:
        child.kill()
        child.wait()
    assert pin_process(child.pid, {cpus[0]}) == 0


def test_cpu_split_counts_main_thread_apart_from_others() -> None:
    """A busy non-main thread's CPU lands in ``other``, not ``main``; a thread new in the
    second snapshot counts from zero."""
    pid = os.getpid()
    before = thread_cpu_seconds(pid)
    assert pid in before
    stop = threading.Event()
    ticks = os.sysconf("SC_CLK_TCK")
    seen: dict[int, float] = {}

    def spin() -> None:
        tid = threading.get_native_id()
        while not stop.is_set():  # burn CPU until /proc shows at least 3 clock ticks on this thread
            sum(range(10_000))
            seen.update(thread_cpu_seconds(pid))
            if seen.get(tid, 0.0) >= 3 / ticks:
                break

    t = threading.Thread(target=spin)
    t.start()
    t.join(timeout=60)
    stop.set()
    after = dict(seen)
    split = cpu_split(pid, before, after)
    assert split.other >= 3 / ticks
    assert split.main == after[pid] - before[pid]
    assert split.total == split.main + split.other
    assert cpu_split(pid, {}, {pid: 2.0, pid + 10**7: 1.5}) == CpuSplit(2.0, 1.5)


def _run(rnd: int, acks: str, placement: str, rps: float, cpu: float = 1.0) -> RunResult:
    return RunResult(rnd, acks, placement, 100_000, rps, 100_000 / rps, cpu, 0.9, 0.02, 1.0, 2.0)


def test_summarize_gives_medians_and_ratio_to_brokers_on_one_core() -> None:
    """Medians per (acks, placement) in PLACEMENTS order; vs_brokers1 divides by brokers1's
    median; broker CPU per record from CPU seconds and records."""
    runs = [_run(0, "1", "2cores", 300.0), _run(1, "1", "2cores", 500.0), _run(2, "1", "2cores", 400.0),
            _run(0, "1", "brokers1", 200.0), _run(1, "1", "brokers1", 250.0),
            _run(0, "all", "1core", 100.0, cpu=0.5)]
    rows = summarize(runs)
    assert [(r.acks, r.placement, r.runs) for r in rows] == [("1", "brokers1", 2), ("1", "2cores", 3),
                                                             ("all", "1core", 1)]
    assert rows[0].records_per_sec == 225.0 and rows[0].vs_brokers1 == 1.0
    assert rows[1].records_per_sec == 400.0 and rows[1].vs_brokers1 == pytest.approx(400 / 225)
    assert rows[2].vs_brokers1 is None and rows[2].cpu_us_per_record == pytest.approx(5.0)
    table = render_table(rows)
    assert table.count("\n") == 4
    assert "| 1 | 2cores | 3 | 400 | 1.78 | 10.00 | 0.90 | 2.0 % |" in table
    assert "| all | 1core | 1 | 100 | — |" in table


def test_thread_work_items_run_and_scaling_counts_both_measurements() -> None:
    """Every --threads work item runs (the record walk accepts its batch); one round with a
    counting work item calls it ``calls`` times on one thread and ``calls`` × 2 on two."""
    from kafkalike.bench.multicore import ThreadScaling, thread_scaling, thread_work

    for fn in thread_work().values():
        fn()
    lock = threading.Lock()
    count = 0

    def tick() -> None:
        nonlocal count
        with lock:
            count += 1

    [r] = thread_scaling({"tick": tick}, 0.01, 1)
    assert r.work == "tick" and r.calls >= 1
    calibration = count - 3 * r.calls
    assert calibration > 0  # calls_for's own calls, before the two measurements
    assert ThreadScaling("w", 10, 2.0, 2.0).speedup == 2.0


def test_hop_forwards_every_request_to_a_real_owner_process_and_back() -> None:
    """--hop: 300 requests of 1 KiB, 8 in flight, through a real child trio process; each
    answer is read (the sender would wait forever for a missing one) and the child exits."""
    from kafkalike.bench.multicore import measure_hop

    children_before = _children()
    r = measure_hop(300, 1024, 8)
    assert (r.requests, r.request_bytes, r.in_flight) == (300, 1024, 8)
    assert r.wall_us > 0 and r.cpu_us > 0
    assert _children() == children_before


def _children() -> set[int]:
    """Pids of this process's live (not zombie) children, from /proc/<pid>/stat."""
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = open(f"/proc/{name}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                out.add(int(name))
    return out


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1" or len(os.sched_getaffinity(0)) < 2,
                    reason="starts ZooKeeper and three brokers and produces under two placements: KAFKALIKE_SLOW=1")
def test_cluster_mode_pins_three_brokers_and_reports_each_placement(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The cluster mode end to end with tiny sizes and 1 KB records: one run per placement,
    every record acknowledged, one table row each; this process's CPU set is restored and
    every process it started is stopped."""
    from kafkalike.bench.multicore import main

    own = os.sched_getaffinity(0)
    children = _children()
    out = tmp_path / "runs.json"
    assert main(["--rounds", "1", "--records", "3000", "--record-bytes", "1000", "--warmup", "0",
                 "--acks", "1", "--placements", "brokers1,2cores", "--json", str(out)]) == 0
    assert os.sched_getaffinity(0) == own
    assert _children() == children
    runs = json.loads(out.read_text())
    assert sorted(r["placement"] for r in runs) == ["2cores", "brokers1"]
    assert all(r["records"] == 3000 and r["records_per_sec"] > 0 and r["broker_cpu_s"] > 0 for r in runs)
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 1 |")]
    assert [line.split("|")[2].strip() for line in table] == ["brokers1", "2cores"]
