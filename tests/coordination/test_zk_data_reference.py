"""zk_data against a LIVE Apache Kafka 3.9 broker (opt-in: KAFKALIKE_REFERENCE=1): the broker
runs in ZooKeeper mode under a chroot of the session's kafkalike ensemble; every znode it
writes must decode with zk_data and re-encode to the same bytes. (The default run checks the
same against znodes captured from such a run: test_zk_data.py, KAFKA_392.)"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import trio

from kafkalike.bench import reference_kafka as rk
from kafkalike.cluster.zk_ensemble import find_free_base_port
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd

pytestmark = pytest.mark.skipif(
    os.environ.get("KAFKALIKE_REFERENCE") != "1",
    reason="needs Kafka 3.9 jars (Maven) and a broker JVM: set KAFKALIKE_REFERENCE=1",
)


@pytest.fixture
def reference_broker(zk_connect: str, tmp_path: Path) -> Iterator[tuple[rk.ReferenceKafka, str]]:
    """One Kafka 3.9 broker in ZooKeeper mode under a fresh chroot of the kafkalike ensemble."""
    rk.fetch()
    chroot = f"/ref-{uuid.uuid4().hex[:8]}"
    cluster = rk.ReferenceKafka(
        "zk", tmp_path / "kafka", brokers=1, port=find_free_base_port(["127.0.1.1"]),
        zookeeper=zk_connect, chroot=chroot,
    )
    cluster.up(fresh=True)
    try:
        yield cluster, zk_connect + chroot
    finally:
        cluster.down()


async def test_every_znode_a_real_kafka_broker_writes_round_trips(reference_broker: tuple[rk.ReferenceKafka, str]) -> None:
    """Registration, cluster id, controller, topic, partition states, configs and notifications
    written by Kafka 3.9 decode with zk_data and re-encode to the same bytes."""
    cluster, connect = reference_broker
    tools = [
        ("org.apache.kafka.tools.TopicCommand", [
            "--bootstrap-server", cluster.bootstrap, "--create", "--topic", "orders",
            "--partitions", "3", "--replication-factor", "1", "--config", "retention.ms=60000"]),
        ("kafka.admin.ConfigCommand", [
            "--bootstrap-server", cluster.bootstrap, "--alter", "--entity-type", "topics",
            "--entity-name", "orders", "--add-config", "segment.bytes=1048576"]),
    ]
    for main_class, args in tools:
        await trio.to_thread.run_sync(lambda: cluster.run_tool(main_class, args))
    async with ZooKeeperClient(connect, session_timeout_ms=6000, sync_reads=True) as zk:
        checked = []

        async def same(path: str, decode, encode) -> None:  # type: ignore[no-untyped-def]
            data, stat = await zk.get(path)
            value = decode(data)
            assert encode(value) == data, f"{path}: ours {encode(value)!r} != Kafka's {data!r}"
            checked.append(path)

        for bid in await zk.get_children("/brokers/ids"):
            await same(f"/brokers/ids/{bid}", lambda d, b=int(bid): zd.BrokerRegistration.from_json(b, d),
                       lambda v: v.to_json())
        await same("/cluster/id", zd.ClusterIdZNode.from_json, lambda v: v.to_json())
        await same("/controller", zd.ControllerZNode.from_json, lambda v: v.to_json())
        await same("/controller_epoch", zd.decode_controller_epoch, zd.encode_controller_epoch)
        await same("/brokers/topics/orders", lambda d: zd.TopicAssignment.from_json("orders", d), lambda v: v.to_json())
        for p in range(3):
            await same(zd.partition_state_path("orders", p), zd.LeaderIsrAndControllerEpoch.from_json, lambda v: v.to_json())
        await same("/config/topics/orders", zd.ConfigEntity.from_json, lambda v: v.to_json())
        for name in await zk.get_children("/config/changes"):
            await same(f"/config/changes/{name}", zd.ConfigChangeNotification.from_json, lambda v: v.to_json())
        await same("/feature", zd.FeatureZNode.from_json, lambda v: v.to_json())
        for path in zd.PERSISTENT_PATHS:
            assert await zk.exists(path) is not None, f"Kafka created {path}"
    assert len(checked) >= 10
