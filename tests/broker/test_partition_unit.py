"""Partition built from a real UnifiedLog on tmp_path (no broker, no ZooKeeper), driven with
PartitionState records as either control plane hands them over: become leader, append (with
the header view parsed once by the caller, or parsed here), HW from the followers' fetch
state, become follower."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkalike.broker.partition import Partition, PartitionError, PartitionState
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.leader_and_isr import LeaderAndIsrPartitionState
from kafkalike.protocol.record_batch import RecordBatch, SimpleRecord, build_batch
from kafkalike.storage import LogConfig, TopicPartition, UnifiedLog

TP = TopicPartition("t", 0)


def make_partition(tmp_path: Path, clock: list[int]) -> Partition:
    log = UnifiedLog.open(tmp_path / "t-0", LogConfig(), clock=lambda: clock[0])
    return Partition(TP, 1, log, clock=lambda: clock[0])


def batch(n: int, producer_id: int = -1, sequence: int = -1) -> memoryview:
    return memoryview(bytearray(build_batch([SimpleRecord(value=b"x")] * n, producer_id=producer_id,
                                            producer_epoch=0 if producer_id >= 0 else -1, base_sequence=sequence)))


def test_partition_state_from_a_leader_and_isr_state_keeps_every_field() -> None:
    wire = LeaderAndIsrPartitionState(topic_name="t", partition_index=0, controller_epoch=3, leader=2, leader_epoch=7,
                                      isr=(2, 1), zk_version=11, replicas=(1, 2), adding_replicas=(),
                                      removing_replicas=())
    assert PartitionState.from_leader_and_isr(wire) == PartitionState(
        leader=2, leader_epoch=7, isr=(2, 1), replicas=(1, 2), partition_epoch=11, controller_epoch=3)


def test_a_leader_moves_its_high_watermark_to_the_smallest_isr_fetch_offset(tmp_path: Path) -> None:
    clock = [1_000_000]
    p = make_partition(tmp_path, clock)
    try:
        assert p.make_leader(PartitionState(leader=1, leader_epoch=4, isr=(1, 2, 3), replicas=(1, 2, 3),
                                            partition_epoch=5, controller_epoch=2))
        assert (p.is_leader, p.leader_epoch, p.partition_epoch, p.controller_epoch) == (True, 4, 5, 2)
        records = batch(4)
        info = p.append_records_to_leader(records, 1, 1, RecordBatch(records, 0))
        assert (info.first_offset, info.last_offset) == (0, 3)
        info = p.append_records_to_leader(batch(2), 1, 1)  # the header view parsed here
        assert (info.first_offset, info.last_offset) == (4, 5)
        assert p.log_end_offset == 6 and p.high_watermark == 0

        assert not p.update_follower_fetch_state(2, 6, 0, p.log_end_offset, clock[0])  # 3 has not fetched
        assert p.high_watermark == 0
        assert p.update_follower_fetch_state(3, 4, 0, p.log_end_offset, clock[0])
        assert p.high_watermark == 4
        assert p.update_follower_fetch_state(3, 6, 0, p.log_end_offset, clock[0])
        assert p.high_watermark == 6
    finally:
        p.log.close()


def test_an_idempotent_retry_seen_through_the_callers_header_view_answers_the_first_offsets(tmp_path: Path) -> None:
    from kafkalike.broker.partition import DuplicateBatch

    clock = [1_000_000]
    p = make_partition(tmp_path, clock)
    try:
        p.make_leader(PartitionState(leader=1, leader_epoch=0, isr=(1,), replicas=(1,), partition_epoch=0))
        first = batch(3, producer_id=42, sequence=0)
        p.append_records_to_leader(first, 1, 1, RecordBatch(first, 0))
        retry = batch(3, producer_id=42, sequence=0)
        with pytest.raises(DuplicateBatch) as dup:
            p.append_records_to_leader(retry, 1, 1, RecordBatch(retry, 0))
        assert (dup.value.first_offset, dup.value.last_offset) == (0, 2)
        gap = batch(1, producer_id=42, sequence=7)
        with pytest.raises(PartitionError) as err:
            p.append_records_to_leader(gap, 1, 1, RecordBatch(gap, 0))
        assert err.value.error_code == ErrorCode.out_of_order_sequence_number
    finally:
        p.log.close()


def test_a_leader_that_becomes_follower_forgets_its_followers_and_refuses_appends(tmp_path: Path) -> None:
    clock = [1_000_000]
    p = make_partition(tmp_path, clock)
    try:
        p.make_leader(PartitionState(leader=1, leader_epoch=0, isr=(1, 2), replicas=(1, 2), partition_epoch=0))
        p.append_records_to_leader(batch(1), 1, 1)
        assert set(p.remote_replicas) == {2}
        assert p.make_follower(PartitionState(leader=2, leader_epoch=1, isr=(1, 2), replicas=(1, 2),
                                              partition_epoch=1))
        assert (p.is_leader, p.leader_id, p.leader_epoch, p.remote_replicas) == (False, 2, 1, {})
        with pytest.raises(PartitionError) as err:
            p.append_records_to_leader(batch(1), 1, 1)
        assert err.value.error_code == ErrorCode.not_leader_or_follower
        assert not p.make_follower(PartitionState(leader=2, leader_epoch=2, isr=(2,), replicas=(1, 2),
                                                  partition_epoch=2))  # same leader: no new fetch needed
    finally:
        p.log.close()
