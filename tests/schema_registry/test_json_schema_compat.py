"""JSON Schema compatibility in kafkalike's registry (Confluent's JSON Schema rules).

Cases follow the behaviours Confluent documents ("Schema Evolution and Compatibility", JSON
Schema section: open, closed and partially open content models) and the difference types of
``io.confluent.kafka.schemaregistry.json.diff`` (``Difference.Type``): each case names the
writer (original) and reader (update) schema, the differences expected and whether the
reader can read the writer's data. Then the levels (BACKWARD, FORWARD, FULL, transitive) and
one REST test: an incompatible JSON Schema is refused with 409 naming the difference.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kafkalike.schema_registry.compatibility import check
from kafkalike.schema_registry.json_schema_compat import compare, incompatibilities
from kafkalike.schema_registry.schemas import parse_schema
from tests.schema_registry.registry_helpers import http, running_registry

S = {"type": "string"}
N = {"type": "number"}
OPEN = {"type": "object", "properties": {"a": S}}
CLOSED = {"type": "object", "properties": {"a": S}, "additionalProperties": False}

CASES: list[tuple[str, Any, Any, list[str], bool]] = [
    ("an empty schema reads anything", {"properties": {}}, {}, [], True),
    ("title change", {"title": "x"}, {"title": "y"}, ["TITLE_CHANGED #/"], True),
    ("object to array", {"type": "object"}, {"type": "array"}, ["TYPE_CHANGED #/"], False),
    ("string to number in a property", OPEN, {"type": "object", "properties": {"a": N}},
     ["TYPE_CHANGED #/properties/a"], False),
    ("integer widened to number", {"type": "integer"}, N, ["TYPE_EXTENDED #/"], True),
    ("number narrowed to integer", N, {"type": "integer"}, ["TYPE_NARROWED #/"], False),
    ("minLength raised", {**S, "minLength": 1}, {**S, "minLength": 2}, ["MIN_LENGTH_INCREASED #/minLength"], False),
    ("minLength lowered", {**S, "minLength": 2}, {**S, "minLength": 1}, ["MIN_LENGTH_DECREASED #/minLength"], True),
    ("maxLength raised", {**S, "maxLength": 5}, {**S, "maxLength": 9}, ["MAX_LENGTH_INCREASED #/maxLength"], True),
    ("maxLength added", S, {**S, "maxLength": 9}, ["MAX_LENGTH_ADDED #/maxLength"], False),
    ("pattern removed", {**S, "pattern": "^a"}, S, ["PATTERN_REMOVED #/pattern"], True),
    ("pattern changed", {**S, "pattern": "^a"}, {**S, "pattern": "^b"}, ["PATTERN_CHANGED #/pattern"], False),
    ("maximum lowered", {**N, "maximum": 10}, {**N, "maximum": 5}, ["MAXIMUM_DECREASED #/maximum"], False),
    ("minimum removed", {**N, "minimum": 10}, N, ["MINIMUM_REMOVED #/minimum"], True),
    ("multipleOf reduced", {**N, "multipleOf": 10}, {**N, "multipleOf": 2}, ["MULTIPLE_OF_REDUCED #/multipleOf"], True),
    ("multipleOf changed", {**N, "multipleOf": 10}, {**N, "multipleOf": 3}, ["MULTIPLE_OF_CHANGED #/multipleOf"], False),
    ("enum extended", {"enum": ["red"]}, {"enum": ["red", "blue"]}, ["ENUM_ARRAY_EXTENDED #/enum"], True),
    ("enum narrowed", {"enum": ["red", "blue"]}, {"enum": ["red"]}, ["ENUM_ARRAY_NARROWED #/enum"], False),
    ("enum removed from a typed schema", {**S, "enum": ["red"]}, S, ["PRODUCT_TYPE_NARROWED #/"], True),
    ("type list extended", {"type": ["object"]}, {"type": ["object", "array"]}, ["SUM_TYPE_EXTENDED #/"], True),
    ("type list narrowed", {"type": ["string", "null"]}, {"type": ["string"]}, ["TYPE_CHANGED #/"], False),
    ("string made nullable", S, {"type": ["string", "null"]}, ["SUM_TYPE_EXTENDED #/"], True),
    ("oneOf gains a branch", {"oneOf": [S]}, {"oneOf": [N, S]}, ["SUM_TYPE_EXTENDED #/"], True),
    ("oneOf branch changed", {"oneOf": [S]}, {"oneOf": [N]}, ["COMBINED_TYPE_SUBSCHEMAS_CHANGED #/"], False),
    ("oneOf to allOf", {"oneOf": [S, N]}, {"allOf": [S, N]}, ["COMBINED_TYPE_CHANGED #/"], False),
    ("not narrowed", {"not": N}, {"not": {"type": "integer"}}, ["NOT_TYPE_NARROWED #/not"], True),
    ("property added to an open model", OPEN, {**OPEN, "properties": {"a": S, "b": N}},
     ["OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL #/properties/b"], False),
    ("required property added to an open model", OPEN, {**OPEN, "properties": {"a": S, "b": N}, "required": ["b"]},
     ["REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL #/properties/b"], False),
    ("allOf to anyOf with fewer subschemas", {"allOf": [OPEN, {"required": ["a"]}]}, {"anyOf": [OPEN]},
     ["COMBINED_TYPE_EXTENDED #/", "PRODUCT_TYPE_NARROWED #/"], True),
    ("allOf to a singleton oneOf", {"allOf": [OPEN, {"required": ["a"]}]}, {"oneOf": [OPEN]},
     ["COMBINED_TYPE_EXTENDED #/", "PRODUCT_TYPE_NARROWED #/"], True),
    ("property with {} added to an open model", OPEN, {**OPEN, "properties": {"a": S, "b": {}}},
     ["PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL #/properties/b"], True),
    ("property removed from an open model", {**OPEN, "properties": {"a": S, "b": N}}, OPEN,
     ["PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL #/properties/b"], True),
    ("optional property added to a closed model", CLOSED, {**CLOSED, "properties": {"a": S, "b": N}},
     ["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/b"], True),
    ("required property added to a closed model", CLOSED,
     {**CLOSED, "properties": {"a": S, "b": N}, "required": ["b"]},
     ["REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/b"], False),
    ("required property with a default added to a closed model", CLOSED,
     {**CLOSED, "properties": {"a": S, "b": {**N, "default": 0}}, "required": ["b"]},
     ["REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/b"], True),
    ("property removed from a closed model", {**CLOSED, "properties": {"a": S, "b": N}}, CLOSED,
     ["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/b"], False),
    ("property added, covered by additionalProperties", {**OPEN, "additionalProperties": S},
     {**OPEN, "properties": {"a": S, "b": S}, "additionalProperties": S},
     ["PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/b",
      "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/b"], True),
    ("property added, not covered by patternProperties", {**CLOSED, "patternProperties": {"^I_": S}},
     {**CLOSED, "properties": {"a": S, "I_1": N}, "patternProperties": {"^I_": S}},
     ["TYPE_CHANGED #/properties/I_1",
      "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/I_1",
      "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/I_1"], False),
    ("a pattern Python cannot compile covers nothing", {**CLOSED, "patternProperties": {"(?<": S}},
     {**CLOSED, "properties": {"a": S, "b": S}, "patternProperties": {"(?<": S}},
     ["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/b"], True),
    ("required added", OPEN, {**OPEN, "required": ["a"]}, ["REQUIRED_ATTRIBUTE_ADDED #/required/a"], False),
    ("required removed", {**OPEN, "required": ["a"]}, OPEN, ["REQUIRED_ATTRIBUTE_REMOVED #/required/a"], True),
    ("closed model opened", CLOSED, OPEN, ["ADDITIONAL_PROPERTIES_ADDED #/additionalProperties"], True),
    ("open model closed", OPEN, CLOSED, ["ADDITIONAL_PROPERTIES_REMOVED #/additionalProperties"], False),
    ("additionalProperties given a schema", OPEN, {**OPEN, "additionalProperties": S},
     ["ADDITIONAL_PROPERTIES_NARROWED #/additionalProperties"], False),
    ("maxProperties lowered", {"maxProperties": 2}, {"maxProperties": 1},
     ["MAX_PROPERTIES_DECREASED #/maxProperties"], False),
    ("minProperties lowered", {"minProperties": 2}, {"minProperties": 1},
     ["MIN_PROPERTIES_DECREASED #/minProperties"], True),
    ("dependency array moved", {"dependencies": {"a": ["b"]}}, {"dependencies": {"b": ["a"]}},
     ["DEPENDENCY_ARRAY_ADDED #/dependencies/b", "DEPENDENCY_ARRAY_REMOVED #/dependencies/a"], False),
    ("dependency schema removed", {"dependencies": {"a": S, "b": S}}, {"dependencies": {"a": S}},
     ["DEPENDENCY_SCHEMA_REMOVED #/dependencies/b"], True),
    ("dependency schema changed", {"dependencies": {"a": S}}, {"dependencies": {"a": N}},
     ["TYPE_CHANGED #/dependencies/a"], False),
    ("items schema added", {"type": "array"}, {"type": "array", "items": S}, ["SCHEMA_ADDED #/items"], False),
    ("items schema removed", {"type": "array", "items": S}, {"type": "array"}, ["SCHEMA_REMOVED #/items"], True),
    ("maxItems lowered", {"type": "array", "maxItems": 2}, {"type": "array", "maxItems": 1},
     ["MAX_ITEMS_DECREASED #/maxItems"], False),
    ("uniqueItems removed", {"type": "array", "uniqueItems": True}, {"type": "array"},
     ["UNIQUE_ITEMS_REMOVED #/uniqueItems"], True),
    ("a referenced definition changed", {"type": "array", "items": {"$ref": "#/definitions/x"}, "definitions": {"x": S}},
     {"type": "array", "items": {"$ref": "#/definitions/x"}, "definitions": {"x": N}}, ["TYPE_CHANGED #/items"], False),
    ("moving a schema into a definition", S, {"$ref": "#/definitions/x", "definitions": {"x": S}}, [], True),
    # tuples: items as an array (draft-07) or prefixItems (2020-12), additionalItems as the content model
    ("tuple item changed", {"type": "array", "items": [S, N]}, {"type": "array", "items": [S, S]},
     ["TYPE_CHANGED #/items/1"], False),
    ("tuple item removed from an open array", {"type": "array", "items": [S, N]}, {"type": "array", "items": [S]},
     ["ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL #/items/1"], True),
    ("tuple item added to an open array", {"type": "array", "items": [S]}, {"type": "array", "items": [S, N]},
     ["ITEM_ADDED_TO_OPEN_CONTENT_MODEL #/items/1"], False),
    ("tuple item added to a closed array", {"type": "array", "items": [S], "additionalItems": False},
     {"type": "array", "items": [S, N], "additionalItems": False}, ["ITEM_ADDED_TO_CLOSED_CONTENT_MODEL #/items/1"], True),
    ("tuple item removed from a closed array", {"type": "array", "items": [S, N], "additionalItems": False},
     {"type": "array", "items": [S], "additionalItems": False}, ["ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL #/items/1"], False),
    ("tuple item covered by additionalItems", {"type": "array", "items": [S], "additionalItems": N},
     {"type": "array", "items": [S, N], "additionalItems": N},
     ["ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/1"], True),
    ("tuple item not covered by additionalItems", {"type": "array", "items": [S], "additionalItems": N},
     {"type": "array", "items": [S, S], "additionalItems": N},
     ["TYPE_CHANGED #/items/1", "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/1"], False),
    ("additionalItems forbidden", {"type": "array", "items": [S]}, {"type": "array", "items": [S], "additionalItems": False},
     ["ADDITIONAL_ITEMS_REMOVED #/additionalItems"], False),
    ("additionalItems given a schema", {"type": "array", "items": [S]}, {"type": "array", "items": [S], "additionalItems": N},
     ["ADDITIONAL_ITEMS_NARROWED #/additionalItems"], False),
    ("prefixItems item removed, covered by items (2020-12)", {"type": "array", "prefixItems": [S, N], "items": N},
     {"type": "array", "prefixItems": [S], "items": N},
     ["ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/1"], True),
    ("a single items schema became a tuple", {"type": "array", "items": S}, {"type": "array", "items": [S]},
     ["SCHEMA_REMOVED #/items", "ITEM_ADDED_TO_OPEN_CONTENT_MODEL #/items/0"], False),
    # const: a ConstSchema, compared by value; next to a type, a product (everit's synthetic allOf)
    ("const changed", {"const": "a"}, {"const": "b"}, ["ENUM_ARRAY_CHANGED #/const"], False),
    ("const unchanged", {"const": {"x": [1, 2]}}, {"const": {"x": [1, 2]}}, [], True),
    ("const added next to a type", S, {**S, "const": "a"}, ["TYPE_CHANGED #/"], False),
    ("const removed next to a type", {**S, "const": "a"}, S, ["PRODUCT_TYPE_NARROWED #/"], True),
    ("const changed next to a type: the products no longer match", {**S, "const": "a"}, {**S, "const": "b"},
     ["COMBINED_TYPE_SUBSCHEMAS_CHANGED #/"], False),
    ("const to enum is another kind", {"const": "a"}, {"enum": ["a", "b"]}, ["TYPE_CHANGED #/"], False),
    # if/then/else: a ConditionalSchema, whose parts Confluent does not compare
    ("conditional added to an object", OPEN, {**OPEN, "if": {"required": ["a"]}, "then": {"required": ["b"]}},
     ["TYPE_CHANGED #/"], False),
    ("conditional removed from an object", {**OPEN, "if": {"required": ["a"]}, "then": {"required": ["b"]}}, OPEN,
     ["PRODUCT_TYPE_NARROWED #/"], True),
    ("conditional's then changed is not compared", {**OPEN, "if": {"required": ["a"]}, "then": {"required": ["b"]}},
     {**OPEN, "if": {"required": ["a"]}, "then": {"required": ["c"]}}, [], True),
    ("a conditional alone against a string", {"if": S, "then": S}, S, ["TYPE_CHANGED #/"], False),
    # 2019-09+ object keywords
    ("dependentRequired compared as dependencies", {"dependentRequired": {"a": ["b"]}},
     {"dependentRequired": {"b": ["a"]}},
     ["DEPENDENCY_ARRAY_ADDED #/dependencies/b", "DEPENDENCY_ARRAY_REMOVED #/dependencies/a"], False),
    ("dependentSchemas compared as dependencies", {"dependentSchemas": {"a": S}}, {"dependentSchemas": {"a": N}},
     ["TYPE_CHANGED #/dependencies/a"], False),
    ("unevaluatedProperties false closes the model", {"properties": {"a": S}, "unevaluatedProperties": False},
     {"properties": {"a": S, "b": N}, "unevaluatedProperties": False},
     ["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/b"], True),
    ("an unevaluatedProperties schema covers a new property", {"properties": {"a": S}, "unevaluatedProperties": N},
     {"properties": {"a": S, "b": N}, "unevaluatedProperties": N},
     ["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/b",
      "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/b"], True),
]


@pytest.mark.parametrize(("original", "update", "changes", "compatible"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_confluent_differences_and_their_compatibility(original: Any, update: Any, changes: list[str],
                                                       compatible: bool) -> None:
    found = compare(original, update)
    assert sorted(f"{d.type} {d.json_path}" for d in found) == sorted(changes)
    assert (incompatibilities(original, update) == []) is compatible


def js(schema: object):
    return parse_schema(json.dumps(schema), "JSON")


def test_levels_pick_the_direction_and_transitive_checks_every_version() -> None:
    """BACKWARD: the new schema reads old data; FORWARD: the old schema reads new data. Adding
    an optional property to a closed model is BACKWARD compatible; its reverse (removing it from
    a closed reader) is not, so FORWARD and FULL refuse it. Only the _TRANSITIVE form sees a
    change against an older version than the latest."""
    v1 = js(CLOSED)
    v2 = js({**CLOSED, "properties": {"a": S, "b": N}})
    assert check(v2, [(1, v1)], "BACKWARD") == []
    forward = check(v2, [(1, v1)], "FORWARD")
    assert [f.error_type for f in forward] == ["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"]
    assert forward[0].location == "#/properties/b" and not forward[0].reader_is_new
    assert [f.error_type for f in check(v2, [(1, v1)], "FULL")] == ["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"]
    v0 = js({**CLOSED, "properties": {"a": {**S, "maxLength": 3}}})
    v3 = js({**CLOSED, "properties": {"a": {**S, "maxLength": 5}}})
    v4 = js({**CLOSED, "properties": {"a": {**S, "maxLength": 4}}})
    assert check(v4, [(1, v0), (2, v3)], "FORWARD") == []
    assert [f.error_type for f in check(v4, [(1, v0), (2, v3)], "BACKWARD")] == ["MAX_LENGTH_DECREASED"]
    assert check(v4, [(1, v0)], "BACKWARD") == []
    found = check(v4, [(1, v0), (2, v3)], "FORWARD_TRANSITIVE")
    assert [(f.error_type, f.old_version) for f in found] == [("MAX_LENGTH_DECREASED", 1)]
    assert check(v4, [(1, v0), (2, v3)], "NONE") == []
    assert ("The value at path '#/properties/a/maxLength' in the old schema is less than its value in the new "
            "schema") in found[0].describe()


def test_descriptions_name_the_reader_and_writer_sides() -> None:
    """Confluent's sentences: the reader (update) is named first, the writer (original) second."""
    added, = incompatibilities(OPEN, {**OPEN, "properties": {"a": S, "b": N}})
    assert added.describe() == ("The new schema has an open content model and has a property or item at path "
                                "'#/properties/b' which is missing in the old schema")
    removed, = incompatibilities({**CLOSED, "properties": {"a": S, "b": N}}, CLOSED)
    assert removed.describe("old", "new") == ("The old has a closed content model and is missing a property or "
                                              "item present at path '#/properties/b' in the new schema")
    changed, = incompatibilities(S, N)
    assert changed.describe() == "A type at path '#/' is different between the new schema and the old schema"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, zk_connect: str):
    from tests.fixtures_cluster import _new_cluster
    cluster = _new_cluster(tmp_path_factory.mktemp("srjs"), zk_connect, 1, None)
    try:
        with running_registry(cluster.bootstrap_servers,
                              tmp_path_factory.mktemp("srjslog") / "registry.log") as url:
            yield url
    finally:
        cluster.stop()


def test_an_incompatible_json_schema_is_refused_with_409(registry: str) -> None:
    """Under the default BACKWARD level, a property added to an open content model is refused
    (409/409 naming OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL and the path); the compatibility
    endpoint answers false; a compatible change (a property with a default added to a closed
    model) registers as version 2."""
    s = "jscompat-value"
    def post(schema: object, path: str = f"/subjects/{s}/versions") -> tuple[int, Any]:
        return http("POST", f"{registry}{path}", {"schema": json.dumps(schema), "schemaType": "JSON"})
    assert post(OPEN)[0] == 200
    status, err = post({**OPEN, "properties": {"a": S, "b": N}})
    assert (status, err["error_code"]) == (409, 409), err
    assert "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL" in err["message"] and "#/properties/b" in err["message"]
    assert ("The new schema has an open content model and has a property or item at path '#/properties/b' "
            "which is missing in the old schema") in err["message"]
    assert post({**OPEN, "properties": {"a": S, "b": N}}, f"/compatibility/subjects/{s}/versions/latest") == (
        200, {"is_compatible": False})
    assert post({**OPEN, "properties": {"a": S, "b": {}}})[0] == 200
    assert http("GET", f"{registry}/subjects/{s}/versions") == (200, [1, 2])
