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


def keep_test_libraries_out() -> None:
    """Make ``import hypothesis`` fail in this process unless hypothesis is already loaded.

    kio imports ``hypothesis.strategies`` when it is installed (kio/static/_phantom.py,
    optional strategies for its types), and importing hypothesis runs trio's hypothesis
    plugin (trio/_core/_run.py ``_hypothesis_plugin_setup``), which switches trio's scheduler
    to its deterministic test mode (every batch of runnable tasks sorted and shuffled with a
    seeded random generator) and costs each process 14 MiB of RSS (67 against 53 MiB measured
    after importing the broker's modules). A broker, controller or tool is not a test: in a
    venv with the test extras every broker ran that way. kio catches the ImportError and
    goes without its strategies. In a process that has already imported hypothesis (pytest
    calling ``main()``), nothing changes."""
    sys.modules.setdefault("hypothesis", None)  # type: ignore[arg-type]  # None in sys.modules: ImportError


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen sub-command; returns the process exit code."""
    keep_test_libraries_out()
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
