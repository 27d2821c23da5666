"""Client quota benchmark (issue 19): how close a producer throttled by ``producer_byte_rate``
comes to its quota R (the issue's bar: within 10 %).

One broker and one ZooKeeper node (LocalCluster on free ports, its /metrics on), a quota of R
bytes/s on client id ``bench-quota`` (AlterClientQuotas), then confluent-kafka produces
10,000-byte records as fast as it can for ``--seconds``. Two measurements per run:

- client side: the acknowledged value bytes per second over the second half of the run (the
  first seconds run at full speed: a fresh sensor counts 10 virtual windows, as Kafka's Rate);
- broker side: the broker's own ``kafka_server_quota_byte_rate`` sensor for the entity
  (``kafka.server:type=Produce,client-id=bench-quota byte-rate``: record bytes over its 11 1-s
  samples) read from /metrics every 2 s during the second half of the run; the median.

    .venv/bin/python -m kafkalike.bench.quota --quota 500000 --quota 1000000 --seconds 60

Prints one line per quota (and ``--json``: one JSON document); figures go to docs/benchmarks.md
with the load average, since the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import trio

CLIENT_ID = "bench-quota"
RECORD_BYTES = 10_000


async def _alter_quota(port: int, client_id: str, key: str, value: float) -> None:
    from kafkalike.client.connection import KafkaConnection
    from kafkalike.protocol.api_keys import ApiKey

    async with KafkaConnection.open("127.0.0.1", port) as conn:
        answer = await conn.call(ApiKey.ALTER_CLIENT_QUOTAS, validate_only=False, entries=[
            {"entity": [{"entity_type": "client-id", "entity_name": client_id}],
             "ops": [{"key": key, "value": value, "remove": False}]}])
    if int(answer.entries[0].error_code) != 0:
        raise RuntimeError(f"AlterClientQuotas failed: {answer.entries[0].error_message}")


def _broker_byte_rate(metrics_url: str, client_id: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if (s.name == "kafka_server_quota_byte_rate" and s.labels.get("resource") == "Produce"
                    and s.labels.get("clientId") == client_id):
                return float(s.value)
    return None


def produce_flat_out(bootstrap: str, topic: str, seconds: float, client_id: str = CLIENT_ID) -> list[tuple[float, int]]:
    """Produce RECORD_BYTES-byte records as fast as the client may for ``seconds``; returns
    (monotonic time of the acknowledgement, value bytes) per acknowledged record."""
    from confluent_kafka import Producer

    acked: list[tuple[float, int]] = []
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 5,
                         "queue.buffering.max.kbytes": 4096})
    value = b"b" * RECORD_BYTES

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            acked.append((time.monotonic(), len(msg.value())))
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            producer.produce(topic, value=value, on_delivery=delivered)
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    return acked


def run(quotas: list[int], seconds: float) -> list[dict[str, Any]]:
    """One cluster, one run of ``seconds`` per quota (a client id per run); the figures."""
    from kafkalike.cluster.local_cluster import LocalCluster
    from kafkalike.cluster.zk_ensemble import find_free_base_port

    base = Path(f"/tmp/kafkalike-quota-bench-{uuid.uuid4().hex[:6]}")
    port = find_free_base_port(["127.0.0.1"], per_host_ports=2, low=38000, high=40000)
    zk_port = find_free_base_port(["127.0.0.1"], per_host_ports=3, low=40000, high=42000)
    metrics_port = find_free_base_port(["127.0.0.1"], per_host_ports=1, low=36000, high=38000)
    cluster = LocalCluster(base, brokers=1, zk_nodes=1, base_port=port, zk_base_port=zk_port,
                           metrics_port=metrics_port)
    out = []
    try:
        cluster.start(timeout=180)
        for i, quota in enumerate(quotas):
            client_id = f"{CLIENT_ID}-{i}"
            trio.run(_alter_quota, port, client_id, "producer_byte_rate", float(quota))
            time.sleep(2)  # every broker reloads quotas on the /config/changes notification
            start = time.monotonic()
            sensor: list[float] = []
            stop = threading.Event()

            def sample(url: str = cluster.metrics_url(1), cid: str = client_id, t0: float = start) -> None:
                stop.wait(seconds / 2)
                while not stop.is_set() and time.monotonic() < t0 + seconds:
                    value = _broker_byte_rate(url, cid)
                    if value is not None:
                        sensor.append(value)
                    stop.wait(2.0)
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                acked = produce_flat_out(cluster.bootstrap_servers, f"bench-quota-{i}", seconds, client_id)
            finally:
                stop.set()
                sampler.join(15)
            half = start + seconds / 2
            late = sum(n for t, n in acked if half <= t <= start + seconds)
            client_rate = late / (seconds / 2)
            broker_rate = statistics.median(sensor) if sensor else None
            out.append({"producer_byte_rate": quota, "seconds": seconds, "client_bytes_per_s": round(client_rate),
                        "client_of_quota": round(client_rate / quota, 4),
                        "broker_sensor_bytes_per_s": None if broker_rate is None else round(broker_rate),
                        "broker_of_quota": None if broker_rate is None else round(broker_rate / quota, 4),
                        "load_average": round(os.getloadavg()[0], 1)})
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quota", type=int, action="append", help="producer_byte_rate (B/s), repeatable "
                    "(default 500000 and 1000000)")
    ap.add_argument("--seconds", type=float, default=60.0, help="produce time per quota (default 60)")
    ap.add_argument("--json", action="store_true", help="one JSON document")
    args = ap.parse_args(argv)
    results = run(args.quota or [500_000, 1_000_000], args.seconds)
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        broker = ("n/a" if r["broker_sensor_bytes_per_s"] is None else
                  f"{r['broker_sensor_bytes_per_s']:,} B/s ({r['broker_of_quota'] * 100:.1f} %)")
        print(f"producer_byte_rate={r['producer_byte_rate']:,} B/s: client acknowledged "
              f"{r['client_bytes_per_s']:,} B/s ({r['client_of_quota'] * 100:.1f} % of the quota) over the last "
              f"{r['seconds'] / 2:.0f} s of {r['seconds']:.0f} s; broker sensor {broker}; load average "
              f"{r['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
