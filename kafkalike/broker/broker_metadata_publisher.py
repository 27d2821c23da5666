"""A KRaft broker's metadata loader and publisher (Kafka 3.9's ``image.loader.MetadataLoader`` and
``kafka.server.metadata.BrokerMetadataPublisher``).

``MetadataLoader`` is the broker's Raft listener (``RaftClientListener``): each committed batch
of ``__cluster_metadata`` is replayed into a ``MetadataDelta`` at once; a task of its own publishes
what accumulated (the delta, and the image it gives) to each publisher in order. When the broker
is behind, several batches go out as one delta, as Kafka's loader merges them. A snapshot (a
follower that fetched one, or a listener behind the log start) starts a delta from the empty
image: everything in it is new to the publishers, who treat it as a full resynchronisation.

``BrokerMetadataPublisher.publish(delta, image)`` does what Kafka's ``onMetadataUpdate`` does:

1. the KRaft metadata cache is moved to the new image (``KRaftMetadataCache.update_from_image``);
2. the topics' dynamic configs the delta changed go to the replica manager
   (``update_topic_config``: log configs, replication throttles);
3. the replica manager applies the broker's local changes (``delta.local_changes(broker_id)``,
   Kafka's ``ReplicaManager.applyDelta``) through the control-plane seam the ZooKeeper mode's
   LeaderAndIsr / StopReplica handlers use: ``become_leader_or_follower`` for new leaders and
   followers (leader endpoints from the image's registrations on the inter-broker listener),
   ``stop_replicas(delete=True)`` for deletions. A partition whose leader epoch did not change
   but whose partition epoch did (an ISR change the controller made) gets the new ISR and
   partition epoch on its leader, as Kafka's ``Partition.makeLeader`` takes them, and its
   replica set when a reassignment added replicas (the leader then tracks the new followers'
   fetches, so that they can join the ISR; Kafka's ``updateAssignmentAndIsr``). On a full
   resynchronisation, hosted partitions the image does not place on this broker are stopped
   and deleted (Kafka: stray replicas);
4. dynamic broker configs the delta set (BROKER resource "" or this broker's id) are reloaded
   into the ZooKeeper mode's DynamicBrokerConfig, which reconfigures the broker as a
   ``/config/changes`` notification does in ZooKeeper mode (Kafka's DynamicConfigPublisher);
5. the leadership listeners run (group coordinator and transaction coordinator:
   ``on_leadership_change`` loads / unloads their ``__consumer_offsets`` /
   ``__transaction_state`` partitions, Kafka's onElection / onResignation);
6. the metadata listeners get the partitions that disappeared (as after UpdateMetadata).

A failure in one publish is logged (``metadata_publish_failed``) and the loader goes on with the
next delta (Kafka's fault handler logs and counts it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import attrs
import structlog
import trio

from kafkalike.broker.client_quota_manager import CLIENT_ID, DEFAULT, QUOTA_KEYS, USER, ClientQuotaManager, QuotaEntity
from kafkalike.broker.dynamic_broker_config import DEFAULT_ENTITY, DynamicBrokerConfig
from kafkalike.broker.kraft_metadata_cache import KRaftMetadataCache
from kafkalike.broker.partition import Partition, PartitionState, RemoteReplica
from kafkalike.broker.replica_fetcher import BrokerEndpoint
from kafkalike.broker.replica_manager import NO_EPOCH, ReplicaManager, ReplicaStateChange, StopReplicaPartition
from kafkalike.controller.state_change_logger import StateChangeLogger
from kafkalike.coordination.zk_data import TopicPartition
from kafkalike.image import LocalReplicaChanges, MetadataDelta, MetadataImage, MetadataProvenance
from kafkalike.image.metadata_image import CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC
from kafkalike.protocol.metadata_records import uuid_to_base64
from kafkalike.raft.kafka_metadata_log import Batch
from kafkalike.raft.kafka_raft_client import LeaderAndEpoch
from kafkalike.storage.snapshots import Snapshot, SnapshotId

log = structlog.get_logger(__name__)

__all__ = ["MetadataLoader", "MetadataPublisher", "BrokerMetadataPublisher"]


class MetadataPublisher(Protocol):
    """What the loader publishes to (Kafka's MetadataPublisher.onMetadataUpdate)."""

    async def publish(self, delta: MetadataDelta, image: MetadataImage) -> None:
        """``image`` = ``delta`` applied to the previously published image."""


class MetadataLoader:
    """The broker's Raft listener (see module doc). ``publishers`` are called in order for each
    delta; ``image`` is the last published image and ``last_committed_offset`` the offset of the
    last record replayed (what the broker reports in its heartbeats). Run ``run`` in a nursery."""

    def __init__(self, publishers: Sequence[MetadataPublisher] = ()) -> None:
        self.publishers = list(publishers)
        self.image = MetadataImage.EMPTY
        self.leader = LeaderAndEpoch(-1, 0)
        self.last_committed_offset = -1
        self._last_epoch = -1
        self._last_time_ms = -1
        self._pending: MetadataDelta | None = None
        self._wakeup = trio.Event()
        self._published = trio.Event()
        self.failed_publishes = 0

    # --------------------------------------------------------------- RaftClientListener

    def handle_commit(self, batch: Batch) -> None:
        """Replay a committed batch into the pending delta (control batches only move the
        offset). A record that does not fit the image is logged and the delta's other records
        are kept (Kafka's loader reports it to the fault handler)."""
        delta = self._pending_delta()
        for record in batch.records:
            try:
                delta.replay(record)
            except ValueError as exc:
                log.error("metadata_replay_failed", offset=batch.base_offset, record=type(record.message).__name__,
                          error=str(exc))
        self._advance(batch.last_offset, batch.epoch, batch.append_timestamp)

    def handle_load_snapshot(self, snapshot_id: SnapshotId, snapshot: Snapshot) -> None:
        """Start over from a snapshot: a delta from the empty image holding its records."""
        delta = self._pending = MetadataDelta(MetadataImage.EMPTY)
        for record in snapshot.records:
            delta.replay(record)
        log.info("metadata_snapshot_loaded", end_offset=snapshot_id.end_offset, epoch=snapshot_id.epoch,
                 records=len(snapshot.records))
        self._advance(snapshot_id.end_offset - 1, snapshot_id.epoch, snapshot.header.last_contained_log_timestamp)

    def handle_leader_change(self, leader: LeaderAndEpoch) -> None:
        """Remember the quorum's leader (where the broker sends its controller requests)."""
        self.leader = leader

    # --------------------------------------------------------------- publishing

    def _pending_delta(self) -> MetadataDelta:
        if self._pending is None:
            self._pending = MetadataDelta(self.image)
        return self._pending

    def _advance(self, offset: int, epoch: int, time_ms: int) -> None:
        self.last_committed_offset, self._last_epoch, self._last_time_ms = offset, epoch, time_ms
        self._wakeup.set()

    async def wait_for_offset(self, offset: int) -> None:
        """Return once an image containing ``offset`` has been published."""
        while self.image.offset < offset:
            await self._published.wait()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Publish pending deltas until cancelled."""
        task_status.started()
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            delta, self._pending = self._pending, None
            if delta is None:
                if self.last_committed_offset > self.image.offset:  # control batches only
                    self.image = _with_provenance(self.image, self._provenance())
                    self._signal_published()
                continue
            image = delta.apply(self._provenance())
            self.image = image
            for publisher in self.publishers:
                try:
                    await publisher.publish(delta, image)
                except Exception:
                    self.failed_publishes += 1
                    log.exception("metadata_publish_failed", publisher=type(publisher).__name__, offset=image.offset)
            self._signal_published()

    def _provenance(self) -> MetadataProvenance:
        return MetadataProvenance(self.last_committed_offset, self._last_epoch, self._last_time_ms)

    def _signal_published(self) -> None:
        self._published.set()
        self._published = trio.Event()


def _with_provenance(image: MetadataImage, provenance: MetadataProvenance) -> MetadataImage:
    return attrs.evolve(image, provenance=provenance)


class BrokerMetadataPublisher:
    """Applies each published delta to the broker (see module doc). ``broker_id``; the
    ``replica_manager`` (control-plane seam); ``metadata_cache`` (a KRaftMetadataCache);
    ``inter_broker_listener``: the listener name followers fetch their leaders on;
    ``leadership_listeners``: called after the replica changes (coordinators'
    ``on_leadership_change``); ``metadata_listeners``: awaited with the partitions that
    disappeared; ``dynamic_config``: the broker's DynamicBrokerConfig, reloaded from the image
    when the delta sets configs of the BROKER resource "" (``<default>``) or of this broker
    (Kafka's DynamicConfigPublisher); ``client_quotas``: the ClientQuotaManager, given the
    image's user / client-id quotas whenever ClientQuotaRecords arrive; ``authorizer``: the
    StandardAuthorizer, given the image's ACLs whenever ACL records arrive (Kafka's AclPublisher)."""

    def __init__(self, broker_id: int, replica_manager: ReplicaManager, metadata_cache: KRaftMetadataCache,
                 inter_broker_listener: str,
                 leadership_listeners: Sequence[Callable[[], None]] = (),
                 metadata_listeners: Sequence[Callable[[list[TopicPartition]], Awaitable[None]]] = (),
                 dynamic_config: DynamicBrokerConfig | None = None,
                 client_quotas: ClientQuotaManager | None = None,
                 authorizer: Any = None,
                 state_change_logger: StateChangeLogger | None = None) -> None:
        self.broker_id = broker_id
        self.replica_manager = replica_manager
        self.metadata_cache = metadata_cache
        self.inter_broker_listener = inter_broker_listener
        self.leadership_listeners = list(leadership_listeners)
        self.metadata_listeners = list(metadata_listeners)
        self.dynamic_config = dynamic_config
        self.client_quotas = client_quotas
        self.authorizer = authorizer
        #: state-change.log: Kafka 3.9's ReplicaManager.applyDelta lines ("[Broker id=1] Transitioning ...")
        self.state_change_logger = state_change_logger or StateChangeLogger(broker_id, False)
        self.published = 0

    async def publish(self, delta: MetadataDelta, image: MetadataImage) -> None:
        """Steps 1-5 of the module doc."""
        full = delta.image is not self.metadata_cache.image
        deleted = self.metadata_cache.update_from_image(delta, image)
        rm = self.replica_manager
        self._update_topic_configs(delta, image, full)
        changes = delta.local_changes(self.broker_id)
        async with rm.state_change_lock:
            await self._apply_local_changes(changes, image, full)
        await self._update_broker_configs(delta, image, full)
        self._update_client_quotas(delta, image, full)
        if self.authorizer is not None and (full or delta.acls_changed):
            self.authorizer.load_image(image.acls)
        for listener in self.leadership_listeners:
            listener()
        for metadata_listener in self.metadata_listeners:
            await metadata_listener(deleted)
        self.published += 1

    def _update_topic_configs(self, delta: MetadataDelta, image: MetadataImage, full: bool) -> None:
        rm = self.replica_manager
        names = {t.name for t in image.topics} if full else {
            name for (kind, name) in delta.changed_config_resources() if kind == CONFIG_RESOURCE_TOPIC}
        for name in names:
            config = dict(image.configs.topic_config(name))
            if rm.topic_configs.get(name) != config or name not in rm.topic_configs:
                rm.update_topic_config(name, config)
        # topics the delta created: their config is known now, never read from ZooKeeper
        for topic_id in delta.changed_topic_ids:
            topic = image.topics.get_topic(topic_id)
            if topic is not None and topic.name not in rm.topic_configs:
                rm.update_topic_config(topic.name, dict(image.configs.topic_config(topic.name)))

    async def _update_broker_configs(self, delta: MetadataDelta, image: MetadataImage, full: bool) -> None:
        """Dynamic broker configs from ConfigRecords (BROKER resource "" = ``<default>``, or this
        broker's id): the ZooKeeper mode's DynamicBrokerConfig.reload, which reads them back from
        the image (KRaftControlPlane.get_entity_config) and reconfigures the broker (Kafka 3.9's
        DynamicConfigPublisher). A full resynchronisation reloads both when either has configs."""
        dynamic = self.dynamic_config
        if dynamic is None:
            return
        changed = {name for kind, name in delta.changed_config_resources() if kind == CONFIG_RESOURCE_BROKER}
        for name, entity, loaded in (("", DEFAULT_ENTITY, dynamic.dynamic_default),
                                     (str(self.broker_id), str(self.broker_id), dynamic.dynamic_broker)):
            if name in changed or (full and (loaded or image.configs.config_map(CONFIG_RESOURCE_BROKER, name))):
                await dynamic.reload(entity)

    def _update_client_quotas(self, delta: MetadataDelta, image: MetadataImage, full: bool) -> None:
        """The image's user / client-id quotas to the ClientQuotaManager (the ZooKeeper mode's
        load of /config/users and /config/clients), when the delta changed some. "ip" entities
        (connection_creation_rate) are left out: kafkalike enforces no connection quotas."""
        if self.client_quotas is None or not (full or delta.changed_quota_entities):
            return
        quotas: dict[QuotaEntity, dict[str, float]] = {}
        for entity, values in image.client_quotas.entities.items():
            parts = dict(entity)
            if set(parts) - {USER, CLIENT_ID}:
                continue
            known = {k: v for k, v in values.items() if k in QUOTA_KEYS}
            if known:
                quotas[_quota_entity(parts)] = known
        self.client_quotas.quotas = quotas
        log.info("client_quotas_published", entities=len(quotas), offset=image.offset)

    async def _apply_local_changes(self, changes: LocalReplicaChanges, image: MetadataImage, full: bool) -> None:
        rm = self.replica_manager
        deletes = set(changes.deletes)
        if full:  # stray replicas: hosted here, not placed here by the image
            for tp in list(rm.partitions):
                topic = image.topics.get_topic_by_name(tp.topic)
                reg = topic.partitions.get(tp.partition) if topic is not None else None
                if reg is None or self.broker_id not in reg.replicas:
                    deletes.add(tp)
        scl = self.state_change_logger
        if deletes:
            scl.info(f"Deleting {len(deletes)} partition(s).")
            results = await rm.stop_replicas([StopReplicaPartition(tp, NO_EPOCH, delete=True)
                                              for tp in sorted(deletes)])
            log.info("metadata_replicas_deleted", partitions=sorted(map(str, deletes)),
                     errors={str(r.tp): r.error.name for r in results if r.error.value})
        for kind, local in (("leaders", changes.leaders), ("followers", changes.followers)):
            if local:
                scl.info(f"Transitioning {len(local)} partition(s) to local {kind}.")
            for tp, info in local.items():
                if tp not in rm.partitions:
                    scl.info(f"Creating new partition {tp.topic}-{tp.partition} with topic id "
                             f"{uuid_to_base64(info.topic_id)}.")
        state_changes: list[ReplicaStateChange] = []
        for tp, info in (changes.leaders | changes.followers).items():
            reg = info.partition
            p = rm.partitions.get(tp)
            if p is not None and p.leader_epoch == reg.leader_epoch:
                # same leader epoch, new partition epoch: an ISR change (Partition.makeLeader
                # takes the controller's ISR and partition epoch)
                if p.is_leader and reg.partition_epoch > p.partition_epoch:
                    if reg.replicas != p.assigned_replicas:
                        _update_leader_assignment(p, reg.replicas)
                    p.apply_isr(reg.isr, reg.partition_epoch)
                continue
            state_changes.append(ReplicaStateChange(
                tp, info.topic_id, PartitionState(leader=reg.leader, leader_epoch=reg.leader_epoch, isr=reg.isr,
                                                  replicas=reg.replicas, partition_epoch=reg.partition_epoch)))
        if state_changes:
            endpoints = {}
            for b in image.cluster.brokers.values():
                node = b.node(self.inter_broker_listener)
                if node is not None:
                    endpoints[b.id] = BrokerEndpoint(b.id, node[0], node[1])
            errors = await rm.become_leader_or_follower(state_changes, endpoints)
            fetching = sum(1 for c in state_changes if c.tp in changes.followers and not errors.get(c.tp, 0))
            if fetching:
                scl.info(f"Stopped fetchers as part of become-follower for {fetching} partitions")
                scl.info(f"Started fetchers as part of become-follower for {fetching} partitions")
            failed = {str(tp): e.name for tp, e in errors.items() if e.value}
            log.info("metadata_replicas_changed", offset=image.offset,
                     leaders=len(changes.leaders), followers=len(changes.followers), errors=failed)


def _update_leader_assignment(partition: Partition, replicas: tuple[int, ...]) -> None:
    """A leader's replica set changed without a new leader epoch (a reassignment added
    replicas): keep the known followers' state, start tracking the new ones (Kafka's
    Partition.updateAssignmentAndIsr)."""
    partition.assigned_replicas = tuple(replicas)
    partition.remote_replicas = {
        r: partition.remote_replicas.get(r) or RemoteReplica(r)
        for r in replicas if r != partition.local_broker_id}
    log.info("leader_assignment_updated", partition=str(partition.tp), replicas=list(replicas))


def _quota_entity(parts: dict[str, str | None]) -> QuotaEntity:
    """{type: name or None (the default)} -> the ClientQuotaManager's entity (DEFAULT names)."""
    def name(etype: str) -> str | None:
        if etype not in parts:
            return None
        given = parts[etype]
        return DEFAULT if given is None else given
    return QuotaEntity(user=name(USER), client_id=name(CLIENT_ID))
