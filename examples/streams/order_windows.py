#!/usr/bin/env python3
"""The input, the expected answer and the judge of the stream-processing examples
(docs/tutorials/streams.md): "count how many orders were placed in the last 10 minutes" as a
tumbling-window aggregation, done by Kafka Streams (examples/streams/java, OrderCounts) and by
quixstreams (examples/streams/quix_order_counts.py), both reading ``orders`` and writing one
update per input order to their output topic:

    key   "<status>@<window start ms>"           (quixstreams: "<status>")
    value {"status": "placed", "window_start": ms, "window_end": ms, "count": n}

Orders have examples/orders/orders.py's shape (key: order id; value: JSON ``order_id``,
``user_id``, ``status``, ``quantity``, ``amount_cents``) and an event time set by the producer
(the record's CreateTime timestamp): ``--span-minutes`` of event time ending at the last whole
10 minutes before now, spread evenly over the orders, so the answer is exact.

Commands (all take --bootstrap-server):

    order_windows.py create-topics --output T [--partitions 3] [--replication-factor R]
    order_windows.py produce --count N [--first 1] [--span-minutes 60]
    order_windows.py check --output T [--exactly-once] [--timeout S] [--summary F]
        reads ``orders`` to its end (the expected counts per window, computed from the input) and
        T with a read_committed consumer until every window's latest count equals them; with
        --exactly-once also that each window's updates are exactly 1, 2, ..., n (no update
        repeated: nothing counted twice; none missing). Exit 1 when not within --timeout.
    order_windows.py judge --app streams|quix --work-dir W [--cluster-dir D] [--count N] ...
        the exactly-once judge (issue 18): creates the topics, starts the app, produces orders at
        --rate per second, kills the app with SIGKILL at 30% of the output and starts it again,
        with --cluster-dir also SIGKILLs a broker (the leader of the output's partition 0) at 60%
        and restarts it, then runs ``check --exactly-once``. Summary: W/summary.json. For
        quixstreams the killed broker is never the group coordinator: librdkafka's
        send_offsets_to_transaction can block forever when the group coordinator goes down
        mid-transaction (librdkafka issues 5456 and 5511, seen here with quixstreams 3.28.1 /
        confluent-kafka 2.12.2: the transaction timed out and was aborted by kafkalike's
        coordinator after 60 s, the app stayed blocked).
        --input / --output: the topic names (default orders, order-counts-<app>).

Runs in kafkalike's .venv (confluent-kafka); the quixstreams app has its own venv (scripts/streams).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
ORDERS = "orders"
WINDOW_MS = 10 * 60 * 1000
"""The tumbling window: 10 minutes, in ms."""
APPS = {
    # app name -> (output topic, application id / consumer group, exactly-once guarantee name)
    "streams": ("order-counts-streams", "order-counts-streams", "exactly_once_v2"),
    "quix": ("order-counts-quix", "order-counts-quix", "exactly-once"),
}
_T0 = time.monotonic()


def say(text: str) -> None:
    """One progress line, with the seconds since this process started."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {text}", flush=True)


# ---------------------------------------------------------------------- topics and input

def create_topics(bootstrap: str, output: str, partitions: int, replication_factor: int, input_topic: str = ORDERS) -> None:
    """``input_topic`` (orders) and ``output`` with ``partitions`` partitions each; an existing topic is kept."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = [NewTopic(t, num_partitions=partitions, replication_factor=replication_factor) for t in (input_topic, output)]
    deadline = time.monotonic() + 60
    while wanted:
        futures = admin.create_topics(wanted, operation_timeout=30)
        retry = []
        for topic, future in futures.items():
            try:
                future.result()
                say(f"created {topic} ({partitions} partitions, replication factor {replication_factor})")
            except KafkaException as e:
                err = e.args[0]
                if err.name() == "TOPIC_ALREADY_EXISTS":
                    say(f"{topic} exists")
                elif err.retriable() and time.monotonic() < deadline:
                    retry.append(next(t for t in wanted if t.topic == topic))
                else:
                    raise
        wanted = retry
        if wanted:
            time.sleep(1)


def window_start(timestamp_ms: int) -> int:
    """Start (epoch ms) of the 10-minute tumbling window holding ``timestamp_ms``."""
    return timestamp_ms - timestamp_ms % WINDOW_MS


class OrderSource:
    """Orders first..first+count-1 with event times spread evenly over ``span_minutes`` ending
    at the last whole 10 minutes before ``now_ms`` (so the windows are whole and in the past)."""

    def __init__(self, first: int, count: int, span_minutes: int, now_ms: int | None = None) -> None:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        span_ms = span_minutes * 60_000
        self.first, self.count = first, count
        self.start_ms = window_start(now_ms) - span_ms
        self.step_ms = span_ms / max(count, 1)

    def order(self, i: int) -> tuple[bytes, bytes, int]:
        """(key, value, timestamp ms) of order ``i``."""
        value = {"order_id": i, "user_id": i % 11, "status": "placed", "quantity": 1 + i % 4,
                 "amount_cents": 100 * (1 + i % 50)}
        return str(i).encode(), json.dumps(value).encode(), self.start_ms + int((i - self.first) * self.step_ms)


def new_producer(bootstrap: str) -> Producer:
    """An idempotent producer (acks=all): a retry after a broker failure writes nothing twice."""
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 20,
                     "message.timeout.ms": 120_000})


def produce(bootstrap: str, first: int, count: int, span_minutes: int, input_topic: str = ORDERS) -> None:
    source = OrderSource(first, count, span_minutes)
    producer = new_producer(bootstrap)
    failures: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for i in range(first, first + count):
        key, value, ts = source.order(i)
        _produce(producer, input_topic, key, value, ts, delivered)
    if producer.flush(120) != 0 or failures:
        raise SystemExit(f"produce: {len(failures)} orders not delivered: {failures[:3]}")
    say(f"produced orders {first}..{first + count - 1} to {input_topic}, event time {_iso(source.start_ms)} .. "
        f"{_iso(source.start_ms + int(count * source.step_ms))}")


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, ts: int, on_delivery: Any) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value, timestamp=ts, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.1)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


# ---------------------------------------------------------------------- reading

def _assigned_consumer(bootstrap: str, topic: str, group: str) -> tuple[Consumer, list[TopicPartition]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "isolation.level": "read_committed", "enable.partition.eof": False})
    deadline = time.monotonic() + 60
    while True:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"topic {topic} not found")
        time.sleep(0.5)
    partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
    consumer.assign(partitions)
    return consumer, partitions


def expected_counts(bootstrap: str, input_topic: str = ORDERS) -> dict[tuple[str, int], int]:
    """(status, window start ms) -> number of orders in ``input_topic``: the answer, from the input."""
    consumer, partitions = _assigned_consumer(bootstrap, input_topic, "order-windows-expected")
    try:
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        done = {p for p, end in ends.items() if end == 0}
        counts: dict[tuple[str, int], int] = defaultdict(int)
        deadline = time.monotonic() + 120
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                raise SystemExit(f"could not read {input_topic} to its end: {ends}")
            for msg in consumer.consume(1000, timeout=1):
                if msg.error():
                    continue
                try:
                    status = json.loads(msg.value()).get("status", "invalid")
                except (ValueError, AttributeError):
                    status = "invalid"
                counts[(str(status), window_start(msg.timestamp()[1]))] += 1
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
        return dict(counts)
    finally:
        consumer.close()


def topic_records(bootstrap: str, topic: str) -> int:
    """Sum over ``topic``'s partitions of high watermark minus log start offset."""
    consumer, partitions = _assigned_consumer(bootstrap, topic, "order-windows-size")
    try:
        total = 0
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


class OutputReader:
    """Reads an app's output topic with read_committed from the beginning: every window's
    updates, in the order they were written (a window's updates share one partition)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer, _ = _assigned_consumer(bootstrap, topic, f"order-windows-check-{os.getpid()}")
        self.updates: dict[tuple[str, int], list[int]] = defaultdict(list)
        self.records = 0
        self.bad: list[str] = []

    def poll(self, timeout: float = 0.5) -> int:
        """Reads what is there now; returns the number of records read."""
        msgs = self.consumer.consume(2000, timeout=timeout)
        for msg in msgs:
            if msg.error():
                continue
            self.records += 1
            try:
                v = json.loads(msg.value())
                self.updates[(str(v["status"]), int(v["window_start"]))].append(int(v["count"]))
            except (ValueError, KeyError, TypeError) as e:
                self.bad.append(f"{msg.partition()}@{msg.offset()}: {e!r}")
        return len(msgs)

    def latest(self) -> dict[tuple[str, int], int]:
        return {w: counts[-1] for w, counts in self.updates.items()}

    def close(self) -> None:
        self.consumer.close()


def verdict(expected: dict[tuple[str, int], int], reader: OutputReader, exactly_once: bool) -> dict[str, Any]:
    """Compares the output with the expected counts. ``ok``: every window's latest count is the
    expected one and no other window appears; with ``exactly_once`` also every window's updates
    are exactly 1..n in order (``repeated``: updates seen more than once, i.e. orders counted
    twice and then hidden by a restore; ``skipped``: counts never seen)."""
    latest = reader.latest()
    wrong = {f"{s}@{w}": {"expected": expected.get((s, w), 0), "latest": latest.get((s, w), 0)}
             for (s, w) in sorted(set(expected) | set(latest)) if expected.get((s, w), 0) != latest.get((s, w), 0)}
    repeated, skipped = 0, 0
    for counts in reader.updates.values():
        repeated += len(counts) - len(set(counts))
        skipped += max(counts) - len(set(counts))
    sequences_exact = all(counts == list(range(1, len(counts) + 1)) for counts in reader.updates.values())
    ok = not wrong and not reader.bad and (sequences_exact or not exactly_once)
    return {"ok": ok, "windows": len(expected), "orders": sum(expected.values()), "updates_read": reader.records,
            "wrong_windows": wrong, "repeated_updates": repeated, "skipped_updates": skipped,
            "sequences_exact": sequences_exact, "undecodable": reader.bad[:10],
            "counts": {f"{s}@{_iso(w)}": n for (s, w), n in sorted(latest.items())}}


def check(bootstrap: str, output: str, exactly_once: bool, timeout: float, input_topic: str = ORDERS) -> dict[str, Any]:
    """Waits (at most ``timeout`` s) until ``output`` has the counts computed from ``input_topic``."""
    expected = expected_counts(bootstrap, input_topic)
    say(f"expected: {sum(expected.values())} orders in {len(expected)} windows (from {input_topic})")
    reader = OutputReader(bootstrap, output)
    try:
        deadline = time.monotonic() + timeout
        total, last_new = sum(expected.values()), time.monotonic()
        while time.monotonic() < deadline:
            if reader.poll():
                last_new = time.monotonic()
            if reader.latest() == expected:
                break
            if reader.records >= total and time.monotonic() - last_new > 20:
                break  # every order has had its update and nothing new for 20 s: the counts are final
        reader.poll(2.0)  # anything written after the last expected update (a count past the answer)
        result = verdict(expected, reader, exactly_once)
    finally:
        reader.close()
    for window, n in result["counts"].items():
        e = next((v for (s, w), v in expected.items() if f"{s}@{_iso(w)}" == window), 0)
        say(f"  {window:<32} {n:>7}  (expected {e})")
    say(f"{'OK' if result['ok'] else 'FAIL'}: {result['updates_read']} updates read committed, "
        f"{len(result['wrong_windows'])} windows wrong, {result['repeated_updates']} repeated, "
        f"{result['skipped_updates']} skipped, each window 1..n in order: {result['sequences_exact']}")
    return result


# ---------------------------------------------------------------------- the judge

class App:
    """One of the apps as a child process (scripts/streams run|quix), killed or stopped by pid."""

    def __init__(self, app: str, bootstrap: str, work: Path, replication_factor: int, guarantee: str,
                 input_topic: str, output: str) -> None:
        app_id = output
        script = str(ROOT / "scripts" / "streams")
        self.argv = [script, "run" if app == "streams" else "quix", "--bootstrap-server", bootstrap,
                     "--application-id", app_id, "--state-dir", str(work / "state"), "--output", output,
                     "--guarantee", guarantee, "--replication-factor", str(replication_factor), "--input", input_topic]
        self.work, self.name = work, app
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> int:
        self.starts += 1
        log = open(self.work / f"app-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        say(f"== started the {self.name} app (pid {self.proc.pid}), log {log.name}")
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        say(f"== kill -9 the {self.name} app (pid {self.proc.pid})")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()


def choose_broker_to_kill(bootstrap: str, topic: str, group: str, spare_group_coordinator: bool) -> tuple[int, str]:
    """(broker id, why): the leader of ``topic``-0, or with ``spare_group_coordinator`` the
    leader of the first partition of ``topic`` whose leader is not ``group``'s coordinator
    (else any other broker)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    leaders = [(p, int(partitions[p].leader)) for p in sorted(partitions)]
    if not spare_group_coordinator:
        return leaders[0][1], f"leader of {topic}-{leaders[0][0]}"
    coordinator = int(admin.describe_consumer_groups([group])[group].result(timeout=30).coordinator.id)
    for p, leader in leaders:
        if leader != coordinator:
            return leader, f"leader of {topic}-{p}; broker {coordinator}, the group coordinator, spared"
    brokers = sorted(int(b) for b in admin.list_topics(timeout=10).brokers)
    other = next(b for b in brokers if b != coordinator)
    return other, f"not the group coordinator (broker {coordinator})"


def judge(args: argparse.Namespace) -> dict[str, Any]:
    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    default_output, _, eos_name = APPS[args.app]
    output, input_topic = args.output or default_output, args.input
    guarantee = eos_name if args.guarantee == "exactly-once" else ("at_least_once" if args.app == "streams" else "at-least-once")
    cluster = None
    if args.cluster_dir is not None:
        import logging

        import structlog

        from kafkalike.cluster.local_cluster import LocalCluster
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        cluster = LocalCluster.load(args.cluster_dir)
    create_topics(args.bootstrap_server, output, args.partitions, args.replication_factor, input_topic)
    for topic in (input_topic, output):
        if (n := topic_records(args.bootstrap_server, topic)) > 0:
            raise SystemExit(f"judge: {topic} already holds {n} records; the judge needs a cluster without them")
    app = App(args.app, args.bootstrap_server, work, args.replication_factor, guarantee, input_topic, output)
    source = OrderSource(1, args.count, args.span_minutes)
    producer = new_producer(args.bootstrap_server)
    failures: list[str] = []
    events: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    def event(text: str) -> None:
        events.append(text)
        say(f"== {text}")

    reader = OutputReader(args.bootstrap_server, output)
    app.start()
    produced, started = 0, time.monotonic()
    app_killed = broker_killed = False
    deadline = started + args.timeout
    try:
        while (produced < args.count or reader.records < args.count) and time.monotonic() < deadline:
            want = min(args.count, int((time.monotonic() - started) * args.rate))
            while produced < want:
                produced += 1
                key, value, ts = source.order(produced)
                _produce(producer, input_topic, key, value, ts, delivered)
            producer.poll(0)
            reader.poll(0.2)
            if app.exited() is not None:
                raise SystemExit(f"the {args.app} app exited ({app.exited()}): see {work}/app-{app.starts}.log")
            if not app_killed and reader.records >= args.kill_app_at * args.count:
                app.kill()
                event(f"kill -9 the {args.app} app at {reader.records} updates read ({produced} orders produced)")
                app_killed = True
                app.start()
            if cluster is not None and not broker_killed and reader.records >= args.kill_broker_at * args.count:
                victim, why = choose_broker_to_kill(args.bootstrap_server, output, output, args.app == "quix")
                cluster.kill_broker(victim)
                event(f"kill -9 broker {victim} ({why}) at {reader.records} updates read")
                broker_killed = True
                time.sleep(3)
                cluster.start_broker(victim, say=say)
                cluster.wait_registered([victim], timeout=120)
                event(f"restarted broker {victim}")
        if producer.flush(120) != 0 or failures:
            raise SystemExit(f"judge: {len(failures)} orders not delivered: {failures[:3]}")
        say(f"produced {produced} orders; {reader.records} updates read so far")
        reader.close()
        remaining = max(30.0, deadline - time.monotonic())
        result = check(args.bootstrap_server, output, exactly_once=args.guarantee == "exactly-once", timeout=remaining,
                       input_topic=input_topic)
    finally:
        app.stop()
    result.update({"app": args.app, "guarantee": guarantee, "events": events, "app_starts": app.starts,
                   "produced": produced})
    (work / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


# ---------------------------------------------------------------------- command line

def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_topics = sub.add_parser("create-topics")
    p_produce = sub.add_parser("produce")
    p_check = sub.add_parser("check")
    p_judge = sub.add_parser("judge")
    for p in (p_topics, p_produce, p_check, p_judge):
        p.add_argument("--bootstrap-server", default="localhost:9092")
        p.add_argument("--input", default=ORDERS, help="the orders topic")
    for p in (p_topics, p_judge):
        p.add_argument("--partitions", type=int, default=3)
        p.add_argument("--replication-factor", type=int, default=1)
    p_topics.add_argument("--output", required=True)
    p_produce.add_argument("--count", type=int, default=1000)
    p_produce.add_argument("--first", type=int, default=1)
    for p in (p_produce, p_judge):
        p.add_argument("--span-minutes", type=int, default=60, help="event time covered by the orders")
    p_check.add_argument("--output", required=True)
    p_check.add_argument("--exactly-once", action="store_true", help="also require each window's updates to be 1..n")
    p_check.add_argument("--timeout", type=float, default=120)
    p_check.add_argument("--summary", type=Path, default=None, help="write the verdict here as JSON")
    p_judge.add_argument("--app", choices=sorted(APPS), required=True)
    p_judge.add_argument("--work-dir", type=Path, required=True)
    p_judge.add_argument("--output", default=None, help="output topic and application id (default order-counts-<app>)")
    p_judge.add_argument("--cluster-dir", type=Path, default=None, help="a kafkalike cluster dir: also kill -9 a broker")
    p_judge.add_argument("--count", type=int, default=6000)
    p_judge.add_argument("--rate", type=float, default=200, help="orders produced per second")
    p_judge.add_argument("--kill-app-at", type=float, default=0.3, help="fraction of the output read")
    p_judge.add_argument("--kill-broker-at", type=float, default=0.6, help="fraction of the output read")
    p_judge.add_argument("--guarantee", choices=["exactly-once", "at-least-once"], default="exactly-once")
    p_judge.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    if args.command == "create-topics":
        create_topics(args.bootstrap_server, args.output, args.partitions, args.replication_factor, args.input)
    elif args.command == "produce":
        produce(args.bootstrap_server, args.first, args.count, args.span_minutes, args.input)
    elif args.command == "check":
        result = check(args.bootstrap_server, args.output, args.exactly_once, args.timeout, args.input)
        if args.summary is not None:
            args.summary.parent.mkdir(parents=True, exist_ok=True)
            args.summary.write_text(json.dumps(result, indent=2) + "\n")
        return 0 if result["ok"] else 1
    elif args.command == "judge":
        signal.signal(signal.SIGTERM, _raise_interrupt)  # stop the app (finally) when stopped ourselves
        result = judge(args)
        say(f"judge {args.app} {result['guarantee']}: {'PASS' if result['ok'] else 'FAIL'} ({args.work_dir}/summary.json)")
        return 0 if result["ok"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
