"""Protobuf in ``kafkalike schema-registry`` through confluent-kafka's own SchemaRegistryClient,
ProtobufSerializer and ProtobufDeserializer, unchanged, on a real 1-broker kafkalike cluster:
evolution refused with 409 under BACKWARD and FORWARD as Confluent's Protobuf rules say,
schema references resolved as imports, 42201 for a text protoc refuses or a missing
reference, and messages produced and consumed with the serializer registering its schema
(a base64 FileDescriptorProto, with its import as a reference) and the deserializer fetching
it back with ``format=serialized``."""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from google.protobuf import descriptor_pb2

from kafkalike.cluster.local_cluster import LocalCluster
from tests.fixtures_cluster import _new_cluster
from tests.schema_registry.registry_helpers import http, running_registry

P3 = 'syntax = "proto3";\npackage shop;\n'
V1 = P3 + "message Order {\n  int64 id = 1;\n  oneof pay {\n    string card = 2;\n    string iban = 3;\n  }\n}\n"
V1_REFORMATTED = P3 + "// the same schema, other layout\nmessage Order { int64 id = 1; oneof pay { string card = 2; string iban = 3; } }"
V2_MEMBER_REMOVED = P3 + "message Order { int64 id = 1; oneof pay { string card = 2; } }"
V2_FIELD_ADDED = P3 + "message Order { int64 id = 1; oneof pay { string card = 2; string iban = 3; } string note = 4; }"
V3_KIND_CHANGED = P3 + "message Order { int64 id = 1; oneof pay { string card = 2; string iban = 3; } int64 note = 4; }"

COMMON = 'syntax = "proto3";\npackage shop.common;\nmessage Money { int64 cents = 1; string currency = 2; }\n'
COMMON_STRING_CENTS = 'syntax = "proto3";\npackage shop.common;\nmessage Money { string cents = 1; string currency = 2; }\n'
USES_COMMON = (P3 + 'import "common.proto";\nimport "google/protobuf/timestamp.proto";\n'
               "message Invoice { int64 id = 1; shop.common.Money total = 2; google.protobuf.Timestamp at = 3; }\n")


@pytest.fixture(scope="module")
def pb_cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    c = _new_cluster(tmp_path_factory.mktemp("pb-cluster"), zk_connect, 1, None)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def pb_registry(pb_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_registry(pb_cluster.bootstrap_servers, tmp_path_factory.mktemp("pb-log") / "registry.log") as url:
        yield url


def refusal(client: SchemaRegistryClient, subject: str, schema: Schema) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as exc:
        client.register_schema(subject, schema)
    return exc.value


def test_protobuf_evolution_is_checked_at_each_level(pb_registry: str) -> None:
    client = SchemaRegistryClient({"url": pb_registry})
    s = "pb-orders-value"
    first = client.register_schema(s, Schema(V1, "PROTOBUF"))
    # comments and layout do not make a new schema (protoc's descriptor is the identity)
    assert client.register_schema(s, Schema(V1_REFORMATTED, "PROTOBUF")) == first
    # BACKWARD (the default): dropping a oneof member loses data old writers wrote
    assert client.test_compatibility(s, Schema(V2_MEMBER_REMOVED, "PROTOBUF")) is False
    refused = refusal(client, s, Schema(V2_MEMBER_REMOVED, "PROTOBUF"))
    assert (refused.http_status_code, refused.error_code) == (409, 409)
    assert "ONEOF_FIELD_REMOVED" in refused.error_message
    assert "The new schema is missing a oneof field at path '#/Order/pay/3' in the old schema" in refused.error_message
    second = client.register_schema(s, Schema(V2_FIELD_ADDED, "PROTOBUF"))
    assert second != first and client.get_versions(s) == [1, 2]
    # FORWARD: old readers must read new data; the member removal passes, a kind change does not
    client.set_compatibility(s, "FORWARD")
    assert client.test_compatibility(s, Schema(V2_MEMBER_REMOVED, "PROTOBUF")) is True
    refused = refusal(client, s, Schema(V3_KIND_CHANGED, "PROTOBUF"))
    assert refused.http_status_code == 409 and "FIELD_SCALAR_KIND_CHANGED" in refused.error_message
    assert "#/Order/4" in refused.error_message and "old schema" in refused.error_message
    # the text is served back as registered; format=serialized gives protoc's descriptor in base64
    assert http("GET", f"{pb_registry}/schemas/ids/{first}")[1] == {"schemaType": "PROTOBUF", "schema": V1}
    serialized = http("GET", f"{pb_registry}/schemas/ids/{first}?format=serialized")[1]["schema"]
    fdp = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(serialized))
    assert (fdp.package, [m.name for m in fdp.message_type]) == ("shop", ["Order"])
    assert http("GET", f"{pb_registry}/subjects/{s}/versions/1/schema") == (200, V1)


def test_transitive_levels_check_every_live_version(pb_registry: str) -> None:
    """v2 drops field 2 (compatible), v3 brings field 2 back as a string: compatible with v2,
    not with v1, so BACKWARD_TRANSITIVE and FULL_TRANSITIVE refuse it and name version 1."""
    client = SchemaRegistryClient({"url": pb_registry})
    s = "pb-transitive-value"
    v1, v2, v3 = (P3 + "message Order { int64 id = 1; int64 qty = 2; }", P3 + "message Order { int64 id = 1; }",
                  P3 + "message Order { int64 id = 1; string qty = 2; }")
    client.register_schema(s, Schema(v1, "PROTOBUF"))
    client.register_schema(s, Schema(v2, "PROTOBUF"))
    for level in ("BACKWARD_TRANSITIVE", "FULL_TRANSITIVE"):
        client.set_compatibility(s, level)
        assert client.test_compatibility(s, Schema(v3, "PROTOBUF"), version="latest") is True  # one version asked
        refused = refusal(client, s, Schema(v3, "PROTOBUF"))
        assert refused.http_status_code == 409 and "FIELD_SCALAR_KIND_CHANGED" in refused.error_message
        assert "{oldSchemaVersion: 1}" in refused.error_message and f"{{compatibility: '{level}'}}" in refused.error_message
    client.set_compatibility(s, "BACKWARD")
    client.register_schema(s, Schema(v3, "PROTOBUF"))
    assert client.get_versions(s) == [1, 2, 3]


def test_references_are_resolved_as_imports(pb_registry: str) -> None:
    client = SchemaRegistryClient({"url": pb_registry})
    client.register_schema("shop-common", Schema(COMMON, "PROTOBUF"))
    ref_v1 = [SchemaReference("common.proto", "shop-common", 1)]
    client.register_schema("pb-invoices-value", Schema(USES_COMMON, "PROTOBUF", ref_v1))
    assert client.get_latest_version("pb-invoices-value").schema.references[0].subject == "shop-common"
    # an incompatible common v2 is refused in its own subject, then forced in under NONE
    assert refusal(client, "shop-common", Schema(COMMON_STRING_CENTS, "PROTOBUF")).http_status_code == 409
    client.set_compatibility("shop-common", "NONE")
    client.register_schema("shop-common", Schema(COMMON_STRING_CENTS, "PROTOBUF"))
    # the invoice moving to common v2 is compared through the referenced type
    ref_v2 = [SchemaReference("common.proto", "shop-common", 2)]
    refused = refusal(client, "pb-invoices-value", Schema(USES_COMMON, "PROTOBUF", ref_v2))
    assert refused.http_status_code == 409
    assert "FIELD_NAMED_TYPE_CHANGED" in refused.error_message and "#/Invoice/2" in refused.error_message
    assert "FIELD_SCALAR_KIND_CHANGED" in refused.error_message and "#/Money/1" in refused.error_message
    # a reference to nothing, an import without its reference, a text protoc refuses: 42201
    for schema in (Schema(USES_COMMON, "PROTOBUF", [SchemaReference("common.proto", "no-such-subject", 1)]),
                   Schema(USES_COMMON, "PROTOBUF"),
                   Schema(P3 + "message Broken { Unknown u = 1; }", "PROTOBUF")):
        invalid = refusal(client, "pb-invalid-value", schema)
        assert (invalid.http_status_code, invalid.error_code) == (422, 42201), invalid.error_message


def _message_class(files: dict[str, str], main: str, name: str) -> Any:
    """The generated message class ``name`` of ``main`` among ``files`` (compiled by protoc from
    grpcio-tools into a fresh descriptor pool, as a user's generated *_pb2 module would be)."""
    import grpc_tools
    from google.protobuf import descriptor_pool, message_factory
    from grpc_tools import _protoc_compiler

    with tempfile.TemporaryDirectory() as tmp:
        for fname, text in files.items():
            Path(tmp, fname).write_text(text)
        out = os.path.join(tmp, "out.pb")
        include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        assert _protoc_compiler.run_main([b"protoc", f"-I{tmp}".encode(), f"-I{include}".encode(), b"--include_imports",
                                          f"--descriptor_set_out={out}".encode(), os.path.join(tmp, main).encode()]) == 0
        fds = descriptor_pb2.FileDescriptorSet.FromString(Path(out).read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for fdp in fds.file:  # dependencies come first
        pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def test_protobuf_serializer_and_deserializer_round_trip(pb_cluster: LocalCluster, pb_registry: str) -> None:
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    files = {"money.proto": COMMON.replace("shop.common", "shop.money"),
             "receipt.proto": USES_COMMON.replace("common.proto", "money.proto").replace("shop.common", "shop.money")
             .replace("Invoice", "Receipt")}
    receipt = _message_class(files, "receipt.proto", "shop.Receipt")
    client = SchemaRegistryClient({"url": pb_registry})
    serialize = ProtobufSerializer(receipt, client, {"use.deprecated.format": False})
    topic = "pb-receipts"
    sent = []
    producer = Producer({"bootstrap.servers": pb_cluster.bootstrap_servers, "acks": "all"})
    for i in range(10):
        r = receipt(id=i)
        r.total.cents, r.total.currency = 100 * i, "EUR"
        r.at.seconds = 1_700_000_000 + i
        sent.append(r)
        producer.produce(topic, value=serialize(r, SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(30) == 0
    # the serializer registered money.proto as its own subject and the receipt with a reference
    latest = client.get_latest_version(f"{topic}-value")
    assert [(r.name, r.subject) for r in latest.schema.references] == [("money.proto", "money.proto")]
    # it sent a base64 descriptor; the registry keeps (and serves) it as .proto text, as Confluent's does
    assert latest.schema.schema_str.startswith('syntax = "proto3";\npackage shop;\nimport "money.proto";')
    assert "message Receipt {" in latest.schema.schema_str

    deserialize = ProtobufDeserializer(receipt, {"use.deprecated.format": False}, client)
    consumer = Consumer({"bootstrap.servers": pb_cluster.bootstrap_servers, "group.id": "pb-readers",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got = []
    try:
        while len(got) < len(sent):
            msg = consumer.poll(30)
            assert msg is not None, f"timed out after {len(got)} records"
            assert msg.error() is None, msg.error()
            got.append(deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE)))
    finally:
        consumer.close()
    assert got == sent
