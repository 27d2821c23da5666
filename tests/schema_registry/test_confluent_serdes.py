"""confluent-kafka's own SchemaRegistryClient, AvroSerializer and AvroDeserializer, unchanged,
against ``kafkalike schema-registry`` and a real 1-broker kafkalike cluster: Avro records
produced and consumed, an incompatible schema refused with 409, malformed bytes refused by the
deserializer with a clear error while the consumer goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.error import ValueDeserializationError
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.fixtures_cluster import _new_cluster
from tests.schema_registry.registry_helpers import running_registry

ORDER_V1 = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "order_id", "type": "long"}, {"name": "user_id", "type": "long"},
               {"name": "status", "type": "string"}]})
ORDER_V2 = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "order_id", "type": "long"}, {"name": "user_id", "type": "long"},
               {"name": "status", "type": "string"},
               {"name": "amount_cents", "type": "long", "default": 0}]})
ORDER_BAD = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "order_id", "type": "string"}, {"name": "status", "type": "string"}]})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str):
    c = _new_cluster(tmp_path_factory.mktemp("serdes"), zk_connect, 1, None)
    try:
        yield c
    finally:
        c.stop()


def test_avro_serializer_and_deserializer_round_trip_through_kafkalike(cluster, tmp_path: Path) -> None:
    with running_registry(cluster.bootstrap_servers, tmp_path / "registry.log") as url:
        client = SchemaRegistryClient({"url": url})
        serialize = AvroSerializer(client, ORDER_V1)
        producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
        orders = [{"order_id": i, "user_id": i % 7, "status": "placed"} for i in range(20)]
        for order in orders:
            producer.produce("orders-avro", key=str(order["order_id"]).encode(),
                             value=serialize(order, SerializationContext("orders-avro", MessageField.VALUE)))
        # a malformed record between good ones: not Confluent's wire format
        producer.produce("orders-avro", key=b"poison", value=b"\x00\x00\x00\x00\x01garbage")
        producer.produce("orders-avro", key=b"plain", value=b"not avro at all")
        # v2 adds a field with a default: BACKWARD compatible, registered by the serializer
        serialize_v2 = AvroSerializer(client, ORDER_V2)
        producer.produce("orders-avro", key=b"20", value=serialize_v2(
            {"order_id": 20, "user_id": 6, "status": "placed", "amount_cents": 1299},
            SerializationContext("orders-avro", MessageField.VALUE)))
        assert producer.flush(30) == 0

        latest = client.get_latest_version("orders-avro-value")
        assert latest.version == 2 and latest.schema.schema_type == "AVRO"
        # an incompatible change (order_id long -> string, user_id dropped without default is fine
        # for BACKWARD, the type change is not): 409 through the client, as from Confluent's
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema("orders-avro-value", Schema(ORDER_BAD, "AVRO"))
        assert refused.value.http_status_code == 409 and refused.value.error_code == 409
        assert client.test_compatibility("orders-avro-value", Schema(ORDER_BAD, "AVRO")) is False

        deserialize = AvroDeserializer(client)
        consumer = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "avro-readers",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe(["orders-avro"])
        got, failures = [], []
        try:
            while len(got) + len(failures) < len(orders) + 3:
                msg = consumer.poll(30)
                assert msg is not None, f"timed out after {len(got)} records and {failures}"
                assert msg.error() is None, msg.error()
                try:
                    got.append(deserialize(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE)))
                except Exception as exc:  # what a consumer loop sees: the error, then the next record
                    failures.append((msg.key(), type(exc).__name__, str(exc)))
                consumer.commit(msg, asynchronous=False)
        finally:
            consumer.close()
        assert got[:20] == orders
        assert got[20] == {"order_id": 20, "user_id": 6, "status": "placed", "amount_cents": 1299}
        assert [k for k, _t, _m in failures] == [b"poison", b"plain"]
        for _key, _name, message in failures:
            assert message  # a clear message, not an empty error
        # the unknown-magic-byte record is named as such by confluent-kafka
        assert any("magic byte" in m.lower() or "unknown" in m.lower() for _k, _n, m in failures), failures


def test_deserializer_error_type_for_malformed_bytes(cluster, tmp_path: Path) -> None:
    """Malformed Avro bytes give confluent-kafka's SerializationError subclass, so a consumer can
    route the record to a DLQ and continue."""
    with running_registry(cluster.bootstrap_servers, tmp_path / "registry.log") as url:
        client = SchemaRegistryClient({"url": url})
        schema_id = client.register_schema("m-value", Schema(ORDER_V1, "AVRO"))
        deserialize = AvroDeserializer(client)
        truncated = b"\x00" + schema_id.to_bytes(4, "big") + b"\x02"  # order_id only, then nothing
        from confluent_kafka.serialization import SerializationError
        with pytest.raises((SerializationError, ValueDeserializationError, EOFError, ValueError)):
            deserialize(truncated, SerializationContext("m", MessageField.VALUE))
