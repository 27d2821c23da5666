"""The bench's background CPU hog (kafkalike.bench.background_load): the N[:P] setting, a real
stress-ng that uses the CPU it was asked for and is gone after stop(), and the errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kafkalike.bench.background_load import (BackgroundLoad, BackgroundLoadError, BackgroundLoadSpec,
                                             parse_summary)
from kafkalike.bench.harness import QUICK, run_bench
from kafkalike.bench.systems import BenchError
from kafkalike.cli.main import main
from tests.fixtures_cluster import assert_no_process_runs_from


@pytest.mark.parametrize(("text", "workers", "percent"), [("1", 1, 100), ("2:50", 2, 50), (" 3:1 ", 3, 1)])
def test_spec_parses_workers_and_percent(text: str, workers: int, percent: int) -> None:
    assert BackgroundLoadSpec.parse(text) == BackgroundLoadSpec(workers, percent)


@pytest.mark.parametrize("text", ["", "x", "0", "2:0", "2:101", "1:50:3", "-1:50"])
def test_spec_refuses_what_is_not_n_or_n_colon_p(text: str) -> None:
    with pytest.raises(ValueError, match="N"):
        BackgroundLoadSpec.parse(text)


def test_summary_is_read_from_stress_ngs_times_output() -> None:
    text = ("stress-ng: info:  [5225] for a 2.51s run time:\n"
            "stress-ng: info:  [5225]       5.02s available CPU time\n"
            "stress-ng: info:  [5225]       1.25s total time  ( 24.89%)\n")
    result = parse_summary(text, BackgroundLoadSpec(1, 50))
    assert (result.run_seconds, result.cpu_seconds) == (2.51, 1.25)
    assert result.machine_share == pytest.approx(0.2489)
    assert "1.2 s of CPU over 3 s (25% of the machine's CPU time)" in result.describe()
    assert parse_summary("killed\n", BackgroundLoadSpec(1)).cpu_seconds is None


def _cpu_ticks_of_group(pgid: int) -> int:
    """utime + stime (clock ticks) of the live processes in process group ``pgid``."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])
    return total


def test_hog_uses_cpu_while_it_runs_and_is_gone_after_stop(tmp_path: Path) -> None:
    """One worker at 100 %: its process group spends CPU while it runs (seen in /proc, not
    only in stress-ng's own summary), the summary reports most of a core's worth, and after
    stop() no process with the run's directory in its command line is left."""
    hog = BackgroundLoad(BackgroundLoadSpec(1, 100), tmp_path / "hog" / "log")
    with hog:
        pid = hog.pid
        assert pid is not None
        time.sleep(1.5)
        ticks = _cpu_ticks_of_group(pid)
    assert ticks >= 0.5 * os.sysconf("SC_CLK_TCK"), ticks  # at least half a second of CPU in 1.5 s
    result = hog.result
    assert result is not None and result.cpu_seconds is not None and result.run_seconds is not None
    assert result.cpu_seconds >= 0.5 * result.run_seconds
    assert "stress-ng --cpu 1 --cpu-load 100" in result.describe()
    assert_no_process_runs_from(tmp_path / "hog")
    assert hog.stop() is result  # a second stop changes nothing


def test_missing_stress_ng_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no stress-ng on it
    with pytest.raises(BackgroundLoadError, match="apt-get install stress-ng"):
        BackgroundLoad(BackgroundLoadSpec(1), tmp_path / "log").start()
    with pytest.raises(BenchError, match="needs stress-ng"):
        run_bench(QUICK, ["kafkalike"], tmp_path / "report", background_load=BackgroundLoadSpec(1))


def test_bench_cli_refuses_a_bad_background_load(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--background-load", "2:150", "--systems", "kafkalike"]) == 2
    assert "--background-load '2:150'" in capsys.readouterr().err
