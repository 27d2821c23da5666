"""The operations guide's "Adding a broker" walkthrough, run for real (docs/operations.md):

    .venv/bin/python -m kafkalike.bench.add_broker [--dir /tmp/add-broker] [--throttle 1000000]
        [--prefill-mb 24] [--base-port 19092] [--zk-base-port 12181]

1. a 3-broker cluster (one ZooKeeper node) and a topic ``orders`` (6 partitions, RF 2) filled
   with ``--prefill-mb`` MB; a confluent-kafka producer keeps writing (acks=all) throughout;
2. broker 4 starts (``kafkalike broker start`` of its server.properties, through LocalCluster);
3. ``kafkalike reassign-partitions --generate --broker-list 1,2,3,4`` proposes a plan;
4. ``--execute --throttle N`` starts it with the replication throttle;
5. ``--verify`` and ``log-dirs --describe`` on broker 4 once while it runs; then
   ListPartitionReassignments every second in-process (a CLI process costs seconds of start-up
   on a loaded machine, which would swamp the figure) until nothing moves; a final ``--verify``
   removes the throttle.

Every step prints its command, its output, the wall time it took, and the ``kafkalike zk tree``
of /config and of the topic's znode where they change. At the end: records acknowledged by
the producer vs records in the log (ListOffsets end offsets), which must agree. The commands
are kafkalike's CLI run as processes, as an operator runs them; the processes this script
starts (ZooKeeper, brokers) are stopped by it, also on failure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kafkalike.cluster.local_cluster import LocalCluster

TOPIC = "orders"


def cli(*args: str, show: bool = True, max_lines: int = 40) -> tuple[str, float]:
    """Run ``kafkalike ARGS`` as a process; print the command, output and seconds taken."""
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args], capture_output=True, text=True,
                         timeout=300)
    took = time.monotonic() - started
    text = out.stdout + (out.stderr if out.returncode else "")
    if show:
        print(f"$ kafkalike {' '.join(args)}    # {took:.1f} s, exit {out.returncode}")
        lines = text.rstrip("\n").splitlines()
        for line in lines[:max_lines]:
            print(f"  {line}")
        if len(lines) > max_lines:
            print(f"  ... ({len(lines) - max_lines} more lines)")
    if out.returncode:
        raise RuntimeError(f"kafkalike {' '.join(args)} failed: {text.strip()}")
    return out.stdout, took


class BackgroundProducer:
    """A confluent-kafka producer (acks=all, idempotent) writing 1 KiB records to ``orders``
    until stopped; counts acknowledged records."""

    def __init__(self, bootstrap: str, rate_per_s: int) -> None:
        self.bootstrap = bootstrap
        self.rate = rate_per_s
        self.acked = 0
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                             "linger.ms": 20})

        def done(err: Any, _msg: Any) -> None:
            if err is None:
                self.acked += 1
            else:
                self.failed += 1
        value = b"o" * 1024
        while not self.stop.is_set():
            tick = time.monotonic()
            for i in range(self.rate // 10):
                producer.produce(TOPIC, value=value, key=str(i).encode(), on_delivery=done)
            producer.poll(0)
            time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
        producer.flush(60)


def prefill(bootstrap: str, megabytes: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 50,
                         "batch.size": 1_000_000, "queue.buffering.max.kbytes": 200_000})
    value = b"p" * 10_240
    for i in range(megabytes * 100):
        while True:
            try:
                producer.produce(TOPIC, value=value, partition=i % 6)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(120)


def end_offsets(bootstrap: str) -> int:
    """Sum of the topic's log end offsets (ListOffsets latest)."""
    import trio

    from kafkalike.client.admin import AdminClient
    from kafkalike.client.cluster import TopicPartition

    async def run() -> int:
        async with AdminClient(bootstrap) as admin:
            found = await admin.list_offsets({TopicPartition(TOPIC, p): -1 for p in range(6)})
            return sum(o.offset for o in found.values())
    return int(trio.run(run))


def wait_reassignments_done(bootstrap: str, started: float) -> float:
    """Poll ListPartitionReassignments every second until none is in flight; print the
    partitions still moving every 5 s; returns seconds since ``started``."""
    import trio

    from kafkalike.client.admin import AdminClient

    async def run() -> float:
        async with AdminClient(bootstrap) as admin:
            last = 0.0
            while True:
                moving = await admin.list_partition_reassignments()
                now = time.monotonic() - started
                if not moving:
                    return now
                if now - last >= 5:
                    print(f"# {now:5.1f} s: still moving " + ", ".join(
                        f"{tp.topic}-{tp.partition} adding {list(ra.adding_replicas)}" for tp, ra in sorted(moving.items())))
                    last = now
                await trio.sleep(1)
    return float(trio.run(run))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default="/tmp/kafkalike-add-broker")
    p.add_argument("--throttle", type=int, default=1_000_000, help="bytes/s (--execute --throttle)")
    p.add_argument("--prefill-mb", type=int, default=24)
    p.add_argument("--rate", type=int, default=500, help="records/s of the background producer")
    p.add_argument("--base-port", type=int, default=19092)
    p.add_argument("--zk-base-port", type=int, default=12181)
    args = p.parse_args(argv)
    base = Path(args.dir)
    if base.exists() and any(base.iterdir()):
        print(f"{base} is not empty; use another --dir", file=sys.stderr)
        return 2
    cluster = LocalCluster(base, brokers=3, zk_nodes=1, base_port=args.base_port, zk_base_port=args.zk_base_port,
                           overrides={"auto.leader.rebalance.enable": "false"})
    cluster.metrics_port = -1
    producer: BackgroundProducer | None = None
    try:
        t0 = time.monotonic()
        cluster.start()
        print(f"# 3-broker cluster up in {time.monotonic() - t0:.1f} s: bootstrap {cluster.bootstrap_servers}, "
              f"zookeeper {cluster.zk_connect}")
        bootstrap = cluster.bootstrap_servers
        zk = ["--zookeeper", cluster.zk_connect]
        cli("topics", "--bootstrap-server", bootstrap, "--create", "--topic", TOPIC, "--partitions", "6",
            "--replication-factor", "2")
        t0 = time.monotonic()
        prefill(bootstrap, args.prefill_mb)
        print(f"# prefilled {args.prefill_mb} MB in {time.monotonic() - t0:.1f} s")
        producer = BackgroundProducer(bootstrap, args.rate)
        producer.thread.start()

        print("\n## Step 1: start broker 4")
        t0 = time.monotonic()
        cluster.brokers = 4
        cluster.start()
        print(f"# broker 4 registered and in every broker's metadata after {time.monotonic() - t0:.1f} s")
        bootstrap = cluster.bootstrap_servers
        cli("zk", "tree", *zk, "/brokers/ids", "--max-bytes", "120")

        print("\n## Step 2: generate a plan")
        topics = base / "topics.json"
        topics.write_text(json.dumps({"version": 1, "topics": [{"topic": TOPIC}]}))
        out, _ = cli("reassign-partitions", "--bootstrap-server", bootstrap, "--generate",
                     "--topics-to-move-json-file", str(topics), "--broker-list", "1,2,3,4")
        plan = base / "plan.json"
        plan.write_text(out.split("Proposed partition reassignment configuration\n", 1)[1].strip() + "\n")

        print("\n## Step 3: execute it with a 1 MB/s throttle")
        started = time.monotonic()
        cli("reassign-partitions", "--bootstrap-server", bootstrap, "--execute", "--reassignment-json-file",
            str(plan), "--throttle", str(args.throttle))
        cli("zk", "tree", *zk, "/config", "--max-bytes", "200")
        cli("zk", "tree", *zk, f"/brokers/topics/{TOPIC}", "--max-bytes", "400")
        cli("zk", "tree", *zk, "/admin", "--max-bytes", "200")

        print("\n## Step 4: watch it")
        cli("reassign-partitions", "--bootstrap-server", bootstrap, "--list")
        cli("log-dirs", "--bootstrap-server", bootstrap, "--describe", "--broker-list", "4", max_lines=3)
        took = wait_reassignments_done(bootstrap, started)
        print(f"# reassignment complete {took:.1f} s after --execute was started")
        print("\n## Step 5: --verify (complete: it removes the throttle)")
        cli("reassign-partitions", "--bootstrap-server", bootstrap, "--verify", "--reassignment-json-file", str(plan))
        cli("zk", "tree", *zk, "/config", "--max-bytes", "200")
        cli("zk", "tree", *zk, f"/brokers/topics/{TOPIC}", "--max-bytes", "400")
        cli("log-dirs", "--bootstrap-server", bootstrap, "--describe", "--broker-list", "4", max_lines=3)
        producer.stop.set()
        producer.thread.join(90)
        in_log = end_offsets(bootstrap)
        prefilled = args.prefill_mb * 100
        print(f"# producer: {producer.acked} acknowledged, {producer.failed} failed; log end offsets sum "
              f"{in_log} = {prefilled} prefilled + {in_log - prefilled} written meanwhile")
        return 0 if in_log - prefilled >= producer.acked and producer.failed == 0 else 1
    finally:
        if producer is not None:
            producer.stop.set()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
