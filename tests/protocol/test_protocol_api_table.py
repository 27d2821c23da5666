"""docs/protocol.md's API table says exactly what SUPPORTED_APIS and API_COMPONENTS say."""

from __future__ import annotations

import re
from pathlib import Path

from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import (API_COMPONENTS, IN_PROJECT_APIS, SUPPORTED_APIS,
                                         ApiKey)

DOC = Path(__file__).parent.parent.parent / "docs" / "protocol.md"
ROW = re.compile(r"^\| (\d+) \| (\w+) \| (\d+)-(\d+) \| (\w+) \| (kio|kafkalike) \|$")


def _doc_rows() -> dict[int, tuple[str, int, int, str, str]]:
    text = DOC.read_text()
    section = text.split("## The API table", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = ROW.match(line.strip())
        if m:
            key = int(m.group(1))
            assert key not in rows, f"api key {key} listed twice"
            rows[key] = (m.group(2), int(m.group(3)), int(m.group(4)), m.group(5), m.group(6))
    return rows


def test_doc_table_matches_the_code() -> None:
    """Every row (key, name, versions, component, schema source) equals the code's table."""
    expected = {int(k): (ApiKey(k).kafka_name, lo, hi, API_COMPONENTS[k],
                         "kafkalike" if k in IN_PROJECT_APIS else "kio")
                for k, (lo, hi) in SUPPORTED_APIS.items()}
    assert _doc_rows() == expected


def test_every_served_version_has_a_schema_both_ways() -> None:
    """Each advertised (key, version) has request and response classes."""
    assert set(API_COMPONENTS) == set(SUPPORTED_APIS)
    for key, (lo, hi) in SUPPORTED_APIS.items():
        for version in range(lo, hi + 1):
            codec.request_class(key, version)
            codec.response_class(key, version)


def test_issue_api_set_is_served() -> None:
    """The API set docs/protocol.md lists is in the table."""
    required = {"ApiVersions", "Metadata", "Produce", "Fetch", "ListOffsets", "CreateTopics",
                "DeleteTopics", "CreatePartitions", "DescribeConfigs", "AlterConfigs",
                "IncrementalAlterConfigs", "FindCoordinator", "JoinGroup", "SyncGroup",
                "Heartbeat", "LeaveGroup", "OffsetCommit", "OffsetFetch", "ListGroups",
                "DescribeGroups", "DeleteGroups", "OffsetForLeaderEpoch", "InitProducerId",
                "DescribeCluster", "LeaderAndIsr", "StopReplica", "UpdateMetadata",
                "ControlledShutdown"}
    assert required <= {ApiKey(k).kafka_name for k in SUPPORTED_APIS}
