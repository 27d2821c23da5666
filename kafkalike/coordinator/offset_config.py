"""OffsetConfig and GroupConfig: the group coordinator's settings, read from the broker's
Kafka properties (Kafka's kafka.coordinator.group.OffsetConfig / GroupConfig).

Also holds the name of the internal topic (``__consumer_offsets``) and Kafka's fixed
timeouts that are not configurable (``NEW_MEMBER_JOIN_TIMEOUT_MS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

OFFSETS_TOPIC = "__consumer_offsets"
"""Kafka's Topic.GROUP_METADATA_TOPIC_NAME."""

NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000
"""A new member that joined but never completed a rebalance is dropped after this many ms
(Kafka's GroupCoordinator.NewMemberJoinTimeoutMs, KIP-394)."""

OFFSETS_TOPIC_CONFIGS = {"cleanup.policy": "compact", "compression.type": "producer"}
"""Topic configs __consumer_offsets is created with (plus segment.bytes from the broker)."""


@attrs.frozen
class OffsetConfig:
    """__consumer_offsets and committed-offset settings (Kafka property names in comments).

    Times in ms, sizes in bytes.
    """

    num_partitions: int = 50                  # offsets.topic.num.partitions
    replication_factor: int = 3               # offsets.topic.replication.factor
    segment_bytes: int = 104857600            # offsets.topic.segment.bytes
    retention_ms: int = 7 * 24 * 3600 * 1000  # offsets.retention.minutes
    retention_check_interval_ms: int = 600000  # offsets.retention.check.interval.ms
    commit_timeout_ms: int = 5000             # offsets.commit.timeout.ms
    load_buffer_size: int = 5242880           # offsets.load.buffer.size
    max_metadata_size: int = 4096             # offset.metadata.max.bytes


@attrs.frozen
class GroupConfig:
    """Group membership settings (ms)."""

    min_session_timeout_ms: int = 6000        # group.min.session.timeout.ms
    max_session_timeout_ms: int = 1800000     # group.max.session.timeout.ms
    initial_rebalance_delay_ms: int = 3000    # group.initial.rebalance.delay.ms
    max_size: int = 2**31 - 1                 # group.max.size


def _get(config: Any, key: str, default: int) -> int:
    try:
        value = config[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else int(value)


def configs_from(config: Mapping[str, Any] | Any) -> tuple[OffsetConfig, GroupConfig]:
    """(OffsetConfig, GroupConfig) from a KafkaConfig (or any mapping of Kafka property names);
    absent keys take Kafka's defaults."""
    d_off, d_grp = OffsetConfig(), GroupConfig()
    off = OffsetConfig(
        num_partitions=_get(config, "offsets.topic.num.partitions", d_off.num_partitions),
        replication_factor=_get(config, "offsets.topic.replication.factor", d_off.replication_factor),
        segment_bytes=_get(config, "offsets.topic.segment.bytes", d_off.segment_bytes),
        retention_ms=_get(config, "offsets.retention.minutes", d_off.retention_ms // 60000) * 60000,
        retention_check_interval_ms=_get(config, "offsets.retention.check.interval.ms",
                                         d_off.retention_check_interval_ms),
        commit_timeout_ms=_get(config, "offsets.commit.timeout.ms", d_off.commit_timeout_ms),
        load_buffer_size=_get(config, "offsets.load.buffer.size", d_off.load_buffer_size),
        max_metadata_size=_get(config, "offset.metadata.max.bytes", d_off.max_metadata_size),
    )
    grp = GroupConfig(
        min_session_timeout_ms=_get(config, "group.min.session.timeout.ms", d_grp.min_session_timeout_ms),
        max_session_timeout_ms=_get(config, "group.max.session.timeout.ms", d_grp.max_session_timeout_ms),
        initial_rebalance_delay_ms=_get(config, "group.initial.rebalance.delay.ms",
                                        d_grp.initial_rebalance_delay_ms),
        max_size=_get(config, "group.max.size", d_grp.max_size),
    )
    return off, grp
