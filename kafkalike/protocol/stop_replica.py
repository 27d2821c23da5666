"""StopReplica (api key 5): the controller tells a broker to stop (and maybe delete) replicas.

ZooKeeper-era inter-broker RPC, defined in-project with Kafka 3.x's
``StopReplicaRequest.json`` / ``StopReplicaResponse.json`` layout: v1 adds BrokerEpoch and
groups partitions per topic; v2 is the first flexible version; v3 carries per-partition
LeaderEpoch and DeletePartition (KIP-570) and answers FENCED_LEADER_EPOCH for stale epochs.
kafkalike serves v0-v3 (v4 adds only a KRaft-migration flag).
"""

from __future__ import annotations

import attrs

from kafkalike.protocol.schema import MAX_VERSION, Message, kfield

__all__ = [
    "StopReplicaPartitionV0",
    "StopReplicaTopicV1",
    "StopReplicaPartitionState",
    "StopReplicaTopicState",
    "StopReplicaRequest",
    "StopReplicaPartitionError",
    "StopReplicaResponse",
]


@attrs.frozen(kw_only=True)
class StopReplicaPartitionV0(Message):
    """v0: one partition, with its topic name."""

    topic_name: str = kfield("string", "0")
    partition_index: int = kfield("int32", "0")


@attrs.frozen(kw_only=True)
class StopReplicaTopicV1(Message):
    """v1-v2: a topic and the partition indexes to stop."""

    name: str = kfield("string", "1-2")
    partition_indexes: tuple[int, ...] = kfield(["int32"], "1-2")


@attrs.frozen(kw_only=True)
class StopReplicaPartitionState(Message):
    """v3+: a partition, the leader epoch the controller knows (-1 = any), delete or not."""

    partition_index: int = kfield("int32", "3+")
    leader_epoch: int = kfield("int32", "3+", default=-1)
    delete_partition: bool = kfield("bool", "3+")


@attrs.frozen(kw_only=True)
class StopReplicaTopicState(Message):
    """v3+: one topic's partitions."""

    topic_name: str = kfield("string", "3+")
    partition_states: tuple[StopReplicaPartitionState, ...] = kfield(
        [StopReplicaPartitionState], "3+")


@attrs.frozen(kw_only=True)
class StopReplicaRequest(Message):
    """Controller -> broker: stop fetching/leading these replicas; delete_partitions (v0-v2)
    or per-partition delete_partition (v3+) also removes their logs."""

    __api_key__ = 5
    __kind__ = "request"
    __valid_versions__ = (0, 3)
    __flexible_versions__ = (2, MAX_VERSION)

    controller_id: int = kfield("int32", "0+")
    controller_epoch: int = kfield("int32", "0+")
    broker_epoch: int = kfield("int64", "1+", default=-1)
    delete_partitions: bool = kfield("bool", "0-2", default=False)
    ungrouped_partitions: tuple[StopReplicaPartitionV0, ...] = kfield([StopReplicaPartitionV0], "0")
    topics: tuple[StopReplicaTopicV1, ...] = kfield([StopReplicaTopicV1], "1-2")
    topic_states: tuple[StopReplicaTopicState, ...] = kfield([StopReplicaTopicState], "3+")


@attrs.frozen(kw_only=True)
class StopReplicaPartitionError(Message):
    """One partition's outcome."""

    topic_name: str = kfield("string", "0+")
    partition_index: int = kfield("int32", "0+")
    error_code: int = kfield("int16", "0+")


@attrs.frozen(kw_only=True)
class StopReplicaResponse(Message):
    """Broker -> controller: top-level error and per-partition errors."""

    __api_key__ = 5
    __kind__ = "response"
    __valid_versions__ = (0, 3)
    __flexible_versions__ = (2, MAX_VERSION)

    error_code: int = kfield("int16", "0+")
    partition_errors: tuple[StopReplicaPartitionError, ...] = kfield(
        [StopReplicaPartitionError], "0+")
