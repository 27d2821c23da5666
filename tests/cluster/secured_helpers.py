"""Helpers for the secured-cluster tests (tests/cluster/test_cluster_up_security.py,
test_cluster_up_ssl.py, test_compose_secure.py): a kafkalike CLI command run in this process,
``kafkalike cluster up --security ...`` as a process on free ports, and the admin's
create / produce / consume round trip with confluent-kafka."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port
from tests.cli_helpers import run_main

__all__ = ["BROKER_ZNODE_ACL", "add_scram_reader", "admin_round_trip", "cluster_up_secured", "consume_values",
           "run_main"]

#: what ``kafkalike zk getacl`` prints for a znode the brokers own with zookeeper.set.acl=true
BROKER_ZNODE_ACL = "'sasl,'kafka\n: cdrwa\n'world,'anyone\n: r\n"


def cluster_up_secured(base: Path, security: str) -> tuple[str, LocalCluster]:
    """``kafkalike cluster up --dir base --brokers 1 --zk-nodes 1 --security <security>`` on free
    ports, as a process; asserts it exits 0 and returns (its stdout, the cluster it recorded).
    The caller stops it (``LocalCluster.load(base).stop()``), pass or fail."""
    port = find_free_base_port(["127.0.0.1"], per_host_ports=2, low=42000, high=44000)
    zk_port = find_free_base_port(["127.0.0.1"], per_host_ports=1, low=44000, high=46000)
    up = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "cluster", "up", "--dir", str(base),
                         "--brokers", "1", "--zk-nodes", "1", "--base-port", str(port), "--zk-base-port",
                         str(zk_port), "--security", security], capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    return up.stdout, LocalCluster.load(base)


def consume_values(conf: dict[str, Any], topic: str, group: str, count: int, timeout: float) -> list[bytes]:
    """Subscribe ``group`` to ``topic`` from the earliest offset and read until ``count`` values
    (or ``timeout`` s); the values read. ``conf``: librdkafka settings (bootstrap, security)."""
    from confluent_kafka import Consumer

    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        read: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(read) < count and time.monotonic() < deadline:
            read += [bytes(m.value() or b"") for m in c.consume(num_messages=50, timeout=1.0) if m.error() is None]
        return read
    finally:
        c.close()


def admin_round_trip(conf: dict[str, Any], topic: str, partitions: int, replication_factor: int,
                     values: list[bytes], timeout: float) -> None:
    """As the admin (``conf``): create ``topic``, produce ``values`` and read them all back in
    group ``admin-group``; assertion errors say which step failed."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, partitions, replication_factor)])[topic].result(timeout)
    p = Producer(conf)
    for value in values:
        p.produce(topic, value)
    assert p.flush(timeout) == 0
    assert sorted(consume_values(conf, topic, "admin-group", len(values), timeout)) == sorted(values)


def add_scram_reader(wire: list[str], user: str, password: str, topic: str, group: str) -> None:
    """As the admin (``wire``: ``--bootstrap-server B --command-config admin.properties``): make
    SCRAM-SHA-512 user ``user`` and allow him Read on ``topic`` and group ``group``, with
    ``kafkalike configs`` / ``kafkalike acls`` as the README's commands do."""
    code, out, err = run_main("configs", *wire, "--alter", "--entity-type", "users", "--entity-name", user,
                              "--add-config", f"SCRAM-SHA-512=[password={password}]")
    assert (code, out) == (0, f"Completed updating config for user {user}.\n"), err
    code, _, err = run_main("acls", *wire, "--add", "--allow-principal", f"User:{user}", "--operation", "Read",
                            "--topic", topic, "--group", group)
    assert code == 0, err
