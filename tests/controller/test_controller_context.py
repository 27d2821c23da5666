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


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "pop", "del", "setdefault", "remove_topics"]),
                          st.sampled_from(["a", "b", "c"]), st.integers(0, 3)), max_size=40))
def test_assignments_topic_index_always_matches_the_partitions(ops: list[tuple[str, str, int]]) -> None:
    """Whatever sequence of writes and removals, the per-topic index (partitions_of_topic,
    all_topics, has_topic) lists exactly the partitions in the assignments (it
    replaced a scan of every partition per topic)."""
    ctx = ControllerContext()
    for op, topic, p in ops:
        tp = TopicPartition(topic, p)
        if op == "set":
            ctx.assignments[tp] = [1]
        elif op == "pop":
            ctx.assignments.pop(tp, None)
        elif op == "del" and tp in ctx.assignments:
            del ctx.assignments[tp]
        elif op == "setdefault":
            ctx.assignments.setdefault(tp, []).append(2)
        elif op == "remove_topics":
            ctx.replica_states[(tp, 1)] = ReplicaState.OnlineReplica
            ctx.remove_topics([topic])
            assert not any(k[0].topic == topic for k in ctx.replica_states)
        topics = {t.topic for t in ctx.assignments}
        assert ctx.all_topics() == topics
        for t in ["a", "b", "c"]:
            assert ctx.partitions_of_topic(t) == sorted(x for x in ctx.assignments if x.topic == t)
            assert ctx.has_topic(t) == (t in topics)
