"""DescribeProducers (KIP-664) against two real kafkalike broker processes and real ZooKeeper,
asked with kafka-python's admin client (describe_producers): the active idempotent producers of
a partition with their epoch, last sequence and last batch's max timestamp, from the leader and
from a follower's replicated state; NOT_LEADER_OR_FOLLOWER from a broker without a replica and
UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from tests.fixtures_cluster import _new_cluster

T0 = 1_700_000_000_000  # ms


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    """Two broker processes shared by this module."""
    c = _new_cluster(tmp_path_factory.mktemp("describe-producers"), zk_connect, 2, None)
    try:
        yield c
    finally:
        c.stop()


async def _produce_raw(bootstrap: str, leader: int, topic: str, batches: list[bytes]) -> None:
    """Send each batch to partition 0 of ``topic`` on broker ``leader`` (acks=-1)."""
    from kafkalike.client import KafkaClient
    from kafkalike.protocol.api_keys import ApiKey

    async with KafkaClient(bootstrap, client_id="describe-producers-test") as client:
        await client.refresh_metadata([topic])
        conn = await client.connection(leader)
        for batch in batches:
            r = await conn.call(ApiKey.PRODUCE, acks=-1, timeout=10000, transactional_id=None,
                                topic_data=[{"name": topic, "partition_data": [{"index": 0, "records": batch}]}])
            assert r.responses[0].partition_responses[0].error_code.value == 0, r


def _states(result: dict[Any, Any]) -> list[tuple[int, int, int, int, int, int]]:
    (state,) = result.values()
    return sorted((p.producer_id, p.producer_epoch, p.last_sequence, p.last_timestamp, p.coordinator_epoch,
                   p.current_transaction_start_offset) for p in state.active_producers)


def test_describe_producers_lists_idempotent_producers_from_leader_and_follower(cluster: LocalCluster) -> None:
    """Two hand-built idempotent producers (one with two batches, one at epoch 3), a plain
    batch and kafka-python's own idempotent producer: the leader lists the three idempotent
    ones with epoch, last sequence, the last batch's max timestamp, coordinator epoch -1 and no
    transaction (-1); the follower lists the same once it has replicated them."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic
    from kafka.structs import TopicPartition

    bs = cluster.bootstrap_servers
    leader, follower = cluster.broker_ids[:2]
    admin = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic("dp", replica_assignments={0: [leader, follower]})])
        admin.wait_for_topics(["dp"], timeout_ms=30000)
        trio.run(_produce_raw, bs, leader, "dp", [
            build_batch([SimpleRecord(value=b"a", timestamp=T0), SimpleRecord(value=b"b", timestamp=T0 + 1)],
                        producer_id=7000, producer_epoch=0, base_sequence=0),
            build_batch([SimpleRecord(value=b"c", timestamp=T0 + 10), SimpleRecord(value=b"d", timestamp=T0 + 15),
                         SimpleRecord(value=b"e", timestamp=T0 + 12)],
                        producer_id=7000, producer_epoch=0, base_sequence=2),
            build_batch([SimpleRecord(value=b"f", timestamp=T0 + 20)], producer_id=7001, producer_epoch=3,
                        base_sequence=0),
            build_batch([SimpleRecord(value=b"plain", timestamp=T0 + 30)]),
        ])
        producer = KafkaProducer(bootstrap_servers=bs, enable_idempotence=True, acks="all", linger_ms=0)
        try:
            for i in range(3):
                producer.send("dp", value=b"%d" % i, partition=0, timestamp_ms=T0 + 100 + i).get(timeout=30)
        finally:
            producer.close()
        on_leader = _states(admin.describe_producers([TopicPartition("dp", 0)]))
        assert [s for s in on_leader if s[0] in (7000, 7001)] == [(7000, 0, 4, T0 + 15, -1, -1),
                                                                 (7001, 3, 0, T0 + 20, -1, -1)]
        assert len(on_leader) == 3
        (pid, epoch, last_seq, last_ts, coordinator_epoch, txn_start), = \
            [s for s in on_leader if s[0] not in (7000, 7001)]
        assert pid not in (7000, 7001) and epoch >= 0 and last_seq == 2 and last_ts == T0 + 102
        assert (coordinator_epoch, txn_start) == (-1, -1)
        deadline = time.monotonic() + 30
        while True:
            on_follower = _states(admin.describe_producers([TopicPartition("dp", 0)], broker_id=follower))
            if on_follower == on_leader or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert on_follower == on_leader
    finally:
        admin.close()


def test_describe_producers_errors_for_brokers_without_the_partition(cluster: LocalCluster) -> None:
    """A broker that hosts no replica of the partition answers NOT_LEADER_OR_FOLLOWER; a topic
    that does not exist answers UNKNOWN_TOPIC_OR_PARTITION."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import NotLeaderForPartitionError, UnknownTopicOrPartitionError
    from kafka.structs import TopicPartition

    leader, other = cluster.broker_ids[:2]
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic("dp-one", replica_assignments={0: [leader]})])
        admin.wait_for_topics(["dp-one"], timeout_ms=30000)
        assert _states(admin.describe_producers([TopicPartition("dp-one", 0)], broker_id=leader)) == []
        with pytest.raises(NotLeaderForPartitionError):
            admin.describe_producers([TopicPartition("dp-one", 0)], broker_id=other)
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.describe_producers([TopicPartition("dp-nope", 0)], broker_id=leader)
    finally:
        admin.close()
