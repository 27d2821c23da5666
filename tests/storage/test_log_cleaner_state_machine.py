"""A hypothesis state machine checks compaction against a model: offsets and contents never change,
every key's latest record survives, and appends/reopens interleave with cleaner steps."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kafkalike.protocol.record_batch import SimpleRecord, build_batch, iter_batches
from kafkalike.storage import batch_codec
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_cleaner import LogCleaner
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog
from storage_helpers import FakeClock

CONFIG = LogConfig(segment_bytes=700, index_interval_bytes=100, cleanup_policy="compact", delete_retention_ms=5_000)
KEYS = [b"a", b"b", b"c", b"d"]


class CompactionMachine(RuleBasedStateMachine):
    """Model: offset -> (key, value) of everything ever appended; the log must be a subset of it
    that still holds each key's latest record (tombstones may expire)."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="kl-cl-"))
        self.dir = self.tmp / "c-0"
        self.clock = FakeClock()
        self.log = UnifiedLog.open(self.dir, CONFIG, clock=self.clock)
        self.cleaner = LogCleaner(clock=self.clock, yield_every_bytes=150)
        self.steps = None  # a pass in progress
        self.model: dict[int, tuple[bytes, bytes | None]] = {}
        self.latest: dict[bytes, int] = {}

    def teardown(self) -> None:
        if self.steps is not None:
            self.steps.close()
        self.log.close_handlers()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4), tombstone=st.booleans(), codec=st.sampled_from([0, 1, 3, 4]))
    def append(self, keys: list[bytes], tombstone: bool, codec: int) -> None:
        recs = [SimpleRecord(None if tombstone and i == 0 else os.urandom(20), k, timestamp=self.clock.now) for i, k in enumerate(keys)]
        data = bytearray(build_batch(recs))
        if codec:
            from kafkalike.protocol.record_batch import HEADER
            import crc32c
            import struct

            body = batch_codec.compress(codec, bytes(data[61:]))
            f = list(HEADER.unpack_from(data))
            data = bytearray(61) + body
            f[1], f[5] = len(data) - 12, f[5] | codec
            HEADER.pack_into(data, 0, *f)
            struct.pack_into(">I", data, 17, crc32c.crc32c(bytes(data[21:])))
        info = self.log.append(data)
        for i, r in enumerate(recs):
            self.model[info.first_offset + i] = (r.key, r.value)  # type: ignore[assignment]
            self.latest[r.key] = info.first_offset + i  # type: ignore[index]
        self.clock.now += 500

    @rule()
    def advance_high_watermark(self) -> None:
        self.log.update_high_watermark(self.log.log_end_offset)

    @rule(data=st.data())
    def truncate_above_high_watermark(self, data: st.DataObject) -> None:
        """Followers only ever truncate uncommitted data, i.e. at or above the high watermark."""
        hw, leo = self.log.high_watermark, self.log.log_end_offset
        if hw >= leo:
            return
        target = data.draw(st.integers(hw, leo))
        self.log.truncate_to(target)
        end = self.log.log_end_offset
        assert end >= hw
        self.model = {o: kv for o, kv in self.model.items() if o < end}
        self.latest = {}
        for o in sorted(self.model):
            self.latest[self.model[o][0]] = o

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule(n=st.integers(1, 6))
    def clean_steps(self, n: int) -> None:
        if self.steps is None:
            self.steps = self.cleaner.clean(self.log)
        for _ in range(n):
            try:
                next(self.steps)
            except StopIteration as stop:
                self.steps = None
                self._check_pass_removed_superseded(stop.value)
                return

    def _check_pass_removed_superseded(self, stats) -> None:  # type: ignore[no-untyped-def]
        """After a completed pass, no record below its end offset has a later same-key record below it."""
        if stats.aborted or stats.end_offset <= 0:
            return
        data = read_slices(self.log.read(self.log.log_start_offset, 10**9))
        for b in iter_batches(data):
            for r in batch_codec.iter_records(b):
                if r.offset >= stats.end_offset:
                    continue
                later = [o for o, (k, _) in self.model.items() if k == r.key and r.offset < o < stats.end_offset]
                assert not later, f"record {r.offset} ({r.key!r}) superseded by {later} survived the pass"

    @rule(advance=st.integers(0, 10_000))
    def advance_clock(self, advance: int) -> None:
        self.clock.now += advance

    @precondition(lambda self: self.steps is None)
    @rule(clean=st.booleans())
    def reopen(self, clean: bool) -> None:
        hw = self.log.high_watermark
        if clean:
            self.log.close()
        else:
            self.log.close_handlers()
        self.log = UnifiedLog.open(self.dir, CONFIG, had_clean_shutdown=clean, clock=self.clock)
        self.log.update_high_watermark(hw)

    @invariant()
    def log_is_a_compaction_of_the_model(self) -> None:
        assert self.log.log_end_offset == (max(self.model) + 1 if self.model else 0)
        data = read_slices(self.log.read(0, 10**9)) if self.model else b""
        seen: dict[int, tuple[bytes | None, bytes | None]] = {}
        last = -1
        for b in iter_batches(data):
            assert b.base_offset > last
            for r in batch_codec.iter_records(b):
                assert r.offset > last
                last = r.offset
                seen[r.offset] = (r.key, r.value)
            last = max(last, b.last_offset)
        for off, kv in seen.items():
            assert self.model[off] == kv, f"offset {off} changed"
        for key, off in self.latest.items():
            if self.model[off][1] is not None:
                assert off in seen, f"latest record of {key!r} at {off} lost"
        assert not list(self.dir.glob("*.swap"))


TestCompactionStateMachine = CompactionMachine.TestCase
TestCompactionStateMachine.settings = settings(max_examples=int(os.environ.get("SM_EXAMPLES", 30)), stateful_step_count=30, deadline=None)
