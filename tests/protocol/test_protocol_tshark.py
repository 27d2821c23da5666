"""Wireshark's Kafka dissector (Debian 12's tshark 4.0) decodes what our codec writes.

Every version of TSHARK_COMPATIBLE_APIS is exchanged over loopback under dumpcap
(tests/protocol/tshark_probe.py) and must dissect without "malformed" or error-level expert
info, except the pairs where Wireshark 4.0 itself is wrong, listed with the reason (the table
leaves out DescribeCluster, which Wireshark 4.0 does not know). The helpers that run dumpcap
and tshark are in tshark_probe.py; tests/integration/test_wire_capture.py reuses them for a
whole cluster's capture.
Skipped when tshark/dumpcap are missing or cannot capture on lo.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tshark_probe  # noqa: E402

from kafkalike.protocol.api_keys import (API_VERSION_PROFILES, SUPPORTED_APIS,  # noqa: E402
                                         TSHARK_COMPATIBLE_APIS, WIRESHARK_4_0_MAX_VERSIONS,
                                         ApiKey)

# (api_key, version) -> why Wireshark 4.0 flags correct bytes (checked against Kafka's JSON).
KNOWN_WIRESHARK_4_0_GAPS = {
    **{(6, v): "reads OfflineReplicas (a v4+ field) in UpdateMetadata v0-v3" for v in range(4)},
    **{(11, v): "cannot dissect JoinGroup protocol metadata before v6" for v in range(6)},
    **{(14, v): "cannot dissect SyncGroup assignments before v4" for v in range(4)},
    **{(15, v): "cannot dissect DescribeGroups member metadata before v5" for v in range(5)},
    **{(19, v): "misreads CreateTopics replica assignments (broker_ids)" for v in range(2, 6)},
    **{(20, v): "skips DeleteTopics v1-v2 response throttle_time_ms" for v in (1, 2)},
    **{(37, v): "misreads CreatePartitions assignments" for v in range(3)},
    **{(36, v): "SaslAuthenticate v0-v1: 'does not end at the pdu length' (v2 is clean)" for v in (0, 1)},
    (31, 1): "DeleteAcls v1 response: 'does not end at the pdu length' (v2 is clean)",
}


@pytest.mark.skipif(not tshark_probe.available(), reason="tshark/dumpcap not installed")
def test_tshark_decodes_every_tshark_compatible_version() -> None:
    """All (api, version) pairs of TSHARK_COMPATIBLE_APIS dissect cleanly, bar Wireshark's gaps."""
    pairs = [(k, v) for k, (lo, hi) in sorted(TSHARK_COMPATIBLE_APIS.items())
             for v in range(lo, hi + 1)]
    try:
        result = tshark_probe.probe(pairs)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    unexpected = {pair: issues for pair, issues in result.items()
                  if issues and pair not in KNOWN_WIRESHARK_4_0_GAPS}
    assert unexpected == {}
    assert all(result[pair] == [] for pair in pairs if pair not in KNOWN_WIRESHARK_4_0_GAPS)


def test_tshark_table_only_caps_maxima() -> None:
    """TSHARK_COMPATIBLE_APIS keeps every minimum of SUPPORTED_APIS and every API that
    Wireshark 4.0 knows; it drops only the APIs unknown to Wireshark 4.0 (DescribeCluster,
    DescribeProducers, Describe/AlterUserScramCredentials, Describe/ListTransactions,
    Describe/AlterClientQuotas) and those
    whose every served version it flags as a Malformed Packet (ElectLeaders, Alter/List-
    PartitionReassignments, WriteTxnMarkers v1; tshark_probe.py)."""
    assert set(SUPPORTED_APIS) - set(TSHARK_COMPATIBLE_APIS) == {
        ApiKey.DESCRIBE_CLUSTER, ApiKey.DESCRIBE_PRODUCERS, ApiKey.ELECT_LEADERS,
        ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, ApiKey.ALTER_USER_SCRAM_CREDENTIALS,
        ApiKey.DESCRIBE_TRANSACTIONS, ApiKey.LIST_TRANSACTIONS,
        ApiKey.ALTER_PARTITION_REASSIGNMENTS, ApiKey.LIST_PARTITION_REASSIGNMENTS,
        ApiKey.WRITE_TXN_MARKERS, ApiKey.DESCRIBE_CLIENT_QUOTAS, ApiKey.ALTER_CLIENT_QUOTAS}
    for key, (lo, hi) in TSHARK_COMPATIBLE_APIS.items():
        assert lo == SUPPORTED_APIS[key][0] and lo <= hi <= SUPPORTED_APIS[key][1]
        assert hi == min(SUPPORTED_APIS[key][1], WIRESHARK_4_0_MAX_VERSIONS[key])


def test_api_version_profiles_name_the_two_tables() -> None:
    """kafkalike.api.versions values map to SUPPORTED_APIS and TSHARK_COMPATIBLE_APIS."""
    assert API_VERSION_PROFILES == {"latest": SUPPORTED_APIS, "wireshark-4.0": TSHARK_COMPATIBLE_APIS}
