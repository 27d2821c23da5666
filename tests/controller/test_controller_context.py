"""ControllerContext enforces Kafka's partition and replica state transitions."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.controller.controller_context import (
    VALID_PREVIOUS_PARTITION_STATES,
    VALID_PREVIOUS_REPLICA_STATES,
    ControllerContext,
    IllegalStateTransition,
    PartitionState,
    ReplicaState,
    TopicPartition,
)

TP = TopicPartition("t", 0)


def test_partition_lifecycle_follows_kafka() -> None:
    """New -> Online -> Offline -> Online -> Offline -> NonExistent is a legal path."""
    ctx = ControllerContext()
    for s in ["NewPartition", "OnlinePartition", "OfflinePartition", "OnlinePartition",
              "OfflinePartition", "NonExistentPartition"]:
        ctx.move_partition(TP, PartitionState[s])
    assert ctx.partition_state(TP) is PartitionState.NonExistentPartition
    assert TP not in ctx.partition_states


def test_online_partition_cannot_be_deleted_directly() -> None:
    ctx = ControllerContext()
    ctx.move_partition(TP, PartitionState.NewPartition)
    ctx.move_partition(TP, PartitionState.OnlinePartition)
    with pytest.raises(IllegalStateTransition, match=r"^partition t-0: OnlinePartition -> NonExistentPartition$"):
        ctx.move_partition(TP, PartitionState.NonExistentPartition)


def test_replica_deletion_path() -> None:
    ctx = ControllerContext()
    for s in ["NewReplica", "OnlineReplica", "OfflineReplica", "ReplicaDeletionStarted",
              "ReplicaDeletionSuccessful", "NonExistentReplica"]:
        ctx.move_replica(TP, 2, ReplicaState[s])
    with pytest.raises(IllegalStateTransition, match=r"^replica 2 of t-0: NonExistentReplica -> OnlineReplica$"):
        ctx.move_replica(TP, 2, ReplicaState.OnlineReplica)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(ReplicaState)), max_size=12))
def test_replica_state_machine_never_reaches_a_state_by_a_forbidden_edge(path: list[ReplicaState]) -> None:
    """Any sequence of requests either succeeds along allowed edges or is refused unchanged."""
    ctx = ControllerContext()
    for target in path:
        before = ctx.replica_state(TP, 1)
        try:
            ctx.move_replica(TP, 1, target)
        except IllegalStateTransition:
            assert ctx.replica_state(TP, 1) is before
            assert before not in VALID_PREVIOUS_REPLICA_STATES[target]
        else:
            assert before in VALID_PREVIOUS_REPLICA_STATES[target]
            assert ctx.replica_state(TP, 1) is target


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(PartitionState)), max_size=12))
def test_partition_state_machine_never_reaches_a_state_by_a_forbidden_edge(path: list[PartitionState]) -> None:
    ctx = ControllerContext()
    for target in path:
        before = ctx.partition_state(TP)
        try:
            ctx.move_partition(TP, target)
        except IllegalStateTransition:
            assert ctx.partition_state(TP) is before
        else:
            assert before in VALID_PREVIOUS_PARTITION_STATES[target]
