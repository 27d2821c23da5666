"""Record decoding, the four compression codecs, the batch builder, CRC and magic checks."""

from __future__ import annotations

import gzip
import struct

import cramjam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from kafkalike.protocol import record_batch as rb
from kafkalike.protocol.errors import (CorruptRecordsError, ProtocolError,
                                       UnsupportedCompressionError, UnsupportedMagicError)
from kafkalike.protocol.records import (CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_SNAPPY,
                                        CODEC_ZSTD, Record, build_records_batch, compress,
                                        decode_batch, decode_batches, decompress, iter_records)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CODECS = [CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD]

_blob = st.none() | st.binary(max_size=64)
_header = st.tuples(st.text(max_size=8), _blob)
_record = st.tuples(_blob, _blob, st.lists(_header, max_size=3).map(tuple),
                    st.integers(0, 2**41))


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=25, deadline=None)
@given(records=st.lists(_record, min_size=1, max_size=20),
       base_offset=st.integers(0, 2**40))
def test_built_batches_decode_to_the_same_records(codec: int, records: list,
                                                  base_offset: int) -> None:
    """build_records_batch then decode_batch gives back every key, value, header, timestamp."""
    data = build_records_batch(records, base_offset=base_offset, compression=codec)
    batch = decode_batch(data)
    assert batch.compression == codec
    assert batch.size_in_bytes == len(data)
    assert [(r.key, r.value, r.headers, r.timestamp) for r in batch.records] == \
        [(k, v, h, t) for k, v, h, t in records]
    assert [r.offset for r in batch.records] == \
        list(range(base_offset, base_offset + len(records)))
    assert batch.last_offset == base_offset + len(records) - 1


@pytest.mark.parametrize("codec", CODECS)
def test_compress_roundtrips_large_payloads(codec: int) -> None:
    """Each codec round-trips a payload spanning many blocks (xerial/lz4 block boundaries)."""
    payload = bytes(range(256)) * 1000 + b"tail"
    assert decompress(codec, compress(codec, payload)) == payload


def test_snappy_reads_raw_and_xerial_framing() -> None:
    """Snappy payloads are read both raw (librdkafka) and xerial-framed (Java, kafka-python)."""
    payload = b"kafka" * 20000
    raw = bytes(cramjam.snappy.compress_raw(payload))
    assert decompress(CODEC_SNAPPY, raw) == payload
    framed = compress(CODEC_SNAPPY, payload)
    assert framed[:16] == b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    assert decompress(CODEC_SNAPPY, framed) == payload


def test_lz4_frames_use_independent_blocks_as_kafka_requires() -> None:
    """Kafka's Lz4BlockInputStream rejects dependent blocks: the FLG byte must set bit 5."""
    frame = compress(CODEC_LZ4, b"x" * 300000)
    assert frame[:4] == b"\x04\x22\x4d\x18"
    assert frame[4] & 0x20 and (frame[4] >> 6) == 1


def test_gzip_payload_is_standard_gzip() -> None:
    """gzip batches are plain gzip streams, readable by the stdlib."""
    assert gzip.decompress(compress(CODEC_GZIP, b"abc")) == b"abc"


@pytest.mark.parametrize("codec", [CODEC_NONE, CODEC_GZIP])
def test_batches_from_kafka_python_decode(codec: int) -> None:
    """A batch written by kafka-python's DefaultRecordBatchBuilder decodes field for field."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=0,
                                        producer_id=7, producer_epoch=1, base_sequence=3,
                                        batch_size=1 << 20)
    for i in range(5):
        builder.append(i, timestamp=1700000000000 + i, key=b"k%d" % i, value=b"v" * i,
                       headers=[("h", b"x"), ("n", None)])
    data = bytes(builder.build())
    batch = decode_batch(data)
    assert batch.producer_id == 7 and batch.base_sequence == 3 and batch.compression == codec
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch.records] == [
        (i, 1700000000000 + i, b"k%d" % i, b"v" * i, (("h", b"x"), ("n", None)))
        for i in range(5)]


@pytest.mark.parametrize("codec", [CODEC_NONE, CODEC_GZIP])
def test_our_batches_read_in_kafka_python(codec: int) -> None:
    """kafka-python's reader accepts our batches (CRC, varints, headers, gzip)."""
    data = build_records_batch([(b"k", b"v", (("a", b"1"),), 1234), (None, b"w", (), 1240)],
                               base_offset=10, compression=codec)
    batch = DefaultRecordBatch(data)
    assert batch.validate_crc()
    got = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch]
    assert got == [(10, 1234, b"k", b"v", [("a", b"1")]), (11, 1240, None, b"w", [])]


def test_crc_mismatch_anywhere_in_a_batch_is_detected() -> None:
    """Flipping any byte covered by the CRC (attributes..end) raises CorruptRecordsError."""
    data = build_records_batch([(b"key", b"value" * 10, (), 5)] * 3, compression=CODEC_GZIP)
    for i in range(rb.ATTRIBUTES_AT, len(data)):
        broken = bytearray(data)
        broken[i] ^= 0x40
        with pytest.raises(ProtocolError):
            decode_batch(broken)
        with pytest.raises(rb.RecordBatchError):
            list(rb.iter_batches(broken))


def test_crc_mismatch_in_the_second_of_several_batches_is_detected() -> None:
    """decode_batches checks every batch, not only the first."""
    first = build_records_batch([(b"a", b"1")])
    second = bytearray(build_records_batch([(b"b", b"2")], base_offset=1))
    second[-1] ^= 1
    with pytest.raises(CorruptRecordsError, match="CRC mismatch"):
        decode_batches(first + bytes(second))


def test_patched_offsets_keep_the_crc_valid() -> None:
    """Patching baseOffset/partitionLeaderEpoch in place shifts offsets and keeps the CRC."""
    data = bytearray(build_records_batch([(b"a", b"1"), (b"b", b"2")], compression=CODEC_LZ4))
    view = rb.RecordBatch(data)
    view.set_base_offset(500)
    view.set_partition_leader_epoch(9)
    batch = decode_batch(data)
    assert [r.offset for r in batch.records] == [500, 501]
    assert batch.partition_leader_epoch == 9


@pytest.mark.parametrize("magic", [0, 1])
def test_legacy_magic_is_refused_with_a_documented_error(magic: int) -> None:
    """Message sets with magic 0/1 raise UnsupportedMagicError (CORRUPT_MESSAGE)."""
    data = bytearray(build_records_batch([(b"a", b"1")]))
    data[rb.MAGIC_AT] = magic
    with pytest.raises(UnsupportedMagicError) as info:
        decode_batch(data)
    assert info.value.error_code == 2


def test_unknown_codec_is_refused() -> None:
    """Codec ids 5-7 raise UnsupportedCompressionError (UNSUPPORTED_COMPRESSION_TYPE)."""
    data = bytearray(build_records_batch([(b"a", b"1")]))
    data[rb.ATTRIBUTES_AT + 1] |= 5
    struct.pack_into(">I", data, rb.CRC_AT,
                     __import__("crc32c").crc32c(memoryview(data)[rb.ATTRIBUTES_AT:]))
    with pytest.raises(UnsupportedCompressionError) as info:
        decode_batch(data)
    assert info.value.error_code == 76


def test_log_append_time_applies_max_timestamp_to_every_record() -> None:
    """Under LogAppendTime every record's timestamp is the batch's maxTimestamp."""
    data = build_records_batch([(b"a", b"1", (), 5), (b"b", b"2", (), 6)],
                               log_append_time=99)
    assert [r.timestamp for r in decode_batch(data).records] == [99, 99]


def test_truncated_tail_is_ignored_only_when_asked() -> None:
    """A fetch response cut inside its last batch decodes the complete batches first."""
    data = build_records_batch([(b"a", b"1")]) + build_records_batch([(b"b", b"2")], base_offset=1)
    cut = data[:-5]
    assert [r.value for r in iter_records(cut, allow_truncated_tail=True)] == [b"1"]
    with pytest.raises(CorruptRecordsError, match="truncated"):
        decode_batches(cut)


def test_record_objects_can_be_rebuilt() -> None:
    """Record objects fed back into the builder keep their offsets (e.g. after compaction)."""
    records = [Record(3, 10, b"k", b"v"), Record(7, 11, None, None, (("h", None),))]
    batch = decode_batch(build_records_batch(records, base_offset=3))
    assert batch.records == tuple(records)


def test_decompression_bombs_are_refused_without_inflating() -> None:
    """Snappy/zstd/lz4 payloads declaring absurd sizes raise CorruptRecordsError, not MemoryError."""
    snappy_bomb = b"\xff\xff\xff\xff\x0f" + b"\x00a"
    with pytest.raises(CorruptRecordsError, match="declares"):
        decompress(CODEC_SNAPPY, snappy_bomb)
    xerial_bomb = b"\x82SNAPPY\x00" + struct.pack(">iii", 1, 1, len(snappy_bomb)) + snappy_bomb
    with pytest.raises(CorruptRecordsError):
        decompress(CODEC_SNAPPY, xerial_bomb)
    zstd = compress(CODEC_ZSTD, b"a" * 100)
    zstd_bomb = zstd[:4] + bytes([0xE0]) + struct.pack("<Q", 1 << 50) + zstd[6:]
    with pytest.raises(CorruptRecordsError):
        decompress(CODEC_ZSTD, zstd_bomb)
    with pytest.raises(CorruptRecordsError):
        decompress(CODEC_LZ4, b"\x04\x22\x4d\x18" + b"\xff" * 20)
