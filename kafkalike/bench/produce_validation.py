"""Cost of record validation on produce (kafkalike.storage.log_validator, Kafka's LogValidator),
measured beside the path without it in one run.

What is timed: the leader's append path in-process, `UnifiedLog.append(batch, leader_epoch=0)`
(header + CRC walk and offset patching, the record walk when validation is on, the pwrite to
the page cache), for producer-shaped batches of ~16 KiB (the Java producer's batch.size):
1,000-byte and 100-byte records, uncompressed and with lz4, zstd and gzip. For each workload,
one round appends the same batch `--batches` times to a fresh log with validation on, then to
another fresh log with it off (UnifiedLog.validate_records = False on that instance only),
alternating which goes first from round to round; figures are medians over `--rounds` rounds.
The record walk alone (validate_records on one batch) is timed too, in µs per batch and ns
per record. Not a test: nothing here asserts.

With --broker instead: two 1-broker clusters of real broker processes on one ZooKeeper, the
second started with KAFKALIKE_BENCH_UNSAFE_NO_RECORD_VALIDATION=1 (validation off for that
process only); librdkafka (acks=1, linger.ms 5, batch.size 16 KiB, 3 partitions) produces
the same --mbytes of records to each in turn, alternating which goes first per round;
records/s and broker CPU µs per record (/proc), medians over --rounds.

With --compiled-vs-pure (needs the mypyc extension of log_validator, scripts/build-native):
the same, but both sides validate, one with the compiled module and one with its source
loaded by path and interpreted (in-process: UnifiedLog's log_validator swapped for the pure
module; --broker: the pure cluster's broker runs from a copy of the kafkalike package without
the extension, checked in /proc/PID/maps). In-process times are this process's CPU seconds
(time.process_time), less disturbed by a loaded machine than wall time.

Usage:
  .venv/bin/python -m kafkalike.bench.produce_validation --rounds 7 --batches 2000
  .venv/bin/python -m kafkalike.bench.produce_validation --broker --rounds 5 --mbytes 20
  .venv/bin/python -m kafkalike.bench.produce_validation --compiled-vs-pure --rounds 9 --batches 2000
  .venv/bin/python -m kafkalike.bench.produce_validation --compiled-vs-pure --broker --rounds 5 --mbytes 60
  .venv/bin/python -m kafkalike.bench.produce_validation --json    # JSON on stdout
  ... --workload 100:none --workload 100:lz4                       # only these workloads
The log directories live under --dir (default: a fresh temporary directory) and are removed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs

from kafkalike.bench.systems import rotated

if TYPE_CHECKING:
    from kafkalike.cluster.local_cluster import LocalCluster

BATCH_BYTES = 16 * 1024
CODECS = {"none": 0, "gzip": 1, "lz4": 3, "zstd": 4}
WORKLOADS = [(1000, "none"), (100, "none"), (1000, "lz4"), (100, "lz4"), (1000, "zstd"), (100, "zstd"),
             (1000, "gzip"), (100, "gzip")]


def make_batch(record_bytes: int, codec: str, seed: int = 1) -> tuple[bytearray, int]:
    """A producer-shaped batch: as many records of `record_bytes` (value; 8-byte key) as fit in
    16 KiB uncompressed, values of words from a small vocabulary (compressible about as JSON
    is), compressed with `codec`. Returns (batch bytes, records in it)."""
    import struct

    import crc32c

    from kafkalike.protocol import records as codecs
    from kafkalike.protocol.record_batch import ATTRIBUTES_AT, CRC_AT, HEADER_SIZE, SimpleRecord, build_batch

    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(500)]
    now = int(time.time() * 1000)
    count = max(1, (BATCH_BYTES - HEADER_SIZE) // (record_bytes + 8 + 8))
    recs = []
    for i in range(count):
        value = bytearray()
        while len(value) < record_bytes:
            value += rng.choice(words) + b" "
        recs.append(SimpleRecord(value=bytes(value[:record_bytes]), key=b"key-%04d" % (i % 1000), timestamp=now + i))
    data = build_batch(recs)
    if CODECS[codec]:
        body = codecs.compress(CODECS[codec], data[HEADER_SIZE:])
        out = bytearray(data[:HEADER_SIZE]) + body
        struct.pack_into(">i", out, 8, len(out) - 12)
        struct.pack_into(">h", out, ATTRIBUTES_AT, CODECS[codec])
        struct.pack_into(">I", out, CRC_AT, crc32c.crc32c(memoryview(out)[ATTRIBUTES_AT:]))
        return out, count
    return bytearray(data), count


def _append_rate(dir: Path, batch: bytearray, batches: int, validate: bool,
                 clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds (of `clock`) to append `batch` `batches` times to a fresh log, validation on or off."""
    from kafkalike.storage.log_config import LogConfig
    from kafkalike.storage.unified_log import UnifiedLog

    shutil.rmtree(dir, ignore_errors=True)
    log = UnifiedLog.open(dir, LogConfig())
    log.validate_records = validate
    try:
        t0 = clock()
        for _ in range(batches):
            log.append(batch, leader_epoch=0)
        return clock() - t0
    finally:
        log.close_handlers()
        shutil.rmtree(dir, ignore_errors=True)


def _walk_us(batch: bytearray, reps: int = 200, module: ModuleType | None = None,
             clock: Callable[[], float] = time.perf_counter) -> float:
    """µs for validate_records on one batch (median of 5 timings of `reps` calls); `module`:
    the log_validator module to use (default: kafkalike.storage.log_validator)."""
    from kafkalike.storage import log_validator

    validate_records = (module or log_validator).validate_records
    samples = []
    for _ in range(5):
        t0 = clock()
        for _ in range(reps):
            validate_records(batch)
        samples.append((clock() - t0) / reps * 1e6)
    return statistics.median(samples)


def pure_log_validator() -> ModuleType:
    """kafkalike/storage/log_validator.py loaded by path under another name: the interpreted
    module, even where the mypyc extension (scripts/build-native) shadows it on import."""
    import importlib.util

    from kafkalike.storage import log_validator

    source = Path(log_validator.__file__ or "").with_name("log_validator.py")
    spec = importlib.util.spec_from_file_location("kafkalike_log_validator_pure", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compiled_log_validator() -> ModuleType:
    """kafkalike.storage.log_validator when it is the mypyc extension; SystemExit otherwise."""
    from kafkalike.storage import log_validator

    if (log_validator.__file__ or "").endswith(".py"):
        raise SystemExit("log_validator is not compiled: run .venv/bin/python scripts/build-native")
    return log_validator


def run_compiled_vs_pure(dir: Path, rounds: int, batches: int, workloads: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """Every workload, `rounds` rounds alternating compiled / pure (both validating): the append
    path (UnifiedLog.append, its log_validator swapped) and the record walk alone, in CPU time."""
    from kafkalike.storage import unified_log

    modules = {"compiled": compiled_log_validator(), "pure": pure_log_validator()}
    out = []
    for record_bytes, codec in workloads:
        batch, count = make_batch(record_bytes, codec)
        append: dict[str, list[float]] = {"compiled": [], "pure": []}
        walk: dict[str, list[float]] = {"compiled": [], "pure": []}
        for r in range(rounds):
            for side in rotated(("compiled", "pure"), r):
                unified_log.log_validator = modules[side]
                try:
                    dt = _append_rate(dir / f"bench-{side}-0", batch, batches, True, clock=time.process_time)
                finally:
                    unified_log.log_validator = modules["compiled"]
                append[side].append(dt / batches * 1e6)
                walk[side].append(_walk_us(batch, module=modules[side], clock=time.process_time))
        a = {side: statistics.median(v) for side, v in append.items()}
        w = {side: statistics.median(v) for side, v in walk.items()}
        out.append({
            "record_bytes": record_bytes, "codec": codec, "records_per_batch": count, "batch_bytes": len(batch),
            "batches_per_round": batches, "rounds": rounds,
            "append_cpu_us_per_batch_compiled": a["compiled"], "append_cpu_us_per_batch_pure": a["pure"],
            "walk_cpu_us_per_batch_compiled": w["compiled"], "walk_cpu_us_per_batch_pure": w["pure"],
            "append_speedup": a["pure"] / a["compiled"], "walk_speedup": w["pure"] / w["compiled"],
            "samples": {"append": append, "walk": walk},
        })
    return out


def markdown_compiled_vs_pure(results: list[dict[str, Any]]) -> str:
    """run_compiled_vs_pure's results as a Markdown table (docs/benchmarks.md)."""
    lines = ["| records | codec | records/batch | append CPU µs/batch compiled / pure | speed-up | "
             "record walk alone CPU µs/batch compiled / pure (ns/record) | speed-up |", "|---|---|---|---|---|---|---|"]
    for r in results:
        n = r["records_per_batch"]
        lines.append(
            f"| {r['record_bytes']} B | {r['codec']} | {n} | {r['append_cpu_us_per_batch_compiled']:.1f} / "
            f"{r['append_cpu_us_per_batch_pure']:.1f} | {r['append_speedup']:.2f}x | "
            f"{r['walk_cpu_us_per_batch_compiled']:.1f} / {r['walk_cpu_us_per_batch_pure']:.1f} "
            f"({r['walk_cpu_us_per_batch_compiled'] * 1000 / n:.0f} / {r['walk_cpu_us_per_batch_pure'] * 1000 / n:.0f}) | "
            f"{r['walk_speedup']:.2f}x |")
    return "\n".join(lines)


def run(dir: Path, rounds: int, batches: int, workloads: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """Every workload, `rounds` alternating on/off rounds; one result dict per workload."""
    out = []
    for record_bytes, codec in workloads:
        batch, count = make_batch(record_bytes, codec)
        samples: dict[str, list[float]] = {"on": [], "off": []}
        for r in range(rounds):
            for mode in rotated(("on", "off"), r):
                dt = _append_rate(dir / f"bench-{mode}-0", batch, batches, mode == "on")
                samples[mode].append(batches * count / dt)
        on, off = statistics.median(samples["on"]), statistics.median(samples["off"])
        walk = _walk_us(batch)
        out.append({
            "record_bytes": record_bytes, "codec": codec, "records_per_batch": count,
            "batch_bytes": len(batch), "batches_per_round": batches, "rounds": rounds,
            "records_per_s_validation_on": on, "records_per_s_validation_off": off,
            "MBps_uncompressed_on": on * record_bytes / 1e6, "MBps_uncompressed_off": off * record_bytes / 1e6,
            "on_vs_off": on / off, "append_us_per_batch_on": count / on * 1e6,
            "append_us_per_batch_off": count / off * 1e6, "walk_us_per_batch": walk,
            "walk_ns_per_record": walk * 1000 / count, "samples": samples,
        })
    return out


ENV_OFF = "KAFKALIKE_BENCH_UNSAFE_NO_RECORD_VALIDATION"
BROKER_WORKLOADS = [(100, "none"), (1000, "none"), (100, "lz4"), (1000, "zstd")]


def _payloads(record_bytes: int, n: int = 512) -> list[bytes]:
    rng = random.Random(record_bytes)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(500)]
    out = []
    for _ in range(n):
        value = bytearray()
        while len(value) < record_bytes:
            value += rng.choice(words) + b" "
        out.append(bytes(value[:record_bytes]))
    return out


def _produce(bootstrap: str, topic: str, codec: str, payloads: list[bytes], records: int, pid: int) -> tuple[float, float]:
    """librdkafka, acks=1, linger.ms 5, batch.size 16 KiB (the Java producer's default),
    `records` records over 3 partitions as fast as it goes; (records/s, broker CPU s)."""
    from confluent_kafka import Producer

    from kafkalike.bench.workloads import cpu_seconds

    failed = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": "5", "batch.size": "16384",
                         "compression.type": codec, "queue.buffering.max.messages": 1_000_000,
                         "queue.buffering.max.kbytes": 1_048_576, "message.timeout.ms": 300_000})
    producer.produce(topic, payloads[0], partition=0)
    if producer.flush(60) != 0:
        raise RuntimeError("warm-up record not acknowledged")
    cpu0 = cpu_seconds(pid)
    t0 = time.monotonic()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, payloads[i % len(payloads)], key=b"key-%04d" % (i % 1000),
                                 partition=i % 3, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.005)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(600)
    secs = time.monotonic() - t0
    cpu = cpu_seconds(pid) - cpu0
    if left or failed:
        raise RuntimeError(f"{failed} failed, {left} unacknowledged of {records}")
    return records / secs, cpu


@attrs.frozen
class InTurnResult:
    """What :func:`produce_in_turn` measured: ``records`` per produce run; per side the
    (records/s, broker CPU s) of every round, and the medians over the rounds."""

    records: int
    samples: dict[str, list[tuple[float, float]]]
    records_per_s: dict[str, float]
    cpu_us_per_record: dict[str, float]


def produce_in_turn(clusters: Mapping[str, LocalCluster], topic: str, codec: str, record_bytes: int,
                    mbytes: float, rounds: int) -> InTurnResult:
    """Side by side: create ``topic`` (3 partitions, replication factor 1, kafka-python's
    CreateTopics) on each 1-broker cluster of ``clusters`` (side name -> cluster), then for
    ``rounds`` rounds produce ``mbytes`` MB of ``record_bytes``-byte records (``codec``) to each
    in turn with :func:`_produce`, the order rotating per round. RuntimeError from
    :func:`_produce` when a record is not acknowledged."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    for cluster in clusters.values():
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
        try:
            admin.create_topics([NewTopic(topic, 3, 1)])
        finally:
            admin.close()
    payloads = _payloads(record_bytes)
    records = int(mbytes * 1e6 / record_bytes)
    samples: dict[str, list[tuple[float, float]]] = {side: [] for side in clusters}
    for r in range(rounds):
        for side in rotated(list(clusters), r):
            pid = clusters[side].broker_pid(1)
            assert pid is not None
            samples[side].append(_produce(clusters[side].bootstrap_servers, topic, codec, payloads, records, pid))
    return InTurnResult(records, samples,
                        {side: statistics.median(x[0] for x in v) for side, v in samples.items()},
                        {side: statistics.median(x[1] / records * 1e6 for x in v) for side, v in samples.items()})


def run_broker(base: Path, rounds: int, mbytes: float, workloads: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """Two 1-broker clusters (real processes) on one ZooKeeper, the second started with
    KAFKALIKE_BENCH_UNSAFE_NO_RECORD_VALIDATION=1; librdkafka produces the same records to
    each in turn (order alternating per round). All processes stopped before returning."""
    import os

    from kafkalike.cluster.local_cluster import LocalCluster
    from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

    ens = ZkEnsemble(str(base / "zk"), nodes=1, base_port=find_free_base_port(["127.0.0.3"]), first_host=3,
                     die_with_parent=True)
    clusters: dict[str, LocalCluster] = {}
    try:
        ens.start(timeout=60)
        for mode, host in (("on", 1), ("off", 2)):
            cluster = LocalCluster(base / f"cluster-{mode}", brokers=1, first_host=host,
                                   base_port=find_free_base_port([f"127.0.0.{host}"], low=30000, high=32000),
                                   zookeeper_connect=ens.connect_string, chroot=f"validation-{mode}")
            clusters[mode] = cluster
            if mode == "off":
                os.environ[ENV_OFF] = "1"
            try:
                cluster.start(timeout=90)
            finally:
                os.environ.pop(ENV_OFF, None)
            said_off = "record_validation_off" in cluster.log_path(1).read_text(errors="replace")
            if said_off != (mode == "off"):
                raise RuntimeError(f"broker of the validation-{mode} cluster did not start as asked")
        out = []
        for record_bytes, codec in workloads:
            m = produce_in_turn(clusters, f"v-{record_bytes}-{codec}", codec, record_bytes, mbytes, rounds)
            out.append({"record_bytes": record_bytes, "codec": codec, "records_per_run": m.records, "rounds": rounds,
                        "records_per_s_validation_on": m.records_per_s["on"],
                        "records_per_s_validation_off": m.records_per_s["off"],
                        "on_vs_off": m.records_per_s["on"] / m.records_per_s["off"],
                        "broker_cpu_us_per_record_on": m.cpu_us_per_record["on"],
                        "broker_cpu_us_per_record_off": m.cpu_us_per_record["off"],
                        "samples": m.samples})
        return out
    finally:
        for cluster in clusters.values():
            cluster.stop()
        ens.stop()


def _maps_compiled_walk(pid: int) -> bool:
    """Whether process `pid` has the mypyc extension of log_validator mapped (/proc/PID/maps)."""
    return "log_validator__mypyc" in Path(f"/proc/{pid}/maps").read_text()


def run_broker_compiled_vs_pure(base: Path, rounds: int, mbytes: float,
                                workloads: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """Two 1-broker clusters (real processes, both validating) on one ZooKeeper: "compiled"
    runs this checkout (the mypyc extension of log_validator), "pure" runs from a copy of the
    kafkalike package without any extension (its broker's cwd, first on its sys.path);
    /proc/PID/maps confirms which walk each broker loaded. librdkafka produces the same records
    to each in turn (order alternating per round). All processes stopped before returning."""
    import os

    import kafkalike
    from kafkalike.cluster.local_cluster import LocalCluster
    from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

    compiled_log_validator()
    pure_tree = base / "pure-tree"
    shutil.copytree(Path(kafkalike.__file__).parent, pure_tree / "kafkalike",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    ens = ZkEnsemble(str(base / "zk"), nodes=1, base_port=find_free_base_port(["127.0.0.3"]), first_host=3,
                     die_with_parent=True)
    clusters: dict[str, LocalCluster] = {}
    here = os.getcwd()
    try:
        ens.start(timeout=60)
        for side, host in (("compiled", 1), ("pure", 2)):
            cluster = LocalCluster(base / f"cluster-{side}", brokers=1, first_host=host,
                                   base_port=find_free_base_port([f"127.0.0.{host}"], low=30000, high=32000),
                                   zookeeper_connect=ens.connect_string, chroot=f"walk-{side}")
            clusters[side] = cluster
            if side == "pure":
                os.chdir(pure_tree)
            try:
                cluster.start(timeout=90)
            finally:
                os.chdir(here)
        for side, cluster in clusters.items():
            pid = cluster.broker_pid(1)
            assert pid is not None
        out = []
        for record_bytes, codec in workloads:
            m = produce_in_turn(clusters, f"w-{record_bytes}-{codec}", codec, record_bytes, mbytes, rounds)
            for side, cluster in clusters.items():  # the first produce loaded log_validator
                pid = cluster.broker_pid(1)
                assert pid is not None
                if _maps_compiled_walk(pid) != (side == "compiled"):
                    raise RuntimeError(f"the {side} broker did not load the {side} record walk")
            out.append({"record_bytes": record_bytes, "codec": codec, "records_per_run": m.records, "rounds": rounds,
                        "records_per_s_compiled": m.records_per_s["compiled"],
                        "records_per_s_pure": m.records_per_s["pure"],
                        "compiled_vs_pure": m.records_per_s["compiled"] / m.records_per_s["pure"],
                        "broker_cpu_us_per_record_compiled": m.cpu_us_per_record["compiled"],
                        "broker_cpu_us_per_record_pure": m.cpu_us_per_record["pure"],
                        "samples": m.samples})
        return out
    finally:
        for cluster in clusters.values():
            cluster.stop()
        ens.stop()


def markdown_broker_compiled_vs_pure(results: list[dict[str, Any]]) -> str:
    """run_broker_compiled_vs_pure's results as a Markdown table (docs/benchmarks.md)."""
    lines = ["| records | codec | records/run | compiled: records/s | pure: records/s | compiled/pure | "
             "broker CPU µs/record compiled / pure |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['record_bytes']} B | {r['codec']} | {r['records_per_run']:,} | {r['records_per_s_compiled']:,.0f} | "
            f"{r['records_per_s_pure']:,.0f} | {r['compiled_vs_pure']:.2f} | "
            f"{r['broker_cpu_us_per_record_compiled']:.2f} / {r['broker_cpu_us_per_record_pure']:.2f} |")
    return "\n".join(lines)


def markdown_broker(results: list[dict[str, Any]]) -> str:
    """The broker results as a Markdown table (docs/benchmarks.md)."""
    lines = ["| records | codec | records/run | validation on: records/s | off: records/s | on/off | "
             "broker CPU µs/record on / off |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['record_bytes']} B | {r['codec']} | {r['records_per_run']:,} | "
            f"{r['records_per_s_validation_on']:,.0f} | {r['records_per_s_validation_off']:,.0f} | "
            f"{r['on_vs_off']:.2f} | {r['broker_cpu_us_per_record_on']:.2f} / {r['broker_cpu_us_per_record_off']:.2f} |")
    return "\n".join(lines)


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as a Markdown table (docs/benchmarks.md)."""
    lines = ["| records | codec | records/batch (bytes) | validation on: records/s | off: records/s | on/off | "
             "append µs/batch on / off | record walk alone: µs/batch (ns/record) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['record_bytes']} B | {r['codec']} | {r['records_per_batch']} ({r['batch_bytes']:,} B) | "
            f"{r['records_per_s_validation_on']:,.0f} | {r['records_per_s_validation_off']:,.0f} | "
            f"{r['on_vs_off']:.2f} | {r['append_us_per_batch_on']:.0f} / {r['append_us_per_batch_off']:.0f} | "
            f"{r['walk_us_per_batch']:.0f} ({r['walk_ns_per_record']:.0f}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m kafkalike.bench.produce_validation",
                                     description="produce append path with and without record validation")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, default=2000, help="batches appended per round and mode")
    parser.add_argument("--dir", type=Path, default=None, help="where the logs go (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--broker", action="store_true",
                        help="instead: real broker processes (validation on / off) fed by librdkafka")
    parser.add_argument("--mbytes", type=float, default=20.0, help="--broker: MB of records per produce run")
    parser.add_argument("--workload", action="append", default=[], metavar="BYTES:CODEC",
                        help="only these workloads, e.g. 100:none (repeatable; default: all of the mode's)")
    parser.add_argument("--compiled-vs-pure", action="store_true",
                        help="compare the mypyc-compiled record walk with the pure-Python one (both validating)")
    args = parser.parse_args(argv)
    import logging

    from kafkalike.logs import configure

    configure(level=logging.WARNING)
    only = {(int(w.split(":")[0]), w.split(":")[1]) for w in args.workload}
    workloads = [w for w in WORKLOADS if not only or w in only]
    broker_workloads = [w for w in BROKER_WORKLOADS if not only or w in only]
    base = Path(tempfile.mkdtemp(prefix="kafkalike-validation-", dir=args.dir))
    try:
        if args.compiled_vs_pure and args.broker:
            results, table = run_broker_compiled_vs_pure(base, args.rounds, args.mbytes, broker_workloads), \
                markdown_broker_compiled_vs_pure
        elif args.compiled_vs_pure:
            results, table = run_compiled_vs_pure(base, args.rounds, args.batches, workloads), markdown_compiled_vs_pure
        elif args.broker:
            results, table = run_broker(base, args.rounds, args.mbytes, broker_workloads), markdown_broker
        else:
            results, table = run(base, args.rounds, args.batches, workloads), markdown
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(results, indent=1) if args.json else table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
