"""LeaderAndIsr (api key 4): the controller tells a broker which partitions it leads or follows.

ZooKeeper-era inter-broker RPC, defined in-project (kio dropped it) with the field layout of
Kafka 3.x's ``LeaderAndIsrRequest.json`` / ``LeaderAndIsrResponse.json``:
v1 adds IsNew; v2 adds BrokerEpoch and groups partitions by topic; v3 adds
AddingReplicas/RemovingReplicas; v4 is the first flexible version; v5 adds Type and TopicId
(KIP-516) and answers per topic id; v6 adds LeaderRecoveryState (KIP-704). kafkalike serves
v0-v6 (v7's KRaft-migration flag is not used in a ZooKeeper cluster).

One class per struct covers every version (see kafkalike.protocol.schema); encode/decode
with the api version in hand (kafkalike.protocol.codec does this).
"""

from __future__ import annotations

import uuid

import attrs

from kafkalike.protocol.schema import MAX_VERSION, Message, kfield

__all__ = [
    "LeaderAndIsrPartitionState",
    "LeaderAndIsrTopicState",
    "LeaderAndIsrLiveLeader",
    "LeaderAndIsrRequest",
    "LeaderAndIsrPartitionError",
    "LeaderAndIsrTopicError",
    "LeaderAndIsrResponse",
    "TYPE_INCREMENTAL",
    "TYPE_FULL",
]

ZERO_UUID = uuid.UUID(int=0)
TYPE_INCREMENTAL = 0
"""LeaderAndIsr v5+ ``type``: only some topics are included."""
TYPE_FULL = 1
"""LeaderAndIsr v5+ ``type``: every topic the broker hosts is included."""


@attrs.frozen(kw_only=True)
class LeaderAndIsrPartitionState(Message):
    """One partition's leadership state (broker ids, epochs; zk_version = partition epoch)."""

    topic_name: str = kfield("string", "0-1", default="", doc="only on the wire in v0-v1")
    partition_index: int = kfield("int32", "0+")
    controller_epoch: int = kfield("int32", "0+")
    leader: int = kfield("int32", "0+")
    leader_epoch: int = kfield("int32", "0+")
    isr: tuple[int, ...] = kfield(["int32"], "0+")
    zk_version: int = kfield("int32", "0+", doc="partition epoch: the state znode's version")
    replicas: tuple[int, ...] = kfield(["int32"], "0+")
    adding_replicas: tuple[int, ...] = kfield(["int32"], "3+")
    removing_replicas: tuple[int, ...] = kfield(["int32"], "3+")
    is_new: bool = kfield("bool", "1+", default=False)
    leader_recovery_state: int = kfield("int8", "6+", default=0)


@attrs.frozen(kw_only=True)
class LeaderAndIsrTopicState(Message):
    """v2+: the partitions of one topic."""

    topic_name: str = kfield("string", "2+")
    topic_id: uuid.UUID = kfield("uuid", "5+", default=ZERO_UUID)
    partition_states: tuple[LeaderAndIsrPartitionState, ...] = kfield(
        [LeaderAndIsrPartitionState], "2+")


@attrs.frozen(kw_only=True)
class LeaderAndIsrLiveLeader(Message):
    """A broker that leads at least one of the partitions in the request."""

    broker_id: int = kfield("int32", "0+")
    host_name: str = kfield("string", "0+")
    port: int = kfield("int32", "0+")


@attrs.frozen(kw_only=True)
class LeaderAndIsrRequest(Message):
    """Controller -> broker: become leader/follower (controller_epoch, broker_epoch fence)."""

    __api_key__ = 4
    __kind__ = "request"
    __valid_versions__ = (0, 6)
    __flexible_versions__ = (4, MAX_VERSION)

    controller_id: int = kfield("int32", "0+")
    controller_epoch: int = kfield("int32", "0+")
    broker_epoch: int = kfield("int64", "2+", default=-1)
    type: int = kfield("int8", "5+", default=TYPE_INCREMENTAL)
    ungrouped_partition_states: tuple[LeaderAndIsrPartitionState, ...] = kfield(
        [LeaderAndIsrPartitionState], "0-1")
    topic_states: tuple[LeaderAndIsrTopicState, ...] = kfield([LeaderAndIsrTopicState], "2+")
    live_leaders: tuple[LeaderAndIsrLiveLeader, ...] = kfield([LeaderAndIsrLiveLeader], "0+")


@attrs.frozen(kw_only=True)
class LeaderAndIsrPartitionError(Message):
    """One partition's outcome (topic_name only on the wire in v0-v4)."""

    topic_name: str = kfield("string", "0-4", default="")
    partition_index: int = kfield("int32", "0+")
    error_code: int = kfield("int16", "0+")


@attrs.frozen(kw_only=True)
class LeaderAndIsrTopicError(Message):
    """v5+: outcomes grouped by topic id."""

    topic_id: uuid.UUID = kfield("uuid", "5+")
    partition_errors: tuple[LeaderAndIsrPartitionError, ...] = kfield(
        [LeaderAndIsrPartitionError], "5+")


@attrs.frozen(kw_only=True)
class LeaderAndIsrResponse(Message):
    """Broker -> controller: top-level error (e.g. STALE_CONTROLLER_EPOCH, STALE_BROKER_EPOCH)
    and per-partition errors (v0-v4 flat, v5+ per topic id)."""

    __api_key__ = 4
    __kind__ = "response"
    __valid_versions__ = (0, 6)
    __flexible_versions__ = (4, MAX_VERSION)

    error_code: int = kfield("int16", "0+")
    partition_errors: tuple[LeaderAndIsrPartitionError, ...] = kfield(
        [LeaderAndIsrPartitionError], "0-4")
    topics: tuple[LeaderAndIsrTopicError, ...] = kfield([LeaderAndIsrTopicError], "5+")
