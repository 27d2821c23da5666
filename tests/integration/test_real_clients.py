"""Real Kafka clients against a 3-broker kafkalike cluster of real processes (issue 5).

Each client library creates (or auto-creates) a topic, produces 10,000 keyed records with
headers and acks=1, consumes them all from the beginning, and must find the same keys, values,
headers and per-partition order. Compressed batches of every codec pass through unchanged.
"""

from __future__ import annotations

import collections
import subprocess
import time
import uuid

import pytest

from kafkalike.cluster.local_cluster import LocalCluster

N = 10_000
KEYS = 50


def expected_records(tag: str) -> list[tuple[bytes, bytes]]:
    return [(f"key-{i % KEYS}".encode(), f"{tag}-value-{i}".encode()) for i in range(N)]


def check_consumed(sent: list[tuple[bytes, bytes]], got: list[tuple[int, int, bytes, bytes, list]]) -> None:
    """Same multiset of (key, value); per key, values in send order; offsets increase per partition;
    every record carries the header it was sent with."""
    assert len(got) == len(sent), f"consumed {len(got)} of {len(sent)}"
    assert sorted((k, v) for _, _, k, v, _ in got) == sorted(sent)
    by_key: dict[bytes, list[bytes]] = collections.defaultdict(list)
    last_offset: dict[int, int] = {}
    key_partition: dict[bytes, int] = {}
    for partition, offset, key, value, headers in got:
        by_key[key].append(value)
        assert offset > last_offset.get(partition, -1)
        last_offset[partition] = offset
        assert key_partition.setdefault(key, partition) == partition, "one key landed on two partitions"
        assert [(h[0], bytes(h[1])) for h in headers] == [("source", key)]
    sent_by_key: dict[bytes, list[bytes]] = collections.defaultdict(list)
    for k, v in sent:
        sent_by_key[k].append(v)
    assert by_key == sent_by_key


@pytest.fixture(scope="module")
def cluster(kafka_cluster: LocalCluster) -> LocalCluster:
    return kafka_cluster


def test_kafka_python_produces_and_consumes_10k_keyed_records(cluster: LocalCluster) -> None:
    """kafka-python 3: auto-created topic, idempotent producer (its default), acks=1."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = f"kp-{uuid.uuid4().hex[:8]}"
    sent = expected_records("kp")
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks=1, linger_ms=5)
    futures = [producer.send(topic, key=k, value=v, headers=[("source", k)]) for k, v in sent]
    producer.flush(60)
    assert all(f.get(timeout=30).offset >= 0 for f in futures)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=10_000)
    parts = sorted(consumer.partitions_for_topic(topic) or [])
    assert parts == [0]  # auto-created with num.partitions=1
    consumer.assign([TopicPartition(topic, p) for p in parts])
    got = [(m.partition, m.offset, m.key, m.value, m.headers) for m in consumer]
    consumer.close()
    check_consumed(sent, got)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_confluent_kafka_round_trips_every_compression_codec(cluster: LocalCluster, codec: str) -> None:
    """librdkafka (confluent-kafka) on a 6-partition topic created through the admin API."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"ck-{codec}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])[topic].result(30)
    sent = expected_records(codec)
    errors: list = []
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "1",
                         "compression.type": codec, "linger.ms": 5})
    for k, v in sent:
        producer.produce(topic, key=k, value=v, headers=[("source", k)],
                         on_delivery=lambda err, msg: errors.append(err) if err else None)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []

    consumer = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": f"g-{topic}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < N and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            got.append((m.partition(), m.offset(), m.key(), m.value(), m.headers() or []))
    consumer.close()
    check_consumed(sent, got)
    assert len({p for p, *_ in got}) > 1  # keys spread over partitions


async def test_aiokafka_produces_and_consumes_10k_keyed_records(cluster: LocalCluster) -> None:
    """aiokafka (asyncio, run in a thread from this trio test)."""
    import asyncio

    import trio

    topic = f"ak-{uuid.uuid4().hex[:8]}"
    sent = expected_records("ak")

    async def run() -> list:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks=1, linger_ms=5)
        await producer.start()
        try:
            batch = [await producer.send(topic, key=k, value=v, headers=[("source", k)]) for k, v in sent]
            await asyncio.gather(*batch)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap_servers,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            parts = sorted(await consumer._client._wait_on_metadata(topic) or [])  # noqa: SLF001
            consumer.assign([TopicPartition(topic, p) for p in parts])
            await consumer.seek_to_beginning()
            out: list = []
            deadline = asyncio.get_running_loop().time() + 60
            while len(out) < N and asyncio.get_running_loop().time() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    out += [(m.partition, m.offset, m.key, m.value, list(m.headers)) for m in records]
            return out
        finally:
            await consumer.stop()

    got = await trio.to_thread.run_sync(lambda: asyncio.run(run()))
    check_consumed(sent, got)


def test_kcat_lists_brokers_and_leaders_and_round_trips(cluster: LocalCluster) -> None:
    """kcat -L shows all three brokers and each partition's leader; -P/-C round-trip lines."""
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"kc-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])
    admin.close()
    deadline = time.monotonic() + 30
    while True:
        listing = subprocess.run(["kcat", "-L", "-b", cluster.broker_address(1), "-t", topic],
                                 capture_output=True, text=True, timeout=30).stdout
        if listing.count("leader ") == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "3 brokers:" in listing
    for i in cluster.broker_ids:
        assert f"broker {i} at {cluster.broker_address(i)}" in listing
    for p in range(3):
        assert f"partition {p}, leader " in listing and "replicas: " in listing
    lines = [f"line-{i}" for i in range(500)]
    subprocess.run(["kcat", "-P", "-b", cluster.bootstrap_servers, "-t", topic, "-p", "0"],
                   input="\n".join(lines) + "\n", text=True, check=True, timeout=60)
    out = subprocess.run(["kcat", "-C", "-b", cluster.bootstrap_servers, "-t", topic, "-p", "0",
                          "-o", "beginning", "-e", "-q"], capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines() == lines
