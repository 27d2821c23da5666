"""``kafkalike consumer-groups``: list, describe, reset and delete consumer groups, like
Kafka's kafka-consumer-groups.sh, over the wire with kafkalike.client.

    kafkalike consumer-groups --bootstrap-server B --list
    kafkalike consumer-groups --bootstrap-server B --describe --group G [--group G2 ...] [--members | --state]
    kafkalike consumer-groups --bootstrap-server B --reset-offsets --group G --topic T[:P,P]
        (--to-earliest | --to-latest | --to-offset N | --to-datetime YYYY-MM-DDTHH:mm:SS[.sss][Z]
         | --shift-by N) [--execute]
    kafkalike consumer-groups --bootstrap-server B --delete --group G [--group G2 ...]
    kafkalike consumer-groups --bootstrap-server B --delete-offsets --group G --topic T[:P,P] [--topic ...]

--describe prints kafka-consumer-groups.sh's columns (GROUP TOPIC PARTITION CURRENT-OFFSET
LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID), ``-`` where a value is missing: partitions
assigned to a member but never committed have no CURRENT-OFFSET or LAG; committed
partitions no member owns have no CONSUMER-ID/HOST/CLIENT-ID. LOG-END-OFFSET is the high
watermark (ListOffsets latest). ``--members`` shows GROUP CONSUMER-ID HOST CLIENT-ID
#PARTITIONS and ``--state`` GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE #MEMBERS, as
Kafka's tool does. --reset-offsets only works on a group without active
members (as Kafka's tool), prints the plan (GROUP TOPIC PARTITION NEW-OFFSET) and commits
it only with --execute. --delete-offsets (OffsetDelete, KIP-496) removes the group's committed
offsets of the given partitions (every partition of a topic given without any) and prints
Kafka's "Request succeed for deleting offsets with topic T group G" and a TOPIC PARTITION
STATUS table (Kafka 2.4-3.6's ConsumerGroupCommand layout, one row per line). Exit codes: 0
done, 1 a Kafka error (printed; Kafka's tool exits 0 after printing one), 2 bad usage.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``consumer-groups`` to the kafkalike parser."""
    p = subparsers.add_parser("consumer-groups", help="list, describe, reset and delete consumer groups",
                              description="Consumer group administration (kafka-consumer-groups.sh).",
                              epilog="examples:\n"
                                     "  kafkalike consumer-groups --bootstrap-server localhost:9092 --list\n"
                                     "  kafkalike consumer-groups --bootstrap-server localhost:9092 --describe --group billing\n"
                                     "  kafkalike consumer-groups --bootstrap-server localhost:9092 --reset-offsets \\\n"
                                     "      --group billing --topic orders --to-earliest --execute",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,HOST:PORT]")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="list all consumer groups")
    action.add_argument("--describe", action="store_true", help="offsets, lag and owners of groups")
    action.add_argument("--reset-offsets", action="store_true", help="reset a group's committed offsets")
    action.add_argument("--delete", action="store_true", help="delete groups without active members")
    action.add_argument("--delete-offsets", action="store_true",
                        help="delete a group's committed offsets of --topic T[:P,P] (OffsetDelete)")
    p.add_argument("--group", action="append", default=[], metavar="GROUP")
    p.add_argument("--topic", action="append", default=[], metavar="TOPIC[:P,P]",
                   help="topic (optionally partitions) for --reset-offsets and --delete-offsets")
    p.add_argument("--all-topics", action="store_true", help="--reset-offsets: every topic the group committed")
    to = p.add_mutually_exclusive_group()
    to.add_argument("--to-earliest", action="store_true")
    to.add_argument("--to-latest", action="store_true")
    to.add_argument("--to-offset", type=int, metavar="N")
    to.add_argument("--to-datetime", metavar="YYYY-MM-DDTHH:mm:SS.sss")
    to.add_argument("--shift-by", type=int, metavar="N")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--members", action="store_true", help="--describe: one row per member")
    view.add_argument("--state", action="store_true", help="--describe: coordinator, strategy, state")
    p.add_argument("--execute", action="store_true", help="--reset-offsets: commit the new offsets")
    p.add_argument("--dry-run", action="store_true", help="--reset-offsets: only show (the default)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the cluster")
    p.set_defaults(func=_main)


def parse_datetime_ms(text: str) -> int:
    """Kafka's --to-datetime format ``YYYY-MM-DDTHH:mm:SS.sss`` (optional zone, e.g. ``Z`` or
    ``+02:00``; none means UTC) as ms since the epoch. Raises ValueError."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    dt = datetime.datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp() * 1000)


def _main(args: argparse.Namespace) -> int:
    import trio

    if (args.describe or args.reset_offsets or args.delete or args.delete_offsets) and not args.group:
        print("error: --group is required with --describe, --reset-offsets, --delete and --delete-offsets",
              file=sys.stderr)
        return 2
    if args.delete_offsets and (len(args.group) != 1 or not args.topic):
        print("error: --delete-offsets takes one --group and at least one --topic", file=sys.stderr)
        return 2
    if args.reset_offsets:
        if not (args.topic or args.all_topics):
            print("error: --reset-offsets needs --topic or --all-topics", file=sys.stderr)
            return 2
        if not (args.to_earliest or args.to_latest or args.to_offset is not None
                or args.to_datetime is not None or args.shift_by is not None):
            print("error: --reset-offsets needs one of --to-earliest, --to-latest, --to-offset, "
                  "--to-datetime, --shift-by", file=sys.stderr)
            return 2
        if args.to_datetime is not None:
            try:
                parse_datetime_ms(args.to_datetime)
            except ValueError as exc:
                print(f"error: bad --to-datetime {args.to_datetime!r}: {exc}", file=sys.stderr)
                return 2
    try:
        return trio.run(_run, args)
    except Exception as exc:
        from kafkalike.client.errors import ClientError

        if isinstance(exc, ClientError):
            print(f"Error: {exc}", file=sys.stderr)
            return 1
        raise


class GroupsError(Exception):
    """A group operation failed with a Kafka error; ``str`` is the one-line message."""


async def _run(args: argparse.Namespace) -> int:
    import trio

    from kafkalike.client import KafkaClient

    with trio.fail_after(args.timeout):
        async with KafkaClient(args.bootstrap_server, client_id="kafkalike-consumer-groups") as client:
            try:
                if args.list:
                    for g in await list_groups(client):
                        print(g)
                    return 0
                if args.describe:
                    first = True
                    for g in args.group:
                        if not first:
                            print()
                        first = False
                        if args.members:
                            print(await describe_members_text(client, g))
                        elif args.state:
                            print(await describe_state_text(client, g))
                        else:
                            print(await describe_text(client, g))
                    return 0
                if args.delete:
                    return await _delete(client, args.group)
                if args.delete_offsets:
                    return await delete_offsets(client, args.group[0], args.topic)
                return await _reset(client, args)
            except GroupsError as exc:
                print(f"Error: {exc}", file=sys.stderr)
                return 1


# ----------------------------------------------------------------------------- requests

RETRIABLE_COORDINATOR = {"COORDINATOR_NOT_AVAILABLE", "COORDINATOR_LOAD_IN_PROGRESS", "NOT_COORDINATOR"}


async def coordinator_connection(client: Any, group: str, attempts: int = 50) -> Any:
    """A connection to ``group``'s coordinator (FindCoordinator, retried while the offsets
    topic is being created or loaded). Raises GroupsError."""
    import trio

    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.errors import ErrorCode

    last = ""
    for _ in range(attempts):
        conn = await client.any_connection()
        r = await conn.call(ApiKey.FIND_COORDINATOR, key=group, key_type=0)
        if r.error_code == ErrorCode.none:
            if client.broker(r.node_id) is None:
                await client.refresh_metadata()
            return await client.connection(r.node_id)
        last = r.error_code.name.upper()
        await trio.sleep(0.2)
    raise GroupsError(f"cannot find the coordinator of group '{group}': {last}")


async def _call_coordinator(client: Any, group: str, api_key: int, **fields: Any) -> Any:
    """Send to the coordinator, retrying coordinator moves and loading (the response's
    ``error_code`` or the first group's is checked when present)."""
    import trio

    last = None
    for _ in range(20):
        conn = await coordinator_connection(client, group)
        r = await conn.call(api_key, **fields)
        code = getattr(r, "error_code", None)
        if code is None and getattr(r, "groups", None):
            code = r.groups[0].error_code
        if code is not None and code.name.upper() in RETRIABLE_COORDINATOR:
            last = code
            await trio.sleep(0.2)
            continue
        return r
    raise GroupsError(f"group '{group}': {last.name.upper() if last else 'no answer'}")


async def list_groups(client: Any) -> list[str]:
    """Every group id known to any broker (ListGroups to each)."""
    from kafkalike.protocol.api_keys import ApiKey

    await client.refresh_metadata()
    names: set[str] = set()
    for node_id in sorted(client.cluster.brokers):
        conn = await client.connection(node_id)
        r = await conn.call(ApiKey.LIST_GROUPS, states_filter=[])
        names.update(g.group_id for g in r.groups)
    return sorted(names)


async def describe_group(client: Any, group: str) -> tuple[str, list[Any], dict[Any, int]]:
    """(state, members, {TopicPartition: committed offset}) of a group."""
    from kafkalike.client.cluster import TopicPartition
    from kafkalike.protocol.api_keys import ApiKey

    d = await _call_coordinator(client, group, ApiKey.DESCRIBE_GROUPS, groups=[group],
                                include_authorized_operations=False)
    g = d.groups[0]
    if g.error_code.value != 0:
        raise GroupsError(f"cannot describe group '{group}': {g.error_code.name.upper()}")
    f = await _call_coordinator(client, group, ApiKey.OFFSET_FETCH, group_id=group, topics=None,
                                require_stable=False)
    committed = {TopicPartition(t.name, int(p.partition_index)): int(p.committed_offset)
                 for t in f.topics for p in t.partitions if int(p.committed_offset) >= 0}
    return g.group_state, list(g.members), committed


async def describe_text(client: Any, group: str) -> str:
    """The --describe output for one group (Kafka's layout)."""
    from kafkalike.client import LATEST
    from kafkalike.client.cluster import TopicPartition
    from kafkalike.coordinator.group_metadata import decode_assignment_partitions

    state, members, committed = await describe_group(client, group)
    if state == "Dead":
        return f"Error: Consumer group '{group}' does not exist."
    owner: dict[Any, Any] = {}
    for m in members:
        for tp in decode_assignment_partitions(bytes(m.member_assignment)) or []:
            owner[TopicPartition(tp.topic, tp.partition)] = m
    partitions = sorted(set(committed) | set(owner), key=lambda tp: (tp.topic, tp.partition))
    ends: dict[Any, int] = {}
    if partitions:
        try:
            ends = {tp: o.offset for tp, o in
                    (await client.list_offsets({tp: LATEST for tp in partitions})).items()}
        except Exception:
            ends = {}
    rows = []
    for tp in partitions:
        cur = committed.get(tp)
        end = ends.get(tp)
        lag = end - cur if cur is not None and end is not None and end >= 0 else None
        m = owner.get(tp)
        rows.append([group, tp.topic, str(tp.partition), _dash(cur), _dash(end), _dash(lag),
                     m.member_id if m else "-", m.client_host if m else "-", m.client_id if m else "-"])
    for m in members:  # members without partitions still show up, as in Kafka's tool
        if not any(owner.get(tp) is m for tp in partitions):
            rows.append([group, "-", "-", "-", "-", "-", m.member_id, m.client_host, m.client_id])
    header = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
              "HOST", "CLIENT-ID"]
    lines = []
    if not members:
        lines.append(f"Consumer group '{group}' has no active members.")
    lines.append("")
    lines.extend(_table([header] + rows))
    return "\n".join(lines)


async def describe_members_text(client: Any, group: str) -> str:
    """--describe --members: GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS (Kafka's layout)."""
    from kafkalike.coordinator.group_metadata import decode_assignment_partitions

    state, members, _ = await describe_group(client, group)
    if state == "Dead":
        return f"Error: Consumer group '{group}' does not exist."
    rows = [["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]]
    for m in members:
        rows.append([group, m.member_id, m.client_host, m.client_id,
                     str(len(decode_assignment_partitions(bytes(m.member_assignment)) or []))])
    lines = [f"Consumer group '{group}' has no active members."] if not members else []
    return "\n".join(lines + [""] + _table(rows))


async def describe_state_text(client: Any, group: str) -> str:
    """--describe --state: GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE #MEMBERS."""
    from kafkalike.protocol.api_keys import ApiKey

    conn = await client.any_connection()
    fc = await conn.call(ApiKey.FIND_COORDINATOR, key=group, key_type=0)
    d = await _call_coordinator(client, group, ApiKey.DESCRIBE_GROUPS, groups=[group],
                                include_authorized_operations=False)
    g = d.groups[0]
    if g.group_state == "Dead":
        return f"Error: Consumer group '{group}' does not exist."
    rows = [["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
            [group, f"{fc.host}:{fc.port} ({fc.node_id})", g.protocol_data or "", g.group_state,
             str(len(g.members))]]
    return "\n".join([""] + _table(rows))


def _dash(v: int | None) -> str:
    return "-" if v is None or v < 0 else str(v)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [" ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


async def _delete(client: Any, groups: list[str]) -> int:
    from kafkalike.protocol.api_keys import ApiKey

    failed = {}
    for g in groups:
        r = await _call_coordinator(client, g, ApiKey.DELETE_GROUPS, groups_names=[g])
        code = r.results[0].error_code
        if code.value != 0:
            failed[g] = code.name.upper()
    ok = [g for g in groups if g not in failed]
    if ok:
        print("Deletion of requested consumer groups (" + ", ".join(f"'{g}'" for g in ok) + ") was successful.")
    if failed:
        print("Deletion of some consumer groups failed:")
        for g, e in failed.items():
            print(f"* Group '{g}' could not be deleted due to: {e}")
        return 1
    return 0


async def _target_partitions(client: Any, args: argparse.Namespace, committed: dict[Any, int]) -> list[Any]:
    from kafkalike.client.cluster import TopicPartition

    if args.all_topics:
        return sorted(committed, key=lambda tp: (tp.topic, tp.partition))
    out = []
    for spec in args.topic:
        topic, _, parts = spec.partition(":")
        if parts:
            out.extend(TopicPartition(topic, int(p)) for p in parts.split(","))
        else:
            await client.refresh_metadata([topic])
            ps = client.cluster.partitions_for(topic)
            if not ps:
                raise GroupsError(f"topic '{topic}' does not exist")
            out.extend(TopicPartition(topic, p) for p in sorted(ps))
    return out


async def _reset(client: Any, args: argparse.Namespace) -> int:
    from kafkalike.client import EARLIEST, LATEST
    from kafkalike.protocol.api_keys import ApiKey

    rc = 0
    for group in args.group:
        state, members, committed = await describe_group(client, group)
        if state not in ("Empty", "Dead"):
            raise GroupsError(f"Assignments can only be reset if the group '{group}' is inactive, "
                              f"but the current state is {state}.")
        tps = await _target_partitions(client, args, committed)
        earliest = {tp: o.offset for tp, o in (await client.list_offsets({tp: EARLIEST for tp in tps})).items()}
        latest = {tp: o.offset for tp, o in (await client.list_offsets({tp: LATEST for tp in tps})).items()}
        new: dict[Any, int] = {}
        if args.to_datetime is not None:
            ts = parse_datetime_ms(args.to_datetime)
            found = await client.list_offsets({tp: ts for tp in tps})
        for tp in tps:
            lo, hi = earliest[tp], latest[tp]
            if args.to_earliest:
                target = lo
            elif args.to_latest:
                target = hi
            elif args.to_offset is not None:
                target = args.to_offset
            elif args.shift_by is not None:
                target = committed.get(tp, hi) + args.shift_by
            else:
                target = found[tp].offset if found[tp].offset >= 0 else hi
            new[tp] = min(max(target, lo), hi)
        if args.execute:
            by_topic: dict[str, list[dict]] = {}
            for tp, o in new.items():
                by_topic.setdefault(tp.topic, []).append({
                    "partition_index": tp.partition, "committed_offset": o, "committed_leader_epoch": -1,
                    "committed_metadata": ""})
            r = await _call_coordinator(client, group, ApiKey.OFFSET_COMMIT, group_id=group,
                                        generation_id_or_member_epoch=-1, member_id="", group_instance_id=None,
                                        topics=[{"name": t, "partitions": ps} for t, ps in by_topic.items()])
            errors = {f"{t.name}-{p.partition_index}": p.error_code.name.upper()
                      for t in r.topics for p in t.partitions if p.error_code.value != 0}
            if errors:
                print(f"Error: committing offsets of group '{group}' failed: {errors}", file=sys.stderr)
                rc = 1
        elif not args.dry_run:
            print("WARN: No action will be performed as the --execute option is missing. "
                  "In a future major release, the default behavior of this command will be to "
                  "prompt the user before executing the reset rather than doing a dry run. "
                  "You should add the --dry-run option explicitly if you are scripting this "
                  "command and want to keep the current default behavior without prompting.")
        print()
        rows = [["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]]
        rows += [[group, tp.topic, str(tp.partition), str(o)]
                 for tp, o in sorted(new.items(), key=lambda kv: (kv[0].topic, kv[0].partition))]
        print("\n".join(_table(rows)))
    return rc


# Kafka's Errors messages for the errors --delete-offsets shows per partition
_ERROR_MESSAGES = {
    "GROUP_SUBSCRIBED_TO_TOPIC": "The consumer group is actively subscribed to the topic",
    "UNKNOWN_TOPIC_OR_PARTITION": "This server does not host this topic-partition.",
    "GROUP_ID_NOT_FOUND": "The group id does not exist.",
    "NON_EMPTY_GROUP": "The group is not empty.",
    "INVALID_GROUP_ID": "The configured groupId is invalid.",
}


async def delete_offsets(client: Any, group: str, topics: list[str]) -> int:
    """--delete-offsets (Kafka's ConsumerGroupCommand.deleteOffsets over
    AdminClient.deleteConsumerGroupOffsets): one OffsetDelete to the group's coordinator for
    every partition named (``T:P,P``) or, for a bare ``T``, every partition the metadata lists
    (an unknown topic gets one row with partition "Not Provided"). Prints Kafka's top line
    for the group error (or "Request succeed ..."), then TOPIC PARTITION STATUS rows sorted as
    Kafka sorts them (topic + partition as one string). Returns 0, or 1 when any error was
    answered."""
    from kafkalike.client.cluster import TopicPartition
    from kafkalike.protocol.api_keys import ApiKey

    results: dict[Any, str | None] = {}
    wanted: list[Any] = []
    for spec in topics:
        topic, _, parts = spec.partition(":")
        if parts:
            wanted.extend(TopicPartition(topic, int(p)) for p in parts.split(","))
            continue
        await client.refresh_metadata([topic])
        ps = client.cluster.partitions_for(topic)
        if not ps:
            results[TopicPartition(topic, -1)] = _ERROR_MESSAGES["UNKNOWN_TOPIC_OR_PARTITION"]
        wanted.extend(TopicPartition(topic, p) for p in sorted(ps or ()))
    by_topic: dict[str, list[dict]] = {}
    for tp in dict.fromkeys(wanted):
        by_topic.setdefault(tp.topic, []).append({"partition_index": tp.partition})
    r = await _call_coordinator(client, group, ApiKey.OFFSET_DELETE, group_id=group,
                                topics=[{"name": t, "partitions": ps} for t, ps in by_topic.items()])
    top = r.error_code.name.upper()
    answered = {TopicPartition(t.name, int(p.partition_index)): p.error_code.name.upper()
                for t in r.topics for p in t.partitions}
    first_partition_error = next((e for e in answered.values() if e != "NONE"), None)
    for tp in dict.fromkeys(wanted):
        error = top if top != "NONE" else answered.get(tp, "NONE")
        results[tp] = None if error == "NONE" else _ERROR_MESSAGES.get(error, error)
    if top == "NONE" and first_partition_error is not None:
        top = first_partition_error  # Kafka's admin client fails all() with the first partition error
    messages = {
        "INVALID_GROUP_ID": f"'{group}' is not valid.",
        "GROUP_ID_NOT_FOUND": f"'{group}' does not exist.",
        "GROUP_AUTHORIZATION_FAILED": f"Access to '{group}' is not authorized.",
        "NON_EMPTY_GROUP": f"Deleting offsets of a consumer group '{group}' is forbidden if the group is not empty.",
        "GROUP_SUBSCRIBED_TO_TOPIC": "Encounter some partition level error, see the follow-up details:",
        "TOPIC_AUTHORIZATION_FAILED": "Encounter some partition level error, see the follow-up details:",
        "UNKNOWN_TOPIC_OR_PARTITION": "Encounter some partition level error, see the follow-up details:",
    }
    if top == "NONE":
        print(f"Request succeed for deleting offsets with topic {', '.join(topics)} group {group}")
    else:
        print(f"\nError: {messages.get(top, f'Encounter some unknown error: {top}')}", file=sys.stderr)
    fmt = "{:<30} {:<15} {:<15}"
    print("\n" + fmt.format("TOPIC", "PARTITION", "STATUS"))
    for tp, err in sorted(results.items(), key=lambda kv: kv[0].topic + str(kv[0].partition)):
        print(fmt.format(tp.topic, tp.partition if tp.partition >= 0 else "Not Provided",
                         "Successful" if err is None else f"Error: :{err}").rstrip())
    failed = top != "NONE" or any(e is not None for e in results.values())
    return 1 if failed else 0
