"""SIGTERM makes a broker shut down in a controlled way: the controller moves its
leaderships away before the process exits (controlled.shutdown.enable)."""

from __future__ import annotations

import time
import uuid

import trio

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination.kafka_zk_client import KafkaZkClient
from tests.fixtures_cluster import MakeCluster


def partition_states(cluster: LocalCluster, topic: str, partitions: int) -> dict[int, tuple[int, tuple[int, ...], int]]:
    """partition -> (leader, isr, leader_epoch) read from ZooKeeper."""
    async def read() -> dict[int, tuple[int, tuple[int, ...], int]]:
        async with ZooKeeperClient(cluster.zk_connect, name="test") as zk:
            kzk = KafkaZkClient(zk)
            out = {}
            for p in range(partitions):
                st = await kzk.get_partition_state(topic, p)
                assert st is not None
                out[p] = (st.leader, tuple(st.isr), st.leader_epoch)
            return out

    return trio.run(read)


def test_sigterm_moves_leaderships_away_before_the_broker_exits(make_cluster: MakeCluster) -> None:
    """After a SIGTERM'd broker has exited, no partition names it as leader or ISR member and
    every moved partition's leader epoch went up: no partition waited for a session timeout."""
    from kafka.admin import KafkaAdminClient, NewTopic

    cluster = make_cluster(brokers=3)
    topic = f"cs-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=3)])
    admin.close()


    end = time.monotonic() + 30
    while True:
        before = partition_states(cluster, topic, 6)
        if all(len(isr) == 3 for _, isr, _ in before.values()) or time.monotonic() > end:
            break
        time.sleep(0.3)
    victim = 2
    led = [p for p, (leader, _, _) in before.items() if leader == victim]
    assert led, "rack-unaware placement gives every broker some leaderships"
    assert cluster.stop_broker(victim, timeout=60)
    after = partition_states(cluster, topic, 6)
    for p, (leader, isr, epoch) in after.items():
        assert leader != victim and victim not in isr, (p, after[p])
    for p in led:
        assert after[p][2] > before[p][2]
    log = cluster.log_path(victim).read_text()
    assert "controlled_shutdown_finished" in log and "succeeded=True" in log
