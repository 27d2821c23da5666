"""FrameReader, request/response headers, unsupported APIs and the ApiVersions fallback."""

from __future__ import annotations

import random
import struct
import tracemalloc

import pytest
from kio.schema.api_versions.v0.request import ApiVersionsRequest as ApiVersionsRequestV0
from kio.schema.api_versions.v3.request import ApiVersionsRequest as ApiVersionsRequestV3
from kio.schema.metadata.v1.request import MetadataRequest as MetadataRequestV1

from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import SUPPORTED_APIS, ApiKey
from kafkalike.protocol.controlled_shutdown import ControlledShutdownRequest
from kafkalike.protocol.errors import (ErrorCode, FrameSizeError, MalformedFrameError,
                                       ProtocolError, UnknownApiKeyError,
                                       UnsupportedVersionError, error_code_by_name, kafka_name)
from kafkalike.protocol.frame import (DEFAULT_MAX_FRAME_SIZE, EAGER_FRAME_BYTES, MAX_GROW_STEP,
                                      FrameReader, MemoryPool, frame)


def test_frames_split_at_every_byte_boundary_come_out_whole() -> None:
    """Frames fed in random pieces come out identical and in order."""
    rng = random.Random(7)
    payloads = [bytes(rng.randrange(256) for _ in range(n)) for n in (0, 1, 5, 300, 70000)]
    stream = b"".join(frame(p) for p in payloads)
    reader = FrameReader()
    got = []
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 9000)
        reader.feed(stream[pos:pos + step])
        pos += step
        while (f := reader.next_frame()) is not None:
            got.append(bytes(f))
    assert got == payloads
    assert not reader.in_progress


def test_recv_into_path_delivers_the_same_frames() -> None:
    """writable()/commit() (recv_into) assembles frames without feed()."""
    payloads = [b"abc", b"", b"x" * 1000]
    stream = memoryview(b"".join(frame(p) for p in payloads))
    reader = FrameReader()
    got = []
    pos = 0
    while pos < len(stream):
        target = reader.writable()
        n = min(len(target), 7, len(stream) - pos)
        target[:n] = stream[pos:pos + n]
        reader.commit(n)
        pos += n
        while (f := reader.next_frame()) is not None:
            got.append(bytes(f))
    assert got == payloads


def test_frame_view_is_writable_for_in_place_patching() -> None:
    """next_frame() returns a writable memoryview over the frame's own buffer."""
    reader = FrameReader()
    reader.feed(frame(b"\x00" * 8))
    view = reader.next_frame()
    assert view is not None and not view.readonly
    view[0] = 1
    assert view[0] == 1


@pytest.mark.parametrize("size", [-1, -(2**31), DEFAULT_MAX_FRAME_SIZE + 1, 2**31 - 1])
def test_bad_size_prefix_is_refused_without_allocating(size: int) -> None:
    """A negative or oversize prefix raises FrameSizeError before any large allocation."""
    reader = FrameReader()
    tracemalloc.start()
    try:
        with pytest.raises(FrameSizeError, match=r"^(invalid frame size -\d+|frame size \d+ bytes exceeds)"):
            reader.feed(struct.pack(">i", size) + b"rest")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    with pytest.raises(FrameSizeError):
        reader.feed(b"more")


def test_max_frame_size_is_configurable() -> None:
    """socket.request.max.bytes is honoured exactly: equal passes, one above fails."""
    reader = FrameReader(max_frame_size=10)
    reader.feed(frame(b"0123456789"))
    assert bytes(reader.next_frame() or b"") == b"0123456789"
    with pytest.raises(FrameSizeError):
        reader.feed(struct.pack(">i", 11))
    assert issubclass(FrameSizeError, ProtocolError)


MIB = 1024 * 1024


def test_declared_100_mib_frame_allocates_nothing_before_its_bytes_arrive() -> None:
    """A 100 MiB size prefix with no body allocates no body buffer (10 such took a broker to 1 GB)."""
    tracemalloc.start()
    try:
        readers = [FrameReader() for _ in range(10)]
        for r in readers:
            r.feed(struct.pack(">i", DEFAULT_MAX_FRAME_SIZE))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert all(r.in_progress and r.allocated == 0 for r in readers)


def test_large_frame_buffer_grows_with_the_bytes_received() -> None:
    """A 40 MiB frame's buffer stays within one grow step of what has arrived, and ends exact."""
    size = 40 * 1024 * 1024
    chunk = b"\x5a" * (256 * 1024)
    reader = FrameReader()
    reader.feed(struct.pack(">i", size) + chunk[:1])
    assert reader.allocated <= EAGER_FRAME_BYTES
    received = 1
    while received < size:
        piece = chunk[:min(len(chunk), size - received)]
        reader.feed(piece)
        received += len(piece)
        if received < size:
            assert reader.allocated <= max(EAGER_FRAME_BYTES, received + MAX_GROW_STEP)
            assert reader.allocated <= max(EAGER_FRAME_BYTES, 2 * received)
    body = reader.next_frame()
    assert body is not None and len(body) == size and body.obj is not None and len(body.obj) == size
    assert body[0] == 0x5a and body[-1] == 0x5a and not reader.in_progress


def test_ordinary_frame_gets_its_whole_buffer_on_the_first_body_byte() -> None:
    """Frames up to EAGER_FRAME_BYTES are allocated once at their size (one copy, no growth)."""
    reader = FrameReader()
    reader.feed(struct.pack(">i", 100_000) + b"a")
    assert reader.allocated == 100_000
    reader.feed(b"b" * 99_999)
    body = reader.next_frame()
    assert body is not None and bytes(body[:2]) == b"ab" and len(body.obj) == 100_000


def test_recv_into_path_grows_large_frames_in_steps_even_with_a_live_view() -> None:
    """writable() hands out at most one grow step; a view kept alive forces a copy, not an error."""
    size = 5 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    reader = FrameReader()
    reader.feed(struct.pack(">i", size))
    pos = 0
    kept = []
    while pos < size:
        target = reader.writable()
        assert 0 < len(target) <= max(EAGER_FRAME_BYTES, pos)
        n = min(len(target), 700_000, size - pos)
        target[:n] = payload[pos:pos + n]
        kept.append(target)  # a live export: in-place resize is impossible
        reader.commit(n)
        pos += n
    body = reader.next_frame()
    assert body is not None and bytes(body) == payload


def test_pool_refusal_keeps_the_input_and_resumes_after_release() -> None:
    """An exhausted pool stops the reader with its input kept; after release nothing is lost."""
    pool = MemoryPool(1000)
    first, second = FrameReader(pool=pool), FrameReader(pool=pool)
    first.feed(frame(b"x" * 1000))
    held = first.next_frame()
    assert held is not None and pool.used == 1000
    second.feed(frame(b"abc") + frame(b"defg"))
    assert second.waiting_for_memory and second.next_frame() is None
    assert not second.resume()  # still exhausted
    with pytest.raises(RuntimeError):
        second.feed(b"more")
    first.release(held)
    assert second.resume()
    assert [bytes(second.next_frame() or b""), bytes(second.next_frame() or b"")] == [b"abc", b"defg"]
    assert pool.used == 7


def test_pool_grants_the_first_waiter_when_waiting_partial_frames_hold_everything() -> None:
    """Partial frames that fill the pool can't deadlock: the oldest waiter may overdraw to finish its frame."""
    pool = MemoryPool(4 * MIB)
    a, b = FrameReader(pool=pool), FrameReader(pool=pool)
    size = 3 * MIB
    a.feed(struct.pack(">i", size) + b"a" * (2 * MIB))
    b.feed(struct.pack(">i", size) + b"b" * (2 * MIB))
    assert pool.used == 4 * MIB                       # exhausted by two partial frames
    a.feed(b"a")
    assert a.waiting_for_memory                       # b is still receiving: b may release
    b.feed(b"b")
    assert b.waiting_for_memory                       # now both wait: a, the first, may overdraw
    assert a.resume() and not b.resume()
    a.feed(b"a" * (MIB - 1))
    done = a.next_frame()
    assert done is not None and len(done) == size and pool.used == 5 * MIB
    assert not b.resume()                             # a's frame is not handled yet
    a.release(done)
    assert b.resume()
    b.close()
    a.close()
    assert pool.used == 0 and pool.waiting == 0


@pytest.mark.parametrize("seed", range(4))
def test_readers_sharing_a_small_pool_deliver_every_frame_intact(seed: int) -> None:
    """Four readers driven like the socket server (mute on refusal, resume after release) lose and reorder nothing."""
    rng = random.Random(seed)
    pool = MemoryPool(3 * MIB)
    sizes = [0, 1, 100, 70_000, EAGER_FRAME_BYTES, EAGER_FRAME_BYTES + 1, 3 * MIB]
    streams = []
    for _ in range(4):
        payloads = [bytes([rng.randrange(256)]) * rng.choice(sizes) for _ in range(6)]
        streams.append((payloads, b"".join(frame(p) for p in payloads)))
    readers = [FrameReader(pool=pool) for _ in streams]
    pos = [0] * len(streams)
    got: list[list[bytes]] = [[] for _ in streams]
    for _ in range(100_000):
        if all(pos[i] == len(st[1]) and not r.waiting_for_memory and not r.in_progress
               for i, (r, st) in enumerate(zip(readers, streams))):
            break
        i = rng.randrange(len(readers))
        reader, (_payloads, data) = readers[i], streams[i]
        while (f := reader.next_frame()) is not None:  # "handle" and give the bytes back
            got[i].append(bytes(f))
            reader.release(f)
        if reader.waiting_for_memory:
            reader.resume()
        elif pos[i] < len(data):
            step = rng.choice([1, 7, 4096, 256 * 1024])
            reader.feed(data[pos[i]:pos[i] + step])
            pos[i] = min(len(data), pos[i] + step)
        assert pool.used <= 3 * MIB + EAGER_FRAME_BYTES + 3 * MIB  # budget + one grant + one frame
    for i, reader in enumerate(readers):
        while (f := reader.next_frame()) is not None:
            got[i].append(bytes(f))
            reader.release(f)
        assert got[i] == streams[i][0]
    assert pool.used == 0 and pool.waiting == 0


def test_closing_a_reader_returns_its_partial_and_unread_frames_to_the_pool() -> None:
    """close() gives back the frame being assembled and complete frames not taken."""
    pool = MemoryPool(0)  # unbounded, still counted
    reader = FrameReader(pool=pool)
    reader.feed(frame(b"12345") + struct.pack(">i", 10) + b"678")
    assert pool.used == 15
    reader.close()
    assert pool.used == 0


def test_request_header_versions_follow_kafka() -> None:
    """Header v2 for flexible versions, v1 otherwise, v0 for ControlledShutdown v0."""
    assert codec.request_header_version(ApiKey.METADATA, 8) == 1
    assert codec.request_header_version(ApiKey.METADATA, 9) == 2
    assert codec.request_header_version(ApiKey.CONTROLLED_SHUTDOWN, 0) == 0
    assert codec.request_header_version(ApiKey.CONTROLLED_SHUTDOWN, 3) == 2
    assert codec.request_header_version(ApiKey.LEADER_AND_ISR, 4) == 2
    assert codec.response_header_version(ApiKey.API_VERSIONS, 3) == 0
    assert codec.response_header_version(ApiKey.FETCH, 12) == 1
    assert codec.response_header_version(ApiKey.FETCH, 11) == 0


def test_controlled_shutdown_v0_header_has_no_client_id() -> None:
    """ControlledShutdown v0 uses request header v0: 8 header bytes, then the body."""
    f = codec.encode_request(ControlledShutdownRequest(broker_id=3), correlation_id=5,
                             client_id="ignored", api_version=0)
    assert f == struct.pack(">ihhii", 12, 7, 0, 5, 3)
    header, request = codec.parse_request(f[4:])
    assert header.header_version == 0 and header.client_id is None
    assert request.broker_id == 3


def test_flexible_header_keeps_client_id_as_legacy_string() -> None:
    """Request header v2 writes client_id with an int16 length, then an empty tag section."""
    f = codec.encode_request(ApiVersionsRequestV3(client_software_name="a",
                                                  client_software_version="b"),
                             correlation_id=1, client_id="cid")
    assert f[4:4 + 8 + 2 + 3 + 1] == struct.pack(">hhih", 18, 3, 1, 3) + b"cid" + b"\x00"


def test_unknown_api_key_carries_the_correlation_id() -> None:
    """An api key the broker does not serve raises UnknownApiKeyError with the header fields."""
    body = struct.pack(">hhih", 57, 1, 42, -1)  # UpdateFeatures: known to kio, served only by KRaft brokers
    with pytest.raises(UnknownApiKeyError) as info:
        codec.parse_request(body)
    assert (info.value.api_key, info.value.api_version, info.value.correlation_id) == (57, 1, 42)


def test_unsupported_version_carries_header_fields() -> None:
    """A served api at an unsupported version raises UnsupportedVersionError (not Malformed)."""
    body = struct.pack(">hhih", 18, 99, 77, 2) + b"id" + b"\x00\x00\x00"
    with pytest.raises(UnsupportedVersionError) as info:
        codec.parse_request(body)
    assert info.value.correlation_id == 77 and info.value.client_id == "id"
    assert info.value.error_code == ErrorCode.unsupported_version


def test_api_versions_fallback_is_v0_with_unsupported_version_and_all_ranges() -> None:
    """KIP-511: the fallback is an ApiVersions v0 response listing every supported range."""
    out = codec.encode_api_versions_fallback(77)
    size, cid, error, count = struct.unpack_from(">iihi", out)
    assert size == len(out) - 4 and cid == 77 and error == 35
    entries = [struct.unpack_from(">hhh", out, 14 + 6 * i) for i in range(count)]
    assert {k: (lo, hi) for k, lo, hi in entries} == {int(k): v for k, v in SUPPORTED_APIS.items()}
    assert 14 + 6 * count == len(out)
    _cid, decoded = codec.decode_response(out[4:], ApiKey.API_VERSIONS, 3)
    assert decoded.error_code == ErrorCode.unsupported_version


def test_api_versions_v0_request_parses() -> None:
    """The oldest ApiVersions request (empty body, header v1) is served."""
    f = codec.encode_request(ApiVersionsRequestV0(), correlation_id=9, client_id=None)
    header, request = codec.parse_request(f[4:])
    assert header == codec.RequestHeader(18, 0, 9, None, 1)
    assert request == ApiVersionsRequestV0()


def test_trailing_bytes_after_a_request_body_are_ignored_as_kafka_does() -> None:
    """Bytes after a complete request body are ignored, like Kafka's broker does."""
    f = codec.encode_request(MetadataRequestV1(topics=None), correlation_id=1)
    header, request = codec.parse_request(f[4:] + b"\x00")
    assert header.correlation_id == 1 and request == MetadataRequestV1(topics=None)


def test_librdkafka_all_topics_metadata_v12_with_three_extra_bytes_is_served() -> None:
    """librdkafka 2.16 (confluent-kafka AdminClient.list_topics) sends this frame: a Metadata
    v12 request for all topics followed by 3 more bytes. Kafka serves it; so must we."""
    frame = bytes.fromhex("0003000c00000003000772646b61666b610000000000010000")
    header, request = codec.parse_request(frame)
    assert (header.api_key, header.api_version, header.client_id) == (3, 12, "rdkafka")
    assert request.topics is None and request.allow_auto_topic_creation is False


def test_truncated_header_is_malformed() -> None:
    """Fewer than 8 bytes cannot be a request header."""
    with pytest.raises(MalformedFrameError):
        codec.parse_request(b"\x00\x03\x00")


def test_error_enum_has_numbers_names_and_retriability() -> None:
    """ErrorCode maps Kafka's numbers to names and says which are retriable."""
    assert int(ErrorCode.not_leader_or_follower) == 6
    assert kafka_name(6) == "NOT_LEADER_OR_FOLLOWER"
    assert ErrorCode.not_leader_or_follower.retriable is True
    assert ErrorCode.topic_authorization_failed.retriable is False
    assert error_code_by_name("UNSUPPORTED_VERSION") == 35
    assert error_code_by_name("stale_controller_epoch") == 11
    with pytest.raises(KeyError):
        error_code_by_name("NO_SUCH_ERROR")
    assert {int(e) for e in ErrorCode} >= set(range(-1, 100))


def test_fetch_partition_without_records_is_sent_empty_not_null() -> None:
    """Kafka never sends a null record set; librdkafka 2.16 rejects one in Fetch v12
    ("invalid MessageSetSize -1"). The encoder writes an empty one instead."""
    import dataclasses
    import datetime

    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.codec import response_class

    cls = response_class(ApiKey.FETCH, 12)
    mod = __import__(cls.__module__, fromlist=["x"])
    part = mod.PartitionData(partition_index=0, error_code=6, high_watermark=-1, last_stable_offset=-1,
                             log_start_offset=-1, diverging_epoch=mod.EpochEndOffset(epoch=-1, end_offset=-1),
                             current_leader=mod.LeaderIdAndEpoch(leader_id=-1, leader_epoch=-1),
                             snapshot_id=mod.SnapshotId(end_offset=-1, epoch=-1),
                             aborted_transactions=None, preferred_read_replica=-1, records=None)
    resp = cls(throttle_time=datetime.timedelta(0), error_code=0, session_id=0,
               responses=(mod.FetchableTopicResponse(topic="t", partitions=(part,)),))
    frame = codec.encode_response(codec.RequestHeader(ApiKey.FETCH, 12, 7, "c"), resp)
    _, decoded = codec.decode_response(frame[4:], ApiKey.FETCH, 12)
    records = decoded.responses[0].partitions[0].records
    assert records is not None and bytes(records) == b""
    assert dataclasses.replace(decoded.responses[0].partitions[0], records=None) == part
