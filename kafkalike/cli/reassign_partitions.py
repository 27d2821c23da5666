"""``kafkalike reassign-partitions``: kafka-reassign-partitions.sh over the wire (Kafka 3.9's
ReassignPartitionsCommand: flags, JSON files and printed output as Kafka prints them).

    kafkalike reassign-partitions --bootstrap-server B --generate \\
        --topics-to-move-json-file topics.json --broker-list 1,2,3
    kafkalike reassign-partitions --bootstrap-server B --execute --reassignment-json-file plan.json
    kafkalike reassign-partitions --bootstrap-server B --verify --reassignment-json-file plan.json
    kafkalike reassign-partitions --bootstrap-server B --cancel --reassignment-json-file plan.json
    kafkalike reassign-partitions --bootstrap-server B --list

Files are Kafka's: topics to move ``{"version":1,"topics":[{"topic":"foo"}]}``; a reassignment
``{"version":1,"partitions":[{"topic":"foo","partition":0,"replicas":[2,3],"log_dirs":["any","any"]}]}``
(``log_dirs`` optional; only "any" is accepted: kafkalike has no AlterReplicaLogDirs).
Requests go to the controller (AlterPartitionReassignments / ListPartitionReassignments, with
Metadata and DescribeCluster to any broker) through kafkalike's AdminClient.

Throttles (KIP-73), as Kafka's tool sets them: ``--execute --throttle N`` writes, with
IncrementalAlterConfigs, ``leader.replication.throttled.replicas`` (partition:source broker for
every moving partition) and ``follower.replication.throttled.replicas`` (partition:new broker) on
each moving topic, and ``leader/follower.replication.throttled.rate`` = N (bytes/s) on every
broker involved; ``--replica-alter-log-dirs-throttle N`` sets
``replica.alter.log.dirs.io.max.bytes.per.second`` on the brokers with log dir moves (none here,
so only the line is printed). ``--verify`` once nothing is moving, and ``--cancel``, delete
them again (unless ``--preserve-throttles``) and print Kafka's "Clearing broker-level throttles
..." / "Clearing topic-level throttles ..." lines.

Exit codes as Kafka's tool: 0, or 1 after printing the error (on stdout, as Kafka's
TerseException / "Error: ..." lines). Not supported (refused with one line, exit 1): log_dirs
other than "any".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

CANNOT_EXECUTE_BECAUSE_OF_EXISTING_MESSAGE = (
    "Cannot execute because there is an existing partition assignment.  Use --additional to override "
    "this and create a new partition assignment in addition to the existing one. The --additional flag "
    "can also be used to change the throttle by resubmitting the current reassignment.")

ACTIONS = ("generate", "execute", "verify", "cancel", "list")
YOU_MUST_RUN_VERIFY_PERIODICALLY_MESSAGE = ("Warning: You must run --verify periodically, until the reassignment "
                                            "completes, to ensure the throttle is removed.")
BROKER_LEVEL_THROTTLES = ("leader.replication.throttled.rate", "follower.replication.throttled.rate",
                          "replica.alter.log.dirs.io.max.bytes.per.second")
TOPIC_LEVEL_THROTTLES = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")


class CommandError(Exception):
    """One message for stdout, then exit code 1 (Kafka's TerseException / AdminCommandFailedException)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reassign-partitions", help="move partitions between brokers (kafka-reassign-partitions.sh)")
    p.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,...]",
                   help="the server(s) to use for bootstrapping. REQUIRED.")
    for action, text in (("generate", "Generate a candidate partition reassignment configuration."),
                         ("execute", "Kick off the reassignment as specified by the --reassignment-json-file option."),
                         ("verify", "Verify if the reassignment completed as specified by the "
                                    "--reassignment-json-file option."),
                         ("cancel", "Cancel an active reassignment."),
                         ("list", "List all active partition reassignments.")):
        p.add_argument(f"--{action}", action="store_true", help=text)
    p.add_argument("--topics-to-move-json-file", metavar="FILE",
                   help='JSON file: {"topics": [{"topic": "foo"},{"topic": "foo1"}], "version":1}')
    p.add_argument("--reassignment-json-file", metavar="FILE",
                   help="the JSON file with the partition reassignment configuration")
    p.add_argument("--broker-list", metavar="1,2,3", help="brokers to reassign to (with --generate)")
    p.add_argument("--additional", action="store_true",
                   help="execute this reassignment in addition to any other ongoing ones")
    p.add_argument("--preserve-throttles", action="store_true",
                   help="do not modify broker or topic throttles (with --verify / --cancel)")
    p.add_argument("--disable-rack-aware", action="store_true",
                   help="accepted; kafkalike's --generate is always rack-unaware")
    p.add_argument("--throttle", type=int, default=-1,
                   help="the movement of partitions between brokers will be throttled to this value (bytes/sec)")
    p.add_argument("--replica-alter-log-dirs-throttle", type=int, default=-1,
                   help="the movement of replicas between log directories on the same broker will be throttled "
                        "to this value (bytes/sec)")
    p.add_argument("--timeout", type=int, default=10000, help="ms (accepted; used only for log dir moves in Kafka)")
    p.add_argument("--command-config", metavar="FILE", help="not supported (no client security settings yet)")
    p.set_defaults(func=_main)


# ---- JSON files (Kafka's formats) ---------------------------------------------------------------

def tp_str(topic: str, partition: int) -> str:
    """Kafka's TopicPartition.toString: ``topic-partition``."""
    return f"{topic}-{partition}"


def format_as_reassignment_json(assignment: Mapping[tuple[str, int], Sequence[int]]) -> str:
    """Kafka's formatAsReassignmentJson: version 1, partitions sorted by topic then partition,
    each with ``log_dirs`` "any" per replica, compact JSON."""
    partitions = [{"topic": t, "partition": p, "replicas": list(r), "log_dirs": ["any"] * len(r)}
                  for (t, p), r in sorted(assignment.items())]
    return json.dumps({"version": 1, "partitions": partitions}, separators=(",", ":"))


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise CommandError("Error: The input string is not a valid JSON") from None


def parse_topics_json(text: str) -> list[str]:
    """Topics from a --topics-to-move-json-file (version 1). Raises CommandError."""
    doc = _parse_json(text)
    if not isinstance(doc, dict):
        raise CommandError("Error: The input string is not a valid JSON")
    version = doc.get("version", 1)
    if version != 1:
        raise CommandError(f"Error: Not supported version field value {version}")
    out = []
    for entry in doc.get("topics") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("topic"), str):
            raise CommandError(f'Error: each entry of "topics" needs a string "topic": {entry!r}')
        out.append(entry["topic"])
    return out


def parse_reassignment_json(text: str) -> list[tuple[tuple[str, int], list[int]]]:
    """[((topic, partition), replicas)] from a reassignment file (version 1), in file order,
    duplicates kept (Kafka's parsePartitionReassignmentData). Raises CommandError."""
    doc = _parse_json(text)
    if not isinstance(doc, dict):
        raise CommandError("Error: The input string is not a valid JSON")
    version = doc.get("version", 1)
    if version != 1:
        raise CommandError(f"Error: Not supported version field value {version}")
    out: list[tuple[tuple[str, int], list[int]]] = []
    for entry in doc.get("partitions") or []:
        topic = entry.get("topic") if isinstance(entry, dict) else None
        partition = entry.get("partition") if isinstance(entry, dict) else None
        replicas = entry.get("replicas") if isinstance(entry, dict) else None
        if (not isinstance(topic, str) or not isinstance(partition, int) or isinstance(partition, bool)
                or not isinstance(replicas, list) or not all(isinstance(r, int) for r in replicas)):
            raise CommandError('Error: each partition needs a string "topic", an integer "partition" and '
                               f'an integer list "replicas": {entry!r}')
        log_dirs = entry.get("log_dirs", ["any"] * len(replicas))
        if not isinstance(log_dirs, list) or len(log_dirs) != len(replicas):
            raise CommandError(f"Error: Size of replicas list {_jlist(replicas)} is different from size of log dirs "
                               f"list {_jlist(log_dirs) if isinstance(log_dirs, list) else log_dirs} for partition "
                               f"{tp_str(topic, partition)}")
        if any(d != "any" for d in log_dirs):
            raise CommandError("Error: log_dirs other than \"any\" are not supported by kafkalike "
                               "(no AlterReplicaLogDirs)")
        out.append(((topic, partition), list(replicas)))
    return out


def _java_string_hash(text: str) -> int:
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h


def java_hash_set_order(items: Sequence[Any]) -> list[Any]:
    """``items`` (ints or strings, in insertion order, duplicates dropped) in the order a
    java.util.HashSet iterates them: by bucket (hash ^ hash >>> 16, masked by the table size,
    which starts at 16 and doubles past 3/4 full), insertion order within a bucket. Kafka's tool
    prints some sets that way."""
    unique = list(dict.fromkeys(items))
    capacity = 16
    while len(unique) > capacity * 3 // 4:
        capacity *= 2

    def bucket(item: Any) -> int:
        h = (item & 0xFFFFFFFF) if isinstance(item, int) else _java_string_hash(str(item))
        return (h ^ (h >> 16)) & (capacity - 1)

    return [item for _i, item in sorted(enumerate(unique), key=lambda e: (bucket(e[1]), e[0]))]


def _jlist(values: Sequence[Any]) -> str:
    """A Java List's toString: ``[1, 2]``."""
    return "[" + ", ".join(str(v) for v in values) + "]"


def validate_execute(parts: list[tuple[tuple[str, int], list[int]]]) -> dict[tuple[str, int], list[int]]:
    """Kafka's parseExecuteAssignmentArgs checks, with its messages. Raises CommandError."""
    if not parts:
        raise CommandError("Error: Partition reassignment list cannot be empty")
    if any(not replicas for _tp, replicas in parts):
        raise CommandError("Error: Partition replica list cannot be empty")
    seen: list[tuple[str, int]] = [tp for tp, _r in parts]
    dups = sorted({tp for tp in seen if seen.count(tp) > 1})
    if dups:
        raise CommandError("Error: Partition reassignment contains duplicate topic partitions: "
                           + ",".join(tp_str(*tp) for tp in dups))
    dup_replicas = [(tp, sorted({r for r in replicas if replicas.count(r) > 1})) for tp, replicas in parts]
    dup_replicas = [(tp, d) for tp, d in dup_replicas if d]
    if dup_replicas:
        raise CommandError("Error: Partition replica lists may not contain duplicate entries: " + ". ".join(
            f"{tp_str(*tp)} contains multiple entries for {','.join(str(r) for r in d)}" for tp, d in dup_replicas))
    return dict(parts)


# ---- the actions --------------------------------------------------------------------------------

def _read(path: str | None, flag: str) -> str:
    if path is None:
        raise CommandError(f"Missing required argument \"[{flag}]\"")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise CommandError(f"Error: {path} ({exc.strerror})") from None


def _main(args: argparse.Namespace) -> int:
    import trio

    from kafkalike.client.errors import ClientError

    chosen = [a for a in ACTIONS if getattr(args, a)]
    if len(chosen) != 1:
        print("Command must include exactly one action: --generate, --execute, --verify, --cancel, --list",
              file=sys.stderr)
        return 1
    if args.command_config is not None:
        print("kafkalike reassign-partitions: --command-config is not supported", file=sys.stderr)
        return 1
    try:
        return int(trio.run(_run, chosen[0], args))
    except CommandError as exc:
        print(exc)
        return 1
    except ClientError as exc:
        print(f"Error: {exc}")
        return 1
    except OSError as exc:
        print(f"Error: no broker reachable at {args.bootstrap_server}: {exc}")
        return 1


async def _run(action: str, args: argparse.Namespace) -> int:
    from kafkalike.client.admin import AdminClient

    async with AdminClient(args.bootstrap_server, client_id="reassign-partitions-tool") as admin:
        if action == "list":
            print(await current_reassignments_text(admin))
        elif action == "generate":
            await generate(admin, _read(args.topics_to_move_json_file, "topics-to-move-json-file"), args.broker_list)
        elif action == "execute":
            await execute(admin, _read(args.reassignment_json_file, "reassignment-json-file"), args.additional,
                          args.throttle, args.replica_alter_log_dirs_throttle)
        elif action == "verify":
            await verify(admin, _read(args.reassignment_json_file, "reassignment-json-file"), args.preserve_throttles)
        else:
            await cancel(admin, _read(args.reassignment_json_file, "reassignment-json-file"), args.preserve_throttles)
    return 0


async def current_reassignments_text(admin: Any) -> str:
    """Kafka's curReassignmentsToString (the --list output)."""
    current = await admin.list_partition_reassignments()
    lines = []
    for tp in sorted(current):
        ra = current[tp]
        line = f"{tp_str(tp.topic, tp.partition)}: replicas: {','.join(map(str, ra.replicas))}."
        if ra.adding_replicas:
            line += f" adding: {','.join(map(str, ra.adding_replicas))}."
        if ra.removing_replicas:
            line += f" removing: {','.join(map(str, ra.removing_replicas))}."
        lines.append(line)
    return "Current partition reassignments:\n" + "\n".join(lines) if lines else "No partition reassignments found."


async def _replicas_of(admin: Any, topics: set[str]) -> dict[tuple[str, int], list[int]]:
    """{(topic, partition): replicas} of every partition of ``topics`` (Metadata). Raises
    CommandError for an unknown topic (Kafka's "Topic X not found.")."""
    from kafkalike.protocol.errors import ErrorCode

    described = await admin.describe_topics(sorted(topics))
    out: dict[tuple[str, int], list[int]] = {}
    for topic in sorted(topics):
        info = described.get(topic)
        if info is None or info.error_code == ErrorCode.unknown_topic_or_partition:
            raise CommandError("Error: org.apache.kafka.common.errors.UnknownTopicOrPartitionException: "
                               f"Topic {topic} not found.")
        for p, part in info.partitions.items():
            out[(topic, p)] = list(part.replicas)
    return out


async def generate(admin: Any, topics_json: str, broker_list: str | None) -> None:
    """--generate: the current assignment of the topics and a proposal spreading them over
    ``broker_list`` with Kafka's rack-unaware placement (AdminUtils.assignReplicasToBrokers,
    random start), both printed as reassignment JSON."""
    from kafkalike.controller.replica_assignment import AssignmentError, assign_replicas_to_brokers

    if broker_list is None:
        raise CommandError('Missing required argument "[broker-list]"')
    try:
        brokers = [int(b) for b in broker_list.split(",")]
    except ValueError:
        raise CommandError(f"Error: For input string: \"{broker_list}\"") from None
    dup_brokers = sorted({b for b in brokers if brokers.count(b) > 1})
    if dup_brokers:
        raise CommandError(f"Error: Broker list contains duplicate entries: {_jlist(dup_brokers)}")
    topics = parse_topics_json(topics_json)
    dup_topics = sorted({t for t in topics if topics.count(t) > 1})
    if dup_topics:
        raise CommandError(f"Error: List of topics to reassign contains duplicate entries: {_jlist(dup_topics)}")
    current = await _replicas_of(admin, set(topics))
    cluster = await admin.describe_cluster()
    live = [b for b in brokers if b in cluster.brokers]
    proposed: dict[tuple[str, int], list[int]] = {}
    for topic in sorted(set(topics)):
        parts = sorted(p for t, p in current if t == topic)
        if not parts:
            continue
        try:
            placed = assign_replicas_to_brokers(len(parts), len(current[(topic, parts[0])]), live)
        except AssignmentError as exc:
            raise CommandError(f"Error: {exc}") from None
        for p, replicas in placed.items():
            proposed[(topic, p)] = replicas
    print(f"Current partition replica assignment\n{format_as_reassignment_json(current)}\n")
    print(f"Proposed partition reassignment configuration\n{format_as_reassignment_json(proposed)}")


async def execute(admin: Any, reassignment_json: str, additional: bool, throttle: int = -1,
                  log_dir_throttle: int = -1) -> None:
    """--execute: refuse while other reassignments run (unless --additional), check the
    brokers exist, print the current assignment (for rollback), set the throttles when asked
    (``throttle`` / ``log_dir_throttle`` bytes/s, < 0 = none), start the reassignments."""
    from kafkalike.client.cluster import TopicPartition

    proposed = validate_execute(parse_reassignment_json(reassignment_json))
    ongoing = await admin.list_partition_reassignments()
    if not additional and ongoing:
        raise CommandError(CANNOT_EXECUTE_BECAUSE_OF_EXISTING_MESSAGE)
    cluster = await admin.describe_cluster()
    unknown = [b for replicas in proposed.values() for b in replicas if b not in cluster.brokers]
    if unknown:
        raise CommandError(f"Error: Unknown broker id {unknown[0]}")
    current_all = await _replicas_of(admin, {t for t, _p in proposed})
    missing = sorted(tp for tp in proposed if tp not in current_all)
    if missing:
        raise CommandError("Error: org.apache.kafka.common.errors.UnknownTopicOrPartitionException: "
                           f"Unable to find partition: {', '.join(tp_str(*tp) for tp in missing)}")
    current = {tp: r for tp, r in current_all.items() if tp in proposed}
    print("Current partition replica assignment\n\n" + format_as_reassignment_json(current)
          + "\n\nSave this to use as the --reassignment-json-file option during rollback")
    if throttle >= 0 or log_dir_throttle >= 0:
        print(YOU_MUST_RUN_VERIFY_PERIODICALLY_MESSAGE)
        if throttle >= 0:
            moves = proposed_move_map(ongoing, proposed, current)
            await modify_reassignment_throttle(admin, moves, throttle)
        if log_dir_throttle >= 0:  # no log dir moves (log_dirs "any" only): no broker to set
            print(f"The replica-alter-dir throttle limit was set to {log_dir_throttle} B/s")
    results = await admin.alter_partition_reassignments(
        {TopicPartition(t, p): replicas for (t, p), replicas in proposed.items()})
    errors = {tp: r for tp, r in results.items() if r[0] != 0}
    if errors:
        raise CommandError("Error reassigning partition(s):\n" + "\n".join(
            f"{tp_str(tp.topic, tp.partition)}: {_message(code, message)}" for tp, (code, message) in sorted(errors.items())))
    names = ",".join(tp_str(*tp) for tp in sorted(proposed))
    print(f"Successfully started partition reassignment{'' if len(proposed) == 1 else 's'} for {names}")


def _message(code: int, message: str | None) -> str:
    from kafkalike.protocol.errors import kafka_name

    return message or kafka_name(code)


async def verify(admin: Any, reassignment_json: str, preserve_throttles: bool = False) -> None:
    """--verify: each partition of the file is "still in progress" (being reassigned),
    "completed" (its replicas are the file's), or has no active reassignment with other
    replicas (Kafka's partitionReassignmentStatesToString); then the (empty) log dir moves."""
    targets = parse_reassignment_json(reassignment_json)
    current = await admin.list_partition_reassignments()
    ongoing = {(tp.topic, tp.partition) for tp in current}
    to_look_up = {t for (t, p), _r in targets if (t, p) not in ongoing}
    replicas_now: dict[tuple[str, int], list[int]] = {}
    if to_look_up:
        described = await admin.describe_topics(sorted(to_look_up))
        for t, info in described.items():
            for p, part in info.partitions.items():
                replicas_now[(t, p)] = list(part.replicas)
    lines = ["Status of partition reassignment:"]
    for tp, target in sorted(dict(targets).items()):
        name = tp_str(*tp)
        if tp in ongoing:
            lines.append(f"Reassignment of partition {name} is still in progress.")
        elif replicas_now.get(tp, []) == target:
            lines.append(f"Reassignment of partition {name} is completed.")
        else:
            lines.append(f"There is no active reassignment of partition {name}, but replica set is "
                         f"{','.join(map(str, replicas_now.get(tp, [])))} rather than {','.join(map(str, target))}.")
    print("\n".join(lines))
    print("")  # replicaMoveStatesToString of no log dir moves
    if not current and not preserve_throttles:
        await clear_all_throttles(admin, targets)


async def clear_all_throttles(admin: Any, targets: list[tuple[tuple[str, int], list[int]]]) -> None:
    """Kafka's clearAllThrottles: delete the three broker-level throttle configs on every live
    broker and every broker of the file, and the two topic-level ones on the file's topics
    (IncrementalAlterConfigs DELETE), printing which."""
    from kafkalike.client.admin import RESOURCE_BROKER, RESOURCE_TOPIC

    cluster = await admin.describe_cluster()
    brokers = java_hash_set_order([*sorted(cluster.brokers), *(r for _tp, replicas in targets for r in replicas)])
    topics = java_hash_set_order([t for (t, _p), _r in targets])
    print(f"Clearing broker-level throttles on broker{'' if len(brokers) == 1 else 's'} "
          f"{','.join(map(str, brokers))}")
    for broker in brokers:
        await admin.alter_configs(RESOURCE_BROKER, str(broker), dict.fromkeys(BROKER_LEVEL_THROTTLES))
    print(f"Clearing topic-level throttles on topic{'' if len(topics) == 1 else 's'} {','.join(topics)}")
    for topic in topics:
        await admin.alter_configs(RESOURCE_TOPIC, topic, dict.fromkeys(TOPIC_LEVEL_THROTTLES))


def proposed_move_map(ongoing: Mapping[Any, Any], proposed: Mapping[tuple[str, int], list[int]],
                      current: Mapping[tuple[str, int], list[int]]) -> dict[str, dict[int, tuple[set[int], set[int]]]]:
    """Kafka's calculateProposedMoveMap: topic -> partition -> (sources, destinations), the
    reassignments under way (replicas minus adding -> adding) and the proposed ones (sources:
    the under-way move's, else the current replicas; destinations: new replicas not sources)."""
    moves: dict[str, dict[int, tuple[set[int], set[int]]]] = {}
    for tp, ra in ongoing.items():
        adding = set(ra.adding_replicas)
        moves.setdefault(tp.topic, {})[tp.partition] = (set(ra.replicas) - adding, adding)
    for (topic, partition), replicas in proposed.items():
        parts = moves.setdefault(topic, {})
        sources = parts[partition][0] if partition in parts else set(current[(topic, partition)])
        parts[partition] = (sources, set(replicas) - sources)
    return moves


def leader_throttles(moves: Mapping[str, Mapping[int, tuple[set[int], set[int]]]]) -> dict[str, str]:
    """Kafka's calculateLeaderThrottles: topic -> "partition:source,..." (sorted as strings)."""
    return {t: ",".join(sorted(f"{p}:{s}" for p, (sources, _d) in parts.items() for s in sources))
            for t, parts in moves.items()}


def follower_throttles(moves: Mapping[str, Mapping[int, tuple[set[int], set[int]]]]) -> dict[str, str]:
    """Kafka's calculateFollowerThrottles: topic -> "partition:destination,..." (sorted as strings)."""
    return {t: ",".join(sorted(f"{p}:{d}" for p, (sources, dests) in parts.items() for d in dests
                               if d not in sources)) for t, parts in moves.items()}


async def modify_reassignment_throttle(admin: Any, moves: Mapping[str, Mapping[int, tuple[set[int], set[int]]]],
                                       throttle: int) -> None:
    """Kafka's modifyReassignmentThrottle: the topic throttles, then the rate on every broker
    taking part (sources and destinations)."""
    from kafkalike.client.admin import RESOURCE_BROKER, RESOURCE_TOPIC

    leaders, followers = leader_throttles(moves), follower_throttles(moves)
    for topic in sorted(moves):
        await admin.alter_configs(RESOURCE_TOPIC, topic, {TOPIC_LEVEL_THROTTLES[0]: leaders[topic],
                                                          TOPIC_LEVEL_THROTTLES[1]: followers[topic]})
    brokers = sorted({b for parts in moves.values() for sources, dests in parts.values() for b in sources | dests})
    for broker in brokers:
        await admin.alter_configs(RESOURCE_BROKER, str(broker), {BROKER_LEVEL_THROTTLES[0]: str(throttle),
                                                                 BROKER_LEVEL_THROTTLES[1]: str(throttle)})
    print(f"The inter-broker throttle limit was set to {throttle} B/s")


async def cancel(admin: Any, reassignment_json: str, preserve_throttles: bool = False) -> None:
    """--cancel: cancel the file's partitions that are being reassigned (Kafka's
    cancelAssignment, same selection and lines)."""
    from kafkalike.client.cluster import TopicPartition

    parsed = parse_reassignment_json(reassignment_json)
    targets = {TopicPartition(t, p) for (t, p), _r in parsed}
    listed = await admin.list_partition_reassignments(targets)
    active = sorted(tp for tp, ra in listed.items() if not ra.adding_replicas or ra.removing_replicas)
    if active:
        results = await admin.alter_partition_reassignments({tp: None for tp in active})
        errors = {tp: r for tp, r in results.items() if r[0] != 0}
        if errors:
            raise CommandError(f"Error cancelling partition reassignment{'' if len(errors) == 1 else 's'} for:\n"
                               + "\n".join(f"{tp_str(tp.topic, tp.partition)}: {_message(code, message)}"
                                           for tp, (code, message) in sorted(errors.items())))
        print(f"Successfully cancelled partition reassignment{'' if len(active) == 1 else 's'} for: "
              + ",".join(tp_str(tp.topic, tp.partition) for tp in active))
    else:
        print("None of the specified partition reassignments are active.")
    sys.stdout.write("None of the specified partition moves are active.")  # no newline, as Kafka's
    sys.stdout.flush()
    if not preserve_throttles:
        await clear_all_throttles(admin, parsed)
