"""__consumer_offsets record formats and group placement: Kafka's key/value layouts byte for
byte, hypothesis round trips, typed errors on bad input, replay semantics, and coordinator
placement against String.hashCode values computed by a Java 17 JVM."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.coordinator.group_metadata import OffsetAndMetadata
from kafkalike.coordinator.group_metadata_manager import (
    GroupMetadataKey, GroupMetadataValue, MemberRecord, OffsetCommitKey, OffsetsRecordError,
    decode_group_metadata_value, decode_key, decode_offset_commit_value, encode_group_metadata_key,
    encode_group_metadata_value, encode_offset_commit_key, encode_offset_commit_value,
    group_metadata_record, java_string_hash, offset_commit_record, partition_for, replay)
from kafkalike.storage import TopicPartition

# (string, Java's "s".hashCode(), Utils.abs(hash) % 50) printed by OpenJDK 17
JAVA_HASHES = [
    ("", 0, 0),
    ("a", 97, 47),
    ("hello", 99162322, 22),
    ("test-group", 627841412, 12),
    ("my-group", -1906497762, 12),
    ("inventory", -2020599460, 10),
    ("billing", -109829509, 9),
    ("notification", 595233003, 3),
    ("console-consumer-12345", 158455506, 6),
    ("grüße", 98768023, 23),
    ("\U0001F600emoji", -1233692477, 27),
    ("polygenelubricants", -2147483648, 0),
    ("DESIGNING WORKHOUSES", -2147483648, 0),
]


@pytest.mark.parametrize("group,java_hash,partition", JAVA_HASHES)
def test_placement_matches_java_string_hashcode(group: str, java_hash: int, partition: int) -> None:
    """java_string_hash equals Java's String.hashCode (UTF-16 code units, int overflow) and
    partition_for applies Kafka's Utils.abs (MIN_VALUE -> 0) modulo the partition count."""
    assert java_string_hash(group) == java_hash
    assert partition_for(group, 50) == partition


def test_offset_commit_key_and_value_bytes_are_kafkas() -> None:
    """OffsetCommitKey v1 and OffsetCommitValue v3 have Kafka's exact layout."""
    key = encode_offset_commit_key(OffsetCommitKey("g", "t", 1))
    assert key == b"\x00\x01" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x01"
    value = encode_offset_commit_value(OffsetAndMetadata(42, 3, "md", 1700000000000))
    assert value == struct.pack(">hqih2sq", 3, 42, 3, 2, b"md", 1700000000000)
    expiring = encode_offset_commit_value(OffsetAndMetadata(42, 3, "", 10, expire_timestamp=20))
    assert expiring == struct.pack(">hqhqq", 1, 42, 0, 10, 20)  # v1 has no leader epoch
    assert encode_group_metadata_key(GroupMetadataKey("grp")) == b"\x00\x02\x00\x03grp"


def test_group_metadata_value_v3_bytes() -> None:
    """GroupMetadataValue v3: header fields, then members with instance id, timeouts, bytes."""
    v = GroupMetadataValue("consumer", 5, "range", "m1", 99,
                           (MemberRecord("m1", None, "c", "/h", 300, 10, b"S", b"AA"),))
    expect = (struct.pack(">h", 3) + b"\x00\x08consumer" + struct.pack(">i", 5) + b"\x00\x05range"
              + b"\x00\x02m1" + struct.pack(">q", 99) + struct.pack(">i", 1)
              + b"\x00\x02m1" + b"\xff\xff" + b"\x00\x01c" + b"\x00\x02/h" + struct.pack(">ii", 300, 10)
              + struct.pack(">i", 1) + b"S" + struct.pack(">i", 2) + b"AA")
    assert encode_group_metadata_value(v) == expect


def test_older_value_versions_decode() -> None:
    """v0 offset values (no epoch) and v0/v1 group values (no state timestamp, no instance id;
    v0 without rebalance timeout) are read as Kafka 2.x/3.x would."""
    v0 = struct.pack(">hqh", 0, 7, 1) + b"x" + struct.pack(">q", 123)
    assert decode_offset_commit_value(v0) == OffsetAndMetadata(7, -1, "x", 123, None)
    g0 = (struct.pack(">h", 0) + b"\x00\x01c" + struct.pack(">i", 2) + b"\xff\xff\xff\xff"
          + struct.pack(">i", 1) + b"\x00\x01m\x00\x01c\x00\x01h" + struct.pack(">i", 500)
          + struct.pack(">i", 0) + struct.pack(">i", 0))
    g = decode_group_metadata_value(g0)
    assert (g.generation, g.protocol, g.leader, g.current_state_timestamp) == (2, None, None, -1)
    assert g.members[0].session_timeout == g.members[0].rebalance_timeout == 500


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x09\x00\x00", b"\x00\x01\x00\x05ab",
                                  b"\x00\x01\x00\x01g\x00\x01t\x00\x00"])
def test_bad_keys_raise_typed_error(data: bytes) -> None:
    """Truncated keys and unknown key versions raise OffsetsRecordError, never a crash."""
    with pytest.raises(OffsetsRecordError):
        decode_key(data)


@pytest.mark.parametrize("data", [b"\x00\x04" + b"\x00" * 30, b"\x00\x03\x00", b"\x00\x03" + b"\x00" * 13])
def test_bad_values_raise_typed_error(data: bytes) -> None:
    """Unsupported (flexible v4) and truncated values raise OffsetsRecordError."""
    with pytest.raises(OffsetsRecordError):
        decode_offset_commit_value(data)
    with pytest.raises(OffsetsRecordError):
        decode_group_metadata_value(data)


names = st.text(max_size=40)
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
members = st.builds(MemberRecord, names, st.none() | names, names, names, i32, i32,
                    st.binary(max_size=64), st.binary(max_size=64))


@settings(max_examples=150, deadline=None)
@given(names, names, i32)
def test_keys_round_trip(group: str, topic: str, partition: int) -> None:
    """Both key kinds decode to what was encoded."""
    k = OffsetCommitKey(group, topic, partition)
    assert decode_key(encode_offset_commit_key(k)) == k
    assert decode_key(encode_group_metadata_key(GroupMetadataKey(group))) == GroupMetadataKey(group)


@settings(max_examples=150, deadline=None)
@given(i64, i32, names, i64, st.none() | i64)
def test_offset_values_round_trip(offset: int, epoch: int, md: str, ts: int, expire: int | None) -> None:
    """OffsetCommitValue v3 (and v1 with an expire timestamp, which has no epoch) round-trips."""
    v = OffsetAndMetadata(offset, epoch, md, ts, expire)
    back = decode_offset_commit_value(encode_offset_commit_value(v))
    assert back == (v if expire is None else OffsetAndMetadata(offset, -1, md, ts, expire))


@settings(max_examples=100, deadline=None)
@given(names, i32, st.none() | names, st.none() | names, i64, st.lists(members, max_size=5))
def test_group_values_round_trip(ptype: str, gen: int, proto: str | None, leader: str | None,
                                 ts: int, ms: list[MemberRecord]) -> None:
    """GroupMetadataValue v3 round-trips every field of every member."""
    v = GroupMetadataValue(ptype, gen, proto, leader, ts, tuple(ms))
    assert decode_group_metadata_value(encode_group_metadata_value(v)) == v


def test_replay_last_value_wins_and_tombstones_delete() -> None:
    """Replaying records: later commits replace earlier ones, offset tombstones remove one
    offset, a group tombstone removes the metadata but not offsets written after it."""
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    gv = GroupMetadataValue("consumer", 1, "range", "m", 0, ())
    records = [
        offset_commit_record("g", tp0, OffsetAndMetadata(1)),
        offset_commit_record("g", tp1, OffsetAndMetadata(2)),
        group_metadata_record("g", gv),
        offset_commit_record("g", tp0, OffsetAndMetadata(5)),
        offset_commit_record("g", tp1, None),
        group_metadata_record("h", gv),
        group_metadata_record("h", None),
        offset_commit_record("h", tp0, OffsetAndMetadata(9)),
        (b"\x00\x07junk", b"x"),
    ]
    loaded = replay(records)
    assert loaded.group_values == {"g": gv}
    assert loaded.offsets == {"g": {tp0: OffsetAndMetadata(5)}, "h": {tp0: OffsetAndMetadata(9)}}
    assert loaded.records == len(records)
