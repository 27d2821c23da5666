"""Hypothesis strategies that build any kio entity or kafkalike Message from its schema.

kio entities: field metadata ``kafka_type`` plus the annotation (tuple / optional / nested
entity) say what to generate. kafkalike Messages: each attribute's FieldSpec, for one version
(fields absent from that version keep their defaults). Values are chosen to survive a wire
round trip exactly (no NaN, no zero UUID, millisecond timestamps).
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import Any

import attrs
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from kio.serial._introspect import (EntityField, EntityTupleField, PrimitiveField,
                                    PrimitiveTupleField, classify_field, get_schema_field_type,
                                    is_optional)

from kafkalike.protocol.schema import Message, field_specs

_SMALL = 3
_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)

_text = st.text(max_size=12)
_uuid_nonzero = st.uuids().filter(lambda u: u.int != 0)

_PRIMITIVE = {
    "int8": st.integers(-(2**7), 2**7 - 1),
    "int16": st.integers(-(2**15), 2**15 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "uint8": st.integers(0, 2**8 - 1),
    "uint16": st.integers(0, 2**16 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "float64": st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
    "string": _text,
    "bytes": st.binary(max_size=16),
    "records": st.binary(max_size=16),
    "uuid": _uuid_nonzero,
    "error_code": st.sampled_from(list(ErrorCode)),
    "timedelta_i32": st.integers(0, 2**31 - 1).map(lambda ms: datetime.timedelta(milliseconds=ms)),
    "timedelta_i64": st.integers(0, 2**40).map(lambda ms: datetime.timedelta(milliseconds=ms)),
    "datetime_i64": st.integers(0, 2**42).map(
        lambda ms: _EPOCH + datetime.timedelta(milliseconds=ms)),
}


def _kio_field(field: dataclasses.Field) -> st.SearchStrategy:
    klass = classify_field(field)
    optional = is_optional(field)
    if isinstance(klass, PrimitiveField):
        base = _PRIMITIVE[get_schema_field_type(field)]
    elif isinstance(klass, PrimitiveTupleField):
        base = st.lists(_PRIMITIVE[get_schema_field_type(field)], max_size=_SMALL).map(tuple)
    elif isinstance(klass, EntityField):
        base = kio_entity(klass.type_)
    elif isinstance(klass, EntityTupleField):
        base = st.lists(kio_entity(klass.type_), max_size=2).map(tuple)
    else:  # pragma: no cover
        raise TypeError(field)
    if optional and "tag" not in field.metadata:
        return st.none() | base
    return base


_CACHE: dict[Any, st.SearchStrategy] = {}


def kio_entity(cls: type) -> st.SearchStrategy:
    """A strategy for instances of the kio entity class ``cls`` (recursively)."""
    if cls not in _CACHE:
        fields = {f.name: st.deferred(lambda f=f: _kio_field(f))
                  for f in dataclasses.fields(cls)}
        _CACHE[cls] = st.builds(cls, **fields)
    return _CACHE[cls]


def _spec_strategy(typ: Any, version: int) -> st.SearchStrategy:
    if isinstance(typ, tuple):
        return st.lists(_spec_strategy(typ[1], version), max_size=_SMALL).map(tuple)
    if isinstance(typ, type):
        return message(typ, version)
    if typ == "uuid":
        return st.uuids()
    return _PRIMITIVE[typ]


def message(cls: type, version: int) -> st.SearchStrategy:
    """A strategy for a kafkalike Message ``cls`` holding only fields present in ``version``."""
    kwargs = {}
    for name, spec in field_specs(cls):
        if spec.present(version):
            s = _spec_strategy(spec.type, version)
            if spec.nullable(version):
                s = st.none() | s
            kwargs[name] = s
    return st.builds(cls, **kwargs)


def any_message(cls: type, version: int) -> st.SearchStrategy:
    """kio entity or kafkalike Message, whichever ``cls`` is."""
    if issubclass(cls, Message):
        return message(cls, version)
    return kio_entity(cls)


__all__ = ["kio_entity", "message", "any_message", "attrs", "uuid"]
