"""The fault library and the nemesis: every fault through one interface, each with a heal.

A ``Fault`` is a description ("kill -9 the leader of chaos/0"); ``Nemesis.inject(fault)``
resolves its target *now* (who is the controller, who leads the partition), applies it
through the backend (``kafkalike.chaos.local.LocalBackend``; a compose backend offers the
same methods), records ``FaultStarted`` in the history, prints a live line, and returns an
``Injection`` whose ``heal()`` undoes it and records ``FaultHealed``. ``Nemesis.heal_all()``
heals whatever is still active and is called from the runner's ``finally``.

Faults (``name`` in the history, target syntax):

| class | name | what |
|---|---|---|
| Kill(target) | kill9 | SIGKILL a broker; heal: start it again once its old registration vanished |
| Pause(target) | pause | SIGSTOP a broker; heal: SIGCONT (held past the session timeout: a zombie) |
| Restart(target) | restart | clean shutdown (SIGTERM, controlled shutdown); heal: start it |
| RollingRestart() | rolling-restart | each broker in turn: clean shutdown, start, wait for full ISRs |
| KillZk(which) | zk-kill9 | SIGKILL a ZooKeeper node ("leader", "follower" or an id); heal: restart |
| ZkQuorumLoss() | zk-quorum-loss | SIGKILL the ZooKeeper leader and one follower; heal: restart both |
| Partition(a, b) | partition | cut every link between broker group a and node group b, both ways |
| Isolate(target) | isolate | cut a broker from every other broker and from ZooKeeper |
| CutFromZk(target) | zk-cut | cut a broker's links to every ZooKeeper node only |
| ZkExpiryStorm(target) | zk-expiry-storm | pause a broker past its session timeout, let it wake and re-register; repeat |
| FullDisk(target) | disk-full | fill the small filesystem under a broker's log dir; heal: free it (restart the broker if it halted) |
| ClockJump(target, offset_s) | clock-jump | step one broker's wall clock (CLOCK_REALTIME) by offset_s; heal: step it back |
| Grow() | grow | a spare broker joins, one replica of every partition is reassigned onto it; heal: back, then it is stopped |
| Decommission(target) | decommission | every replica of a broker reassigned onto a spare, then the broker stopped; heal: the reverse |
| ZkLinkDelay(target, delay_s) | net-delay | a broker's ZooKeeper traffic delayed delay_s each way (user-space proxy) |
| ZkLinkDrop(target, every_s) | net-drop | a broker's ZooKeeper connections dropped every every_s s, refused for down_s |
| Both(first, second) | first+second | two faults at once, the second ``after`` s later (kill during reassignment); healed in reverse |
| DeleteTopicDuringControllerKill() | delete-topic+kill9 | delete a scratch topic, kill -9 the controller at once; |
|   |   | heal: restart it, the deletion must complete |

Broker targets: ``"controller"``, ``"leader"`` (of ``topic``/``partition`` given to the
nemesis; ``"leader:2"`` for partition 2), ``"follower"`` (a non-leader replica of it;
``"follower:2"``), ``"random"``, or a broker id.
Random choices come from the nemesis's seeded ``random.Random``.

``random_schedule(rng, duration, ..., menu="v2")`` draws the seeded random nemesis: a list of
(fault, hold seconds, quiet seconds after the heal) from menu ``v1`` (the faults of the first
campaigns, docs/campaigns/2026-12-07-*) or ``v2`` (v1 plus expiry storms, and where the backend
offers them full disks, clock jumps, cluster growth and decommissioning, a kill during a
reassignment, a controller kill during a topic deletion, and delayed or dropped ZooKeeper
links through a user-space proxy).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import structlog

from kafkalike.chaos.history import FaultHealed, FaultStarted, now

log = structlog.get_logger(__name__)


class ChaosError(Exception):
    """A fault could not be resolved or applied (no controller, no such node, ...)."""


class Backend(Protocol):
    """What faults need from a backend (LocalBackend and ComposeBackend implement it)."""

    name: str

    @property
    def broker_ids(self) -> list[int]: ...
    @property
    def bootstrap_servers(self) -> str: ...
    @property
    def session_timeout_s(self) -> float: ...
    @property
    def zk_node_ids(self) -> list[int]: ...
    def zk_nodes(self) -> list[str]: ...
    def controller_id(self) -> int | None: ...
    def partition_states(self, topic: str) -> Any: ...
    def broker_alive(self, broker_id: int) -> bool: ...
    def kill_broker(self, broker_id: int) -> str: ...
    def pause_broker(self, broker_id: int) -> str: ...
    def resume_broker(self, broker_id: int) -> None: ...
    def stop_broker(self, broker_id: int, timeout: float = 60.0) -> str: ...
    def start_broker(self, broker_id: int, timeout: float = 90.0) -> None: ...
    def zk_leader_id(self) -> int | None: ...
    def kill_zk(self, node_id: int) -> str: ...
    def start_zk(self, node_id: int, timeout: float = 60.0) -> None: ...
    def cut(self, src: str, dst: str) -> Any: ...
    def restore(self, handle: Any) -> None: ...
    def heal_all(self, restart_dead: bool = True) -> None: ...


@attrs.define
class Injection:
    """An applied fault: ``heal()`` undoes it (once; later calls do nothing)."""

    name: str
    target: str
    detail: str
    started: float
    undo: Callable[[], None]
    healed: bool = False


@attrs.define
class FaultContext:
    """What a fault resolves its target against: the backend, the workload's topic and the
    partition faults aim at, and the seeded rng."""

    backend: Backend
    topic: str
    partition: int
    rng: random.Random

    def broker(self, target: str | int, exclude: tuple[int, ...] = ()) -> int:
        """Resolve a broker target to an id (ChaosError if there is none)."""
        if isinstance(target, int):
            return target
        if target == "controller":
            c = self.backend.controller_id()
            if c is None:
                raise ChaosError("no active controller")
            return c
        kind, _, part = target.partition(":")
        if kind in ("leader", "follower"):
            partition = int(part) if part.isdigit() else self.partition
            st = (self.backend.partition_states(self.topic) or {}).get(partition)
            if st is None or st.leader < 0:
                raise ChaosError(f"{self.topic}/{partition} has no leader")
            target = kind
            if target == "leader":
                return int(st.leader)
            others = [r for r in st.replicas if r != st.leader and r not in exclude]
            if not others:
                raise ChaosError(f"{self.topic}/{partition} has no follower")
            return int(self.rng.choice(sorted(others)))
        if target == "random":
            alive = [b for b in self.backend.broker_ids if self.backend.broker_alive(b) and b not in exclude]
            if not alive:
                raise ChaosError("no broker alive")
            return self.rng.choice(alive)
        if target.isdigit():
            return int(target)
        raise ChaosError(f"unknown broker target {target!r}")

    def replicas(self) -> list[int]:
        st = (self.backend.partition_states(self.topic) or {}).get(self.partition)
        return list(st.replicas) if st is not None else list(self.backend.broker_ids)


class Fault:
    """One kind of fault. ``apply(ctx)`` returns (target text, detail, undo callable)."""

    name = "fault"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


@attrs.define
class Kill(Fault):
    """kill -9 a broker; heal starts it again (after its ZooKeeper session expired)."""

    target: str | int = "random"
    name = "kill9"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        b = ctx.broker(self.target)
        detail = ctx.backend.kill_broker(b)
        return f"broker-{b}", f"{self.target}; {detail}", lambda: ctx.backend.start_broker(b)

    def describe(self) -> str:
        return f"kill9 {self.target}"


@attrs.define
class Pause(Fault):
    """SIGSTOP a broker; heal sends SIGCONT. Held past zookeeper.session.timeout.ms it wakes
    as a zombie: its session is gone and someone else leads/controls."""

    target: str | int = "random"
    name = "pause"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        b = ctx.broker(self.target)
        detail = ctx.backend.pause_broker(b)
        return f"broker-{b}", f"{self.target}; SIGSTOP {detail}", lambda: ctx.backend.resume_broker(b)

    def describe(self) -> str:
        return f"pause {self.target}"


@attrs.define
class Restart(Fault):
    """Clean shutdown of a broker (SIGTERM: controlled shutdown); heal starts it."""

    target: str | int = "random"
    name = "restart"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        b = ctx.broker(self.target)
        detail = ctx.backend.stop_broker(b)
        return f"broker-{b}", f"{self.target}; SIGTERM {detail}", lambda: ctx.backend.start_broker(b)

    def describe(self) -> str:
        return f"restart {self.target}"


@attrs.define
class RollingRestart(Fault):
    """Every broker in turn: clean shutdown, start, wait until every partition of the topic
    has its full ISR again. Done inside ``apply``; heal has nothing left to undo."""

    isr_timeout: float = 90.0
    name = "rolling-restart"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        order = list(ctx.backend.broker_ids)
        for b in order:
            ctx.backend.stop_broker(b)
            ctx.backend.start_broker(b)
            wait_isr_full(ctx.backend, ctx.topic, self.isr_timeout)
        return "all", "brokers " + ",".join(map(str, order)), lambda: None


@attrs.define
class KillZk(Fault):
    """kill -9 a ZooKeeper node ("leader", "follower" or a node id); heal restarts it."""

    which: str | int = "leader"
    name = "zk-kill9"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        ids = ctx.backend.zk_node_ids
        if not ids:
            raise ChaosError("no ZooKeeper ensemble to break on this backend")
        leader = ctx.backend.zk_leader_id()
        if self.which == "leader":
            if leader is None:
                raise ChaosError("the ZooKeeper ensemble has no leader")
            n = leader
        elif self.which == "follower":
            n = ctx.rng.choice([i for i in ids if i != leader])
        else:
            n = int(self.which)
        detail = ctx.backend.kill_zk(n)
        return f"zk-{n}", f"{self.which}; {detail}", lambda: ctx.backend.start_zk(n)

    def describe(self) -> str:
        return f"zk-kill9 {self.which}"


@attrs.define
class ZkQuorumLoss(Fault):
    """kill -9 two of three ZooKeeper nodes (the leader and a follower): no quorum, no writes
    nor session keep-alives; heal restarts both."""

    name = "zk-quorum-loss"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        ids = ctx.backend.zk_node_ids
        if len(ids) < 3:
            raise ChaosError("no 3-node ZooKeeper ensemble to break on this backend")
        leader = ctx.backend.zk_leader_id() or ids[0]
        other = ctx.rng.choice([i for i in ids if i != leader])
        details = [ctx.backend.kill_zk(n) for n in (leader, other)]

        def undo() -> None:
            for n in (leader, other):
                ctx.backend.start_zk(n)

        return f"zk-{leader},zk-{other}", "; ".join(details), undo


@attrs.define
class Partition(Fault):
    """Cut every link between broker group ``a`` and node group ``b`` in both directions.

    ``a``: broker targets; ``b``: broker targets, "others" (every broker not in a) or
    "followers" (the partition's other replicas), and/or "zk" (every ZooKeeper node).
    """

    a: tuple[str | int, ...] = ("leader",)
    b: tuple[str | int, ...] = ("followers",)
    name = "partition"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        side_a = [ctx.broker(t) for t in self.a]
        side_b: list[str] = []
        for t in self.b:
            if t == "zk":
                side_b += ctx.backend.zk_nodes()
            elif t == "others":
                side_b += [f"b{x}" for x in ctx.backend.broker_ids if x not in side_a]
            elif t == "followers":
                side_b += [f"b{x}" for x in ctx.replicas() if x not in side_a]
            else:
                side_b.append(f"b{ctx.broker(t)}")
        handles: list[Any] = []
        try:
            for x in side_a:
                for y in side_b:
                    handles.append(ctx.backend.cut(f"b{x}", y))
                    if y.startswith("b"):
                        handles.append(ctx.backend.cut(y, f"b{x}"))
        except BaseException:
            for h in handles:
                ctx.backend.restore(h)
            raise

        def undo() -> None:
            for h in handles:
                ctx.backend.restore(h)

        target = "|".join(["+".join(f"b{x}" for x in side_a), "+".join(side_b)])
        return target, f"{self.describe()}; {len(handles)} iptables rules", undo

    def describe(self) -> str:
        return f"partition {'+'.join(map(str, self.a))} | {'+'.join(map(str, self.b))}"


@attrs.define
class ZkExpiryStorm(Fault):
    """A ZooKeeper session expiry storm on one broker: SIGSTOP it for ``over`` times
    zookeeper.session.timeout.ms (its session expires, its /brokers/ids znode vanishes, the
    controller moves its leaderships away), SIGCONT it for ``awake`` seconds (it learns of the
    expiry, opens a new session and registers again, KIP-217's re-registration), and repeat
    until healed; heal stops the cycling and leaves the broker running. ``cycles``: pauses so
    far. The issue's "session expiry storm"; in the random nemesis's menu ``v2``."""

    target: str | int = "random"
    over: float = 1.5
    awake: float = 3.0
    name = "zk-expiry-storm"
    cycles: int = attrs.field(default=0, init=False)

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        b = ctx.broker(self.target)
        pause_s = self.over * ctx.backend.session_timeout_s
        stop = threading.Event()
        detail = ctx.backend.pause_broker(b)
        self.cycles = 1

        def storm() -> None:
            paused = True
            try:
                while True:
                    stop.wait(pause_s)
                    ctx.backend.resume_broker(b)
                    paused = False
                    if stop.wait(self.awake):
                        return
                    ctx.backend.pause_broker(b)
                    paused = True
                    self.cycles += 1
            except Exception as exc:
                log.warning("expiry_storm_failed", broker=b, error=str(exc))
            finally:
                if paused:
                    try:
                        ctx.backend.resume_broker(b)
                    except Exception as exc:
                        log.warning("expiry_storm_resume_failed", broker=b, error=str(exc))

        thread = threading.Thread(target=storm, name=f"zk-expiry-storm-{b}", daemon=True)
        thread.start()

        def undo() -> None:
            stop.set()
            thread.join(pause_s + 60.0)

        return (f"broker-{b}", f"{self.target}; SIGSTOP {pause_s:.1f}s / SIGCONT {self.awake:.1f}s cycles; {detail}",
                undo)

    def describe(self) -> str:
        return f"zk-expiry-storm {self.target}"


@attrs.define
class FullDisk(Fault):
    """Fill the small filesystem the backend mounted under a broker's log dir (a filler file
    takes every free byte), so the broker's appends fail with ENOSPC: kafkalike rolls the
    failed write back and answers KAFKA_STORAGE_ERROR, or takes the log dir offline and halts
    when it cannot (docs/robustness.md), as Kafka's LogDirFailureChannel does. Heal: delete
    the filler; a broker that halted is started again. Needs a backend with ``fill_disk``
    (the local backend created with ``disk_mb``); ChaosError otherwise."""

    target: str | int = "leader"
    name = "disk-full"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        fill = getattr(ctx.backend, "fill_disk", None)
        if fill is None or not getattr(ctx.backend, "disk_faults", False):
            raise ChaosError(f"the {ctx.backend.name} backend has no small log-dir filesystem to fill")
        b = ctx.broker(self.target)
        detail = fill(b)
        return f"broker-{b}", f"{self.target}; {detail}", lambda: ctx.backend.free_disk(b)  # type: ignore[attr-defined]  # checked above

    def describe(self) -> str:
        return f"disk-full {self.target}"


@attrs.define
class ClockJump(Fault):
    """Step one broker's wall clock (CLOCK_REALTIME: ``time.time()``, record and index
    timestamps, retention) by ``offset_s`` seconds, forward (> 0) or back (< 0), as an NTP
    step would; CLOCK_MONOTONIC (every timeout, trio's clock) is not touched, as NTP does
    not touch it. Heal steps it back to the real time (the opposite jump). Needs a backend with
    ``set_clock_offset`` (the local backend created with ``clock_faults``); ChaosError
    otherwise."""

    target: str | int = "random"
    offset_s: float = 600.0
    name = "clock-jump"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        shift = getattr(ctx.backend, "set_clock_offset", None)
        if shift is None or not getattr(ctx.backend, "clock_faults", False):
            raise ChaosError(f"the {ctx.backend.name} backend cannot move a broker's clock")
        b = ctx.broker(self.target)
        detail = shift(b, self.offset_s)
        return f"broker-{b}", f"{self.target}; {self.offset_s:+g}s; {detail}", lambda: shift(b, 0.0)

    def describe(self) -> str:
        return f"clock-jump {self.target} {self.offset_s:+g}s"


@attrs.define
class ZkLinkDelay(Fault):
    """Network delay where ``tc netem`` is unavailable: everything between one broker and
    every ZooKeeper node goes through the backend's user-space proxy (kafkalike.chaos.proxy)
    and is held ``delay_s`` seconds each way; heal: no delay (chunks already held are still
    delivered, in order). Needs a backend with ``zk_link_delay`` (the local backend created
    with ``zk_proxy``)."""

    target: str | int = "random"
    delay_s: float = 1.0
    name = "net-delay"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        fn = _backend_call(ctx, "zk_link_delay")
        b = ctx.broker(self.target)
        detail = fn(b, self.delay_s)
        return f"broker-{b}|zk", f"{self.target}; {detail}", lambda: fn(b, 0.0)

    def describe(self) -> str:
        return f"net-delay {self.target} {self.delay_s:g}s"


@attrs.define
class ZkLinkDrop(Fault):
    """Connection loss where packet loss cannot be injected: every ``every_s`` seconds the
    proxy closes all of one broker's connections to ZooKeeper and refuses new ones for
    ``down_s`` seconds (its client reconnects, to the same or another node; a session
    survives as long as some reconnect happens within the session timeout). Heal: stop,
    accept again. Needs ``zk_link_drop`` (the local backend created with ``zk_proxy``)."""

    target: str | int = "random"
    every_s: float = 3.0
    down_s: float = 1.0
    name = "net-drop"
    drops: int = attrs.field(default=0, init=False)

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        fn = _backend_call(ctx, "zk_link_drop")
        b = ctx.broker(self.target)
        stop = threading.Event()
        closed = fn(b, True)
        self.drops = 1

        def flap() -> None:
            try:
                while not stop.wait(self.down_s):
                    fn(b, False)
                    if stop.wait(max(0.0, self.every_s - self.down_s)):
                        return
                    fn(b, True)
                    self.drops += 1
            except Exception as exc:
                log.warning("net_drop_failed", broker=b, error=str(exc))
            finally:
                fn(b, False)

        thread = threading.Thread(target=flap, name=f"net-drop-{b}", daemon=True)
        thread.start()

        def undo() -> None:
            stop.set()
            thread.join(self.every_s + 10.0)

        return (f"broker-{b}|zk", f"{self.target}; ZooKeeper connections dropped every {self.every_s:.1f}s, "
                f"refused {self.down_s:.1f}s each time; {closed} closed at first", undo)

    def describe(self) -> str:
        return f"net-drop {self.target}"


def _backend_call(ctx: FaultContext, method: str) -> Callable[..., Any]:
    fn = getattr(ctx.backend, method, None)
    if fn is None:
        raise ChaosError(f"the {ctx.backend.name} backend cannot {method.replace('_', ' ')}")
    return fn  # type: ignore[no-any-return]  # a backend method


def _original_replicas(ctx: FaultContext) -> dict[int, list[int]]:
    states = ctx.backend.partition_states(ctx.topic)
    if not states:
        raise ChaosError(f"{ctx.topic}: no partition states in ZooKeeper")
    return {p: list(st.replicas) for p, st in states.items()}


@attrs.define
class Grow(Fault):
    """The cluster grows while producing: a spare broker starts and registers, and one
    replica of every partition of the topic (a replica drawn from the seeded rng, the leader
    among the candidates) is reassigned onto it with AlterPartitionReassignments (KIP-455);
    the reassignment runs during the hold. Heal shrinks it back: reassign the original
    replicas (waiting until they are in sync), then a clean shutdown of the added broker
    (decommissioned). Needs a backend with spare brokers; ChaosError otherwise."""

    reassign_wait_s: float = 120.0
    name = "grow"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        add = _backend_call(ctx, "add_broker")
        reassign = _backend_call(ctx, "reassign")
        original = _original_replicas(ctx)
        b = add()
        try:
            moves = {}
            for p, replicas in original.items():
                out = ctx.rng.choice(replicas)
                moves[p] = [b if r == out else r for r in replicas]
            text = reassign(ctx.topic, moves)
        except BaseException:
            ctx.backend.retire_broker(b)  # type: ignore[attr-defined]  # a backend with add_broker has it
            raise

        def undo() -> None:
            reassign(ctx.topic, original, wait_s=self.reassign_wait_s)
            ctx.backend.retire_broker(b)  # type: ignore[attr-defined]

        return f"broker-{b}", f"broker {b} joined; {text}", undo


@attrs.define
class Decommission(Fault):
    """A broker is decommissioned while producing: a spare broker starts, every replica the
    target holds of the topic is reassigned onto the spare (waiting until in sync), then the
    target gets a clean shutdown. Heal: the target starts again, the original replicas are
    reassigned back (waiting), the spare is stopped. Needs a backend with spare brokers."""

    target: str | int = "random"
    reassign_wait_s: float = 120.0
    name = "decommission"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        add = _backend_call(ctx, "add_broker")
        reassign = _backend_call(ctx, "reassign")
        original = _original_replicas(ctx)
        t = ctx.broker(self.target)
        b = add()
        try:
            moves = {p: [b if r == t else r for r in rs] for p, rs in original.items() if t in rs}
            text = reassign(ctx.topic, moves, wait_s=self.reassign_wait_s) if moves else "no replica to move"
            ctx.backend.retire_broker(t)  # type: ignore[attr-defined]  # a backend with add_broker has it
        except BaseException:
            ctx.backend.retire_broker(b)  # type: ignore[attr-defined]
            raise

        def undo() -> None:
            add(t)
            if moves:
                reassign(ctx.topic, {p: original[p] for p in moves}, wait_s=self.reassign_wait_s)
            ctx.backend.retire_broker(b)  # type: ignore[attr-defined]

        return f"broker-{t}", f"{self.target}; replicas moved to broker {b}: {text}; broker {t} stopped", undo

    def describe(self) -> str:
        return f"decommission {self.target}"


@attrs.define
class Both(Fault):
    """Two faults at once: ``first``, then ``after`` seconds later ``second`` (e.g. a kill -9
    during a reassignment); heal undoes the second, then the first. History name
    ``<first>+<second>``. If the second cannot be applied, the first is healed and the error
    raised."""

    first: Fault = attrs.field(factory=Grow)
    second: Fault = attrs.field(factory=lambda: Kill("leader"))
    after: float = 1.0

    @property
    def name(self) -> str:  # type: ignore[override]  # a computed class-level name
        return f"{self.first.name}+{self.second.name}"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        t1, d1, undo1 = self.first.apply(ctx)
        try:
            time.sleep(self.after)
            t2, d2, undo2 = self.second.apply(ctx)
        except BaseException:
            undo1()
            raise

        def undo() -> None:
            try:
                undo2()
            finally:
                undo1()

        return f"{t1}+{t2}", f"{self.first.describe()}: {d1} || {self.second.describe()}: {d2}", undo

    def describe(self) -> str:
        return f"{self.first.describe()} + {self.second.describe()}"


@attrs.define
class DeleteTopicDuringControllerKill(Fault):
    """Controller move during topic deletion: create a scratch topic (RF 3, 3 partitions,
    through the admin API), delete it, and at once kill -9 the controller, whose deletion
    work is then in flight (KafkaController's TopicDeletionManager). Heal: the killed broker
    starts again; the new controller must finish the deletion (``/brokers/topics/<t>`` and
    ``/admin/delete_topics/<t>`` gone) within ``deletion_wait_s`` — else the heal fails and
    the run records the error. Needs ``topic_znodes`` (local backend)."""

    deletion_wait_s: float = 120.0
    name = "delete-topic+kill9"

    def apply(self, ctx: FaultContext) -> tuple[str, str, Callable[[], None]]:
        from confluent_kafka.admin import AdminClient, NewTopic

        znodes = _backend_call(ctx, "topic_znodes")
        scratch = f"{ctx.topic}-scratch-{ctx.rng.randrange(16**6):06x}"
        admin = AdminClient({"bootstrap.servers": ctx.backend.bootstrap_servers})
        admin.create_topics([NewTopic(scratch, 3, 3)], operation_timeout=30)[scratch].result(60)
        if not wait_isr_full(ctx.backend, scratch, 60.0):
            raise ChaosError(f"scratch topic {scratch} did not get full ISRs")
        c = ctx.broker("controller")
        admin.delete_topics([scratch], operation_timeout=0)  # the request only: no waiting
        deadline = time.monotonic() + 15.0
        while znodes(scratch) == (True, False) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the deletion marker is written (or the topic already gone)
        detail = ctx.backend.kill_broker(c)

        def undo() -> None:
            ctx.backend.start_broker(c)
            deadline = time.monotonic() + self.deletion_wait_s
            while True:
                state = znodes(scratch)
                if state == (False, False):
                    return
                if time.monotonic() > deadline:
                    raise ChaosError(f"deletion of {scratch} not complete after {self.deletion_wait_s:.0f}s "
                                     f"(topic znode, deletion marker: {state})")
                time.sleep(0.5)

        return f"broker-{c}", f"deleting {scratch}; controller {c} killed: {detail}", undo


def Isolate(target: str | int = "random") -> Partition:  # noqa: N802 - reads as a fault name
    """A broker cut from every other broker and from ZooKeeper (it may still think it leads;
    the workload's clients still reach it)."""
    p = Partition((target,), ("others", "zk"))
    return p


def CutFromZk(target: str | int = "random") -> Partition:  # noqa: N802
    """A broker cut from ZooKeeper only (its session expires; its broker links stay)."""
    return Partition((target,), ("zk",))


def wait_isr_full(backend: Backend, topic: str, timeout: float) -> bool:
    """Poll ZooKeeper until every partition of ``topic`` has a leader and a full ISR; returns
    False if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        states = backend.partition_states(topic)
        if states and all(s.isr_full for s in states.values()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


class Nemesis:
    """Applies faults and heals, recording the timeline into the history and printing a live
    line per fault through ``say``. Thread-safe heal; ``heal_all`` heals everything active
    (newest first) then asks the backend to undo what is left (SIGCONT, iptables)."""

    def __init__(self, ctx: FaultContext, history: Any, say: Callable[[str], None] = print) -> None:
        self.ctx = ctx
        self.history = history
        self.say = say
        self.active: list[Injection] = []
        self.injected: list[Injection] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._t0 = now()

    def _stamp(self) -> str:
        return f"[{now() - self._t0:7.1f}s]"

    def inject(self, fault: Fault) -> Injection | None:
        """Apply ``fault``; None (and a printed line) if it could not be applied."""
        t = now()
        try:
            target, detail, undo = fault.apply(self.ctx)
        except Exception as exc:
            msg = f"{fault.describe()}: not applied ({type(exc).__name__}: {exc})"
            self.errors.append(msg)
            self.say(f"{self._stamp()} {msg}")
            log.warning("fault_not_applied", fault=fault.describe(), error=str(exc))
            return None
        inj = Injection(fault.name, target, detail, t, undo)
        self.history.write(FaultStarted(t, fault.name, target, detail))
        with self._lock:
            self.active.append(inj)
            self.injected.append(inj)
        self.say(f"{self._stamp()} fault  {fault.name:<16} {target:<20} {detail}")
        return inj

    def heal(self, inj: Injection) -> None:
        """Undo one injection (once) and record FaultHealed; a failing undo is printed and
        recorded as an error (the backend's heal_all still runs at the end)."""
        with self._lock:
            if inj.healed:
                return
            inj.healed = True
            if inj in self.active:
                self.active.remove(inj)
        t0 = now()
        try:
            inj.undo()
            ok = ""
        except Exception as exc:
            ok = f" (heal failed: {type(exc).__name__}: {exc})"
            self.errors.append(f"heal {inj.name} {inj.target}: {exc}")
        self.history.write(FaultHealed(now(), inj.name, inj.target))
        self.say(f"{self._stamp()} healed {inj.name:<16} {inj.target:<20} after {now() - inj.started:.1f}s"
                 f" (heal took {now() - t0:.1f}s){ok}")

    def heal_all(self) -> None:
        """Heal every active injection, newest first, then the backend's leftovers (paused
        processes, iptables rules, processes a failed heal left down)."""
        try:
            while True:
                with self._lock:
                    if not self.active:
                        break
                    inj = self.active[-1]
                self.heal(inj)
        finally:
            self.ctx.backend.heal_all()

    def hold(self, seconds: float, stop: threading.Event | None = None) -> None:
        """Sleep ``seconds`` (returns early when ``stop`` is set)."""
        if stop is not None:
            stop.wait(max(0.0, seconds))
        else:
            time.sleep(max(0.0, seconds))


@attrs.frozen
class Step:
    """One step of a schedule: inject ``fault``, hold it ``hold`` s, heal, stay quiet
    ``quiet`` s."""

    fault: Fault
    hold: float
    quiet: float


MENUS: tuple[str, ...] = ("v1", "v2")
"""Versions of the random nemesis's menu. v1: the faults of the first campaigns
(docs/campaigns/2026-12-07-local, -compose), kept so their seeds replay; v2 (the default):
v1 plus ZooKeeper session expiry storms, and where the backend offers them full disks, clock
jumps, grow / decommission / kill-during-reassignment, a controller kill during a topic
deletion, and ZooKeeper link delay / connection drops (proxy). A new entry changes every seed's schedule, hence a new version."""
DEFAULT_MENU = "v2"

V1_KINDS: tuple[str, ...] = ("kill9", "pause", "partition", "isolate", "zk-cut", "restart", "zk-kill9",
                             "zk-quorum-loss")
"""The fault kinds of menu v1, as a campaign counts them (campaign.fault_kind)."""
NEW_KINDS: tuple[str, ...] = ("zk-expiry-storm", "disk-full", "clock-jump", "grow", "decommission", "grow+kill9",
                              "delete-topic+kill9", "net-delay", "net-drop")
"""The fault kinds menu v2 adds to v1 (``new`` in a focus list stands for all of them)."""
KINDS: tuple[str, ...] = V1_KINDS + NEW_KINDS


@attrs.frozen
class MenuSpec:
    """A parsed menu spec: ``version`` (MENUS) and ``kinds``, the fault kinds the nemesis's
    draw is restricted to (a focus; empty: the whole menu). Text form: ``v2`` or
    ``v2:disk-full,clock-jump`` (``str(spec)``, what runs record and replay)."""

    version: str
    kinds: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.version + (":" + ",".join(self.kinds) if self.kinds else "")


def parse_kinds(text: str | Sequence[str], menu: str = DEFAULT_MENU) -> tuple[str, ...]:
    """A focus list, ``"disk-full,clock-jump"`` or a sequence, ``new`` standing for NEW_KINDS:
    the kinds in KINDS order without repeats (empty for an empty text). ValueError for a kind
    that is not in ``menu`` (v1 has only V1_KINDS)."""
    words = [w.strip() for w in (text.split(",") if isinstance(text, str) else text) if w.strip()]
    known = V1_KINDS if menu == "v1" else KINDS
    wanted: set[str] = set()
    for w in words:
        if w == "new" and menu != "v1":
            wanted |= set(NEW_KINDS)
        elif w in known:
            wanted.add(w)
        else:
            raise ValueError(f"unknown fault kind {w!r} for menu {menu}; known: "
                             f"{', '.join(known)}{'' if menu == 'v1' else ', new'}")
    return tuple(k for k in KINDS if k in wanted)


def parse_menu(spec: str) -> MenuSpec:
    """``"v2"`` or ``"v2:kind,kind"`` -> MenuSpec. ValueError for an unknown version or kind."""
    version, _, kinds = spec.partition(":")
    if version not in MENUS:
        raise ValueError(f"unknown nemesis menu {version!r}; known: {', '.join(MENUS)}")
    focus = parse_kinds(kinds, version)
    if ":" in spec and not focus:
        raise ValueError(f"menu spec {spec!r} names no fault kind")
    return MenuSpec(version, focus)


Draw = Callable[[random.Random], tuple[Fault, float]]


def fault_catalog(session_timeout_s: float, with_zk: bool, menu: str = DEFAULT_MENU, with_disk: bool = False,
                  with_clock: bool = False, with_spare: bool = False, with_proxy: bool = False
                  ) -> list[tuple[float, Draw]]:
    """The random nemesis's menu ``menu`` (a MenuSpec text: ``v1``, ``v2``, or ``v2:kind,...``
    for a focus): (weight, draw(rng) -> (fault, hold seconds)). with_zk: the backend owns the
    ensemble (ZooKeeper kills); with_disk / with_clock / with_spare / with_proxy: it offers
    FullDisk / ClockJump / a spare broker for Grow, Decommission and the kill-during-reassignment
    combination / ZkLinkDelay and ZkLinkDrop (v2 only). DeleteTopicDuringControllerKill is in v2
    on every backend that can show topic znodes (with_zk). A focus keeps only the entries of
    its kinds, with their weights and in menu order (so, for one kind list, a seed still
    draws one schedule). ValueError for an unknown menu or kind, and for a focus kind this
    backend does not offer."""
    spec = parse_menu(menu)
    entries = [(w, d) for w, k, d in _catalog_entries(session_timeout_s, with_zk, spec.version, with_disk,
                                                      with_clock, with_spare, with_proxy)
               if not spec.kinds or k in spec.kinds]
    if spec.kinds:
        offered = {k for _, k, _ in _catalog_entries(session_timeout_s, with_zk, spec.version, with_disk,
                                                     with_clock, with_spare, with_proxy)}
        missing = [k for k in spec.kinds if k not in offered]
        if missing:
            raise ValueError(f"fault kind(s) {', '.join(missing)} not offered by this backend "
                             f"(offered: {', '.join(k for k in KINDS if k in offered)})")
    return entries


def _catalog_entries(session_timeout_s: float, with_zk: bool, menu: str, with_disk: bool, with_clock: bool,
                     with_spare: bool, with_proxy: bool) -> list[tuple[float, str, Draw]]:
    """fault_catalog's entries with their kinds: (weight, kind, draw), menu order."""
    s = session_timeout_s
    menu_v1: list[tuple[float, str, Draw]] = [
        (3, "kill9", lambda r: (Kill("leader"), r.uniform(2, 2 * s))),
        (2, "kill9", lambda r: (Kill("controller"), r.uniform(2, 2 * s))),
        (1, "kill9", lambda r: (Kill("random"), r.uniform(2, 2 * s))),
        (2, "pause", lambda r: (Pause(r.choice(["controller", "leader"])), r.uniform(s + 1, 2 * s + 2))),
        (1, "pause", lambda r: (Pause("random"), r.uniform(1, s / 2))),
        (2, "partition", lambda r: (Partition(("leader",), ("followers",)), r.uniform(3, 3 * s))),
        (2, "isolate", lambda r: (Isolate(r.choice(["leader", "controller", "random"])), r.uniform(s, 3 * s))),
        (1, "zk-cut", lambda r: (CutFromZk("random"), r.uniform(s, 2 * s))),
        (1, "zk-cut", lambda r: (CutFromZk("controller"), r.uniform(s, 2 * s))),
        (1, "restart", lambda r: (Restart("random"), r.uniform(1, 3))),
    ]
    if with_zk:
        menu_v1 += [
            (1, "zk-kill9", lambda r: (KillZk("leader"), r.uniform(2, 2 * s))),
            (1, "zk-kill9", lambda r: (KillZk("follower"), r.uniform(2, 2 * s))),
            (1, "zk-quorum-loss", lambda r: (ZkQuorumLoss(), r.uniform(s / 2, 2 * s))),
        ]
    if menu == "v1":
        return menu_v1
    menu_v2 = menu_v1 + [
        (2, "zk-expiry-storm",
         lambda r: (ZkExpiryStorm(r.choice(["controller", "leader", "random"])), r.uniform(2 * s, 4 * s))),
    ]
    if with_disk:
        menu_v2.append((2, "disk-full", lambda r: (FullDisk(r.choice(["leader", "follower", "controller"])),
                                                   r.uniform(3, 2 * s))))
    if with_clock:
        menu_v2.append((2, "clock-jump", lambda r: (ClockJump(r.choice(["leader", "controller", "random"]),
                                                              r.choice([-1, 1]) * round(r.uniform(30, 3600))),
                                                    r.uniform(3, 3 * s))))
    if with_spare:
        menu_v2 += [
            (1, "grow", lambda r: (Grow(), r.uniform(s, 3 * s))),
            (1, "decommission",
             lambda r: (Decommission(r.choice(["leader", "controller", "random"])), r.uniform(s, 2 * s))),
            (1, "grow+kill9",
             lambda r: (Both(Grow(), Kill(r.choice(["leader", "controller"])), after=r.uniform(0.2, 2.0)),
                        r.uniform(2, 2 * s))),
        ]
    if with_zk:
        menu_v2.append((1, "delete-topic+kill9", lambda r: (DeleteTopicDuringControllerKill(), r.uniform(2, 2 * s))))
    if with_proxy:
        menu_v2 += [
            (1, "net-delay", lambda r: (ZkLinkDelay(r.choice(["controller", "leader", "random"]),
                                                    round(r.uniform(0.1, s / 3), 2)), r.uniform(s, 3 * s))),
            (1, "net-drop", lambda r: (ZkLinkDrop(r.choice(["controller", "leader", "random"]), every_s=r.uniform(2, s),
                                                  down_s=r.uniform(0.5, 2.0)), r.uniform(s, 3 * s))),
        ]
    return menu_v2


def random_schedule(rng: random.Random, duration: float, session_timeout_s: float, with_zk: bool,
                    quiet: tuple[float, float] = (3.0, 8.0), menu: str = DEFAULT_MENU, with_disk: bool = False,
                    with_clock: bool = False, with_spare: bool = False, with_proxy: bool = False) -> list[Step]:
    """A seeded random nemesis: steps whose holds and quiet gaps add up to about ``duration``
    seconds (at least one step), drawn from ``fault_catalog(..., menu, with_disk,
    with_clock, with_spare, with_proxy)`` (``menu`` may carry a focus: ``v2:disk-full,grow``).
    Same rng seed and menu spec, same schedule; targets are resolved when each fault is
    injected. ValueError as fault_catalog."""
    entries = fault_catalog(session_timeout_s, with_zk, menu, with_disk, with_clock, with_spare, with_proxy)
    weights = [w for w, _ in entries]
    steps: list[Step] = []
    total = 0.0
    while not steps or total < duration:
        _, draw = rng.choices(entries, weights=weights)[0]
        fault, hold = draw(rng)
        q = rng.uniform(*quiet)
        steps.append(Step(fault, round(hold, 2), round(q, 2)))
        total += hold + q + 2 * session_timeout_s  # heals take about a session timeout
    return steps
