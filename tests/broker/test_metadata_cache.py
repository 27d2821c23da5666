"""MetadataCache as UpdateMetadata v7 requests fill it: each topic's partitions are
found without a scan, a topic whose partitions all go out with leader -2 (LeaderDuringDelete)
leaves the cache with its topic id, and a MetadataSnapshot taken earlier never changes
afterwards (the Metadata handler reads it from a worker thread)."""

from __future__ import annotations

import uuid

from kafkalike.broker.metadata_cache import LEADER_DURING_DELETE, MetadataCache
from kafkalike.coordination.zk_data import TopicPartition
from kafkalike.protocol.update_metadata import (
    UpdateMetadataBroker,
    UpdateMetadataEndpoint,
    UpdateMetadataPartitionState,
    UpdateMetadataRequest,
    UpdateMetadataTopicState,
)


def _request(topics: dict[str, dict[int, int]], ids: dict[str, uuid.UUID] | None = None) -> UpdateMetadataRequest:
    """UpdateMetadata v7 from broker 1 (live) with ``topics``: {topic: {partition: leader}}."""
    ids = ids or {}
    return UpdateMetadataRequest(
        controller_id=1, controller_epoch=1, broker_epoch=-1,
        topic_states=tuple(UpdateMetadataTopicState(
            topic_name=t, topic_id=ids.get(t, uuid.UUID(int=0)), partition_states=tuple(
                UpdateMetadataPartitionState(partition_index=p, controller_epoch=1, leader=leader, leader_epoch=0,
                                             isr=(1,), zk_version=0, replicas=(1,), offline_replicas=())
                for p, leader in parts.items()))
            for t, parts in topics.items()),
        live_brokers=(UpdateMetadataBroker(id=1, endpoints=(UpdateMetadataEndpoint(
            port=9092, host="127.0.0.1", listener="PLAINTEXT", security_protocol=0),), rack=None),))


def test_snapshot_is_not_changed_by_later_updates_and_deleted_topics_leave_with_their_id() -> None:
    """A snapshot keeps the partitions and topics it saw while later updates change, add and
    delete partitions; the cache itself answers per topic and forgets a fully deleted topic."""
    cache = MetadataCache(broker_id=1)
    a_id = uuid.uuid4()
    cache.update(_request({"a": {0: 1, 1: 1}, "b": {0: 1}}, {"a": a_id}), 7)
    before = cache.snapshot()
    only_a = cache.snapshot(["a", "missing"])

    cache.update(_request({"a": {0: -1, 2: 1}, "b": {0: LEADER_DURING_DELETE}, "c": {0: 1}}), 7)

    assert sorted(before.topics) == ["a", "b"] and sorted(before.topics["a"]) == [0, 1]
    assert before.topics["a"][0].leader == 1 and before.topic_ids == {"a": a_id}
    assert list(only_a.topics) == ["a"] and only_a.topic_ids == {"a": a_id}
    assert before.generation == 1 and cache.snapshot().generation == 2

    assert cache.topics() == ["a", "c"]
    assert not cache.contains_topic("b") and cache.partition(TopicPartition("b", 0)) is None
    assert sorted(cache.partitions_of("a")) == [0, 1, 2] and cache.partitions_of("a")[0].leader == -1
    assert cache.topic_ids == {"a": a_id}
    cache.update(_request({"a": {0: LEADER_DURING_DELETE, 1: LEADER_DURING_DELETE, 2: LEADER_DURING_DELETE}}), 7)
    assert cache.topics() == ["c"] and cache.topic_ids == {} and len(cache.partitions) == 1
