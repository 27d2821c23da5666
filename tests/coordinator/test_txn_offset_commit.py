"""TxnOffsetCommit (KIP-98, KIP-447) in the group coordinator: offsets written as a
transactional batch stay pending (invisible to OffsetFetch, UNSTABLE_OFFSET_COMMIT with
require_stable) until the producer's COMMIT marker makes them the committed offsets or its
ABORT marker drops them; KIP-447's member checks; loading resolves pending offsets by the
control batches in the log. Unit tests on the replay, then an in-process broker over TCP (real
ZooKeeper) where the marker arrives through ReplicaManager.txn_marker_listeners, the hook the
broker's WriteTxnMarkers handler calls."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from kafkalike.client.connection import KafkaConnection
from kafkalike.coordinator.group_metadata_manager import (LogBatch, offset_commit_record, partition_for,
                                                          replay_batches)
from kafkalike.coordinator.group_metadata import OffsetAndMetadata
from kafkalike.coordinator.offset_config import OFFSETS_TOPIC
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.records import build_records_batch
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import connect, running_broker
from tests.coordinator.coordinator_helpers import (assignment, commit, create_topics, fetch_offsets,
                                                   find_coordinator, join, sync, until_loaded)

PARTS = "3"
FAST = {"offsets_topic_num_partitions": PARTS, "group_initial_rebalance_delay_ms": "0",
        "group_min_session_timeout_ms": "500"}
T0 = TopicPartition("t", 0)


def _rec(group: str, tp: TopicPartition, offset: int) -> tuple[bytes | None, bytes | None]:
    return offset_commit_record(group, tp, OffsetAndMetadata(offset, -1, "", 1, None))


def _marker(producer_id: int, base_offset: int, committed: bool) -> LogBatch:
    return LogBatch(base_offset, ((struct.pack(">hh", 0, 1 if committed else 0), struct.pack(">hi", 0, 5)),),
                    producer_id, True, committed)


# ----------------------------------------------------------------------------- replay


def test_replay_installs_transactional_offsets_at_commit_marker_only() -> None:
    loaded = replay_batches([LogBatch(0, (_rec("g", T0, 5),)),
                             LogBatch(1, (_rec("g", T0, 9),), 7, True)])
    assert loaded.offsets["g"][T0].offset == 5
    assert loaded.pending[7]["g"][T0].offset_and_metadata.offset == 9
    committed = replay_batches([LogBatch(0, (_rec("g", T0, 5),)),
                                LogBatch(1, (_rec("g", T0, 9),), 7, True), _marker(7, 2, True)])
    assert committed.offsets["g"][T0].offset == 9 and committed.positions["g"][T0] == 1
    assert committed.pending == {}


def test_replay_drops_transactional_offsets_at_abort_marker() -> None:
    loaded = replay_batches([LogBatch(0, (_rec("g", T0, 5),)),
                             LogBatch(1, (_rec("g", T0, 9),), 7, True), _marker(7, 2, False)])
    assert loaded.offsets["g"][T0].offset == 5 and loaded.pending == {}


def test_replay_commit_marker_does_not_override_a_later_plain_commit() -> None:
    """Kafka's olderThan: the transactional record (offset 0) precedes the plain commit
    (offset 1), so the plain commit stays when the marker (offset 2) arrives."""
    loaded = replay_batches([LogBatch(0, (_rec("g", T0, 9),), 7, True), LogBatch(1, (_rec("g", T0, 12),)),
                             _marker(7, 2, True)])
    assert loaded.offsets["g"][T0].offset == 12


def test_replay_keeps_producers_apart() -> None:
    loaded = replay_batches([LogBatch(0, (_rec("g", T0, 9),), 7, True),
                             LogBatch(1, (_rec("h", T0, 4),), 8, True), _marker(8, 2, True)])
    assert loaded.offsets == {"h": {T0: loaded.offsets["h"][T0]}} and loaded.offsets["h"][T0].offset == 4
    assert set(loaded.pending) == {7}


# ----------------------------------------------------------------------------- over TCP


async def _txn_commit(conn: KafkaConnection, group: str, offsets: dict[tuple[str, int], int], *,
                      producer_id: int = 1000, epoch: int = 0, generation: int = -1, member_id: str = "",
                      instance_id: str | None = None, version: int | None = None) -> dict[tuple[str, int], int]:
    by_topic: dict[str, list[dict]] = {}
    for (t, p), o in offsets.items():
        by_topic.setdefault(t, []).append({"partition_index": p, "committed_offset": o,
                                           "committed_leader_epoch": -1, "committed_metadata": None})
    r = await conn.call(ApiKey.TXN_OFFSET_COMMIT, api_version=version, transactional_id="tx", group_id=group,
                        producer_id=producer_id, producer_epoch=epoch, generation_id=generation,
                        member_id=member_id, group_instance_id=instance_id,
                        topics=[{"name": t, "partitions": ps} for t, ps in by_topic.items()])
    return {(t.name, p.partition_index): int(p.error_code.value) for t in r.topics for p in t.partitions}


async def _fetch_stable(conn: KafkaConnection, group: str, parts: list[tuple[str, int]]) -> dict[tuple[str, int], Any]:
    by: dict[str, list[int]] = {}
    for t, p in parts:
        by.setdefault(t, []).append(p)
    r = await conn.call(ApiKey.OFFSET_FETCH, api_version=7, group_id=group, require_stable=True,
                        topics=[{"name": t, "partition_indexes": ps} for t, ps in by.items()])
    assert r.error_code == ErrorCode.none, r
    return {(t.name, p.partition_index): (p.committed_offset, int(p.error_code.value))
            for t in r.topics for p in t.partitions}


def _marker_hook(server: Any, group: str, producer_id: int, committed: bool) -> None:
    """What the WriteTxnMarkers handler does after a marker on the group's offsets partition
    is replicated: call every registered listener."""
    tp = TopicPartition(OFFSETS_TOPIC, partition_for(group, int(PARTS)))
    assert server.replica_manager.txn_marker_listeners, "the group coordinator registered no listener"
    for listener in server.replica_manager.txn_marker_listeners:
        listener(tp, producer_id, 0, committed)


async def test_txn_offsets_pending_until_commit_marker_then_committed(tmp_path: Path, zk_chroot_connect: str) -> None:
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "txg")
            await until_loaded(conn, "txg")
            await create_topics(conn, "t")
            assert await commit(conn, "txg", {("t", 0): 3}) == {("t", 0): 0}
            assert await _txn_commit(conn, "txg", {("t", 0): 10, ("t", 1): 20}) == {("t", 0): 0, ("t", 1): 0}
            # pending: OffsetFetch still shows the old offsets; require_stable refuses
            assert await fetch_offsets(conn, "txg", [("t", 0), ("t", 1)]) == {("t", 0): 3, ("t", 1): -1}
            unstable = ErrorCode.unstable_offset_commit.value
            assert await _fetch_stable(conn, "txg", [("t", 0), ("t", 1), ("t", 2)]) == {
                ("t", 0): (-1, unstable), ("t", 1): (-1, unstable), ("t", 2): (-1, 0)}
            _marker_hook(server, "txg", 1000, committed=True)
            assert await fetch_offsets(conn, "txg", [("t", 0), ("t", 1)]) == {("t", 0): 10, ("t", 1): 20}
            assert await _fetch_stable(conn, "txg", [("t", 0)]) == {("t", 0): (10, 0)}


async def test_txn_offsets_dropped_at_abort_marker(tmp_path: Path, zk_chroot_connect: str) -> None:
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "txa")
            await until_loaded(conn, "txa")
            await create_topics(conn, "t")
            assert await commit(conn, "txa", {("t", 0): 3}) == {("t", 0): 0}
            assert await _txn_commit(conn, "txa", {("t", 0): 10}, producer_id=2000) == {("t", 0): 0}
            # another producer's marker completes nothing of this one
            _marker_hook(server, "txa", 1999, committed=True)
            assert await fetch_offsets(conn, "txa", [("t", 0)]) == {("t", 0): 3}
            _marker_hook(server, "txa", 2000, committed=False)
            assert await fetch_offsets(conn, "txa", [("t", 0)]) == {("t", 0): 3}
            assert await _fetch_stable(conn, "txa", [("t", 0)]) == {("t", 0): (3, 0)}


async def test_txn_offset_commit_kip447_member_checks(tmp_path: Path, zk_chroot_connect: str) -> None:
    """v3 carries the consumer's generation and member id: a wrong generation gets
    ILLEGAL_GENERATION, an unknown member UNKNOWN_MEMBER_ID, a replaced static member
    FENCED_INSTANCE_ID; the right ones (and v0 without them) are accepted. Unknown partitions
    get UNKNOWN_TOPIC_OR_PARTITION; an empty group id INVALID_GROUP_ID."""
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "txm")
            await until_loaded(conn, "txm")
            await create_topics(conn, "t")
            j = await join(conn, "txm", session_ms=30000, instance_id="i-1")  # static: no handshake
            assert j.error_code == ErrorCode.none, j
            await sync(conn, "txm", j.generation_id, j.member_id, {j.member_id: assignment({"t": [0]})},
                       instance_id="i-1")
            g, m = j.generation_id, j.member_id
            assert await _txn_commit(conn, "txm", {("t", 0): 1}, generation=g + 1, member_id=m,
                                     instance_id="i-1") == {("t", 0): ErrorCode.illegal_generation.value}
            assert await _txn_commit(conn, "txm", {("t", 0): 1}, generation=g, member_id="nobody"
                                     ) == {("t", 0): ErrorCode.unknown_member_id.value}
            assert await _txn_commit(conn, "txm", {("t", 0): 1}, generation=g, member_id="old-id",
                                     instance_id="i-1") == {("t", 0): ErrorCode.fenced_instance_id.value}
            assert await _txn_commit(conn, "txm", {("t", 0): 1, ("nope", 0): 1}, generation=g, member_id=m,
                                     instance_id="i-1") == {("t", 0): 0,
                                                            ("nope", 0): ErrorCode.unknown_topic_or_partition.value}
            assert await _txn_commit(conn, "txm", {("t", 0): 2}, version=0) == {("t", 0): 0}
            assert await _txn_commit(conn, "", {("t", 0): 2}) == {("t", 0): ErrorCode.invalid_group_id.value}
            # the failed attempts left nothing pending of theirs: the latest pending value wins
            _marker_hook(server, "txm", 1000, committed=True)
            assert await fetch_offsets(conn, "txm", [("t", 0)]) == {("t", 0): 2}


async def test_loading_resolves_txn_offsets_by_the_markers_in_the_log(tmp_path: Path, zk_chroot_connect: str) -> None:
    """After a restart the coordinator replays __consumer_offsets: a transaction whose COMMIT
    marker is in the log has its offsets committed, an aborted one's are gone, and one with no
    marker yet is pending again (UNSTABLE_OFFSET_COMMIT) until its marker."""
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            for group in ("lc", "la", "lo"):
                await find_coordinator(conn, group)
                await until_loaded(conn, group)
            await create_topics(conn, "t")
            assert await _txn_commit(conn, "lc", {("t", 0): 7}, producer_id=11) == {("t", 0): 0}
            assert await _txn_commit(conn, "la", {("t", 0): 8}, producer_id=12) == {("t", 0): 0}
            assert await _txn_commit(conn, "lo", {("t", 0): 9}, producer_id=13) == {("t", 0): 0}
            for group, pid, committed in (("lc", 11, True), ("la", 12, False)):
                # the control batch a WriteTxnMarkers handler appends (Kafka's ControlRecord),
                # written at the log end as a replica would (clients may not write control batches)
                part = server.replica_manager.partitions[
                    TopicPartition(OFFSETS_TOPIC, partition_for(group, int(PARTS)))]
                marker = build_records_batch(
                    [(struct.pack(">hh", 0, 1 if committed else 0), struct.pack(">hi", 0, 0))],
                    base_offset=part.log.log_end_offset, partition_leader_epoch=part.leader_epoch,
                    producer_id=pid, producer_epoch=0, transactional=True, control=True)
                part.log.append(bytearray(marker), assign_offsets=False)
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            for group in ("lc", "la", "lo"):
                await find_coordinator(conn, group)
                await until_loaded(conn, group)
            assert await fetch_offsets(conn, "lc", [("t", 0)]) == {("t", 0): 7}
            assert await fetch_offsets(conn, "la", [("t", 0)]) == {("t", 0): -1}
            assert await _fetch_stable(conn, "lo", [("t", 0)]) == {
                ("t", 0): (-1, ErrorCode.unstable_offset_commit.value)}
            _marker_hook(server, "lo", 13, committed=True)
            assert await fetch_offsets(conn, "lo", [("t", 0)]) == {("t", 0): 9}


async def _write_markers(conn: KafkaConnection, group: str, producer_id: int, committed: bool) -> int:
    """A WriteTxnMarkers v1 request for the group's offsets partition, as the transaction
    coordinator sends it; returns the partition's error code."""
    r = await conn.call(ApiKey.WRITE_TXN_MARKERS, markers=[{
        "producer_id": producer_id, "producer_epoch": 0, "transaction_result": committed, "coordinator_epoch": 1,
        "topics": [{"name": OFFSETS_TOPIC, "partition_indexes": [partition_for(group, int(PARTS))]}]}])
    return int(r.markers[0].topics[0].partitions[0].error_code)


async def test_write_txn_markers_request_completes_txn_offsets(tmp_path: Path, zk_chroot_connect: str) -> None:
    """End to end on the broker side: WriteTxnMarkers (COMMIT) on the group's offsets partition
    makes the pending offsets committed; a second transaction of the same producer (its
    sequence continues on that partition) aborted by an ABORT marker leaves them as they were;
    both survive a restart (the log replay agrees)."""
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "wm")
            await until_loaded(conn, "wm")
            await create_topics(conn, "t")
            assert await _txn_commit(conn, "wm", {("t", 0): 10, ("t", 1): 11}, producer_id=77) == {
                ("t", 0): 0, ("t", 1): 0}
            assert await _txn_commit(conn, "wm", {("t", 0): 12}, producer_id=77) == {("t", 0): 0}
            assert await fetch_offsets(conn, "wm", [("t", 0), ("t", 1)]) == {("t", 0): -1, ("t", 1): -1}
            assert await _write_markers(conn, "wm", 77, True) == 0
            assert await fetch_offsets(conn, "wm", [("t", 0), ("t", 1)]) == {("t", 0): 12, ("t", 1): 11}
            assert await _txn_commit(conn, "wm", {("t", 0): 30}, producer_id=77) == {("t", 0): 0}
            assert await _write_markers(conn, "wm", 77, False) == 0
            assert await _fetch_stable(conn, "wm", [("t", 0), ("t", 1)]) == {("t", 0): (12, 0), ("t", 1): (11, 0)}
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "wm")
            await until_loaded(conn, "wm")
            assert await fetch_offsets(conn, "wm", [("t", 0), ("t", 1)]) == {("t", 0): 12, ("t", 1): 11}
