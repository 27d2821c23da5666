"""UpdateMetadata (api key 6): the controller pushes cluster metadata to every broker's cache.

ZooKeeper-era inter-broker RPC, defined in-project with Kafka 3.x's
``UpdateMetadataRequest.json`` / ``UpdateMetadataResponse.json`` layout: v1 lists endpoints
per broker; v2 adds rack; v3 the listener name; v4 offline replicas; v5 BrokerEpoch and
partitions grouped by topic; v6 is the first flexible version; v7 adds TopicId. kafkalike
serves v0-v7 (v8 adds only KRaft-migration fields).
"""

from __future__ import annotations

import uuid

import attrs

from kafkalike.protocol.schema import MAX_VERSION, Message, kfield

__all__ = [
    "UpdateMetadataPartitionState",
    "UpdateMetadataTopicState",
    "UpdateMetadataEndpoint",
    "UpdateMetadataBroker",
    "UpdateMetadataRequest",
    "UpdateMetadataResponse",
]

ZERO_UUID = uuid.UUID(int=0)


@attrs.frozen(kw_only=True)
class UpdateMetadataPartitionState(Message):
    """One partition's leader, epochs, ISR, replicas (topic_name on the wire only in v0-v4)."""

    topic_name: str = kfield("string", "0-4", default="")
    partition_index: int = kfield("int32", "0+")
    controller_epoch: int = kfield("int32", "0+")
    leader: int = kfield("int32", "0+")
    leader_epoch: int = kfield("int32", "0+")
    isr: tuple[int, ...] = kfield(["int32"], "0+")
    zk_version: int = kfield("int32", "0+")
    replicas: tuple[int, ...] = kfield(["int32"], "0+")
    offline_replicas: tuple[int, ...] = kfield(["int32"], "4+")


@attrs.frozen(kw_only=True)
class UpdateMetadataTopicState(Message):
    """v5+: one topic's partition states (topic_id from v7)."""

    topic_name: str = kfield("string", "5+")
    topic_id: uuid.UUID = kfield("uuid", "7+", default=ZERO_UUID)
    partition_states: tuple[UpdateMetadataPartitionState, ...] = kfield(
        [UpdateMetadataPartitionState], "5+")


@attrs.frozen(kw_only=True)
class UpdateMetadataEndpoint(Message):
    """v1+: one listener of a broker (security_protocol: 0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT,
    3 SASL_SSL)."""

    port: int = kfield("int32", "1+")
    host: str = kfield("string", "1+")
    listener: str = kfield("string", "3+", default="PLAINTEXT")
    security_protocol: int = kfield("int16", "1+", default=0)


@attrs.frozen(kw_only=True)
class UpdateMetadataBroker(Message):
    """A live broker: id, (v0) host/port or (v1+) endpoints, rack (v2+, nullable)."""

    id: int = kfield("int32", "0+")
    v0_host: str = kfield("string", "0", default="")
    v0_port: int = kfield("int32", "0", default=0)
    endpoints: tuple[UpdateMetadataEndpoint, ...] = kfield([UpdateMetadataEndpoint], "1+")
    rack: str | None = kfield("string", "2+", default=None, nullable_versions="0+")


@attrs.frozen(kw_only=True)
class UpdateMetadataRequest(Message):
    """Controller -> broker: the partitions' states and the live brokers."""

    __api_key__ = 6
    __kind__ = "request"
    __valid_versions__ = (0, 7)
    __flexible_versions__ = (6, MAX_VERSION)

    controller_id: int = kfield("int32", "0+")
    controller_epoch: int = kfield("int32", "0+")
    broker_epoch: int = kfield("int64", "5+", default=-1)
    ungrouped_partition_states: tuple[UpdateMetadataPartitionState, ...] = kfield(
        [UpdateMetadataPartitionState], "0-4")
    topic_states: tuple[UpdateMetadataTopicState, ...] = kfield([UpdateMetadataTopicState], "5+")
    live_brokers: tuple[UpdateMetadataBroker, ...] = kfield([UpdateMetadataBroker], "0+")


@attrs.frozen(kw_only=True)
class UpdateMetadataResponse(Message):
    """Broker -> controller: error_code (STALE_CONTROLLER_EPOCH, STALE_BROKER_EPOCH or 0)."""

    __api_key__ = 6
    __kind__ = "response"
    __valid_versions__ = (0, 7)
    __flexible_versions__ = (6, MAX_VERSION)

    error_code: int = kfield("int16", "0+")
