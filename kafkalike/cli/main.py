"""``kafkalike`` console entry point: one argparse parser, one sub-command module per tool.

Each module named in COMMANDS exposes ``register(subparsers)``, which adds its sub-command
and sets ``func`` (a callable taking the parsed args and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, in the order ``kafkalike --help`` lists them.
COMMANDS = [
    "kafkalike.cli.zk",
    "kafkalike.cli.broker",
    "kafkalike.cli.cluster",
    "kafkalike.cli.demo",
    "kafkalike.cli.topics",
    "kafkalike.cli.console",
    "kafkalike.cli.protocol",
    "kafkalike.cli.consumer_groups",
    "kafkalike.cli.delete_records",
    "kafkalike.cli.leader_election",
    "kafkalike.cli.reassign_partitions",
    "kafkalike.cli.transactions",
    "kafkalike.cli.log_dirs",
    "kafkalike.cli.configs",
    "kafkalike.cli.acls",
    "kafkalike.cli.chaos",
    "kafkalike.cli.bench",
    "kafkalike.cli.compare",
    "kafkalike.cli.dashboard",
    "kafkalike.cli.schema_registry",
    "kafkalike.cli.storage",

]


def build_parser() -> argparse.ArgumentParser:
    """The whole ``kafkalike`` parser, with every sub-command in COMMANDS registered."""
    parser = argparse.ArgumentParser(
        prog="kafkalike",
        description="Apache Kafka's ZooKeeper-era architecture in Python on trio.",
    )
    parser.add_argument(
        "--log-format", choices=["console", "json"], default="console",
        help="log line format: human key=value lines (default) or JSON lines",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen sub-command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import logging

    from kafkalike import logs

    # tools log warnings only; long-running processes (broker start) raise this to INFO
    logs.configure(fmt=args.log_format, level=logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
