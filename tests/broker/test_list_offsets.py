"""ListOffsets special timestamps on a real broker: -3 max timestamp (KIP-734) answers the
offset of the RECORD carrying the largest timestamp, -4 earliest-local (v8) the log start
offset, -5 latest-tiered (v9) offset -1 without tiered storage, as Kafka's
UnifiedLog.fetchOffsetByTimestamp does; earliest follows DeleteRecords."""

from __future__ import annotations

import datetime
from pathlib import Path

from kafkalike.client.connection import KafkaConnection
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from tests.broker.broker_helpers import connect, leader_and_isr, produce, running_broker, update_metadata


async def _lead(conn: KafkaConnection, server, topic: str) -> None:  # type: ignore[no-untyped-def]
    me = server.broker_id
    resp = await conn.send(leader_and_isr(server, topic, {0: (me, (me,), (me,))}), api_version=6)
    assert all(e.error_code == 0 for t in resp.topics for e in t.partition_errors)
    # DeleteRecords answers UNKNOWN_TOPIC_OR_PARTITION for what the metadata cache lacks
    resp = await conn.send(update_metadata([server], topic, {0: (me, (me,), (me,))}), api_version=7)
    assert resp.error_code == 0


async def _list(conn: KafkaConnection, topic: str, timestamp: int, version: int) -> tuple[int, int, int, int]:
    """(error, timestamp, offset, leader epoch) of one ListOffsets for partition 0."""
    resp = await conn.call(ApiKey.LIST_OFFSETS, api_version=version, replica_id=-1, isolation_level=0,
                           topics=[{"name": topic, "partitions": [
                               {"partition_index": 0, "timestamp": timestamp, "current_leader_epoch": -1}]}])
    p = resp.topics[0].partitions[0]
    return p.error_code, p.timestamp, p.offset, getattr(p, "leader_epoch", -1)


async def test_max_timestamp_answers_the_record_not_the_batch_end(tmp_path: Path, zk_chroot_connect: str) -> None:
    """-3 answers the offset of the record with the largest timestamp even when it sits in
    the middle of its batch (Kafka 3.8+, KAFKA-16310), with that batch's leader epoch;
    an empty partition answers -1/-1."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "mx")
        assert await _list(conn, "mx", -3, 7) == (ErrorCode.none, -1, -1, -1)
        r = await produce(conn, "mx", 0, build_batch([SimpleRecord(value=b"a", timestamp=1000),
                                                      SimpleRecord(value=b"b", timestamp=5000),
                                                      SimpleRecord(value=b"c", timestamp=2000)]))
        assert r.error_code == 0
        r = await produce(conn, "mx", 0, build_batch([SimpleRecord(value=b"d", timestamp=3000),
                                                      SimpleRecord(value=b"e", timestamp=4000)]))
        assert r.error_code == 0
        assert await _list(conn, "mx", -3, 7) == (ErrorCode.none, 5000, 1, 0)
        assert await _list(conn, "mx", -3, 9) == (ErrorCode.none, 5000, 1, 0)
        assert await _list(conn, "mx", 4500, 7) == (ErrorCode.none, 5000, 1, 0)


async def test_earliest_local_and_latest_tiered_without_tiered_storage(tmp_path: Path, zk_chroot_connect: str) -> None:
    """v8's -4 answers the log start offset (also after DeleteRecords moved it, like -2);
    v9's -5 answers offset -1, leader epoch -1, no error (remote storage off)."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "tier")
        for _ in range(3):
            assert (await produce(conn, "tier", 0, build_batch([SimpleRecord(value=b"x", timestamp=1)] * 2))).error_code == 0
        assert await _list(conn, "tier", -4, 8) == (ErrorCode.none, -1, 0, 0)
        assert await _list(conn, "tier", -5, 9) == (ErrorCode.none, -1, -1, -1)
        resp = await conn.call(ApiKey.DELETE_RECORDS, api_version=2, timeout=datetime.timedelta(seconds=5),
                               topics=[{"name": "tier", "partitions": [{"partition_index": 0, "offset": 4}]}])
        assert resp.topics[0].partitions[0].error_code == 0 and resp.topics[0].partitions[0].low_watermark == 4
        assert await _list(conn, "tier", -4, 9) == (ErrorCode.none, -1, 4, 0)
        assert await _list(conn, "tier", -2, 9) == (ErrorCode.none, -1, 4, 0)
        assert await _list(conn, "tier", -1, 9) == (ErrorCode.none, -1, 6, 0)
