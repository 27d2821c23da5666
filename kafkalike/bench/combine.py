"""Merge the reports of several ``kafkalike bench`` runs (the pieces of one ``--full`` run,
e.g. ``--workloads produce,consume,latency,resources`` and ``--workloads failover``, and a
``python -m kafkalike.bench.scale --partitions 30000`` report) into one report, with a
failover-scaling plot over every partition count measured.

    python -m kafkalike.bench.combine OUT_DIR REPORT_DIR [REPORT_DIR ...]

Each REPORT_DIR is a ``--report`` directory (its samples.json, limits.json and report.md);
OUT_DIR gets report.md (one table over all samples, the pieces' context lines, the machine
limits of every piece), samples.json, limits.json, the per-workload PNGs of report.py and
failover-scaling.png. Samples are taken as they are: every piece's systems were measured in
the same run as each other, which is what the ratios need.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from kafkalike.bench.report import (ReportError, Sample, median, samples_from_json, write_report,
                                    write_scaling_plot)


def read_piece(report_dir: Path) -> tuple[list[Sample], dict[str, float], dict[str, str]]:
    """(samples, limits, context) of one report directory; context is report.md's
    "- **key**: value" lines. Raises ReportError when samples.json is missing or malformed."""
    try:
        samples = samples_from_json(json.loads((report_dir / "samples.json").read_text()))
    except (OSError, ValueError) as e:
        raise ReportError(f"{report_dir}: no readable samples.json: {e}") from e
    try:
        limits = {k: float(v) for k, v in json.loads((report_dir / "limits.json").read_text()).items()}
    except (OSError, ValueError, AttributeError):
        limits = {}
    context: dict[str, str] = {}
    try:
        for line in (report_dir / "report.md").read_text().splitlines():
            if line.startswith("- **") and "**: " in line:
                key, value = line[4:].split("**: ", 1)
                context[key] = value
    except OSError:
        pass
    return samples, limits, context


def combine(out_dir: Path, report_dirs: Sequence[Path]) -> Path:
    """Write the merged report into ``out_dir`` and return its report.md path (see module doc).
    Limits: the median over the pieces of each limit. Raises ReportError on an unreadable
    piece."""
    samples: list[Sample] = []
    limit_values: dict[str, list[float]] = {}
    context: dict[str, str] = {}
    for i, d in enumerate(report_dirs, 1):
        s, lim, ctx = read_piece(Path(d))
        samples.extend(s)
        for k, v in lim.items():
            limit_values.setdefault(k, []).append(v)
        for key in ("command", "configuration", "load average before / after", "wall time", "date", "errors"):
            if key in ctx:
                context[f"piece {i} {key}"] = ctx[key]
        for key in ("systems", "load generators", "machine"):
            if key in ctx and key not in context:
                context[key] = ctx[key]
    limits = {k: median(v) for k, v in limit_values.items()}
    path = write_report(samples, out_dir, limits=limits, context=context)
    plot = write_scaling_plot(samples, out_dir)
    if plot:
        with path.open("a") as f:
            f.write(f"\n![{plot}]({plot})\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kafkalike.bench.combine", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("report_dirs", nargs="+")
    args = parser.parse_args(argv)
    try:
        path = combine(Path(args.out_dir), [Path(d) for d in args.report_dirs])
    except ReportError as e:
        print(f"combine: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
