"""Per-log (topic-level) configuration with Kafka's property names and defaults.

Follows Kafka's LogConfig / TopicConfig (3.x): each field is the topic-level property with dots
turned into underscores; `LogConfig.from_properties({"segment.bytes": "1048576"})` accepts
Kafka's names (and the broker-level `log.` names via `from_broker_properties`). Units: bytes
and milliseconds as in Kafka. Long.MAX_VALUE (9223372036854775807) means "never".
"""

from __future__ import annotations

from collections.abc import Mapping
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
    parts = {p.strip() for p in value.split(",") if p.strip()}
    if not parts or not parts <= {"delete", "compact"}:
        raise ValueError(f"cleanup.policy must be delete, compact or compact,delete; got {value!r}")


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
