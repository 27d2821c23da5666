"""``kafkalike chaos run|list|check|cleanup``: break a fresh local cluster and judge the history."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXAMPLE = """examples:
  kafkalike chaos list
  kafkalike chaos run --scenario leader-kill --duration 30s --report chaos-report
  kafkalike chaos run --nemesis random --duration 300s --seed 1 --report chaos-random-1
  kafkalike chaos run --backend compose --scenario leader-kill   # containers (./scripts/build-image first)
  kafkalike chaos run --scenario unclean-election      # expected to LOSE data; exit 0 if it does
  kafkalike chaos check chaos-report                    # judge a recorded history again
  kafkalike chaos cleanup                               # iptables rules left by a killed run
  kafkalike chaos campaign --runs 20 --duration 60s --report chaos-campaign   # many seeds, one summary

exit status: 0 when the verdict is what the scenario expects (valid; for unclean-election:
lost records reported), 1 otherwise, 2 on a usage or set-up error."""


def parse_duration(text: str) -> float:
    """Seconds from "60", "60s", "5m", "1.5m", "500ms"; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (e.g. 60s, 5m)")
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[m.group(2)]


def _kinds(text: str) -> str:
    """A --kinds value checked against faults.KINDS (unknown kind: a usage error), kept as text."""
    from kafkalike.chaos.faults import parse_kinds

    try:
        parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("chaos", help="chaos tests: faults under load, then a verdict on the history",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    csub = p.add_subparsers(dest="chaos_command", metavar="ACTION", required=True)
    run = csub.add_parser("run", help="start a fresh cluster, run a scenario under load, check, report",
                          epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--backend", choices=["local", "compose"], default="local",
                     help="where the cluster runs (local: processes on 127.0.0.x; compose: the containers "
                          "of compose/docker-compose.yml, image from ./scripts/build-image)")
    run.add_argument("--mode", choices=["zk", "kraft"], default="zk",
                     help="zk (default): a ZooKeeper ensemble + brokers; kraft: 3 controllers + 3 brokers "
                          "(local backend; kafkalike.chaos.kraft_backend maps the faults)")
    what = run.add_mutually_exclusive_group()
    what.add_argument("--scenario", help="a scenario name (kafkalike chaos list)")
    what.add_argument("--nemesis", choices=["random"], help="the seeded random nemesis")
    run.add_argument("--menu", choices=["v1", "v2"], default="v2",
                     help="the random nemesis's menu: v1 (the first campaigns' faults, to replay their seeds) or "
                          "v2 (v1 + expiry storms, full disks, clock jumps; default)")
    run.add_argument("--kinds", type=_kinds, default="",
                     help="restrict the random nemesis's draw to these fault kinds, e.g. disk-full,clock-jump "
                          "(\"new\": every kind menu v2 adds); recorded as the run's menu, e.g. v2:disk-full,...")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--duration", type=_duration, default=60.0, help="fault time, e.g. 60s, 5m (default 60s)")
    run.add_argument("--report", default=None, help="report directory (default: a new temporary one)")
    run.add_argument("--rate", type=float, default=50.0, help="records/s per producer (default 50)")
    run.add_argument("--producers", type=int, default=2)
    run.add_argument("--partitions", type=int, default=3)
    run.add_argument("--acks", choices=["all", "1", "0"], default="all")
    run.add_argument("--workload", choices=["keyed", "txn"], default="keyed",
                     help="keyed: idempotent keyed producers and a group (default); txn: transactions "
                          "(kafkalike.chaos.txn_workload, judged by kafkalike.chaos.txn_checker)")
    run.add_argument("--message-timeout-ms", type=int, default=120000,
                     help="producers' message.timeout.ms: an unacknowledged record fails (indefinitely) "
                          "after this (default 120000, Kafka's delivery.timeout.ms; shorter ones make "
                          "librdkafka bump the idempotent epoch and may duplicate records: docs/chaos.md)")
    run.add_argument("--session-timeout-ms", type=int, default=6000,
                     help="brokers' zookeeper.session.timeout.ms (default 6000)")
    run.add_argument("--keep", action="store_true",
                     help="leave the cluster's logs and data dirs in REPORT/cluster (always kept when the "
                          "verdict is not what the scenario expects)")
    run.set_defaults(func=_run)
    ls = csub.add_parser("list", help="the scenario library")
    ls.set_defaults(func=_list)
    chk = csub.add_parser("check", help="judge a recorded history (a file or a report directory)")
    chk.add_argument("path", help="history.jsonl, or a report directory holding one")
    chk.add_argument("--json", action="store_true", help="the verdict as JSON")
    chk.add_argument("--not-idempotent", action="store_true",
                     help="producers ran without enable.idempotence: duplicates are not anomalies")
    chk.set_defaults(func=_check)
    camp = csub.add_parser("campaign", help="N seeded random-nemesis runs, each on a fresh cluster, one summary",
                           epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    camp.add_argument("--runs", type=int, help="how many runs (required unless --summarize-only)")
    camp.add_argument("--summarize-only", action="store_true",
                      help="run nothing: rebuild --report DIR's summary from its run directories")
    camp.add_argument("--backend", choices=["local", "compose"], default="local")
    camp.add_argument("--mode", choices=["zk", "kraft"], default="zk",
                      help="control plane of every run: zk (default) or kraft (3 KRaft controllers; local only)")
    camp.add_argument("--duration", type=_duration, default=120.0, help="fault time per run (default 120s)")
    camp.add_argument("--seed-from", type=int, default=1, help="the first run's seed; run i uses it + i (default 1)")
    camp.add_argument("--report", default=None, help="campaign directory (default: a new temporary one)")
    camp.add_argument("--rate", type=float, default=50.0, help="records/s per producer (default 50)")
    camp.add_argument("--session-timeout-ms", type=int, default=6000,
                      help="brokers' zookeeper.session.timeout.ms (default 6000)")
    camp.add_argument("--menu", choices=["v1", "v2"], default="v2",
                      help="the random nemesis's menu, recorded with every run (default v2; v1 replays the "
                           "first campaigns' seeds)")
    camp.add_argument("--kinds", type=_kinds, default="",
                      help="every run's nemesis draws only these fault kinds (comma-separated; \"new\": every "
                           "kind menu v2 adds), to weight a campaign toward kinds with few injections; passed "
                           "to and recorded by every run")
    camp.set_defaults(func=_campaign)
    clean = csub.add_parser("cleanup", help="delete iptables rules left by a chaos run that was killed")
    clean.set_defaults(func=_cleanup)


def _list(args: argparse.Namespace) -> int:
    from kafkalike.chaos.scenarios import SCENARIOS

    for s in SCENARIOS.values():
        flags = (" [expects loss]" if s.expect == "lost" else "") + (" [own ZooKeeper]" if s.needs_zk else "")
        print(f"{s.name:<20} {s.summary}{flags}")
    return 0


def _check(args: argparse.Namespace) -> int:
    """Exit 0 valid, 1 invalid, 3 unknown, 2 unreadable."""
    from kafkalike.chaos.checker import CheckerOptions, check_file
    from kafkalike.chaos.history import HistoryError

    path = Path(args.path)
    if path.is_dir():
        path = path / "history.jsonl"
    try:
        verdict = check_file(str(path), CheckerOptions(idempotent=not args.not_idempotent, contiguous_offsets=True))
    except (OSError, HistoryError) as exc:
        print(f"kafkalike chaos check: {exc}", file=sys.stderr)
        return 2
    print(verdict.dumps() if args.json else verdict.render_text() + "VERDICT " + verdict.headline())
    return {"valid": 0, "invalid": 1}.get(verdict.status, 3)


def _campaign(args: argparse.Namespace) -> int:
    """Exit 0 when every run was valid, 1 otherwise, 2 on a usage error."""
    from kafkalike.chaos.campaign import CampaignOptions, resummarize, run_campaign

    if args.summarize_only:
        if not args.report:
            print("kafkalike chaos campaign: --summarize-only needs --report DIR", file=sys.stderr)
            return 2
        summary = resummarize(Path(args.report))
        print(f"summary: {Path(args.report) / 'summary.md'}")
        return 0 if summary.statuses.get("valid", 0) == summary.runs else 1
    if args.runs is None or args.runs < 1:
        print("kafkalike chaos campaign: --runs must be at least 1", file=sys.stderr)
        return 2
    if args.mode == "kraft" and args.backend != "local":
        print("kafkalike chaos campaign: --mode kraft runs on the local backend only", file=sys.stderr)
        return 2
    from kafkalike.chaos.faults import parse_kinds

    try:
        kinds = parse_kinds(args.kinds, args.menu)
    except ValueError as exc:
        print(f"kafkalike chaos campaign: {exc}", file=sys.stderr)
        return 2
    report = Path(args.report or tempfile.mkdtemp(prefix="kafkalike-chaos-campaign-"))

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        summary = run_campaign(CampaignOptions(args.runs, report, args.backend, args.duration, args.seed_from,
                                               args.session_timeout_ms, args.rate, args.menu, args.mode, kinds),
                               say=lambda s: print(s, flush=True),
                               command=(f"kafkalike chaos campaign --runs {args.runs} --backend {args.backend} "
                                        f"--mode {args.mode} "
                                        f"--duration {args.duration:g}s --seed-from {args.seed_from} "
                                        f"--menu {args.menu} "
                                        + (f"--kinds {','.join(kinds)} " if kinds else "") +
                                        f"--report {report}"))
    finally:
        signal.signal(signal.SIGTERM, old)
    print(f"summary: {report / 'summary.md'}")
    return 0 if summary.statuses.get("valid", 0) == summary.runs else 1


def _cleanup(args: argparse.Namespace) -> int:
    from kafkalike.chaos.local import purge_rules

    print(f"deleted {purge_rules()} iptables rule(s)")
    return 0


def _run(args: argparse.Namespace) -> int:
    import shutil

    from kafkalike.chaos.local import ChaosBackendError, LocalBackend, fault_surfaces, stop_earlier_cluster
    from kafkalike.chaos.runner import ChaosRunError, RunOptions, run_chaos
    from kafkalike.chaos.scenarios import SCENARIOS

    from kafkalike.chaos.faults import MenuSpec, fault_catalog, parse_kinds

    scenario = args.scenario or "random"
    try:
        menu = str(MenuSpec(args.menu, parse_kinds(args.kinds, args.menu)))
    except ValueError as exc:
        print(f"kafkalike chaos: {exc}", file=sys.stderr)
        return 2
    if args.kinds and scenario != "random":
        print("kafkalike chaos: --kinds restricts the random nemesis only (--nemesis random)", file=sys.stderr)
        return 2
    report = Path(args.report or tempfile.mkdtemp(prefix=f"kafkalike-chaos-{scenario}-"))
    report.mkdir(parents=True, exist_ok=True)
    base = report / "cluster"
    if base.exists():
        stop_earlier_cluster(base)  # a run killed -9 in this dir: stop its processes first
        shutil.rmtree(base)
    overrides = {"zookeeper.session.timeout.ms": str(args.session_timeout_ms),
                 "replica.lag.time.max.ms": "5000", "replica.fetch.wait.max.ms": "100",
                 "min.insync.replicas": "2", "unclean.leader.election.enable": "false",
                 "default.replication.factor": "3"}
    if args.mode == "kraft":
        from kafkalike.chaos.kraft_backend import KRaftBackend

        if args.backend != "local":
            print("kafkalike chaos: --mode kraft runs on the local backend only", file=sys.stderr)
            return 2
        backend: Any = KRaftBackend.create(base, overrides=overrides)
    elif args.backend == "compose":
        from kafkalike.chaos.compose import ComposeBackend

        known = SCENARIOS.get(scenario)
        surfaces = fault_surfaces(known.needs if known else (), args.menu if scenario == "random" else None)
        # of the optional fault surfaces, compose offers tmpfs log dirs (full disks) and the clock library
        backend = ComposeBackend.create(base, overrides=overrides, disk_mb=surfaces.get("disk_mb"),
                                        clock_faults=bool(surfaces.get("clock_faults")))
    else:
        known = SCENARIOS.get(scenario)
        backend = LocalBackend.create(base, brokers=3, overrides=overrides,
                                      **fault_surfaces(known.needs if known else (),
                                                       args.menu if scenario == "random" else None))

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    result = None
    try:
        where = f"compose project {backend.project}" if args.backend == "compose" else base
        first = "3 KRaft controllers" if args.mode == "kraft" else "a 3-node ZooKeeper ensemble"
        if args.kinds:
            try:  # a focus kind this backend does not offer: refused before anything starts
                fault_catalog(backend.session_timeout_s, bool(backend.zk_node_ids), menu,
                              with_disk=bool(getattr(backend, "disk_faults", False)),
                              with_clock=bool(getattr(backend, "clock_faults", False)),
                              with_spare=bool(getattr(backend, "spares", None)),
                              with_proxy=bool(getattr(backend, "zk_proxy", False)))
            except ValueError as exc:
                raise ChaosRunError(str(exc)) from None
        print(f"starting {first} and 3 brokers ({where}) ...", flush=True)
        backend.start()
        runner = run_chaos
        if args.workload == "txn":
            from kafkalike.chaos.txn_workload import run_txn_chaos

            runner = run_txn_chaos  # type: ignore[assignment]  # returns a TxnRunResult (.as_expected)
        result = runner(backend, RunOptions(report, scenario=scenario, duration=args.duration, seed=args.seed,
                                               partitions=args.partitions, producers=args.producers,
                                               rate=args.rate, acks=args.acks,
                                               message_timeout_ms=args.message_timeout_ms, menu=menu),
                           say=lambda s: print(s, flush=True))
    except (ChaosRunError, ChaosBackendError) as exc:
        print(f"kafkalike chaos: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.backend == "compose" and (args.keep or result is None or not result.as_expected):
            backend.save_logs(base / "logs")
        backend.close()
        signal.signal(signal.SIGTERM, old)
        if result is None or not result.as_expected:  # set-up failures keep their logs too
            print(f"keeping the cluster's logs and data dirs for inspection: {base}")
        elif not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"run took {time.monotonic() - started:.0f}s")
    return 0 if result.as_expected else 1
