"""The scenario library: named fault sequences, the same on every backend.

A ``Scenario`` is a function of a ``ScenarioContext`` (the nemesis, the backend, the run's
deadline) plus the topic configuration it needs and what the checker is expected to say:
``expect="valid"`` (Kafka's promise holds) or ``expect="lost"`` (the scenario switches a
protection off and the checker must report lost acknowledged records). docs/chaos.md
explains each: what Kafka does, and what we observed.

Most scenarios repeat one inject-hold-heal-quiet cycle until the duration is used up (at
least once). ``random`` is the seeded random nemesis (faults.random_schedule).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import attrs

from kafkalike.chaos.faults import (
    CutFromZk,
    Fault,
    FaultContext,
    Isolate,
    Kill,
    KillZk,
    Nemesis,
    Partition,
    Pause,
    RollingRestart,
    ZkQuorumLoss,
    DEFAULT_MENU,
    Both,
    ClockJump,
    Decommission,
    DeleteTopicDuringControllerKill,
    FullDisk,
    Grow,
    ZkLinkDelay,
    ZkLinkDrop,
    ZkExpiryStorm,
    random_schedule,
    wait_isr_full,
)


@attrs.define
class ScenarioContext:
    """What a scenario runs with: the nemesis (and through it the backend and topic), the
    run's deadline (monotonic seconds), the seeded rng, a stop event (Ctrl-C) and the random
    nemesis's menu version (faults.MENUS)."""

    nemesis: Nemesis
    deadline: float
    rng: random.Random
    stop: threading.Event = attrs.Factory(threading.Event)
    menu: str = DEFAULT_MENU

    @property
    def fault_ctx(self) -> FaultContext:
        return self.nemesis.ctx

    @property
    def session_timeout_s(self) -> float:
        return self.nemesis.ctx.backend.session_timeout_s

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def sleep(self, seconds: float) -> None:
        self.stop.wait(max(0.0, seconds))

    def cycle(self, fault: Fault, hold: float, quiet: float) -> None:
        """Inject ``fault``, hold ``hold`` s, heal, wait for full ISRs (up to 60 s), stay
        quiet ``quiet`` s."""
        inj = self.nemesis.inject(fault)
        if inj is not None:
            self.sleep(hold)
            self.nemesis.heal(inj)
        wait_isr_full(self.fault_ctx.backend, self.fault_ctx.topic, 60.0)
        self.sleep(quiet)

    def repeat(self, make: Callable[[], Fault], hold: float, quiet: float) -> None:
        """``cycle`` until the deadline (at least once)."""
        while True:
            self.cycle(make(), hold, quiet)
            if self.stop.is_set() or self.remaining() < hold + quiet:
                return


@attrs.frozen
class Scenario:
    """A named fault sequence. topic_config: per-topic overrides (Kafka names) it needs;
    expect: "valid" or "lost"; needs_zk: it breaks ZooKeeper (the backend must own it);
    needs: backend fault surfaces it uses ("disk": tmpfs log dirs, "clock": the clock library)."""

    name: str
    summary: str
    run: Callable[[ScenarioContext], None]
    topic_config: dict[str, str] = attrs.Factory(dict)
    expect: str = "valid"
    needs_zk: bool = False
    needs: tuple[str, ...] = ()


def _leader_kill(ctx: ScenarioContext) -> None:
    ctx.repeat(lambda: Kill("leader"), hold=max(3.0, ctx.session_timeout_s), quiet=3.0)


def _controller_kill(ctx: ScenarioContext) -> None:
    ctx.repeat(lambda: Kill("controller"), hold=max(3.0, ctx.session_timeout_s), quiet=3.0)


def _zombie_controller(ctx: ScenarioContext) -> None:
    s = ctx.session_timeout_s
    ctx.repeat(lambda: Pause("controller"), hold=1.5 * s + 2.0, quiet=3.0)


def _zk_leader_loss(ctx: ScenarioContext) -> None:
    ctx.repeat(lambda: KillZk("leader"), hold=max(3.0, ctx.session_timeout_s), quiet=3.0)


def _zk_quorum_loss(ctx: ScenarioContext) -> None:
    ctx.repeat(ZkQuorumLoss, hold=max(5.0, 1.5 * ctx.session_timeout_s), quiet=5.0)


def _leader_partition(ctx: ScenarioContext) -> None:
    ctx.repeat(lambda: Partition(("leader",), ("followers",)), hold=max(6.0, 2 * ctx.session_timeout_s), quiet=3.0)


def _isolated_broker(ctx: ScenarioContext) -> None:
    ctx.repeat(lambda: Isolate("leader"), hold=2 * ctx.session_timeout_s + 2.0, quiet=3.0)


def _controller_zk_cut(ctx: ScenarioContext) -> None:
    ctx.repeat(lambda: CutFromZk("controller"), hold=1.5 * ctx.session_timeout_s + 2.0, quiet=3.0)


def _rolling_restart(ctx: ScenarioContext) -> None:
    ctx.repeat(RollingRestart, hold=0.0, quiet=3.0)


def _unclean_election(ctx: ScenarioContext) -> None:
    """Jepsen 2013 on purpose: the followers die, the leader acknowledges alone
    (min.insync.replicas=1), then the leader dies and an out-of-sync follower comes back and
    is elected (unclean.leader.election.enable=true); the old leader returns and truncates."""
    n, fc = ctx.nemesis, ctx.fault_ctx
    s = ctx.session_timeout_s
    leader = fc.broker("leader")
    followers = [b for b in fc.replicas() if b != leader]
    kills = [n.inject(Kill(f)) for f in followers]
    ctx.sleep(s + 6.0)                            # ISR shrinks; the leader alone acknowledges
    lk = n.inject(Kill(leader))
    ctx.sleep(1.0)
    if kills and kills[0] is not None:            # an out-of-sync follower returns first:
        n.heal(kills[0])                          # the controller elects it, uncleanly
    ctx.sleep(s + 6.0)                            # it acknowledges over the old tail
    if lk is not None:
        n.heal(lk)                                # the old leader truncates to follow it
    for k in kills[1:]:
        if k is not None:
            n.heal(k)
    wait_isr_full(fc.backend, fc.topic, 60.0)
    ctx.sleep(2.0)


def _disk_full(ctx: ScenarioContext) -> None:
    ctx.repeat(lambda: FullDisk("leader"), hold=max(3.0, ctx.session_timeout_s), quiet=3.0)


def _clock_jump(ctx: ScenarioContext) -> None:
    """The leader's wall clock an hour ahead, healed (a jump back); then the controller's an
    hour behind, healed (a jump forward); repeated until the deadline."""
    hold = max(3.0, ctx.session_timeout_s)
    while True:
        ctx.cycle(ClockJump("leader", 3600.0), hold, 2.0)
        ctx.cycle(ClockJump("controller", -3600.0), hold, 2.0)
        if ctx.stop.is_set() or ctx.remaining() < 2 * hold + 4.0:
            return


def _grow_shrink(ctx: ScenarioContext) -> None:
    """A spare joins and takes a replica of every partition (held), then leaves again; then
    partition 0's leader is decommissioned onto the spare (held), then restored."""
    hold = max(3.0, ctx.session_timeout_s)
    while True:
        ctx.cycle(Grow(), hold, 2.0)
        ctx.cycle(Decommission("leader"), hold, 2.0)
        if ctx.stop.is_set() or ctx.remaining() < 2 * hold + 4.0:
            return


def _kill_during_reassignment(ctx: ScenarioContext) -> None:
    ctx.repeat(lambda: Both(Grow(), Kill("leader"), after=0.5), hold=max(3.0, ctx.session_timeout_s), quiet=3.0)


def _delete_topic_controller_kill(ctx: ScenarioContext) -> None:
    ctx.repeat(DeleteTopicDuringControllerKill, hold=max(3.0, ctx.session_timeout_s), quiet=3.0)


def _zk_link_faults(ctx: ScenarioContext) -> None:
    """The controller's ZooKeeper links delayed (a third of the session timeout each way),
    then the leader's dropped every 2 s; repeated until the deadline."""
    s = ctx.session_timeout_s
    hold = max(3.0, s)
    while True:
        ctx.cycle(ZkLinkDelay("controller", round(s / 3, 2)), hold, 2.0)
        ctx.cycle(ZkLinkDrop("leader", every_s=2.0, down_s=1.0), hold, 2.0)
        if ctx.stop.is_set() or ctx.remaining() < 2 * hold + 4.0:
            return


def _tour_v2(ctx: ScenarioContext) -> None:
    """Each single-broker fault new in menu v2 once, those the backend offers: the leader's
    disk full, the leader's clock +1 h, the controller's -1 h, the controller's ZooKeeper
    links delayed, the leader's dropped; held half a session timeout (at least 2 s) each."""
    b = ctx.fault_ctx.backend
    s = ctx.session_timeout_s
    hold = max(2.0, s / 2)
    faults: list[Fault] = []
    if getattr(b, "disk_faults", False):
        faults.append(FullDisk("leader"))
    if getattr(b, "clock_faults", False):
        faults += [ClockJump("leader", 3600.0), ClockJump("controller", -3600.0)]
    if getattr(b, "zk_proxy", False):
        faults += [ZkLinkDelay("controller", round(s / 3, 2)), ZkLinkDrop("leader", every_s=2.0, down_s=1.0)]
    for f in faults:
        if ctx.stop.is_set():
            return
        ctx.cycle(f, hold, 1.0)


def _expiry_storm(ctx: ScenarioContext) -> None:
    ctx.repeat(lambda: ZkExpiryStorm("leader"), hold=3.0 * ctx.session_timeout_s, quiet=3.0)


def _random(ctx: ScenarioContext) -> None:
    """Steps of the seeded schedule until the deadline: a step starts only if its hold still
    fits (the first always does); the schedule is extended, from the same rng, if the
    steps went faster than random_schedule estimated."""
    backend = ctx.fault_ctx.backend
    while not ctx.stop.is_set() and ctx.remaining() > 0:
        steps = random_schedule(ctx.rng, max(0.0, ctx.remaining()), backend.session_timeout_s,
                                with_zk=bool(backend.zk_node_ids), menu=ctx.menu,
                                with_disk=bool(getattr(backend, "disk_faults", False)),
                                with_clock=bool(getattr(backend, "clock_faults", False)),
                                with_spare=bool(getattr(backend, "spares", None)),
                                with_proxy=bool(getattr(backend, "zk_proxy", False)))
        for step in steps:
            if ctx.stop.is_set() or (ctx.remaining() < step.hold and ctx.nemesis.injected):
                return
            ctx.cycle(step.fault, step.hold, step.quiet)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("leader-kill", "kill -9 the leader of partition 0 under load, restart it", _leader_kill),
    Scenario("controller-kill", "kill -9 the active controller, restart it", _controller_kill),
    Scenario("zombie-controller", "SIGSTOP the controller past its session timeout, then SIGCONT",
             _zombie_controller),
    Scenario("zk-leader-loss", "kill -9 the ZooKeeper leader, restart it", _zk_leader_loss, needs_zk=True),
    Scenario("zk-quorum-loss", "kill -9 two of three ZooKeeper nodes, restart them", _zk_quorum_loss,
             needs_zk=True),
    Scenario("leader-partition", "cut partition 0's leader from its followers (ZooKeeper still reachable)",
             _leader_partition),
    Scenario("isolated-broker", "cut partition 0's leader from every broker and ZooKeeper (clients still reach it)",
             _isolated_broker),
    Scenario("controller-zk-cut", "cut the controller from ZooKeeper only", _controller_zk_cut),
    Scenario("rolling-restart", "clean restart of every broker in turn, waiting for full ISRs", _rolling_restart),
    Scenario("unclean-election", "followers die, the lone leader acks (min.insync.replicas=1), leader dies, "
             "an out-of-sync follower is elected (unclean.leader.election.enable=true): expected to LOSE data",
             _unclean_election, topic_config={"unclean.leader.election.enable": "true", "min.insync.replicas": "1"},
             expect="lost"),
    Scenario("disk-full", "fill the small filesystem under partition 0's leader's log dir, then free it "
             "(local backend with tmpfs log dirs)", _disk_full, needs=("disk",)),
    Scenario("clock-jump", "the leader's wall clock +1 h then back, the controller's -1 h then back "
             "(local backend with the clock library)", _clock_jump, needs=("clock",)),
    Scenario("grow-shrink", "a 4th broker joins and takes a replica of every partition, leaves again; then the "
             "leader is decommissioned onto it and restored (needs a spare broker)", _grow_shrink, needs=("spare",)),
    Scenario("kill-during-reassignment", "kill -9 the leader while partitions are being reassigned onto a new "
             "broker (needs a spare broker)", _kill_during_reassignment, needs=("spare",)),
    Scenario("delete-topic-controller-kill", "delete a topic and kill -9 the controller at once; the deletion "
             "must complete under the next controller", _delete_topic_controller_kill),
    Scenario("zk-link-faults", "the controller's ZooKeeper traffic delayed, then the leader's ZooKeeper "
             "connections dropped repeatedly (user-space proxy)", _zk_link_faults, needs=("proxy",)),
    Scenario("tour-v2", "each single-broker fault new in menu v2 once (full disk, clock jumps both ways, "
             "ZooKeeper link delay and drops), those the backend offers", _tour_v2),
    Scenario("expiry-storm", "the leader paused past its ZooKeeper session again and again (re-registers "
             "each time)", _expiry_storm),
    Scenario("random", "the seeded random nemesis (every fault above, one at a time; --menu v1|v2)", _random),
]}
