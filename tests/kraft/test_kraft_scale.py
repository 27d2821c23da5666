"""Large metadata operations on a KRaft controller (issue 21: one CreateTopics of 10,000 partitions
cost the quorum its leader).

A quorum of one voter runs in process: a real KafkaRaftClient on a real metadata log in
``tmp_path`` and a QuorumController, driven through the controller's operations (what
ControllerApis calls). Kafka 3.9's rules (QuorumController.appendRecords, MAX_RECORDS_PER_USER_OP)
and kafkalike's own: committed batches are decoded and replayed by tasks that let the rest of the
trio loop (Raft fetches, their timeouts) run between chunks of records.

With ``KAFKALIKE_SLOW``: the largest CreateTopics Kafka 3.9 accepts (9,999 partitions, RF 3: one
batch of 10,000 records, 1.2 MB) on three real controller processes, and the quorum keeps its
leader (Kafka's default controller.quorum.fetch.timeout.ms, 2,000 ms).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from kafkalike.client.messages import build_request
from kafkalike.kraft.controller_result import ControllerError
from kafkalike.kraft.quorum_controller import (EXCESSIVE_BATCH_MESSAGE, MAX_RECORDS_PER_USER_OP, QuorumController,
                                               QuorumControllerConfig)
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.records import decode_batches
from kafkalike.raft.kafka_metadata_log import KafkaMetadataLog
from kafkalike.raft.kafka_raft_client import KafkaRaftClient, RaftConfig
from kafkalike.raft.quorum_state import QUORUM_STATE_FILE, FileQuorumStateStore, QuorumState

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qg"
BROKER_REGISTRATION, BROKER_HEARTBEAT = 62, 63
BROKERS = (1, 2, 3)


@asynccontextmanager
async def one_voter_controller(tmp_path: Path, **config: Any) -> AsyncIterator[QuorumController]:
    """An active controller (node 3001, the only voter) with brokers 1-3 registered and unfenced."""
    metadata_log = KafkaMetadataLog.open(tmp_path / "metadata")
    quorum = QuorumState(3001, {3001}, FileQuorumStateStore(metadata_log.dir / QUORUM_STATE_FILE))
    raft = KafkaRaftClient(RaftConfig(node_id=3001, voters={3001: ("127.0.0.1", 9)}, cluster_id=CLUSTER_ID),
                           metadata_log, quorum)
    controller = QuorumController(raft, QuorumControllerConfig(
        cluster_id=CLUSTER_ID, idle_interval_ms=0, default_replication_factor=3,
        bootstrap_records=(mr.FeatureLevelRecord(name="metadata.version", feature_level=21),), **config))
    raft.listener = controller
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(controller.run)
            await nursery.start(raft.run)
            with trio.fail_after(60):
                while not (controller.is_active() and controller.features.metadata_version):
                    await trio.sleep(0.01)
                epochs = {}
                for b in BROKERS:
                    epochs[b] = await controller.register_broker(build_request(
                        BROKER_REGISTRATION, 4, broker_id=b, cluster_id=CLUSTER_ID, incarnation_id=uuid.uuid4(),
                        listeners=[{"name": "PLAINTEXT", "host": "127.0.0.1", "port": 19000 + b,
                                    "security_protocol": 0}],
                        features=[{"name": "metadata.version", "min_supported_version": 1,
                                   "max_supported_version": 21}],
                        rack=None, is_migrating_zk_broker=False, log_dirs=[uuid.uuid4()], previous_broker_epoch=-1), 4)
                while any(controller.cluster.registrations[b].fenced for b in BROKERS):
                    for b in BROKERS:
                        await heartbeat(controller, b, epochs[b])
                    await trio.sleep(0.01)
            yield controller
            nursery.cancel_scope.cancel()
    finally:
        metadata_log.close()


async def heartbeat(controller: QuorumController, broker_id: int, epoch: int, *, want_fence: bool = False) -> Any:
    return await controller.process_broker_heartbeat(build_request(
        BROKER_HEARTBEAT, 1, broker_id=broker_id, broker_epoch=epoch, current_metadata_offset=2**40,
        want_fence=want_fence, want_shut_down=False, offline_log_dirs=[]))


def create_request(name: str, partitions: int) -> Any:
    return build_request(ApiKey.CREATE_TOPICS, 7, topics=[{
        "name": name, "num_partitions": partitions, "replication_factor": 3, "assignments": [], "configs": []}],
        timeout=10000, validate_only=False).topics


def data_batches(controller: QuorumController) -> list[list[mr.ApiMessage]]:
    """The metadata records of each data batch in the controller's log, in order."""
    log = controller.raft.log
    out = []
    for batch in decode_batches(log.read(log.start_offset, 1 << 30)):
        if not batch.is_control:
            out.append([mr.deserialize_record(r.value or b"").message for r in batch.records])
    return out


async def test_create_topics_of_10000_partitions_is_refused_as_kafka_refuses_an_excessively_large_batch(
        tmp_path: Path) -> None:
    async with one_voter_controller(tmp_path) as controller:
        before = controller.raft.log.end_offset
        # 10,000 PartitionRecords and a TopicRecord: more than MAX_RECORDS_PER_USER_OP (10,000)
        with pytest.raises(ControllerError) as refused:
            await controller.create_topics(create_request("too-big", MAX_RECORDS_PER_USER_OP), False)
        assert refused.value.error == ErrorCode.policy_violation
        assert refused.value.message == EXCESSIVE_BATCH_MESSAGE
        assert "too-big" not in controller.replication.topics_by_name
        assert not any(isinstance(r, mr.TopicRecord) and r.name == "too-big"
                       for batch in data_batches(controller) for r in batch)
        assert controller.raft.log.end_offset == before
        # the controller goes on serving
        [created] = await controller.create_topics(create_request("fits", 10), False)
        assert created.error == ErrorCode.none


async def test_records_beyond_max_records_per_batch_are_appended_as_several_batches(tmp_path: Path) -> None:
    async with one_voter_controller(tmp_path, max_records_per_batch=50) as controller:
        [created] = await controller.create_topics(create_request("split", 120), False)
        assert created.error == ErrorCode.none
        # fencing broker 1 shrinks the ISR of all 120 partitions (RF 3 on 3 brokers): one
        # operation of 121 records, an internal (unbounded) one
        epoch = controller.cluster.registrations[1].epoch
        await heartbeat(controller, 1, epoch, want_fence=True)
        batches = data_batches(controller)
        assert max(len(b) for b in batches) == 50
        fence = [b for b in batches if any(isinstance(r, mr.PartitionChangeRecord) for r in b)]
        assert [len(b) for b in fence] == [50, 50, 21]
        topic = controller.replication.topics[controller.replication.topics_by_name["split"]]
        assert len(topic.parts) == 120
        assert all(1 not in p.isr for p in topic.parts.values())


async def test_a_large_committed_batch_is_replayed_in_chunks_that_let_other_tasks_run(tmp_path: Path) -> None:
    partitions = 2000
    async with one_voter_controller(tmp_path) as controller:
        partial_views = 0
        done = trio.Event()

        async def watch() -> None:
            # what another task on the loop (the Raft fetch loop, its timers) sees while the
            # batch of 2,001 records is replayed
            nonlocal partial_views
            while not done.is_set():
                topic_id = controller.replication.topics_by_name.get("replayed")
                if topic_id is not None and 0 < len(controller.replication.topics[topic_id].parts) < partitions:
                    partial_views += 1
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            [created] = await controller.create_topics(create_request("replayed", partitions), False)
            done.set()
        assert created.error == ErrorCode.none
        assert [len(b) for b in data_batches(controller) if any(isinstance(r, mr.TopicRecord) and r.name == "replayed"
                                                                  for r in b)] == [partitions + 1]
        # replayed in one go, no other task would ever see the topic half there
        assert partial_views >= 5


def test_the_metadata_log_takes_a_batch_of_10000_partition_records(tmp_path: Path) -> None:
    # 1.2 MB: above the 1 MiB max.message.bytes of an ordinary log; Kafka's metadata log allows
    # its Raft client's 8 MiB batches
    records = [mr.PartitionRecord(partition_id=i, topic_id=uuid.UUID(int=7), replicas=(1, 2, 3), isr=(1, 2, 3),
                                  removing_replicas=(), adding_replicas=(), leader=1, leader_epoch=0,
                                  partition_epoch=0, directories=tuple(uuid.UUID(int=b) for b in (1, 2, 3)))
               for i in range(MAX_RECORDS_PER_USER_OP)]
    batch = mr.build_metadata_batch(records, epoch=1, append_time_ms=0)
    assert len(batch) > 1048588
    leader, follower = KafkaMetadataLog.open(tmp_path / "leader"), KafkaMetadataLog.open(tmp_path / "follower")
    try:
        assert leader.append_as_leader(batch, 1) == (0, MAX_RECORDS_PER_USER_OP - 1)
        assert follower.append_as_follower(leader.read(0, 8 << 20)) == MAX_RECORDS_PER_USER_OP
    finally:
        leader.close()
        follower.close()


@pytest.mark.skipif(not os.environ.get("KAFKALIKE_SLOW"), reason="KAFKALIKE_SLOW: 3 controller processes, ~1-3 min")
async def test_the_largest_create_topics_kafka_accepts_keeps_the_quorum_leader(tmp_path: Path) -> None:
    from tests.kraft.kraft_helpers import DrivenBroker, active_controller, controller_quorum, heartbeat_until, send
    from tests.raft.raft_helpers import RaftNode, leader_of

    with controller_quorum(tmp_path) as controllers:  # Kafka's defaults: fetch timeout 2,000 ms
        leader = await active_controller(controllers)
        nodes: list[RaftNode] = list(controllers)
        brokers = [DrivenBroker(i) for i in BROKERS]
        for b in brokers:
            assert (await b.register(leader)).error_code == ErrorCode.none
        await heartbeat_until(leader, brokers, offset=2**40, fenced=False)
        _, before = await leader_of(nodes, min_epoch=1)
        r = await send(leader, build_request(ApiKey.CREATE_TOPICS, 7, topics=[{
            "name": "largest", "num_partitions": MAX_RECORDS_PER_USER_OP - 1, "replication_factor": 3,
            "assignments": [], "configs": []}], timeout=60000, validate_only=False), timeout_s=120)
        assert r.topics[0].error_code == ErrorCode.none
        # every voter replays the batch of 10,000 records; none stops hearing from the leader
        await trio.sleep(5)
        assert not [n.node_id for n in nodes if n.events("raft_fetch_timeout")]
        _, after = await leader_of(nodes, min_epoch=1)
        assert (after.leader_id, after.epoch) == (before.leader_id, before.epoch)
        # every voter's log holds the batch of 10,000 records
        assert after.high_watermark > before.high_watermark + MAX_RECORDS_PER_USER_OP - 1
