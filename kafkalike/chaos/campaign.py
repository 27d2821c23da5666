"""A chaos campaign: N seeded random-nemesis runs, one after another, each on a fresh cluster.

``kafkalike chaos campaign --runs N --backend local|compose [--mode zk|kraft] [--duration 120s] [--seed-from S]
[--menu v1|v2] [--report DIR]`` runs ``kafkalike chaos run --nemesis random --menu M --seed S+i
...`` N times, each in
its own process (so a run that wedges or leaks cannot spoil the next, and the command that
replays a run is literally the one the campaign ran), into ``DIR/run-<i>-seed-<S+i>/``, which
keeps that run's history, verdict, fault timeline, plot and console log (``run.log``). After
each run ``campaign-run.json`` (a RunRecord) is written there, and the summary is rewritten:

    DIR/summary.md     runs, verdicts, faults by kind, acknowledged, lost, duplicates, order
                       violations, the longest unavailability per fault kind, the seeds of any
                       run that was not valid with the command that replays it, the machine's
                       load average and the campaign's wall time
    DIR/summary.json   the same numbers (Summary), plus every RunRecord
    DIR/campaign.png   faults injected and longest unavailability per fault kind; per run,
                       acknowledged records and the longest stall (matplotlib)

Nothing is retried: a run that is invalid, unknown or fails to set up is recorded as such, its
cluster's logs and data stay in its directory (``chaos run`` keeps them), and the campaign
goes on with the next seed.

**Unavailability per fault kind** comes from the history, not from the checker's
failure-based windows (with a 120 s delivery timeout sends wait instead of failing): for each
partition, the gaps between consecutive acknowledgements while producers were sending; a gap
is charged to every fault whose time, from FaultStarted to AFTERMATH_S after its FaultHealed
(a healed zombie or partition moves leadership back, which stalls too), overlaps it; a gap
overlapping none goes to ``(no fault)``. The figure per kind is the longest such gap, seconds.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from kafkalike.chaos.faults import DEFAULT_MENU, MenuSpec, parse_kinds
from kafkalike.chaos.history import Acknowledged, FaultHealed, FaultStarted, Sent, read_history

NO_FAULT = "(no fault)"
AFTERMATH_S = 10.0
"""Seconds after a heal during which a new stall is still charged to that fault."""
ORDER_KINDS = ("order", "reorder")
"""Checker anomaly kinds counted as order violations in the summary."""


def fault_kind(name: str, detail: str = "") -> str:
    """The kind a campaign counts a fault under: its history name, except that the
    ``partition`` faults are told apart by their groups (faults.Partition.describe() opens
    the detail): ``partition`` (leader | followers, or other groups), ``isolate`` (a broker
    cut from every other broker and ZooKeeper) and ``zk-cut`` (cut from ZooKeeper only)."""
    if name == "partition":
        groups = detail.split(";")[0]
        if groups.endswith("| others+zk"):
            return "isolate"
        if groups.endswith("| zk"):
            return "zk-cut"
    return name


@attrs.frozen
class CampaignOptions:
    """A campaign's parameters. runs: how many; backend: "local" or "compose"; duration:
    seconds of faults per run; seed_from: the first run's seed (run i uses seed_from + i);
    report_dir: where everything goes; session_timeout_ms, rate: passed to every run; menu:
    the random nemesis's menu version (faults.MENUS), recorded in every RunRecord; mode: the
    control plane, "zk" (a ZooKeeper ensemble and an elected controller) or "kraft" (3 KRaft
    controllers, local backend only), passed to every run as ``--mode``; kinds: a focus, the
    fault kinds (faults.KINDS) every run's nemesis draws from (empty: the whole menu), passed
    as ``--kinds`` and recorded as the run's menu (``v2:disk-full,...``)."""

    runs: int
    report_dir: Path
    backend: str = "local"
    duration: float = 120.0
    seed_from: int = 1
    session_timeout_ms: int = 6000
    rate: float = 50.0
    menu: str = DEFAULT_MENU
    mode: str = "zk"
    kinds: tuple[str, ...] = ()

    @property
    def menu_spec(self) -> str:
        """The menu as runs record it: ``v2`` or, with a focus, ``v2:kind,...``."""
        return str(MenuSpec(self.menu, self.kinds))


@attrs.frozen
class RunRecord:
    """One run of a campaign, as recorded. status: the checker's "valid" | "invalid" |
    "unknown", or "error" when the run produced no verdict (set-up failed; ``error`` holds the
    last lines of its log). counts: anomaly kind -> count; faults: fault kind -> injections;
    unavailability: fault kind -> longest ack gap begun under it (s); wall_s: the run's own
    wall time including cluster start and stop; replay: the shell command that repeats it;
    menu: the nemesis menu it drew from, with its focus if any (``v2:disk-full,grow``;
    records written before menus existed are "v1"); mode:
    "zk" or "kraft" (records written before --mode existed are "zk")."""

    index: int
    seed: int
    backend: str
    duration_s: float
    status: str
    exit_code: int
    acknowledged: int
    counts: dict[str, int]
    faults: dict[str, int]
    fault_errors: int
    unavailability: dict[str, float]
    longest_ack_stall_s: float
    wall_s: float
    replay: str
    report_dir: str
    error: str = ""
    menu: str = "v1"
    mode: str = "zk"

    @property
    def lost(self) -> int:
        return self.counts.get("lost", 0)

    @property
    def duplicates(self) -> int:
        return self.counts.get("duplicate", 0)

    @property
    def order_violations(self) -> int:
        return sum(self.counts.get(k, 0) for k in ORDER_KINDS)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunRecord:
        return cls(**{f.name: doc[f.name] for f in attrs.fields(cls) if f.name in doc})


@attrs.frozen
class FaultKindSummary:
    """Over a campaign, one fault kind: injections, runs it appeared in, the longest ack gap
    begun under it (s) and the seed of the run where that happened."""

    kind: str
    injected: int
    runs: int
    longest_unavailability_s: float
    longest_in_seed: int | None


@attrs.frozen
class Summary:
    """A campaign's totals (see the module doc). statuses: status -> runs; anomalies: kind ->
    total count; not_valid: the records of runs that were not valid; load: os.getloadavg()
    samples taken before the first run and after each; wall_s: the campaign's wall time;
    menus: nemesis menu version -> runs."""

    runs: int
    statuses: dict[str, int]
    acknowledged: int
    lost: int
    duplicates: int
    order_violations: int
    anomalies: dict[str, int]
    faults: tuple[FaultKindSummary, ...]
    fault_errors: int
    not_valid: tuple[RunRecord, ...]
    records: tuple[RunRecord, ...]
    load: tuple[tuple[float, float, float], ...]
    wall_s: float
    cpus: int
    menus: dict[str, int] = attrs.Factory(dict)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def replay_command(options: CampaignOptions, seed: int, report_dir: Path) -> list[str]:
    """The ``kafkalike chaos run`` argv of one campaign run (also its replay command)."""
    return ["kafkalike", "chaos", "run", "--backend", options.backend, "--mode", options.mode, "--nemesis", "random",
            "--menu", options.menu, "--seed", str(seed), "--duration", f"{options.duration:g}s",
            *(["--kinds", ",".join(options.kinds)] if options.kinds else []),
            "--session-timeout-ms", str(options.session_timeout_ms), "--rate", f"{options.rate:g}",
            "--report", str(report_dir)]


def ack_gaps(history_path: Path) -> tuple[list[tuple[float, float]], list[tuple[str, float, float]]]:
    """From a history: the gaps between consecutive acknowledgements of each partition while
    producers were sending (``[(start, end)]``, history seconds, the first Sent and the last
    Sent bounding each partition's series, as report.ack_stalls does), and the fault
    intervals ``[(kind, start, end)]`` (kind: fault_kind; end: the matching FaultHealed, or
    the history's end)."""
    acks: dict[tuple[str, int], list[float]] = {}
    first_sent: float | None = None
    last_sent = 0.0
    last = 0.0
    open_faults: dict[tuple[str, str], list[tuple[float, str]]] = {}
    faults: list[tuple[str, float, float]] = []
    for ev in read_history(history_path):
        last = max(last, ev.time)
        if isinstance(ev, Sent):
            first_sent = ev.time if first_sent is None else first_sent
            last_sent = ev.time
        elif isinstance(ev, Acknowledged):
            acks.setdefault((ev.topic, ev.partition), []).append(ev.time)
        elif isinstance(ev, FaultStarted):
            open_faults.setdefault((ev.name, ev.target), []).append((ev.time, fault_kind(ev.name, ev.detail)))
        elif isinstance(ev, FaultHealed):
            starts = open_faults.get((ev.name, ev.target))
            if starts:
                t, kind = starts.pop(0)
                faults.append((kind, t, ev.time))
    for starts in open_faults.values():
        faults.extend((kind, t, last) for t, kind in starts)
    gaps: list[tuple[float, float]] = []
    if first_sent is not None:
        for times in acks.values():
            points = [first_sent] + sorted(t for t in times if first_sent <= t <= last_sent) + [last_sent]
            gaps.extend((a, b) for a, b in zip(points, points[1:]) if b > a)
    return gaps, sorted(faults, key=lambda f: f[1])


def unavailability_by_fault(gaps: Iterable[tuple[float, float]], faults: Sequence[tuple[str, float, float]],
                            aftermath: float = AFTERMATH_S) -> dict[str, float]:
    """Fault kind -> the longest gap (s) charged to it: overlapping the fault's time from its
    start to ``aftermath`` s after its end (gap start < end + aftermath and gap end > start);
    gaps overlapping no fault go to NO_FAULT. Every kind in ``faults`` appears (0.0 if no gap
    was charged to it)."""
    out: dict[str, float] = {name: 0.0 for name, _, _ in faults}
    for a, b in gaps:
        kinds = {name for name, s, e in faults if a < e + aftermath and b > s} or {NO_FAULT}
        for k in kinds:
            out[k] = max(out.get(k, 0.0), round(b - a, 3))
    return out


def run_record(index: int, seed: int, options: CampaignOptions, run_dir: Path, exit_code: int,
               wall_s: float, log_tail: str = "") -> RunRecord:
    """The RunRecord of a finished run from what it left in ``run_dir`` (verdict.json and
    history.jsonl); status "error" if it left no verdict."""
    replay = shlex.join(replay_command(options, seed, run_dir))
    if options.backend == "compose" and os.environ.get("KAFKALIKE_IMAGE"):
        replay = f"KAFKALIKE_IMAGE={shlex.quote(os.environ['KAFKALIKE_IMAGE'])} {replay}"
    verdict_path = run_dir / "verdict.json"
    if not verdict_path.exists():
        return RunRecord(index, seed, options.backend, options.duration, "error", exit_code, 0, {}, {}, 0, {}, 0.0,
                         round(wall_s, 1), replay, str(run_dir), log_tail, options.menu_spec, options.mode)
    doc = json.loads(verdict_path.read_text())
    faults = Counter(fault_kind(f["name"], f.get("detail", "")) for f in doc.get("faults", []))
    history = run_dir / "history.jsonl"
    unavailability: dict[str, float] = {}
    if history.exists():
        gaps, intervals = ack_gaps(history)
        unavailability = unavailability_by_fault(gaps, intervals)
    run = doc.get("run", {})
    return RunRecord(index, seed, options.backend, options.duration, doc["status"], exit_code,
                     int(doc["summary"]["acknowledged"]), {k: int(v) for k, v in doc["counts"].items()},
                     dict(sorted(faults.items())), len(run.get("fault_errors", [])), unavailability,
                     float(doc.get("longest_ack_stall_s", 0.0)), round(wall_s, 1), replay, str(run_dir),
                     "" if doc["status"] == "valid" else log_tail, run.get("menu") or options.menu_spec, options.mode)


def summarize(records: Sequence[RunRecord], load: Sequence[tuple[float, float, float]] = (),
              wall_s: float = 0.0, cpus: int | None = None) -> Summary:
    """Totals over ``records`` (see Summary)."""
    statuses = Counter(r.status for r in records)
    anomalies: Counter[str] = Counter()
    injected: Counter[str] = Counter()
    in_runs: Counter[str] = Counter()
    longest: dict[str, tuple[float, int | None]] = {}
    for r in records:
        anomalies.update({k: v for k, v in r.counts.items() if v})
        injected.update(r.faults)
        in_runs.update(r.faults.keys())
        for kind, secs in r.unavailability.items():
            if kind not in longest or secs > longest[kind][0]:
                longest[kind] = (secs, r.seed)
    kinds = sorted(set(injected) | set(longest), key=lambda k: (k == NO_FAULT, k))
    faults = tuple(FaultKindSummary(k, injected.get(k, 0), in_runs.get(k, 0), longest.get(k, (0.0, None))[0],
                                    longest.get(k, (0.0, None))[1]) for k in kinds)
    return Summary(len(records), dict(sorted(statuses.items())), sum(r.acknowledged for r in records),
                   sum(r.lost for r in records), sum(r.duplicates for r in records),
                   sum(r.order_violations for r in records), dict(sorted(anomalies.items())), faults,
                   sum(r.fault_errors for r in records), tuple(r for r in records if r.status != "valid"),
                   tuple(records), tuple(tuple(x) for x in load), round(wall_s, 1),  # type: ignore[misc]  # attrs converters: tuples of lists become tuples of tuples
                   cpus if cpus is not None else (os.cpu_count() or 1),
                   dict(sorted(Counter(r.menu for r in records).items())))


def _load_text(load: Sequence[tuple[float, float, float]]) -> str:
    if not load:
        return "not sampled"
    ones = [x[0] for x in load]
    return (f"1-min load average {min(ones):.1f} .. {max(ones):.1f} (mean {sum(ones) / len(ones):.1f}) over "
            f"{len(load)} samples (before the first run and after each)")


def render_markdown(s: Summary, title: str = "Chaos campaign", command: str = "") -> str:
    """summary.md's text."""
    out = [f"# {title}", ""]
    if command:
        out += ["    " + command, ""]
    valid = s.statuses.get("valid", 0)
    out += [f"{s.runs} runs: " + ", ".join(f"{n} {k}" for k, n in s.statuses.items()) + f" ({valid}/{s.runs} valid).",
            f"Campaign wall time {s.wall_s:.0f} s; machine: {s.cpus} CPUs, {_load_text(s.load)}.",
            "Nemesis menu: " + (", ".join(f"{m} ({n} runs)" for m, n in s.menus.items()) or "none") + "."
            + (" A menu `vN:kind,...` is a focus: the draw restricted to those kinds (`--kinds`), weights as in vN."
               if any(":" in m for m in s.menus) else ""),
            "Control plane: " + (", ".join(f"{m} ({n} runs)" for m, n in Counter(r.mode for r in s.records).items())
                                 or "none") + ".", "",
            "| runs | valid | acknowledged | lost | duplicates | order violations | faults injected | faults not applied |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {s.runs} | {valid} | {s.acknowledged} | {s.lost} | {s.duplicates} | {s.order_violations} "
            f"| {sum(f.injected for f in s.faults)} | {s.fault_errors} |", ""]
    other = {k: v for k, v in s.anomalies.items() if k not in ("lost", "duplicate", *ORDER_KINDS)}
    if other:
        out += ["Other anomaly counts (all runs): " + ", ".join(f"{k}={v}" for k, v in other.items()), ""]
    out += ["## Faults by kind", "",
            "Longest unavailability: the longest gap between acknowledgements on one partition, while",
            f"producers were sending, overlapping a fault of this kind or the {AFTERMATH_S:g} s after its heal",
            "(kafkalike/chaos/campaign.py). `isolate` and `zk-cut` are the `partition` faults that cut a",
            "broker from everything / from ZooKeeper only.", "",
            "| fault kind | injected | in runs | longest unavailability (s) | in seed |", "|---|---:|---:|---:|---:|"]
    for f in s.faults:
        out.append(f"| {f.kind} | {f.injected} | {f.runs} | {f.longest_unavailability_s:.1f} "
                   f"| {'' if f.longest_in_seed is None else f.longest_in_seed} |")
    out += ["", "## Runs that were not valid", ""]
    if not s.not_valid:
        out += ["None.", ""]
    for r in s.not_valid:
        bad = ", ".join(f"{k}={v}" for k, v in r.counts.items() if v) or "no anomaly counts"
        out += [f"- seed {r.seed}: **{r.status}** ({bad}; exit {r.exit_code}); replay:", "",
                f"      {r.replay}", ""]
        if r.error:
            out += ["  last lines of its log (each cut at 400 characters):", "",
                    *("      " + (ln if len(ln) <= 400 else ln[:400] + " ...") for ln in r.error.splitlines()[-8:]), ""]
    out += ["## Every run", "",
            "| # | seed | verdict | acknowledged | lost | dup | order | faults | longest stall (s) | wall (s) |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in s.records:
        out.append(f"| {r.index} | {r.seed} | {r.status} | {r.acknowledged} | {r.lost} | {r.duplicates} "
                   f"| {r.order_violations} | {sum(r.faults.values())} | {r.longest_ack_stall_s:.1f} | {r.wall_s:.0f} |")
    out += ["", "![campaign](campaign.png)", ""]
    return "\n".join(out)


def plot_summary(path: Path, s: Summary) -> None:
    """campaign.png: faults injected and longest unavailability per kind; per run,
    acknowledged records and the longest stall. ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7))
    kinds = [f.kind for f in s.faults]
    xs = range(len(kinds))
    ax1.bar([x - 0.2 for x in xs], [f.injected for f in s.faults], width=0.4, color="tab:blue", label="injected")
    ax1.set_ylabel("injections")
    ax1b = ax1.twinx()
    ax1b.bar([x + 0.2 for x in xs], [f.longest_unavailability_s for f in s.faults], width=0.4, color="tab:red",
             label="longest unavailability (s)")
    ax1b.set_ylabel("longest unavailability (s)")
    ax1.set_xticks(list(xs))
    ax1.set_xticklabels(kinds, rotation=30, ha="right", fontsize=8)
    ax1.set_title(f"{s.runs} runs, {s.statuses.get('valid', 0)} valid; acknowledged {s.acknowledged}, "
                  f"lost {s.lost}, duplicates {s.duplicates}, order {s.order_violations}", fontsize=9)
    ax1.legend(loc="upper left", fontsize=7)
    ax1b.legend(loc="upper right", fontsize=7)
    seeds = [r.seed for r in s.records]
    colors = ["tab:green" if r.status == "valid" else "tab:red" for r in s.records]
    ax2.bar(range(len(seeds)), [r.acknowledged for r in s.records], color=colors)
    ax2.set_ylabel("acknowledged (red: not valid)")
    ax2.set_xticks(range(len(seeds)))
    ax2.set_xticklabels([str(x) for x in seeds], fontsize=7)
    ax2.set_xlabel("seed")
    ax2b = ax2.twinx()
    ax2b.plot(range(len(seeds)), [r.longest_ack_stall_s for r in s.records], "k.-", lw=0.8)
    ax2b.set_ylabel("longest stall (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_summary(report_dir: Path, s: Summary, command: str = "") -> None:
    """summary.md, summary.json and campaign.png (skipped, with a note, without matplotlib)."""
    text = render_markdown(s, command=command)
    try:
        plot_summary(report_dir / "campaign.png", s)
    except ImportError as exc:
        text += f"\n(no plot: {exc})\n"
    (report_dir / "summary.md").write_text(text)
    (report_dir / "summary.json").write_text(json.dumps(s.to_json(), indent=2) + "\n")


def load_records(report_dir: Path) -> list[RunRecord]:
    """Every run-*/campaign-run.json under ``report_dir``, in run order."""
    recs = [RunRecord.from_json(json.loads(p.read_text())) for p in report_dir.glob("run-*/campaign-run.json")]
    return sorted(recs, key=lambda r: r.index)


def resummarize(report_dir: Path, command: str = "") -> Summary:
    """Rebuild every run's RunRecord from what its directory holds (verdict.json,
    history.jsonl; exit code, wall time and options from its campaign-run.json) with this
    code, and rewrite the summary; the load samples and wall time come from the old
    summary.json. For a campaign recorded before a change to how runs are summarized."""
    report_dir = Path(report_dir)
    old = json.loads((report_dir / "summary.json").read_text()) if (report_dir / "summary.json").exists() else {}
    records = []
    for rec in load_records(report_dir):
        argv = shlex.split(rec.replay)
        flags = dict(zip(argv, argv[1:]))
        opts = CampaignOptions(1, report_dir, rec.backend, rec.duration_s,
                               session_timeout_ms=int(flags.get("--session-timeout-ms", 6000)),
                               rate=float(flags.get("--rate", 50.0)), menu=flags.get("--menu", rec.menu.split(":")[0]),
                               mode=flags.get("--mode", rec.mode),
                               kinds=parse_kinds(flags.get("--kinds", ""), flags.get("--menu", rec.menu.split(":")[0])))
        new = run_record(rec.index, rec.seed, opts, Path(rec.report_dir), rec.exit_code, rec.wall_s, rec.error)
        new = attrs.evolve(new, replay=rec.replay, error=rec.error)
        (Path(rec.report_dir) / "campaign-run.json").write_text(json.dumps(new.to_json(), indent=2) + "\n")
        records.append(new)
    load = [(float(x[0]), float(x[1]), float(x[2])) for x in old.get("load", [])]
    s = summarize(records, load, old.get("wall_s", 0.0), old.get("cpus"))
    write_summary(report_dir, s, command)
    return s


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_campaign(options: CampaignOptions, say: Callable[[str], None] = print,
                 kafkalike: Sequence[str] | None = None, command: str = "") -> Summary:
    """Run the campaign (module doc); returns its Summary (also written to report_dir after
    every run). ``kafkalike``: the argv prefix that runs the CLI (default: this Python with
    kafkalike.cli.main). KeyboardInterrupt (or SIGTERM) stops the running run with SIGTERM
    (its own cleanup runs), writes the summary of the runs finished and re-raises."""
    report = Path(options.report_dir)
    report.mkdir(parents=True, exist_ok=True)
    cli = list(kafkalike or [sys.executable, "-m", "kafkalike.cli.main"])
    records: list[RunRecord] = []
    load = [os.getloadavg()]
    started = time.monotonic()
    try:
        for i in range(options.runs):
            seed = options.seed_from + i
            run_dir = report / f"run-{i:03d}-seed-{seed}"
            run_dir.mkdir(parents=True, exist_ok=True)
            argv = cli + replay_command(options, seed, run_dir)[1:]
            say(f"[campaign {time.monotonic() - started:6.0f}s] run {i + 1}/{options.runs}: seed {seed} -> {run_dir}")
            t = time.monotonic()
            with open(run_dir / "run.log", "wb") as logf:
                proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                try:
                    code = proc.wait()
                except BaseException:
                    _stop(proc)
                    raise
            rec = run_record(i, seed, options, run_dir, code, time.monotonic() - t, _tail(run_dir / "run.log"))
            (run_dir / "campaign-run.json").write_text(json.dumps(rec.to_json(), indent=2) + "\n")
            records.append(rec)
            load.append(os.getloadavg())
            say(f"[campaign {time.monotonic() - started:6.0f}s] seed {seed}: {rec.status}, acknowledged "
                f"{rec.acknowledged}, lost {rec.lost}, duplicates {rec.duplicates}, order {rec.order_violations}, "
                f"faults {sum(rec.faults.values())}, {rec.wall_s:.0f}s, load {load[-1][0]:.1f}")
            write_summary(report, summarize(records, load, time.monotonic() - started), command)
    finally:
        summary = summarize(records, load, time.monotonic() - started)
        write_summary(report, summary, command)
    return summary


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the run (the CLI heals faults and stops its cluster), SIGKILL after 180 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(180)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
