"""Helpers for kio request/response entities, shared by every request handler (KafkaApis,
the admin manager, the group APIs, the producer-id manager): one copy each, here.

- ``build(cls, **values)``: one handler serves every version of an API by passing the union
  of fields; each version's entity takes the ones it has.
- ``entity(parent, name)``: a nested entity class of the same API version.
- ``response_class_for(request)``: the response class matching a request entity.
- ``duration_ms(value)``: a kio duration (timedelta) or int as integer milliseconds.
- ``AUTHORIZED_OPERATIONS_OMITTED``: Kafka's sentinel for "authorized operations not asked".

Sans-IO like the rest of ``protocol/``.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from typing import Any

from kafkalike.protocol.codec import response_class

__all__ = ["AUTHORIZED_OPERATIONS_OMITTED", "build", "entity", "duration_ms", "response_class_for"]

AUTHORIZED_OPERATIONS_OMITTED = -2147483648
"""Integer.MIN_VALUE: the ``*_authorized_operations`` answer when the request did not ask for
them (Kafka's MetadataResponse / DescribeGroupsResponse AUTHORIZED_OPERATIONS_OMITTED)."""

_FIELD_NAMES: dict[type, frozenset[str]] = {}


def build(cls: type, **values: Any) -> Any:
    """Make a kio entity of ``cls`` from ``values``, dropping the fields this version lacks.

    Lets one handler serve every version of an API: pass the union of fields, and each
    version's entity takes the ones it has. ``throttle_time`` defaults to 0 ms.
    """
    fields = _FIELD_NAMES.get(cls)
    if fields is None:
        fields = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    if "throttle_time" in fields and "throttle_time" not in values:
        values["throttle_time"] = datetime.timedelta(0)
    return cls(**{k: v for k, v in values.items() if k in fields})


def entity(parent: type, name: str) -> type:
    """The nested entity class ``name`` from the module of ``parent`` (same API version),
    e.g. ``entity(MetadataResponse_v12, "MetadataResponseTopic")``."""
    return getattr(sys.modules[parent.__module__], name)


def response_class_for(request: Any) -> type:
    """The response entity class matching a kio request entity (same API key and version,
    read from the entity's ``__api_key__`` / ``__version__``)."""
    cls = type(request)
    return response_class(cls.__api_key__, cls.__version__)


def duration_ms(value: Any) -> int:
    """A kio duration (timedelta) or int as integer milliseconds."""
    if isinstance(value, datetime.timedelta):
        return value // datetime.timedelta(milliseconds=1)
    return int(value)
