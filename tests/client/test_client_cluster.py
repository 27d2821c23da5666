"""KafkaClient, AdminClient, KafkaProducer and KafkaConsumer against a 3-node in-test codec
server (real sockets and codec; see tiny_broker.py): bootstrap, leader routing, retries,
admin errors, keyed partitioning, compression, acks, long polling, offset resets."""

from __future__ import annotations

import pytest
import trio
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from kafkalike.client import (AdminClient, KafkaClient, KafkaConsumer, KafkaError,
                              KafkaProducer, NewTopic, NoBrokersAvailableError,
                              RequestTimeoutError, TopicPartition)
from kafkalike.client.admin import RESOURCE_TOPIC
from kafkalike.client.kafka_client import EARLIEST, LATEST, parse_bootstrap
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.records import decode_batches
from tiny_broker import TinyCluster, free_port, start_tiny_cluster

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _bootstrap(cluster: TinyCluster) -> list[str]:
    return [f"{h}:{p}" for h, p in cluster.brokers.values()]


def test_parse_bootstrap_accepts_kafkas_forms() -> None:
    """Comma lists, default port 9092, bracketed IPv6; bad entries are ValueErrors."""
    assert parse_bootstrap("a:1, b") == [("a", 1), ("b", 9092)]
    assert parse_bootstrap(["[::1]:9093"]) == [("::1", 9093)]
    with pytest.raises(ValueError, match="port is not a number"):
        parse_bootstrap("a:x")
    with pytest.raises(ValueError, match="no bootstrap servers"):
        parse_bootstrap(" , ")


async def test_bootstrap_skips_dead_servers_and_learns_the_cluster() -> None:
    """A refused first bootstrap server is skipped; Metadata gives brokers, controller,
    cluster id and partition leaders."""
    async with trio.open_nursery() as nursery:
        cluster, nodes = await start_tiny_cluster(nursery, 3)
        cluster.controller_id = 2
        cluster.add_topic("t", 3, leaders=[3, 1, 2])
        dead = f"127.0.0.1:{free_port()}"
        async with KafkaClient([dead, *_bootstrap(cluster)]) as client:
            assert sorted(client.cluster.brokers) == [1, 2, 3]
            assert client.cluster.controller_id == 2
            assert client.cluster.cluster_id == "tiny-cluster"
            assert [client.cluster.leader_for("t", p) for p in range(3)] == [3, 1, 2]
            conn = await client.leader_connection("t", 0)
            assert conn.port == nodes[2].port
            stats = client.statistics()
            assert stats.brokers == (1, 2, 3) and stats.controller_id == 2
            assert 3 in stats.connections and stats.topics == 1
        nursery.cancel_scope.cancel()


async def test_bootstrap_with_no_live_server_raises() -> None:
    """Only dead bootstrap servers: NoBrokersAvailableError naming them."""
    port = free_port()
    with pytest.raises(NoBrokersAvailableError, match=rf"127\.0\.0\.1:{port}"):
        async with KafkaClient([f"127.0.0.1:{port}"], connect_timeout_ms=2000):
            pass


async def test_admin_creates_describes_grows_and_deletes_topics() -> None:
    """CreateTopics/CreatePartitions/DeleteTopics reach the controller; broker errors come
    back typed; validate_only creates nothing; DescribeConfigs and DescribeCluster answer."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 3)
        cluster.controller_id = 3
        async with AdminClient(_bootstrap(cluster)) as admin:
            got = await admin.create_topics([NewTopic("a", 2, 1, configs={"retention.ms": "5"}),
                                             NewTopic("b", 1, 1)])
            assert got == {"a": ErrorCode.none, "b": ErrorCode.none}
            assert sorted(cluster.topics) == ["a", "b"]
            with pytest.raises(KafkaError, match=r"create topic a: TOPIC_ALREADY_EXISTS") as info:
                await admin.create_topics([NewTopic("a", 1, 1)])
            assert info.value.error_code == ErrorCode.topic_already_exists
            got = await admin.create_topics([NewTopic("c", 1, 5)], raise_errors=False)
            assert got == {"c": ErrorCode.invalid_replication_factor}
            await admin.create_topics([NewTopic("v", 1, 1)], validate_only=True)
            assert "v" not in cluster.topics
            await admin.create_partitions({"a": 4})
            assert len(cluster.topics["a"]) == 4
            assert admin.client.cluster.partitions_for("a") == [0, 1, 2, 3]
            configs = await admin.describe_configs(RESOURCE_TOPIC, "a")
            assert configs["retention.ms"].value == "5"
            await admin.alter_configs(RESOURCE_TOPIC, "a", {"retention.ms": None,
                                                            "segment.bytes": "1024"})
            configs = await admin.describe_configs(RESOURCE_TOPIC, "a")
            assert configs["retention.ms"].value == "604800000"  # the tiny default again
            assert configs["segment.bytes"].value == "1024"
            with trio.fail_after(1):  # a per-resource error is an answer, not retried
                with pytest.raises(KafkaError,
                                   match="alter_configs zz: UNKNOWN_TOPIC_OR_PARTITION"):
                    await admin.alter_configs(RESOURCE_TOPIC, "zz", {"x": "1"})
                with pytest.raises(KafkaError,
                                   match="describe_configs zz: UNKNOWN_TOPIC_OR_PARTITION"):
                    await admin.describe_configs(RESOURCE_TOPIC, "zz")
            desc = await admin.describe_cluster()
            assert desc.controller_id == 3 and sorted(desc.brokers) == [1, 2, 3]
            assert await admin.list_topics() == ["a", "b"]
            await admin.delete_topics(["b"])
            assert sorted(cluster.topics) == ["a"]
            assert cluster.seen.count((3, ApiKey.CREATE_TOPICS, 7)) == 4
        nursery.cancel_scope.cancel()


async def test_admin_retries_not_controller_after_refreshing_metadata() -> None:
    """The controller moves after bootstrap: the first CreateTopics gets NOT_CONTROLLER,
    Metadata names the new controller, the retry succeeds there."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 3)
        cluster.controller_id = 1
        async with AdminClient(_bootstrap(cluster)) as admin:
            cluster.controller_id = 2
            await admin.create_topics([NewTopic("x", 1, 1)])
            assert "x" in cluster.topics
            tried = [n for (n, k, _v) in cluster.seen if k == ApiKey.CREATE_TOPICS]
            assert tried == [1, 2]
        nursery.cancel_scope.cancel()


async def test_keyed_records_land_where_kafkas_partitioner_puts_them() -> None:
    """Keys go to murmur2(key) mod partitions (kafka-python agrees), offsets are dense per
    partition, and consuming from the beginning returns every record in order."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 3)
        cluster.add_topic("k", 5)
        async with KafkaClient(_bootstrap(cluster)) as client:
            async with KafkaProducer(client, linger_ms=5) as producer:
                records = [(f"key-{i % 37}".encode(), f"value-{i}".encode(),
                            [("h", str(i).encode())]) for i in range(400)]
                metas = await producer.send_many("k", records)
                stats = producer.statistics()
                assert (stats.records_acked, stats.records_waiting, stats.records_failed) == \
                    (400, 0, 0)
                assert stats.requests_sent == cluster.produce_requests
            per_partition: dict[int, list[int]] = {}
            for (key, _v, _h), meta in zip(records, metas):
                assert meta.partition == (kafka_python_murmur2(key) & 0x7FFFFFFF) % 5
                per_partition.setdefault(meta.partition, []).append(meta.offset)
            for offsets in per_partition.values():
                assert offsets == list(range(len(offsets)))
            assert cluster.produce_requests < 100  # batched, not one request per record
            consumer = KafkaConsumer(client, auto_offset_reset="earliest", fetch_max_wait_ms=50)
            consumer.assign([TopicPartition("k", p) for p in range(5)])
            got = []
            while len(got) < 400:
                got.extend(await consumer.poll())
            assert len(got) == 400
            by_value = {r.value: r for r in got}
            for i, (key, value, headers) in enumerate(records):
                r = by_value[value]
                assert r.key == key and r.headers == (("h", str(i).encode()),)
                assert r.partition == metas[i].partition and r.offset == metas[i].offset
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
async def test_compressed_batches_round_trip(compression: str) -> None:
    """The producer writes batches with the chosen codec; the consumer decodes them."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("z", 1)
        async with KafkaClient(_bootstrap(cluster)) as client:
            async with KafkaProducer(client, compression_type=compression,
                                     linger_ms=20) as producer:
                await producer.send_many("z", [(None, b"x" * 100 + bytes([i]))
                                               for i in range(50)])
            batches = decode_batches(cluster.records("z", 0))
            assert {b.compression for b in batches} == {
                {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[compression]}
            consumer = KafkaConsumer(client, auto_offset_reset="earliest", fetch_max_wait_ms=10)
            consumer.assign([("z", 0)])
            got = await consumer.poll()
            assert [r.value[-1] for r in got] == list(range(50))
        nursery.cancel_scope.cancel()


async def test_acks_0_produces_without_offsets() -> None:
    """acks=0: the records arrive but their metadata carries offset -1."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("q", 1)
        async with KafkaProducer(_bootstrap(cluster), acks=0) as producer:
            meta = await producer.send("q", b"v", key=b"k")
            assert meta.offset == -1 and meta.partition == 0
        with trio.fail_after(5):
            while not cluster.topics["q"][0].next_offset:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


async def test_producer_retries_after_the_leader_moves() -> None:
    """NOT_LEADER_OR_FOLLOWER from the old leader: Metadata is refreshed and the batch is
    written once, on the new leader, with its records in order."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 2)
        cluster.add_topic("m", 1, leaders=[1])
        async with KafkaProducer(_bootstrap(cluster), retry_backoff_ms=10) as producer:
            await producer.send("m", b"first")
            cluster.topics["m"][0].leader = 2
            metas = await producer.send_many("m", [(None, b"a"), (None, b"b")])
            assert [m.offset for m in metas] == [1, 2]
            assert producer.statistics().retries >= 1
            produce_nodes = [n for (n, k, _v) in cluster.seen if k == ApiKey.PRODUCE]
            # a retry may still hit node 1 if it runs before the Metadata refresh lands
            assert produce_nodes[:2] == [1, 1] and produce_nodes[-1] == 2
            values = [r.value for b in decode_batches(cluster.records("m", 0))
                      for r in b.records]
            assert values == [b"first", b"a", b"b"]
        nursery.cancel_scope.cancel()


async def test_producer_gives_up_on_a_non_retriable_error() -> None:
    """A non-retriable partition error (MESSAGE_TOO_LARGE) fails the record with it."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("e", 1)
        cluster.errors[(ApiKey.PRODUCE, "e", 0)] = [ErrorCode.message_too_large]
        async with KafkaProducer(_bootstrap(cluster)) as producer:
            with pytest.raises(KafkaError, match="produce to e-0: MESSAGE_TOO_LARGE"):
                await producer.send("e", b"big")
            meta = await producer.send("e", b"small")
            assert meta.offset == 0
        nursery.cancel_scope.cancel()


async def test_producer_to_unknown_topic_raises() -> None:
    """A topic Metadata does not know (and the broker does not auto-create) is a KafkaError."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        async with KafkaProducer(_bootstrap(cluster), max_block_ms=300) as producer:
            with pytest.raises(KafkaError, match="UNKNOWN_TOPIC_OR_PARTITION"):
                await producer.send("nope", b"v")
        nursery.cancel_scope.cancel()


async def test_consumer_long_poll_returns_when_records_arrive() -> None:
    """A poll waiting up to 5 s returns as soon as a record is produced, from "latest"."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("lp", 1)
        async with KafkaClient(_bootstrap(cluster)) as client:
            # Its own connection: a broker handles one request per connection at a time,
            # so a produce behind a long-polling fetch would wait for it (as in Kafka).
            async with KafkaProducer(_bootstrap(cluster)) as producer:
                await producer.send("lp", b"old")
                consumer = KafkaConsumer(client, fetch_max_wait_ms=5000)
                tp = TopicPartition("lp", 0)
                consumer.assign([tp])
                assert await consumer.position(tp) == 1

                async def later() -> None:
                    await trio.sleep(0.2)
                    await producer.send("lp", b"new", headers=[("a", None)],
                                        timestamp_ms=1234)

                nursery.start_soon(later)
                start = trio.current_time()
                got = await consumer.poll()
                assert trio.current_time() - start < 3
                assert [(r.offset, r.value, r.headers, r.timestamp) for r in got] == \
                    [(1, b"new", (("a", None),), 1234)]
                assert await consumer.position(tp) == 2
        nursery.cancel_scope.cancel()


async def test_consumer_seeks_and_resets_out_of_range_offsets() -> None:
    """seek() to an explicit offset; an out-of-range position resets to earliest;
    ListOffsets gives beginning and end offsets."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("s", 1)
        async with KafkaClient(_bootstrap(cluster)) as client:
            async with KafkaProducer(client) as producer:
                await producer.send_many("s", [(None, bytes([i])) for i in range(10)])
            tp = TopicPartition("s", 0)
            consumer = KafkaConsumer(client, auto_offset_reset="earliest", fetch_max_wait_ms=10)
            consumer.assign([tp])
            assert await consumer.beginning_offsets([tp]) == {tp: 0}
            assert await consumer.end_offsets([tp]) == {tp: 10}
            got = await client.list_offsets({tp: EARLIEST})
            assert got[tp].offset == 0
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
                consumer.seek(TopicPartition("s", 1), 0)
        nursery.cancel_scope.cancel()


async def test_consumer_follows_a_leader_change() -> None:
    """NOT_LEADER_OR_FOLLOWER on fetch: Metadata refresh, the next poll reads the new
    leader."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 2)
        cluster.add_topic("f", 1, leaders=[1])
        async with KafkaClient(_bootstrap(cluster), retry_backoff_ms=10) as client:
            async with KafkaProducer(client) as producer:
                await producer.send("f", b"one")
            consumer = KafkaConsumer(client, auto_offset_reset="earliest", fetch_max_wait_ms=10)
            consumer.assign([("f", 0)])
            consumer.seek(TopicPartition("f", 0), 0)
            cluster.topics["f"][0].leader = 2
            got = []
            with trio.fail_after(5):
                while not got:
                    got = await consumer.poll()
            assert got[0].value == b"one"
            fetch_nodes = [n for (n, k, _v) in cluster.seen if k == ApiKey.FETCH]
            assert fetch_nodes[0] == 1 and fetch_nodes[-1] == 2
        nursery.cancel_scope.cancel()


async def test_requests_are_split_at_max_request_size() -> None:
    """Batches for one leader go out in several Produce requests when together they exceed
    max_request_size; a single record above it is refused with MESSAGE_TOO_LARGE."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("big", 4)
        async with KafkaProducer(_bootstrap(cluster), max_request_size=600,
                                 linger_ms=50) as producer:
            pendings = [await producer.enqueue("big", b"x" * 200, partition=p % 4)
                        for p in range(8)]
            await producer.flush()
            assert all(p.done for p in pendings)
            assert [(await p.wait()).offset for p in pendings] == [0, 0, 0, 0, 1, 1, 1, 1]
            assert cluster.produce_requests >= 2
            with pytest.raises(KafkaError, match="MESSAGE_TOO_LARGE"):
                await producer.send("big", b"y" * 1000)
        nursery.cancel_scope.cancel()


async def test_producer_refuses_non_bytes_keys_and_values() -> None:
    """A str key or an int value is a ValueError naming the argument, before any I/O."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("b", 1)
        async with KafkaProducer(_bootstrap(cluster)) as producer:
            with pytest.raises(ValueError, match="^key must be bytes or None, got str$"):
                await producer.send("b", b"v", key="text")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="^value must be bytes or None, got int$"):
                await producer.send("b", 5)  # type: ignore[arg-type]
            meta = await producer.send("b", bytearray(b"ok"), key=memoryview(b"k"))
            assert meta.offset == 0
        nursery.cancel_scope.cancel()


async def test_consumer_makes_progress_through_cut_fetch_responses() -> None:
    """With a small max_partition_fetch_bytes the broker cuts the last batch short; the
    consumer drops the partial tail and fetches it again next time, losing nothing."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("cut", 1)
        async with KafkaClient(_bootstrap(cluster)) as client:
            async with KafkaProducer(client, batch_size=1) as producer:  # one record a batch
                await producer.send_many("cut", [(None, bytes([i]) * 50) for i in range(30)])
            assert len(cluster.topics["cut"][0].batches) == 30
            consumer = KafkaConsumer(client, auto_offset_reset="earliest", fetch_max_wait_ms=10,
                                     max_partition_fetch_bytes=400)
            consumer.assign([("cut", 0)])
            got = []
            polls = 0
            while len(got) < 30 and polls < 100:
                got.extend(await consumer.poll())
                polls += 1
            assert [r.offset for r in got] == list(range(30))
            assert [r.value for r in got] == [bytes([i]) * 50 for i in range(30)]
            assert polls > 3  # it really was cut into several fetches
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("idempotent", [False, True])
async def test_lost_produce_response_duplicates_unless_idempotent(idempotent: bool) -> None:
    """The broker writes a batch and hangs up before answering; the producer retries. Without
    idempotence the record is written twice (Kafka's documented at-least-once); with it the
    retried batch carries the same producer id and sequence and is written once."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("dup", 1)
        acks = "all" if idempotent else 1
        async with KafkaProducer(_bootstrap(cluster), acks=acks, retry_backoff_ms=10,
                                 enable_idempotence=idempotent) as producer:
            await producer.send("dup", b"first")
            cluster.lose_response.add(ApiKey.PRODUCE)
            meta = await producer.send("dup", b"second")
            await producer.send("dup", b"third")
            batches = decode_batches(cluster.records("dup", 0))
            values = [r.value for b in batches for r in b.records]
            if idempotent:
                assert values == [b"first", b"second", b"third"]
                assert meta.offset == 1
                assert {b.producer_id for b in batches} == {producer.producer_id} == {4001}
                assert [b.base_sequence for b in batches] == [0, 1, 2]
            else:
                assert values == [b"first", b"second", b"second", b"third"]
                assert {b.producer_id for b in batches} == {-1}
        nursery.cancel_scope.cancel()


async def test_idempotence_needs_acks_all() -> None:
    """enable_idempotence with acks=1 is refused, as Kafka's config check does."""
    with pytest.raises(ValueError, match="enable_idempotence needs acks='all'"):
        KafkaProducer("127.0.0.1:1", acks=1, enable_idempotence=True)


async def test_out_of_order_sequence_resets_the_producer_id() -> None:
    """OUT_OF_ORDER_SEQUENCE_NUMBER fails that batch; the producer takes a new producer id
    and the next records start again at sequence 0."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("oos", 1)
        async with KafkaProducer(_bootstrap(cluster), acks="all",
                                 enable_idempotence=True) as producer:
            await producer.send("oos", b"a")
            cluster.errors[(ApiKey.PRODUCE, "oos", 0)] = [
                ErrorCode.out_of_order_sequence_number]
            with pytest.raises(KafkaError, match="OUT_OF_ORDER_SEQUENCE_NUMBER"):
                await producer.send("oos", b"b")
            await producer.send("oos", b"c")
            batches = decode_batches(cluster.records("oos", 0))
            assert [(b.producer_id, b.base_sequence) for b in batches] == [(4001, 0),
                                                                           (4002, 0)]
        nursery.cancel_scope.cancel()


async def test_records_expire_after_delivery_timeout() -> None:
    """A partition whose leader stays unavailable: the record fails with RequestTimeoutError
    once delivery_timeout_ms has passed, not before and not never."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("nl", 1, leaders=[9])  # broker 9 does not exist
        async with KafkaProducer(_bootstrap(cluster), delivery_timeout_ms=400,
                                 retry_backoff_ms=20) as producer:
            start = trio.current_time()
            with pytest.raises(RequestTimeoutError, match=r"nl-0: 1 record\(s\) expired"):
                await producer.send("nl", b"v")
            assert 0.35 <= trio.current_time() - start < 3
        nursery.cancel_scope.cancel()


async def test_idempotent_batch_failure_starts_a_new_producer_id() -> None:
    """A sent idempotent batch that fails for good (MESSAGE_TOO_LARGE) leaves a sequence gap;
    the producer takes a new producer id so the next record is accepted, not refused as
    OUT_OF_ORDER_SEQUENCE_NUMBER."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("gap", 1)
        async with KafkaProducer(_bootstrap(cluster), acks="all",
                                 enable_idempotence=True) as producer:
            await producer.send("gap", b"a")
            cluster.errors[(ApiKey.PRODUCE, "gap", 0)] = [ErrorCode.message_too_large]
            with pytest.raises(KafkaError, match="MESSAGE_TOO_LARGE"):
                await producer.send("gap", b"b")
            meta = await producer.send("gap", b"c")
            assert meta.offset == 1
            assert producer.producer_id == 4002
        nursery.cancel_scope.cancel()


async def test_metadata_is_refreshed_when_older_than_max_age() -> None:
    """With metadata_max_age_ms=100 a topic created behind the client's back shows up in
    client.cluster without anyone asking."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        async with KafkaClient(_bootstrap(cluster), metadata_max_age_ms=100) as client:
            assert "late" not in client.cluster.topics
            cluster.add_topic("late", 2)
            with trio.fail_after(5):
                while "late" not in client.cluster.topics:
                    await trio.sleep(0.05)
            assert client.cluster.partitions_for("late") == [0, 1]
        nursery.cancel_scope.cancel()


async def test_client_versions_cap_what_is_sent() -> None:
    """client_versions=TSHARK_COMPATIBLE_APIS keeps Metadata at v9 and Produce at v8, the
    newest Wireshark 4.0 dissects, even though the broker offers more."""
    from kafkalike.protocol.api_keys import TSHARK_COMPATIBLE_APIS

    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("w", 1)
        async with KafkaClient(_bootstrap(cluster),
                               client_versions=TSHARK_COMPATIBLE_APIS) as client:
            async with KafkaProducer(client) as producer:
                await producer.send("w", b"v")
        sent = {(k, v) for (_n, k, v) in cluster.seen}
        assert (ApiKey.METADATA, 9) in sent and (ApiKey.PRODUCE, 8) in sent
        assert not any(k == ApiKey.METADATA and v > 9 for k, v in sent)
        nursery.cancel_scope.cancel()


async def test_enqueue_blocks_at_buffer_memory() -> None:
    """With buffer_memory=2000 bytes, enqueueing 200 records of ~124 bytes never holds more
    than 2000 bytes waiting: enqueue() waits for acknowledgements, and all records land."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("bp", 2)
        async with KafkaProducer(_bootstrap(cluster), buffer_memory=2000,
                                 linger_ms=1000) as producer:
            peak = 0
            pendings = []
            for i in range(200):
                pendings.append(await producer.enqueue("bp", b"x" * 100, partition=i % 2))
                peak = max(peak, producer.statistics().bytes_waiting)
            await producer.flush()
            assert peak <= 2000
            assert [(await p.wait()).offset for p in pendings[-2:]] == [99, 99]
            assert producer.statistics().bytes_waiting == 0
        nursery.cancel_scope.cancel()
