"""``kafkalike configs``: kafka-configs.sh for users' SCRAM credentials (Kafka's ConfigCommand,
KIP-554), through ZooKeeper or over the wire.

    kafkalike configs --zookeeper 127.0.0.1:2181 --alter --entity-type users --entity-name alice \\
        --add-config 'SCRAM-SHA-256=[iterations=8192,password=alice-secret],SCRAM-SHA-512=[password=alice-secret]'
    kafkalike configs --bootstrap-server 127.0.0.1:9092 --command-config admin.properties \\
        --describe --entity-type users [--entity-name alice]
    kafkalike configs --bootstrap-server ... --alter --entity-type users --entity-name alice \\
        --delete-config SCRAM-SHA-512

``--zookeeper`` writes ``/config/users/<user>`` itself (``{"version":1,"config":{"SCRAM-SHA-256":
"salt=...,stored_key=...,server_key=...,iterations=8192"}}`` plus a ``/config/changes``
notification), as Kafka's ConfigCommand does in ZooKeeper mode — the way to create the
inter-broker user before any broker runs. ``--bootstrap-server`` sends AlterUserScramCredentials
/ DescribeUserScramCredentials (salted password computed here, as Kafka's admin client does);
``--command-config FILE`` holds Kafka client properties (``security.protocol``,
``sasl.mechanism``, ``sasl.jaas.config``, ``ssl.truststore.*``).

Output is Kafka's: ``Completed updating config for user alice.``; describe over the wire
``SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192``
(kafkalike has no quotas yet, so the ``Quota configs ...`` line Kafka prints before it is left
out); through ZooKeeper ``Configs for user-principal 'alice' are SCRAM-SHA-256=salt=...``.
Errors: one line on stderr, exit code 1. Only ``--entity-type users`` is served so far.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

from kafkalike.broker.sasl_scram import (ScramCredentialError, ScramCredentialStore, ScramFormatter, ScramMechanism,
                                         credential_to_string)

__all__ = ["register", "parse_add_config", "client_security", "CommandError"]


class CommandError(Exception):
    """One line for stderr."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("configs", help="add, delete and describe users' SCRAM credentials (kafka-configs.sh)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--zookeeper", metavar="HOST:PORT[/chroot]",
                       help="write/read /config/users in ZooKeeper directly")
    where.add_argument("--bootstrap-server", metavar="HOST:PORT[,...]", help="the broker to send requests to")
    p.add_argument("--command-config", metavar="FILE",
                   help="client properties: security.protocol, sasl.mechanism, sasl.jaas.config, ssl.*")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--alter", action="store_true", help="alter the entity's configs")
    what.add_argument("--describe", action="store_true", help="list the entity's configs")
    p.add_argument("--entity-type", required=True, choices=["users"], help="only users (SCRAM credentials)")
    p.add_argument("--entity-name", help="the user name (describe: all users when left out)")
    p.add_argument("--add-config", metavar="K=[iterations=N,password=P],...",
                   help="SCRAM-SHA-256=[iterations=8192,password=alice-secret] (iterations default 4096)")
    p.add_argument("--delete-config", metavar="K,...", help="mechanisms to delete, e.g. SCRAM-SHA-512")
    p.set_defaults(func=run)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside [...] (Kafka's ConfigCommand.parseConfigsToBeAdded)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return [s.strip() for s in out if s.strip()]


def parse_add_config(text: str) -> dict[ScramMechanism, tuple[int, str]]:
    """``SCRAM-SHA-256=[iterations=8192,password=p],SCRAM-SHA-512=[password=q]`` ->
    {mechanism: (iterations, password)}; iterations default to the mechanism's minimum (4096).
    Raises CommandError for another key, a missing password, or bad iterations."""
    out: dict[ScramMechanism, tuple[int, str]] = {}
    for item in _split_top_level(text):
        name, sep, value = item.partition("=")
        mechanism = ScramMechanism.for_name(name.strip())
        if mechanism is None or not sep:
            raise CommandError(f"Invalid config(s): {name.strip()} (kafkalike configs alters SCRAM-SHA-256 and "
                               "SCRAM-SHA-512 of users)")
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            value = value[1:-1]
        fields = dict(part.partition("=")[::2] for part in value.split(",") if part)
        password = fields.get("password")
        if not password:
            raise CommandError(f"Invalid credential config {name}: password is required")
        try:
            iterations = int(fields.get("iterations", mechanism.min_iterations))
        except ValueError:
            raise CommandError(f"Invalid credential config {name}: iterations must be an integer") from None
        if iterations < mechanism.min_iterations:
            raise CommandError(f"Invalid credential config {name}: iterations {iterations} is less than the "
                               f"minimum {mechanism.min_iterations}")
        out[mechanism] = (iterations, password)
    return out


def _parse_delete_config(text: str | None) -> list[ScramMechanism]:
    out = []
    for name in (text or "").split(","):
        if not name.strip():
            continue
        mechanism = ScramMechanism.for_name(name.strip())
        if mechanism is None:
            raise CommandError(f"Invalid config(s): {name.strip()}")
        out.append(mechanism)
    return out


def client_security(path: str | None) -> tuple[Any, Any]:
    """(ssl_context, SaslClientConfig) from a Kafka client properties file (None, None
    without one, or for PLAINTEXT). Raises CommandError (one line) for a bad file."""
    if path is None:
        return None, None
    from kafkalike.broker.kafka_config import parse_properties
    from kafkalike.broker.ssl_factory import SslConfigError, client_context
    from kafkalike.client.sasl import JaasConfigError, SaslClientConfig

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    props = {key: value for _, key, value in parse_properties(text)}
    protocol = props.get("security.protocol", "PLAINTEXT").strip().upper()
    try:
        sasl = SaslClientConfig.from_properties(props)
        ssl_context = None
        if protocol in ("SSL", "SASL_SSL"):
            ssl_context = client_context({k: (k, v) for k, v in props.items() if k.startswith("ssl.")})
    except (JaasConfigError, SslConfigError) as exc:
        raise CommandError(f"{path}: {exc}") from None
    return ssl_context, sasl


def run(args: argparse.Namespace) -> int:
    try:
        if args.alter:
            if not args.entity_name:
                raise CommandError("an entity name must be specified with --alter of users")
            adds = parse_add_config(args.add_config or "")
            deletes = _parse_delete_config(args.delete_config)
            if not adds and not deletes:
                raise CommandError("At least one of --add-config or --delete-config must be specified with --alter")
        import trio

        if args.zookeeper:
            trio.run(_run_zookeeper, args)
        else:
            trio.run(_run_wire, args)
    except (CommandError, ScramCredentialError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


async def _run_zookeeper(args: argparse.Namespace) -> None:
    from kafkalike.coordination import ZooKeeperClient
    from kafkalike.coordination.kafka_zk_client import KafkaZkClient

    try:
        async with ZooKeeperClient(args.zookeeper, session_timeout_ms=6000, connection_timeout_ms=5000,
                                   name="kafkalike-configs") as zk:
            await _zookeeper_command(KafkaZkClient(zk), args)
    except (CommandError, ScramCredentialError):
        raise
    except Exception as exc:
        raise CommandError(f"ZooKeeper at {args.zookeeper}: {exc}") from None


async def _zookeeper_command(kafka_zk: Any, args: argparse.Namespace) -> None:
    store = ScramCredentialStore(lambda: kafka_zk)
    if args.alter:
        adds = parse_add_config(args.add_config or "")
        deletes = _parse_delete_config(args.delete_config)
        upserts = {m: ScramFormatter(m).generate_credential(password, iterations)
                   for m, (iterations, password) in adds.items()}
        await store.alter(args.entity_name, upserts, deletes)
        print(f"Completed updating config for user {args.entity_name}.")
        return
    users = [args.entity_name] if args.entity_name else sorted(await store.users())
    for user in users:
        config = await store.user_config(user)
        text = ",".join(f"{k}={v}" for k, v in sorted(config.items()))
        print(f"Configs for user-principal '{user}' are {text}")


async def _run_wire(args: argparse.Namespace) -> None:
    from kafkalike.client.connection import KafkaConnection
    from kafkalike.client.errors import ClientError
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.errors import ErrorCode, kafka_name

    ssl_context, sasl = client_security(args.command_config)
    host, _, port = args.bootstrap_server.split(",")[0].strip().rpartition(":")
    try:
        async with KafkaConnection.open(host, int(port), client_id="kafkalike-configs", ssl_context=ssl_context,
                                        sasl=sasl) as conn:
            if args.alter:
                adds = parse_add_config(args.add_config or "")
                deletes = _parse_delete_config(args.delete_config)
                upsertions = []
                for mechanism, (iterations, password) in adds.items():
                    salt = secrets.token_bytes(32)
                    salted = ScramFormatter(mechanism).salted_password(password, salt, iterations)
                    upsertions.append({"name": args.entity_name, "mechanism": mechanism.type, "iterations": iterations,
                                       "salt": salt, "salted_password": salted})
                response = await conn.call(
                    ApiKey.ALTER_USER_SCRAM_CREDENTIALS,
                    deletions=[{"name": args.entity_name, "mechanism": m.type} for m in deletes],
                    upsertions=upsertions)
                for result in response.results:
                    if result.error_code != ErrorCode.none:
                        raise CommandError(f"{kafka_name(ErrorCode(result.error_code))}: {result.error_message}")
                print(f"Completed updating config for user {args.entity_name}.")
                return
            users = None if not args.entity_name else [{"name": args.entity_name}]
            response = await conn.call(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, users=users)
            if response.error_code != ErrorCode.none:
                raise CommandError(f"{kafka_name(ErrorCode(response.error_code))}: {response.error_message}")
            for result in response.results:
                if result.error_code != ErrorCode.none:
                    if args.entity_name:  # Kafka prints the failure for a named user
                        print(f"Error retrieving SCRAM credential configs for user-principal '{result.user}': "
                              f"{kafka_name(ErrorCode(result.error_code))}: {result.error_message}")
                    continue
                infos = ", ".join(f"{ScramMechanism.for_type(int(i.mechanism)).mechanism_name}="  # type: ignore[union-attr]  # mechanism ids in an answer are known ones
                                  f"iterations={i.iterations}" for i in result.credential_infos)
                print(f"SCRAM credential configs for user-principal '{result.user}' are {infos}")
    except ClientError as exc:
        raise CommandError(str(exc)) from None


def credential_text(mechanism: ScramMechanism, password: str, iterations: int) -> str:
    """The /config/users value for a new credential (what --zookeeper writes)."""
    return credential_to_string(ScramFormatter(mechanism).generate_credential(password, iterations))
