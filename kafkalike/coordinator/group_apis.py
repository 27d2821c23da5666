"""The group APIs' request handlers: kio request entity -> GroupCoordinator call -> kio
response entity of the request's version (the group part of Kafka's KafkaApis:
handleFindCoordinatorRequest, handleJoinGroupRequest, handleSyncGroupRequest,
handleHeartbeatRequest, handleLeaveGroupRequest, handleOffsetCommitRequest,
handleOffsetFetchRequest, handleListGroupsRequest, handleDescribeGroupsRequest,
handleDeleteGroupsRequest, handleOffsetDeleteRequest, handleTxnOffsetCommitRequest).

Versions served (kafkalike.protocol.api_keys.SUPPORTED_APIS): FindCoordinator v0-v3,
JoinGroup v0-v7, SyncGroup v0-v5, Heartbeat v0-v4, LeaveGroup v0-v4, OffsetCommit v2-v8,
OffsetFetch v1-v7, ListGroups v0-v4, DescribeGroups v0-v5, DeleteGroups v0-v2, OffsetDelete
v0, TxnOffsetCommit v0-v3. One handler
serves all versions of an API: ``build`` drops the fields a version lacks. Version rules
applied here: JoinGroup v4+ requires a known member id (KIP-394); JoinGroup v0 has no
rebalance timeout (the session timeout is used); OffsetCommit v2-v4 retention_time != -1
sets an explicit expire timestamp; OffsetCommit for a partition the broker's metadata does
not know gets UNKNOWN_TOPIC_OR_PARTITION without reaching the coordinator (Kafka's KafkaApis);
OffsetFetch v1 carries errors per partition only; OffsetFetch v7 with require_stable answers
UNSTABLE_OFFSET_COMMIT (offset -1) for a requested partition with transactional offsets
awaiting their marker (KIP-447).
The client host is stored as Kafka shows it, ``/<ip>``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kafkalike.coordinator.group_metadata import OffsetAndMetadata
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import response_class
from kafkalike.protocol.entities import AUTHORIZED_OPERATIONS_OMITTED, build, duration_ms, entity
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition

if TYPE_CHECKING:
    from kafkalike.coordinator.group_coordinator import GroupCoordinator


def _host(conn: Any) -> str:
    peer = getattr(conn, "peer", None)
    return f"/{peer[0]}" if peer else ""


def _partition_errors_response(cls: Any, topic_cls: Any, part_cls: Any, errors: dict[TopicPartition, ErrorCode]) -> Any:
    """An OffsetCommit / TxnOffsetCommit response (``cls``, its topic and partition entity
    classes): one error code per partition, grouped by topic in ``errors``' order."""
    by_topic: dict[str, list[Any]] = {}
    for tp, error in errors.items():
        by_topic.setdefault(tp.topic, []).append(build(part_cls, partition_index=tp.partition, error_code=error))
    return build(cls, topics=tuple(build(topic_cls, name=name, partitions=tuple(parts))
                                    for name, parts in by_topic.items()))


class GroupApis:
    """Handlers bound to one GroupCoordinator (registered with KafkaApis by ``register``)."""

    def __init__(self, coordinator: "GroupCoordinator") -> None:
        self.coordinator = coordinator

    async def find_coordinator(self, header: Any, request: Any, conn: Any) -> Any:
        cls = response_class(header.api_key, header.api_version)
        result = await self.coordinator.find_coordinator(
            request.key, int(getattr(request, "key_type", 0)), conn.listener_name)
        return build(cls, error_code=result.error,
                      error_message=result.message if result.error != ErrorCode.none else None,
                      node_id=result.node_id, host=result.host, port=result.port)

    async def join_group(self, header: Any, request: Any, conn: Any) -> Any:
        v = header.api_version
        cls = response_class(header.api_key, v)
        member_cls = entity(cls, "JoinGroupResponseMember")
        session = duration_ms(request.session_timeout)
        rebalance = duration_ms(getattr(request, "rebalance_timeout", session)) if v >= 1 else session
        result = await self.coordinator.join_group(
            request.group_id, request.member_id or "", getattr(request, "group_instance_id", None),
            v >= 4, header.client_id or "", _host(conn), rebalance, session, request.protocol_type,
            [(p.name, bytes(p.metadata)) for p in request.protocols])
        members = tuple(build(member_cls, member_id=mid, group_instance_id=iid, metadata=meta)
                        for mid, iid, meta in result.members)
        protocol_name = result.protocol_name
        if protocol_name is None and v < 7:
            protocol_name = ""
        return build(cls, error_code=result.error, generation_id=result.generation_id,
                      protocol_type=result.protocol_type, protocol_name=protocol_name,
                      leader=result.leader_id, member_id=result.member_id, members=members)

    async def sync_group(self, header: Any, request: Any, conn: Any) -> Any:
        cls = response_class(header.api_key, header.api_version)
        result = await self.coordinator.sync_group(
            request.group_id, int(request.generation_id), request.member_id,
            getattr(request, "protocol_type", None), getattr(request, "protocol_name", None),
            getattr(request, "group_instance_id", None),
            {a.member_id: bytes(a.assignment) for a in request.assignments})
        return build(cls, error_code=result.error, protocol_type=result.protocol_type,
                      protocol_name=result.protocol_name, assignment=result.assignment)

    async def heartbeat(self, header: Any, request: Any, conn: Any) -> Any:
        cls = response_class(header.api_key, header.api_version)
        error = self.coordinator.heartbeat(request.group_id, request.member_id,
                                           getattr(request, "group_instance_id", None),
                                           int(request.generation_id))
        return build(cls, error_code=error)

    async def leave_group(self, header: Any, request: Any, conn: Any) -> Any:
        v = header.api_version
        cls = response_class(header.api_key, v)
        if v >= 3:
            leaving = [(m.member_id, m.group_instance_id) for m in request.members]
        else:
            leaving = [(request.member_id, None)]
        top, results = self.coordinator.leave_group(request.group_id, leaving)
        if v < 3:
            return build(cls, error_code=top if top != ErrorCode.none else results[0][2])
        member_cls = entity(cls, "MemberResponse")
        return build(cls, error_code=top, members=tuple(
            build(member_cls, member_id=m, group_instance_id=i, error_code=e) for m, i, e in results))

    def _requested_offsets(self, topics: Any, now: int, expire: int | None
                           ) -> tuple[dict[TopicPartition, OffsetAndMetadata], dict[TopicPartition, ErrorCode]]:
        """The offsets an OffsetCommit / TxnOffsetCommit request's ``topics`` ask to commit, as
        OffsetAndMetadata committed at ``now`` (ms) expiring at ``expire`` (ms, None: never; a
        null metadata as ""), and UNKNOWN_TOPIC_OR_PARTITION for each partition the broker's
        metadata does not know (Kafka's KafkaApis answers those without the coordinator)."""
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        unknown: dict[TopicPartition, ErrorCode] = {}
        for t in topics:
            for p in t.partitions:
                tp = TopicPartition(t.name, int(p.partition_index))
                if not self.coordinator.partition_exists(tp):
                    unknown[tp] = ErrorCode.unknown_topic_or_partition
                    continue
                offsets[tp] = OffsetAndMetadata(
                    int(p.committed_offset), int(getattr(p, "committed_leader_epoch", -1)),
                    p.committed_metadata or "", now, expire)
        return offsets, unknown

    async def offset_commit(self, header: Any, request: Any, conn: Any) -> Any:
        v = header.api_version
        cls = response_class(header.api_key, v)
        topic_cls = entity(cls, "OffsetCommitResponseTopic")
        part_cls = entity(cls, "OffsetCommitResponsePartition")
        now = int(time.time() * 1000)
        retention = duration_ms(getattr(request, "retention_time", -1)) if v <= 4 else -1
        expire = now + retention if retention >= 0 else None
        offsets, unknown = self._requested_offsets(request.topics, now, expire)
        errors = await self.coordinator.commit_offsets(
            request.group_id, request.member_id, getattr(request, "group_instance_id", None),
            int(request.generation_id_or_member_epoch), offsets) if offsets else {}
        errors = {**unknown, **errors}
        return _partition_errors_response(cls, topic_cls, part_cls, errors)

    async def offset_fetch(self, header: Any, request: Any, conn: Any) -> Any:
        v = header.api_version
        cls = response_class(header.api_key, v)
        topic_cls = entity(cls, "OffsetFetchResponseTopic")
        part_cls = entity(cls, "OffsetFetchResponsePartition")
        wanted = None if request.topics is None else [
            TopicPartition(t.name, int(i)) for t in request.topics for i in t.partition_indexes]
        error, offsets = self.coordinator.fetch_offsets(request.group_id, wanted)
        part_error = error if v < 2 else ErrorCode.none
        unstable = (self.coordinator.unstable_partitions(request.group_id, wanted)
                    if wanted is not None and getattr(request, "require_stable", False)
                    and error == ErrorCode.none else set())
        by_topic: dict[str, list[Any]] = {}
        for tp, om in offsets.items():
            if tp in unstable:
                om = None
            by_topic.setdefault(tp.topic, []).append(build(
                part_cls, partition_index=tp.partition,
                committed_offset=om.offset if om is not None else -1,
                committed_leader_epoch=om.leader_epoch if om is not None else -1,
                metadata=om.metadata if om is not None else "",
                error_code=ErrorCode.unstable_offset_commit if tp in unstable else part_error))
        return build(cls, error_code=error, topics=tuple(
            build(topic_cls, name=name, partitions=tuple(parts)) for name, parts in by_topic.items()))

    async def txn_offset_commit(self, header: Any, request: Any, conn: Any) -> Any:
        """TxnOffsetCommit v0-v3 (KIP-98; KIP-447 adds generation_id, member_id and
        group_instance_id in v3; Kafka's KafkaApis.handleTxnOffsetCommitRequest): partitions
        the broker's metadata does not know get UNKNOWN_TOPIC_OR_PARTITION without reaching
        the coordinator; the rest go to GroupCoordinator.txn_commit_offsets with commit
        timestamp now, a null metadata as "". Errors per partition."""
        cls = response_class(header.api_key, header.api_version)
        topic_cls = entity(cls, "TxnOffsetCommitResponseTopic")
        part_cls = entity(cls, "TxnOffsetCommitResponsePartition")
        now = int(time.time() * 1000)
        offsets, errors = self._requested_offsets(request.topics, now, None)
        if offsets:
            errors.update(await self.coordinator.txn_commit_offsets(
                request.group_id, request.transactional_id, int(request.producer_id),
                int(request.producer_epoch), getattr(request, "member_id", "") or "",
                getattr(request, "group_instance_id", None), int(getattr(request, "generation_id", -1)),
                offsets))
        return _partition_errors_response(cls, topic_cls, part_cls, errors)

    async def list_groups(self, header: Any, request: Any, conn: Any) -> Any:
        cls = response_class(header.api_key, header.api_version)
        group_cls = entity(cls, "ListedGroup")
        error, groups = self.coordinator.list_groups(tuple(getattr(request, "states_filter", ()) or ()))
        return build(cls, error_code=error, groups=tuple(
            build(group_cls, group_id=g, protocol_type=t, group_state=s) for g, t, s in groups))

    async def describe_groups(self, header: Any, request: Any, conn: Any) -> Any:
        cls = response_class(header.api_key, header.api_version)
        group_cls = entity(cls, "DescribedGroup")
        member_cls = entity(cls, "DescribedGroupMember")
        out = []
        for gid in request.groups:
            error, summary = self.coordinator.describe_group(gid)
            out.append(build(
                group_cls, error_code=error, group_id=gid, group_state=summary.state,
                protocol_type=summary.protocol_type, protocol_data=summary.protocol,
                members=tuple(build(member_cls, member_id=m.member_id, group_instance_id=m.group_instance_id,
                                     client_id=m.client_id, client_host=m.client_host,
                                     member_metadata=m.metadata, member_assignment=m.assignment)
                              for m in summary.members),
                authorized_operations=AUTHORIZED_OPERATIONS_OMITTED))
        return build(cls, groups=tuple(out))

    async def delete_groups(self, header: Any, request: Any, conn: Any) -> Any:
        cls = response_class(header.api_key, header.api_version)
        result_cls = entity(cls, "DeletableGroupResult")
        results = await self.coordinator.delete_groups(list(request.groups_names))
        return build(cls, results=tuple(build(result_cls, group_id=g, error_code=e)
                                         for g, e in results.items()))

    async def offset_delete(self, header: Any, request: Any, conn: Any) -> Any:
        """OffsetDelete v0 (KIP-496; Kafka's KafkaApis.handleOffsetDeleteRequest): partitions
        the broker's metadata does not know answer UNKNOWN_TOPIC_OR_PARTITION without reaching
        the coordinator; the rest go to GroupCoordinator.delete_offsets. A group error is
        answered at top level with no topics (Kafka's getErrorResponse)."""
        cls = response_class(header.api_key, header.api_version)
        topic_cls = entity(cls, "OffsetDeleteResponseTopic")
        part_cls = entity(cls, "OffsetDeleteResponsePartition")
        errors: dict[TopicPartition, ErrorCode] = {}
        known: list[TopicPartition] = []
        for t in request.topics:
            for p in t.partitions:
                tp = TopicPartition(t.name, int(p.partition_index))
                if self.coordinator.partition_exists(tp):
                    known.append(tp)
                else:
                    errors[tp] = ErrorCode.unknown_topic_or_partition
        group_error, deleted = await self.coordinator.delete_offsets(request.group_id, known)
        if group_error != ErrorCode.none:
            return build(cls, error_code=group_error, topics=())
        errors.update(deleted)
        by_topic: dict[str, list[Any]] = {}
        for tp, error in errors.items():
            by_topic.setdefault(tp.topic, []).append(
                build(part_cls, partition_index=tp.partition, error_code=error))
        return build(cls, error_code=ErrorCode.none, topics=tuple(
            build(topic_cls, name=name, partitions=tuple(parts)) for name, parts in by_topic.items()))


def register(apis: Any, coordinator: "GroupCoordinator") -> GroupApis:
    """Route the twelve group APIs of ``apis`` (KafkaApis) to ``coordinator``."""
    handlers = GroupApis(coordinator)
    apis.register(ApiKey.FIND_COORDINATOR, handlers.find_coordinator)
    apis.register(ApiKey.JOIN_GROUP, handlers.join_group)
    apis.register(ApiKey.SYNC_GROUP, handlers.sync_group)
    apis.register(ApiKey.HEARTBEAT, handlers.heartbeat)
    apis.register(ApiKey.LEAVE_GROUP, handlers.leave_group)
    apis.register(ApiKey.OFFSET_COMMIT, handlers.offset_commit)
    apis.register(ApiKey.OFFSET_FETCH, handlers.offset_fetch)
    apis.register(ApiKey.LIST_GROUPS, handlers.list_groups)
    apis.register(ApiKey.DESCRIBE_GROUPS, handlers.describe_groups)
    apis.register(ApiKey.DELETE_GROUPS, handlers.delete_groups)
    apis.register(ApiKey.OFFSET_DELETE, handlers.offset_delete)
    apis.register(ApiKey.TXN_OFFSET_COMMIT, handlers.txn_offset_commit)
    return handlers
