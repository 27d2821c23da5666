"""Controller failover and controlled shutdown of one kafkalike cluster holding a topic of N
partitions (RF 3, 3 brokers, ZooKeeper mode), for before/after pairs of the controller's own
work (issue 24), optionally with each broker's event-loop thread under cProfile.

    python -m kafkalike.bench.controller_failover --partitions 10000 \\
        [--tree before=/tmp/before --tree after=/tmp/after] [--rounds 2] [--profile DIR]

Each ``--tree LABEL=DIR`` is a kafkalike source tree (``git archive <commit> | tar -x -C DIR``)
whose code the broker processes run (PYTHONPATH while they are spawned); without one, this
checkout runs, labelled ``here``. Every tree gets its own 3-broker cluster on one ZooKeeper
ensemble, all up at once; per round the trees are visited in rotated order and each measures,
with ``kafkalike bench``'s failover functions (kafkalike/bench/workloads.py):

1. ``controller``: kill -9 of the active controller → the first CreateTopics that succeeds and
   has a leader (the new controller read the cluster from ZooKeeper, sent LeaderAndIsr and
   UpdateMetadata, and removed the dead broker from the ISRs); the killed broker is restarted
   and every ISR is full again before the next step;
2. ``shutdown``: SIGTERM (controlled shutdown: the controller moves the broker's leaderships
   away first) of the non-controller broker leading most partitions → its process exited;
   restarted and ISRs full again.

Each step also reports the CPU seconds the brokers other than the killed / stopped one used
during it (/proc): the work the step cost, less dependent on the machine's load than its wall
time.

``--profile DIR``: the brokers run with a sitecustomize that profiles their main thread (the
trio loop: the controller and the request handlers) with cProfile from just before a step to
just after it (SIGUSR2 toggles it; a broker that exits while profiling dumps at exit), and
writes ``DIR/<label>-r<round>-<step>-broker<id>.prof``; the top functions by own and
cumulative time of the broker that did most of the work are printed. cProfile roughly doubles
the cost of Python calls: use the profiled run to find the costs and unprofiled runs for the
figures.

``--request-builds N``: no cluster; in one process per tree (rotated, N rounds), the CPU time
of one controller batch's requests at ``--partitions``: LeaderAndIsr for every partition to 3
brokers and UpdateMetadata of every partition to 3 brokers, built with the tree's
ControllerBrokerRequestBatch as its brokers' send tasks would build them (each queued
``build(version)`` called once, at the newest versions), then encoded. Prints per tree the
median ms of adding the partitions to the batch, of building, and of encoding.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pstats
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

#: sitecustomize for profiled brokers: SIGUSR2 starts cProfile on the main thread, the next
#: SIGUSR2 stops it and writes the stats to $KAFKALIKE_CPROFILE_DIR/<pid>-<n>.prof; a broker
#: that exits while profiling writes them at exit.
_SITECUSTOMIZE = r"""
import atexit, cProfile, os, signal
_dir = os.environ["KAFKALIKE_CPROFILE_DIR"]
_state = {"prof": None, "n": 0}
def _dump():
    prof = _state["prof"]
    if prof is not None:
        prof.disable()
        _state["prof"] = None
        path = os.path.join(_dir, f"{os.getpid()}-{_state['n']}.prof")
        prof.dump_stats(path + ".tmp")
        os.replace(path + ".tmp", path)
        _state["n"] += 1
def _toggle(*_):
    if _state["prof"] is None:
        _state["prof"] = cProfile.Profile()
        _state["prof"].enable()
    else:
        _dump()
signal.signal(signal.SIGUSR2, _toggle)
atexit.register(_dump)
"""

STEPS = ("controller", "shutdown")


@contextlib.contextmanager
def _code_of(work_dir: Path, label: str, source: Path | None, profile_dir: Path | None) -> Iterator[None]:
    """Within the block, broker processes spawned run ``source``'s code (cwd and PYTHONPATH
    point there: ``python -m`` puts the cwd first on sys.path), with the profiling
    sitecustomize first on PYTHONPATH when ``profile_dir`` is given."""
    from kafkalike.bench.systems import processes_run_from

    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "KAFKALIKE_CPROFILE_DIR")}
    with processes_run_from(source) if source is not None else contextlib.nullcontext():
        try:
            if profile_dir is not None:
                site = work_dir / "sitecustomize"
                site.mkdir(parents=True, exist_ok=True)
                (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
                raw = profile_dir / "raw" / label
                raw.mkdir(parents=True, exist_ok=True)
                os.environ["KAFKALIKE_CPROFILE_DIR"] = str(raw)
                os.environ["PYTHONPATH"] = os.pathsep.join(
                    [str(site)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _start(work_dir: Path, label: str, zookeeper_connect: str, source: Path | None,
           profile_dir: Path | None) -> Any:
    from kafkalike.bench.systems import KafkalikeSystem
    from kafkalike.cluster.zk_ensemble import find_free_base_port

    port = find_free_base_port([f"127.0.0.{i}" for i in (1, 2, 3)], low=30000, high=32000)
    system = KafkalikeSystem(work_dir / label, zookeeper_connect, port,
                             chroot=f"failover-{label}-{uuid.uuid4().hex[:6]}")
    system.name = label
    with _code_of(work_dir, label, source, profile_dir):
        system.up()
    return system


def _cpu_of(pids: dict[int, int]) -> dict[int, float]:
    """{pid: CPU seconds (user + system) so far} of the live ones of ``pids``."""
    from kafkalike.bench.systems import BenchError
    from kafkalike.bench.workloads import cpu_seconds

    out = {}
    for pid in pids.values():
        try:
            out[pid] = cpu_seconds(pid)
        except BenchError:  # exited meanwhile
            pass
    return out


def _signal_all(system: Any) -> dict[int, int]:
    pids = system.pids()
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGUSR2)
        except ProcessLookupError:
            pass
    return pids


def _collect(system: Any, profile_dir: Path, pids: dict[int, int], name: str) -> list[Path]:
    """Move each profiled broker's newest stats file to ``profile_dir/<name>-broker<id>.prof``."""
    raw = profile_dir / "raw" / system.name
    out = []
    deadline = time.monotonic() + 30
    for broker, pid in pids.items():
        while time.monotonic() < deadline:
            found = sorted(raw.glob(f"{pid}-*.prof"), key=lambda p: p.stat().st_mtime)
            if found:
                dest = profile_dir / f"{name}-broker{broker}.prof"
                found[-1].replace(dest)
                out.append(dest)
                break
            time.sleep(0.2)
    return out


def _print_profile(paths: list[Path], top: int) -> None:
    """The top functions of the profile with the most total time (the broker that worked)."""
    if not paths:
        return
    best = max(paths, key=lambda p: pstats.Stats(str(p)).total_tt)  # type: ignore[attr-defined]
    stats = pstats.Stats(str(best))
    print(f"--- {best.name}: {stats.total_tt:.2f} s of profiled loop-thread time")  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def run(partitions: int, trees: dict[str, Path | None], rounds: int, work_dir: Path,
        profile_dir: Path | None, zookeeper_connect: str | None, top: int = 25) -> dict[str, dict[str, list[float]]]:
    """Bring up one cluster per tree, create the topic on each, then ``rounds`` rounds of the
    two steps (module doc). Returns {label: {step: [seconds per round]}}; stops every process
    it started, by pid."""
    from kafkalike.bench import workloads as wl
    from kafkalike.bench.systems import rotated, stop_systems
    from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

    ensemble = None
    live: dict[str, Any] = {}
    results: dict[str, dict[str, list[float]]] = {label: {k: [] for s in STEPS for k in (s, f"{s}_cpu")}
                                                  for label in trees}
    topic = f"failover-{partitions}"
    try:
        if zookeeper_connect is None:
            ensemble = ZkEnsemble(work_dir / "zk", nodes=3,
                                  base_port=find_free_base_port([f"127.0.0.{i}" for i in (1, 2, 3)]),
                                  die_with_parent=True)
            ensemble.start(timeout=90)
            zookeeper_connect = ensemble.connect_string
        for label, source in trees.items():
            live[label] = None
            live[label] = _start(work_dir, label, zookeeper_connect, source, profile_dir)
            took = wl.make_topic(live[label], topic, partitions)
            print(f"  {label:<10} created {partitions:,} partitions to full ISR in {took:.1f} s", flush=True)
        for rnd in range(rounds):
            for label in rotated(list(trees), rnd):
                system = live[label]
                for step in STEPS:
                    cpu0 = _cpu_of(system.pids())
                    pids = _signal_all(system) if profile_dir is not None else {}
                    if step == "controller":
                        seconds, broker = wl.controller_failover(system, f"r{rnd}")
                    else:
                        seconds, broker = wl.controlled_shutdown(system, topic)
                    if profile_dir is not None:
                        survivors = {b: p for b, p in pids.items() if b != broker}
                        for pid in survivors.values():
                            os.kill(pid, signal.SIGUSR2)
                        paths = _collect(system, profile_dir, pids, f"{label}-r{rnd}-{step}")
                        _print_profile(paths, top)
                    cpu1 = _cpu_of({b: p for b, p in system.pids().items() if b != broker})
                    cpu = sum(cpu1[p] - cpu0[p] for p in cpu1 if p in cpu0)
                    results[label][step].append(seconds)
                    results[label][f"{step}_cpu"].append(cpu)
                    print(f"  round {rnd} {label:<10} {step:<10} {seconds:7.2f} s (broker {broker}); CPU of the "
                          f"other brokers {cpu:6.2f} s; load {Path('/proc/loadavg').read_text().split()[0]}", flush=True)
                    with _code_of(work_dir, label, trees[label], profile_dir):  # the restart too
                        wl.restore(system, broker, topic, partitions, 900.0)
    finally:
        stop_systems({k: v for k, v in live.items() if v is not None}, ensemble, "controller_failover_stop_failed")
    return results


#: run by ``--request-builds`` in a child per tree (that tree first on sys.path): prints
#: "add_ms build_ms encode_ms"
_REQUEST_BUILDS = r"""
import sys, time
from kafkalike.controller.controller_channel_manager import ControllerBrokerRequestBatch, ControllerChannelManager
from kafkalike.controller.controller_context import ControllerContext, ReplicaState
from kafkalike.coordination import zk_data as zd
from kafkalike.protocol.codec import encode_request
n = int(sys.argv[1])
VERSIONS = {4: 6, 6: 7}  # LeaderAndIsr v6, UpdateMetadata v7: Kafka 3.9's

class Queued(ControllerChannelManager):
    def __init__(self):
        super().__init__(100)
        self.items = []
    def send(self, broker_id, api_key, build, callback=None, *, partitions=0):
        self.items.append((api_key, build))
        return True

ctx = ControllerContext(epoch=5, epoch_zk_version=4)
for b in (1, 2, 3):
    ctx.live_brokers[b] = 1000 + b
    ctx.broker_info[b] = zd.BrokerRegistration(b, (zd.EndPoint("PLAINTEXT", "127.0.0.1", 9090 + b),), timestamp_ms=0)
tps = [zd.TopicPartition("t", p) for p in range(n)]
for tp in tps:
    ctx.assignments[tp] = [1, 2, 3]
    ctx.leadership[tp] = zd.LeaderIsrAndControllerEpoch(1 + tp.partition % 3, 3, (1, 2, 3), 5, zk_version=3)
    for r in (1, 2, 3):
        ctx.replica_states[(tp, r)] = ReplicaState.OnlineReplica
channel = Queued()
batch = ControllerBrokerRequestBatch(ctx, channel, 100)
t0 = time.process_time()
batch.new_batch()
for tp in tps:
    batch.add_leader_and_isr_request_for_brokers([1, 2, 3], tp, ctx.leadership[tp])
batch.send_requests_to_brokers(ctx.epoch)
t1 = time.process_time()
requests = [(key, build(VERSIONS[key])) for key, build in channel.items]
t2 = time.process_time()
for key, request in requests:
    encode_request(request, correlation_id=1, client_id="controller-100", api_version=VERSIONS[key])
t3 = time.process_time()
print(f"{(t1 - t0) * 1000:.1f} {(t2 - t1) * 1000:.1f} {(t3 - t2) * 1000:.1f}")
"""


def request_builds(partitions: int, trees: dict[str, Path | None], rounds: int) -> dict[str, list[list[float]]]:
    """``--request-builds``: per tree, per round, [add ms, build ms, encode ms] (CPU time of a
    child process running _REQUEST_BUILDS with that tree's code)."""
    import subprocess
    import sys

    out: dict[str, list[list[float]]] = {label: [] for label in trees}
    labels = list(trees)
    for rnd in range(rounds):
        for label in labels[rnd % len(labels):] + labels[:rnd % len(labels)]:
            env = dict(os.environ)
            source = trees[label]
            if source is not None:
                env["PYTHONPATH"] = str(source)
            done = subprocess.run([sys.executable, "-c", _REQUEST_BUILDS, str(partitions)], env=env,
                                  cwd=str(source) if source is not None else None,
                                  capture_output=True, text=True, check=True)
            out[label].append([float(x) for x in done.stdout.strip().splitlines()[-1].split()])  # after any log lines
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kafkalike.bench.controller_failover", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--partitions", type=int, default=10_000, help="partitions of the topic (default 10,000)")
    p.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR",
                   help="a kafkalike source tree to run (repeatable; default: this checkout)")
    p.add_argument("--rounds", type=int, default=1, help="rounds, trees rotated (default 1)")
    p.add_argument("--profile", type=Path, default=None, metavar="DIR",
                   help="profile the brokers' loop threads during each step, stats files to DIR")
    p.add_argument("--top", type=int, default=25, help="functions printed per profile (default 25)")
    p.add_argument("--zookeeper", default=None, help="an existing ensemble (default: start one)")
    p.add_argument("--request-builds", type=int, default=0, metavar="ROUNDS",
                   help="no cluster: time one batch's LeaderAndIsr and UpdateMetadata to 3 brokers, ROUNDS rounds")
    args = p.parse_args(argv)
    trees: dict[str, Path | None] = {}
    for spec in args.tree:
        label, _, path = spec.partition("=")
        trees[label] = Path(path).resolve()
    if not trees:
        trees["here"] = None
    if args.request_builds:
        load = Path("/proc/loadavg").read_text().split()[0]
        print(f"one batch at {args.partitions:,} partitions to 3 brokers, CPU ms, median of "
              f"{args.request_builds} (load average {load}):")
        for label, runs in request_builds(args.partitions, trees, args.request_builds).items():
            add, build, encode = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"  {label:<10} add {add:.0f}  build {build:.0f}  encode {encode:.0f}")
        return 0
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    load0 = Path("/proc/loadavg").read_text().split()[0]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kafkalike-failover-") as d:
        results = run(args.partitions, trees, args.rounds, Path(d), args.profile, args.zookeeper, args.top)
    load1 = Path("/proc/loadavg").read_text().split()[0]
    print(f"{args.partitions:,} partitions, RF 3, {args.rounds} round(s) (load average {load0} before, "
          f"{load1} after; {time.monotonic() - t0:.0f} s):")
    for label, steps in results.items():
        print(f"  {label:<10} " + "  ".join(
            f"{s} median {statistics.median(v):.2f} s ({', '.join(f'{x:.2f}' for x in v)})"
            for s, v in steps.items() if v))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
