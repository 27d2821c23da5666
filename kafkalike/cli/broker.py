"""``kafkalike broker start --config server.properties | --config-from-env [--override key=value ...]``
and ``kafkalike broker check`` (a container healthcheck: is this broker in its own Metadata?)."""

from __future__ import annotations

import argparse
import sys

EXAMPLE = """example:
  kafkalike broker start --config server.properties --override broker.id=2 \\
      --override listeners=PLAINTEXT://127.0.0.2:9092
  KAFKA_CFG_BROKER_ID=1 KAFKA_CFG_ZOOKEEPER_CONNECT=zk1:2181 kafkalike broker start --config-from-env
      (KAFKA_CFG_* variables: kafkalike/cluster/env_config.py, compose/README.md)
  kafkalike broker check --bootstrap-server 127.0.0.1:9092 --broker-id 1"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("broker", help="run one broker process",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    bsub = p.add_subparsers(dest="broker_command", metavar="ACTION", required=True)
    start = bsub.add_parser("start", help="start a broker in the foreground (SIGTERM stops it)",
                            epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = start.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="server.properties file (Kafka's format)")
    source.add_argument("--config-from-env", action="store_true",
                        help="properties from KAFKA_CFG_* environment variables "
                             "(KAFKA_CFG_ZOOKEEPER_CONNECT -> zookeeper.connect)")
    start.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                       help="override one property (repeatable)")
    start.set_defaults(func=_start)
    check = bsub.add_parser("check", help="exit 0 if the broker answers Metadata listing itself (healthcheck)",
                            epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("--bootstrap-server", default="127.0.0.1:9092", metavar="HOST:PORT")
    check.add_argument("--broker-id", type=int, default=None,
                       help="the id that must be registered (default: any broker answering will do)")
    check.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    check.set_defaults(func=_check)


def _start(args: argparse.Namespace) -> int:
    import trio

    from kafkalike import logs
    from kafkalike.broker.kafka_config import ConfigError, KafkaConfig
    from kafkalike.broker.kafka_server import run_broker

    try:
        if args.config_from_env:
            import os

            from kafkalike.cluster.env_config import config_from_env

            config = config_from_env(os.environ, args.override)
        else:
            config = KafkaConfig.from_file(args.config, args.override)
    except ConfigError as exc:
        print(f"kafkalike broker: {exc}", file=sys.stderr)
        return 2
    # a KRaft node's lines carry node_id (its events use broker_id for the brokers they concern)
    ids = {"node_id": config.node_id} if config.process_roles else {"broker_id": config.broker_id}
    logs.configure(fmt=args.log_format, **ids)
    if config.process_roles == frozenset({"broker", "controller"}):  # a combined KRaft node (issue 21)
        from kafkalike.broker.kafka_raft_server import run_kafka_raft_server

        return trio.run(run_kafka_raft_server, config)
    if config.process_roles == frozenset({"broker"}):  # a KRaft broker (issue 21): BrokerServer
        from kafkalike.broker.broker_server import run_kraft_broker

        return trio.run(run_kraft_broker, config)
    return trio.run(run_broker, config)


def _check(args: argparse.Namespace) -> int:
    """0: Metadata answered (and lists ``--broker-id``); 1 otherwise, with the reason."""
    import trio

    from kafkalike.client.kafka_client import KafkaClient

    async def probe() -> str | None:
        with trio.move_on_after(args.timeout):
            async with KafkaClient(args.bootstrap_server, client_id="kafkalike-check", retries=0,
                                   request_timeout_ms=args.timeout * 1000,
                                   connect_timeout_ms=args.timeout * 1000) as client:
                ids = sorted(client.cluster.brokers)
                if args.broker_id is not None and args.broker_id not in ids:
                    return f"broker {args.broker_id} is not in the Metadata's brokers {ids}"
                return None
        return f"no Metadata answer within {args.timeout:g}s"

    try:
        problem = trio.run(probe)
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        print(f"kafkalike broker check: {args.bootstrap_server}: {problem}", file=sys.stderr)
        return 1
    print(f"{args.bootstrap_server}: ok")
    return 0
