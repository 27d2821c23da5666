"""A bounds-checked, pure-Python reader for kio entities (untrusted input safe).

kio's native ``entity_reader`` preallocates arrays from the length announced on the wire, so
a single malformed frame with a huge compact-array length makes it request gigabytes and
abort the whole process (found by tests/protocol/test_protocol_fuzz.py). A broker cannot run
that on client bytes. This module reads the same kio dataclasses from the same field
metadata (``kafka_type``, ``tag``, optionality, nesting; kio's ``_introspect`` helpers) but
checks every length against the bytes actually left before building anything, and raises
only MalformedFrameError.

Holds ``read_entity(cls, buf, pos, max_fields=None) -> (entity, new_pos)``. Readers are
compiled once per class (closures in a cache), so the per-field cost is a function call and a
struct unpack.

Limits: an array whose declared length times its elements' smallest encoding
(4 bytes for int32, 16 for a UUID, 1 for anything else) exceeds the bytes left is refused
before anything is allocated (Kafka's "Error reading array of size X, only Y bytes
available"). ``max_fields`` (the broker passes MAX_REQUEST_FIELDS for requests) bounds the
array elements of one message, each struct element weighing its number of fields: a valid
100 MiB frame of 1-byte names would otherwise become ~50 million Python objects (measured:
a 50 MiB DeleteTopics took a broker from 65 to 525 MiB and blocked it for 44 s).

Semantics follow kio's own reader: zero UUIDs read as None, ``error_code`` as ErrorCode,
``timedelta_*`` as datetime.timedelta (ms), ``datetime_i64`` as an aware datetime (-1 ->
None when nullable), ``bytes``/``records`` as bytes, nullable structs with KIP-893's int8
marker, absent tagged fields at their kio defaults, unknown tags skipped.
"""

from __future__ import annotations

import dataclasses
import datetime
import struct
import threading
import uuid
from typing import TYPE_CHECKING, Any, Callable, cast

from kio.schema.errors import ErrorCode
from kio.serial._implicit_defaults import get_tagged_field_default
from kio.serial._introspect import (EntityField, EntityTupleField, PrimitiveField,
                                    PrimitiveTupleField, classify_field, get_field_tag,
                                    get_schema_field_type, is_optional)
from kio.serial.readers import tz_aware_from_i64

from kafkalike.protocol.errors import MalformedFrameError
from kafkalike.protocol.schema import read_uvarint

if TYPE_CHECKING:
    from kio.static.protocol import Entity

__all__ = ["read_entity", "MAX_REQUEST_FIELDS"]

MAX_REQUEST_FIELDS = 500_000
"""Array elements one request may hold, a struct element counting as its number of fields
(kafkalike's own bound; Kafka has none). At the bound: under 1 s of decoding, ~35 MiB
(499,000 distinct topic names); a follower Fetch of 30,000 partitions
(kafkalike.max.replicas.per.broker) weighs ~210,000, a Metadata request naming 100,000
topics ~300,000."""

_budget = threading.local()  # fields left while a read_entity(max_fields=...) runs here

Reader = Callable[[Any, int], tuple[Any, int]]

_FIXED = {
    "int8": struct.Struct(">b"), "int16": struct.Struct(">h"), "int32": struct.Struct(">i"),
    "int64": struct.Struct(">q"), "uint8": struct.Struct(">B"), "uint16": struct.Struct(">H"),
    "uint32": struct.Struct(">I"), "uint64": struct.Struct(">Q"), "float64": struct.Struct(">d"),
}
_I16 = _FIXED["int16"]
_I32 = _FIXED["int32"]
_I64 = _FIXED["int64"]
_ZERO_UUID = bytes(16)


def _truncated(pos: int) -> MalformedFrameError:
    return MalformedFrameError(f"field runs past the end of the frame (at byte {pos})")


def _fixed_reader(s: struct.Struct) -> Reader:
    size = s.size
    unpack = s.unpack_from

    def read(buf: Any, pos: int) -> tuple[Any, int]:
        if pos + size > len(buf):
            raise _truncated(pos)
        return unpack(buf, pos)[0], pos + size

    return read


def _length(buf: Any, pos: int, flexible: bool, legacy: struct.Struct) -> tuple[int, int]:
    if flexible:
        n, pos = read_uvarint(buf, pos)
        return n - 1, pos
    if pos + legacy.size > len(buf):
        raise _truncated(pos)
    return legacy.unpack_from(buf, pos)[0], pos + legacy.size


def _blob_reader(flexible: bool, nullable: bool, is_string: bool) -> Reader:
    legacy = _I16 if is_string else _I32

    def read(buf: Any, pos: int) -> tuple[Any, int]:
        n, pos = _length(buf, pos, flexible, legacy)
        if n < 0:
            if n == -1 and nullable:
                return None, pos
            raise MalformedFrameError(f"invalid length {n}")
        end = pos + n
        if end > len(buf):
            raise _truncated(pos)
        raw = bytes(buf[pos:end])
        if not is_string:
            return raw, end
        try:
            return raw.decode("utf-8"), end
        except UnicodeDecodeError:
            raise MalformedFrameError("string is not valid UTF-8") from None

    return read


def _primitive_reader(kafka_type: str, flexible: bool, nullable: bool) -> Reader:
    if kafka_type in _FIXED:
        return _fixed_reader(_FIXED[kafka_type])
    if kafka_type == "bool":
        def read_bool(buf: Any, pos: int) -> tuple[Any, int]:
            if pos >= len(buf):
                raise _truncated(pos)
            return buf[pos] != 0, pos + 1
        return read_bool
    if kafka_type == "string":
        return _blob_reader(flexible, nullable, True)
    if kafka_type in ("bytes", "records"):
        return _blob_reader(flexible, nullable, False)
    if kafka_type == "uuid":
        def read_uuid(buf: Any, pos: int) -> tuple[Any, int]:
            if pos + 16 > len(buf):
                raise _truncated(pos)
            raw = bytes(buf[pos:pos + 16])
            return (None if raw == _ZERO_UUID else uuid.UUID(bytes=raw)), pos + 16
        return read_uuid
    if kafka_type == "error_code":
        def read_error_code(buf: Any, pos: int) -> tuple[Any, int]:
            if pos + 2 > len(buf):
                raise _truncated(pos)
            value = _I16.unpack_from(buf, pos)[0]
            try:
                return ErrorCode(value), pos + 2
            except ValueError:
                raise MalformedFrameError(f"unknown error code {value}") from None
        return read_error_code
    if kafka_type in ("timedelta_i32", "timedelta_i64"):
        s = _I32 if kafka_type == "timedelta_i32" else _I64

        def read_timedelta(buf: Any, pos: int) -> tuple[Any, int]:
            if pos + s.size > len(buf):
                raise _truncated(pos)
            ms = s.unpack_from(buf, pos)[0]
            try:
                return datetime.timedelta(milliseconds=ms), pos + s.size
            except OverflowError:
                raise MalformedFrameError(f"duration {ms} ms out of range") from None
        return read_timedelta
    if kafka_type == "datetime_i64":
        def read_datetime(buf: Any, pos: int) -> tuple[Any, int]:
            if pos + 8 > len(buf):
                raise _truncated(pos)
            ms = _I64.unpack_from(buf, pos)[0]
            if ms == -1 and nullable:
                return None, pos + 8
            try:
                return tz_aware_from_i64(ms), pos + 8
            except Exception:
                raise MalformedFrameError(f"timestamp {ms} ms out of range") from None
        return read_datetime
    raise TypeError(f"no reader for kafka type {kafka_type!r}")  # pragma: no cover


def _take(weight: int) -> None:
    left = getattr(_budget, "left", None)
    if left is None:
        return
    if weight > left:
        raise MalformedFrameError(f"message holds more than {_budget.limit} array fields "
                                  f"(kafkalike's MAX_REQUEST_FIELDS)")
    _budget.left = left - weight


def _array_reader(item: Reader, flexible: bool, nullable: bool, min_size: int = 1,
                  weight: int = 1) -> Reader:
    def read(buf: Any, pos: int) -> tuple[Any, int]:
        n, pos = _length(buf, pos, flexible, _I32)
        if n < 0:
            if n == -1 and nullable:
                return None, pos
            raise MalformedFrameError(f"invalid array length {n}")
        if n * min_size > len(buf) - pos:
            raise MalformedFrameError(f"Error reading array of size {n}, only "
                                      f"{len(buf) - pos} bytes available")
        _take(n * weight)
        out = []
        for _ in range(n):
            value, pos = item(buf, pos)
            out.append(value)
        return tuple(out), pos

    return read


def _nullable_struct(inner: Reader) -> Reader:
    def read(buf: Any, pos: int) -> tuple[Any, int]:
        if pos >= len(buf):
            raise _truncated(pos)
        marker = buf[pos]
        if marker == 0xFF:
            return None, pos + 1
        if marker != 1:
            raise MalformedFrameError(f"invalid nullable struct marker {marker}")
        return inner(buf, pos + 1)

    return read


def _field_reader(field: dataclasses.Field[Any], flexible: bool, is_tag: bool) -> Reader:
    kind = classify_field(field)
    optional = False if is_tag else is_optional(field)
    if isinstance(kind, PrimitiveField):
        return _primitive_reader(get_schema_field_type(field), flexible, optional)
    if isinstance(kind, PrimitiveTupleField):
        kafka_type = get_schema_field_type(field)
        item = _primitive_reader(kafka_type, flexible, False)
        min_size = _FIXED[kafka_type].size if kafka_type in _FIXED else 16 if kafka_type == "uuid" else \
            2 if kafka_type == "error_code" else 1
        return _array_reader(item, flexible, optional, min_size)
    if isinstance(kind, EntityField):
        inner = _entity_reader(kind.type_)
        return _nullable_struct(inner) if optional else inner
    if isinstance(kind, EntityTupleField):
        weight = len(dataclasses.fields(kind.type_)) + (1 if flexible else 0)
        return _array_reader(_entity_reader(kind.type_), flexible, optional, 1, max(1, weight))
    raise TypeError(f"cannot read field {field.name}")  # pragma: no cover


_CACHE: dict[type, Reader] = {}


def _entity_reader(cls: type) -> Reader:
    reader = _CACHE.get(cls)
    if reader is not None:
        return reader
    flexible = bool(cast("type[Entity]", cls).__flexible__)
    plain: list[tuple[str, Reader]] = []
    tagged: dict[int, tuple[str, Reader]] = {}
    for field in dataclasses.fields(cls):
        tag = get_field_tag(field)
        if tag is None:
            plain.append((field.name, _field_reader(field, flexible, False)))
        else:
            tagged[int(tag)] = (field.name, _field_reader(field, flexible, True))
            get_tagged_field_default(field)  # fail early on a schema we cannot default

    def read(buf: Any, pos: int) -> tuple[Any, int]:
        kwargs = {}
        for name, field_reader in plain:
            kwargs[name], pos = field_reader(buf, pos)
        if flexible:
            count, pos = read_uvarint(buf, pos)
            for _ in range(count):
                tag, pos = read_uvarint(buf, pos)
                size, pos = read_uvarint(buf, pos)
                end = pos + size
                if end > len(buf):
                    raise _truncated(pos)
                known = tagged.get(tag)
                if known is not None:
                    value, used = known[1](buf[:end], pos)
                    if used != end:
                        raise MalformedFrameError(f"tagged field {tag} has {end - used} "
                                                  f"extra bytes")
                    kwargs[known[0]] = value
                pos = end
        return cls(**kwargs), pos

    _CACHE[cls] = read
    return read


def read_entity(cls: type, buf: Any, pos: int = 0,
                max_fields: int | None = None) -> tuple[Any, int]:
    """Read one ``cls`` (a kio entity class) at ``buf[pos:]``; returns (entity, new position).

    Raises MalformedFrameError for anything malformed, before allocating more than the input
    could hold, and (with ``max_fields``) for a message of more array fields than that (see
    the module doc).
    """
    reader = _entity_reader(cls)
    if max_fields is None:
        return reader(buf, pos)
    _budget.left, _budget.limit = max_fields, max_fields
    try:
        return reader(buf, pos)
    finally:
        _budget.left = None
