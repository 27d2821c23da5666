"""``kafkalike acls``: kafka-acls.sh (Kafka's kafka.admin.AclCommand) over the wire with
CreateAcls / DescribeAcls / DeleteAcls.

    kafkalike acls --bootstrap-server 127.0.0.1:9093 --command-config admin.properties \\
        --add --allow-principal User:bob --operation Read --topic t
    kafkalike acls --bootstrap-server ... --add --allow-principal User:bob --consumer --topic t --group g
    kafkalike acls --bootstrap-server ... --add --allow-principal User:alice --producer --topic t --idempotent
    kafkalike acls --bootstrap-server ... --list [--topic t] [--principal User:bob]
    kafkalike acls --bootstrap-server ... --remove --force --allow-principal User:bob --operation Read --topic t

Resources: ``--topic``, ``--group``, ``--transactional-id`` (each may repeat, ``*`` = all) and
``--cluster``; ``--resource-pattern-type`` LITERAL (default for --add/--remove), PREFIXED, or
for --list/--remove also ANY (default for --list) and MATCH. ``--operation`` repeats (default
All); hosts default to ``*``. ``--producer`` = Write, Describe, Create on the topics (+
IdempotentWrite on the cluster with ``--idempotent``, Write and Describe on the transactional
ids); ``--consumer`` = Read, Describe on the topics and Read on the groups. Output is
AclCommand's (``Adding ACLs for resource `ResourcePattern(...)`:`` then the resource's current
ACLs; ``Current ACLs for resource ...`` for --list). --remove without --force asks first, as
Kafka does. Errors: one line on stderr, exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kafkalike.broker.acl_authorizer import (
    CLUSTER_NAME,
    AccessControlEntry,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourcePattern,
    ResourceType,
)
from kafkalike.cli.configs import CommandError, client_security

__all__ = ["register", "run"]

NL = "\n"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("acls", help="add, list and remove ACLs (kafka-acls.sh)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,...]", help="the broker to ask")
    p.add_argument("--command-config", metavar="FILE",
                   help="client properties: security.protocol, sasl.mechanism, sasl.jaas.config, ssl.*")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--add", action="store_true", help="add ACLs")
    what.add_argument("--remove", action="store_true", help="remove ACLs")
    what.add_argument("--list", action="store_true", help="list ACLs")
    p.add_argument("--topic", action="append", default=[], help="topic resource (repeatable; * = all)")
    p.add_argument("--group", action="append", default=[], help="consumer group resource (repeatable)")
    p.add_argument("--transactional-id", action="append", default=[], help="transactional id resource")
    p.add_argument("--cluster", action="store_true", help="the cluster resource")
    p.add_argument("--resource-pattern-type", type=str.upper, default=None,
                   choices=["LITERAL", "PREFIXED", "ANY", "MATCH"], help="how resource names match")
    p.add_argument("--allow-principal", action="append", default=[], help="User:name (repeatable)")
    p.add_argument("--deny-principal", action="append", default=[], help="User:name (repeatable)")
    p.add_argument("--allow-host", action="append", default=[], help="host address (default *)")
    p.add_argument("--deny-host", action="append", default=[], help="host address (default *)")
    p.add_argument("--operation", action="append", default=[],
                   help="Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, "
                        "AlterConfigs, IdempotentWrite, All (repeatable; default All)")
    p.add_argument("--principal", action="append", default=[], help="--list: only ACLs of these principals")
    p.add_argument("--producer", action="store_true", help="the ACLs a producer needs")
    p.add_argument("--consumer", action="store_true", help="the ACLs a consumer needs")
    p.add_argument("--idempotent", action="store_true", help="with --producer: IdempotentWrite on the cluster")
    p.add_argument("--force", action="store_true", help="--remove without asking")
    p.set_defaults(func=run)


def _resources(args: argparse.Namespace, pattern: PatternType) -> list[ResourcePattern]:
    out = [ResourcePattern(ResourceType.TOPIC, t, pattern) for t in args.topic]
    out += [ResourcePattern(ResourceType.GROUP, g, pattern) for g in args.group]
    out += [ResourcePattern(ResourceType.TRANSACTIONAL_ID, t, pattern) for t in args.transactional_id]
    if args.cluster:
        out.append(ResourcePattern(ResourceType.CLUSTER, CLUSTER_NAME, pattern))
    return out


def _operations(args: argparse.Namespace) -> list[AclOperation]:
    ops: list[AclOperation] = []
    for text in args.operation or ["All"]:
        op = AclOperation.parse(text)
        if op in (AclOperation.UNKNOWN, AclOperation.ANY):
            raise CommandError(f"Invalid operation {text!r}")
        ops.append(op)
    return ops


def _entries(args: argparse.Namespace, ops: list[AclOperation]) -> list[AccessControlEntry]:
    for p in args.allow_principal + args.deny_principal:
        if ":" not in p:
            raise CommandError(f"Could not parse principal from `{p}` (no colon is found between principal "
                               "type and principal name)")
    out = []
    for principals, hosts, perm in ((args.allow_principal, args.allow_host, AclPermissionType.ALLOW),
                                    (args.deny_principal, args.deny_host, AclPermissionType.DENY)):
        for principal in principals:
            for host in hosts or ["*"]:
                out += [AccessControlEntry(principal, host, op, perm) for op in ops]
    return out


def _bindings_to_add(args: argparse.Namespace) -> dict[ResourcePattern, list[AccessControlEntry]]:
    """resource -> entries, as AclCommand.getResourceToAcls (with the --producer / --consumer
    conveniences)."""
    pattern = PatternType[args.resource_pattern_type or "LITERAL"]
    if pattern not in (PatternType.LITERAL, PatternType.PREFIXED):
        raise CommandError(f"A '--resource-pattern-type' value of '{pattern.name}' is not valid when adding acls.")
    out: dict[ResourcePattern, list[AccessControlEntry]] = {}

    def add(resources: list[ResourcePattern], ops: list[AclOperation]) -> None:
        for r in resources:
            out.setdefault(r, [])
            out[r] += [e for e in _entries(args, ops) if e not in out[r]]

    if args.producer or args.consumer:
        topics = [ResourcePattern(ResourceType.TOPIC, t, pattern) for t in args.topic]
        if not topics:
            raise CommandError("With --producer or --consumer you must specify a --topic")
        if args.producer:
            add(topics, [AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.CREATE])
            add([ResourcePattern(ResourceType.TRANSACTIONAL_ID, t, pattern) for t in args.transactional_id],
                [AclOperation.WRITE, AclOperation.DESCRIBE])
            if args.idempotent:
                add([ResourcePattern(ResourceType.CLUSTER, CLUSTER_NAME, PatternType.LITERAL)],
                    [AclOperation.IDEMPOTENT_WRITE])
        if args.consumer:
            if not args.group:
                raise CommandError("With --consumer you must specify a --group")
            add(topics, [AclOperation.READ, AclOperation.DESCRIBE])
            add([ResourcePattern(ResourceType.GROUP, g, pattern) for g in args.group], [AclOperation.READ])
    else:
        resources = _resources(args, pattern)
        if not resources:
            raise CommandError("You must provide at least one resource: --topic <topic> or --cluster or "
                               "--group <group> or --transactional-id <id>")
        add(resources, _operations(args))
    if not any(out.values()):
        raise CommandError("You must specify one of: --allow-principal, --deny-principal when trying to add ACLs.")
    return out


def _print_acls(header: str, pattern: Any, entries: list[AccessControlEntry]) -> None:
    body = NL.join("\t" + str(e) for e in entries)
    print(f"{header} `{pattern}`: {NL} {body} {NL}")  # println of AclCommand's text: a blank line follows


def run(args: argparse.Namespace) -> int:
    import trio

    try:
        trio.run(_run, args)
    except CommandError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


def _pattern_of(r: Any) -> ResourcePattern:
    return ResourcePattern(ResourceType(int(r.resource_type)), r.resource_name, PatternType(int(r.pattern_type)))


async def _describe(conn: Any, resource_type: ResourceType, name: str | None, pattern: PatternType,
                    principal: str | None = None) -> dict[ResourcePattern, list[AccessControlEntry]]:
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.errors import ErrorCode, kafka_name

    response = await conn.call(ApiKey.DESCRIBE_ACLS, resource_type_filter=int(resource_type),
                               resource_name_filter=name, pattern_type_filter=int(pattern),
                               principal_filter=principal, host_filter=None, operation=int(AclOperation.ANY),
                               permission_type=int(AclPermissionType.ANY))
    if response.error_code != ErrorCode.none:
        raise CommandError(f"{kafka_name(ErrorCode(response.error_code))}: {response.error_message}")
    return {_pattern_of(r): [AccessControlEntry(a.principal, a.host, AclOperation(int(a.operation)),
                                                AclPermissionType(int(a.permission_type))) for a in r.acls]
            for r in response.resources}


async def _run(args: argparse.Namespace) -> None:
    from kafkalike.client.connection import KafkaConnection
    from kafkalike.client.errors import ClientError
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.errors import ErrorCode, kafka_name

    ssl_context, sasl = client_security(args.command_config)
    host, _, port = args.bootstrap_server.split(",")[0].strip().rpartition(":")
    try:
        async with KafkaConnection.open(host, int(port), client_id="kafkalike-acls", ssl_context=ssl_context,
                                        sasl=sasl) as conn:
            if args.add:
                to_add = _bindings_to_add(args)
                for pattern, entries in to_add.items():
                    _print_acls("Adding ACLs for resource", pattern, entries)
                creations = [dict(resource_type=int(p.resource_type), resource_name=p.name,
                                  resource_pattern_type=int(p.pattern_type), principal=e.principal, host=e.host,
                                  operation=int(e.operation), permission_type=int(e.permission_type))
                             for p, entries in to_add.items() for e in entries]
                response = await conn.call(ApiKey.CREATE_ACLS, creations=creations)
                for r in response.results:
                    if r.error_code != ErrorCode.none:
                        raise CommandError(f"{kafka_name(ErrorCode(r.error_code))}: {r.error_message}")
                for pattern in to_add:
                    current = await _describe(conn, pattern.resource_type, pattern.name, pattern.pattern_type)
                    _print_acls("Current ACLs for resource", pattern, current.get(pattern, []))
            elif args.list:
                pattern_type = PatternType[args.resource_pattern_type or "ANY"]
                resources: list[ResourcePattern | None] = [*_resources(args, pattern_type)] or [None]
                for principal in args.principal or [None]:
                    for r in resources:
                        found = await _describe(conn, r.resource_type if r else ResourceType.ANY,
                                                r.name if r else None, pattern_type, principal)
                        if principal is not None:
                            print(f"ACLs for principal `{principal}`")
                        for pattern, entries in sorted(found.items()):
                            _print_acls("Current ACLs for resource", pattern, entries)
            else:
                await _remove(conn, args)
    except ClientError as exc:
        raise CommandError(str(exc)) from None


async def _remove(conn: Any, args: argparse.Namespace) -> None:
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.errors import ErrorCode, kafka_name

    pattern_type = PatternType[args.resource_pattern_type or "LITERAL"]
    resources = _resources(args, pattern_type)
    if not resources:
        raise CommandError("You must provide at least one resource: --topic <topic> or --cluster or "
                           "--group <group> or --transactional-id <id>")
    entries = _entries(args, _operations(args)) if (args.allow_principal or args.deny_principal) else []
    for r in resources:
        what = NL.join("\t" + str(e) for e in entries) if entries else "all matching ACLs"
        if not args.force:
            answer = input(f"Are you sure you want to remove ACLs: {NL} {what} {NL} from resource filter "
                           f"`{r}`? (y/n){NL}")
            if answer.strip().lower() != "y":
                continue
        filters = [dict(resource_type_filter=int(r.resource_type), resource_name_filter=r.name,
                        pattern_type_filter=int(r.pattern_type), principal_filter=e.principal, host_filter=e.host,
                        operation=int(e.operation), permission_type=int(e.permission_type)) for e in entries] or [
            dict(resource_type_filter=int(r.resource_type), resource_name_filter=r.name,
                 pattern_type_filter=int(r.pattern_type), principal_filter=None, host_filter=None,
                 operation=int(AclOperation.ANY), permission_type=int(AclPermissionType.ANY))]
        response = await conn.call(ApiKey.DELETE_ACLS, filters=filters)
        for f in response.filter_results:
            if f.error_code != ErrorCode.none:
                raise CommandError(f"{kafka_name(ErrorCode(f.error_code))}: {f.error_message}")
        current = await _describe(conn, r.resource_type, r.name, r.pattern_type)
        _print_acls("Current ACLs for resource", r, current.get(r, []))
