"""kafkalike.api.versions and inter.broker.protocol.version: which versions a broker serves
and which it sends.

- The property switches the table a running broker advertises in ApiVersions (normal and
  KIP-511 fallback answers) and the versions it accepts (in-process KafkaServer over TCP).
- A bad value stops start-up with one line naming the key.
- The replica fetcher picks Fetch / OffsetForLeaderEpoch / ListOffsets by IBP as Kafka's
  ReplicaFetcherThread does, and a follower at IBP 3.9 still replicates from leaders that
  advertise the capped table (real broker processes, started from server.properties, whose
  ApiVersions answers are checked too).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import trio

from kafkalike.broker.kafka_config import ConfigError, KafkaConfig
from kafkalike.broker.replica_fetcher import fetcher_request_versions
from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import (SUPPORTED_APIS, TSHARK_COMPATIBLE_APIS, ApiKey,
                                         request_versions_for_ibp)
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.frame import FrameReader
from tests.broker.broker_helpers import connect, port_of, running_broker

BASE = "broker.id=1\nzookeeper.connect=127.0.0.1:2181\n"


async def _raw_exchange(port: int, frame: bytes) -> bytes | None:
    """Send one request frame on a fresh TCP connection; the response frame body, or None
    when the broker closes the connection instead."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(frame)
        reader = FrameReader()
        with trio.fail_after(10):
            while not reader.pending_frames:
                data = await stream.receive_some(65536)
                if not data:
                    return None
                reader.feed(data)
        return bytes(reader.next_frame())


def _api_versions_request(version: int, correlation_id: int = 7) -> bytes:
    request = codec.request_class(ApiKey.API_VERSIONS, version)(
        client_software_name="profile-test", client_software_version="1")
    return codec.encode_request(request, correlation_id=correlation_id, client_id="profile-test",
                                api_version=version)


def _table(response: object) -> dict[int, tuple[int, int]]:
    return {int(k.api_key): (int(k.min_version), int(k.max_version))
            for k in response.api_keys}  # type: ignore[attr-defined]


async def test_default_broker_advertises_latest_table(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Without the property (latest), ApiVersions lists SUPPORTED_APIS, DescribeCluster included."""
    async with running_broker(tmp_path, zk_chroot_connect) as server:
        assert server.config["kafkalike.api.versions"] == "latest"
        async with connect(server) as conn:
            assert conn.broker_versions == SUPPORTED_APIS
            assert conn.versions[ApiKey.FETCH] == 12


async def test_wireshark_profile_advertises_and_enforces_capped_table(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """kafkalike.api.versions=wireshark-4.0: ApiVersions (v3 and the v0 fallback to an
    unknown v4) lists TSHARK_COMPATIBLE_APIS, and a request above it (Metadata v12, Fetch
    v12) gets the connection closed, as Kafka treats an unsupported version."""
    async with running_broker(tmp_path, zk_chroot_connect, kafkalike_api_versions="wireshark-4.0") as server:
        async with connect(server) as conn:
            assert conn.broker_versions == TSHARK_COMPATIBLE_APIS
            assert ApiKey.DESCRIBE_CLUSTER not in conn.broker_versions
            assert conn.versions[ApiKey.FETCH] == 11 and conn.versions[ApiKey.METADATA] == 9
            meta = await conn.call(ApiKey.METADATA, topics=None)
            assert type(meta).__version__ == 9  # type: ignore[attr-defined]

        port = port_of(server)
        body = await _raw_exchange(port, _api_versions_request(4, correlation_id=41))
        assert body is not None
        fallback = codec.decode_response(body, ApiKey.API_VERSIONS, 0)[1]
        assert fallback.error_code == ErrorCode.unsupported_version
        assert _table(fallback) == TSHARK_COMPATIBLE_APIS

        for key, version, fields in [
                (ApiKey.METADATA, 12, {"topics": None, "allow_auto_topic_creation": False,
                                       "include_topic_authorized_operations": False}),
                (ApiKey.FETCH, 12, {"replica_id": -1, "max_wait": 0, "min_bytes": 1,
                                    "max_bytes": 1024, "isolation_level": 0, "session_id": 0,
                                    "session_epoch": -1, "topics": [], "forgotten_topics_data": [],
                                    "rack_id": ""})]:
            from kafkalike.client.messages import build_request

            request = build_request(key, version, **fields)
            frame = codec.encode_request(request, correlation_id=5, client_id="profile-test",
                                         api_version=version)
            assert await _raw_exchange(port, frame) is None, f"{key.name} v{version} was answered"
        # the same broker still serves those APIs at capped versions on a new connection
        body = await _raw_exchange(port, _api_versions_request(3))
        assert body is not None and codec.decode_response(body, ApiKey.API_VERSIONS, 3)[1].error_code == 0


def test_bad_api_versions_value_is_one_line_error() -> None:
    """An unknown profile name stops start-up with one line naming the key and the choices."""
    with pytest.raises(ConfigError) as err:
        KafkaConfig.from_properties(BASE + "kafkalike.api.versions=wireshark\n")
    assert str(err.value) == ("invalid value 'wireshark' for configuration 'kafkalike.api.versions': "
                              "expected one of latest, wireshark-4.0")
    assert KafkaConfig.from_properties(BASE + "kafkalike.api.versions=wireshark-4.0\n").api_versions \
        == TSHARK_COMPATIBLE_APIS


@pytest.mark.parametrize("ibp", ["latest", "2.4x", "two"])
def test_bad_inter_broker_protocol_version_is_one_line_error(ibp: str) -> None:
    """An inter.broker.protocol.version that is not a Kafka version stops start-up."""
    with pytest.raises(ConfigError, match=r"^invalid value '.*' for configuration "
                                          r"'inter.broker.protocol.version': expected a Kafka version"):
        KafkaConfig.from_properties(BASE + f"inter.broker.protocol.version={ibp}\n")


@pytest.mark.parametrize("ibp, fetch, epoch, list_offsets", [
    ("3.9", 12, 4, 8),       # Kafka: 15 / 4 / 8, Fetch capped at kafkalike's newest
    ("3.4", 12, 4, 7),       # Kafka: 13 / 4 / 7
    ("3.0", 12, 4, 7),       # 3.0-IV1: ListOffsets v7
    ("3.0-IV0", 12, 4, 6),
    ("2.8", 12, 4, 6),
    ("2.7", 12, 3, 5),       # 2.7-IV1: Fetch v12 (truncation on fetch)
    ("2.7-IV0", 11, 3, 5),
    ("2.4", 11, 3, 5),       # the Wireshark 4.0 setting
    ("2.3-IV0", 10, 2, 5),
    ("2.1", 10, 2, 4),
    ("2.0", 8, 2, 3),        # Kafka: OffsetForLeaderEpoch v1, kafkalike's oldest is v2
    ("1.1", 7, 2, 2),
    ("0.10.2", 4, 2, 1),     # Kafka: Fetch v3, kafkalike's oldest is v4
])
def test_replica_fetcher_versions_follow_inter_broker_protocol_version(
        ibp: str, fetch: int, epoch: int, list_offsets: int) -> None:
    """Fetch / OffsetForLeaderEpoch / ListOffsets versions follow Kafka's MetadataVersion
    thresholds, clamped to SUPPORTED_APIS."""
    assert fetcher_request_versions(ibp) == {ApiKey.FETCH: fetch, ApiKey.OFFSET_FOR_LEADER_EPOCH: epoch,
                                             ApiKey.LIST_OFFSETS: list_offsets}


def test_kafka_versions_by_ibp_are_unclamped_in_the_shared_table() -> None:
    """The shared table gives Kafka's own numbers (IBP 3.9: Fetch v15, ListOffsets v8) and
    the controller's, so one place answers both; no IBP means no cap."""
    assert request_versions_for_ibp("3.9") == {
        ApiKey.LEADER_AND_ISR: 6, ApiKey.UPDATE_METADATA: 7, ApiKey.STOP_REPLICA: 3,
        ApiKey.FETCH: 15, ApiKey.OFFSET_FOR_LEADER_EPOCH: 4, ApiKey.LIST_OFFSETS: 8}
    assert request_versions_for_ibp(None) == {}
    assert fetcher_request_versions(None) == {ApiKey.FETCH: 12, ApiKey.OFFSET_FOR_LEADER_EPOCH: 4,
                                              ApiKey.LIST_OFFSETS: 9}


def test_followers_at_ibp_3_9_replicate_from_capped_leaders(make_cluster) -> None:  # type: ignore[no-untyped-def]
    """With wireshark-4.0 and the default IBP 3.9, followers fetch at the leader's v11 (the
    IBP's v12 intersected with what the leader advertises): acks=all produce completes and
    every replica stays in the ISR (a follower sending v12 would be disconnected and
    dropped from the ISR after replica.lag.time.max.ms, stalling acks=all)."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    cluster = make_cluster(brokers=2, overrides={"kafkalike.api.versions": "wireshark-4.0",
                                                 "replica.lag.time.max.ms": "4000"})
    topic = f"capped-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, api_version=(2, 4))
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=2)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all",
                             api_version=(2, 4), request_timeout_ms=20000)
    try:
        start = time.monotonic()
        futures = [producer.send(topic, value=b"v%d" % i, partition=i % 2) for i in range(100)]
        producer.flush(30)
        assert all(f.get(timeout=1).offset >= 0 for f in futures)
        time.sleep(5)  # longer than replica.lag.time.max.ms: a stuck follower would leave the ISR
        more = producer.send(topic, value=b"last", partition=0)
        producer.flush(30)
        assert more.get(timeout=1).offset == 50
        assert time.monotonic() - start < 20
    finally:
        producer.close()

    async def isr_and_tables() -> tuple[list[list[int]], list[dict[int, tuple[int, int]]]]:
        from kafkalike.client.admin import AdminClient
        from kafkalike.client.connection import KafkaConnection

        tables = []
        async with trio.open_nursery() as nursery:
            for i in cluster.broker_ids:
                conn = await KafkaConnection.connect(cluster.broker_host(i), cluster.base_port,
                                                     nursery=nursery)
                tables.append(conn.broker_versions)
                await conn.aclose()
        async with AdminClient(cluster.bootstrap_servers) as client:
            info = (await client.describe_topics([topic]))[topic]
            return [sorted(p.isr) for p in info.partitions.values()], tables

    isr, tables = trio.run(isr_and_tables)
    assert tables == [TSHARK_COMPATIBLE_APIS, TSHARK_COMPATIBLE_APIS]  # the broker processes' ApiVersions
    assert isr == [[1, 2], [1, 2]]
