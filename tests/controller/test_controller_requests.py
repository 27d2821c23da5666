"""The controller's request builders: for every version of LeaderAndIsr (v0-v6), UpdateMetadata
(v0-v7) and StopReplica (v0-v3), what the controller builds survives Kafka's wire format
(encode -> parse) with the partitions, epochs and brokers it meant, and nothing a version
cannot carry is silently lost (hypothesis)."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from kafkalike.controller.controller_channel_manager import (
    LEADER_DURING_DELETE,
    max_versions_for_ibp,
    LeaderAndIsrEntry,
    UpdateMetadataEntry,
    build_leader_and_isr,
    build_stop_replica,
    build_update_metadata,
)
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.zk_data import LeaderIsrAndControllerEpoch, TopicPartition
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import encode_request, parse_request

topics = st.sampled_from(["a", "orders", "t-1", "__consumer_offsets"])
broker_ids = st.integers(0, 5)
replica_lists = st.lists(broker_ids, min_size=1, max_size=4, unique=True).map(tuple)
tps = st.builds(TopicPartition, topics, st.integers(0, 50))
TOPIC_IDS = {"a": zd.generate_uuid_base64(), "orders": zd.generate_uuid_base64()}


def roundtrip(request: object, version: int) -> object:
    frame = encode_request(request, correlation_id=7, client_id="controller-1", api_version=version)
    header, parsed = parse_request(memoryview(frame)[4:])
    assert header.api_version == version and header.correlation_id == 7
    return parsed


@st.composite
def lai_entries(draw: st.DrawFn) -> list[LeaderAndIsrEntry]:
    out = {}
    for tp in draw(st.lists(tps, min_size=1, max_size=6, unique=True)):
        replicas = draw(replica_lists)
        li = LeaderIsrAndControllerEpoch(leader=draw(st.sampled_from(replicas + (-1,))),
                                         leader_epoch=draw(st.integers(0, 1000)),
                                         isr=tuple(draw(st.permutations(replicas)))[:draw(st.integers(1, len(replicas)))],
                                         controller_epoch=draw(st.integers(1, 50)), zk_version=draw(st.integers(0, 99)))
        out[tp] = LeaderAndIsrEntry(tp, li, replicas, is_new=draw(st.booleans()))
    return list(out.values())


@settings(max_examples=60, deadline=None)
@given(version=st.integers(0, 6), entries=lai_entries(), broker_epoch=st.integers(-1, 2**40))
def test_leader_and_isr_survives_the_wire_in_every_version(version: int, entries: list[LeaderAndIsrEntry],
                                                          broker_epoch: int) -> None:
    """Each partition's leader, epochs, ISR and replicas come back as built; v2+ carries the
    broker epoch, v5+ the topic ids."""
    req = build_leader_and_isr(version, 1, 9, broker_epoch, entries, [(1, "127.0.0.1", 9092)], TOPIC_IDS)
    parsed = roundtrip(req, version)
    states = (list(parsed.ungrouped_partition_states) if version <= 1 else  # type: ignore[attr-defined]
              [(t, p) for t in parsed.topic_states for p in t.partition_states])  # type: ignore[attr-defined]
    got = {}
    for item in states:
        topic, p = (item.topic_name, item) if version <= 1 else (item[0].topic_name, item[1])
        got[TopicPartition(topic, p.partition_index)] = (p.leader, p.leader_epoch, tuple(p.isr), p.zk_version,
                                                         tuple(p.replicas), p.controller_epoch)
    assert got == {e.tp: (e.leader_isr.leader, e.leader_isr.leader_epoch, e.leader_isr.isr, e.leader_isr.zk_version,
                          e.replicas, e.leader_isr.controller_epoch) for e in entries}
    assert parsed.controller_id == 1 and parsed.controller_epoch == 9  # type: ignore[attr-defined]
    assert [ll.broker_id for ll in parsed.live_leaders] == [1]  # type: ignore[attr-defined]
    if version >= 2:
        assert parsed.broker_epoch == broker_epoch  # type: ignore[attr-defined]
    if version >= 5:
        for t in parsed.topic_states:  # type: ignore[attr-defined]
            expected = zd.base64_to_uuid(TOPIC_IDS[t.topic_name]) if t.topic_name in TOPIC_IDS else uuid.UUID(int=0)
            assert t.topic_id == expected


@settings(max_examples=60, deadline=None)
@given(version=st.integers(0, 7), parts=st.lists(tps, max_size=6, unique=True), deleting=st.booleans(),
       racks=st.booleans())
def test_update_metadata_survives_the_wire_in_every_version(version: int, parts: list[TopicPartition],
                                                            deleting: bool, racks: bool) -> None:
    """Live brokers with their endpoints and every partition state (leader -2 for a topic
    being deleted) come back as built."""
    entries = [UpdateMetadataEntry(tp, LEADER_DURING_DELETE if deleting else 2, 3, (2, 1), 4, 5, (2, 1), (1,))
               for tp in parts]
    regs = [zd.BrokerRegistration(b, (zd.EndPoint("PLAINTEXT", f"127.0.0.{b}", 9092),), 0,
                                  rack=f"r{b}" if racks else None) for b in (1, 2)]
    req = build_update_metadata(version, 1, 9, 77, entries, regs, TOPIC_IDS)
    parsed = roundtrip(req, version)
    states = (list(parsed.ungrouped_partition_states) if version <= 4 else  # type: ignore[attr-defined]
              [p for t in parsed.topic_states for p in t.partition_states])  # type: ignore[attr-defined]
    assert len(states) == len(parts)
    assert all(p.leader == (LEADER_DURING_DELETE if deleting else 2) and tuple(p.isr) == (2, 1) for p in states)
    if version >= 4:
        assert all(tuple(p.offline_replicas) == (1,) for p in states)
    brokers = {b.id: b for b in parsed.live_brokers}  # type: ignore[attr-defined]
    assert sorted(brokers) == [1, 2]
    if version == 0:
        assert brokers[2].v0_host == "127.0.0.2" and brokers[2].v0_port == 9092
    else:
        assert [(e.host, e.port) for e in brokers[2].endpoints] == [("127.0.0.2", 9092)]
    if version >= 2:
        assert brokers[1].rack == ("r1" if racks else None)
    if version >= 5:
        assert parsed.broker_epoch == 77  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None)
@given(version=st.integers(0, 3), parts=st.lists(tps, min_size=1, max_size=6, unique=True), delete=st.booleans())
def test_stop_replica_survives_the_wire_in_every_version(version: int, parts: list[TopicPartition],
                                                         delete: bool) -> None:
    """The partitions and the delete flag (request-wide before v3, per partition from v3)."""
    req = build_stop_replica(version, 1, 9, 77, [(tp, -2 if delete else 4, delete) for tp in parts], delete)
    parsed = roundtrip(req, version)
    if version == 0:
        got = {TopicPartition(p.topic_name, p.partition_index) for p in parsed.ungrouped_partitions}  # type: ignore[attr-defined]
        assert parsed.delete_partitions == delete  # type: ignore[attr-defined]
    elif version <= 2:
        got = {TopicPartition(t.name, p) for t in parsed.topics for p in t.partition_indexes}  # type: ignore[attr-defined]
        assert parsed.delete_partitions == delete and parsed.broker_epoch == 77  # type: ignore[attr-defined]
    else:
        got = {TopicPartition(t.topic_name, p.partition_index) for t in parsed.topic_states  # type: ignore[attr-defined]
               for p in t.partition_states}
        assert all(p.delete_partition == delete for t in parsed.topic_states for p in t.partition_states)  # type: ignore[attr-defined]
    assert got == set(parts)


@pytest.mark.parametrize("ibp, lai, um, sr", [
    ("3.9", 6, 7, 3), ("3.1", 5, 7, 3), ("2.8", 5, 7, 3), ("2.8-IV0", 4, 6, 3), ("2.6", 4, 6, 3),
    ("2.4", 4, 6, 2), ("2.4-IV0", 3, 5, 1), ("2.2", 2, 5, 1), ("1.0", 1, 4, 0), ("0.10.2", 0, 3, 0),
    ("0.10.0", 0, 2, 0), ("0.8.2", 0, 0, 0)])
def test_inter_broker_protocol_version_caps_request_versions(ibp: str, lai: int, um: int, sr: int) -> None:
    """inter.broker.protocol.version picks the newest LeaderAndIsr / UpdateMetadata /
    StopReplica versions as Kafka's controller does (with "2.4": LeaderAndIsr v4 and
    UpdateMetadata v6, the newest Wireshark 4.0's Kafka dissector decodes)."""
    assert max_versions_for_ibp(ibp) == {ApiKey.LEADER_AND_ISR: lai, ApiKey.UPDATE_METADATA: um,
                                         ApiKey.STOP_REPLICA: sr}


def test_unparsable_inter_broker_protocol_version_caps_nothing() -> None:
    """No or an unparsable inter.broker.protocol.version leaves versions to negotiation."""
    assert max_versions_for_ibp(None) == {} and max_versions_for_ibp("latest") == {}
