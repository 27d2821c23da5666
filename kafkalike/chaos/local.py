"""The local chaos backend: faults on a LocalCluster's processes on this machine.

``LocalBackend`` starts (or is handed) a ``kafkalike.cluster.LocalCluster`` whose broker i
runs as its own OS process on 127.0.0.<i> **with its own numeric gid** (``gid_base + i``),
and implements the fault primitives the nemesis (``kafkalike.chaos.faults``) calls:

- signals by pid: SIGKILL (crash), SIGSTOP/SIGCONT (a zombie), SIGTERM (clean shutdown);
- restarts that wait, as Kafka must, until the old ``/brokers/ids/<id>`` node of a killed
  broker has vanished (its ZooKeeper session expired) before starting it again;
- ZooKeeper node kill/restart and the ensemble's leader (only when the backend runs its own
  ensemble; the tests share the session's ensemble and skip those faults);
- network cuts with iptables on loopback. Every loopback connection leaves from 127.0.0.1,
  so source addresses cannot tell processes apart; the owner match on the broker's gid can.
  A cut of the link *src -> dst* drops the packets src's process sends to dst's listening
  address and port: ``iptables -A OUTPUT -p tcp -m owner --gid-owner <gid of src>
  -d 127.0.0.<dst> --dport <dst port> -m comment --comment kafkalike-chaos-<run> -j DROP``.
  Every TCP connection is opened by one side to the other's listener, so cutting both
  directions of a pair cuts every connection between the two, and nothing else: the
  workload's clients (another gid) still reach every broker, as Jepsen's clients did.

Rules are only ever added with a ``-d 127.0.0.x`` address, a ``--dport`` and this run's
comment; ``Iptables.remove_all`` deletes them (called by heal, by the runner's ``finally``
and by an ``atexit`` hook), and ``purge_rules(tag)`` deletes leftovers of a crashed run.

All methods are blocking (the chaos runner drives the cluster from plain threads).
"""

from __future__ import annotations

import atexit
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import attrs
import structlog
import trio

from kafkalike.cluster import process
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import ELECTION_PORT_OFFSET, QUORUM_PORT_OFFSET, ZkEnsemble, find_free_base_port

log = structlog.get_logger(__name__)

RULE_PREFIX = "kafkalike-chaos-"


class ChaosBackendError(Exception):
    """A fault primitive could not be applied (process missing, iptables failed, timeout)."""


def wait_registration_gone(view: ZkView, broker_id: int, deadline: float) -> None:
    """Block until ``/brokers/ids/<broker_id>`` is gone (a killed broker's session expired),
    polling every 0.5 s; ChaosBackendError once ``time.monotonic()`` passes ``deadline``.
    The compose backend calls it before restarting a broker container, which would refuse a
    live duplicate id; the local backend's restarts go through LocalCluster.start_broker,
    which does the same for local processes (and checks the znode's czxid and the process)."""
    while True:
        ids = view.broker_ids()
        if ids is not None and broker_id not in ids:
            return
        if time.monotonic() > deadline:
            raise ChaosBackendError(f"broker {broker_id}'s old registration did not vanish")
        time.sleep(0.5)


@attrs.frozen
class PartitionState:
    """One partition's state as the controller wrote it to ZooKeeper."""

    topic: str
    partition: int
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    replicas: tuple[int, ...]

    @property
    def isr_full(self) -> bool:
        """Every assigned replica is in the ISR and there is a leader."""
        return self.leader >= 0 and set(self.isr) == set(self.replicas)


class Iptables:
    """The iptables rules of one chaos run, all tagged with one comment.

    ``add(args)`` appends ``-A OUTPUT <args> -m comment --comment <tag> -j DROP``;
    ``remove(args)`` / ``remove_all()`` delete them. Thread-safe; ``remove_all`` is also
    registered with atexit. Raises ChaosBackendError if iptables refuses a rule.
    """

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or RULE_PREFIX + uuid.uuid4().hex[:8]
        self._rules: list[tuple[str, ...]] = []
        self._lock = threading.Lock()
        self._exe = shutil.which("iptables")
        atexit.register(self.remove_all)

    @property
    def available(self) -> bool:
        """iptables is installed (and we are allowed to run it: root)."""
        import os

        return self._exe is not None and os.geteuid() == 0

    def _rule(self, args: tuple[str, ...]) -> list[str]:
        for i, a in enumerate(args):
            if a in ("-d", "-s") and not args[i + 1].startswith("127."):
                raise ChaosBackendError(f"refusing a rule outside 127.0.0.0/8: {args}")
        return [*args, "-m", "comment", "--comment", self.tag, "-j", "DROP"]

    def add(self, *args: str) -> tuple[str, ...]:
        """Add one DROP rule to OUTPUT; returns its handle (the args)."""
        if not self.available:
            raise ChaosBackendError("iptables is not available (needs root and the iptables command)")
        rule = self._rule(args)
        with self._lock:
            r = subprocess.run([self._exe, "-w", "-A", "OUTPUT", *rule], capture_output=True, text=True)  # type: ignore[list-item]  # _exe is str | None, checked by `available` above
            if r.returncode != 0:
                raise ChaosBackendError(f"iptables -A OUTPUT {' '.join(rule)}: {r.stderr.strip()}")
            self._rules.append(args)
        log.info("iptables_rule_added", rule=" ".join(rule))
        return args

    def remove(self, handle: tuple[str, ...]) -> None:
        """Delete one rule added by ``add`` (no error if it is already gone)."""
        with self._lock:
            if handle in self._rules:
                self._rules.remove(handle)
            self._delete(handle)

    def _delete(self, args: tuple[str, ...]) -> None:
        if self._exe is None:
            return
        rule = self._rule(args)
        subprocess.run([self._exe, "-w", "-D", "OUTPUT", *rule], capture_output=True, text=True)

    def remove_all(self) -> int:
        """Delete every rule this object added, then any rule still carrying its tag; returns
        how many were deleted."""
        with self._lock:
            rules, self._rules = self._rules, []
            for args in rules:
                self._delete(args)
        return len(rules) + purge_rules(self.tag)

    @property
    def active(self) -> list[tuple[str, ...]]:
        """The rules in place now (as added)."""
        with self._lock:
            return list(self._rules)


def purge_rules(tag: str = RULE_PREFIX) -> int:
    """Delete every OUTPUT rule whose comment starts with ``tag`` (default: every chaos run's);
    returns how many. For leftovers of a run that was killed with -9."""
    exe = shutil.which("iptables")
    if exe is None:
        return 0
    r = subprocess.run([exe, "-w", "-S", "OUTPUT"], capture_output=True, text=True)
    n = 0
    for line in r.stdout.splitlines():
        if line.startswith("-A OUTPUT ") and f"--comment {tag}" in line:
            argv = line.split()[2:]
            if not all(a.startswith("127.") for i, a in enumerate(argv) if i and argv[i - 1] in ("-d", "-s")):
                continue
            subprocess.run([exe, "-w", "-D", "OUTPUT", *argv], capture_output=True, text=True)
            n += 1
    return n


class ZkView:
    """Reads Kafka's znodes (controller, partition states) through short-lived ZooKeeper
    sessions; every call returns None instead of raising when ZooKeeper does not answer
    within ``timeout`` seconds (a quorum loss is a fault we inject)."""

    def __init__(self, connect: str, timeout: float = 8.0) -> None:
        self.connect = connect
        self.timeout = timeout

    def _run(self, fn):  # type: ignore[no-untyped-def]  # fn is any coroutine function of a KafkaZkClient
        from kafkalike.coordination import ZooKeeperClient
        from kafkalike.coordination.kafka_zk_client import KafkaZkClient

        async def go():  # type: ignore[no-untyped-def]  # returns whatever fn returns
            with trio.move_on_after(self.timeout):
                async with ZooKeeperClient(self.connect, session_timeout_ms=6000,
                                           connection_timeout_ms=int(self.timeout * 1000), name="chaos-view",
                                           sync_reads=True) as zk:
                    return await fn(KafkaZkClient(zk))
            return None

        try:
            return trio.run(go)
        except Exception as exc:  # ConnectTimeout, ConnectionLoss, ...
            log.info("zk_view_failed", error=repr(exc))
            return None

    def controller_id(self) -> int | None:
        """The active controller's broker id, None if none (or ZooKeeper did not answer)."""

        async def f(kz):  # type: ignore[no-untyped-def]  # kz: KafkaZkClient, imported lazily in _run
            return await kz.get_controller_id()

        return self._run(f)

    def broker_ids(self) -> list[int] | None:
        """Registered broker ids, None if ZooKeeper did not answer."""

        async def f(kz):  # type: ignore[no-untyped-def]  # kz: KafkaZkClient, imported lazily in _run
            return await kz.get_broker_ids()

        return self._run(f)

    def partition_states(self, topic: str) -> dict[int, PartitionState] | None:
        """Every partition's state of ``topic`` (leader -1: offline), None if unknown."""

        async def f(kz):  # type: ignore[no-untyped-def]  # kz: KafkaZkClient, imported lazily in _run
            got = await kz.get_topic_assignment(topic)
            if got is None:
                return None
            assignment, _ = got
            out = {}
            for p, replicas in assignment.partitions.items():
                st = await kz.get_partition_state(topic, int(p))
                if st is None:
                    return None
                out[int(p)] = PartitionState(topic, int(p), st.leader, st.leader_epoch, tuple(st.isr),
                                             tuple(replicas.replicas))
            return out

        return self._run(f)


def stop_earlier_cluster(base_dir: str | Path) -> bool:
    """Stop, by pid, every process of a cluster an earlier run left in ``base_dir`` (its
    brokers from their pid files; its ZooKeeper nodes from their pid files or, failing those,
    their ``-Dkafkalike.zk.node`` marker), before the dir is deleted and reused. A run killed
    with SIGKILL/SIGHUP cannot stop its own processes; deleting its dir would orphan them
    (issue 22). Returns False if ``base_dir`` holds no cluster."""
    if not (Path(base_dir) / "cluster.json").exists():
        return False
    cluster = LocalCluster.load(base_dir)
    cluster.stop()
    log.info("chaos_earlier_cluster_stopped", dir=str(base_dir))
    return True


@attrs.define
class LocalBackend:
    """Chaos primitives on a LocalCluster whose broker i runs with gid ``gid_base + i``.

    Build with ``LocalBackend.create(...)`` (a fresh cluster, own ZooKeeper ensemble unless
    ``zookeeper_connect`` is given) then ``start()``; ``close()`` resumes paused processes,
    removes every iptables rule and stops every process it started.
    Broker nodes are named ``"b<i>"``, ZooKeeper nodes ``"zk<i>"``.
    """

    cluster: LocalCluster
    gid_base: int
    iptables: Iptables = attrs.Factory(Iptables)
    name: str = "local"
    _paused: set[int] = attrs.Factory(set)
    _paused_zk: set[int] = attrs.Factory(set)

    @classmethod
    def create(cls, base_dir: str | Path, brokers: int = 3, zookeeper_connect: str | None = None,
               chroot: str = "", overrides: dict[str, str] | None = None,
               gid_base: int | None = None) -> "LocalBackend":
        """A not yet started backend on a fresh cluster under ``base_dir``: brokers on
        127.0.0.1..N at a free port, and (without ``zookeeper_connect``) a 3-node ensemble on
        127.0.0.1..3 at another free port. gid_base: default random in [40000, 59000)."""
        hosts = [f"127.0.0.{i}" for i in range(1, max(brokers, 3) + 1)]
        port = find_free_base_port(hosts, low=30000, high=32000)
        zk_port = 2181
        if zookeeper_connect is None:
            while True:
                zk_port = find_free_base_port(hosts, low=20000, high=29000)
                if port not in (zk_port, zk_port + QUORUM_PORT_OFFSET, zk_port + ELECTION_PORT_OFFSET):
                    break
        cluster = LocalCluster(base_dir, brokers=brokers, base_port=port, zk_base_port=zk_port,
                               zookeeper_connect=zookeeper_connect, chroot=chroot,
                               overrides=dict(overrides or {}))
        if gid_base is None:
            gid_base = random.randrange(40000, 59000, 10)
        return cls(cluster, gid_base)

    # ---------------------------------------------------------------- lifecycle
    def gid(self, broker_id: int) -> int:
        return self.gid_base + broker_id

    def start(self, timeout: float = 90.0) -> None:
        """Start the ensemble (if ours) and every broker (each with its gid); returns once all
        are registered. Raises ClusterError (with log tails) on failure, after stopping."""
        atexit.register(self.close)
        try:
            self.cluster._save()
            ens = self.cluster.zk
            if ens is not None:
                ens.start(timeout=timeout)
            self.cluster.write_configs()
            for i in self.cluster.broker_ids:
                self._spawn(i)
            self.cluster.wait_registered(self.cluster.broker_ids, timeout=timeout)
        except BaseException:
            self.close()
            raise

    def _spawn(self, broker_id: int) -> int:
        c = self.cluster
        if c.broker_alive(broker_id):
            return c.broker_pid(broker_id)  # type: ignore[return-value]  # broker_alive() True implies a pid
        argv = [sys.executable, "-m", "kafkalike.cli.main", "broker", "start", "--config", str(c.config_path(broker_id))]
        spawned = process.spawn_detached(argv, c.log_path(broker_id), c.pid_path(broker_id), group=self.gid(broker_id))
        log.info("chaos_broker_started", broker=broker_id, pid=spawned.pid, gid=self.gid(broker_id))
        return spawned.pid

    def heal_all(self, restart_dead: bool = True) -> None:
        """Undo everything: SIGCONT paused processes, delete iptables rules and, with
        ``restart_dead``, start every ZooKeeper node and broker that is not running (a heal
        that failed earlier); errors of those restarts are logged, not raised."""
        for i in list(self._paused):
            self.resume_broker(i)
        for z in list(self._paused_zk):
            ens = self.cluster.zk
            if ens is not None:
                ens.kill_node(z, signal.SIGCONT)
            self._paused_zk.discard(z)
        self.iptables.remove_all()
        if not restart_dead:
            return
        ens = self.cluster.zk
        for z in self.zk_node_ids:
            if ens is not None and not process.is_alive(ens.pid(z)):
                try:
                    self.start_zk(z)
                except Exception as exc:
                    log.warning("heal_zk_restart_failed", node=z, error=str(exc))
        for b in self.broker_ids:
            if not self.cluster.broker_alive(b):
                try:
                    self.start_broker(b)
                except Exception as exc:
                    log.warning("heal_broker_restart_failed", broker=b, error=str(exc))

    def close(self) -> None:
        """heal_all, then stop every broker and our ensemble (by pid)."""
        try:
            self.heal_all(restart_dead=False)
        finally:
            self.cluster.stop()

    # ---------------------------------------------------------------- shape
    @property
    def broker_ids(self) -> list[int]:
        return self.cluster.broker_ids

    @property
    def bootstrap_servers(self) -> str:
        return self.cluster.bootstrap_servers

    @property
    def session_timeout_s(self) -> float:
        """zookeeper.session.timeout.ms of the brokers, in seconds."""
        return int(self.cluster.server_properties(1)["zookeeper.session.timeout.ms"]) / 1000.0

    @property
    def zk_ensemble(self) -> ZkEnsemble | None:
        return self.cluster.zk

    @property
    def zk_node_ids(self) -> list[int]:
        """Our ensemble's node ids; [] when the ensemble is not ours to break."""
        ens = self.cluster.zk
        return [] if ens is None else list(range(1, ens.nodes + 1))

    def view(self, timeout: float = 8.0) -> ZkView:
        return ZkView(self.cluster.zk_connect, timeout)

    def controller_id(self) -> int | None:
        return self.view().controller_id()

    def partition_states(self, topic: str) -> dict[int, PartitionState] | None:
        return self.view().partition_states(topic)

    def broker_alive(self, broker_id: int) -> bool:
        return self.cluster.broker_alive(broker_id)

    # ---------------------------------------------------------------- process faults
    def kill_broker(self, broker_id: int) -> str:
        """kill -9 broker ``broker_id``; returns "pid N". ChaosBackendError if not running."""
        pid = self.cluster.broker_pid(broker_id)
        if not self.cluster.kill_broker(broker_id, signal.SIGKILL):
            raise ChaosBackendError(f"broker {broker_id} is not running")
        self._paused.discard(broker_id)
        return f"pid {pid}"

    def pause_broker(self, broker_id: int) -> str:
        """SIGSTOP broker ``broker_id`` (it keeps its sockets; its ZooKeeper session expires)."""
        pid = self.cluster.broker_pid(broker_id)
        if not self.cluster.kill_broker(broker_id, signal.SIGSTOP):
            raise ChaosBackendError(f"broker {broker_id} is not running")
        self._paused.add(broker_id)
        return f"pid {pid}"

    def resume_broker(self, broker_id: int) -> None:
        """SIGCONT a paused broker."""
        pid = self.cluster.broker_pid(broker_id)
        if pid is not None:
            process.signal_pid(pid, signal.SIGCONT)
        self._paused.discard(broker_id)

    def stop_broker(self, broker_id: int, timeout: float = 60.0) -> str:
        """Clean shutdown (SIGTERM: controlled shutdown moves leadership first)."""
        pid = self.cluster.broker_pid(broker_id)
        self.resume_broker(broker_id)
        self.cluster.stop_broker(broker_id, timeout=timeout)
        return f"pid {pid}"

    def start_broker(self, broker_id: int, timeout: float = 90.0) -> None:
        """Start broker ``broker_id`` again once its old registration is gone (a kill -9 leaves
        it until the ZooKeeper session times out; the broker would refuse to start); returns
        once it is registered. ChaosBackendError on timeout or if it dies."""
        if self.cluster.broker_alive(broker_id):
            return
        deadline = time.monotonic() + timeout
        try:  # LocalCluster waits out the old registration (up to the whole timeout: after a
            # quorum loss ZooKeeper restarts every session's timer) and spots a dead process
            self.cluster.start_broker(broker_id, group=self.gid(broker_id), stale_wait_s=timeout)
            self.cluster.wait_registered([broker_id], timeout=max(10.0, deadline - time.monotonic()))
        except Exception as exc:
            raise ChaosBackendError(str(exc)) from exc

    # ---------------------------------------------------------------- ZooKeeper faults
    def zk_leader_id(self) -> int | None:
        ens = self.cluster.zk
        return None if ens is None else ens.leader_id()

    def kill_zk(self, node_id: int) -> str:
        ens = self._ens()
        pid = ens.pid(node_id)
        if not ens.kill_node(node_id, signal.SIGKILL):
            raise ChaosBackendError(f"ZooKeeper node {node_id} is not running")
        return f"pid {pid}"

    def start_zk(self, node_id: int, timeout: float = 60.0) -> None:
        ens = self._ens()
        ens.start_node(node_id)
        deadline = time.monotonic() + timeout
        while not ens.node_status(node_id).serving:
            if time.monotonic() > deadline:
                raise ChaosBackendError(f"ZooKeeper node {node_id} is not serving after {timeout:.0f}s")
            time.sleep(0.3)

    def _ens(self) -> ZkEnsemble:
        ens = self.cluster.zk
        if ens is None:
            raise ChaosBackendError("the ZooKeeper ensemble is not this backend's (shared): no ZooKeeper faults")
        return ens

    # ---------------------------------------------------------------- network faults
    def _endpoint(self, node: str) -> tuple[str, int]:
        if node.startswith("b"):
            i = int(node[1:])
            return self.cluster.broker_host(i), self.cluster.base_port
        if node.startswith("zk"):
            i = int(node[2:])
            hosts = self.cluster.zk_connect.split("/", 1)[0].split(",")
            host, port = hosts[i - 1].rsplit(":", 1)
            return host, int(port)
        raise ChaosBackendError(f"unknown node {node!r} (b<i> or zk<i>)")

    def zk_nodes(self) -> list[str]:
        """Names of the ZooKeeper nodes the brokers connect to (zk1..), shared or ours."""
        n = len(self.cluster.zk_connect.split("/", 1)[0].split(","))
        return [f"zk{i}" for i in range(1, n + 1)]

    def cut(self, src: str, dst: str) -> tuple[str, ...]:
        """Drop what broker ``src`` ("b<i>") sends to node ``dst``'s listener ("b<j>", "zk<j>");
        returns the rule's handle for ``restore``."""
        if not src.startswith("b"):
            raise ChaosBackendError(f"only brokers' links can be cut at the source, not {src!r}")
        host, port = self._endpoint(dst)
        return self.iptables.add("-p", "tcp", "-m", "owner", "--gid-owner", str(self.gid(int(src[1:]))),
                                 "-d", host, "--dport", str(port))

    def restore(self, handle: tuple[str, ...]) -> None:
        self.iptables.remove(handle)
