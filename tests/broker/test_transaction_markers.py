"""The partition side of transactions against real kafkalike broker processes and real
ZooKeeper (KIP-98): transactional batches and WriteTxnMarkers requests are built with
kafkalike's own client/protocol code (the role of a producer and of a transaction
coordinator), then read back with read_committed Fetch and ListOffsets and with
confluent-kafka's consumer (librdkafka filters aborted records with the aborted-transaction
list). Followers replicate the markers and keep the same LSO and .txnindex, and both survive
a broker restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.record_batch import SimpleRecord, build_batch, iter_batches, iter_simple_records
from tests.fixtures_cluster import _new_cluster

TOPIC = "txn-data"
P1, P2, P3 = 9001, 9002, 9003  # producer ids (no coordinator hands them out here)
COORDINATOR_EPOCH = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    """Two broker processes; the topic's partition 0 on both, led by the first."""
    c = _new_cluster(tmp_path_factory.mktemp("txn-markers"), zk_connect, 2, None)
    try:
        yield c
    finally:
        c.stop()


async def _call(bs: str, broker: int, api_key: int, **fields: Any) -> Any:
    from kafkalike.client import KafkaClient

    async with KafkaClient(bs, client_id="txn-data-test") as client:
        await client.refresh_metadata([TOPIC])
        conn = await client.connection(broker)
        return await conn.call(api_key, **fields)


def call(cluster: LocalCluster, broker: int, api_key: int, **fields: Any) -> Any:
    return trio.run(lambda: _call(cluster.bootstrap_servers, broker, api_key, **fields))


def produce(cluster: LocalCluster, broker: int, batch: bytes, topic: str = TOPIC) -> int:
    from kafkalike.protocol.api_keys import ApiKey

    r = call(cluster, broker, ApiKey.PRODUCE, acks=-1, timeout=10000, transactional_id=None,
             topic_data=[{"name": topic, "partition_data": [{"index": 0, "records": batch}]}])
    p = r.responses[0].partition_responses[0]
    assert p.error_code == ErrorCode.none, p
    return int(p.base_offset)


def txn_batch(pid: int, values: list[bytes], seq: int = 0, epoch: int = 0) -> bytes:
    now = int(time.time() * 1000)
    return build_batch([SimpleRecord(value=v, key=b"k", timestamp=now) for v in values], producer_id=pid,
                       producer_epoch=epoch, base_sequence=seq, transactional=True)


def write_marker(cluster: LocalCluster, broker: int, pid: int, committed: bool,
                 coordinator_epoch: int = COORDINATOR_EPOCH, topic: str = TOPIC, epoch: int = 0) -> ErrorCode:
    from kafkalike.protocol.api_keys import ApiKey

    r = call(cluster, broker, ApiKey.WRITE_TXN_MARKERS, markers=[{
        "producer_id": pid, "producer_epoch": epoch, "transaction_result": committed,
        "coordinator_epoch": coordinator_epoch, "topics": [{"name": topic, "partition_indexes": [0]}]}])
    (marker,) = r.markers
    assert marker.producer_id == pid
    return ErrorCode(marker.topics[0].partitions[0].error_code)


def fetch(cluster: LocalCluster, broker: int, isolation_level: int, offset: int = 0, topic: str = TOPIC,
          max_wait: int = 0) -> Any:
    from kafkalike.protocol.api_keys import ApiKey

    r = call(cluster, broker, ApiKey.FETCH, replica_id=-1, max_wait=max_wait, min_bytes=1, max_bytes=1 << 20,
             isolation_level=isolation_level, session_id=0, session_epoch=-1,
             topics=[{"topic": topic, "partitions": [{
                 "partition": 0, "current_leader_epoch": -1, "fetch_offset": offset, "last_fetched_epoch": -1,
                 "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
             forgotten_topics_data=[], rack_id="")
    return r.responses[0].partitions[0]


def values(part: Any) -> list[bytes]:
    """Data record values of a fetched partition (control batches left out)."""
    out = []
    for b in iter_batches(memoryview(bytes(part.records or b""))):
        if not b.is_control:
            out.extend(r.value or b"" for _, r in iter_simple_records(b))
    return out


def latest(cluster: LocalCluster, broker: int, isolation_level: int) -> int:
    from kafkalike.protocol.api_keys import ApiKey

    r = call(cluster, broker, ApiKey.LIST_OFFSETS, replica_id=-1, isolation_level=isolation_level,
             topics=[{"name": TOPIC, "partitions": [{"partition_index": 0, "timestamp": -1,
                                                      "current_leader_epoch": -1}]}])
    p = r.topics[0].partitions[0]
    assert p.error_code == ErrorCode.none, p
    return int(p.offset)


def aborted(part: Any) -> list[tuple[int, int]]:
    return [(int(t.producer_id), int(t.first_offset)) for t in (part.aborted_transactions or ())]


def wait_for(cond: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = cond()
        except Exception:  # leadership moving: ask again
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def isr(cluster: LocalCluster) -> list[int]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": cluster.bootstrap_servers}).list_topics(TOPIC, timeout=10)
    return list(md.topics[TOPIC].partitions[0].isrs)


def confluent_values(cluster: LocalCluster, isolation: str, expected: int) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": f"g-{isolation}-{time.time()}",
                  "isolation.level": isolation, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(TOPIC, 0, 0)])
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < expected and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
        # one more poll: nothing beyond what was expected may arrive
        for _ in range(3):
            m = c.poll(0.3)
            if m is not None and m.error() is None:
                got.append(m.value())
        return got
    finally:
        c.close()


def test_a_read_committed_long_poll_waits_for_the_lso_not_the_high_watermark(cluster: LocalCluster) -> None:
    """A read_committed Fetch (max_wait 20 s, min_bytes 1) parked while a transaction is open
    is answered with the transaction's records once the COMMIT marker moves the LSO: had it
    waited on the high watermark (already past the records), it would have come back at once
    with nothing."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    topic = "txn-data-poll"
    leader = cluster.broker_ids[0]
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(topic, replica_assignments={0: [leader]})])
        admin.wait_for_topics([topic], timeout_ms=30000)
    finally:
        admin.close()
    wait_for(lambda: fetch(cluster, leader, 0, topic=topic).error_code == ErrorCode.none, "the leader")
    assert produce(cluster, leader, txn_batch(P1, [b"x0", b"x1"]), topic=topic) == 0
    result: list[Any] = []

    def long_poll() -> None:
        result.append(fetch(cluster, leader, 1, topic=topic, max_wait=20000))

    import threading

    t = threading.Thread(target=long_poll)
    t.start()
    time.sleep(1.0)  # let the fetch park in the purgatory (if it answered already, the check below fails)
    assert write_marker(cluster, leader, P1, committed=True, topic=topic) == ErrorCode.none
    t.join(30)
    (part,) = result
    assert part.last_stable_offset == 3 and values(part) == [b"x0", b"x1"]


def test_read_committed_sees_committed_data_only_and_markers_survive_failover_and_restart(
        cluster: LocalCluster) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    leader, follower = cluster.broker_ids[:2]
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(TOPIC, replica_assignments={0: [leader, follower]})])
        admin.wait_for_topics([TOPIC], timeout_ms=30000)
    finally:
        admin.close()
    wait_for(lambda: fetch(cluster, leader, 0).error_code == ErrorCode.none, "the leader")

    # an open transaction (P1) holds read_committed back; read_uncommitted sees it
    assert produce(cluster, leader, txn_batch(P1, [b"a0", b"a1"])) == 0
    assert produce(cluster, leader, build_batch([SimpleRecord(value=b"plain", timestamp=int(time.time() * 1000))])) == 2
    rc = fetch(cluster, leader, 1)
    assert (rc.high_watermark, rc.last_stable_offset, values(rc), aborted(rc)) == (3, 0, [], [])
    assert values(fetch(cluster, leader, 0)) == [b"a0", b"a1", b"plain"]
    assert (latest(cluster, leader, 1), latest(cluster, leader, 0)) == (0, 3)

    # ABORT: the LSO moves past the marker and read_committed gets the aborted list
    assert write_marker(cluster, leader, P1, committed=False) == ErrorCode.none
    rc = fetch(cluster, leader, 1)
    assert rc.last_stable_offset == 4 and aborted(rc) == [(P1, 0)]
    assert values(rc) == [b"a0", b"a1", b"plain"]  # the data is sent; the client drops it by the list

    # COMMIT of a second transaction; a third stays open
    assert produce(cluster, leader, txn_batch(P2, [b"c0", b"c1"])) == 4
    assert write_marker(cluster, leader, P2, committed=True) == ErrorCode.none
    assert produce(cluster, leader, txn_batch(P3, [b"open"])) == 7
    rc = fetch(cluster, leader, 1)
    assert (rc.high_watermark, rc.last_stable_offset) == (8, 7)
    assert aborted(fetch(cluster, leader, 1, offset=4)) == []
    assert latest(cluster, leader, 1) == 7

    # librdkafka with read_committed drops the aborted records and stops before the open txn
    assert confluent_values(cluster, "read_committed", 3) == [b"plain", b"c0", b"c1"]
    assert confluent_values(cluster, "read_uncommitted", 6) == [b"a0", b"a1", b"plain", b"c0", b"c1", b"open"]

    # refused markers: an older coordinator epoch, an older producer epoch, a follower, an unknown topic
    assert write_marker(cluster, leader, P2, committed=True, coordinator_epoch=COORDINATOR_EPOCH - 1) \
        == ErrorCode.transaction_coordinator_fenced
    assert produce(cluster, leader, txn_batch(P2, [b"e1"], epoch=1)) == 8
    assert write_marker(cluster, leader, P2, committed=True, epoch=0) == ErrorCode.invalid_producer_epoch
    assert write_marker(cluster, follower, P3, committed=True) == ErrorCode.not_leader_or_follower
    assert write_marker(cluster, leader, P3, committed=True, topic="no-such-topic") \
        == ErrorCode.unknown_topic_or_partition
    assert fetch(cluster, leader, 1).last_stable_offset == 7  # nothing was written by the refusals

    # close P3 and P2 (epoch 1): everything is stable
    assert write_marker(cluster, leader, P3, committed=False) == ErrorCode.none
    assert write_marker(cluster, leader, P2, committed=True, epoch=1) == ErrorCode.none
    rc = fetch(cluster, leader, 1)
    assert rc.last_stable_offset == rc.high_watermark == 11
    assert aborted(rc) == [(P1, 0), (P3, 7)]

    # the follower replicated the markers: its .txnindex equals the leader's
    def txnindex(broker: int) -> bytes:
        files = list(cluster.broker_dir(broker).rglob(f"{TOPIC}-0/*.txnindex"))
        return files[0].read_bytes() if files else b""

    leader_index = txnindex(leader)
    assert len(leader_index) == 2 * 34
    wait_for(lambda: txnindex(follower) == leader_index, "the follower's .txnindex")

    # failover: the follower leads with the same LSO and aborted list
    cluster.stop_broker(leader)
    rc = wait_for(lambda: (p := fetch(cluster, follower, 1)).error_code == ErrorCode.none and p, "the new leader")
    assert rc.last_stable_offset == 11 and aborted(rc) == [(P1, 0), (P3, 7)]

    # restart: the old leader loads its log again and, leading once more, answers the same
    cluster.start_broker(leader)
    cluster.wait_ready([leader])
    wait_for(lambda: txnindex(leader) == leader_index and sorted(isr(cluster)) == sorted([leader, follower]),
             "the restarted broker back in the ISR")
    cluster.stop_broker(follower)
    rc = wait_for(lambda: (p := fetch(cluster, leader, 1)).error_code == ErrorCode.none and p,
                  "the restarted broker to lead")
    assert rc.last_stable_offset == 11 and aborted(rc) == [(P1, 0), (P3, 7)]
    assert confluent_values(cluster, "read_committed", 4) == [b"plain", b"c0", b"c1", b"e1"]
    cluster.start_broker(follower)
