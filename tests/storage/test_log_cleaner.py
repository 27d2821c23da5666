"""Log compaction keeps the latest record per key at its original offset, handles compressed
batches and tombstones, and lets appends run between its steps."""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import pytest

from kafkalike.protocol.record_batch import HEADER, SimpleRecord, build_batch, iter_batches
from kafkalike.storage import batch_codec
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_cleaner import LogCleaner
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog
from storage_helpers import FakeClock

CFG = LogConfig(segment_bytes=1500, index_interval_bytes=200, cleanup_policy="compact", delete_retention_ms=60_000)


def compressed_batch(records: list[SimpleRecord], codec: int) -> bytearray:
    """A v2 batch whose records part is compressed with `codec` (1 gzip, 2 snappy, 3 lz4, 4 zstd)."""
    plain = build_batch(records)
    body = batch_codec.compress(codec, plain[61:])
    f = list(HEADER.unpack_from(plain))
    out = bytearray(61) + body
    f[1] = len(out) - 12
    f[5] = f[5] | codec
    HEADER.pack_into(out, 0, *f)
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return out


def all_records(log: UnifiedLog) -> list[tuple[int, bytes | None, bytes | None]]:
    data = read_slices(log.read(log.log_start_offset, 10**9))
    out = []
    for b in iter_batches(data):
        assert b.is_valid()
        out += [(r.offset, r.key, r.value) for r in batch_codec.iter_records(b)]
    return out


def fill(log: UnifiedLog, clock: FakeClock, rounds: int = 12,
         codecs: tuple[int, ...] = (0, 1, 2, 3, 4)) -> dict[bytes, tuple[int, bytes | None]]:
    """Write `rounds` batches of 4 keys each; returns key -> (latest offset, value)."""
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    for r in range(rounds):
        recs = [SimpleRecord(value=f"r{r}-k{k}".encode() * 8, key=f"k{(r + k) % 7}".encode(), timestamp=clock.now) for k in range(4)]
        codec = codecs[r % len(codecs)]
        data = compressed_batch(recs, codec) if codec else bytearray(build_batch(recs))
        info = log.append(data)
        for i, rec in enumerate(recs):
            latest[rec.key] = (info.first_offset + i, rec.value)  # type: ignore[index]
        clock.now += 1000
    return latest


def test_compaction_keeps_latest_value_per_key_and_offsets(tmp_path: Path) -> None:
    """After cleaning, each key's latest record survives at its original offset; older ones go."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    before_all = None
    latest = fill(log, clock)
    log.roll()
    before_all = all_records(log)
    log.update_high_watermark(log.log_end_offset)
    leo = log.log_end_offset
    stats = LogCleaner(clock=clock).clean_now(log)
    assert stats.records_retained < stats.records_read
    after = all_records(log)
    assert log.log_end_offset == leo
    assert {k: (o, v) for o, k, v in after} == latest
    assert sorted(o for o, _, _ in after) == sorted(o for o, _ in latest.values())
    original = {o: (k, v) for o, k, v in before_all}
    for o, k, v in after:
        assert original[o] == (k, v)
    # reopening (clean and after a crash) reads the compacted segments and the swapped files
    log.close()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, had_clean_shutdown=False, clock=clock)
    assert all_records(log) == after
    assert not list((tmp_path / "t-0").glob("*.cleaned")) and not list((tmp_path / "t-0").glob("*.swap"))


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_partially_retained_compressed_batch_keeps_its_codec(tmp_path: Path, codec: int) -> None:
    """A compressed batch losing some records is rewritten with the same codec and base offset."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    log.append(compressed_batch([SimpleRecord(b"old-a" * 20, b"a"), SimpleRecord(b"b1" * 20, b"b"), SimpleRecord(b"c1" * 20, b"c")], codec))
    log.append(bytearray(build_batch([SimpleRecord(b"new-a", b"a")])))
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    LogCleaner(clock=clock).clean_now(log)
    data = read_slices(log.read(0, 10**6))
    batches = list(iter_batches(data))
    assert batches[0].compression_codec == codec
    assert (batches[0].base_offset, batches[0].last_offset, batches[0].records_count) == (0, 2, 2)
    assert [(r.offset, r.key) for r in batch_codec.iter_records(batches[0])] == [(1, b"b"), (2, b"c")]


def test_tombstones_kept_for_delete_retention_then_removed(tmp_path: Path) -> None:
    """A tombstone survives cleaning for delete.retention.ms, then a later pass removes it."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    log.append(bytearray(build_batch([SimpleRecord(b"v", b"gone", timestamp=clock.now)])))
    log.append(bytearray(build_batch([SimpleRecord(None, b"gone", timestamp=clock.now)])))
    log.append(bytearray(build_batch([SimpleRecord(b"x", b"stay", timestamp=clock.now)])))
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    cleaner = LogCleaner(clock=clock)
    cleaner.clean_now(log)
    assert [(o, k, v) for o, k, v in all_records(log)] == [(1, b"gone", None), (2, b"stay", b"x")]
    clock.now += 120_000
    log.append(bytearray(build_batch([SimpleRecord(b"y", b"other", timestamp=clock.now)])))
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    stats = cleaner.clean_now(log)
    assert stats.tombstones_dropped == 1
    assert [(o, k) for o, k, _ in all_records(log)] == [(2, b"stay"), (3, b"other")]


def test_appends_and_reads_proceed_between_cleaner_steps(tmp_path: Path) -> None:
    """The cleaner is a generator: appends and reads interleave with its steps and nothing is lost."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    latest = fill(log, clock, rounds=20)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    cleaner = LogCleaner(clock=clock, yield_every_bytes=100)
    steps = cleaner.clean(log)
    appended = 0
    with pytest.raises(StopIteration):
        while True:
            next(steps)
            info = log.append(bytearray(build_batch([SimpleRecord(b"live%d" % appended, b"live", timestamp=clock.now)])))
            latest[b"live"] = (info.first_offset, b"live%d" % appended)
            appended += 1
            assert all_records(log)  # readable mid-clean
    assert appended > 5
    assert {k: (o, v) for o, k, v in all_records(log) if k != b"live" or o == latest[b"live"][0]} == latest


def test_cleaning_aborts_when_log_truncated_meanwhile(tmp_path: Path) -> None:
    """If the segments being cleaned are truncated away mid-pass, the pass aborts and leaves no files."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    fill(log, clock, rounds=20)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    steps = LogCleaner(clock=clock, yield_every_bytes=100).clean(log)
    next(steps)
    log.truncate_to(0)
    with pytest.raises(StopIteration) as stop:
        while True:
            next(steps)
    assert stop.value.value.aborted
    assert not list((tmp_path / "t-0").glob("*.cleaned"))


def test_dirty_ratio_and_needs_cleaning(tmp_path: Path) -> None:
    """needs_cleaning follows min.cleanable.dirty.ratio; a delete-only log never needs cleaning."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    fill(log, clock)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    cleaner = LogCleaner(clock=clock)
    assert cleaner.dirty_ratio(log) == 1.0 and cleaner.needs_cleaning(log)
    cleaner.clean_now(log)
    assert cleaner.dirty_ratio(log) == 0.0 and not cleaner.needs_cleaning(log)
    plain = UnifiedLog.open(tmp_path / "u-0", LogConfig(segment_bytes=1500), clock=clock)
    fill(plain, clock)
    plain.roll()
    plain.update_high_watermark(plain.log_end_offset)
    assert not cleaner.needs_cleaning(plain)


def test_dropped_cleaner_pass_leaves_no_files(tmp_path: Path) -> None:
    """Closing a cleaning pass midway (e.g. broker shutdown) removes its .cleaned file and keeps the log intact."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    fill(log, clock, rounds=20)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    before = all_records(log)
    steps = LogCleaner(clock=clock, yield_every_bytes=100).clean(log)
    next(steps)
    next(steps)
    steps.close()
    assert not list((tmp_path / "t-0").glob("*.cleaned"))
    assert all_records(log) == before


def test_max_compaction_lag_forces_cleaning_below_the_dirty_ratio(tmp_path: Path) -> None:
    """With a dirty ratio under min.cleanable.dirty.ratio, a dirty segment older than max.compaction.lag.ms still triggers cleaning."""
    clock = FakeClock()
    cfg = LogConfig(segment_bytes=1500, cleanup_policy="compact", min_cleanable_dirty_ratio=0.99, max_compaction_lag_ms=60_000)
    log = UnifiedLog.open(tmp_path / "t-0", cfg, clock=clock)
    fill(log, clock)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    cleaner = LogCleaner(clock=clock)
    cleaner.clean_now(log)
    fill(log, clock, rounds=2)
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    assert cleaner.dirty_ratio(log) < 0.99
    assert not cleaner.needs_cleaning(log)
    clock.now += 120_000
    assert cleaner.needs_cleaning(log)
