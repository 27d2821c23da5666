"""pytest fixtures for REAL kafkalike broker processes, registered in tests/conftest.py.

make_cluster   per test: a factory ``make_cluster(brokers=3, overrides={...})`` returning a
               started LocalCluster whose brokers run as separate OS processes on 127.0.0.<i>
               at one free port, against the session's 3-node ZooKeeper ensemble in a fresh
               chroot. Every cluster it made is stopped (by pid) after the test, pass or fail.
kafka_cluster  module: one started 3-broker cluster shared by a test module (use unique topic
               names per test).
"""

from __future__ import annotations

import atexit
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port

MakeCluster = Callable[..., LocalCluster]


def _new_cluster(base: Path, zk_connect: str, brokers: int, overrides: dict[str, str] | None) -> LocalCluster:
    hosts = [f"127.0.0.{i}" for i in range(1, brokers + 1)]
    port = find_free_base_port(hosts, low=30000, high=32000)
    cluster = LocalCluster(base, brokers=brokers, base_port=port, zookeeper_connect=zk_connect,
                           chroot=f"kafkalike-{uuid.uuid4().hex[:10]}", overrides=dict(overrides or {}))
    atexit.register(cluster.stop)
    try:
        cluster.start(timeout=60)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture
def make_cluster(tmp_path: Path, zk_connect: str) -> Iterator[MakeCluster]:
    """Factory for started clusters of real broker processes; all stopped after the test."""
    made: list[LocalCluster] = []

    def make(brokers: int = 3, overrides: dict[str, str] | None = None) -> LocalCluster:
        cluster = _new_cluster(tmp_path / f"cluster{len(made)}", zk_connect, brokers, overrides)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    """A started 3-broker cluster shared by one test module."""
    cluster = _new_cluster(tmp_path_factory.mktemp("kafka"), zk_connect, 3, None)
    try:
        yield cluster
    finally:
        cluster.stop()


def create_topic(bootstrap: str, name: str, partitions: int = 1, replication_factor: int = 3, *,
                 configs: dict[str, str] | None = None, request_timeout_ms: int = 30_000,
                 leaders_within: float | None = None) -> None:
    """Create topic ``name`` on the cluster at ``bootstrap`` with kafka-python's CreateTopics
    (kafka-python raises on an error code, e.g. TopicAlreadyExistsError). With
    ``leaders_within`` (seconds), also wait until Metadata (librdkafka) shows that many
    partitions, each with a leader; AssertionError when it does not in time."""
    import time

    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms)
    try:
        admin.create_topics([NewTopic(name, partitions, replication_factor, topic_configs=configs or {})])
    finally:
        admin.close()
    if leaders_within is None:
        return
    from confluent_kafka.admin import AdminClient

    metadata_admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + leaders_within
    while time.monotonic() < deadline:
        md = metadata_admin.list_topics(name, timeout=10).topics.get(name)
        if md is not None and md.error is None and len(md.partitions) == partitions and \
                all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"topic {name} has no leaders after {leaders_within:g} s")


def assert_no_process_runs_from(path: Path) -> None:
    """No process on this machine has ``path`` in its command line (/proc/<pid>/cmdline): what
    a test that started processes under ``path`` checks after they should all be stopped."""
    import os

    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            assert str(path) not in cmd, f"process {pid} left running: {cmd[:200]}"
