"""ZkAdminManager: the broker's admin path written to ZooKeeper (Kafka's ZkAdminManager,
AdminZkClient and the ZK-era config change listener).

- CreateTopics: name check (INVALID_TOPIC_EXCEPTION), TOPIC_ALREADY_EXISTS, defaults for -1
  (num.partitions, default.replication.factor; KIP-464), explicit assignments checked
  (INVALID_REPLICA_ASSIGNMENT), else Kafka's rack-unaware placement
  (INVALID_PARTITIONS / INVALID_REPLICATION_FACTOR); topic configs checked (INVALID_CONFIG)
  and written to ``/config/topics/<t>`` before the assignment ``/brokers/topics/<t>`` (as
  AdminZkClient.createTopicWithAssignment). ``validate_only`` writes nothing. The answer
  waits (DelayedCreatePartitions) until every new partition has a leader in this broker's
  metadata cache, else REQUEST_TIMED_OUT; with a timeout <= 0 the topic is written and the
  answer is REQUEST_TIMED_OUT at once (Kafka's ZkAdminManager does exactly this).
- DeleteTopics: ``/admin/delete_topics/<t>``; waits (DelayedDeleteTopics) until the metadata
  cache no longer has the topic, else (and at once for a timeout <= 0) REQUEST_TIMED_OUT.
  UNKNOWN_TOPIC_OR_PARTITION, TOPIC_DELETION_DISABLED.
- CreatePartitions: INVALID_PARTITIONS when not growing, REASSIGNMENT_IN_PROGRESS during a
  reassignment; the topic znode is rewritten conditionally on its version; waits like
  CreateTopics.
- DescribeConfigs: topic and broker resources with Kafka's names, defaults, sources
  (DYNAMIC_TOPIC_CONFIG 1, DYNAMIC_BROKER_CONFIG 2, DYNAMIC_DEFAULT_BROKER_CONFIG 3,
  STATIC_BROKER_CONFIG 4, DEFAULT_CONFIG 5), synonyms, types.
- AlterConfigs (replace all) / IncrementalAlterConfigs (SET 0, DELETE 1, APPEND 2, SUBTRACT 3,
  KIP-339) for topics: ``/config/topics/<t>`` plus a ``/config/changes`` notification; for
  brokers ("" = cluster default, or this broker's id; KIP-226) through DynamicBrokerConfig:
  ``/config/brokers/<id|<default>>`` plus a notification.
- Config changes: a watch on ``/config/changes`` re-reads changed topic configs and applies
  them to the local logs (replica_manager.update_topic_config); broker notifications reload
  the dynamic broker configs (DynamicBrokerConfig.reload); client/user notifications
  make the controller mutation quota re-read ``/config/clients``.
- Limits (docs/broker.md "Limits on admin requests"): every partition count from the wire is
  checked against kafkalike.max.partitions.per.request, kafkalike.max.partitions and
  kafkalike.max.replicas.per.broker (PartitionBudget, POLICY_VIOLATION) before an assignment
  is built; CreateTopics / CreatePartitions / DeleteTopics record their partitions in the
  controller mutation quota (KIP-599, kafkalike.broker.controller_mutation_quota:
  THROTTLING_QUOTA_EXCEEDED for the strict versions, throttle_time_ms in every response).
- Auto-creation (``auto_create_topic``, used by Metadata and Produce through
  auto_topic_creation_manager.AutoTopicCreationManager, which sends __consumer_offsets to
  the group coordinator).
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from itertools import chain
from typing import Any

import attrs
import structlog
import trio

from kafkalike.broker.controller_mutation_quota import (STRICT_SINCE, ControllerMutationQuota,
                                                        ControllerMutationQuotaManager,
                                                        ThrottlingQuotaExceeded)
from kafkalike.broker.delayed_operation import DelayedOperation, DelayedOperationPurgatory
from kafkalike.broker.dynamic_broker_config import DescribedConfig, DynamicBrokerConfig, DynamicConfigError
from kafkalike.broker.kafka_config import CONFIG_KEYS, KafkaConfig
from kafkalike.broker.metadata_cache import MetadataCache
from kafkalike.broker.replica_manager import broker_log_config
from kafkalike.controller.replica_assignment import AssignmentError, assign_replicas_to_brokers
from kafkalike.coordination import BadVersion, NodeExists, NoNode
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import KafkaZkClient, TopicExists
from kafkalike.coordination.zookeeper_client import ZooKeeperClient
from kafkalike.protocol.entities import build, entity, response_class_for
from kafkalike.protocol.errors import ErrorCode, error_code_by_name
from kafkalike.storage import LogConfig
from kafkalike.storage.log_config import validate_topic_configs as check_topic_configs


log = structlog.get_logger(__name__)

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
SOURCE_DYNAMIC_TOPIC = 1
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5
TYPE_IDS = {"boolean": 1, "string": 2, "int": 3, "short": 4, "long": 5, "double": 6, "list": 7,
            "password": 9}
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_TOPIC_LENGTH = 249
LONG_MAX = 9223372036854775807
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
"""Kafka's Topic.isInternal: not auto-created with the defaults, not writable by Produce."""


@attrs.frozen
class TopicConfigDef:
    """A topic-level config: Kafka's name, type, default, broker synonyms (highest first)."""

    name: str
    type: str
    default: str
    synonyms: tuple[str, ...]
    doc: str


def _d(name: str, type_: str, default: Any, synonyms: tuple[str, ...], doc: str) -> TopicConfigDef:
    value = ",".join(default) if isinstance(default, list) else str(default).lower() \
        if isinstance(default, bool) else str(default)
    return TopicConfigDef(name, type_, value, synonyms, doc)


TOPIC_CONFIGS: dict[str, TopicConfigDef] = {c.name: c for c in [
    _d("cleanup.policy", "list", ["delete"], ("log.cleanup.policy",), "delete and/or compact"),
    _d("compression.type", "string", "producer", ("compression.type",), "compression of stored batches"),
    _d("delete.retention.ms", "long", 86400000, ("log.cleaner.delete.retention.ms",), "tombstone retention (ms)"),
    _d("file.delete.delay.ms", "long", 60000, ("log.segment.delete.delay.ms",), "delay before deleting a file (ms)"),
    _d("flush.messages", "long", LONG_MAX, ("log.flush.interval.messages",), "messages between fsyncs"),
    _d("flush.ms", "long", LONG_MAX, ("log.flush.interval.ms",), "ms between fsyncs"),
    _d("follower.replication.throttled.replicas", "list", [], ("follower.replication.throttled.replicas",),
       "accepted, no effect"),
    _d("index.interval.bytes", "int", 4096, ("log.index.interval.bytes",), "bytes between index entries"),
    _d("leader.replication.throttled.replicas", "list", [], ("leader.replication.throttled.replicas",),
       "accepted, no effect"),
    _d("max.compaction.lag.ms", "long", LONG_MAX, ("log.cleaner.max.compaction.lag.ms",), "max compaction delay"),
    _d("max.message.bytes", "int", 1048588, ("message.max.bytes",), "largest record batch (bytes)"),
    _d("message.downconversion.enable", "boolean", True, ("log.message.downconversion.enable",),
       "accepted, no effect"),
    _d("message.timestamp.type", "string", "CreateTime", ("log.message.timestamp.type",),
       "CreateTime or LogAppendTime"),
    _d("min.cleanable.dirty.ratio", "double", 0.5, ("log.cleaner.min.cleanable.ratio",), "dirty ratio to compact"),
    _d("min.compaction.lag.ms", "long", 0, ("log.cleaner.min.compaction.lag.ms",), "min age before compaction"),
    _d("min.insync.replicas", "int", 1, ("min.insync.replicas",), "ISR size needed for acks=all"),
    _d("preallocate", "boolean", False, ("log.preallocate",), "preallocate segment files"),
    _d("retention.bytes", "long", -1, ("log.retention.bytes",), "max partition size (bytes)"),
    _d("retention.ms", "long", 604800000, ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
       "retention time (ms)"),
    _d("segment.bytes", "int", 1073741824, ("log.segment.bytes",), "segment size (bytes)"),
    _d("segment.index.bytes", "int", 10485760, ("log.index.size.max.bytes",), "offset index size (bytes)"),
    _d("segment.jitter.ms", "long", 0, ("log.roll.jitter.ms", "log.roll.jitter.hours"), "segment roll jitter"),
    _d("segment.ms", "long", 604800000, ("log.roll.ms", "log.roll.hours"), "segment age before a roll (ms)"),
    _d("unclean.leader.election.enable", "boolean", False, ("unclean.leader.election.enable",),
       "elect out-of-sync replicas as a last resort"),
]}
"""Kafka 3.x topic configs (TopicConfig / LogConfig) with their defaults and broker synonyms."""


class AdminError(Exception):
    """An admin request that fails with ``error`` (Kafka ErrorCode) and a message."""

    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error


def validate_topic_name(topic: str) -> None:
    """Kafka's Topic.validate: 1-249 chars of [a-zA-Z0-9._-], not "." or "..".
    Raises AdminError(INVALID_TOPIC_EXCEPTION)."""
    if not topic:
        raise AdminError(ErrorCode.invalid_topic_exception, "Topic name is illegal, it can't be empty")
    if topic in (".", ".."):
        raise AdminError(ErrorCode.invalid_topic_exception, "Topic name cannot be \".\" or \"..\"")
    if len(topic) > MAX_TOPIC_LENGTH:
        raise AdminError(ErrorCode.invalid_topic_exception,
                         f"Topic name is illegal, it can't be longer than {MAX_TOPIC_LENGTH} characters")
    if not _LEGAL_TOPIC.match(topic):
        raise AdminError(ErrorCode.invalid_topic_exception,
                         f"Topic name \"{topic}\" is illegal, it contains a character other than "
                         "ASCII alphanumerics, '.', '_' and '-'")


def validate_topic_configs(configs: Mapping[str, str | None], replication_factor: int | None = None,
                           base: LogConfig | None = None) -> dict[str, str]:
    """Check a topic's config overrides against Kafka's LogConfig ConfigDef
    (kafkalike.storage.log_config.validate_topic_configs: names, types, ranges, valid values,
    min.insync.replicas <= ``replication_factor``); returns name -> value (None values
    dropped). Raises AdminError(INVALID_CONFIG) with Kafka's message, e.g. "Invalid value 1
    for configuration segment.bytes: Value must be at least 14"."""
    problem = check_topic_configs(configs, replication_factor, base)
    if problem is not None:
        raise AdminError(ErrorCode.invalid_config, problem)
    return {name: value for name, value in configs.items() if value is not None}


EXCESSIVE = "Unable to perform excessively large batch operation"
"""The start of Kafka's POLICY_VIOLATION message for an operation over the KRaft controller's
MAX_RECORDS_PER_USER_OP (EventHandlerExceptionInfo, BoundedListTooLongException)."""


class PartitionBudget:
    """The partitions one admin request may still create: kafkalike.max.partitions.per.request
    (all topics of the request together, validate_only included, as KRaft counts the records
    of one user operation), kafkalike.max.partitions (cluster) and
    kafkalike.max.replicas.per.broker. The cluster's current counts come from this broker's
    metadata cache (partitions written to ZooKeeper but not yet announced by the controller
    are not counted). ``check`` runs before anything is allocated; ``check_replicas`` once
    the assignment (at most per-request partitions) exists; ``commit`` after the write.
    Raises AdminError(POLICY_VIOLATION)."""

    def __init__(self, manager: "ZkAdminManager") -> None:
        cfg = manager.config
        self.manager = manager
        self.per_request = int(cfg["kafkalike.max.partitions.per.request"])
        self.max_partitions = int(cfg["kafkalike.max.partitions"])
        self.max_per_broker = int(cfg["kafkalike.max.replicas.per.broker"])
        self.requested = 0
        self.added = 0
        self.added_per_broker: Counter[int] = Counter()

    def check(self, partitions: int) -> None:
        """Refuse ``partitions`` more (a count from the wire, any int) before allocating."""
        total = self.requested + partitions
        if total > self.per_request:
            raise AdminError(ErrorCode.policy_violation,
                             f"{EXCESSIVE}: the request would create {total} partitions, more than "
                             f"kafkalike.max.partitions.per.request={self.per_request}.")
        cluster = len(self.manager.metadata_cache.partitions) + self.added + partitions
        if cluster > self.max_partitions:
            raise AdminError(ErrorCode.policy_violation,
                             f"Creating {partitions} partitions would make {cluster} partitions in the "
                             f"cluster, more than kafkalike.max.partitions={self.max_partitions}.")

    def check_replicas(self, assignment: Mapping[int, list[int]]) -> None:
        """Refuse an assignment that puts more than kafkalike.max.replicas.per.broker replicas
        on a broker; then count its partitions against this request."""
        adding = Counter(b for replicas in assignment.values() for b in replicas)
        hosted = self.manager.replicas_per_broker()
        for broker, n in sorted(adding.items()):
            total = hosted.get(broker, 0) + self.added_per_broker[broker] + n
            if total > self.max_per_broker:
                raise AdminError(ErrorCode.policy_violation,
                                 f"The new partitions would put {total} replicas on broker {broker}, more "
                                 f"than kafkalike.max.replicas.per.broker={self.max_per_broker}.")
        self.requested += len(assignment)

    def commit(self, assignment: Mapping[int, list[int]]) -> None:
        """Count written partitions against the cluster and broker limits of this request."""
        self.added += len(assignment)
        self.added_per_broker.update(b for replicas in assignment.values() for b in replicas)


def _legal_name(topic: Any) -> bool:
    """True for a name Kafka's Topic.validate accepts (anything else cannot exist)."""
    try:
        validate_topic_name(topic)
    except (AdminError, TypeError):
        return False
    return True


def _throttle(quota: ControllerMutationQuota | None) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=quota.throttle_time_ms if quota is not None else 0)


def _record(quota: ControllerMutationQuota | None, partitions: int) -> None:
    """Record ``partitions`` mutations; AdminError(THROTTLING_QUOTA_EXCEEDED) when refused."""
    if quota is None:
        return
    try:
        quota.record(partitions)
    except ThrottlingQuotaExceeded as exc:
        raise AdminError(ErrorCode.throttling_quota_exceeded, str(exc)) from None


class DelayedMetadataWait(DelayedOperation):
    """Waits until ``condition()`` holds in the metadata cache (Kafka's
    DelayedCreatePartitions / DelayedDeleteTopics); ``timed_out`` tells the caller."""

    def __init__(self, delay_ms: int, condition: Callable[[], bool]) -> None:
        super().__init__(delay_ms)
        self.condition = condition
        self.timed_out = False

    def try_complete(self) -> bool:
        return self.force_complete() if self.condition() else False

    def on_complete(self) -> None:
        pass

    def on_expiration(self) -> None:
        self.timed_out = True


def _ms(value: Any) -> int:
    import datetime
    if isinstance(value, datetime.timedelta):
        return value // datetime.timedelta(milliseconds=1)
    return int(value)


class ZkAdminManager:
    """Admin requests of one broker, written to ZooKeeper (Kafka's ZkAdminManager). Built by
    KafkaServer.startup from what it uses: ``config`` (the broker's KafkaConfig: defaults,
    limits, quota windows), ``broker_id``, ``zk`` (the broker's ZooKeeperClient: the
    /config/changes watch), ``kafka_zk`` (its KafkaZkClient: topics, configs, deletions),
    ``metadata_cache`` (what the controller announced: admin answers wait on it),
    ``nursery`` (the config change listener's task) and ``on_topic_config_change``
    (topic, config) -> None, called when /config/changes announces a topic's new config
    (the replica manager's update_topic_config). ``on_metadata_update`` is to be called after
    each UpdateMetadata (it completes the requests waiting for the metadata cache);
    ``startup()`` starts the config change listener. ``dynamic_config`` (DynamicBrokerConfig)
    serves BROKER resources; without it they are refused (INVALID_REQUEST)."""

    def __init__(self, config: KafkaConfig, broker_id: int, zk: ZooKeeperClient, kafka_zk: KafkaZkClient,
                 metadata_cache: MetadataCache, nursery: trio.Nursery,
                 on_topic_config_change: Callable[[str, dict[str, str]], None],
                 dynamic_config: DynamicBrokerConfig | None = None) -> None:
        self.config = config
        self.dynamic_config = dynamic_config
        self.broker_id = broker_id
        self.zk = zk
        self.kafka_zk = kafka_zk
        self.metadata_cache = metadata_cache
        self.nursery = nursery
        self.on_topic_config_change = on_topic_config_change
        self.purgatory = DelayedOperationPurgatory("TopicAdmin")
        self.last_config_change = ""
        self.quotas = ControllerMutationQuotaManager(
            self._client_config, window_num=int(config["controller.quota.window.num"]),
            window_size_s=float(config["controller.quota.window.size.seconds"]))
        self._replica_counts: tuple[int, Counter[int]] | None = None

    # ------------------------------------------------------------------ plumbing
    async def on_metadata_update(self, deleted: list[zd.TopicPartition]) -> None:
        """After an UpdateMetadata: complete the admin requests waiting for the cache."""
        self.purgatory.check_and_complete("metadata")

    async def _wait_metadata(self, timeout_ms: int, condition: Callable[[], bool]) -> bool:
        """True when ``condition`` held before ``timeout_ms``."""
        op = DelayedMetadataWait(timeout_ms, condition)
        await self.purgatory.try_complete_else_watch(op, ["metadata"])
        return not op.timed_out

    def _has_leaders(self, topic: str, partitions: list[int]) -> bool:
        cache = self.metadata_cache
        for p in partitions:
            info = cache.partition(zd.TopicPartition(topic, p))
            if info is None or info.leader < 0:
                return False
        return True

    async def _live_brokers(self) -> list[int]:
        return await self.kafka_zk.get_broker_ids()

    def replicas_per_broker(self) -> Counter[int]:
        """broker id -> replicas it hosts, from the metadata cache (recounted only after the
        cache changed)."""
        cache = self.metadata_cache
        if self._replica_counts is None or self._replica_counts[0] != cache.updates:
            # one C-level count over every replica list: ~55 ms at 200,000 partitions
            counts = Counter(chain.from_iterable(info.replicas for info in cache.partitions.values()))
            self._replica_counts = (cache.updates, counts)
        return self._replica_counts[1]

    async def _client_config(self, name: str) -> Mapping[str, str]:
        return await self.kafka_zk.get_entity_config(zd.CONFIG_TYPE_CLIENT, name)

    async def mutation_quota(self, header: Any, api: str) -> ControllerMutationQuota:
        """The controller mutation quota of this request's client id: strict from
        STRICT_SINCE[api] (CreateTopics v6, CreatePartitions v3, DeleteTopics v5), else
        permissive (Kafka's ControllerMutationQuotaManager.newQuotaFor)."""
        return await self.quotas.quota_for(header.client_id, header.api_version >= STRICT_SINCE[api])

    # ------------------------------------------------------------------ topic creation
    async def create_topic(self, topic: str, num_partitions: int, replication_factor: int,
                           configs: Mapping[str, str | None] | None = None,
                           assignments: Mapping[int, list[int]] | None = None,
                           validate_only: bool = False, *, budget: PartitionBudget | None = None,
                           quota: ControllerMutationQuota | None = None,
                           ) -> tuple[dict[int, list[int]], dict[str, str], str]:
        """Check and (unless validate_only) write one topic; returns (assignment, configs,
        topic id). -1 partitions / replication factor take the broker defaults. The partition
        count is checked against ``budget`` (the request's PartitionBudget; a fresh one if
        None) before any assignment is built, and recorded in ``quota`` (the controller
        mutation quota) before the write. Raises AdminError (TOPIC_ALREADY_EXISTS,
        INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR,
        INVALID_REPLICA_ASSIGNMENT, INVALID_CONFIG, INVALID_REQUEST, POLICY_VIOLATION,
        THROTTLING_QUOTA_EXCEEDED)."""
        budget = budget if budget is not None else PartitionBudget(self)
        validate_topic_name(topic)
        cfg = self.config
        nulls = [name for name, value in (configs or {}).items() if value is None]
        if nulls:  # Kafka's ZkAdminManager.createTopics
            raise AdminError(ErrorCode.invalid_config, "Null value not supported for topic configs: " + ",".join(nulls))
        rf_hint = replication_factor if replication_factor != -1 else (
            len(next(iter(assignments.values()))) if assignments else int(cfg["default.replication.factor"]))
        checked = validate_topic_configs(configs or {}, rf_hint, broker_log_config(cfg))
        if await self.kafka_zk.get_topic_assignment(topic) is not None:
            raise AdminError(ErrorCode.topic_already_exists, f"Topic '{topic}' already exists.")
        brokers = await self._live_brokers()
        if assignments:
            if num_partitions != -1 or replication_factor != -1:
                raise AdminError(ErrorCode.invalid_request,
                                 "Both numPartitions or replicationFactor and replicasAssignments were set. "
                                 "Both cannot be used at the same time.")
            budget.check(len(assignments))
            assignment = self._check_assignment(dict(assignments), brokers, first_partition=0,
                                                check_brokers=False)
        else:
            n = int(cfg["num.partitions"]) if num_partitions == -1 else num_partitions
            rf = int(cfg["default.replication.factor"]) if replication_factor == -1 else replication_factor
            if n <= 0:
                raise AdminError(ErrorCode.invalid_partitions, "Number of partitions must be larger than 0.")
            if rf <= 0:
                raise AdminError(ErrorCode.invalid_replication_factor, "Replication factor must be larger than 0.")
            budget.check(n)
            try:
                assignment = assign_replicas_to_brokers(n, rf, brokers)
            except AssignmentError as exc:
                raise AdminError(error_code_by_name(exc.error), str(exc)) from None
        budget.check_replicas(assignment)
        topic_id = zd.generate_uuid_base64()
        if not validate_only:
            _record(quota, len(assignment))
            if checked:
                path = zd.config_entity_path(zd.CONFIG_TYPE_TOPIC, topic)
                data = zd.ConfigEntity(checked).to_json()
                try:
                    await self.zk.create(path, data, make_parents=True)
                except NodeExists:
                    await self.zk.set(path, data)
            try:
                await self.kafka_zk.create_topic_assignment(zd.TopicAssignment(
                    topic, {p: zd.ReplicaAssignment(tuple(r)) for p, r in assignment.items()}, topic_id))
            except TopicExists:
                raise AdminError(ErrorCode.topic_already_exists, f"Topic '{topic}' already exists.") from None
            budget.commit(assignment)
            log.info("topic_created", topic=topic, partitions=len(assignment),
                     replication_factor=len(next(iter(assignment.values()))), configs=checked)
        return assignment, checked, topic_id

    def _check_assignment(self, assignments: dict[int, list[int]], brokers: list[int],
                          first_partition: int, check_brokers: bool = True) -> dict[int, list[int]]:
        """Kafka's validateReplicaAssignment: consecutive ids from ``first_partition``, same
        non-zero size, distinct brokers, and (CreatePartitions only: Kafka's CreateTopics
        follows TopicCommand and does not check) live brokers.
        Raises AdminError(INVALID_REPLICA_ASSIGNMENT)."""
        ids = sorted(assignments)
        if ids != list(range(first_partition, first_partition + len(ids))):
            raise AdminError(ErrorCode.invalid_replica_assignment,
                             f"Partitions should be a consecutive 0-based integer sequence, given {ids}")
        sizes = {len(r) for r in assignments.values()}
        if len(sizes) != 1 or 0 in sizes:
            raise AdminError(ErrorCode.invalid_replica_assignment,
                             "All partitions should have the same number of replicas, and at least one")
        for p, replicas in assignments.items():
            if len(set(replicas)) != len(replicas):
                raise AdminError(ErrorCode.invalid_replica_assignment,
                                 f"Duplicate brokers not allowed in replica assignment: {replicas} for partition {p}")
            unknown = [b for b in replicas if b not in brokers]
            if unknown and check_brokers:
                raise AdminError(ErrorCode.invalid_replica_assignment,
                                 f"Unknown broker(s) in replica assignment: {unknown}")
        return {p: list(r) for p, r in assignments.items()}

    async def auto_create_topic(self, topic: str) -> ErrorCode:
        """Metadata / Produce auto-creation (auto.create.topics.enable) with num.partitions and
        default.replication.factor: ``auto_create_through(self.create_topic, topic)``."""
        return await auto_create_through(self.create_topic, topic)

    async def create_topics(self, header: Any, request: Any) -> Any:
        """CreateTopics v2-v7 (see module doc); the response of the request's version, with
        the controller mutation quota's throttle_time_ms. More topics than
        kafkalike.max.partitions.per.request: every topic POLICY_VIOLATION, nothing read."""
        resp_cls = response_class_for(request)
        result_cls = entity(resp_cls, "CreatableTopicResult")
        config_cls = entity(resp_cls, "CreatableTopicConfigs") if header.api_version >= 5 else None
        timeout_ms = _ms(request.timeout)
        counts = Counter(t.name for t in request.topics)
        budget = PartitionBudget(self)
        quota = await self.mutation_quota(header, "CreateTopics")
        results: dict[str, Any] = {}
        created: dict[str, list[int]] = {}
        for t in request.topics:
            if counts[t.name] > 1:
                results[t.name] = (ErrorCode.invalid_request, "Create topics request contains multiple entries "
                                   f"for the topic {t.name}", None)
                continue
            try:
                if len(counts) > budget.per_request:
                    raise AdminError(ErrorCode.policy_violation,
                                     f"{EXCESSIVE}: {len(counts)} topics in one request, more than "
                                     f"kafkalike.max.partitions.per.request={budget.per_request}.")
                assignment, configs, topic_id = await self.create_topic(
                    t.name, t.num_partitions, t.replication_factor,
                    {c.name: c.value for c in t.configs},
                    {a.partition_index: list(a.broker_ids) for a in t.assignments},
                    request.validate_only, budget=budget, quota=quota)
            except AdminError as exc:
                results[t.name] = (exc.error, str(exc), None)
                continue
            if not request.validate_only:
                created[t.name] = sorted(assignment)
            results[t.name] = (ErrorCode.none, None, (assignment, configs, topic_id))
        if created and timeout_ms <= 0:  # Kafka: written, but not waited for
            for n in created:
                results[n] = (ErrorCode.request_timed_out, None, results[n][2])
        elif created:
            ok = await self._wait_metadata(timeout_ms, lambda: all(
                self._has_leaders(n, ps) for n, ps in created.items()))
            if not ok:
                for n, ps in created.items():
                    if not self._has_leaders(n, ps):
                        results[n] = (ErrorCode.request_timed_out,
                                      "Timed out waiting for the topic's partitions to get leaders", results[n][2])
        out = []
        for t in request.topics:
            error, message, detail = results[t.name]
            fields: dict[str, Any] = {"name": t.name, "error_code": error, "error_message": message,
                                      "topic_id": None, "topic_config_error_code": 0,
                                      "num_partitions": -1, "replication_factor": -1, "configs": None}
            if detail is not None and error in (ErrorCode.none, ErrorCode.request_timed_out):
                assignment, configs, topic_id = detail
                fields["num_partitions"] = len(assignment)
                fields["replication_factor"] = len(next(iter(assignment.values())))
                fields["topic_id"] = zd.base64_to_uuid(topic_id)
                if config_cls is not None:
                    fields["configs"] = tuple(
                        build(config_cls, name=e.name, value=e.value, read_only=e.read_only,
                              config_source=e.source, is_sensitive=False)
                        for e in self.topic_config_entries(configs))
            elif header.api_version >= 7:
                fields["topic_id"] = uuid.UUID(int=0)
            out.append(build(result_cls, **fields))
        return build(resp_cls, topics=tuple(out), throttle_time=_throttle(quota))

    # ------------------------------------------------------------------ deletion
    async def delete_topics(self, header: Any, request: Any) -> Any:
        """DeleteTopics v1-v5: mark each topic under /admin/delete_topics, then wait until the
        metadata cache no longer has them (or the timeout: REQUEST_TIMED_OUT). Each topic's
        partitions are recorded in the controller mutation quota (THROTTLING_QUOTA_EXCEEDED);
        more topics than kafkalike.max.partitions.per.request: every topic POLICY_VIOLATION
        (KRaft's deleteTopics bounds its records the same way)."""
        resp_cls = response_class_for(request)
        result_cls = entity(resp_cls, "DeletableTopicResult")
        timeout_ms = _ms(request.timeout)
        errors: dict[str, tuple[ErrorCode, str | None]] = {}
        pending: list[str] = []
        quota = await self.mutation_quota(header, "DeleteTopics")
        names = list(dict.fromkeys(request.topic_names or ()))
        limit = int(self.config["kafkalike.max.partitions.per.request"])
        if len(names) > limit:
            message = f"{EXCESSIVE}: {len(names)} topics in one request, more than " \
                      f"kafkalike.max.partitions.per.request={limit}."
            errors = {name: (ErrorCode.policy_violation, message) for name in names}
            names = []
        if not self.config["delete.topic.enable"]:
            for name in names:
                errors[name] = (ErrorCode.topic_deletion_disabled, "Topic deletion is disabled.")
            names = []
        # the topics' assignments read, and the accepted ones marked, in one pipelined batch
        # each (one ZooKeeper round trip per topic before: ~70 topics/s)
        legal = [n for n in names if _legal_name(n)]
        assignments = dict(zip(legal, await self.kafka_zk.get_topic_assignments_many(legal)))
        for name in names:
            found = assignments.get(name)
            if found is None:
                errors[name] = (ErrorCode.unknown_topic_or_partition,
                                "This server does not host this topic-partition.")
                continue
            try:
                _record(quota, len(found[0].partitions))
            except AdminError as exc:
                errors[name] = (exc.error, str(exc))
                continue
            errors[name] = (ErrorCode.none, None)
            pending.append(name)
        if pending:
            await self.kafka_zk.create_delete_topic_paths(pending)
            log.info("topic_deletion_requested", topics=len(pending), first=pending[0])
        cache = self.metadata_cache
        if pending and timeout_ms > 0:
            await self._wait_metadata(timeout_ms, lambda: not any(cache.contains_topic(n) for n in pending))
        for name in pending:
            if timeout_ms <= 0:  # Kafka: marked, but not waited for
                errors[name] = (ErrorCode.request_timed_out, None)
            elif cache.contains_topic(name):
                errors[name] = (ErrorCode.request_timed_out, "Timed out waiting for the topic's deletion")
        return build(resp_cls, throttle_time=_throttle(quota), responses=tuple(
            build(result_cls, name=n, error_code=e, error_message=m, topic_id=None)
            for n, (e, m) in errors.items()))

    # ------------------------------------------------------------------ partitions
    async def create_partitions(self, header: Any, request: Any) -> Any:
        """CreatePartitions v0-v3 (Kafka's AdminZkClient.addPartitions), with the partition
        limits (POLICY_VIOLATION) and the controller mutation quota (THROTTLING_QUOTA_EXCEEDED,
        throttle_time_ms)."""
        resp_cls = response_class_for(request)
        result_cls = entity(resp_cls, "CreatePartitionsTopicResult")
        timeout_ms = _ms(request.timeout)
        counts = Counter(t.name for t in request.topics)
        budget = PartitionBudget(self)
        quota = await self.mutation_quota(header, "CreatePartitions")
        results: dict[str, tuple[ErrorCode, str | None]] = {}
        created: dict[str, list[int]] = {}
        for t in request.topics:
            if counts[t.name] > 1:
                results[t.name] = (ErrorCode.invalid_request, "Duplicate topic in request.")
                continue
            try:
                if len(counts) > budget.per_request:
                    raise AdminError(ErrorCode.policy_violation,
                                     f"{EXCESSIVE}: {len(counts)} topics in one request, more than "
                                     f"kafkalike.max.partitions.per.request={budget.per_request}.")
                new = await self._add_partitions(t.name, t.count,
                                                 [list(a.broker_ids) for a in t.assignments]
                                                 if t.assignments is not None else None,
                                                 request.validate_only, budget, quota)
            except AdminError as exc:
                results[t.name] = (exc.error, str(exc))
                continue
            results[t.name] = (ErrorCode.none, None)
            if not request.validate_only:
                created[t.name] = new
        if created and timeout_ms <= 0:  # Kafka: written, but not waited for
            for n in created:
                results[n] = (ErrorCode.request_timed_out, None)
        elif created:
            ok = await self._wait_metadata(timeout_ms, lambda: all(
                self._has_leaders(n, ps) for n, ps in created.items()))
            if not ok:
                for n, ps in created.items():
                    if not self._has_leaders(n, ps):
                        results[n] = (ErrorCode.request_timed_out, "Timed out waiting for the new partitions")
        return build(resp_cls, throttle_time=_throttle(quota), results=tuple(
            build(result_cls, name=n, error_code=e, error_message=m) for n, (e, m) in results.items()))

    async def _add_partitions(self, topic: str, count: int, assignments: list[list[int]] | None,
                              validate_only: bool, budget: PartitionBudget,
                              quota: ControllerMutationQuota | None) -> list[int]:
        """Grow ``topic`` to ``count`` partitions (Kafka's ZkAdminManager.createPartitions);
        ``count - existing`` is checked against ``budget`` before any assignment is built."""
        found = await self.kafka_zk.get_topic_assignment(topic) if _legal_name(topic) else None
        if found is None:
            raise AdminError(ErrorCode.unknown_topic_or_partition, f"The topic '{topic}' does not exist.")
        current, version = found
        if any(a.adding_replicas or a.removing_replicas for a in current.partitions.values()):
            raise AdminError(ErrorCode.reassignment_in_progress,
                             f"A partition reassignment is in progress for the topic '{topic}'.")
        existing = len(current.partitions)
        if count < existing:
            raise AdminError(ErrorCode.invalid_partitions,
                             f"Topic currently has {existing} partitions, which is higher than the requested {count}.")
        if count == existing:
            raise AdminError(ErrorCode.invalid_partitions, f"Topic already has {existing} partitions.")
        budget.check(count - existing)
        brokers = await self._live_brokers()
        rf = len(current.partitions[min(current.partitions)].replicas)
        if assignments is not None:
            if len(assignments) != count - existing:
                raise AdminError(ErrorCode.invalid_replica_assignment,
                                 f"Increasing the number of partitions by {count - existing} but "
                                 f"{len(assignments)} assignments provided.")
            new = self._check_assignment({existing + i: a for i, a in enumerate(assignments)}, brokers, existing)
            if any(len(r) != rf for r in new.values()):
                raise AdminError(ErrorCode.invalid_replica_assignment,
                                 f"Inconsistent replication factor between partitions, expected {rf}")
        else:
            try:
                new = assign_replicas_to_brokers(count - existing, rf, brokers, start_partition_id=existing)
            except AssignmentError as exc:
                raise AdminError(error_code_by_name(exc.error), str(exc)) from None
        budget.check_replicas(new)
        if validate_only:
            return sorted(new)
        _record(quota, count - existing)
        partitions = dict(current.partitions)
        partitions.update({p: zd.ReplicaAssignment(tuple(r)) for p, r in new.items()})
        updated = zd.TopicAssignment(topic, partitions, current.topic_id, current.version)
        try:
            await self.zk.set(updated.path, updated.to_json(), version)
        except BadVersion:
            raise AdminError(ErrorCode.reassignment_in_progress,
                             f"Topic '{topic}' changed while adding partitions; retry") from None
        budget.commit(new)
        log.info("partitions_added", topic=topic, count=count, new=sorted(new))
        return sorted(new)

    # ------------------------------------------------------------------ configs
    #: one described config (name, value, source, read-only, type, doc, synonyms): the broker
    #: entries' record, shared with DynamicBrokerConfig
    Entry = DescribedConfig

    def _broker_value(self, key: str) -> str | None:
        value = self.config[key]
        if value is None:
            return None
        if isinstance(value, list):
            return ",".join(value)
        if isinstance(value, bool):
            return str(value).lower()
        return str(value)

    def topic_config_entries(self, overrides: Mapping[str, str]) -> list["ZkAdminManager.Entry"]:
        """Every topic config with its effective value; source and synonyms as Kafka's
        ConfigHelper.createTopicConfigEntry: the topic override (DYNAMIC_TOPIC_CONFIG), then the
        broker synonyms (dynamic per-broker, dynamic default, server.properties, default)
        starting at the primary one; the source is the first synonym's (DEFAULT_CONFIG if none)."""
        cfg = self.config
        effective = broker_log_config(cfg).to_properties()
        out = []
        for name, d in sorted(TOPIC_CONFIGS.items()):
            synonyms: list[tuple[str, str | None, int]] = []
            if name in overrides:
                synonyms.append((name, overrides[name], SOURCE_DYNAMIC_TOPIC))
            dynamic = [s for syn in d.synonyms for s in self.dynamic_config.topic_synonyms(syn)] \
                if self.dynamic_config is not None else []
            synonyms += sorted(dynamic, key=lambda s: s[2])  # per-broker, then cluster default
            for syn in d.synonyms:
                if syn in cfg.originals:
                    synonyms.append((syn, self._broker_value(syn), SOURCE_STATIC_BROKER))
            default_syn = next((s for s in d.synonyms if s in CONFIG_KEYS and CONFIG_KEYS[s].default is not None),
                               None)
            if default_syn is not None and default_syn not in cfg.originals:
                synonyms.append((default_syn, str(CONFIG_KEYS[default_syn].default).lower()
                                 if isinstance(CONFIG_KEYS[default_syn].default, bool)
                                 else ",".join(CONFIG_KEYS[default_syn].default)
                                 if isinstance(CONFIG_KEYS[default_syn].default, list)
                                 else str(CONFIG_KEYS[default_syn].default), SOURCE_DEFAULT))
            # Kafka's ConfigHelper.configSynonyms keeps the broker synonyms from the topic config's
            # primary one (ServerTopicConfigSynonyms.TOPIC_CONFIG_SYNONYMS: log.retention.ms for
            # retention.ms) on: a log.retention.hours alone (default or set) is not listed, and the
            # entry's source is then DEFAULT_CONFIG (seen on a Kafka 3.9 broker, librdkafka v1)
            topic_syn = synonyms[:1] if name in overrides else []
            broker_syn = synonyms[len(topic_syn):]
            primary_at = next((i for i, s in enumerate(broker_syn) if s[0] == d.synonyms[0]), len(broker_syn))
            synonyms = topic_syn + broker_syn[primary_at:]
            if name in overrides:
                value = overrides[name]
            elif name in effective:
                value = effective[name]
            elif d.synonyms[0] in CONFIG_KEYS:
                value = self._broker_value(d.synonyms[0]) or d.default
            else:
                value = d.default
            source = synonyms[0][2] if synonyms else SOURCE_DEFAULT
            out.append(self.Entry(name, value, source, False, d.type, d.doc, tuple(synonyms)))
        return out

    def broker_config_entries(self) -> list["ZkAdminManager.Entry"]:
        """Every broker key: STATIC_BROKER_CONFIG when set in server.properties, else
        DEFAULT_CONFIG; read-only (kafkalike has no dynamic broker configs)."""
        cfg = self.config
        out = []
        for name, key in sorted(CONFIG_KEYS.items()):
            source = SOURCE_STATIC_BROKER if name in cfg.originals else SOURCE_DEFAULT
            value = None if key.type == "password" else self._broker_value(name)
            out.append(self.Entry(name, value, source, True, key.type, key.doc, ((name, value, source),)))
        return out

    async def _topic_exists(self, topic: str) -> bool:
        if self.metadata_cache.contains_topic(topic):
            return True
        return await self.kafka_zk.get_topic_assignment(topic) is not None

    async def describe_configs(self, header: Any, request: Any) -> Any:
        """DescribeConfigs v1-v4 for topic (2) and broker (4) resources."""
        resp_cls = response_class_for(request)
        result_cls = entity(resp_cls, "DescribeConfigsResult")
        entry_cls = entity(resp_cls, "DescribeConfigsResourceResult")
        syn_cls = entity(resp_cls, "DescribeConfigsSynonym")
        include_synonyms = getattr(request, "include_synonyms", False)
        include_doc = getattr(request, "include_documentation", False)
        results = []
        for res in request.resources:
            error, message, entries = ErrorCode.none, None, []
            try:
                if res.resource_type == RESOURCE_TOPIC:
                    validate_topic_name(res.resource_name)
                    if not await self._topic_exists(res.resource_name):
                        raise AdminError(ErrorCode.unknown_topic_or_partition,
                                         f"Topic {res.resource_name} does not exist")
                    overrides = await self.kafka_zk.get_entity_config(zd.CONFIG_TYPE_TOPIC, res.resource_name)
                    entries = self.topic_config_entries(overrides)
                elif res.resource_type == RESOURCE_BROKER and self.dynamic_config is not None:
                    entries = self.dynamic_config.describe(res.resource_name)
                elif res.resource_type == RESOURCE_BROKER:
                    if res.resource_name not in ("", str(self.broker_id)):
                        raise AdminError(ErrorCode.invalid_request,
                                         f"Unexpected broker id, expected {self.broker_id} or empty "
                                         f"string, but received {res.resource_name}")
                    # "" names the cluster-wide dynamic defaults, which kafkalike does not have
                    entries = self.broker_config_entries() if res.resource_name else []
                else:
                    raise AdminError(ErrorCode.invalid_request,
                                     f"Unsupported resource type {res.resource_type}")
            except (AdminError, DynamicConfigError) as exc:
                error, message = exc.error, str(exc)
            keys = res.configuration_keys
            if keys:
                entries = [e for e in entries if e.name in keys]
            results.append(build(
                result_cls, error_code=error, error_message=message, resource_type=res.resource_type,
                resource_name=res.resource_name,
                configs=tuple(build(
                    entry_cls, name=e.name, value=e.value, read_only=e.read_only,
                    config_source=e.source, is_default=e.source == SOURCE_DEFAULT, is_sensitive=e.type == "password",
                    synonyms=tuple(build(syn_cls, name=n, value=v, source=s) for n, v, s in e.synonyms)
                    if include_synonyms else (),
                    config_type=TYPE_IDS.get(e.type, 0),
                    documentation=e.doc if include_doc else None) for e in entries)))
        return build(resp_cls, results=tuple(results))

    async def alter_configs(self, header: Any, request: Any, *, incremental: bool) -> Any:
        """AlterConfigs v0-v2 (replace the topic's whole override set) or
        IncrementalAlterConfigs v0-v1 (SET/DELETE/APPEND/SUBTRACT per key)."""
        resp_cls = response_class_for(request)
        result_cls = entity(resp_cls, "AlterConfigsResourceResponse")
        out = []
        for res in request.resources:
            error, message = ErrorCode.none, None
            try:
                if res.resource_type == RESOURCE_BROKER and self.dynamic_config is not None:
                    await self._alter_broker_configs(res, incremental, request.validate_only)
                elif res.resource_type == RESOURCE_BROKER:
                    raise AdminError(ErrorCode.invalid_request,
                                     "kafkalike has no dynamic broker configs; set them in server.properties")
                elif res.resource_type != RESOURCE_TOPIC:
                    raise AdminError(ErrorCode.invalid_request, f"Unsupported resource type {res.resource_type}")
                else:
                    await self._alter_topic_configs(res, incremental, request.validate_only)
            except (AdminError, DynamicConfigError) as exc:
                error, message = exc.error, str(exc)
            out.append(build(result_cls, error_code=error, error_message=message,
                             resource_type=res.resource_type, resource_name=res.resource_name))
        return build(resp_cls, responses=tuple(out))

    async def _alter_topic_configs(self, res: Any, incremental: bool, validate_only: bool) -> None:
        topic = res.resource_name
        validate_topic_name(topic)
        if not await self._topic_exists(topic):
            raise AdminError(ErrorCode.unknown_topic_or_partition, f"Topic {topic} does not exist")
        current = await self.kafka_zk.get_entity_config(zd.CONFIG_TYPE_TOPIC, topic)
        if incremental:
            new = self._apply_incremental(current, res.configs)
        else:
            new = {c.name: c.value for c in res.configs if c.value is not None}
            for c in res.configs:
                if c.name not in TOPIC_CONFIGS:
                    raise AdminError(ErrorCode.invalid_config, f"Unknown topic config name: {c.name}")
        found = await self.kafka_zk.get_topic_assignment(topic)
        rf = min((len(r.replicas) for r in found[0].partitions.values()), default=None) \
            if found is not None else None
        checked = validate_topic_configs(new, rf, broker_log_config(self.config))
        if not validate_only:
            await self.kafka_zk.set_entity_config(zd.CONFIG_TYPE_TOPIC, topic, checked)
            log.info("topic_config_changed", topic=topic, config=checked)

    async def _alter_broker_configs(self, res: Any, incremental: bool, validate_only: bool) -> None:
        """A BROKER resource (KIP-226, Kafka's ZkAdminManager.alterBrokerConfigs): AlterConfigs
        replaces its whole dynamic set, IncrementalAlterConfigs edits the stored one."""
        assert self.dynamic_config is not None
        if incremental:
            stored = await self.dynamic_config.stored(res.resource_name)
            new = self._apply_incremental(stored, res.configs, known=None)
        else:
            self.dynamic_config.entity_of(res.resource_name)
            new = {c.name: c.value for c in res.configs if c.value is not None}
        await self.dynamic_config.alter(res.resource_name, new, validate_only)

    def _apply_incremental(self, current: Mapping[str, str], ops: Any,
                           known: Mapping[str, TopicConfigDef] | None = TOPIC_CONFIGS) -> dict[str, str]:
        """Apply SET / DELETE / APPEND / SUBTRACT to ``current``; ``known`` the topic
        configs (unknown names are INVALID_CONFIG), None for a broker (any name; lists by the
        broker key's type)."""
        new = dict(current)
        names = [c.name for c in ops]
        if len(set(names)) != len(names):
            raise AdminError(ErrorCode.invalid_request, "Duplicate config keys in the request")
        for c in ops:
            if known is None:
                key = CONFIG_KEYS.get(c.name)
                d = TopicConfigDef(c.name, key.type if key else "string",
                                   ",".join(key.default) if key and isinstance(key.default, list) else "", (), "")
            else:
                found = known.get(c.name)
                if found is None:
                    raise AdminError(ErrorCode.invalid_config, f"Unknown topic config name: {c.name}")
                d = found
            if c.config_operation == OP_SET:
                if c.value is None:
                    raise AdminError(ErrorCode.invalid_request, f"Null value not supported for {c.name}")
                new[c.name] = c.value
            elif c.config_operation == OP_DELETE:
                new.pop(c.name, None)
            elif c.config_operation in (OP_APPEND, OP_SUBTRACT):
                if d.type != "list":
                    raise AdminError(ErrorCode.invalid_config,
                                     f"Config value append/subtract is not allowed for config key: {c.name}")
                base = new.get(c.name)
                items = [x for x in (base if base is not None else d.default).split(",") if x]
                values = [x for x in (c.value or "").split(",") if x]
                if c.config_operation == OP_APPEND:
                    items += [v for v in values if v not in items]
                else:
                    items = [x for x in items if x not in values]
                new[c.name] = ",".join(items)
            else:
                raise AdminError(ErrorCode.invalid_request, f"Unknown config operation {c.config_operation}")
        return new

    # ------------------------------------------------------------------ config change listener
    async def startup(self) -> None:
        """Start watching /config/changes (Kafka's ZkConfigChangeListener)."""
        self.nursery.start_soon(self._config_change_listener)

    async def _config_change_listener(self) -> None:
        """Watch /config/changes; apply new topic config notifications to the local logs
        (Kafka's ZkConfigChangeListener / TopicConfigHandler)."""
        started = False
        while True:
            try:
                if not started:  # notifications older than start-up are already in ZooKeeper's configs
                    try:
                        existing = await self.zk.get_children(zd.CONFIG_CHANGES_PATH)
                    except NoNode:
                        existing = []
                    self.last_config_change = existing[-1] if existing else ""
                    started = True
                await self.zk.ensure_path(zd.CONFIG_CHANGES_PATH)
                children, watch = await self.zk.get_children_and_watch(zd.CONFIG_CHANGES_PATH)
                for name in children:
                    if name <= self.last_config_change:
                        continue
                    self.last_config_change = name
                    await self._process_config_change(f"{zd.CONFIG_CHANGES_PATH}/{name}")
                await watch.wait()
            except trio.Cancelled:
                raise
            except Exception as exc:
                log.warning("config_change_listener_failed", error=str(exc))
                await trio.sleep(1)

    async def _process_config_change(self, path: str) -> None:
        try:
            data, _ = await self.zk.get(path)
            note = zd.ConfigChangeNotification.from_json(data)
        except Exception as exc:
            log.warning("config_change_unreadable", path=path, error=str(exc))
            return
        kind, _, name = note.entity_path.partition("/")
        if kind in (zd.CONFIG_TYPE_CLIENT, zd.CONFIG_TYPE_USER):
            self.quotas.invalidate()  # the next admin request re-reads its client's quota
            log.info("client_quota_changed", entity=note.entity_path)
            return
        if kind == zd.CONFIG_TYPE_BROKER and self.dynamic_config is not None:
            await self.dynamic_config.reload(name)
            return
        if kind != zd.CONFIG_TYPE_TOPIC:
            return
        config = await self.kafka_zk.get_entity_config(zd.CONFIG_TYPE_TOPIC, name)
        self.on_topic_config_change(name, config)
        log.info("topic_config_applied", topic=name, config=config)


async def auto_create_through(create_topic: Callable[[str, int, int], Awaitable[object]], topic: str) -> ErrorCode:
    """Auto topic creation (auto.create.topics.enable; Kafka's AutoTopicCreationManager) through
    ``create_topic(topic, -1, -1)`` (the broker's or the controller's defaults: num.partitions,
    default.replication.factor), shared by ZkAdminManager and the KRaft ForwardingManager.

    Returns the error the Metadata / Produce answer carries meanwhile: LEADER_NOT_AVAILABLE while
    the topic comes up (also when another request created it first: TOPIC_ALREADY_EXISTS),
    UNKNOWN_TOPIC_OR_PARTITION for an internal topic (the group and transaction coordinators
    create theirs with their own settings; AutoTopicCreationManager sends __consumer_offsets to
    the group coordinator), the AdminError's code when creation is refused
    (INVALID_TOPIC_EXCEPTION, INVALID_REPLICATION_FACTOR, POLICY_VIOLATION, REQUEST_TIMED_OUT...),
    and UNKNOWN_SERVER_ERROR (logged) for any other exception: the request is answered, the
    broker keeps running."""
    if topic in INTERNAL_TOPICS:
        return ErrorCode.unknown_topic_or_partition
    try:
        await create_topic(topic, -1, -1)
    except AdminError as exc:
        if exc.error == ErrorCode.topic_already_exists:
            return ErrorCode.leader_not_available
        log.info("auto_create_refused", topic=topic, error=exc.error.name.upper(), reason=str(exc))
        return exc.error
    except Exception as exc:
        log.warning("auto_create_failed", topic=topic, error=str(exc))
        return ErrorCode.unknown_server_error
    return ErrorCode.leader_not_available
