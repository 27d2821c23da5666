"""kafkalike.debug.request.hops (broker/request_hops.py): with the key on, real broker
processes log a request_hops line per Produce and Fetch whose marks follow the path of an
acks=all round trip; with it off (the default) nothing is timed or logged."""

from __future__ import annotations

import uuid

import structlog
import trio

from kafkalike.bench.hop_timing import FETCH_HOPS, PRODUCE_HOPS, broker_hop_lines, summarize
from kafkalike.broker import request_hops
from kafkalike.broker.kafka_config import KafkaConfig
from tests.fixtures_cluster import MakeCluster, create_topic

PRODUCE_ORDER = ("received", "started", "appended", "follower_fetch_received", "hw_advanced", "woken",
                 "response_queued", "written")


def test_acks_all_produce_and_fetches_log_their_hops_in_path_order(make_cluster: MakeCluster) -> None:
    """Ten acks=all records sent one by one to a 3-replica partition and read back: the
    leader logs each Produce that waited for its followers with every mark, in the order of
    the path (frame read, handler started, appended, the follower Fetch that moved the high
    watermark arrived, high watermark advanced, task woken, response encoded, written); the
    follower's previous response went out after the append; follower and consumer Fetches
    that waited in the purgatory log their read and written marks."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    cluster = make_cluster(3, overrides={"kafkalike.debug.request.hops": "true"})
    topic = f"hops-{uuid.uuid4().hex[:6]}"
    create_topic(cluster.bootstrap_servers, topic, 1, 3, leaders_within=30)
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all", "linger.ms": 0})
    for i in range(10):
        producer.produce(topic, f"r{i}".encode(), partition=0)
        assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "hops",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = 0
    for _ in range(300):
        msg = consumer.poll(0.1)
        if msg is not None and msg.error() is None:
            got += 1
            if got == 10:
                break
    consumer.close()
    assert got == 10
    cluster.stop()  # the brokers' last lines reach their log files
    lines = broker_hop_lines(cluster.log_path(b) for b in cluster.broker_ids)
    produces = [ln for ln in lines if ln.kind == "produce" and ln.delayed]
    assert len(produces) >= 5, [ln for ln in lines if ln.kind == "produce"]
    for ln in produces:
        assert ln.api == "Produce"
        times = [ln.marks[m] for m in PRODUCE_ORDER]
        assert times == sorted(times), ln
        assert ln.marks["appended"] <= ln.marks["follower_prev_written"] <= ln.marks["follower_fetch_received"], ln
    followers = [ln for ln in lines if ln.kind == "follower" and ln.delayed]
    assert followers and all(ln.api == "Fetch" for ln in followers)
    for ln in followers:
        assert 0 <= ln.marks["started"] <= ln.marks["read"] <= ln.marks["response_queued"] <= ln.marks["written"], ln
    assert any(ln.kind == "consumer" for ln in lines)
    summary = summarize(lines, "produce", PRODUCE_HOPS)
    assert summary.requests == len(produces)
    assert all(n == len(produces) for _, _, n in summary.rows)
    assert summarize(lines, "follower", FETCH_HOPS).requests == len(followers)


def test_hop_timing_is_off_by_default_and_marks_outside_a_timed_request_log_nothing() -> None:
    """The key defaults to false; with no request being timed in the task, mark, finish and
    a DelayedProduce's replication mark record and log nothing; a timed request logs one
    line with its marks as microseconds after the frame was read."""
    assert KafkaConfig.from_properties("zookeeper.connect=127.0.0.1:2181\n")["kafkalike.debug.request.hops"] is False

    async def serve() -> list[dict[str, object]]:
        with structlog.testing.capture_logs() as logs:
            request_hops.mark("appended")
            request_hops.mark_replicated(None)
            request_hops.finish(123)
            assert request_hops.current() is None
            hops = request_hops.begin("Produce", "produce", received_ns=1_000_000)
            hops.mark("appended", 3_000_000)
            request_hops.mark("appended")  # the first mark of a name wins
            request_hops.finish(5_000_000)
            request_hops.finish(6_000_000)  # once only
            assert request_hops.current() is None
        return logs

    logs = trio.run(serve)
    assert [entry["event"] for entry in logs] == ["request_hops"]
    assert logs[0]["appended_us"] == 2000 and logs[0]["written_us"] == 4000 and logs[0]["api"] == "Produce"
