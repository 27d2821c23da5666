"""KRaftCluster: ``kafkalike cluster up --mode kraft``: a Raft quorum of controller processes plus
broker processes (``process.roles=broker``), no ZooKeeper, supervised by pid file like LocalCluster.

Layout under the base dir (default ``.kafkalike``)::

    <base>/cluster.json                      the shape ("mode": "kraft"), the cluster id
    <base>/controller-<id>/server.properties process.roles=controller; its metadata log in the same dir
    <base>/controller-<id>.log, .pid
    <base>/broker-<id>/server.properties     process.roles=broker
    <base>/broker-<id>/logs/, metadata/      log.dirs and metadata.log.dir (__cluster_metadata-0)
    <base>/broker-<id>.log, .pid

``--combined`` (``combined=True``): N nodes with ``process.roles=broker,controller`` (Kafka's
combined mode), node i (ids 1..N) a voter and a broker in one process: ``<base>/node-<i>/`` (logs/,
metadata/), ``<base>/node-<i>.log``, ``.pid``; its broker listener ``127.0.0.<i>:<base_port>``, its
CONTROLLER listener ``127.0.0.<i>:<controller_port>``.

Addresses: broker i listens on ``127.0.0.<i>:<base_port>`` (9092), as in ZooKeeper mode, so the
same client commands work in both modes; controller j (node id 3000 + j) on
``127.0.1.<j>:<controller_port>`` (9093), its own loopback address (an iptables rule can cut one).
Every node's dirs are formatted with ``kafkalike storage format -t <cluster id>`` (the cluster id is
made once, ``kafkalike storage random-uuid``'s kind, and kept in cluster.json); a formatted dir is
left as it is, so ``up`` again keeps all data.

Teaching settings written into each properties file: ``group.initial.rebalance.delay.ms=0`` and,
with fewer than 3 brokers, ``offsets.topic.replication.factor`` and
``transaction.state.log.replication.factor`` equal to the broker count (as in ZooKeeper mode);
Kafka's defaults for everything else (``broker.session.timeout.ms`` 9000,
``broker.heartbeat.interval.ms`` 2000, ``controller.quorum.*``).

``quorum()`` asks the controllers DescribeQuorum (what ``kafka-metadata-quorum.sh describe
--status/--replication`` shows): leader, epoch, high watermark, voters and observers (the brokers)
with their log end offsets and lag. All methods are synchronous; from trio use
``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs
import structlog

from kafkalike.cluster import process
from kafkalike.cluster.local_cluster import (STATE_FILE, ClusterError, ProcessStatus, Say, _quiet, _run_async,
                                             metadata_broker_ids_at, stop_in_parallel, wait_metadata_lists_all)
from kafkalike.protocol.metadata_records import random_uuid, uuid_to_base64

log = structlog.get_logger(__name__)

__all__ = ["KRaftCluster", "QuorumReplica", "QuorumStatus", "CONTROLLER_ID_BASE"]

CONTROLLER_ID_BASE = 3000
"""Controller j has node id 3000 + j (brokers keep ids 1..N, as in ZooKeeper mode)."""


@attrs.frozen
class QuorumReplica:
    """One replica of ``__cluster_metadata`` as the leader sees it: id, log end offset, lag
    (high watermark - end offset, in offsets), ms since its last fetch (-1 unknown)."""

    node_id: int
    log_end_offset: int
    lag: int
    last_fetch_ms_ago: int


@attrs.frozen
class QuorumStatus:
    """The quorum from the leader's DescribeQuorum answer."""

    leader_id: int
    epoch: int
    high_watermark: int
    voters: tuple[QuorumReplica, ...]
    observers: tuple[QuorumReplica, ...]


def _absolute(path: str | Path) -> Path:
    return Path(path).absolute()


@attrs.define
class KRaftCluster:
    """``controllers`` controller and ``brokers`` broker processes under ``base_dir`` (module doc).
    ``overrides``: extra properties for every broker (Kafka's names)."""

    base_dir: Path = attrs.field(converter=_absolute)
    brokers: int = 3
    controllers: int = 3
    base_port: int = 9092
    controller_port: int = 9093
    host_prefix: str = "127.0.0."
    controller_host_prefix: str = "127.0.1."
    overrides: dict[str, str] = attrs.Factory(dict)
    cluster_id: str = attrs.Factory(lambda: uuid_to_base64(random_uuid()))
    mode: str = "kraft"
    combined: bool = False

    # ------------------------------------------------------------------ layout
    @classmethod
    def load(cls, base_dir: str | Path) -> KRaftCluster:
        """The KRaft cluster recorded in ``base_dir/cluster.json``; ClusterError if there is none
        (or it is a ZooKeeper-mode cluster)."""
        path = Path(base_dir) / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise ClusterError(f"no kafkalike cluster in {base_dir} (no {STATE_FILE})") from None
        if state.get("mode") != "kraft":
            raise ClusterError(f"{base_dir} holds a ZooKeeper-mode cluster")
        return cls(base_dir, **state)

    @staticmethod
    def is_kraft(base_dir: str | Path) -> bool:
        """True when ``base_dir/cluster.json`` records a KRaft cluster."""
        try:
            return json.loads((Path(base_dir) / STATE_FILE).read_text()).get("mode") == "kraft"
        except (OSError, ValueError):
            return False

    def _save(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        state = attrs.asdict(self)
        state.pop("base_dir")
        (self.base_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @property
    def broker_ids(self) -> list[int]:
        return list(range(1, self.brokers + 1))

    @property
    def controller_ids(self) -> list[int]:
        """The voters: controllers 3001.., or (combined) the nodes 1..N."""
        if self.combined:
            return self.broker_ids
        return [CONTROLLER_ID_BASE + j for j in range(1, self.controllers + 1)]

    @property
    def node_ids(self) -> list[int]:
        """Every process's node id: controllers then brokers (combined: 1..N once)."""
        return self.broker_ids if self.combined else self.controller_ids + self.broker_ids

    def broker_address(self, broker_id: int) -> str:
        return f"{self.host_prefix}{broker_id}:{self.base_port}"

    def controller_address(self, controller_id: int) -> str:
        if self.combined:
            return f"{self.host_prefix}{controller_id}:{self.controller_port}"
        return f"{self.controller_host_prefix}{controller_id - CONTROLLER_ID_BASE}:{self.controller_port}"

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.broker_address(i) for i in self.broker_ids)

    @property
    def quorum_voters(self) -> str:
        """controller.quorum.voters: ``3001@127.0.1.1:9093,...``."""
        return ",".join(f"{i}@{self.controller_address(i)}" for i in self.controller_ids)

    def node_dir(self, node_id: int) -> Path:
        kind = "node" if self.combined else "controller" if node_id > CONTROLLER_ID_BASE else "broker"
        return self.base_dir / f"{kind}-{node_id}"

    def config_path(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "server.properties"

    def log_path(self, node_id: int) -> Path:
        return self.node_dir(node_id).with_suffix(".log")

    def pid_path(self, node_id: int) -> Path:
        return self.node_dir(node_id).with_suffix(".pid")

    def properties(self, node_id: int) -> dict[str, str]:
        """The server.properties of one node (Kafka's property names)."""
        d = self.node_dir(node_id)
        common = {"node.id": str(node_id), "controller.quorum.voters": self.quorum_voters,
                  "controller.listener.names": "CONTROLLER", "kafkalike.metrics.port": "-1"}
        if node_id > CONTROLLER_ID_BASE and not self.combined:
            return {"process.roles": "controller", **common,
                    "listeners": f"CONTROLLER://{self.controller_address(node_id)}", "log.dirs": str(d)}
        roles, listeners = "broker", f"PLAINTEXT://{self.broker_address(node_id)}"
        if self.combined:
            roles, listeners = "broker,controller", f"{listeners},CONTROLLER://{self.controller_address(node_id)}"
        props = {"process.roles": roles, **common, "listeners": listeners,
                 "log.dirs": str(d / "logs"), "metadata.log.dir": str(d / "metadata"),
                 "group.initial.rebalance.delay.ms": "0"}
        if self.brokers < 3:
            props["offsets.topic.replication.factor"] = str(self.brokers)
            props["transaction.state.log.replication.factor"] = str(self.brokers)
            props["transaction.state.log.min.isr"] = "1"
        props.update(self.overrides)
        return props

    def write_configs(self) -> None:
        """Write every node's server.properties."""
        for i in self.node_ids:
            self.node_dir(i).mkdir(parents=True, exist_ok=True)
            lines = ["# written by kafkalike cluster up --mode kraft; Kafka's property names"]
            lines += [f"{k}={v}" for k, v in self.properties(i).items()]
            self.config_path(i).write_text("\n".join(lines) + "\n")

    def format(self, node_id: int) -> None:
        """``kafkalike storage format -t <cluster id> -c <its properties> --ignore-formatted``
        (a formatted dir keeps its data). ClusterError with the tool's output on failure."""
        argv = [sys.executable, "-m", "kafkalike.cli.main", "storage", "format", "-t", self.cluster_id,
                "-c", str(self.config_path(node_id)), "--ignore-formatted"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise ClusterError(f"storage format of node {node_id} failed: {(done.stdout + done.stderr).strip()}")

    # ------------------------------------------------------------------ processes
    def pid(self, node_id: int) -> int | None:
        return process.read_pid(self.pid_path(node_id))

    def alive(self, node_id: int) -> bool:
        return process.is_alive(self.pid(node_id), expect_in_cmdline=str(self.config_path(node_id)))

    def start_node(self, node_id: int) -> int:
        """Start one controller or broker in the background (if not running); its pid."""
        if self.alive(node_id):
            return self.pid(node_id)  # type: ignore[return-value]  # alive() True implies a pid
        argv = [sys.executable, "-m", "kafkalike.cli.main", "broker", "start", "--config", str(self.config_path(node_id))]
        spawned = process.spawn_detached(argv, self.log_path(node_id), self.pid_path(node_id))
        log.info("kraft_node_started", node_id=node_id, pid=spawned.pid)
        return spawned.pid

    def stop_node(self, node_id: int, timeout: float = 30.0) -> bool:
        """SIGTERM (a broker: controlled shutdown), SIGKILL after ``timeout`` s."""
        if not self.alive(node_id):
            return False
        return process.stop_pid(self.pid(node_id), timeout=timeout)

    def kill_node(self, node_id: int, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` (default SIGKILL: a crash) to one node."""
        if not self.alive(node_id):
            return False
        return process.kill_pid(self.pid(node_id), sig)

    def _raise_if_exited(self, node_ids: list[int], when: str) -> None:
        for i in node_ids:
            if not self.alive(i):
                raise ClusterError(f"node {i} exited {when}: {process.exit_description(self.pid(i))}\n"
                                   f"{process.tail(self.log_path(i))}")

    def metadata_broker_ids(self, broker_id: int) -> list[int]:
        """The brokers broker ``broker_id`` lists in a Metadata answer (its image's unfenced
        brokers); [] if it does not answer."""
        return metadata_broker_ids_at(self.broker_address(broker_id))

    def start(self, timeout: float = 180.0, say: Say = _quiet) -> None:
        """Format (what is not formatted yet), start the controllers, then the brokers; return
        once every broker's Metadata answer lists them all (each was unfenced by the controller
        and knows the others). ClusterError with a node's last log lines as soon as one exits,
        or after ``timeout`` s."""
        self._save()
        self.write_configs()
        for i in self.node_ids:
            self.format(i)
        if self.combined:
            say(f"starting combined nodes {self.broker_ids} (process.roles=broker,controller)")
        else:
            for i in self.controller_ids:
                self.start_node(i)
            say(f"controllers {self.controller_ids} started; starting brokers {self.broker_ids}")
        for i in self.broker_ids:
            self.start_node(i)
        wait_metadata_lists_all(self.broker_ids, self.broker_address,
                                lambda: self._raise_if_exited(self.node_ids, "during start-up"),
                                timeout, "did not list every broker", poll_s=0.5)

    def stop(self) -> None:
        """Stop the brokers (controlled shutdown, in parallel), then the controllers (combined:
        every node in parallel)."""
        for group in ([self.broker_ids] if self.combined else [self.broker_ids, self.controller_ids]):
            stop_in_parallel([self.pid(i) for i in group if self.alive(i)])

    def status(self, quorum: QuorumStatus | None = None) -> list[ProcessStatus]:
        """Every process: controllers (detail: leader / voter and epoch) then brokers (detail:
        observer lag), from ``quorum`` when given."""
        out: list[ProcessStatus] = []
        observers = {o.node_id: o for o in quorum.observers} if quorum else {}
        if self.combined:
            for i in self.broker_ids:
                detail = f"{'leader' if i == quorum.leader_id else 'voter'} epoch={quorum.epoch}" if quorum else ""
                out.append(ProcessStatus("combined", i, self.broker_address(i), self.pid(i), self.alive(i), detail))
            return out
        for i in self.controller_ids:
            detail = ""
            if quorum is not None:
                detail = f"{'leader' if i == quorum.leader_id else 'voter'} epoch={quorum.epoch}"
            out.append(ProcessStatus("controller", i, self.controller_address(i), self.pid(i), self.alive(i), detail))
        for i in self.broker_ids:
            o = observers.get(i)
            detail = f"observer lag={o.lag}" if o is not None else ""
            out.append(ProcessStatus("broker", i, self.broker_address(i), self.pid(i), self.alive(i), detail))
        return out

    def quorum(self, timeout_s: float = 5.0) -> QuorumStatus | None:
        """DescribeQuorum v1 to each controller until one answers as leader; None if none does."""
        from kafkalike.client.connection import KafkaConnection
        from kafkalike.client.messages import build_request
        from kafkalike.protocol.api_keys import ApiKey
        from kafkalike.protocol.errors import ErrorCode

        request = build_request(ApiKey.DESCRIBE_QUORUM, 1, topics=[
            {"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}])
        now_ms = int(time.time() * 1000)

        def replica(r: object, hw: int) -> QuorumReplica:
            end, fetched = getattr(r, "log_end_offset"), getattr(r, "last_fetch_timestamp")
            return QuorumReplica(getattr(r, "replica_id"), end, max(0, hw - end) if end >= 0 else -1,
                                 max(0, now_ms - fetched) if fetched >= 0 else -1)

        async def ask(address: str) -> QuorumStatus | None:
            host, _, port = address.rpartition(":")
            try:
                async with KafkaConnection.open(host, int(port), negotiate=False,
                                                connect_timeout_ms=timeout_s * 1000) as conn:
                    response = await conn.send(request, timeout_ms=timeout_s * 1000)
            except Exception:
                return None
            if not response.topics or not response.topics[0].partitions:
                return None
            p = response.topics[0].partitions[0]
            if p.error_code != ErrorCode.none:
                return None
            hw = p.high_watermark
            return QuorumStatus(p.leader_id, p.leader_epoch, hw, tuple(replica(v, hw) for v in p.current_voters),
                                tuple(replica(o, hw) for o in p.observers))

        for i in self.controller_ids:
            if self.alive(i):
                found = _run_async(lambda: ask(self.controller_address(i)))
                if found is not None:
                    return found
        return None
