#!/usr/bin/env python3
"""Runs a tutorial page of docs/tutorials/ end to end: the page's own ```bash blocks, in order.

    tutorial_runner.py --list                     names of the runnable pages, one a line
    tutorial_runner.py NAME [--bootstrap-server B] [--work-dir D]

A page is runnable when it contains the line ``<!-- tutorial: runnable -->``. Its ```bash
blocks run in one ``bash -euo pipefail`` script from the repository root, with .venv/bin first
on PATH; the first failing command fails the tutorial. A block whose first line is a marker
comment is treated specially:

    # not-run            shown to the reader only (e.g. the ./scripts/tutorial line itself)
    # setup-cluster      starts the cluster: skipped with --bootstrap-server
    # cleanup            always runs at the end, even after a failure (set +e)
    # cleanup-cluster    likewise, skipped with --bootstrap-server
    # own-cluster        acts on the page's own cluster (kills a broker): skipped with --bootstrap-server

With ``--bootstrap-server B`` (tests: a cluster that already runs) ``localhost:9092`` is
replaced by B, and ``localhost:8081`` / ``--port 8081`` by a free port, likewise Connect's
``localhost:8083`` / ``--rest-port 8083``, MariaDB's ``--port 3306`` / ``"database.port": "3306"`` and
PostgreSQL's ``--port 5432`` / ``127.0.0.1:5432``.
``.tutorial`` (the page's scratch directory) and ``.kafkalike-tutorial`` (its cluster directory) are replaced by
directories under ``--work-dir`` when given. Exit status: the main script's.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "docs" / "tutorials"
MARK = "<!-- tutorial: runnable -->"


def pages() -> list[str]:
    return sorted(p.stem for p in PAGES.glob("*.md") if MARK in p.read_text())


def blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--bootstrap-server", default=None, help="use this running cluster (no cluster up/down)")
    parser.add_argument("--work-dir", type=Path, default=None, help="where .tutorial and .kafkalike-tutorial go")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(pages()))
        return 0
    if args.name not in pages():
        print(f"tutorial: unknown tutorial {args.name!r}; one of: {', '.join(pages())}", file=sys.stderr)
        return 2
    subs: list[tuple[str, str]] = []
    if args.work_dir is not None:
        work = args.work_dir.resolve()
        work.mkdir(parents=True, exist_ok=True)
        subs += [(".kafkalike-tutorial", str(work / "cluster")), (".tutorial", str(work / "scratch"))]
    if args.bootstrap_server:
        port = free_port()
        subs += [("localhost:9092", args.bootstrap_server), ("localhost:8081", f"127.0.0.1:{port}"),
                 ("--port 8081", f"--port {port}")]
        rest, mariadb, postgres = free_port(), free_port(), free_port()
        subs += [("localhost:8083", f"127.0.0.1:{rest}"), ("--rest-port 8083", f"--rest-port {rest}"),
                 ("--port 3306", f"--port {mariadb}"), ('"database.port": "3306"', f'"database.port": "{mariadb}"'),
                 ("--port 5432", f"--port {postgres}"), ("127.0.0.1:5432", f"127.0.0.1:{postgres}")]
    main_steps, cleanup = [], []
    for block in blocks((PAGES / f"{args.name}.md").read_text()):
        first = block.split("\n", 1)[0].strip()
        if first == "# not-run" or (args.bootstrap_server and first in ("# setup-cluster", "# cleanup-cluster",
                                                                       "# own-cluster")):
            continue
        for old, new in subs:
            block = block.replace(old, new)
        (cleanup if first in ("# cleanup", "# cleanup-cluster") else main_steps).append(block)
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    print(f"tutorial {args.name}: {len(main_steps)} steps, {len(cleanup)} clean-up steps", flush=True)
    try:
        rc = subprocess.run(["bash", "-c", "set -euxo pipefail\n" + "\n".join(main_steps)], cwd=ROOT, env=env).returncode
    finally:
        if cleanup:
            subprocess.run(["bash", "-c", "set -x\n" + "\n".join(cleanup)], cwd=ROOT, env=env)
    print(f"tutorial {args.name}: {'OK' if rc == 0 else f'FAILED (exit {rc})'}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
