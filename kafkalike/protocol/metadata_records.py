"""The KRaft metadata log's records: their schemas, MetadataRecordSerde's framing, control records.

kio has no metadata record schemas (Kafka generates them from
``metadata/src/main/resources/common/metadata/*.json``), so kafkalike declares the ones a working
cluster needs here, field for field as Kafka 3.9's JSON files declare them: one frozen attrs class
per record, covering all its valid versions; ``mfield(type, versions, tag=...)`` says in which
versions a field is on the wire, when it may be null and, for tagged fields (KIP-482), its tag.
Every metadata record is flexible in every version.

The value of a record in ``__cluster_metadata`` (and in snapshots, bootstrap.checkpoint) is framed
as Kafka's ``MetadataRecordSerde`` / ``AbstractApiMessageSerde`` frame it; the record key is null::

    frame version   unsigned varint   1
    api key         unsigned varint   e.g. 12 = FeatureLevelRecord
    version         unsigned varint   the record's schema version
    body            the fields in declaration order, then the tagged-field section
                    (uvarint count, then per field: uvarint tag, uvarint size, value), sorted by tag

Control records (Kafka's ``ControlRecordType``) have the key ``version int16 (0), type int16`` and
a value that is the message body without framing: LeaderChangeMessage (type 2), SnapshotHeader (3),
SnapshotFooter (4), written by Raft into the metadata log and at both ends of every snapshot.

`build_metadata_batch` / `build_control_batch` make the v2 batches of the metadata log and of
snapshots from these (partitionLeaderEpoch = the Raft epoch).

Wire types: int8/16/32/64, uint16, bool, float64 (IEEE 754, big-endian), compact bytes, uuid (16 bytes; ``uuid.UUID``; Kafka's ZERO_UUID is
``ZERO_UUID``), compact string (uvarint length + 1, 0 = null), compact arrays of those or of
structs. A tagged field is written only when its value differs from its default, as Kafka's
generated ``write()`` does. A non-tagged field absent from a version is not written (Kafka would
refuse a non-default value there; we stay lenient, as kafkalike/protocol/schema.py does).

Errors: decoding raises ``MetadataParseError`` (Kafka's MetadataParseException; a
``ProtocolError`` with CORRUPT_MESSAGE) for truncated input, an unknown frame version, api key or
version, bad varints, invalid UTF-8. The module is sans-IO.
"""

from __future__ import annotations

import base64
import struct
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from kafkalike.protocol import record_batch as rb
from kafkalike.protocol.errors import ErrorCode, MalformedFrameError, ProtocolError
from kafkalike.protocol.schema import MAX_VERSION, read_uvarint, write_uvarint

ZERO_UUID = uuid.UUID(int=0)
"""Kafka's Uuid.ZERO_UUID (AAAAAAAAAAAAAAAAAAAAAA): 'no id'."""
METADATA_TOPIC_ID = uuid.UUID(int=1)
"""Kafka's Uuid.METADATA_TOPIC_ID (AAAAAAAAAAAAAAAAAAAAAQ): the topic id of __cluster_metadata."""

FRAME_VERSION = 1
"""MetadataRecordSerde's DEFAULT_FRAME_VERSION: the first uvarint of every record value."""

# ControlRecordType (Kafka's clients/.../record/ControlRecordType.java)
CONTROL_LEADER_CHANGE = 2
CONTROL_SNAPSHOT_HEADER = 3
CONTROL_SNAPSHOT_FOOTER = 4
CONTROL_KRAFT_VERSION = 5
CONTROL_KRAFT_VOTERS = 6
_CONTROL_KEY = struct.Struct(">hh")

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")


class MetadataParseError(ProtocolError):
    """Bytes that are not a valid metadata or control record (Kafka's MetadataParseException).

    error_code is CORRUPT_MESSAGE: the bytes came from a log or snapshot file, not a request.
    """

    error_code = ErrorCode.corrupt_message


# ------------------------------------------------------------------------------- Kafka's Uuid


def uuid_to_base64(value: uuid.UUID) -> str:
    """Kafka's Uuid.toString(): URL-safe base64 of the 16 bytes without padding (22 chars)."""
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def uuid_from_base64(text: str) -> uuid.UUID:
    """Kafka's Uuid.fromString(): raises ValueError unless `text` is 22 chars of URL-safe base64
    for 16 bytes (Kafka: "Input string with prefix ... is too long/short to be decoded as a
    base64 UUID")."""
    if len(text) != 22:
        raise ValueError(f"Input string `{text}` decoded as {len(text)} characters, not a 22-character base64 UUID")
    try:
        raw = base64.urlsafe_b64decode(text + "==")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"Input string `{text}` is not valid base64") from exc
    if len(raw) != 16:
        raise ValueError(f"Input string `{text}` does not decode to 16 bytes")
    return uuid.UUID(bytes=raw)


def random_uuid() -> uuid.UUID:
    """Kafka's Uuid.randomUuid(): a random (v4) id that is neither ZERO_UUID nor
    METADATA_TOPIC_ID and whose base64 form does not start with '-' (a CLI would read it as a
    flag)."""
    while True:
        value = uuid.uuid4()
        if value not in (ZERO_UUID, METADATA_TOPIC_ID) and not uuid_to_base64(value).startswith("-"):
            return value


# ------------------------------------------------------------------------------ the schema


def _versions(spec: str | None) -> tuple[int, int] | None:
    if spec is None:
        return None
    if spec.endswith("+"):
        return int(spec[:-1]), MAX_VERSION
    if "-" in spec:
        lo, hi = spec.split("-")
        return int(lo), int(hi)
    return int(spec), int(spec)


@attrs.frozen
class FieldSpec:
    """How one attribute travels: wire `type` ("int8".."uuid", "string", a struct class, or
    ("array", item)), the inclusive `versions` it exists in, the versions it may be null in,
    and its `tag` when it is a tagged field (its taggedVersions are its versions here, as in
    every record this module declares)."""

    type: Any
    versions: tuple[int, int]
    nullable_versions: tuple[int, int] | None
    tag: int | None
    default: Any

    def present(self, version: int) -> bool:
        return self.versions[0] <= version <= self.versions[1]

    def nullable(self, version: int) -> bool:
        nv = self.nullable_versions
        return nv is not None and nv[0] <= version <= nv[1]


_META = "kafkalike.metadata_records"


def mfield(type: Any, versions: str = "0+", *, default: Any = attrs.NOTHING,
           nullable_versions: str | None = None, tag: int | None = None) -> Any:
    """Declare a record field as Kafka's JSON does: `type` is a primitive name, a struct class
    or `[item]` for an array; `versions`/`nullable_versions` in Kafka's notation ("0+", "1-2");
    `tag` for a tagged field. Without a `default`, numbers default to 0, strings to "", uuids
    to ZERO_UUID and arrays to () (Kafka's generated defaults)."""
    if isinstance(type, list):
        type = ("array", type[0])
    if default is attrs.NOTHING:
        default = () if isinstance(type, tuple) else \
            {"string": "", "bytes": b"", "uuid": ZERO_UUID, "bool": False, "float64": 0.0}.get(type, 0)
    spec = FieldSpec(type, _versions(versions) or (0, MAX_VERSION), _versions(nullable_versions), tag, default)
    return attrs.field(default=default, metadata={_META: spec})


def _specs(cls: type) -> list[tuple[str, FieldSpec]]:
    cached = cls.__dict__.get("_metadata_specs")
    if cached is None:
        cached = [(a.name, a.metadata[_META]) for a in attrs.fields(cls) if _META in a.metadata]
        type.__setattr__(cls, "_metadata_specs", cached)
    return cached


def _write(out: bytearray, typ: Any, value: Any, version: int, nullable: bool) -> None:
    if typ == "int32":
        out += _I32.pack(value)
    elif typ == "int64":
        out += _I64.pack(value)
    elif typ == "int16":
        out += _I16.pack(value)
    elif typ == "int8":
        out += _I8.pack(value)
    elif typ == "uint16":
        out += _U16.pack(value)
    elif typ == "bool":
        out.append(1 if value else 0)
    elif typ == "float64":
        out += _F64.pack(value)
    elif typ == "uuid":
        out += value.bytes
    elif typ in ("string", "bytes") or isinstance(typ, tuple):
        if value is None:
            if not nullable:
                raise ValueError("null in a non-nullable field")
            out.append(0)
        elif typ in ("string", "bytes"):
            data = value.encode("utf-8") if typ == "string" else bytes(value)
            write_uvarint(out, len(data) + 1)
            out += data
        else:
            write_uvarint(out, len(value) + 1)
            for element in value:
                _write(out, typ[1], element, version, False)
    elif isinstance(typ, type):
        write_struct(out, value, version)
    else:  # pragma: no cover - declaration error
        raise TypeError(f"unknown wire type {typ!r}")


def write_struct(out: bytearray, obj: Any, version: int) -> None:
    """Append `obj` (a class declared with mfield) at `version`, flexible, with its tagged
    fields (those that differ from their default) sorted by tag."""
    tagged: list[tuple[int, bytes]] = []
    for name, spec in _specs(type(obj)):
        if not spec.present(version):
            continue
        value = getattr(obj, name)
        if spec.tag is None:
            _write(out, spec.type, value, version, spec.nullable(version))
        elif value != spec.default:
            field = bytearray()
            _write(field, spec.type, value, version, spec.nullable(version))
            tagged.append((spec.tag, bytes(field)))
    write_uvarint(out, len(tagged))
    for tag, data in sorted(tagged):
        write_uvarint(out, tag)
        write_uvarint(out, len(data))
        out += data


def _need(buf: Any, pos: int, n: int) -> None:
    if pos + n > len(buf):
        raise MetadataParseError(f"field runs past the end of the record (at byte {pos})")


def _read(buf: Any, pos: int, typ: Any, version: int, nullable: bool) -> tuple[Any, int]:
    if typ == "int32":
        _need(buf, pos, 4)
        return _I32.unpack_from(buf, pos)[0], pos + 4
    if typ == "int64":
        _need(buf, pos, 8)
        return _I64.unpack_from(buf, pos)[0], pos + 8
    if typ == "int16":
        _need(buf, pos, 2)
        return _I16.unpack_from(buf, pos)[0], pos + 2
    if typ == "int8":
        _need(buf, pos, 1)
        return _I8.unpack_from(buf, pos)[0], pos + 1
    if typ == "uint16":
        _need(buf, pos, 2)
        return _U16.unpack_from(buf, pos)[0], pos + 2
    if typ == "bool":
        _need(buf, pos, 1)
        return buf[pos] != 0, pos + 1
    if typ == "float64":
        _need(buf, pos, 8)
        return _F64.unpack_from(buf, pos)[0], pos + 8
    if typ == "uuid":
        _need(buf, pos, 16)
        return uuid.UUID(bytes=bytes(buf[pos:pos + 16])), pos + 16
    if typ in ("string", "bytes") or isinstance(typ, tuple):
        n, pos = _uvarint(buf, pos)
        n -= 1
        if n < 0:
            if nullable:
                return None, pos
            raise MetadataParseError("null in a non-nullable field")
        if typ == "bytes":
            _need(buf, pos, n)
            return bytes(buf[pos:pos + n]), pos + n
        if typ == "string":
            _need(buf, pos, n)
            try:
                return bytes(buf[pos:pos + n]).decode("utf-8"), pos + n
            except UnicodeDecodeError as exc:
                raise MetadataParseError(f"string is not valid UTF-8: {exc}") from None
        if n > len(buf) - pos:  # every element takes at least one byte
            raise MetadataParseError(f"array length {n} exceeds the record")
        items = []
        for _ in range(n):
            element, pos = _read(buf, pos, typ[1], version, False)
            items.append(element)
        return tuple(items), pos
    if isinstance(typ, type):
        return read_struct(typ, buf, pos, version)
    raise TypeError(f"unknown wire type {typ!r}")  # pragma: no cover


def _uvarint(buf: Any, pos: int) -> tuple[int, int]:
    try:
        return read_uvarint(buf, pos)
    except MalformedFrameError as exc:
        raise MetadataParseError(str(exc)) from None


def read_struct(cls: type, buf: Any, pos: int, version: int) -> tuple[Any, int]:
    """Decode an instance of `cls` at `version` from `buf[pos:]`; returns (obj, new position).
    Unknown tags are skipped, as Kafka keeps them as unknown tagged fields. Raises
    MetadataParseError."""
    kwargs: dict[str, Any] = {}
    by_tag: dict[int, tuple[str, FieldSpec]] = {}
    for name, spec in _specs(cls):
        if not spec.present(version):
            continue
        if spec.tag is None:
            kwargs[name], pos = _read(buf, pos, spec.type, version, spec.nullable(version))
        else:
            by_tag[spec.tag] = (name, spec)
    count, pos = _uvarint(buf, pos)
    for _ in range(count):
        tag, pos = _uvarint(buf, pos)
        size, pos = _uvarint(buf, pos)
        _need(buf, pos, size)
        if tag in by_tag:
            name, spec = by_tag[tag]
            kwargs[name], end = _read(buf, pos, spec.type, version, spec.nullable(version))
            if end != pos + size:
                raise MetadataParseError(f"tagged field {tag} has size {size} but decodes to {end - pos} bytes")
        pos += size
    return cls(**kwargs), pos


class ApiMessage:
    """Base of the records below. Each sets `api_key`, `valid_versions` (inclusive) and
    `kafka_3_9_version`: the version Kafka 3.9 writes at metadata.version 3.9-IV0
    (MetadataVersion.IBP_3_9_IV0's registerBrokerRecordVersion() etc.)."""

    api_key: ClassVar[int] = -1
    valid_versions: ClassVar[tuple[int, int]] = (0, 0)
    kafka_3_9_version: ClassVar[int] = 0

    def to_bytes(self, version: int | None = None) -> bytes:
        """The body alone (no MetadataRecordSerde framing) at `version` (default: 3.9's)."""
        out = bytearray()
        write_struct(out, self, self.kafka_3_9_version if version is None else version)
        return bytes(out)


# ------------------------------------------------------------- metadata records (Kafka 3.9)


@attrs.frozen
class BrokerEndpoint:
    """RegisterBrokerRecord.EndPoints[]: a listener; `port` uint16, `security_protocol` is
    Kafka's SecurityProtocol id (0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL)."""

    name: str = mfield("string")
    host: str = mfield("string")
    port: int = mfield("uint16")
    security_protocol: int = mfield("int16")


@attrs.frozen
class BrokerFeature:
    """RegisterBrokerRecord.Features[]: a feature the broker supports, with its version range."""

    name: str = mfield("string")
    min_supported_version: int = mfield("int16")
    max_supported_version: int = mfield("int16")


@attrs.frozen
class RegisterBrokerRecord(ApiMessage):
    """api key 0, versions 0-3 (3.9 writes v3): a broker registered (BrokerRegistration)."""

    api_key = 0
    valid_versions = (0, 3)
    kafka_3_9_version = 3

    broker_id: int = mfield("int32")
    is_migrating_zk_broker: bool = mfield("bool", "2+")
    incarnation_id: uuid.UUID = mfield("uuid")
    broker_epoch: int = mfield("int64")
    end_points: tuple[BrokerEndpoint, ...] = mfield([BrokerEndpoint])
    features: tuple[BrokerFeature, ...] = mfield([BrokerFeature])
    rack: str | None = mfield("string", nullable_versions="0+", default=None)
    fenced: bool = mfield("bool", default=True)
    in_controlled_shutdown: bool = mfield("bool", "1+")
    log_dirs: tuple[uuid.UUID, ...] = mfield(["uuid"], "3+", tag=0)


@attrs.frozen
class TopicRecord(ApiMessage):
    """api key 2, version 0: a topic created, with its id."""

    api_key = 2

    name: str = mfield("string")
    topic_id: uuid.UUID = mfield("uuid")


@attrs.frozen
class PartitionRecord(ApiMessage):
    """api key 3, versions 0-2 (3.9 writes v1: Directories, KIP-858; v2 adds ELR, KIP-966).
    `leader_recovery_state` 0 RECOVERED, 1 RECOVERING (KIP-704)."""

    api_key = 3
    valid_versions = (0, 2)
    kafka_3_9_version = 1

    partition_id: int = mfield("int32", default=-1)
    topic_id: uuid.UUID = mfield("uuid")
    replicas: tuple[int, ...] = mfield(["int32"])
    isr: tuple[int, ...] = mfield(["int32"])
    removing_replicas: tuple[int, ...] = mfield(["int32"])
    adding_replicas: tuple[int, ...] = mfield(["int32"])
    leader: int = mfield("int32", default=-1)
    leader_recovery_state: int = mfield("int8", tag=0, default=0)
    leader_epoch: int = mfield("int32", default=-1)
    partition_epoch: int = mfield("int32", default=-1)
    directories: tuple[uuid.UUID, ...] = mfield(["uuid"], "1+")
    eligible_leader_replicas: tuple[int, ...] | None = mfield(["int32"], "2+", nullable_versions="2+", tag=1,
                                                              default=None)
    last_known_elr: tuple[int, ...] | None = mfield(["int32"], "2+", nullable_versions="2+", tag=2, default=None)


@attrs.frozen
class ConfigRecord(ApiMessage):
    """api key 4, version 0: a dynamic config set (`value` None = deleted). `resource_type` is
    Kafka's ConfigResource.Type id (2 TOPIC, 4 BROKER, 8 BROKER_LOGGER)."""

    api_key = 4

    resource_type: int = mfield("int8")
    resource_name: str = mfield("string")
    name: str = mfield("string")
    value: str | None = mfield("string", nullable_versions="0+", default=None)


@attrs.frozen
class PartitionChangeRecord(ApiMessage):
    """api key 5, versions 0-2 (3.9 writes v1): a partition's change; every field but the ids
    is tagged and None (or -2 for `leader`, -1 for `leader_recovery_state`) means unchanged."""

    api_key = 5
    valid_versions = (0, 2)
    kafka_3_9_version = 1

    partition_id: int = mfield("int32", default=-1)
    topic_id: uuid.UUID = mfield("uuid")
    isr: tuple[int, ...] | None = mfield(["int32"], nullable_versions="0+", tag=0, default=None)
    leader: int = mfield("int32", tag=1, default=-2)
    replicas: tuple[int, ...] | None = mfield(["int32"], nullable_versions="0+", tag=2, default=None)
    removing_replicas: tuple[int, ...] | None = mfield(["int32"], nullable_versions="0+", tag=3, default=None)
    adding_replicas: tuple[int, ...] | None = mfield(["int32"], nullable_versions="0+", tag=4, default=None)
    leader_recovery_state: int = mfield("int8", tag=5, default=-1)
    directories: tuple[uuid.UUID, ...] | None = mfield(["uuid"], "1+", nullable_versions="1+", tag=8, default=None)
    eligible_leader_replicas: tuple[int, ...] | None = mfield(["int32"], "2+", nullable_versions="2+", tag=6,
                                                              default=None)
    last_known_elr: tuple[int, ...] | None = mfield(["int32"], "2+", nullable_versions="2+", tag=7, default=None)


@attrs.frozen
class RemoveTopicRecord(ApiMessage):
    """api key 9, version 0: a topic deleted."""

    api_key = 9

    topic_id: uuid.UUID = mfield("uuid")


@attrs.frozen
class EntityData:
    """ClientQuotaRecord.Entity[]: one part of a quota entity; `entity_type` "user",
    "client-id" or "ip", `entity_name` None for the default entity of that type."""

    entity_type: str = mfield("string")
    entity_name: str | None = mfield("string", nullable_versions="0+", default=None)


@attrs.frozen
class ClientQuotaRecord(ApiMessage):
    """api key 14, version 0: a client quota set (`value`, a float64) or removed (`remove`)
    for an entity (KIP-546; Kafka's ClientQuotaRecord)."""

    api_key = 14

    entity: tuple[EntityData, ...] = mfield([EntityData])
    key: str = mfield("string")
    value: float = mfield("float64")
    remove: bool = mfield("bool")


@attrs.frozen
class UserScramCredentialRecord(ApiMessage):
    """api key 11, version 0: a user's SCRAM credential for one mechanism (KIP-554; `mechanism`
    1 SCRAM-SHA-256, 2 SCRAM-SHA-512; `stored_key` / `server_key` as RFC 5802 derives them)."""

    api_key = 11

    name: str = mfield("string")
    mechanism: int = mfield("int8")
    salt: bytes = mfield("bytes")
    stored_key: bytes = mfield("bytes")
    server_key: bytes = mfield("bytes")
    iterations: int = mfield("int32")


@attrs.frozen
class RemoveUserScramCredentialRecord(ApiMessage):
    """api key 22, version 0: a user's SCRAM credential for `mechanism` deleted."""

    api_key = 22

    name: str = mfield("string")
    mechanism: int = mfield("int8")


@attrs.frozen
class AccessControlEntryRecord(ApiMessage):
    """api key 18, version 0: an ACL created, with its id (a Uuid the controller draws; Kafka's
    AccessControlEntryRecord, StandardAcl). Codes are Kafka's wire codes: `resource_type`
    (2 TOPIC .. 7 USER), `pattern_type` (3 LITERAL, 4 PREFIXED), `operation` (2 ALL .. 14),
    `permission_type` (2 DENY, 3 ALLOW)."""

    api_key = 18

    id: uuid.UUID = mfield("uuid")
    resource_type: int = mfield("int8")
    resource_name: str = mfield("string")
    pattern_type: int = mfield("int8")
    principal: str = mfield("string")
    host: str = mfield("string")
    operation: int = mfield("int8")
    permission_type: int = mfield("int8")


@attrs.frozen
class RemoveAccessControlEntryRecord(ApiMessage):
    """api key 19, version 0: the ACL with this `id` deleted."""

    api_key = 19

    id: uuid.UUID = mfield("uuid")


@attrs.frozen
class FeatureLevelRecord(ApiMessage):
    """api key 12, version 0 (never advances): a finalized feature level, e.g.
    ("metadata.version", 21) for 3.9-IV0; level 0 removes the feature."""

    api_key = 12

    name: str = mfield("string")
    feature_level: int = mfield("int16")


@attrs.frozen
class ProducerIdsRecord(ApiMessage):
    """api key 15, version 0: a block of producer ids handed out; `next_producer_id` is the
    first id not yet given."""

    api_key = 15

    broker_id: int = mfield("int32")
    broker_epoch: int = mfield("int64", default=-1)
    next_producer_id: int = mfield("int64")


@attrs.frozen
class BrokerRegistrationChangeRecord(ApiMessage):
    """api key 17, versions 0-2 (3.9 writes v2): a broker's fencing / controlled-shutdown
    state changed. `fenced`: -1 unfenced, 0 unchanged, 1 fenced; `in_controlled_shutdown`:
    0 unchanged, 1 in controlled shutdown (Kafka's BrokerRegistrationFencingChange and
    BrokerRegistrationInControlledShutdownChange)."""

    api_key = 17
    valid_versions = (0, 2)
    kafka_3_9_version = 2

    broker_id: int = mfield("int32")
    broker_epoch: int = mfield("int64")
    fenced: int = mfield("int8", tag=0, default=0)
    in_controlled_shutdown: int = mfield("int8", "1+", tag=1, default=0)
    log_dirs: tuple[uuid.UUID, ...] = mfield(["uuid"], "2+", tag=2)


@attrs.frozen
class NoOpRecord(ApiMessage):
    """api key 20, version 0, no fields: written by the active controller to advance the
    high watermark (KIP-835)."""

    api_key = 20


METADATA_RECORD_TYPES: dict[int, type[ApiMessage]] = {
    cls.api_key: cls
    for cls in (RegisterBrokerRecord, TopicRecord, PartitionRecord, ConfigRecord, PartitionChangeRecord,
                RemoveTopicRecord, FeatureLevelRecord, ProducerIdsRecord, BrokerRegistrationChangeRecord, NoOpRecord,
                ClientQuotaRecord, UserScramCredentialRecord, RemoveUserScramCredentialRecord,
                AccessControlEntryRecord, RemoveAccessControlEntryRecord)
}
"""api key -> record class, for the records kafkalike declares (Kafka's MetadataRecordType)."""


@attrs.frozen
class ApiMessageAndVersion:
    """A record with the schema version it is (to be) written at (Kafka's class of the name)."""

    message: ApiMessage
    version: int


def serialize_record(message: ApiMessage, version: int | None = None) -> bytes:
    """MetadataRecordSerde.write: frame version 1, api key, version (uvarints), then the body.
    `version` defaults to what Kafka 3.9 writes at 3.9-IV0. Raises ValueError for a version the
    record does not have."""
    version = message.kafka_3_9_version if version is None else version
    lo, hi = message.valid_versions
    if not lo <= version <= hi:
        raise ValueError(f"{type(message).__name__} has no version {version} (valid {lo}-{hi})")
    out = bytearray()
    write_uvarint(out, FRAME_VERSION)
    write_uvarint(out, message.api_key)
    write_uvarint(out, version)
    write_struct(out, message, version)
    return bytes(out)


def deserialize_record(value: bytes | bytearray | memoryview) -> ApiMessageAndVersion:
    """MetadataRecordSerde.read of one record value. Raises MetadataParseError for an unknown
    frame version, an api key kafkalike does not declare, an unsupported version, or bytes
    that do not decode exactly to the end (Kafka: "Found N byte(s) of garbage after ...")."""
    frame, pos = _uvarint(value, 0)
    if frame != FRAME_VERSION:
        raise MetadataParseError(f"Could not deserialize metadata record due to unknown frame version {frame}")
    api_key, pos = _uvarint(value, pos)
    version, pos = _uvarint(value, pos)
    cls = METADATA_RECORD_TYPES.get(api_key)
    if cls is None:
        raise MetadataParseError(f"Unknown metadata id {api_key}")
    lo, hi = cls.valid_versions
    if not lo <= version <= hi:
        raise MetadataParseError(f"{cls.__name__} has no version {version} (valid {lo}-{hi})")
    message, pos = read_struct(cls, value, pos, version)
    if pos != len(value):
        raise MetadataParseError(f"Found {len(value) - pos} byte(s) of garbage after {cls.__name__}")
    return ApiMessageAndVersion(message, version)


# --------------------------------------------------------------------------- control records


@attrs.frozen
class Voter:
    """LeaderChangeMessage's Voter: `voter_id`, and `voter_directory_id` from version 1 (KIP-853)."""

    voter_id: int = mfield("int32")
    voter_directory_id: uuid.UUID = mfield("uuid", "1+")


@attrs.frozen
class LeaderChangeMessage:
    """Control type 2, versions 0-1 (3.9 with static voters writes v0): the first batch a new
    Raft leader appends; `version` is the message's own version field."""

    control_type: ClassVar[int] = CONTROL_LEADER_CHANGE
    valid_versions: ClassVar[tuple[int, int]] = (0, 1)

    version: int = mfield("int16")
    leader_id: int = mfield("int32")
    voters: tuple[Voter, ...] = mfield([Voter])
    granting_voters: tuple[Voter, ...] = mfield([Voter])


@attrs.frozen
class SnapshotHeaderRecord:
    """Control type 3, version 0: the first record of a snapshot; `last_contained_log_timestamp`
    in ms (the append time of the last log record the snapshot covers)."""

    control_type: ClassVar[int] = CONTROL_SNAPSHOT_HEADER
    valid_versions: ClassVar[tuple[int, int]] = (0, 0)

    version: int = mfield("int16")
    last_contained_log_timestamp: int = mfield("int64")


@attrs.frozen
class SnapshotFooterRecord:
    """Control type 4, version 0: the last record of a snapshot."""

    control_type: ClassVar[int] = CONTROL_SNAPSHOT_FOOTER
    valid_versions: ClassVar[tuple[int, int]] = (0, 0)

    version: int = mfield("int16")


ControlMessage = LeaderChangeMessage | SnapshotHeaderRecord | SnapshotFooterRecord
CONTROL_RECORD_TYPES: dict[int, type[Any]] = {
    cls.control_type: cls for cls in (LeaderChangeMessage, SnapshotHeaderRecord, SnapshotFooterRecord)
}


def control_record_key(control_type: int) -> bytes:
    """ControlRecordType's key: version int16 0, type int16 (4 bytes)."""
    return _CONTROL_KEY.pack(0, control_type)


def control_record_value(message: ControlMessage, version: int = 0) -> bytes:
    """The control record's value: the message body at `version` (MessageUtil.toByteBuffer)."""
    out = bytearray()
    write_struct(out, message, version)
    return bytes(out)


def parse_control_record(key: bytes | None, value: bytes | None, version: int = 0) -> ControlMessage:
    """Decode a control record of type 2, 3 or 4 from its key and value (ControlRecordType.parse
    and the message's read at `version`). Raises MetadataParseError for a short key, an unknown
    or other (ABORT/COMMIT, KRaft version/voters) type, or a bad value."""
    if key is None or len(key) < 4:
        raise MetadataParseError("control record key shorter than 4 bytes")
    _key_version, control_type = _CONTROL_KEY.unpack_from(key)
    cls = CONTROL_RECORD_TYPES.get(control_type)
    if cls is None:
        raise MetadataParseError(f"control record type {control_type} is not a KRaft control record kafkalike reads")
    if value is None:
        raise MetadataParseError(f"control record of type {control_type} has a null value")
    message, pos = read_struct(cls, value, 0, version)
    if pos != len(value):
        raise MetadataParseError(f"Found {len(value) - pos} byte(s) of garbage after {cls.__name__}")
    return message


# ------------------------------------------------------------------ batches of the metadata log


def build_metadata_batch(records: Iterable[ApiMessage | ApiMessageAndVersion], base_offset: int = 0, *,
                         epoch: int, append_time_ms: int) -> bytes:
    """One uncompressed v2 batch of metadata records as KRaft writes them (BatchBuilder): null keys,
    values framed by MetadataRecordSerde (messages at the version Kafka 3.9 writes, or as given),
    partitionLeaderEpoch = the Raft `epoch`, every record's timestamp `append_time_ms` (ms),
    producer id/epoch/sequence -1. Raises ValueError for an empty batch or a bad version."""
    values = [serialize_record(r.message, r.version) if isinstance(r, ApiMessageAndVersion) else serialize_record(r)
              for r in records]
    return rb.build_batch([rb.SimpleRecord(value=v, key=None, timestamp=append_time_ms) for v in values],
                          base_offset, partition_leader_epoch=epoch)


def build_control_batch(message: ControlMessage, base_offset: int = 0, *, epoch: int, append_time_ms: int) -> bytes:
    """One control batch (attribute bit 5, not transactional) holding `message` as KRaft writes it
    (MemoryRecords.withLeaderChangeMessage / withSnapshotHeaderRecord / withSnapshotFooterRecord):
    key ControlRecordType (0, type), value the message at version 0."""
    record = rb.SimpleRecord(key=control_record_key(message.control_type), value=control_record_value(message),
                             timestamp=append_time_ms)
    return rb.build_batch([record], base_offset, partition_leader_epoch=epoch, control=True)
