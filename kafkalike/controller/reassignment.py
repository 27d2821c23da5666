"""Partition reassignment (KIP-455) pieces the controller uses that need no controller state:
validating a target replica list, and the AlterPartitionReassignments (api key 45) /
ListPartitionReassignments (api key 46) requests and answers.

The reassignment itself (RS = ORS + TRS, adding/removing replicas in the topic znode, waiting
for TRS to join the ISR, moving the leader, deleting the removed replicas) is the
controller's event handling: KafkaController._on_partition_reassignment, after Kafka's
KafkaController.onPartitionReassignment (ZooKeeper mode). The replica-set arithmetic
(ORS, TRS, reassignTo) lives on ``zk_data.ReplicaAssignment``.

Source: Kafka 3.9 core, kafka.controller.KafkaController (validateReplicas,
processApiPartitionReassignment, processListPartitionReassignments) and kafka.server.KafkaApis
(handleAlterPartitionReassignmentsRequest, handleListPartitionReassignmentsRequest); Kafka
protocol guide, AlterPartitionReassignments v0 and ListPartitionReassignments v0.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs
import trio

from kafkalike.coordination.zk_data import ReplicaAssignment, TopicPartition
from kafkalike.protocol.entities import build
from kafkalike.protocol.errors import ErrorCode

#: the message Kafka's ApiError carries for these codes (Errors.java default messages)
NO_REASSIGNMENT_MESSAGE = "No partition reassignment is in progress."
UNKNOWN_PARTITION_MESSAGE = "The partition does not exist."

#: (error code, message or None) for one partition
PartitionResult = tuple[ErrorCode, str | None]


@attrs.define(eq=False)
class AlterReassignmentsReply:
    """Where the controller's ApiPartitionReassignment event puts its answer: a top-level
    ``error`` (NOT_CONTROLLER from a broker that is not the controller) or per-partition
    ``results`` {partition: (NONE | INVALID_REPLICA_ASSIGNMENT | UNKNOWN_TOPIC_OR_PARTITION |
    NO_REASSIGNMENT_IN_PROGRESS | UNKNOWN_SERVER_ERROR, message)}."""

    done: trio.Event = attrs.Factory(trio.Event)
    error: ErrorCode = ErrorCode.none
    results: dict[TopicPartition, PartitionResult] = attrs.Factory(dict)

    def fail(self, error: ErrorCode) -> None:
        """Answer ``error`` at the top level (and wake the waiter)."""
        self.error = error
        self.done.set()


@attrs.define(eq=False)
class ListReassignmentsReply:
    """Where the ListPartitionReassignments event puts its answer: a top-level ``error``
    (NOT_CONTROLLER) or {partition: its full assignment (RS, AR, RR)} for the partitions
    being reassigned."""

    done: trio.Event = attrs.Factory(trio.Event)
    error: ErrorCode = ErrorCode.none
    results: dict[TopicPartition, ReplicaAssignment] = attrs.Factory(dict)

    def fail(self, error: ErrorCode) -> None:
        """Answer ``error`` at the top level (and wake the waiter)."""
        self.error = error
        self.done.set()


def _scala_seq(replicas: Sequence[int]) -> str:
    return ", ".join(str(r) for r in replicas)


def validate_replicas(replicas: Sequence[int], current: ReplicaAssignment,
                      live_brokers: Collection[int]) -> PartitionResult | None:
    """Check a target replica list as Kafka's KafkaController.validateReplicas: None when it is
    acceptable, else (INVALID_REPLICA_ASSIGNMENT, Kafka's message) for an empty list,
    duplicate ids, a negative id, or new replicas (those not already assigned) on brokers that
    are not alive. ``current``: the partition's full assignment now (empty for an unknown
    partition: then every target replica must be alive, and the caller answers
    UNKNOWN_TOPIC_OR_PARTITION)."""
    if not replicas:
        return (ErrorCode.invalid_replica_assignment,
                "Empty replica list specified in partition reassignment.")
    if len(set(replicas)) != len(replicas):
        return (ErrorCode.invalid_replica_assignment,
                f"Duplicate replica ids in partition reassignment replica list: [{_scala_seq(replicas)}]")
    if any(r < 0 for r in replicas):
        return (ErrorCode.invalid_replica_assignment, f"Invalid broker id in replica list: [{_scala_seq(replicas)}]")
    adding = current.reassign_to(replicas).adding_replicas
    if not set(adding) <= set(live_brokers):
        return (ErrorCode.invalid_replica_assignment,
                f"Replica assignment has brokers that are not alive. Replica list: [{_scala_seq(adding)}], "
                f"live broker list: [{_scala_seq(sorted(live_brokers))}]")
    return None


def build_reassignment(current: ReplicaAssignment, target: Sequence[int] | None) -> ReplicaAssignment | None:
    """The full assignment a request asks for (Kafka's maybeBuildReassignment): a partition
    being reassigned moves to ``target`` (None: back to its original replicas, a
    cancellation); one that is not moves to ``target``, or None when ``target`` is None
    (nothing to cancel: NO_REASSIGNMENT_IN_PROGRESS)."""
    if current.is_being_reassigned:
        return current.reassign_to(current.origin_replicas if target is None else target)
    return None if target is None else current.reassign_to(target)


def alter_request_targets(request: Any) -> dict[TopicPartition, tuple[int, ...] | None]:
    """{partition: target replicas, or None to cancel} from an AlterPartitionReassignments
    request (kio entity)."""
    return {TopicPartition(str(t.name), int(p.partition_index)):
            None if p.replicas is None else tuple(int(r) for r in p.replicas)
            for t in request.topics for p in t.partitions}


def alter_response(error: ErrorCode, results: Mapping[TopicPartition, PartitionResult]) -> Any:
    """AlterPartitionReassignmentsResponse v0: top-level ``error`` (then no per-partition
    answers, as Kafka's Right(error) branch) or one answer per partition, grouped by topic."""
    from kio.schema.alter_partition_reassignments.v0 import response as r

    if error != ErrorCode.none:
        return build(r.AlterPartitionReassignmentsResponse,
            error_code=error, error_message=None, responses=())
    by_topic: dict[str, list[Any]] = {}
    for tp, (code, message) in sorted(results.items()):
        by_topic.setdefault(tp.topic, []).append(build(r.ReassignablePartitionResponse,
            partition_index=tp.partition, error_code=code, error_message=message))
    return build(r.AlterPartitionReassignmentsResponse,
        error_code=ErrorCode.none, error_message=None,
        responses=tuple(build(r.ReassignableTopicResponse, name=t, partitions=tuple(ps)) for t, ps in by_topic.items()))


def list_request_partitions(request: Any) -> frozenset[TopicPartition] | None:
    """The partitions a ListPartitionReassignments request asks about (None: all)."""
    if request.topics is None:
        return None
    return frozenset(TopicPartition(str(t.name), int(p)) for t in request.topics for p in t.partition_indexes)


def list_response(error: ErrorCode, results: Mapping[TopicPartition, ReplicaAssignment]) -> Any:
    """ListPartitionReassignmentsResponse v0: top-level ``error``, or each partition being
    reassigned with its replicas (RS), adding (AR) and removing (RR) replicas."""
    from kio.schema.list_partition_reassignments.v0 import response as r

    by_topic: dict[str, list[Any]] = {}
    for tp, ra in sorted(results.items()):
        by_topic.setdefault(tp.topic, []).append(build(r.OngoingPartitionReassignment,
            partition_index=tp.partition, replicas=tuple(ra.replicas), adding_replicas=tuple(ra.adding_replicas),
            removing_replicas=tuple(ra.removing_replicas)))
    return build(r.ListPartitionReassignmentsResponse,
        error_code=error, error_message=None,
        topics=tuple(build(r.OngoingTopicReassignment, name=t, partitions=tuple(ps)) for t, ps in by_topic.items()))
