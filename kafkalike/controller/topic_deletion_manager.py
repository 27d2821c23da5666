"""TopicDeletionManager: deletes topics marked in ``/admin/delete_topics`` (Kafka's
kafka.controller.TopicDeletionManager).

A topic queued for deletion goes through:
1. its partitions -> OfflinePartition -> NonExistentPartition, and UpdateMetadata to every
   live broker with leader -2 (LeaderDuringDelete) so metadata caches drop it at once;
2. its replicas on live brokers -> OfflineReplica -> ReplicaDeletionStarted (StopReplica with
   delete=true); replicas on dead brokers -> ReplicaDeletionIneligible, and the topic waits;
3. each StopReplica answer moves the replica to ReplicaDeletionSuccessful (or, on an error,
   ReplicaDeletionIneligible, retried later);
4. once every replica is ReplicaDeletionSuccessful: replicas -> NonExistentReplica, the
   topic's znodes (``/brokers/topics/<t>`` with its partition states, ``/config/topics/<t>``,
   ``/admin/delete_topics/<t>``) are removed, fenced by the controller epoch, and the topic
   leaves the controller context.
A topic whose replica is on a dead broker stays queued (ineligible) until that broker
returns (Kafka's behaviour); a topic under reassignment waits for it to finish. With
delete.topic.enable=false the mark is removed and nothing is deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog

from kafkalike.controller.controller_context import PartitionState, ReplicaState
from kafkalike.coordination.zk_data import TopicPartition, delete_topic_path

if TYPE_CHECKING:
    from kafkalike.controller.kafka_controller import KafkaController

log = structlog.get_logger(__name__)
PS, RS = PartitionState, ReplicaState


class TopicDeletionManager:
    """Topic deletion for ``controller`` (see module doc)."""

    def __init__(self, controller: "KafkaController") -> None:
        self.controller = controller

    @property
    def ctx(self):  # type: ignore[no-untyped-def]
        return self.controller.context

    @property
    def enabled(self) -> bool:
        return bool(self.controller.config_value("delete.topic.enable"))

    async def init(self, topics_to_delete: Iterable[str], ineligible: Iterable[str]) -> None:
        """On failover: queue the marked topics (or, deletion disabled, remove the marks)."""
        topics = set(topics_to_delete)
        if self.enabled:
            self.ctx.topics_to_delete |= topics
            self.ctx.topics_ineligible_for_deletion |= set(ineligible) & topics
        else:
            await self._remove_marks(topics)

    async def _remove_marks(self, topics: Iterable[str]) -> None:
        for topic in topics:
            await self.controller.kafka_zk.guarded_delete(delete_topic_path(topic), self.ctx.epoch_zk_version)
            log.info("topic_deletion_disabled", topic=topic, reason="delete.topic.enable=false")

    async def enqueue_topics_for_deletion(self, topics: Iterable[str]) -> None:
        """Queue ``topics`` and start what can start."""
        topics = set(topics)
        if not topics:
            return
        if not self.enabled:
            await self._remove_marks(topics)
            return
        self.ctx.topics_to_delete |= topics
        log.info("topics_queued_for_deletion", topics=sorted(topics))
        await self.resume_deletions()

    def is_topic_queued_up_for_deletion(self, topic: str) -> bool:
        return topic in self.ctx.topics_to_delete

    def is_topic_deletion_in_progress(self, topic: str) -> bool:
        return any(self.ctx.replica_state(tp, r) is RS.ReplicaDeletionStarted
                   for tp, r in self.ctx.replicas_for_topic(topic))

    def is_topic_eligible_for_deletion(self, topic: str) -> bool:
        ctx = self.ctx
        return (topic in ctx.topics_to_delete and not self.is_topic_deletion_in_progress(topic)
                and topic not in ctx.topics_ineligible_for_deletion)

    def mark_topic_ineligible_for_deletion(self, topics: Iterable[str], reason: str) -> None:
        ctx = self.ctx
        new = set(topics) & ctx.topics_to_delete
        if new - ctx.topics_ineligible_for_deletion:
            log.info("topic_deletion_halted", topics=sorted(new), reason=reason)
        ctx.topics_ineligible_for_deletion |= new

    async def resume_deletion_for_topics(self, topics: Iterable[str]) -> None:
        """Make ``topics`` eligible again (a broker came back, a reassignment finished)."""
        ctx = self.ctx
        topics = set(topics) & ctx.topics_to_delete
        if topics:
            ctx.topics_ineligible_for_deletion -= topics
            await self.resume_deletions()

    async def complete_replica_deletion(self, replicas: list[tuple[TopicPartition, int]]) -> None:
        """StopReplica(delete) succeeded for ``replicas``."""
        await self.controller.replica_state_machine.handle_state_changes(replicas, RS.ReplicaDeletionSuccessful)
        await self.resume_deletions()

    async def fail_replica_deletion(self, replicas: list[tuple[TopicPartition, int]]) -> None:
        """StopReplica(delete) failed for ``replicas``: retry the topic later."""
        if not replicas:
            return
        await self.controller.replica_state_machine.handle_state_changes(replicas, RS.ReplicaDeletionIneligible)
        self.mark_topic_ineligible_for_deletion({tp.topic for tp, _ in replicas}, "replica deletion failed")
        await self.resume_deletions()

    async def resume_deletions(self) -> None:
        """Advance every queued topic as far as it can go (Kafka's resumeDeletions): complete
        topics whose replicas are all deleted; give replicas whose deletion failed (or whose
        broker was down) another go at the next resume; start eligible topics."""
        ctx = self.ctx
        retry: list[str] = []
        eligible: list[str] = []
        for topic in sorted(ctx.topics_to_delete):
            replicas = ctx.replicas_for_topic(topic)
            if topic in ctx.topics_with_deletion_started and all(
                    ctx.replica_state(tp, r) is RS.ReplicaDeletionSuccessful for tp, r in replicas):
                await self._complete_delete_topic(topic)
                continue
            if not self.is_topic_deletion_in_progress(topic) and any(
                    ctx.replica_state(tp, r) is RS.ReplicaDeletionIneligible for tp, r in replicas):
                retry.append(topic)
            if any(tp in ctx.reassigning for tp in ctx.partitions_of_topic(topic)):
                self.mark_topic_ineligible_for_deletion([topic], "partition reassignment in progress")
            if self.is_topic_eligible_for_deletion(topic):
                eligible.append(topic)
        for topic in retry:
            failed = [(tp, r) for tp, r in ctx.replicas_for_topic(topic)
                      if ctx.replica_state(tp, r) is RS.ReplicaDeletionIneligible]
            await self.controller.replica_state_machine.handle_state_changes(failed, RS.OfflineReplica)
            ctx.topics_ineligible_for_deletion.discard(topic)
        for topic in eligible:
            await self._on_topic_deletion(topic)

    async def _on_topic_deletion(self, topic: str) -> None:
        ctx, c = self.ctx, self.controller
        partitions = ctx.partitions_of_topic(topic)
        if topic not in ctx.topics_with_deletion_started:
            await c.partition_state_machine.handle_state_changes(
                [tp for tp in partitions if ctx.partition_state(tp) is not PS.NonExistentPartition], PS.OfflinePartition)
            await c.partition_state_machine.handle_state_changes(partitions, PS.NonExistentPartition)
            ctx.topics_with_deletion_started.add(topic)
        # metadata caches drop the topic: its partitions go out with leader -2
        c.send_update_metadata_request(sorted(ctx.live_or_shutting_down_broker_ids()), partitions)
        log.info("topic_deletion_started", topic=topic, partitions=len(partitions))
        await self._start_replica_deletion(topic)

    async def _start_replica_deletion(self, topic: str) -> None:
        ctx, rsm = self.ctx, self.controller.replica_state_machine
        pending = [(tp, r) for tp, r in ctx.replicas_for_topic(topic)
                   if ctx.replica_state(tp, r) is not RS.ReplicaDeletionSuccessful]
        alive = [(tp, r) for tp, r in pending if r in ctx.live_brokers]
        dead = [(tp, r) for tp, r in pending if r not in ctx.live_brokers]
        await rsm.handle_state_changes(dead, RS.ReplicaDeletionIneligible)
        await rsm.handle_state_changes(alive, RS.OfflineReplica)
        await rsm.handle_state_changes(alive, RS.ReplicaDeletionStarted)
        if dead:
            self.mark_topic_ineligible_for_deletion([topic], f"replicas on dead brokers {sorted({r for _, r in dead})}")

    async def _complete_delete_topic(self, topic: str) -> None:
        ctx, c = self.ctx, self.controller
        replicas = ctx.replicas_for_topic(topic)
        await c.replica_state_machine.handle_state_changes(replicas, RS.NonExistentReplica)
        await c.kafka_zk.delete_topic_znodes(topic, ctx.epoch_zk_version)
        ctx.remove_topic(topic)
        log.info("topic_deleted", topic=topic)
