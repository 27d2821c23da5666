"""Fetch response (api key 1) fast path: records spliced in as file slices, never copied.

Holds ``FileRecords`` (a placeholder: "``size`` bytes of ``file`` from ``position``"),
``encode_fetch_response()`` (server side: the response as a list of chunks),
``decode_fetch_response_fields()`` (the follower's side: plain records, no kio entity) and
``decode_fetch_response()`` (clients: kio's FetchResponse built from those records); records
stay memoryview slices of the frame.
Layout, Kafka protocol guide "Fetch API", v4-v12:

    throttle_time_ms int32 | error_code int16 (v7+) | session_id int32 (v7+)
    responses [topic string,
               partitions [partition_index int32, error_code int16, high_watermark int64,
                           last_stable_offset int64, log_start_offset int64 (v5+),
                           aborted_transactions nullable [producer_id int64, first_offset int64],
                           preferred_read_replica int32 (v11+), records nullable bytes,
                           (v12 tags: 0 diverging_epoch, 1 current_leader, 2 snapshot_id)]]
    (v12+: compact encodings and tagged-field sections)

Chunks: ``encode_fetch_response(response, version, correlation_id)`` returns
``list[bytes | memoryview | FileRecords]`` whose concatenation is one whole frame *including*
the int32 size prefix and the response header. Everything the codec writes is ``bytes``;
each partition's ``records`` value is passed through as its own chunk: a ``FileRecords``
the caller sends with ``os.sendfile(sock, file, position, size)``, or bytes/memoryview the
caller writes as is. ``frame_size(chunks)`` gives the byte count. The same encoder serves
consumer fetches and the inter-broker follower fetch (a Fetch with replica_id >= 0).

The response object is kio's ``FetchResponse`` entity of that version, with ``records``
set to None, bytes, memoryview or FileRecords (kio does not check types).

Errors: decode raises MalformedFrameError.
"""

from __future__ import annotations

import datetime
import struct
from types import ModuleType
from typing import Any, Union, cast

import attrs
from kio.index import load_payload_module
from kio.schema.errors import ErrorCode
from kio.static.constants import EntityType

from kafkalike.protocol.errors import MalformedFrameError
from kafkalike.protocol.schema import read_uvarint, write_uvarint

__all__ = ["FAST_VERSIONS", "Chunk", "FileRecords", "encode_fetch_response", "decode_fetch_response", "frame_size",
           "chunk_size", "FIRST_FLEXIBLE_VERSION", "FetchedPartition", "FetchedTopic", "FetchResponseFields",
           "decode_fetch_response_fields"]

FAST_VERSIONS = range(4, 13)
"""Fetch versions with the name-addressed layout handled here (v13+ address topics by id)."""
FIRST_FLEXIBLE_VERSION = 12
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_PART_HEAD = struct.Struct(">ihqq")  # partition_index, error_code, high_watermark, lso
_PART_HEAD_V5 = struct.Struct(">ihqqq")  # + log_start_offset
_ABORTED = struct.Struct(">qq")
_TOP_V7 = struct.Struct(">ihi")  # throttle, error_code, session_id
_EPOCH_END = struct.Struct(">iq")  # EpochEndOffset: epoch, end_offset
_LEADER = struct.Struct(">ii")  # LeaderIdAndEpoch
_SNAPSHOT = struct.Struct(">qi")  # SnapshotId: end_offset, epoch


@attrs.frozen
class FileRecords:
    """Record bytes the caller splices into the response: ``size`` bytes of ``file`` (an open
    file object or a file descriptor) starting at byte ``position``."""

    file: Any
    position: int
    size: int


Chunk = Union[bytes, bytearray, memoryview, FileRecords]
"""One piece of a response frame as the socket server sends it: bytes as they are, FileRecords
spliced from the file."""


def chunk_size(chunk: Chunk) -> int:
    """Bytes a chunk occupies on the wire."""
    if isinstance(chunk, FileRecords):
        return chunk.size
    if isinstance(chunk, memoryview):
        return chunk.nbytes
    return len(chunk)


def frame_size(chunks: list[Chunk]) -> int:
    """Total bytes of a chunk list (for a whole frame: 4 + the size in its prefix)."""
    return sum(chunk_size(c) for c in chunks)


_MODULES: dict[int, ModuleType] = {}


def _module(version: int) -> ModuleType:
    mod = _MODULES.get(version)
    if mod is None:
        mod = load_payload_module(1, version, EntityType.response)
        _MODULES[version] = mod
    return mod


def _uvarint(n: int) -> bytes:
    out = bytearray()
    write_uvarint(out, n)
    return bytes(out)


def _ms(value: Any) -> int:
    if isinstance(value, datetime.timedelta):
        return value // datetime.timedelta(milliseconds=1)
    return int(value)


def encode_fetch_response(response: Any, version: int, correlation_id: int) -> list[Chunk]:
    """The whole Fetch response frame (size prefix, header, body) as chunks; see module doc.

    ``version`` 4-12; header v1 (flexible) from v12, else v0.
    """
    flexible = version >= FIRST_FLEXIBLE_VERSION
    chunks: list[Chunk] = []
    buf = bytearray()
    buf += _I32.pack(0)  # size prefix, patched below
    buf += _I32.pack(correlation_id)
    if flexible:
        buf.append(0)  # response header tagged fields
    throttle = _ms(response.throttle_time)
    if version >= 7:
        buf += _TOP_V7.pack(throttle, int(response.error_code), response.session_id)
    else:
        buf += _I32.pack(throttle)
    total = 0

    def count(n: int) -> None:
        if flexible:
            write_uvarint(buf, n + 1)
        else:
            buf.extend(_I32.pack(n))

    count(len(response.responses))
    for topic in response.responses:
        name = topic.topic.encode("utf-8")
        if flexible:
            write_uvarint(buf, len(name) + 1)
        else:
            buf += _I16.pack(len(name))
        buf += name
        count(len(topic.partitions))
        for p in topic.partitions:
            if version >= 5:
                buf += _PART_HEAD_V5.pack(p.partition_index, int(p.error_code), p.high_watermark,
                                          p.last_stable_offset, p.log_start_offset)
            else:
                buf += _PART_HEAD.pack(p.partition_index, int(p.error_code), p.high_watermark,
                                       p.last_stable_offset)
            aborted = p.aborted_transactions
            if aborted is None:
                buf += b"\x00" if flexible else b"\xff\xff\xff\xff"
            else:
                count(len(aborted))
                for txn in aborted:
                    buf += _ABORTED.pack(txn.producer_id, txn.first_offset)
                    if flexible:
                        buf.append(0)
            if version >= 11:
                buf += _I32.pack(p.preferred_read_replica)
            # A partition without data gets an empty record set, never null: Kafka's broker
            # always writes one (MemoryRecords.EMPTY), and librdkafka 2.16 drops a Fetch v12
            # partition whose records are null ("invalid MessageSetSize -1").
            records = b"" if p.records is None else p.records
            if not chunk_size(records):
                buf += b"\x01" if flexible else b"\x00\x00\x00\x00"
            else:
                size = chunk_size(records)
                if flexible:
                    write_uvarint(buf, size + 1)
                else:
                    buf += _I32.pack(size)
                chunks.append(bytes(buf))
                total += len(buf)
                buf = bytearray()
                chunks.append(records)
                total += size
            if flexible:
                _write_partition_tags(buf, p)
        if flexible:
            buf.append(0)
    if flexible:
        buf.append(0)
    chunks.append(bytes(buf))
    total += len(buf)
    first = cast(bytes, chunks[0])  # the header chunk appended first
    chunks[0] = _I32.pack(total - 4) + first[4:]
    return chunks


def _write_partition_tags(buf: bytearray, p: Any) -> None:
    tags = []
    de = p.diverging_epoch
    if de.epoch != -1 or de.end_offset != -1:
        tags.append((0, _EPOCH_END.pack(de.epoch, de.end_offset) + b"\x00"))
    cl = p.current_leader
    if cl.leader_id != -1 or cl.leader_epoch != -1:
        tags.append((1, _LEADER.pack(cl.leader_id, cl.leader_epoch) + b"\x00"))
    sn = p.snapshot_id
    if sn.end_offset != -1 or sn.epoch != -1:
        tags.append((2, _SNAPSHOT.pack(sn.end_offset, sn.epoch) + b"\x00"))
    write_uvarint(buf, len(tags))
    for tag, payload in tags:
        write_uvarint(buf, tag)
        write_uvarint(buf, len(payload))
        buf += payload


# ------------------------------------------------------------------------------ decoding


def _need(buf: Any, pos: int, n: int) -> None:
    if pos + n > len(buf):
        raise MalformedFrameError(f"fetch response ends early (at byte {pos})")


def _count(buf: Any, pos: int, flexible: bool, nullable: bool = False) -> tuple[int, int]:
    if flexible:
        n, pos = read_uvarint(buf, pos)
        n -= 1
    else:
        _need(buf, pos, 4)
        n = _I32.unpack_from(buf, pos)[0]
        pos += 4
    if n < -1 or (n == -1 and not nullable) or n > len(buf) - pos:
        raise MalformedFrameError(f"invalid length {n}")
    return n, pos


@attrs.frozen
class FetchedPartition:
    """One partition of a decoded Fetch response (Kafka protocol guide, Fetch v4-v12
    PartitionData), plain values: ``error_code`` an int, offsets in records,
    ``aborted_transactions`` None or ((producer_id, first_offset), ...), ``records`` a
    memoryview slice of the frame or None, and the v12 tagged fields as (epoch, end_offset)
    (diverging_epoch), (leader_id, leader_epoch) (current_leader), (end_offset, epoch)
    (snapshot_id), None when absent."""

    partition_index: int
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    aborted_transactions: tuple[tuple[int, int], ...] | None
    preferred_read_replica: int
    records: memoryview | None
    diverging_epoch: tuple[int, int] | None = None
    current_leader: tuple[int, int] | None = None
    snapshot_id: tuple[int, int] | None = None


@attrs.frozen
class FetchedTopic:
    """One topic of a decoded Fetch response: its name and partitions."""

    topic: str
    partitions: tuple[FetchedPartition, ...]


@attrs.frozen
class FetchResponseFields:
    """A decoded Fetch response body as plain values (``decode_fetch_response_fields``):
    throttle time (ms), top-level error code (an int; 0 before v7), fetch session id (0
    before v7) and the topics."""

    throttle_time_ms: int
    error_code: int
    session_id: int
    responses: tuple[FetchedTopic, ...]


_ERROR_CODES = frozenset(int(e) for e in ErrorCode)


def decode_fetch_response_fields(buf: memoryview, pos: int, version: int) -> tuple[FetchResponseFields, int]:
    """Decode a Fetch response body (after the response header) at ``buf[pos:]`` into plain
    records, no kio entity built: the follower's path (broker/replica_fetcher.py), where a
    response is decoded after the broker sat idle and every object and function touched then
    costs several times its warm cost (docs/benchmarks.md, "Cold paths").

    Returns (FetchResponseFields, position after it); ``records`` are memoryview slices of
    ``buf``. Raises MalformedFrameError (a length past the end, an unknown error code,
    invalid UTF-8 in a topic name)."""
    flexible = version >= FIRST_FLEXIBLE_VERSION
    if not isinstance(buf, memoryview):
        buf = memoryview(buf)
    if version >= 7:
        _need(buf, pos, 10)
        throttle, error_code, session_id = _TOP_V7.unpack_from(buf, pos)
        pos += 10
        if error_code not in _ERROR_CODES:
            raise MalformedFrameError(f"unknown error code {error_code}")
    else:
        _need(buf, pos, 4)
        throttle = _I32.unpack_from(buf, pos)[0]
        error_code = session_id = 0
        pos += 4
    head = _PART_HEAD_V5 if version >= 5 else _PART_HEAD
    n_topics, pos = _count(buf, pos, flexible)
    topics = []
    for _ in range(n_topics):
        n, pos = _count(buf, pos, flexible) if flexible else _string_len(buf, pos)
        _need(buf, pos, n)
        try:
            name = str(buf[pos:pos + n], "utf-8")
        except UnicodeDecodeError:
            raise MalformedFrameError("topic name is not valid UTF-8") from None
        pos += n
        n_parts, pos = _count(buf, pos, flexible)
        parts = []
        for _ in range(n_parts):
            _need(buf, pos, head.size)
            if version >= 5:
                index, ec, hw, lso, log_start = head.unpack_from(buf, pos)
            else:
                index, ec, hw, lso = head.unpack_from(buf, pos)
                log_start = -1
            pos += head.size
            if ec and ec not in _ERROR_CODES:
                raise MalformedFrameError(f"unknown error code {ec}")
            n_aborted, pos = _count(buf, pos, flexible, nullable=True)
            aborted: tuple[tuple[int, int], ...] | None = None
            if n_aborted >= 0:
                entries = []
                for _ in range(n_aborted):
                    _need(buf, pos, 16)
                    entries.append(_ABORTED.unpack_from(buf, pos))
                    pos += 16
                    if flexible:
                        pos = _skip_tags(buf, pos)
                aborted = tuple(entries)
            preferred = -1
            if version >= 11:
                _need(buf, pos, 4)
                preferred = _I32.unpack_from(buf, pos)[0]
                pos += 4
            if flexible:
                size, pos = read_uvarint(buf, pos)
                size -= 1
            else:
                _need(buf, pos, 4)
                size = _I32.unpack_from(buf, pos)[0]
                pos += 4
            records = None
            if size < 0:
                if size != -1:
                    raise MalformedFrameError(f"invalid records length {size}")
            else:
                _need(buf, pos, size)
                records = buf[pos:pos + size]
                pos += size
            tags: dict[str, tuple[int, int]] = {}
            if flexible:
                pos = _read_partition_tags(buf, pos, tags)
            parts.append(FetchedPartition(index, ec, hw, lso, log_start, aborted, preferred, records, **tags))
        if flexible:
            pos = _skip_tags(buf, pos)
        topics.append(FetchedTopic(name, tuple(parts)))
    if flexible:
        pos = _skip_tags(buf, pos)
    return FetchResponseFields(throttle, error_code, session_id, tuple(topics)), pos


def decode_fetch_response(buf: memoryview, pos: int, version: int) -> tuple[Any, int]:
    """Decode a Fetch response body (after the response header) at ``buf[pos:]``.

    Returns (kio FetchResponse of that version, position after it); ``records`` are
    memoryview slices of ``buf`` or None. Raises MalformedFrameError.
    """
    fields, pos = decode_fetch_response_fields(buf, pos, version)
    mod = _module(version)
    kwargs: dict[str, Any] = {}
    if version >= 7:
        kwargs["error_code"] = ErrorCode(fields.error_code)
        kwargs["session_id"] = fields.session_id
    topics = []
    for t in fields.responses:
        parts = []
        for p in t.partitions:
            part: dict[str, Any] = {
                "partition_index": p.partition_index, "error_code": ErrorCode(p.error_code),
                "high_watermark": p.high_watermark, "last_stable_offset": p.last_stable_offset,
                "aborted_transactions": None if p.aborted_transactions is None else tuple(
                    mod.AbortedTransaction(producer_id=pid, first_offset=first)
                    for pid, first in p.aborted_transactions),
                "records": p.records}
            if version >= 5:
                part["log_start_offset"] = p.log_start_offset
            if version >= 11:
                part["preferred_read_replica"] = p.preferred_read_replica
            if p.diverging_epoch is not None:
                part["diverging_epoch"] = mod.EpochEndOffset(epoch=p.diverging_epoch[0],
                                                             end_offset=p.diverging_epoch[1])
            if p.current_leader is not None:
                part["current_leader"] = mod.LeaderIdAndEpoch(leader_id=p.current_leader[0],
                                                              leader_epoch=p.current_leader[1])
            if p.snapshot_id is not None:
                part["snapshot_id"] = mod.SnapshotId(end_offset=p.snapshot_id[0], epoch=p.snapshot_id[1])
            parts.append(mod.PartitionData(**part))
        topics.append(mod.FetchableTopicResponse(topic=t.topic, partitions=tuple(parts)))
    return mod.FetchResponse(responses=tuple(topics), throttle_time=datetime.timedelta(
        milliseconds=fields.throttle_time_ms), **kwargs), pos


def _string_len(buf: Any, pos: int) -> tuple[int, int]:
    _need(buf, pos, 2)
    n = _I16.unpack_from(buf, pos)[0]
    if n < 0:
        raise MalformedFrameError(f"invalid string length {n}")
    return n, pos + 2


def _skip_tags(buf: Any, pos: int) -> int:
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        _need(buf, pos, size)
        pos += size
    return pos


def _read_partition_tags(buf: Any, pos: int, fields: dict[str, tuple[int, int]]) -> int:
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        _need(buf, pos, size)
        end = pos + size
        if tag == 0 and size >= 12:
            fields["diverging_epoch"] = _EPOCH_END.unpack_from(buf, pos)
            _skip_tags(buf[:end], pos + 12)
        elif tag == 1 and size >= 8:
            fields["current_leader"] = _LEADER.unpack_from(buf, pos)
            _skip_tags(buf[:end], pos + 8)
        elif tag == 2 and size >= 12:
            fields["snapshot_id"] = _SNAPSHOT.unpack_from(buf, pos)
            _skip_tags(buf[:end], pos + 12)
        elif tag <= 2:
            raise MalformedFrameError(f"fetch partition tag {tag} too short ({size} bytes)")
        pos = end
    return pos
