"""Failover: 3 voters (python -m kafkalike.raft.node, defaults: election 1000 ms, fetch 2000 ms),
kill -9 of the leader, time until a survivor logs raft_leader_elected (from the nodes' own log
timestamps). Run from the repository: .venv/bin/python tests/raft/measure_failover.py RUNS (figures in docs/kraft.md)"""
import datetime
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.raft.raft_helpers import leader_of, raft_cluster  # noqa: E402


def ts(event: dict) -> float:
    return datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


async def main(runs: int) -> None:
    out = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d, raft_cluster(Path(d)) as nodes:
            old, q = await leader_of(nodes, min_epoch=1, min_hw=5)
            killed = time.time()
            old.kill9()
            survivors = [n for n in nodes if n is not old]
            new, q2 = await leader_of(survivors, min_epoch=q.epoch + 1)
            elected = [ts(e) for e in new.events("raft_leader_elected") if e["epoch"] == q2.epoch][0]
            out.append((elected - killed) * 1000)
            print(f"failover {out[-1]:.0f} ms (epoch {q.epoch} -> {q2.epoch})", flush=True)
    out.sort()
    print(f"median {out[len(out) // 2]:.0f} ms, min {out[0]:.0f}, max {out[-1]:.0f} ({len(out)} runs)")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
