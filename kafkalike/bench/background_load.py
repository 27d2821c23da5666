"""A fixed CPU hog beside the systems a bench measures: stress-ng's CPU workers.

Issue 24 asks for throughput and latency "at a controlled background load, e.g. a fixed
stress-like CPU hog beside the three systems, as well as quiet". A Python broker (one event
loop per process) and a JVM broker (many threads) react differently when other work competes
for the cores. ``kafkalike bench --background-load N[:P]`` runs ``stress-ng --cpu N
--cpu-load P`` for the whole of the measured workloads. That is N workers, each busy P % of
the time in slices of stress-ng's choosing. The machine limits (loopback, disk) are measured
before the hog starts and after it stops.

stress-ng (Debian package ``stress-ng``, installed by ./scripts/bench and ./scripts/test) is
the well-kept tool for this. kafkalike does not carry a busy loop of its own. Its CPU
workers use one fixed method (``int64``: integer arithmetic in registers, little memory
traffic), so that the hog is the same from run to run. stress-ng's own account of the CPU
its workers used (``--times``) goes into the report beside the setting.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import attrs

from kafkalike.cluster.process import exit_description, is_alive, signal_pid, spawn_detached, tail, wait_for

CPU_METHOD = "int64"
"""stress-ng's --cpu-method: integer arithmetic, the same work every run."""
STOP_TIMEOUT_S = 15.0
"""How long stress-ng gets to stop its workers and print its summary after SIGINT."""

_TOTAL_TIME = re.compile(r"([\d.]+)s total time\s+\(\s*([\d.]+)%\)")
_RUN_TIME = re.compile(r"for a ([\d.]+)s run time")


class BackgroundLoadError(Exception):
    """stress-ng is missing or would not start (message says which and what to do)."""


@attrs.frozen
class BackgroundLoadSpec:
    """``workers`` stress-ng CPU workers, each busy ``percent`` % of the time (1-100)."""

    workers: int
    percent: int = 100

    @classmethod
    def parse(cls, text: str) -> BackgroundLoadSpec:
        """``"N"`` (N workers at 100 %) or ``"N:P"`` (N workers at P %). Raises ValueError
        with a message naming the text when it is neither, N < 1 or P outside 1-100."""
        workers_text, _, percent_text = text.strip().partition(":")
        try:
            workers = int(workers_text)
            percent = int(percent_text) if percent_text else 100
        except ValueError:
            raise ValueError(f"{text!r}: expected N or N:P (N CPU workers busy P % of the time), e.g. 2:50") from None
        if workers < 1 or not 1 <= percent <= 100:
            raise ValueError(f"{text!r}: N must be at least 1 and P between 1 and 100")
        return cls(workers, percent)

    def command(self, temp_path: Path) -> list[str]:
        """The stress-ng command line; ``temp_path`` is its --temp-path (stress-ng's CPU
        workers write nothing there; it puts the run's directory in their command line, so
        a check for processes left behind under that directory sees them)."""
        return ["stress-ng", "--cpu", str(self.workers), "--cpu-load", str(self.percent),
                "--cpu-method", CPU_METHOD, "--times", "--metrics-brief", "--temp-path", str(temp_path)]

    def describe(self) -> str:
        """One line for a report: the setting and the share of the machine it asks for."""
        cores = os.cpu_count() or 1
        share = self.workers * self.percent / 100 / cores
        return (f"stress-ng --cpu {self.workers} --cpu-load {self.percent} --cpu-method {CPU_METHOD}: "
                f"{self.workers} worker{'s' if self.workers != 1 else ''} at {self.percent} %, "
                f"{share:.0%} of {cores} cores asked for")


@attrs.frozen
class BackgroundLoadResult:
    """What stress-ng reported when it stopped: its run time (s), the CPU time (s, user +
    system) of all its workers and that as a share of the machine's CPU time over the run
    (0-1). The numbers are None when stress-ng printed no summary (killed)."""

    spec: BackgroundLoadSpec
    run_seconds: float | None
    cpu_seconds: float | None
    machine_share: float | None

    def describe(self) -> str:
        """One line for a report."""
        if self.cpu_seconds is None or self.run_seconds is None or self.machine_share is None:
            return f"{self.spec.describe()}; stress-ng printed no summary of the CPU it used"
        return (f"{self.spec.describe()}; it used {self.cpu_seconds:,.1f} s of CPU over "
                f"{self.run_seconds:,.0f} s ({self.machine_share:.0%} of the machine's CPU time)")


def parse_summary(text: str, spec: BackgroundLoadSpec) -> BackgroundLoadResult:
    """Read stress-ng's ``--times`` summary ("for a 2.51s run time: ... 1.25s total time
    ( 24.89%)") out of its output."""
    total, run = _TOTAL_TIME.search(text), _RUN_TIME.search(text)
    if total is None or run is None:
        return BackgroundLoadResult(spec, None, None, None)
    return BackgroundLoadResult(spec, float(run.group(1)), float(total.group(1)), float(total.group(2)) / 100)


def require_stress_ng() -> None:
    """Raises BackgroundLoadError, saying how to install it, when stress-ng is not on PATH."""
    if shutil.which("stress-ng") is None:
        raise BackgroundLoadError("a background load needs stress-ng: apt-get install stress-ng "
                                  "(./scripts/bench installs it)")


class BackgroundLoad:
    """stress-ng started by ``start()`` and stopped by ``stop()`` (also as a context
    manager), with kafkalike.cluster.process.spawn_detached: in a session and process group
    of its own, so that ``stop()`` can end its workers by that group's id (the pid of the
    stress-ng it started) if stress-ng does not stop on SIGINT, and with
    ``die_with_parent`` (SIGKILL if this process dies first; stress-ng's workers follow
    their parent). Its output goes to ``log_path``, its pid to ``log_path`` + ".pid".

    Raises BackgroundLoadError from ``start()`` when stress-ng is not installed or exits at
    once.
    """

    def __init__(self, spec: BackgroundLoadSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = Path(log_path)
        self.pid: int | None = None
        """The stress-ng parent's pid while it runs."""
        self.result: BackgroundLoadResult | None = None

    def start(self) -> None:
        require_stress_ng()
        temp = self.log_path.parent / "stress-ng"
        temp.mkdir(parents=True, exist_ok=True)
        self.log_path.unlink(missing_ok=True)  # spawn_detached appends: the summary read is this run's
        pid = spawn_detached(self.spec.command(temp), self.log_path,
                             self.log_path.with_name(self.log_path.name + ".pid"), die_with_parent=True).pid
        time.sleep(0.3)
        if not is_alive(pid):
            raise BackgroundLoadError(f"stress-ng exited at once ({exit_description(pid)}); "
                                      f"its output: {tail(self.log_path)}")
        self.pid = pid

    def stop(self) -> BackgroundLoadResult | None:
        """SIGINT (stress-ng then stops its workers and prints its summary); after
        STOP_TIMEOUT_S SIGKILL to its process group (while the parent is not yet reaped, so
        the group id cannot belong to another process). Returns the summary (None if it was
        not running). Safe to call twice."""
        pid, self.pid = self.pid, None
        if pid is None:
            return self.result
        signal_pid(pid, signal.SIGINT)
        try:
            wait_for(lambda: not is_alive(pid), STOP_TIMEOUT_S, what=f"stress-ng (pid {pid}) to stop")
        except TimeoutError:
            # is_alive has not reaped it, so its pid (the group's id) is still its own: end the group
            os.killpg(pid, signal.SIGKILL)
            wait_for(lambda: not is_alive(pid), STOP_TIMEOUT_S, what=f"stress-ng (pid {pid}) to die")
        self.result = parse_summary(self.log_path.read_text(errors="replace"), self.spec)
        return self.result

    def __enter__(self) -> BackgroundLoad:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
