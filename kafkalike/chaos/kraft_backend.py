"""KRaftBackend: ``kafkalike chaos run --mode kraft`` on the local machine.

A fresh KRaftCluster (kafkalike.cluster.kraft_cluster: 3 controller processes, node ids
3001-3003 on 127.0.1.1-3, and 3 brokers on 127.0.0.1-3, each node with its own numeric gid so
iptables' ``-m owner`` can cut its traffic), and the chaos primitives of faults.Backend mapped onto
KRaft's parts. The fault library (faults.py, scenarios.py) speaks ZooKeeper-era terms; here:

==========================  ==================================================================
fault target / primitive    on a KRaft cluster
==========================  ==================================================================
broker ``i`` (leader, ...)  broker process ``i`` (kill -9, SIGSTOP, SIGTERM = controlled shutdown)
``controller``              the **quorum leader** (controller node id 300j): ``Kill("controller")``
                            is kill -9 of the quorum leader, ``Pause("controller")`` its SIGSTOP
ZooKeeper node ``zk<j>``    controller voter 300j: ``KillZk("leader")`` kills the quorum leader,
                            ``KillZk("follower")`` a voter, ``ZkQuorumLoss`` two of three voters
cut ``b<i>`` -> ``zk<j>``   broker i (or the quorum leader) cut from controller j; a controller cut
                            from another controller is cut both ways (Raft connects both ways), so
                            ``CutFromZk("controller")`` is the quorum leader cut from the other voters
``session_timeout_s``       ``broker.session.timeout.ms`` (Kafka's default 9000): a broker without
                            heartbeats for that long is fenced
==========================  ==================================================================

Partition states (leader, leader epoch, ISR, replicas) come from the brokers' Metadata answers
(each broker's metadata image): the state with the highest leader epoch among the brokers that
answer within 3 s. There is no ZooKeeper: faults that read znodes (the topic-deletion + controller
kill combination) are not applied and say so; so are disk, clock, spare-broker and ZooKeeper-proxy
faults (this backend offers none of them).
"""

from __future__ import annotations

import atexit
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import structlog

from kafkalike.chaos.local import ChaosBackendError, Iptables, PartitionState
from kafkalike.cluster import process
from kafkalike.cluster.kraft_cluster import CONTROLLER_ID_BASE, KRaftCluster
from kafkalike.cluster.local_cluster import ClusterError, _run_async
from kafkalike.cluster.zk_ensemble import find_free_base_port

log = structlog.get_logger(__name__)

__all__ = ["KRaftBackend"]


@attrs.define
class KRaftBackend:
    """Chaos primitives (faults.Backend) on a KRaftCluster whose node ``n`` runs with gid
    ``gid_base + n`` (brokers 1..N) or ``gid_base + 5 + j`` (controller 3000 + j). Build with
    ``KRaftBackend.create(...)``, then ``start()``; ``close()`` resumes paused processes, removes
    its iptables rules and stops every process it started (by pid). Module doc: the mapping."""

    cluster: KRaftCluster
    gid_base: int
    iptables: Iptables = attrs.Factory(Iptables)
    name: str = "kraft"
    _paused: set[int] = attrs.Factory(set)

    @classmethod
    def create(cls, base_dir: str | Path, brokers: int = 3, controllers: int = 3,
               overrides: dict[str, str] | None = None, gid_base: int | None = None) -> KRaftBackend:
        """A not yet started backend on a fresh KRaft cluster under ``base_dir``: brokers on
        127.0.0.1..N and controllers on 127.0.1.1..M at free ports. ``overrides``: broker
        properties (Kafka's names; ZooKeeper-only keys are dropped)."""
        hosts = [f"127.0.0.{i}" for i in range(1, brokers + 1)] + [f"127.0.1.{j}" for j in range(1, controllers + 1)]
        port = find_free_base_port(hosts, low=30000, high=31000)  # below the ephemeral range (32768+)
        controller_port = find_free_base_port(hosts, low=31000, high=32000)
        kept = {k: v for k, v in (overrides or {}).items() if not k.startswith("zookeeper.")}
        cluster = KRaftCluster(base_dir, brokers=brokers, controllers=controllers, base_port=port,
                               controller_port=controller_port, overrides=kept)
        if gid_base is None:
            gid_base = random.randrange(40000, 59000, 10)
        return cls(cluster, gid_base)

    # ---------------------------------------------------------------- lifecycle
    def gid(self, node_id: int) -> int:
        """The numeric gid node ``node_id`` runs with (iptables owner match)."""
        if node_id > CONTROLLER_ID_BASE:
            return self.gid_base + 5 + node_id - CONTROLLER_ID_BASE
        return self.gid_base + node_id

    def _spawn(self, node_id: int) -> int:
        c = self.cluster
        if c.alive(node_id):
            return c.pid(node_id)  # type: ignore[return-value]  # alive() True implies a pid
        argv = [sys.executable, "-m", "kafkalike.cli.main", "broker", "start", "--config", str(c.config_path(node_id))]
        spawned = process.spawn_detached(argv, c.log_path(node_id), c.pid_path(node_id), group=self.gid(node_id))
        log.info("chaos_node_started", node=node_id, pid=spawned.pid, gid=self.gid(node_id))
        return spawned.pid

    def start(self, timeout: float = 180.0) -> None:
        """Format every node's dirs, start the controllers then the brokers (each with its gid);
        return once every broker's Metadata lists every broker (all unfenced). ClusterError
        (with a node's log tail) on failure, after stopping what started."""
        atexit.register(self.close)
        c = self.cluster
        try:
            c._save()
            c.write_configs()
            for n in c.controller_ids + c.broker_ids:
                c.format(n)
            for n in c.controller_ids + c.broker_ids:
                self._spawn(n)
            self._wait_listed(c.broker_ids, timeout)
        except BaseException:
            self.close()
            raise

    def _wait_listed(self, broker_ids: list[int], timeout: float) -> None:
        c = self.cluster
        deadline = time.monotonic() + timeout
        pending = list(broker_ids)
        while pending:
            for n in c.controller_ids + c.broker_ids:
                if n not in self._paused and not c.alive(n) and (n in broker_ids or n > CONTROLLER_ID_BASE):
                    raise ClusterError(f"node {n} exited: {process.exit_description(c.pid(n))}\n"
                                       f"{process.tail(c.log_path(n))}")
            listed = set()
            for b in c.broker_ids:
                if c.alive(b) and b not in self._paused:
                    listed |= set(c.metadata_broker_ids(b))
                    if set(pending) <= listed:
                        break
            pending = [b for b in pending if b not in listed]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"brokers {pending} not unfenced within {timeout:.0f}s")
            time.sleep(0.5)

    def heal_all(self, restart_dead: bool = True) -> None:
        """SIGCONT paused nodes, delete this backend's iptables rules and, with ``restart_dead``,
        start every controller then broker that is not running (errors logged, not raised)."""
        for n in list(self._paused):
            self.resume_broker(n)
        self.iptables.remove_all()
        if not restart_dead:
            return
        for n in self.cluster.controller_ids + self.cluster.broker_ids:
            if not self.cluster.alive(n):
                try:
                    self.start_broker(n)
                except Exception as exc:
                    log.warning("heal_node_restart_failed", node=n, error=str(exc))

    def close(self) -> None:
        """heal_all without restarts, then stop every node (brokers by controlled shutdown first)."""
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
        """broker.session.timeout.ms in seconds (the controllers' setting; Kafka's default 9 s)."""
        return int(self.cluster.properties(self.cluster.controller_ids[0]).get("broker.session.timeout.ms",
                                                                               "9000")) / 1000.0

    @property
    def zk_node_ids(self) -> list[int]:
        """The controller voters, numbered 1..M as ZooKeeper nodes are (controller 3000 + j)."""
        return [n - CONTROLLER_ID_BASE for n in self.cluster.controller_ids]

    def zk_nodes(self) -> list[str]:
        return [f"zk{j}" for j in self.zk_node_ids]

    def zk_leader_id(self) -> int | None:
        """The quorum leader as a voter number j (None: no leader answers DescribeQuorum)."""
        q = self.cluster.quorum(timeout_s=3.0)
        return None if q is None or q.leader_id < 0 else q.leader_id - CONTROLLER_ID_BASE

    def controller_id(self) -> int | None:
        """The active controller: the quorum leader's node id (300j), a target the broker
        primitives accept."""
        j = self.zk_leader_id()
        return None if j is None else CONTROLLER_ID_BASE + j

    def partition_states(self, topic: str) -> dict[int, PartitionState] | None:
        """Each partition of ``topic`` as the brokers' metadata images show it (the highest
        leader epoch among the live brokers that answer); None if none knows the topic."""
        from kafkalike.client.errors import ClientError
        from kafkalike.client.kafka_client import KafkaClient

        async def ask(address: str) -> dict[int, PartitionState] | None:
            client = KafkaClient([address], client_id="chaos-kraft", request_timeout_ms=3000)
            try:
                await client.start()
                info = (await client.refresh_metadata([topic])).topics.get(topic)
            finally:
                await client.aclose()
            if info is None or not info.partitions:
                return None
            return {p: PartitionState(topic, p, pi.leader, pi.leader_epoch, tuple(pi.isr), tuple(pi.replicas))
                    for p, pi in info.partitions.items()}

        best: dict[int, PartitionState] = {}
        for b in self.broker_ids:
            if b in self._paused or not self.cluster.alive(b):
                continue
            try:
                got = _run_async(lambda: ask(self.cluster.broker_address(b)))
            except (ClientError, OSError, TimeoutError):
                continue
            for p, st in (got or {}).items():
                if p not in best or st.leader_epoch > best[p].leader_epoch:
                    best[p] = st
        return best or None

    def broker_alive(self, broker_id: int) -> bool:
        return self.cluster.alive(broker_id)

    # ---------------------------------------------------------------- process faults (brokers and controllers)
    def kill_broker(self, broker_id: int) -> str:
        """kill -9 node ``broker_id`` (a broker, or a controller 300j); "pid N"."""
        pid = self.cluster.pid(broker_id)
        if not self.cluster.kill_node(broker_id, signal.SIGKILL):
            raise ChaosBackendError(f"node {broker_id} is not running")
        self._paused.discard(broker_id)
        return f"pid {pid}"

    def pause_broker(self, broker_id: int) -> str:
        """SIGSTOP node ``broker_id`` (a paused broker is fenced after the session timeout; a
        paused quorum leader loses its leadership after controller.quorum.fetch.timeout.ms)."""
        pid = self.cluster.pid(broker_id)
        if not self.cluster.kill_node(broker_id, signal.SIGSTOP):
            raise ChaosBackendError(f"node {broker_id} is not running")
        self._paused.add(broker_id)
        return f"pid {pid}"

    def resume_broker(self, broker_id: int) -> None:
        pid = self.cluster.pid(broker_id)
        if pid is not None:
            process.signal_pid(pid, signal.SIGCONT)
        self._paused.discard(broker_id)

    def stop_broker(self, broker_id: int, timeout: float = 60.0) -> str:
        """SIGTERM (a broker: controlled shutdown through its heartbeats), SIGKILL after ``timeout``."""
        pid = self.cluster.pid(broker_id)
        self.resume_broker(broker_id)
        self.cluster.stop_node(broker_id, timeout=timeout)
        return f"pid {pid}"

    def start_broker(self, broker_id: int, timeout: float = 90.0) -> None:
        """Start node ``broker_id`` again. A broker: returns once it is unfenced (after a kill -9
        the controller refuses its new incarnation until the old session expired; it retries).
        A controller: once it runs and the quorum has a leader. ChaosBackendError on timeout."""
        self._spawn(broker_id)
        try:
            if broker_id > CONTROLLER_ID_BASE:
                deadline = time.monotonic() + timeout
                while self.cluster.quorum(timeout_s=3.0) is None:
                    if not self.cluster.alive(broker_id):
                        raise ClusterError(f"controller {broker_id} exited: {process.tail(self.cluster.log_path(broker_id))}")
                    if time.monotonic() > deadline:
                        raise ClusterError(f"no quorum leader {timeout:.0f}s after controller {broker_id} started")
                    time.sleep(0.5)
            else:
                self._wait_listed([broker_id], timeout)
        except ClusterError as exc:
            raise ChaosBackendError(str(exc)) from exc

    # ---------------------------------------------------------------- controller faults (as ZooKeeper faults)
    def kill_zk(self, node_id: int) -> str:
        return self.kill_broker(CONTROLLER_ID_BASE + node_id)

    def start_zk(self, node_id: int, timeout: float = 60.0) -> None:
        self.start_broker(CONTROLLER_ID_BASE + node_id, timeout=timeout)

    # ---------------------------------------------------------------- network faults
    def _node(self, name: str) -> int:
        if name.startswith("zk"):
            return CONTROLLER_ID_BASE + int(name[2:])
        if name.startswith("b"):
            return int(name[1:])
        raise ChaosBackendError(f"unknown node {name!r} (b<i> or zk<j>)")

    def _endpoint(self, node_id: int) -> tuple[str, int]:
        address = self.cluster.controller_address(node_id) if node_id > CONTROLLER_ID_BASE \
            else self.cluster.broker_address(node_id)
        host, _, port = address.rpartition(":")
        return host, int(port)

    def cut(self, src: str, dst: str) -> Any:
        """Drop what node ``src`` ("b<i>"; "b300j" is a controller) sends to node ``dst``'s
        listener ("b<i>", "zk<j>"); between two controllers both ways. The handles for
        ``restore``; a node cut from itself is a no-op."""
        a, b = self._node(src), self._node(dst)
        if a == b:
            return ()
        handles = [self._drop(a, b)]
        if a > CONTROLLER_ID_BASE and b > CONTROLLER_ID_BASE:
            handles.append(self._drop(b, a))
        return tuple(handles)

    def _drop(self, a: int, b: int) -> tuple[str, ...]:
        host, port = self._endpoint(b)
        return self.iptables.add("-p", "tcp", "-m", "owner", "--gid-owner", str(self.gid(a)), "-d", host,
                                 "--dport", str(port))

    def restore(self, handle: Any) -> None:
        for h in handle:
            self.iptables.remove(h)
