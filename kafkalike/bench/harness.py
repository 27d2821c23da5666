"""``kafkalike bench``: every workload against kafkalike, Apache Kafka 3.9 in ZooKeeper mode
and in KRaft mode, in one invocation, alternating systems between runs.

One run:

1. fetch Kafka 3.9.2's jars (cached) when a Kafka system or Kafka's tools are used;
2. start one 3-node ZooKeeper ensemble (Debian's ZooKeeper 3.8, on 127.0.0.1-3) unless a
   connect string is given; kafkalike and Kafka's ZooKeeper mode each live under their own
   chroot of it;
3. bring every system up at the same time, each on its own loopback addresses and free
   ports (kafkalike 127.0.0.1-3, Kafka 127.0.1.1-3 — ZK and KRaft on different ports), so
   rounds can alternate systems without restarts; idle systems cost little CPU;
4. measure the machine (iperf3 loopback, dd with fdatasync), then each workload in rounds;
   round r visits the systems rotated by r (round 0: a, b, c; round 1: b, c, a; ...), so a
   slow drift of the shared machine does not always hit the same system;
5. measure the machine again, stop everything by pid (even on errors), write the report.

A measurement that fails is recorded in the report's "errors" list and the run goes on.

``run_bench(config, systems, report_dir, ...)`` is the API; ``QUICK`` and ``FULL`` are the
two shipped configurations.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

import attrs
import structlog

from kafkalike.bench import reference_kafka as rkmod
from kafkalike.bench import workloads as wl
from kafkalike.bench.background_load import (BackgroundLoad, BackgroundLoadError, BackgroundLoadSpec,
                                             require_stress_ng)
from kafkalike.bench.interrupt import BenchInterrupted, restore_signals, stop_on_sigterm
from kafkalike.bench.report import KAFKA_SYSTEMS, SYSTEMS, Sample, median, write_report
from kafkalike.bench.systems import (BenchError, BenchSystem, KafkalikeSystem, ReferenceSystem,
                                     create_topic, delete_topic, rotated, stop_systems)
from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

log = structlog.get_logger(__name__)

TOOLS = ("kafka-perf", "librdkafka")
WORKLOADS = ("produce", "consume", "latency", "resources", "failover")
MB_PER_RECORD = wl.RECORD_SIZE / 1e6


@attrs.frozen
class BenchConfig:
    """Sizes of one run.

    records: records per produce run (100 B each; consume runs read the same count);
    rounds: alternation rounds of the throughput and latency workloads;
    latency_rates / latency_seconds: the fixed produce rates (records/s; each below every
    system's maximum for single-record acks=all requests) and how long each runs;
    rss_partitions: partitions (RF 3) of the "with N partitions" memory/CPU measurement;
    idle_seconds: how long idle CPU is sampled;
    failover_partitions: partition counts of the failover topics; failover_rounds: trials
    of each failover measurement per count; large_failover_rounds: trials at counts of
    ``LARGE_PARTITIONS`` or more (one 10,000-partition trial of all three systems takes
    ~15 min on a quiet 2-core machine, so ``--full`` takes one there unless
    ``--failover-rounds`` says otherwise);
    dd_mib / iperf_seconds: size of the machine-limit measurements;
    client_defaults: also produce with each tool's default batching (acks=all), beside the
    tuned PRODUCER_BATCHING; warmup: before the measured rounds every system gets a
    discarded run of each workload (JIT for the JVMs, page cache and allocator for all) of
    this fraction of the measured size (records, latency seconds; 0 = none);
    latency_idle_partitions: the latency workload runs once per entry with that many idle
    partitions (one RF 3 topic, created to full ISR first) on the cluster (0 = none).
    """

    name: str
    records: int
    rounds: int
    latency_rates: tuple[int, ...]
    latency_seconds: float
    rss_partitions: int
    idle_seconds: float
    failover_partitions: tuple[int, ...]
    failover_rounds: int
    dd_mib: int
    iperf_seconds: int
    large_failover_rounds: int = 1
    client_defaults: bool = False
    warmup: float = 1.0
    latency_idle_partitions: tuple[int, ...] = (0,)

    def rounds_for(self, partitions: int) -> int:
        """Trials of each failover measurement on a topic of ``partitions`` partitions."""
        if partitions >= LARGE_PARTITIONS:
            return min(self.failover_rounds, self.large_failover_rounds)
        return self.failover_rounds


QUICK = BenchConfig("quick", records=200_000, rounds=2, latency_rates=(100,), latency_seconds=10,
                    rss_partitions=1_000, idle_seconds=5, failover_partitions=(30,),
                    failover_rounds=1, dd_mib=256, iperf_seconds=3)
FULL = BenchConfig("full", records=2_000_000, rounds=3, latency_rates=(100, 500, 5_000), latency_seconds=60,
                   rss_partitions=1_000, idle_seconds=15, failover_partitions=(100, 1_000, 10_000),
                   failover_rounds=3, dd_mib=1024, iperf_seconds=10, client_defaults=True,
                   latency_idle_partitions=(0, 1_000))


@attrs.define
class _Run:
    """State of one bench run: samples so far, errors, machine limits."""

    samples: list[Sample] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)
    limits: dict[str, list[float]] = attrs.Factory(dict)

    def add(self, workload: str, metric: str, system: str, value: float, unit: str, rnd: int,
            higher: bool = True, limit_key: str = "", limit_scale: float = 1.0) -> None:
        self.samples.append(Sample(workload, metric, system, float(value), unit, rnd, higher,
                                   limit_key, limit_scale))
        log.info("bench_sample", workload=workload, metric=metric, system=system,
                 value=round(float(value), 3), unit=unit, round=rnd)
        print(f"  {workload:<28} {metric:<40} {system:<12} {value:>14,.3f} {unit}", flush=True)

    def attempt(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one measurement; a failure is recorded and None returned."""
        try:
            return fn()
        except Exception as e:  # one failed measurement must not lose the whole run
            msg = f"{what}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            self.errors.append(msg)
            log.warning("bench_measurement_failed", what=what, error=str(e)[:500])
            log.debug("bench_traceback", tb=traceback.format_exc())
            print(f"  !! {msg}", flush=True)
            return None


def machine_description() -> str:
    """CPU model, core count, memory and kernel of this machine, one line."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(next(row for row in Path("/proc/meminfo").read_text().splitlines()
                          if row.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    return (f"{model}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GiB RAM, "
            f"Linux {platform.release()}, Python {platform.python_version()}")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


OPEN_FILES_WANTED = 200_000


SMALL_HEAP = "512m"
LARGE_HEAP = "1g"
LARGE_PARTITIONS = 5_000
HUGE_HEAP = "2g"
HUGE_PARTITIONS = 20_000


def kafka_heap(config: BenchConfig, workloads: Sequence[str]) -> str:
    """The Kafka brokers' -Xmx/-Xms: 512 MiB (enough up to a few thousand partitions, and
    kind to the shared machine's memory), or Kafka's own default of 1 GiB
    (kafka-server-start.sh) when a failover topic has ``LARGE_PARTITIONS`` or more: with
    10,000 partitions a ZooKeeper-mode broker that became controller ran out of a 512 MiB
    heap (java.lang.OutOfMemoryError in its request handlers, its followers' fetches then
    failed and ISRs never refilled). 2 GiB from ``HUGE_PARTITIONS`` (bench/scale.py's
    30,000-partition runs: three times the state that filled a 1 GiB heap's margin)."""
    largest = max(config.failover_partitions, default=0) if "failover" in workloads else 0
    if largest >= HUGE_PARTITIONS:
        return HUGE_HEAP
    if largest >= LARGE_PARTITIONS:
        return LARGE_HEAP
    return SMALL_HEAP


def raise_open_files_limit(wanted: int = OPEN_FILES_WANTED) -> tuple[int, int]:
    """Raise this process's RLIMIT_NOFILE (inherited by every broker it starts) towards
    ``wanted`` and return the (soft, hard) limit now in force.

    A broker of a 10,000-partition RF 3 topic on 3 brokers holds every partition: Kafka keeps
    one descriptor per segment's .log (indexes are mmapped, their files closed), kafkalike
    too (docs/storage.md, "Descriptors per partition"), so the 20,000 this VM gives by
    default is just enough for 10,000 partitions. Kafka's docs ask for 100,000+. The
    soft limit goes up to the hard one; the hard one only as root (CAP_SYS_RESOURCE), and
    never beyond /proc/sys/fs/nr_open."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        nr_open = hard
    target = min(wanted, nr_open)
    if soft >= target:
        return soft, hard
    for new in ((target, max(hard, target)), (min(target, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, new)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# descriptors a kafkalike broker holds per partition it hosts: the active segment's .log
# (index files hold none since commit dec75a5, docs/storage.md "Descriptors per partition";
# before it, three: CPython 3.11's mmap keeps a dup() per mapped index). Measured: 8,017
# descriptors for 8,000 partitions on one broker.
KAFKALIKE_FDS_PER_PARTITION = 1
FD_HEADROOM = 500


def descriptor_shortfall(system: BenchSystem, partitions: int) -> str:
    """Why ``system`` cannot host a topic of ``partitions`` × RF 3 on its 3 brokers (every
    broker holds every partition) under this process's open-files limit, or "" when it
    can. Only kafkalike is checked (Kafka holds one descriptor per partition, see
    raise_open_files_limit); a topic that cannot fit would fail after minutes of EMFILE
    ("Too many open files") errors on every broker and a CreateTopics timeout."""
    import resource

    if system.name != "kafkalike":
        return ""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    need = partitions * KAFKALIKE_FDS_PER_PARTITION + FD_HEADROOM
    if soft == resource.RLIM_INFINITY or need <= soft:
        return ""
    return (f"a kafkalike broker holding {partitions:,} partitions needs ~{need:,} open files "
            f"({KAFKALIKE_FDS_PER_PARTITION} per partition: its active segment's .log), the limit here is {soft:,} "
            f"and cannot be raised (no CAP_SYS_RESOURCE)")


def _measure_limits(run: _Run, cfg: BenchConfig, work_dir: Path, install_iperf3: bool) -> None:
    mb = run.attempt("iperf3", lambda: wl.iperf3_loopback_mb_s(cfg.iperf_seconds, install_iperf3))
    if mb:
        run.limits.setdefault("loopback_mb_s", []).append(mb)
        print(f"  machine: iperf3 loopback {mb:,.0f} MB/s", flush=True)
    dd = run.attempt("dd", lambda: wl.dd_write_mb_s(work_dir, cfg.dd_mib))
    if dd:
        run.limits.setdefault("disk_mb_s", []).append(dd)
        print(f"  machine: dd fdatasync {dd:,.0f} MB/s", flush=True)


def run_bench(config: BenchConfig, systems: Sequence[str] = SYSTEMS, report_dir: Path | str = "bench-report",
              *, tools: Sequence[str] = TOOLS, workloads: Sequence[str] = WORKLOADS,
              work_dir: Path | str | None = None, zookeeper_connect: str | None = None,
              install_iperf3: bool = False, command: str = "", keep_work_dir: bool = False,
              background_load: BackgroundLoadSpec | None = None) -> Path:
    """Run ``workloads`` against ``systems`` (names from report.SYSTEMS) with load from
    ``tools`` ("kafka-perf": Kafka's Java perf tools; "librdkafka"), write the report into
    ``report_dir`` and return the path of its report.md.

    work_dir: where clusters keep their data (a fresh temporary directory by default,
    removed afterwards unless ``keep_work_dir``); zookeeper_connect: an existing ensemble to
    use instead of starting one; background_load: a fixed CPU hog (stress-ng,
    bench/background_load.py) running from after the first machine-limit measurement until
    the workloads are done, so every workload, warm-ups included, runs beside it (the report
    says which and how much CPU it used). Raises BenchError for an unknown system, tool or
    workload, when stress-ng is missing, or when a system cannot be started (everything
    started is stopped first).
    """
    for name in systems:
        if name not in SYSTEMS:
            raise BenchError(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    for t in tools:
        if t not in TOOLS:
            raise BenchError(f"unknown tool {t!r}; choose from {', '.join(TOOLS)}")
    for w in workloads:
        if w not in WORKLOADS:
            raise BenchError(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    if not systems:
        raise BenchError("no system to measure")
    if background_load is not None:
        try:
            require_stress_ng()  # before anything is started
        except BackgroundLoadError as e:
            raise BenchError(str(e)) from e
    started = time.monotonic()
    report_dir = Path(report_dir)
    own_work = work_dir is None
    work = Path(work_dir or tempfile.mkdtemp(prefix="kafkalike-bench-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    if "kafka-perf" in tools or any(s in KAFKA_SYSTEMS for s in systems):
        try:
            rkmod.fetch()
        except rkmod.ReferenceKafkaError as e:
            raise BenchError(f"cannot fetch Apache Kafka: {e}") from e
    nofile = raise_open_files_limit()
    if nofile[0] < 40_000 and "failover" in workloads and max(config.failover_partitions) >= 5_000:
        print(f"  warning: open files limit {nofile[0]:,}: brokers of {max(config.failover_partitions):,} "
              "partitions may run out of descriptors", flush=True)
    heap = kafka_heap(config, workloads)
    previous_handlers = stop_on_sigterm()
    run = _Run()
    ensemble: ZkEnsemble | None = None
    live: dict[str, BenchSystem] = {}
    hog = BackgroundLoad(background_load, work / "background-load.log") if background_load else None
    load_before = load_average()
    try:
        if zookeeper_connect is None and ("kafkalike" in systems or "kafka-zk" in systems):
            hosts = [f"127.0.0.{i}" for i in (1, 2, 3)]
            ensemble = ZkEnsemble(work / "zk", nodes=3, base_port=find_free_base_port(hosts),
                                  die_with_parent=True)
            ensemble.start(timeout=90)
            zookeeper_connect = ensemble.connect_string
        chroot_tag = uuid.uuid4().hex[:6]
        for name in systems:
            print(f"starting {name} ...", flush=True)
            t0 = time.monotonic()
            system: BenchSystem
            if name == "kafkalike":
                port = find_free_base_port([f"127.0.0.{i}" for i in (1, 2, 3)], low=30000, high=32000)
                system = KafkalikeSystem(work / "kafkalike", zookeeper_connect or "", port,
                                         chroot=f"bench-kafkalike-{chroot_tag}")
            else:
                port = rkmod.find_free_port([f"127.0.1.{i}" for i in (1, 2, 3)], span=2,
                                            start=33000, stop=40000)
                system = ReferenceSystem(work / name, "zk" if name == "kafka-zk" else "kraft", port,
                                         zookeeper_connect=zookeeper_connect,
                                         chroot=f"/bench-kafka-zk-{chroot_tag}", heap=heap)
            live[name] = system  # from here on stopped in the finally block, whatever happens
            if not _start_system(run, name, system):
                del live[name]  # _start_system stopped it
            else:
                print(f"  {name} up in {time.monotonic() - t0:.1f} s: {system.bootstrap}", flush=True)
        if not live:
            raise BenchError("no system started: " + "; ".join(run.errors))
        _measure_limits(run, config, work, install_iperf3)
        if hog is not None:
            try:
                hog.start()
            except BackgroundLoadError as e:
                raise BenchError(str(e)) from e
            print(f"background load: {hog.spec.describe()} (pid {hog.pid})", flush=True)
        tools_runner = wl.tool_runner(work) if "kafka-perf" in tools else None
        names = [n for n in systems if n in live]
        if "resources" in workloads:
            _resources_idle(run, config, live, names)
        produced: dict[tuple[str, int], str] = {}
        if "produce" in workloads or "consume" in workloads:
            _produce(run, config, live, names, tools, tools_runner, produced)
        if "consume" in workloads:
            _consume(run, config, live, names, tools, tools_runner, produced)
        if "latency" in workloads:
            _latency(run, config, live, names)
        if "resources" in workloads:
            _resources_partitions(run, config, live, names)
        if "failover" in workloads:
            _failover(run, config, live, names)
        if hog is not None:
            hog.stop()
        _measure_limits(run, config, work, install_iperf3)
    except BenchInterrupted as e:  # stop everything, then still write what was measured
        run.errors.append(f"run interrupted ({e}); the figures above are what was measured before it")
        print(f"  !! interrupted ({e}): stopping, then writing the report", flush=True)
    finally:
        if hog is not None:
            hog.stop()
        stop_systems(live, ensemble, "bench_stop_failed")
        if own_work and not keep_work_dir:
            shutil.rmtree(work, ignore_errors=True)
        restore_signals(previous_handlers)
    limits = {k: median(v) for k, v in run.limits.items()}
    context = {
        "command": command or f"run_bench({config.name}, systems={list(systems)}, tools={list(tools)})",
        "configuration": (f"{config.name}: {config.records:,} records × {wl.RECORD_SIZE} B per produce run, "
                          f"{config.rounds} rounds after a discarded warm-up of {config.warmup:g}x that size per "
                          f"system and workload; produce tuned{' and at client defaults' if config.client_defaults else ''}; "
                          f"latency at {', '.join(f'{r:,}' for r in config.latency_rates)} records/s for "
                          f"{config.latency_seconds:g} s with {' / '.join(f'{n:,}' for n in config.latency_idle_partitions)} "
                          f"idle partitions; memory with {config.rss_partitions:,} partitions; "
                          "failover trials: "
                          f"{', '.join(f'{n:,} partitions × {config.rounds_for(n)}' for n in config.failover_partitions)}"),
        "systems": ", ".join(systems) + (f" (Apache Kafka {_kafka_version()})" if any(
            s in KAFKA_SYSTEMS for s in systems) else ""),
        "load generators": ", ".join(tools),
        "Kafka broker heap": f"-Xmx{heap} -Xms{heap}",
        "machine": machine_description(),
        "load average before / after": f"{load_before} / {load_average()}",
        "background load": ("none" if hog is None else hog.spec.describe() + " (not started)" if hog.result is None
                            else hog.result.describe()),
        "wall time": f"{time.monotonic() - started:.0f} s",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "errors": ("; ".join(run.errors) if run.errors else "none"),
    }
    path = write_report(run.samples, report_dir, limits=limits, context=context)
    print(f"report: {path}", flush=True)
    return path


def _heal(run: _Run, name: str, system: BenchSystem) -> None:
    """Restart any broker of ``system`` that is no longer running (a crash, or a Kafka broker
    exiting after its ZooKeeper session expired on the loaded machine), so one lost broker
    costs one measurement, not every later one. Each restart is recorded when it happens."""
    for b in (1, 2, 3):
        if b not in system.pids():
            run.errors.append(f"{name}: broker {b} was found dead and restarted")
            run.attempt(f"{name} restart broker {b}", lambda: system.start_broker(b))


START_ATTEMPTS = 2


def _start_system(run: _Run, name: str, system: BenchSystem) -> bool:
    """Start ``system``, with one more try after stopping what the first left behind (on a
    loaded machine a Kafka broker's 6 s ZooKeeper session can expire during start-up, and
    Kafka then exits); True when it is up. A system that does not start is recorded in the
    run's errors and left out, so the others are still measured."""
    for attempt in range(START_ATTEMPTS):
        try:
            system.up()
            return True
        except Exception as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            log.warning("bench_start_failed", system=name, attempt=attempt, error=str(e)[:2000])
            print(f"  !! {name} did not start (attempt {attempt + 1}): {first}", flush=True)
            try:
                system.down()
            except Exception as stop_error:
                log.warning("bench_stop_failed", system=name, error=str(stop_error))
            if attempt + 1 == START_ATTEMPTS:
                run.errors.append(f"{name} did not start ({START_ATTEMPTS} attempts): {first}; "
                                  "left out of this run")
    return False


def _kafka_version() -> str:
    try:
        return rkmod.kafka_version()
    except rkmod.ReferenceKafkaError:
        return "?"


# ------------------------------------------------------------------ workload drivers


def _resources_idle(run: _Run, cfg: BenchConfig, live: dict[str, BenchSystem], names: list[str]) -> None:
    print("workload: memory and CPU, idle", flush=True)
    for name in names:
        system = live[name]
        def measure() -> None:
            pids = system.pids()
            for pid in pids.values():
                run.add("resources", "RSS per broker, idle", name, wl.rss_bytes(pid) / 2**20, "MiB", 0, False)
            c0 = wl.total_cpu(pids)
            time.sleep(cfg.idle_seconds)
            run.add("resources", "CPU per broker, idle", name,
                    (wl.total_cpu(pids) - c0) / cfg.idle_seconds / len(pids) * 100, "% of a core", 0, False)
        run.attempt(f"{name} idle resources", measure)


def _resources_partitions(run: _Run, cfg: BenchConfig, live: dict[str, BenchSystem], names: list[str]) -> None:
    n = cfg.rss_partitions
    print(f"workload: memory and CPU with {n:,} partitions", flush=True)
    for name in names:
        system = live[name]
        _heal(run, name, system)
        topic = f"rss-{n}"

        def measure() -> None:
            secs = wl.make_topic(system, topic, n)
            run.add("resources", f"create {n:,} partitions (RF 3) to full ISR", name, secs, "s", 0, False)
            time.sleep(2.0)
            pids = system.pids()
            for pid in pids.values():
                run.add("resources", f"RSS per broker, {n:,} partitions", name,
                        wl.rss_bytes(pid) / 2**20, "MiB", 0, False)
            c0 = wl.total_cpu(pids)
            time.sleep(cfg.idle_seconds)
            run.add("resources", f"CPU per broker, idle, {n:,} partitions", name,
                    (wl.total_cpu(pids) - c0) / cfg.idle_seconds / len(pids) * 100, "% of a core", 0, False)

        run.attempt(f"{name} resources with {n} partitions", measure)
        delete_topic(system.bootstrap, topic)


def _produce_variants(cfg: BenchConfig) -> list[tuple[str, str, dict[str, str] | None]]:
    """(workload name, acks, batching) of the produce runs: acks=1 and acks=all tuned, and
    with ``client_defaults`` acks=all at each tool's defaults."""
    out: list[tuple[str, str, dict[str, str] | None]] = [("produce acks=1", "1", None),
                                                         ("produce acks=all", "all", None)]
    if cfg.client_defaults:
        out.append(("produce acks=all, client defaults", "all", wl.CLIENT_DEFAULTS))
    return out


def _warm_records(cfg: BenchConfig) -> int:
    return max(1_000, int(cfg.records * cfg.warmup))


def _produce(run: _Run, cfg: BenchConfig, live: dict[str, BenchSystem], names: list[str],
             tools: Sequence[str], runner: rkmod.ReferenceKafka | None,
             produced: dict[tuple[str, int], str]) -> None:
    print(f"workload: produce {cfg.records:,} × {wl.RECORD_SIZE} B, 6 partitions, RF 3", flush=True)
    variants = _produce_variants(cfg)

    def produce_once(name: str, tool: str, topic: str, records: int, acks: str,
                     batching: dict[str, str] | None) -> wl.ProduceResult:
        system = live[name]
        create_topic(system.bootstrap, topic, 6, 3, timeout=120)
        if tool == "kafka-perf":
            assert runner is not None
            return wl.produce_kafka_perf(system, runner, topic, records, acks, batching)
        return wl.produce_librdkafka(system, topic, records, acks, batching=batching)

    if cfg.warmup > 0:  # discarded: one run of every variant and tool per system
        n = _warm_records(cfg)
        print(f"  warm-up (discarded): {n:,} records per variant, tool and system", flush=True)
        for name in names:
            _heal(run, name, live[name])
            for i, (workload, acks, batching) in enumerate(variants):
                for tool in tools:
                    topic = f"w-p-{tool}-{i}"
                    res = run.attempt(f"{name} warm-up {workload} {tool}",
                                      lambda: produce_once(name, tool, topic, n, acks, batching))
                    if res is not None:
                        produced.setdefault((name, -1), topic)
    for rnd in range(cfg.rounds):
        for i, (workload, acks, batching) in enumerate(variants):
            for tool in tools:
                for name in rotated(names, rnd):
                    _heal(run, name, live[name])
                    topic = f"p-{tool}-acks{acks}-r{rnd}" if batching is None else f"p-{tool}-v{i}-r{rnd}"
                    res = run.attempt(f"{name} {workload} {tool} round {rnd}",
                                      lambda: produce_once(name, tool, topic, cfg.records, acks, batching))
                    if res is None:
                        continue
                    produced.setdefault((name, rnd), topic)
                    run.add(workload, f"records/s ({tool})", name, res.records_per_sec,
                            "records/s", rnd, True, "loopback_mb_s", MB_PER_RECORD)
                    if batching is None:
                        run.add("broker CPU", "CPU s per GB written (all brokers)", name, res.cpu_s_per_gb,
                                "CPU s/GB", rnd, False)


def _consume(run: _Run, cfg: BenchConfig, live: dict[str, BenchSystem], names: list[str],
             tools: Sequence[str], runner: rkmod.ReferenceKafka | None,
             produced: dict[tuple[str, int], str]) -> None:
    print(f"workload: consume {cfg.records:,} records from 6 partitions", flush=True)

    def consume_once(name: str, tool: str, rnd: int, records: int) -> None:
        system = live[name]
        _heal(run, name, system)
        topic = produced.get((name, rnd))
        warm = rnd < 0
        what = "warm-up consume" if warm else "consume"
        if topic is None:
            run.errors.append(f"{name} {what} round {rnd}: nothing was produced")
            return
        if tool == "kafka-perf":
            assert runner is not None
            res = run.attempt(f"{name} {what} kafka-perf round {rnd}",
                              lambda: wl.consume_kafka_perf(system, runner, topic, records))
            if res is not None and not warm:
                run.add("consume", "records/s (kafka-perf, incl. group join)", name,
                        res.records_per_sec, "records/s", rnd, True, "loopback_mb_s", MB_PER_RECORD)
                run.add("consume", "records/s (kafka-perf, fetch only)", name,
                        res.fetch_records_per_sec, "records/s", rnd, True, "loopback_mb_s", MB_PER_RECORD)
            return
        for group, metric in ((False, "records/s (librdkafka)"), (True, "records/s (librdkafka, fresh group)")):
            rate = run.attempt(f"{name} {what} {metric} round {rnd}",
                               lambda: wl.consume_librdkafka(system, topic, records, group=group))
            if rate is not None and not warm:
                run.add("consume", metric, name, rate, "records/s", rnd, True, "loopback_mb_s", MB_PER_RECORD)

    if cfg.warmup > 0:
        print("  warm-up (discarded): one read of the warm-up topic per tool and system", flush=True)
        for name in names:
            for tool in tools:
                consume_once(name, tool, -1, _warm_records(cfg))
    for rnd in range(cfg.rounds):
        for tool in tools:
            for name in rotated(names, rnd):
                consume_once(name, tool, rnd, cfg.records)


def _latency(run: _Run, cfg: BenchConfig, live: dict[str, BenchSystem], names: list[str]) -> None:
    if cfg.warmup > 0 and cfg.latency_rates:
        secs = max(1.0, cfg.latency_seconds * cfg.warmup)
        print(f"workload: end-to-end latency warm-up (discarded): {cfg.latency_rates[0]:,} records/s for "
              f"{secs:g} s per system", flush=True)
        for name in names:
            system = live[name]
            _heal(run, name, system)

            def warm() -> wl.LatencyResult:
                create_topic(system.bootstrap, "w-lat", 6, 3, timeout=120)
                return wl.end_to_end_latency(system, "w-lat", cfg.latency_rates[0], secs)

            run.attempt(f"{name} latency warm-up", warm)
    for idle in cfg.latency_idle_partitions:
        idle_topic = f"idle-{idle}"
        if idle:
            print(f"  creating {idle:,} idle partitions (RF 3) on every system", flush=True)
            for name in names:
                _heal(run, name, live[name])
                run.attempt(f"{name} create {idle} idle partitions",
                            lambda: wl.make_topic(live[name], idle_topic, idle))
        for rate in cfg.latency_rates:
            suffix = f", {idle:,} idle partitions" if idle else ""
            print(f"workload: end-to-end latency at {rate:,} records/s for {cfg.latency_seconds:g} s{suffix}",
                  flush=True)
            workload = f"latency @ {rate:,} records/s, acks=all{suffix}"
            for rnd in range(cfg.rounds):
                for name in rotated(names, rnd):
                    system = live[name]
                    _heal(run, name, system)
                    topic = f"lat-{rate}-i{idle}-r{rnd}"

                    def measure() -> wl.LatencyResult:
                        create_topic(system.bootstrap, topic, 6, 3, timeout=120)
                        return wl.end_to_end_latency(system, topic, rate, cfg.latency_seconds)

                    res = run.attempt(f"{name} latency {rate}/s{suffix} round {rnd}", measure)
                    if res is not None:
                        run.add(workload, "p50", name, res.p50_ms, "ms", rnd, False)
                        run.add(workload, "p99", name, res.p99_ms, "ms", rnd, False)
                        run.add(workload, "p99.9", name, res.p999_ms, "ms", rnd, False)
                        # below the offered rate = the system fell behind and the percentiles
                        # above grew with the run's length (a queue), see LatencyResult
                        run.add(workload, "records/s delivered", name, res.delivered_rate, "records/s", rnd, True)
        if idle:
            for name in names:
                delete_topic(live[name].bootstrap, idle_topic)


def _failover(run: _Run, cfg: BenchConfig, live: dict[str, BenchSystem], names: list[str]) -> None:
    for i, n in enumerate(cfg.failover_partitions):
        print(f"workload: failover with {n:,} partitions (RF 3)", flush=True)
        workload = f"failover, {n:,} partitions"
        restore_timeout = 300.0 + n * 0.1  # a 10,000-partition Kafka broker loads its logs for minutes
        for name in rotated(names, i):
            system = live[name]
            _heal(run, name, system)
            topic = f"fo-{n}"
            short = descriptor_shortfall(system, n)
            if short:
                run.errors.append(f"{name} {workload}: skipped: {short}")
                print(f"  !! {name} {workload}: skipped: {short}", flush=True)
                continue
            t_sys = time.monotonic()
            secs = run.attempt(f"{name} create {n} partitions", lambda: wl.make_topic(system, topic, n))
            if secs is None:
                # a half-created topic would keep this system busy while the others are measured
                delete_topic(system.bootstrap, topic)
                continue
            run.add(workload, "create topic to full ISR", name, secs, "s", 0, False)
            for rnd in range(cfg.rounds_for(n)):
                for label, fn in (
                    ("leader kill -9 → first ack", lambda: wl.leader_kill_to_ack(system, topic)),
                    ("controller kill -9 → CreateTopics ok",
                     lambda: wl.controller_failover(system, str(n), timeout=wl.failover_timeout(n))),
                    ("controlled shutdown (SIGTERM → exit)", lambda: wl.controlled_shutdown(system, topic)),
                ):
                    res = run.attempt(f"{name} {workload} {label} round {rnd}", fn)
                    if res is not None and label.startswith("controlled") and res[0] >= wl.STOP_CAP_SECONDS:
                        run.errors.append(f"{name} {workload} {label} round {rnd}: broker {res[1]} still running "
                                          f"after {wl.STOP_CAP_SECONDS:.0f} s, killed; no figure")
                    elif res is not None:
                        run.add(workload, label, name, res[0], "s", rnd, False)
                    # bring the cluster back to 3 brokers and full ISRs before the next trial
                    down = [b for b in (1, 2, 3) if b not in system.pids()]
                    for b in down:
                        run.attempt(f"{name} restart broker {b}",
                                    lambda: system.start_broker(b, timeout=restore_timeout))
                    run.attempt(f"{name} {topic} back to full ISR",
                                lambda: wl.wait_leaders(system.bootstrap, topic, n, restore_timeout, full_isr=3))
            delete_topic(system.bootstrap, topic)
            print(f"  {name}: {workload} took {time.monotonic() - t_sys:.0f} s", flush=True)
