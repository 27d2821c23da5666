"""Real clients' transactional producers against one kafkalike broker process (the
transaction coordinator sends the markers over the wire): an open transaction holds
read_committed consumers and ListOffsets(read_committed) back while read_uncommitted ones
see it, DescribeProducers shows its start offset, a commit releases it, and an aborted
transaction stays invisible to read_committed consumers of each library (confluent-kafka
2.16, kafka-python 3.0, aiokafka 0.14)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.protocol.errors import ErrorCode
from tests.fixtures_cluster import _new_cluster

OVERRIDES = {"transaction.state.log.num.partitions": "2", "transaction.state.log.replication.factor": "1",
             "transaction.state.log.min.isr": "1", "offsets.topic.num.partitions": "2",
             "offsets.topic.replication.factor": "1"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    c = _new_cluster(tmp_path_factory.mktemp("txn-clients"), zk_connect, 1, OVERRIDES)
    try:
        yield c
    finally:
        c.stop()


def _topic(cluster: LocalCluster) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"txc-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(name, timeout=10).topics.get(name)
        if md is not None and md.error is None and md.partitions and md.partitions[0].leader >= 0:
            return name
        time.sleep(0.2)
    raise AssertionError(f"topic {name} has no leader")


def _latest(cluster: LocalCluster, topic: str, isolation_level: int) -> int:
    from kafkalike.client import KafkaClient
    from kafkalike.protocol.api_keys import ApiKey

    async def go() -> int:
        async with KafkaClient(cluster.bootstrap_servers, client_id="txn-clients-test") as client:
            await client.refresh_metadata([topic])
            conn = await client.connection(cluster.broker_ids[0])
            r = await conn.call(ApiKey.LIST_OFFSETS, replica_id=-1, isolation_level=isolation_level,
                                topics=[{"name": topic, "partitions": [
                                    {"partition_index": 0, "timestamp": -1, "current_leader_epoch": -1}]}])
            p = r.topics[0].partitions[0]
            assert p.error_code == ErrorCode.none, p
            return int(p.offset)

    return trio.run(go)


def _confluent_read(cluster: LocalCluster, topic: str, isolation: str, expected: int,
                    quiet_s: float = 1.0) -> list[bytes]:
    """Values read from offset 0 until ``expected`` arrived and then ``quiet_s`` without more."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "isolation.level": isolation, "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        quiet_until = None
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m.value())
                quiet_until = None
            elif len(got) >= expected:
                quiet_until = quiet_until or time.monotonic() + quiet_s
                if time.monotonic() >= quiet_until:
                    break
        return got
    finally:
        c.close()


def _txn_start_offset(cluster: LocalCluster, topic: str) -> list[int]:
    from kafka import KafkaAdminClient
    from kafka.structs import TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)
    try:
        (state,) = admin.describe_producers([TopicPartition(topic, 0)]).values()
        return sorted(p.current_transaction_start_offset for p in state.active_producers)
    finally:
        admin.close()


def test_confluent_open_transaction_holds_read_committed_until_commit(cluster: LocalCluster) -> None:
    from confluent_kafka import Producer

    topic = _topic(cluster)
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": f"tx-{topic}"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=b"open-%d" % i, partition=0)
    p.flush(30)
    # open: read_uncommitted sees the records, read_committed stops at the transaction's start
    assert _confluent_read(cluster, topic, "read_uncommitted", 3) == [b"open-0", b"open-1", b"open-2"]
    assert _confluent_read(cluster, topic, "read_committed", 0) == []
    assert (_latest(cluster, topic, 1), _latest(cluster, topic, 0)) == (0, 3)
    assert _txn_start_offset(cluster, topic) == [0]
    p.commit_transaction(30)
    assert _confluent_read(cluster, topic, "read_committed", 3) == [b"open-0", b"open-1", b"open-2"]
    assert _latest(cluster, topic, 1) == 4  # past the COMMIT marker
    assert _txn_start_offset(cluster, topic) == [-1]
    # aborted, then committed: read_committed skips the aborted records
    p.begin_transaction()
    p.produce(topic, value=b"aborted", partition=0)
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce(topic, value=b"last", partition=0)
    p.commit_transaction(30)
    assert _confluent_read(cluster, topic, "read_committed", 4) == [b"open-0", b"open-1", b"open-2", b"last"]
    assert _confluent_read(cluster, topic, "read_uncommitted", 5) == [
        b"open-0", b"open-1", b"open-2", b"aborted", b"last"]


def _expected_after_abort_commit(read: list[bytes]) -> None:
    assert read == [b"c1", b"c2"], read


def test_kafka_python_transactional_producer_and_read_committed_consumer(cluster: LocalCluster) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import TopicPartition

    topic = _topic(cluster)
    p = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, transactional_id=f"kp-{topic}")
    try:
        p.init_transactions()
        p.begin_transaction()
        p.send(topic, b"c1", partition=0)
        p.commit_transaction()
        p.begin_transaction()
        p.send(topic, b"a1", partition=0)
        p.flush()
        p.abort_transaction()
        p.begin_transaction()
        p.send(topic, b"c2", partition=0)
        p.commit_transaction()
    finally:
        p.close()
    c = KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers, isolation_level="read_committed",
                      enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        c.assign([TopicPartition(topic, 0)])
        c.seek(TopicPartition(topic, 0), 0)
        _expected_after_abort_commit([m.value for m in c])
    finally:
        c.close()
    _expected_after_abort_commit(_confluent_read(cluster, topic, "read_committed", 2))


def test_aiokafka_transactional_producer_and_read_committed_consumer(cluster: LocalCluster) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = _topic(cluster)

    async def go() -> list[bytes]:
        p = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap_servers, transactional_id=f"ak-{topic}")
        await p.start()
        try:
            async with p.transaction():
                await p.send_and_wait(topic, b"c1", partition=0)
            await p.begin_transaction()
            await p.send_and_wait(topic, b"a1", partition=0)
            await p.abort_transaction()
            async with p.transaction():
                await p.send_and_wait(topic, b"c2", partition=0)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap_servers, isolation_level="read_committed",
                             enable_auto_commit=False)
        await c.start()
        try:
            tp = TopicPartition(topic, 0)
            c.assign([tp])
            c.seek(tp, 0)
            got: list[Any] = []
            deadline = time.monotonic() + 20
            while len(got) < 2 and time.monotonic() < deadline:
                batch = await c.getmany(tp, timeout_ms=500)
                got.extend(m.value for m in batch.get(tp, []))
            batch = await c.getmany(tp, timeout_ms=1000)  # nothing more may come
            got.extend(m.value for m in batch.get(tp, []))
            return got
        finally:
            await c.stop()

    _expected_after_abort_commit(asyncio.run(go()))
    _expected_after_abort_commit(_confluent_read(cluster, topic, "read_committed", 2))
