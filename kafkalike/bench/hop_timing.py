"""Hop timing of an acks=all round trip: the 100 records/s end-to-end latency workload
against a kafkalike cluster whose brokers log a ``request_hops`` line per Produce and Fetch
(``kafkalike.debug.request.hops=true``, broker/request_hops.py), then the median of each
hop over the run.

    python -m kafkalike.bench.hop_timing [--rate 100] [--seconds 30] [--zookeeper HOST:PORT]
        [--kafka] [--before DIR] [--rounds N] [--no-hops]
        [--produce-records N | --consume-records N [--cold]]

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
import contextlib
import os
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
    delayed_only: bool = True


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
    return HopSummary(kind, len(chosen), tuple(rows), delayed_only)


def format_summary(s: HopSummary) -> str:
    """A plain-text table of one HopSummary."""
    out = [f"{s.kind} requests{' that waited' if s.delayed_only else ''}: {s.requests}"]
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


@attrs.frozen
class SystemResult:
    """One system of a hop-timing run: its label, the end-to-end LatencyResult of each round
    and the hop summaries over all rounds (none for Kafka: its brokers log no hops);
    ``produce_rates``: records/s of each round instead, when the run was a throughput run."""

    label: str
    latencies: tuple[Any, ...]
    summaries: tuple[HopSummary, ...]
    produce_rates: tuple[float, ...] = ()
    cpu_ms_per_1k: tuple[float, ...] = ()  # the brokers' CPU (user + system) per 1,000 records, each round


def drop_page_cache() -> None:
    """Write dirty pages out and drop the clean ones from the page cache (``sync``; ``echo 1 >
    /proc/sys/vm/drop_caches``): the next reads of any log come from the disk. Raises
    BenchError when not permitted (not root, or a container without /proc/sys write access)."""
    from kafkalike.bench.workloads import BenchError

    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as exc:
        raise BenchError(f"cannot drop the page cache: {exc}") from exc


def _start_kafkalike(work_dir: Path, label: str, zookeeper_connect: str, source: Path | None,
                     hops: bool = True) -> Any:
    """A 3-broker kafkalike with hop timing on (unless not ``hops``); ``source``: a kafkalike
    source tree whose code the broker processes run (cwd and PYTHONPATH point there while they
    are spawned), else this checkout's."""
    from kafkalike.bench.systems import KafkalikeSystem, processes_run_from
    from kafkalike.cluster.zk_ensemble import find_free_base_port

    port = find_free_base_port([f"127.0.0.{i}" for i in (1, 2, 3)], low=30000, high=32000)
    system = KafkalikeSystem(work_dir / label, zookeeper_connect, port, chroot=f"hops-{label}-{uuid.uuid4().hex[:6]}",
                             overrides={HOPS_KEY: "true" if hops else "false"})
    system.name = label
    # cwd too, not only PYTHONPATH: `python -m` puts the cwd first on sys.path, so with
    # PYTHONPATH alone the brokers ran this checkout's code whatever ``source`` was
    with processes_run_from(source) if source is not None else contextlib.nullcontext():
        system.up()
    return system


def run(rate: int, seconds: float, zookeeper_connect: str | None, work_dir: Path, rounds: int = 1,
        before: Path | None = None, kafka: bool = False, after: Path | None = None,
        warmup: float = 0.0, produce_records: int = 0, consume_records: int = 0,
        hops: bool = True, cold: bool = False) -> list[SystemResult]:
    """Start a 3-broker kafkalike cluster with hop timing on (plus, with ``before``, a second
    one running the kafkalike source tree at that path; ``after``: run the first one from that
    tree too instead of this checkout; with ``kafka`` Apache Kafka 3.9
    in ZooKeeper mode), all on one ZooKeeper ensemble (started here unless
    ``zookeeper_connect``); then ``rounds`` rounds of the end-to-end latency workload at
    ``rate`` records/s for ``seconds``, each on a fresh 6-partition RF 3 topic, the systems
    rotated per round, after a discarded ``warmup``-second run per system (0: none); stop
    everything by pid. With ``produce_records`` each round (and warm-up) is instead Kafka's
    ProducerPerformance at its client defaults (acks=all, batch.size 16 KiB, linger.ms 0) sending
    that many 100 B records as fast as it can: the hops of a saturated acks=all Produce path.
    With ``consume_records`` each round (and warm-up) writes that many records with
    ProducerPerformance at acks=1 and the bench's tuned batching (batch.size 256 KiB, linger.ms 5:
    the topic ``kafkalike bench``'s consume workload reads; not timed) and then reads them with
    Kafka's ConsumerPerformance in a new group, as that workload does: the rates are its
    fetch-only records/s, and the consumer Fetch hops are summarised over every consumer Fetch,
    not only those that waited.
    With ``cold`` (and ``consume_records``) the page cache is dropped between the write and the
    read (``sync``, then ``echo 1 > /proc/sys/vm/drop_caches``; root only): a consumer catching
    up on data that must come from the disk. BenchError when the cache cannot be dropped.
    Every round also records the brokers' CPU (user + system seconds of their processes, from
    /proc) per 1,000 records of the round: a steadier figure than rates for a before/after pair.
    ``hops`` False: the kafkalike brokers log no hop lines (their own cost, ~20 % of a broker's
    CPU at 100 records/s), so CPU and latency are as in ``kafkalike bench``; no hop summaries.
    Returns one SystemResult per system."""
    from kafkalike.bench import workloads as wl
    from kafkalike.bench.systems import ReferenceSystem, create_topic, rotated, stop_systems
    from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

    ensemble = None
    live: dict[str, Any] = {}
    offsets: dict[str, dict[int, int]] = {}
    latencies: dict[str, list[Any]] = {}
    rates: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    tools = wl.tool_runner(work_dir)  # only used with produce_records / consume_records; starts nothing

    def throughput_round(system: Any, topic: str) -> float:
        """records/s of one round (or warm-up) of the throughput workload chosen."""
        if consume_records:
            # written as kafkalike bench's consume workload reads it: its first produce run (acks=1, tuned)
            wl.produce_kafka_perf(system, tools, topic, consume_records, "1", None)
            if cold:
                drop_page_cache()
            return wl.consume_kafka_perf(system, tools, topic, consume_records).fetch_records_per_sec
        return wl.produce_kafka_perf(system, tools, topic, produce_records, "all", wl.CLIENT_DEFAULTS).records_per_sec

    try:
        hosts = [f"127.0.0.{i}" for i in (1, 2, 3)]
        if zookeeper_connect is None:
            ensemble = ZkEnsemble(work_dir / "zk", nodes=3, base_port=find_free_base_port(hosts),
                                  die_with_parent=True)
            ensemble.start(timeout=90)
            zookeeper_connect = ensemble.connect_string
        if before is not None:
            live["kafkalike-before"] = None
            live["kafkalike-before"] = _start_kafkalike(work_dir, "kafkalike-before", zookeeper_connect, before, hops)
        live["kafkalike"] = None
        live["kafkalike"] = _start_kafkalike(work_dir, "kafkalike", zookeeper_connect, after, hops)
        if kafka:
            from kafkalike.bench import reference_kafka as rkmod

            rkmod.fetch()
            port = rkmod.find_free_port([f"127.0.1.{i}" for i in (1, 2, 3)], span=2, start=33000, stop=40000)
            ref = ReferenceSystem(work_dir / "kafka-zk", "zk", port, zookeeper_connect=zookeeper_connect,
                                  chroot=f"/hops-kafka-zk-{uuid.uuid4().hex[:6]}")
            live["kafka-zk"] = ref
            ref.up()
        if warmup > 0:  # discarded, as kafkalike bench's warm-up: JIT for the JVMs, caches for all
            for label, system in live.items():
                create_topic(system.bootstrap, "hops-warm-up", 6, 3, timeout=120)
                if produce_records or consume_records:
                    throughput_round(system, "hops-warm-up")
                else:
                    wl.end_to_end_latency(system, "hops-warm-up", rate, warmup)
                print(f"  warm-up {label} (discarded)", flush=True)
        for label, system in live.items():  # hop lines are read from here on
            if label != "kafka-zk":
                offsets[label] = {b: system.cluster.log_path(b).stat().st_size for b in system.cluster.broker_ids}
        for rnd in range(rounds):
            for label in rotated(list(live), rnd):
                system = live[label]
                topic = f"hops-{rate}-r{rnd}"
                create_topic(system.bootstrap, topic, 6, 3, timeout=120)
                pids = list(system.pids().values())
                cpu0 = sum(wl.cpu_seconds(pid) for pid in pids)
                if produce_records or consume_records:
                    rates.setdefault(label, []).append(throughput_round(system, topic))
                    records = float(produce_records or consume_records)
                    line = f"{rates[label][-1]:,.0f} records/s"
                else:
                    res = wl.end_to_end_latency(system, topic, rate, seconds)
                    latencies.setdefault(label, []).append(res)
                    records = res.delivered_rate * seconds
                    line = (f"p50 {res.p50_ms:8.2f} ms  p99 {res.p99_ms:8.2f} ms  "
                            f"delivered {res.delivered_rate:,.0f}/s")
                used = sum(wl.cpu_seconds(pid) for pid in pids) - cpu0
                cpu.setdefault(label, []).append(used * 1e6 / max(records, 1.0))
                print(f"  round {rnd} {label:<18} {line}  broker CPU {cpu[label][-1]:,.1f} ms per 1,000 records",
                      flush=True)
    finally:
        stop_systems({k: v for k, v in live.items() if v is not None}, ensemble, "hop_timing_stop_failed")
    results = []
    for label, system in live.items():
        lines: list[HopLine] = []  # read once the brokers stopped: their last lines are flushed
        for b, offset in offsets.get(label, {}).items():
            with open(system.cluster.log_path(b), errors="replace") as f:
                f.seek(offset)
                lines.extend(parse_hop_lines(f))
        summaries = (summarize(lines, "produce", PRODUCE_HOPS), summarize(lines, "follower", FETCH_HOPS),
                     summarize(lines, "consumer", FETCH_HOPS, delayed_only=not consume_records)
                     ) if hops and label in offsets else ()
        results.append(SystemResult(label, tuple(latencies.get(label, ())), summaries, tuple(rates.get(label, ())),
                                    tuple(cpu.get(label, ()))))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kafkalike.bench.hop_timing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=100, help="records/s (default 100)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each round (default 30)")
    p.add_argument("--rounds", type=int, default=1, help="rounds per system, systems rotated (default 1)")
    p.add_argument("--before", type=Path, default=None,
                   help="also run a kafkalike source tree (e.g. `git archive <commit> | tar -x -C DIR`) "
                        "side by side, labelled kafkalike-before")
    p.add_argument("--after", type=Path, default=None,
                   help="run the kafkalike cluster from this source tree instead of this checkout")
    p.add_argument("--kafka", action="store_true", help="also run Apache Kafka 3.9 in ZooKeeper mode")
    p.add_argument("--warmup", type=float, default=10.0,
                   help="seconds of a discarded warm-up run per system first (default 10; 0 = none)")
    p.add_argument("--zookeeper", default=None, help="an existing ensemble (default: start one)")
    p.add_argument("--no-hops", action="store_true",
                   help="kafkalike brokers log no hop lines (their own cost left out: CPU and latency as in "
                        "kafkalike bench; no hop summaries)")
    p.add_argument("--produce-records", type=int, default=0,
                   help="instead of the latency workload: Kafka's ProducerPerformance at client defaults "
                        "(acks=all, batch.size 16 KiB, linger.ms 0), this many records per round and warm-up")
    p.add_argument("--consume-records", type=int, default=0,
                   help="instead of the latency workload: write this many records per round and warm-up, then "
                        "read them with Kafka's ConsumerPerformance (fetch-only records/s; every consumer Fetch's hops)")
    p.add_argument("--cold", action="store_true",
                   help="with --consume-records: drop the page cache between the write and the read (root only), "
                        "so the consumer catches up from the disk")
    args = p.parse_args(argv)
    load0 = Path("/proc/loadavg").read_text().split()[0]
    with tempfile.TemporaryDirectory(prefix="kafkalike-hops-") as d:
        t0 = time.monotonic()
        results = run(args.rate, args.seconds, args.zookeeper, Path(d), args.rounds, args.before, args.kafka, args.after,
                      args.warmup, args.produce_records, args.consume_records, hops=not args.no_hops, cold=args.cold)
    load1 = Path("/proc/loadavg").read_text().split()[0]
    if args.consume_records:
        print(f"ConsumerPerformance (fetch only{', page cache dropped first' if args.cold else ''}), "
              f"{args.consume_records:,} records x {args.rounds} rounds per system "
              f"(load average {load0} before, {load1} after; {time.monotonic() - t0:.0f} s):")
    elif args.produce_records:
        print(f"ProducerPerformance at client defaults, acks=all, {args.produce_records:,} records x {args.rounds} "
              f"rounds per system (load average {load0} before, {load1} after; {time.monotonic() - t0:.0f} s):")
    else:
        print(f"end-to-end latency at {args.rate} records/s acks=all, {args.rounds} x {args.seconds:g} s per system "
              f"(load average {load0} before, {load1} after; {time.monotonic() - t0:.0f} s):")
    for r in results:
        cpu_line = (f"  {'':<18} broker CPU {statistics.median(r.cpu_ms_per_1k):,.1f} ms per 1,000 records "
                    f"(median; rounds {', '.join(f'{x:,.1f}' for x in r.cpu_ms_per_1k)})") if r.cpu_ms_per_1k else None
        if r.produce_rates:
            print(f"  {r.label:<18} {statistics.median(r.produce_rates):,.0f} records/s (median; rounds "
                  f"{', '.join(f'{x:,.0f}' for x in r.produce_rates)})")
        else:
            p50 = statistics.median(x.p50_ms for x in r.latencies)
            p99 = statistics.median(x.p99_ms for x in r.latencies)
            print(f"  {r.label:<18} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  (median over {len(r.latencies)} rounds; "
                  f"p50s {', '.join(f'{x.p50_ms:.2f}' for x in r.latencies)})")
        if cpu_line:
            print(cpu_line)
    for r in results:
        for s in r.summaries:
            print(f"[{r.label}] " + format_summary(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
