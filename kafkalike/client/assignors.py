"""Client-side partition assignors of Kafka's classic consumer group protocol, and the
ConsumerProtocol subscription / assignment codecs the group leader exchanges through the
coordinator.

Holds ``Subscription``, ``encode_subscription()`` / ``decode_subscription()``,
``encode_assignment()`` / ``decode_assignment()`` (Kafka's ``ConsumerProtocol``: an int16
version, then ConsumerProtocolSubscription / ConsumerProtocolAssignment of that version,
schemas from kio), and the assignors ``RangeAssignor`` and ``RoundRobinAssignor`` (Kafka's
``org.apache.kafka.clients.consumer.RangeAssignor`` / ``RoundRobinAssignor``), named
"range" and "roundrobin" on the wire as in Kafka. Pure functions: no I/O, no trio.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import attrs
from kio.schema.consumer_protocol_assignment.v0.data import \
    ConsumerProtocolAssignment as AssignmentV0
from kio.schema.consumer_protocol_assignment.v0.data import TopicPartition as AssignedTopicV0
from kio.schema.consumer_protocol_assignment.v1.data import \
    ConsumerProtocolAssignment as AssignmentV1
from kio.schema.consumer_protocol_assignment.v2.data import \
    ConsumerProtocolAssignment as AssignmentV2
from kio.schema.consumer_protocol_assignment.v3.data import \
    ConsumerProtocolAssignment as AssignmentV3
from kio.schema.consumer_protocol_subscription.v0.data import \
    ConsumerProtocolSubscription as SubscriptionV0
from kio.schema.consumer_protocol_subscription.v1.data import \
    ConsumerProtocolSubscription as SubscriptionV1
from kio.schema.consumer_protocol_subscription.v2.data import \
    ConsumerProtocolSubscription as SubscriptionV2
from kio.schema.consumer_protocol_subscription.v3.data import \
    ConsumerProtocolSubscription as SubscriptionV3
from kio.serial import entity_writer

from kafkalike.client.cluster import TopicPartition
from kafkalike.protocol.errors import MalformedFrameError
from kafkalike.protocol.kio_reader import read_entity

__all__ = ["Subscription", "encode_subscription", "decode_subscription", "encode_assignment",
           "decode_assignment", "PartitionAssignor", "RangeAssignor", "RoundRobinAssignor",
           "ASSIGNORS", "assignor_for"]

_SUBSCRIPTIONS = (SubscriptionV0, SubscriptionV1, SubscriptionV2, SubscriptionV3)
_ASSIGNMENTS = (AssignmentV0, AssignmentV1, AssignmentV2, AssignmentV3)
_VERSION = struct.Struct(">h")


@attrs.frozen
class Subscription:
    """One member's subscription as the leader sees it: ``topics`` (sorted), ``user_data``
    (opaque bytes or None), and ``owned_partitions`` (v1+, cooperative protocols)."""

    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned_partitions: tuple[TopicPartition, ...] = ()


def encode_subscription(topics: Iterable[str], user_data: bytes | None = None) -> bytes:
    """JoinGroup protocol metadata: int16 version 0, ConsumerProtocolSubscription v0
    (array of topic strings, nullable bytes user data). Kafka's ConsumerProtocol."""
    buf = io.BytesIO()
    buf.write(_VERSION.pack(0))
    entity_writer(SubscriptionV0)(buf, SubscriptionV0(topics=tuple(sorted(set(topics))),
                                                      user_data=user_data))
    return buf.getvalue()


def _read_versioned(data: bytes, classes: tuple[type, ...], what: str) -> tuple[int, Any]:
    if len(data) < 2:
        raise MalformedFrameError(f"{what}: {len(data)} bytes, no version")
    (version,) = _VERSION.unpack_from(data, 0)
    if version < 0:
        raise MalformedFrameError(f"{what}: negative version {version}")
    # Kafka reads a newer version with the newest schema it knows: fields are only appended.
    entity, _ = read_entity(classes[min(version, len(classes) - 1)], memoryview(data), 2)
    return version, entity


def decode_subscription(data: bytes) -> Subscription:
    """A member's JoinGroup metadata (any ConsumerProtocolSubscription version; trailing
    bytes of newer versions ignored, as Kafka does). Raises MalformedFrameError."""
    _, entity = _read_versioned(bytes(data), _SUBSCRIPTIONS, "subscription")
    owned = tuple(TopicPartition(t.topic, int(p))
                  for t in getattr(entity, "owned_partitions", ()) for p in t.partitions)
    return Subscription(tuple(sorted(set(entity.topics))), entity.user_data, owned)


def encode_assignment(partitions: Iterable[TopicPartition], user_data: bytes | None = None) -> bytes:
    """SyncGroup assignment: int16 version 0, ConsumerProtocolAssignment v0 (array of
    (topic, int32 partitions), nullable bytes user data), topics and partitions sorted."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    buf = io.BytesIO()
    buf.write(_VERSION.pack(0))
    entity_writer(AssignmentV0)(buf, AssignmentV0(
        assigned_partitions=tuple(AssignedTopicV0(topic=t, partitions=tuple(sorted(ps)))
                                  for t, ps in sorted(by_topic.items())),
        user_data=user_data))
    return buf.getvalue()


def decode_assignment(data: bytes) -> list[TopicPartition]:
    """The partitions of a SyncGroup assignment (any version). Empty bytes = nothing
    assigned (Kafka's coordinator sends empty bytes to members the leader left out).
    Raises MalformedFrameError."""
    if not data:
        return []
    _, entity = _read_versioned(bytes(data), _ASSIGNMENTS, "assignment")
    return sorted(TopicPartition(t.topic, int(p))
                  for t in entity.assigned_partitions for p in t.partitions)


class PartitionAssignor(Protocol):
    """What the group leader runs (Kafka's ConsumerPartitionAssignor): ``name`` on the wire,
    ``assign(partitions_per_topic, subscriptions) -> {member_id: [TopicPartition, ...]}``."""

    name: str

    def assign(self, partitions_per_topic: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> dict[str, list[TopicPartition]]:
        ...


class RangeAssignor:
    """Kafka's RangeAssignor ("range"): per topic, the partitions in order and the members
    subscribed to it sorted by member id; each member gets ``n // m`` consecutive partitions
    and the first ``n % m`` members one more. Topics missing from ``partitions_per_topic``
    (unknown to Metadata) are skipped."""

    name = "range"

    def assign(self, partitions_per_topic: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> dict[str, list[TopicPartition]]:
        out: dict[str, list[TopicPartition]] = {m: [] for m in subscriptions}
        members_per_topic: dict[str, list[str]] = {}
        for member, sub in subscriptions.items():
            for topic in sub.topics:
                members_per_topic.setdefault(topic, []).append(member)
        for topic, members in sorted(members_per_topic.items()):
            count = partitions_per_topic.get(topic)
            if not count:
                continue
            members.sort()
            per_member, extra = divmod(count, len(members))
            for i, member in enumerate(members):
                start = per_member * i + min(i, extra)
                length = per_member + (1 if i < extra else 0)
                out[member].extend(TopicPartition(topic, p) for p in range(start, start + length))
        return out


class RoundRobinAssignor:
    """Kafka's RoundRobinAssignor ("roundrobin"): every partition of every subscribed topic
    in (topic, partition) order, dealt to the members sorted by id in a circle, skipping a
    member not subscribed to that partition's topic."""

    name = "roundrobin"

    def assign(self, partitions_per_topic: Mapping[str, int],
               subscriptions: Mapping[str, Subscription]) -> dict[str, list[TopicPartition]]:
        out: dict[str, list[TopicPartition]] = {m: [] for m in subscriptions}
        members = sorted(subscriptions)
        if not members:
            return out
        topics = sorted({t for s in subscriptions.values() for t in s.topics
                         if partitions_per_topic.get(t)})
        i = 0
        for topic in topics:
            for p in range(partitions_per_topic[topic]):
                while topic not in subscriptions[members[i % len(members)]].topics:
                    i += 1
                out[members[i % len(members)]].append(TopicPartition(topic, p))
                i += 1
        return out


ASSIGNORS: dict[str, type] = {"range": RangeAssignor, "roundrobin": RoundRobinAssignor}
"""Assignors by protocol name (Kafka's partition.assignment.strategy values)."""


def assignor_for(name: str) -> PartitionAssignor:
    """A new assignor for ``name`` ("range", "roundrobin"). Raises ValueError otherwise."""
    cls = ASSIGNORS.get(name)
    if cls is None:
        raise ValueError(f"unknown partition assignment strategy {name!r}: "
                         f"expected one of {', '.join(ASSIGNORS)}")
    return cls()
