"""Per-log (topic-level) configuration with Kafka's property names and defaults, and the
validation table of every topic config (Kafka's LogConfig ConfigDef).

Follows Kafka's LogConfig / TopicConfig (3.x): each field is the topic-level property with dots
turned into underscores; `LogConfig.from_properties({"segment.bytes": "1048576"})` accepts
Kafka's names (and the broker-level `log.` names via `from_broker_properties`). Units: bytes
and milliseconds as in Kafka. Long.MAX_VALUE (9223372036854775807) means "never".

`TOPIC_CONFIG_KEYS` is Kafka 3.x's LogConfig ConfigDef (types, ranges, valid values) for the
topic configs kafkalike knows; `validate_topic_configs(props, replication_factor)` checks a
topic's override set against it as Kafka's LogConfig.validate does and returns Kafka's
message (the admin path answers it with INVALID_CONFIG) or None.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

LONG_MAX = 9223372036854775807

# topic-level property name -> (field, type)
_PROPS: dict[str, tuple[str, type]] = {
    "segment.bytes": ("segment_bytes", int),
    "segment.ms": ("segment_ms", int),
    "segment.jitter.ms": ("segment_jitter_ms", int),
    "segment.index.bytes": ("segment_index_bytes", int),
    "index.interval.bytes": ("index_interval_bytes", int),
    "retention.ms": ("retention_ms", int),
    "retention.bytes": ("retention_bytes", int),
    "cleanup.policy": ("cleanup_policy", str),
    "delete.retention.ms": ("delete_retention_ms", int),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", int),
    "max.compaction.lag.ms": ("max_compaction_lag_ms", int),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", float),
    "flush.messages": ("flush_messages", int),
    "flush.ms": ("flush_ms", int),
    "file.delete.delay.ms": ("file_delete_delay_ms", int),
    "max.message.bytes": ("max_message_bytes", int),
    "message.timestamp.type": ("message_timestamp_type", str),
    "preallocate": ("preallocate", bool),
}

# broker-level default name -> topic-level name (Kafka's LogConfig.TopicConfigSynonyms)
BROKER_SYNONYMS: dict[str, str] = {
    "log.segment.bytes": "segment.bytes",
    "log.roll.ms": "segment.ms",
    "log.roll.jitter.ms": "segment.jitter.ms",
    "log.index.size.max.bytes": "segment.index.bytes",
    "log.index.interval.bytes": "index.interval.bytes",
    "log.retention.ms": "retention.ms",
    "log.retention.bytes": "retention.bytes",
    "log.cleanup.policy": "cleanup.policy",
    "log.cleaner.delete.retention.ms": "delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms": "min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms": "max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio": "min.cleanable.dirty.ratio",
    "log.flush.interval.messages": "flush.messages",
    "log.flush.interval.ms": "flush.ms",
    "log.segment.delete.delay.ms": "file.delete.delay.ms",
    "message.max.bytes": "max.message.bytes",
    "log.message.timestamp.type": "message.timestamp.type",
    "log.preallocate": "preallocate",
}


def _check_policy(instance: Any, attribute: Any, value: str) -> None:
    # an empty list is valid, as in Kafka 3.x's ValidList: neither deleted nor compacted
    parts = {p.strip() for p in value.split(",") if p.strip()}
    if not parts <= {"delete", "compact"}:
        raise ValueError(f"cleanup.policy must be delete, compact, both or empty; got {value!r}")


def _positive(instance: Any, attribute: Any, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name.replace('_', '.')} must be > 0, got {value}")


@attrs.frozen
class LogConfig:
    """Topic-level log settings, Kafka defaults (bytes, ms).

    segment_bytes 1 GiB; segment_ms 7 days; segment_index_bytes 10 MiB (preallocated index size);
    index_interval_bytes 4096 (bytes between offset index entries); retention_ms 7 days
    (-1 = forever); retention_bytes -1 (unlimited); cleanup_policy "delete" ("compact",
    "compact,delete"); delete_retention_ms 1 day (tombstone retention); flush_messages and
    flush_ms Long.MAX (never: rely on the page cache and replication); file_delete_delay_ms
    60 s (Kafka's grace before deleting a .deleted file; here: kept open for in-flight reads);
    max_message_bytes 1048588 (largest batch, bytes).
    """

    segment_bytes: int = attrs.field(default=1073741824, validator=_positive)
    segment_ms: int = attrs.field(default=604800000, validator=_positive)
    segment_jitter_ms: int = 0
    segment_index_bytes: int = attrs.field(default=10485760, validator=_positive)
    index_interval_bytes: int = 4096
    retention_ms: int = 604800000
    retention_bytes: int = -1
    cleanup_policy: str = attrs.field(default="delete", validator=_check_policy)
    delete_retention_ms: int = 86400000
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    min_cleanable_dirty_ratio: float = 0.5
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    file_delete_delay_ms: int = 60000
    max_message_bytes: int = 1048588
    message_timestamp_type: str = "CreateTime"
    preallocate: bool = False

    @property
    def compact(self) -> bool:
        """cleanup.policy includes compact."""
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        """cleanup.policy includes delete."""
        return "delete" in self.cleanup_policy

    @classmethod
    def from_properties(cls, props: Mapping[str, Any], base: "LogConfig | None" = None) -> "LogConfig":
        """Build from topic-level Kafka property names (values as str or typed).

        Unknown names are ignored (they may be broker or client settings); a bad value raises
        ValueError naming the property.
        """
        changes: dict[str, Any] = {}
        for name, raw in props.items():
            if name not in _PROPS:
                continue
            field, typ = _PROPS[name]
            try:
                if typ is bool:
                    value: Any = raw if isinstance(raw, bool) else str(raw).strip().lower() == "true"
                elif typ is str:
                    value = str(raw).replace(" ", "")
                else:
                    value = typ(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: bad value {raw!r}") from exc
            changes[field] = value
        return attrs.evolve(base or cls(), **changes)

    @classmethod
    def from_broker_properties(cls, props: Mapping[str, Any]) -> "LogConfig":
        """Broker defaults (log.segment.bytes, log.retention.hours, ...) as a LogConfig.

        log.retention.ms wins over log.retention.minutes over log.retention.hours (default 168),
        and log.roll.ms over log.roll.hours, as in KafkaConfig.
        """
        topic: dict[str, Any] = {}
        for name, value in props.items():
            if name in BROKER_SYNONYMS:
                topic[BROKER_SYNONYMS[name]] = value
        if "log.retention.ms" not in props:
            if "log.retention.minutes" in props:
                topic["retention.ms"] = int(props["log.retention.minutes"]) * 60000
            elif "log.retention.hours" in props:
                topic["retention.ms"] = int(props["log.retention.hours"]) * 3600000
        if "log.roll.ms" not in props and "log.roll.hours" in props:
            topic["segment.ms"] = int(props["log.roll.hours"]) * 3600000
        return cls.from_properties(topic)

    def to_properties(self) -> dict[str, str]:
        """Kafka property name -> string value, for DescribeConfigs and docs."""
        out = {}
        for name, (field, typ) in _PROPS.items():
            value = getattr(self, field)
            out[name] = str(value).lower() if typ is bool else str(value)
        return out


# ---------------------------------------------------------------------------- validation
RECORD_OVERHEAD_V0 = 14
"""Kafka's LegacyRecord.RECORD_OVERHEAD_V0 (bytes): the smallest segment.bytes Kafka 3.x accepts."""

COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
"""Kafka's BrokerCompressionType names, in Kafka's order (it is the order of its message)."""

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[dDfF]?", re.ASCII)
_REPLICA = re.compile(r"(?:[0-9]+:[0-9]+)?", re.ASCII)
_JAVA_WHITESPACE = "".join(chr(c) for c in range(33))  # String.trim() strips chars <= ' '


@attrs.frozen
class TopicConfigKey:
    """One topic config of Kafka's LogConfig ConfigDef: its type and validator.

    type: "int" (32-bit), "long" (64-bit), "double", "boolean", "string" or "list" (comma
    separated). at_least / at_most: ConfigDef.Range bounds (inclusive). valid: ValidString.in /
    ValidList.in values (case-sensitive, as Kafka). throttled: Kafka's
    ThrottledReplicaListValidator ("*" or partition:broker pairs).
    """

    name: str
    type: str
    at_least: int | None = None
    at_most: int | None = None
    valid: tuple[str, ...] | None = None
    throttled: bool = False


def _k(name: str, type_: str, **kw: Any) -> TopicConfigKey:
    return TopicConfigKey(name, type_, **kw)


# Kafka 3.x LogConfig.configDef, in its define order (ConfigDef.parse reports the first bad key
# in this order): core/src/main/scala/kafka/log/LogConfig.scala. Only the topic configs
# kafkalike knows; the others are "Unknown topic config name" here.
TOPIC_CONFIG_KEYS: dict[str, TopicConfigKey] = {k.name: k for k in [
    _k("segment.bytes", "int", at_least=RECORD_OVERHEAD_V0),
    _k("segment.ms", "long", at_least=1),
    _k("segment.jitter.ms", "long", at_least=0),
    _k("segment.index.bytes", "int", at_least=4),
    _k("flush.messages", "long", at_least=1),
    _k("flush.ms", "long", at_least=0),
    _k("retention.bytes", "long"),
    _k("retention.ms", "long", at_least=-1),
    _k("max.message.bytes", "int", at_least=0),
    _k("index.interval.bytes", "int", at_least=0),
    _k("delete.retention.ms", "long", at_least=0),
    _k("min.compaction.lag.ms", "long", at_least=0),
    _k("max.compaction.lag.ms", "long", at_least=1),
    _k("file.delete.delay.ms", "long", at_least=0),
    _k("min.cleanable.dirty.ratio", "double", at_least=0, at_most=1),
    _k("cleanup.policy", "list", valid=("compact", "delete")),
    _k("unclean.leader.election.enable", "boolean"),
    _k("min.insync.replicas", "int", at_least=1),
    _k("compression.type", "string", valid=COMPRESSION_TYPES),
    _k("preallocate", "boolean"),
    _k("message.timestamp.type", "string", valid=("CreateTime", "LogAppendTime")),
    _k("leader.replication.throttled.replicas", "list", throttled=True),
    _k("follower.replication.throttled.replicas", "list", throttled=True),
    _k("message.downconversion.enable", "boolean"),
]}
"""Kafka 3.x's LogConfig ConfigDef for the topic configs kafkalike knows (name -> key)."""


def java_double_str(value: float) -> str:
    """Java's Double.toString of ``value`` ("1.5", "2.0", "1.0E7"), as Kafka's messages print it."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits))
    power = int(exponent) + len(text) - 1
    text = text.rstrip("0") or "0"
    return ("-" if sign else "") + text[0] + "." + (text[1:] or "0") + "E" + str(power)


def _invalid(name: str, value: Any, message: str) -> str:
    """Kafka's ConfigException(name, value, message) text."""
    return f"Invalid value {value} for configuration {name}: {message}"


def parse_topic_config(key: TopicConfigKey, raw: Any) -> tuple[Any, str | None]:
    """Parse and check one value as Kafka's ConfigDef.parseType then the key's validator.

    Returns (typed value, None), or (None, Kafka's message) such as "Invalid value 1 for
    configuration segment.bytes: Value must be at least 14".
    """
    text = raw if isinstance(raw, str) else str(raw).lower() if isinstance(raw, bool) else str(raw)
    trimmed = text.strip(_JAVA_WHITESPACE)
    name, t = key.name, key.type
    value: Any
    shown: str
    if t in _INT_RANGE:
        lo, hi = _INT_RANGE[t]
        if not _INTEGER.fullmatch(trimmed) or not lo <= int(trimmed) <= hi:
            return None, _invalid(name, text, f"Not a number of type {t.upper()}")
        value = int(trimmed)
        shown = str(value)
    elif t == "double":
        if not _DOUBLE.fullmatch(trimmed):
            return None, _invalid(name, text, "Not a number of type DOUBLE")
        value = float(trimmed.rstrip("dDfF"))
        shown = java_double_str(value)
    elif t == "boolean":
        if trimmed.lower() not in ("true", "false"):
            return None, _invalid(name, text, "Expected value to be either true or false")
        return trimmed.lower() == "true", None
    elif t == "list":
        items = [] if not trimmed else re.split(r"\s*,\s*", trimmed)
        if key.valid is not None:
            for item in items:
                if item not in key.valid:
                    return None, _invalid(name, item, "String must be one of: " + ", ".join(key.valid))
        if key.throttled and not (all(_REPLICA.fullmatch(i.strip()) for i in items)
                                  or "".join(items).strip() == "*"):
            return None, _invalid(name, "[" + ", ".join(items) + "]",
                                  f"{name} must be the literal '*' or a list of replicas in the following "
                                  "format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")
        return items, None
    else:
        if key.valid is not None and trimmed not in key.valid:
            return None, _invalid(name, trimmed, "String must be one of: " + ", ".join(key.valid))
        return trimmed, None
    if key.at_least is not None and value < key.at_least:
        return None, _invalid(name, shown, f"Value must be at least {key.at_least}")
    if key.at_most is not None and value > key.at_most:
        return None, _invalid(name, shown, f"Value must be no more than {key.at_most}")
    return value, None


def validate_topic_configs(props: Mapping[str, Any], replication_factor: int | None = None,
                           base: LogConfig | None = None) -> str | None:
    """Check a topic's config overrides; None when valid, else the message of the first problem.

    Follows Kafka 3.x's LogConfig.validate (AdminZkClient.validateTopicCreate / validateTopicConfig):
    every name must be a topic config ("Unknown topic config name: x"), every value must parse
    and pass its ConfigDef validator (checked in ConfigDef order, Kafka's messages), then
    min.compaction.lag.ms <= max.compaction.lag.ms (the missing one from ``base``, default
    Kafka's defaults). None values count as unset. The caller answers a message with
    INVALID_CONFIG (error 40). kafkalike's addition: a min.insync.replicas override larger
    than ``replication_factor`` (the topic's replicas per partition, when known) is refused:
    Kafka accepts it and then refuses every acks=all produce with NOT_ENOUGH_REPLICAS.
    """
    for name in props:
        if name not in TOPIC_CONFIG_KEYS:
            return f"Unknown topic config name: {name}"
    parsed: dict[str, Any] = {}
    for name, key in TOPIC_CONFIG_KEYS.items():
        raw = props.get(name)
        if raw is None:
            continue
        value, problem = parse_topic_config(key, raw)
        if problem is not None:
            return problem
        parsed[name] = value
    defaults = base or LogConfig()
    min_lag = parsed.get("min.compaction.lag.ms", defaults.min_compaction_lag_ms)
    max_lag = parsed.get("max.compaction.lag.ms", defaults.max_compaction_lag_ms)
    if min_lag > max_lag:
        return (f"conflict topic config setting min.compaction.lag.ms ({min_lag}) > "
                f"max.compaction.lag.ms ({max_lag})")
    min_isr = parsed.get("min.insync.replicas")
    if min_isr is not None and replication_factor is not None and 0 < replication_factor < min_isr:
        return _invalid("min.insync.replicas", min_isr,
                        f"Value must be no more than the topic's replication factor ({replication_factor})")
    return None
