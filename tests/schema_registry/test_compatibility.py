"""Compatibility rules of kafkalike's registry, without a cluster.

Cases from the Avro specification's "Schema Resolution" (promotions, missing fields and
defaults, enums, unions, fixed, names and aliases) and Confluent's documented examples
("Schema Evolution and Compatibility": add a field with a default is BACKWARD compatible,
without one it is not; delete a field is BACKWARD but not FORWARD compatible unless it had a
default; FULL needs both; the _TRANSITIVE forms check every earlier version).
"""

from __future__ import annotations

import json

import pytest

from kafkalike.schema_registry import errors
from kafkalike.schema_registry.compatibility import can_read, check, normalize_level
from kafkalike.schema_registry.schemas import parse_schema


def avro(schema: object):
    return parse_schema(json.dumps(schema))


def record(*fields: dict, name: str = "Order", **extra: object):
    return avro({"type": "record", "name": name, "namespace": "shop", "fields": list(fields), **extra})


ID = {"name": "id", "type": "long"}
STATUS = {"name": "status", "type": "string"}
STATUS_DEFAULT = {"name": "status", "type": "string", "default": "placed"}


@pytest.mark.parametrize(("writer", "reader"), [
    ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"), ("long", "double"),
    ("float", "double"), ("string", "bytes"), ("bytes", "string"), ("null", "null"),
])
def test_spec_promotions_are_readable(writer: str, reader: str) -> None:
    assert can_read(avro(reader), avro(writer)) == []


@pytest.mark.parametrize(("writer", "reader"), [
    ("long", "int"), ("double", "float"), ("float", "long"), ("string", "int"), ("boolean", "int"),
])
def test_spec_narrowing_is_a_type_mismatch(writer: str, reader: str) -> None:
    findings = can_read(avro(reader), avro(writer))
    assert [f[0] for f in findings] == ["TYPE_MISMATCH"]


def test_reader_field_missing_from_writer_needs_a_default() -> None:
    assert can_read(record(ID, STATUS_DEFAULT), record(ID)) == []
    findings = can_read(record(ID, STATUS), record(ID))
    assert findings == [("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/1", "status")]


def test_writer_field_unknown_to_reader_is_ignored() -> None:
    assert can_read(record(ID), record(ID, STATUS)) == []


def test_enum_writer_symbol_missing_in_reader_unless_reader_has_default() -> None:
    def enum(symbols: list[str], **extra: object):
        return avro({"type": "enum", "name": "Status", "symbols": symbols, **extra})
    assert can_read(enum(["A", "B", "C"]), enum(["A", "B"])) == []
    assert [f[0] for f in can_read(enum(["A", "B"]), enum(["A", "B", "C"]))] == ["MISSING_ENUM_SYMBOLS"]
    assert can_read(enum(["A", "B"], default="A"), enum(["A", "B", "C"])) == []


def test_unions_each_writer_branch_needs_a_reader_branch() -> None:
    assert can_read(avro(["null", "string", "long"]), avro(["null", "string"])) == []
    assert can_read(avro(["null", "long"]), avro("int")) == []  # int promoted to the long branch
    assert [f[0] for f in can_read(avro(["null", "string"]), avro(["null", "string", "long"]))] == \
        ["MISSING_UNION_BRANCH"]
    assert [f[0] for f in can_read(avro("string"), avro(["null", "string"]))] == ["TYPE_MISMATCH"]


def test_fixed_size_and_record_names_must_match_or_alias() -> None:
    assert [f[0] for f in can_read(avro({"type": "fixed", "name": "F", "size": 4}),
                                   avro({"type": "fixed", "name": "F", "size": 8}))] == ["FIXED_SIZE_MISMATCH"]
    assert [f[0] for f in can_read(record(ID, name="Other"), record(ID))] == ["NAME_MISMATCH"]
    assert can_read(record(ID, name="Other", aliases=["shop.Order"]), record(ID)) == []
    renamed = record({"name": "order_id", "type": "long", "aliases": ["id"]})
    assert can_read(renamed, record(ID)) == []


def test_confluent_add_field_with_default_is_backward_and_forward() -> None:
    v1, v2 = record(ID), record(ID, STATUS_DEFAULT)
    for level in ("BACKWARD", "FORWARD", "FULL", "BACKWARD_TRANSITIVE", "FULL_TRANSITIVE"):
        assert check(v2, [(1, v1)], level) == [], level


def test_confluent_add_field_without_default_is_forward_only() -> None:
    v1, v2 = record(ID), record(ID, STATUS)
    assert [f.error_type for f in check(v2, [(1, v1)], "BACKWARD")] == ["READER_FIELD_MISSING_DEFAULT_VALUE"]
    assert check(v2, [(1, v1)], "FORWARD") == []
    assert check(v2, [(1, v1)], "FULL") != []
    assert check(v2, [(1, v1)], "NONE") == []


def test_confluent_delete_field_is_backward_not_forward_unless_it_had_a_default() -> None:
    assert check(record(ID), [(1, record(ID, STATUS))], "BACKWARD") == []
    forward = check(record(ID), [(1, record(ID, STATUS))], "FORWARD")
    assert [f.error_type for f in forward] == ["READER_FIELD_MISSING_DEFAULT_VALUE"]
    assert not forward[0].reader_is_new
    assert "'status' at path '/fields/1' in the old schema has no default value" in forward[0].describe()
    assert check(record(ID), [(1, record(ID, STATUS_DEFAULT))], "FULL") == []


def test_transitive_levels_check_every_earlier_version() -> None:
    v1 = record(ID)
    v2 = record(ID, STATUS_DEFAULT)
    v3 = record(ID, STATUS)  # the default is dropped: fine against v2, not against v1
    history = [(1, v1), (2, v2)]
    assert check(v3, history, "BACKWARD") == []
    transitive = check(v3, history, "BACKWARD_TRANSITIVE")
    assert [(f.old_version, f.error_type) for f in transitive] == [(1, "READER_FIELD_MISSING_DEFAULT_VALUE")]


def test_another_schema_type_is_incompatible_except_under_none() -> None:
    js = parse_schema('{"type": "object"}', "JSON")
    assert [f.error_type for f in check(js, [(1, record(ID))], "BACKWARD")] == ["TYPE_MISMATCH"]
    assert check(js, [(1, record(ID))], "NONE") == []


def test_levels_are_case_insensitive_and_unknown_ones_refused() -> None:
    assert normalize_level("full_transitive") == "FULL_TRANSITIVE"
    assert normalize_level("SIDEWAYS") is None and normalize_level(3) is None


@pytest.mark.parametrize("text", ['{"type": "record", "name": "X"}', '{"type": "strng"}', "", "{",
                                  '{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}',
                                  '{"type": "enum", "name": "E", "symbols": ["A", "A"]}'])
def test_invalid_avro_is_42201(text: str) -> None:
    with pytest.raises(errors.RestError) as exc:
        parse_schema(text)
    assert (exc.value.http_status, exc.value.error_code) == (422, 42201)


def test_equal_avro_schemas_share_an_identity() -> None:
    assert parse_schema('{"type": "string"}').identity == parse_schema('"string"').identity
    assert parse_schema(json.dumps({"type": "record", "name": "R", "fields": [ID]}, indent=4)).identity == \
        parse_schema(json.dumps({"type": "record", "name": "R", "fields": [ID]})).identity
