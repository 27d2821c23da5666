"""Seeded fuzzing of the admin APIs (and a few others that take counts and names) against a
REAL broker process over raw sockets: extreme counts, sizes, array lengths and names each get a
response or a clean close, the broker keeps serving ApiVersions, and its memory stays bounded."""

from __future__ import annotations

import dataclasses
import datetime
import os
import random
import socket
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any

from kio.serial._introspect import (EntityField, EntityTupleField, PrimitiveField,
                                    PrimitiveTupleField, classify_field, get_schema_field_type,
                                    is_optional)

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.protocol.api_keys import SUPPORTED_APIS, ApiKey
from kafkalike.protocol.codec import decode_response, encode_request, request_class
from tests.broker.test_admin_limits import cap_address_space, vm_kib

SEED = int(os.environ.get("KAFKALIKE_FUZZ_SEED", "15"))
REQUESTS = int(os.environ.get("KAFKALIKE_FUZZ_REQUESTS", "160"))
RSS_LIMIT_KIB = 350 * 1024
FUZZED_APIS = (ApiKey.CREATE_TOPICS, ApiKey.DELETE_TOPICS, ApiKey.CREATE_PARTITIONS,
               ApiKey.DESCRIBE_CONFIGS, ApiKey.ALTER_CONFIGS, ApiKey.INCREMENTAL_ALTER_CONFIGS,
               ApiKey.METADATA, ApiKey.LIST_OFFSETS, ApiKey.OFFSET_FETCH, ApiKey.OFFSET_COMMIT,
               ApiKey.DESCRIBE_GROUPS)
NAMES = ["t0", "t1", "t2", "", ".", "..", "a" * 10_000, "a" * 250, "bad/name", "sp ace", "ünïcode",
         "__consumer_offsets", "t0", "t1"]
CONFIG_NAMES = ["retention.ms", "segment.bytes", "cleanup.policy", "min.insync.replicas",
                "compression.type", "no.such.config", ""]
CONFIG_VALUES = ["1", "-1", "-5", "0", "zzz", "9" * 40, "", "delete,compact", None]
INTS = [0, 1, 2, 3, -1, -2, 20, 21, 10_000, 10_001, 2**15 - 1, -(2**15), 2**31 - 1, -(2**31),
        2**63 - 1, -(2**63)]
TIMEOUTS_MS = [0, -1, 1, 500, 3000]
BOUNDS = {"int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1), "int32": (-(2**31), 2**31 - 1),
          "int64": (-(2**63), 2**63 - 1), "uint16": (0, 2**16 - 1), "uint32": (0, 2**32 - 1),
          "uint8": (0, 255), "uint64": (0, 2**64 - 1)}


class RandomRequests:
    """Random kio request entities from their field metadata, biased to extreme values."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def array_length(self) -> int:
        return self.rng.choice([0, 1, 1, 2, 3, 50, 2_000])

    def primitive(self, kafka_type: str, name: str, optional: bool) -> Any:
        r = self.rng
        if optional and r.random() < 0.1:
            return None
        if kafka_type in BOUNDS:
            lo, hi = BOUNDS[kafka_type]
            return min(hi, max(lo, r.choice(INTS)))
        if kafka_type == "bool":
            return r.random() < 0.5
        if kafka_type == "string":
            if "value" in name:
                return r.choice([v for v in CONFIG_VALUES if v is not None or optional])
            if name == "name" and r.random() < 0.3:
                return r.choice(CONFIG_NAMES)
            return r.choice(NAMES + ["g" + str(r.randrange(3))])
        if kafka_type in ("bytes", "records"):
            return r.choice([b"", b"\x00" * 100, r.randbytes(64)])
        if kafka_type == "uuid":
            return r.choice([None, uuid.uuid4()]) if optional else uuid.uuid4()
        if kafka_type in ("timedelta_i32", "timedelta_i64"):
            return datetime.timedelta(milliseconds=r.choice(TIMEOUTS_MS))
        if kafka_type == "float64":
            return r.choice([0.0, -1.0, 1e308])
        raise TypeError(kafka_type)

    def entity(self, cls: type, depth: int = 0) -> Any:
        values = {}
        for field in dataclasses.fields(cls):
            kind = classify_field(field)
            optional = is_optional(field)
            if isinstance(kind, PrimitiveField):
                values[field.name] = self.primitive(get_schema_field_type(field), field.name, optional)
            elif isinstance(kind, PrimitiveTupleField):
                if optional and self.rng.random() < 0.2:
                    values[field.name] = None
                else:
                    kt = get_schema_field_type(field)
                    n = self.array_length()
                    if kt == "string":  # names: no 10,000-char strings 2,000 times over
                        values[field.name] = tuple(self.rng.choice(NAMES[:6]) + str(i) for i in range(n))
                    else:
                        values[field.name] = tuple(self.primitive(kt, field.name, False) for _ in range(n))
            elif isinstance(kind, EntityField):
                values[field.name] = None if optional and self.rng.random() < 0.2 else \
                    self.entity(kind.type_, depth + 1)
            elif isinstance(kind, EntityTupleField):
                if optional and self.rng.random() < 0.2:
                    values[field.name] = None
                else:
                    n = min(self.array_length(), 3 if depth else 50)
                    values[field.name] = tuple(self.entity(kind.type_, depth + 1) for _ in range(n))
        return cls(**values)


class RawClient:
    """A blocking socket to one broker that reconnects after the broker closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.addr = (host, port)
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=60)
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _recv_exact(self, n: int) -> bytes | None:
        assert self.sock is not None
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                return None
            out += chunk
        return bytes(out)

    def exchange(self, frame: bytes) -> bytes | None:
        """Send one request frame; the response body, or None when the broker closed the
        connection (clean close: EOF or reset). A hang raises socket.timeout."""
        sock = self._connect()
        try:
            sock.sendall(frame)
            size = self._recv_exact(4)
            body = None if size is None else self._recv_exact(struct.unpack(">i", size)[0])
        except (ConnectionResetError, BrokenPipeError):
            body = None
        if body is None:
            self.close()
        return body


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _frame(api_key: int, version: int, body: bytes, flexible: bool) -> bytes:
    head = struct.pack(">hhi", api_key, version, 99) + struct.pack(">h", 4) + b"fuzz" + (b"\x00" if flexible else b"")
    return struct.pack(">i", len(head) + len(body)) + head + body


CRAFTED = [
    # CreatePartitions v3: topics compact array of 2^31 entries in a 10-byte body
    _frame(ApiKey.CREATE_PARTITIONS, 3, _uvarint(2**31) + b"\x00" * 8, True),
    # CreateTopics v4: int32 array length 2^31-1
    _frame(ApiKey.CREATE_TOPICS, 4, struct.pack(">i", 2**31 - 1) + b"\x00" * 8, False),
    # DeleteTopics v5: a topic name of 2^31 bytes announced
    _frame(ApiKey.DELETE_TOPICS, 5, _uvarint(2) + _uvarint(2**31) + b"x" * 8, True),
    # Metadata v12: 2^28 topics announced
    _frame(ApiKey.METADATA, 12, _uvarint(2**28) + b"\x00" * 4, True),
    # DescribeConfigs v4: resources array length -5 (compact: 0 means null, 1 means empty)
    _frame(ApiKey.DESCRIBE_CONFIGS, 4, struct.pack(">i", -5), True),
    # DeleteTopics v5, well-formed: 600,000 one-byte names (1.2 MB), over MAX_REQUEST_FIELDS
    _frame(ApiKey.DELETE_TOPICS, 5, _uvarint(600_001) + b"\x02a" * 600_000 + struct.pack(">i", 0) + b"\x00",
           True),
]


def _api_versions_ok(client: RawClient) -> bool:
    from kio.schema.api_versions.v3.request import ApiVersionsRequest
    frame = encode_request(ApiVersionsRequest(client_software_name="fuzz", client_software_version="1"),
                           correlation_id=7)
    body = client.exchange(frame)
    if body is None:
        return False
    _, resp = decode_response(body, ApiKey.API_VERSIONS, 3)
    return resp.error_code == 0


def test_admin_api_fuzz_gets_answers_or_clean_closes_with_bounded_memory(
        make_cluster: Callable[..., LocalCluster]) -> None:
    """160 seeded random admin requests with extreme counts, sizes, array lengths and names
    are each answered (no handler fails), hand-made frames announcing 2^31-element arrays and
    strings, or holding 600,000 names, close their connection; the broker process stays alive, answers ApiVersions, and
    its RSS stays under 350 MB."""
    cluster = make_cluster(brokers=1, overrides={
        "auto.create.topics.enable": "false", "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3", "kafkalike.max.partitions.per.request": "20",
        "kafkalike.max.partitions": "200"})
    pid = cluster.broker_pid(1)
    assert pid is not None
    cap_address_space(pid, 1 << 30)
    host, port = cluster.broker_address(1).rsplit(":", 1)
    client = RawClient(host, int(port))
    rng = random.Random(SEED)
    gen = RandomRequests(rng)
    answered = closed = skipped = 0
    max_rss = vm_kib(pid, "VmRSS")
    started = time.monotonic()
    try:
        frames: list[tuple[str, bytes, int, int]] = [(f"crafted {i}", f, -1, -1) for i, f in enumerate(CRAFTED)]
        for i in range(REQUESTS):
            api = rng.choice(FUZZED_APIS)
            lo, hi = SUPPORTED_APIS[api]
            version = rng.randint(lo, hi)
            try:
                request = gen.entity(request_class(api, version))
                frame = encode_request(request, correlation_id=i, client_id=rng.choice(["fuzz", "", "ü" * 50]))
            except (ValueError, TypeError, OverflowError, struct.error):
                skipped += 1  # a value this version cannot encode
                continue
            frames.append((f"{api.name} v{version}", frame, api, version))
        rng.shuffle(frames)
        for what, frame, api, version in frames:
            body = client.exchange(frame)
            if body is None:
                closed += 1
            else:
                answered += 1
                if api >= 0:  # the answer is a well-formed response of the request's version
                    decode_response(body, api, version)
            max_rss = max(max_rss, vm_kib(pid, "VmRSS"))
            assert cluster.broker_alive(1), f"broker died after {what}"
        assert _api_versions_ok(client)
    finally:
        client.close()
    elapsed = time.monotonic() - started
    print(f"fuzz: {answered} answered, {closed} closed, {skipped} not encodable, "
          f"max RSS {max_rss // 1024} MiB, {elapsed:.1f} s")
    assert cluster.broker_alive(1)
    crashes = [line for line in cluster.log_path(1).read_text(errors="replace").splitlines()
               if "request_handler_failed" in line]
    assert not crashes, f"a handler failed instead of answering: {crashes[:3]}"
    assert answered >= REQUESTS // 2
    assert closed >= len(CRAFTED)
    assert max_rss < RSS_LIMIT_KIB, f"broker RSS reached {max_rss // 1024} MiB"
