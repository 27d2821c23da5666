"""A KRaft broker's requests to the active controller (Kafka 3.9's ``NodeToControllerChannelManager``,
``ForwardingManager``, ``RPCProducerIdManager`` and ``DefaultAlterPartitionManager``).

* ``NodeToControllerChannel`` sends a request to the active controller: the Raft leader the
  broker's metadata fetches follow (``controller.quorum.voters`` gives its controller listener).
  A connection failure, a timeout or a NOT_CONTROLLER answer is retried (after
  ``retry_backoff_ms``) against the leader known then, until the caller's deadline:
  ``ControllerUnavailableError`` (REQUEST_TIMED_OUT) after it.
* ``ForwardingManager`` takes the admin requests KafkaApis hands its admin manager in ZooKeeper mode
  (CreateTopics, DeleteTopics, CreatePartitions, IncrementalAlterConfigs, AlterConfigs) and sends
  them to the controller, whose answer is the client's answer. Kafka wraps the client's request in
  an Envelope (KIP-590) so the controller sees the client's principal; kafkalike re-sends the
  request itself (the controller sees the broker). AlterConfigs (legacy: replace a resource's set)
  goes out as the IncrementalAlterConfigs that makes the image's set equal to the request's.
  DescribeConfigs is answered from the image. ``create_topic`` / ``auto_create_topic`` serve the
  group and transaction coordinators and auto topic creation, through the same CreateTopics.
* ``KRaftControlPlane`` answers what the data plane's components ask the ZooKeeper client for in
  ZooKeeper mode, from the image and the controller: the leader's ISR write
  (``update_partition_state``: an AlterPartition; the ZooKeeper mode writes the state znode),
  producer id blocks (``claim_producer_id_block``: AllocateProducerIds), topic assignments, live
  brokers, dynamic configs (from the image); ISR change and log-dir notifications are ZooKeeper
  mode's alone (no-ops: the controller learns ISR changes from AlterPartition).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import structlog
import trio

from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.kraft_metadata_cache import KRaftMetadataCache
from kafkalike.broker.zk_admin_manager import AdminError, auto_create_through
from kafkalike.client.connection import KafkaConnection
from kafkalike.client.errors import ClientError
from kafkalike.client.messages import build_request
from kafkalike.coordination import BadVersion
from kafkalike.controller import reassignment
from kafkalike.coordination import zk_data as zd
from kafkalike.image import MetadataImage
from kafkalike.image.metadata_image import CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.entities import build, entity, response_class_for
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.metadata_records import uuid_to_base64

log = structlog.get_logger(__name__)

__all__ = ["NodeToControllerChannel", "ControllerUnavailableError", "ForwardingManager", "KRaftControlPlane",
           "forwarding_error_response"]

ALTER_PARTITION = 56  # api keys ApiKey does not name (controller-only APIs)
ALLOCATE_PRODUCER_IDS = 67
BROKER_REGISTRATION = 62
BROKER_HEARTBEAT = 63
ALTER_PARTITION_VERSION = 3
ALLOCATE_PRODUCER_IDS_VERSION = 0
CREATE_TOPICS_VERSION = 7
INCREMENTAL_ALTER_CONFIGS_VERSION = 1
# IncrementalAlterConfigs op types (Kafka's AlterConfigOp.OpType)
OP_SET, OP_DELETE = 0, 1


class ControllerUnavailableError(Exception):
    """No active controller answered before the deadline (REQUEST_TIMED_OUT)."""

    error_code = ErrorCode.request_timed_out


class NodeToControllerChannel:
    """Requests to the active controller (see module doc). ``broker_id``; ``voters`` {id: (host,
    port)} (controller.quorum.voters); ``leader_id()``: the Raft leader this broker knows (-1:
    none); ``nursery``: where connections run; times in ms."""

    def __init__(self, broker_id: int, voters: Mapping[int, tuple[str, int]], leader_id: Callable[[], int],
                 nursery: trio.Nursery, *, request_timeout_ms: int = 30000, retry_backoff_ms: int = 100) -> None:
        self.broker_id = broker_id
        self.voters = dict(voters)
        self.leader_id = leader_id
        self.request_timeout_ms = request_timeout_ms
        self.retry_backoff_ms = retry_backoff_ms
        self._nursery = nursery
        self._connection: KafkaConnection | None = None
        self._connected_to = -1
        self._lock = trio.Lock()

    async def _connect(self, node_id: int) -> KafkaConnection | None:
        async with self._lock:
            conn = self._connection
            if conn is not None and not conn.closed and self._connected_to == node_id:
                return conn
            if conn is not None:
                await conn.aclose()
                self._connection = None
            host, port = self.voters[node_id]
            try:
                conn = await KafkaConnection.connect(
                    host, port, nursery=self._nursery, client_id=f"broker-{self.broker_id}-to-controller",
                    negotiate=False, node_id=node_id, connect_timeout_ms=self.request_timeout_ms,
                    request_timeout_ms=self.request_timeout_ms)
            except (ClientError, OSError) as exc:
                log.debug("controller_connect_failed", controller_id=node_id, error=str(exc))
                return None
            self._connection, self._connected_to = conn, node_id
            return conn

    async def send(self, request: Any, *, timeout_ms: int | None = None) -> Any:
        """``request`` (a kio entity) to the active controller; its answer. Answers whose
        top-level or only error is NOT_CONTROLLER are retried. Raises ControllerUnavailableError
        after ``timeout_ms`` (default request_timeout_ms)."""
        deadline = trio.current_time() + (timeout_ms or self.request_timeout_ms) / 1000
        while True:
            leader = self.leader_id()
            if leader in self.voters:
                conn = await self._connect(leader)
                if conn is not None:
                    try:
                        with trio.fail_at(deadline):
                            response = await conn.send(request)
                    except trio.TooSlowError:
                        raise ControllerUnavailableError(
                            f"no answer from controller {leader} to {type(request).__name__}") from None
                    except (ClientError, OSError) as exc:
                        log.debug("controller_request_failed", controller_id=leader, error=str(exc))
                        await conn.aclose()
                    else:
                        if getattr(response, "error_code", ErrorCode.none) != ErrorCode.not_controller:
                            return response
                        log.debug("controller_moved", controller_id=leader, api=type(request).__name__)
            if trio.current_time() + self.retry_backoff_ms / 1000 >= deadline:
                raise ControllerUnavailableError(f"no active controller answered {type(request).__name__} "
                                                 f"(known leader {leader})")
            await trio.sleep(self.retry_backoff_ms / 1000)

    async def aclose(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            await self._connection.aclose()
            self._connection = None


class KRaftControlPlane:
    """The KafkaZkClient calls the data plane's components make, answered in KRaft mode (see
    module doc). ``channel`` to the controller; ``image()``: the broker's current metadata image;
    ``broker_epoch()``: this broker's epoch from its registration."""

    def __init__(self, broker_id: int, channel: NodeToControllerChannel, image: Callable[[], MetadataImage],
                 broker_epoch: Callable[[], int]) -> None:
        self.broker_id = broker_id
        self.channel = channel
        self.image = image
        self.broker_epoch = broker_epoch

    async def update_partition_state(self, tp: zd.TopicPartition, state: zd.LeaderIsrAndControllerEpoch) -> int:
        """The leader's ISR change as AlterPartition v3 (Kafka's DefaultAlterPartitionManager;
        one partition a request): ``state.zk_version`` is the partition epoch it was computed
        from. Returns the new partition epoch; raises BadVersion when the controller refuses it
        (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, INELIGIBLE_REPLICA, ... : the leader keeps its
        ISR and waits for the metadata), ControllerUnavailableError when no controller answers.
        Members' broker epochs are sent as -1 (Kafka sends the epochs followers report in Fetch
        v15+, which kafkalike's fetchers do not send; -1 skips the controller's check)."""
        topic = self.image().topics.get_topic_by_name(tp.topic)
        if topic is None:
            raise BadVersion(f"topic {tp.topic} is not in the metadata image")
        request = build_request(ALTER_PARTITION, ALTER_PARTITION_VERSION, broker_id=self.broker_id,
                                broker_epoch=self.broker_epoch(), topics=[{
                                    "topic_id": topic.id, "partitions": [{
                                        "partition_index": tp.partition, "leader_epoch": state.leader_epoch,
                                        "new_isr_with_epochs": [{"broker_id": b, "broker_epoch": -1} for b in state.isr],
                                        "leader_recovery_state": 0, "partition_epoch": state.zk_version}]}])
        response = await self.channel.send(request)
        if response.error_code != ErrorCode.none:
            raise BadVersion(f"AlterPartition refused: {ErrorCode(response.error_code).name.upper()}")
        p = response.topics[0].partitions[0]
        if p.error_code != ErrorCode.none:
            raise BadVersion(f"AlterPartition of {tp} refused: {ErrorCode(p.error_code).name.upper()}")
        log.info("alter_partition_committed", partition=str(tp), isr=list(p.isr), leader_epoch=p.leader_epoch,
                 partition_epoch=p.partition_epoch)
        return int(p.partition_epoch)

    async def propagate_isr_changes(self, partitions: Any) -> str:
        """ZooKeeper mode's /isr_change_notification: nothing to do in KRaft mode."""
        return ""

    async def propagate_log_dir_event(self, broker_id: int) -> str:
        """ZooKeeper mode's /log_dir_event_notification: not sent in KRaft mode (Kafka's brokers
        report offline dirs in heartbeats, which kafkalike's lifecycle manager does not yet)."""
        log.warning("log_dir_event_not_reported", broker_id=broker_id)
        return ""

    async def claim_producer_id_block(self, broker_id: int) -> zd.ProducerIdBlock:
        """A block of producer ids from the controller (AllocateProducerIds v0, Kafka's
        RPCProducerIdManager); bounds inclusive. Raises ControllerUnavailableError, or
        RuntimeError naming the controller's error."""
        request = build_request(ALLOCATE_PRODUCER_IDS, ALLOCATE_PRODUCER_IDS_VERSION,
                                broker_id=broker_id, broker_epoch=self.broker_epoch())
        response = await self.channel.send(request)
        if response.error_code != ErrorCode.none:
            raise RuntimeError(f"AllocateProducerIds failed: {ErrorCode(response.error_code).name.upper()}")
        start, length = int(response.producer_id_start), int(response.producer_id_len)
        return zd.ProducerIdBlock(broker_id, start, start + length - 1)

    async def get_topic_assignment(self, topic: str) -> tuple[zd.TopicAssignment, int] | None:
        """The topic's replicas from the image (version: -1), None when it does not exist."""
        found = self.image().topics.get_topic_by_name(topic)
        if found is None:
            return None
        return zd.TopicAssignment(topic, {i: zd.ReplicaAssignment(p.replicas) for i, p in found.partitions.items()},
                                  uuid_to_base64(found.id)), -1

    async def get_broker_ids(self) -> list[int]:
        """Unfenced registered brokers (the 'live' brokers), ascending."""
        return self.image().cluster.unfenced_broker_ids()

    async def get_entity_config(self, entity_type: str, name: str) -> dict[str, str]:
        """Dynamic configs of a topic or broker from the image ({} for other entity types:
        users' and clients' quotas and SCRAM credentials are not in kafkalike's records)."""
        kind = {zd.CONFIG_TYPE_TOPIC: CONFIG_RESOURCE_TOPIC, "brokers": CONFIG_RESOURCE_BROKER}.get(entity_type)
        if kind is None:
            return {}
        return dict(self.image().configs.config_map(kind, "" if name == "<default>" else name))


def forwarding_error_response(request: Any, error: ErrorCode, message: str | None = None) -> Any:
    """The answer to a forwarded admin ``request`` (a kio CreateTopics, DeleteTopics,
    CreatePartitions, IncrementalAlterConfigs, AlterConfigs, ElectLeaders, Alter/ListPartitionReassignments,
    AlterClientQuotas or AlterUserScramCredentials entity, any version)
    that no controller answered: ``error`` (REQUEST_TIMED_OUT from the channel) for every topic,
    resource or partition it names, as Kafka's ``AbstractRequest.getErrorResponse`` does
    (ElectLeaders with no partitions named: the top-level error only, v1+). Raises ValueError for
    other APIs."""
    resp_cls = response_class_for(request)
    key = type(request).__api_key__
    nil = uuid.UUID(int=0)
    if key == ApiKey.CREATE_TOPICS:
        cls = entity(resp_cls, "CreatableTopicResult")
        return build(resp_cls, topics=tuple(build(
            cls, name=t.name, topic_id=nil, error_code=error, error_message=message, configs=(),
            num_partitions=-1, replication_factor=-1) for t in request.topics))
    if key == ApiKey.DELETE_TOPICS:
        cls = entity(resp_cls, "DeletableTopicResult")
        named = [(n, nil) for n in request.topic_names or ()] if hasattr(request, "topic_names") \
            else [(t.name, t.topic_id) for t in request.topics]
        return build(resp_cls, responses=tuple(build(cls, name=n, topic_id=i, error_code=error, error_message=message)
                                               for n, i in named))
    if key == ApiKey.CREATE_PARTITIONS:
        cls = entity(resp_cls, "CreatePartitionsTopicResult")
        return build(resp_cls, results=tuple(build(cls, name=t.name, error_code=error, error_message=message)
                                             for t in request.topics))
    if key in (ApiKey.INCREMENTAL_ALTER_CONFIGS, ApiKey.ALTER_CONFIGS):
        cls = entity(resp_cls, "AlterConfigsResourceResponse")
        return build(resp_cls, responses=tuple(build(
            cls, error_code=error, error_message=message, resource_type=r.resource_type,
            resource_name=r.resource_name) for r in request.resources))
    if key == ApiKey.ELECT_LEADERS:
        topic_cls, part_cls = entity(resp_cls, "ReplicaElectionResult"), entity(resp_cls, "PartitionResult")
        return build(resp_cls, error_code=error, replica_election_results=tuple(build(
            topic_cls, topic=t.topic, partition_result=tuple(build(
                part_cls, partition_id=p, error_code=error, error_message=message) for p in t.partitions))
            for t in request.topic_partitions or ()))
    if key == ApiKey.ALTER_PARTITION_REASSIGNMENTS:  # AlterPartitionReassignmentsRequest.getErrorResponse
        answer = reassignment.alter_response(ErrorCode.none, {
            tp: (error, message) for tp in reassignment.alter_request_targets(request)})
        return dataclasses.replace(answer, error_code=error, error_message=message)
    if key == ApiKey.LIST_PARTITION_REASSIGNMENTS:
        return reassignment.list_response(error, {})
    if key == ApiKey.ALTER_CLIENT_QUOTAS:
        entry_cls, ent_cls = entity(resp_cls, "EntryData"), entity(resp_cls, "EntityData")
        return build(resp_cls, entries=tuple(build(
            entry_cls, error_code=error, error_message=message, entity=tuple(
                build(ent_cls, entity_type=d.entity_type, entity_name=d.entity_name) for d in e.entity))
            for e in request.entries))
    if key == ApiKey.ALTER_USER_SCRAM_CREDENTIALS:
        result_cls = entity(resp_cls, "AlterUserScramCredentialsResult")
        users = dict.fromkeys(i.name for i in (*request.deletions, *request.upsertions))
        return build(resp_cls, results=tuple(build(result_cls, user=u, error_code=error, error_message=message)
                                             for u in users))
    raise ValueError(f"no forwarding error answer for {type(request).__name__}")


@attrs.frozen
class _TopicError:
    error: ErrorCode
    message: str | None


class ForwardingManager:
    """The admin manager of a KRaft broker (see module doc): KafkaApis calls the same methods
    it calls on ZkAdminManager. ``describe`` answers DescribeConfigs (a ZkAdminManager over the
    KRaftControlPlane: the same entries, overrides from the image)."""

    def __init__(self, config: KafkaConfig, channel: NodeToControllerChannel, metadata_cache: KRaftMetadataCache,
                 describe: Any) -> None:
        self.config = config
        self.channel = channel
        self.metadata_cache = metadata_cache
        self.describe = describe

    # ---------------------------------------------------------------- forwarded as they are
    async def _forward(self, request: Any, client_request: Any = None) -> Any:
        """``request`` sent to the controller, its answer; when no controller answers in time,
        ``client_request``'s (default ``request``'s) REQUEST_TIMED_OUT answer (Kafka 3.9's
        ForwardingManager answers a forwarded request that times out so)."""
        try:
            return await self.channel.send(request)
        except ControllerUnavailableError as exc:
            log.warning("forward_failed", api=type(request).__name__, error=str(exc))
            return forwarding_error_response(request if client_request is None else client_request,
                                             exc.error_code, str(exc))

    async def create_topics(self, header: Any, request: Any) -> Any:
        """CreateTopics, forwarded to the controller."""
        return await self._forward(request)

    async def delete_topics(self, header: Any, request: Any) -> Any:
        """DeleteTopics, forwarded to the controller."""
        return await self._forward(request)

    async def create_partitions(self, header: Any, request: Any) -> Any:
        """CreatePartitions, forwarded to the controller."""
        return await self._forward(request)

    async def describe_configs(self, header: Any, request: Any) -> Any:
        """DescribeConfigs, answered here from the image."""
        return await self.describe.describe_configs(header, request)

    async def alter_configs(self, header: Any, request: Any, *, incremental: bool) -> Any:
        """IncrementalAlterConfigs forwarded; legacy AlterConfigs translated (module doc) and its
        answer rebuilt at the request's version."""
        if incremental:
            return await self._forward(request)
        image = self.metadata_cache.image
        resources = []
        for res in request.resources:
            current = image.configs.config_map(res.resource_type, res.resource_name)
            given = {c.name: c.value for c in res.configs}
            ops = [{"name": n, "config_operation": OP_SET, "value": v} for n, v in given.items() if v is not None]
            ops += [{"name": n, "config_operation": OP_DELETE, "value": None} for n in current
                    if given.get(n) is None]
            resources.append({"resource_type": res.resource_type, "resource_name": res.resource_name,
                              "configs": ops})
        forwarded = build_request(ApiKey.INCREMENTAL_ALTER_CONFIGS, INCREMENTAL_ALTER_CONFIGS_VERSION,
                                  resources=resources, validate_only=request.validate_only)
        answer = await self._forward(forwarded, request)
        if type(answer) is response_class_for(request):
            return answer  # the client's request's error answer (no controller answered)
        resp_cls = response_class_for(request)
        item_cls = entity(resp_cls, "AlterConfigsResourceResponse")
        return build(resp_cls, throttle_time=answer.throttle_time, responses=tuple(
            build(item_cls, error_code=r.error_code, error_message=r.error_message, resource_type=r.resource_type,
                  resource_name=r.resource_name) for r in answer.responses))

    async def on_metadata_update(self, deleted: list[zd.TopicPartition]) -> None:
        """Nothing waits on the metadata here (the controller answers once its records commit)."""

    async def startup(self) -> None:
        """Nothing to start (ZooKeeper mode's config-change watch has no KRaft counterpart: the
        publisher hands topic configs to the replica manager)."""

    async def handle_list_partition_reassignments(self, header: Any, request: Any, conn: Any) -> Any:
        """ListPartitionReassignments v0, forwarded to the controller (Kafka 3.9's KafkaApis
        forwards it too: the answer is the committed state, not this broker's image)."""
        return await self._forward(request)

    async def handle_alter_partition_reassignments(self, header: Any, request: Any, conn: Any) -> Any:
        """AlterPartitionReassignments v0, forwarded to the controller (KIP-455)."""
        return await self._forward(request)

    async def handle_alter_client_quotas(self, header: Any, request: Any, conn: Any) -> Any:
        """AlterClientQuotas v0-1, forwarded to the controller (KIP-546: ClientQuotaRecords;
        DescribeClientQuotas is answered by the broker from the quotas the image gave it)."""
        return await self._forward(request)

    async def handle_alter_user_scram_credentials(self, header: Any, request: Any, conn: Any) -> Any:
        """AlterUserScramCredentials v0, forwarded to the controller (UserScramCredentialRecords;
        DescribeUserScramCredentials is answered from the image)."""
        return await self._forward(request)

    # ---------------------------------------------------------------- for the coordinators
    async def create_topic(self, topic: str, num_partitions: int, replication_factor: int,
                           configs: Mapping[str, str | None] | None = None,
                           assignments: Mapping[int, list[int]] | None = None,
                           validate_only: bool = False, **_: Any) -> tuple[dict[int, list[int]], dict[str, str], str]:
        """One topic through the controller's CreateTopics (v7; -1 = the controller's defaults).
        Returns ({}, configs, topic id base64): the assignment is the controller's, seen in the
        image. Raises AdminError with the controller's error (TOPIC_ALREADY_EXISTS's message
        says 'already exists', as the coordinators check) or REQUEST_TIMED_OUT."""
        request = build_request(ApiKey.CREATE_TOPICS, CREATE_TOPICS_VERSION, timeout=30000,
                                validate_only=validate_only, topics=[{
                                    "name": topic, "num_partitions": num_partitions,
                                    "replication_factor": replication_factor,
                                    "assignments": [{"partition_index": p, "broker_ids": list(r)}
                                                    for p, r in (assignments or {}).items()],
                                    "configs": [{"name": n, "value": v} for n, v in (configs or {}).items()]}])
        try:
            response = await self.channel.send(request)
        except ControllerUnavailableError as exc:
            raise AdminError(ErrorCode.request_timed_out, str(exc)) from None
        result = response.topics[0]
        if result.error_code != ErrorCode.none:
            error = ErrorCode(result.error_code)
            message = result.error_message or error.name
            if error == ErrorCode.topic_already_exists:
                message = f"Topic '{topic}' already exists."
            raise AdminError(error, message)
        topic_id = result.topic_id if isinstance(result.topic_id, uuid.UUID) else uuid.UUID(int=0)
        log.info("topic_create_forwarded", topic=topic, partitions=result.num_partitions,
                 replication_factor=result.replication_factor)
        return {}, {n: v for n, v in (configs or {}).items() if v is not None}, uuid_to_base64(topic_id)

    async def auto_create_topic(self, topic: str) -> ErrorCode:
        """Auto topic creation (auto.create.topics.enable) through the controller's CreateTopics
        with its defaults: ``auto_create_through(self.create_topic, topic)`` (LEADER_NOT_AVAILABLE
        while it comes up, the controller's error, UNKNOWN_SERVER_ERROR for anything else; as in
        ZooKeeper mode)."""
        return await auto_create_through(self.create_topic, topic)
