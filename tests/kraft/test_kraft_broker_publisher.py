"""A KRaft broker's metadata loader and publisher driving a real ReplicaManager (LogManager on
tmp_path, no ZooKeeper) through the control-plane seam: committed batches of metadata records
become leaders, followers, ISR changes, deletions; the KRaft metadata cache, topic configs and the
coordinators' leadership listeners follow; a snapshot resynchronises and deletes stray replicas."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from kafkalike.broker.broker_metadata_publisher import BrokerMetadataPublisher, MetadataLoader
from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.kraft_metadata_cache import KRaftMetadataCache
from kafkalike.broker.replica_manager import ReplicaManager
from kafkalike.coordination.zk_data import TopicPartition
from kafkalike.protocol import metadata_records as mr
from kafkalike.raft.kafka_metadata_log import Batch
from kafkalike.storage.log_manager import LogManager
from kafkalike.storage.snapshots import Snapshot, SnapshotId

ME = 1
FOO = uuid.UUID(int=0xF00)
BAR = uuid.UUID(int=0xBA2)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register(broker_id: int) -> mr.RegisterBrokerRecord:
    return mr.RegisterBrokerRecord(
        broker_id=broker_id, is_migrating_zk_broker=False, incarnation_id=uuid.UUID(int=broker_id),
        broker_epoch=broker_id * 10, end_points=(mr.BrokerEndpoint("PLAINTEXT", "127.0.0.1", closed_port(), 0),),
        features=(), rack=None, fenced=False, in_controlled_shutdown=False, log_dirs=())


def partition(topic_id: uuid.UUID, pid: int, replicas: tuple[int, ...]) -> mr.PartitionRecord:
    return mr.PartitionRecord(partition_id=pid, topic_id=topic_id, replicas=replicas, isr=replicas,
                              removing_replicas=(), adding_replicas=(), leader=replicas[0], leader_epoch=0,
                              partition_epoch=0, directories=())


@attrs.define
class Broker:
    rm: ReplicaManager
    cache: KRaftMetadataCache
    loader: MetadataLoader
    publisher: BrokerMetadataPublisher
    log_manager: LogManager
    leadership_calls: list[int]
    deleted: list[TopicPartition]
    offset: int = -1

    async def commit(self, *records: mr.ApiMessage) -> None:
        """One committed batch holding ``records``, as the Raft client hands it over."""
        base = self.offset + 1
        self.offset = base + len(records) - 1
        self.loader.handle_commit(Batch(base, self.offset, 3, 1000, 0,
                                        records=tuple(mr.ApiMessageAndVersion(r, r.kafka_3_9_version)
                                                      for r in records)))
        with trio.fail_after(30):
            await self.loader.wait_for_offset(self.offset)


@asynccontextmanager
async def kraft_broker(tmp_path: Path) -> AsyncIterator[Broker]:
    config = KafkaConfig.from_mapping({"process.roles": "broker", "node.id": str(ME),
                                       "controller.quorum.voters": "9@127.0.0.1:1",
                                       "controller.listener.names": "CONTROLLER",
                                       "listeners": "PLAINTEXT://127.0.0.1:0",
                                       "log.dirs": str(tmp_path / "logs")})
    log_manager = LogManager(config.log_dirs)
    log_manager.startup(broker_id=ME, cluster_id="kraft-unit")
    try:
        async with trio.open_nursery() as nursery:
            cache = KRaftMetadataCache(broker_id=ME)
            no_zookeeper: Any = None  # KRaft: topic configs come from the image, no ISR write here
            rm = ReplicaManager(config, ME, log_manager, cache, no_zookeeper, nursery, broker_epoch=lambda: 10)
            calls: list[int] = []
            deleted: list[TopicPartition] = []

            async def on_deleted(tps: list[TopicPartition]) -> None:
                deleted.extend(tps)
            publisher = BrokerMetadataPublisher(ME, rm, cache, "PLAINTEXT",
                                                leadership_listeners=[lambda: calls.append(len(rm.partitions))],
                                                metadata_listeners=[on_deleted])
            loader = MetadataLoader([publisher])
            await nursery.start(loader.run)
            try:
                yield Broker(rm, cache, loader, publisher, log_manager, calls, deleted)
            finally:
                with trio.CancelScope(shield=True):
                    await rm.shutdown()
                nursery.cancel_scope.cancel()
    finally:
        log_manager.shutdown()


async def test_committed_records_make_leaders_followers_isr_changes_and_deletions(tmp_path: Path) -> None:
    foo0, foo1 = TopicPartition("foo", 0), TopicPartition("foo", 1)
    async with kraft_broker(tmp_path) as b:
        await b.commit(mr.FeatureLevelRecord("metadata.version", 21), register(1), register(2),
                       mr.TopicRecord("foo", FOO), partition(FOO, 0, (1, 2)), partition(FOO, 1, (2, 1)),
                       partition(FOO, 2, (2,)), mr.ConfigRecord(2, "foo", "retention.ms", "123456"))
        rm = b.rm
        assert set(rm.partitions) == {foo0, foo1}  # foo-2 has no replica here
        assert rm.partitions[foo0].is_leader and rm.partitions[foo0].leader_epoch == 0
        assert not rm.partitions[foo1].is_leader
        assert b.log_manager.topic_id(foo0) == FOO
        assert rm.topic_configs["foo"] == {"retention.ms": "123456"}
        assert rm.log_manager.get_log(foo0).config.retention_ms == 123456
        assert b.cache.topics() == ["foo"] and b.cache.partition(foo1).leader == 2
        assert b.leadership_calls == [2]

        # the controller shrinks foo-0's ISR (same leader epoch): the leader takes ISR and epoch
        await b.commit(mr.PartitionChangeRecord(partition_id=0, topic_id=FOO, isr=(1,)))
        p0 = rm.partitions[foo0]
        assert (p0.isr, p0.leader_epoch, p0.partition_epoch) == ((1,), 0, 1)

        # broker 2 fenced, this broker elected for foo-1: it leads it in leader epoch 1
        await b.commit(mr.BrokerRegistrationChangeRecord(broker_id=2, broker_epoch=20, fenced=1, log_dirs=()),
                       mr.PartitionChangeRecord(partition_id=1, topic_id=FOO, leader=1, isr=(1,)))
        assert rm.partitions[foo1].is_leader and rm.partitions[foo1].leader_epoch == 1
        assert b.cache.alive_broker_ids() == [1]

        # the topic is deleted: both replicas stop and their logs go
        await b.commit(mr.RemoveTopicRecord(FOO))
        assert rm.partitions == {} and b.log_manager.get_log(foo0) is None
        assert sorted(b.deleted) == [foo0, foo1, TopicPartition("foo", 2)]
        assert b.cache.topics() == []


async def test_a_snapshot_resynchronises_and_deletes_stray_replicas(tmp_path: Path) -> None:
    async with kraft_broker(tmp_path) as b:
        await b.commit(register(1), mr.TopicRecord("foo", FOO), partition(FOO, 0, (1,)),
                       mr.TopicRecord("bar", BAR), partition(BAR, 0, (1,)))
        assert set(b.rm.partitions) == {TopicPartition("foo", 0), TopicPartition("bar", 0)}
        # a snapshot in which bar was deleted and foo-0's leader changed epochs
        records = (register(1), mr.TopicRecord("foo", FOO),
                   attrs.evolve(partition(FOO, 0, (1,)), leader_epoch=4, partition_epoch=6))
        snapshot = Snapshot(mr.SnapshotHeaderRecord(0, 1000), tuple(mr.ApiMessageAndVersion(r, r.kafka_3_9_version)
                                                                     for r in records),
                            mr.SnapshotFooterRecord(0), 5)
        b.loader.handle_load_snapshot(SnapshotId(100, 5), snapshot)
        with trio.fail_after(30):
            await b.loader.wait_for_offset(99)
        assert set(b.rm.partitions) == {TopicPartition("foo", 0)}
        assert b.rm.partitions[TopicPartition("foo", 0)].leader_epoch == 4
        assert b.cache.topics() == ["foo"] and b.loader.image.offset == 99
