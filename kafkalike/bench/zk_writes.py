"""How fast the controller's ZooKeeper steps can go through ``coordination/``: N partition
states, each read and written back behind a controller-epoch CheckOp (the shape of the
controller's ISR removal and leader election, Kafka's updateLeaderAndIsr), with K calls in
flight, against a real 3-node ensemble started here and stopped afterwards.

    python -m kafkalike.bench.zk_writes --partitions 5000 --in-flight 16,64,128 --rounds 2 --batch

Prints one line per (round, K): seconds for N read+guarded-write pairs and partitions/s. With
``--batch`` each round also does it the way the controller now does (Kafka's
updateLeaderAndIsr): every read in one pipelined batch (ZooKeeperClient.get_many), then every
guarded write in one pipelined batch (ZooKeeperClient.multi_many), printed as "batch".
docs/benchmarks.md ("Where the controller's ZooKeeper time goes") quotes it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import trio

from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port
from kafkalike.controller.partition_state_machine import for_each_concurrently
from kafkalike.coordination.errors import MultiOpFailed
from kafkalike.coordination.zookeeper_client import CheckOp, SetDataOp, ZooKeeperClient

STATE = b'{"controller_epoch":1,"leader":1,"version":1,"leader_epoch":0,"isr":[1,2,3]}'


async def measure(connect: str, partitions: int, in_flight: list[int], rounds: int, batch: bool = False
                  ) -> list[tuple[int, float]]:
    """(K, seconds) for each round and K: ``partitions`` reads + guarded writes, K at a time;
    with ``batch`` also (0, seconds) for the pipelined batch read + batch write."""
    zk = ZooKeeperClient(connect + "/zk-writes-bench", name="zk-writes-bench")
    await zk.start()
    out: list[tuple[int, float]] = []
    try:
        await zk.create_if_absent("/controller_epoch", b"1")
        await zk.ensure_path("/partitions")
        paths = [f"/partitions/{i}" for i in range(partitions)]

        async def create(path: str) -> None:
            await zk.create(path, STATE)

        await for_each_concurrently(paths, create, 64)
        for _ in range(rounds):
            for k in in_flight:
                zk._limiter = trio.CapacityLimiter(k)  # the client's worker-thread cap

                async def read_then_write(path: str) -> None:
                    _data, stat = await zk.get(path)
                    await zk.multi([CheckOp("/controller_epoch", 0), SetDataOp(path, STATE, stat.version)])

                t0 = time.monotonic()
                await for_each_concurrently(paths, read_then_write, k)
                secs = time.monotonic() - t0
                out.append((k, secs))
                print(f"in flight {k:>4}: {partitions:,} read + guarded write in {secs:.2f} s "
                      f"= {partitions / secs:,.0f} partitions/s", flush=True)
            if batch:
                t0 = time.monotonic()
                got = await zk.get_many(paths)
                read_secs = time.monotonic() - t0
                outcomes = await zk.multi_many([
                    [CheckOp("/controller_epoch", 0), SetDataOp(path, STATE, r[1].version)]
                    for path, r in zip(paths, got) if r is not None
                ])
                secs = time.monotonic() - t0
                failed = sum(isinstance(o, MultiOpFailed) for o in outcomes)
                if failed:
                    raise SystemExit(f"batch: {failed} guarded writes failed")
                out.append((0, secs))
                print(f"batch        : {partitions:,} read + guarded write in {secs:.2f} s "
                      f"= {partitions / secs:,.0f} partitions/s (read {read_secs:.2f} s, "
                      f"write {secs - read_secs:.2f} s)", flush=True)
    finally:
        await zk.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--partitions", type=int, default=5000)
    p.add_argument("--in-flight", default="16,64,128", help="comma-separated calls in flight")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch", action="store_true", help="also measure the pipelined batch read + batch write")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="kafkalike-zk-writes-"))
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    ensemble = ZkEnsemble(work / "zk", nodes=3, base_port=find_free_base_port(hosts), die_with_parent=True)
    ensemble.start(timeout=90)
    try:
        trio.run(measure, ensemble.connect_string, args.partitions,
                 [int(x) for x in args.in_flight.split(",")], args.rounds, args.batch)
    finally:
        ensemble.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
