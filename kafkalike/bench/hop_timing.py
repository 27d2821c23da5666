"""Hop timing of an acks=all round trip: the 100 records/s end-to-end latency workload
against a kafkalike cluster whose brokers log a ``request_hops`` line per Produce and Fetch
(``kafkalike.debug.request.hops=true``, broker/request_hops.py), then the median of each
hop over the run.

    python -m kafkalike.bench.hop_timing [--rate 100] [--seconds 30] [--zookeeper HOST:PORT]

Prints the end-to-end percentiles (librdkafka producer acks=all linger.ms=0 and an
assigned librdkafka consumer, as ``kafkalike bench``'s latency workload) and the median,
in ms, of each hop of

- the leader's acks=all Produce requests that waited for followers: frame read → handler
  started (queued behind the connection's earlier requests) → appended
  → the follower's previous Fetch response written → that follower's next Fetch received
  → high watermark advanced → Produce task woken → response encoded → response written;
- follower and consumer Fetch requests that waited in the purgatory: frame read → started → data
  read (purgatory completion) → task woken → response encoded → response written.

Marks are perf_counter_ns of the broker process; hops between two marks of one request are
exact, the follower hops link two requests on the same broker (the Fetch that completed the
DelayedProduce). Medians of hops do not add up to the median total.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

HOPS_KEY = "kafkalike.debug.request.hops"

PRODUCE_HOPS: tuple[tuple[str, str, str], ...] = (
    ("frame read → handler started (queued behind the connection's requests)", "received", "started"),
    ("started → appended (local append)", "started", "appended"),
    ("appended → follower's Fetch response written", "appended", "follower_prev_written"),
    ("follower turnaround (response written → next Fetch read)", "follower_prev_written",
     "follower_fetch_received"),
    ("follower Fetch read → high watermark advanced", "follower_fetch_received", "hw_advanced"),
    ("high watermark → Produce task woken", "hw_advanced", "woken"),
    ("woken → response encoded", "woken", "response_queued"),
    ("response encoded → written", "response_queued", "written"),
    ("total (read → written)", "received", "written"),
)
FETCH_HOPS: tuple[tuple[str, str, str], ...] = (
    ("frame read → handler started (queued)", "received", "started"),
    ("started → data read (purgatory wait)", "started", "read"),
    ("data read → task woken", "read", "woken"),
    ("woken → response encoded", "woken", "response_queued"),
    ("response encoded → written", "response_queued", "written"),
    ("total (read → written)", "received", "written"),
)

_FIELD = re.compile(r"(\w+)=(\S+)")


@attrs.frozen
class HopLine:
    """One ``request_hops`` log line: api (Produce, Fetch), kind (produce, follower,
    consumer), delayed (waited in a purgatory), marks {name: µs after the frame was read;
    "received" is 0}."""

    api: str
    kind: str
    delayed: bool
    marks: dict[str, int]


def parse_hop_lines(lines: Iterable[str]) -> list[HopLine]:
    """The ``request_hops`` lines among broker log ``lines`` (structlog's console format,
    key=value fields); other lines are skipped."""
    out = []
    for line in lines:
        if " request_hops " not in line:
            continue
        fields = dict(_FIELD.findall(line))
        marks = {"received": 0}
        for k, v in fields.items():
            if k.endswith("_us"):
                marks[k[:-3]] = int(v)
        out.append(HopLine(fields.get("api", "?"), fields.get("kind", "?"), fields.get("delayed") == "True",
                           marks))
    return out


@attrs.frozen
class HopSummary:
    """Median (and count) of each hop, in ms, over the lines of one kind: rows of
    (hop name, median ms, samples)."""

    kind: str
    requests: int
    rows: tuple[tuple[str, float, int], ...]


def summarize(lines: Sequence[HopLine], kind: str, hops: Sequence[tuple[str, str, str]],
              delayed_only: bool = True) -> HopSummary:
    """Median of each hop (``hops``: (name, from mark, to mark)) over the lines of ``kind``
    (those that waited in a purgatory when ``delayed_only``); a hop is counted for the
    lines that carry both marks."""
    chosen = [ln for ln in lines if ln.kind == kind and (ln.delayed or not delayed_only)]
    rows = []
    for name, a, b in hops:
        values = [(ln.marks[b] - ln.marks[a]) / 1000.0 for ln in chosen if a in ln.marks and b in ln.marks]
        rows.append((name, statistics.median(values) if values else float("nan"), len(values)))
    return HopSummary(kind, len(chosen), tuple(rows))


def format_summary(s: HopSummary) -> str:
    """A plain-text table of one HopSummary."""
    out = [f"{s.kind} requests that waited: {s.requests}"]
    for name, ms, n in s.rows:
        out.append(f"  {name:<60} {ms:>8.3f} ms  (n={n})")
    return "\n".join(out)


def broker_hop_lines(log_paths: Iterable[Path]) -> list[HopLine]:
    """Every request_hops line of the given broker logs."""
    lines: list[HopLine] = []
    for p in log_paths:
        with open(p, errors="replace") as f:
            lines.extend(parse_hop_lines(f))
    return lines


def run(rate: int, seconds: float, zookeeper_connect: str | None, work_dir: Path) -> dict[str, Any]:
    """Start a 3-broker kafkalike cluster with hop timing on (its own ZooKeeper ensemble
    unless ``zookeeper_connect``), run the end-to-end latency workload at ``rate`` for
    ``seconds`` on a fresh 6-partition RF 3 topic, stop everything by pid; returns
    {"latency": LatencyResult, "summaries": [HopSummary...]}."""
    from kafkalike.bench import workloads as wl
    from kafkalike.bench.systems import KafkalikeSystem, create_topic, stop_systems
    from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

    ensemble = None
    live: dict[str, Any] = {}
    try:
        hosts = [f"127.0.0.{i}" for i in (1, 2, 3)]
        if zookeeper_connect is None:
            ensemble = ZkEnsemble(work_dir / "zk", nodes=3, base_port=find_free_base_port(hosts),
                                  die_with_parent=True)
            ensemble.start(timeout=90)
            zookeeper_connect = ensemble.connect_string
        port = find_free_base_port(hosts, low=30000, high=32000)
        system = KafkalikeSystem(work_dir / "kafkalike", zookeeper_connect, port,
                                 chroot=f"hops-{uuid.uuid4().hex[:6]}", overrides={HOPS_KEY: "true"})
        live["kafkalike"] = system
        system.up()
        topic = f"hops-{rate}"
        create_topic(system.bootstrap, topic, 6, 3, timeout=120)
        start_offsets = {b: system.cluster.log_path(b).stat().st_size for b in system.cluster.broker_ids}
        latency = wl.end_to_end_latency(system, topic, rate, seconds)
    finally:
        stop_systems(live, ensemble, "hop_timing_stop_failed")
    lines: list[HopLine] = []  # read once the brokers stopped: their last lines are flushed
    for b, offset in start_offsets.items():
        with open(system.cluster.log_path(b), errors="replace") as f:
            f.seek(offset)
            lines.extend(parse_hop_lines(f))
    summaries = [summarize(lines, "produce", PRODUCE_HOPS), summarize(lines, "follower", FETCH_HOPS),
                 summarize(lines, "consumer", FETCH_HOPS)]
    return {"latency": latency, "summaries": summaries}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kafkalike.bench.hop_timing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=100, help="records/s (default 100)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the run (default 30)")
    p.add_argument("--zookeeper", default=None, help="an existing ensemble (default: start one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kafkalike-hops-") as d:
        t0 = time.monotonic()
        res = run(args.rate, args.seconds, args.zookeeper, Path(d))
    lat = res["latency"]
    print(f"end-to-end latency at {args.rate} records/s acks=all for {args.seconds:g} s "
          f"(load average {Path('/proc/loadavg').read_text().split()[0]}, {time.monotonic() - t0:.0f} s): "
          f"p50 {lat.p50_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms, p99.9 {lat.p999_ms:.2f} ms, n={lat.samples}")
    for s in res["summaries"]:
        print(format_summary(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
