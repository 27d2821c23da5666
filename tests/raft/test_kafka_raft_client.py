"""KafkaRaftClient's API in one process, over real sockets on loopback: append() on the leader
returns offsets whose batches reach every voter's listener (handle_commit) in order, once;
append() elsewhere raises NotLeaderError (NOT_LEADER_OR_FOLLOWER); listeners see the leader change;
a request from an older epoch is fenced (FENCED_LEADER_EPOCH) and a Fetch of another topic id
refused (UNKNOWN_TOPIC_ID); a malformed frame closes its connection and nothing else; a voter
whose log ends below the leader's log start fetches the leader's snapshot (FetchSnapshot, KIP-630),
hands it to its listener and goes on from the snapshot's end offset."""

from __future__ import annotations

import uuid
from pathlib import Path

import attrs
import pytest
import trio

from kafkalike.client.connection import KafkaConnection
from kafkalike.client.messages import build_request
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.raft.kafka_metadata_log import KafkaMetadataLog
from kafkalike.raft.kafka_raft_client import (KafkaRaftClient, LeaderAndEpoch, NotLeaderError, RaftConfig,
                                              RaftServer, parse_voters)
from kafkalike.raft.quorum_state import QUORUM_STATE_FILE, FileQuorumStateStore, QuorumState
from kafkalike.storage.snapshots import Snapshot, SnapshotId
from tests.raft.raft_helpers import Recorder, free_ports


async def _start_quorum(nursery: trio.Nursery, tmp_path: Path, n: int = 3,
                        ) -> tuple[list[KafkaRaftClient], list[Recorder], dict[int, tuple[str, int]]]:
    ports = free_ports(n)
    voters = {i + 1: ("127.0.0.1", port) for i, port in enumerate(ports)}
    clients, recorders = [], []
    for node_id in voters:
        log = KafkaMetadataLog.open(tmp_path / f"n{node_id}")
        quorum = QuorumState(node_id, set(voters), FileQuorumStateStore(log.dir / QUORUM_STATE_FILE))
        recorder = Recorder()
        client = KafkaRaftClient(RaftConfig(node_id=node_id, voters=voters, cluster_id="c1",
                                            election_timeout_ms=300, election_backoff_max_ms=300),
                                 log, quorum, recorder)
        await nursery.start(client.run)
        await nursery.start(RaftServer(client).serve, "127.0.0.1", voters[node_id][1])
        clients.append(client)
        recorders.append(recorder)
    return clients, recorders, voters


async def _leader(clients: list[KafkaRaftClient]) -> KafkaRaftClient:
    with trio.fail_after(60):
        while True:
            leaders = [c for c in clients if c.quorum.is_leader()]
            # settled: every node follows that leader in its epoch, and something is committed
            if len(leaders) == 1 and leaders[0].high_watermark > 0 and all(
                    c.leader_and_epoch() == leaders[0].leader_and_epoch() for c in clients):
                return leaders[0]
            await trio.sleep(0.05)


def test_parse_voters_reads_kafkas_syntax() -> None:
    assert parse_voters("1@127.0.0.1:9093, 2@[::1]:9094") == {1: ("127.0.0.1", 9093), 2: ("::1", 9094)}
    with pytest.raises(ValueError, match="Invalid format of voter entry"):
        parse_voters("1@host")


async def test_appends_reach_every_listener_in_order_once(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        clients, recorders, _ = await _start_quorum(nursery, tmp_path)
        leader = await _leader(clients)
        follower = next(c for c in clients if c is not leader)
        with pytest.raises(NotLeaderError):
            follower.append([mr.NoOpRecord()])
        with pytest.raises(NotLeaderError):
            leader.append([mr.NoOpRecord()], epoch=leader.quorum.epoch + 1)
        offsets = [leader.append([mr.NoOpRecord(), mr.NoOpRecord()]) for _ in range(5)]
        assert offsets == sorted(offsets) and len(set(offsets)) == 5
        with trio.fail_after(60):
            while not all(r.batches and r.batches[-1].last_offset >= offsets[-1] for r in recorders):
                await trio.sleep(0.05)
        for recorder in recorders:
            # the LeaderChange control batch first, then the five NoOp batches, each once
            assert recorder.batches[0].control_records[0].leader_id == leader.node_id
            assert recorder.data_offsets() == offsets
            assert all(len(b.records) == 2 and b.epoch == leader.quorum.epoch for b in recorder.batches if b.records)
            assert recorder.leaders[-1] == LeaderAndEpoch(leader.node_id, leader.quorum.epoch)
        nursery.cancel_scope.cancel()


async def test_old_epochs_are_fenced_and_other_topics_refused(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        clients, _, voters = await _start_quorum(nursery, tmp_path)
        leader = await _leader(clients)
        epoch = leader.quorum.epoch
        async with KafkaConnection.open(*voters[leader.node_id], negotiate=False) as conn:
            vote = build_request(ApiKey.VOTE, 0, cluster_id="c1", topics=[{
                "topic_name": "__cluster_metadata", "partitions": [{
                    "partition_index": 0, "replica_epoch": epoch - 1, "replica_id": 2, "last_offset_epoch": 0,
                    "last_offset": 0}]}])
            answer = (await conn.send(vote)).topics[0].partitions[0]
            assert answer.error_code == ErrorCode.fenced_leader_epoch and not answer.vote_granted
            assert (answer.leader_id, answer.leader_epoch) == (leader.node_id, epoch)
            wrong_cluster = build_request(ApiKey.VOTE, 0, cluster_id="other", topics=[])
            assert (await conn.send(wrong_cluster)).error_code == ErrorCode.inconsistent_cluster_id
            fetch = build_request(ApiKey.FETCH, 13, replica_id=-1, max_wait=0, min_bytes=0, topics=[{
                "topic_id": uuid.uuid4(), "partitions": [{
                    "partition": 0, "current_leader_epoch": epoch, "fetch_offset": 0, "last_fetched_epoch": 0,
                    "partition_max_bytes": 1000}]}])
            answer = (await conn.send(fetch)).responses[0].partitions[0]
            assert answer.error_code == ErrorCode.unknown_topic_id
        assert leader.quorum.is_leader() and leader.quorum.epoch == epoch
        nursery.cancel_scope.cancel()


async def test_a_malformed_request_closes_its_connection_and_the_node_keeps_serving(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        clients, _, voters = await _start_quorum(nursery, tmp_path)
        leader = await _leader(clients)
        stream = await trio.open_tcp_stream(*voters[leader.node_id])
        # a Vote v0 frame whose body is cut short after the header
        await stream.send_all(bytes.fromhex("0000000c" "00340000" "00000007" "ffff00ff"))
        with trio.fail_after(30):
            assert await stream.receive_some(100) == b""  # closed, no answer
        await stream.aclose()
        async with KafkaConnection.open(*voters[leader.node_id]) as conn:
            answer = await conn.call(ApiKey.DESCRIBE_QUORUM, api_version=1, topics=[
                {"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}])
            partition = answer.topics[0].partitions[0]
            assert partition.error_code == ErrorCode.none and partition.leader_id == leader.node_id
            assert [v.replica_id for v in partition.current_voters] == [1, 2, 3]
        nursery.cancel_scope.cancel()


@attrs.define
class SnapshotRecorder(Recorder):
    snapshots: list[tuple[SnapshotId, Snapshot]] = attrs.field(factory=list)

    def handle_load_snapshot(self, snapshot_id: SnapshotId, snapshot: Snapshot) -> None:
        self.snapshots.append((snapshot_id, snapshot))


async def test_a_new_voter_behind_the_leaders_log_start_fetches_the_snapshot_then_the_log(tmp_path: Path) -> None:
    ports = free_ports(3)
    voters = {i + 1: ("127.0.0.1", port) for i, port in enumerate(ports)}

    async def start(nursery: trio.Nursery, node_id: int) -> tuple[KafkaRaftClient, SnapshotRecorder]:
        log = KafkaMetadataLog.open(tmp_path / f"n{node_id}")
        quorum = QuorumState(node_id, set(voters), FileQuorumStateStore(log.dir / QUORUM_STATE_FILE))
        recorder = SnapshotRecorder()
        client = KafkaRaftClient(RaftConfig(node_id=node_id, voters=voters, election_timeout_ms=300,
                                            election_backoff_max_ms=300), log, quorum, recorder)
        await nursery.start(client.run)
        await nursery.start(RaftServer(client).serve, "127.0.0.1", voters[node_id][1])
        return client, recorder

    async with trio.open_nursery() as nursery:
        first_two = [await start(nursery, 1), await start(nursery, 2)]  # 2 of 3: a majority
        leader = await _leader([c for c, _ in first_two])
        for _ in range(10):
            last = leader.append([mr.NoOpRecord()])
        with trio.fail_after(60):
            while leader.high_watermark <= last:
                await trio.sleep(0.05)
        state = [mr.FeatureLevelRecord(name="metadata.version", feature_level=21)]
        snapshot_id = leader.create_snapshot(last + 1, state)
        assert leader.log.start_offset == last + 1 and snapshot_id == SnapshotId(last + 1, leader.quorum.epoch)
        after = leader.append([mr.NoOpRecord(), mr.NoOpRecord()])
        late, recorder = await start(nursery, 3)  # an empty log: offset 0 is below the leader's log start
        with trio.fail_after(60):
            while not (recorder.batches and recorder.batches[-1].last_offset >= after):
                await trio.sleep(0.05)
        assert [sid for sid, _ in recorder.snapshots] == [snapshot_id]
        assert [r.message for r in recorder.snapshots[0][1].records] == state
        assert recorder.batches[0].base_offset == snapshot_id.end_offset  # nothing below the snapshot replayed
        assert late.log.start_offset == snapshot_id.end_offset and late.log.end_offset == after + 1
        name = snapshot_id.file_name
        assert (late.log.dir / name).read_bytes() == (leader.log.dir / name).read_bytes()
        nursery.cancel_scope.cancel()
