#!/usr/bin/env python3
"""Kafka Connect (distributed mode) and a MariaDB for docs/tutorials/connect.md, run by ``./scripts/connect``.

    connect.py fetch                                   Connect 3.9 + Debezium jars into build/connect (cached)
    connect.py mariadb-up --dir D [--port 3306]        a mariadbd of its own: datadir D/data, binlog ROW
    connect.py mariadb-down --dir D                    stop it (by the pid it recorded)
    connect.py up --dir D --bootstrap-server B [--rest-port 8083] [--replication-factor 3] [--exactly-once]
    connect.py down --dir D                            stop the worker (by pid)
    connect.py wait --rest-port 8083 CONNECTOR STATE   until CONNECTOR and its tasks are in STATE

Every process is started in its own session, its pid written to D/<name>.pid, and stopped by
that pid (SIGTERM, then SIGKILL after a grace period): never by name. The worker is Apache
Kafka's own ``org.apache.kafka.connect.cli.ConnectDistributed`` with its config, offset and
status topics on the cluster (``connect-configs``/``-offsets``/``-status``, compacted, created
by the worker with ``--replication-factor``); its REST API listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POM = Path(__file__).resolve().parent / "pom.xml"
BUILD = ROOT / "build" / "connect"
LIB = BUILD / "lib"            # the worker's class path: connect-runtime, connect-json, connect-file
PLUGINS = BUILD / "plugins"    # plugin.path: plugins/debezium (MySQL source), plugins/debezium-jdbc (JDBC sink)


class ConnectError(Exception):
    """A step failed; the message says which and what to look at."""


# ------------------------------------------------------------------------------- processes
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _start(cmd: list[str], log: Path, pid_file: Path, env: dict[str, str] | None = None) -> int:
    """Starts ``cmd`` in a new session with stdout/stderr to ``log``; writes its pid to ``pid_file``."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def stop_by_pid_file(pid_file: Path, grace_s: float = 30.0) -> bool:
    """SIGTERM to the pid in ``pid_file``, SIGKILL after ``grace_s`` seconds; removes the file.
    Returns False when no process of that pid was running."""
    pid = _read_pid(pid_file)
    if pid is None or not _alive(pid):
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True


# ----------------------------------------------------------------------------------- fetch
def fetch(force: bool = False) -> None:
    """Copies the worker's jars into build/connect/lib and Debezium's into
    build/connect/plugins/debezium with ``mvn dependency:copy-dependencies`` (Maven Central).
    Cached: a stamp holding the pom's sha256 skips the download until the pom changes."""
    stamp = BUILD / ".fetched"
    want = hashlib.sha256(POM.read_bytes()).hexdigest()
    if not force and stamp.exists() and stamp.read_text().strip() == want:
        print(f"connect: jars already in {BUILD} (pom unchanged)")
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConnectError("mvn not found: apt-get install -y maven (./scripts/connect does it)")
    BUILD.mkdir(parents=True, exist_ok=True)
    for profile, dest in (("worker", LIB), ("debezium", PLUGINS / "debezium"),
                          ("debezium-jdbc", PLUGINS / "debezium-jdbc"), ("apicurio", PLUGINS / "apicurio")):
        tmp = Path(tempfile.mkdtemp(prefix=f"{profile}-", dir=BUILD))
        done = subprocess.run([mvn, "-B", "-q", "-f", str(POM), "-P", profile, "dependency:copy-dependencies",
                               f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise ConnectError(f"mvn -P {profile} failed:\n{tail}")
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(dest)
        print(f"connect: {len(list(dest.glob('*.jar')))} jars in {dest}")
    stamp.write_text(want + "\n")


# --------------------------------------------------------------------------------- MariaDB
def _mariadb_paths(base: Path) -> dict[str, Path]:
    return {"data": base / "data", "socket": base / "mysqld.sock", "pid": base / "mariadbd.pid",
            "log": base / "mariadbd.log"}


def mariadb_up(base: Path, port: int, timeout_s: float = 120.0) -> int:
    """Starts Debian's ``mariadbd`` on 127.0.0.1:``port`` with its own datadir ``base``/data
    (created with ``mariadb-install-db`` on first start), socket ``base``/mysqld.sock, binary
    log on in ROW format with full row images and ``server_id`` 1, as Debezium's MySQL
    connector requires. Returns its pid once it answers a query; raises ConnectError."""
    base = base.absolute()
    base.mkdir(parents=True, exist_ok=True)
    p = _mariadb_paths(base)
    old = _read_pid(p["pid"])
    if old is not None and _alive(old):
        raise ConnectError(f"a mariadbd (pid {old}) of {base} already runs: mariadb-down first")
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    if not (p["data"] / "mysql").exists():
        done = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={p['data']}", "--skip-test-db",
                               "--auth-root-authentication-method=normal", *as_root],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ConnectError(f"mariadb-install-db failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    cmd = ["mariadbd", "--no-defaults", f"--datadir={p['data']}", f"--socket={p['socket']}", f"--port={port}",
           "--bind-address=127.0.0.1", f"--pid-file={base / 'mariadbd.own.pid'}", "--skip-name-resolve",
           "--log-bin=binlog", "--binlog-format=ROW", "--binlog-row-image=FULL", "--server-id=1",
           "--innodb-buffer-pool-size=32M", *as_root]
    pid = _start(cmd, p["log"], p["pid"])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise ConnectError(f"mariadbd exited; its log: {p['log']}\n{p['log'].read_text()[-2000:]}")
        ping = subprocess.run(["mariadb", "--no-defaults", f"--socket={p['socket']}", "-uroot", "-e", "SELECT 1"],
                              capture_output=True)
        if ping.returncode == 0:
            print(f"connect: mariadbd pid {pid} on 127.0.0.1:{port}, socket {p['socket']}")
            return pid
        time.sleep(0.5)
    stop_by_pid_file(p["pid"])
    raise ConnectError(f"mariadbd did not answer within {timeout_s:.0f} s; its log: {p['log']}")


def mariadb_down(base: Path) -> None:
    """Stops the mariadbd that ``mariadb_up`` started for ``base`` (by its pid)."""
    stopped = stop_by_pid_file(_mariadb_paths(base.absolute())["pid"], grace_s=60)
    print("connect: mariadbd stopped" if stopped else "connect: no mariadbd running")


# ---------------------------------------------------------------------------------- worker
def worker_properties(bootstrap: str, rest_port: int, rf: int, exactly_once: bool) -> dict[str, str]:
    """The distributed worker's properties (Kafka's names, docs "Kafka Connect Configs")."""
    props = {
        "bootstrap.servers": bootstrap,
        "group.id": "connect-tutorial",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "config.storage.topic": "connect-configs",
        "offset.storage.topic": "connect-offsets",
        "status.storage.topic": "connect-status",
        "config.storage.replication.factor": str(rf),
        "offset.storage.replication.factor": str(rf),
        "status.storage.replication.factor": str(rf),
        "listeners": f"http://127.0.0.1:{rest_port}",
        "rest.advertised.host.name": "127.0.0.1",
        "rest.advertised.port": str(rest_port),
        "plugin.path": str(PLUGINS),
        "offset.flush.interval.ms": "1000",
    }
    if exactly_once:
        props["exactly.once.source.support"] = "enabled"  # KIP-618
    return props


def _connect_paths(base: Path) -> dict[str, Path]:
    return {"props": base / "worker.properties", "log4j": base / "log4j.properties", "pid": base / "worker.pid",
            "log": base / "worker.log", "stdout": base / "worker.out"}


def rest(port: int, path: str, method: str = "GET", body: object = None, timeout: float = 10.0) -> tuple[int, object]:
    """One request to the worker's REST API on 127.0.0.1:``port``: (HTTP status, decoded JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def connect_up(base: Path, bootstrap: str, rest_port: int, rf: int, exactly_once: bool,
               timeout_s: float = 240.0) -> int:
    """Starts a ConnectDistributed worker (Java, build/connect/lib on its class path); returns
    its pid once ``GET /connectors`` answers 200. Logs to ``base``/worker.log."""
    base = base.absolute()
    base.mkdir(parents=True, exist_ok=True)
    if not LIB.exists():
        raise ConnectError(f"no Connect jars in {LIB}: run ./scripts/connect fetch")
    p = _connect_paths(base)
    old = _read_pid(p["pid"])
    if old is not None and _alive(old):
        raise ConnectError(f"a Connect worker (pid {old}) of {base} already runs: down first")
    props = worker_properties(bootstrap, rest_port, rf, exactly_once)
    p["props"].write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    p["log4j"].write_text(
        "log4j.rootLogger=INFO, file\n"
        "log4j.appender.file=org.apache.log4j.FileAppender\n"
        f"log4j.appender.file.File={p['log']}\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %X{connector.context}%m (%c:%L)%n\n"
        "log4j.logger.org.reflections=ERROR\n")
    java = shutil.which("java") or "java"
    cmd = [java, "-Xms128m", "-Xmx512m", f"-Dlog4j.configuration=file:{p['log4j']}",
           f"-Dkafkalike.connect.dir={base}", "-cp", f"{LIB}/*",
           "org.apache.kafka.connect.cli.ConnectDistributed", str(p["props"])]
    pid = _start(cmd, p["stdout"], p["pid"])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise ConnectError(f"the Connect worker exited; see {p['log']} and {p['stdout']}")
        try:
            status, _ = rest(rest_port, "/connectors", timeout=2)
            if status == 200:
                print(f"connect: worker pid {pid}, REST http://127.0.0.1:{rest_port}, log {p['log']}")
                return pid
        except OSError:
            pass
        time.sleep(1)
    stop_by_pid_file(p["pid"])
    raise ConnectError(f"the Connect worker's REST API did not answer within {timeout_s:.0f} s; see {p['log']}")


def connect_down(base: Path) -> None:
    """Stops the worker ``connect_up`` started for ``base`` (by its pid)."""
    stopped = stop_by_pid_file(_connect_paths(base.absolute())["pid"], grace_s=60)
    print("connect: worker stopped" if stopped else "connect: no worker running")


def wait_state(rest_port: int, connector: str, state: str, timeout_s: float) -> dict[str, object]:
    """Polls ``GET /connectors/<connector>/status`` until the connector and every task (at least
    one) are in ``state`` (RUNNING, FAILED, PAUSED); returns that status. For FAILED, one failed
    task is enough. Raises ConnectError with the last status on timeout."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            code, last = rest(rest_port, f"/connectors/{connector}/status", timeout=5)
        except OSError as e:
            code, last = 0, str(e)
        if code == 200 and isinstance(last, dict):
            tasks = last.get("tasks") or []
            states = [t.get("state") for t in tasks]
            if state == "FAILED" and "FAILED" in states:
                return last
            if last["connector"]["state"] == state and states and all(s == state for s in states):
                return last
        time.sleep(1)
    raise ConnectError(f"{connector} not {state} after {timeout_s:.0f} s; last status: {json.dumps(last)[:3000]}")


# ------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/connect", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="Connect 3.9 and Debezium's MySQL connector from Maven Central (cached)")
    f.add_argument("--force", action="store_true")
    mu = sub.add_parser("mariadb-up", help="start a MariaDB of its own (datadir DIR/data, binlog ROW)")
    mu.add_argument("--dir", type=Path, required=True)
    mu.add_argument("--port", type=int, default=3306)
    md = sub.add_parser("mariadb-down", help="stop it")
    md.add_argument("--dir", type=Path, required=True)
    up = sub.add_parser("up", help="start a Connect worker in distributed mode")
    up.add_argument("--dir", type=Path, required=True)
    up.add_argument("--bootstrap-server", required=True)
    up.add_argument("--rest-port", type=int, default=8083)
    up.add_argument("--replication-factor", type=int, default=3)
    up.add_argument("--exactly-once", action="store_true", help="exactly.once.source.support=enabled (KIP-618)")
    down = sub.add_parser("down", help="stop the worker")
    down.add_argument("--dir", type=Path, required=True)
    w = sub.add_parser("wait", help="until a connector and its tasks are in STATE")
    w.add_argument("--rest-port", type=int, default=8083)
    w.add_argument("--timeout", type=float, default=180.0)
    w.add_argument("connector")
    w.add_argument("state", choices=["RUNNING", "FAILED", "PAUSED"])
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            fetch(args.force)
        elif args.command == "mariadb-up":
            mariadb_up(args.dir, args.port)
        elif args.command == "mariadb-down":
            mariadb_down(args.dir)
        elif args.command == "up":
            connect_up(args.dir, args.bootstrap_server, args.rest_port, args.replication_factor, args.exactly_once)
        elif args.command == "down":
            connect_down(args.dir)
        elif args.command == "wait":
            status = wait_state(args.rest_port, args.connector, args.state, args.timeout)
            print(json.dumps(status))
    except ConnectError as e:
        print(f"connect: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
