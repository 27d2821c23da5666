"""The KRaft quorum controller (Kafka's QuorumController, KIP-631) on trio.

One controller process per voter of ``controller.quorum.voters``; the Raft leader is the **active
controller**. Everything the controllers know is in the metadata log:

* **One event queue.** Every operation (a broker's registration or heartbeat, CreateTopics, an
  AlterPartition, fencing a broker whose session expired, a NoOp) is an event run one at a time by
  ``run``. An event reads the committed state, returns its records and its answer
  (ControllerResult); the records are appended through ``KafkaRaftClient.append`` in the active
  epoch (one batch, or several for more than MAX_RECORDS_PER_BATCH records), and the answer is
  given once the high watermark passes them. The next event starts only then, so each event sees
  the effect of the one before it.
* **State only by replay.** ``handle_commit`` (a Raft listener) queues each committed batch; a task
  of its own replays the records into the control managers (cluster, replication, configuration,
  features, producer ids), in log order, letting other tasks run every ``RECORDS_PER_YIELD``
  records, so that a batch of 10,000 records does not hold up the Raft fetches and timers that
  share the trio loop (Kafka replays on the controller's event-queue thread, not the Raft
  thread). ``handle_load_snapshot`` queues a snapshot the same way: the state is reset and
  replays it. Standby controllers replay the same records, so a new active controller already
  holds the state.
* **Bounded writes** (Kafka's QuorumController.appendRecords): an operation's records are appended
  in batches of at most ``MAX_RECORDS_PER_BATCH`` (10,000); a user operation (CreateTopics,
  DeleteTopics, CreatePartitions, IncrementalAlterConfigs, ElectLeaders) that would write more
  than ``MAX_RECORDS_PER_USER_OP`` (10,000) records is refused with POLICY_VIOLATION "Unable to
  perform excessively large batch operation." (Kafka's BoundedList / BoundedListTooLongException):
  CreateTopics of 10,000 partitions (10,001 records) is refused, as in Kafka 3.9. Internal
  operations (fencing a broker, a controlled shutdown) are not bounded and may span batches.
* **Activation.** When Raft makes this node leader of epoch E, the controller is not active until
  its own LeaderChange batch of E is committed: every record before it has then been replayed. On
  activation it writes the bootstrap records of ``bootstrap.checkpoint`` (FeatureLevelRecord
  metadata.version 3.9-IV0) if the log holds none yet, starts every broker's session afresh, and
  then appends a NoOpRecord every ``metadata.max.idle.interval.ms`` (KIP-835) and fences brokers
  whose session expired, one per event.
* **Snapshots.** Every controller writes a snapshot of its state (``snapshot_records``) once
  metadata.log.max.record.bytes.between.snapshots of records were committed since its last one; a
  voter that fell behind the leader's log start fetches it (FetchSnapshot) and loads it.
* A controller that is not active answers NOT_CONTROLLER; one that loses leadership while waiting
  for a commit answers NOT_CONTROLLER too (the records may or may not commit).

Errors: operations raise ControllerError (a Kafka error code and message) that ControllerApis
turns into the response's error; anything unexpected becomes UNKNOWN_SERVER_ERROR, logged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import structlog
import trio

from kafkalike.image.metadata_image import StandardAcl
from kafkalike.kraft.acl_control_manager import AclControlManager, AclFilter
from kafkalike.kraft.client_quota_control_manager import ClientQuotaControlManager, QuotaAlteration
from kafkalike.kraft.cluster_control_manager import ClusterControlManager, loop_time
from kafkalike.kraft.configuration_control_manager import ConfigurationControlManager
from kafkalike.kraft.controller_result import ControllerError, ControllerResult
from kafkalike.kraft.feature_control_manager import FeatureControlManager
from kafkalike.kraft.producer_id_control_manager import ProducerIdControlManager
from kafkalike.kraft.replication_control_manager import ReplicationControlManager
from kafkalike.kraft.scram_control_manager import ScramControlManager
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode
from kafkalike.raft.kafka_metadata_log import Batch
from kafkalike.raft.kafka_raft_client import KafkaRaftClient, LeaderAndEpoch, NotLeaderError
from kafkalike.storage.snapshots import Snapshot, SnapshotId

__all__ = ["QuorumController", "QuorumControllerConfig", "ControllerState", "ControllerError"]

log = structlog.get_logger("kafkalike.kraft")

MAX_RECORDS_PER_BATCH = 10000
"""The most records the controller appends as one batch (Kafka's QuorumController.MAX_RECORDS_PER_BATCH)."""

MAX_RECORDS_PER_USER_OP = MAX_RECORDS_PER_BATCH
"""The most records a user operation may write (Kafka's QuorumController.MAX_RECORDS_PER_USER_OP)."""

RECORDS_PER_YIELD = 50
"""Records replayed between two trio checkpoints (kafkalike's: one trio loop runs Raft and the replay)."""

EXCESSIVE_BATCH_MESSAGE = "Unable to perform excessively large batch operation."
"""Kafka's message for POLICY_VIOLATION when a user operation exceeds MAX_RECORDS_PER_USER_OP."""


@attrs.frozen
class QuorumControllerConfig:
    """The controller's settings (Kafka's names): ``cluster_id`` (meta.properties),
    ``session_timeout_ms`` broker.session.timeout.ms, ``num_partitions`` /
    ``default_replication_factor`` / ``unclean_leader_election`` / ``delete_topic_enable``,
    ``idle_interval_ms`` metadata.max.idle.interval.ms (0: no NoOps), ``bootstrap_records`` (from
    bootstrap.checkpoint), ``commit_timeout_ms`` (how long an event waits for its commit before it
    answers REQUEST_TIMED_OUT), ``snapshot_bytes`` metadata.log.max.record.bytes.between.snapshots,
    ``max_records_per_batch`` the most records appended as one batch (Kafka's
    QuorumController.Builder.setMaxRecordsPerBatch, MAX_RECORDS_PER_BATCH by default)."""

    cluster_id: str
    session_timeout_ms: int = 9000
    num_partitions: int = 1
    default_replication_factor: int = 1
    unclean_leader_election: bool = False
    delete_topic_enable: bool = True
    idle_interval_ms: int = 500
    bootstrap_records: tuple[mr.ApiMessageAndVersion | mr.ApiMessage, ...] = ()
    commit_timeout_ms: int = 30000
    snapshot_bytes: int = 20971520
    max_records_per_batch: int = MAX_RECORDS_PER_BATCH


class _Future:
    def __init__(self) -> None:
        self._done = trio.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def set(self, value: Any) -> None:
        self._value = value
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    async def get(self) -> Any:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


@attrs.frozen
class _Event:
    name: str
    op: Callable[[], ControllerResult]
    future: _Future
    user_op: bool = False  # bounded by MAX_RECORDS_PER_USER_OP
    offload: bool = False  # run op on a worker thread (it only reads the state)


@attrs.frozen
class _SnapshotToLoad:
    snapshot_id: SnapshotId
    snapshot: Snapshot


class ControllerState:
    """The control managers a controller's state consists of, rebuilt by ``replay`` alone
    (cluster, configuration, features, replication, producer ids); ``snapshot_records`` writes the
    state back as records. Two states that replayed the same records are equal
    (``snapshot_records`` compares them)."""

    def __init__(self, config: QuorumControllerConfig, clock: Callable[[], float] = loop_time) -> None:
        self.cluster = ClusterControlManager(config.cluster_id, config.session_timeout_ms, clock)
        self.configs = ConfigurationControlManager()
        self.features = FeatureControlManager()
        self.replication = ReplicationControlManager(
            self.cluster, self.configs, default_num_partitions=config.num_partitions,
            default_replication_factor=config.default_replication_factor,
            unclean_default=config.unclean_leader_election, delete_topic_enable=config.delete_topic_enable)
        self.producer_ids = ProducerIdControlManager(self.cluster)
        self.client_quotas = ClientQuotaControlManager()
        self.scram = ScramControlManager()
        self.acls = AclControlManager()

    def reset(self) -> None:
        """Forget everything (before a snapshot is loaded)."""
        self.cluster.reset()
        self.configs.reset()
        self.replication.reset()
        self.features.finalized.clear()
        self.producer_ids.next_producer_id = 0
        self.client_quotas.reset()
        self.scram.reset()
        self.acls.reset()

    def replay(self, message: mr.ApiMessage, offset: int) -> None:
        """Apply one committed record (Kafka's QuorumController.replay)."""
        if isinstance(message, mr.RegisterBrokerRecord):
            self.cluster.replay_register(message, offset)
        elif isinstance(message, mr.BrokerRegistrationChangeRecord):
            self.cluster.replay_change(message, offset)
        elif isinstance(message, (mr.TopicRecord, mr.PartitionRecord, mr.PartitionChangeRecord, mr.RemoveTopicRecord)):
            self.replication.replay(message)
        elif isinstance(message, mr.ConfigRecord):
            self.configs.replay(message)
        elif isinstance(message, mr.FeatureLevelRecord):
            self.features.replay(message)
        elif isinstance(message, mr.ProducerIdsRecord):
            self.producer_ids.replay(message)
        elif isinstance(message, mr.ClientQuotaRecord):
            self.client_quotas.replay(message)
        elif isinstance(message, (mr.UserScramCredentialRecord, mr.RemoveUserScramCredentialRecord)):
            self.scram.replay(message)
        elif isinstance(message, (mr.AccessControlEntryRecord, mr.RemoveAccessControlEntryRecord)):
            self.acls.replay(message)

    def snapshot_records(self) -> list[mr.ApiMessage]:
        """The state as records (what a snapshot holds), in an order that replays to the same state."""
        out: list[mr.ApiMessage] = [mr.FeatureLevelRecord(name=n, feature_level=v)
                                    for n, v in sorted(self.features.finalized.items())]
        for b in sorted(self.cluster.registrations):
            r = self.cluster.registrations[b]
            out.append(mr.RegisterBrokerRecord(
                broker_id=b, incarnation_id=r.incarnation_id, broker_epoch=r.epoch, end_points=r.listeners,
                features=r.features, rack=r.rack, fenced=r.fenced, in_controlled_shutdown=r.in_controlled_shutdown,
                log_dirs=r.directories))
        for (rtype, name), values in sorted(self.configs.configs.items()):
            out += [mr.ConfigRecord(resource_type=rtype, resource_name=name, name=k, value=v)
                    for k, v in sorted(values.items())]
        for name in sorted(self.replication.topics_by_name):
            topic = self.replication.topics[self.replication.topics_by_name[name]]
            out.append(mr.TopicRecord(name=name, topic_id=topic.topic_id))
            for pid in sorted(topic.parts):
                p = topic.parts[pid]
                out.append(mr.PartitionRecord(
                    partition_id=pid, topic_id=topic.topic_id, replicas=p.replicas, isr=p.isr,
                    removing_replicas=p.removing_replicas, adding_replicas=p.adding_replicas, leader=p.leader,
                    leader_recovery_state=p.leader_recovery_state, leader_epoch=p.leader_epoch,
                    partition_epoch=p.partition_epoch, directories=p.directories))
        out += self.client_quotas.snapshot_records()
        out += self.scram.snapshot_records()
        out += self.acls.snapshot_records()
        if self.producer_ids.next_producer_id:
            out.append(mr.ProducerIdsRecord(broker_id=-1, next_producer_id=self.producer_ids.next_producer_id))
        return out


class QuorumController:
    """See module doc. ``raft``: this voter's KafkaRaftClient (this object is its listener);
    start with ``await nursery.start(controller.run)``."""

    def __init__(self, raft: KafkaRaftClient, config: QuorumControllerConfig) -> None:
        self.raft = raft
        self.config = config
        self.node_id = raft.node_id
        self.state = ControllerState(config)
        self.cluster = self.state.cluster
        self.configs = self.state.configs
        self.features = self.state.features
        self.replication = self.state.replication
        self.producer_ids = self.state.producer_ids
        self.last_committed_offset = -1
        self.last_committed_epoch = -1
        self.active_epoch: int | None = None  # the epoch this controller is active in
        self._claimed_epoch: int | None = None  # leader of this epoch, activation pending
        self._committed = trio.Event()
        self._send, self._receive = trio.open_memory_channel[_Event](math.inf)
        self._pending: set[str] = set()
        self._bytes_since_snapshot = 0
        self._replay_send, self._replay_receive = trio.open_memory_channel[Batch | _SnapshotToLoad](math.inf)
        self._replaying = False  # a batch or snapshot is half replayed (no snapshot of the state now)

    # ------------------------------------------------------------------ Raft listener

    def handle_commit(self, batch: Batch) -> None:
        """Queue a committed batch for the replay task (``run``); returns at once."""
        self._replay_send.send_nowait(batch)

    async def _replay_batch(self, batch: Batch) -> None:
        """Replay a committed batch (a checkpoint every RECORDS_PER_YIELD records); activate when
        it is this leader's own LeaderChange batch."""
        for i, record in enumerate(batch.records):
            self.replay(record.message, batch.base_offset + i)
            if i % RECORDS_PER_YIELD == RECORDS_PER_YIELD - 1:
                await trio.lowlevel.checkpoint()
        for control in batch.control_records:
            if isinstance(control, mr.LeaderChangeMessage) and control.leader_id == self.node_id and \
                    batch.epoch == self._claimed_epoch and self.active_epoch is None:
                self._enqueue("activate", self._activate, internal=True)
        self.last_committed_offset = batch.last_offset
        self.last_committed_epoch = batch.epoch
        self._bytes_since_snapshot += batch.size_in_bytes
        self._wake()

    def handle_leader_change(self, leader: LeaderAndEpoch) -> None:
        """Raft's leader changed: claim the epoch when it is ours, else stop being active."""
        if leader.leader_id == self.node_id:
            if self.active_epoch != leader.epoch:
                self._claimed_epoch = leader.epoch
        else:
            self._claimed_epoch = None
            self._deactivate("leader_changed")

    def handle_load_snapshot(self, snapshot_id: SnapshotId, snapshot: Snapshot) -> None:
        """Queue a snapshot for the replay task: it replaces the state (Kafka: handleLoadSnapshot)."""
        self._replay_send.send_nowait(_SnapshotToLoad(snapshot_id, snapshot))

    async def _load_snapshot(self, snapshot_id: SnapshotId, snapshot: Snapshot) -> None:
        self.state.reset()
        for i, record in enumerate(snapshot.records):
            self.replay(record.message, snapshot_id.end_offset - 1)
            if i % RECORDS_PER_YIELD == RECORDS_PER_YIELD - 1:
                await trio.lowlevel.checkpoint()
        self.last_committed_offset = snapshot_id.end_offset - 1
        self.last_committed_epoch = snapshot_id.epoch
        self._bytes_since_snapshot = 0
        log.info("controller_snapshot_loaded", node_id=self.node_id, end_offset=snapshot_id.end_offset,
                 records=len(snapshot.records))
        self._wake()

    async def _replay_loop(self) -> None:
        """Replay what ``handle_commit`` / ``handle_load_snapshot`` queued, in log order."""
        async for item in self._replay_receive:
            self._replaying = True
            try:
                if isinstance(item, _SnapshotToLoad):
                    await self._load_snapshot(item.snapshot_id, item.snapshot)
                else:
                    await self._replay_batch(item)
            finally:
                self._replaying = False

    def replay(self, message: mr.ApiMessage, offset: int) -> None:
        """Apply one committed record (Kafka's QuorumController.replay)."""
        self.state.replay(message, offset)

    # ------------------------------------------------------------------ activation

    def is_active(self) -> bool:
        """This controller is the active one (leader, caught up to its epoch's start)."""
        return self.active_epoch is not None

    def _activate(self) -> ControllerResult:
        epoch = self._claimed_epoch
        if epoch is None or not self.raft.quorum.is_leader() or self.raft.quorum.epoch != epoch:
            return ControllerResult(())
        self.active_epoch = epoch
        self.cluster.activate()
        log.info("controller_activated", node_id=self.node_id, epoch=epoch,
                 last_committed_offset=self.last_committed_offset, metadata_version=self.features.metadata_version)
        if self.features.metadata_version == 0 and self.config.bootstrap_records:
            log.info("controller_bootstrap_written", node_id=self.node_id, records=len(self.config.bootstrap_records))
            return ControllerResult(tuple(self.config.bootstrap_records))
        return ControllerResult(())

    def _deactivate(self, reason: str) -> None:
        if self.active_epoch is not None:
            log.info("controller_deactivated", node_id=self.node_id, epoch=self.active_epoch, reason=reason)
        self.active_epoch = None
        self.cluster.deactivate()
        self._wake()

    def _wake(self) -> None:
        self._committed.set()
        self._committed = trio.Event()

    # ------------------------------------------------------------------ the event queue

    def _enqueue(self, name: str, op: Callable[[], ControllerResult], *, internal: bool = False,
                 user_op: bool = False, offload: bool = False) -> _Future:
        future = _Future()
        if internal:
            self._pending.add(name)
        self._send.send_nowait(_Event(name, op, future, user_op, offload))
        return future

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the event queue, the replay of committed batches and the periodic tasks until
        cancelled (start it before the Raft client, whose commits it replays)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._replay_loop)
            nursery.start_soon(self._periodic)
            task_status.started()
            async for event in self._receive:
                await self._process(event)

    async def _process(self, event: _Event) -> None:
        self._pending.discard(event.name)
        try:
            if event.name != "activate" and not self.is_active():
                raise ControllerError(ErrorCode.not_controller, f"node {self.node_id} is not the active controller")
            if event.offload:
                # an operation over many partitions computes its records on a worker thread,
                # so that the loop goes on serving Raft meanwhile; the state it reads does not
                # change under it (the previous event's records are replayed, the next waits)
                epoch = self.active_epoch
                result = await trio.to_thread.run_sync(event.op)
                if event.name != "activate" and self.active_epoch != epoch:
                    raise ControllerError(ErrorCode.not_controller, "leadership lost")
            else:
                result = event.op()
            if event.user_op and len(result.records) > MAX_RECORDS_PER_USER_OP:
                log.info("controller_operation_too_large", operation=event.name, records=len(result.records),
                         max_records=MAX_RECORDS_PER_USER_OP)
                raise ControllerError(ErrorCode.policy_violation, EXCESSIVE_BATCH_MESSAGE)
            if result.records:
                await self._wait_committed(await self._append_records(result.records))
            event.future.set(result.response)
        except ControllerError as exc:
            event.future.fail(exc)
        except Exception as exc:  # a bug: answer UNKNOWN_SERVER_ERROR, keep the controller running
            log.exception("controller_event_failed", operation=event.name, error=repr(exc))
            event.future.fail(ControllerError(ErrorCode.unknown_server_error, repr(exc)))

    async def _append_records(self, records: Sequence[mr.ApiMessage | mr.ApiMessageAndVersion]) -> int:
        """Append ``records`` in batches of at most ``config.max_records_per_batch``, in the active epoch
        (Kafka's appendRecords for a non-atomic result; an atomic one is a user operation, within
        one batch by MAX_RECORDS_PER_USER_OP). Returns the last offset. Raises ControllerError
        NOT_CONTROLLER when leadership was lost (batches already appended may still commit)."""
        epoch = self.active_epoch
        last = -1
        size = self.config.max_records_per_batch
        for start in range(0, len(records), size):
            if start:
                await trio.lowlevel.checkpoint()
            try:
                last = await self.raft.append_offloaded(list(records[start:start + size]), epoch=epoch)
            except NotLeaderError:
                self._deactivate("not_leader")
                raise ControllerError(ErrorCode.not_controller, "leadership lost") from None
        return last

    async def _wait_committed(self, offset: int) -> None:
        epoch = self.active_epoch
        with trio.move_on_after(self.config.commit_timeout_ms / 1000):
            while self.last_committed_offset < offset:
                if self.active_epoch != epoch:
                    raise ControllerError(ErrorCode.not_controller, "leadership lost before the records committed")
                await self._committed.wait()
            return
        raise ControllerError(ErrorCode.request_timed_out, f"records up to offset {offset} not committed in time")

    async def _periodic(self) -> None:
        last_noop = trio.current_time()
        while True:
            await trio.sleep(0.1)
            if not self._replaying:
                self._maybe_snapshot()
            if self._claimed_epoch is not None and self.active_epoch is not None and \
                    not self.raft.quorum.is_leader():
                self._deactivate("resigned")
            if not self.is_active():
                continue
            if self.cluster.stale_brokers() and "fence_stale" not in self._pending:
                self._enqueue("fence_stale", self._fence_stale_broker, internal=True, offload=True)
            interval = self.config.idle_interval_ms / 1000
            if interval > 0 and trio.current_time() - last_noop >= interval and "noop" not in self._pending:
                last_noop = trio.current_time()
                self._enqueue("noop", lambda: ControllerResult((mr.NoOpRecord(),)), internal=True)

    def _maybe_snapshot(self) -> None:
        """Every voter, active or not, snapshots its state once ``snapshot_bytes`` of records were
        committed since its last snapshot (Kafka's SnapshotGenerator, KIP-630): the snapshot of
        offset last committed + 1 holds ``snapshot_records()``, the state replayed up to there."""
        if self._bytes_since_snapshot < self.config.snapshot_bytes or self.last_committed_offset < 0:
            return
        end = self.last_committed_offset + 1
        latest = self.raft.log.latest_snapshot_id()
        if (latest is not None and latest.end_offset >= end) or end <= self.raft.log.start_offset:
            return
        records = self.state.snapshot_records()
        try:
            snapshot_id = self.raft.create_snapshot(end, records)
        except ValueError as exc:  # not committed on this node's log yet: try again later
            log.debug("controller_snapshot_deferred", node_id=self.node_id, end_offset=end, error=str(exc))
            return
        self._bytes_since_snapshot = 0
        log.info("controller_snapshot_written", node_id=self.node_id, end_offset=snapshot_id.end_offset,
                 epoch=snapshot_id.epoch, records=len(records))

    def _fence_stale_broker(self) -> ControllerResult:
        """Fence one broker whose session expired (Kafka's maybeFenceOneStaleBroker)."""
        stale = self.cluster.stale_brokers()
        if not stale:
            return ControllerResult(())
        broker_id = stale[0]
        log.info("broker_session_expired", broker_id=broker_id, session_timeout_ms=self.config.session_timeout_ms)
        return ControllerResult(tuple(self.replication.handle_broker_fenced(broker_id)))

    async def _write(self, name: str, op: Callable[[], ControllerResult], *, user_op: bool = False,
                     offload: bool = False) -> Any:
        return await self._enqueue(name, op, user_op=user_op, offload=offload).get()

    # ------------------------------------------------------------------ operations (ControllerApis)

    async def register_broker(self, request: Any, version: int) -> int:
        """BrokerRegistration -> the new broker epoch. Raises ControllerError."""
        return await self._write("register_broker", lambda: self.cluster.register_broker(
            request, version, self.raft.log.end_offset, self.features.metadata_version))

    async def process_broker_heartbeat(self, request: Any) -> Any:
        """BrokerHeartbeat -> HeartbeatReply. Raises ControllerError."""
        return await self._write("broker_heartbeat", lambda: self.replication.process_broker_heartbeat(request))

    async def create_topics(self, topics: Sequence[Any], validate_only: bool) -> Any:
        """CreateTopics -> [CreatedTopic]."""
        return await self._write("create_topics", lambda: self.replication.create_topics(topics, validate_only),
                                 user_op=True, offload=True)

    async def delete_topics(self, topics: Sequence[Any]) -> Any:
        """DeleteTopics -> [TopicResult]."""
        return await self._write("delete_topics", lambda: self.replication.delete_topics(topics), user_op=True)

    async def create_partitions(self, topics: Sequence[Any], validate_only: bool) -> Any:
        """CreatePartitions -> [TopicResult]."""
        return await self._write("create_partitions",
                                 lambda: self.replication.create_partitions(topics, validate_only), user_op=True,
                                 offload=True)

    async def alter_partition(self, request: Any, version: int) -> Any:
        """AlterPartition -> AlterPartitionResult."""
        return await self._write("alter_partition", lambda: self.replication.alter_partition(request, version))

    async def allocate_producer_ids(self, broker_id: int, broker_epoch: int) -> Any:
        """AllocateProducerIds -> ProducerIdsBlock."""
        return await self._write("allocate_producer_ids",
                                 lambda: self.producer_ids.generate_next_producer_id(broker_id, broker_epoch))

    async def incremental_alter_configs(self, resources: Sequence[Any], validate_only: bool) -> Any:
        """IncrementalAlterConfigs -> [ConfigResult]."""
        return await self._write("incremental_alter_configs", lambda: self.configs.incremental_alter_configs(
            resources, validate_only, lambda name: name in self.replication.topics_by_name), user_op=True)

    async def elect_leaders(self, partitions: Sequence[tuple[str, int]], election: str) -> Any:
        """ElectLeaders -> [(topic, partition, error, message)]."""
        return await self._write("elect_leaders", lambda: self.replication.elect_leaders(partitions, election),
                                 user_op=True, offload=True)

    async def alter_client_quotas(self, alterations: Sequence[QuotaAlteration], validate_only: bool = False) -> Any:
        """AlterClientQuotas -> [(error, message)] per entry (``validate_only``: no records)."""
        def op() -> ControllerResult:
            result = self.state.client_quotas.alter_client_quotas(alterations)
            return ControllerResult((), result.response) if validate_only else result
        return await self._write("alter_client_quotas", op)

    async def alter_user_scram_credentials(self, deletions: Sequence[Any], upsertions: Sequence[Any]) -> Any:
        """AlterUserScramCredentials -> [(user, error, message)]."""
        return await self._write("alter_user_scram_credentials",
                                 lambda: self.state.scram.alter_credentials(deletions, upsertions))

    async def create_acls(self, acls: Sequence[StandardAcl]) -> Any:
        """CreateAcls -> [AclCreateResult] (AclControlManager)."""
        return await self._write("create_acls", lambda: self.state.acls.create_acls(acls), user_op=True)

    async def delete_acls(self, filters: Sequence[AclFilter]) -> Any:
        """DeleteAcls -> [AclDeleteResult] (AclControlManager)."""
        return await self._write("delete_acls", lambda: self.state.acls.delete_acls(filters), user_op=True)

    async def alter_partition_reassignments(self, targets: Sequence[tuple[str, int, Sequence[int] | None]]) -> Any:
        """AlterPartitionReassignments -> [(topic, partition, error, message)]."""
        return await self._write("alter_partition_reassignments",
                                 lambda: self.replication.alter_partition_reassignments(targets))

    def list_partition_reassignments(self, wanted: Sequence[tuple[str, int]] | None) -> Any:
        """ListPartitionReassignments from the committed state -> {(topic, partition):
        PartitionRegistration}. ControllerError NOT_CONTROLLER on a standby (Kafka reads it on
        the active controller's event queue)."""
        if not self.is_active():
            raise ControllerError(ErrorCode.not_controller, f"node {self.node_id} is not the active controller")
        return self.replication.list_partition_reassignments(wanted)
