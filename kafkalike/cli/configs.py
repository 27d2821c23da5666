"""``kafkalike configs``: kafka-configs.sh for users and clients — SCRAM credentials (KIP-554) and
client quotas (KIP-546: producer_byte_rate, consumer_byte_rate, request_percentage,
controller_mutation_rate) — through ZooKeeper or over the wire (Kafka's ConfigCommand).

    kafkalike configs --zookeeper 127.0.0.1:2181 --alter --entity-type users --entity-name alice \\
        --add-config 'SCRAM-SHA-256=[iterations=8192,password=alice-secret],SCRAM-SHA-512=[password=alice-secret]'
    kafkalike configs --bootstrap-server 127.0.0.1:9092 --command-config admin.properties \\
        --describe --entity-type users [--entity-name alice]
    kafkalike configs --bootstrap-server ... --alter --entity-type users --entity-name alice \\
        --delete-config SCRAM-SHA-512
    kafkalike configs --bootstrap-server ... --alter --entity-type clients --entity-name c1 \\
        --add-config 'producer_byte_rate=1048576,consumer_byte_rate=2097152,request_percentage=50'
    kafkalike configs --bootstrap-server ... --alter --entity-type users --entity-name alice \\
        --entity-type clients --entity-default --add-config producer_byte_rate=1024
    kafkalike configs --bootstrap-server ... --describe --entity-type clients

``--zookeeper`` writes ``/config/users/<user>`` (``/config/clients/<id>``,
``/config/users/<user>/clients/<id>``, ``<default>`` for a default entity) itself, plus a
``/config/changes`` notification, as Kafka's ConfigCommand does in ZooKeeper mode — the way to
create the inter-broker user before any broker runs; on a secured ZooKeeper it logs in as the JAAS
``Client`` section of ``--jaas-config`` (else of ``-Djava.security.auth.login.config`` in
KAFKA_OPTS, as Kafka's tool) and creates znodes with Kafka's secure ACLs. ``--bootstrap-server``
sends AlterUserScramCredentials / DescribeUserScramCredentials (salted password computed here, as
Kafka's admin client does) and AlterClientQuotas / DescribeClientQuotas; ``--command-config FILE``
holds Kafka client properties (``security.protocol``, ``sasl.mechanism``, ``sasl.jaas.config``,
``ssl.truststore.*``), read by ``cluster.client_properties.ClientProperties``.

Entities (ConfigCommand's rules): ``--entity-type`` users and/or clients (users first), each
matched in order by an ``--entity-name``; a type left without a name takes the default entity
with ``--entity-default``, else (describe only) every entity of the type.

Brokers (dynamic broker configs, KIP-226), over the wire only:
``--entity-type brokers --entity-name 1`` (or ``--entity-default``: the cluster-wide defaults)
with ``--add-config k=v,...`` / ``--delete-config k,...`` (deleting a key that is not set is
"Invalid config(s): k", as Kafka's); ``--describe`` prints the dynamic configs (``--all``: every
config) as Kafka's ``Dynamic configs for broker 1 are:`` / ``  log.retention.ms=3600000
sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=3600000, ...}``; without a
name it describes every live broker, then the defaults. Kafka 3.9's tool replaces the whole
dynamic set with AlterConfigs; this one sends IncrementalAlterConfigs (same znode afterwards).

Output is Kafka's: ``Completed updating config for user alice.`` / ``... for client c1.`` /
``Completed updating default config for users in the cluster.``; describe over the wire
``Quota configs for user-principal 'alice', client-id 'c1' are producer_byte_rate=1024.0`` (Java's
Double.toString) then, for users only, ``SCRAM credential configs for user-principal 'alice' are
SCRAM-SHA-256=iterations=8192``; through ZooKeeper ``Configs for user-principal 'alice' are
SCRAM-SHA-256=salt=...,producer_byte_rate=1024``. Errors: one line on stderr, exit code 1.
"""

from __future__ import annotations

import argparse
import decimal
import secrets
import sys
from typing import Any

import attrs

from kafkalike.broker.sasl_scram import (ScramCredentialError, ScramCredentialStore, ScramFormatter, ScramMechanism,
                                         credential_to_string)

__all__ = ["register", "parse_add_config", "parse_quota_config", "client_security", "java_double", "CommandError"]

#: client quota keys (Kafka's QuotaConfigs for user / client-id entities)
QUOTA_KEYS = ("producer_byte_rate", "consumer_byte_rate", "request_percentage", "controller_mutation_rate")
USER_TYPE, CLIENT_TYPE, BROKER_TYPE = "users", "clients", "brokers"
#: Kafka's ConfigEntry.ConfigSource names by id (DescribeConfigs config_source)
SOURCE_NAMES = {0: "UNKNOWN", 1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG",
                3: "DYNAMIC_DEFAULT_BROKER_CONFIG", 4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG",
                6: "DYNAMIC_BROKER_LOGGER_CONFIG"}


class CommandError(Exception):
    """One line for stderr."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("configs", help="add, delete and describe users' SCRAM credentials and users' / clients' "
                       "quotas (kafka-configs.sh)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--zookeeper", metavar="HOST:PORT[/chroot]",
                       help="write/read /config/users in ZooKeeper directly")
    where.add_argument("--bootstrap-server", metavar="HOST:PORT[,...]", help="the broker to send requests to")
    p.add_argument("--command-config", metavar="FILE",
                   help="client properties: security.protocol, sasl.mechanism, sasl.jaas.config, ssl.*")
    p.add_argument("--jaas-config", metavar="FILE",
                   help="with --zookeeper: JAAS file whose Client section logs in to ZooKeeper (SASL DIGEST-MD5; "
                        "default: KAFKA_OPTS's -Djava.security.auth.login.config)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--alter", action="store_true", help="alter the entity's configs")
    what.add_argument("--describe", action="store_true", help="list the entity's configs")
    p.add_argument("--entity-type", required=True, action="append", choices=[USER_TYPE, CLIENT_TYPE, BROKER_TYPE],
                   help="users or clients (both, repeated, for a user's client-id quota), or brokers")
    p.add_argument("--entity-name", action="append", default=[],
                   help="the user / client id, in --entity-type order (describe: every entity when left out)")
    p.add_argument("--entity-default", action="store_true",
                   help="the default user / client id (for the --entity-type given no --entity-name)")
    p.add_argument("--add-config", metavar="K=V,...",
                   help="SCRAM-SHA-256=[iterations=8192,password=alice-secret] (iterations default 4096); "
                        "producer_byte_rate=1048576,consumer_byte_rate=...,request_percentage=50")
    p.add_argument("--delete-config", metavar="K,...",
                   help="keys to delete, e.g. SCRAM-SHA-512 or producer_byte_rate")
    p.add_argument("--all", action="store_true", help="with --describe of a broker: every config, not only dynamic ones")
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


def parse_quota_config(text: str) -> dict[str, float]:
    """The client quota part of ``--add-config``: ``producer_byte_rate=1024,request_percentage=50``
    -> {key: value}; SCRAM keys are left to ``parse_add_config``. Raises CommandError for a
    value that is not a number."""
    out: dict[str, float] = {}
    for item in _split_top_level(text):
        name, _, value = item.partition("=")
        if name.strip() in QUOTA_KEYS:
            try:
                out[name.strip()] = float(value)
            except ValueError:
                raise CommandError(f"Invalid value {value!r} for {name.strip()}: a number") from None
    return out


def parse_add_config(text: str) -> dict[ScramMechanism, tuple[int, str]]:
    """``SCRAM-SHA-256=[iterations=8192,password=p],SCRAM-SHA-512=[password=q]`` ->
    {mechanism: (iterations, password)}; iterations default to the mechanism's minimum (4096).
    Quota keys (QUOTA_KEYS) are skipped (``parse_quota_config``). Raises CommandError for another
    key, a missing password, or bad iterations."""
    out: dict[ScramMechanism, tuple[int, str]] = {}
    for item in _split_top_level(text):
        name, sep, value = item.partition("=")
        if name.strip() in QUOTA_KEYS:
            continue
        mechanism = ScramMechanism.for_name(name.strip())
        if mechanism is None or not sep:
            raise CommandError(f"Invalid config(s): {name.strip()} (users and clients take "
                               f"{', '.join(QUOTA_KEYS)}; users also SCRAM-SHA-256 and SCRAM-SHA-512)")
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


def _parse_delete_quotas(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip() in QUOTA_KEYS]


def _parse_delete_config(text: str | None) -> list[ScramMechanism]:
    out = []
    for name in (text or "").split(","):
        if not name.strip() or name.strip() in QUOTA_KEYS:
            continue
        mechanism = ScramMechanism.for_name(name.strip())
        if mechanism is None:
            raise CommandError(f"Invalid config(s): {name.strip()}")
        out.append(mechanism)
    return out


def client_security(path: str | None) -> tuple[Any, Any]:
    """(ssl_context, SaslClientConfig) from a Kafka client properties file (None, None
    without one, or for PLAINTEXT), through ClientProperties. Raises CommandError (one line)
    for a bad file."""
    if path is None:
        return None, None
    from kafkalike.cluster.client_properties import ClientProperties, ClientPropertiesError

    try:
        return ClientProperties.load(path).kafkalike_security()
    except ClientPropertiesError as exc:
        raise CommandError(str(exc)) from None


def java_double(value: float) -> str:
    """``value`` as Java's Double.toString writes it (what kafka-configs.sh prints for quotas):
    ``1024.0``, ``0.5``, ``1.048576E7`` (10^7 and over), ``1.0E-4`` (under 10^-3)."""
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(float(value))
        return text if "e" not in text else format(decimal.Decimal(text), "f")
    sign, digits, exponent = decimal.Decimal(repr(float(value))).as_tuple()
    d = "".join(map(str, digits)).rstrip("0") or "0"
    power = len(digits) + int(exponent) - 1
    return f"{'-' if sign else ''}{d[0]}.{d[1:] or '0'}E{power}"


@attrs.frozen
class Entity:
    """The command's entity: ``types`` (users / clients, users first) and their ``names``
    (None: every entity of the type, describe only; "" the default entity)."""

    types: tuple[str, ...]
    names: tuple[str | None, ...]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Entity":
        types = list(dict.fromkeys(args.entity_type))
        names: list[str | None] = list(args.entity_name)
        if len(names) > len(types):
            raise CommandError("More --entity-name than --entity-type were given")
        while len(names) < len(types):
            names.append("" if args.entity_default else None)
        pairs = sorted(zip(types, names), key=lambda tn: tn[0] != USER_TYPE)  # users first
        return cls(tuple(t for t, _ in pairs), tuple(n for _, n in pairs))

    def name_of(self, entity_type: str) -> str | None:
        return self.names[self.types.index(entity_type)] if entity_type in self.types else None

    @property
    def head(self) -> tuple[str, str | None]:
        return self.types[0], self.names[0]

    def quota_entity(self) -> Any:
        """The client_quota_manager.QuotaEntity (alter: every name given or default)."""
        from kafkalike.broker.client_quota_manager import DEFAULT, QuotaEntity

        def of(t: str) -> str | None:
            name = self.name_of(t)
            return None if t not in self.types else (DEFAULT if name == "" else name)
        return QuotaEntity(user=of(USER_TYPE), client_id=of(CLIENT_TYPE))


def _completed(entity: Entity) -> str:
    entity_type, name = entity.head
    if name:
        return f"Completed updating config for {entity_type[:-1]} {name}."
    return f"Completed updating default config for {entity_type} in the cluster."


def _quota_line(parts: list[tuple[str, str | None]], values: list[tuple[str, float]]) -> str:
    """Kafka's ``Quota configs for user-principal 'u', client-id 'c' are k=v, k=v`` (None: default)."""
    label = {"user": "user-principal", "client-id": "client-id"}
    who = ", ".join(f"{label[t]} '{n}'" if n is not None else f"the default {label[t]}" for t, n in parts)
    return f"Quota configs for {who} are " + ", ".join(f"{k}={java_double(v)}" for k, v in values)


def run(args: argparse.Namespace) -> int:
    if BROKER_TYPE in args.entity_type:
        return run_brokers(args)
    try:
        entity = Entity.from_args(args)
        if args.alter:
            if any(n is None for n in entity.names):
                raise CommandError("an entity name or --entity-default must be specified with --alter")
            adds = parse_add_config(args.add_config or "")
            deletes = _parse_delete_config(args.delete_config)
            quota_adds, quota_deletes = parse_quota_config(args.add_config or ""), _parse_delete_quotas(args.delete_config)
            if not adds and not deletes and not quota_adds and not quota_deletes:
                raise CommandError("At least one of --add-config or --delete-config must be specified with --alter")
            if (adds or deletes) and (entity.types != (USER_TYPE,) or not entity.names[0]):
                raise CommandError("SCRAM credentials are altered for one named user (--entity-type users "
                                   "--entity-name NAME)")
        import trio

        if args.zookeeper:
            trio.run(_run_zookeeper, args)
        else:
            trio.run(_run_wire, args)
    except (CommandError, ScramCredentialError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


def _zookeeper_login(args: argparse.Namespace) -> Any:
    """--jaas-config's Client section, else KAFKA_OPTS's JAAS file's (Kafka's tool reads the JVM
    property); None: anonymous. Raises CommandError for an unreadable file."""
    from kafkalike.coordination.errors import CoordinationError
    from kafkalike.coordination.zookeeper_client import read_jaas_login

    try:
        return read_jaas_login(args.jaas_config or None)
    except CoordinationError as exc:
        raise CommandError(str(exc)) from None


async def _run_zookeeper(args: argparse.Namespace) -> None:
    import functools

    from kafkalike.coordination import ZooKeeperClient
    from kafkalike.coordination.kafka_zk_client import KafkaZkClient, default_acls

    sasl = _zookeeper_login(args)
    try:  # logged in: Kafka's secure ACLs on what it creates (ConfigCommand: JaasUtils.isZkSaslEnabled)
        async with ZooKeeperClient(args.zookeeper, session_timeout_ms=6000, connection_timeout_ms=5000,
                                   name="kafkalike-configs", sasl=sasl,
                                   acl_provider=functools.partial(default_acls, True) if sasl else None) as zk:
            await _zookeeper_command(zk, KafkaZkClient(zk), args)
    except (CommandError, ScramCredentialError):
        raise
    except Exception as exc:
        raise CommandError(f"ZooKeeper at {args.zookeeper}: {exc}") from None


async def _zookeeper_command(zk: Any, kafka_zk: Any, args: argparse.Namespace) -> None:
    from kafkalike.broker.client_quota_manager import DEFAULT, ClientQuotaManager, QuotaEntity

    entity = Entity.from_args(args)
    store = ScramCredentialStore(lambda: kafka_zk)
    quotas = ClientQuotaManager()
    quotas.use_zookeeper(zk)
    if args.alter:
        adds = parse_add_config(args.add_config or "")
        deletes = _parse_delete_config(args.delete_config)
        if adds or deletes:
            upserts = {m: ScramFormatter(m).generate_credential(password, iterations)
                       for m, (iterations, password) in adds.items()}
            await store.alter(entity.names[0], upserts, deletes)  # type: ignore[arg-type]  # checked in run()
        ops = [(k, v, False) for k, v in parse_quota_config(args.add_config or "").items()]
        ops += [(k, 0.0, True) for k in _parse_delete_quotas(args.delete_config)]
        if ops:
            await quotas.alter(entity.quota_entity(), ops)
        print(_completed(entity))
        return
    await quotas.load()

    def znode_text(v: float) -> str:  # as the znode holds it (byte rates as integers)
        return str(int(v)) if float(v).is_integer() else repr(float(v))

    def label(entity_type: str, name: str) -> str:  # ConfigCommand's ConfigEntity.toString
        kind = "user-principal" if entity_type == USER_TYPE else "client-id"
        return f"default {kind}" if name == DEFAULT else f"{kind} '{name}'"

    want = entity.quota_entity()
    found: dict[Any, dict[str, str]] = {}
    if entity.types == (USER_TYPE,):
        users = ([want.user] if want.user is not None
                 else sorted(set(await store.users()) | {q.user for q in quotas.quotas if q.user and not q.client_id}))
        for user in users:
            found[QuotaEntity(user)] = dict(await store.user_config(user)) if user != DEFAULT else {}
    for ent, values in quotas.quotas.items():
        if (ent.user is not None) != (USER_TYPE in entity.types) or (ent.client_id is not None) != (
                CLIENT_TYPE in entity.types):
            continue
        if (entity.name_of(USER_TYPE) is not None and ent.user != want.user) or (
                entity.name_of(CLIENT_TYPE) is not None and ent.client_id != want.client_id):
            continue
        found.setdefault(ent, {}).update({k: znode_text(v) for k, v in values.items()})
    for ent, config in sorted(found.items(), key=lambda kv: (kv[0].user or "", kv[0].client_id or "")):
        who = ", ".join(label(t, n) for t, n in ((USER_TYPE, ent.user), (CLIENT_TYPE, ent.client_id)) if n is not None)
        print(f"Configs for {who} are " + ",".join(f"{k}={v}" for k, v in sorted(config.items())))


async def _run_wire(args: argparse.Namespace) -> None:
    from kafkalike.client.connection import KafkaConnection
    from kafkalike.client.errors import ClientError
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.errors import ErrorCode, kafka_name

    ssl_context, sasl = client_security(args.command_config)
    entity = Entity.from_args(args)
    user = entity.name_of(USER_TYPE)
    host, _, port = args.bootstrap_server.split(",")[0].strip().rpartition(":")
    try:
        async with KafkaConnection.open(host, int(port), client_id="kafkalike-configs", ssl_context=ssl_context,
                                        sasl=sasl) as conn:
            if args.alter:
                await _alter_quotas_over_the_wire(conn, entity, args)
                adds = parse_add_config(args.add_config or "")
                deletes = _parse_delete_config(args.delete_config)
                if not adds and not deletes:
                    print(_completed(entity))
                    return
                upsertions = []
                for mechanism, (iterations, password) in adds.items():
                    salt = secrets.token_bytes(32)
                    salted = ScramFormatter(mechanism).salted_password(password, salt, iterations)
                    upsertions.append({"name": user, "mechanism": mechanism.type, "iterations": iterations,
                                       "salt": salt, "salted_password": salted})
                response = await conn.call(
                    ApiKey.ALTER_USER_SCRAM_CREDENTIALS,
                    deletions=[{"name": user, "mechanism": m.type} for m in deletes],
                    upsertions=upsertions)
                for result in response.results:
                    if result.error_code != ErrorCode.none:
                        raise CommandError(f"{kafka_name(ErrorCode(result.error_code))}: {result.error_message}")
                print(_completed(entity))
                return
            await _describe_quotas_over_the_wire(conn, entity)
            # ConfigCommand: SCRAM credentials only for users, and not for a default entity
            if CLIENT_TYPE in entity.types or "" in entity.names:
                return
            users = None if not user else [{"name": user}]
            response = await conn.call(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, users=users)
            if response.error_code != ErrorCode.none:
                raise CommandError(f"{kafka_name(ErrorCode(response.error_code))}: {response.error_message}")
            for result in response.results:
                if result.error_code != ErrorCode.none:
                    if user:  # Kafka prints the failure for a named user
                        print(f"Error retrieving SCRAM credential configs for user-principal '{result.user}': "
                              f"{kafka_name(ErrorCode(result.error_code))}: {result.error_message}")
                    continue
                infos = ", ".join(f"{ScramMechanism.for_type(int(i.mechanism)).mechanism_name}="  # type: ignore[union-attr]  # mechanism ids in an answer are known ones
                                  f"iterations={i.iterations}" for i in result.credential_infos)
                print(f"SCRAM credential configs for user-principal '{result.user}' are {infos}")
    except ClientError as exc:
        raise CommandError(str(exc)) from None


async def _alter_quotas_over_the_wire(conn: Any, entity: Entity, args: argparse.Namespace) -> None:
    """AlterClientQuotas for the quota keys of --add-config / --delete-config (none: no request)."""
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.errors import ErrorCode, kafka_name

    ops = [{"key": k, "value": v, "remove": False} for k, v in parse_quota_config(args.add_config or "").items()]
    ops += [{"key": k, "value": 0.0, "remove": True} for k in _parse_delete_quotas(args.delete_config)]
    if not ops:
        return
    wire_type = {USER_TYPE: "user", CLIENT_TYPE: "client-id"}
    response = await conn.call(ApiKey.ALTER_CLIENT_QUOTAS, validate_only=False, entries=[{
        "entity": [{"entity_type": wire_type[t], "entity_name": n or None} for t, n in zip(entity.types, entity.names)],
        "ops": ops}])
    for result in response.entries:
        if result.error_code != ErrorCode.none:
            raise CommandError(f"{kafka_name(ErrorCode(result.error_code))}: {result.error_message}")


async def _describe_quotas_over_the_wire(conn: Any, entity: Entity) -> None:
    """DescribeClientQuotas with ConfigCommand's strict filter; one ``Quota configs ...`` line
    per entity answered."""
    from kafkalike.broker.client_quota_manager import MATCH_ANY, MATCH_DEFAULT, MATCH_EXACT
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.errors import ErrorCode, kafka_name

    wire_type = {USER_TYPE: "user", CLIENT_TYPE: "client-id"}
    components = [{"entity_type": wire_type[t],
                   "match_type": MATCH_ANY if n is None else MATCH_DEFAULT if n == "" else MATCH_EXACT,
                   "match": n or None} for t, n in zip(entity.types, entity.names)]
    response = await conn.call(ApiKey.DESCRIBE_CLIENT_QUOTAS, components=components, strict=True)
    if response.error_code != ErrorCode.none:
        raise CommandError(f"{kafka_name(ErrorCode(response.error_code))}: {response.error_message}")
    for entry in response.entries or ():
        parts = sorted(((e.entity_type, e.entity_name) for e in entry.entity), key=lambda p: p[0] != "user")
        print(_quota_line(parts, [(v.key, float(v.value)) for v in entry.values]))


def credential_text(mechanism: ScramMechanism, password: str, iterations: int) -> str:
    """The /config/users value for a new credential (what --zookeeper writes)."""
    return credential_to_string(ScramFormatter(mechanism).generate_credential(password, iterations))


# ---------------------------------------------------------------------- brokers (KIP-226)
def run_brokers(args: argparse.Namespace) -> int:
    """``--entity-type brokers``: alter or describe dynamic broker configs over the wire."""
    import trio

    from kafkalike.client.errors import ClientError

    try:
        if args.zookeeper or len(set(args.entity_type)) > 1:
            raise CommandError("--entity-type brokers is served over the wire only, alone (--bootstrap-server)")
        if args.command_config:
            raise CommandError("--command-config is not supported with --entity-type brokers")
        if len(args.entity_name) > 1:
            raise CommandError("More --entity-name than --entity-type were given")
        name = args.entity_name[0] if args.entity_name else ("" if args.entity_default else None)
        if name and not name.lstrip("-").isdigit():
            raise CommandError(f"The entity name for brokers must be a valid integer broker id, found: {name}")
        if args.alter:
            if name is None:
                raise CommandError("an entity name or --entity-default must be specified with --alter")
            if not args.add_config and not args.delete_config:
                raise CommandError("At least one of --add-config or --delete-config must be specified with --alter")
        trio.run(_brokers_command, args, name)
    except CommandError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"Error: no broker reachable at {args.bootstrap_server}: {exc}", file=sys.stderr)
        return 1
    return 0


def parse_broker_config(text: str | None) -> dict[str, str]:
    """``k=v,k2=[a,b]`` -> {k: v, k2: "a,b"} (Kafka's parseConfigsToBeAdded: commas inside
    [...] belong to the value). Raises CommandError for an item without ``=``."""
    out = {}
    for item in _split_top_level(text or ""):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"Invalid config(s): {item} (expected key=value)")
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            value = value[1:-1]
        out[key.strip()] = value
    return out


async def describe_broker_entries(admin: Any, name: str, include_synonyms: bool) -> list[Any]:
    """DescribeConfigs of BROKER ``name`` ("" = cluster defaults) on that broker (the defaults on
    any broker): the answer's entries, sorted by name. Raises CommandError for an error."""
    from kafkalike.protocol.api_keys import ApiKey

    conn = await (admin.client.connection(int(name)) if name else admin.client.any_connection())
    response = await conn.call(ApiKey.DESCRIBE_CONFIGS, include_synonyms=include_synonyms,
                               include_documentation=False,
                               resources=[{"resource_type": 4, "resource_name": name, "configuration_keys": None}])
    result = response.results[0]
    if result.error_code:
        from kafkalike.protocol.errors import kafka_name
        raise CommandError(f"{kafka_name(result.error_code)}: {result.error_message}")
    return sorted(result.configs, key=lambda c: c.name)


def _dynamic_source(name: str) -> int:
    return 3 if name == "" else 2  # DYNAMIC_DEFAULT_BROKER_CONFIG / DYNAMIC_BROKER_CONFIG


def _value(v: str | None) -> str:
    return "null" if v is None else v


async def _brokers_command(args: argparse.Namespace, name: str | None) -> None:
    from kafkalike.client.admin import RESOURCE_BROKER, AdminClient

    async with AdminClient(args.bootstrap_server, client_id="kafkalike-configs") as admin:
        if args.alter:
            assert name is not None
            old = {c.name for c in await describe_broker_entries(admin, name, False)
                   if c.config_source == _dynamic_source(name)}
            deletes = [k.strip() for k in (args.delete_config or "").split(",") if k.strip()]
            invalid = [k for k in deletes if k not in old]
            if invalid:
                raise CommandError(f"Invalid config(s): {','.join(invalid)}")
            changes: dict[str, str | None] = dict(parse_broker_config(args.add_config))
            changes.update(dict.fromkeys(deletes))
            await admin.alter_configs(RESOURCE_BROKER, name, changes)
            print(f"Completed updating config for broker {name}." if name
                  else "Completed updating default config for brokers in the cluster.")
            return
        if name is None:
            cluster = await admin.describe_cluster()
            entities = [str(b) for b in sorted(cluster.brokers)] + [""]
        else:
            entities = [name]
        for entity in entities:
            if entity == "":
                print("Default configs for brokers in the cluster are:")
            else:
                print(f"{'All' if args.all else 'Dynamic'} configs for broker {entity} are:")
            for c in await describe_broker_entries(admin, entity, True):
                if not args.all and c.config_source != _dynamic_source(entity):
                    continue
                synonyms = ", ".join(f"{SOURCE_NAMES.get(s.source, 'UNKNOWN')}:{s.name}={_value(s.value)}"
                                     for s in c.synonyms)
                print(f"  {c.name}={_value(c.value)} sensitive={str(bool(c.is_sensitive)).lower()} "
                      f"synonyms={{{synonyms}}}")
