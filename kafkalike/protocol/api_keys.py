"""The broker's API table: which Kafka APIs kafkalike serves, at which versions, and where.

Holds ``ApiKey`` (Kafka's API keys used here, names as in Kafka's ``ApiKeys``),
``SUPPORTED_APIS`` ({api_key: (min_version, max_version)}, what ApiVersions advertises),
``API_COMPONENTS`` (which broker component serves each API; docs/protocol.md holds the
same table and tests/protocol/test_api_table.py checks one against the other) and
``IN_PROJECT_APIS`` (the ZooKeeper-era inter-broker RPCs defined in kafkalike, not kio),
``TSHARK_COMPATIBLE_APIS`` and ``API_VERSION_PROFILES`` (the tables the broker property
``kafkalike.api.versions`` chooses from), and ``request_versions_for_ibp`` (which versions
a broker sends to other brokers under inter.broker.protocol.version, Kafka's
MetadataVersion).

How the ranges were chosen (docs/protocol.md has the reasoning per client):

- minimums are kio's oldest versions (Kafka 4.x dropped older ones; KIP-896), all of which
  are <= the newest version of every client we must serve: kafka-python 3.0, librdkafka 2.0
  (kcat 1.7) and 2.16 (confluent-kafka), aiokafka 0.14, Kafka 3.9's Java clients;
- maximums follow a ZooKeeper-era Kafka 3.x broker, stopping before versions that need
  features kafkalike does not have (topic-id addressed Fetch v13+/Produce v13, batched
  FindCoordinator v4 and OffsetFetch v8, KRaft-migration fields). ListOffsets goes to v9
  (KIP-1005's -4 earliest-local / -5 latest-tiered timestamps, answered as Kafka does
  without tiered storage); v10 (KIP-1023, earliest-pending-upload -6) is Kafka 4.0's.
- kafka-python infers a broker version from this table: it reads as Kafka 3.0.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

__all__ = ["ApiKey", "SUPPORTED_APIS", "API_COMPONENTS", "IN_PROJECT_APIS", "api_name",
           "WIRESHARK_4_0_MAX_VERSIONS", "TSHARK_COMPATIBLE_APIS", "API_VERSION_PROFILES",
           "parse_ibp", "request_versions_for_ibp"]


class ApiKey(enum.IntEnum):
    """Kafka API keys that kafkalike knows (Kafka protocol guide, "Api Keys")."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    LEADER_AND_ISR = 4
    STOP_REPLICA = 5
    UPDATE_METADATA = 6
    CONTROLLED_SHUTDOWN = 7
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    WRITE_TXN_MARKERS = 27
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    ALTER_REPLICA_LOG_DIRS = 34
    DESCRIBE_LOG_DIRS = 35
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    ELECT_LEADERS = 43
    INCREMENTAL_ALTER_CONFIGS = 44
    ALTER_PARTITION_REASSIGNMENTS = 45
    LIST_PARTITION_REASSIGNMENTS = 46
    OFFSET_DELETE = 47
    DESCRIBE_CLIENT_QUOTAS = 48
    ALTER_CLIENT_QUOTAS = 49
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    VOTE = 52  # KRaft (KIP-595): served on the controller listener (kafkalike.raft), not here
    BEGIN_QUORUM_EPOCH = 53
    END_QUORUM_EPOCH = 54
    DESCRIBE_QUORUM = 55
    FETCH_SNAPSHOT = 59
    DESCRIBE_CLUSTER = 60
    DESCRIBE_PRODUCERS = 61
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66

    @property
    def kafka_name(self) -> str:
        """Kafka's CamelCase name, e.g. ``"OffsetForLeaderEpoch"``."""
        return "".join(part.capitalize() for part in self.name.split("_"))


def api_name(api_key: int) -> str:
    """Kafka's name for an api key (``"Produce"``), or ``"Unknown(<n>)"``."""
    try:
        return ApiKey(api_key).kafka_name
    except ValueError:
        return f"Unknown({api_key})"


SUPPORTED_APIS: dict[int, tuple[int, int]] = {
    ApiKey.PRODUCE: (3, 9),
    ApiKey.FETCH: (4, 12),
    ApiKey.LIST_OFFSETS: (1, 9),
    ApiKey.METADATA: (0, 12),
    ApiKey.LEADER_AND_ISR: (0, 6),
    ApiKey.STOP_REPLICA: (0, 3),
    ApiKey.UPDATE_METADATA: (0, 7),
    ApiKey.CONTROLLED_SHUTDOWN: (0, 3),
    ApiKey.OFFSET_COMMIT: (2, 8),
    ApiKey.OFFSET_FETCH: (1, 7),
    ApiKey.FIND_COORDINATOR: (0, 3),
    ApiKey.JOIN_GROUP: (0, 7),
    ApiKey.HEARTBEAT: (0, 4),
    ApiKey.LEAVE_GROUP: (0, 4),
    ApiKey.SYNC_GROUP: (0, 5),
    ApiKey.DESCRIBE_GROUPS: (0, 5),
    ApiKey.LIST_GROUPS: (0, 4),
    ApiKey.SASL_HANDSHAKE: (0, 1),
    ApiKey.API_VERSIONS: (0, 3),
    ApiKey.CREATE_TOPICS: (2, 7),
    ApiKey.DELETE_TOPICS: (1, 5),
    ApiKey.DELETE_RECORDS: (0, 2),
    ApiKey.INIT_PRODUCER_ID: (0, 4),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: (2, 4),
    ApiKey.ADD_PARTITIONS_TO_TXN: (0, 4),  # v4: broker-to-broker (KIP-890)
    ApiKey.ADD_OFFSETS_TO_TXN: (0, 3),
    ApiKey.END_TXN: (0, 3),
    ApiKey.WRITE_TXN_MARKERS: (1, 1),
    ApiKey.TXN_OFFSET_COMMIT: (0, 3),
    ApiKey.DESCRIBE_ACLS: (1, 3),
    ApiKey.CREATE_ACLS: (1, 3),
    ApiKey.DELETE_ACLS: (1, 3),
    ApiKey.DESCRIBE_CONFIGS: (1, 4),
    ApiKey.ALTER_CONFIGS: (0, 2),
    ApiKey.ALTER_REPLICA_LOG_DIRS: (1, 2),
    ApiKey.DESCRIBE_LOG_DIRS: (1, 4),
    ApiKey.SASL_AUTHENTICATE: (0, 2),
    ApiKey.CREATE_PARTITIONS: (0, 3),
    ApiKey.DELETE_GROUPS: (0, 2),
    ApiKey.ELECT_LEADERS: (0, 2),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: (0, 1),
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: (0, 0),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: (0, 0),
    ApiKey.DESCRIBE_CLUSTER: (0, 1),
    ApiKey.OFFSET_DELETE: (0, 0),
    ApiKey.DESCRIBE_CLIENT_QUOTAS: (0, 1),
    ApiKey.ALTER_CLIENT_QUOTAS: (0, 1),
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: (0, 0),
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: (0, 0),
    ApiKey.DESCRIBE_PRODUCERS: (0, 0),
    ApiKey.DESCRIBE_TRANSACTIONS: (0, 0),
    ApiKey.LIST_TRANSACTIONS: (0, 1),
}
"""{api_key: (min_version, max_version)} the broker advertises in ApiVersions and accepts."""

IN_PROJECT_APIS = frozenset(
    {ApiKey.LEADER_AND_ISR, ApiKey.STOP_REPLICA, ApiKey.UPDATE_METADATA,
     ApiKey.CONTROLLED_SHUTDOWN}
)
"""APIs whose schemas live in kafkalike.protocol (Kafka 3.x layouts), not in kio."""

API_COMPONENTS: dict[int, str] = {
    ApiKey.PRODUCE: "replica_manager",
    ApiKey.FETCH: "replica_manager",
    ApiKey.LIST_OFFSETS: "replica_manager",
    ApiKey.METADATA: "metadata_cache",
    ApiKey.LEADER_AND_ISR: "replica_manager",
    ApiKey.STOP_REPLICA: "replica_manager",
    ApiKey.UPDATE_METADATA: "metadata_cache",
    ApiKey.CONTROLLED_SHUTDOWN: "kafka_controller",
    ApiKey.OFFSET_COMMIT: "group_coordinator",
    ApiKey.OFFSET_FETCH: "group_coordinator",
    ApiKey.FIND_COORDINATOR: "kafka_apis",
    ApiKey.JOIN_GROUP: "group_coordinator",
    ApiKey.HEARTBEAT: "group_coordinator",
    ApiKey.LEAVE_GROUP: "group_coordinator",
    ApiKey.SYNC_GROUP: "group_coordinator",
    ApiKey.DESCRIBE_GROUPS: "group_coordinator",
    ApiKey.LIST_GROUPS: "group_coordinator",
    ApiKey.SASL_HANDSHAKE: "sasl_server_authenticator",
    ApiKey.API_VERSIONS: "kafka_apis",
    ApiKey.CREATE_TOPICS: "zk_admin_manager",
    ApiKey.DELETE_TOPICS: "zk_admin_manager",
    ApiKey.DELETE_RECORDS: "replica_manager",
    ApiKey.INIT_PRODUCER_ID: "transaction_coordinator",
    ApiKey.OFFSET_FOR_LEADER_EPOCH: "replica_manager",
    ApiKey.ADD_PARTITIONS_TO_TXN: "transaction_coordinator",
    ApiKey.ADD_OFFSETS_TO_TXN: "transaction_coordinator",
    ApiKey.END_TXN: "transaction_coordinator",
    ApiKey.WRITE_TXN_MARKERS: "replica_manager",
    ApiKey.TXN_OFFSET_COMMIT: "group_coordinator",
    ApiKey.DESCRIBE_ACLS: "acl_apis",
    ApiKey.CREATE_ACLS: "acl_apis",
    ApiKey.DELETE_ACLS: "acl_apis",
    ApiKey.DESCRIBE_CONFIGS: "zk_admin_manager",
    ApiKey.ALTER_CONFIGS: "zk_admin_manager",
    ApiKey.ALTER_REPLICA_LOG_DIRS: "replica_manager",
    ApiKey.DESCRIBE_LOG_DIRS: "replica_manager",
    ApiKey.SASL_AUTHENTICATE: "sasl_server_authenticator",
    ApiKey.CREATE_PARTITIONS: "zk_admin_manager",
    ApiKey.DELETE_GROUPS: "group_coordinator",
    ApiKey.ELECT_LEADERS: "kafka_controller",
    ApiKey.INCREMENTAL_ALTER_CONFIGS: "zk_admin_manager",
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: "kafka_controller",
    ApiKey.LIST_PARTITION_REASSIGNMENTS: "kafka_controller",
    ApiKey.DESCRIBE_CLUSTER: "metadata_cache",
    ApiKey.OFFSET_DELETE: "group_coordinator",
    ApiKey.DESCRIBE_CLIENT_QUOTAS: "client_quota_manager",
    ApiKey.ALTER_CLIENT_QUOTAS: "client_quota_manager",
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: "zk_admin_manager",
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: "zk_admin_manager",
    ApiKey.DESCRIBE_PRODUCERS: "replica_manager",
    ApiKey.DESCRIBE_TRANSACTIONS: "transaction_coordinator",
    ApiKey.LIST_TRANSACTIONS: "transaction_coordinator",
}
"""Which broker component (Kafka class, snake_case) answers each API."""


WIRESHARK_4_0_MAX_VERSIONS: dict[int, int] = {
    ApiKey.PRODUCE: 8,
    ApiKey.FETCH: 11,
    ApiKey.LIST_OFFSETS: 5,
    ApiKey.METADATA: 9,
    ApiKey.LEADER_AND_ISR: 4,
    ApiKey.STOP_REPLICA: 2,
    ApiKey.UPDATE_METADATA: 6,
    ApiKey.CONTROLLED_SHUTDOWN: 3,
    ApiKey.OFFSET_COMMIT: 8,
    ApiKey.OFFSET_FETCH: 7,
    ApiKey.FIND_COORDINATOR: 3,
    ApiKey.JOIN_GROUP: 7,
    ApiKey.HEARTBEAT: 4,
    ApiKey.LEAVE_GROUP: 4,
    ApiKey.SYNC_GROUP: 5,
    ApiKey.DESCRIBE_GROUPS: 5,
    ApiKey.LIST_GROUPS: 3,
    ApiKey.API_VERSIONS: 3,
    ApiKey.CREATE_TOPICS: 5,
    ApiKey.DELETE_TOPICS: 4,
    ApiKey.DELETE_RECORDS: 1,
    ApiKey.INIT_PRODUCER_ID: 3,
    ApiKey.OFFSET_FOR_LEADER_EPOCH: 3,
    ApiKey.DESCRIBE_CONFIGS: 2,
    ApiKey.ALTER_CONFIGS: 1,
    ApiKey.ALTER_REPLICA_LOG_DIRS: 1,
    ApiKey.DESCRIBE_LOG_DIRS: 1,
    ApiKey.CREATE_PARTITIONS: 2,
    ApiKey.DELETE_GROUPS: 2,
    ApiKey.INCREMENTAL_ALTER_CONFIGS: 1,
    ApiKey.OFFSET_DELETE: 0,
    ApiKey.SASL_HANDSHAKE: 1,
    ApiKey.SASL_AUTHENTICATE: 2,
    ApiKey.ADD_PARTITIONS_TO_TXN: 1,
    ApiKey.ADD_OFFSETS_TO_TXN: 1,
    ApiKey.END_TXN: 1,
    ApiKey.TXN_OFFSET_COMMIT: 3,
    ApiKey.DESCRIBE_ACLS: 2,
    ApiKey.CREATE_ACLS: 2,
    ApiKey.DELETE_ACLS: 2,
}
"""Newest version of each API that Debian 12's tshark (Wireshark 4.0) dissects, measured with
tests/protocol/tshark_probe.py ("Unsupported <api> version. Supports v0-N" above these).
Wireshark 4.0 does not know DescribeCluster (60), DescribeProducers (61), Describe/AlterUserScram-
Credentials (50, 51), Describe/AlterClientQuotas (48, 49), DescribeTransactions (65) nor
ListTransactions (66) at all, and flags every
version of ElectLeaders (43), AlterPartitionReassignments (45), ListPartitionReassignments (46)
and WriteTxnMarkers v1 (27; v0 is not served) as a Malformed Packet (tshark_probe.py), so none
of these is listed. SaslAuthenticate v0-1, like CreatePartitions v0-1 and DeleteAcls v1's
response, decode with a "does not end at the pdu length" note and are kept."""

TSHARK_COMPATIBLE_APIS: dict[int, tuple[int, int]] = {
    key: (lo, min(hi, WIRESHARK_4_0_MAX_VERSIONS[key]))
    for key, (lo, hi) in SUPPORTED_APIS.items() if key in WIRESHARK_4_0_MAX_VERSIONS
}
"""SUPPORTED_APIS capped at Wireshark 4.0's maxima, without the APIs it does not know
(DescribeCluster: an ApiVersions answer listing key 60 is flagged "Unknown 60 API key";
clients fall back to Metadata, as Kafka's admin client does for brokers before 2.8).
Advertised with the broker property kafkalike.api.versions=wireshark-4.0, so captures decode
in Debian's tshark without "unsupported version" / malformed packets. Every client listed
in docs/protocol.md still negotiates (they all go down to these versions); the cost is no
flexible versions for Produce/Fetch/Metadata/ListOffsets, no Fetch diverging-epoch (v12:
followers truncate with OffsetsForLeaderEpoch instead), no ListOffsets max-timestamp (v7),
no ListGroups state filter (v4), no DescribeConfigs documentation (v3+), no DescribeCluster.
See docs/protocol.md, "Wireshark"."""

API_VERSION_PROFILES: dict[str, dict[int, tuple[int, int]]] = {
    "latest": SUPPORTED_APIS,
    "wireshark-4.0": TSHARK_COMPATIBLE_APIS,
}
"""The values of the broker property ``kafkalike.api.versions``: which table the broker
advertises in ApiVersions and accepts ("latest" = SUPPORTED_APIS, the default)."""


# ---------------------------------------------------------------------------------------
# inter.broker.protocol.version -> request versions one broker sends another.
#
# An IBP is compared as (major, minor, patch, IV); "2.4" without "-IVn" means that release's
# last IV. Thresholds are Kafka's MetadataVersion (fetchRequestVersion,
# offsetForLeaderEpochRequestVersion, listOffsetRequestVersion, used by ReplicaFetcherThread)
# and ControllerChannelManager (LeaderAndIsr / UpdateMetadata / StopReplica). Newest first:
# the first threshold the IBP reaches gives the version; below all of them, v0.
_IBP_THRESHOLDS: dict[int, list[tuple[tuple[int, int, int, int], int]]] = {
    ApiKey.LEADER_AND_ISR: [((3, 2, 0, 0), 6), ((2, 8, 0, 1), 5), ((2, 4, 0, 1), 4), ((2, 4, 0, 0), 3),
                            ((2, 2, 0, 0), 2), ((1, 0, 0, 0), 1)],
    ApiKey.UPDATE_METADATA: [((2, 8, 0, 1), 7), ((2, 4, 0, 1), 6), ((2, 2, 0, 0), 5), ((1, 0, 0, 0), 4),
                             ((0, 10, 2, 0), 3), ((0, 10, 0, 0), 2), ((0, 9, 0, 0), 1)],
    ApiKey.STOP_REPLICA: [((2, 6, 0, 0), 3), ((2, 4, 0, 1), 2), ((2, 2, 0, 0), 1)],
    ApiKey.FETCH: [((3, 5, 0, 1), 15), ((3, 5, 0, 0), 14), ((3, 1, 0, 0), 13), ((2, 7, 0, 1), 12),
                   ((2, 3, 0, 1), 11), ((2, 1, 0, 2), 10), ((2, 0, 0, 1), 8), ((1, 1, 0, 0), 7),
                   ((0, 11, 0, 1), 5), ((0, 11, 0, 0), 4), ((0, 10, 1, 1), 3), ((0, 10, 0, 0), 2),
                   ((0, 9, 0, 0), 1)],
    ApiKey.OFFSET_FOR_LEADER_EPOCH: [((2, 8, 0, 0), 4), ((2, 3, 0, 1), 3), ((2, 1, 0, 1), 2),
                                     ((2, 0, 0, 0), 1)],
    ApiKey.LIST_OFFSETS: [((3, 5, 0, 0), 8), ((3, 0, 0, 1), 7), ((2, 8, 0, 0), 6), ((2, 2, 0, 1), 5),
                          ((2, 1, 0, 1), 4), ((2, 0, 0, 1), 3), ((0, 11, 0, 0), 2), ((0, 10, 1, 2), 1)],
}

_IBP = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?(?:-IV(\d+))?")


def parse_ibp(ibp: str | None) -> tuple[int, int, int, int] | None:
    """An inter.broker.protocol.version as (major, minor, patch, IV): "2.4" -> (2, 4, 0, 99)
    (no "-IVn": the release's last IV), "2.4-IV0" -> (2, 4, 0, 0), "0.10.2" -> (0, 10, 2, 99).
    None for None or anything else (e.g. "latest")."""
    m = _IBP.fullmatch((ibp or "").strip())
    if m is None:
        return None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0),
            99 if m.group(4) is None else int(m.group(4)))


def request_versions_for_ibp(ibp: str | None, apis: Iterable[int] | None = None) -> dict[int, int]:
    """{api key: the version Kafka sends at inter.broker.protocol.version ``ibp``} for
    ``apis`` (default: every API with a threshold: LeaderAndIsr, UpdateMetadata, StopReplica,
    Fetch, OffsetForLeaderEpoch, ListOffsets). Kafka's versions, which may lie outside
    SUPPORTED_APIS (IBP 3.9 fetches with v15): callers clamp. None or an unparsable ``ibp``:
    {} (no cap; negotiate). Source: Kafka's MetadataVersion and ControllerChannelManager."""
    key = parse_ibp(ibp)
    if key is None:
        return {}
    wanted = _IBP_THRESHOLDS if apis is None else {a: _IBP_THRESHOLDS[a] for a in apis}
    return {int(api): next((v for threshold, v in thresholds if key >= threshold), 0)
            for api, thresholds in wanted.items()}
