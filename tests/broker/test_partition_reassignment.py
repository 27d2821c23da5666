"""Partition reassignment (KIP-455) against real broker processes: AlterPartitionReassignments
and ListPartitionReassignments through kafkalike's AdminClient, the legacy
/admin/reassign_partitions znode, ``kafkalike reassign-partitions``, and a controller
failover half-way. One 3-broker cluster for the module; a broker is paused (SIGSTOP) where a
reassignment must stay in flight (it cannot catch up), and resumed (SIGCONT) by the test."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
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

OVERRIDES = {"zookeeper.session.timeout.ms": "6000", "replica.lag.time.max.ms": "3000",
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


def _admin(cluster: LocalCluster, op: Callable[[AdminClient], Any]) -> Any:
    async def run() -> Any:
        async with AdminClient(cluster.bootstrap_servers, request_timeout_ms=30000) as admin:
            return await op(admin)
    return trio.run(run)


def _alter(cluster: LocalCluster, wanted: dict[TP, list[int] | None]) -> dict[TP, ErrorCode]:
    results = _admin(cluster, lambda a: a.alter_partition_reassignments(wanted))
    return {tp: code for tp, (code, _message) in results.items()}


def _listed(cluster: LocalCluster) -> dict[TP, Any]:
    return dict(_admin(cluster, lambda a: a.list_partition_reassignments()))


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
    """cx-0 [1, 2] -> [1, 3] while broker 3 is paused (it cannot catch up): the reassignment is
    listed with replicas [1, 3, 2], adding [3], removing [2]; cancelling it (replicas null)
    answers NONE and the topic znode is back to [1, 2] with nothing adding or removing, the
    ISR [1, 2]; once broker 3 runs again it drops its copy."""
    _create(cluster, "cx", {0: [1, 2]})
    cluster.kill_broker(3, signal.SIGSTOP)
    try:
        assert _alter(cluster, {TP("cx", 0): [1, 3]}) == {TP("cx", 0): ErrorCode.none}
        listed = _listed(cluster)
        assert TP("cx", 0) in listed
        ra = listed[TP("cx", 0)]
        assert (ra.replicas, ra.adding_replicas, ra.removing_replicas) == ((1, 3, 2), (3,), (2,))
        z = _topic(cluster, "cx")
        assert z["partitions"]["0"] == [1, 3, 2] and z["adding_replicas"] == {"0": [3]} \
            and z["removing_replicas"] == {"0": [2]}
        assert _alter(cluster, {TP("cx", 0): None}) == {TP("cx", 0): ErrorCode.none}
        _wait(lambda: _settled(cluster, "cx", 0, [1, 2]), 30, "cx-0 back on [1, 2]")
    finally:
        cluster.kill_broker(3, signal.SIGCONT)
    state = _state(cluster, "cx", 0)
    assert state["leader"] == 1 and sorted(state["isr"]) == [1, 2]
    assert TP("cx", 0) not in _listed(cluster)
    _wait(lambda: not _partition_dir(cluster, 3, "cx", 0).exists(), 60, "cx-0 removed from broker 3")


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
        assert _alter(cluster, {TP("fo", 0): [a, b]}) == {TP("fo", 0): ErrorCode.none}
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


def _cli(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "reassign-partitions",
                           "--bootstrap-server", cluster.bootstrap_servers, *args],
                          capture_output=True, text=True, timeout=120)
