"""Protobuf compatibility of kafkalike's registry, without a cluster.

Cases modelled on Confluent Schema Registry's Protobuf diff tests (protobuf-provider's
``SchemaDiffTest`` and its ``diff-schema-examples.json``: each case an original and an updated
.proto, the differences Confluent reports with their paths, and whether the update is
compatible), written anew here; and the levels (BACKWARD, FORWARD, FULL, transitive) through
``compatibility.check`` as the registry calls it.
"""

from __future__ import annotations

import base64

import pytest
from google.protobuf import descriptor_pb2

from kafkalike.schema_registry import errors, protobuf_compat
from kafkalike.schema_registry.compatibility import check
from kafkalike.schema_registry.schemas import PROTOBUF, parse_schema

P3 = 'syntax = "proto3";\n'
P2 = 'syntax = "proto2";\n'


def proto(text: str, deps: dict[str, str] | None = None, refs: dict[str, tuple[str, int]] | None = None):
    return protobuf_compat.parse(text, deps or {}, refs or {})


def diff(original: str, update: str, **kw: object) -> tuple[list[str], bool]:
    found = protobuf_compat.compare(proto(original, kw.get("odeps"), kw.get("orefs")),  # type: ignore[arg-type]
                                    proto(update, kw.get("udeps"), kw.get("urefs")))  # type: ignore[arg-type]
    return sorted(f"{d.type} {d.full_path}" for d in found), all(d.compatible for d in found)


CASES = [
    ("field added", P3 + "message Order { int64 id = 1; }",
     P3 + "message Order { int64 id = 1; string note = 2; }", ["FIELD_ADDED #/Order/2"], True),
    ("field removed", P3 + "message Order { int64 id = 1; string note = 2; }",
     P3 + "message Order { int64 id = 1; }", ["FIELD_REMOVED #/Order/2"], True),
    ("field renumbered is a removal and an addition", P3 + "message Order { int64 id = 1; }",
     P3 + "message Order { int64 id = 2; }", ["FIELD_ADDED #/Order/2", "FIELD_REMOVED #/Order/1"], True),
    ("field renamed", P3 + "message Order { int64 id = 1; }",
     P3 + "message Order { int64 order_id = 1; }", ["FIELD_NAME_CHANGED #/Order/1"], True),
    ("package changed", P3 + "package shop;\nmessage Order { int64 id = 1; }",
     P3 + "package store;\nmessage Order { int64 id = 1; }", ["PACKAGE_CHANGED #/"], False),
    ("required field added (proto2)", P2 + "message Order { optional int64 id = 1; }",
     P2 + "message Order { optional int64 id = 1; required string note = 2; }", ["REQUIRED_FIELD_ADDED #/Order/2"], False),
    ("required field removed (proto2)", P2 + "message Order { optional int64 id = 1; required string note = 2; }",
     P2 + "message Order { optional int64 id = 1; }", ["REQUIRED_FIELD_REMOVED #/Order/2"], False),
    ("field added to a nested message", P3 + "message Outer { message Order { int64 id = 1; } }",
     P3 + "message Outer { message Order { int64 id = 1; bool paid = 2; } }", ["FIELD_ADDED #/Outer/Order/2"], True),
    ("int32 to int64 stays a general number", P3 + "message Order { int32 qty = 1; }",
     P3 + "message Order { int64 qty = 1; }", [], True),
    ("string to bytes is compatible", P3 + "message Order { string note = 1; }",
     P3 + "message Order { bytes note = 1; }", [], True),
    ("int32 to sint32 changes the encoding", P3 + "message Order { int32 qty = 1; }",
     P3 + "message Order { sint32 qty = 1; }", ["FIELD_SCALAR_KIND_CHANGED #/Order/1"], False),
    ("int64 to string changes the scalar kind", P3 + "message Order { int64 qty = 1; }",
     P3 + "message Order { string qty = 1; }", ["FIELD_SCALAR_KIND_CHANGED #/Order/1"], False),
    ("an enum is a general number", P3 + "message Order { int32 status = 1; }",
     P3 + "message Order { Status status = 1; }\nenum Status { PLACED = 0; PAID = 1; }", ["ENUM_ADDED #/Status"], True),
    ("scalar to message is a kind change", P3 + "message Order { int32 total = 1; }",
     P3 + "message Order { Money total = 1; }\nmessage Money { int64 cents = 1; }",
     ["FIELD_KIND_CHANGED #/Order/1", "MESSAGE_ADDED #/Money"], False),
    ("message field's type renamed", P3 + "message Order { A a = 1; }\nmessage A { int32 x = 1; }",
     P3 + "message Order { B a = 1; }\nmessage B { int32 x = 1; }",
     ["FIELD_NAMED_TYPE_CHANGED #/Order/1", "MESSAGE_ADDED #/B", "MESSAGE_REMOVED #/A"], False),
    ("message added", P3 + "message Order { int64 id = 1; }",
     P3 + "message Order { int64 id = 1; }\nmessage Refund { int64 id = 1; }", ["MESSAGE_ADDED #/Refund"], True),
    ("message moved to another index", P3 + "message Order { int64 id = 1; }",
     P3 + "message Refund { int64 id = 1; }\nmessage Order { int64 id = 1; }",
     ["MESSAGE_ADDED #/Refund", "MESSAGE_MOVED #/Order"], True),
    ("enum constant renamed", P3 + "enum Status { PLACED = 0; PAID = 1; }",
     P3 + "enum Status { PLACED = 0; SETTLED = 1; }", ["ENUM_CONST_CHANGED #/Status/1"], True),
    ("enum constants added and removed", P3 + "enum Status { PLACED = 0; PAID = 1; }",
     P3 + "enum Status { PLACED = 0; SHIPPED = 2; }",
     ["ENUM_CONST_ADDED #/Status/2", "ENUM_CONST_REMOVED #/Status/1"], True),
    ("repeated string keeps compatible", P3 + "message Order { optional string tag = 1; }",
     P3 + "message Order { repeated string tag = 1; }", ["FIELD_STRING_OR_BYTES_LABEL_CHANGED #/Order/1"], True),
    ("repeated number changes the packed encoding", P3 + "message Order { optional int32 qty = 1; }",
     P3 + "message Order { repeated int32 qty = 1; }", ["FIELD_NUMERIC_LABEL_CHANGED #/Order/1"], False),
    ("a message field's label is not compared", P3 + "message Order { optional Line line = 1; }\nmessage Line {}",
     P3 + "message Order { repeated Line line = 1; }\nmessage Line {}", [], True),
    ("a map's value type is compared", P3 + "message Order { map<string, int64> qty = 1; }",
     P3 + "message Order { map<string, string> qty = 1; }", ["FIELD_SCALAR_KIND_CHANGED #/Order/1"], False),
    ("a map's key name qualification does not matter",
     P3 + "package shop;\nmessage Order { map<string, Line> lines = 1; }\nmessage Line {}",
     P3 + "package shop;\nmessage Order { map<string, .shop.Line> lines = 1; }\nmessage Line {}", [], True),
    ("qualified and unqualified names are the same type",
     P3 + "package shop;\nmessage Order { Line line = 1; }\nmessage Line {}",
     P3 + "package shop;\nmessage Order { shop.Line line = 1; }\nmessage Line {}", [], True),
    ("new field in a new oneof", P3 + "message Order { int64 id = 1; }",
     P3 + "message Order { int64 id = 1; oneof pay { string card = 3; } }",
     ["ONEOF_ADDED #/Order/pay", "ONEOF_FIELD_ADDED #/Order/pay/3"], True),
    ("one existing field moved into a new oneof", P3 + "message Order { int64 id = 1; string card = 2; }",
     P3 + "message Order { int64 id = 1; oneof pay { string card = 2; } }", ["ONEOF_ADDED #/Order/pay"], True),
    ("two existing fields moved into one oneof", P3 + "message Order { string card = 1; string iban = 2; }",
     P3 + "message Order { oneof pay { string card = 1; string iban = 2; string cash = 3; } }",
     ["MULTIPLE_FIELDS_MOVED_TO_ONEOF #/Order/pay", "ONEOF_ADDED #/Order/pay", "ONEOF_FIELD_ADDED #/Order/pay/3"], False),
    ("a field moved into an existing oneof", P3 + "message Order { string iban = 2; oneof pay { string card = 1; } }",
     P3 + "message Order { oneof pay { string card = 1; string iban = 2; } }",
     ["FIELD_MOVED_TO_EXISTING_ONEOF #/Order/pay"], False),
    ("a oneof member removed", P3 + "message Order { oneof pay { string card = 1; string iban = 2; } }",
     P3 + "message Order { oneof pay { string card = 1; } }", ["ONEOF_FIELD_REMOVED #/Order/pay/2"], False),
    ("a whole oneof deleted", P3 + "message Order { int64 id = 1; oneof pay { string card = 2; string iban = 3; } }",
     P3 + "message Order { int64 id = 1; }", ["ONEOF_REMOVED #/Order/pay"], True),
    ("a oneof renamed with the same members", P3 + "message Order { oneof pay { string card = 1; string iban = 2; } }",
     P3 + "message Order { oneof payment { string card = 1; string iban = 2; } }",
     ["ONEOF_ADDED #/Order/payment", "ONEOF_REMOVED #/Order/pay"], True),
    ("a oneof member moved to the top level", P3 + "message Order { oneof pay { string card = 1; string iban = 2; } }",
     P3 + "message Order { string iban = 2; oneof pay { string card = 1; } }",
     ["ONEOF_FIELD_MOVED_TO_TOP_LEVEL #/Order/2"], True),
    ("a type change is found through a oneof rename", P3 + "message Order { oneof pay { string card = 1; } }",
     P3 + "message Order { oneof payment { int64 card = 1; } }",
     ["FIELD_SCALAR_KIND_CHANGED #/Order/payment/1", "ONEOF_ADDED #/Order/payment", "ONEOF_REMOVED #/Order/pay"], False),
    ("proto3 optional is not a oneof", P3 + "message Order { int64 id = 1; }",
     P3 + "message Order { int64 id = 1; optional string note = 2; }", ["FIELD_ADDED #/Order/2"], True),
]


@pytest.mark.parametrize(("original", "update", "changes", "compatible"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_confluent_differences_and_their_compatibility(original: str, update: str, changes: list[str],
                                                       compatible: bool) -> None:
    assert diff(original, update) == (sorted(changes), compatible)


GOOGLE = P3 + "package demo.domain;\nmessage Home { int32 device = 1; bool enabled = 2; }"
GOOGLE_STRING = P3 + "package demo.domain;\nmessage Home { string device = 1; bool enabled = 2; }"
USES_HOME = P3 + 'import "home.proto";\nmessage Order { .demo.domain.Home home = 1; }'


def test_a_referenced_type_changed_between_versions_is_compared_by_content() -> None:
    found = diff(USES_HOME, USES_HOME, odeps={"home.proto": GOOGLE}, orefs={"home.proto": ("home", 1)},
                 udeps={"home.proto": GOOGLE_STRING}, urefs={"home.proto": ("home", 2)})
    assert found == (["FIELD_NAMED_TYPE_CHANGED #/Order/1", "FIELD_SCALAR_KIND_CHANGED #/Home/1"], False)


def test_the_same_reference_version_is_not_compared_again() -> None:
    deps, refs = {"home.proto": GOOGLE}, {"home.proto": ("home", 1)}
    assert diff(USES_HOME, USES_HOME, odeps=deps, orefs=refs, udeps=deps, urefs=refs) == ([], True)


def test_moving_a_type_into_an_import_removes_it_and_out_of_one_adds_it() -> None:
    local = P3 + "message Order { Home home = 1; }\nmessage Home { int32 device = 1; bool enabled = 2; }"
    deps, refs = {"home.proto": GOOGLE}, {"home.proto": ("home", 1)}
    assert diff(local, USES_HOME, udeps=deps, urefs=refs) == (["MESSAGE_REMOVED #/Home"], False)
    assert diff(USES_HOME, local, odeps=deps, orefs=refs) == (["MESSAGE_ADDED #/Home"], True)


def test_well_known_types_import_without_a_reference() -> None:
    text = P3 + 'import "google/protobuf/timestamp.proto";\nmessage Order { google.protobuf.Timestamp at = 1; }'
    assert diff(text, text) == ([], True)


def test_a_recursive_message_is_compared_once() -> None:
    tree = P3 + "message Node { string name = 1; repeated Node children = 2; }"
    assert diff(tree, tree.replace("string name", "bytes name")) == ([], True)


@pytest.mark.parametrize("text", [
    "message {",
    P3 + "message Order { Missing m = 1; }",
    P3 + "message Order { int64 a = 1; int64 b = 1; }",
    P3 + 'import "nowhere.proto";\nmessage Order { int64 a = 1; }',
])
def test_a_text_protoc_refuses_is_invalid_42201(text: str) -> None:
    with pytest.raises(errors.RestError) as exc:
        parse_schema(text, PROTOBUF)
    assert (exc.value.http_status, exc.value.error_code) == (422, errors.INVALID_SCHEMA)
    assert "details: " in exc.value.message and "schema.proto:" in exc.value.message  # protoc's line:column


def test_comments_and_layout_keep_the_identity() -> None:
    a = parse_schema(P3 + "message Order { int64 id = 1; }", PROTOBUF)
    b = parse_schema(P3 + "// an order\nmessage Order {\n  int64 id = 1;  // its id\n}\n", PROTOBUF)
    c = parse_schema(P3 + "message Order { int64 id = 2; }", PROTOBUF)
    assert a.identity == b.identity != c.identity


V1 = P3 + "message Order { int64 id = 1; oneof pay { string card = 2; string iban = 3; } }"
V2_MEMBER_REMOVED = P3 + "message Order { int64 id = 1; oneof pay { string card = 2; } }"


@pytest.mark.parametrize(("level", "refused"), [
    ("BACKWARD", True), ("FORWARD", False), ("FULL", True), ("NONE", False),
])
def test_levels_pick_the_direction(level: str, refused: bool) -> None:
    """Removing a oneof member: new readers lose data old writers wrote (BACKWARD refuses),
    old readers read the new data (FORWARD passes)."""
    found = check(parse_schema(V2_MEMBER_REMOVED, PROTOBUF), [(1, parse_schema(V1, PROTOBUF))], level)
    assert bool(found) is refused
    if refused:
        assert found[0].error_type == "ONEOF_FIELD_REMOVED"
        assert "The new schema is missing a oneof field at path '#/Order/pay/3' in the old schema" \
            in found[0].describe()


def test_transitive_levels_check_every_version() -> None:
    v1 = parse_schema(P3 + "message Order { int64 id = 1; int64 qty = 2; }", PROTOBUF)
    v2 = parse_schema(P3 + "message Order { int64 id = 1; }", PROTOBUF)
    v3 = parse_schema(P3 + "message Order { int64 id = 1; string qty = 2; }", PROTOBUF)
    assert check(v3, [(1, v1), (2, v2)], "BACKWARD") == []
    found = check(v3, [(1, v1), (2, v2)], "BACKWARD_TRANSITIVE")
    assert [(f.error_type, f.location, f.old_version) for f in found] == [
        ("FIELD_SCALAR_KIND_CHANGED", "#/Order/2", 1)]
    assert [f.error_type for f in check(v3, [(1, v1), (2, v2)], "FULL_TRANSITIVE")] == [
        "FIELD_SCALAR_KIND_CHANGED", "FIELD_SCALAR_KIND_CHANGED"]


def test_a_base64_file_descriptor_is_the_same_schema_as_its_text() -> None:
    """confluent-kafka's ProtobufSerializer registers its schema as a base64
    FileDescriptorProto; Confluent's registry reads both forms, and so does this one."""
    text = P3 + "package shop;\nmessage Order { int64 id = 1; map<string, int32> qty = 2; optional string note = 3; }"
    as_text = parse_schema(text, PROTOBUF)
    as_descriptor = parse_schema(base64.b64encode(as_text.parsed.canonical).decode(), PROTOBUF)
    assert as_descriptor.identity == as_text.identity
    # kept as .proto text printed from the descriptor (what Confluent stores), which compiles back to it
    assert as_descriptor.schema.startswith('syntax = "proto3";\npackage shop;\nmessage Order {')
    assert "map<string, int32> qty = 2;" in as_descriptor.schema and "optional string note = 3;" in as_descriptor.schema
    assert parse_schema(as_descriptor.schema, PROTOBUF).identity == as_text.identity
    assert diff(text, text) == ([], True)
    assert protobuf_compat.compare(as_text.parsed, as_descriptor.parsed) == []


def test_a_base64_descriptor_naming_an_unknown_type_is_invalid() -> None:
    fdp = descriptor_pb2.FileDescriptorProto(name="x.proto", syntax="proto3")
    msg = fdp.message_type.add(name="Order")
    msg.field.add(name="line", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                  type_name=".shop.Missing", label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    with pytest.raises(errors.RestError) as exc:
        parse_schema(base64.b64encode(fdp.SerializeToString()).decode(), PROTOBUF)
    assert exc.value.error_code == errors.INVALID_SCHEMA and "Missing" in exc.value.message


def test_a_descriptor_the_printer_cannot_write_is_kept_as_given() -> None:
    """A custom option (an extension) is beyond the .proto printer: the base64 form is kept."""
    deps = {"opts.proto": P3 + 'import "google/protobuf/descriptor.proto";\n'
                              "extend google.protobuf.FieldOptions { string tag = 50001; }"}
    text = P3 + 'import "opts.proto";\nmessage Order { int64 id = 1 [(tag) = "x"]; }'
    given = base64.b64encode(protobuf_compat.parse(text, deps).canonical).decode()
    parsed = protobuf_compat.parse(given, deps)
    assert parsed.text is None and parsed.canonical == protobuf_compat.parse(text, deps).canonical
