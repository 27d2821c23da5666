"""``kafkalike schema-registry``: a schema registry speaking Confluent's REST API.

    kafkalike schema-registry --bootstrap-server B [--port 8081] [--bind 127.0.0.1] [--topic _schemas]

Stores everything in the compacted topic (default ``_schemas``, created when missing) of the
cluster at B, so it survives restarts and several instances can share it. Prints one line
``schema-registry: http://HOST:PORT`` when it is ready and serves until interrupted. Thin: the
work is in kafkalike.schema_registry.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``schema-registry`` sub-command to the ``kafkalike`` parser."""
    p = subparsers.add_parser(
        "schema-registry", help="a schema registry (Confluent's REST API) storing in the _schemas topic",
        epilog="examples:\n"
               "  kafkalike schema-registry --bootstrap-server localhost:9092            # http://127.0.0.1:8081\n"
               "  kafkalike schema-registry --bootstrap-server localhost:9092 --port 0   # any free port",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap-server", required=True, help="the cluster holding the schemas topic")
    p.add_argument("--port", type=int, default=8081, help="TCP port (default 8081, Confluent's; 0 = any free port)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--topic", default="_schemas", help="the compacted topic storing schemas (default _schemas)")
    p.set_defaults(func=_main)


def _err(msg: str) -> int:
    print(f"kafkalike schema-registry: {msg}", file=sys.stderr)
    return 1


def _main(args: argparse.Namespace) -> int:
    import logging

    import trio

    from kafkalike import logs
    from kafkalike.client import ClientError
    from kafkalike.schema_registry.server import serve

    if not 0 <= args.port <= 65535:
        return _err(f"--port {args.port}: not a TCP port (0-65535)")
    try:
        ipaddress.ip_address(args.bind)
    except ValueError:
        return _err(f"--bind {args.bind!r}: not an IP address")
    logs.configure(fmt=args.log_format, level=logging.INFO)

    def ready(urls: list[str]) -> None:
        for url in urls:
            print(f"schema-registry: {url}", flush=True)

    try:
        trio.run(lambda: serve(args.bootstrap_server, bind=args.bind, port=args.port, topic=args.topic,
                               on_ready=ready))
    except OSError as exc:
        return _err(f"cannot listen on {args.bind}:{args.port}: {exc}")
    except (ClientError, RuntimeError) as exc:
        return _err(f"cannot use the cluster at {args.bootstrap_server}: {exc}")
    return 0
