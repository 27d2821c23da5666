"""A large LeaderAndIsr does not stop the broker: it yields to the event loop while it creates
its logs (as Kafka's request handler threads go on serving other requests), and the state
change lock keeps other controller requests from interleaving with it."""

from __future__ import annotations

from pathlib import Path

import trio

from kafkalike.protocol.errors import ErrorCode
from tests.broker.broker_helpers import connect, leader_and_isr, running_broker, stop_replica

PARTITIONS = 600


async def test_broker_serves_other_tasks_while_a_large_leader_and_isr_creates_its_logs(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """While a 600-partition LeaderAndIsr is handled, another task of the broker's event loop
    sees some but not all of its partitions (before, the loop was held until all 600 logs
    existed); at the end every partition is led here."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        me = server.broker_id
        rm = server.replica_manager
        seen: set[int] = set()
        done = trio.Event()

        async def watch() -> None:
            while not done.is_set():
                seen.add(sum(1 for tp in rm.partitions if tp.topic == "big"))
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            resp = await conn.send(leader_and_isr(server, "big", {p: (me, [me], [me]) for p in range(PARTITIONS)}),
                                   api_version=6)
            done.set()
        assert resp.error_code == 0
        errors = [e.error_code for t in resp.topics for e in t.partition_errors]
        assert errors == [ErrorCode.none.value] * PARTITIONS
        partial = sorted(n for n in seen if 0 < n < PARTITIONS)
        assert partial, f"the event loop never ran while the logs were created (saw {sorted(seen)})"
        assert all(rm.leader_partition(tp).is_leader for tp in rm.partitions if tp.topic == "big")


async def test_stop_replica_waits_for_a_large_leader_and_isr_in_progress(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """A StopReplica sent on a second connection while a large LeaderAndIsr is being handled
    is applied after it (the state change lock), so the partition ends up stopped, not
    re-created by the rest of the LeaderAndIsr."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, \
            connect(server) as conn, connect(server) as conn2:
        me = server.broker_id
        rm = server.replica_manager
        last = PARTITIONS - 1
        results: dict[str, object] = {}

        async def lead() -> None:
            results["lai"] = await conn.send(
                leader_and_isr(server, "big", {p: (me, [me], [me]) for p in range(PARTITIONS)}), api_version=6)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(lead)
            while not any(tp.topic == "big" for tp in rm.partitions):
                await trio.sleep(0)
            assert "lai" not in results  # the LeaderAndIsr is still being handled
            results["stop"] = await conn2.send(stop_replica(server, "big", [last], delete=False), api_version=3)
        stop = results["stop"]
        assert [e.error_code for e in stop.partition_errors] == [ErrorCode.none.value]  # type: ignore[attr-defined]
        # without the lock the StopReplica ran at one of the LeaderAndIsr's yields, before the
        # last partition existed, and the LeaderAndIsr then created it
        assert [p for tp, p in rm.partitions.items() if tp.topic == "big" and tp.partition == last] == []
        assert sum(1 for tp in rm.partitions if tp.topic == "big") == PARTITIONS - 1


# longest the loop may be held by one request here (generous: a busy 2-core machine); before
# the fix, yields came every 100 partitions and each new leader fsynced its
# leader-epoch-checkpoint on the loop (~4 ms each here when idle: 0.5-4.2 s measured), and
# StopReplica removed every log dir on the loop; after: 0.08-0.19 s, most of it decoding the
# 600-partition request and encoding its answer
MAX_LOOP_GAP_S = 0.5


async def _longest_loop_gap_during(send: object) -> tuple[float, object]:
    """Run ``send()`` while a task of the same event loop sleeps 5 ms at a time; return the
    longest time that task waited beyond its sleep, and ``send()``'s answer."""
    gaps: list[float] = []
    done = trio.Event()
    result: dict[str, object] = {}

    async def ticker() -> None:
        while not done.is_set():
            t0 = trio.current_time()
            await trio.sleep(0.005)
            gaps.append(trio.current_time() - t0 - 0.005)

    async def run() -> None:
        result["answer"] = await send()  # type: ignore[operator]
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        nursery.start_soon(run)
    return max(gaps), result["answer"]


async def test_large_leader_and_isr_and_stop_replica_delete_never_hold_the_event_loop_long(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """A 600-partition LeaderAndIsr (new leaders: logs created, leader epochs recorded) and the
    StopReplica deleting them never keep another task of the broker's loop waiting over
    MAX_LOOP_GAP_S; the deleted dirs are renamed *-delete at once and removed after
    log.segment.delete.delay.ms, and every leader epoch reaches its checkpoint file."""
    async with running_broker(tmp_path, zk_chroot_connect,
                              **{"log.segment.delete.delay.ms": "2000"}) as server, connect(server) as conn:
        me = server.broker_id
        logs = tmp_path / f"logs-{me}"
        lai_gap, resp = await _longest_loop_gap_during(lambda: conn.send(
            leader_and_isr(server, "wide", {p: (me, [me], [me]) for p in range(PARTITIONS)}), api_version=6))
        assert [e.error_code for t in resp.topics for e in t.partition_errors] == [0] * PARTITIONS  # type: ignore[attr-defined]
        with trio.fail_after(60):  # the epochs are written in a worker thread after the answer
            while not all((logs / f"wide-{p}" / "leader-epoch-checkpoint").read_text().split() == ["0", "1", "0", "0"]
                          for p in range(PARTITIONS)):
                await trio.sleep(0.05)

        stop_gap, stop = await _longest_loop_gap_during(lambda: conn.send(
            stop_replica(server, "wide", list(range(PARTITIONS)), delete=True, leader_epoch=-2), api_version=3))
        assert [e.error_code for e in stop.partition_errors] == [0] * PARTITIONS  # type: ignore[attr-defined]
        assert not any((logs / f"wide-{p}").exists() for p in range(PARTITIONS))
        assert any(d.name.endswith("-delete") for d in logs.iterdir())  # renamed, removed later
        with trio.fail_after(60):
            while any(d.name.endswith("-delete") for d in logs.iterdir()):
                await trio.sleep(0.05)
        assert max(lai_gap, stop_gap) < MAX_LOOP_GAP_S, \
            f"event loop held {lai_gap:.3f} s by LeaderAndIsr, {stop_gap:.3f} s by StopReplica"
