"""MetadataDelta / MetadataImage (Kafka 3.9's org.apache.kafka.image): records replayed on an image,
the next image, and one broker's local replica changes (TopicsDelta.localChanges)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.image import MetadataDelta, MetadataImage, MetadataProvenance
from kafkalike.image.metadata_delta import MetadataReplayError
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.topic_partition import TopicPartition

FOO = uuid.UUID(int=0xF00)
BAR = uuid.UUID(int=0xBA2)


def register(broker_id: int, epoch: int = 10, fenced: bool = True) -> mr.RegisterBrokerRecord:
    return mr.RegisterBrokerRecord(
        broker_id=broker_id, is_migrating_zk_broker=False, incarnation_id=uuid.UUID(int=broker_id),
        broker_epoch=epoch, end_points=(mr.BrokerEndpoint("PLAINTEXT", "127.0.0.1", 9090 + broker_id, 0),),
        features=(mr.BrokerFeature("metadata.version", 1, 21),), rack=None, fenced=fenced,
        in_controlled_shutdown=False, log_dirs=())


def partition(topic_id: uuid.UUID, pid: int, replicas: tuple[int, ...], leader: int) -> mr.PartitionRecord:
    return mr.PartitionRecord(partition_id=pid, topic_id=topic_id, replicas=replicas, isr=replicas,
                              removing_replicas=(), adding_replicas=(), leader=leader, leader_epoch=0,
                              partition_epoch=0, directories=())


def image_of(*records: mr.ApiMessage, base: MetadataImage = MetadataImage.EMPTY, offset: int = 0) -> MetadataImage:
    delta = MetadataDelta(base)
    for r in records:
        delta.replay(r)
    return delta.apply(MetadataProvenance(offset, 1, 0))


def test_topic_and_partitions_are_found_by_name_and_id() -> None:
    image = image_of(mr.FeatureLevelRecord("metadata.version", 21), mr.TopicRecord("foo", FOO),
                     partition(FOO, 0, (1, 2, 3), 1), partition(FOO, 1, (2, 3, 1), 2))
    assert image.features.metadata_version == 21
    topic = image.topics.get_topic_by_name("foo")
    assert topic is image.topics.get_topic(FOO)
    assert sorted(topic.partitions) == [0, 1]
    assert topic.partitions[1].leader == 2 and topic.partitions[1].isr == (2, 3, 1)
    assert image.offset == 0 and not image.is_empty()


def test_partition_change_bumps_epochs_as_kafka_merge_does() -> None:
    image = image_of(mr.TopicRecord("foo", FOO), partition(FOO, 0, (1, 2, 3), 1))
    # ISR only: partition epoch +1, leader epoch unchanged
    isr_only = image_of(mr.PartitionChangeRecord(partition_id=0, topic_id=FOO, isr=(1, 2)), base=image)
    p = isr_only.topics.get_partition(FOO, 0)
    assert (p.isr, p.leader, p.leader_epoch, p.partition_epoch) == ((1, 2), 1, 0, 1)
    # a leader set, even the same one, bumps the leader epoch
    same_leader = image_of(mr.PartitionChangeRecord(partition_id=0, topic_id=FOO, leader=1), base=isr_only)
    p = same_leader.topics.get_partition(FOO, 0)
    assert (p.leader, p.leader_epoch, p.partition_epoch) == (1, 1, 2)
    # the base image is not changed by either
    assert image.topics.get_partition(FOO, 0).partition_epoch == 0


def test_unchanged_parts_are_shared_with_the_base_image() -> None:
    image = image_of(mr.TopicRecord("foo", FOO), partition(FOO, 0, (1,), 1), mr.TopicRecord("bar", BAR),
                     partition(BAR, 0, (1,), 1), register(1))
    after = image_of(mr.PartitionChangeRecord(partition_id=0, topic_id=BAR, isr=(1,)), base=image)
    assert after.topics.get_topic(FOO) is image.topics.get_topic(FOO)
    assert after.topics.get_topic(BAR) is not image.topics.get_topic(BAR)
    assert after.cluster is image.cluster and after.features is image.features


def test_broker_fencing_follows_registration_change_records() -> None:
    image = image_of(register(1, epoch=7), register(2, epoch=8, fenced=False))
    assert image.cluster.unfenced_broker_ids() == [2]
    assert image.cluster.broker(1).node("PLAINTEXT") == ("127.0.0.1", 9091)
    image = image_of(mr.BrokerRegistrationChangeRecord(broker_id=1, broker_epoch=7, fenced=-1, log_dirs=()),
                     mr.BrokerRegistrationChangeRecord(broker_id=2, broker_epoch=8, fenced=1,
                                                       in_controlled_shutdown=1, log_dirs=()), base=image)
    assert image.cluster.unfenced_broker_ids() == [1]
    assert image.cluster.broker(2).in_controlled_shutdown
    # a change naming another broker epoch is refused (Kafka: getBrokerOrThrow)
    with pytest.raises(MetadataReplayError):
        MetadataDelta(image).replay(mr.BrokerRegistrationChangeRecord(broker_id=1, broker_epoch=6, fenced=1,
                                                                      log_dirs=()))


def test_records_that_do_not_fit_the_image_are_refused() -> None:
    delta = MetadataDelta(MetadataImage.EMPTY)
    with pytest.raises(MetadataReplayError):
        delta.replay(partition(FOO, 0, (1,), 1))
    with pytest.raises(MetadataReplayError):
        delta.replay(mr.RemoveTopicRecord(FOO))
    delta.replay(mr.TopicRecord("foo", FOO))
    with pytest.raises(MetadataReplayError):
        delta.replay(mr.PartitionChangeRecord(partition_id=5, topic_id=FOO, isr=(1,)))
    with pytest.raises(MetadataReplayError):
        delta.replay(mr.TopicRecord("foo", FOO))


def test_configs_set_deleted_and_removed_with_their_topic() -> None:
    image = image_of(mr.TopicRecord("foo", FOO), partition(FOO, 0, (1,), 1),
                     mr.ConfigRecord(2, "foo", "retention.ms", "1000"), mr.ConfigRecord(2, "foo", "cleanup.policy",
                                                                                        "compact"),
                     mr.ConfigRecord(4, "", "log.retention.ms", "5"))
    assert dict(image.configs.topic_config("foo")) == {"retention.ms": "1000", "cleanup.policy": "compact"}
    image = image_of(mr.ConfigRecord(2, "foo", "retention.ms", None), base=image)
    assert dict(image.configs.topic_config("foo")) == {"cleanup.policy": "compact"}
    image = image_of(mr.RemoveTopicRecord(FOO), base=image)
    assert dict(image.configs.topic_config("foo")) == {}
    assert image.topics.get_topic_by_name("foo") is None
    assert dict(image.configs.config_map(4, "")) == {"log.retention.ms": "5"}


def test_producer_ids_and_noop_records() -> None:
    image = image_of(mr.ProducerIdsRecord(broker_id=1, broker_epoch=5, next_producer_id=1000), mr.NoOpRecord())
    assert image.producer_ids.next_producer_id == 1000


def test_local_changes_leaders_followers_and_deletes() -> None:
    image = image_of(mr.TopicRecord("foo", FOO), partition(FOO, 0, (1, 2), 1), partition(FOO, 1, (2, 3), 2),
                     mr.TopicRecord("bar", BAR), partition(BAR, 0, (1, 3), 3))
    # a new topic: broker 1 leads foo-0 and follows bar-0, is not in foo-1
    created = MetadataDelta(MetadataImage.EMPTY)
    for r in (mr.TopicRecord("foo", FOO), partition(FOO, 0, (1, 2), 1), partition(FOO, 1, (2, 3), 2),
              mr.TopicRecord("bar", BAR), partition(BAR, 0, (1, 3), 3)):
        created.replay(r)
    c = created.local_changes(1)
    assert set(c.leaders) == {TopicPartition("foo", 0)} and set(c.elected_leaders) == {TopicPartition("foo", 0)}
    assert set(c.followers) == {TopicPartition("bar", 0)} and not c.deletes
    assert c.topic_ids == {"foo": FOO, "bar": BAR}
    # leader of foo-0 moves to 2; broker 1 is moved out of bar-0; foo-1's ISR shrinks
    delta = MetadataDelta(image)
    delta.replay(mr.PartitionChangeRecord(partition_id=0, topic_id=FOO, leader=2, isr=(2,)))
    delta.replay(mr.PartitionChangeRecord(partition_id=0, topic_id=BAR, replicas=(3, 2), isr=(3, 2)))
    delta.replay(mr.PartitionChangeRecord(partition_id=1, topic_id=FOO, isr=(2,)))
    c1 = delta.local_changes(1)
    assert set(c1.followers) == {TopicPartition("foo", 0)} and not c1.leaders
    assert c1.deletes == {TopicPartition("bar", 0)}
    c2 = delta.local_changes(2)
    assert set(c2.leaders) == {TopicPartition("foo", 0), TopicPartition("foo", 1)}
    assert set(c2.elected_leaders) == {TopicPartition("foo", 0)}  # foo-1: same leader epoch, new ISR
    assert set(c2.followers) == {TopicPartition("bar", 0)}
    # a deleted topic: every local replica is deleted
    removed = MetadataDelta(image)
    removed.replay(mr.RemoveTopicRecord(FOO))
    assert removed.local_changes(2).deletes == {TopicPartition("foo", 0), TopicPartition("foo", 1)}
    assert removed.local_changes(1).deletes == {TopicPartition("foo", 0)}
    assert removed.local_changes(1).is_empty() is False


# ------------------------------------------------------------------ property: batching does not matter

_TOPICS = [(f"t{i}", uuid.UUID(int=100 + i)) for i in range(3)]


@st.composite
def _record_log(draw: st.DrawFn) -> list[mr.ApiMessage]:
    """A valid sequence of records: topics created, partitions changed, topics removed, brokers
    registered and fenced, configs set."""
    records: list[mr.ApiMessage] = []
    live: dict[uuid.UUID, int] = {}
    brokers: set[int] = set()
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["topic", "change", "remove", "broker", "fence", "config", "pid"]))
        name, topic_id = draw(st.sampled_from(_TOPICS))
        if kind == "topic" and topic_id not in live:
            n = draw(st.integers(1, 3))
            records.append(mr.TopicRecord(name, topic_id))
            for pid in range(n):
                replicas = tuple(draw(st.permutations([1, 2, 3])))[:2]
                records.append(partition(topic_id, pid, replicas, replicas[0]))
            live[topic_id] = n
        elif kind == "change" and topic_id in live:
            pid = draw(st.integers(0, live[topic_id] - 1))
            leader = draw(st.sampled_from([-2, -1, 1, 2, 3]))
            isr = draw(st.none() | st.lists(st.integers(1, 3), max_size=3, unique=True).map(tuple))
            records.append(mr.PartitionChangeRecord(partition_id=pid, topic_id=topic_id, leader=leader, isr=isr))
        elif kind == "remove" and topic_id in live:
            records.append(mr.RemoveTopicRecord(topic_id))
            del live[topic_id]
        elif kind == "broker":
            b = draw(st.integers(1, 3))
            records.append(register(b, epoch=b * 10, fenced=draw(st.booleans())))
            brokers.add(b)
        elif kind == "fence" and brokers:
            b = draw(st.sampled_from(sorted(brokers)))
            records.append(mr.BrokerRegistrationChangeRecord(broker_id=b, broker_epoch=b * 10,
                                                             fenced=draw(st.sampled_from([-1, 0, 1])), log_dirs=()))
        elif kind == "config":
            records.append(mr.ConfigRecord(2, name, "retention.ms", draw(st.none() | st.just("7"))))
        elif kind == "pid":
            records.append(mr.ProducerIdsRecord(broker_id=1, broker_epoch=1, next_producer_id=draw(st.integers(0, 99))))
    return records


@settings(max_examples=60, deadline=None)
@given(records=_record_log(), cuts=st.sets(st.integers(0, 80)))
def test_any_split_into_deltas_gives_the_same_image(records: list[mr.ApiMessage], cuts: set[int]) -> None:
    """Replaying the log in one delta or in several (applied one after another, as a loader does
    batch by batch) ends in the same image; a broker's accumulated leader/follower sets match."""
    whole = image_of(*records, offset=len(records) - 1)
    image = MetadataImage.EMPTY
    start = 0
    for end in sorted(c for c in cuts if 0 < c < len(records)) + [len(records)]:
        image = image_of(*records[start:end], base=image, offset=end - 1)
        start = end
    assert image == whole
    for topic in whole.topics:
        assert whole.topics.get_topic_by_name(topic.name) is topic
