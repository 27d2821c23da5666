#!/usr/bin/env python3
"""Checks Debezium's change events and the FileStreamSink's file against the MariaDB table they came from.

    check_cdc.py --bootstrap-server localhost:9092 --socket .tutorial/mariadb/mysqld.sock \\
                 [--table shop.orders] [--topic shop.shop.orders] [--sink-file F] [--require-ops c,u,d]
                 [--no-duplicates] [--timeout 120] [--summary out.json]

1. Reads the table's rows with the ``mariadb`` client (over the server's socket, as root).
2. Reads the topic from the beginning with confluent-kafka, ``isolation.level=read_committed``,
   and replays Debezium's change events (JsonConverter with schemas: ``{"schema", "payload"}``,
   ``payload.op`` r = snapshot read, c = create, u = update, d = delete): ``after`` becomes the
   row, a delete removes it. Every update's and delete's ``before`` must equal the row as the
   earlier events left it, every create must be of a new key. An event whose source position
   (binlog file, position, row) and op were already seen is a duplicate: skipped and counted
   (``--no-duplicates`` fails on any, as exactly-once delivery promises).
3. Replays the sink file: one ``Struct{id=..,...,__deleted=..}`` line per event, as Debezium's
   ExtractNewRecordState (delete.tombstone.handling.mode=rewrite) and FileStreamSink write it.
4. Both replays must equal the table. Change events arrive asynchronously, so steps 1-3 are
   repeated until they match or ``--timeout`` seconds have passed.

Exit status 0 when everything matched, 1 otherwise (what differs is printed). Part of
docs/tutorials/connect.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

Row = dict[str, str]


def table_rows(socket: str, table: str) -> dict[str, Row]:
    """The table's rows by primary key ``id``, every value as text (the mariadb client's -B output)."""
    done = subprocess.run(["mariadb", "--no-defaults", f"--socket={socket}", "-uroot", "-B", "-e",
                           f"SELECT * FROM {table} ORDER BY id"], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    if not lines:
        return {}
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    return {r["id"]: r for r in rows}


def _text(row: dict[str, Any] | None) -> Row | None:
    return None if row is None else {k: str(v) for k, v in row.items()}


class Replay:
    """Debezium change events applied in order to a table state, with the checks of the module doc."""

    def __init__(self) -> None:
        self.state: dict[str, Row] = {}
        self.ops: dict[str, int] = {}
        self.seen: set[tuple[Any, ...]] = set()
        self.duplicates = 0
        self.events = 0
        self.tombstones = 0
        self.errors: list[str] = []

    def apply(self, offset: int, value: bytes | None) -> None:
        if value is None:
            self.tombstones += 1
            return
        payload = json.loads(value)["payload"]
        op, before, after, source = payload["op"], _text(payload["before"]), _text(payload["after"]), payload["source"]
        key = (source.get("file"), source.get("pos"), source.get("row"), op, (after or before or {}).get("id"))
        if op != "r" and key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        self.events += 1
        self.ops[op] = self.ops.get(op, 0) + 1
        if op in ("r", "c"):
            assert after is not None
            if op == "c" and after["id"] in self.state:
                self.errors.append(f"offset {offset}: create of id {after['id']}, which exists")
            self.state[after["id"]] = after
        elif op in ("u", "d"):
            assert before is not None
            if self.state.get(before["id"]) != before:
                self.errors.append(f"offset {offset}: {op} with before={before}, "
                                   f"but the earlier events left {self.state.get(before['id'])}")
            if op == "u":
                assert after is not None
                self.state.pop(before["id"], None)
                self.state[after["id"]] = after
            else:
                self.state.pop(before["id"], None)
        else:
            self.errors.append(f"offset {offset}: unexpected op {op!r}")


def read_topic(consumer: Consumer, topic: str, replay: Replay, timeout_s: float) -> None:
    """Feeds ``replay`` every record of ``topic`` up to the end of each partition (read_committed)."""
    md = consumer.list_topics(topic, timeout=10)
    if md.topics[topic].error is not None:
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
        replay.apply(offset, msg.value())


def sink_state(path: Path) -> tuple[dict[str, Row], int]:
    """The table as the sink file's ``Struct{...}`` lines leave it, and the number of lines."""
    state: dict[str, Row] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        if not (line.startswith("Struct{") and line.endswith("}")):
            raise ValueError(f"{path}: not a Struct line: {line!r}")
        fields = dict(part.split("=", 1) for part in line[len("Struct{"):-1].split(","))
        deleted = fields.pop("__deleted", "false") == "true"
        if deleted:
            state.pop(fields["id"], None)
        else:
            state[fields["id"]] = fields
    return state, len(lines)


def diff(name: str, got: dict[str, Row], want: dict[str, Row]) -> list[str]:
    out = []
    for key in sorted(set(got) | set(want), key=lambda k: (len(k), k)):
        if got.get(key) != want.get(key):
            out.append(f"{name}: id {key}: {got.get(key)} != table {want.get(key)}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-server", default="localhost:9092")
    parser.add_argument("--socket", required=True, help="the MariaDB server's unix socket")
    parser.add_argument("--table", default="shop.orders")
    parser.add_argument("--topic", default="shop.shop.orders")
    parser.add_argument("--sink-file", type=Path, default=None)
    parser.add_argument("--require-ops", default="", help="comma-separated ops that must occur, e.g. c,u,d")
    parser.add_argument("--no-duplicates", action="store_true", help="fail on any duplicate change event")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--summary", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args()

    consumer = Consumer({"bootstrap.servers": args.bootstrap_server, "group.id": f"check-cdc-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    replay = Replay()
    deadline = time.monotonic() + args.timeout
    problems: list[str] = ["not checked yet"]
    rows: dict[str, Row] = {}
    sink: dict[str, Row] = {}
    sink_lines = 0
    try:
        while problems and time.monotonic() < deadline:
            read_topic(consumer, args.topic, replay, max(1.0, deadline - time.monotonic()))
            rows = table_rows(args.socket, args.table)
            problems = list(replay.errors) + diff("topic", replay.state, rows)
            if args.sink_file is not None:
                sink, sink_lines = sink_state(args.sink_file)
                problems += diff("sink", sink, rows)
            missing_ops = [op for op in args.require_ops.split(",") if op and op not in replay.ops]
            problems += [f"no change event with op {op!r}" for op in missing_ops]
            if args.no_duplicates and replay.duplicates:
                problems.append(f"{replay.duplicates} duplicate change events")
            if problems and not replay.errors:
                time.sleep(2)
            elif replay.errors:
                break
    finally:
        consumer.close()
    summary = {"ok": not problems, "rows": len(rows), "events": replay.events, "ops": replay.ops,
               "tombstones": replay.tombstones, "duplicates": replay.duplicates, "sink_lines": sink_lines,
               "sink_rows": len(sink), "problems": problems[:20]}
    if args.summary is not None:
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems[:20]), file=sys.stderr)
        return 1
    where = " and the sink file" if args.sink_file is not None else ""
    print(f"OK: {len(rows)} rows in {args.table}; {replay.events} change events on {args.topic} "
          f"(ops {json.dumps(replay.ops, sort_keys=True)}, {replay.tombstones} tombstones, "
          f"{replay.duplicates} duplicates) replayed{where} equal the table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
