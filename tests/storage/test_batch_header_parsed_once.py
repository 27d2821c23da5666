"""Issue 16: each batch's 61-byte header is parsed once between the socket and the file.

Along a real produce path (ReplicaManager's validateRecords -> Partition.append_records_to_leader
-> UnifiedLog.append on a real log on tmp_path) and a real follower append (the leader's stored
bytes -> Partition.append_records_to_follower), every header read is counted: every module of
kafkalike that holds the 61-byte header struct (record_batch.HEADER, also what RecordBatch's
constructor unpacks with) gets a counting stand-in for it. A second read anywhere on the path
(the log's offset walk, the record walk, the producer state) fails the count.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crc32c
import pytest

from kafkalike.broker.partition import Partition, PartitionState
from kafkalike.broker.replica_manager import _validate_produce_records
from kafkalike.protocol import record_batch
from kafkalike.protocol.record_batch import RecordBatch, SimpleRecord, build_batch, iter_batches
from kafkalike.storage import LogConfig, TopicPartition, UnifiedLog, batch_codec
from kafkalike.storage.file_records import read_slices

TP = TopicPartition("t", 0)


class _CountingStruct:
    """Stands in for a struct.Struct; counts the unpack calls (one per header read)."""

    def __init__(self, wrapped: struct.Struct) -> None:
        self.wrapped = wrapped
        self.size = wrapped.size
        self.format = wrapped.format
        self.reads = 0

    def unpack_from(self, buffer: Any, offset: int = 0) -> tuple[Any, ...]:
        self.reads += 1
        return self.wrapped.unpack_from(buffer, offset)

    def unpack(self, buffer: Any) -> tuple[Any, ...]:
        self.reads += 1
        return self.wrapped.unpack(buffer)

    def pack(self, *values: Any) -> bytes:
        return self.wrapped.pack(*values)

    def pack_into(self, buffer: Any, offset: int, *values: Any) -> None:
        self.wrapped.pack_into(buffer, offset, *values)


def _header_structs() -> list[struct.Struct]:
    """Every struct in record_batch that reads a whole batch header (61 bytes from baseOffset,
    or the 53 bytes from batchLength on)."""
    return [v for v in vars(record_batch).values()
            if isinstance(v, struct.Struct) and v.size in (record_batch.HEADER_SIZE,
                                                            record_batch.HEADER_SIZE - record_batch.BATCH_LENGTH_AT)]


@pytest.fixture
def header_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[_CountingStruct]]:
    counters: dict[int, _CountingStruct] = {}
    for s in _header_structs():
        counters[id(s)] = _CountingStruct(s)
    assert counters, "record_batch has no header struct"
    for name, module in list(sys.modules.items()):
        if not name.startswith("kafkalike") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, struct.Struct) and id(value) in counters:
                monkeypatch.setattr(module, attr, counters[id(value)])
    yield list(counters.values())


def _reads(counters: list[_CountingStruct]) -> int:
    return sum(c.reads for c in counters)


def _reset(counters: list[_CountingStruct]) -> None:
    for c in counters:
        c.reads = 0


def _gzip(plain: bytes) -> bytes:
    """The same batch with its records part gzip-compressed (codec 1), CRC recomputed."""
    f = list(record_batch.HEADER.unpack_from(plain))
    out = bytearray(61) + batch_codec.compress(1, plain[61:])
    f[1] = len(out) - 12
    f[5] |= 1
    record_batch.HEADER.pack_into(out, 0, *f)
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)


def _leader(tmp_path: Path, name: str, config: LogConfig) -> Partition:
    log = UnifiedLog.open(tmp_path / name, config, clock=lambda: 1_000_000)
    p = Partition(TP, 1, log, clock=lambda: 1_000_000)
    p.make_leader(PartitionState(leader=1, leader_epoch=3, isr=(1,), replicas=(1, 2), partition_epoch=1,
                                 controller_epoch=1))
    return p


def _follower(tmp_path: Path, name: str) -> Partition:
    log = UnifiedLog.open(tmp_path / name, LogConfig(), clock=lambda: 1_000_000)
    p = Partition(TP, 2, log, clock=lambda: 1_000_000)
    p.make_follower(PartitionState(leader=1, leader_epoch=3, isr=(1,), replicas=(1, 2), partition_epoch=1,
                                   controller_epoch=1))
    return p


def _produce(p: Partition, records: memoryview) -> int:
    batch = _validate_produce_records(records)  # what ReplicaManager.append_records does per partition
    assert isinstance(batch, RecordBatch)
    return p.append_records_to_leader(records, 1, 1, batch).first_offset


@pytest.mark.parametrize("kind", ["plain", "idempotent", "transactional", "log_append_time", "compressed"])
def test_a_produced_batch_header_is_parsed_once_from_validate_records_to_the_file(
        tmp_path: Path, header_reads: list[_CountingStruct], kind: str) -> None:
    config = LogConfig(message_timestamp_type="LogAppendTime") if kind == "log_append_time" else LogConfig()
    p = _leader(tmp_path, "t-0", config)
    try:
        idempotent = kind in ("idempotent", "transactional")
        for i in range(3):
            raw = build_batch([SimpleRecord(key=b"k", value=b"v%d" % j) for j in range(4)],
                              producer_id=7 if idempotent else -1, producer_epoch=0 if idempotent else -1,
                              base_sequence=4 * i if idempotent else -1, transactional=kind == "transactional")
            if kind == "compressed":
                raw = _gzip(raw)
            _reset(header_reads)
            first = _produce(p, memoryview(bytearray(raw)))
            assert first == 4 * i
            assert _reads(header_reads) == 1, f"batch {i}: header read {_reads(header_reads)} times"
        if idempotent:
            assert p.producer_state.producers[7].batches[-1].last_seq == 11
        stored = [(b.base_offset, b.partition_leader_epoch, b.records_count) for b in iter_batches(
            read_slices(p.log.read(0, 1 << 20)))]
        assert stored == [(0, 3, 4), (4, 3, 4), (8, 3, 4)]
    finally:
        p.log.close()


def test_a_follower_append_parses_each_replicated_batch_header_once(
        tmp_path: Path, header_reads: list[_CountingStruct]) -> None:
    leader = _leader(tmp_path, "leader", LogConfig())
    follower = _follower(tmp_path, "follower")
    try:
        for i in range(4):
            _produce(leader, memoryview(bytearray(build_batch(
                [SimpleRecord(value=b"x")] * 2, producer_id=9, producer_epoch=0, base_sequence=2 * i))))
        fetched = read_slices(leader.log.read(0, 1 << 20))  # what the replica fetcher receives
        _reset(header_reads)
        info = follower.append_records_to_follower(memoryview(fetched), leader.high_watermark)
        assert info is not None and (info.first_offset, info.last_offset) == (0, 7)
        assert _reads(header_reads) == 4, f"4 batches, headers read {_reads(header_reads)} times"
        assert follower.producer_state.producers[9].batches[-1].last_seq == 7
    finally:
        leader.log.close()
        follower.log.close()
