"""LogManager.delete_log as Kafka's asyncDelete: the log's dir is renamed to
<topic>-<partition>.<hex>-delete at once and handed out for removal only after
file.delete.delay.ms (log.segment.delete.delay.ms); a restart removes what is left."""

from __future__ import annotations

import re
from pathlib import Path

from kafkalike.storage.checkpoints import TopicPartition
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.log_manager import LogManager

DELAY_MS = 60000


def _manager(root: Path, clock: list[int]) -> LogManager:
    mgr = LogManager([root], LogConfig(file_delete_delay_ms=DELAY_MS), clock=lambda: clock[0])
    mgr.startup()
    return mgr


def test_delete_log_renames_the_dir_at_once_and_removes_it_only_after_the_delay(tmp_path: Path) -> None:
    """delete_log leaves a *-delete dir (the partition's name is free at once); take_due_deletions
    hands it out only when file.delete.delay.ms has passed, and delete_dirs removes it."""
    clock = [1_000_000]
    root = tmp_path / "d"
    mgr = _manager(root, clock)
    tp = TopicPartition("gone", 3)
    mgr.get_or_create_log(tp)
    assert (root / "gone-3").is_dir()

    mgr.delete_log(tp)

    assert not (root / "gone-3").exists()
    renamed = [p for p in root.iterdir() if p.is_dir()]
    assert len(renamed) == 1 and re.fullmatch(r"gone-3\.[0-9a-f]{32}-delete", renamed[0].name), renamed
    assert mgr.get_log(tp) is None
    assert mgr.take_due_deletions() == []
    assert mgr.next_deletion_due_ms() == clock[0] + DELAY_MS
    clock[0] += DELAY_MS - 1
    assert mgr.take_due_deletions() == []
    clock[0] += 1
    due = mgr.take_due_deletions()
    assert due == renamed
    assert renamed[0].is_dir()  # handed out, not removed: the caller removes it (a worker thread)
    assert LogManager.delete_dirs(due) == 1
    assert not renamed[0].exists()
    assert mgr.take_due_deletions() == [] and mgr.next_deletion_due_ms() is None
    mgr.shutdown()


def test_a_restart_removes_dirs_whose_deletion_was_pending(tmp_path: Path) -> None:
    """A *-delete dir still there at shutdown is removed by the next start-up, and the
    partition re-created under the same name starts empty."""
    clock = [5_000]
    root = tmp_path / "d"
    mgr = _manager(root, clock)
    tp = TopicPartition("again", 0)
    mgr.get_or_create_log(tp)
    mgr.delete_log(tp)
    mgr.get_or_create_log(tp)  # the name is free again at once
    mgr.shutdown()
    assert any(p.name.endswith("-delete") for p in root.iterdir())

    mgr2 = _manager(root, clock)
    assert not any(p.name.endswith("-delete") for p in root.iterdir())
    assert mgr2.get_log(tp) is not None and mgr2.get_log(tp).log_end_offset == 0  # type: ignore[union-attr]
    mgr2.shutdown()
