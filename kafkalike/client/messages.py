"""Build a request message of any API version from plain Python values.

kio declares one frozen dataclass per API version (``kio.schema.metadata.v12.request``), so a
client that negotiates versions would otherwise need one constructor call per version. Here
``build_request(api_key, version, **fields)`` takes the fields as keyword arguments, nested
structs as dicts (arrays of structs as lists of dicts), milliseconds as ints, and:

- drops fields the chosen version does not have (e.g. ``topic_id`` below Metadata v10),
  as Kafka's generated Java ignores defaults that are not on the wire;
- fills fields the caller left out with the schema default, else null for nullable fields,
  ``()`` for arrays, a default struct for structs, and Kafka's implicit zero for primitives;
- raises TypeError for a field name that no version of the API has (a typo).

Only message construction lives here; encoding is kafkalike.protocol.codec's. The in-project
ZooKeeper-era RPCs (keys 4-7) are attrs classes covering all versions and are built directly.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

from kio.serial._implicit_defaults import get_implicit_default
from kio.serial._introspect import (EntityField, EntityTupleField, PrimitiveField,
                                    PrimitiveTupleField, classify_field, is_optional)

from kafkalike.protocol.api_keys import api_name
from kafkalike.protocol.codec import request_class
from kafkalike.protocol.errors import ErrorCode

__all__ = ["build_request", "build_entity", "ms"]

_KNOWN_NAMES: dict[int, frozenset[str]] = {}


def ms(value: Any) -> int:
    """A kio duration (timedelta) or int, as integer milliseconds."""
    if isinstance(value, datetime.timedelta):
        return value // datetime.timedelta(milliseconds=1)
    return int(value)


def _field_names(cls: type, out: set[str]) -> None:
    for f in dataclasses.fields(cls):
        out.add(f.name)
        kind = classify_field(f)
        if isinstance(kind, (EntityField, EntityTupleField)):
            _field_names(kind.type_, out)


def _known_names(api_key: int) -> frozenset[str]:
    names = _KNOWN_NAMES.get(api_key)
    if names is None:
        acc: set[str] = set()
        for version in range(0, 64):
            try:
                cls = request_class(api_key, version)
            except Exception:
                if version > 20:
                    break
                continue
            if dataclasses.is_dataclass(cls):
                _field_names(cls, acc)
        names = _KNOWN_NAMES[api_key] = frozenset(acc)
    return names


def _check(values: dict[str, Any], known: frozenset[str], api_key: int) -> None:
    unknown = set(values) - known
    if unknown:
        raise TypeError(f"{api_name(api_key)} has no field(s) {sorted(unknown)}")
    for value in values.values():
        if isinstance(value, dict):
            _check(value, known, api_key)
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, dict):
                    _check(item, known, api_key)


def _converter(f: dataclasses.Field) -> Callable[[Any], Any]:
    """How a caller's value for field ``f`` becomes the entity's (see module doc), decided once."""
    kind = classify_field(f)
    if isinstance(kind, EntityField):
        sub = kind.type_
        return lambda v: None if v is None else build_entity(sub, v) if isinstance(v, dict) else v
    if isinstance(kind, EntityTupleField):
        item = kind.type_
        return lambda v: None if v is None else tuple(
            build_entity(item, x) if isinstance(x, dict) else x for x in v)
    if isinstance(kind, PrimitiveTupleField):
        return lambda v: None if v is None else tuple(v)
    if f.metadata.get("kafka_type", "").startswith("timedelta"):
        return lambda v: v if v is None or isinstance(v, datetime.timedelta) else datetime.timedelta(milliseconds=v)
    return lambda v: v


def _defaulter(f: dataclasses.Field) -> Callable[[], Any]:
    """The value of field ``f`` when the caller gave none (see module doc), decided once. kio
    entities are frozen and the defaults immutable, so a default built once is shared."""
    if f.default is not dataclasses.MISSING:
        value = f.default
        return lambda: value
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory
    kind = classify_field(f)
    if is_optional(f):
        return lambda: None
    if isinstance(kind, (EntityTupleField, PrimitiveTupleField)):
        return tuple
    if isinstance(kind, EntityField):
        sub, built = kind.type_, []

        def default_entity() -> Any:
            if not built:
                built.append(build_entity(sub, {}))
            return built[0]
        return default_entity
    assert isinstance(kind, PrimitiveField)
    kafka_type = f.metadata.get("kafka_type", "")
    value = (ErrorCode.none if kafka_type == "error_code" else False if kafka_type == "bool"
             else None if kafka_type == "records" else get_implicit_default(kind.type_))
    return lambda: value


_PLANS: dict[type, tuple[tuple[str, Callable[[Any], Any], Callable[[], Any]], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, Callable[[Any], Any], Callable[[], Any]], ...]:
    """(field name, converter, defaulter) of each field of kio dataclass ``cls``, in order;
    worked out from kio's field metadata on first use (classifying a field costs more than
    building the entity, and the follower's Fetch is built several hundred times a second)."""
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = tuple((f.name, _converter(f), _defaulter(f)) for f in dataclasses.fields(cls))
    return plan


def build_entity(cls: type, values: dict[str, Any]) -> Any:
    """Instantiate kio dataclass ``cls`` from ``values`` (see module doc); unknown keys of
    ``values`` are dropped."""
    return cls(**{name: convert(values[name]) if name in values else default()
                  for name, convert, default in _plan(cls)})


def build_request(api_key: int, api_version: int, **fields: Any) -> Any:
    """The kio request entity of ``api_key`` at ``api_version`` holding ``fields``.

    Raises TypeError for a field name no version of the API knows; UnsupportedVersionError /
    UnknownApiKeyError (kafkalike.protocol.errors) when there is no schema for that version.
    """
    _check(fields, _known_names(api_key), api_key)
    return build_entity(request_class(api_key, api_version), fields)
