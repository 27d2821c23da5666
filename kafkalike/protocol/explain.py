"""Explain a captured Kafka frame for a human, field by field (the teaching / debugging aid).

Holds ``load_frame(data)`` (binary or hex text, with or without the int32 size prefix ->
frame body) and ``explain_frame(body, response_for=None)`` -> multi-line text. A request is
recognised from its header; a response needs ``response_for=(api_key, api_version)``
because Kafka responses do not name their API. Record data is shown batch by batch (the
61-byte v2 header fields) and record by record (decompressed).

Used by ``kafkalike protocol explain FILE|-`` (kafkalike/cli/protocol.py). Sans-IO: bytes in,
text out. Errors: ProtocolError subclasses, as the codec raises them; ValueError for input
that is neither binary nor hex.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
import string
import uuid
from typing import Any

import attrs

from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import api_name
from kafkalike.protocol.errors import RecordsError
from kafkalike.protocol.record_batch import (CODEC_NAMES, MIN_BATCH_LENGTH, RecordBatch,
                                             RecordBatchError)
from kafkalike.protocol.records import decode_batches

__all__ = ["load_frame", "explain_frame", "explain_records", "parse_api_spec", "known_apis"]

def load_frame(data: bytes) -> bytes:
    """The frame body from a capture: raw bytes or hex text (whitespace, colons, a leading
    "0x" allowed); a leading int32 size prefix equal to the rest's length is dropped."""
    try:
        cleaned = re.sub(r"[\s:]", "", data.decode("ascii"))
    except UnicodeDecodeError:
        cleaned = ""
    if cleaned.startswith("0x"):
        cleaned = cleaned[2:]
    if cleaned and len(cleaned) % 2 == 0 and all(c in string.hexdigits for c in cleaned):
        data = bytes.fromhex(cleaned)
    if len(data) >= 4 and int.from_bytes(data[:4], "big", signed=True) == len(data) - 4:
        return data[4:]
    return data


def _scalar(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return f"{int(value.value)} ({value.name.upper()})"
    if isinstance(value, datetime.timedelta):
        return f"{value // datetime.timedelta(milliseconds=1)} ms"
    if isinstance(value, datetime.datetime):
        return f"{int(value.timestamp() * 1000)} ms ({value.isoformat()})"
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        shown = raw[:48]
        suffix = "..." if len(raw) > 48 else ""
        return f"{len(raw)} bytes {shown!r}{suffix}"
    return repr(value)


def _fields(obj: Any) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(obj):
        return [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    if attrs.has(type(obj)):
        return [(a.name, getattr(obj, a.name)) for a in attrs.fields(type(obj))]
    return []


def _walk(obj: Any, indent: int, lines: list[str], name: str) -> None:
    pad = "  " * indent
    if isinstance(obj, tuple):
        lines.append(f"{pad}{name}: [{len(obj)} item{'s' if len(obj) != 1 else ''}]")
        for i, item in enumerate(obj):
            _walk(item, indent + 1, lines, f"[{i}]")
        return
    if _fields(obj):
        lines.append(f"{pad}{name}: {type(obj).__name__}")
        for field_name, value in _fields(obj):
            _walk(value, indent + 1, lines, field_name)
        return
    if name == "records" and isinstance(obj, (bytes, bytearray, memoryview)) and obj:
        lines.append(f"{pad}records: {len(obj)} bytes of record batches")
        lines.extend(explain_records(obj, indent + 1))
        return
    lines.append(f"{pad}{name}: {_scalar(obj)}")


def explain_records(data: bytes | bytearray | memoryview, indent: int = 0) -> list[str]:
    """Lines describing each record batch (header fields) and record in ``data``."""
    pad = "  " * indent
    lines: list[str] = []
    buf = bytes(data)
    pos = 0
    try:
        while pos < len(buf):
            header = RecordBatch(buf, pos)
            lines.append(f"{pad}batch at byte {pos}:")
            lines.extend(f"{pad}  {line}" for line in header.explain().splitlines())
            if header.batch_length < MIN_BATCH_LENGTH:
                lines.append(f"{pad}(stopped: batchLength {header.batch_length} is below the "
                             f"v2 minimum {MIN_BATCH_LENGTH})")
                break
            pos = header.end_position
    except RecordBatchError as exc:
        lines.append(f"{pad}(stopped: {exc})")
    try:
        for batch in decode_batches(buf, allow_truncated_tail=True):
            codec_name = CODEC_NAMES.get(batch.compression, "?")
            lines.append(f"{pad}records of batch {batch.base_offset}..{batch.last_offset} "
                         f"({codec_name}):")
            for r in batch.records:
                lines.append(f"{pad}  offset={r.offset} timestamp={r.timestamp} "
                             f"key={_scalar(r.key) if r.key is not None else 'null'} "
                             f"value={_scalar(r.value) if r.value is not None else 'null'} "
                             f"headers={list(r.headers)}")
    except RecordsError as exc:
        lines.append(f"{pad}(records not decodable: {exc} [{exc.error_code.name.upper()}])")
    return lines


def known_apis() -> dict[int, tuple[int, int]]:
    """Every (api_key: (min, max)) with a schema (kio's or kafkalike's), served or not."""
    from kio.schema.index import api_key_map, schema_name_map

    from kafkalike.protocol.api_keys import IN_PROJECT_APIS, SUPPORTED_APIS

    out = {}
    for key, name in api_key_map.items():
        versions = sorted(schema_name_map[name])
        out[key] = (versions[0], versions[-1])
    for key in IN_PROJECT_APIS:
        out[int(key)] = SUPPORTED_APIS[key]
    return out


def explain_frame(body: bytes, response_for: tuple[int, int] | None = None) -> str:
    """Describe a frame body: a request (default) or the response to (api_key, version).

    Requests at versions the broker does not serve are explained too, when a schema exists
    (a line says the broker would refuse them). Raises ProtocolError subclasses for frames
    the codec cannot decode (the caller prints them).
    """
    lines = [f"frame: {len(body)} bytes (+4 size prefix)"]
    if response_for is None:
        from kafkalike.protocol.api_keys import SUPPORTED_APIS

        header, message = codec.parse_request(body, supported=known_apis())
        served = SUPPORTED_APIS.get(header.api_key)
        if served is None or not served[0] <= header.api_version <= served[1]:
            lines.append(f"note: the broker does not serve {header.api_name} "
                         f"v{header.api_version} (it answers UNSUPPORTED_VERSION or closes)")
        lines.append(f"request header v{header.header_version}:")
        lines.append(f"  api_key: {header.api_key} ({header.api_name})")
        lines.append(f"  api_version: {header.api_version}")
        lines.append(f"  correlation_id: {header.correlation_id}")
        if header.header_version >= 1:
            lines.append(f"  client_id: {header.client_id!r}")
        title = f"{header.api_name} request v{header.api_version}"
    else:
        api_key, api_version = response_for
        correlation_id, message = codec.decode_response(body, api_key, api_version)
        hv = codec.response_header_version(api_key, api_version)
        lines.append(f"response header v{hv}:")
        lines.append(f"  correlation_id: {correlation_id}")
        title = f"{api_name(api_key)} response v{api_version}"
    lines.append(f"body: {title} ({type(message).__module__}.{type(message).__name__})")
    for field_name, value in _fields(message):
        _walk(value, 1, lines, field_name)
    return "\n".join(lines)


def parse_api_spec(spec: str) -> tuple[int, int]:
    """"Fetch:12", "fetch:12" or "1:12" -> (api_key, api_version); ValueError otherwise."""
    from kafkalike.protocol.api_keys import ApiKey

    name, _, version = spec.partition(":")
    if not version.isdigit():
        raise ValueError(f"expected API:VERSION, got {spec!r}")
    if name.lstrip("-").isdigit():
        return int(name), int(version)
    wanted = name.replace("_", "").lower()
    for key in ApiKey:
        if key.kafka_name.lower() == wanted:
            return int(key), int(version)
    raise ValueError(f"unknown API name {name!r}")
