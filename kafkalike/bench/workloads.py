"""The workloads of ``kafkalike bench``, each one measurement on one system.

Every function takes a ``BenchSystem`` (systems.py) and returns plain numbers; the harness
turns them into report Samples and alternates systems between calls. Loads come from two
independent clients so that the broker, not one client, is what is measured:

- Kafka's own Java tools (ProducerPerformance, ConsumerPerformance from Kafka 3.9.2, run by
  ``reference_kafka.ReferenceKafka.run_tool`` against any bootstrap, kafkalike's included;
  3.x Java producers are idempotent by default);
- librdkafka through confluent-kafka, in this process.

Both producers get the same batching: ``linger.ms=5``, ``batch.size=262144`` (librdkafka's
``batch.size`` is per partition, as the Java producer's).

Also here: /proc readers (CPU seconds of a pid, its resident memory) and the machine limits
(iperf3 over loopback, dd with fdatasync) measured in the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
import structlog

from kafkalike.bench import reference_kafka as rkmod
from kafkalike.bench.report import percentile
from kafkalike.bench.systems import (BenchError, BenchSystem, LIBRDKAFKA_LOGGER, admin_client, create_topic,
                                     elect_preferred_leaders, partition_metadata, wait_leaders)

log = structlog.get_logger(__name__)

RECORD_SIZE = 100
PRODUCER_BATCHING = {"linger.ms": "5", "batch.size": "262144"}
# --client-defaults: each tool's own batching, what users run first (Kafka 3.9's
# ProducerConfig: batch.size 16384, linger.ms 0 - 5 only from Kafka 4.0, KIP-1030; acks=all
# since 3.0. librdkafka: linger.ms 5, batch.size 1,000,000, batch.num.messages 10,000)
CLIENT_DEFAULTS: dict[str, str] = {}
# The latency producer's cap on requests in flight per broker connection: the Java
# producer's default (and the most an idempotent producer may have). librdkafka's default
# (1,000,000) with linger.ms=0 sends every record as its own ProduceRequest however slowly the
# broker answers; a broker serves one connection's requests one at a time (Kafka's
# SocketServer mutes the channel until the response is sent, kafkalike's socket_server
# likewise), so once a leader needs longer for one acks=all round trip than the interval
# between its records, a queue grows for the whole run and the percentiles measure the run's
# length. With 5 in flight the records waiting behind them are batched into the next request.
LATENCY_MAX_IN_FLIGHT = 5
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ /proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) from /proc/<pid>/stat
    (fields 14 and 15, in clock ticks). Raises BenchError if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as e:
        raise BenchError(f"no process {pid}: {e}") from e
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (VmRSS of /proc/<pid>/status). Raises
    BenchError if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError as e:
        raise BenchError(f"no process {pid}: {e}") from e
    raise BenchError(f"no VmRSS for process {pid}")


def total_cpu(pids: dict[int, int]) -> float:
    """Sum of ``cpu_seconds`` over every pid in {broker id: pid}."""
    return sum(cpu_seconds(p) for p in pids.values())


# ------------------------------------------------------------------ machine limits


def iperf3_loopback_mb_s(seconds: int = 3, install: bool = False) -> float | None:
    """Single-stream TCP throughput over 127.0.0.1 with iperf3, in MB/s (10^6 bytes/s); None
    when iperf3 is missing (``install`` runs ``apt-get install -y iperf3`` first) or fails."""
    if shutil.which("iperf3") is None and install:
        subprocess.run(["apt-get", "install", "-y", "-qq", "iperf3"], capture_output=True, timeout=300)
    if shutil.which("iperf3") is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                             capture_output=True, text=True, timeout=seconds + 60)
        return float(json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"]) / 8 / 1e6
    except (ValueError, KeyError, subprocess.TimeoutExpired):
        return None
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=10)


def dd_write_mb_s(directory: Path, mib: int = 256) -> float:
    """Sequential write of ``mib`` MiB in 1 MiB blocks with ``conv=fdatasync`` into
    ``directory`` (the disk the brokers' logs are on), in MB/s; the file is removed."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"dd-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}", "conv=fdatasync"],
                       check=True, capture_output=True, timeout=600)
        dt = time.perf_counter() - t0
    finally:
        path.unlink(missing_ok=True)
    return mib * 1024 * 1024 / dt / 1e6


# ------------------------------------------------------------------ results


@attrs.frozen
class ProduceResult:
    """One produce run: records acknowledged, wall seconds, records/s, broker CPU seconds
    spent during the run (all brokers) and CPU seconds per GB (10^9 bytes of payload)."""

    records: int
    seconds: float
    records_per_sec: float
    cpu_seconds: float
    cpu_s_per_gb: float


@attrs.frozen
class LatencyResult:
    """End-to-end latency at a fixed rate: samples kept (after the warm-up tenth), the send
    rate achieved (records/s), the percentiles in ms, and ``delivered_rate``: distinct
    records read back per second from the first send to the last read (below ``rate`` when
    the system fell behind the offered load: the percentiles then measure a growing queue,
    i.e. the run's length, not the path of one record)."""

    samples: int
    rate: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    delivered_rate: float = 0.0


# ------------------------------------------------------------------ produce


def tool_runner(work_dir: Path) -> rkmod.ReferenceKafka:
    """A ReferenceKafka object used only to run Kafka's Java tools (its run_tool), against
    whatever bootstrap the arguments name; nothing is started."""
    return rkmod.ReferenceKafka(mode="zk", base_dir=work_dir / "kafka-tools")


def produce_kafka_perf(system: BenchSystem, tools: rkmod.ReferenceKafka, topic: str, records: int,
                       acks: str, batching: dict[str, str] | None = None) -> ProduceResult:
    """Kafka's ProducerPerformance: ``records`` × 100 B as fast as possible with ``acks``
    against ``system``; its own records/s (first send to last ack, JVM start excluded).
    ``batching``: producer properties (default PRODUCER_BATCHING; CLIENT_DEFAULTS = none)."""
    pids = system.pids()
    cpu0 = total_cpu(pids)
    props = {"bootstrap.servers": system.bootstrap, "acks": acks,
             **(PRODUCER_BATCHING if batching is None else batching)}
    args = ["--topic", topic, "--num-records", str(records), "--record-size", str(RECORD_SIZE),
            "--throughput", "-1", "--producer-props", *(f"{k}={v}" for k, v in props.items())]
    try:
        proc = tools.run_tool(rkmod.PRODUCER_PERFORMANCE, args, timeout=1800, heap="512m")
        res = rkmod.parse_producer_perf(proc.stdout)
    except rkmod.ReferenceKafkaError as e:
        raise BenchError(f"{system.name}: ProducerPerformance: {e}") from e
    cpu = total_cpu(pids) - cpu0
    if res.records < records:
        raise BenchError(f"{system.name}: ProducerPerformance acknowledged {res.records}/{records}")
    secs = res.records / res.records_per_sec if res.records_per_sec else 0.0
    return ProduceResult(res.records, secs, res.records_per_sec, cpu, cpu / (records * RECORD_SIZE / 1e9))


def produce_librdkafka(system: BenchSystem, topic: str, records: int, acks: str,
                       partitions: int = 6, batching: dict[str, str] | None = None) -> ProduceResult:
    """librdkafka (confluent-kafka) producer: ``records`` × 100 B round-robin over
    ``partitions`` as fast as it goes with ``acks``; records/s from the first produce() to
    the last delivery report. ``batching``: as produce_kafka_perf. BenchError if any record
    fails."""
    from confluent_kafka import Producer

    failed = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    producer = Producer({"bootstrap.servers": system.bootstrap, "acks": acks,
                         "queue.buffering.max.messages": 1_000_000,
                         "queue.buffering.max.kbytes": 1_048_576, "logger": LIBRDKAFKA_LOGGER,
                         "message.timeout.ms": 300_000,
                         **(PRODUCER_BATCHING if batching is None else batching)})
    payload = b"x" * RECORD_SIZE
    producer.produce(topic, payload, partition=0)  # warm-up: metadata, connections
    if producer.flush(60) != 0:
        raise BenchError(f"{system.name}: librdkafka warm-up record not acknowledged")
    pids = system.pids()
    cpu0 = total_cpu(pids)
    t0 = time.monotonic()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, payload, partition=i % partitions, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.005)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(600)
    secs = time.monotonic() - t0
    cpu = total_cpu(pids) - cpu0
    if left or failed:
        raise BenchError(f"{system.name}: librdkafka: {failed} failed, {left} unacknowledged of {records}")
    return ProduceResult(records, secs, records / secs, cpu, cpu / (records * RECORD_SIZE / 1e9))


# ------------------------------------------------------------------ consume


def consume_kafka_perf(system: BenchSystem, tools: rkmod.ReferenceKafka, topic: str,
                       records: int) -> rkmod.ConsumerPerfResult:
    """Kafka's ConsumerPerformance: read ``records`` from the start of ``topic`` in a new
    group (JoinGroup/SyncGroup included in its records/s; fetch_records_per_sec excludes it)."""
    args = ["--bootstrap-server", system.bootstrap, "--topic", topic, "--messages", str(records),
            "--group", f"bench-{uuid.uuid4().hex[:8]}", "--timeout", "60000"]
    try:
        proc = tools.run_tool(rkmod.CONSUMER_PERFORMANCE, args, timeout=1800, heap="512m")
        res = rkmod.parse_consumer_perf(proc.stdout)
    except rkmod.ReferenceKafkaError as e:
        raise BenchError(f"{system.name}: ConsumerPerformance: {e}") from e
    if res.records < records:
        raise BenchError(f"{system.name}: ConsumerPerformance read {res.records}/{records}")
    return res


def consume_librdkafka(system: BenchSystem, topic: str, records: int, partitions: int = 6,
                       timeout: float = 600.0, group: bool = False) -> float:
    """librdkafka consumer assigned every partition of ``topic`` from the beginning (no
    group join), or with ``group`` subscribed in a fresh group (auto.offset.reset=earliest:
    FindCoordinator, JoinGroup, SyncGroup and OffsetFetch included); returns records/s from
    assign()/subscribe() to the ``records``-th record."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": system.bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "logger": LIBRDKAFKA_LOGGER,
                         "auto.offset.reset": "earliest", "fetch.message.max.bytes": 1_048_576})
    try:
        t0 = time.monotonic()
        if group:
            consumer.subscribe([topic])
        else:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        got = 0
        while got < records:
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"{system.name}: librdkafka consumer read {got}/{records} in {timeout} s")
            for msg in consumer.consume(num_messages=10_000, timeout=1.0):
                if msg.error() is None:
                    got += 1
        return got / (time.monotonic() - t0)
    finally:
        consumer.close()


# ------------------------------------------------------------------ end-to-end latency


def end_to_end_latency(system: BenchSystem, topic: str, rate: int, seconds: float,
                       partitions: int = 6) -> LatencyResult:
    """Produce at ``rate`` records/s for ``seconds`` (librdkafka, acks=all, linger.ms=0,
    at most ``LATENCY_MAX_IN_FLIGHT`` requests in flight per connection, 100-byte records
    carrying their send time and sequence number) while a librdkafka consumer assigned to
    every partition reads them; latency = receive time − send time (one clock, one process),
    the first copy of each record only (a retried send can append a record twice). The
    first tenth of the samples is dropped as warm-up. BenchError when fewer than 90 % of
    the records arrive within 30 s after the last send."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    producer = Producer({"bootstrap.servers": system.bootstrap, "acks": "all", "linger.ms": 0,
                         "max.in.flight.requests.per.connection": LATENCY_MAX_IN_FLIGHT,
                         "logger": LIBRDKAFKA_LOGGER})
    consumer = Consumer({"bootstrap.servers": system.bootstrap, "group.id": f"lat-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "logger": LIBRDKAFKA_LOGGER, "fetch.wait.max.ms": 100})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    latencies: list[float] = []
    seen: set[int] = set()
    last_read = 0
    total = int(rate * seconds)
    stop = threading.Event()
    warm = threading.Event()

    def consume() -> None:
        nonlocal last_read
        while not stop.is_set():
            msg = consumer.poll(0.1)  # returns as soon as a record is there (consume() would
            now = time.perf_counter_ns()  # wait out its timeout to fill a batch)
            if msg is not None:
                value = msg.value()
                if msg.error() is not None or not value:
                    continue
                if value[:1] == b"L":
                    sent_ns, seq = struct.unpack_from(">qi", value, 1)
                    if seq not in seen:
                        seen.add(seq)
                        latencies.append((now - sent_ns) / 1e6)
                        last_read = now
                else:
                    warm.set()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    try:
        # one warm-up record per partition, all read back before the clock starts: the
        # consumer is then fetching from every partition
        for p in range(partitions):
            producer.produce(topic, b"w" * RECORD_SIZE, partition=p)
        producer.flush(30)
        if not warm.wait(60):
            raise BenchError(f"{system.name}: the latency consumer read nothing within 60 s")
        time.sleep(0.5)
        pad = b"p" * (RECORD_SIZE - 13)
        interval = 1.0 / rate
        t0 = time.perf_counter()
        t0_ns = time.perf_counter_ns()
        for i in range(total):
            due = t0 + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            producer.produce(topic, b"L" + struct.pack(">qi", time.perf_counter_ns(), i) + pad,
                             partition=i % partitions)
            producer.poll(0)
        achieved = total / (time.perf_counter() - t0)
        producer.flush(60)
        deadline = time.monotonic() + 30
        while len(latencies) < total and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        reader.join(timeout=10)
        consumer.close()
    if len(latencies) < 0.9 * total:
        raise BenchError(f"{system.name}: only {len(latencies)}/{total} records arrived")
    kept = sorted(latencies[len(latencies) // 10:])
    delivered = len(latencies) / max((last_read - t0_ns) / 1e9, seconds)
    if delivered < 0.95 * rate:
        log.warning("bench_latency_fell_behind", system=system.name, rate=rate,
                    delivered_rate=round(delivered, 1))
    return LatencyResult(len(kept), achieved, percentile(kept, 50), percentile(kept, 99), percentile(kept, 99.9),
                         delivered)


# ------------------------------------------------------------------ failover


def _producer_for(system: BenchSystem) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": system.bootstrap, "acks": "all", "linger.ms": 0,
                     "message.timeout.ms": 300_000, "retry.backoff.ms": 50,
                     "retry.backoff.max.ms": 200, "topic.metadata.refresh.fast.interval.ms": 50,
                     "logger": LIBRDKAFKA_LOGGER})


def _deliver_one(producer: Any, topic: str, partition: int, timeout: float) -> float:
    """Produce one record to ``topic``/``partition`` and wait for its delivery report; returns
    the perf_counter time of a successful acknowledgement, retrying failed sends until
    ``timeout`` seconds have passed (BenchError then)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        result: list[tuple[Any, float]] = []
        producer.produce(topic, b"f" * RECORD_SIZE, partition=partition,
                         on_delivery=lambda err, msg: result.append((err, time.perf_counter())))
        while not result and time.perf_counter() < deadline:
            producer.poll(0.005)
        if result and result[0][0] is None:
            return result[0][1]
    raise BenchError(f"no acknowledged produce on {topic}/{partition} within {timeout} s")


def leader_for_failover(system: BenchSystem, topic: str, controller: int) -> tuple[int, int]:
    """(partition, leader) of ``topic`` whose leader is not the active controller (so the
    leader kill does not also measure a controller failover); the first partition if every
    leader is the controller."""
    md: dict[int, tuple[int, list[int]]] = {}
    for _ in range(3):  # a Metadata request for thousands of partitions can time out under load
        md = partition_metadata(system.bootstrap, topic)
        if md:
            break
    if not md:
        raise BenchError(f"{system.name}: no metadata for {topic}")
    for p in sorted(md):
        if md[p][0] not in (controller, -1):
            return p, md[p][0]
    return min(md), md[min(md)][0]


def leader_kill_to_ack(system: BenchSystem, topic: str, timeout: float = 300.0) -> tuple[float, int]:
    """kill -9 of the leader of one partition of ``topic`` (not the controller) → the first
    acknowledged (acks=all) produce on that partition, in seconds. Returns (seconds, killed
    broker id); the caller restarts that broker."""
    controller = system.active_controller()
    partition, leader = leader_for_failover(system, topic, controller)
    producer = _producer_for(system)
    _deliver_one(producer, topic, partition, 60.0)  # connections and metadata are warm
    system.kill_broker(leader)
    t0 = time.perf_counter()
    acked = _deliver_one(producer, topic, partition, timeout)
    return acked - t0, leader


def controller_failover(system: BenchSystem, tag: str, timeout: float = 300.0) -> tuple[float, int]:
    """kill -9 of the active controller → the first successful CreateTopics (1 partition,
    replication factor 2, so the two live brokers suffice) whose partition has a leader in
    Metadata, in seconds: the time until the cluster can change metadata again. Returns
    (seconds, killed broker id)."""
    from confluent_kafka.admin import NewTopic

    controller = system.active_controller()
    system.kill_broker(controller)
    t0 = time.perf_counter()
    topic = f"ctl-{tag}-{uuid.uuid4().hex[:6]}"
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        # a new client per attempt: librdkafka caches the controller id until its periodic
        # metadata refresh (5 min), so a long-lived client would measure that refresh
        admin = admin_client(system.bootstrap, **{"socket.timeout.ms": 3000})
        try:
            admin.create_topics([NewTopic(topic, 1, 2)], request_timeout=5.0,
                                operation_timeout=5.0)[topic].result(timeout=15)
            break
        except Exception as e:
            if "TOPIC_ALREADY_EXISTS" in str(e) or "already exists" in str(e):
                break
            time.sleep(0.05)
    else:
        raise BenchError(f"{system.name}: no CreateTopics succeeded {timeout} s after the controller kill")
    wait_leaders(system.bootstrap, topic, 1, deadline - time.perf_counter())
    return time.perf_counter() - t0, controller


STOP_CAP_SECONDS = 119.0
"""A controlled shutdown measured this long (or longer) hit the 120 s after which
BenchSystem.stop_broker sends SIGKILL: the figure is the cap, not the shutdown's time."""


def failover_timeout(partitions: int) -> float:
    """Seconds ``controller_failover`` waits for a CreateTopics to succeed on a cluster of
    ``partitions``: 300, or 20 ms per partition past 15,000 (a new ZooKeeper-mode controller
    reads and re-sends every partition's state first)."""
    return max(300.0, partitions * 0.02)


def controlled_shutdown(system: BenchSystem, topic: str, rebalance_wait: float = 330.0) -> tuple[float, int]:
    """SIGTERM (controlled shutdown: leaderships moved away first) of the non-controller
    broker that leads the most partitions of ``topic``, until its process has exited, in
    seconds. Returns (seconds, stopped broker id). When the controller leads every
    partition, a preferred leader election is asked for first and leaderships are awaited
    for up to ``rebalance_wait`` seconds (the controller's own rebalance runs every 300 s);
    BenchError after that."""
    controller = system.active_controller()
    led: dict[int, int] = {}
    deadline = time.monotonic() + rebalance_wait
    elected = False
    while True:
        md = partition_metadata(system.bootstrap, topic)
        led = {}
        for leader, _ in md.values():
            if leader >= 0 and leader != controller:
                led[leader] = led.get(leader, 0) + 1
        if led or time.monotonic() > deadline:
            break
        # every leadership sits on the controller (the other two brokers were restarted
        # after earlier kills): move leaders back to their preferred replicas first
        if not elected:
            elect_preferred_leaders(system.bootstrap, topic)
            elected = True
        time.sleep(2.0)
        controller = system.active_controller()
    if not led:
        raise BenchError(f"{system.name}: no non-controller leader in {topic} "
                         f"{rebalance_wait:.0f} s after a preferred leader election")
    broker = max(led, key=lambda b: led[b])
    return system.stop_broker(broker), broker


def restore(system: BenchSystem, broker_id: int, topic: str, partitions: int, timeout: float) -> None:
    """Restart ``broker_id`` and wait until every partition of ``topic`` has 3 ISR members
    again (the next failover trial starts from a healthy cluster)."""
    system.start_broker(broker_id)
    wait_leaders(system.bootstrap, topic, partitions, timeout, full_isr=3)


def make_topic(system: BenchSystem, topic: str, partitions: int, timeout: float = 1800.0) -> float:
    """Create ``topic`` (RF 3) on ``system`` and wait for full ISRs; seconds taken.

    A CreateTopics that times out (librdkafka gives up on a response after 300 s; a loaded
    ZooKeeper-mode Kafka did not answer one of 30,000 partitions within that) is not the end:
    the controller goes on creating the partitions it has written, so the wait for full ISRs
    goes on until ``timeout`` (BenchError then, naming how many partitions were ready)."""
    t0 = time.monotonic()
    try:
        create_topic(system.bootstrap, topic, partitions, 3, timeout=timeout)
    except BenchError as e:
        if "timed out" not in str(e).lower():
            raise
        log.warning("bench_create_topic_timed_out", system=system.name, topic=topic, partitions=partitions,
                    seconds=round(time.monotonic() - t0, 1))
    wait_leaders(system.bootstrap, topic, partitions, timeout - (time.monotonic() - t0), full_isr=3)
    return time.monotonic() - t0
