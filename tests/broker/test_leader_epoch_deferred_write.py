"""A new leader's epoch is recorded in memory by make_leader and written to the
leader-epoch-checkpoint in one batch off the event loop (or by close); the first append at that
epoch writes it first, so no record of the epoch is acknowledged before the epoch is on disk."""

from __future__ import annotations

from pathlib import Path

from kafkalike.broker.partition import Partition
from kafkalike.protocol.leader_and_isr import LeaderAndIsrPartitionState
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from kafkalike.storage import LogConfig, TopicPartition, UnifiedLog
from kafkalike.storage.checkpoints import LeaderEpochCheckpointFile
from kafkalike.storage.leader_epoch_file_cache import flush_leader_epoch_caches


def _leader(tmp_path: Path, epoch: int) -> Partition:
    log = UnifiedLog.open(tmp_path / "t-0", LogConfig())
    p = Partition(TopicPartition("t", 0), 1, log)
    p.make_leader(LeaderAndIsrPartitionState(
        partition_index=0, controller_epoch=1, leader=1, leader_epoch=epoch, isr=(1,),
        zk_version=0, replicas=(1,), adding_replicas=(), removing_replicas=()))
    return p


def _on_disk(tmp_path: Path) -> list[tuple[int, int]]:
    return LeaderEpochCheckpointFile(tmp_path / "t-0" / "leader-epoch-checkpoint").read()


def test_the_first_append_of_a_new_leader_writes_its_epoch_before_the_records(tmp_path: Path) -> None:
    """make_leader leaves epoch 4 in memory only (no fsync on the LeaderAndIsr path); the first
    produce writes it to the checkpoint before appending."""
    p = _leader(tmp_path, 4)
    assert p.log.leader_epoch_cache.entries == [(4, 0)]
    assert p.log.leader_epoch_cache.dirty and _on_disk(tmp_path) == []
    records = memoryview(bytearray(build_batch([SimpleRecord(value=b"v", timestamp=1)] * 3)))
    p.append_records_to_leader(records, 1, 1)
    assert _on_disk(tmp_path) == [(4, 0)] and not p.log.leader_epoch_cache.dirty
    p.log.close()


def test_batched_write_and_close_put_a_deferred_epoch_on_disk(tmp_path: Path) -> None:
    """flush_leader_epoch_caches (what the broker runs in a worker thread) writes it; a change
    made after it is written again at close."""
    p = _leader(tmp_path, 2)
    assert flush_leader_epoch_caches([p.log.leader_epoch_cache]) == []
    assert _on_disk(tmp_path) == [(2, 0)] and not p.log.leader_epoch_cache.dirty
    p.log.leader_epoch_cache.assign(3, 0, flush=False)
    p.log.close()
    assert _on_disk(tmp_path) == [(3, 0)]
