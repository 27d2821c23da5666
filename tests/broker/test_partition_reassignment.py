"""Partition reassignment (KIP-455) against real broker processes: AlterPartitionReassignments
and ListPartitionReassignments through kafkalike's AdminClient, the legacy
/admin/reassign_partitions znode, ``kafkalike reassign-partitions``, and a controller
failover half-way. One 3-broker cluster for the module; a broker is paused (SIGSTOP) where a
reassignment must stay in flight (it cannot catch up), and resumed (SIGCONT) by the test."""

from __future__ import annotations

import contextlib
import io
import json
import re
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from kafkalike.client.admin import AdminClient
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.coordination import zk_data as zd
from kafkalike.protocol.errors import ErrorCode
from tests.fixtures_cluster import _new_cluster

OVERRIDES = {"zookeeper.session.timeout.ms": "10000", "replica.lag.time.max.ms": "3000",
             "replica.fetch.wait.max.ms": "100", "auto.leader.rebalance.enable": "false"}
TP = zd.TopicPartition


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    """One started 3-broker cluster for the module."""
    c = _new_cluster(tmp_path_factory.mktemp("reassign"), zk_connect, 3, OVERRIDES)
    try:
        yield c
    finally:
        for b in c.broker_ids:
            c.kill_broker(b, signal.SIGCONT)  # never leave a paused process behind
        c.stop()


def _zk(cluster: LocalCluster, op: Callable[[Any], Any]) -> Any:
    from kafkalike.coordination import ZooKeeperClient

    async def run() -> Any:
        async with ZooKeeperClient(cluster.zk_connect, session_timeout_ms=4000) as zk:
            await zk.sync("/")
            return await op(zk)

    return trio.run(run)


def _zk_json(cluster: LocalCluster, path: str) -> Any:
    async def read(zk: Any) -> Any:
        data, _ = await zk.get(path)
        return json.loads(data)
    return _zk(cluster, read)


def _zk_exists(cluster: LocalCluster, path: str) -> bool:
    async def exists(zk: Any) -> bool:
        return await zk.exists(path) is not None
    return bool(_zk(cluster, exists))


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


def _admin(cluster: LocalCluster, op: Callable[[AdminClient], Any], avoid: int | None = None) -> Any:
    """Run ``op`` with an AdminClient bootstrapped from every broker but ``avoid`` (a paused
    one: a request to it would only time out)."""
    bootstrap = ",".join(cluster.broker_address(b) for b in cluster.broker_ids if b != avoid)

    async def run() -> Any:
        async with AdminClient(bootstrap, request_timeout_ms=30000) as admin:
            return await op(admin)
    return trio.run(run)


def _alter(cluster: LocalCluster, wanted: dict[TP, list[int] | None], avoid: int | None = None) -> dict[TP, ErrorCode]:
    results = _admin(cluster, lambda a: a.alter_partition_reassignments(wanted), avoid)
    return {tp: code for tp, (code, _message) in results.items()}


def _listed(cluster: LocalCluster, avoid: int | None = None) -> dict[TP, Any]:
    return dict(_admin(cluster, lambda a: a.list_partition_reassignments(), avoid))


def _create(cluster: LocalCluster, topic: str, assignment: dict[int, list[int]]) -> None:
    from kafkalike.client.admin import NewTopic

    _admin(cluster, lambda a: a.create_topics([NewTopic(topic, replica_assignment=assignment)]))
    for p, replicas in assignment.items():
        _wait(lambda p=p, n=len(replicas): len(_state(cluster, topic, p)["isr"]) == n, 30, f"{topic}-{p} ISR")


def _state(cluster: LocalCluster, topic: str, partition: int) -> dict:
    return _zk_json(cluster, f"/brokers/topics/{topic}/partitions/{partition}/state")


def _topic(cluster: LocalCluster, topic: str) -> dict:
    return _zk_json(cluster, f"/brokers/topics/{topic}")


def _settled(cluster: LocalCluster, topic: str, partition: int, replicas: list[int]) -> bool:
    z = _topic(cluster, topic)
    return (z["partitions"][str(partition)] == replicas and str(partition) not in z["adding_replicas"]
            and str(partition) not in z["removing_replicas"])


def _partition_dir(cluster: LocalCluster, broker_id: int, topic: str, partition: int) -> Path:
    return cluster.broker_dir(broker_id) / "logs" / f"{topic}-{partition}"


def _controller(cluster: LocalCluster) -> int:
    return int(_zk_json(cluster, "/controller")["brokerid"])


def _produce_until(cluster: LocalCluster, topic: str, stop: threading.Event, acked: list[bytes],
                   errors: list[str]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 60000})

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            acked.append(msg.value())
        else:
            errors.append(str(err))

    i = 0
    while not stop.is_set():
        producer.produce(topic, value=f"v{i}".encode(), partition=0, on_delivery=delivered)
        producer.poll(0)
        i += 1
        time.sleep(0.002)
    producer.flush(60)


def _consume_all(cluster: LocalCluster, topic: str, expected: int) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": f"check-{topic}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(out) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(msg.value())
        return out
    finally:
        consumer.close()


def test_moving_a_partition_from_brokers_1_2_to_2_3_under_acks_all_loses_nothing_and_leaves_broker_1(
        cluster: LocalCluster) -> None:
    """mv-0 on [1, 2] (broker 1 leads) moves to [2, 3] while an idempotent acks=all producer
    writes: the reassignment is listed while in flight, then the topic znode holds [2, 3]
    without adding/removing replicas, the leader left broker 1 (new leader in the target),
    every acknowledged record is readable, broker 3 holds the data and broker 1's log dir no
    longer has mv-0."""
    _create(cluster, "mv", {0: [1, 2]})
    assert _state(cluster, "mv", 0)["leader"] == 1
    stop, acked, errors = threading.Event(), [], []
    producer = threading.Thread(target=_produce_until, args=(cluster, "mv", stop, acked, errors))
    producer.start()
    try:
        _wait(lambda: len(acked) > 200, 30, "records acknowledged before the move")
        assert _alter(cluster, {TP("mv", 0): [2, 3]}) == {TP("mv", 0): ErrorCode.none}
        _wait(lambda: _settled(cluster, "mv", 0, [2, 3]), 60, "mv-0 moved to [2, 3]")
        time.sleep(1.0)  # keep producing to the new replica set for a while
    finally:
        stop.set()
        producer.join(90)
    assert not errors, errors[:5]
    state = _state(cluster, "mv", 0)
    assert state["leader"] in (2, 3) and sorted(state["isr"]) == [2, 3]
    assert _listed(cluster) == {}
    got = _consume_all(cluster, "mv", len(acked))
    assert set(acked) <= set(got), f"{len(set(acked) - set(got))} acknowledged records missing"
    _wait(lambda: not _partition_dir(cluster, 1, "mv", 0).exists(), 30, "mv-0 deleted from broker 1")
    on_3 = _partition_dir(cluster, 3, "mv", 0)
    assert sum(f.stat().st_size for f in on_3.glob("*.log")) > 0


def test_moving_the_leader_away_elects_a_leader_in_the_target(cluster: LocalCluster) -> None:
    """ld-0 on [1, 2] led by 1, moved to [3]: broker 3 becomes the only replica and leader."""
    _create(cluster, "ld", {0: [1, 2]})
    assert _alter(cluster, {TP("ld", 0): [3]}) == {TP("ld", 0): ErrorCode.none}
    _wait(lambda: _settled(cluster, "ld", 0, [3]), 60, "ld-0 moved to [3]")
    state = _state(cluster, "ld", 0)
    assert state["leader"] == 3 and state["isr"] == [3]


def test_bad_reassignments_get_kafkas_error_codes(cluster: LocalCluster) -> None:
    """An unknown broker or duplicate replicas: INVALID_REPLICA_ASSIGNMENT; an unknown
    partition: UNKNOWN_TOPIC_OR_PARTITION; cancelling a partition that is not being
    reassigned: NO_REASSIGNMENT_IN_PROGRESS. Nothing changes in ZooKeeper."""
    _create(cluster, "bad", {0: [1, 2], 1: [2, 3]})
    results = _alter(cluster, {TP("bad", 0): [1, 99], TP("bad", 1): [3, 3], TP("nosuch", 0): [1, 2],
                               TP("bad", 2): [1], TP("bad", 1 + 100): None})
    assert results == {TP("bad", 0): ErrorCode.invalid_replica_assignment,
                       TP("bad", 1): ErrorCode.invalid_replica_assignment,
                       TP("nosuch", 0): ErrorCode.unknown_topic_or_partition,
                       TP("bad", 2): ErrorCode.unknown_topic_or_partition,
                       TP("bad", 101): ErrorCode.no_reassignment_in_progress}
    assert _topic(cluster, "bad")["partitions"] == {"0": [1, 2], "1": [2, 3]}
    assert _alter(cluster, {TP("bad", 0): None}) == {TP("bad", 0): ErrorCode.no_reassignment_in_progress}


def test_a_broker_that_is_not_the_controller_answers_not_controller(cluster: LocalCluster) -> None:
    """AlterPartitionReassignments / ListPartitionReassignments sent to another broker: a
    top-level NOT_CONTROLLER, as Kafka (clients then ask the controller)."""
    from kafkalike.client.kafka_client import KafkaClient
    from kafkalike.protocol.api_keys import ApiKey

    other = next(b for b in cluster.broker_ids if b != _controller(cluster))

    async def ask() -> tuple[int, int]:
        async with KafkaClient(cluster.bootstrap_servers) as client:
            conn = await client.connection(other)
            alter = await conn.call(ApiKey.ALTER_PARTITION_REASSIGNMENTS, timeout=30000, topics=[
                {"name": "bad", "partitions": [{"partition_index": 0, "replicas": [2, 3]}]}])
            listed = await conn.call(ApiKey.LIST_PARTITION_REASSIGNMENTS, timeout=30000, topics=None)
            return int(alter.error_code), int(listed.error_code)

    assert trio.run(ask) == (ErrorCode.not_controller, ErrorCode.not_controller)


def test_cancelling_half_way_restores_the_original_replicas(cluster: LocalCluster) -> None:
    """cx-0 [C, A] -> [C, B] (C the controller) while broker B is paused (it cannot catch up):
    the reassignment is listed with replicas [C, B, A], adding [B], removing [A]; cancelling it
    (replicas null) answers NONE and the topic znode is back to [C, A] with nothing adding or
    removing, the ISR [C, A]; once B runs again it drops its copy."""
    c = _controller(cluster)
    a, b = [x for x in sorted(cluster.broker_ids) if x != c]
    _create(cluster, "cx", {0: [c, a]})
    cluster.kill_broker(b, signal.SIGSTOP)
    try:
        assert _alter(cluster, {TP("cx", 0): [c, b]}, avoid=b) == {TP("cx", 0): ErrorCode.none}
        listed = _listed(cluster, avoid=b)
        assert TP("cx", 0) in listed
        ra = listed[TP("cx", 0)]
        assert (ra.replicas, ra.adding_replicas, ra.removing_replicas) == ((c, b, a), (b,), (a,))
        z = _topic(cluster, "cx")
        assert z["partitions"]["0"] == [c, b, a] and z["adding_replicas"] == {"0": [b]} \
            and z["removing_replicas"] == {"0": [a]}
        assert _alter(cluster, {TP("cx", 0): None}, avoid=b) == {TP("cx", 0): ErrorCode.none}
        _wait(lambda: _settled(cluster, "cx", 0, [c, a]), 30, "cx-0 back on [C, A]")
    finally:
        cluster.kill_broker(b, signal.SIGCONT)
    state = _state(cluster, "cx", 0)
    assert state["leader"] == c and sorted(state["isr"]) == sorted([c, a])
    assert TP("cx", 0) not in _listed(cluster)
    _wait(lambda: not _partition_dir(cluster, b, "cx", 0).exists(), 60, "cx-0 removed from broker B")


def test_the_legacy_reassign_partitions_znode_is_honoured_and_deleted(cluster: LocalCluster) -> None:
    """/admin/reassign_partitions {"version":1,"partitions":[...]} written directly (as
    pre-2.4 tools did): lg-0 moves [2, 3] -> [3, 1] and the znode is deleted when done."""
    _create(cluster, "lg", {0: [2, 3]})
    data = json.dumps({"version": 1, "partitions": [{"topic": "lg", "partition": 0, "replicas": [3, 1]}]})

    async def write(zk: Any) -> None:
        await zk.create(zd.REASSIGN_PARTITIONS_PATH, data.encode())
    _zk(cluster, write)
    _wait(lambda: _settled(cluster, "lg", 0, [3, 1]), 60, "lg-0 moved to [3, 1]")
    _wait(lambda: not _zk_exists(cluster, zd.REASSIGN_PARTITIONS_PATH), 30, "znode deleted")
    assert sorted(_state(cluster, "lg", 0)["isr"]) == [1, 3]


def test_a_new_controller_completes_a_reassignment_started_by_the_old_one(cluster: LocalCluster) -> None:
    """fo-0 on the two brokers that are not the controller, [A] -> [A, B], with B paused so it
    cannot catch up; the controller broker stops; the new controller (A) reads adding [B] from
    the topic znode and, once B runs again and joins the ISR, completes: [A, B], nothing
    adding. The old controller is started again afterwards."""
    c = _controller(cluster)
    a, b = [x for x in sorted(cluster.broker_ids) if x != c]
    _create(cluster, "fo", {0: [a]})
    cluster.kill_broker(b, signal.SIGSTOP)
    try:
        assert _alter(cluster, {TP("fo", 0): [a, b]}, avoid=b) == {TP("fo", 0): ErrorCode.none}
        assert _topic(cluster, "fo")["adding_replicas"] == {"0": [b]}
        cluster.stop_broker(c)
    finally:
        cluster.kill_broker(b, signal.SIGCONT)
    try:
        _wait(lambda: _controller(cluster) in (a, b), 60, "a new controller")
        _wait(lambda: _settled(cluster, "fo", 0, [a, b]), 90, "fo-0 completed on [a, b]")
        assert sorted(_state(cluster, "fo", 0)["isr"]) == sorted([a, b])
    finally:
        cluster.start_broker(c)
        cluster.wait_registered([c], timeout=60)


def _cli(cluster: LocalCluster, *args: str, bootstrap: str | None = None) -> subprocess.CompletedProcess[str]:
    """``kafkalike reassign-partitions --bootstrap-server B *args`` run in this process (the
    parser and command of ``kafkalike.cli.main``; a new Python per call costs seconds)."""
    from kafkalike.cli.main import build_parser

    argv = ["reassign-partitions", "--bootstrap-server", bootstrap or cluster.bootstrap_servers, *args]
    parsed = build_parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = int(parsed.func(parsed) or 0)
    # the test session's own log lines (the client's debug events) land in the same stream
    printed = "".join(line for line in out.getvalue().splitlines(keepends=True) if not _LOG_LINE.match(line))
    return subprocess.CompletedProcess(argv, code, printed, err.getvalue())


_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\S* \[")


def _plan(tmp_path: Path, name: str, moves: dict[tuple[str, int], list[int]]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": t, "partition": p, "replicas": r} for (t, p), r in moves.items()]}))
    return str(path)


def test_cli_execute_verify_list_and_generate_print_kafkas_lines(cluster: LocalCluster, tmp_path: Path) -> None:
    """``kafkalike reassign-partitions`` as kafka-reassign-partitions.sh: --execute prints the
    rollback JSON and "Successfully started partition reassignments for cl-0,cl-1"; --verify
    then reports each partition completed; --list finds none; --generate prints the current and
    a proposed assignment over the given brokers; an unknown broker is refused before anything
    is sent; --cancel with nothing active says so."""
    _create(cluster, "cl", {0: [1, 2], 1: [2, 3]})
    plan = _plan(tmp_path, "plan.json", {("cl", 0): [2, 3], ("cl", 1): [3, 1]})
    out = _cli(cluster, "--execute", "--reassignment-json-file", plan)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "Current partition replica assignment", "",
        '{"version":1,"partitions":[{"topic":"cl","partition":0,"replicas":[1,2],"log_dirs":["any","any"]},'
        '{"topic":"cl","partition":1,"replicas":[2,3],"log_dirs":["any","any"]}]}', "",
        "Save this to use as the --reassignment-json-file option during rollback",
        "Successfully started partition reassignments for cl-0,cl-1"]
    _wait(lambda: _settled(cluster, "cl", 0, [2, 3]) and _settled(cluster, "cl", 1, [3, 1]), 60, "cl moved")
    _wait(lambda: _cli(cluster, "--verify", "--reassignment-json-file", plan).stdout.splitlines()
          == ["Status of partition reassignment:", "Reassignment of partition cl-0 is completed.",
              "Reassignment of partition cl-1 is completed.", "",
              "Clearing broker-level throttles on brokers 1,2,3", "Clearing topic-level throttles on topic cl"],
          30, "metadata shows the move")
    listed = _cli(cluster, "--list")
    assert (listed.returncode, listed.stdout) == (0, "No partition reassignments found.\n")

    topics = tmp_path / "topics.json"
    topics.write_text('{"version":1,"topics":[{"topic":"cl"}]}')
    gen = _cli(cluster, "--generate", "--topics-to-move-json-file", str(topics), "--broker-list", "1,2")
    assert gen.returncode == 0, gen.stdout + gen.stderr
    lines = gen.stdout.splitlines()
    assert lines[0] == "Current partition replica assignment" and lines[3] == "Proposed partition reassignment configuration"
    assert json.loads(lines[1])["partitions"][0]["replicas"] == [2, 3]
    proposed = json.loads(lines[4])["partitions"]
    assert [p["partition"] for p in proposed] == [0, 1] and all(sorted(p["replicas"]) == [1, 2] for p in proposed)

    bad = _cli(cluster, "--execute", "--reassignment-json-file", _plan(tmp_path, "bad.json", {("cl", 0): [2, 99]}))
    assert (bad.returncode, bad.stdout.splitlines()) == (1, ["Error: Unknown broker id 99"])
    dup = _cli(cluster, "--execute", "--reassignment-json-file", _plan(tmp_path, "dup.json", {("cl", 0): [2, 2]}))
    assert (dup.returncode, dup.stdout.splitlines()) == (
        1, ["Error: Partition replica lists may not contain duplicate entries: cl-0 contains multiple entries for 2"])
    none = _cli(cluster, "--cancel", "--reassignment-json-file", plan)
    assert (none.returncode, none.stdout) == (0, "None of the specified partition reassignments are active.\n"
                                                 "None of the specified partition moves are active."
                                                 "Clearing broker-level throttles on brokers 1,2,3\n"
                                                 "Clearing topic-level throttles on topic cl\n")


def test_cli_lists_verifies_and_cancels_a_reassignment_in_flight(cluster: LocalCluster, tmp_path: Path) -> None:
    """With broker B paused, ``--execute`` of cz-0 [C, A] -> [C, B] (C the controller) stays in
    flight: --list prints "cz-0: replicas: C,B,A. adding: B. removing: A.", --verify "still in
    progress", a second --execute without --additional is refused with Kafka's message, --cancel
    prints "Successfully cancelled partition reassignment for: cz-0" and the partition is back
    on [C, A]."""
    c = _controller(cluster)
    a, b = [x for x in sorted(cluster.broker_ids) if x != c]
    _create(cluster, "cz", {0: [c, a]})
    plan = _plan(tmp_path, "cz.json", {("cz", 0): [c, b]})
    running = ",".join(cluster.broker_address(x) for x in (c, a))  # not the paused one

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return _cli(cluster, *args, bootstrap=running)

    cluster.kill_broker(b, signal.SIGSTOP)
    try:
        execute = cli("--execute", "--reassignment-json-file", plan)
        assert execute.returncode == 0, execute.stdout + execute.stderr
        listed = cli("--list")
        assert listed.stdout.splitlines() == ["Current partition reassignments:",
                                              f"cz-0: replicas: {c},{b},{a}. adding: {b}. removing: {a}."]
        verify = cli("--verify", "--reassignment-json-file", plan)
        assert verify.stdout.splitlines()[:2] == ["Status of partition reassignment:",
                                                  "Reassignment of partition cz-0 is still in progress."]
        again = cli("--execute", "--reassignment-json-file", plan)
        assert again.returncode == 1 and again.stdout.startswith("Cannot execute because there is an existing")
        # --preserve-throttles: clearing the throttles would ask the paused broker too (and fail,
        # as Kafka's tool does); the throttle clearing is tested in test_reassign_throttle_cli.py
        cancel = cli("--cancel", "--reassignment-json-file", plan, "--preserve-throttles")
        assert (cancel.returncode, cancel.stdout.splitlines()) == (0, [
            "Successfully cancelled partition reassignment for: cz-0",
            "None of the specified partition moves are active."])
    finally:
        cluster.kill_broker(b, signal.SIGCONT)
    _wait(lambda: _settled(cluster, "cz", 0, [c, a]), 30, "cz-0 back on [C, A]")


KAFKA_LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = KAFKA_LIB.is_dir() and any(KAFKA_LIB.glob("kafka_2.13-*.jar")) and shutil.which("java") is not None


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs Kafka 3.9's jars (./scripts/reference-kafka fetch) and java")
def test_kafkas_own_reassign_partitions_tool_executes_and_verifies(cluster: LocalCluster, tmp_path: Path) -> None:
    """Kafka 3.9's ReassignPartitionsCommand (kafka-reassign-partitions.sh) --execute, --verify
    and --list against kafkalike: the move happens, and its output is the same bytes
    ``kafkalike reassign-partitions`` prints. --verify runs with --preserve-throttles: without
    it Kafka's tool prints the same status and "Clearing broker-level throttles ..." line, then
    fails deleting the broker throttle configs (kafkalike has no dynamic broker configs)."""
    _create(cluster, "jv", {0: [1, 2]})
    plan = _plan(tmp_path, "jv.json", {("jv", 0): [3, 2]})

    def java(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["java", "-cp", f"{KAFKA_LIB}/*", "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
                               "--bootstrap-server", cluster.bootstrap_servers, *args],
                              capture_output=True, text=True, timeout=120)

    execute = java("--execute", "--reassignment-json-file", plan)
    assert execute.returncode == 0, execute.stdout + execute.stderr[-2000:]
    assert execute.stdout.splitlines()[-1] == "Successfully started partition reassignment for jv-0"
    assert execute.stdout.splitlines()[:3] == [
        "Current partition replica assignment", "",
        '{"version":1,"partitions":[{"topic":"jv","partition":0,"replicas":[1,2],"log_dirs":["any","any"]}]}']
    _wait(lambda: _settled(cluster, "jv", 0, [3, 2]), 60, "jv-0 moved by Kafka's tool")
    expected = ["Status of partition reassignment:", "Reassignment of partition jv-0 is completed.", ""]
    deadline = time.monotonic() + 60
    while True:  # the brokers' metadata caches follow the controller's UpdateMetadata
        verify = java("--verify", "--reassignment-json-file", plan, "--preserve-throttles")
        if verify.stdout.splitlines() == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert verify.returncode == 0 and verify.stdout.splitlines() == expected, verify.stdout + verify.stderr[-2000:]
    assert verify.stdout == _cli(cluster, "--verify", "--reassignment-json-file", plan, "--preserve-throttles").stdout
    unpreserved = java("--verify", "--reassignment-json-file", plan).stdout.splitlines()
    assert unpreserved[:4] == _cli(cluster, "--verify", "--reassignment-json-file", plan).stdout.splitlines()[:4]
    listed = java("--list")
    assert (listed.returncode, listed.stdout) == (0, _cli(cluster, "--list").stdout)
