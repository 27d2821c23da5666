"""kafkalike's Kafka-style CLI tools against real broker processes: formats as Kafka prints them."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid

from kafkalike.cluster.local_cluster import LocalCluster
from tests.cli_helpers import run_main


def kafkalike(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def test_topics_create_describe_list_alter_delete(kafka_cluster: LocalCluster) -> None:
    """Each action prints what kafka-topics.sh prints; errors are one line with exit code 1.
    The tool runs in this process (its main: a dozen commands without a Python start-up each);
    the console tools below run as processes."""
    b = kafka_cluster.bootstrap_servers
    topic = f"cli-{uuid.uuid4().hex[:8]}"

    def topics(*args: str) -> tuple[int, str, str]:
        return run_main("topics", "--bootstrap-server", b, *args)

    code, out, err = topics("--create", "--topic", topic, "--partitions", "3", "--replication-factor", "3",
                            "--config", "retention.ms=3600000")
    assert (code, out) == (0, f"Created topic {topic}.\n"), err

    code, _, err = topics("--create", "--topic", topic, "--partitions", "1")
    assert code == 1
    assert err.strip() == f"Error while executing topic command : Topic '{topic}' already exists."

    deadline = time.monotonic() + 30
    while True:
        lines = topics("--describe", "--topic", topic)[1].splitlines()
        if (len(lines) == 4 and all("Leader: none" not in ln for ln in lines)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert re.fullmatch(rf"Topic: {topic}\tTopicId: [A-Za-z0-9_-]{{22}}\tPartitionCount: 3\t"
                        r"ReplicationFactor: 3\tConfigs: retention\.ms=3600000", lines[0]), lines[0]
    for p, line in enumerate(lines[1:]):
        m = re.fullmatch(rf"\tTopic: {topic}\tPartition: {p}\tLeader: (\d)\tReplicas: ([\d,]+)\tIsr: ([\d,]+)", line)
        assert m, line
        replicas = m.group(2).split(",")
        assert sorted(replicas) == ["1", "2", "3"] and m.group(1) == replicas[0]

    assert topic in topics("--list")[1].splitlines()

    assert topics("--alter", "--topic", topic, "--partitions", "5")[0] == 0
    deadline = time.monotonic() + 30
    while "PartitionCount: 5" not in topics("--describe", "--topic", topic)[1]:
        assert time.monotonic() < deadline, "partition count never reached 5"
        time.sleep(0.5)

    code, _, err = topics("--describe", "--topic", "no-such-topic")
    assert code == 1
    assert err.strip() == "Error while executing topic command : Topic 'no-such-topic' does not exist as expected"

    assert topics("--delete", "--topic", topic)[0] == 0
    deadline = time.monotonic() + 30
    while topic in topics("--list")[1].splitlines():
        assert time.monotonic() < deadline, "topic still listed 30 s after --delete"
        time.sleep(0.5)


def test_console_producer_and_consumer_round_trip_keys(kafka_cluster: LocalCluster) -> None:
    """Lines typed with parse.key come back with print.key/print.partition/print.offset."""
    b = kafka_cluster.bootstrap_servers
    topic = f"console-{uuid.uuid4().hex[:8]}"
    assert kafkalike("topics", "--bootstrap-server", b, "--create", "--topic", topic,
                     "--partitions", "1", "--replication-factor", "1").returncode == 0
    lines = [f"user{i % 3}:event {i}" for i in range(20)]
    out = kafkalike("console-producer", "--bootstrap-server", b, "--topic", topic,
                    "--property", "parse.key=true", "--property", "key.separator=:",
                    "--producer-property", "acks=all", stdin="\n".join(lines) + "\n")
    assert out.returncode == 0, out.stderr
    got = kafkalike("console-consumer", "--bootstrap-server", b, "--topic", topic, "--from-beginning",
                    "--max-messages", "20", "--property", "print.key=true", "--property", "print.offset=true",
                    "--property", "print.partition=true")
    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines() == [f"Partition:0\tOffset:{i}\tuser{i % 3}\tevent {i}" for i in range(20)]
    assert got.stderr.strip().endswith("Processed a total of 20 messages")


def test_tools_say_one_line_when_no_broker_answers() -> None:
    """An unreachable bootstrap server is one line on stderr and a non-zero exit."""
    out = kafkalike("topics", "--bootstrap-server", "127.0.0.1:1", "--list", timeout=120)
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "127.0.0.1:1" in out.stderr
