"""What one controller step costs at many partitions, counted (issue 24: controller failover and
controlled shutdown at 10,000 partitions), never timed:

* the log: one structlog line per step (``leaders_elected``, ``isrs_shrunk``) with the count and
  the first few partitions, not one per partition (the per-partition lines are debug level);
* the ZooKeeper reads: an ISR removal or an election computes from the states the controller
  holds and reads only what a conditional write showed stale, or a state that led to no write;
* the ISR change notifications: read back in one batch, not a read a partition.

The state machines are built by hand on a real ZooKeeper and real TCP receivers (the fixture of
test_state_machines_standalone.py), the controller on a real ZooKeeper (the fixture of
test_batched_state_changes.py). The request bodies: test_controller_request_bodies.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import structlog
import trio
from structlog.testing import LogCapture

from kafkalike.controller.controller_context import PartitionState, ReplicaState
from kafkalike.controller.fenced_zk_client import FencedZkClient
from kafkalike.controller.kafka_controller import KafkaController
from kafkalike.controller.partition_state_machine import FIRST_FEW, ElectionStrategy
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import KafkaZkClient
from tests.controller.test_batched_state_changes import setup as setup  # the fixture
from tests.controller.test_state_machines_standalone import Machines
from tests.controller.test_state_machines_standalone import machines as machines  # the fixture

PARTITIONS = 30
TPS = [zd.TopicPartition("t", p) for p in range(PARTITIONS)]


def capture(level: int) -> LogCapture:
    """structlog configured as a broker's (a filtering logger at ``level``), writing into the
    returned LogCapture's ``entries``."""
    cap = LogCapture()
    structlog.configure(processors=[cap], wrapper_class=structlog.make_filtering_bound_logger(level))
    return cap


def events(cap: LogCapture, name: str) -> list[Any]:
    return [e for e in cap.entries if e["event"] == name]


class CountingZk(KafkaZkClient):
    """The controller's KafkaZkClient, counting the partition states it reads."""

    def __init__(self, zk: ZooKeeperClient) -> None:
        super().__init__(zk)
        self.read_batches: list[int] = []  # partitions named by each batched read
        self.single_reads = 0

    async def get_partition_states(self, tps: Sequence[zd.TopicPartition]
                                   ) -> dict[zd.TopicPartition, zd.LeaderIsrAndControllerEpoch]:
        self.read_batches.append(len(tps))
        return await super().get_partition_states(tps)

    async def get_partition_state(self, topic: str, partition: int) -> zd.LeaderIsrAndControllerEpoch | None:
        self.single_reads += 1
        return await super().get_partition_state(topic, partition)


@pytest.fixture
def many(machines: Machines, zk_client: ZooKeeperClient) -> Iterator[tuple[Machines, CountingZk]]:
    """The machines with topic "t" of PARTITIONS partitions on [1, 2], and their ZooKeeper reads counted."""
    counting = CountingZk(zk_client)
    machines.fenced.attach(counting)
    for tp in TPS:
        machines.ctx.assignments[tp] = [1, 2]
    yield machines, counting
    structlog.reset_defaults()


async def test_a_step_over_many_partitions_logs_one_info_line_with_the_count(
        many: tuple[Machines, CountingZk]) -> None:
    """Creating PARTITIONS partitions, then removing replica 2 from their ISRs, then moving
    their leadership to 2: one ``leaders_elected`` / ``isrs_shrunk`` line a step, naming the
    count and the first FIRST_FEW partitions, and no per-partition line at info level."""
    m, _zk = many
    cap = capture(logging.INFO)
    m.psm.initialize_partition_state()
    await m.psm.handle_state_changes(TPS, PartitionState.OnlinePartition)
    m.rsm.initialize_replica_state()
    await m.rsm.handle_state_changes([(tp, 2) for tp in TPS], ReplicaState.OfflineReplica)
    await m.rsm.handle_state_changes([(tp, 2) for tp in TPS], ReplicaState.OnlineReplica)
    elected = events(cap, "leaders_elected")
    assert [(e["strategy"], e["count"], len(e["partitions"])) for e in elected] == [
        ("new_partition", PARTITIONS, FIRST_FEW)]
    shrunk = events(cap, "isrs_shrunk")
    assert [(e["removed"], e["count"], len(e["partitions"]), e["isr"]) for e in shrunk] == [
        (2, PARTITIONS, FIRST_FEW, [1])]
    assert set(shrunk[0]["partitions"]) <= {str(tp) for tp in TPS}
    assert not events(cap, "leader_elected") and not events(cap, "isr_shrunk")


async def test_the_per_partition_lines_are_still_there_at_debug_level(many: tuple[Machines, CountingZk]) -> None:
    """At debug level each partition's election and ISR removal has its own line too."""
    m, _zk = many
    cap = capture(logging.DEBUG)
    m.psm.initialize_partition_state()
    await m.psm.handle_state_changes(TPS, PartitionState.OnlinePartition)
    m.rsm.initialize_replica_state()
    await m.rsm.handle_state_changes([(tp, 2) for tp in TPS], ReplicaState.OfflineReplica)
    assert sorted(e["partition"] for e in events(cap, "leader_elected")) == sorted(str(tp) for tp in TPS)
    assert sorted(e["partition"] for e in events(cap, "isr_shrunk")) == sorted(str(tp) for tp in TPS)
    assert len(events(cap, "leaders_elected")) == len(events(cap, "isrs_shrunk")) == 1


async def test_isr_removal_and_election_write_from_the_states_the_controller_holds_without_reading_them(
        many: tuple[Machines, CountingZk]) -> None:
    """After the controller wrote the partitions' states, removing replica 2 from every ISR and
    then a controlled-shutdown election away from broker 1 read no partition state from
    ZooKeeper (Kafka reads them all first; every write is conditional on the zkVersion the
    controller holds), and ZooKeeper ends as the controller's context says."""
    m, zk = many
    m.psm.initialize_partition_state()
    await m.psm.handle_state_changes(TPS, PartitionState.OnlinePartition)
    m.rsm.initialize_replica_state()
    await m.rsm.handle_state_changes([(tp, 2) for tp in TPS], ReplicaState.OfflineReplica)
    assert zk.read_batches == []
    m.ctx.replica_states.update({(tp, 2): ReplicaState.OnlineReplica for tp in TPS})
    for tp in TPS:  # broker 2 caught up and its leader put it back in the ISR (as the leader writes it)
        state = m.ctx.leadership[tp]
        new_version = await m.kzk.update_partition_state(tp, zd.LeaderIsrAndControllerEpoch(
            state.leader, state.leader_epoch, (1, 2), state.controller_epoch, zk_version=state.zk_version))
        m.ctx.leadership[tp] = zd.LeaderIsrAndControllerEpoch(
            state.leader, state.leader_epoch, (1, 2), state.controller_epoch, zk_version=new_version)
    m.ctx.shutting_down.add(1)
    results = await m.psm.handle_state_changes(TPS, PartitionState.OnlinePartition,
                                               ElectionStrategy.CONTROLLED_SHUTDOWN)
    assert zk.read_batches == []
    assert {tp: (r.leader, r.isr) for tp, r in results.items()} == {tp: (2, (2,)) for tp in TPS}  # type: ignore[union-attr]
    in_zk = await m.kzk.get_partition_states(TPS)
    assert in_zk == {tp: m.ctx.leadership[tp] for tp in TPS}
    assert all((s.leader, s.isr, s.leader_epoch) == (2, (2,), 2) for s in in_zk.values())


async def test_a_known_state_that_leads_to_no_write_is_read_again_before_the_controller_settles_for_it(
        many: tuple[Machines, CountingZk]) -> None:
    """The context says replica 2 is out of the ISRs, but behind the controller's back the
    leader put it back in ZooKeeper: removing replica 2 first finds nothing to do in the known
    states, so it reads those partitions (one batch) and then removes 2 from the ISRs in
    ZooKeeper."""
    m, zk = many
    m.psm.initialize_partition_state()
    await m.psm.handle_state_changes(TPS, PartitionState.OnlinePartition)
    for tp in TPS:  # the controller's view: ISR [1] (stale)
        state = m.ctx.leadership[tp]
        m.ctx.leadership[tp] = zd.LeaderIsrAndControllerEpoch(state.leader, state.leader_epoch, (1,),
                                                             state.controller_epoch, zk_version=state.zk_version)
    out = await m.rsm.remove_replica_from_isr(2, TPS)
    assert zk.read_batches == [PARTITIONS]
    in_zk = await m.kzk.get_partition_states(TPS)
    assert all((s.isr, s.leader_epoch) == ((1,), 1) for s in in_zk.values())
    assert out == in_zk and {tp: m.ctx.leadership[tp] for tp in TPS} == in_zk


async def test_isr_change_notifications_are_read_back_in_one_batched_read(
        setup: tuple[KafkaController, KafkaZkClient, list[zd.TopicPartition]], zk_client: ZooKeeperClient) -> None:
    """A leader shrinks the ISR of every partition and posts one ISR change notification naming
    them all (as a ZooKeeper-mode leader does): the controller refreshes them with one batched
    read (Kafka's getTopicPartitionStates), not one read a partition, and its cache ends as
    ZooKeeper says."""
    c, leader, tps = setup
    counting = CountingZk(zk_client)
    c.kafka_zk = FencedZkClient(counting, is_active=lambda: True, broker_id=lambda: c.broker_id)
    for tp, s in (await leader.get_partition_states(tps)).items():
        await leader.update_partition_state(tp, zd.LeaderIsrAndControllerEpoch(
            s.leader, s.leader_epoch, (1, 2), s.controller_epoch, zk_version=s.zk_version))
    await leader.propagate_isr_changes(tps)
    with trio.fail_after(30):
        while not all(c.context.leadership[tp].isr == (1, 2) for tp in tps):
            await trio.sleep(0.05)
    assert counting.single_reads == 0 and counting.read_batches == [len(tps)]
    assert {tp: c.context.leadership[tp] for tp in tps} == await leader.get_partition_states(tps)
