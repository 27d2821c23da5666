"""PartitionStateMachine: moves partitions between Kafka's partition states, electing leaders
and writing partition state znodes on the way (Kafka's ZkPartitionStateMachine).

States (controller_context.PartitionState): NonExistentPartition -> NewPartition (the topic
znode names it) -> OnlinePartition (a leader is elected and written) <-> OfflinePartition
(its leader died) -> NonExistentPartition (topic deleted).

To OnlinePartition:
* from NewPartition: the first live replica in assignment order leads, the ISR is every live
  replica, leader_epoch 0; ``/brokers/topics/<t>/partitions/<p>/state`` is CREATED behind the
  controller-epoch check, all of a step's partitions in one pipelined batch (Kafka's
  initializeLeaderAndIsrForPartitions);
* from OfflinePartition / OnlinePartition: from the partition's state, a leader is chosen by
  the requested ElectionStrategy (leader_election.py: offline, reassign, preferred,
  controlled shutdown), leader_epoch + 1, and the state is UPDATED conditionally on its
  zkVersion and the controller epoch (BadVersion: re-read and retry; a state written by a
  newer controller epoch: that partition fails) (doElectLeaderForPartitions). Reads and writes
  go in pipelined batches: choose all leaders, write all new states
  (KafkaZkClient.update_leader_and_isr_many), then read again and go round with the
  BadVersion ones. The first round chooses from the states the controller holds, where Kafka
  reads them all first (update_states_until_settled says why the outcome is the same).
Each success adds LeaderAndIsr for the partition's live replicas (and UpdateMetadata for all
live brokers) to the controller's request batch; ``handle_state_changes`` sends the batch.

Wiring (Kafka 2.x's ``ZkPartitionStateMachine(config, stateChangeLogger, controllerContext,
zkClient, controllerBrokerRequestBatch)``): the machine receives the context, the fenced
ZooKeeper client, the request batch and the unclean-election lookup -- never the controller.

A partition that cannot get a leader (no live replica; no live ISR member with unclean
election off) stays where it was and is counted in statistics' offline partitions.
ControllerMoved from a fenced write propagates: the caller (KafkaController) resigns.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs
import structlog
import trio

from kafkalike.controller.controller_channel_manager import ControllerBrokerRequestBatch
from kafkalike.controller.controller_context import (
    VALID_PREVIOUS_PARTITION_STATES,
    ControllerContext,
    PartitionState,
    tp_order,
)
from kafkalike.controller.fenced_zk_client import FencedZkClient
from kafkalike.controller.leader_election import (
    LeaderElection,
    controlled_shutdown_leader,
    offline_partition_leader,
    preferred_replica_leader,
    reassign_partition_leader,
)
from kafkalike.controller.state_change_logger import StateChangeLogger, leader_and_isr_str, partition_str
from kafkalike.coordination.errors import NodeExists, NoNode
from kafkalike.coordination.zk_data import LeaderIsrAndControllerEpoch, TopicPartition

log = structlog.get_logger(__name__)
PS = PartitionState
T = TypeVar("T")

#: partitions whose ZooKeeper reads/writes run at once (ZooKeeperClient runs up to 16 calls)
ZK_CONCURRENCY = 16

#: how many partitions a summary log line names (``leaders_elected``, ``isrs_shrunk``, ...);
#: the rest are counted, and logged one by one at debug level
FIRST_FEW = 10


def debug_enabled(logger: Any) -> bool:
    """True if ``logger`` (a structlog logger) would write a debug line: the controller's
    per-partition lines are only built then (at 10,000 partitions a line each cost the event
    loop ~0.5 s of formatting and writing per step; structlog's filtering logger drops a debug
    call cheaply, but its arguments would still be built)."""
    check = getattr(logger.bind(), "is_enabled_for", None)
    return True if check is None else bool(check(logging.DEBUG))


async def for_each_concurrently(items: Iterable[T], fn: Callable[[T], Awaitable[None]],
                                limit: int = ZK_CONCURRENCY) -> None:
    """Run ``fn(item)`` for every item, ``limit`` at a time (independent partitions' ZooKeeper
    round trips overlap; Kafka batches them into async multi-ops instead). The first exception
    (e.g. ControllerMoved) is re-raised as itself once all have finished."""
    errors: list[BaseException] = []
    limiter = trio.Semaphore(limit)

    async def one(item: T) -> None:
        async with limiter:
            try:
                await fn(item)
            except Exception as exc:
                errors.append(exc)

    async with trio.open_nursery() as nursery:
        for item in items:
            nursery.start_soon(one, item)
    if errors:
        raise errors[0]


#: {partition: its state znode}, as read or as to be written
PartitionStates = Mapping[TopicPartition, LeaderIsrAndControllerEpoch]


async def update_states_until_settled(
    zk_client: FencedZkClient, context: ControllerContext, partitions: Iterable[TopicPartition], max_rounds: int,
    compute: Callable[[list[TopicPartition], PartitionStates], Awaitable[PartitionStates]],
    on_written: Callable[[TopicPartition, LeaderIsrAndControllerEpoch], None],
    known: PartitionStates | None = None,
) -> tuple[list[TopicPartition], list[TopicPartition]]:
    """Kafka's updateLeaderAndIsr retry loop, shared by the ISR removal and the elections:
    take every pending partition's state, ``await compute(pending, states)`` (absent states
    left out) -> {tp: new state, zk_version = the version it was computed from}, write them all
    in one pipelined batch through ``zk_client`` guarded by ``context.epoch_zk_version``
    (KafkaZkClient.update_leader_and_isr_many) and call ``on_written(tp, state with its new
    zkVersion)`` for each success; the ones that hit BadVersion (changed under us, e.g. by a
    leader's ISR update) are re-read and go round again, at most ``max_rounds`` rounds.

    ``known``: the states the controller already holds ({tp: state with the zkVersion it read or
    wrote}, its context's ``leadership``). The first round computes from those instead of
    reading them from ZooKeeper; the partitions without one are read (one pipelined batch).
    A write computed from a stale known state fails BadVersion and is re-read like any other;
    a known state that led to no write (``compute`` left it out: nothing to change, or no
    eligible leader) is re-read and computed again in the next round, because only a write can
    tell that it was stale. Kafka reads every state first (doRemoveReplicasFromIsr,
    doElectLeaderForPartitions): the outcome is the same, since every write is conditional on
    the zkVersion; kafkalike saves the read of each partition whose state has not changed since
    the controller read or wrote it (10,000 reads in a failover's ISR removal at 10,000
    partitions, docs/benchmarks.md).

    Without ``known`` every round reads. Returns (vanished: NoNode on write, still pending
    after the last round). Raises ControllerMoved, and any other write error as a single write
    would (after the successes of its round were handed to ``on_written``)."""
    kzk = zk_client
    vanished: list[TopicPartition] = []
    pending = list(partitions)
    for _round in range(max_rounds):
        if not pending:
            break
        unconfirmed: list[TopicPartition] = []
        if known is not None:
            states: dict[TopicPartition, LeaderIsrAndControllerEpoch] = {}
            unknown = []
            for tp in pending:
                state = known.get(tp)
                if state is None:
                    unknown.append(tp)
                else:
                    states[tp] = state
                    unconfirmed.append(tp)
            if unknown:
                states.update(await kzk.get_partition_states(unknown))
            known = None  # later rounds read
        else:
            states = await kzk.get_partition_states(pending)
        new_states = await compute(pending, states)
        unconfirmed = [tp for tp in unconfirmed if tp not in new_states]
        if not new_states:
            if unconfirmed:
                pending = unconfirmed
                continue
            return vanished, []
        result = await kzk.update_leader_and_isr_many(new_states, context.epoch_zk_version)
        for tp, version in result.succeeded.items():
            on_written(tp, attrs.evolve(new_states[tp], zk_version=version))
        for err in result.failed.values():
            if not isinstance(err, NoNode):
                raise err
        vanished += result.failed
        pending = result.bad_version + unconfirmed
    return vanished, pending


class ElectionStrategy(enum.Enum):
    """Which of Kafka's PartitionLeaderElectionStrategy to use when (re-)electing."""

    OFFLINE = "offline"
    #: OfflinePartitionLeaderElectionStrategy(allowUnclean = true): an admin's unclean
    #: ElectLeaders -- a live out-of-sync replica may lead whatever the topic config says
    OFFLINE_ALLOW_UNCLEAN = "offline_allow_unclean"
    REASSIGN = "reassign"
    PREFERRED = "preferred"
    CONTROLLED_SHUTDOWN = "controlled_shutdown"


#: Kafka's PartitionLeaderElectionStrategy objects as their toString prints them
_STRATEGY_NAMES = {
    ElectionStrategy.OFFLINE: "OfflinePartitionLeaderElectionStrategy(false)",
    ElectionStrategy.OFFLINE_ALLOW_UNCLEAN: "OfflinePartitionLeaderElectionStrategy(true)",
    ElectionStrategy.REASSIGN: "ReassignPartitionLeaderElectionStrategy",
    ElectionStrategy.PREFERRED: "PreferredReplicaPartitionLeaderElectionStrategy",
    ElectionStrategy.CONTROLLED_SHUTDOWN: "ControlledShutdownPartitionLeaderElectionStrategy",
}


@attrs.frozen
class ElectionFailure:
    """Why a partition got no new leader (one line)."""

    reason: str


class PartitionStateMachine:
    """Partition state transitions (see module doc), built from what they use (Kafka's
    ZkPartitionStateMachine constructor):

    context: the controller's ControllerContext (states, assignments, leaderships; read and
    updated in place). zk_client: the fenced ZooKeeper client every state read and guarded
    write goes through (ControllerMoved when this controller was fenced); the owner may hand a
    new one by assigning ``zk_client``. request_batch: the ControllerBrokerRequestBatch that
    LeaderAndIsr/UpdateMetadata are added to and sent from. unclean_leader_election_enabled:
    ``await f(topic)`` -> unclean.leader.election.enable for the topic (its /config/topics
    override, else the broker's setting; Kafka reads the topic's LogConfig the same way).
    state_change_logger: the controller's StateChangeLogger (state-change.log: "Changed
    partition t-0 from OfflinePartition to OnlinePartition with state LeaderAndIsr(...)" and
    the failures, Kafka's lines); default writes nothing.
    """

    MAX_ZK_RETRIES = 10

    def __init__(self, context: ControllerContext, zk_client: FencedZkClient,
                 request_batch: ControllerBrokerRequestBatch,
                 unclean_leader_election_enabled: Callable[[str], Awaitable[bool]],
                 state_change_logger: StateChangeLogger | None = None) -> None:
        self.ctx = context
        self.state_change_logger = state_change_logger or StateChangeLogger(-1, in_controller_context=True)
        self.zk_client = zk_client
        self.batch = request_batch
        self._unclean_leader_election_enabled = unclean_leader_election_enabled
        self.unclean_elections = 0  # UncleanLeaderElectionsPerSec's count (broker_metrics)

    # ---- start-up ------------------------------------------------------------------------

    def initialize_partition_state(self) -> None:
        """Set every known partition's state from what was read from ZooKeeper: no state znode
        -> NewPartition; leader alive -> OnlinePartition; else OfflinePartition."""
        ctx = self.ctx
        for tp in sorted(ctx.assignments, key=tp_order):
            li = ctx.leadership.get(tp)
            if li is None:
                ctx.partition_states[tp] = PS.NewPartition
            elif ctx.is_replica_online(tp, li.leader):
                ctx.partition_states[tp] = PS.OnlinePartition
            else:
                ctx.partition_states[tp] = PS.OfflinePartition

    async def startup(self) -> None:
        """Initialize states, then bring New/Offline partitions online (Kafka's startup)."""
        self.initialize_partition_state()
        await self.trigger_online_partition_state_change()

    async def trigger_online_partition_state_change(self, topics: Iterable[str] | None = None
                                                    ) -> dict[TopicPartition, LeaderElection | ElectionFailure]:
        """Elect leaders (offline strategy) for every New/Offline partition not being deleted
        (of ``topics`` only, if given)."""
        ctx = self.ctx
        wanted = None if topics is None else set(topics)
        partitions = [tp for tp, s in sorted(ctx.partition_states.items(), key=lambda item: tp_order(item[0]))
                      if s in (PS.NewPartition, PS.OfflinePartition) and tp.topic not in ctx.topics_to_delete
                      and (wanted is None or tp.topic in wanted)]
        if not partitions:
            return {}
        return await self.handle_state_changes(partitions, PS.OnlinePartition, ElectionStrategy.OFFLINE)

    # ---- transitions ---------------------------------------------------------------------

    async def handle_state_changes(self, partitions: Iterable[TopicPartition], target: PartitionState,
                                   strategy: ElectionStrategy | None = None
                                   ) -> dict[TopicPartition, LeaderElection | ElectionFailure]:
        """Move ``partitions`` to ``target`` in one request batch, which is then sent.
        Returns, for OnlinePartition, each partition's election or failure."""
        batch = self.batch
        batch.new_batch()
        try:
            return await self._do_handle_state_changes(list(partitions), target, strategy)
        finally:
            batch.send_requests_to_brokers(self.ctx.epoch)

    async def _do_handle_state_changes(self, partitions: list[TopicPartition], target: PartitionState,
                                       strategy: ElectionStrategy | None
                                       ) -> dict[TopicPartition, LeaderElection | ElectionFailure]:
        ctx = self.ctx
        scl = self.state_change_logger.with_controller_epoch(ctx.epoch)
        valid = []
        for tp in partitions:
            current = ctx.partition_state(tp)
            if current in VALID_PREVIOUS_PARTITION_STATES[target]:
                valid.append(tp)
            else:
                log.error("partition_state_change_invalid", partition=str(tp), current=current.name,
                          target=target.name)
                previous = ",".join(s.name for s in VALID_PREVIOUS_PARTITION_STATES[target])
                self._log_failed_state_change(
                    tp, current, target, f"java.lang.IllegalStateException: Partition {partition_str(tp)} should be "
                    f"in one of {previous} states before moving to {target.name} state. Instead it is in "
                    f"{current.name} state")
        if target is not PS.OnlinePartition:
            with scl.buffered():  # synchronous: its state-change.log lines in one write
                for tp in valid:
                    if target is PS.NewPartition:
                        scl.info(f"Changed partition {partition_str(tp)} state from {ctx.partition_state(tp).name} "
                                 f"to {target.name} with assigned replicas "
                                 f"{','.join(map(str, ctx.assignments.get(tp, [])))}")
                    elif scl.is_trace_enabled:
                        scl.trace(f"Changed partition {partition_str(tp)} state from {ctx.partition_state(tp).name} "
                                  f"to {target.name}")
                    ctx.move_partition(tp, target)
            return {}
        uninitialized = [tp for tp in valid if ctx.partition_state(tp) is PS.NewPartition]
        to_elect = [tp for tp in valid if ctx.partition_state(tp) is not PS.NewPartition]
        results: dict[TopicPartition, LeaderElection | ElectionFailure] = {}
        if uninitialized:
            results.update(await self._initialize_leader_and_isr(uninitialized))
        if to_elect:
            results.update(await self._elect_leaders(to_elect, strategy or ElectionStrategy.OFFLINE))
        with scl.buffered():  # synchronous: its state-change.log lines (one a partition) in one write
            for tp, outcome in results.items():
                if isinstance(outcome, LeaderElection):
                    written = ctx.leadership.get(tp)
                    if written is not None:
                        scl.info(f"Changed partition {partition_str(tp)} from {ctx.partition_state(tp).name} to "
                                 f"{PS.OnlinePartition.name} with state {leader_and_isr_str(written)}")
                    ctx.move_partition(tp, PS.OnlinePartition)
                else:
                    self._log_failed_state_change(
                        tp, ctx.partition_state(tp), PS.OnlinePartition,
                        f"kafka.common.StateChangeFailedException: {self._failure_text(tp, outcome, strategy)}")
        return results

    def _failure_text(self, tp: TopicPartition, failure: ElectionFailure, strategy: ElectionStrategy | None) -> str:
        """The StateChangeFailedException message Kafka builds for a failed election."""
        ctx = self.ctx
        if ctx.partition_state(tp) is PS.NewPartition and failure.reason == "no live replica":
            replicas = ",".join(map(str, ctx.assignments.get(tp, [])))
            live = ", ".join(map(str, sorted(ctx.live_broker_ids())))
            return (f"Controller {self.state_change_logger.broker_id} epoch {ctx.epoch} encountered error during "
                    f"state change of partition {partition_str(tp)} from New to Online, assigned replicas are "
                    f"[{replicas}], live brokers are [Set({live})]. No assigned replica is alive.")
        name = _STRATEGY_NAMES[strategy or ElectionStrategy.OFFLINE]
        return f"Failed to elect leader for partition {partition_str(tp)} under strategy {name} ({failure.reason})"

    def _log_failed_state_change(self, tp: TopicPartition, current: PartitionState, target: PartitionState,
                                 cause: str) -> None:
        """Kafka's logFailedStateChange: an ERROR line, the cause (Kafka's exception) after it."""
        scl = self.state_change_logger.with_controller_epoch(self.ctx.epoch)
        scl.error(f"Controller {scl.broker_id} epoch {self.ctx.epoch} failed to change state for partition "
                  f"{partition_str(tp)} from {current.name} to {target.name}", cause)

    async def _initialize_leader_and_isr(self, partitions: list[TopicPartition]
                                         ) -> dict[TopicPartition, LeaderElection | ElectionFailure]:
        """Kafka's initializeLeaderAndIsrForPartitions: the first live replica leads, the ISR
        is every live replica; every state znode is created in one pipelined guarded batch
        (KafkaZkClient.create_partition_states_many)."""
        ctx, kzk, batch = self.ctx, self.zk_client, self.batch
        out: dict[TopicPartition, LeaderElection | ElectionFailure] = {}
        new_states: dict[TopicPartition, tuple[LeaderIsrAndControllerEpoch, list[int]]] = {}
        debug = debug_enabled(log)
        offline: list[TopicPartition] = []
        for tp in partitions:
            replicas = ctx.assignments.get(tp, [])
            live = [r for r in replicas if ctx.is_replica_online(tp, r, include_shutting_down=False)]
            if not live:
                out[tp] = ElectionFailure("no live replica")
                offline.append(tp)
                continue
            new_states[tp] = (LeaderIsrAndControllerEpoch(leader=live[0], leader_epoch=0, isr=tuple(live),
                                                          controller_epoch=ctx.epoch, zk_version=0), live)
        if offline:
            log.warning("partitions_offline", count=len(offline), partitions=[str(tp) for tp in offline[:FIRST_FEW]],
                        replicas=list(ctx.assignments.get(offline[0], [])), reason="no live replica")
            if debug:
                for tp in offline:
                    log.debug("partition_offline", partition=str(tp), replicas=list(ctx.assignments.get(tp, [])),
                              reason="no live replica")
        if not new_states:
            return out
        created = await kzk.create_partition_states_many({tp: li for tp, (li, _) in new_states.items()},
                                                         ctx.epoch_zk_version)
        existed = [tp for tp, r in created.items() if isinstance(r, NodeExists)]
        elected: list[TopicPartition] = []
        for tp, r in created.items():
            if isinstance(r, BaseException):
                if not isinstance(r, NodeExists):
                    raise r
                continue
            li, live = new_states[tp]
            ctx.leadership[tp] = li
            batch.add_leader_and_isr_request_for_brokers(live, tp, li, is_new=True)
            out[tp] = LeaderElection(li.leader, li.isr)
            elected.append(tp)
            if debug:
                log.debug("leader_elected", partition=str(tp), leader=li.leader, leader_epoch=0, isr=list(li.isr),
                          strategy="new_partition")
        if elected:
            log.info("leaders_elected", strategy="new_partition", count=len(elected),
                     partitions=[str(tp) for tp in elected[:FIRST_FEW]])

        async def adopt(tp: TopicPartition) -> None:
            # written by a controller that died before it could act on it: adopt it and elect
            existing = await kzk.get_partition_state(tp.topic, tp.partition)
            if existing is None:
                out[tp] = ElectionFailure("state znode vanished")
                return
            ctx.leadership[tp] = existing
            ctx.move_partition(tp, PS.OfflinePartition)
            out.update(await self._elect_leaders([tp], ElectionStrategy.OFFLINE))

        await for_each_concurrently(existed, adopt)
        return out

    async def _unclean_allowed_topics(self, topics: Iterable[str]) -> set[str]:
        """Those of ``topics`` whose unclean.leader.election.enable is true, each looked up
        once (concurrently: a lookup may read the topic's config from ZooKeeper)."""
        allowed: set[str] = set()

        async def look_up(topic: str) -> None:
            if await self._unclean_leader_election_enabled(topic):
                allowed.add(topic)

        await for_each_concurrently(sorted(set(topics)), look_up)
        return allowed

    async def _elect_leaders(self, partitions: list[TopicPartition], strategy: ElectionStrategy
                             ) -> dict[TopicPartition, LeaderElection | ElectionFailure]:
        """Kafka's doElectLeaderForPartitions loop: take every pending state (the first round
        from the controller's context, see update_states_until_settled), choose each leader,
        write every new state in one pipelined guarded batch
        (KafkaZkClient.update_leader_and_isr_many); the partitions that hit BadVersion (or whose
        known state gave no leader) go round again from a fresh read, up to MAX_ZK_RETRIES
        rounds. The choice is plain Python over the partitions; only an offline election that
        finds no live ISR member awaits, once per topic, the topic's
        unclean.leader.election.enable. One ``leaders_elected`` log line for the whole call
        (and one ``leader_election_failed`` warning if some failed), with counts and the first
        few partitions; per partition at debug level (state-change.log keeps Kafka's line
        per partition)."""
        ctx, batch = self.ctx, self.batch
        out: dict[TopicPartition, LeaderElection | ElectionFailure] = {}
        chosen: dict[TopicPartition, tuple[LeaderElection, list[int], LeaderIsrAndControllerEpoch]] = {}
        no_leader: dict[TopicPartition, tuple[LeaderIsrAndControllerEpoch, list[int]]] = {}
        written_order: list[TopicPartition] = []
        debug = debug_enabled(log)
        offline = strategy in (ElectionStrategy.OFFLINE, ElectionStrategy.OFFLINE_ALLOW_UNCLEAN)

        def record(tp: TopicPartition, election: LeaderElection | None, recipients: list[int],
                   current: LeaderIsrAndControllerEpoch, assignment: list[int]) -> None:
            if election is None:
                ctx.leadership[tp] = current
                out[tp] = ElectionFailure(f"no eligible replica ({strategy.value})")
                no_leader[tp] = (current, assignment)
            else:
                chosen[tp] = (election, recipients, current)

        async def compute(pending: list[TopicPartition], states: PartitionStates) -> PartitionStates:
            chosen.clear()
            unclean_candidates: list[tuple[TopicPartition, list[int], list[int], LeaderIsrAndControllerEpoch]] = []
            for tp in pending:
                current = states.get(tp)
                if current is None:
                    out[tp] = ElectionFailure("no partition state znode")
                    continue
                if current.controller_epoch > ctx.epoch:
                    out[tp] = ElectionFailure(
                        f"state written by controller epoch {current.controller_epoch} > ours {ctx.epoch}")
                    continue
                assignment = list(ctx.assignments.get(tp, []))
                election, recipients = self._choose(tp, strategy, assignment, current)
                if election is None and offline and recipients:
                    unclean_candidates.append((tp, assignment, recipients, current))
                    continue
                record(tp, election, recipients, current, assignment)
            if unclean_candidates:  # OFFLINE only: OFFLINE_ALLOW_UNCLEAN elected uncleanly in _choose
                allowed = await self._unclean_allowed_topics(tp.topic for tp, _a, _r, _c in unclean_candidates)
                for tp, assignment, live, current in unclean_candidates:
                    election = (offline_partition_leader(assignment, current.isr, live, True)
                                if tp.topic in allowed else None)
                    record(tp, election, live, current, assignment)
            return {
                tp: LeaderIsrAndControllerEpoch(leader=election.leader, leader_epoch=current.leader_epoch + 1,
                                                isr=election.isr, controller_epoch=ctx.epoch,
                                                zk_version=current.zk_version)
                for tp, (election, _recipients, current) in chosen.items()
            }

        def on_written(tp: TopicPartition, written: LeaderIsrAndControllerEpoch) -> None:
            election, recipients, current = chosen[tp]
            ctx.leadership[tp] = written
            batch.add_leader_and_isr_request_for_brokers(recipients, tp, written)
            out[tp] = election
            no_leader.pop(tp, None)
            written_order.append(tp)
            if election.unclean:
                self.unclean_elections += 1
                log.error("unclean_leader_elected", partition=str(tp), leader=election.leader,
                          previous_isr=list(current.isr),
                          warning="an out-of-sync replica became leader: acknowledged records may be lost")
            if debug:
                log.debug("leader_elected", partition=str(tp), leader=written.leader,
                          leader_epoch=written.leader_epoch, isr=list(written.isr), previous_leader=current.leader,
                          strategy=strategy.value)

        vanished, changing = await update_states_until_settled(
            self.zk_client, ctx, partitions, self.MAX_ZK_RETRIES, compute, on_written, known=ctx.leadership)
        for tp in vanished:
            out[tp] = ElectionFailure("partition state znode vanished")
        for tp in changing:
            out[tp] = ElectionFailure("partition state kept changing")
        if written_order:
            log.info("leaders_elected", strategy=strategy.value, count=len(written_order),
                     partitions=[str(tp) for tp in written_order[:FIRST_FEW]])
        failed = [tp for tp in partitions if isinstance(out.get(tp), ElectionFailure)]
        if failed:
            first = failed[0]
            current, assignment = no_leader.get(first, (ctx.leadership.get(first), ctx.assignments.get(first, [])))
            log.warning("leader_election_failed", strategy=strategy.value, count=len(failed),
                        partitions=[str(tp) for tp in failed[:FIRST_FEW]], reason=out[first].reason,  # type: ignore[union-attr]
                        isr=list(current.isr) if current is not None else None, replicas=list(assignment),
                        live=sorted(ctx.live_broker_ids()))
            if debug:
                for tp in failed:
                    log.debug("leader_election_failed", partition=str(tp), strategy=strategy.value,
                              reason=out[tp].reason)  # type: ignore[union-attr]
        return out

    def _choose(self, tp: TopicPartition, strategy: ElectionStrategy, assignment: list[int],
                current: LeaderIsrAndControllerEpoch) -> tuple[LeaderElection | None, list[int]]:
        """The election ``strategy`` makes from ``current`` (unclean only for
        OFFLINE_ALLOW_UNCLEAN: for OFFLINE the caller looks up the topic's setting when this
        finds no leader) and the replicas to send LeaderAndIsr to."""
        ctx = self.ctx
        live = [r for r in assignment if ctx.is_replica_online(tp, r, include_shutting_down=False)]
        if strategy in (ElectionStrategy.OFFLINE, ElectionStrategy.OFFLINE_ALLOW_UNCLEAN):
            election = offline_partition_leader(assignment, current.isr, live, False)
            if election is None and live and strategy is ElectionStrategy.OFFLINE_ALLOW_UNCLEAN:
                election = offline_partition_leader(assignment, current.isr, live, True)
            return election, live
        if strategy is ElectionStrategy.REASSIGN:
            adding, removing = ctx.reassigning.get(tp, ((), ()))
            target = [r for r in assignment if r not in removing]
            return reassign_partition_leader(target, current.isr, live), live
        if strategy is ElectionStrategy.PREFERRED:
            return preferred_replica_leader(assignment, current.isr, live), live
        live_or_shutting = [r for r in assignment if ctx.is_replica_online(tp, r, include_shutting_down=True)]
        election = controlled_shutdown_leader(assignment, current.isr, live_or_shutting, ctx.shutting_down)
        return election, [r for r in live_or_shutting if r not in ctx.shutting_down]
