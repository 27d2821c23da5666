"""``kafkalike console-producer`` and ``kafkalike console-consumer``: Kafka's console tools
(kafka-console-producer.sh / kafka-console-consumer.sh) on kafkalike's trio client.

Flags and properties follow Kafka's tools: ``--property parse.key=true --property
key.separator=:`` for the producer (one record a stdin line), ``--producer-property acks=all``;
``--from-beginning``, ``--max-messages N``, ``--timeout-ms``, ``--partition``, ``--offset``,
``--property print.key=true|print.offset=true|print.partition=true|print.timestamp=true
key.separator=...`` for the consumer. Without ``--group`` the consumer reads every partition
of the topic directly (assign, nothing committed). With ``--group G`` it is a member of
consumer group G (kafkalike.client.group_consumer): it shares the partitions with the
group's other members and commits what it printed (auto-commit and on exit), so a second
run continues where the first stopped; as in kafka-console-consumer.sh, ``--from-beginning``
then only applies to partitions the group has no committed offset for, and ``--partition`` /
``--offset`` cannot be combined with ``--group``. ``--isolation-level read_committed`` reads
only committed transactional records (up to the last stable offset, aborted transactions
dropped; KIP-98); the default is read_uncommitted, as in Kafka's tool.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

PRODUCER_EXAMPLE = """examples:
  kafkalike console-producer --bootstrap-server localhost:9092 --topic logs
  kafkalike console-producer --bootstrap-server localhost:9092 --topic logs \\
      --property parse.key=true --property key.separator=: --producer-property acks=all"""

CONSUMER_EXAMPLE = """examples:
  kafkalike console-consumer --bootstrap-server localhost:9092 --topic logs --from-beginning
  kafkalike console-consumer --bootstrap-server localhost:9092 --topic logs --from-beginning \\
      --max-messages 10 --property print.key=true --property print.offset=true
  kafkalike console-consumer --bootstrap-server localhost:9092 --topic logs --group audit \\
      --from-beginning --max-messages 10"""


def _props(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"kafkalike: invalid {what} {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def _unescape(sep: str) -> str:
    return sep.encode().decode("unicode_escape")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("console-producer", help="produce stdin lines to a topic (kafka-console-producer.sh)",
                       epilog=PRODUCER_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,...]")
    p.add_argument("--topic", required=True)
    p.add_argument("--property", action="append", default=[], metavar="KEY=VALUE",
                   help="parse.key=true|false, key.separator=SEP (default TAB), ignore.error=true|false")
    p.add_argument("--producer-property", action="append", default=[], metavar="KEY=VALUE",
                   help="acks=0|1|all, compression.type=none|gzip|snappy|lz4|zstd, linger.ms=N")
    p.add_argument("--compression-codec", default=None, help="none, gzip, snappy, lz4 or zstd")
    p.add_argument("--request-required-acks", default=None, help="acks: 0, 1, -1 or all (default -1, as Kafka's tool)")
    p.set_defaults(func=_produce)

    c = sub.add_parser("console-consumer", help="print a topic's records (kafka-console-consumer.sh)",
                       epilog=CONSUMER_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,...]")
    c.add_argument("--topic", required=True)
    c.add_argument("--from-beginning", action="store_true")
    c.add_argument("--group", default=None, metavar="G",
                   help="consume as a member of consumer group G, committing offsets")
    c.add_argument("--partition", type=int, default=None, help="only this partition")
    c.add_argument("--offset", default=None, help="earliest, latest or a number (needs --partition)")
    c.add_argument("--max-messages", type=int, default=None)
    c.add_argument("--timeout-ms", type=int, default=None, help="exit after this long without a record")
    c.add_argument("--isolation-level", default="read_uncommitted", choices=("read_uncommitted", "read_committed"),
                   help="read_committed to filter out transactional records that are not committed, "
                        "read_uncommitted to read all records (default: read_uncommitted, as Kafka's tool)")
    c.add_argument("--property", action="append", default=[], metavar="KEY=VALUE",
                   help="print.key, print.offset, print.partition, print.timestamp, print.headers, "
                        "key.separator, line.separator")
    c.set_defaults(func=_consume)


def _produce(args: argparse.Namespace) -> int:
    import trio

    from kafkalike.client.errors import ClientError

    props = _props(args.property, "--property")
    pprops = _props(args.producer_property, "--producer-property")
    acks = args.request_required_acks or pprops.get("acks", "-1")
    codec = args.compression_codec or pprops.get("compression.type", "none")
    parse_key = props.get("parse.key", "false").lower() == "true"
    sep = _unescape(props.get("key.separator", "\t"))

    async def run() -> int:
        from kafkalike.client.producer import KafkaProducer

        servers = [s for s in args.bootstrap_server.split(",") if s]
        sent = 0
        async with KafkaProducer(servers, acks="all" if acks in ("all", "-1") else int(acks),
                                 compression_type=codec, linger_ms=float(pprops.get("linger.ms", 5)),
                                 client_id="console-producer") as producer:
            pending = []
            for raw in sys.stdin.buffer:
                line = raw.rstrip(b"\r\n")
                key = None
                if parse_key:
                    bsep = sep.encode()
                    if bsep not in line:
                        print(f"kafkalike console-producer: no key separator {sep!r} in line {sent + 1}",
                              file=sys.stderr)
                        return 1
                    key, line = line.split(bsep, 1)
                pending.append(await producer.enqueue(args.topic, line, key=key))
                sent += 1
            for p in pending:
                await p.wait()
        return 0

    try:
        return trio.run(run)
    except ClientError as exc:
        print(f"kafkalike console-producer: {exc}", file=sys.stderr)
        return 1


def _consume(args: argparse.Namespace) -> int:
    import trio

    from kafkalike.client.errors import ClientError

    props = _props(args.property, "--property")
    flag = lambda name: props.get(name, "false").lower() == "true"  # noqa: E731
    sep = _unescape(props.get("key.separator", "\t"))
    line_sep = _unescape(props.get("line.separator", "\n"))
    isolation = 1 if args.isolation_level == "read_committed" else 0  # Fetch isolation_level (KIP-98)

    def render(r: Any) -> str:
        parts = []
        if flag("print.timestamp"):
            kind = "CreateTime" if r.timestamp_type == 0 else "LogAppendTime"
            parts.append(f"{kind}:{r.timestamp}")
        if flag("print.partition"):
            parts.append(f"Partition:{r.partition}")
        if flag("print.offset"):
            parts.append(f"Offset:{r.offset}")
        if flag("print.headers"):
            hs = ",".join(f"{k}:{(v or b'').decode(errors='replace')}" for k, v in r.headers)
            parts.append(hs or "NO_HEADERS")
        if flag("print.key"):
            parts.append("null" if r.key is None else r.key.decode(errors="replace"))
        parts.append("null" if r.value is None else r.value.decode(errors="replace"))
        return sep.join(parts)

    async def run() -> int:
        from kafkalike.client.consumer import KafkaConsumer
        from kafkalike.client.cluster import TopicPartition

        servers = [s for s in args.bootstrap_server.split(",") if s]
        reset = "earliest" if args.from_beginning or args.offset == "earliest" else "latest"
        shown = 0
        if args.group is not None:
            return await run_group(servers, reset)
        async with KafkaConsumer(servers, auto_offset_reset=reset, client_id="console-consumer",
                                 isolation_level=isolation) as consumer:
            meta = await consumer.client.refresh_metadata([args.topic])
            info = meta.topics.get(args.topic)
            if info is None or not info.partitions:
                print(f"kafkalike console-consumer: unknown topic {args.topic!r}", file=sys.stderr)
                return 1
            parts = sorted(info.partitions) if args.partition is None else [args.partition]
            consumer.assign([TopicPartition(args.topic, p) for p in parts])
            if args.offset not in (None, "earliest", "latest"):
                if args.partition is None:
                    print("kafkalike console-consumer: --offset N needs --partition", file=sys.stderr)
                    return 2
                consumer.seek(TopicPartition(args.topic, args.partition), int(args.offset))
            idle = None if args.timeout_ms is None else args.timeout_ms / 1000
            while args.max_messages is None or shown < args.max_messages:
                with trio.move_on_after(idle if idle is not None else float("inf")) as scope:
                    records = []
                    while not records:
                        records = await consumer.poll()
                if scope.cancelled_caught:
                    break
                for r in records:
                    sys.stdout.write(render(r) + line_sep)
                    shown += 1
                    if args.max_messages is not None and shown >= args.max_messages:
                        break
                sys.stdout.flush()
        print(f"Processed a total of {shown} messages", file=sys.stderr)
        return 0

    async def run_group(servers: list[str], reset: str) -> int:
        from kafkalike.client.group_consumer import KafkaGroupConsumer

        shown = 0
        async with KafkaGroupConsumer(servers, args.group, [args.topic], auto_offset_reset=reset,
                                      client_id="console-consumer", isolation_level=isolation) as consumer:
            meta = await consumer.client.refresh_metadata([args.topic])
            info = meta.topics.get(args.topic)
            if info is None or not info.partitions:
                print(f"kafkalike console-consumer: unknown topic {args.topic!r}", file=sys.stderr)
                return 1
            idle = None if args.timeout_ms is None else args.timeout_ms / 1000
            while args.max_messages is None or shown < args.max_messages:
                left = None if args.max_messages is None else args.max_messages - shown
                with trio.move_on_after(idle if idle is not None else float("inf")) as scope:
                    records = []
                    while not records:
                        records = await consumer.poll(max_records=left)
                if scope.cancelled_caught:
                    break
                for r in records:  # poll() returned at most `left`: all are printed, then committed
                    sys.stdout.write(render(r) + line_sep)
                    shown += 1
                sys.stdout.flush()
        print(f"Processed a total of {shown} messages", file=sys.stderr)
        return 0

    if args.group is not None and (args.partition is not None or args.offset is not None):
        print("kafkalike console-consumer: --group cannot be combined with --partition or --offset",
              file=sys.stderr)
        return 2
    try:
        return trio.run(run)
    except ClientError as exc:
        print(f"kafkalike console-consumer: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
