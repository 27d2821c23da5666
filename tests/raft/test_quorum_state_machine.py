"""A hypothesis state machine runs five voters' QuorumStates (each with its quorum-state file) through
elections in any order: timeouts, Vote requests answered now and their answers delivered late or
never, BeginQuorumEpoch, appends, replication, resignations and restarts from the file. Whatever
the order, Raft's election safety holds: no two leaders in one epoch, no voter grants its vote to
two candidates in one epoch (restarts included), and a node's epoch never goes back."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kafkalike.raft.quorum_state import (CandidateState, FileQuorumStateStore, IllegalStateError, LeaderState,
                                         OffsetAndEpoch, QuorumState)

IDS = [1, 2, 3, 4, 5]
node_ids = st.sampled_from(IDS)


class QuorumElections(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="quorum-sm-"))
        self.nodes: dict[int, QuorumState] = {}
        self.logs: dict[int, list[int]] = {i: [] for i in IDS}  # each entry is the epoch it was written in
        for i in IDS:
            self.nodes[i] = self._open(i)
        self.grants: dict[tuple[int, int], set[int]] = {}  # (epoch, voter) -> candidates it voted for
        self.leaders: dict[int, set[int]] = {}  # epoch -> nodes that became its leader
        self.highest_epoch = {i: 0 for i in IDS}
        self.pending: list[tuple[int, int, int, bool, int]] = []  # late Vote answers

    def _open(self, i: int) -> QuorumState:
        q = QuorumState(i, set(IDS), FileQuorumStateStore(self.dir / f"quorum-state-{i}"))
        q.initialize(self._end(i))
        return q

    def _end(self, i: int) -> OffsetAndEpoch:
        log = self.logs[i]
        return OffsetAndEpoch(log[-1] if log else 0, len(log))

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _became_leader(self, i: int) -> None:
        q = self.nodes[i]
        q.transition_to_leader(len(self.logs[i]))
        self.leaders.setdefault(q.epoch, set()).add(i)
        self.logs[i].append(q.epoch)  # the LeaderChange batch

    def _deliver(self, candidate: int, epoch: int, voter: int, granted: bool, voter_epoch: int) -> None:
        """A Vote answer reaches the candidate, as KafkaRaftClient handles it."""
        q = self.nodes[candidate]
        if voter_epoch > q.epoch:
            q.transition_to_unattached(voter_epoch)
            return
        if not isinstance(q.state, CandidateState) or q.state.epoch != epoch:
            return  # an answer for an older candidacy
        if granted:
            q.state.record_granted_vote(voter)
            if q.state.is_vote_granted():
                self._became_leader(candidate)
        else:
            q.state.record_rejected_vote(voter)

    @rule(i=node_ids)
    def election_timeout(self, i: int) -> None:
        q = self.nodes[i]
        if not isinstance(q.state, LeaderState):
            q.transition_to_candidate()

    @rule(candidate=node_ids, voter=node_ids, late=st.booleans())
    def vote(self, candidate: int, voter: int, late: bool) -> None:
        c = self.nodes[candidate]
        if candidate == voter or not isinstance(c.state, CandidateState):
            return
        v = self.nodes[voter]
        epoch = c.epoch
        if epoch < v.epoch:
            granted = False  # FENCED_LEADER_EPOCH
        else:
            granted = v.handle_vote_request(candidate, epoch, self._end(candidate), self._end(voter))
        if granted:
            self.grants.setdefault((epoch, voter), set()).add(candidate)
        answer = (candidate, epoch, voter, granted, v.epoch)
        if late:
            self.pending.append(answer)
        else:
            self._deliver(*answer)

    @rule(data=st.data())
    def late_vote_answer(self, data: st.DataObject) -> None:
        if self.pending:
            self._deliver(*self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1))))

    @rule(leader=node_ids, node=node_ids)
    def begin_quorum_epoch(self, leader: int, node: int) -> None:
        lq, nq = self.nodes[leader], self.nodes[node]
        if leader == node or not isinstance(lq.state, LeaderState) or lq.epoch < nq.epoch:
            return
        try:
            nq.transition_to_follower(lq.epoch, leader)
        except IllegalStateError:
            # only refused when the node already knows another leader of this epoch, which
            # the invariant below would catch as two leaders
            assert nq.epoch == lq.epoch and nq.leader_id not in (-1, leader)

    @rule(leader=node_ids)
    def append(self, leader: int) -> None:
        q = self.nodes[leader]
        if isinstance(q.state, LeaderState):
            self.logs[leader].append(q.epoch)

    @rule(leader=node_ids, follower=node_ids)
    def replicate(self, leader: int, follower: int) -> None:
        lq, fq = self.nodes[leader], self.nodes[follower]
        if leader == follower or not isinstance(lq.state, LeaderState) or fq.leader_id != leader or \
                fq.epoch != lq.epoch:
            return
        self.logs[follower] = list(self.logs[leader])  # truncation to the common prefix, then the rest

    @rule(i=node_ids)
    def resign(self, i: int) -> None:
        if isinstance(self.nodes[i].state, LeaderState):
            self.nodes[i].transition_to_resigned()

    @rule(i=node_ids)
    def restart(self, i: int) -> None:
        self.nodes[i] = self._open(i)

    @invariant()
    def at_most_one_leader_per_epoch(self) -> None:
        for epoch, leaders in self.leaders.items():
            assert len(leaders) <= 1, f"epoch {epoch} has leaders {leaders}"

    @invariant()
    def at_most_one_vote_per_voter_and_epoch(self) -> None:
        for (epoch, voter), candidates in self.grants.items():
            assert len(candidates) <= 1, f"voter {voter} voted for {candidates} in epoch {epoch}"

    @invariant()
    def epochs_never_go_back(self) -> None:
        for i, q in self.nodes.items():
            assert q.epoch >= self.highest_epoch[i]
            self.highest_epoch[i] = q.epoch


QuorumElections.TestCase.settings = settings(max_examples=30, stateful_step_count=50, deadline=None,
                                             suppress_health_check=[HealthCheck.too_slow])
test_no_two_leaders_in_an_epoch_and_one_vote_per_epoch = QuorumElections.TestCase
