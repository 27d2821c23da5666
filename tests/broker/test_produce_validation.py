"""Malformed batches with a valid CRC, sent as raw Produce requests to a REAL broker process:
each is refused with Kafka's error (INVALID_RECORD for records that do not frame, a false
count, offset deltas out of order or keyless records on a compacted topic; CORRUPT_MESSAGE for
a compressed body that does not decompress) and nothing of it is stored, so a real client
(kafka-python) then reads every good record of the partition without an error."""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Iterator

import crc32c
import pytest
import trio

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.protocol import records as codecs
from kafkalike.protocol.record_batch import (ATTRIBUTES_AT, CRC_AT, HEADER_SIZE, LAST_OFFSET_DELTA_AT,
                                             LOG_OVERHEAD, RECORDS_COUNT_AT, SimpleRecord, build_batch)
from tests.broker.broker_helpers import produce
from tests.fixtures_cluster import _new_cluster, create_topic

CORRUPT_MESSAGE = 2
INVALID_RECORD = 87


@pytest.fixture(scope="module")
def one_broker(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    """One real broker process shared by this module (each test uses its own topic)."""
    cluster = _new_cluster(tmp_path_factory.mktemp("validation"), zk_connect, 1, None)
    try:
        yield cluster
    finally:
        cluster.stop()


# ------------------------------------------------------------------------- batch surgery


def _recrc(data: bytearray) -> bytes:
    struct.pack_into(">I", data, CRC_AT, crc32c.crc32c(memoryview(data)[ATTRIBUTES_AT:]))
    return bytes(data)


def _good(values: list[bytes], key: bytes | None = b"k") -> bytes:
    now = int(time.time() * 1000)
    return build_batch([SimpleRecord(value=v, key=key, timestamp=now) for v in values])


def _set_i32(batch: bytes, at: int, value: int) -> bytes:
    data = bytearray(batch)
    struct.pack_into(">i", data, at, value)
    return _recrc(data)


def _with_body(batch: bytes, body: bytes, codec: int) -> bytes:
    """`batch`'s header over another records body, with `codec` in its attributes, length and CRC redone."""
    data = bytearray(batch[:HEADER_SIZE]) + body
    struct.pack_into(">i", data, 8, len(data) - LOG_OVERHEAD)
    attributes = struct.unpack_from(">h", data, ATTRIBUTES_AT)[0]
    struct.pack_into(">h", data, ATTRIBUTES_AT, (attributes & ~0x07) | codec)
    return _recrc(data)


def _first_record_length(batch: bytes, delta: int) -> bytes:
    """Change the first record's length varint (one byte: records under 64 bytes) by `delta`."""
    data = bytearray(batch)
    length = data[HEADER_SIZE] >> 1
    assert data[HEADER_SIZE] == length << 1 and length + delta < 64
    data[HEADER_SIZE] = (length + delta) << 1
    return _recrc(data)


def _cases() -> list[tuple[str, bytes, int]]:
    three = _good([b"bad-0", b"bad-1", b"bad-2"])
    one = _good([b"bad-solo"])
    body = three[HEADER_SIZE:]
    lying_body = _first_record_length(three, +3)[HEADER_SIZE:]
    return [
        ("count -1", _set_i32(three, RECORDS_COUNT_AT, -1), INVALID_RECORD),
        ("count 0", _set_i32(three, RECORDS_COUNT_AT, 0), INVALID_RECORD),
        ("count 10^6", _set_i32(three, RECORDS_COUNT_AT, 10**6), INVALID_RECORD),
        ("count 10^6, lastOffsetDelta to match",
         _set_i32(_set_i32(three, RECORDS_COUNT_AT, 10**6), LAST_OFFSET_DELTA_AT, 10**6 - 1), INVALID_RECORD),
        ("count 2 of 3 records", _set_i32(_set_i32(three, RECORDS_COUNT_AT, 2), LAST_OFFSET_DELTA_AT, 1),
         INVALID_RECORD),
        ("record length too long (one record)", _first_record_length(one, +5), INVALID_RECORD),
        ("record length too long (three records)", _first_record_length(three, +3), INVALID_RECORD),
        ("record length too short", _first_record_length(three, -2), INVALID_RECORD),
        ("offset deltas out of order",
         build_batch([SimpleRecord(value=b"x", key=b"k")] * 3, offset_deltas=[0, 2, 1], last_offset_delta=2),
         INVALID_RECORD),
        ("bytes after the last record", _with_body(three, body + b"\x00\x00", 0), INVALID_RECORD),
        ("control batch from a client", build_batch([SimpleRecord(value=b"x", key=b"k")], control=True),
         INVALID_RECORD),
        ("gzip flag on plain records", _with_body(three, body, 1), CORRUPT_MESSAGE),
        ("snappy garbage", _with_body(three, b"\xff" * 40, 2), CORRUPT_MESSAGE),
        ("lz4 garbage", _with_body(three, b"not an lz4 frame at all" * 2, 3), CORRUPT_MESSAGE),
        ("zstd garbage", _with_body(three, b"not a zstd frame at all" * 2, 4), CORRUPT_MESSAGE),
        ("unknown codec 6", _with_body(three, body, 6), CORRUPT_MESSAGE),
        ("gzip of records whose length lies", _with_body(three, codecs.compress(1, lying_body), 1), INVALID_RECORD),
        ("zstd of records with a false count",
         _set_i32(_with_body(three, codecs.compress(4, body), 4), RECORDS_COUNT_AT, 10**6), INVALID_RECORD),
    ]


CASES = _cases()


# ----------------------------------------------------------------------------- helpers


async def _produce_until_led(conn, topic: str, records: bytes) -> object:  # type: ignore[no-untyped-def]
    """Produce `records` (acks=1), retrying while the new topic's leadership propagates."""
    with trio.fail_after(30):
        while True:
            resp = await produce(conn, topic, 0, records)
            if resp.error_code not in (3, 6, 5):  # UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER, LEADER_NOT_AVAILABLE
                return resp
            await trio.sleep(0.1)


def _consume_all(cluster: LocalCluster, topic: str, expected: int) -> list[bytes]:
    """Every value of partition 0 read by kafka-python from offset 0 (errors propagate)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=2000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(r.value for r in records)
        # one more poll: nothing may follow the good records
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(r.value for r in records)
    finally:
        consumer.close()
    return got


# ------------------------------------------------------------------------------- tests


def test_malformed_batches_are_refused_and_the_partition_stays_readable(one_broker: LocalCluster) -> None:
    """Every malformed batch gets Kafka's error code and an error message, none is stored, and
    kafka-python reads exactly the good records produced before and after them."""
    from kafkalike.client.connection import KafkaConnection

    topic = f"validate-{uuid.uuid4().hex[:8]}"
    create_topic(one_broker.bootstrap_servers, topic, 1, 1)
    answers: dict[str, tuple[int, str | None]] = {}
    good: list[bytes] = []
    moved: dict[str, int] = {}

    async def run() -> None:
        async with KafkaConnection.open(one_broker.broker_host(1), one_broker.base_port) as conn:
            first = [b"good-0", b"good-1"]
            resp = await _produce_until_led(conn, topic, _good(first))
            assert resp.error_code == 0
            good.extend(first)
            for i, (name, data, _) in enumerate(CASES):
                resp = await produce(conn, topic, 0, data)
                answers[name] = (resp.error_code, resp.error_message)
                after = [f"good-after-{i}".encode()]
                resp = await produce(conn, topic, 0, _good(after))
                assert resp.error_code == 0, f"good produce after {name!r}: {resp}"
                if resp.base_offset != len(good):
                    moved[name] = resp.base_offset - len(good)
                good.extend(after)

    trio.run(run)
    wrong = {name: answers[name] for name, _, expected in CASES if answers[name][0] != expected}
    assert not wrong, f"answers (expected per case: {[(n, e) for n, _, e in CASES]}): {wrong}"
    assert not moved, f"offsets moved by refused batches: {moved}"
    assert all(message for _, message in answers.values())
    assert _consume_all(one_broker, topic, len(good)) == good


def test_keyless_records_on_a_compacted_topic_are_refused_with_record_errors(one_broker: LocalCluster) -> None:
    """A compacted topic refuses a batch holding keyless records with INVALID_RECORD, naming
    each keyless record's index in record_errors (Produce v8+, KIP-467); keyed records pass."""
    from kafkalike.client.connection import KafkaConnection

    topic = f"compacted-{uuid.uuid4().hex[:8]}"
    create_topic(one_broker.bootstrap_servers, topic, 1, 1, configs={"cleanup.policy": "compact"})
    now = int(time.time() * 1000)
    mixed = build_batch([SimpleRecord(value=b"a", key=b"k", timestamp=now),
                         SimpleRecord(value=b"b", key=None, timestamp=now),
                         SimpleRecord(value=b"c", key=None, timestamp=now)])

    async def run() -> tuple[object, object]:
        async with KafkaConnection.open(one_broker.broker_host(1), one_broker.base_port) as conn:
            keyed = await _produce_until_led(conn, topic, _good([b"ok"], key=b"k1"))
            refused = await produce(conn, topic, 0, mixed)
            return keyed, refused

    keyed, refused = trio.run(run)
    assert keyed.error_code == 0  # type: ignore[attr-defined]
    assert refused.error_code == INVALID_RECORD  # type: ignore[attr-defined]
    assert [e.batch_index for e in refused.record_errors] == [1, 2]  # type: ignore[attr-defined]
    assert all("without key" in e.batch_index_error_message for e in refused.record_errors)  # type: ignore[attr-defined]
    assert "record errors" in refused.error_message  # type: ignore[attr-defined]
    assert _consume_all(one_broker, topic, 1) == [b"ok"]
