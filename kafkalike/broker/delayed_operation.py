"""DelayedOperation and DelayedOperationPurgatory: requests that wait for a condition or a
timeout (Kafka's kafka.server.DelayedOperation / DelayedOperationPurgatory).

A delayed operation (a long-polling Fetch, an acks=all Produce, a DeleteTopics waiting for
the metadata cache) is parked in a purgatory under one or more *keys* (a partition, a
topic). Whoever changes what the operation waits for calls ``check_and_complete(key)``:
each operation watched under that key runs ``try_complete()``, which checks its condition
and, when met, calls ``force_complete()``. An operation that is never completed expires
after its ``delay_ms``: ``force_complete()`` then runs and ``on_expiration()`` is called.

``on_complete()`` runs exactly once, whichever comes first (completion, expiry, or a
``force_complete()`` from outside, e.g. on leadership change); it builds the answer.

trio shape (instead of Kafka's timing wheel and expiration reaper thread): the request's own
task awaits ``purgatory.try_complete_else_watch(op, keys)``, which first tries to complete
the operation at once, else registers it under its keys and sleeps until completed or the
deadline passes (``trio.move_on_after``). Completed operations are dropped from the watch
lists immediately, so there is no purge interval. Everything runs on the broker's one trio
thread, so ``try_complete`` needs no lock (Kafka's per-operation lock).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import attrs
import structlog
import trio

log = structlog.get_logger(__name__)


class DelayedOperation:
    """Base class. Subclasses implement ``try_complete``, ``on_complete``, ``on_expiration``.

    ``delay_ms``: how long the operation may wait (ms). ``completed``: whether on_complete
    has run. ``expired``: True when completion came from the timeout.
    """

    def __init__(self, delay_ms: int) -> None:
        self.delay_ms = max(0, int(delay_ms))
        self.completed = False
        self.expired = False
        self._done = trio.Event()

    # -- to override
    def try_complete(self) -> bool:
        """Check the condition; if met, ``return self.force_complete()``; else return False."""
        raise NotImplementedError

    def on_complete(self) -> None:
        """Build the result (runs exactly once)."""
        raise NotImplementedError

    def on_expiration(self) -> None:
        """Called after on_complete when the operation timed out (metrics, logs)."""

    # -- machinery
    def force_complete(self) -> bool:
        """Complete now; True if this call completed it, False if it was already complete."""
        if self.completed:
            return False
        self.completed = True
        try:
            self.on_complete()
        finally:
            self._done.set()
        return True

    async def wait(self) -> None:
        """Sleep until the operation is complete."""
        await self._done.wait()


@attrs.frozen
class PurgatoryStatistics:
    """Snapshot of a purgatory: operations waiting, watch-list entries, counters."""

    name: str
    delayed: int
    watched_keys: int
    completed_at_once: int
    completed_delayed: int
    expired: int


@attrs.define
class DelayedOperationPurgatory:
    """Delayed operations of one kind ("Produce", "Fetch", "DeleteTopics"), watched by key."""

    name: str
    watchers: dict[Hashable, list[DelayedOperation]] = attrs.Factory(dict)
    delayed: int = 0
    completed_at_once: int = 0
    completed_delayed: int = 0
    expired: int = 0

    async def try_complete_else_watch(self, op: DelayedOperation, keys: Iterable[Hashable]) -> None:
        """Complete ``op`` now if possible; otherwise watch it under ``keys`` until it
        completes (check_and_complete) or ``op.delay_ms`` passes (then it is forced and
        ``on_expiration`` called). Returns once ``op.completed``. If the calling task is
        cancelled, ``op`` is still force-completed (and unwatched) before the cancellation
        propagates."""
        keys = list(keys)
        if op.try_complete():
            self.completed_at_once += 1
            return
        for key in keys:
            self.watchers.setdefault(key, []).append(op)
        self.delayed += 1
        try:
            if not op.try_complete():  # the condition may have changed while registering
                with trio.move_on_after(op.delay_ms / 1000.0):
                    await op.wait()
            if op.force_complete():
                op.expired = True
                self.expired += 1
                op.on_expiration()
            else:
                self.completed_delayed += 1
        finally:
            op.force_complete()
            self.delayed -= 1
            for key in keys:
                ops = self.watchers.get(key)
                if ops is not None:
                    try:
                        ops.remove(op)
                    except ValueError:
                        pass
                    if not ops:
                        del self.watchers[key]

    def check_and_complete(self, key: Hashable) -> int:
        """Run try_complete on every operation watched under ``key``; returns how many
        completed now."""
        ops = self.watchers.get(key)
        return _try_complete_each(list(ops)) if ops else 0

    def check_and_complete_every(self) -> int:
        """Run try_complete once on every watched operation (ReplicaManager's shutdown);
        returns how many completed now. ``check_and_complete`` key by key would check an
        operation once per key it watches, and each DelayedFetch check goes over every
        partition of the fetch: a follower's Fetch of n partitions cost n² partition checks
        (85 s of a broker's shutdown at 10,000 partitions, issue 24)."""
        # an operation is hashed by identity; dict keys keep the order they were first watched in
        return _try_complete_each(list(dict.fromkeys(op for watched in self.watchers.values() for op in watched)))

    def complete_all(self, key: Hashable) -> int:
        """force_complete every operation under ``key`` (leadership moved, replica stopped)."""
        ops = self.watchers.get(key)
        if not ops:
            return 0
        return sum(1 for op in list(ops) if op.force_complete())

    def watched(self, key: Hashable) -> int:
        """Operations currently watched under ``key``."""
        return len(self.watchers.get(key, ()))

    def statistics(self) -> PurgatoryStatistics:
        """Frozen snapshot for the CLI and tests."""
        return PurgatoryStatistics(self.name, self.delayed, len(self.watchers),
                                   self.completed_at_once, self.completed_delayed, self.expired)


def _try_complete_each(ops: list[DelayedOperation]) -> int:
    """try_complete each of ``ops`` not completed yet; returns how many completed now."""
    return sum(1 for op in ops if not op.completed and op.try_complete())
