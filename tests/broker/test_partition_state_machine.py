"""Partition's leader-side replication state as a hypothesis state machine: appends, follower
fetches at arbitrary (valid) offsets, time passing, ISR shrink and expand, against a model of
the follower LEOs. Invariants: the HW never moves back, never passes the LEO, equals the
smallest LEO in the ISR whenever every ISR follower has fetched, the leader never leaves the
ISR, and acks=all is satisfied exactly when the HW passed the required offset."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kafkalike.broker.partition import Partition
from kafkalike.protocol.leader_and_isr import LeaderAndIsrPartitionState
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from kafkalike.storage import LogConfig, TopicPartition, UnifiedLog

LEADER, FOLLOWERS = 1, (2, 3)
LAG_MS = 1000


class PartitionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="partition-sm-"))
        self.now = 1_000_000
        log = UnifiedLog.open(self.dir / "t-0", LogConfig(), clock=lambda: self.now)
        self.p = Partition(TopicPartition("t", 0), LEADER, log, clock=lambda: self.now)
        self.p.make_leader(LeaderAndIsrPartitionState(
            partition_index=0, controller_epoch=1, leader=LEADER, leader_epoch=0, isr=(1, 2, 3),
            zk_version=0, replicas=(1, 2, 3), adding_replicas=(), removing_replicas=()))
        self.follower_leo = {f: None for f in FOLLOWERS}  # None: has not fetched yet
        self.last_hw = 0
        self.zk_version = 0

    def teardown(self) -> None:
        self.p.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(n=st.integers(1, 5), acks_all=st.booleans())
    def append(self, n: int, acks_all: bool) -> None:
        records = memoryview(bytearray(build_batch([SimpleRecord(value=b"v", timestamp=self.now)] * n)))
        min_isr = 2
        if acks_all and len(self.p.isr) < min_isr:
            return
        info = self.p.append_records_to_leader(records, -1 if acks_all else 1, min_isr)
        done, _ = self.p.check_enough_replicas_reached_offset(info.last_offset + 1, min_isr)
        assert done == (self.p.high_watermark >= info.last_offset + 1)

    @rule(follower=st.sampled_from(FOLLOWERS), data=st.data())
    def follower_fetch(self, follower: int, data: st.DataObject) -> None:
        previous = self.follower_leo[follower] or 0
        offset = data.draw(st.integers(previous, self.p.log_end_offset))  # followers only move forward
        self.p.update_follower_fetch_state(follower, offset, 0, self.p.log_end_offset, self.now)
        self.follower_leo[follower] = offset
        new_isr = self.p.isr_to_expand(follower)
        if new_isr is not None:
            assert follower not in self.p.isr and offset >= self.p.high_watermark
            self.zk_version += 1
            self.p.apply_isr(new_isr, self.zk_version)

    @rule(ms=st.integers(0, 2 * LAG_MS))
    def time_passes(self, ms: int) -> None:
        self.now += ms

    @rule()
    def shrink(self) -> None:
        new_isr = self.p.isr_to_shrink(LAG_MS)
        if new_isr is not None:
            assert LEADER in new_isr and len(new_isr) < len(self.p.isr)
            self.zk_version += 1
            self.p.apply_isr(new_isr, self.zk_version)

    @invariant()
    def hw_rules(self) -> None:
        hw, previous = self.p.high_watermark, self.last_hw
        assert previous <= hw <= self.p.log_end_offset
        self.last_hw = hw
        assert LEADER in self.p.isr
        isr_followers = [f for f in self.p.isr if f != LEADER]
        if all(self.follower_leo[f] is not None for f in isr_followers):
            expected = min([self.p.log_end_offset] + [self.follower_leo[f] for f in isr_followers])
            assert hw == max(expected, previous)
        else:  # a follower that has not fetched since the leader took over holds the HW
            assert hw == previous

    @invariant()
    def statistics_agree(self) -> None:
        s = self.p.statistics()
        assert (s.high_watermark, s.log_end_offset, s.isr) == (self.p.high_watermark, self.p.log_end_offset, self.p.isr)
        assert s.under_replicated == (len(self.p.isr) < 3)


PartitionMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_partition_replication_state = PartitionMachine.TestCase
