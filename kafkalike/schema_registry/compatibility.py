"""Compatibility levels and the check a new schema must pass before it is registered.

Levels (Confluent Schema Registry, "Schema Evolution and Compatibility"): a new schema is
checked against the subject's latest live version (BACKWARD, FORWARD, FULL) or against every
live version (the ``_TRANSITIVE`` forms); NONE checks nothing. Directions:

- BACKWARD: the new schema can read data written with the old one (new = reader).
- FORWARD: the old schema can read data written with the new one (old = reader).
- FULL: both.

For Avro the reader/writer check is Apache Avro's ``avro.compatibility``
(``ReaderWriterCompatibilityChecker``, the Python port of the Java ``SchemaCompatibility``
that Confluent's registry uses), which follows the Avro specification's "Schema Resolution":
promotions int->long->float->double, string<->bytes, record fields matched by name or alias, a
reader field missing from the writer needs a default, enum symbols, union branches, fixed size.
JSON Schema pairs follow Confluent's JSON Schema rules (``json_schema_compat``: open/closed
content models, types, bounds, enums, tuples, const, conditionals). Protobuf pairs follow
Confluent's Protobuf rules (``protobuf_compat``: messages, fields by number, scalar kinds,
labels, oneofs, enums, package, referenced types).
"""

from __future__ import annotations

import json
from typing import Sequence

import attrs

from kafkalike.schema_registry import json_schema_compat, protobuf_compat
from kafkalike.schema_registry.schemas import AVRO, JSON, PROTOBUF, ParsedSchema

LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
          "FULL", "FULL_TRANSITIVE")
DEFAULT_LEVEL = "BACKWARD"
"""Confluent's default compatibility level (schema.compatibility.level)."""


def normalize_level(level: object) -> str | None:
    """``level`` upper-cased if it is one of LEVELS, else None (the caller answers 42203)."""
    if isinstance(level, str) and level.upper() in LEVELS:
        return level.upper()
    return None


@attrs.frozen
class Incompatibility:
    """One finding: ``error_type`` (Avro's SchemaIncompatibilityType upper-cased, e.g.
    READER_FIELD_MISSING_DEFAULT_VALUE), ``location`` (JSON path in the reader, "/fields/2"),
    ``message``, and the old version it was found against."""

    error_type: str
    location: str
    message: str
    old_version: int
    old_schema: str
    level: str
    reader_is_new: bool = True

    def describe(self) -> str:
        """Confluent-style detail text of this finding."""
        reader, writer = ("new", "old") if self.reader_is_new else ("old", "new")
        info = self.message
        if self.error_type == "READER_FIELD_MISSING_DEFAULT_VALUE":
            text = (f"The field '{self.message}' at path '{self.location}' in the {reader} schema has no default "
                    f"value and is missing in the {writer} schema")
        elif self.location.startswith("#"):  # a JSON Schema or Protobuf difference (json_schema_compat, protobuf_compat)
            text = info = self.message.replace("{reader}", reader).replace("{writer}", writer)
        else:
            text = f"{self.message} at path '{self.location}' ({reader} schema reading {writer} schema data)"
        return (f"{{errorType:'{self.error_type}', description:'{text}', additionalInfo:'{info}'}}, "
                f"{{oldSchemaVersion: {self.old_version}}}, {{oldSchema: '{self.old_schema}'}}, "
                f"{{compatibility: '{self.level}'}}")


def can_read(reader: ParsedSchema, writer: ParsedSchema) -> list[tuple[str, str, str]]:
    """Findings (error type, location, message) that stop ``reader`` from reading data written
    with ``writer``; [] when it can. AVRO, JSON and PROTOBUF pairs are checked (the location
    of a JSON or PROTOBUF finding is Confluent's "#/..." path)."""
    if reader.schema_type == JSON and writer.schema_type == JSON:
        return [(d.type, d.json_path, d.describe("{reader}", "{writer}"))
                for d in json_schema_compat.incompatibilities(json.loads(writer.schema), json.loads(reader.schema))]
    if reader.schema_type == PROTOBUF and writer.schema_type == PROTOBUF:
        return [(d.type, d.full_path, d.describe("{reader}", "{writer}"))
                for d in protobuf_compat.incompatibilities(writer.parsed, reader.parsed)]
    if reader.schema_type != AVRO or writer.schema_type != AVRO:
        return []
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

    result = ReaderWriterCompatibilityChecker().get_compatibility(reader.parsed, writer.parsed)
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    types = [t.name.upper() for t in result.incompatibilities]
    locations = sorted(result.locations)
    messages = sorted(result.messages)
    return [(types[min(i, len(types) - 1)] if types else "INCOMPATIBLE",
             "/" + locations[min(i, len(locations) - 1)].lstrip("/") if locations else "/", message)
            for i, message in enumerate(messages)]


def check(new: ParsedSchema, previous: Sequence[tuple[int, ParsedSchema]], level: str) -> list[Incompatibility]:
    """What stops ``new`` from being registered after ``previous`` (live versions, oldest
    first, as (version, schema)) under ``level``; [] when it may be registered. A schema of
    another type than the previous one is incompatible unless the level is NONE."""
    if level == "NONE" or not previous:
        return []
    against = previous if level.endswith("_TRANSITIVE") else previous[-1:]
    base = level.removesuffix("_TRANSITIVE")
    found: list[Incompatibility] = []
    for version, old in reversed(against):
        pairs: list[tuple[ParsedSchema, ParsedSchema]] = []
        if base in ("BACKWARD", "FULL"):
            pairs.append((new, old))
        if base in ("FORWARD", "FULL"):
            pairs.append((old, new))
        if old.schema_type != new.schema_type:
            found.append(Incompatibility("TYPE_MISMATCH", "/", f"schema type {new.schema_type} "
                                         f"differs from {old.schema_type}", version, old.schema, level))
            continue
        for reader, writer in pairs:
            for error_type, location, message in can_read(reader, writer):
                found.append(Incompatibility(error_type, location, message, version, old.schema, level,
                                             reader is new))
    return found
