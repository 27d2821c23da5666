"""DynamicBrokerConfig: broker configs changed at run time through ZooKeeper (KIP-226; Kafka's
kafka.server.DynamicBrokerConfig, ConfigHelper's broker half and ZkAdminManager.alterBrokerConfigs,
ZooKeeper mode of Kafka 2.8/3.x).

ZooKeeper (Kafka's ConfigEntityZNode): ``/config/brokers/<id>`` holds one broker's dynamic
configs, ``/config/brokers/<default>`` the cluster-wide defaults, both as
``{"version":1,"config":{"log.retention.ms":"3600000"}}``. Every write is announced by a
sequential ``/config/changes/config_change_<10 digits>`` holding
``{"version":2,"entity_path":"brokers/<id>"}`` (or ``brokers/<default>``); each broker's config
change listener (ZkAdminManager) calls ``reload`` and the new values apply without a restart.
At start-up ``initialize`` reads both znodes before the components are built, so they also
start with them.

Precedence (Kafka's): per-broker dynamic > cluster-default dynamic > server.properties
(static) > Kafka's default. ``current`` is the effective KafkaConfig (its ``originals`` stay
the static ones, which DescribeConfigs reports as STATIC_BROKER_CONFIG).

Which keys may change: Kafka's DynamicBrokerConfig.AllDynamicConfigs plus the broker quota
configs (QuotaConfig.brokerQuotaConfigs), as far as kafkalike knows the key (DYNAMIC_KEYS).
Applied at once by kafkalike: the log.* defaults that map to topic configs and
message.max.bytes (every log without a topic override gets the new default:
ReplicaManager.reconfigure), min.insync.replicas, and the replication throttles
leader.replication.throttled.rate / follower.replication.throttled.rate /
replica.alter.log.dirs.io.max.bytes.per.second (ReplicationQuotaManager; the last one is the
quota a ReplicaAlterLogDirsThread checks). The others in DYNAMIC_KEYS (thread counts, log cleaner tuning,
connection limits, producer id expiry) are stored and described as Kafka does but take
effect only at the broker's next start (kafkalike has no thread pools to resize and reads
these once); docs/configuration.md lists them. Kafka's listener and SSL keystore updates
are refused: kafkalike cannot rebind or reload a listener at run time.

Errors, as Kafka's ZkAdminManager answers AlterConfigs / IncrementalAlterConfigs for a BROKER
resource: a name other than "" or this broker's id -> INVALID_REQUEST ("Unexpected broker id,
expected 1, but received 2"; "Broker id must be an integer, but it is: x"); a read-only key,
a per-broker key set cluster-wide, or a bad value -> INVALID_CONFIG ("Invalid config value
for resource ConfigResource(type=BROKER, name='1'): Cannot update these configs
dynamically: Set(broker.id)").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import structlog

from kafkalike.broker.kafka_config import CONFIG_KEYS, LONG_MAX, ConfigError, ConfigKey, KafkaConfig
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import KafkaZkClient
from kafkalike.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

DEFAULT_ENTITY = "<default>"
"""The entity name of the cluster-wide defaults (Kafka's ZooKeeperInternals.DEFAULT_STRING)."""

# Kafka's DescribeConfigs ConfigSource ids
SOURCE_DYNAMIC_BROKER = 2
SOURCE_DYNAMIC_DEFAULT_BROKER = 3
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5

LEADER_THROTTLED_RATE = "leader.replication.throttled.rate"
FOLLOWER_THROTTLED_RATE = "follower.replication.throttled.rate"
ALTER_LOG_DIRS_RATE = "replica.alter.log.dirs.io.max.bytes.per.second"

_QUOTA_DOC = "replication throttle of this broker (bytes/s, KIP-73); default: unlimited"
QUOTA_KEYS: dict[str, ConfigKey] = {k.name: k for k in [
    ConfigKey(LEADER_THROTTLED_RATE, "long", LONG_MAX, "leader side " + _QUOTA_DOC, at_least=0),
    ConfigKey(FOLLOWER_THROTTLED_RATE, "long", LONG_MAX, "follower side " + _QUOTA_DOC, at_least=0),
    ConfigKey(ALTER_LOG_DIRS_RATE, "long", LONG_MAX,
              "replica moves between log dirs of this broker (bytes/s; AlterReplicaLogDirs, KIP-113)", at_least=0),
]}
"""Kafka's QuotaConfig.brokerQuotaConfigs: dynamic only (not in server.properties)."""

APPLIED_NOW = frozenset({
    # DynamicLogConfig.ReconfigurableConfigs that kafkalike's LogConfig knows
    "log.segment.bytes", "log.roll.ms", "log.index.size.max.bytes", "log.flush.interval.messages",
    "log.flush.interval.ms", "log.retention.bytes", "log.retention.ms", "message.max.bytes",
    "log.index.interval.bytes", "log.cleaner.delete.retention.ms", "log.cleaner.min.compaction.lag.ms",
    "log.segment.delete.delay.ms", "log.cleaner.min.cleanable.ratio", "log.cleanup.policy",
    "unclean.leader.election.enable", "min.insync.replicas", "compression.type",
    "log.message.timestamp.type",
    LEADER_THROTTLED_RATE, FOLLOWER_THROTTLED_RATE, ALTER_LOG_DIRS_RATE,
})
"""Dynamic keys kafkalike applies without a restart."""

_AT_RESTART = frozenset({
    # DynamicThreadPool, LogCleaner, SocketServer / DynamicListenerConfig (cluster level),
    # DynamicProducerStateManagerConfig
    "num.io.threads", "num.network.threads", "num.replica.fetchers", "num.recovery.threads.per.data.dir",
    "background.threads", "log.cleaner.threads", "log.cleaner.backoff.ms", "max.connections",
    "max.connections.per.ip", "max.connections.per.ip.overrides", "producer.id.expiration.ms",
    "transaction.partition.verification.enable",
})

DYNAMIC_KEYS: frozenset[str] = frozenset(
    k for k in APPLIED_NOW | _AT_RESTART if k in CONFIG_KEYS or k in QUOTA_KEYS)
"""Keys AlterConfigs may set for a broker (Kafka's AllDynamicConfigs ∩ what kafkalike knows)."""

PER_BROKER_ONLY = frozenset({"listeners", "advertised.listeners", "listener.security.protocol.map"})
"""Kafka's PerBrokerConfigs (listener and SSL configs): never cluster-wide."""

_SYNONYMS: dict[str, tuple[str, ...]] = {}
for _group in (("log.roll.ms", "log.roll.hours"), ("log.roll.jitter.ms", "log.roll.jitter.hours"),
               ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"),
               ("log.retention.ms", "log.retention.minutes", "log.retention.hours")):
    for _name in _group:
        _SYNONYMS[_name] = _group if _name != "log.flush.scheduler.interval.ms" else (_name,)


def broker_config_synonyms(name: str) -> tuple[str, ...]:
    """Kafka's DynamicBrokerConfig.brokerConfigSynonyms: the keys that set ``name``, highest
    precedence first (log.retention.ms -> ms, minutes, hours); else (name,)."""
    return _SYNONYMS.get(name, (name,))


def _key_of(name: str) -> ConfigKey | None:
    return QUOTA_KEYS.get(name) or CONFIG_KEYS.get(name)


def _as_string(value: Any) -> str | None:
    """A typed config value in Kafka's string form (ConfigDef.convertToString)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


class DynamicConfigError(Exception):
    """A refused broker config change: ``error`` (INVALID_REQUEST or INVALID_CONFIG) and
    Kafka's message."""

    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error


def _scala_set(names: set[str] | list[str]) -> str:
    return "Set(" + ", ".join(sorted(names)) + ")"


def validate_value(name: str, raw: str) -> str | None:
    """Kafka's ConfigDef.parse message for a bad ``raw`` value of ``name``, None when good
    ("Invalid value x for configuration message.max.bytes: Not a number of type INT")."""
    key = _key_of(name)
    if key is None:
        return None
    text = raw.strip()
    bad = f"Invalid value {raw} for configuration {name}: "
    if key.type in ("int", "long", "short"):
        try:
            number = int(text)
        except ValueError:
            return bad + f"Not a number of type {key.type.upper()}"
        bits = {"int": 31, "long": 63, "short": 15}[key.type]
        if not -(2 ** bits) <= number < 2 ** bits:
            return bad + f"Not a number of type {key.type.upper()}"
        if key.at_least is not None and number < key.at_least:
            return bad + f"Value must be at least {int(key.at_least)}"
    elif key.type == "double":
        try:
            value = float(text)
        except ValueError:
            return bad + "Not a number of type DOUBLE"
        if key.at_least is not None and value < key.at_least:
            return bad + f"Value must be at least {key.at_least}"
        if key.at_most is not None and value > key.at_most:
            return bad + f"Value must be no more than {key.at_most}"
    elif key.type == "boolean":
        if text.lower() not in ("true", "false"):
            return bad + "Expected value to be either true or false"
    elif key.choices is not None:
        items = [i.strip() for i in text.split(",")] if key.type == "list" else [text]
        for item in items:
            if item not in key.choices:
                return (f"Invalid value {item} for configuration {name}: String must be one of: "
                        + ", ".join(key.choices))
    return None


@attrs.frozen
class DescribedConfig:
    """One DescribeConfigs entry of a broker: name, value (None for passwords), source
    (Kafka ConfigSource id), read_only (not dynamic), type, doc, synonyms ((name, value,
    source), highest precedence first)."""

    name: str
    value: str | None
    source: int
    read_only: bool
    type: str
    doc: str
    synonyms: tuple[tuple[str, str | None, int], ...]


class DynamicBrokerConfig:
    """The broker's dynamic configs and its effective KafkaConfig (Kafka's DynamicBrokerConfig).

    Receives ``static`` (the KafkaConfig from server.properties and --override), ``broker_id``
    and ``kafka_zk`` (reads and writes ``/config/brokers``). ``current`` is the effective
    config; ``reconfigurables`` are called with the new KafkaConfig after each change that
    altered it (the replica manager, the admin manager, the replication quotas)."""

    def __init__(self, static: KafkaConfig, broker_id: int, kafka_zk: KafkaZkClient) -> None:
        self.static = static
        self.broker_id = broker_id
        self.kafka_zk = kafka_zk
        self.dynamic_broker: dict[str, str] = {}
        self.dynamic_default: dict[str, str] = {}
        self.current = static
        self.reconfigurables: list[Callable[[KafkaConfig], None]] = []

    # ------------------------------------------------------------------ state
    async def initialize(self) -> KafkaConfig:
        """Read ``/config/brokers/<default>`` and ``/config/brokers/<id>`` (Kafka's
        DynamicBrokerConfig.initialize); returns the effective config. A stored value that
        no longer validates is left out with a log line (Kafka logs and skips it too)."""
        self.dynamic_default = self._usable(
            await self.kafka_zk.get_entity_config(zd.CONFIG_TYPE_BROKER, DEFAULT_ENTITY), DEFAULT_ENTITY)
        self.dynamic_broker = self._usable(
            await self.kafka_zk.get_entity_config(zd.CONFIG_TYPE_BROKER, str(self.broker_id)),
            str(self.broker_id))
        try:
            self.current = self._merge(self.dynamic_default, self.dynamic_broker)
        except ConfigError as exc:  # stored configs that do not combine: start with the static ones
            log.warning("dynamic_config_rejected", error=str(exc))
            self.dynamic_default, self.dynamic_broker, self.current = {}, {}, self.static
        if self.dynamic_default or self.dynamic_broker:
            log.info("dynamic_config_loaded", default=self.dynamic_default, broker=self.dynamic_broker)
        return self.current

    def _usable(self, stored: Mapping[str, str], entity: str) -> dict[str, str]:
        out = {}
        for name, value in stored.items():
            problem = None if name in DYNAMIC_KEYS else "not dynamic"
            problem = problem or validate_value(name, value)
            if problem:
                log.warning("dynamic_config_skipped", entity=entity, key=name, reason=problem)
                continue
            out[name] = value
        return out

    def _merge(self, default: Mapping[str, str], broker: Mapping[str, str]) -> KafkaConfig:
        """The effective KafkaConfig (raises ConfigError when the combination is invalid).
        Quota keys are not KafkaConfig keys: they stay in the dynamic maps."""
        props = dict(self.static.originals)
        for layer in (default, broker):
            props.update({k: v for k, v in layer.items() if k in CONFIG_KEYS})
        merged = KafkaConfig.from_mapping(props)
        return KafkaConfig(values=merged.values, originals=self.static.originals)

    def value_of(self, name: str) -> str | None:
        """The effective value of any broker key, quota keys included, as a string."""
        if name in self.dynamic_broker:
            return self.dynamic_broker[name]
        if name in self.dynamic_default:
            return self.dynamic_default[name]
        if name in QUOTA_KEYS:
            return str(QUOTA_KEYS[name].default)
        return _as_string(self.current[name]) if name in CONFIG_KEYS else None

    def quota_rate(self, name: str) -> int:
        """A replication throttle rate (bytes/s): per-broker, else default, else unlimited
        (Kafka's BrokerConfigHandler.getOrDefault)."""
        return int(self.value_of(name) or LONG_MAX)

    async def reload(self, entity: str) -> None:
        """A ``/config/changes`` notification named ``brokers/<entity>``: re-read it when it
        is ``<default>`` or this broker's id, rebuild ``current`` and tell the
        reconfigurables (Kafka's BrokerConfigHandler.processConfigChanges)."""
        if entity == DEFAULT_ENTITY:
            self.dynamic_default = self._usable(
                await self.kafka_zk.get_entity_config(zd.CONFIG_TYPE_BROKER, entity), entity)
        elif entity.strip() == str(self.broker_id):
            self.dynamic_broker = self._usable(
                await self.kafka_zk.get_entity_config(zd.CONFIG_TYPE_BROKER, entity), entity)
        else:
            return
        try:
            self.current = self._merge(self.dynamic_default, self.dynamic_broker)
        except ConfigError as exc:
            log.warning("dynamic_config_rejected", entity=entity, error=str(exc))
            return
        log.info("dynamic_config_applied", entity=entity, default=self.dynamic_default,
                 broker=self.dynamic_broker)
        for reconfigure in self.reconfigurables:
            reconfigure(self.current)

    # ------------------------------------------------------------------ AlterConfigs
    def entity_of(self, resource_name: str) -> str:
        """The ZooKeeper entity a BROKER resource names: "" -> ``<default>``, this broker's id
        -> its id. Raises DynamicConfigError(INVALID_REQUEST) for another (ZkAdminManager.getBrokerId)."""
        if not resource_name:
            return DEFAULT_ENTITY
        try:
            broker = int(resource_name)
        except ValueError:
            raise DynamicConfigError(ErrorCode.invalid_request,
                                     f"Broker id must be an integer, but it is: {resource_name}") from None
        if broker != self.broker_id:
            raise DynamicConfigError(ErrorCode.invalid_request,
                                     f"Unexpected broker id, expected {self.broker_id}, but received {resource_name}")
        return str(broker)

    async def stored(self, resource_name: str) -> dict[str, str]:
        """The configs stored for a BROKER resource (what IncrementalAlterConfigs starts from)."""
        return await self.kafka_zk.get_entity_config(zd.CONFIG_TYPE_BROKER, self.entity_of(resource_name))

    def validate(self, resource_name: str, props: Mapping[str, str]) -> None:
        """Kafka's DynamicBrokerConfig.validate for the whole new config set of a resource:
        only dynamic keys, none per-broker-only at cluster level, values of the right type
        and range, and a consistent resulting config. Raises DynamicConfigError."""
        entity = self.entity_of(resource_name)
        where = f"ConfigResource(type=BROKER, name='{resource_name}')"

        def invalid(message: str) -> DynamicConfigError:
            return DynamicConfigError(ErrorCode.invalid_config, f"Invalid config value for resource {where}: {message}")

        known = set(CONFIG_KEYS) | set(QUOTA_KEYS)
        not_dynamic = {n for n in props if n in known and n not in DYNAMIC_KEYS}
        if not_dynamic:
            raise invalid(f"Cannot update these configs dynamically: {_scala_set(not_dynamic)}")
        if entity == DEFAULT_ENTITY:
            per_broker = {n for n in props if n in PER_BROKER_ONLY}
            if per_broker:
                raise invalid("Cannot update these configs at default cluster level, broker id must be "
                              f"specified: {_scala_set(per_broker)}")
        for name, value in sorted(props.items()):
            problem = validate_value(name, value)
            if problem:
                raise invalid(problem)
        default = dict(props) if entity == DEFAULT_ENTITY else self.dynamic_default
        broker = self.dynamic_broker if entity == DEFAULT_ENTITY else dict(props)
        try:
            self._merge(default, broker)
        except ConfigError as exc:
            raise invalid(str(exc)) from None

    async def alter(self, resource_name: str, props: Mapping[str, str], validate_only: bool) -> None:
        """Replace a BROKER resource's dynamic configs with ``props`` (after ``validate``):
        write ``/config/brokers/<entity>`` and post the change notification
        (AdminZkClient.changeBrokerConfig). Raises DynamicConfigError."""
        self.validate(resource_name, props)
        if validate_only:
            return
        entity = self.entity_of(resource_name)
        await self.kafka_zk.set_entity_config(zd.CONFIG_TYPE_BROKER, entity, dict(props))
        log.info("broker_config_changed", entity=entity, config=dict(props))

    # ------------------------------------------------------------------ DescribeConfigs
    def _synonyms(self, name: str, per_broker: bool) -> list[tuple[str, str | None, int]]:
        """Kafka's ConfigHelper.configSynonyms: by source (dynamic broker, dynamic default,
        static, default), each in synonym order, starting at ``name`` itself."""
        names = broker_config_synonyms(name)
        sensitive = (_key_of(name) or ConfigKey(name, "string", None, "")).type == "password"
        static_defaults = {n: _as_string(k.default) for n, k in (CONFIG_KEYS | QUOTA_KEYS).items()
                           if k.default is not None}
        layers: list[tuple[Mapping[str, str | None], int]] = [
            (self.dynamic_broker, SOURCE_DYNAMIC_BROKER), (self.dynamic_default, SOURCE_DYNAMIC_DEFAULT_BROKER),
            (self.static.originals, SOURCE_STATIC_BROKER), (static_defaults, SOURCE_DEFAULT)]
        out: list[tuple[str, str | None, int]] = []
        for values, source in layers:
            if source == SOURCE_DYNAMIC_BROKER and not per_broker:
                continue
            for n in names:
                if n in values:
                    out.append((n, None if sensitive else values[n], source))
        while out and out[0][0] != name:  # dropWhile: e.g. log.retention.hours describes from itself
            out.pop(0)
        return out

    def _entry(self, name: str, value: str | None, per_broker: bool) -> DescribedConfig:
        key = _key_of(name)
        type_ = key.type if key is not None else "string"
        synonyms = self._synonyms(name, per_broker)
        source = synonyms[0][2] if synonyms else SOURCE_DEFAULT
        return DescribedConfig(name, None if type_ == "password" else value, source, name not in DYNAMIC_KEYS,
                               type_, key.doc if key is not None else "", tuple(synonyms))

    def describe(self, resource_name: str) -> list[DescribedConfig]:
        """DescribeConfigs of a BROKER resource (Kafka's ConfigHelper): "" lists the
        cluster-wide dynamic defaults only (source DYNAMIC_DEFAULT_BROKER_CONFIG); this
        broker's id lists every key with its effective value and source, plus the dynamic
        quota keys that are set. Raises DynamicConfigError(INVALID_REQUEST) for another name
        ("Unexpected broker id, expected 1 or empty string, but received 2")."""
        if not resource_name:
            return [self._entry(n, v, per_broker=False) for n, v in sorted(self.dynamic_default.items())]
        if resource_name != str(self.broker_id):
            raise DynamicConfigError(ErrorCode.invalid_request,
                                     f"Unexpected broker id, expected {self.broker_id} or empty string, "
                                     f"but received {resource_name}")
        names = set(CONFIG_KEYS) | (set(QUOTA_KEYS) & (set(self.dynamic_broker) | set(self.dynamic_default)))
        return [self._entry(n, self.value_of(n), per_broker=True) for n in sorted(names)]

    def topic_synonyms(self, broker_key: str) -> list[tuple[str, str | None, int]]:
        """The dynamic synonyms (per-broker, then default) of a topic config's broker key,
        for a topic's DescribeConfigs (Kafka lists them before the static ones)."""
        out: list[tuple[str, str | None, int]] = []
        for values, source in ((self.dynamic_broker, SOURCE_DYNAMIC_BROKER),
                               (self.dynamic_default, SOURCE_DYNAMIC_DEFAULT_BROKER)):
            if broker_key in values:
                out.append((broker_key, values[broker_key], source))
        return out
