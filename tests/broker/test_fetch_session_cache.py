"""Fetch sessions (KIP-227) at unit level: kafkalike.broker.fetch_session is sans-IO, so the
epoch state machine, the contexts and the cache's eviction rules (Kafka's
FetchSessionCache.tryEvict) are driven directly; and the follower's FetchSessionHandler
against the broker's FetchManager back to back."""

from __future__ import annotations

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kafkalike.broker.fetch_session import (EVICTION_MS, FINAL_EPOCH, FetchManager, FetchRequestPartition,
                                            FetchSessionCache, FullFetchContext, IncrementalFetchContext,
                                            SessionErrorContext, SessionlessFetchContext, next_epoch)
from kafkalike.broker.replica_fetcher import FetchSessionHandler
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition


@attrs.frozen
class Result:
    """A partition's read result, as ReplicaManager.read_from_local_log gives it."""

    tp: TopicPartition
    error: int = 0
    high_watermark: int = 0
    last_stable_offset: int = 0
    log_start_offset: int = 0
    size: int = 0


def tps(n: int, topic: str = "t") -> dict[TopicPartition, FetchRequestPartition]:
    return {TopicPartition(topic, i): FetchRequestPartition(0, 1 << 20) for i in range(n)}


def open_session(mgr: FetchManager, n: int, now: int = 0, follower: bool = True, topic: str = "t") -> int:
    ctx = mgr.new_context(12, 0, 0, follower, tps(n, topic), [], now)
    assert isinstance(ctx, FullFetchContext)
    sid, answer = ctx.update_and_generate_response({tp: Result(tp) for tp, _ in ctx.partitions()})
    assert len(answer) == n
    return sid


def test_next_epoch_wraps_and_final_stays_final() -> None:
    """Epochs go 1, 2, ... 2**31-1 then back to 1; FINAL_EPOCH (-1) stays -1 (FetchMetadata.nextEpoch)."""
    assert next_epoch(0) == 1 and next_epoch(41) == 42
    assert next_epoch(2**31 - 1) == 1
    assert next_epoch(FINAL_EPOCH) == FINAL_EPOCH


def test_contexts_by_version_and_epoch() -> None:
    """v4-v6 and epoch -1 are sessionless; epoch 0 is full; unknown ids and wrong epochs are errors."""
    mgr = FetchManager(FetchSessionCache(10))
    assert type(mgr.new_context(6, 0, 0, False, tps(1), [], 0)) is SessionlessFetchContext
    assert type(mgr.new_context(12, 0, FINAL_EPOCH, False, tps(1), [], 0)) is SessionlessFetchContext
    sid = open_session(mgr, 2)
    assert sid != 0 and mgr.cache.get(sid).epoch == 1
    bad = mgr.new_context(12, sid + 1 if sid < 2**31 - 1 else 1, 1, True, {}, [], 0)
    assert isinstance(bad, SessionErrorContext) and bad.error == ErrorCode.fetch_session_id_not_found
    bad = mgr.new_context(12, sid, 5, True, {}, [], 0)
    assert isinstance(bad, SessionErrorContext) and bad.error == ErrorCode.invalid_fetch_session_epoch
    assert bad.update_and_generate_response({}) == (0, [])
    ok = mgr.new_context(12, sid, 1, True, {}, [], 0)
    assert isinstance(ok, IncrementalFetchContext) and mgr.cache.get(sid).epoch == 2
    # a full fetch naming the session closes it
    mgr.new_context(12, sid, FINAL_EPOCH, True, tps(1), [], 0)
    assert mgr.cache.get(sid) is None


def test_incremental_answers_only_changes_and_reads_the_whole_session() -> None:
    """An incremental fetch reads every session partition, answers those with records, a moved
    HW / log start / LSO or an error, and answered partitions go to the end of the order."""
    mgr = FetchManager(FetchSessionCache(10))
    sid = open_session(mgr, 3)
    a, b, c = (TopicPartition("t", i) for i in range(3))
    ctx = mgr.new_context(12, sid, 1, True, {}, [], 0)
    assert [tp for tp, _ in ctx.partitions()] == [a, b, c]
    assert ctx.update_and_generate_response({tp: Result(tp) for tp in (a, b, c)}) == (sid, [])
    ctx = mgr.new_context(12, sid, 2, True, {}, [], 0)
    got = ctx.update_and_generate_response({a: Result(a, size=10), b: Result(b, high_watermark=5), c: Result(c)})
    assert [tp for tp, _ in got[1]] == [a, b]
    assert [tp for tp, _ in ctx.partitions()] == [c, a, b]
    ctx = mgr.new_context(12, sid, 3, True, {}, [], 0)
    got = ctx.update_and_generate_response({a: Result(a), b: Result(b, high_watermark=5), c: Result(c, error=6)})
    assert [tp for tp, _ in got[1]] == [c]
    # the error reset c's cached HW: when it clears, c answers once more
    ctx = mgr.new_context(12, sid, 4, True, {}, [], 0)
    got = ctx.update_and_generate_response({a: Result(a), b: Result(b, high_watermark=5), c: Result(c)})
    assert [tp for tp, _ in got[1]] == [c]


def test_forgotten_partitions_leave_and_an_empty_session_closes() -> None:
    """forgotten_topics_data removes partitions; a session left empty is removed and answered sessionless."""
    mgr = FetchManager(FetchSessionCache(10))
    sid = open_session(mgr, 2)
    ctx = mgr.new_context(12, sid, 1, True, {}, [TopicPartition("t", 0)], 0)
    assert [tp for tp, _ in ctx.partitions()] == [TopicPartition("t", 1)]
    ctx = mgr.new_context(12, sid, 2, True, {}, [TopicPartition("t", 1)], 0)
    assert isinstance(ctx, SessionlessFetchContext) and mgr.cache.get(sid) is None


def test_cache_without_room_answers_session_id_zero() -> None:
    """With no free slot and nothing evictable, a full fetch gets no session (id 0)."""
    mgr = FetchManager(FetchSessionCache(1))
    assert open_session(mgr, 5, follower=False) != 0
    assert open_session(mgr, 5, now=1, follower=False) == 0
    assert open_session(mgr, 1, now=1, follower=False) == 0
    assert FetchManager(FetchSessionCache(0)).cache.maybe_create_session(0, True, {}) == 0


def test_followers_evict_consumers_but_not_followers() -> None:
    """A follower's new session evicts the consumer session with the fewest partitions; a
    consumer cannot evict a young session; a follower cannot evict a young follower's."""
    cache = FetchSessionCache(2)
    mgr = FetchManager(cache)
    small = open_session(mgr, 1, follower=False)
    big = open_session(mgr, 9, follower=False)
    assert open_session(mgr, 50, now=1, follower=False) == 0  # consumers: young sessions are safe
    f1 = open_session(mgr, 1, now=2, follower=True)
    assert f1 != 0 and cache.get(small) is None and cache.get(big) is not None
    f2 = open_session(mgr, 1, now=3, follower=True)
    assert f2 != 0 and cache.get(big) is None
    assert open_session(mgr, 100, now=4, follower=True) == 0
    assert cache.statistics().evictions == 2


def test_stale_and_old_sessions_are_evicted() -> None:
    """A session unused for over 120 s goes first (LRU); a session older than 120 s may be
    evicted by anyone whose session is at least as valuable (privileged, size)."""
    cache = FetchSessionCache(2)
    mgr = FetchManager(cache)
    old = open_session(mgr, 3, now=0, follower=True)
    kept = open_session(mgr, 3, now=0, follower=True)
    mgr.new_context(12, kept, 1, True, {}, [], EVICTION_MS)  # kept is used, old is not
    new = open_session(mgr, 1, now=EVICTION_MS + 1, follower=False)
    assert new != 0 and cache.get(old) is None and cache.get(kept) is not None
    # both are in use now, but older than 120 s: the smaller consumer session goes, not the follower's
    mgr.new_context(12, new, 1, False, {}, [], 2 * EVICTION_MS)
    mgr.new_context(12, kept, 2, True, {}, [], 2 * EVICTION_MS)
    assert open_session(mgr, 2, now=2 * EVICTION_MS + 2, follower=False) != 0
    assert cache.get(new) is None and cache.get(kept) is not None


class SessionPair(RuleBasedStateMachine):
    """The follower's FetchSessionHandler and the broker's FetchManager back to back: whatever
    partitions come and go and whatever fetch offsets move, the broker's session always holds
    exactly what the follower last asked for, and session errors lead back to a full fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.mgr = FetchManager(FetchSessionCache(4))
        self.handler = FetchSessionHandler()
        self.wanted: dict[TopicPartition, dict[str, int]] = {}
        self.now = 0

    @rule(p=st.integers(0, 5), offset=st.integers(0, 3))
    def set_partition(self, p: int, offset: int) -> None:
        self.wanted[TopicPartition("t", p)] = {"fetch_offset": offset, "partition_max_bytes": 100}

    @rule(p=st.integers(0, 5))
    def drop_partition(self, p: int) -> None:
        self.wanted.pop(TopicPartition("t", p), None)

    @rule()
    def broker_forgets_sessions(self) -> None:
        self.mgr.cache.sessions.clear()

    @rule()
    def connection_lost(self) -> None:
        self.handler.handle_error()

    @rule()
    def fetch(self) -> None:
        if not self.wanted:
            return
        sid, epoch, send, forgotten = self.handler.build(dict(self.wanted))
        data = {tp: FetchRequestPartition(d["fetch_offset"], d["partition_max_bytes"]) for tp, d in send.items()}
        self.now += 1
        ctx = self.mgr.new_context(12, sid, epoch, True, data, forgotten, self.now)
        read = {tp: Result(tp) for tp, _ in ctx.partitions()}
        if ctx.error == ErrorCode.none:
            assert {tp: (r.fetch_offset, r.max_bytes) for tp, r in ctx.partitions()} == {
                tp: (d["fetch_offset"], d["partition_max_bytes"]) for tp, d in self.wanted.items()}
        new_sid, _ = ctx.update_and_generate_response(read)
        self.handler.handle_response(ctx.error, new_sid)

    @invariant()
    def at_most_one_live_session(self) -> None:
        assert len(self.mgr.cache.sessions) <= 1
        session = self.mgr.cache.get(self.handler.session_id)
        if self.handler.epoch != 0 and session is not None:
            assert session.epoch == self.handler.epoch


SessionPair.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestSessionPair = SessionPair.TestCase
