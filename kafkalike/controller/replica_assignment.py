"""Replica placement for new topics and partitions, as Kafka's AdminUtils (rack-unaware).

assign_replicas_to_brokers(n_partitions, replication_factor, broker_ids) spreads leaders
round-robin from a start index and places followers at a shifting distance, so that
replicas of one partition are on distinct brokers and leadership is even. Kafka picks the
start index and the shift at random; pass them to get a fixed layout (tests, docs).

Errors are raised as AssignmentError carrying Kafka's error name
(INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, BROKER_NOT_AVAILABLE), with Kafka's messages.

Source: Kafka core, kafka.admin.AdminUtils.assignReplicasToBrokersRackUnaware (Kafka 3.x).
"""

from __future__ import annotations

import random
from collections.abc import Sequence


class AssignmentError(ValueError):
    """A placement request that can't be met. ``error`` is the Kafka error name."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


def _replica_index(first_replica_index: int, second_replica_shift: int, replica_index: int,
                   n_brokers: int) -> int:
    shift = 1 + (second_replica_shift + replica_index) % (n_brokers - 1)
    return (first_replica_index + shift) % n_brokers


def assign_replicas_to_brokers(n_partitions: int, replication_factor: int, broker_ids: Sequence[int],
                               fixed_start_index: int = -1, start_partition_id: int = -1,
                               rng: random.Random | None = None) -> dict[int, list[int]]:
    """Map partition id -> replica list (first = preferred leader) for n_partitions partitions.

    broker_ids: the live brokers (sorted here, as Kafka does). start_partition_id: the first
    new partition id (CreatePartitions adds partitions after the existing ones).
    Raises AssignmentError(INVALID_PARTITIONS | INVALID_REPLICATION_FACTOR | BROKER_NOT_AVAILABLE).
    """
    if n_partitions <= 0:
        raise AssignmentError("INVALID_PARTITIONS", "Number of partitions must be larger than 0.")
    if replication_factor <= 0:
        raise AssignmentError("INVALID_REPLICATION_FACTOR", "Replication factor must be larger than 0.")
    brokers = sorted(broker_ids)
    if not brokers:
        raise AssignmentError("BROKER_NOT_AVAILABLE", "No brokers are registered.")
    if replication_factor > len(brokers):
        raise AssignmentError(
            "INVALID_REPLICATION_FACTOR",
            f"Replication factor: {replication_factor} larger than available brokers: {len(brokers)}.")
    rng = rng or random.Random()
    n = len(brokers)
    start_index = fixed_start_index if fixed_start_index >= 0 else rng.randrange(n)
    next_replica_shift = fixed_start_index if fixed_start_index >= 0 else rng.randrange(n)
    current = max(0, start_partition_id)
    out: dict[int, list[int]] = {}
    for _ in range(n_partitions):
        if current > 0 and current % n == 0:
            next_replica_shift += 1
        first = (current + start_index) % n
        replicas = [brokers[first]]
        for j in range(replication_factor - 1):
            replicas.append(brokers[_replica_index(first, next_replica_shift, j, n)])
        out[current] = replicas
        current += 1
    return out
