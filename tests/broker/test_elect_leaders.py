"""ElectLeaders (KIP-460) against real broker processes, with kafka-python's admin client and
``kafkalike leader-election``: preferred election moves leadership back to the first
replica (NONE, then ELECTION_NOT_NEEDED), unclean election makes a live out-of-sync replica
lead even though the topic disables unclean.leader.election.enable, and a broker that is not
the controller answers NOT_CONTROLLER. One 3-broker cluster for the module."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkalike.cluster.local_cluster import LocalCluster
from tests.fixtures_cluster import _new_cluster

OVERRIDES = {"zookeeper.session.timeout.ms": "4000", "replica.lag.time.max.ms": "3000",
             "replica.fetch.wait.max.ms": "100", "auto.leader.rebalance.enable": "false"}
NONE, UNKNOWN_TOPIC_OR_PARTITION, NOT_CONTROLLER, ELECTION_NOT_NEEDED = 0, 3, 41, 84
PREFERRED_LEADER_NOT_AVAILABLE = 80


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    """One started 3-broker cluster (auto leader rebalance off) for the module."""
    c = _new_cluster(tmp_path_factory.mktemp("elect"), zk_connect, 3, OVERRIDES)
    try:
        yield c
    finally:
        c.stop()


def _zk_json(cluster: LocalCluster, path: str) -> Any:
    import trio

    from kafkalike.coordination import ZooKeeperClient

    async def read() -> Any:
        async with ZooKeeperClient(cluster.zk_connect, session_timeout_ms=4000) as zk:
            await zk.sync("/")
            data, _ = await zk.get(path)
            return json.loads(data)

    return trio.run(read)


def _state(cluster: LocalCluster, topic: str, partition: int) -> dict:
    return _zk_json(cluster, f"/brokers/topics/{topic}/partitions/{partition}/state")


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _admin(cluster: LocalCluster) -> Any:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)


def _create(cluster: LocalCluster, topic: str, assignment: dict[int, list[int]],
            configs: dict[str, str] | None = None) -> None:
    from kafka.admin import NewTopic

    admin = _admin(cluster)
    try:
        admin.create_topics([NewTopic(topic, replica_assignments=assignment, topic_configs=configs or {})],
                            timeout_ms=30000)
    finally:
        admin.close()
    for p, replicas in assignment.items():
        _wait(lambda p=p, n=len(replicas): len(_state(cluster, topic, p)["isr"]) == n, 30, f"{topic}-{p} ISR")


def _errors(response: Any) -> dict[tuple[str, int], int]:
    return {(r.topic, p.partition_id): p.error_code
            for r in response.replica_election_results for p in r.partition_result}


def _elect(cluster: LocalCluster, election_type: int,
           partitions: dict[str, list[int]] | None) -> dict[tuple[str, int], int]:
    admin = _admin(cluster)
    try:
        return _errors(admin.elect_leaders(election_type, partitions, timeout_ms=30000, raise_errors=False))
    finally:
        admin.close()


def _leader_election_cli(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "leader-election",
                           "--bootstrap-server", cluster.bootstrap_servers, *args],
                          capture_output=True, text=True, timeout=120)


def _controller(cluster: LocalCluster) -> int:
    return int(_zk_json(cluster, "/controller")["brokerid"])


def _assert_librdkafka_sees_election_not_needed(cluster: LocalCluster, topic: str) -> None:
    from confluent_kafka import ElectionType, KafkaError, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, 0)]).result(timeout=60)
    [(tp, error)] = result.items()
    assert (tp.topic, tp.partition) == (topic, 0)
    assert error is not None and error.code() == KafkaError.ELECTION_NOT_NEEDED


def test_preferred_election_moves_leadership_back_then_is_not_needed(cluster: LocalCluster, tmp_path: Path) -> None:
    """After the preferred replica restarts and rejoins the ISR, ElectLeaders(PREFERRED) makes
    it leader again (NONE), a second one answers ELECTION_NOT_NEEDED, and the CLI prints
    Kafka's lines for both cases."""
    controller = _controller(cluster)
    preferred, other = [b for b in cluster.broker_ids if b != controller]
    topic = "elect-preferred"
    _create(cluster, topic, {0: [preferred, other, controller], 1: [preferred, controller, other]})
    assert cluster.stop_broker(preferred)  # controlled shutdown moves both leaderships away
    _wait(lambda: all(_state(cluster, topic, p)["leader"] != preferred for p in (0, 1)), 30, "leadership moved")
    cluster.start_broker(preferred)
    _wait(lambda: all(len(_state(cluster, topic, p)["isr"]) == 3 for p in (0, 1)), 60, "preferred back in the ISRs")
    epoch_before = _state(cluster, topic, 0)["leader_epoch"]

    assert _elect(cluster, 0, {topic: [0]}) == {(topic, 0): NONE}
    after = _state(cluster, topic, 0)
    assert after["leader"] == preferred and after["leader_epoch"] == epoch_before + 1
    assert _elect(cluster, 0, {topic: [0, 7]}) == {(topic, 0): ELECTION_NOT_NEEDED,
                                                   (topic, 7): UNKNOWN_TOPIC_OR_PARTITION}

    done = _leader_election_cli(cluster, "--election-type", "preferred", "--topic", topic, "--partition", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Successfully completed leader election (PREFERRED) for partitions {topic}-1"
    assert _state(cluster, topic, 1)["leader"] == preferred
    election_file = tmp_path / "election.json"
    election_file.write_text(json.dumps({"partitions": [{"topic": topic, "partition": 0},
                                                        {"topic": topic, "partition": 1}]}))
    noop = _leader_election_cli(cluster, "--election-type", "PREFERRED", "--path-to-json-file", str(election_file))
    assert noop.returncode == 0, noop.stderr
    assert noop.stdout.strip() == f"Valid replica already elected for partitions {topic}-0, {topic}-1"
    _assert_librdkafka_sees_election_not_needed(cluster, topic)
    # all partitions (the CLI sends topic_partitions null): those needing no election are left out
    everything = _leader_election_cli(cluster, "--election-type", "preferred", "--all-topic-partitions")
    assert topic not in everything.stdout, everything.stdout


def test_unclean_election_elects_out_of_sync_replica_despite_topic_config(cluster: LocalCluster) -> None:
    """With the only ISR member dead and unclean.leader.election.enable=false on the topic,
    the partition stays offline until ElectLeaders(UNCLEAN), which makes the live
    out-of-sync replica leader (Kafka's OfflinePartitionLeaderElectionStrategy(allowUnclean
    = true) for admin-triggered elections)."""
    controller = _controller(cluster)
    in_sync, out_of_sync = [b for b in cluster.broker_ids if b != controller]
    topic = "elect-unclean"
    _create(cluster, topic, {0: [in_sync, out_of_sync]}, {"unclean.leader.election.enable": "false"})
    try:
        assert cluster.stop_broker(out_of_sync)
        _wait(lambda: _state(cluster, topic, 0)["isr"] == [in_sync], 30, "ISR shrunk to one")
        assert cluster.kill_broker(in_sync)
        _wait(lambda: _state(cluster, topic, 0)["leader"] == -1, 30, "partition offline")
        cluster.start_broker(out_of_sync)
        cluster.wait_ready([out_of_sync, controller])
        time.sleep(1.0)  # the controller has handled the broker's return: the partition stays offline
        assert _state(cluster, topic, 0)["leader"] == -1

        # the preferred replica is dead: a preferred election cannot help (CLI: exit code 1)
        assert _elect(cluster, 0, {topic: [0]}) == {(topic, 0): PREFERRED_LEADER_NOT_AVAILABLE}
        failed = _leader_election_cli(cluster, "--election-type", "preferred", "--topic", topic, "--partition", "0")
        assert failed.returncode == 1
        assert failed.stdout.strip() == (
            f"Error completing leader election (PREFERRED) for partition: {topic}-0: "
            "org.apache.kafka.common.errors.PreferredLeaderNotAvailableException: Failed to elect leader for "
            f"partition {topic}-0 under strategy PreferredReplicaPartitionLeaderElectionStrategy")
        assert failed.stderr.strip() == "Error: 1 replica(s) could not be elected"
        assert _state(cluster, topic, 0)["leader"] == -1

        assert _elect(cluster, 1, {topic: [0]}) == {(topic, 0): NONE}
        after = _state(cluster, topic, 0)
        assert after["leader"] == out_of_sync and after["isr"] == [out_of_sync]
        assert _elect(cluster, 1, {topic: [0]}) == {(topic, 0): ELECTION_NOT_NEEDED}
    finally:
        if not cluster.broker_alive(in_sync):
            cluster.start_broker(in_sync)
        if not cluster.broker_alive(out_of_sync):
            cluster.start_broker(out_of_sync)
        cluster.wait_ready(cluster.broker_ids)


def test_elect_leaders_on_a_broker_that_is_not_the_controller_answers_not_controller(cluster: LocalCluster) -> None:
    """ElectLeaders sent straight to a broker that is not the controller answers NOT_CONTROLLER
    for each partition (Kafka's processReplicaLeaderElection when !isActive)."""
    import datetime

    import trio

    from kafkalike.client.kafka_client import KafkaClient
    from kafkalike.protocol.api_keys import ApiKey

    controller = _controller(cluster)
    other = next(b for b in cluster.broker_ids if b != controller)

    async def send() -> dict[tuple[str, int], int]:
        async with KafkaClient(cluster.broker_address(other)) as client:
            conn = await client.connection(other)
            resp = await conn.call(ApiKey.ELECT_LEADERS, election_type=0,
                                   timeout=datetime.timedelta(seconds=10),
                                   topic_partitions=[{"topic": "elect-preferred", "partitions": [0]}])
            return _errors(resp)

    assert trio.run(send) == {("elect-preferred", 0): NOT_CONTROLLER}


async def test_stopped_controller_answers_elect_leaders_not_controller_at_once(zk_client: Any, nursery: Any) -> None:
    """A controller that has stopped (its broker is shutting down) answers NOT_CONTROLLER for
    every partition instead of leaving the request waiting for an event loop that is gone;
    while active, a partition it does not know is UNKNOWN_TOPIC_OR_PARTITION."""
    import trio

    from kafkalike.controller.kafka_controller import ElectionType, KafkaController
    from kafkalike.coordination import zk_data as zd
    from kafkalike.coordination.kafka_zk_client import KafkaZkClient
    from kafkalike.protocol.errors import ErrorCode

    await KafkaZkClient(zk_client).create_top_level_paths()
    c = KafkaController(100, {"auto.leader.rebalance.enable": False}, zk=zk_client)
    await nursery.start(c.run)
    tp = zd.TopicPartition("nope", 0)
    with trio.fail_after(20):
        await c.became_active.wait()
        assert await c.elect_leaders([tp], ElectionType.PREFERRED) == {
            tp: (ErrorCode.unknown_topic_or_partition, "The partition does not exist.", -1)}
        await c.stop()
    with trio.fail_after(5):
        assert await c.elect_leaders([tp], ElectionType.UNCLEAN) == {tp: (ErrorCode.not_controller, None, -1)}
