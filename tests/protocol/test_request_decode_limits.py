"""Request decoding refuses declared lengths and element counts it cannot afford before
allocating them: arrays longer than their smallest encoding allows, and requests of
more than MAX_REQUEST_FIELDS array fields."""

from __future__ import annotations

import datetime
import struct
import sys

import pytest

from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import (RequestHeader, decode_response, encode_request, encode_response,
                                      parse_request, request_class, response_class)
from kafkalike.protocol.errors import ErrorCode, MalformedFrameError
from kafkalike.protocol.kio_reader import MAX_REQUEST_FIELDS


def _body(frame: bytes) -> memoryview:
    return memoryview(frame)[4:]


def test_int32_array_longer_than_the_bytes_left_is_refused() -> None:
    """A CreatePartitions v1 assignment announcing 1,000 broker ids (4 bytes each) with 3,000
    bytes left is refused with Kafka's wording, not read as 1,000 one-byte elements."""
    head = struct.pack(">hhih", ApiKey.CREATE_PARTITIONS, 1, 5, 1) + b"x"
    body = struct.pack(">i", 1) + struct.pack(">h", 1) + b"t" + struct.pack(">i", 2)  # topic t, count 2
    body += struct.pack(">i", 1) + struct.pack(">i", 1000) + b"\x00" * 3000  # 1 assignment, 1,000 ids
    with pytest.raises(MalformedFrameError, match=r"^Error reading array of size 1000, only 3000 bytes available"):
        parse_request(head + body)


def test_requests_over_the_field_budget_are_refused_and_responses_are_not_limited() -> None:
    """DeleteTopics naming 600,000 one-byte topics (1.2 MB) is refused as over
    MAX_REQUEST_FIELDS; 400,000 names decode; a response of more fields than that (client
    side) still decodes."""
    cls = request_class(ApiKey.DELETE_TOPICS, 5)
    small = encode_request(cls(topic_names=("a",) * 400_000, timeout=datetime.timedelta(0)), correlation_id=1)
    assert len(parse_request(_body(small))[1].topic_names) == 400_000
    big = encode_request(cls(topic_names=("a",) * 600_000, timeout=datetime.timedelta(0)), correlation_id=1)
    with pytest.raises(MalformedFrameError, match="MAX_REQUEST_FIELDS"):
        parse_request(_body(big))
    # the budget is per request: the refused one left nothing behind
    assert len(parse_request(_body(small))[1].topic_names) == 400_000
    resp_cls = response_class(ApiKey.DELETE_TOPICS, 5)
    result = sys.modules[resp_cls.__module__].DeletableTopicResult
    header = RequestHeader(ApiKey.DELETE_TOPICS, 5, 1, None, 2)
    n = MAX_REQUEST_FIELDS // 3
    frame = encode_response(header, resp_cls(throttle_time=datetime.timedelta(0), responses=tuple(
        result(name="a", error_code=ErrorCode.none, error_message=None) for _ in range(n))))
    assert len(decode_response(_body(frame), ApiKey.DELETE_TOPICS, 5)[1].responses) == n
