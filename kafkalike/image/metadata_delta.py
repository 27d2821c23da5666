"""Records replayed on an image (Kafka 3.9's ``org.apache.kafka.image.MetadataDelta`` and its
``FeaturesDelta``, ``ClusterDelta``, ``TopicsDelta`` / ``TopicDelta``, ``ConfigurationsDelta``,
``ProducerIdsDelta``).

Use::

    delta = MetadataDelta(image)
    for record in records_of_a_batch:          # metadata_records.ApiMessage instances
        delta.replay(record)
    changes = delta.local_changes(broker_id)   # what this broker must lead, follow, delete
    image = delta.apply(MetadataProvenance(last_offset, epoch, append_time_ms))

``replay`` raises ``MetadataReplayError`` for a record that does not fit the image (a partition
of an unknown topic, a change to an unregistered broker or a different broker epoch, a removed
topic that never existed, an unknown fencing value): Kafka's replay throws there too and its
loader hands the error to the fault handler; the delta is then unusable.

``local_changes(broker_id)`` is Kafka's ``TopicsDelta.localChanges``: for every partition changed in
this delta, a broker that is now the leader (and whose partition epoch changed) goes to
``leaders`` (and to ``elected_leaders`` when the leader epoch changed), a replica that is not
leader to ``followers``, and a broker that was a replica before and is not any more to
``deletes``; every partition of a deleted topic where the broker was a replica is in ``deletes``.
"""

from __future__ import annotations

import uuid
from typing import Any

import attrs

from kafkalike.image.metadata_image import (METADATA_VERSION_FEATURE, BrokerRegistration, ClientQuotasImage, ClusterImage,
                                            ConfigurationsImage, FeaturesImage, MetadataImage, MetadataProvenance,
                                            PartitionRegistration, ProducerIdsImage, TopicImage, TopicsImage,
                                            QuotaEntityKey, ScramCredentialData, ScramImage, CONFIG_RESOURCE_TOPIC,
                                            AclsImage, StandardAcl)
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.topic_partition import TopicPartition

__all__ = ["MetadataDelta", "MetadataReplayError", "LocalReplicaChanges", "PartitionInfo"]


class MetadataReplayError(ValueError):
    """A record that cannot be replayed on the image (Kafka: IllegalStateException /
    RuntimeException from replay, handled by the loader's fault handler)."""


@attrs.frozen
class PartitionInfo:
    """A local replica change (Kafka's LocalReplicaChanges.PartitionInfo): the topic id and the
    partition's new registration."""

    topic_id: uuid.UUID
    partition: PartitionRegistration


@attrs.frozen
class LocalReplicaChanges:
    """What one broker must do after a delta (Kafka's LocalReplicaChanges): ``deletes`` (stop
    hosting, delete the log), ``leaders`` / ``followers`` (become leader / follower with the
    registration), ``elected_leaders`` (the leaders whose leader epoch changed), ``topic_ids``
    {name: id} of the topics in leaders and followers."""

    deletes: frozenset[TopicPartition]
    elected_leaders: dict[TopicPartition, PartitionInfo]
    leaders: dict[TopicPartition, PartitionInfo]
    followers: dict[TopicPartition, PartitionInfo]
    topic_ids: dict[str, uuid.UUID]

    def is_empty(self) -> bool:
        """True when the broker has nothing to do."""
        return not (self.deletes or self.leaders or self.followers)


@attrs.define
class _TopicDelta:
    """Kafka's TopicDelta: the base TopicImage (empty for a topic created in this delta) and the
    new registrations of changed partitions."""

    image: TopicImage
    partition_changes: dict[int, PartitionRegistration] = attrs.field(factory=dict)

    def partition(self, partition_id: int) -> PartitionRegistration | None:
        changed = self.partition_changes.get(partition_id)
        return changed if changed is not None else self.image.partitions.get(partition_id)

    def apply(self) -> TopicImage:
        if not self.partition_changes:
            return self.image
        partitions = dict(self.image.partitions)
        partitions.update(self.partition_changes)
        return TopicImage(self.image.name, self.image.id, partitions)

    def local_changes(self, broker_id: int, deletes: set[TopicPartition], elected: dict[TopicPartition, PartitionInfo],
                      leaders: dict[TopicPartition, PartitionInfo], followers: dict[TopicPartition, PartitionInfo],
                      topic_ids: dict[str, uuid.UUID]) -> None:
        name, topic_id = self.image.name, self.image.id
        for partition_id, new in self.partition_changes.items():
            prev = self.image.partitions.get(partition_id)
            tp = TopicPartition(name, partition_id)
            if broker_id not in new.replicas:
                if prev is not None and broker_id in prev.replicas:
                    deletes.add(tp)
            elif prev is not None and prev.partition_epoch == new.partition_epoch:
                continue
            elif new.leader == broker_id:
                leaders[tp] = PartitionInfo(topic_id, new)
                if prev is None or prev.leader_epoch != new.leader_epoch:
                    elected[tp] = PartitionInfo(topic_id, new)
                topic_ids.setdefault(name, topic_id)
            else:
                followers[tp] = PartitionInfo(topic_id, new)
                topic_ids.setdefault(name, topic_id)


class MetadataDelta:
    """Changes on top of ``image`` (see module doc). Not thread-safe; one delta per batch or
    per group of batches, then ``apply``."""

    def __init__(self, image: MetadataImage) -> None:
        self.image = image
        self._features: dict[str, int] = {}
        self._brokers: dict[int, BrokerRegistration] = {}
        self._changed_topics: dict[uuid.UUID, _TopicDelta] = {}
        self._deleted_topic_ids: set[uuid.UUID] = set()
        self._config_changes: dict[tuple[int, str], dict[str, str | None]] = {}
        self._cleared_configs: set[tuple[int, str]] = set()
        self._next_producer_id: int | None = None
        self._quota_changes: dict[QuotaEntityKey, dict[str, float | None]] = {}
        self._scram_changes: dict[tuple[str, int], ScramCredentialData | None] = {}
        self._acl_changes: dict[uuid.UUID, StandardAcl | None] = {}
        self.records = 0
        """How many records were replayed."""

    # ------------------------------------------------------------------ reading the delta

    @property
    def deleted_topic_ids(self) -> frozenset[uuid.UUID]:
        """Ids of the topics of the base image that this delta removes."""
        return frozenset(self._deleted_topic_ids)

    @property
    def changed_topic_ids(self) -> frozenset[uuid.UUID]:
        """Ids of the topics created or with changed partitions."""
        return frozenset(t.image.id for t in self._changed_topics.values() if t.partition_changes or
                         t.image.id not in self.image.topics.topics_by_id)

    @property
    def changed_broker_ids(self) -> frozenset[int]:
        """Ids of the brokers registered or changed in this delta."""
        return frozenset(self._brokers)

    def changed_config_resources(self) -> frozenset[tuple[int, str]]:
        """(resource type, resource name) of every config resource set, deleted or cleared."""
        return frozenset(self._config_changes) | frozenset(self._cleared_configs)

    def has_changes(self) -> bool:
        """True when applying would give an image other than the base one (provenance aside)."""
        return bool(self._features or self._brokers or self._changed_topics or self._deleted_topic_ids or
                    self._config_changes or self._cleared_configs or self._next_producer_id is not None or
                    bool(self._quota_changes) or bool(self._scram_changes) or bool(self._acl_changes))

    @property
    def acls_changed(self) -> bool:
        """True when ACLs were created or removed in this delta."""
        return bool(self._acl_changes)

    @property
    def changed_scram_users(self) -> frozenset[str]:
        """Users whose SCRAM credentials were set or removed in this delta."""
        return frozenset(user for user, _mechanism in self._scram_changes)

    @property
    def changed_quota_entities(self) -> frozenset[QuotaEntityKey]:
        """Client quota entities set or removed in this delta."""
        return frozenset(self._quota_changes)

    def topic(self, topic_id: uuid.UUID) -> TopicImage | None:
        """The topic as it is after the records replayed so far (None: absent or removed)."""
        if topic_id in self._deleted_topic_ids:
            return None
        td = self._changed_topics.get(topic_id)
        if td is not None:
            return td.apply()
        return self.image.topics.get_topic(topic_id)

    def broker(self, broker_id: int) -> BrokerRegistration | None:
        """The broker's registration after the records replayed so far."""
        return self._brokers.get(broker_id) or self.image.cluster.broker(broker_id)

    # ------------------------------------------------------------------ replay

    def replay(self, record: mr.ApiMessage | mr.ApiMessageAndVersion) -> None:
        """Replay one metadata record. Raises MetadataReplayError (see module doc)."""
        message: Any = record.message if isinstance(record, mr.ApiMessageAndVersion) else record
        handler = _REPLAY.get(type(message))
        if handler is None:
            raise MetadataReplayError(f"cannot replay {type(message).__name__}")
        handler(self, message)
        self.records += 1

    def _replay_feature_level(self, record: mr.FeatureLevelRecord) -> None:
        self._features[record.name] = record.feature_level

    def _replay_register_broker(self, record: mr.RegisterBrokerRecord) -> None:
        self._brokers[record.broker_id] = BrokerRegistration.from_record(record)

    def _replay_broker_registration_change(self, record: mr.BrokerRegistrationChangeRecord) -> None:
        current = self.broker(record.broker_id)
        if current is None:
            raise MetadataReplayError(f"Unable to replay {record}: no broker {record.broker_id} is registered")
        if current.epoch != record.broker_epoch:
            raise MetadataReplayError(f"Unable to replay {record}: broker {record.broker_id} has epoch "
                                      f"{current.epoch}, not {record.broker_epoch}")
        if record.fenced not in (-1, 0, 1):
            raise MetadataReplayError(f"Unable to replay {record}: unknown value for fenced field: {record.fenced}")
        if record.in_controlled_shutdown not in (0, 1):
            raise MetadataReplayError(f"Unable to replay {record}: unknown value for inControlledShutdown field: "
                                      f"{record.in_controlled_shutdown}")
        fenced = current.fenced if record.fenced == 0 else record.fenced == 1
        in_shutdown = current.in_controlled_shutdown or record.in_controlled_shutdown == 1
        dirs = tuple(record.log_dirs) if record.log_dirs else current.directories
        changed = attrs.evolve(current, fenced=fenced, in_controlled_shutdown=in_shutdown, directories=dirs)
        if changed != current:
            self._brokers[record.broker_id] = changed

    def _replay_topic(self, record: mr.TopicRecord) -> None:
        if record.topic_id in self._changed_topics or record.topic_id in self.image.topics.topics_by_id and \
                record.topic_id not in self._deleted_topic_ids:
            raise MetadataReplayError(f"topic id {record.topic_id} ({record.name}) is already registered")
        self._changed_topics[record.topic_id] = _TopicDelta(TopicImage(record.name, record.topic_id, {}))

    def _topic_delta(self, topic_id: uuid.UUID, what: str) -> _TopicDelta:
        td = self._changed_topics.get(topic_id)
        if td is None:
            base = self.image.topics.get_topic(topic_id)
            if base is None or topic_id in self._deleted_topic_ids:
                raise MetadataReplayError(f"Unable to replay {what}: unknown topic id {topic_id}")
            td = self._changed_topics[topic_id] = _TopicDelta(base)
        return td

    def _replay_partition(self, record: mr.PartitionRecord) -> None:
        td = self._topic_delta(record.topic_id, "PartitionRecord")
        td.partition_changes[record.partition_id] = PartitionRegistration.from_record(record)

    def _replay_partition_change(self, record: mr.PartitionChangeRecord) -> None:
        td = self._topic_delta(record.topic_id, "PartitionChangeRecord")
        current = td.partition(record.partition_id)
        if current is None:
            raise MetadataReplayError(f"Unable to replay PartitionChangeRecord: topic {td.image.name} has no "
                                      f"partition {record.partition_id}")
        td.partition_changes[record.partition_id] = current.merge(record)

    def _replay_remove_topic(self, record: mr.RemoveTopicRecord) -> None:
        td = self._changed_topics.pop(record.topic_id, None)
        base = self.image.topics.get_topic(record.topic_id)
        if base is not None and record.topic_id not in self._deleted_topic_ids:
            self._deleted_topic_ids.add(record.topic_id)
            name = base.name
        elif td is not None:
            name = td.image.name  # created and removed in this delta: nothing to remove from the image
        else:
            raise MetadataReplayError(f"Unable to replay RemoveTopicRecord: unknown topic id {record.topic_id}")
        # the topic's dynamic configs go with it (Kafka's ConfigurationsDelta.handleRemoveTopic)
        key = (CONFIG_RESOURCE_TOPIC, name)
        self._config_changes.pop(key, None)
        self._cleared_configs.add(key)

    def _replay_config(self, record: mr.ConfigRecord) -> None:
        self._config_changes.setdefault((record.resource_type, record.resource_name), {})[record.name] = record.value

    def _replay_client_quota(self, record: mr.ClientQuotaRecord) -> None:
        entity = frozenset((e.entity_type, e.entity_name) for e in record.entity)
        self._quota_changes.setdefault(entity, {})[record.key] = None if record.remove else record.value

    def _replay_scram(self, record: mr.UserScramCredentialRecord) -> None:
        self._scram_changes[(record.name, record.mechanism)] = ScramCredentialData(
            record.salt, record.stored_key, record.server_key, record.iterations)

    def _replay_remove_scram(self, record: mr.RemoveUserScramCredentialRecord) -> None:
        self._scram_changes[(record.name, record.mechanism)] = None

    def _replay_acl(self, record: mr.AccessControlEntryRecord) -> None:
        self._acl_changes[record.id] = StandardAcl.from_record(record)

    def _replay_remove_acl(self, record: mr.RemoveAccessControlEntryRecord) -> None:
        self._acl_changes[record.id] = None

    def _replay_producer_ids(self, record: mr.ProducerIdsRecord) -> None:
        self._next_producer_id = record.next_producer_id

    def _replay_no_op(self, record: mr.NoOpRecord) -> None:
        pass

    # ------------------------------------------------------------------ results

    def local_changes(self, broker_id: int) -> LocalReplicaChanges:
        """This broker's replica changes (Kafka's TopicsDelta.localChanges; see module doc)."""
        deletes: set[TopicPartition] = set()
        elected: dict[TopicPartition, PartitionInfo] = {}
        leaders: dict[TopicPartition, PartitionInfo] = {}
        followers: dict[TopicPartition, PartitionInfo] = {}
        topic_ids: dict[str, uuid.UUID] = {}
        for td in self._changed_topics.values():
            td.local_changes(broker_id, deletes, elected, leaders, followers, topic_ids)
        for topic_id in self._deleted_topic_ids:
            topic = self.image.topics.topics_by_id[topic_id]
            for partition_id, prev in topic.partitions.items():
                if broker_id in prev.replicas:
                    deletes.add(TopicPartition(topic.name, partition_id))
        return LocalReplicaChanges(frozenset(deletes), elected, leaders, followers, topic_ids)

    def apply(self, provenance: MetadataProvenance) -> MetadataImage:
        """The image after every replayed record, at ``provenance``; unchanged parts are shared
        with the base image."""
        base = self.image
        features = base.features
        if self._features:
            levels = dict(base.features.finalized_versions)
            for name, level in self._features.items():
                if level == 0 and name != METADATA_VERSION_FEATURE:
                    levels.pop(name, None)
                else:
                    levels[name] = level
            features = FeaturesImage(levels)
        cluster = base.cluster
        if self._brokers:
            cluster = ClusterImage({**base.cluster.brokers, **self._brokers})
        topics = base.topics
        if self._changed_topics or self._deleted_topic_ids:
            by_id = dict(base.topics.topics_by_id)
            by_name = dict(base.topics.topics_by_name)
            for topic_id in self._deleted_topic_ids:
                gone = by_id.pop(topic_id)
                if by_name.get(gone.name) is gone:
                    del by_name[gone.name]
            for td in self._changed_topics.values():
                topic = td.apply()
                by_id[topic.id] = topic
                by_name[topic.name] = topic
            topics = TopicsImage(by_id, by_name)
        configs = base.configs
        if self._config_changes or self._cleared_configs:
            all_configs = dict(base.configs.configs)
            for key in self._cleared_configs:
                all_configs.pop(key, None)
            for key, changes in self._config_changes.items():
                values = dict(all_configs.get(key, {}))
                for name, value in changes.items():
                    if value is None:
                        values.pop(name, None)
                    else:
                        values[name] = value
                if values:
                    all_configs[key] = values
                else:
                    all_configs.pop(key, None)
            configs = ConfigurationsImage(all_configs)
        producer_ids = base.producer_ids
        if self._next_producer_id is not None:
            producer_ids = ProducerIdsImage(self._next_producer_id)
        client_quotas = base.client_quotas
        if self._quota_changes:
            entities = dict(base.client_quotas.entities)
            for entity, quota_changes in self._quota_changes.items():
                quotas = dict(entities.get(entity, {}))
                for quota_key, quota in quota_changes.items():
                    if quota is None:
                        quotas.pop(quota_key, None)
                    else:
                        quotas[quota_key] = quota
                if quotas:
                    entities[entity] = quotas
                else:
                    entities.pop(entity, None)
            client_quotas = ClientQuotasImage(entities)
        scram = base.scram
        if self._scram_changes:
            credentials = dict(base.scram.credentials)
            for scram_key, credential in self._scram_changes.items():
                if credential is None:
                    credentials.pop(scram_key, None)
                else:
                    credentials[scram_key] = credential
            scram = ScramImage(credentials)
        acls = base.acls
        if self._acl_changes:
            acls_by_id = dict(base.acls.acls)
            for acl_id, change in self._acl_changes.items():
                if change is None:
                    acls_by_id.pop(acl_id, None)
                else:
                    acls_by_id[acl_id] = change
            acls = AclsImage(acls_by_id)
        return MetadataImage(provenance, features, cluster, topics, configs, producer_ids, client_quotas, scram,
                             acls)


_REPLAY: dict[type, Any] = {
    mr.FeatureLevelRecord: MetadataDelta._replay_feature_level,
    mr.RegisterBrokerRecord: MetadataDelta._replay_register_broker,
    mr.BrokerRegistrationChangeRecord: MetadataDelta._replay_broker_registration_change,
    mr.TopicRecord: MetadataDelta._replay_topic,
    mr.PartitionRecord: MetadataDelta._replay_partition,
    mr.PartitionChangeRecord: MetadataDelta._replay_partition_change,
    mr.RemoveTopicRecord: MetadataDelta._replay_remove_topic,
    mr.ConfigRecord: MetadataDelta._replay_config,
    mr.ProducerIdsRecord: MetadataDelta._replay_producer_ids,
    mr.NoOpRecord: MetadataDelta._replay_no_op,
    mr.ClientQuotaRecord: MetadataDelta._replay_client_quota,
    mr.UserScramCredentialRecord: MetadataDelta._replay_scram,
    mr.RemoveUserScramCredentialRecord: MetadataDelta._replay_remove_scram,
    mr.AccessControlEntryRecord: MetadataDelta._replay_acl,
    mr.RemoveAccessControlEntryRecord: MetadataDelta._replay_remove_acl,
}
