"""A controller batch's request bodies are built once per version, not once per broker
(issue 24: controller failover and controlled shutdown at 10,000 partitions): the batch's
UpdateMetadata (the same partitions and brokers for every broker, only the broker epoch
differs, as Kafka's sendUpdateMetadataRequests builds it), and a LeaderAndIsr sent to several
brokers with the very same partitions. Counted (calls of the body builders) through a real
ControllerChannelManager to three real TCP receivers, with BUILD_OFF_LOOP_PARTITIONS
partitions so that the brokers' send tasks build in worker threads, at once; not timed."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from kafkalike.controller import controller_channel_manager as ccm
from kafkalike.controller.controller_channel_manager import (
    BUILD_OFF_LOOP_PARTITIONS,
    ControllerBrokerRequestBatch,
    ControllerChannelManager,
)
from kafkalike.controller.controller_context import ControllerContext
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.zookeeper_client import now_ms
from kafkalike.protocol.api_keys import ApiKey
from tests.controller.test_state_machines_standalone import RecordingBroker, received


@pytest.fixture
async def three_receivers(nursery: trio.Nursery) -> Any:
    """A ControllerBrokerRequestBatch over a real channel to three TCP receivers (brokers 1-3,
    broker epochs 1001-1003), its context holding BUILD_OFF_LOOP_PARTITIONS partitions of
    topic "big" on [1, 2, 3], led by 1."""
    ctx = ControllerContext(epoch=5, epoch_zk_version=4)
    channel = ControllerChannelManager(100, request_timeout_ms=60_000)
    channel.start(nursery)
    brokers: dict[int, RecordingBroker] = {}
    for b in (1, 2, 3):
        brokers[b] = node = RecordingBroker()
        await node.start(nursery)
        ctx.live_brokers[b] = 1000 + b
        ctx.broker_info[b] = zd.BrokerRegistration(b, (zd.EndPoint("PLAINTEXT", "127.0.0.1", node.port),),
                                                   timestamp_ms=now_ms())
        channel.add_broker(b, "127.0.0.1", node.port)
    tps = [zd.TopicPartition("big", p) for p in range(BUILD_OFF_LOOP_PARTITIONS)]
    for tp in tps:
        ctx.assignments[tp] = [1, 2, 3]
        ctx.leadership[tp] = zd.LeaderIsrAndControllerEpoch(1, 3, (1, 2, 3), 5, zk_version=3)
    try:
        yield ctx, ControllerBrokerRequestBatch(ctx, channel, 100), brokers, tps
    finally:
        channel.shutdown()


def count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of controller_channel_manager.<name> (by version)."""
    calls: list[int] = []
    original = getattr(ccm, name)

    def counted(version: int, *args: Any) -> Any:
        calls.append(version)
        return original(version, *args)

    monkeypatch.setattr(ccm, name, counted)
    return calls


def partition_states(request: Any) -> list[tuple[str, int, int, tuple[int, ...]]]:
    return [(t.topic_name, s.partition_index, s.leader, tuple(s.isr))
            for t in request.topic_states for s in t.partition_states]


async def test_update_metadata_to_three_brokers_builds_its_partition_states_once(
        three_receivers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One batch's UpdateMetadata to brokers 1-3 (built in worker threads, at once): the
    partition states are built once (one version negotiated), each broker gets them with its
    own broker epoch."""
    ctx, batch, brokers, tps = three_receivers
    calls = count_calls(monkeypatch, "update_metadata_body")
    batch.new_batch()
    batch.add_update_metadata_request_for_brokers([1, 2, 3], tps)
    batch.send_requests_to_brokers(ctx.epoch)
    got = {b: (await received(brokers[b], ApiKey.UPDATE_METADATA, 1))[0] for b in (1, 2, 3)}
    assert len(calls) == 1
    assert {b: r.broker_epoch for b, r in got.items()} == {1: 1001, 2: 1002, 3: 1003}
    states = [partition_states(r) for r in got.values()]
    assert len(states[0]) == len(tps) and states[0] == states[1] == states[2]


async def test_leader_and_isr_bodies_are_shared_by_brokers_told_the_same_partitions_only(
        three_receivers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """LeaderAndIsr for every partition to brokers 1-3, plus one more partition to broker 3
    alone: brokers 1 and 2 share one body, broker 3's is built on its own (two builds, not
    three), and each gets exactly its partitions and its broker epoch."""
    ctx, batch, brokers, tps = three_receivers
    calls = count_calls(monkeypatch, "leader_and_isr_body")
    extra = zd.TopicPartition("other", 0)
    ctx.assignments[extra] = [3]
    ctx.leadership[extra] = zd.LeaderIsrAndControllerEpoch(3, 0, (3,), 5, zk_version=0)
    batch.new_batch()
    for tp in tps:
        batch.add_leader_and_isr_request_for_brokers([1, 2, 3], tp, ctx.leadership[tp])
    batch.add_leader_and_isr_request_for_brokers([3], extra, ctx.leadership[extra])
    batch.send_requests_to_brokers(ctx.epoch)
    got = {b: (await received(brokers[b], ApiKey.LEADER_AND_ISR, 1))[0] for b in (1, 2, 3)}
    assert len(calls) == 2
    assert {b: r.broker_epoch for b, r in got.items()} == {1: 1001, 2: 1002, 3: 1003}
    every = [("big", tp.partition, 1, (1, 2, 3)) for tp in tps]
    assert partition_states(got[1]) == partition_states(got[2]) == every
    assert sorted(partition_states(got[3])) == sorted([*every, ("other", 0, 3, (3,))])
