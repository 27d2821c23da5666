"""``kafkalike chaos run --mode kraft``: the chaos runner on a KRaft cluster (3 controllers + 3
brokers, kafkalike.chaos.kraft_backend).

The default run checks only the CLI's choice (no processes); KAFKALIKE_SLOW runs the leader-kill
scenario end to end (kill -9 of partition 0's leader, fenced after broker.session.timeout.ms, restarted)
and a quorum-leader kill through the backend, and wants the checker's verdict VALID. Needs root and
iptables (each node runs with its own gid), as the local backend does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.raft.raft_helpers import REPO

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("iptables") is None,
                                reason="chaos faults need root and iptables")
slow = pytest.mark.skipif(not os.environ.get("KAFKALIKE_SLOW"), reason="minutes: set KAFKALIKE_SLOW=1")


def chaos(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "chaos", "run", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def test_kraft_mode_is_refused_on_the_compose_backend(tmp_path: Path) -> None:
    done = chaos("--mode", "kraft", "--backend", "compose", "--scenario", "leader-kill", "--report",
                 str(tmp_path / "r"), timeout=120)
    assert done.returncode == 2 and "--mode kraft runs on the local backend only" in done.stderr


@needs_root
@slow
def test_leader_kill_on_a_kraft_cluster_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    report = tmp_path / "report"
    done = chaos("--mode", "kraft", "--scenario", "leader-kill", "--duration", "20s", "--report", str(report))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "starting 3 KRaft controllers and 3 brokers" in done.stdout
    verdict = json.loads((report / "verdict.json").read_text())
    assert verdict["status"] == "valid" and verdict["counts"]["lost"] == 0, verdict["summary"]
    faults = [json.loads(line) for line in (report / "faults.jsonl").read_text().splitlines()]
    assert faults and all(f["target"].startswith("broker-") for f in faults)
    assert not (report / "cluster").exists()  # a run as expected removes its cluster dir
