"""Golden frames captured from real clients (tests/protocol/capture_golden.py) decode as expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import SUPPORTED_APIS, ApiKey
from kafkalike.protocol.errors import UnsupportedVersionError
from kafkalike.protocol.frame import FrameReader
from kafkalike.protocol.record_batch import iter_batches
from kafkalike.protocol.records import decode_batches

GOLDEN = Path(__file__).parent.parent / "data" / "golden"
FILES = sorted(p.name for p in GOLDEN.glob("*.bin"))

CLIENT_IDS = {"kafka-python": "golden-kafka-python", "librdkafka": "golden-librdkafka",
              "aiokafka": "golden-aiokafka", "kcat": "golden-kcat", "java": "golden-java"}
CODEC_BY_LABEL = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
KEY = b"golden-key"
VALUE = b"golden-value-" * 40


def _read(name: str) -> memoryview:
    reader = FrameReader()
    reader.feed((GOLDEN / name).read_bytes())
    frame = reader.next_frame()
    assert frame is not None and reader.next_frame() is None and not reader.in_progress
    return frame


def _client(name: str) -> str:
    return next(c for c in CLIENT_IDS if name.startswith(c + "-"))


def test_golden_frames_cover_every_client_and_codec() -> None:
    """Captures exist for each client's ApiVersions, Metadata and Produce, and every codec."""
    produce = [n for n in FILES if "-Produce-" in n]
    assert {_client(n) for n in produce} == set(CLIENT_IDS)
    assert {label for label in CODEC_BY_LABEL if any(f"-{label}-" in n for n in produce)} == \
        set(CODEC_BY_LABEL)
    assert any("-Metadata-" in n for n in FILES) and any("-ApiVersions-" in n for n in FILES)
    admin_apis = {n.split("-admin-")[1].rsplit("-", 1)[0] for n in FILES if "-admin-" in n}
    assert admin_apis >= {"CreateTopics", "CreatePartitions", "DeleteTopics", "DescribeConfigs",
                          "AlterConfigs", "IncrementalAlterConfigs", "ListGroups",
                          "DescribeGroups", "DeleteGroups", "DescribeCluster"}
    groups = {_client(n) for n in FILES if "-JoinGroup-" in n}
    assert groups == {"kafka-python", "librdkafka", "aiokafka", "java"}
    fetch = [n for n in FILES if "-Fetch-" in n]
    assert {_client(n) for n in fetch} == set(CLIENT_IDS)
    assert {n.split("-Fetch-")[0].rsplit("-", 1)[-1] for n in fetch} >= \
        {"none", *CODEC_BY_LABEL}


@pytest.mark.parametrize("name", FILES)
def test_golden_frame_decodes_to_expected_values(name: str) -> None:
    """Each captured request parses with the client's id and its API/version from the name."""
    api, version = name.rsplit("-", 2)[1:]
    version = int(version.removeprefix("v").removesuffix(".bin"))
    frame = _read(name)
    lo, hi = SUPPORTED_APIS[ApiKey[_snake(api)]]
    if not lo <= version <= hi:
        with pytest.raises(UnsupportedVersionError) as info:
            codec.parse_request(frame)
        assert info.value.api_key == ApiKey.API_VERSIONS
        fallback = codec.encode_api_versions_fallback(info.value.correlation_id)
        _cid, answer = codec.decode_response(fallback[4:], ApiKey.API_VERSIONS, version)
        assert {a.api_key: (a.min_version, a.max_version) for a in answer.api_keys}[18] == (lo, hi)
        return
    header, request = codec.parse_request(frame)
    assert header.api_name == api and header.api_version == version
    assert header.client_id == CLIENT_IDS[_client(name)]
    if api == "Metadata":
        names = [t.name for t in request.topics or ()]
        assert names in ([], ["golden"])
    if api == "ApiVersions" and version >= 3:
        assert request.client_software_name in ("kafka-python", "librdkafka",
                                                "confluent-kafka-python", "apache-kafka-java")
    if api == "Fetch":
        (topic,) = request.topics
        (part,) = topic.partitions
        assert (topic.topic, part.partition, part.fetch_offset) == ("golden", 0, 0)
        assert request.replica_id == -1 and part.partition_max_bytes > 0
    if api == "ListOffsets":
        (topic,) = request.topics
        (part,) = topic.partitions
        assert (topic.name, part.partition_index, part.timestamp) == ("golden", 0, -2)
    if api == "InitProducerId":
        assert request.transactional_id is None
    if api == "FindCoordinator":
        assert request.key in ("golden", "golden-group")
    if api in ("JoinGroup", "SyncGroup", "Heartbeat", "OffsetFetch", "OffsetCommit",
               "LeaveGroup"):
        assert request.group_id == "golden-group"
    if api == "JoinGroup":
        assert request.protocol_type == "consumer" and request.protocols
    if api == "CreateTopics":
        (topic,) = request.topics
        assert (topic.name, topic.num_partitions, topic.replication_factor) == \
            ("golden-admin", 3, 1)
        assert [(c.name, c.value) for c in topic.configs] == [("cleanup.policy", "compact")]
    if api == "CreatePartitions":
        assert [(t.name, t.count) for t in request.topics] in ([("golden-admin", 6)],
                                                               [("golden", 6)])
    if api == "DeleteTopics":
        names = list(getattr(request, "topic_names", None) or
                     [t.name for t in getattr(request, "topics", ())])
        assert names in (["golden-admin"], ["golden"])
    if api == "DescribeConfigs":
        assert [(r.resource_type, r.resource_name) for r in request.resources] == \
            [(2, "golden-admin")]
    if api in ("AlterConfigs", "IncrementalAlterConfigs"):
        (resource,) = request.resources
        assert (resource.resource_type, resource.resource_name) == (2, "golden-admin")
        assert [(c.name, c.value) for c in resource.configs] in (
            [("cleanup.policy", "delete")], [("retention.ms", "1000")])
    if api in ("DescribeGroups",):
        assert list(request.groups) == ["golden-group"]
    if api == "DeleteGroups":
        assert list(request.groups_names) == ["golden-group"]
    if api == "OffsetCommit":
        ((topic_name, committed),) = [(t.name, [p.committed_offset for p in t.partitions])
                                      for t in request.topics]
        assert topic_name == "golden" and committed == [1]
    if api == "Produce":
        (topic,) = request.topic_data
        (part,) = topic.partition_data
        assert topic.name == "golden" and part.index == 0
        assert isinstance(part.records, memoryview)
        (header_view,) = list(iter_batches(part.records))
        (batch,) = decode_batches(part.records)
        label = name.split("-Produce-")[0].rsplit("-", 1)[-1]
        assert batch.compression == CODEC_BY_LABEL.get(label, 0) == header_view.compression_codec
        (record,) = batch.records
        assert (record.key, record.value, record.headers) == (KEY, VALUE, (("h", b"v"),))
        if not name.startswith(("kcat", "java")):  # console tools stamp the current time
            assert record.timestamp == 1700000000000


def _snake(api: str) -> str:
    out = ""
    for ch in api:
        out += ("_" + ch) if ch.isupper() and out else ch
    return out.upper()
