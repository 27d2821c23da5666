"""Partition reassignment in KRaft mode (KIP-455 as Kafka 3.9's ReplicationControlManager does it).

The controller side runs on a ControllerState as the active controller runs it (records returned
by an operation are replayed, i.e. committed, before the next one): a reassignment first adds the
target replicas (PartitionChangeRecord with adding/removing replicas), the leader's AlterPartition
that brings them into the ISR completes it (the removed replicas dropped, the leader epoch bumped,
NEW_LEADER_ELECTED when the leader itself was removed), a cancel reverts it. A hypothesis test
mixes reassignments and cancels into the random operations of test_controller_replay: every
partition keeps Kafka's invariants and replaying the records gives the same state.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.client.messages import build_request
from kafkalike.kraft.controller_result import ControllerError
from kafkalike.kraft.quorum_controller import ControllerState
from kafkalike.kraft.replication_control_manager import PartitionRegistration
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from tests.kraft.test_controller_replay import CONFIG, _check_invariants, _Driver, _through_the_log, op


def _cluster(brokers: int = 4) -> _Driver:
    driver = _Driver()
    for b in range(1, brokers + 1):
        driver.run(("join", b))
    return driver


def _create(driver: _Driver, name: str, assignment: list[list[int]]) -> uuid.UUID:
    result = driver.state.replication.create_topics(build_request(ApiKey.CREATE_TOPICS, 7, topics=[{
        "name": name, "num_partitions": -1, "replication_factor": -1, "configs": [],
        "assignments": [{"partition_index": i, "broker_ids": r} for i, r in enumerate(assignment)]}]).topics, False)
    assert result.response[0].error == ErrorCode.none, result.response
    driver.commit(result.records)
    return driver.state.replication.topics_by_name[name]


def _part(driver: _Driver, name: str, pid: int = 0) -> PartitionRegistration:
    rc = driver.state.replication
    return rc.topics[rc.topics_by_name[name]].parts[pid]


def _reassign(driver: _Driver, *targets: tuple[str, int, list[int] | None]) -> list[tuple[str, int, ErrorCode, Any]]:
    result = driver.state.replication.alter_partition_reassignments(targets)
    driver.commit(result.records)
    return list(result.response)


def _alter_isr(driver: _Driver, name: str, isr: list[int], pid: int = 0) -> tuple[ErrorCode, Any]:
    """The leader's AlterPartition v3 to ``isr``; (error, new registration or None)."""
    s = driver.state
    part = _part(driver, name, pid)
    req = build_request(56, 3, broker_id=part.leader, broker_epoch=s.cluster.registrations[part.leader].epoch,
                        topics=[{"topic_id": s.replication.topics_by_name[name], "partitions": [{
                            "partition_index": pid, "leader_epoch": part.leader_epoch,
                            "partition_epoch": part.partition_epoch, "leader_recovery_state": 0,
                            "new_isr_with_epochs": [{"broker_id": r, "broker_epoch": -1} for r in isr]}]}])
    result = s.replication.alter_partition(req, 3)
    driver.commit(result.records)
    [(_tid, _pid, error, reg)] = result.response.partitions
    return error, reg


def test_a_reassignment_adds_the_targets_first_and_drops_the_removed_leader_once_the_isr_holds_them() -> None:
    d = _cluster()
    _create(d, "moving", [[1, 2, 3]])
    before = _part(d, "moving")
    assert _reassign(d, ("moving", 0, [2, 3, 4])) == [("moving", 0, ErrorCode.none, None)]

    adding = _part(d, "moving")
    change = d.records[-1]
    assert isinstance(change, mr.PartitionChangeRecord)
    # target first, then the replicas being removed; the leader and its epoch stay
    assert (adding.replicas, adding.adding_replicas, adding.removing_replicas) == ((2, 3, 4, 1), (4,), (1,))
    assert (adding.leader, adding.leader_epoch, adding.isr) == (1, before.leader_epoch, (1, 2, 3))
    assert adding.partition_epoch == before.partition_epoch + 1 and len(adding.directories) == 4
    listed = d.state.replication.list_partition_reassignments(None)
    assert list(listed) == [("moving", 0)]
    assert d.state.replication.list_partition_reassignments([("moving", 0), ("nope", 0)]) == listed

    # the leader adds broker 4 to the ISR: that completes the reassignment and moves the leadership
    error, reg = _alter_isr(d, "moving", [1, 2, 3, 4])
    assert (error, reg) == (ErrorCode.new_leader_elected, None)
    done = _part(d, "moving")
    assert (done.replicas, done.isr, done.adding_replicas, done.removing_replicas) == ((2, 3, 4), (2, 3, 4), (), ())
    assert done.leader == 2 and done.leader_epoch == before.leader_epoch + 1
    assert d.state.replication.list_partition_reassignments(None) == {}
    _check_invariants(d.state)


def test_a_leader_kept_by_the_target_completes_with_a_new_leader_epoch_and_no_error() -> None:
    d = _cluster()
    _create(d, "keep", [[1, 2, 3]])
    _reassign(d, ("keep", 0, [1, 2, 4]))
    assert _part(d, "keep").leader_epoch == 0
    error, reg = _alter_isr(d, "keep", [1, 2, 3, 4])
    assert error == ErrorCode.none and reg is not None
    assert (reg.replicas, reg.isr, reg.leader, reg.leader_epoch) == ((1, 2, 4), (1, 2, 4), 1, 1)


def test_reordering_the_replicas_completes_at_once_without_a_leader_change() -> None:
    d = _cluster()
    _create(d, "order", [[1, 2, 3]])
    _reassign(d, ("order", 0, [3, 2, 1]))
    part = _part(d, "order")
    assert (part.replicas, part.leader, part.leader_epoch, part.adding_replicas, part.removing_replicas) == \
        ((3, 2, 1), 1, 0, (), ())
    assert d.state.replication.list_partition_reassignments(None) == {}


def test_a_cancel_reverts_to_the_original_replicas_and_a_second_cancel_finds_nothing() -> None:
    d = _cluster()
    _create(d, "undo", [[1, 2, 3]])
    _reassign(d, ("undo", 0, [4, 2, 3]))
    assert _part(d, "undo").replicas == (4, 2, 3, 1)
    assert _reassign(d, ("undo", 0, None)) == [("undo", 0, ErrorCode.none, None)]
    part = _part(d, "undo")
    # Kafka's PartitionReassignmentRevert: the replicas without the adding ones, in their current
    # order (target first, then the removing ones), so the original order is not restored
    assert (part.replicas, part.isr, part.adding_replicas, part.removing_replicas, part.leader) == \
        ((2, 3, 1), (1, 2, 3), (), (), 1)
    assert part.leader_epoch == 1  # broker 4 left the replica set: Kafka bumps the leader epoch
    assert _reassign(d, ("undo", 0, None)) == [
        ("undo", 0, ErrorCode.no_reassignment_in_progress, "No partition reassignment is in progress.")]


def test_bad_targets_are_refused_with_kafkas_errors_and_change_nothing() -> None:
    d = _cluster()
    _create(d, "bad", [[1, 2]])
    n = len(d.records)
    answers = _reassign(d, ("nope", 0, [1]), ("bad", 7, [1]), ("bad", 0, [1, 9]), ("bad", 0, [2, 2]), ("bad", 0, []))
    assert answers == [
        ("nope", 0, ErrorCode.unknown_topic_or_partition, "Unable to find a topic named nope."),
        ("bad", 7, ErrorCode.unknown_topic_or_partition, "Unable to find partition bad:7."),
        ("bad", 0, ErrorCode.invalid_replica_assignment,
         "The manual partition assignment includes broker 9, but no such broker is registered."),
        ("bad", 0, ErrorCode.invalid_replica_assignment,
         "The manual partition assignment includes the broker 2 more than once."),
        ("bad", 0, ErrorCode.invalid_replica_assignment,
         "The manual partition assignment includes an empty replica list.")]
    assert len(d.records) == n


def test_a_cancel_that_would_need_an_unclean_election_is_refused() -> None:
    d = _cluster()
    _create(d, "unclean", [[1]])
    _reassign(d, ("unclean", 0, [2]))
    # the ISR shrinks to the new replica only (say broker 1 was fenced after broker 2 caught up)
    part = _part(d, "unclean")
    topic_id = d.state.replication.topics_by_name["unclean"]
    d.commit([mr.PartitionChangeRecord(partition_id=0, topic_id=topic_id, isr=(2,), leader=2)])
    assert _part(d, "unclean").replicas == part.replicas == (2, 1)  # (not completed by the test's record)
    [(_t, _p, error, message)] = _reassign(d, ("unclean", 0, None))
    assert error == ErrorCode.invalid_replica_assignment
    assert message == "Unable to revert partition assignment for unclean:0 because it would require an unclean " \
                      "leader election."


class _ReassignDriver(_Driver):
    """test_controller_replay's driver with reassignments and cancels."""

    def run(self, step: tuple) -> None:  # type: ignore[type-arg]
        kind, *args = step
        if kind != "reassign":
            super().run(step)
            return
        t, pid, target = args
        try:
            result = self.state.replication.alter_partition_reassignments([(f"t{t}", pid, target)])
        except ControllerError:
            return
        self.commit(result.records)


reassign_op = st.tuples(st.just("reassign"), st.integers(0, 3), st.integers(0, 2),
                        st.one_of(st.none(), st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(op, reassign_op, reassign_op), min_size=5, max_size=40))
def test_reassignments_mixed_with_other_operations_keep_the_invariants_and_replay_to_the_same_state(
        steps: list) -> None:  # type: ignore[type-arg]
    driver = _ReassignDriver()
    for step in [("join", 1), ("join", 2), ("join", 3), *steps]:
        driver.run(step)
        _check_invariants(driver.state)
        for _topic, _pid, part in driver.state.replication.partitions():
            assert set(part.adding_replicas) <= set(part.replicas)
            assert set(part.removing_replicas) <= set(part.replicas)
            assert not set(part.adding_replicas) & set(part.removing_replicas)
    expected = driver.state.snapshot_records()
    replayed = ControllerState(CONFIG, clock=lambda: 0.0)
    for offset, r in enumerate(_through_the_log(driver.records)):
        replayed.replay(r, offset)
    assert replayed.snapshot_records() == expected
