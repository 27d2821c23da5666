#!/usr/bin/env python3
"""Orders in Avro through a schema registry, with confluent-kafka's own serializers, unchanged.

    avro_orders.py --bootstrap-server localhost:9092 --schema-registry http://localhost:8081 [--count 10]

Produces ``--count`` orders to topic ``orders-avro`` with ``AvroSerializer`` (which registers
the schema under subject ``orders-avro-value`` on first use, TopicNameStrategy), then reads
them back with ``AvroDeserializer`` in a new consumer group and prints them. Exits 1 unless
every order comes back equal to what was sent. Part of docs/tutorials/schemas.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

TOPIC = "orders-avro"
ORDER_SCHEMA = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "order_id", "type": "long"}, {"name": "user_id", "type": "long"},
               {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["placed", "paid", "shipped"]}},
               {"name": "amount_cents", "type": "long", "default": 0}]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-server", default="localhost:9092")
    parser.add_argument("--schema-registry", default="http://localhost:8081")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()

    registry = SchemaRegistryClient({"url": args.schema_registry})
    serialize = AvroSerializer(registry, ORDER_SCHEMA)
    deserialize = AvroDeserializer(registry)
    ctx = SerializationContext(TOPIC, MessageField.VALUE)

    sent = [{"order_id": 1000 + i, "user_id": i % 5, "status": "placed", "amount_cents": 1250 * (i + 1)}
            for i in range(args.count)]
    producer = Producer({"bootstrap.servers": args.bootstrap_server, "acks": "all"})
    for order in sent:
        producer.produce(TOPIC, key=str(order["order_id"]).encode(), value=serialize(order, ctx))
    if producer.flush(30) != 0:
        print("not every order was acknowledged", file=sys.stderr)
        return 1
    latest = registry.get_latest_version(f"{TOPIC}-value")
    print(f"produced {len(sent)} orders with schema id {latest.schema_id} "
          f"(subject {TOPIC}-value, version {latest.version})")

    consumer = Consumer({"bootstrap.servers": args.bootstrap_server, "group.id": f"avro-reader-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([TOPIC])
    received: dict[int, dict] = {}
    try:
        while len(received) < len(sent):
            msg = consumer.poll(30)
            if msg is None:
                break
            if msg.error():
                print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            order = deserialize(msg.value(), ctx)
            schema_id = int.from_bytes(msg.value()[1:5], "big")
            received[order["order_id"]] = order
            print(f"  offset {msg.offset()}: schema id {schema_id} -> {order}")
    finally:
        consumer.close()
    ok = all(received.get(o["order_id"]) == o for o in sent)
    print(f"{'OK' if ok else 'FAILED'}: {sum(received.get(o['order_id']) == o for o in sent)}/{len(sent)} "
          "orders read back equal to what was sent")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
