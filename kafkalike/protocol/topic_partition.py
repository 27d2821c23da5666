"""TopicPartition: the (topic, partition) value every layer shares (Kafka's common.TopicPartition).

One class for the whole package, at the bottom of the layers (no imports from kafkalike, no
I/O), so a partition named by the controller's ZooKeeper data, the storage layer's
directories and checkpoints, the broker and the client is the same value: equal, hashable
and ordered (by topic, then partition) across layers. kafkalike.coordination.zk_data,
kafkalike.storage.checkpoints and kafkalike.client.cluster re-export it under their old names.

str() gives Kafka's "<topic>-<partition>", which is also the partition's directory name in a
log dir (Kafka's TopicPartition.toString and UnifiedLog.logDirName).
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["TopicPartition"]


@attrs.frozen(order=True, cache_hash=True)
class TopicPartition:
    """A topic name and partition index (Kafka's TopicPartition); str() is "<topic>-<partition>".

    The hash is computed once per object (attrs' cache_hash): a partition is a dict key in every
    per-partition table, and a 3,000-partition controller step looked hashes up ~1 M times."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"

    @classmethod
    def parse_dir_name(cls, name: str) -> TopicPartition:
        """Partition directory name -> value: "orders-3" -> TopicPartition("orders", 3).

        Raises ValueError if the name has no "-<int>" tail.
        """
        topic, sep, part = name.rpartition("-")
        if not sep or not topic or not part.isdigit():
            raise ValueError(f"not a partition directory name: {name!r}")
        return cls(topic, int(part))

    def to_dict(self) -> dict[str, Any]:
        """``{"topic":..,"partition":..}`` as in Kafka's ZooKeeper notification and election JSON."""
        return {"topic": self.topic, "partition": self.partition}

    @classmethod
    def from_dict(cls, obj: Any, what: str, error: type[ValueError] = ValueError) -> TopicPartition:
        """Parse ``{"topic": str, "partition": int}`` read from ``what`` (a znode path, for messages).

        Raises ``error`` (a ValueError subclass; zk_data passes its ZNodeDecodeError) when obj
        is not such a dict.
        """
        if not isinstance(obj, dict):
            raise error(f"{what}: expected {{topic, partition}}, got {obj!r}")
        for key in ("topic", "partition"):
            if key not in obj:
                raise error(f"{what}: missing key {key!r}")
        topic, partition = obj["topic"], obj["partition"]
        if not isinstance(topic, str):
            raise error(f"{what}: 'topic' has the wrong type: {topic!r}")
        if isinstance(partition, bool) or not isinstance(partition, int):
            raise error(f"{what}: 'partition' must be an integer, got {partition!r}")
        return cls(topic, partition)
