"""Transactional produce beside idempotent produce, on kafkalike and on Apache Kafka 3.9
(ZooKeeper mode), measured in one run (docs/benchmarks.md "Transactional produce",
docs/transactions.md; issue 18).

Both systems run at once, each a 3-broker cluster on one shared ZooKeeper ensemble (each
under its own chroot): kafkalike's ``LocalCluster`` on 127.0.0.1-3 and Kafka 3.9's JVM brokers
(``reference_kafka.ReferenceKafka``, the jars in reference/lib) on 127.0.1.1-3, with the same
durability settings (topics RF 3, min.insync.replicas 2; ``__transaction_state`` RF 3, min
ISR 2, 50 partitions on both).

One round measures, on each system and in each mode, one confluent-kafka producer (librdkafka,
the same client and settings for all four: acks=all, enable.idempotence, linger.ms 5) sending
``--records`` records of ``--size`` bytes spread round-robin over the ``--partitions``
partitions of a topic of its own:

- ``idempotent``: produce every record, then ``flush()``; the time runs from the first
  ``produce()`` to the last acknowledgement.
- ``transactional``: ``begin_transaction()``, ``--txn-records`` records, ``commit_transaction()``,
  repeated until ``--records`` are sent; the time runs from the first ``begin_transaction()``
  to the last commit's answer. (A commit is answered once PrepareCommit is in
  ``__transaction_state``; the markers follow. A ``begin`` + first send while the previous
  transaction's markers are still being written gets CONCURRENT_TRANSACTIONS and is retried by
  the client: that wait is part of the figure, on both systems alike.)

Before the rounds each producer is created, gets its producer id (``init_transactions()``, or
one idempotent record) and sends one transaction/record, outside the timing; then
``--warmup-rounds`` full rounds run and are not counted (the JVM's JIT). The order of
systems and of modes alternates from round to round. Reported per (system, mode): records/s
(median over ``--rounds``), MB/s, and for transactions, transactions/s and ms per
transaction; then the ratios transactional/idempotent per system and kafkalike/Kafka per mode.
After the rounds a read_committed consumer reads every topic back and must count exactly the
records sent (BenchError otherwise), so a figure is never one of lost or aborted records.

Not a test: nothing here asserts the figures. The machine's load average is printed before
and after; on a shared machine quote the ratios, not the absolute rates.

Usage:
  .venv/bin/python -m kafkalike.bench.txn_produce                       # both systems, defaults
  .venv/bin/python -m kafkalike.bench.txn_produce --rounds 5 --records 20000 --size 100
  .venv/bin/python -m kafkalike.bench.txn_produce --systems kafkalike --json
Needs confluent-kafka, java, ZooKeeper's jars (as every kafkalike cluster) and, for kafka-zk,
Kafka 3.9's jars (``./scripts/reference-kafka fetch``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import structlog

from kafkalike.bench import reference_kafka as rk
from kafkalike.bench.systems import (LIBRDKAFKA_LOGGER, BenchError, BenchSystem, KafkalikeSystem, ReferenceSystem,
                                     create_topic, rotated, stop_systems)
from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

log = structlog.get_logger(__name__)

SYSTEM_NAMES = ("kafkalike", "kafka-zk")
MODES = ("idempotent", "transactional")
PRODUCER_CONF: dict[str, Any] = {"acks": "all", "enable.idempotence": True, "linger.ms": 5,
                                 "queue.buffering.max.messages": 1_000_000,
                                 "logger": LIBRDKAFKA_LOGGER, "error_cb": lambda err: None}
TIMEOUT_S = 300.0
"""Bound on one measurement (a flush or a commit) and on the read-back, seconds."""


@attrs.frozen
class TxnBenchConfig:
    """What one run measures. records: records per (system, mode) per round; size: value
    bytes per record; txn_records: records per transaction; partitions: of each topic (a
    transaction spans all of them); rounds: measurements per (system, mode), medians
    reported; warmup_rounds: full rounds run first and not counted (the JVM's JIT, kafkalike's
    caches)."""

    records: int = 20_000
    size: int = 100
    txn_records: int = 100
    partitions: int = 3
    rounds: int = 5
    warmup_rounds: int = 1

    def check(self) -> None:
        """Raises BenchError for a value the run cannot use."""
        for name in ("records", "size", "txn_records", "partitions", "rounds"):
            if getattr(self, name) < 1:
                raise BenchError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.warmup_rounds < 0:
            raise BenchError(f"--warmup-rounds must be at least 0, got {self.warmup_rounds}")


@attrs.frozen
class ModeResult:
    """The figures of one (system, mode): ``seconds`` per round (each for ``records`` records
    in ``transactions`` transactions, 0 for idempotent) and the medians derived from them."""

    system: str
    mode: str
    records: int
    record_bytes: int
    transactions: int
    seconds: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def records_per_s(self) -> float:
        return self.records / self.median_s

    @property
    def mb_per_s(self) -> float:
        return self.records * self.record_bytes / self.median_s / 1e6

    @property
    def ms_per_transaction(self) -> float | None:
        return self.median_s * 1000 / self.transactions if self.transactions else None

    def to_json(self) -> dict[str, Any]:
        return {"system": self.system, "mode": self.mode, "records": self.records,
                "record_bytes": self.record_bytes, "transactions": self.transactions,
                "seconds": [round(s, 4) for s in self.seconds], "records_per_s": round(self.records_per_s),
                "mb_per_s": round(self.mb_per_s, 2),
                "ms_per_transaction": None if self.ms_per_transaction is None else round(self.ms_per_transaction, 2)}


class _Producer:
    """One confluent-kafka producer of one (system, mode), warmed up; counts acknowledgements
    and delivery errors (a delivery error fails the measurement)."""

    def __init__(self, bootstrap: str, mode: str, topic: str, partitions: int, value: bytes) -> None:
        from confluent_kafka import Producer

        self.mode, self.topic, self.partitions, self.value = mode, topic, partitions, value
        conf = {**PRODUCER_CONF, "bootstrap.servers": bootstrap}
        if mode == "transactional":
            conf["transactional.id"] = f"txn-bench-{uuid.uuid4().hex[:8]}"
        self.producer = Producer(conf)
        self.acked = 0
        self.errors: list[str] = []
        if mode == "transactional":
            self.producer.init_transactions(TIMEOUT_S)
            self.producer.begin_transaction()
            self._send(1)
            self.producer.commit_transaction(TIMEOUT_S)
        else:
            self._send(1)
            self._flush()
        self._check(1)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            self.acked += 1
        elif len(self.errors) < 5:
            self.errors.append(str(err))

    def _send(self, count: int) -> None:
        for i in range(count):
            while True:
                try:
                    self.producer.produce(self.topic, self.value, partition=i % self.partitions,
                                          on_delivery=self._on_delivery)
                    break
                except BufferError:
                    self.producer.poll(0.01)

    def _flush(self) -> None:
        if self.producer.flush(TIMEOUT_S):
            raise BenchError(f"{self.topic}: records not acknowledged within {TIMEOUT_S:.0f} s")

    def _check(self, expected: int) -> None:
        self.producer.poll(0)
        if self.errors or self.acked != expected:
            raise BenchError(f"{self.topic} ({self.mode}): {self.acked} of {expected} acknowledged; "
                             f"errors: {self.errors}")

    def measure(self, records: int, txn_records: int) -> float:
        """Seconds to send ``records`` records (in transactions of ``txn_records``, or
        idempotent) and have every one acknowledged / committed."""
        self.acked = 0
        t0 = time.perf_counter()
        if self.mode == "transactional":
            left = records
            while left:
                n = min(txn_records, left)
                self.producer.begin_transaction()
                self._send(n)
                self.producer.commit_transaction(TIMEOUT_S)  # flushes, then EndTxn(commit)
                left -= n
        else:
            self._send(records)
            self._flush()
        elapsed = time.perf_counter() - t0
        self._check(records)
        return elapsed


def count_committed(bootstrap: str, topic: str, partitions: int, expected: int) -> int:
    """Records of ``topic`` a read_committed consumer reads from offset 0 (stops at
    ``expected``, or after 10 s without a record, or after TIMEOUT_S)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"txn-bench-{uuid.uuid4().hex[:6]}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "logger": LIBRDKAFKA_LOGGER, "error_cb": lambda err: None})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got, last, t0 = 0, time.monotonic(), time.monotonic()
        while got < expected and time.monotonic() - last < 10 and time.monotonic() - t0 < TIMEOUT_S:
            batch = consumer.consume(10_000, 0.5)
            n = sum(1 for m in batch if m.error() is None)
            if n:
                got, last = got + n, time.monotonic()
        return got
    finally:
        consumer.close()


def load_average() -> str:
    """The 1/5/15-minute load averages, as /proc/loadavg prints them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(config: TxnBenchConfig, systems: Sequence[str] = SYSTEM_NAMES, work: Path | None = None,
        zookeeper_connect: str | None = None) -> dict[str, Any]:
    """Start ``systems`` (names from SYSTEM_NAMES), run ``config.rounds`` alternating rounds,
    read every topic back read_committed, stop everything (by pid, also on errors).

    work: directory for the clusters (a temporary one, removed afterwards, when None);
    zookeeper_connect: an existing ensemble (a 1-node one is started under ``work`` when
    None). Returns {"config", "load_before", "load_after", "kafka_version", "results":
    [ModeResult.to_json()...], "ratios": {...}}. Raises BenchError when a system does not
    start, a record is not acknowledged, or the read-back count differs.
    """
    config.check()
    unknown = [s for s in systems if s not in SYSTEM_NAMES]
    if unknown or not systems:
        raise BenchError(f"systems must be among {', '.join(SYSTEM_NAMES)}, got {list(systems)}")
    if "kafka-zk" in systems:
        try:
            version = rk.kafka_version()
        except rk.ReferenceKafkaError as e:
            raise BenchError(f"kafka-zk needs Kafka 3.9's jars: {e}") from e
    own_work = work is None
    work = Path(work or tempfile.mkdtemp(prefix="kafkalike-txn-bench-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    value = os.urandom(config.size)
    ensemble: ZkEnsemble | None = None
    live: dict[str, BenchSystem] = {}
    load_before = load_average()
    seconds: dict[tuple[str, str], list[float]] = {(s, m): [] for s in systems for m in MODES}
    try:
        if zookeeper_connect is None:
            ensemble = ZkEnsemble(work / "zk", nodes=1, base_port=find_free_base_port(["127.0.0.1"]),
                                  die_with_parent=True)
            ensemble.start(timeout=90)
            zookeeper_connect = ensemble.connect_string
        tag = uuid.uuid4().hex[:6]
        for name in systems:
            system: BenchSystem
            if name == "kafkalike":
                port = find_free_base_port([f"127.0.0.{i}" for i in (1, 2, 3)], low=30000, high=32000)
                system = KafkalikeSystem(work / name, zookeeper_connect, port, chroot=f"txn-bench-kafkalike-{tag}")
            else:
                port = rk.find_free_port([f"127.0.1.{i}" for i in (1, 2, 3)], span=2, start=33000, stop=40000)
                system = ReferenceSystem(work / name, "zk", port, zookeeper_connect=zookeeper_connect,
                                         chroot=f"/txn-bench-kafka-zk-{tag}")
            live[name] = system  # stopped in the finally block from here on
            print(f"starting {name} ...", flush=True)
            system.up()
        producers: dict[tuple[str, str], _Producer] = {}
        for name, system in live.items():
            for mode in MODES:
                topic = f"txn-bench-{mode}"
                create_topic(system.bootstrap, topic, config.partitions, 3, timeout=120)
                print(f"  {name} {mode}: warming up", flush=True)
                producers[name, mode] = _Producer(system.bootstrap, mode, topic, config.partitions, value)
        for r in range(-config.warmup_rounds, config.rounds):
            for name in rotated(list(live), r):
                for mode in rotated(MODES, r):
                    s = producers[name, mode].measure(config.records, config.txn_records)
                    if r >= 0:
                        seconds[name, mode].append(s)
                    label = f"round {r + 1}/{config.rounds}" if r >= 0 else "warm-up round"
                    print(f"  {label} {name:9s} {mode:13s} {s:7.2f} s "
                          f"({config.records / s:,.0f} records/s)", flush=True)
        expected = 1 + (config.warmup_rounds + config.rounds) * config.records
        for (name, mode), p in producers.items():
            got = count_committed(live[name].bootstrap, p.topic, config.partitions, expected)
            if got != expected:
                raise BenchError(f"{name} {p.topic}: read_committed read {got} records, {expected} were sent")
            print(f"  {name} {mode}: {got:,} records read back read_committed", flush=True)
        for p in producers.values():
            p.producer.flush(10)
    finally:
        stop_systems(live, ensemble, "txn_bench_stop_failed")
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    transactions = -(-config.records // config.txn_records)
    results = [ModeResult(name, mode, config.records, config.size, transactions if mode == "transactional" else 0,
                          tuple(times)) for (name, mode), times in seconds.items()]
    by = {(r.system, r.mode): r for r in results}
    ratios: dict[str, float] = {}
    for name in systems:
        ratios[f"{name} transactional/idempotent"] = (by[name, "transactional"].records_per_s
                                                      / by[name, "idempotent"].records_per_s)
    if "kafkalike" in systems and "kafka-zk" in systems:
        for mode in MODES:
            ratios[f"{mode} kafkalike/kafka-zk"] = by["kafkalike", mode].records_per_s / by["kafka-zk", mode].records_per_s
    return {"config": attrs.asdict(config), "systems": list(systems),
            "kafka_version": version if "kafka-zk" in systems else None,
            "load_before": load_before, "load_after": load_average(),
            "results": [r.to_json() for r in results], "ratios": {k: round(v, 3) for k, v in ratios.items()}}


def format_table(out: dict[str, Any]) -> str:
    """The Markdown table docs/benchmarks.md shows, from run()'s result."""
    c = out["config"]
    lines = [f"{c['records']:,} records of {c['size']} B per (system, mode) per round over {c['partitions']} "
             f"partitions, transactions of {c['txn_records']}, medians of {c['rounds']} rounds after "
             f"{c['warmup_rounds']} warm-up round(s); "
             f"load average before {out['load_before']}, after {out['load_after']}"
             + (f"; Kafka {out['kafka_version']}" if out.get("kafka_version") else ""),
             "", "| system | mode | records/s | MB/s | transactions/s | ms per transaction |", "|---|---|---|---|---|---|"]
    for r in out["results"]:
        txn = r["ms_per_transaction"]
        lines.append(f"| {r['system']} | {r['mode']} | {r['records_per_s']:,} | {r['mb_per_s']} | "
                     + (f"{1000 / txn:,.1f} | {txn} |" if txn else "— | — |"))
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in out["ratios"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    d = TxnBenchConfig()
    ap.add_argument("--records", type=int, default=d.records, help="records per (system, mode) per round")
    ap.add_argument("--size", type=int, default=d.size, help="record value size (bytes)")
    ap.add_argument("--txn-records", type=int, default=d.txn_records, help="records per transaction")
    ap.add_argument("--partitions", type=int, default=d.partitions, help="partitions of each topic")
    ap.add_argument("--rounds", type=int, default=d.rounds)
    ap.add_argument("--warmup-rounds", type=int, default=d.warmup_rounds, help="rounds run first, not counted")
    ap.add_argument("--systems", default=",".join(SYSTEM_NAMES), help="comma-separated: kafkalike,kafka-zk")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    ap.add_argument("--json-out", type=Path, help="also write the result as JSON to this file")
    args = ap.parse_args(argv)
    config = TxnBenchConfig(args.records, args.size, args.txn_records, args.partitions, args.rounds, args.warmup_rounds)
    try:
        out = run(config, [s.strip() for s in args.systems.split(",") if s.strip()])
    except BenchError as e:
        print(f"txn_produce: {e}")
        return 1
    if args.json_out:
        args.json_out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out) if args.json else format_table(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
