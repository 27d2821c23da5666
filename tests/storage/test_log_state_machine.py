"""A hypothesis state machine drives UnifiedLog (append/read/roll/truncate/retention/close/reopen/crash) against an in-memory model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kafkalike.protocol.record_batch import SimpleRecord, build_batch, iter_batches, valid_prefix_length
from kafkalike.storage.errors import OffsetOutOfRangeError
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog
from storage_helpers import FakeClock

CONFIG = LogConfig(segment_bytes=900, index_interval_bytes=150, segment_index_bytes=96, retention_ms=10_000, retention_bytes=-1)


class LogMachine(RuleBasedStateMachine):
    """Model: ordered list of (base offset, last offset, stored bytes), log start offset, high watermark."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="kl-sm-"))
        self.dir = self.tmp / "t-0"
        self.clock = FakeClock()
        self.log = UnifiedLog.open(self.dir, CONFIG, clock=self.clock)
        self.batches: list[tuple[int, int, bytes]] = []
        self.start = 0
        self.epoch = 0

    @property
    def leo(self) -> int:
        return self.batches[-1][1] + 1 if self.batches else self.start

    def teardown(self) -> None:
        self.log.close_handlers()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _checkpointed_reopen(self, clean: bool) -> None:
        rp, start, hw = self.log.recovery_point, self.log.log_start_offset, self.log.high_watermark
        if clean:
            self.log.close()
        else:
            self.log.close_handlers()
        self.log = UnifiedLog.open(self.dir, CONFIG, recovery_point=rp, log_start_offset=start, had_clean_shutdown=clean, clock=self.clock)
        self.log.update_high_watermark(hw)

    @rule(n=st.integers(1, 5), size=st.integers(0, 120), epoch_bump=st.booleans())
    def append(self, n: int, size: int, epoch_bump: bool) -> None:
        if epoch_bump:
            self.epoch += 1
        data = bytearray(build_batch([SimpleRecord(bytes([n]) * size, b"k", timestamp=self.clock.now)] * n))
        info = self.log.append(data, leader_epoch=self.epoch)
        assert info.first_offset == self.leo
        self.batches.append((info.first_offset, info.last_offset, bytes(data)))
        self.clock.now += 100

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, self.leo))
        max_bytes = data.draw(st.integers(1, 2000))
        slices = self.log.read(offset, max_bytes)
        got = read_slices(slices)
        expected = [b for b in self.batches if b[1] >= offset]
        if not expected:
            assert got == b""
            return
        assert len(got) <= max(max_bytes, len(expected[0][2]))
        end, _ = valid_prefix_length(got)
        whole = [bytes(b.view()) for b in iter_batches(got[:end])]
        assert whole, "the first batch is always returned whole"
        assert whole == [b[2] for b in expected[: len(whole)]]
        assert got[end:] == b"".join(b[2] for b in expected[len(whole) :])[: len(got) - end]

    @rule(data=st.data())
    def read_out_of_range(self, data: st.DataObject) -> None:
        offset = data.draw(st.one_of(st.integers(self.leo + 1, self.leo + 100),
                                     st.integers(-5, self.start - 1) if self.start > 0 else st.just(self.leo + 1)))
        try:
            self.log.read(offset, 100)
        except OffsetOutOfRangeError:
            return
        raise AssertionError(f"read({offset}) outside [{self.start}, {self.leo}] did not raise")

    @precondition(lambda self: self.batches)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        target = data.draw(st.integers(self.start, self.leo))
        self.log.truncate_to(target)
        self.batches = [b for b in self.batches if b[1] < target]
        # a batch holding the target goes whole, so the LEO is the model's (checked by the invariant)
        self.start = min(self.start, self.log.log_start_offset)

    @rule(data=st.data())
    def delete_records(self, data: st.DataObject) -> None:
        self.log.update_high_watermark(self.leo)
        target = data.draw(st.integers(self.start, self.leo))
        assert self.log.delete_records_before(target) == max(target, self.start)
        self.start = max(target, self.start)
        self.batches = [b for b in self.batches if b[1] >= self.start]

    @rule(advance=st.integers(0, 20_000))
    def retention(self, advance: int) -> None:
        self.clock.now += advance
        self.log.update_high_watermark(self.leo)
        self.log.delete_old_segments()
        new_start = self.log.log_start_offset
        assert new_start >= self.start
        assert any(b[0] == new_start for b in self.batches) or new_start == self.leo or new_start == self.start
        self.start = new_start
        self.batches = [b for b in self.batches if b[1] >= self.start]

    @rule()
    def reopen_clean(self) -> None:
        self._checkpointed_reopen(clean=True)

    @rule()
    def reopen_after_crash(self) -> None:
        self._checkpointed_reopen(clean=False)

    @invariant()
    def offsets_match(self) -> None:
        assert self.log.log_end_offset == self.leo
        assert self.log.log_start_offset == self.start
        assert self.log.segments[-1] is self.log.active_segment


TestLogStateMachine = LogMachine.TestCase
TestLogStateMachine.settings = settings(max_examples=int(__import__("os").environ.get("SM_EXAMPLES", 40)),
                                       stateful_step_count=30, deadline=None)
