"""What a KRaft controller answers on its controller listener (Kafka's ControllerApis).

``ControllerApis`` is a ``RaftServer`` (Raft's RPCs: Vote, BeginQuorumEpoch, EndQuorumEpoch,
Fetch and FetchSnapshot of ``__cluster_metadata``-0 from voters and observers alike,
DescribeQuorum, DescribeCluster, ApiVersions) that also serves the controller RPCs, each handed to
the QuorumController's event queue:

=========================  ========  =======================================================
API                        versions  from
=========================  ========  =======================================================
BrokerRegistration (62)    0-4       brokers, at start-up (broker epoch back)
BrokerHeartbeat (63)       0-1       brokers, every broker.heartbeat.interval.ms
AlterPartition (56)        2-3       partition leaders (ISR changes; by topic id)
AllocateProducerIds (67)   0         brokers (blocks of 1,000 producer ids)
CreateTopics (19)          2-7       admin clients with --bootstrap-controller, or forwarded
DeleteTopics (20)          1-6       "
CreatePartitions (37)      0-3       "
IncrementalAlterConfigs    0-1       "
ElectLeaders (43)          0-2       " (preferred, unclean)
AlterPartitionReassign..   0         " (KIP-455; api key 45)
ListPartitionReassign..    0         " (api key 46; from the committed state)
AlterClientQuotas (49)     0-1       " (KIP-546; ClientQuotaRecords)
AlterUserScramCred.. (51)  0         " (KIP-554; UserScramCredentialRecords)
CreateAcls (30)            1-3       " (AccessControlEntryRecords; AclControlManager)
DeleteAcls (31)            1-3       " (RemoveAccessControlEntryRecords)
DescribeAcls (29)          1-3       admin clients with --bootstrap-controller (committed ACLs)
Envelope (58)              0         brokers forwarding the admin requests above (KIP-590)
=========================  ========  =======================================================

ApiVersions lists exactly these with the Raft APIs (Kafka's ApiMessageType with listener
"controller", the subset kafkalike serves). Every operation on a controller that is not active
is answered NOT_CONTROLLER for each item, as Kafka's controller does; a broker then asks the
quorum who leads (DescribeQuorum / the Fetch answers) and retries there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog

from kafkalike.client.messages import build_entity
from kafkalike.controller import reassignment
from kafkalike.coordination.zk_data import ReplicaAssignment, TopicPartition
from kafkalike.image.metadata_image import StandardAcl
from kafkalike.kraft.acl_control_manager import AclFilter, acl_filter_matches
from kafkalike.kraft.client_quota_control_manager import QuotaAlteration
from kafkalike.kraft.controller_result import ControllerError
from kafkalike.kraft.quorum_controller import QuorumController
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import RequestHeader, encode_response, parse_request, response_class
from kafkalike.protocol.errors import ErrorCode, ProtocolError
from kafkalike.raft.kafka_raft_client import RAFT_APIS, KafkaRaftClient, RaftServer

__all__ = ["ControllerApis", "CONTROLLER_APIS", "BROKER_REGISTRATION", "BROKER_HEARTBEAT", "ALTER_PARTITION",
           "ALLOCATE_PRODUCER_IDS"]

log = structlog.get_logger("kafkalike.kraft")

ALTER_PARTITION = 56
BROKER_REGISTRATION = 62
BROKER_HEARTBEAT = 63
ALLOCATE_PRODUCER_IDS = 67
ENVELOPE = 58

CONTROLLER_APIS: dict[int, tuple[int, int]] = {
    **RAFT_APIS,
    BROKER_REGISTRATION: (0, 4),
    BROKER_HEARTBEAT: (0, 1),
    ALTER_PARTITION: (2, 3),
    ALLOCATE_PRODUCER_IDS: (0, 0),
    ApiKey.CREATE_TOPICS: (2, 7),
    ApiKey.DELETE_TOPICS: (1, 6),
    ApiKey.CREATE_PARTITIONS: (0, 3),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: (0, 1),
    ApiKey.ELECT_LEADERS: (0, 2),
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: (0, 0),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: (0, 0),
    ApiKey.ALTER_CLIENT_QUOTAS: (0, 1),
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: (0, 0),
    ApiKey.CREATE_ACLS: (1, 3),
    ApiKey.DELETE_ACLS: (1, 3),
    ApiKey.DESCRIBE_ACLS: (1, 3),
    ENVELOPE: (0, 0),
}
"""{api key: (min, max)} a kafkalike controller serves (module doc)."""

FORWARDABLE_APIS: dict[int, tuple[int, int]] = {
    k: v for k, v in CONTROLLER_APIS.items()
    if k in (ApiKey.CREATE_TOPICS, ApiKey.DELETE_TOPICS, ApiKey.CREATE_PARTITIONS, ApiKey.INCREMENTAL_ALTER_CONFIGS,
             ApiKey.ELECT_LEADERS, ApiKey.ALTER_PARTITION_REASSIGNMENTS, ApiKey.LIST_PARTITION_REASSIGNMENTS,
             ApiKey.ALTER_CLIENT_QUOTAS, ApiKey.ALTER_USER_SCRAM_CREDENTIALS, ApiKey.CREATE_ACLS,
             ApiKey.DELETE_ACLS)}
"""What a broker may forward inside an Envelope (KIP-590)."""


def _response(api_key: int, version: int, **fields: Any) -> Any:
    return build_entity(response_class(api_key, version), fields)


class ControllerApis(RaftServer):
    """Serves CONTROLLER_APIS on a controller listener: Raft's through ``RaftServer``, the rest
    through ``controller`` (see module doc)."""

    apis = CONTROLLER_APIS

    def __init__(self, client: KafkaRaftClient, controller: QuorumController) -> None:
        super().__init__(client)
        self.controller = controller
        self._handlers: dict[int, Callable[[Any, int], Awaitable[Any]]] = {
            BROKER_REGISTRATION: self.handle_broker_registration,
            BROKER_HEARTBEAT: self.handle_broker_heartbeat,
            ALTER_PARTITION: self.handle_alter_partition,
            ALLOCATE_PRODUCER_IDS: self.handle_allocate_producer_ids,
            ApiKey.CREATE_TOPICS: self.handle_create_topics,
            ApiKey.DELETE_TOPICS: self.handle_delete_topics,
            ApiKey.CREATE_PARTITIONS: self.handle_create_partitions,
            ApiKey.INCREMENTAL_ALTER_CONFIGS: self.handle_incremental_alter_configs,
            ApiKey.ELECT_LEADERS: self.handle_elect_leaders,
            ApiKey.ALTER_PARTITION_REASSIGNMENTS: self.handle_alter_partition_reassignments,
            ApiKey.LIST_PARTITION_REASSIGNMENTS: self.handle_list_partition_reassignments,
            ApiKey.ALTER_CLIENT_QUOTAS: self.handle_alter_client_quotas,
            ApiKey.ALTER_USER_SCRAM_CREDENTIALS: self.handle_alter_user_scram_credentials,
            ApiKey.CREATE_ACLS: self.handle_create_acls,
            ApiKey.DELETE_ACLS: self.handle_delete_acls,
            ApiKey.DESCRIBE_ACLS: self.handle_describe_acls,
            ENVELOPE: self.handle_envelope,
        }

    async def _dispatch(self, header: RequestHeader, request: Any) -> Any:
        handler = self._handlers.get(header.api_key)
        if handler is None:
            return await super()._dispatch(header, request)
        return await handler(request, header.api_version)

    # ------------------------------------------------------------------ brokers

    async def handle_broker_registration(self, request: Any, version: int) -> Any:
        """BrokerRegistration: the broker epoch, or INCONSISTENT_CLUSTER_ID,
        DUPLICATE_BROKER_REGISTRATION, UNSUPPORTED_VERSION, INVALID_REGISTRATION, NOT_CONTROLLER."""
        try:
            epoch = await self.controller.register_broker(request, version)
        except ControllerError as exc:
            log.info("broker_registration_refused", broker_id=request.broker_id, error=exc.error.name,
                     message=exc.message)
            return _response(BROKER_REGISTRATION, version, throttle_time=0, error_code=exc.error, broker_epoch=-1)
        return _response(BROKER_REGISTRATION, version, throttle_time=0, error_code=ErrorCode.none, broker_epoch=epoch)

    async def handle_broker_heartbeat(self, request: Any, version: int) -> Any:
        """BrokerHeartbeat: isCaughtUp, isFenced, shouldShutDown; STALE_BROKER_EPOCH, NOT_CONTROLLER."""
        try:
            reply = await self.controller.process_broker_heartbeat(request)
        except ControllerError as exc:
            return _response(BROKER_HEARTBEAT, version, throttle_time=0, error_code=exc.error, is_caught_up=False,
                             is_fenced=True, should_shut_down=False)
        return _response(BROKER_HEARTBEAT, version, throttle_time=0, error_code=ErrorCode.none,
                         is_caught_up=reply.is_caught_up, is_fenced=reply.is_fenced,
                         should_shut_down=reply.should_shut_down)

    async def handle_alter_partition(self, request: Any, version: int) -> Any:
        """AlterPartition: per partition its new state or Kafka's error (ReplicationControlManager)."""
        try:
            result = await self.controller.alter_partition(request, version)
        except ControllerError as exc:
            return _response(ALTER_PARTITION, version, throttle_time=0, error_code=exc.error, topics=[])
        by_topic: dict[Any, list[dict[str, Any]]] = {}
        for topic_id, index, error, part in result.partitions:
            entry: dict[str, Any] = {"partition_index": index, "error_code": error}
            if part is not None:
                entry.update(leader_id=part.leader, leader_epoch=part.leader_epoch, isr=list(part.isr),
                             leader_recovery_state=part.leader_recovery_state, partition_epoch=part.partition_epoch)
            else:
                entry.update(leader_id=-1, leader_epoch=-1, isr=[], leader_recovery_state=0, partition_epoch=-1)
            by_topic.setdefault(topic_id, []).append(entry)
        return _response(ALTER_PARTITION, version, throttle_time=0, error_code=result.error,
                         topics=[{"topic_id": t, "partitions": ps} for t, ps in by_topic.items()])

    async def handle_allocate_producer_ids(self, request: Any, version: int) -> Any:
        """AllocateProducerIds: the next block of 1,000; STALE_BROKER_EPOCH, NOT_CONTROLLER."""
        try:
            block = await self.controller.allocate_producer_ids(request.broker_id, request.broker_epoch)
        except ControllerError as exc:
            return _response(ALLOCATE_PRODUCER_IDS, version, throttle_time=0, error_code=exc.error,
                             producer_id_start=-1, producer_id_len=0)
        return _response(ALLOCATE_PRODUCER_IDS, version, throttle_time=0, error_code=ErrorCode.none,
                         producer_id_start=block.first_producer_id, producer_id_len=block.size)

    async def handle_envelope(self, request: Any, version: int) -> Any:
        """Envelope (KIP-590): a broker forwards a client's admin request (its header and body in
        ``request_data``); the answer is the inner response's header and body in ``response_data``.
        INVALID_REQUEST for an inner request that does not parse or is not forwardable
        (FORWARDABLE_APIS). The client's principal is not checked: controllers have no authorizer."""
        try:
            inner_header, inner = parse_request(request.request_data, FORWARDABLE_APIS)
        except ProtocolError as exc:
            log.info("envelope_refused", error=str(exc))
            return _response(ENVELOPE, version, response_data=None, error_code=ErrorCode.invalid_request)
        inner_response = await self._handlers[inner_header.api_key](inner, inner_header.api_version)
        frame = encode_response(inner_header, inner_response)
        return _response(ENVELOPE, version, response_data=frame[4:], error_code=ErrorCode.none)

    # ------------------------------------------------------------------ admin

    async def handle_create_topics(self, request: Any, version: int) -> Any:
        """CreateTopics (results per topic; NOT_CONTROLLER for all on a standby)."""
        try:
            results = await self.controller.create_topics(request.topics, request.validate_only)
        except ControllerError as exc:
            return _response(ApiKey.CREATE_TOPICS, version, throttle_time=0, topics=[
                {"name": t.name, "error_code": exc.error, "error_message": exc.message or None, "num_partitions": -1,
                 "replication_factor": -1} for t in request.topics])
        topics = []
        for r in results:
            entry: dict[str, Any] = {"name": r.name, "error_code": r.error, "error_message": r.message,
                                     "num_partitions": r.num_partitions, "replication_factor": r.replication_factor,
                                     "topic_config_error_code": 0}
            if version >= 7:
                entry["topic_id"] = r.topic_id
            if version >= 5:
                entry["configs"] = [] if r.error is ErrorCode.none else None
            topics.append(entry)
        return _response(ApiKey.CREATE_TOPICS, version, throttle_time=0, topics=topics)

    async def handle_delete_topics(self, request: Any, version: int) -> Any:
        """DeleteTopics by name (v1-6) or by id (v6)."""
        if version < 6:
            request = [_NameOnly(n) for n in request.topic_names]
        else:
            request = request.topics
        try:
            results = await self.controller.delete_topics(request)
        except ControllerError as exc:
            return _response(ApiKey.DELETE_TOPICS, version, throttle_time=0, responses=[
                {"name": getattr(t, "name", None), "topic_id": getattr(t, "topic_id", None), "error_code": exc.error,
                 "error_message": exc.message or None} for t in request])
        responses = []
        for r in results:
            entry: dict[str, Any] = {"name": r.name, "error_code": r.error}
            if version >= 5:
                entry["error_message"] = r.message
            if version >= 6:
                entry["topic_id"] = r.topic_id
            responses.append(entry)
        return _response(ApiKey.DELETE_TOPICS, version, throttle_time=0, responses=responses)

    async def handle_create_partitions(self, request: Any, version: int) -> Any:
        """CreatePartitions."""
        try:
            results = await self.controller.create_partitions(request.topics, request.validate_only)
        except ControllerError as exc:
            return _response(ApiKey.CREATE_PARTITIONS, version, throttle_time=0, results=[
                {"name": t.name, "error_code": exc.error, "error_message": exc.message or None}
                for t in request.topics])
        return _response(ApiKey.CREATE_PARTITIONS, version, throttle_time=0, results=[
            {"name": r.name, "error_code": r.error, "error_message": r.message} for r in results])

    async def handle_incremental_alter_configs(self, request: Any, version: int) -> Any:
        """IncrementalAlterConfigs for TOPIC and BROKER resources."""
        try:
            results = await self.controller.incremental_alter_configs(request.resources, request.validate_only)
        except ControllerError as exc:
            return _response(ApiKey.INCREMENTAL_ALTER_CONFIGS, version, throttle_time=0, responses=[
                {"error_code": exc.error, "error_message": exc.message or None, "resource_type": r.resource_type,
                 "resource_name": r.resource_name} for r in request.resources])
        return _response(ApiKey.INCREMENTAL_ALTER_CONFIGS, version, throttle_time=0, responses=[
            {"error_code": r.error, "error_message": r.message, "resource_type": r.resource_type,
             "resource_name": r.resource_name} for r in results])

    async def handle_elect_leaders(self, request: Any, version: int) -> Any:
        """ElectLeaders: election_type 0 preferred, 1 unclean (v1+); null partitions = all."""
        election = "unclean" if getattr(request, "election_type", 0) == 1 else "preferred"
        if request.topic_partitions is None:
            wanted = [(t.name, p) for t, p, _part in self.controller.replication.partitions()]
        else:
            wanted = [(tp.topic, p) for tp in request.topic_partitions for p in tp.partitions]
        try:
            answers = await self.controller.elect_leaders(wanted, election)
        except ControllerError as exc:
            answers = [(t, p, exc.error, exc.message or None) for t, p in wanted]
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for topic, pid, error, message in answers:
            by_topic.setdefault(topic, []).append({"partition_id": pid, "error_code": error, "error_message": message})
        fields: dict[str, Any] = {"throttle_time": 0, "replica_election_results": [
            {"topic": t, "partition_result": ps} for t, ps in by_topic.items()]}
        if version >= 1:
            fields["error_code"] = ErrorCode.none
        return _response(ApiKey.ELECT_LEADERS, version, **fields)

    async def handle_alter_partition_reassignments(self, request: Any, version: int) -> Any:
        """AlterPartitionReassignments v0: per partition NONE or the controller's error
        (ReplicationControlManager.alter_partition_reassignments); NOT_CONTROLLER at the top
        level on a standby."""
        targets = reassignment.alter_request_targets(request)
        try:
            answers = await self.controller.alter_partition_reassignments(
                [(tp.topic, tp.partition, replicas) for tp, replicas in targets.items()])
        except ControllerError as exc:
            return reassignment.alter_response(exc.error, {})
        return reassignment.alter_response(ErrorCode.none, {
            TopicPartition(topic, pid): (error, message) for topic, pid, error, message in answers})

    async def handle_list_partition_reassignments(self, request: Any, version: int) -> Any:
        """ListPartitionReassignments v0: the asked partitions (all when none are named) being
        reassigned, with replicas, adding and removing replicas; NOT_CONTROLLER on a standby."""
        wanted = reassignment.list_request_partitions(request)
        try:
            found = self.controller.list_partition_reassignments(
                None if wanted is None else [(tp.topic, tp.partition) for tp in wanted])
        except ControllerError as exc:
            return reassignment.list_response(exc.error, {})
        return reassignment.list_response(ErrorCode.none, {
            TopicPartition(topic, pid): ReplicaAssignment(part.replicas, part.adding_replicas, part.removing_replicas)
            for (topic, pid), part in found.items()})

    async def handle_alter_client_quotas(self, request: Any, version: int) -> Any:
        """AlterClientQuotas v0-1: per entry NONE or INVALID_REQUEST with Kafka's message
        (ClientQuotaControlManager); NOT_CONTROLLER for every entry on a standby. With
        ``validate_only`` the checks run and nothing is written."""
        alterations = [QuotaAlteration(tuple((d.entity_type, d.entity_name) for d in e.entity),
                                       tuple((o.key, float(o.value), bool(o.remove)) for o in e.ops))
                       for e in request.entries]
        try:
            answers = await self.controller.alter_client_quotas(alterations, bool(request.validate_only))
        except ControllerError as exc:
            answers = [(exc.error, exc.message or None)] * len(alterations)
        return _response(ApiKey.ALTER_CLIENT_QUOTAS, version, throttle_time=0, entries=[
            {"error_code": error, "error_message": message, "entity": [
                {"entity_type": t, "entity_name": n} for t, n in a.entity]}
            for a, (error, message) in zip(alterations, answers)])

    async def handle_alter_user_scram_credentials(self, request: Any, version: int) -> Any:
        """AlterUserScramCredentials v0: one result per user (ScramControlManager's errors);
        NOT_CONTROLLER for every user on a standby."""
        try:
            answers = await self.controller.alter_user_scram_credentials(request.deletions, request.upsertions)
        except ControllerError as exc:
            users = dict.fromkeys(i.name for i in (*request.deletions, *request.upsertions))
            answers = [(u, exc.error, exc.message or None) for u in users]
        return _response(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, version, throttle_time=0, results=[
            {"user": user, "error_code": error, "error_message": message} for user, error, message in answers])


    async def handle_create_acls(self, request: Any, version: int) -> Any:
        """CreateAcls v1-3: one result per creation, NONE or INVALID_REQUEST with Kafka's
        message (AclControlManager.validateNewAcl); NOT_CONTROLLER for each on a standby."""
        acls = [StandardAcl(int(c.resource_type), c.resource_name, int(c.resource_pattern_type), c.principal,
                            c.host, int(c.operation), int(c.permission_type)) for c in request.creations]
        try:
            answers = [(r.error, r.message) for r in await self.controller.create_acls(acls)]
        except ControllerError as exc:
            answers = [(exc.error, exc.message or None)] * len(acls)
        return _response(ApiKey.CREATE_ACLS, version, throttle_time=0, results=[
            {"error_code": error, "error_message": message} for error, message in answers])

    async def handle_delete_acls(self, request: Any, version: int) -> Any:
        """DeleteAcls v1-3: per filter, the ACLs it deleted, or INVALID_REQUEST ("Unknown
        patternFilter." / "Unknown entryFilter."); NOT_CONTROLLER for each filter on a standby."""
        filters = [AclFilter(int(f.resource_type_filter), f.resource_name_filter, int(f.pattern_type_filter),
                             f.principal_filter, f.host_filter, int(f.operation), int(f.permission_type))
                   for f in request.filters]
        try:
            results = await self.controller.delete_acls(filters)
            out = [{"error_code": r.error, "error_message": r.message, "matching_acls": [
                {"error_code": ErrorCode.none, "error_message": None, "resource_type": a.resource_type,
                 "resource_name": a.resource_name, "pattern_type": a.pattern_type, "principal": a.principal,
                 "host": a.host, "operation": a.operation, "permission_type": a.permission_type}
                for a in r.deleted]} for r in results]
        except ControllerError as exc:
            out = [{"error_code": exc.error, "error_message": exc.message or None, "matching_acls": []}
                   for _ in filters]
        return _response(ApiKey.DELETE_ACLS, version, throttle_time=0, filter_results=out)

    async def handle_describe_acls(self, request: Any, version: int) -> Any:
        """DescribeAcls v1-3 from this controller's committed ACLs (any controller answers, as
        Kafka's do from their images), grouped by resource pattern; a filter with UNKNOWN
        elements is INVALID_REQUEST "The filter must not contain UNKNOWN elements"."""
        flt = AclFilter(int(request.resource_type_filter), request.resource_name_filter,
                        int(request.pattern_type_filter), request.principal_filter, request.host_filter,
                        int(request.operation), int(request.permission_type))
        if 0 in (flt.resource_type, flt.pattern_type, flt.operation, flt.permission_type):
            return _response(ApiKey.DESCRIBE_ACLS, version, throttle_time=0, error_code=ErrorCode.invalid_request,
                             error_message="The filter must not contain UNKNOWN elements", resources=[])
        grouped: dict[tuple[int, str, int], list[Any]] = {}
        for acl in sorted(self.controller.state.acls.acls.values(), key=lambda a: attrs.astuple(a)):
            if acl_filter_matches(flt, acl):
                grouped.setdefault((acl.resource_type, acl.resource_name, acl.pattern_type), []).append(acl)
        return _response(ApiKey.DESCRIBE_ACLS, version, throttle_time=0, error_code=ErrorCode.none,
                         error_message=None, resources=[
                             {"resource_type": rtype, "resource_name": name, "pattern_type": pattern, "acls": [
                                 {"principal": a.principal, "host": a.host, "operation": a.operation,
                                  "permission_type": a.permission_type} for a in acls]}
                             for (rtype, name, pattern), acls in grouped.items()])


class _NameOnly:
    """A DeleteTopics v1-5 topic (names only)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.topic_id = None
