"""GroupMetadata's state machine and membership rules: Kafka's legal transitions (and only
those), protocol selection by vote, leader hand-over, static members, and a hypothesis
state machine checking the membership invariants over random join/leave sequences."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kafkalike.coordinator.group_metadata import (GroupMetadata, GroupState, IllegalGroupStateTransition,
                                                  decode_assignment_partitions, decode_subscription_topics,
                                                  member_from_protocols)
from kafkalike.coordinator.member_metadata import MemberMetadata
from kafkalike.storage import TopicPartition
from tests.coordinator.coordinator_helpers import assignment, subscription

S = GroupState
KAFKA_LEGAL = {  # (from, to) pairs allowed by Kafka's GroupState.validPreviousStates
    (S.PREPARING_REBALANCE, S.EMPTY),
    (S.STABLE, S.PREPARING_REBALANCE), (S.COMPLETING_REBALANCE, S.PREPARING_REBALANCE),
    (S.EMPTY, S.PREPARING_REBALANCE),
    (S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE),
    (S.COMPLETING_REBALANCE, S.STABLE),
    *((s, S.DEAD) for s in S),
}


def member(mid: str, protocols: list[str], instance: str | None = None) -> MemberMetadata:
    return member_from_protocols(mid, instance, "client", "/127.0.0.1", 1000, 1000, "consumer",
                                 [(p, mid.encode() + p.encode()) for p in protocols])


@pytest.mark.parametrize("src,dst", list(itertools.product(S, S)))
def test_transitions_are_exactly_kafkas(src: GroupState, dst: GroupState) -> None:
    """Every (from, to) pair is allowed iff Kafka allows it; others raise with a clear message."""
    g = GroupMetadata("g", state=src)
    if (src, dst) in KAFKA_LEGAL:
        g.transition_to(dst, 5)
        assert g.state is dst and g.current_state_timestamp_ms == 5
    else:
        with pytest.raises(IllegalGroupStateTransition,
                           match=rf"^group g should be in one of .* before moving to {dst.value}, but it is {src.value}$"):
            g.transition_to(dst)


def test_generation_cycle_and_protocol_vote() -> None:
    """A join phase picks the protocol all members support that most prefer, bumps the
    generation and moves to CompletingRebalance; with no members it goes Empty."""
    g = GroupMetadata("g")
    g.add(member("a", ["roundrobin", "range"]))
    g.add(member("b", ["range", "roundrobin"]))
    g.add(member("c", ["range", "cooperative-sticky"]))
    assert g.leader_id == "a" and g.protocol_type == "consumer"
    assert g.candidate_protocols() == {"range"}
    g.transition_to(S.PREPARING_REBALANCE)
    g.init_next_generation()
    assert (g.state, g.generation_id, g.protocol_name) == (S.COMPLETING_REBALANCE, 1, "range")
    assert [m for m, _, _ in g.current_member_metadata()] == ["a", "b", "c"]
    assert g.current_member_metadata()[0][2] == b"arange"
    g.remove("c")
    assert g.select_protocol() == "roundrobin"  # tie 1-1: the leader's preference wins
    for mid in ("a", "b"):
        g.remove(mid)
    g.transition_to(S.PREPARING_REBALANCE)
    g.init_next_generation()
    assert (g.state, g.generation_id, g.protocol_name, g.leader_id) == (S.EMPTY, 2, None, None)


def test_supports_protocols() -> None:
    """An empty group takes any type; then the type must match and share a protocol."""
    g = GroupMetadata("g")
    assert g.supports_protocols("consumer", ["range"])
    assert not g.supports_protocols("", ["range"]) and not g.supports_protocols("consumer", [])
    g.add(member("a", ["range"]))
    assert g.supports_protocols("consumer", ["sticky", "range"])
    assert not g.supports_protocols("connect", ["range"])
    assert not g.supports_protocols("consumer", ["sticky"])


def test_static_member_replacement_keeps_leadership() -> None:
    """A static member rejoining under a new member id keeps its place and leadership, and the
    old id is fenced."""
    g = GroupMetadata("g")
    g.add(member("old", ["range"], instance="i1"))
    g.add(member("b", ["range"]))
    g.replace_static_member("i1", "old", "new")
    assert g.leader_id == "new" and list(g.members) == ["b", "new"]
    assert g.static_member_id("i1") == "new"
    assert g.is_static_member_fenced("old", "i1") and not g.is_static_member_fenced("new", "i1")


def test_consumer_protocol_decoding() -> None:
    """Subscription and assignment bytes of the consumer protocol decode; junk gives None."""
    assert decode_subscription_topics(subscription("a", "b")) == {"a", "b"}
    assert decode_assignment_partitions(assignment({"t": [0, 2], "u": [1]})) == [
        TopicPartition("t", 0), TopicPartition("t", 2), TopicPartition("u", 1)]
    assert decode_subscription_topics(b"\x00") is None
    assert decode_assignment_partitions(b"") is None
    assert decode_assignment_partitions(b"\x00\x00\x7f\xff\xff\xff") is None


class MembershipMachine(RuleBasedStateMachine):
    """Random adds/removes/leader hand-overs keep GroupMetadata's invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.group = GroupMetadata("g")
        self.counter = 0
        self.model: list[str] = []

    @rule(protocols=st.lists(st.sampled_from(["range", "roundrobin", "sticky"]), min_size=1, max_size=3,
                             unique=True),
          static=st.booleans(), awaiting=st.booleans())
    def add(self, protocols: list[str], static: bool, awaiting: bool) -> None:
        self.counter += 1
        mid = f"m{self.counter}"
        if not self.group.supports_protocols("consumer", protocols):
            return
        m = member(mid, protocols, instance=f"i{self.counter}" if static else None)
        if awaiting:
            m.awaiting_join = lambda result: None
        self.group.add(m)
        self.model.append(mid)

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        if not self.model:
            return
        mid = data.draw(st.sampled_from(self.model))
        was_leader = self.group.leader_id == mid
        awaiting = [m for m in self.model if m != mid and self.group.get(m).is_awaiting_join]
        self.group.remove(mid)
        self.model.remove(mid)
        if was_leader and self.model:
            expected = awaiting[0] if awaiting else self.model[0]
            assert self.group.leader_id == expected

    @invariant()
    def consistent(self) -> None:
        g = self.group
        assert list(g.members) == self.model
        if self.model:
            assert g.leader_id in g.members
            assert g.candidate_protocols()
            assert g.select_protocol() in g.candidate_protocols()
        else:
            assert g.leader_id is None
        for instance, mid in g.static_members.items():
            assert g.get(mid).group_instance_id == instance
        assert g.all_members_joined() == all(m.is_awaiting_join for m in g.members.values())


TestMembership = MembershipMachine.TestCase
TestMembership.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
