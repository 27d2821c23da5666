"""What the client knows about a cluster: brokers, topics, partition leaders (values only).

Holds ``Node``, ``PartitionInfo``, ``TopicInfo`` and ``Cluster`` (Kafka's
``org.apache.kafka.common`` classes of the same names), re-exports ``TopicPartition``
(kafkalike.protocol.topic_partition, the package-wide value) and ``cluster_from_metadata()``, which
reads a Metadata response of any version (v0-v12: fields a version lacks get Kafka's
defaults: controller -1, cluster id None, leader epoch -1, no offline replicas).
"""

from __future__ import annotations

from typing import Any

import attrs

from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.topic_partition import TopicPartition

__all__ = ["TopicPartition", "Node", "PartitionInfo", "TopicInfo", "Cluster",
           "cluster_from_metadata"]


@attrs.frozen
class Node:
    """A broker as Metadata describes it: ``node_id``, advertised ``host``/``port``, rack."""

    node_id: int
    host: str
    port: int
    rack: str | None = None


@attrs.frozen
class PartitionInfo:
    """One partition's placement: ``leader`` (-1 when none), ``leader_epoch`` (-1 unknown),
    ``replicas``/``isr``/``offline_replicas`` broker ids, ``error_code`` from Metadata."""

    topic: str
    partition: int
    leader: int
    leader_epoch: int = -1
    replicas: tuple[int, ...] = ()
    isr: tuple[int, ...] = ()
    offline_replicas: tuple[int, ...] = ()
    error_code: ErrorCode = ErrorCode.none


@attrs.frozen
class TopicInfo:
    """One topic: ``partitions`` {index: PartitionInfo}, ``topic_id`` (uuid string or None),
    ``is_internal``, ``error_code`` (e.g. UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE)."""

    name: str
    partitions: dict[int, PartitionInfo]
    topic_id: str | None = None
    is_internal: bool = False
    error_code: ErrorCode = ErrorCode.none


@attrs.frozen
class Cluster:
    """A Metadata snapshot: ``brokers`` {id: Node}, ``topics`` {name: TopicInfo},
    ``controller_id`` (-1 unknown), ``cluster_id`` (None before Metadata v2)."""

    brokers: dict[int, Node] = attrs.field(factory=dict)
    topics: dict[str, TopicInfo] = attrs.field(factory=dict)
    controller_id: int = -1
    cluster_id: str | None = None

    def partitions_for(self, topic: str) -> list[int]:
        """Sorted partition indexes of ``topic`` ([] when unknown)."""
        info = self.topics.get(topic)
        return sorted(info.partitions) if info is not None else []

    def partition(self, topic: str, partition: int) -> PartitionInfo | None:
        """The PartitionInfo, or None when the topic or partition is unknown."""
        info = self.topics.get(topic)
        return None if info is None else info.partitions.get(partition)

    def leader_for(self, topic: str, partition: int) -> int | None:
        """Broker id of the partition's leader, or None when unknown or leaderless."""
        p = self.partition(topic, partition)
        if p is None or p.leader < 0 or p.leader not in self.brokers:
            return None
        return p.leader

    def available_partitions_for(self, topic: str) -> list[int]:
        """Partitions of ``topic`` that currently have a live leader."""
        return [p for p in self.partitions_for(topic) if self.leader_for(topic, p) is not None]

    def merged(self, other: Cluster, replaced_topics: set[str] | None = None) -> Cluster:
        """``other``'s brokers/controller/cluster id, with topics from both: ``other`` wins;
        ``replaced_topics`` (names asked for) absent from ``other`` are dropped."""
        topics = {name: t for name, t in self.topics.items()
                  if replaced_topics is None or name not in replaced_topics}
        if replaced_topics is None:
            topics = {}
        topics.update(other.topics)
        return Cluster(brokers=other.brokers, topics=topics,
                       controller_id=other.controller_id,
                       cluster_id=other.cluster_id or self.cluster_id)


def cluster_from_metadata(response: Any) -> Cluster:
    """A Cluster from a kio MetadataResponse of any version."""
    brokers = {int(b.node_id): Node(int(b.node_id), b.host, int(b.port),
                                    getattr(b, "rack", None))
               for b in response.brokers}
    topics = {}
    for t in response.topics:
        if t.name is None:
            continue
        parts = {}
        for p in t.partitions:
            parts[int(p.partition_index)] = PartitionInfo(
                topic=t.name, partition=int(p.partition_index), leader=int(p.leader_id),
                leader_epoch=int(getattr(p, "leader_epoch", -1)),
                replicas=tuple(int(r) for r in p.replica_nodes),
                isr=tuple(int(r) for r in p.isr_nodes),
                offline_replicas=tuple(int(r) for r in getattr(p, "offline_replicas", ())),
                error_code=ErrorCode(p.error_code))
        topic_id = getattr(t, "topic_id", None)
        topics[t.name] = TopicInfo(
            name=t.name, partitions=parts,
            topic_id=str(topic_id) if topic_id is not None and topic_id.int != 0 else None,
            is_internal=bool(getattr(t, "is_internal", False)),
            error_code=ErrorCode(t.error_code))
    return Cluster(brokers=brokers, topics=topics,
                   controller_id=int(getattr(response, "controller_id", -1)),
                   cluster_id=getattr(response, "cluster_id", None))
