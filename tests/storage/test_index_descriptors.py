"""Index files hold no descriptor: one per segment's .log only (docs/storage.md, "Descriptors per partition").

Also what that design must not lose: index entries written at flush, roll and close in Kafka's
formats, preallocation while active, a rebuilt index after a crash between flushes, and a
bounded cache of read-only indexes.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from kafkalike.protocol.record_batch import iter_batches
from kafkalike.storage import abstract_index
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog
from storage_helpers import batch

SMALL = LogConfig(segment_bytes=2048, index_interval_bytes=100, segment_index_bytes=4096)


def _fd_targets() -> list[str]:
    """What every open descriptor of this process points at."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the listdir's own descriptor, already closed
            pass
    return out


def _offsets(log: UnifiedLog, start: int) -> list[int]:
    data = read_slices(log.read(start, 10**9))
    return [o for b in iter_batches(data) for o in range(b.base_offset, b.last_offset + 1)]


def test_open_partitions_hold_one_descriptor_each(tmp_path: Path) -> None:
    """200 partitions with indexed data, read and flushed, add at most one descriptor each (the active .log), before and after a reopen."""
    n = 200
    before = len(os.listdir("/proc/self/fd"))
    logs = [UnifiedLog.open(tmp_path / f"t-{p}", LogConfig(index_interval_bytes=100)) for p in range(n)]
    for lg in logs:
        for _ in range(5):
            lg.append(batch(3, value=b"x" * 80))
        assert _offsets(lg, 4) == list(range(3, 15))
        lg.flush()
    assert logs[0].active_segment.offset_index.entries >= 3
    assert len(os.listdir("/proc/self/fd")) - before <= n + 2
    for lg in logs:
        lg.close()
    logs = [UnifiedLog.open(tmp_path / f"t-{p}", LogConfig(index_interval_bytes=100)) for p in range(n)]
    for lg in logs:
        assert lg.offset_for_timestamp(1_700_000_000_000).offset == 0
        assert _offsets(lg, 7) == list(range(6, 15))
    assert len(os.listdir("/proc/self/fd")) - before <= n + 2
    assert not [t for t in _fd_targets() if t.endswith((".index", ".timeindex"))]
    for lg in logs:
        lg.close()


def test_no_descriptor_points_at_an_index_across_rolls_reads_and_recovery(tmp_path: Path) -> None:
    """Rolled segments, lookups in every one of them, flushes and an unclean reopen leave no descriptor on any index file."""
    d = tmp_path / "t-0"
    log = UnifiedLog.open(d, SMALL)
    for i in range(60):
        log.append(batch(2, value=b"y" * 60, ts=1000 + i))
    segments = len(log.segments)
    assert segments > 5
    for off in range(0, 120, 7):
        assert _offsets(log, off)[0] <= off
    assert log.offset_for_timestamp(1030).offset == 60
    log.flush()
    assert not [t for t in _fd_targets() if t.endswith((".index", ".timeindex"))]
    held = [t for t in _fd_targets() if t.startswith(str(d))]
    assert len(held) <= segments  # one .log per segment, nothing else
    log.close_handlers()
    log = UnifiedLog.open(d, SMALL, had_clean_shutdown=False)
    assert _offsets(log, 0) == list(range(120))
    assert not [t for t in _fd_targets() if t.endswith((".index", ".timeindex"))]
    log.close()


def test_active_index_is_preallocated_then_written_at_flush_and_trimmed_at_close(tmp_path: Path) -> None:
    """While active the index files have segment.index.bytes (whole entries); a flush writes the entries in Kafka's format; close trims."""
    d = tmp_path / "t-0"
    cfg = LogConfig(index_interval_bytes=100, segment_index_bytes=4100)
    log = UnifiedLog.open(d, cfg)
    idx, tidx = d / "00000000000000000000.index", d / "00000000000000000000.timeindex"
    assert idx.stat().st_size == 4096 and tidx.stat().st_size == 4092
    for i in range(6):
        log.append(batch(2, value=b"z" * 80, ts=5000 + i))
    entries = log.active_segment.offset_index.entries
    assert entries == 5
    log.flush()
    assert idx.stat().st_size == 4096
    raw = idx.read_bytes()
    assert [struct.unpack_from(">ii", raw, 8 * i)[0] for i in range(entries)] == [3, 5, 7, 9, 11]
    assert raw[8 * entries :] == bytes(4096 - 8 * entries)
    traw = tidx.read_bytes()
    assert struct.unpack_from(">qi", traw, 0) == (5001, 3)
    log.close()
    assert idx.stat().st_size == 8 * entries
    assert tidx.stat().st_size == 12 * (log.segments[0].time_index.entries)
    assert idx.read_bytes() == raw[: 8 * entries]


def test_crash_between_flushes_rebuilds_the_unwritten_index_entries(tmp_path: Path) -> None:
    """Entries appended after the last flush exist only in memory; after a crash the loader rebuilds them byte for byte."""
    d, ref = tmp_path / "crash" / "t-0", tmp_path / "ref" / "t-0"
    for where in (d, ref):
        log = UnifiedLog.open(where, SMALL)
        for i in range(25):
            log.append(batch(2, value=b"w" * 60, ts=2000 + i))
        log.flush()
        for i in range(25, 31):
            log.append(batch(1, value=b"w" * 90, ts=2000 + i))
        if where == d:
            active = log.active_segment
            assert active.offset_index.entries > 0
            log.close_handlers()  # kill -9: the newest index entries were never written
        else:
            log.close()
    log = UnifiedLog.open(d, SMALL, had_clean_shutdown=False)
    assert log.last_recovery is not None and log.last_recovery.segments_recovered >= 1
    log.close()
    for name in sorted(os.listdir(ref)):
        if name.endswith((".log", ".index", ".timeindex")):
            assert (d / name).read_bytes() == (ref / name).read_bytes(), name


def test_read_only_index_cache_stays_within_its_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny budget, lookups over many inactive segments evict older indexes and still find every offset."""
    monkeypatch.setattr(abstract_index, "READ_ONLY_CACHE_BYTES", 64)
    log = UnifiedLog.open(tmp_path / "t-0", SMALL)
    for _ in range(60):
        log.append(batch(2, value=b"c" * 60))
    log.roll()
    for _ in range(2):
        for off in range(0, 120, 3):
            assert _offsets(log, off)[0] in (off, off - 1)
            largest = max(len(s.offset_index._buf) + len(s.time_index._buf) for s in log.segments)
            assert abstract_index.read_only_cache_bytes() <= 64 + largest
    indexes = {id(i) for s in log.segments for i in (s.offset_index, s.time_index)}
    log.close()
    assert not indexes & set(abstract_index._read_only_cache)  # closing releases them
