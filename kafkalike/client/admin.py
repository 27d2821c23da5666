"""Admin operations: topics, partitions, configs, cluster description, offsets.

Holds ``AdminClient``, ``NewTopic``, ``ConfigEntry``, ``ClusterDescription`` and
``TopicDescription``. After Kafka's ``Admin`` / ``KafkaAdminClient``:

- CreateTopics, DeleteTopics and CreatePartitions go to the **controller** (Metadata's
  controller id), retried on NOT_CONTROLLER and other retriable errors after a Metadata
  refresh, as the Java admin client does in ZooKeeper mode.
- DescribeConfigs / IncrementalAlterConfigs of a topic go to any broker; of a broker, to
  that broker.
- DescribeCluster (v0-v1) and Metadata go to any broker; ListOffsets to partition leaders.
- Transactions (KIP-664): DescribeProducers to the partition's leader (or a chosen broker),
  ListTransactions to every broker (each lists the transactions it coordinates),
  DescribeTransactions to each transactional id's coordinator (FindCoordinator key_type 1).

Per-resource errors: methods return {name: ErrorCode} (NONE for success) when
``raise_errors=False``; by default they raise KafkaError for the first failed resource
(TOPIC_ALREADY_EXISTS, INVALID_REPLICATION_FACTOR, INVALID_PARTITIONS, INVALID_CONFIG,
UNKNOWN_TOPIC_OR_PARTITION, POLICY_VIOLATION, ...), with the broker's error message.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

import attrs
import structlog

from kafkalike.client.cluster import Node, TopicInfo, TopicPartition
from kafkalike.client.errors import KafkaError
from kafkalike.client.kafka_client import KafkaClient, OffsetAndTimestamp
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.entities import duration_ms
from kafkalike.protocol.errors import ErrorCode

__all__ = ["AdminClient", "NewTopic", "ConfigEntry", "ClusterDescription", "PartitionReassignment",
           "ProducerState", "TransactionListing", "TransactionDescription", "RESOURCE_TOPIC", "RESOURCE_BROKER"]

log = structlog.get_logger("kafkalike.client.admin")

RESOURCE_TOPIC = 2
"""DescribeConfigs resource type of a topic (Kafka's ConfigResource.Type.TOPIC)."""
RESOURCE_BROKER = 4
"""DescribeConfigs resource type of a broker (ConfigResource.Type.BROKER)."""

_RETRIABLE_ADMIN = {ErrorCode.not_controller, ErrorCode.request_timed_out}


@attrs.frozen
class NewTopic:
    """A topic to create: ``num_partitions`` and ``replication_factor`` (-1: broker
    defaults), or an explicit ``replica_assignment`` {partition: [broker ids]}; ``configs``
    {Kafka topic config name: value}."""

    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    replica_assignment: dict[int, list[int]] | None = None
    configs: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class ConfigEntry:
    """One config value as DescribeConfigs reports it; ``source`` is Kafka's
    ConfigSource id (1 dynamic topic, 4 static broker, 5 default, ...)."""

    name: str
    value: str | None
    read_only: bool = False
    is_default: bool = False
    is_sensitive: bool = False
    source: int = -1


@attrs.frozen
class ProducerState:
    """One active producer of a partition as DescribeProducers reports it (Kafka's
    admin.ProducerState): ``coordinator_epoch`` and ``current_txn_start_offset`` are -1 when
    absent; ``last_timestamp`` in ms since the epoch."""

    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp: int
    coordinator_epoch: int
    current_txn_start_offset: int


@attrs.frozen
class TransactionListing:
    """One transaction as ListTransactions reports it (Kafka's admin.TransactionListing);
    ``state`` is the coordinator's name for it (Ongoing, PrepareCommit, CompleteAbort, ...)."""

    transactional_id: str
    producer_id: int
    state: str


@attrs.frozen
class TransactionDescription:
    """A transactional id's state as DescribeTransactions reports it (Kafka's
    admin.TransactionDescription): its coordinator's broker id, times in ms,
    ``transaction_start_time_ms`` -1 without an open transaction, the partitions in it."""

    coordinator_id: int
    state: str
    producer_id: int
    producer_epoch: int
    transaction_timeout_ms: int
    transaction_start_time_ms: int
    topic_partitions: tuple[TopicPartition, ...]


def _epoch_ms(value: Any) -> int:
    """A kio timestamp (timezone-aware datetime) or int as ms since the epoch."""
    if isinstance(value, datetime.datetime):
        return round(value.timestamp() * 1000)
    return int(value)


@attrs.frozen
class PartitionReassignment:
    """A partition being reassigned, as ListPartitionReassignments reports it (Kafka's
    admin.PartitionReassignment): ``replicas`` (RS = target + original), ``adding_replicas``
    and ``removing_replicas`` (broker ids)."""

    replicas: tuple[int, ...]
    adding_replicas: tuple[int, ...]
    removing_replicas: tuple[int, ...]


@attrs.frozen
class ClusterDescription:
    """DescribeCluster's answer: cluster id, controller id, brokers {id: Node}."""

    cluster_id: str | None
    controller_id: int
    brokers: dict[int, Node]


class AdminClient:
    """Admin operations against a cluster (see module doc). ``client``: a started
    KafkaClient, or bootstrap servers (then owned: use ``async with``)."""

    def __init__(self, client: KafkaClient | str | Iterable[str], *,
                 client_id: str = "kafkalike-admin", request_timeout_ms: float = 30000) -> None:
        self._owns_client = not isinstance(client, KafkaClient)
        self.client = client if isinstance(client, KafkaClient) else KafkaClient(
            client, client_id=client_id, request_timeout_ms=request_timeout_ms)
        self.request_timeout_ms = request_timeout_ms

    async def __aenter__(self) -> AdminClient:
        if self._owns_client:
            await self.client.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._owns_client:
            await self.client.aclose()

    # ------------------------------------------------------------------ helpers

    async def _to_controller(self, api_key: int, what: str, build: Any,
                             results_of: Any) -> dict[str, tuple[ErrorCode, str | None]]:
        """Send ``build(version)``'s fields to the controller; retry while any per-topic
        error is NOT_CONTROLLER. Returns {name: (error code, message)}."""

        async def attempt() -> dict[str, tuple[ErrorCode, str | None]]:
            conn = await self.client.controller_connection()
            version = conn.api_version(api_key)
            response = await conn.call(api_key, api_version=version,
                                       timeout_ms=self.request_timeout_ms + 5000,
                                       **build(version))
            out = {r.name: (ErrorCode(r.error_code), getattr(r, "error_message", None))
                   for r in results_of(response)}
            for code, message in out.values():
                if code == ErrorCode.not_controller:
                    raise KafkaError(code, what, message)
            return out

        return await self.client.retry(attempt, what=what)

    @staticmethod
    def _finish(results: dict[str, tuple[ErrorCode, str | None]], what: str,
                raise_errors: bool) -> dict[str, ErrorCode]:
        if raise_errors:
            for name, (code, message) in results.items():
                if code != ErrorCode.none:
                    raise KafkaError(code, f"{what} {name}", message)
        return {name: code for name, (code, _m) in results.items()}

    # ------------------------------------------------------------------ topics

    async def create_topics(self, topics: Iterable[NewTopic | str], *, timeout_ms: int = 30000,
                            validate_only: bool = False,
                            raise_errors: bool = True) -> dict[str, ErrorCode]:
        """CreateTopics (v2-v7) on the controller. ``timeout_ms``: how long the controller
        may wait for the topics to be created (Kafka's CreateTopics timeoutMs). Returns
        {topic: ErrorCode}; raises KafkaError (see module doc)."""
        new = [NewTopic(t) if isinstance(t, str) else t for t in topics]

        def build(version: int) -> dict[str, Any]:
            entries = []
            for t in new:
                entry: dict[str, Any] = {
                    "name": t.name, "num_partitions": t.num_partitions,
                    "replication_factor": t.replication_factor,
                    "configs": [{"name": k, "value": v} for k, v in t.configs.items()],
                    "assignments": [],
                }
                if t.replica_assignment:
                    entry["num_partitions"] = -1
                    entry["replication_factor"] = -1
                    entry["assignments"] = [{"partition_index": p, "broker_ids": list(ids)}
                                            for p, ids in sorted(t.replica_assignment.items())]
                elif version < 4 and (t.num_partitions < 0 or t.replication_factor < 0):
                    raise ValueError("CreateTopics below v4 needs partitions and replication "
                                     "factor (KIP-464 defaults need v4+)")
                entries.append(entry)
            return {"topics": entries, "timeout": timeout_ms, "validate_only": validate_only}

        results = await self._to_controller(ApiKey.CREATE_TOPICS, "create_topics", build,
                                            lambda r: r.topics)
        if not validate_only and any(c == ErrorCode.none for c, _m in results.values()):
            await self._refresh_quietly([t.name for t in new])
        return self._finish(results, "create topic", raise_errors)

    async def delete_topics(self, names: Iterable[str], *, timeout_ms: int = 30000,
                            raise_errors: bool = True) -> dict[str, ErrorCode]:
        """DeleteTopics (v1-v5) on the controller. Returns {topic: ErrorCode}."""
        names = list(names)
        results = await self._to_controller(
            ApiKey.DELETE_TOPICS, "delete_topics",
            lambda v: {"topic_names": names, "timeout": timeout_ms},
            lambda r: r.responses)
        await self._refresh_quietly(names)
        return self._finish(results, "delete topic", raise_errors)

    async def create_partitions(self, new_counts: dict[str, int], *,
                                assignments: dict[str, list[list[int]]] | None = None,
                                timeout_ms: int = 30000, validate_only: bool = False,
                                raise_errors: bool = True) -> dict[str, ErrorCode]:
        """CreatePartitions (v0-v3): grow each topic to ``new_counts[topic]`` partitions;
        ``assignments[topic]`` optionally gives the replicas of each new partition."""
        assignments = assignments or {}

        def build(version: int) -> dict[str, Any]:
            return {"topics": [{"name": name, "count": count,
                                "assignments": None if name not in assignments else
                                [{"broker_ids": ids} for ids in assignments[name]]}
                               for name, count in new_counts.items()],
                    "timeout": timeout_ms, "validate_only": validate_only}

        results = await self._to_controller(ApiKey.CREATE_PARTITIONS, "create_partitions",
                                            build, lambda r: r.results)
        if not validate_only:
            await self._refresh_quietly(list(new_counts))
        return self._finish(results, "create partitions", raise_errors)

    async def _refresh_quietly(self, topics: list[str]) -> None:
        try:
            await self.client.refresh_metadata(topics)
        except Exception as exc:  # refreshing is a courtesy; the operation succeeded
            log.debug("metadata_refresh_failed", error=str(exc))

    # ------------------------------------------------------------------ describing

    async def describe_topics(self, names: Iterable[str] | None = None) -> dict[str, TopicInfo]:
        """Metadata of ``names`` (all topics when None): {topic: TopicInfo}. Unknown topics
        are present with error_code UNKNOWN_TOPIC_OR_PARTITION."""
        wanted = None if names is None else list(names)
        cluster = await self.client.retry(
            lambda: self.client.refresh_metadata(wanted), what="metadata")
        if wanted is None:
            return dict(cluster.topics)
        return {n: cluster.topics[n] for n in wanted if n in cluster.topics}

    async def list_topics(self) -> list[str]:
        """Names of all non-internal topics, sorted."""
        topics = await self.describe_topics(None)
        return sorted(n for n, t in topics.items() if not t.is_internal)

    async def describe_cluster(self) -> ClusterDescription:
        """DescribeCluster (v0-v1); falls back to Metadata when the broker lacks it."""
        async def attempt() -> ClusterDescription:
            conn = await self.client.any_connection()
            if ApiKey.DESCRIBE_CLUSTER not in conn.versions:
                cluster = await self.client.refresh_metadata([])
                return ClusterDescription(cluster.cluster_id, cluster.controller_id,
                                          dict(cluster.brokers))
            response = await conn.call(ApiKey.DESCRIBE_CLUSTER,
                                       include_cluster_authorized_operations=False,
                                       endpoint_type=1)
            if response.error_code != ErrorCode.none:
                raise KafkaError(response.error_code, "describe_cluster",
                                 response.error_message)
            brokers = {int(b.broker_id): Node(int(b.broker_id), b.host, int(b.port), b.rack)
                       for b in response.brokers}
            return ClusterDescription(response.cluster_id, int(response.controller_id),
                                      brokers)

        return await self.client.retry(attempt, what="describe_cluster")

    async def describe_configs(self, resource_type: int, name: str,
                               keys: Iterable[str] | None = None) -> dict[str, ConfigEntry]:
        """DescribeConfigs (v1-v4) of one resource: RESOURCE_TOPIC and a topic name, or
        RESOURCE_BROKER and a broker id as a string (asked of that broker). ``keys``: only
        these config names. Returns {name: ConfigEntry}; raises KafkaError."""
        async def attempt() -> Any:
            if resource_type == RESOURCE_BROKER and name.isdigit():
                conn = await self.client.connection(int(name))
            else:
                conn = await self.client.any_connection()
            return await conn.call(
                ApiKey.DESCRIBE_CONFIGS, include_synonyms=False, include_documentation=False,
                resources=[{"resource_type": resource_type, "resource_name": name,
                            "configuration_keys": None if keys is None else list(keys)}])

        # Only reaching a broker is retried: a per-resource error is the answer (as in
        # Kafka's admin client), even a "retriable" one like UNKNOWN_TOPIC_OR_PARTITION.
        response = await self.client.retry(attempt, what="describe_configs")
        out = {}
        for result in response.results:
            if result.error_code != ErrorCode.none:
                raise KafkaError(result.error_code, f"describe_configs {name}",
                                 result.error_message)
            for c in result.configs:
                source = int(getattr(c, "config_source", -1))
                is_default = bool(getattr(c, "is_default", source == 5))
                out[c.name] = ConfigEntry(c.name, c.value, bool(c.read_only), is_default,
                                          bool(c.is_sensitive), source)
        return out

    async def alter_configs(self, resource_type: int, name: str,
                            changes: dict[str, str | None], *, validate_only: bool = False) -> None:
        """IncrementalAlterConfigs (KIP-339, v0-v1) of one resource: each ``changes`` value
        is SET, or DELETEd (back to the default) when None. A topic goes to any broker (which
        writes ``/config/topics`` and a change notification in ZooKeeper mode); a broker
        resource to that broker. Raises KafkaError (INVALID_CONFIG, UNKNOWN_TOPIC_OR_PARTITION,
        ...); UnsupportedApiVersionError when the broker lacks the API."""
        configs = [{"name": k, "config_operation": 1 if v is None else 0, "value": v}
                   for k, v in changes.items()]

        async def attempt() -> Any:
            if resource_type == RESOURCE_BROKER and name.isdigit():
                conn = await self.client.connection(int(name))
            else:
                conn = await self.client.any_connection()
            return await conn.call(
                ApiKey.INCREMENTAL_ALTER_CONFIGS, validate_only=validate_only,
                resources=[{"resource_type": resource_type, "resource_name": name,
                            "configs": configs}])

        response = await self.client.retry(attempt, what="alter_configs")
        for r in response.responses:
            if r.error_code != ErrorCode.none:
                raise KafkaError(r.error_code, f"alter_configs {name}", r.error_message)

    async def list_offsets(self, timestamps: dict[TopicPartition, int], *,
                           isolation_level: int = 0) -> dict[TopicPartition, OffsetAndTimestamp]:
        """ListOffsets per partition; see KafkaClient.list_offsets (EARLIEST -2, LATEST -1,
        or a timestamp in ms)."""
        return await self.client.list_offsets(timestamps, isolation_level=isolation_level)

    # ------------------------------------------------------------------ reassignment (KIP-455)

    async def alter_partition_reassignments(
            self, reassignments: dict[TopicPartition, list[int] | None], *,
            timeout_ms: int = 60000) -> dict[TopicPartition, tuple[ErrorCode, str | None]]:
        """AlterPartitionReassignments v0 on the controller (Kafka's
        Admin.alterPartitionReassignments): each partition moves to its target replicas, or
        (None) its reassignment is cancelled. A top-level NOT_CONTROLLER refreshes Metadata and
        retries. Returns {partition: (error code, message)}: NONE (started / cancelled),
        INVALID_REPLICA_ASSIGNMENT (empty, duplicate, negative or dead brokers),
        UNKNOWN_TOPIC_OR_PARTITION, NO_REASSIGNMENT_IN_PROGRESS (cancel of nothing). Raises
        KafkaError for any other top-level error."""
        topics: dict[str, list[dict[str, Any]]] = {}
        for tp, replicas in sorted(reassignments.items()):
            topics.setdefault(tp.topic, []).append(
                {"partition_index": tp.partition, "replicas": None if replicas is None else list(replicas)})

        async def attempt() -> Any:
            conn = await self.client.controller_connection()
            response = await conn.call(
                ApiKey.ALTER_PARTITION_REASSIGNMENTS, timeout_ms=self.request_timeout_ms + 5000,
                timeout=timeout_ms, topics=[{"name": t, "partitions": ps} for t, ps in topics.items()])
            if response.error_code != ErrorCode.none:
                raise KafkaError(response.error_code, "alter_partition_reassignments", response.error_message)
            return response

        response = await self.client.retry(attempt, what="alter_partition_reassignments")
        return {TopicPartition(t.name, int(p.partition_index)): (ErrorCode(p.error_code), p.error_message)
                for t in response.responses for p in t.partitions}

    async def list_partition_reassignments(self, partitions: Iterable[TopicPartition] | None = None, *,
                                           timeout_ms: int = 60000) -> dict[TopicPartition, PartitionReassignment]:
        """ListPartitionReassignments v0 on the controller (Kafka's
        Admin.listPartitionReassignments): the partitions being reassigned (of ``partitions``,
        or all) with their replicas, adding and removing replicas. Raises KafkaError for a
        top-level error other than NOT_CONTROLLER (which is retried)."""
        topics: dict[str, list[int]] | None = None
        if partitions is not None:
            topics = {}
            for tp in sorted(partitions):
                topics.setdefault(tp.topic, []).append(tp.partition)

        async def attempt() -> Any:
            conn = await self.client.controller_connection()
            response = await conn.call(
                ApiKey.LIST_PARTITION_REASSIGNMENTS, timeout_ms=self.request_timeout_ms + 5000, timeout=timeout_ms,
                topics=None if topics is None else [{"name": t, "partition_indexes": ps} for t, ps in topics.items()])
            if response.error_code != ErrorCode.none:
                raise KafkaError(response.error_code, "list_partition_reassignments", response.error_message)
            return response

        response = await self.client.retry(attempt, what="list_partition_reassignments")
        return {TopicPartition(t.name, int(p.partition_index)): PartitionReassignment(
                    tuple(p.replicas), tuple(p.adding_replicas), tuple(p.removing_replicas))
                for t in response.topics for p in t.partitions}

    # ------------------------------------------------------------------ transactions

    async def describe_producers(self, tp: TopicPartition, *, broker_id: int | None = None) -> list[ProducerState]:
        """DescribeProducers v0 (KIP-664) of one partition, asked of its leader or of
        ``broker_id`` (any replica answers with its own state). Raises KafkaError
        (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, ...; retriable ones are retried
        after a Metadata refresh when the leader was asked)."""
        async def attempt() -> list[ProducerState]:
            node = broker_id if broker_id is not None else await self.client.leader_for(tp.topic, tp.partition)
            conn = await self.client.connection(node)
            response = await conn.call(ApiKey.DESCRIBE_PRODUCERS,
                                       topics=[{"name": tp.topic, "partition_indexes": [tp.partition]}])
            part = response.topics[0].partitions[0]
            if part.error_code != ErrorCode.none:
                raise KafkaError(part.error_code, f"describe_producers {tp}", part.error_message)
            return [ProducerState(int(p.producer_id), int(p.producer_epoch), int(p.last_sequence),
                                  int(p.last_timestamp), int(p.coordinator_epoch), int(p.current_txn_start_offset))
                    for p in part.active_producers]

        if broker_id is not None:
            return await attempt()
        return await self.client.retry(attempt, what="describe_producers", refresh_topics=[tp.topic])

    async def list_transactions(self, *, state_filters: Iterable[str] = (),
                                producer_id_filters: Iterable[int] = ()) -> dict[int, list[TransactionListing]]:
        """ListTransactions (v0-v1, KIP-664) of every broker (each coordinates its own
        transactional ids): {broker id: listings}. Raises KafkaError for a broker's error
        (COORDINATOR_LOAD_IN_PROGRESS is retried)."""
        cluster = await self.client.refresh_metadata([])
        out: dict[int, list[TransactionListing]] = {}
        for node in sorted(cluster.brokers):
            async def attempt(node: int = node) -> list[TransactionListing]:
                conn = await self.client.connection(node)
                response = await conn.call(ApiKey.LIST_TRANSACTIONS, state_filters=list(state_filters),
                                           producer_id_filters=list(producer_id_filters), duration_filter=-1)
                if response.error_code != ErrorCode.none:
                    raise KafkaError(response.error_code, f"list_transactions on broker {node}")
                return [TransactionListing(t.transactional_id, int(t.producer_id), t.transaction_state)
                        for t in response.transaction_states]

            out[node] = await self.client.retry(attempt, what="list_transactions")
        return out

    async def find_transaction_coordinator(self, transactional_id: str) -> int:
        """FindCoordinator key_type 1 (TRANSACTION): the broker id coordinating
        ``transactional_id``; COORDINATOR_NOT_AVAILABLE (e.g. while __transaction_state is
        created) is retried. Raises KafkaError."""
        async def attempt() -> int:
            conn = await self.client.any_connection()
            response = await conn.call(ApiKey.FIND_COORDINATOR, key=transactional_id, key_type=1)
            if response.error_code != ErrorCode.none:
                raise KafkaError(response.error_code, f"find_coordinator {transactional_id}", response.error_message)
            return int(response.node_id)

        return await self.client.retry(attempt, what="find_coordinator")

    async def describe_transactions(self, transactional_ids: Iterable[str]
                                    ) -> dict[str, TransactionDescription | KafkaError]:
        """DescribeTransactions v0 (KIP-664), each id asked of its coordinator: {id:
        description, or the KafkaError its coordinator answered (TRANSACTIONAL_ID_NOT_FOUND,
        ...)}. NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS are retried."""
        out: dict[str, TransactionDescription | KafkaError] = {}
        for tid in dict.fromkeys(transactional_ids):
            async def attempt(tid: str = tid) -> TransactionDescription | KafkaError:
                node = await self.find_transaction_coordinator(tid)
                conn = await self.client.connection(node)
                response = await conn.call(ApiKey.DESCRIBE_TRANSACTIONS, transactional_ids=[tid])
                st = response.transaction_states[0]
                error = KafkaError(st.error_code, f"describe_transactions {tid}") \
                    if st.error_code != ErrorCode.none else None
                if error is not None and error.retriable:
                    raise error
                if error is not None:
                    return error
                return TransactionDescription(
                    node, st.transaction_state, int(st.producer_id), int(st.producer_epoch),
                    duration_ms(st.transaction_timeout), _epoch_ms(st.transaction_start_time),
                    tuple(TopicPartition(t.topic, int(p)) for t in st.topics for p in t.partitions))

            out[tid] = await self.client.retry(attempt, what="describe_transactions")
        return out
