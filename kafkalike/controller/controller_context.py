"""ControllerContext: everything the active controller knows, and the partition and replica
states with Kafka's valid transitions.

The controller reads all of it from ZooKeeper when it takes over and then keeps it current
by processing events one at a time (DESIGN.md decision 3); nothing else mutates it.

Source: Kafka core, kafka.controller.ControllerContext, PartitionStateMachine and
ReplicaStateMachine (Kafka 3.x): the state names and their valid previous states.
"""

from __future__ import annotations

import enum

import attrs

from kafkalike.coordination.zk_data import LeaderIsrAndControllerEpoch, TopicPartition


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


class IllegalStateTransition(RuntimeError):
    """A state machine was asked for a transition Kafka does not allow (a controller bug)."""


@attrs.define
class ControllerContext:
    """The active controller's view of the cluster (Kafka's ControllerContext).

    live_brokers: broker id -> broker epoch (czxid of /brokers/ids/<id>).
    assignments: partition -> replica list (first = preferred leader).
    leadership: partition -> LeaderIsrAndControllerEpoch (with its zk_version) as last read
    or written.
    """

    epoch: int = 0
    epoch_zk_version: int = 0
    live_brokers: dict[int, int] = attrs.Factory(dict)
    shutting_down: set[int] = attrs.Factory(set)
    topic_ids: dict[str, str] = attrs.Factory(dict)
    assignments: dict[TopicPartition, list[int]] = attrs.Factory(dict)
    leadership: dict[TopicPartition, LeaderIsrAndControllerEpoch] = attrs.Factory(dict)
    partition_states: dict[TopicPartition, PartitionState] = attrs.Factory(dict)
    replica_states: dict[tuple[TopicPartition, int], ReplicaState] = attrs.Factory(dict)
    topics_to_delete: set[str] = attrs.Factory(set)

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
        return sorted(tp for tp in self.assignments if tp.topic == topic)

    def partitions_on_broker(self, broker_id: int) -> list[TopicPartition]:
        return sorted(tp for tp, replicas in self.assignments.items() if broker_id in replicas)

    def partitions_led_by(self, broker_id: int) -> list[TopicPartition]:
        return sorted(tp for tp, li in self.leadership.items() if li.leader == broker_id)

    def is_replica_online(self, tp: TopicPartition, replica: int) -> bool:
        return replica in self.live_brokers and self.replica_state(tp, replica) is not RS.OfflineReplica
