"""MetadataCache: the broker's view of the cluster, filled only by the controller's
UpdateMetadata requests (Kafka's ZkMetadataCache; docs/design.md decision 4).

Holds the live brokers (id -> endpoints per listener, rack), every partition's leader,
leader epoch, ISR, replicas and offline replicas, topic ids, and the controller id. Nothing
reads ZooKeeper for metadata: a broker that has not yet heard from the controller answers
Metadata with no topics, as a Kafka 2.x broker does. This is the ZooKeeper era's known
propagation lag, which the KRaft comparison measures.

Source: Kafka core, kafka.server.metadata.ZkMetadataCache.updateMetadata (Kafka 3.x):
a partition whose leader is LeaderDuringDelete (-2) is removed from the cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import attrs
import structlog

from kafkalike.coordination.zk_data import TopicPartition
from kafkalike.protocol.update_metadata import UpdateMetadataRequest

log = structlog.get_logger(__name__)

LEADER_DURING_DELETE = -2
NO_LEADER = -1


@attrs.frozen
class BrokerNode:
    """A live broker: id, rack, and (host, port) per listener name."""

    id: int
    endpoints: dict[str, tuple[str, int]]
    rack: str | None = None


@attrs.frozen
class PartitionInfo:
    """One partition as the controller last described it. leader -1 = offline."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    replicas: tuple[int, ...]
    offline_replicas: tuple[int, ...]
    zk_version: int
    controller_epoch: int


@attrs.frozen
class MetadataSnapshot:
    """The cache at one moment, never mutated afterwards (Kafka's ZkMetadataCache keeps its
    state in an immutable MetadataSnapshot replaced on each update): safe to read from a
    worker thread while the cache moves on.

    topics: topic -> {partition index -> PartitionInfo} (the inner maps are the cache's own,
    which ``update`` replaces instead of mutating). generation: ``MetadataCache.updates`` when
    taken (answers built from it stay valid while the counter has not moved)."""

    generation: int
    controller_id: int | None
    brokers: dict[int, BrokerNode]
    topics: dict[str, dict[int, PartitionInfo]]
    topic_ids: dict[str, uuid.UUID]


@attrs.define
class MetadataCache:
    """The broker's metadata cache. ``update()`` is called with each UpdateMetadata request.

    ``partitions`` holds every partition; ``_by_topic`` the same infos per topic, so that one
    topic's partitions (Metadata for 10,000 topics asks 10,000 times) are found without a
    scan of the whole cluster. Each per-topic map is replaced, never mutated, by ``update``
    (copy on write), so ``snapshot()`` costs one shallow copy of the topic map."""

    broker_id: int
    controller_id: int | None = None
    controller_epoch: int = 0
    brokers: dict[int, BrokerNode] = attrs.Factory(dict)
    partitions: dict[TopicPartition, PartitionInfo] = attrs.Factory(dict)
    topic_ids: dict[str, uuid.UUID] = attrs.Factory(dict)
    updates: int = 0
    _by_topic: dict[str, dict[int, PartitionInfo]] = attrs.Factory(dict)

    def update(self, request: UpdateMetadataRequest, version: int) -> list[TopicPartition]:
        """Apply one UpdateMetadata request (any version 0-7); returns the deleted partitions.

        The caller has already checked the controller epoch (STALE_CONTROLLER_EPOCH).
        """
        self.controller_id = request.controller_id
        self.controller_epoch = request.controller_epoch
        self.brokers = {}
        for b in request.live_brokers:
            if version == 0:
                endpoints = {"PLAINTEXT": (b.v0_host, b.v0_port)}
            else:
                endpoints = {e.listener: (e.host, e.port) for e in b.endpoints}
            self.brokers[b.id] = BrokerNode(b.id, endpoints, b.rack)
        states: Iterable[tuple[str, object]]
        if version >= 5:
            states = [(t.topic_name, p) for t in request.topic_states for p in t.partition_states]
            for t in request.topic_states:
                if version >= 7 and t.topic_id.int != 0:
                    self.topic_ids[t.topic_name] = t.topic_id
        else:
            states = [(p.topic_name, p) for p in request.ungrouped_partition_states]
        deleted: list[TopicPartition] = []
        touched: dict[str, dict[int, PartitionInfo]] = {}  # copies of the topics this request changes
        for topic, p in states:
            index = p.partition_index  # type: ignore[attr-defined]  # p is a LeaderAndIsr/UpdateMetadata partition state of either layout
            tp = TopicPartition(topic, index)
            parts = touched.get(topic)
            if parts is None:
                parts = touched[topic] = dict(self._by_topic.get(topic, ()))
            if p.leader == LEADER_DURING_DELETE:  # type: ignore[attr-defined]  # p: partition state, see above
                if self.partitions.pop(tp, None) is not None:
                    deleted.append(tp)
                parts.pop(index, None)
                continue
            info = PartitionInfo(
                leader=p.leader, leader_epoch=p.leader_epoch, isr=tuple(p.isr),  # type: ignore[attr-defined]  # p: partition state, see above
                replicas=tuple(p.replicas), offline_replicas=tuple(p.offline_replicas),  # type: ignore[attr-defined]  # p: partition state, see above
                zk_version=p.zk_version, controller_epoch=p.controller_epoch)  # type: ignore[attr-defined]  # p: partition state, see above
            self.partitions[tp] = info
            parts[index] = info
        for topic, parts in touched.items():
            if parts:
                self._by_topic[topic] = parts
            else:
                self._by_topic.pop(topic, None)
                self.topic_ids.pop(topic, None)
        self.updates += 1
        log.debug("metadata_cache_updated", controller_id=self.controller_id,
                  brokers=sorted(self.brokers), partitions=len(self.partitions), deleted=len(deleted))
        return deleted

    # --- queries
    def snapshot(self, topics: Iterable[str] | None = None) -> MetadataSnapshot:
        """The cache now, as an immutable MetadataSnapshot: every topic (O(topics) shallow
        copies), or only ``topics`` (those the cache has), for an answer naming a few."""
        if topics is None:
            return MetadataSnapshot(self.updates, self.controller_id, dict(self.brokers), dict(self._by_topic),
                                    dict(self.topic_ids))
        by_topic = {t: p for t in topics if (p := self._by_topic.get(t)) is not None}
        return MetadataSnapshot(self.updates, self.controller_id, dict(self.brokers), by_topic,
                                {t: self.topic_ids[t] for t in by_topic if t in self.topic_ids})

    def topics(self) -> list[str]:
        """Every topic with at least one partition in the cache, sorted."""
        return sorted(self._by_topic)

    def contains_topic(self, topic: str) -> bool:
        return topic in self._by_topic

    def partitions_of(self, topic: str) -> dict[int, PartitionInfo]:
        """partition index -> PartitionInfo for one topic (empty if unknown); a copy."""
        return dict(self._by_topic.get(topic, ()))

    def partition(self, tp: TopicPartition) -> PartitionInfo | None:
        return self.partitions.get(tp)

    def alive_broker_ids(self) -> list[int]:
        return sorted(self.brokers)

    def endpoint(self, broker_id: int, listener_name: str) -> tuple[str, int] | None:
        """(host, port) of a live broker on a listener, or None."""
        node = self.brokers.get(broker_id)
        return node.endpoints.get(listener_name) if node else None
