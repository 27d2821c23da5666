"""``kafkalike compare`` (issue 21): the same scenarios on kafkalike's ZooKeeper mode and KRaft mode,
a report with the table, plots and per-scenario traces from the logs. The assertions are on the
report's content (rows, traces, step names), never on timings."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from kafkalike.bench.compare import run_compare, trace_steps, write_report
from kafkalike.bench.compare_scenarios import SCENARIOS, SYSTEMS
from tests.fixtures_cluster import assert_no_process_runs_from


def _state_change_stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f",{int(t * 1000) % 1000:03d}"


def _structlog_stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1_000_000:06d}Z"


def test_traces_name_each_step_from_state_change_log_and_structlog_lines(tmp_path: Path) -> None:
    """Lines inside the fault window are grouped by source and step (a state-change.log kind, or
    a structlog event), first/last time relative to the fault; lines outside the window, debug
    lines and unparsable lines are left out."""
    fault = time.time() - 100.0
    scl = tmp_path / "state-change.log"
    scl.write_text("\n".join([
        f"[{_state_change_stamp(fault - 5)}] INFO [Controller id=2 epoch=1] Changed partition t-0 from "
        "OnlinePartition to OfflinePartition (state.change.logger)",
        f"[{_state_change_stamp(fault + 1.5)}] INFO [Controller id=2 epoch=1] Changed partition t-0 from "
        "OfflinePartition to OnlinePartition with state LeaderAndIsr(leader=1) (state.change.logger)",
        f"[{_state_change_stamp(fault + 1.6)}] INFO [Controller id=2 epoch=1] Sending LeaderAndIsr request to "
        "broker 1 with 1 become-leader and 0 become-follower partitions (state.change.logger)",
        f"[{_state_change_stamp(fault + 1.7)}] TRACE [Broker id=1] Received LeaderAndIsr request "
        "LeaderAndIsrPartitionState(topicName='t') correlation id 3 from controller 2 epoch 1 (state.change.logger)",
        "a line that is no log line",
    ]) + "\n")
    blog = tmp_path / "controller.log"
    blog.write_text("\n".join([
        f"{_structlog_stamp(fault + 0.5)} [info     ] broker_session_expired         broker_id=3",
        f"{_structlog_stamp(fault + 0.6)} [debug    ] metadata_cache_updated         offset=4",
        f"{_structlog_stamp(fault + 0.7)} [info     ] partition_changed              topic=t partition=0",
        f"{_structlog_stamp(fault + 0.8)} [info     ] partition_changed              topic=t partition=1",
        f"{_structlog_stamp(fault + 9.0)} [info     ] partition_changed              topic=t partition=2",
    ]) + "\n")
    steps = trace_steps({"controller 3001": blog, "broker 2 state-change.log": scl}, fault, fault + 2.0)
    assert [(s.source, s.name, s.count) for s in steps] == [
        ("controller 3001", "broker_session_expired", 1),
        ("controller 3001", "partition_changed", 2),
        ("broker 2 state-change.log", "controller: partition OfflinePartition->OnlinePartition", 1),
        ("broker 2 state-change.log", "controller: LeaderAndIsr request sent", 1),
        ("broker 2 state-change.log", "broker: LeaderAndIsr received", 1),
    ]
    assert steps[1].first_s == pytest.approx(0.7, abs=0.01) and steps[1].last_s == pytest.approx(0.8, abs=0.01)


def test_report_has_one_row_per_scenario_partitions_and_system_with_the_kraft_ratio(tmp_path: Path) -> None:
    """write_report: medians of the rounds, the ratio KRaft / ZooKeeper on the KRaft row, the
    partitions moved for broker failure and controlled shutdown, a PNG per scenario, a trace section per trace."""
    ms = [{"system": s, "partitions": 100, "round": r, "scenario": sc, "seconds": sec, "fault_at": 0.0,
           "done_at": 1.0, "moved": 33, "node": 3}
          for s, base in (("kafkalike-zk", 2.0), ("kafkalike-kraft", 1.0)) for r, sec in ((1, base), (2, 3 * base))
          for sc in ("broker_failure", "controlled_shutdown")]
    traces = [{"system": "kafkalike-kraft", "partitions": 100, "scenario": "broker_failure",
               "steps": [{"name": "broker_fenced", "source": "controller 3001", "first_s": 7.1, "last_s": 7.1,
                          "count": 1}]}]
    path = write_report({"measurements": ms, "traces": traces, "errors": [], "load": ["12.5"], "started": "now"},
                        tmp_path)
    text = path.read_text()
    assert "| broker_failure | 100 | kafkalike-zk | 2 | 4.00 | 33 |  |" in text
    assert "| broker_failure | 100 | kafkalike-kraft | 2 | 2.00 | 33 | 0.50 |" in text
    assert "| controlled_shutdown | 100 | kafkalike-kraft | 2 | 2.00 | 33 | 0.50 |" in text
    assert "### broker_failure, kafkalike-kraft, 100 partitions" in text
    assert "| +7.100 | +7.100 | controller 3001 | broker_fenced | 1 |" in text
    assert (tmp_path / "broker_failure.png").stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["measurements"] == ms


def _check_report(report: Path, scenarios: list[str], partitions: int, rounds: int) -> None:
    results = json.loads((report / "results.json").read_text())
    assert results["errors"] == []
    text = (report / "report.md").read_text()
    for scenario in scenarios:
        for system in SYSTEMS:
            runs = [m for m in results["measurements"] if (m["system"], m["scenario"]) == (system, scenario)]
            assert len(runs) == rounds, (system, scenario)
            assert f"| {scenario} | {partitions:,} | {system} | {rounds} |" in text
            traces = [t for t in results["traces"] if (t["system"], t["scenario"]) == (system, scenario)]
            assert len(traces) == 1 and traces[0]["steps"], (system, scenario)
            assert all(s["name"] and s["source"] for s in traces[0]["steps"])
            assert f"### {scenario}, {system}, {partitions:,} partitions" in text
        assert (report / f"{scenario}.png").exists()


def test_compare_runs_metadata_propagation_on_both_modes_and_traces_each_control_plane(tmp_path: Path) -> None:
    """A fresh 3-broker cluster of each mode (ZooKeeper: 3-node ensemble; KRaft: 3 controllers),
    two rounds of metadata propagation on a 10-partition cluster: a row per system, a trace each
    (the ZooKeeper controller's state-change.log lines; the quorum controller's topic_created /
    partition_created and the brokers applying the delta), every process stopped afterwards."""
    report = tmp_path / "report"
    run_compare(list(SYSTEMS), [10], ["metadata_propagation"], 2, report, tmp_path / "work", say=lambda _m: None)
    _check_report(report, ["metadata_propagation"], 10, 2)
    results = json.loads((report / "results.json").read_text())
    by_system = {t["system"]: {s["name"] for s in t["steps"]} for t in results["traces"]}
    assert any("LeaderAndIsr" in n for n in by_system["kafkalike-zk"]), by_system["kafkalike-zk"]
    assert "partition_created" in by_system["kafkalike-kraft"], by_system["kafkalike-kraft"]
    assert_no_process_runs_from(tmp_path / "work")


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="every scenario on two fresh 3+3 clusters, minutes: KAFKALIKE_SLOW=1")
def test_compare_runs_every_scenario_on_both_modes(tmp_path: Path) -> None:
    """All six scenarios, one round, 30 partitions: every row and every trace present; the
    broker failure and the controlled shutdown each hit a broker that led partitions."""
    report = tmp_path / "report"
    run_compare(list(SYSTEMS), [30], list(SCENARIOS), 1, report, tmp_path / "work", say=lambda _m: None)
    _check_report(report, list(SCENARIOS), 30, 1)
    results = json.loads((report / "results.json").read_text())
    assert all(m["moved"] > 0 for m in results["measurements"]
               if m["scenario"] in ("controlled_shutdown", "broker_failure"))
    assert_no_process_runs_from(tmp_path / "work")


def test_sigterm_stops_the_compare_run_and_every_process_it_started(tmp_path: Path) -> None:
    """`kafkalike compare` killed with SIGTERM (what `timeout`, a CI runner or a shell's `kill` send)
    stops the cluster it had started -- ZooKeeper and brokers, by pid -- and still writes the report
    with the interruption among its errors. Before, the default SIGTERM action ended the Python
    process at once and left its 3 ZooKeeper nodes and 3 brokers running."""
    import signal
    import subprocess
    import sys

    work, report = tmp_path / "work", tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kafkalike.cli.main", "compare", "--systems", "kafkalike-zk", "--partitions", "3",
         "--rounds", "50", "--scenarios", "metadata_propagation", "--work-dir", str(work), "--report", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # a measured round means ZooKeeper and all 3 brokers run
            if "metadata_propagation round 1:" in line:
                break
        else:
            pytest.fail(f"compare ended before its first round (exit {proc.wait()})")
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "interrupted" in rest, rest[-2000:]
    assert_no_process_runs_from(work)
    errors = json.loads((report / "results.json").read_text())["errors"]
    assert any("run interrupted" in e["error"] for e in errors), errors
