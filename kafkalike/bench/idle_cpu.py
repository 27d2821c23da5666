"""Idle CPU of kafkalike brokers with many partitions, two versions of the code side by side.

    python -m kafkalike.bench.idle_cpu --before /tmp/kl-before --after . --partitions 1000

``--before`` and ``--after`` are checkouts of kafkalike (e.g. ``git worktree add
/tmp/kl-before 52d5754``). Each gets a 3-broker cluster of its own (one ZooKeeper node, its
own loopback addresses), runs from its own checkout, with one RF-3 topic of ``--partitions``
partitions and no client traffic: what remains is replication's idle work (follower fetches
long-polling every partition) and the brokers' timers. Both clusters are up at once and
sampled in alternation, ``--samples`` × ``--seconds`` each, so machine drift hits both alike.
Prints each sample (% of one core per broker, from /proc CPU seconds as the ``resources``
workload measures, with the 1-minute load average) and the medians. docs/benchmarks.md quotes
it for KIP-227 fetch sessions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

from kafkalike.bench import workloads as wl
from kafkalike.bench.systems import create_topic, processes_run_from, wait_leaders
from kafkalike.cluster.local_cluster import LocalCluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kafkalike.bench.idle_cpu", description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="checkout of the code before the change")
    ap.add_argument("--after", required=True, help="checkout of the code after the change")
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    codes = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    work = Path(tempfile.mkdtemp(prefix="idle-cpu-"))
    clusters: dict[str, LocalCluster] = {}
    try:
        for k, (name, code) in enumerate(codes.items()):
            cluster = LocalCluster(work / name, brokers=3, zk_nodes=1, base_port=_free_port(),
                                   zk_base_port=_free_port(), first_host=150 + 10 * k)
            clusters[name] = cluster
            with processes_run_from(code):
                cluster.start()
            t0 = time.monotonic()
            create_topic(cluster.bootstrap_servers, "idle", args.partitions, 3, timeout=900)
            wait_leaders(cluster.bootstrap_servers, "idle", args.partitions, 900, full_isr=3)
            print(f"{name} ({code}): {args.partitions:,} partitions at full ISR in "
                  f"{time.monotonic() - t0:.1f} s", flush=True)
        time.sleep(5)
        samples: dict[str, list[float]] = {name: [] for name in clusters}
        for i in range(args.samples):
            for name, cluster in clusters.items():
                pids = {b: p for b in cluster.broker_ids if (p := cluster.broker_pid(b)) is not None}
                c0 = wl.total_cpu(pids)
                time.sleep(args.seconds)
                pct = (wl.total_cpu(pids) - c0) / args.seconds / len(pids) * 100
                samples[name].append(pct)
                print(f"sample {i} {name}: {pct:.2f} % of a core per broker "
                      f"(load avg 1 min {os.getloadavg()[0]:.2f})", flush=True)
        for name, values in samples.items():
            print(f"median {name}: {statistics.median(values):.2f} % of a core per broker "
                  f"({len(values)} x {args.seconds:g} s)", flush=True)
    finally:
        for cluster in clusters.values():
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
