"""The purgatory: operations complete at once when they can, on check_and_complete of one of
their keys, or at their timeout (on_expiration); on_complete runs exactly once; a cancelled
waiter leaves nothing watched."""

from __future__ import annotations

import trio
import trio.testing

from kafkalike.broker.delayed_operation import DelayedOperation, DelayedOperationPurgatory


class Counter(DelayedOperation):
    """Completes when ``box["n"] >= target``; records how it completed."""

    def __init__(self, delay_ms: int, box: dict, target: int) -> None:
        super().__init__(delay_ms)
        self.box, self.target = box, target
        self.completions = 0
        self.expirations = 0

    def try_complete(self) -> bool:
        return self.force_complete() if self.box["n"] >= self.target else False

    def on_complete(self) -> None:
        self.completions += 1

    def on_expiration(self) -> None:
        self.expirations += 1


async def test_completes_at_once_without_watching() -> None:
    """A satisfied operation never enters the watch lists."""
    p = DelayedOperationPurgatory("t")
    op = Counter(1000, {"n": 5}, 1)
    await p.try_complete_else_watch(op, ["a"])
    assert op.completed and op.completions == 1 and not op.expired
    assert p.statistics().completed_at_once == 1 and p.watched("a") == 0


async def test_check_and_complete_wakes_the_waiter() -> None:
    """check_and_complete on any of its keys completes it; other keys' operations stay."""
    p = DelayedOperationPurgatory("t")
    box = {"n": 0}
    a, b = Counter(10_000, box, 1), Counter(10_000, box, 2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(p.try_complete_else_watch, a, ["k1", "k2"])
        nursery.start_soon(p.try_complete_else_watch, b, ["k2"])
        await trio.testing.wait_all_tasks_blocked()
        assert (p.watched("k1"), p.watched("k2"), p.statistics().delayed) == (1, 2, 2)
        box["n"] = 1
        assert p.check_and_complete("k1") == 1
        await trio.testing.wait_all_tasks_blocked()
        assert a.completed and not b.completed and p.watched("k1") == 0 and p.watched("k2") == 1
        box["n"] = 2
        assert p.check_and_complete("k2") == 1
    assert (a.completions, b.completions, a.expirations) == (1, 1, 0)
    assert p.statistics().completed_delayed == 2 and not p.watchers


async def test_timeout_forces_completion_and_expiration(autojump_clock: trio.testing.MockClock) -> None:
    """At delay_ms the operation is forced: on_complete once, then on_expiration."""
    p = DelayedOperationPurgatory("t")
    op = Counter(250, {"n": 0}, 1)
    t0 = trio.current_time()
    await p.try_complete_else_watch(op, ["k"])
    assert trio.current_time() - t0 >= 0.25
    assert (op.completions, op.expirations, op.expired) == (1, 1, True)
    assert p.statistics().expired == 1 and not p.watchers
    assert p.check_and_complete("k") == 0


async def test_cancelled_waiter_is_unwatched() -> None:
    """Cancelling the waiting task force-completes the operation and clears its keys."""
    p = DelayedOperationPurgatory("t")
    op = Counter(10_000, {"n": 0}, 1)
    with trio.move_on_after(0.05):
        await p.try_complete_else_watch(op, ["k"])
    assert op.completed and op.completions == 1 and p.watched("k") == 0 and p.statistics().delayed == 0


async def test_complete_all_forces_every_watcher() -> None:
    """complete_all (leadership moved) completes every operation of a key."""
    p = DelayedOperationPurgatory("t")
    ops = [Counter(10_000, {"n": 0}, 1) for _ in range(3)]
    async with trio.open_nursery() as nursery:
        for op in ops:
            nursery.start_soon(p.try_complete_else_watch, op, ["k"])
        await trio.testing.wait_all_tasks_blocked()
        assert p.complete_all("k") == 3
    assert all(op.completions == 1 and not op.expired for op in ops)
