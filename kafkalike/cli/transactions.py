"""``kafkalike transactions``: kafka-transactions.sh over the wire (Kafka 3.9's
TransactionsCommand, KIP-664), with its sub-commands, flags and table output::

    kafkalike transactions --bootstrap-server localhost:9092 list
    kafkalike transactions --bootstrap-server localhost:9092 describe --transactional-id T
    kafkalike transactions --bootstrap-server localhost:9092 describe-producers --topic T --partition P
                                                            [--broker-id B]

Tables are printed as Kafka's prettyPrintTable does: every column padded with spaces to its
widest cell (header included) and followed by one tab, one row a line, the header first.

- ``list`` (ListTransactions to every broker): TransactionalId, Coordinator, ProducerId,
  TransactionState, one row per transaction, brokers in id order.
- ``describe`` (FindCoordinator key_type 1, then DescribeTransactions to the coordinator):
  CoordinatorId, TransactionalId, ProducerId, ProducerEpoch, TransactionState,
  TransactionTimeoutMs, CurrentTransactionStartTimeMs, TransactionDurationMs (now - start;
  both "None" without an open transaction), TopicPartitions (``topic-partition`` joined by
  commas).
- ``describe-producers`` (DescribeProducers to the leader, or ``--broker-id``): ProducerId,
  ProducerEpoch, LatestCoordinatorEpoch (-1 when unknown), LastSequence, LastTimestamp,
  CurrentTransactionStartOffset ("None" without an open transaction).

Failures print Kafka's line on stderr and exit 1, e.g. ``Failed to describe transaction state
of transactional-id `T`: The transactionalId could not be found. Enable debug logging for
additional detail.`` ``abort`` and ``find-hanging`` are not implemented (docs/transactions.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

LIST_HEADERS = ("TransactionalId", "Coordinator", "ProducerId", "TransactionState")
DESCRIBE_HEADERS = ("CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
                    "TransactionTimeoutMs", "CurrentTransactionStartTimeMs", "TransactionDurationMs",
                    "TopicPartitions")
PRODUCERS_HEADERS = ("ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence", "LastTimestamp",
                     "CurrentTransactionStartOffset")

# Kafka's default exception messages (Errors.java) for what these requests commonly answer
JAVA_MESSAGES = {
    "transactional_id_not_found": "The transactionalId could not be found",
    "coordinator_not_available": "The coordinator is not available.",
    "not_coordinator": "This is not the correct coordinator.",
    "coordinator_load_in_progress": "The coordinator is loading and hence can't process requests.",
    "unknown_topic_or_partition": "This server does not host this topic-partition.",
    "not_leader_or_follower": "For requests intended only for the leader, this error indicates that the "
                              "broker is not the current leader. For requests intended for any replica, this "
                              "error indicates that the broker is not a replica of the topic partition.",
    "invalid_request": "This most likely occurs because of a request being malformed by the client library or "
                       "the message was sent to an incompatible broker. See the broker logs for more details.",
}


class CommandError(Exception):
    """Kafka's printErrorAndExit line: goes to stderr, exit code 1."""


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Kafka's TransactionsCommand.prettyPrintTable: each cell left-aligned and padded to its
    column's widest cell, then a tab; lines end with a newline."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    return "".join("".join(cell.ljust(widths[i]) + "\t" for i, cell in enumerate(row)) + "\n"
                   for row in [list(headers), *rows])


def _failure(what: str, exc: BaseException) -> CommandError:
    from kafkalike.client.errors import KafkaError

    if isinstance(exc, KafkaError):
        text = JAVA_MESSAGES.get(exc.error_code.name, exc.message or str(exc))
    else:
        text = str(exc)
    return CommandError(f"{what}: {text}. Enable debug logging for additional detail.")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("transactions", help="list and describe transactions and producers (kafka-transactions.sh)",
                       description="This tool is used to analyze the transactional state of producers in the "
                                   "cluster. It can be used to detect and recover from hanging transactions.")
    p.add_argument("--bootstrap-server", required=True, metavar="host:port",
                   help="hostname and port for the broker to connect to, in the form `host:port` "
                        "(multiple comma-separated entries can be given)")
    cmds = p.add_subparsers(dest="transactions_command", metavar="COMMAND", title="commands")
    cmds.required = True
    cmds.add_parser("list", help="list transactions")
    d = cmds.add_parser("describe", help="describe the state of an active transactional-id",
                        description="Describe the state of an active transactional-id.")
    d.add_argument("--transactional-id", required=True, help="transactional id")
    dp = cmds.add_parser("describe-producers", help="describe the states of active producers for a topic partition")
    dp.add_argument("--broker-id", type=int, default=None,
                    help="optional broker id to describe the producer state on a specific replica")
    dp.add_argument("--topic", required=True, help="topic name")
    dp.add_argument("--partition", type=int, required=True, help="partition number")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    import trio

    try:
        out = trio.run(_run, args)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 1
    sys.stdout.write(out)
    return 0


async def _run(args: argparse.Namespace) -> str:
    from kafkalike.client.admin import AdminClient
    from kafkalike.client.cluster import TopicPartition
    from kafkalike.client.errors import ClientError, KafkaError

    servers = [s for s in args.bootstrap_server.split(",") if s]
    command = args.transactions_command
    try:
        async with AdminClient(servers, client_id="kafkalike-transactions") as admin:
            if command == "list":
                try:
                    by_broker = await admin.list_transactions()
                except ClientError as exc:
                    raise _failure("Failed to list transactions", exc) from None
                return list_table(by_broker)
            if command == "describe":
                tid = args.transactional_id
                try:
                    result: Any = (await admin.describe_transactions([tid]))[tid]
                except ClientError as exc:
                    result = exc
                if isinstance(result, (KafkaError, ClientError)):
                    raise _failure(f"Failed to describe transaction state of transactional-id `{tid}`", result)
                return describe_table(tid, result, int(time.time() * 1000))
            tp = TopicPartition(args.topic, args.partition)
            try:
                producers = await admin.describe_producers(tp, broker_id=args.broker_id)
            except ClientError as exc:
                where = "leader" if args.broker_id is None else f"broker {args.broker_id}"
                raise _failure(f"Failed to describe producers for partition {tp.topic}-{tp.partition} on {where}",
                               exc) from None
            return producers_table(producers)
    except CommandError:
        raise
    except (ClientError, OSError) as exc:
        raise CommandError(f"kafkalike transactions: {exc}") from None


def list_table(by_broker: dict[int, list[Any]]) -> str:
    """``list``'s table from {broker id: [TransactionListing]}."""
    rows = [(t.transactional_id, str(broker), str(t.producer_id), t.state)
            for broker in sorted(by_broker) for t in by_broker[broker]]
    return format_table(LIST_HEADERS, rows)


def describe_table(transactional_id: str, d: Any, now_ms: int) -> str:
    """``describe``'s one-row table from a TransactionDescription at wall time ``now_ms``."""
    start = d.transaction_start_time_ms
    started = start is not None and start >= 0
    row = (str(d.coordinator_id), transactional_id, str(d.producer_id), str(d.producer_epoch), d.state,
           str(d.transaction_timeout_ms), str(start) if started else "None",
           str(now_ms - start) if started else "None",
           ",".join(f"{tp.topic}-{tp.partition}" for tp in d.topic_partitions))
    return format_table(DESCRIBE_HEADERS, [row])


def producers_table(producers: Sequence[Any]) -> str:
    """``describe-producers``' table from [ProducerState]."""
    rows = [(str(p.producer_id), str(p.producer_epoch), str(p.coordinator_epoch if p.coordinator_epoch >= 0 else -1),
             str(p.last_sequence), str(p.last_timestamp),
             str(p.current_txn_start_offset) if p.current_txn_start_offset >= 0 else "None")
            for p in producers]
    return format_table(PRODUCERS_HEADERS, rows)
