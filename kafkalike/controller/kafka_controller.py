"""KafkaController: the ZooKeeper-era controller -- election, one event queue, and what it does
on failover, broker start-up and failure, topic creation and deletion, controlled shutdown,
preferred-replica election, partition reassignment and ISR change notifications (Kafka's
kafka.controller.KafkaController, ZooKeeper mode; docs/design.md decision 3 and section 3).

Election. Every broker runs a KafkaController. On start-up (and whenever ``/controller``
vanishes) it tries ``KafkaZkClient.register_controller_and_increment_epoch``: ONE multi-op
that creates the ephemeral ``/controller`` and bumps ``/controller_epoch`` conditionally on
its zkVersion. The winner becomes active (``controller_elected``); losers keep an exists
watch on ``/controller`` and try again when it is deleted. The epoch's zkVersion returned by
the multi-op is the fencing token: every controller write is a multi-op with a CheckOp on it
(``ControllerMoved`` when another controller was elected since), and in addition a controller
that is no longer active refuses to write at all. A controller whose ZooKeeper session
expires resigns at once (``controller_resigned``), before the expiry event is even processed.

One event queue. ZooKeeper watch firings (delivered by ZooKeeperClient straight into the
queue as WatchEvents), broker requests (ControlledShutdown), StopReplica answers and timers
(auto leader rebalance) are items on ONE trio memory channel, processed one at a time by one
task (Kafka's ControllerEventManager). Watches are one-shot: each handler re-reads the znode
and re-arms its watch in the same call. Events that need the active controller are ignored by
an inactive one.

Source: Kafka core 2.x/3.x, kafka.controller.KafkaController (onControllerFailover,
onBrokerStartup, onBrokerFailure, onNewPartitionCreation, onPartitionReassignment,
doControlledShutdown, processIsrChangeNotification, checkAndTriggerAutoLeaderRebalance).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs
import structlog
import trio

from kafkalike.controller.controller_channel_manager import (
    ControllerBrokerRequestBatch,
    ControllerChannelManager,
    max_versions_for_ibp,
)
from kafkalike.controller.controller_context import (
    ControllerContext,
    PartitionState,
    ReplicaState,
    chunks,
    tp_order,
)
from kafkalike.controller.fenced_zk_client import FencedZkClient
from kafkalike.controller.leader_election import LeaderElection
from kafkalike.controller import reassignment
from kafkalike.controller.partition_state_machine import (
    ElectionStrategy,
    PartitionStateMachine,
)
from kafkalike.controller.reassignment import AlterReassignmentsReply, ListReassignmentsReply
from kafkalike.controller.replica_state_machine import ReplicaStateMachine
from kafkalike.controller.state_change_logger import NULL_STATE_CHANGE_LOG, StateChangeLog, StateChangeLogger
from kafkalike.controller.topic_deletion_manager import TopicDeletionManager
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.errors import (
    BadVersion,
    ConnectionLoss,
    NoNode,
    OperationTimeout,
    ZooKeeperError,
)
from kafkalike.coordination.kafka_zk_client import ControllerMoved, KafkaZkClient
from kafkalike.coordination.zk_data import LeaderIsrAndControllerEpoch, TopicPartition
from kafkalike.coordination.zookeeper_client import (
    SessionEvent,
    SessionState,
    Watch,
    WatchEvent,
    WatchEventType,
    ZooKeeperClient,
)
from kafkalike.protocol.controlled_shutdown import ControlledShutdownResponse, RemainingPartition
from kafkalike.protocol.errors import ErrorCode, kafka_name

log = structlog.get_logger(__name__)
PS, RS = PartitionState, ReplicaState

#: Kafka's defaults for the keys the controller reads (used when ``config`` lacks one)
CONTROLLER_DEFAULTS: dict[str, Any] = {
    "unclean.leader.election.enable": False,
    "delete.topic.enable": True,
    "auto.leader.rebalance.enable": True,
    "leader.imbalance.check.interval.seconds": 300,
    "leader.imbalance.per.broker.percentage": 10,
    "controller.socket.timeout.ms": 30000,
    "inter.broker.listener.name": None,
    "inter.broker.protocol.version": None,
}


#: znodes read in one pipelined batch when the controller reads many topics (_read_topics)
READ_CHUNK = 1000


# ---- events -------------------------------------------------------------------------------------

@attrs.frozen
class Startup:
    """The controller starts: watch /controller and try to become controller."""


@attrs.frozen
class ControllerChange:
    """/controller was created or changed (or must be re-read)."""


@attrs.frozen
class Reelect:
    """/controller vanished (or a new session began): try to become controller."""


@attrs.frozen
class Expire:
    """The ZooKeeper session expired: resign (already done at once) and clean up.

    ``expiry`` counts this controller's session expiries (1, 2, ...): a controller elected
    after that expiry ignores the event (see KafkaController._process). Kafka needs no such
    number because it clears the queue and puts Expire first (ControllerEventManager
    .clearAndPut) and waits for it before starting the new session; kafkalike queues Expire
    behind the events already there, so an election on the new session can come first."""

    expiry: int = 0


@attrs.frozen
class BrokerChange:
    """/brokers/ids children changed: brokers came, went or bounced."""


@attrs.frozen
class BrokerModification:
    """/brokers/ids/<id> data changed (e.g. new endpoints)."""

    broker_id: int


@attrs.frozen
class TopicChange:
    """/brokers/topics children changed: topics created (or their znodes removed)."""


@attrs.frozen
class PartitionModifications:
    """/brokers/topics/<t> data changed: partitions added (CreatePartitions)."""

    topic: str


@attrs.frozen
class TopicDeletion:
    """/admin/delete_topics children changed: topics marked for deletion."""


@attrs.frozen
class TopicDeletionStopReplicaResponseReceived:
    """A broker answered StopReplica(delete=true): per-partition error codes."""

    broker_id: int
    error_code: int
    partition_errors: tuple[tuple[TopicPartition, int], ...]


@attrs.frozen
class PartitionReassignment:
    """/admin/reassign_partitions was created (``created``), or changed or deleted (then only
    its watch is re-armed)."""

    created: bool = True


@attrs.frozen
class ApiPartitionReassignment:
    """An admin client's AlterPartitionReassignments: {partition: target replicas, or None to
    cancel} (Kafka's ApiPartitionReassignment event)."""

    reassignments: Mapping[TopicPartition, tuple[int, ...] | None]
    reply: AlterReassignmentsReply


@attrs.frozen
class ListPartitionReassignments:
    """An admin client's ListPartitionReassignments (partitions None = all)."""

    partitions: frozenset[TopicPartition] | None
    reply: ListReassignmentsReply


@attrs.frozen
class PartitionReassignmentIsrChange:
    """The state of a partition being reassigned changed: maybe its new replicas joined the ISR."""

    tp: TopicPartition


@attrs.frozen
class PreferredReplicaLeaderElection:
    """/admin/preferred_replica_election was created or changed."""


@attrs.frozen
class AutoPreferredReplicaLeaderElection:
    """Periodic (leader.imbalance.check.interval.seconds) leader imbalance check."""


@attrs.frozen
class IsrChangeNotification:
    """/isr_change_notification children changed: leaders changed ISRs."""


@attrs.define(eq=False)
class ControlledShutdownReply:
    """Where the ControlledShutdown event puts its answer for the waiting request handler."""

    done: trio.Event = attrs.Factory(trio.Event)
    error: ErrorCode = ErrorCode.none
    remaining: list[TopicPartition] = attrs.Factory(list)


@attrs.frozen
class ControlledShutdown:
    """A broker asked to shut down cleanly (ControlledShutdown request)."""

    broker_id: int
    broker_epoch: int
    reply: ControlledShutdownReply


class ElectionType(enum.IntEnum):
    """ElectLeaders' election_type (Kafka's org.apache.kafka.common.ElectionType)."""

    PREFERRED = 0
    UNCLEAN = 1


@attrs.define(eq=False)
class ElectLeadersReply:
    """Where the ReplicaLeaderElection event puts its per-partition answer: {partition:
    (error code, message or None, new leader id or -1)} -- NONE (with the new leader), ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE,
    ELIGIBLE_LEADERS_NOT_AVAILABLE, INVALID_TOPIC_EXCEPTION (topic being deleted),
    UNKNOWN_TOPIC_OR_PARTITION, NOT_CONTROLLER."""

    done: trio.Event = attrs.Factory(trio.Event)
    results: dict[TopicPartition, tuple[ErrorCode, str | None, int]] = attrs.Factory(dict)


@attrs.frozen
class ReplicaLeaderElection:
    """An admin client's ElectLeaders (Kafka's ReplicaLeaderElection event with
    AdminClientTriggered)."""

    partitions: frozenset[TopicPartition]
    election_type: ElectionType
    reply: ElectLeadersReply


@attrs.frozen
class _Resync:
    """An event failed half-way on a ZooKeeper connection loss: re-read everything."""


@attrs.frozen
class _ShutdownEventThread:
    """Stop the event loop."""


ControllerEvent = Any


@attrs.frozen
class ControllerStatistics:
    """The controller in one value (trio-style ``statistics()``)."""

    broker_id: int
    active: bool
    active_controller_id: int | None
    epoch: int
    epoch_zk_version: int
    live_brokers: tuple[int, ...]
    shutting_down_brokers: tuple[int, ...]
    topics: int
    partitions: int
    offline_partitions: int
    preferred_replica_imbalance: int
    topics_to_delete: tuple[str, ...]
    partitions_being_reassigned: int
    event_queue_size: int
    events_processed: int
    last_event: str | None
    resignations: int


class KafkaController:
    """One broker's controller (see module doc).

    broker_id: this broker. config: Kafka's property names (a KafkaConfig or a plain mapping;
    missing keys take CONTROLLER_DEFAULTS). zk: a started ZooKeeperClient (or given later by
    ``attach`` / ``start``). Run with ``await nursery.start(controller.run)`` (or ``await
    controller.start(nursery, zk)``); stop with ``controller.shutdown()`` (or ``await
    controller.stop()``). The constructor builds the components, each from what it uses
    (docs/controller.md "Wiring").
    """

    def __init__(self, broker_id: int, config: Mapping[str, Any] | Any = None,
                 zk: ZooKeeperClient | None = None,
                 state_change_log: StateChangeLog = NULL_STATE_CHANGE_LOG) -> None:
        self.broker_id = broker_id
        self.config = config if config is not None else {}
        self.zk: ZooKeeperClient | None = None
        # the components, built as Kafka's KafkaController builds them, each from exactly what it
        # uses (no component receives the controller): the context, the channel manager (started
        # by run) and its request batch, the fenced ZooKeeper client (its KafkaZkClient given by
        # attach), the state machines and the topic deletion manager
        self.context = ControllerContext()
        self._fenced_zk = FencedZkClient(None, is_active=lambda: self._active, broker_id=lambda: self.broker_id)
        self._kafka_zk: Any = self._fenced_zk
        self.channel = ControllerChannelManager(
            broker_id, request_timeout_ms=float(self.config_value("controller.socket.timeout.ms")),
            max_versions=max_versions_for_ibp(self.config_value("inter.broker.protocol.version")))
        # state_change_log: the broker's state-change.log (Kafka's StateChangeLogger in controller context)
        scl = StateChangeLogger(broker_id, in_controller_context=True, log=state_change_log)
        self.channel.state_change_logger, self.channel.controller_epoch = scl, lambda: self.context.epoch
        self.batch = ControllerBrokerRequestBatch(self.context, self.channel, broker_id,
                                                  stop_replica_callback=self._on_stop_replica_response,
                                                  state_change_logger=scl)
        self.replica_state_machine = ReplicaStateMachine(self.context, self._fenced_zk, self.batch, scl)
        self.partition_state_machine = PartitionStateMachine(self.context, self._fenced_zk, self.batch,
                                                             self.unclean_leader_election_enabled, scl)
        self.topic_deletion_manager = TopicDeletionManager(
            self.context, self.replica_state_machine, self.partition_state_machine, self._fenced_zk,
            delete_topic_enable=bool(self.config_value("delete.topic.enable")),
            send_update_metadata=self.send_update_metadata_request)
        self.active_controller_id: int | None = None
        self._active = False
        self._events_send, self._events_recv = trio.open_memory_channel[ControllerEvent](math.inf)
        self._watches: dict[tuple[str, str], Watch] = {}
        self._nursery: trio.Nursery | None = None
        self._rebalance_scope: trio.CancelScope | None = None
        self.events_processed = 0
        self.event_times: dict[str, list[float]] = {}  # event name -> [count, total ms] (metrics)
        self.resignations = 0
        #: session expiries seen (Expire.expiry), and how many had been seen at the last election
        self._expiries = 0
        self._elected_after_expiries = -1
        self.last_event: str | None = None
        self.stopped = trio.Event()
        self._stopping = False
        self._event_scope: trio.CancelScope | None = None
        self.became_active = trio.Event()
        if zk is not None:
            self.attach(zk)

    def attach(self, zk: ZooKeeperClient) -> None:
        """Use ``zk`` (started) for everything."""
        self.zk = zk
        self._fenced_zk.attach(KafkaZkClient(zk))
        self.kafka_zk = self._fenced_zk

    def _unfenced_zk(self) -> KafkaZkClient:
        """A KafkaZkClient without the is-active fence, for the controller's own election and
        its deletion of /controller (both guarded by /controller_epoch's zkVersion instead)."""
        assert self.zk is not None, "KafkaController needs a ZooKeeperClient (attach())"
        return KafkaZkClient(self.zk)

    @property
    def kafka_zk(self) -> Any:
        """The ZooKeeper client the controller and its components read and write through: a
        FencedZkClient (writes refused once this controller is inactive, and guarded by the
        controller epoch). Assigning another client (tests inject one) hands it to the state
        machines and the deletion manager as well."""
        return self._kafka_zk

    @kafka_zk.setter
    def kafka_zk(self, client: Any) -> None:
        self._kafka_zk = client
        self.partition_state_machine.zk_client = client
        self.replica_state_machine.zk_client = client
        self.topic_deletion_manager.zk_client = client

    # ---- config, state ---------------------------------------------------------------------

    def config_value(self, key: str) -> Any:
        """``config[key]``, or Kafka's default when the config lacks it."""
        try:
            return self.config[key]
        except (KeyError, TypeError):
            return CONTROLLER_DEFAULTS[key]

    async def unclean_leader_election_enabled(self, topic: str) -> bool:
        """unclean.leader.election.enable for ``topic``: its /config/topics override, else the
        broker's setting."""
        try:
            overrides = await self.kafka_zk.get_entity_config(zd.CONFIG_TYPE_TOPIC, topic)
        except zd.ZNodeDecodeError:
            overrides = {}
        value = overrides.get("unclean.leader.election.enable")
        if value is not None:
            return str(value).strip().lower() == "true"
        return bool(self.config_value("unclean.leader.election.enable"))

    @property
    def is_active(self) -> bool:
        """True while this broker is the active controller."""
        return self._active

    @property
    def epoch(self) -> int:
        return self.context.epoch

    def statistics(self) -> ControllerStatistics:
        """Epoch, live brokers, offline partitions, queue size ... now."""
        ctx = self.context
        imbalance = sum(1 for tp, li in ctx.leadership.items()
                        if ctx.assignments.get(tp) and li.leader != ctx.assignments[tp][0])
        return ControllerStatistics(
            broker_id=self.broker_id, active=self._active, active_controller_id=self.active_controller_id,
            epoch=ctx.epoch, epoch_zk_version=ctx.epoch_zk_version, live_brokers=tuple(sorted(ctx.live_brokers)),
            shutting_down_brokers=tuple(sorted(ctx.shutting_down)), topics=len(ctx.all_topics()),
            partitions=len(ctx.assignments), offline_partitions=ctx.offline_partition_count(),
            preferred_replica_imbalance=imbalance, topics_to_delete=tuple(sorted(ctx.topics_to_delete)),
            partitions_being_reassigned=len(ctx.reassigning),
            event_queue_size=self._events_recv.statistics().current_buffer_used,
            events_processed=self.events_processed, last_event=self.last_event,
            resignations=self.resignations)

    # ---- lifecycle -------------------------------------------------------------------------

    def put(self, event: ControllerEvent) -> None:
        """Add an event to the queue (never blocks)."""
        try:
            self._events_send.send_nowait(event)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the controller until ``shutdown()``: session watcher, channel manager, event loop."""
        assert self.zk is not None, "KafkaController.run needs a ZooKeeperClient (attach())"
        sessions = self.zk.session_events()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.channel.controller_id = self.batch.controller_id = self.broker_id
                self.channel.start(nursery)
                nursery.start_soon(self._watch_session, sessions)
                self.put(Startup())
                task_status.started()
                await self._event_loop()
                nursery.cancel_scope.cancel()
        finally:
            sessions.close()
            self.stopped.set()

    def shutdown(self) -> None:
        """Stop the event loop now, whatever it is doing (Kafka's KafkaController.shutdown:
        ControllerEventManager.close clears the queue, preempting the queued events, and puts
        ShutdownEventThread). Beyond Kafka, the event being processed is cancelled too (its
        cancel scope), so that a controller busy with a long event (10,000 topic deletions)
        still stops within the broker's shutdown; the controller resigns, and the
        next one rebuilds everything from ZooKeeper, as after any failover."""
        self._stopping = True
        if self._event_scope is not None:
            self._event_scope.cancel()
        self.put(_ShutdownEventThread())

    def _preempt_queued_events(self) -> int:
        """Drop every queued event; a queued ControlledShutdown or ReplicaLeaderElection is
        answered NOT_CONTROLLER (Kafka's preempt: ControllerMovedException / NOT_CONTROLLER).
        Returns how many."""
        dropped = 0
        while True:
            try:
                event = self._events_recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return dropped
            dropped += 1
            if isinstance(event, ControlledShutdown):
                event.reply.error = ErrorCode.not_controller
                event.reply.done.set()
            elif isinstance(event, ReplicaLeaderElection):
                event.reply.results = {tp: (ErrorCode.not_controller, None, -1) for tp in event.partitions}
                event.reply.done.set()
            elif isinstance(event, (ApiPartitionReassignment, ListPartitionReassignments)):
                event.reply.fail(ErrorCode.not_controller)

    async def _watch_session(self, sessions: trio.MemoryReceiveChannel[SessionEvent]) -> None:
        async for ev in sessions:
            if ev.state is SessionState.EXPIRED:
                self._expiries += 1
                if self._active:
                    self._resign_now("zookeeper session expired")
                self.put(Expire(self._expiries))
            elif ev.state is SessionState.CONNECTED and ev.new_session:
                self.put(Reelect())

    def _resign_now(self, reason: str) -> None:
        """Stop acting as controller at once (synchronously): no more writes or requests."""
        was_active = self._active
        self._active = False
        if self._rebalance_scope is not None:
            self._rebalance_scope.cancel()
            self._rebalance_scope = None
        if self.channel is not None:
            self.channel.shutdown()
        if was_active:
            self.resignations += 1
            log.warning("controller_resigned", broker_id=self.broker_id, controller_epoch=self.context.epoch,
                        reason=reason)
        listener = self.context.listener_name
        self.context.reset()
        self.context.listener_name = listener
        if self.batch is not None:
            self.batch.clear()

    # ---- the event loop ----------------------------------------------------------------------

    async def _event_loop(self) -> None:
        async for event in self._events_recv:
            if self._stopping or isinstance(event, _ShutdownEventThread):
                preempted = self._preempt_queued_events()
                if isinstance(event, ControlledShutdown):
                    event.reply.error = ErrorCode.not_controller
                    event.reply.done.set()
                elif isinstance(event, ReplicaLeaderElection):
                    event.reply.results = {tp: (ErrorCode.not_controller, None, -1) for tp in event.partitions}
                    event.reply.done.set()
                elif isinstance(event, (ApiPartitionReassignment, ListPartitionReassignments)):
                    event.reply.fail(ErrorCode.not_controller)
                log.info("controller_event_loop_stopping", broker_id=self.broker_id, preempted_events=preempted)
                await self._on_shutdown()
                return
            if isinstance(event, WatchEvent):
                event = self._translate_watch(event)
                if event is None:
                    continue
            self.last_event = type(event).__name__
            started = trio.current_time()
            try:
                with trio.CancelScope() as self._event_scope:
                    await self._process(event)
                if self._event_scope.cancelled_caught:
                    log.warning("controller_event_cancelled", controller_event=self.last_event,
                                reason="controller shutting down")
                    if isinstance(event, ControlledShutdown):
                        event.reply.error = ErrorCode.not_controller
                        event.reply.done.set()
            except ControllerMoved as exc:
                log.warning("controller_moved", broker_id=self.broker_id, controller_event=self.last_event, error=str(exc))
                self._resign_now("controller moved")
                self.put(ControllerChange())
            except ZooKeeperError as exc:
                log.error("controller_event_zk_error", controller_event=self.last_event, error=repr(exc))
                if isinstance(exc, (ConnectionLoss, OperationTimeout)) and self._nursery is not None:
                    # the event may have stopped half-way: an active controller re-reads everything
                    # once connected (_Resync); election events are simply retried
                    retry = _Resync() if self._active else event
                    if not isinstance(event, ControlledShutdown):
                        self._nursery.start_soon(self._requeue_when_connected, retry)
                if isinstance(event, ControlledShutdown):
                    event.reply.error = ErrorCode.unknown_server_error
                    event.reply.done.set()
            except Exception as exc:
                log.exception("controller_event_failed", controller_event=self.last_event, error=repr(exc))
                if isinstance(event, ControlledShutdown):
                    event.reply.error = ErrorCode.unknown_server_error
                    event.reply.done.set()
                if self._active:
                    await self._trigger_controller_move(f"{self.last_event} failed: {exc!r}")
            finally:
                self._event_scope = None
                self.events_processed += 1
                timer = self.event_times.setdefault(self.last_event, [0, 0.0])
                timer[0], timer[1] = timer[0] + 1, timer[1] + (trio.current_time() - started) * 1000.0

    async def _requeue_when_connected(self, event: ControllerEvent) -> None:
        assert self.zk is not None
        try:
            await self.zk.wait_connected()
        except Exception:
            return
        await trio.sleep(0.1)
        self.put(event)

    async def _trigger_controller_move(self, reason: str) -> None:
        """A failure left the context unreliable: resign and delete /controller so that a
        controller (maybe this one) starts afresh from ZooKeeper (Kafka's triggerControllerMove)."""
        epoch_zk_version = self.context.epoch_zk_version
        self._resign_now(reason)
        try:
            await self._unfenced_zk().delete_controller(epoch_zk_version)
        except (ControllerMoved, ZooKeeperError):
            pass
        self.put(Reelect())

    def _translate_watch(self, ev: WatchEvent) -> ControllerEvent | None:
        path = ev.path
        if ev.type is WatchEventType.DISCONNECTED:
            # state unknown: once connected again, re-read (which re-arms)
            translated = self._translate_watch(WatchEvent(WatchEventType.CHANGED, path, ev.kind))
            if translated is not None and self._nursery is not None:
                self._nursery.start_soon(self._requeue_when_connected, translated)
            return None
        if path == zd.CONTROLLER_PATH:
            return Reelect() if ev.type is WatchEventType.DELETED else ControllerChange()
        if path == zd.BROKER_IDS_PATH:
            return BrokerChange()
        if path.startswith(zd.BROKER_IDS_PATH + "/"):
            tail = path.rsplit("/", 1)[1]
            return BrokerModification(int(tail)) if tail.isdigit() and ev.type is WatchEventType.CHANGED else None
        if path == zd.BROKER_TOPICS_PATH:
            return TopicChange()
        if path.startswith(zd.BROKER_TOPICS_PATH + "/"):
            parts = path.split("/")
            if len(parts) == 4:
                return PartitionModifications(parts[3]) if ev.type is WatchEventType.CHANGED else None
            if len(parts) == 7 and parts[6] == "state":
                return PartitionReassignmentIsrChange(TopicPartition(parts[3], int(parts[5])))
            return None
        if path == zd.DELETE_TOPICS_PATH:
            return TopicDeletion()
        if path == zd.REASSIGN_PARTITIONS_PATH:
            return PartitionReassignment(created=ev.type is WatchEventType.CREATED)
        if path == zd.PREFERRED_REPLICA_ELECTION_PATH:
            return PreferredReplicaLeaderElection()
        if path == zd.ISR_CHANGE_NOTIFICATION_PATH:
            return IsrChangeNotification()
        return None

    async def _process(self, event: ControllerEvent) -> None:
        if isinstance(event, (Startup, ControllerChange, Reelect)):
            await self._process_controller_change(reelect=not isinstance(event, ControllerChange))
            return
        if isinstance(event, Expire):
            if self._active and self._elected_after_expiries >= event.expiry:
                # elected on a new session after this expiry (the resignation it asks for was
                # done when the expiry was seen): resigning now would leave /controller held by
                # a broker that no longer acts as controller, with nobody to take over
                log.info("stale_expire_ignored", broker_id=self.broker_id, expiry=event.expiry,
                         controller_epoch=self.context.epoch)
                return
            self._resign_now("zookeeper session expired")
            return
        if isinstance(event, ControlledShutdown):
            await self._process_controlled_shutdown(event)
            return
        if isinstance(event, ReplicaLeaderElection):
            await self._process_replica_leader_election(event)
            return
        if isinstance(event, ApiPartitionReassignment):
            await self._process_api_partition_reassignment(event)
            return
        if isinstance(event, ListPartitionReassignments):
            await self._process_list_partition_reassignments(event)
            return
        if not self._active:
            return
        if isinstance(event, _Resync):
            await self._resync()
            return
        handlers: dict[type, Callable[[Any], Awaitable[None]]] = {
            BrokerChange: self._process_broker_change,
            BrokerModification: self._process_broker_modification,
            TopicChange: self._process_topic_change,
            PartitionModifications: self._process_partition_modifications,
            TopicDeletion: self._process_topic_deletion,
            TopicDeletionStopReplicaResponseReceived: self._process_stop_replica_response,
            PartitionReassignment: self._process_partition_reassignment,
            PartitionReassignmentIsrChange: self._process_reassignment_isr_change,
            PreferredReplicaLeaderElection: self._process_preferred_replica_election,
            AutoPreferredReplicaLeaderElection: self._process_auto_preferred_replica_election,
            IsrChangeNotification: self._process_isr_change_notification,
        }
        await handlers[type(event)](event)

    async def _on_shutdown(self) -> None:
        if self._active:
            epoch_zk_version = self.context.epoch_zk_version
            self._resign_now("shutdown")
            with trio.move_on_after(5):
                try:
                    await self._unfenced_zk().delete_controller(epoch_zk_version)
                except (ControllerMoved, ZooKeeperError):
                    pass
        else:
            self._resign_now("shutdown")

    # ---- watches -------------------------------------------------------------------------

    async def _children_watch(self, path: str) -> list[str]:
        assert self.zk is not None
        key = (path, "children")
        w = self._watches.get(key)
        try:
            if w is not None and w.fired is None:
                return await self.zk.get_children(path)
            children, self._watches[key] = await self.zk.get_children_and_watch(path, channel=self._events_send)
            return children
        except NoNode:
            await self.zk.ensure_path(path)
            children, self._watches[key] = await self.zk.get_children_and_watch(path, channel=self._events_send)
            return children

    async def _exists_watch(self, path: str) -> Any:
        assert self.zk is not None
        key = (path, "exists")
        w = self._watches.get(key)
        if w is not None and w.fired is None:
            return await self.zk.exists(path)
        stat, self._watches[key] = await self.zk.exists_and_watch(path, channel=self._events_send)
        return stat

    async def _data_watch(self, path: str) -> tuple[bytes, Any] | None:
        """Read ``path`` and keep a data watch on it; None (no watch) if absent."""
        assert self.zk is not None
        key = (path, "data")
        w = self._watches.get(key)
        try:
            if w is not None and w.fired is None:
                return await self.zk.get(path)
            data, stat, self._watches[key] = await self.zk.get_and_watch(path, channel=self._events_send)
            return data, stat
        except NoNode:
            return None

    # ---- election -------------------------------------------------------------------------

    async def _process_controller_change(self, reelect: bool) -> None:
        """Re-read /controller (re-arming its watch); resign if someone else holds it; try to
        become controller if nobody does (Kafka's processControllerChange / processReelect)."""
        stat = await self._exists_watch(zd.CONTROLLER_PATH)
        active_id = await self.kafka_zk.get_controller_id() if stat is not None else None
        self.active_controller_id = active_id
        if self._active and active_id != self.broker_id:
            self._resign_now(f"/controller now names broker {active_id}")
        if active_id is None:
            await self._elect()

    async def _elect(self) -> None:
        """Try to become controller (Kafka's KafkaController.elect)."""
        try:
            epoch = await self._unfenced_zk().register_controller_and_increment_epoch(self.broker_id)
        except ControllerMoved:
            self.active_controller_id = await self.kafka_zk.get_controller_id()
            log.info("controller_election_lost", broker_id=self.broker_id, active_controller=self.active_controller_id)
            if self.active_controller_id is None:
                self.put(ControllerChange())  # vanished again meanwhile: re-check (and re-elect)
            return
        self._active = True
        self._elected_after_expiries = self._expiries
        self.active_controller_id = self.broker_id
        self.context.epoch = epoch.epoch
        self.context.epoch_zk_version = epoch.zk_version
        await self._on_controller_failover()

    async def _on_controller_failover(self) -> None:
        """Become the active controller: read all state from ZooKeeper (arming the watches),
        send UpdateMetadata to every live broker, then start the replica and partition state
        machines (LeaderAndIsr), then resume deletions, reassignments, preferred elections
        (Kafka's onControllerFailover)."""
        ctx = self.context
        listener = self.config_value("inter.broker.listener.name")
        ctx.listener_name = listener if listener else None
        log.info("controller_failover_started", broker_id=self.broker_id, controller_epoch=ctx.epoch)
        t0 = trio.current_time()
        # watches first, so that nothing that happens while we read is missed
        await self._exists_watch(zd.REASSIGN_PARTITIONS_PATH)
        await self._exists_watch(zd.PREFERRED_REPLICA_ELECTION_PATH)
        await self._children_watch(zd.ISR_CHANGE_NOTIFICATION_PATH)
        # read everything
        for broker_id in sorted(int(b) for b in await self._children_watch(zd.BROKER_IDS_PATH) if b.isdigit()):
            await self._read_broker(broker_id)
        await self._read_topics(await self._children_watch(zd.BROKER_TOPICS_PATH), with_states=True)
        deletions = await self._children_watch(zd.DELETE_TOPICS_PATH)
        assert self.channel is not None
        for broker_id in sorted(ctx.live_brokers):
            self._add_channel(broker_id)
        # UpdateMetadata to all live brokers BEFORE any LeaderAndIsr
        await self._send_update_metadata_in_chunks(sorted(ctx.live_brokers), sorted(ctx.leadership, key=tp_order))
        await self.replica_state_machine.startup()
        await self.partition_state_machine.startup()
        await self.topic_deletion_manager.init(
            [t for t in deletions if ctx.has_topic(t)],
            [t for t in deletions if any(r not in ctx.live_brokers for _, r in ctx.replicas_for_topic(t))])
        for t in [t for t in deletions if not ctx.has_topic(t)]:  # stale marks
            await self.kafka_zk.guarded_delete(zd.delete_topic_path(t), ctx.epoch_zk_version)
        self.became_active.set()
        log.info("controller_failover_done", broker_id=self.broker_id, controller_epoch=ctx.epoch,
                 live_brokers=sorted(ctx.live_brokers), topics=len(ctx.all_topics()),
                 partitions=len(ctx.assignments), offline_partitions=ctx.offline_partition_count(),
                 ms=round((trio.current_time() - t0) * 1000, 1))
        await self._initialize_partition_reassignments()
        await self.topic_deletion_manager.resume_deletions()
        await self._process_preferred_replica_election(PreferredReplicaLeaderElection())
        await self._process_isr_change_notification(IsrChangeNotification())
        if self.config_value("auto.leader.rebalance.enable") and self._nursery is not None:
            self._rebalance_scope = trio.CancelScope()
            self._nursery.start_soon(self._auto_rebalance_timer, self._rebalance_scope)

    async def _resync(self) -> None:
        """Rebuild the context from ZooKeeper with the same epoch (after an event was cut short
        by a connection loss), if this broker still holds /controller at our epoch."""
        ctx = self.context
        epoch = await self.kafka_zk.get_controller_epoch()
        if await self.kafka_zk.get_controller_id() != self.broker_id or epoch is None \
                or epoch.zk_version != ctx.epoch_zk_version:
            self._resign_now("controller moved during a connection loss")
            self.put(ControllerChange())
            return
        log.warning("controller_resync", broker_id=self.broker_id, controller_epoch=ctx.epoch)
        if self._rebalance_scope is not None:
            self._rebalance_scope.cancel()
            self._rebalance_scope = None
        keep = (ctx.epoch, ctx.epoch_zk_version, ctx.listener_name)
        ctx.reset()
        ctx.epoch, ctx.epoch_zk_version, ctx.listener_name = keep
        self.batch.clear()
        if self.channel is not None:
            self.channel.shutdown()
        await self._on_controller_failover()

    async def _auto_rebalance_timer(self, scope: trio.CancelScope) -> None:
        interval = float(self.config_value("leader.imbalance.check.interval.seconds"))
        with scope:
            while True:
                await trio.sleep(interval)
                self.put(AutoPreferredReplicaLeaderElection())

    # ---- reading ZooKeeper into the context --------------------------------------------------

    async def _read_broker(self, broker_id: int) -> bool:
        """Read /brokers/ids/<id> (with a data watch) into the context; False if it is gone."""
        got = await self._data_watch(zd.broker_id_path(broker_id))
        if got is None:
            return False
        data, stat = got
        self.context.broker_info[broker_id] = zd.BrokerRegistration.from_json(broker_id, data)
        self.context.live_brokers[broker_id] = stat.czxid
        return True

    def _add_channel(self, broker_id: int) -> None:
        ep = self.context.inter_broker_endpoint(broker_id)
        if ep is not None and self.channel is not None:
            self.channel.add_broker(broker_id, ep.host, ep.port)

    async def _read_topic(self, topic: str, with_states: bool) -> list[TopicPartition]:
        """Read /brokers/topics/<t> (with a data watch) into the context; returns the
        partitions that were not known before."""
        ctx = self.context
        got = await self._data_watch(zd.topic_path(topic))
        if got is None:
            return []
        assignment = zd.TopicAssignment.from_json(topic, got[0])
        if assignment.topic_id:
            ctx.topic_ids[topic] = assignment.topic_id
        new = []
        for p, ra in sorted(assignment.partitions.items()):
            tp = TopicPartition(topic, p)
            if tp not in ctx.assignments:
                new.append(tp)
                ctx.assignments[tp] = list(ra.replicas)
                if ra.adding_replicas or ra.removing_replicas:
                    ctx.reassigning[tp] = (tuple(ra.adding_replicas), tuple(ra.removing_replicas))
        if with_states:
            # one pipelined batch of reads (a 10,000-partition topic: ~8 s one by one, 16 at
            # a time, in a benchmark's controller failover)
            tps = [TopicPartition(topic, p) for p in sorted(assignment.partitions)]
            ctx.leadership.update(await self.kafka_zk.get_partition_states(tps))
        return new

    async def _read_topics(self, topics: Iterable[str], with_states: bool) -> list[TopicPartition]:
        """``_read_topic`` for many topics: their znodes read (and data watches armed) in one
        pipelined batch, and with ``with_states`` all their partition states in another (Kafka
        reads them with one batch of GetDataRequests), instead of a round trip per topic:
        10,000 new topics took ~40 s one by one here. Returns the new partitions."""
        assert self.zk is not None
        ctx = self.context
        topics = list(topics)
        fresh = [t for t in topics
                 if (w := self._watches.get((zd.topic_path(t), "data"))) is None or w.fired is not None]
        fresh_set = set(fresh)
        armed = [t for t in topics if t not in fresh_set]
        got: dict[str, bytes] = {}
        # READ_CHUNK paths a batch: each path's request and watch are set up in the step that
        # sends the batch (~60 us a path: 10,000 in one batch held the event loop ~0.6 s)
        for batch in chunks(fresh, READ_CHUNK):
            for t, r in zip(batch, await self.zk.get_many_and_watch([zd.topic_path(t) for t in batch],
                                                                   channel=self._events_send)):
                if r is not None:
                    got[t] = r[0]
                    self._watches[(zd.topic_path(t), "data")] = r[2]
        for t in armed:  # a watch is still armed there: read without arming another
            one = await self._data_watch(zd.topic_path(t))
            if one is not None:
                got[t] = one[0]
        new: list[TopicPartition] = []
        every: list[TopicPartition] = []
        for i, topic in enumerate(topics):
            if i and i % 500 == 0:
                await trio.sleep(0)
            if topic not in got:
                continue
            assignment = zd.TopicAssignment.from_json(topic, got[topic])
            if assignment.topic_id:
                ctx.topic_ids[topic] = assignment.topic_id
            for p, ra in sorted(assignment.partitions.items()):
                tp = TopicPartition(topic, p)
                every.append(tp)
                if tp not in ctx.assignments:
                    new.append(tp)
                    ctx.assignments[tp] = list(ra.replicas)
                    if ra.adding_replicas or ra.removing_replicas:
                        ctx.reassigning[tp] = (tuple(ra.adding_replicas), tuple(ra.removing_replicas))
        if with_states and every:
            for tps in chunks(every, READ_CHUNK):
                ctx.leadership.update(await self.kafka_zk.get_partition_states(tps))
        return new

    # ---- sending -------------------------------------------------------------------------

    def send_update_metadata_request(self, broker_ids: Iterable[int], partitions: Iterable[TopicPartition] = ()
                                     ) -> None:
        """UpdateMetadata (live brokers + ``partitions``) to ``broker_ids``, now."""
        self.batch.new_batch()
        self.batch.add_update_metadata_request_for_brokers(list(broker_ids), list(partitions))
        self.batch.send_requests_to_brokers(self.context.epoch)

    async def _send_update_metadata_in_chunks(self, broker_ids: list[int], partitions: list[TopicPartition]) -> None:
        """UpdateMetadata for ``partitions`` (all of the cluster's, at failover or a broker's
        start-up) to ``broker_ids``: STATE_CHANGE_CHUNK partitions a request, with a checkpoint
        in between (the entries of 10,000 partitions held the event loop ~0.7 s, and the
        receiving broker's cache update as long again); one request with the live brokers
        alone when there are none. Kafka sends one request."""
        if not partitions:
            self.send_update_metadata_request(broker_ids, [])
        for i, chunk in enumerate(chunks(partitions)):
            if i:
                await trio.lowlevel.checkpoint()
            self.send_update_metadata_request(broker_ids, chunk)

    def _on_stop_replica_response(self, broker_id: int, response: Any) -> None:
        errors = tuple((TopicPartition(e.topic_name, e.partition_index), e.error_code)
                       for e in response.partition_errors)
        self.put(TopicDeletionStopReplicaResponseReceived(broker_id, response.error_code, errors))

    # ---- brokers -------------------------------------------------------------------------

    async def _process_broker_change(self, _: BrokerChange) -> None:
        """Brokers came, went or bounced (Kafka's processBrokerChange)."""
        ctx = self.context
        ids = {int(b) for b in await self._children_watch(zd.BROKER_IDS_PATH) if b.isdigit()}
        known = set(ctx.live_brokers)
        new, dead, bounced = sorted(ids - known), sorted(known - ids), []
        for broker_id in sorted(ids & known):
            got = await self.kafka_zk.get_broker(broker_id)
            if got is None:
                dead.append(broker_id)
            elif got.broker_epoch != ctx.live_brokers[broker_id]:
                bounced.append(broker_id)
        log.info("broker_change", live=sorted(ids), new=new, dead=dead, bounced=bounced)
        if new:
            added = [b for b in new if await self._read_broker(b)]
            for b in added:
                self._add_channel(b)
            await self.on_broker_startup(added)
        if bounced:
            for b in bounced:
                self._remove_live_broker(b)
            await self.on_broker_failure(bounced)
            added = [b for b in bounced if await self._read_broker(b)]
            for b in added:
                self._add_channel(b)
            await self.on_broker_startup(added)
        if dead:
            for b in dead:
                self._remove_live_broker(b)
            await self.on_broker_failure(dead)

    def _remove_live_broker(self, broker_id: int) -> None:
        self.context.live_brokers.pop(broker_id, None)
        self.context.broker_info.pop(broker_id, None)
        if self.channel is not None:
            self.channel.remove_broker(broker_id)
        self._watches.pop((zd.broker_id_path(broker_id), "data"), None)

    async def on_broker_startup(self, new_brokers: list[int]) -> None:
        """New brokers: UpdateMetadata (broker list) to the others, full UpdateMetadata to the
        new ones, their replicas -> OnlineReplica (LeaderAndIsr), then elect leaders for
        partitions that were offline (Kafka's onBrokerStartup)."""
        if not new_brokers:
            return
        ctx = self.context
        log.info("broker_startup", brokers=new_brokers, broker_epochs={b: ctx.live_brokers[b] for b in new_brokers})
        existing = sorted(set(ctx.live_brokers) - set(new_brokers))
        self.send_update_metadata_request(existing, [])
        await self._send_update_metadata_in_chunks(new_brokers, sorted(ctx.leadership, key=tp_order))
        replicas = ctx.replicas_on_brokers(set(new_brokers))
        await self.replica_state_machine.handle_state_changes(
            [(tp, r) for tp, r in replicas if tp.topic not in ctx.topics_to_delete], RS.OnlineReplica)
        await self.partition_state_machine.trigger_online_partition_state_change()
        # reassignments with replicas on the new brokers start over (Kafka's onBrokerStartup)
        for tp in sorted({tp for tp, _r in replicas if tp in ctx.reassigning}):
            if tp in ctx.reassigning:
                await self._on_partition_reassignment(tp, ctx.full_assignment(tp))
        await self.topic_deletion_manager.resume_deletion_for_topics({tp.topic for tp, _ in replicas})

    async def on_broker_failure(self, dead_brokers: list[int]) -> None:
        """Dead brokers: their leaderships move (offline-partition election), they leave the
        ISRs, LeaderAndIsr to the remaining replicas, UpdateMetadata to all (Kafka's
        onBrokerFailure / onReplicasBecomeOffline)."""
        if not dead_brokers:
            return
        ctx = self.context
        ctx.shutting_down -= set(dead_brokers)
        log.warning("broker_failure", brokers=dead_brokers)
        replicas = ctx.replicas_on_brokers(set(dead_brokers))
        await self.on_replicas_become_offline(replicas)

    async def on_replicas_become_offline(self, replicas: list[tuple[TopicPartition, int]]) -> None:
        ctx = self.context
        for_deletion = [(tp, r) for tp, r in replicas if tp.topic in ctx.topics_to_delete]
        others = [(tp, r) for tp, r in replicas if tp.topic not in ctx.topics_to_delete]
        offline_leader = sorted((tp for tp, li in ctx.leadership.items()
                                 if tp.topic not in ctx.topics_to_delete and li.leader >= 0
                                 and not ctx.is_replica_online(tp, li.leader)), key=tp_order)
        await self.partition_state_machine.handle_state_changes(offline_leader, PS.OfflinePartition)
        await self.partition_state_machine.trigger_online_partition_state_change()
        await self.replica_state_machine.handle_state_changes(others, RS.OfflineReplica)
        if for_deletion:
            await self.topic_deletion_manager.fail_replica_deletion(for_deletion)
        if not offline_leader:
            self.send_update_metadata_request(sorted(ctx.live_brokers), [])

    async def _process_broker_modification(self, event: BrokerModification) -> None:
        """A broker rewrote its registration: new endpoints -> UpdateMetadata to all."""
        ctx = self.context
        if event.broker_id not in ctx.live_brokers:
            return
        old = ctx.broker_info.get(event.broker_id)
        if not await self._read_broker(event.broker_id):
            return
        if old is not None and old.endpoints != ctx.broker_info[event.broker_id].endpoints:
            log.info("broker_modified", broker=event.broker_id,
                     endpoints=[e.connection_string for e in ctx.broker_info[event.broker_id].endpoints])
            self._add_channel(event.broker_id)
            self.send_update_metadata_request(sorted(ctx.live_brokers), [])

    # ---- topics --------------------------------------------------------------------------

    async def _process_topic_change(self, _: TopicChange) -> None:
        """New topics get partition states and leaders (Kafka's processTopicChange)."""
        ctx = self.context
        topics = set(await self._children_watch(zd.BROKER_TOPICS_PATH))
        known = ctx.all_topics()
        for gone in sorted(known - topics):  # removed behind our back
            ctx.remove_topic(gone)
        new_partitions = await self._read_topics(sorted(topics - known), with_states=False)
        if new_partitions:
            created = sorted({tp.topic for tp in new_partitions})
            log.info("topics_created", count=len(created), topics=created[:20], partitions=len(new_partitions))
            await self.on_new_partition_creation(new_partitions)

    async def _process_partition_modifications(self, event: PartitionModifications) -> None:
        """Partitions added to an existing topic (CreatePartitions)."""
        ctx = self.context
        if not ctx.has_topic(event.topic):
            return
        if event.topic in ctx.topics_to_delete:
            await self._data_watch(zd.topic_path(event.topic))
            log.info("partitions_not_added", topic=event.topic, reason="topic is being deleted")
            return
        new = await self._read_topic(event.topic, with_states=False)
        if new:
            log.info("partitions_added", topic=event.topic, partitions=[tp.partition for tp in new])
            await self.on_new_partition_creation(new)

    async def on_new_partition_creation(self, partitions: list[TopicPartition]) -> None:
        """New partitions: NewPartition, replicas NewReplica, then OnlinePartition (state
        znodes written, first live replica leads; LeaderAndIsr + UpdateMetadata), replicas
        OnlineReplica (Kafka's onNewPartitionCreation).

        STATE_CHANGE_CHUNK partitions at a time, each chunk through all four steps (its own
        LeaderAndIsr and UpdateMetadata), with a checkpoint in between: the event loop is
        never held for more than one chunk's work (10,000 new topics held it 1-3 s per step)."""
        ctx = self.context
        for i, chunk in enumerate(chunks(partitions)):
            if i:
                await trio.lowlevel.checkpoint()
            replicas = [(tp, r) for tp in chunk for r in ctx.assignments[tp]]
            await self.partition_state_machine.handle_state_changes(chunk, PS.NewPartition)
            await self.replica_state_machine.handle_state_changes(replicas, RS.NewReplica)
            await self.partition_state_machine.handle_state_changes(chunk, PS.OnlinePartition,
                                                                    ElectionStrategy.OFFLINE)
            await self.replica_state_machine.handle_state_changes(replicas, RS.OnlineReplica)

    async def _process_topic_deletion(self, _: TopicDeletion) -> None:
        """Topics marked in /admin/delete_topics: queue them (Kafka's processTopicDeletion)."""
        ctx = self.context
        marked = set(await self._children_watch(zd.DELETE_TOPICS_PATH))
        unknown = marked - ctx.all_topics()
        for topic in sorted(unknown):
            log.info("topic_deletion_mark_removed", topic=topic, reason="no such topic")
            await self.kafka_zk.guarded_delete(zd.delete_topic_path(topic), ctx.epoch_zk_version)
        await self.topic_deletion_manager.enqueue_topics_for_deletion(marked - unknown - ctx.topics_to_delete)

    async def _process_stop_replica_response(self, event: TopicDeletionStopReplicaResponseReceived) -> None:
        ctx = self.context
        ok: list[tuple[TopicPartition, int]] = []
        failed: list[tuple[TopicPartition, int]] = []
        for tp, code in event.partition_errors:
            if tp.topic not in ctx.topics_to_delete:
                continue
            if ctx.replica_state(tp, event.broker_id) is not RS.ReplicaDeletionStarted:
                continue
            (ok if code == 0 and event.error_code == 0 else failed).append((tp, event.broker_id))
        if event.error_code != 0:
            log.warning("stop_replica_failed", broker=event.broker_id, error_code=event.error_code)
        if failed:
            await self.topic_deletion_manager.fail_replica_deletion(failed)
        if ok:
            await self.topic_deletion_manager.complete_replica_deletion(ok)

    # ---- ISR changes ---------------------------------------------------------------------

    async def _process_isr_change_notification(self, _: IsrChangeNotification) -> None:
        """Leaders changed ISRs: refresh those partitions from ZooKeeper, UpdateMetadata to all
        brokers, delete the notifications (Kafka's processIsrChangeNotification)."""
        ctx = self.context
        names = await self._children_watch(zd.ISR_CHANGE_NOTIFICATION_PATH)
        if not names:
            return
        tps = await self.kafka_zk.read_and_delete_isr_change_notifications(names)
        known = sorted((tp for tp in tps if tp in ctx.assignments), key=tp_order)
        # pipelined batches (Kafka's updateLeaderAndIsrCache: getTopicPartitionStates), not a
        # round trip a partition: a leader's ISR changes after a broker's return name thousands
        for part in chunks(known, READ_CHUNK):
            ctx.leadership.update(await self.kafka_zk.get_partition_states(part))
        log.info("isr_change_processed", notifications=len(names), partitions=[str(tp) for tp in known[:20]])
        if known:
            self.send_update_metadata_request(sorted(ctx.live_brokers), known)
        for tp in known:
            if tp in ctx.reassigning:
                await self._maybe_complete_reassignment(tp)

    # ---- controlled shutdown -------------------------------------------------------------

    async def controlled_shutdown(self, broker_id: int, broker_epoch: int = -1) -> tuple[ErrorCode, list[TopicPartition]]:
        """Queue a ControlledShutdown for ``broker_id`` and wait for the answer: an error code
        (NONE, NOT_CONTROLLER, STALE_BROKER_EPOCH, BROKER_NOT_AVAILABLE) and the partitions it
        still leads (the broker retries while there are some)."""
        reply = ControlledShutdownReply()
        self.put(ControlledShutdown(broker_id, broker_epoch, reply))
        await reply.done.wait()
        return reply.error, reply.remaining

    async def handle_controlled_shutdown(self, header: Any, request: Any, conn: Any) -> ControlledShutdownResponse:
        """KafkaApis handler for ControlledShutdown v0-v3."""
        epoch = request.broker_epoch if header.api_version >= 2 else -1
        error, remaining = await self.controlled_shutdown(request.broker_id, epoch)
        return ControlledShutdownResponse(
            error_code=int(error.value), remaining_partitions=tuple(
                RemainingPartition(topic_name=tp.topic, partition_index=tp.partition) for tp in remaining))

    async def _process_controlled_shutdown(self, event: ControlledShutdown) -> None:
        """Move the broker's leaderships to other ISR members (controlled-shutdown election),
        take it out of the ISRs it follows in, answer with what it still leads (Kafka's
        doControlledShutdown)."""
        reply = event.reply
        try:
            ctx = self.context
            if not self._active:
                reply.error = ErrorCode.not_controller
                return
            broker_id = event.broker_id
            if broker_id not in ctx.live_brokers:
                reply.error = ErrorCode.broker_not_available
                return
            if event.broker_epoch >= 0 and event.broker_epoch < ctx.live_brokers[broker_id]:
                reply.error = ErrorCode.stale_broker_epoch
                return
            ctx.shutting_down.add(broker_id)
            log.info("controlled_shutdown_started", broker=broker_id)

            def act_on() -> list[TopicPartition]:
                return [tp for tp in ctx.partitions_on_broker(broker_id)
                        if len(ctx.assignments[tp]) > 1 and tp in ctx.leadership
                        and tp.topic not in ctx.topics_to_delete]

            targets = act_on()  # one scan of the cluster's partitions for both lists
            led = [tp for tp in targets if ctx.leadership[tp].leader == broker_id]
            followed = [tp for tp in targets if ctx.leadership[tp].leader != broker_id]
            await self.partition_state_machine.handle_state_changes(
                led, PS.OnlinePartition, ElectionStrategy.CONTROLLED_SHUTDOWN)
            self.batch.new_batch()
            for tp in followed:
                self.batch.add_stop_replica_request_for_brokers([broker_id], tp, delete_partition=False)
            self.batch.send_requests_to_brokers(ctx.epoch)
            await self.replica_state_machine.handle_state_changes([(tp, broker_id) for tp in followed],
                                                                  RS.OfflineReplica)
            reply.remaining = [tp for tp in act_on() if ctx.leadership[tp].leader == broker_id]
            log.info("controlled_shutdown_done", broker=broker_id, leaderships_moved=len(led) - len(reply.remaining),
                     remaining=[str(tp) for tp in reply.remaining[:20]])
        finally:
            reply.done.set()

    # ---- ElectLeaders (KIP-460) -----------------------------------------------------------

    async def elect_leaders(self, partitions: Iterable[TopicPartition], election_type: ElectionType
                            ) -> dict[TopicPartition, tuple[ErrorCode, str | None, int]]:
        """Queue an admin ElectLeaders for ``partitions`` and wait for the answer: {partition:
        (error code, message, new leader or -1)} (see ElectLeadersReply; NOT_CONTROLLER from an inactive
        controller). Kafka's KafkaController.electLeaders."""
        reply = ElectLeadersReply()
        event = ReplicaLeaderElection(frozenset(partitions), ElectionType(election_type), reply)
        if self._stopping or self.stopped.is_set():
            # the controller is stopping (broker shutting down): nobody will process the event
            return {tp: (ErrorCode.not_controller, None, -1) for tp in event.partitions}
        self.put(event)
        await reply.done.wait()
        return reply.results

    async def _process_replica_leader_election(self, event: ReplicaLeaderElection) -> None:
        """Kafka's processReplicaLeaderElection(AdminClientTriggered) and onReplicaElection:
        unknown partitions get UNKNOWN_TOPIC_OR_PARTITION, partitions of topics being deleted
        INVALID_TOPIC_EXCEPTION; PREFERRED elects where the first assigned replica does not
        lead (else ELECTION_NOT_NEEDED), with PreferredReplicaPartitionLeaderElectionStrategy;
        UNCLEAN elects where there is no live leader (else ELECTION_NOT_NEEDED), with
        OfflinePartitionLeaderElectionStrategy(allowUnclean = true), which ignores the topic's
        unclean.leader.election.enable. A failed election is PREFERRED_LEADER_NOT_AVAILABLE
        (preferred) or ELIGIBLE_LEADERS_NOT_AVAILABLE (unclean)."""
        reply, results = event.reply, event.reply.results
        try:
            if not self._active:
                results.update({tp: (ErrorCode.not_controller, None, -1) for tp in event.partitions})
                return
            ctx = self.context
            electable: list[TopicPartition] = []
            live = ctx.live_broker_ids()
            for tp in sorted(event.partitions, key=tp_order):
                if not ctx.assignments.get(tp) or tp not in ctx.leadership:
                    results[tp] = (ErrorCode.unknown_topic_or_partition, "The partition does not exist.", -1)
                elif tp.topic in ctx.topics_to_delete:
                    results[tp] = (ErrorCode.invalid_topic_exception, "The topic is being deleted", -1)
                else:
                    leader = ctx.leadership[tp].leader
                    if event.election_type is ElectionType.PREFERRED:
                        needed = leader != ctx.assignments[tp][0]
                    else:
                        needed = leader < 0 or leader not in live
                    if needed:
                        electable.append(tp)
                    else:
                        results[tp] = (ErrorCode.election_not_needed, None, -1)
            if not electable:
                return
            if event.election_type is ElectionType.PREFERRED:
                strategy, failed = ElectionStrategy.PREFERRED, ErrorCode.preferred_leader_not_available
                kafka_strategy = "PreferredReplicaPartitionLeaderElectionStrategy"
            else:
                strategy, failed = ElectionStrategy.OFFLINE_ALLOW_UNCLEAN, ErrorCode.eligible_leaders_not_available
                kafka_strategy = "OfflinePartitionLeaderElectionStrategy(true)"
            log.info("replica_leader_election", election_type=event.election_type.name, count=len(electable),
                     partitions=[str(tp) for tp in electable[:20]])
            outcomes = await self.partition_state_machine.handle_state_changes(
                electable, PS.OnlinePartition, strategy)
            for tp in electable:
                outcome = outcomes.get(tp)
                if isinstance(outcome, LeaderElection):
                    results[tp] = (ErrorCode.none, None, outcome.leader)
                else:
                    results[tp] = (failed, f"Failed to elect leader for partition {tp.topic}-{tp.partition} "
                                           f"under strategy {kafka_strategy}", -1)
        finally:
            for tp in event.partitions:
                results.setdefault(tp, (ErrorCode.not_controller if not self._active
                                        else ErrorCode.unknown_server_error, None, -1))
            reply.done.set()

    # ---- preferred replica election -----------------------------------------------------

    async def elect_preferred_leaders(self, partitions: Iterable[TopicPartition], reason: str) -> None:
        """Move leadership of ``partitions`` back to their preferred (first) replica where it
        is alive and in the ISR (Kafka's onReplicaElection with PreferredReplica strategy)."""
        ctx = self.context
        candidates = [tp for tp in sorted(set(partitions), key=tp_order)
                      if tp in ctx.leadership and ctx.assignments.get(tp)
                      and ctx.leadership[tp].leader != ctx.assignments[tp][0]
                      and ctx.partition_state(tp) is PS.OnlinePartition
                      and tp.topic not in ctx.topics_to_delete and tp not in ctx.reassigning]
        if not candidates:
            return
        log.info("preferred_replica_election", partitions=[str(tp) for tp in candidates[:20]],
                 count=len(candidates), reason=reason)
        await self.partition_state_machine.handle_state_changes(candidates, PS.OnlinePartition,
                                                                ElectionStrategy.PREFERRED)

    async def _process_preferred_replica_election(self, _: PreferredReplicaLeaderElection) -> None:
        """/admin/preferred_replica_election: elect, then delete the znode (fenced)."""
        stat = await self._exists_watch(zd.PREFERRED_REPLICA_ELECTION_PATH)
        if stat is None:
            return
        assert self.zk is not None
        try:
            data, _stat = await self.zk.get(zd.PREFERRED_REPLICA_ELECTION_PATH)
        except NoNode:
            return
        try:
            partitions = zd.PreferredReplicaElection.from_json(data).partitions
        except zd.ZNodeDecodeError as exc:
            log.error("preferred_replica_election_invalid", error=str(exc))
            partitions = frozenset()
        await self.elect_preferred_leaders(partitions, "admin")
        await self.kafka_zk.guarded_delete(zd.PREFERRED_REPLICA_ELECTION_PATH, self.context.epoch_zk_version)

    async def _process_auto_preferred_replica_election(self, _: AutoPreferredReplicaLeaderElection) -> None:
        """auto.leader.rebalance.enable: for each broker whose share of preferred leaderships it
        does not hold exceeds leader.imbalance.per.broker.percentage, elect preferred leaders
        (Kafka's checkAndTriggerAutoLeaderRebalance)."""
        ctx = self.context
        if ctx.reassigning or ctx.topics_to_delete:
            return
        threshold = float(self.config_value("leader.imbalance.per.broker.percentage")) / 100.0
        by_preferred: dict[int, list[TopicPartition]] = {}
        for tp, replicas in ctx.assignments.items():
            if replicas and tp in ctx.leadership:
                by_preferred.setdefault(replicas[0], []).append(tp)
        to_elect: list[TopicPartition] = []
        for broker_id, tps in sorted(by_preferred.items()):
            if broker_id not in ctx.live_broker_ids():
                continue
            not_led = [tp for tp in tps if ctx.leadership[tp].leader != broker_id]
            ratio = len(not_led) / len(tps)
            if ratio > threshold:
                log.info("leader_imbalance", broker=broker_id, ratio=round(ratio, 3), threshold=threshold)
                to_elect += [tp for tp in not_led if broker_id in ctx.leadership[tp].isr]
        await self.elect_preferred_leaders(to_elect, "auto_rebalance")

    # ---- partition reassignment (KIP-455) -------------------------------------------------

    async def alter_partition_reassignments(
            self, reassignments: Mapping[TopicPartition, tuple[int, ...] | None]) -> AlterReassignmentsReply:
        """Queue an AlterPartitionReassignments (target replicas per partition, None =
        cancel) and wait for the answer (Kafka's KafkaController.alterPartitionReassignments):
        a top-level NOT_CONTROLLER, or per-partition NONE / INVALID_REPLICA_ASSIGNMENT /
        UNKNOWN_TOPIC_OR_PARTITION / NO_REASSIGNMENT_IN_PROGRESS (see AlterReassignmentsReply).
        NONE means the reassignment started (or, for a cancellation, was reverted), not that
        it finished."""
        reply = AlterReassignmentsReply()
        if self._stopping or self.stopped.is_set():
            reply.fail(ErrorCode.not_controller)
            return reply
        self.put(ApiPartitionReassignment(dict(reassignments), reply))
        await reply.done.wait()
        return reply

    async def list_partition_reassignments(self, partitions: Iterable[TopicPartition] | None
                                           ) -> ListReassignmentsReply:
        """Queue a ListPartitionReassignments (None = every partition) and wait: the partitions
        being reassigned among them with their RS/AR/RR, or a top-level NOT_CONTROLLER (Kafka's
        KafkaController.listPartitionReassignments)."""
        reply = ListReassignmentsReply()
        if self._stopping or self.stopped.is_set():
            reply.fail(ErrorCode.not_controller)
            return reply
        self.put(ListPartitionReassignments(None if partitions is None else frozenset(partitions), reply))
        await reply.done.wait()
        return reply

    async def handle_alter_partition_reassignments(self, header: Any, request: Any, conn: Any) -> Any:
        """KafkaApis handler for AlterPartitionReassignments v0 (api key 45). The request's
        timeout is not used (neither does Kafka's ZooKeeper-mode handler)."""
        reply = await self.alter_partition_reassignments(reassignment.alter_request_targets(request))
        return reassignment.alter_response(reply.error, reply.results)

    async def handle_list_partition_reassignments(self, header: Any, request: Any, conn: Any) -> Any:
        """KafkaApis handler for ListPartitionReassignments v0 (api key 46)."""
        reply = await self.list_partition_reassignments(reassignment.list_request_partitions(request))
        return reassignment.list_response(reply.error, reply.results)

    async def _process_api_partition_reassignment(self, event: ApiPartitionReassignment) -> None:
        """Kafka's processApiPartitionReassignment: validate each target, build the new full
        assignment (a cancel of a partition not being reassigned: NO_REASSIGNMENT_IN_PROGRESS),
        drop those partitions from /admin/reassign_partitions (the latest request wins), start
        the reassignments."""
        reply = event.reply
        try:
            if not self._active:
                reply.error = ErrorCode.not_controller
                return
            ctx = self.context
            to_reassign: dict[TopicPartition, zd.ReplicaAssignment] = {}
            for tp, target in sorted(event.reassignments.items()):
                current = ctx.full_assignment(tp)
                invalid = (None if target is None
                           else reassignment.validate_replicas(target, current, ctx.live_broker_ids()))
                if invalid is not None:
                    reply.results[tp] = invalid
                    continue
                built = reassignment.build_reassignment(current, target)
                if built is None:
                    reply.results[tp] = (ErrorCode.no_reassignment_in_progress, reassignment.NO_REASSIGNMENT_MESSAGE)
                else:
                    to_reassign[tp] = built
            await self._remove_from_zk_reassignment(lambda tp, _replicas: tp in to_reassign)
            reply.results.update(await self._trigger_partition_reassignment(to_reassign))
        finally:
            if reply.error == ErrorCode.none:
                for tp in event.reassignments:
                    reply.results.setdefault(tp, (ErrorCode.not_controller if not self._active
                                                  else ErrorCode.unknown_server_error, None))
            reply.done.set()

    async def _process_list_partition_reassignments(self, event: ListPartitionReassignments) -> None:
        """Kafka's processListPartitionReassignments: the asked partitions (or all being
        reassigned) whose full assignment has adding or removing replicas."""
        reply = event.reply
        try:
            if not self._active:
                reply.error = ErrorCode.not_controller
                return
            ctx = self.context
            wanted = sorted(ctx.reassigning) if event.partitions is None else sorted(event.partitions)
            for tp in wanted:
                ra = ctx.full_assignment(tp)
                if ra.is_being_reassigned:
                    reply.results[tp] = ra
        finally:
            reply.done.set()

    async def _process_partition_reassignment(self, event: PartitionReassignment) -> None:
        """/admin/reassign_partitions was created: start what it lists (Kafka's
        ZkPartitionReassignment; changes and deletions only re-arm the watch, as Kafka's
        handler reacts to creation only)."""
        if event.created:
            await self._process_zk_partition_reassignment()
        else:
            await self._exists_watch(zd.REASSIGN_PARTITIONS_PATH)

    async def _process_zk_partition_reassignment(self) -> set[TopicPartition]:
        """Kafka's processZkPartitionReassignment: every partition listed in
        /admin/reassign_partitions is reassigned (beyond Kafka, a target list that
        validate_replicas refuses is dropped too); the ones that fail leave the znode.
        Returns the partitions started."""
        stat = await self._exists_watch(zd.REASSIGN_PARTITIONS_PATH)
        if stat is None:
            return set()
        assert self.zk is not None
        try:
            data, _stat = await self.zk.get(zd.REASSIGN_PARTITIONS_PATH)
            wanted = dict(zd.PartitionReassignment.from_json(data).assignments)
        except NoNode:
            return set()
        except zd.ZNodeDecodeError as exc:
            log.error("partition_reassignment_invalid", error=str(exc))
            await self.kafka_zk.guarded_delete(zd.REASSIGN_PARTITIONS_PATH, self.context.epoch_zk_version)
            return set()
        ctx = self.context
        results: dict[TopicPartition, reassignment.PartitionResult] = {}
        to_reassign: dict[TopicPartition, zd.ReplicaAssignment] = {}
        for tp, target in sorted(wanted.items()):
            current = ctx.full_assignment(tp)
            invalid = reassignment.validate_replicas(target, current, ctx.live_broker_ids())
            if invalid is not None:
                results[tp] = invalid
                continue
            built = reassignment.build_reassignment(current, target)
            assert built is not None  # a target is given
            to_reassign[tp] = built
        results.update(await self._trigger_partition_reassignment(to_reassign))
        failed = {tp: r for tp, r in results.items() if r[0] != ErrorCode.none}
        if failed:
            log.warning("partition_reassignment_rejected", source="zookeeper",
                        errors={str(tp): f"{kafka_name(code)}: {message}" for tp, (code, message) in failed.items()})
            await self._remove_from_zk_reassignment(lambda tp, _replicas: tp in failed)
        return {tp for tp, r in results.items() if r[0] == ErrorCode.none}

    async def _trigger_partition_reassignment(self, reassignments: Mapping[TopicPartition, zd.ReplicaAssignment]
                                              ) -> dict[TopicPartition, reassignment.PartitionResult]:
        """Kafka's maybeTriggerPartitionReassignment: partitions of topics being deleted or
        unknown get UNKNOWN_TOPIC_OR_PARTITION; the others' topics become ineligible for
        deletion and each goes through _on_partition_reassignment (NONE, or
        UNKNOWN_SERVER_ERROR when that failed)."""
        ctx = self.context
        results: dict[TopicPartition, reassignment.PartitionResult] = {}
        go: dict[TopicPartition, zd.ReplicaAssignment] = {}
        for tp, ra in sorted(reassignments.items()):
            if tp.topic in ctx.topics_to_delete:
                log.info("partition_reassignment_skipped", partition=str(tp), reason="topic is being deleted")
                results[tp] = (ErrorCode.unknown_topic_or_partition, reassignment.UNKNOWN_PARTITION_MESSAGE)
            elif not ctx.assignments.get(tp):
                results[tp] = (ErrorCode.unknown_topic_or_partition, reassignment.UNKNOWN_PARTITION_MESSAGE)
            else:
                go[tp] = ra
        self.topic_deletion_manager.mark_topic_ineligible_for_deletion(
            sorted({tp.topic for tp in go}), "topic reassignment in progress")
        for tp, ra in go.items():
            try:
                await self._on_partition_reassignment(tp, ra)
            except (ControllerMoved, ZooKeeperError, trio.Cancelled):
                raise
            except Exception as exc:
                log.exception("partition_reassignment_failed", partition=str(tp), error=repr(exc))
                results[tp] = (ErrorCode.unknown_server_error, None)
            else:
                results[tp] = (ErrorCode.none, None)
        return results

    async def _initialize_partition_reassignments(self) -> None:
        """On failover (Kafka's initializePartitionReassignments): start what
        /admin/reassign_partitions lists, then resume every reassignment the topic znodes show
        in flight (adding/removing replicas)."""
        resumed = await self._process_zk_partition_reassignment()
        ctx = self.context
        for tp in sorted(ctx.reassigning):
            if tp not in resumed and tp in ctx.reassigning:
                log.info("partition_reassignment_resumed", partition=str(tp))
                await self._on_partition_reassignment(tp, ctx.full_assignment(tp))

    async def _on_partition_reassignment(self, tp: TopicPartition, ra: zd.ReplicaAssignment) -> None:
        """Kafka's onPartitionReassignment with RS = ORS + TRS, AR = TRS - ORS, RR = ORS - TRS.

        While TRS is not all in the ISR: A1 leader epoch + 1 with LeaderAndIsr (new RS, AR,
        RR) to every replica; A2 AR -> NewReplica (they start fetching). Once it is: B1 AR ->
        OnlineReplica; B2 RS = TRS in memory; B3 a leader outside TRS (or offline) is
        replaced by the reassign election, else the leader epoch is bumped; B4/B5 RR ->
        Offline (out of the ISR) -> ReplicaDeletionStarted (StopReplica delete=true) ->
        Successful -> NonExistent; B6 the topic znode gets RS = TRS with no AR/RR; B7 the
        partition leaves /admin/reassign_partitions (deleted when empty); B8 UpdateMetadata
        to every broker. Raises ControllerMoved / ZooKeeperError."""
        ctx = self.context
        self.topic_deletion_manager.mark_topic_ineligible_for_deletion([tp.topic], "topic reassignment in progress")
        await self._update_current_reassignment(tp, ra)
        rsm = self.replica_state_machine
        if not await self._is_reassignment_complete(tp, ra):
            log.info("partition_reassignment_started", partition=str(tp), replicas=list(ra.replicas),
                     adding=list(ra.adding_replicas), removing=list(ra.removing_replicas))
            await self._bump_leader_epoch(tp)
            await rsm.handle_state_changes(
                [(tp, r) for r in ra.adding_replicas if ctx.replica_state(tp, r) is RS.NonExistentReplica],
                RS.NewReplica)
            return
        await rsm.handle_state_changes([(tp, r) for r in ra.adding_replicas], RS.OnlineReplica)
        completed = zd.ReplicaAssignment(ra.target_replicas)
        ctx.update_full_assignment(tp, completed)
        await self._move_reassigned_partition_leader_if_required(tp, completed)
        await self._stop_removed_replicas(tp, ra.removing_replicas)
        await self._write_topic_assignment(tp.topic)
        await self._remove_from_zk_reassignment(lambda t, replicas: t == tp and tuple(replicas) == completed.replicas)
        ctx.reassigning.pop(tp, None)
        self.send_update_metadata_request(sorted(ctx.live_or_shutting_down_broker_ids()), [tp])
        li = ctx.leadership.get(tp)
        log.info("partition_reassignment_completed", partition=str(tp), replicas=list(completed.replicas),
                 leader=li.leader if li else None, removed=list(ra.removing_replicas))
        await self.topic_deletion_manager.resume_deletion_for_topics([tp.topic])

    async def _update_current_reassignment(self, tp: TopicPartition, ra: zd.ReplicaAssignment) -> None:
        """Kafka's updateCurrentReassignment: a new full assignment is written to the topic
        znode and the context; replicas of an earlier assignment that the new one drops
        (adding replicas of a cancelled or changed reassignment) are stopped and deleted; a
        data watch on the partition's state znode sees the ISR grow; the partition counts as
        being reassigned."""
        ctx = self.context
        current = ctx.full_assignment(tp)
        if current != ra:
            ctx.update_full_assignment(tp, ra, reassigning=True)
            await self._write_topic_assignment(tp.topic)
            unneeded = [r for r in current.replicas if r not in ra.replicas]
            if unneeded:
                await self._stop_removed_replicas(tp, unneeded)
        await self._data_watch(zd.partition_state_path(tp.topic, tp.partition))
        ctx.reassigning.setdefault(tp, (tuple(ra.adding_replicas), tuple(ra.removing_replicas)))

    async def _is_reassignment_complete(self, tp: TopicPartition, ra: zd.ReplicaAssignment) -> bool:
        """True when nothing is being added or removed, or every TRS replica is in the ISR
        (read from the state znode, which also refreshes the context)."""
        if not ra.is_being_reassigned:
            return True
        li = await self.kafka_zk.get_partition_state(tp.topic, tp.partition)
        if li is None:
            return False
        self.context.leadership[tp] = li
        return set(ra.target_replicas) <= set(li.isr)

    async def _move_reassigned_partition_leader_if_required(self, tp: TopicPartition,
                                                             ra: zd.ReplicaAssignment) -> None:
        """Kafka's moveReassignedPartitionLeaderIfRequired: a leader not in the new replicas, or
        not online, is replaced by the reassign election (first TRS replica alive and in the
        ISR); otherwise the leader epoch is bumped so every replica learns the new RS."""
        ctx = self.context
        li = ctx.leadership.get(tp)
        leader = li.leader if li is not None else -1
        if leader in ra.replicas and ctx.is_replica_online(tp, leader):
            await self._bump_leader_epoch(tp)
        else:
            await self.partition_state_machine.handle_state_changes([tp], PS.OnlinePartition, ElectionStrategy.REASSIGN)

    async def _stop_removed_replicas(self, tp: TopicPartition, removed: Iterable[int]) -> None:
        """Kafka's stopRemovedReplicasOfReassignedPartition: Offline (out of the ISR) ->
        ReplicaDeletionStarted (StopReplica delete=true) -> Successful -> NonExistent."""
        replicas = [(tp, r) for r in removed]
        if not replicas:
            return
        rsm = self.replica_state_machine
        await rsm.handle_state_changes(replicas, RS.OfflineReplica)
        await rsm.handle_state_changes(replicas, RS.ReplicaDeletionStarted)
        await rsm.handle_state_changes(replicas, RS.ReplicaDeletionSuccessful)
        await rsm.handle_state_changes(replicas, RS.NonExistentReplica)

    async def _process_reassignment_isr_change(self, event: PartitionReassignmentIsrChange) -> None:
        """The state znode of a partition being reassigned changed (Kafka's
        PartitionReassignmentIsrChangeHandler): re-arm the watch, maybe complete."""
        if event.tp in self.context.reassigning:
            await self._data_watch(zd.partition_state_path(event.tp.topic, event.tp.partition))
            await self._maybe_complete_reassignment(event.tp)

    async def _maybe_complete_reassignment(self, tp: TopicPartition) -> None:
        """Kafka's maybeCompleteReassignment: once every target replica is in the ISR, run
        the completion half of _on_partition_reassignment."""
        ra = self.context.full_assignment(tp)
        if tp in self.context.reassigning and await self._is_reassignment_complete(tp, ra):
            log.info("partition_reassignment_caught_up", partition=str(tp), target=list(ra.target_replicas))
            await self._on_partition_reassignment(tp, ra)

    async def _bump_leader_epoch(self, tp: TopicPartition) -> None:
        """Rewrite the partition state with leader_epoch + 1 and send LeaderAndIsr to every
        live replica (Kafka's updateLeaderEpochAndSendRequest)."""
        ctx = self.context
        for _attempt in range(10):
            current = await self.kafka_zk.get_partition_state(tp.topic, tp.partition)
            if current is None:
                return
            new = LeaderIsrAndControllerEpoch(leader=current.leader, leader_epoch=current.leader_epoch + 1,
                                              isr=current.isr, controller_epoch=ctx.epoch,
                                              zk_version=current.zk_version)
            try:
                version = await self.kafka_zk.update_partition_state_as_controller(tp, new, ctx.epoch_zk_version)
            except BadVersion:
                continue
            written = attrs.evolve(new, zk_version=version)
            ctx.leadership[tp] = written
            self.batch.new_batch()
            self.batch.add_leader_and_isr_request_for_brokers(
                [r for r in ctx.assignments[tp] if ctx.is_replica_online(tp, r)], tp, written)
            self.batch.send_requests_to_brokers(ctx.epoch)
            return

    async def _write_topic_assignment(self, topic: str) -> None:
        """Write the context's assignment of ``topic`` (with adding/removing) to its znode."""
        ctx = self.context
        got = await self.kafka_zk.get_topic_assignment(topic)
        if got is None:
            return
        current, version = got
        partitions = dict(current.partitions)
        for tp in ctx.partitions_of_topic(topic):
            ra = ctx.full_assignment(tp)
            partitions[tp.partition] = zd.ReplicaAssignment(ra.replicas, ra.adding_replicas, ra.removing_replicas)
        await self.kafka_zk.set_topic_assignment(attrs.evolve(current, partitions=partitions), version,
                                                 ctx.epoch_zk_version)
        await self._data_watch(zd.topic_path(topic))

    async def _remove_from_zk_reassignment(self, should_remove: Callable[[TopicPartition, tuple[int, ...]], bool]
                                           ) -> None:
        """Kafka's maybeRemoveFromZkReassignment: drop the entries of /admin/reassign_partitions
        for which ``should_remove(partition, replicas)``; the znode is deleted once empty
        (fenced writes)."""
        assert self.zk is not None
        try:
            data, _ = await self.zk.get(zd.REASSIGN_PARTITIONS_PATH)
        except NoNode:
            return
        try:
            current = dict(zd.PartitionReassignment.from_json(data).assignments)
        except zd.ZNodeDecodeError:
            current = {}
        kept = {tp: r for tp, r in current.items() if not should_remove(tp, tuple(r))}
        if kept and len(kept) == len(current):
            return
        if kept:
            await self.kafka_zk.guarded_set(zd.REASSIGN_PARTITIONS_PATH,
                                            zd.PartitionReassignment(kept).to_json(), self.context.epoch_zk_version)
        else:
            await self.kafka_zk.guarded_delete(zd.REASSIGN_PARTITIONS_PATH, self.context.epoch_zk_version)

    # ---- start and stop (KafkaServer wiring) ---------------------------------------------

    async def start(self, nursery: trio.Nursery, zk: ZooKeeperClient, broker_id: int | None = None) -> None:
        """Start the controller in ``nursery`` over ``zk`` (a started ZooKeeperClient): what
        KafkaServer's start-up does once ZooKeeper is connected and the broker registered
        (Kafka's KafkaServer.startup -> kafkaController.startup()). ``broker_id``: the broker's
        id when it was only decided at start-up (broker.id.generation); None keeps the
        constructor's. Returns once the event loop runs (the election is its first event)."""
        if broker_id is not None:
            self.broker_id = broker_id
        self.attach(zk)
        await nursery.start(self.run)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the event loop (resigning if active) and wait for it, at most ``timeout_s``
        seconds (KafkaServer's shutdown -> kafkaController.shutdown())."""
        self.shutdown()
        with trio.move_on_after(timeout_s):
            await self.stopped.wait()


async def send_controlled_shutdown(kafka_zk: KafkaZkClient, broker_id: int, broker_epoch: int, *,
                                   listener_name: str | None = None, max_retries: int = 3,
                                   retry_backoff_ms: float = 5000, request_timeout_ms: float = 30000,
                                   ssl_context: Any = None, sasl: Any = None) -> bool:
    """The broker side of a controlled shutdown (Kafka's KafkaServer.controlledShutdown, ZK
    mode): find the controller in ``/controller``, send it ControlledShutdown(broker_id,
    broker_epoch) over the wire, and retry after ``retry_backoff_ms`` while it answers an
    error or lists partitions this broker still leads, at most ``max_retries`` attempts
    (controlled.shutdown.max.retries / .retry.backoff.ms). Returns True once the controller
    answered NONE with no remaining partitions, False otherwise (the broker then shuts down
    anyway, as Kafka does: "proceeding to do an unclean shutdown").

    To be called first thing in a broker's shutdown, while it still serves requests.
    """
    from kafkalike.client.connection import KafkaConnection
    from kafkalike.client.errors import ClientError
    from kafkalike.protocol.controlled_shutdown import ControlledShutdownRequest

    for attempt in range(1, max_retries + 1):
        reason = ""
        controller_id = await kafka_zk.get_controller_id()
        registered = await kafka_zk.get_broker(controller_id) if controller_id is not None else None
        endpoint = None
        if registered is not None:
            reg = registered.registration
            endpoint = (reg.endpoint(listener_name) if listener_name else None) or (
                reg.endpoints[0] if reg.endpoints else None)
        if endpoint is None:
            reason = "no controller"
        else:
            try:
                async with trio.open_nursery() as nursery:
                    conn = await KafkaConnection.connect(
                        endpoint.host, endpoint.port, nursery=nursery, client_id=f"broker-{broker_id}-shutdown",
                        request_timeout_ms=request_timeout_ms, node_id=controller_id, ssl_context=ssl_context,
                        sasl=sasl)
                    try:
                        response = await conn.send(ControlledShutdownRequest(broker_id=broker_id,
                                                                             broker_epoch=broker_epoch))
                    finally:
                        await conn.aclose()
            except ClientError as exc:
                reason = f"controller {controller_id} unreachable: {exc}"
            else:
                remaining = [f"{p.topic_name}-{p.partition_index}" for p in response.remaining_partitions]
                if response.error_code == 0 and not remaining:
                    log.info("controlled_shutdown_succeeded", broker_id=broker_id, controller=controller_id,
                             attempt=attempt)
                    return True
                reason = f"error {kafka_name(response.error_code)}, still leading {remaining[:10]}"
        log.warning("controlled_shutdown_attempt_failed", broker_id=broker_id, attempt=attempt, reason=reason)
        if attempt < max_retries:
            await trio.sleep(retry_backoff_ms / 1000)
    log.warning("controlled_shutdown_failed", broker_id=broker_id, retries=max_retries,
                action="proceeding with an unclean shutdown")
    return False
