"""``kafkalike broker start --config server.properties [--override key=value ...]``."""

from __future__ import annotations

import argparse
import sys

EXAMPLE = """example:
  kafkalike broker start --config server.properties --override broker.id=2 \\
      --override listeners=PLAINTEXT://127.0.0.2:9092"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("broker", help="run one broker process",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    bsub = p.add_subparsers(dest="broker_command", metavar="ACTION", required=True)
    start = bsub.add_parser("start", help="start a broker in the foreground (SIGTERM stops it)",
                            epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    start.add_argument("--config", required=True, help="server.properties file (Kafka's format)")
    start.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                       help="override one property (repeatable)")
    start.set_defaults(func=_start)


def _start(args: argparse.Namespace) -> int:
    import trio

    from kafkalike import logs
    from kafkalike.broker.kafka_config import ConfigError, KafkaConfig
    from kafkalike.broker.kafka_server import run_broker

    try:
        config = KafkaConfig.from_file(args.config, args.override)
    except ConfigError as exc:
        print(f"kafkalike broker: {exc}", file=sys.stderr)
        return 2
    logs.configure(fmt=args.log_format, broker_id=config.broker_id)
    return trio.run(run_broker, config)
