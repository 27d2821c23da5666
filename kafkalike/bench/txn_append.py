"""Leader append cost of plain, idempotent and transactional batches on one UnifiedLog (storage
only, no broker): what the producer-state bookkeeping (ProducerStateManager on every append,
a marker and its .txnindex entry every ``--txn-batches`` batches) adds per batch.

    .venv/bin/python -m kafkalike.bench.txn_append [--batches 20000] [--records 10] [--repeat 5]

Prints microseconds per batch (best of ``--repeat`` runs, alternating the kinds so that load
on the machine hits them alike). Batches are built before timing; LogConfig defaults; the log
directory is a fresh temporary directory per run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kafkalike.protocol.record_batch import SimpleRecord, build_batch, build_end_txn_marker
from kafkalike.storage import LogConfig, UnifiedLog

KINDS = ("plain", "idempotent", "transactional")


def _batches(kind: str, n: int, records: int, txn_batches: int) -> list[tuple[bytearray, bool]]:
    recs = [SimpleRecord(value=b"x" * 100, key=b"k", timestamp=1_700_000_000_000)] * records
    out: list[tuple[bytearray, bool]] = []
    seq = 0
    for i in range(n):
        if kind == "plain":
            out.append((bytearray(build_batch(recs)), False))
            continue
        out.append((bytearray(build_batch(recs, producer_id=7, producer_epoch=0, base_sequence=seq,
                                          transactional=kind == "transactional")), False))
        seq += records
        if kind == "transactional" and (i + 1) % txn_batches == 0:
            aborted = (i // txn_batches) % 2 == 1  # every other transaction aborted: .txnindex entries
            out.append((bytearray(build_end_txn_marker(7, 0, 0, not aborted, 1_700_000_000_000)), True))
    return out


def run(kind: str, n: int, records: int, txn_batches: int) -> float:
    """Microseconds per data batch for one run."""
    batches = _batches(kind, n, records, txn_batches)
    with tempfile.TemporaryDirectory() as tmp:
        log = UnifiedLog.open(Path(tmp) / "bench-0", LogConfig())
        t = time.perf_counter()
        for raw, marker in batches:
            log.append(raw, leader_epoch=0, origin="coordinator" if marker else "client")
        elapsed = time.perf_counter() - t
        log.close()
    return elapsed / n * 1e6


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=20000)
    ap.add_argument("--records", type=int, default=10, help="records per batch (100-byte values)")
    ap.add_argument("--txn-batches", type=int, default=10, help="batches per transaction")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    best = {k: float("inf") for k in KINDS}
    for _ in range(args.repeat):
        for kind in KINDS:
            best[kind] = min(best[kind], run(kind, args.batches, args.records, args.txn_batches))
    for kind in KINDS:
        print(f"{kind:14s} {best[kind]:7.1f} us/batch")


if __name__ == "__main__":
    main()
