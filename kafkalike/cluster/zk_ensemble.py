"""A local ZooKeeper ensemble of real JVM processes (Debian's zookeeper 3.8 jars).

``ZkEnsemble(base_dir, nodes, base_port, host_prefix)`` lays out, starts, inspects and stops
1, 3 or 5 ZooKeeper nodes, each its own OS process, used by ``kafkalike zk ...``,
``kafkalike cluster ...`` and the test fixtures. Layout under the base dir (docs/zookeeper.md,
zk/README.md)::

    <base>/zk-ensemble.json          the ensemble's shape (nodes, ports, addresses)
    <base>/zk-<id>.log, zk-<id>.pid  each node's stdout/stderr and pid
    <base>/zk-<id>/zoo.cfg           the node's config, from zk/zoo.cfg.template
    <base>/zk-<id>/data/myid         the node's data dir (snapshots, txn logs)

Address scheme: with ``host_prefix`` ending in "." (default "127.0.0.") node i listens on its
own loopback address ``<prefix><first_host + i - 1>`` (127.0.0.1, .2, .3) with the same ports
on each: client ``base_port`` (2181), quorum ``base_port + 707`` (2888), leader election
``base_port + 1707`` (3888) — ZooKeeper's well-known ports. A node bound to 127.0.0.2 is
reachable only there, so an iptables rule can cut exactly one link. With a full address as
``host_prefix`` (e.g. "127.0.0.1") every node shares it and ports are offset by i - 1.

The JVM is started directly (no zkServer.sh, which assumes /etc/zookeeper):
``java -cp <zk/ conf>:zookeeper.jar:slf4j-log4j12.jar:log4j-1.2.jar QuorumPeerMain zoo.cfg``;
zookeeper.jar's manifest names the rest of its class path. (``/usr/share/java/*`` also works
but lets slf4j pick its no-op binding, which silences the node's log.)

Health comes from the ``srvr`` four-letter word: ``Mode: leader|follower|standalone``.
All methods are synchronous (they block); from trio call them via ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import string
import time
from pathlib import Path

import attrs
import structlog

from kafkalike.cluster import process

log = structlog.get_logger(__name__)

ZK_DIR = Path(__file__).resolve().parents[2] / "zk"
JAVA_DIR = Path("/usr/share/java")
QUORUM_PORT_OFFSET = 707  # 2181 -> 2888
ELECTION_PORT_OFFSET = 1707  # 2181 -> 3888
STATE_FILE = "zk-ensemble.json"
SERVING_MODES = ("leader", "follower", "standalone", "observer")
_rng = random.Random()  # own generator: never disturbs (or depends on) the global random state


class ZkEnsembleError(Exception):
    """The ensemble could not be laid out, started, or did not form a quorum in time.

    The message says what failed and, when a node died, ends with its log's last lines.
    """


@attrs.frozen
class ZkNodeSpec:
    """One node's identity, addresses and files.

    ``node_id`` is its myid (1-based); ports are TCP ports on ``host``.
    """

    node_id: int
    host: str
    client_port: int
    quorum_port: int
    election_port: int
    node_dir: Path
    log_path: Path
    pid_path: Path

    @property
    def cfg_path(self) -> Path:
        """The node's zoo.cfg."""
        return self.node_dir / "zoo.cfg"

    @property
    def data_dir(self) -> Path:
        """The node's dataDir (holds myid, snapshots and transaction logs)."""
        return self.node_dir / "data"

    @property
    def address(self) -> str:
        """``host:client_port``, one entry of a connect string."""
        return f"{self.host}:{self.client_port}"


@attrs.frozen
class ZkNodeStatus:
    """What ``srvr`` and the pid file say about one node right now.

    ``mode`` is leader / follower / standalone / observer, or None when the node does not
    answer or is not serving (no quorum); ``error`` then says why. ``zxid`` is the hex zxid
    the node reports.
    """

    node_id: int
    address: str
    pid: int | None
    alive: bool
    mode: str | None
    zxid: str | None = None
    node_count: int | None = None
    error: str | None = None

    @property
    def serving(self) -> bool:
        """True if the node answers client requests (is part of a quorum or standalone)."""
        return self.mode in SERVING_MODES


def four_letter_word(host: str, port: int, word: str = "srvr", timeout: float = 2.0) -> str:
    """Send a ZooKeeper four-letter word (``srvr``, ``ruok``, ``mntr``, ``stat``) and return
    the whole reply as text. Raises OSError (e.g. ConnectionRefusedError) if nobody answers.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def parse_srvr(text: str) -> dict[str, str]:
    """``srvr`` reply lines ``Key: value`` as a dict (keys as ZooKeeper writes them, e.g.
    "Mode", "Zxid", "Node count"). A non-serving node's one-line reply gives {}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def port_is_free(host: str, port: int) -> bool:
    """True if a TCP listener could bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def find_free_base_port(
    hosts: list[str], per_host_ports: int = 1, low: int = 20000, high: int = 30000, tries: int = 200
) -> int:
    """A base port N such that N, N+707, N+1707 (plus offsets up to ``per_host_ports`` - 1
    when nodes share one address) are free on every host in ``hosts``.

    Chosen at random in [low, high) — below Linux's ephemeral range (32768+) so outgoing
    connections do not take them. Raises ZkEnsembleError if none found in ``tries`` attempts.
    """
    for _ in range(tries):
        base = _rng.randrange(low, high)
        ports = [
            base + off + i
            for off in (0, QUORUM_PORT_OFFSET, ELECTION_PORT_OFFSET)
            for i in range(per_host_ports)
        ]
        if all(port_is_free(h, p) for h in hosts for p in ports):
            return base
    raise ZkEnsembleError(f"no free base port found for hosts {hosts}")


@attrs.define
class ZkEnsemble:
    """A local ZooKeeper ensemble of ``nodes`` (1, 3 or 5) real processes under ``base_dir``.

    base_port: node client port (2181 default); quorum and election ports are +707, +1707.
    host_prefix: "127.0.0." gives each node its own address (<prefix><first_host + i - 1>);
        a full address puts every node on it with ports offset by node index.
    heap_mb: JVM max heap per node (MiB). java: the java executable.
    gid_base: when set (root only), node i runs with numeric gid ``gid_base + i``, so iptables
        ``-m owner --gid-owner`` can match one node's packets (loopback connections all leave
        from 127.0.0.1; see docs/zookeeper.md "Cutting one ZooKeeper link").
    die_with_parent: nodes get SIGKILL if this Python process dies (test fixtures: no JVM
        outlives a killed pytest); not for ``kafkalike zk up``.
    sasl_users: when set ({user: password}), every node accepts SASL DIGEST-MD5 logins of these
        users: zoo.cfg gets ``authProvider.1=org.apache.zookeeper.server.auth.
        SASLAuthenticationProvider`` and the JVM ``-Djava.security.auth.login.config=<base>/
        zk-jaas.conf``, whose ``Server`` section is a DigestLoginModule with ``user_<name>=
        "<password>"`` (ZooKeeper's SASL guide; what Kafka's docs tell a ZooKeeper admin to
        write). Anonymous clients still connect (Kafka does not set requireClientAuthScheme):
        what they may touch is decided by each znode's ACL.
    Usable from sync code and tests; from trio wrap calls in ``trio.to_thread.run_sync``.
    """

    base_dir: Path = attrs.field(converter=lambda p: Path(p).absolute())
    nodes: int = 3
    base_port: int = 2181
    host_prefix: str = "127.0.0."
    first_host: int = 1
    heap_mb: int = 256
    gid_base: int | None = None
    die_with_parent: bool = False
    sasl_users: dict[str, str] | None = None
    java: str = "java"
    java_dir: Path = attrs.field(default=JAVA_DIR, converter=Path)
    zk_dir: Path = attrs.field(default=ZK_DIR, converter=Path)

    def __attrs_post_init__(self) -> None:
        if self.nodes < 1:
            raise ZkEnsembleError(f"nodes must be >= 1, got {self.nodes}")
        if not (1 <= self.base_port and self.base_port + ELECTION_PORT_OFFSET + self.nodes < 65536):
            raise ZkEnsembleError(f"base port {self.base_port} out of range")

    # ---- layout -------------------------------------------------------------------------

    @classmethod
    def load(cls, base_dir: str | os.PathLike[str], **overrides: object) -> "ZkEnsemble":
        """The ensemble recorded in ``base_dir/zk-ensemble.json`` by a previous ``start()``.

        Raises ZkEnsembleError if the base dir holds no ensemble.
        """
        path = Path(base_dir) / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise ZkEnsembleError(f"no ZooKeeper ensemble in {base_dir} (no {STATE_FILE})") from None
        except ValueError as exc:
            raise ZkEnsembleError(f"{path} is not valid JSON: {exc}") from None
        kwargs = {k: state[k] for k in ("nodes", "base_port", "host_prefix", "first_host", "gid_base", "sasl_users")
                  if k in state}
        kwargs.update(overrides)
        return cls(base_dir, **kwargs)

    @property
    def specs(self) -> list[ZkNodeSpec]:
        """Every node's spec, node ids 1..nodes."""
        return [self.spec(i) for i in range(1, self.nodes + 1)]

    def spec(self, node_id: int) -> ZkNodeSpec:
        """The spec of node ``node_id`` (1-based). Raises ZkEnsembleError if out of range."""
        if not 1 <= node_id <= self.nodes:
            raise ZkEnsembleError(f"no ZooKeeper node {node_id} (ensemble has {self.nodes})")
        if self.host_prefix.endswith("."):
            host, shift = f"{self.host_prefix}{self.first_host + node_id - 1}", 0
        else:
            host, shift = self.host_prefix, node_id - 1
        return ZkNodeSpec(
            node_id=node_id,
            host=host,
            client_port=self.base_port + shift,
            quorum_port=self.base_port + QUORUM_PORT_OFFSET + shift,
            election_port=self.base_port + ELECTION_PORT_OFFSET + shift,
            node_dir=self.base_dir / f"zk-{node_id}",
            log_path=self.base_dir / f"zk-{node_id}.log",
            pid_path=self.base_dir / f"zk-{node_id}.pid",
        )

    @property
    def connect_string(self) -> str:
        """``host:port,host:port,...`` of every node (what zookeeper.connect takes)."""
        return ",".join(s.address for s in self.specs)

    def connect_string_with_chroot(self, chroot: str) -> str:
        """The connect string with a chroot suffix, e.g. ``...:2181/kafka``."""
        chroot = "/" + chroot.strip("/") if chroot.strip("/") else ""
        return self.connect_string + chroot

    def _classpath(self) -> str:
        return ":".join(
            [
                str(self.zk_dir),  # log4j.properties
                str(self.java_dir / "zookeeper.jar"),
                str(self.java_dir / "slf4j-log4j12.jar"),
                str(self.java_dir / "log4j-1.2.jar"),
            ]
        )

    @property
    def jaas_path(self) -> Path:
        """The nodes' JAAS file (written by ``write_configs`` when ``sasl_users`` is set)."""
        return self.base_dir / "zk-jaas.conf"

    def _jaas_text(self) -> str:
        def q(v: str) -> str:
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

        users = "".join(f"\n    user_{name}={q(pw)}" for name, pw in sorted((self.sasl_users or {}).items()))
        return (f"// written by kafkalike (ZkEnsemble.sasl_users): SASL DIGEST-MD5 users of ZooKeeper\n"
                f"Server {{\n    org.apache.zookeeper.server.auth.DigestLoginModule required{users};\n}};\n")

    def node_marker(self, node_id: int) -> str:
        """The JVM argument ``-Dkafkalike.zk.node=<node dir>`` that names node ``node_id``'s
        process (unique per node and base dir)."""
        return f"-Dkafkalike.zk.node={self.spec(node_id).node_dir}"

    def command(self, node_id: int) -> list[str]:
        """The argv that runs node ``node_id``'s JVM."""
        spec = self.spec(node_id)
        java = shutil.which(self.java) or self.java
        return [
            java,
            f"-Xmx{self.heap_mb}m",
            "-Xms32m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:-UsePerfData",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.jmx.log4j.disable=true",
            f"-Dlog4j.configuration=file:{self.zk_dir / 'log4j.properties'}",
            self.node_marker(node_id),  # marks the process for is_alive() and stray_pids()
            *([f"-Djava.security.auth.login.config={self.jaas_path}"] if self.sasl_users else []),
            "-cp",
            self._classpath(),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(spec.cfg_path),
        ]

    def check_prerequisites(self) -> None:
        """Raise ZkEnsembleError with an install hint if Java or the zookeeper jars are missing."""
        if shutil.which(self.java) is None:
            raise ZkEnsembleError(
                f"Java not found ({self.java!r} is not on PATH): install a Java runtime, "
                "e.g. `apt-get install default-jre-headless` (./scripts/test does this)"
            )
        jar = self.java_dir / "zookeeper.jar"
        if not jar.is_file():
            raise ZkEnsembleError(
                f"ZooKeeper jars not found ({jar} is missing): install Debian's package, "
                "`apt-get install zookeeper` (./scripts/test does this)"
            )
        template = self.zk_dir / "zoo.cfg.template"
        if not template.is_file():
            raise ZkEnsembleError(f"ZooKeeper config template {template} is missing")

    def _check_state_file(self) -> None:
        path = self.base_dir / STATE_FILE
        if not path.exists():
            return
        try:
            old = json.loads(path.read_text())
        except ValueError:
            return
        mine = {k: v for k, v in self._state().items() if k not in ("gid_base", "sasl_users")}  # the shape only
        if {k: old.get(k) for k in mine} != mine:
            raise ZkEnsembleError(
                f"{self.base_dir} already holds a different ZooKeeper ensemble {old} "
                f"(wanted {mine}); stop it and remove the directory, or use another --dir"
            )

    def _state(self) -> dict[str, object]:
        return {
            "nodes": self.nodes,
            "base_port": self.base_port,
            "host_prefix": self.host_prefix,
            "first_host": self.first_host,
            "gid_base": self.gid_base,
            **({"sasl_users": self.sasl_users} if self.sasl_users else {}),
        }

    def write_configs(self) -> None:
        """Create the base dir, each node's dir, data dir, myid and zoo.cfg, and the state file.

        Existing data dirs are kept (a restart reuses the ensemble's data).
        """
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._check_state_file()
        template = string.Template((self.zk_dir / "zoo.cfg.template").read_text())
        if self.nodes == 1:
            servers = "# one node: standalone mode (no server.N lines)"
        else:
            servers = "\n".join(
                f"server.{s.node_id}={s.host}:{s.quorum_port}:{s.election_port}" for s in self.specs
            )
        sasl = ""
        if self.sasl_users:
            self.jaas_path.write_text(self._jaas_text())
            self.jaas_path.chmod(0o600)
            sasl = "\n# SASL (ZkEnsemble.sasl_users): users in zk-jaas.conf\n" \
                   "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n"
        for s in self.specs:
            s.data_dir.mkdir(parents=True, exist_ok=True)
            (s.data_dir / "myid").write_text(f"{s.node_id}\n")
            s.cfg_path.write_text(
                template.substitute(
                    node_id=s.node_id,
                    node_count=self.nodes,
                    data_dir=s.data_dir,
                    client_port=s.client_port,
                    host=s.host,
                    servers=servers,
                )
                + sasl
            )
        (self.base_dir / STATE_FILE).write_text(json.dumps(self._state(), indent=2) + "\n")

    # ---- processes ----------------------------------------------------------------------

    def node_gid(self, node_id: int) -> int | None:
        """The numeric gid node ``node_id`` runs with (None: the launcher's own)."""
        self.spec(node_id)
        return None if self.gid_base is None else self.gid_base + node_id

    def pid(self, node_id: int) -> int | None:
        """The pid of node ``node_id`` if it is running, else None."""
        spec = self.spec(node_id)
        pid = process.read_pid(spec.pid_path)
        if pid is not None and process.is_alive(pid, expect_in_cmdline=str(spec.node_dir)):
            return pid
        return None

    def stray_pids(self, node_id: int) -> list[int]:
        """Pids of running JVMs of node ``node_id`` (found by ``node_marker`` in /proc) other
        than the one its pid file names: a node whose pid file was lost or overwritten
        (e.g. by a second start of the same node) would otherwise outlive ``stop()``."""
        known = self.pid(node_id)
        return [p for p in process.pids_with_arg(self.node_marker(node_id)) if p != known]

    def start_node(self, node_id: int) -> int:
        """Start node ``node_id`` if it is not running (configs must exist); returns its pid.
        A JVM of this node that its pid file does not name (``stray_pids``) is stopped first.

        Does not wait for it to serve. Raises ZkEnsembleError if the JVM cannot be started.
        """
        running = self.pid(node_id)
        if running is not None:
            return running
        spec = self.spec(node_id)
        for pid in self.stray_pids(node_id):  # runs without a (valid) pid file, maybe with
            # another config: replace it rather than start a twin that the pid file would name
            log.warning("zk_node_stray_stopped", node_id=node_id, pid=pid)
            process.stop_pid(pid)
        if not spec.cfg_path.exists():
            self.write_configs()
        with open(spec.log_path, "ab") as f:
            f.write(f"---- kafkalike: starting ZooKeeper node {node_id} at {time.ctime()}\n".encode())
        try:
            spawned = process.spawn_detached(
                self.command(node_id), spec.log_path, spec.pid_path, cwd=spec.node_dir,
                group=None if self.gid_base is None else self.gid_base + node_id,
                die_with_parent=self.die_with_parent,
            )
        except process.ProcessError as exc:
            raise ZkEnsembleError(str(exc)) from exc
        log.info("zk_node_started", node_id=node_id, address=spec.address, pid=spawned.pid)
        return spawned.pid

    def start(self, timeout: float = 60.0) -> None:
        """Lay out the ensemble and start every node not already running; return once every
        node answers ``srvr`` with a serving mode (leader/follower, or standalone for 1 node).

        Raises ZkEnsembleError if Java/the jars are missing, a node dies (message ends with its
        log's last lines) or the quorum is not formed within ``timeout`` s. On failure the
        nodes this call started are stopped again.
        """
        self.check_prerequisites()
        self.write_configs()
        started: list[int] = []
        try:
            for s in self.specs:
                if self.pid(s.node_id) is None:
                    self.start_node(s.node_id)
                    started.append(s.node_id)
            self.wait_until_serving(timeout=timeout, all_nodes=True)
        except BaseException:
            for node_id in started:
                self.stop_node(node_id)
            raise
        log.info("zk_ensemble_up", nodes=self.nodes, connect=self.connect_string)

    def wait_until_serving(self, timeout: float = 60.0, all_nodes: bool = False) -> list[ZkNodeStatus]:
        """Block until a majority (or, with ``all_nodes``, every node) is serving.

        Raises ZkEnsembleError if a node that should be up has died (with its log's last lines)
        or on timeout (with each node's status). Returns the final statuses.
        """
        deadline = time.monotonic() + timeout
        need = self.nodes if all_nodes else self.nodes // 2 + 1
        while True:
            statuses = self.status()
            if all_nodes:
                for st in statuses:
                    if not st.alive:
                        spec = self.spec(st.node_id)
                        raise ZkEnsembleError(
                            f"ZooKeeper node {st.node_id} ({st.address}) died during start-up; "
                            f"last lines of {spec.log_path}:\n{process.tail(spec.log_path, 25)}"
                        )
            serving = [st for st in statuses if st.serving]
            if len(serving) >= need:
                return statuses
            if time.monotonic() >= deadline:
                detail = "; ".join(
                    f"node {st.node_id} {st.address} pid={st.pid} mode={st.mode} ({st.error})" for st in statuses
                )
                raise ZkEnsembleError(f"ZooKeeper quorum not formed within {timeout:.0f}s: {detail}")
            time.sleep(0.1)

    def node_status(self, node_id: int) -> ZkNodeStatus:
        """One node's status from its pid file and ``srvr`` (never raises for a dead node)."""
        spec = self.spec(node_id)
        pid = self.pid(node_id)
        mode = zxid = error = None
        count = None
        try:
            reply = parse_srvr(four_letter_word(spec.host, spec.client_port, "srvr", timeout=1.0))
            mode = reply.get("Mode")
            zxid = reply.get("Zxid")
            count = int(reply["Node count"]) if "Node count" in reply else None
            if mode is None:
                error = "not serving requests (no quorum)"
        except OSError as exc:
            error = f"no answer: {exc.strerror or exc}"
        return ZkNodeStatus(
            node_id=node_id, address=spec.address, pid=pid, alive=pid is not None,
            mode=mode, zxid=zxid, node_count=count, error=error,
        )

    def status(self) -> list[ZkNodeStatus]:
        """Every node's status, node 1 first."""
        return [self.node_status(i) for i in range(1, self.nodes + 1)]

    def leader_id(self) -> int | None:
        """The node id whose ``srvr`` says leader (or standalone), None if there is none."""
        for st in self.status():
            if st.mode in ("leader", "standalone"):
                return st.node_id
        return None

    def stop_node(self, node_id: int, timeout: float = 10.0) -> bool:
        """Stop node ``node_id`` by pid (SIGTERM, SIGKILL after ``timeout`` s) and remove its
        pid file; also stops, by pid, any JVM of this node its pid file does not name
        (``stray_pids``). Returns False if none was running."""
        spec = self.spec(node_id)
        stopped = process.stop_pid(self.pid(node_id), timeout=timeout)
        for pid in self.stray_pids(node_id):  # a JVM of this node its pid file does not name
            log.warning("zk_node_stray_stopped", node_id=node_id, pid=pid)
            stopped = process.stop_pid(pid, timeout=timeout) or stopped
        spec.pid_path.unlink(missing_ok=True)
        if stopped:
            log.info("zk_node_stopped", node_id=node_id)
        return stopped

    def kill_node(self, node_id: int, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` to node ``node_id`` (default SIGKILL: a crash; SIGSTOP/SIGCONT to
        freeze/thaw). Waits for a killed node to be gone. Returns False if it was not running."""
        return process.kill_pid(self.pid(node_id), sig)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every node by pid and remove the pid files; leaves data dirs and logs.
        All nodes get SIGTERM at once, then each is waited for (SIGKILL after ``timeout`` s)."""
        for s in self.specs:
            pid = self.pid(s.node_id)
            for p in ([] if pid is None else [pid]) + self.stray_pids(s.node_id):
                process.signal_pid(p, signal.SIGTERM)
                process.signal_pid(p, signal.SIGCONT)
        for s in self.specs:
            self.stop_node(s.node_id, timeout=timeout)

    def destroy(self) -> None:
        """Stop every node and delete the node dirs, logs, pid files and the state file."""
        self.stop()
        for s in self.specs:
            shutil.rmtree(s.node_dir, ignore_errors=True)
            s.log_path.unlink(missing_ok=True)
        (self.base_dir / STATE_FILE).unlink(missing_ok=True)
