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

Two optional fault surfaces (``LocalBackend.create(disk_mb=..., clock_faults=True)``):

- **full disk**: each broker's log dir is a tmpfs of ``disk_mb`` MiB mounted before the
  broker starts (root only); ``fill_disk`` puts a filler file there that takes every free
  byte, ``free_disk`` deletes it (and starts the broker again if its log dir went offline
  and it halted). ``close`` and ``stop_earlier_cluster`` unmount them;
- **clock jumps**: each broker runs with ``LD_PRELOAD`` of a small library built here from
  ``clock_offset.c`` (gcc), which adds the seconds written in ``<broker dir>/clock-offset``
  to CLOCK_REALTIME; ``set_clock_offset`` writes that file (CLOCK_MONOTONIC is untouched).

All methods are blocking (the chaos runner drives the cluster from plain threads).
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from kafkalike.chaos.proxy import ProxyError, Route, TcpProxy
from kafkalike.cluster import process
from kafkalike.cluster.local_cluster import LocalCluster, Registration
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

    def topic_znodes(self, topic: str) -> tuple[bool, bool] | None:
        """(``/brokers/topics/<topic>`` exists, ``/admin/delete_topics/<topic>`` exists), None
        if ZooKeeper did not answer."""

        async def f(kz):  # type: ignore[no-untyped-def]  # kz: KafkaZkClient, imported lazily in _run
            return topic in await kz.get_all_topics(), topic in await kz.get_topic_deletions()

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


FILLER_NAME = ".kafkalike-chaos-filler"
"""The full-disk fault's filler file in a broker's log dir (a file, so the broker's log
loading, which only reads directories, ignores it)."""
CLOCK_OFFSET_FILE = "clock-offset"
CLOCK_SOURCE = Path(__file__).with_name("clock_offset.c")


def build_clock_library(out_dir: str | Path) -> Path:
    """Compile ``clock_offset.c`` into ``out_dir/libkafkalike_clock.so`` (once: an existing
    library newer than the source is reused); returns its path. ChaosBackendError if gcc is
    missing or fails."""
    out = Path(out_dir) / "libkafkalike_clock.so"
    if out.exists() and out.stat().st_mtime >= CLOCK_SOURCE.stat().st_mtime:
        return out
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise ChaosBackendError("clock faults need gcc to build clock_offset.c")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
    r = subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(CLOCK_SOURCE), "-ldl"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ChaosBackendError(f"building {CLOCK_SOURCE.name} failed: {r.stderr.strip()}")
    tmp.replace(out)
    return out


def fill_filesystem(directory: str | Path, preallocate: bool = True) -> str:
    """Fill the filesystem holding ``directory``: a filler file (FILLER_NAME) there takes every
    free byte, by posix_fallocate (``preallocate``) and then writes until ENOSPC. Written
    unbuffered, so no tail is left to flush (and fail with ENOSPC) when the file closes, as
    happened when posix_fallocate lost a race with the broker's own appends (issue 22). If the
    fill raises, the filler is deleted: nothing is left half-applied. Returns "filled N bytes;
    F of M left" (bytes)."""
    d = Path(directory)
    st = os.statvfs(d)
    free = st.f_bavail * st.f_frsize
    filler = d / FILLER_NAME
    written = 0
    try:
        with open(filler, "ab", buffering=0) as f:
            if preallocate:
                try:
                    os.posix_fallocate(f.fileno(), f.tell(), free)
                    written = free
                except OSError:
                    pass
            chunk = b"\0" * 65536
            while True:
                try:
                    n = f.write(chunk)
                except OSError:
                    break
                if not n:
                    break
                written += n
    except BaseException:
        filler.unlink(missing_ok=True)
        raise
    left = os.statvfs(d)
    return f"filled {written} bytes; {left.f_bavail * left.f_frsize} of {st.f_blocks * st.f_frsize} left"


def mounts_under(base_dir: str | Path) -> list[Path]:
    """Mount points at or below ``base_dir`` (from /proc/self/mounts), deepest first."""
    base = Path(base_dir).absolute()
    found = []
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        point = Path(fields[1].replace("\\040", " "))
        if point == base or base in point.parents:
            found.append(point)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount(point: Path) -> bool:
    """``umount`` one mount point (lazily if busy); False if it failed."""
    r = subprocess.run(["umount", str(point)], capture_output=True, text=True)
    if r.returncode != 0:
        r = subprocess.run(["umount", "-l", str(point)], capture_output=True, text=True)
    if r.returncode != 0:
        log.warning("chaos_umount_failed", point=str(point), error=r.stderr.strip())
        return False
    log.info("chaos_unmounted", point=str(point))
    return True


@attrs.define
class ChaosLocalCluster(LocalCluster):
    """A LocalCluster whose brokers start with extra environment variables (``broker_env``:
    the clock library's LD_PRELOAD) and may reach ZooKeeper through their own proxy routes
    (``zk_connect_of``); everything else is LocalCluster's."""

    broker_env: dict[str, str] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    # broker id -> its zookeeper.connect through the chaos proxy (kafkalike.chaos.proxy)
    zk_connect_of: dict[int, str] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    def server_properties(self, broker_id: int) -> dict[str, str]:
        props = super().server_properties(broker_id)
        if broker_id in self.zk_connect_of:
            props["zookeeper.connect"] = self.zk_connect_of[broker_id]
        return props

    def _spawn(self, broker_id: int, before: Registration | None, group: int | None = None) -> int:
        if not self.broker_env:
            return super()._spawn(broker_id, before, group)
        argv = [sys.executable, "-m", "kafkalike.cli.main", "broker", "start",
                "--config", str(self.config_path(broker_id))]
        self._seen_before_start[broker_id] = None if before is None else before.czxid
        env = {**os.environ, **self.broker_env,
               "KAFKALIKE_CLOCK_OFFSET_FILE": str(self.broker_dir(broker_id) / CLOCK_OFFSET_FILE)}
        spawned = process.spawn_detached(argv, self.log_path(broker_id), self.pid_path(broker_id), group=group,
                                         env=env)
        log.info("broker_process_started", broker=broker_id, pid=spawned.pid, gid=group, preload=True)
        return spawned.pid


DEFAULT_DISK_MB = 256
"""Size of each broker's tmpfs log dir when a run uses full-disk faults (MiB): a 300 s run
of the default workload writes a few MiB per broker; tmpfs holds only what is written."""


def fault_surfaces(needs: tuple[str, ...], random_menu: str | None) -> dict[str, Any]:
    """``LocalBackend.create`` arguments for a run: tmpfs log dirs (``disk_mb``), the clock
    library (``clock_faults``), a spare broker (``spare_brokers``) and the ZooKeeper proxy
    (``zk_proxy``) when the scenario needs them (``needs``: "disk", "clock", "spare",
    "proxy") or
    the random nemesis draws from menu v2 (``random_menu``), and only where this machine
    allows them (root for mount, gcc for the library); otherwise none, so v1 runs replay
    on the same plain cluster as before."""
    want = set(needs) | ({"disk", "clock", "spare", "proxy"} if random_menu not in (None, "v1") else set())
    out: dict[str, Any] = {}
    if "disk" in want and os.geteuid() == 0 and shutil.which("mount"):
        out["disk_mb"] = DEFAULT_DISK_MB
    if "clock" in want and (shutil.which("gcc") or shutil.which("cc")):
        out["clock_faults"] = True
    if "spare" in want:
        out["spare_brokers"] = 1
    if "proxy" in want:
        out["zk_proxy"] = True
    return out


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
    for point in mounts_under(base_dir):  # the full-disk fault's tmpfs log dirs
        unmount(point)
    log.info("chaos_earlier_cluster_stopped", dir=str(base_dir))
    return True


@attrs.define
class LocalBackend:
    """Chaos primitives on a LocalCluster whose broker i runs with gid ``gid_base + i``.

    Build with ``LocalBackend.create(...)`` (a fresh cluster, own ZooKeeper ensemble unless
    ``zookeeper_connect`` is given) then ``start()``; ``close()`` resumes paused processes,
    removes every iptables rule, stops every process it started and unmounts its tmpfs log
    dirs. Broker nodes are named ``"b<i>"``, ZooKeeper nodes ``"zk<i>"``. ``disk_mb``: each
    broker's log dir is a tmpfs of that many MiB (full-disk faults); ``clock_faults``: brokers
    run with the clock library preloaded (clock-jump faults).
    """

    cluster: LocalCluster
    gid_base: int
    iptables: Iptables = attrs.Factory(Iptables)
    name: str = "local"
    disk_mb: int | None = None
    clock_faults: bool = False
    spares: set[int] = attrs.Factory(set)
    zk_proxy: bool = False
    _proxy: TcpProxy | None = None
    _paused: set[int] = attrs.Factory(set)
    _paused_zk: set[int] = attrs.Factory(set)
    _mounts: list[Path] = attrs.Factory(list)

    @classmethod
    def create(cls, base_dir: str | Path, brokers: int = 3, zookeeper_connect: str | None = None,
               chroot: str = "", overrides: dict[str, str] | None = None,
               gid_base: int | None = None, disk_mb: int | None = None,
               clock_faults: bool = False, spare_brokers: int = 0, zk_proxy: bool = False) -> "LocalBackend":
        """A not yet started backend on a fresh cluster under ``base_dir``: brokers on
        127.0.0.1..N at a free port, and (without ``zookeeper_connect``) a 3-node ensemble on
        127.0.0.1..3 at another free port. gid_base: default random in [40000, 59000).
        disk_mb: give each broker a tmpfs log dir of this size (MiB; needs root: mount);
        clock_faults: preload the clock library into every broker (needs gcc). spare_brokers:
        configure this many more brokers (ids brokers+1, ...) that stay stopped until a grow
        or decommission fault adds one (``add_broker``). zk_proxy: every broker reaches each
        ZooKeeper node through its own route of a user-space proxy (delay and connection-drop
        faults: ``zk_link_delay``, ``zk_link_drop``)."""
        active = brokers
        brokers = brokers + spare_brokers
        hosts = [f"127.0.0.{i}" for i in range(1, max(brokers, 3) + 1)]
        port = find_free_base_port(hosts, low=30000, high=32000)
        zk_port = 2181
        if zookeeper_connect is None:
            while True:
                zk_port = find_free_base_port(hosts, low=20000, high=29000)
                if port not in (zk_port, zk_port + QUORUM_PORT_OFFSET, zk_port + ELECTION_PORT_OFFSET):
                    break
        cluster = ChaosLocalCluster(base_dir, brokers=brokers, base_port=port, zk_base_port=zk_port,
                                    zookeeper_connect=zookeeper_connect, chroot=chroot,
                                    overrides=dict(overrides or {}))
        if gid_base is None:
            gid_base = random.randrange(40000, 59000, 10)
        return cls(cluster, gid_base, disk_mb=disk_mb, clock_faults=clock_faults,
                   spares=set(range(active + 1, brokers + 1)), zk_proxy=zk_proxy)

    @property
    def disk_faults(self) -> bool:
        """The brokers' log dirs are small filesystems this backend can fill."""
        return self.disk_mb is not None

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
            if self.zk_proxy:
                self._start_proxy()
            self.cluster.write_configs()
            if self.disk_mb is not None:
                for i in self.cluster.broker_ids:
                    self._mount_log_dir(i)
            if self.clock_faults:
                lib = build_clock_library(self.cluster.base_dir)
                for i in self.cluster.broker_ids:
                    (self.cluster.broker_dir(i) / CLOCK_OFFSET_FILE).write_text("0\n")
                if isinstance(self.cluster, ChaosLocalCluster):
                    self.cluster.broker_env = {"LD_PRELOAD": str(lib)}
            for i in self.broker_ids:
                self._spawn(i)
            self.cluster.wait_registered(self.broker_ids, timeout=timeout)
        except BaseException:
            self.close()
            raise

    def _spawn(self, broker_id: int) -> int:
        c = self.cluster
        if c.broker_alive(broker_id):
            return c.broker_pid(broker_id)  # type: ignore[return-value]  # broker_alive() True implies a pid
        if isinstance(c, ChaosLocalCluster) and c.broker_env:
            return c.start_broker(broker_id, group=self.gid(broker_id))
        argv = [sys.executable, "-m", "kafkalike.cli.main", "broker", "start", "--config", str(c.config_path(broker_id))]
        spawned = process.spawn_detached(argv, c.log_path(broker_id), c.pid_path(broker_id), group=self.gid(broker_id))
        log.info("chaos_broker_started", broker=broker_id, pid=spawned.pid, gid=self.gid(broker_id))
        return spawned.pid

    def _zk_hosts(self) -> tuple[list[tuple[str, int]], str]:
        hosts, _, chroot = self.cluster.zk_connect.partition("/")
        out = []
        for h in hosts.split(","):
            host, port = h.rsplit(":", 1)
            out.append((host, int(port)))
        return out, ("/" + chroot if chroot else "")

    def _start_proxy(self) -> None:
        zk, chroot = self._zk_hosts()
        routes = [Route(f"b{b}-zk{j}", self.cluster.broker_host(b), 0, host, port)
                  for b in self.cluster.broker_ids for j, (host, port) in enumerate(zk, start=1)]
        self._proxy = TcpProxy(routes)
        try:
            self._proxy.start()
        except ProxyError as exc:
            raise ChaosBackendError(str(exc)) from exc
        if isinstance(self.cluster, ChaosLocalCluster):
            for b in self.cluster.broker_ids:
                self.cluster.zk_connect_of[b] = ",".join(
                    f"{r.listen_host}:{r.listen_port}" for r in routes if r.name.startswith(f"b{b}-")) + chroot
        log.info("chaos_zk_proxy_started", routes=len(routes))

    def _routes_of(self, broker_id: int) -> list[str]:
        if self._proxy is None:
            raise ChaosBackendError("brokers do not reach ZooKeeper through the proxy (create the backend with "
                                    "zk_proxy)")
        return [n for n in self._proxy.routes if n.startswith(f"b{broker_id}-")]

    def zk_link_delay(self, broker_id: int, seconds: float) -> str:
        """Delay everything between broker ``broker_id`` and every ZooKeeper node by
        ``seconds`` each way (0: heal)."""
        for name in self._routes_of(broker_id):
            self._proxy.set_delay(name, seconds)  # type: ignore[union-attr]  # _routes_of checked it
        return f"ZooKeeper links delayed {seconds:g} s each way"

    def zk_link_drop(self, broker_id: int, refuse: bool) -> int:
        """Close every connection between broker ``broker_id`` and ZooKeeper, and while
        ``refuse`` close its new ones at once; returns how many were closed."""
        n = 0
        for name in self._routes_of(broker_id):
            self._proxy.set_refuse(name, refuse)  # type: ignore[union-attr]  # _routes_of checked it
            if refuse:
                n += self._proxy.sever(name)  # type: ignore[union-attr]
        return n

    def log_dir(self, broker_id: int) -> Path:
        """Broker ``broker_id``'s log.dirs directory."""
        return Path(self.cluster.server_properties(broker_id)["log.dirs"].split(",")[0])

    def _mount_log_dir(self, broker_id: int) -> None:
        d = self.log_dir(broker_id)
        d.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.disk_mb}m,mode=0755",
                            f"kafkalike-chaos-b{broker_id}", str(d)], capture_output=True, text=True)
        if r.returncode != 0:
            raise ChaosBackendError(f"mounting a {self.disk_mb} MiB tmpfs on {d}: {r.stderr.strip()} (needs root)")
        self._mounts.append(d)
        log.info("chaos_log_dir_mounted", broker=broker_id, dir=str(d), size_mb=self.disk_mb)
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
        """heal_all, then stop every broker and our ensemble (by pid), then unmount the tmpfs
        log dirs, copying what they hold to the disk dir beneath first (so a kept cluster of an
        unexpected verdict still has its logs)."""
        try:
            self.heal_all(restart_dead=False)
        finally:
            try:
                self.cluster.stop()
            finally:
                if self._proxy is not None:
                    self._proxy.close()
                while self._mounts:
                    self._unmount_keeping(self._mounts.pop())

    def _unmount_keeping(self, point: Path) -> None:
        (point / FILLER_NAME).unlink(missing_ok=True)
        saved = point.with_name(point.name + ".tmpfs-copy")
        try:
            shutil.copytree(point, saved, dirs_exist_ok=True)
            copied = True
        except OSError as exc:
            log.warning("chaos_tmpfs_copy_failed", point=str(point), error=str(exc))
            copied = False
        if unmount(point) and copied:
            shutil.copytree(saved, point, dirs_exist_ok=True)
            shutil.rmtree(saved, ignore_errors=True)

    # ---------------------------------------------------------------- shape
    @property
    def broker_ids(self) -> list[int]:
        """The cluster's brokers, spares not in service excluded."""
        return [b for b in self.cluster.broker_ids if b not in self.spares]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.cluster.broker_address(b) for b in self.broker_ids)

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

    # ---------------------------------------------------------------- disk and clock faults
    def fill_disk(self, broker_id: int) -> str:
        """Fill broker ``broker_id``'s tmpfs log dir: a filler file takes every free byte
        (posix_fallocate, then writes until ENOSPC). Returns "filled N bytes of M".
        ChaosBackendError without ``disk_mb``."""
        if self.disk_mb is None:
            raise ChaosBackendError("this backend has no small log-dir filesystems (create it with disk_mb)")
        return fill_filesystem(self.log_dir(broker_id))

    def free_disk(self, broker_id: int) -> None:
        """Delete the filler; a broker that halted meanwhile (its only log dir went offline)
        is started again and waited for."""
        (self.log_dir(broker_id) / FILLER_NAME).unlink(missing_ok=True)
        if not self.cluster.broker_alive(broker_id):
            self.start_broker(broker_id)

    def set_clock_offset(self, broker_id: int, offset_s: float) -> str:
        """Step broker ``broker_id``'s CLOCK_REALTIME to real time + ``offset_s`` seconds (the
        preloaded library re-reads the file within 100 ms). ChaosBackendError without
        ``clock_faults``."""
        if not self.clock_faults:
            raise ChaosBackendError("brokers run without the clock library (create the backend with clock_faults)")
        path = self.cluster.broker_dir(broker_id) / CLOCK_OFFSET_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{offset_s:+.3f}\n")
        tmp.replace(path)
        return f"wall clock = real {offset_s:+g} s"

    # ---------------------------------------------------------------- cluster growth
    def add_broker(self, broker_id: int | None = None) -> int:
        """Start spare ``broker_id`` (default: the lowest-numbered spare) and put it in service;
        returns its id once it is registered. ChaosBackendError if there is no such spare."""
        if not self.spares or (broker_id is not None and broker_id not in self.spares):
            raise ChaosBackendError("no spare broker (create the backend with spare_brokers)")
        b = min(self.spares) if broker_id is None else broker_id
        self.start_broker(b)
        self.spares.discard(b)
        return b

    def retire_broker(self, broker_id: int) -> None:
        """Clean shutdown of ``broker_id`` and back to the spares (its data stays)."""
        self.stop_broker(broker_id)
        self.spares.add(broker_id)

    def reassign(self, topic: str, moves: dict[int, list[int]], wait_s: float = 0.0) -> str:
        """AlterPartitionReassignments (kafkalike's admin client, to the controller): each
        partition of ``topic`` in ``moves`` to those replicas. With ``wait_s`` > 0, wait until
        ZooKeeper shows them as the partitions' replicas with full ISRs. ChaosBackendError for
        an error code or a reassignment not done in time."""
        from kafkalike.client.admin import AdminClient
        from kafkalike.client.cluster import TopicPartition

        async def run() -> dict:  # type: ignore[type-arg]  # TopicPartition -> (ErrorCode, message)
            async with AdminClient(self.bootstrap_servers, request_timeout_ms=30000) as admin:
                return await admin.alter_partition_reassignments(
                    {TopicPartition(topic, p): list(r) for p, r in moves.items()})

        try:
            results = trio.run(run)
        except Exception as exc:
            raise ChaosBackendError(f"reassigning {topic}: {exc}") from exc
        bad = {f"{tp.topic}-{tp.partition}": code.name for tp, (code, _m) in results.items() if code.value != 0}
        if bad:
            raise ChaosBackendError(f"reassigning {topic}: {bad}")
        text = ", ".join(f"{topic}-{p}->{r}" for p, r in sorted(moves.items()))
        if wait_s > 0:
            deadline = time.monotonic() + wait_s
            while True:
                states = self.partition_states(topic) or {}
                if all(p in states and list(states[p].replicas) == list(r) and states[p].isr_full
                       for p, r in moves.items()):
                    break
                if time.monotonic() > deadline:
                    raise ChaosBackendError(f"reassignment {text} not done after {wait_s:.0f}s")
                time.sleep(0.5)
        return text

    def topic_znodes(self, topic: str) -> tuple[bool, bool] | None:
        return self.view().topic_znodes(topic)

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
        route = f"{src}-{dst}"
        if dst.startswith("zk") and self._proxy is not None and route in self._proxy.routes:
            r = self._proxy.routes[route]  # the broker reaches this node through its proxy route
            host, port = r.listen_host, r.listen_port
        else:
            host, port = self._endpoint(dst)
        return self.iptables.add("-p", "tcp", "-m", "owner", "--gid-owner", str(self.gid(int(src[1:]))),
                                 "-d", host, "--dport", str(port))

    def restore(self, handle: tuple[str, ...]) -> None:
        self.iptables.remove(handle)
