"""Authorization of every API (Kafka's kafka.server.AuthHelper and the authorize /
filterByAuthorized calls of KafkaApis, Kafka 3.x ZooKeeper mode).

``install(apis, helper)`` wraps the handlers registered with KafkaApis: each wrapper asks the
AclAuthorizer what Kafka's KafkaApis asks, takes the unauthorized parts out of the request
(``dataclasses.replace`` on the kio entity), lets the component's handler serve the rest and
puts the refused parts back into its answer with Kafka's error code. Components stay unaware
of authorization. The rules (resource, operation -> error):

- Produce: Write on each topic (TOPIC_AUTHORIZATION_FAILED per partition); a transactional
  produce also Write on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for all);
  acks=0 with a refused partition closes the connection, as any acks=0 failure.
- Fetch: a follower (replica_id >= 0) needs ClusterAction on the cluster, a consumer Read on
  each topic (TOPIC_AUTHORIZATION_FAILED per partition).
- ListOffsets, DeleteRecords (Delete), DescribeProducers (Read), OffsetForLeaderEpoch
  (ClusterAction on the cluster, else Describe on each topic): per topic, TOPIC_AUTHORIZATION_FAILED.
- Metadata: only topics the principal may Describe are listed (all-topics requests), a named one
  it may not is TOPIC_AUTHORIZATION_FAILED; auto-creation needs Create on the cluster or the
  topic (else TOPIC_AUTHORIZATION_FAILED); topic / cluster authorized operations when asked.
- DescribeCluster: cluster authorized operations when asked.
- CreateTopics (Create on the cluster or the topic), DeleteTopics (Delete), CreatePartitions
  (Alter): TOPIC_AUTHORIZATION_FAILED per topic. DescribeConfigs (DescribeConfigs) /
  AlterConfigs / IncrementalAlterConfigs (AlterConfigs): on the topic, or the cluster for a
  broker resource (TOPIC_ / CLUSTER_AUTHORIZATION_FAILED per resource).
- Groups: FindCoordinator Describe on the group (GROUP_AUTHORIZATION_FAILED) or the
  transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); JoinGroup, SyncGroup, Heartbeat,
  LeaveGroup Read on the group; OffsetCommit Read on the group and Read on each topic;
  OffsetFetch Describe on the group and on each topic (all-topics answers filtered);
  DescribeGroups Describe per group (+ authorized operations when asked); ListGroups lists the
  groups the principal may Describe (all with Describe on the cluster); DeleteGroups Delete per
  group; OffsetDelete Delete on the group and Read on each topic.
- Transactions: InitProducerId Write on the transactional id, or for an idempotent producer
  IdempotentWrite on the cluster or Write on any topic (KIP-679; CLUSTER_AUTHORIZATION_FAILED);
  AddPartitionsToTxn Write on the id and each topic (the others OPERATION_NOT_ATTEMPTED);
  AddOffsetsToTxn Write on the id and Read on the group; EndTxn Write on the id;
  TxnOffsetCommit Write on the id, Read on the group and each topic; DescribeTransactions /
  ListTransactions Describe on each id.
- Inter-broker and cluster APIs: LeaderAndIsr, StopReplica, UpdateMetadata, ControlledShutdown,
  WriteTxnMarkers need ClusterAction on the cluster; ElectLeaders, AlterPartitionReassignments,
  AlterUserScramCredentials Alter; ListPartitionReassignments, DescribeLogDirs,
  DescribeUserScramCredentials Describe; DescribeClientQuotas DescribeConfigs, AlterClientQuotas
  AlterConfigs (CLUSTER_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from kafkalike.broker.acl_authorizer import CLUSTER_NAME, AclAuthorizer, AclOperation, PatternType, ResourceType
from kafkalike.broker.socket_server import CloseConnection
from kafkalike.protocol.api_keys import ApiKey, api_name
from kafkalike.protocol.codec import decode_response
from kafkalike.protocol.entities import AUTHORIZED_OPERATIONS_OMITTED, build, entity, response_class_for
from kafkalike.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

Op, RT = AclOperation, ResourceType
Handler = Callable[[Any, Any, Any], Awaitable[Any]]
TOPIC_DENIED = ErrorCode.topic_authorization_failed
GROUP_DENIED = ErrorCode.group_authorization_failed
CLUSTER_DENIED = ErrorCode.cluster_authorization_failed
TXN_DENIED = ErrorCode.transactional_id_authorization_failed
#: DescribeConfigs / AlterConfigs resource types (ConfigResource.Type): 2 topic, 4 broker, 8 broker logger
CONFIG_TOPIC = 2


class AuthHelper:
    """Authorization questions of one request (Kafka's AuthHelper): the principal and host come
    from the connection, the answer from the AclAuthorizer. ``topic_exists(name)`` tells
    Metadata which named topics would be auto-created."""

    def __init__(self, authorizer: AclAuthorizer, topic_exists: Callable[[str], bool]) -> None:
        self.authorizer = authorizer
        self.topic_exists = topic_exists

    def authorize(self, conn: Any, op: AclOperation, rtype: ResourceType, name: str, api: str = "",
                  log_if_denied: bool = True) -> bool:
        """May the connection's principal do ``op`` on the resource?"""
        return self.authorizer.authorize(conn.principal, _host(conn), op, rtype, name, request=api,
                                         log_if_denied=log_if_denied)

    def cluster(self, conn: Any, op: AclOperation, api: str = "", log_if_denied: bool = True) -> bool:
        """``op`` on the cluster resource (kafka-cluster)."""
        return self.authorize(conn, op, RT.CLUSTER, CLUSTER_NAME, api, log_if_denied)

    def allowed(self, conn: Any, op: AclOperation, rtype: ResourceType, names: Iterable[str],
                api: str = "") -> set[str]:
        """filterByAuthorized: the names the principal may ``op`` (each asked once)."""
        return {n for n in set(names) if self.authorize(conn, op, rtype, n, api)}

    def operations(self, conn: Any, rtype: ResourceType, name: str) -> int:
        """The authorized-operations bit field of one resource."""
        return self.authorizer.authorized_operations(conn.principal, _host(conn), rtype, name)

    def may_write_some_topic(self, conn: Any) -> bool:
        """authorizeByResourceType(WRITE, TOPIC) (KIP-679): an ALLOW of Write (or All) on some
        topic pattern for this principal and host that no DENY covers (a DENY on the literal
        wildcard, on that pattern or on a prefix of its name)."""
        auth = self.authorizer
        principal, host = conn.principal, _host(conn)
        if principal in auth.super_users:
            return True
        bindings = auth.acls()
        if not any(b.pattern.resource_type == RT.TOPIC for b in bindings):
            return auth.allow_everyone_if_no_acl_found

        def applies(b: Any) -> bool:
            e = b.entry
            return (b.pattern.resource_type == RT.TOPIC and e.principal in (principal, "User:*")
                    and e.host in (host, "*") and e.operation in (Op.WRITE, Op.ALL))
        denies = [b.pattern for b in bindings if applies(b) and b.entry.permission_type.name == "DENY"]
        for b in bindings:
            if applies(b) and b.entry.permission_type.name == "ALLOW":
                p = b.pattern
                covered = any(d.name == "*" and d.pattern_type == PatternType.LITERAL
                              or (d.pattern_type == PatternType.PREFIXED and p.name.startswith(d.name))
                              or d == p for d in denies)
                if not covered:
                    return True
        return False


def _host(conn: Any) -> str:
    peer = getattr(conn, "peer", None)
    return peer[0] if peer else ""


def install(apis: Any, helper: AuthHelper) -> None:
    """Wrap every handler of ``apis`` (KafkaApis) that has a rule here; call after all
    components registered theirs. Handlers without a rule (ApiVersions, SaslHandshake,
    SaslAuthenticate, the ACL APIs, which check for themselves) are left alone."""
    for api_key, rule in RULES.items():
        inner = apis.handlers.get(api_key)
        if inner is not None:
            apis.register(api_key, _wrapped(rule, helper, inner))


def _wrapped(rule: Callable[..., Awaitable[Any]], helper: AuthHelper, inner: Handler) -> Handler:
    super_users = helper.authorizer.super_users
    fills_operations = rule in (metadata, describe_cluster, describe_groups)

    async def handler(header: Any, request: Any, conn: Any) -> Any:
        if conn.principal in super_users and not (fills_operations and _asks_operations(request)):
            return await inner(header, request, conn)  # allowed everything: no per-resource work
        return await rule(helper, header, request, conn, inner)
    handler.__qualname__ = f"authorized {getattr(inner, '__qualname__', inner)}"
    return handler


def _asks_operations(request: Any) -> bool:
    return bool(getattr(request, "include_topic_authorized_operations", False)
                or getattr(request, "include_cluster_authorized_operations", False)
                or getattr(request, "include_authorized_operations", False))


def _replace(entity_: Any, **changes: Any) -> Any:
    return dataclasses.replace(entity_, **changes)


def _topic_errors(resp_cls: type, topic_entity: str, part_entity: str, topic_field: str, parts_field: str,
                  index_field: str, denied: dict[str, list[int]], error: int, **extra: Any) -> tuple[Any, ...]:
    """Response topic entries answering ``error`` for each denied (topic, partitions)."""
    topic_cls, part_cls = entity(resp_cls, topic_entity), entity(resp_cls, part_entity)
    return tuple(build(topic_cls, **{topic_field: t, parts_field: tuple(
        build(part_cls, **{index_field: i, "error_code": error, **extra}) for i in parts)}) for t, parts in denied.items())


# ----------------------------------------------------------------------------- data plane
async def produce(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    resp_cls = response_class_for(request)
    txn = request.transactional_id
    txn_denied = txn is not None and not h.authorize(conn, Op.WRITE, RT.TRANSACTIONAL_ID, txn, "Produce")
    ok = set() if txn_denied else h.allowed(conn, Op.WRITE, RT.TOPIC, (t.name for t in request.topic_data), "Produce")
    error = TXN_DENIED if txn_denied else TOPIC_DENIED
    denied = {t.name: [p.index for p in t.partition_data] for t in request.topic_data if t.name not in ok}
    if not denied:
        return await inner(header, request, conn)
    if request.acks == 0:
        raise CloseConnection(f"acks=0 produce refused: {error.name.upper()} for {sorted(denied)}")
    errors = _topic_errors(resp_cls, "TopicProduceResponse", "PartitionProduceResponse", "name",
                           "partition_responses", "index", denied, error, base_offset=-1, log_append_time=None,
                           log_start_offset=-1, record_errors=(), error_message=None)
    kept = tuple(t for t in request.topic_data if t.name in ok)
    if not kept:
        return build(resp_cls, responses=errors)
    response = await inner(header, _replace(request, topic_data=kept), conn)
    return _replace(response, responses=tuple(response.responses) + errors)


async def fetch(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    if request.replica_id >= 0:
        ok = {t.topic for t in request.topics} if h.cluster(conn, Op.CLUSTER_ACTION, "Fetch") else set()
    else:
        ok = h.allowed(conn, Op.READ, RT.TOPIC, (t.topic for t in request.topics), "Fetch")
    denied = {t.topic: [p.partition for p in t.partitions] for t in request.topics if t.topic not in ok}
    resp_cls = response_class_for(request)
    kept = tuple(t for t in request.topics if t.topic in ok)
    if denied and not kept and getattr(request, "session_epoch", -1) <= 0:
        return build(resp_cls, error_code=ErrorCode.none, session_id=0, responses=_fetch_errors(resp_cls, denied))
    response = await inner(header, _replace(request, topics=kept) if denied else request, conn)
    if response.error_code != ErrorCode.none:
        return response
    if request.replica_id < 0:
        # an incremental fetch also answers partitions of its session the request did not name
        # (or named and was refused: taking them out of the request leaves them in the session):
        # their topics need Read too, so an ACL removed mid-session stops the data, as in Kafka
        unnamed = {t.topic for t in response.responses} - ok - set(denied)
        revoked = (unnamed - h.allowed(conn, Op.READ, RT.TOPIC, unnamed, "Fetch")) | set(denied)
        if any(t.topic in revoked for t in response.responses):
            denied.update({t.topic: [p.partition_index for p in t.partitions]
                           for t in response.responses if t.topic in revoked and t.topic not in denied})
            response = _replace(response, responses=tuple(t for t in response.responses if t.topic not in revoked))
    if not denied:
        return response
    return _replace(response, responses=tuple(response.responses) + _fetch_errors(resp_cls, denied))


def _fetch_errors(resp_cls: type, denied: dict[str, list[int]]) -> tuple[Any, ...]:
    return _topic_errors(resp_cls, "FetchableTopicResponse", "PartitionData", "topic", "partitions",
                         "partition_index", denied, TOPIC_DENIED, high_watermark=-1, last_stable_offset=-1,
                         log_start_offset=-1, aborted_transactions=None, preferred_read_replica=-1, records=None)


def _per_topic_rule(op: AclOperation, topics_field: str, name_field: str, parts_field: str, part_index: str,
                    topic_entity: str, part_entity: str, resp_topics: str, resp_name: str, resp_parts: str,
                    resp_index: str, cluster_bypass: AclOperation | None = None,
                    **extra: Any) -> Callable[..., Awaitable[Any]]:
    """A rule: ``op`` on each topic of ``request.<topics_field>``; refused ones answered per
    partition with TOPIC_AUTHORIZATION_FAILED and ``extra`` fields."""
    async def rule(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
        api = api_name(header.api_key)
        topics = getattr(request, topics_field)
        if cluster_bypass is not None and h.cluster(conn, cluster_bypass, api, log_if_denied=False):
            return await inner(header, request, conn)
        ok = h.allowed(conn, op, RT.TOPIC, (getattr(t, name_field) for t in topics), api)
        denied = {getattr(t, name_field): [_index(p, part_index) for p in getattr(t, parts_field)]
                  for t in topics if getattr(t, name_field) not in ok}
        if not denied:
            return await inner(header, request, conn)
        resp_cls = response_class_for(request)
        errors = _topic_errors(resp_cls, topic_entity, part_entity, resp_name, resp_parts, resp_index, denied,
                               TOPIC_DENIED, **extra)
        kept = tuple(t for t in topics if getattr(t, name_field) in ok)
        if not kept:
            return build(resp_cls, **{resp_topics: errors}, error_code=ErrorCode.none)
        response = await inner(header, _replace(request, **{topics_field: kept}), conn)
        return _replace(response, **{resp_topics: tuple(getattr(response, resp_topics)) + errors})
    return rule


def _index(p: Any, field: str) -> int:
    return int(p) if isinstance(p, int) else int(getattr(p, field))


list_offsets = _per_topic_rule(Op.DESCRIBE, "topics", "name", "partitions", "partition_index",
                               "ListOffsetsTopicResponse", "ListOffsetsPartitionResponse", "topics", "name",
                               "partitions", "partition_index", timestamp=-1, offset=-1, leader_epoch=-1)
offset_for_leader_epoch = _per_topic_rule(Op.DESCRIBE, "topics", "topic", "partitions", "partition",
                                          "OffsetForLeaderTopicResult", "EpochEndOffset", "topics", "topic",
                                          "partitions", "partition", cluster_bypass=Op.CLUSTER_ACTION,
                                          leader_epoch=-1, end_offset=-1)
delete_records = _per_topic_rule(Op.DELETE, "topics", "name", "partitions", "partition_index",
                                 "DeleteRecordsTopicResult", "DeleteRecordsPartitionResult", "topics", "name",
                                 "partitions", "partition_index", low_watermark=-1)
describe_producers = _per_topic_rule(Op.READ, "topics", "name", "partition_indexes", "", "TopicResponse",
                                     "PartitionResponse", "topics", "name", "partitions", "partition_index",
                                     error_message=None, active_producers=())


# ----------------------------------------------------------------------------- metadata
async def metadata(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    v = header.api_version
    all_topics = request.topics is None or (v == 0 and not request.topics)
    denied: dict[str, int] = {}
    requested: set[str] = set()
    if not all_topics:
        names = list(dict.fromkeys(t.name for t in request.topics if t.name is not None))
        requested = set(names)
        describable = h.allowed(conn, Op.DESCRIBE, RT.TOPIC, names, "Metadata")
        denied = {n: TOPIC_DENIED for n in names if n not in describable}
        auto = getattr(request, "allow_auto_topic_creation", True)
        missing = [n for n in names if n in describable and not h.topic_exists(n)]
        if auto and missing and not h.cluster(conn, Op.CREATE, "Metadata", log_if_denied=False):
            creatable = h.allowed(conn, Op.CREATE, RT.TOPIC, missing, "Metadata")
            denied.update((n, TOPIC_DENIED) for n in missing if n not in creatable)
        # (v0: an empty list asks for every topic; the answer is cut to the requested ones below)
        request = _replace(request, topics=tuple(t for t in request.topics if t.name not in denied))
    frames = await inner(header, request, conn)
    response = _decoded(header, frames)
    resp_cls = type(response)
    topic_cls = entity(resp_cls, "MetadataResponseTopic")
    topic_ops = bool(getattr(request, "include_topic_authorized_operations", False))
    topics = []
    for t in response.topics:
        if t.name in denied or (not all_topics and t.name not in requested):
            continue
        if all_topics and not h.authorize(conn, Op.DESCRIBE, RT.TOPIC, t.name, "Metadata", log_if_denied=False):
            continue
        if topic_ops and t.error_code == ErrorCode.none:
            t = _replace(t, topic_authorized_operations=h.operations(conn, RT.TOPIC, t.name))
        topics.append(t)
    topics.extend(build(topic_cls, error_code=e, name=n, topic_id=None, is_internal=False, partitions=(),
                        topic_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED) for n, e in denied.items())
    changes: dict[str, Any] = {"topics": tuple(topics)}
    if getattr(request, "include_cluster_authorized_operations", False):
        changes["cluster_authorized_operations"] = h.operations(conn, RT.CLUSTER, CLUSTER_NAME)
    return _replace(response, **changes)


def _decoded(header: Any, frames: Any) -> Any:
    """A handler's answer as an entity: Metadata answers ready frames (size-prefixed)."""
    if not isinstance(frames, list):
        return frames
    data = b"".join(bytes(f) for f in frames)
    return decode_response(memoryview(data)[4:], header.api_key, header.api_version)[1]


async def describe_cluster(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    response = await inner(header, request, conn)
    if getattr(request, "include_cluster_authorized_operations", False):
        response = _replace(response, cluster_authorized_operations=h.operations(conn, RT.CLUSTER, CLUSTER_NAME))
    return response


# ----------------------------------------------------------------------------- admin
def _per_name_rule(op: AclOperation, rtype: ResourceType, items_field: str, name_of: Callable[[Any], str],
                   result_entity: str, results_field: str, result_name: str, error: int,
                   cluster_bypass: AclOperation | None = None, **extra: Any) -> Callable[..., Awaitable[Any]]:
    """A rule: ``op`` on the resource each item of ``request.<items_field>`` names; refused
    items answered with ``error``."""
    async def rule(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
        api = api_name(header.api_key)
        items = getattr(request, items_field)
        if cluster_bypass is not None and h.cluster(conn, cluster_bypass, api, log_if_denied=False):
            return await inner(header, request, conn)
        ok = h.allowed(conn, op, rtype, (name_of(i) for i in items), api)
        denied = [name_of(i) for i in items if name_of(i) not in ok]
        if not denied:
            return await inner(header, request, conn)
        resp_cls = response_class_for(request)
        result_cls = entity(resp_cls, result_entity)
        errors = tuple(build(result_cls, **{result_name: n}, error_code=error, **extra) for n in denied)
        kept = tuple(i for i in items if name_of(i) in ok)
        if not kept:
            return build(resp_cls, **{results_field: errors})
        response = await inner(header, _replace(request, **{items_field: kept}), conn)
        return _replace(response, **{results_field: tuple(getattr(response, results_field)) + errors})
    return rule


create_topics = _per_name_rule(Op.CREATE, RT.TOPIC, "topics", lambda t: t.name, "CreatableTopicResult", "topics",
                               "name", TOPIC_DENIED, cluster_bypass=Op.CREATE, topic_id=None,
                               error_message="Authorization failed.", topic_config_error_code=TOPIC_DENIED,
                               num_partitions=-1, replication_factor=-1, configs=None)
delete_topics = _per_name_rule(Op.DELETE, RT.TOPIC, "topic_names", str, "DeletableTopicResult", "responses", "name",
                               TOPIC_DENIED, error_message="Authorization failed.")
create_partitions = _per_name_rule(Op.ALTER, RT.TOPIC, "topics", lambda t: t.name, "CreatePartitionsTopicResult",
                                   "results", "name", TOPIC_DENIED, error_message="Authorization failed.")
delete_groups = _per_name_rule(Op.DELETE, RT.GROUP, "groups_names", str, "DeletableGroupResult", "results",
                               "group_id", GROUP_DENIED)


def _configs_rule(op: AclOperation, result_entity: str, results_field: str, **extra: Any
                  ) -> Callable[..., Awaitable[Any]]:
    """Describe/Alter/IncrementalAlterConfigs: ``op`` on the topic, or on the cluster for a
    broker (logger) resource."""
    async def rule(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
        api = api_name(header.api_key)

        def ok(r: Any) -> bool:
            if int(r.resource_type) == CONFIG_TOPIC:
                return h.authorize(conn, op, RT.TOPIC, r.resource_name, api)
            return h.cluster(conn, op, api)
        verdicts = [(r, ok(r)) for r in request.resources]
        if all(v for _, v in verdicts):
            return await inner(header, request, conn)
        resp_cls = response_class_for(request)
        result_cls = entity(resp_cls, result_entity)
        errors = tuple(build(result_cls, error_code=TOPIC_DENIED if int(r.resource_type) == CONFIG_TOPIC
                             else CLUSTER_DENIED, error_message="Authorization failed.",
                             resource_type=r.resource_type, resource_name=r.resource_name, **extra)
                       for r, v in verdicts if not v)
        kept = tuple(r for r, v in verdicts if v)
        if not kept:
            return build(resp_cls, **{results_field: errors})
        response = await inner(header, _replace(request, resources=kept), conn)
        return _replace(response, **{results_field: tuple(getattr(response, results_field)) + errors})
    return rule


describe_configs = _configs_rule(Op.DESCRIBE_CONFIGS, "DescribeConfigsResult", "results", configs=())
alter_configs = _configs_rule(Op.ALTER_CONFIGS, "AlterConfigsResourceResponse", "responses")


def _cluster_rule(op: AclOperation, deny: Callable[[Any, Any], Any]) -> Callable[..., Awaitable[Any]]:
    """A rule: ``op`` on the cluster for the whole request; ``deny(request, resp_cls)`` builds
    the CLUSTER_AUTHORIZATION_FAILED answer (None: close the connection with a log line)."""
    async def rule(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
        if h.cluster(conn, op, api_name(header.api_key)):
            return await inner(header, request, conn)
        answer = deny(request, header)
        if answer is None:
            raise CloseConnection(f"{api_name(header.api_key)} refused: CLUSTER_AUTHORIZATION_FAILED "
                                  f"for {conn.principal}")
        return answer
    return rule


def _in_project(module: str, cls: str, **fields: Any) -> Callable[[Any, Any], Any]:
    def deny(request: Any, header: Any) -> Any:
        import importlib
        return getattr(importlib.import_module(f"kafkalike.protocol.{module}"), cls)(
            error_code=int(CLUSTER_DENIED), **fields)
    return deny


def _kio(**fields: Any) -> Callable[[Any, Any], Any]:
    def deny(request: Any, header: Any) -> Any:
        return build(response_class_for(request), error_code=CLUSTER_DENIED, **fields)
    return deny


def _txn_markers_denied(request: Any, header: Any) -> Any:
    resp_cls = response_class_for(request)
    marker_cls, topic_cls = entity(resp_cls, "WritableTxnMarkerResult"), entity(resp_cls, "WritableTxnMarkerTopicResult")
    part_cls = entity(resp_cls, "WritableTxnMarkerPartitionResult")
    return build(resp_cls, markers=tuple(build(marker_cls, producer_id=m.producer_id, topics=tuple(
        build(topic_cls, name=t.name, partitions=tuple(build(part_cls, partition_index=i, error_code=CLUSTER_DENIED)
                                                       for i in t.partition_indexes)) for t in m.topics))
        for m in request.markers))


def _scram_alter_denied(request: Any, header: Any) -> Any:
    resp_cls = response_class_for(request)
    result_cls = entity(resp_cls, "AlterUserScramCredentialsResult")
    users = dict.fromkeys([d.name for d in request.deletions] + [u.name for u in request.upsertions])
    return build(resp_cls, results=tuple(build(result_cls, user=u, error_code=CLUSTER_DENIED,
                                               error_message="Cluster authorization failed.") for u in users))


def _alter_client_quotas_denied(request: Any, header: Any) -> Any:
    resp_cls = response_class_for(request)
    entry_cls, ent_cls = entity(resp_cls, "EntryData"), entity(resp_cls, "EntityData")
    return build(resp_cls, entries=tuple(build(
        entry_cls, error_code=CLUSTER_DENIED, error_message="Cluster authorization failed.",
        entity=tuple(build(ent_cls, entity_type=d.entity_type, entity_name=d.entity_name) for d in e.entity))
        for e in request.entries))


describe_client_quotas = _cluster_rule(Op.DESCRIBE_CONFIGS, _kio(error_message="Cluster authorization failed.",
                                                                 entries=None))
alter_client_quotas = _cluster_rule(Op.ALTER_CONFIGS, _alter_client_quotas_denied)
leader_and_isr = _cluster_rule(Op.CLUSTER_ACTION, _in_project("leader_and_isr", "LeaderAndIsrResponse",
                                                              partition_errors=(), topics=()))
stop_replica = _cluster_rule(Op.CLUSTER_ACTION, _in_project("stop_replica", "StopReplicaResponse", partition_errors=()))
update_metadata = _cluster_rule(Op.CLUSTER_ACTION, _in_project("update_metadata", "UpdateMetadataResponse"))
controlled_shutdown = _cluster_rule(Op.CLUSTER_ACTION, _in_project("controlled_shutdown", "ControlledShutdownResponse",
                                                                   remaining_partitions=()))
write_txn_markers = _cluster_rule(Op.CLUSTER_ACTION, _txn_markers_denied)
elect_leaders = _cluster_rule(Op.ALTER, _kio(replica_election_results=()))
alter_partition_reassignments = _cluster_rule(Op.ALTER, _kio(error_message="Cluster authorization failed.",
                                                             responses=()))
list_partition_reassignments = _cluster_rule(Op.DESCRIBE, _kio(error_message="Cluster authorization failed.",
                                                               topics=()))
describe_log_dirs = _cluster_rule(Op.DESCRIBE, _kio(results=()))


def _alter_replica_log_dirs_denied(request: Any, header: Any) -> Any:
    resp_cls = response_class_for(request)
    topic_cls, part_cls = entity(resp_cls, "AlterReplicaLogDirTopicResult"), entity(resp_cls, "AlterReplicaLogDirPartitionResult")
    parts: dict[str, list[int]] = {}
    for d in request.dirs:
        for t in d.topics:
            parts.setdefault(t.name, []).extend(t.partitions)
    return build(resp_cls, throttle_time_ms=0, results=tuple(build(topic_cls, topic_name=t, partitions=tuple(
        build(part_cls, partition_index=p, error_code=CLUSTER_DENIED) for p in ps)) for t, ps in parts.items()))


alter_replica_log_dirs = _cluster_rule(Op.ALTER, _alter_replica_log_dirs_denied)  # Kafka: ALTER on CLUSTER
describe_user_scram_credentials = _cluster_rule(Op.DESCRIBE, _kio(error_message="Cluster authorization failed.",
                                                                  results=()))
alter_user_scram_credentials = _cluster_rule(Op.ALTER, _scram_alter_denied)


# ----------------------------------------------------------------------------- groups
async def find_coordinator(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    txn = int(getattr(request, "key_type", 0)) == 1
    rtype, error = (RT.TRANSACTIONAL_ID, TXN_DENIED) if txn else (RT.GROUP, GROUP_DENIED)
    if h.authorize(conn, Op.DESCRIBE, rtype, request.key, "FindCoordinator"):
        return await inner(header, request, conn)
    return build(response_class_for(request), error_code=error, error_message="Authorization failed.",
                 node_id=-1, host="", port=-1)


def _group_rule(op: AclOperation, **fields: Any) -> Callable[..., Awaitable[Any]]:
    """JoinGroup, SyncGroup, Heartbeat, LeaveGroup: ``op`` on the group, else one
    GROUP_AUTHORIZATION_FAILED answer."""
    async def rule(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
        if h.authorize(conn, op, RT.GROUP, request.group_id, api_name(header.api_key)):
            return await inner(header, request, conn)
        return build(response_class_for(request), error_code=GROUP_DENIED, **fields)
    return rule


join_group = _group_rule(Op.READ, generation_id=-1, protocol_type=None, protocol_name=None, leader="",
                         member_id="", members=())
sync_group = _group_rule(Op.READ, protocol_type=None, protocol_name=None, assignment=b"")
heartbeat = _group_rule(Op.READ)
leave_group = _group_rule(Op.READ, members=())
add_offsets_to_txn_group = _group_rule(Op.READ)


def _group_and_topics_rule(group_op: AclOperation, topic_op: AclOperation, topic_entity: str, part_entity: str,
                           **extra: Any) -> Callable[..., Awaitable[Any]]:
    """OffsetCommit, TxnOffsetCommit, OffsetDelete: ``group_op`` on the group (all partitions
    GROUP_AUTHORIZATION_FAILED), ``topic_op`` on each topic (TOPIC_AUTHORIZATION_FAILED)."""
    async def rule(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
        api = api_name(header.api_key)
        resp_cls = response_class_for(request)
        every = {t.name: [int(p.partition_index) for p in t.partitions] for t in request.topics}
        if not h.authorize(conn, group_op, RT.GROUP, request.group_id, api):
            return build(resp_cls, error_code=GROUP_DENIED, topics=_topic_errors(
                resp_cls, topic_entity, part_entity, "name", "partitions", "partition_index", every, GROUP_DENIED,
                **extra))
        ok = h.allowed(conn, topic_op, RT.TOPIC, every, api)
        denied = {t: ps for t, ps in every.items() if t not in ok}
        if not denied:
            return await inner(header, request, conn)
        errors = _topic_errors(resp_cls, topic_entity, part_entity, "name", "partitions", "partition_index",
                               denied, TOPIC_DENIED, **extra)
        kept = tuple(t for t in request.topics if t.name in ok)
        if not kept:
            return build(resp_cls, error_code=ErrorCode.none, topics=errors)
        response = await inner(header, _replace(request, topics=kept), conn)
        return _replace(response, topics=tuple(response.topics) + errors)
    return rule


offset_commit = _group_and_topics_rule(Op.READ, Op.READ, "OffsetCommitResponseTopic", "OffsetCommitResponsePartition")
txn_offset_commit_group = _group_and_topics_rule(Op.READ, Op.READ, "TxnOffsetCommitResponseTopic",
                                                 "TxnOffsetCommitResponsePartition")
offset_delete = _group_and_topics_rule(Op.DELETE, Op.READ, "OffsetDeleteResponseTopic", "OffsetDeleteResponsePartition")


async def offset_fetch(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    resp_cls = response_class_for(request)
    extra = dict(committed_offset=-1, committed_leader_epoch=-1, metadata=None)
    if not h.authorize(conn, Op.DESCRIBE, RT.GROUP, request.group_id, "OffsetFetch"):
        if header.api_version >= 2:
            return build(resp_cls, error_code=GROUP_DENIED, topics=())
        every = {t.name: list(t.partition_indexes) for t in request.topics or ()}
        return build(resp_cls, topics=_topic_errors(resp_cls, "OffsetFetchResponseTopic", "OffsetFetchResponsePartition",
                                                    "name", "partitions", "partition_index", every, GROUP_DENIED,
                                                    **extra))
    if request.topics is None:  # every committed topic: keep the describable ones
        response = await inner(header, request, conn)
        ok = h.allowed(conn, Op.DESCRIBE, RT.TOPIC, (t.name for t in response.topics), "OffsetFetch")
        return _replace(response, topics=tuple(t for t in response.topics if t.name in ok))
    ok = h.allowed(conn, Op.DESCRIBE, RT.TOPIC, (t.name for t in request.topics), "OffsetFetch")
    denied = {t.name: list(t.partition_indexes) for t in request.topics if t.name not in ok}
    if not denied:
        return await inner(header, request, conn)
    errors = _topic_errors(resp_cls, "OffsetFetchResponseTopic", "OffsetFetchResponsePartition", "name", "partitions",
                           "partition_index", denied, TOPIC_DENIED, **extra)
    kept = tuple(t for t in request.topics if t.name in ok)
    if not kept:
        return build(resp_cls, error_code=ErrorCode.none, topics=errors)
    response = await inner(header, _replace(request, topics=kept), conn)
    return _replace(response, topics=tuple(response.topics) + errors)


async def describe_groups(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    resp_cls = response_class_for(request)
    group_cls = entity(resp_cls, "DescribedGroup")
    ok = h.allowed(conn, Op.DESCRIBE, RT.GROUP, request.groups, "DescribeGroups")
    kept = tuple(g for g in request.groups if g in ok)
    response = await inner(header, _replace(request, groups=kept), conn) if kept else build(resp_cls, groups=())
    groups = list(response.groups)
    if getattr(request, "include_authorized_operations", False):
        groups = [_replace(g, authorized_operations=h.operations(conn, RT.GROUP, g.group_id)) for g in groups]
    groups += [build(group_cls, error_code=GROUP_DENIED, group_id=g, group_state="", protocol_type="",
                     protocol_data="", members=(), authorized_operations=AUTHORIZED_OPERATIONS_OMITTED)
               for g in request.groups if g not in ok]
    return _replace(response, groups=tuple(groups))


async def list_groups(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    response = await inner(header, request, conn)
    if h.cluster(conn, Op.DESCRIBE, "ListGroups", log_if_denied=False):
        return response
    return _replace(response, groups=tuple(
        g for g in response.groups
        if h.authorize(conn, Op.DESCRIBE, RT.GROUP, g.group_id, "ListGroups", log_if_denied=False)))


# ----------------------------------------------------------------------------- transactions
async def init_producer_id(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    txn = request.transactional_id
    if txn is not None:
        allowed, error = h.authorize(conn, Op.WRITE, RT.TRANSACTIONAL_ID, txn, "InitProducerId"), TXN_DENIED
    else:
        allowed = (h.cluster(conn, Op.IDEMPOTENT_WRITE, "InitProducerId", log_if_denied=False)
                   or h.may_write_some_topic(conn))
        error = CLUSTER_DENIED
    if allowed:
        return await inner(header, request, conn)
    return build(response_class_for(request), error_code=error, producer_id=-1, producer_epoch=-1)


def _txn_id(request: Any) -> str:
    return str(getattr(request, "transactional_id", None) or getattr(request, "v3_and_below_transactional_id", ""))


def _txn_rule(then: Callable[..., Awaitable[Any]] | None, deny: Callable[[Any, Any], Any]
              ) -> Callable[..., Awaitable[Any]]:
    """Write on the request's transactional id first (else ``deny``), then ``then``'s rule."""
    async def rule(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
        if not h.authorize(conn, Op.WRITE, RT.TRANSACTIONAL_ID, _txn_id(request), api_name(header.api_key)):
            return deny(request, header)
        if then is None:
            return await inner(header, request, conn)
        return await then(h, header, request, conn, inner)
    return rule


def _add_partitions_topics(request: Any) -> Any:
    return getattr(request, "topics", None) if hasattr(request, "topics") else request.v3_and_below_topics


def _add_partitions_response(request: Any, errors: dict[tuple[str, int], int]) -> Any:
    resp_cls = response_class_for(request)
    topic_cls, part_cls = entity(resp_cls, "AddPartitionsToTxnTopicResult"), entity(resp_cls, "AddPartitionsToTxnPartitionResult")
    by_topic: dict[str, list[Any]] = {}
    for (t, p), e in errors.items():
        by_topic.setdefault(t, []).append(build(part_cls, partition_index=p, partition_error_code=e, error_code=e))
    results = tuple(build(topic_cls, name=t, results_by_partition=tuple(ps)) for t, ps in by_topic.items())
    return build(resp_cls, results=results, results_by_topic_v3_and_below=results)


async def _add_partitions_topics_rule(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    topics = _add_partitions_topics(request)
    ok = h.allowed(conn, Op.WRITE, RT.TOPIC, (t.name for t in topics), "AddPartitionsToTxn")
    if all(t.name in ok for t in topics):
        return await inner(header, request, conn)
    return _add_partitions_response(request, {
        (t.name, int(p)): TOPIC_DENIED if t.name not in ok else ErrorCode.operation_not_attempted
        for t in topics for p in t.partitions})


def _add_partitions_denied(request: Any, header: Any) -> Any:
    return _add_partitions_response(request, {(t.name, int(p)): TXN_DENIED for t in _add_partitions_topics(request)
                                              for p in t.partitions})


def _error_only(error: int) -> Callable[[Any, Any], Any]:
    def deny(request: Any, header: Any) -> Any:
        return build(response_class_for(request), error_code=error)
    return deny


def _txn_offset_commit_denied(request: Any, header: Any) -> Any:
    resp_cls = response_class_for(request)
    return build(resp_cls, topics=_topic_errors(
        resp_cls, "TxnOffsetCommitResponseTopic", "TxnOffsetCommitResponsePartition", "name", "partitions",
        "partition_index", {t.name: [int(p.partition_index) for p in t.partitions] for t in request.topics}, TXN_DENIED))


_add_partitions_to_txn_v3 = _txn_rule(_add_partitions_topics_rule, _add_partitions_denied)


async def add_partitions_to_txn(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    """v0-3 (producers): Write on the id and each topic. v4+ (KIP-890 verification, sent by
    brokers): ClusterAction on the cluster, else CLUSTER_AUTHORIZATION_FAILED (Kafka 3.9)."""
    if header.api_version < 4:
        return await _add_partitions_to_txn_v3(h, header, request, conn, inner)
    if h.cluster(conn, Op.CLUSTER_ACTION, "AddPartitionsToTxn"):
        return await inner(header, request, conn)
    return build(response_class_for(request), error_code=CLUSTER_DENIED, results_by_transaction=())
add_offsets_to_txn = _txn_rule(add_offsets_to_txn_group, _error_only(TXN_DENIED))
end_txn = _txn_rule(None, _error_only(TXN_DENIED))
txn_offset_commit = _txn_rule(txn_offset_commit_group, _txn_offset_commit_denied)


async def describe_transactions(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    resp_cls = response_class_for(request)
    state_cls = entity(resp_cls, "TransactionState")
    ok = h.allowed(conn, Op.DESCRIBE, RT.TRANSACTIONAL_ID, request.transactional_ids, "DescribeTransactions")
    kept = tuple(i for i in request.transactional_ids if i in ok)
    response = (await inner(header, _replace(request, transactional_ids=kept), conn) if kept
                else build(resp_cls, transaction_states=()))
    denied = tuple(build(state_cls, error_code=TXN_DENIED, transactional_id=i, transaction_state="",
                         transaction_timeout=datetime.timedelta(0),
                         transaction_start_time=datetime.datetime.fromtimestamp(0, datetime.timezone.utc),
                         producer_id=-1, producer_epoch=-1, topics=())
                   for i in request.transactional_ids if i not in ok)
    return _replace(response, transaction_states=tuple(response.transaction_states) + denied)


async def list_transactions(h: AuthHelper, header: Any, request: Any, conn: Any, inner: Handler) -> Any:
    response = await inner(header, request, conn)
    return _replace(response, transaction_states=tuple(
        s for s in response.transaction_states
        if h.authorize(conn, Op.DESCRIBE, RT.TRANSACTIONAL_ID, s.transactional_id, "ListTransactions",
                       log_if_denied=False)))


RULES: dict[int, Callable[..., Awaitable[Any]]] = {
    ApiKey.PRODUCE: produce,
    ApiKey.FETCH: fetch,
    ApiKey.LIST_OFFSETS: list_offsets,
    ApiKey.METADATA: metadata,
    ApiKey.LEADER_AND_ISR: leader_and_isr,
    ApiKey.STOP_REPLICA: stop_replica,
    ApiKey.UPDATE_METADATA: update_metadata,
    ApiKey.CONTROLLED_SHUTDOWN: controlled_shutdown,
    ApiKey.OFFSET_COMMIT: offset_commit,
    ApiKey.OFFSET_FETCH: offset_fetch,
    ApiKey.FIND_COORDINATOR: find_coordinator,
    ApiKey.JOIN_GROUP: join_group,
    ApiKey.HEARTBEAT: heartbeat,
    ApiKey.LEAVE_GROUP: leave_group,
    ApiKey.SYNC_GROUP: sync_group,
    ApiKey.DESCRIBE_GROUPS: describe_groups,
    ApiKey.LIST_GROUPS: list_groups,
    ApiKey.CREATE_TOPICS: create_topics,
    ApiKey.DELETE_TOPICS: delete_topics,
    ApiKey.DELETE_RECORDS: delete_records,
    ApiKey.INIT_PRODUCER_ID: init_producer_id,
    ApiKey.OFFSET_FOR_LEADER_EPOCH: offset_for_leader_epoch,
    ApiKey.ADD_PARTITIONS_TO_TXN: add_partitions_to_txn,
    ApiKey.ADD_OFFSETS_TO_TXN: add_offsets_to_txn,
    ApiKey.END_TXN: end_txn,
    ApiKey.WRITE_TXN_MARKERS: write_txn_markers,
    ApiKey.TXN_OFFSET_COMMIT: txn_offset_commit,
    ApiKey.DESCRIBE_CONFIGS: describe_configs,
    ApiKey.ALTER_CONFIGS: alter_configs,
    ApiKey.DESCRIBE_LOG_DIRS: describe_log_dirs,
    ApiKey.ALTER_REPLICA_LOG_DIRS: alter_replica_log_dirs,
    ApiKey.CREATE_PARTITIONS: create_partitions,
    ApiKey.DELETE_GROUPS: delete_groups,
    ApiKey.ELECT_LEADERS: elect_leaders,
    ApiKey.INCREMENTAL_ALTER_CONFIGS: alter_configs,
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: alter_partition_reassignments,
    ApiKey.LIST_PARTITION_REASSIGNMENTS: list_partition_reassignments,
    ApiKey.OFFSET_DELETE: offset_delete,
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: describe_user_scram_credentials,
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: alter_user_scram_credentials,
    ApiKey.DESCRIBE_CLUSTER: describe_cluster,
    ApiKey.DESCRIBE_PRODUCERS: describe_producers,
    ApiKey.DESCRIBE_TRANSACTIONS: describe_transactions,
    ApiKey.LIST_TRANSACTIONS: list_transactions,
    ApiKey.DESCRIBE_CLIENT_QUOTAS: describe_client_quotas,
    ApiKey.ALTER_CLIENT_QUOTAS: alter_client_quotas,
}
"""api key -> its rule (every served API except ApiVersions, SaslHandshake, SaslAuthenticate
and the ACL APIs)."""

__all__ = ["AuthHelper", "RULES", "install"]
