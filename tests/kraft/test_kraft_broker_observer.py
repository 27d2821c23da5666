"""A broker's Raft client as an observer of ``__cluster_metadata`` (KIP-595): not a voter, it never
stands for election; it finds the leader by asking any voter (NOT_LEADER_OR_FOLLOWER / FENCED answers
name the leader), fetches every committed batch in order, is listed by the leader's DescribeQuorum as
an observer, and follows a new leader after the old one is stopped. In one process, real sockets."""

from __future__ import annotations

from pathlib import Path

import attrs
import trio

from kafkalike.protocol import metadata_records as mr
from kafkalike.raft.kafka_metadata_log import KafkaMetadataLog
from kafkalike.raft.kafka_raft_client import KafkaRaftClient, RaftConfig, RaftServer
from kafkalike.raft.quorum_state import QUORUM_STATE_FILE, CandidateState, FileQuorumStateStore, QuorumState
from tests.raft.raft_helpers import Recorder, free_ports

OBSERVER_ID = 100


@attrs.define
class Node:
    client: KafkaRaftClient
    recorder: Recorder
    scope: trio.CancelScope


async def _start(nursery: trio.Nursery, tmp_path: Path, node_id: int, voters: dict[int, tuple[str, int]],
                 serve: bool) -> Node:
    log = KafkaMetadataLog.open(tmp_path / f"n{node_id}")
    quorum = QuorumState(node_id, set(voters), FileQuorumStateStore(log.dir / QUORUM_STATE_FILE))
    recorder = Recorder()
    client = KafkaRaftClient(RaftConfig(node_id=node_id, voters=voters, cluster_id="c1", election_timeout_ms=300,
                                        election_backoff_max_ms=300, fetch_timeout_ms=1000), log, quorum, recorder)
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            async with trio.open_nursery() as inner:
                await inner.start(client.run)
                if serve:
                    await inner.start(RaftServer(client).serve, "127.0.0.1", voters[node_id][1])
                task_status.started()
    await nursery.start(run)
    return Node(client, recorder, scope)


async def _settled_leader(voters: list[Node]) -> KafkaRaftClient:
    with trio.fail_after(60):
        while True:
            live = [n.client for n in voters if not n.scope.cancel_called]
            leaders = [c for c in live if c.quorum.is_leader()]
            if len(leaders) == 1 and leaders[0].high_watermark > 0 and all(
                    c.leader_and_epoch() == leaders[0].leader_and_epoch() for c in live):
                return leaders[0]
            await trio.sleep(0.05)


async def _wait_for_offset(recorder: Recorder, offset: int) -> None:
    with trio.fail_after(60):
        while not recorder.batches or recorder.batches[-1].last_offset < offset:
            await trio.sleep(0.05)


async def test_an_observer_finds_the_leader_fetches_in_order_and_follows_a_new_leader(tmp_path: Path) -> None:
    ports = free_ports(3)
    voters = {i + 1: ("127.0.0.1", port) for i, port in enumerate(ports)}
    async with trio.open_nursery() as nursery:
        nodes = [await _start(nursery, tmp_path, node_id, voters, serve=True) for node_id in voters]
        observer = await _start(nursery, tmp_path, OBSERVER_ID, voters, serve=False)
        assert not observer.client.quorum.is_voter
        leader = await _settled_leader(nodes)
        offsets = [leader.append([mr.NoOpRecord()]) for _ in range(5)]
        await _wait_for_offset(observer.recorder, offsets[-1])
        assert observer.recorder.data_offsets() == offsets
        assert observer.client.leader_and_epoch() == leader.leader_and_epoch()
        # the leader lists it as an observer (DescribeQuorum), with its fetched end offset
        with trio.fail_after(30):
            while not any(o.replica_id == OBSERVER_ID and o.end_offset > offsets[-1]
                          for o in leader.describe_quorum().observers):
                await trio.sleep(0.05)
        assert OBSERVER_ID not in {v.replica_id for v in leader.describe_quorum().voters}

        # the leader stops: the other two elect a new one; the observer finds and follows it
        old_epoch = leader.quorum.epoch
        next(n for n in nodes if n.client is leader).scope.cancel()
        new_leader = await _settled_leader(nodes)
        assert new_leader.quorum.epoch > old_epoch
        more = [new_leader.append([mr.NoOpRecord(), mr.NoOpRecord()]) for _ in range(3)]
        await _wait_for_offset(observer.recorder, more[-1])
        assert observer.recorder.data_offsets() == offsets + more
        assert observer.client.leader_and_epoch() == new_leader.leader_and_epoch()
        assert observer.recorder.leaders[-1] == new_leader.leader_and_epoch()
        # it never stood for election: no epoch of its own, never a candidate
        assert not isinstance(observer.client.quorum.state, CandidateState)
        assert observer.client.quorum.epoch == new_leader.quorum.epoch
        nursery.cancel_scope.cancel()
