"""A follower's replica fetcher reads its leader's answers in its own task
(ReplicaFetcherBlockingSend, Kafka's name): one trip through trio's scheduler per Fetch round
trip, where the pipelined client connection took four task steps (its reader task's wake-up,
the Event waking the fetcher, the write lock, trio's send_all) — the "follower turnaround"
hop of docs/benchmarks.md's hop timing. Real in-process brokers on loopback, real ZooKeeper."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import trio

from kafkalike.broker.replica_fetcher_blocking_send import ReplicaFetcherBlockingSend
from kafkalike.client.errors import ConnectionClosedError, RequestTimeoutError
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import batch, connect, port_of, produce, running_broker, three_brokers_with_topic


class _FetcherSteps(trio.abc.Instrument):
    """Counts the steps (resumptions by trio's scheduler) of every replica fetcher task and
    of any task started under one (a connection's reader task)."""

    def __init__(self) -> None:
        self.steps = 0

    @staticmethod
    def _in_fetcher(task: trio.lowlevel.Task) -> bool:
        t: trio.lowlevel.Task | None = task
        while t is not None:
            if "ReplicaFetcherManager._run" in t.name:
                return True
            nursery = t.parent_nursery
            t = nursery.parent_task if nursery is not None else None
        return False

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if self._in_fetcher(task):
            self.steps += 1


async def test_a_followers_fetch_round_trip_costs_its_fetcher_one_scheduler_trip(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Three brokers, an RF 3 partition; 10 records produced to the leader one at a time,
    each followed until both followers hold it. Every fetcher step is a wake-up with its
    leader's answer (or a connect, a backoff): at most ~1 step per Fetch answered, where the
    client connection took 4 per Fetch (3 for the fetcher, 1 for its reader task)."""
    topic = f"trips-{uuid.uuid4().hex[:6]}"
    tp = TopicPartition(topic, 0)
    async with contextlib.AsyncExitStack() as stack:
        servers = await three_brokers_with_topic(stack, tmp_path, zk_chroot_connect, topic)
        with trio.fail_after(30):
            while True:
                leaders = [b for b, s in servers.items() if (p := s.replica_manager.partitions.get(tp)) and p.is_leader]
                if leaders:
                    break
                await trio.sleep(0.02)
        leader = servers[leaders[0]]
        followers = [s for b, s in servers.items() if b != leaders[0]]

        def fetches() -> int:
            return sum(f.fetches for s in followers for f in s.replica_manager.fetcher_manager.fetchers.values())

        async def followed(offset: int) -> None:
            with trio.fail_after(30):
                while any(s.replica_manager.partitions[tp].log_end_offset < offset for s in followers):
                    await trio.sleep(0.005)

        async with connect(leader) as conn:
            resp = await produce(conn, topic, 0, batch([b"warm-up"]), acks=1)
            assert resp.error_code == 0
            await followed(1)  # connected, truncated, fetching
            steps = _FetcherSteps()
            before = fetches()
            trio.lowlevel.add_instrument(steps)
            try:
                for i in range(10):
                    resp = await produce(conn, topic, 0, batch([f"r{i}".encode()]), acks=1)
                    assert resp.error_code == 0
                    await followed(2 + i)
                answered = fetches() - before
            finally:
                trio.lowlevel.remove_instrument(steps)
    assert answered >= 10  # each record was fetched by each follower, in one or more Fetches
    assert steps.steps <= answered + 6, (steps.steps, answered)  # + the round trips in flight at either end


async def test_the_blocking_send_answers_in_order_and_closes_on_timeout(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Against a real broker: ApiVersions is negotiated on connect, requests are answered one
    after another on the same connection, a Fetch that waits longer than its request timeout
    raises RequestTimeoutError and closes the connection (a late answer would be read as the
    next one's), and a closed connection refuses further requests."""
    async with running_broker(tmp_path, zk_chroot_connect) as server:
        conn = await ReplicaFetcherBlockingSend.connect(
            "127.0.0.1", port_of(server), client_id="test-fetcher", request_timeout_ms=10_000,
            connect_timeout_ms=10_000)
        try:
            assert conn.api_version(ApiKey.FETCH) >= 12
            for _ in range(3):
                md = await conn.call(ApiKey.METADATA, api_version=1, topics=[])
                assert [b.node_id for b in md.brokers] == [server.config.broker_id]
            topic = f"timeout-{uuid.uuid4().hex[:6]}"
            resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False, topics=[
                {"name": topic, "num_partitions": 1, "replication_factor": 1, "assignments": [], "configs": []}])
            assert resp.topics[0].error_code == 0
            with trio.fail_after(20):
                while TopicPartition(topic, 0) not in server.replica_manager.partitions:
                    await trio.sleep(0.02)
            try:
                await conn.call(ApiKey.FETCH, api_version=12, replica_id=-1, max_wait=5000, min_bytes=1,
                                max_bytes=1 << 20, isolation_level=0, session_id=0, session_epoch=-1,
                                topics=[{"topic": topic, "partitions": [{
                                    "partition": 0, "fetch_offset": 0, "current_leader_epoch": -1,
                                    "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
                                timeout_ms=300)
                raise AssertionError("a Fetch waiting 5 s answered within a 300 ms timeout")
            except RequestTimeoutError:
                pass
            assert conn.closed
            try:
                await conn.call(ApiKey.METADATA, api_version=1, topics=[])
                raise AssertionError("a closed connection carried a request")
            except ConnectionClosedError:
                pass
        finally:
            await conn.aclose()
