"""``kafkalike log-dirs``: kafka-log-dirs.sh over the wire (Kafka's LogDirsCommand: flags and
output as Kafka 3.9 prints them).

    kafkalike log-dirs --describe --bootstrap-server localhost:9092 [--broker-list 1,2] [--topic-list t1,t2]

Asks each broker (all brokers of the cluster, from DescribeCluster / Metadata, or those of
--broker-list) for its log dirs with DescribeLogDirs (topics null: every partition) and prints,
as Kafka's tool::

    Querying brokers for log directories information
    Received log directory information from brokers 1,2,3
    {"brokers":[{"broker":1,"logDirs":[{"partitions":[{"partition":"t-0","size":73,"offsetLag":0,"isFuture":false}],"error":null,"logDir":"/var/lib/kafka"}]}],"version":1}

The JSON keeps the key order Kafka's tool prints (it serialises java.util.HashMaps: the order
of their hash buckets, reproduced by ``java_hashmap_order``), with no spaces. --topic-list
keeps only those topics' partitions. A dir that answered an error shows the Java exception
class in "error" (org.apache.kafka.common.errors.KafkaStorageException for an offline dir).
Brokers of --broker-list that are not in the cluster: Kafka's "ERROR: The given brokers do not
exist from --broker-list: ..." on stderr, exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

K = TypeVar("K")

_JAVA_ERRORS = {
    "kafka_storage_error": "KafkaStorageException",
    "cluster_authorization_failed": "ClusterAuthorizationException",
    "unknown_server_error": "UnknownServerException",
}


class CommandError(Exception):
    """One line for stderr, exit code 1 (Kafka's TerseException)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``log-dirs`` to the kafkalike parser."""
    p = sub.add_parser("log-dirs", help="describe brokers' log dirs (kafka-log-dirs.sh)",
                       description="This tool helps to query log directory usage on the specified brokers.")
    p.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,...]",
                   help="REQUIRED: the server(s) to use for bootstrapping")
    p.add_argument("--describe", action="store_true", required=True,
                   help="Describe the specified log directories on the specified brokers.")
    p.add_argument("--broker-list", default="", metavar="0,1,2",
                   help='The list of brokers to be queried in the form "0,1,2". All brokers in the cluster '
                        "will be queried if no broker list is specified")
    p.add_argument("--topic-list", default="", metavar="t1,t2",
                   help='The list of topics to be queried in the form "topic1,topic2,topic3". All topics '
                        "will be queried if no topic list is specified")
    p.set_defaults(func=_main)


# ---------------------------------------------------------------------------- Java's HashMap order
def java_string_hash(s: str) -> int:
    """java.lang.String.hashCode (UTF-16 code units), as a signed 32-bit int."""
    data = s.encode("utf-16-be")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def java_hashmap_order(keys: Iterable[K], hash_of: Callable[[K], int]) -> list[K]:
    """``keys`` in the iteration order of a java.util.HashMap they were put into in this order
    (table of 16 buckets doubled while size > 0.75 * capacity; bucket = (h ^ h >>> 16) & (n - 1);
    insertion order within a bucket)."""
    keys = list(keys)
    cap = 16
    while len(keys) > cap * 3 // 4:
        cap *= 2

    def bucket(k: K) -> int:
        h = hash_of(k) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (cap - 1)

    return sorted(keys, key=bucket)  # stable: insertion order within a bucket


def _tp_hash(topic: str, partition: int) -> int:
    """org.apache.kafka.common.TopicPartition.hashCode."""
    return (31 * (31 + partition) + java_string_hash(topic)) & 0xFFFFFFFF


def _obj(pairs: dict[str, Any]) -> dict[str, Any]:
    """A JSON object whose keys are in java.util.HashMap order (as Jackson writes a HashMap)."""
    return {k: pairs[k] for k in java_hashmap_order(pairs, java_string_hash)}


def java_error(code: int) -> str | None:
    """The Java exception class Kafka's admin client makes of a log dir's error code (None: no error)."""
    if not code:
        return None
    from kafkalike.protocol.errors import ErrorCode

    try:
        name = ErrorCode(code).name
    except ValueError:
        name = "unknown_server_error"
    cls = _JAVA_ERRORS.get(name) or "".join(w.capitalize() for w in name.split("_")) + "Exception"
    return f"org.apache.kafka.common.errors.{cls}"


def format_json(by_broker: dict[int, list[Any]], topics: set[str]) -> str:
    """LogDirsCommand.formatAsJson: ``by_broker`` {broker id: DescribeLogDirsResult entities};
    ``topics`` empty = every topic. One line, no spaces, HashMap key order."""
    brokers = []
    for broker in java_hashmap_order(by_broker, lambda b: b):
        dirs = {r.log_dir: r for r in by_broker[broker]}
        log_dirs = []
        for d in java_hashmap_order(dirs, java_string_hash):
            r = dirs[d]
            replicas = {(t.name, int(p.partition_index)): p for t in r.topics for p in t.partitions
                        if not topics or t.name in topics}
            parts = [_obj({"partition": f"{t}-{i}", "size": int(p.partition_size),
                           "offsetLag": int(p.offset_lag), "isFuture": bool(p.is_future_key)})
                     for (t, i), p in ((k, replicas[k]) for k in java_hashmap_order(replicas, lambda k: _tp_hash(*k)))]
            log_dirs.append(_obj({"logDir": d, "error": java_error(int(r.error_code)), "partitions": parts}))
        brokers.append(_obj({"broker": broker, "logDirs": log_dirs}))
    return json.dumps(_obj({"version": 1, "brokers": brokers}), separators=(",", ":"))


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise CommandError(f"{what} must be a comma-separated list of integers: {text!r}") from None


async def describe_log_dirs(bootstrap: str, brokers: list[int]) -> tuple[list[int], dict[int, list[Any]]]:
    """(queried broker ids in Kafka's HashSet order, {broker id: its DescribeLogDirsResult entities}).
    ``brokers`` empty = every broker of the cluster. Raises CommandError for brokers not in
    the cluster (Kafka's message, before anything is printed), KafkaError when a broker answers
    a top-level error. Prints Kafka's "Querying brokers ..." line once the brokers are known."""
    from kafkalike.client.admin import AdminClient
    from kafkalike.client.errors import KafkaError
    from kafkalike.client.kafka_client import KafkaClient
    from kafkalike.protocol.api_keys import ApiKey

    async with KafkaClient(bootstrap, client_id="log-dirs-tool") as client:
        cluster = set((await AdminClient(client).describe_cluster()).brokers)
        missing = sorted(set(brokers) - cluster)
        if missing:
            raise CommandError(
                "ERROR: The given brokers do not exist from --broker-list: "
                f"{','.join(map(str, missing))}. Current existent brokers: {','.join(map(str, sorted(cluster)))}")
        queried = java_hashmap_order(sorted(set(brokers) if brokers else cluster), lambda b: b)
        print("Querying brokers for log directories information", flush=True)
        out: dict[int, list[Any]] = {}
        for b in queried:
            conn = await client.connection(b)
            resp = await conn.call(ApiKey.DESCRIBE_LOG_DIRS, topics=None)
            if getattr(resp, "error_code", 0):
                raise KafkaError(resp.error_code, f"describe_log_dirs broker {b}")
            out[b] = list(resp.results)
        return queried, out


def _main(args: argparse.Namespace) -> int:
    import trio

    from kafkalike.client.errors import ClientError

    try:
        brokers = _int_list(args.broker_list, "--broker-list")
        topics = {t for t in args.topic_list.split(",") if t}
        queried, by_broker = trio.run(describe_log_dirs, args.bootstrap_server, brokers)
    except CommandError as exc:
        print(exc, file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"kafkalike log-dirs: {exc} (bootstrap server {args.bootstrap_server})", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"kafkalike log-dirs: no broker reachable at {args.bootstrap_server}: {exc}", file=sys.stderr)
        return 1
    print(f"Received log directory information from brokers {','.join(map(str, queried))}")
    print(format_json(by_broker, topics))
    return 0
