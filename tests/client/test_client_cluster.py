"""KafkaClient, AdminClient, KafkaProducer and KafkaConsumer against real kafkalike brokers.

One module-scoped 3-broker LocalCluster (``kafka_cluster``: separate broker processes, the real
controller, the session's ZooKeeper ensemble); each test uses its own topics. Covered:
bootstrap, leader routing, admin calls and their errors, NOT_CONTROLLER after a controller
move, keyed partitioning, compression, acks, MESSAGE_TOO_LARGE, long polling, offset resets,
leader moves (a real /admin/reassign_partitions) for producer and consumer, request
splitting, cut fetch responses, Metadata refresh, buffer memory, and delivery timeout for a
partition without a leader (its only replica's broker stopped). Behaviour only a misbehaving broker
shows (lost responses, injected sequence errors) is in test_client_misbehaving_broker.py.
"""

from __future__ import annotations

import socket
import uuid

import pytest
import trio
from kafka.partitioner.default import murmur2 as kafka_python_murmur2
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from kafkalike.client import (AdminClient, KafkaClient, KafkaConsumer, KafkaError,
                              KafkaProducer, NewTopic, NoBrokersAvailableError,
                              RequestTimeoutError, TopicPartition)
from kafkalike.client.admin import RESOURCE_TOPIC
from kafkalike.client.connection import KafkaConnection
from kafkalike.client.kafka_client import EARLIEST, LATEST, parse_bootstrap
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.coordination import zk_data as zd
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.record_batch import valid_prefix_length
from kafkalike.protocol.records import build_records_batch, decode_batches

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _wait_leaders(client: KafkaClient, topic: str, partitions: int,
                        leaders: list[int] | None = None) -> None:
    """Refresh ``client``'s Metadata until every partition has a leader (the given ones)."""
    with trio.fail_after(60):
        while True:
            await client.refresh_metadata([topic])
            got = [client.cluster.leader_for(topic, p) for p in range(partitions)]
            if all(g is not None and g >= 0 for g in got) and (leaders is None or got == leaders):
                return
            await trio.sleep(0.1)


async def _create(cluster: LocalCluster, topic: str, partitions: int = 1, *,
                  assignment: dict[int, list[int]] | None = None,
                  configs: dict[str, str] | None = None) -> None:
    """Create ``topic`` (replication factor 1, or ``assignment``) and wait for its leaders."""
    async with KafkaClient(cluster.bootstrap_servers) as client:
        new = NewTopic(topic, replica_assignment=assignment, configs=configs or {}) if assignment \
            else NewTopic(topic, partitions, 1, configs=configs or {})
        await AdminClient(client).create_topics([new])
        await _wait_leaders(client, topic, len(assignment) if assignment else partitions)


def _zk(cluster: LocalCluster, action: str, path: str, data: bytes = b"") -> bytes | None:
    """One ZooKeeper call in the cluster's chroot (a thread: kazoo blocks): get/create/delete."""
    zk = KazooClient(hosts=cluster.zk_connect)
    zk.start(timeout=15)
    try:
        if action == "get":
            try:
                return zk.get(path)[0]
            except NoNodeError:
                return None
        if action == "create":
            zk.create(path, data)
        else:
            zk.delete(path)
        return None
    finally:
        zk.stop()
        zk.close()


async def _move_leader(cluster: LocalCluster, topic: str, to: int) -> None:
    """Reassign ``topic``-0 to broker ``to`` alone (/admin/reassign_partitions, as
    kafka-reassign-partitions.sh writes it) and wait until a separate client sees ``to`` lead
    and the reassignment finished (the old replica removed)."""
    data = zd.PartitionReassignment({zd.TopicPartition(topic, 0): (to,)}).to_json()
    await trio.to_thread.run_sync(_zk, cluster, "create", zd.REASSIGN_PARTITIONS_PATH, data)
    async with KafkaClient(cluster.bootstrap_servers) as watcher:
        await _wait_leaders(watcher, topic, 1, [to])
    with trio.fail_after(60):
        while await trio.to_thread.run_sync(_zk, cluster, "get", zd.REASSIGN_PARTITIONS_PATH):
            await trio.sleep(0.2)


async def _read(client: KafkaClient, partitions: list, n: int, *, fetch_max_wait_ms: int = 10) -> list:
    """At least ``n`` records read from the start of ``partitions`` (TopicPartitions or
    (topic, partition) pairs) by a new assigned KafkaConsumer; fails after 30 s."""
    consumer = KafkaConsumer(client, auto_offset_reset="earliest", fetch_max_wait_ms=fetch_max_wait_ms)
    consumer.assign(partitions)
    got: list = []
    with trio.fail_after(30):
        while len(got) < n:
            got.extend(await consumer.poll())
    return got


def _stored_batches(cluster: LocalCluster, broker: int, topic: str) -> list:
    """The batches in the first segment of ``topic``-0 on ``broker``'s disk, decoded."""
    data = (cluster.broker_dir(broker) / "logs" / f"{topic}-0" / "00000000000000000000.log").read_bytes()
    end, _ = valid_prefix_length(data)
    return decode_batches(data[:end])


def test_parse_bootstrap_accepts_kafkas_forms() -> None:
    """Comma lists, default port 9092, bracketed IPv6; bad entries are ValueErrors."""
    assert parse_bootstrap("a:1, b") == [("a", 1), ("b", 9092)]
    assert parse_bootstrap(["[::1]:9093"]) == [("::1", 9093)]
    with pytest.raises(ValueError, match="port is not a number"):
        parse_bootstrap("a:x")
    with pytest.raises(ValueError, match="no bootstrap servers"):
        parse_bootstrap(" , ")


async def test_bootstrap_skips_dead_servers_and_learns_the_cluster(kafka_cluster: LocalCluster) -> None:
    """A refused first bootstrap server is skipped; Metadata gives brokers, controller,
    cluster id and partition leaders, and leader_connection() reaches the leader."""
    topic = _name("boot")
    await _create(kafka_cluster, topic, assignment={0: [3], 1: [1], 2: [2]})
    dead = f"127.0.0.1:{free_port()}"
    async with KafkaClient([dead, *kafka_cluster.bootstrap_servers.split(",")]) as client:
        await _wait_leaders(client, topic, 3)
        assert sorted(client.cluster.brokers) == [1, 2, 3]
        assert client.cluster.controller_id in (1, 2, 3)
        assert client.cluster.cluster_id and len(client.cluster.cluster_id) == 22
        assert [client.cluster.leader_for(topic, p) for p in range(3)] == [3, 1, 2]
        conn = await client.leader_connection(topic, 0)
        assert (conn.host, conn.port) == (kafka_cluster.broker_host(3), kafka_cluster.base_port)
        stats = client.statistics()
        assert stats.brokers == (1, 2, 3) and stats.controller_id == client.cluster.controller_id
        assert 3 in stats.connections


async def test_bootstrap_with_no_live_server_raises() -> None:
    """Only dead bootstrap servers: NoBrokersAvailableError naming them."""
    port = free_port()
    with pytest.raises(NoBrokersAvailableError, match=rf"127\.0\.0\.1:{port}"):
        async with KafkaClient([f"127.0.0.1:{port}"], connect_timeout_ms=2000):
            pass


async def test_admin_config_errors_cluster_and_delete(kafka_cluster: LocalCluster) -> None:
    """alter_configs with None restores the default; a per-resource error comes back at once
    (not retried); DescribeCluster names the controller; DeleteTopics removes the topic."""
    topic = _name("adm")
    await _create(kafka_cluster, topic, 2, configs={"retention.ms": "5000"})
    async with AdminClient(kafka_cluster.bootstrap_servers) as admin:
        await admin.alter_configs(RESOURCE_TOPIC, topic, {"retention.ms": None,
                                                          "segment.bytes": "1048576"})
        with trio.fail_after(30):
            while True:
                configs = await admin.describe_configs(RESOURCE_TOPIC, topic)
                if configs["segment.bytes"].value == "1048576":
                    break
                await trio.sleep(0.2)
        assert configs["retention.ms"].value == "604800000"  # Kafka's default again
        with trio.fail_after(5):  # a per-resource error is an answer, not retried
            with pytest.raises(KafkaError, match=r"describe_configs zz-\w+: UNKNOWN_TOPIC_OR_PARTITION"):
                await admin.describe_configs(RESOURCE_TOPIC, _name("zz"))
        desc = await admin.describe_cluster()
        assert sorted(desc.brokers) == [1, 2, 3] and desc.controller_id in desc.brokers
        with trio.fail_after(30):  # Metadata may lag the controller (UpdateMetadata)
            while topic not in await admin.list_topics():
                await trio.sleep(0.2)
        await admin.delete_topics([topic])
        with trio.fail_after(30):
            while topic in await admin.list_topics():
                await trio.sleep(0.2)


async def test_keyed_records_land_where_kafkas_partitioner_puts_them(kafka_cluster: LocalCluster) -> None:
    """Keys go to murmur2(key) mod partitions (kafka-python agrees), offsets are dense per
    partition, requests are batched, and consuming from the beginning returns every record."""
    topic = _name("k")
    await _create(kafka_cluster, topic, 5)
    async with KafkaClient(kafka_cluster.bootstrap_servers) as client:
        async with KafkaProducer(client, linger_ms=5) as producer:
            records = [(f"key-{i % 37}".encode(), f"value-{i}".encode(),
                        [("h", str(i).encode())]) for i in range(400)]
            metas = await producer.send_many(topic, records)
            stats = producer.statistics()
            assert (stats.records_acked, stats.records_waiting, stats.records_failed) == (400, 0, 0)
            assert stats.requests_sent < 100  # batched, not one request per record
        per_partition: dict[int, list[int]] = {}
        for (key, _v, _h), meta in zip(records, metas):
            assert meta.partition == (kafka_python_murmur2(key) & 0x7FFFFFFF) % 5
            per_partition.setdefault(meta.partition, []).append(meta.offset)
        for offsets in per_partition.values():
            assert offsets == list(range(len(offsets)))
        got = await _read(client, [TopicPartition(topic, p) for p in range(5)], 400, fetch_max_wait_ms=50)
        assert len(got) == 400
        by_value = {r.value: r for r in got}
        for i, (key, value, _headers) in enumerate(records):
            r = by_value[value]
            assert r.key == key and r.headers == (("h", str(i).encode()),)
            assert r.partition == metas[i].partition and r.offset == metas[i].offset


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
async def test_compressed_batches_round_trip(kafka_cluster: LocalCluster, compression: str) -> None:
    """The producer writes batches with the chosen codec (as stored on the leader's disk);
    the consumer decodes them."""
    topic = _name("z")
    await _create(kafka_cluster, topic, assignment={0: [2]})
    async with KafkaClient(kafka_cluster.bootstrap_servers) as client:
        async with KafkaProducer(client, compression_type=compression, linger_ms=20) as producer:
            await producer.send_many(topic, [(None, b"x" * 100 + bytes([i])) for i in range(50)])
        batches = _stored_batches(kafka_cluster, 2, topic)
        assert {b.compression for b in batches} == {
            {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[compression]}
        got = await _read(client, [(topic, 0)], 50)
        assert [r.value[-1] for r in got] == list(range(50))


async def test_acks_0_produces_without_offsets(kafka_cluster: LocalCluster) -> None:
    """acks=0: the record arrives but its metadata carries offset -1."""
    topic = _name("q")
    await _create(kafka_cluster, topic)
    async with KafkaClient(kafka_cluster.bootstrap_servers) as client:
        async with KafkaProducer(client, acks=0) as producer:
            meta = await producer.send(topic, b"v", key=b"k")
            assert meta.offset == -1 and meta.partition == 0
        tp = TopicPartition(topic, 0)
        with trio.fail_after(10):
            while (await client.list_offsets({tp: LATEST}))[tp].offset != 1:
                await trio.sleep(0.05)


async def test_producer_retries_after_the_leader_moves(kafka_cluster: LocalCluster) -> None:
    """The partition is reassigned from broker 1 to broker 2 behind the producer's back:
    NOT_LEADER_OR_FOLLOWER from the old leader, Metadata refreshed, the batch written once on
    the new leader with its records in order."""
    topic = _name("m")
    await _create(kafka_cluster, topic, assignment={0: [1]})
    async with KafkaClient(kafka_cluster.bootstrap_servers, retry_backoff_ms=10) as client:
        async with KafkaProducer(client, retry_backoff_ms=10) as producer:
            await producer.send(topic, b"first")
            assert client.cluster.leader_for(topic, 0) == 1
            await _move_leader(kafka_cluster, topic, 2)
            assert client.cluster.leader_for(topic, 0) == 1  # still the stale view
            metas = await producer.send_many(topic, [(None, b"a"), (None, b"b")])
            assert [m.offset for m in metas] == [1, 2]
            assert producer.statistics().retries >= 1
            assert client.cluster.leader_for(topic, 0) == 2
        got = await _read(client, [(topic, 0)], 3)
        assert [r.value for r in got] == [b"first", b"a", b"b"]


async def test_consumer_follows_a_leader_change(kafka_cluster: LocalCluster) -> None:
    """The partition moves from broker 1 to 3 after the consumer learned its leader: the
    next polls get NOT_LEADER_OR_FOLLOWER (or an empty answer), refresh Metadata, and read
    the new leader."""
    topic = _name("f")
    await _create(kafka_cluster, topic, assignment={0: [1]})
    async with KafkaClient(kafka_cluster.bootstrap_servers, retry_backoff_ms=10) as client:
        async with KafkaProducer(client) as producer:
            await producer.send(topic, b"one")
        consumer = KafkaConsumer(client, auto_offset_reset="earliest", fetch_max_wait_ms=10)
        consumer.assign([(topic, 0)])
        first = []
        with trio.fail_after(30):
            while not first:
                first = await consumer.poll()
        assert [r.value for r in first] == [b"one"]
        await _move_leader(kafka_cluster, topic, 3)
        async with KafkaProducer(kafka_cluster.bootstrap_servers) as producer:
            await producer.send(topic, b"two")
        got = []
        with trio.fail_after(30):
            while not got:
                got = await consumer.poll()
        assert [r.value for r in got] == [b"two"]
        assert client.cluster.leader_for(topic, 0) == 3


async def test_producer_gives_up_on_a_non_retriable_error(kafka_cluster: LocalCluster) -> None:
    """A batch above the topic's max.message.bytes fails with MESSAGE_TOO_LARGE (not
    retried); the next small record is written at offset 0."""
    topic = _name("e")
    await _create(kafka_cluster, topic, configs={"max.message.bytes": "500"})
    async with KafkaProducer(kafka_cluster.bootstrap_servers) as producer:
        with pytest.raises(KafkaError, match=rf"produce to {topic}-0: MESSAGE_TOO_LARGE"):
            await producer.send(topic, b"b" * 1000)
        assert producer.statistics().retries == 0
        meta = await producer.send(topic, b"small")
        assert meta.offset == 0


async def test_idempotent_batch_failure_starts_a_new_producer_id(kafka_cluster: LocalCluster) -> None:
    """A sent idempotent batch that fails for good (MESSAGE_TOO_LARGE) leaves a sequence gap;
    the producer takes a new producer id so the next record is accepted, not refused as
    OUT_OF_ORDER_SEQUENCE_NUMBER."""
    topic = _name("gap")
    await _create(kafka_cluster, topic, configs={"max.message.bytes": "500"})
    async with KafkaProducer(kafka_cluster.bootstrap_servers, acks="all",
                             enable_idempotence=True) as producer:
        await producer.send(topic, b"a")
        first_id = producer.producer_id
        with pytest.raises(KafkaError, match="MESSAGE_TOO_LARGE"):
            await producer.send(topic, b"b" * 1000)
        meta = await producer.send(topic, b"c")
        assert meta.offset == 1
        assert producer.producer_id >= 0 and producer.producer_id != first_id


async def test_producer_to_an_invalid_topic_raises(kafka_cluster: LocalCluster) -> None:
    """A topic the broker cannot create (an illegal name) is a KafkaError naming the error."""
    async with KafkaProducer(kafka_cluster.bootstrap_servers, max_block_ms=3000) as producer:
        with pytest.raises(KafkaError, match="INVALID_TOPIC_EXCEPTION|UNKNOWN_TOPIC_OR_PARTITION"):
            await producer.send("no such topic!", b"v")


async def test_consumer_long_poll_returns_when_records_arrive(kafka_cluster: LocalCluster) -> None:
    """A poll waiting up to 5 s returns as soon as a record is produced, from "latest"."""
    topic = _name("lp")
    await _create(kafka_cluster, topic)
    async with KafkaClient(kafka_cluster.bootstrap_servers) as client:
        # Its own connection: a broker handles one request per connection at a time,
        # so a produce behind a long-polling fetch would wait for it (as in Kafka).
        async with KafkaProducer(kafka_cluster.bootstrap_servers) as producer:
            await producer.send(topic, b"old")
            consumer = KafkaConsumer(client, fetch_max_wait_ms=5000)
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            assert await consumer.position(tp) == 1

            async def later() -> None:
                await trio.sleep(0.3)
                await producer.send(topic, b"new", headers=[("a", None)], timestamp_ms=1234)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(later)
                start = trio.current_time()
                got = await consumer.poll()
                assert trio.current_time() - start < 4
            assert [(r.offset, r.value, r.headers, r.timestamp) for r in got] == \
                [(1, b"new", (("a", None),), 1234)]
            assert await consumer.position(tp) == 2


async def test_consumer_seeks_and_resets_out_of_range_offsets(kafka_cluster: LocalCluster) -> None:
    """seek() to an explicit offset; an out-of-range position resets to earliest;
    ListOffsets gives beginning and end offsets."""
    topic = _name("s")
    await _create(kafka_cluster, topic)
    async with KafkaClient(kafka_cluster.bootstrap_servers) as client:
        async with KafkaProducer(client) as producer:
            await producer.send_many(topic, [(None, bytes([i])) for i in range(10)])
        tp = TopicPartition(topic, 0)
        consumer = KafkaConsumer(client, auto_offset_reset="earliest", fetch_max_wait_ms=10)
        consumer.assign([tp])
        assert await consumer.beginning_offsets([tp]) == {tp: 0}
        assert await consumer.end_offsets([tp]) == {tp: 10}
        assert (await client.list_offsets({tp: EARLIEST}))[tp].offset == 0
        assert (await client.list_offsets({tp: LATEST}))[tp].offset == 10
        consumer.seek(tp, 7)
        assert [r.offset for r in await consumer.poll()] == [7, 8, 9]
        assert consumer.statistics().lag == {tp: 0}
        consumer.seek(tp, 50)
        assert await consumer.poll() == []
        assert await consumer.position(tp) == 0
        assert consumer.statistics().offset_resets == 1
        assert consumer.statistics().lag == {tp: 10}
        assert [r.offset for r in await consumer.poll()] == list(range(10))
        with pytest.raises(ValueError, match="not assigned"):
            consumer.seek(TopicPartition(topic, 1), 0)


async def test_requests_are_split_at_max_request_size(kafka_cluster: LocalCluster) -> None:
    """Batches for one leader go out in several Produce requests when together they exceed
    max_request_size; a single record above it is refused with MESSAGE_TOO_LARGE."""
    topic = _name("big")
    await _create(kafka_cluster, topic, assignment={p: [1] for p in range(4)})
    async with KafkaProducer(kafka_cluster.bootstrap_servers, max_request_size=600,
                             linger_ms=50) as producer:
        pendings = [await producer.enqueue(topic, b"x" * 200, partition=p % 4) for p in range(8)]
        await producer.flush()
        assert all(p.done for p in pendings)
        assert [(await p.wait()).offset for p in pendings] == [0, 0, 0, 0, 1, 1, 1, 1]
        assert producer.statistics().requests_sent >= 2
        with pytest.raises(KafkaError, match="MESSAGE_TOO_LARGE"):
            await producer.send(topic, b"y" * 1000)


async def test_producer_refuses_non_bytes_keys_and_values(kafka_cluster: LocalCluster) -> None:
    """A str key or an int value is a ValueError naming the argument, before any I/O."""
    topic = _name("b")
    await _create(kafka_cluster, topic)
    async with KafkaProducer(kafka_cluster.bootstrap_servers) as producer:
        with pytest.raises(ValueError, match="^key must be bytes or None, got str$"):
            await producer.send(topic, b"v", key="text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="^value must be bytes or None, got int$"):
            await producer.send(topic, 5)  # type: ignore[arg-type]
        meta = await producer.send(topic, bytearray(b"ok"), key=memoryview(b"k"))
        assert meta.offset == 0


async def test_consumer_makes_progress_through_cut_fetch_responses(kafka_cluster: LocalCluster) -> None:
    """With a small max_partition_fetch_bytes the broker cuts the last batch short; the
    consumer drops the partial tail and fetches it again next time, losing nothing."""
    topic = _name("cut")
    await _create(kafka_cluster, topic, assignment={0: [1]})
    async with KafkaClient(kafka_cluster.bootstrap_servers) as client:
        async with KafkaProducer(client, batch_size=1) as producer:  # one record a batch
            await producer.send_many(topic, [(None, bytes([i]) * 50) for i in range(30)])
        assert len(_stored_batches(kafka_cluster, 1, topic)) == 30
        consumer = KafkaConsumer(client, auto_offset_reset="earliest", fetch_max_wait_ms=10,
                                 max_partition_fetch_bytes=400)
        consumer.assign([(topic, 0)])
        got = []
        polls = 0
        while len(got) < 30 and polls < 100:
            got.extend(await consumer.poll())
            polls += 1
        assert [r.offset for r in got] == list(range(30))
        assert [r.value for r in got] == [bytes([i]) * 50 for i in range(30)]
        assert polls > 3  # it really was cut into several fetches


async def test_idempotence_needs_acks_all() -> None:
    """enable_idempotence with acks=1 is refused, as Kafka's config check does."""
    with pytest.raises(ValueError, match="enable_idempotence needs acks='all'"):
        KafkaProducer("127.0.0.1:1", acks=1, enable_idempotence=True)


async def test_metadata_is_refreshed_when_older_than_max_age(kafka_cluster: LocalCluster) -> None:
    """With metadata_max_age_ms=100 a topic created by another client shows up in
    client.cluster without anyone asking."""
    topic = _name("late")
    async with KafkaClient(kafka_cluster.bootstrap_servers, metadata_max_age_ms=100) as client:
        assert topic not in client.cluster.topics
        await _create(kafka_cluster, topic, 2)
        with trio.fail_after(10):
            while topic not in client.cluster.topics:
                await trio.sleep(0.05)
        assert client.cluster.partitions_for(topic) == [0, 1]


async def test_client_versions_cap_what_is_sent(kafka_cluster: LocalCluster) -> None:
    """client_versions=TSHARK_COMPATIBLE_APIS keeps Metadata at v9 and Produce at v8, the
    newest Wireshark 4.0 dissects, even though the broker offers more; the broker serves them."""
    from kafkalike.protocol.api_keys import TSHARK_COMPATIBLE_APIS

    topic = _name("w")
    await _create(kafka_cluster, topic, assignment={0: [1]})
    async with KafkaClient(kafka_cluster.bootstrap_servers,
                           client_versions=TSHARK_COMPATIBLE_APIS) as client:
        async with KafkaProducer(client) as producer:
            meta = await producer.send(topic, b"v")
        conn = await client.connection(1)
        assert conn.versions[ApiKey.METADATA] == 9 and conn.versions[ApiKey.PRODUCE] == 8
        assert meta.offset == 0


async def test_enqueue_blocks_at_buffer_memory(kafka_cluster: LocalCluster) -> None:
    """With buffer_memory=2000 bytes, enqueueing 200 records of ~124 bytes never holds more
    than 2000 bytes waiting: enqueue() waits for acknowledgements, and all records land."""
    topic = _name("bp")
    await _create(kafka_cluster, topic, 2)
    async with KafkaProducer(kafka_cluster.bootstrap_servers, buffer_memory=2000,
                             linger_ms=1000) as producer:
        peak = 0
        pendings = []
        for i in range(200):
            pendings.append(await producer.enqueue(topic, b"x" * 100, partition=i % 2))
            peak = max(peak, producer.statistics().bytes_waiting)
        await producer.flush()
        assert peak <= 2000
        assert [(await p.wait()).offset for p in pendings[-2:]] == [99, 99]
        assert producer.statistics().bytes_waiting == 0


async def test_connection_produce_with_acks_0_expects_no_response(kafka_cluster: LocalCluster) -> None:
    """KafkaConnection to a real broker: Produce acks=0 returns None once written; later
    requests still match their responses, and the records reached the log."""
    topic = _name("a0")
    await _create(kafka_cluster, topic, assignment={0: [2]})
    async with KafkaConnection.open(kafka_cluster.broker_host(2), kafka_cluster.base_port) as conn:
        assert conn.versions[ApiKey.METADATA] == 12
        # broker 2 must know it leads the partition first: an acks=0 Produce it refuses
        # (NOT_LEADER_OR_FOLLOWER) closes the connection, as Kafka's broker does
        with trio.fail_after(30):
            while True:
                md = await conn.call(ApiKey.METADATA, topics=[{"name": topic}], allow_auto_topic_creation=False)
                parts = md.topics[0].partitions if md.topics else []
                if parts and parts[0].error_code == 0 and parts[0].leader_id == 2:
                    break
                await trio.sleep(0.05)
        batch = build_records_batch([(b"k", b"v")])
        for _ in range(3):
            got = await conn.call(ApiKey.PRODUCE, transactional_id=None, acks=0, timeout=1000,
                                  topic_data=[{"name": topic, "partition_data":
                                               [{"index": 0, "records": batch}]}])
            assert got is None
        response = await conn.call(ApiKey.LIST_OFFSETS, replica_id=-1, topics=[
            {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}])
        assert response.topics[0].partitions[0].offset == 3
    assert conn.closed


async def test_admin_retries_not_controller_after_the_controller_moves(kafka_cluster: LocalCluster) -> None:
    """/controller is deleted until another broker wins the election: the admin client's
    cached controller answers CreateTopics with NOT_CONTROLLER, Metadata names the new
    controller, and the retry succeeds there."""
    async with AdminClient(kafka_cluster.bootstrap_servers) as admin:
        old = admin.client.cluster.controller_id
        assert old in (1, 2, 3)
        new = old
        with trio.fail_after(60):
            while new == old:
                await trio.to_thread.run_sync(_zk, kafka_cluster, "delete", zd.CONTROLLER_PATH)
                while (data := await trio.to_thread.run_sync(
                        _zk, kafka_cluster, "get", zd.CONTROLLER_PATH)) is None:
                    await trio.sleep(0.1)
                new = zd.ControllerZNode.from_json(data).broker_id
        assert admin.client.cluster.controller_id == old  # the client's view is stale
        topic = _name("x")
        with trio.fail_after(60):
            await admin.create_topics([NewTopic(topic, 1, 1)])
        assert admin.client.cluster.controller_id == new
        with trio.fail_after(30):  # brokers learn the topic from the new controller's UpdateMetadata
            while topic not in await admin.list_topics():
                await trio.sleep(0.2)


async def test_records_expire_after_delivery_timeout(kafka_cluster: LocalCluster) -> None:
    """A partition whose only replica's broker stopped has no leader (Metadata: leader -1):
    the record fails with RequestTimeoutError once delivery_timeout_ms has passed, not before
    and not never. Last in the module: broker 3 is started again but not waited for."""
    topic = _name("nl")
    await _create(kafka_cluster, topic, assignment={0: [3]})
    await trio.to_thread.run_sync(kafka_cluster.stop_broker, 3)
    try:
        async with KafkaClient(kafka_cluster.broker_address(1)) as client:
            with trio.fail_after(30):
                while client.cluster.leader_for(topic, 0) not in (None, -1):
                    await trio.sleep(0.1)
                    await client.refresh_metadata([topic])
            assert client.cluster.partitions_for(topic) == [0]
            async with KafkaProducer(client, delivery_timeout_ms=400,
                                     retry_backoff_ms=20) as producer:
                start = trio.current_time()
                with pytest.raises(RequestTimeoutError, match=rf"{topic}-0: 1 record\(s\) expired"):
                    await producer.send(topic, b"v")
                assert 0.35 <= trio.current_time() - start < 3
    finally:
        kafka_cluster.start_broker(3)
