"""A LeaderAndIsr for thousands of new partitions never holds the broker's event loop long:
its frame is decoded and its answer encoded in a worker thread, and its logs are created in
one (issue: no event-loop stall over ~100 ms at 10,000 topics). Measured per event-loop step
with a trio Instrument, not by a total time, so a loaded machine does not fail it: before, each
new log (directory, .log, two preallocated indexes: ~1.5 ms idle, hundreds of ms when the disk
is busy) was made on the loop and the 2,000-partition frame decoded there."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from kafkalike.client.connection import KafkaConnection
from kafkalike.protocol.errors import ErrorCode
from tests.broker.broker_helpers import leader_and_isr, port_of, running_broker

PARTITIONS = 2000

#: generous bound on one step of the loop (seconds): idle, the longest step here is 20-100 ms
#: after the change; a busy 2-core machine stretches every step
MAX_STEP_S = 1.0


class _LongestStep(trio.abc.Instrument):
    """The longest task step (seconds) of the loop it is added to, and the task that took it."""

    def __init__(self) -> None:
        self.longest = (0.0, "")
        self._started: float | None = None

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self._started is None:  # added during this step
            return
        d = time.perf_counter() - self._started
        if d > self.longest[0]:
            self.longest = (d, task.name)


async def test_a_leader_and_isr_for_thousands_of_new_partitions_creates_their_logs_off_the_event_loop(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """All 2,000 logs of a 2,000-partition LeaderAndIsr are created in a worker thread (none on
    the event loop, where each cost a loop step before), every partition is led here and has its
    log dir, and no single step of the broker's loop took over MAX_STEP_S meanwhile."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, trio.open_nursery() as nursery:
        conn = await KafkaConnection.connect("127.0.0.1", port_of(server), nursery=nursery,
                                             request_timeout_ms=600_000)
        me = server.broker_id
        lm = server.log_manager
        assert lm is not None
        request = leader_and_isr(server, "wide", {p: (me, [me], [me]) for p in range(PARTITIONS)})
        inline_before = lm.logs_created_inline
        steps = _LongestStep()
        trio.lowlevel.add_instrument(steps)
        try:
            resp = await conn.send(request, api_version=6)
        finally:
            trio.lowlevel.remove_instrument(steps)
            await conn.aclose()
        assert [e.error_code for t in resp.topics for e in t.partition_errors] == [ErrorCode.none.value] * PARTITIONS
        assert lm.logs_created_inline == inline_before, \
            f"{lm.logs_created_inline - inline_before} of {PARTITIONS} logs were created on the event loop"
        assert lm.logs_created_prepared >= PARTITIONS and lm.prepared_count() == 0
        logs = tmp_path / f"logs-{me}"
        assert all((logs / f"wide-{p}").is_dir() for p in range(PARTITIONS))
        assert all(server.replica_manager.leader_partition(tp).is_leader
                   for tp in server.replica_manager.partitions if tp.topic == "wide")
        longest, task = steps.longest
        assert longest < MAX_STEP_S, f"one step of the event loop took {longest:.3f} s ({task})"
