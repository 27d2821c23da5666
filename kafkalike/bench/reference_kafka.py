"""The reference Apache Kafka 3.9 cluster that kafkalike is measured and checked against.

Apache Kafka 3.9 is the last line that runs both in ZooKeeper mode (the architecture kafkalike
reproduces) and in KRaft mode (what replaced it), so the benchmark and the
compatibility tests run the real JVM broker beside kafkalike on the same machine. This module:

- ``fetch()``: Kafka 3.9.x and every dependency from Maven Central, with
  ``mvn dependency:copy-dependencies`` on ``scripts/reference/pom.xml``, into ``reference/lib``
  (ignored by git; cached: a second call is instant while the pom is unchanged).
- ``ReferenceKafka``: a local cluster of N brokers, each its own JVM
  (``java -cp 'reference/lib/*' kafka.Kafka server.properties``) on its own loopback address,
  in ``mode="zk"`` (against a ZooKeeper ensemble under the chroot ``/kafka-reference``; a
  private single ZooKeeper node from Debian's jars when none is given) or ``mode="kraft"``
  (N combined broker+controller nodes, storage formatted with ``kafka.tools.StorageTool``).
  It runs Kafka's own tools against the cluster (ProducerPerformance, ConsumerPerformance,
  TopicCommand, console producer and consumer) and parses what they print.

Addresses (chosen so they cannot clash with kafkalike's 127.0.0.x nodes): broker (node) ``i``
listens on ``127.0.1.i`` port 9092 (KRaft controller listener: same address, port 9093); the
private ZooKeeper node on ``127.0.1.100`` port 2181. Every port is a parameter, so tests pick
free ones.

The base directory (default ``reference/cluster``) holds ``cluster.json`` (the layout, so
``down``/``status`` work from another process), one directory per node (``broker-<i>/`` with
``server.properties``, ``log4j.properties``, ``data/``, ``server.log``, ``stdout.log``,
``broker.pid``; ``zookeeper/`` likewise). Processes are stopped by the pid in their pid file,
after checking that the pid's command line still names this base directory.

Everything here is synchronous (subprocess and sockets); trio code calls it through
``trio.to_thread.run_sync``. Run as ``python -m kafkalike.bench.reference_kafka`` (what
``./scripts/reference-kafka`` does) for the command line.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import attrs
import structlog

log = structlog.get_logger("kafkalike.bench.reference_kafka")

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "scripts" / "reference" / "pom.xml"
REFERENCE_DIR = ROOT / "reference"
LIB_DIR = REFERENCE_DIR / "lib"
DEFAULT_BASE_DIR = REFERENCE_DIR / "cluster"
DEBIAN_ZOOKEEPER_CP = "/usr/share/java/zookeeper.jar:/usr/share/java/*"

HOST_PREFIX = "127.0.1."
ZOOKEEPER_HOST = "127.0.1.100"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_ZOOKEEPER_PORT = 2181
DEFAULT_CHROOT = "/kafka-reference"

# Kafka's main classes in 3.9 (several moved from core's Scala to the tools module in 3.5-3.8).
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERFORMANCE = "org.apache.kafka.tools.ConsumerPerformance"
END_TO_END_LATENCY = "org.apache.kafka.tools.EndToEndLatency"
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
METADATA_QUORUM_COMMAND = "org.apache.kafka.tools.MetadataQuorumCommand"
CONSOLE_PRODUCER = "kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
ZOOKEEPER_MAIN = "org.apache.zookeeper.ZooKeeperMain"
QUORUM_PEER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

# JVM flags of Kafka's kafka-run-class.sh / kafka-server-start.sh, with a modest heap because
# the machine (2 cores, shared) also runs kafkalike and the load generators.
BROKER_JVM_FLAGS = (
    "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)

Mode = Literal["zk", "kraft"]


class ReferenceKafkaError(Exception):
    """Something about the reference cluster failed; the message says what (and, for a node
    that died, carries the last lines of its log)."""


def topic_defaults(brokers: int) -> dict[str, str]:
    """Broker properties every reference cluster gets: durability settings matching
    kafkalike's (RF 3, min ISR 2, no unclean election) and Kafka's shipped
    config/server.properties for development (group.initial.rebalance.delay.ms=0).
    Replication factors are capped at ``brokers`` so 1-broker clusters work."""
    rf = min(3, brokers)
    return {
        "num.partitions": "1",
        "default.replication.factor": str(rf),
        "min.insync.replicas": str(min(2, rf)),
        "offsets.topic.replication.factor": str(rf),
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(min(2, rf)),
        "unclean.leader.election.enable": "false",
        "auto.create.topics.enable": "true",
        "group.initial.rebalance.delay.ms": "0",
    }


# ---------------------------------------------------------------------------------- fetch


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def fetch(force: bool = False, lib_dir: Path = LIB_DIR, pom: Path = POM) -> Path:
    """Download Apache Kafka 3.9.x and its dependencies into ``lib_dir`` (default
    reference/lib) with ``mvn dependency:copy-dependencies`` on ``pom``; returns ``lib_dir``.

    Cached: a stamp file holding the pom's sha256 makes a second call return at once; a changed
    pom (e.g. a new kafka.version) or ``force`` fetches again. The copy goes to a temporary
    directory renamed into place, so an interrupted fetch never leaves a half-filled lib.
    Raises ReferenceKafkaError if mvn is missing or fails (with its last output lines).
    """
    stamp = lib_dir / ".fetched"
    digest = _pom_digest(pom)
    if not force and stamp.is_file() and stamp.read_text().strip() == digest:
        return lib_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ReferenceKafkaError("mvn not found: install Maven (apt-get install -y maven) "
                                  "or run ./scripts/reference-kafka fetch, which does")
    tmp = lib_dir.with_name(lib_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.monotonic()
    proc = subprocess.run(
        [mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
         f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise ReferenceKafkaError(f"mvn dependency:copy-dependencies failed:\n{tail}")
    if not any(tmp.glob("kafka_2.13-*.jar")):
        raise ReferenceKafkaError(f"mvn ran but {tmp} holds no kafka_2.13 jar")
    shutil.rmtree(lib_dir, ignore_errors=True)
    tmp.rename(lib_dir)
    stamp.write_text(digest + "\n")
    log.info("reference_fetched", lib_dir=str(lib_dir), jars=len(list(lib_dir.glob("*.jar"))),
             seconds=round(time.monotonic() - started, 1))
    return lib_dir


def kafka_version(lib_dir: Path = LIB_DIR) -> str:
    """The Kafka version in ``lib_dir`` (from the kafka_2.13-<version>.jar name), e.g.
    "3.9.2". Raises ReferenceKafkaError if Kafka was not fetched."""
    for jar in lib_dir.glob("kafka_2.13-*.jar"):
        return jar.name[len("kafka_2.13-"):-len(".jar")]
    raise ReferenceKafkaError(f"no Kafka jars in {lib_dir}: run ./scripts/reference-kafka fetch")


# ------------------------------------------------------------------------- tool results


@attrs.frozen
class ProducerPerfResult:
    """The summary line of Kafka's ProducerPerformance: records, records/s, MB/s (MiB/s as
    Kafka computes it: bytes / 1024 / 1024), latencies in ms (avg, max, percentiles)."""

    records: int
    records_per_sec: float
    mb_per_sec: float
    avg_latency_ms: float
    max_latency_ms: float
    p50_ms: int
    p95_ms: int
    p99_ms: int
    p999_ms: int
    output: str = attrs.field(repr=False)


_PRODUCER_PERF_RE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th"
)


def parse_producer_perf(output: str) -> ProducerPerfResult:
    """Parse ProducerPerformance's final summary line (the last one matching; the periodic
    lines lack percentiles). Raises ReferenceKafkaError when there is none."""
    matches = _PRODUCER_PERF_RE.findall(output)
    if not matches:
        raise ReferenceKafkaError(f"no ProducerPerformance summary in output:\n{output[-2000:]}")
    m = matches[-1]
    return ProducerPerfResult(
        records=int(m[0]), records_per_sec=float(m[1]), mb_per_sec=float(m[2]),
        avg_latency_ms=float(m[3]), max_latency_ms=float(m[4]), p50_ms=int(m[5]),
        p95_ms=int(m[6]), p99_ms=int(m[7]), p999_ms=int(m[8]), output=output,
    )


@attrs.frozen
class ConsumerPerfResult:
    """Kafka's ConsumerPerformance summary: MB and records consumed, MB/s and records/s over
    the whole run, the group rebalance time and the fetch-only time (ms) and rates."""

    mb: float
    mb_per_sec: float
    records: int
    records_per_sec: float
    rebalance_ms: int
    fetch_ms: int
    fetch_mb_per_sec: float
    fetch_records_per_sec: float
    output: str = attrs.field(repr=False)


def parse_consumer_perf(output: str) -> ConsumerPerfResult:
    """Parse ConsumerPerformance's header line (``start.time, end.time, data.consumed.in.MB,
    ...``) and the value line after it. Raises ReferenceKafkaError when absent."""
    lines = [ln.strip() for ln in output.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("start.time") and i + 1 < len(lines):
            keys = [k.strip() for k in line.split(",")]
            values = [v.strip() for v in lines[i + 1].split(",")]
            if len(values) != len(keys):
                break
            row = dict(zip(keys, values))
            try:
                return ConsumerPerfResult(
                    mb=float(row["data.consumed.in.MB"]), mb_per_sec=float(row["MB.sec"]),
                    records=int(row["data.consumed.in.nMsg"]),
                    records_per_sec=float(row["nMsg.sec"]),
                    rebalance_ms=int(row["rebalance.time.ms"]), fetch_ms=int(row["fetch.time.ms"]),
                    fetch_mb_per_sec=float(row["fetch.MB.sec"]),
                    fetch_records_per_sec=float(row["fetch.nMsg.sec"]), output=output,
                )
            except (KeyError, ValueError):
                break
    raise ReferenceKafkaError(f"no ConsumerPerformance summary in output:\n{output[-2000:]}")


# --------------------------------------------------------------------------- processes


@attrs.frozen
class NodeStatus:
    """One process of the reference cluster: role ("broker" or "zookeeper"), node id (the
    broker.id / node.id; 0 for ZooKeeper), address, pid (None if never started) and whether
    that pid is alive and still ours."""

    role: str
    node_id: int
    host: str
    port: int
    pid: int | None
    alive: bool


@attrs.frozen
class ClusterStatus:
    """The reference cluster at one moment: mode, Kafka version, base dir, bootstrap string
    (``host:port,...``), ZooKeeper connect string (with chroot; None in KRaft mode), nodes."""

    mode: str
    kafka_version: str
    base_dir: str
    bootstrap: str
    zookeeper_connect: str | None
    nodes: tuple[NodeStatus, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of this status."""
        return attrs.asdict(self)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def _pid_is_ours(pid: int, marker: str) -> bool:
    """Whether ``pid`` is alive, not a zombie, and its command line contains ``marker``
    (the base dir), so a recycled pid is never signalled."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        if state in (b"Z", b"X"):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    return marker in cmdline


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _four_letter(host: str, port: int, word: bytes, timeout: float = 2.0) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(word)
            chunks = []
            while True:
                data = s.recv(4096)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def find_free_port(hosts: Sequence[str], span: int = 2, start: int = 20000,
                   stop: int = 60000) -> int:
    """A port P such that P..P+span-1 are all free on every address in ``hosts`` (probed
    by binding; a JVM may still lose a race for it). For tests, which must not use 9092.
    Raises ReferenceKafkaError when none is free."""
    import random

    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(start, stop - span)
        ok = True
        for host in hosts:
            for p in range(port, port + span):
                with socket.socket() as s:
                    try:
                        s.bind((host, p))
                    except OSError:
                        ok = False
                        break
            if not ok:
                break
        if ok:
            return port
    raise ReferenceKafkaError(f"no free port range on {list(hosts)}")


def new_cluster_id() -> str:
    """A random Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22
    chars), never starting with '-' (what Kafka's Uuid.randomUuid guarantees)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _write_properties(path: Path, props: dict[str, str], header: str) -> None:
    lines = [f"# {header}"] + [f"{k}={v}" for k, v in props.items()]
    path.write_text("\n".join(lines) + "\n")


def _log4j_file(path: Path, logfile: Path, level: str = "INFO") -> None:
    """A log4j 1.2 (reload4j) config sending everything at ``level`` to ``logfile``."""
    path.write_text(
        f"log4j.rootLogger={level}, file\n"
        "log4j.appender.file=org.apache.log4j.FileAppender\n"
        f"log4j.appender.file.File={logfile}\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.org.apache.zookeeper=WARN\n"
        "log4j.logger.kafka.request.logger=WARN\n"
        "log4j.logger.state.change.logger=WARN\n"
    )


def _log4j_stderr(path: Path, level: str = "WARN") -> None:
    """A log4j 1.2 config for the command-line tools: ``level`` and above to stderr (Kafka's
    config/tools-log4j.properties)."""
    path.write_text(
        f"log4j.rootLogger={level}, stderr\n"
        "log4j.appender.stderr=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.appender.stderr.Target=System.err\n"
    )


@attrs.define
class ReferenceKafka:
    """A local Apache Kafka 3.9 cluster: ``brokers`` JVMs on 127.0.1.1..N (ZooKeeper mode or
    KRaft combined mode), laid out under ``base_dir``.

    mode: "zk" or "kraft".
    zookeeper: a ZooKeeper connect string ("h:p,h:p", optionally with its own chroot) for
      ZooKeeper mode; None starts a private single node (Debian's jars) on
      ``zookeeper_host:zookeeper_port``. ``chroot`` is appended when the string has none.
    port / controller_port: every broker's client (and, in KRaft, controller) port.
    overrides: broker properties applied after the defaults (``topic_defaults``).
    heap: the broker JVM's -Xmx/-Xms (e.g. "512m").

    Lifecycle: ``up()`` (returns when every broker answers Metadata), ``down()``; per broker
    ``stop_broker``/``kill_broker``/``start_broker`` for failover measurements;
    ``load(base_dir)`` rebuilds the object from cluster.json in another process.
    """

    mode: Mode
    base_dir: Path = attrs.field(default=DEFAULT_BASE_DIR, converter=lambda p: Path(p).resolve())
    brokers: int = 3
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    zookeeper: str | None = None
    chroot: str = DEFAULT_CHROOT
    zookeeper_host: str = ZOOKEEPER_HOST
    zookeeper_port: int = DEFAULT_ZOOKEEPER_PORT
    overrides: dict[str, str] = attrs.field(factory=dict)
    heap: str = "512m"
    lib_dir: Path = attrs.field(default=LIB_DIR, converter=lambda p: Path(p).resolve())
    # children started by this object, kept so they are reaped (no zombies) once stopped
    _children: dict[int, "subprocess.Popen[bytes]"] = attrs.field(factory=dict, init=False,
                                                                  repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("zk", "kraft"):
            raise ReferenceKafkaError(f"mode must be 'zk' or 'kraft', got {self.mode!r}")
        if not 1 <= self.brokers <= 99:
            raise ReferenceKafkaError(f"brokers must be 1..99, got {self.brokers}")

    # ------------------------------------------------------------------ layout

    @classmethod
    def load(cls, base_dir: Path | str = DEFAULT_BASE_DIR) -> "ReferenceKafka":
        """The cluster laid out in ``base_dir`` by an earlier ``up()`` (reads cluster.json).
        Raises ReferenceKafkaError if there is none."""
        path = Path(base_dir).resolve() / "cluster.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ReferenceKafkaError(f"no reference cluster in {base_dir} ({e})") from e
        data.pop("kafka_version", None)
        return cls(**data)

    def _save(self) -> None:
        data = {
            "mode": self.mode, "base_dir": str(self.base_dir), "brokers": self.brokers,
            "port": self.port, "controller_port": self.controller_port,
            "zookeeper": self.zookeeper, "chroot": self.chroot,
            "zookeeper_host": self.zookeeper_host, "zookeeper_port": self.zookeeper_port,
            "overrides": self.overrides, "heap": self.heap, "lib_dir": str(self.lib_dir),
            "kafka_version": kafka_version(self.lib_dir),
        }
        (self.base_dir / "cluster.json").write_text(json.dumps(data, indent=2) + "\n")

    @property
    def broker_ids(self) -> list[int]:
        """Broker (node) ids, 1..N."""
        return list(range(1, self.brokers + 1))

    def host(self, node_id: int) -> str:
        """Loopback address of broker ``node_id``: 127.0.1.<node_id>."""
        return f"{HOST_PREFIX}{node_id}"

    @property
    def bootstrap(self) -> str:
        """bootstrap.servers for clients: "127.0.1.1:9092,127.0.1.2:9092,..."."""
        return ",".join(f"{self.host(i)}:{self.port}" for i in self.broker_ids)

    @property
    def private_zookeeper(self) -> bool:
        """Whether this cluster runs its own ZooKeeper node (ZooKeeper mode, none given)."""
        return self.mode == "zk" and self.zookeeper is None

    @property
    def zookeeper_connect(self) -> str | None:
        """zookeeper.connect including the chroot; None in KRaft mode."""
        if self.mode != "zk":
            return None
        connect = self.zookeeper or f"{self.zookeeper_host}:{self.zookeeper_port}"
        return connect if "/" in connect else connect + self.chroot

    def node_dir(self, node_id: int) -> Path:
        """Directory of broker ``node_id`` (0: the private ZooKeeper node)."""
        return self.base_dir / ("zookeeper" if node_id == 0 else f"broker-{node_id}")

    def _pid_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / ("zookeeper.pid" if node_id == 0 else "broker.pid")

    def _log_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / ("zookeeper.log" if node_id == 0 else "server.log")

    def pid(self, node_id: int) -> int | None:
        """The live pid of broker ``node_id`` (0: private ZooKeeper), or None if not running."""
        try:
            pid = int(self._pid_file(node_id).read_text().strip())
        except (OSError, ValueError):
            return None
        child = self._children.get(node_id)
        if child is not None and child.pid == pid:  # started here: ask the kernel, no /proc race
            return pid if child.poll() is None else None
        return pid if _pid_is_ours(pid, str(self.base_dir)) else None

    def pids(self) -> dict[int, int]:
        """{broker id: pid} of the running brokers (for CPU / memory sampling)."""
        return {i: p for i in self.broker_ids if (p := self.pid(i)) is not None}

    def broker_properties(self, node_id: int) -> dict[str, str]:
        """The server.properties of broker ``node_id`` for this mode."""
        host = self.host(node_id)
        props: dict[str, str] = {}
        if self.mode == "zk":
            props["broker.id"] = str(node_id)
            props["listeners"] = f"PLAINTEXT://{host}:{self.port}"
            props["zookeeper.connect"] = self.zookeeper_connect or ""
        else:
            voters = ",".join(f"{i}@{self.host(i)}:{self.controller_port}" for i in self.broker_ids)
            props["process.roles"] = "broker,controller"
            props["node.id"] = str(node_id)
            props["controller.quorum.voters"] = voters
            props["listeners"] = (f"PLAINTEXT://{host}:{self.port},"
                                  f"CONTROLLER://{host}:{self.controller_port}")
            props["controller.listener.names"] = "CONTROLLER"
            props["inter.broker.listener.name"] = "PLAINTEXT"
            props["listener.security.protocol.map"] = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        props["advertised.listeners"] = f"PLAINTEXT://{host}:{self.port}"
        props["log.dirs"] = str(self.node_dir(node_id) / "data")
        props.update(topic_defaults(self.brokers))
        props.update(self.overrides)
        return props

    # ------------------------------------------------------------------ lifecycle

    def up(self, fresh: bool = False, timeout: float = 180.0) -> ClusterStatus:
        """Start the cluster and return once every broker is in the metadata every broker
        serves. ``fresh`` wipes the base dir first (and, against an external ZooKeeper, the
        chroot). Reuses existing data of the same mode otherwise (a restart).

        Raises ReferenceKafkaError if Kafka is not fetched, the base dir holds a cluster of
        the other mode, a node is already running, a port is taken, or a node dies or does
        not answer within ``timeout`` seconds (the cluster is stopped again then).
        """
        kafka_version(self.lib_dir)
        if self.base_dir.exists() and (self.base_dir / "cluster.json").exists():
            old = ReferenceKafka.load(self.base_dir)
            if old.running():
                raise ReferenceKafkaError(f"a reference cluster is running in {self.base_dir}: "
                                          "run `down` first")
            if old.mode != self.mode and not fresh:
                raise ReferenceKafkaError(f"{self.base_dir} holds a {old.mode}-mode cluster; "
                                          "use --fresh or another --dir")
        if fresh:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._check_ports_free()
        self._save()
        _log4j_stderr(self.base_dir / "tools-log4j.properties")
        started = time.monotonic()
        try:
            if self.private_zookeeper:
                self._start_zookeeper(timeout)
            elif self.mode == "zk" and fresh:
                self._delete_chroot()
            for i in self.broker_ids:
                self._write_broker_config(i)
            if self.mode == "kraft":
                self._format_storage()
            for i in self.broker_ids:
                self.start_broker(i, wait=False)
            self.wait_ready(timeout=max(1.0, timeout - (time.monotonic() - started)))
        except BaseException:
            self.down()
            raise
        log.info("reference_up", mode=self.mode, bootstrap=self.bootstrap,
                 seconds=round(time.monotonic() - started, 1))
        return self.status()

    def _check_ports_free(self) -> None:
        wanted = [(self.host(i), self.port) for i in self.broker_ids]
        if self.mode == "kraft":
            wanted += [(self.host(i), self.controller_port) for i in self.broker_ids]
        if self.private_zookeeper:
            wanted.append((self.zookeeper_host, self.zookeeper_port))
        for host, port in wanted:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError as e:
                    raise ReferenceKafkaError(f"{host}:{port} is not free ({e})") from e

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise ReferenceKafkaError("java not found: install a Java 17 runtime "
                                      "(apt-get install -y default-jre-headless)")
        return java

    def _classpath(self) -> str:
        return f"{self.lib_dir}/*"

    def _spawn(self, node_id: int, argv: list[str], stdout: Path) -> int:
        with open(stdout, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    cwd=self.node_dir(node_id))
        self._children[node_id] = proc
        self._pid_file(node_id).write_text(f"{proc.pid}\n")
        return proc.pid

    def _start_zookeeper(self, timeout: float) -> None:
        zdir = self.node_dir(0)
        (zdir / "data").mkdir(parents=True, exist_ok=True)
        if not Path("/usr/share/java/zookeeper.jar").exists():
            raise ReferenceKafkaError("Debian's zookeeper package is missing "
                                      "(apt-get install -y zookeeper)")
        # tickTime 2000 (ZooKeeper's default) so Kafka's default 18 s session timeout fits
        # within maxSessionTimeout = 20 * tickTime.
        cfg = zdir / "zoo.cfg"
        cfg.write_text(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\n"
            f"dataDir={zdir / 'data'}\nclientPort={self.zookeeper_port}\n"
            f"clientPortAddress={self.zookeeper_host}\n"
            "admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n"
        )
        _log4j_file(zdir / "log4j.properties", zdir / "zookeeper.log")
        argv = [self._java(), "-Xmx256m", "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{zdir / 'log4j.properties'}",
                "-Dzookeeper.jmx.log4j.disable=true",
                "-cp", DEBIAN_ZOOKEEPER_CP, QUORUM_PEER_MAIN, str(cfg)]
        pid = self._spawn(0, argv, zdir / "stdout.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "imok" in _four_letter(self.zookeeper_host, self.zookeeper_port, b"ruok"):
                log.info("reference_zookeeper_up", pid=pid,
                         connect=f"{self.zookeeper_host}:{self.zookeeper_port}")
                return
            if self.pid(0) is None:
                raise ReferenceKafkaError(f"ZooKeeper died at start:\n{_tail(zdir / 'stdout.log')}")
            time.sleep(0.2)
        raise ReferenceKafkaError(f"ZooKeeper did not answer within {timeout} s")

    def _delete_chroot(self) -> None:
        """Remove this cluster's chroot from an external ensemble (a fresh start)."""
        connect = self.zookeeper_connect or ""
        servers, _, chroot = connect.partition("/")
        if not chroot:
            raise ReferenceKafkaError("refusing to wipe an external ZooKeeper with no chroot")
        self.run_tool(ZOOKEEPER_MAIN, ["-server", servers, "deleteall", "/" + chroot],
                      timeout=60, check=False)

    def _write_broker_config(self, node_id: int) -> None:
        ndir = self.node_dir(node_id)
        (ndir / "data").mkdir(parents=True, exist_ok=True)
        _write_properties(ndir / "server.properties", self.broker_properties(node_id),
                          f"reference Apache Kafka broker {node_id}, {self.mode} mode "
                          "(written by kafkalike.bench.reference_kafka)")
        _log4j_file(ndir / "log4j.properties", ndir / "server.log")

    def _format_storage(self) -> None:
        """Format every KRaft node's log dir with Kafka's StorageTool (one cluster id for the
        cluster, kept in cluster-id); already formatted dirs are left alone."""
        cid_file = self.base_dir / "cluster-id"
        if not cid_file.exists():
            cid_file.write_text(new_cluster_id() + "\n")
        cid = cid_file.read_text().strip()
        procs = []
        for i in self.broker_ids:
            ndir = self.node_dir(i)
            if (ndir / "data" / "meta.properties").exists():
                continue
            argv = [self._java(), "-Xmx256m",
                    f"-Dlog4j.configuration=file:{self.base_dir / 'tools-log4j.properties'}",
                    "-cp", self._classpath(), STORAGE_TOOL, "format", "-t", cid,
                    "-c", str(ndir / "server.properties"), "--ignore-formatted"]
            procs.append((i, subprocess.Popen(argv, stdout=subprocess.PIPE,
                                              stderr=subprocess.STDOUT, text=True)))
        for i, proc in procs:
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise ReferenceKafkaError(f"StorageTool format failed for node {i}:\n{out}")

    def start_broker(self, node_id: int, wait: bool = True, timeout: float = 120.0) -> int:
        """Start broker ``node_id`` (its config must exist: ``up()`` wrote it); returns its pid.
        ``wait``: return only once the cluster's metadata lists every broker again.
        Raises ReferenceKafkaError if it is already running or does not come up."""
        if self.pid(node_id) is not None:
            raise ReferenceKafkaError(f"broker {node_id} is already running")
        if self.mode == "zk":
            self.wait_registration_gone(node_id, timeout=timeout)
        ndir = self.node_dir(node_id)
        argv = [self._java(), f"-Xmx{self.heap}", f"-Xms{self.heap}", *BROKER_JVM_FLAGS,
                f"-Dlog4j.configuration=file:{ndir / 'log4j.properties'}",
                f"-Dkafka.logs.dir={ndir}",
                "-cp", self._classpath(), KAFKA_MAIN, str(ndir / "server.properties")]
        pid = self._spawn(node_id, argv, ndir / "stdout.log")
        log.info("reference_broker_started", node_id=node_id, pid=pid, host=self.host(node_id))
        if wait:
            self.wait_ready(timeout=timeout)
        return pid

    def registered_brokers(self) -> set[int] | None:
        """ZooKeeper mode: ids under <chroot>/brokers/ids (ephemeral registrations, read with
        the ``dump`` four-letter word of the ensemble's leader); None when no server answers
        it (KRaft mode, or ``dump`` not whitelisted)."""
        connect = self.zookeeper_connect
        if connect is None:
            return None
        servers, _, chroot = connect.partition("/")
        prefix = f"/{chroot}/brokers/ids/" if chroot else "/brokers/ids/"
        for server in servers.split(","):
            host, _, port = server.rpartition(":")
            out = _four_letter(host, int(port), b"dump")
            if "Sessions with Ephemerals" in out:
                return {int(ln.strip()[len(prefix):]) for ln in out.splitlines()
                        if ln.strip().startswith(prefix) and ln.strip()[len(prefix):].isdigit()}
        return None

    def wait_registration_gone(self, node_id: int, timeout: float = 60.0) -> None:
        """ZooKeeper mode: block until broker ``node_id``'s ephemeral /brokers/ids node is gone
        (after a kill -9 it lives until the old session expires, zookeeper.session.timeout.ms,
        and Kafka refuses to start while it exists: NodeExistsException). Returns at once
        when the registrations cannot be read. Raises ReferenceKafkaError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            ids = self.registered_brokers()
            if ids is None or node_id not in ids:
                return
            if time.monotonic() > deadline:
                raise ReferenceKafkaError(f"broker {node_id}'s old ZooKeeper registration "
                                          f"outlived {timeout} s")
            time.sleep(0.2)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until every broker's port accepts connections and a Metadata request lists
        all brokers and a controller. Raises ReferenceKafkaError (with the log tail) if a
        broker process dies or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        pending = set(self.broker_ids)
        while pending:
            for i in sorted(pending):
                if self.pid(i) is None:
                    raise ReferenceKafkaError(
                        f"broker {i} died during start-up; last lines of its logs:\n"
                        f"{_tail(self._log_file(i))}\n{_tail(self.node_dir(i) / 'stdout.log', 10)}")
                if _port_open(self.host(i), self.port):
                    pending.discard(i)
            if time.monotonic() > deadline:
                raise ReferenceKafkaError(f"brokers {sorted(pending)} did not listen within {timeout} s")
            if pending:
                time.sleep(0.3)
        while True:
            brokers, controller = self.metadata_brokers(timeout=5.0)
            if brokers == set(self.broker_ids) and controller >= 0:
                return
            if time.monotonic() > deadline:
                raise ReferenceKafkaError(f"metadata shows brokers {sorted(brokers)} and controller "
                                          f"{controller} after {timeout} s")
            time.sleep(0.5)

    def metadata_brokers(self, timeout: float = 5.0) -> tuple[set[int], int]:
        """(broker ids, controller id) from a Metadata request through librdkafka
        (confluent-kafka); (set(), -1) when no broker answers in ``timeout`` seconds."""
        from confluent_kafka.admin import AdminClient  # load generator, only needed here

        quiet = logging.getLogger("kafkalike.bench.reference_kafka.librdkafka")
        quiet.disabled = True
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": quiet,
                             "error_cb": lambda err: None, "socket.timeout.ms": 3000})
        try:
            md = admin.list_topics(timeout=timeout)
        except Exception:  # KafkaException: no broker answered in time
            return set(), -1
        return set(md.brokers), md.controller_id

    def partition_leaders(self, topic: str, timeout: float = 10.0) -> dict[int, int]:
        """{partition: leader broker id (-1 if none)} of ``topic`` from a Metadata request.
        Raises ReferenceKafkaError if the topic is unknown or no broker answers."""
        from confluent_kafka.admin import AdminClient

        quiet = logging.getLogger("kafkalike.bench.reference_kafka.librdkafka")
        quiet.disabled = True
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": quiet,
                             "error_cb": lambda err: None})
        try:
            md = admin.list_topics(topic=topic, timeout=timeout)
        except Exception as e:
            raise ReferenceKafkaError(f"no Metadata for {topic}: {e}") from e
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            raise ReferenceKafkaError(f"topic {topic}: {t.error if t else 'unknown'}")
        return {p.id: p.leader for p in t.partitions.values()}

    def active_controller(self) -> int:
        """Id of the active controller. ZooKeeper mode: the controller id of a Metadata
        response (the /controller holder). KRaft mode: the quorum's LeaderId from Kafka's
        ``MetadataQuorumCommand describe --status`` (Metadata's controller id there is a
        random broker, KIP-590). Raises ReferenceKafkaError when none is known."""
        if self.mode == "zk":
            _, controller = self.metadata_brokers()
            if controller < 0:
                raise ReferenceKafkaError("no active controller in Metadata")
            return controller
        out = self.run_tool(METADATA_QUORUM_COMMAND,
                            ["--bootstrap-server", self.bootstrap, "describe", "--status"],
                            timeout=60).stdout
        m = re.search(r"^LeaderId:\s*(-?\d+)", out, re.MULTILINE)
        if m is None or int(m.group(1)) < 0:
            raise ReferenceKafkaError(f"no quorum leader in:\n{out}")
        return int(m.group(1))

    def stop_broker(self, node_id: int, timeout: float = 60.0) -> float:
        """SIGTERM broker ``node_id`` (Kafka's controlled shutdown) and wait for it to exit;
        SIGKILL after ``timeout`` seconds. Returns the seconds it took (0.0 if not running)."""
        return self._stop([node_id], signal.SIGTERM, timeout).get(node_id, 0.0)

    def kill_broker(self, node_id: int) -> None:
        """kill -9 broker ``node_id`` (a crash: no controlled shutdown) and wait for it to go."""
        self._stop([node_id], signal.SIGKILL, 10.0)

    def _stop(self, node_ids: Iterable[int], sig: int, timeout: float) -> dict[int, float]:
        started = time.monotonic()
        pids = {i: p for i in node_ids if (p := self.pid(i)) is not None}
        for i, p in pids.items():
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        took: dict[int, float] = {}
        remaining = dict(pids)
        while remaining:
            for i, p in list(remaining.items()):
                child = self._children.get(i)
                if child is not None and child.pid == p:
                    gone = child.poll() is not None  # also reaps it
                else:
                    gone = not _pid_is_ours(p, str(self.base_dir))
                if gone:
                    self._children.pop(i, None)
                    took[i] = time.monotonic() - started
                    del remaining[i]
                    self._pid_file(i).unlink(missing_ok=True)
            if not remaining:
                break
            if time.monotonic() - started > timeout:
                for i, p in remaining.items():
                    log.warning("reference_kill_after_timeout", node_id=i, pid=p, timeout=timeout)
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                timeout = float("inf")  # now just wait for the SIGKILLed ones
            time.sleep(0.1)
        return took

    def down(self, timeout: float = 60.0) -> None:
        """Stop every broker (SIGTERM, all at once, SIGKILL after ``timeout`` s), then the
        private ZooKeeper node. Data stays in the base dir. Safe to call when nothing runs."""
        took = self._stop(self.broker_ids, signal.SIGTERM, timeout)
        if self.private_zookeeper:
            self._stop([0], signal.SIGTERM, 15.0)
        if took:
            log.info("reference_down", mode=self.mode,
                     seconds=round(max(took.values()), 1))

    def running(self) -> bool:
        """Whether any process of this cluster is alive."""
        ids = self.broker_ids + ([0] if self.private_zookeeper else [])
        return any(self.pid(i) is not None for i in ids)

    def status(self) -> ClusterStatus:
        """Every process of the cluster with its pid and liveness."""
        nodes = []
        if self.private_zookeeper:
            p = self.pid(0)
            nodes.append(NodeStatus("zookeeper", 0, self.zookeeper_host, self.zookeeper_port,
                                    p, p is not None))
        for i in self.broker_ids:
            p = self.pid(i)
            nodes.append(NodeStatus("broker", i, self.host(i), self.port, p, p is not None))
        try:
            version = kafka_version(self.lib_dir)
        except ReferenceKafkaError:
            version = "not fetched"
        return ClusterStatus(self.mode, version, str(self.base_dir), self.bootstrap,
                             self.zookeeper_connect, tuple(nodes))

    # ------------------------------------------------------------------ Kafka's tools

    def run_tool(self, main_class: str, args: Sequence[str], *, input: str | None = None,
                 timeout: float = 600.0, check: bool = True, heap: str = "256m",
                 ) -> subprocess.CompletedProcess[str]:
        """Run one of Kafka's Java tools (any main class in reference/lib) as a client of this
        cluster; returns the finished process with text stdout/stderr (tools log WARN and
        above to stderr). Raises ReferenceKafkaError on a non-zero exit when ``check``, or
        when it runs longer than ``timeout`` seconds (the tool is killed then)."""
        tools_log4j = self.base_dir / "tools-log4j.properties"
        if not tools_log4j.exists():
            self.base_dir.mkdir(parents=True, exist_ok=True)
            _log4j_stderr(tools_log4j)
        argv = [self._java(), f"-Xmx{heap}", "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{tools_log4j}",
                "-cp", self._classpath(), main_class, *args]
        try:
            proc = subprocess.run(argv, input=input, capture_output=True, text=True,
                                  timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise ReferenceKafkaError(f"{main_class} ran longer than {timeout} s") from e
        if check and proc.returncode != 0:
            raise ReferenceKafkaError(
                f"{main_class} {' '.join(args)} exited {proc.returncode}:\n"
                f"{(proc.stdout + proc.stderr)[-3000:]}")
        return proc

    def topics(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """kafka-topics (``org.apache.kafka.tools.TopicCommand``) with ``--bootstrap-server``
        set, e.g. ``topics("--describe", "--topic", "t")``."""
        return self.run_tool(TOPIC_COMMAND, ["--bootstrap-server", self.bootstrap, *args],
                             timeout=120, check=check)

    def create_topic(self, topic: str, partitions: int = 6, replication_factor: int = 3,
                     configs: dict[str, str] | None = None) -> None:
        """Create ``topic`` with kafka-topics and wait until its metadata shows a leader for
        every partition. Raises ReferenceKafkaError if the tool fails (e.g. it exists)."""
        args = ["--create", "--topic", topic, "--partitions", str(partitions),
                "--replication-factor", str(replication_factor)]
        for k, v in (configs or {}).items():
            args += ["--config", f"{k}={v}"]
        self.topics(*args)
        self.wait_topic(topic, partitions)

    def wait_topic(self, topic: str, partitions: int, timeout: float = 60.0) -> None:
        """Block until Metadata shows ``partitions`` partitions of ``topic``, each with a
        leader. Raises ReferenceKafkaError after ``timeout`` seconds."""
        from confluent_kafka.admin import AdminClient

        quiet = logging.getLogger("kafkalike.bench.reference_kafka.librdkafka")
        quiet.disabled = True
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": quiet})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                md = admin.list_topics(topic=topic, timeout=5.0)
                t = md.topics.get(topic)
                if (t is not None and t.error is None and len(t.partitions) == partitions
                        and all(p.leader >= 0 for p in t.partitions.values())):
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise ReferenceKafkaError(f"topic {topic} has no leader for every partition after {timeout} s")

    def producer_perf(self, topic: str, num_records: int, record_size: int = 100, *,
                      throughput: int = -1, acks: str = "all",
                      props: dict[str, str] | None = None, timeout: float = 900.0,
                      ) -> ProducerPerfResult:
        """Kafka's ProducerPerformance: ``num_records`` records of ``record_size`` bytes at
        ``throughput`` records/s (-1: as fast as possible) with ``acks``; ``props`` are extra
        producer properties (linger.ms, batch.size, compression.type, ...)."""
        producer_props = {"bootstrap.servers": self.bootstrap, "acks": acks, **(props or {})}
        args = ["--topic", topic, "--num-records", str(num_records),
                "--record-size", str(record_size), "--throughput", str(throughput),
                "--producer-props", *(f"{k}={v}" for k, v in producer_props.items())]
        proc = self.run_tool(PRODUCER_PERFORMANCE, args, timeout=timeout, heap="512m")
        return parse_producer_perf(proc.stdout)

    def consumer_perf(self, topic: str, messages: int, *, group: str | None = None,
                      timeout_ms: int = 30_000, props: dict[str, str] | None = None,
                      timeout: float = 900.0) -> ConsumerPerfResult:
        """Kafka's ConsumerPerformance: read ``messages`` records of ``topic`` from the start
        in a new consumer group (``group`` or a random one); gives up after ``timeout_ms``
        without records. ``props`` go to a consumer.config file."""
        group = group or f"perf-consumer-{uuid.uuid4().hex[:8]}"
        args = ["--bootstrap-server", self.bootstrap, "--topic", topic,
                "--messages", str(messages), "--group", group, "--timeout", str(timeout_ms)]
        if props:
            cfg = self.base_dir / f"consumer-{group}.properties"
            _write_properties(cfg, props, "consumer perf properties")
            args += ["--consumer.config", str(cfg)]
        proc = self.run_tool(CONSUMER_PERFORMANCE, args, timeout=timeout, heap="512m")
        return parse_consumer_perf(proc.stdout)

    def console_produce(self, topic: str, lines: Sequence[str], *, acks: str = "all",
                        key_separator: str | None = None) -> None:
        """Write ``lines`` (one record each) with Kafka's console producer; with
        ``key_separator`` each line is ``key<sep>value``."""
        args = ["--bootstrap-server", self.bootstrap, "--topic", topic,
                "--producer-property", f"acks={acks}"]
        if key_separator is not None:
            args += ["--property", "parse.key=true", "--property", f"key.separator={key_separator}"]
        self.run_tool(CONSOLE_PRODUCER, args, input="".join(f"{ln}\n" for ln in lines), timeout=120)

    def console_consume(self, topic: str, max_messages: int, *, timeout_ms: int = 20_000,
                        print_key: bool = False, group: str | None = None) -> list[str]:
        """Read up to ``max_messages`` records of ``topic`` from the beginning with Kafka's
        console consumer (stops after ``timeout_ms`` without records); returns one string per
        record (``key<TAB>value`` with ``print_key``)."""
        args = ["--bootstrap-server", self.bootstrap, "--topic", topic, "--from-beginning",
                "--max-messages", str(max_messages), "--timeout-ms", str(timeout_ms)]
        if print_key:
            args += ["--property", "print.key=true"]
        if group:
            args += ["--group", group]
        proc = self.run_tool(CONSOLE_CONSUMER, args, timeout=timeout_ms / 1000 + 120, check=False)
        if proc.returncode != 0 and "TimeoutException" not in proc.stderr:
            raise ReferenceKafkaError(f"console consumer exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return proc.stdout.splitlines()


# ------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The ``reference-kafka`` command line: fetch, up, down, status, tool."""
    p = argparse.ArgumentParser(
        prog="reference-kafka",
        description="Apache Kafka 3.9 (ZooKeeper or KRaft mode) beside kafkalike, for "
                    "benchmarks and compatibility tests. Brokers listen on 127.0.1.<id>.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    f = sub.add_parser("fetch", help="download Kafka 3.9.x and its dependencies (cached)")
    f.add_argument("--force", action="store_true", help="download again even if cached")

    def dir_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--dir", type=Path, default=DEFAULT_BASE_DIR,
                        help=f"base directory (default {DEFAULT_BASE_DIR.relative_to(ROOT)})")

    u = sub.add_parser("up", help="start a cluster; returns when every broker answers")
    u.add_argument("--mode", choices=["zk", "kraft"], required=True)
    u.add_argument("--brokers", type=int, default=3)
    dir_arg(u)
    u.add_argument("--zookeeper", metavar="CONNECT",
                   help="ZooKeeper ensemble (host:port,...) for zk mode; default: a private node")
    u.add_argument("--chroot", default=DEFAULT_CHROOT, help="chroot under the ensemble")
    u.add_argument("--port", type=int, default=DEFAULT_PORT)
    u.add_argument("--controller-port", type=int, default=DEFAULT_CONTROLLER_PORT)
    u.add_argument("--zookeeper-port", type=int, default=DEFAULT_ZOOKEEPER_PORT)
    u.add_argument("--heap", default="512m")
    u.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="broker property (repeatable)")
    u.add_argument("--fresh", action="store_true", help="wipe earlier data first")
    u.add_argument("--timeout", type=float, default=180.0)

    d = sub.add_parser("down", help="stop every process of the cluster (by pid)")
    dir_arg(d)
    s = sub.add_parser("status", help="list the cluster's processes")
    dir_arg(s)
    s.add_argument("--json", action="store_true")
    t = sub.add_parser("tool", help="run a Kafka main class against the cluster, e.g. "
                                    "tool org.apache.kafka.tools.TopicCommand --list")
    dir_arg(t)
    t.add_argument("main_class")
    t.add_argument("args", nargs=argparse.REMAINDER,
                   help="arguments; the literal {bootstrap} is replaced by the bootstrap string")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``reference-kafka`` command line; returns the exit code."""
    from kafkalike.logs import configure

    configure()
    args = build_parser().parse_args(argv)
    try:
        if args.command == "fetch":
            lib = fetch(force=args.force)
            print(f"Apache Kafka {kafka_version(lib)}: {len(list(lib.glob('*.jar')))} jars in {lib}")
        elif args.command == "up":
            overrides = {}
            for kv in args.override:
                key, sep, value = kv.partition("=")
                if not sep:
                    raise ReferenceKafkaError(f"--override wants KEY=VALUE, got {kv!r}")
                overrides[key] = value
            fetch()
            rk = ReferenceKafka(mode=args.mode, base_dir=args.dir, brokers=args.brokers,
                                port=args.port, controller_port=args.controller_port,
                                zookeeper=args.zookeeper, chroot=args.chroot,
                                zookeeper_port=args.zookeeper_port, overrides=overrides,
                                heap=args.heap)
            started = time.monotonic()
            st = rk.up(fresh=args.fresh, timeout=args.timeout)
            print(f"Apache Kafka {st.kafka_version} ({st.mode} mode) up in "
                  f"{time.monotonic() - started:.1f} s")
            print(f"bootstrap.servers={st.bootstrap}")
        elif args.command == "down":
            ReferenceKafka.load(args.dir).down()
        elif args.command == "status":
            st = ReferenceKafka.load(args.dir).status()
            if args.json:
                print(json.dumps(st.to_json(), indent=2))
            else:
                print(f"Apache Kafka {st.kafka_version}, {st.mode} mode, {st.base_dir}")
                print(f"bootstrap.servers={st.bootstrap}")
                if st.zookeeper_connect:
                    print(f"zookeeper.connect={st.zookeeper_connect}")
                for n in st.nodes:
                    print(f"{n.role:9} {n.node_id:3} {n.host}:{n.port:<6} pid={n.pid or '-':<8} "
                          f"{'alive' if n.alive else 'stopped'}")
            return 0 if all(n.alive for n in st.nodes) else 3
        elif args.command == "tool":
            rk = ReferenceKafka.load(args.dir)
            tool_args = [a.replace("{bootstrap}", rk.bootstrap) for a in args.args]
            stdin = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
            proc = rk.run_tool(args.main_class, tool_args, input=stdin, check=False)
            sys.stdout.write(proc.stdout)
            sys.stderr.write(proc.stderr)
            return proc.returncode
    except ReferenceKafkaError as e:
        print(f"reference-kafka: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
