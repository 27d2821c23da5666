"""The follower's Fetch codec without kio entities (protocol.fetch.decode_fetch_response_fields,
protocol.fetch_request.encode_fetch_request_fields, codec.decode_fetch_response_frame /
encode_request_frame) against kio's own reader and writer: the same values, the same bytes."""

from __future__ import annotations

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
from kafkalike.protocol.errors import ErrorCode, MalformedFrameError  # noqa: E402
from kafkalike.protocol.fetch import FAST_VERSIONS, decode_fetch_response_fields  # noqa: E402
from kafkalike.protocol.fetch_request import (FetchPartitionFields, FetchRequestFields,  # noqa: E402
                                              FetchTopicFields, ForgottenTopicFields,
                                              encode_fetch_request_body, encode_fetch_request_fields)

EXAMPLES = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _kio_body(cls: type, entity: object) -> bytes:
    buf = io.BytesIO()
    entity_writer(cls)(buf, entity)
    return buf.getvalue()


def _tag(value: object, first: str, second: str) -> tuple[int, int] | None:
    """A v12 tagged struct as the plain decoder gives it: None when kio holds its defaults."""
    if value is None:
        return None
    pair = (getattr(value, first), getattr(value, second))
    return None if pair == (-1, -1) else pair


@pytest.mark.parametrize("version", FAST_VERSIONS)
def test_plain_fetch_response_decoder_reads_the_values_kio_wrote(version: int) -> None:
    """Any Fetch response kio writes (v4-v12) decodes into plain records holding the same
    values: error codes as ints, aborted transactions as pairs, records as the same bytes,
    v12's tagged fields as pairs (None when absent)."""
    cls = codec.response_class(ApiKey.FETCH, version)

    @EXAMPLES
    @given(kio_entity(cls))
    def check(response: object) -> None:
        body = _kio_body(cls, response)
        fields, end = decode_fetch_response_fields(memoryview(body), 0, version)
        assert end == len(body)
        assert datetime.timedelta(milliseconds=fields.throttle_time_ms) == response.throttle_time
        assert fields.error_code == (response.error_code if version >= 7 else 0)
        assert fields.session_id == (response.session_id if version >= 7 else 0)
        assert [t.topic for t in fields.responses] == [t.topic for t in response.responses]
        for ours, theirs in zip(fields.responses, response.responses):
            assert len(ours.partitions) == len(theirs.partitions)
            for p, q in zip(ours.partitions, theirs.partitions):
                assert (p.partition_index, p.error_code, p.high_watermark, p.last_stable_offset) == \
                    (q.partition_index, q.error_code, q.high_watermark, q.last_stable_offset)
                assert p.log_start_offset == (q.log_start_offset if version >= 5 else -1)
                assert p.preferred_read_replica == (q.preferred_read_replica if version >= 11 else -1)
                assert p.aborted_transactions == (None if q.aborted_transactions is None else tuple(
                    (t.producer_id, t.first_offset) for t in q.aborted_transactions))
                assert (None if p.records is None else bytes(p.records)) == q.records
                if version >= 12:
                    assert p.diverging_epoch == _tag(q.diverging_epoch, "epoch", "end_offset")
                    assert p.current_leader == _tag(q.current_leader, "leader_id", "leader_epoch")
                    assert p.snapshot_id == _tag(q.snapshot_id, "end_offset", "epoch")
        # the kio entity clients get is built from these records and equals kio's own
        assert codec.decode_response(b"\x00\x00\x00\x05" + (b"\x00" if version >= 12 else b"") + body,
                                     ApiKey.FETCH, version) == (5, response)

    check()


def _one_partition_response(version: int, partition_error: int = 0, top_error: int = 0) -> bytes:
    """A one-partition Fetch response body; error codes kio cannot write are patched in."""
    cls = codec.response_class(ApiKey.FETCH, version)
    mod = sys.modules[cls.__module__]
    part = {"partition_index": 0, "error_code": ErrorCode(6), "high_watermark": 5, "last_stable_offset": 5,
            "aborted_transactions": None, "records": b""}
    if version >= 5:
        part["log_start_offset"] = 0
    top = {"error_code": ErrorCode(0), "session_id": 1} if version >= 7 else {}
    body = _kio_body(cls, cls(throttle_time=datetime.timedelta(0), responses=(
        mod.FetchableTopicResponse(topic="t", partitions=(mod.PartitionData(**part),)),), **top))
    head = b"\x00\x00\x00\x00\x00\x06"  # partition_index 0, error_code 6
    assert body.count(head) == 1
    body = body.replace(head, b"\x00\x00\x00\x00" + partition_error.to_bytes(2, "big"))
    if version >= 7:
        body = body[:4] + top_error.to_bytes(2, "big") + body[6:]
    return body


@pytest.mark.parametrize("version", [4, 7, 12])
def test_plain_fetch_response_decoder_refuses_an_unknown_error_code(version: int) -> None:
    """An error code Kafka does not define is a malformed answer, as in kio's path."""
    ok = _one_partition_response(version, partition_error=6)
    assert decode_fetch_response_fields(memoryview(ok), 0, version)[0].responses[0].partitions[0].error_code == 6
    with pytest.raises(MalformedFrameError, match="unknown error code"):
        decode_fetch_response_fields(memoryview(_one_partition_response(version, partition_error=9999)), 0, version)
    if version >= 7:
        with pytest.raises(MalformedFrameError, match="unknown error code"):
            decode_fetch_response_fields(memoryview(_one_partition_response(version, top_error=9999)), 0, version)


def test_decode_fetch_response_frame_reads_the_header_and_refuses_trailing_bytes() -> None:
    """The frame decoder skips the v12 response header's tags, returns the correlation id,
    and refuses bytes after the body and a version it has no layout for."""
    body = _one_partition_response(12)
    frame = (42).to_bytes(4, "big") + b"\x00" + body
    correlation_id, fields = codec.decode_fetch_response_frame(frame, 12)
    assert correlation_id == 42 and fields.session_id == 1
    with pytest.raises(MalformedFrameError, match="trailing"):
        codec.decode_fetch_response_frame(frame + b"\x00", 12)
    with pytest.raises(ValueError):
        codec.decode_fetch_response_frame(frame, 13)


@pytest.mark.parametrize("version", FAST_VERSIONS)
def test_plain_fetch_request_encoder_writes_the_entity_encoders_bytes(version: int) -> None:
    """Any Fetch request kio can hold (v4-v12), rebuilt as FetchRequestFields, encodes to the
    bytes of the kio-entity encoder (itself checked against kio's writer in
    test_fetch_request.py), and the frame around it is encode_request's."""
    cls = codec.request_class(ApiKey.FETCH, version)

    @EXAMPLES
    @given(kio_entity(cls))
    def check(request: object) -> None:
        fields = FetchRequestFields(
            replica_id=request.replica_id, max_wait_ms=request.max_wait // datetime.timedelta(milliseconds=1),
            min_bytes=request.min_bytes, max_bytes=request.max_bytes, isolation_level=request.isolation_level,
            session_id=getattr(request, "session_id", 0), session_epoch=getattr(request, "session_epoch", -1),
            topics=tuple(FetchTopicFields(t.topic, tuple(FetchPartitionFields(
                p.partition, getattr(p, "current_leader_epoch", -1), p.fetch_offset,
                getattr(p, "last_fetched_epoch", -1), getattr(p, "log_start_offset", -1), p.partition_max_bytes)
                for p in t.partitions)) for t in request.topics),
            forgotten_topics_data=tuple(ForgottenTopicFields(t.topic, tuple(t.partitions))
                                        for t in getattr(request, "forgotten_topics_data", ())),
            rack_id=getattr(request, "rack_id", ""), cluster_id=getattr(request, "cluster_id", None))
        body = encode_fetch_request_fields(fields, version)
        assert body == encode_fetch_request_body(request, version)
        assert codec.encode_request_frame(ApiKey.FETCH, version, 7, "broker-1-fetcher-2", body) == \
            codec.encode_request(request, correlation_id=7, client_id="broker-1-fetcher-2")

    check()
