"""How kafkalike's produce path uses the cores of a machine: brokers pinned to one core
against two, rounds rotated (issue 24, "Multi-core"; docs/multicore.md).

    python -m kafkalike.bench.multicore --rounds 3 --records 300000 --acks 1,all
    python -m kafkalike.bench.multicore --threads --rounds 5
    python -m kafkalike.bench.multicore --hop --rounds 5

One ZooKeeper node and one 3-broker kafkalike cluster (``systems.KafkalikeSystem``: RF 3,
min.insync.replicas 2) are started once. Each measurement is ``workloads.produce_librdkafka``
(librdkafka in this process, ``--records`` × 100 B round-robin over 6 partitions of a fresh
topic, linger.ms 5, batch.size 256 KiB; ``--tool kafka-perf``: Kafka's ProducerPerformance with
the same batching, ``workloads.produce_kafka_perf``; ``--record-bytes`` for other record sizes
with librdkafka) under one *placement*: the CPU affinity of every
thread of the three broker processes and of this process (the client), set with
sched_setaffinity as ``taskset -a -p`` does, and changed between runs on the running
processes (threads started later inherit it from the thread that starts them):

- ``1core``: brokers and client on the first CPU (a 1-core machine);
- ``brokers1``: the three brokers on the first CPU, the client alone on the second;
- ``2cores``: everything on both CPUs (no pinning, what every other bench measures).

Placements are rotated per round (``systems.rotated``) so that drift and other work on the
machine fall on each alike. Per run it records records/s, broker CPU seconds (utime+stime
from /proc, all threads), the busiest broker's share of one core, and how much of the
brokers' CPU ran outside their main thread (the trio event loop's thread: the rest is
``trio.to_thread`` work and kazoo's threads), with the 1-minute load average before and
after. Prints one line per run and a Markdown table of medians per (acks, placement); with
``--json FILE`` also writes every run.

With ``--threads`` instead (no cluster, a few seconds): how the CPU work of a broker's produce
path scales from one thread to two inside one Python process, the prototype measurement of
"worker threads under the GIL" (docs/multicore.md, option b): each work item is run N times on
one thread, then N times on each of two threads started together; speedup = 2 × (one thread's
time) / (two threads' time), 2.0 when the GIL is out of the way, 1.0 or less when it is not.
Work items: the leader's record walk (log_validator.validate_records, pure Python), crc32c of
16 KiB (below the 32 KiB at which the crc32c package releases the GIL) and of 1 MiB, zstd
(cramjam) and gzip (zlib) decompression of 1 MiB. Rounds alternate which goes first.

With ``--hop`` instead (no cluster, a few seconds): the prototype of option (a)'s new cost, one
request forwarded from a network process to a partition owner and its answer back: a trio
process sends ``--hop-bytes`` requests (int32 size + payload) over a Unix socketpair to a
child trio process that reads each whole and answers 64 bytes, with 1 and 8 requests in
flight. Prints µs of wall time per request and CPU µs per request of both processes together
(/proc utime+stime): the transport alone, without the split and merge a broker would add.

Reading it: with one trio thread per broker, a broker process can use at most one core for
its Python work; the ratio ``2cores / brokers1`` is what a second core gave three broker
processes together (the way kafkalike uses several cores today: several brokers), and the
busiest broker's share of a core says how close one process is to that ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import attrs
import trio

from kafkalike.bench import reference_kafka as rkmod
from kafkalike.bench import workloads as wl
from kafkalike.bench.systems import (BenchError, KafkalikeSystem, create_topic, delete_topic, rotated)
from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

HOSTS = [f"127.0.0.{i}" for i in (1, 2, 3)]
PARTITIONS = 6
PLACEMENTS = ("1core", "brokers1", "2cores")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@attrs.frozen
class Placement:
    """CPU sets (CPU numbers as ``os.sched_setaffinity`` takes them) for the broker processes
    and for the client process in one placement."""

    name: str
    brokers: frozenset[int]
    client: frozenset[int]


def placements(cpus: Sequence[int]) -> dict[str, Placement]:
    """The three placements of the module doc over the first two of ``cpus`` (the CPUs this
    process may run on). Raises BenchError with fewer than two."""
    if len(cpus) < 2:
        raise BenchError(f"need at least 2 CPUs to compare one core with two, have {list(cpus)}")
    a, b = sorted(cpus)[:2]
    both = frozenset((a, b))
    return {"1core": Placement("1core", frozenset((a,)), frozenset((a,))),
            "brokers1": Placement("brokers1", frozenset((a,)), frozenset((b,))),
            "2cores": Placement("2cores", both, both)}


# ------------------------------------------------------------------ /proc per thread


def thread_ids(pid: int) -> list[int]:
    """Thread ids of process ``pid`` (/proc/<pid>/task); the main thread's id is ``pid``.
    Empty when the process is gone."""
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """{thread id: user + system CPU seconds} of every live thread of ``pid``, from
    /proc/<pid>/task/<tid>/stat (fields 14 and 15, clock ticks). A thread that exits while
    being read is left out."""
    out: dict[int, float] = {}
    for tid in thread_ids(pid):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[tid] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return out


def pin_process(pid: int, cpus: Iterable[int]) -> int:
    """Set the CPU affinity of every thread of ``pid`` to ``cpus`` (``taskset -a -c ... -p``);
    returns how many threads were set. Threads the process starts later inherit the affinity
    of the thread that starts them. A thread that exits meanwhile is skipped."""
    wanted = set(cpus)
    done = 0
    for tid in thread_ids(pid):
        try:
            os.sched_setaffinity(tid, wanted)
            done += 1
        except ProcessLookupError:
            continue
    return done


@attrs.frozen
class CpuSplit:
    """CPU seconds a process spent between two snapshots: on its main thread (``pid`` itself:
    for a broker, the trio event loop) and on every other thread (threads that exited between
    the snapshots are not counted)."""

    main: float
    other: float

    @property
    def total(self) -> float:
        return self.main + self.other


def cpu_split(pid: int, before: Mapping[int, float], after: Mapping[int, float]) -> CpuSplit:
    """The CpuSplit of ``pid`` from two ``thread_cpu_seconds`` snapshots (a thread new in
    ``after`` counts from zero)."""
    main = after.get(pid, 0.0) - before.get(pid, 0.0)
    other = sum(cpu - before.get(tid, 0.0) for tid, cpu in after.items() if tid != pid)
    return CpuSplit(main, other)


# ------------------------------------------------------------------ results


@attrs.frozen
class RunResult:
    """One produce run under one placement: ``records_per_sec`` (client side, first produce to
    last delivery report), ``seconds`` of that, ``broker_cpu_s`` (all threads of the three
    brokers), ``busiest_broker_core`` (the highest CPU seconds of one broker over ``seconds``: 1.0
    is one core; the CPU of the run's set-up, a JVM's start for instance, counts too),
    ``off_main_share`` (fraction of the brokers' CPU not on their main threads), and the
    1-minute load average before and after."""

    round: int
    acks: str
    placement: str
    records: int
    records_per_sec: float
    seconds: float
    broker_cpu_s: float
    busiest_broker_core: float
    off_main_share: float
    load_before: float
    load_after: float

    @property
    def cpu_us_per_record(self) -> float:
        """Broker CPU µs per record acknowledged (all brokers)."""
        return self.broker_cpu_s / self.records * 1e6 if self.records else 0.0


@attrs.frozen
class SummaryRow:
    """Medians of the runs of one (acks, placement), and ``vs_brokers1``: this placement's
    median records/s over the ``brokers1`` placement's (None when that has no runs)."""

    acks: str
    placement: str
    runs: int
    records_per_sec: float
    cpu_us_per_record: float
    busiest_broker_core: float
    off_main_share: float
    vs_brokers1: float | None


def summarize(results: Sequence[RunResult]) -> list[SummaryRow]:
    """One SummaryRow per (acks, placement) present in ``results``, in the order acks first
    appear, placements in PLACEMENTS order."""
    acks_order = list(dict.fromkeys(r.acks for r in results))
    rows: list[SummaryRow] = []
    for acks in acks_order:
        mine = [r for r in results if r.acks == acks]
        base_runs = [r.records_per_sec for r in mine if r.placement == "brokers1"]
        base = statistics.median(base_runs) if base_runs else None
        for name in PLACEMENTS:
            runs = [r for r in mine if r.placement == name]
            if not runs:
                continue
            rps = statistics.median(r.records_per_sec for r in runs)
            rows.append(SummaryRow(acks, name, len(runs), rps,
                                   statistics.median(r.cpu_us_per_record for r in runs),
                                   statistics.median(r.busiest_broker_core for r in runs),
                                   statistics.median(r.off_main_share for r in runs),
                                   rps / base if base else None))
    return rows


def render_table(rows: Sequence[SummaryRow]) -> str:
    """The Markdown table docs/multicore.md quotes."""
    lines = ["| acks | placement | runs | records/s (median) | vs brokers1 | broker CPU µs/record "
             "| busiest broker, share of a core | brokers' CPU off the main thread |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vs = f"{r.vs_brokers1:.2f}" if r.vs_brokers1 is not None else "—"
        lines.append(f"| {r.acks} | {r.placement} | {r.runs} | {r.records_per_sec:,.0f} | {vs} "
                     f"| {r.cpu_us_per_record:.2f} | {r.busiest_broker_core:.2f} "
                     f"| {100 * r.off_main_share:.1f} % |")
    return "\n".join(lines)


# ------------------------------------------------------------------ threads under the GIL


@attrs.frozen
class ThreadScaling:
    """One work item run ``calls`` times on one thread (``one_thread_s`` seconds) and ``calls``
    times on each of two threads at once (``two_threads_s`` seconds, wall)."""

    work: str
    calls: int
    one_thread_s: float
    two_threads_s: float

    @property
    def speedup(self) -> float:
        """Work done per second with two threads over one thread's: 2.0 is perfect scaling."""
        return 2 * self.one_thread_s / self.two_threads_s if self.two_threads_s else 0.0


def thread_work() -> dict[str, Callable[[], object]]:
    """The work items of ``--threads`` (module doc): name → a call doing one item."""
    import zlib

    import cramjam
    import crc32c

    from kafkalike.bench.produce_validation import make_batch
    from kafkalike.storage.log_validator import validate_records

    walk_batch, _ = make_batch(100, "none")  # ~16 KiB, 140 records of 100 B
    small = bytes(walk_batch)
    big = bytes(make_batch(1000, "none")[0]) * 64  # ~1 MiB, compressible about as JSON is
    gz = zlib.compress(big)
    zs = bytes(cramjam.zstd.compress(big))
    return {
        "record walk, 16 KiB batch of 100 B records (pure Python)": lambda: validate_records(walk_batch),
        "crc32c, 16 KiB": lambda: crc32c.crc32c(small),
        "crc32c, 1 MiB": lambda: crc32c.crc32c(big),
        "zstd decompress, 1 MiB (cramjam)": lambda: cramjam.zstd.decompress(zs),
        "gzip decompress, 1 MiB (zlib)": lambda: zlib.decompress(gz),
    }


def _timed_calls(fn: Callable[[], object], calls: int, threads: int) -> float:
    """Wall seconds for ``threads`` threads, started together, each calling ``fn`` ``calls`` times."""
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        for _ in range(calls):
            fn()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for t in workers:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in workers:
        t.join()
    return time.perf_counter() - t0


def calls_for(fn: Callable[[], object], seconds: float) -> int:
    """How many calls of ``fn`` take about ``seconds`` on one thread (at least 1)."""
    n, elapsed = 1, 0.0
    while elapsed < seconds / 10:
        n *= 2
        elapsed = _timed_calls(fn, n, 1)
    return max(1, int(n * seconds / elapsed))


def thread_scaling(work: Mapping[str, Callable[[], object]], seconds: float, rnd: int) -> list[ThreadScaling]:
    """One round of ``--threads``: every work item for about ``seconds`` on one thread and the
    same calls on each of two; odd rounds run the two-thread measurement first."""
    out = []
    for name, fn in work.items():
        calls = calls_for(fn, seconds)
        if rnd % 2:
            two = _timed_calls(fn, calls, 2)
            one = _timed_calls(fn, calls, 1)
        else:
            one = _timed_calls(fn, calls, 1)
            two = _timed_calls(fn, calls, 2)
        out.append(ThreadScaling(name, calls, one, two))
    return out


def run_threads(rounds: int, seconds: float) -> list[ThreadScaling]:
    """``--threads``: ``rounds`` rounds of thread_scaling; prints each result and the medians."""
    work = thread_work()
    results: list[ThreadScaling] = []
    for rnd in range(rounds):
        for r in thread_scaling(work, seconds, rnd):
            results.append(r)
            print(f"round {rnd} {r.work}: {r.calls / r.one_thread_s:,.0f}/s on one thread, "
                  f"{2 * r.calls / r.two_threads_s:,.0f}/s on two: x{r.speedup:.2f} "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print("| work | one thread, calls/s | speedup with two threads (median) |\n|---|---|---|")
    for name in work:
        mine = [r for r in results if r.work == name]
        print(f"| {name} | {statistics.median(r.calls / r.one_thread_s for r in mine):,.0f} "
              f"| {statistics.median(r.speedup for r in mine):.2f} |", flush=True)
    return results


# ------------------------------------------------------------------ forwarding hop


HOP_REPLY_BYTES = 64
_HOP_CHILD = r"""
import socket, sys, trio

async def main(fd):
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(socket.socket(fileno=fd)))
    reply = (%d).to_bytes(4, "big") + b"r" * %d
    buf = bytearray()
    while True:
        data = await stream.receive_some(262144)
        if not data:
            return
        buf += data
        while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
            del buf[:4 + int.from_bytes(buf[:4], "big")]
            await stream.send_all(reply)

trio.run(main, int(sys.argv[1]))
""" % (HOP_REPLY_BYTES, HOP_REPLY_BYTES)


@attrs.frozen
class HopResult:
    """``requests`` forwarded requests of ``request_bytes`` with ``in_flight`` outstanding:
    ``wall_us`` per request and ``cpu_us`` per request (sender and owner processes together)."""

    request_bytes: int
    in_flight: int
    requests: int
    wall_us: float
    cpu_us: float


async def _send_hops(stream: trio.SocketStream, requests: int, request_bytes: int, in_flight: int) -> None:
    """Send ``requests`` frames, at most ``in_flight`` unanswered, until every answer is read."""
    frame = request_bytes.to_bytes(4, "big") + b"p" * request_bytes
    answer = 4 + HOP_REPLY_BYTES
    sent = received = 0
    pending = b""
    while received < requests:
        while sent < requests and sent - received < in_flight:
            await stream.send_all(frame)
            sent += 1
        data = await stream.receive_some(65536)
        if not data:
            raise BenchError("the owner process closed its socket")
        pending += data
        received += len(pending) // answer
        pending = pending[len(pending) // answer * answer:]


def measure_hop(requests: int, request_bytes: int, in_flight: int) -> HopResult:
    """One --hop measurement (module doc) with a fresh owner process, stopped at the end."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = subprocess.Popen([sys.executable, "-c", _HOP_CHILD, str(theirs.fileno())], pass_fds=(theirs.fileno(),))
    theirs.close()
    try:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))

        async def run() -> HopResult:
            await _send_hops(stream, min(requests, 200), request_bytes, in_flight)  # warm-up
            cpu0 = time.process_time() + sum(thread_cpu_seconds(child.pid).values())
            t0 = time.perf_counter()
            await _send_hops(stream, requests, request_bytes, in_flight)
            wall = time.perf_counter() - t0
            cpu = time.process_time() + sum(thread_cpu_seconds(child.pid).values()) - cpu0
            await stream.aclose()
            return HopResult(request_bytes, in_flight, requests, wall / requests * 1e6, cpu / requests * 1e6)

        return trio.run(run)
    finally:
        ours.close()  # the owner process reads end-of-file and exits
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run_hops(rounds: int, requests: int, sizes: Sequence[int]) -> list[HopResult]:
    """``--hop``: ``rounds`` rounds over every size in ``sizes`` with 1 and 8 in flight (the
    order reversed on odd rounds); prints each result and the medians."""
    cases = [(size, fl) for size in sizes for fl in (1, 8)]
    results: list[HopResult] = []
    for rnd in range(rounds):
        for size, fl in (cases if rnd % 2 == 0 else cases[::-1]):
            r = measure_hop(requests, size, fl)
            results.append(r)
            print(f"round {rnd} {size:,} B, {fl} in flight: {r.wall_us:.1f} µs wall, {r.cpu_us:.1f} CPU µs "
                  f"per request (load {os.getloadavg()[0]:.1f})", flush=True)
    print("| request bytes | in flight | wall µs per request | CPU µs per request (both processes) |\n"
          "|---|---|---|---|")
    for size, fl in cases:
        mine = [r for r in results if (r.request_bytes, r.in_flight) == (size, fl)]
        print(f"| {size:,} | {fl} | {statistics.median(r.wall_us for r in mine):.1f} "
              f"| {statistics.median(r.cpu_us for r in mine):.1f} |", flush=True)
    return results


# ------------------------------------------------------------------ one run


def produce_sized(system: KafkalikeSystem, topic: str, records: int, acks: str, record_bytes: int) -> wl.ProduceResult:
    """workloads.produce_librdkafka with ``record_bytes`` values instead of 100 B (same batching,
    6 partitions round-robin): bigger records cost the Python client less per byte, so that
    the brokers rather than the client's per-record loop become the bottleneck. BenchError if
    any record fails."""
    from confluent_kafka import Producer

    failed = 0

    def on_delivery(err: object, msg: object) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    producer = Producer({"bootstrap.servers": system.bootstrap, "acks": acks, "message.timeout.ms": 300_000,
                         "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576,
                         "logger": wl.LIBRDKAFKA_LOGGER, **wl.PRODUCER_BATCHING})
    payload = b"x" * record_bytes
    producer.produce(topic, payload, partition=0)
    if producer.flush(60) != 0:
        raise BenchError("librdkafka warm-up record not acknowledged")
    pids = system.pids()
    cpu0 = wl.total_cpu(pids)
    t0 = time.monotonic()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, payload, partition=i % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.005)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(600)
    secs = time.monotonic() - t0
    cpu = wl.total_cpu(pids) - cpu0
    if left or failed:
        raise BenchError(f"librdkafka: {failed} failed, {left} unacknowledged of {records}")
    return wl.ProduceResult(records, secs, records / secs, cpu, cpu / (records * record_bytes / 1e9))


def run_once(system: KafkalikeSystem, placement: Placement, acks: str, records: int, rnd: int,
             tools: rkmod.ReferenceKafka | None = None, record_bytes: int = wl.RECORD_SIZE) -> RunResult:
    """Pin the brokers and this process as ``placement`` says, create a fresh topic, produce
    ``records`` with ``acks`` (workloads.produce_librdkafka, or with ``tools`` Kafka's
    ProducerPerformance, a JVM this process starts and so pins alike), measure, delete the topic."""
    pids = system.pids()
    for pid in pids.values():
        pin_process(pid, placement.brokers)
    pin_process(os.getpid(), placement.client)
    topic = f"mc-{rnd}-{placement.name}-{acks}"
    create_topic(system.bootstrap, topic, PARTITIONS, 3, timeout=120)
    load_before = os.getloadavg()[0]
    before = {b: thread_cpu_seconds(p) for b, p in pids.items()}
    t0 = time.monotonic()
    if tools is None and record_bytes != wl.RECORD_SIZE:
        res = produce_sized(system, topic, records, acks, record_bytes)
    elif tools is None:
        res = wl.produce_librdkafka(system, topic, records, acks, partitions=PARTITIONS)
    else:
        res = wl.produce_kafka_perf(system, tools, topic, records, acks)
    wall = time.monotonic() - t0
    after = {b: thread_cpu_seconds(p) for b, p in pids.items()}
    splits = [cpu_split(p, before[b], after[b]) for b, p in pids.items()]
    total = sum(s.total for s in splits)
    result = RunResult(rnd, acks, placement.name, res.records, res.records_per_sec, res.seconds, total,
                       max(s.total for s in splits) / (res.seconds or wall) if (res.seconds or wall) else 0.0,
                       sum(s.other for s in splits) / total if total else 0.0,
                       load_before, os.getloadavg()[0])
    delete_topic(system.bootstrap, topic)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kafkalike.bench.multicore", description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--records", type=int, default=300_000, help="records (100 B) per run")
    ap.add_argument("--acks", default="1,all", help="comma-separated: 1, all")
    ap.add_argument("--placements", default=",".join(PLACEMENTS),
                    help=f"comma-separated, of {', '.join(PLACEMENTS)}")
    ap.add_argument("--warmup", type=int, default=50_000, help="records of a discarded run first (0: none)")
    ap.add_argument("--tool", choices=("librdkafka", "kafka-perf"), default="librdkafka",
                    help="the producer: librdkafka in this process, or Kafka's ProducerPerformance "
                         "(a JVM; Kafka's jars in reference/lib)")
    ap.add_argument("--record-bytes", type=int, default=wl.RECORD_SIZE,
                    help="value bytes per record (librdkafka only; default 100)")
    ap.add_argument("--json", type=Path, help="write every run here")
    ap.add_argument("--threads", action="store_true",
                    help="only the thread-scaling measurement of the module doc (no cluster)")
    ap.add_argument("--seconds", type=float, default=0.5, help="--threads: seconds per work item and run")
    ap.add_argument("--hop", action="store_true",
                    help="only the forwarding-hop measurement of the module doc (no cluster)")
    ap.add_argument("--hop-bytes", default="16384,262144", help="--hop: comma-separated request sizes")
    ap.add_argument("--hop-requests", type=int, default=5000, help="--hop: requests per measurement")
    args = ap.parse_args(argv)
    if args.hop:
        hops = run_hops(args.rounds, args.hop_requests, [int(x) for x in args.hop_bytes.split(",")])
        if args.json is not None:
            args.json.write_text(json.dumps([attrs.asdict(r) for r in hops], indent=1))
        return 0
    if args.threads:
        scaled = run_threads(args.rounds, args.seconds)
        if args.json is not None:
            args.json.write_text(json.dumps([attrs.asdict(r) for r in scaled], indent=1))
        return 0
    acks_list = [a.strip() for a in args.acks.split(",") if a.strip()]
    chosen = [p.strip() for p in args.placements.split(",") if p.strip()]
    if not acks_list or any(a not in ("1", "all") for a in acks_list):
        ap.error("--acks takes 1 and/or all")
    if args.record_bytes != wl.RECORD_SIZE and args.tool != "librdkafka":
        ap.error("--record-bytes is for --tool librdkafka")
    if not chosen or any(p not in PLACEMENTS for p in chosen):
        ap.error(f"--placements takes {', '.join(PLACEMENTS)}")
    own_cpus = sorted(os.sched_getaffinity(0))
    try:
        table = placements(own_cpus)
    except BenchError as e:
        ap.error(str(e))
    work = Path(tempfile.mkdtemp(prefix="multicore-"))
    ensemble = ZkEnsemble(work / "zk", nodes=1, base_port=find_free_base_port(HOSTS[:1]), die_with_parent=True)
    system: KafkalikeSystem | None = None
    results: list[RunResult] = []
    try:
        ensemble.start(timeout=90)
        system = KafkalikeSystem(work / "kafkalike", ensemble.connect_string,
                                 find_free_base_port(HOSTS, low=30000, high=32000), chroot="multicore")
        system.up()
        tools = wl.tool_runner(work) if args.tool == "kafka-perf" else None
        print(f"cluster up: {system.bootstrap}, broker pids {system.pids()}, CPUs {own_cpus}", flush=True)
        if args.warmup:
            warm = run_once(system, table["2cores"], acks_list[0], args.warmup, -1, tools, args.record_bytes)
            print(f"warm-up (discarded): {warm.records_per_sec:,.0f} records/s", flush=True)
        for rnd in range(args.rounds):
            for name in rotated(chosen, rnd):
                for acks in acks_list:
                    r = run_once(system, table[name], acks, args.records, rnd, tools, args.record_bytes)
                    results.append(r)
                    print(f"round {rnd} acks={acks} {name}: {r.records_per_sec:,.0f} records/s, "
                          f"broker CPU {r.cpu_us_per_record:.2f} µs/record, busiest broker "
                          f"{r.busiest_broker_core:.2f} of a core, {100 * r.off_main_share:.1f} % off "
                          f"the main thread (load {r.load_before:.1f} -> {r.load_after:.1f})", flush=True)
    finally:
        pin_process(os.getpid(), own_cpus)
        if system is not None:
            for pid in system.pids().values():
                pin_process(pid, own_cpus)
            system.down()
        ensemble.stop()
        shutil.rmtree(work, ignore_errors=True)
        if args.json is not None:
            args.json.write_text(json.dumps([attrs.asdict(r) for r in results], indent=1))
    print(render_table(summarize(results)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
