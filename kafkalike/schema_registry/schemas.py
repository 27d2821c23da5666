"""Schema texts as the registry receives them: parsing, validation and the identity used to
find an already registered schema.

``parse_schema(text, schema_type, references)`` returns a ``ParsedSchema`` or raises
``RestError`` 42201 (invalid schema), as Confluent's ``SchemaRegistry.parseSchema`` does.

- AVRO (the default type): parsed with Apache Avro's Python library (``avro.schema``; the
  Avro specification, "Schema Declaration"), and with fastavro, which also checks that each
  field's default matches its type. ``schema`` is the submitted JSON without
  whitespace; ``identity`` is Avro's own normalized JSON (``{"type": "string"}`` and
  ``"string"`` are the same schema), so re-registering an equal schema finds the old id.
- JSON (JSON Schema): must be a JSON object or boolean, valid against the meta-schema of the
  draft its ``$schema`` names (draft-07, Confluent's default, when it names none), checked with the
  ``jsonschema`` library; e.g. ``{"type": "strin"}`` or ``{"required": "id"}`` is 42201, as
  Confluent's registry refuses a schema its JSON Schema loader cannot read.
- PROTOBUF: compiled by protoc (``protobuf_compat.parse``, grpcio-tools) together with the
  files it imports: the texts of its schema references (``dependencies``, resolved by the
  registry from the subjects and versions named) and Google's well-known types. A text protoc
  refuses (syntax, unknown type, duplicate field number, missing import) is 42201 with protoc's
  messages. ``identity`` is protoc's serialized descriptor of the file, so comments and layout
  do not make a new schema. A base64 ``FileDescriptorProto`` (confluent-kafka's
  ProtobufSerializer) is accepted too and kept as .proto text printed from it, as Confluent
  stores it, when that text compiles back to the same descriptor (else as given).

Schema references (Confluent's ``references``) are refused for AVRO, resolved for PROTOBUF
(imports) and stored as given for JSON (not resolved).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import attrs

from kafkalike.schema_registry import errors

AVRO = "AVRO"
JSON = "JSON"
PROTOBUF = "PROTOBUF"
SCHEMA_TYPES = (JSON, PROTOBUF, AVRO)
"""What GET /schemas/types answers, in Confluent's order."""


@attrs.frozen
class ParsedSchema:
    """A valid schema: ``schema_type`` (AVRO, JSON, PROTOBUF), ``schema`` the text served back,
    ``identity`` the normalized text two equal schemas share, ``references`` as given
    ([{"name", "subject", "version"}]), ``parsed`` the library's object (Avro: avro's
    Schema; PROTOBUF: protobuf_compat.ProtoSchema; JSON: None)."""

    schema_type: str
    schema: str
    identity: str
    references: tuple[tuple[str, str, int], ...] = ()
    parsed: Any = attrs.field(default=None, eq=False, repr=False)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def parse_references(raw: Any) -> tuple[tuple[str, str, int], ...]:
    """Confluent's ``references`` list as (name, subject, version) tuples; 42201 when malformed."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise errors.invalid_schema("references must be a list")
    out = []
    for ref in raw:
        if not (isinstance(ref, dict) and isinstance(ref.get("name"), str)
                and isinstance(ref.get("subject"), str) and isinstance(ref.get("version"), int)):
            raise errors.invalid_schema(f"Invalid schema reference {ref!r}: needs name, subject and version")
        out.append((ref["name"], ref["subject"], ref["version"]))
    return tuple(out)


def parse_schema(text: Any, schema_type: str | None = None,
                 references: tuple[tuple[str, str, int], ...] = (),
                 dependencies: Mapping[str, str] | None = None) -> ParsedSchema:
    """Parse ``text`` as ``schema_type`` (None: AVRO). ``dependencies`` are the texts of the
    schema's references and of theirs, {import name: text} (PROTOBUF only). Raises RestError
    42201 with the parser's message when the schema is invalid or the type unknown."""
    schema_type = (schema_type or AVRO).upper()
    if not isinstance(text, str) or not text.strip():
        raise errors.invalid_schema("Empty schema")
    if schema_type == AVRO:
        return _parse_avro(text, references)
    if schema_type == JSON:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise errors.invalid_schema(f"Invalid schema {text}, details: not JSON: {exc}") from None
        if not isinstance(doc, (dict, bool)):
            raise errors.invalid_schema(f"Invalid schema {text}, details: a JSON Schema is an object or a boolean")
        _check_json_schema(text, doc)
        return ParsedSchema(JSON, _compact(doc), json.dumps(doc, sort_keys=True, separators=(",", ":")), references)
    if schema_type == PROTOBUF:
        from kafkalike.schema_registry import protobuf_compat

        try:
            proto = protobuf_compat.parse(text, dependencies or {}, {n: (s, v) for n, s, v in references})
        except protobuf_compat.ProtoParseError as exc:
            raise errors.invalid_schema(f"Invalid schema {text}, details: {exc}") from None
        return ParsedSchema(PROTOBUF, proto.text or text, proto.canonical.hex(), references, proto)
    raise errors.invalid_schema(f"Invalid schema type {schema_type}")


def _check_json_schema(text: str, doc: dict[str, Any] | bool) -> None:
    """Validates ``doc`` against its draft's meta-schema (``$schema``; draft-07 when absent);
    raises 42201 naming the first violation and where it is."""
    import jsonschema.exceptions  # type: ignore[import-untyped]  # no stubs installed
    import jsonschema.validators  # type: ignore[import-untyped]

    cls = jsonschema.validators.validator_for(doc, default=jsonschema.validators.Draft7Validator)
    try:
        cls.check_schema(doc)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise errors.invalid_schema(f"Invalid schema {text}, details: at {where}: {exc.message}") from None


def _parse_avro(text: str, references: tuple[tuple[str, str, int], ...]) -> ParsedSchema:
    import avro.errors
    import avro.schema
    import fastavro
    import fastavro.schema

    if references:
        raise errors.invalid_schema("Invalid schema: Avro schema references are not supported by kafkalike's registry")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
        if text.strip().isidentifier():  # Avro also accepts a bare primitive name
            doc = text.strip()
    if doc is None:
        raise errors.invalid_schema(f"Invalid schema {text}, details: not valid JSON")
    try:
        parsed = avro.schema.make_avsc_object(doc, avro.schema.Names(validate_names=True))
    except (avro.errors.AvroException, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise errors.invalid_schema(f"Invalid schema {text}, details: {exc}") from None
    try:  # fastavro also checks that each field's default matches its type (Avro spec)
        fastavro.parse_schema(doc, _write_hint=False)
    except (fastavro.schema.SchemaParseException, fastavro.schema.UnknownType, TypeError, ValueError, KeyError) as exc:
        raise errors.invalid_schema(f"Invalid schema {text}, details: {exc}") from None
    return ParsedSchema(AVRO, _compact(doc), _compact(parsed.to_json()), (), parsed)
