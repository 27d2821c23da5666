#!/usr/bin/env python3
"""Checks Debezium's change events written as Avro (Apicurio's AvroConverter, Confluent framing;
docs/tutorials/connect-avro-failover.md) against the MariaDB table they came from.

    check_cdc_avro.py --bootstrap-server B --registry URL --socket S [--table inventory.orders]
                      [--topic dbserver1.inventory.orders] [--require-ops c,u,d] [--no-duplicates]
                      [--timeout 180] [--summary out.json]

Reads the topic from the beginning (read_committed), decodes each value with the schema the
registry serves for the id in it (examples/connect/avro_events.py's ``Schemas``), and replays the
change events with examples/connect/check_cdc.py's ``Replay``: ``after`` becomes the row, a delete
removes it, every update's and delete's ``before`` must equal the row as the earlier events left
it, and an event whose binlog position and op were already seen counts as a duplicate. The
replayed table must equal the table's rows (``mariadb`` over the server's socket); events arrive
asynchronously, so this is repeated until it does or ``--timeout`` seconds have passed. A row
missing from the replay is a lost change event. Exit status 0 when everything matched.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent))
from avro_events import Schemas  # noqa: E402  (the sibling example's registry client and decoder)
from check_cdc import Replay, diff, table_rows  # noqa: E402


def read_topic(consumer: Consumer, topic: str, schemas: Schemas, replay: Replay, timeout_s: float) -> bool:
    """Feeds ``replay`` every record of ``topic`` up to the end of each partition, decoded from
    Avro; False when the topic does not exist yet (Connect creates it with the first event)."""
    md = consumer.list_topics(topic, timeout=10)
    if md.topics[topic].error is not None:
        if md.topics[topic].error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.LEADER_NOT_AVAILABLE):
            return False
        raise RuntimeError(f"topic {topic}: {md.topics[topic].error}")
    parts = sorted(md.topics[topic].partitions)
    if not consumer.assignment():
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(at_end) < len(parts) and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        error, partition, offset = msg.error(), msg.partition(), msg.offset()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                at_end.add(partition)
                continue
            raise RuntimeError(f"consume {topic}: {error}")
        assert partition is not None and offset is not None
        at_end.discard(partition)
        raw = msg.value()
        if raw is None:
            replay.apply(offset, None)
            continue
        _, datum = schemas.decode(raw)
        replay.apply(offset, json.dumps({"payload": datum}, default=str).encode())
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-server", default="localhost:9092")
    parser.add_argument("--registry", required=True, help="kafkalike schema-registry's URL")
    parser.add_argument("--socket", required=True, help="the MariaDB server's unix socket")
    parser.add_argument("--table", default="inventory.orders")
    parser.add_argument("--topic", default="dbserver1.inventory.orders")
    parser.add_argument("--require-ops", default="", help="comma-separated ops that must occur, e.g. c,u,d")
    parser.add_argument("--no-duplicates", action="store_true", help="fail on any duplicate change event")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--summary", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    consumer = Consumer({"bootstrap.servers": args.bootstrap_server, "group.id": f"check-cdc-avro-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    schemas, replay = Schemas(args.registry), Replay()
    deadline = time.monotonic() + args.timeout
    problems: list[str] = ["not checked yet"]
    rows: dict[str, Any] = {}
    try:
        while problems and time.monotonic() < deadline:
            if not read_topic(consumer, args.topic, schemas, replay, max(1.0, deadline - time.monotonic())):
                problems = [f"topic {args.topic} does not exist"]
                time.sleep(2)
                continue
            rows = table_rows(args.socket, args.table)
            problems = list(replay.errors) + diff("topic", replay.state, rows)
            problems += [f"no change event with op {op!r}" for op in args.require_ops.split(",")
                         if op and op not in replay.ops]
            if args.no_duplicates and replay.duplicates:
                problems.append(f"{replay.duplicates} duplicate change events")
            if replay.errors:
                break
            if problems:
                time.sleep(2)
    finally:
        consumer.close()
    lost = sorted(set(rows) - set(replay.state), key=lambda k: (len(k), k))
    summary = {"ok": not problems, "rows": len(rows), "events": replay.events, "ops": replay.ops,
               "tombstones": replay.tombstones, "duplicates": replay.duplicates, "schema_ids": sorted(schemas.parsed),
               "rows_missing_from_topic": lost[:50], "problems": problems[:20]}
    if args.summary is not None:
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems[:20]), file=sys.stderr)
        return 1
    print(f"OK: {len(rows)} rows in {args.table}; {replay.events} Avro change events on {args.topic} "
          f"(ops {dict(sorted(replay.ops.items()))}, {replay.tombstones} tombstones, {replay.duplicates} duplicates, "
          f"schema ids {sorted(schemas.parsed)}) replay to exactly the table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
