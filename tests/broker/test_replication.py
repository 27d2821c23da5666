"""Replication (issue 6) with three in-process brokers and the real controller: followers
fetch from the leader, the HW follows the ISR, acks=all waits for the ISR, ISR shrink and
expand are written to the partition state znode and announced in /isr_change_notification,
and a follower truncates by leader epoch."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from kafkalike.coordination import ZooKeeperClient
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import (batch, connect, fetch, has_controller, produce, running_broker,
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
        servers = {i: await stack.enter_async_context(running_broker(
            tmp_path, zk_chroot_connect, broker_id=i, min_insync_replicas="2",
            replica_fetch_wait_max_ms="200")) for i in (1, 2, 3)}
        if not has_controller(servers[1]):
            pytest.skip("needs the controller wired into KafkaServer")
        conn = await stack.enter_async_context(connect(servers[1]))
        resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False, topics=[
            {"name": "rep", "num_partitions": 1, "replication_factor": 3, "assignments": [], "configs": []}])
        assert resp.topics[0].error_code == 0
        tp = TopicPartition("rep", 0)
        await _wait_for(lambda: all(tp in s.replica_manager.partitions for s in servers.values()))
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
