"""Three Raft voters as real processes on loopback (``python -m kafkalike.raft.node``, appending a
NoOpRecord batch every 100 ms while leader): one leader is elected and its first batch is the
LeaderChange; appends commit only once a majority holds them; kill -9 of the leader elects a new
one in a higher epoch with nothing committed lost; SIGTERM makes the leader resign and name its
successor; a leader cut off from the majority resigns; all three killed and restarted keep their
log and move to a higher epoch; a voter that lost its disk catches up from the leader's snapshot
(FetchSnapshot); a follower with a divergent tail truncates it.
A voter answers ApiVersions and DescribeCluster (controller endpoints, KIP-919). With
KAFKALIKE_KAFKA_LIB set, Kafka 3.9's DumpLogSegments --cluster-metadata-decoder reads a voter's log
and kafka-metadata-quorum.sh describe --status / --replication (MetadataQuorumCommand with
--bootstrap-controller) describes the quorum."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

from kafkalike.client.connection import KafkaConnection
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.raft.kafka_metadata_log import KafkaMetadataLog
from kafkalike.raft.quorum_state import QUORUM_STATE_FILE, ElectionState, FileQuorumStateStore
from kafkalike.storage.snapshots import SnapshotId
from tests.raft.raft_helpers import RaftNode, describe, leader_of, raft_cluster, wait_for

LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)


def _data_prefix(node: RaftNode, below: int) -> list[tuple[int, int, bytes]]:
    """(base offset, epoch, bytes) of every batch of ``node`` that ends below offset ``below``."""
    return [(b.base_offset, b.partition_leader_epoch, bytes(repr(b.records), "utf-8"))
            for b in node.batches() if b.base_offset + b.last_offset_delta < below]


async def test_three_voters_elect_one_leader_whose_first_batch_is_leader_change(tmp_path: Path) -> None:
    with raft_cluster(tmp_path) as nodes:
        leader, quorum = await leader_of(nodes, min_epoch=1, min_hw=5)
        followers = [n for n in nodes if n is not leader]
        # every voter holds the leader's epoch in its quorum-state file
        for node in nodes:
            stored = FileQuorumStateStore(node.dir / "__cluster_metadata-0" / QUORUM_STATE_FILE).read_election_state()
            assert stored is not None and stored.leader_id == leader.node_id and stored.epoch == quorum.epoch
        # the leader's epoch begins with a LeaderChange control batch naming it and the voters
        first = [b for b in leader.batches() if b.partition_leader_epoch == quorum.epoch][0]
        assert first.is_control
        change = mr.parse_control_record(first.records[0].key, first.records[0].value)
        assert isinstance(change, mr.LeaderChangeMessage) and change.leader_id == leader.node_id
        assert change.voters == (mr.Voter(1), mr.Voter(2), mr.Voter(3))
        assert leader.node_id in {v.voter_id for v in change.granting_voters} and len(change.granting_voters) >= 2
        # followers commit what the leader committed, byte for byte
        hw = quorum.high_watermark

        async def followers_committed() -> bool:
            return all(any(e.get("last_offset", -1) >= hw - 1 for e in f.events("committed")) for f in followers)
        await wait_for(followers_committed, f"followers to commit up to {hw}")
        for follower in followers:
            assert _data_prefix(follower, hw) == _data_prefix(leader, hw)
        assert all(b.partition_leader_epoch == quorum.epoch for b in leader.batches()
                   if b.base_offset >= first.base_offset)


async def test_appends_commit_only_once_a_majority_has_fetched_them(tmp_path: Path) -> None:
    # a long fetch timeout: the leader must not resign (check-quorum) while both followers are paused
    with raft_cluster(tmp_path, args=("--fetch-timeout-ms", "60000")) as nodes:
        leader, _ = await leader_of(nodes, min_epoch=1, min_hw=3)
        followers = [n for n in nodes if n is not leader]
        for follower in followers:
            follower.pause()
        await trio.sleep(1.0)  # fetches in flight finish
        frozen = await describe(leader)
        assert frozen is not None and frozen.error == ErrorCode.none

        async def leader_appended_more() -> int | None:
            q = await describe(leader)
            assert q is not None and q.error == ErrorCode.none
            assert q.high_watermark == frozen.high_watermark, "high watermark moved without a majority"
            return q.voters[leader.node_id] if q.voters[leader.node_id] >= frozen.high_watermark + 5 else None
        leader_end = await wait_for(leader_appended_more, "the leader to append 5 NoOps alone")
        followers[0].resume()  # two of three: a majority again

        async def committed_past() -> bool:
            q = await describe(leader)
            return q is not None and q.high_watermark >= leader_end
        await wait_for(committed_past, f"the high watermark to pass {leader_end}")
        followers[1].resume()


async def test_kill_9_of_the_leader_elects_a_new_leader_and_keeps_what_was_committed(tmp_path: Path) -> None:
    with raft_cluster(tmp_path) as nodes:
        old, before = await leader_of(nodes, min_epoch=1, min_hw=10)
        old.kill9()
        committed = _data_prefix(old, before.high_watermark)
        survivors = [n for n in nodes if n is not old]
        new, after = await leader_of(survivors, min_epoch=before.epoch + 1, min_hw=before.high_watermark + 1)
        assert new is not old and after.epoch > before.epoch
        assert _data_prefix(new, before.high_watermark) == committed  # nothing committed lost
        change = [b for b in new.batches() if b.partition_leader_epoch == after.epoch][0]
        assert change.is_control and mr.parse_control_record(change.records[0].key, change.records[0].value) \
            .leader_id == new.node_id
        # the old leader comes back as a follower of the new epoch and converges on the new log
        old.start()

        async def old_caught_up() -> bool:
            q = await describe(new)
            return q is not None and q.voters.get(old.node_id, -1) >= after.high_watermark
        await wait_for(old_caught_up, "the restarted old leader to catch up")
        assert _data_prefix(old, after.high_watermark) == _data_prefix(new, after.high_watermark)


async def test_a_stopped_leader_resigns_and_names_its_successor(tmp_path: Path) -> None:
    with raft_cluster(tmp_path) as nodes:
        old, before = await leader_of(nodes, min_epoch=1, min_hw=5)
        old.stop()  # SIGTERM: resign, EndQuorumEpoch to the others
        assert old.process is not None and old.process.returncode == 0
        assert [e["new"] for e in old.events("quorum_state_changed")][-1] == f"Resigned@{before.epoch}"
        survivors = [n for n in nodes if n is not old]
        new, after = await leader_of(survivors, min_epoch=before.epoch + 1)
        # the first preferred successor stands at once (no fetch timeout to wait for)
        told = {n.node_id: [e for e in n.events("raft_leader_resigned") if e["epoch"] == before.epoch]
                for n in survivors}
        assert sorted(e[0]["election_in_ms"] for e in told.values() if e)[0] == 0


async def test_a_leader_cut_off_from_the_majority_resigns(tmp_path: Path) -> None:
    with raft_cluster(tmp_path) as nodes:
        leader, before = await leader_of(nodes, min_epoch=1, min_hw=5)
        followers = [n for n in nodes if n is not leader]
        for follower in followers:
            follower.pause()

        async def resigned() -> bool:
            q = await describe(leader)
            return q is not None and q.error == ErrorCode.not_leader_or_follower
        await wait_for(resigned, "the leader to resign without Fetches from a majority")
        assert leader.events("raft_leader_lost_quorum")
        for follower in followers:
            follower.resume()
        new, after = await leader_of(nodes, min_epoch=before.epoch + 1)

        async def all_caught_up() -> bool:
            q = await describe(new)
            return q is not None and all(q.voters.get(n.node_id, -1) >= after.high_watermark for n in nodes)
        await wait_for(all_caught_up, "every voter to reach the new high watermark")
        # the lone leader's appends after the pause were never committed: whether the new leader
        # kept them (it may be the old one, its log was the longest) or not, all logs now agree
        assert _data_prefix(leader, after.high_watermark) == _data_prefix(new, after.high_watermark)
        assert all(_data_prefix(f, after.high_watermark) == _data_prefix(new, after.high_watermark) for f in followers)


async def test_a_quorum_restarted_whole_keeps_its_log_and_moves_to_a_higher_epoch(tmp_path: Path) -> None:
    with raft_cluster(tmp_path) as nodes:
        old, before = await leader_of(nodes, min_epoch=1, min_hw=5)
        for node in nodes:
            node.kill9()
        committed = _data_prefix(old, before.high_watermark)  # a lagging follower may hold less
        for node in nodes:
            node.start()
        new, after = await leader_of(nodes, min_epoch=before.epoch + 1, min_hw=before.high_watermark + 1)
        # each voter came back from its quorum-state file (no epoch reused) and lost nothing committed
        for node in nodes:
            restarted = node.events("quorum_state_initialized")[-1]
            assert restarted["epoch"] >= before.epoch
        assert _data_prefix(new, before.high_watermark) == committed


async def test_a_voter_that_lost_its_disk_catches_up_from_the_leaders_snapshot(tmp_path: Path) -> None:
    with raft_cluster(tmp_path, args=("--snapshot-every", "20")) as nodes:
        leader, _ = await leader_of(nodes, min_epoch=1, min_hw=5)

        async def leader_snapshotted() -> int | None:
            created = leader.events("raft_snapshot_created")
            return created[-1]["log_start_offset"] if created and created[-1]["log_start_offset"] > 0 else None
        log_start = await wait_for(leader_snapshotted, "the leader to snapshot and move its log start")
        lost = next(n for n in nodes if n is not leader)
        lost.kill9()
        shutil.rmtree(lost.dir)  # a new, empty disk: its fetch offset 0 is below the leader's log start
        lost.dir.mkdir()
        lost.start()

        async def installed() -> dict | None:
            events = lost.events("raft_snapshot_installed")
            return events[0] if events else None
        event = await wait_for(installed, "the wiped voter to fetch and install a snapshot")
        assert event["end_offset"] >= log_start
        assert (lost.dir / "__cluster_metadata-0" / SnapshotId(event["end_offset"], event["epoch"]).file_name).exists()
        now = await describe(leader)
        assert now is not None

        async def caught_up() -> bool:
            q = await describe(leader)
            return q is not None and q.voters.get(lost.node_id, -1) >= now.high_watermark
        await wait_for(caught_up, "the wiped voter to catch up after the snapshot")
        above = [b for b in _data_prefix(leader, now.high_watermark) if b[0] >= event["end_offset"]]
        # the wiped voter snapshots too (--snapshot-every): under load it may already have dropped
        # the start of what it fetched; what it keeps is the leader's batches from there
        kept = [b for b in _data_prefix(lost, now.high_watermark) if b[0] >= event["end_offset"]]
        assert above and kept and kept == [b for b in above if b[0] >= kept[0][0]]
        assert all(b.base_offset >= event["end_offset"] for b in lost.batches())  # nothing below it was fetched


def _write_log(node: RaftNode, epochs: list[tuple[int, int, int]]) -> None:
    """A metadata log of (epoch, leader, NoOp batches) runs, each led by a LeaderChange batch."""
    log = KafkaMetadataLog.open(node.dir)
    for epoch, leader, count in epochs:
        change = mr.LeaderChangeMessage(version=0, leader_id=leader, voters=(mr.Voter(1), mr.Voter(2),
                                        mr.Voter(3)), granting_voters=(mr.Voter(leader),))
        log.append_as_leader(mr.build_control_batch(change, epoch=epoch, append_time_ms=1_700_000_000_000), epoch)
        for _ in range(count):
            log.append_as_leader(mr.build_metadata_batch([mr.NoOpRecord()], epoch=epoch,
                                                         append_time_ms=1_700_000_000_000), epoch)
    log.close()


def _divergent_history(nodes: list[RaftNode]) -> None:
    # offsets 0-5 in epoch 1 everywhere; node 1 then led epoch 2 alone (6-9, never committed) while
    # nodes 2 and 3 went on in epoch 3 (6-7, committed: a majority holds it)
    n1, n2, n3 = nodes
    _write_log(n1, [(1, 1, 5), (2, 1, 3)])
    _write_log(n2, [(1, 1, 5), (3, 2, 1)])
    _write_log(n3, [(1, 1, 5), (3, 2, 1)])
    voters = (1, 2, 3)
    FileQuorumStateStore(n1.dir / "__cluster_metadata-0" / QUORUM_STATE_FILE).write_election_state(
        ElectionState(2, leader_id=1, voters=voters))
    for n in (n2, n3):
        FileQuorumStateStore(n.dir / "__cluster_metadata-0" / QUORUM_STATE_FILE).write_election_state(
            ElectionState(3, leader_id=2, voters=voters))


async def test_a_follower_with_a_divergent_tail_truncates_it(tmp_path: Path) -> None:
    with raft_cluster(tmp_path, prepare=_divergent_history) as nodes:
        n1 = nodes[0]
        assert [b.partition_leader_epoch for b in n1.batches()][6:] == [2, 2, 2, 2]
        # node 1's log (epoch 2) is behind the others' (epoch 3): it cannot win, one of them leads
        leader, quorum = await leader_of(nodes, min_epoch=4, min_hw=12)
        assert leader is not n1

        async def truncated() -> list | None:
            events = n1.events("raft_log_truncated")
            return events or None
        events = await wait_for(truncated, "node 1 to truncate its divergent tail")
        assert events[0]["to_offset"] == 6 and events[0]["from_offset"] == 10 and events[0]["diverging_epoch"] == 1

        async def converged() -> bool:
            q = await describe(leader)
            return q is not None and q.voters.get(1, -1) >= quorum.high_watermark
        await wait_for(converged, "node 1 to catch up")
        assert _data_prefix(n1, quorum.high_watermark) == _data_prefix(leader, quorum.high_watermark)
        assert 2 not in {b.partition_leader_epoch for b in n1.batches()}


async def test_a_voter_answers_api_versions_and_describe_cluster_as_a_controller(tmp_path: Path) -> None:
    with raft_cluster(tmp_path) as nodes:
        leader, _ = await leader_of(nodes, min_epoch=1)
        follower = next(n for n in nodes if n is not leader)
        async with KafkaConnection.open("127.0.0.1", follower.port) as conn:  # ApiVersions first
            assert conn.broker_versions[ApiKey.VOTE] == (0, 0)
            assert conn.broker_versions[ApiKey.DESCRIBE_QUORUM] == (0, 1)
            assert ApiKey.PRODUCE not in conn.broker_versions
            answer = await conn.call(ApiKey.DESCRIBE_CLUSTER, include_cluster_authorized_operations=False,
                                     endpoint_type=2)
            assert answer.error_code == ErrorCode.none and answer.endpoint_type == 2
            assert answer.controller_id == leader.node_id
            assert sorted((b.broker_id, b.port) for b in answer.brokers) == sorted((n.node_id, n.port) for n in nodes)
            refused = await conn.call(ApiKey.DESCRIBE_CLUSTER, include_cluster_authorized_operations=False,
                                      endpoint_type=1)
            assert refused.error_code == ErrorCode.unsupported_endpoint_type


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars) and java")
async def test_kafka_metadata_quorum_describes_the_quorum(tmp_path: Path) -> None:
    with raft_cluster(tmp_path, args=("--cluster-id", "MkU3OEVBNTcwNTJENDM2Qk")) as nodes:
        leader, _ = await leader_of(nodes, min_epoch=1, min_hw=5)
        follower = next(n for n in nodes if n is not leader)

        def tool(*args: str) -> str:
            out = subprocess.run(["java", "-cp", f"{LIB}/*", "org.apache.kafka.tools.MetadataQuorumCommand",
                                  "--bootstrap-controller", f"127.0.0.1:{follower.port}", "describe", *args],
                                 capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stdout + out.stderr
            return out.stdout
        status = await trio.to_thread.run_sync(tool, "--status")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        assert fields["ClusterId"].strip() == "MkU3OEVBNTcwNTJENDM2Qk"
        assert int(fields["LeaderId"]) == leader.node_id
        assert int(fields["HighWatermark"]) >= 5
        assert '"id": 1' in fields["CurrentVoters"] and '"id": 3' in fields["CurrentVoters"]
        replication = await trio.to_thread.run_sync(tool, "--replication")
        rows = [line.split() for line in replication.splitlines()[1:] if line.strip()]
        assert sorted((int(r[0]), r[-1]) for r in rows) == sorted(
            (n.node_id, "Leader" if n is leader else "Follower") for n in nodes)


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars) and java")
async def test_kafka_dump_log_segments_reads_a_voters_metadata_log(tmp_path: Path) -> None:
    with raft_cluster(tmp_path) as nodes:
        leader, _ = await leader_of(nodes, min_epoch=1, min_hw=5)
    out = subprocess.run(["java", "-cp", f"{LIB}/*", "kafka.tools.DumpLogSegments", "--cluster-metadata-decoder",
                          "--files", ",".join(map(str, leader.segments))], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    batches = leader.batches()
    assert out.stdout.count("isvalid: true") == len(batches) and "isvalid: false" not in out.stdout
    assert out.stdout.count("controlType: LEADER_CHANGE(2)") == sum(b.is_control for b in batches)
    assert '"type":"NO_OP_RECORD"' in out.stdout.replace(" ", "")
    assert "Exception" not in out.stdout + out.stderr
