"""QuorumState (kafkalike/raft/quorum_state.py): the quorum-state file in Kafka 3.9's JSON, the
transitions Kafka allows and refuses, restart from the file, vote granting, and the leader's
high watermark (the offset a majority of voters holds, never before the leader's own epoch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kafkalike.raft.quorum_state import (CandidateState, ElectionState, FileQuorumStateStore, FollowerState,
                                         IllegalStateError, LeaderState, OffsetAndEpoch, QuorumState, ResignedState,
                                         UnattachedState, VotedState)
from kafkalike.storage.errors import KafkaStorageError

VOTERS = {1, 2, 3}


def _quorum(tmp_path: Path, local_id: int = 1) -> QuorumState:
    q = QuorumState(local_id, VOTERS, FileQuorumStateStore(tmp_path / "quorum-state"))
    q.initialize(OffsetAndEpoch(0, 0))
    return q


def test_quorum_state_file_is_kafkas_json_and_round_trips(tmp_path: Path) -> None:
    store = FileQuorumStateStore(tmp_path / "quorum-state")
    state = ElectionState(epoch=2, leader_id=1, voted_id=-1, voters=(1, 2, 3))
    store.write_election_state(state)
    text = (tmp_path / "quorum-state").read_text()
    # FileQuorumStateStore's "version 0 format" example, with the voters kraft.version 0 keeps
    assert text == ('{"clusterId":"","leaderId":1,"leaderEpoch":2,"votedId":-1,"appliedOffset":0,'
                    '"currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],"data_version":0}')
    assert store.read_election_state() == state
    assert not (tmp_path / "quorum-state.tmp").exists()


def test_kafkas_version_1_file_is_read(tmp_path: Path) -> None:
    # FileQuorumStateStore's "version 1 format" example (kraft.version 1, KIP-853)
    (tmp_path / "quorum-state").write_text(json.dumps({"leaderId": -1, "leaderEpoch": 2, "votedId": 1,
                                                       "votedDirectoryId": "J8aAPcfLQt2bqs1JT_rMgQ",
                                                       "data_version": 1}))
    assert FileQuorumStateStore(tmp_path / "quorum-state").read_election_state() == ElectionState(2, -1, 1, ())


@pytest.mark.parametrize("text, message", [
    ("{", "not JSON"),
    ('{"leaderId": 1}', "does not have data_version field"),
    ('{"data_version": 7}', "data_version (7) is not within the min (0) and max (1) supported version"),
])
def test_malformed_quorum_state_file_is_refused_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "quorum-state"
    path.write_text(text)
    with pytest.raises(KafkaStorageError) as err:
        FileQuorumStateStore(path).read_election_state()
    assert message in str(err.value) and str(path) in str(err.value)


def test_every_transition_is_written_before_it_counts(tmp_path: Path) -> None:
    q = _quorum(tmp_path)
    store = q.store
    assert isinstance(q.state, UnattachedState) and q.epoch == 0
    q.transition_to_voted(1, 2)
    assert store.read_election_state() == ElectionState(1, -1, 2, (1, 2, 3))
    q.transition_to_follower(1, 2)
    assert store.read_election_state() == ElectionState(1, 2, -1, (1, 2, 3))
    q.transition_to_candidate()
    assert store.read_election_state() == ElectionState(2, -1, 1, (1, 2, 3))
    assert isinstance(q.state, CandidateState)
    q.state.record_granted_vote(3)
    q.transition_to_leader(epoch_start_offset=10)
    assert store.read_election_state() == ElectionState(2, 1, -1, (1, 2, 3))
    q.transition_to_resigned((3, 2))
    assert isinstance(q.state, ResignedState) and q.state.preferred_successors == (3, 2)


@pytest.mark.parametrize("stored, expected", [
    (ElectionState(4, leader_id=1, voters=(1, 2, 3)), ResignedState(4, 1)),
    (ElectionState(4, leader_id=2, voters=(1, 2, 3)), FollowerState(4, 2)),
    (ElectionState(4, voted_id=3, voters=(1, 2, 3)), VotedState(4, 3)),
    (ElectionState(4, voters=(1, 2, 3)), UnattachedState(4)),
])
def test_a_restarted_node_resumes_from_the_file(tmp_path: Path, stored: ElectionState, expected: object) -> None:
    store = FileQuorumStateStore(tmp_path / "quorum-state")
    store.write_election_state(stored)
    q = QuorumState(1, VOTERS, store)
    assert q.initialize(OffsetAndEpoch(3, 100)) == expected


def test_a_restarted_candidate_is_candidate_of_the_same_epoch(tmp_path: Path) -> None:
    store = FileQuorumStateStore(tmp_path / "quorum-state")
    store.write_election_state(ElectionState(4, voted_id=1, voters=(1, 2, 3)))
    state = QuorumState(1, VOTERS, store).initialize(OffsetAndEpoch(3, 100))
    assert isinstance(state, CandidateState) and state.epoch == 4 and state.granting == {1}


def test_a_lost_file_starts_unattached_in_the_logs_epoch(tmp_path: Path) -> None:
    q = QuorumState(1, VOTERS, FileQuorumStateStore(tmp_path / "quorum-state"))
    assert q.initialize(OffsetAndEpoch(7, 100)) == UnattachedState(7)


def test_transitions_kafka_forbids_are_refused(tmp_path: Path) -> None:
    q = _quorum(tmp_path)
    q.transition_to_voted(3, 2)
    with pytest.raises(IllegalStateError):
        q.transition_to_voted(3, 3)  # a second vote in epoch 3
    with pytest.raises(IllegalStateError):
        q.transition_to_unattached(3)  # epochs only grow
    with pytest.raises(IllegalStateError):
        q.transition_to_leader(0)  # not a candidate
    with pytest.raises(IllegalStateError):
        q.transition_to_voted(4, 1)  # for oneself
    with pytest.raises(IllegalStateError):
        q.transition_to_follower(2, 2)  # an older epoch
    q.transition_to_follower(3, 2)
    with pytest.raises(IllegalStateError):
        q.transition_to_follower(3, 3)  # a second leader of epoch 3
    candidate = q.transition_to_candidate()
    assert candidate.epoch == 4
    with pytest.raises(IllegalStateError):
        q.transition_to_leader(0)  # one vote of three
    assert q.store.read_election_state() == ElectionState(4, -1, 1, (1, 2, 3))


def test_a_vote_is_granted_once_per_epoch_and_only_to_an_up_to_date_log(tmp_path: Path) -> None:
    q = _quorum(tmp_path)
    local = OffsetAndEpoch(epoch=2, offset=10)
    assert not q.handle_vote_request(2, 3, OffsetAndEpoch(1, 50), local)  # older last epoch
    assert q.epoch == 3 and isinstance(q.state, UnattachedState)
    assert not q.handle_vote_request(2, 3, OffsetAndEpoch(2, 9), local)  # shorter log
    assert q.handle_vote_request(2, 3, OffsetAndEpoch(2, 10), local)
    assert q.state == VotedState(3, 2)
    assert q.handle_vote_request(2, 3, OffsetAndEpoch(2, 10), local)  # the same candidate again
    assert not q.handle_vote_request(3, 3, OffsetAndEpoch(5, 99), local)  # another one, same epoch
    assert q.handle_vote_request(3, 4, OffsetAndEpoch(2, 11), local)  # a new epoch
    assert q.state == VotedState(4, 3)
    assert not q.handle_vote_request(2, 3, OffsetAndEpoch(9, 99), local)  # an old epoch


def test_candidate_counts_votes_and_knows_when_it_lost(tmp_path: Path) -> None:
    q = _quorum(tmp_path)
    state = q.transition_to_candidate()
    assert not state.is_vote_granted() and not state.is_vote_rejected()
    state.record_rejected_vote(2)
    assert not state.is_vote_rejected()
    state.record_rejected_vote(3)
    assert state.is_vote_rejected()
    with pytest.raises(IllegalStateError):
        state.record_granted_vote(3)


def test_leader_high_watermark_is_the_majoritys_offset_and_starts_in_its_epoch(tmp_path: Path) -> None:
    q = _quorum(tmp_path)
    candidate = q.transition_to_candidate()
    candidate.record_granted_vote(2)
    leader = q.transition_to_leader(epoch_start_offset=5)
    assert isinstance(leader, LeaderState)
    assert not leader.update_end_offset(1, 6, 0, 6)  # the leader alone holds 6
    assert leader.high_watermark == -1
    assert not leader.update_end_offset(2, 5, 0, 6)  # a majority holds 5: the epoch start, not past it
    assert leader.high_watermark == -1
    assert leader.update_end_offset(2, 6, 0, 6)
    assert leader.high_watermark == 6
    assert not leader.update_end_offset(3, 2, 0, 6)  # a slow voter does not move it back
    assert leader.high_watermark == 6
    leader.update_end_offset(1, 9, 0, 9)
    assert leader.update_end_offset(3, 8, 0, 9)
    assert leader.high_watermark == 8
    assert leader.voter_states[3].end_offset == 8 and leader.voter_states[2].end_offset == 6
