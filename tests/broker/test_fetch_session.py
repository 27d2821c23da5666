"""Incremental fetch sessions (KIP-227) over the wire against in-process brokers with a real
ZooKeeper: a v12 full fetch opens a session; incremental fetches answer only what changed,
read and long-poll every session partition, drop forgotten ones, and answer a wrong epoch
or an unknown id with a top-level error; followers replicate through sessions."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

from kafkalike.client.connection import KafkaConnection
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import (batch, connect, produce, running_broker,
                                         three_brokers_with_topic, values_of)
from tests.broker.test_replica_manager import _lead


async def _fetch(conn: KafkaConnection, session_id: int, epoch: int, parts: dict[int, int] | None = None,
                 forgotten: tuple[int, ...] = (), max_wait_ms: int = 0, topic: str = "s") -> Any:
    """One v12 consumer Fetch of ``topic`` with {partition: fetch offset} and the session fields."""
    return await conn.call(
        ApiKey.FETCH, api_version=12, replica_id=-1, max_wait=max_wait_ms, min_bytes=1, max_bytes=1 << 20,
        isolation_level=0, session_id=session_id, session_epoch=epoch,
        topics=[{"topic": topic, "partitions": [
            {"partition": p, "fetch_offset": o, "partition_max_bytes": 1 << 20} for p, o in (parts or {}).items()]}]
        if parts else [],
        forgotten_topics_data=[{"topic": topic, "partitions": list(forgotten)}] if forgotten else [])


def _answered(resp: Any) -> dict[int, Any]:
    return {d.partition_index: d for t in resp.responses for d in t.partitions}


async def test_session_answers_only_changes(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A full fetch at epoch 0 opens a session; an incremental fetch with no change answers no
    partition; new records (and the HW they move) answer only their partition."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "s", partitions=2)
        await produce(conn, "s", 0, batch([b"a"]))
        full = await _fetch(conn, 0, 0, {0: 0, 1: 0})
        assert full.error_code == 0 and full.session_id != 0
        assert sorted(_answered(full)) == [0, 1] and values_of(_answered(full)[0].records) == [b"a"]
        sid = full.session_id
        # unchanged fetch offsets of a consumer that read p0 to 1: nothing to say
        quiet = await _fetch(conn, sid, 1, {0: 1})
        assert quiet.error_code == 0 and quiet.session_id == sid and _answered(quiet) == {}
        quiet = await _fetch(conn, sid, 2)
        assert _answered(quiet) == {}
        await produce(conn, "s", 1, batch([b"b", b"c"]))
        news = await _fetch(conn, sid, 3)
        assert list(_answered(news)) == [1]
        assert _answered(news)[1].high_watermark == 2 and values_of(_answered(news)[1].records) == [b"b", b"c"]
        assert server.fetch_manager.cache.statistics().sessions == 1


async def test_incremental_fetch_long_polls_every_session_partition(tmp_path: Path, zk_chroot_connect: str) -> None:
    """An incremental fetch listing no partition waits in the purgatory on all the session's
    partitions and returns as soon as one of them gets records."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "s", partitions=2)
        sid = (await _fetch(conn, 0, 0, {0: 0, 1: 0})).session_id
        got: list[Any] = []

        async def poll() -> None:
            got.append(await _fetch(conn, sid, 1, max_wait_ms=10_000))

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await trio.sleep(0.3)
            assert not got
            async with connect(server) as pconn:
                await produce(pconn, "s", 1, batch([b"late"]))
        assert trio.current_time() - start < 5
        assert values_of(_answered(got[0])[1].records) == [b"late"] and list(_answered(got[0])) == [1]


async def test_session_errors_and_forgotten_partitions(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A wrong epoch gets INVALID_FETCH_SESSION_EPOCH, an unknown id FETCH_SESSION_ID_NOT_FOUND
    (top level, no partitions); forgotten partitions no longer answer; epoch -1 closes."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "s", partitions=2)
        sid = (await _fetch(conn, 0, 0, {0: 0, 1: 0})).session_id
        bad = await _fetch(conn, sid, 7)
        assert bad.error_code == ErrorCode.invalid_fetch_session_epoch and bad.responses == () and bad.session_id == 0
        unknown = sid + 1 if sid < 2**31 - 1 else 1
        bad = await _fetch(conn, unknown, 1)
        assert bad.error_code == ErrorCode.fetch_session_id_not_found and bad.responses == ()
        forgot = await _fetch(conn, sid, 1, forgotten=(1,))
        assert forgot.error_code == 0 and _answered(forgot) == {}
        await produce(conn, "s", 1, batch([b"x"]))
        await produce(conn, "s", 0, batch([b"y"]))
        news = await _fetch(conn, sid, 2)
        assert list(_answered(news)) == [0]
        closed = await _fetch(conn, sid, -1, {1: 0})
        assert closed.session_id == 0 and list(_answered(closed)) == [1]
        assert server.fetch_manager.cache.get(sid) is None


async def test_old_fetch_versions_stay_sessionless(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Fetch v6 has no session fields: it always answers every partition with session id 0."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "s", partitions=2)
        resp = await conn.call(ApiKey.FETCH, api_version=6, replica_id=-1, max_wait=0, min_bytes=1,
                               max_bytes=1 << 20, isolation_level=0, topics=[{"topic": "s", "partitions": [
                                   {"partition": p, "fetch_offset": 0, "log_start_offset": -1,
                                    "partition_max_bytes": 1 << 20} for p in (0, 1)]}])
        assert sorted(_answered(resp)) == [0, 1] and server.fetch_manager.cache.statistics().sessions == 0


async def test_followers_replicate_through_sessions(tmp_path: Path, zk_chroot_connect: str) -> None:
    """RF-3 followers open one privileged session each on the leader and keep replicating with
    incremental fetches, also after the leader forgets every session (full fetch again)."""
    async with AsyncExitStack() as stack:
        servers = await three_brokers_with_topic(stack, tmp_path, zk_chroot_connect, "rs", partitions=3,
                                                 min_insync_replicas="2", replica_fetch_wait_max_ms="200")
        tps = [TopicPartition("rs", p) for p in range(3)]
        tp = tps[0]
        leader = next(s for s in servers.values() if s.replica_manager.partitions[tp].is_leader)
        lconn = await stack.enter_async_context(connect(leader))
        for round_ in range(2):
            with trio.fail_after(20):
                r = await produce(lconn, "rs", 0, batch([b"r%d" % round_]), acks=-1, timeout_ms=15000)
            assert r.error_code == 0 and r.base_offset == round_
            cache = leader.fetch_manager.cache
            with trio.fail_after(10):  # both followers open a session and go incremental
                while not (len(cache.sessions) == 2 and all(
                        s.privileged and s.epoch > 3 for s in cache.sessions.values())):
                    await trio.sleep(0.05)
            if round_ == 0:
                cache.sessions.clear()  # the followers must notice and open new sessions
        for s in servers.values():
            with trio.fail_after(20):
                while s.replica_manager.partitions[tp].log_end_offset != 2:
                    await trio.sleep(0.02)
        fetchers = [f for s in servers.values() for f in s.replica_manager.fetcher_manager.fetchers.values()]
        assert fetchers and all(f.session.session_id != 0 for f in fetchers)
