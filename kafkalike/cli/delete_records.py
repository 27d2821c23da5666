"""``kafkalike delete-records``: kafka-delete-records.sh over the wire (Kafka's
DeleteRecordsCommand: flags, JSON file format and output as Kafka 3.x prints them).

    kafkalike delete-records --bootstrap-server localhost:9092 --offset-json-file offsets.json

The JSON file is Kafka's: ``{"partitions": [{"topic": "t", "partition": 0, "offset": 5}],
"version": 1}`` (offset -1 = up to the high watermark). Each partition's DeleteRecords goes
to its leader (kafkalike's trio client; a NOT_LEADER_OR_FOLLOWER answer refreshes Metadata
and retries, as Kafka's admin client does). Output, as Kafka's::

    Executing records delete operation
    Records delete operation completed:
    partition: t-0<TAB>low_watermark: 5
    partition: t-1<TAB>error: org.apache.kafka.common.errors.OffsetOutOfRangeException: ...

A partition error is printed on its line and, as in Kafka, does not change the exit code (0);
a bad JSON file or duplicate partitions is one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

EXAMPLE = """example offsets.json:
  {"partitions": [{"topic": "logs", "partition": 0, "offset": 5}], "version": 1}"""

# Kafka's exception class and default message (Errors.java) for the errors DeleteRecords answers
_JAVA_ERRORS = {
    "offset_out_of_range": ("OffsetOutOfRangeException",
                            "The requested offset is not within the range of offsets maintained by the server."),
    "policy_violation": ("PolicyViolationException", "Request parameters do not satisfy the configured policy."),
    "not_leader_or_follower": ("NotLeaderOrFollowerException",
                               "For requests intended only for the leader, this error indicates that the broker "
                               "is not the current leader. For requests intended for any replica, this error "
                               "indicates that the broker is not a replica of the topic partition."),
    "unknown_topic_or_partition": ("UnknownTopicOrPartitionException",
                                   "This server does not host this topic-partition."),
    "request_timed_out": ("TimeoutException", "The request timed out."),
    "invalid_topic_exception": ("InvalidTopicException",
                                "The request attempted to perform an operation on an invalid topic."),
    "kafka_storage_error": ("KafkaStorageException", "Disk error when trying to access log file on the disk."),
    "leader_not_available": ("LeaderNotAvailableException",
                             "There is no leader for this topic-partition as we are in the middle of a "
                             "leadership election."),
}


class CommandError(Exception):
    """One line for stderr (Kafka's AdminCommandFailedException / parse errors)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("delete-records", help="delete records below an offset (kafka-delete-records.sh)",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,...]",
                   help="REQUIRED: The server to connect to.")
    p.add_argument("--offset-json-file", required=True, metavar="FILE",
                   help="REQUIRED: The JSON file with offset per partition. The format to use is:\n"
                        '{"partitions": [{"topic": "foo", "partition": 1, "offset": 1}], "version": 1}')
    p.add_argument("--timeout-ms", type=int, default=30000,
                   help="how long the brokers may wait for every replica (ms, default 30000: "
                        "the admin client's request.timeout.ms)")
    p.set_defaults(func=_main)


def parse_offset_json(text: str) -> list[tuple[str, int, int]]:
    """[(topic, partition, offset)] from Kafka's offset JSON (DeleteRecordsCommand's
    parseOffsetJsonStringWithoutDedup). Raises CommandError for anything else, and for
    duplicate partitions ("Offset json file contains duplicate topic partitions: t-0")."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"The offset json file is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or "partitions" not in doc:
        raise CommandError("The offset json file must be an object with a \"partitions\" list")
    version = doc.get("version", 1)
    if version != 1:
        raise CommandError(f"Not supported version field value {version}")
    out: list[tuple[str, int, int]] = []
    for entry in doc["partitions"] or []:
        try:
            topic, partition, offset = entry["topic"], entry["partition"], entry["offset"]
        except (KeyError, TypeError):
            raise CommandError(f"Each partition needs \"topic\", \"partition\" and \"offset\": {entry!r}") from None
        if not isinstance(topic, str) or not isinstance(partition, int) or not isinstance(offset, int) \
                or isinstance(partition, bool) or isinstance(offset, bool):
            raise CommandError(f"Bad types in {entry!r}: topic is a string, partition and offset integers")
        out.append((topic, partition, offset))
    seen: set[tuple[str, int]] = set()
    dups = []
    for topic, partition, _ in out:
        if (topic, partition) in seen and f"{topic}-{partition}" not in dups:
            dups.append(f"{topic}-{partition}")
        seen.add((topic, partition))
    if dups:
        raise CommandError(f"Offset json file contains duplicate topic partitions: {','.join(dups)}")
    return out


def java_error(code: int) -> str:
    """How Kafka's tool prints a partition error: the exception class and its message."""
    from kafkalike.protocol.errors import ErrorCode

    name = ErrorCode(code).name
    cls, message = _JAVA_ERRORS.get(name, ("ApiException", name.upper()))
    return f"org.apache.kafka.common.errors.{cls}: {message}"


def _main(args: argparse.Namespace) -> int:
    import trio

    from kafkalike.client.errors import ClientError

    try:
        with open(args.offset_json_file, encoding="utf-8") as f:
            wanted = parse_offset_json(f.read())
    except OSError as exc:
        print(f"Error: cannot read {args.offset_json_file}: {exc.strerror}", file=sys.stderr)
        return 1
    except CommandError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print("Executing records delete operation")
    try:
        results = trio.run(delete_records, args.bootstrap_server, wanted, args.timeout_ms)
    except ClientError as exc:
        print(f"kafkalike delete-records: {exc} (bootstrap server {args.bootstrap_server})", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"kafkalike delete-records: no broker reachable at {args.bootstrap_server}: {exc}", file=sys.stderr)
        return 1
    print("Records delete operation completed:")
    for topic, partition, _ in wanted:
        error, low = results[(topic, partition)]
        if error:
            print(f"partition: {topic}-{partition}\terror: {java_error(error)}")
        else:
            print(f"partition: {topic}-{partition}\tlow_watermark: {low}")
    return 0


async def delete_records(bootstrap: str, wanted: list[tuple[str, int, int]], timeout_ms: int,
                         attempts: int = 3) -> dict[tuple[str, int], tuple[int, int]]:
    """Send DeleteRecords for each (topic, partition, offset) to its leader; returns
    {(topic, partition): (error code, low watermark)}. NOT_LEADER_OR_FOLLOWER /
    LEADER_NOT_AVAILABLE refresh Metadata and retry up to ``attempts`` times; an unknown
    partition answers UNKNOWN_TOPIC_OR_PARTITION."""
    from kafkalike.client.errors import KafkaError
    from kafkalike.client.kafka_client import KafkaClient
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.errors import ErrorCode

    retriable = {ErrorCode.not_leader_or_follower, ErrorCode.leader_not_available}
    results: dict[tuple[str, int], tuple[int, int]] = {}
    pending = {(t, p): o for t, p, o in wanted}
    async with KafkaClient(bootstrap, client_id="kafkalike-delete-records",
                           request_timeout_ms=timeout_ms + 30000) as client:
        for attempt in range(attempts):
            by_leader: dict[int, dict[tuple[str, int], int]] = {}
            for (topic, partition), offset in pending.items():
                try:
                    leader = await client.leader_for(topic, partition)
                except KafkaError as exc:
                    results[(topic, partition)] = (int(exc.error_code), -1)
                    continue
                by_leader.setdefault(leader, {})[(topic, partition)] = offset
            retry: dict[tuple[str, int], int] = {}
            for leader, offsets in by_leader.items():
                topics: dict[str, list[dict[str, Any]]] = {}
                for (topic, partition), offset in offsets.items():
                    topics.setdefault(topic, []).append({"partition_index": partition, "offset": offset})
                conn = await client.connection(leader)
                resp = await conn.call(ApiKey.DELETE_RECORDS, timeout=datetime.timedelta(milliseconds=timeout_ms),
                                       topics=[{"name": t, "partitions": ps} for t, ps in topics.items()])
                for t in resp.topics:
                    for p in t.partitions:
                        key = (t.name, p.partition_index)
                        results[key] = (int(p.error_code), int(p.low_watermark))
                        if p.error_code in retriable and attempt + 1 < attempts:
                            retry[key] = offsets[key]
            if not retry:
                break
            pending = retry
            await client.refresh_metadata(sorted({t for t, _ in retry}))
        for key in pending:
            results.setdefault(key, (int(ErrorCode.unknown_topic_or_partition), -1))
    return results
