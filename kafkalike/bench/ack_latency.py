"""End-to-end acks=all latency of two versions of kafkalike side by side, with other partitions
present on the brokers.

    python -m kafkalike.bench.ack_latency --before /tmp/kl-before --after . \\
        --extra-topics 12 --rate 500 --seconds 20 --rounds 2

``--before`` and ``--after`` are checkouts of kafkalike (e.g. ``git worktree add
/tmp/kl-before 52d5754``). One 3-node ZooKeeper ensemble is started; each checkout gets a
3-broker cluster of its own (its own chroot and port, the durability settings of the bench's
``kafkalike`` system: min.insync.replicas 2, RF 3), running from its own checkout. Before
measuring, ``--extra-topics`` topics of 6 partitions (RF 3) are created on each cluster and
filled with ``--extra-records`` 100-byte records: the state the brokers are in when ``kafkalike
bench --full`` reaches its latency workload (its produce topics are kept for the consume
workload). Then, alternating between the two clusters for ``--rounds`` rounds, the bench's
own latency workload (``workloads.end_to_end_latency``: librdkafka, acks=all, linger.ms=0, 5
requests in flight per connection, 6 partitions) runs at ``--rate`` records/s for
``--seconds`` on a fresh topic. Prints p50 / p99 / p99.9 (ms) and the delivered rate per run,
then the medians. docs/benchmarks.md quotes it for KIP-227 fetch sessions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from kafkalike.bench import workloads as wl
from kafkalike.bench.systems import LIBRDKAFKA_LOGGER, KafkalikeSystem, create_topic, processes_run_from
from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

HOSTS = [f"127.0.0.{i}" for i in (1, 2, 3)]


def _fill(bootstrap: str, topics: int, records: int) -> None:
    """``topics`` topics extra-0.. of 6 partitions (RF 3), ``records`` records each (acks=1)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                         "logger": LIBRDKAFKA_LOGGER})
    payload = b"y" * wl.RECORD_SIZE
    for k in range(topics):
        create_topic(bootstrap, f"extra-{k}", 6, 3, timeout=120)
        for j in range(records):
            producer.produce(f"extra-{k}", payload, partition=j % 6)
            if j % 10_000 == 0:
                producer.poll(0)
        producer.flush(60)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kafkalike.bench.ack_latency", description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="checkout of the code before the change")
    ap.add_argument("--after", required=True, help="checkout of the code after the change")
    ap.add_argument("--extra-topics", type=int, default=12)
    ap.add_argument("--extra-records", type=int, default=20_000)
    ap.add_argument("--rate", type=int, default=500, help="records/s")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    codes = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    work = Path(tempfile.mkdtemp(prefix="ack-latency-"))
    ensemble = ZkEnsemble(work / "zk", nodes=3, base_port=find_free_base_port(HOSTS), die_with_parent=True)
    systems: dict[str, KafkalikeSystem] = {}
    try:
        ensemble.start(timeout=90)
        for name, code in codes.items():
            port = find_free_base_port(HOSTS, low=30000, high=32000)
            system = KafkalikeSystem(work / name, ensemble.connect_string, port, chroot=f"ack-latency-{name}",
                                     name=name)
            systems[name] = system
            with processes_run_from(code):
                system.up()
            _fill(system.bootstrap, args.extra_topics, args.extra_records)
            print(f"{name} ({code}): up, {args.extra_topics} extra topics of 6 partitions", flush=True)
        p50s: dict[str, list[float]] = {name: [] for name in systems}
        for rnd in range(args.rounds):
            for name, system in systems.items():
                topic = f"lat-r{rnd}"
                create_topic(system.bootstrap, topic, 6, 3, timeout=120)
                res = wl.end_to_end_latency(system, topic, args.rate, args.seconds)
                p50s[name].append(res.p50_ms)
                print(f"round {rnd} {name}: p50 {res.p50_ms:.2f} ms, p99 {res.p99_ms:.2f} ms, "
                      f"p99.9 {res.p999_ms:.2f} ms, delivered {res.delivered_rate:.0f} records/s "
                      f"(load avg 1 min {os.getloadavg()[0]:.2f})", flush=True)
        for name, values in p50s.items():
            print(f"median p50 {name}: {statistics.median(values):.2f} ms ({len(values)} runs)", flush=True)
    finally:
        for system in systems.values():
            system.down()
        ensemble.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
