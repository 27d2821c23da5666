"""Real Kafka clients against a 3-broker kafkalike cluster (separate broker processes, the
real controller, a 3-node ZooKeeper): kafka-python, confluent-kafka (librdkafka), aiokafka
and kcat create or auto-create topics, produce keyed records with headers and every
compression codec, and read them all back with per-partition order intact."""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict

import pytest

from kafkalike.cluster.local_cluster import LocalCluster

N = 10_000


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    """Read ``expected`` records from the beginning of every partition with kafka-python
    (no consumer group)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    got: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
    finally:
        consumer.close()
    return got


def _consume_all_aio(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    """Read ``expected`` records from the beginning with aiokafka (no group; it decodes every
    codec through cramjam)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    async def run() -> list:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        got: list = []
        try:
            deadline = time.monotonic() + timeout_s
            while len(got) < expected and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(records)
        finally:
            await consumer.stop()
        return got

    return asyncio.run(run())


def _partition_count(cluster: LocalCluster, broker_id: int, topic: str) -> int:
    """How many partitions of ``topic`` one broker's metadata cache lists (a Metadata request
    on a connection to that broker alone; kafka-python's admin picks a broker per call)."""
    import trio

    from kafkalike.client.connection import KafkaConnection
    from kafkalike.protocol.api_keys import ApiKey

    async def ask() -> int:
        async with KafkaConnection.open(cluster.broker_host(broker_id), cluster.base_port) as conn:
            response = await conn.call(ApiKey.METADATA, topics=[{"name": topic}],
                                        allow_auto_topic_creation=False)  # polling must not re-create it
        return sum(len(t.partitions) for t in response.topics if t.name == topic)

    return trio.run(ask)


def _wait_until_every_broker_lists(cluster: LocalCluster, topic: str, partitions: int,
                                   timeout_s: float = 30.0) -> None:
    """Wait until every broker's metadata lists ``partitions`` partitions of ``topic`` (0: the
    topic is gone). Each broker applies the controller's UpdateMetadata on its own schedule,
    as in Kafka, so one broker can answer the new count while another still answers the old:
    the assertion is on what each broker was seen to answer, not on a fresh read elsewhere."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = {b: _partition_count(cluster, b, topic) for b in cluster.broker_ids}
        if set(seen.values()) == {partitions}:
            break
        time.sleep(0.2)
    assert seen == {b: partitions for b in cluster.broker_ids}


def _check_order(messages: list) -> None:
    """Per partition: offsets strictly increase; per key: values in the order produced."""
    by_partition = defaultdict(list)
    for m in messages:
        by_partition[m.partition].append(m.offset)
    for offsets in by_partition.values():
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    by_key = defaultdict(list)
    for m in messages:
        by_key[m.key].append(int(m.value.split(b"-")[1]))
    for seq in by_key.values():
        assert seq == sorted(seq)


def test_kafka_python_create_produce_consume(kafka_cluster: LocalCluster) -> None:
    """kafka-python: CreateTopics through the admin client, 10,000 keyed records with headers
    (acks=1), all read back with the same keys, values, headers and per-key order."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    bootstrap = kafka_cluster.bootstrap_servers
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic("kp-orders", 6, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    futures = [producer.send("kp-orders", key=f"k{i % 97}".encode(), value=f"v-{i}".encode(),
                             headers=[("seq", str(i).encode())]) for i in range(N)]
    producer.flush()
    metas = [f.get(timeout=30) for f in futures]
    producer.close()
    assert len({m.partition for m in metas}) == 6
    got = _consume_all(bootstrap, "kp-orders", N)
    assert len(got) == N
    assert sorted((m.key, m.value, tuple(m.headers)) for m in got) == sorted(
        (f"k{i % 97}".encode(), f"v-{i}".encode(), (("seq", str(i).encode()),)) for i in range(N))
    _check_order(got)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_confluent_kafka_compressed_batches_pass_through(kafka_cluster: LocalCluster, codec: str) -> None:
    """librdkafka producer (auto-created topic, acks=all on RF 1) with each codec; the batches
    are stored as sent and a different client decodes them."""
    from confluent_kafka import Producer

    topic = f"ck-{codec}"
    bootstrap = kafka_cluster.bootstrap_servers
    producer = Producer({"bootstrap.servers": bootstrap, "compression.codec": codec, "acks": "all",
                         "linger.ms": 20})
    errors: list = []
    n = 2000
    for i in range(n):
        producer.produce(topic, key=f"k{i % 13}".encode(), value=f"v-{i}".encode(),
                         on_delivery=lambda err, msg: errors.append(err) if err else None)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []
    got = _consume_all_aio(bootstrap, topic, n)
    assert sorted(m.value for m in got) == sorted(f"v-{i}".encode() for i in range(n))
    _check_order(got)


def test_aiokafka_round_trip(kafka_cluster: LocalCluster) -> None:
    """aiokafka producer and consumer (no group) on an auto-created topic."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    bootstrap = kafka_cluster.bootstrap_servers
    n = 2000

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
        await producer.start()
        try:
            for i in range(n):
                await producer.send("aio-topic", key=f"k{i % 7}".encode(), value=f"v-{i}".encode())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    got = _consume_all_aio(bootstrap, "aio-topic", n)
    assert sorted(m.value for m in got) == sorted(f"v-{i}".encode() for i in range(n))
    _check_order(got)


def test_kcat_lists_brokers_and_round_trips(kafka_cluster: LocalCluster) -> None:
    """kcat -L shows the three brokers, the controller and a leader per partition; kcat -P /
    -C (librdkafka's simple consumer) round-trip keyed lines."""
    bootstrap = kafka_cluster.bootstrap_servers
    lines = "\n".join(f"k{i % 5}:v-{i}" for i in range(500)) + "\n"
    subprocess.run(["kcat", "-b", bootstrap, "-t", "kcat-topic", "-P", "-K:", "-z", "lz4"], input=lines,
                   text=True, check=True, timeout=60)
    listing = subprocess.run(["kcat", "-b", bootstrap, "-L", "-t", "kcat-topic"], capture_output=True,
                             text=True, check=True, timeout=60).stdout
    assert " 3 brokers:" in listing and "(controller)" in listing
    for b in kafka_cluster.broker_ids:
        assert f"broker {b} at {kafka_cluster.broker_host(b)}" in listing
    assert "leader -1" not in listing and "partition 0, leader" in listing
    out = subprocess.run(["kcat", "-b", bootstrap, "-t", "kcat-topic", "-C", "-o", "beginning", "-e",
                          "-f", "%k:%s\n"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert sorted(out.split()) == sorted(lines.split())


def test_kafka_python_admin_configs_partitions_delete(kafka_cluster: LocalCluster) -> None:
    """kafka-python's admin client: DescribeConfigs, AlterConfigs, CreatePartitions and
    DeleteTopics against the cluster, each visible in the next metadata."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers)
    try:
        admin.create_topics([NewTopic("adm", 1, 2, topic_configs={"retention.ms": "3600000"})])
        def topic_configs() -> dict:
            desc = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "adm")], config_filter="all")
            return desc["topic"]["adm"]

        entries = topic_configs()
        assert entries["retention.ms"]["value"] == "3600000"
        assert entries["cleanup.policy"]["value"] == "delete"
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "adm", configs={"retention.ms": "7200000"})])
        assert topic_configs()["retention.ms"]["value"] == "7200000"
        admin.create_partitions({"adm": NewPartitions(total_count=4)})
        _wait_until_every_broker_lists(kafka_cluster, "adm", 4)
        assert len(admin.describe_topics(["adm"])[0]["partitions"]) == 4
        admin.delete_topics(["adm"], timeout_ms=30000)
        _wait_until_every_broker_lists(kafka_cluster, "adm", 0)
        assert "adm" not in admin.list_topics()
    finally:
        admin.close()


@pytest.mark.skipif(__import__("os").environ.get("KAFKALIKE_REFERENCE") != "1",
                    reason="needs the Maven-fetched Kafka 3.9 jars: KAFKALIKE_REFERENCE=1")
def test_kafka_java_tools_produce_and_consume(kafka_cluster: LocalCluster) -> None:
    """Kafka 3.9's own Java clients: ProducerPerformance (idempotent by default, acks=all) and
    the console consumer in a consumer group read every record back."""
    from kafkalike.bench.reference_kafka import LIB_DIR, fetch

    fetch()
    bootstrap = kafka_cluster.bootstrap_servers

    def java(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["java", "-cp", f"{LIB_DIR}/*", *args], capture_output=True, text=True,
                              timeout=180)

    perf = java("org.apache.kafka.tools.ProducerPerformance", "--topic", "java-topic", "--num-records", "20000",
                "--record-size", "100", "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}",
                "acks=all")
    assert perf.returncode == 0, perf.stderr[-2000:]
    assert "20000 records sent" in perf.stdout
    consumer = java("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bootstrap,
                    "--topic", "java-topic", "--from-beginning", "--max-messages", "20000", "--timeout-ms", "60000",
                    "--group", "java-group")
    assert consumer.returncode == 0, consumer.stderr[-2000:]
    assert len(consumer.stdout.splitlines()) == 20000
