"""Broker memory with and without the garbage-collection policy (kafkalike/broker/gc_policy.py),
side by side: does freezing leak?

    python -m kafkalike.bench.gc_memory --seconds 300 --topics 100

Starts a 1-node ZooKeeper ensemble and two 1-broker clusters at once, one with
``kafkalike.gc.freeze.interval.ms`` = ``--freeze-interval-ms`` (default 1000: ten times the
broker's default rate of passes, to exaggerate any leak) and one with 0 (CPython's defaults),
both with ``kafkalike.gc.unfreeze.interval.ms`` = ``--unfreeze-interval-ms`` (default 0:
never, so a leak would show). On each: ``--topics`` topics; a confluent-kafka producer sends
1 KiB records round-robin to them while a consumer group reads them and commits every 100
records it got (produce, fetch, offsets and group code paths), for ``--seconds``. Every 10 s the
brokers' RSS (VmRSS, MiB) is printed; at the end the first and last samples and the growth.
Everything started is stopped by pid afterwards.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

from kafkalike.bench.many_topics import rss_bytes
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port
from kafkalike.logs import configure as configure_logs


def traffic(bootstrap: str, topics: list[str], stop: threading.Event, counts: dict[str, int]) -> None:
    """Produce 1 KiB records round-robin to ``topics`` and consume them in a group, committing
    after each batch read, until ``stop``; ``counts`` gets "produced" / "consumed"."""
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "gc-memory", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe(topics)
    value = b"x" * 1024
    i = 0
    try:
        while not stop.is_set():
            for _ in range(100):
                try:
                    producer.produce(topics[i % len(topics)], value)
                except BufferError:  # librdkafka's queue is full: let it drain
                    producer.poll(0.1)
                    continue
                i += 1
            producer.poll(0)
            counts["produced"] = i
            got = [m for m in consumer.consume(100, timeout=0.1) if m.error() is None]
            if got:
                counts["consumed"] = counts.get("consumed", 0) + len(got)
                consumer.commit(asynchronous=True)
        producer.flush(10)
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kafkalike.bench.gc_memory", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--topics", type=int, default=100)
    ap.add_argument("--freeze-interval-ms", type=int, default=1000)
    ap.add_argument("--unfreeze-interval-ms", type=int, default=0)
    args = ap.parse_args(argv)
    configure_logs(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="kafkalike-gc-memory-"))
    ensemble = ZkEnsemble(work / "zk", nodes=1, base_port=find_free_base_port(["127.0.0.1"]), die_with_parent=True)
    ensemble.start(timeout=90)
    clusters: dict[str, LocalCluster] = {}
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        for name, interval in (("policy", args.freeze_interval_ms), ("off", 0)):
            c = LocalCluster(work / name, brokers=1, base_port=find_free_base_port(["127.0.0.1"], low=30000, high=32000),
                             zookeeper_connect=ensemble.connect_string, chroot=f"gc-{name}",
                             overrides={"num.partitions": "1", "default.replication.factor": "1",
                                        "offsets.topic.replication.factor": "1", "kafkalike.metrics.port": "-1",
                                        "kafkalike.gc.freeze.interval.ms": str(interval),
                                        "kafkalike.gc.unfreeze.interval.ms": str(args.unfreeze_interval_ms)})
            clusters[name] = c
            c.start(timeout=90)
        from confluent_kafka.admin import AdminClient, NewTopic

        topics = [f"gc-memory-{i}" for i in range(args.topics)]
        counts: dict[str, dict[str, int]] = {}
        for name, c in clusters.items():
            admin = AdminClient({"bootstrap.servers": c.bootstrap_servers})
            for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
                f.result(60)
            counts[name] = {}
            th = threading.Thread(target=traffic, args=(c.bootstrap_servers, topics, stop, counts[name]), daemon=True)
            th.start()
            threads.append(th)
        pids = {name: c.broker_pid(c.broker_ids[0]) for name, c in clusters.items()}
        samples: dict[str, list[float]] = {name: [] for name in clusters}
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            time.sleep(10)
            for name, pid in pids.items():
                samples[name].append(rss_bytes(pid) / 2**20)
            print(f"{time.monotonic() - t0:5.0f} s  " + "  ".join(
                f"{name}: RSS {samples[name][-1]:.1f} MiB, {counts[name].get('produced', 0):,} produced, "
                f"{counts[name].get('consumed', 0):,} consumed" for name in clusters), flush=True)
        for name in clusters:
            s = samples[name]
            print(f"{name:6}: RSS first {s[0]:.1f} MiB, last {s[-1]:.1f} MiB, max {max(s):.1f} MiB, "
                  f"growth {s[-1] - s[0]:+.1f} MiB over {args.seconds:.0f} s", flush=True)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=60)
        for c in clusters.values():
            c.stop()
        ensemble.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
