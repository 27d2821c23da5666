"""Consumer group membership for kafkalike's client: ``KafkaGroupConsumer``.

Kafka's classic group protocol as the Java consumer runs it (``ConsumerCoordinator`` /
``AbstractCoordinator``, KIP-62 background heartbeats, KIP-394 member-id handshake):

- **Coordinator**: FindCoordinator (key_type 0 = group) to any broker, retried while the
  answer is COORDINATOR_NOT_AVAILABLE (``__consumer_offsets`` is created on first use). The
  group requests go over their own connection to the coordinator, as Kafka's client keeps a
  separate channel for it, so a JoinGroup held for a rebalance never waits behind a long-poll
  Fetch on the same broker (or the other way round).
- **Join**: JoinGroup with protocol type "consumer" and one protocol per assignor
  ("range", optionally "roundrobin"), each carrying a ConsumerProtocolSubscription
  (``assignors.encode_subscription``). MEMBER_ID_REQUIRED (v4+) -> rejoin at once with the
  member id given; UNKNOWN_MEMBER_ID -> rejoin with an empty id.
- **Sync**: the leader (``leader == member_id``) reads every member's subscription,
  refreshes Metadata for their topics, runs the chosen assignor and sends every member's
  ConsumerProtocolAssignment in SyncGroup; followers send none. REBALANCE_IN_PROGRESS,
  UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION -> join again.
- **Heartbeat**: a background task sends Heartbeat every ``heartbeat_interval_ms`` while the
  member is stable. REBALANCE_IN_PROGRESS -> the next ``poll()`` rejoins;
  UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION -> member id and generation reset, then rejoin;
  NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE / a lost connection -> find the coordinator
  again.
- **Positions**: after an assignment, OffsetFetch gives each partition's committed offset;
  a partition without one (-1) starts by ``auto_offset_reset`` (earliest / latest / none).
- **Commits**: OffsetCommit with the generation and member id of the current generation.
  ``enable_auto_commit`` commits the consumed positions every ``auto_commit_interval_ms``
  from ``poll()`` (as Kafka's ``maybeAutoCommitOffsetsAsync``), before every rejoin (eager
  rebalance: every partition is revoked) and on close. Then LeaveGroup on close.

Rebalances are eager (Kafka's default range/roundrobin protocols): a rejoin gives up every
partition. A member whose caller has not called ``poll()`` for ``max_poll_interval_ms``
leaves the group (LeaveGroup) and joins again on its next ``poll()`` (KIP-62). Not done:
static membership (group.instance.id), cooperative-sticky.

Errors: KafkaError for non-retriable group errors (INCONSISTENT_GROUP_PROTOCOL,
INVALID_SESSION_TIMEOUT, GROUP_AUTHORIZATION_FAILED, GROUP_MAX_SIZE_REACHED, ...),
``CommitFailedError`` when a commit is refused because the group rebalanced, the errors of
``KafkaConsumer.poll()`` for fetching.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import attrs
import structlog
import trio

from kafkalike.client.assignors import (PartitionAssignor, Subscription, assignor_for,
                                        decode_assignment, decode_subscription,
                                        encode_assignment, encode_subscription)
from kafkalike.client.cluster import TopicPartition
from kafkalike.client.connection import KafkaConnection
from kafkalike.client.consumer import ConsumerRecord, ConsumerStatistics, KafkaConsumer
from kafkalike.client.errors import ClientError, KafkaError
from kafkalike.client.kafka_client import KafkaClient
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode, MalformedFrameError

__all__ = ["KafkaGroupConsumer", "GroupConsumerStatistics", "CommitFailedError"]

log = structlog.get_logger("kafkalike.client.group_consumer")

_COORDINATOR_ERRORS = (ErrorCode.not_coordinator, ErrorCode.coordinator_not_available)
_REJOIN_ERRORS = (ErrorCode.unknown_member_id, ErrorCode.illegal_generation)


class CommitFailedError(KafkaError):
    """An OffsetCommit refused because the member is no longer part of the current
    generation (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID): the partitions
    may already belong to another member. Kafka's CommitFailedException. Not retriable."""

    retriable = False


@attrs.frozen
class GroupConsumerStatistics:
    """A group consumer's state in one value: group id, member id, generation (-1 none),
    ``state`` ("unjoined", "rebalancing", "stable", "closed"), coordinator broker id (-1
    unknown), leader?, the assignment, counters (rebalances completed, heartbeats sent,
    commits sent), the last committed offsets, and the fetcher's ConsumerStatistics."""

    group_id: str
    member_id: str
    generation_id: int
    state: str
    coordinator_id: int
    is_leader: bool
    assignment: tuple[TopicPartition, ...]
    rebalances: int
    heartbeats: int
    commits: int
    committed: dict[TopicPartition, int]
    consumer: ConsumerStatistics


class KafkaGroupConsumer:
    """Consume ``topics`` as a member of consumer group ``group_id`` (see module doc).

    ``client``: a KafkaClient or bootstrap servers (then owned). Times in ms: session_timeout_ms
    (Kafka's session.timeout.ms, default 10000 here as in librdkafka / Kafka < 3.0),
    heartbeat_interval_ms (3000), max_poll_interval_ms (Kafka's max.poll.interval.ms,
    300000: also JoinGroup's rebalance timeout; a member not calling poll() for that long
    leaves the group and rejoins on its next poll()), auto_commit_interval_ms (5000), retry_backoff_ms (100).
    ``assignors``: protocol names in preference order ("range", "roundrobin"; Kafka's
    partition.assignment.strategy). ``auto_offset_reset``: earliest / latest / none.
    The fetch settings are KafkaConsumer's. Use as ``async with KafkaGroupConsumer(...) as c``.
    """

    def __init__(
        self, client: KafkaClient | str | Iterable[str], group_id: str, topics: Iterable[str], *,
        client_id: str = "kafkalike-consumer", auto_offset_reset: str = "latest",
        enable_auto_commit: bool = True, auto_commit_interval_ms: float = 5000,
        session_timeout_ms: int = 10000, heartbeat_interval_ms: float = 3000,
        max_poll_interval_ms: int = 300000, assignors: Iterable[str] = ("range",),
        retry_backoff_ms: float = 100, request_timeout_ms: float = 30000,
        fetch_min_bytes: int = 1, fetch_max_wait_ms: int = 500, fetch_max_bytes: int = 52428800,
        max_partition_fetch_bytes: int = 1048576, isolation_level: int = 0,
    ) -> None:
        if not group_id:
            raise ValueError("group_id must not be empty")
        self.topics = tuple(sorted(set(topics)))
        if not self.topics:
            raise ValueError("subscribe to at least one topic")
        self._assignors: list[PartitionAssignor] = [assignor_for(n) for n in assignors]
        if not self._assignors:
            raise ValueError("give at least one assignor")
        if heartbeat_interval_ms >= session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be lower than session_timeout_ms")
        self._owns_client = not isinstance(client, KafkaClient)
        self.client = client if isinstance(client, KafkaClient) else KafkaClient(
            client, client_id=client_id, request_timeout_ms=request_timeout_ms,
            retry_backoff_ms=retry_backoff_ms)
        self.group_id = group_id
        self.client_id = client_id
        self.enable_auto_commit = enable_auto_commit
        self.auto_commit_interval_ms = auto_commit_interval_ms
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.max_poll_interval_ms = max_poll_interval_ms
        self._last_poll = math.inf
        self.retry_backoff_ms = retry_backoff_ms
        self.request_timeout_ms = request_timeout_ms
        self.auto_offset_reset = auto_offset_reset
        self._fetcher = KafkaConsumer(
            self.client, fetch_min_bytes=fetch_min_bytes, fetch_max_wait_ms=fetch_max_wait_ms,
            fetch_max_bytes=fetch_max_bytes, max_partition_fetch_bytes=max_partition_fetch_bytes,
            auto_offset_reset=auto_offset_reset, isolation_level=isolation_level,
            client_id=client_id)
        self.member_id = ""
        self.generation_id = -1
        self.leader_id = ""
        self.protocol_name = ""
        self._state = "unjoined"
        self._rejoin_needed = True
        self._assignment: tuple[TopicPartition, ...] = ()
        self._consumed: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._buffer: list[ConsumerRecord] = []
        self._coordinator: KafkaConnection | None = None
        self._coordinator_id = -1
        self._coordinator_lock = trio.Lock()
        self._join_lock = trio.Lock()
        self._tasks: trio.CancelScope | None = None
        self._next_auto_commit = math.inf
        self._rebalance_wakeup = trio.Event()
        self._rebalances = 0
        self._heartbeats = 0
        self._commits = 0
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> KafkaGroupConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the client (when owned) and the heartbeat task. The group is joined by the
        first ``poll()`` (or ``ensure_active_group()``), as in Kafka."""
        if self._owns_client:
            await self.client.start()
        self._tasks = trio.CancelScope()
        self.client.nursery.start_soon(self._heartbeat_loop, self._tasks)
        self._started = True

    async def aclose(self) -> None:
        """Commit consumed positions (``enable_auto_commit``), LeaveGroup, stop the heartbeat
        task, close the coordinator connection (and the client when owned). Errors on the
        way are logged, not raised. Idempotent."""
        if self._state == "closed":
            return
        try:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(self.request_timeout_ms / 1000):
                    if self.enable_auto_commit and self.generation_id >= 0 and not self._rejoin_needed:
                        try:
                            await self.commit()
                        except ClientError as exc:
                            log.info("commit_on_close_failed", group=self.group_id, error=str(exc))
                    await self._leave_group()
                self._state = "closed"
                if self._tasks is not None:
                    self._tasks.cancel()
                if self._coordinator is not None:
                    await self._coordinator.aclose()
        finally:
            self._state = "closed"
            if self._tasks is not None:
                self._tasks.cancel()
            if self._owns_client:  # outside the shield: the client's nursery scope must nest
                await self.client.aclose()

    # ------------------------------------------------------------------ state

    def assignment(self) -> set[TopicPartition]:
        """The partitions assigned to this member in the current generation."""
        return set(self._assignment)

    def statistics(self) -> GroupConsumerStatistics:
        """The member's state and counters now."""
        return GroupConsumerStatistics(
            self.group_id, self.member_id, self.generation_id, self._state, self._coordinator_id,
            bool(self.member_id) and self.leader_id == self.member_id, self._assignment,
            self._rebalances, self._heartbeats, self._commits, dict(self._committed),
            self._fetcher.statistics())

    def _request_rejoin(self, reason: str, *, reset_member: bool = False) -> None:
        if reset_member:
            self.member_id = ""
            self.generation_id = -1
        if not self._rejoin_needed:
            log.info("rejoin_needed", group=self.group_id, member=self.member_id, reason=reason)
        self._rejoin_needed = True
        self._rebalance_wakeup.set()

    # ------------------------------------------------------------------ coordinator

    async def _coordinator_conn(self) -> KafkaConnection:
        """The connection to the group's coordinator, found with FindCoordinator (retried on
        COORDINATOR_NOT_AVAILABLE / COORDINATOR_LOAD_IN_PROGRESS / lost connections until
        the request timeout)."""
        conn = self._coordinator
        if conn is not None and not conn.closed:
            return conn
        if conn is not None:
            await self._mark_coordinator_unknown("connection closed")
        async with self._coordinator_lock:
            if self._coordinator is not None and not self._coordinator.closed:
                return self._coordinator
            backoff = self.retry_backoff_ms
            deadline = trio.current_time() + self.request_timeout_ms / 1000
            while True:
                try:
                    return await self._find_coordinator()
                except ClientError as exc:
                    if not exc.retriable or trio.current_time() > deadline:
                        raise
                    log.debug("find_coordinator_retry", group=self.group_id, error=str(exc))
                await trio.sleep(backoff / 1000)
                backoff = min(backoff * 2, 1000)

    async def _find_coordinator(self) -> KafkaConnection:
        conn = await self.client.any_connection()
        response = await conn.call(ApiKey.FIND_COORDINATOR, key=self.group_id, key_type=0)
        code = ErrorCode(response.error_code)
        if code != ErrorCode.none:
            raise KafkaError(code, f"FindCoordinator for group {self.group_id}")
        node_id = int(response.node_id)
        # Our own channel to the coordinator (Kafka: node id Integer.MAX_VALUE - id).
        self._coordinator = await KafkaConnection.connect(
            response.host, int(response.port), nursery=self.client.nursery,
            client_id=self.client_id, request_timeout_ms=self.request_timeout_ms,
            connect_timeout_ms=self.client.connect_timeout_ms, node_id=node_id,
            client_versions=self.client.client_versions)
        self._coordinator_id = node_id
        log.info("coordinator_found", group=self.group_id, coordinator=node_id,
                 address=f"{response.host}:{response.port}")
        return self._coordinator

    async def _mark_coordinator_unknown(self, reason: str) -> None:
        conn, self._coordinator = self._coordinator, None
        if conn is not None:
            log.info("coordinator_lost", group=self.group_id, coordinator=self._coordinator_id,
                     reason=reason)
            self._coordinator_id = -1
            with trio.CancelScope(shield=True):
                await conn.aclose()

    async def _group_call(self, api_key: int, *, timeout_ms: float | None = None, **fields: Any) -> Any:
        """One request to the coordinator; a lost connection forgets the coordinator and
        re-raises."""
        conn = await self._coordinator_conn()
        try:
            return await conn.call(api_key, timeout_ms=timeout_ms, **fields)
        except ClientError as exc:
            if not isinstance(exc, KafkaError):
                await self._mark_coordinator_unknown(str(exc))
            raise

    # ------------------------------------------------------------------ join / sync

    async def ensure_active_group(self) -> None:
        """Join the group if this member has no current generation or a rebalance is
        pending: commit (auto-commit), revoke everything, JoinGroup, SyncGroup, then the
        start positions by OffsetFetch / ``auto_offset_reset``. Returns when the member is
        stable. Raises KafkaError for non-retriable group errors."""
        async with self._join_lock:
            if not self._rejoin_needed:
                return
            if self.enable_auto_commit and self.generation_id >= 0 and self._assignment:
                try:
                    await self.commit()
                except ClientError as exc:
                    log.info("commit_before_rejoin_failed", group=self.group_id, error=str(exc))
            self._revoke()
            backoff = self.retry_backoff_ms
            # _rejoin_needed stays True until the member has its assignment and positions, so
            # a poll() cancelled half-way (a caller's timeout) joins again next time.
            while True:
                self._rebalance_wakeup = trio.Event()
                try:
                    if await self._join_and_sync():
                        break
                    continue  # handshake / rebalance in progress: join again at once
                except ClientError as exc:
                    if not exc.retriable:
                        raise
                    log.info("join_retry", group=self.group_id, error=str(exc))
                await trio.sleep(backoff / 1000)
                backoff = min(backoff * 2, 1000)
            await self._init_positions()
            self._state = "stable"
            self._rejoin_needed = False
            self._next_auto_commit = trio.current_time() + self.auto_commit_interval_ms / 1000

    def _revoke(self) -> None:
        if self._assignment:
            log.info("partitions_revoked", group=self.group_id, member=self.member_id,
                     partitions=[str(tp) for tp in self._assignment])
        self._assignment = ()
        self._consumed = {}
        self._buffer = []
        self._fetcher.assign([])
        self._state = "rebalancing"

    async def _join_and_sync(self) -> bool:
        """One JoinGroup (+ SyncGroup) round. True when the member got an assignment; False
        when it must join again at once (member id handshake, rebalance in progress)."""
        metadata = encode_subscription(self.topics)
        response = await self._group_call(
            ApiKey.JOIN_GROUP, group_id=self.group_id, session_timeout=self.session_timeout_ms,
            rebalance_timeout=self.max_poll_interval_ms, member_id=self.member_id,
            group_instance_id=None, protocol_type="consumer",
            protocols=[{"name": a.name, "metadata": metadata} for a in self._assignors],
            reason=None, timeout_ms=max(self.request_timeout_ms, self.max_poll_interval_ms + 5000))
        code = ErrorCode(response.error_code)
        if code == ErrorCode.member_id_required:
            self.member_id = response.member_id  # KIP-394: rejoin with the id we were given
            log.debug("member_id_assigned", group=self.group_id, member=self.member_id)
            return False
        if code == ErrorCode.unknown_member_id:
            self.member_id, self.generation_id = "", -1
            return False
        if code == ErrorCode.rebalance_in_progress:
            return False
        if code in _COORDINATOR_ERRORS:
            await self._mark_coordinator_unknown(code.name)
            raise KafkaError(code, f"JoinGroup {self.group_id}")
        if code != ErrorCode.none:
            raise KafkaError(code, f"JoinGroup {self.group_id}")
        self.member_id = response.member_id
        self.generation_id = int(response.generation_id)
        self.leader_id = response.leader
        self.protocol_name = response.protocol_name or self._assignors[0].name
        assignments: list[dict] = []
        if self.leader_id == self.member_id:
            assignments = await self._lead(response.members)
        sync = await self._group_call(
            ApiKey.SYNC_GROUP, group_id=self.group_id, generation_id=self.generation_id,
            member_id=self.member_id, group_instance_id=None, protocol_type="consumer",
            protocol_name=self.protocol_name, assignments=assignments,
            timeout_ms=max(self.request_timeout_ms, self.max_poll_interval_ms + 5000))
        code = ErrorCode(sync.error_code)
        if code == ErrorCode.rebalance_in_progress:
            return False
        if code in _REJOIN_ERRORS:
            if code == ErrorCode.unknown_member_id:
                self.member_id = ""
            self.generation_id = -1
            return False
        if code in _COORDINATOR_ERRORS:
            await self._mark_coordinator_unknown(code.name)
            raise KafkaError(code, f"SyncGroup {self.group_id}")
        if code != ErrorCode.none:
            raise KafkaError(code, f"SyncGroup {self.group_id}")
        try:
            parts = decode_assignment(sync.assignment)
        except MalformedFrameError as exc:
            raise KafkaError(ErrorCode.inconsistent_group_protocol,
                             f"undecodable assignment from the leader: {exc}") from None
        self._assignment = tuple(p for p in parts if p.topic in self.topics)
        self._rebalances += 1
        log.info("partitions_assigned", group=self.group_id, member=self.member_id,
                 generation=self.generation_id, leader=self.leader_id == self.member_id,
                 partitions=[str(tp) for tp in self._assignment])
        return True

    async def _lead(self, members: Any) -> list[dict]:
        """The leader's part (Kafka's ConsumerCoordinator.onLeaderElected): decode the
        subscriptions, Metadata for their topics, the chosen assignor, encoded assignments."""
        subscriptions: dict[str, Subscription] = {}
        for m in members:
            try:
                subscriptions[m.member_id] = decode_subscription(m.metadata)
            except MalformedFrameError as exc:
                log.warning("bad_subscription", group=self.group_id, member=m.member_id,
                            error=str(exc))
                subscriptions[m.member_id] = Subscription(())
        topics = sorted({t for s in subscriptions.values() for t in s.topics})
        cluster = await self.client.refresh_metadata(topics)
        counts = {t: len(info.partitions) for t in topics
                  if (info := cluster.topics.get(t)) is not None and info.partitions}
        assignor = next((a for a in self._assignors if a.name == self.protocol_name),
                        self._assignors[0])
        plan = assignor.assign(counts, subscriptions)
        log.info("group_assigned", group=self.group_id, generation=self.generation_id,
                 assignor=assignor.name, members=len(subscriptions),
                 plan={m: len(ps) for m, ps in plan.items()})
        return [{"member_id": m, "assignment": encode_assignment(ps)} for m, ps in plan.items()]

    async def _init_positions(self) -> None:
        """Committed offsets (OffsetFetch) of the assignment, else ``auto_offset_reset``."""
        self._fetcher.assign(self._assignment)
        if not self._assignment:
            return
        committed = await self.committed(self._assignment)
        for tp in self._assignment:
            offset = committed.get(tp, -1)
            if offset >= 0:
                self._fetcher.seek(tp, offset)
                self._committed[tp] = offset
            else:
                self._committed.pop(tp, None)
        for tp in self._assignment:
            self._consumed[tp] = await self._fetcher.position(tp)

    # ------------------------------------------------------------------ heartbeats

    async def _heartbeat_loop(self, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                await trio.sleep(self.heartbeat_interval_ms / 1000)
                # Heartbeats go on while a rejoin waits for the next poll() (as Kafka's
                # heartbeat thread does), so a slow caller is not also timed out.
                if (self._state != "stable" or not self.member_id or self.generation_id < 0
                        or self._join_lock.locked()):
                    continue
                if trio.current_time() - self._last_poll > self.max_poll_interval_ms / 1000:
                    # Kafka's "consumer poll timeout has expired": leave, so the others get
                    # the partitions; the next poll() joins again.
                    log.warning("poll_timeout_expired", group=self.group_id, member=self.member_id,
                                max_poll_interval_ms=self.max_poll_interval_ms)
                    await self._leave_group()
                    self._request_rejoin("poll_timeout", reset_member=True)
                    self._state = "unjoined"
                    continue
                member, generation = self.member_id, self.generation_id
                try:
                    response = await self._group_call(
                        ApiKey.HEARTBEAT, group_id=self.group_id, generation_id=generation,
                        member_id=member, group_instance_id=None)
                except ClientError as exc:
                    log.info("heartbeat_failed", group=self.group_id, error=str(exc))
                    continue
                self._heartbeats += 1
                code = ErrorCode(response.error_code)
                if (member, generation) != (self.member_id, self.generation_id):
                    continue  # rejoined meanwhile: the answer is about an older generation
                if code == ErrorCode.none:
                    continue
                if code == ErrorCode.rebalance_in_progress:
                    self._request_rejoin("rebalance_in_progress")
                elif code in _REJOIN_ERRORS:
                    self._request_rejoin(code.name, reset_member=code == ErrorCode.unknown_member_id)
                    if code == ErrorCode.illegal_generation:
                        self.generation_id = -1
                elif code in _COORDINATOR_ERRORS:
                    await self._mark_coordinator_unknown(code.name)
                else:
                    log.warning("heartbeat_error", group=self.group_id, error=code.name)

    # ------------------------------------------------------------------ offsets

    async def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offsets (OffsetFetch, Kafka protocol guide v1-v7) for
        ``partitions``; -1 = none. Retries COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR and
        lost connections until the request timeout. Raises KafkaError otherwise."""
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        deadline = trio.current_time() + self.request_timeout_ms / 1000
        while True:
            try:
                response = await self._group_call(
                    ApiKey.OFFSET_FETCH, group_id=self.group_id, require_stable=False,
                    topics=[{"name": t, "partition_indexes": ps} for t, ps in by_topic.items()])
                code = ErrorCode(response.error_code)
                if code in _COORDINATOR_ERRORS:
                    await self._mark_coordinator_unknown(code.name)
                if code != ErrorCode.none:
                    raise KafkaError(code, f"OffsetFetch {self.group_id}")
                out: dict[TopicPartition, int] = {}
                for t in response.topics:
                    for p in t.partitions:
                        pcode = ErrorCode(p.error_code)
                        if pcode != ErrorCode.none:
                            raise KafkaError(pcode, f"OffsetFetch {t.name}-{p.partition_index}")
                        out[TopicPartition(t.name, int(p.partition_index))] = int(p.committed_offset)
                return out
            except ClientError as exc:
                if not exc.retriable or trio.current_time() > deadline:
                    raise
            await trio.sleep(self.retry_backoff_ms / 1000)

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        """OffsetCommit (Kafka protocol guide v2-v8) of ``offsets`` ({tp: next offset to
        read}), by default the consumed positions of the assignment (the offset after the
        last record ``poll()`` returned). Sent with this generation's id and member id.
        Retries coordinator moves and load-in-progress. Raises CommitFailedError on
        REBALANCE_IN_PROGRESS / ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID (a rebalance follows),
        KafkaError for other errors."""
        if offsets is None:
            offsets = {tp: o for tp, o in self._consumed.items() if tp in self._assignment}
        offsets = {tp: o for tp, o in offsets.items() if self._committed.get(tp) != o}
        if not offsets:
            return
        by_topic: dict[str, list[dict]] = {}
        for tp, offset in sorted(offsets.items()):
            by_topic.setdefault(tp.topic, []).append({
                "partition_index": tp.partition, "committed_offset": offset,
                "committed_leader_epoch": -1, "committed_metadata": ""})
        generation, member = self.generation_id, self.member_id
        deadline = trio.current_time() + self.request_timeout_ms / 1000
        while True:
            try:
                response = await self._group_call(
                    ApiKey.OFFSET_COMMIT, group_id=self.group_id,
                    generation_id_or_member_epoch=generation, member_id=member,
                    group_instance_id=None, retention_time=-1,
                    topics=[{"name": t, "partitions": ps} for t, ps in by_topic.items()])
                self._commits += 1
                errors = [(TopicPartition(t.name, int(p.partition_index)), ErrorCode(p.error_code))
                          for t in response.topics for p in t.partitions]
                for tp, code in errors:
                    if code == ErrorCode.none:
                        self._committed[tp] = offsets[tp]
                bad = [(tp, c) for tp, c in errors if c != ErrorCode.none]
                if not bad:
                    log.debug("offsets_committed", group=self.group_id,
                              offsets={str(tp): o for tp, o in offsets.items()})
                    return
                tp, code = bad[0]
                if code in (ErrorCode.rebalance_in_progress, *_REJOIN_ERRORS):
                    self._request_rejoin(code.name, reset_member=code == ErrorCode.unknown_member_id)
                    raise CommitFailedError(code, f"commit of {tp} for group {self.group_id}: "
                                                  f"the group rebalanced")
                if code in _COORDINATOR_ERRORS:
                    await self._mark_coordinator_unknown(code.name)
                raise KafkaError(code, f"OffsetCommit {tp}")
            except CommitFailedError:
                raise
            except ClientError as exc:
                if not exc.retriable or trio.current_time() > deadline:
                    raise
            await trio.sleep(self.retry_backoff_ms / 1000)

    async def _maybe_auto_commit(self) -> None:
        if not self.enable_auto_commit or trio.current_time() < self._next_auto_commit:
            return
        self._next_auto_commit = trio.current_time() + self.auto_commit_interval_ms / 1000
        try:
            await self.commit()
        except ClientError as exc:
            log.info("auto_commit_failed", group=self.group_id, error=str(exc))

    async def _leave_group(self) -> None:
        if not self.member_id or self._coordinator is None or self._coordinator.closed:
            return
        try:
            conn = self._coordinator
            version = conn.api_version(ApiKey.LEAVE_GROUP)
            fields: dict[str, Any] = (
                {"members": [{"member_id": self.member_id, "group_instance_id": None,
                              "reason": "the consumer is being closed"}]}
                if version >= 3 else {"member_id": self.member_id})
            response = await conn.call(ApiKey.LEAVE_GROUP, group_id=self.group_id, **fields)
            log.info("left_group", group=self.group_id, member=self.member_id,
                     error=ErrorCode(response.error_code).name)
        except ClientError as exc:
            log.info("leave_group_failed", group=self.group_id, error=str(exc))
        self.member_id, self.generation_id = "", -1
        self._assignment = ()

    # ------------------------------------------------------------------ consuming

    async def poll(self, *, max_wait_ms: int | None = None,
                   max_records: int | None = None) -> list[ConsumerRecord]:
        """Records of the assigned partitions: auto-commit when due, (re)join the group when
        needed, then one Fetch round (KafkaConsumer.poll). At most ``max_records`` are
        returned (Kafka's max.poll.records); the rest are kept for the next poll. May return
        [] (nothing within ``max_wait_ms``, or no partition assigned). Raises KafkaError."""
        if not self._started:
            raise RuntimeError("KafkaGroupConsumer not started: use 'async with'")
        if self._state == "closed":
            raise RuntimeError("KafkaGroupConsumer is closed")
        self._last_poll = trio.current_time()
        await self._maybe_auto_commit()
        await self.ensure_active_group()
        wait = self._fetcher.fetch_max_wait_ms if max_wait_ms is None else max_wait_ms
        if not self._buffer:
            if not self._assignment:
                with trio.move_on_after(wait / 1000):
                    await self._rebalance_wakeup.wait()
                return []
            self._buffer = await self._fetcher.poll(max_wait_ms=wait)
        n = len(self._buffer) if max_records is None else max(0, max_records)
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        for r in out:
            self._consumed[TopicPartition(r.topic, r.partition)] = r.offset + 1
        return out
