"""SASL between brokers and for whole clusters: LocalCluster(security="sasl_plaintext" /
"sasl_ssl") (kafkalike cluster up --security ...) makes the SASL listener the inter-broker
listener (SCRAM-SHA-512 as admin, credentials written to ZooKeeper before the brokers start);
`kafkalike configs` creates a user through ZooKeeper and describes it over the wire with
--command-config; the user's producer (confluent-kafka) writes acks=all to a
replication-factor-3 topic, which only works when the followers' fetches authenticate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kafkalike.client.sasl import SaslClientConfig
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port


def _props(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


def _cluster(tmp_path: Path, zk_connect: str, brokers: int, security: str) -> LocalCluster:
    hosts = [f"127.0.0.{i}" for i in range(1, brokers + 1)]
    port = find_free_base_port(hosts, per_host_ports=2, low=30000, high=32000)
    return LocalCluster(tmp_path / "c", brokers=brokers, base_port=port, zookeeper_connect=zk_connect,
                        chroot=f"kafkalike-{uuid.uuid4().hex[:10]}", security=security)


def test_three_brokers_replicate_over_a_sasl_inter_broker_listener_and_configs_creates_a_scram_user(
        tmp_path: Path, zk_connect: str) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    cluster = _cluster(tmp_path, zk_connect, 3, "sasl_plaintext")
    try:
        cluster.start(timeout=90)
        admin_props = _props(cluster.admin_client_properties_path)
        assert admin_props["security.protocol"] == "SASL_PLAINTEXT"
        assert admin_props["sasl.mechanism"] == "SCRAM-SHA-512"
        done = _cli("configs", "--zookeeper", cluster.zk_connect, "--alter", "--entity-type", "users",
                    "--entity-name", "alice", "--add-config", "SCRAM-SHA-256=[iterations=8192,password=alice-secret]")
        assert done.returncode == 0 and done.stdout == "Completed updating config for user alice.\n", done
        described = _cli("configs", "--bootstrap-server", cluster.sasl_bootstrap_servers, "--command-config",
                         str(cluster.admin_client_properties_path), "--describe", "--entity-type", "users",
                         "--entity-name", "alice")
        assert described.returncode == 0, described
        assert described.stdout == "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192\n"

        conf = {"bootstrap.servers": cluster.sasl_bootstrap_servers, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "alice", "sasl.password": "alice-secret"}
        admin = AdminClient(conf)
        admin.create_topics([NewTopic("sasl-replicated", 1, replication_factor=3)])["sasl-replicated"].result(30)
        producer = Producer({**conf, "acks": "all"})
        for i in range(200):
            producer.produce("sasl-replicated", value=b"r%d" % i)
        assert producer.flush(60) == 0
        deadline = time.monotonic() + 30
        while True:
            partition = admin.list_topics("sasl-replicated", timeout=5).topics["sasl-replicated"].partitions[0]
            if sorted(partition.isrs) == [1, 2, 3]:
                break
            assert time.monotonic() < deadline, f"ISR stayed {partition.isrs}"
            time.sleep(0.2)
        for i in cluster.broker_ids:
            if i != partition.leader:
                log_dir = cluster.broker_dir(i) / "logs" / "sasl-replicated-0"
                assert sum(f.stat().st_size for f in log_dir.glob("*.log")) > 0
        # the follower fetches and the controller's requests authenticated as the admin user
        logs = "".join(cluster.log_path(i).read_text() for i in cluster.broker_ids)
        assert "sasl_authenticated" in logs and "principal=User:admin" in logs
        assert "mechanism=SCRAM-SHA-512" in logs
    finally:
        cluster.stop()


def test_kafkalike_connection_authenticates_and_reports_a_wrong_password(tmp_path: Path, zk_connect: str) -> None:
    """kafkalike's own client (KafkaConnection.connect(sasl=...)) over SASL_SSL with the admin
    properties; a wrong password raises SaslAuthenticationError(SASL_AUTHENTICATION_FAILED)."""
    import trio

    from kafkalike.cli.configs import client_security
    from kafkalike.client.connection import KafkaConnection
    from kafkalike.client.sasl import SaslAuthenticationError
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.errors import ErrorCode

    cluster = _cluster(tmp_path, zk_connect, 1, "sasl_ssl")
    try:
        cluster.start(timeout=60)
        ssl_context, sasl = client_security(str(cluster.admin_client_properties_path))
        assert sasl is not None and sasl.mechanism == "SCRAM-SHA-512"
        host, port = cluster.broker_host(1), cluster.sasl_port

        async def main() -> None:
            async with KafkaConnection.open(host, port, ssl_context=ssl_context, sasl=sasl) as conn:
                response = await conn.call(ApiKey.METADATA, topics=[])
                assert [b.node_id for b in response.brokers] == [1]
            wrong = SaslClientConfig(sasl.mechanism, sasl.username, "wrong")
            async with trio.open_nursery() as nursery:
                with pytest.raises(SaslAuthenticationError) as err:
                    await KafkaConnection.connect(host, port, nursery=nursery, ssl_context=ssl_context, sasl=wrong)
            assert err.value.error_code == ErrorCode.sasl_authentication_failed

        trio.run(main)
    finally:
        cluster.stop()


KAFKA_LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and KAFKA_LIB.is_dir() and any(KAFKA_LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)
"""Kafka 3.9's Java tools (three JVM starts, ~10 s each here) run only with KAFKALIKE_KAFKA_LIB set."""


def _java(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["java", "-Xmx256m", "-cp", f"{KAFKA_LIB}/*", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB set to Kafka 3.9's jars "
                                            "(./scripts/reference-kafka fetch) and java")
def test_kafkas_own_configs_and_console_tools_work_over_sasl_with_client_properties(
        tmp_path: Path, zk_connect: str) -> None:
    """Kafka 3.9's kafka-configs.sh creates a SCRAM user over the SASL listener with the admin's
    --command-config (kafkalike configs describes it); kafka-console-producer/consumer.sh
    authenticate as that user with --producer.config / --consumer.config."""
    cluster = _cluster(tmp_path, zk_connect, 1, "sasl_plaintext")
    try:
        cluster.start(timeout=60)
        bootstrap, admin = cluster.sasl_bootstrap_servers, str(cluster.admin_client_properties_path)
        out = _java("kafka.admin.ConfigCommand", "--bootstrap-server", bootstrap, "--command-config", admin,
                    "--alter", "--add-config", "SCRAM-SHA-512=[iterations=8192,password=bob-secret]",
                    "--entity-type", "users", "--entity-name", "bob")
        assert out.returncode == 0 and "Completed updating config for user bob." in out.stdout, out.stderr[-2000:]
        # (Kafka's --describe of users asks DescribeClientQuotas first, which kafkalike does not serve yet)
        ours = _cli("configs", "--bootstrap-server", bootstrap, "--command-config", admin, "--describe",
                    "--entity-type", "users")
        assert "SCRAM credential configs for user-principal 'bob' are SCRAM-SHA-512=iterations=8192" in ours.stdout
        bob = tmp_path / "bob.properties"
        bob.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
                       "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                       'username="bob" password="bob-secret";\n')
        out = _java("kafka.tools.ConsoleProducer", "--bootstrap-server", bootstrap, "--topic", "sasl-java",
                    "--producer.config", str(bob), stdin="one\ntwo\nthree\n")
        assert out.returncode == 0, out.stderr[-2000:]
        out = _java("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bootstrap,
                    "--topic", "sasl-java", "--from-beginning", "--max-messages", "3", "--timeout-ms", "30000",
                    "--consumer.config", str(bob))
        assert out.stdout.split() == ["one", "two", "three"], out.stderr[-2000:]
    finally:
        cluster.stop()
