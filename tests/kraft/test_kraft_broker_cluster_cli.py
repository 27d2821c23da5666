"""``kafkalike cluster up --mode kraft``: 3 controller processes and 3 brokers from the CLI, no
ZooKeeper; ``cluster status`` shows the quorum (leader, epoch, voters, the brokers as observers with
their lag), a topic created with ``kafkalike topics`` is led by the brokers, and with the reference
jars Kafka's own MetadataQuorumCommand and TopicCommand (--describe) read the cluster; ``cluster
down`` leaves no process. Minutes on a loaded machine: KAFKALIKE_SLOW=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kafkalike.cluster.kraft_cluster import KRaftCluster
from tests.raft.raft_helpers import REPO, free_ports

pytestmark = pytest.mark.skipif(not os.environ.get("KAFKALIKE_SLOW"), reason="minutes: set KAFKALIKE_SLOW=1")


def kafkalike(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def java(main: str, *args: str) -> str:
    lib = os.environ["KAFKALIKE_KAFKA_LIB"]
    done = subprocess.run(["java", "-cp", f"{lib}/*", main, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_cluster_up_kraft_runs_a_quorum_and_brokers_that_clients_and_kafka_tools_use(tmp_path: Path) -> None:
    base = str(tmp_path / "kraft")
    port = free_ports(1)[0]
    try:
        up = kafkalike("cluster", "up", "--mode", "kraft", "--controllers", "3", "--brokers", "3", "--dir", base,
                       "--base-port", str(port))
        assert up.returncode == 0, up.stdout + up.stderr
        assert "quorum: leader 300" in up.stdout
        status = json.loads(kafkalike("cluster", "status", "--dir", base, "--json").stdout)
        assert status["mode"] == "kraft"
        assert {v["node_id"] for v in status["quorum"]["voters"]} == {3001, 3002, 3003}
        assert {o["node_id"] for o in status["quorum"]["observers"]} == {1, 2, 3}
        assert all(p["alive"] for p in status["processes"]) and len(status["processes"]) == 6

        bs = status["bootstrap_servers"]
        created = kafkalike("topics", "--bootstrap-server", bs, "--create", "--topic", "tutorial", "--partitions", "3",
                            "--replication-factor", "3")
        assert created.returncode == 0, created.stdout + created.stderr
        described = kafkalike("topics", "--bootstrap-server", bs, "--describe", "--topic", "tutorial")
        partitions = [line for line in described.stdout.splitlines() if "Partition: " in line]
        assert len(partitions) == 3 and all("Replicas: " in line and "Leader: -1" not in line for line in partitions)

        if os.environ.get("KAFKALIKE_KAFKA_LIB"):
            voters = status["controller_quorum_voters"].split(",")[0].split("@")[1]
            replication = java("org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-controller", voters,
                               "describe", "--replication")
            assert replication.count("Observer") == 3 and replication.count("Leader") == 1
            topics = java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bs, "--describe",
                          "--topic", "tutorial")
            assert topics.count("Leader: ") == 3
    finally:
        if KRaftCluster.is_kraft(base):
            down = kafkalike("cluster", "down", "--dir", base)
            assert down.returncode == 0, down.stdout + down.stderr
            cluster = KRaftCluster.load(base)
            assert not any(s.alive for s in cluster.status())
