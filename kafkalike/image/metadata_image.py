"""Frozen images of the KRaft metadata (Kafka 3.9's ``org.apache.kafka.image.*Image`` and
``org.apache.kafka.metadata.PartitionRegistration`` / ``BrokerRegistration``).

An image is the cluster's metadata after every record of ``__cluster_metadata`` up to one offset
(``MetadataProvenance``). Images are never changed: ``MetadataDelta.apply()`` builds the next one,
sharing every part (topic, broker, config map) that did not change, so a reader may keep an image
as long as it likes while the loader moves on. The mappings inside are plain dicts by convention
never written after construction.

Parts (Kafka's names):

* ``FeaturesImage``: finalized feature levels ({name: level}); ``metadata_version`` (21 = 3.9-IV0).
* ``ClusterImage``: ``BrokerRegistration`` per broker id (endpoints, rack, fenced, in controlled
  shutdown, broker epoch, incarnation id).
* ``TopicsImage``: ``TopicImage`` by id and by name, each with its ``PartitionRegistration``s
  (replicas, isr, leader, leader_epoch, partition_epoch, ...).
* ``ConfigurationsImage``: dynamic configs by (resource type, resource name): Kafka's
  ConfigResource.Type ids (2 TOPIC, 4 BROKER).
* ``ProducerIdsImage``: the next producer id block's first id (-1 before any block).
* ``AclsImage``: every ACL (``StandardAcl``) by its Uuid.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from kafkalike.protocol import metadata_records as mr

NO_LEADER = -1
"""Kafka's LeaderConstants.NO_LEADER: a partition without a leader."""
NO_LEADER_CHANGE = -2
"""PartitionChangeRecord.leader's 'unchanged' value (LeaderConstants.NO_LEADER_CHANGE)."""

CONFIG_RESOURCE_TOPIC = 2
"""Kafka's ConfigResource.Type.TOPIC id (ConfigRecord.resource_type)."""
CONFIG_RESOURCE_BROKER = 4
"""Kafka's ConfigResource.Type.BROKER id."""

METADATA_VERSION_FEATURE = "metadata.version"

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


@attrs.frozen
class MetadataProvenance:
    """Where an image comes from (Kafka's MetadataProvenance): the offset and Raft epoch of the
    last record it contains (-1, -1 for the empty image) and that batch's append time (ms)."""

    last_contained_offset: int = -1
    last_contained_epoch: int = -1
    last_contained_log_time_ms: int = -1


@attrs.frozen
class FeaturesImage:
    """Finalized features, {name: level} (Kafka's FeaturesImage); level 0 features are absent."""

    finalized_versions: Mapping[str, int] = _EMPTY

    @property
    def metadata_version(self) -> int:
        """The metadata.version feature level (21 = 3.9-IV0), 0 when none is set yet."""
        return self.finalized_versions.get(METADATA_VERSION_FEATURE, 0)


@attrs.frozen
class BrokerRegistration:
    """A registered broker (Kafka's metadata.BrokerRegistration), from RegisterBrokerRecord and
    BrokerRegistrationChangeRecords. ``listeners``: endpoints by listener name; ``features``:
    {name: (min, max supported)}; ``epoch``: the broker epoch the controller gave this
    registration (the RegisterBrokerRecord's offset in Kafka); ``directories``: log dir ids."""

    id: int
    epoch: int
    incarnation_id: uuid.UUID
    listeners: Mapping[str, mr.BrokerEndpoint]
    features: Mapping[str, tuple[int, int]]
    rack: str | None
    fenced: bool
    in_controlled_shutdown: bool
    directories: tuple[uuid.UUID, ...] = ()

    @classmethod
    def from_record(cls, record: mr.RegisterBrokerRecord) -> BrokerRegistration:
        """The registration a RegisterBrokerRecord describes."""
        return cls(id=record.broker_id, epoch=record.broker_epoch, incarnation_id=record.incarnation_id,
                   listeners={e.name: e for e in record.end_points},
                   features={f.name: (f.min_supported_version, f.max_supported_version) for f in record.features},
                   rack=record.rack, fenced=record.fenced, in_controlled_shutdown=record.in_controlled_shutdown,
                   directories=tuple(record.log_dirs))

    def node(self, listener_name: str) -> tuple[str, int] | None:
        """(host, port) of this broker on ``listener_name``, None when it has no such listener."""
        endpoint = self.listeners.get(listener_name)
        return None if endpoint is None else (endpoint.host, endpoint.port)


@attrs.frozen
class ClusterImage:
    """The registered brokers, {broker id: BrokerRegistration} (Kafka's ClusterImage; controller
    registrations are not modelled: kafkalike's controllers are the static voters)."""

    brokers: Mapping[int, BrokerRegistration] = _EMPTY

    def broker(self, broker_id: int) -> BrokerRegistration | None:
        """The registration of ``broker_id`` or None."""
        return self.brokers.get(broker_id)

    def unfenced_broker_ids(self) -> list[int]:
        """Ids of the brokers that are registered and not fenced, ascending (the 'alive' brokers
        a Metadata answer lists)."""
        return sorted(b.id for b in self.brokers.values() if not b.fenced)


@attrs.frozen
class PartitionRegistration:
    """One partition as the controller registered it (Kafka's metadata.PartitionRegistration).

    ``replicas``, ``isr``, ``removing_replicas``, ``adding_replicas``: broker ids; ``leader``
    (-1: none), ``leader_epoch``, ``partition_epoch`` (bumped by every change);
    ``leader_recovery_state`` 0 RECOVERED, 1 RECOVERING (KIP-704); ``directories``: one log dir id
    per replica; ``elr`` / ``last_known_elr`` (KIP-966, empty before metadata.version 3.9-IV1)."""

    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int
    removing_replicas: tuple[int, ...] = ()
    adding_replicas: tuple[int, ...] = ()
    leader_recovery_state: int = 0
    directories: tuple[uuid.UUID, ...] = ()
    elr: tuple[int, ...] = ()
    last_known_elr: tuple[int, ...] = ()

    @classmethod
    def from_record(cls, record: mr.PartitionRecord) -> PartitionRegistration:
        """The registration a PartitionRecord describes."""
        return cls(replicas=tuple(record.replicas), isr=tuple(record.isr), leader=record.leader,
                   leader_epoch=record.leader_epoch, partition_epoch=record.partition_epoch,
                   removing_replicas=tuple(record.removing_replicas), adding_replicas=tuple(record.adding_replicas),
                   leader_recovery_state=record.leader_recovery_state, directories=tuple(record.directories),
                   elr=tuple(record.eligible_leader_replicas or ()),
                   last_known_elr=tuple(record.last_known_elr or ()))

    def merge(self, record: mr.PartitionChangeRecord) -> PartitionRegistration:
        """The registration after ``record`` (Kafka's PartitionRegistration.merge): fields the
        record leaves unset (None; leader -2; leader_recovery_state -1) are kept; a set leader
        (even the same one) bumps the leader epoch; every change bumps the partition epoch."""
        leader, leader_epoch = self.leader, self.leader_epoch
        if record.leader != NO_LEADER_CHANGE:
            leader, leader_epoch = record.leader, self.leader_epoch + 1
        return PartitionRegistration(
            replicas=self.replicas if record.replicas is None else tuple(record.replicas),
            isr=self.isr if record.isr is None else tuple(record.isr),
            leader=leader, leader_epoch=leader_epoch, partition_epoch=self.partition_epoch + 1,
            removing_replicas=(self.removing_replicas if record.removing_replicas is None
                               else tuple(record.removing_replicas)),
            adding_replicas=self.adding_replicas if record.adding_replicas is None else tuple(record.adding_replicas),
            leader_recovery_state=(self.leader_recovery_state if record.leader_recovery_state == -1
                                   else record.leader_recovery_state),
            directories=self.directories if record.directories is None else tuple(record.directories),
            elr=self.elr if record.eligible_leader_replicas is None else tuple(record.eligible_leader_replicas),
            last_known_elr=self.last_known_elr if record.last_known_elr is None else tuple(record.last_known_elr))

    def has_leader(self) -> bool:
        """True when a leader is elected."""
        return self.leader != NO_LEADER


@attrs.frozen
class TopicImage:
    """A topic: ``name``, ``id`` and {partition id: PartitionRegistration} (Kafka's TopicImage)."""

    name: str
    id: uuid.UUID
    partitions: Mapping[int, PartitionRegistration] = _EMPTY


@attrs.frozen
class TopicsImage:
    """Every topic by id and by name (Kafka's TopicsImage); both maps hold the same TopicImages."""

    topics_by_id: Mapping[uuid.UUID, TopicImage] = _EMPTY
    topics_by_name: Mapping[str, TopicImage] = _EMPTY

    def get_topic(self, topic_id: uuid.UUID) -> TopicImage | None:
        """The topic with this id or None."""
        return self.topics_by_id.get(topic_id)

    def get_topic_by_name(self, name: str) -> TopicImage | None:
        """The topic of this name or None."""
        return self.topics_by_name.get(name)

    def get_partition(self, topic_id: uuid.UUID, partition_id: int) -> PartitionRegistration | None:
        """The registration of one partition or None."""
        topic = self.topics_by_id.get(topic_id)
        return None if topic is None else topic.partitions.get(partition_id)

    def __iter__(self) -> Iterator[TopicImage]:
        return iter(self.topics_by_id.values())


@attrs.frozen
class ConfigurationsImage:
    """Dynamic configs, {(resource type, resource name): {config name: value}} (Kafka's
    ConfigurationsImage); resource types are ConfigResource.Type ids (2 topic, 4 broker; the
    broker name "" is the cluster-wide default)."""

    configs: Mapping[tuple[int, str], Mapping[str, str]] = _EMPTY

    def config_map(self, resource_type: int, resource_name: str) -> Mapping[str, str]:
        """The configs set on one resource ({} when none)."""
        return self.configs.get((resource_type, resource_name), _EMPTY)

    def topic_config(self, topic: str) -> Mapping[str, str]:
        """The configs set on topic ``topic``."""
        return self.config_map(CONFIG_RESOURCE_TOPIC, topic)


@attrs.frozen
class ProducerIdsImage:
    """The first producer id not yet handed out in a block (Kafka's ProducerIdsImage), -1 when
    no block was ever allocated."""

    next_producer_id: int = -1


QuotaEntityKey = frozenset[tuple[str, "str | None"]]
"""A client quota entity: {(entity type "user" / "client-id" / "ip", name or None = the default)}."""


@attrs.frozen
class ClientQuotasImage:
    """Client quotas, {entity: {quota key: value}} (Kafka's ClientQuotasImage, from
    ClientQuotaRecords; KIP-546)."""

    entities: Mapping[QuotaEntityKey, Mapping[str, float]] = _EMPTY


@attrs.frozen
class ScramCredentialData:
    """A user's SCRAM credential for one mechanism (Kafka's ScramCredentialData)."""

    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


@attrs.frozen
class ScramImage:
    """SCRAM credentials, {(user, mechanism type 1 SHA-256 / 2 SHA-512): ScramCredentialData}
    (Kafka's ScramImage, from UserScramCredentialRecords)."""

    credentials: Mapping[tuple[str, int], ScramCredentialData] = _EMPTY


@attrs.frozen
class StandardAcl:
    """One ACL as the metadata log holds it (Kafka's StandardAcl), with Kafka's wire codes:
    resource type, resource name, pattern type (3 LITERAL, 4 PREFIXED), principal
    (``User:alice``), host, operation, permission type (2 DENY, 3 ALLOW)."""

    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission_type: int

    @classmethod
    def from_record(cls, record: mr.AccessControlEntryRecord) -> "StandardAcl":
        """The ACL of an AccessControlEntryRecord (its id aside)."""
        return cls(record.resource_type, record.resource_name, record.pattern_type, record.principal,
                   record.host, record.operation, record.permission_type)

    def to_record(self, acl_id: uuid.UUID) -> mr.AccessControlEntryRecord:
        """The AccessControlEntryRecord that creates this ACL with id ``acl_id``."""
        return mr.AccessControlEntryRecord(
            id=acl_id, resource_type=self.resource_type, resource_name=self.resource_name,
            pattern_type=self.pattern_type, principal=self.principal, host=self.host, operation=self.operation,
            permission_type=self.permission_type)


@attrs.frozen
class AclsImage:
    """Every ACL by its id, {Uuid: StandardAcl} (Kafka's AclsImage, from
    (Remove)AccessControlEntryRecords)."""

    acls: Mapping[uuid.UUID, StandardAcl] = _EMPTY


@attrs.frozen
class MetadataImage:
    """The whole metadata at ``provenance`` (Kafka's MetadataImage). ``MetadataImage.EMPTY`` is
    the image before any record."""

    provenance: MetadataProvenance = MetadataProvenance()
    features: FeaturesImage = FeaturesImage()
    cluster: ClusterImage = ClusterImage()
    topics: TopicsImage = TopicsImage()
    configs: ConfigurationsImage = ConfigurationsImage()
    producer_ids: ProducerIdsImage = ProducerIdsImage()
    client_quotas: ClientQuotasImage = ClientQuotasImage()
    scram: ScramImage = ScramImage()
    acls: AclsImage = AclsImage()

    EMPTY: ClassVar[MetadataImage]  # set below the class

    @property
    def offset(self) -> int:
        """The offset of the last record the image contains (-1: empty)."""
        return self.provenance.last_contained_offset

    def is_empty(self) -> bool:
        """True for the image before any record."""
        return self == MetadataImage.EMPTY


MetadataImage.EMPTY = MetadataImage()
