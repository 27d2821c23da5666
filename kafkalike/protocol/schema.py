"""A small schema engine for the messages kafkalike defines itself (the ZooKeeper-era RPCs).

kio (generated from Kafka 4.x) no longer carries LeaderAndIsr, StopReplica, UpdateMetadata
and ControlledShutdown, so kafkalike declares them with this module, the way Kafka's
``clients/src/main/resources/common/message/*.json`` does: one frozen attrs class per struct,
covering *all* versions; each attribute is declared with ``kfield(type, versions, ...)``
saying in which versions it is on the wire and in which it may be null. Unlike kio (one class
per version), the version is given when encoding or decoding, as in Kafka's generated Java.

Wire types (Kafka protocol guide, "Protocol Primitive Types"): int8/16/32/64, bool, float64,
uuid, string, bytes, arrays of those or of structs. Non-flexible versions use int16/int32
length prefixes (-1 = null); flexible versions (KIP-482) use unsigned-varint length + 1
(0 = null) and end every struct with a tagged-field section (unknown tags are skipped on
read; kafkalike writes none).

A field absent from a version keeps its default when decoding and is not written when
encoding (Kafka would refuse a non-default value there; we stay lenient).

Errors: decoding raises MalformedFrameError (INVALID_REQUEST) for truncated input, bad
varints, negative lengths, invalid UTF-8.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

import attrs

from kafkalike.protocol.errors import MalformedFrameError

__all__ = [
    "kfield",
    "FieldSpec",
    "Message",
    "encode_struct",
    "decode_struct",
    "write_uvarint",
    "read_uvarint",
    "MAX_VERSION",
]

MAX_VERSION = 32767
"""Upper bound used for open version ranges ("4+")."""

_META = "kafkalike.schema"

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")

PRIMITIVES = ("int8", "int16", "int32", "int64", "bool", "float64", "uuid", "string", "bytes")


def _parse_versions(spec: str | None) -> tuple[int, int] | None:
    if spec is None or spec == "none":
        return None
    if spec.endswith("+"):
        return int(spec[:-1]), MAX_VERSION
    if "-" in spec:
        lo, hi = spec.split("-")
        return int(lo), int(hi)
    return int(spec), int(spec)


@attrs.frozen
class FieldSpec:
    """How one attribute travels: wire ``type`` (a primitive name, a struct class, or
    ``("array", item)``), the inclusive ``versions`` range it exists in, and the range in
    which it may be null."""

    type: Any
    versions: tuple[int, int]
    nullable_versions: tuple[int, int] | None = None

    def present(self, version: int) -> bool:
        return self.versions[0] <= version <= self.versions[1]

    def nullable(self, version: int) -> bool:
        nv = self.nullable_versions
        return nv is not None and nv[0] <= version <= nv[1]


def kfield(
    type: Any,
    versions: str = "0+",
    *,
    default: Any = attrs.NOTHING,
    nullable_versions: str | None = None,
    doc: str = "",
) -> Any:
    """Declare an attrs field with its wire schema.

    ``type``: "int8" ... "bytes" (see PRIMITIVES), a Message subclass (a struct), or
    ``[item]`` (a one-element list) for an array of ``item``. ``versions`` and
    ``nullable_versions`` use Kafka's notation ("0+", "2-4", "5"). Fields that are not in every
    version need a ``default``; arrays default to ``()``.
    """
    if isinstance(type, list):
        type = ("array", type[0])
        if default is attrs.NOTHING:
            default = ()
    spec = FieldSpec(type, _parse_versions(versions) or (0, MAX_VERSION),
                     _parse_versions(nullable_versions))
    if default is attrs.NOTHING:
        return attrs.field(metadata={_META: spec, "doc": doc})
    return attrs.field(default=default, metadata={_META: spec, "doc": doc})


class Message:
    """Marker base for in-project structs and messages.

    Top-level messages set ``__api_key__``, ``__kind__`` ("request"/"response"),
    ``__valid_versions__`` (inclusive range) and ``__flexible_versions__`` (inclusive range).
    """

    __api_key__: int = -1
    __kind__: str = "nested"
    __valid_versions__: tuple[int, int] = (0, 0)
    __flexible_versions__: tuple[int, int] = (MAX_VERSION + 1, MAX_VERSION + 1)

    @classmethod
    def is_flexible(cls, version: int) -> bool:
        lo, hi = cls.__flexible_versions__
        return lo <= version <= hi


def _specs(cls: type) -> list[tuple[str, FieldSpec]]:
    cached = cls.__dict__.get("_kafkalike_specs")
    if cached is None:
        cached = [(a.name, a.metadata[_META]) for a in attrs.fields(cls) if _META in a.metadata]
        type.__setattr__(cls, "_kafkalike_specs", cached)
    return cached


# ------------------------------------------------------------------------------- varints


def write_uvarint(out: bytearray, value: int) -> None:
    """Append an unsigned varint (protobuf style, as Kafka's ByteUtils.writeUnsignedVarint)."""
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def read_uvarint(buf: Any, pos: int) -> tuple[int, int]:
    """Read an unsigned varint of at most 5 bytes; returns (value, new position)."""
    value = 0
    shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise MalformedFrameError("unsigned varint runs past the end of the frame")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift >= 35:
            raise MalformedFrameError("unsigned varint longer than 5 bytes")


def skip_tagged_fields(buf: Any, pos: int) -> int:
    """Skip a tagged-field section (KIP-482); returns the position after it."""
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise MalformedFrameError("tagged field runs past the end of the frame")
    return pos


# ------------------------------------------------------------------------------- encoding


def _write_value(out: bytearray, typ: Any, value: Any, version: int, flexible: bool,
                 nullable: bool) -> None:
    if typ == "int32":
        out += _I32.pack(value)
    elif typ == "int16":
        out += _I16.pack(value)
    elif typ == "int64":
        out += _I64.pack(value)
    elif typ == "int8":
        out += _I8.pack(value)
    elif typ == "bool":
        out.append(1 if value else 0)
    elif typ == "float64":
        out += _F64.pack(value)
    elif typ == "uuid":
        out += (value.bytes if value is not None else bytes(16))
    elif typ in ("string", "bytes"):
        if value is None:
            if not nullable:
                raise ValueError("null value in a non-nullable field")
            if flexible:
                out.append(0)
            elif typ == "string":
                out += _I16.pack(-1)
            else:
                out += _I32.pack(-1)
            return
        data = value.encode("utf-8") if typ == "string" else bytes(value)
        if flexible:
            write_uvarint(out, len(data) + 1)
        elif typ == "string":
            out += _I16.pack(len(data))
        else:
            out += _I32.pack(len(data))
        out += data
    elif isinstance(typ, tuple):  # array
        item = typ[1]
        if value is None:
            if not nullable:
                raise ValueError("null array in a non-nullable field")
            if flexible:
                out.append(0)
            else:
                out += _I32.pack(-1)
            return
        if flexible:
            write_uvarint(out, len(value) + 1)
        else:
            out += _I32.pack(len(value))
        for element in value:
            _write_value(out, item, element, version, flexible, False)
    elif isinstance(typ, type):
        encode_struct(value, version, flexible, out)
    else:  # pragma: no cover - declaration error
        raise TypeError(f"unknown wire type {typ!r}")


def encode_struct(obj: Any, version: int, flexible: bool, out: bytearray) -> None:
    """Append ``obj`` (an attrs class declared with kfield) encoded at ``version``."""
    for name, spec in _specs(type(obj)):
        if spec.present(version):
            _write_value(out, spec.type, getattr(obj, name), version, flexible,
                         spec.nullable(version))
    if flexible:
        out.append(0)  # no tagged fields


# ------------------------------------------------------------------------------- decoding


def _need(buf: Any, pos: int, n: int) -> None:
    if pos + n > len(buf):
        raise MalformedFrameError(f"field runs past the end of the frame (at byte {pos})")


def _read_value(buf: Any, pos: int, typ: Any, version: int, flexible: bool,
                nullable: bool) -> tuple[Any, int]:
    if typ == "int32":
        _need(buf, pos, 4)
        return _I32.unpack_from(buf, pos)[0], pos + 4
    if typ == "int16":
        _need(buf, pos, 2)
        return _I16.unpack_from(buf, pos)[0], pos + 2
    if typ == "int64":
        _need(buf, pos, 8)
        return _I64.unpack_from(buf, pos)[0], pos + 8
    if typ == "int8":
        _need(buf, pos, 1)
        return _I8.unpack_from(buf, pos)[0], pos + 1
    if typ == "bool":
        _need(buf, pos, 1)
        return buf[pos] != 0, pos + 1
    if typ == "float64":
        _need(buf, pos, 8)
        return _F64.unpack_from(buf, pos)[0], pos + 8
    if typ == "uuid":
        _need(buf, pos, 16)
        return uuid.UUID(bytes=bytes(buf[pos:pos + 16])), pos + 16
    if typ in ("string", "bytes"):
        if flexible:
            n, pos = read_uvarint(buf, pos)
            n -= 1
        elif typ == "string":
            _need(buf, pos, 2)
            n = _I16.unpack_from(buf, pos)[0]
            pos += 2
        else:
            _need(buf, pos, 4)
            n = _I32.unpack_from(buf, pos)[0]
            pos += 4
        if n < 0:
            if n == -1 and nullable:
                return None, pos
            raise MalformedFrameError(f"invalid {typ} length {n}")
        _need(buf, pos, n)
        raw = bytes(buf[pos:pos + n])
        if typ == "bytes":
            return raw, pos + n
        try:
            return raw.decode("utf-8"), pos + n
        except UnicodeDecodeError as exc:
            raise MalformedFrameError(f"string is not valid UTF-8: {exc}") from None
    if isinstance(typ, tuple):
        item = typ[1]
        if flexible:
            n, pos = read_uvarint(buf, pos)
            n -= 1
        else:
            _need(buf, pos, 4)
            n = _I32.unpack_from(buf, pos)[0]
            pos += 4
        if n < 0:
            if n == -1 and nullable:
                return None, pos
            raise MalformedFrameError(f"invalid array length {n}")
        if n > len(buf) - pos:  # every element takes at least one byte
            raise MalformedFrameError(f"array length {n} exceeds the frame")
        items = []
        for _ in range(n):
            element, pos = _read_value(buf, pos, item, version, flexible, False)
            items.append(element)
        return tuple(items), pos
    if isinstance(typ, type):
        return decode_struct(typ, buf, pos, version, flexible)
    raise TypeError(f"unknown wire type {typ!r}")  # pragma: no cover


def decode_struct(cls: type, buf: Any, pos: int, version: int, flexible: bool) -> tuple[Any, int]:
    """Decode an instance of ``cls`` at ``version`` from ``buf[pos:]``; returns (obj, new pos).

    Raises MalformedFrameError on malformed input.
    """
    kwargs = {}
    for name, spec in _specs(cls):
        if spec.present(version):
            kwargs[name], pos = _read_value(buf, pos, spec.type, version, flexible,
                                            spec.nullable(version))
    if flexible:
        pos = skip_tagged_fields(buf, pos)
    return cls(**kwargs), pos


def field_specs(cls: type) -> list[tuple[str, FieldSpec]]:
    """(attribute name, FieldSpec) for each wire field of ``cls``, in wire order."""
    return list(_specs(cls))

