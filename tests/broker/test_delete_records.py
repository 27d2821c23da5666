"""DeleteRecords (API key 21, KIP-107) on a 3-broker RF-3 topic: the leader moves its log
start offset, the answer waits until both followers have followed it through their Fetch
(the DeleteRecords purgatory), consumers below it get OFFSET_OUT_OF_RANGE and ListOffsets
earliest answers it; Kafka's errors for bad offsets, compacted topics, non-leaders, unknown
topics and followers that do not catch up in time. Then real clients (kafka-python,
confluent-kafka) and ``kafkalike delete-records`` against real broker processes."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

from kafkalike.broker.replica_fetcher import BrokerEndpoint
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import (batch, connect, fetch, produce, running_broker,
                                         three_brokers_with_topic)


async def _delete_records(conn: Any, topic: str, offsets: dict[int, int], timeout_ms: int = 15000,
                          version: int = 2) -> dict[int, tuple[int, int]]:
    """One DeleteRecords; {partition: (error code, low watermark)}."""
    resp = await conn.call(ApiKey.DELETE_RECORDS, api_version=version,
                           timeout=datetime.timedelta(milliseconds=timeout_ms),
                           topics=[{"name": topic, "partitions": [
                               {"partition_index": p, "offset": o} for p, o in offsets.items()]}])
    return {p.partition_index: (p.error_code, p.low_watermark) for p in resp.topics[0].partitions}


async def _earliest(conn: Any, topic: str, partition: int = 0) -> int:
    resp = await conn.call(ApiKey.LIST_OFFSETS, api_version=7, replica_id=-1, isolation_level=0,
                           topics=[{"name": topic, "partitions": [{"partition_index": partition, "timestamp": -2}]}])
    p = resp.topics[0].partitions[0]
    assert p.error_code == 0
    return p.offset


def _leader_of(servers: dict[int, Any], tp: TopicPartition) -> int:
    return next(i for i, s in servers.items() if s.replica_manager.partitions[tp].is_leader)


async def _wait_for(predicate: Any, timeout: float = 20.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


async def test_delete_records_waits_for_every_replica_and_moves_the_log_start(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """DeleteRecords answers once both followers' log start offsets reached the offset (low
    watermark = it), every replica starts there, fetching below it is OFFSET_OUT_OF_RANGE,
    ListOffsets earliest answers it, and -1 deletes up to the high watermark."""
    async with AsyncExitStack() as stack:
        servers = await three_brokers_with_topic(stack, tmp_path, zk_chroot_connect, "dr",
                                                 replica_fetch_wait_max_ms="100",
                                                 log_segment_bytes="1024")
        tp = TopicPartition("dr", 0)
        leader_id = _leader_of(servers, tp)
        conn = await stack.enter_async_context(connect(servers[leader_id]))
        for i in range(10):
            r = await produce(conn, "dr", 0, batch([b"v%d-%d" % (i, j) * 20 for j in range(3)]), acks=-1,
                              timeout_ms=15000)
            assert r.error_code == 0
        leader = servers[leader_id].replica_manager.partitions[tp]
        assert leader.high_watermark == 30
        segments_before = len(leader.log.segments)

        assert await _delete_records(conn, "dr", {0: 13}) == {0: (ErrorCode.none, 13)}
        for s in servers.values():
            assert s.replica_manager.partitions[tp].log.log_start_offset == 13
        assert len(leader.log.segments) < segments_before  # segments wholly below 13 are gone
        assert (await fetch(conn, "dr", 0, 12)).error_code == ErrorCode.offset_out_of_range
        got = await fetch(conn, "dr", 0, 13)
        assert got.error_code == 0 and got.log_start_offset == 13
        assert await _earliest(conn, "dr") == 13

        # an offset at or below the log start changes nothing and succeeds
        assert await _delete_records(conn, "dr", {0: 5}, version=0) == {0: (ErrorCode.none, 13)}
        # -1: up to the high watermark
        assert await _delete_records(conn, "dr", {0: -1}, version=1) == {0: (ErrorCode.none, 30)}
        assert await _earliest(conn, "dr") == 30
        for s in servers.values():
            assert s.replica_manager.partitions[tp].log.log_start_offset == 30


async def test_delete_records_refusals_match_kafka(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Past the high watermark or below -1: OFFSET_OUT_OF_RANGE; a compact-only topic:
    POLICY_VIOLATION; a follower: NOT_LEADER_OR_FOLLOWER; an unknown topic:
    UNKNOWN_TOPIC_OR_PARTITION; the log start offset never moves and nothing is lost."""
    async with AsyncExitStack() as stack:
        servers = await three_brokers_with_topic(stack, tmp_path, zk_chroot_connect, "bad",
                                                 replica_fetch_wait_max_ms="100")
        tp = TopicPartition("bad", 0)
        leader_id = _leader_of(servers, tp)
        conn = await stack.enter_async_context(connect(servers[leader_id]))
        assert (await produce(conn, "bad", 0, batch([b"a", b"b", b"c"]), acks=-1)).error_code == 0

        assert await _delete_records(conn, "bad", {0: 4}) == {0: (ErrorCode.offset_out_of_range, -1)}
        assert await _delete_records(conn, "bad", {0: -2}) == {0: (ErrorCode.offset_out_of_range, -1)}
        follower_id = next(i for i in servers if i != leader_id)
        fconn = await stack.enter_async_context(connect(servers[follower_id]))
        assert await _delete_records(fconn, "bad", {0: 1}) == {0: (ErrorCode.not_leader_or_follower, -1)}
        assert await _delete_records(conn, "nosuch", {0: 1}) == {0: (ErrorCode.unknown_topic_or_partition, -1)}
        assert servers[leader_id].replica_manager.partitions[tp].log.log_start_offset == 0
        assert await _earliest(conn, "bad") == 0

        resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False, topics=[
            {"name": "compacted", "num_partitions": 1, "replication_factor": 3, "assignments": [],
             "configs": [{"name": "cleanup.policy", "value": "compact"}]}])
        assert resp.topics[0].error_code == 0
        ctp = TopicPartition("compacted", 0)
        await _wait_for(lambda: all(ctp in s.replica_manager.partitions for s in servers.values())
                        and any(s.replica_manager.partitions[ctp].is_leader for s in servers.values()))
        cconn = await stack.enter_async_context(connect(servers[_leader_of(servers, ctp)]))
        assert (await produce(cconn, "compacted", 0, batch([b"x"], key=b"k"), acks=-1)).error_code == 0
        assert await _delete_records(cconn, "compacted", {0: 1}) == {0: (ErrorCode.policy_violation, -1)}


async def test_delete_records_times_out_while_a_follower_does_not_fetch(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """A follower that stopped fetching (its broker still alive) holds the low watermark
    back: REQUEST_TIMED_OUT after timeout_ms, with the low watermark known when the request
    was accepted; the leader's log start offset has moved all the same, and the follower
    follows it once it fetches again."""
    async with AsyncExitStack() as stack:
        servers = await three_brokers_with_topic(stack, tmp_path, zk_chroot_connect, "slow",
                                                 replica_fetch_wait_max_ms="100",
                                                 replica_lag_time_max_ms="30000")
        tp = TopicPartition("slow", 0)
        leader_id = _leader_of(servers, tp)
        conn = await stack.enter_async_context(connect(servers[leader_id]))
        assert (await produce(conn, "slow", 0, batch([b"a"] * 8), acks=-1, timeout_ms=15000)).error_code == 0
        leader = servers[leader_id].replica_manager.partitions[tp]
        await _wait_for(lambda: all(r.log_start_offset == 0 for r in leader.remote_replicas.values()))
        follower_id = next(i for i in servers if i != leader_id)
        follower = servers[follower_id].replica_manager
        fetcher = next(iter(follower.fetcher_manager.fetchers.values()))
        endpoint = BrokerEndpoint(fetcher.leader_id, fetcher.host, fetcher.port)
        await follower.fetcher_manager.remove_fetchers([tp])

        assert await _delete_records(conn, "slow", {0: 5}, timeout_ms=300) == {0: (ErrorCode.request_timed_out, 0)}
        assert leader.log.log_start_offset == 5
        assert servers[leader_id].replica_manager.delete_records_purgatory.delayed == 0

        follower.fetcher_manager.add_fetchers({tp: endpoint})
        await _wait_for(lambda: follower.partitions[tp].log.log_start_offset == 5)
        await _wait_for(lambda: leader.low_watermark_if_leader(None) == 5)
        assert await _delete_records(conn, "slow", {0: 5}) == {0: (ErrorCode.none, 5)}


def test_real_clients_and_the_cli_delete_records(make_cluster: Any, tmp_path: Path) -> None:
    """Against 3 real broker processes (RF 3): confluent-kafka's AdminClient.delete_records
    and kafka-python's KafkaAdminClient.delete_records get the low watermark, ``kafkalike
    delete-records`` prints Kafka's lines (low watermark, or the partition's error) and
    exits 0, and consumers then start at the new log start offsets."""
    import confluent_kafka
    from confluent_kafka.admin import AdminClient as ConfluentAdmin
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    from kafka.admin import NewTopic

    cluster = make_cluster(brokers=3, overrides={"replica.fetch.wait.max.ms": "100"})
    bootstrap = cluster.bootstrap_servers
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic("purge", 3, 3)])
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for p in range(3):
            for i in range(10):
                producer.send("purge", value=b"v%d" % i, partition=p)
        producer.flush()
        producer.close()

        confluent = ConfluentAdmin({"bootstrap.servers": bootstrap})
        futures = confluent.delete_records([confluent_kafka.TopicPartition("purge", 0, 4)], request_timeout=30)
        assert next(iter(futures.values())).result(timeout=30).low_watermark == 4

        result = admin.delete_records({KTP("purge", 1): 6}, timeout_ms=30000)
        assert result[KTP("purge", 1)]["low_watermark"] == 6
    finally:
        admin.close()

    offsets = tmp_path / "offsets.json"
    offsets.write_text(json.dumps({"partitions": [{"topic": "purge", "partition": 2, "offset": -1},
                                                  {"topic": "purge", "partition": 0, "offset": 99}],
                                   "version": 1}))
    run = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "delete-records", "--bootstrap-server",
                          bootstrap, "--offset-json-file", str(offsets)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == [
        "Executing records delete operation",
        "Records delete operation completed:",
        "partition: purge-2\tlow_watermark: 10",
        "partition: purge-0\terror: org.apache.kafka.common.errors.OffsetOutOfRangeException: "
        "The requested offset is not within the range of offsets maintained by the server.",
    ]

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [KTP("purge", p) for p in range(3)]
        assert consumer.beginning_offsets(tps) == {tps[0]: 4, tps[1]: 6, tps[2]: 10}
    finally:
        consumer.close()

    offsets.write_text('{"partitions": [{"topic": "purge", "partition": 1, "offset": 1},'
                       ' {"topic": "purge", "partition": 1, "offset": 2}], "version": 1}')
    run = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "delete-records", "--bootstrap-server",
                          bootstrap, "--offset-json-file", str(offsets)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip() == "Error: Offset json file contains duplicate topic partitions: purge-1"


async def test_log_start_offset_survives_a_restart(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A log start offset moved inside a segment is written to log-start-offset-checkpoint
    (at the latest on clean shutdown) and a restarted broker answers it as earliest offset."""
    from tests.broker.broker_helpers import leader_and_isr, update_metadata

    async def lead(conn: Any, server: Any) -> None:
        me = server.broker_id
        await conn.send(leader_and_isr(server, "keep", {0: (me, (me,), (me,))}), api_version=6)
        await conn.send(update_metadata([server], "keep", {0: (me, (me,), (me,))}), api_version=7)

    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await lead(conn, server)
        assert (await produce(conn, "keep", 0, batch([b"a"] * 5))).error_code == 0
        assert await _delete_records(conn, "keep", {0: 3}) == {0: (ErrorCode.none, 3)}
    checkpoint = tmp_path / "logs-1" / "log-start-offset-checkpoint"
    assert "keep 0 3" in checkpoint.read_text().splitlines()
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await lead(conn, server)
        assert await _earliest(conn, "keep") == 3
        assert (await fetch(conn, "keep", 0, 2)).error_code == ErrorCode.offset_out_of_range


def test_fuzzed_delete_records_are_answered_and_lose_nothing(make_cluster: Any) -> None:
    """120 seeded random DeleteRecords requests (extreme offsets, partition indexes, timeouts,
    names, array lengths; every version) against a real broker process are each answered with
    a well-formed response, no handler fails, the broker keeps serving, and the topic's log
    start offset never passes its high watermark."""
    import random

    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP
    from kafka.admin import NewTopic

    from kafkalike.protocol.api_keys import SUPPORTED_APIS
    from kafkalike.protocol.codec import decode_response, encode_request, request_class
    from tests.broker.test_admin_fuzz import RandomRequests, RawClient, _api_versions_ok

    cluster = make_cluster(brokers=1, overrides={"auto.create.topics.enable": "false"})
    bootstrap = cluster.bootstrap_servers
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic("t0", 3, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(30):
        producer.send("t0", b"v", partition=i % 3)
    producer.flush()
    producer.close()

    host, port = cluster.broker_address(1).rsplit(":", 1)
    client = RawClient(host, int(port))
    rng = random.Random(17)
    gen = RandomRequests(rng)
    lo, hi = SUPPORTED_APIS[ApiKey.DELETE_RECORDS]
    answered = 0
    try:
        for i in range(120):
            version = rng.randint(lo, hi)
            request = gen.entity(request_class(ApiKey.DELETE_RECORDS, version))
            if rng.random() < 0.5:  # aim half of them at the real topic
                request = type(request)(timeout=datetime.timedelta(milliseconds=rng.choice([0, 1, 500])), topics=tuple(
                    type(t)(name="t0", partitions=t.partitions) for t in request.topics[:3]))
            body = client.exchange(encode_request(request, correlation_id=i))
            assert body is not None, f"connection closed after DeleteRecords v{version}"
            decode_response(body, ApiKey.DELETE_RECORDS, version)
            answered += 1
            assert cluster.broker_alive(1)
        assert _api_versions_ok(client)
    finally:
        client.close()
    assert answered == 120
    crashes = [line for line in cluster.log_path(1).read_text(errors="replace").splitlines()
               if "request_handler_failed" in line]
    assert not crashes, crashes[:3]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [KTP("t0", p) for p in range(3)]
        starts, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        assert ends == {tp: 10 for tp in tps}
        assert all(0 <= starts[tp] <= ends[tp] for tp in tps)
        print("fuzz: log start offsets", starts)
    finally:
        consumer.close()


async def test_waiting_delete_records_answers_not_leader_when_leadership_moves(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """A DeleteRecords waiting for a follower that does not fetch is answered
    NOT_LEADER_OR_FOLLOWER (low watermark -1) as soon as a LeaderAndIsr makes its broker a
    follower, long before its timeout."""
    from tests.broker.broker_helpers import leader_and_isr

    async with AsyncExitStack() as stack:
        servers = await three_brokers_with_topic(stack, tmp_path, zk_chroot_connect, "move",
                                                 replica_fetch_wait_max_ms="100",
                                                 replica_lag_time_max_ms="30000")
        tp = TopicPartition("move", 0)
        leader_id = _leader_of(servers, tp)
        conn = await stack.enter_async_context(connect(servers[leader_id]))
        assert (await produce(conn, "move", 0, batch([b"a"] * 4), acks=-1, timeout_ms=15000)).error_code == 0
        leader = servers[leader_id].replica_manager
        follower_id = next(i for i in servers if i != leader_id)
        await servers[follower_id].replica_manager.fetcher_manager.remove_fetchers([tp])
        ctrl = await stack.enter_async_context(connect(servers[leader_id]))
        answer: dict[int, tuple[int, int]] = {}

        async def delete() -> None:
            answer.update(await _delete_records(conn, "move", {0: 2}, timeout_ms=60000))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(delete)
            await _wait_for(lambda: leader.statistics().delayed_delete_records == 1)
            p = leader.partitions[tp]
            others = tuple(i for i in servers if i != leader_id)
            with trio.fail_after(10):
                resp = await ctrl.send(leader_and_isr(servers[leader_id], "move", {
                    0: (follower_id, (follower_id,) + tuple(i for i in others if i != follower_id) + (leader_id,),
                        (1, 2, 3))}, leader_epoch=p.leader_epoch + 1, zk_version=p.partition_epoch),
                    api_version=6)
            assert all(e.error_code == 0 for t in resp.topics for e in t.partition_errors)
            with trio.fail_after(10):
                while not answer:
                    await trio.sleep(0.02)
        assert answer == {0: (ErrorCode.not_leader_or_follower, -1)}
        assert leader.delete_records_purgatory.delayed == 0
