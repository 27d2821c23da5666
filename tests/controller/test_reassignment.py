"""The replica-set arithmetic and checks of partition reassignment (KIP-455), without a
cluster: zk_data.ReplicaAssignment (ORS, TRS, reassignTo as Kafka's controller.ReplicaAssignment),
controller/reassignment.py (validateReplicas, maybeBuildReassignment) and the JSON handling
of ``kafkalike reassign-partitions``."""

from __future__ import annotations

import pytest

from kafkalike.cli import reassign_partitions as cli
from kafkalike.controller.reassignment import build_reassignment, validate_replicas
from kafkalike.coordination.zk_data import ReplicaAssignment
from kafkalike.protocol.errors import ErrorCode

RA = ReplicaAssignment


def test_reassign_to_puts_target_first_then_the_original_replicas() -> None:
    """[1, 2] -> [2, 3]: RS [2, 3, 1], adding [3], removing [1]; ORS and TRS read back."""
    moving = RA((1, 2)).reassign_to([2, 3])
    assert moving == RA((2, 3, 1), (3,), (1,))
    assert moving.origin_replicas == (2, 1) and moving.target_replicas == (2, 3) and moving.is_being_reassigned


def test_reassigning_again_keeps_the_original_replicas_and_cancelling_returns_to_them() -> None:
    """A partition moving [1, 2] -> [2, 3] (RS [2, 3, 1]) sent to [3, 4] keeps ORS {1, 2} (3
    still adding, 4 too); reassigning to ORS is a cancellation: RS = ORS, nothing adding or
    removing. ORS is RS minus the adding replicas in RS's order ([2, 1]), as Kafka's
    ``replicas.diff(addingReplicas)``: a cancelled move can leave another preferred leader."""
    moving = RA((2, 3, 1), (3,), (1,))
    assert moving.origin_replicas == (2, 1)
    assert moving.reassign_to([3, 4]) == RA((3, 4, 2, 1), (3, 4), (2, 1))
    assert moving.reassign_to(moving.origin_replicas) == RA((2, 1))
    assert not RA((1, 2)).is_being_reassigned


def test_build_reassignment_cancels_only_what_is_in_flight() -> None:
    """None = cancel: back to ORS when moving, None (NO_REASSIGNMENT_IN_PROGRESS) otherwise."""
    assert build_reassignment(RA((2, 3, 1), (3,), (1,)), None) == RA((2, 1))
    assert build_reassignment(RA((1, 2)), None) is None
    assert build_reassignment(RA((1, 2)), [1, 3]) == RA((1, 3, 2), (3,), (2,))


@pytest.mark.parametrize(("target", "message"), [
    ([], "Empty replica list specified in partition reassignment."),
    ([1, 1], "Duplicate replica ids in partition reassignment replica list: [1, 1]"),
    ([1, -2], "Invalid broker id in replica list: [1, -2]"),
    ([1, 9], "Replica assignment has brokers that are not alive. Replica list: [9], live broker list: [1, 2, 3]"),
])
def test_validate_replicas_refuses_with_kafkas_messages(target: list[int], message: str) -> None:
    assert validate_replicas(target, RA((1, 2)), {1, 2, 3}) == (ErrorCode.invalid_replica_assignment, message)


def test_validate_replicas_only_asks_new_replicas_to_be_alive() -> None:
    """A replica already assigned may be on a dead broker (it is not being added)."""
    assert validate_replicas([2, 1], RA((1, 2)), {2}) is None


def test_reassignment_json_is_kafkas_compact_format_sorted_by_partition() -> None:
    assert cli.format_as_reassignment_json({("b", 0): [1], ("a", 1): [2, 3], ("a", 0): [3]}) == (
        '{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[3],"log_dirs":["any"]},'
        '{"topic":"a","partition":1,"replicas":[2,3],"log_dirs":["any","any"]},'
        '{"topic":"b","partition":0,"replicas":[1],"log_dirs":["any"]}]}')


def test_execute_checks_refuse_duplicates_as_kafka() -> None:
    parts = cli.parse_reassignment_json('{"partitions":[{"topic":"t","partition":0,"replicas":[1,1,2]}]}')
    with pytest.raises(cli.CommandError, match="t-0 contains multiple entries for 1$"):
        cli.validate_execute(parts)
    twice = cli.parse_reassignment_json('{"partitions":[{"topic":"t","partition":0,"replicas":[1]},'
                                        '{"topic":"t","partition":0,"replicas":[2]}]}')
    with pytest.raises(cli.CommandError, match="duplicate topic partitions: t-0$"):
        cli.validate_execute(twice)
    with pytest.raises(cli.CommandError, match="not a valid JSON"):
        cli.parse_reassignment_json("{nope")
    with pytest.raises(cli.CommandError, match="Not supported version field value 2"):
        cli.parse_reassignment_json('{"version":2,"partitions":[]}')


def test_java_hash_set_order_matches_javas_iteration() -> None:
    """Java 17: new HashSet<>(List.of("topic-b", "topic-a", "a", "cl", "mv")) iterates
    [a, cl, mv, topic-a, topic-b]; small Integers iterate by value modulo the table size."""
    assert cli.java_hash_set_order(["topic-b", "topic-a", "a", "cl", "mv"]) == ["a", "cl", "mv", "topic-a", "topic-b"]
    assert cli.java_hash_set_order([3, 2, 1, 17, 16]) == [16, 1, 17, 2, 3]
