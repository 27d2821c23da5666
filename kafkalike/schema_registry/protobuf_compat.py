"""Protobuf schemas in the registry: parsing a ``.proto`` text (with the files it imports) and
the differences between two versions that Confluent's registry refuses.

Parsing uses protoc itself, as shipped in ``grpcio-tools`` (``grpc_tools._protoc_compiler``):
the text and its dependencies are written to a private temporary directory, compiled to a
``FileDescriptorSet`` (so unknown types, duplicate field numbers and syntax errors are protoc's
own errors, answered 42201 by the registry), and the descriptors are turned into the small
element model below. Google's well-known types (``google/protobuf/*.proto``) can be imported
without a reference, as in Confluent's registry.

The comparison follows Confluent Schema Registry's ``io.confluent.kafka.schemaregistry.protobuf.diff``
(``SchemaDiff``, ``MessageSchemaDiff``, ``FieldSchemaDiff``, ``EnumSchemaDiff``, ``Context``;
schema-registry master of 2026, which has the oneof-membership rules
MULTIPLE_FIELDS_MOVED_TO_ONEOF / FIELD_MOVED_TO_EXISTING_ONEOF). ``compare(original, update)``
walks the writer (``original``) and the reader (``update``) and returns ``Difference(type,
full_path)`` records in Confluent's ``Difference.Type`` names with its paths
(``#/TestMessage/2``: message names, oneof names and field numbers); a difference is compatible
when its type is in ``COMPATIBLE_CHANGES``. BACKWARD compares old -> new, FORWARD new -> old,
FULL both (see ``compatibility.check``).

Confluent compares Wire's syntax tree of the text; here the same facts are read from protoc's
descriptors: a field's label is None when the text has none (proto3 singular fields and oneof
members), ``map<K, V>`` fields are MAP kinds (protoc's synthetic ``*Entry`` messages are not
types), proto3 ``optional`` fields' synthetic oneofs are not oneofs, and type names are
fully qualified (protoc resolved them), so name resolution needs no scope search.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
from typing import Any, Iterator, Mapping

import attrs

COMPATIBLE_CHANGES = frozenset({
    "MESSAGE_ADDED", "MESSAGE_MOVED", "ENUM_ADDED", "ENUM_REMOVED", "ENUM_CONST_ADDED",
    "ENUM_CONST_CHANGED", "ENUM_CONST_REMOVED", "FIELD_ADDED", "FIELD_REMOVED", "FIELD_NAME_CHANGED",
    "FIELD_STRING_OR_BYTES_LABEL_CHANGED", "ONEOF_ADDED", "ONEOF_REMOVED", "ONEOF_FIELD_ADDED",
    "ONEOF_FIELD_MOVED_TO_TOP_LEVEL",
})
"""Confluent's ``protobuf.diff.SchemaDiff.COMPATIBLE_CHANGES``."""

MAIN_FILE = "schema.proto"
"""The file name the registered text is compiled under (its dependencies keep their reference names)."""

_SCALARS = {
    # descriptor FieldDescriptorProto.Type number -> .proto scalar name
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
    8: "bool", 9: "string", 12: "bytes", 13: "uint32", 15: "sfixed32", 16: "sfixed64",
    17: "sint32", 18: "sint64",
}
_TYPE_GROUP = 10
_LABEL_REQUIRED, _LABEL_REPEATED = 2, 3

# Confluent's FieldSchemaDiff.ScalarKind: scalars within one group share a wire encoding.
_SCALAR_KIND = {
    "int32": "GENERAL_NUMBER", "int64": "GENERAL_NUMBER", "uint32": "GENERAL_NUMBER",
    "uint64": "GENERAL_NUMBER", "bool": "GENERAL_NUMBER", "sint32": "SIGNED_NUMBER",
    "sint64": "SIGNED_NUMBER", "string": "STRING_OR_BYTES", "bytes": "STRING_OR_BYTES",
    "fixed32": "FIXED32", "sfixed32": "FIXED32", "fixed64": "FIXED64", "sfixed64": "FIXED64",
    "float": "FLOAT", "double": "DOUBLE",
}
_NUMERIC_KINDS = frozenset({"GENERAL_NUMBER", "SIGNED_NUMBER", "FIXED32", "FIXED64", "FLOAT", "DOUBLE"})


class ProtoParseError(ValueError):
    """The text (or one of its dependencies) is not a valid .proto file; the message is protoc's
    errors, one per line ("schema.proto:3:5: "Foo" is not defined.")."""


# --------------------------------------------------------------------------- element model

@attrs.frozen
class ProtoType:
    """A field's type: a scalar name ("int32"), a fully qualified message or enum name without
    the leading dot ("shop.Order.Line"), or a map with ``key`` and ``value`` types."""

    name: str
    key: "ProtoType | None" = None
    value: "ProtoType | None" = None

    @property
    def is_map(self) -> bool:
        return self.key is not None

    @property
    def is_scalar(self) -> bool:
        return self.name in _SCALAR_KIND


@attrs.frozen
class ProtoField:
    """A field: ``name``, field ``number`` (tag), ``label`` ("OPTIONAL", "REQUIRED", "REPEATED" or
    None when the text gives none), ``type``, and ``oneof`` (the enclosing oneof's name or None)."""

    name: str
    number: int
    label: str | None
    type: ProtoType
    oneof: str | None = None


@attrs.frozen
class ProtoEnum:
    """An enum: ``name`` (simple), ``full_name``, ``constants`` as (name, number) in text order."""

    name: str
    full_name: str
    constants: tuple[tuple[str, int], ...]


@attrs.frozen(eq=False)
class ProtoMessage:
    """A message: ``name`` (simple), ``full_name``, ``fields`` (oneof members included, each
    naming its oneof), ``oneofs`` (real oneofs' names, in text order), ``nested`` types."""

    name: str
    full_name: str
    fields: tuple[ProtoField, ...]
    oneofs: tuple[str, ...]
    nested: tuple["ProtoMessage | ProtoEnum", ...]


@attrs.frozen
class ProtoFile:
    """One .proto file: its ``name``, ``package`` ("" when none), ``syntax`` and top-level ``types``."""

    name: str
    package: str
    syntax: str
    types: tuple[ProtoMessage | ProtoEnum, ...]


@attrs.frozen
class ProtoSchema:
    """A compiled schema: the registered ``main`` file, every file it imports (``dependencies``,
    transitive ones included), ``references`` {import name: (subject, version)} for the files
    that came from Confluent schema references, ``canonical``: protoc's serialized
    descriptor of the main file (comments and layout do not change it), and ``text``: the
    .proto text printed from a schema given as a base64 descriptor (None when it was given as
    text, or when the printer cannot write it back exactly)."""

    main: ProtoFile
    dependencies: tuple[ProtoFile, ...]
    references: Mapping[str, tuple[str, int]]
    canonical: bytes
    text: str | None = None


# --------------------------------------------------------------------------- parsing

def _include_dir() -> str:
    import grpc_tools  # type: ignore[import-untyped]

    return os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")


_BASE64 = re.compile(r"[A-Za-z0-9+/\s]+={0,2}\s*")


def serialized_descriptor(text: str) -> Any:
    """``text`` as a FileDescriptorProto when it is one in base64 (what confluent-kafka's
    ProtobufSerializer registers, and Confluent's registry accepts besides .proto text), else
    None. A .proto text always has characters outside base64 (";", "{", quotes)."""
    from google.protobuf import descriptor_pb2  # type: ignore[import-untyped]  # no stubs installed

    if not _BASE64.fullmatch(text):
        return None
    try:
        return descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode("".join(text.split()), validate=True))
    except Exception:  # not base64, or not a FileDescriptorProto: protoc will say what is wrong
        return None


def parse(text: str, dependencies: Mapping[str, str] | None = None,
          references: Mapping[str, tuple[str, int]] | None = None) -> ProtoSchema:
    """Compile ``text`` (a .proto file, or a base64 FileDescriptorProto) with ``dependencies``
    ({import name: .proto text or base64 descriptor}, e.g. {"other.proto": "..."}) and protoc's
    well-known types. ``references`` says which imports are Confluent schema references
    ({import name: (subject, version)}). Raises ProtoParseError with protoc's messages when the
    schema or a dependency does not compile (a descriptor naming an unknown type included)."""
    from google.protobuf import descriptor_pb2
    from grpc_tools import _protoc_compiler

    with tempfile.TemporaryDirectory(prefix="kafkalike-proto-") as tmp:
        root, deps = os.path.join(tmp, "root"), os.path.join(tmp, "deps")
        os.makedirs(root)
        os.makedirs(deps)
        given = descriptor_pb2.FileDescriptorSet()  # the descriptors given in base64
        for name, dep_text in (dependencies or {}).items():
            path = os.path.normpath(os.path.join(deps, name))
            if not path.startswith(deps + os.sep):
                raise ProtoParseError(f"invalid import name {name!r}")
            if (fdp := serialized_descriptor(dep_text)) is not None:
                fdp.name = name
                given.file.append(fdp)
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(dep_text)
        main = os.path.join(root, MAIN_FILE)
        if (fdp := serialized_descriptor(text)) is not None:
            fdp.name = MAIN_FILE
            given.file.append(fdp)
            main = MAIN_FILE  # found in --descriptor_set_in
        else:
            with open(main, "w", encoding="utf-8") as f:
                f.write(text)
        out, given_path = os.path.join(tmp, "set.pb"), os.path.join(tmp, "given.pb")
        includes = [root, deps, _include_dir()]
        args = [b"protoc", *(b"-I" + p.encode() for p in includes), b"--include_imports",
                b"--descriptor_set_out=" + out.encode()]
        if given.file:
            with open(given_path, "wb") as fb:
                fb.write(given.SerializeToString())
            args.append(b"--descriptor_set_in=" + given_path.encode())
        args.append(main.encode())
        if _protoc_compiler.run_main(args) != 0 or not os.path.exists(out):
            raise ProtoParseError(_errors(_protoc_compiler, includes) if not given.file else _errors_of(args, tmp))
        with open(out, "rb") as fb:
            fds = descriptor_pb2.FileDescriptorSet.FromString(fb.read())
    files = [_file(fd) for fd in fds.file]
    main_fd = next(fd for fd in fds.file if fd.name == MAIN_FILE)
    main_fd.ClearField("source_code_info")
    schema = ProtoSchema(next(f for f in files if f.name == MAIN_FILE),
                         tuple(f for f in files if f.name != MAIN_FILE), dict(references or {}),
                         main_fd.SerializeToString(deterministic=True))
    if main == MAIN_FILE:  # given as a descriptor: as text too when that text compiles back to it
        try:
            printed = to_proto_text(main_fd)
            if parse(printed, dependencies, references).canonical == schema.canonical:
                schema = attrs.evolve(schema, text=printed)
        except Exception:  # _Unprintable, ProtoParseError, or a descriptor API the printer missed
            pass
    return schema


def _errors(compiler: Any, includes: list[str]) -> str:
    """protoc's error lines for the main file (recompiled through get_protos, which reports
    them as an exception instead of printing them)."""
    try:  # (its ProtocWarnings, e.g. no syntax line, go through the warnings module as usual)
        compiler.get_protos(MAIN_FILE.encode(), [p.encode() for p in includes])
    except Exception as exc:  # grpc_tools' ProtocErrors: errors() lists one per problem
        errs = getattr(exc, "errors", None)
        if callable(errs):
            # get_protos counts lines and columns from 0; protoc's command line (and editors) from 1
            return "; ".join(f"{_s(e.filename)}:{e.line + 1}:{e.column + 1}: {_s(e.message)}" if e.line >= 0
                             else f"{_s(e.filename)}: {_s(e.message)}" for e in errs())
        return str(exc)
    return "protoc could not compile the schema"


def _errors_of(args: list[bytes], tmp: str) -> str:
    """protoc's error lines when descriptors were given (get_protos takes none): the same
    command run by ``python -m grpc_tools.protoc`` in a child process, its stderr read."""
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", *(a.decode() for a in args[1:])],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"protoc could not compile the schema ({exc})"
    lines = [line.replace(tmp + "/root/", "").replace(tmp + "/deps/", "") for line in done.stderr.splitlines()
             if line.strip() and not line.startswith(("WARNING: All log", "W0000"))]
    return "; ".join(lines) or "protoc could not compile the schema"


def _s(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _file(fd: Any) -> ProtoFile:
    """A FileDescriptorProto as a ProtoFile (messages first, in text order, then enums:
    Confluent's message index counts messages only)."""
    syntax = fd.syntax or "proto2"
    prefix = fd.package + "." if fd.package else ""
    types: list[ProtoMessage | ProtoEnum] = [*(_message(m, prefix, syntax) for m in fd.message_type),
                                             *(_enum(e, prefix) for e in fd.enum_type)]
    return ProtoFile(fd.name, fd.package, syntax, tuple(types))


def _enum(ed: Any, prefix: str) -> ProtoEnum:
    return ProtoEnum(ed.name, prefix + ed.name, tuple((v.name, v.number) for v in ed.value))


def _message(md: Any, prefix: str, syntax: str) -> ProtoMessage:
    """A DescriptorProto as a ProtoMessage: labels as Wire reads the text (None when absent),
    map entries folded into map types, proto3 optional's synthetic oneofs dropped."""
    full = prefix + md.name
    entries = {f"{full}.{n.name}": n for n in md.nested_type if n.options.map_entry}
    real = {f.oneof_index for f in md.field if f.HasField("oneof_index") and not f.proto3_optional}
    fields = []
    for f in md.field:
        oneof = md.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") and f.oneof_index in real else None
        ftype = _field_type(f, entries)
        label: str | None = None
        if ftype.is_map:
            label = None
        elif f.label == _LABEL_REPEATED:
            label = "REPEATED"
        elif f.label == _LABEL_REQUIRED:
            label = "REQUIRED"
        elif f.proto3_optional or (syntax == "proto2" and oneof is None):
            label = "OPTIONAL"
        fields.append(ProtoField(f.name, f.number, label, ftype, oneof))
    nested: list[ProtoMessage | ProtoEnum] = [*(_message(n, full + ".", syntax) for n in md.nested_type if not n.options.map_entry),
              *(_enum(e, full + ".") for e in md.enum_type)]
    return ProtoMessage(md.name, full, tuple(fields),
                        tuple(o.name for i, o in enumerate(md.oneof_decl) if i in real), tuple(nested))


def _field_type(f: Any, entries: Mapping[str, Any]) -> ProtoType:
    if f.type in _SCALARS:
        return ProtoType(_SCALARS[f.type])
    name = f.type_name.lstrip(".")
    entry = entries.get(name)
    if entry is not None and f.label == _LABEL_REPEATED:
        key, value = (_field_type(next(x for x in entry.field if x.number == n), {}) for n in (1, 2))
        return ProtoType(f"map<{key.name}, {value.name}>", key, value)
    return ProtoType(name)


# --------------------------------------------------------------------------- differences

@attrs.frozen
class Difference:
    """One difference: ``type`` (Confluent's protobuf ``Difference.Type`` name) at
    ``full_path`` ("#/TestMessage/2")."""

    type: str
    full_path: str

    @property
    def compatible(self) -> bool:
        return self.type in COMPATIBLE_CHANGES

    def describe(self, reader: str = "new", writer: str = "old") -> str:
        """Confluent's sentence for this difference, naming the ``reader`` (update) and
        ``writer`` (original) sides, e.g. "The kind of a SCALAR field at path '#/T/2' in the new
        schema does not match its kind in the old schema"; "" for types Confluent gives none."""
        p = self.full_path
        text = {
            "PACKAGE_CHANGED": "The package at '{p}' in the {r} schema does not match the package in the {w} schema",
            "MESSAGE_REMOVED": "The {r} schema is missing a MESSAGE type at path '{p}' in the {w} schema",
            "FIELD_KIND_CHANGED": "The type of a field at path '{p}' in the {r} schema does not match the {w} schema",
            "FIELD_SCALAR_KIND_CHANGED": ("The kind of a SCALAR field at path '{p}' in the {r} schema does not "
                                          "match its kind in the {w} schema"),
            "FIELD_NAMED_TYPE_CHANGED": ("The type of a MESSAGE field at path '{p}' in the {r} schema does not "
                                         "match its type in the {w} schema"),
            "FIELD_NUMERIC_LABEL_CHANGED": ("The label for a NUMERIC field at path '{p}' in the {r} schema does not "
                                            "match its label in the {w} schema"),
            "REQUIRED_FIELD_ADDED": "A required field  at path '{p}' in the {r} schema is missing in the {w} schema",
            "REQUIRED_FIELD_REMOVED": "The {r} schema is missing a required field at path: '{p}' in the {w} schema",
            "ONEOF_FIELD_REMOVED": "The {r} schema is missing a oneof field at path '{p}' in the {w} schema",
            "ONEOF_FIELD_MOVED_TO_TOP_LEVEL": ("The oneof field at path '{p}' in the {r} schema was moved out of "
                                               "its oneof to a top-level field in the {w} schema"),
            "MULTIPLE_FIELDS_MOVED_TO_ONEOF": ("Multiple fields in the oneof at path '{p}' in the {r} schema are "
                                               "outside a oneof in the {w} schema"),
            "FIELD_MOVED_TO_EXISTING_ONEOF": ("A field in the oneof at path '{p}' in the {r} schema is outside an "
                                              "existing oneof in the {w} schema"),
        }.get(self.type, "")
        return text.format(p=p, r=reader, w=writer)


@attrs.frozen
class _TypeInfo:
    """Where a named type lives: its file's ``package``, ``origin`` (Confluent's reference:
    ("", -1) for the registered file itself, (subject, version) for a referenced import, None
    for another import), and the element."""

    package: str
    origin: tuple[str, int] | None
    element: ProtoMessage | ProtoEnum


def _walk(types: tuple[ProtoMessage | ProtoEnum, ...]) -> Iterator[ProtoMessage | ProtoEnum]:
    for t in types:
        yield t
        if isinstance(t, ProtoMessage):
            yield from _walk(t.nested)


def _type_table(schema: ProtoSchema) -> dict[str, _TypeInfo]:
    table: dict[str, _TypeInfo] = {}
    for f in (*schema.dependencies, schema.main):
        origin = ("", -1) if f is schema.main else schema.references.get(f.name)
        for t in _walk(f.types):
            table[t.full_name] = _TypeInfo(f.package, origin, t)
    return table


class _Context:
    """Confluent's diff ``Context``: the two type tables, the path being compared, the messages
    on the comparison stack (a recursive type is compared once) and the differences found."""

    def __init__(self, original: dict[str, _TypeInfo], update: dict[str, _TypeInfo],
                 schemas: frozenset[int] = frozenset(), path: tuple[str, ...] = ()) -> None:
        self.original, self.update = original, update
        self.schemas = set(schemas)
        self.path = list(path)
        self.diffs: list[Difference] = []

    def sub(self, path: tuple[str, ...]) -> "_Context":
        return _Context(self.original, self.update, frozenset(self.schemas), path)

    def add(self, kind: str, *more: str) -> None:
        self.diffs.append(Difference(kind, "#/" + "/".join([*self.path, *more])))

    @property
    def compatible(self) -> bool:
        return all(d.compatible for d in self.diffs)


def compare(original: ProtoSchema, update: ProtoSchema) -> list[Difference]:
    """Every difference from ``original`` (the writer) to ``update`` (the reader), in
    Confluent's ``Difference.Type`` names and paths. Never raises for compiled schemas."""
    ctx = _Context(_type_table(original), _type_table(update))
    if original.main.package != update.main.package:
        ctx.add("PACKAGE_CHANGED")
    _compare_types(ctx, original.main.types, update.main.types)
    return ctx.diffs


def incompatibilities(original: ProtoSchema, update: ProtoSchema) -> list[Difference]:
    """The differences (``compare``) outside ``COMPATIBLE_CHANGES``; [] when a reader with
    ``update`` reads data written with ``original`` as far as Confluent's rules tell."""
    return [d for d in compare(original, update) if not d.compatible]


def _compare_types(ctx: _Context, original: tuple[ProtoMessage | ProtoEnum, ...],
                   update: tuple[ProtoMessage | ProtoEnum, ...]) -> None:
    """SchemaDiff.compareTypeElements: messages by simple name (MESSAGE_ADDED/REMOVED, moved
    when its index among the messages changed), then enums (ENUM_ADDED/REMOVED, constants)."""
    om = {t.name: t for t in original if isinstance(t, ProtoMessage)}
    um = {t.name: t for t in update if isinstance(t, ProtoMessage)}
    oi = {name: i for i, name in enumerate(om)}
    ui = {name: i for i, name in enumerate(um)}
    for name in sorted(set(om) | set(um)):
        ctx.path.append(name)
        if name not in um:
            ctx.add("MESSAGE_REMOVED")
        elif name not in om:
            ctx.add("MESSAGE_ADDED")
        else:
            _compare_message(ctx, om[name], um[name])
            if oi[name] != ui[name]:
                ctx.add("MESSAGE_MOVED")
        ctx.path.pop()
    oe = {t.name: t for t in original if isinstance(t, ProtoEnum)}
    ue = {t.name: t for t in update if isinstance(t, ProtoEnum)}
    for name in sorted(set(oe) | set(ue)):
        ctx.path.append(name)
        if name not in ue:
            ctx.add("ENUM_REMOVED")
        elif name not in oe:
            ctx.add("ENUM_ADDED")
        else:
            _compare_enum(ctx, oe[name], ue[name])
        ctx.path.pop()


def _compare_enum(ctx: _Context, original: ProtoEnum, update: ProtoEnum) -> None:
    """EnumSchemaDiff: constants by number (ENUM_CONST_ADDED/REMOVED/CHANGED, all compatible)."""
    ob = {number: name for name, number in original.constants}
    ub = {number: name for name, number in update.constants}
    for number in sorted(set(ob) | set(ub)):
        if number not in ub:
            ctx.add("ENUM_CONST_REMOVED", str(number))
        elif number not in ob:
            ctx.add("ENUM_CONST_ADDED", str(number))
        elif ob[number] != ub[number]:
            ctx.add("ENUM_CONST_CHANGED", str(number))


def _compare_message(ctx: _Context, original: ProtoMessage, update: ProtoMessage) -> None:
    """MessageSchemaDiff: fields by number whatever oneof holds them; oneof membership changes
    that make previously independent fields mutually exclusive are incompatible."""
    if id(original) not in ctx.schemas:
        ctx.schemas.add(id(original))
        try:
            _compare_fields(ctx, original, update)
        finally:
            ctx.schemas.discard(id(original))
    _compare_types(ctx, original.nested, update.nested)


def _compare_fields(ctx: _Context, original: ProtoMessage, update: ProtoMessage) -> None:
    ob = {f.number: f for f in original.fields}
    ub = {f.number: f for f in update.fields}
    ooneof = {f.number: f.oneof for f in original.fields if f.oneof is not None}
    # a oneof removed by name none of whose members survive is a complete (compatible) deletion
    deleted = {name for name in original.oneofs if name not in update.oneofs
               and not any(n in ub for n, o in ooneof.items() if o == name)}
    for name in update.oneofs:
        groups: set[str] = set()
        moved_in = 0
        for f in update.fields:
            if f.oneof != name:
                continue
            if f.number in ooneof:
                groups.add("oneof:" + str(ooneof[f.number]))
            elif f.number in ob:
                groups.add(f"field:{f.number}")
                moved_in += 1
        if len(groups) > 1:
            ctx.add("MULTIPLE_FIELDS_MOVED_TO_ONEOF" if moved_in > 1 else "FIELD_MOVED_TO_EXISTING_ONEOF", name)
    for name in sorted(set(original.oneofs) | set(update.oneofs)):
        if name not in update.oneofs:
            ctx.add("ONEOF_REMOVED", name)
        elif name not in original.oneofs:
            ctx.add("ONEOF_ADDED", name)
    for number in sorted(set(ob) | set(ub)):
        of, uf = ob.get(number), ub.get(number)
        tag = str(number)
        if uf is None:
            assert of is not None
            if of.oneof is not None:
                if of.oneof not in deleted:
                    ctx.add("ONEOF_FIELD_REMOVED", of.oneof, tag)
            else:
                ctx.add("REQUIRED_FIELD_REMOVED" if of.label == "REQUIRED" else "FIELD_REMOVED", tag)
        elif of is None:
            if uf.oneof is not None:
                ctx.add("ONEOF_FIELD_ADDED", uf.oneof, tag)
            else:
                ctx.add("REQUIRED_FIELD_ADDED" if uf.label == "REQUIRED" else "FIELD_ADDED", tag)
        else:
            if of.oneof is not None and uf.oneof is None:
                ctx.add("ONEOF_FIELD_MOVED_TO_TOP_LEVEL", tag)
            scope = [uf.oneof, tag] if uf.oneof is not None else [tag]
            ctx.path.extend(scope)
            if of.name != uf.name:
                ctx.add("FIELD_NAME_CHANGED")
            _compare_labels_and_types(ctx, of.label, uf.label, of.type, uf.type)
            del ctx.path[-len(scope):]


def _kind(ctx: _Context, t: ProtoType, original: bool) -> str:
    if t.is_scalar:
        return "SCALAR"
    if t.is_map:
        return "MAP"
    info = (ctx.original if original else ctx.update).get(t.name)
    return "SCALAR" if info is not None and isinstance(info.element, ProtoEnum) else "MESSAGE"


def _scalar_kind(t: ProtoType) -> str:
    return _SCALAR_KIND.get(t.name, "GENERAL_NUMBER")  # an enum is a GENERAL_NUMBER (varint)


def _compare_labels_and_types(ctx: _Context, olabel: str | None, ulabel: str | None,
                              otype: ProtoType, utype: ProtoType) -> None:
    """FieldSchemaDiff.compareLabelsAndTypes: kind (SCALAR, MESSAGE, MAP) must stay; scalars
    stay within their wire-compatible group; a numeric field's label may not change (packed
    encodings differ) unless either side has no label; message types are compared by name and,
    when they come from different files or reference versions, by content."""
    okind, ukind = _kind(ctx, otype, True), _kind(ctx, utype, False)
    if okind != ukind:
        ctx.add("FIELD_KIND_CHANGED")
    elif okind == "SCALAR":
        osk, usk = _scalar_kind(otype), _scalar_kind(utype)
        if osk != usk:
            ctx.add("FIELD_SCALAR_KIND_CHANGED")
        elif olabel is not None and ulabel is not None and olabel != ulabel:
            if osk in _NUMERIC_KINDS:
                ctx.add("FIELD_NUMERIC_LABEL_CHANGED")
            elif osk == "STRING_OR_BYTES":
                ctx.add("FIELD_STRING_OR_BYTES_LABEL_CHANGED")
    elif okind == "MESSAGE":
        _compare_message_types(ctx, otype.name, utype.name)
    elif okind == "MAP":
        assert otype.key and otype.value and utype.key and utype.value
        _compare_labels_and_types(ctx, None, None, otype.key, utype.key)
        _compare_labels_and_types(ctx, None, None, otype.value, utype.value)


def _compare_message_types(ctx: _Context, ofull: str, ufull: str) -> None:
    oinfo, uinfo = ctx.original.get(ofull), ctx.update.get(ufull)
    if oinfo is None or uinfo is None:
        if ofull != ufull:
            ctx.add("FIELD_NAMED_TYPE_CHANGED")
        return
    olocal = ofull[len(oinfo.package) + 1:] if oinfo.package and ofull.startswith(oinfo.package + ".") else ofull
    ulocal = ufull[len(uinfo.package) + 1:] if uinfo.package and ufull.startswith(uinfo.package + ".") else ufull
    if olocal != ulocal:
        ctx.add("FIELD_NAMED_TYPE_CHANGED")
        return
    if oinfo.origin is not None and uinfo.origin is not None and oinfo.origin == uinfo.origin:
        return  # both in the registered file, or the same subject version: compared elsewhere
    assert isinstance(oinfo.element, ProtoMessage) and isinstance(uinfo.element, ProtoMessage)
    sub = ctx.sub(tuple(olocal.split(".")))
    _compare_message(sub, oinfo.element, uinfo.element)
    ctx.diffs.extend(sub.diffs)
    if not sub.compatible:
        ctx.add("FIELD_NAMED_TYPE_CHANGED")


# --------------------------------------------------------------------------- descriptor -> .proto text

class _Unprintable(Exception):
    """A descriptor feature the printer below does not write (the base64 form is kept)."""


_SCALAR_BY_NUMBER = _SCALARS


def to_proto_text(fd: Any) -> str:
    """A FileDescriptorProto as .proto text (Confluent stores and serves a schema registered as
    a base64 descriptor as text). Covers proto2/proto3 files: package, imports, options with
    plain values, messages (fields with labels, maps, oneofs, defaults, options, reserved),
    enums and services without method options. Raises _Unprintable for anything else
    (editions, groups, extensions, custom options); ``parse`` checks the text compiles back to
    the same descriptor before using it."""
    if fd.syntax not in ("", "proto2", "proto3") or fd.extension:
        raise _Unprintable("syntax or extensions")
    syntax = fd.syntax or "proto2"
    out = [f'syntax = "{syntax}";']
    if fd.package:
        out.append(f"package {fd.package};")
    public, weak = set(fd.public_dependency), set(fd.weak_dependency)
    for i, dep in enumerate(fd.dependency):
        out.append(f'import {"public " if i in public else "weak " if i in weak else ""}{_quote(dep)};')
    out.extend(_options(fd, ""))
    for m in fd.message_type:
        out.extend(_print_message(m, syntax, ""))
    for e in fd.enum_type:
        out.extend(_print_enum(e, ""))
    for svc in fd.service:
        out.append(f"service {svc.name} {{")
        out.extend(_options(svc, "  "))
        for m in svc.method:
            if m.HasField("options") and m.options.ListFields():
                raise _Unprintable("method options")
            cs, ss = "stream " if m.client_streaming else "", "stream " if m.server_streaming else ""
            out.append(f"  rpc {m.name} ({cs}{m.input_type}) returns ({ss}{m.output_type});")
        out.append("}")
    return "\n".join(out) + "\n"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _option_value(field: Any, value: Any) -> str:
    if field.type == field.TYPE_STRING:
        return _quote(value)
    if field.type == field.TYPE_BOOL:
        return "true" if value else "false"
    if field.type == field.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    if field.type in (field.TYPE_MESSAGE, field.TYPE_GROUP, field.TYPE_BYTES):
        raise _Unprintable("message-valued option")
    return repr(value)


def _options(holder: Any, indent: str, skip: tuple[str, ...] = ()) -> list[str]:
    """``option name = value;`` lines for ``holder.options`` (plain fields only)."""
    if not holder.HasField("options"):
        return []
    lines = []
    for field, value in holder.options.ListFields():
        if field.is_extension or field.is_repeated:
            raise _Unprintable("custom or repeated option")
        if field.name in skip:
            continue
        lines.append(f"{indent}option {field.name} = {_option_value(field, value)};")
    return lines


def _default_json_name(name: str) -> str:
    out, upper = [], False
    for ch in name:
        if ch == "_":
            upper = True
        else:
            out.append(ch.upper() if upper else ch)
            upper = False
    return "".join(out)


def _reserved(holder: Any, indent: str, inclusive_end: bool) -> list[str]:
    lines = []
    for r in holder.reserved_range:
        end = r.end if inclusive_end else r.end - 1
        lines.append(f"{indent}reserved {r.start}{'' if end == r.start else f' to {end}'};")
    if holder.reserved_name:
        lines.append(f"{indent}reserved {', '.join(_quote(n) for n in holder.reserved_name)};")
    return lines


def _type_text(f: Any) -> str:
    if f.type in _SCALAR_BY_NUMBER:
        return _SCALAR_BY_NUMBER[f.type]
    if f.type == _TYPE_GROUP:
        raise _Unprintable("group")
    return f.type_name


def _field_text(f: Any, syntax: str, in_oneof: bool, entries: Mapping[str, Any], indent: str) -> str:
    entry = entries.get(f.type_name)
    if entry is not None and f.label == _LABEL_REPEATED:
        key, value = (next(x for x in entry.field if x.number == n) for n in (1, 2))
        head = f"map<{_type_text(key)}, {_type_text(value)}>"
    else:
        label = ""
        if f.label == _LABEL_REPEATED:
            label = "repeated "
        elif f.label == _LABEL_REQUIRED:
            label = "required "
        elif f.proto3_optional or (syntax == "proto2" and not in_oneof):
            label = "optional "
        head = label + _type_text(f)
    opts = []
    if f.HasField("default_value"):
        if f.type == 9:
            opts.append(f"default = {_quote(f.default_value)}")
        elif f.type == 12:
            raise _Unprintable("bytes default")
        else:
            opts.append(f"default = {f.default_value}")
    if f.HasField("json_name") and f.json_name != _default_json_name(f.name):
        opts.append(f"json_name = {_quote(f.json_name)}")
    if f.HasField("options"):
        for field, value in f.options.ListFields():
            if field.is_extension or field.is_repeated:
                raise _Unprintable("custom field option")
            opts.append(f"{field.name} = {_option_value(field, value)}")
    return f"{indent}{head} {f.name} = {f.number}{' [' + ', '.join(opts) + ']' if opts else ''};"


def _print_message(m: Any, syntax: str, indent: str) -> list[str]:
    if m.extension or m.extension_range:
        raise _Unprintable("extensions")
    inner = indent + "  "
    lines = [f"{indent}message {m.name} {{"]
    lines.extend(_options(m, inner))
    entries = {n.name: n for n in m.nested_type if n.options.map_entry}
    entries = {f.type_name: entries[f.type_name.rsplit(".", 1)[-1]] for f in m.field
               if f.type_name.rsplit(".", 1)[-1] in entries}
    real = {f.oneof_index for f in m.field if f.HasField("oneof_index") and not f.proto3_optional}
    done: set[int] = set()
    for f in m.field:
        if f.HasField("oneof_index") and f.oneof_index in real:
            if f.oneof_index in done:
                continue
            done.add(f.oneof_index)
            decl = m.oneof_decl[f.oneof_index]
            lines.append(f"{inner}oneof {decl.name} {{")
            lines.extend(_options(decl, inner + "  "))
            lines.extend(_field_text(g, syntax, True, entries, inner + "  ") for g in m.field
                         if g.HasField("oneof_index") and g.oneof_index == f.oneof_index)
            lines.append(f"{inner}}}")
        else:
            lines.append(_field_text(f, syntax, False, entries, inner))
    for n in m.nested_type:
        if not n.options.map_entry:
            lines.extend(_print_message(n, syntax, inner))
    for e in m.enum_type:
        lines.extend(_print_enum(e, inner))
    lines.extend(_reserved(m, inner, inclusive_end=False))
    lines.append(f"{indent}}}")
    return lines


def _print_enum(e: Any, indent: str) -> list[str]:
    inner = indent + "  "
    lines = [f"{indent}enum {e.name} {{"]
    lines.extend(_options(e, inner))
    for v in e.value:
        opts = []
        if v.HasField("options"):
            for field, value in v.options.ListFields():
                if field.is_extension:
                    raise _Unprintable("custom enum value option")
                opts.append(f"{field.name} = {_option_value(field, value)}")
        lines.append(f"{inner}{v.name} = {v.number}{' [' + ', '.join(opts) + ']' if opts else ''};")
    lines.extend(_reserved(e, inner, inclusive_end=True))
    lines.append(f"{indent}}}")
    return lines
