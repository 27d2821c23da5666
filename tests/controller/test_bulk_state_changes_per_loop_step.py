"""Creating and deleting many topics never has the controller change thousands of partition
and replica states in one event-loop step (issue 15: no event-loop stall over ~100 ms at
10,000 topics). Before, the controller handed every new (or deleted) partition to its state
machines in one call, whose per-partition Python work between two ZooKeeper round trips held
the broker's whole event loop: 1-3 s per step at 10,000 topics. Measured structurally, not
with a clock: a trio Instrument counts the state changes (ControllerContext.move_partition /
move_replica) made within each task step of a real broker (its own controller), for topics
written to a real ZooKeeper the way an admin tool writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from kafkalike.bench.many_topics import create_in_zk, mark_for_deletion_in_zk, topic_names
from kafkalike.controller import controller_context
from kafkalike.controller.controller_context import ControllerContext
from tests.broker.broker_helpers import running_broker

#: topics created, then deleted: two chunks' worth; handed to the state machines in one call
#: (before), 2 x TOPICS state changes happened in one step (partitions New + replicas New;
#: partitions Offline + NonExistent), over the bound below
TOPICS = 2 * controller_context.STATE_CHANGE_CHUNK
#: state changes one task step may make: a chunk's partitions and then its replicas change in
#: one step (partitions -> NewPartition, replicas -> NewReplica), so two chunks' worth
MAX_PER_STEP = 2 * controller_context.STATE_CHANGE_CHUNK
TIMEOUT_S = 600


class _StateChangesPerStep(trio.abc.Instrument):
    """The most state changes (``changes``, bumped by the patched ControllerContext) made in
    one task step, and the task that made them."""

    def __init__(self) -> None:
        self.changes = 0
        self.most = (0, "")
        self._at_start = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._at_start = self.changes

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        n = self.changes - self._at_start
        if n > self.most[0]:
            self.most = (n, task.name)

    def take(self) -> tuple[int, str]:
        most, self.most = self.most, (0, "")
        return most


async def test_creating_and_deleting_many_topics_changes_at_most_two_chunks_of_states_per_event_loop_step(
        tmp_path: Path, zk_chroot_connect: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """TOPICS single-partition topics written to ZooKeeper are all created (every one in the
    broker's metadata cache), then all marked for deletion and all deleted (gone from the
    cache, the controller and ZooKeeper), and no task step of the broker's event loop made more
    than MAX_PER_STEP partition or replica state changes, in either phase."""
    steps = _StateChangesPerStep()
    for name in ("move_partition", "move_replica"):
        original = getattr(ControllerContext, name)

        def counted(self: ControllerContext, *args: Any, _original: Any = original) -> None:
            steps.changes += 1
            _original(self, *args)

        monkeypatch.setattr(ControllerContext, name, counted)
    names = topic_names(TOPICS, prefix="bulk")
    async with running_broker(tmp_path, zk_chroot_connect) as server:
        trio.lowlevel.add_instrument(steps)
        try:
            steps.take()  # start-up's
            await create_in_zk(zk_chroot_connect, names, broker=server.broker_id)
            with trio.fail_after(TIMEOUT_S):
                while not all(server.metadata_cache.contains_topic(t) for t in names):
                    await trio.sleep(0.2)
            creating = steps.take()
            created_changes = steps.changes

            await mark_for_deletion_in_zk(zk_chroot_connect, names)
            ctx = server.controller.context
            with trio.fail_after(TIMEOUT_S):
                while (any(server.metadata_cache.contains_topic(t) for t in names)
                       or ctx.all_topics() & set(names) or ctx.topics_to_delete):
                    await trio.sleep(0.2)
            deleting = steps.take()
        finally:
            trio.lowlevel.remove_instrument(steps)
    # 2 partition states and 2 replica states per topic each way: the counting saw them all
    print(f"most state changes in one step: {creating[0]} creating, {deleting[0]} deleting")
    assert created_changes >= 4 * TOPICS and steps.changes - created_changes >= 4 * TOPICS
    assert creating[0] <= MAX_PER_STEP, f"one step made {creating[0]} state changes while creating ({creating[1]})"
    assert deleting[0] <= MAX_PER_STEP, f"one step made {deleting[0]} state changes while deleting ({deleting[1]})"
