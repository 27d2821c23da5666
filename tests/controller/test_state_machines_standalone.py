"""The controller's state machines and topic deletion manager built on their own from real
objects -- a ControllerContext, a real ZooKeeper client (fenced by the controller epoch) and a
real ControllerChannelManager sending over TCP to in-test Kafka endpoints -- with no
KafkaController and no broker process, as Kafka 2.x's ZkPartitionStateMachine /
ZkReplicaStateMachine / TopicDeletionManager are built from what they use."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio

from kafkalike.controller.controller_channel_manager import ControllerBrokerRequestBatch, ControllerChannelManager
from kafkalike.controller.controller_context import ControllerContext, PartitionState, ReplicaState
from kafkalike.controller.fenced_zk_client import FencedZkClient
from kafkalike.controller.leader_election import LeaderElection
from kafkalike.controller.partition_state_machine import ElectionFailure, ElectionStrategy, PartitionStateMachine
from kafkalike.controller.replica_state_machine import ReplicaStateMachine
from kafkalike.controller.topic_deletion_manager import TopicDeletionManager
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import ControllerMoved, KafkaZkClient
from kafkalike.coordination.zookeeper_client import now_ms
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import api_versions_response, encode_response, parse_request, response_class
from kafkalike.protocol.frame import FrameReader

CONTROLLER_ID = 100
TIMEOUT = 20
TP = zd.TopicPartition("t", 0)


class RecordingBroker:
    """The receiving end of the controller's channel for one broker: a trio TCP server on
    127.0.0.1 that parses each request with the real codec, answers ApiVersions with the
    broker's table and every controller request with error NONE, and keeps
    ``received[api_key]`` = the parsed requests in arrival order."""

    def __init__(self) -> None:
        self.received: dict[int, list[Any]] = {}
        self.port = 0

    async def start(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, self._serve, 0, host="127.0.0.1"))
        self.port = listeners[0].socket.getsockname()[1]

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            await self._serve_frames(stream)
        except trio.BrokenResourceError:
            # the controller closed the channel (remove_broker) with an answer still unread:
            # its kernel resets the connection, and a broker just drops it
            pass

    async def _serve_frames(self, stream: trio.SocketStream) -> None:
        reader = FrameReader()
        async with stream:
            while data := await stream.receive_some(65536):
                reader.feed(data)
                while (frame := reader.next_frame()) is not None:
                    header, request = parse_request(frame)
                    if header.api_key == ApiKey.API_VERSIONS:
                        response = api_versions_response(header.api_version)
                    else:
                        self.received.setdefault(header.api_key, []).append(request)
                        response = response_class(header.api_key, header.api_version)(error_code=0)
                    await stream.send_all(encode_response(header, response))


@attrs.define
class Machines:
    """What a KafkaController would build, built by hand; ``brokers[b]`` records what broker b
    received; ``active`` is what the fenced client asks before every write."""

    ctx: ControllerContext
    kzk: KafkaZkClient
    fenced: FencedZkClient
    channel: ControllerChannelManager
    batch: ControllerBrokerRequestBatch
    psm: PartitionStateMachine
    rsm: ReplicaStateMachine
    brokers: dict[int, RecordingBroker]
    active: list[bool]
    unclean: dict[str, bool]


@pytest.fixture
async def machines(zk_client: ZooKeeperClient, nursery: trio.Nursery) -> AsyncIterator[Machines]:
    """Brokers 1 and 2 live (each a RecordingBroker), this process registered as controller in
    ZooKeeper, and topic "t" partition 0 assigned to [1, 2] in the context, not yet started."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    epoch = await kzk.register_controller_and_increment_epoch(CONTROLLER_ID)
    ctx = ControllerContext(epoch=epoch.epoch, epoch_zk_version=epoch.zk_version)
    channel = ControllerChannelManager(CONTROLLER_ID, request_timeout_ms=5000)
    channel.start(nursery)
    brokers: dict[int, RecordingBroker] = {}
    for b in (1, 2):
        brokers[b] = node = RecordingBroker()
        await node.start(nursery)
        ctx.live_brokers[b] = 1000 + b
        ctx.broker_info[b] = zd.BrokerRegistration(b, (zd.EndPoint("PLAINTEXT", "127.0.0.1", node.port),),
                                                   timestamp_ms=now_ms())
        channel.add_broker(b, "127.0.0.1", node.port)
    ctx.assignments[TP] = [1, 2]
    active = [True]
    unclean: dict[str, bool] = {}

    async def unclean_enabled(topic: str) -> bool:
        return unclean.get(topic, False)

    fenced = FencedZkClient(kzk, is_active=lambda: active[0], broker_id=lambda: CONTROLLER_ID)
    batch = ControllerBrokerRequestBatch(ctx, channel, CONTROLLER_ID)
    psm = PartitionStateMachine(ctx, fenced, batch, unclean_enabled)
    rsm = ReplicaStateMachine(ctx, fenced, batch)
    try:
        yield Machines(ctx, kzk, fenced, channel, batch, psm, rsm, brokers, active, unclean)
    finally:
        channel.shutdown()


async def received(broker: RecordingBroker, api_key: int, count: int) -> list[Any]:
    """The first ``count`` requests of ``api_key`` that ``broker`` received, waiting for them
    (the channel sends in the background)."""
    with trio.fail_after(TIMEOUT):
        while len(broker.received.get(api_key, ())) < count:
            await trio.sleep(0.02)
    return broker.received[api_key][:count]


async def received_leader_and_isr(broker: RecordingBroker, count: int
                                  ) -> list[tuple[int, int, int, tuple[int, ...], bool]]:
    """The partition states of the first ``count`` LeaderAndIsr requests ``broker`` received,
    as (partition, leader, leader_epoch, isr, is_new)."""
    out = []
    for request in await received(broker, ApiKey.LEADER_AND_ISR, count):
        for topic in request.topic_states:
            for s in topic.partition_states:
                out.append((s.partition_index, s.leader, s.leader_epoch, tuple(s.isr), s.is_new))
    return out


async def test_partition_goes_new_to_online_then_offline_to_online_on_its_own(machines: Machines) -> None:
    """Without a controller: NewPartition -> Online creates the state znode (leader 1, ISR [1, 2])
    and sends LeaderAndIsr to both replicas; after broker 1 dies, Offline -> Online elects 2
    from the ISR, rewrites the znode (epoch 1, ISR [2]) and sends LeaderAndIsr to broker 2."""
    m = machines
    m.psm.initialize_partition_state()
    assert m.ctx.partition_state(TP) is PartitionState.NewPartition

    results = await m.psm.handle_state_changes([TP], PartitionState.OnlinePartition)
    assert results == {TP: LeaderElection(1, (1, 2))}
    state = await m.kzk.get_partition_state("t", 0)
    assert state is not None
    assert (state.leader, state.leader_epoch, state.isr, state.controller_epoch) == (1, 0, (1, 2), m.ctx.epoch)
    assert m.ctx.leadership[TP] == state and m.ctx.partition_state(TP) is PartitionState.OnlinePartition
    for b in (1, 2):
        assert await received_leader_and_isr(m.brokers[b], 1) == [(0, 1, 0, (1, 2), True)]

    del m.ctx.live_brokers[1]
    m.channel.remove_broker(1)
    await m.psm.handle_state_changes([TP], PartitionState.OfflinePartition)
    assert m.ctx.partition_state(TP) is PartitionState.OfflinePartition
    results = await m.psm.handle_state_changes([TP], PartitionState.OnlinePartition, ElectionStrategy.OFFLINE)
    assert results == {TP: LeaderElection(2, (2,))}
    state = await m.kzk.get_partition_state("t", 0)
    assert state is not None
    assert (state.leader, state.leader_epoch, state.isr, state.controller_epoch) == (2, 1, (2,), m.ctx.epoch)
    assert m.ctx.leadership[TP] == state and m.ctx.partition_state(TP) is PartitionState.OnlinePartition
    assert (await received_leader_and_isr(m.brokers[2], 2))[1] == (0, 2, 1, (2,), False)
    assert m.psm.unclean_elections == 0


async def test_unclean_election_asks_the_lookup_it_was_given(machines: Machines) -> None:
    """With the only ISR member dead, the partition stays offline until the
    unclean-election lookup handed to the machine says yes; then the live out-of-sync
    replica leads and the unclean election is counted."""
    m = machines
    m.psm.initialize_partition_state()
    await m.psm.handle_state_changes([TP], PartitionState.OnlinePartition)
    # the ISR shrinks to broker 1 alone (as its leader would write), then broker 1 dies
    state = await m.kzk.get_partition_state("t", 0)
    assert state is not None
    await m.kzk.update_partition_state(TP, attrs.evolve(state, isr=(1,)))
    del m.ctx.live_brokers[1]
    m.channel.remove_broker(1)
    await m.psm.handle_state_changes([TP], PartitionState.OfflinePartition)

    results = await m.psm.handle_state_changes([TP], PartitionState.OnlinePartition)
    assert results[TP] == ElectionFailure("no eligible replica (offline)")
    assert m.ctx.partition_state(TP) is PartitionState.OfflinePartition

    m.unclean["t"] = True
    results = await m.psm.handle_state_changes([TP], PartitionState.OnlinePartition)
    assert isinstance(results[TP], LeaderElection) and results[TP].leader == 2 and results[TP].unclean
    assert m.psm.unclean_elections == 1
    state = await m.kzk.get_partition_state("t", 0)
    assert state is not None and (state.leader, state.isr) == (2, (2,))


async def test_offline_replica_leaves_the_isr_in_zookeeper_on_its_own(machines: Machines) -> None:
    """Without a controller: replica 2 -> OfflineReplica sends it StopReplica, removes it from
    the ISR in ZooKeeper (leader epoch + 1) and tells live replica 1 the new state."""
    m = machines
    m.psm.initialize_partition_state()
    await m.psm.handle_state_changes([TP], PartitionState.OnlinePartition)
    m.rsm.initialize_replica_state()
    assert m.ctx.replica_state(TP, 2) is ReplicaState.OnlineReplica

    del m.ctx.live_brokers[2]
    await m.rsm.handle_state_changes([(TP, 2)], ReplicaState.OfflineReplica)
    assert m.ctx.replica_state(TP, 2) is ReplicaState.OfflineReplica
    state = await m.kzk.get_partition_state("t", 0)
    assert state is not None
    assert (state.leader, state.leader_epoch, state.isr) == (1, 1, (1,))
    assert m.ctx.leadership[TP] == state
    assert (await received_leader_and_isr(m.brokers[1], 2))[1] == (0, 1, 1, (1,), False)


async def test_a_fenced_machine_writes_nothing(machines: Machines) -> None:
    """Once the fenced client's owner is no longer active, an election raises ControllerMoved
    and the state znode is left as it was."""
    m = machines
    m.psm.initialize_partition_state()
    await m.psm.handle_state_changes([TP], PartitionState.OnlinePartition)
    before = await m.kzk.get_partition_state("t", 0)
    m.active[0] = False
    with pytest.raises(ControllerMoved):
        await m.psm.handle_state_changes([TP], PartitionState.OnlinePartition, ElectionStrategy.PREFERRED)
    assert await m.kzk.get_partition_state("t", 0) == before


async def test_topic_deletion_disabled_removes_the_mark_on_its_own(machines: Machines,
                                                                   zk_client: ZooKeeperClient) -> None:
    """A TopicDeletionManager built with delete.topic.enable=false removes
    /admin/delete_topics/t (behind the epoch check) and deletes nothing."""
    m = machines
    m.psm.initialize_partition_state()
    await m.psm.handle_state_changes([TP], PartitionState.OnlinePartition)
    await m.kzk.create_delete_topic_path("t")
    sent: list[tuple[list[int], list[zd.TopicPartition]]] = []
    tdm = TopicDeletionManager(m.ctx, m.rsm, m.psm, m.fenced, delete_topic_enable=False,
                               send_update_metadata=lambda brokers, tps: sent.append((brokers, tps)))
    await tdm.enqueue_topics_for_deletion(["t"])
    assert await zk_client.exists(zd.delete_topic_path("t")) is None
    assert m.ctx.partition_state(TP) is PartitionState.OnlinePartition and not m.ctx.topics_to_delete
    assert await m.kzk.get_partition_state("t", 0) is not None and sent == []
