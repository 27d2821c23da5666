"""The controller's batched ZooKeeper writes against a real ensemble: removing a replica from
many ISRs, and electing many leaders, still end right when some partition states are changed
behind the controller's back before its batched write (BadVersion: re-read, recompute, write
again, as Kafka's updateLeaderAndIsr loop). The first round computes from the states the
controller holds, so only the BadVersion ones are read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

import pytest
import trio

from kafkalike.controller.controller_context import PartitionState
from kafkalike.controller.kafka_controller import KafkaController
from kafkalike.controller.leader_election import LeaderElection
from kafkalike.controller.partition_state_machine import ElectionStrategy
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import ControllerMoved, KafkaZkClient, UpdateLeaderAndIsrResult
from kafkalike.coordination.zookeeper_client import now_ms

TIMEOUT = 30
PARTITIONS = 40
MEDDLED = range(0, PARTITIONS, 3)  # partitions whose state a "leader" changes behind the controller's back


class MeddlingZk(KafkaZkClient):
    """The controller's KafkaZkClient, except that right before its FIRST batched state write a
    partition leader (another real ZooKeeper session) shrinks the ISR of the MEDDLED
    partitions by broker 3, so the controller's batched write of those gets BadVersion.
    ``reads``: the partitions named by each batched state read."""

    def __init__(self, zk: ZooKeeperClient, leader: KafkaZkClient) -> None:
        super().__init__(zk)
        self.leader = leader
        self.reads: list[int] = []
        self.writes = 0

    async def get_partition_states(self, tps: Sequence[zd.TopicPartition]
                                   ) -> dict[zd.TopicPartition, zd.LeaderIsrAndControllerEpoch]:
        self.reads.append(len(tps))
        return await super().get_partition_states(tps)

    async def update_leader_and_isr_many(self, states: Mapping[zd.TopicPartition, zd.LeaderIsrAndControllerEpoch],
                                         epoch_zk_version: int) -> UpdateLeaderAndIsrResult:
        self.writes += 1
        if self.writes == 1:
            meddled = [tp for tp in states if tp.partition in MEDDLED]
            for tp, s in (await super().get_partition_states(meddled)).items():
                await self.leader.update_partition_state(
                    tp, zd.LeaderIsrAndControllerEpoch(s.leader, s.leader_epoch, tuple(i for i in s.isr if i != 3),
                                                       s.controller_epoch, zk_version=s.zk_version))
        return await super().update_leader_and_isr_many(states, epoch_zk_version)


@pytest.fixture
async def setup(zk_client: ZooKeeperClient, zk_chroot_connect: str, nursery: trio.Nursery
                ) -> AsyncIterator[tuple[KafkaController, KafkaZkClient, list[zd.TopicPartition]]]:
    """A controller, three registered brokers, and topic "t" with PARTITIONS partitions on
    replicas [1, 2, 3], all online (leader 1, ISR [1, 2, 3])."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    brokers = []
    for b in (1, 2, 3):
        zk = ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000, name=f"broker-{b}")
        await zk.start()
        brokers.append(zk)
        await KafkaZkClient(zk).register_broker(
            zd.BrokerRegistration(b, (zd.EndPoint("PLAINTEXT", "127.0.0.1", 1),), timestamp_ms=now_ms()))
    c = KafkaController(100, {"auto.leader.rebalance.enable": False}, zk=zk_client)
    try:
        await nursery.start(c.run)
        with trio.fail_after(TIMEOUT):
            await c.became_active.wait()
            while len(c.context.live_brokers) < 3:
                await trio.sleep(0.05)
        await kzk.create_topic_assignment(zd.TopicAssignment(
            "t", {p: zd.ReplicaAssignment((1, 2, 3)) for p in range(PARTITIONS)}, zd.generate_uuid_base64()))
        tps = [zd.TopicPartition("t", p) for p in range(PARTITIONS)]
        with trio.fail_after(TIMEOUT):
            while not all(c.context.partition_state(tp) is PartitionState.OnlinePartition for tp in tps):
                await trio.sleep(0.05)
        yield c, KafkaZkClient(brokers[0]), tps
        c.shutdown()
        await c.stopped.wait()
    finally:
        for zk in brokers:
            await zk.close()


async def test_isr_removal_retries_states_changed_behind_the_controllers_back(
        setup: tuple[KafkaController, KafkaZkClient, list[zd.TopicPartition]], zk_client: ZooKeeperClient) -> None:
    """Removing broker 2 from every ISR in one batch: the partitions a leader changed meanwhile
    get BadVersion, are re-read and rewritten, so every ISR ends without 2 and keeps the
    leader's change, the controller's cache matches ZooKeeper, and each got one leader-epoch bump."""
    c, leader, tps = setup
    meddling = MeddlingZk(zk_client, leader)
    fenced, c.kafka_zk = c.kafka_zk, meddling
    try:
        out = await c.replica_state_machine.remove_replica_from_isr(2, tps)
    finally:
        c.kafka_zk = fenced
    assert meddling.reads == [len(MEDDLED)]  # no first read: one batched re-read of the BadVersion ones
    states = await KafkaZkClient(zk_client).get_partition_states(tps)
    for tp in tps:
        want_isr = (1,) if tp.partition in MEDDLED else (1, 3)
        s = states[tp]
        assert (s.leader, s.isr, s.leader_epoch, s.controller_epoch) == (1, want_isr, 1, c.context.epoch), tp
        assert s.zk_version == (2 if tp.partition in MEDDLED else 1), tp
        assert out[tp] == s and c.context.leadership[tp] == s, tp


async def test_leader_election_retries_states_changed_behind_the_controllers_back(
        setup: tuple[KafkaController, KafkaZkClient, list[zd.TopicPartition]], zk_client: ZooKeeperClient) -> None:
    """A preferred election of every partition in one batch: the BadVersion ones are re-read and
    elected again from the fresh ISR, so all succeed with exactly one leader-epoch bump."""
    c, leader, tps = setup
    meddling = MeddlingZk(zk_client, leader)
    fenced, c.kafka_zk = c.kafka_zk, meddling
    try:
        results = await c.partition_state_machine.handle_state_changes(
            tps, PartitionState.OnlinePartition, ElectionStrategy.PREFERRED)
    finally:
        c.kafka_zk = fenced
    assert meddling.reads == [len(MEDDLED)]
    states = await KafkaZkClient(zk_client).get_partition_states(tps)
    for tp in tps:
        want_isr = (1, 2) if tp.partition in MEDDLED else (1, 2, 3)
        assert results[tp] == LeaderElection(1, want_isr), tp
        s = states[tp]
        assert (s.leader, s.isr, s.leader_epoch) == (1, want_isr, 1), tp
        assert c.context.leadership[tp] == s, tp


async def test_batched_isr_removal_by_a_resigned_controller_writes_nothing(
        setup: tuple[KafkaController, KafkaZkClient, list[zd.TopicPartition]], zk_client: ZooKeeperClient) -> None:
    """With the controller epoch moved on (another controller elected), the batched write raises
    ControllerMoved and no partition state changes."""
    c, _leader, tps = setup
    kzk = KafkaZkClient(zk_client)
    before = await kzk.get_partition_states(tps)
    epoch = await kzk.get_controller_epoch()
    assert epoch is not None
    await zk_client.set(zd.CONTROLLER_EPOCH_PATH, zd.encode_controller_epoch(epoch.epoch + 1), epoch.zk_version)
    with pytest.raises(ControllerMoved):
        await c.replica_state_machine.remove_replica_from_isr(2, tps)
    assert await kzk.get_partition_states(tps) == before
