"""Combined KRaft nodes (``process.roles=broker,controller``, Kafka 3.9's KafkaRaftServer):
one process is a voter of the quorum and a broker reading the metadata log through the same Raft
client. Real processes started by KRaftCluster(combined=True) (what ``kafkalike cluster up --mode
kraft --combined`` runs, the 1-node test through that CLI) and confluent-kafka as the client; the config checks Kafka's KafkaConfig
makes for a combined node stop start-up with one line.

The 3-node test with a kill -9 of the quorum leader takes ~30-60 s on a loaded machine:
KAFKALIKE_SLOW=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.kafka_raft_server import KafkaRaftServerStartupError, broker_config, check_combined_config
from kafkalike.cluster.kraft_cluster import KRaftCluster
from kafkalike.cluster.local_cluster import wait_metadata_lists_all
from tests.raft.raft_helpers import REPO, free_ports


def combined_cluster(tmp_path: Path, nodes: int) -> KRaftCluster:
    broker_port, controller_port = free_ports(2)
    return KRaftCluster(tmp_path / "combined", brokers=nodes, controllers=nodes, combined=True,
                        base_port=broker_port, controller_port=controller_port)


def create_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, replication_factor)], request_timeout=60)
    futures[topic].result(timeout=120)


def produce(bootstrap: str, topic: str, values: list[str]) -> None:
    """acks=all, idempotent; every value acknowledged (raises otherwise)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": 120000})
    failures: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is not None:
            failures.append(str(err))
    for value in values:
        producer.produce(topic, value.encode(), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(180) == 0
    assert failures == []


def consume_all(bootstrap: str, topic: str, expected: int) -> list[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[str] = []
    deadline = time.monotonic() + 120
    try:
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                got.append((msg.value() or b"").decode())
    finally:
        consumer.close()
    return got


def config(**props: str) -> KafkaConfig:
    base = {"process.roles": "broker,controller", "node.id": "1",
            "controller.quorum.voters": "1@127.0.0.1:9093,2@127.0.0.2:9093,3@127.0.0.3:9093",
            "controller.listener.names": "CONTROLLER",
            "listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            "log.dirs": "/tmp/x/logs", "metadata.log.dir": "/tmp/x/metadata"}
    base.update({k.replace("_", "."): v for k, v in props.items()})
    return KafkaConfig.from_mapping(base)


def test_a_well_formed_combined_config_passes_and_the_broker_binds_only_its_own_listeners() -> None:
    cfg = config()
    check_combined_config(cfg)
    broker = broker_config(cfg)
    assert broker.process_roles == frozenset({"broker"})
    assert [e.listener_name for e in broker.listeners] == ["PLAINTEXT"]
    assert [e.listener_name for e in broker.advertised_listeners] == ["PLAINTEXT"]


@pytest.mark.parametrize(("props", "message"), [
    ({"node_id": "7"}, "node id 7 must be included in the set of voters"),
    ({"listeners": "PLAINTEXT://127.0.0.1:9092"}, "controller.listener.names must contain at least one value"),
    ({"advertised_listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"},
     "advertised.listeners config must not contain KRaft controller listeners"),
    ({"inter_broker_listener_name": "CONTROLLER"}, "is a controller listener"),
    ({"listeners": "CONTROLLER://127.0.0.1:9093"}, "holds only controller listeners"),
])
def test_a_bad_combined_config_is_refused_with_one_line(props: dict[str, str], message: str) -> None:
    with pytest.raises(KafkaRaftServerStartupError, match=message) as err:
        check_combined_config(config(**props))
    assert "\n" not in str(err.value)


def test_a_combined_node_whose_id_is_not_a_voter_exits_1_with_one_line(tmp_path: Path) -> None:
    props = tmp_path / "combined.properties"
    props.write_text("process.roles=broker,controller\nnode.id=9\ncontroller.quorum.voters=1@127.0.0.1:9093\n"
                     "controller.listener.names=CONTROLLER\n"
                     "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0\n"
                     f"log.dirs={tmp_path / 'logs'}\nmetadata.log.dir={tmp_path / 'metadata'}\n")
    done = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "broker", "start", "--config", str(props)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 1
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "combined_node_startup_failed" in line]
    assert len(lines) == 1 and "node id 9 must be included in the set of voters" in lines[0]


def kafkalike(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def test_cluster_up_combined_runs_one_node_that_is_voter_leader_and_broker(tmp_path: Path) -> None:
    base = str(tmp_path / "combined")
    port = free_ports(1)[0]
    try:
        up = kafkalike("cluster", "up", "--mode", "kraft", "--combined", "--brokers", "1", "--dir", base,
                       "--base-port", str(port))
        assert up.returncode == 0, up.stdout + up.stderr
        status = json.loads(kafkalike("cluster", "status", "--dir", base, "--json").stdout)
        assert status["quorum"]["leader_id"] == 1
        assert [v["node_id"] for v in status["quorum"]["voters"]] == [1] and status["quorum"]["observers"] == []
        assert [(p["role"], p["alive"]) for p in status["processes"]] == [("combined", True)]
        bootstrap = status["bootstrap_servers"]
        create_topic(bootstrap, "single", 2, 1)
        values = [f"v{i}" for i in range(50)]
        produce(bootstrap, "single", values)
        assert sorted(consume_all(bootstrap, "single", 50)) == sorted(values)
    finally:
        if KRaftCluster.is_kraft(base):
            down = kafkalike("cluster", "down", "--dir", base)
            assert down.returncode == 0, down.stdout + down.stderr
            assert "1 combined nodes" in down.stdout
    cluster = KRaftCluster.load(base)
    assert not any(s.alive for s in cluster.status())
    log = cluster.log_path(1).read_text()
    assert "controlled_shutdown_finished" in log and "succeeded=True" in log
    assert "combined_node_stopped" in log


@pytest.mark.skipif(not os.environ.get("KAFKALIKE_SLOW"), reason="~30-60 s: set KAFKALIKE_SLOW=1")
def test_three_combined_nodes_survive_a_kill_9_of_the_quorum_leader_which_then_rejoins(tmp_path: Path) -> None:
    cluster = combined_cluster(tmp_path, 3)
    try:
        cluster.start(timeout=240)
        quorum = cluster.quorum()
        assert quorum is not None and {v.node_id for v in quorum.voters} == {1, 2, 3}
        assert quorum.observers == ()  # the brokers read the log through their voter, no observer
        bootstrap = cluster.bootstrap_servers
        if os.environ.get("KAFKALIKE_KAFKA_LIB"):  # Kafka's own tool sees three voters and no observer
            lib = os.environ["KAFKALIKE_KAFKA_LIB"]
            done = subprocess.run(["java", "-cp", f"{lib}/*", "org.apache.kafka.tools.MetadataQuorumCommand",
                                   "--bootstrap-controller", cluster.controller_address(1), "describe",
                                   "--replication"], capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr
            assert done.stdout.count("Leader") == 1 and done.stdout.count("Follower") == 2
            assert "Observer" not in done.stdout
        create_topic(bootstrap, "combined", 3, 3)
        before = [f"before-{i}" for i in range(100)]
        produce(bootstrap, "combined", before)
        assert sorted(consume_all(bootstrap, "combined", 100)) == sorted(before)

        old_leader = quorum.leader_id
        assert cluster.kill_node(old_leader)
        new = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            new = cluster.quorum()
            if new is not None and new.leader_id not in (-1, old_leader):
                break
            time.sleep(0.5)
        assert new is not None and new.leader_id not in (-1, old_leader) and new.epoch > quorum.epoch

        survivors = ",".join(cluster.broker_address(i) for i in cluster.broker_ids if i != old_leader)
        after = [f"after-{i}" for i in range(100)]
        produce(survivors, "combined", after)
        assert sorted(consume_all(survivors, "combined", 200)) == sorted(before + after)

        # the killed node comes back: its voter rejoins, its broker is unfenced and listed again
        cluster.start_node(old_leader)
        wait_metadata_lists_all(cluster.broker_ids, cluster.broker_address,
                                lambda: cluster._raise_if_exited(cluster.node_ids, "after the restart"), 180,
                                "did not list every node after the restart", poll_s=0.5)
        back = cluster.quorum()
        assert back is not None and {v.node_id for v in back.voters} == {1, 2, 3}
        rejoined = next(v for v in back.voters if v.node_id == old_leader)
        assert rejoined.log_end_offset > 0
        assert sorted(consume_all(cluster.broker_address(old_leader), "combined", 200)) == sorted(before + after)
    finally:
        cluster.stop()
        assert not any(s.alive for s in cluster.status())
