"""Leader election algorithms and replica placement behave as Kafka's."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.controller.leader_election import (
    LeaderElection,
    controlled_shutdown_leader,
    offline_partition_leader,
    preferred_replica_leader,
    reassign_partition_leader,
)
from kafkalike.controller.replica_assignment import AssignmentError, assign_replicas_to_brokers


def test_offline_election_picks_first_live_isr_replica_in_assignment_order() -> None:
    assert offline_partition_leader([1, 2, 3], isr=[3, 2], live={2, 3}, unclean_leader_election_enable=False) \
        == LeaderElection(2, (3, 2))


def test_offline_election_without_live_isr_member_stays_offline_unless_unclean() -> None:
    assert offline_partition_leader([1, 2, 3], isr=[1], live={2, 3}, unclean_leader_election_enable=False) is None
    e = offline_partition_leader([1, 2, 3], isr=[1], live={3, 2}, unclean_leader_election_enable=True)
    assert e == LeaderElection(2, (2,), unclean=True)


def test_offline_election_drops_dead_replicas_from_isr() -> None:
    assert offline_partition_leader([1, 2, 3], isr=[1, 2, 3], live={1, 3}, unclean_leader_election_enable=False) \
        == LeaderElection(1, (1, 3))


def test_preferred_election_only_moves_to_first_assigned_replica() -> None:
    assert preferred_replica_leader([2, 1, 3], isr=[1, 2, 3], live={1, 2, 3}) == LeaderElection(2, (1, 2, 3))
    assert preferred_replica_leader([2, 1, 3], isr=[1, 3], live={1, 2, 3}) is None
    assert preferred_replica_leader([2, 1, 3], isr=[1, 2, 3], live={1, 3}) is None


def test_controlled_shutdown_election_skips_and_removes_shutting_down_brokers() -> None:
    e = controlled_shutdown_leader([1, 2, 3], isr=[1, 2, 3], live={1, 2, 3}, shutting_down={1})
    assert e == LeaderElection(2, (2, 3))
    assert controlled_shutdown_leader([1, 2], isr=[1], live={1, 2}, shutting_down={1}) is None


def test_reassign_election_uses_target_replica_order() -> None:
    assert reassign_partition_leader([4, 5, 1], isr=[1, 4, 5], live={1, 4, 5}) == LeaderElection(4, (1, 4, 5))


def test_assignment_matches_kafka_fixed_start_layout() -> None:
    """With a fixed start index the layout equals the one in Kafka's AdminUtilsTest.testReplicaAssignment."""
    got = assign_replicas_to_brokers(10, 3, [0, 1, 2, 3, 4], fixed_start_index=0)
    assert got == {
        0: [0, 1, 2], 1: [1, 2, 3], 2: [2, 3, 4], 3: [3, 4, 0], 4: [4, 0, 1],
        5: [0, 2, 3], 6: [1, 3, 4], 7: [2, 4, 0], 8: [3, 0, 1], 9: [4, 1, 2],
    }


@settings(max_examples=200, deadline=None)
@given(n_brokers=st.integers(1, 9), data=st.data())
def test_assignment_places_distinct_replicas_and_balances_leaders(n_brokers: int, data: st.DataObject) -> None:
    """Every partition gets RF distinct live brokers; leaders differ in count by at most one."""
    brokers = list(range(1, n_brokers + 1))
    rf = data.draw(st.integers(1, n_brokers))
    parts = data.draw(st.integers(1, 60))
    got = assign_replicas_to_brokers(parts, rf, brokers, rng=random.Random(data.draw(st.integers(0, 99))))
    assert sorted(got) == list(range(parts))
    for replicas in got.values():
        assert len(replicas) == rf and len(set(replicas)) == rf and set(replicas) <= set(brokers)
    leaders = [r[0] for r in got.values()]
    counts = [leaders.count(b) for b in brokers]
    assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize("args, error, message", [
    ((0, 1, [1]), "INVALID_PARTITIONS", r"^Number of partitions must be larger than 0\.$"),
    ((1, 0, [1]), "INVALID_REPLICATION_FACTOR", r"^Replication factor must be larger than 0\.$"),
    ((1, 3, [1]), "INVALID_REPLICATION_FACTOR", r"^Replication factor: 3 larger than available brokers: 1\.$"),
    ((1, 1, []), "BROKER_NOT_AVAILABLE", r"^No brokers are registered\.$"),
])
def test_impossible_assignments_raise_kafka_errors(args: tuple, error: str, message: str) -> None:
    with pytest.raises(AssignmentError, match=message) as e:
        assign_replicas_to_brokers(*args)
    assert e.value.error == error
