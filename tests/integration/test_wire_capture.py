"""A real client session with a 3-broker kafkalike cluster, captured with dumpcap from the
brokers' first byte, decodes cleanly in Wireshark's Kafka dissector (`tshark -V -d
tcp.port==PORT,kafka`): no malformed packet, no "unsupported version", no error- or
warning-level expert info, no frame left undissected.

Debian 12's tshark (Wireshark 4.0) knows only older versions than kafkalike serves by
default, so the cluster runs with ``kafkalike.api.versions=wireshark-4.0`` (clients get the
capped table) and ``inter.broker.protocol.version=2.4`` (the controller sends LeaderAndIsr
v4 / UpdateMetadata v6 / StopReplica v2, followers Fetch v11 / OffsetForLeaderEpoch v3):
docs/protocol.md, "Wireshark". Skipped only when tshark/dumpcap are missing or cannot
capture on ``lo``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

sys.path.insert(0, str(Path(__file__).parents[1] / "protocol"))

import tshark_probe  # noqa: E402  (dumpcap start-up detection shared with the codec probe)

from kafkalike.client.admin import AdminClient  # noqa: E402
from kafkalike.cluster.local_cluster import LocalCluster  # noqa: E402
from kafkalike.cluster.zk_ensemble import find_free_base_port  # noqa: E402
from kafkalike.protocol.api_keys import WIRESHARK_4_0_MAX_VERSIONS  # noqa: E402

WIRESHARK_OVERRIDES = {
    "kafkalike.api.versions": "wireshark-4.0",
    "inter.broker.protocol.version": "2.4",
    "default.replication.factor": "3",
    "num.partitions": "2",
    "min.insync.replicas": "2",
    "offsets.topic.num.partitions": "3",
}
RECORDS = 300

# expert severities (epan/proto.h): PI_CHAT 0x00200000, PI_NOTE 0x00400000,
# PI_WARN 0x00600000, PI_ERROR 0x00800000
_PI_WARN = 0x00600000


@pytest.fixture
def capture(tmp_path: Path, zk_connect: str) -> Iterator[tuple[LocalCluster, Path, subprocess.Popen]]:
    """dumpcap on lo for one free port, then a 3-broker cluster on that port (so the capture
    holds every connection from its first byte); both stopped by pid afterwards."""
    if not tshark_probe.available():
        pytest.skip("tshark/dumpcap not installed (./scripts/test installs Debian's tshark)")
    hosts = [f"127.0.0.{i}" for i in (1, 2, 3)]
    port = find_free_base_port(hosts, low=30000, high=32000)
    pcap = tmp_path / "session.pcapng"
    dumpcap = subprocess.Popen(["dumpcap", "-i", "lo", "-f", f"tcp port {port}", "-w", str(pcap)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cluster = LocalCluster(tmp_path / "cluster", brokers=3, base_port=port, zookeeper_connect=zk_connect,
                           chroot=f"kafkalike-wire-{uuid.uuid4().hex[:8]}", overrides=WIRESHARK_OVERRIDES)
    try:
        try:
            tshark_probe._wait_capturing(dumpcap)
        except RuntimeError as exc:
            pytest.skip(f"cannot capture on lo: {exc}")
        cluster.start(timeout=60)
        yield cluster, pcap, dumpcap
    finally:
        try:
            cluster.stop()
        finally:
            tshark_probe.stop_capture(dumpcap)


def _client_session(cluster: LocalCluster, topic: str) -> None:
    """kafka-python and confluent-kafka (librdkafka) produce with acks=all to an RF=3 topic
    and read everything back; kafkalike's admin client creates and deletes the topic; broker
    3 is stopped (controlled shutdown) and restarted in between, so the capture also holds
    ControlledShutdown, leader moves and a returning follower's OffsetsForLeaderEpoch.

    kafka-python is told ``api_version=(2, 4)``: unconfigured, it opens every bootstrap
    connection with ApiVersions v4, a version Wireshark 4.0 does not know (the client's own
    request is flagged, whatever the broker answers); with it, kafka-python starts at v3 and
    still negotiates every other version from the broker's table."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka import TopicPartition as RdTopicPartition
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    async def admin(action: str) -> None:
        async with AdminClient(cluster.bootstrap_servers) as client:
            if action == "create":
                await client.create_topics([topic])
            else:
                await client.delete_topics([topic])

    trio.run(admin, "create")
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all",
                             compression_type="gzip", api_version=(2, 4))
    for i in range(RECORDS):
        producer.send(topic, key=b"k%d" % (i % 7), value=b"v%d" % i, headers=[("h", b"x")])
    producer.flush(30)
    producer.close()

    cluster.stop_broker(3)
    rd = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all", "linger.ms": 5})
    failed: list[object] = []
    for i in range(RECORDS):
        rd.produce(topic, key=b"r%d" % (i % 5), value=b"w%d" % i, headers=[("h", b"y")],
                   on_delivery=lambda err, _msg: failed.append(err) if err else None)
    assert rd.flush(30) == 0 and failed == []
    cluster.start_broker(3)
    cluster.wait_registered([3], timeout=30)
    cluster.wait_ready(cluster.broker_ids, timeout=30)

    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers, api_version=(2, 4),
                             auto_offset_reset="earliest", consumer_timeout_ms=10000,
                             enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    got = []
    for m in consumer:
        got.append(m.value)
        if len(got) == 2 * RECORDS:
            break
    consumer.close()
    assert sorted(got) == sorted([b"v%d" % i for i in range(RECORDS)] + [b"w%d" % i for i in range(RECORDS)])

    rc = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "unused",
                   "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    rc.assign([RdTopicPartition(topic, p, 0) for p in (0, 1)])
    read = 0
    deadline = time.monotonic() + 20
    while read < 2 * RECORDS and time.monotonic() < deadline:
        for m in rc.consume(500, timeout=1.0):
            assert m.error() is None, m.error()
            read += 1
    rc.close()
    assert read == 2 * RECORDS
    trio.run(admin, "delete")
    time.sleep(1.5)  # StopReplica(delete) and UpdateMetadata reach every broker


def _tshark(pcap: Path, port: int, *args: str) -> str:
    return subprocess.run(["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},kafka", *args],
                          capture_output=True, text=True, timeout=120, check=True).stdout


def test_client_session_decodes_in_tshark_without_malformed_frames(
        capture: tuple[LocalCluster, Path, subprocess.Popen]) -> None:
    """Producing, consuming, topic creation/deletion, the controller's requests and the
    followers' fetches all dissect: every Kafka PDU decoded, none malformed or unknown."""
    cluster, pcap, dumpcap = capture
    port = cluster.base_port
    _client_session(cluster, f"wire-{uuid.uuid4().hex[:8]}")
    cluster.stop()
    tshark_probe.stop_capture(dumpcap)
    assert pcap.exists() and pcap.stat().st_size > 0

    rows = _tshark(pcap, port, "-Y", "kafka", "-T", "fields", "-E", "separator=|",
                   "-e", "frame.number", "-e", "kafka.request_key", "-e", "kafka.response_key",
                   "-e", "kafka.api_version", "-e", "_ws.malformed", "-e", "_ws.expert.severity",
                   "-e", "_ws.expert.message", "-e", "_ws.col.Info").splitlines()
    requests: Counter[tuple[int, int]] = Counter()
    responses = 0
    flagged = []
    for row in rows:
        frame, req_keys, resp_keys, versions, malformed, severity, message, info = (
            row.split("|") + [""] * 8)[:8]
        req = [int(k) for k in req_keys.split(",") if k]
        resp = [int(k) for k in resp_keys.split(",") if k]
        vers = [int(v) for v in versions.split(",") if v]
        responses += len(resp)
        for key, version in zip(req, vers):
            requests[(key, version)] += 1
        severities = [int(s, 0) for s in severity.split(",") if s]
        if (malformed or "Unsupported" in info or "Unknown" in message
                or any(s >= _PI_WARN for s in severities)):
            flagged.append(f"frame {frame}: {info.strip()} [{message.strip()}]")
    total = sum(requests.values())
    print(f"\ntshark: {len(rows)} frames, {total} requests, {responses} responses, "
          f"{len(flagged)} flagged; (api, version): count {dict(sorted(requests.items()))}")
    apis = {key for key, _ in requests}
    # clients': ApiVersions, Metadata, Produce, Fetch, ListOffsets, FindCoordinator,
    # InitProducerId, CreateTopics, DeleteTopics; controller's: LeaderAndIsr, StopReplica,
    # UpdateMetadata; brokers': ControlledShutdown, followers' Fetch and OffsetForLeaderEpoch
    assert {18, 3, 0, 1, 2, 19, 20, 4, 5, 6, 7, 23} <= apis, sorted(apis)
    for pair in [(1, 11), (23, 3), (4, 4), (6, 6), (5, 2)]:
        assert pair in requests, f"{pair} (inter.broker.protocol.version 2.4) not seen"
    assert all(v <= WIRESHARK_4_0_MAX_VERSIONS[k] for k, v in requests)
    assert responses >= total - 10  # a follower's long poll may be cut by the shutdown
    assert flagged == [], "tshark flagged frames:\n" + "\n".join(flagged[:40])
    verbose = _tshark(pcap, port, "-V")
    assert "Malformed" not in verbose and "Unsupported" not in verbose and "[Request missing]" not in verbose
