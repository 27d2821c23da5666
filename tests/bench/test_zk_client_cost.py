"""kafkalike.bench.zk_client_cost against a real ZooKeeper it starts itself: every request
kind of every mode is issued for every znode and reported with its request count (the Python
side by default; the Java client too with KAFKALIKE_KAFKA_LIB)."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from kafkalike.bench import zk_client_cost as bench

LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_JAVA_CLIENT = ("KAFKALIKE_KAFKA_LIB" in os.environ and any(LIB.glob("zookeeper-[0-9]*.jar"))
                    and shutil.which("javac") is not None)


def test_in_flight_of_each_mode() -> None:
    assert [bench.in_flight_of(m, 500) for m in ("sync", "async-10", "async-all")] == [0, 10, 500]
    with pytest.raises(ValueError):
        bench.in_flight_of("zkclient", 500)


def _run(tmp_path: Path, *extra: str) -> list[dict[str, object]]:
    out = tmp_path / "rows.json"
    assert bench.main(["--znodes", "30", "--multi", "7", "--modes", "sync,async-4,async-all", "--json", str(out),
                       *extra]) == 0
    rows: list[dict[str, object]] = json.loads(out.read_text())["rows"]
    return rows


def test_python_side_issues_every_request_kind_in_every_mode(tmp_path: Path) -> None:
    rows = _run(tmp_path, "--no-java")
    got = {(r["mode"], r["op"]): r for r in rows}
    for mode in ("sync", "async-4", "async-all"):
        for op in bench.OPS:
            assert got[(mode, op)]["requests"] == (math.ceil(30 / 7) if op == "multiM" else 30), (mode, op)
    assert {op for mode, op in got if mode == "zkclient"} == {"get", "multi1", "multiM", "leaderAndIsr"}
    assert got[("zkclient", "multiM")]["requests"] == 5
    assert got[("zkclient", "leaderAndIsr")]["requests"] == 30 + 1  # the reads, then one pack of <= 50 writes
    assert all(r["client"] == "kazoo:here" and r["ops"] == 30 and r["pass"] == "measured" for r in rows)
    assert all(float(str(r["cpu_s"])) > 0 for r in rows)


@pytest.mark.skipif(not HAVE_JAVA_CLIENT, reason="needs KAFKALIKE_KAFKA_LIB (zookeeper jars) and javac")
def test_java_side_issues_the_same_requests_after_a_warm_up_pass(tmp_path: Path) -> None:
    rows = [r for r in _run(tmp_path, "--no-zkclient") if r["client"] == "java"]
    for pass_ in ("warmup", "measured"):
        got = {(r["mode"], r["op"]): r for r in rows if r["pass"] == pass_}
        assert set(got) == {(m, op) for m in ("sync", "async-4", "async-all") for op in bench.OPS}
        assert got[("async-all", "multiM")]["requests"] == 5
