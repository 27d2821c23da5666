"""A controller taking over a cluster of many partitions sends their metadata in requests of
at most STATE_CHANGE_CHUNK partitions, with the event loop free in between (issue 15: no
event-loop stall over ~100 ms at 10,000 topics). Before, it built one UpdateMetadata naming
every partition in one step (0.7 s of the loop at 10,000, in a many-topics run whose
controller failed over), and the receiving broker applied it in one step too. Checked against
a real ZooKeeper, with a real TCP receiver recording what the controller sent."""

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

CHUNK = controller_context.STATE_CHANGE_CHUNK
PARTITIONS = 2 * CHUNK + 10
TIMEOUT_S = 60


async def test_a_new_controller_sends_the_metadata_of_many_partitions_in_chunks(
        zk_client: ZooKeeperClient, zk_chroot_connect: str, nursery: trio.Nursery) -> None:
    """PARTITIONS partitions with their state znodes already written (an earlier controller's
    work) and one live broker: the new controller's failover UpdateMetadata requests name
    every partition once, none more than CHUNK, and the first carries the live broker."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    receiver = RecordingBroker()
    await receiver.start(nursery)
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
                    sent = receiver.received.get(ApiKey.UPDATE_METADATA, [])
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
