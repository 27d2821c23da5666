"""KafkaController events against a real ZooKeeper ensemble: controlled shutdown, preferred
replica election (admin znode and auto rebalance), ISR change notifications, partition
reassignment, broker return, partitions added to a topic, and a controller failover that
resumes from ZooKeeper. Brokers are ZooKeeper sessions holding /brokers/ids/<id>; a partition
leader's ISR change is written as a leader writes it (conditional update + notification)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
import trio

from kafkalike.controller.kafka_controller import KafkaController
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import KafkaZkClient
from kafkalike.protocol.errors import ErrorCode
from tests.controller.test_kafka_controller import (
    TIMEOUT,
    create_topic,
    new_client,
    register,
    state_of,
    wait_for,
)

if TYPE_CHECKING:
    from kafkalike.cluster.zk_ensemble import ZkEnsemble

TP = zd.TopicPartition


async def _true(value: bool) -> bool:
    return value


async def start_controller(zk: ZooKeeperClient, nursery: trio.Nursery, broker_id: int = 100,
                           **config: object) -> KafkaController:
    await KafkaZkClient(zk).create_top_level_paths()
    c = KafkaController(broker_id, {"auto.leader.rebalance.enable": False, **config}, zk=zk)
    await nursery.start(c.run)
    with trio.fail_after(TIMEOUT):
        await c.became_active.wait()
    return c


@pytest.fixture
async def brokers(zk_chroot_connect: str) -> AsyncIterator[dict[int, ZooKeeperClient]]:
    """Brokers 1-3 registered (each its own session); closed after the test."""
    out = {b: await register(zk_chroot_connect, b) for b in (1, 2, 3)}
    yield out
    for zk in out.values():
        await zk.close()


async def online(c: KafkaController, topic: str, partitions: int) -> None:
    await wait_for(lambda: _true(all(TP(topic, p) in c.context.leadership for p in range(partitions))))


async def test_controlled_shutdown_moves_leaderships_and_shrinks_isrs(
        zk_client: ZooKeeperClient, nursery: trio.Nursery, brokers: dict[int, ZooKeeperClient]) -> None:
    """ControlledShutdown(1): partitions it led move to the first other ISR member, it leaves
    the ISRs it follows in, the answer lists only what it still leads (RF=1 partitions are
    not acted on); a stale broker epoch and an unknown broker get Kafka's errors."""
    c = await start_controller(zk_client, nursery)
    await wait_for(lambda: _true(len(c.context.live_brokers) == 3))
    await create_topic(zk_client, "cs", {0: [1, 2, 3], 1: [2, 1, 3], 2: [1]})
    await online(c, "cs", 3)
    epoch_1 = c.context.live_brokers[1]
    assert await c.controlled_shutdown(1, epoch_1 - 1) == (ErrorCode.stale_broker_epoch, [])
    assert (await c.controlled_shutdown(7))[0] is ErrorCode.broker_not_available
    error, remaining = await c.controlled_shutdown(1, epoch_1)
    assert error is ErrorCode.none and remaining == []
    s0, s1, s2 = [await state_of(zk_client, "cs", p) for p in range(3)]
    assert s0 is not None and s0["leader"] == 2 and s0["isr"] == [2, 3] and s0["leader_epoch"] == 1
    assert s1 is not None and s1["leader"] == 2 and s1["isr"] == [2, 3]
    assert s2 is not None and s2["leader"] == 1  # RF=1: left alone
    assert c.statistics().shutting_down_brokers == (1,)
    # the broker goes away: it is no longer shutting down, just dead
    await brokers[1].close()
    await wait_for(lambda: _true(c.statistics().live_brokers == (2, 3)))
    assert c.statistics().shutting_down_brokers == ()


async def test_not_controller_answers_controlled_shutdown_with_not_controller(
        zk_client: ZooKeeperClient, zk_chroot_connect: str, nursery: trio.Nursery) -> None:
    """A broker that is not the controller answers ControlledShutdown NOT_CONTROLLER."""
    await start_controller(zk_client, nursery)
    zk2 = await new_client(zk_chroot_connect, "c2")
    try:
        c2 = KafkaController(2, zk=zk2)
        async with trio.open_nursery() as inner:
            await inner.start(c2.run)
            await wait_for(lambda: _true(c2.active_controller_id == 100))
            assert (await c2.controlled_shutdown(1))[0] is ErrorCode.not_controller
            c2.shutdown()
    finally:
        await zk2.close()


async def test_returning_broker_then_preferred_election_restores_preferred_leaders(
        zk_client: ZooKeeperClient, zk_chroot_connect: str, nursery: trio.Nursery,
        brokers: dict[int, ZooKeeperClient]) -> None:
    """Broker 1 dies (leadership moves to 2), comes back (a leaderless partition whose only ISR
    member it is gets it back at once), rejoins the ISR as a leader would write it, and
    /admin/preferred_replica_election moves leadership back to it; the znode is deleted."""
    c = await start_controller(zk_client, nursery)
    await wait_for(lambda: _true(len(c.context.live_brokers) == 3))
    await create_topic(zk_client, "pref", {0: [1, 2], 1: [1]})
    await online(c, "pref", 2)
    await brokers[1].close()
    await wait_for(lambda: _true((c.context.leadership[TP("pref", 0)].leader, c.context.leadership[TP("pref", 1)].leader)
                                 == (2, -1)))
    brokers[1] = await register(zk_chroot_connect, 1)
    s1 = await wait_for(lambda: _leader_is(zk_client, "pref", 1, 1))
    assert s1["isr"] == [1] and s1["leader_epoch"] == 2  # clean: it was the last ISR member
    # the leader (2) adds 1 back to the ISR: conditional write + notification, as a leader does
    kzk = KafkaZkClient(zk_client)
    li = await kzk.get_partition_state("pref", 0)
    assert li is not None and li.isr == (2,)
    await kzk.update_partition_state(TP("pref", 0), zd.LeaderIsrAndControllerEpoch(
        leader=2, leader_epoch=li.leader_epoch, isr=(2, 1), controller_epoch=li.controller_epoch,
        zk_version=li.zk_version))
    await kzk.propagate_isr_changes([TP("pref", 0)])
    await wait_for(lambda: _true(c.context.leadership[TP("pref", 0)].isr == (2, 1)))
    assert await kzk.get_isr_change_notifications() == []  # consumed
    await zk_client.create(zd.PREFERRED_REPLICA_ELECTION_PATH,
                           zd.PreferredReplicaElection(frozenset({TP("pref", 0)})).to_json())
    s0 = await wait_for(lambda: _leader_is(zk_client, "pref", 0, 1))
    assert s0["isr"] == [2, 1]
    await wait_for(lambda: _absent(zk_client, zd.PREFERRED_REPLICA_ELECTION_PATH))
    assert c.statistics().preferred_replica_imbalance == 0


async def test_auto_leader_rebalance_moves_leadership_back(
        zk_client: ZooKeeperClient, zk_chroot_connect: str, nursery: trio.Nursery,
        brokers: dict[int, ZooKeeperClient]) -> None:
    """auto.leader.rebalance.enable with a 1 s check: a broker leading none of its preferred
    partitions (imbalance 100% > 10%) gets them back once it is in the ISR."""
    c = await start_controller(zk_client, nursery, **{"auto.leader.rebalance.enable": True,
                                                      "leader.imbalance.check.interval.seconds": 1})
    await wait_for(lambda: _true(len(c.context.live_brokers) == 3))
    await create_topic(zk_client, "auto", {0: [1, 2]})
    await online(c, "auto", 1)
    error, _ = await c.controlled_shutdown(1)  # moves leadership to 2, 1 leaves the ISR
    assert error is ErrorCode.none
    await brokers[1].close()
    await wait_for(lambda: _true(1 not in c.context.live_brokers))
    brokers[1] = await register(zk_chroot_connect, 1)
    await wait_for(lambda: _true(1 in c.context.live_brokers))
    kzk = KafkaZkClient(zk_client)
    li = await kzk.get_partition_state("auto", 0)
    assert li is not None and li.leader == 2
    await kzk.update_partition_state(TP("auto", 0), zd.LeaderIsrAndControllerEpoch(
        leader=2, leader_epoch=li.leader_epoch, isr=(2, 1), controller_epoch=li.controller_epoch,
        zk_version=li.zk_version))
    await kzk.propagate_isr_changes([TP("auto", 0)])
    state = await wait_for(lambda: _leader_is(zk_client, "auto", 0, 1), timeout=10)
    assert state["isr"] == [2, 1]


async def test_reassignment_waits_for_isr_then_moves_replicas(
        zk_client: ZooKeeperClient, nursery: trio.Nursery, brokers: dict[int, ZooKeeperClient]) -> None:
    """/admin/reassign_partitions [1,2] -> [3,2]: the topic znode records adding [3] and
    removing [1]; once 3 is in the ISR the assignment becomes [3,2], leadership leaves 1, the
    ISR drops 1, the admin znode is deleted."""
    c = await start_controller(zk_client, nursery)
    await wait_for(lambda: _true(len(c.context.live_brokers) == 3))
    await create_topic(zk_client, "mv", {0: [1, 2]})
    await online(c, "mv", 1)
    await zk_client.create(zd.REASSIGN_PARTITIONS_PATH,
                           zd.PartitionReassignment({TP("mv", 0): (3, 2)}).to_json())
    kzk = KafkaZkClient(zk_client)

    async def in_flight() -> bool:
        got = await kzk.get_topic_assignment("mv")
        return got is not None and got[0].partitions[0] == zd.ReplicaAssignment((3, 2, 1), (3,), (1,))
    await wait_for(in_flight)

    async def bumped() -> zd.LeaderIsrAndControllerEpoch | None:  # epoch + 1 for the new replica set
        got = await kzk.get_partition_state("mv", 0)
        return got if got is not None and got.leader_epoch == 1 else None
    li = await wait_for(bumped)
    assert li.leader == 1 and li.isr == (1, 2)
    # the leader adds 3 to the ISR once it caught up
    await kzk.update_partition_state(TP("mv", 0), zd.LeaderIsrAndControllerEpoch(
        leader=1, leader_epoch=li.leader_epoch, isr=(1, 2, 3), controller_epoch=li.controller_epoch,
        zk_version=li.zk_version))
    await kzk.propagate_isr_changes([TP("mv", 0)])

    async def done() -> bool:
        got = await kzk.get_topic_assignment("mv")
        return got is not None and got[0].partitions[0] == zd.ReplicaAssignment((3, 2))
    await wait_for(done)
    final = await kzk.get_partition_state("mv", 0)
    assert final is not None and final.leader == 3 and 1 not in final.isr
    await wait_for(lambda: _absent(zk_client, zd.REASSIGN_PARTITIONS_PATH))
    assert c.context.assignments[TP("mv", 0)] == [3, 2] and c.statistics().partitions_being_reassigned == 0


async def test_added_partitions_get_leaders(
        zk_client: ZooKeeperClient, nursery: trio.Nursery, brokers: dict[int, ZooKeeperClient]) -> None:
    """A topic znode rewritten with more partitions (CreatePartitions) -> the new partitions'
    state znodes are created."""
    c = await start_controller(zk_client, nursery)
    await wait_for(lambda: _true(len(c.context.live_brokers) == 3))
    await create_topic(zk_client, "grow", {0: [1, 2]})
    await online(c, "grow", 1)
    kzk = KafkaZkClient(zk_client)
    got = await kzk.get_topic_assignment("grow")
    assert got is not None
    grown = zd.TopicAssignment("grow", {**got[0].partitions, 1: zd.ReplicaAssignment((2, 3)),
                                        2: zd.ReplicaAssignment((3, 1))}, got[0].topic_id)
    await zk_client.set(zd.topic_path("grow"), grown.to_json(), got[1])
    s2 = await wait_for(lambda: state_of(zk_client, "grow", 2))
    assert s2["leader"] == 3 and s2["isr"] == [3, 1] and s2["leader_epoch"] == 0
    assert (await state_of(zk_client, "grow", 1))["leader"] == 2  # type: ignore[index]


async def test_new_controller_resumes_from_zookeeper(
        zk_client: ZooKeeperClient, zk_chroot_connect: str, nursery: trio.Nursery,
        brokers: dict[int, ZooKeeperClient]) -> None:
    """A topic created while no controller runs, and a broker that died meanwhile: the next
    controller reads everything from ZooKeeper, creates the missing states with leaders and
    elects away from the dead broker, with its own epoch in the state znodes."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    c1 = await start_controller(zk_client, nursery)
    await create_topic(zk_client, "old", {0: [1, 2]})
    await online(c1, "old", 1)
    c1.shutdown()
    await c1.stopped.wait()
    await create_topic(zk_client, "late", {0: [3, 1]})
    await brokers[1].close()
    while 1 in await kzk.get_broker_ids():
        await trio.sleep(0.05)
    zk2 = await new_client(zk_chroot_connect, "c2")
    try:
        c2 = KafkaController(200, {"auto.leader.rebalance.enable": False}, zk=zk2)
        async with trio.open_nursery() as inner:
            await inner.start(c2.run)
            with trio.fail_after(TIMEOUT):
                await c2.became_active.wait()
            assert c2.statistics().epoch == 2
            old = await wait_for(lambda: _leader_is(zk_client, "old", 0, 2))
            assert old["isr"] == [2] and old["controller_epoch"] == 2
            late = await wait_for(lambda: state_of(zk_client, "late", 0))
            assert late == {"controller_epoch": 2, "leader": 3, "version": 1, "leader_epoch": 0, "isr": [3]}
            assert c2.statistics().offline_partitions == 0
            c2.shutdown()
    finally:
        await zk2.close()


async def _leader_is(zk: ZooKeeperClient, topic: str, p: int, leader: int) -> dict | None:  # type: ignore[type-arg]
    s = await state_of(zk, topic, p)
    return s if s is not None and s["leader"] == leader else None


async def _absent(zk: ZooKeeperClient, path: str) -> bool:
    return await zk.exists(path) is None


async def test_deletion_disabled_removes_the_mark_and_keeps_the_topic(
        zk_client: ZooKeeperClient, nursery: trio.Nursery, brokers: dict[int, ZooKeeperClient]) -> None:
    """delete.topic.enable=false: /admin/delete_topics/<t> is removed, the topic stays."""
    c = await start_controller(zk_client, nursery, **{"delete.topic.enable": False})
    await wait_for(lambda: _true(len(c.context.live_brokers) == 3))
    await create_topic(zk_client, "keep", {0: [1, 2]})
    await online(c, "keep", 1)
    await KafkaZkClient(zk_client).create_delete_topic_path("keep")
    await wait_for(lambda: _absent(zk_client, zd.delete_topic_path("keep")))
    assert await zk_client.exists(zd.topic_path("keep")) is not None
    assert (await state_of(zk_client, "keep", 0)) is not None and c.statistics().topics_to_delete == ()


async def test_unclean_election_follows_the_topic_override(
        zk_client: ZooKeeperClient, nursery: trio.Nursery, brokers: dict[int, ZooKeeperClient]) -> None:
    """The only ISR member dies: with unclean election off the partition stays leaderless; a
    topic whose /config/topics override enables it elects the live out-of-sync replica."""
    c = await start_controller(zk_client, nursery)
    await wait_for(lambda: _true(len(c.context.live_brokers) == 3))
    kzk = KafkaZkClient(zk_client)
    await kzk.set_entity_config(zd.CONFIG_TYPE_TOPIC, "lossy", {"unclean.leader.election.enable": "true"})
    await create_topic(zk_client, "lossy", {0: [1, 2]})
    await create_topic(zk_client, "safe", {0: [1, 2]})
    await online(c, "lossy", 1)
    await online(c, "safe", 1)
    for topic in ("lossy", "safe"):  # the leader dropped its follower from the ISR
        li = await kzk.get_partition_state(topic, 0)
        assert li is not None
        await kzk.update_partition_state(TP(topic, 0), zd.LeaderIsrAndControllerEpoch(
            leader=1, leader_epoch=li.leader_epoch, isr=(1,), controller_epoch=li.controller_epoch,
            zk_version=li.zk_version))
    await brokers[1].close()
    lossy = await wait_for(lambda: _leader_is(zk_client, "lossy", 0, 2))
    assert lossy["isr"] == [2] and lossy["leader_epoch"] == 1
    safe = await wait_for(lambda: _leader_is(zk_client, "safe", 0, -1))
    assert safe["isr"] == [1]
    assert c.statistics().offline_partitions == 1


async def test_resync_after_a_cut_short_event_rebuilds_the_same_view(
        zk_client: ZooKeeperClient, nursery: trio.Nursery, brokers: dict[int, ZooKeeperClient]) -> None:
    """The re-read an active controller does after a connection loss cut an event short keeps
    its epoch, rebuilds the same partitions and leaders, and later events still work."""
    from kafkalike.controller.kafka_controller import _Resync

    c = await start_controller(zk_client, nursery)
    await wait_for(lambda: _true(len(c.context.live_brokers) == 3))
    await create_topic(zk_client, "rs", {0: [1, 2], 1: [2, 3]})
    await online(c, "rs", 2)
    before = dict(c.context.leadership)
    processed = c.statistics().events_processed
    c.put(_Resync())
    await wait_for(lambda: _true(c.statistics().events_processed > processed))
    stats = c.statistics()
    assert stats.active and stats.epoch == 1 and stats.partitions == 2 and stats.live_brokers == (1, 2, 3)
    assert c.context.leadership == before
    await brokers[2].close()
    s1 = await wait_for(lambda: _leader_is(zk_client, "rs", 1, 3))
    assert s1["isr"] == [3]


async def test_controller_catches_up_after_its_zookeeper_server_returns(
        zk_ensemble_restored: "ZkEnsemble", zk_chroot_connect: str, zk_client: ZooKeeperClient,
        brokers: dict[int, ZooKeeperClient]) -> None:
    """The controller's only ZooKeeper server dies; a broker dies while the controller is cut
    off (its watches fire DISCONNECTED); when the server returns the same session resumes, the
    controller re-reads and re-arms, and the dead broker's leadership moves."""
    from kafkalike.coordination.zookeeper_client import split_connect_string

    ens = zk_ensemble_restored
    follower = next(s.node_id for s in ens.status() if s.mode == "follower")
    _, chroot = split_connect_string(zk_chroot_connect)
    zk = ZooKeeperClient(ens.spec(follower).address + chroot, session_timeout_ms=30000, name="ctl")
    await zk.start()
    try:
        async with trio.open_nursery() as nursery:
            c = await start_controller(zk, nursery)
            await wait_for(lambda: _true(len(c.context.live_brokers) == 3))
            await create_topic(zk_client, "cut", {0: [1, 2]})
            await online(c, "cut", 1)
            await trio.to_thread.run_sync(ens.kill_node, follower)
            await wait_for(lambda: _true(not zk.connected))
            await brokers[1].close()  # happens while the controller cannot see it
            ens.start_node(follower)
            state = await wait_for(lambda: _leader_is(zk_client, "cut", 0, 2), timeout=60)
            assert state["isr"] == [2] and state["controller_epoch"] == 1
            assert c.is_active and c.statistics().live_brokers == (2, 3)
            c.shutdown()
    finally:
        await zk.close()
