"""Kafka's ZooKeeper layout: every znode path and JSON codec (Kafka's kafka/zk/ZkData.scala).

One place for the layout of docs/design.md §3, byte for byte in meaning with Kafka 2.8/3.x:
the same paths, the same JSON keys and value types (e.g. timestamps and producer-id block
bounds as *strings* of digits, the cluster id's "version" as the string "1", the controller
epoch as a bare decimal). Each znode's value is a frozen attrs class with ``to_json() ->
bytes`` and ``from_json(bytes, ...)``; malformed data raises ``ZNodeDecodeError`` naming what
was wrong. JSON is written compactly (no spaces), as Jackson writes it; key order does not
matter to Kafka's readers, we use the order a learner sees in zookeeper-shell on Kafka.

Checked against Kafka's ZkData.scala (3.0) and against the znodes a real Apache Kafka 3.9.2
broker wrote into a kafkalike ensemble (tests/coordination/test_zk_data.py holds them).
Differences from docs/design.md's table (§3), following Kafka: ``/brokers/topics/<t>`` is written with
``"version":3`` (Kafka 2.8+; 1-3 are read); a broker registration has no "rack" key when no
rack is set; ``/controller`` is version 1 as Kafka 2.x-3.3 wrote it (Kafka 3.4+'s version 2
with "kraftControllerEpoch" is read, and written on request).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any, Mapping, Sequence

import attrs

from kafkalike.protocol.topic_partition import TopicPartition  # re-exported: zk_data.TopicPartition

# ---- errors and JSON helpers -----------------------------------------------------------------


class ZNodeDecodeError(ValueError):
    """A znode's data is not the JSON Kafka writes there (bad JSON, missing key, wrong type)."""


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as Kafka's Json.encodeAsBytes (Jackson) writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _parse_object(data: bytes | None, what: str) -> dict[str, Any]:
    if not data:
        raise ZNodeDecodeError(f"{what}: empty data, expected a JSON object")
    try:
        obj = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ZNodeDecodeError(f"{what}: not JSON ({exc}): {bytes(data)[:200]!r}") from None
    if not isinstance(obj, dict):
        raise ZNodeDecodeError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _field(obj: Mapping[str, Any], key: str, typ: type | tuple[type, ...], what: str) -> Any:
    if key not in obj:
        raise ZNodeDecodeError(f"{what}: missing key {key!r}")
    value = obj[key]
    if typ is int or typ == (int,):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ZNodeDecodeError(f"{what}: {key!r} must be an integer, got {value!r}")
    elif not isinstance(value, typ):
        raise ZNodeDecodeError(f"{what}: {key!r} has the wrong type: {value!r}")
    return value


def _int_list(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise ZNodeDecodeError(f"{what}: expected a list of integers, got {value!r}")
    return tuple(value)


def _digits(value: Any, key: str, what: str) -> int:
    """Kafka writes some longs as strings ("timestamp":"1700000000000"); accept both forms."""
    if isinstance(value, bool):
        raise ZNodeDecodeError(f"{what}: {key!r} must be a number string, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise ZNodeDecodeError(f"{what}: {key!r} must be a number string, got {value!r}")


# ---- Kafka's Uuid (base64url, 22 chars) -------------------------------------------------------


def uuid_to_base64(u: uuid.UUID) -> str:
    """Kafka's Uuid.toString: URL-safe base64 of the 16 bytes without padding (22 chars)."""
    return base64.urlsafe_b64encode(u.bytes).decode("ascii").rstrip("=")


def base64_to_uuid(s: str) -> uuid.UUID:
    """Inverse of uuid_to_base64 (Kafka's Uuid.fromString). Raises ValueError if malformed."""
    if not isinstance(s, str) or len(s) != 22 or not re.fullmatch(r"[A-Za-z0-9_-]{22}", s):
        raise ValueError(f"not a base64 Kafka Uuid: {s!r}")
    return uuid.UUID(bytes=base64.urlsafe_b64decode(s + "=="))


def generate_uuid_base64() -> str:
    """A random id as Kafka makes cluster ids and topic ids (Uuid.randomUuid): 22 base64url
    characters, never starting with '-' (KAFKA-13135: such ids confuse command-line tools),
    never the all-zero or metadata-topic id."""
    while True:
        u = uuid.uuid4()
        s = uuid_to_base64(u)
        if not s.startswith("-") and u.int not in (0, 1):
            return s


# ---- paths ------------------------------------------------------------------------------------

CONSUMERS_PATH = "/consumers"  # old (ZooKeeper-based) consumers; created, never used
CLUSTER_PATH = "/cluster"
CLUSTER_ID_PATH = "/cluster/id"
BROKERS_PATH = "/brokers"
BROKER_IDS_PATH = "/brokers/ids"
BROKER_TOPICS_PATH = "/brokers/topics"
BROKER_SEQUENCE_ID_PATH = "/brokers/seqid"
CONTROLLER_PATH = "/controller"
CONTROLLER_EPOCH_PATH = "/controller_epoch"
ADMIN_PATH = "/admin"
DELETE_TOPICS_PATH = "/admin/delete_topics"
REASSIGN_PARTITIONS_PATH = "/admin/reassign_partitions"
PREFERRED_REPLICA_ELECTION_PATH = "/admin/preferred_replica_election"
ISR_CHANGE_NOTIFICATION_PATH = "/isr_change_notification"
ISR_CHANGE_PREFIX = "isr_change_"
CONFIG_PATH = "/config"
CONFIG_CHANGES_PATH = "/config/changes"
CONFIG_CHANGE_PREFIX = "config_change_"
PRODUCER_ID_BLOCK_PATH = "/latest_producer_id_block"
LOG_DIR_EVENT_NOTIFICATION_PATH = "/log_dir_event_notification"
LOG_DIR_EVENT_PREFIX = "log_dir_event_"
FEATURE_PATH = "/feature"

# Kafka's ConfigType.all: the entity types under /config
CONFIG_TYPE_TOPIC = "topics"
CONFIG_TYPE_CLIENT = "clients"
CONFIG_TYPE_USER = "users"
CONFIG_TYPE_BROKER = "brokers"
CONFIG_TYPE_IP = "ips"
CONFIG_TYPES = (CONFIG_TYPE_TOPIC, CONFIG_TYPE_CLIENT, CONFIG_TYPE_USER, CONFIG_TYPE_BROKER, CONFIG_TYPE_IP)

#: persistent paths every broker creates on start-up if absent (ZkData.PersistentZkPaths,
#: created by KafkaZkClient.createTopLevelPaths), in Kafka's order
PERSISTENT_PATHS: tuple[str, ...] = (
    CONSUMERS_PATH,
    BROKER_IDS_PATH,
    BROKER_TOPICS_PATH,
    CONFIG_CHANGES_PATH,
    DELETE_TOPICS_PATH,
    BROKER_SEQUENCE_ID_PATH,
    ISR_CHANGE_NOTIFICATION_PATH,
    PRODUCER_ID_BLOCK_PATH,
    LOG_DIR_EVENT_NOTIFICATION_PATH,
) + tuple(f"{CONFIG_PATH}/{t}" for t in CONFIG_TYPES)

_TOPIC_RE = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def _check_topic(topic: str) -> str:
    if not isinstance(topic, str) or not _TOPIC_RE.fullmatch(topic) or topic in (".", ".."):
        raise ValueError(f"invalid topic name {topic!r}: 1-249 of [a-zA-Z0-9._-], not '.' or '..'")
    return topic


def broker_id_path(broker_id: int) -> str:
    """``/brokers/ids/<id>``: a live broker's ephemeral registration."""
    return f"{BROKER_IDS_PATH}/{int(broker_id)}"


def topic_path(topic: str) -> str:
    """``/brokers/topics/<topic>``: the topic's replica assignment (and topic id)."""
    return f"{BROKER_TOPICS_PATH}/{_check_topic(topic)}"


def topic_partitions_path(topic: str) -> str:
    """``/brokers/topics/<topic>/partitions``."""
    return f"{topic_path(topic)}/partitions"


def topic_partition_path(topic: str, partition: int) -> str:
    """``/brokers/topics/<topic>/partitions/<p>``."""
    return f"{topic_partitions_path(topic)}/{int(partition)}"


def partition_state_path(topic: str, partition: int) -> str:
    """``/brokers/topics/<topic>/partitions/<p>/state``: leader, ISR and epochs."""
    return f"{topic_partition_path(topic, partition)}/state"


def delete_topic_path(topic: str) -> str:
    """``/admin/delete_topics/<topic>``: a pending topic deletion (empty data)."""
    return f"{DELETE_TOPICS_PATH}/{_check_topic(topic)}"


def config_entity_type_path(entity_type: str) -> str:
    """``/config/<type>`` for type in CONFIG_TYPES. Raises ValueError for another type."""
    if entity_type not in CONFIG_TYPES:
        raise ValueError(f"unknown config entity type {entity_type!r}, expected one of {CONFIG_TYPES}")
    return f"{CONFIG_PATH}/{entity_type}"


def config_entity_path(entity_type: str, name: str) -> str:
    """``/config/<type>/<name>``, e.g. ``/config/topics/orders``."""
    if not name or "/" in name:
        raise ValueError(f"invalid config entity name {name!r}")
    return f"{config_entity_type_path(entity_type)}/{name}"


def isr_change_notification_prefix() -> str:
    """Create-path for a sequential ISR change notification: ``/isr_change_notification/isr_change_``."""
    return f"{ISR_CHANGE_NOTIFICATION_PATH}/{ISR_CHANGE_PREFIX}"


def config_change_notification_prefix() -> str:
    """Create-path for a sequential config change: ``/config/changes/config_change_``."""
    return f"{CONFIG_CHANGES_PATH}/{CONFIG_CHANGE_PREFIX}"


def log_dir_event_notification_prefix() -> str:
    """Create-path for a sequential log dir event: ``/log_dir_event_notification/log_dir_event_``."""
    return f"{LOG_DIR_EVENT_NOTIFICATION_PATH}/{LOG_DIR_EVENT_PREFIX}"


def sequence_number(path: str, prefix: str) -> str:
    """The 10-digit sequence suffix of a sequential node (Kafka's ...SequenceZNode.sequenceNumber).
    Raises ValueError if ``prefix`` is not in ``path``."""
    i = path.rfind(prefix)
    if i < 0:
        raise ValueError(f"{path!r} is not a {prefix!r} sequential node")
    return path[i + len(prefix):]


# ---- values -----------------------------------------------------------------------------------

# TopicPartition is the package-wide value from kafkalike.protocol.topic_partition (re-exported
# above); its from_dict() is given ZNodeDecodeError here.


def _partitions_list(obj: dict[str, Any], what: str) -> frozenset[TopicPartition]:
    parts = _field(obj, "partitions", list, what)
    return frozenset(TopicPartition.from_dict(p, what, ZNodeDecodeError) for p in parts)


# ---- /controller, /controller_epoch, /cluster/id ---------------------------------------------


@attrs.frozen
class ControllerZNode:
    """``/controller`` (ephemeral): ``{"version":1,"brokerid":1,"timestamp":"<ms>"}``.

    broker_id: the controller's broker id; timestamp_ms: when it was elected (ms, written as
    a string). Kafka's ControllerZNode. Kafka 3.4+ writes version 2 with
    ``"kraftControllerEpoch":-1`` (KIP-866 migration; -1 = a ZooKeeper controller); both are
    read, and version 2 is written when ``version=2``.
    """

    broker_id: int
    timestamp_ms: int
    version: int = 1
    kraft_controller_epoch: int = -1

    def to_json(self) -> bytes:
        """The znode's data."""
        obj: dict[str, Any] = {"version": self.version, "brokerid": self.broker_id, "timestamp": str(self.timestamp_ms)}
        if self.version >= 2:
            obj["kraftControllerEpoch"] = self.kraft_controller_epoch
        return encode_json(obj)

    @classmethod
    def from_json(cls, data: bytes) -> "ControllerZNode":
        """Parse ``/controller``'s data (version 1 or 2). Raises ZNodeDecodeError."""
        what = CONTROLLER_PATH
        obj = _parse_object(data, what)
        ts = _digits(obj["timestamp"], "timestamp", what) if "timestamp" in obj else -1
        kraft = _field(obj, "kraftControllerEpoch", int, what) if "kraftControllerEpoch" in obj else -1
        return cls(_field(obj, "brokerid", int, what), ts, obj.get("version", 1), kraft)


def encode_controller_epoch(epoch: int) -> bytes:
    """``/controller_epoch``'s data: the epoch as bare decimal, e.g. ``b"5"``."""
    return str(int(epoch)).encode("ascii")


def decode_controller_epoch(data: bytes) -> int:
    """Parse ``/controller_epoch``. Raises ZNodeDecodeError."""
    try:
        text = bytes(data).decode("ascii").strip()
        if not re.fullmatch(r"-?\d+", text):
            raise ValueError
        return int(text)
    except (UnicodeDecodeError, ValueError):
        raise ZNodeDecodeError(f"{CONTROLLER_EPOCH_PATH}: expected a decimal epoch, got {bytes(data)[:50]!r}") from None


#: the first controller epoch (``/controller_epoch`` is created with it)
INITIAL_CONTROLLER_EPOCH = 1


@attrs.frozen
class ClusterIdZNode:
    """``/cluster/id``: ``{"version":"1","id":"<22-char base64 uuid>"}`` — note the *string*
    version, as Kafka's ClusterIdZNode writes it."""

    id: str

    def to_json(self) -> bytes:
        """The znode's data."""
        return encode_json({"version": "1", "id": self.id})

    @classmethod
    def from_json(cls, data: bytes) -> "ClusterIdZNode":
        """Parse ``/cluster/id``. Raises ZNodeDecodeError."""
        return cls(_field(_parse_object(data, CLUSTER_ID_PATH), "id", str, CLUSTER_ID_PATH))

    @classmethod
    def generate(cls) -> "ClusterIdZNode":
        """A new random cluster id (Kafka's CoreUtils.generateUuidAsBase64)."""
        return cls(generate_uuid_base64())


# ---- /brokers/ids/<id> ------------------------------------------------------------------------

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_ENDPOINT_RE = re.compile(r"^(?P<listener>[A-Za-z0-9_.-]+)://(?P<host>\[[^\]]*\]|[^:/]*):(?P<port>-?\d+)$")


@attrs.frozen
class EndPoint:
    """A broker listener (Kafka's cluster.EndPoint): listener name, host, port, security
    protocol. ``connection_string`` is ``LISTENER://host:port``."""

    listener_name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    @property
    def connection_string(self) -> str:
        """``LISTENER_NAME://host:port`` as in the registration's "endpoints"."""
        return f"{self.listener_name}://{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str, protocol_map: Mapping[str, str] | None = None) -> "EndPoint":
        """Parse ``LISTENER://host:port``; the protocol comes from ``protocol_map`` (listener
        name -> protocol) or, without one, is the listener name itself (Kafka's
        EndPoint.createEndPoint). Raises ValueError if malformed."""
        m = _ENDPOINT_RE.match(text)
        if not m:
            raise ValueError(f"malformed endpoint {text!r}, expected LISTENER://host:port")
        listener = m["listener"]
        if protocol_map is not None:
            if listener not in protocol_map:
                raise ValueError(f"endpoint {text!r}: listener {listener!r} has no security protocol in the map")
            protocol = protocol_map[listener]
        else:
            protocol = listener
        host = m["host"][1:-1] if m["host"].startswith("[") else m["host"]
        return cls(listener, host, int(m["port"]), protocol)


@attrs.frozen
class SupportedVersionRange:
    """A feature's supported version range in a broker registration (KIP-584)."""

    min_version: int
    max_version: int


@attrs.frozen
class BrokerRegistration:
    """``/brokers/ids/<id>`` (ephemeral), version 5 JSON (Kafka's BrokerIdZNode / BrokerInfo):

    ``{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},
    "endpoints":["PLAINTEXT://h:9092"],"jmx_port":-1,"port":9092,"host":"h",
    "version":5,"timestamp":"<ms>"}`` plus ``"rack"`` when set.

    ``host``/``port`` are the first PLAINTEXT endpoint's (null / -1 if none), for old clients.
    broker_id is not in the JSON (it is the node name). The registration's czxid is the
    broker epoch (KIP-380).
    """

    broker_id: int
    endpoints: tuple[EndPoint, ...]
    timestamp_ms: int
    jmx_port: int = -1
    rack: str | None = None
    features: Mapping[str, SupportedVersionRange] = attrs.field(factory=dict)
    version: int = 5

    @property
    def path(self) -> str:
        """``/brokers/ids/<id>``."""
        return broker_id_path(self.broker_id)

    def endpoint(self, listener_name: str) -> EndPoint | None:
        """The endpoint of ``listener_name``, or None."""
        for ep in self.endpoints:
            if ep.listener_name == listener_name:
                return ep
        return None

    def to_json(self) -> bytes:
        """The znode's data (Kafka's BrokerIdZNode.encode for this version)."""
        plaintext = next((e for e in self.endpoints if e.security_protocol == "PLAINTEXT"), None)
        obj: dict[str, Any] = {}
        if self.version >= 5:
            obj["features"] = {
                name: {"min_version": r.min_version, "max_version": r.max_version}
                for name, r in self.features.items()
            }
        if self.version >= 4:
            obj["listener_security_protocol_map"] = {e.listener_name: e.security_protocol for e in self.endpoints}
        obj["endpoints"] = [e.connection_string for e in self.endpoints]
        obj["jmx_port"] = self.jmx_port
        if self.rack is not None and self.version >= 3:
            obj["rack"] = self.rack
        obj["port"] = plaintext.port if plaintext else -1
        obj["host"] = plaintext.host if plaintext else None
        obj["version"] = self.version
        obj["timestamp"] = str(self.timestamp_ms)
        return encode_json(obj)

    @classmethod
    def from_json(cls, broker_id: int, data: bytes) -> "BrokerRegistration":
        """Parse a registration of version 1-5 (Kafka's BrokerIdZNode.decode).
        Raises ZNodeDecodeError."""
        what = broker_id_path(broker_id)
        obj = _parse_object(data, what)
        version = _field(obj, "version", int, what)
        jmx_port = _field(obj, "jmx_port", int, what)
        if version < 1:
            raise ZNodeDecodeError(f"{what}: unsupported registration version {version}")
        try:
            if version == 1:
                endpoints: tuple[EndPoint, ...] = (
                    EndPoint("PLAINTEXT", _field(obj, "host", str, what), _field(obj, "port", int, what), "PLAINTEXT"),
                )
            else:
                pmap = obj.get("listener_security_protocol_map")
                if pmap is not None and not (
                    isinstance(pmap, dict) and all(isinstance(v, str) for v in pmap.values())
                ):
                    raise ZNodeDecodeError(f"{what}: bad listener_security_protocol_map {pmap!r}")
                raw = _field(obj, "endpoints", list, what)
                endpoints = tuple(EndPoint.parse(str(e), pmap) for e in raw)
        except ValueError as exc:
            if isinstance(exc, ZNodeDecodeError):
                raise
            raise ZNodeDecodeError(f"{what}: {exc}") from None
        rack = obj.get("rack")
        if rack is not None and not isinstance(rack, str):
            raise ZNodeDecodeError(f"{what}: rack must be a string or null, got {rack!r}")
        features: dict[str, SupportedVersionRange] = {}
        raw_features = obj.get("features") or {}
        if not isinstance(raw_features, dict):
            raise ZNodeDecodeError(f"{what}: features must be an object, got {raw_features!r}")
        for name, rng in raw_features.items():
            if not isinstance(rng, dict):
                raise ZNodeDecodeError(f"{what}: feature {name!r} must be an object")
            features[name] = SupportedVersionRange(
                _field(rng, "min_version", int, what), _field(rng, "max_version", int, what)
            )
        ts = _digits(obj["timestamp"], "timestamp", what) if "timestamp" in obj else -1
        return cls(broker_id, endpoints, ts, jmx_port, rack, features, version)


# ---- /brokers/topics/<t> and partition state -------------------------------------------------


@attrs.frozen
class ReplicaAssignment:
    """A partition's replicas in preference order, plus replicas being added / removed by an
    in-flight reassignment (KIP-455). Kafka's controller.ReplicaAssignment."""

    replicas: tuple[int, ...]
    adding_replicas: tuple[int, ...] = ()
    removing_replicas: tuple[int, ...] = ()

    @property
    def origin_replicas(self) -> tuple[int, ...]:
        """ORS: the replicas before the reassignment (replicas - adding)."""
        return tuple(r for r in self.replicas if r not in self.adding_replicas)

    @property
    def target_replicas(self) -> tuple[int, ...]:
        """TRS: the replicas once the reassignment is done (replicas - removing)."""
        return tuple(r for r in self.replicas if r not in self.removing_replicas)

    @property
    def is_being_reassigned(self) -> bool:
        """True while replicas are being added or removed."""
        return bool(self.adding_replicas or self.removing_replicas)

    def reassign_to(self, target: Sequence[int]) -> "ReplicaAssignment":
        """The assignment while moving to ``target``: RS = (TRS ++ ORS) distinct, AR = RS - ORS,
        RR = RS - TRS (Kafka's ReplicaAssignment.reassignTo). Reassigning to ORS is a
        cancellation: no adding, no removing."""
        origin = self.origin_replicas
        full = tuple(dict.fromkeys((*target, *origin)))
        return ReplicaAssignment(full, tuple(r for r in full if r not in origin),
                                 tuple(r for r in full if r not in target))


@attrs.frozen
class TopicAssignment:
    """``/brokers/topics/<topic>``: ``{"partitions":{"0":[1,2,3]},"topic_id":"<22-char base64>",
    "adding_replicas":{},"removing_replicas":{},"version":3}``
    (Kafka's TopicZNode; partitions keyed by decimal strings; adding/removing list only
    partitions under reassignment; topic_id absent for topics created before 2.8)."""

    topic: str
    partitions: Mapping[int, ReplicaAssignment]
    topic_id: str | None = None
    version: int = 3

    @property
    def path(self) -> str:
        """``/brokers/topics/<topic>``."""
        return topic_path(self.topic)

    def to_json(self) -> bytes:
        """The znode's data (Kafka's TopicZNode.encode)."""
        order = sorted(self.partitions)
        obj: dict[str, Any] = {"partitions": {str(p): list(self.partitions[p].replicas) for p in order}}
        if self.topic_id is not None:
            obj["topic_id"] = self.topic_id
        obj.update({
            "adding_replicas": {
                str(p): list(self.partitions[p].adding_replicas) for p in order if self.partitions[p].adding_replicas
            },
            "removing_replicas": {
                str(p): list(self.partitions[p].removing_replicas)
                for p in order
                if self.partitions[p].removing_replicas
            },
            "version": self.version,
        })
        return encode_json(obj)

    @classmethod
    def from_json(cls, topic: str, data: bytes) -> "TopicAssignment":
        """Parse a topic znode (versions 1-3; Kafka's TopicZNode.decode). Raises ZNodeDecodeError."""
        what = f"{BROKER_TOPICS_PATH}/{topic}"
        obj = _parse_object(data, what)
        version = obj.get("version", 1)
        topic_id = obj.get("topic_id")
        if topic_id is not None:
            try:
                base64_to_uuid(topic_id)
            except ValueError as exc:
                raise ZNodeDecodeError(f"{what}: {exc}") from None

        def section(key: str) -> dict[int, tuple[int, ...]]:
            raw = obj.get(key) or {}
            if not isinstance(raw, dict):
                raise ZNodeDecodeError(f"{what}: {key!r} must be an object")
            out = {}
            for p, replicas in raw.items():
                if not re.fullmatch(r"\d+", str(p)):
                    raise ZNodeDecodeError(f"{what}: partition key {p!r} in {key!r} is not a number")
                out[int(p)] = _int_list(replicas, f"{what} {key}[{p}]")
            return out

        parts, adding, removing = section("partitions"), section("adding_replicas"), section("removing_replicas")
        partitions = {
            p: ReplicaAssignment(r, adding.get(p, ()), removing.get(p, ())) for p, r in sorted(parts.items())
        }
        return cls(topic, partitions, topic_id, version)


#: LeaderAndIsr.NoLeader: no leader (all replicas offline)
NO_LEADER = -1
#: ZkVersion.MatchAnyVersion / UnknownVersion
MATCH_ANY_VERSION = -1
UNKNOWN_VERSION = -2


@attrs.frozen
class LeaderIsrAndControllerEpoch:
    """``/brokers/topics/<t>/partitions/<p>/state``: ``{"controller_epoch":E,"leader":L,
    "version":1,"leader_epoch":N,"isr":[..]}`` (Kafka's TopicPartitionStateZNode).

    zk_version: the state znode's data version when read (Kafka's partitionEpoch /
    "zkVersion"), not in the JSON; every update is conditional on it. leader_recovery_state
    (KIP-704, 0 = RECOVERED, 1 = RECOVERING) is written only when not 0.
    """

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    leader_recovery_state: int = 0
    zk_version: int = UNKNOWN_VERSION

    def to_json(self) -> bytes:
        """The znode's data (zk_version is not part of it)."""
        obj: dict[str, Any] = {
            "controller_epoch": self.controller_epoch,
            "leader": self.leader,
            "version": 1,
            "leader_epoch": self.leader_epoch,
            "isr": list(self.isr),
        }
        if self.leader_recovery_state != 0:
            obj["leader_recovery_state"] = self.leader_recovery_state
        return encode_json(obj)

    @classmethod
    def from_json(cls, data: bytes, zk_version: int = UNKNOWN_VERSION) -> "LeaderIsrAndControllerEpoch":
        """Parse a partition state znode; ``zk_version`` from its stat. Raises ZNodeDecodeError."""
        what = "partition state"
        obj = _parse_object(data, what)
        return cls(
            leader=_field(obj, "leader", int, what),
            leader_epoch=_field(obj, "leader_epoch", int, what),
            isr=_int_list(_field(obj, "isr", list, what), what),
            controller_epoch=_field(obj, "controller_epoch", int, what),
            leader_recovery_state=obj.get("leader_recovery_state", 0),
            zk_version=zk_version,
        )


# ---- /config ----------------------------------------------------------------------------------


@attrs.frozen
class ConfigEntity:
    """``/config/<type>/<name>``: ``{"version":1,"config":{"k":"v"}}`` — dynamic config
    overrides, values as strings (Kafka's ConfigEntityZNode)."""

    config: Mapping[str, str] = attrs.field(factory=dict)

    def to_json(self) -> bytes:
        """The znode's data."""
        return encode_json({"version": 1, "config": {k: str(v) for k, v in self.config.items()}})

    @classmethod
    def from_json(cls, data: bytes | None) -> "ConfigEntity":
        """Parse; empty data is an empty config, as in Kafka. Raises ZNodeDecodeError."""
        if not data:
            return cls({})
        obj = _parse_object(data, "config entity")
        config = obj.get("config") or {}
        if not isinstance(config, dict):
            raise ZNodeDecodeError(f"config entity: 'config' must be an object, got {config!r}")
        return cls({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})


@attrs.frozen
class ConfigChangeNotification:
    """``/config/changes/config_change_<seq>``: ``{"version":2,"entity_path":"topics/<t>"}``
    (Kafka's ConfigEntityChangeNotificationSequenceZNode)."""

    entity_path: str

    def to_json(self) -> bytes:
        """The znode's data."""
        return encode_json({"version": 2, "entity_path": self.entity_path})

    @classmethod
    def from_json(cls, data: bytes) -> "ConfigChangeNotification":
        """Parse a version-2 notification. Raises ZNodeDecodeError."""
        what = "config change notification"
        obj = _parse_object(data, what)
        version = _field(obj, "version", int, what)
        if version != 2:
            raise ZNodeDecodeError(f"{what}: unsupported version {version}, expected 2")
        return cls(_field(obj, "entity_path", str, what))

    @classmethod
    def for_entity(cls, entity_type: str, name: str) -> "ConfigChangeNotification":
        """The notification for ``/config/<type>/<name>``."""
        config_entity_path(entity_type, name)  # validates
        return cls(f"{entity_type}/{name}")


# ---- notifications and admin znodes ----------------------------------------------------------


@attrs.frozen
class IsrChangeNotification:
    """``/isr_change_notification/isr_change_<seq>``: ``{"version":1,"partitions":[{"topic":..,
    "partition":..}]}`` (Kafka's IsrChangeNotificationSequenceZNode)."""

    partitions: frozenset[TopicPartition]

    def to_json(self) -> bytes:
        """The znode's data."""
        return encode_json({"version": 1, "partitions": [tp.to_dict() for tp in sorted(self.partitions)]})

    @classmethod
    def from_json(cls, data: bytes) -> "IsrChangeNotification":
        """Parse. Raises ZNodeDecodeError."""
        return cls(_partitions_list(_parse_object(data, "isr change notification"), "isr change notification"))


@attrs.frozen
class LogDirEventNotification:
    """``/log_dir_event_notification/log_dir_event_<seq>``: ``{"version":1,"broker":id,
    "event":1}`` (event 1 = LogDirFailure)."""

    broker_id: int
    event: int = 1

    def to_json(self) -> bytes:
        """The znode's data."""
        return encode_json({"version": 1, "broker": self.broker_id, "event": self.event})

    @classmethod
    def from_json(cls, data: bytes) -> "LogDirEventNotification":
        """Parse. Raises ZNodeDecodeError."""
        what = "log dir event notification"
        obj = _parse_object(data, what)
        return cls(_field(obj, "broker", int, what), obj.get("event", 1))


@attrs.frozen
class PartitionReassignment:
    """``/admin/reassign_partitions`` (legacy, pre-KIP-455 tools): ``{"version":1,"partitions":
    [{"topic":..,"partition":..,"replicas":[..]}]}``."""

    assignments: Mapping[TopicPartition, tuple[int, ...]]

    def to_json(self) -> bytes:
        """The znode's data."""
        return encode_json({
            "version": 1,
            "partitions": [
                {"topic": tp.topic, "partition": tp.partition, "replicas": list(r)}
                for tp, r in sorted(self.assignments.items())
            ],
        })

    @classmethod
    def from_json(cls, data: bytes) -> "PartitionReassignment":
        """Parse. Raises ZNodeDecodeError."""
        what = REASSIGN_PARTITIONS_PATH
        obj = _parse_object(data, what)
        out = {}
        for entry in _field(obj, "partitions", list, what):
            tp = TopicPartition.from_dict(entry, what, ZNodeDecodeError)
            out[tp] = _int_list(_field(entry, "replicas", list, what), what)
        return cls(out)


@attrs.frozen
class PreferredReplicaElection:
    """``/admin/preferred_replica_election``: ``{"version":1,"partitions":[{"topic":..,
    "partition":..}]}``."""

    partitions: frozenset[TopicPartition]

    def to_json(self) -> bytes:
        """The znode's data."""
        return encode_json({"version": 1, "partitions": [tp.to_dict() for tp in sorted(self.partitions)]})

    @classmethod
    def from_json(cls, data: bytes) -> "PreferredReplicaElection":
        """Parse. Raises ZNodeDecodeError."""
        return cls(_partitions_list(_parse_object(data, PREFERRED_REPLICA_ELECTION_PATH), PREFERRED_REPLICA_ELECTION_PATH))


#: producer ids handed out per block (Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE)
PRODUCER_ID_BLOCK_SIZE = 1000


@attrs.frozen
class ProducerIdBlock:
    """``/latest_producer_id_block``: ``{"version":1,"broker":id,"block_start":"<n>",
    "block_end":"<n>"}`` — bounds inclusive, written as strings (Kafka's ProducerIdBlockZNode).
    """

    broker_id: int
    block_start: int
    block_end: int

    def to_json(self) -> bytes:
        """The znode's data."""
        return encode_json({
            "version": 1,
            "broker": self.broker_id,
            "block_start": str(self.block_start),
            "block_end": str(self.block_end),
        })

    @classmethod
    def from_json(cls, data: bytes) -> "ProducerIdBlock":
        """Parse. Raises ZNodeDecodeError."""
        what = PRODUCER_ID_BLOCK_PATH
        obj = _parse_object(data, what)
        return cls(
            _field(obj, "broker", int, what),
            _digits(_field(obj, "block_start", (str, int), what), "block_start", what),
            _digits(_field(obj, "block_end", (str, int), what), "block_end", what),
        )

    @classmethod
    def next_after(cls, previous: "ProducerIdBlock | None", broker_id: int) -> "ProducerIdBlock":
        """The block a broker claims after ``previous`` (None: the first, 0..999)."""
        start = 0 if previous is None else previous.block_end + 1
        return cls(broker_id, start, start + PRODUCER_ID_BLOCK_SIZE - 1)


@attrs.frozen
class FeatureZNode:
    """``/feature``: cluster-wide finalized features (KIP-584), e.g. ``{"features":{},
    "version":2,"status":1}`` as Kafka 3.9's controller writes it (status 1 = enabled,
    0 = disabled). ``features`` maps a feature name to its version-level object as stored."""

    status: int = 1
    features: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)
    version: int = 2

    def to_json(self) -> bytes:
        """The znode's data."""
        return encode_json({
            "features": {k: dict(v) for k, v in self.features.items()},
            "version": self.version,
            "status": self.status,
        })

    @classmethod
    def from_json(cls, data: bytes) -> "FeatureZNode":
        """Parse ``/feature``. Raises ZNodeDecodeError."""
        what = FEATURE_PATH
        obj = _parse_object(data, what)
        version = _field(obj, "version", int, what)
        status = _field(obj, "status", int, what)
        if status not in (0, 1):
            raise ZNodeDecodeError(f"{what}: malformed status {status}")
        features = _field(obj, "features", dict, what)
        for name, levels in features.items():
            if not isinstance(levels, dict) or any(isinstance(v, bool) or not isinstance(v, int) for v in levels.values()):
                raise ZNodeDecodeError(f"{what}: feature {name!r} must map labels to integers")
        return cls(status, {k: dict(v) for k, v in features.items()}, version)


# ---- ACLs (Kafka's ZkAclStore / ZkAclChangeStore / AclEntry, kafka.security.authorizer) ---------

#: literal ACLs: ``/kafka-acl/<ResourceType>/<name>`` (LiteralAclStore)
LITERAL_ACL_PATH = "/kafka-acl"
#: prefixed ACLs: ``/kafka-acl-extended/prefixed/<ResourceType>/<prefix>`` (ExtendedAclZNode)
EXTENDED_ACL_PATH = "/kafka-acl-extended"
PREFIXED_ACL_PATH = "/kafka-acl-extended/prefixed"
#: change notifications ``acl_changes_<seq>``: data ``<ResourceType>:<name>`` (LiteralAclChangeStore)
LITERAL_ACL_CHANGES_PATH = "/kafka-acl-changes"
#: change notifications for prefixed ACLs: ExtendedAclChangeEvent JSON (ExtendedAclChangeStore)
EXTENDED_ACL_CHANGES_PATH = "/kafka-acl-extended-changes"
ACL_CHANGE_PREFIX = "acl_changes_"
#: the resource types under each ACL store (SecurityUtils.resourceTypeName of ResourceType.values
#: without ANY/UNKNOWN), created by KafkaZkClient.createAclPaths
ACL_RESOURCE_TYPES = ("Topic", "Group", "Cluster", "TransactionalId", "DelegationToken", "User")


def acl_store_path(pattern_type: str) -> str:
    """The store of a pattern type: ``LITERAL`` -> /kafka-acl, ``PREFIXED`` -> /kafka-acl-extended/prefixed."""
    if pattern_type == "LITERAL":
        return LITERAL_ACL_PATH
    if pattern_type == "PREFIXED":
        return PREFIXED_ACL_PATH
    raise ValueError(f"no ACL store for pattern type {pattern_type!r}")


def acl_change_path(pattern_type: str) -> str:
    """Where a change of a ``pattern_type`` resource is announced (ZkAclChangeStore.aclChangePath)."""
    return LITERAL_ACL_CHANGES_PATH if pattern_type == "LITERAL" else EXTENDED_ACL_CHANGES_PATH


def acl_resource_path(pattern_type: str, resource_type: str, name: str) -> str:
    """``/kafka-acl/Topic/t`` (ZkAclStore.path(resourceType, name)). ValueError for an unknown
    resource type or a name ZooKeeper can't hold (empty, containing '/')."""
    if resource_type not in ACL_RESOURCE_TYPES:
        raise ValueError(f"unknown ACL resource type {resource_type!r}")
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"invalid ACL resource name {name!r}")
    return f"{acl_store_path(pattern_type)}/{resource_type}/{name}"


def acl_paths() -> tuple[str, ...]:
    """Every path KafkaZkClient.createAclPaths makes: both stores with one child per resource
    type, and both change paths."""
    stores = (LITERAL_ACL_PATH, PREFIXED_ACL_PATH)
    return (*stores, *(f"{s}/{t}" for s in stores for t in ACL_RESOURCE_TYPES),
            LITERAL_ACL_CHANGES_PATH, EXTENDED_ACL_CHANGES_PATH)


@attrs.frozen
class AclEntryJson:
    """One ACL of a resource znode as Kafka stores it (AclEntry.toJsonCompatibleMap):
    ``{"principal":"User:alice","permissionType":"Allow","operation":"Read","host":"*"}``;
    operation names are Kafka's SecurityUtils.operationName (``Read``, ``ClusterAction``,
    ``IdempotentWrite``, ``All``...), permission types ``Allow`` / ``Deny``."""

    principal: str
    permission_type: str
    operation: str
    host: str


def encode_acls(acls: Sequence[AclEntryJson]) -> bytes:
    """A resource znode's data: ``{"version":1,"acls":[...]}`` (AclEntry.toJsonCompatibleMap)."""
    return encode_json({"version": 1, "acls": [
        {"principal": a.principal, "permissionType": a.permission_type, "operation": a.operation,
         "host": a.host} for a in acls]})


def decode_acls(data: bytes | None) -> list[AclEntryJson]:
    """Parse a resource znode (empty data: no ACLs, as Kafka's AclEntry.fromBytes). Raises
    ZNodeDecodeError."""
    if not data:
        return []
    what = "acl znode"
    obj = _parse_object(data, what)
    version = _field(obj, "version", int, what)
    if version != 1:
        raise ZNodeDecodeError(f"{what}: unsupported version {version}, expected 1")
    out = []
    for item in _field(obj, "acls", list, what):
        if not isinstance(item, dict):
            raise ZNodeDecodeError(f"{what}: each acl must be an object, got {item!r}")
        out.append(AclEntryJson(_field(item, "principal", str, what), _field(item, "permissionType", str, what),
                                _field(item, "operation", str, what), _field(item, "host", str, what)))
    return out


@attrs.frozen
class AclChangeNotification:
    """An ACL change notification: which resource pattern changed. Literal ones are stored as
    ``Topic:t`` (LiteralAclChangeStore.encode), prefixed ones as ``{"version":1,
    "resourceType":"TOPIC","name":"t-","patternType":"PREFIXED"}`` (ExtendedAclChangeEvent: the
    Java enum names). ``resource_type`` is the store's spelling (``Topic``, ``TransactionalId``)."""

    resource_type: str
    name: str
    pattern_type: str = "LITERAL"

    def to_bytes(self) -> bytes:
        """The notification znode's data."""
        if self.pattern_type == "LITERAL":
            return f"{self.resource_type}:{self.name}".encode()
        enum_name = re.sub(r"(?<!^)(?=[A-Z])", "_", self.resource_type).upper()  # TransactionalId -> TRANSACTIONAL_ID
        return encode_json({"version": 1, "resourceType": enum_name, "name": self.name,
                            "patternType": self.pattern_type})

    @classmethod
    def from_bytes(cls, data: bytes, literal: bool) -> "AclChangeNotification":
        """Parse a notification of /kafka-acl-changes (``literal``) or /kafka-acl-extended-changes.
        Raises ZNodeDecodeError."""
        if literal:
            text = bytes(data).decode("utf-8", "replace")
            resource_type, sep, name = text.partition(":")
            if not sep or not name:
                raise ZNodeDecodeError(f"acl change notification: expected <ResourceType>:<name>, got {text!r}")
            return cls(resource_type, name, "LITERAL")
        what = "extended acl change notification"
        obj = _parse_object(data, what)
        raw_type = _field(obj, "resourceType", str, what)
        by_enum = {t.upper(): t for t in ACL_RESOURCE_TYPES}
        resource_type = by_enum.get(raw_type.replace("_", "").upper(), raw_type)
        return cls(resource_type, _field(obj, "name", str, what), _field(obj, "patternType", str, what).upper())
