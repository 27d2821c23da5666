"""Helpers for group coordinator tests over TCP against an in-process broker (real
ZooKeeper, the broker's own controller): find the coordinator, join/sync/heartbeat by hand."""

from __future__ import annotations

import struct
from typing import Any

import trio

from kafkalike.client.connection import KafkaConnection
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode


def subscription(*topics: str) -> bytes:
    """ConsumerProtocolSubscription v0 for ``topics`` (no user data)."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        b = t.encode()
        out += struct.pack(">h", len(b)) + b
    return out + struct.pack(">i", -1)


def assignment(parts: dict[str, list[int]]) -> bytes:
    """ConsumerProtocolAssignment v0 (no user data)."""
    out = struct.pack(">hi", 0, len(parts))
    for t, ps in parts.items():
        b = t.encode()
        out += struct.pack(">h", len(b)) + b + struct.pack(f">i{len(ps)}i", len(ps), *ps)
    return out + struct.pack(">i", -1)


async def find_coordinator(conn: KafkaConnection, group: str, timeout: float = 30) -> Any:
    """FindCoordinator until it answers NONE (the offsets topic is created on first use)."""
    with trio.fail_after(timeout):
        while True:
            r = await conn.call(ApiKey.FIND_COORDINATOR, key=group, key_type=0)
            if r.error_code == ErrorCode.none:
                return r
            await trio.sleep(0.1)


async def until_loaded(conn: KafkaConnection, group: str, timeout: float = 30) -> None:
    """Wait until the coordinator serves ``group`` (OffsetFetch without a load error)."""
    with trio.fail_after(timeout):
        while True:
            r = await conn.call(ApiKey.OFFSET_FETCH, group_id=group, topics=None, require_stable=False)
            if r.error_code == ErrorCode.none:
                return
            await trio.sleep(0.05)


async def join(conn: KafkaConnection, group: str, member_id: str = "", *, topics: tuple[str, ...] = ("t",),
               protocols: tuple[str, ...] = ("range",), session_ms: int = 10000, rebalance_ms: int = 10000,
               instance_id: str | None = None, version: int | None = None) -> Any:
    """One JoinGroup request."""
    return await conn.call(ApiKey.JOIN_GROUP, api_version=version, group_id=group, session_timeout=session_ms,
                           rebalance_timeout=rebalance_ms, member_id=member_id, group_instance_id=instance_id,
                           protocol_type="consumer",
                           protocols=[{"name": p, "metadata": subscription(*topics)} for p in protocols],
                           timeout_ms=60000)


async def join_with_handshake(conn: KafkaConnection, group: str, **kw: Any) -> Any:
    """JoinGroup v7: MEMBER_ID_REQUIRED first, then the rejoin with the given member id."""
    first = await join(conn, group, **kw)
    assert first.error_code == ErrorCode.member_id_required, first
    assert first.member_id
    return await join(conn, group, first.member_id, **kw)


async def sync(conn: KafkaConnection, group: str, generation: int, member_id: str,
               assignments: dict[str, bytes] | None = None, instance_id: str | None = None) -> Any:
    return await conn.call(ApiKey.SYNC_GROUP, group_id=group, generation_id=generation, member_id=member_id,
                           group_instance_id=instance_id, protocol_type="consumer", protocol_name=None,
                           assignments=[{"member_id": m, "assignment": a} for m, a in (assignments or {}).items()],
                           timeout_ms=60000)


async def heartbeat(conn: KafkaConnection, group: str, generation: int, member_id: str) -> Any:
    return await conn.call(ApiKey.HEARTBEAT, group_id=group, generation_id=generation, member_id=member_id,
                           group_instance_id=None)


async def commit(conn: KafkaConnection, group: str, offsets: dict[tuple[str, int], int], *,
                 generation: int = -1, member_id: str = "", metadata: str = "") -> dict[tuple[str, int], int]:
    by_topic: dict[str, list[dict]] = {}
    for (t, p), o in offsets.items():
        by_topic.setdefault(t, []).append({"partition_index": p, "committed_offset": o,
                                           "committed_leader_epoch": -1, "committed_metadata": metadata})
    r = await conn.call(ApiKey.OFFSET_COMMIT, group_id=group, generation_id_or_member_epoch=generation,
                        member_id=member_id, group_instance_id=None,
                        topics=[{"name": t, "partitions": ps} for t, ps in by_topic.items()])
    return {(t.name, p.partition_index): int(p.error_code.value) for t in r.topics for p in t.partitions}


async def fetch_offsets(conn: KafkaConnection, group: str, parts: list[tuple[str, int]] | None = None
                        ) -> dict[tuple[str, int], int]:
    topics = None
    if parts is not None:
        by: dict[str, list[int]] = {}
        for t, p in parts:
            by.setdefault(t, []).append(p)
        topics = [{"name": t, "partition_indexes": ps} for t, ps in by.items()]
    r = await conn.call(ApiKey.OFFSET_FETCH, group_id=group, topics=topics, require_stable=False)
    assert r.error_code == ErrorCode.none, r
    return {(t.name, p.partition_index): p.committed_offset for t in r.topics for p in t.partitions}


async def create_topics(conn: KafkaConnection, *names: str, partitions: int = 3) -> None:
    """Create topics (replication factor 1) and wait until their leaders are known."""
    r = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False,
                        topics=[{"name": n, "num_partitions": partitions, "replication_factor": 1,
                                 "assignments": [], "configs": []} for n in names])
    assert all(t.error_code in (ErrorCode.none, ErrorCode.topic_already_exists) for t in r.topics), r
