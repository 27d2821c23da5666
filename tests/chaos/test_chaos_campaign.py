"""The chaos campaign (kafkalike/chaos/campaign.py): stalls charged to fault kinds, run
records and the campaign summary built from recorded verdicts (histories judged by the real
checker, report directories written by the real report writer), and, behind KAFKALIKE_SLOW, a
2-run campaign through the CLI on the local backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kafkalike.chaos.campaign import (
    NO_FAULT,
    CampaignOptions,
    RunRecord,
    ack_gaps,
    fault_kind,
    load_records,
    render_markdown,
    replay_command,
    resummarize,
    run_record,
    summarize,
    unavailability_by_fault,
    write_summary,
)
from kafkalike.chaos.checker import CheckerOptions, check_file
from kafkalike.chaos.history import (
    Acknowledged,
    Assigned,
    Consumed,
    Drained,
    Event,
    FaultHealed,
    FaultStarted,
    HistoryWriter,
    Sent,
)
from kafkalike.chaos.report import write_report

T = "chaos"


def _history(stall_from: float, stall_to: float, fault: tuple[str, float, float | None], lose_last: bool) -> list[Event]:
    """Partition 0: key "a" sent and acknowledged every 0.5 s from t=1 to t=10 except inside
    [stall_from, stall_to), where sends wait and are acknowledged at stall_to; one fault; a
    group pass and a drain (without the last record when ``lose_last``: lost)."""
    h: list[Event] = []
    name, start, end = fault
    h.append(FaultStarted(start, name, "broker-2"))
    if end is not None:
        h.append(FaultHealed(end, name, "broker-2"))
    recs = []
    for seq in range(19):
        t = 1.0 + 0.5 * seq
        h.append(Sent(t, "p0", T, "a", seq, 0))
        h.append(Acknowledged(stall_to if stall_from <= t < stall_to else t + 0.01, T, "a", seq, 0, seq))
        recs.append((seq, "a", seq))
    drained = recs[:-1] if lose_last else recs
    h.append(Assigned(11.0, "drain", T, 0, 0))
    h += [Consumed(11.0 + 0.001 * i, "drain", T, 0, off, key, seq) for i, (off, key, seq) in enumerate(drained)]
    h.append(Drained(12.0, "drain", T, 0, 0, len(drained)))
    return sorted(h, key=lambda e: e.time)


def _recorded_run(base: Path, seed: int, **kw: object) -> Path:
    """A run directory as `kafkalike chaos run` leaves it: history, verdict.json (real checker,
    real report writer)."""
    d = base / f"run-{seed:03d}-seed-{seed}"
    d.mkdir(parents=True)
    with HistoryWriter(d / "history.jsonl") as w:
        w.write_all(_history(**kw))  # type: ignore[arg-type]
    verdict = check_file(str(d / "history.jsonl"), CheckerOptions(idempotent=True, contiguous_offsets=True))
    write_report(d, verdict, d / "history.jsonl", [], {"seed": seed, "fault_errors": []}, 0.0)
    return d


def test_stalls_are_charged_to_the_faults_they_overlap() -> None:
    """A gap overlapping a fault (or its aftermath) counts for that kind; others go to
    NO_FAULT; a kind with no gap under it still appears, at 0."""
    faults = [("kill9", 10.0, 12.0), ("pause", 30.0, 40.0), ("zk-cut", 60.0, 61.0)]
    gaps = [(9.9, 15.0), (13.0, 14.5), (25.0, 26.0), (41.0, 44.0), (80.0, 80.5)]
    assert unavailability_by_fault(gaps, faults, aftermath=5.0) == {
        "kill9": 5.1, "pause": 3.0, "zk-cut": 0.0, NO_FAULT: 1.0}
    assert unavailability_by_fault(gaps, faults, aftermath=0.0)["pause"] == 0.0


@pytest.mark.parametrize(("name", "detail", "kind"), [
    ("partition", "partition leader | followers; 4 iptables rules", "partition"),
    ("partition", "partition controller | others+zk; 7 iptables rules", "isolate"),
    ("partition", "partition random | zk; 3 iptables rules", "zk-cut"),
    ("kill9", "leader; pid 4122", "kill9"),
])
def test_partition_faults_are_told_apart_by_their_groups(name: str, detail: str, kind: str) -> None:
    """Isolate and CutFromZk are recorded as "partition"; the campaign counts them apart."""
    assert fault_kind(name, detail) == kind


def test_ack_gaps_come_from_the_history(tmp_path: Path) -> None:
    """The history's longest gap between acknowledgements and its fault intervals; a fault
    never healed lasts to the history's end."""
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:
        w.write_all(_history(stall_from=4.0, stall_to=7.0, fault=("kill9", 3.9, None), lose_last=False))
    gaps, faults = ack_gaps(path)
    longest = max(gaps, key=lambda g: g[1] - g[0])
    assert longest == pytest.approx((3.51, 7.0))
    assert faults == [("kill9", 3.9, 12.0)]


def test_summary_from_recorded_verdicts(tmp_path: Path) -> None:
    """Two recorded runs, one valid and one that lost a record: statuses, totals, faults by
    kind with the longest stall and its seed, the invalid seed with its replay command, and
    summary.md / summary.json / campaign.png written; records read back from disk."""
    opts = CampaignOptions(runs=2, report_dir=tmp_path, duration=60.0, seed_from=1)
    d1 = _recorded_run(tmp_path, 1, stall_from=4.0, stall_to=6.0, fault=("kill9", 3.9, 5.0), lose_last=False)
    d2 = _recorded_run(tmp_path, 2, stall_from=2.0, stall_to=7.0, fault=("kill9", 1.9, 3.0), lose_last=True)
    recs = [run_record(0, 1, opts, d1, 0, 91.0), run_record(1, 2, opts, d2, 1, 95.0, "VERDICT INVALID")]
    for r in recs:
        (Path(r.report_dir) / "campaign-run.json").write_text(json.dumps(r.to_json()))
    assert [r.status for r in recs] == ["valid", "invalid"]
    assert [r.lost for r in recs] == [0, 1]
    assert recs[1].unavailability["kill9"] == pytest.approx(5.49)
    s = summarize(load_records(tmp_path), load=[(1.0, 1.0, 1.0), (3.0, 2.0, 1.0)], wall_s=186.0, cpus=2)
    assert s.runs == 2 and s.statuses == {"invalid": 1, "valid": 1}
    assert (s.acknowledged, s.lost, s.duplicates, s.order_violations) == (38, 1, 0, 0)
    kill9 = next(f for f in s.faults if f.kind == "kill9")
    assert (kill9.injected, kill9.runs, kill9.longest_in_seed) == (2, 2, 2)
    assert [r.seed for r in s.not_valid] == [2]
    text = render_markdown(s)
    assert "seed 2: **invalid** (lost=1" in text
    assert ("kafkalike chaos run --backend local --mode zk --nemesis random --menu v2 --seed 2 --duration 60s "
            f"--session-timeout-ms 6000 --rate 50 --report {d2}") in text
    assert s.menus == {"v2": 2} and "Nemesis menu: v2 (2 runs)." in text and "Control plane: zk (2 runs)." in text
    assert "1-min load average 1.0 .. 3.0" in text and "wall time 186 s" in text
    write_summary(tmp_path, s)
    assert json.loads((tmp_path / "summary.json").read_text())["lost"] == 1
    assert (tmp_path / "summary.md").read_text().startswith("# Chaos campaign")
    assert (tmp_path / "campaign.png").stat().st_size > 0
    again = resummarize(tmp_path)
    assert (again.statuses, again.lost, again.load, again.wall_s) == (s.statuses, s.lost, s.load, s.wall_s)
    assert [r.replay for r in again.records] == [r.replay for r in s.records]
    assert again.menus == {"v2": 2}


def test_records_from_before_menus_count_as_menu_v1(tmp_path: Path) -> None:
    """The first campaigns' campaign-run.json files have no menu: they read back as v1, and a
    v1 campaign's replay commands say --menu v1."""
    old = json.loads(next((Path(__file__).parents[2] / "docs" / "campaigns" / "2026-12-07-local" / "runs")
                          .glob("*/campaign-run.json")).read_text())
    assert "menu" not in old
    assert RunRecord.from_json(old).menu == "v1"
    opts = CampaignOptions(runs=1, report_dir=tmp_path, menu="v1")
    argv = replay_command(opts, 7, tmp_path)
    assert argv[argv.index("--nemesis") + 1:argv.index("--menu") + 2] == ["random", "--menu", "v1"]


def test_a_kraft_campaign_replays_its_runs_in_kraft_mode(tmp_path: Path) -> None:
    """`chaos campaign --mode kraft`: every run's replay command says --mode kraft, the record
    keeps the mode, and records from before --mode existed read back as zk."""
    opts = CampaignOptions(runs=1, report_dir=tmp_path, mode="kraft")
    argv = replay_command(opts, 3, tmp_path)
    assert argv[argv.index("--mode") + 1] == "kraft"
    rec = run_record(0, 3, opts, tmp_path, 2, 10.0, "no verdict")
    assert rec.mode == "kraft" and "--mode kraft" in rec.replay
    old = json.loads(next((Path(__file__).parents[2] / "docs" / "campaigns" / "2026-12-07-local" / "runs")
                          .glob("*/campaign-run.json")).read_text())
    assert RunRecord.from_json(old).mode == "zk"


def test_a_kraft_campaign_on_compose_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--mode kraft with --backend compose stops with one line and exit status 2."""
    from kafkalike.cli.main import main

    assert main(["chaos", "campaign", "--runs", "1", "--backend", "compose", "--mode", "kraft",
                 "--report", str(tmp_path)]) == 2
    assert "--mode kraft runs on the local backend only" in capsys.readouterr().err


def test_a_run_without_a_verdict_is_an_error_not_a_pass(tmp_path: Path) -> None:
    """A run that left no verdict (its cluster did not come up) is recorded as "error" with
    its log's tail and listed among the runs that were not valid."""
    opts = CampaignOptions(runs=1, report_dir=tmp_path)
    rec = run_record(0, 5, opts, tmp_path, 2, 30.0, "kafkalike chaos: ensemble did not form")
    s = summarize([rec])
    assert rec.status == "error" and s.statuses == {"error": 1}
    assert "seed 5: **error**" in render_markdown(s) and "ensemble did not form" in render_markdown(s)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1", reason="KAFKALIKE_SLOW=1 runs the 2-run campaign")
def test_two_run_campaign_on_the_local_backend(tmp_path: Path) -> None:
    """`kafkalike chaos campaign --runs 2` (3 s of faults each): both runs judged valid, their
    reports kept, the summary written; exit status 0."""
    out = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "chaos", "campaign", "--runs", "2",
                          "--duration", "3s", "--seed-from", "11", "--report", str(tmp_path)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    recs = load_records(tmp_path)
    assert [(r.seed, r.status) for r in recs] == [(11, "valid"), (12, "valid")]
    assert all((Path(r.report_dir) / "history.jsonl").exists() for r in recs)
    assert "2 runs: 2 valid" in (tmp_path / "summary.md").read_text()
