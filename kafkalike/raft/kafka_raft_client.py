"""Raft for the KRaft metadata log on trio (KIP-595), after Kafka 3.9's ``KafkaRaftClient``.

A quorum of static voters (``controller.quorum.voters`` = ``"1@127.0.0.1:9093,2@..."``,
kraft.version 0) keeps one log, ``__cluster_metadata``-0 (topic id ``AAAAAAAAAAAAAAAAAAAAAQ``):

* **Election.** A voter that hears from no leader for an election timeout (random in
  [``election_timeout_ms``, 2 x``election_timeout_ms``]; a follower: ``fetch_timeout_ms`` without
  a successful Fetch) becomes a candidate of epoch + 1 and sends **Vote** (v0) to every voter with
  the epoch and end offset of its log. A voter grants one vote per epoch, to a candidate whose log
  is at least as up to date as its own (QuorumState). With a majority the candidate is leader: it
  appends a **LeaderChange** control batch (its first batch of the epoch) and sends
  **BeginQuorumEpoch** (v0) to the others until each answers. Without one before the timeout, or
  refused by a majority, it waits a random backoff (< ``election_backoff_max_ms``) and stands again.
* **Replication.** Followers pull with **Fetch** (v13, by topic id) from the leader:
  ``fetch_offset`` = their end offset, ``last_fetched_epoch`` = the epoch of their last batch. The
  leader checks the pair against its log: when the follower's log diverged (the epoch is not the
  leader's at that offset) it answers ``diverging_epoch`` = (epoch, end offset) and the follower
  truncates (KIP-320's rule, in the Fetch itself); otherwise it answers batches from
  ``fetch_offset`` (waiting up to ``fetch_max_wait_ms`` when there are none) and its high
  watermark. A Fetch at offset N tells the leader that the follower holds everything below N; the
  high watermark is the largest offset a majority of voters holds, once it is past the
  leader's LeaderChange batch. Each batch carries its Raft epoch as partitionLeaderEpoch.
* **Leaving.** A leader that has no Fetch from a majority within 1.5 x ``fetch_timeout_ms``
  (Kafka's check-quorum), or is shut down, resigns: it sends **EndQuorumEpoch** (v0) naming its
  preferred successors (most up to date first); a follower named first stands at once.
* Any request or response with a higher epoch makes the node unattached (or a follower, when it
  names the leader) in that epoch; an older epoch gets FENCED_LEADER_EPOCH.

API (Kafka's RaftClient): ``append(records) -> last offset`` on the leader (``NotLeaderError``,
NOT_LEADER_OR_FOLLOWER, otherwise); a ``RaftClientListener`` gets ``handle_commit(Batch)`` for each
committed batch in order (data and control) and ``handle_leader_change(LeaderAndEpoch)``;
committed batches (and snapshots to load) are handed over by a task of their own, which decodes
batches of more than ``RECORDS_PER_YIELD`` records on a worker thread: a 10,000-record batch must
not hold up the fetch loop and its timers (Kafka's Raft client has a thread of its own, and hands
batches to listeners that replay them on theirs); ``append_offloaded`` encodes a large batch on a
worker thread the same way;
``describe_quorum()`` (also served as DescribeQuorum v0-1 to ``kafka-metadata-quorum.sh``);
``resign()``. The RPCs are served by ``RaftServer`` on the node's controller listener; requests go out
through ``RaftNetworkChannel`` (kafkalike.client.connection, one connection per voter and purpose).

Errors answered (Kafka's): FENCED_LEADER_EPOCH (older epoch), UNKNOWN_LEADER_EPOCH (newer epoch
in a Fetch), NOT_LEADER_OR_FOLLOWER (Fetch/DescribeQuorum to a non-leader), INCONSISTENT_CLUSTER_ID,
INCONSISTENT_VOTER_SET (a Vote/BeginQuorumEpoch/EndQuorumEpoch from a non-voter), UNKNOWN_TOPIC_ID /
UNKNOWN_TOPIC_OR_PARTITION (not ``__cluster_metadata``-0), INVALID_REQUEST (negative offsets).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import structlog
import trio

from kafkalike.client.connection import KafkaConnection
from kafkalike.client.errors import ClientError
from kafkalike.client.messages import build_entity
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import (RequestHeader, api_versions_response, encode_api_versions_fallback,
                                      encode_response, parse_request, request_class, response_class)
from kafkalike.protocol.errors import ErrorCode, ProtocolError, UnknownApiKeyError, UnsupportedVersionError
from kafkalike.protocol.frame import FrameReader
from kafkalike.protocol.records import DecodedBatch
from kafkalike.raft.kafka_metadata_log import (METADATA_TOPIC, Batch, KafkaMetadataLog, decode_committed,
                                               decode_raft_batch)
from kafkalike.storage.errors import StorageError
from kafkalike.storage.snapshots import Snapshot, SnapshotId, read_snapshot, snapshot_path
from kafkalike.raft.quorum_state import (CandidateState, FollowerState, IllegalStateError, LeaderState,
                                         OffsetAndEpoch, QuorumState, ReplicaState, ResignedState, UnattachedState,
                                         VotedState)

__all__ = ["RaftConfig", "KafkaRaftClient", "RaftClientListener", "LeaderAndEpoch", "NotLeaderError",
           "QuorumInfo", "RaftServer", "RaftNetworkChannel", "parse_voters", "RAFT_APIS", "METADATA_TOPIC_ID"]

log = structlog.get_logger("kafkalike.raft")

METADATA_TOPIC_ID = mr.METADATA_TOPIC_ID
"""Kafka's Topic.METADATA_TOPIC_ID: Uuid(0, 1), printed AAAAAAAAAAAAAAAAAAAAAQ."""

VOTE_VERSION = 0
BEGIN_QUORUM_EPOCH_VERSION = 0
END_QUORUM_EPOCH_VERSION = 0
FETCH_VERSION = 13
FETCH_SNAPSHOT_VERSION = 0

RAFT_APIS: dict[int, tuple[int, int]] = {
    ApiKey.FETCH: (FETCH_VERSION, FETCH_VERSION),
    ApiKey.API_VERSIONS: (0, 3),
    ApiKey.VOTE: (0, 0),
    ApiKey.BEGIN_QUORUM_EPOCH: (0, 0),
    ApiKey.END_QUORUM_EPOCH: (0, 0),
    ApiKey.DESCRIBE_QUORUM: (0, 1),
    ApiKey.DESCRIBE_CLUSTER: (1, 1),
    ApiKey.FETCH_SNAPSHOT: (0, 0),
}
"""The APIs a Raft node serves on its controller listener, at these versions (kraft.version 0:
the versions before KIP-853's directory ids; Fetch from v13, addressed by topic id).
DescribeCluster v1 with endpoint type controller (KIP-919) is what an admin client sent to
``--bootstrap-controller`` asks first (kafka-metadata-quorum.sh)."""

ENDPOINT_TYPE_CONTROLLER = 2  # KIP-919: DescribeCluster's EndpointType (1 broker, 2 controller)

FETCH_MAX_BYTES = 8 * 1024 * 1024  # Kafka's KafkaRaftClient.MAX_FETCH_SIZE_BYTES

RECORDS_PER_YIELD = 50
"""Batches of more records than this are encoded and decoded on a worker thread, so that the trio
loop (fetches, timeouts) keeps running meanwhile (kafkalike's: Kafka's Raft client runs on a
thread of its own). Listeners replaying a batch on the loop yield every so many records too."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def parse_voters(text: str) -> dict[int, tuple[str, int]]:
    """``controller.quorum.voters`` ("1@host:9093,2@[::1]:9094") -> {id: (host, port)}.
    Raises ValueError naming the bad entry (Kafka: "Invalid format of voter entry")."""
    voters: dict[int, tuple[str, int]] = {}
    for entry in (e.strip() for e in text.split(",") if e.strip()):
        node, sep, address = entry.partition("@")
        host, _, port = address.rpartition(":")
        if not sep or not node.isdigit() or not host or not port.isdigit():
            raise ValueError(f"Invalid format of voter entry {entry!r} (expected id@host:port)")
        voters[int(node)] = (host.strip("[]"), int(port))
    if not voters:
        raise ValueError("controller.quorum.voters is empty")
    return voters


@attrs.frozen
class RaftConfig:
    """A Raft node's settings, Kafka's names and defaults (QuorumConfig), times in ms.

    ``node_id`` (node.id), ``voters`` {id: (host, port)} (controller.quorum.voters),
    ``cluster_id`` (checked in every request; None: not checked), ``election_timeout_ms``
    (controller.quorum.election.timeout.ms, 1000), ``election_backoff_max_ms``
    (controller.quorum.election.backoff.max.ms, 1000), ``fetch_timeout_ms``
    (controller.quorum.fetch.timeout.ms, 2000), ``request_timeout_ms``
    (controller.quorum.request.timeout.ms, 2000), ``retry_backoff_ms``
    (controller.quorum.retry.backoff.ms, 20), ``fetch_max_wait_ms`` (Kafka's fixed 500)."""

    node_id: int
    voters: dict[int, tuple[str, int]]
    cluster_id: str | None = None
    election_timeout_ms: int = 1000
    election_backoff_max_ms: int = 1000
    fetch_timeout_ms: int = 2000
    request_timeout_ms: int = 2000
    retry_backoff_ms: int = 20
    fetch_max_wait_ms: int = 500


@attrs.frozen
class LeaderAndEpoch:
    """The leader of an epoch as a listener sees it (``leader_id`` -1: unknown)."""

    leader_id: int
    epoch: int


class RaftClientListener(Protocol):
    """What the layer above (the quorum controller, a metadata loader) implements (Kafka's
    RaftClient.Listener). Called on the client's task; must not block."""

    def handle_commit(self, batch: Batch) -> None:
        """A committed batch (offsets below the high watermark), in log order, each once."""

    def handle_leader_change(self, leader: LeaderAndEpoch) -> None:
        """The known leader or epoch changed."""

    # optional: ``handle_load_snapshot(snapshot_id: SnapshotId, snapshot: Snapshot)``, called
    # before the commits that follow a snapshot when the listener is behind the log start offset
    # (a follower that fetched a snapshot; Kafka's handleLoadSnapshot)


class NotLeaderError(Exception):
    """append() on a node that is not the leader of the given epoch (NOT_LEADER_OR_FOLLOWER)."""

    error_code = ErrorCode.not_leader_or_follower


@attrs.frozen
class QuorumInfo:
    """describe_quorum(): leader, epoch, high watermark and each replica's state."""

    leader_id: int
    leader_epoch: int
    high_watermark: int
    voters: tuple[ReplicaState, ...]
    observers: tuple[ReplicaState, ...]


# ------------------------------------------------------------------------------ network channel


class RaftNetworkChannel:
    """Outgoing Raft requests (Kafka's KafkaNetworkChannel): one KafkaConnection per (voter,
    purpose), opened on demand in ``nursery`` and dropped on any failure. ``send`` returns the
    response entity, or None when the voter cannot be reached or does not answer in time."""

    def __init__(self, config: RaftConfig, nursery: trio.Nursery) -> None:
        self.config = config
        self._nursery = nursery
        self._connections: dict[tuple[int, str], KafkaConnection] = {}
        self._locks: dict[tuple[int, str], trio.Lock] = {}

    async def _connection(self, node_id: int, purpose: str) -> KafkaConnection | None:
        key = (node_id, purpose)
        async with self._locks.setdefault(key, trio.Lock()):
            conn = self._connections.get(key)
            if conn is not None and not conn.closed:
                return conn
            host, port = self.config.voters[node_id]
            try:
                conn = await KafkaConnection.connect(
                    host, port, nursery=self._nursery, client_id=f"raft-client-{self.config.node_id}",
                    negotiate=False, node_id=node_id, connect_timeout_ms=self.config.request_timeout_ms,
                    request_timeout_ms=self.config.request_timeout_ms)
            except (ClientError, OSError) as exc:
                log.debug("raft_connect_failed", node_id=node_id, error=str(exc))
                return None
            self._connections[key] = conn
            return conn

    async def send(self, node_id: int, request: Any, *, purpose: str = "control",
                   timeout_ms: float | None = None) -> Any | None:
        """Send ``request`` (a kio entity) to voter ``node_id``; None on failure (logged)."""
        conn = await self._connection(node_id, purpose)
        if conn is None:
            return None
        try:
            return await conn.send(request, timeout_ms=timeout_ms)
        except (ClientError, OSError) as exc:
            log.debug("raft_request_failed", node_id=node_id, api=type(request).__name__, error=str(exc))
            self._connections.pop((node_id, purpose), None)
            await conn.aclose()
            return None

    async def aclose(self) -> None:
        """Close every connection."""
        for conn in list(self._connections.values()):
            await conn.aclose()
        self._connections.clear()


# ------------------------------------------------------------------------------ the client


def _entity(api_key: int, version: int, kind: str, **fields: Any) -> Any:
    cls = request_class(api_key, version) if kind == "request" else response_class(api_key, version)
    return build_entity(cls, fields)


class KafkaRaftClient:
    """One Raft node (see module doc). ``log``: its KafkaMetadataLog; ``quorum``: its QuorumState
    (voters = config.voters); ``listener``: gets committed batches and leader changes (optional);
    ``rng``: the election timeouts' randomness (tests seed it).

    Start with ``await nursery.start(client.run)``: it initializes the quorum state from the
    quorum-state file and runs until cancelled. Serve its RPCs with ``RaftServer(client)``.
    """

    def __init__(self, config: RaftConfig, log: KafkaMetadataLog, quorum: QuorumState,
                 listener: RaftClientListener | None = None, *, rng: random.Random | None = None,
                 clock_ms: Callable[[], int] = _now_ms) -> None:
        if quorum.voters != frozenset(config.voters):
            raise ValueError(f"quorum voters {sorted(quorum.voters)} != config voters {sorted(config.voters)}")
        self.config = config
        self.log = log
        self.quorum = quorum
        self.listener = listener
        self.rng = rng or random.Random()
        self.clock_ms = clock_ms
        self._nursery: trio.Nursery | None = None
        self._channel: RaftNetworkChannel | None = None
        self._role_scope = trio.CancelScope()
        self._changed = trio.Event()
        self._fetch_deadline = math.inf
        self._next_commit_offset = 0  # the listener's next offset
        self._commits_ready = trio.Event()  # wakes the commit delivery task
        self._snapshot_to_load: tuple[SnapshotId, Snapshot] | None = None  # a fetched snapshot, not yet loaded
        self._notified_leader: LeaderAndEpoch | None = None
        self._candidate_rejected = trio.Event()
        self._known_high_watermark = -1  # a follower's: the leader's, capped at our end offset
        self._end_quorum_epoch_sent = trio.Event()
        self._election_deadline = math.inf  # trio time when an unattached/voted/resigned node or a candidate gives up

    # ------------------------------------------------------------------ life cycle

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Initialize the quorum state and run the node until cancelled (network channel in a
        nursery of its own)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._channel = RaftNetworkChannel(self.config, nursery)
            self.quorum.initialize(self.log.end_offset_and_epoch())
            nursery.start_soon(self._deliver_commits_loop)
            self._enter_state(None)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._role_scope.cancel()
                with trio.CancelScope(shield=True):
                    await self._channel.aclose()

    @property
    def node_id(self) -> int:
        """This node's id."""
        return self.config.node_id

    @property
    def high_watermark(self) -> int:
        """The high watermark this node knows (-1 before it knows one)."""
        s = self.quorum.state
        if isinstance(s, LeaderState):
            return s.high_watermark
        return self._known_high_watermark

    def leader_and_epoch(self) -> LeaderAndEpoch:
        """The leader this node knows now."""
        return LeaderAndEpoch(self.quorum.leader_id, self.quorum.epoch)

    def _changed_signal(self) -> None:
        """Wake every waiting Fetch (new data, a new high watermark or a state change)."""
        self._changed.set()
        self._changed = trio.Event()

    # ------------------------------------------------------------------ transitions

    def _enter_state(self, previous: object) -> None:
        """Start the role tasks of the current state (cancelling the previous ones). The election
        timer: a new random one, except that a candidate or an unattached node (no vote cast) that
        moves to unattached in a higher epoch keeps what was left of its own (Kafka's
        QuorumState.transitionToUnattached), so that Vote requests of ever higher epochs from a
        voter that cannot win do not keep resetting everyone's timer."""
        assert self._nursery is not None
        state = self.quorum.state
        keeps_timer = isinstance(state, UnattachedState) and isinstance(previous, (CandidateState, UnattachedState))
        if not keeps_timer:
            self._election_deadline = trio.current_time() + self._random_election_timeout_s()
        self._role_scope.cancel()
        scope = self._role_scope = trio.CancelScope()
        self._nursery.start_soon(self._run_role, scope, self.quorum.state)
        self._changed_signal()
        self._maybe_notify_leader_change()

    def _transition(self, change: Callable[[], object]) -> bool:
        """Apply a QuorumState transition and enter the new state; False (logged) when Kafka's
        rules refuse it."""
        before = self.quorum.state
        try:
            change()
        except IllegalStateError as exc:
            log.warning("raft_transition_refused", node_id=self.node_id, error=str(exc))
            return False
        if self.quorum.state is not before:
            self._enter_state(before)
        return True

    def _maybe_transition(self, leader_id: int, epoch: int) -> None:
        """Follow a higher epoch (or a newly known leader of this one) that a peer reported
        (Kafka's maybeHandleCommonResponse / maybeTransition)."""
        q = self.quorum
        if epoch > q.epoch:
            if leader_id >= 0 and leader_id != self.node_id:
                self._transition(lambda: q.transition_to_follower(epoch, leader_id))
            else:
                self._transition(lambda: q.transition_to_unattached(epoch))
        elif epoch == q.epoch and leader_id >= 0 and leader_id != self.node_id and \
                isinstance(q.state, (UnattachedState, VotedState, CandidateState)):
            self._transition(lambda: q.transition_to_follower(epoch, leader_id))

    def _become_candidate(self) -> None:
        self._candidate_rejected = trio.Event()
        self._transition(self.quorum.transition_to_candidate)

    def _become_leader(self) -> None:
        q = self.quorum
        start = self.log.end_offset
        if not self._transition(lambda: q.transition_to_leader(start, self.clock_ms())):
            return
        state = q.state
        assert isinstance(state, LeaderState)
        voters = tuple(mr.Voter(v) for v in sorted(q.voters))
        message = mr.LeaderChangeMessage(version=0, leader_id=self.node_id, voters=voters,
                                         granting_voters=tuple(mr.Voter(v) for v in sorted(state.granting)))
        now = self.clock_ms()
        self.log.append_as_leader(mr.build_control_batch(message, epoch=state.epoch, append_time_ms=now),
                                  state.epoch)
        self._on_leader_end_offset(state)
        log.info("raft_leader_elected", node_id=self.node_id, epoch=state.epoch, epoch_start_offset=start,
                 granting=sorted(state.granting))

    def _random_election_timeout_s(self) -> float:
        t = self.config.election_timeout_ms
        return (t + self.rng.randrange(t)) / 1000 if t > 0 else 0.0

    # ------------------------------------------------------------------ roles

    async def _run_role(self, scope: trio.CancelScope, state: object) -> None:
        with scope:
            if isinstance(state, (UnattachedState, VotedState, ResignedState)):
                if isinstance(state, ResignedState):
                    await self._send_end_quorum_epoch(state)
                if not self.quorum.is_voter:
                    await self._find_leader(state)  # an observer never stands: it asks who leads
                    return
                await trio.sleep_until(self._election_deadline)
                if self.quorum.is_voter:
                    self._become_candidate()
            elif isinstance(state, CandidateState):
                await self._run_candidate(state)
            elif isinstance(state, LeaderState):
                await self._run_leader(state)
            elif isinstance(state, FollowerState):
                await self._run_follower(state)

    async def _run_candidate(self, state: CandidateState) -> None:
        if state.is_vote_granted():  # a quorum of one
            self._become_leader()
            return
        rejected = self._candidate_rejected
        async with trio.open_nursery() as nursery:
            for voter in sorted(self.quorum.voters - {self.node_id}):
                nursery.start_soon(self._request_vote, state, voter)
            with trio.move_on_at(self._election_deadline):
                await rejected.wait()
            nursery.cancel_scope.cancel()
        # lost (refused by a majority) or timed out: back off, then stand again (Kafka's
        # exponential backoff, capped at election.backoff.max.ms)
        cap = self.config.election_backoff_max_ms
        backoff = min(cap, self.rng.randrange(1, max(2, min(cap, 50 * 2 ** state.retries))))
        log.info("raft_election_lost", node_id=self.node_id, epoch=state.epoch, granting=sorted(state.granting),
                 rejecting=sorted(state.rejecting), backoff_ms=backoff)
        await trio.sleep(backoff / 1000)
        self._become_candidate()

    async def _request_vote(self, state: CandidateState, voter: int) -> None:
        assert self._channel is not None
        last = self.log.end_offset_and_epoch()
        request = _entity(ApiKey.VOTE, VOTE_VERSION, "request", cluster_id=self.config.cluster_id, topics=[{
            "topic_name": METADATA_TOPIC, "partitions": [{
                "partition_index": 0, "replica_epoch": state.epoch, "replica_id": self.node_id,
                "last_offset_epoch": last.epoch, "last_offset": last.offset}]}])
        while True:
            response = await self._channel.send(voter, request)
            if response is not None:
                break
            await trio.sleep(self.config.retry_backoff_ms / 1000)
        if response.error_code != ErrorCode.none or not response.topics or not response.topics[0].partitions:
            log.warning("raft_vote_error", node_id=self.node_id, voter=voter, error=str(response.error_code))
            return
        p = response.topics[0].partitions[0]
        self._maybe_transition(p.leader_id, p.leader_epoch)
        if self.quorum.state is not state:
            return
        if p.error_code == ErrorCode.none and p.leader_epoch == state.epoch:
            if p.vote_granted:
                state.record_granted_vote(voter)
                if state.is_vote_granted():
                    self._become_leader()
            else:
                state.record_rejected_vote(voter)
                if state.is_vote_rejected():
                    self._candidate_rejected.set()

    async def _run_leader(self, state: LeaderState) -> None:
        check_quorum_s = self.config.fetch_timeout_ms * 1.5 / 1000
        started = self.clock_ms()
        async with trio.open_nursery() as nursery:
            for voter in sorted(self.quorum.voters - {self.node_id}):
                nursery.start_soon(self._begin_quorum_epoch, state, voter)
            while True:  # check quorum (Kafka's LeaderState.timeUntilCheckQuorumExpires)
                await trio.sleep(check_quorum_s / 2)
                now = self.clock_ms()
                if now - started < check_quorum_s * 1000:
                    continue
                recent = {r.replica_id for r in state.voter_states.values()
                          if r.replica_id == self.node_id or now - r.last_fetch_ms <= check_quorum_s * 1000}
                if len(recent) < len(self.quorum.voters) // 2 + 1:
                    log.warning("raft_leader_lost_quorum", node_id=self.node_id, epoch=state.epoch,
                                fetched_recently=sorted(recent))
                    self.resign()
                    return

    async def _begin_quorum_epoch(self, state: LeaderState, voter: int) -> None:
        assert self._channel is not None
        request = _entity(ApiKey.BEGIN_QUORUM_EPOCH, BEGIN_QUORUM_EPOCH_VERSION, "request",
                          cluster_id=self.config.cluster_id, topics=[{
                              "topic_name": METADATA_TOPIC, "partitions": [{
                                  "partition_index": 0, "leader_id": self.node_id, "leader_epoch": state.epoch}]}])
        while True:
            response = await self._channel.send(voter, request)
            if response is not None and response.error_code == ErrorCode.none and response.topics and \
                    response.topics[0].partitions:
                p = response.topics[0].partitions[0]
                self._maybe_transition(p.leader_id, p.leader_epoch)
                if p.error_code == ErrorCode.none:
                    return
            await trio.sleep(self.config.retry_backoff_ms / 1000 if response is None else
                             self.config.request_timeout_ms / 4000)

    def resign(self) -> None:
        """A leader gives up its epoch (shutdown, lost quorum): Resigned, EndQuorumEpoch sent to
        the others naming the voters by how far they fetched. No-op when not leader."""
        s = self.quorum.state
        if not isinstance(s, LeaderState):
            return
        successors = tuple(r.replica_id for r in sorted(s.voter_states.values(), key=lambda r: -r.end_offset)
                           if r.replica_id != self.node_id)
        self._transition(lambda: self.quorum.transition_to_resigned(successors))

    async def shutdown(self) -> None:
        """Graceful shutdown (Kafka's RaftClient.shutdown): a leader resigns and this returns once
        its EndQuorumEpoch requests were answered or ``request_timeout_ms`` passed; other states
        return at once. Cancel ``run`` afterwards."""
        if isinstance(self.quorum.state, LeaderState):
            self._end_quorum_epoch_sent = trio.Event()
            self.resign()
            with trio.move_on_after(self.config.request_timeout_ms / 1000 + 1):
                await self._end_quorum_epoch_sent.wait()

    async def _send_end_quorum_epoch(self, state: ResignedState) -> None:
        assert self._channel is not None
        request = _entity(ApiKey.END_QUORUM_EPOCH, END_QUORUM_EPOCH_VERSION, "request",
                          cluster_id=self.config.cluster_id, topics=[{
                              "topic_name": METADATA_TOPIC, "partitions": [{
                                  "partition_index": 0, "leader_id": self.node_id, "leader_epoch": state.epoch,
                                  "preferred_successors": list(state.preferred_successors)}]}])
        channel = self._channel

        async def send(voter: int) -> None:
            await channel.send(voter, request)

        with trio.move_on_after(self.config.request_timeout_ms / 1000):
            async with trio.open_nursery() as nursery:
                for voter in sorted(self.quorum.voters - {self.node_id}):
                    nursery.start_soon(send, voter)
        self._end_quorum_epoch_sent.set()

    async def _run_follower(self, state: FollowerState) -> None:
        while True:
            self._fetch_deadline = trio.current_time() + self.config.fetch_timeout_ms / 1000
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._fetch_loop, state)
                while (remaining := self._fetch_deadline - trio.current_time()) > 0:
                    await trio.sleep(remaining)
                log.info("raft_fetch_timeout", node_id=self.node_id, leader_id=state.leader_id, epoch=state.epoch)
                if self.quorum.is_voter:
                    self._become_candidate()
                    return
                nursery.cancel_scope.cancel()
            # an observer stays a follower and asks the voters who leads now (Kafka 3.9's
            # pollFollowerAsObserver: after a fetch timeout, Fetch to any bootstrap voter)
            await self._find_leader(state)

    def _fetch_request(self, epoch: int, max_wait_ms: int) -> Any:
        """A Fetch of ``__cluster_metadata``-0 from this node's end offset (replica id = node id,
        for a voter and an observer alike)."""
        end = self.log.end_offset_and_epoch()
        return _entity(ApiKey.FETCH, FETCH_VERSION, "request", cluster_id=self.config.cluster_id,
                       replica_id=self.node_id, max_wait=max_wait_ms, min_bytes=0,
                       max_bytes=FETCH_MAX_BYTES, topics=[{
                           "topic_id": METADATA_TOPIC_ID, "partitions": [{
                               "partition": 0, "current_leader_epoch": epoch,
                               "fetch_offset": end.offset, "last_fetched_epoch": end.epoch,
                               "log_start_offset": self.log.start_offset,
                               "partition_max_bytes": FETCH_MAX_BYTES}]}])

    async def _find_leader(self, state: UnattachedState | VotedState | ResignedState | FollowerState) -> None:
        """An observer (not in ``voters``) that knows no leader, or whose leader went silent: send
        a Fetch (no wait) to one voter after another until an answer names a leader of a newer
        epoch, or of this epoch while unattached (the node then follows it and this role is
        cancelled), or the leader followed now answers again (returns). A non-leader voter answers
        NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH with the leader and epoch it knows (Kafka's
        maybeSendFetchToAnyBootstrap and its response handling)."""
        assert self._channel is not None
        voters = sorted(self.config.voters)
        turn = self.rng.randrange(len(voters))
        while self.quorum.state is state:
            voter = voters[turn % len(voters)]
            turn += 1
            response = await self._channel.send(voter, self._fetch_request(state.epoch, 0), purpose="discover")
            if response is not None and response.error_code == ErrorCode.none and response.responses and \
                    response.responses[0].partitions:
                p = response.responses[0].partitions[0]
                self._maybe_transition(p.current_leader.leader_id, p.current_leader.leader_epoch)
                if self.quorum.state is not state:
                    return
                if isinstance(state, FollowerState) and voter == state.leader_id and p.error_code == ErrorCode.none:
                    return
            await trio.sleep(max(self.config.retry_backoff_ms, 50) / 1000)

    async def _fetch_loop(self, state: FollowerState) -> None:
        assert self._channel is not None
        while self.quorum.state is state:
            request = self._fetch_request(state.epoch, self.config.fetch_max_wait_ms)
            response = await self._channel.send(
                state.leader_id, request, purpose="fetch",
                timeout_ms=self.config.fetch_max_wait_ms + self.config.request_timeout_ms)
            if response is None:
                await trio.sleep(self.config.retry_backoff_ms / 1000)
                continue
            try:
                ok = self._handle_fetch_response(state, response)
                if isinstance(ok, SnapshotId):
                    ok = await self._fetch_snapshot(state, ok)
            except (StorageError, ProtocolError) as exc:
                # records that do not append (corrupt, out of order) or a log that cannot be
                # written: nothing is applied; fetch again after a backoff
                log.error("raft_fetch_apply_failed", node_id=self.node_id, error=repr(exc))
                ok = False
            if not ok:
                await trio.sleep(self.config.retry_backoff_ms / 1000)

    def _handle_fetch_response(self, state: FollowerState, response: Any) -> bool | SnapshotId:
        """Apply a Fetch answer; True when it was a successful fetch, the SnapshotId to fetch when
        the leader's log starts after our end offset."""
        if response.error_code != ErrorCode.none or not response.responses or \
                not response.responses[0].partitions:
            log.warning("raft_fetch_error", node_id=self.node_id, error=str(response.error_code))
            return False
        p = response.responses[0].partitions[0]
        self._maybe_transition(p.current_leader.leader_id, p.current_leader.leader_epoch)
        if self.quorum.state is not state:
            return False
        if p.error_code != ErrorCode.none:
            log.debug("raft_fetch_refused", node_id=self.node_id, error=str(p.error_code))
            return False
        self._fetch_deadline = trio.current_time() + self.config.fetch_timeout_ms / 1000
        if p.diverging_epoch.epoch >= 0 and p.diverging_epoch.end_offset >= 0:
            diverging = OffsetAndEpoch(p.diverging_epoch.epoch, p.diverging_epoch.end_offset)
            before = self.log.end_offset
            target = self.log.truncate_to_end_offset(diverging)
            log.info("raft_log_truncated", node_id=self.node_id, diverging_epoch=diverging.epoch,
                     diverging_end_offset=diverging.offset, from_offset=before, to_offset=target)
            self._next_commit_offset = min(self._next_commit_offset, target)
            return True
        if p.snapshot_id.end_offset >= 0 and p.snapshot_id.epoch >= 0:
            return SnapshotId(p.snapshot_id.end_offset, p.snapshot_id.epoch)
        if p.records:
            self.log.append_as_follower(p.records)
        hw = min(p.high_watermark, self.log.end_offset)
        if hw > self._known_high_watermark:
            self._known_high_watermark = self.log.update_high_watermark(hw)
            self._deliver_commits()
        return True

    async def _fetch_snapshot(self, state: FollowerState, snapshot_id: SnapshotId) -> bool:
        """Download snapshot ``snapshot_id`` from the leader with FetchSnapshot (v0, in chunks of
        up to FETCH_MAX_BYTES), install it and start the log at its end offset. True when done."""
        assert self._channel is not None
        data = bytearray()
        log.info("raft_snapshot_fetching", node_id=self.node_id, end_offset=snapshot_id.end_offset,
                 epoch=snapshot_id.epoch)
        while self.quorum.state is state:
            request = _entity(ApiKey.FETCH_SNAPSHOT, FETCH_SNAPSHOT_VERSION, "request",
                              cluster_id=self.config.cluster_id, replica_id=self.node_id, max_bytes=FETCH_MAX_BYTES,
                              topics=[{"name": METADATA_TOPIC, "partitions": [{
                                  "partition": 0, "current_leader_epoch": state.epoch,
                                  "snapshot_id": {"end_offset": snapshot_id.end_offset, "epoch": snapshot_id.epoch},
                                  "position": len(data)}]}])
            response = await self._channel.send(state.leader_id, request, purpose="fetch")
            if response is None or response.error_code != ErrorCode.none or not response.topics:
                return False
            p = response.topics[0].partitions[0]
            self._maybe_transition(p.current_leader.leader_id, p.current_leader.leader_epoch)
            if self.quorum.state is not state or p.error_code != ErrorCode.none or p.position != len(data):
                log.info("raft_snapshot_fetch_refused", node_id=self.node_id, error=str(p.error_code))
                return False
            self._fetch_deadline = trio.current_time() + self.config.fetch_timeout_ms / 1000
            data += p.unaligned_records or b""
            if len(data) >= p.size:
                break
        else:
            return False
        snapshot = self.log.install_snapshot(snapshot_id, bytes(data))
        self._known_high_watermark = max(self._known_high_watermark, snapshot_id.end_offset)
        self.log.update_high_watermark(snapshot_id.end_offset)
        log.info("raft_snapshot_installed", node_id=self.node_id, end_offset=snapshot_id.end_offset,
                 epoch=snapshot_id.epoch, records=len(snapshot.records), size=len(data))
        # loaded by the delivery task, after any batch it is handing over now
        self._snapshot_to_load = (snapshot_id, snapshot)
        self._deliver_commits()
        return True

    def _load_snapshot(self, snapshot_id: SnapshotId, snapshot: Snapshot) -> None:
        handle = getattr(self.listener, "handle_load_snapshot", None)
        if handle is not None:
            handle(snapshot_id, snapshot)

    # ------------------------------------------------------------------ leader bookkeeping

    def _on_leader_end_offset(self, state: LeaderState) -> None:
        if state.update_end_offset(self.node_id, self.log.end_offset, self.clock_ms(), self.log.end_offset):
            self._on_high_watermark(state)
        self._changed_signal()

    def _on_high_watermark(self, state: LeaderState) -> None:
        self.log.update_high_watermark(state.high_watermark)
        self._known_high_watermark = state.high_watermark
        self._deliver_commits()
        self._changed_signal()

    def _deliver_commits(self) -> None:
        """The high watermark moved (or a snapshot was installed): wake the delivery task."""
        self._commits_ready.set()

    async def _deliver_commits_loop(self) -> None:
        """Hand committed batches below the high watermark to the listener, in log order, each
        once, and the snapshots it must load first (a fetched one; the latest one when the
        listener is behind the log start). The only caller of ``handle_commit`` and
        ``handle_load_snapshot``."""
        while True:
            await self._commits_ready.wait()
            self._commits_ready = trio.Event()
            while await self._deliver_some():
                pass

    async def _deliver_some(self) -> bool:
        """Deliver what one read of the log holds; True when there may be more."""
        if self._snapshot_to_load is not None:
            snapshot_id, snapshot = self._snapshot_to_load
            self._snapshot_to_load = None
            self._load_snapshot(snapshot_id, snapshot)
            self._next_commit_offset = snapshot_id.end_offset
        hw = self.high_watermark
        if self._next_commit_offset < self.log.start_offset:
            # the listener is behind the log's start: it starts from the latest snapshot
            latest = self.log.latest_snapshot_id()
            if latest is None or latest.end_offset > hw:
                return False
            self._load_snapshot(latest, read_snapshot(snapshot_path(self.log.dir, latest)))
            self._next_commit_offset = latest.end_offset
        progressed = False
        cursor = self._next_commit_offset
        if cursor >= hw:
            return False
        data = self.log.read(cursor, 1 << 20, hw)
        raws = await trio.to_thread.run_sync(decode_committed, data, cursor, hw) if len(data) > 65536 else \
            decode_committed(data, cursor, hw)
        for raw in raws:
            if self._snapshot_to_load is not None or self._next_commit_offset != cursor:
                return True  # a snapshot was installed, or the log truncated, meanwhile
            batch = await self._decode_committed(raw)
            if self._snapshot_to_load is not None:
                return True  # a snapshot was installed meanwhile: it replaces what follows
            self._next_commit_offset = cursor = batch.last_offset + 1
            progressed = True
            if self.listener is not None:
                self.listener.handle_commit(batch)
            await trio.lowlevel.checkpoint()
        return progressed or self._snapshot_to_load is not None

    @staticmethod
    async def _decode_committed(raw: DecodedBatch) -> Batch:
        """decode_raft_batch, on a worker thread for a batch of more than RECORDS_PER_YIELD records."""
        if raw.is_control or len(raw.records) <= RECORDS_PER_YIELD:
            return decode_raft_batch(raw)
        return await trio.to_thread.run_sync(decode_raft_batch, raw)

    def _maybe_notify_leader_change(self) -> None:
        current = self.leader_and_epoch()
        if current != self._notified_leader:
            self._notified_leader = current
            if self.listener is not None:
                self.listener.handle_leader_change(current)

    # ------------------------------------------------------------------ API

    def append(self, records: Sequence[mr.ApiMessage | mr.ApiMessageAndVersion], epoch: int | None = None) -> int:
        """Append ``records`` as one batch of the current epoch (leader only); returns the offset of
        the last record. They are committed once the high watermark passes it (handle_commit).
        Raises NotLeaderError when not leader, or not leader of ``epoch`` when given (Kafka's
        scheduleAppend); ValueError for no records."""
        s = self.quorum.state
        if not isinstance(s, LeaderState) or (epoch is not None and epoch != s.epoch):
            raise NotLeaderError(f"node {self.node_id} is not the leader of epoch {epoch if epoch is not None else '-'}"
                                 f" (state {s.name}, epoch {s.epoch}, leader {self.quorum.leader_id})")
        batch = mr.build_metadata_batch(records, epoch=s.epoch, append_time_ms=self.clock_ms())
        _base, last = self.log.append_as_leader(batch, s.epoch)
        self._on_leader_end_offset(s)
        return last

    async def append_offloaded(self, records: Sequence[mr.ApiMessage | mr.ApiMessageAndVersion],
                               epoch: int | None = None) -> int:
        """``append``, with a batch of more than RECORDS_PER_YIELD records encoded on a worker
        thread first (the leadership is checked again after it): the same result and errors."""
        if len(records) <= RECORDS_PER_YIELD:
            return self.append(records, epoch)
        s = self.quorum.state
        if not isinstance(s, LeaderState) or (epoch is not None and epoch != s.epoch):
            return self.append(records, epoch)  # raises NotLeaderError
        batch_epoch = s.epoch
        batch = await trio.to_thread.run_sync(
            lambda: mr.build_metadata_batch(records, epoch=batch_epoch, append_time_ms=self.clock_ms()))
        s = self.quorum.state
        if not isinstance(s, LeaderState) or s.epoch != batch_epoch:
            raise NotLeaderError(f"node {self.node_id} lost the leadership of epoch {batch_epoch} while encoding")
        _base, last = self.log.append_as_leader(batch, s.epoch)
        self._on_leader_end_offset(s)
        return last

    def create_snapshot(self, end_offset: int, records: Sequence[mr.ApiMessage | mr.ApiMessageAndVersion],
                        *, delete_log_before: bool = True) -> SnapshotId:
        """Write a snapshot of the state up to, not including, ``end_offset`` (committed; Kafka's
        RaftClient.createSnapshot, KIP-630), made of ``records``, and (``delete_log_before``) move
        the log start offset to it, deleting the segments wholly below. Followers whose end offset
        falls below the log start then fetch the snapshot (FetchSnapshot). Raises ValueError for an
        offset that is not committed."""
        snapshot_id = self.log.create_snapshot(end_offset, records, self.clock_ms())
        if delete_log_before:
            self.log.delete_before_snapshot()
        log.info("raft_snapshot_created", node_id=self.node_id, end_offset=snapshot_id.end_offset,
                 epoch=snapshot_id.epoch, log_start_offset=self.log.start_offset)
        return snapshot_id

    def describe_quorum(self) -> QuorumInfo:
        """The leader's view of the quorum. Raises NotLeaderError on a non-leader (DescribeQuorum
        is answered by the leader only)."""
        s = self.quorum.state
        if not isinstance(s, LeaderState):
            raise NotLeaderError(f"node {self.node_id} is not the leader (leader {self.quorum.leader_id})")
        return QuorumInfo(self.node_id, s.epoch, s.high_watermark,
                          tuple(s.voter_states[v] for v in sorted(s.voter_states)),
                          tuple(s.observers[o] for o in sorted(s.observers)))

    # ------------------------------------------------------------------ serving RPCs

    def _check_cluster_id(self, cluster_id: str | None) -> bool:
        return cluster_id is None or self.config.cluster_id is None or cluster_id == self.config.cluster_id

    def _voter_only_error(self, epoch: int, remote_id: int) -> ErrorCode | None:
        """Kafka's validateVoterOnlyRequest."""
        if epoch < self.quorum.epoch:
            return ErrorCode.fenced_leader_epoch
        if remote_id < 0:
            return ErrorCode.invalid_request
        if not self.quorum.is_voter or remote_id not in self.quorum.voters:
            return ErrorCode.inconsistent_voter_set
        return None

    def handle_vote(self, request: Any) -> Any:
        """Answer a Vote request (see QuorumState.handle_vote_request)."""
        def answer(error: ErrorCode, granted: bool = False, top: ErrorCode = ErrorCode.none) -> Any:
            return _entity(ApiKey.VOTE, VOTE_VERSION, "response", error_code=top, topics=[] if top else [{
                "topic_name": METADATA_TOPIC, "partitions": [{
                    "partition_index": 0, "error_code": error, "leader_id": self.quorum.leader_id,
                    "leader_epoch": self.quorum.epoch, "vote_granted": granted}]}])
        if not self._check_cluster_id(request.cluster_id):
            return answer(ErrorCode.none, top=ErrorCode.inconsistent_cluster_id)
        p = _only_partition(request.topics)
        if p is None:
            return answer(ErrorCode.none, top=ErrorCode.invalid_request)
        error = self._voter_only_error(p.replica_epoch, p.replica_id)
        if error is not None:
            return answer(error)
        before = self.quorum.state
        try:
            granted = self.quorum.handle_vote_request(p.replica_id, p.replica_epoch,
                                                      OffsetAndEpoch(p.last_offset_epoch, p.last_offset),
                                                      self.log.end_offset_and_epoch())
        except IllegalStateError as exc:
            log.warning("raft_vote_refused", node_id=self.node_id, error=str(exc))
            granted = False
        if self.quorum.state is not before:
            self._enter_state(before)
        log.info("raft_vote", node_id=self.node_id, candidate=p.replica_id, epoch=p.replica_epoch, granted=granted)
        return answer(ErrorCode.none, granted)

    def handle_begin_quorum_epoch(self, request: Any) -> Any:
        """Answer BeginQuorumEpoch: follow the new leader of that epoch."""
        def answer(error: ErrorCode, top: ErrorCode = ErrorCode.none) -> Any:
            return _entity(ApiKey.BEGIN_QUORUM_EPOCH, BEGIN_QUORUM_EPOCH_VERSION, "response", error_code=top,
                           topics=[] if top else [{"topic_name": METADATA_TOPIC, "partitions": [{
                               "partition_index": 0, "error_code": error, "leader_id": self.quorum.leader_id,
                               "leader_epoch": self.quorum.epoch}]}])
        if not self._check_cluster_id(request.cluster_id):
            return answer(ErrorCode.none, top=ErrorCode.inconsistent_cluster_id)
        p = _only_partition(request.topics)
        if p is None:
            return answer(ErrorCode.none, top=ErrorCode.invalid_request)
        error = self._voter_only_error(p.leader_epoch, p.leader_id)
        if error is not None:
            return answer(error)
        self._maybe_transition(p.leader_id, p.leader_epoch)
        return answer(ErrorCode.none)

    def handle_end_quorum_epoch(self, request: Any) -> Any:
        """Answer EndQuorumEpoch: a follower of the resigning leader stands for election after a
        backoff by its place among the preferred successors (0 for the first)."""
        def answer(error: ErrorCode, top: ErrorCode = ErrorCode.none) -> Any:
            return _entity(ApiKey.END_QUORUM_EPOCH, END_QUORUM_EPOCH_VERSION, "response", error_code=top,
                           topics=[] if top else [{"topic_name": METADATA_TOPIC, "partitions": [{
                               "partition_index": 0, "error_code": error, "leader_id": self.quorum.leader_id,
                               "leader_epoch": self.quorum.epoch}]}])
        if not self._check_cluster_id(request.cluster_id):
            return answer(ErrorCode.none, top=ErrorCode.inconsistent_cluster_id)
        p = _only_partition(request.topics)
        if p is None:
            return answer(ErrorCode.none, top=ErrorCode.invalid_request)
        error = self._voter_only_error(p.leader_epoch, p.leader_id)
        if error is not None:
            return answer(error)
        self._maybe_transition(p.leader_id, p.leader_epoch)
        s = self.quorum.state
        if isinstance(s, FollowerState) and s.leader_id == p.leader_id and s.epoch == p.leader_epoch:
            successors = list(p.preferred_successors)
            position = successors.index(self.node_id) if self.node_id in successors else len(successors)
            backoff_ms = 0 if position == 0 else \
                self.config.election_backoff_max_ms * position // max(1, len(successors))
            self._fetch_deadline = min(self._fetch_deadline, trio.current_time() + backoff_ms / 1000)
            log.info("raft_leader_resigned", node_id=self.node_id, leader_id=p.leader_id, epoch=p.leader_epoch,
                     election_in_ms=backoff_ms)
        return answer(ErrorCode.none)

    async def handle_fetch(self, request: Any) -> Any:
        """Answer a Fetch of ``__cluster_metadata``-0 (leader only; see module doc). Waits up to
        the request's max_wait when there is nothing new."""
        p0 = request.topics[0].partitions[0] if request.topics and request.topics[0].partitions else None

        def answer(error: ErrorCode = ErrorCode.none, *, top: ErrorCode = ErrorCode.none, records: bytes | None = None,
                   diverging: OffsetAndEpoch | None = None, snapshot: SnapshotId | None = None) -> Any:
            partition: dict[str, Any] = {
                "partition_index": 0, "error_code": error, "high_watermark": max(-1, self.high_watermark),
                "log_start_offset": self.log.start_offset, "records": records,
                "current_leader": {"leader_id": self.quorum.leader_id, "leader_epoch": self.quorum.epoch}}
            if diverging is not None:
                partition["diverging_epoch"] = {"epoch": diverging.epoch, "end_offset": diverging.offset}
            if snapshot is not None:
                partition["snapshot_id"] = {"end_offset": snapshot.end_offset, "epoch": snapshot.epoch}
            topic_id = request.topics[0].topic_id if request.topics else METADATA_TOPIC_ID
            return _entity(ApiKey.FETCH, FETCH_VERSION, "response", throttle_time=0, error_code=top,
                           responses=[] if top else [{"topic_id": topic_id, "partitions": [partition]}])
        if not self._check_cluster_id(request.cluster_id):
            return answer(top=ErrorCode.inconsistent_cluster_id)
        if p0 is None or len(request.topics) != 1 or len(request.topics[0].partitions) != 1:
            return answer(top=ErrorCode.invalid_request)
        if request.topics[0].topic_id != METADATA_TOPIC_ID:
            return answer(ErrorCode.unknown_topic_id)
        if p0.partition != 0:
            return answer(ErrorCode.unknown_topic_or_partition)
        if p0.fetch_offset < 0 or p0.last_fetched_epoch < 0:
            return answer(ErrorCode.invalid_request)
        s = self.quorum.state
        if p0.current_leader_epoch < s.epoch:
            return answer(ErrorCode.fenced_leader_epoch)
        if p0.current_leader_epoch > s.epoch:
            return answer(ErrorCode.unknown_leader_epoch)
        if not isinstance(s, LeaderState):
            return answer(ErrorCode.not_leader_or_follower)
        # below our log (or at its start with another epoch): fetch the snapshot first (KIP-630)
        oldest = self.log.earliest_snapshot_id()
        start = self.log.start_offset
        if oldest is not None and not (start == 0 and p0.fetch_offset == 0) and (
                p0.fetch_offset < start or (p0.fetch_offset == start and p0.last_fetched_epoch != oldest.epoch)
                or p0.last_fetched_epoch < oldest.epoch):
            latest = self.log.latest_snapshot_id()
            assert latest is not None
            return answer(snapshot=latest)
        # the follower's log must agree with ours at (fetch_offset, last_fetched_epoch)
        end = self.log.end_offset_for_epoch(p0.last_fetched_epoch)
        if end.epoch != p0.last_fetched_epoch or end.offset < p0.fetch_offset:
            return answer(diverging=end)
        if p0.fetch_offset > self.log.end_offset:
            return answer(ErrorCode.offset_out_of_range)
        replica_id = request.replica_id
        if replica_id >= 0:
            if s.update_end_offset(replica_id, p0.fetch_offset, self.clock_ms(), self.log.end_offset):
                self._on_high_watermark(s)
        hw_seen = s.high_watermark
        max_wait_s = min(request.max_wait.total_seconds(), self.config.fetch_max_wait_ms / 1000)
        if p0.fetch_offset == self.log.end_offset and max_wait_s > 0:
            # nothing new: wait for an append, a new high watermark or a state change (long poll)
            with trio.move_on_after(max_wait_s):
                while self.quorum.state is s and p0.fetch_offset == self.log.end_offset and \
                        s.high_watermark == hw_seen:
                    await self._changed.wait()
            if self.quorum.state is not s:
                return answer(ErrorCode.not_leader_or_follower)
        max_bytes = min(p0.partition_max_bytes, request.max_bytes) if request.max_bytes > 0 else p0.partition_max_bytes
        records = self.log.read(p0.fetch_offset, max(1, max_bytes)) if p0.fetch_offset < self.log.end_offset else b""
        return answer(records=records or None)

    def handle_fetch_snapshot(self, request: Any) -> Any:
        """Answer FetchSnapshot v0 (leader only): ``max_bytes`` of the snapshot file from
        ``position``; SNAPSHOT_NOT_FOUND, POSITION_OUT_OF_RANGE, and the epoch errors of Fetch."""
        def answer(error: ErrorCode = ErrorCode.none, *, top: ErrorCode = ErrorCode.none, size: int = -1,
                   position: int = -1, data: bytes = b"", snapshot: Any = None) -> Any:
            partition = {"index": 0, "error_code": error, "size": size, "position": position,
                         "unaligned_records": data,
                         "snapshot_id": snapshot or {"end_offset": -1, "epoch": -1},
                         "current_leader": {"leader_id": self.quorum.leader_id, "leader_epoch": self.quorum.epoch}}
            return _entity(ApiKey.FETCH_SNAPSHOT, FETCH_SNAPSHOT_VERSION, "response", throttle_time=0,
                           error_code=top, topics=[] if top else [{"name": METADATA_TOPIC, "partitions": [partition]}])
        if not self._check_cluster_id(request.cluster_id):
            return answer(top=ErrorCode.inconsistent_cluster_id)
        if len(request.topics) != 1 or len(request.topics[0].partitions) != 1:
            return answer(top=ErrorCode.invalid_request)
        p = request.topics[0].partitions[0]
        if request.topics[0].name != METADATA_TOPIC or p.partition != 0:
            return answer(ErrorCode.unknown_topic_or_partition)
        s = self.quorum.state
        if p.current_leader_epoch < s.epoch:
            return answer(ErrorCode.fenced_leader_epoch)
        if p.current_leader_epoch > s.epoch:
            return answer(ErrorCode.unknown_leader_epoch)
        if not isinstance(s, LeaderState):
            return answer(ErrorCode.not_leader_or_follower)
        snapshot_id = SnapshotId(p.snapshot_id.end_offset, p.snapshot_id.epoch)
        data = self.log.read_snapshot_bytes(snapshot_id) if snapshot_id.end_offset >= 0 else None
        ident = {"end_offset": snapshot_id.end_offset, "epoch": snapshot_id.epoch}
        if data is None:
            return answer(ErrorCode.snapshot_not_found, snapshot=ident)
        if not 0 <= p.position < len(data):
            return answer(ErrorCode.position_out_of_range, snapshot=ident)
        chunk = data[p.position:p.position + max(1, min(request.max_bytes, FETCH_MAX_BYTES))]
        return answer(size=len(data), position=p.position, data=chunk, snapshot=ident)

    def handle_describe_quorum(self, request: Any, version: int) -> Any:
        """Answer DescribeQuorum v0-1 (the leader's view; NOT_LEADER_OR_FOLLOWER elsewhere)."""
        def replica(r: ReplicaState) -> dict[str, Any]:
            return {"replica_id": r.replica_id, "log_end_offset": r.end_offset,
                    "last_fetch_timestamp": r.last_fetch_ms, "last_caught_up_timestamp": r.last_caught_up_ms}
        p = _only_partition(request.topics)
        if p is None or request.topics[0].topic_name != METADATA_TOPIC or p.partition_index != 0:
            return _entity(ApiKey.DESCRIBE_QUORUM, version, "response", error_code=ErrorCode.unknown_topic_or_partition,
                           topics=[])
        partition: dict[str, Any] = {"partition_index": 0, "leader_id": self.quorum.leader_id,
                                     "leader_epoch": self.quorum.epoch, "high_watermark": self.high_watermark}
        try:
            info = self.describe_quorum()
        except NotLeaderError:
            partition.update(error_code=ErrorCode.not_leader_or_follower, current_voters=[], observers=[])
        else:
            now = self.clock_ms()
            voters = [replica(attrs.evolve(r, last_fetch_ms=now, last_caught_up_ms=now) if r.replica_id == self.node_id
                              else r) for r in info.voters]
            partition.update(error_code=ErrorCode.none, current_voters=voters,
                             observers=[replica(r) for r in info.observers])
        return _entity(ApiKey.DESCRIBE_QUORUM, version, "response", error_code=ErrorCode.none,
                       topics=[{"topic_name": METADATA_TOPIC, "partitions": [partition]}])


def _only_partition(topics: Any) -> Any | None:
    if len(topics) != 1 or len(topics[0].partitions) != 1:
        return None
    p = topics[0].partitions[0]
    if getattr(topics[0], "topic_name", METADATA_TOPIC) != METADATA_TOPIC:
        return None
    return p


# ------------------------------------------------------------------------------ the server


class RaftServer:
    """Serves a KafkaRaftClient's RPCs (RAFT_APIS) on a TCP listener: one task per connection,
    requests answered in order. A frame that does not parse closes the connection (logged); an
    unknown API or version gets the ApiVersions fallback answer (KIP-511) when it is ApiVersions,
    else the connection is closed, as Kafka's controller does."""

    apis: dict[int, tuple[int, int]] = RAFT_APIS
    """What this server answers (a controller's ControllerApis serves more)."""

    def __init__(self, client: KafkaRaftClient) -> None:
        self.client = client

    async def serve(self, host: str, port: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on host:port until cancelled; task_status.started(bound port)."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._handle_connection, listeners)

    async def _handle_connection(self, stream: trio.SocketStream) -> None:
        reader = FrameReader()
        peer = None
        try:
            peer = stream.socket.getpeername()
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                reader.feed(data)
                while (frame := reader.next_frame()) is not None:
                    response = await self._handle_frame(frame, peer)
                    if response is None:
                        return
                    await stream.send_all(response)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        except ProtocolError as exc:
            log.warning("raft_bad_frame", peer=str(peer), error=str(exc))
        finally:
            await trio.aclose_forcefully(stream)

    async def _handle_frame(self, frame: memoryview, peer: object) -> bytes | None:
        try:
            header, request = parse_request(frame, self.apis)
        except (UnknownApiKeyError, UnsupportedVersionError) as exc:
            if exc.api_key == ApiKey.API_VERSIONS:
                return encode_api_versions_fallback(exc.correlation_id, self.apis)
            log.warning("raft_unsupported_request", peer=str(peer), error=str(exc))
            return None
        except ProtocolError as exc:
            log.warning("raft_bad_request", peer=str(peer), error=str(exc))
            return None
        try:
            return encode_response(header, await self._dispatch(header, request))
        except (StorageError, ProtocolError, IllegalStateError, ValueError, TypeError, AttributeError,
                IndexError) as exc:
            # a request we cannot answer (e.g. a field out of range for its type, an unreadable
            # log): close this connection with a line, keep the node running
            log.error("raft_request_failed", peer=str(peer), api=header.api_name, error=repr(exc))
            return None

    async def _dispatch(self, header: RequestHeader, request: Any) -> Any:
        c = self.client
        key = header.api_key
        if key == ApiKey.API_VERSIONS:
            return api_versions_response(header.api_version, self.apis)
        if key == ApiKey.VOTE:
            return c.handle_vote(request)
        if key == ApiKey.BEGIN_QUORUM_EPOCH:
            return c.handle_begin_quorum_epoch(request)
        if key == ApiKey.END_QUORUM_EPOCH:
            return c.handle_end_quorum_epoch(request)
        if key == ApiKey.FETCH:
            return await c.handle_fetch(request)
        if key == ApiKey.DESCRIBE_QUORUM:
            return c.handle_describe_quorum(request, header.api_version)
        if key == ApiKey.DESCRIBE_CLUSTER:
            return self._describe_cluster(request, header.api_version)
        if key == ApiKey.FETCH_SNAPSHOT:
            return c.handle_fetch_snapshot(request)
        raise AssertionError(f"unhandled api key {key}")  # RAFT_APIS lists only the above

    def _describe_cluster(self, request: Any, version: int) -> Any:
        """DescribeCluster as a controller answers it (Kafka's ControllerApis): the voters as the
        nodes, the Raft leader as controller id; UNSUPPORTED_ENDPOINT_TYPE for a broker-endpoint
        request (KIP-919)."""
        c = self.client
        if request.endpoint_type != ENDPOINT_TYPE_CONTROLLER:
            return _entity(ApiKey.DESCRIBE_CLUSTER, version, "response", throttle_time=0,
                           error_code=ErrorCode.unsupported_endpoint_type, endpoint_type=request.endpoint_type,
                           error_message="The controller can only describe controller endpoints", cluster_id="",
                           brokers=[])
        nodes = [{"broker_id": node_id, "host": host, "port": port} for node_id, (host, port)
                 in sorted(c.config.voters.items())]
        return _entity(ApiKey.DESCRIBE_CLUSTER, version, "response", throttle_time=0, error_code=ErrorCode.none,
                       endpoint_type=ENDPOINT_TYPE_CONTROLLER, cluster_id=c.config.cluster_id or "",
                       controller_id=c.quorum.leader_id, brokers=nodes)
