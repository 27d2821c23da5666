"""Index files are readable on disk at all times, as Kafka's memory-mapped ones are (docs/storage.md, "Indexes on disk").

Each test reads the .index / .timeindex files of an open log through a separate file handle, as
kafka-dump-log.sh or another process would, without any flush, roll or close in between.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from kafkalike.storage import abstract_index
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog
from storage_helpers import batch

CFG = LogConfig(index_interval_bytes=100, segment_index_bytes=4096)


def _file_entries(path: Path, fmt: str) -> list[tuple[int, ...]]:
    """Entries of an index file read from disk, up to the first all-zero slot (the preallocated tail)."""
    raw = path.read_bytes()
    size = struct.calcsize(fmt)
    out = []
    for pos in range(0, len(raw) - size + 1, size):
        if raw[pos : pos + size] == bytes(size):
            break
        out.append(struct.unpack_from(fmt, raw, pos))
    return out


def test_live_segment_index_files_hold_every_entry_without_flush(tmp_path: Path) -> None:
    """Entries appended to the active segment are in its .index and .timeindex files at once, in Kafka's format."""
    d = tmp_path / "t-0"
    log = UnifiedLog.open(d, CFG)
    try:
        for i in range(40):
            log.append(batch(2, value=b"x" * 80, ts=7000 + i))
            seg = log.active_segment
            oi, ti = seg.offset_index, seg.time_index
            want_oi = [(oi.entry(s)[0] - oi.base_offset, oi.entry(s)[1]) for s in range(oi.entries)]
            want_ti = [(ti.entry(s)[0], ti.entry(s)[1] - ti.base_offset) for s in range(ti.entries)]
            assert _file_entries(oi.path, ">ii") == want_oi
            assert _file_entries(ti.path, ">qi") == want_ti
        assert len(want_oi) > 30 and len(want_ti) > 30
        assert oi.path.stat().st_size == 4096  # still preallocated while active, as Kafka's
    finally:
        log.close()


def test_truncated_index_entries_are_zeroed_in_the_file(tmp_path: Path) -> None:
    """After a truncation the file holds only the surviving entries; new appends follow them."""
    d = tmp_path / "t-0"
    log = UnifiedLog.open(d, CFG)
    try:
        for i in range(20):
            log.append(batch(2, value=b"y" * 80, ts=9000 + i))
        oi = log.active_segment.offset_index
        before = _file_entries(oi.path, ">ii")
        assert len(before) == 19
        log.truncate_to(21)
        kept = oi.entries
        assert kept < len(before)
        assert _file_entries(oi.path, ">ii") == before[:kept]
        assert _file_entries(log.active_segment.time_index.path, ">qi") == [
            (ts, off - oi.base_offset) for ts, off in map(log.active_segment.time_index.entry, range(log.active_segment.time_index.entries))
        ]
        log.append(batch(2, value=b"y" * 80, ts=9100))
        log.append(batch(2, value=b"y" * 80, ts=9101))
        after = _file_entries(oi.path, ">ii")
        assert after[:kept] == before[:kept] and len(after) == oi.entries > kept
    finally:
        log.close()


def test_rolled_segments_and_rebuilt_indexes_are_on_disk(tmp_path: Path) -> None:
    """Indexes rebuilt by recovery after a crash are in the files before any flush, and rolled segments keep theirs trimmed."""
    d = tmp_path / "t-0"
    cfg = LogConfig(segment_bytes=3000, index_interval_bytes=100, segment_index_bytes=4096)
    log = UnifiedLog.open(d, cfg)
    for i in range(60):
        log.append(batch(2, value=b"z" * 80, ts=3000 + i))
    assert len(log.segments) > 2
    log.close_handlers()  # a crash: nothing flushed, nothing trimmed
    log = UnifiedLog.open(d, cfg, had_clean_shutdown=False)
    try:
        for seg in log.segments:
            oi = seg.offset_index
            assert oi.entries > 0
            assert _file_entries(oi.path, ">ii") == [(oi.entry(s)[0] - oi.base_offset, oi.entry(s)[1]) for s in range(oi.entries)]
            if seg is not log.active_segment:
                assert oi.path.stat().st_size == 8 * oi.entries
    finally:
        log.close()


def test_write_through_descriptors_stay_bounded_and_are_released_at_flush(tmp_path: Path) -> None:
    """Writing through the indexes of 150 partitions holds at most WRITE_DESCRIPTORS descriptors, none after a flush of each."""
    logs = [UnifiedLog.open(tmp_path / f"t-{p}", CFG) for p in range(150)]
    try:
        for lg in logs:
            for i in range(4):
                lg.append(batch(2, value=b"w" * 80, ts=1000 + i))
        assert 0 < abstract_index.write_descriptors() <= abstract_index.WRITE_DESCRIPTORS
        for lg in logs:
            oi = lg.active_segment.offset_index
            assert len(_file_entries(oi.path, ">ii")) == oi.entries == 3
            lg.flush()
        assert abstract_index.write_descriptors() == 0
    finally:
        for lg in logs:
            lg.close()


def test_index_write_failing_on_a_full_disk_does_not_fail_the_append(tmp_path: Path) -> None:
    """On a full tmpfs the .log append fits its page but the index entry's hole cannot be filled: the append still
    succeeds, and the entry reaches the file once there is room."""
    from test_log_disk_full import tmpfs

    from kafkalike.protocol.record_batch import iter_batches
    from kafkalike.storage.file_records import read_slices

    with tmpfs(tmp_path / "fs", "256k") as fs:
        log = UnifiedLog.open(fs / "t-0", LogConfig(index_interval_bytes=100, segment_index_bytes=1 << 20))
        try:
            log.append(batch(2, value=b"a" * 80))  # the .log's first page; no index entry yet
            filler = fs / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            try:  # take every free page
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
            for i in range(3):  # each fits the .log's page, each adds an index entry in a hole
                log.append(batch(2, value=b"b" * 80, ts=1_700_000_000_100 + i))
            assert log.log_end_offset == 8
            data = read_slices(log.read(0, 1 << 20))
            assert [b.base_offset for b in iter_batches(data)] == [0, 2, 4, 6]
            oi = log.active_segment.offset_index
            assert oi.entries == 3 and _file_entries(oi.path, ">ii") == []
            filler.unlink()
            log.flush()
            assert _file_entries(oi.path, ">ii") == [(oi.entry(s)[0], oi.entry(s)[1]) for s in range(3)]
        finally:
            log.close_handlers()


async def test_live_broker_index_file_holds_entries_while_it_runs(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A running broker's active segment .index, read from disk while it serves, holds an entry per log.index.interval.bytes."""
    from kafkalike.protocol.api_keys import ApiKey
    from tests.broker.broker_helpers import batch as records, connect, produce, running_broker

    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False, topics=[
            {"name": "live", "num_partitions": 1, "replication_factor": 1, "assignments": [], "configs": []}])
        assert resp.topics[0].error_code == 0
        import trio
        from kafkalike.storage import TopicPartition
        with trio.fail_after(20):
            while TopicPartition("live", 0) not in server.replica_manager.partitions:
                await trio.sleep(0.02)
        for i in range(12):
            assert (await produce(conn, "live", 0, records([b"r" * 1000]), acks=1)).error_code == 0
        index = tmp_path / "logs-1" / "live-0" / "00000000000000000000.index"
        on_disk = _file_entries(index, ">ii")
        oi = server.log_manager.get_log(TopicPartition("live", 0)).active_segment.offset_index
        assert len(on_disk) == oi.entries >= 2
        assert on_disk == [(oi.entry(s)[0], oi.entry(s)[1]) for s in range(oi.entries)]
