"""``kafkalike topics``: kafka-topics.sh over the wire (flags and output as Kafka 3.x prints them).

Talks to the cluster with kafkalike's own trio client (CreateTopics, DeleteTopics,
CreatePartitions, Metadata, DescribeConfigs). Output lines follow Kafka's TopicCommand:
``Created topic T.``, the ``Topic: T<TAB>TopicId: ..<TAB>PartitionCount: ..`` line and the
``<TAB>Topic: T<TAB>Partition: 0<TAB>Leader: 1<TAB>Replicas: 1,2,3<TAB>Isr: 1,2,3`` lines.
kafkalike leaves out Kafka 3.9's KRaft-only ``Elr`` / ``LastKnownElr`` columns (a ZooKeeper
cluster has no eligible leader replicas). Errors are one line on stderr, exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from typing import Any

EXAMPLE = """examples:
  kafkalike topics --bootstrap-server localhost:9092 --create --topic logs --partitions 3 --replication-factor 1
  kafkalike topics --bootstrap-server localhost:9092 --list
  kafkalike topics --bootstrap-server localhost:9092 --describe --topic logs
  kafkalike topics --bootstrap-server localhost:9092 --describe --under-replicated-partitions
  kafkalike topics --bootstrap-server localhost:9092 --alter --topic logs --partitions 6
  kafkalike topics --bootstrap-server localhost:9092 --delete --topic logs"""


class CommandError(Exception):
    """One line for stderr, as Kafka's 'Error while executing topic command : ...'."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("topics", help="create, list, describe, alter and delete topics (kafka-topics.sh)",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,...]")
    action = p.add_mutually_exclusive_group(required=True)
    for name in ("create", "list", "describe", "delete", "alter"):
        action.add_argument(f"--{name}", action="store_true")
    p.add_argument("--topic", help="topic name")
    p.add_argument("--partitions", type=int)
    p.add_argument("--replication-factor", type=int)
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                   help="topic config override for --create (repeatable)")
    p.add_argument("--if-not-exists", action="store_true")
    p.add_argument("--if-exists", action="store_true")
    p.add_argument("--exclude-internal", action="store_true")
    p.add_argument("--under-replicated-partitions", action="store_true")
    p.add_argument("--unavailable-partitions", action="store_true")
    p.add_argument("--under-min-isr-partitions", action="store_true")
    p.add_argument("--at-min-isr-partitions", action="store_true")
    p.add_argument("--topics-with-overrides", action="store_true")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    import trio

    from kafkalike.client.errors import ClientError

    try:
        trio.run(_run, args)
    except CommandError as exc:
        print(f"Error while executing topic command : {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"kafkalike topics: {exc} (bootstrap server {args.bootstrap_server})", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader of our stdout is gone (`kafkalike topics --list | grep -q NAME`): not a broker
        # error; kafka-topics.sh's PrintStream ignores it too. Point stdout at /dev/null so that
        # the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        print(f"kafkalike topics: no broker reachable at {args.bootstrap_server}: {exc}", file=sys.stderr)
        return 1
    return 0


def _topic_id(value: Any) -> str:
    """Kafka prints topic ids as URL-safe base64 without padding (Uuid.toString)."""
    from kafkalike.coordination.zk_data import uuid_to_base64

    if value is None:
        return ""
    try:
        u = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return str(value)
    return "" if u.int == 0 else uuid_to_base64(u)


async def _run(args: argparse.Namespace) -> None:
    from kafkalike.client.admin import RESOURCE_TOPIC, AdminClient, NewTopic
    from kafkalike.client.errors import KafkaError
    from kafkalike.protocol.errors import ErrorCode

    servers = [s.strip() for s in args.bootstrap_server.split(",") if s.strip()]
    async with AdminClient(servers, client_id="kafkalike-topics") as admin:
        if args.create:
            if not args.topic:
                raise CommandError("--topic is required with --create")
            configs = {}
            for item in args.config:
                if "=" not in item:
                    raise CommandError(f"Invalid topic config: all configs to be added must be in the format \"key=val\": {item!r}")
                k, v = item.split("=", 1)
                configs[k] = v
            new = NewTopic(args.topic, args.partitions or -1, args.replication_factor or -1, configs=configs)
            try:
                await admin.create_topics([new])
            except KafkaError as exc:  # TopicCommand prints the broker's message when there is one
                if exc.error_code == ErrorCode.topic_already_exists and args.if_not_exists:
                    return
                raise CommandError(exc.message or _describe_error(exc.error_code, args.topic)) from None
            print(f"Created topic {args.topic}.")
            return

        topics = await admin.describe_topics(None)
        names = sorted(n for n, t in topics.items()
                       if not (args.exclude_internal and t.is_internal)
                       and (args.topic is None or _matches(args.topic, n)))
        if args.topic and not names and not args.if_exists and not args.list:
            raise CommandError(f"Topic '{args.topic}' does not exist as expected")

        if args.list:
            if names:
                print("\n".join(names))
            return
        if args.delete:
            if not names:
                return
            await admin.delete_topics(names)
            return
        if args.alter:
            if args.partitions is None:
                raise CommandError("--partitions is required with --alter")
            await admin.create_partitions({n: args.partitions for n in names})
            return

        # --describe
        live = set((await admin.describe_cluster()).brokers)
        partition_filter = (args.under_replicated_partitions or args.unavailable_partitions
                            or args.under_min_isr_partitions or args.at_min_isr_partitions)
        for name in names:
            info = topics[name]
            try:
                configs = await admin.describe_configs(RESOURCE_TOPIC, name)
            except KafkaError:
                configs = {}
            overrides = ",".join(f"{c.name}={c.value}" for c in sorted(configs.values(), key=lambda c: c.name)
                                 if not c.is_default and c.source not in (5, 4))
            min_isr = int(configs["min.insync.replicas"].value) if "min.insync.replicas" in configs \
                and configs["min.insync.replicas"].value else 1
            parts = [info.partitions[i] for i in sorted(info.partitions)]
            rf = len(parts[0].replicas) if parts else 0
            if args.topics_with_overrides and not overrides:
                continue
            if not partition_filter:
                tid = _topic_id(info.topic_id)
                print(f"Topic: {name}" + (f"\tTopicId: {tid}" if tid else "")
                      + f"\tPartitionCount: {len(parts)}\tReplicationFactor: {rf}\tConfigs: {overrides}")
            if args.topics_with_overrides:
                continue
            for p in parts:
                has_leader = p.leader >= 0
                show = not partition_filter or (
                    (args.under_replicated_partitions and len(p.isr) < len(p.replicas))
                    or (args.unavailable_partitions and (not has_leader or p.leader not in live))
                    or (args.under_min_isr_partitions and (not has_leader or len(p.isr) < min_isr))
                    or (args.at_min_isr_partitions and len(p.isr) == min_isr))
                if show:
                    print(f"\tTopic: {name}\tPartition: {p.partition}\tLeader: {p.leader if has_leader else 'none'}"
                          f"\tReplicas: {','.join(map(str, p.replicas))}\tIsr: {','.join(map(str, p.isr))}")


def _matches(pattern: str, name: str) -> bool:
    """--topic takes a name or a Java regex (kafka-topics.sh whitelist); '.*' style regexes only."""
    import re

    if pattern == name:
        return True
    if any(ch in pattern for ch in ".*+?[](){}|^$\\"):
        try:
            return re.fullmatch(pattern, name) is not None
        except re.error:
            return False
    return False


def _describe_error(code: Any, topic: str) -> str:
    from kafkalike.protocol.errors import ErrorCode

    messages = {
        ErrorCode.topic_already_exists: f"Topic '{topic}' already exists.",
        ErrorCode.invalid_replication_factor: "Replication factor is larger than the number of available brokers or invalid.",
        ErrorCode.invalid_partitions: "Number of partitions must be larger than 0.",
        ErrorCode.invalid_topic_exception: f"Topic name '{topic}' is illegal.",
    }
    return messages.get(code, f"{code.name.upper()} for topic '{topic}'")
