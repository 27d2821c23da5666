"""The compose chaos backend: faults on the containers of compose/docker-compose.yml.

``ComposeBackend`` brings up the compose project (3 ZooKeeper nodes ``zk1..3``, 3 brokers
``broker1..3``, image ``kafkalike:latest`` from ./scripts/build-image) under a unique
project name, waits until every service is healthy, and implements the primitives the
nemesis (``kafkalike.chaos.faults.Backend``) calls, through the Docker SDK:

- kill -9: ``container.kill("SIGKILL")`` (init is docker's tini: the whole container dies);
  a zombie: ``container.pause()`` (the cgroup freezer, SIGSTOP's container twin) and
  ``unpause()``; clean restart: ``container.stop()`` (SIGTERM: controlled shutdown) and
  ``start()``. Like the local backend, a broker killed with -9 is started again only once
  its old ``/brokers/ids/<id>`` node has vanished (its ZooKeeper session expired);
- ZooKeeper: kill/start a node's container; the leader from the ``srvr`` four-letter word;
- network cuts with iptables **inside the source broker's container** (the services have
  NET_ADMIN): ``iptables -A OUTPUT -p tcp -d <dst container ip> --dport <dst port>
  -m comment --comment <tag> -j DROP`` drops what src sends to dst's listener (9092 for a
  broker, 2181 for ZooKeeper). As on the local backend, cutting both directions of a broker
  pair cuts every connection between them and nothing else: the workload's clients run on
  the host and still reach every broker at its container address.

- a full disk (``disk_mb``, menu v2's disk-full): each broker's log dir
  (/var/lib/kafkalike/data) is a bind mount of a ``disk_mb`` MiB tmpfs the backend mounts on
  the host (``WORKDIR/disk-b<i>``, as the local backend's), so it survives container kills
  and restarts; ``fill_disk`` fills it from the host with the same filler file, ``free_disk``
  deletes it and starts the container again if the broker halted. Needs root on the host
  and an engine that shares the host's mounts (a local dockerd).
- clock jumps (``clock_faults``, menu v2's clock-jump): the local backend's clock library
  (clock_offset.c, built on the host with gcc; the image is the same Debian bookworm, glibc
  2.36) is bind-mounted read-only into every broker container and preloaded
  (``LD_PRELOAD``) into everything the container runs; each broker reads its offset from
  ``KAFKALIKE_CLOCK_OFFSET_FILE`` in its own bind-mounted host directory
  (``WORKDIR/clock-b<i>``), which ``set_clock_offset`` rewrites (atomically: a rename in the
  directory, which the bind mount shows at once).

``close()`` unpauses, deletes rules, and removes the project's containers, network and
volumes (``compose down -v``, then the Docker SDK by project label for anything left),
then unmounts its tmpfs log dirs, whatever happened before; it is also registered with atexit. Broker nodes are ``"b<i>"``,
ZooKeeper nodes ``"zk<i>"``, as on the local backend. All methods block.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import structlog

from kafkalike.chaos.local import (
    CLOCK_OFFSET_FILE,
    FILLER_NAME,
    ChaosBackendError,
    PartitionState,
    ZkView,
    build_clock_library,
    fill_filesystem,
    mounts_under,
    unmount,
    wait_registration_gone,
)
from kafkalike.cluster.env_config import variable_for
from kafkalike.cluster.zk_ensemble import four_letter_word, parse_srvr

log = structlog.get_logger(__name__)

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "compose" / "docker-compose.yml"
IMAGE = os.environ.get("KAFKALIKE_IMAGE", "kafkalike:latest")
"""The image every service runs: $KAFKALIKE_IMAGE (as the compose file reads it), else kafkalike:latest."""
BROKER_PORT = 9092
BROKER_LOG_DIR = "/var/lib/kafkalike/data"
"""The brokers' log.dirs inside their containers (compose/docker-compose.yml)."""
CLOCK_LIB_DIR = "/opt/kafkalike-chaos-clock"
"""Where the clock library's host directory is mounted (read-only) in broker containers."""
CLOCK_OFFSET_DIR = "/var/lib/kafkalike-chaos-clock"
"""Where a broker container sees its own offset directory (``WORKDIR/clock-b<i>``)."""
ZK_PORT = 2181
RULE_TAG_PREFIX = "kafkalike-chaos-"


def compose_command() -> list[str]:
    """The compose CLI on this machine: ``docker compose`` (v2 plugin) if it answers, else
    Debian's ``docker-compose`` (v1). Raises ChaosBackendError if neither is installed."""
    docker = shutil.which("docker")
    if docker is not None:
        r = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if r.returncode == 0:
            return [docker, "compose"]
    v1 = shutil.which("docker-compose")
    if v1 is not None:
        return [v1]
    raise ChaosBackendError("neither `docker compose` nor `docker-compose` is installed "
                            "(apt-get install docker-compose; ./scripts/build-image does it)")


def docker_client() -> Any:
    """A Docker SDK client for the local engine; ChaosBackendError (with a hint) if there is
    no SDK or no engine answering."""
    try:
        import docker
    except ImportError as exc:
        raise ChaosBackendError("the Python Docker SDK is missing (pip install docker)") from exc
    try:
        client = docker.from_env(version="auto", timeout=120)
        client.ping()
    except Exception as exc:
        raise ChaosBackendError(f"no Docker engine answers ({exc}); start one: ./scripts/build-image "
                                "starts dockerd and builds the image") from exc
    return client


@attrs.define
class ComposeBackend:
    """Chaos primitives on a compose project of 3 ZooKeeper nodes and 3 brokers.

    Build with ``ComposeBackend.create(workdir, overrides)`` then ``start()``; ``close()``
    tears the project down. ``overrides``: broker properties (e.g.
    ``{"zookeeper.session.timeout.ms": "4000"}``) given to every broker as KAFKA_CFG_*
    variables in a second compose file ``<workdir>/compose.override.yml``.
    """

    workdir: Path
    project: str
    overrides: dict[str, str]
    compose_file: Path = COMPOSE_FILE
    image: str = IMAGE
    brokers: int = 3
    zk_count: int = 3
    name: str = "compose"
    disk_mb: int | None = None
    clock_faults: bool = False
    tag: str = attrs.Factory(lambda: RULE_TAG_PREFIX + uuid.uuid4().hex[:8])
    _client: Any = None
    _containers: dict[str, Any] = attrs.Factory(dict)
    _ips: dict[str, str] = attrs.Factory(dict)
    _paused: set[str] = attrs.Factory(set)
    _rules: list[tuple[str, tuple[str, ...]]] = attrs.Factory(list)
    _lock: threading.Lock = attrs.Factory(threading.Lock)
    _closed: bool = False

    @classmethod
    def create(cls, workdir: str | Path, overrides: dict[str, str] | None = None,
               project: str | None = None, compose_file: str | Path | None = None,
               image: str = IMAGE, disk_mb: int | None = None, clock_faults: bool = False) -> "ComposeBackend":
        """A not yet started backend; project name default ``kafkalike-chaos-<hex>``.
        ``disk_mb``: every broker's log dir a tmpfs of that many MiB (full-disk faults);
        ``clock_faults``: brokers run with the clock library preloaded (clock jumps; needs gcc)."""
        return cls(Path(workdir), project or f"kafkalike-chaos-{uuid.uuid4().hex[:8]}", dict(overrides or {}),
                   Path(compose_file) if compose_file else COMPOSE_FILE, image, disk_mb=disk_mb,
                   clock_faults=clock_faults)

    @property
    def disk_faults(self) -> bool:
        """The brokers' log dirs are small filesystems this backend can fill."""
        return self.disk_mb is not None

    def log_dir(self, broker_id: int) -> Path:
        """The host directory bind-mounted as broker ``broker_id``'s log dir (with ``disk_mb``)."""
        return self.workdir / f"disk-b{broker_id}"

    def _mount_log_dirs(self) -> None:
        for i in range(1, self.brokers + 1):
            d = self.log_dir(i)
            d.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.disk_mb}m,mode=0755",
                                f"kafkalike-chaos-{self.project}-b{i}", str(d)], capture_output=True, text=True)
            if r.returncode != 0:
                raise ChaosBackendError(f"mounting a {self.disk_mb} MiB tmpfs on {d}: {r.stderr.strip()} (needs root)")
            log.info("chaos_log_dir_mounted", broker=i, dir=str(d), size_mb=self.disk_mb)

    # ---------------------------------------------------------------- lifecycle
    def _compose(self, *args: str, timeout: float = 300.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        files = ["-f", str(self.compose_file)]
        override = self.workdir / "compose.override.yml"
        if override.exists():
            files += ["-f", str(override)]
        argv = [*compose_command(), "-p", self.project, *files, *args]
        env = {**os.environ, "KAFKALIKE_IMAGE": self.image}
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise ChaosBackendError(f"{' '.join(argv[-len(args) - 2:])} failed: {r.stderr.strip()[-800:]}")
        return r

    def _write_override(self) -> None:
        env = {variable_for(k): str(v) for k, v in self.overrides.items()}
        services: dict[str, dict[str, Any]] = {}
        for i in range(1, self.brokers + 1):
            svc: dict[str, Any] = {"environment": dict(env)}
            volumes = []
            if self.disk_mb is not None:
                volumes.append(f"{self.log_dir(i).absolute()}:{BROKER_LOG_DIR}")
            if self.clock_faults:
                volumes += [f"{(self.workdir / 'clock-lib').absolute()}:{CLOCK_LIB_DIR}:ro",
                            f"{self._clock_dir(i).absolute()}:{CLOCK_OFFSET_DIR}"]
                svc["environment"].update({"LD_PRELOAD": f"{CLOCK_LIB_DIR}/libkafkalike_clock.so",
                                           "KAFKALIKE_CLOCK_OFFSET_FILE": f"{CLOCK_OFFSET_DIR}/{CLOCK_OFFSET_FILE}"})
            if volumes:
                svc["volumes"] = volumes
            services[f"broker{i}"] = svc
        doc = {"version": "2.4", "services": services}
        # YAML is a superset of JSON: no YAML library needed
        (self.workdir / "compose.override.yml").write_text(json.dumps(doc, indent=2) + "\n")

    def start(self, timeout: float = 600.0) -> None:
        """``compose up -d`` the project and wait until every service is healthy (ZooKeeper
        serving, each broker in its own Metadata), at most ``timeout`` seconds (600: at load
        average 30-40 on a 2-core machine, 240 s was too short for 3 of the first 5 runs of a
        campaign). ChaosBackendError (with the unhealthy containers' log tails) on failure,
        after tearing down."""
        atexit.register(self.close)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._client = docker_client()
        try:
            self._client.images.get(self.image)
        except Exception as exc:
            raise ChaosBackendError(f"no image {self.image}: run ./scripts/build-image first") from exc
        try:
            if self.disk_mb is not None:
                self._mount_log_dirs()
            if self.clock_faults:
                build_clock_library(self.workdir / "clock-lib")
                for i in range(1, self.brokers + 1):
                    self._clock_dir(i).mkdir(parents=True, exist_ok=True)
                    (self._clock_dir(i) / CLOCK_OFFSET_FILE).write_text("0\n")
            self._write_override()
            log.info("compose_up", project=self.project)
            self._compose("up", "-d", "--no-build", timeout=timeout)
            self._wait_healthy(time.monotonic() + timeout)
        except BaseException:
            self.save_logs()
            self.close()
            raise

    def _wait_healthy(self, deadline: float) -> None:
        services = [f"zk{i}" for i in range(1, self.zk_count + 1)] + [f"broker{i}" for i in range(1, self.brokers + 1)]
        while True:
            states = {}
            for svc in services:
                c = self._container(svc)
                c.reload()
                states[svc] = (c.status, (c.attrs.get("State", {}).get("Health") or {}).get("Status"))
            if all(st == ("running", "healthy") for st in states.values()):
                for svc in services:
                    self._ip(svc)
                log.info("compose_healthy", project=self.project, ips=dict(self._ips))
                return
            dead = [s for s, (status, _) in states.items() if status == "exited"]
            if dead or time.monotonic() > deadline:
                tails = "; ".join(f"{s}: {self._tail(s)}" for s, st in states.items() if st[1] != "healthy")
                raise ChaosBackendError(f"compose project {self.project} not healthy ({states}): {tails}")
            time.sleep(1.0)

    def _tail(self, svc: str, lines: int = 5) -> str:
        try:
            return self._container(svc).logs(tail=lines).decode(errors="replace").strip().replace("\n", " | ")
        except Exception as exc:
            return f"(no logs: {exc})"

    def save_logs(self, directory: str | Path | None = None) -> Path:
        """Write every container's log to ``<directory or workdir/logs>/<service>.log``."""
        out = Path(directory) if directory else self.workdir / "logs"
        out.mkdir(parents=True, exist_ok=True)
        for svc, c in list(self._containers.items()):
            try:
                (out / f"{svc}.log").write_bytes(c.logs())
            except Exception as exc:
                log.info("compose_log_failed", service=svc, error=str(exc))
        return out

    def close(self) -> None:
        """Heal (no restarts), then remove the project's containers, network and volumes;
        never raises. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.heal_all(restart_dead=False)
        except Exception as exc:
            log.warning("compose_heal_failed", error=str(exc))
        r = None
        try:
            r = self._compose("down", "-v", "--remove-orphans", "-t", "5", timeout=180, check=False)
        except Exception as exc:
            log.warning("compose_down_failed", error=str(exc))
        if r is None or r.returncode != 0:
            log.warning("compose_down_failed", error=(r.stderr[-400:] if r else "not run"))
        self._remove_leftovers()
        for point in mounts_under(self.workdir):  # the full-disk fault's tmpfs log dirs
            unmount(point)
        log.info("compose_down", project=self.project)

    def _remove_leftovers(self) -> None:
        """Whatever ``down`` left of this project, by its compose label."""
        client = self._client
        if client is None:
            return
        label = f"com.docker.compose.project={self.project}"
        for kind in ("containers", "networks", "volumes"):
            try:
                coll = getattr(client, kind)
                items = coll.list(all=True, filters={"label": label}) if kind == "containers" \
                    else coll.list(filters={"label": label})
                for item in items:
                    item.remove(**({"force": True, "v": True} if kind == "containers" else {}))
            except Exception as exc:
                log.warning("compose_leftover_remove_failed", kind=kind, error=str(exc))

    def leftovers(self) -> list[str]:
        """Names of this project's containers, networks and volumes that still exist."""
        label = f"com.docker.compose.project={self.project}"
        client = self._client or docker_client()
        out = [c.name for c in client.containers.list(all=True, filters={"label": label})]
        out += [n.name for n in client.networks.list(filters={"label": label})]
        out += [v.name for v in client.volumes.list(filters={"label": label})]
        return out

    # ---------------------------------------------------------------- containers
    def _container(self, svc: str) -> Any:
        c = self._containers.get(svc)
        if c is None:
            found = self._client.containers.list(all=True, filters={"label": [
                f"com.docker.compose.project={self.project}", f"com.docker.compose.service={svc}"]})
            if not found:
                raise ChaosBackendError(f"no container for service {svc} in project {self.project}")
            c = self._containers[svc] = found[0]
        return c

    def _status(self, svc: str) -> str:
        c = self._container(svc)
        c.reload()
        return str(c.status)

    def _ip(self, svc: str) -> str:
        """The container's address on the project network (the last one seen while it ran)."""
        c = self._container(svc)
        c.reload()
        for net in (c.attrs.get("NetworkSettings", {}).get("Networks") or {}).values():
            if net.get("IPAddress"):
                self._ips[svc] = net["IPAddress"]
        ip = self._ips.get(svc)
        if ip is None:
            raise ChaosBackendError(f"{svc} has no address (not running)")
        return ip

    def container_name(self, node: str) -> str:
        """The container name of node "b<i>" / "zk<i>"."""
        return str(self._container(self._service(node)).name)

    @staticmethod
    def _service(node: str) -> str:
        if node.startswith("zk"):
            return f"zk{int(node[2:])}"
        if node.startswith("b"):
            return f"broker{int(node[1:])}"
        raise ChaosBackendError(f"unknown node {node!r} (b<i> or zk<i>)")

    # ---------------------------------------------------------------- shape
    @property
    def broker_ids(self) -> list[int]:
        return list(range(1, self.brokers + 1))

    @property
    def bootstrap_servers(self) -> str:
        """Every broker's container address, host:9092, comma-separated."""
        return ",".join(f"{self._ips.get(f'broker{i}') or self._ip(f'broker{i}')}:{BROKER_PORT}"
                        for i in self.broker_ids)

    @property
    def session_timeout_s(self) -> float:
        """zookeeper.session.timeout.ms of the brokers, in seconds (compose default 6000)."""
        return int(self.overrides.get("zookeeper.session.timeout.ms", "6000")) / 1000.0

    @property
    def zk_node_ids(self) -> list[int]:
        return list(range(1, self.zk_count + 1))

    def zk_nodes(self) -> list[str]:
        return [f"zk{i}" for i in self.zk_node_ids]

    @property
    def zk_connect(self) -> str:
        """The ensemble's connect string as the host reaches it (last known addresses)."""
        hosts = []
        for i in self.zk_node_ids:
            ip = self._ips.get(f"zk{i}")
            if ip is None:
                try:
                    ip = self._ip(f"zk{i}")
                except ChaosBackendError:
                    continue
            hosts.append(f"{ip}:{ZK_PORT}")
        return ",".join(hosts)

    def view(self, timeout: float = 8.0) -> ZkView:
        return ZkView(self.zk_connect, timeout)

    def controller_id(self) -> int | None:
        return self.view().controller_id()

    def partition_states(self, topic: str) -> dict[int, PartitionState] | None:
        return self.view().partition_states(topic)

    def topic_znodes(self, topic: str) -> tuple[bool, bool] | None:
        """(topic znode exists, deletion marker exists): the DeleteTopicDuringControllerKill
        fault's heal check."""
        return self.view().topic_znodes(topic)

    def broker_alive(self, broker_id: int) -> bool:
        """The broker's container runs (paused counts as alive, as a SIGSTOPped process)."""
        return self._status(f"broker{broker_id}") in ("running", "paused")

    # ---------------------------------------------------------------- process faults
    def kill_broker(self, broker_id: int) -> str:
        """SIGKILL broker ``broker_id``'s container; returns "container NAME"."""
        return self._kill(f"broker{broker_id}")

    def _kill(self, svc: str) -> str:
        c = self._container(svc)
        if self._status(svc) == "paused":
            c.unpause()
            self._paused.discard(svc)
        if self._status(svc) != "running":
            raise ChaosBackendError(f"{svc} is not running")
        c.kill(signal="SIGKILL")
        return f"container {c.name}"

    def pause_broker(self, broker_id: int) -> str:
        """Freeze broker ``broker_id``'s container (docker pause: its ZooKeeper session expires
        while its sockets stay open)."""
        svc = f"broker{broker_id}"
        c = self._container(svc)
        if self._status(svc) != "running":
            raise ChaosBackendError(f"{svc} is not running")
        c.pause()
        self._paused.add(svc)
        return f"container {c.name} (docker pause)"

    def resume_broker(self, broker_id: int) -> None:
        """Unpause a paused broker container."""
        svc = f"broker{broker_id}"
        if self._status(svc) == "paused":
            self._container(svc).unpause()
        self._paused.discard(svc)

    def stop_broker(self, broker_id: int, timeout: float = 60.0) -> str:
        """Clean shutdown: docker stop (SIGTERM, controlled shutdown; SIGKILL after ``timeout``)."""
        svc = f"broker{broker_id}"
        self.resume_broker(broker_id)
        c = self._container(svc)
        c.stop(timeout=int(timeout))
        return f"container {c.name}"

    def start_broker(self, broker_id: int, timeout: float = 90.0) -> None:
        """Start broker ``broker_id``'s container once its old registration is gone; returns
        once it is registered again. ChaosBackendError on timeout or if it exits."""
        svc = f"broker{broker_id}"
        if self.broker_alive(broker_id):
            return
        deadline = time.monotonic() + timeout
        wait_registration_gone(self.view(), broker_id, deadline)
        self._container(svc).start()
        self._ip(svc)
        while True:
            ids = self.view().broker_ids()
            if ids is not None and broker_id in ids:
                return
            if self._status(svc) == "exited":
                raise ChaosBackendError(f"broker {broker_id} exited on start: {self._tail(svc)}")
            if time.monotonic() > deadline:
                raise ChaosBackendError(f"broker {broker_id} did not register within {timeout:.0f}s")
            time.sleep(0.5)

    # ---------------------------------------------------------------- full disk
    def fill_disk(self, broker_id: int) -> str:
        """Fill broker ``broker_id``'s tmpfs log dir from the host (local.fill_filesystem: a
        filler file takes every free byte). Returns "filled N bytes; F of M left".
        ChaosBackendError without ``disk_mb``."""
        if self.disk_mb is None:
            raise ChaosBackendError("this backend has no small log-dir filesystems (create it with disk_mb)")
        return fill_filesystem(self.log_dir(broker_id))

    def free_disk(self, broker_id: int) -> None:
        """Delete the filler; a broker whose container exited meanwhile (its only log dir
        went offline and it halted) is started again and waited for."""
        (self.log_dir(broker_id) / FILLER_NAME).unlink(missing_ok=True)
        if not self.broker_alive(broker_id):
            self.start_broker(broker_id)

    def _clock_dir(self, broker_id: int) -> Path:
        return self.workdir / f"clock-b{broker_id}"

    def set_clock_offset(self, broker_id: int, offset_s: float) -> str:
        """Step broker ``broker_id``'s CLOCK_REALTIME to real time + ``offset_s`` seconds (the
        preloaded library re-reads its file within 100 ms). ChaosBackendError without
        ``clock_faults``."""
        if not self.clock_faults:
            raise ChaosBackendError("brokers run without the clock library (create the backend with clock_faults)")
        path = self._clock_dir(broker_id) / CLOCK_OFFSET_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{offset_s:+.3f}\n")
        tmp.replace(path)
        return f"wall clock = real {offset_s:+g} s"

    def container_time(self, broker_id: int) -> float:
        """``time.time()`` as a Python process in broker ``broker_id``'s container sees it
        (docker exec inherits the container's environment, the preloaded library included)."""
        code, out = self._container(f"broker{broker_id}").exec_run(["python3", "-c", "import time; print(time.time())"])
        if code != 0:
            raise ChaosBackendError(f"broker{broker_id}: reading the clock failed: {out.decode(errors='replace')}")
        return float(out.decode().strip().splitlines()[-1])

    # ---------------------------------------------------------------- ZooKeeper faults
    def zk_mode(self, node_id: int) -> str | None:
        """``srvr``'s Mode of a ZooKeeper node (leader, follower), None if it does not serve."""
        svc = f"zk{node_id}"
        try:
            if self._status(svc) != "running":
                return None
            return parse_srvr(four_letter_word(self._ip(svc), ZK_PORT, "srvr", timeout=1.0)).get("Mode")
        except Exception:
            return None

    def zk_leader_id(self) -> int | None:
        for i in self.zk_node_ids:
            if self.zk_mode(i) in ("leader", "standalone"):
                return i
        return None

    def kill_zk(self, node_id: int) -> str:
        return self._kill(f"zk{node_id}")

    def start_zk(self, node_id: int, timeout: float = 60.0) -> None:
        """Start a ZooKeeper node's container; returns once it serves (in a quorum)."""
        svc = f"zk{node_id}"
        if self._status(svc) == "paused":
            self._container(svc).unpause()
        if self._status(svc) != "running":
            self._container(svc).start()
        deadline = time.monotonic() + timeout
        while self.zk_mode(node_id) is None:
            if time.monotonic() > deadline:
                raise ChaosBackendError(f"ZooKeeper node {node_id} is not serving after {timeout:.0f}s")
            time.sleep(0.3)

    # ---------------------------------------------------------------- network faults
    def _iptables(self, svc: str, *args: str) -> tuple[int, str]:
        c = self._container(svc)
        code, out = c.exec_run(["iptables", "-w", *args])
        return int(code), out.decode(errors="replace").strip()

    def cut(self, src: str, dst: str) -> tuple[str, tuple[str, ...]]:
        """Drop what broker ``src`` ("b<i>") sends to node ``dst``'s listener ("b<j>": 9092,
        "zk<j>": 2181), with a rule inside src's container; returns the handle for
        ``restore``. ChaosBackendError if iptables refuses."""
        if not src.startswith("b"):
            raise ChaosBackendError(f"only brokers' links can be cut at the source, not {src!r}")
        svc = self._service(src)
        dst_svc = self._service(dst)
        port = ZK_PORT if dst.startswith("zk") else BROKER_PORT
        rule = ("-p", "tcp", "-d", self._ip(dst_svc), "--dport", str(port),
                "-m", "comment", "--comment", self.tag, "-j", "DROP")
        if self._status(svc) != "running":
            raise ChaosBackendError(f"{svc} is not running: cannot cut its links")
        code, out = self._iptables(svc, "-A", "OUTPUT", *rule)
        if code != 0:
            raise ChaosBackendError(f"iptables -A OUTPUT {' '.join(rule)} in {svc}: {out}")
        handle = (svc, rule)
        with self._lock:
            self._rules.append(handle)
        log.info("iptables_rule_added", container=svc, rule=" ".join(rule))
        return handle

    def restore(self, handle: tuple[str, tuple[str, ...]]) -> None:
        """Delete one rule added by ``cut`` (nothing if it or its container is gone)."""
        svc, rule = handle
        with self._lock:
            if handle in self._rules:
                self._rules.remove(handle)
        try:
            if self._status(svc) == "running":
                self._iptables(svc, "-D", "OUTPUT", *rule)
        except Exception as exc:
            log.info("iptables_restore_failed", container=svc, error=str(exc))

    def rules(self) -> dict[str, list[str]]:
        """Every rule carrying this backend's tag, per running broker container (for tests)."""
        out: dict[str, list[str]] = {}
        for i in self.broker_ids:
            svc = f"broker{i}"
            if self._status(svc) != "running":
                continue
            code, text = self._iptables(svc, "-S", "OUTPUT")
            out[svc] = [line for line in text.splitlines() if self.tag in line]
        return out

    def heal_all(self, restart_dead: bool = True) -> None:
        """Undo everything: unpause, delete every tagged iptables rule and, with
        ``restart_dead``, start every ZooKeeper node and broker that is not running (a heal
        that failed earlier); errors of those restarts are logged, not raised."""
        if self._client is None:
            return
        for svc in list(self._paused):
            try:
                if self._status(svc) == "paused":
                    self._container(svc).unpause()
            except Exception as exc:
                log.warning("heal_unpause_failed", service=svc, error=str(exc))
            self._paused.discard(svc)
        with self._lock:
            handles, self._rules = list(self._rules), []
        for h in handles:
            self.restore(h)
        try:  # anything tagged that a lost handle left behind
            for svc, lines in self.rules().items():
                for line in lines:
                    self._iptables(svc, "-D", *line.split()[1:])
        except Exception as exc:
            log.warning("heal_rules_failed", error=str(exc))
        if not restart_dead:
            return
        for z in self.zk_node_ids:
            try:
                if self._status(f"zk{z}") != "running":
                    self.start_zk(z)
            except Exception as exc:
                log.warning("heal_zk_restart_failed", node=z, error=str(exc))
        for b in self.broker_ids:
            try:
                if not self.broker_alive(b):
                    self.start_broker(b)
            except Exception as exc:
                log.warning("heal_broker_restart_failed", broker=b, error=str(exc))
