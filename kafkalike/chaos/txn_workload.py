"""The transactional chaos workload: transactional producers, a consume-transform-produce
stage, read_committed and read_uncommitted consumers, recording a history for
kafkalike.chaos.txn_checker.

All clients are confluent-kafka (librdkafka 2.16), in threads:

- ``producers`` transactional producers (``transactional.id`` ``<run>-p<i>``) each run
  transactions of ``txn_size`` records over the ``partitions`` partitions of ``topic`` (record k
  of transaction n goes to partition (n + k) % partitions), value ``b"<txn>:<k>"``
  (txn_checker.encode_value), paced at ``rate`` transactions/s. Every ``abort_every``-th
  transaction is aborted on purpose; the rest are committed. Each record is written as
  TxnSent before it is handed to the client and TxnAcked from its delivery report; the
  records are flushed before the end, whose request time and outcome go into TxnEnded
  (``committed`` / ``aborted`` when the call returned; a commit that fails with an abortable
  error is aborted, outcome ``aborted``; any other failure leaves the outcome ``unknown`` and the
  producer is recreated with the same transactional.id, which fences the old instance).
- one consume-transform-produce stage (group ``group``, read_committed, transactional
  producer ``<run>-ctp``) reads ``topic`` and writes one record to ``output_topic`` per input
  record (same partition, ``source_*`` fields naming the input), committing the input
  position in the same transaction (send_offsets_to_transaction); every ``abort_every``-th of
  its transactions is aborted on purpose and the consumer rewinds to the committed position.
- one read_committed and one read_uncommitted consumer read every partition of both topics
  from the beginning while the workload runs (TxnAssigned, TxnConsumed).

``drain()`` (producers stopped, faults healed): a read_committed consumer reads every partition
of both topics from the start to the end offset it can fetch (the last stable offset), then
TxnDrained; the group's committed offsets are recorded as GroupOffsetFetched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import structlog

from kafkalike.chaos.history import now
from kafkalike.chaos.txn_checker import (ABORTED, COMMITTED, READ_COMMITTED, READ_UNCOMMITTED, UNKNOWN,
                                         GroupOffsetFetched, TxnAcked, TxnAssigned, TxnConsumed, TxnDrained,
                                         TxnEnded, TxnHistoryWriter, TxnOffsetsSent, TxnSent, decode_value,
                                         encode_value)

log = structlog.get_logger(__name__)


@attrs.frozen
class TxnWorkloadConfig:
    """The workload's shape: topics (``topic`` written by the producers, ``output_topic`` by
    the consume-transform-produce stage, both with ``partitions``), ``producers``
    transactional producers running ``rate`` transactions/s of ``txn_size`` records each,
    every ``abort_every``-th aborted on purpose; ``run`` prefixes transactional ids;
    ``transaction_timeout_ms`` is the producers' transaction.timeout.ms."""

    topic: str
    output_topic: str
    partitions: int = 3
    producers: int = 2
    txn_size: int = 4
    rate: float = 5.0
    abort_every: int = 4
    group: str = "txn-ctp"
    run: str = "txn"
    transaction_timeout_ms: int = 30000


@attrs.define
class TxnWorkloadStats:
    """Counters (approximate while running)."""

    transactions: int = 0
    committed: int = 0
    aborted: int = 0
    unknown: int = 0
    consumed: int = 0
    errors: dict[str, int] = attrs.Factory(dict)


def _where(m: Any) -> tuple[str, int, int] | None:
    """(topic, partition, offset) of a consumed message, None for one without them (an
    error event)."""
    topic, partition, offset = m.topic(), m.partition(), m.offset()
    if m.error() is not None or topic is None or partition is None or offset is None:
        return None
    return str(topic), int(partition), int(offset)


class LockedTxnHistory:
    """A TxnHistoryWriter shared by threads (one lock around each write)."""

    def __init__(self, writer: TxnHistoryWriter) -> None:
        self.writer = writer
        self._lock = threading.Lock()

    def write(self, event: Any) -> None:
        with self._lock:
            self.writer.write(event)

    def close(self) -> None:
        with self._lock:
            self.writer.close()


class TxnWorkload:
    """``start()``, ``stop_producers()``, ``stop_consumers()``, ``drain()``; see the module doc."""

    def __init__(self, bootstrap: str, config: TxnWorkloadConfig, history: LockedTxnHistory,
                 say: Callable[[str], None] | None = None) -> None:
        self.bootstrap = bootstrap
        self.config = config
        self.history = history
        self.say = say or (lambda s: None)
        self.stats = TxnWorkloadStats()
        self._stop_producing = threading.Event()
        self._stop_consuming = threading.Event()
        self._producers: list[threading.Thread] = []
        self._consumers: list[threading.Thread] = []
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- helpers
    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    def _error(self, name: str) -> None:
        with self._lock:
            self.stats.errors[name] = self.stats.errors.get(name, 0) + 1

    def _new_producer(self, txn_id: str) -> Any:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": txn_id, "linger.ms": 5,
                      "transaction.timeout.ms": self.config.transaction_timeout_ms,
                      "metadata.max.age.ms": 5000, "reconnect.backoff.max.ms": 1000})
        while not self._stop_producing.is_set():
            try:
                p.init_transactions(30)
                return p
            except Exception as exc:  # retriable while the coordinator moves
                self._error(f"init_transactions:{type(exc).__name__}")
                time.sleep(0.5)
        return None

    def _end(self, producer: Any, name: str, txn: str, intent: str) -> str:
        """Commit or abort ``txn``; record TxnEnded; returns its outcome."""
        from confluent_kafka import KafkaException

        start = now()
        outcome = UNKNOWN
        error = ""
        try:
            if intent == "commit":
                producer.commit_transaction(30)
                outcome = COMMITTED
            else:
                producer.abort_transaction(30)
                outcome = ABORTED
        except KafkaException as exc:
            err = exc.args[0]
            error = err.name() if hasattr(err, "name") else repr(exc)
            self._error(f"{intent}:{error}")
            if intent == "commit" and hasattr(err, "txn_requires_abort") and err.txn_requires_abort():
                try:
                    producer.abort_transaction(30)
                    outcome = ABORTED
                except KafkaException as exc2:
                    error += f"; abort: {exc2}"
        self.history.write(TxnEnded(now(), name, txn, intent, outcome, start, error))
        self._count({COMMITTED: "committed", ABORTED: "aborted"}.get(outcome, "unknown"))
        self._count("transactions")
        return outcome

    # ---------------------------------------------------------------- producers
    def _produce_loop(self, index: int) -> None:
        c = self.config
        name = f"{c.run}-p{index}"
        producer = self._new_producer(name)
        n = 0
        while producer is not None and not self._stop_producing.is_set():
            txn = f"{name}.{n}"
            tick = time.monotonic()
            try:
                producer.begin_transaction()
                for k in range(c.txn_size):
                    part = (n + k) % c.partitions
                    self.history.write(TxnSent(now(), name, txn, k, c.topic, part))
                    producer.produce(c.topic, encode_value(txn, k), partition=part,
                                     on_delivery=self._on_delivery(txn, k))
                producer.flush(30)
                intent = "abort" if c.abort_every and n % c.abort_every == c.abort_every - 1 else "commit"
                outcome = self._end(producer, name, txn, intent)
            except Exception as exc:
                self._error(f"produce:{type(exc).__name__}")
                self.history.write(TxnEnded(now(), name, txn, "commit", UNKNOWN, now(), repr(exc)))
                outcome = UNKNOWN
            if outcome == UNKNOWN:  # fence the old instance and start again
                producer = self._new_producer(name)
            n += 1
            time.sleep(max(0.0, 1.0 / c.rate - (time.monotonic() - tick)))

    def _on_delivery(self, txn: str, index: int) -> Callable[[Any, Any], None]:
        def cb(err: Any, msg: Any) -> None:
            if err is None and msg.offset() is not None and msg.offset() >= 0:
                self.history.write(TxnAcked(now(), txn, index, msg.topic(), msg.partition(), msg.offset()))
        return cb

    # ---------------------------------------------------------------- consume-transform-produce
    def _transform_loop(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        c = self.config
        name = f"{c.run}-ctp"
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": c.group, "enable.auto.commit": False,
                             "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
        consumer.assign([TopicPartition(c.topic, p) for p in range(c.partitions)])
        producer = self._new_producer(name)
        n = 0
        try:
            while producer is not None and not self._stop_consuming.is_set():
                msgs = [(m, w) for m in consumer.consume(100, 0.5) if (w := _where(m)) is not None]
                if not msgs:
                    continue
                txn = f"{name}.{n}"
                n += 1
                positions: dict[int, int] = {}
                try:
                    producer.begin_transaction()
                    for i, (m, (_topic, part, offset)) in enumerate(msgs):
                        rid = decode_value(m.value())
                        self.history.write(TxnConsumed(now(), name, READ_COMMITTED, c.topic, part, offset,
                                                       rid[0] if rid else None, rid[1] if rid else None))
                        self.history.write(TxnSent(now(), name, txn, i, c.output_topic, part, c.topic, part, offset))
                        producer.produce(c.output_topic, encode_value(txn, i), partition=part,
                                         on_delivery=self._on_delivery(txn, i))
                        positions[part] = offset + 1
                    offsets = [TopicPartition(c.topic, p, o) for p, o in sorted(positions.items())]
                    for tp in offsets:
                        self.history.write(TxnOffsetsSent(now(), name, txn, c.group, c.topic, tp.partition, tp.offset))
                    producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
                    producer.flush(30)
                    intent = "abort" if c.abort_every and n % c.abort_every == 0 else "commit"
                    outcome = self._end(producer, name, txn, intent)
                except Exception as exc:
                    self._error(f"transform:{type(exc).__name__}")
                    self.history.write(TxnEnded(now(), name, txn, "commit", UNKNOWN, now(), repr(exc)))
                    outcome = UNKNOWN
                if outcome != COMMITTED:  # read the input again from the committed position
                    self._rewind(consumer)
                if outcome == UNKNOWN:
                    producer = self._new_producer(name)
        finally:
            consumer.close()

    def _rewind(self, consumer: Any) -> None:
        """Seek every input partition to the group's committed offset (0 without one),
        retrying while the group coordinator moves (NOT_COORDINATOR, timeouts)."""
        from confluent_kafka import TopicPartition

        c = self.config
        while not self._stop_consuming.is_set():
            try:
                committed = consumer.committed([TopicPartition(c.topic, p) for p in range(c.partitions)], 30)
                for tp in committed:
                    consumer.seek(TopicPartition(c.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
                return
            except Exception as exc:
                self._error(f"rewind:{type(exc).__name__}")
                time.sleep(0.5)

    # ---------------------------------------------------------------- readers
    def _read_loop(self, isolation: str) -> None:
        from confluent_kafka import Consumer, TopicPartition

        c = self.config
        name = f"{c.run}-{isolation}"
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": name, "enable.auto.commit": False,
                             "isolation.level": isolation, "auto.offset.reset": "earliest"})
        parts = [TopicPartition(t, p, 0) for t in (c.topic, c.output_topic) for p in range(c.partitions)]
        for tp in parts:
            self.history.write(TxnAssigned(now(), name, isolation, tp.topic, tp.partition, 0))
        consumer.assign(parts)
        try:
            while not self._stop_consuming.is_set():
                for m in consumer.consume(500, 0.5):
                    where = _where(m)
                    if where is None:
                        continue
                    rid = decode_value(m.value())
                    self.history.write(TxnConsumed(now(), name, isolation, *where,
                                                   rid[0] if rid else None, rid[1] if rid else None))
                    self._count("consumed")
        finally:
            consumer.close()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the producers, the transform stage and both readers."""
        for i in range(self.config.producers):
            t = threading.Thread(target=self._guard, args=(self._produce_loop, i), name=f"txn-p{i}", daemon=True)
            self._producers.append(t)
        for target, args in ((self._transform_loop, ()), (self._read_loop, (READ_COMMITTED,)),
                             (self._read_loop, (READ_UNCOMMITTED,))):
            self._consumers.append(threading.Thread(target=self._guard, args=(target, *args), daemon=True))
        for t in self._producers + self._consumers:
            t.start()

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            log.error("txn_workload_thread_failed", thread=threading.current_thread().name, error=repr(exc))
            self._error(f"thread:{type(exc).__name__}")

    def stop_producers(self, timeout: float = 60.0) -> None:
        """Stop starting transactions; wait for the open ones to end."""
        self._stop_producing.set()
        for t in self._producers:
            t.join(timeout)

    def stop_consumers(self, timeout: float = 60.0) -> None:
        self._stop_consuming.set()
        for t in self._consumers:
            t.join(timeout)

    def drain(self, timeout: float = 60.0, name: str = "drain") -> dict[tuple[str, int], tuple[int, int] | None]:
        """Read every partition of both topics read_committed from the start to its end offset
        (TxnAssigned ... TxnDrained), then record the group's committed offsets. Returns
        (topic, partition) -> (start, end), or None when a partition could not be read to its
        end within ``timeout`` s (no TxnDrained: the checker then says "unknown")."""
        from confluent_kafka import Consumer, TopicPartition

        c = self.config
        out: dict[tuple[str, int], tuple[int, int] | None] = {}
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{c.run}-{name}",
                             "enable.auto.commit": False, "isolation.level": READ_COMMITTED})
        try:
            for topic in (c.topic, c.output_topic):
                for p in range(c.partitions):
                    tp = TopicPartition(topic, p)
                    deadline = time.monotonic() + timeout
                    try:
                        start, end = consumer.get_watermark_offsets(tp, 10, cached=False)
                    except Exception as exc:
                        log.warning("txn_drain_offsets_failed", topic=topic, partition=p, error=repr(exc))
                        out[(topic, p)] = None
                        continue
                    self.history.write(TxnAssigned(now(), name, READ_COMMITTED, topic, p, start))
                    consumer.assign([TopicPartition(topic, p, start)])
                    position = start
                    while position < end and time.monotonic() < deadline:
                        for m in consumer.consume(1000, 0.5):
                            where = _where(m)
                            if where is None:
                                continue
                            rid = decode_value(m.value())
                            self.history.write(TxnConsumed(now(), name, READ_COMMITTED, *where,
                                                           rid[0] if rid else None, rid[1] if rid else None))
                        got = consumer.position([TopicPartition(topic, p)])[0].offset
                        position = got if got >= 0 else position
                    if position >= end:
                        self.history.write(TxnDrained(now(), name, READ_COMMITTED, topic, p, start, end))
                        out[(topic, p)] = (start, end)
                    else:
                        out[(topic, p)] = None
        finally:
            consumer.close()
        group_reader = Consumer({"bootstrap.servers": self.bootstrap, "group.id": c.group, "enable.auto.commit": False})
        try:
            committed = group_reader.committed([TopicPartition(c.topic, p) for p in range(c.partitions)], 30)
            for tp in committed:
                self.history.write(GroupOffsetFetched(now(), c.group, c.topic, tp.partition,
                                                      tp.offset if tp.offset >= 0 else -1))
        finally:
            group_reader.close()
        return out


def run_txn_workload(bootstrap: str, config: TxnWorkloadConfig, history_path: str, seconds: float,
                     say: Callable[[str], None] | None = None) -> TxnWorkloadStats:
    """Run the workload for ``seconds`` (no faults), stop it, drain, close the history.
    Returns the counters. The caller creates the topics."""
    history = LockedTxnHistory(TxnHistoryWriter(history_path))
    workload = TxnWorkload(bootstrap, config, history, say)
    try:
        workload.start()
        time.sleep(seconds)
        workload.stop_producers()
        time.sleep(2.0)  # let the transform stage and the readers catch up
        workload.stop_consumers()
        workload.drain()
    finally:
        history.close()
    return workload.stats


@attrs.frozen
class TxnRunResult:
    """A transactional chaos run's outcome: the verdict, whether it matched the scenario's
    expectation (valid, or lost committed writes for a loss scenario), the report directory
    (history.jsonl, verdict.json), faults applied and the workload's counters."""

    verdict: Any
    as_expected: bool
    report_dir: Any
    faults_injected: int
    fault_errors: tuple[str, ...]
    stats: dict[str, Any]


def run_txn_chaos(backend: Any, options: Any, say: Callable[[str], None] = print,
                  stop: threading.Event | None = None) -> TxnRunResult:
    """``kafkalike chaos run --workload txn``: run_chaos's sequence with this workload and the
    transactional checker. ``options`` is a runner.RunOptions (scenario, duration, seed,
    partitions, producers; ``rate`` records/s per producer becomes rate / txn_size
    transactions/s). Topics ``chaos-txn-<hex>`` and ``<that>-out`` (RF 3,
    min.insync.replicas from the options); the nemesis aims at the first. Whatever happens the
    nemesis heals everything before the drain. Raises runner.ChaosRunError as run_chaos."""
    import json
    import random
    import uuid
    from pathlib import Path

    from kafkalike.chaos.faults import FaultContext, Nemesis, wait_isr_full
    from kafkalike.chaos.runner import ChaosRunError, _create_topic
    from kafkalike.chaos.scenarios import SCENARIOS, ScenarioContext
    from kafkalike.chaos.txn_checker import LOST_COMMITTED_WRITE, check_txn_file

    scenario = SCENARIOS.get(options.scenario)
    if scenario is None:
        raise ChaosRunError(f"unknown scenario {options.scenario!r}; known: {', '.join(SCENARIOS)}")
    if scenario.needs_zk and not backend.zk_node_ids:
        raise ChaosRunError(f"scenario {scenario.name} breaks ZooKeeper, which this backend does not own")
    report_dir = Path(options.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    topic = options.topic or f"chaos-txn-{uuid.uuid4().hex[:6]}"
    out_topic = f"{topic}-out"
    topic_config = {"min.insync.replicas": str(options.min_insync_replicas), **scenario.topic_config}
    history_path = report_dir / "history.jsonl"
    history_path.unlink(missing_ok=True)
    say(f"chaos run (transactions): backend {backend.name}, scenario {scenario.name}, seed {options.seed}, "
        f"duration {options.duration:g}s, topics {topic} {out_topic} {topic_config}")
    for t in (topic, out_topic):
        _create_topic(backend, t, options.partitions, topic_config)
    rng = random.Random(options.seed)
    history = LockedTxnHistory(TxnHistoryWriter(history_path))
    nemesis = Nemesis(FaultContext(backend, topic, 0, rng), history, say)
    config = TxnWorkloadConfig(topic, out_topic, partitions=options.partitions, producers=options.producers,
                               rate=max(1.0, options.rate / 4), txn_size=4, group=f"{topic}-ctp",
                               run=topic)
    wl = TxnWorkload(backend.bootstrap_servers, config, history, say)
    t0 = now()
    stop = stop or threading.Event()
    try:
        wl.start()
        stop.wait(options.warmup)
        try:
            scenario.run(ScenarioContext(nemesis, time.monotonic() + options.duration, rng, stop))
        finally:
            nemesis.heal_all()
        say(f"[{now() - t0:7.1f}s] faults over; stopping producers ({wl.stats.transactions} transactions)")
        wl.stop_producers()
        stop.wait(3.0)
        wl.stop_consumers()
        for t in (topic, out_topic):
            if not wait_isr_full(backend, t, 90.0):
                say(f"warning: {t} has no full ISR again after 90 s; draining anyway")
        drained = wl.drain(timeout=60.0)
        say(f"[{now() - t0:7.1f}s] drained {sum(1 for v in drained.values() if v)} of {len(drained)} partitions")
    finally:
        wl.stop_producers(timeout=30)
        wl.stop_consumers()
        nemesis.heal_all()
        history.close()
    verdict = check_txn_file(history_path)
    ok = verdict.counts[LOST_COMMITTED_WRITE] > 0 if scenario.expect == "lost" else verdict.valid
    (report_dir / "verdict.json").write_text(json.dumps(
        {**verdict.to_json(), "scenario": scenario.name, "seed": options.seed, "backend": backend.name,
         "duration_s": options.duration, "faults_injected": len(nemesis.injected),
         "fault_errors": list(nemesis.errors), "workload": attrs.asdict(wl.stats)}, indent=2))
    say(f"VERDICT {verdict.headline()}")
    say(f"expected {'loss' if scenario.expect == 'lost' else 'valid'}: "
        f"{'as expected' if ok else 'NOT as expected'}; report in {report_dir}")
    return TxnRunResult(verdict, ok, report_dir, len(nemesis.injected), tuple(nemesis.errors),
                        attrs.asdict(wl.stats))
