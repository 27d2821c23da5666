"""Incremental fetch sessions, broker side (KIP-227; Kafka's kafka.server.FetchSession.scala:
FetchSessionCache, FetchSession, FetchManager.newContext and the FetchContext classes).

Sans-IO: no trio, no sockets; times are passed in (ms). KafkaApis.handle_fetch asks
``FetchManager.new_context(...)`` for a context, reads every partition the context names
(``context.partitions()`` — for an incremental fetch that is every partition of the
session, not only those in the request, as Kafka reads them), then asks the context for
the partitions to answer (``context.update_and_generate_response(results)``) and the
session id to put in the response.

Rules (Kafka's FetchManager.newContext, FetchMetadata):

- session_epoch 0 (INITIAL_EPOCH) or -1 (FINAL_EPOCH) is a *full* fetch. A non-zero
  session_id in a full fetch closes that session. Epoch -1: no new session
  (SessionlessFetchContext, session id 0 in the answer). Epoch 0: FullFetchContext, which
  opens a session if the cache has (or can make) room; its next expected epoch is 1.
- Any other epoch is *incremental*: unknown session_id -> FETCH_SESSION_ID_NOT_FOUND;
  epoch != the session's -> INVALID_FETCH_SESSION_EPOCH (a SessionErrorContext: top-level
  error, no partitions, session id 0). Otherwise the request's partitions are added to /
  updated in the session, ``forgotten`` ones removed, the epoch advances (wrapping from
  2**31-1 to 1), and the answer carries only partitions with records, a changed high
  watermark / log start offset / last stable offset, or an error (an error also resets the
  cached HW to -1 so the partition is sent again when the error clears). Partitions that
  answer move to the end of the session's order (Kafka's round-robin). A session left
  empty is removed and the fetch answered sessionless.
- Fetch v4-v6 have no session fields: always sessionless.

Cache (FetchSessionCache): at most ``max.incremental.fetch.session.cache.slots`` sessions.
A new session takes a free slot, else evicts (tryEvict): first the least recently used
session if it is unused for more than 120 s (MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS);
else the least valuable evictable session if the newcomer is at least as valuable, where
value orders (privileged, partition count, id) — followers are privileged — and a session
is evictable by a follower if it is a consumer's or older than 120 s, by a consumer only
if older than 120 s. Simplification: Kafka decides evictability when a session is last
touched and keeps sorted maps; here it is decided at eviction time by a scan of the
(at most slots) sessions, which gives the same choice except for sessions that crossed the
120 s age since their last use.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, NamedTuple

import attrs

from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition

INVALID_SESSION_ID = 0
INITIAL_EPOCH = 0
FINAL_EPOCH = -1
#: Kafka's MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS
EVICTION_MS = 120_000
#: the first Fetch version with session fields (KIP-227)
SESSION_MIN_VERSION = 7


def next_epoch(prev: int) -> int:
    """Kafka's FetchMetadata.nextEpoch: FINAL stays FINAL, 2**31-1 wraps to 1, else +1."""
    if prev < 0:
        return FINAL_EPOCH
    if prev == 2**31 - 1:
        return 1
    return prev + 1


@attrs.frozen
class FetchRequestPartition:
    """One partition as a fetcher asks for it: fetch offset, byte limit, the leader epoch
    it knows (-1 unchecked), its log start offset (-1 for consumers)."""

    fetch_offset: int
    max_bytes: int
    current_leader_epoch: int = -1
    log_start_offset: int = -1


@attrs.define
class CachedPartition:
    """A session's partition (Kafka's CachedPartition): the last request values and the
    last answered high watermark / log start offset / last stable offset (-1 unknown)."""

    req: FetchRequestPartition
    high_watermark: int = -1
    log_start_offset: int = -1
    last_stable_offset: int = -1

    def must_respond(self, error: int, hw: int, lso: int, log_start: int, size: int) -> bool:
        """Kafka's maybeUpdateResponseData (with the update): True when the partition has
        records, an error, or a changed HW / log start offset / LSO."""
        respond = size > 0
        if hw != self.high_watermark:
            respond, self.high_watermark = True, hw
        if log_start != self.log_start_offset:
            respond, self.log_start_offset = True, log_start
        if lso != self.last_stable_offset:
            respond, self.last_stable_offset = True, lso
        if error != ErrorCode.none:
            respond, self.high_watermark = True, -1
        return respond


@attrs.define
class FetchSession:
    """One cached session: id, privileged (a follower's), partitions in order, next
    expected epoch, creation and last-use times (ms)."""

    id: int
    privileged: bool
    partitions: dict[TopicPartition, CachedPartition]
    creation_ms: int
    last_used_ms: int
    epoch: int = 1

    def update(self, fetch_data: dict[TopicPartition, FetchRequestPartition],
               forgotten: Iterable[TopicPartition]) -> None:
        """Add or update the request's partitions, then drop ``forgotten`` ones."""
        for tp, req in fetch_data.items():
            cached = self.partitions.get(tp)
            if cached is None:
                self.partitions[tp] = CachedPartition(req)
            else:
                cached.req = req
        for tp in forgotten:
            self.partitions.pop(tp, None)

    def evictable_key(self) -> tuple[bool, int, int]:
        """Kafka's EvictableKey: the smaller, the first to go."""
        return (self.privileged, len(self.partitions), self.id)


@attrs.frozen
class FetchSessionCacheStatistics:
    """Sessions held, partitions across them, evictions so far."""

    sessions: int
    partitions: int
    evictions: int


class FetchSessionCache:
    """At most ``max_entries`` sessions, with Kafka's eviction rules (module docstring)."""

    def __init__(self, max_entries: int, eviction_ms: int = EVICTION_MS,
                 rng: random.Random | None = None) -> None:
        self.max_entries = max_entries
        self.eviction_ms = eviction_ms
        self.sessions: dict[int, FetchSession] = {}
        self.evictions = 0
        self._rng = rng or random.Random()

    def statistics(self) -> FetchSessionCacheStatistics:
        return FetchSessionCacheStatistics(
            len(self.sessions), sum(len(s.partitions) for s in self.sessions.values()), self.evictions)

    def get(self, session_id: int) -> FetchSession | None:
        return self.sessions.get(session_id)

    def remove(self, session_id: int) -> FetchSession | None:
        return self.sessions.pop(session_id, None)

    def touch(self, session: FetchSession, now_ms: int) -> None:
        session.last_used_ms = now_ms

    def _new_id(self) -> int:
        while True:
            sid = self._rng.randint(1, 2**31 - 1)
            if sid not in self.sessions:
                return sid

    def try_evict(self, privileged: bool, size: int, now_ms: int) -> bool:
        """Kafka's tryEvict for a newcomer (privileged, size): True if a slot was freed."""
        if not self.sessions:
            return False
        lru = min(self.sessions.values(), key=lambda s: (s.last_used_ms, s.id))
        if now_ms - lru.last_used_ms > self.eviction_ms:
            del self.sessions[lru.id]
            self.evictions += 1
            return True
        candidates = [s for s in self.sessions.values()
                      if now_ms - s.creation_ms > self.eviction_ms or (privileged and not s.privileged)]
        if not candidates:
            return False
        victim = min(candidates, key=FetchSession.evictable_key)
        if (privileged, size, 0) < victim.evictable_key():
            return False  # the newcomer is worth less (a tie keeps the old one, as Kafka)
        del self.sessions[victim.id]
        self.evictions += 1
        return True

    def maybe_create_session(self, now_ms: int, privileged: bool,
                             partitions: dict[TopicPartition, CachedPartition]) -> int:
        """A new session holding ``partitions`` if there is (or eviction makes) room: its id,
        else INVALID_SESSION_ID (0). Its next expected epoch is 1."""
        if len(self.sessions) >= self.max_entries and not self.try_evict(privileged, len(partitions), now_ms):
            return INVALID_SESSION_ID
        session = FetchSession(self._new_id(), privileged, partitions, now_ms, now_ms,
                               next_epoch(INITIAL_EPOCH))
        self.sessions[session.id] = session
        return session.id


# ---------------------------------------------------------------------- contexts

class FetchSessionResponse(NamedTuple):
    """What a FetchContext answers (Kafka's FetchContext.updateAndGenerateResponseData: the
    FetchResponse's session_id and its partitions): ``session_id`` (0 = no session), and
    ``partitions``, the [(tp, result)] to put in the response, in answer order. A NamedTuple,
    so callers may unpack it as ``session_id, partitions = ...``."""

    session_id: int
    partitions: list[tuple[TopicPartition, Any]]


class FetchContext:
    """What a Fetch reads and answers. ``partitions()`` -> [(tp, request values)] to read;
    ``update_and_generate_response(results)`` -> FetchSessionResponse(session id, [(tp, result)] to answer),
    where results are {tp: result} with ``error``, ``high_watermark``,
    ``last_stable_offset``, ``log_start_offset``, ``size``. ``error`` is the top-level
    error code (FETCH_SESSION_ID_NOT_FOUND / INVALID_FETCH_SESSION_EPOCH or none)."""

    error: ErrorCode = ErrorCode.none

    def partitions(self) -> list[tuple[TopicPartition, FetchRequestPartition]]:
        raise NotImplementedError

    def update_and_generate_response(self, results: dict[TopicPartition, Any]) -> FetchSessionResponse:
        raise NotImplementedError


class SessionErrorContext(FetchContext):
    """A session error: nothing read, the error at top level, session id 0."""

    def __init__(self, error: ErrorCode) -> None:
        self.error = error

    def partitions(self) -> list[tuple[TopicPartition, FetchRequestPartition]]:
        return []

    def update_and_generate_response(self, results: dict[TopicPartition, Any]) -> FetchSessionResponse:
        return FetchSessionResponse(INVALID_SESSION_ID, [])


class SessionlessFetchContext(FetchContext):
    """A full fetch without a session (Fetch < v7, epoch -1): every partition answers."""

    def __init__(self, fetch_data: dict[TopicPartition, FetchRequestPartition]) -> None:
        self.fetch_data = fetch_data

    def partitions(self) -> list[tuple[TopicPartition, FetchRequestPartition]]:
        return list(self.fetch_data.items())

    def update_and_generate_response(self, results: dict[TopicPartition, Any]) -> FetchSessionResponse:
        return FetchSessionResponse(INVALID_SESSION_ID, [(tp, results[tp]) for tp in self.fetch_data if tp in results])


class FullFetchContext(SessionlessFetchContext):
    """A full fetch at epoch 0: every partition answers, and a session holding them is
    created if the cache has room (its id answers; 0 if none was created)."""

    def __init__(self, cache: FetchSessionCache, now_ms: int, privileged: bool,
                 fetch_data: dict[TopicPartition, FetchRequestPartition]) -> None:
        super().__init__(fetch_data)
        self.cache = cache
        self.now_ms = now_ms
        self.privileged = privileged

    def update_and_generate_response(self, results: dict[TopicPartition, Any]) -> FetchSessionResponse:
        cached: dict[TopicPartition, CachedPartition] = {}
        for tp, req in self.fetch_data.items():
            c = CachedPartition(req)
            r = results.get(tp)
            if r is not None:
                c.must_respond(r.error, r.high_watermark, r.last_stable_offset, r.log_start_offset, 0)
            cached[tp] = c
        sid = self.cache.maybe_create_session(self.now_ms, self.privileged, cached)
        return FetchSessionResponse(sid, super().update_and_generate_response(results).partitions)


class IncrementalFetchContext(FetchContext):
    """An incremental fetch in an open session: reads every partition of the session,
    answers only those with something new (module docstring)."""

    def __init__(self, session: FetchSession) -> None:
        self.session = session

    def partitions(self) -> list[tuple[TopicPartition, FetchRequestPartition]]:
        return [(tp, c.req) for tp, c in self.session.partitions.items()]

    def update_and_generate_response(self, results: dict[TopicPartition, Any]) -> FetchSessionResponse:
        out = []
        parts = self.session.partitions
        none = ErrorCode.none
        for tp, c in parts.items():
            r = results.get(tp)
            if r is None:
                continue
            if (r.high_watermark == c.high_watermark and r.log_start_offset == c.log_start_offset
                    and r.last_stable_offset == c.last_stable_offset and r.error == none and r.size == 0):
                continue  # nothing new (must_respond's answer, without the call: most partitions)
            if c.must_respond(r.error, r.high_watermark, r.last_stable_offset, r.log_start_offset, r.size):
                out.append((tp, r))
        for tp, _ in out:
            parts[tp] = parts.pop(tp)  # answered partitions go last, in answer order (round-robin)
        return FetchSessionResponse(self.session.id, out)


class FetchManager:
    """Kafka's FetchManager: turns a Fetch's session fields into a FetchContext."""

    def __init__(self, cache: FetchSessionCache) -> None:
        self.cache = cache

    def new_context(self, version: int, session_id: int, session_epoch: int, privileged: bool,
                    fetch_data: dict[TopicPartition, FetchRequestPartition],
                    forgotten: Iterable[TopicPartition], now_ms: int) -> FetchContext:
        """The context of one Fetch (module docstring for the rules); ``privileged`` is True
        for a follower (replica_id >= 0)."""
        if version < SESSION_MIN_VERSION:
            return SessionlessFetchContext(fetch_data)
        if session_epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if session_id != INVALID_SESSION_ID:
                self.cache.remove(session_id)
            if session_epoch == FINAL_EPOCH:
                return SessionlessFetchContext(fetch_data)
            return FullFetchContext(self.cache, now_ms, privileged, fetch_data)
        session = self.cache.get(session_id)
        if session is None:
            return SessionErrorContext(ErrorCode.fetch_session_id_not_found)
        if session.epoch != session_epoch:
            return SessionErrorContext(ErrorCode.invalid_fetch_session_epoch)
        session.update(fetch_data, forgotten)
        if not session.partitions:
            self.cache.remove(session.id)
            return SessionlessFetchContext(fetch_data)
        self.cache.touch(session, now_ms)
        session.epoch = next_epoch(session.epoch)
        return IncrementalFetchContext(session)
