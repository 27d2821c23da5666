"""Kafka's znode paths and JSON codecs (zk_data): every codec round-trips (hypothesis) and writes
the JSON Kafka 2.8/3.x writes, compared field by field with JSON as Kafka's ZkData.scala
produces it."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.coordination import zk_data as zd

SETTINGS = settings(max_examples=60, deadline=None)

broker_ids = st.integers(min_value=0, max_value=2**31 - 1)
topics = st.from_regex(r"[a-zA-Z0-9._-]{1,40}", fullmatch=True).filter(lambda t: t not in (".", ".."))
replica_lists = st.lists(broker_ids, max_size=5).map(tuple)
epochs = st.integers(min_value=0, max_value=2**31 - 1)
timestamps = st.integers(min_value=0, max_value=2**62)
listener_names = st.from_regex(r"[A-Z][A-Z0-9_]{0,15}", fullmatch=True)
hosts = st.one_of(st.just("localhost"), st.ip_addresses(v=4).map(str), st.from_regex(r"[a-z][a-z0-9.-]{0,30}", fullmatch=True))
ports = st.integers(min_value=0, max_value=65535)
tps = st.builds(zd.TopicPartition, topics, st.integers(min_value=0, max_value=10_000))


def fields(data: bytes) -> dict:
    return json.loads(data)


# ---- golden JSON, as Kafka writes it ---------------------------------------------------------


def test_broker_registration_v5_matches_kafka_field_by_field() -> None:
    """A PLAINTEXT broker's registration equals Kafka 3.x's version-5 JSON, key for key."""
    reg = zd.BrokerRegistration(1, (zd.EndPoint("PLAINTEXT", "127.0.0.1", 9092),), timestamp_ms=1700000000123)
    kafka = (
        '{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},'
        '"endpoints":["PLAINTEXT://127.0.0.1:9092"],"jmx_port":-1,"port":9092,"host":"127.0.0.1",'
        '"version":5,"timestamp":"1700000000123"}'
    )
    assert fields(reg.to_json()) == json.loads(kafka)
    assert reg.to_json() == kafka.encode()  # same bytes, same key order as zookeeper-shell shows
    assert isinstance(fields(reg.to_json())["timestamp"], str)
    assert "rack" not in fields(reg.to_json())  # Kafka writes rack only when set
    assert reg.path == "/brokers/ids/1"


def test_broker_registration_without_plaintext_has_null_host_and_port_minus_one() -> None:
    """With only non-PLAINTEXT listeners, host is null and port -1 (Kafka's EndPoint(null, -1))."""
    reg = zd.BrokerRegistration(
        2, (zd.EndPoint("CLIENT", "h", 9093, "SSL"),), timestamp_ms=1, rack="dc1",
        features={"metadata.version": zd.SupportedVersionRange(1, 7)},
    )
    f = fields(reg.to_json())
    assert f["host"] is None and f["port"] == -1 and f["rack"] == "dc1"
    assert f["listener_security_protocol_map"] == {"CLIENT": "SSL"}
    assert f["features"] == {"metadata.version": {"min_version": 1, "max_version": 7}}


def test_broker_registration_decodes_kafka_v4_and_v1_documents() -> None:
    """Kafka's documented v4 (named listeners) and v1 (host/port only) registrations decode."""
    v4 = (b'{"version":4,"host":"localhost","port":9092,"jmx_port":9999,"timestamp":"2233345666",'
          b'"endpoints":["CLIENT://host1:9092","REPLICATION://host1:9093"],"rack":"dc1",'
          b'"listener_security_protocol_map":{"CLIENT":"SSL","REPLICATION":"PLAINTEXT"}}')
    reg = zd.BrokerRegistration.from_json(3, v4)
    assert reg.endpoints == (zd.EndPoint("CLIENT", "host1", 9092, "SSL"), zd.EndPoint("REPLICATION", "host1", 9093, "PLAINTEXT"))
    assert (reg.rack, reg.jmx_port, reg.timestamp_ms, reg.version) == ("dc1", 9999, 2233345666, 4)
    v1 = b'{"version":1,"host":"localhost","port":9092,"jmx_port":9999,"timestamp":"2233345666"}'
    assert zd.BrokerRegistration.from_json(0, v1).endpoints == (zd.EndPoint("PLAINTEXT", "localhost", 9092),)


def test_topic_assignment_matches_kafka_field_by_field() -> None:
    """The topic znode carries partitions keyed by strings, empty adding/removing maps and topic_id."""
    tid = zd.uuid_to_base64(uuid.UUID("6b1f6b0e-9c1b-4a4f-9d6e-3d2c1b0a9f8e"))
    ta = zd.TopicAssignment("orders", {0: zd.ReplicaAssignment((1, 2, 3)), 1: zd.ReplicaAssignment((2, 3, 1))}, tid)
    assert fields(ta.to_json()) == {
        "version": 3,
        "partitions": {"0": [1, 2, 3], "1": [2, 3, 1]},
        "adding_replicas": {},
        "removing_replicas": {},
        "topic_id": tid,
    }
    assert len(tid) == 22 and ta.path == "/brokers/topics/orders"


def test_topic_assignment_decodes_pre_topic_id_versions() -> None:
    """A version-1 topic znode (no topic_id, no adding/removing) decodes with empty extras."""
    ta = zd.TopicAssignment.from_json("t", b'{"version":1,"partitions":{"1":[2],"0":[1,2]}}')
    assert ta.topic_id is None and list(ta.partitions) == [0, 1]
    assert ta.partitions[0] == zd.ReplicaAssignment((1, 2))


def test_partition_state_matches_kafka_field_by_field() -> None:
    """Partition state is Kafka's LeaderIsrAndControllerEpoch JSON; zk_version is not written."""
    s = zd.LeaderIsrAndControllerEpoch(leader=1, leader_epoch=4, isr=(1, 2), controller_epoch=7, zk_version=3)
    assert s.to_json() == b'{"controller_epoch":7,"leader":1,"version":1,"leader_epoch":4,"isr":[1,2]}'
    assert zd.LeaderIsrAndControllerEpoch.from_json(s.to_json(), 3) == s
    assert zd.partition_state_path("orders", 2) == "/brokers/topics/orders/partitions/2/state"


def test_controller_cluster_and_epoch_znodes_match_kafka() -> None:
    """/controller has a string timestamp; /cluster/id a string version; /controller_epoch is bare."""
    assert fields(zd.ControllerZNode(2, 1700000000000).to_json()) == {"version": 1, "brokerid": 2, "timestamp": "1700000000000"}
    assert fields(zd.ClusterIdZNode("AbCdEfGhIjKlMnOpQrStUv").to_json()) == {"version": "1", "id": "AbCdEfGhIjKlMnOpQrStUv"}
    assert zd.encode_controller_epoch(5) == b"5" and zd.decode_controller_epoch(b"5") == 5


def test_notifications_and_admin_znodes_match_kafka() -> None:
    """ISR change, config change, log dir event, producer id block, reassignment and preferred
    election JSON equal Kafka's."""
    tp = zd.TopicPartition("t", 0)
    assert fields(zd.IsrChangeNotification(frozenset([tp])).to_json()) == {"version": 1, "partitions": [{"topic": "t", "partition": 0}]}
    assert fields(zd.ConfigChangeNotification.for_entity("topics", "t").to_json()) == {"version": 2, "entity_path": "topics/t"}
    assert fields(zd.ConfigEntity({"retention.ms": "1000"}).to_json()) == {"version": 1, "config": {"retention.ms": "1000"}}
    assert fields(zd.LogDirEventNotification(3).to_json()) == {"version": 1, "broker": 3, "event": 1}
    assert fields(zd.ProducerIdBlock(1, 0, 999).to_json()) == {"version": 1, "broker": 1, "block_start": "0", "block_end": "999"}
    assert fields(zd.PartitionReassignment({tp: (1, 2)}).to_json()) == {
        "version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [1, 2]}]}
    assert fields(zd.PreferredReplicaElection(frozenset([tp])).to_json()) == {"version": 1, "partitions": [{"topic": "t", "partition": 0}]}


def test_persistent_paths_are_kafkas() -> None:
    """The paths a broker creates on start are Kafka's ZkData.PersistentZkPaths."""
    assert set(zd.PERSISTENT_PATHS) == {
        "/consumers", "/brokers/ids", "/brokers/topics", "/config/changes", "/admin/delete_topics",
        "/brokers/seqid", "/isr_change_notification", "/latest_producer_id_block",
        "/log_dir_event_notification", "/config/topics", "/config/clients", "/config/users",
        "/config/brokers", "/config/ips",
    }
    assert zd.isr_change_notification_prefix() == "/isr_change_notification/isr_change_"
    assert zd.sequence_number("/isr_change_notification/isr_change_0000000042", zd.ISR_CHANGE_PREFIX) == "0000000042"


def test_producer_id_blocks_are_consecutive_thousands() -> None:
    """Blocks are 1000 ids wide and follow each other without gaps."""
    b0 = zd.ProducerIdBlock.next_after(None, 1)
    b1 = zd.ProducerIdBlock.next_after(b0, 2)
    assert (b0.block_start, b0.block_end, b1.block_start, b1.block_end, b1.broker_id) == (0, 999, 1000, 1999, 2)


def test_generated_ids_are_kafka_uuids() -> None:
    """Cluster/topic ids are 22 base64url chars that decode back to a UUID, never starting with '-'."""
    for _ in range(200):
        s = zd.generate_uuid_base64()
        assert len(s) == 22 and not s.startswith("-")
        assert zd.uuid_to_base64(zd.base64_to_uuid(s)) == s


@pytest.mark.parametrize(
    ("decode", "data", "message"),
    [
        (lambda d: zd.BrokerRegistration.from_json(1, d), b"", "empty data"),
        (lambda d: zd.BrokerRegistration.from_json(1, d), b"{not json", "not JSON"),
        (lambda d: zd.BrokerRegistration.from_json(1, d), b'{"version":5}', "missing key 'jmx_port'"),
        (lambda d: zd.BrokerRegistration.from_json(1, d), b'{"version":5,"jmx_port":-1,"endpoints":["nope"]}', "malformed endpoint"),
        (lambda d: zd.LeaderIsrAndControllerEpoch.from_json(d), b'{"leader":"1"}', "'leader' must be an integer"),
        (lambda d: zd.TopicAssignment.from_json("t", d), b'{"partitions":{"x":[1]}}', "is not a number"),
        (lambda d: zd.TopicAssignment.from_json("t", d), b'{"partitions":{},"topic_id":"short"}', "not a base64 Kafka Uuid"),
        (zd.decode_controller_epoch, b"five", "expected a decimal epoch"),
        (zd.ConfigChangeNotification.from_json, b'{"version":1,"entity_type":"topics","entity_name":"t"}', "unsupported version 1"),
        (zd.ProducerIdBlock.from_json, b'{"version":1,"broker":1,"block_start":"x","block_end":"9"}', "number string"),
        (zd.ControllerZNode.from_json, b"[1]", "expected a JSON object"),
    ],
)
def test_malformed_znode_data_is_a_typed_error(decode, data: bytes, message: str) -> None:  # type: ignore[no-untyped-def]
    """Bad znode data raises ZNodeDecodeError with a message naming the problem, never a crash."""
    with pytest.raises(zd.ZNodeDecodeError, match=message):
        decode(data)


def test_bad_topic_and_entity_names_are_refused() -> None:
    """Paths are never built from names Kafka would refuse."""
    for bad in ("", ".", "..", "a/b", "x" * 250, "spa ce"):
        with pytest.raises(ValueError, match="invalid topic name"):
            zd.topic_path(bad)
    with pytest.raises(ValueError, match="unknown config entity type"):
        zd.config_entity_path("widgets", "x")


# ---- znodes written by a real Apache Kafka 3.9.2 broker -------------------------------------
# Captured with `kafkalike zk tree / --zookeeper ...` after `./scripts/reference-kafka up --mode zk
# --brokers 1 --zookeeper <a kafkalike zk ensemble>`, a topic create (2 partitions, retention.ms),
# a topic config change and an idempotent produce.

KAFKA_392 = {
    "/brokers/ids/1": b'{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://127.0.1.1:20770"],"jmx_port":-1,"port":20770,"host":"127.0.1.1","version":5,"timestamp":"1795240460597"}',
    "/cluster/id": b'{"version":"1","id":"I6M7rQnNSYGlhw0Zpxox0Q"}',
    "/brokers/topics/orders": b'{"partitions":{"0":[1],"1":[1]},"topic_id":"0azzOZ3LTNmoJt5YcwkLyw",'
                              b'"adding_replicas":{},"removing_replicas":{},"version":3}',
    "/brokers/topics/orders/partitions/0/state": b'{"controller_epoch":1,"leader":1,"version":1,"leader_epoch":0,"isr":[1]}',
    "/config/changes/config_change_0000000000": b'{"version":2,"entity_path":"topics/orders"}',
    "/config/topics/orders": b'{"version":1,"config":{"cleanup.policy":"compact","retention.ms":"60000"}}',
    "/controller": b'{"version":2,"brokerid":1,"timestamp":"1795240460665","kraftControllerEpoch":-1}',
    "/controller_epoch": b"1",
    "/feature": b'{"features":{},"version":2,"status":1}',
    "/latest_producer_id_block": b'{"version":1,"broker":1,"block_start":"0","block_end":"999"}',
}


def test_real_kafka_broker_registration_decodes_and_reencodes_byte_for_byte() -> None:
    """Kafka 3.9.2's /brokers/ids/1 decodes, and our encoding of it is the same bytes."""
    data = KAFKA_392["/brokers/ids/1"]
    reg = zd.BrokerRegistration.from_json(1, data)
    assert reg == zd.BrokerRegistration(1, (zd.EndPoint("PLAINTEXT", "127.0.1.1", 20770),), 1795240460597)
    assert reg.to_json() == data


def test_real_kafka_topic_and_partition_state_reencode_byte_for_byte() -> None:
    """Kafka 3.9.2's topic znode (version 3, topic_id) and partition state round-trip exactly."""
    topic = zd.TopicAssignment.from_json("orders", KAFKA_392["/brokers/topics/orders"])
    assert topic.topic_id == "0azzOZ3LTNmoJt5YcwkLyw" and topic.version == 3
    assert topic.partitions == {0: zd.ReplicaAssignment((1,)), 1: zd.ReplicaAssignment((1,))}
    assert topic.to_json() == KAFKA_392["/brokers/topics/orders"]
    state = zd.LeaderIsrAndControllerEpoch.from_json(KAFKA_392["/brokers/topics/orders/partitions/0/state"], 0)
    assert state == zd.LeaderIsrAndControllerEpoch(1, 0, (1,), 1, zk_version=0)
    assert state.to_json() == KAFKA_392["/brokers/topics/orders/partitions/0/state"]


def test_real_kafka_small_znodes_reencode_byte_for_byte() -> None:
    """Cluster id, controller (v2), epoch, config, config change, feature and producer-id block
    written by Kafka 3.9.2 decode and re-encode to the same bytes."""
    k = KAFKA_392
    assert zd.ClusterIdZNode.from_json(k["/cluster/id"]).to_json() == k["/cluster/id"]
    ctrl = zd.ControllerZNode.from_json(k["/controller"])
    assert (ctrl.broker_id, ctrl.version, ctrl.kraft_controller_epoch) == (1, 2, -1)
    assert ctrl.to_json() == k["/controller"]
    assert zd.encode_controller_epoch(zd.decode_controller_epoch(k["/controller_epoch"])) == k["/controller_epoch"]
    change = zd.ConfigChangeNotification.from_json(k["/config/changes/config_change_0000000000"])
    assert change == zd.ConfigChangeNotification.for_entity("topics", "orders")
    assert change.to_json() == k["/config/changes/config_change_0000000000"]
    cfg = zd.ConfigEntity.from_json(k["/config/topics/orders"])
    assert cfg.config == {"cleanup.policy": "compact", "retention.ms": "60000"}
    assert cfg.to_json() == k["/config/topics/orders"]
    assert zd.FeatureZNode.from_json(k["/feature"]).to_json() == k["/feature"]
    block = zd.ProducerIdBlock.from_json(k["/latest_producer_id_block"])
    assert block == zd.ProducerIdBlock.next_after(None, 1)
    assert block.to_json() == k["/latest_producer_id_block"]


# ---- round trips (hypothesis) ---------------------------------------------------------------

endpoints = st.builds(
    zd.EndPoint, listener_names, hosts, ports, st.sampled_from(zd.SECURITY_PROTOCOLS)
)
registrations = st.builds(
    zd.BrokerRegistration,
    broker_ids,
    st.lists(endpoints, min_size=1, max_size=3, unique_by=lambda e: e.listener_name).map(tuple),
    timestamps,
    st.integers(min_value=-1, max_value=65535),
    st.none() | st.text(min_size=1, max_size=10),
    st.dictionaries(st.text(min_size=1, max_size=10),
                    st.builds(zd.SupportedVersionRange, st.integers(0, 100), st.integers(0, 100)), max_size=2),
)


@SETTINGS
@given(registrations)
def test_broker_registration_round_trips(reg: zd.BrokerRegistration) -> None:
    """Any registration decodes back to itself; host/port mirror the first PLAINTEXT endpoint."""
    assert zd.BrokerRegistration.from_json(reg.broker_id, reg.to_json()) == reg
    plain = [e for e in reg.endpoints if e.security_protocol == "PLAINTEXT"]
    f = fields(reg.to_json())
    assert (f["host"], f["port"]) == ((plain[0].host, plain[0].port) if plain else (None, -1))


@SETTINGS
@given(
    topics,
    st.dictionaries(st.integers(0, 1000), st.builds(zd.ReplicaAssignment, replica_lists, replica_lists, replica_lists), max_size=8),
    st.none() | st.uuids().map(zd.uuid_to_base64),
)
def test_topic_assignment_round_trips(topic: str, parts: dict, topic_id: str | None) -> None:  # type: ignore[type-arg]
    """Any assignment (with or without reassignment in flight) decodes back to itself."""
    ta = zd.TopicAssignment(topic, dict(sorted(parts.items())), topic_id)
    assert zd.TopicAssignment.from_json(topic, ta.to_json()) == ta


@SETTINGS
@given(st.integers(-1, 2**31 - 1), epochs, replica_lists, epochs, st.sampled_from([0, 1]), st.integers(0, 2**31 - 1))
def test_partition_state_round_trips(leader: int, le: int, isr: tuple, ce: int, lrs: int, v: int) -> None:  # type: ignore[type-arg]
    """Any partition state decodes back to itself given its zkVersion."""
    s = zd.LeaderIsrAndControllerEpoch(leader, le, isr, ce, lrs, v)
    assert zd.LeaderIsrAndControllerEpoch.from_json(s.to_json(), v) == s
    assert ("leader_recovery_state" in fields(s.to_json())) == (lrs != 0)


@SETTINGS
@given(
    broker_ids, timestamps, epochs, st.text(min_size=1, max_size=30),
    st.frozensets(tps, max_size=5), st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20), max_size=5),
    st.integers(0, 2**62), st.dictionaries(tps, replica_lists, max_size=4),
)
def test_small_znodes_round_trip(
    bid: int, ts: int, epoch: int, cid: str, parts: frozenset, config: dict, start: int, reassign: dict  # type: ignore[type-arg]
) -> None:
    """Controller, epoch, cluster id, notifications, configs, producer-id blocks, reassignment
    and preferred election all decode back to what was encoded."""
    assert zd.ControllerZNode.from_json(zd.ControllerZNode(bid, ts).to_json()) == zd.ControllerZNode(bid, ts)
    v2 = zd.ControllerZNode(bid, ts, version=2, kraft_controller_epoch=epoch)
    assert zd.ControllerZNode.from_json(v2.to_json()) == v2
    assert zd.decode_controller_epoch(zd.encode_controller_epoch(epoch)) == epoch
    assert zd.ClusterIdZNode.from_json(zd.ClusterIdZNode(cid).to_json()).id == cid
    assert zd.IsrChangeNotification.from_json(zd.IsrChangeNotification(parts).to_json()).partitions == parts
    assert zd.PreferredReplicaElection.from_json(zd.PreferredReplicaElection(parts).to_json()).partitions == parts
    assert zd.ConfigEntity.from_json(zd.ConfigEntity(config).to_json()).config == config
    block = zd.ProducerIdBlock(bid, start, start + 999)
    assert zd.ProducerIdBlock.from_json(block.to_json()) == block
    assert zd.LogDirEventNotification.from_json(zd.LogDirEventNotification(bid).to_json()).broker_id == bid
    assert zd.PartitionReassignment.from_json(zd.PartitionReassignment(reassign).to_json()).assignments == reassign
