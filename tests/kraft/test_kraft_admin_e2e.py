"""Admin operations on a KRaft cluster of real processes (one controller, three brokers), through
kafkalike's CLI and, with KAFKALIKE_KAFKA_LIB, Kafka 3.9's own ReassignPartitionsCommand.

Minutes of process start-up: behind KAFKALIKE_SLOW. The controller-side rules are covered in the
default run by tests/kraft/test_kraft_admin_reassign.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio
from confluent_kafka.admin import AdminClient, NewTopic

from kafkalike.cli.main import main as cli_main
from tests.broker.test_partition_reassignment import _cli, _plan
from tests.kraft.kraft_broker_helpers import kraft_cluster
from tests.kraft.test_kraft_broker_e2e import _produce, _read_all_kafka_python
from tests.raft.raft_helpers import wait_for

pytestmark = pytest.mark.skipif(not os.environ.get("KAFKALIKE_SLOW"), reason="minutes: set KAFKALIKE_SLOW=1")

LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)
N = 50


def _cli_on(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``kafkalike reassign-partitions --bootstrap-server bootstrap *args`` in this process."""
    no_cluster: Any = None  # _cli takes the bootstrap given instead of the ZooKeeper cluster's
    return _cli(no_cluster, *args, bootstrap=bootstrap)


def _create_assigned(bootstrap: str, topic: str, replicas: list[int]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=1, replication_factor=-1, replica_assignment=[replicas])
    futures = admin.create_topics([new], request_timeout=90)
    futures[topic].result(timeout=120)


def _partition(bootstrap: str, topic: str) -> tuple[int, list[int], list[int]] | None:
    """(leader, replicas, isr) of partition 0 from a broker's Metadata answer."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30)
    t = md.topics.get(topic)
    if t is None or t.error is not None or 0 not in t.partitions:
        return None
    p = t.partitions[0]
    return p.leader, list(p.replicas), sorted(p.isrs)


def _kafka_tool(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["java", "-cp", f"{LIB}/*", "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
                           "--bootstrap-server", bootstrap, *args], capture_output=True, text=True, timeout=180)


async def test_partitions_move_between_kraft_brokers_with_the_cli_and_kafkas_tool(tmp_path: Path) -> None:
    with kraft_cluster(tmp_path, brokers=3, controllers=1,
                       broker_extra="replica.lag.time.max.ms=5000\n") as (_controllers, brokers):
        for node in brokers:
            await node.started()
        bs = ",".join(b.bootstrap for b in brokers)
        a, b, c = (x.node_id for x in brokers)
        await trio.to_thread.run_sync(_create_assigned, bs, "moves", [a])
        values = [f"m{i}" for i in range(N)]
        assert await trio.to_thread.run_sync(_produce, bs, "moves", values) == []

        # kafkalike reassign-partitions: [a] -> [b, c] (both new, the leader removed)
        plan = _plan(tmp_path, "plan.json", {("moves", 0): [b, c]})
        executed = await trio.to_thread.run_sync(_cli_on, bs, "--execute",
                                                 "--reassignment-json-file", plan)
        assert executed.returncode == 0, executed.stdout + executed.stderr
        assert executed.stdout.splitlines()[-1] == "Successfully started partition reassignment for moves-0"

        async def completed() -> bool:
            verify = await trio.to_thread.run_sync(_cli_on, bs, "--verify",
                                                   "--reassignment-json-file", plan)
            return "Reassignment of partition moves-0 is completed." in verify.stdout.splitlines()
        await wait_for(completed, "moves-0 reassigned to [b, c]", timeout_s=120)

        async def settled() -> bool:
            state = await trio.to_thread.run_sync(_partition, bs, "moves")
            return state is not None and state[1] == [b, c] and state[2] == sorted([b, c]) and state[0] in (b, c)
        await wait_for(settled, "Metadata shows moves-0 on [b, c] with its ISR", timeout_s=60)
        listed = await trio.to_thread.run_sync(_cli_on, bs, "--list")
        assert listed.stdout.strip() == "No partition reassignments found."

        # every acknowledged record is on the new replicas; the old one's log is deleted
        assert sorted(await trio.to_thread.run_sync(_read_all_kafka_python, bs, "moves", N)) == sorted(values)
        old_dir = brokers[0].dir / "logs" / "moves-0"

        async def deleted() -> bool:
            return not old_dir.exists()
        await wait_for(deleted, "the removed replica's log deleted", timeout_s=60)
        assert any(x.events("alter_partition_completed_reassignment") for x in _controllers)

        if not HAVE_KAFKA:
            return
        # Kafka 3.9's kafka-reassign-partitions.sh: [b, c] -> [a, b] against the same brokers
        back = _plan(tmp_path, "back.json", {("moves", 0): [a, b]})
        execute = await trio.to_thread.run_sync(lambda: _kafka_tool(bs, "--execute", "--reassignment-json-file", back))
        assert execute.returncode == 0, execute.stdout + execute.stderr[-2000:]
        assert execute.stdout.splitlines()[-1] == "Successfully started partition reassignment for moves-0"

        async def kafka_completed() -> bool:
            verify = await trio.to_thread.run_sync(lambda: _kafka_tool(bs, "--verify", "--reassignment-json-file",
                                                                       back))
            return verify.returncode == 0 and \
                "Reassignment of partition moves-0 is completed." in verify.stdout.splitlines()
        await wait_for(kafka_completed, "Kafka's tool verifies moves-0 on [a, b]", timeout_s=180)
        listed_by_kafka = await trio.to_thread.run_sync(lambda: _kafka_tool(bs, "--list"))
        assert (listed_by_kafka.returncode, listed_by_kafka.stdout) == (0, listed.stdout)
        assert sorted(await trio.to_thread.run_sync(_read_all_kafka_python, bs, "moves", N)) == sorted(values)


def _describe_broker(bootstrap: str, broker: str) -> dict[str, tuple[str | None, str]]:
    """{name: (value, source name)} of a BROKER resource through confluent-kafka's admin."""
    from confluent_kafka.admin import ConfigResource, ConfigSource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.BROKER, broker)
    entries = admin.describe_configs([resource], request_timeout=60)[resource].result(timeout=90)
    return {name: (e.value, ConfigSource(int(e.source)).name) for name, e in entries.items()}


def _alter_broker(bootstrap: str, broker: str, key: str, value: str | None) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    resource = ConfigResource(ConfigResource.Type.BROKER, broker,
                              incremental_configs=[ConfigEntry(key, value, incremental_operation=op)])
    admin.incremental_alter_configs([resource], request_timeout=60)[resource].result(timeout=90)


def _configs_cli(*args: str) -> tuple[int, str]:
    """``kafkalike configs *args`` in this process: (exit code, printed lines without log lines)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["configs", *args])
    return code, "".join(line for line in out.getvalue().splitlines(keepends=True) if "Quota configs" in line
                         or "Completed" in line or "SCRAM credential configs" in line)


async def test_dynamic_broker_configs_and_client_quotas_change_a_running_kraft_broker(tmp_path: Path) -> None:
    with kraft_cluster(tmp_path, brokers=1, controllers=1) as (_controllers, brokers):
        broker = brokers[0]
        await broker.started()
        bs, me = broker.bootstrap, str(broker.node_id)
        # the cluster-wide default with kafkalike configs (librdkafka refuses the empty BROKER name)
        assert await trio.to_thread.run_sync(cli_main, [
            "configs", "--bootstrap-server", bs, "--alter", "--entity-type", "brokers", "--entity-default",
            "--add-config", "log.retention.ms=3600000"]) == 0
        await trio.to_thread.run_sync(_alter_broker, bs, me, "log.segment.bytes", "104857600")

        async def described() -> bool:
            entries = await trio.to_thread.run_sync(_describe_broker, bs, me)
            return entries["log.retention.ms"] == ("3600000", "DYNAMIC_DEFAULT_BROKER_CONFIG") and \
                entries["log.segment.bytes"] == ("104857600", "DYNAMIC_BROKER_CONFIG")
        await wait_for(described, "the broker describes its dynamic configs", timeout_s=60)
        applied = broker.events("dynamic_config_applied")
        assert applied and applied[-1]["broker"] == {"log.segment.bytes": "104857600"} and \
            applied[-1]["default"] == {"log.retention.ms": "3600000"}

        await trio.to_thread.run_sync(_alter_broker, bs, me, "log.segment.bytes", None)

        async def removed() -> bool:
            last = broker.events("dynamic_config_applied")[-1]
            return last["broker"] == {} and last["default"] == {"log.retention.ms": "3600000"}
        await wait_for(removed, "the broker's own config deleted", timeout_s=60)

        # client quotas: AlterClientQuotas forwarded, ClientQuotaRecords, DescribeClientQuotas from the image
        code, printed = await trio.to_thread.run_sync(lambda: _configs_cli(
            "--bootstrap-server", bs, "--alter", "--entity-type", "users", "--entity-name", "alice",
            "--add-config", "producer_byte_rate=1048576,request_percentage=12.5"))
        assert code == 0, printed
        assert printed == "Completed updating config for user alice.\n"

        async def quota_described() -> bool:
            code, printed = await trio.to_thread.run_sync(lambda: _configs_cli(
                "--bootstrap-server", bs, "--describe", "--entity-type", "users", "--entity-name", "alice"))
            return code == 0 and printed.startswith("Quota configs for user-principal 'alice' are "
                                                    "producer_byte_rate=1048576.0, request_percentage=12.5\n")
        await wait_for(quota_described, "DescribeClientQuotas shows alice's quotas", timeout_s=60)
        assert any(c.events("client_quota_replayed") for c in _controllers)
        assert broker.events("client_quotas_published")
        if HAVE_KAFKA:
            configs = ["java", "-cp", f"{LIB}/*", "kafka.admin.ConfigCommand", "--bootstrap-server", bs]
            kafka_described = await trio.to_thread.run_sync(lambda: subprocess.run(
                [*configs, "--describe", "--entity-type", "users", "--entity-name", "alice"],
                capture_output=True, text=True, timeout=180))
            assert kafka_described.stdout == ("Quota configs for user-principal 'alice' are "
                                              "producer_byte_rate=1048576.0, request_percentage=12.5\n"), \
                kafka_described.stdout + kafka_described.stderr[-2000:]

        # SCRAM credentials: AlterUserScramCredentials forwarded, UserScramCredentialRecords,
        # DescribeUserScramCredentials from the broker's image
        code, printed = await trio.to_thread.run_sync(lambda: _configs_cli(
            "--bootstrap-server", bs, "--alter", "--entity-type", "users", "--entity-name", "alice",
            "--add-config", "SCRAM-SHA-256=[iterations=8192,password=alice-secret]"))
        assert (code, printed) == (0, "Completed updating config for user alice.\n")

        async def scram_described() -> bool:
            code, printed = await trio.to_thread.run_sync(lambda: _configs_cli(
                "--bootstrap-server", bs, "--describe", "--entity-type", "users", "--entity-name", "alice"))
            return code == 0 and "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=" \
                                 "iterations=8192\n" in printed
        await wait_for(scram_described, "DescribeUserScramCredentials shows alice's credential", timeout_s=60)
        assert any(c.events("scram_credential_replayed") for c in _controllers)

        if not HAVE_KAFKA:
            return
        configs = ["java", "-cp", f"{LIB}/*", "kafka.admin.ConfigCommand", "--bootstrap-server", bs]
        out = await trio.to_thread.run_sync(lambda: subprocess.run(
            [*configs, "--describe", "--entity-type", "brokers", "--entity-default"],
            capture_output=True, text=True, timeout=180))
        assert out.stdout == (
            "Default configs for brokers in the cluster are:\n"
            "  log.retention.ms=3600000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:"
            "log.retention.ms=3600000, DEFAULT_CONFIG:log.retention.hours=168}\n"), out.stdout + out.stderr[-2000:]


async def test_a_scram_user_created_through_the_controller_authenticates_on_a_kraft_broker(tmp_path: Path) -> None:
    """A KRaft broker with PLAINTEXT and SASL_PLAINTEXT (SCRAM-SHA-256) listeners: alice's
    credential, created with AlterUserScramCredentials over PLAINTEXT (forwarded to the controller,
    a UserScramCredentialRecord), lets confluent-kafka authenticate on the SASL listener and produce;
    a wrong password is refused."""
    from confluent_kafka import Producer

    from tests.kraft.kraft_broker_helpers import BrokerNode
    from tests.kraft.kraft_helpers import CLUSTER_ID, controller_quorum
    from tests.raft.raft_helpers import free_ports

    with controller_quorum(tmp_path, 1) as voters:
        port, sasl_port = free_ports(2)
        node = BrokerNode(101, port, tmp_path / "broker101", voters[0].voters, [], extra=(
            f"listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}\n"
            "sasl.enabled.mechanisms=SCRAM-SHA-256\n"))
        try:
            node.dir.mkdir(parents=True, exist_ok=True)
            node.write_config()
            assert cli_main(["storage", "format", "-t", CLUSTER_ID, "-c", str(node.config)]) == 0
            node.start()
            await node.started()
            bs = node.bootstrap
            code, printed = await trio.to_thread.run_sync(lambda: _configs_cli(
                "--bootstrap-server", bs, "--alter", "--entity-type", "users", "--entity-name", "alice",
                "--add-config", "SCRAM-SHA-256=[iterations=4096,password=alice-secret]"))
            assert (code, printed) == (0, "Completed updating config for user alice.\n")

            def produce(password: str) -> list[Any]:
                producer = Producer({"bootstrap.servers": f"127.0.0.1:{sasl_port}", "security.protocol": "SASL_PLAINTEXT",
                                     "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "alice",
                                     "sasl.password": password, "message.timeout.ms": 20000,
                                     "allow.auto.create.topics": True})
                errors: list[Any] = []
                producer.produce("scrammed", value=b"v", on_delivery=lambda e, m: errors.append(e))
                producer.flush(40)
                return errors

            async def authenticated() -> bool:
                return await trio.to_thread.run_sync(produce, "alice-secret") == [None]
            await wait_for(authenticated, "alice produces over SASL/SCRAM", timeout_s=120)
            refused = await trio.to_thread.run_sync(produce, "wrong")
            assert refused and refused[0] is not None
            assert node.events("sasl_authentication_failed")
        finally:
            node.stop()
