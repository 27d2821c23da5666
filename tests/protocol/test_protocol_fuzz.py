"""Fuzz: random and mutated frames never raise anything but the codec's ProtocolError.

A plain seeded random loop (not hypothesis) so that the default run does >= 100,000 cases in
well under a minute; set KAFKALIKE_FUZZ_CASES for more (and KAFKALIKE_FUZZ_SEED to vary).
The corpus: the golden client frames, one sample request and response for every served API
version, and record batches in every codec.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import random
import struct
import uuid
from pathlib import Path
from typing import Any, Callable

from kio.schema.errors import ErrorCode
from kio.serial._introspect import (EntityField, EntityTupleField, PrimitiveField,
                                    PrimitiveTupleField, classify_field, get_schema_field_type)

from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import SUPPORTED_APIS
from kafkalike.protocol.errors import ProtocolError
from kafkalike.protocol.explain import explain_frame
from kafkalike.protocol.frame import FrameReader
from kafkalike.protocol.records import build_records_batch, decode_batches
from kafkalike.protocol.schema import Message, field_specs

CASES = int(os.environ.get("KAFKALIKE_FUZZ_CASES", "100000"))
SEED = int(os.environ.get("KAFKALIKE_FUZZ_SEED", "20261121"))
GOLDEN = Path(__file__).parent.parent / "data" / "golden"

_SAMPLE = {
    "int8": 1, "int16": 2, "int32": 3, "int64": 4, "uint8": 5, "uint16": 6, "uint32": 7,
    "uint64": 8, "float64": 1.5, "bool": True, "string": "topic", "bytes": b"\x01\x02",
    "records": build_records_batch([(b"k", b"v")]), "uuid": uuid.UUID(int=99),
    "error_code": ErrorCode.none, "timedelta_i32": datetime.timedelta(milliseconds=5),
    "timedelta_i64": datetime.timedelta(milliseconds=6),
    "datetime_i64": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
}


def _sample(cls: type, version: int) -> Any:
    """A deterministic instance of a kio entity or kafkalike Message with every field set."""
    if issubclass(cls, Message):
        kwargs = {}
        for name, spec in field_specs(cls):
            if not spec.present(version):
                continue
            typ = spec.type
            if isinstance(typ, tuple):
                item = typ[1]
                kwargs[name] = (_sample(item, version),) if isinstance(item, type) else \
                    (_SAMPLE[item],)
            elif isinstance(typ, type):
                kwargs[name] = _sample(typ, version)
            else:
                kwargs[name] = _SAMPLE[typ]
        return cls(**kwargs)
    kwargs = {}
    for f in dataclasses.fields(cls):
        kind = classify_field(f)
        if isinstance(kind, PrimitiveField):
            kwargs[f.name] = _SAMPLE[get_schema_field_type(f)]
        elif isinstance(kind, PrimitiveTupleField):
            kwargs[f.name] = (_SAMPLE[get_schema_field_type(f)],)
        elif isinstance(kind, EntityField):
            kwargs[f.name] = _sample(kind.type_, version)
        elif isinstance(kind, EntityTupleField):
            kwargs[f.name] = (_sample(kind.type_, version),)
    return cls(**kwargs)


def _corpus() -> tuple[list[bytes], list[tuple[bytes, int, int]], list[bytes]]:
    requests = [p.read_bytes()[4:] for p in sorted(GOLDEN.glob("*.bin"))]
    responses = []
    for key, (lo, hi) in sorted(SUPPORTED_APIS.items()):
        for v in range(lo, hi + 1):
            req = _sample(codec.request_class(key, v), v)
            requests.append(codec.encode_request(req, correlation_id=v, api_version=v)[4:])
            resp = _sample(codec.response_class(key, v), v)
            frame = codec.encode_response(codec.RequestHeader(key, v, v, None), resp)
            responses.append((frame[4:], key, v))
    batches = [build_records_batch([(b"key", b"value" * 20, (("h", b"x"),), 7)] * 3,
                                   compression=c) for c in range(5)]
    return requests, responses, batches


_EXTREMES_16 = [0, 1, -1, 0x7FFF, -0x8000, 0x00FF]
_EXTREMES_32 = [0, 1, -1, 0x7FFFFFFF, -0x80000000, 0x10000, 1 << 24]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(buf) + 1) if buf else 0
        if op == 0 and buf:  # flip bits
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # random byte
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 2:  # truncate
            del buf[pos:]
        elif op == 3:  # insert junk
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 4 and buf:  # delete a span
            del buf[pos:pos + rng.randint(1, 8)]
        elif op == 5 and len(buf) >= 2:  # extreme int16
            p = rng.randrange(len(buf) - 1)
            struct.pack_into(">h", buf, p, rng.choice(_EXTREMES_16))
        elif op == 6 and len(buf) >= 4:  # extreme int32
            p = rng.randrange(len(buf) - 3)
            struct.pack_into(">i", buf, p, rng.choice(_EXTREMES_32))
        elif op == 7 and buf:  # varint-ish runs of 0xff
            buf[pos:pos] = b"\xff" * rng.randint(1, 6)
    return bytes(buf)


def _random_request(rng: random.Random) -> bytes:
    key, (lo, hi) = rng.choice(list(SUPPORTED_APIS.items()))
    version = rng.randint(lo - 1, hi + 1)
    head = struct.pack(">hhi", key, version, rng.randrange(1 << 31))
    return head + rng.randbytes(rng.randint(0, 64))


def _expect_only_protocol_errors(fn: Callable[[], Any], sample: bytes) -> None:
    try:
        fn()
    except ProtocolError:
        pass
    except BaseException as exc:  # pragma: no cover - the failure we are looking for
        raise AssertionError(f"{type(exc).__name__}: {exc} escaped for input "
                             f"{sample[:200].hex()}") from exc


def test_random_and_mutated_frames_raise_only_protocol_errors() -> None:
    """>= 100,000 random/mutated requests, responses, batches and streams: only ProtocolError."""
    rng = random.Random(SEED)
    requests, responses, batches = _corpus()
    for i in range(CASES):
        kind = i % 10
        if kind < 5:
            data = _mutate(rng, rng.choice(requests))
            if i % 50 == 0:  # the explain tool walks every field and decodes record data
                _expect_only_protocol_errors(lambda: explain_frame(data), data)
            else:
                _expect_only_protocol_errors(lambda: codec.parse_request(data), data)
        elif kind < 7:
            data, key, version = rng.choice(responses)
            data = _mutate(rng, data)
            _expect_only_protocol_errors(
                lambda: codec.decode_response(data, key, version), data)
        elif kind == 7:
            data = _random_request(rng)
            _expect_only_protocol_errors(lambda: codec.parse_request(data), data)
        elif kind == 8:
            data = _mutate(rng, rng.choice(batches))
            _expect_only_protocol_errors(
                lambda: decode_batches(data, allow_truncated_tail=bool(i & 16)), data)
        else:
            data = struct.pack(">i", rng.choice([-1, 5, 1 << 30, rng.randrange(1 << 31)])) + \
                rng.randbytes(rng.randint(0, 32))

            def feed() -> None:
                reader = FrameReader(max_frame_size=1 << 20)
                reader.feed(data)
                while (frame := reader.next_frame()) is not None:
                    codec.parse_request(frame)

            _expect_only_protocol_errors(feed, data)
