"""KRaftMetadataCache: the broker's metadata cache fed by the metadata image (Kafka 3.9's
``kafka.server.metadata.KRaftMetadataCache``), with the interface KafkaApis already reads
(``MetadataCache``: ``snapshot()``, ``partition()``, ``partitions_of()``, ``endpoint()``, ...).

In ZooKeeper mode the cache is written by the controller's UpdateMetadata requests; in KRaft mode
the broker's metadata publisher calls ``update_from_image(delta, image)`` after each committed
batch of ``__cluster_metadata``, and only the topics the delta changed or removed are rewritten
(the other per-topic maps are kept, as ``MetadataCache.update`` keeps them).

What differs from the ZooKeeper cache, as in Kafka:

* live brokers are the registered, **unfenced** brokers (a fenced broker is not returned in
  Metadata answers: KRaftMetadataCache.getAliveBrokerNodes);
* ``controller_id`` is not a controller (clients cannot reach KRaft controllers): Kafka's
  KafkaApis answers Metadata with a random alive broker (getRandomAliveBrokerId); kafkalike
  gives the lowest unfenced broker id, so answers are reproducible;
* ``zk_version`` of a PartitionInfo holds the partition epoch, ``controller_epoch`` is -1;
* offline replicas are replicas whose broker is not registered (Kafka also counts replicas on an
  offline log directory, which kafkalike's registrations do not report).
"""

from __future__ import annotations

import attrs
import structlog

from kafkalike.broker.metadata_cache import BrokerNode, MetadataCache, PartitionInfo
from kafkalike.coordination.zk_data import TopicPartition
from kafkalike.image import MetadataDelta, MetadataImage, TopicImage

log = structlog.get_logger(__name__)


@attrs.define
class KRaftMetadataCache(MetadataCache):
    """MetadataCache (same fields and queries) updated from metadata images; ``image`` is the
    last image applied (``MetadataImage.EMPTY`` before the first)."""

    image: MetadataImage = MetadataImage.EMPTY

    def update_from_image(self, delta: MetadataDelta, image: MetadataImage) -> list[TopicPartition]:
        """Make the cache show ``image``, which is ``delta`` applied to the previous image; only
        the topics ``delta`` created, changed or removed are rewritten (all of them when
        ``delta``'s base is not this cache's image). Returns the partitions that disappeared."""
        full = delta.image is not self.image
        self.image = image
        if full or delta.changed_broker_ids or not self.brokers:
            self.brokers = {b.id: BrokerNode(b.id, {name: (e.host, e.port) for name, e in b.listeners.items()},
                                             b.rack)
                            for b in image.cluster.brokers.values() if not b.fenced}
            self.controller_id = min(self.brokers) if self.brokers else None
        deleted: list[TopicPartition] = []
        if full:
            gone = set(self._by_topic) - set(image.topics.topics_by_name)
            names = list(image.topics.topics_by_name)
        else:
            gone = {t.name for tid in delta.deleted_topic_ids if (t := delta.image.topics.get_topic(tid)) is not None}
            names = [t.name for tid in delta.changed_topic_ids if (t := image.topics.get_topic(tid)) is not None]
        for name in gone:
            if image.topics.get_topic_by_name(name) is None:
                deleted.extend(self._remove_topic(name))
        for name in names:
            topic = image.topics.get_topic_by_name(name)
            if topic is not None:
                deleted.extend(self._put_topic(topic, image))
        self.updates += 1
        log.debug("metadata_cache_updated", offset=image.offset, brokers=sorted(self.brokers),
                  partitions=len(self.partitions), deleted=len(deleted))
        return deleted

    def _remove_topic(self, name: str) -> list[TopicPartition]:
        removed = [TopicPartition(name, i) for i in self._by_topic.pop(name, {})]
        for tp in removed:
            self.partitions.pop(tp, None)
        self.topic_ids.pop(name, None)
        return removed

    def _put_topic(self, topic: TopicImage, image: MetadataImage) -> list[TopicPartition]:
        registered = image.cluster.brokers
        old = self._by_topic.get(topic.name, {})
        parts: dict[int, PartitionInfo] = {}
        for index, p in topic.partitions.items():
            info = PartitionInfo(leader=p.leader, leader_epoch=p.leader_epoch, isr=p.isr, replicas=p.replicas,
                                 offline_replicas=tuple(r for r in p.replicas if r not in registered),
                                 zk_version=p.partition_epoch, controller_epoch=-1)
            parts[index] = info
            self.partitions[TopicPartition(topic.name, index)] = info
        removed = [TopicPartition(topic.name, i) for i in old if i not in parts]
        for tp in removed:
            self.partitions.pop(tp, None)
        self._by_topic[topic.name] = parts
        self.topic_ids[topic.name] = topic.id
        return removed
