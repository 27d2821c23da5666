"""KRaftMetadataCache: the broker's metadata cache fed by metadata images (Kafka's
KRaftMetadataCache) answers the queries KafkaApis makes of the ZooKeeper-mode cache."""

from __future__ import annotations

import uuid

from kafkalike.broker.kraft_metadata_cache import KRaftMetadataCache
from kafkalike.coordination.zk_data import TopicPartition
from kafkalike.image import MetadataDelta, MetadataImage, MetadataProvenance
from kafkalike.protocol import metadata_records as mr

FOO = uuid.UUID(int=0xF00)
BAR = uuid.UUID(int=0xBA2)


def register(broker_id: int, fenced: bool) -> mr.RegisterBrokerRecord:
    return mr.RegisterBrokerRecord(
        broker_id=broker_id, is_migrating_zk_broker=False, incarnation_id=uuid.UUID(int=broker_id),
        broker_epoch=broker_id * 10, end_points=(mr.BrokerEndpoint("PLAINTEXT", "127.0.0.1", 9090 + broker_id, 0),),
        features=(), rack=f"r{broker_id}", fenced=fenced, in_controlled_shutdown=False, log_dirs=())


def partition(topic_id: uuid.UUID, pid: int, replicas: tuple[int, ...]) -> mr.PartitionRecord:
    return mr.PartitionRecord(partition_id=pid, topic_id=topic_id, replicas=replicas, isr=replicas,
                              removing_replicas=(), adding_replicas=(), leader=replicas[0], leader_epoch=0,
                              partition_epoch=0, directories=())


def step(cache: KRaftMetadataCache, *records: mr.ApiMessage) -> list[TopicPartition]:
    delta = MetadataDelta(cache.image)
    for r in records:
        delta.replay(r)
    return cache.update_from_image(delta, delta.apply(MetadataProvenance(cache.image.offset + len(records), 1, 0)))


def test_cache_shows_unfenced_brokers_topics_and_partitions_of_the_image() -> None:
    cache = KRaftMetadataCache(broker_id=1)
    assert cache.topics() == [] and cache.alive_broker_ids() == []
    step(cache, register(1, fenced=False), register(2, fenced=False), register(3, fenced=True),
         mr.TopicRecord("foo", FOO), partition(FOO, 0, (1, 2, 4)), partition(FOO, 1, (2, 1, 3)),
         mr.TopicRecord("bar", BAR), partition(BAR, 0, (2,)))
    assert cache.alive_broker_ids() == [1, 2]  # 3 is fenced
    assert cache.controller_id == 1
    assert cache.endpoint(2, "PLAINTEXT") == ("127.0.0.1", 9092) and cache.endpoint(3, "PLAINTEXT") is None
    assert cache.topics() == ["bar", "foo"] and cache.topic_ids["foo"] == FOO
    p = cache.partition(TopicPartition("foo", 0))
    assert (p.leader, p.isr, p.replicas, p.offline_replicas) == (1, (1, 2, 4), (1, 2, 4), (4,))
    snapshot = cache.snapshot(["foo", "nope"])
    assert list(snapshot.topics) == ["foo"] and sorted(snapshot.topics["foo"]) == [0, 1]

    # a leader change, a fencing, a deletion: only foo's map and the brokers change
    before_bar = cache._by_topic["bar"]
    deleted = step(cache, mr.PartitionChangeRecord(partition_id=1, topic_id=FOO, leader=1, isr=(1,)),
                   mr.BrokerRegistrationChangeRecord(broker_id=2, broker_epoch=20, fenced=1, log_dirs=()),
                   mr.BrokerRegistrationChangeRecord(broker_id=3, broker_epoch=30, fenced=-1, log_dirs=()))
    assert deleted == []
    assert cache._by_topic["bar"] is before_bar
    p = cache.partition(TopicPartition("foo", 1))
    assert (p.leader, p.leader_epoch, p.isr, p.zk_version) == (1, 1, (1,), 1)
    assert cache.alive_broker_ids() == [1, 3]
    deleted = step(cache, mr.RemoveTopicRecord(BAR))
    assert deleted == [TopicPartition("bar", 0)]
    assert cache.topics() == ["foo"] and not cache.contains_topic("bar") and "bar" not in cache.topic_ids


def test_an_image_from_elsewhere_rebuilds_the_whole_cache() -> None:
    cache = KRaftMetadataCache(broker_id=1)
    step(cache, register(1, fenced=False), mr.TopicRecord("foo", FOO), partition(FOO, 0, (1,)))
    # a delta whose base is not the cache's image (e.g. after a snapshot load) rebuilds everything
    other = MetadataDelta(MetadataImage.EMPTY)
    for r in (register(1, fenced=False), mr.TopicRecord("bar", BAR), partition(BAR, 0, (1,))):
        other.replay(r)
    deleted = cache.update_from_image(other, other.apply(MetadataProvenance(50, 2, 0)))
    assert deleted == [TopicPartition("foo", 0)]
    assert cache.topics() == ["bar"] and cache.image.offset == 50
