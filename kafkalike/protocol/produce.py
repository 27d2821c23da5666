"""Produce request (api key 0) fast path: decode without copying the record data.

Holds ``decode_produce_request()`` (server side) and ``encode_produce_request_body()``
(client side). Both follow the Kafka protocol guide, "Produce API", v3-v12 (the request
layout is the same from v9 to v12; v13 addresses topics by id and goes through kio):

    transactional_id  nullable string      (v3+)
    acks              int16
    timeout_ms        int32
    topic_data        [name string, partition_data [index int32, records nullable bytes]]
    (v9+: compact strings/arrays/bytes and a tagged-field section closing every struct)

The result is kio's ``ProduceRequest`` entity for that version (so the broker handles one
typed model), except that every ``records`` is a ``memoryview`` slice of the frame, never
copied or decoded: the broker validates batch headers and CRCs with
kafkalike.protocol.record_batch and patches offsets in place (the frame view is writable
when it came from FrameReader).

Errors: MalformedFrameError (INVALID_REQUEST) on any malformed field.
"""

from __future__ import annotations

import datetime
import struct
from types import ModuleType
from typing import Any

from kio.index import load_payload_module
from kio.static.constants import EntityType

from kafkalike.protocol.errors import MalformedFrameError
from kafkalike.protocol.schema import read_uvarint, skip_tagged_fields, write_uvarint

__all__ = ["FAST_VERSIONS", "decode_produce_request", "encode_produce_request_body", "FIRST_FLEXIBLE_VERSION",
           "peek_required_acks"]

FAST_VERSIONS = range(3, 13)
"""Produce versions with the name-addressed layout handled here (v13 addresses topics by id)."""
FIRST_FLEXIBLE_VERSION = 9
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_HEAD = struct.Struct(">hi")  # acks, timeout_ms
_ONE_MS = datetime.timedelta(milliseconds=1)

_MODULES: dict[int, ModuleType] = {}


def _module(version: int) -> ModuleType:
    mod = _MODULES.get(version)
    if mod is None:
        mod = load_payload_module(0, version, EntityType.request)
        _MODULES[version] = mod
    return mod


def _read_string(buf: Any, pos: int, flexible: bool, nullable: bool) -> tuple[str | None, int]:
    if flexible:
        n, pos = read_uvarint(buf, pos)
        n -= 1
    else:
        if pos + 2 > len(buf):
            raise MalformedFrameError("string length runs past the end of the frame")
        n = _I16.unpack_from(buf, pos)[0]
        pos += 2
    if n < 0:
        if n == -1 and nullable:
            return None, pos
        raise MalformedFrameError(f"invalid string length {n}")
    end = pos + n
    if end > len(buf):
        raise MalformedFrameError("string runs past the end of the frame")
    try:
        return str(buf[pos:end], "utf-8"), end
    except UnicodeDecodeError as exc:
        raise MalformedFrameError(f"string is not valid UTF-8: {exc}") from None


def _read_count(buf: Any, pos: int, flexible: bool) -> tuple[int, int]:
    if flexible:
        n, pos = read_uvarint(buf, pos)
        n -= 1
    else:
        if pos + 4 > len(buf):
            raise MalformedFrameError("array length runs past the end of the frame")
        n = _I32.unpack_from(buf, pos)[0]
        pos += 4
    if n < 0 or n > len(buf) - pos:
        raise MalformedFrameError(f"invalid array length {n}")
    return n, pos


def peek_required_acks(frame: memoryview) -> int | None:
    """The ``acks`` of a Produce request frame (size prefix removed: the request header, then
    the body), read without decoding the rest; None when the frame is not a Produce of a version
    in FAST_VERSIONS or is too short or malformed to tell (the full decode then reports it).

    Header: api_key int16, api_version int16, correlation_id int32, client_id nullable string
    (int16 length), and from Produce v9 (request header v2) a tagged-field section; body:
    transactional_id (nullable string; compact from v9), acks int16 (Kafka protocol guide,
    "Produce API" and "Headers")."""
    try:
        if len(frame) < 10 or _I16.unpack_from(frame, 0)[0] != 0:
            return None
        version = _I16.unpack_from(frame, 2)[0]
        if version not in FAST_VERSIONS:
            return None
        client_id_length = _I16.unpack_from(frame, 8)[0]
        pos = 10 + max(client_id_length, 0)
        flexible = version >= FIRST_FLEXIBLE_VERSION
        if flexible:
            pos = skip_tagged_fields(frame, pos)
            n, pos = read_uvarint(frame, pos)
            pos += max(n - 1, 0)
        else:
            n = _I16.unpack_from(frame, pos)[0]
            pos += 2 + max(n, 0)
        return int(_I16.unpack_from(frame, pos)[0])
    except (struct.error, MalformedFrameError):
        return None


def decode_produce_request(buf: memoryview, pos: int, version: int) -> tuple[Any, int]:
    """Decode a Produce request body at ``buf[pos:]`` for ``version`` (3-12).

    Returns (kio ProduceRequest of that version, position after it). ``records`` fields are
    memoryview slices of ``buf`` (None when the client sent null). Raises MalformedFrameError.
    """
    mod = _module(version)
    flexible = version >= FIRST_FLEXIBLE_VERSION
    if not isinstance(buf, memoryview):
        buf = memoryview(buf)
    transactional_id, pos = _read_string(buf, pos, flexible, True)
    if pos + 6 > len(buf):
        raise MalformedFrameError("produce request ends inside acks/timeout")
    acks, timeout_ms = _HEAD.unpack_from(buf, pos)
    pos += 6
    n_topics, pos = _read_count(buf, pos, flexible)
    topic_cls = mod.TopicProduceData
    part_cls = mod.PartitionProduceData
    topics = []
    for _ in range(n_topics):
        name, pos = _read_string(buf, pos, flexible, False)
        n_parts, pos = _read_count(buf, pos, flexible)
        parts = []
        for _ in range(n_parts):
            if pos + 4 > len(buf):
                raise MalformedFrameError("partition index runs past the end of the frame")
            index = _I32.unpack_from(buf, pos)[0]
            pos += 4
            if flexible:
                size, pos = read_uvarint(buf, pos)
                size -= 1
            else:
                if pos + 4 > len(buf):
                    raise MalformedFrameError("records length runs past the end of the frame")
                size = _I32.unpack_from(buf, pos)[0]
                pos += 4
            if size < 0:
                if size != -1:
                    raise MalformedFrameError(f"invalid records length {size}")
                records = None
            else:
                end = pos + size
                if end > len(buf):
                    raise MalformedFrameError("records run past the end of the frame")
                records = buf[pos:end]
                pos = end
            if flexible:
                pos = skip_tagged_fields(buf, pos)
            parts.append(part_cls(index=index, records=records))
        if flexible:
            pos = skip_tagged_fields(buf, pos)
        topics.append(topic_cls(name=name, partition_data=tuple(parts)))
    if flexible:
        pos = skip_tagged_fields(buf, pos)
    request = mod.ProduceRequest(
        transactional_id=transactional_id,
        acks=acks,
        timeout=datetime.timedelta(milliseconds=timeout_ms),
        topic_data=tuple(topics),
    )
    return request, pos


def _write_string(out: list[bytes | memoryview], value: str | None, flexible: bool) -> None:
    if value is None:
        out.append(b"\x00" if flexible else b"\xff\xff")
        return
    data = value.encode("utf-8")
    if flexible:
        head = bytearray()
        write_uvarint(head, len(data) + 1)
        out.append(bytes(head))
    else:
        out.append(_I16.pack(len(data)))
    out.append(data)


def encode_produce_request_body(request: Any, version: int) -> list[bytes | memoryview]:
    """Encode a Produce request body (v3-12) as chunks; record data is passed through, not copied.

    ``request`` is a kio ProduceRequest (any version's class; ``timeout`` a timedelta); records
    may be bytes, bytearray or memoryview. Returns the list of chunks to write in order.
    """
    flexible = version >= FIRST_FLEXIBLE_VERSION
    out: list[bytes | memoryview] = []
    _write_string(out, request.transactional_id, flexible)
    timeout_ms = request.timeout // _ONE_MS
    out.append(_HEAD.pack(request.acks, timeout_ms))

    def count(n: int) -> None:
        if flexible:
            head = bytearray()
            write_uvarint(head, n + 1)
            out.append(bytes(head))
        else:
            out.append(_I32.pack(n))

    count(len(request.topic_data))
    for topic in request.topic_data:
        _write_string(out, topic.name, flexible)
        count(len(topic.partition_data))
        for part in topic.partition_data:
            out.append(_I32.pack(part.index))
            records = part.records
            if records is None:
                out.append(b"\x00" if flexible else b"\xff\xff\xff\xff")
            else:
                size = len(records) if not isinstance(records, memoryview) else records.nbytes
                if flexible:
                    head = bytearray()
                    write_uvarint(head, size + 1)
                    out.append(bytes(head))
                else:
                    out.append(_I32.pack(size))
                out.append(records)
            if flexible:
                out.append(b"\x00")
        if flexible:
            out.append(b"\x00")
    if flexible:
        out.append(b"\x00")
    return out
