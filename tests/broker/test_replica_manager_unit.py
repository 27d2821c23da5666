"""ReplicaManager built from real objects, without a broker process: a KafkaConfig, a LogManager
on tmp_path, a MetadataCache, the KafkaZkClient of a real ZooKeeper session (topic configs are
read from it) and a trio nursery. The control-plane seam is driven with its records
(ReplicaStateChange, StopReplicaPartition), as either control plane would; the request
translation of KafkaApis (LeaderAndIsr / StopReplica -> records -> response) is checked on its
own."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from kafkalike.broker.delayed_fetch import FetchPartitionInfo
from kafkalike.broker.kafka_apis import leader_and_isr_changes, leader_and_isr_response, stop_replica_partitions
from kafkalike.broker.metadata_cache import MetadataCache
from kafkalike.broker.partition import PartitionState
from kafkalike.broker.replica_fetcher import BrokerEndpoint
from kafkalike.broker.replica_manager import (ReplicaManager, ReplicaStateChange, StopReplicaPartition,
                                              StopReplicaResult)
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination.kafka_zk_client import KafkaZkClient
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.leader_and_isr import (LeaderAndIsrPartitionState, LeaderAndIsrRequest,
                                               LeaderAndIsrTopicState)
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from kafkalike.protocol.stop_replica import (StopReplicaPartitionState, StopReplicaRequest,
                                             StopReplicaTopicState)
from kafkalike.storage import TopicPartition
from kafkalike.storage.log_manager import DELETE_DIR_SUFFIX, LogManager
from tests.broker.broker_helpers import make_config

TP = TopicPartition("unit", 0)
ME = 1


@asynccontextmanager
async def replica_manager(tmp_path: Path, zk_client: ZooKeeperClient) -> AsyncIterator[ReplicaManager]:
    """A ReplicaManager of broker 1 over a started LogManager in tmp_path; shut down (fetchers
    stopped, HWs checkpointed), its tasks cancelled and its logs closed when the block ends."""
    config = make_config(tmp_path, "127.0.0.1:1/unused", broker_id=ME)
    log_manager = LogManager(config.log_dirs)
    log_manager.startup(broker_id=ME, cluster_id="unit-cluster")
    try:
        async with trio.open_nursery() as nursery:
            rm = ReplicaManager(config, ME, log_manager, MetadataCache(broker_id=ME), KafkaZkClient(zk_client),
                                nursery, broker_epoch=lambda: 10)
            try:
                yield rm
            finally:
                with trio.CancelScope(shield=True):
                    await rm.shutdown()
                nursery.cancel_scope.cancel()
    finally:
        log_manager.shutdown()


def state(leader: int, leader_epoch: int, isr: tuple[int, ...] = (1, 2),
          replicas: tuple[int, ...] = (1, 2)) -> PartitionState:
    return PartitionState(leader=leader, leader_epoch=leader_epoch, isr=isr, replicas=replicas,
                          partition_epoch=0, controller_epoch=1)


def records(n: int) -> memoryview:
    return memoryview(bytearray(build_batch([SimpleRecord(value=b"v%d" % i) for i in range(n)])))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_new_leader_appends_and_its_high_watermark_follows_the_follower_fetches(
        tmp_path: Path, zk_client: ZooKeeperClient) -> None:
    async with replica_manager(tmp_path, zk_client) as rm:
        errors = await rm.become_leader_or_follower([ReplicaStateChange(TP, None, state(ME, 0))], {})
        assert errors == {TP: ErrorCode.none}
        p = rm.partitions[TP]
        assert p.is_leader and p.leader_epoch == 0 and rm.log_manager.get_log(TP) is p.log

        statuses = await rm.append_records(1, 1000, [(TP, records(3))])
        assert statuses[TP].error == ErrorCode.none and statuses[TP].base_offset == 0
        assert p.log_end_offset == 3 and p.high_watermark == 0  # follower 2 (in the ISR) has nothing yet

        async def follower_fetch(offset: int) -> None:
            data = await rm.fetch_messages(2, 0, 0, 1 << 20, 0, [FetchPartitionInfo(TP, offset, 1 << 20, 0, 0)])
            assert data[0].error == ErrorCode.none

        await follower_fetch(0)
        assert p.high_watermark == 0
        await follower_fetch(2)
        assert p.high_watermark == 2
        await follower_fetch(3)
        assert p.high_watermark == 3
        consumer = await rm.fetch_messages(-1, 0, 0, 1 << 20, 0, [FetchPartitionInfo(TP, 0, 1 << 20)])
        assert consumer[0].high_watermark == 3 and consumer[0].size > 0


async def test_an_acks_all_produce_is_answered_once_the_follower_has_fetched_past_it(
        tmp_path: Path, zk_client: ZooKeeperClient) -> None:
    async with replica_manager(tmp_path, zk_client) as rm:
        await rm.become_leader_or_follower([ReplicaStateChange(TP, None, state(ME, 0))], {})
        answered: list[ErrorCode] = []

        async def produce() -> None:
            statuses = await rm.append_records(-1, 30_000, [(TP, records(2))])
            answered.append(statuses[TP].error)

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                while rm.produce_purgatory.delayed == 0:
                    await trio.sleep(0.01)
                assert answered == []
                await rm.fetch_messages(2, 0, 0, 1 << 20, 0, [FetchPartitionInfo(TP, 2, 1 << 20, 0, 0)])
        assert answered == [ErrorCode.none]
        assert rm.partitions[TP].high_watermark == 2


async def test_a_stale_leader_epoch_or_a_foreign_partition_is_refused_per_partition(
        tmp_path: Path, zk_client: ZooKeeperClient) -> None:
    other = TopicPartition("unit", 1)
    async with replica_manager(tmp_path, zk_client) as rm:
        await rm.become_leader_or_follower([ReplicaStateChange(TP, None, state(ME, 3))], {})
        errors = await rm.become_leader_or_follower([
            ReplicaStateChange(TP, None, state(ME, 3)),
            ReplicaStateChange(other, None, state(2, 0, isr=(2, 3), replicas=(2, 3)))], {})
        assert errors == {TP: ErrorCode.stale_controller_epoch, other: ErrorCode.unknown_topic_or_partition}
        assert other not in rm.partitions and rm.log_manager.get_log(other) is None


async def test_a_leader_that_becomes_follower_fetches_from_the_new_leader_and_refuses_produce(
        tmp_path: Path, zk_client: ZooKeeperClient) -> None:
    async with replica_manager(tmp_path, zk_client) as rm:
        await rm.become_leader_or_follower([ReplicaStateChange(TP, None, state(ME, 0))], {})
        await rm.append_records(1, 1000, [(TP, records(1))])
        leader = BrokerEndpoint(2, "127.0.0.1", closed_port())
        errors = await rm.become_leader_or_follower([ReplicaStateChange(TP, None, state(2, 1))], {2: leader})
        assert errors == {TP: ErrorCode.none}
        p = rm.partitions[TP]
        assert not p.is_leader and p.leader_id == 2 and p.leader_epoch == 1
        fetcher = rm.fetcher_manager.fetchers[2]
        assert (fetcher.host, fetcher.port) == (leader.host, leader.port) and TP in fetcher.partitions
        statuses = await rm.append_records(1, 1000, [(TP, records(1))])
        assert statuses[TP].error == ErrorCode.not_leader_or_follower

        await rm.become_leader_or_follower([ReplicaStateChange(TP, None, state(ME, 2))], {})
        assert rm.partitions[TP].is_leader and 2 not in rm.fetcher_manager.fetchers


async def test_stop_replica_with_delete_drops_the_partition_and_renames_its_log_dir(
        tmp_path: Path, zk_client: ZooKeeperClient) -> None:
    async with replica_manager(tmp_path, zk_client) as rm:
        await rm.become_leader_or_follower([ReplicaStateChange(TP, None, state(ME, 5))], {})
        await rm.append_records(1, 1000, [(TP, records(2))])
        log_dir = rm.partitions[TP].log.dir

        fenced = await rm.stop_replicas([StopReplicaPartition(TP, leader_epoch=4, delete=True)])
        assert fenced == [StopReplicaResult(TP, ErrorCode.fenced_leader_epoch)]
        assert TP in rm.partitions and log_dir.exists()

        stopped = await rm.stop_replicas([StopReplicaPartition(TP, leader_epoch=5, delete=True)])
        assert stopped == [StopReplicaResult(TP, ErrorCode.none)]
        assert TP not in rm.partitions and rm.log_manager.get_log(TP) is None
        assert not log_dir.exists()
        assert [d.name for d in log_dir.parent.iterdir() if d.name.endswith(DELETE_DIR_SUFFIX)] != []
        statuses = await rm.append_records(1, 1000, [(TP, records(1))])
        assert statuses[TP].error == ErrorCode.unknown_topic_or_partition


def test_leader_and_isr_is_translated_into_state_changes_and_answered_in_each_layout() -> None:
    topic_id = uuid.uuid4()
    parts = tuple(LeaderAndIsrPartitionState(
        topic_name="t", partition_index=i, controller_epoch=7, leader=1, leader_epoch=4 + i, isr=(1, 2),
        zk_version=9, replicas=(1, 2), adding_replicas=(), removing_replicas=(), is_new=False) for i in range(2))
    v6 = LeaderAndIsrRequest(controller_id=3, controller_epoch=7, broker_epoch=10, ungrouped_partition_states=(),
                             topic_states=(LeaderAndIsrTopicState(topic_name="t", topic_id=topic_id,
                                                                  partition_states=parts),),
                             live_leaders=())
    changes = leader_and_isr_changes(6, v6)
    assert changes == [ReplicaStateChange(TopicPartition("t", i), topic_id,
                                          PartitionState(leader=1, leader_epoch=4 + i, isr=(1, 2), replicas=(1, 2),
                                                         partition_epoch=9, controller_epoch=7)) for i in range(2)]
    errors = {TopicPartition("t", 0): ErrorCode.none, TopicPartition("t", 1): ErrorCode.stale_controller_epoch}
    answer = leader_and_isr_response(6, v6, errors)
    assert answer.topics[0].topic_id == topic_id
    assert [(e.partition_index, e.error_code) for e in answer.topics[0].partition_errors] == [(0, 0), (1, 11)]

    v1 = LeaderAndIsrRequest(controller_id=3, controller_epoch=7, ungrouped_partition_states=parts,
                             topic_states=(), live_leaders=())
    assert [c.topic_id for c in leader_and_isr_changes(1, v1)] == [None, None]
    old = leader_and_isr_response(1, v1, errors)
    assert [(e.topic_name, e.partition_index, e.error_code) for e in old.partition_errors] == [
        ("t", 0, 0), ("t", 1, 11)]


def test_stop_replica_v3_carries_each_partition_leader_epoch_and_delete_flag() -> None:
    request = StopReplicaRequest(controller_id=3, controller_epoch=7, broker_epoch=10, topic_states=(
        StopReplicaTopicState(topic_name="t", partition_states=(
            StopReplicaPartitionState(partition_index=0, leader_epoch=-2, delete_partition=True),
            StopReplicaPartitionState(partition_index=1, leader_epoch=4, delete_partition=False))),))
    assert stop_replica_partitions(3, request) == [
        StopReplicaPartition(TopicPartition("t", 0), -2, True), StopReplicaPartition(TopicPartition("t", 1), 4, False)]
