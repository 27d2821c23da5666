"""Failover with real broker processes: RF 3, min.insync.replicas 2, acks=all while the
partition leader is killed with -9 (nothing acknowledged is lost or duplicated, the new
leader comes from the old ISR with leader_epoch + 1, the returning broker catches up and
rejoins the ISR), and two brokers down (NOT_ENOUGH_REPLICAS, nothing lost on return).

In the default run (about a minute: each kill waits out a 4 s ZooKeeper session)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable

import pytest

from kafkalike.cluster.local_cluster import LocalCluster

OVERRIDES = {"zookeeper.session.timeout.ms": "4000", "min.insync.replicas": "2",
             "replica.lag.time.max.ms": "3000", "replica.fetch.wait.max.ms": "100"}


def _state(cluster: LocalCluster, topic: str) -> dict:
    """/brokers/topics/<t>/partitions/0/state as Kafka writes it."""
    import trio

    from kafkalike.coordination import ZooKeeperClient

    async def read() -> dict:
        async with ZooKeeperClient(cluster.zk_connect, session_timeout_ms=4000) as zk:
            await zk.sync("/")
            data, _ = await zk.get(f"/brokers/topics/{topic}/partitions/0/state")
            return json.loads(data)

    return trio.run(read)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _read_all(bootstrap: str, topic: str, expected: int) -> list:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    got: list = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
        for records in consumer.poll(timeout_ms=1000).values():  # anything beyond: duplicates
            got.extend(records)
    finally:
        consumer.close()
    return got


def _create(cluster: LocalCluster, topic: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, 1, 3)], timeout_ms=30000)
    finally:
        admin.close()
    _wait(lambda: len(_state(cluster, topic)["isr"]) == 3, 30, "ISR of 3")


def test_leader_kill_loses_nothing_and_broker_rejoins(make_cluster: Callable[..., LocalCluster]) -> None:
    """Idempotent acks=all producer (librdkafka) across a kill -9 of the leader."""
    from confluent_kafka import Producer

    cluster = make_cluster(3, OVERRIDES)
    topic = "failover"
    _create(cluster, topic)
    before = _state(cluster, topic)
    leader = before["leader"]
    acked: list[tuple[bytes, bytes]] = []
    failed: list = []

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        (failed if err else acked).append(err or (msg.key(), msg.value()))

    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2, "message.timeout.ms": 60000})
    for round_ in range(40):
        if round_ == 10:
            assert cluster.kill_broker(leader)
        for i in range(50):
            producer.produce(topic, key=f"k{i % 7}".encode(), value=f"{round_}-{i}".encode(),
                             on_delivery=on_delivery)
        producer.flush(60)
    assert producer.flush(60) == 0
    assert failed == [] and len(acked) == 2000

    after = _state(cluster, topic)
    assert after["leader"] != leader and after["leader"] in before["isr"]
    assert after["leader_epoch"] >= before["leader_epoch"] + 1
    assert leader not in after["isr"]

    got = _read_all(cluster.bootstrap_servers, topic, len(acked))
    values = [m.value for m in got]
    assert sorted(values) == sorted(v for _, v in acked)  # every acked record exactly once
    by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for m in got:
        by_key[m.key].append(m.value)
    acked_by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for k, v in acked:
        acked_by_key[k].append(v)
    assert by_key == acked_by_key  # per-key order = acknowledgement order

    cluster.start_broker(leader)
    _wait(lambda: sorted(_state(cluster, topic)["isr"]) == [1, 2, 3], 60, "the old leader back in the ISR")


def test_two_brokers_down_refuses_acks_all_and_loses_nothing(make_cluster: Callable[..., LocalCluster]) -> None:
    """With only one replica alive, acks=all gets NOT_ENOUGH_REPLICAS; after the two return
    and rejoin, every record acknowledged before is still there."""
    from kafka import KafkaProducer
    from kafka.errors import NotEnoughReplicasError

    cluster = make_cluster(3, OVERRIDES)
    topic = "two-down"
    _create(cluster, topic)
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all", retries=0)
    for i in range(100):
        producer.send(topic, value=f"before-{i}".encode()).get(timeout=30)
    state = _state(cluster, topic)
    survivor = state["leader"]
    down = [b for b in cluster.broker_ids if b != survivor]
    for b in down:
        assert cluster.kill_broker(b)
    _wait(lambda: _state(cluster, topic)["isr"] == [survivor], 30, "ISR shrunk to the survivor")
    with pytest.raises(NotEnoughReplicasError):
        producer.send(topic, value=b"refused").get(timeout=30)
    producer.close()
    for b in down:
        cluster.start_broker(b)
    _wait(lambda: sorted(_state(cluster, topic)["isr"]) == [1, 2, 3], 60, "ISR of 3 again")
    got = _read_all(cluster.bootstrap_servers, topic, 100)
    assert [m.value for m in got] == [f"before-{i}".encode() for i in range(100)]
