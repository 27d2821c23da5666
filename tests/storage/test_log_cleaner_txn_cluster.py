"""The log cleaner on a real broker process with confluent-kafka's transactional producer
(issue 18): on a compacted topic, after the broker's cleaner ran, the aborted records are gone
and read_committed and read_uncommitted consumers read the same committed data."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from kafkalike.cluster.local_cluster import LocalCluster
from tests.fixtures_cluster import _new_cluster

OVERRIDES = {"transaction.state.log.num.partitions": "2", "transaction.state.log.replication.factor": "1",
             "transaction.state.log.min.isr": "1", "offsets.topic.num.partitions": "2",
             "offsets.topic.replication.factor": "1", "log.cleaner.backoff.ms": "200"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    c = _new_cluster(tmp_path_factory.mktemp("txn-cleaner"), zk_connect, 1, OVERRIDES)
    try:
        yield c
    finally:
        c.stop()


def _read(cluster: LocalCluster, topic: str, isolation: str, expected: int) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) pairs read from offset 0 until at least ``expected`` arrived and 1 s passed
    without more (bounded by 30 s)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "isolation.level": isolation, "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 30
        quiet_until = None
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append((m.key(), m.value()))
                quiet_until = None
            elif len(got) >= expected:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() >= quiet_until:
                    break
        return got
    finally:
        c.close()


def test_cleaner_removes_aborted_data_and_both_isolation_levels_read_the_committed_data(cluster: LocalCluster) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"txcl-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1, 1, config={
        "cleanup.policy": "compact", "segment.ms": "300", "min.cleanable.dirty.ratio": "0.01",
        "min.compaction.lag.ms": "0"})])[topic].result(30)
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": f"tx-{topic}"})
    p.init_transactions(30)
    for name, keys, commit in (("c1", range(5), True), ("a", list(range(5)) + [9], False), ("c2", range(3, 7), True)):
        p.begin_transaction()
        for k in keys:
            p.produce(topic, key=b"k%d" % k, value=b"%s-%d" % (name.encode(), k), partition=0)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    time.sleep(0.5)  # older than segment.ms: the next append rolls the segment holding the transactions
    plain = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    plain.produce(topic, key=b"roll", value=b"roll", partition=0)
    plain.flush(30)
    expected = {b"k%d" % k: b"c1-%d" % k for k in range(3)} | {b"k%d" % k: b"c2-%d" % k for k in range(3, 7)}
    expected[b"roll"] = b"roll"
    uncommitted: list[tuple[bytes | None, bytes | None]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        uncommitted = _read(cluster, topic, "read_uncommitted", len(expected))
        if dict(uncommitted) == expected and len(uncommitted) == len(expected):
            break
        time.sleep(0.5)
    assert not [v for _, v in uncommitted if v and v.startswith(b"a-")], "aborted records still in the log"
    assert dict(uncommitted) == expected and len(uncommitted) == len(expected)
    assert _read(cluster, topic, "read_committed", len(expected)) == uncommitted
