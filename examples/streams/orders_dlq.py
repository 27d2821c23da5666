#!/usr/bin/env python3
"""The input, the expected answer and the judge of the Kafka Streams dead-letter example
(docs/tutorials/streams-dlq.md; the app: examples/streams/java/.../OrdersDlq.java).

The app reads ``orders``, sends every poison record to ``orders.DLQ`` (bytes that are no JSON
object: its deserialization exception handler; an order with bad values: its KIP-1033
processing exception handler), with the why in headers (``__streams.errors.exception``,
``__streams.errors.topic`` / ``partition`` / ``offset``, ``kafkalike.dlq.handler``, ...), and
sums the good orders per customer with exactly_once_v2 into ``customer-totals``: key customer,
value ``{"customer", "orders", "amount_cents"}``, one update per good order.

Order *i* (key ``str(i)``) is poison for i % 100 in {7, 57} (not JSON), {23, 73, 41} (bad
values: quantity 0, no customer, amount_cents < 0); the others are good:
``{"order_id": i, "customer": "c<i % 7>", "quantity": 1 + i % 4, "amount_cents": 100 * (1 + i % 50)}``.
The check does not trust that recipe: it classifies each record of the input topic itself,
with the app's rules (``classify``).

Commands (all take --bootstrap-server, --input orders, --output customer-totals, --dlq orders.DLQ):

    orders_dlq.py create-topics [--partitions 3] [--replication-factor R]
    orders_dlq.py produce --count N [--first 1]
    orders_dlq.py check [--timeout S] [--summary F]
        reads the input to its end (expected totals per customer, the poison records) and the
        output (read_committed) and the dead-letter topic until they match or --timeout passes.
        OK when: every customer's latest totals equal those computed from the input, its updates
        have orders = 1, 2, ..., n (no good order counted twice or missed), every poison record
        is in the dead-letter topic exactly once with its original key and value and the
        handler that matches its fault, and nothing else is. Exit 1 otherwise.
    orders_dlq.py judge --work-dir W [--cluster-dir D] [--count N] [--rate R] ...
        creates the topics (they must be empty), starts the app (scripts/streams-dlq run),
        produces --count orders at --rate per second (the app commits every --commit-interval-ms,
        default 100: Kafka Streams' exactly-once default); with --kill-app-at F SIGKILLs the app when
        F of the poison records' dead letters are read (the app is then reading the input, not only
        aggregating what it already re-keyed) and starts it again; with --cluster-dir SIGKILLs
        the broker leading the output's partition 0 when --kill-broker-at (0.5) of the updates or of
        the dead letters are read (whichever first: the output comes in bursts) and restarts it;
        then runs the check. Verdict: W/summary.json; exit 1 unless OK.

Runs in kafkalike's .venv (confluent-kafka).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import order_windows as ow  # noqa: E402  (the sibling example: topics, producer, app process, broker choice)

ROOT = Path(__file__).resolve().parents[2]
say = ow.say

BAD_JSON, BAD_VALUE, GOOD = "bad-json", "bad-value", "good"
HANDLER_OF = {BAD_JSON: "deserialization", BAD_VALUE: "processing"}
"""The app's exception handler each kind of poison record must go through."""


# ---------------------------------------------------------------------- input

def order(i: int) -> tuple[bytes, bytes]:
    """(key, value) of order ``i``: poison for i % 100 in {7, 57, 23, 73, 41}, see the module doc."""
    r = i % 100
    if r == 7:
        value = f"not an order {i}".encode()
    elif r == 57:
        value = f'{{"order_id": {i}, "customer": "c{i % 7}", "quan'.encode()
    elif r == 23:
        value = json.dumps({"order_id": i, "customer": f"c{i % 7}", "quantity": 0, "amount_cents": 100}).encode()
    elif r == 73:
        value = json.dumps({"order_id": i, "quantity": 2, "amount_cents": 100}).encode()
    elif r == 41:
        value = json.dumps({"order_id": i, "customer": f"c{i % 7}", "quantity": 1, "amount_cents": -5}).encode()
    else:
        value = json.dumps({"order_id": i, "customer": f"c{i % 7}", "quantity": 1 + i % 4,
                            "amount_cents": 100 * (1 + i % 50)}).encode()
    return str(i).encode(), value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def classify(value: bytes | None) -> tuple[str, str, int]:
    """(kind, customer, amount_cents) of a value under the app's rules: ``bad-json`` (not a JSON
    object: its deserializer fails), ``bad-value`` (customer missing or empty, quantity not a
    positive integer, amount_cents not an integer >= 0: validate-order throws), else ``good``."""
    if value is None:
        return BAD_VALUE, "", 0
    try:
        doc = json.loads(value.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError):
        return BAD_JSON, "", 0
    if not isinstance(doc, dict):
        return BAD_JSON, "", 0

    customer, quantity, amount = doc.get("customer"), doc.get("quantity"), doc.get("amount_cents")
    if not isinstance(customer, str) or not customer:
        return BAD_VALUE, "", 0
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
        return BAD_VALUE, "", 0
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        return BAD_VALUE, "", 0
    return GOOD, customer, amount


def create_topics(bootstrap: str, input_topic: str, output: str, dlq: str, partitions: int, rf: int) -> None:
    """The input, output and dead-letter topics (``partitions`` each); existing ones are kept."""
    ow.create_topics(bootstrap, output, partitions, rf, input_topic)
    ow.create_topics(bootstrap, dlq, partitions, rf, input_topic)


class Orders:
    """Produces orders first, first+1, ... with an idempotent producer (acks=all)."""

    def __init__(self, bootstrap: str, topic: str, first: int = 1) -> None:
        self.producer: Producer = ow.new_producer(bootstrap)
        self.topic, self.next = topic, first
        self.failures: list[str] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failures.append(str(err))

    def send(self, n: int) -> None:
        for _ in range(n):
            key, value = order(self.next)
            while True:
                try:
                    self.producer.produce(self.topic, key=key, value=value, on_delivery=self._delivered)
                    break
                except BufferError:
                    self.producer.poll(0.1)
            self.next += 1
        self.producer.poll(0)

    def flush(self) -> None:
        if self.producer.flush(120) != 0 or self.failures:
            raise SystemExit(f"produce: {len(self.failures)} orders not delivered: {self.failures[:3]}")


# ---------------------------------------------------------------------- reading and the verdict

class Expected:
    """What the input topic says the output must be: totals per customer and the poison records."""

    def __init__(self) -> None:
        self.totals: dict[str, tuple[int, int]] = {}
        self.poison: dict[tuple[int, int], tuple[str, bytes | None, bytes | None]] = {}
        self.records = 0


def read_expected(bootstrap: str, input_topic: str) -> Expected:
    """Reads ``input_topic`` to its end and classifies every record (``classify``)."""
    consumer, partitions = ow._assigned_consumer(bootstrap, input_topic, "orders-dlq-expected")
    expected = Expected()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    try:
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 120
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                raise SystemExit(f"could not read {input_topic} to its end: {ends}")
            for msg in consumer.consume(1000, timeout=1):
                if msg.error():
                    continue
                expected.records += 1
                partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
                kind, customer, amount = classify(msg.value())
                if kind == GOOD:
                    totals[customer][0] += 1
                    totals[customer][1] += amount
                else:
                    expected.poison[(partition, offset)] = (kind, msg.key(), msg.value())
                if offset + 1 >= ends[partition]:
                    done.add(partition)
    finally:
        consumer.close()
    expected.totals = {c: (n, s) for c, (n, s) in totals.items()}
    return expected


class Reader:
    """Reads a topic from the beginning, read_committed, keeping what ``on_record`` makes of each record."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer: Consumer
        self.consumer, _ = ow._assigned_consumer(bootstrap, topic, f"orders-dlq-check-{os.getpid()}")
        self.records = 0

    def poll(self, timeout: float = 0.5) -> int:
        msgs = [m for m in self.consumer.consume(2000, timeout=timeout) if not m.error()]
        for msg in msgs:
            self.records += 1
            self.on_record(msg)
        return len(msgs)

    def on_record(self, msg: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.consumer.close()


class TotalsReader(Reader):
    """The output: every customer's updates (orders, amount_cents) in the order written."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic)
        self.updates: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.bad: list[str] = []

    def on_record(self, msg: Any) -> None:
        try:
            v = json.loads(msg.value())
            self.updates[str(v["customer"])].append((int(v["orders"]), int(v["amount_cents"])))
        except (ValueError, KeyError, TypeError) as e:
            self.bad.append(f"{msg.partition()}@{msg.offset()}: {e!r}")

    def latest(self) -> dict[str, tuple[int, int]]:
        return {c: u[-1] for c, u in self.updates.items()}


class DeadLetterReader(Reader):
    """The dead-letter topic: per source (partition, offset) of the input, the records written for it."""

    def __init__(self, bootstrap: str, topic: str, input_topic: str) -> None:
        super().__init__(bootstrap, topic)
        self.input_topic = input_topic
        self.letters: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        self.unsourced: list[str] = []

    def on_record(self, msg: Any) -> None:
        headers = {k: (v.decode("utf-8", "replace") if v is not None else None) for k, v in (msg.headers() or [])}
        try:
            if headers["__streams.errors.topic"] != self.input_topic:
                raise KeyError("__streams.errors.topic")
            source = (int(str(headers["__streams.errors.partition"])), int(str(headers["__streams.errors.offset"])))
        except (KeyError, TypeError, ValueError) as e:
            self.unsourced.append(f"{msg.partition()}@{msg.offset()}: no source header {e}")
            return
        self.letters[source].append({"key": msg.key(), "value": msg.value(), "headers": headers})


def verdict(expected: Expected, totals: TotalsReader, letters: DeadLetterReader) -> dict[str, Any]:
    """Compares output and dead-letter topic with the input (the conditions of ``check``)."""
    latest = totals.latest()
    wrong = {c: {"expected": list(expected.totals.get(c, (0, 0))), "latest": list(latest.get(c, (0, 0)))}
             for c in sorted(set(expected.totals) | set(latest)) if expected.totals.get(c, (0, 0)) != latest.get(c, (0, 0))}
    sequences_exact = all([n for n, _ in u] == list(range(1, len(u) + 1)) for u in totals.updates.values())
    repeated = sum(len(u) - len({n for n, _ in u}) for u in totals.updates.values())
    missing = sorted(set(expected.poison) - set(letters.letters))
    extra = sorted(set(letters.letters) - set(expected.poison))
    duplicated = {f"{p}@{o}": len(v) for (p, o), v in sorted(letters.letters.items()) if len(v) > 1}
    mismatched: list[str] = []
    for source, written in sorted(letters.letters.items()):
        if source not in expected.poison:
            continue
        kind, key, value = expected.poison[source]
        for letter in written:
            handler = letter["headers"].get("kafkalike.dlq.handler")
            if handler != HANDLER_OF[kind] or letter["key"] != key or letter["value"] != value \
                    or not letter["headers"].get("__streams.errors.exception"):
                mismatched.append(f"{source[0]}@{source[1]}: {kind} went through {handler!r}, "
                                  f"key/value as input: {letter['key'] == key}/{letter['value'] == value}")
    kinds = Counter(kind for kind, _, _ in expected.poison.values())
    ok = (not wrong and sequences_exact and not totals.bad and not missing and not extra and not duplicated
          and not mismatched and not letters.unsourced)
    return {"ok": ok, "input_records": expected.records, "good_orders": sum(n for n, _ in expected.totals.values()),
            "poison_records": len(expected.poison), "poison_kinds": dict(kinds), "customers": len(expected.totals),
            "updates_read": totals.records, "wrong_customers": wrong, "sequences_exact": sequences_exact,
            "repeated_updates": repeated, "undecodable": totals.bad[:10],
            "dead_letters_read": letters.records, "dead_letters_missing": [f"{p}@{o}" for p, o in missing][:20],
            "dead_letters_extra": [f"{p}@{o}" for p, o in extra][:20], "dead_letters_duplicated": duplicated,
            "dead_letters_mismatched": mismatched[:20], "dead_letters_unsourced": letters.unsourced[:10],
            "totals": {c: list(t) for c, t in sorted(latest.items())},
            "example_dead_letter": _example(letters)}


def _example(letters: DeadLetterReader) -> dict[str, Any] | None:
    for written in letters.letters.values():
        h = written[0]["headers"]
        return {k: v for k, v in h.items() if k != "__streams.errors.stacktrace"} | {
            "value": written[0]["value"].decode("utf-8", "replace") if written[0]["value"] else None}
    return None


def check(bootstrap: str, input_topic: str, output: str, dlq: str, timeout: float) -> dict[str, Any]:
    """Waits (at most ``timeout`` s) until output and dead-letter topic match the input; the verdict."""
    expected = read_expected(bootstrap, input_topic)
    say(f"expected from {input_topic}: {expected.records} records, {sum(n for n, _ in expected.totals.values())} good "
        f"orders of {len(expected.totals)} customers, {len(expected.poison)} poison records")
    totals, letters = TotalsReader(bootstrap, output), DeadLetterReader(bootstrap, dlq, input_topic)
    try:
        deadline, last_new = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            if totals.poll(0.3) + letters.poll(0.3):
                last_new = time.monotonic()
            if totals.latest() == expected.totals and set(letters.letters) >= set(expected.poison):
                break
            good = sum(n for n, _ in expected.totals.values())
            if totals.records >= good and letters.records >= len(expected.poison) and time.monotonic() - last_new > 20:
                break  # as many updates and dead letters as wanted and nothing new for 20 s: what is there is final
        totals.poll(2.0)
        letters.poll(2.0)  # anything written after the answer (a duplicate, a count past it)
        result = verdict(expected, totals, letters)
    finally:
        totals.close()
        letters.close()
    for customer, (n, s) in sorted(totals.latest().items()):
        say(f"  {customer:<6} orders {n:>5}  amount_cents {s:>9}  (expected {expected.totals.get(customer)})")
    say(f"  dead letters: {result['dead_letters_read']} read for {result['poison_records']} poison records "
        f"{result['poison_kinds']}: {len(result['dead_letters_missing'])} missing, {len(result['dead_letters_extra'])} "
        f"extra, {len(result['dead_letters_duplicated'])} duplicated, {len(result['dead_letters_mismatched'])} mismatched")
    say(f"{'OK' if result['ok'] else 'FAIL'}: {result['updates_read']} updates read committed for "
        f"{result['good_orders']} good orders, {len(result['wrong_customers'])} customers wrong, "
        f"{result['repeated_updates']} repeated, each customer 1..n in order: {result['sequences_exact']}")
    return result


# ---------------------------------------------------------------------- the judge

class App(ow.App):
    """The OrdersDlq app as a child process (scripts/streams-dlq run), killed or stopped by pid."""

    def __init__(self, bootstrap: str, work: Path, args: argparse.Namespace) -> None:
        super().__init__("streams", bootstrap, work, args.replication_factor, args.guarantee, args.input, args.output)
        self.argv = [str(ROOT / "scripts" / "streams-dlq"), "run", "--bootstrap-server", bootstrap,
                     "--application-id", args.application_id, "--state-dir", str(work / "state"),
                     "--input", args.input, "--output", args.output, "--dlq", args.dlq,
                     "--guarantee", args.guarantee, "--replication-factor", str(args.replication_factor),
                     "--commit-interval-ms", str(args.commit_interval_ms)]
        self.name = "streams-dlq"


def judge(args: argparse.Namespace) -> dict[str, Any]:
    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    bootstrap = args.bootstrap_server
    cluster = None
    if args.cluster_dir is not None:
        import logging

        import structlog

        from kafkalike.cluster.local_cluster import LocalCluster
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        cluster = LocalCluster.load(args.cluster_dir)
    create_topics(bootstrap, args.input, args.output, args.dlq, args.partitions, args.replication_factor)
    for topic in (args.input, args.output, args.dlq):
        if (n := ow.topic_records(bootstrap, topic)) > 0:
            raise SystemExit(f"judge: {topic} already holds {n} records; the judge needs it empty")
    good = sum(classify(order(i)[1])[0] == GOOD for i in range(1, args.count + 1))
    poison = args.count - good
    app, orders = App(bootstrap, work, args), Orders(bootstrap, args.input)
    events: list[str] = []

    def event(text: str) -> None:
        events.append(text)
        say(f"== {text}")

    totals, letters = TotalsReader(bootstrap, args.output), DeadLetterReader(bootstrap, args.dlq, args.input)
    app.start()
    started = time.monotonic()
    deadline = started + args.timeout
    app_killed, broker_killed = args.kill_app_at is None, cluster is None
    try:
        while (orders.next <= args.count or totals.records < good) and time.monotonic() < deadline:
            want = min(args.count, int((time.monotonic() - started) * args.rate))
            if want >= orders.next:
                orders.send(want - orders.next + 1)
            totals.poll(0.2)
            letters.poll(0.1)
            if app.exited() is not None:
                raise SystemExit(f"the app exited ({app.exited()}): see {work}/app-{app.starts}.log")
            if not app_killed and letters.records >= args.kill_app_at * poison:
                app.kill()
                event(f"kill -9 the app at {letters.records} dead letters read ({totals.records} updates read, "
                      f"{orders.next - 1} orders produced)")
                app_killed = True
                app.start()
            if cluster is not None and not broker_killed and (totals.records >= args.kill_broker_at * good
                                                              or letters.records >= args.kill_broker_at * poison):
                victim, why = ow.choose_broker_to_kill(bootstrap, args.output, args.application_id, False)
                cluster.kill_broker(victim)
                event(f"kill -9 broker {victim} ({why}) at {letters.records} dead letters and {totals.records} "
                      f"updates read ({orders.next - 1} orders produced)")
                broker_killed = True
                time.sleep(3)
                cluster.start_broker(victim, say=say)
                cluster.wait_registered([victim], timeout=120)
                event(f"restarted broker {victim}")
        orders.flush()
        say(f"produced {orders.next - 1} orders ({good} good); {totals.records} updates read so far")
        totals.close()
        letters.close()
        result = check(bootstrap, args.input, args.output, args.dlq, timeout=max(60.0, deadline - time.monotonic()))
    finally:
        app.stop()
    again = sum(p.read_text(errors="replace").count("already written, not again") for p in work.glob("app-*.log"))
    say(f"  dead letters not written again (their record processed again after the kill): {again}")
    result.update({"guarantee": args.guarantee, "events": events, "app_starts": app.starts,
                   "produced": orders.next - 1, "dead_letters_not_written_again": again})
    (work / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


# ---------------------------------------------------------------------- command line

def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {name: sub.add_parser(name) for name in ("create-topics", "produce", "check", "judge")}
    for p in commands.values():
        p.add_argument("--bootstrap-server", default="localhost:9092")
        p.add_argument("--input", default="orders")
        p.add_argument("--output", default="customer-totals")
        p.add_argument("--dlq", default="orders.DLQ")
    for name in ("create-topics", "judge"):
        commands[name].add_argument("--partitions", type=int, default=3)
        commands[name].add_argument("--replication-factor", type=int, default=3)
    commands["produce"].add_argument("--count", type=int, default=1000)
    commands["produce"].add_argument("--first", type=int, default=1)
    for name in ("check", "judge"):
        commands[name].add_argument("--timeout", type=float, default=300)
    commands["check"].add_argument("--summary", type=Path, default=None, help="write the verdict here as JSON")
    j = commands["judge"]
    j.add_argument("--work-dir", type=Path, required=True)
    j.add_argument("--application-id", default="orders-dlq")
    j.add_argument("--cluster-dir", type=Path, default=None, help="a kafkalike cluster dir: also kill -9 a broker")
    j.add_argument("--count", type=int, default=4000)
    j.add_argument("--rate", type=float, default=200, help="orders produced per second")
    j.add_argument("--kill-app-at", type=float, default=None, help="fraction of the poison records' dead letters read")
    j.add_argument("--kill-broker-at", type=float, default=0.5,
                   help="fraction of the good orders' updates or of the dead letters read, whichever first")
    j.add_argument("--guarantee", choices=["exactly_once_v2", "at_least_once"], default="exactly_once_v2")
    j.add_argument("--commit-interval-ms", type=int, default=100, help="the app's commit.interval.ms")
    args = parser.parse_args(argv)
    if args.command == "create-topics":
        create_topics(args.bootstrap_server, args.input, args.output, args.dlq, args.partitions, args.replication_factor)
    elif args.command == "produce":
        orders = Orders(args.bootstrap_server, args.input, args.first)
        orders.send(args.count)
        orders.flush()
        say(f"produced orders {args.first}..{args.first + args.count - 1} to {args.input}")
    elif args.command == "check":
        result = check(args.bootstrap_server, args.input, args.output, args.dlq, args.timeout)
        if args.summary is not None:
            args.summary.parent.mkdir(parents=True, exist_ok=True)
            args.summary.write_text(json.dumps(result, indent=2) + "\n")
        return 0 if result["ok"] else 1
    elif args.command == "judge":
        signal.signal(signal.SIGTERM, _raise_interrupt)  # stop the app (finally) when stopped ourselves
        result = judge(args)
        say(f"judge streams-dlq {args.guarantee}: {'PASS' if result['ok'] else 'FAIL'} ({args.work_dir}/summary.json)")
        return 0 if result["ok"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
