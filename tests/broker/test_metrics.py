"""Every broker process serves Prometheus /metrics with the JMX exporter's names for
Kafka's MBeans, parsed here with prometheus-client's own parser on a real 3-broker cluster
(exactly one ActiveControllerCount 1; BytesIn/MessagesIn and consumer lag move with traffic;
UnderReplicatedPartitions > 0 on the survivors after a kill -9 and 0 again after the restart),
plus the endpoint's answers to bad HTTP and a taken kafkalike.metrics.port."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from kafkalike.broker.kafka_server import BrokerStartupError
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port
from tests.broker.broker_helpers import make_config

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of ``url``: (name, sorted labels) -> value, via prometheus_client.parser."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, KeyError) as exc:
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last!r})")


def metrics_cluster(make_cluster: Callable[..., LocalCluster]) -> LocalCluster:
    """3 broker processes with /metrics on a free port of 127.0.0.1-3, short sessions and lag time."""
    port = find_free_base_port([f"127.0.0.{i}" for i in (1, 2, 3)], low=33000, high=34000)
    # the session outlives replica.lag.time.max.ms by several seconds, so after a kill the leader
    # shrinks the ISR itself (IsrShrinks) before the controller removes the dead replica
    return make_cluster(3, overrides={"kafkalike.metrics.port": str(port), "zookeeper.session.timeout.ms": "10000",
                                      "replica.lag.time.max.ms": "3000", "replica.fetch.wait.max.ms": "100"})


def urp(cluster: LocalCluster, broker_ids: list[int]) -> float:
    return sum(value(scrape(cluster.metrics_url(i)), "kafka_server_replicamanager_underreplicatedpartitions")
               for i in broker_ids)


def test_metrics_follow_controller_traffic_lag_and_a_killed_broker(
        make_cluster: Callable[..., LocalCluster]) -> None:
    """Exactly one broker reports ActiveControllerCount 1; producing raises BytesIn/MessagesIn per topic
    and in total; consumer lag appears on the group's coordinator; after a kill -9 the survivors report
    UnderReplicatedPartitions > 0 for an RF-3 topic, and 0 again once the broker is back in the ISR."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    cluster = metrics_cluster(make_cluster)
    ids = cluster.broker_ids
    assert all(cluster.metrics_url(i).startswith(f"http://127.0.0.{i}:") for i in ids)
    active = {i: value(scrape(cluster.metrics_url(i)), "kafka_controller_kafkacontroller_activecontrollercount")
              for i in ids}
    assert sorted(active.values()) == [0.0, 0.0, 1.0], active

    topic = "metrics-rf3"
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, 1, 3)], timeout_ms=30000)
    finally:
        admin.close()
    wait_for(lambda: sum(value(scrape(cluster.metrics_url(i)), "kafka_server_replicamanager_partitioncount")
                         for i in ids) >= 3, 30, "3 replicas of the topic hosted")
    before = {i: scrape(cluster.metrics_url(i)) for i in ids}
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all")
    try:
        for n in range(10):
            producer.send(topic, f"value-{n}".encode(), partition=0)
        producer.flush(timeout=30)
    finally:
        producer.close()
    after = {i: scrape(cluster.metrics_url(i)) for i in ids}
    leaders = [i for i in ids if value(after[i], "kafka_server_replicamanager_leadercount") >= 1]
    gained = {i: value(after[i], "kafka_server_brokertopicmetrics_messagesin_total", topic=topic)
              for i in ids if (("kafka_server_brokertopicmetrics_messagesin_total", (("topic", topic),)) in after[i])}
    assert sum(gained.values()) == 10, gained
    for i, n in gained.items():  # the per-topic count is part of the all-topics one, bytes rose with it
        assert value(after[i], "kafka_server_brokertopicmetrics_messagesin_total") >= n
        assert value(after[i], "kafka_server_brokertopicmetrics_bytesin_total", topic=topic) > 10 * len("value-0")
        assert value(after[i], "kafka_server_brokertopicmetrics_bytesin_total") > \
            value(before[i], "kafka_server_brokertopicmetrics_bytesin_total")
        assert value(after[i], "kafka_network_requestmetrics_requests_total", request="Produce") >= 1
        assert value(after[i], "kafka_network_requestmetrics_totaltimems_count", request="Produce") >= 1
    assert set(gained) <= set(leaders)

    # consume and commit 10, then 5 more arrive: the coordinator reports lag 5 for the group
    consumer = KafkaConsumer(topic, bootstrap_servers=cluster.bootstrap_servers, group_id="metrics-group",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        got = 0
        deadline = time.monotonic() + 60
        while got < 10 and time.monotonic() < deadline:
            got += sum(len(r) for r in consumer.poll(timeout_ms=500).values())
        assert got == 10
        consumer.commit()
    finally:
        consumer.close()
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all")
    try:
        for n in range(5):
            producer.send(topic, b"more", partition=0)
        producer.flush(timeout=30)
    finally:
        producer.close()
    lag_key = ("kafka_consumergroup_lag", (("consumergroup", "metrics-group"), ("partition", "0"), ("topic", topic)))

    def lag_reported() -> bool:
        reports = [s[lag_key] for s in (scrape(cluster.metrics_url(i)) for i in ids) if lag_key in s]
        return reports == [5.0]

    wait_for(lag_reported, 30, "one broker (the coordinator) reporting lag 5")
    out_key = ("kafka_server_brokertopicmetrics_bytesout_total", (("topic", topic),))
    assert sum(s.get(out_key, 0) for s in (scrape(cluster.metrics_url(i)) for i in ids)) > 10 * len("value-0")

    # kill -9 a follower of the topic: its leader (alive) shrinks the ISR
    victim = next(i for i in reversed(ids) if i not in gained)
    survivors = [i for i in ids if i != victim]
    wait_for(lambda: urp(cluster, ids) == 0, 30, "every ISR full before the kill")
    assert cluster.kill_broker(victim)
    wait_for(lambda: urp(cluster, survivors) > 0, 40, "UnderReplicatedPartitions > 0 on the survivors")
    wait_for(lambda: sum(value(scrape(cluster.metrics_url(i)), "kafka_server_replicamanager_isrshrinks_total")
                         for i in survivors) >= 1, 30, "an ISR shrink counted by a surviving leader")
    cluster.start_broker(victim)
    cluster.wait_registered([victim], timeout=60)
    wait_for(lambda: urp(cluster, ids) == 0, 60, "UnderReplicatedPartitions back to 0 after the restart")
    assert sum(value(scrape(cluster.metrics_url(i)), "kafka_server_replicamanager_isrexpands_total")
               for i in ids) >= 1
    active = {i: value(scrape(cluster.metrics_url(i)), "kafka_controller_kafkacontroller_activecontrollercount")
              for i in ids}
    assert sorted(active.values()) == [0.0, 0.0, 1.0], active


def _raw(host: str, port: int, data: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.trio
async def test_metrics_endpoint_answers_bad_http_and_keeps_serving(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Unknown paths get 404, POST 405, an endless header 400 and a garbage line 400; /metrics still
    answers afterwards and the broker keeps running."""
    from tests.broker.broker_helpers import running_broker

    async with running_broker(tmp_path, zk_chroot_connect, **{"kafkalike.metrics.port": "0"}) as server:
        host, port = server.metrics_server.bound

        def checks() -> None:
            assert _raw(host, port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")
            assert _raw(host, port, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 405")
            assert _raw(host, port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000).startswith(b"HTTP/1.1 400")
            assert _raw(host, port, b"\x00\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
            samples = scrape(f"http://{host}:{port}/metrics")
            assert value(samples, "kafka_server_sessionexpirelistener_sessionstate", state="CONNECTED") == 1
            assert value(samples, "kafka_server_sessionexpirelistener_sessionstate", state="EXPIRED") == 0
            assert value(samples, "kafka_server_zookeeperclientmetrics_zookeeperrequestlatencyms_count") > 0
            assert value(samples, "kafka_server_zookeeperclientmetrics_zookeeperrequestlatencyms_sum") > 0
            assert value(samples, "kafka_controller_kafkacontroller_activecontrollercount") == 1
            assert value(samples, "kafka_server_socket_server_metrics_connection_count") >= 1  # the controller's
            assert value(samples, "kafka_network_socketserver_memorypoolused") >= 0

        await trio.to_thread.run_sync(checks)
        assert not server._shutdown.is_set()


@pytest.mark.trio
async def test_a_taken_metrics_port_set_in_the_config_stops_startup(tmp_path: Path, zk_chroot_connect: str) -> None:
    """kafkalike.metrics.port set explicitly to a port in use: start-up fails with a one-line reason
    naming the key (as a taken listener port does)."""
    from kafkalike.broker.kafka_server import KafkaServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = KafkaServer(make_config(tmp_path, zk_chroot_connect, **{"kafkalike.metrics.port": str(port)}))
        with pytest.raises(BrokerStartupError, match="kafkalike.metrics.port"):
            with trio.fail_after(60):
                await server.run()
