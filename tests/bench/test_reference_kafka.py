"""The reference Apache Kafka 3.9 tooling (kafkalike.bench.reference_kafka).

The default run checks the pure parts (tool output parsers, broker configs, the fetch cache).
The end-to-end smoke tests need Maven downloads and three broker JVMs per cluster, so they
run only with KAFKALIKE_REFERENCE=1: each brings a 3-broker cluster up (ZooKeeper mode on a
private node, ZooKeeper mode under a chroot of the test session's kafkalike ensemble, KRaft
mode), produces and consumes with confluent-kafka and with Kafka's own tools, and tears it
down by pid.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from kafkalike.bench import reference_kafka as rk
from kafkalike.bench.reference_kafka import ReferenceKafka, ReferenceKafkaError

REFERENCE = os.environ.get("KAFKALIKE_REFERENCE") == "1"
needs_reference = pytest.mark.skipif(
    not REFERENCE, reason="needs Maven downloads and broker JVMs: set KAFKALIKE_REFERENCE=1")

# Real summary output of Kafka 3.9.2's tools (captured from a reference cluster run).
PRODUCER_PERF_OUTPUT = (
    "49666 records sent, 9933.2 records/sec (0.95 MB/sec), 1432.5 ms avg latency, 2508.0 ms max latency.\n"
    "100000 records sent, 24372.410431 records/sec (2.32 MB/sec), 1953.96 ms avg latency, "
    "2881.00 ms max latency, 1935 ms 50th, 2771 ms 95th, 2826 ms 99th, 2881 ms 99.9th.\n"
)
CONSUMER_PERF_OUTPUT = (
    "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
    "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
    "2026-11-21 05:46:05:447, 2026-11-21 05:46:08:596, 9.5367, 3.0285, 100000, 31756.1131, "
    "2713, 436, 21.8733, 229357.7982\n"
)


def test_producer_perf_summary_is_parsed_from_the_final_line() -> None:
    """The summary with percentiles is read, not the periodic progress line before it."""
    r = rk.parse_producer_perf(PRODUCER_PERF_OUTPUT)
    assert (r.records, r.p50_ms, r.p95_ms, r.p99_ms, r.p999_ms) == (100000, 1935, 2771, 2826, 2881)
    assert r.records_per_sec == pytest.approx(24372.410431)
    assert r.mb_per_sec == pytest.approx(2.32)
    assert r.max_latency_ms == pytest.approx(2881.0)


def test_producer_perf_without_summary_is_a_typed_error() -> None:
    """Output lacking the final summary line raises ReferenceKafkaError."""
    with pytest.raises(ReferenceKafkaError, match="no ProducerPerformance summary"):
        rk.parse_producer_perf(PRODUCER_PERF_OUTPUT.splitlines()[0])


def test_consumer_perf_summary_is_parsed_by_header_names() -> None:
    """Each ConsumerPerformance column lands in its field."""
    r = rk.parse_consumer_perf(CONSUMER_PERF_OUTPUT)
    assert (r.records, r.rebalance_ms, r.fetch_ms) == (100000, 2713, 436)
    assert r.mb == pytest.approx(9.5367)
    assert r.fetch_records_per_sec == pytest.approx(229357.7982)


def test_consumer_perf_with_short_value_line_is_a_typed_error() -> None:
    """A value line that does not match the header raises ReferenceKafkaError."""
    broken = CONSUMER_PERF_OUTPUT.rsplit(",", 1)[0]
    with pytest.raises(ReferenceKafkaError, match="no ConsumerPerformance summary"):
        rk.parse_consumer_perf(broken)


def test_zk_mode_broker_config_uses_own_address_and_chroot(tmp_path: Path) -> None:
    """ZooKeeper-mode brokers get broker.id, 127.0.1.<id> listeners and the chroot."""
    c = ReferenceKafka(mode="zk", base_dir=tmp_path, zookeeper="127.0.0.1:2181,127.0.0.2:2181")
    props = c.broker_properties(2)
    assert props["broker.id"] == "2"
    assert props["listeners"] == "PLAINTEXT://127.0.1.2:9092"
    assert props["zookeeper.connect"] == "127.0.0.1:2181,127.0.0.2:2181/kafka-reference"
    assert props["min.insync.replicas"] == "2" and props["default.replication.factor"] == "3"
    assert "process.roles" not in props
    assert c.bootstrap == "127.0.1.1:9092,127.0.1.2:9092,127.0.1.3:9092"


def test_kraft_mode_broker_config_names_every_voter(tmp_path: Path) -> None:
    """KRaft nodes are combined broker+controller with all N nodes as voters."""
    c = ReferenceKafka(mode="kraft", base_dir=tmp_path, port=19092, controller_port=19093,
                       overrides={"num.partitions": "6"})
    props = c.broker_properties(3)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "3"
    assert props["controller.quorum.voters"] == (
        "1@127.0.1.1:19093,2@127.0.1.2:19093,3@127.0.1.3:19093")
    assert props["listeners"] == "PLAINTEXT://127.0.1.3:19092,CONTROLLER://127.0.1.3:19093"
    assert props["num.partitions"] == "6"
    assert c.zookeeper_connect is None


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    """A mode other than zk/kraft raises ReferenceKafkaError."""
    with pytest.raises(ReferenceKafkaError, match="mode must be"):
        ReferenceKafka(mode="raft", base_dir=tmp_path)  # type: ignore[arg-type]


def test_cluster_id_is_22_char_url_safe_base64() -> None:
    """Generated cluster ids have Kafka's Uuid string form."""
    for _ in range(200):
        cid = rk.new_cluster_id()
        assert len(cid) == 22 and not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_fetch_is_cached_by_the_pom_digest(tmp_path: Path) -> None:
    """With a stamp matching the pom, fetch returns at once without running Maven."""
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / ".fetched").write_text(rk._pom_digest(pom) + "\n")
    started = time.monotonic()
    assert rk.fetch(lib_dir=lib, pom=pom) == lib
    assert time.monotonic() - started < 1.0
    pom.write_text("<project><!-- changed --></project>")
    assert (lib / ".fetched").read_text().strip() != rk._pom_digest(pom)


def test_load_without_cluster_is_a_typed_error(tmp_path: Path) -> None:
    """down/status on a directory with no cluster raise ReferenceKafkaError."""
    with pytest.raises(ReferenceKafkaError, match="no reference cluster"):
        ReferenceKafka.load(tmp_path)


# ------------------------------------------------------------------ end to end (opt-in)


def _produce_and_consume(cluster: ReferenceKafka, topic: str, count: int = 20) -> list[bytes]:
    """Produce ``count`` records with acks=all through librdkafka and read them back."""
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(count):
        producer.produce(topic, key=str(i % 3).encode(), value=f"record-{i}".encode())
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
    finally:
        consumer.close()
    return got


@pytest.fixture(scope="module")
def fetched() -> Path:
    """Kafka's jars in reference/lib (Maven, cached)."""
    if not REFERENCE:
        pytest.skip("KAFKALIKE_REFERENCE=1 not set")
    return rk.fetch()


def _cluster(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
             overrides: dict[str, str] | None = None) -> Iterator[ReferenceKafka]:
    hosts = [f"{rk.HOST_PREFIX}{i}" for i in (1, 2, 3)]
    kwargs: dict[str, object] = {}
    if kind == "zk-ensemble":
        kwargs["zookeeper"] = request.getfixturevalue("zk_connect")
        kwargs["chroot"] = f"/kafka-reference-{uuid.uuid4().hex[:8]}"
    elif kind == "zk-private":
        kwargs["zookeeper_port"] = rk.find_free_port([rk.ZOOKEEPER_HOST], span=1)
    port = rk.find_free_port(hosts, span=2)
    c = ReferenceKafka(mode="kraft" if kind == "kraft" else "zk", base_dir=tmp_path / "ref",
                       port=port, controller_port=port + 1, overrides=overrides or {},
                       **kwargs)  # type: ignore[arg-type]
    try:
        c.up(fresh=True, timeout=240)
        yield c
    finally:
        c.down(timeout=60)
        assert not c.running()


@pytest.fixture(params=["zk-private", "zk-ensemble", "kraft"])
def cluster(request: pytest.FixtureRequest, fetched: Path, tmp_path: Path) -> Iterator[ReferenceKafka]:
    """A running 3-broker reference cluster on free ports, stopped by pid afterwards."""
    yield from _cluster(request.param, request, tmp_path)


@pytest.fixture
def zk_cluster_short_sessions(request: pytest.FixtureRequest, fetched: Path,
                              tmp_path: Path) -> Iterator[ReferenceKafka]:
    """A ZooKeeper-mode cluster (private node) with 6 s broker sessions."""
    yield from _cluster("zk-private", request, tmp_path, {"zookeeper.session.timeout.ms": "6000"})


@needs_reference
def test_reference_cluster_serves_real_clients_and_kafka_tools(cluster: ReferenceKafka) -> None:
    """All three brokers answer; librdkafka and Kafka's own tools produce and consume."""
    brokers, controller = cluster.metadata_brokers()
    assert brokers == {1, 2, 3} and controller >= 0
    assert all(n.alive for n in cluster.status().nodes)
    cluster.create_topic("smoke", partitions=6, replication_factor=3)
    leaders = cluster.partition_leaders("smoke")
    assert set(leaders) == set(range(6)) and set(leaders.values()) <= {1, 2, 3}
    assert cluster.active_controller() in {1, 2, 3}
    got = _produce_and_consume(cluster, "smoke")
    assert sorted(got) == sorted(f"record-{i}".encode() for i in range(20))
    perf = cluster.producer_perf("smoke", 2000, 100, acks="all")
    assert perf.records == 2000
    consumed = cluster.consumer_perf("smoke", 2020)
    assert consumed.records == 2020
    cluster.console_produce("console", ["alpha", "beta"])
    assert cluster.console_consume("console", 2) == ["alpha", "beta"]


@needs_reference
def test_killed_zk_mode_broker_restarts_after_its_registration_expires(
        zk_cluster_short_sessions: ReferenceKafka) -> None:
    """After kill -9, start_broker waits out the old ephemeral registration, then rejoins."""
    c = zk_cluster_short_sessions
    assert c.registered_brokers() == {1, 2, 3}
    c.kill_broker(2)
    assert c.pid(2) is None
    started = time.monotonic()
    c.start_broker(2)
    assert time.monotonic() - started > 1.0  # it had to wait for the session to expire
    assert c.registered_brokers() == {1, 2, 3}
    assert c.metadata_brokers()[0] == {1, 2, 3}
    assert c.stop_broker(3) > 0
    assert c.registered_brokers() == {1, 2}
