"""GroupMetadata: one classic consumer group's state machine, members and committed
offsets (Kafka's kafka.coordinator.group.GroupMetadata). Pure data and rules, no I/O.

States and the only legal transitions (Kafka's GroupState.validPreviousStates):

    Empty               <- PreparingRebalance           (no member rejoined)
    PreparingRebalance  <- Stable, CompletingRebalance, Empty
    CompletingRebalance <- PreparingRebalance          (all joined; waiting for the leader's SyncGroup)
    Stable              <- CompletingRebalance         (the leader's assignment was stored)
    Dead                <- any state                   (group deleted / expired / partition emigrated)

Any other transition raises IllegalGroupStateTransition. The first member added becomes the
leader; when the leader leaves, the next member (one awaiting join first) takes over. The
protocol of a generation is the one every member supports that most members prefer
(``select_protocol``). A generation counter starts at 0 and grows by one per completed join
phase (``init_next_generation``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

import attrs

from kafkalike.coordinator.member_metadata import MemberMetadata
from kafkalike.storage import TopicPartition


class GroupState(enum.Enum):
    """The five states of a classic group; ``value`` is the name DescribeGroups/ListGroups send."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_E, _P, _C, _S, _D = (GroupState.EMPTY, GroupState.PREPARING_REBALANCE,
                      GroupState.COMPLETING_REBALANCE, GroupState.STABLE, GroupState.DEAD)

VALID_PREVIOUS_STATES: dict[GroupState, frozenset[GroupState]] = {
    _D: frozenset({_S, _P, _C, _E, _D}),
    _C: frozenset({_P}),
    _S: frozenset({_C}),
    _P: frozenset({_S, _C, _E}),
    _E: frozenset({_P}),
}
"""Kafka's validPreviousStates, state -> states it may be entered from."""


class IllegalGroupStateTransition(Exception):
    """A transition Kafka's state machine forbids (a coordinator bug, never a client error)."""


@attrs.frozen
class OffsetAndMetadata:
    """A committed offset (OffsetCommitValue): offset, leader epoch (-1 unknown), metadata
    string, commit timestamp (ms since the epoch) and, for commits that asked for an explicit
    retention (OffsetCommit v2-v4 retention_time), the expire timestamp (ms), else None."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = 0
    expire_timestamp: int | None = None


@attrs.frozen
class CommitRecordMetadataAndOffset:
    """A committed offset with the base offset of the __consumer_offsets batch that holds it
    (None while its append has not completed), Kafka's CommitRecordMetadataAndOffset. The batch
    offset orders commits by their position in the log: a transactional commit completed by a
    COMMIT marker replaces the current offset only if that one was written earlier."""

    appended_batch_offset: int | None
    offset_and_metadata: OffsetAndMetadata

    def older_than(self, that: "CommitRecordMetadataAndOffset") -> bool:
        """True when this record precedes ``that`` in the log (both appended). Kafka's
        olderThan; an offset whose position is unknown counts as older."""
        if that.appended_batch_offset is None:
            raise ValueError("older_than: the newer commit has not been appended yet")
        return self.appended_batch_offset is None or self.appended_batch_offset < that.appended_batch_offset


@attrs.frozen
class MemberSummary:
    """One member as DescribeGroups shows it (metadata/assignment empty unless Stable)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@attrs.frozen
class GroupSummary:
    """A group as DescribeGroups shows it (Kafka's GroupSummary)."""

    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberSummary, ...]


@attrs.define
class GroupMetadata:
    """One group. ``members`` keeps join order (dict insertion order)."""

    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, MemberMetadata] = attrs.field(factory=dict)
    pending_members: dict[str, int] = attrs.field(factory=dict)  # member id -> expiry (ms)
    static_members: dict[str, str] = attrs.field(factory=dict)   # group.instance.id -> member id
    offsets: dict[TopicPartition, OffsetAndMetadata] = attrs.field(factory=dict)
    # the __consumer_offsets batch offset of each committed offset's record (absent: unknown)
    offset_positions: dict[TopicPartition, int] = attrs.field(factory=dict)
    # transactional offsets awaiting their transaction's marker: producer id -> tp -> commit
    # (Kafka's pendingTransactionalOffsetCommits; KIP-98)
    pending_txn_offsets: dict[int, dict[TopicPartition, CommitRecordMetadataAndOffset]] = \
        attrs.field(factory=dict)
    current_state_timestamp_ms: int = -1  # wall clock ms of the last state change
    new_member_added: bool = False
    # the join phase's deadline (monotonic ms) and the initial-delay budget left (ms)
    join_deadline_ms: int | None = None
    initial_delay_remaining_ms: int = 0
    initial_delay_ms: int = 0
    # members of the new generation that have not sent SyncGroup yet, and when they must have
    pending_sync: set[str] = attrs.field(factory=set)
    sync_deadline_ms: int | None = None

    # ------------------------------------------------------------------ state
    def is_state(self, state: GroupState) -> bool:
        return self.state is state

    def can_rebalance(self) -> bool:
        """True if a rebalance may start from the current state."""
        return self.state in VALID_PREVIOUS_STATES[GroupState.PREPARING_REBALANCE]

    def transition_to(self, target: GroupState, now_wall_ms: int = -1) -> None:
        """Move to ``target``; raises IllegalGroupStateTransition if Kafka forbids it."""
        if self.state not in VALID_PREVIOUS_STATES[target]:
            raise IllegalGroupStateTransition(
                f"group {self.group_id} should be in one of "
                f"{sorted(s.value for s in VALID_PREVIOUS_STATES[target])} before moving to "
                f"{target.value}, but it is {self.state.value}")
        self.state = target
        self.current_state_timestamp_ms = now_wall_ms

    # ------------------------------------------------------------------ members
    def has(self, member_id: str) -> bool:
        return member_id in self.members

    def get(self, member_id: str) -> MemberMetadata:
        return self.members[member_id]

    def size(self) -> int:
        return len(self.members)

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def add(self, member: MemberMetadata, join_callback: object | None = None) -> None:
        """Add a member (first member: protocol type set, and it becomes leader)."""
        if not self.members:
            self.protocol_type = member.protocol_type
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        self.pending_members.pop(member.member_id, None)

    def remove(self, member_id: str) -> MemberMetadata | None:
        """Remove a member; a new leader is chosen when it led (one awaiting join first)."""
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        self.pending_sync.discard(member_id)
        if member.group_instance_id is not None and \
                self.static_members.get(member.group_instance_id) == member_id:
            del self.static_members[member.group_instance_id]
        if self.leader_id == member_id:
            awaiting = [m for m in self.members.values() if m.is_awaiting_join]
            rest = awaiting or list(self.members.values())
            self.leader_id = rest[0].member_id if rest else None
        return member

    def static_member_id(self, instance_id: str | None) -> str | None:
        """The member id registered for a group.instance.id, or None."""
        return None if instance_id is None else self.static_members.get(instance_id)

    def is_static_member_fenced(self, member_id: str, instance_id: str | None) -> bool:
        """A static member whose id no longer matches the instance's registered one (an
        older incarnation): FENCED_INSTANCE_ID."""
        if instance_id is None:
            return False
        registered = self.static_members.get(instance_id)
        return registered is not None and registered != member_id

    def replace_static_member(self, instance_id: str, old_member_id: str,
                              new_member_id: str) -> MemberMetadata:
        """Give a rejoining static member a new member id, keeping its assignment and role
        (Kafka's replaceStaticMember). Returns the member."""
        member = self.members.pop(old_member_id)
        if old_member_id in self.pending_sync:
            self.pending_sync.discard(old_member_id)
            self.pending_sync.add(new_member_id)
        member.member_id = new_member_id
        self.members[new_member_id] = member
        if self.leader_id == old_member_id:
            self.leader_id = new_member_id
        self.static_members[instance_id] = new_member_id
        return member

    def add_pending_member(self, member_id: str, expires_at_ms: int) -> None:
        """A member id handed out with MEMBER_ID_REQUIRED (KIP-394), not yet a member."""
        self.pending_members[member_id] = expires_at_ms

    def is_pending_member(self, member_id: str) -> bool:
        return member_id in self.pending_members

    def all_members_joined(self) -> bool:
        """Every member has rejoined and no handed-out member id is outstanding."""
        return (all(m.is_awaiting_join for m in self.members.values())
                and not self.pending_members)

    def not_yet_rejoined_members(self) -> list[MemberMetadata]:
        return [m for m in self.members.values() if not m.is_awaiting_join]

    def rebalance_timeout_ms(self) -> int:
        """The longest rebalance timeout of the members (0 with none)."""
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    # ------------------------------------------------------------------ protocols
    def supports_protocols(self, protocol_type: str, protocols: Iterable[str]) -> bool:
        """Can a member with this protocol type and these protocols join? An empty group takes
        any non-empty type and protocol list; otherwise the type must match and at least one
        protocol must be supported by every member (INCONSISTENT_GROUP_PROTOCOL if not)."""
        names = set(protocols)
        if not self.members:
            return bool(protocol_type) and bool(names)
        return protocol_type == self.protocol_type and bool(names & self.candidate_protocols())

    def candidate_protocols(self) -> set[str]:
        """Protocols supported by every member."""
        sets = [m.protocols() for m in self.members.values()]
        return set.intersection(*sets) if sets else set()

    def select_protocol(self) -> str:
        """The protocol every member supports that gets the most first-preference votes; ties
        go to the one that comes first in the leader's (then members') preference order."""
        candidates = self.candidate_protocols()
        if not candidates:
            raise ValueError(f"group {self.group_id} has no protocol all members support")
        votes: dict[str, int] = {}
        for m in self.members.values():
            choice = m.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        order: list[str] = []
        ordered_members = sorted(self.members.values(), key=lambda m: m.member_id != self.leader_id)
        for m in ordered_members:
            for name, _ in m.supported_protocols:
                if name in votes and name not in order:
                    order.append(name)
        return max(order, key=lambda name: (votes[name], -order.index(name)))

    def current_member_metadata(self) -> list[tuple[str, str | None, bytes]]:
        """(member id, group.instance.id, metadata for the chosen protocol) per member: what
        the leader's JoinGroup response carries."""
        assert self.protocol_name is not None
        return [(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
                for m in self.members.values()]

    def init_next_generation(self, now_wall_ms: int = -1) -> None:
        """Start the next generation: with members, choose the protocol and move to
        CompletingRebalance; without, clear the protocol and move to Empty."""
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.transition_to(GroupState.COMPLETING_REBALANCE, now_wall_ms)
        else:
            self.protocol_name = None
            self.transition_to(GroupState.EMPTY, now_wall_ms)
        self.join_deadline_ms = None

    def set_assignment(self, assignment: dict[str, bytes]) -> None:
        """Install the leader's assignment; members it leaves out get empty bytes."""
        for member_id, m in self.members.items():
            m.assignment = assignment.get(member_id, b"")

    def clear_assignment(self) -> None:
        for m in self.members.values():
            m.assignment = b""

    # ------------------------------------------------------------------ offsets
    def has_offsets(self) -> bool:
        """Committed or pending transactional offsets (Kafka's hasOffsets)."""
        return bool(self.offsets) or bool(self.pending_txn_offsets)

    def offset(self, tp: TopicPartition) -> OffsetAndMetadata | None:
        return self.offsets.get(tp)

    def committed(self, tp: TopicPartition) -> CommitRecordMetadataAndOffset | None:
        """The committed offset of ``tp`` with its log position, or None."""
        om = self.offsets.get(tp)
        return None if om is None else CommitRecordMetadataAndOffset(self.offset_positions.get(tp), om)

    def put_offset(self, tp: TopicPartition, commit: CommitRecordMetadataAndOffset) -> None:
        """Make ``commit`` the committed offset of ``tp`` (no log-order check)."""
        self.offsets[tp] = commit.offset_and_metadata
        if commit.appended_batch_offset is None:
            self.offset_positions.pop(tp, None)
        else:
            self.offset_positions[tp] = commit.appended_batch_offset

    def prepare_txn_offset_commit(self, producer_id: int, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Record ``offsets`` as pending for ``producer_id`` before their append (Kafka's
        GroupMetadata.prepareTxnOffsetCommit)."""
        pending = self.pending_txn_offsets.setdefault(producer_id, {})
        for tp, om in offsets.items():
            pending[tp] = CommitRecordMetadataAndOffset(None, om)

    def on_txn_offset_commit_append(self, producer_id: int, tp: TopicPartition,
                                    commit: CommitRecordMetadataAndOffset) -> None:
        """The append of a pending transactional offset succeeded: remember its batch offset
        (only if it is still the pending value; a later commit of the same producer wins)."""
        pending = self.pending_txn_offsets.get(producer_id)
        if pending is not None and tp in pending and \
                pending[tp].offset_and_metadata == commit.offset_and_metadata:
            pending[tp] = commit

    def fail_pending_txn_offset_commit(self, producer_id: int, tp: TopicPartition) -> None:
        """The append failed: forget the pending offset (the client retries)."""
        pending = self.pending_txn_offsets.get(producer_id)
        if pending is not None:
            pending.pop(tp, None)
            if not pending:
                del self.pending_txn_offsets[producer_id]

    def complete_pending_txn_offset_commit(self, producer_id: int, is_commit: bool) -> list[TopicPartition]:
        """The producer's transaction ended (a COMMIT or ABORT marker was written to this
        group's offsets partition). On commit each appended pending offset becomes the
        committed one unless a commit written later in the log is already there (Kafka's
        completePendingTxnOffsetCommit); on abort they are dropped. Returns the partitions
        whose committed offset changed."""
        pending = self.pending_txn_offsets.pop(producer_id, None)
        changed: list[TopicPartition] = []
        if not is_commit or pending is None:
            return changed
        for tp, commit in pending.items():
            if commit.appended_batch_offset is None:
                # the append has not completed: Kafka throws IllegalStateException here; the
                # coordinator sends markers only after TxnOffsetCommit answered, so skip it
                continue
            current = self.committed(tp)
            if current is None or current.older_than(commit):
                self.put_offset(tp, commit)
                changed.append(tp)
        return changed

    def has_pending_offset_commits_from_producer(self, producer_id: int) -> bool:
        return producer_id in self.pending_txn_offsets

    def has_pending_txn_offsets_for(self, tp: TopicPartition) -> bool:
        """True while some producer's open transaction holds an offset of ``tp`` (OffsetFetch
        with require_stable then answers UNSTABLE_OFFSET_COMMIT)."""
        return any(tp in pending for pending in self.pending_txn_offsets.values())

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to, decoded from consumer-protocol metadata (v0+:
        int16 version, array of string topics); None when unknown (not a consumer group or
        undecodable metadata)."""
        if self.protocol_type != "consumer" or self.protocol_name is None or not self.members:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            got = decode_subscription_topics(m.metadata(self.protocol_name)) \
                if self.protocol_name in m.protocols() else None
            if got is None:
                return None
            topics |= got
        return topics

    def summary(self) -> GroupSummary:
        """DescribeGroups view: members with metadata and assignment only when Stable."""
        if self.state is GroupState.STABLE:
            protocol = self.protocol_name or ""
            members = tuple(MemberSummary(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                          m.metadata(protocol) if protocol in m.protocols() else b"",
                                          m.assignment) for m in self.members.values())
        else:
            protocol = ""
            members = tuple(MemberSummary(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                          b"", b"") for m in self.members.values())
        return GroupSummary(self.state.value, self.protocol_type or "", protocol, members)


def decode_subscription_topics(data: bytes) -> set[str] | None:
    """Topics of a ConsumerProtocolSubscription (int16 version, int32 count, int16-length
    strings); None when it does not parse."""
    import struct

    try:
        pos = 2
        (count,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if count < 0 or count > 100000:
            return None
        out = set()
        for _ in range(count):
            (n,) = struct.unpack_from(">h", data, pos)
            pos += 2
            if n < 0 or pos + n > len(data):
                return None
            out.add(bytes(data[pos:pos + n]).decode("utf-8"))
            pos += n
        return out
    except (struct.error, UnicodeDecodeError):
        return None


def decode_assignment_partitions(data: bytes) -> list[TopicPartition] | None:
    """Partitions of a ConsumerProtocolAssignment (int16 version, array of (string topic,
    array of int32 partitions), then user data); None when empty or unparsable. Used by
    tools (``consumer-groups --describe``)."""
    import struct

    if not data:
        return None
    try:
        pos = 2
        (count,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if count < 0 or count > 100000:
            return None
        out: list[TopicPartition] = []
        for _ in range(count):
            (n,) = struct.unpack_from(">h", data, pos)
            pos += 2
            topic = bytes(data[pos:pos + n]).decode("utf-8")
            pos += n
            (np_,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if np_ < 0 or np_ > 1000000:
                return None
            parts = struct.unpack_from(f">{np_}i", data, pos)
            pos += 4 * np_
            out.extend(TopicPartition(topic, p) for p in parts)
        return out
    except (struct.error, UnicodeDecodeError):
        return None


def member_from_protocols(member_id: str, instance_id: str | None, client_id: str, client_host: str,
                          rebalance_timeout_ms: int, session_timeout_ms: int, protocol_type: str,
                          protocols: Sequence[tuple[str, bytes]]) -> MemberMetadata:
    """A new MemberMetadata from JoinGroup fields."""
    return MemberMetadata(member_id=member_id, group_instance_id=instance_id, client_id=client_id,
                          client_host=client_host, rebalance_timeout_ms=rebalance_timeout_ms,
                          session_timeout_ms=session_timeout_ms, protocol_type=protocol_type,
                          supported_protocols=list(protocols))
