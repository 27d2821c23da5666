"""``kafkalike leader-election``: kafka-leader-election.sh over the wire (Kafka's
LeaderElectionCommand, KIP-460: flags, JSON file format and output as Kafka 3.x prints them).

    kafkalike leader-election --bootstrap-server localhost:9092 --election-type preferred \\
        (--all-topic-partitions | --topic T --partition P | --path-to-json-file F)

One ElectLeaders request to the controller (kafkalike's trio client; NOT_CONTROLLER refreshes
Metadata and retries, as Kafka's admin client does). The JSON file is Kafka's:
``{"partitions": [{"topic": "foo", "partition": 1}]}``. Output, as Kafka's::

    Successfully completed leader election (PREFERRED) for partitions t-0, t-1
    Valid replica already elected for partitions t-2
    Error completing leader election (PREFERRED) for partition: t-3: org.apache.kafka...

Any failed partition makes the exit code 1 ("Error: N replica(s) could not be elected" on
stderr), as Kafka's AdminCommandFailedException; bad flags or a bad JSON file: one line on
stderr, exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# Kafka's exception class (Errors.java) for the errors ElectLeaders answers
_JAVA_ERRORS = {
    "preferred_leader_not_available": "PreferredLeaderNotAvailableException",
    "eligible_leaders_not_available": "EligibleLeadersNotAvailableException",
    "unknown_topic_or_partition": "UnknownTopicOrPartitionException",
    "invalid_topic_exception": "InvalidTopicException",
    "request_timed_out": "TimeoutException",
    "not_controller": "NotControllerException",
    "election_not_needed": "ElectionNotNeededException",
}


class CommandError(Exception):
    """One line for stderr (Kafka's AdminOperationException / parse errors)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("leader-election", help="elect preferred or unclean leaders (kafka-leader-election.sh)")
    p.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,...]",
                   help="A hostname and port for the broker to connect to. REQUIRED.")
    p.add_argument("--election-type", required=True, type=str.lower, choices=["preferred", "unclean"],
                   help='"preferred" for preferred leader election or "unclean" for unclean leader election')
    p.add_argument("--all-topic-partitions", action="store_true",
                   help="Perform election on all of the topic partitions.")
    p.add_argument("--topic", help="Name of topic for which to perform an election.")
    p.add_argument("--partition", type=int, help="Partition id; REQUIRED if --topic is specified.")
    p.add_argument("--path-to-json-file", metavar="FILE",
                   help='JSON file: {"partitions": [{"topic": "foo", "partition": 1}]}')
    p.add_argument("--timeout-ms", type=int, default=30000,
                   help="how long the controller may take (ms, default 30000: request.timeout.ms)")
    p.set_defaults(func=_main)


def parse_election_json(text: str) -> list[tuple[str, int]]:
    """[(topic, partition)] from Kafka's replica election JSON (LeaderElectionCommand's
    parseReplicaElectionData). Raises CommandError on bad JSON, a missing "partitions" list
    or duplicates ("Replica election data contains duplicate partitions: t-0")."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"Replica election data is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("partitions"), list):
        raise CommandError('Replica election data is missing "partitions" field')
    out: list[tuple[str, int]] = []
    for entry in doc["partitions"]:
        topic = entry.get("topic") if isinstance(entry, dict) else None
        partition = entry.get("partition") if isinstance(entry, dict) else None
        if not isinstance(topic, str) or not isinstance(partition, int) or isinstance(partition, bool):
            raise CommandError(f'Each partition needs a string "topic" and an integer "partition": {entry!r}')
        out.append((topic, partition))
    dups = sorted({f"{t}-{p}" for t, p in out if out.count((t, p)) > 1})
    if dups:
        raise CommandError(f"Replica election data contains duplicate partitions: {','.join(dups)}")
    return out


def java_error(code: int, message: str | None) -> str:
    """How Kafka's tool prints a partition error: the exception class and its message."""
    from kafkalike.protocol.errors import ErrorCode

    name = ErrorCode(code).name
    cls = _JAVA_ERRORS.get(name, "ApiException")
    return f"org.apache.kafka.common.errors.{cls}: {message or name.upper()}"


def _wanted(args: argparse.Namespace) -> list[tuple[str, int]] | None:
    chosen = [bool(args.all_topic_partitions), args.topic is not None, args.path_to_json_file is not None]
    if sum(chosen) != 1:
        raise CommandError("Exactly one of --all-topic-partitions, --topic or --path-to-json-file is required")
    if args.all_topic_partitions:
        return None
    if args.topic is not None:
        if args.partition is None:
            raise CommandError("--partition is required if --topic is specified")
        return [(args.topic, args.partition)]
    try:
        with open(args.path_to_json_file, encoding="utf-8") as f:
            return parse_election_json(f.read())
    except OSError as exc:
        raise CommandError(f"cannot read {args.path_to_json_file}: {exc.strerror}") from None


def _main(args: argparse.Namespace) -> int:
    import trio

    from kafkalike.client.errors import ClientError
    from kafkalike.protocol.errors import ErrorCode

    try:
        wanted = _wanted(args)
    except CommandError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    election_type = 0 if args.election_type == "preferred" else 1
    label = args.election_type.upper()
    try:
        results = trio.run(elect_leaders, args.bootstrap_server, election_type, wanted, args.timeout_ms)
    except ClientError as exc:
        print(f"kafkalike leader-election: {exc} (bootstrap server {args.bootstrap_server})", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"kafkalike leader-election: no broker reachable at {args.bootstrap_server}: {exc}", file=sys.stderr)
        return 1
    succeeded = [tp for tp, (error, _) in results.items() if error == ErrorCode.none]
    noop = [tp for tp, (error, _) in results.items() if error == ErrorCode.election_not_needed]
    failed = {tp: r for tp, r in results.items() if r[0] not in (ErrorCode.none, ErrorCode.election_not_needed)}
    if succeeded:
        print(f"Successfully completed leader election ({label}) for partitions {', '.join(succeeded)}")
    if noop:
        print(f"Valid replica already elected for partitions {', '.join(noop)}")
    for tp, (error, message) in failed.items():
        print(f"Error completing leader election ({label}) for partition: {tp}: {java_error(error, message)}")
    if failed:
        print(f"Error: {len(failed)} replica(s) could not be elected", file=sys.stderr)
        return 1
    return 0


async def elect_leaders(bootstrap: str, election_type: int, wanted: list[tuple[str, int]] | None,
                        timeout_ms: int, attempts: int = 3) -> dict[str, tuple[int, str | None]]:
    """Send ElectLeaders (``election_type`` 0 preferred, 1 unclean; ``wanted`` None = every
    partition) to the controller; returns {"topic-partition": (error code, message)} in the
    controller's order. A NOT_CONTROLLER answer refreshes Metadata and retries up to
    ``attempts`` times."""
    import datetime

    from kafkalike.client.kafka_client import KafkaClient
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.errors import ErrorCode

    topics: dict[str, list[int]] = {}
    for topic, partition in wanted or []:
        topics.setdefault(topic, []).append(partition)
    fields: dict[str, Any] = {
        "election_type": election_type, "timeout": datetime.timedelta(milliseconds=timeout_ms),
        "topic_partitions": None if wanted is None else [{"topic": t, "partitions": ps} for t, ps in topics.items()],
    }
    results: dict[str, tuple[int, str | None]] = {}
    async with KafkaClient(bootstrap, client_id="kafkalike-leader-election",
                           request_timeout_ms=timeout_ms + 30000) as client:
        for attempt in range(attempts):
            conn = await client.controller_connection()
            resp = await conn.call(ApiKey.ELECT_LEADERS, **fields)
            results = {f"{r.topic}-{p.partition_id}": (int(p.error_code), p.error_message)
                       for r in resp.replica_election_results for p in r.partition_result}
            if not any(error == ErrorCode.not_controller for error, _ in results.values()) \
                    or attempt + 1 == attempts:
                break
            await client.refresh_metadata([])
    return results
