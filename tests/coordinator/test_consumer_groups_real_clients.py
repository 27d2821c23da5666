"""Consumer groups with real clients (kafka-python, confluent-kafka/librdkafka, aiokafka)
against three kafkalike broker processes and a real ZooKeeper ensemble: partitions shared
and taken over after a consumer is killed -9, independent groups each reading everything,
cooperative-sticky rebalancing, offsets surviving consumer restarts and the coordinator's
failover, and ``kafkalike consumer-groups`` describe / reset-offsets / delete."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from kafkalike.cluster.local_cluster import LocalCluster
from tests.fixtures_cluster import MakeCluster, _new_cluster, create_topic

OVERRIDES = {"offsets.topic.num.partitions": "6", "group.min.session.timeout.ms": "1000"}
WORKER = str(Path(__file__).with_name("group_worker.py"))
KP_POLL_MS = 5000
"""kafka-python polls with a long timeout (it returns as soon as records arrive): kafka-python
3.0.12 can hang for good when a poll() times out while its SyncGroup is in flight (seen here:
SyncGroup answered in 20 ms, then the client loops without heartbeating or fetching)."""


@pytest.fixture(scope="module")
def group_cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    """Three broker processes with a 6-partition __consumer_offsets (RF 3) and 1 s minimum
    session timeout, shared by this module's tests (each uses its own topics and groups)."""
    cluster = _new_cluster(tmp_path_factory.mktemp("groups"), zk_connect, 3, OVERRIDES)
    try:
        yield cluster
    finally:
        cluster.stop()


def produce(bootstrap: str, topic: str, n: int, start: int = 0) -> None:
    """``n`` keyed records value b"<i>" for i in start..start+n-1, acks=all."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
    try:
        for i in range(start, start + n):
            p.send(topic, key=b"k%d" % i, value=b"%d" % i)
        p.flush(timeout=60)
    finally:
        p.close()


class Worker:
    """A group_worker.py process and the lines it printed (read by a thread)."""

    def __init__(self, client: str, bootstrap: str, group: str, topic: str, session_ms: int = 6000) -> None:
        self.proc = subprocess.Popen([sys.executable, WORKER, client, bootstrap, group, topic, str(session_ms)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: list[list[str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.split())

    def assignment(self) -> list[int]:
        import json
        for words in reversed(list(self.lines)):
            if words[0] == "assigned":
                return list(json.loads(" ".join(words[1:])))
        return []

    def records(self) -> list[tuple[int, int]]:
        return [(int(w[1]), int(w[2])) for w in list(self.lines) if w[0] == "rec"]

    def commits(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for w in list(self.lines):
            if w[0] == "commit":
                out[int(w[1])] = int(w[2])
        return out

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        ends = c.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: o for tp, o in ends.items()}
    finally:
        c.close()


def test_three_consumers_share_partitions_and_survive_a_kill(group_cluster: LocalCluster) -> None:
    """Three consumer processes (librdkafka) in one group on a 6-partition topic own two partitions
    each; after one is killed -9 the other two own all six once its session (6 s) expires.
    Every record is consumed; a record is consumed twice only inside the at-least-once window:
    some consumer read it and never committed past it (the killed one, or one whose partition
    moved in the rebalance before its commit went through)."""
    bs = group_cluster.bootstrap_servers
    create_topic(bs, "orders", 6)
    produce(bs, "orders", 300)
    workers = [Worker("confluent", bs, "shipping", "orders") for _ in range(3)]
    try:
        wait_for(lambda: sorted(len(w.assignment()) for w in workers) == [2, 2, 2]
                 and sorted(p for w in workers for p in w.assignment()) == list(range(6)),
                 60, "a 2/2/2 assignment")
        wait_for(lambda: sum(v for w in workers for v in w.commits().values()) >= 300, 60,
                 "300 committed")
        victim, survivors = workers[0], workers[1:]
        produce(bs, "orders", 300, start=300)
        victim.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: sorted(p for w in survivors for p in w.assignment()) == list(range(6)), 90,
                 "the survivors to own all six partitions")
        takeover_s = time.monotonic() - killed_at
        ends = end_offsets(bs, "orders", 6)
        assert sum(ends.values()) == 600
        expected = {(p, o) for p, end in ends.items() for o in range(end)}
        wait_for(lambda: expected <= {r for w in workers for r in w.records()}, 90,
                 "every record to be consumed")
        seen = collections.Counter(r for w in workers for r in w.records())
        for (p, o), n in seen.items():
            if n > 1:
                readers = [w for w in workers if (p, o) in set(w.records())]
                assert any(w.commits().get(p, 0) <= o for w in readers), \
                    f"{(p, o)} consumed {n} times, but every reader committed past it"
        assert 6 <= takeover_s < 60
    finally:
        for w in workers:
            w.stop()


def confluent_consume(bs: str, group: str, topic: str, want: int, timeout: float = 60,
                      **conf: Any) -> list[tuple[int, int]]:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": True, "auto.commit.interval.ms": 200, **conf})
    c.subscribe([topic])
    got: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            got.append((m.partition(), m.offset()))
        c.commit(asynchronous=False)
    finally:
        c.close()
    return got


def test_independent_groups_each_receive_every_record(group_cluster: LocalCluster) -> None:
    """The order-processing seed: inventory, billing and notification groups (librdkafka
    consumers) each receive all 200 order events."""
    bs = group_cluster.bootstrap_servers
    create_topic(bs, "order-events", 3)
    produce(bs, "order-events", 200)
    for group in ("inventory", "billing", "notification"):
        got = confluent_consume(bs, group, "order-events", 200)
        assert len(set(got)) == 200, (group, len(set(got)))


def test_cooperative_sticky_rebalancing_with_librdkafka(group_cluster: LocalCluster) -> None:
    """Two confluent-kafka consumers with cooperative-sticky: incremental rebalances end with
    disjoint assignments covering all partitions, and every record is consumed."""
    from confluent_kafka import Consumer

    bs = group_cluster.bootstrap_servers
    create_topic(bs, "coop", 6)
    produce(bs, "coop", 120)
    seen: list[tuple[int, int]] = []
    assignments: dict[int, set[int]] = {0: set(), 1: set()}
    stop = threading.Event()
    lock = threading.Lock()

    def run(i: int) -> None:
        c = Consumer({"bootstrap.servers": bs, "group.id": "coop-group", "auto.offset.reset": "earliest",
                      "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 6000,
                      "heartbeat.interval.ms": 300})
        c.subscribe(["coop"])
        try:
            while not stop.is_set():
                m = c.poll(0.1)
                if m is not None and not m.error():
                    with lock:
                        seen.append((m.partition(), m.offset()))
                assignments[i] = {tp.partition for tp in c.assignment()}
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(0,))]
    threads[0].start()
    try:
        wait_for(lambda: len(assignments[0]) == 6, 60, "the first consumer to own all partitions")
        threads.append(threading.Thread(target=run, args=(1,)))
        threads[1].start()
        wait_for(lambda: len(assignments[0]) == 3 and len(assignments[1]) == 3
                 and assignments[0] | assignments[1] == set(range(6)), 60, "a 3/3 cooperative split")
        wait_for(lambda: len(set(seen)) >= 120, 60, "all 120 records")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert set(seen) == {(p, o) for p, end in end_offsets(bs, "coop", 6).items() for o in range(end)}


def cli(*argv: str) -> tuple[int, str]:
    """Run ``kafkalike consumer-groups ...`` through the kafkalike parser in this process
    (a child process would spend seconds importing on a loaded machine); (exit code,
    stdout + stderr)."""
    import contextlib
    import io

    from kafkalike.cli.main import build_parser

    args = build_parser().parse_args(["consumer-groups", *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = int(args.func(args))
    return code, out.getvalue()


def parse_describe(text: str) -> list[dict[str, str]]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("GROUP "))
    header = lines[start].split()
    return [dict(zip(header, ln.split())) for ln in lines[start + 1:]]


def test_cli_describe_shows_lag_and_reset_makes_group_reread(group_cluster: LocalCluster) -> None:
    """``consumer-groups --describe`` shows the members of an active group and, while a
    producer runs, lag = LOG-END-OFFSET - CURRENT-OFFSET; ``--reset-offsets --to-earliest
    --execute`` on the idle group makes it read everything again; ``--list`` and ``--delete``
    behave as Kafka's tool."""
    from kafka import KafkaConsumer

    bs = group_cluster.bootstrap_servers
    create_topic(bs, "events", 3)
    produce(bs, "events", 90)
    c = KafkaConsumer("events", bootstrap_servers=bs, group_id="reporting", client_id="reporter",
                      auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=10000,
                      heartbeat_interval_ms=500)
    n = 0
    deadline = time.monotonic() + 60
    while n < 90 and time.monotonic() < deadline:
        n += sum(len(v) for v in c.poll(timeout_ms=KP_POLL_MS).values())
    c.commit()
    assert n == 90
    code, out = cli("--bootstrap-server", bs, "--describe", "--group", "reporting")
    assert code == 0, out
    rows = parse_describe(out)
    assert sorted(int(r["PARTITION"]) for r in rows) == [0, 1, 2]
    assert {r["CLIENT-ID"] for r in rows} == {"reporter"} and {r["HOST"] for r in rows} == {"/127.0.0.1"}
    assert sum(int(r["CURRENT-OFFSET"]) for r in rows) == 90 and {r["LAG"] for r in rows} == {"0"}
    code, out = cli("--bootstrap-server", bs, "--describe", "--group", "reporting", "--members")
    (member,) = parse_describe(out)
    assert code == 0 and (member["CLIENT-ID"], member["HOST"], member["#PARTITIONS"]) == ("reporter", "/127.0.0.1", "3")
    code, out = cli("--bootstrap-server", bs, "--describe", "--group", "reporting", "--state")
    state_row = next(ln for ln in out.splitlines() if ln.startswith("reporting "))
    assert code == 0 and state_row.split()[-3:] == ["range", "Stable", "1"], out
    c.close()

    producer = threading.Thread(target=produce, args=(bs, "events", 60, 90))
    producer.start()
    code, out = cli("--bootstrap-server", bs, "--describe", "--group", "reporting")
    producer.join()
    assert code == 0, out
    assert "Consumer group 'reporting' has no active members." in out
    for r in parse_describe(out):
        assert r["CONSUMER-ID"] == "-" and int(r["LAG"]) == int(r["LOG-END-OFFSET"]) - int(r["CURRENT-OFFSET"])
    code, out = cli("--bootstrap-server", bs, "--describe", "--group", "reporting")
    assert sum(int(r["LAG"]) for r in parse_describe(out)) == 60

    code, out = cli("--bootstrap-server", bs, "--list")
    assert code == 0 and "reporting" in out.split()
    code, out = cli("--bootstrap-server", bs, "--reset-offsets", "--group", "reporting", "--topic", "events",
                    "--to-earliest")
    assert code == 0 and "No action will be performed" in out
    code, out = cli("--bootstrap-server", bs, "--reset-offsets", "--group", "reporting", "--topic", "events",
                    "--to-earliest", "--execute")
    assert code == 0, out
    assert [r["NEW-OFFSET"] for r in parse_describe(out)] == ["0", "0", "0"]
    c = KafkaConsumer("events", bootstrap_servers=bs, group_id="reporting", auto_offset_reset="latest",
                      enable_auto_commit=False, session_timeout_ms=10000, heartbeat_interval_ms=500)
    n = 0
    deadline = time.monotonic() + 60
    while n < 150 and time.monotonic() < deadline:
        n += sum(len(v) for v in c.poll(timeout_ms=KP_POLL_MS).values())
    c.close()
    assert n == 150
    code, out = cli("--bootstrap-server", bs, "--delete", "--group", "reporting")
    assert code == 0 and "Deletion of requested consumer groups ('reporting') was successful." in out
    code, out = cli("--bootstrap-server", bs, "--describe", "--group", "reporting")
    assert "Consumer group 'reporting' does not exist." in out


async def _coordinator_of(bootstrap: str, group: str) -> int:
    from kafkalike.client import KafkaClient
    from kafkalike.protocol.api_keys import ApiKey

    async with KafkaClient(bootstrap) as client:
        for _ in range(100):
            conn = await client.any_connection()
            r = await conn.call(ApiKey.FIND_COORDINATOR, key=group, key_type=0)
            if r.error_code.value == 0:
                return int(r.node_id)
            await trio.sleep(0.2)
    raise AssertionError("no coordinator")


async def _aiokafka_consume(bs: str, group: str, topic: str, want: int, timeout: float = 60) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(topic, bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest",
                         enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500)
    await c.start()
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=300)
            for records in batch.values():
                got.extend(r.value for r in records)
        await c.commit()
    finally:
        await c.stop()
    return got


def test_committed_offsets_survive_consumer_restart_and_coordinator_failover(make_cluster: MakeCluster) -> None:
    """aiokafka commits 100 records; a restarted consumer continues after them; the group's
    coordinator broker is killed -9 and a new leader of its __consumer_offsets partition
    loads the offsets from its replica, so the next consumer again reads only new records."""
    import asyncio

    cluster = make_cluster(3, dict(OVERRIDES, **{"zookeeper.session.timeout.ms": "4000"}))
    bs = cluster.bootstrap_servers
    create_topic(bs, "ledger", 3)
    produce(bs, "ledger", 100)
    first = asyncio.run(_aiokafka_consume(bs, "accounts", "ledger", 100))
    assert sorted(int(v) for v in first) == list(range(100))
    produce(bs, "ledger", 20, start=100)
    second = asyncio.run(_aiokafka_consume(bs, "accounts", "ledger", 20))
    assert sorted(int(v) for v in second) == list(range(100, 120))

    coordinator = trio.run(_coordinator_of, bs, "accounts")
    cluster.kill_broker(coordinator)
    alive = ",".join(cluster.broker_address(b) for b in cluster.broker_ids if b != coordinator)
    produce(alive, "ledger", 30, start=120)
    new_coordinator = trio.run(_coordinator_of, alive, "accounts")
    assert new_coordinator != coordinator
    third = asyncio.run(_aiokafka_consume(alive, "accounts", "ledger", 30))
    assert sorted(int(v) for v in third) == list(range(120, 150))


async def _ask_every_broker(bootstrap: str, group: str) -> dict[int, tuple[int, int]]:
    from kafkalike.client import KafkaClient
    from kafkalike.protocol.api_keys import ApiKey
    from tests.coordinator.coordinator_helpers import subscription

    out = {}
    async with KafkaClient(bootstrap) as client:
        for node in sorted(client.cluster.brokers):
            conn = await client.connection(node)
            with trio.fail_after(30):
                while True:  # until this broker's metadata has the new topic
                    c = await conn.call(ApiKey.OFFSET_COMMIT, group_id=group, generation_id_or_member_epoch=-1,
                                        member_id="", topics=[{"name": "misdirected-topic", "partitions": [
                                            {"partition_index": 0, "committed_offset": 1, "committed_metadata": ""}]}])
                    if c.topics[0].partitions[0].error_code.value != 3:
                        break
                    await trio.sleep(0.1)
            j = await conn.call(ApiKey.JOIN_GROUP, api_version=3, group_id=group, session_timeout=6000,
                                rebalance_timeout=6000, member_id="", protocol_type="consumer",
                                protocols=[{"name": "range", "metadata": subscription("t")}])
            out[node] = (int(j.error_code.value), int(c.topics[0].partitions[0].error_code.value))
    return out


def test_only_the_coordinator_serves_a_group(group_cluster: LocalCluster) -> None:
    """Group requests sent to a broker that does not lead the group's __consumer_offsets
    partition get NOT_COORDINATOR; the coordinator serves them."""
    from kafkalike.protocol.errors import ErrorCode

    bs = group_cluster.bootstrap_servers
    create_topic(bs, "misdirected-topic", 1)
    coordinator = trio.run(_coordinator_of, bs, "misdirected")
    answers = trio.run(_ask_every_broker, bs, "misdirected")
    nc = ErrorCode.not_coordinator.value
    assert answers.pop(coordinator) == (0, 0)
    assert set(answers.values()) == {(nc, nc)}


LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar")) and shutil.which("java") is not None


def kafka_consumer_groups(*argv: str) -> str:
    """Kafka 3.9's kafka-consumer-groups.sh (ConsumerGroupCommand, Java AdminClient), with a
    60 s admin timeout instead of 5 s (a JVM on a loaded machine needs it)."""
    r = subprocess.run(["java", "-cp", f"{LIB}/*", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                        *argv, "--timeout", "60000"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.skipif(not HAVE_KAFKA, reason="reference Kafka jars not fetched (./scripts/reference-kafka fetch) or no java")
def test_kafkas_consumer_groups_tool_agrees_with_ours(group_cluster: LocalCluster) -> None:
    """Kafka's own kafka-consumer-groups.sh (Java AdminClient: FindCoordinator, ListGroups,
    DescribeGroups, OffsetFetch, ListOffsets) lists and describes a kafkalike group with the
    same rows as ``kafkalike consumer-groups``."""
    from kafka import KafkaConsumer

    bs = group_cluster.bootstrap_servers
    create_topic(bs, "audit-log", 2)
    produce(bs, "audit-log", 40)
    c = KafkaConsumer("audit-log", bootstrap_servers=bs, group_id="auditors", auto_offset_reset="earliest",
                      enable_auto_commit=False, session_timeout_ms=10000, heartbeat_interval_ms=500)
    n = 0
    deadline = time.monotonic() + 60
    while n < 40 and time.monotonic() < deadline:
        n += sum(len(v) for v in c.poll(timeout_ms=KP_POLL_MS).values())
    c.commit()
    c.close()
    produce(bs, "audit-log", 10, start=40)
    assert "auditors" in kafka_consumer_groups("--bootstrap-server", bs, "--list").split()
    theirs = parse_describe(kafka_consumer_groups("--bootstrap-server", bs, "--describe", "--group", "auditors"))
    code, out = cli("--bootstrap-server", bs, "--describe", "--group", "auditors")
    assert code == 0, out
    ours = parse_describe(out)
    columns = ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID")
    assert sorted(tuple(r[k] for k in columns) for r in theirs) == sorted(tuple(r[k] for k in columns) for r in ours)
    assert sum(int(r["LAG"]) for r in theirs) == 10


@pytest.mark.skipif(not HAVE_KAFKA, reason="reference Kafka jars not fetched (./scripts/reference-kafka fetch) or no java")
def test_kafkas_java_consumer_joins_a_group(group_cluster: LocalCluster) -> None:
    """Kafka 3.9's Java console consumer in a group reads every record and commits; the
    committed offsets are the log end (LAG 0 in ``kafkalike consumer-groups --describe``)."""
    bs = group_cluster.bootstrap_servers
    create_topic(bs, "java-feed", 2)
    produce(bs, "java-feed", 30)
    r = subprocess.run(["java", "-cp", f"{LIB}/*", "org.apache.kafka.tools.consumer.ConsoleConsumer",
                        "--bootstrap-server", bs, "--topic", "java-feed", "--group", "java-readers",
                        "--from-beginning", "--max-messages", "30", "--timeout-ms", "60000"],
                       capture_output=True, text=True, timeout=180)
    assert sorted(int(v) for v in r.stdout.split()) == list(range(30)), r.stdout + r.stderr
    code, out = cli("--bootstrap-server", bs, "--describe", "--group", "java-readers")
    rows = parse_describe(out)
    assert code == 0 and sum(int(x["CURRENT-OFFSET"]) for x in rows) == 30 and {x["LAG"] for x in rows} == {"0"}, out
