"""A controller taking over a cluster of many partitions sends their metadata in requests of
at most STATE_CHANGE_CHUNK partitions, with the event loop free in between (issue 15: no
event-loop stall over ~100 ms at 10,000 topics). Before, it built one UpdateMetadata naming
every partition in one step (0.7 s of the loop at 10,000, in a many-topics run whose
controller failed over), and the receiving broker applied it in one step too. Checked against
a real ZooKeeper, with a real TCP receiver recording what the controller sent. (What the state machines' start-up
sends after it -- one LeaderAndIsr and one UpdateMetadata naming every partition, from
ReplicaStateMachine.startup -- is not chunked yet; only the requests before the first
LeaderAndIsr are the failover's own.)"""

from __future__ import annotations

import trio

from kafkalike.controller import controller_context
from kafkalike.controller.kafka_controller import KafkaController
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import KafkaZkClient
from kafkalike.coordination.zookeeper_client import CreateOp, now_ms
from kafkalike.protocol.api_keys import ApiKey
from tests.controller.test_state_machines_standalone import RecordingBroker


class _Receiver(RecordingBroker):
    """RecordingBroker that lets a connection end abruptly (the controller, shut down at the end
    of the test, may drop its connection with a request unanswered)."""

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            await super()._serve(stream)
        except trio.BrokenResourceError:
            pass


class _InOrder(dict):  # type: ignore[type-arg]
    """RecordingBroker.received that also notes the api key of every request in arrival order."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[int] = []

    def setdefault(self, key: int, default: object = None) -> list:  # type: ignore[type-arg]
        if key not in self:
            self[key] = _Noted(key, self.order)
        return self[key]


class _Noted(list):  # type: ignore[type-arg]
    def __init__(self, key: int, order: list[int]) -> None:
        super().__init__()
        self.key, self.order = key, order

    def append(self, item: object) -> None:
        self.order.append(self.key)
        super().append(item)

CHUNK = controller_context.STATE_CHANGE_CHUNK
PARTITIONS = 2 * CHUNK + 10
TIMEOUT_S = 60


async def test_a_new_controller_sends_the_metadata_of_many_partitions_in_chunks(
        zk_client: ZooKeeperClient, zk_chroot_connect: str, nursery: trio.Nursery) -> None:
    """PARTITIONS partitions with their state znodes already written (an earlier controller's
    work) and one live broker: the UpdateMetadata requests the new controller sends before its
    first LeaderAndIsr (the failover's) name every partition once, none more than CHUNK, and
    the first carries the live broker."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    receiver = _Receiver()
    received = receiver.received = _InOrder()
    await receiver.start(nursery)

    def failover_update_metadata() -> list:  # type: ignore[type-arg]
        """The UpdateMetadata requests that arrived before the first LeaderAndIsr."""
        before = received.order.index(ApiKey.LEADER_AND_ISR) if ApiKey.LEADER_AND_ISR in received.order \
            else len(received.order)
        return list(received.get(ApiKey.UPDATE_METADATA, []))[:received.order[:before].count(ApiKey.UPDATE_METADATA)]

    broker_zk = ZooKeeperClient(zk_chroot_connect, session_timeout_ms=6000, name="broker-1")
    await broker_zk.start()
    try:
        await KafkaZkClient(broker_zk).register_broker(
            zd.BrokerRegistration(1, (zd.EndPoint("PLAINTEXT", "127.0.0.1", receiver.port),), timestamp_ms=now_ms()))
        await kzk.create_topic_assignment(zd.TopicAssignment(
            "wide", {p: zd.ReplicaAssignment((1,)) for p in range(PARTITIONS)}, zd.generate_uuid_base64()))
        await zk_client.ensure_path(zd.topic_path("wide") + "/partitions")
        await zk_client.multi_many([[CreateOp(zd.topic_partition_path("wide", p)),
                                     CreateOp(zd.partition_state_path("wide", p),
                                              zd.LeaderIsrAndControllerEpoch(1, 0, (1,), 1).to_json())]
                                    for p in range(PARTITIONS)])
        controller = KafkaController(100, {"auto.leader.rebalance.enable": False}, zk=zk_client)
        await nursery.start(controller.run)
        try:
            with trio.fail_after(TIMEOUT_S):
                await controller.became_active.wait()
                while True:
                    sent = failover_update_metadata()
                    named = [p.partition_index for r in sent for t in r.topic_states for p in t.partition_states]
                    if len(set(named)) >= PARTITIONS:
                        break
                    await trio.sleep(0.05)
        finally:
            controller.shutdown()
            await controller.stopped.wait()
    finally:
        await broker_zk.close()
    sizes = [sum(len(t.partition_states) for t in r.topic_states) for r in sent]
    assert sorted(set(named)) == list(range(PARTITIONS))
    assert max(sizes) <= CHUNK, f"an UpdateMetadata named {max(sizes)} partitions: {sizes}"
    assert [b.id for b in sent[0].live_brokers] == [1]
