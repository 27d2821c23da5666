"""Produce/consume throughput of a local 3-broker kafkalike cluster (not collected by pytest).

Run: .venv/bin/python tests/broker/bench_broker.py [records] [record_bytes]
Starts a 1-node ZooKeeper and three broker processes on 127.0.0.1-3 under /tmp, creates one
RF-1 and one RF-3 single-partition topic, produces with confluent-kafka (acks=1 and acks=all,
linger.ms=5) and consumes everything with `kcat -C -e`; prints records/s and MB/s. Every
process is stopped by pid at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(n: int = 200_000, size: int = 100) -> None:
    from confluent_kafka import Producer
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from kafkalike.cluster.local_cluster import LocalCluster
    from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

    base = Path(tempfile.mkdtemp(prefix="kafkalike-bench-"))
    zk = ZkEnsemble(str(base / "zk"), nodes=1, base_port=find_free_base_port(["127.0.0.1"]), first_host=1)
    hosts = [f"127.0.0.{i}" for i in range(1, 4)]
    cluster = LocalCluster(base / "cluster", brokers=3, base_port=find_free_base_port(hosts, low=30000, high=32000),
                           zookeeper_connect=zk.connect_string, chroot="bench", overrides={})
    try:
        zk.start(timeout=60)
        cluster.start(timeout=60)
        bootstrap = cluster.bootstrap_servers
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("rf1", 1, 1), NewTopic("rf3", 1, 3)])
        admin.close()
        payload = b"x" * size
        for topic, acks in (("rf1", "1"), ("rf3", "all")):
            producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                                 "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000})
            producer.produce(topic, payload)  # warm-up: metadata, leader, connection
            assert producer.flush(60) == 0
            t0 = time.monotonic()
            for _ in range(n):
                while True:
                    try:
                        producer.produce(topic, payload)
                        break
                    except BufferError:
                        producer.poll(0.01)
            assert producer.flush(120) == 0
            dt = time.monotonic() - t0
            print(f"produce {topic} acks={acks}: {n / dt:,.0f} records/s, {n * size / dt / 1e6:.1f} MB/s")
            t0 = time.monotonic()
            out = subprocess.run(["kcat", "-b", bootstrap, "-t", topic, "-C", "-o", "beginning", "-e", "-q",
                                  "-f", "%o\n"], capture_output=True, text=True, timeout=300).stdout
            dt = time.monotonic() - t0
            got = len(out.split()) - 1  # minus the warm-up record
            print(f"consume {topic} (kcat): {got:,} records in {dt:.2f} s = {got / dt:,.0f} records/s")
    finally:
        cluster.stop()
        zk.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
