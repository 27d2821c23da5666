"""``kafkalike bench``: kafkalike side by side with Apache Kafka 3.9 (ZooKeeper and KRaft mode).

A thin face over ``kafkalike.bench.harness.run_bench`` (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import shlex
import sys

EXAMPLE = """examples:
  kafkalike bench --quick                                  # all three systems, a few minutes
  kafkalike bench --full --report bench-full               # long: 10,000-partition failovers
  kafkalike bench --full --workloads failover --failover-partitions 10000 --failover-rounds 1
  kafkalike bench --quick --systems kafkalike --tools librdkafka
  kafkalike bench --quick --workloads produce,consume --systems kafkalike,kafka-kraft
  kafkalike bench --quick --client-defaults --workloads produce,consume,latency \\
      --latency-rates 100,500,5000 --idle-partitions 0,1000
  kafkalike bench --full --workloads produce,consume,latency --background-load 2:50
                                                           # beside a CPU hog: 2 stress-ng workers at 50 %

systems: kafkalike, kafka-zk, kafka-kraft; tools: kafka-perf (Kafka's ProducerPerformance /
ConsumerPerformance, fetched with Maven), librdkafka; workloads: produce, consume, latency,
resources, failover. Exit status 0 when the report was written with no failed measurement,
1 when some measurement failed (listed in the report), 2 on a usage or set-up error."""


def _csv(choices: tuple[str, ...]):  # type: ignore[no-untyped-def]  # returns an argparse type callable
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices)}")
        return items
    return parse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from kafkalike.bench.harness import TOOLS, WORKLOADS
    from kafkalike.bench.report import SYSTEMS

    p = sub.add_parser("bench", help="benchmark kafkalike beside Apache Kafka 3.9 (ZK and KRaft mode)",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, a few minutes (default)")
    size.add_argument("--full", action="store_true", help="the full sizes (much longer)")
    p.add_argument("--systems", type=_csv(SYSTEMS), default=list(SYSTEMS),
                   help="comma-separated (default: all three)")
    p.add_argument("--tools", type=_csv(TOOLS), default=list(TOOLS), help="load generators (default: both)")
    p.add_argument("--workloads", type=_csv(WORKLOADS), default=list(WORKLOADS),
                   help="comma-separated (default: all)")
    p.add_argument("--report", default="bench-report", help="report directory (default bench-report)")
    p.add_argument("--records", type=int, default=None, help="records per produce run (overrides the size)")
    p.add_argument("--rounds", type=int, default=None, help="alternation rounds (overrides the size)")
    p.add_argument("--failover-partitions", default=None,
                   help="comma-separated partition counts of the failover topics (overrides the size)")
    p.add_argument("--failover-rounds", type=int, default=None,
                   help="trials of each failover measurement per partition count (overrides the size; "
                        "--full takes 3, and 1 at 5,000 partitions or more)")
    p.add_argument("--client-defaults", action="store_true",
                   help="also produce (acks=all) with each tool's default batching (--full does)")
    p.add_argument("--warmup", type=float, default=None,
                   help="discarded warm-up run per system and workload, as a fraction of the measured "
                        "size (default 1; 0 = none)")
    p.add_argument("--latency-rates", default=None,
                   help="comma-separated records/s of the latency workload (overrides the size, e.g. 100,500,5000)")
    p.add_argument("--idle-partitions", default=None,
                   help="comma-separated idle partition counts the latency workload also runs with "
                        "(overrides the size, e.g. 0,1000)")
    p.add_argument("--background-load", default=None, metavar="N[:P]",
                   help="run the workloads beside a fixed CPU hog: stress-ng --cpu N --cpu-load P "
                        "(N workers each busy P %% of the time, default 100; e.g. 2:50 is one core's worth)")
    p.add_argument("--work-dir", default=None, help="cluster data directory (default: a temporary one, removed)")
    p.add_argument("--install-iperf3", action="store_true", help="apt-get install iperf3 when missing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import attrs

    from kafkalike.bench.background_load import BackgroundLoadSpec
    from kafkalike.bench.harness import FULL, QUICK, run_bench
    from kafkalike.bench.systems import BenchError

    config = FULL if args.full else QUICK
    if args.records is not None:
        config = attrs.evolve(config, records=args.records)
    if args.rounds is not None:
        config = attrs.evolve(config, rounds=args.rounds)
    if args.failover_partitions is not None:
        try:
            counts = tuple(int(x) for x in args.failover_partitions.split(",") if x.strip())
        except ValueError:
            counts = ()
        if not counts or min(counts) < 1:
            print(f"kafkalike bench: --failover-partitions {args.failover_partitions!r}: "
                  "expected positive integers, e.g. 100,1000", file=sys.stderr)
            return 2
        config = attrs.evolve(config, failover_partitions=counts)
    if args.client_defaults:
        config = attrs.evolve(config, client_defaults=True)
    if args.warmup is not None:
        if args.warmup < 0:
            print(f"kafkalike bench: --warmup {args.warmup}: expected 0 or more", file=sys.stderr)
            return 2
        config = attrs.evolve(config, warmup=args.warmup)
    for flag, text, field, low in (("--latency-rates", args.latency_rates, "latency_rates", 1),
                                   ("--idle-partitions", args.idle_partitions, "latency_idle_partitions", 0)):
        if text is None:
            continue
        try:
            values = tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            values = ()
        if not values or min(values) < low:
            print(f"kafkalike bench: {flag} {text!r}: expected integers >= {low}, comma-separated",
                  file=sys.stderr)
            return 2
        config = attrs.evolve(config, **{field: values})
    background_load = None
    if args.background_load is not None:
        try:
            background_load = BackgroundLoadSpec.parse(args.background_load)
        except ValueError as e:
            print(f"kafkalike bench: --background-load {e}", file=sys.stderr)
            return 2
    if args.failover_rounds is not None:
        if args.failover_rounds < 1:
            print(f"kafkalike bench: --failover-rounds {args.failover_rounds}: expected at least 1",
                  file=sys.stderr)
            return 2
        config = attrs.evolve(config, failover_rounds=args.failover_rounds,
                              large_failover_rounds=args.failover_rounds)
    command = " ".join(shlex.quote(a) for a in [
        "kafkalike", "bench", "--full" if args.full else "--quick", "--systems", ",".join(args.systems),
        "--tools", ",".join(args.tools), "--workloads", ",".join(args.workloads), "--report", args.report,
        *(["--records", str(args.records)] if args.records is not None else []),
        *(["--rounds", str(args.rounds)] if args.rounds is not None else []),
        *(["--failover-partitions", args.failover_partitions] if args.failover_partitions else []),
        *(["--failover-rounds", str(args.failover_rounds)] if args.failover_rounds is not None else []),
        *(["--client-defaults"] if args.client_defaults else []),
        *(["--warmup", str(args.warmup)] if args.warmup is not None else []),
        *(["--latency-rates", args.latency_rates] if args.latency_rates else []),
        *(["--idle-partitions", args.idle_partitions] if args.idle_partitions else []),
        *(["--background-load", args.background_load] if args.background_load else [])])
    try:
        path = run_bench(config, args.systems, args.report, tools=args.tools, workloads=args.workloads,
                         work_dir=args.work_dir, install_iperf3=args.install_iperf3, command=command,
                         background_load=background_load)
    except BenchError as e:
        print(f"kafkalike bench: {e}", file=sys.stderr)
        return 2
    text = path.read_text()
    print(text)
    return 0 if "- **errors**: none" in text else 1
