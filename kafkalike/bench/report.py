"""The side-by-side benchmark's results: samples, medians, ratios to Kafka, the Markdown
report and its PNG plots.

A run of ``kafkalike bench`` produces ``Sample`` values: one measured number of one metric of
one workload on one system in one round. ``summarize`` groups them into ``Row`` values (the
median per system, the ratio of kafkalike's median to each Kafka's, the machine limit the
metric can be read against); ``render_markdown`` and ``write_plots`` turn rows into the report;
``write_report`` writes ``report.md``, ``samples.json`` and ``*.png`` into one directory.

Pure functions over plain data (no processes, no clocks), so unit tests pin them exactly.
matplotlib is imported lazily (headless "Agg" backend) inside ``write_plots``.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Iterable, Sequence

import attrs

KAFKALIKE = "kafkalike"
KAFKA_ZK = "kafka-zk"
KAFKA_KRAFT = "kafka-kraft"
SYSTEMS = (KAFKALIKE, KAFKA_ZK, KAFKA_KRAFT)
KAFKA_SYSTEMS = (KAFKA_ZK, KAFKA_KRAFT)


class ReportError(Exception):
    """Malformed samples (unknown system, non-finite value) or an unreadable samples file."""


@attrs.frozen
class Sample:
    """One measurement.

    workload: e.g. "produce acks=all"; metric: e.g. "records/s (kafka-perf)"; system: one of
    SYSTEMS; value: the number in ``unit``; round: which alternation round (0-based);
    higher_is_better: True for throughput, False for latencies, CPU, memory, failover times;
    limit_key: the machine limit the value can be read against ("loopback_mb_s", "disk_mb_s")
    or "" when none applies; limit_scale: multiply ``value`` by it to get the limit's unit
    (e.g. 100e-6 turns records/s of 100-byte records into MB/s).
    """

    workload: str
    metric: str
    system: str
    value: float
    unit: str
    round: int = 0
    higher_is_better: bool = True
    limit_key: str = ""
    limit_scale: float = 1.0

    def __attrs_post_init__(self) -> None:
        if self.system not in SYSTEMS:
            raise ReportError(f"unknown system {self.system!r} (expected one of {SYSTEMS})")
        if not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
            raise ReportError(f"{self.workload}/{self.metric}/{self.system}: value {self.value!r} is not finite")


@attrs.frozen
class Row:
    """One line of the report: the medians of one (workload, metric) per system (None when a
    system has no sample), the sample counts, ratios kafkalike / Kafka (ZK and KRaft; None
    when either side is missing or zero) and, if the metric has a machine limit, the best
    system's median as a fraction of it."""

    workload: str
    metric: str
    unit: str
    higher_is_better: bool
    medians: dict[str, float | None]
    counts: dict[str, int]
    ratio_zk: float | None
    ratio_kraft: float | None
    limit_key: str
    limit_value: float | None
    best_fraction_of_limit: float | None


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (mean of the middle two for an even count). Raises
    ReportError on an empty sequence."""
    if not values:
        raise ReportError("median of no values")
    return float(statistics.median(values))


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """``ours / theirs``, or None when either is missing or ``theirs`` is 0. A throughput
    ratio above 1 means kafkalike is faster; a time/CPU/memory ratio above 1 means it
    costs more."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of an ascending sequence, nearest-rank method (as
    Kafka's ProducerPerformance reports its 50th/95th/99th/99.9th). Raises ReportError on an
    empty sequence or q outside 0..100."""
    if not sorted_values:
        raise ReportError("percentile of no values")
    if not 0 <= q <= 100:
        raise ReportError(f"percentile {q} outside 0..100")
    rank = max(1, math.ceil(round(q * len(sorted_values) / 100, 9)))  # 99.9 % of 1000 is 999, not 999.0000001
    return float(sorted_values[rank - 1])


def summarize(samples: Iterable[Sample], limits: dict[str, float] | None = None) -> list[Row]:
    """Group ``samples`` by (workload, metric), in first-seen order, into Rows with medians
    per system and ratios to kafka-zk and kafka-kraft. ``limits`` maps a limit_key to the
    machine's limit (e.g. {"loopback_mb_s": 2100.0}). Raises ReportError if one
    (workload, metric) mixes units."""
    limits = limits or {}
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.workload, s.metric), []).append(s)
    rows: list[Row] = []
    for (workload, metric), group in groups.items():
        units = {s.unit for s in group}
        if len(units) != 1:
            raise ReportError(f"{workload}/{metric} mixes units {sorted(units)}")
        by_system: dict[str, list[float]] = {}
        for s in group:
            by_system.setdefault(s.system, []).append(s.value)
        medians = {name: (median(by_system[name]) if name in by_system else None) for name in SYSTEMS}
        counts = {name: len(by_system.get(name, [])) for name in SYSTEMS}
        first = group[0]
        limit_value = limits.get(first.limit_key) if first.limit_key else None
        present = [m for m in medians.values() if m is not None]
        best = None
        if limit_value and present:
            top = max(present) if first.higher_is_better else min(present)
            best = top * first.limit_scale / limit_value
        rows.append(Row(
            workload=workload, metric=metric, unit=first.unit, higher_is_better=first.higher_is_better,
            medians=medians, counts=counts,
            ratio_zk=ratio(medians[KAFKALIKE], medians[KAFKA_ZK]),
            ratio_kraft=ratio(medians[KAFKALIKE], medians[KAFKA_KRAFT]),
            limit_key=first.limit_key, limit_value=limit_value, best_fraction_of_limit=best,
        ))
    return rows


def format_number(value: float | None) -> str:
    """A figure for the table: "—" for None, thousands separators at or above 1,000, three
    significant digits below (e.g. 1234567 -> "1,234,567", 12.345 -> "12.3", 0.01234 -> "0.0123")."""
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    return f"{value:.3g}"


def format_ratio(value: float | None) -> str:
    """A ratio for the table: "—" for None, else two decimals with a trailing "x"."""
    return "—" if value is None else f"{value:.2f}x"


LIMIT_LABELS = {"loopback_mb_s": "loopback (iperf3)", "disk_mb_s": "disk (dd, fdatasync)"}


def render_markdown(rows: Sequence[Row], *, title: str = "kafkalike bench",
                    context: dict[str, Any] | None = None, limits: dict[str, float] | None = None,
                    plots: Sequence[str] = ()) -> str:
    """The report as Markdown: a context list (command, machine, ...), the machine limits,
    one table with a line per Row (median per system with the sample count, ratios
    kafkalike/Kafka ZK and kafkalike/Kafka KRaft, best system as % of the limit) and links to
    ``plots`` (file names relative to the report)."""
    out = [f"# {title}", ""]
    for key, value in (context or {}).items():
        out.append(f"- **{key}**: {value}")
    if context:
        out.append("")
    if limits:
        out.append("Machine limits measured in this run:")
        out.append("")
        for key, value in limits.items():
            out.append(f"- {LIMIT_LABELS.get(key, key)}: {format_number(value)} MB/s")
        out.append("")
    out.append("Medians over alternating rounds (n = samples). Ratio = kafkalike / Kafka: above 1 "
               "is better for throughput (↑), worse for times, CPU and memory (↓).")
    out.append("")
    out.append("| workload | metric | unit | kafkalike | Kafka ZK | Kafka KRaft "
               "| kafkalike/ZK | kafkalike/KRaft | best vs limit |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        arrow = "↑" if r.higher_is_better else "↓"
        cells = []
        for name in SYSTEMS:
            m = r.medians[name]
            cells.append(f"{format_number(m)} (n={r.counts[name]})" if m is not None else "—")
        limit = "—"
        if r.best_fraction_of_limit is not None:
            limit = f"{r.best_fraction_of_limit * 100:.1f}% of {LIMIT_LABELS.get(r.limit_key, r.limit_key)}"
        out.append(f"| {r.workload} | {r.metric} {arrow} | {r.unit} | {' | '.join(cells)} | "
                   f"{format_ratio(r.ratio_zk)} | {format_ratio(r.ratio_kraft)} | {limit} |")
    out.append("")
    for name in plots:
        out.append(f"![{name}]({name})")
    if plots:
        out.append("")
    return "\n".join(out)


def write_plots(rows: Sequence[Row], out_dir: Path) -> list[str]:
    """One grouped bar chart per workload (a bar group per metric, a bar per system, the
    medians normalised to the best system's = 1.0 so metrics of different units share an
    axis; the absolute median is printed on each bar). Returns the PNG file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    by_workload: dict[str, list[Row]] = {}
    for r in rows:
        by_workload.setdefault(r.workload, []).append(r)
    colors = {KAFKALIKE: "#4c72b0", KAFKA_ZK: "#dd8452", KAFKA_KRAFT: "#55a868"}
    names: list[str] = []
    for workload, group in by_workload.items():
        fig, ax = plt.subplots(figsize=(max(5.0, 1.9 * len(group) + 1.5), 3.6))
        width = 0.8 / len(SYSTEMS)
        for j, system in enumerate(SYSTEMS):
            xs, heights, labels = [], [], []
            for i, r in enumerate(group):
                m = r.medians[system]
                present = [v for v in r.medians.values() if v is not None]
                best = (max(present) if r.higher_is_better else min(present)) if present else None
                if m is None or not best:
                    continue
                xs.append(i + (j - 1) * width)
                heights.append(m / best)
                labels.append(format_number(m))
            bars = ax.bar(xs, heights, width, label=system, color=colors[system])
            for bar, label in zip(bars, labels):
                ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7, rotation=90)
        ax.set_xticks(range(len(group)))
        ax.set_xticklabels([f"{r.metric}\n({r.unit}, {'↑' if r.higher_is_better else '↓'})"
                            for r in group], fontsize=7)
        ax.set_ylabel("median / best system's")
        ax.set_title(workload, fontsize=10)
        ax.legend(fontsize=7)
        ax.margins(y=0.35)
        fig.tight_layout()
        name = "bench-" + "".join(c if c.isalnum() else "-" for c in workload).strip("-") + ".png"
        fig.savefig(out_dir / name, dpi=90)
        plt.close(fig)
        names.append(name)
    return names


FAILOVER_PREFIX = "failover, "


def failover_partitions(workload: str) -> int | None:
    """The partition count in a failover workload's name ("failover, 10,000 partitions" ->
    10000), None for any other workload."""
    if not workload.startswith(FAILOVER_PREFIX) or not workload.endswith(" partitions"):
        return None
    digits = workload[len(FAILOVER_PREFIX):-len(" partitions")].replace(",", "")
    return int(digits) if digits.isdigit() else None


def scaling_table(samples: Iterable[Sample]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{failover metric: {system: [(partitions, median seconds), ...] ascending}} from the
    samples of every "failover, N partitions" workload."""
    values: dict[tuple[str, str, int], list[float]] = {}
    for s in samples:
        n = failover_partitions(s.workload)
        if n is not None:
            values.setdefault((s.metric, s.system, n), []).append(s.value)
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for (metric, system, n), vs in sorted(values.items(), key=lambda kv: kv[0][2]):
        out.setdefault(metric, {}).setdefault(system, []).append((n, median(vs)))
    return out


def write_scaling_plot(samples: Iterable[Sample], out_dir: Path, name: str = "failover-scaling.png") -> str | None:
    """One panel per failover metric: median seconds against partition count (log-log), a
    line per system, so how each system scales from 100 to 10,000 and 30,000 partitions (the
    ``kafkalike.bench.scale`` piece, merged by ``kafkalike.bench.combine``) shows at a
    glance. Returns the PNG's file name, or None when there are fewer than two counts."""
    table = scaling_table(samples)
    counts = {n for per_system in table.values() for pts in per_system.values() for n, _ in pts}
    if len(counts) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    out_dir.mkdir(parents=True, exist_ok=True)
    colors = {KAFKALIKE: "#4c72b0", KAFKA_ZK: "#dd8452", KAFKA_KRAFT: "#55a868"}
    fig, axes = plt.subplots(1, len(table), figsize=(3.4 * len(table), 3.4), squeeze=False)
    for ax, (metric, per_system) in zip(axes[0], table.items()):
        for system in SYSTEMS:
            pts = per_system.get(system)
            if not pts:
                continue
            ax.plot([n for n, _ in pts], [v for _, v in pts], marker="o", label=system, color=colors[system])
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.yaxis.set_major_formatter(plain)
        ys = [v for pts in per_system.values() for _, v in pts if v > 0]
        if ys and max(ys) / min(ys) < 10:  # within a decade: label every minor tick
            ax.yaxis.set_minor_formatter(plain)
        else:  # 2s and 5s only, or the labels overlap
            ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
                lambda v, _: f"{v:g}" if f"{v:g}".lstrip("0.")[:1] in ("2", "5") else ""))
        ax.set_xlabel("partitions (RF 3)", fontsize=8)
        ax.set_ylabel("s (median)", fontsize=8)
        ax.set_title(metric, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=90)
    plt.close(fig)
    return name


def samples_to_json(samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """Samples as JSON-ready dicts (attrs field names)."""
    return [attrs.asdict(s) for s in samples]


def samples_from_json(data: Any) -> list[Sample]:
    """The inverse of ``samples_to_json``. Raises ReportError on malformed data."""
    if not isinstance(data, list):
        raise ReportError("samples file must hold a JSON list")
    try:
        return [Sample(**d) for d in data]
    except TypeError as e:
        raise ReportError(f"malformed sample: {e}") from e


def write_report(samples: Sequence[Sample], out_dir: Path, *, limits: dict[str, float] | None = None,
                 context: dict[str, Any] | None = None, plots: bool = True) -> Path:
    """Write ``report.md`` (+ ``samples.json``, ``limits.json`` and one PNG per workload
    when ``plots``) into ``out_dir``; returns the path of report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = summarize(samples, limits)
    names = write_plots(rows, out_dir) if plots and rows else []
    (out_dir / "samples.json").write_text(json.dumps(samples_to_json(samples), indent=1) + "\n")
    (out_dir / "limits.json").write_text(json.dumps(limits or {}, indent=1) + "\n")
    path = out_dir / "report.md"
    path.write_text(render_markdown(rows, context=context, limits=limits, plots=names))
    return path
