"""Partition leader election algorithms, as Kafka's PartitionLeaderElectionAlgorithms.

Pure functions over replica ids; the controller calls them when a partition goes online,
loses its leader, moves back to its preferred replica, or its leader shuts down. Each
returns a LeaderElection (leader, new ISR) or None when no replica qualifies (the partition
then stays offline, Kafka's NoLeader / -1).

Source: Kafka core, kafka.controller.PartitionLeaderElectionAlgorithms and
ElectionType handling in PartitionStateMachine.doLeaderElectionForPartitions (Kafka 3.x).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import attrs


@attrs.frozen
class LeaderElection:
    """The outcome of one election: the new leader id and the new ISR (ids, leader first
    only if it was first before). ``unclean`` is True when the leader was not in the ISR,
    which means acknowledged records may be lost."""

    leader: int
    isr: tuple[int, ...]
    unclean: bool = False


def offline_partition_leader(assignment: Sequence[int], isr: Sequence[int], live: Collection[int],
                             unclean_leader_election_enable: bool) -> LeaderElection | None:
    """Election for a partition whose leader is gone (or a new partition).

    The first replica in assignment order that is alive and in the ISR; else, only when
    unclean.leader.election.enable, the first alive replica (the ISR becomes just it).
    The new ISR is the old ISR restricted to live replicas.
    """
    for r in assignment:
        if r in live and r in isr:
            return LeaderElection(r, tuple(i for i in isr if i in live))
    if unclean_leader_election_enable:
        for r in assignment:
            if r in live:
                return LeaderElection(r, (r,), unclean=True)
    return None


def reassign_partition_leader(reassignment: Sequence[int], isr: Sequence[int],
                              live: Collection[int]) -> LeaderElection | None:
    """Election during a reassignment: the first target replica alive and in the ISR."""
    for r in reassignment:
        if r in live and r in isr:
            return LeaderElection(r, tuple(isr))
    return None


def preferred_replica_leader(assignment: Sequence[int], isr: Sequence[int],
                             live: Collection[int]) -> LeaderElection | None:
    """Preferred replica election: the first assigned replica, if alive and in the ISR."""
    if assignment and assignment[0] in live and assignment[0] in isr:
        return LeaderElection(assignment[0], tuple(isr))
    return None


def controlled_shutdown_leader(assignment: Sequence[int], isr: Sequence[int], live: Collection[int],
                               shutting_down: Collection[int]) -> LeaderElection | None:
    """Election when the leader shuts down cleanly: the first assigned replica that is alive,
    in the ISR and not shutting down; the shutting-down brokers leave the ISR."""
    for r in assignment:
        if r in live and r in isr and r not in shutting_down:
            return LeaderElection(r, tuple(i for i in isr if i not in shutting_down))
    return None
