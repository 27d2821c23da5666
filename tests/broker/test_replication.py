"""Replication with three in-process brokers and the real controller: followers
fetch from the leader, the HW follows the ISR, acks=all waits for the ISR, ISR shrink and
expand are written to the partition state znode and announced in /isr_change_notification,
and a follower truncates by leader epoch."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import trio

from kafkalike.broker.replica_fetcher import BrokerEndpoint
from kafkalike.coordination import ZooKeeperClient
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import (batch, connect, fetch, leader_and_isr, produce,
                                         running_broker, three_brokers_with_topic,
                                         values_of, zk_json)


async def _wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


async def test_rf3_topic_replicates_and_acks_all(tmp_path: Path, zk_chroot_connect: str,
                                                 zk_client: ZooKeeperClient) -> None:
    """An RF-3 topic created through the admin API gets a leader and two fetching followers;
    acks=all returns once all three have the batch; followers hold the same bytes."""
    async with AsyncExitStack() as stack:
        servers = await three_brokers_with_topic(stack, tmp_path, zk_chroot_connect, "rep",
                                                 min_insync_replicas="2", replica_fetch_wait_max_ms="200")
        tp = TopicPartition("rep", 0)
        leader_id = next(i for i, s in servers.items() if s.replica_manager.partitions[tp].is_leader)
        leader = servers[leader_id]
        lconn = await stack.enter_async_context(connect(leader))
        with trio.fail_after(20):
            r = await produce(lconn, "rep", 0, batch([b"one", b"two"]), acks=-1, timeout_ms=15000)
        assert r.error_code == 0 and r.base_offset == 0
        p = leader.replica_manager.partitions[tp]
        assert p.high_watermark == 2 and sorted(p.isr) == [1, 2, 3]
        for i, s in servers.items():
            if i != leader_id:
                await _wait_for(lambda s=s: s.replica_manager.partitions[tp].log_end_offset == 2)
                f = s.replica_manager.partitions[tp]
                assert not f.is_leader
                assert f.log.read(0, 1 << 20)[0].read_bytes() == p.log.read(0, 1 << 20)[0].read_bytes()
        got = await fetch(lconn, "rep", 0, 0)
        assert values_of(got.records) == [b"one", b"two"]
        state = await zk_json(zk_client, "/brokers/topics/rep/partitions/0/state")
        assert state["leader"] == leader_id and sorted(state["isr"]) == [1, 2, 3]


async def test_isr_shrinks_and_expands_through_zookeeper(tmp_path: Path, zk_chroot_connect: str,
                                                         zk_client: ZooKeeperClient) -> None:
    """A follower that stops fetching leaves the ISR after replica.lag.time.max.ms (the leader
    writes the state znode conditionally, same leader epoch, new zkVersion, and the
    controller's UpdateMetadata reaches every cache); when it fetches again it rejoins."""
    async with AsyncExitStack() as stack:
        servers = await three_brokers_with_topic(stack, tmp_path, zk_chroot_connect, "isr",
                                                 replica_lag_time_max_ms="1000", replica_fetch_wait_max_ms="100")
        tp = TopicPartition("isr", 0)
        leader_id = next(i for i, s in servers.items() if s.replica_manager.partitions[tp].is_leader)
        leader = servers[leader_id].replica_manager
        follower_id = next(i for i in servers if i != leader_id)
        follower = servers[follower_id].replica_manager
        await _wait_for(lambda: sorted(leader.partitions[tp].isr) == [1, 2, 3])
        before = await zk_json(zk_client, "/brokers/topics/isr/partitions/0/state")

        fetcher = next(f for f in follower.fetcher_manager.fetchers.values())
        endpoint = BrokerEndpoint(fetcher.leader_id, fetcher.host, fetcher.port)
        await follower.fetcher_manager.remove_fetchers([tp])
        await _wait_for(lambda: follower_id not in leader.partitions[tp].isr, what="shrink")
        shrunk = await zk_json(zk_client, "/brokers/topics/isr/partitions/0/state")
        assert follower_id not in shrunk["isr"] and leader_id in shrunk["isr"]
        assert shrunk["leader_epoch"] == before["leader_epoch"]
        assert leader.partitions[tp].partition_epoch > 0
        assert leader.statistics().isr_shrinks == 1 and leader.statistics().under_replicated_partitions == 1
        key = __import__("kafkalike.coordination.zk_data", fromlist=["TopicPartition"]).TopicPartition("isr", 0)
        await _wait_for(lambda: all(follower_id not in s.metadata_cache.partition(key).isr
                                    for s in servers.values()), what="UpdateMetadata after isr_change")

        lconn = await stack.enter_async_context(connect(servers[leader_id]))
        assert (await produce(lconn, "isr", 0, batch([b"while-out"]), acks=-1)).error_code == 0
        follower.fetcher_manager.add_fetchers({tp: endpoint})
        await _wait_for(lambda: follower_id in leader.partitions[tp].isr, what="expand")
        expanded = await zk_json(zk_client, "/brokers/topics/isr/partitions/0/state")
        assert sorted(expanded["isr"]) == [1, 2, 3]
        assert leader.statistics().isr_expands == 1
        assert follower.partitions[tp].log_end_offset == 1


async def test_follower_truncates_by_leader_epoch(tmp_path: Path, zk_chroot_connect: str) -> None:
    """An old leader holding records the new leader never got truncates to where its epoch
    ends on the new leader (OffsetsForLeaderEpoch), then matches the new leader byte for byte."""
    async with AsyncExitStack() as stack:
        s1 = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=1,
                                                            replica_fetch_wait_max_ms="100"))
        s2 = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=2,
                                                            replica_fetch_wait_max_ms="100"))
        c1 = await stack.enter_async_context(connect(s1))
        c2 = await stack.enter_async_context(connect(s2))
        tp = TopicPartition("div", 0)
        state0 = {0: (1, [1, 2], [1, 2])}
        for s, c in ((s1, c1), (s2, c2)):
            r = await c.send(leader_and_isr(s, "div", state0, leader_epoch=0, leaders={1: s1}), api_version=6)
            assert r.topics[0].partition_errors[0].error_code == 0
        assert (await produce(c1, "div", 0, batch([b"a", b"b"]))).base_offset == 0
        await _wait_for(lambda: s2.replica_manager.partitions[tp].log_end_offset == 2)
        await s2.replica_manager.fetcher_manager.remove_fetchers([tp])
        assert (await produce(c1, "div", 0, batch([b"lost1", b"lost2", b"lost3"]))).base_offset == 2
        assert s1.replica_manager.partitions[tp].log_end_offset == 5

        state1 = {0: (2, [2, 1], [1, 2])}
        r = await c2.send(leader_and_isr(s2, "div", state1, leader_epoch=1, leaders={2: s2}), api_version=6)
        assert r.topics[0].partition_errors[0].error_code == 0
        assert (await produce(c2, "div", 0, batch([b"new"]))).base_offset == 2
        r = await c1.send(leader_and_isr(s1, "div", state1, leader_epoch=1, leaders={2: s2}), api_version=6)
        assert r.topics[0].partition_errors[0].error_code == 0
        p1, p2 = s1.replica_manager.partitions[tp], s2.replica_manager.partitions[tp]
        await _wait_for(lambda: p1.log_end_offset == 3 and p1.high_watermark == 3)
        assert p1.log.read(0, 1 << 20)[0].read_bytes() == p2.log.read(0, 1 << 20)[0].read_bytes()
        assert values_of(p1.log.read(2, 1 << 20)[0].read_bytes()) == [b"new"]
        assert p1.log.leader_epoch_cache.entries == p2.log.leader_epoch_cache.entries == [(0, 0), (1, 2)]


async def test_idempotent_retry_after_leader_change_is_stored_once(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A follower learns producer state from the batches it replicates: after it becomes
    leader, the same idempotent batch retried by the producer answers its original offset and
    is not written a second time."""
    from tests.broker.test_replica_manager import _idem

    async with AsyncExitStack() as stack:
        s1 = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=1,
                                                            replica_fetch_wait_max_ms="100"))
        s2 = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=2,
                                                            replica_fetch_wait_max_ms="100"))
        c1 = await stack.enter_async_context(connect(s1))
        c2 = await stack.enter_async_context(connect(s2))
        tp = TopicPartition("idem-fo", 0)
        state0 = {0: (1, [1, 2], [1, 2])}
        for s, c in ((s1, c1), (s2, c2)):
            await c.send(leader_and_isr(s, "idem-fo", state0, leader_epoch=0, leaders={1: s1}), api_version=6)
        batch_ = _idem([b"once", b"only"], seq=0, pid=77)
        assert (await produce(c1, "idem-fo", 0, batch_, acks=-1, timeout_ms=10000)).base_offset == 0
        await _wait_for(lambda: s2.replica_manager.partitions[tp].log_end_offset == 2)
        state1 = {0: (2, [2, 1], [1, 2])}
        await c2.send(leader_and_isr(s2, "idem-fo", state1, leader_epoch=1, leaders={2: s2}), api_version=6)
        await c1.send(leader_and_isr(s1, "idem-fo", state1, leader_epoch=1, leaders={2: s2}), api_version=6)
        retry = await produce(c2, "idem-fo", 0, batch_, acks=1)
        assert (retry.error_code, retry.base_offset) == (0, 0)
        nxt = await produce(c2, "idem-fo", 0, _idem([b"next"], seq=2, pid=77), acks=1)
        assert (nxt.error_code, nxt.base_offset) == (0, 2)
        assert s2.replica_manager.partitions[tp].log_end_offset == 3
