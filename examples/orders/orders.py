#!/usr/bin/env python3
"""The order-processing system of the user's documents, with retries and a dead-letter queue.

    order service --> orders --> inventory     (group "inventory":    checks stock)
                             --> billing       (group "billing":      makes the invoice)
                             --> notification  (group "notification": sends the confirmation)

Each service is its own consumer group, so each gets every order. A service commits an
order's offset only after it has processed it (at-least-once: a crash before the commit means
the order is processed again, never lost). An order a service cannot process (a "poison"
message: bytes that do not decode, or an order that breaks a rule) is not retried in place,
which would stop the partition behind it: the service copies it to ``orders.retry`` with
headers saying who failed, how and when to try again, commits, and goes on. The service's
retry worker (group "<service>-retry") reads ``orders.retry``, waits until the record's
backoff has passed (``backoff_ms * 2^(attempt-1)``), tries again, and after ``max_attempts``
failed attempts moves the record to ``orders.DLQ``. Nothing else stops.

Headers on orders.retry and orders.DLQ records (all UTF-8 text):

    retry.service        the service that failed (inventory, billing, notification)
    retry.attempt        attempts made so far (1 after the first failure)
    retry.not-before-ms  when the retry worker may try again (epoch ms)
    error.class          the exception's class name (e.g. JSONDecodeError, SerializationError)
    error.message        its message
    original.topic / original.partition / original.offset   where the order was first read

Commands (all take --bootstrap-server; --schema-registry URL switches orders to Avro through
confluent-kafka's AvroSerializer/AvroDeserializer, otherwise JSON):

    orders.py create-topics                      orders (3 partitions), orders.retry, orders.DLQ
    orders.py produce --count N [--poison]       orders 1..N [+ 2 poison messages]
    orders.py service NAME --state-dir D         run one service (processed ids -> D/NAME.jsonl)
    orders.py retry NAME --state-dir D           run one service's retry worker
    orders.py demo --state-dir D [--count N]     all of the above as separate processes [--crash:
                                                 SIGKILL inventory, --kill-broker PID_FILE: SIGKILL
                                                 a broker, both half-way], then
                                                 checks every good order was processed by every
                                                 service and each poison message reached
                                                 orders.DLQ; exit 1 when not (summary: D/summary.json)

Runs with confluent-kafka against kafkalike (or any Kafka). See docs/tutorials/dlq.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

ORDERS, RETRY, DLQ = "orders", "orders.retry", "orders.DLQ"
SERVICES = ("inventory", "billing", "notification")
ORDER_SCHEMA = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "order_id", "type": "long"}, {"name": "user_id", "type": "long"},
               {"name": "status", "type": "string"}, {"name": "quantity", "type": "int"},
               {"name": "amount_cents", "type": "long"}]})
GARBAGE = b"\xff\xfe this is not an order \x00"
"""Poison 1: undecodable: not JSON, and not Confluent's Avro framing (magic byte 0)."""
NEGATIVE_QUANTITY_ID = 0
"""Poison 2: decodes fine but orders -1 items; only inventory refuses it."""

_stop = False
_T0 = time.monotonic()


def say(text: str) -> None:
    """One progress line, with the seconds since this process started."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {text}", flush=True)


def _on_term(signum: int, frame: Any) -> None:
    global _stop
    _stop = True


# ---------------------------------------------------------------------- encoding

class Codec:
    """Order <-> bytes: JSON, or Avro with a schema registry (Confluent's wire format)."""

    def __init__(self, registry_url: str | None) -> None:
        self.avro = registry_url is not None
        if registry_url:
            from confluent_kafka.schema_registry import SchemaRegistryClient
            from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
            client = SchemaRegistryClient({"url": registry_url})
            self._ser = AvroSerializer(client, ORDER_SCHEMA)
            self._de = AvroDeserializer(client)

    def encode(self, order: dict[str, Any]) -> bytes:
        if not self.avro:
            return json.dumps(order).encode()
        from confluent_kafka.serialization import MessageField, SerializationContext
        return self._ser(order, SerializationContext(ORDERS, MessageField.VALUE))

    def decode(self, value: bytes) -> dict[str, Any]:
        """Raises on bytes that are not an order (json.JSONDecodeError, SerializationError...)."""
        if not self.avro:
            order = json.loads(value)
            if not isinstance(order, dict) or not isinstance(order.get("order_id"), int):
                raise ValueError(f"not an order: {value[:60]!r}")
            return order
        from confluent_kafka.serialization import MessageField, SerializationContext
        return self._de(value, SerializationContext(ORDERS, MessageField.VALUE))


# ---------------------------------------------------------------------- the services' work

def check_stock(order: dict[str, Any]) -> None:
    if order["quantity"] <= 0:
        raise ValueError(f"order {order['order_id']}: quantity {order['quantity']} is not a number of items")


def make_invoice(order: dict[str, Any]) -> None:
    if order["amount_cents"] < 0:
        raise ValueError(f"order {order['order_id']}: negative amount")


def send_confirmation(order: dict[str, Any]) -> None:
    if order["user_id"] < 0:
        raise ValueError(f"order {order['order_id']}: no user to notify")


WORK: dict[str, Callable[[dict[str, Any]], None]] = {
    "inventory": check_stock, "billing": make_invoice, "notification": send_confirmation}


def process(service: str, codec: Codec, value: bytes, out: Path) -> int:
    """Decode and handle one order for ``service``; append its id to ``out`` (flushed, so the
    record exists before the offset is committed). Raises whatever the work raises."""
    order = codec.decode(value)
    WORK[service](order)
    with open(out, "a") as f:
        f.write(json.dumps({"order_id": order["order_id"]}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return int(order["order_id"])


# ---------------------------------------------------------------------- plumbing

def _headers(msg: Any) -> dict[str, str]:
    return {k: (v or b"").decode(errors="replace") for k, v in (msg.headers() or [])}


def _failure_headers(service: str, attempt: int, exc: Exception, origin: dict[str, str],
                     backoff_ms: int) -> list[tuple[str, bytes]]:
    not_before = int(time.time() * 1000) + backoff_ms * 2 ** (attempt - 1)
    fields = {"retry.service": service, "retry.attempt": str(attempt), "retry.not-before-ms": str(not_before),
              "error.class": type(exc).__name__, "error.message": str(exc)[:500], **origin}
    return [(k, v.encode()) for k, v in fields.items()]


def _consumer(bootstrap: str, group: str, topic: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "session.timeout.ms": 10000})
    consumer.subscribe([topic])
    return consumer


def _producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False})


def _send(producer: Producer, topic: str, key: bytes | None, value: bytes | None,
          headers: list[tuple[str, bytes]]) -> None:
    """Produce and wait for the acknowledgement (the offset is committed only after this)."""
    errors: list[Any] = []
    producer.produce(topic, key=key, value=value, headers=headers,
                     on_delivery=lambda err, _msg: errors.append(err) if err else None)
    # long enough for a new leader after a broker dies (librdkafka retries meanwhile)
    if producer.flush(120) != 0 or errors:
        raise KafkaException(errors[0] if errors else "delivery timed out")


def _commit(consumer: Consumer, msg: Any, who: str) -> None:
    """Commits ``msg``'s offset + 1, synchronously. A failed commit (the group coordinator's
    broker just died, a rebalance) is logged and not retried: a later commit covers this
    record, or after a rebalance it is processed again (at-least-once); the service goes on."""
    try:
        consumer.commit(message=msg, asynchronous=False)
    except KafkaException as exc:
        print(f"{who}: commit of {msg.topic()}/{msg.partition()}@{msg.offset()} failed ({exc}); going on",
              flush=True)


def run_service(service: str, bootstrap: str, state_dir: Path, codec: Codec, backoff_ms: int) -> None:
    """Consume ``orders`` in group ``service``: process, or hand the order to orders.retry; then commit."""
    consumer, producer = _consumer(bootstrap, service, ORDERS), _producer(bootstrap)
    out, who = state_dir / f"{service}.jsonl", service
    print(f"{service}: consuming {ORDERS}", flush=True)
    try:
        while not _stop:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                print(f"{service}: consumer error {msg.error()}", flush=True)
                continue
            try:
                order_id = process(service, codec, msg.value(), out)
                say(f"{service}: processed order {order_id}")
            except Exception as exc:  # a poison message: park it on the retry topic, go on
                origin = {"original.topic": msg.topic(), "original.partition": str(msg.partition()),
                          "original.offset": str(msg.offset())}
                _send(producer, RETRY, msg.key(), msg.value(), _failure_headers(service, 1, exc, origin, backoff_ms))
                print(f"{service}: {type(exc).__name__} at {msg.topic()}/{msg.partition()}@{msg.offset()}, "
                      f"sent to {RETRY}", flush=True)
            _commit(consumer, msg, who)
    finally:
        consumer.close()


def run_retry(service: str, bootstrap: str, state_dir: Path, codec: Codec, backoff_ms: int,
              max_attempts: int) -> None:
    """Consume orders.retry in group ``<service>-retry``: this service's records only, each after
    its backoff; a success is processed, a failure goes back with attempt+1 or, after
    ``max_attempts``, to orders.DLQ. Commits after each record."""
    consumer, producer = _consumer(bootstrap, f"{service}-retry", RETRY), _producer(bootstrap)
    out, who = state_dir / f"{service}.jsonl", f"{service}-retry"
    print(f"{service}-retry: consuming {RETRY}", flush=True)
    try:
        while not _stop:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                print(f"{service}-retry: consumer error {msg.error()}", flush=True)
                continue
            h = _headers(msg)
            if h.get("retry.service") == service:
                wait_s = (int(h.get("retry.not-before-ms", "0")) - time.time() * 1000) / 1000
                while wait_s > 0 and not _stop:  # librdkafka heartbeats meanwhile; backoffs stay far
                    time.sleep(min(wait_s, 0.2))   # below max.poll.interval.ms (5 min)
                    wait_s -= 0.2
                if _stop:
                    break
                attempt = int(h.get("retry.attempt", "1"))
                origin = {k: v for k, v in h.items() if k.startswith("original.")}
                try:
                    order_id = process(service, codec, msg.value(), out)
                    print(f"{service}-retry: processed order {order_id} on attempt {attempt + 1}", flush=True)
                except Exception as exc:
                    if attempt + 1 >= max_attempts:
                        _send(producer, DLQ, msg.key(), msg.value(),
                              _failure_headers(service, attempt + 1, exc, origin, 0))
                        print(f"{service}-retry: attempt {attempt + 1} failed ({type(exc).__name__}), "
                              f"sent to {DLQ}", flush=True)
                    else:
                        _send(producer, RETRY, msg.key(), msg.value(),
                              _failure_headers(service, attempt + 1, exc, origin, backoff_ms))
                        print(f"{service}-retry: attempt {attempt + 1} failed, back to {RETRY}", flush=True)
            _commit(consumer, msg, who)
    finally:
        consumer.close()


def create_topics(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    brokers = len(admin.list_topics(timeout=30).brokers)
    rf = min(3, brokers)
    wanted = [NewTopic(ORDERS, 3, rf), NewTopic(RETRY, 3, rf), NewTopic(DLQ, 1, rf)]
    for topic, future in admin.create_topics(wanted, operation_timeout=30).items():
        try:
            future.result()
            say(f"created topic {topic}")
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
            say(f"topic {topic} exists")


def produce(bootstrap: str, codec: Codec, first: int, last: int, poison: bool) -> None:
    """The order service: orders ``first``..``last`` (key: the order id) [+ the 2 poison messages]."""
    producer = _producer(bootstrap)
    for i in range(first, last + 1):
        order = {"order_id": i, "user_id": i % 11, "status": "placed", "quantity": 1 + i % 4,
                 "amount_cents": 999 * (1 + i % 4)}
        producer.produce(ORDERS, key=str(i).encode(), value=codec.encode(order))
    if poison:
        producer.produce(ORDERS, key=b"poison-garbage", value=GARBAGE)
        producer.produce(ORDERS, key=b"poison-quantity", value=codec.encode(
            {"order_id": NEGATIVE_QUANTITY_ID, "user_id": 1, "status": "placed", "quantity": -1, "amount_cents": 0}))
    if producer.flush(180) != 0:
        raise SystemExit("orders.py: some orders were not acknowledged")
    say(f"order service: produced orders {first}..{last}{' and 2 poison messages' if poison else ''} to {ORDERS}")


# ---------------------------------------------------------------------- the demo

def _processed(state_dir: Path, service: str) -> set[int]:
    path = state_dir / f"{service}.jsonl"
    if not path.exists():
        return set()
    return {json.loads(line)["order_id"] for line in path.read_text().splitlines() if line.strip()}


def _read_dlq(bootstrap: str, expected: int, timeout_s: float) -> list[dict[str, Any]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-reader-{os.getpid()}-{time.time()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([DLQ])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            found.append({"key": (msg.key() or b"").decode(errors="replace"), "headers": _headers(msg),
                          "offset": msg.offset()})
        end = time.monotonic() + 1.0  # anything beyond what was expected shows up too
        while time.monotonic() < end:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                found.append({"key": (msg.key() or b"").decode(errors="replace"), "headers": _headers(msg),
                              "offset": msg.offset()})
    finally:
        consumer.close()
    return found


def demo(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    for service in SERVICES:
        (state_dir / f"{service}.jsonl").unlink(missing_ok=True)
    say(f"demo: {args.count} orders, {'Avro via ' + args.schema_registry if args.schema_registry else 'JSON'}")
    create_topics(args.bootstrap_server)
    common = ["--bootstrap-server", args.bootstrap_server, "--state-dir", str(state_dir),
              "--backoff-ms", str(args.backoff_ms), "--max-attempts", str(args.max_attempts)]
    if args.schema_registry:
        common += ["--schema-registry", args.schema_registry]
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(kind: str, service: str) -> None:
        log = open(state_dir / f"{service}-{kind}.log", "ab")
        procs[f"{kind} {service}"] = subprocess.Popen([sys.executable, __file__, kind, service, *common],
                                                      stdout=log, stderr=subprocess.STDOUT)
    codec = Codec(args.schema_registry)
    try:
        for service in SERVICES:
            start("service", service)
            start("retry", service)
        half = args.count // 2
        produce(args.bootstrap_server, codec, 1, half, poison=False)
        if args.crash:
            # SIGKILL inventory mid-stream (no close, no commit of what it had in hand) and start
            # it again: at-least-once means every order is still processed, maybe twice
            time.sleep(1.0)
            procs["service inventory"].kill()
            procs["service inventory"].wait()
            say("demo: killed the inventory service (SIGKILL) and started it again")
            start("service", "inventory")
        if args.kill_broker is not None:
            # SIGKILL a broker of the cluster mid-stream: leaders and group coordinators move,
            # producers and consumers go on; no order may be lost
            pid = int(args.kill_broker.read_text().strip())
            os.kill(pid, signal.SIGKILL)
            say(f"demo: killed the broker of {args.kill_broker} (pid {pid}, SIGKILL)")
        produce(args.bootstrap_server, codec, half + 1, args.count, poison=True)

        say("demo: waiting until every service has processed every good order")
        good = set(range(1, args.count + 1))
        expected_dlq = len(SERVICES) + 1  # garbage fails everywhere, quantity -1 only in inventory
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if all(_processed(state_dir, s) >= good for s in SERVICES) and \
                    all(NEGATIVE_QUANTITY_ID in _processed(state_dir, s) for s in SERVICES[1:]):
                break
            dead = [name for name, p in procs.items() if p.poll() is not None]
            if dead:
                say(f"demo: {', '.join(dead)} exited")
                break
            time.sleep(0.5)
        say(f"demo: reading {DLQ}")
        dlq = _read_dlq(args.bootstrap_server, expected_dlq, max(5.0, deadline - time.monotonic()))
        say(f"demo: read {len(dlq)} records from {DLQ}")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    processed = {s: _processed(state_dir, s) for s in SERVICES}
    # the quantity -1 order is fine for billing and notification: only inventory refuses it
    expected = {s: good if s == "inventory" else good | {NEGATIVE_QUANTITY_ID} for s in SERVICES}
    missing = {s: sorted(expected[s] - ids) for s, ids in processed.items() if expected[s] - ids}
    unexpected = {s: sorted(ids - expected[s]) for s, ids in processed.items() if ids - expected[s]}
    dlq_pairs = sorted((r["key"], r["headers"].get("retry.service", "?")) for r in dlq)
    want_pairs = sorted([("poison-garbage", s) for s in SERVICES] + [("poison-quantity", "inventory")])
    headers_ok = all(r["headers"].get("retry.attempt") == str(args.max_attempts) and r["headers"].get("error.class")
                     and r["headers"].get("error.message") and r["headers"].get("original.topic") == ORDERS
                     for r in dlq)
    # after a broker kill a record may reach orders.DLQ twice (at-least-once: its retry worker's
    # commit failed, or a produce was retried); each expected one once at least, nothing else
    dlq_ok = sorted(set(dlq_pairs)) == want_pairs if args.kill_broker is not None else dlq_pairs == want_pairs
    ok = not missing and not unexpected and dlq_ok and headers_ok
    summary = {"ok": ok, "orders": args.count, "format": "avro" if args.schema_registry else "json",
               "processed": {s: len(ids) for s, ids in processed.items()}, "missing": missing,
               "unexpected": unexpected, "dlq": dlq, "expected_dlq": want_pairs,
               "dlq_duplicates": len(dlq_pairs) - len(set(dlq_pairs)),
               "broker_killed": args.kill_broker is not None}
    (state_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\n{'service':<14}{'processed':>10}{'missing':>9}")
    for s in SERVICES:
        print(f"{s:<14}{len(processed[s]):>10}{len(expected[s] - processed[s]):>9}")
    print(f"\n{DLQ}: {len(dlq)} records")
    for r in dlq:
        h = r["headers"]
        print(f"  key={r['key']:<16} service={h.get('retry.service'):<13} attempts={h.get('retry.attempt')} "
              f"error={h.get('error.class')}: {h.get('error.message', '')[:70]}")
    print(f"\nresult: {'OK' if ok else 'FAILED'}: every good order processed by every service "
          f"and each poison message in {DLQ} ({state_dir / 'summary.json'})")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orders.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bootstrap-server", default="localhost:9092")
        p.add_argument("--schema-registry", default=None, help="registry URL: orders in Avro (default JSON)")
        p.add_argument("--state-dir", type=Path, default=Path("orders-state"))
        p.add_argument("--backoff-ms", type=int, default=1000, help="first retry delay, doubled each attempt")
        p.add_argument("--max-attempts", type=int, default=3, help="attempts before orders.DLQ (default 3)")
    for name in ("create-topics", "produce", "demo"):
        p = sub.add_parser(name)
        common(p)
        p.add_argument("--count", type=int, default=100)
        p.add_argument("--poison", action="store_true")
        p.add_argument("--timeout", type=float, default=120.0, help="demo: seconds to wait for the result")
        p.add_argument("--crash", action="store_true", help="demo: SIGKILL the inventory service mid-stream")
        p.add_argument("--kill-broker", type=Path, default=None, metavar="PID_FILE",
                       help="demo: SIGKILL the broker whose pid is in PID_FILE mid-stream (a 3-broker cluster)")
    for name in ("service", "retry"):
        p = sub.add_parser(name)
        p.add_argument("name", choices=SERVICES)
        common(p)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_term)
    if args.command == "create-topics":
        create_topics(args.bootstrap_server)
    elif args.command == "produce":
        produce(args.bootstrap_server, Codec(args.schema_registry), 1, args.count, args.poison)
    elif args.command == "demo":
        return demo(args)
    else:
        args.state_dir.mkdir(parents=True, exist_ok=True)
        codec = Codec(args.schema_registry)
        if args.command == "service":
            run_service(args.name, args.bootstrap_server, args.state_dir, codec, args.backoff_ms)
        else:
            run_retry(args.name, args.bootstrap_server, args.state_dir, codec, args.backoff_ms, args.max_attempts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
