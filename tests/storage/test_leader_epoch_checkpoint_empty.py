"""A new partition's leader-epoch-checkpoint is created empty (Kafka's CheckpointFile
constructor), not written with an fsync'd atomic replace; an empty file reads as no entries,
and the first epoch is written in Kafka's text format."""

from __future__ import annotations

from pathlib import Path

from kafkalike.storage import LogConfig, UnifiedLog
from kafkalike.storage.checkpoints import LeaderEpochCheckpointFile


def test_new_log_creates_an_empty_leader_epoch_checkpoint(tmp_path: Path) -> None:
    """Opening a new log leaves a 0-byte checkpoint; reopening reads it as no epochs."""
    log = UnifiedLog.open(tmp_path / "t-0", LogConfig())
    path = tmp_path / "t-0" / "leader-epoch-checkpoint"
    assert path.exists() and path.stat().st_size == 0
    log.close()
    again = UnifiedLog.open(tmp_path / "t-0", LogConfig())
    assert again.leader_epoch_cache.entries == []
    again.close()


def test_empty_checkpoint_file_reads_as_no_entries_and_first_epoch_is_written(tmp_path: Path) -> None:
    """An empty file is [] (Kafka's CheckpointReadBuffer); writing one epoch gives version, count, entry."""
    f = LeaderEpochCheckpointFile(tmp_path / "leader-epoch-checkpoint")
    f.create_empty()
    assert f.read() == []
    f.create_empty()  # existing file left alone
    f.write([(0, 0)])
    assert (tmp_path / "leader-epoch-checkpoint").read_text() == "0\n1\n0 0\n"
    f.create_empty()
    assert f.read() == [(0, 0)]
