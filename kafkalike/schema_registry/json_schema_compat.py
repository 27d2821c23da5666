"""JSON Schema compatibility: the differences between a writer and a reader JSON Schema and
which of them stop the reader from accepting the writer's data.

Follows Confluent Schema Registry's JSON Schema rules ("Schema Evolution and Compatibility",
JSON Schema section; ``io.confluent.kafka.schemaregistry.json.diff``: ``SchemaDiff``,
``ObjectSchemaDiff``, ``Difference.Type``). ``compare(original, update)`` walks two schema
documents (``original`` = the writer, ``update`` = the reader: BACKWARD compares old -> new,
FORWARD new -> old) and returns ``Difference(type, json_path)`` records; a difference is
compatible when its type is in ``COMPATIBLE_CHANGES`` (Confluent's set).

Content models (Confluent's terms): an object schema is *open* when it has no
``patternProperties`` and ``additionalProperties`` is absent or ``true``; *closed* when
``additionalProperties`` is ``false``; *partially open* when ``additionalProperties`` is a
schema or ``patternProperties`` is set. Adding a property to an open writer model is
OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL (or REQUIRED_PROPERTY_[WITH_DEFAULT_]ADDED_TO_OPEN_CONTENT_MODEL;
incompatible under Confluent's default strict rules: old data may carry that name with any
value) unless the new property's schema is ``{}``; removing one from a closed reader model is
PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL (incompatible); a required property added to an
unopen writer model needs a ``default``.

Covered: empty/true/false schemas, type changed / integer->number (TYPE_EXTENDED) and back
(TYPE_NARROWED), type lists and allOf/anyOf/oneOf (criterion widened or changed, subschemas
paired by a maximum matching as Confluent's CombinedSchemaDiff), ``not``, ``{"type", "enum"}``
products, string maxLength/minLength/pattern, number maximum/minimum/exclusive*/multipleOf,
enum arrays, object properties/required/additionalProperties/patternProperties/dependencies/
maxProperties/minProperties, arrays (ArraySchemaDiff: one ``items`` schema, tuples as an
``items`` array or 2020-12 ``prefixItems`` with ``additionalItems`` / 2020-12 ``items`` /
``unevaluatedItems`` as their open, closed or partially open content model: ITEM_ADDED_*,
ITEM_REMOVED_*, ADDITIONAL_ITEMS_*, UNEVALUATED_ITEMS_*; maxItems/minItems/uniqueItems/
maxContains/minContains), ``const`` (ConstSchemaDiff: a changed value is ENUM_ARRAY_CHANGED),
``if``/``then``/``else`` (a ConditionalSchema: Confluent compares none of its parts, so only
adding one, TYPE_CHANGED, or removing one, PRODUCT_TYPE_NARROWED, is seen), a ``const`` or a
conditional next to other keywords as everit's synthetic allOf (``_products``),
2019-09+ ``dependentRequired``/``dependentSchemas`` (as ``dependencies``) and
``unevaluatedProperties`` (in the open/closed/partially open model), id/title/description/
default, and local ``$ref``s (inlined). Not covered (no difference is reported, so such a
change passes): references to other subjects, Confluent's metadata/reserved-property rules,
UNEVALUATED_PROPERTIES_* differences.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

COMPATIBLE_CHANGES = frozenset({
    "ID_CHANGED", "DESCRIPTION_CHANGED", "TITLE_CHANGED", "DEFAULT_CHANGED", "SCHEMA_REMOVED",
    "TYPE_EXTENDED",
    "MAX_LENGTH_INCREASED", "MAX_LENGTH_REMOVED", "MIN_LENGTH_DECREASED", "MIN_LENGTH_REMOVED",
    "PATTERN_REMOVED",
    "MAXIMUM_INCREASED", "MAXIMUM_REMOVED", "MINIMUM_DECREASED", "MINIMUM_REMOVED",
    "EXCLUSIVE_MAXIMUM_INCREASED", "EXCLUSIVE_MAXIMUM_REMOVED", "EXCLUSIVE_MINIMUM_DECREASED",
    "EXCLUSIVE_MINIMUM_REMOVED", "MULTIPLE_OF_REDUCED", "MULTIPLE_OF_REMOVED",
    "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED", "REQUIRED_ATTRIBUTE_REMOVED",
    "DEPENDENCY_ARRAY_NARROWED", "DEPENDENCY_ARRAY_REMOVED", "DEPENDENCY_SCHEMA_REMOVED",
    "MAX_PROPERTIES_INCREASED", "MAX_PROPERTIES_REMOVED", "MIN_PROPERTIES_DECREASED",
    "MIN_PROPERTIES_REMOVED", "ADDITIONAL_PROPERTIES_ADDED", "ADDITIONAL_PROPERTIES_EXTENDED",
    "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
    "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
    "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
    "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
    "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "MAX_ITEMS_INCREASED", "MAX_ITEMS_REMOVED", "MIN_ITEMS_DECREASED", "MIN_ITEMS_REMOVED",
    "MAX_CONTAINS_INCREASED", "MAX_CONTAINS_REMOVED", "MIN_CONTAINS_DECREASED", "MIN_CONTAINS_REMOVED",
    "UNIQUE_ITEMS_REMOVED", "ADDITIONAL_ITEMS_ADDED", "ADDITIONAL_ITEMS_EXTENDED",
    "UNEVALUATED_ITEMS_ADDED", "UNEVALUATED_ITEMS_EXTENDED",
    "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL",
    "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL",
    "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "ENUM_ARRAY_EXTENDED",
    "COMBINED_TYPE_EXTENDED", "PRODUCT_TYPE_NARROWED", "SUM_TYPE_EXTENDED", "NOT_TYPE_NARROWED",
})
"""Confluent's ``SchemaDiff.COMPATIBLE_CHANGES_STRICT`` (the reader still accepts the writer's data)."""

_OBJECT_KEYS = ("properties", "required", "additionalProperties", "patternProperties",
                "maxProperties", "minProperties", "dependencies", "dependentRequired", "dependentSchemas",
                "unevaluatedProperties")
_ARRAY_KEYS = ("items", "maxItems", "minItems", "uniqueItems", "additionalItems", "prefixItems", "unevaluatedItems",
               "contains", "maxContains", "minContains")
_CONDITIONAL = ("if", "then", "else")
_ANNOTATIONS = ("title", "description", "$id", "id", "default", "$schema", "$comment", "examples")
_STRING_KEYS = ("maxLength", "minLength", "pattern")
_NUMBER_KEYS = ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum", "multipleOf")


@attrs.frozen
class Difference:
    """One difference: ``type`` (Confluent's ``Difference.Type`` name, e.g.
    OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL) at ``json_path`` ("#/properties/b")."""

    type: str
    json_path: str

    @property
    def compatible(self) -> bool:
        return self.type in COMPATIBLE_CHANGES

    def describe(self, reader: str = "new", writer: str = "old") -> str:
        """The sentence Confluent's registry gives this difference in a 409, naming the
        ``reader`` side (the update) and the ``writer`` side (the original), e.g. "The new
        schema has an open content model and has a property or item at path '#/properties/b'
        which is missing in the old schema"."""
        p, t = self.json_path, self.type
        if t in _ADDED_OR_REMOVED:
            return f"The keyword at path '{p}' in the {reader} schema is not present in the {writer} schema"
        if t in _INCREASED:
            return f"The value at path '{p}' in the {reader} schema is more than its value in the {writer} schema"
        if t in _DECREASED:
            return f"The value at path '{p}' in the {reader} schema is less than its value in the {writer} schema"
        if t in _CHANGED:
            return f"The value at path '{p}' is different between the {reader} and {writer} schema"
        if t in _FEWER:
            return (f"An array or combined type at path '{p}' has fewer elements in the {reader} schema "
                    f"than the {writer} schema")
        if t in _MORE:
            return (f"An array or combined type at path '{p}' has more elements in the {reader} schema "
                    f"than the {writer} schema")
        if t in _TYPE_DIFFERS:
            return f"A type at path '{p}' is different between the {reader} schema and the {writer} schema"
        if t in ("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", "ITEM_ADDED_TO_OPEN_CONTENT_MODEL",
                 "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                 "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL"):
            return (f"The {reader} schema has an open content model and has a property or item at path '{p}' "
                    f"which is missing in the {writer} schema")
        if t == "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL":
            return (f"The {reader} schema has an unopen content model and has a required property at path "
                    f"'{p}' which is missing in the {writer} schema")
        if t in ("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL"):
            return (f"The {reader} has a closed content model and is missing a property or item present at "
                    f"path '{p}' in the {writer} schema")
        if t in ("PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                 "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"):
            return (f"A property or item is missing in the {reader} schema but present at path '{p}' in the "
                    f"{writer} schema and is not covered by its partially open content model")
        if t in ("PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                 "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"):
            return (f"The {reader} schema has a property or item at path '{p}' which is missing in the "
                    f"{writer} schema and is not covered by its partially open content model")
        return f"{t} at path '{p}'"


# How Confluent's Difference words each incompatible type (its error() groups).
_ADDED_OR_REMOVED = frozenset({
    "MAXIMUM_ADDED", "MINIMUM_ADDED", "EXCLUSIVE_MAXIMUM_ADDED", "EXCLUSIVE_MINIMUM_ADDED", "MULTIPLE_OF_ADDED",
    "MAX_LENGTH_ADDED", "MIN_LENGTH_ADDED", "PATTERN_ADDED", "REQUIRED_ATTRIBUTE_ADDED", "MAX_PROPERTIES_ADDED",
    "MIN_PROPERTIES_ADDED", "DEPENDENCY_ARRAY_ADDED", "DEPENDENCY_SCHEMA_ADDED", "MAX_ITEMS_ADDED",
    "MIN_ITEMS_ADDED", "UNIQUE_ITEMS_ADDED", "ADDITIONAL_ITEMS_REMOVED", "ADDITIONAL_PROPERTIES_REMOVED",
    "MAX_CONTAINS_ADDED", "MIN_CONTAINS_ADDED", "UNEVALUATED_ITEMS_REMOVED"})
_INCREASED = frozenset({"MIN_LENGTH_INCREASED", "MINIMUM_INCREASED", "EXCLUSIVE_MINIMUM_INCREASED",
                        "MIN_PROPERTIES_INCREASED", "MULTIPLE_OF_EXPANDED", "MIN_ITEMS_INCREASED",
                        "MIN_CONTAINS_INCREASED"})
_DECREASED = frozenset({"MAX_LENGTH_DECREASED", "MAXIMUM_DECREASED", "MAX_ITEMS_DECREASED", "MAX_CONTAINS_DECREASED",
                        "EXCLUSIVE_MAXIMUM_DECREASED", "MAX_PROPERTIES_DECREASED"})
_CHANGED = frozenset({"PATTERN_CHANGED", "MULTIPLE_OF_CHANGED", "DEPENDENCY_ARRAY_CHANGED"})
_FEWER = frozenset({"ADDITIONAL_ITEMS_NARROWED", "ENUM_ARRAY_NARROWED", "SUM_TYPE_NARROWED",
                    "ADDITIONAL_PROPERTIES_NARROWED", "UNEVALUATED_ITEMS_NARROWED"})
_MORE = frozenset({"DEPENDENCY_ARRAY_EXTENDED", "PRODUCT_TYPE_EXTENDED", "SUM_TYPE_EXTENDED", "NOT_TYPE_EXTENDED"})
_TYPE_DIFFERS = frozenset({"TYPE_CHANGED", "TYPE_NARROWED", "COMBINED_TYPE_CHANGED",
                           "COMBINED_TYPE_SUBSCHEMAS_CHANGED", "ENUM_ARRAY_CHANGED"})


_COMBINERS = ("allOf", "anyOf", "oneOf")


def _kind(schema: Any) -> str:
    """The everit schema class Confluent's loader would build, as a word: empty, false,
    combined, not, enum, const, conditional, object, array, string, number, boolean, null, other."""
    if schema is True or schema == {}:
        return "empty"
    if schema is False:
        return "false"
    if not isinstance(schema, dict):
        return "other"
    t = schema.get("type")
    if isinstance(t, list):
        return "combined" if len(t) != 1 else _kind({**schema, "type": t[0]})
    if any(k in schema for k in _COMBINERS):
        return "combined"
    if "not" in schema:
        return "not"
    if "enum" in schema and t is None:
        return "enum"
    if "const" in schema and t is None:
        return "const"
    if t is None and any(k in schema for k in _CONDITIONAL):
        return "conditional"
    if t in ("integer", "number"):
        return "number"
    if t in ("string", "boolean", "null", "object", "array"):
        return str(t)
    if t is None:
        for kind, keys in (("object", _OBJECT_KEYS), ("array", _ARRAY_KEYS), ("string", _STRING_KEYS),
                           ("number", _NUMBER_KEYS)):
            if any(k in schema for k in keys):
                return kind
        if not any(k in schema for k in ("$ref", "const")):
            return "empty"
    return "other"


def _products(schema: Any) -> Any:
    """everit loads one schema object holding several kinds of keyword as a synthetic allOf of
    one schema per kind, and Confluent's diff compares it as such: a ``const`` or an
    ``if``/``then``/``else`` next to other keywords becomes {"allOf": [rest, {"const"},
    {"if", "then", "else"}]} (annotations stay on the outside); alone, each is its own kind."""
    if not isinstance(schema, dict) or not ("const" in schema or any(k in schema for k in _CONDITIONAL)):
        return schema
    rest = {k: v for k, v in schema.items() if k != "const" and k not in _CONDITIONAL}
    notes = {k: v for k, v in rest.items() if k in _ANNOTATIONS}
    parts: list[Any] = []
    if "const" in schema:
        parts.append({"const": schema["const"]})
    if any(k in schema for k in _CONDITIONAL):
        parts.append({k: schema[k] for k in _CONDITIONAL if k in schema})
    if _kind(rest) == "empty":
        return {**notes, **parts[0]} if len(parts) == 1 else {**notes, "allOf": parts}
    return {**notes, "allOf": [{k: v for k, v in rest.items() if k not in notes}, *parts]}


def _combined(schema: dict[str, Any]) -> tuple[str, list[Any]]:
    """A combined schema as (criterion, subschemas): ``"type": [..]`` is an anyOf of one
    schema per type name (as everit loads it), else the allOf/anyOf/oneOf keyword."""
    if isinstance(schema.get("type"), list):
        rest = {k: v for k, v in schema.items() if k != "type"}
        return "anyOf", [{**rest, "type": t} for t in schema["type"]]
    for key in _COMBINERS:
        if key in schema:
            return key, list(schema[key])
    return "anyOf", [schema]


def _inline(node: Any, root: Any, depth: int = 0) -> Any:
    """``node`` with local references (``{"$ref": "#/definitions/x"}``) replaced by what they
    point at, to a depth of 16 (a recursive schema stops there)."""
    if isinstance(node, list):
        return [_inline(v, root, depth) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#") and depth < 16:
        target: Any = root
        for part in ref.lstrip("#").strip("/").split("/") if ref.strip("#/") else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                return node
            target = target[part]
        return _inline(target, root, depth + 1)
    return {k: (v if k in ("enum", "const", "default", "required", "examples")
                else _inline(v, root, depth)) for k, v in node.items() if k not in ("definitions", "$defs")}


def compare(original: Any, update: Any) -> list[Difference]:
    """Every difference from ``original`` (the writer, parsed JSON) to ``update`` (the reader),
    in Confluent's ``Difference.Type`` names. Never raises for a valid JSON Schema document."""
    out: list[Difference] = []
    _compare(out, "#", _inline(original, original), _inline(update, update))
    return [Difference(d.type, "#/") if d.json_path == "#" else d for d in out]


def incompatibilities(original: Any, update: Any) -> list[Difference]:
    """The differences (``compare``) that are not in ``COMPATIBLE_CHANGES``; [] when data valid
    against ``original`` is valid against ``update`` as far as Confluent's rules tell."""
    return [d for d in compare(original, update) if not d.compatible]


def _compare(out: list[Difference], path: str, original: Any, update: Any) -> None:
    if original is None and update is None:
        return
    if original is None:
        out.append(Difference("SCHEMA_ADDED", path))
        return
    if update is None:
        out.append(Difference("SCHEMA_REMOVED", path))
        return
    original, update = _products(original), _products(update)
    ok, uk = _kind(original), _kind(update)
    if uk == "combined" and ok != "combined":
        criterion, branches = _combined(update)
        if len(branches) == 1 or criterion != "allOf":
            # a single schema became a union (or a singleton): compatible when one branch reads it
            for branch in branches:
                sub: list[Difference] = []
                _compare(sub, path, original, branch)
                if all(d.compatible for d in sub):
                    out.extend(sub)
                    if len(branches) > 1:
                        out.append(Difference("SUM_TYPE_EXTENDED", path))
                    return
    elif ok == "combined" and uk != "combined":
        criterion, branches = _combined(original)
        if len(branches) == 1:
            sub = []
            _compare(sub, path, branches[0], update)
            if all(d.compatible for d in sub):
                out.extend(sub)
                return
        elif criterion == "allOf":
            # a product became one of its factors: compatible when that factor reads the reader
            for branch in branches:
                sub = []
                _compare(sub, path, branch, update)
                if all(d.compatible for d in sub):
                    out.extend(sub)
                    out.append(Difference("PRODUCT_TYPE_NARROWED", path))
                    return
    if ok != uk:
        if ok == "false" or uk == "empty":
            return
        out.append(Difference("TYPE_CHANGED", path))
        return
    if ok in ("empty", "false", "other") and original == update:
        return
    if isinstance(original, dict) and isinstance(update, dict) and ok not in ("enum", "combined"):
        oe, ue = original.get("enum"), update.get("enum")
        if oe is not None or ue is not None:
            # {"type": T, "enum": [..]} is a product (allOf) of a typed schema and an enum
            if ue is None:
                out.append(Difference("PRODUCT_TYPE_NARROWED", path))
            elif oe is None:
                out.append(Difference("PRODUCT_TYPE_EXTENDED", path))
            else:
                _compare_enum(out, path, original, update)
            original = {k: v for k, v in original.items() if k != "enum"}
            update = {k: v for k, v in update.items() if k != "enum"}
    if isinstance(original, dict) and isinstance(update, dict) and \
            original.get("$id", original.get("id")) != update.get("$id", update.get("id")):
        out.append(Difference("ID_CHANGED", path))
    for key, kind in (("title", "TITLE_CHANGED"), ("description", "DESCRIPTION_CHANGED"),
                      ("default", "DEFAULT_CHANGED")):
        if isinstance(original, dict) and isinstance(update, dict) and original.get(key) != update.get(key):
            out.append(Difference(kind, path))
    if ok == "combined":
        _compare_combined(out, path, original, update)
    elif ok == "not":
        _compare_not(out, path, original, update)
    elif ok == "string":
        _bound(out, path, original, update, "maxLength", "MAX_LENGTH")
        _bound(out, path, original, update, "minLength", "MIN_LENGTH")
        _pattern(out, path, original, update)
    elif ok == "number":
        _compare_number(out, path, original, update)
    elif ok == "enum":
        _compare_enum(out, path, original, update)
    elif ok == "const":  # Confluent's ConstSchemaDiff; a conditional's if/then/else are not compared
        if json.dumps(original["const"], sort_keys=True) != json.dumps(update["const"], sort_keys=True):
            out.append(Difference("ENUM_ARRAY_CHANGED", f"{path}/const"))
    elif ok == "object":
        _compare_object(out, path, original, update)
    elif ok == "array":
        _compare_array(out, path, original, update)


def _bound(out: list[Difference], path: str, original: dict[str, Any], update: dict[str, Any],
           key: str, name: str) -> None:
    """maxLength/minLength/maximum/...: ADDED, REMOVED, INCREASED or DECREASED under ``path/key``."""
    a, b = original.get(key), update.get(key)
    if a == b or isinstance(a, bool) or isinstance(b, bool):
        return
    where = f"{path}/{key}"
    if a is None:
        out.append(Difference(f"{name}_ADDED", where))
    elif b is None:
        out.append(Difference(f"{name}_REMOVED", where))
    else:
        out.append(Difference(f"{name}_INCREASED" if b > a else f"{name}_DECREASED", where))


def _pattern(out: list[Difference], path: str, original: dict[str, Any], update: dict[str, Any]) -> None:
    a, b = original.get("pattern"), update.get("pattern")
    if a != b:
        kind = "PATTERN_ADDED" if a is None else "PATTERN_REMOVED" if b is None else "PATTERN_CHANGED"
        out.append(Difference(kind, f"{path}/pattern"))


def _compare_number(out: list[Difference], path: str, original: dict[str, Any], update: dict[str, Any]) -> None:
    oi, ui = original.get("type") == "integer", update.get("type") == "integer"
    if oi != ui:
        out.append(Difference("TYPE_EXTENDED" if oi else "TYPE_NARROWED", path))
    _bound(out, path, original, update, "maximum", "MAXIMUM")
    _bound(out, path, original, update, "minimum", "MINIMUM")
    _bound(out, path, original, update, "exclusiveMaximum", "EXCLUSIVE_MAXIMUM")
    _bound(out, path, original, update, "exclusiveMinimum", "EXCLUSIVE_MINIMUM")
    a, b = original.get("multipleOf"), update.get("multipleOf")
    if a != b:
        where = f"{path}/multipleOf"
        if a is None:
            out.append(Difference("MULTIPLE_OF_ADDED", where))
        elif b is None:
            out.append(Difference("MULTIPLE_OF_REMOVED", where))
        elif (a / b).is_integer():
            out.append(Difference("MULTIPLE_OF_REDUCED", where))
        elif (b / a).is_integer():
            out.append(Difference("MULTIPLE_OF_EXPANDED", where))
        else:
            out.append(Difference("MULTIPLE_OF_CHANGED", where))


def _compare_enum(out: list[Difference], path: str, original: dict[str, Any], update: dict[str, Any]) -> None:
    a, b = original.get("enum") or [], update.get("enum") or []
    if a == b:
        return
    where = f"{path}/enum"
    if all(v in b for v in a):
        out.append(Difference("ENUM_ARRAY_EXTENDED", where))
    elif all(v in a for v in b):
        out.append(Difference("ENUM_ARRAY_NARROWED", where))
    else:
        out.append(Difference("ENUM_ARRAY_CHANGED", where))


def _compare_combined(out: list[Difference], path: str, original: dict[str, Any], update: dict[str, Any]) -> None:
    """allOf/anyOf/oneOf/type lists (Confluent's CombinedSchemaDiff): the criterion may only
    widen (to anyOf; a singleton to oneOf/allOf), and the subschemas must pair up compatibly,
    a maximum matching covering the smaller side (else COMBINED_TYPE_SUBSCHEMAS_CHANGED)."""
    oc, obranches = _combined(original)
    uc, ubranches = _combined(update)
    if oc != uc:
        if uc == "anyOf" or (len(obranches) == 1 and (len(ubranches) == 1 or uc == "oneOf")) or \
                (len(ubranches) == 1 and oc == "allOf"):
            out.append(Difference("COMBINED_TYPE_EXTENDED", path))
        else:
            out.append(Difference("COMBINED_TYPE_CHANGED", path))
            return
    a = [b for i, b in enumerate(obranches) if b not in obranches[:i]]
    b = [x for i, x in enumerate(ubranches) if x not in ubranches[:i]]
    if len(a) < len(b):  # named after the update's criterion when it grew, the original's when it shrank
        out.append(Difference("PRODUCT_TYPE_EXTENDED" if uc == "allOf" else "SUM_TYPE_EXTENDED", path))
    elif len(a) > len(b):
        out.append(Difference("PRODUCT_TYPE_NARROWED" if oc == "allOf" else "SUM_TYPE_NARROWED", path))
    edges: dict[tuple[int, int], list[Difference]] = {}
    for i, ob in enumerate(a):
        for j, ub in enumerate(b):
            sub: list[Difference] = []
            _compare(sub, f"{path}/{oc}/{i}", ob, ub)
            if all(d.compatible for d in sub):
                edges[(i, j)] = sub
    matched = _max_matching(len(a), len(b), set(edges))
    for i, j in sorted(matched.items()):
        out.extend(edges[(i, j)])
    if len(matched) < min(len(a), len(b)):
        out.append(Difference("COMBINED_TYPE_SUBSCHEMAS_CHANGED", path))


def _max_matching(left: int, right: int, edges: set[tuple[int, int]]) -> dict[int, int]:
    """A maximum bipartite matching (augmenting paths) as {left index: right index}."""
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in range(right):
            if (i, j) in edges and j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(left):
        augment(i, set())
    return {i: j for j, i in owner.items()}


def _compare_not(out: list[Difference], path: str, original: dict[str, Any], update: dict[str, Any]) -> None:
    """``not``: the reader's excluded set may only shrink (the writer's negated schema must read
    the reader's): NOT_TYPE_NARROWED, else NOT_TYPE_EXTENDED."""
    sub: list[Difference] = []
    _compare(sub, f"{path}/not", update["not"], original["not"])
    if sub:
        out.append(Difference("NOT_TYPE_NARROWED" if all(d.compatible for d in sub) else "NOT_TYPE_EXTENDED",
                              f"{path}/not"))


def _is_open(schema: dict[str, Any]) -> bool:
    """Open: no patternProperties, additionalProperties absent or true, and (2019-09+)
    unevaluatedProperties absent, true or {}."""
    uneval = schema.get("unevaluatedProperties")
    return (not schema.get("patternProperties") and schema.get("additionalProperties", True) is True
            and (uneval is None or uneval is True or uneval == {}))


def _partial(schema: dict[str, Any], name: str) -> Any:
    """The schema a partially open model gives an undeclared property ``name``, or None."""
    for pattern, sub in (schema.get("patternProperties") or {}).items():
        try:
            if re.search(pattern, name):
                return sub
        except re.error:  # an ECMA 262 pattern Python cannot compile covers nothing here
            continue
    extra = schema.get("additionalProperties")
    if extra is None:  # additionalProperties absent: a 2019-09+ unevaluatedProperties schema covers
        extra = schema.get("unevaluatedProperties")
    return None if isinstance(extra, bool) or extra is None or extra == {} else extra


def _has_default(schema: Any) -> bool:
    return isinstance(schema, dict) and "default" in schema


def _compare_object(out: list[Difference], path: str, original: dict[str, Any], update: dict[str, Any]) -> None:
    oprops, uprops = original.get("properties") or {}, update.get("properties") or {}
    oreq, ureq = set(original.get("required") or ()), set(update.get("required") or ())
    for name in oprops:
        if name in uprops:
            where = f"{path}/required/{name}"
            if name in oreq and name not in ureq:
                out.append(Difference("REQUIRED_ATTRIBUTE_REMOVED", where))
            elif name not in oreq and name in ureq:
                out.append(Difference("REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED" if _has_default(uprops[name])
                                      else "REQUIRED_ATTRIBUTE_ADDED", where))
    for name in sorted(set(oprops) | set(uprops)):
        where = f"{path}/properties/{name}"
        if name not in uprops:
            if _is_open(update):
                out.append(Difference("PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", where))
            elif (cover := _partial(update, name)) is not None:
                sub: list[Difference] = []
                _compare(sub, where, oprops[name], cover)
                out.extend(sub)
                out.append(Difference("PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                                      if all(d.compatible for d in sub)
                                      else "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", where))
            elif oprops[name] is False:
                out.append(Difference("PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", where))
            else:
                out.append(Difference("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", where))
        elif name not in oprops:
            if _is_open(original):
                if _kind(uprops[name]) == "empty":
                    kind = "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
                elif name in ureq:
                    kind = ("REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL" if _has_default(uprops[name])
                            else "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL")
                else:
                    kind = "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"
                out.append(Difference(kind, where))
                continue
            if (cover := _partial(original, name)) is not None:
                sub = []
                _compare(sub, where, cover, uprops[name])
                out.extend(sub)
                out.append(Difference("PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                                      if all(d.compatible for d in sub)
                                      else "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", where))
            if name in ureq:
                out.append(Difference("REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL"
                                      if _has_default(uprops[name])
                                      else "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", where))
            else:
                out.append(Difference("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", where))
        else:
            _compare(out, where, oprops[name], uprops[name])
    _compare_dependencies(out, path, original, update)
    _compare_additional(out, path, original, update)
    _bound(out, path, original, update, "maxProperties", "MAX_PROPERTIES")
    _bound(out, path, original, update, "minProperties", "MIN_PROPERTIES")


def _compare_dependencies(out: list[Difference], path: str, original: dict[str, Any],
                          update: dict[str, Any]) -> None:
    """``dependencies``: property arrays (DEPENDENCY_ARRAY_*) and schemas (DEPENDENCY_SCHEMA_*)."""
    # 2019-09+ split dependencies into dependentRequired (arrays) and dependentSchemas (schemas)
    odeps, udeps = ({**(x.get("dependencies") or {}), **(x.get("dependentRequired") or {}),
                     **(x.get("dependentSchemas") or {})} for x in (original, update))
    for kind, pick in (("ARRAY", lambda v: isinstance(v, list)), ("SCHEMA", lambda v: not isinstance(v, list))):
        od = {k: v for k, v in odeps.items() if pick(v)}
        ud = {k: v for k, v in udeps.items() if pick(v)}
        for name in sorted(set(od) | set(ud)):
            where = f"{path}/dependencies/{name}"
            if name not in ud:
                out.append(Difference(f"DEPENDENCY_{kind}_REMOVED", where))
            elif name not in od:
                out.append(Difference(f"DEPENDENCY_{kind}_ADDED", where))
            elif kind == "SCHEMA":
                _compare(out, where, od[name], ud[name])
            elif set(od[name]) != set(ud[name]):
                a, b = set(od[name]), set(ud[name])
                out.append(Difference("DEPENDENCY_ARRAY_EXTENDED" if b > a else "DEPENDENCY_ARRAY_NARROWED"
                                      if b < a else "DEPENDENCY_ARRAY_CHANGED", where))


def _compare_additional(out: list[Difference], path: str, original: dict[str, Any], update: dict[str, Any]) -> None:
    where = f"{path}/additionalProperties"
    a, b = original.get("additionalProperties", True), update.get("additionalProperties", True)
    a_permits, b_permits = a is not False, b is not False
    a_schema = a if isinstance(a, dict) else None
    b_schema = b if isinstance(b, dict) else None
    if a_permits != b_permits:
        out.append(Difference("ADDITIONAL_PROPERTIES_ADDED" if b_permits else "ADDITIONAL_PROPERTIES_REMOVED",
                              where))
    elif a_schema is None and b_schema is not None:
        out.append(Difference("ADDITIONAL_PROPERTIES_NARROWED", where))
    elif b_schema is None and a_schema is not None:
        out.append(Difference("ADDITIONAL_PROPERTIES_EXTENDED", where))
    elif a_schema is not None:
        _compare(out, where, a_schema, b_schema)


def _compare_array(out: list[Difference], path: str, original: dict[str, Any], update: dict[str, Any]) -> None:
    _bound(out, path, original, update, "maxItems", "MAX_ITEMS")
    _bound(out, path, original, update, "minItems", "MIN_ITEMS")
    a, b = bool(original.get("uniqueItems")), bool(update.get("uniqueItems"))
    if a != b:
        out.append(Difference("UNIQUE_ITEMS_ADDED" if b else "UNIQUE_ITEMS_REMOVED", f"{path}/uniqueItems"))
    _contains(out, path, original, update, "maxContains", "MAX_CONTAINS")
    _contains(out, path, original, update, "minContains", "MIN_CONTAINS")
    ot, ut = _tuple(original), _tuple(update)
    _compare(out, f"{path}/items", _all_items(original), _all_items(update))
    for i in range(min(len(ot), len(ut))):
        _compare(out, f"{path}/items/{i}", ot[i], ut[i])
    for i in range(len(ut), len(ot)):  # an item the reader no longer describes
        _item_removed(out, f"{path}/items/{i}", ot[i], update)
    for i in range(len(ot), len(ut)):  # an item the writer did not describe
        _item_added(out, f"{path}/items/{i}", original, ut[i])
    _compare_additional_items(out, path, original, update)
    _compare_unevaluated_items(out, path, original, update)


def _tuple(schema: dict[str, Any]) -> list[Any]:
    """The positional item schemas: ``items`` as an array (draft 4-7) or ``prefixItems`` (2020-12)."""
    items = schema.get("items")
    if isinstance(items, list):
        return items
    prefix = schema.get("prefixItems")
    return prefix if isinstance(prefix, list) else []


def _all_items(schema: dict[str, Any]) -> Any:
    """The schema every item must match (everit's allItemSchema): a single ``items`` schema
    object without ``prefixItems`` (with them, 2020-12's ``items`` is the additional items'
    schema; a boolean ``items`` permits or forbids additional items, as Confluent reads it)."""
    items = schema.get("items")
    return None if isinstance(items, (list, bool)) or "prefixItems" in schema else items


def _additional_items(schema: dict[str, Any]) -> Any:
    """``additionalItems`` (or 2020-12's ``items`` after ``prefixItems``, or a boolean
    ``items``): True, False or a schema."""
    items = schema.get("items")
    if isinstance(items, bool) or ("prefixItems" in schema and isinstance(items, dict)):
        return items
    return schema.get("additionalItems", True)


def _items_open(schema: dict[str, Any]) -> bool:
    """Confluent's ArraySchemaDiff.isOpenContentModel: additional items permitted with no schema
    and ``unevaluatedItems`` absent or {}."""
    extra, uneval = _additional_items(schema), schema.get("unevaluatedItems")
    return extra is True and (uneval is None or uneval is True or uneval == {})


def _items_partial(schema: dict[str, Any]) -> Any:
    """The schema a partially open array gives items past its tuple, or None."""
    extra = _additional_items(schema)
    if isinstance(extra, dict):
        return extra
    uneval = schema.get("unevaluatedItems")
    if extra is True and isinstance(uneval, dict) and uneval != {}:
        return uneval
    return None


def _item_removed(out: list[Difference], where: str, item: Any, update: dict[str, Any]) -> None:
    if _items_open(update):
        out.append(Difference("ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", where))
    elif (cover := _items_partial(update)) is not None:
        sub: list[Difference] = []
        _compare(sub, where, item, cover)
        out.extend(sub)
        out.append(Difference("ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                              if all(d.compatible for d in sub)
                              else "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", where))
    else:
        out.append(Difference("ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL" if item is False
                              else "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", where))


def _item_added(out: list[Difference], where: str, original: dict[str, Any], item: Any) -> None:
    if _items_open(original):
        out.append(Difference("ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL" if _kind(item) == "empty"
                              else "ITEM_ADDED_TO_OPEN_CONTENT_MODEL", where))
    elif (cover := _items_partial(original)) is not None:
        sub: list[Difference] = []
        _compare(sub, where, cover, item)
        out.extend(sub)
        out.append(Difference("ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                              if all(d.compatible for d in sub)
                              else "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", where))
    else:
        out.append(Difference("ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", where))


def _compare_additional_items(out: list[Difference], path: str, original: dict[str, Any],
                              update: dict[str, Any]) -> None:
    where = f"{path}/additionalItems"
    a, b = _additional_items(original), _additional_items(update)
    a_schema = a if isinstance(a, dict) else None
    b_schema = b if isinstance(b, dict) else None
    if (a is not False) != (b is not False):
        out.append(Difference("ADDITIONAL_ITEMS_REMOVED" if a is not False else "ADDITIONAL_ITEMS_ADDED", where))
    elif a_schema is None and b_schema is not None:
        out.append(Difference("ADDITIONAL_ITEMS_NARROWED", where))
    elif b_schema is None and a_schema is not None:
        out.append(Difference("ADDITIONAL_ITEMS_EXTENDED", where))
    elif a_schema is not None:
        _compare(out, where, a_schema, b_schema)


def _compare_unevaluated_items(out: list[Difference], path: str, original: dict[str, Any],
                               update: dict[str, Any]) -> None:
    """``unevaluatedItems`` (2019-09+), as Confluent's ArraySchemaDiff.compareUnevaluatedItems."""
    a, b = original.get("unevaluatedItems"), update.get("unevaluatedItems")
    if a is None and b is None:
        return
    where = f"{path}/unevaluatedItems"
    a_empty, b_empty = a is True or a == {}, b is True or b == {}
    if a is None:
        out.append(Difference("UNEVALUATED_ITEMS_REMOVED" if b is False else "UNEVALUATED_ITEMS_NARROWED", where))
    elif b is None:
        out.append(Difference("UNEVALUATED_ITEMS_ADDED" if a is False else "UNEVALUATED_ITEMS_EXTENDED", where))
    elif a is False and b is not False:
        out.append(Difference("UNEVALUATED_ITEMS_ADDED", where))
    elif a is not False and b is False:
        out.append(Difference("UNEVALUATED_ITEMS_REMOVED", where))
    elif a_empty and not b_empty:
        out.append(Difference("UNEVALUATED_ITEMS_NARROWED", where))
    elif b_empty and not a_empty:
        out.append(Difference("UNEVALUATED_ITEMS_EXTENDED", where))
    else:
        _compare(out, where, a, b)


def _contains(out: list[Difference], path: str, original: dict[str, Any], update: dict[str, Any],
              key: str, name: str) -> None:
    """maxContains/minContains (2019-09+): ADDED, REMOVED, INCREASED, DECREASED; an absent
    minContains is its default, 1."""
    a, b = original.get(key), update.get(key)
    if key == "minContains":
        a, b = (1 if v is None else v for v in (a, b))
    if not isinstance(a, (int, float)) or isinstance(a, bool):
        a = None
    if not isinstance(b, (int, float)) or isinstance(b, bool):
        b = None
    _bound(out, path, {key: a} if a is not None else {}, {key: b} if b is not None else {}, key, name)
