"""What serving a Fetch costs the leader per partition when the partitions have nothing new
(issue 24): a follower's fetch session over N partitions, all at their log end offset, as
after a controller failover moved leaderships here. In-process, no cluster: a real LogManager
on a temporary directory, a ReplicaManager (no ZooKeeper: every follower is already in the
ISR, so no ISR write happens) leading N partitions of one topic (replicas 1 and 2, one
10-record batch each), and broker 2's fetch session (FetchManager, KIP-227). After the set-up
the objects are frozen out of the garbage collector's view, as a broker's GcPolicy does
(kafkalike/broker/gc_policy.py). The logs go to /dev/shm when it exists (the set-up writes
and fsyncs a few files per partition; the measurement touches no file).

    .venv/bin/python -m kafkalike.bench.fetch_serving [--partitions 10000] [--fetches 20] \\
        [--rounds 2] [--tree before=/tmp/before --tree after=/tmp/after]

Three measurements, CPU time (time.process_time) per fetch divided by the partitions, in µs:

- ``read``: ``ReplicaManager.read_from_local_log`` for follower 2 at every partition's LEO
  (the first read of every Fetch: epoch and replica checks, follower fetch state, the answer);
- ``consumer``: the same for a consumer (replica -1) at every partition's high watermark;
- ``fetch``: one incremental Fetch of the session as KafkaApis.handle_fetch serves it:
  ``FetchManager.new_context``, ``ReplicaManager.fetch_messages`` with max_wait 1 ms and
  min_bytes 1 (so the DelayedFetch path runs: try_complete, watch every partition, expire, read
  again) and ``update_and_generate_response`` (which answers no partition).

Each ``--tree LABEL=DIR`` is a kafkalike source tree (``git archive <commit> | tar -x -C
DIR``); its measurement runs in a subprocess with cwd and PYTHONPATH in the tree, so that
tree's code is imported (kafkalike/bench/systems.py ``processes_run_from`` says why cwd
matters); the worker is this file, run with ``runpy`` so it works against trees that do not
have it. Without ``--tree`` this checkout runs, labelled ``here``. Rounds visit the trees in
rotated order; the table gives each tree's median over rounds (of the per-round medians).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORKER_ARG = "--worker"


def _worker(partitions: int, fetches: int) -> dict[str, Any]:
    """Build the replica manager and measure (runs with the tree's kafkalike on sys.path)."""
    import gc
    import logging

    import trio

    from kafkalike.broker.delayed_fetch import FetchPartitionInfo
    from kafkalike.broker.fetch_session import FetchManager, FetchRequestPartition, FetchSessionCache
    from kafkalike.broker.kafka_config import KafkaConfig
    from kafkalike.broker.metadata_cache import MetadataCache
    from kafkalike.broker.partition import PartitionState
    from kafkalike.broker.replica_manager import ReplicaManager, ReplicaStateChange
    from kafkalike.logs import configure
    from kafkalike.protocol.record_batch import SimpleRecord, build_batch
    from kafkalike.storage import TopicPartition
    from kafkalike.storage.log_manager import LogManager

    configure(level=logging.WARNING)
    me, follower, topic, max_bytes = 1, 2, "fetch-serving", 1 << 20
    tps = [TopicPartition(topic, i) for i in range(partitions)]
    batch = bytes(build_batch([SimpleRecord(value=b"v" * 100) for _ in range(10)]))
    out: dict[str, Any] = {}

    def per_partition(samples: list[float]) -> dict[str, float]:
        us = [s / partitions * 1e6 for s in samples]
        return {"min": min(us), "median": statistics.median(us)}

    async def main(d: str) -> None:
        config = KafkaConfig.from_mapping({"broker.id": str(me), "listeners": "PLAINTEXT://127.0.0.1:0",
                                           "log.dirs": str(Path(d) / "logs"), "zookeeper.connect": "unused:1"})
        log_manager = LogManager(config.log_dirs)
        log_manager.startup(broker_id=me, cluster_id="fetch-serving")
        try:
            async with trio.open_nursery() as nursery:
                no_zookeeper: Any = None  # every follower is in the ISR: no ISR write, no topic config read
                rm = ReplicaManager(config, me, log_manager, MetadataCache(broker_id=me), no_zookeeper, nursery,
                                    broker_epoch=lambda: 1)
                rm.topic_configs[topic] = {}
                state = PartitionState(leader=me, leader_epoch=0, isr=(me, follower), replicas=(me, follower),
                                       partition_epoch=0, controller_epoch=1)
                t0 = time.process_time()
                await rm.become_leader_or_follower([ReplicaStateChange(tp, None, state) for tp in tps], {})
                for tp in tps:
                    rm.partitions[tp].append_records_to_leader(memoryview(bytearray(batch)), 1, 1)
                out["setup_cpu_s"] = time.process_time() - t0
                gc.collect()  # as a broker's GcPolicy does after start-up and every 10 s
                gc.freeze()
                leo = rm.partitions[tps[0]].log_end_offset
                infos = [FetchPartitionInfo(tp, leo, max_bytes, 0, 0) for tp in tps]
                # the follower catches up once: every HW moves to the LEO
                first = rm.read_from_local_log(infos, max_bytes, follower)
                assert all(r.error == 0 and r.high_watermark == leo for r in first), first[:3]

                samples: list[float] = []
                for _ in range(fetches):
                    t = time.process_time()
                    res = rm.read_from_local_log(infos, max_bytes, follower)
                    samples.append(time.process_time() - t)
                assert all(r.error == 0 and r.size == 0 for r in res)
                out["read"] = per_partition(samples)

                consumer = [FetchPartitionInfo(tp, leo, max_bytes) for tp in tps]
                samples = []
                for _ in range(fetches):
                    t = time.process_time()
                    res = rm.read_from_local_log(consumer, max_bytes, -1)
                    samples.append(time.process_time() - t)
                assert all(r.error == 0 and r.size == 0 for r in res)
                out["consumer"] = per_partition(samples)

                manager = FetchManager(FetchSessionCache(10))
                full = {tp: FetchRequestPartition(leo, max_bytes, 0, 0) for tp in tps}
                ctx = manager.new_context(12, 0, 0, True, full, [], 0)
                got = await rm.fetch_messages(follower, 0, 1, max_bytes, 0,
                                              [FetchPartitionInfo(tp, r.fetch_offset, r.max_bytes,
                                                                  r.current_leader_epoch, r.log_start_offset)
                                               for tp, r in ctx.partitions()])
                session_id, _ = ctx.update_and_generate_response({r.tp: r for r in got})
                assert session_id != 0
                epoch, samples, answered = 1, [], 0
                for _ in range(fetches):
                    t = time.process_time()
                    ctx = manager.new_context(12, session_id, epoch, True, {}, [], 0)
                    fetch_infos = [FetchPartitionInfo(tp, r.fetch_offset, r.max_bytes, r.current_leader_epoch,
                                                      r.log_start_offset) for tp, r in ctx.partitions()]
                    got = await rm.fetch_messages(follower, 1, 1, max_bytes, 0, fetch_infos)
                    _, answer = ctx.update_and_generate_response({r.tp: r for r in got})
                    samples.append(time.process_time() - t)
                    answered += len(answer)
                    epoch += 1
                out["fetch"] = per_partition(samples)
                out["fetch_answered_partitions"] = answered
                out["fetch_purgatory"] = {"expired": rm.fetch_purgatory.expired,
                                          "watched_keys_after": len(rm.fetch_purgatory.watchers)}
                await rm.shutdown()
                nursery.cancel_scope.cancel()
        finally:
            log_manager.shutdown()

    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="fetch-serving-", dir=shm) as d:
        trio.run(main, d)
    out["partitions"] = partitions
    out["fetches"] = fetches
    return out


def _run_tree(tree: Path | None, partitions: int, fetches: int) -> dict[str, Any]:
    """One measurement in a subprocess importing ``tree``'s kafkalike (None: this checkout)."""
    here = Path(__file__).resolve()
    root = tree if tree is not None else here.parents[2]
    code = ("import runpy; "
            f"runpy.run_path({str(here)!r}, run_name='__main__')")
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-c", code, WORKER_ARG, str(partitions), str(fetches)],
                          cwd=root, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker for {root} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == WORKER_ARG:
        print(json.dumps(_worker(int(argv[1]), int(argv[2]))))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--partitions", type=int, default=10_000)
    p.add_argument("--fetches", type=int, default=20, help="fetches timed per measurement (default 20)")
    p.add_argument("--rounds", type=int, default=1, help="rounds, trees rotated (default 1)")
    p.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR",
                   help="a kafkalike source tree to measure (repeatable; default: this checkout)")
    a = p.parse_args(argv)
    trees: dict[str, Path | None] = {}
    for spec in a.tree:
        label, _, path = spec.partition("=")
        trees[label] = Path(path).resolve()
    if not trees:
        trees["here"] = None
    labels = list(trees)
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    for rnd in range(a.rounds):
        for label in labels[rnd % len(labels):] + labels[:rnd % len(labels)]:
            load = os.getloadavg()[0]
            r = _run_tree(trees[label], a.partitions, a.fetches)
            r["load"] = load
            results[label].append(r)
            print(f"round {rnd} {label}: read {r['read']['median']:.2f} µs/partition, consumer "
                  f"{r['consumer']['median']:.2f}, fetch {r['fetch']['median']:.2f} "
                  f"(answered {r['fetch_answered_partitions']}), load {load:.1f}", flush=True)
    print(f"\n{a.partitions} partitions at their LEO, {a.fetches} fetches per measurement, "
          "CPU µs per partition (median of rounds' medians; min over all)")
    print("| tree | read (follower) | read (consumer) | fetch (session, DelayedFetch) | load |")
    print("|---|---|---|---|---|")
    for label in labels:
        rs = results[label]

        def cell(key: str, rs: list[dict[str, Any]] = rs) -> str:
            return (f"{statistics.median(r[key]['median'] for r in rs):.2f} "
                    f"(min {min(r[key]['min'] for r in rs):.2f})")
        loads = ", ".join(f"{r['load']:.1f}" for r in rs)
        print(f"| {label} | {cell('read')} | {cell('consumer')} | {cell('fetch')} | {loads} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
