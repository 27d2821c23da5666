"""kafkalike's client against real Apache Kafka 3.9 brokers (ZooKeeper mode, 3 brokers).

Skipped unless KAFKALIKE_REFERENCE=1: it needs the Maven-fetched jars and three broker JVMs
(kafkalike.bench.reference_kafka). Checks version negotiation with a real broker, the admin
operations and their errors, keyed produce (acks=all, every codec) and consume, and that
kafka-python agrees on partitions, offsets, keys, values and headers.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import trio

from kafkalike.client import (AdminClient, KafkaClient, KafkaConnection, KafkaConsumer,
                              KafkaError, KafkaProducer, NewTopic, TopicPartition)
from kafkalike.client.admin import RESOURCE_BROKER, RESOURCE_TOPIC
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.records import decode_batches

REFERENCE = os.environ.get("KAFKALIKE_REFERENCE") == "1"
pytestmark = [
    pytest.mark.skipif(not REFERENCE, reason="needs Kafka 3.9 jars and 3 broker JVMs: "
                                             "set KAFKALIKE_REFERENCE=1"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running 3-broker Kafka 3.9 cluster in ZooKeeper mode; yields its bootstrap string.
    Stopped by pid afterwards."""
    from kafkalike.bench import reference_kafka as rk
    rk.fetch()
    hosts = [f"{rk.HOST_PREFIX}{i}" for i in (1, 2, 3)]
    port = rk.find_free_port(hosts, span=2)
    cluster = rk.ReferenceKafka(
        mode="zk", base_dir=Path(tmp_path_factory.mktemp("ref")) / "ref", port=port,
        controller_port=port + 1,
        zookeeper_port=rk.find_free_port([rk.ZOOKEEPER_HOST], span=1))
    try:
        cluster.up(fresh=True, timeout=240)
        yield cluster.bootstrap
    finally:
        cluster.down(timeout=60)


async def test_connection_negotiates_with_a_real_broker(kafka: str) -> None:
    """ApiVersions v3 with Kafka 3.9: each API at min(ours, theirs), including the
    ZooKeeper-era LeaderAndIsr / UpdateMetadata / StopReplica the controller channel sends."""
    host, port = kafka.split(",")[0].rsplit(":", 1)
    async with trio.open_nursery() as nursery:
        conn = await KafkaConnection.connect(host, int(port), nursery=nursery)
        assert conn.versions[ApiKey.API_VERSIONS] == 3
        assert conn.versions[ApiKey.METADATA] == 12
        assert conn.versions[ApiKey.PRODUCE] == 9
        for key in (ApiKey.LEADER_AND_ISR, ApiKey.UPDATE_METADATA, ApiKey.STOP_REPLICA):
            assert key in conn.broker_versions
        response = await conn.call(ApiKey.METADATA, topics=None)
        assert len(response.brokers) == 3
        await conn.aclose()


async def test_admin_operations_against_real_kafka(kafka: str) -> None:
    """Create (with configs and validate_only), errors, grow, describe, delete."""
    name = f"adm-{uuid.uuid4().hex[:6]}"
    async with AdminClient(kafka) as admin:
        desc = await admin.describe_cluster()
        assert sorted(desc.brokers) == [1, 2, 3] and desc.controller_id in desc.brokers
        await admin.create_topics([NewTopic(name, 3, 3, configs={"retention.ms": "3600000"})])
        with pytest.raises(KafkaError, match="TOPIC_ALREADY_EXISTS") as info:
            await admin.create_topics([NewTopic(name, 3, 3)])
        assert info.value.error_code == ErrorCode.topic_already_exists
        got = await admin.create_topics([NewTopic(f"{name}-rf", 1, 5)], raise_errors=False)
        assert got == {f"{name}-rf": ErrorCode.invalid_replication_factor}
        await admin.create_topics([NewTopic(f"{name}-v", 1, 1)], validate_only=True)
        assert f"{name}-v" not in await admin.list_topics()
        configs = await admin.describe_configs(RESOURCE_TOPIC, name, ["retention.ms"])
        assert configs["retention.ms"].value == "3600000"
        await admin.alter_configs(RESOURCE_TOPIC, name, {"retention.ms": None,
                                                         "segment.ms": "600000"})
        configs = await admin.describe_configs(RESOURCE_TOPIC, name,
                                               ["retention.ms", "segment.ms"])
        assert configs["retention.ms"].value == "604800000" and configs["retention.ms"].is_default
        assert configs["segment.ms"].value == "600000"
        broker_cfg = await admin.describe_configs(RESOURCE_BROKER, "1", ["broker.id"])
        assert broker_cfg["broker.id"].value == "1"
        await admin.create_partitions({name: 5})
        with trio.fail_after(30):
            while len((await admin.describe_topics([name]))[name].partitions) != 5:
                await trio.sleep(0.2)
        await admin.delete_topics([name])
        with trio.fail_after(30):
            while name in await admin.list_topics():
                await trio.sleep(0.2)


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_produce_and_consume_agree_with_real_clients(kafka: str, compression: str) -> None:
    """2,000 keyed records with headers, acks=all: kafkalike's consumer reads them back in
    order; librdkafka (confluent-kafka) reads the same partitions, offsets, keys, values and
    headers; kafka-python's producer, and librdkafka's with partitioner=murmur2_random,
    put each key on the partition kafkalike's producer chose."""
    topic = f"p-{compression}-{uuid.uuid4().hex[:6]}"
    n = 2000
    async with KafkaClient(kafka) as client:
        await AdminClient(client).create_topics([NewTopic(topic, 6, 3)])
        records = [(f"k{i % 97}".encode(), f"v{i}".encode(), [("i", str(i).encode())])
                   for i in range(n)]
        async with KafkaProducer(client, acks="all", compression_type=compression,
                                 linger_ms=5) as producer:
            metas = await producer.send_many(topic, records)
        consumer = KafkaConsumer(client, auto_offset_reset="earliest", fetch_max_wait_ms=100)
        consumer.assign([TopicPartition(topic, p) for p in range(6)])
        got = []
        with trio.fail_after(60):
            while len(got) < n:
                got.extend(await consumer.poll())
    ours = {(r.partition, r.offset): (r.key, r.value, r.headers) for r in got}
    assert len(ours) == n
    for (key, value, headers), meta in zip(records, metas):
        assert ours[(meta.partition, meta.offset)] == (key, value, tuple(headers))
    for p in range(6):
        offsets = [r.offset for r in got if r.partition == p]
        assert offsets == sorted(offsets)

    def real_clients() -> tuple[dict, list[int], list[int]]:
        import confluent_kafka as ck
        from kafka import KafkaProducer as KPProducer

        c = ck.Consumer({"bootstrap.servers": kafka, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
        c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(6)])
        seen = {}
        deadline = time.monotonic() + 60
        try:
            while len(seen) < n and time.monotonic() < deadline:
                msg = c.poll(1.0)
                if msg is None or msg.error() is not None:
                    continue
                seen[(msg.partition(), msg.offset())] = (msg.key(), msg.value(),
                                                         tuple(msg.headers() or ()))
        finally:
            c.close()
        prod = KPProducer(bootstrap_servers=kafka)
        kp_parts = [prod.send(topic, key=k, value=b"x").get(timeout=30).partition
                    for k, _v, _h in records[:50]]
        prod.close()
        ck_parts: list[int] = []
        ckp = ck.Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random"})
        for k, _v, _h in records[:50]:
            ckp.produce(topic, key=k, value=b"x",
                        on_delivery=lambda err, msg: ck_parts.append(msg.partition()))
            ckp.flush(30)
        return seen, kp_parts, ck_parts

    seen, kp_parts, ck_parts = await trio.to_thread.run_sync(real_clients)
    assert seen == ours
    assert kp_parts == [m.partition for m in metas[:50]]
    assert ck_parts == kp_parts


async def test_idempotent_producer_against_real_kafka(kafka: str) -> None:
    """Kafka accepts kafkalike's sequence-numbered batches: a raw Fetch (the replica
    fetcher's path) shows the producer id, epoch and contiguous sequences per partition."""
    topic = f"idem-{uuid.uuid4().hex[:6]}"
    async with KafkaClient(kafka) as client:
        await AdminClient(client).create_topics([NewTopic(topic, 2, 3)])
        async with KafkaProducer(client, acks="all", enable_idempotence=True,
                                 linger_ms=2) as producer:
            metas = await producer.send_many(topic, [(f"k{i}".encode(), b"v") for i in range(500)])
            pid, epoch = producer.producer_id, producer.producer_epoch
        assert pid >= 0 and epoch >= 0
        for partition in (0, 1):
            conn = await client.leader_connection(topic, partition)
            response = await conn.call(
                ApiKey.FETCH, replica_id=-1, max_wait=100, min_bytes=1, max_bytes=10_000_000,
                topics=[{"topic": topic, "partitions": [
                    {"partition": partition, "fetch_offset": 0,
                     "partition_max_bytes": 10_000_000}]}])
            batches = decode_batches(response.responses[0].partitions[0].records)
            assert {(b.producer_id, b.producer_epoch) for b in batches} == {(pid, epoch)}
            expected_seq = 0
            for b in batches:
                assert b.base_sequence == expected_seq
                expected_seq += len(b.records)
            assert expected_seq == sum(1 for m in metas if m.partition == partition)
