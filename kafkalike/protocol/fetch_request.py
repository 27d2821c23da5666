"""Fetch request (api key 1) fast path: ``encode_fetch_request_body()``, the request body
written out by hand instead of through kio's generic, schema-driven writer (3x faster:
docs/benchmarks.md, "The follower's Fetch request"), and ``encode_fetch_request_fields()``,
the same bytes from plain records (``FetchRequestFields``), which the follower builds
instead of kio's entities (docs/benchmarks.md, "Cold paths").

Every follower sends its leader a Fetch per round trip, so its encode sits on the acks=all
path (docs/benchmarks.md, "Hop timing"). Layout, Kafka protocol guide "Fetch API", v4-v12:

    replica_id int32 | max_wait_ms int32 | min_bytes int32 | max_bytes int32
    isolation_level int8 | session_id int32 (v7+) | session_epoch int32 (v7+)
    topics [topic string,
            partitions [partition int32, current_leader_epoch int32 (v9+),
                        fetch_offset int64, last_fetched_epoch int32 (v12+),
                        log_start_offset int64 (v5+), partition_max_bytes int32]]
    forgotten_topics_data [topic string, partitions [int32]] (v7+)
    rack_id string (v11+)
    (v12: compact strings and arrays, a tagged-field section closing every struct; the
    request's own section may carry tag 0, cluster_id, a compact nullable string — KIP-709)

``encode_fetch_request_body`` takes kio's FetchRequest entity of that version (clients, as
for the generic codec), ``encode_fetch_request_fields`` a FetchRequestFields (the follower);
one writer serves both and the bytes are kio's (tests/protocol/test_fetch_request.py,
test_fetch_plain_records.py). ``fetch_partition`` / ``fetch_request`` build the kio entities
directly; the follower used them until it moved to plain records, and the benchmarks
(bench/fetch_request_codec.py, bench/cold_path.py) still compare against them. The broker decodes Fetch requests with the
generic reader: a hand-written decoder measured no faster, as building kio's entities is most
of a decode's cost.
"""

from __future__ import annotations

import datetime
import struct
from types import ModuleType
from typing import Any

import attrs

from kio.index import load_payload_module
from kio.static.constants import EntityType

from kafkalike.protocol.schema import write_uvarint

__all__ = ["FAST_VERSIONS", "encode_fetch_request_body", "request_module", "fetch_partition", "fetch_request",
           "FetchPartitionFields", "FetchTopicFields", "ForgottenTopicFields", "FetchRequestFields",
           "encode_fetch_request_fields"]

FAST_VERSIONS = range(4, 13)
"""Fetch request versions encoded here (v13+ address topics by id and go through kio)."""
FIRST_FLEXIBLE_VERSION = 12
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
_I64 = struct.Struct(">q")
_HEAD = struct.Struct(">iiiib")  # replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level
_SESSION = struct.Struct(">ii")  # session_id, session_epoch
_ONE_MS = datetime.timedelta(milliseconds=1)

_MODULES: dict[int, ModuleType] = {}


def request_module(version: int) -> ModuleType:
    """kio's module of the Fetch request ``version`` (FetchRequest, FetchTopic,
    FetchPartition, ForgottenTopic), loaded once."""
    mod = _MODULES.get(version)
    if mod is None:
        mod = load_payload_module(1, version, EntityType.request)
        _MODULES[version] = mod
    return mod


def fetch_partition(version: int, partition: int, fetch_offset: int, partition_max_bytes: int,
                    current_leader_epoch: int = -1, log_start_offset: int = -1,
                    last_fetched_epoch: int = -1) -> Any:
    """kio's FetchPartition of ``version`` (4-12) built directly, the fields the version lacks
    left out (a sixth of client.messages.build_request's cost, which checks every name):
    offsets in records, bytes, leader epochs."""
    cls = request_module(version).FetchPartition
    if version >= 12:
        return cls(partition=partition, current_leader_epoch=current_leader_epoch, fetch_offset=fetch_offset,
                   last_fetched_epoch=last_fetched_epoch, log_start_offset=log_start_offset,
                   partition_max_bytes=partition_max_bytes)
    if version >= 9:
        return cls(partition=partition, current_leader_epoch=current_leader_epoch, fetch_offset=fetch_offset,
                   log_start_offset=log_start_offset, partition_max_bytes=partition_max_bytes)
    if version >= 5:
        return cls(partition=partition, fetch_offset=fetch_offset, log_start_offset=log_start_offset,
                   partition_max_bytes=partition_max_bytes)
    return cls(partition=partition, fetch_offset=fetch_offset, partition_max_bytes=partition_max_bytes)


def fetch_request(version: int, *, replica_id: int, max_wait_ms: int, min_bytes: int, max_bytes: int,
                  isolation_level: int, session_id: int, session_epoch: int,
                  topics: dict[str, list[Any]], forgotten: dict[str, list[int]], rack_id: str = "") -> Any:
    """kio's FetchRequest of ``version`` (4-12) built directly: ``topics`` {topic: its
    FetchPartitions (``fetch_partition``)}, ``forgotten`` {topic: partition indexes} (v7+);
    ``max_wait_ms`` in ms, byte limits in bytes; session fields and rack_id dropped where the
    version lacks them."""
    mod = request_module(version)
    fields: dict[str, Any] = {}
    if version >= 7:
        fields["session_id"] = session_id
        fields["session_epoch"] = session_epoch
        fields["forgotten_topics_data"] = tuple(mod.ForgottenTopic(topic=t, partitions=tuple(ps))
                                                for t, ps in forgotten.items())
    if version >= 11:
        fields["rack_id"] = rack_id
    return mod.FetchRequest(
        replica_id=replica_id, max_wait=datetime.timedelta(milliseconds=max_wait_ms), min_bytes=min_bytes,
        max_bytes=max_bytes, isolation_level=isolation_level,
        topics=tuple(mod.FetchTopic(topic=t, partitions=tuple(ps)) for t, ps in topics.items()), **fields)


# ------------------------------------------------------------------------------- encoding


def _write_count(out: bytearray, n: int, flexible: bool) -> None:
    if flexible:
        write_uvarint(out, n + 1)
    else:
        out += _I32.pack(n)


def _write_string(out: bytearray, value: str | None, flexible: bool) -> None:
    if value is None:
        out += b"\x00" if flexible else b"\xff\xff"
        return
    data = value.encode("utf-8")
    if flexible:
        write_uvarint(out, len(data) + 1)
    else:
        out += _I16.pack(len(data))
    out += data


@attrs.frozen
class FetchPartitionFields:
    """One partition of a Fetch request as plain values (the attribute names of kio's
    FetchPartition): offsets in records, bytes, leader epochs (-1 = none)."""

    partition: int
    current_leader_epoch: int
    fetch_offset: int
    last_fetched_epoch: int
    log_start_offset: int
    partition_max_bytes: int


@attrs.frozen
class FetchTopicFields:
    """One topic of a Fetch request: its name and partitions."""

    topic: str
    partitions: tuple[FetchPartitionFields, ...]


@attrs.frozen
class ForgottenTopicFields:
    """Partitions of one topic an incremental fetch removes from its session (v7+)."""

    topic: str
    partitions: tuple[int, ...]


@attrs.frozen
class FetchRequestFields:
    """A Fetch request (v4-12) as plain values, encoded by ``encode_fetch_request_fields``
    without building kio's entities: the follower's path (broker/replica_fetcher.py), where
    every object built after the broker sat idle costs several times its warm cost
    (docs/benchmarks.md, "Cold paths"). ``max_wait_ms`` in ms, byte limits in bytes."""

    replica_id: int
    max_wait_ms: int
    min_bytes: int
    max_bytes: int
    isolation_level: int
    session_id: int
    session_epoch: int
    topics: tuple[FetchTopicFields, ...]
    forgotten_topics_data: tuple[ForgottenTopicFields, ...] = ()
    rack_id: str = ""
    cluster_id: str | None = None


def encode_fetch_request_fields(request: FetchRequestFields, version: int) -> bytes:
    """The body of a Fetch request (v4-12) from plain values: the bytes
    ``encode_fetch_request_body`` gives for the kio entity with the same fields."""
    return _encode_body(request, version, request.max_wait_ms)


def encode_fetch_request_body(request: Any, version: int) -> bytes:
    """The body of a Fetch request (v4-12) from a kio FetchRequest (``max_wait`` a timedelta, as
    every kio entity holds it; fields a version lacks are not read). The same bytes kio's
    generic writer gives."""
    return _encode_body(request, version, request.max_wait // _ONE_MS)


def _encode_body(request: Any, version: int, max_wait_ms: int) -> bytes:
    """The body from anything with kio's FetchRequest attribute names (a kio entity or
    FetchRequestFields), the wait given in ms."""
    flexible = version >= FIRST_FLEXIBLE_VERSION
    out = bytearray(_HEAD.pack(request.replica_id, max_wait_ms, request.min_bytes,
                               request.max_bytes, request.isolation_level))
    if version >= 7:
        out += _SESSION.pack(request.session_id, request.session_epoch)
    _write_count(out, len(request.topics), flexible)
    for topic in request.topics:
        _write_string(out, topic.topic, flexible)
        _write_count(out, len(topic.partitions), flexible)
        for p in topic.partitions:
            out += _I32.pack(p.partition)
            if version >= 9:
                out += _I32.pack(p.current_leader_epoch)
            out += _I64.pack(p.fetch_offset)
            if version >= 12:
                out += _I32.pack(p.last_fetched_epoch)
            if version >= 5:
                out += _I64.pack(p.log_start_offset)
            out += _I32.pack(p.partition_max_bytes)
            if flexible:
                out.append(0)
        if flexible:
            out.append(0)
    if version >= 7:
        _write_count(out, len(request.forgotten_topics_data), flexible)
        for topic in request.forgotten_topics_data:
            _write_string(out, topic.topic, flexible)
            _write_count(out, len(topic.partitions), flexible)
            out += struct.pack(f">{len(topic.partitions)}i", *topic.partitions)
            if flexible:
                out.append(0)
    if version >= 11:
        _write_string(out, request.rack_id, flexible)
    if flexible:
        cluster_id = request.cluster_id
        if cluster_id is None:
            out.append(0)
        else:
            tag = bytearray()
            _write_string(tag, cluster_id, True)
            out.append(1)  # one tagged field: tag 0, its size, the compact string
            write_uvarint(out, 0)
            write_uvarint(out, len(tag))
            out += tag
    return bytes(out)
