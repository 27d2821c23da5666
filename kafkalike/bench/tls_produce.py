"""Produce and fetch throughput over a TLS (or SASL) listener beside a PLAINTEXT listener of
the same broker, measured in one run (docs/benchmarks.md, "TLS listeners"; docs/security.md).

One real broker process (LocalCluster: 1 broker, its own 1-node ZooKeeper) with
``PLAINTEXT://127.0.0.1:P`` and ``SSL://127.0.0.1:P+1`` (PEM keystore from a trustme CA).
Each round, librdkafka (confluent-kafka; acks=all, linger.ms 5, batch.size 16 KiB) produces
``--mbytes`` of ``--size``-byte records to a 1-partition topic per protocol, then a consumer
fetches those records back from the round's first offset; the two protocols alternate which
goes first from round to round. Reported: records/s and MB/s, medians over ``--rounds``.
Over TLS the broker reads fetched segment bytes with pread and encrypts them (no sendfile).
Not a test: nothing here asserts.

``--security`` picks the second listener: ``ssl`` (default), ``sasl_plaintext`` or
``sasl_ssl`` (SASL PLAIN with a user from the listener's JAAS config; authentication happens
once per connection, so the mechanism does not change steady-state throughput).

Usage:
  .venv/bin/python -m kafkalike.bench.tls_produce --rounds 5 --mbytes 20 --size 1000
  .venv/bin/python -m kafkalike.bench.tls_produce --json
  .venv/bin/python -m kafkalike.bench.tls_produce --security sasl_plaintext --rounds 5 --mbytes 20
Needs the test extra's trustme (certificates) and confluent-kafka.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kafkalike.bench.systems import rotated
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port


def _certs(base: Path) -> tuple[Path, Path]:
    """(broker keystore PEM, CA PEM) for 127.0.0.1, made with trustme."""
    try:
        import trustme
    except ImportError:
        raise SystemExit("kafkalike.bench.tls_produce needs trustme (pip install trustme)") from None
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    keystore, ca_pem = base / "broker.pem", base / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(keystore))
    ca.cert_pem.write_to_path(str(ca_pem))
    return keystore, ca_pem


def _produce(conf: dict[str, Any], topic: str, count: int, value: bytes) -> float:
    """Seconds to produce ``count`` records and get every acknowledgement."""
    from confluent_kafka import Producer

    producer = Producer({**conf, "acks": "all", "linger.ms": 5, "batch.size": 16384,
                         "queue.buffering.max.messages": 1_000_000})
    t0 = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.01)
    left = producer.flush(120)
    elapsed = time.perf_counter() - t0
    if left:
        raise SystemExit(f"{left} records not acknowledged on {topic}")
    return elapsed


def _fetch(conf: dict[str, Any], topic: str, start: int, count: int) -> float:
    """Seconds to fetch ``count`` records of partition 0 from offset ``start``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**conf, "group.id": "tls-bench", "enable.auto.commit": False,
                         "fetch.max.bytes": 52428800})
    consumer.assign([TopicPartition(topic, 0, start)])
    got = 0
    t0 = time.perf_counter()
    try:
        while got < count:
            for msg in consumer.consume(min(10000, count - got), 1.0):
                if msg.error() is None:
                    got += 1
            if time.perf_counter() - t0 > 120:
                raise SystemExit(f"fetched only {got} of {count} records on {topic}")
        return time.perf_counter() - t0
    finally:
        consumer.close()


def run(rounds: int, mbytes: float, size: int, base: Path, security: str = "ssl") -> dict[str, Any]:
    """Start the broker, run the alternating rounds, stop it; returns the medians."""
    keystore, ca_pem = _certs(base)
    port = find_free_base_port(["127.0.0.1"], per_host_ports=2, low=30000, high=32000)
    zk_port = find_free_base_port(["127.0.0.1"], low=20000, high=29000)
    proto = security.upper()
    overrides = {
        "listeners": f"PLAINTEXT://127.0.0.1:{port},{proto}://127.0.0.1:{port + 1}",
        "inter.broker.listener.name": "PLAINTEXT",
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(keystore),
        "offsets.topic.replication.factor": "1",
    }
    second: dict[str, Any] = {"bootstrap.servers": f"127.0.0.1:{port + 1}", "security.protocol": proto}
    if proto in ("SSL", "SASL_SSL"):
        second["ssl.ca.location"] = str(ca_pem)
    if proto.startswith("SASL_"):
        overrides["sasl.enabled.mechanisms"] = "PLAIN"
        overrides[f"listener.name.{proto.lower()}.plain.sasl.jaas.config"] = (
            'org.apache.kafka.common.security.plain.PlainLoginModule required user_bench="bench-secret";')
        second.update({"sasl.mechanism": "PLAIN", "sasl.username": "bench", "sasl.password": "bench-secret"})
    cluster = LocalCluster(base / "cluster", brokers=1, zk_nodes=1, base_port=port, zk_base_port=zk_port,
                           overrides=overrides)
    confs = {"PLAINTEXT": {"bootstrap.servers": f"127.0.0.1:{port}"}, proto: second}
    count = max(1, int(mbytes * 1e6 / size))
    value = b"x" * size
    results: dict[str, dict[str, list[float]]] = {p: {"produce": [], "fetch": []} for p in confs}
    try:
        cluster.start(timeout=90)
        for proto, conf in confs.items():  # warm-up: topic creation, connections
            _produce(conf, f"bench-{proto.lower()}", 100, value)
        for r in range(rounds):
            for proto in rotated(list(confs), r):
                topic = f"bench-{proto.lower()}"
                start = 100 + r * count
                results[proto]["produce"].append(_produce(confs[proto], topic, count, value))
                results[proto]["fetch"].append(_fetch(confs[proto], topic, start, count))
    finally:
        cluster.stop()
    out: dict[str, Any] = {"rounds": rounds, "records": count, "record_bytes": size, "security": security.upper()}
    for proto, phases in results.items():
        for phase, times in phases.items():
            med = statistics.median(times)
            out[f"{proto}_{phase}_records_per_s"] = round(count / med)
            out[f"{proto}_{phase}_mb_per_s"] = round(count * size / med / 1e6, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mbytes", type=float, default=20.0, help="MB produced per protocol per round")
    ap.add_argument("--size", type=int, default=1000, help="record value size (bytes)")
    ap.add_argument("--security", choices=["ssl", "sasl_plaintext", "sasl_ssl"], default="ssl",
                    help="the listener measured beside PLAINTEXT")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kafkalike-tls-bench-") as tmp:
        out = run(args.rounds, args.mbytes, args.size, Path(tmp), args.security)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['records']} records of {out['record_bytes']} B per protocol per round, "
              f"medians over {out['rounds']} rounds")
        for proto in ("PLAINTEXT", out["security"]):
            print(f"{proto:14s} produce {out[f'{proto}_produce_records_per_s']:>9,} rec/s "
                  f"{out[f'{proto}_produce_mb_per_s']:>6} MB/s   fetch "
                  f"{out[f'{proto}_fetch_records_per_s']:>9,} rec/s {out[f'{proto}_fetch_mb_per_s']:>6} MB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
