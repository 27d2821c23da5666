"""The hand-written Fetch request encoder (kafkalike.protocol.fetch_request) against kio's
generic writer and kafkalike's generic reader: the same bytes, read back equal."""

from __future__ import annotations

import dataclasses
import datetime
import io
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from kio.serial import entity_writer

sys.path.insert(0, str(Path(__file__).parent))

from protocol_strategies import kio_entity  # noqa: E402

from kafkalike.protocol import codec  # noqa: E402
from kafkalike.protocol.api_keys import ApiKey  # noqa: E402
from kafkalike.protocol.fetch_request import FAST_VERSIONS, encode_fetch_request_body, request_module  # noqa: E402
from kafkalike.protocol.kio_reader import read_entity  # noqa: E402

EXAMPLES = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _kio_bytes(request: object, version: int) -> bytes:
    buf = io.BytesIO()
    entity_writer(codec.request_class(ApiKey.FETCH, version))(buf, request)
    return buf.getvalue()


def _follower_fetch(version: int, partitions: int = 1, cluster_id: str | None = None) -> object:
    mod = request_module(version)
    fields = {"partition": 0, "fetch_offset": 1234, "partition_max_bytes": 1 << 20}
    if version >= 5:
        fields["log_start_offset"] = 7
    if version >= 9:
        fields["current_leader_epoch"] = 3
    if version >= 12:
        fields["last_fetched_epoch"] = -1
    parts = tuple(mod.FetchPartition(**{**fields, "partition": i}) for i in range(partitions))
    extra: dict[str, object] = {}
    if version >= 7:
        extra |= {"session_id": 9, "session_epoch": 4,
                  "forgotten_topics_data": (mod.ForgottenTopic(topic="gone", partitions=(1, 2)),)}
    if version >= 11:
        extra["rack_id"] = "rack-a"
    if version >= 12:
        extra["cluster_id"] = cluster_id
    return mod.FetchRequest(replica_id=2, max_wait=datetime.timedelta(milliseconds=500), min_bytes=1,
                            max_bytes=10 << 20, isolation_level=0,
                            topics=(mod.FetchTopic(topic="flights", partitions=parts),), **extra)


@pytest.mark.parametrize("version", FAST_VERSIONS)
def test_fetch_request_fast_path_writes_kios_bytes(version: int) -> None:
    """For any FetchRequest of v4-v12 the hand-written encoder writes exactly kio's bytes, and
    the generic reader the broker uses reads them back to an equal entity."""
    cls = codec.request_class(ApiKey.FETCH, version)

    @EXAMPLES
    @given(kio_entity(cls))
    def check(request: object) -> None:
        ours = encode_fetch_request_body(request, version)
        assert ours == _kio_bytes(request, version)
        assert read_entity(cls, memoryview(ours), 0) == (request, len(ours))

    check()


@pytest.mark.parametrize("version", [v for v in FAST_VERSIONS if v >= 12])
def test_fetch_request_without_cluster_id_carries_no_tag_and_with_one_carries_it(version: int) -> None:
    """KIP-709's cluster_id (request tag 0) is absent when None and read back when set."""
    for cluster_id in (None, "lkc-1"):
        request = _follower_fetch(version, cluster_id=cluster_id)
        body = encode_fetch_request_body(request, version)
        assert body == _kio_bytes(request, version)
        assert body.endswith(b"\x00") == (cluster_id is None)
        cls = codec.request_class(ApiKey.FETCH, version)
        assert read_entity(cls, memoryview(body), 0)[0].cluster_id == cluster_id


def test_encode_request_sends_a_follower_fetch_the_broker_parses_back_equal() -> None:
    """A whole v12 frame from encode_request (the fast path) parses back equal, header too."""
    request = _follower_fetch(12, partitions=3)
    frame = codec.encode_request(request, correlation_id=11, client_id="broker-2-fetcher-1")
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    header, parsed = codec.parse_request(memoryview(bytearray(frame[4:])))
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == \
        (ApiKey.FETCH, 12, 11, "broker-2-fetcher-1")
    assert parsed == request
    assert dataclasses.replace(parsed, rack_id="x") != request  # the comparison can fail
