"""Many topics on one cluster: what one Metadata request with auto-creation does to a broker
(docs/robustness.md), measured against real broker processes.

    python -m kafkalike.bench.many_topics --topics 10000 --brokers 1 --metadata-rounds 5

Starts a 1-node ZooKeeper ensemble and a ``--brokers`` cluster (auto.create.topics.enable,
num.partitions 1, replication factor 1), all stopped afterwards by pid. Then:

1. create: ONE Metadata v1 request naming ``--topics`` new topics (auto-creation, as the
   issue's probe did); seconds until every broker's metadata cache lists them all;
2. metadata: ``--metadata-rounds`` all-topics Metadata requests (v1) while a second
   connection sends ApiVersions back to back: the Metadata round-trip times, the size of the
   answer, and the longest ApiVersions round trip (how long the broker's event loop stalled);
3. delete: DeleteTopics for every topic (batches of ``--delete-batch`` names, timeout 0 so
   the request only marks them); seconds until the broker's metadata lists none, and the
   longest ApiVersions round trip meanwhile;
4. stop: SIGTERM to every broker; seconds until each process exited.

``--via zk`` writes the topic znodes and deletion marks to ZooKeeper directly instead (the
controller's and broker's work without the admin requests'); ``--no-delete`` skips step 3.

``--loop-steps`` also measures, inside each broker process, every step of its trio event loop
(a trio Instrument, ``LoopStepWatch``, installed through a ``sitecustomize`` module the brokers
import at start-up): after each phase it prints the longest single task step and how many steps
took over 100 ms, figures that depend much less on the machine's load than the ApiVersions round
trips do; a step over ``--stack-after-ms`` has its Python stack sampled by a watchdog thread
and written to ``<work>/loop-steps-<pid>.txt`` (printed at the end with ``--show-stacks``).

Prints one line per step. docs/benchmarks.md ("Many topics") quotes it. The helpers are
shared with tests/controller/test_many_topics.py.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from kafkalike.client.connection import KafkaConnection
from kafkalike.client.messages import build_request
from kafkalike.cluster import process
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.errors import MultiOpFailed
from kafkalike.coordination.zookeeper_client import CreateOp
from kafkalike.logs import configure as configure_logs
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import encode_request

#: Metadata v1: the version of the issue's probe (auto-creation, no allow_auto flag)
METADATA_VERSION = 1
REQUEST_TIMEOUT_MS = 600_000.0


@attrs.define
class PingStats:
    """ApiVersions round trips (seconds) sent back to back while something else runs."""

    rtts: list[float] = attrs.Factory(list)

    @property
    def max(self) -> float:
        return max(self.rtts, default=0.0)


class LoopStepWatch(trio.abc.Instrument):
    """A trio Instrument timing every task step of the event loop it is installed in (seconds,
    time.perf_counter): ``longest`` (duration, task name) and ``over`` (how many steps took more
    than ``slow_s``). With ``stack_after_s`` a watchdog thread samples the loop thread's stack
    when a step has run that long, and ``report()`` lists the slow steps with their samples.

    A step is what runs between two checkpoints of one task: the time the loop could serve
    nothing else. The longest step bounds how long any other request waited for the loop."""

    def __init__(self, slow_s: float = 0.1, stack_after_s: float | None = None) -> None:
        self.slow_s = slow_s
        self.stack_after_s = stack_after_s
        self.longest: tuple[float, str] = (0.0, "")
        self.longest_cpu: tuple[float, str] = (0.0, "")  # the loop thread's CPU time (time.thread_time)
        self.over = 0
        self.over_cpu = 0  # steps whose loop-thread CPU time alone was over slow_s
        self.steps = 0
        self.slow: list[tuple[float, str, list[str], float]] = []  # (seconds, task, stack samples, CPU seconds)
        self._started: float | None = None
        self._started_cpu = 0.0
        self._samples: list[str] = []
        self._thread_id = threading.get_ident()
        self._lock = threading.Lock()
        #: the cyclic garbage collector's full (generation 2) collections: how many, the longest
        #: (seconds); any thread's collection holds every thread, the loop's included
        self.gc_full = 0
        self.gc_longest = 0.0
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)
        if stack_after_s is not None:
            threading.Thread(target=self._watchdog, name="loop-step-watchdog", daemon=True).start()

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_full += 1
            self.gc_longest = max(self.gc_longest, time.perf_counter() - self._gc_started)

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        with self._lock:
            self._started = time.perf_counter()
            self._started_cpu = time.thread_time()
            self._samples = []

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        with self._lock:
            started, self._started = self._started, None
            samples = self._samples
        if started is None:
            return
        d = time.perf_counter() - started
        cpu = time.thread_time() - self._started_cpu
        self.steps += 1
        if d > self.longest[0]:
            self.longest = (d, task.name)
        if cpu > self.longest_cpu[0]:
            self.longest_cpu = (cpu, task.name)
        if cpu > self.slow_s:
            self.over_cpu += 1
        if d > self.slow_s:
            self.over += 1
            if self.stack_after_s is not None:
                self.slow.append((d, task.name, samples, cpu))

    def reset(self) -> tuple[float, str, int, int, float, str, int, int, float]:
        """(longest step seconds, its task, steps over slow_s, steps, longest step in CPU
        seconds of the loop thread, its task, steps over slow_s in CPU time, full garbage
        collections, the longest one in seconds) since the last reset. The CPU figures leave
        out the time the thread was preempted (a loaded machine) or blocked (disk, the GIL)."""
        out = (*self.longest, self.over, self.steps, *self.longest_cpu, self.over_cpu, self.gc_full, self.gc_longest)
        self.longest, self.longest_cpu, self.over, self.steps, self.over_cpu = (0.0, ""), (0.0, ""), 0, 0, 0
        self.gc_full, self.gc_longest = 0, 0.0
        return out

    def _watchdog(self) -> None:
        import sys as _sys

        assert self.stack_after_s is not None
        while True:
            time.sleep(self.stack_after_s / 2)
            with self._lock:
                started = self._started
                if started is None or time.perf_counter() - started < self.stack_after_s or len(self._samples) > 20:
                    continue
                frame = _sys._current_frames().get(self._thread_id)
                if frame is not None:
                    self._samples.append("".join(traceback.format_stack(frame)[-14:]))

    def report(self) -> str:
        """The slow steps, most loop-thread CPU time first, each with up to 3 stack samples."""
        lines = []
        for d, name, samples, cpu in sorted(self.slow, key=lambda x: -x[3]):
            lines.append(f"=== {d * 1000:.0f} ms step ({cpu * 1000:.0f} ms CPU) of {name}, {len(samples)} stack samples")
            for smp in samples[:3]:
                lines.append(smp)
        return "\n".join(lines)


#: sitecustomize for the brokers with --loop-steps: trio.run gets a LoopStepWatch; SIGUSR1
#: writes "<longest ms> <steps over 100 ms> <steps> <longest CPU ms> <task> <CPU task> <steps over
#: 100 ms CPU> <full GCs> <longest full GC ms>" (tab-separated) to <dir>/loop-steps-<pid>.now and
#: resets; at exit the slow steps' stacks go to <dir>/loop-steps-<pid>.txt
_SITECUSTOMIZE = r"""
import atexit, os, signal, trio
from kafkalike.bench.many_topics import LoopStepWatch
_dir = os.environ["KAFKALIKE_LOOP_STEPS_DIR"]
_after = float(os.environ.get("KAFKALIKE_LOOP_STEPS_STACK_AFTER_S", "0.08"))
_watch = LoopStepWatch(stack_after_s=_after)
_run = trio.run
def _patched(*args, **kwargs):
    kwargs["instruments"] = [*kwargs.get("instruments", ()), _watch]
    return _run(*args, **kwargs)
trio.run = _patched
def _dump(*_):
    d, name, over, steps, cpu, cpu_name, over_cpu, gc_full, gc_longest = _watch.reset()
    with open(os.path.join(_dir, f"loop-steps-{os.getpid()}.now.tmp"), "w") as f:
        f.write(f"{d * 1000:.1f}\t{over}\t{steps}\t{cpu * 1000:.1f}\t{name}\t{cpu_name}\t{over_cpu}\t{gc_full}\t"
                f"{gc_longest * 1000:.1f}\n")
    os.replace(os.path.join(_dir, f"loop-steps-{os.getpid()}.now.tmp"), os.path.join(_dir, f"loop-steps-{os.getpid()}.now"))
signal.signal(signal.SIGUSR1, _dump)
_freeze_every = float(os.environ.get("KAFKALIKE_GC_FREEZE_EVERY_S", "0"))
if _freeze_every > 0:  # the --gc-freeze-every experiment: survivors leave the collector's view
    import gc, threading, time
    def _freezer():
        while True:
            time.sleep(_freeze_every)
            gc.freeze()
    threading.Thread(target=_freezer, name="gc-freezer", daemon=True).start()
def _stacks():
    with open(os.path.join(_dir, f"loop-steps-{os.getpid()}.txt"), "w") as f:
        f.write(_watch.report())
atexit.register(_stacks)
"""


async def _connect(address: str, nursery: trio.Nursery) -> KafkaConnection:
    host, port = address.rsplit(":", 1)
    return await KafkaConnection.connect(host, int(port), nursery=nursery, request_timeout_ms=REQUEST_TIMEOUT_MS)


#: the pinger: its own process, so that the time this process spends decoding big answers is
#: not counted as the broker's. argv: host, port, request frame (hex). Sends the frame, reads the
#: answer, records the round trip, 5 ms pause, again; prints "ready" after the first answer;
#: on SIGTERM prints the round trips (seconds, comma-separated) and exits.
_PINGER = r"""
import signal, socket, sys, time
host, port, frame = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
rtts = []
def done(*_):
    print(",".join(f"{r:.6f}" for r in rtts), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
s = socket.create_connection((host, port))
def recv_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise SystemExit("connection closed")
        buf += chunk
    return buf
while True:
    t0 = time.monotonic()
    s.sendall(frame)
    size = int.from_bytes(recv_exact(4), "big")
    recv_exact(size)
    rtts.append(time.monotonic() - t0)
    if len(rtts) == 1:
        print("ready", flush=True)
    time.sleep(0.005)
"""


async def while_pinging(address: str, work: Callable[[], Awaitable[Any]]) -> tuple[Any, PingStats]:
    """Run ``work()`` while another process sends ApiVersions v0 to ``address`` back to back
    (one in flight, 5 ms apart); returns (work's result, the round trips). The longest round
    trip is how long the broker's event loop was kept from answering a trivial request. The
    pinger process is stopped here, pass or fail."""
    host, port = address.rsplit(":", 1)
    frame = encode_request(build_request(ApiKey.API_VERSIONS, 0), correlation_id=1, client_id="pinger")
    proc = subprocess.Popen([sys.executable, "-c", _PINGER, host, port, frame.hex()],
                            stdout=subprocess.PIPE, text=True)
    try:
        ready = await trio.to_thread.run_sync(proc.stdout.readline)  # type: ignore[union-attr]  # stdout=PIPE, so stdout is set
        if ready.strip() != "ready":
            raise RuntimeError(f"the ApiVersions pinger did not start (exit {proc.poll()})")
        result = await work()
        proc.send_signal(signal.SIGTERM)
        out = await trio.to_thread.run_sync(proc.stdout.read)  # type: ignore[union-attr]  # stdout=PIPE, so stdout is set
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return result, PingStats([float(x) for x in out.strip().split(",") if x])


async def metadata(address: str, topics: Sequence[str] | None, *, allow_auto: bool = False) -> Any:
    """One Metadata v1 request (``topics`` None: all topics) on a fresh connection."""
    async with trio.open_nursery() as nursery:
        conn = await _connect(address, nursery)
        try:
            fields: dict[str, Any] = {"topics": None if topics is None else [{"name": t} for t in topics]}
            if allow_auto:
                fields["allow_auto_topic_creation"] = True
            return await conn.call(ApiKey.METADATA, api_version=METADATA_VERSION, **fields)
        finally:
            await conn.aclose()


async def topic_count(address: str) -> int:
    """How many topics the broker at ``address`` lists (all-topics Metadata)."""
    resp = await metadata(address, None)
    return sum(1 for t in resp.topics if t.error_code == 0)


async def wait_topic_count(addresses: Sequence[str], want: Callable[[int], bool], timeout: float,
                           poll: float = 0.5) -> float:
    """Seconds until every broker's topic count satisfies ``want``; raises TimeoutError."""
    t0 = time.monotonic()
    with trio.fail_after(timeout):
        for address in addresses:
            while not want(await topic_count(address)):
                await trio.sleep(poll)
    return time.monotonic() - t0


async def delete_topics(address: str, names: Sequence[str], batch: int = 1000) -> None:
    """DeleteTopics for ``names`` (``batch`` names per request, timeout 0: mark only)."""
    async with trio.open_nursery() as nursery:
        conn = await _connect(address, nursery)
        try:
            for i in range(0, len(names), batch):
                await conn.call(ApiKey.DELETE_TOPICS, topic_names=list(names[i:i + batch]), timeout=0)
        finally:
            await conn.aclose()


async def mark_for_deletion_in_zk(zk_connect: str, names: Sequence[str]) -> None:
    """Create ``/admin/delete_topics/<t>`` for every name, pipelined (what DeleteTopics, or
    ``kafka-topics --zookeeper --delete``, writes): the controller's side of deletion alone."""
    zk = ZooKeeperClient(zk_connect, name="many-topics-bench")
    await zk.start()
    try:
        await zk.ensure_path(zd.DELETE_TOPICS_PATH)
        await zk.multi_many([[CreateOp(zd.delete_topic_path(t))] for t in names])
    finally:
        await zk.close()


async def create_in_zk(zk_connect: str, names: Sequence[str], broker: int = 1) -> None:
    """Write ``/brokers/topics/<t>`` (one partition, on ``broker``) for every name, pipelined
    (what Kafka's AdminZkClient.createTopic writes): the controller's side of creation alone."""
    zk = ZooKeeperClient(zk_connect, name="many-topics-bench")
    await zk.start()
    try:
        await zk.ensure_path(zd.BROKER_TOPICS_PATH)
        outcomes = await zk.multi_many([
            [CreateOp(zd.topic_path(t), zd.TopicAssignment(
                t, {0: zd.ReplicaAssignment((broker,))}, zd.generate_uuid_base64()).to_json())]
            for t in names])
        failed = [o for o in outcomes if isinstance(o, MultiOpFailed)]
        if failed:
            raise RuntimeError(f"{len(failed)} topic znodes not created: {failed[:3]}")
    finally:
        await zk.close()


def loop_steps(cluster: LocalCluster, steps_dir: Path | None) -> str:
    """With --loop-steps: each broker's longest event-loop step since the last call, as
    " [broker 1: longest loop step 12 ms (SocketServer._run_connection), 0 of 3,210 steps over 100 ms]";
    "" without."""
    if steps_dir is None:
        return ""
    out = []
    for b in cluster.broker_ids:
        pid = cluster.broker_pid(b)
        if pid is None:
            continue
        path = steps_dir / f"loop-steps-{pid}.now"
        path.unlink(missing_ok=True)
        process.signal_pid(pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not path.exists():
            out.append(f"broker {b}: no answer")
            continue
        ms, over, steps, cpu_ms, name, cpu_name, over_cpu, gc_full, gc_ms = path.read_text().rstrip("\n").split("\t")

        def short(task: str) -> str:
            return ".".join(task.rsplit(".", 2)[-2:])

        out.append(f"broker {b}: longest loop step {float(ms):.0f} ms ({short(name)}), {int(over):,} of "
                   f"{int(steps):,} steps over 100 ms; longest in CPU time {float(cpu_ms):.0f} ms ({short(cpu_name)}), "
                   f"{int(over_cpu):,} over 100 ms in CPU time; {int(gc_full)} full garbage collections, "
                   f"longest {float(gc_ms):.0f} ms")
    return " [" + "; ".join(out) + "]"


def topic_names(n: int, prefix: str = "many") -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(n)]


async def sigterm_while_creating(cluster: LocalCluster, topics: int, after_s: float) -> None:
    """Write ``topics`` topic znodes, wait ``after_s`` seconds (the controller busy creating
    them), then SIGTERM every broker and print how long each took to exit (and how many topics
    it listed just before)."""
    first = cluster.broker_address(cluster.broker_ids[0])
    await create_in_zk(cluster.zk_connect, topic_names(topics))
    await trio.sleep(after_s)
    listed = await topic_count(first)
    exits = stop_timed(cluster)
    print(f"stop   : SIGTERM {after_s:.0f} s after {topics:,} topic znodes were written ({listed:,} listed by broker "
          f"{cluster.broker_ids[0]} then): " + ", ".join(f"broker {b} exited {s:.2f} s after SIGTERM"
                                                           for b, s in exits.items()), flush=True)


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (VmRSS of /proc/<pid>/status; 0 if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def run(cluster: LocalCluster, topics: int, metadata_rounds: int, delete_batch: int, via: str,
              delete: bool = True, steps_dir: Path | None = None) -> None:
    def steps() -> str:
        return loop_steps(cluster, steps_dir) + "; broker RSS " + ", ".join(
            f"{rss_bytes(cluster.broker_pid(b)) / 2**20:.0f} MiB" for b in cluster.broker_ids)

    steps()  # start-up's steps are not counted
    addresses = [cluster.broker_address(b) for b in cluster.broker_ids]
    first = addresses[0]
    names = topic_names(topics)

    t0 = time.monotonic()
    if via == "api":
        resp, ping = await while_pinging(first, lambda: metadata(first, names, allow_auto=True))
        request_s = time.monotonic() - t0
        wait_s = await wait_topic_count(addresses, lambda n: n >= topics, timeout=3600)
        print(f"create : one Metadata v1 request naming {topics:,} topics answered in {request_s:.2f} s "
              f"({len(resp.topics):,} topics in the answer); all brokers list them {request_s + wait_s:.2f} s "
              f"after the request; longest ApiVersions round trip meanwhile {ping.max * 1000:.0f} ms{steps()}", flush=True)
    else:
        async def create() -> float:
            await create_in_zk(cluster.zk_connect, names)
            return await wait_topic_count(addresses, lambda n: n >= topics, timeout=3600)

        _, ping = await while_pinging(first, create)
        print(f"create : {topics:,} topic znodes written to ZooKeeper; all brokers list them "
              f"{time.monotonic() - t0:.2f} s later; longest ApiVersions round trip meanwhile "
              f"{ping.max * 1000:.0f} ms{steps()}", flush=True)

    for r in range(metadata_rounds):
        rtts: list[float] = []

        async def rounds() -> int:
            t = time.monotonic()
            resp = await metadata(first, None)
            rtts.append(time.monotonic() - t)
            return len(resp.topics)

        n, ping = await while_pinging(first, rounds)
        print(f"metadata: all-topics Metadata v1 ({n:,} topics) {rtts[0] * 1000:.0f} ms; longest ApiVersions "
              f"round trip meanwhile {ping.max * 1000:.0f} ms ({len(ping.rtts)} pings){steps()}", flush=True)

    if not delete:
        return

    async def delete_all() -> tuple[float, float]:
        t = time.monotonic()
        if via == "api":
            await delete_topics(first, names, delete_batch)
        else:
            await mark_for_deletion_in_zk(cluster.zk_connect, names)
        await wait_topic_count(addresses, lambda n: n == 0, timeout=3600, poll=1.0)
        metadata_s = time.monotonic() - t
        zk = ZooKeeperClient(cluster.zk_connect, name="many-topics-bench")
        await zk.start()
        try:
            while await zk.get_children(zd.BROKER_TOPICS_PATH) or await zk.get_children(zd.DELETE_TOPICS_PATH):
                await trio.sleep(0.5)
        finally:
            await zk.close()
        return metadata_s, time.monotonic() - t

    (metadata_s, zk_s), ping = await while_pinging(first, delete_all)
    how = "the first DeleteTopics" if via == "api" else "the deletion marks were written to ZooKeeper"
    print(f"delete : {topics:,} topics gone from every broker's metadata {metadata_s:.2f} s after {how}, "
          f"from ZooKeeper {zk_s:.2f} s after ({topics / zk_s:,.0f} topics/s); longest ApiVersions round trip "
          f"meanwhile {ping.max * 1000:.0f} ms{steps()}", flush=True)


def stop_timed(cluster: LocalCluster) -> dict[int, float]:
    """SIGTERM every broker at once; seconds until each exited (math.inf: killed after 120 s)."""
    pids = {b: cluster.broker_pid(b) for b in cluster.broker_ids if cluster.broker_alive(b)}
    t0 = time.monotonic()
    for pid in pids.values():
        process.signal_pid(pid, signal.SIGTERM)  # type: ignore[arg-type]  # only alive brokers, which have a pid
    out: dict[int, float] = {}
    for b, pid in pids.items():
        try:
            process.wait_for(lambda: not process.is_alive(pid), 120, what=f"broker {b} to exit")
            out[b] = time.monotonic() - t0
        except TimeoutError:
            out[b] = math.inf
            process.stop_pid(pid, timeout=1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kafkalike.bench.many_topics", description=__doc__.split("\n")[0])
    ap.add_argument("--topics", type=int, default=10_000)
    ap.add_argument("--brokers", type=int, default=1)
    ap.add_argument("--metadata-rounds", type=int, default=5)
    ap.add_argument("--delete-batch", type=int, default=1000, help="topic names per DeleteTopics request")
    ap.add_argument("--via", choices=("api", "zk"), default="api",
                    help="api: create with one Metadata request, delete with DeleteTopics (the broker's admin "
                         "path included); zk: write the topic znodes / deletion marks to ZooKeeper directly, "
                         "pipelined (the controller's work alone)")
    ap.add_argument("--no-delete", action="store_true", help="skip step 3 (deleting took hours before batched deletion)")
    ap.add_argument("--loop-steps", action="store_true",
                    help="time every event-loop step inside the brokers (a trio Instrument) and print the longest")
    ap.add_argument("--stack-after-ms", type=float, default=80.0,
                    help="with --loop-steps: sample the stack of a step running this long")
    ap.add_argument("--show-stacks", action="store_true", help="with --loop-steps: print the slow steps' stacks")
    ap.add_argument("--sigterm-while-creating", type=float, default=None, metavar="S",
                    help="instead of the steps above: write the topic znodes, SIGTERM the brokers S seconds later "
                         "(their controller busy creating the topics) and time their exit")
    ap.add_argument("--gc-freeze-every", type=float, default=0.0, metavar="S",
                    help="with --loop-steps, an experiment: every S seconds the brokers call gc.freeze() (objects "
                         "alive then are left out of later garbage collections: a full collection of a broker "
                         "holding 10,000 topics' objects takes hundreds of ms)")
    ap.add_argument("--gc-freeze-interval-ms", type=int, default=None, metavar="MS",
                    help="the brokers' kafkalike.gc.freeze.interval.ms (default: the broker's, 10000; 0 = off)")
    args = ap.parse_args(argv)
    configure_logs(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="kafkalike-many-topics-"))
    steps_dir: Path | None = None
    if args.loop_steps:
        steps_dir = work / "loop-steps"
        steps_dir.mkdir()
        (steps_dir / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        # the brokers inherit this environment (a sitecustomize on their path is imported at start-up)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(steps_dir), str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        os.environ["KAFKALIKE_LOOP_STEPS_DIR"] = str(steps_dir)
        os.environ["KAFKALIKE_LOOP_STEPS_STACK_AFTER_S"] = str(args.stack_after_ms / 1000)
        os.environ["KAFKALIKE_GC_FREEZE_EVERY_S"] = str(args.gc_freeze_every)
    ensemble = ZkEnsemble(work / "zk", nodes=1, base_port=find_free_base_port(["127.0.0.1"]), die_with_parent=True)
    ensemble.start(timeout=90)
    cluster = None
    try:
        hosts = [f"127.0.0.{i}" for i in range(1, args.brokers + 1)]
        cluster = LocalCluster(work / "cluster", brokers=args.brokers, base_port=find_free_base_port(hosts, low=30000,
                                                                                                     high=32000),
                               zookeeper_connect=ensemble.connect_string, chroot="many-topics",
                               overrides={"auto.create.topics.enable": "true", "num.partitions": "1",
                                          "default.replication.factor": "1",
                                          **({} if args.gc_freeze_interval_ms is None else
                                             {"kafkalike.gc.freeze.interval.ms": str(args.gc_freeze_interval_ms)})})
        cluster.start(timeout=90)
        if args.sigterm_while_creating is not None:
            trio.run(sigterm_while_creating, cluster, args.topics, args.sigterm_while_creating)
            return 0
        trio.run(run, cluster, args.topics, args.metadata_rounds, args.delete_batch, args.via,
                 not args.no_delete, steps_dir)
        pids = [cluster.broker_pid(b) for b in cluster.broker_ids]
        exits = stop_timed(cluster)
        print("stop   : " + ", ".join(f"broker {b} exited {s:.2f} s after SIGTERM" for b, s in exits.items()),
              flush=True)
        if steps_dir is not None and args.show_stacks:
            for pid in pids:
                path = steps_dir / f"loop-steps-{pid}.txt"
                if path.exists():
                    print(f"--- broker pid {pid}: event-loop steps over 100 ms, with stack samples\n{path.read_text()}",
                          flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
        ensemble.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
