"""KafkaZkClient against a real ensemble: top-level paths, cluster id, broker registration and
epochs, controller election fencing, conditional partition-state writes, producer-id blocks."""

from __future__ import annotations

from typing import Awaitable, Callable

import attrs
import pytest
import trio

from kafkalike.coordination import BadVersion, ZooKeeperClient
from kafkalike.coordination.zookeeper_client import now_ms
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import (
    BrokerIdInUse,
    ControllerMoved,
    KafkaZkClient,
    TopicExists,
)


def registration(broker_id: int, port: int = 9092) -> zd.BrokerRegistration:
    return zd.BrokerRegistration(broker_id, (zd.EndPoint("PLAINTEXT", "127.0.0.1", port),), timestamp_ms=now_ms())


async def test_top_level_paths_and_cluster_id_are_created_once(zk_client: ZooKeeperClient) -> None:
    """Start-up creates Kafka's persistent paths idempotently and one cluster id that sticks."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    await kzk.create_top_level_paths()
    for path in zd.PERSISTENT_PATHS:
        assert await zk_client.exists(path) is not None, path
    cid = await kzk.get_or_create_cluster_id()
    assert len(cid) == 22
    assert await kzk.get_or_create_cluster_id("SomethingElse000000000") == cid
    data, _ = await zk_client.get("/cluster/id")
    assert zd.ClusterIdZNode.from_json(data).id == cid


async def test_broker_registration_is_ephemeral_with_czxid_epoch(zk_client: ZooKeeperClient) -> None:
    """register_broker returns the node's czxid; reading it back gives the same JSON and epoch."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    reg = registration(1)
    epoch = await kzk.register_broker(reg)
    got = await kzk.get_broker(1)
    assert got is not None and got.registration == reg and got.broker_epoch == epoch
    assert got.session_id == zk_client.session_id
    assert await kzk.register_broker(reg) == epoch  # same session: idempotent
    assert await kzk.get_broker_ids() == [1]


async def test_duplicate_broker_id_from_another_session_is_refused(
    zk_client: ZooKeeperClient, zk_chroot_connect: str
) -> None:
    """A second live session registering the same broker id gets BrokerIdInUse."""
    await KafkaZkClient(zk_client).create_top_level_paths()
    await KafkaZkClient(zk_client).register_broker(registration(7))
    async with ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000) as other:
        with pytest.raises(BrokerIdInUse, match=r"^broker\.id 7 is already registered"):
            await KafkaZkClient(other).register_broker(registration(7, port=9093))


async def test_reregistration_after_expiry_gets_new_broker_epoch(
    zk_client: ZooKeeperClient, zk_expire: Callable[[ZooKeeperClient], Awaitable[None]]
) -> None:
    """After session expiry the registration is gone; registering again yields a larger epoch."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    first = await kzk.register_broker(registration(1))
    await zk_expire(zk_client)
    await zk_client.wait_connected(timeout=15)
    second = await kzk.register_broker(registration(1))
    assert second > first


async def test_controller_election_bumps_epoch_and_fences_the_loser(
    zk_client: ZooKeeperClient, zk_chroot_connect: str
) -> None:
    """The first controller gets epoch 1; a second candidate loses with ControllerMoved; after
    the first resigns the next one gets epoch 2 and the old epoch's writes are fenced."""
    kzk = KafkaZkClient(zk_client)
    first = await kzk.register_controller_and_increment_epoch(1)
    assert first.epoch == 1
    assert await kzk.get_controller_id() == 1
    async with ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000) as other_zk:
        other = KafkaZkClient(other_zk)
        with pytest.raises(ControllerMoved):
            await other.register_controller_and_increment_epoch(2)
        await kzk.delete_controller(first.zk_version)
        second = await other.register_controller_and_increment_epoch(2)
        assert second.epoch == 2 and await other.get_controller_id() == 2
        # the old controller's guarded write is rejected
        tp = zd.TopicPartition("t", 0)
        state = zd.LeaderIsrAndControllerEpoch(1, 0, (1,), controller_epoch=1)
        with pytest.raises(ControllerMoved):
            await kzk.create_partition_state(tp, state, first.zk_version)
        assert await kzk.get_partition_state("t", 0) is None
        await other.create_partition_state(tp, attrs.evolve(state, controller_epoch=2), second.zk_version)
        assert (await other.get_partition_state("t", 0)).controller_epoch == 2  # type: ignore[union-attr]


async def test_partition_state_updates_are_conditional_on_zk_version(zk_client: ZooKeeperClient) -> None:
    """A leader's ISR update with the current zkVersion succeeds; one with a stale version gets
    BadVersion, as when the controller changed the state meanwhile."""
    kzk = KafkaZkClient(zk_client)
    epoch = await kzk.register_controller_and_increment_epoch(1)
    tp = zd.TopicPartition("orders", 0)
    await kzk.create_topic_assignment(zd.TopicAssignment("orders", {0: zd.ReplicaAssignment((1, 2))}, zd.generate_uuid_base64()))
    with pytest.raises(TopicExists):
        await kzk.create_topic_assignment(zd.TopicAssignment("orders", {0: zd.ReplicaAssignment((1,))}))
    await kzk.create_partition_state(tp, zd.LeaderIsrAndControllerEpoch(1, 0, (1, 2), 1), epoch.zk_version)
    state = await kzk.get_partition_state("orders", 0)
    assert state is not None and state.zk_version == 0
    v1 = await kzk.update_partition_state(tp, attrs.evolve(state, isr=(1,)))  # type: ignore[arg-type]
    assert v1 == 1
    with pytest.raises(BadVersion):
        await kzk.update_partition_state(tp, attrs.evolve(state, isr=(1, 2)))  # stale zkVersion 0
    v2 = await kzk.update_partition_state_as_controller(
        tp, zd.LeaderIsrAndControllerEpoch(2, 1, (2,), 1, zk_version=v1), epoch.zk_version
    )
    assert v2 == 2
    final = await kzk.get_partition_state("orders", 0)
    assert final == zd.LeaderIsrAndControllerEpoch(2, 1, (2,), 1, zk_version=2)


async def test_isr_change_notifications_round_trip_through_zookeeper(zk_client: ZooKeeperClient) -> None:
    """A leader's ISR change notification is a sequential node the controller reads and deletes."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    path = await kzk.propagate_isr_changes([zd.TopicPartition("t", 0), zd.TopicPartition("t", 1)])
    assert path.startswith("/isr_change_notification/isr_change_")
    names = await kzk.get_isr_change_notifications()
    assert await kzk.read_and_delete_isr_change_notifications(names) == {zd.TopicPartition("t", 0), zd.TopicPartition("t", 1)}
    assert await kzk.get_isr_change_notifications() == []


async def test_producer_id_blocks_never_overlap_under_concurrency(zk_client: ZooKeeperClient) -> None:
    """Concurrent claims get disjoint consecutive 1000-id blocks (conditional writes + retry)."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    blocks: list[zd.ProducerIdBlock] = []

    async def claim(bid: int) -> None:
        blocks.append(await kzk.claim_producer_id_block(bid))

    async with trio.open_nursery() as n:
        for bid in range(4):
            n.start_soon(claim, bid)
    assert sorted(b.block_start for b in blocks) == [0, 1000, 2000, 3000]


async def test_topic_config_write_posts_change_notification(zk_client: ZooKeeperClient) -> None:
    """Setting a topic config writes /config/topics/<t> and a version-2 change notification."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    await kzk.set_entity_config("topics", "orders", {"retention.ms": "60000"})
    assert await kzk.get_entity_config("topics", "orders") == {"retention.ms": "60000"}
    [name] = await zk_client.get_children("/config/changes")
    data, _ = await zk_client.get(f"/config/changes/{name}")
    assert zd.ConfigChangeNotification.from_json(data).entity_path == "topics/orders"
