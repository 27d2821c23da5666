"""``kafkalike dashboard``: the live teaching page of a local cluster.

    kafkalike dashboard [--port 8080] [--dir DIR] [--bind 127.0.0.1] [--interval 1.0]

DIR is the cluster's base directory, as for ``cluster up|status`` (default .kafkalike). Thin:
the work is in kafkalike.dashboard.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

DEFAULT_DIR = ".kafkalike"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dashboard`` sub-command to the ``kafkalike`` parser."""
    p = subparsers.add_parser(
        "dashboard", help="a live web page of a local cluster: ensemble, brokers, partitions, timeline",
        epilog="examples:\n"
               "  kafkalike dashboard                      # http://127.0.0.1:8080/ for .kafkalike\n"
               "  kafkalike dashboard --dir /tmp/c --port 9000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"the cluster's base directory (default {DEFAULT_DIR})")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 = any free port)")
    p.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: loopback only; the page can kill brokers)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between snapshots (default 1.0)")
    p.set_defaults(func=_main)


def _err(msg: str) -> int:
    print(f"kafkalike dashboard: {msg}", file=sys.stderr)
    return 1


def _main(args: argparse.Namespace) -> int:
    import logging

    import trio

    from kafkalike import logs
    from kafkalike.cluster.local_cluster import ClusterError, LocalCluster
    from kafkalike.dashboard.server import serve

    if not 0 <= args.port <= 65535:
        return _err(f"--port {args.port}: not a TCP port (0-65535)")
    if not 0.1 <= args.interval <= 60:
        return _err(f"--interval {args.interval}: between 0.1 and 60 seconds")
    try:
        address = ipaddress.ip_address(args.bind)
    except ValueError:
        return _err(f"--bind {args.bind!r}: not an IP address")
    try:
        cluster = LocalCluster.load(args.dir)
    except ClusterError as exc:
        return _err(f"{exc}; start one with: kafkalike cluster up --dir {args.dir}")
    if not address.is_loopback:
        print(f"kafkalike dashboard: WARNING: listening on {args.bind}: anyone who reaches it can kill brokers",
              file=sys.stderr)
    logs.configure(fmt=args.log_format, level=logging.WARNING)

    def ready(urls: list[str]) -> None:
        for url in urls:
            print(f"dashboard: {url} (cluster {cluster.base_dir})", flush=True)

    try:
        trio.run(lambda: serve(cluster, bind=args.bind, port=args.port, poll_interval_s=args.interval,
                               on_ready=ready))
    except OSError as exc:
        return _err(f"cannot listen on {args.bind}:{args.port}: {exc}")
    return 0
