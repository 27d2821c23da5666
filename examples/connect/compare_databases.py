#!/usr/bin/env python3
"""Compares MariaDB's ``shop.orders`` with the PostgreSQL table the JDBC sink writes
(docs/tutorials/cdc-postgres.md): the check that no change was lost on the way
MariaDB -> Debezium source -> kafkalike -> Debezium JDBC sink -> PostgreSQL.

    compare_databases.py --socket MARIADB_SOCKET --postgres URL [--table orders]
                         [--timeout 180] [--summary FILE]

Both tables are read with their own command-line clients (``mariadb``, ``psql``) as rows of
(id, customer, quantity, status), ordered by id. The sink is asynchronous, so the check polls
until both are equal (exit 0, one ``OK`` line) or ``--timeout`` seconds pass (exit 1, the rows
missing, extra or different on the PostgreSQL side). ``--summary`` writes the verdict as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

COLUMNS = "id, customer, quantity, status"


def mariadb_rows(socket: str, table: str) -> dict[int, tuple[str, ...]]:
    """``{id: (customer, quantity, status)}`` of MariaDB's ``shop.<table>``, as text."""
    out = subprocess.run(["mariadb", "--no-defaults", f"--socket={socket}", "-uroot", "-N", "-B", "-e",
                          f"SELECT {COLUMNS} FROM shop.{table} ORDER BY id"],
                         capture_output=True, text=True, check=True).stdout
    return {int(f[0]): tuple(f[1:]) for f in (line.split("\t") for line in out.splitlines() if line)}


def postgres_rows(url: str, table: str) -> dict[int, tuple[str, ...]] | None:
    """The same of PostgreSQL's ``<table>``; None while the sink has not created it yet."""
    done = subprocess.run(["psql", url, "-At", "-F", "\t", "-c", f"SELECT {COLUMNS} FROM {table} ORDER BY id"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        if "does not exist" in done.stderr:
            return None
        raise RuntimeError(f"psql failed: {done.stderr.strip()}")
    return {int(f[0]): tuple(f[1:]) for f in (line.split("\t") for line in done.stdout.splitlines() if line)}


def compare(source: dict[int, tuple[str, ...]], sink: dict[int, tuple[str, ...]] | None) -> dict[str, object]:
    """The differences: ids missing from the sink, extra in it, and rows that differ."""
    sink = sink or {}
    missing = sorted(set(source) - set(sink))
    extra = sorted(set(sink) - set(source))
    different = sorted(i for i in set(source) & set(sink) if source[i] != sink[i])
    return {"ok": not (missing or extra or different), "source_rows": len(source), "sink_rows": len(sink),
            "missing": missing, "extra": extra,
            "different": {i: {"mariadb": source[i], "postgres": sink[i]} for i in different}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="MariaDB's unix socket")
    parser.add_argument("--postgres", required=True, help="postgresql://user:password@host:port/database")
    parser.add_argument("--table", default="orders")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--summary", type=Path, default=None)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    while True:
        verdict = compare(mariadb_rows(args.socket, args.table), postgres_rows(args.postgres, args.table))
        if verdict["ok"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    if args.summary is not None:
        args.summary.write_text(json.dumps(verdict, indent=1) + "\n")
    if verdict["ok"]:
        print(f"OK: {verdict['source_rows']} rows in MariaDB's shop.{args.table} and PostgreSQL's {args.table}, "
              "equal row by row")
        return 0
    print(f"MISMATCH after {args.timeout:.0f} s: {verdict['source_rows']} rows in MariaDB, {verdict['sink_rows']} in "
          f"PostgreSQL; missing ids {json.dumps(verdict['missing'])[:200]}, extra ids {json.dumps(verdict['extra'])[:200]}, "
          f"different "
          f"{json.dumps(verdict['different'])[:1000]}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
