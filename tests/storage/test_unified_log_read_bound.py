"""UnifiedLog.read with a max_offset (a consumer's high watermark or last stable offset): the
read stops before the batch holding max_offset, across segments, and looks for that batch
only in the segment that can hold it (a consumer at HW == LEO looks up nothing more than its
fetch offset). Real logs on tmp_path; calls counted with a profile hook, never timed."""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

from kafkalike.protocol.record_batch import RecordBatch, SimpleRecord, build_batch
from kafkalike.storage import LogConfig, UnifiedLog
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_segment import LogSegment

SMALL = LogConfig(segment_bytes=1500, index_interval_bytes=200, segment_index_bytes=4096)


def batches_of(data: bytes) -> list[tuple[int, int]]:
    """(base offset, last offset) of every whole batch in ``data`` (a partial last one dropped)."""
    out, pos, view = [], 0, memoryview(data)
    while pos + 61 <= len(data):
        b = RecordBatch(view, pos)
        if b.end_position > len(data):
            break
        out.append((b.base_offset, b.last_offset))
        pos = b.end_position
    return out


def filled(tmp_path: Path) -> tuple[UnifiedLog, list[tuple[int, int]]]:
    """A log of 1- to 3-record batches over several segments; its batches' offset ranges."""
    log = UnifiedLog.open(tmp_path / "bound-0", SMALL)
    written = []
    for i in range(40):
        n = 1 + i % 3
        info = log.append(bytearray(build_batch([SimpleRecord(value=b"x" * 80) for _ in range(n)])), leader_epoch=0)
        written.append((info.first_offset, info.last_offset))
    assert len(log.segments) >= 4
    return log, written


def test_a_bounded_read_returns_the_batches_below_the_batch_holding_max_offset_across_segments(
        tmp_path: Path) -> None:
    log, written = filled(tmp_path)
    try:
        leo = log.log_end_offset
        for fetch in range(0, leo, 3):
            holding = next(b for b in written if b[1] >= fetch)
            for bound in range(fetch, leo + 2, 2):
                got = batches_of(read_slices(log.read(fetch, 1 << 20, bound)))
                expected = [b for b in written if b[1] >= fetch and b[1] < bound and b[0] >= holding[0]]
                if bound > leo:
                    expected = [b for b in written if b[0] >= holding[0]]
                assert got == expected, (fetch, bound)
    finally:
        log.close()


def test_a_consumer_read_at_hw_equal_to_leo_looks_up_only_its_fetch_offset(tmp_path: Path) -> None:
    log, written = filled(tmp_path)
    lookups: list[int] = []
    code = LogSegment.translate_offset.__code__

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is code:
            lookups.append(frame.f_locals["offset"])
    try:
        fetch = written[-3][0]  # in the last segment
        sys.setprofile(hook)
        try:
            up_to_leo = read_slices(log.read(fetch, 1 << 20, log.log_end_offset))
            below = read_slices(log.read(fetch, 1 << 20, written[-1][0]))
        finally:
            sys.setprofile(None)
        assert batches_of(up_to_leo) == written[-3:]
        assert batches_of(below) == written[-3:-1]
        assert lookups == [fetch, written[-1][0], fetch]  # the bound looked up only when below the LEO
    finally:
        log.close()
