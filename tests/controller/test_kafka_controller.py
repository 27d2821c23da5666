"""KafkaController against a real ZooKeeper ensemble: election and fencing, topic creation and
deletion znodes, broker failure elections (brokers here are real ZooKeeper sessions holding
``/brokers/ids/<id>``; tests with broker processes are in test_controller_cluster.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from kafkalike.controller.kafka_controller import Expire, KafkaController
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import ControllerMoved, KafkaZkClient
from kafkalike.coordination.zookeeper_client import now_ms

TIMEOUT = 20


async def new_client(connect: str, name: str) -> ZooKeeperClient:
    client = ZooKeeperClient(connect, session_timeout_ms=4000, connection_timeout_ms=10000, name=name)
    await client.start()
    return client


async def register(connect: str, broker_id: int, port: int = 1) -> ZooKeeperClient:
    """A broker's registration: its own ZooKeeper session holding /brokers/ids/<id>."""
    zk = await new_client(connect, f"broker-{broker_id}")
    kzk = KafkaZkClient(zk)
    await kzk.create_top_level_paths()
    reg = zd.BrokerRegistration(broker_id, (zd.EndPoint("PLAINTEXT", "127.0.0.1", port),), timestamp_ms=now_ms())
    await kzk.register_broker(reg)
    return zk


async def wait_for(predicate: Callable[[], Awaitable[Any]], timeout: float = TIMEOUT) -> Any:
    with trio.fail_after(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await trio.sleep(0.05)


async def state_of(zk: ZooKeeperClient, topic: str, partition: int) -> dict[str, Any] | None:
    if await zk.exists(zd.partition_state_path(topic, partition)) is None:
        return None
    data, _ = await zk.get(zd.partition_state_path(topic, partition))
    return json.loads(data)


@pytest.fixture
async def controller(zk_client: ZooKeeperClient, nursery: trio.Nursery) -> AsyncIterator[KafkaController]:
    await KafkaZkClient(zk_client).create_top_level_paths()
    c = KafkaController(100, {"auto.leader.rebalance.enable": False}, zk=zk_client)
    await nursery.start(c.run)
    with trio.fail_after(TIMEOUT):
        await c.became_active.wait()
    yield c
    c.shutdown()
    await c.stopped.wait()


async def create_topic(zk: ZooKeeperClient, topic: str, partitions: dict[int, list[int]]) -> None:
    await KafkaZkClient(zk).create_topic_assignment(zd.TopicAssignment(
        topic, {p: zd.ReplicaAssignment(tuple(r)) for p, r in partitions.items()}, zd.generate_uuid_base64()))


async def test_second_controller_takes_over_with_next_epoch_when_first_resigns(zk_chroot_connect: str) -> None:
    """Two controllers on one ensemble: one wins epoch 1, the loser watches /controller; when
    the winner resigns (shuts down) the other becomes controller with epoch 2."""
    zk1 = await new_client(zk_chroot_connect, "c1")
    zk2 = await new_client(zk_chroot_connect, "c2")
    try:
        await KafkaZkClient(zk1).create_top_level_paths()
        c1, c2 = KafkaController(1, zk=zk1), KafkaController(2, zk=zk2)
        async with trio.open_nursery() as nursery:
            await nursery.start(c1.run)
            with trio.fail_after(TIMEOUT):
                await c1.became_active.wait()
            await nursery.start(c2.run)
            await wait_for(lambda: _true(c2.active_controller_id == 1))
            assert c1.statistics().active and c1.statistics().epoch == 1
            assert not c2.statistics().active
            c1.shutdown()
            with trio.fail_after(TIMEOUT):
                await c1.stopped.wait()
                await c2.became_active.wait()
            assert c2.statistics().epoch == 2 and c2.statistics().active
            kzk = KafkaZkClient(zk2)
            assert await kzk.get_controller_id() == 2
            assert (await kzk.get_controller_epoch()).epoch == 2  # type: ignore[union-attr]
            c2.shutdown()
    finally:
        await zk1.close()
        await zk2.close()


async def test_controller_resigns_at_once_when_its_session_expires(
        zk_chroot_connect: str, zk_expire: Callable[[ZooKeeperClient], Awaitable[None]]) -> None:
    """The active controller's session expires: it is inactive as soon as the expiry is seen,
    and a controller with epoch 2 (whichever broker wins the new election) takes over."""
    zk1 = await new_client(zk_chroot_connect, "c1")
    zk2 = await new_client(zk_chroot_connect, "c2")
    try:
        await KafkaZkClient(zk1).create_top_level_paths()
        c1, c2 = KafkaController(1, zk=zk1), KafkaController(2, zk=zk2)
        async with trio.open_nursery() as nursery:
            await nursery.start(c1.run)
            with trio.fail_after(TIMEOUT):
                await c1.became_active.wait()
            await nursery.start(c2.run)
            await wait_for(lambda: _true(c2.active_controller_id == 1))
            await zk_expire(zk1)
            await trio.testing.wait_all_tasks_blocked()
            assert c1.statistics().resignations == 1  # on the EXPIRED event itself, not via the queue
            await wait_for(lambda: _true(c1.is_active or c2.is_active))
            winner = c1 if c1.is_active else c2
            assert winner.statistics().epoch == 2
            assert await KafkaZkClient(zk2).get_controller_id() == winner.broker_id
            loser = c2 if winner is c1 else c1
            await wait_for(lambda: _true(loser.active_controller_id == winner.broker_id))
            assert not loser.is_active
            c1.shutdown()
            c2.shutdown()
    finally:
        await zk1.close()
        await zk2.close()


async def test_a_queued_expire_from_before_the_reelection_does_not_unelect_the_controller(
        zk_chroot_connect: str, zk_expire: Callable[[ZooKeeperClient], Awaitable[None]]) -> None:
    """The order a chaos campaign found (compose backend, seed 7): the controller's session
    expires, it resigns at once and wins the election again on its new session (epoch 2), and
    only then is the Expire event of that expiry taken from the queue (it was queued behind a
    long backlog). That event must not un-elect it: /controller still names it, so no other
    broker would take over and the cluster would have no controller (6+ minutes in that run)."""
    zk1 = await new_client(zk_chroot_connect, "c1")
    try:
        await KafkaZkClient(zk1).create_top_level_paths()
        c1 = KafkaController(1, zk=zk1)
        async with trio.open_nursery() as nursery:
            await nursery.start(c1.run)
            with trio.fail_after(TIMEOUT):
                await c1.became_active.wait()
            await zk_expire(zk1)
            await wait_for(lambda: _true(c1.is_active and c1.statistics().epoch == 2))
            assert c1.statistics().resignations == 1
            c1.put(Expire(expiry=1))  # that expiry's event, processed after the re-election
            before = c1.events_processed
            await wait_for(lambda: _true(c1.events_processed > before))
            assert c1.is_active and c1.statistics().resignations == 1
            assert await KafkaZkClient(zk1).get_controller_id() == 1
            c1.put(Expire(expiry=2))  # a newer expiry than the election: resign as before
            await wait_for(lambda: _true(not c1.is_active))
            c1.shutdown()
    finally:
        await zk1.close()


async def _true(value: bool) -> bool:
    return value


async def test_controller_whose_session_expired_cannot_write(
        zk_chroot_connect: str, zk_expire: Callable[[ZooKeeperClient], Awaitable[None]]) -> None:
    """A controller that lost its session is fenced once a new controller was elected: a write
    guarded by its old /controller_epoch zkVersion is refused by ZooKeeper (ControllerMoved)
    and the partition state is unchanged."""
    zk1 = await new_client(zk_chroot_connect, "c1")
    zk2 = await new_client(zk_chroot_connect, "c2")
    b1 = await register(zk_chroot_connect, 1)
    try:
        c1, c2 = KafkaController(1, zk=zk1), KafkaController(2, zk=zk2)
        async with trio.open_nursery() as nursery:
            await nursery.start(c1.run)
            with trio.fail_after(TIMEOUT):
                await c1.became_active.wait()
            await create_topic(zk1, "fenced", {0: [1]})
            before = await wait_for(lambda: state_of(zk1, "fenced", 0))
            old_version = c1.context.epoch_zk_version
            await nursery.start(c2.run)
            await zk_expire(zk1)
            await wait_for(lambda: _epoch_at_least(zk2, 2))  # a new controller was elected
            # the zombie's write, through ZooKeeper's own version check on /controller_epoch
            li = await KafkaZkClient(zk2).get_partition_state("fenced", 0)
            await zk1.wait_connected(timeout=TIMEOUT)  # the zombie is back on a new session
            assert li is not None
            stale = zd.LeaderIsrAndControllerEpoch(leader=1, leader_epoch=99, isr=(1,), controller_epoch=1,
                                                   zk_version=li.zk_version)
            with pytest.raises(ControllerMoved):
                await KafkaZkClient(zk1).update_partition_state_as_controller(
                    zd.TopicPartition("fenced", 0), stale, old_version)
            after = await state_of(zk2, "fenced", 0)
            assert after is not None and after["leader_epoch"] != 99
            assert before["leader"] == after["leader"] == 1
            c1.shutdown()
            c2.shutdown()
    finally:
        for z in (zk1, zk2, b1):
            await z.close()


async def test_topic_creation_writes_kafka_partition_state_json(
        controller: KafkaController, zk_client: ZooKeeperClient, zk_chroot_connect: str) -> None:
    """/brokers/topics/<t> -> a state znode per partition with Kafka's JSON: first live
    replica leads, ISR = live replicas, leader_epoch 0, the controller's epoch."""
    brokers = [await register(zk_chroot_connect, b) for b in (1, 2, 3)]
    try:
        await wait_for(lambda: _true(len(controller.context.live_brokers) == 3))
        await create_topic(zk_client, "orders", {0: [1, 2, 3], 1: [2, 3, 1], 2: [3, 1, 2]})
        for p, leader in ((0, 1), (1, 2), (2, 3)):
            await wait_for(lambda p=p: state_of(zk_client, "orders", p))
            data, _ = await zk_client.get(zd.partition_state_path("orders", p))
            replicas = {0: [1, 2, 3], 1: [2, 3, 1], 2: [3, 1, 2]}[p]
            assert json.loads(data) == {"controller_epoch": 1, "leader": leader, "version": 1,
                                        "leader_epoch": 0, "isr": replicas}
            assert list(json.loads(data)) == ["controller_epoch", "leader", "version", "leader_epoch", "isr"]
        stats = controller.statistics()
        assert stats.partitions == 3 and stats.offline_partitions == 0 and stats.topics == 1
    finally:
        for b in brokers:
            await b.close()


async def test_broker_failure_moves_leadership_by_the_offline_algorithm(
        controller: KafkaController, zk_client: ZooKeeperClient, zk_chroot_connect: str) -> None:
    """The leader's registration vanishes: the next replica in assignment order that is alive
    and in the ISR leads, leader_epoch + 1, the ISR loses the dead broker; a partition whose
    only replica died gets leader -1 and keeps its one-member ISR; the dead broker's channel
    (which was retrying, the broker never answered) is dropped."""
    b1 = await register(zk_chroot_connect, 1)
    b2 = await register(zk_chroot_connect, 2)
    b3 = await register(zk_chroot_connect, 3)
    try:
        await wait_for(lambda: _true(len(controller.context.live_brokers) == 3))
        await create_topic(zk_client, "t", {0: [1, 3, 2], 1: [2, 1, 3], 2: [1]})
        for p in range(3):
            await wait_for(lambda p=p: state_of(zk_client, "t", p))
        # these "brokers" have no listener: the channel keeps retrying their requests
        assert controller.channel is not None
        await wait_for(lambda: _true(all(ch.retries > 0 and ch.queued > 0 and not ch.connected
                                         for ch in controller.channel.statistics())))
        await b1.close()
        s0 = await wait_for(lambda: _leader_changed(zk_client, "t", 0, 1))
        assert s0["leader"] == 3 and s0["leader_epoch"] == 1 and s0["isr"] == [3, 2]
        assert s0["controller_epoch"] == 1
        s1 = await wait_for(lambda: _isr_without(zk_client, "t", 1, 1))
        assert s1["leader"] == 2 and s1["isr"] == [2, 3] and s1["leader_epoch"] == 1
        s2 = await wait_for(lambda: _leader_changed(zk_client, "t", 2, 1))
        assert s2["leader"] == -1 and s2["isr"] == [1]
        await wait_for(lambda: _true(controller.statistics().offline_partitions == 1))
        assert controller.statistics().live_brokers == (2, 3)
        # the dead broker's channel and its queued requests are gone
        assert [ch.broker_id for ch in controller.channel.statistics()] == [2, 3]
    finally:
        for b in (b1, b2, b3):
            await b.close()


async def _epoch_at_least(zk: ZooKeeperClient, epoch: int) -> bool:
    got = await KafkaZkClient(zk).get_controller_epoch()
    return got is not None and got.epoch >= epoch


async def _leader_changed(zk: ZooKeeperClient, topic: str, p: int, old: int) -> dict[str, Any] | None:
    s = await state_of(zk, topic, p)
    return s if s is not None and s["leader"] != old else None


async def _isr_without(zk: ZooKeeperClient, topic: str, p: int, broker: int) -> dict[str, Any] | None:
    s = await state_of(zk, topic, p)
    return s if s is not None and broker not in s["isr"] else None
