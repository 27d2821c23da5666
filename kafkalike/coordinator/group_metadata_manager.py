"""GroupMetadataManager: the groups and committed offsets of the __consumer_offsets
partitions this broker leads, the records that persist them, and loading them back
(Kafka's kafka.coordinator.group.GroupMetadataManager).

Record formats (Kafka's group-coordinator message JSON; all big-endian, strings are int16
length + UTF-8 with -1 for null, bytes are int32 length + data, arrays int32 count). Every
key and value starts with an int16 version; the key's version says what the record is:

    OffsetCommitKey   v0/v1: group string, topic string, partition int32
    GroupMetadataKey  v2:    group string
    OffsetCommitValue v3:    offset int64, leaderEpoch int32, metadata string, commitTimestamp int64
                      (v0: offset, metadata, commitTimestamp; v1 adds expireTimestamp int64;
                       v2 = v0 layout; kafkalike writes v3, or v1 when the commit asked for an
                       explicit retention, as Kafka 2.1+ does)
    GroupMetadataValue v3:   protocolType string, generation int32, protocol string?,
                      leader string?, currentStateTimestamp int64 (v2+), members
                      [memberId, groupInstanceId string? (v3+), clientId, clientHost,
                       rebalanceTimeout int32 (v1+), sessionTimeout int32, subscription
                       bytes, assignment bytes]
    A null value (tombstone) deletes the offset / the group; compaction keeps the latest.

Transactional offsets (TxnOffsetCommit, KIP-98/KIP-447): OffsetCommit records in a batch
with the producer's id and epoch and the transactional flag. They stay pending per producer
until a control batch of that producer (Kafka's ControlRecord: key int16 version 0, int16
type 0=ABORT 1=COMMIT) completes them: COMMIT makes them the committed offsets (unless a
commit written later in the log is already there), ABORT drops them. Loading replays the
same rule from the log (Kafka's loadGroupsAndOffsets); offsets of a producer with no marker
yet are loaded back as pending.

Placement: group -> partition ``abs(java_string_hash(group)) % offsets.topic.num.partitions``
(Kafka's Utils.abs(groupId.hashCode) % groupMetadataTopicPartitionCount; Utils.abs maps
Integer.MIN_VALUE to 0). The leader of that partition is the group's coordinator.

Writes go through the replica manager with acks=-1, so they replicate like any produce;
loading reads a partition's log from its start to its end when this broker becomes its
leader. Decoding errors raise OffsetsRecordError (a ValueError).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
import structlog

from kafkalike.coordinator.group_metadata import (CommitRecordMetadataAndOffset, GroupMetadata, GroupState,
                                                  OffsetAndMetadata)
from kafkalike.coordinator.member_metadata import MemberMetadata
from kafkalike.coordinator.offset_config import OFFSETS_TOPIC, OffsetConfig
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.records import build_records_batch, decode_batches
from kafkalike.storage import TopicPartition

log = structlog.get_logger(__name__)

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
OFFSET_COMMIT_VALUE_VERSION = 3
GROUP_METADATA_VALUE_VERSION = 3

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class OffsetsRecordError(ValueError):
    """A key or value of __consumer_offsets that does not decode (truncated, bad version)."""


# ----------------------------------------------------------------------------- placement

def java_string_hash(s: str) -> int:
    """Java's String.hashCode(): s[0]*31^(n-1) + ... + s[n-1] over UTF-16 code units, as a
    signed 32-bit int."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def kafka_abs(n: int) -> int:
    """Kafka's Utils.abs: |n|, except Integer.MIN_VALUE gives 0."""
    return 0 if n == -(1 << 31) else abs(n)


def partition_for(group_id: str, num_partitions: int) -> int:
    """The __consumer_offsets partition holding ``group_id`` (Kafka's partitionFor)."""
    return kafka_abs(java_string_hash(group_id)) % num_partitions


# ----------------------------------------------------------------------------- records

@attrs.frozen
class OffsetCommitKey:
    """Key of a committed offset."""

    group: str
    topic: str
    partition: int


@attrs.frozen
class GroupMetadataKey:
    """Key of a group's metadata."""

    group: str


@attrs.frozen
class MemberRecord:
    """GroupMetadataValue.MemberMetadata: one member as stored (timeouts in ms)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout: int
    session_timeout: int
    subscription: bytes
    assignment: bytes


@attrs.frozen
class GroupMetadataValue:
    """A group's stored metadata (Kafka's GroupMetadataValue)."""

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int
    members: tuple[MemberRecord, ...]


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def i16(self, v: int) -> None:
        self.out += _I16.pack(v)

    def i32(self, v: int) -> None:
        self.out += _I32.pack(v)

    def i64(self, v: int) -> None:
        self.out += _I64.pack(v)

    def string(self, v: str | None) -> None:
        if v is None:
            self.i16(-1)
            return
        b = v.encode("utf-8")
        if len(b) > 32767:
            raise OffsetsRecordError(f"string of {len(b)} bytes is too long for an int16 length")
        self.i16(len(b))
        self.out += b

    def bytes_(self, v: bytes | None) -> None:
        if v is None:
            self.i32(-1)
            return
        self.i32(len(v))
        self.out += v


class _Reader:
    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.what = what

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise OffsetsRecordError(f"{self.what}: truncated at byte {self.pos} (needs {n} more)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def i32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def string(self, nullable: bool = False) -> str | None:
        n = self.i16()
        if n < 0:
            if nullable:
                return None
            raise OffsetsRecordError(f"{self.what}: null string in a non-nullable field")
        try:
            return self._take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OffsetsRecordError(f"{self.what}: invalid UTF-8: {exc}") from None

    def bytes_(self) -> bytes:
        n = self.i32()
        if n < 0:
            return b""
        return self._take(n)


def encode_offset_commit_key(key: OffsetCommitKey) -> bytes:
    """OffsetCommitKey as Kafka writes it (version 1)."""
    w = _Writer()
    w.i16(OFFSET_COMMIT_KEY_VERSION)
    w.string(key.group)
    w.string(key.topic)
    w.i32(key.partition)
    return bytes(w.out)


def encode_group_metadata_key(key: GroupMetadataKey) -> bytes:
    """GroupMetadataKey as Kafka writes it (version 2)."""
    w = _Writer()
    w.i16(GROUP_METADATA_KEY_VERSION)
    w.string(key.group)
    return bytes(w.out)


def decode_key(data: bytes | memoryview) -> OffsetCommitKey | GroupMetadataKey:
    """A __consumer_offsets key. Raises OffsetsRecordError for other versions or bad bytes."""
    r = _Reader(data, "offsets key")
    version = r.i16()
    if version in (0, 1):
        group, topic = r.string(), r.string()
        assert group is not None and topic is not None
        return OffsetCommitKey(group, topic, r.i32())
    if version == 2:
        group = r.string()
        assert group is not None
        return GroupMetadataKey(group)
    raise OffsetsRecordError(f"offsets key: unknown version {version}")


def encode_offset_commit_value(value: OffsetAndMetadata) -> bytes:
    """OffsetCommitValue v3, or v1 when ``value.expire_timestamp`` is set (Kafka's rule)."""
    w = _Writer()
    if value.expire_timestamp is not None:
        w.i16(1)
        w.i64(value.offset)
        w.string(value.metadata)
        w.i64(value.commit_timestamp)
        w.i64(value.expire_timestamp)
    else:
        w.i16(OFFSET_COMMIT_VALUE_VERSION)
        w.i64(value.offset)
        w.i32(value.leader_epoch)
        w.string(value.metadata)
        w.i64(value.commit_timestamp)
    return bytes(w.out)


def decode_offset_commit_value(data: bytes | memoryview) -> OffsetAndMetadata:
    """OffsetCommitValue v0-v3. Raises OffsetsRecordError."""
    r = _Reader(data, "OffsetCommitValue")
    version = r.i16()
    if version not in (0, 1, 2, 3):
        raise OffsetsRecordError(f"OffsetCommitValue: unsupported version {version}")
    offset = r.i64()
    epoch = r.i32() if version >= 3 else -1
    metadata = r.string() or ""
    commit_ts = r.i64()
    expire = r.i64() if version == 1 else None
    return OffsetAndMetadata(offset, epoch, metadata, commit_ts, expire)


def encode_group_metadata_value(value: GroupMetadataValue) -> bytes:
    """GroupMetadataValue v3."""
    w = _Writer()
    w.i16(GROUP_METADATA_VALUE_VERSION)
    w.string(value.protocol_type)
    w.i32(value.generation)
    w.string(value.protocol)
    w.string(value.leader)
    w.i64(value.current_state_timestamp)
    w.i32(len(value.members))
    for m in value.members:
        w.string(m.member_id)
        w.string(m.group_instance_id)
        w.string(m.client_id)
        w.string(m.client_host)
        w.i32(m.rebalance_timeout)
        w.i32(m.session_timeout)
        w.bytes_(m.subscription)
        w.bytes_(m.assignment)
    return bytes(w.out)


def decode_group_metadata_value(data: bytes | memoryview) -> GroupMetadataValue:
    """GroupMetadataValue v0-v3. Raises OffsetsRecordError."""
    r = _Reader(data, "GroupMetadataValue")
    version = r.i16()
    if version not in (0, 1, 2, 3):
        raise OffsetsRecordError(f"GroupMetadataValue: unsupported version {version}")
    protocol_type = r.string() or ""
    generation = r.i32()
    protocol = r.string(nullable=True)
    leader = r.string(nullable=True)
    state_ts = r.i64() if version >= 2 else -1
    count = r.i32()
    if count < 0 or count > len(r.data):
        raise OffsetsRecordError(f"GroupMetadataValue: bad member count {count}")
    members = []
    for _ in range(count):
        member_id = r.string() or ""
        instance = r.string(nullable=True) if version >= 3 else None
        client_id = r.string() or ""
        host = r.string() or ""
        session = r.i32()
        rebalance = session
        if version >= 1:
            rebalance, session = session, r.i32()
        members.append(MemberRecord(member_id, instance, client_id, host, rebalance, session,
                                    r.bytes_(), r.bytes_()))
    return GroupMetadataValue(protocol_type, generation, protocol, leader, state_ts, tuple(members))


def group_metadata_value(group: GroupMetadata, assignment: dict[str, bytes] | None = None) -> GroupMetadataValue:
    """The stored form of ``group`` (with ``assignment`` instead of the members' current one)."""
    members = []
    for m in group.members.values():
        protocol = group.protocol_name
        subscription = m.metadata(protocol) if protocol and protocol in m.protocols() else b""
        members.append(MemberRecord(
            m.member_id, m.group_instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
            m.session_timeout_ms, subscription,
            (assignment.get(m.member_id, b"") if assignment is not None else m.assignment)))
    return GroupMetadataValue(group.protocol_type or "", group.generation_id, group.protocol_name,
                              group.leader_id, group.current_state_timestamp_ms, tuple(members))


def group_from_value(group_id: str, value: GroupMetadataValue,
                     offsets: dict[TopicPartition, OffsetAndMetadata], now_ms: int) -> GroupMetadata:
    """Rebuild a loaded group: Empty without members, else Stable with each member's
    session starting ``now_ms`` (Kafka's GroupMetadata.loadGroup)."""
    group = GroupMetadata(group_id, state=GroupState.STABLE if value.members else GroupState.EMPTY,
                          generation_id=value.generation, protocol_type=value.protocol_type or None,
                          protocol_name=value.protocol, leader_id=value.leader,
                          current_state_timestamp_ms=value.current_state_timestamp)
    for m in value.members:
        member = MemberMetadata(
            member_id=m.member_id, group_instance_id=m.group_instance_id, client_id=m.client_id,
            client_host=m.client_host, rebalance_timeout_ms=m.rebalance_timeout,
            session_timeout_ms=m.session_timeout, protocol_type=value.protocol_type,
            supported_protocols=[(value.protocol or "", m.subscription)], assignment=m.assignment,
            latest_heartbeat_ms=now_ms)
        group.members[m.member_id] = member
        if m.group_instance_id is not None:
            group.static_members[m.group_instance_id] = m.member_id
    group.offsets = dict(offsets)
    return group


def offset_commit_record(group: str, tp: TopicPartition, value: OffsetAndMetadata | None) -> tuple[bytes, bytes | None]:
    """(key, value) of an offset commit; value None is the tombstone."""
    key = encode_offset_commit_key(OffsetCommitKey(group, tp.topic, tp.partition))
    return key, None if value is None else encode_offset_commit_value(value)


def group_metadata_record(group: str, value: GroupMetadataValue | None) -> tuple[bytes, bytes | None]:
    """(key, value) of a group's metadata; value None is the tombstone."""
    return (encode_group_metadata_key(GroupMetadataKey(group)),
            None if value is None else encode_group_metadata_value(value))


PendingOffsets = dict[str, dict[TopicPartition, CommitRecordMetadataAndOffset]]
"""One producer's pending transactional offsets: group -> partition -> commit."""


@attrs.frozen
class LoadedPartition:
    """What loading one offsets partition found: groups with metadata, offsets by group
    (including groups that only have offsets: simple consumers), records read; the batch
    offset of each committed offset's record (``positions``, same shape as ``offsets``) and
    the transactional offsets still waiting for a marker (``pending``: producer id ->
    PendingOffsets)."""

    group_values: dict[str, GroupMetadataValue]
    offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]]
    records: int
    positions: dict[str, dict[TopicPartition, int]] = attrs.field(factory=dict)
    pending: dict[int, PendingOffsets] = attrs.field(factory=dict)


@attrs.frozen
class LogBatch:
    """One batch of __consumer_offsets as loading sees it: base offset, producer id, the
    transactional flag, ``control`` (None for data; for a control batch True = COMMIT
    marker, False = ABORT marker) and its records as (key, value)."""

    base_offset: int
    records: tuple[tuple[bytes | None, bytes | None], ...]
    producer_id: int = -1
    is_transactional: bool = False
    control: bool | None = None


def control_record_committed(key: bytes | memoryview | None) -> bool | None:
    """A control record's key (Kafka's ControlRecordType: int16 version, int16 type):
    True for COMMIT (1), False for ABORT (0), None for anything else."""
    if key is None or len(key) < 4:
        return None
    kind = _I16.unpack_from(bytes(key[:4]), 2)[0]
    return {0: False, 1: True}.get(kind)


def replay(records: Iterable[tuple[bytes | None, bytes | None]]) -> LoadedPartition:
    """Apply non-transactional __consumer_offsets records in log order (record i at offset
    i): see replay_batches."""
    return replay_batches(LogBatch(i, (rec,)) for i, rec in enumerate(records))


def replay_batches(batches: Iterable[LogBatch]) -> LoadedPartition:
    """Apply __consumer_offsets batches in log order (Kafka's loadGroupsAndOffsets): the last
    value per key wins, tombstones delete (a group tombstone removes the group's metadata,
    not its offsets); offsets in a transactional batch are pending for its producer until
    that producer's control batch: COMMIT installs each one unless the loaded offset was
    written later in the log, ABORT drops them. Undecodable records are logged and skipped."""
    groups: dict[str, GroupMetadataValue] = {}
    offsets: dict[str, dict[TopicPartition, CommitRecordMetadataAndOffset]] = {}
    pending: dict[int, PendingOffsets] = {}
    n = 0
    for batch in batches:
        if batch.control is not None:
            n += len(batch.records)
            done = pending.pop(batch.producer_id, {})
            if batch.control:
                for gid, commits in done.items():
                    loaded = offsets.setdefault(gid, {})
                    for tp, commit in commits.items():
                        current = loaded.get(tp)
                        if current is None or current.older_than(commit):
                            loaded[tp] = commit
            continue
        for key_bytes, value_bytes in batch.records:
            n += 1
            if key_bytes is None:
                continue
            try:
                key = decode_key(key_bytes)
                if isinstance(key, OffsetCommitKey):
                    tp = TopicPartition(key.topic, key.partition)
                    if batch.is_transactional:
                        target = pending.setdefault(batch.producer_id, {}).setdefault(key.group, {})
                    else:
                        target = offsets.setdefault(key.group, {})
                    if value_bytes is None:
                        target.pop(tp, None)
                    else:
                        target[tp] = CommitRecordMetadataAndOffset(
                            batch.base_offset, decode_offset_commit_value(value_bytes))
                else:
                    if value_bytes is None:
                        groups.pop(key.group, None)
                    else:
                        groups[key.group] = decode_group_metadata_value(value_bytes)
            except OffsetsRecordError as exc:
                log.warning("offsets_record_skipped", error=str(exc))
    return LoadedPartition(
        groups,
        {g: {tp: c.offset_and_metadata for tp, c in o.items()} for g, o in offsets.items() if o},
        n,
        {g: {tp: c.appended_batch_offset for tp, c in o.items() if c.appended_batch_offset is not None}
         for g, o in offsets.items() if o},
        {pid: {g: o for g, o in by_group.items() if o} for pid, by_group in pending.items()
         if any(by_group.values())})


def iter_log_batches(partition_log: Any, end_offset: int, chunk_bytes: int) -> Iterator[LogBatch]:
    """Every batch of ``partition_log`` (a storage UnifiedLog) from its start up to
    ``end_offset`` (exclusive) as a LogBatch, reading ``chunk_bytes`` at a time."""
    offset = partition_log.log_start_offset
    while offset < end_offset:
        slices = partition_log.read(offset, chunk_bytes, end_offset, True)
        data = b"".join(s.read_bytes() for s in slices)
        if not data:
            break
        batches = decode_batches(data, allow_truncated_tail=True)
        if not batches:
            break
        for batch in batches:
            if batch.last_offset < offset:
                continue
            control = None
            if batch.is_control:
                control = control_record_committed(batch.records[0].key) if batch.records else None
                if control is None:
                    offset = batch.last_offset + 1
                    continue
            records = tuple((rec.key, rec.value) for rec in batch.records if offset <= rec.offset < end_offset)
            yield LogBatch(batch.base_offset, records, batch.producer_id, batch.is_transactional, control)
            offset = max(offset, batch.last_offset + 1)


# ----------------------------------------------------------------------------- the manager

APPEND_ERROR_MAP = {
    ErrorCode.unknown_topic_or_partition: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas_after_append: ErrorCode.coordinator_not_available,
    ErrorCode.request_timed_out: ErrorCode.coordinator_not_available,
    ErrorCode.not_leader_or_follower: ErrorCode.not_coordinator,
    ErrorCode.kafka_storage_error: ErrorCode.not_coordinator,
    ErrorCode.message_too_large: ErrorCode.invalid_commit_offset_size,
    ErrorCode.record_list_too_large: ErrorCode.invalid_commit_offset_size,
    ErrorCode.invalid_fetch_size: ErrorCode.invalid_commit_offset_size,
}
"""How an append error on __consumer_offsets is answered to a group client (Kafka's
GroupMetadataManager error mapping)."""


class GroupMetadataManager:
    """Groups and offsets cache for the offsets partitions this broker leads, plus their
    persistence. ``replica_manager`` is the broker's ReplicaManager (``partitions``,
    ``append_records``); clocks are injectable for tests.
    """

    def __init__(self, broker_id: int, config: OffsetConfig, replica_manager: Any,
                 wall_clock_ms: Any = None) -> None:
        self.broker_id = broker_id
        self.config = config
        self.replica_manager = replica_manager
        self.wall_clock_ms = wall_clock_ms or (lambda: int(time.time() * 1000))
        self.groups: dict[str, GroupMetadata] = {}
        self.owned_partitions: dict[int, int] = {}    # partition -> leader epoch it was loaded for
        self.loading_partitions: dict[int, int] = {}  # partition -> leader epoch being loaded
        # groups with pending transactional offsets, per producer id (Kafka's openGroupsForProducer)
        self.producer_groups: dict[int, set[str]] = {}

    # ------------------------------------------------------------------ ownership
    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.config.num_partitions)

    def is_group_local(self, group_id: str) -> bool:
        return self.partition_for(group_id) in self.owned_partitions

    def is_group_loading(self, group_id: str) -> bool:
        return self.partition_for(group_id) in self.loading_partitions

    def is_loading(self) -> bool:
        return bool(self.loading_partitions)

    def get_group(self, group_id: str) -> GroupMetadata | None:
        return self.groups.get(group_id)

    def get_or_create_group(self, group_id: str) -> GroupMetadata:
        group = self.groups.get(group_id)
        if group is None:
            group = GroupMetadata(group_id, current_state_timestamp_ms=self.wall_clock_ms())
            self.groups[group_id] = group
        return group

    def groups_of_partition(self, partition: int) -> list[GroupMetadata]:
        return [g for gid, g in self.groups.items() if self.partition_for(gid) == partition]

    # ------------------------------------------------------------------ loading
    def load_partition(self, partition: int, now_ms: int) -> list[GroupMetadata]:
        """Read offsets partition ``partition`` from this broker's log and install its groups
        (replacing any cached ones). Returns the loaded groups. Raises KeyError when the
        partition is not hosted here, storage errors as they come."""
        p = self.replica_manager.partitions[TopicPartition(OFFSETS_TOPIC, partition)]
        loaded = replay_batches(iter_log_batches(p.log, p.log.log_end_offset, self.config.load_buffer_size))
        for g in self.groups_of_partition(partition):
            self._remove_group(g.group_id)
        out = []
        pending_groups = {gid for by_group in loaded.pending.values() for gid in by_group}
        for gid in set(loaded.group_values) | set(loaded.offsets) | pending_groups:
            offsets = loaded.offsets.get(gid, {})
            value = loaded.group_values.get(gid)
            if value is None:
                group = GroupMetadata(gid, current_state_timestamp_ms=self.wall_clock_ms())
                group.offsets = dict(offsets)
            else:
                group = group_from_value(gid, value, offsets, now_ms)
            group.offset_positions = dict(loaded.positions.get(gid, {}))
            for pid, by_group in loaded.pending.items():
                if gid in by_group:
                    group.pending_txn_offsets[pid] = dict(by_group[gid])
                    self.producer_groups.setdefault(pid, set()).add(gid)
            self.groups[gid] = group
            out.append(group)
        log.info("offsets_partition_loaded", partition=partition, records=loaded.records,
                 groups=len(out), pending_txn_producers=len(loaded.pending))
        return out

    def _remove_group(self, group_id: str) -> None:
        self.groups.pop(group_id, None)
        for pid in [pid for pid, gids in self.producer_groups.items() if group_id in gids]:
            self.producer_groups[pid].discard(group_id)
            if not self.producer_groups[pid]:
                del self.producer_groups[pid]

    def remove_partition(self, partition: int) -> list[GroupMetadata]:
        """Forget the groups of a partition this broker no longer leads; returns them."""
        gone = self.groups_of_partition(partition)
        for g in gone:
            self._remove_group(g.group_id)
        self.owned_partitions.pop(partition, None)
        self.loading_partitions.pop(partition, None)
        return gone

    # ------------------------------------------------------------------ writes
    async def append(self, group_id: str, records: list[tuple[bytes, bytes | None]]) -> ErrorCode:
        """Append records for ``group_id``'s partition with acks=-1; returns NONE or the
        error a group client should see (APPEND_ERROR_MAP)."""
        return (await self.append_batch(group_id, records))[0]

    async def append_batch(self, group_id: str, records: list[tuple[bytes, bytes | None]], *,
                           producer_id: int = -1, producer_epoch: int = -1) -> tuple[ErrorCode, int]:
        """Append ``records`` as one batch to ``group_id``'s offsets partition with acks=-1.
        With ``producer_id`` >= 0 the batch is transactional (producer id and epoch set, the
        transactional flag, the producer's next sequence on that partition: next_sequence).
        Returns (NONE or the error a group client
        should see, APPEND_ERROR_MAP; the batch's base offset or -1)."""
        partition = self.partition_for(group_id)
        if partition not in self.owned_partitions:
            return ErrorCode.not_coordinator, -1
        if not records:
            return ErrorCode.none, -1
        now = self.wall_clock_ms()
        tp = TopicPartition(OFFSETS_TOPIC, partition)
        sequence = self.next_sequence(tp, producer_id, producer_epoch) if producer_id >= 0 else -1
        batch = build_records_batch([(k, v, (), now) for k, v in records], producer_id=producer_id,
                                    producer_epoch=producer_epoch, base_sequence=sequence,
                                    transactional=producer_id >= 0)
        statuses = await self.replica_manager.append_records(
            -1, self.config.commit_timeout_ms, [(tp, memoryview(bytearray(batch)))])
        error = statuses[tp].error
        if error != ErrorCode.none:
            log.warning("offsets_append_failed", group=group_id, partition=partition,
                        error=error.name.upper(), producer_id=producer_id)
            return APPEND_ERROR_MAP.get(error, error), -1
        return ErrorCode.none, int(statuses[tp].base_offset)

    def next_sequence(self, tp: TopicPartition, producer_id: int, producer_epoch: int) -> int:
        """The base sequence of the group coordinator's next transactional batch of
        ``producer_id`` on offsets partition ``tp``: one past the last sequence the partition's
        producer state holds for that producer and epoch, else 0. Kafka's GroupMetadataManager
        writes 0 every time and its log skips sequence checks for coordinator appends (origin
        COORDINATOR); kafkalike's append path checks every producer batch, so the coordinator
        continues the producer's sequence there instead (no await between this read and the
        append, so nothing interleaves)."""
        part = self.replica_manager.partitions.get(tp)
        state = getattr(part, "producer_state", None)
        entry = getattr(state, "producers", {}).get(producer_id)
        batches = getattr(entry, "batches", None)
        if entry is None or getattr(entry, "epoch", None) != producer_epoch or not batches:
            return 0
        return (int(batches[-1].last_seq) + 1) & 0x7FFFFFFF

    def _split_oversized_metadata(self, offsets: dict[TopicPartition, OffsetAndMetadata]
                                  ) -> tuple[dict[TopicPartition, ErrorCode], dict[TopicPartition, OffsetAndMetadata]]:
        """(OFFSET_METADATA_TOO_LARGE for each offset whose metadata is longer than
        offset.metadata.max.bytes in UTF-8, the offsets to write)."""
        too_large: dict[TopicPartition, ErrorCode] = {}
        valid: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, om in offsets.items():
            if om.metadata is not None and len(om.metadata.encode("utf-8")) > self.config.max_metadata_size:
                too_large[tp] = ErrorCode.offset_metadata_too_large
            else:
                valid[tp] = om
        return too_large, valid

    async def store_offsets(self, group: GroupMetadata,
                            offsets: dict[TopicPartition, OffsetAndMetadata]) -> dict[TopicPartition, ErrorCode]:
        """Persist and then cache committed offsets. Metadata longer than
        offset.metadata.max.bytes gets OFFSET_METADATA_TOO_LARGE (not written)."""
        result, valid = self._split_oversized_metadata(offsets)
        error, base_offset = await self.append_batch(
            group.group_id, [offset_commit_record(group.group_id, tp, om) for tp, om in valid.items()])
        for tp, om in valid.items():
            result[tp] = error
            if error == ErrorCode.none and not group.is_state(GroupState.DEAD):
                group.put_offset(tp, CommitRecordMetadataAndOffset(base_offset if base_offset >= 0 else None, om))
        return result

    async def store_txn_offsets(self, group: GroupMetadata, producer_id: int, producer_epoch: int,
                                offsets: dict[TopicPartition, OffsetAndMetadata]) -> dict[TopicPartition, ErrorCode]:
        """TxnOffsetCommit's write (Kafka's GroupMetadataManager.storeOffsets with a producer
        id): the offsets are appended as one transactional batch of ``producer_id`` /
        ``producer_epoch`` and kept pending for that producer, invisible to OffsetFetch,
        until its transaction's marker (handle_txn_completion). Metadata longer than
        offset.metadata.max.bytes gets OFFSET_METADATA_TOO_LARGE (not written); an append
        error is answered per partition (APPEND_ERROR_MAP) and the pending offsets are
        forgotten."""
        result, valid = self._split_oversized_metadata(offsets)
        if not valid:
            return result
        gid = group.group_id
        self.producer_groups.setdefault(producer_id, set()).add(gid)
        group.prepare_txn_offset_commit(producer_id, valid)
        error, base_offset = await self.append_batch(
            gid, [offset_commit_record(gid, tp, om) for tp, om in valid.items()],
            producer_id=producer_id, producer_epoch=producer_epoch)
        for tp, om in valid.items():
            result[tp] = error
            if group.is_state(GroupState.DEAD):
                continue
            if error == ErrorCode.none:
                group.on_txn_offset_commit_append(producer_id, tp, CommitRecordMetadataAndOffset(base_offset, om))
            else:
                group.fail_pending_txn_offset_commit(producer_id, tp)
        if error != ErrorCode.none and not group.has_pending_offset_commits_from_producer(producer_id):
            gids = self.producer_groups.get(producer_id)
            if gids is not None:
                gids.discard(gid)
                if not gids:
                    del self.producer_groups[producer_id]
        return result

    def handle_txn_completion(self, producer_id: int, completed_partitions: Iterable[int],
                              is_commit: bool) -> int:
        """A COMMIT (``is_commit``) or ABORT marker of ``producer_id`` was written to the
        offsets partitions ``completed_partitions``: complete the pending transactional
        offsets of the groups there (Kafka's GroupMetadataManager.handleTxnCompletion).
        Returns the number of committed offsets that changed."""
        parts = set(completed_partitions)
        gids = self.producer_groups.get(producer_id, set())
        changed = 0
        for gid in [g for g in gids if self.partition_for(g) in parts]:
            group = self.groups.get(gid)
            if group is not None and not group.is_state(GroupState.DEAD):
                changed += len(group.complete_pending_txn_offset_commit(producer_id, is_commit))
            gids.discard(gid)
            log.info("txn_offsets_completed", group=gid, producer_id=producer_id,
                     result="COMMIT" if is_commit else "ABORT")
        if not gids:
            self.producer_groups.pop(producer_id, None)
        return changed

    async def store_group(self, group: GroupMetadata, assignment: dict[str, bytes] | None = None) -> ErrorCode:
        """Persist a group's metadata (GroupMetadataValue) with ``assignment``."""
        return await self.append(group.group_id, [group_metadata_record(
            group.group_id, group_metadata_value(group, assignment))])

    async def delete_group_records(self, group: GroupMetadata) -> ErrorCode:
        """Tombstones for a group's metadata and every offset it has."""
        records = [offset_commit_record(group.group_id, tp, None) for tp in group.offsets]
        records.append(group_metadata_record(group.group_id, None))
        return await self.append(group.group_id, records)

    async def remove_offsets(self, group: GroupMetadata,
                             partitions: Iterable[TopicPartition]) -> tuple[list[TopicPartition], ErrorCode]:
        """Kafka's ``cleanupGroupMetadata(Seq(group), _.removeOffsets(partitions))``: drop the
        group's committed offsets of ``partitions`` from the cache at once, then write a
        tombstone for each one it had; a group left Empty with no offsets becomes Dead and its
        metadata is tombstoned too (when it ever had a generation, Kafka's ``generation > 0``).
        Partitions without a committed offset are skipped (no record). Returns (partitions
        removed, NONE or the append's error as a group client sees it, e.g. NOT_COORDINATOR)."""
        removed = [tp for tp in dict.fromkeys(partitions) if tp in group.offsets]
        for tp in removed:
            del group.offsets[tp]
        records = [offset_commit_record(group.group_id, tp, None) for tp in removed]
        if group.is_state(GroupState.EMPTY) and not group.offsets:
            group.transition_to(GroupState.DEAD, self.wall_clock_ms())
            if self.groups.get(group.group_id) is group:
                del self.groups[group.group_id]
                if group.generation_id > 0:
                    records.append(group_metadata_record(group.group_id, None))
        error = await self.append(group.group_id, records) if records else ErrorCode.none
        return removed, error

    # ------------------------------------------------------------------ retention
    def expired_offsets(self, group: GroupMetadata, now_wall_ms: int) -> list[TopicPartition]:
        """Offsets due to expire (KIP-211, Kafka's GroupMetadata.removeExpiredOffsets): an
        explicit expire timestamp wins; a group using the consumer protocol keeps its offsets
        while it has members and lets them expire offsets.retention.minutes after it became
        Empty; a group with no protocol (simple commits) expires each offset that long after
        its commit."""
        retention = self.config.retention_ms
        out = []
        for tp, om in group.offsets.items():
            if om.expire_timestamp is not None:
                expired = now_wall_ms >= om.expire_timestamp
            elif group.protocol_type is None:
                expired = now_wall_ms - om.commit_timestamp >= retention
            elif group.is_state(GroupState.EMPTY):
                base = max(group.current_state_timestamp_ms, om.commit_timestamp)
                expired = now_wall_ms - base >= retention
            else:
                subscribed = group.subscribed_topics() if group.is_state(GroupState.STABLE) else None
                expired = (subscribed is not None and tp.topic not in subscribed
                           and now_wall_ms - om.commit_timestamp >= retention)
            if expired:
                out.append(tp)
        return out

    async def cleanup_group_metadata(self) -> int:
        """One pass of offset expiration: tombstones for expired offsets; a group left Empty
        with no offsets becomes Dead and its metadata is tombstoned. Returns offsets removed."""
        now = self.wall_clock_ms()
        removed = 0
        for group in list(self.groups.values()):
            if not self.is_group_local(group.group_id):
                continue
            expired = self.expired_offsets(group, now)
            records = [offset_commit_record(group.group_id, tp, None) for tp in expired]
            becomes_dead = (group.is_state(GroupState.EMPTY) and
                            len(expired) == len(group.offsets) and group.generation_id >= 0
                            and not group.pending_txn_offsets)
            if becomes_dead:
                records.append(group_metadata_record(group.group_id, None))
            if not records:
                continue
            error = await self.append(group.group_id, records)
            if error != ErrorCode.none:
                continue
            for tp in expired:
                group.offsets.pop(tp, None)
            removed += len(expired)
            if becomes_dead and group.is_state(GroupState.EMPTY) and not group.offsets:
                group.transition_to(GroupState.DEAD, now)
                self.groups.pop(group.group_id, None)
            log.info("offsets_expired", group=group.group_id, count=len(expired), group_dead=becomes_dead)
        return removed
