"""GroupCoordinator: the broker-side coordinator of classic consumer groups (Kafka's
kafka.coordinator.group.GroupCoordinator, ZooKeeper era).

Each broker coordinates the groups whose __consumer_offsets partition it leads
(group_metadata_manager.partition_for). The coordinator:

- answers FindCoordinator (``find_coordinator``) from any broker, creating __consumer_offsets
  on first use (offsets.topic.num.partitions; replication factor
  offsets.topic.replication.factor clamped to the live brokers with a warning;
  cleanup.policy=compact) and answering COORDINATOR_NOT_AVAILABLE until its leader is known;
- runs the group membership protocol: JoinGroup (with KIP-394's member-id handshake,
  MEMBER_ID_REQUIRED, from JoinGroup v4), SyncGroup, Heartbeat, LeaveGroup (v3+ batches),
  the states of group_metadata.GroupState, the initial rebalance delay
  (group.initial.rebalance.delay.ms, Kafka's InitialDelayedJoin), rebalance timeouts
  (Kafka's DelayedJoin), session timeouts (Kafka's DelayedHeartbeat), the pending-sync
  timeout (Kafka 3.x's DelayedSync: members of a new generation that do not send SyncGroup
  within the rebalance timeout are removed and the group rebalances), static membership
  (group.instance.id, KIP-345: a restarted static member takes its old place without a
  rebalance when nothing else changed). Partition assignment stays in the clients: the
  leader's SyncGroup carries every member's assignment as opaque bytes;
- stores offsets (OffsetCommit: generation and member checks; generation -1 commits from
  consumers outside group management are allowed while the group is Empty) and group
  metadata in __consumer_offsets through the replica manager (acks=-1), serves OffsetFetch,
  ListGroups, DescribeGroups, DeleteGroups, OffsetDelete (KIP-496), TxnOffsetCommit (KIP-98/
  KIP-447: offsets pending per producer until the transaction's marker, ``on_txn_marker``,
  registered in ReplicaManager.txn_marker_listeners), expires offsets
  (offsets.retention.minutes) and removes the offsets of deleted topics (tombstones, after the
  UpdateMetadata that deletes them);
- loads a partition's groups when this broker becomes its leader (answering
  COORDINATOR_LOAD_IN_PROGRESS meanwhile) and drops them when it stops leading it
  (NOT_COORDINATOR), learning of both after every LeaderAndIsr / StopReplica.

Timers: one trio task sleeps until the earliest deadline (a join phase's end, a member's
session expiry, a pending member id's expiry) or until woken by a change, then applies what
is due. Handlers that must wait (JoinGroup until the join phase completes, SyncGroup of a
follower until the leader's assignment is stored) park a callback on their member and wait
for it. All state is touched only from the broker's trio thread, one step at a time.

Error answers follow Kafka's: INVALID_GROUP_ID, NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
COORDINATOR_LOAD_IN_PROGRESS, INVALID_SESSION_TIMEOUT, INCONSISTENT_GROUP_PROTOCOL,
UNKNOWN_MEMBER_ID, MEMBER_ID_REQUIRED, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS,
FENCED_INSTANCE_ID, GROUP_MAX_SIZE_REACHED, GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP,
OFFSET_METADATA_TOO_LARGE, GROUP_SUBSCRIBED_TO_TOPIC.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import structlog
import trio

from kafkalike.coordinator.group_metadata import (GroupMetadata, GroupState, GroupSummary,
                                                  OffsetAndMetadata, member_from_protocols)
from kafkalike.coordinator.group_metadata_manager import GroupMetadataManager
from kafkalike.coordinator.member_metadata import MemberMetadata
from kafkalike.coordinator.offset_config import (NEW_MEMBER_JOIN_TIMEOUT_MS, OFFSETS_TOPIC,
                                                 OFFSETS_TOPIC_CONFIGS, GroupConfig, OffsetConfig)
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition

log = structlog.get_logger(__name__)

UNKNOWN_MEMBER_ID = ""
NO_GENERATION = -1


@attrs.frozen
class JoinGroupResult:
    """A JoinGroup answer. ``members`` ((member id, instance id, metadata), ...) only for the
    leader."""

    error: ErrorCode
    member_id: str = UNKNOWN_MEMBER_ID
    generation_id: int = NO_GENERATION
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    members: tuple[tuple[str, str | None, bytes], ...] = ()


@attrs.frozen
class SyncGroupResult:
    """A SyncGroup answer: the member's assignment (opaque bytes)."""

    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@attrs.frozen
class FindCoordinatorResult:
    """FindCoordinator answer: the coordinator's broker id and endpoint, or an error."""

    error: ErrorCode
    node_id: int = -1
    host: str = ""
    port: int = -1
    message: str | None = None


@attrs.frozen
class CoordinatorStatistics:
    """Snapshot for the CLI, metrics and tests."""

    owned_partitions: tuple[int, ...]
    loading_partitions: tuple[int, ...]
    groups: dict[str, str]   # group id -> state name
    members: int
    rebalances: int
    expired_members: int


class _Reply:
    """A one-shot result slot a parked request waits on."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self.result: Any = None

    def set(self, result: Any) -> None:
        if not self._event.is_set():
            self.result = result
            self._event.set()

    async def wait(self) -> Any:
        await self._event.wait()
        return self.result


def _wall_ms() -> int:
    return int(time.time() * 1000)


class GroupCoordinator:
    """Group coordination for one broker (Kafka's GroupCoordinator). Built by
    KafkaServer.startup from what it uses: ``broker_id``; ``offset_config`` / ``group_config``
    (offsets.* and group.* settings, ``offset_config.configs_from`` a KafkaConfig);
    ``replica_manager`` (the broker's ReplicaManager: __consumer_offsets is read and written
    through it, its partitions say which offsets partitions this broker leads);
    ``metadata_cache`` (the broker's MetadataCache: FindCoordinator, OffsetCommit's partition
    check); ``kafka_zk`` (KafkaZkClient: does __consumer_offsets exist, live brokers);
    ``create_topic`` (the admin manager's ``create_topic(name, partitions, replication factor,
    configs)``, for __consumer_offsets) and ``nursery`` (timer, expiration, load and store
    tasks).

    The server wires the rest: ``follow_leadership_requests(apis)`` (load / unload offsets
    partitions after LeaderAndIsr and StopReplica), ``on_partitions_deleted`` after each
    UpdateMetadata, ``on_txn_marker`` as a ReplicaManager.txn_marker_listeners entry, the
    group API handlers (``group_apis.register``), ``startup()`` and ``shutdown()``."""

    def __init__(self, broker_id: int, offset_config: OffsetConfig, group_config: GroupConfig, *,
                 replica_manager: Any, metadata_cache: Any, kafka_zk: Any,
                 create_topic: Callable[..., Awaitable[Any]], nursery: trio.Nursery) -> None:
        self.offset_config = offset_config
        self.group_config = group_config
        self.replica_manager = replica_manager
        self.metadata_cache = metadata_cache
        self.kafka_zk = kafka_zk
        self.create_topic = create_topic
        self._nursery = nursery
        self.manager = GroupMetadataManager(broker_id, self.offset_config, replica_manager)
        self.active = False
        self.rebalances = 0
        self.expired_members = 0
        self._wakeup = trio.Event()
        self._create_lock = trio.Lock()

    # ------------------------------------------------------------------ wiring
    def follow_leadership_requests(self, apis: Any) -> None:
        """Wrap the LeaderAndIsr and StopReplica handlers so that each is followed by
        on_leadership_change (idempotent: a handler already wrapped is left alone; one
        registered later has to be wrapped by calling this again)."""
        from kafkalike.protocol.api_keys import ApiKey

        for key in (ApiKey.LEADER_AND_ISR, ApiKey.STOP_REPLICA):
            handler = apis.handlers.get(key)
            if handler is not None and not getattr(handler, "_group_coordinator_follows", False):
                apis.register(key, self._after(handler))

    def _after(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapped(header: Any, request: Any, conn: Any) -> Any:
            response = await handler(header, request, conn)
            self.on_leadership_change()
            return response
        wrapped._group_coordinator_follows = True  # type: ignore[attr-defined]  # a marker attribute on a function object
        return wrapped

    async def startup(self) -> None:
        """Start the timer and offset-expiration tasks in the broker's nursery. If
        __consumer_offsets exists, its real partition count wins over
        offsets.topic.num.partitions (Kafka reads it from ZooKeeper at start-up too)."""
        try:
            found = await self.kafka_zk.get_topic_assignment(OFFSETS_TOPIC)
        except Exception as exc:
            log.warning("offsets_topic_read_failed", error=str(exc))
            found = None
        if found is not None:
            self._use_partition_count(len(found[0].partitions))
        self.active = True
        self._nursery.start_soon(self._timer_loop)
        self._nursery.start_soon(self._expiration_loop)
        self.on_leadership_change()

    async def shutdown(self) -> None:
        """Answer every parked request with NOT_COORDINATOR and stop serving groups."""
        self.active = False
        for p in list(self.manager.owned_partitions) + list(self.manager.loading_partitions):
            self._unload(p)

    def _use_partition_count(self, count: int) -> None:
        if count > 0 and count != self.offset_config.num_partitions:
            log.warning("offsets_topic_partition_count_differs", configured=self.offset_config.num_partitions,
                        actual=count, using=count)
            self.offset_config = attrs.evolve(self.offset_config, num_partitions=count)
            self.manager.config = self.offset_config

    # ------------------------------------------------------------------ clocks, timers
    @staticmethod
    def now_ms() -> int:
        """The coordinator's monotonic clock (trio's), in ms."""
        return int(trio.current_time() * 1000)

    def _wake(self) -> None:
        self._wakeup.set()

    def _next_deadline_ms(self) -> float:
        deadline = math.inf
        for group in self.manager.groups.values():
            if group.is_state(GroupState.PREPARING_REBALANCE) and group.join_deadline_ms is not None:
                deadline = min(deadline, group.join_deadline_ms)
            if group.pending_sync and group.sync_deadline_ms is not None:
                deadline = min(deadline, group.sync_deadline_ms)
            for m in group.members.values():
                if m.is_awaiting_join:
                    if m.is_new:
                        deadline = min(deadline, m.joined_at_ms + NEW_MEMBER_JOIN_TIMEOUT_MS)
                elif not m.is_awaiting_sync:
                    deadline = min(deadline, m.latest_heartbeat_ms + m.session_timeout_ms)
            for expiry in group.pending_members.values():
                deadline = min(deadline, expiry)
        return deadline

    async def _timer_loop(self) -> None:
        while True:
            deadline = self._next_deadline_ms()
            if deadline > self.now_ms():
                with trio.move_on_at(deadline / 1000.0 if deadline != math.inf else math.inf):
                    await self._wakeup.wait()
                self._wakeup = trio.Event()
            try:
                self.run_due_timers()
            except Exception:
                log.exception("group_timer_failed")
            # a deadline still in the past (should not happen) must not spin the loop
            await trio.sleep(0.01 if self._next_deadline_ms() <= self.now_ms() else 0)

    def run_due_timers(self) -> None:
        """Apply every deadline that has passed: expired sessions and pending member ids,
        finished join phases."""
        now = self.now_ms()
        for group in list(self.manager.groups.values()):
            for member_id, expiry in list(group.pending_members.items()):
                if expiry <= now:
                    log.info("pending_member_expired", group=group.group_id, member_id=member_id)
                    del group.pending_members[member_id]
                    self._check_join(group)
            if group.pending_sync and group.sync_deadline_ms is not None and group.sync_deadline_ms <= now:
                self._expire_pending_sync(group)
            for m in list(group.members.values()):
                if group.has(m.member_id) and not m.should_keep_alive(now, NEW_MEMBER_JOIN_TIMEOUT_MS):
                    log.info("member_session_expired", group=group.group_id, member_id=m.member_id,
                             session_timeout_ms=m.session_timeout_ms)
                    self.expired_members += 1
                    self._remove_member_and_update_group(group, m, "session timeout")
            self._check_join(group)

    def _expire_pending_sync(self, group: GroupMetadata) -> None:
        """Kafka's DelayedSync expiring: members of this generation that never sent SyncGroup
        are removed (in CompletingRebalance or Stable), which starts a rebalance."""
        missing = [group.get(mid) for mid in sorted(group.pending_sync) if group.has(mid)]
        group.pending_sync.clear()
        group.sync_deadline_ms = None
        if group.state not in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            return
        for m in missing:
            log.info("member_removed_no_sync", group=group.group_id, member_id=m.member_id,
                     generation=group.generation_id)
            self._remove_member_and_update_group(group, m, "no SyncGroup within the rebalance timeout")

    async def _expiration_loop(self) -> None:
        interval = max(self.offset_config.retention_check_interval_ms, 100) / 1000.0
        while True:
            await trio.sleep(interval)
            try:
                await self.manager.cleanup_group_metadata()
            except Exception:
                log.exception("offsets_expiration_failed")

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the broker's nursery; a failure is logged, never propagated
        (it would take the whole broker down)."""
        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception:
                log.exception("group_coordinator_task_failed", task=getattr(fn, "__name__", repr(fn)))

        self._nursery.start_soon(guarded)

    # ------------------------------------------------------------------ leadership
    def on_leadership_change(self) -> None:
        """Compare the offsets partitions this broker leads with those it owns: load new ones
        (in the background), unload lost ones (Kafka's onElection / onResignation)."""
        rm = self.replica_manager
        if not self.active:
            return
        mgr = self.manager
        for p in range(self.offset_config.num_partitions):
            part = rm.partitions.get(TopicPartition(OFFSETS_TOPIC, p))
            leading = part is not None and part.is_leader
            known = p in mgr.owned_partitions or p in mgr.loading_partitions
            if leading and not known:
                mgr.loading_partitions[p] = part.leader_epoch
                self._spawn(self._load, p, part.leader_epoch)
            elif not leading and known:
                self._unload(p)

    async def _load(self, partition: int, epoch: int) -> None:
        await trio.sleep(0)
        mgr = self.manager
        if mgr.loading_partitions.get(partition) != epoch:
            return
        started = self.now_ms()
        try:
            mgr.load_partition(partition, self.now_ms())
        except Exception as exc:
            log.error("offsets_partition_load_failed", partition=partition, error=str(exc))
            mgr.loading_partitions.pop(partition, None)
            return
        if mgr.loading_partitions.get(partition) != epoch:
            return
        del mgr.loading_partitions[partition]
        mgr.owned_partitions[partition] = epoch
        log.info("coordinator_loaded_partition", partition=partition, leader_epoch=epoch,
                 ms=self.now_ms() - started)
        self._wake()

    def _unload(self, partition: int) -> None:
        groups = self.manager.remove_partition(partition)
        for group in groups:
            self._group_unloaded(group)
        log.info("coordinator_unloaded_partition", partition=partition, groups=len(groups))
        self._wake()

    def _group_unloaded(self, group: GroupMetadata) -> None:
        if not group.is_state(GroupState.DEAD):
            group.transition_to(GroupState.DEAD, _wall_ms())
        for m in group.members.values():
            m.complete_join(JoinGroupResult(ErrorCode.not_coordinator, m.member_id))
            m.complete_sync(SyncGroupResult(ErrorCode.not_coordinator))

    # ------------------------------------------------------------------ validation
    def _validate(self, group_id: str | None, *, allow_empty: bool = False) -> ErrorCode | None:
        """Kafka's validateGroupStatus: INVALID_GROUP_ID, COORDINATOR_NOT_AVAILABLE (not
        active), COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR; None when fine."""
        if group_id is None or (group_id == "" and not allow_empty):
            return ErrorCode.invalid_group_id
        if not self.active:
            return ErrorCode.coordinator_not_available
        if self.manager.is_group_loading(group_id):
            return ErrorCode.coordinator_load_in_progress
        if not self.manager.is_group_local(group_id):
            return ErrorCode.not_coordinator
        return None

    # ------------------------------------------------------------------ FindCoordinator
    async def find_coordinator(self, key: str, key_type: int, listener_name: str) -> FindCoordinatorResult:
        """FindCoordinator v0-v3 for a group (key_type 0): the leader of the group's offsets
        partition, creating __consumer_offsets first if needed. COORDINATOR_NOT_AVAILABLE
        while there is no live leader. key_type 1 (transactions) is answered by the
        transaction coordinator's handler in front of this one; a key_type other than 0 that
        reaches here gets COORDINATOR_NOT_AVAILABLE."""
        from kafkalike.coordination import zk_data as zd

        if key_type != 0:
            return FindCoordinatorResult(ErrorCode.coordinator_not_available,
                                         message=f"key type {key_type} is not a group")
        if key is None:
            return FindCoordinatorResult(ErrorCode.invalid_request, message="null key")
        cache = self.metadata_cache
        existing = cache.partitions_of(OFFSETS_TOPIC)
        if existing:
            self._use_partition_count(len(existing))
        partition = self.manager.partition_for(key)
        info = cache.partition(zd.TopicPartition(OFFSETS_TOPIC, partition))
        if info is None:
            if not cache.partitions_of(OFFSETS_TOPIC):
                await self.create_offsets_topic()
            return FindCoordinatorResult(ErrorCode.coordinator_not_available,
                                         message=f"{OFFSETS_TOPIC} is being created")
        endpoint = cache.endpoint(info.leader, listener_name) if info.leader >= 0 else None
        if info.leader not in cache.brokers or endpoint is None:
            return FindCoordinatorResult(ErrorCode.coordinator_not_available,
                                         message=f"{OFFSETS_TOPIC}-{partition} has no live leader")
        return FindCoordinatorResult(ErrorCode.none, info.leader, endpoint[0], endpoint[1])

    async def create_offsets_topic(self) -> None:
        """Create __consumer_offsets (once; concurrent callers wait for the first) with
        offsets.topic.* settings, the replication factor clamped to the live brokers."""
        async with self._create_lock:
            kzk = self.kafka_zk
            if await kzk.get_topic_assignment(OFFSETS_TOPIC) is not None:
                return
            live = await kzk.get_broker_ids()
            rf = self.offset_config.replication_factor
            if len(live) < rf:
                log.warning("offsets_topic_replication_factor_clamped", configured=rf,
                            live_brokers=len(live),
                            hint="set offsets.topic.replication.factor to the cluster size")
                rf = max(1, len(live))
            configs = dict(OFFSETS_TOPIC_CONFIGS, **{"segment.bytes": str(self.offset_config.segment_bytes)})
            try:
                await self.create_topic(OFFSETS_TOPIC, self.offset_config.num_partitions, rf, configs)
            except Exception as exc:
                if "already exists" not in str(exc):
                    log.warning("offsets_topic_create_failed", error=str(exc))
                return
            log.info("offsets_topic_created", partitions=self.offset_config.num_partitions,
                     replication_factor=rf)

    # ------------------------------------------------------------------ JoinGroup
    async def join_group(self, group_id: str, member_id: str, group_instance_id: str | None,
                         require_known_member_id: bool, client_id: str, client_host: str,
                         rebalance_timeout_ms: int, session_timeout_ms: int, protocol_type: str,
                         protocols: Sequence[tuple[str, bytes]]) -> JoinGroupResult:
        """JoinGroup (Kafka's handleJoinGroup). Returns when the join phase completes, or at
        once with an error / MEMBER_ID_REQUIRED (carrying the member id to rejoin with)."""
        error = self._validate(group_id)
        if error is not None:
            return JoinGroupResult(error, member_id)
        gc = self.group_config
        if not gc.min_session_timeout_ms <= session_timeout_ms <= gc.max_session_timeout_ms:
            return JoinGroupResult(ErrorCode.invalid_session_timeout, member_id)
        unknown = member_id == UNKNOWN_MEMBER_ID
        group = self.manager.get_group(group_id)
        if group is None:
            if not unknown:
                return JoinGroupResult(ErrorCode.unknown_member_id, member_id)
            group = self.manager.get_or_create_group(group_id)
        if (unknown or not group.has(member_id)) and group.size() >= gc.max_size and \
                not group.is_pending_member(member_id) and group.static_member_id(group_instance_id) is None:
            return JoinGroupResult(ErrorCode.group_max_size_reached, member_id)
        reply = _Reply()
        args = (group_instance_id, client_id, client_host, rebalance_timeout_ms, session_timeout_ms,
                protocol_type, list(protocols), reply.set)
        if unknown:
            self._new_member_join(group, require_known_member_id, *args)
        else:
            self._current_member_join(group, member_id, *args)
        self._wake()
        result: JoinGroupResult = await reply.wait()
        return result

    def _new_member_join(self, group: GroupMetadata, require_known: bool, instance_id: str | None,
                         client_id: str, client_host: str, rebalance_ms: int, session_ms: int,
                         protocol_type: str, protocols: list[tuple[str, bytes]],
                         callback: Callable[[Any], None]) -> None:
        if group.is_state(GroupState.DEAD):
            callback(JoinGroupResult(ErrorCode.coordinator_not_available))
            return
        if not group.supports_protocols(protocol_type, [n for n, _ in protocols]):
            callback(JoinGroupResult(ErrorCode.inconsistent_group_protocol))
            return
        new_id = f"{instance_id if instance_id is not None else client_id}-{uuid.uuid4()}"
        if instance_id is not None:
            old_id = group.static_member_id(instance_id)
            if old_id is not None and group.has(old_id):
                self._update_static_member_and_rebalance(group, instance_id, old_id, new_id, rebalance_ms,
                                                         session_ms, protocols, callback)
                return
            self._add_member_and_rebalance(group, new_id, instance_id, client_id, client_host, rebalance_ms,
                                           session_ms, protocol_type, protocols, callback)
        elif require_known:
            group.add_pending_member(new_id, self.now_ms() + session_ms)
            log.info("member_id_required", group=group.group_id, member_id=new_id)
            callback(JoinGroupResult(ErrorCode.member_id_required, new_id))
        else:
            self._add_member_and_rebalance(group, new_id, None, client_id, client_host, rebalance_ms,
                                           session_ms, protocol_type, protocols, callback)

    def _current_member_join(self, group: GroupMetadata, member_id: str, instance_id: str | None,
                             client_id: str, client_host: str, rebalance_ms: int, session_ms: int,
                             protocol_type: str, protocols: list[tuple[str, bytes]],
                             callback: Callable[[Any], None]) -> None:
        if group.is_state(GroupState.DEAD):
            callback(JoinGroupResult(ErrorCode.coordinator_not_available, member_id))
            return
        if not group.supports_protocols(protocol_type, [n for n, _ in protocols]):
            callback(JoinGroupResult(ErrorCode.inconsistent_group_protocol, member_id))
            return
        if group.is_pending_member(member_id):
            self._add_member_and_rebalance(group, member_id, instance_id, client_id, client_host, rebalance_ms,
                                           session_ms, protocol_type, protocols, callback)
            return
        if group.is_static_member_fenced(member_id, instance_id):
            callback(JoinGroupResult(ErrorCode.fenced_instance_id, member_id))
            return
        if not group.has(member_id):
            callback(JoinGroupResult(ErrorCode.unknown_member_id, member_id))
            return
        member = group.get(member_id)
        state = group.state
        if state is GroupState.PREPARING_REBALANCE:
            self._update_member_and_rebalance(group, member, rebalance_ms, session_ms, protocols, callback)
        elif state is GroupState.COMPLETING_REBALANCE:
            if member.matches(protocols):
                callback(self._join_result(group, member_id))
            else:
                self._update_member_and_rebalance(group, member, rebalance_ms, session_ms, protocols, callback)
        elif state is GroupState.STABLE:
            if group.is_leader(member_id) or not member.matches(protocols):
                self._update_member_and_rebalance(group, member, rebalance_ms, session_ms, protocols, callback)
            else:
                member.latest_heartbeat_ms = self.now_ms()
                callback(self._join_result(group, member_id))
        else:
            callback(JoinGroupResult(ErrorCode.unknown_member_id, member_id))

    def _join_result(self, group: GroupMetadata, member_id: str) -> JoinGroupResult:
        members = tuple(group.current_member_metadata()) if group.is_leader(member_id) else ()
        return JoinGroupResult(ErrorCode.none, member_id, group.generation_id, group.protocol_type,
                               group.protocol_name, group.leader_id or "", members)

    def _add_member_and_rebalance(self, group: GroupMetadata, member_id: str, instance_id: str | None,
                                  client_id: str, client_host: str, rebalance_ms: int, session_ms: int,
                                  protocol_type: str, protocols: list[tuple[str, bytes]],
                                  callback: Callable[[Any], None]) -> None:
        now = self.now_ms()
        member = member_from_protocols(member_id, instance_id, client_id, client_host, rebalance_ms,
                                       session_ms, protocol_type, protocols)
        member.is_new = True
        member.joined_at_ms = now
        member.latest_heartbeat_ms = now
        member.awaiting_join = callback
        if group.is_state(GroupState.PREPARING_REBALANCE) and group.generation_id == 0:
            group.new_member_added = True
        group.add(member)
        log.info("member_joined", group=group.group_id, member_id=member_id, client_id=client_id,
                 group_instance_id=instance_id, state=group.state.value)
        self._maybe_prepare_rebalance(group, f"adding new member {member_id}")
        self._check_join(group)

    def _update_member_and_rebalance(self, group: GroupMetadata, member: MemberMetadata, rebalance_ms: int,
                                     session_ms: int, protocols: list[tuple[str, bytes]],
                                     callback: Callable[[Any], None]) -> None:
        member.supported_protocols = list(protocols)
        member.rebalance_timeout_ms = rebalance_ms
        member.session_timeout_ms = session_ms
        if member.awaiting_join is not None:  # a duplicate JoinGroup: the newer one waits
            member.complete_join(JoinGroupResult(ErrorCode.rebalance_in_progress, member.member_id))
        member.awaiting_join = callback
        member.latest_heartbeat_ms = self.now_ms()
        self._maybe_prepare_rebalance(group, f"updating metadata of member {member.member_id}")
        self._check_join(group)

    def _update_static_member_and_rebalance(self, group: GroupMetadata, instance_id: str, old_id: str,
                                            new_id: str, rebalance_ms: int, session_ms: int,
                                            protocols: list[tuple[str, bytes]],
                                            callback: Callable[[Any], None]) -> None:
        old = group.get(old_id)
        old.complete_join(JoinGroupResult(ErrorCode.fenced_instance_id, old_id))
        old.complete_sync(SyncGroupResult(ErrorCode.fenced_instance_id))
        unchanged = old.matches(protocols)
        member = group.replace_static_member(instance_id, old_id, new_id)
        member.rebalance_timeout_ms = rebalance_ms
        member.session_timeout_ms = session_ms
        member.latest_heartbeat_ms = self.now_ms()
        log.info("static_member_rejoined", group=group.group_id, group_instance_id=instance_id,
                 old_member_id=old_id, member_id=new_id, state=group.state.value)
        if group.is_state(GroupState.STABLE) and unchanged:
            # same protocols: keep the generation and the assignment; persist the new id
            self._spawn(self.manager.store_group, group, None)
            callback(self._join_result(group, new_id))
            return
        member.supported_protocols = list(protocols)
        member.awaiting_join = callback
        self._maybe_prepare_rebalance(group, f"static member {instance_id} rejoined")
        self._check_join(group)

    # ------------------------------------------------------------------ rebalance
    def _maybe_prepare_rebalance(self, group: GroupMetadata, reason: str) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(group, reason)

    def _prepare_rebalance(self, group: GroupMetadata, reason: str) -> None:
        """Enter PreparingRebalance: from Empty with the initial delay (Kafka's
        InitialDelayedJoin), else with the longest member rebalance timeout (DelayedJoin)."""
        if group.is_state(GroupState.COMPLETING_REBALANCE):
            self._reset_and_propagate_assignment_error(group, ErrorCode.rebalance_in_progress)
        now = self.now_ms()
        if group.is_state(GroupState.EMPTY):
            delay = self.group_config.initial_rebalance_delay_ms
            group.initial_delay_ms = delay
            group.initial_delay_remaining_ms = max(group.rebalance_timeout_ms() - delay, 0)
            group.join_deadline_ms = now + delay
            initial = True
        else:
            group.initial_delay_ms = 0
            group.join_deadline_ms = now + group.rebalance_timeout_ms()
            initial = False
        group.new_member_added = False
        group.pending_sync.clear()
        group.sync_deadline_ms = None
        group.transition_to(GroupState.PREPARING_REBALANCE, _wall_ms())
        self.rebalances += 1
        log.info("rebalance_started", group=group.group_id, generation=group.generation_id,
                 reason=reason, initial_delay=initial, members=group.size())
        self._wake()

    def _check_join(self, group: GroupMetadata) -> None:
        """Complete the join phase if it is due: the initial delay ran out without new members
        (or extended itself while members kept coming, up to the rebalance timeout), or every
        member rejoined, or the rebalance timeout passed."""
        if not group.is_state(GroupState.PREPARING_REBALANCE) or group.join_deadline_ms is None:
            return
        now = self.now_ms()
        if group.initial_delay_ms > 0:
            if now < group.join_deadline_ms:
                return
            if group.new_member_added and group.initial_delay_remaining_ms > 0:
                group.new_member_added = False
                delay = min(group.initial_delay_ms, group.initial_delay_remaining_ms)
                group.initial_delay_remaining_ms = max(group.initial_delay_remaining_ms - group.initial_delay_ms, 0)
                group.join_deadline_ms = now + delay
                return
            self._complete_join(group)
        elif group.all_members_joined() or now >= group.join_deadline_ms:
            self._complete_join(group)

    def _complete_join(self, group: GroupMetadata) -> None:
        """Kafka's onCompleteJoin: drop dynamic members that did not rejoin, start the next
        generation, answer every waiting JoinGroup (the leader gets the member list)."""
        for m in group.not_yet_rejoined_members():
            if not m.is_static:
                log.info("member_removed_not_rejoined", group=group.group_id, member_id=m.member_id)
                group.remove(m.member_id)
        if group.is_state(GroupState.DEAD):
            return
        group.init_next_generation(_wall_ms())
        log.info("rebalance_completed", group=group.group_id, generation=group.generation_id,
                 protocol=group.protocol_name, members=group.size(), state=group.state.value)
        if group.is_state(GroupState.EMPTY):
            self._spawn(self.manager.store_group, group, {})
            return
        now = self.now_ms()
        group.pending_sync = set(group.members)
        group.sync_deadline_ms = now + group.rebalance_timeout_ms()
        for m in group.members.values():
            if m.is_awaiting_join:
                m.complete_join(self._join_result(group, m.member_id))
                m.is_new = False
            m.latest_heartbeat_ms = now
        self._wake()

    def _reset_and_propagate_assignment_error(self, group: GroupMetadata, error: ErrorCode) -> None:
        group.clear_assignment()
        for m in group.members.values():
            m.complete_sync(SyncGroupResult(error))

    def _remove_member_and_update_group(self, group: GroupMetadata, member: MemberMetadata, reason: str) -> None:
        member.complete_join(JoinGroupResult(ErrorCode.unknown_member_id, member.member_id))
        member.complete_sync(SyncGroupResult(ErrorCode.unknown_member_id))
        group.remove(member.member_id)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance(group, f"removing member {member.member_id} ({reason})")
        self._check_join(group)

    # ------------------------------------------------------------------ SyncGroup
    async def sync_group(self, group_id: str, generation_id: int, member_id: str,
                         protocol_type: str | None, protocol_name: str | None,
                         group_instance_id: str | None, assignments: dict[str, bytes]) -> SyncGroupResult:
        """SyncGroup (Kafka's handleSyncGroup): the leader's assignment is stored in
        __consumer_offsets and then handed to every member; followers wait for it."""
        error = self._validate(group_id)
        if error is not None:
            return SyncGroupResult(error)
        group = self.manager.get_group(group_id)
        if group is None:
            return SyncGroupResult(ErrorCode.unknown_member_id)
        if group.is_state(GroupState.DEAD):
            return SyncGroupResult(ErrorCode.coordinator_not_available)
        if group.is_static_member_fenced(member_id, group_instance_id):
            return SyncGroupResult(ErrorCode.fenced_instance_id)
        if not group.has(member_id):
            return SyncGroupResult(ErrorCode.unknown_member_id)
        if generation_id != group.generation_id:
            return SyncGroupResult(ErrorCode.illegal_generation)
        if (protocol_type is not None and protocol_type != group.protocol_type) or \
                (protocol_name is not None and protocol_name != group.protocol_name):
            return SyncGroupResult(ErrorCode.inconsistent_group_protocol)
        member = group.get(member_id)
        if group.is_state(GroupState.EMPTY):
            return SyncGroupResult(ErrorCode.unknown_member_id)
        group.pending_sync.discard(member_id)
        if group.is_state(GroupState.PREPARING_REBALANCE):
            return SyncGroupResult(ErrorCode.rebalance_in_progress)
        if group.is_state(GroupState.STABLE):
            member.latest_heartbeat_ms = self.now_ms()
            return SyncGroupResult(ErrorCode.none, member.assignment, group.protocol_type, group.protocol_name)
        reply = _Reply()
        if member.awaiting_sync is not None:
            member.complete_sync(SyncGroupResult(ErrorCode.rebalance_in_progress))
        member.awaiting_sync = reply.set
        if group.is_leader(member_id):
            full = {mid: assignments.get(mid, b"") for mid in group.members}
            generation = group.generation_id
            error = await self.manager.store_group(group, full)
            if group.is_state(GroupState.COMPLETING_REBALANCE) and group.generation_id == generation:
                if error != ErrorCode.none:
                    self._reset_and_propagate_assignment_error(group, error)
                    self._maybe_prepare_rebalance(group, f"error {error.name.upper()} storing the assignment")
                else:
                    group.set_assignment(full)
                    now = self.now_ms()
                    for m in group.members.values():
                        if m.complete_sync(SyncGroupResult(ErrorCode.none, m.assignment, group.protocol_type,
                                                           group.protocol_name)):
                            m.latest_heartbeat_ms = now
                    group.transition_to(GroupState.STABLE, _wall_ms())
                    log.info("group_stable", group=group.group_id, generation=group.generation_id,
                             members=group.size())
                self._wake()
        result: SyncGroupResult = await reply.wait()
        return result

    # ------------------------------------------------------------------ Heartbeat
    def heartbeat(self, group_id: str, member_id: str, group_instance_id: str | None,
                  generation_id: int) -> ErrorCode:
        """Heartbeat (Kafka's handleHeartbeat): extends the member's session; tells it
        REBALANCE_IN_PROGRESS when it must rejoin."""
        error = self._validate(group_id)
        if error is not None:
            return error
        group = self.manager.get_group(group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        if group.is_state(GroupState.DEAD):
            return ErrorCode.coordinator_not_available
        if group.is_static_member_fenced(member_id, group_instance_id):
            return ErrorCode.fenced_instance_id
        if not group.has(member_id):
            return ErrorCode.unknown_member_id
        if generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        if group.is_state(GroupState.EMPTY):
            return ErrorCode.unknown_member_id
        group.get(member_id).latest_heartbeat_ms = self.now_ms()
        self._wake()
        if group.is_state(GroupState.PREPARING_REBALANCE):
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    # ------------------------------------------------------------------ LeaveGroup
    def leave_group(self, group_id: str, leaving: Sequence[tuple[str, str | None]]
                    ) -> tuple[ErrorCode, list[tuple[str, str | None, ErrorCode]]]:
        """LeaveGroup (v0-v2: one member; v3+: a batch, KIP-345): (top-level error,
        [(member id, instance id, error)])."""
        error = self._validate(group_id)
        if error is not None:
            return error, [(m, i, error) for m, i in leaving]
        group = self.manager.get_group(group_id)
        if group is None:
            return ErrorCode.none, [(m, i, ErrorCode.unknown_member_id) for m, i in leaving]
        if group.is_state(GroupState.DEAD):
            return ErrorCode.coordinator_not_available, [(m, i, ErrorCode.coordinator_not_available)
                                                         for m, i in leaving]
        out = []
        for member_id, instance_id in leaving:
            if member_id == UNKNOWN_MEMBER_ID and instance_id is not None:
                resolved = group.static_member_id(instance_id)
                if resolved is None:
                    out.append((member_id, instance_id, ErrorCode.unknown_member_id))
                    continue
                member_id = resolved
            elif group.is_static_member_fenced(member_id, instance_id):
                out.append((member_id, instance_id, ErrorCode.fenced_instance_id))
                continue
            if group.is_pending_member(member_id):
                del group.pending_members[member_id]
                self._check_join(group)
                out.append((member_id, instance_id, ErrorCode.none))
            elif not group.has(member_id):
                out.append((member_id, instance_id, ErrorCode.unknown_member_id))
            else:
                log.info("member_left", group=group.group_id, member_id=member_id)
                self._remove_member_and_update_group(group, group.get(member_id), "left the group")
                out.append((member_id, instance_id, ErrorCode.none))
        self._wake()
        return ErrorCode.none, out

    # ------------------------------------------------------------------ offsets
    def partition_exists(self, tp: TopicPartition) -> bool:
        """True if the broker's metadata cache knows the partition (OffsetCommit answers
        UNKNOWN_TOPIC_OR_PARTITION otherwise, as Kafka's KafkaApis does)."""
        from kafkalike.coordination import zk_data as zd

        return self.metadata_cache.partition(zd.TopicPartition(tp.topic, tp.partition)) is not None

    async def commit_offsets(self, group_id: str, member_id: str, group_instance_id: str | None,
                             generation_id: int, offsets: dict[TopicPartition, OffsetAndMetadata]
                             ) -> dict[TopicPartition, ErrorCode]:
        """OffsetCommit (Kafka's handleCommitOffsets): per-partition errors."""
        def all_(error: ErrorCode) -> dict[TopicPartition, ErrorCode]:
            return {tp: error for tp in offsets}

        error = self._validate(group_id, allow_empty=True)
        if error is not None:
            return all_(error)
        group = self.manager.get_group(group_id)
        if group is None:
            if generation_id >= 0:
                return all_(ErrorCode.illegal_generation)
            group = self.manager.get_or_create_group(group_id)
        if group.is_state(GroupState.DEAD):
            return all_(ErrorCode.coordinator_not_available)
        if group.is_static_member_fenced(member_id, group_instance_id):
            return all_(ErrorCode.fenced_instance_id)
        if not (generation_id < 0 and group.is_state(GroupState.EMPTY)):
            if group.is_state(GroupState.COMPLETING_REBALANCE):
                return all_(ErrorCode.rebalance_in_progress)
            if not group.has(member_id):
                return all_(ErrorCode.unknown_member_id)
            if generation_id != group.generation_id:
                return all_(ErrorCode.illegal_generation)
            group.get(member_id).latest_heartbeat_ms = self.now_ms()
        return await self.manager.store_offsets(group, offsets)

    async def txn_commit_offsets(self, group_id: str, transactional_id: str, producer_id: int,
                                 producer_epoch: int, member_id: str, group_instance_id: str | None,
                                 generation_id: int, offsets: dict[TopicPartition, OffsetAndMetadata]
                                 ) -> dict[TopicPartition, ErrorCode]:
        """TxnOffsetCommit v0-3 (KIP-98, KIP-447; Kafka's GroupCoordinator.handleTxnCommitOffsets
        and doTxnCommitOffsets): validate the group (INVALID_GROUP_ID for an empty id,
        COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR), create an
        unknown group as Empty, then the KIP-447 checks, each only when the field is set:
        FENCED_INSTANCE_ID (a static member replaced by another), UNKNOWN_MEMBER_ID (a
        member id not in the group), ILLEGAL_GENERATION (a generation >= 0 other than the
        group's). Then the offsets are appended as a transactional batch and stay pending
        until the producer's transaction ends (on_txn_marker). Returns per-partition errors.
        KIP-890 verification (is __consumer_offsets part of the transaction?) is not done."""
        def all_(error: ErrorCode) -> dict[TopicPartition, ErrorCode]:
            return {tp: error for tp in offsets}

        error = self._validate(group_id)
        if error is not None:
            return all_(error)
        group = self.manager.get_or_create_group(group_id)
        if group.is_state(GroupState.DEAD):
            return all_(ErrorCode.coordinator_not_available)
        if group.is_static_member_fenced(member_id, group_instance_id):
            return all_(ErrorCode.fenced_instance_id)
        if member_id != UNKNOWN_MEMBER_ID and not group.has(member_id):
            return all_(ErrorCode.unknown_member_id)
        if generation_id >= 0 and generation_id != group.generation_id:
            return all_(ErrorCode.illegal_generation)
        log.debug("txn_offsets_commit", group=group_id, transactional_id=transactional_id,
                  producer_id=producer_id, producer_epoch=producer_epoch, partitions=len(offsets))
        return await self.manager.store_txn_offsets(group, producer_id, producer_epoch, offsets)

    def on_txn_marker(self, tp: Any, producer_id: int, producer_epoch: int, committed: bool) -> None:
        """ReplicaManager.txn_marker_listeners hook: a COMMIT (``committed``) or ABORT marker
        of ``producer_id`` was appended to partition ``tp`` on this leader. For a
        __consumer_offsets partition this completes the producer's pending transactional
        offsets there (Kafka's GroupCoordinator.scheduleHandleTxnCompletion); other topics
        are ignored."""
        if tp.topic != OFFSETS_TOPIC:
            return
        self.manager.handle_txn_completion(producer_id, (tp.partition,), committed)

    def unstable_partitions(self, group_id: str, partitions: Sequence[TopicPartition]) -> set[TopicPartition]:
        """Of ``partitions``, those with transactional offsets of ``group_id`` awaiting their
        marker: OffsetFetch v7+ with require_stable answers them UNSTABLE_OFFSET_COMMIT
        (Kafka's GroupMetadataManager.getOffsets, KIP-447)."""
        group = self.manager.get_group(group_id)
        if group is None or not group.pending_txn_offsets:
            return set()
        return {tp for tp in partitions if group.has_pending_txn_offsets_for(tp)}

    def fetch_offsets(self, group_id: str, partitions: Sequence[TopicPartition] | None
                      ) -> tuple[ErrorCode, dict[TopicPartition, OffsetAndMetadata | None]]:
        """OffsetFetch: (error, {tp: committed or None}); all of the group's offsets when
        ``partitions`` is None."""
        error = self._validate(group_id, allow_empty=True)
        if error is not None:
            return error, {tp: None for tp in partitions or ()}
        group = self.manager.get_group(group_id)
        if group is None or group.is_state(GroupState.DEAD):
            return ErrorCode.none, {tp: None for tp in partitions or ()}
        if partitions is None:
            return ErrorCode.none, dict(group.offsets)
        return ErrorCode.none, {tp: group.offsets.get(tp) for tp in partitions}

    # ------------------------------------------------------------------ admin
    def list_groups(self, states: Sequence[str] = ()) -> tuple[ErrorCode, list[tuple[str, str, str]]]:
        """ListGroups: (error, [(group id, protocol type, state)]) of the groups this broker
        coordinates; COORDINATOR_LOAD_IN_PROGRESS while a partition loads."""
        wanted = {s.lower() for s in states}
        out = [(g.group_id, g.protocol_type or "", g.state.value)
               for g in self.manager.groups.values()
               if self.manager.is_group_local(g.group_id) and not g.is_state(GroupState.DEAD)
               and (not wanted or g.state.value.lower() in wanted)]
        error = ErrorCode.coordinator_load_in_progress if self.manager.is_loading() else ErrorCode.none
        return error, sorted(out)

    def describe_group(self, group_id: str) -> tuple[ErrorCode, GroupSummary]:
        """DescribeGroups for one group; an unknown group is described as Dead."""
        dead = GroupSummary(GroupState.DEAD.value, "", "", ())
        error = self._validate(group_id)
        if error is not None:
            return error, dead
        group = self.manager.get_group(group_id)
        if group is None:
            return ErrorCode.none, dead
        return ErrorCode.none, group.summary()

    async def delete_groups(self, group_ids: Sequence[str]) -> dict[str, ErrorCode]:
        """DeleteGroups: Empty groups (also offsets-only groups) become Dead and their records
        are tombstoned; GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP otherwise."""
        out: dict[str, ErrorCode] = {}
        for gid in group_ids:
            error = self._validate(gid)
            if error is not None:
                out[gid] = error
                continue
            group = self.manager.get_group(gid)
            if group is None or group.is_state(GroupState.DEAD):
                out[gid] = ErrorCode.group_id_not_found
            elif not group.is_state(GroupState.EMPTY):
                out[gid] = ErrorCode.non_empty_group
            else:
                group.transition_to(GroupState.DEAD, _wall_ms())
                self.manager.groups.pop(gid, None)
                out[gid] = await self.manager.delete_group_records(group)
                log.info("group_deleted", group=gid, offsets=len(group.offsets))
        return out

    async def delete_offsets(self, group_id: str, partitions: Sequence[TopicPartition]
                             ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """OffsetDelete (KIP-496; Kafka's GroupCoordinator.handleDeleteOffsets): remove the
        group's committed offsets of ``partitions`` (tombstones in __consumer_offsets).

        Returns (group error, {partition: error}); with a group error the map is empty, as
        Kafka answers. Group errors: INVALID_GROUP_ID (null or ""), COORDINATOR_NOT_AVAILABLE,
        COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR (validateGroupStatus),
        GROUP_ID_NOT_FOUND (no such group, or Dead), NON_EMPTY_GROUP (a group with members
        that does not use the consumer protocol). An Empty group loses every partition asked
        for; a consumer group with members (PreparingRebalance, CompletingRebalance, Stable)
        answers GROUP_SUBSCRIBED_TO_TOPIC for partitions of topics its members subscribe to
        (every topic when the subscriptions do not decode, Kafka's isSubscribedToTopic) and
        loses the others. Partitions without an offset answer NONE too. A failed tombstone
        append is logged, not answered (Kafka's cleanupGroupMetadata does the same)."""
        error = self._validate(group_id)
        if error is not None:
            return error, {}
        group = self.manager.get_group(group_id)
        if group is None or group.is_state(GroupState.DEAD):
            return ErrorCode.group_id_not_found, {}
        errors: dict[TopicPartition, ErrorCode] = {}
        if group.is_state(GroupState.EMPTY):
            eligible = list(partitions)
        elif group.protocol_type == "consumer":
            subscribed = group.subscribed_topics()
            eligible = []
            for tp in partitions:
                if subscribed is None or tp.topic in subscribed:
                    errors[tp] = ErrorCode.group_subscribed_to_topic
                else:
                    eligible.append(tp)
        else:
            return ErrorCode.non_empty_group, {}
        if eligible:
            removed, append_error = await self.manager.remove_offsets(group, eligible)
            errors.update((tp, ErrorCode.none) for tp in eligible)
            log.info("offsets_deleted", group=group_id, asked=len(eligible), removed=len(removed),
                     group_dead=group.is_state(GroupState.DEAD), append_error=append_error.name.upper())
        return ErrorCode.none, errors

    async def on_partitions_deleted(self, partitions: Sequence[Any]) -> None:
        """A metadata listener (KafkaServer.metadata_listeners, called after each UpdateMetadata
        with the partitions it deleted): every group this broker coordinates loses its
        committed offsets of those partitions, with tombstones (Kafka's
        GroupCoordinator.handleDeletedPartitions / onPartitionsDeleted, called by
        KafkaApis.handleUpdateMetadataRequest in ZooKeeper mode). The cache changes at once;
        the tombstones are written in the background (acks=-1 must not hold the
        UpdateMetadata handler). ``partitions``: objects with ``topic`` and ``partition``."""
        if not self.active or not partitions:
            return
        deleted = {TopicPartition(p.topic, p.partition) for p in partitions}
        if OFFSETS_TOPIC in {tp.topic for tp in deleted}:
            deleted = {tp for tp in deleted if tp.topic != OFFSETS_TOPIC}
        touched = [g for g in list(self.manager.groups.values())
                   if self.manager.is_group_local(g.group_id) and not deleted.isdisjoint(g.offsets)]
        if touched:
            self._spawn(self._remove_deleted_offsets, touched, deleted)

    async def _remove_deleted_offsets(self, groups: list[GroupMetadata], deleted: set[TopicPartition]) -> None:
        total = 0
        for group in groups:
            removed, error = await self.manager.remove_offsets(group, [tp for tp in group.offsets if tp in deleted])
            total += len(removed)
            if error != ErrorCode.none:
                log.warning("deleted_partition_offsets_not_tombstoned", group=group.group_id,
                            offsets=len(removed), error=error.name.upper())
        log.info("deleted_partition_offsets_removed", groups=len(groups), offsets=total,
                 topics=sorted({tp.topic for tp in deleted}))

    # ------------------------------------------------------------------ introspection
    def statistics(self) -> CoordinatorStatistics:
        mgr = self.manager
        return CoordinatorStatistics(
            owned_partitions=tuple(sorted(mgr.owned_partitions)),
            loading_partitions=tuple(sorted(mgr.loading_partitions)),
            groups={g.group_id: g.state.value for g in mgr.groups.values()},
            members=sum(g.size() for g in mgr.groups.values()),
            rebalances=self.rebalances, expired_members=self.expired_members)
