"""``kafkalike compare``: the same control-plane scenarios on kafkalike's ZooKeeper mode and KRaft
mode (issue 21). A thin face over ``kafkalike.bench.compare.run_compare`` (docs/kraft.md,
"Comparing the two control planes")."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLE = """examples:
  kafkalike compare --partitions 100 --rounds 1 --report compare-100
  kafkalike compare --partitions 100,1000,10000 --scenarios broker_failure,controller_failover
  kafkalike compare --merge compare-100,compare-1000 --report compare-all

systems: kafkalike-zk (3 brokers + a 3-node ZooKeeper ensemble), kafkalike-kraft (3 brokers +
3 controllers); Kafka's own kafka-zk / kafka-kraft are not compared by this command.
scenarios: controller_failover, broker_failure, controlled_shutdown, create_partitions,
metadata_propagation, cold_restart. Exit status 0 when every scenario ran, 1 when one failed
(listed in the report)."""


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from kafkalike.bench.compare_scenarios import SCENARIOS, SYSTEMS

    def choice(allowed: tuple[str, ...]):  # type: ignore[no-untyped-def]  # an argparse type callable
        def parse(text: str) -> list[str]:
            items = _csv(text)
            bad = [t for t in items if t not in allowed]
            if bad or not items:
                raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(allowed)}")
            return items
        return parse

    p = sub.add_parser("compare", help="the same faults on kafkalike's ZooKeeper mode and KRaft mode",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", type=choice(SYSTEMS), default=list(SYSTEMS), help="comma-separated (default: both)")
    p.add_argument("--partitions", default="100,1000,10000", help="comma-separated partition counts")
    p.add_argument("--scenarios", type=choice(SCENARIOS), default=list(SCENARIOS), help="comma-separated (default: all)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each scenario (default 3)")
    p.add_argument("--report", default="compare-report", help="report directory (default compare-report)")
    p.add_argument("--work-dir", default=None, help="cluster data directory (default: a temporary one, removed)")
    p.add_argument("--merge", default=None, help="comma-separated report dirs: write one report from their results")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kafkalike.bench.compare import load_results, run_compare, write_report

    report = Path(args.report)
    if args.merge:
        results = load_results(Path(d) for d in _csv(args.merge))
        print(f"report: {write_report(results, report)}")
        return 1 if results["errors"] else 0
    partitions = [int(x) for x in _csv(args.partitions)]
    results = run_compare(args.systems, partitions, args.scenarios, args.rounds, report,
                          Path(args.work_dir) if args.work_dir else None)
    print(f"report: {report / 'report.md'}")
    return 1 if results["errors"] else 0
