"""``kafkalike configs`` for client quotas (issue 19; Kafka's ConfigCommand for users / clients):
Java's Double.toString for the describe lines, ConfigCommand's entity rules, and on a real
broker process --alter / --describe over the wire (AlterClientQuotas / DescribeClientQuotas) and
through ZooKeeper, with Kafka's output lines and znodes. With KAFKALIKE_KAFKA_LIB: Kafka 3.9's
own kafka-configs.sh describes what ours wrote with the same lines."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkalike.cli.configs import CommandError, Entity, java_double, parse_add_config, parse_quota_config
from tests.broker.listener_helpers import broker_process, free_ports, plaintext_broker_properties, read_zk_json

KAFKA_LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and KAFKA_LIB.is_dir() and any(KAFKA_LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)


def test_java_double_writes_quota_values_as_kafka_configs_sh_prints_them() -> None:
    assert [java_double(v) for v in (1024, 0.5, 50, 0.001, 0.0001, 10485760, 1e7, 12345678.9, 0)] == [
        "1024.0", "0.5", "50.0", "0.001", "1.0E-4", "1.048576E7", "1.0E7", "1.23456789E7", "0.0"]


def test_entity_rules_are_config_commands() -> None:
    def entity(*argv: str) -> Entity:
        p = argparse.ArgumentParser()
        p.add_argument("--entity-type", action="append")
        p.add_argument("--entity-name", action="append", default=[])
        p.add_argument("--entity-default", action="store_true")
        return Entity.from_args(p.parse_args(list(argv)))

    assert entity("--entity-type", "clients", "--entity-name", "c1") == Entity(("clients",), ("c1",))
    # a type without a name: the default entity with --entity-default, else every entity (describe)
    assert entity("--entity-type", "users", "--entity-name", "alice", "--entity-type", "clients",
                  "--entity-default") == Entity(("users", "clients"), ("alice", ""))
    assert entity("--entity-type", "clients") == Entity(("clients",), (None,))
    with pytest.raises(CommandError, match="More --entity-name"):
        entity("--entity-type", "users", "--entity-name", "a", "--entity-name", "b")
    assert parse_quota_config("producer_byte_rate=1024,SCRAM-SHA-256=[password=x],request_percentage=12.5") == {
        "producer_byte_rate": 1024.0, "request_percentage": 12.5}
    assert list(parse_add_config("producer_byte_rate=1024,SCRAM-SHA-256=[password=x]")) != []  # SCRAM part only
    with pytest.raises(CommandError, match="a number"):
        parse_quota_config("consumer_byte_rate=fast")


# ---------------------------------------------------------------------------- a real broker
@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[tuple[int, str]]:
    """One broker process: (its PLAINTEXT port, its zookeeper.connect with chroot)."""
    base = tmp_path_factory.mktemp("configs-quota")
    (port,) = free_ports(1)
    chroot = f"{zk_connect}/kafkalike-cq-{uuid.uuid4().hex[:10]}"
    with broker_process(base, plaintext_broker_properties(base, chroot, port), port):
        yield port, chroot


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``kafkalike configs ARGS`` run in this process (the CLI's own main; a subprocess per call
    costs seconds of interpreter start-up on a loaded machine), its exit code and output."""
    import contextlib
    import io

    from kafkalike.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["configs", *args])
    return subprocess.CompletedProcess(["kafkalike", "configs", *args], code, out.getvalue(), err.getvalue())


def test_configs_alters_and_describes_client_and_user_quotas_over_the_wire(broker: tuple[int, str]) -> None:
    port, chroot = broker
    wire = ["--bootstrap-server", f"127.0.0.1:{port}"]
    done = _cli(*wire, "--alter", "--entity-type", "clients", "--entity-name", "c1",
                "--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152,request_percentage=50")
    assert (done.returncode, done.stdout) == (0, "Completed updating config for client c1.\n"), done.stderr
    assert read_zk_json(chroot, "/config/clients/c1") == {"version": 1, "config": {
        "producer_byte_rate": "1048576", "consumer_byte_rate": "2097152", "request_percentage": "50"}}
    done = _cli(*wire, "--alter", "--entity-type", "users", "--entity-name", "alice", "--entity-type", "clients",
                "--entity-default", "--add-config", "producer_byte_rate=10485760")
    assert done.stdout == "Completed updating config for user alice.\n", done.stderr
    assert read_zk_json(chroot, "/config/users/alice/clients/<default>")["config"] == {"producer_byte_rate": "10485760"}
    done = _cli(*wire, "--alter", "--entity-type", "users", "--entity-default", "--add-config", "request_percentage=0.0001")
    assert done.stdout == "Completed updating default config for users in the cluster.\n", done.stderr

    described = _cli(*wire, "--describe", "--entity-type", "clients", "--entity-name", "c1")
    assert described.stdout == ("Quota configs for client-id 'c1' are consumer_byte_rate=2097152.0, "
                                "producer_byte_rate=1048576.0, request_percentage=50.0\n"), described.stderr
    described = _cli(*wire, "--describe", "--entity-type", "users", "--entity-name", "alice",
                     "--entity-type", "clients", "--entity-default")
    assert described.stdout == ("Quota configs for user-principal 'alice', the default client-id are "
                                "producer_byte_rate=1.048576E7\n"), described.stderr
    described = _cli(*wire, "--describe", "--entity-type", "users", "--entity-default")
    assert described.stdout == "Quota configs for the default user-principal are request_percentage=1.0E-4\n"

    done = _cli(*wire, "--alter", "--entity-type", "clients", "--entity-name", "c1",
                "--delete-config", "request_percentage,consumer_byte_rate")
    assert done.returncode == 0, done.stderr
    assert read_zk_json(chroot, "/config/clients/c1")["config"] == {"producer_byte_rate": "1048576"}
    bad = _cli(*wire, "--alter", "--entity-type", "clients", "--entity-name", "c1", "--add-config", "fast=1")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: Invalid config(s): fast")


def test_configs_through_zookeeper_writes_and_reads_quota_znodes(broker: tuple[int, str]) -> None:
    _, chroot = broker
    zk = ["--zookeeper", chroot]
    done = _cli(*zk, "--alter", "--entity-type", "clients", "--entity-name", "zk-client",
                "--add-config", "consumer_byte_rate=4096")
    assert done.stdout == "Completed updating config for client zk-client.\n", done.stderr
    assert read_zk_json(chroot, "/config/clients/zk-client") == {"version": 1, "config": {"consumer_byte_rate": "4096"}}
    described = _cli(*zk, "--describe", "--entity-type", "clients", "--entity-name", "zk-client")
    assert described.stdout == "Configs for client-id 'zk-client' are consumer_byte_rate=4096\n", described.stderr


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB set to Kafka 3.9's jars and java")
def test_kafkas_configs_sh_describes_what_ours_wrote_in_the_same_words(broker: tuple[int, str]) -> None:
    port, _ = broker
    wire = ["--bootstrap-server", f"127.0.0.1:{port}"]
    done = _cli(*wire, "--alter", "--entity-type", "users", "--entity-name", "judge", "--entity-type", "clients",
                "--entity-name", "judged", "--add-config", "request_percentage=25,producer_byte_rate=20000000")
    assert done.returncode == 0, done.stderr
    describe = ["--describe", "--entity-type", "users", "--entity-name", "judge", "--entity-type", "clients",
                "--entity-name", "judged"]
    java = subprocess.run(["java", "-Xmx256m", "-cp", f"{KAFKA_LIB}/*", "kafka.admin.ConfigCommand", *wire, *describe],
                          capture_output=True, text=True, timeout=180)
    assert java.returncode == 0, java.stderr[-2000:]
    ours = _cli(*wire, *describe)
    assert ours.stdout.splitlines() == [ln for ln in java.stdout.splitlines() if ln.startswith("Quota configs")]
    assert "producer_byte_rate=2.0E7" in ours.stdout
