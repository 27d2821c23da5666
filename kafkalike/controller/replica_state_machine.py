"""ReplicaStateMachine: moves replicas between Kafka's replica states, sending the requests
each transition implies (Kafka's ZkReplicaStateMachine).

Transitions and their effects (the requests go into the controller's batch, which
``handle_state_changes`` sends at the end):

* -> NewReplica: LeaderAndIsr (is_new) to the replica if its partition has a leader (a new
  replica can never be the leader).
* -> OnlineReplica: from NewReplica, the replica joins the assignment if absent; otherwise
  LeaderAndIsr with the partition's current state to the replica.
* -> OfflineReplica: StopReplica(delete=false) to the replica, then the replica is removed
  from its partitions' ISRs in ZooKeeper (one pipelined batch write, each conditional on its
  state's zkVersion and fenced by the controller epoch; BadVersion ones are re-read and
  written again, as Kafka's updateLeaderAndIsr loop); if it led, the leader becomes -1 (NoLeader). The last ISR member is
  never removed (Kafka keeps a one-replica ISR so that a clean election stays possible when it
  returns). LeaderAndIsr to the other live replicas and UpdateMetadata to all brokers follow
  (not for topics being deleted).
* -> ReplicaDeletionStarted: StopReplica(delete=true), whose answer drives topic deletion.
* -> ReplicaDeletionSuccessful / ReplicaDeletionIneligible: bookkeeping.
* -> NonExistentReplica: the replica leaves the assignment.

Wiring (Kafka 2.x's ``ZkReplicaStateMachine(config, stateChangeLogger, controllerContext,
zkClient, controllerBrokerRequestBatch)``): the machine receives the context, the fenced
ZooKeeper client and the request batch -- never the controller.

Source: Kafka core, kafka.controller.ZkReplicaStateMachine (Kafka 3.x).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from kafkalike.controller.controller_channel_manager import ControllerBrokerRequestBatch
from kafkalike.controller.controller_context import (
    VALID_PREVIOUS_REPLICA_STATES,
    ControllerContext,
    ReplicaState,
    tp_order,
)
from kafkalike.controller.fenced_zk_client import FencedZkClient
from kafkalike.controller.partition_state_machine import (
    FIRST_FEW,
    PartitionStates,
    debug_enabled,
    update_states_until_settled,
)
from kafkalike.controller.state_change_logger import StateChangeLogger, partition_str
from kafkalike.coordination.zk_data import NO_LEADER, LeaderIsrAndControllerEpoch, TopicPartition

log = structlog.get_logger(__name__)
RS = ReplicaState

Replica = tuple[TopicPartition, int]


def _replica_order(item: tuple[Replica, ReplicaState]) -> tuple[str, int, int]:
    """Sort key of a (replica, state) item: the order of the replica tuples themselves."""
    (tp, replica), _state = item
    return tp.topic, tp.partition, replica


class ReplicaStateMachine:
    """Replica state transitions (see module doc), built from what they use (Kafka's
    ZkReplicaStateMachine constructor):

    context: the controller's ControllerContext (replica states, assignments, leaderships;
    updated in place). zk_client: the fenced ZooKeeper client the ISR removals read and write
    through (ControllerMoved when this controller was fenced); the owner may hand a new one by
    assigning ``zk_client``. request_batch: the ControllerBrokerRequestBatch that LeaderAndIsr,
    StopReplica and UpdateMetadata are added to and sent from. state_change_logger: the
    controller's StateChangeLogger (state-change.log: "Changed state of replica 2 for partition
    t-0 from OnlineReplica to OfflineReplica", Kafka's TRACE line, and failed transitions);
    default writes nothing.
    """

    MAX_ZK_RETRIES = 10

    def __init__(self, context: ControllerContext, zk_client: FencedZkClient,
                 request_batch: ControllerBrokerRequestBatch,
                 state_change_logger: StateChangeLogger | None = None) -> None:
        self.ctx = context
        self.zk_client = zk_client
        self.batch = request_batch
        self.state_change_logger = state_change_logger or StateChangeLogger(-1, in_controller_context=True)

    def initialize_replica_state(self) -> None:
        """Replicas on live brokers start OnlineReplica, others ReplicaDeletionIneligible (so
        that they may move to OfflineReplica), as Kafka's initializeReplicaState."""
        ctx = self.ctx
        for tp, replicas in sorted(ctx.assignments.items(), key=lambda item: tp_order(item[0])):
            for r in replicas:
                ctx.replica_states[(tp, r)] = (RS.OnlineReplica if ctx.is_replica_online(tp, r)
                                               else RS.ReplicaDeletionIneligible)

    async def startup(self) -> None:
        """Initialize states, then tell every live replica its state (LeaderAndIsr) and mark
        the others offline (Kafka's ZkReplicaStateMachine.startup)."""
        self.initialize_replica_state()
        ctx = self.ctx
        # sorted by a key: attrs' TopicPartition comparisons took ~2 s of CPU for 9,000 replicas
        every = sorted(ctx.replica_states.items(), key=_replica_order)
        online = [k for k, s in every if s is RS.OnlineReplica]
        offline = [k for k, s in every if s is not RS.OnlineReplica]
        await self.handle_state_changes(online, RS.OnlineReplica)
        await self.handle_state_changes(offline, RS.OfflineReplica)

    async def handle_state_changes(self, replicas: Iterable[Replica], target: ReplicaState) -> None:
        """Move ``replicas`` to ``target`` in one request batch, which is then sent."""
        replicas = list(replicas)
        if not replicas:
            return
        batch = self.batch
        batch.new_batch()
        try:
            by_broker: dict[int, list[TopicPartition]] = {}
            for tp, r in replicas:
                by_broker.setdefault(r, []).append(tp)
            for replica_id, partitions in sorted(by_broker.items()):
                await self._do_handle(replica_id, partitions, target)
        finally:
            batch.send_requests_to_brokers(self.ctx.epoch)

    def _move(self, tp: TopicPartition, replica_id: int, target: ReplicaState) -> None:
        """Record the transition, with Kafka's logSuccessfulTransition line (TRACE)."""
        scl = self.state_change_logger
        if scl.is_trace_enabled:
            scl.with_controller_epoch(self.ctx.epoch).trace(
                f"Changed state of replica {replica_id} for partition {partition_str(tp)} from "
                f"{self.ctx.replica_state(tp, replica_id).name} to {target.name}")
        self.ctx.move_replica(tp, replica_id, target)

    def _log_failed_state_change(self, tp: TopicPartition, replica_id: int, current: ReplicaState,
                                 target: ReplicaState, cause: str) -> None:
        """Kafka's logFailedStateChange: an ERROR line, the cause (Kafka's exception) after it."""
        scl = self.state_change_logger.with_controller_epoch(self.ctx.epoch)
        scl.error(f"Controller {scl.broker_id} epoch {self.ctx.epoch} initiated state change of replica "
                  f"{replica_id} for partition {partition_str(tp)} from {current.name} to {target.name} failed",
                  cause)

    async def _do_handle(self, replica_id: int, partitions: list[TopicPartition], target: ReplicaState) -> None:
        if target is RS.OfflineReplica:  # awaits ZooKeeper between its loops
            await self._do_handle_lines(replica_id, partitions, target)
            return
        # synchronous: its state-change.log lines (one TRACE line per replica) in one write
        with self.state_change_logger.buffered():
            await self._do_handle_lines(replica_id, partitions, target)

    async def _do_handle_lines(self, replica_id: int, partitions: list[TopicPartition], target: ReplicaState) -> None:
        ctx, batch = self.ctx, self.batch
        valid = []
        for tp in partitions:
            current = ctx.replica_state(tp, replica_id)
            if current in VALID_PREVIOUS_REPLICA_STATES[target]:
                valid.append(tp)
            else:
                log.error("replica_state_change_invalid", partition=str(tp), replica=replica_id,
                          current=current.name, target=target.name)
                previous = ",".join(s.name for s in VALID_PREVIOUS_REPLICA_STATES[target])
                self._log_failed_state_change(
                    tp, replica_id, current, target,
                    f"java.lang.IllegalStateException: Replica [Topic={tp.topic},Partition={tp.partition},"
                    f"Replica={replica_id}] should be in the {previous} states before moving to {target.name} "
                    f"state. Instead it is in {current.name} state")
        if target is RS.NewReplica:
            for tp in valid:
                li = ctx.leadership.get(tp)
                if li is not None:
                    if li.leader == replica_id:
                        log.error("replica_state_change_invalid", partition=str(tp), replica=replica_id,
                                  target=target.name, reason="replica is the leader")
                        continue
                    batch.add_leader_and_isr_request_for_brokers([replica_id], tp, li, is_new=True)
                self._move(tp, replica_id, target)
        elif target is RS.OnlineReplica:
            for tp in valid:
                if ctx.replica_state(tp, replica_id) is RS.NewReplica:
                    replicas = ctx.assignments.setdefault(tp, [])
                    if replica_id not in replicas:
                        replicas.append(replica_id)
                else:
                    li = ctx.leadership.get(tp)
                    if li is not None:
                        batch.add_leader_and_isr_request_for_brokers([replica_id], tp, li)
                self._move(tp, replica_id, target)
        elif target is RS.OfflineReplica:
            for tp in valid:
                batch.add_stop_replica_request_for_brokers([replica_id], tp, delete_partition=False)
            updated = await self.remove_replica_from_isr(replica_id, valid)
            for tp, li in updated.items():
                if tp.topic not in ctx.topics_to_delete:
                    others = [r for r in ctx.assignments.get(tp, [])
                              if r != replica_id and ctx.is_replica_online(tp, r)]
                    batch.add_leader_and_isr_request_for_brokers(others, tp, li)
            with self.state_change_logger.buffered():
                for tp in valid:
                    self._move(tp, replica_id, target)
        elif target is RS.ReplicaDeletionStarted:
            for tp in valid:
                batch.add_stop_replica_request_for_brokers([replica_id], tp, delete_partition=True)
                self._move(tp, replica_id, target)
        elif target is RS.NonExistentReplica:
            for tp in valid:
                replicas = ctx.assignments.get(tp)
                if replicas is not None and replica_id in replicas:
                    replicas.remove(replica_id)
                self._move(tp, replica_id, target)
        else:  # ReplicaDeletionSuccessful, ReplicaDeletionIneligible
            for tp in valid:
                self._move(tp, replica_id, target)

    async def remove_replica_from_isr(self, replica_id: int, partitions: Iterable[TopicPartition]
                                      ) -> dict[TopicPartition, LeaderIsrAndControllerEpoch]:
        """Remove ``replica_id`` from each partition's ISR in ZooKeeper (leader -> -1 if it
        led; a one-member ISR is kept). Returns the partitions' states afterwards (changed or
        not). The first round computes from the states the context holds (no read of those;
        a stale one fails its conditional write and is re-read: update_states_until_settled).
        One ``isrs_shrunk`` log line for the whole call, with the count and the first few
        partitions (each at debug level). Raises ControllerMoved."""
        ctx = self.ctx
        out: dict[TopicPartition, LeaderIsrAndControllerEpoch] = {}
        shrunk: list[TopicPartition] = []
        skipped: list[tuple[TopicPartition, int]] = []
        debug = debug_enabled(log)

        async def compute(pending: list[TopicPartition], states: PartitionStates) -> PartitionStates:
            new_states: dict[TopicPartition, LeaderIsrAndControllerEpoch] = {}
            for tp in pending:
                current = states.get(tp)
                if current is None:
                    continue
                if current.controller_epoch > ctx.epoch:
                    skipped.append((tp, current.controller_epoch))
                    continue
                if replica_id not in current.isr and current.leader != replica_id:
                    ctx.leadership[tp] = current
                    out[tp] = current
                    continue
                new_leader = NO_LEADER if current.leader == replica_id else current.leader
                new_isr = current.isr if len(current.isr) == 1 else tuple(i for i in current.isr if i != replica_id)
                new_states[tp] = LeaderIsrAndControllerEpoch(
                    leader=new_leader, leader_epoch=current.leader_epoch + 1, isr=new_isr,
                    controller_epoch=ctx.epoch, zk_version=current.zk_version)
            return new_states

        def on_written(tp: TopicPartition, written: LeaderIsrAndControllerEpoch) -> None:
            ctx.leadership[tp] = written
            out[tp] = written
            shrunk.append(tp)
            if debug:
                log.debug("isr_shrunk", partition=str(tp), removed=replica_id, isr=list(written.isr),
                          leader=written.leader, leader_epoch=written.leader_epoch)

        # Kafka's removeReplicasFromIsr: a vanished state znode leaves nothing to shrink; one
        # still changing after MAX_ZK_RETRIES rounds keeps its state
        await update_states_until_settled(self.zk_client, ctx, partitions, self.MAX_ZK_RETRIES, compute, on_written,
                                          known=ctx.leadership)
        if shrunk:
            first = ctx.leadership[shrunk[0]]
            log.info("isrs_shrunk", removed=replica_id, count=len(shrunk),
                     partitions=[str(tp) for tp in shrunk[:FIRST_FEW]], isr=list(first.isr), leader=first.leader,
                     leader_epoch=first.leader_epoch)
        if skipped:
            log.warning("isr_shrink_skipped", replica=replica_id, count=len(skipped),
                        partitions=[str(tp) for tp, _ in skipped[:FIRST_FEW]],
                        reason=f"state of controller epoch {skipped[0][1]}")
        return out
