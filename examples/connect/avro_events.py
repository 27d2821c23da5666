#!/usr/bin/env python3
"""Reads Debezium change events written as Avro by Apicurio's AvroConverter
(docs/tutorials/connect-avro.md) and prints them decoded, one a line:

    avro_events.py --bootstrap-server B --registry URL --topic T --count N [--timeout 120]

Each record's key and value is framed as Confluent's wire format (the converter runs with
``apicurio.registry.as-confluent=true`` and ``apicurio.registry.headers.enabled=false``): byte 0,
a 4-byte big-endian schema id (Apicurio's contentId, which kafkalike's registry serves as its
schema id), then the Avro binary. The schema is fetched once per id from the registry's Apicurio
v2 route ``/apis/registry/v2/ids/contentIds/{id}`` and the body decoded with fastavro. A tombstone
(null value) prints as ``tombstone``. Output lines: ``OP key=... before=... after=...``.
Exits 1 when fewer than N records arrive in time or a record is not in that framing.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import time
import urllib.request
from typing import Any

import fastavro
from confluent_kafka import Consumer


class Schemas:
    """Parsed Avro schemas by id, fetched from the registry on first use."""

    def __init__(self, registry: str) -> None:
        self.registry = registry.rstrip("/")
        self.parsed: dict[int, Any] = {}

    def get(self, schema_id: int) -> Any:
        if schema_id not in self.parsed:
            url = f"{self.registry}/apis/registry/v2/ids/contentIds/{schema_id}"
            with urllib.request.urlopen(url, timeout=30) as r:
                self.parsed[schema_id] = fastavro.parse_schema(json.loads(r.read()))
        return self.parsed[schema_id]

    def decode(self, data: bytes) -> tuple[int, Any]:
        """(schema id, decoded datum) of one framed record; ValueError when not framed."""
        if len(data) < 5 or data[0] != 0:
            raise ValueError(f"not Confluent-framed Avro: {data[:8]!r}")
        (schema_id,) = struct.unpack(">I", data[1:5])
        return schema_id, fastavro.schemaless_reader(io.BytesIO(data[5:]), self.get(schema_id))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-server", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds")
    args = parser.parse_args(argv)
    schemas = Schemas(args.registry)
    consumer = Consumer({"bootstrap.servers": args.bootstrap_server, "group.id": f"avro-events-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([args.topic])
    seen, ids = 0, set[int]()
    deadline = time.monotonic() + args.timeout
    try:
        while seen < args.count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                print(f"avro-events: {msg.error()}", file=sys.stderr)
                continue
            seen += 1
            raw_key, raw_value = msg.key(), msg.value()
            key_id, key = schemas.decode(raw_key) if isinstance(raw_key, bytes) else (None, None)
            if raw_value is None:
                print(f"tombstone key={key}")
                continue
            value_id, event = schemas.decode(raw_value)
            ids.update(i for i in (key_id, value_id) if i is not None)
            print(f"{event['op']} key={key} before={event['before']} after={event['after']}", flush=True)
    except ValueError as exc:
        print(f"avro-events: {exc}", file=sys.stderr)
        return 1
    finally:
        consumer.close()
    print(f"avro-events: {seen} records, schema ids {sorted(ids)}", file=sys.stderr)
    return 0 if seen >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
