"""ControllerContext: everything the active controller knows, and the partition and replica
states with Kafka's valid transitions.

The controller reads all of it from ZooKeeper when it takes over and then keeps it current
by processing events one at a time (docs/design.md decision 3); nothing else mutates it.

Source: Kafka core, kafka.controller.ControllerContext, PartitionStateMachine and
ReplicaStateMachine (Kafka 3.x): the state names and their valid previous states.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import attrs

from kafkalike.coordination.zk_data import (
    BrokerRegistration,
    EndPoint,
    LeaderIsrAndControllerEpoch,
    ReplicaAssignment,
    TopicPartition,
)


class PartitionState(enum.Enum):
    """Kafka's partition states as the controller tracks them."""

    NonExistentPartition = 0
    NewPartition = 1
    OnlinePartition = 2
    OfflinePartition = 3


class ReplicaState(enum.Enum):
    """Kafka's replica states as the controller tracks them."""

    NonExistentReplica = 0
    NewReplica = 1
    OnlineReplica = 2
    OfflineReplica = 3
    ReplicaDeletionStarted = 4
    ReplicaDeletionSuccessful = 5
    ReplicaDeletionIneligible = 6


PS, RS = PartitionState, ReplicaState
T = TypeVar("T")

#: sort key for TopicPartitions, (topic, partition): the order attrs' comparisons give, ~10x
#: faster (attrs builds two tuples per comparison: sorting 10,000 took ~1 s of a busy loop)
tp_order = operator.attrgetter("topic", "partition")

#: how many partitions (or replicas) the controller's bulk work -- creating and deleting topics --
#: hands to a state machine at a time, going back to the event loop in between. A state machine
#: call does its per-partition Python work (checks, state records, request entries, log lines,
#: ZooKeeper ops) in one event-loop step between its ZooKeeper round trips, ~50-150 us a partition
#: here, so 10,000 partitions in one call held the broker's loop for 1-3 s; 250 keeps a step near
#: 40 ms. Kafka's controller does the whole set in one call on its own thread (onNewPartitionCreation,
#: onTopicDeletion), with one LeaderAndIsr per broker; kafkalike sends one per chunk.
STATE_CHANGE_CHUNK = 250


def chunks(items: Sequence[T], size: int | None = None) -> Iterator[list[T]]:
    """``items`` in consecutive lists of at most ``size`` (default STATE_CHANGE_CHUNK, read at
    call time); nothing for an empty sequence."""
    n = size or STATE_CHANGE_CHUNK
    for i in range(0, len(items), n):
        yield list(items[i:i + n])


def topic_chunks(topics: Sequence[str], partitions_per_topic: Callable[[str], int],
                 size: int | None = None) -> Iterator[list[str]]:
    """``topics`` in consecutive lists whose partitions add up to about ``size`` (default
    STATE_CHANGE_CHUNK): a list closes once it reaches ``size`` partitions, so a topic is never
    split and a topic with more partitions than ``size`` is a list of its own."""
    n = size or STATE_CHANGE_CHUNK
    chunk: list[str] = []
    count = 0
    for topic in topics:
        chunk.append(topic)
        count += max(1, partitions_per_topic(topic))
        if count >= n:
            yield chunk
            chunk, count = [], 0
    if chunk:
        yield chunk


VALID_PREVIOUS_PARTITION_STATES: dict[PartitionState, frozenset[PartitionState]] = {
    PS.NewPartition: frozenset({PS.NonExistentPartition}),
    PS.OnlinePartition: frozenset({PS.NewPartition, PS.OnlinePartition, PS.OfflinePartition}),
    PS.OfflinePartition: frozenset({PS.NewPartition, PS.OnlinePartition, PS.OfflinePartition}),
    PS.NonExistentPartition: frozenset({PS.OfflinePartition}),
}

VALID_PREVIOUS_REPLICA_STATES: dict[ReplicaState, frozenset[ReplicaState]] = {
    RS.NewReplica: frozenset({RS.NonExistentReplica}),
    RS.OnlineReplica: frozenset({RS.NewReplica, RS.OnlineReplica, RS.OfflineReplica,
                                 RS.ReplicaDeletionIneligible}),
    RS.OfflineReplica: frozenset({RS.NewReplica, RS.OnlineReplica, RS.OfflineReplica,
                                  RS.ReplicaDeletionIneligible}),
    RS.ReplicaDeletionStarted: frozenset({RS.OfflineReplica}),
    RS.ReplicaDeletionSuccessful: frozenset({RS.ReplicaDeletionStarted}),
    RS.ReplicaDeletionIneligible: frozenset({RS.OfflineReplica, RS.ReplicaDeletionStarted}),
    RS.NonExistentReplica: frozenset({RS.ReplicaDeletionSuccessful}),
}


class PartitionAssignments(dict[TopicPartition, list[int]]):
    """partition -> replica list, plus an index topic -> its partitions kept in step with every
    write (Kafka's ControllerContext keeps its assignments per topic,
    ``partitionAssignments: Map[topic, Map[partition, ReplicaAssignment]]``), so that the
    partitions of one topic are found without scanning every partition of the cluster: with
    10,000 topics a scan per topic made topic deletion quadratic."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        #: topic -> {partition index: None} (insertion-ordered set)
        self.by_topic: dict[str, dict[int, None]] = {}
        self.update(*args, **kwargs)

    def __setitem__(self, tp: TopicPartition, replicas: list[int]) -> None:
        super().__setitem__(tp, replicas)
        self.by_topic.setdefault(tp.topic, {})[tp.partition] = None

    def __delitem__(self, tp: TopicPartition) -> None:
        super().__delitem__(tp)
        self._unindex(tp)

    def _unindex(self, tp: TopicPartition) -> None:
        parts = self.by_topic.get(tp.topic)
        if parts is not None:
            parts.pop(tp.partition, None)
            if not parts:
                del self.by_topic[tp.topic]

    _MISSING: Any = object()

    def pop(self, tp: TopicPartition, default: Any = _MISSING) -> Any:
        if tp in self:
            value = super().pop(tp)
            self._unindex(tp)
            return value
        if default is self._MISSING:
            raise KeyError(tp)
        return default

    def setdefault(self, tp: TopicPartition, default: Any = None) -> Any:
        if tp not in self:
            self[tp] = default
        return super().__getitem__(tp)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for tp, replicas in dict(*args, **kwargs).items():
            self[tp] = replicas

    def clear(self) -> None:
        super().clear()
        self.by_topic.clear()

    def popitem(self) -> tuple[TopicPartition, list[int]]:
        tp, replicas = super().popitem()
        self._unindex(tp)
        return tp, replicas


def _assignments_converter(value: Any) -> PartitionAssignments:
    return value if isinstance(value, PartitionAssignments) else PartitionAssignments(value)


class IllegalStateTransition(RuntimeError):
    """A state machine was asked for a transition Kafka does not allow (a controller bug)."""


@attrs.define
class ControllerContext:
    """The active controller's view of the cluster (Kafka's ControllerContext).

    live_brokers: broker id -> broker epoch (czxid of /brokers/ids/<id>).
    assignments: partition -> replica list (first = preferred leader).
    leadership: partition -> LeaderIsrAndControllerEpoch (with its zk_version) as last read
    or written.
    broker_info: broker id -> its registration (endpoints, rack) from /brokers/ids/<id>.
    reassigning: partition -> (adding, removing) replicas of an in-flight reassignment.
    listener_name: the listener the controller reaches brokers on (inter.broker.listener.name).
    """

    epoch: int = 0
    epoch_zk_version: int = 0
    live_brokers: dict[int, int] = attrs.Factory(dict)
    shutting_down: set[int] = attrs.Factory(set)
    topic_ids: dict[str, str] = attrs.Factory(dict)
    assignments: PartitionAssignments = attrs.field(factory=PartitionAssignments, converter=_assignments_converter)
    leadership: dict[TopicPartition, LeaderIsrAndControllerEpoch] = attrs.Factory(dict)
    partition_states: dict[TopicPartition, PartitionState] = attrs.Factory(dict)
    replica_states: dict[tuple[TopicPartition, int], ReplicaState] = attrs.Factory(dict)
    topics_to_delete: set[str] = attrs.Factory(set)
    topics_ineligible_for_deletion: set[str] = attrs.Factory(set)
    topics_with_deletion_started: set[str] = attrs.Factory(set)
    broker_info: dict[int, BrokerRegistration] = attrs.Factory(dict)
    reassigning: dict[TopicPartition, tuple[tuple[int, ...], tuple[int, ...]]] = attrs.Factory(dict)
    listener_name: str | None = None

    def partition_state(self, tp: TopicPartition) -> PartitionState:
        return self.partition_states.get(tp, PS.NonExistentPartition)

    def replica_state(self, tp: TopicPartition, replica: int) -> ReplicaState:
        return self.replica_states.get((tp, replica), RS.NonExistentReplica)

    def move_partition(self, tp: TopicPartition, target: PartitionState) -> None:
        """Record a partition state change; raises IllegalStateTransition if Kafka forbids it."""
        current = self.partition_state(tp)
        if current not in VALID_PREVIOUS_PARTITION_STATES[target]:
            raise IllegalStateTransition(f"partition {tp}: {current.name} -> {target.name}")
        if target is PS.NonExistentPartition:
            self.partition_states.pop(tp, None)
        else:
            self.partition_states[tp] = target

    def move_replica(self, tp: TopicPartition, replica: int, target: ReplicaState) -> None:
        """Record a replica state change; raises IllegalStateTransition if Kafka forbids it."""
        current = self.replica_state(tp, replica)
        if current not in VALID_PREVIOUS_REPLICA_STATES[target]:
            raise IllegalStateTransition(f"replica {replica} of {tp}: {current.name} -> {target.name}")
        if target is RS.NonExistentReplica:
            self.replica_states.pop((tp, replica), None)
        else:
            self.replica_states[(tp, replica)] = target

    def partitions_of_topic(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions, sorted (from the per-topic index: no scan of the cluster)."""
        return [TopicPartition(topic, p) for p in sorted(self.assignments.by_topic.get(topic, ()))]

    def has_topic(self, topic: str) -> bool:
        """True if ``topic`` has at least one partition in the context."""
        return topic in self.assignments.by_topic

    def partitions_on_broker(self, broker_id: int) -> list[TopicPartition]:
        return sorted((tp for tp, replicas in self.assignments.items() if broker_id in replicas), key=tp_order)

    def partitions_led_by(self, broker_id: int) -> list[TopicPartition]:
        return sorted((tp for tp, li in self.leadership.items() if li.leader == broker_id), key=tp_order)

    def is_replica_online(self, tp: TopicPartition, replica: int, include_shutting_down: bool = True) -> bool:
        """True if ``replica``'s broker is registered (and, unless ``include_shutting_down``,
        not shutting down) and the replica is not marked offline (Kafka's isReplicaOnline)."""
        if replica not in self.live_brokers or (not include_shutting_down and replica in self.shutting_down):
            return False
        return self.replica_state(tp, replica) is not RS.OfflineReplica

    # ---- views used by the state machines and the request batch ----------------------------

    def live_or_shutting_down_broker_ids(self) -> set[int]:
        """Every registered broker, shutting down or not (Kafka's liveOrShuttingDownBrokerIds)."""
        return set(self.live_brokers)

    def live_broker_ids(self) -> set[int]:
        """Registered brokers that are not shutting down (Kafka's liveBrokerIds)."""
        return set(self.live_brokers) - self.shutting_down

    def full_assignment(self, tp: TopicPartition) -> ReplicaAssignment:
        """``tp``'s replicas plus the adding/removing replicas of an in-flight reassignment."""
        adding, removing = self.reassigning.get(tp, ((), ()))
        return ReplicaAssignment(tuple(self.assignments.get(tp, ())), adding, removing)

    def update_full_assignment(self, tp: TopicPartition, assignment: ReplicaAssignment,
                               reassigning: bool = False) -> None:
        """Set ``tp``'s replicas and adding/removing replicas (Kafka's
        updatePartitionFullReplicaAssignment). A partition already counted as being reassigned
        (or with ``reassigning``) keeps counting, even with no adding/removing left (a
        cancellation about to complete); others start counting when ``assignment`` has some."""
        self.assignments[tp] = list(assignment.replicas)
        if reassigning or tp in self.reassigning or assignment.is_being_reassigned:
            self.reassigning[tp] = (tuple(assignment.adding_replicas), tuple(assignment.removing_replicas))

    def inter_broker_endpoint(self, broker_id: int) -> EndPoint | None:
        """The endpoint the controller (and other brokers) reach ``broker_id`` on: the
        listener named ``listener_name`` if it has one, else its first endpoint."""
        reg = self.broker_info.get(broker_id)
        if reg is None or not reg.endpoints:
            return None
        if self.listener_name is not None:
            ep = reg.endpoint(self.listener_name)
            if ep is not None:
                return ep
        return reg.endpoints[0]

    def all_topics(self) -> set[str]:
        return set(self.assignments.by_topic)

    def replicas_on_brokers(self, broker_ids: set[int]) -> list[tuple[TopicPartition, int]]:
        """(partition, replica) for every replica hosted on one of ``broker_ids``."""
        return [(tp, r) for tp in sorted(self.assignments, key=tp_order) for r in self.assignments[tp]
                if r in broker_ids]

    def replicas_for_topic(self, topic: str) -> list[tuple[TopicPartition, int]]:
        return [(tp, r) for tp in self.partitions_of_topic(topic) for r in self.assignments[tp]]

    def offline_partition_count(self) -> int:
        """Partitions in OfflinePartition, or Online with no live leader (Kafka's
        OfflinePartitionsCount, excluding topics being deleted)."""
        n = 0
        for tp, state in self.partition_states.items():
            if tp.topic in self.topics_to_delete:
                continue
            li = self.leadership.get(tp)
            if state is PS.OfflinePartition or (state is PS.OnlinePartition and (li is None or li.leader not in self.live_brokers)):
                n += 1
        return n

    def remove_topic(self, topic: str) -> None:
        """Forget a deleted topic entirely."""
        self.remove_topics([topic])

    def remove_topics(self, topics: Iterable[str]) -> None:
        """Forget deleted topics entirely: one pass over the replica states for the whole
        batch (not one per topic: 10,000 deleted topics made that quadratic)."""
        topics = set(topics)
        if not topics:
            return
        for topic in topics:
            for tp in self.partitions_of_topic(topic):
                self.assignments.pop(tp, None)
                self.leadership.pop(tp, None)
                self.partition_states.pop(tp, None)
                self.reassigning.pop(tp, None)
            self.topic_ids.pop(topic, None)
        for key in [k for k in self.replica_states if k[0].topic in topics]:
            del self.replica_states[key]
        self.topics_to_delete -= topics
        self.topics_ineligible_for_deletion -= topics
        self.topics_with_deletion_started -= topics

    def reset(self) -> None:
        """Forget everything (a resigning controller; Kafka's ControllerContext reset)."""
        fresh = ControllerContext()
        for field in attrs.fields(ControllerContext):
            setattr(self, field.name, getattr(fresh, field.name))
