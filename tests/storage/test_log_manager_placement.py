"""LogManager.get_or_create_log placement: new logs go to the online log dir holding the
fewest partitions; with one online dir, creating a log does not walk the existing logs
(that walk made creating N partitions O(N^2): 8,000 partitions RF 1 on one broker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kafkalike.storage.checkpoints import TopicPartition
from kafkalike.storage.log_manager import LogManager


class _WalkCountingDict(dict):  # type: ignore[type-arg]
    """A real dict that counts how often its values or items are walked."""

    walks = 0

    def values(self) -> Any:
        type(self).walks += 1
        return super().values()

    def items(self) -> Any:
        type(self).walks += 1
        return super().items()


def test_single_log_dir_creation_does_not_walk_existing_logs(tmp_path: Path) -> None:
    """With one log dir, get_or_create_log touches no other log (O(1) placement per new log)."""
    mgr = LogManager([tmp_path / "d"])
    mgr.startup()
    try:
        for p in range(5):
            mgr.get_or_create_log(TopicPartition("t", p))
        mgr.logs = _WalkCountingDict(mgr.logs)
        _WalkCountingDict.walks = 0
        lg = mgr.get_or_create_log(TopicPartition("t", 5))
        assert _WalkCountingDict.walks == 0
        assert lg.dir.parent == tmp_path / "d"
        assert len(mgr.logs) == 6
    finally:
        mgr.shutdown()


def test_two_log_dirs_new_logs_go_to_the_emptier_dir(tmp_path: Path) -> None:
    """With two log dirs, new logs alternate to whichever dir holds fewer partitions."""
    a, b = tmp_path / "a", tmp_path / "b"
    mgr = LogManager([a, b])
    mgr.startup()
    try:
        parents = [mgr.get_or_create_log(TopicPartition("t", p)).dir.parent for p in range(4)]
        assert parents.count(a) == 2 and parents.count(b) == 2
    finally:
        mgr.shutdown()
