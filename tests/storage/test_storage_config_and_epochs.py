"""LogConfig uses Kafka's names and defaults; LeaderEpochFileCache follows Kafka's assign/endOffsetFor/truncation rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkalike.storage.leader_epoch_file_cache import LeaderEpochFileCache
from kafkalike.storage.log_config import LogConfig


def test_log_config_defaults_are_kafkas() -> None:
    """Defaults match Kafka 3.x topic-level defaults."""
    c = LogConfig()
    assert c.segment_bytes == 1073741824 and c.segment_ms == 604800000
    assert c.segment_index_bytes == 10485760 and c.index_interval_bytes == 4096
    assert c.retention_ms == 604800000 and c.retention_bytes == -1
    assert c.cleanup_policy == "delete" and c.delete_retention_ms == 86400000
    assert c.flush_messages == c.flush_ms == 2**63 - 1
    assert c.max_message_bytes == 1048588


def test_log_config_from_topic_and_broker_properties() -> None:
    """Topic names override; broker log.* names map through Kafka's synonyms (hours -> ms)."""
    c = LogConfig.from_properties({"segment.bytes": "1048576", "cleanup.policy": "compact, delete", "preallocate": "true",
                                   "unknown.x": "1"})
    assert c.segment_bytes == 1048576 and c.compact and c.delete and c.preallocate
    b = LogConfig.from_broker_properties({"log.retention.hours": "1", "log.segment.bytes": 2048, "log.cleanup.policy": "compact"})
    assert b.retention_ms == 3600000 and b.segment_bytes == 2048 and b.compact and not b.delete
    assert LogConfig.from_broker_properties({"log.retention.ms": 5, "log.retention.hours": 1}).retention_ms == 5
    assert LogConfig().to_properties()["segment.bytes"] == "1073741824"


def test_log_config_rejects_bad_values() -> None:
    """A bad value raises ValueError naming the property."""
    with pytest.raises(ValueError, match="^segment.bytes: bad value 'x'"):
        LogConfig.from_properties({"segment.bytes": "x"})
    with pytest.raises(ValueError, match="cleanup.policy"):
        LogConfig.from_properties({"cleanup.policy": "forever"})
    with pytest.raises(ValueError, match="segment.bytes must be > 0"):
        LogConfig(segment_bytes=0)


def test_epoch_cache_assign_drops_non_monotonic_entries(tmp_path: Path) -> None:
    """assign keeps epochs and offsets increasing, ignores repeats, and persists every change."""
    cache = LeaderEpochFileCache(tmp_path / "leader-epoch-checkpoint")
    assert cache.assign(1, 0) and cache.assign(2, 10) and cache.assign(4, 20)
    assert not cache.assign(4, 25)  # same epoch, later offset: no change
    assert cache.assign(3, 15)  # an older epoch at a lower offset wins over later entries
    assert cache.entries == [(1, 0), (2, 10), (3, 15)]
    assert LeaderEpochFileCache(tmp_path / "leader-epoch-checkpoint").entries == [(1, 0), (2, 10), (3, 15)]
    with pytest.raises(ValueError):
        cache.assign(-1, 3)


def test_epoch_cache_end_offset_for_follows_kafka() -> None:
    """end_offset_for: latest -> LEO, known -> next epoch's start, gaps -> floor epoch, unknown -> (-1, -1)."""
    cache = LeaderEpochFileCache(None)
    for e, o in [(1, 0), (3, 10), (6, 30)]:
        cache.assign(e, o)
    assert cache.end_offset_for(6, 45) == (6, 45)
    assert cache.end_offset_for(3, 45) == (3, 30)
    assert cache.end_offset_for(4, 45) == (3, 30)
    assert cache.end_offset_for(0, 45) == (0, 0)
    assert cache.end_offset_for(7, 45) == (-1, -1)
    assert cache.end_offset_for(-1, 45) == (-1, -1)


def test_epoch_cache_truncation_from_both_ends() -> None:
    """truncate_from_end drops epochs starting at or after the offset; truncate_from_start moves the first kept epoch's start."""
    cache = LeaderEpochFileCache(None)
    for e, o in [(1, 0), (3, 10), (6, 30)]:
        cache.assign(e, o)
    cache.truncate_from_end(30)
    assert cache.entries == [(1, 0), (3, 10)]
    cache.truncate_from_start(12)
    assert cache.entries == [(3, 12)]
    cache.clear()
    assert cache.latest_epoch is None
