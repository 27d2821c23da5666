"""A Raft voter's election state (KIP-595), after Kafka 3.9's ``QuorumState`` and its epoch states.

Holds the six states a node of a static quorum can be in, each for one epoch:

    unattached  no leader known, no vote cast in this epoch (start, or a higher epoch seen)
    voted       voted for ``voted_id`` in this epoch, no leader known yet
    candidate   asked for votes for itself in this epoch (it voted for itself)
    leader      won this epoch's election: the only node that appends to the log
    follower    knows this epoch's leader and fetches from it
    resigned    was this epoch's leader and gave up (shutdown, or lost its quorum)

``QuorumState`` changes state only through Kafka's transitions, and every change is written to the
``quorum-state`` file (``FileQuorumStateStore``) *before* the node acts on it, so after a crash a
node never votes twice in one epoch nor forgets which epoch it reached. The rules that make Raft
safe live here, where a property test (tests/raft/test_quorum_state_machine.py) checks them:

* a node grants its vote at most once per epoch (to one candidate), and only to a candidate whose
  log is at least as up to date as its own (last epoch, then end offset: ``OffsetAndEpoch``);
* a candidate becomes leader only with a majority of the voters' votes for its epoch, so no two
  nodes lead one epoch;
* epochs only grow.

The file (Kafka's ``FileQuorumStateStore``, ``QuorumStateData`` version 0 as Kafka 3.9 writes it
with kraft.version 0, compact JSON, written as ``quorum-state.tmp``, fsynced, renamed)::

    {"clusterId":"","leaderId":1,"leaderEpoch":2,"votedId":-1,"appliedOffset":0,
     "currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],"data_version":0}

Errors: ``IllegalStateError`` (a ``ValueError``) for a transition Kafka forbids (Kafka throws
IllegalStateException); ``KafkaStorageError`` when the file cannot be written or read, naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import structlog

from kafkalike.storage.checkpoints import write_atomically
from kafkalike.storage.errors import KafkaStorageError

__all__ = ["ElectionState", "FileQuorumStateStore", "OffsetAndEpoch", "QuorumState", "IllegalStateError",
           "UnattachedState", "VotedState", "CandidateState", "LeaderState", "FollowerState", "ResignedState",
           "EpochState", "ReplicaState", "QUORUM_STATE_FILE"]

log = structlog.get_logger("kafkalike.raft.quorum_state")

QUORUM_STATE_FILE = "quorum-state"
"""Kafka's FileQuorumStateStore.DEFAULT_FILE_NAME, kept in the ``__cluster_metadata-0`` directory."""

NO_ID = -1


class IllegalStateError(ValueError):
    """A state transition Kafka's QuorumState refuses (IllegalStateException there)."""


@attrs.frozen(order=True)
class OffsetAndEpoch:
    """A log position: ``offset`` (int64) and the ``epoch`` of the record before it; compared
    epoch first, then offset (Kafka's OffsetAndEpoch.compareTo): "more up to date" is greater."""

    epoch: int
    offset: int


@attrs.frozen
class ElectionState:
    """What the ``quorum-state`` file holds (Kafka's ElectionState): the ``epoch``, the leader
    (``leader_id``, -1 unknown), the vote cast in that epoch (``voted_id``, -1 none) and the
    static voter ids."""

    epoch: int
    leader_id: int = NO_ID
    voted_id: int = NO_ID
    voters: tuple[int, ...] = ()

    def to_json(self) -> str:
        """QuorumStateData v0 as Kafka's QuorumStateDataJsonConverter writes it, plus data_version."""
        return json.dumps({"clusterId": "", "leaderId": self.leader_id, "leaderEpoch": self.epoch,
                           "votedId": self.voted_id, "appliedOffset": 0,
                           "currentVoters": [{"voterId": v} for v in sorted(self.voters)],
                           "data_version": 0}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ElectionState:
        """Parse a quorum-state file's text (data_version 0 or 1; version 1 has no voters).
        Raises ValueError for malformed JSON, a missing data_version or field, or a version
        other than 0-1 (Kafka: "data_version (N) is not within the min (0) and max (1)...")."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or "data_version" not in data:
            raise ValueError("does not have data_version field")
        version = data["data_version"]
        if version not in (0, 1):
            raise ValueError(f"data_version ({version}) is not within the min (0) and max (1) supported version")
        try:
            voters = tuple(int(v["voterId"]) for v in (data.get("currentVoters") or ()))
            return cls(epoch=int(data.get("leaderEpoch", -1)), leader_id=int(data.get("leaderId", -1)),
                       voted_id=int(data.get("votedId", -1)), voters=voters)
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"bad field: {exc}") from None


class FileQuorumStateStore:
    """The ``quorum-state`` file at ``path`` (Kafka's FileQuorumStateStore)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read_election_state(self) -> ElectionState | None:
        """The stored state, None when there is no file. Raises KafkaStorageError (the file named)
        for an unreadable or malformed file."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KafkaStorageError(f"cannot read quorum state ({exc.strerror})", self.path) from exc
        try:
            return ElectionState.from_json(text)
        except ValueError as exc:
            raise KafkaStorageError(f"malformed quorum state: {exc}", self.path) from None

    def write_election_state(self, state: ElectionState) -> None:
        """Write ``state`` atomically (.tmp, fsync, rename, fsync of the directory).
        Raises KafkaStorageError."""
        write_atomically(self.path, state.to_json())


# ------------------------------------------------------------------------------------ states


@attrs.frozen
class UnattachedState:
    """No leader and no vote in ``epoch``."""

    epoch: int
    name = "Unattached"


@attrs.frozen
class VotedState:
    """Voted for ``voted_id`` in ``epoch``; no leader known."""

    epoch: int
    voted_id: int
    name = "Voted"


@attrs.define
class CandidateState:
    """Standing for election in ``epoch``: ``granting`` / ``rejecting`` voter ids so far (the
    candidate's own vote is in ``granting``); ``retries`` counts the elections in a row (Kafka
    uses it for the exponential backoff)."""

    epoch: int
    local_id: int
    voters: frozenset[int]
    granting: set[int] = attrs.field(factory=set)
    rejecting: set[int] = attrs.field(factory=set)
    retries: int = 1
    name = "Candidate"

    @property
    def majority(self) -> int:
        """Votes needed: more than half of the voters."""
        return len(self.voters) // 2 + 1

    def is_vote_granted(self) -> bool:
        """True with votes from a majority of the voters (self included)."""
        return len(self.granting) >= self.majority

    def is_vote_rejected(self) -> bool:
        """True when a majority can no longer be reached."""
        return len(self.voters) - len(self.rejecting) < self.majority

    def record_granted_vote(self, voter_id: int) -> None:
        """Count ``voter_id``'s vote. Raises IllegalStateError for a non-voter or a voter that
        already rejected."""
        if voter_id not in self.voters:
            raise IllegalStateError(f"{voter_id} is not a voter")
        if voter_id in self.rejecting:
            raise IllegalStateError(f"voter {voter_id} already rejected the vote in epoch {self.epoch}")
        self.granting.add(voter_id)

    def record_rejected_vote(self, voter_id: int) -> None:
        """Count ``voter_id``'s refusal (ignored if it granted before). Raises IllegalStateError
        for a non-voter."""
        if voter_id not in self.voters:
            raise IllegalStateError(f"{voter_id} is not a voter")
        if voter_id not in self.granting:
            self.rejecting.add(voter_id)


@attrs.frozen
class ReplicaState:
    """What a leader knows of one replica: its fetched ``end_offset`` (-1 unknown), ms times of
    its last Fetch and of the last Fetch that reached the leader's end offset (DescribeQuorum)."""

    replica_id: int
    end_offset: int = -1
    last_fetch_ms: int = -1
    last_caught_up_ms: int = -1


@attrs.define
class LeaderState:
    """Leader of ``epoch``. ``epoch_start_offset``: where its LeaderChange batch went (the high
    watermark only advances past it: a leader commits nothing before an entry of its own epoch).
    ``voter_states`` {id: ReplicaState} (the leader's own entry is its flushed end offset),
    ``observers`` the same for non-voters that fetched, ``high_watermark`` (-1 unknown)."""

    epoch: int
    local_id: int
    epoch_start_offset: int
    voter_states: dict[int, ReplicaState]
    granting: frozenset[int]
    observers: dict[int, ReplicaState] = attrs.field(factory=dict)
    high_watermark: int = -1
    name = "Leader"

    def update_end_offset(self, replica_id: int, end_offset: int, now_ms: int, leader_end_offset: int) -> bool:
        """Record a Fetch of ``replica_id`` at ``end_offset`` (its log end offset) and move the high
        watermark to what a majority of voters hold (Kafka's LeaderState.updateReplicaState /
        maybeUpdateHighWatermark). Returns True when the high watermark advanced."""
        table = self.voter_states if replica_id in self.voter_states else self.observers
        old = table.get(replica_id, ReplicaState(replica_id))
        caught_up = now_ms if end_offset >= leader_end_offset else old.last_caught_up_ms
        table[replica_id] = ReplicaState(replica_id, max(old.end_offset, end_offset) if replica_id == self.local_id
                                         else end_offset, now_ms, caught_up)
        return self._maybe_update_high_watermark()

    def _maybe_update_high_watermark(self) -> bool:
        offsets = sorted((s.end_offset for s in self.voter_states.values()), reverse=True)
        majority_offset = offsets[len(offsets) // 2]
        # the leader's high watermark never moves back and only counts from its own epoch
        if majority_offset > self.epoch_start_offset and majority_offset > self.high_watermark:
            self.high_watermark = majority_offset
            return True
        return False


@attrs.frozen
class FollowerState:
    """Follows ``leader_id`` in ``epoch``."""

    epoch: int
    leader_id: int
    name = "Follower"


@attrs.frozen
class ResignedState:
    """Was leader of ``epoch`` and resigned; ``preferred_successors`` (voter ids, most up to date
    first) are named in EndQuorumEpoch."""

    epoch: int
    local_id: int
    preferred_successors: tuple[int, ...] = ()
    name = "Resigned"


EpochState = UnattachedState | VotedState | CandidateState | LeaderState | FollowerState | ResignedState


class QuorumState:
    """The node's current epoch state and its transitions (Kafka 3.9's QuorumState).

    ``local_id``: this node's id; ``voters``: the static voter ids (``controller.quorum.voters``);
    ``store``: where each new state is written before it takes effect. Create, then
    ``initialize(log_end)``. Every ``transition_to_*`` raises IllegalStateError where Kafka's
    does (see each), and KafkaStorageError when the store cannot be written (the state is then
    unchanged).
    """

    def __init__(self, local_id: int, voters: frozenset[int] | set[int], store: FileQuorumStateStore) -> None:
        self.local_id = local_id
        self.voters = frozenset(voters)
        self.store = store
        self.state: EpochState = UnattachedState(0)

    # ------------------------------------------------------------------ reading

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self.state.epoch

    @property
    def leader_id(self) -> int:
        """The current epoch's leader, -1 when unknown."""
        if isinstance(self.state, FollowerState):
            return self.state.leader_id
        if isinstance(self.state, (LeaderState, ResignedState)):
            return self.local_id
        return NO_ID

    @property
    def is_voter(self) -> bool:
        """True when this node is one of the voters."""
        return self.local_id in self.voters

    def is_leader(self) -> bool:
        """True in LeaderState."""
        return isinstance(self.state, LeaderState)

    def election_state(self) -> ElectionState:
        """The state as the quorum-state file stores it."""
        s = self.state
        voters = tuple(sorted(self.voters))
        if isinstance(s, VotedState):
            return ElectionState(s.epoch, voted_id=s.voted_id, voters=voters)
        if isinstance(s, CandidateState):
            return ElectionState(s.epoch, voted_id=self.local_id, voters=voters)
        if isinstance(s, (LeaderState, ResignedState)):
            return ElectionState(s.epoch, leader_id=self.local_id, voters=voters)  # Kafka: withElectedLeader
        if isinstance(s, FollowerState):
            return ElectionState(s.epoch, leader_id=s.leader_id, voters=voters)
        return ElectionState(s.epoch, voters=voters)

    # ------------------------------------------------------------------ start

    def initialize(self, log_end: OffsetAndEpoch) -> EpochState:
        """Take the state from the file (Kafka's QuorumState.initialize): a node that was leader
        comes back resigned (it may have lost appends), a candidate as candidate of the same
        epoch, a voter as voted, a follower as follower; no file: unattached in epoch 0. An epoch
        in the file below the log's last epoch (the file was lost) starts unattached in the log's
        epoch. Returns the state."""
        stored = self.store.read_election_state()
        if stored is None or stored.epoch < log_end.epoch:
            epoch = max(log_end.epoch, stored.epoch if stored else 0)
            self.state = UnattachedState(epoch)
        elif stored.leader_id == self.local_id and self.is_voter:
            self.state = ResignedState(stored.epoch, self.local_id)
        elif stored.leader_id != NO_ID:
            self.state = FollowerState(stored.epoch, stored.leader_id)
        elif stored.voted_id == self.local_id and self.is_voter:
            self.state = CandidateState(stored.epoch, self.local_id, self.voters, {self.local_id})
        elif stored.voted_id != NO_ID:
            self.state = VotedState(stored.epoch, stored.voted_id)
        else:
            self.state = UnattachedState(stored.epoch)
        self._write()
        log.info("quorum_state_initialized", node_id=self.local_id, state=self.state.name, epoch=self.epoch,
                 leader_id=self.leader_id)
        return self.state

    # ------------------------------------------------------------------ transitions

    def transition_to_unattached(self, epoch: int) -> None:
        """A higher ``epoch`` seen (in a request or response) with no leader: unattached.
        Raises IllegalStateError unless ``epoch`` > the current epoch."""
        if epoch <= self.epoch:
            raise IllegalStateError(f"cannot go to Unattached in epoch {epoch} from {self._describe()}")
        self._set(UnattachedState(epoch))

    def transition_to_voted(self, epoch: int, candidate_id: int) -> None:
        """Vote for ``candidate_id`` in ``epoch``: from any state of a lower epoch, or from
        Unattached of the same epoch. Raises IllegalStateError otherwise (a second vote in one
        epoch, a vote for oneself or for a non-voter)."""
        if candidate_id == self.local_id:
            raise IllegalStateError("cannot vote for oneself: become a candidate")
        if candidate_id not in self.voters:
            raise IllegalStateError(f"cannot vote for {candidate_id}: not a voter")
        if epoch < self.epoch or (epoch == self.epoch and not isinstance(self.state, UnattachedState)):
            raise IllegalStateError(f"cannot vote for {candidate_id} in epoch {epoch} from {self._describe()}")
        self._set(VotedState(epoch, candidate_id))

    def transition_to_candidate(self) -> CandidateState:
        """Stand for election in epoch + 1, voting for oneself. Raises IllegalStateError for a
        non-voter or a leader."""
        if not self.is_voter:
            raise IllegalStateError(f"node {self.local_id} is not a voter")
        if isinstance(self.state, LeaderState):
            raise IllegalStateError(f"cannot become a candidate from {self._describe()}")
        retries = self.state.retries + 1 if isinstance(self.state, CandidateState) else 1
        state = CandidateState(self.epoch + 1, self.local_id, self.voters, {self.local_id}, retries=retries)
        self._set(state)
        return state

    def transition_to_leader(self, epoch_start_offset: int, now_ms: int = -1) -> LeaderState:
        """The candidate with a majority becomes leader; its log ends at ``epoch_start_offset``.
        Raises IllegalStateError when not a candidate or without a majority."""
        s = self.state
        if not isinstance(s, CandidateState):
            raise IllegalStateError(f"cannot become leader from {self._describe()}")
        if not s.is_vote_granted():
            raise IllegalStateError(f"cannot become leader of epoch {s.epoch} with votes {sorted(s.granting)} "
                                    f"of {len(self.voters)} voters")
        state = LeaderState(s.epoch, self.local_id, epoch_start_offset,
                            {v: ReplicaState(v) for v in sorted(self.voters)}, frozenset(s.granting))
        self._set(state)
        return state

    def transition_to_follower(self, epoch: int, leader_id: int) -> None:
        """``leader_id`` leads ``epoch`` (BeginQuorumEpoch, or a response naming it): from any
        state of a lower epoch, or Unattached/Voted/Candidate of the same epoch. Raises
        IllegalStateError otherwise (two leaders for one epoch, or oneself as leader)."""
        if leader_id == self.local_id:
            raise IllegalStateError("cannot follow oneself")
        if epoch < self.epoch:
            raise IllegalStateError(f"cannot follow {leader_id} in epoch {epoch} from {self._describe()}")
        if epoch == self.epoch:
            if isinstance(self.state, FollowerState) and self.state.leader_id == leader_id:
                return
            if isinstance(self.state, (FollowerState, LeaderState, ResignedState)):
                raise IllegalStateError(f"cannot follow {leader_id} in epoch {epoch} from {self._describe()}")
        self._set(FollowerState(epoch, leader_id))

    def transition_to_resigned(self, preferred_successors: tuple[int, ...] = ()) -> None:
        """The leader resigns (shutdown, or no fetches from a majority). Raises IllegalStateError
        when not leader."""
        if not isinstance(self.state, LeaderState):
            raise IllegalStateError(f"cannot resign from {self._describe()}")
        self._set(ResignedState(self.epoch, self.local_id, preferred_successors))

    # ------------------------------------------------------------------ votes

    def can_grant_vote(self, candidate_id: int, candidate_log_is_up_to_date: bool) -> bool:
        """Whether this node, in the current epoch, may vote for ``candidate_id`` (Kafka's
        EpochState.canGrantVote): Unattached grants to an up-to-date candidate, Voted only to the
        same candidate again, every other state refuses."""
        s = self.state
        if isinstance(s, UnattachedState):
            return candidate_log_is_up_to_date
        if isinstance(s, VotedState):
            return s.voted_id == candidate_id and candidate_log_is_up_to_date
        return False

    def handle_vote_request(self, candidate_id: int, candidate_epoch: int, candidate_last: OffsetAndEpoch,
                            local_end: OffsetAndEpoch) -> bool:
        """Decide a Vote request (KafkaRaftClient.handleVoteRequest): a higher epoch first makes
        this node unattached in it; then the vote is granted per can_grant_vote (the candidate's
        log must be >= ``local_end``) and, when granted from Unattached, recorded as Voted (written
        to the file before the answer). Returns whether the vote is granted. The caller answers
        FENCED_LEADER_EPOCH for ``candidate_epoch`` below the current epoch without calling."""
        if candidate_epoch < self.epoch:
            return False
        if candidate_epoch > self.epoch:
            self.transition_to_unattached(candidate_epoch)
        if candidate_id not in self.voters or candidate_id == self.local_id:
            return False
        granted = self.can_grant_vote(candidate_id, candidate_last >= local_end)
        if granted and isinstance(self.state, UnattachedState):
            self.transition_to_voted(candidate_epoch, candidate_id)
        return granted

    # ------------------------------------------------------------------ internals

    def _describe(self) -> str:
        return f"{self.state.name} in epoch {self.epoch}"

    def _set(self, state: EpochState) -> None:
        old = self.state
        self.state = state
        try:
            self._write()
        except KafkaStorageError:
            self.state = old
            raise
        log.info("quorum_state_changed", node_id=self.local_id, old=f"{old.name}@{old.epoch}",
                 new=f"{state.name}@{state.epoch}", leader_id=self.leader_id)

    def _write(self) -> None:
        self.store.write_election_state(self.election_state())
