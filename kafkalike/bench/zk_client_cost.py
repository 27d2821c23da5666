"""kazoo's per-request cost against ZooKeeper's own Java client (issue 24).

The controller's per-partition ZooKeeper work (Kafka's KafkaZkClient: getData of each state
znode, then per partition one multi of a check on /controller_epoch and a conditional setData)
is the known limit of a failover at 10,000 partitions. This bench issues the same requests from
both clients against ONE real ZooKeeper server (ZkEnsemble, 1 node, started here, stopped at
the end) and reports, per request kind and way of issuing it, microseconds per znode of wall
time, of the client process's CPU (all its threads) and of the ZooKeeper server's CPU:

    python -m kafkalike.bench.zk_client_cost --znodes 10000 --rounds 2 \\
        [--tree before=/tmp/zk-cost-before --tree after=.] [--multi 50] [--no-java] [--json OUT]

Request kinds, each over N znodes ``<root>/brokers/topics/t/partitions/P/state``: ``create``,
``get``, ``set`` (setData at a version), ``multi1`` (per znode a multi: check of the guard's
version + setData at a version, Kafka's updateLeaderAndIsr request), ``multiM`` (one multi per M
znodes: the check + their M setData), ``delete``. Ways of issuing them (``--modes``):

* ``sync``: one blocking call at a time (kazoo's ``kz.get`` ...; Java's ``zk.getData`` ...);
* ``async-K``: K requests in flight (kazoo's ``*_async`` from one thread, waiting for the
  oldest answer when K are out; Java's callback API with a semaphore of K permits, which is
  Kafka's ZooKeeperClient.handleRequests; Kafka's zookeeper.max.in.flight.requests is 10);
  ``async-all``: every request out at once (what ZooKeeperClient's batches do);
* ``zkclient`` (Python only): kafkalike's ZooKeeperClient batch calls the controller uses,
  from trio: ``get_many`` (get) and ``multi_many`` (multi1, multiM).

Python side: a subprocess per ``--tree LABEL=DIR`` (a kafkalike source tree, e.g. ``git archive
<commit> | tar -x -C DIR``; its ``kafkalike.coordination`` is imported, so the raw kazoo calls go
through that tree's kazoo handler too); default this checkout, labelled ``here``. Java side
(unless ``--no-java``): ``kafkalike/bench/java/ZkClientCost.java`` compiled with ``javac``
against the zookeeper jars of ``$KAFKALIKE_KAFKA_LIB`` (default ``reference/lib``, Kafka 3.9's:
zookeeper-3.8.x), run with a warm-up pass of every mode before the measured pass. Clients run
one at a time, rotated per round. CPU: the client's ``CLOCK_PROCESS_CPUTIME_ID`` (Python
``time.process_time``, Java ``getProcessCpuTime``), the server's /proc utime+stime (10 ms
ticks). docs/benchmarks.md "kazoo against ZooKeeper's Java client" quotes it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Sequence

STATE = b'{"controller_epoch":1,"leader":1,"version":1,"leader_epoch":0,"isr":[1,2,3]}'
JAVA_SOURCE = Path(__file__).resolve().parent / "java" / "ZkClientCost.java"
OPS = ("create", "get", "set", "multi1", "multiM", "delete")
#: the zkclient mode's whole controller step (KafkaZkClient: read every state, write each back)
CONTROLLER_STEP = "leaderAndIsr"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all threads) in seconds, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def in_flight_of(mode: str, znodes: int) -> int:
    """Requests in flight of ``mode``: 0 for "sync", K for "async-K", ``znodes`` for
    "async-all". Raises ValueError for anything else (``zkclient`` has no such number)."""
    if mode == "sync":
        return 0
    if mode.startswith("async-"):
        k = mode[len("async-"):]
        return znodes if k == "all" else int(k)
    raise ValueError(f"not a mode with a fixed number in flight: {mode!r}")


# ---------------------------------------------------------------- the Python side (a subprocess)


def _check(result: Any, what: str) -> None:
    """kazoo returns a transaction's failed op as an exception in its slot, not raised."""
    if isinstance(result, list):
        for r in result:
            if isinstance(r, BaseException):
                raise RuntimeError(f"{what}: {r!r}")


def _no_sync(i: int) -> Any:
    raise AssertionError("only issued with requests in flight")


def run_kazoo(start_sync: Callable[[int], Any], start_async: Callable[[int], Any], requests: int,
              in_flight: int, what: str) -> None:
    """Issue ``requests`` requests: one blocking call at a time (``in_flight`` 0), or with at most
    ``in_flight`` kazoo IAsyncResults outstanding, waiting for the oldest (answers come in order
    on one session). Raises on the first failed request."""
    if in_flight <= 0:
        for i in range(requests):
            _check(start_sync(i), what)
        return
    pending: deque[Any] = deque()
    for i in range(requests):
        if len(pending) >= in_flight:
            _check(pending.popleft().get(), what)
        pending.append(start_async(i))
    while pending:
        _check(pending.popleft().get(), what)


def kazoo_steps(kz: Any, paths: Sequence[str], guard: str, multi_m: int
                ) -> list[tuple[str, int, Callable[[int], Any], Callable[[int], Any]]]:
    """(op, requests, blocking call of request i, async call of request i) for each of OPS, in
    order; the versions follow from that order (create 0, set 0->1, multi1 1->2, multiM 2->3)."""
    n = len(paths)

    def tx(frm: int, to: int, version: int) -> Any:
        t = kz.transaction()
        t.check(guard, 0)
        for p in paths[frm:to]:
            t.set_data(p, STATE, version)
        return t

    m = multi_m
    return [
        ("create", n, lambda i: kz.create(paths[i], STATE), lambda i: kz.create_async(paths[i], STATE)),
        ("get", n, lambda i: kz.get(paths[i]), lambda i: kz.get_async(paths[i])),
        ("set", n, lambda i: kz.set(paths[i], STATE, 0), lambda i: kz.set_async(paths[i], STATE, 0)),
        ("multi1", n, lambda i: tx(i, i + 1, 1).commit(), lambda i: tx(i, i + 1, 1).commit_async()),
        ("multiM", math.ceil(n / m), lambda i: tx(i * m, (i + 1) * m, 2).commit(),
         lambda i: tx(i * m, (i + 1) * m, 2).commit_async()),
        ("delete", n, lambda i: kz.delete(paths[i], 3), lambda i: kz.delete_async(paths[i], 3)),
    ]


def worker(connect: str, root: str, znodes: int, modes: Sequence[str], multi_m: int, server_pid: int,
           passes: Sequence[str]) -> None:
    """The Python client: one JSON line per (pass, mode, op) on stdout, as the Java side prints."""
    import trio

    import attrs

    from kafkalike.coordination import zk_data as zd
    from kafkalike.coordination.kafka_zk_client import KafkaZkClient
    from kafkalike.coordination.zookeeper_client import CheckOp, SetDataOp, ZooKeeperClient

    paths = [f"{root}/brokers/topics/t/partitions/{p}/state" for p in range(znodes)]
    guard = f"{root}/controller_epoch"

    def emit(pass_: str, mode: str, op: str, requests: int | None, wall: float, cpu: float, server: float) -> None:
        print(json.dumps({"pass": pass_, "mode": mode, "op": op, "requests": requests, "ops": znodes,
                          "wall_s": round(wall, 6), "cpu_s": round(cpu, 6), "server_cpu_s": round(server, 6)}),
              flush=True)

    def parents(kz: Any, create: bool) -> None:
        parent = [p[: -len("/state")] for p in paths]
        if create:
            kz.ensure_path(f"{root}/brokers/topics/t/partitions")
            kz.create(guard, b"1")
            run_kazoo(_no_sync, lambda i: kz.create_async(parent[i]), znodes, 1000, "parents")
        else:
            run_kazoo(_no_sync, lambda i: kz.delete_async(parent[i]), znodes, 1000, "parents")
            kz.delete(root, recursive=True)

    async def main() -> None:
        zk = ZooKeeperClient(connect, name="zk-client-cost")
        await zk.start()
        kz = zk._kz
        try:
            await trio.to_thread.run_sync(parents, kz, True)
            steps = kazoo_steps(kz, paths, guard, multi_m)
            for pass_ in passes:
                for mode in modes:
                    if mode == "zkclient":
                        async with ZooKeeperClient(connect + root, name="zk-client-cost-chroot") as czk:
                            await zkclient_mode(pass_, zk, kz, KafkaZkClient(czk))
                        continue
                    k = in_flight_of(mode, znodes)
                    for op, requests, sync_call, async_call in steps:
                        s0, c0, t0 = server_cpu_seconds(server_pid), time.process_time(), time.perf_counter()
                        await trio.to_thread.run_sync(run_kazoo, sync_call, async_call, requests, k, op)
                        emit(pass_, mode, op, requests, time.perf_counter() - t0, time.process_time() - c0,
                             server_cpu_seconds(server_pid) - s0)
            await trio.to_thread.run_sync(parents, kz, False)
        finally:
            await zk.close()

    def sent(client: Any) -> int | None:
        """ZooKeeper requests the client has sent (None in a tree without that counter)."""
        n = getattr(client.statistics(), "requests", None)
        return None if n is None else int(n)

    async def zkclient_mode(pass_: str, zk: Any, kz: Any, kzk: Any) -> None:
        await trio.to_thread.run_sync(run_kazoo, _no_sync, lambda i: kz.create_async(paths[i], STATE), znodes, 1000,
                                      "create")
        chunks = [paths[i:i + multi_m] for i in range(0, znodes, multi_m)]
        calls: list[tuple[str, int, Callable[[], Any]]] = [
            ("get", znodes, lambda: zk.get_many(paths)),
            ("multi1", znodes, lambda: zk.multi_many([[CheckOp(guard, 0), SetDataOp(p, STATE, 0)] for p in paths])),
            ("multiM", len(chunks), lambda: zk.multi_many(
                [[CheckOp(guard, 0), *[SetDataOp(p, STATE, 1) for p in chunk]] for chunk in chunks])),
        ]
        for op, requests, call in calls:
            s0, c0, t0 = server_cpu_seconds(server_pid), time.process_time(), time.perf_counter()
            out = await call()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            bad = [o for o in out if o is None or isinstance(o, BaseException)]
            if bad:
                raise RuntimeError(f"zkclient {op}: {len(bad)} failed, first {bad[0]!r}")
            emit(pass_, "zkclient", op, requests, wall, cpu, server_cpu_seconds(server_pid) - s0)
        # the controller's step: read every state, write each back behind the epoch check
        # (KafkaZkClient.get_partition_states + update_leader_and_isr_many, in this tree's shape)
        tps = [zd.TopicPartition("t", p) for p in range(znodes)]
        s0, c0, t0 = server_cpu_seconds(server_pid), time.process_time(), time.perf_counter()
        sent0 = [sent(zk), sent(kzk.zk)]
        states = await kzk.get_partition_states(tps)
        result = await kzk.update_leader_and_isr_many(
            {tp: attrs.evolve(st, leader=2, isr=(2, 3)) for tp, st in states.items()}, 0)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if len(result.succeeded) != znodes:
            raise RuntimeError(f"zkclient leaderAndIsr: {len(result.succeeded)} of {znodes} written")
        sent1 = [sent(zk), sent(kzk.zk)]
        counts = [n for n in sent0 + sent1 if n is not None]
        step_requests = counts[2] + counts[3] - counts[0] - counts[1] if len(counts) == 4 else None
        emit(pass_, "zkclient", CONTROLLER_STEP, step_requests, wall, cpu, server_cpu_seconds(server_pid) - s0)
        await trio.to_thread.run_sync(run_kazoo, _no_sync, lambda i: kz.delete_async(paths[i]), znodes, 1000, "delete")

    trio.run(main)


# ---------------------------------------------------------------- the driver


def compile_java(lib_dir: Path, out_dir: Path) -> str:
    """Compile ZkClientCost.java against ``lib_dir``'s jars into ``out_dir``; returns the
    classpath to run it with. Raises RuntimeError if javac or the zookeeper jar is missing or
    the compile fails."""
    if not any(lib_dir.glob("zookeeper-[0-9]*.jar")):
        raise RuntimeError(f"no zookeeper-<version>.jar in {lib_dir}: run ./scripts/reference-kafka fetch "
                           "or set KAFKALIKE_KAFKA_LIB (docs/reference-kafka.md)")
    javac = shutil.which("javac")
    if javac is None:
        raise RuntimeError("javac not found: install a JDK (apt-get install -y default-jdk-headless)")
    out_dir.mkdir(parents=True, exist_ok=True)
    cp = f"{lib_dir}/*"
    done = subprocess.run([javac, "-nowarn", "-d", str(out_dir), "-cp", cp, str(JAVA_SOURCE)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"javac failed:\n{done.stdout}{done.stderr}")
    (out_dir / "log4j.properties").write_text(
        "log4j.rootLogger=WARN, stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stderr.Target=System.err\nlog4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stderr.layout.ConversionPattern=%d %p %c: %m%n\n")
    return f"{out_dir}:{cp}"


def run_client(label: str, argv: list[str], env: dict[str, str], timeout: float = 3600.0) -> list[dict[str, Any]]:
    """Run one client process to its end; its JSON lines, each labelled ``client``. Raises
    RuntimeError (with its stderr's tail) if it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{label} exited {done.returncode}:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for row in rows:
        row["client"] = label
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (client, mode, op) over the measured passes: the median µs per znode of wall time,
    client CPU and server CPU, and the number of samples."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r["pass"] == "measured":
            groups.setdefault((r["client"], r["mode"], r["op"]), []).append(r)

    def median(xs: list[float]) -> float:
        xs = sorted(xs)
        mid = len(xs) // 2
        return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2

    out = []
    for (client, mode, op), rs in groups.items():
        out.append({"client": client, "mode": mode, "op": op, "samples": len(rs),
                    "wall_us": median([r["wall_s"] / r["ops"] * 1e6 for r in rs]),
                    "cpu_us": median([r["cpu_s"] / r["ops"] * 1e6 for r in rs]),
                    "server_cpu_us": median([r["server_cpu_s"] / r["ops"] * 1e6 for r in rs])})
    return out


def print_table(summary: Sequence[dict[str, Any]], clients: Sequence[str], modes: Sequence[str]) -> None:
    """One line per (mode, op): per client wall / client CPU / server CPU, µs per znode."""
    by = {(s["client"], s["mode"], s["op"]): s for s in summary}
    print("\nµs per znode, median of the measured rounds: wall / client CPU / server CPU")
    print(f"{'mode':<12} {'op':<7} " + " ".join(f"{c:>26}" for c in clients))
    for mode in modes:
        for op in (*OPS, CONTROLLER_STEP):
            cells = []
            for c in clients:
                s = by.get((c, mode, op))
                cells.append(f"{'-':>26}" if s is None else
                             f"{s['wall_us']:>8.1f} /{s['cpu_us']:>7.1f} /{s['server_cpu_us']:>7.1f}")
            if any(by.get((c, mode, op)) for c in clients):
                print(f"{mode:<12} {op:<7} " + " ".join(cells))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--znodes", type=int, default=10000)
    p.add_argument("--multi", type=int, default=50, help="znodes per multi of the multiM requests (default 50)")
    p.add_argument("--modes", default="sync,async-10,async-all",
                   help="ways of issuing requests, both clients (default sync,async-10,async-all)")
    p.add_argument("--no-zkclient", action="store_true", help="leave out the Python zkclient mode")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR",
                   help="a kafkalike source tree for the Python side (repeatable; default: this checkout)")
    p.add_argument("--no-java", action="store_true", help="Python side only")
    p.add_argument("--json", type=Path, help="write every row and the summary here")
    args = p.parse_args(argv)

    from kafkalike.bench.reference_kafka import LIB_DIR
    from kafkalike.bench.systems import rotated
    from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        in_flight_of(m, args.znodes)  # ValueError for a bad one
    py_modes = modes + ([] if args.no_zkclient else ["zkclient"])
    trees: dict[str, Path | None] = {}
    for spec in args.tree:
        label, _, path = spec.partition("=")
        trees[f"kazoo:{label}"] = Path(path).resolve()
    if not trees:
        trees["kazoo:here"] = None
    work = Path(tempfile.mkdtemp(prefix="kafkalike-zk-client-cost-"))
    ensemble = ZkEnsemble(work / "zk", nodes=1, base_port=find_free_base_port(["127.0.0.1"]), heap_mb=512,
                          die_with_parent=True)
    rows: list[dict[str, Any]] = []
    clients: dict[str, tuple[list[str], dict[str, str]]] = {}
    try:
        java_cp = None if args.no_java else compile_java(Path(os.environ.get("KAFKALIKE_KAFKA_LIB") or LIB_DIR),
                                                           work / "java")
        ensemble.start(timeout=90)
        server_pid = ensemble.pid(1)
        if server_pid is None:
            raise RuntimeError("the ZooKeeper server has no pid")
        connect = ensemble.connect_string
        for label, tree in trees.items():
            env = dict(os.environ)
            if tree is not None:
                env["PYTHONPATH"] = os.pathsep.join([str(tree)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            clients[label] = ([sys.executable, str(Path(__file__).resolve()), "worker", connect, "ROOT",
                               str(args.znodes), ",".join(py_modes), str(args.multi), str(server_pid), "measured"], env)
        if java_cp is not None:
            jmodes = ",".join(f"async-{args.znodes}" if m == "async-all" else m for m in modes)
            clients["java"] = (["java", "-Xmx512m", "-XX:+UseG1GC", f"-Dlog4j.configuration=file:{work}/java/log4j.properties",
                                "-cp", java_cp, "ZkClientCost", connect, "ROOT", str(args.znodes), jmodes,
                                str(args.multi), str(server_pid), str(_CLK_TCK), "warmup,measured"],
                               dict(os.environ))
        for rnd in range(args.rounds):
            for label in rotated(list(clients), rnd):
                cmd, env = clients[label]
                root = f"/zkcost/{label.replace(':', '-')}-r{rnd}"
                load0 = os.getloadavg()[0]
                t0 = time.monotonic()
                got = run_client(label, [root if a == "ROOT" else a for a in cmd], env)
                for r in got:
                    r["round"] = rnd
                    if r["mode"] == f"async-{args.znodes}" and label == "java":
                        r["mode"] = "async-all"
                rows += got
                print(f"round {rnd} {label}: {len(got)} rows in {time.monotonic() - t0:.0f} s, "
                      f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        ensemble.stop()
        shutil.rmtree(work, ignore_errors=True)
    summary = summarize(rows)
    print_table(summary, list(clients), py_modes)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary, "argv": sys.argv}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        # run as a file so that --tree's kafkalike is imported: not this directory's modules
        if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
            sys.path.pop(0)
        a = sys.argv[2:]
        worker(a[0], a[1], int(a[2]), a[3].split(","), int(a[4]), int(a[5]), a[6].split(","))
        raise SystemExit(0)
    raise SystemExit(main())
