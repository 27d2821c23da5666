"""What writing index entries through to their files costs the append path (docs/storage.md, "Indexes on disk").

Two measurements on UnifiedLog.append of 1 KiB batches (10 records, default LogConfig: one
offset index entry per ~5 appends), 20,000 appends per round:

* `inside`: time spent in AbstractIndex._write_entry (the pwrite of each entry), summed per round,
  as us per append and us per entry;
* `ab`: rounds alternating AbstractIndex.WRITE_THROUGH off and on in one process, us per append.

Usage: .venv/bin/python -m kafkalike.bench.index_write_through --rounds 15 [--dir D]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import time
from pathlib import Path

from kafkalike.bench.storage_bench import _batch_of_size
from kafkalike.logs import configure
from kafkalike.storage import abstract_index
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog

APPENDS = 20000


def _round(d: Path, batch: bytes) -> tuple[float, int]:
    """One round: (us per append, index entries written)."""
    shutil.rmtree(d, ignore_errors=True)
    log = UnifiedLog.open(d / "bench-0", LogConfig())
    try:
        t0 = time.perf_counter()
        for _ in range(APPENDS):
            log.append(batch, leader_epoch=0)
        us = (time.perf_counter() - t0) / APPENDS * 1e6
        seg = log.active_segment
        return us, seg.offset_index.entries + seg.time_index.entries
    finally:
        log.close_handlers()


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print their min and median."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--dir", type=Path, default=Path("/var/tmp/kafkalike-index-bench"))
    a = p.parse_args(argv)
    configure(level=logging.WARNING)
    batch = _batch_of_size(1024, records=10)
    cls = abstract_index.AbstractIndex
    orig = cls._write_entry
    spent = [0.0]

    def timed(self: abstract_index.AbstractIndex, entry: bytes, pos: int) -> None:
        t0 = time.perf_counter()
        orig(self, entry, pos)
        spent[0] += time.perf_counter() - t0

    per_append: list[float] = []
    per_entry: list[float] = []
    ab: dict[bool, list[float]] = {False: [], True: []}
    try:
        cls._write_entry = timed  # type: ignore[method-assign]  # timing wrapper patched in for the measurement
        for _ in range(a.rounds):
            spent[0] = 0.0
            _, n = _round(a.dir, batch)
            per_append.append(spent[0] / APPENDS * 1e6)
            per_entry.append(spent[0] / max(n, 1) * 1e6)
        cls._write_entry = orig  # type: ignore[method-assign]  # the original method put back
        for _ in range(a.rounds):
            for wt in (False, True):
                cls.WRITE_THROUGH = wt
                ab[wt].append(_round(a.dir, batch)[0])
    finally:
        cls._write_entry = orig  # type: ignore[method-assign]  # the original method put back
        cls.WRITE_THROUGH = True
        shutil.rmtree(a.dir, ignore_errors=True)
    print(f"inside write-through: us/append min {min(per_append):.2f} median {statistics.median(per_append):.2f}; "
          f"us/entry min {min(per_entry):.2f} median {statistics.median(per_entry):.2f}")
    for wt in (False, True):
        print(f"append with write_through={wt}: us/append min {min(ab[wt]):.2f} median {statistics.median(ab[wt]):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
