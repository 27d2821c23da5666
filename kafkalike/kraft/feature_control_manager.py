"""Finalized feature levels (Kafka's FeatureControlManager): FeatureLevelRecord replay.

metadata.version is a feature like any other: ``FeatureLevelRecord("metadata.version", 21)`` is
3.9-IV0, the level Kafka 3.9's bootstrap.checkpoint holds and the only one kafkalike writes.
"""

from __future__ import annotations

from kafkalike.protocol import metadata_records as mr

__all__ = ["FeatureControlManager", "METADATA_VERSION", "MV_3_9_IV0"]

METADATA_VERSION = "metadata.version"
MV_3_9_IV0 = 21
"""Kafka's MetadataVersion.IBP_3_9_IV0.featureLevel()."""


class FeatureControlManager:
    """``finalized`` {feature name: level}; a level of 0 removes the feature (Kafka: replay)."""

    def __init__(self) -> None:
        self.finalized: dict[str, int] = {}

    def replay(self, record: mr.FeatureLevelRecord) -> None:
        """Apply a committed FeatureLevelRecord."""
        if record.feature_level == 0:
            self.finalized.pop(record.name, None)
        else:
            self.finalized[record.name] = record.feature_level

    @property
    def metadata_version(self) -> int:
        """The finalized metadata.version level, 0 before the bootstrap records are replayed."""
        return self.finalized.get(METADATA_VERSION, 0)
