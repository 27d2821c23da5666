"""The report directory of a chaos run.

    <dir>/history.jsonl     the history (kafkalike.chaos.history), written while running
    <dir>/verdict.json      Verdict.to_json() plus the run's parameters ("run") and, per
                            partition, the longest stall without acknowledgements
                            ("ack_stalls", "longest_ack_stall_s"; see ack_stalls)
    <dir>/verdict.txt       Verdict.render_text(): the human table
    <dir>/faults.jsonl      the fault timeline as the nemesis applied it (one JSON object a line:
                            name, target, detail, start_s, end_s relative to the run's start)
    <dir>/plot.png          throughput (acknowledged and failed records per second) and, per
                            partition, the seconds with acknowledgements (green) and the
                            checker's unavailability windows (red) over time, faults shaded

``write_report(dir, verdict, history_path, injections, run_info)`` writes all but the
history; ``plot(...)`` needs matplotlib (Agg backend, no display) and is skipped with a
note in verdict.txt if it is missing.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from kafkalike.chaos.checker import Verdict
from kafkalike.chaos.history import Acknowledged, Failed, Sent, read_history


def ack_stalls(history_path: Path) -> dict[str, dict[str, float]]:
    """Per partition ("topic-p"), the longest time without an acknowledgement while producers
    were sending (from the first Sent to the last): ``{"longest_s", "from_s", "to_s"}`` with
    times in history seconds. With a long message.timeout.ms nothing fails during an outage
    (records wait), so the checker's failure-based windows stay empty; this shows the stall."""
    acks: dict[str, list[float]] = {}
    first_sent: float | None = None
    last_sent = 0.0
    for ev in read_history(history_path):
        if isinstance(ev, Sent):
            if first_sent is None:
                first_sent = ev.time
            last_sent = ev.time
        elif isinstance(ev, Acknowledged):
            acks.setdefault(f"{ev.topic}-{ev.partition}", []).append(ev.time)
    out: dict[str, dict[str, float]] = {}
    if first_sent is None:
        return out
    for tp, times in sorted(acks.items()):
        times.sort()
        points = [first_sent] + [t for t in times if t >= first_sent] + [last_sent]
        best = (0.0, first_sent, first_sent)
        for a, b in zip(points, points[1:]):
            if b - a > best[0]:
                best = (b - a, a, b)
        out[tp] = {"longest_s": round(best[0], 3), "from_s": best[1], "to_s": best[2]}
    return out


def write_report(report_dir: Path, verdict: Verdict, history_path: Path, injections: list[Any],
                 run_info: dict[str, Any], t0: float) -> list[str]:
    """Write verdict.json, verdict.txt, faults.jsonl and plot.png; returns the file names
    written. ``injections``: the nemesis's Injection list; ``t0``: the run's start (history
    seconds), the plots' zero."""
    report_dir.mkdir(parents=True, exist_ok=True)
    written = []
    doc = verdict.to_json()
    stalls = ack_stalls(history_path)
    doc["ack_stalls"] = stalls
    doc["longest_ack_stall_s"] = max((v["longest_s"] for v in stalls.values()), default=0.0)
    doc["run"] = run_info
    (report_dir / "verdict.json").write_text(json.dumps(doc, indent=2) + "\n")
    written.append("verdict.json")
    with open(report_dir / "faults.jsonl", "w") as f:
        for fault in verdict.faults:
            f.write(json.dumps({"name": fault.name, "target": fault.target, "detail": fault.detail,
                                "start_s": round(fault.start - t0, 3),
                                "end_s": None if fault.end is None else round(fault.end - t0, 3)}) + "\n")
    written.append("faults.jsonl")
    note = ""
    try:
        plot(report_dir / "plot.png", verdict, history_path, t0, title=run_info.get("title", "chaos run"),
             note=f"longest stall without acks {doc['longest_ack_stall_s']:.1f} s")
        written.append("plot.png")
    except ImportError as exc:
        note = f"\n(no plot: {exc}; pip install matplotlib)\n"
    header = "".join(f"{k}: {v}\n" for k, v in run_info.items())
    stall_lines = "".join(f"  {tp:<40} {v['longest_s']:8.3f} s from {v['from_s'] - t0:.1f} s\n"
                          for tp, v in stalls.items())
    (report_dir / "verdict.txt").write_text(header + "\n" + verdict.render_text() + note
                                            + "\nlongest stall without acknowledgements while producing:\n"
                                            + stall_lines)
    written.append("verdict.txt")
    return written


def plot(path: Path, verdict: Verdict, history_path: Path, t0: float, title: str = "chaos run",
         note: str = "") -> None:
    """Two panels over run time (s): acknowledged/failed records per second; one row per
    partition with its unavailability windows. Faults are shaded on both. ImportError
    without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acks: Counter[int] = Counter()
    fails: Counter[int] = Counter()
    last = 0.0
    acked_secs: dict[tuple[str, int], set[int]] = {}
    for ev in read_history(history_path):
        t = ev.time - t0
        last = max(last, t)
        if isinstance(ev, Acknowledged):
            acks[int(t)] += 1
            acked_secs.setdefault((ev.topic, ev.partition), set()).add(int(t))
        elif isinstance(ev, Failed):
            fails[int(t)] += 1
    secs = list(range(0, int(last) + 1))
    parts = sorted(verdict.availability, key=lambda a: (a.topic, a.partition))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 3.2 + 0.35 * max(3, len(parts))), sharex=True,
                                   gridspec_kw={"height_ratios": [3, max(1.2, 0.4 * len(parts))]})
    ax1.plot(secs, [acks[s] for s in secs], color="tab:blue", lw=1.2, label="acknowledged/s")
    ax1.plot(secs, [fails[s] for s in secs], color="tab:red", lw=1.0, label="failed/s")
    ax1.set_ylabel("records/s")
    ax1.set_title(f"{title}: {verdict.headline()}" + (f"; {note}" if note else ""), fontsize=9)
    for i, a in enumerate(parts):
        ax2.broken_barh([(sec, 1) for sec in sorted(acked_secs.get((a.topic, a.partition), ()))],
                        (i - 0.12, 0.24), color="tab:green")
        ax2.broken_barh([(w.start - t0, max(w.duration, 0.05)) for w in a.windows], (i - 0.35, 0.7),
                        color="tab:red")
    ax2.set_yticks(range(len(parts)))
    ax2.set_yticklabels([f"{a.topic}-{a.partition}" for a in parts], fontsize=8)
    ax2.set_ylim(-0.7, len(parts) - 0.3)
    ax2.set_xlabel("run time (s); green: seconds with acknowledgements; red: unavailability windows "
                   "(first failed send to next ack); shaded: faults")
    colors = ["tab:orange", "tab:purple", "tab:green", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    names = sorted({f.name for f in verdict.faults})
    for f in verdict.faults:
        c = colors[names.index(f.name) % len(colors)]
        end = (f.end if f.end is not None else t0 + last) - t0
        for ax in (ax1, ax2):
            ax.axvspan(f.start - t0, end, color=c, alpha=0.15, lw=0)
        ax1.annotate(f"{f.name} {f.target}", (f.start - t0, 1.0), xycoords=("data", "axes fraction"),
                     fontsize=6, rotation=90, va="top", ha="right", color=c)
    ax1.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
