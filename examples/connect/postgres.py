#!/usr/bin/env python3
"""A PostgreSQL cluster of its own for docs/tutorials/cdc-postgres.md, run by ``./scripts/postgres``.

    postgres.py up --dir D [--port 5432] [--database shop --user shop --password shop]
    postgres.py down --dir D [--purge]

Debian's PostgreSQL 15 binaries (``/usr/lib/postgresql/15/bin``): ``initdb`` makes a data
directory of its own on first start, ``pg_ctl start`` runs it on 127.0.0.1:``port`` only, and a
role and a database for the tutorial are created (the role logs in with a SCRAM password over
TCP; local socket connections are trusted, for this script only). ``down`` is ``pg_ctl stop -m
fast``: PostgreSQL's own tool signals the postmaster by the pid in its ``postmaster.pid``.

PostgreSQL refuses to run as root; run as root, the server runs as Debian's ``postgres`` user,
and when that user cannot reach ``D`` (a private /tmp directory of a test) the data directory is
made in a fresh ``/tmp/kafkalike-postgres-*`` directory instead, its path written to
``D/datadir``; ``down --purge`` deletes it.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class PostgresError(Exception):
    """A step failed; the message says which and what to look at."""


def _bin(name: str) -> str:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    found = shutil.which(name)
    if found is None:
        raise PostgresError(f"{name} not found: apt-get install -y postgresql (./scripts/postgres does it)")
    return found


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _reachable_by_postgres(path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    return subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(path)]).returncode == 0


def data_dir(base: Path, create: bool) -> Path:
    """The data directory of ``base``: ``base``/data, or the /tmp directory named in ``base``/datadir."""
    pointer = base / "datadir"
    if pointer.exists():
        return Path(pointer.read_text().strip())
    if not create or _reachable_by_postgres(base):
        return base / "data"
    tmp = Path(tempfile.mkdtemp(prefix="kafkalike-postgres-"))
    pointer.write_text(f"{tmp / 'data'}\n")
    return tmp / "data"


def _run(cmd: list[str], what: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise PostgresError(f"{what} failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def up(base: Path, port: int, database: str, user: str, password: str, timeout_s: float = 120.0) -> None:
    """initdb (first time), pg_ctl start on 127.0.0.1:``port``, then the role ``user`` with
    ``password`` and the database ``database`` it owns (both only if missing). Raises
    PostgresError with the server log's tail when it does not start."""
    base = base.absolute()
    base.mkdir(parents=True, exist_ok=True)
    data = data_dir(base, create=True)
    if os.geteuid() == 0 and data.parent != base:  # the /tmp directory: the server user's
        pg = pwd.getpwnam("postgres")
        os.chown(data.parent, pg.pw_uid, pg.pw_gid)
    log = data.parent / "postgres.log"
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(data, pg.pw_uid, pg.pw_gid)
        _run(_as_server_user([_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                              "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-instructions"]), "initdb")
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        if not log.exists():
            log.touch()
        os.chown(log, pg.pw_uid, pg.pw_gid)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={data}"
    _run(_as_server_user([_bin("pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w",
                          "-t", str(int(timeout_s)), "-o", options]), f"pg_ctl start (log {log})")
    psql = _as_server_user([_bin("psql"), "-h", str(data), "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1",
                            "-Atq", "-d", "postgres"])
    deadline = time.monotonic() + timeout_s
    while subprocess.run([*psql, "-c", "SELECT 1"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise PostgresError(f"PostgreSQL did not answer within {timeout_s:.0f} s; its log: {log}")
        time.sleep(0.5)
    if not _run([*psql, "-c", f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'"], "psql").strip():
        _run([*psql, "-c", f"CREATE ROLE {user} LOGIN PASSWORD '{password}'"], "CREATE ROLE")
    if not _run([*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{database}'"], "psql").strip():
        _run([*psql, "-c", f"CREATE DATABASE {database} OWNER {user}"], "CREATE DATABASE")
    pid = (data / "postmaster.pid").read_text().split("\n", 1)[0]
    print(f"postgres: pid {pid} on 127.0.0.1:{port}, data {data}, database {database} (user {user})")


def down(base: Path, purge: bool) -> None:
    """pg_ctl stop -m fast for ``base``'s data directory (if it runs); with ``purge`` deletes a
    data directory made under /tmp (the rest is under ``base``, the caller's to delete)."""
    base = base.absolute()
    data = data_dir(base, create=False)
    if (data / "postmaster.pid").exists():
        _run(_as_server_user([_bin("pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"]), "pg_ctl stop")
        print("postgres: stopped")
    else:
        print("postgres: not running")
    if purge and (base / "datadir").exists():
        shutil.rmtree(data.parent, ignore_errors=True)
        (base / "datadir").unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/postgres", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up", help="start a PostgreSQL of its own on 127.0.0.1")
    u.add_argument("--dir", type=Path, required=True)
    u.add_argument("--port", type=int, default=5432)
    u.add_argument("--database", default="shop")
    u.add_argument("--user", default="shop")
    u.add_argument("--password", default="shop")
    d = sub.add_parser("down", help="stop it")
    d.add_argument("--dir", type=Path, required=True)
    d.add_argument("--purge", action="store_true", help="also delete a data directory made under /tmp")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(args.dir, args.port, args.database, args.user, args.password)
        else:
            down(args.dir, args.purge)
    except PostgresError as e:
        print(f"postgres: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
