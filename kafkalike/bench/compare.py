"""``kafkalike compare`` (issue 21): the same control-plane scenarios on kafkalike's two modes,
ZooKeeper (``kafkalike-zk``) and KRaft (``kafkalike-kraft``), each on a fresh 3-broker cluster per
partition count, with a report that says how long each took and what each control plane did.

    .venv/bin/python -m kafkalike.cli.main compare --partitions 100,1000 --rounds 1 --report compare-report

Output in the report dir:

* ``results.json``: every Measurement (system, scenario, partitions, round, seconds, moved) and
  every trace, so reports can be merged (``--merge DIR,DIR``);
* ``report.md``: one table (scenario x partitions x system: median of the rounds, and the ratio
  KRaft / ZooKeeper), the plots, and per scenario and system a step-by-step trace of the first
  round, taken from the logs with times relative to the fault: ZooKeeper mode from each broker's
  ``state-change.log`` (the controller's partition/replica state changes, the LeaderAndIsr and
  UpdateMetadata it sent, the brokers' handling) and its structlog lines (controller_elected,
  broker_failure, ...); KRaft mode from the controllers' structlog lines (broker_session_expired,
  broker_fenced, partition_changed, controller_activated, ...) and the brokers' (the metadata
  publisher's metadata_replicas_changed, became_leader, ...);
* ``<scenario>.png``: median seconds per partition count, one bar per system (matplotlib).

Kafka's own kafka-zk / kafka-kraft from the reference harness are not compared here (not done:
the scenarios drive kafkalike's cluster classes and read kafkalike's log formats).
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import structlog

from kafkalike.bench.compare_scenarios import SCENARIOS, SYSTEMS, TOPIC, ComparedCluster, CompareError, \
    create_topic, run_scenario, wait_until
from kafkalike.bench.interrupt import BenchInterrupted, restore_signals, stop_on_sigterm

log = structlog.get_logger(__name__)

__all__ = ["Step", "run_compare", "write_report", "trace_steps", "load_results"]

#: ``2026-12-07T01:08:43.926466Z [info     ] event_name     key=value ...`` (kafkalike.logs console)
_STRUCTLOG = re.compile(r"^(\d{4}-\d\d-\d\dT\S+Z) \[(\w+)\s*\] (\S+)")
#: ``[2026-12-07 03:05:27,419] INFO [Controller id=2 epoch=1] message (state.change.logger)``
_STATE_CHANGE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\] (\w+) \[(Controller|Broker) id=(-?\d+)"
                           r"(?: epoch=\d+)?\] (.*)$")
#: structlog events left out of traces (per-connection and per-request chatter)
_NOISE = ("connection", "request_", "listener_", "metrics", "quota", "fetch_session", "metadata_refreshed")


@attrs.frozen
class Step:
    """One step of a trace: ``name`` (a structlog event, or a state-change.log kind such as
    "partition OfflinePartition->OnlinePartition"), ``source`` ("controller 3001", "broker 2",
    "broker 2 state-change.log"), first and last time (s after the fault), ``count`` of lines."""

    name: str
    source: str
    first_s: float
    last_s: float
    count: int


def _state_change_step(message: str) -> str:
    for pattern, fmt in (
        (r"Changed partition \S+ (?:state )?from (\w+) to (\w+)", "partition {0}->{1}"),
        (r"Changed state of replica \d+ for partition \S+ from (\w+) to (\w+)", "replica {0}->{1}"),
        (r"Sending become-(leader|follower) LeaderAndIsr", "LeaderAndIsr become-{0} state queued"),
        (r"Sending (LeaderAndIsr|UpdateMetadata|StopReplica) request", "{0} request sent"),
        (r"Received response (\w+)Response", "{0} response received"),
        (r"Received (LeaderAndIsr|UpdateMetadata|StopReplica) request", "{0} received"),
        (r"(Handling|Completed|Finished) (LeaderAndIsr|StopReplica|UpdateMetadata)", "{1} {0}"),
        (r"Stopped fetchers", "fetchers stopped"),
    ):
        m = re.search(pattern, message)
        if m:
            return fmt.format(*m.groups()).replace("Completed", "completed").replace("Handling", "handling") \
                .replace("Finished", "finished")
    return " ".join(message.split()[:3])


def _lines_of(path: Path) -> Iterable[str]:
    try:
        with path.open(errors="replace") as f:
            yield from f
    except OSError:
        return


def trace_steps(sources: dict[str, Path], fault_at: float, done_at: float, limit: int = 40) -> list[Step]:
    """The steps in ``sources`` ({label: log file}) between ``fault_at`` and ``done_at`` (time.time()
    seconds), grouped by (source, step name), ordered by first time; at most ``limit``. Structlog
    lines give their event name; state-change.log lines (local time, as log4j writes) their kind."""
    groups: dict[tuple[str, str], list[float]] = {}
    for label, path in sources.items():
        for line in _lines_of(path):
            ts: float | None = None
            name = ""
            m = _STRUCTLOG.match(line)
            if m:
                try:
                    ts = datetime.fromisoformat(m.group(1)).timestamp()
                except ValueError:
                    continue
                name = m.group(3)
                if m.group(2) == "debug" or any(n in name for n in _NOISE):
                    continue
            else:
                s = _STATE_CHANGE.match(line)
                if not s:
                    continue
                ts = time.mktime(time.strptime(s.group(1), "%Y-%m-%d %H:%M:%S")) + int(s.group(2)) / 1000
                who = "controller" if s.group(4) == "Controller" else "broker"
                name = f"{who}: {_state_change_step(s.group(6))}"
            if ts is None or not (fault_at - 0.05 <= ts <= done_at + 0.05):
                continue
            groups.setdefault((label, name), []).append(ts - fault_at)
    steps = [Step(name, label, min(t), max(t), len(t)) for (label, name), t in groups.items()]
    steps.sort(key=lambda s: (s.first_s, s.source))
    return steps[:limit]


def _log_sources(c: ComparedCluster) -> dict[str, Path]:
    cl = c.cluster
    out: dict[str, Path] = {}
    if c.kraft:
        for i in cl.controller_ids:
            out[f"controller {i}"] = cl.log_path(i)
        for i in c.broker_ids:
            out[f"broker {i}"] = cl.log_path(i)
    else:
        for i in c.broker_ids:
            out[f"broker {i}"] = cl.log_path(i)
            out[f"broker {i} state-change.log"] = cl.broker_dir(i) / "logs" / "state-change.log"
    return out


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def run_compare(systems: list[str], partitions: list[int], scenarios: list[str], rounds: int,
                report_dir: Path, work_dir: Path | None = None, say: Any = print) -> dict[str, Any]:
    """Run every scenario ``rounds`` times on a fresh cluster of each system for each partition
    count; write ``report_dir``/results.json, report.md and plots; return the results dict
    ({"measurements": [...], "traces": [...], "errors": [...], "load": [...]}). A scenario that
    times out is recorded in "errors" and the next partition count/system goes on."""
    report_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"measurements": [], "traces": [], "errors": [], "load": [_load()],
                               "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    own_work = work_dir is None
    base = Path(tempfile.mkdtemp(prefix="kafkalike-compare-")) if work_dir is None else work_dir
    previous_handlers = stop_on_sigterm()  # SIGTERM unwinds through the finally blocks below
    try:
        for p in partitions:
            for system in systems:
                c = ComparedCluster(system, base / f"{system}-{p}")
                say(f"{system} at {p} partitions: starting a fresh cluster (load {_load()})")
                try:
                    c.start()
                    code = create_topic(c.bootstrap(), TOPIC, p, 3, timeout_s=600.0)
                    if code.name not in ("none", "topic_already_exists"):
                        raise CompareError(f"CreateTopics {TOPIC} answered {code.name}")
                    wait_until(lambda: c.all_led(TOPIC, p, c.broker_ids), 900.0, f"{TOPIC} led")
                    for r in range(1, rounds + 1):
                        for scenario in scenarios:
                            try:
                                m = run_scenario(c, scenario, p, r)
                            except CompareError as exc:  # recorded; the cluster is made whole for the next
                                say(f"  {scenario} round {r} failed: {exc}")
                                results["errors"].append({"system": system, "partitions": p, "error": str(exc)[:2000]})
                                c.restore()
                                continue
                            say(f"  {scenario} round {r}: {m.seconds:.2f} s, node {m.node}, moved {m.moved} (load {_load()})")
                            results["measurements"].append({"system": system, "partitions": p, "round": r,
                                                            **attrs.asdict(m)})
                            if r == 1:
                                steps = trace_steps(_log_sources(c), m.fault_at, m.done_at)
                                results["traces"].append({"system": system, "partitions": p, "scenario": scenario,
                                                          "steps": [attrs.asdict(s) for s in steps]})
                except Exception as exc:  # noqa: BLE001 -- recorded in the report; the next system goes on
                    log.warning("compare_failed", system=system, partitions=p, error=str(exc))
                    say(f"  failed: {exc}")
                    results["errors"].append({"system": system, "partitions": p, "error": str(exc)[:2000]})
                finally:
                    c.stop()
                results["load"].append(_load())
                (report_dir / "results.json").write_text(json.dumps(results, indent=1))
    except BenchInterrupted as exc:  # every cluster is stopped by now; still write what was measured
        say(f"  interrupted ({exc}): clusters stopped, writing the report")
        results["errors"].append({"system": "", "partitions": 0, "error": f"run interrupted ({exc})"})
    finally:
        restore_signals(previous_handlers)
        if own_work:
            shutil.rmtree(base, ignore_errors=True)
    write_report(results, report_dir)
    return results


def load_results(dirs: Iterable[Path]) -> dict[str, Any]:
    """The results.json of several report dirs in one dict (for ``--merge``)."""
    merged: dict[str, Any] = {"measurements": [], "traces": [], "errors": [], "load": [], "started": ""}
    for d in dirs:
        r = json.loads((Path(d) / "results.json").read_text())
        for k in ("measurements", "traces", "errors", "load"):
            merged[k] += r.get(k, [])
        merged["started"] = merged["started"] or r.get("started", "")
    return merged


def _medians(results: dict[str, Any]) -> dict[tuple[str, int, str], tuple[float, int, int]]:
    """{(scenario, partitions, system): (median s, rounds, median moved)}."""
    by: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for m in results["measurements"]:
        by.setdefault((m["scenario"], m["partitions"], m["system"]), []).append(m)
    return {k: (statistics.median(x["seconds"] for x in v), len(v), int(statistics.median(x["moved"] for x in v)))
            for k, v in by.items()}


def _plot(results: dict[str, Any], report_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = _medians(results)
    written = []
    for scenario in SCENARIOS:
        counts = sorted({k[1] for k in med if k[0] == scenario})
        if not counts:
            continue
        systems = [s for s in SYSTEMS if any(k[0] == scenario and k[2] == s for k in med)]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        width = 0.8 / max(1, len(systems))
        for j, system in enumerate(systems):
            xs = [i + j * width for i in range(len(counts))]
            ys = [med.get((scenario, p, system), (0.0, 0, 0))[0] for p in counts]
            ax.bar(xs, ys, width, label=system)
        ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(counts))])
        ax.set_xticklabels([f"{p:,} partitions" for p in counts])
        ax.set_ylabel("seconds (median)")
        ax.set_title(scenario.replace("_", " "))
        ax.legend()
        fig.tight_layout()
        fig.savefig(report_dir / f"{scenario}.png", dpi=100)
        plt.close(fig)
        written.append(f"{scenario}.png")
    return written


def write_report(results: dict[str, Any], report_dir: Path) -> Path:
    """Write report.md (table, plots, traces) and the PNGs into ``report_dir``; its path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "results.json").write_text(json.dumps(results, indent=1))
    med = _medians(results)
    plots = _plot(results, report_dir)
    out = ["# kafkalike compare: ZooKeeper mode against KRaft mode", "",
           f"Started {results.get('started', '?')}; 1-minute load average at the start and after each "
           f"cluster: {', '.join(results['load'])}. Seconds are wall-clock medians of the rounds, measured "
           "from the fault by a client polling each broker's Metadata every 0.1 s. Ratio = KRaft / ZooKeeper.",
           "", "Failure detection differs by setting, not only by design: ZooKeeper mode uses kafkalike's "
           "teaching zookeeper.session.timeout.ms=6000 (Kafka 18000); KRaft mode Kafka's defaults "
           "broker.session.timeout.ms=9000, broker.heartbeat.interval.ms=2000, "
           "controller.quorum.fetch.timeout.ms=2000, controller.quorum.election.timeout.ms=1000.",
           "", "| scenario | partitions | system | rounds | median s | partitions moved | ratio |",
           "|---|---:|---|---:|---:|---:|---:|"]
    for scenario in SCENARIOS:
        for p in sorted({k[1] for k in med if k[0] == scenario}):
            zk = med.get((scenario, p, "kafkalike-zk"))
            for system in SYSTEMS:
                v = med.get((scenario, p, system))
                if v is None:
                    continue
                ratio = f"{v[0] / zk[0]:.2f}" if system == "kafkalike-kraft" and zk and zk[0] > 0 else ""
                moved = str(v[2]) if scenario in ("controlled_shutdown", "broker_failure") else ""
                out.append(f"| {scenario} | {p:,} | {system} | {v[1]} | {v[0]:.2f} | {moved} | {ratio} |")
    if results["errors"]:
        out += ["", "## Failed", ""] + [f"- {e['system']} at {e['partitions']} partitions: {e['error'][:300]}"
                                         for e in results["errors"]]
    if plots:
        out += ["", "## Plots", ""] + [f"![{p[:-4]}]({p})" for p in plots]
    out += ["", "## Traces (first round; seconds after the fault; lines grouped by source and step)"]
    for t in results["traces"]:
        out += ["", f"### {t['scenario']}, {t['system']}, {t['partitions']:,} partitions", "",
                "| first s | last s | source | step | lines |", "|---:|---:|---|---|---:|"]
        out += [f"| {s['first_s']:+.3f} | {s['last_s']:+.3f} | {s['source']} | {s['name']} | {s['count']} |"
                for s in t["steps"]]
        if not t["steps"]:
            out.append("| | | | (no log line in the window) | 0 |")
    path = report_dir / "report.md"
    path.write_text("\n".join(out) + "\n")
    return path
