"""Checker benchmark: time check() on a big simulated history, in memory and from a file.

    .venv/bin/python tests/chaos/bench_checker.py [--events 3000000] [--file /tmp/history.jsonl]

Generates the history with chaos_sim.big_history (a correct log: the verdict must be valid),
writes it as JSON lines, then reports seconds for: check() over the events in memory,
read_history() alone, and check_file() (read + check). Not a pytest test (too slow for the
default run); docs/chaos.md quotes its output.
"""

from __future__ import annotations

import argparse
import gc
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from chaos_sim import big_history  # noqa: E402

from kafkalike.chaos.checker import check, check_file  # noqa: E402
from kafkalike.chaos.history import read_history, write_history  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=3_000_000)
    ap.add_argument("--file", default="/tmp/kafkalike-checker-bench.jsonl")
    ap.add_argument("--keep", action="store_true", help="keep the history file")
    args = ap.parse_args()

    t0 = time.perf_counter()
    h = big_history(args.events)
    n = write_history(args.file, h)
    size = os.path.getsize(args.file)
    print(f"history: {n} events, {size / 1e6:.0f} MB, generated+written in {time.perf_counter() - t0:.1f} s")

    t0, c0 = time.perf_counter(), time.process_time()
    v = check(h)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"check(events in memory): {dt:.2f} s wall, {cpu:.2f} s CPU ({cpu / n * 1e6:.2f} us/event) -> {v.status}")
    assert v.valid, v.render_text()
    del h, v
    gc.collect()

    t0, c0 = time.perf_counter(), time.process_time()
    gc.disable()
    m = sum(1 for _ in read_history(args.file))
    gc.enable()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"read_history (parse only): {dt:.2f} s wall, {cpu:.2f} s CPU ({cpu / m * 1e6:.2f} us/event)")

    t0, c0 = time.perf_counter(), time.process_time()
    v = check_file(args.file)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"check_file (read + check): {dt:.2f} s wall, {cpu:.2f} s CPU ({cpu / n * 1e6:.2f} us/event) -> {v.status}")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(v.render_text(fault_lines=3))
    if not args.keep:
        os.unlink(args.file)


if __name__ == "__main__":
    main()
