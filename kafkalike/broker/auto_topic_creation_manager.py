"""AutoTopicCreationManager: who creates a topic that Metadata or Produce names and the
cluster does not have (Kafka's kafka.server.AutoTopicCreationManager, ZooKeeper mode).

Internal topics are created with their own settings by the component that owns them:
``__consumer_offsets`` by the group coordinator (offsets.topic.* configs, replication factor
clamped to the live brokers); ``__transaction_state`` is never auto-created by a
Metadata or Produce request (the transaction coordinator creates it with its own settings)
and answers UNKNOWN_TOPIC_OR_PARTITION. Every other name goes to the admin manager's auto-creation
(num.partitions, default.replication.factor).

Whether auto-creation is on at all (auto.create.topics.enable, Metadata v4+'s
allow_auto_topic_creation) is KafkaApis's decision, as in Kafka.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kafkalike.coordinator.offset_config import OFFSETS_TOPIC
from kafkalike.protocol.errors import ErrorCode


class AutoTopicCreationManager:
    """Routes auto-creation by topic name. ``create_topic(name) -> ErrorCode`` is the admin
    manager's auto-creation (ZkAdminManager.auto_create_topic); ``create_offsets_topic()`` the
    group coordinator's (GroupCoordinator.create_offsets_topic)."""

    def __init__(self, create_topic: Callable[[str], Awaitable[ErrorCode]],
                 create_offsets_topic: Callable[[], Awaitable[None]]) -> None:
        self._create_topic = create_topic
        self._create_offsets_topic = create_offsets_topic

    async def create_topic(self, topic: str) -> ErrorCode:
        """Start creating ``topic``; returns the error its Metadata / Produce answer carries
        meanwhile: LEADER_NOT_AVAILABLE while it comes up (also for __consumer_offsets),
        INVALID_TOPIC_EXCEPTION, INVALID_REPLICATION_FACTOR, UNKNOWN_TOPIC_OR_PARTITION (an
        internal topic created elsewhere), UNKNOWN_SERVER_ERROR (ZooKeeper failed)."""
        if topic == OFFSETS_TOPIC:
            await self._create_offsets_topic()
            return ErrorCode.leader_not_available
        return await self._create_topic(topic)
