"""A chaos run re-using a report dir whose earlier run was killed (SIGKILL: no clean-up) stops
that run's brokers and ZooKeeper JVMs before deleting the dir (issue 22: ZooKeeper JVMs naming
a deleted cluster dir were left running)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kafkalike.chaos.local import stop_earlier_cluster
from kafkalike.cluster import process

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("java") is None,
                                reason="brokers run with their own gid (root); needs java and zookeeper")


def _processes_naming(path: Path) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            if any(str(path) in arg for arg in process.cmdline(int(entry.name))) and process.is_alive(int(entry.name)):
                out.append(int(entry.name))
    return out


def test_stop_earlier_cluster_stops_what_a_killed_run_left(tmp_path: Path) -> None:
    base = tmp_path / "cluster"
    # a launcher that starts a 3-node ensemble and one broker, then dies without clean-up
    script = (
        "import os, sys; from kafkalike.chaos.local import LocalBackend; "
        f"b = LocalBackend.create({str(base)!r}, brokers=1); b.start(); sys.stdout.flush(); os._exit(0)"
    )
    try:
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120, capture_output=True)
        left = _processes_naming(base)
        assert len(left) == 4  # 3 ZooKeeper JVMs + 1 broker, orphaned
        assert stop_earlier_cluster(base)
        shutil.rmtree(base)
        assert _processes_naming(base) == []
    finally:
        for pid in _processes_naming(base):  # what the launcher started, by pid
            process.stop_pid(pid, timeout=5)


def test_stop_earlier_cluster_on_a_dir_without_cluster_does_nothing(tmp_path: Path) -> None:
    assert stop_earlier_cluster(tmp_path) is False
