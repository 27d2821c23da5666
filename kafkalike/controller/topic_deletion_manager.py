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

Wiring (Kafka 2.x's ``TopicDeletionManager(config, controllerContext, replicaStateMachine,
partitionStateMachine, client: DeletionClient)``): the manager receives the context, both
state machines, the fenced ZooKeeper client for its guarded deletes, delete.topic.enable and
the one callback Kafka's DeletionClient.sendMetadataUpdate stands for -- never the controller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog
import trio

from kafkalike.controller.controller_context import (
    ControllerContext,
    PartitionState,
    ReplicaState,
    chunks,
    topic_chunks,
)
from kafkalike.controller.fenced_zk_client import FencedZkClient
from kafkalike.controller.partition_state_machine import PartitionStateMachine
from kafkalike.controller.replica_state_machine import ReplicaStateMachine
from kafkalike.coordination.zk_data import TopicPartition, delete_topic_path

log = structlog.get_logger(__name__)
PS, RS = PartitionState, ReplicaState

#: resume_deletions yields to the event loop after this many topics
YIELD_EVERY = 500


class TopicDeletionManager:
    """Topic deletion (see module doc), built from what it uses (Kafka's TopicDeletionManager
    constructor):

    context: the controller's ControllerContext (deletion queues, states; updated in place).
    replica_state_machine / partition_state_machine: the controller's state machines, which
    move the topics' replicas and partitions. zk_client: the fenced ZooKeeper client the
    marks and topic znodes are deleted through (ControllerMoved when this controller was
    fenced); the owner may hand a new one by assigning ``zk_client``. delete_topic_enable:
    delete.topic.enable (Kafka's default true). send_update_metadata: ``f(broker_ids,
    partitions)`` sends UpdateMetadata for ``partitions`` to ``broker_ids`` now (Kafka's
    DeletionClient.sendMetadataUpdate).
    """

    def __init__(self, context: ControllerContext, replica_state_machine: ReplicaStateMachine,
                 partition_state_machine: PartitionStateMachine, zk_client: FencedZkClient,
                 delete_topic_enable: bool,
                 send_update_metadata: Callable[[list[int], list[TopicPartition]], None]) -> None:
        self.ctx = context
        self.replica_state_machine = replica_state_machine
        self.partition_state_machine = partition_state_machine
        self.zk_client = zk_client
        self.enabled = delete_topic_enable
        self._send_update_metadata = send_update_metadata

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
            await self.zk_client.guarded_delete(delete_topic_path(topic), self.ctx.epoch_zk_version)
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
        queued = sorted(topics)
        log.info("topics_queued_for_deletion", count=len(queued), topics=queued[:20])
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
        """StopReplica(delete) succeeded for ``replicas`` (STATE_CHANGE_CHUNK at a time, with a
        checkpoint in between)."""
        for i, chunk in enumerate(chunks(replicas)):
            if i:
                await trio.lowlevel.checkpoint()
            await self.replica_state_machine.handle_state_changes(chunk, RS.ReplicaDeletionSuccessful)
        await self.resume_deletions()

    async def fail_replica_deletion(self, replicas: list[tuple[TopicPartition, int]]) -> None:
        """StopReplica(delete) failed for ``replicas``: retry the topic later."""
        if not replicas:
            return
        await self.replica_state_machine.handle_state_changes(replicas, RS.ReplicaDeletionIneligible)
        self.mark_topic_ineligible_for_deletion({tp.topic for tp, _ in replicas}, "replica deletion failed")
        await self.resume_deletions()

    async def resume_deletions(self) -> None:
        """Advance every queued topic as far as it can go (Kafka's resumeDeletions): complete
        topics whose replicas are all deleted; give replicas whose deletion failed (or whose
        broker was down) another go; start eligible topics.

        The topics of a call are handled in batches of about STATE_CHANGE_CHUNK partitions
        (Kafka's onTopicDeletion(topics) takes them all in one): per batch one partition state
        change, one UpdateMetadata, one StopReplica per broker for all their partitions, one
        pipelined ZooKeeper deletion of the completed topics, and a checkpoint between batches.
        The scan yields to the event loop every YIELD_EVERY topics. So 10,000 queued topics
        never keep the broker (and its SIGTERM handler) from running: in one batch, their state
        changes held the loop for up to a second per step."""
        ctx = self.ctx
        complete: list[str] = []
        retry: list[str] = []
        eligible: list[str] = []
        for i, topic in enumerate(sorted(ctx.topics_to_delete)):
            if i and i % YIELD_EVERY == 0:
                await trio.sleep(0)
            replicas = ctx.replicas_for_topic(topic)
            states = [ctx.replica_state(tp, r) for tp, r in replicas]
            if topic in ctx.topics_with_deletion_started and all(
                    state is RS.ReplicaDeletionSuccessful for state in states):
                complete.append(topic)
                continue
            in_progress = RS.ReplicaDeletionStarted in states
            if not in_progress and RS.ReplicaDeletionIneligible in states:
                retry.append(topic)
            if any(tp in ctx.reassigning for tp, _ in replicas):
                self.mark_topic_ineligible_for_deletion([topic], "partition reassignment in progress")
            if not in_progress and topic not in ctx.topics_ineligible_for_deletion:
                eligible.append(topic)
        partitions = self._partition_count
        for batch in topic_chunks(complete, partitions):
            await trio.lowlevel.checkpoint()
            await self._complete_delete_topics(batch)
        for batch in topic_chunks(retry, partitions):
            await trio.lowlevel.checkpoint()
            failed = [(tp, r) for topic in batch for tp, r in ctx.replicas_for_topic(topic)
                      if ctx.replica_state(tp, r) is RS.ReplicaDeletionIneligible]
            await self.replica_state_machine.handle_state_changes(failed, RS.OfflineReplica)
            ctx.topics_ineligible_for_deletion -= set(batch)
        for batch in topic_chunks(eligible, partitions):
            await trio.lowlevel.checkpoint()
            await self._on_topic_deletion(batch)

    def _partition_count(self, topic: str) -> int:
        return len(self.ctx.assignments.by_topic.get(topic, ()))

    async def _on_topic_deletion(self, topics: list[str]) -> None:
        """Kafka's onTopicDeletion(topics): partitions of topics not yet started -> Offline ->
        NonExistent; one UpdateMetadata (leader -2) for every partition of ``topics`` so that
        metadata caches drop them at once; then their replicas' deletion."""
        ctx, psm = self.ctx, self.partition_state_machine
        unseen = [t for t in topics if t not in ctx.topics_with_deletion_started]
        if unseen:
            partitions = [tp for t in unseen for tp in ctx.partitions_of_topic(t)]
            await psm.handle_state_changes(
                [tp for tp in partitions if ctx.partition_state(tp) is not PS.NonExistentPartition], PS.OfflinePartition)
            await psm.handle_state_changes(partitions, PS.NonExistentPartition)
            ctx.topics_with_deletion_started |= set(unseen)
        partitions = [tp for t in topics for tp in ctx.partitions_of_topic(t)]
        self._send_update_metadata(sorted(ctx.live_or_shutting_down_broker_ids()), partitions)
        log.info("topic_deletion_started", topics=len(topics), partitions=len(partitions), first=topics[:10])
        await self._start_replica_deletion(topics)

    async def _start_replica_deletion(self, topics: list[str]) -> None:
        """Kafka's onPartitionDeletion: replicas on dead brokers -> ReplicaDeletionIneligible
        (their topics wait), the others -> OfflineReplica -> ReplicaDeletionStarted
        (StopReplica with delete=true, one request per broker for the whole batch)."""
        ctx, rsm = self.ctx, self.replica_state_machine
        alive: list[tuple[TopicPartition, int]] = []
        dead: list[tuple[TopicPartition, int]] = []
        dead_brokers: dict[str, set[int]] = {}
        for topic in topics:
            for tp, r in ctx.replicas_for_topic(topic):
                if ctx.replica_state(tp, r) is RS.ReplicaDeletionSuccessful:
                    continue
                if r in ctx.live_brokers:
                    alive.append((tp, r))
                else:
                    dead.append((tp, r))
                    dead_brokers.setdefault(topic, set()).add(r)
        await rsm.handle_state_changes(dead, RS.ReplicaDeletionIneligible)
        await rsm.handle_state_changes(alive, RS.OfflineReplica)
        await rsm.handle_state_changes(alive, RS.ReplicaDeletionStarted)
        for topic, brokers in dead_brokers.items():
            self.mark_topic_ineligible_for_deletion([topic], f"replicas on dead brokers {sorted(brokers)}")

    async def _complete_delete_topics(self, topics: list[str]) -> None:
        """Kafka's completeDeleteTopic for a batch: replicas -> NonExistentReplica, the topics'
        znodes deleted in one pipelined batch (fenced by the controller epoch), the topics
        forgotten by the context."""
        ctx = self.ctx
        replicas = [rep for t in topics for rep in ctx.replicas_for_topic(t)]
        partitions = {t: [tp.partition for tp in ctx.partitions_of_topic(t)] for t in topics}
        await self.replica_state_machine.handle_state_changes(replicas, RS.NonExistentReplica)
        await self.zk_client.delete_topic_znodes_many(partitions, ctx.epoch_zk_version)
        ctx.remove_topics(topics)
        log.info("topics_deleted", count=len(topics), topics=topics[:20])
