"""ControlledShutdown (api key 7): a broker asks the controller to move its leaderships away.

ZooKeeper-era RPC, defined in-project with Kafka 3.x's ``ControlledShutdownRequest.json`` /
``ControlledShutdownResponse.json`` layout: v0 uses request header v0 (no client id); v1 is
the same body with a normal header; v2 adds BrokerEpoch; v3 is flexible.
"""

from __future__ import annotations

import attrs

from kafkalike.protocol.schema import MAX_VERSION, Message, kfield

__all__ = ["ControlledShutdownRequest", "RemainingPartition", "ControlledShutdownResponse"]


@attrs.frozen(kw_only=True)
class ControlledShutdownRequest(Message):
    """Broker -> controller: ``broker_id`` (with its ``broker_epoch``, v2+) is shutting down."""

    __api_key__ = 7
    __kind__ = "request"
    __valid_versions__ = (0, 3)
    __flexible_versions__ = (3, MAX_VERSION)

    broker_id: int = kfield("int32", "0+")
    broker_epoch: int = kfield("int64", "2+", default=-1)


@attrs.frozen(kw_only=True)
class RemainingPartition(Message):
    """A partition the shutting-down broker still leads."""

    topic_name: str = kfield("string", "0+")
    partition_index: int = kfield("int32", "0+")


@attrs.frozen(kw_only=True)
class ControlledShutdownResponse(Message):
    """Controller -> broker: error_code and the partitions it could not move yet (retry)."""

    __api_key__ = 7
    __kind__ = "response"
    __valid_versions__ = (0, 3)
    __flexible_versions__ = (3, MAX_VERSION)

    error_code: int = kfield("int16", "0+")
    remaining_partitions: tuple[RemainingPartition, ...] = kfield([RemainingPartition], "0+")
