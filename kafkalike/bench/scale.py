"""Scale: one topic of N partitions (RF 3, 3 brokers) on kafkalike and on Apache Kafka 3.9 in
ZooKeeper mode, one system at a time, for issue 24's "30,000 partitions" rows.

    python -m kafkalike.bench.scale --partitions 30000 [--systems kafkalike,kafka-zk] \\
        [--report DIR] [--heap 2g]

Each system in turn is started alone (the others are down, so an idle 30,000-partition cluster
does not load the machine while another is measured), on one shared 3-node ZooKeeper
ensemble (each system under its own chroot), and measures:

1. idle: RSS and open descriptors of every broker process (/proc/<pid>/status VmRSS,
   /proc/<pid>/fd) and its memory map areas (/proc/<pid>/maps lines);
2. ``make_topic``: CreateTopics of N partitions, RF 3, until every partition has 3 ISR
   members (workload "failover, N partitions", metric "create topic to full ISR", the same
   names ``kafkalike bench``'s failover workload uses, so ``kafkalike.bench.combine`` puts
   this point on its failover-scaling plot beside the 100 / 1,000 / 10,000 ones);
3. after 5 s, the same per-broker figures with the topic, and per hosted partition:
   (with - idle) / N (every broker hosts every partition at RF 3 on 3 brokers);
4. ``controller_failover``: kill -9 of the active controller → the first CreateTopics that
   succeeds (given up after ``failover_timeout(N)``: max(300 s, N × 20 ms)); the broker is
   restarted and every ISR is full again (that restart is timed too, workload "restarts, N
   partitions");
5. ``controlled_shutdown``: SIGTERM of the non-controller broker leading most partitions →
   its exit (a broker still running after 120 s is killed by the bench: recorded as an
   error, no figure);
6. the system is stopped and its data removed before the next one starts.

The leader kill -9 of ``kafkalike bench``'s failover workload is left out: at these sizes each
step costs a broker restart that loads N logs (minutes for Kafka after a kill -9), and issue
24 asks for topic creation, controller failover and controlled shutdown.

Descriptors: every broker holds at least one per partition (the active segment's .log, in
Kafka and in kafkalike, docs/storage.md "Descriptors per partition"), so this process raises
its RLIMIT_NOFILE (inherited by the brokers) as ``kafkalike bench`` does; a system that
cannot fit under the limit is skipped with the reason (harness.descriptor_shortfall). Kafka's
brokers also need two memory map areas per segment once its indexes are mapped (Kafka's
docs, "vm.max_map_count"); the map count is reported so a shortfall shows.

Order: the systems run in the order given (one round; ``--systems kafka-zk,kafkalike`` for
the other order); every step prints the load average, which the report keeps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from kafkalike.bench import workloads as wl
from kafkalike.bench.harness import HUGE_HEAP
from kafkalike.bench.report import SYSTEMS, write_report

SCALE_SYSTEMS = ("kafkalike", "kafka-zk")
KAFKA_HEAP = HUGE_HEAP
"""The Kafka brokers' -Xmx/-Xms here (2 GiB): twice Kafka's default (kafka-server-start.sh's 1 GiB,
which ``kafkalike bench`` gives at 5,000+ partitions and which held 10,000): 30,000 partitions
are three times that state, and a broker out of heap would measure the heap, not the work."""
SETTLE_SECONDS = 5.0


def open_descriptors(pid: int) -> int:
    """Descriptors process ``pid`` holds open (entries of /proc/<pid>/fd). Raises BenchError
    if the process is gone or not readable."""
    from kafkalike.bench.systems import BenchError

    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError as e:
        raise BenchError(f"cannot list the descriptors of process {pid}: {e}") from e


def map_areas(pid: int) -> int:
    """Memory map areas of process ``pid`` (lines of /proc/<pid>/maps: what vm.max_map_count
    bounds). Raises BenchError if the process is gone."""
    from kafkalike.bench.systems import BenchError

    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError as e:
        raise BenchError(f"cannot read the maps of process {pid}: {e}") from e


@attrs.frozen
class BrokerFootprint:
    """One broker process at one moment: rss in bytes, descriptors and map areas (counts)."""

    broker: int
    rss: int
    descriptors: int
    maps: int


def footprints(pids: dict[int, int]) -> list[BrokerFootprint]:
    """The footprint of every broker in {broker id: pid}, by broker id."""
    return [BrokerFootprint(b, wl.rss_bytes(p), open_descriptors(p), map_areas(p)) for b, p in sorted(pids.items())]


def per_partition(idle: Sequence[BrokerFootprint], loaded: Sequence[BrokerFootprint],
                  partitions: int) -> dict[str, float]:
    """Mean growth per hosted partition over the brokers present in both lists (each hosts
    every partition at RF 3 on 3 brokers): {"rss": bytes, "descriptors": count, "maps": count}.
    Raises ValueError when no broker is in both or ``partitions`` < 1."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    before = {f.broker: f for f in idle}
    pairs = [(before[f.broker], f) for f in loaded if f.broker in before]
    if not pairs:
        raise ValueError("no broker measured both idle and with the topic")
    n = len(pairs) * partitions
    return {"rss": sum(b.rss - a.rss for a, b in pairs) / n,
            "descriptors": sum(b.descriptors - a.descriptors for a, b in pairs) / n,
            "maps": sum(b.maps - a.maps for a, b in pairs) / n}


def failover_workload(partitions: int) -> str:
    """The workload name ``kafkalike bench`` gives its failover rows ("failover, 30,000
    partitions"), so report.scaling_table reads the count from it."""
    return f"failover, {partitions:,} partitions"


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _start(name: str, work: Path, zookeeper_connect: str, heap: str, partitions: int) -> Any:
    from kafkalike.bench import reference_kafka as rkmod
    from kafkalike.bench.systems import KafkalikeSystem, ReferenceSystem
    from kafkalike.cluster.zk_ensemble import find_free_base_port

    tag = uuid.uuid4().hex[:6]
    if name == "kafkalike":
        port = find_free_base_port([f"127.0.0.{i}" for i in (1, 2, 3)], low=30000, high=32000)
        # one CreateTopics of N partitions, as Kafka's ZooKeeper mode takes it: kafkalike's own
        # guard (kafkalike.max.partitions.per.request, 10,000 like KRaft's per-operation bound)
        # would make the bench create the topic in CreatePartitions steps
        return KafkalikeSystem(work / name, zookeeper_connect, port, chroot=f"scale-kafkalike-{tag}",
                               overrides={"kafkalike.max.partitions.per.request": str(max(10_000, partitions))})
    port = rkmod.find_free_port([f"127.0.1.{i}" for i in (1, 2, 3)], span=2, start=33000, stop=40000)
    return ReferenceSystem(work / name, "zk", port, zookeeper_connect=zookeeper_connect,
                           chroot=f"/scale-kafka-zk-{tag}", heap=heap)


def measure_system(run: Any, name: str, system: Any, partitions: int) -> None:
    """Steps 1-5 of the module doc on ``system`` (already up), samples into ``run`` (a
    harness._Run: a failed step is recorded in run.errors and the next one goes on)."""
    from kafkalike.bench.harness import descriptor_shortfall
    from kafkalike.bench.systems import wait_leaders

    n = partitions
    fo = failover_workload(n)
    res = f"resources, {n:,} partitions"
    restarts = f"restarts, {n:,} partitions"
    topic = f"scale-{n}"
    restore_timeout = 300.0 + n * 0.1
    short = descriptor_shortfall(system, n)
    if short:
        run.errors.append(f"{name} {fo}: skipped: {short}")
        print(f"  !! {name}: skipped: {short}", flush=True)
        return
    idle = run.attempt(f"{name} idle footprint", lambda: footprints(system.pids()))
    secs = run.attempt(f"{name} create {n} partitions", lambda: wl.make_topic(system, topic, n))
    if secs is None:
        return
    run.add(fo, "create topic to full ISR", name, secs, "s", 0, False)
    print(f"  {name}: created {n:,} partitions to full ISR in {secs:.1f} s (load {_load()})", flush=True)
    time.sleep(SETTLE_SECONDS)
    loaded = run.attempt(f"{name} footprint with {n} partitions", lambda: footprints(system.pids()))
    if loaded:
        for f in loaded:
            run.add(res, "RSS per broker", name, f.rss / 2**20, "MiB", 0, False)
            run.add(res, "open descriptors per broker", name, f.descriptors, "descriptors", 0, False)
            run.add(res, "memory map areas per broker", name, f.maps, "maps", 0, False)
        if idle:
            grow = per_partition(idle, loaded, n)
            run.add(res, "RSS per hosted partition (with topic - idle)", name, grow["rss"] / 1024, "KiB", 0, False)
            run.add(res, "descriptors per hosted partition", name, grow["descriptors"], "descriptors", 0, False)
            run.add(res, "map areas per hosted partition", name, grow["maps"], "maps", 0, False)
    steps = (("controller kill -9 → CreateTopics ok",
              lambda: wl.controller_failover(system, f"s{n}", timeout=wl.failover_timeout(n))),
             ("controlled shutdown (SIGTERM → exit)", lambda: wl.controlled_shutdown(system, topic)))
    for i, (label, step) in enumerate(steps):
        out = run.attempt(f"{name} {fo} {label}", step)
        if out is not None and label.startswith("controlled") and out[0] >= wl.STOP_CAP_SECONDS:
            # BenchSystem.stop_broker sends SIGKILL after 120 s: not a controlled shutdown's time
            run.errors.append(f"{name} {fo} {label}: broker {out[1]} still running after "
                              f"{wl.STOP_CAP_SECONDS:.0f} s, killed; no figure")
        elif out is not None:
            run.add(fo, label, name, out[0], "s", 0, False)
            print(f"  {name}: {label} {out[0]:.2f} s (broker {out[1]}, load {_load()})", flush=True)
        if i == len(steps) - 1:
            break  # the system is stopped next: no restart needed
        for b in [b for b in (1, 2, 3) if b not in system.pids()]:
            def back() -> float:
                t0 = time.monotonic()
                system.start_broker(b, timeout=restore_timeout)
                wait_leaders(system.bootstrap, topic, n, restore_timeout, full_isr=3)
                return time.monotonic() - t0

            took = run.attempt(f"{name} restart broker {b} to full ISR", back)
            if took is not None:
                what = "kill -9" if label.startswith("controller") else "controlled shutdown"
                run.add(restarts, f"restart after {what} → every ISR full", name, took, "s", 0, False)
                print(f"  {name}: broker {b} back, every ISR full, in {took:.1f} s (load {_load()})", flush=True)


def run(partitions: int, systems: Sequence[str], report_dir: Path, work_dir: Path, heap: str,
        command: str = "") -> Path:
    """Measure each of ``systems`` in turn (module doc) and write the report into
    ``report_dir``; returns the path of its report.md. Stops every process it started, by pid,
    on errors and on SIGTERM / SIGINT too."""
    from kafkalike.bench import reference_kafka as rkmod
    from kafkalike.bench.harness import _Run, _start_system, machine_description, raise_open_files_limit
    from kafkalike.bench.systems import stop_systems
    from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

    started = time.monotonic()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    nofile = raise_open_files_limit()
    if "kafka-zk" in systems:
        rkmod.fetch()
    runner = _Run()
    ensemble = None
    loads: list[str] = []

    def report() -> Path:
        context = {
            "command": command or f"python -m kafkalike.bench.scale --partitions {partitions}",
            "configuration": (f"one topic of {partitions:,} partitions, RF 3, 3 brokers per system; systems one at a "
                              f"time in this order: {', '.join(systems)}; one trial of each step"),
            "systems": ", ".join(systems) + (f" (Apache Kafka {_kafka_version()})" if "kafka-zk" in systems else ""),
            "Kafka broker heap": f"-Xmx{heap} -Xms{heap}",
            "open files limit (soft, hard)": f"{nofile[0]:,}, {nofile[1]:,}",
            "vm.max_map_count": _read("/proc/sys/vm/max_map_count"),
            "machine": machine_description(),
            "load average before / after": f"{' '.join(load_before)} / {' '.join(Path('/proc/loadavg').read_text().split()[:3])}",
            "load when each system was done": "; ".join(loads),
            "wall time": f"{time.monotonic() - started:.0f} s",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "errors": "; ".join(runner.errors) if runner.errors else "none",
        }
        return write_report(runner.samples, report_dir, context=context)

    try:
        ensemble = ZkEnsemble(work_dir / "zk", nodes=3, base_port=find_free_base_port(
            [f"127.0.0.{i}" for i in (1, 2, 3)]), die_with_parent=True)
        ensemble.start(timeout=90)
        for name in systems:
            print(f"starting {name} (load {_load()}) ...", flush=True)
            system = _start(name, work_dir, ensemble.connect_string, heap, partitions)
            live = {name: system}
            try:
                if _start_system(runner, name, system):
                    measure_system(runner, name, system, partitions)
            finally:
                stop_systems(live, None, "scale_stop_failed")
                shutil.rmtree(work_dir / name, ignore_errors=True)
            loads.append(f"{name} done at load {_load()}")
            report()  # what is measured so far survives an interrupted later system
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM via main(): the finally blocks stopped everything
        runner.errors.append(f"run interrupted ({e}); the figures are what was measured before it")
        print(f"  !! interrupted ({e})", flush=True)
    finally:
        if ensemble is not None:
            ensemble.stop()
    path = report()
    print(f"report: {path}", flush=True)
    return path


def _kafka_version() -> str:
    from kafkalike.bench import reference_kafka as rkmod

    try:
        return rkmod.kafka_version()
    except rkmod.ReferenceKafkaError:
        return "?"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "?"


def parse_systems(text: str) -> list[str]:
    """"kafkalike,kafka-zk" -> ["kafkalike", "kafka-zk"]; ValueError for a name outside
    SCALE_SYSTEMS (KRaft is not measured here), a repeat, or none."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ValueError("no system named")
    for s in names:
        if s not in SCALE_SYSTEMS:
            known = ", ".join(x for x in SYSTEMS if x in SCALE_SYSTEMS)
            raise ValueError(f"unknown system {s!r}; choose from {known}")
    if len(set(names)) != len(names):
        raise ValueError(f"a system named twice in {text!r}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kafkalike.bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--partitions", type=int, default=30_000, help="partitions of the topic (default 30,000)")
    p.add_argument("--systems", default="kafkalike,kafka-zk", help="comma-separated, measured in this order")
    p.add_argument("--report", type=Path, default=Path("bench-scale"), help="report directory")
    p.add_argument("--heap", default=KAFKA_HEAP, help=f"Kafka brokers' -Xmx/-Xms (default {KAFKA_HEAP})")
    args = p.parse_args(argv)
    try:
        systems = parse_systems(args.systems)
    except ValueError as e:
        p.error(str(e))
    if args.partitions < 1:
        p.error(f"--partitions {args.partitions}: expected at least 1")

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # unwinds through run()'s finally blocks

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        with tempfile.TemporaryDirectory(prefix="kafkalike-scale-") as d:
            run(args.partitions, systems, args.report, Path(d), args.heap,
                command="python -m kafkalike.bench.scale " + " ".join(argv if argv is not None else sys.argv[1:]))
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
