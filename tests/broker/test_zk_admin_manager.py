"""Admin path against real ZooKeeper: CreateTopics / DeleteTopics / CreatePartitions written as
Kafka's AdminZkClient does, DescribeConfigs sources, AlterConfigs and IncrementalAlterConfigs
with change notifications applied to local logs, and auto-creation on Metadata."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from kafkalike.coordination import ZooKeeperClient
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import (connect, has_controller, leader_and_isr, running_broker,
                                         zk_exists, zk_json)


async def _create(conn, name: str, partitions: int = 3, rf: int = 1, timeout_ms: int = 20000,
                  validate_only: bool = False, configs: dict[str, str] | None = None,
                  assignments: dict[int, list[int]] | None = None):
    resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=timeout_ms, validate_only=validate_only,
                           topics=[{"name": name, "num_partitions": partitions, "replication_factor": rf,
                                    "assignments": [{"partition_index": p, "broker_ids": b}
                                                    for p, b in (assignments or {}).items()],
                                    "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()]}])
    return resp.topics[0]


async def test_create_topics_writes_kafka_assignment(tmp_path: Path, zk_chroot_connect: str,
                                                     zk_client: ZooKeeperClient) -> None:
    """With three brokers, a 6-partition RF-3 topic lands in /brokers/topics/<t> as Kafka's
    JSON with distinct replicas per partition and leaders spread evenly; configs go to
    /config/topics/<t>."""
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=i))
                   for i in (1, 2, 3)]
        conn = await stack.enter_async_context(connect(servers[0]))
        r = await _create(conn, "placed", partitions=6, rf=3, configs={"retention.ms": "1000"})
        assert (r.error_code, r.num_partitions, r.replication_factor) == (0, 6, 3)
        assert r.topic_id is not None and r.topic_id.int != 0
        assert {c.name: c.value for c in r.configs}["retention.ms"] == "1000"
        doc = await zk_json(zk_client, "/brokers/topics/placed")
        assert doc["version"] == 3 and len(doc["topic_id"]) == 22
        assignment = {int(p): r for p, r in doc["partitions"].items()}
        assert sorted(assignment) == list(range(6))
        assert all(len(set(r)) == 3 and set(r) <= {1, 2, 3} for r in assignment.values())
        leaders = [r[0] for r in assignment.values()]
        assert sorted(leaders.count(b) for b in (1, 2, 3)) == [2, 2, 2]
        cfg = await zk_json(zk_client, "/config/topics/placed")
        assert cfg == {"version": 1, "config": {"retention.ms": "1000"}}
        manual = await _create(conn, "manual", partitions=-1, rf=-1, assignments={0: [3, 1], 1: [1, 2]})
        assert manual.error_code == 0, manual
        doc = await zk_json(zk_client, "/brokers/topics/manual")
        assert doc["partitions"] == {"0": [3, 1], "1": [1, 2]}


async def test_create_topics_errors_and_validate_only(tmp_path: Path, zk_chroot_connect: str,
                                                      zk_client: ZooKeeperClient) -> None:
    """Kafka's error codes for bad requests; validate_only writes nothing."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        assert (await _create(conn, "dry", validate_only=True)).error_code == 0
        assert not await zk_exists(zk_client, "/brokers/topics/dry")
        assert (await _create(conn, "t")).error_code == 0
        assert (await _create(conn, "t")).error_code == ErrorCode.topic_already_exists
        assert (await _create(conn, "rf", rf=2)).error_code == ErrorCode.invalid_replication_factor
        assert (await _create(conn, "zero", partitions=0)).error_code == ErrorCode.invalid_partitions
        assert (await _create(conn, "bad/name")).error_code == ErrorCode.invalid_topic_exception
        assert (await _create(conn, "cfg", configs={"no.such.config": "1"})).error_code == ErrorCode.invalid_config
        assert (await _create(conn, "cfg2", configs={"retention.ms": "soon"})).error_code == ErrorCode.invalid_config
        bad = await _create(conn, "asg", partitions=-1, rf=-1, assignments={0: [1, 1]})
        assert bad.error_code == ErrorCode.invalid_replica_assignment
        defaults = await _create(conn, "dflt", partitions=-1, rf=-1)
        assert (defaults.error_code, defaults.num_partitions, defaults.replication_factor) == (0, 1, 1)
        for name in ("rf", "zero", "bad/name", "cfg", "cfg2", "asg"):
            if "/" not in name:
                assert not await zk_exists(zk_client, f"/brokers/topics/{name}")


async def test_create_topics_waits_for_metadata(tmp_path: Path, zk_chroot_connect: str) -> None:
    """With a timeout the answer comes only once the metadata cache shows a leader for every
    new partition (elected by the controller and sent with UpdateMetadata)."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        if not has_controller(server):
            pytest.skip("needs the controller wired into KafkaServer")
        r = await _create(conn, "waits", partitions=2, timeout_ms=20000)
        assert r.error_code == 0
        cache = server.metadata_cache.partitions_of("waits")
        assert sorted(cache) == [0, 1] and all(i.leader == 1 for i in cache.values())


async def test_delete_topics(tmp_path: Path, zk_chroot_connect: str, zk_client: ZooKeeperClient) -> None:
    """DeleteTopics marks /admin/delete_topics/<t> and waits until the metadata cache drops the
    topic (the controller's deletion); unknown topics get UNKNOWN_TOPIC_OR_PARTITION; with a
    timeout of 0 the mark is written and the answer is REQUEST_TIMED_OUT (Kafka's rule)."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        if not has_controller(server):
            pytest.skip("needs the controller wired into KafkaServer")
        assert (await _create(conn, "doomed")).error_code == 0
        assert server.metadata_cache.contains_topic("doomed")
        resp = await conn.call(ApiKey.DELETE_TOPICS, api_version=5, timeout=20000, topic_names=["doomed", "ghost"])
        errors = {r.name: r.error_code for r in resp.responses}
        assert errors == {"doomed": ErrorCode.none, "ghost": ErrorCode.unknown_topic_or_partition}
        assert not server.metadata_cache.contains_topic("doomed")
        assert (await _create(conn, "quick")).error_code == 0
        resp = await conn.call(ApiKey.DELETE_TOPICS, api_version=5, timeout=0, topic_names=["quick"])
        assert resp.responses[0].error_code == ErrorCode.request_timed_out
        with trio.fail_after(20):
            while server.metadata_cache.contains_topic("quick"):
                await trio.sleep(0.05)


async def test_zero_timeout_writes_but_answers_request_timed_out(tmp_path: Path, zk_chroot_connect: str,
                                                                 zk_client: ZooKeeperClient) -> None:
    """CreateTopics and CreatePartitions with timeout 0 write ZooKeeper and answer
    REQUEST_TIMED_OUT without waiting (Kafka's ZkAdminManager); validate_only answers NONE."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        assert (await _create(conn, "z0", partitions=1, timeout_ms=0)).error_code == ErrorCode.request_timed_out
        assert (await zk_json(zk_client, "/brokers/topics/z0"))["partitions"] == {"0": [1]}
        resp = await conn.call(ApiKey.CREATE_PARTITIONS, api_version=3, timeout=0, validate_only=False,
                               topics=[{"name": "z0", "count": 2, "assignments": None}])
        assert resp.results[0].error_code == ErrorCode.request_timed_out
        assert sorted((await zk_json(zk_client, "/brokers/topics/z0"))["partitions"]) == ["0", "1"]
        assert (await _create(conn, "z1", timeout_ms=0, validate_only=True)).error_code == 0


async def test_create_partitions(tmp_path: Path, zk_chroot_connect: str, zk_client: ZooKeeperClient) -> None:
    """Growing 1 -> 3 partitions rewrites the topic znode keeping partition 0; shrinking or
    keeping the count is INVALID_PARTITIONS; an unknown topic UNKNOWN_TOPIC_OR_PARTITION."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        assert (await _create(conn, "grow", partitions=1)).error_code == 0
        before = await zk_json(zk_client, "/brokers/topics/grow")

        async def grow(name: str, count: int) -> int:
            resp = await conn.call(ApiKey.CREATE_PARTITIONS, api_version=3, timeout=20000, validate_only=False,
                                   topics=[{"name": name, "count": count, "assignments": None}])
            return resp.results[0].error_code

        assert await grow("grow", 3) == 0
        after = await zk_json(zk_client, "/brokers/topics/grow")
        assert after["partitions"] == {"0": [1], "1": [1], "2": [1]}
        assert after["topic_id"] == before["topic_id"]
        assert await grow("grow", 2) == ErrorCode.invalid_partitions
        assert await grow("grow", 3) == ErrorCode.invalid_partitions
        assert await grow("ghost", 3) == ErrorCode.unknown_topic_or_partition


async def test_describe_configs_sources(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Topic configs: overrides DYNAMIC_TOPIC_CONFIG (1), broker keys from server.properties
    STATIC_BROKER_CONFIG (4), the rest DEFAULT_CONFIG (5) with Kafka's defaults; broker
    configs are read-only; an unknown topic is UNKNOWN_TOPIC_OR_PARTITION."""
    async with running_broker(tmp_path, zk_chroot_connect, log_segment_bytes="1048576") as server, \
            connect(server) as conn:
        assert (await _create(conn, "desc", configs={"retention.ms": "5000"})).error_code == 0
        resp = await conn.call(ApiKey.DESCRIBE_CONFIGS, api_version=4, include_synonyms=True,
                               include_documentation=False, resources=[
                                   {"resource_type": 2, "resource_name": "desc", "configuration_keys": None},
                                   {"resource_type": 4, "resource_name": "1",
                                    "configuration_keys": ["num.partitions", "log.segment.bytes"]},
                                   {"resource_type": 2, "resource_name": "ghost", "configuration_keys": None}])
        topic, broker, ghost = resp.results
        entries = {c.name: c for c in topic.configs}
        assert (entries["retention.ms"].value, entries["retention.ms"].config_source) == ("5000", 1)
        assert (entries["segment.bytes"].value, entries["segment.bytes"].config_source) == ("1048576", 4)
        assert (entries["cleanup.policy"].value, entries["cleanup.policy"].config_source) == ("delete", 5)
        assert (entries["min.insync.replicas"].value, entries["max.message.bytes"].value) == ("1", "1048588")
        assert [s.source for s in entries["retention.ms"].synonyms][0] == 1
        b = {c.name: c for c in broker.configs}
        assert sorted(b) == ["log.segment.bytes", "num.partitions"]
        assert (b["log.segment.bytes"].config_source, b["num.partitions"].config_source) == (4, 5)
        assert b["num.partitions"].read_only and b["num.partitions"].value == "1"
        assert ghost.error_code == ErrorCode.unknown_topic_or_partition


async def test_alter_configs_reach_zookeeper_and_local_logs(tmp_path: Path, zk_chroot_connect: str,
                                                            zk_client: ZooKeeperClient) -> None:
    """AlterConfigs replaces the override set, IncrementalAlterConfigs edits it (SET, APPEND,
    DELETE); each write posts /config/changes and the broker applies it to its log."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        assert (await _create(conn, "alt", partitions=1)).error_code == 0
        await conn.send(leader_and_isr(server, "alt", {0: (1, [1], [1])}), api_version=6)
        lg = server.replica_manager.partitions[TopicPartition("alt", 0)].log
        resp = await conn.call(ApiKey.ALTER_CONFIGS, api_version=2, validate_only=False, resources=[
            {"resource_type": 2, "resource_name": "alt", "configs": [{"name": "retention.ms", "value": "12345"}]}])
        assert resp.responses[0].error_code == 0
        with trio.fail_after(10):
            while lg.config.retention_ms != 12345:
                await trio.sleep(0.02)
        resp = await conn.call(ApiKey.INCREMENTAL_ALTER_CONFIGS, api_version=1, validate_only=False, resources=[
            {"resource_type": 2, "resource_name": "alt", "configs": [
                {"name": "cleanup.policy", "config_operation": 2, "value": "compact"},
                {"name": "retention.ms", "config_operation": 1, "value": None},
                {"name": "segment.bytes", "config_operation": 0, "value": "2000000"}]}])
        assert resp.responses[0].error_code == 0
        cfg = (await zk_json(zk_client, "/config/topics/alt"))["config"]
        assert cfg == {"cleanup.policy": "delete,compact", "segment.bytes": "2000000"}
        await zk_client.sync("/config/changes")
        changes = await zk_client.get_children("/config/changes")
        assert len(changes) >= 2
        note = await zk_json(zk_client, f"/config/changes/{changes[-1]}")
        assert note == {"version": 2, "entity_path": "topics/alt"}
        with trio.fail_after(10):
            while lg.config.segment_bytes != 2000000:
                await trio.sleep(0.02)
        assert lg.config.cleanup_policy == "delete,compact"
        bad = await conn.call(ApiKey.INCREMENTAL_ALTER_CONFIGS, api_version=1, validate_only=False, resources=[
            {"resource_type": 2, "resource_name": "alt", "configs": [
                {"name": "retention.ms", "config_operation": 2, "value": "1"}]},
            {"resource_type": 4, "resource_name": "1", "configs": [
                {"name": "num.partitions", "config_operation": 0, "value": "2"}]}])
        # num.partitions is not a dynamic broker config: Kafka's INVALID_CONFIG "Cannot update these
        # configs dynamically" (KIP-226, tests/broker/test_dynamic_broker_config.py)
        assert [r.error_code for r in bad.responses] == [ErrorCode.invalid_config, ErrorCode.invalid_config]
        assert "Cannot update these configs dynamically: Set(num.partitions)" in bad.responses[1].error_message


async def test_metadata_auto_creates_topic(tmp_path: Path, zk_chroot_connect: str,
                                           zk_client: ZooKeeperClient) -> None:
    """A Metadata request for an unknown topic creates it with num.partitions and answers
    LEADER_NOT_AVAILABLE; with auto-creation off it stays unknown."""
    async with running_broker(tmp_path, zk_chroot_connect, num_partitions="4") as server, \
            connect(server) as conn:
        resp = await conn.call(ApiKey.METADATA, api_version=12, topics=[{"name": "auto", "topic_id": None}],
                               allow_auto_topic_creation=True)
        assert resp.topics[0].error_code == ErrorCode.leader_not_available
        doc = await zk_json(zk_client, "/brokers/topics/auto")
        assert sorted(doc["partitions"]) == ["0", "1", "2", "3"]
        resp = await conn.call(ApiKey.METADATA, api_version=12, topics=[{"name": "manual", "topic_id": None}],
                               allow_auto_topic_creation=False)
        assert resp.topics[0].error_code == ErrorCode.unknown_topic_or_partition
        assert not await zk_exists(zk_client, "/brokers/topics/manual")


async def test_every_served_admin_version_answers(tmp_path: Path, zk_chroot_connect: str) -> None:
    """CreateTopics v2-v7, CreatePartitions v0-v3, DescribeConfigs v1-v4, AlterConfigs v0-v2,
    IncrementalAlterConfigs v0-v1 and DeleteTopics v1-v5 each answer in their own version."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        for v in range(2, 8):
            resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=v, timeout=20000, validate_only=False,
                                   topics=[{"name": f"v{v}", "num_partitions": 1, "replication_factor": 1,
                                            "assignments": [], "configs": []}])
            assert resp.topics[0].error_code == 0, v
        for v in range(0, 4):
            resp = await conn.call(ApiKey.CREATE_PARTITIONS, api_version=v, timeout=20000, validate_only=False,
                                   topics=[{"name": "v2", "count": 2 + v, "assignments": None}])
            assert resp.results[0].error_code == 0, v
        for v in range(1, 5):
            resp = await conn.call(ApiKey.DESCRIBE_CONFIGS, api_version=v, resources=[
                {"resource_type": 2, "resource_name": "v3", "configuration_keys": ["retention.ms"]}])
            assert [c.name for c in resp.results[0].configs] == ["retention.ms"], v
        for v in range(0, 3):
            resp = await conn.call(ApiKey.ALTER_CONFIGS, api_version=v, validate_only=False, resources=[
                {"resource_type": 2, "resource_name": "v3", "configs": [{"name": "retention.ms", "value": str(1000 + v)}]}])
            assert resp.responses[0].error_code == 0, v
        for v in range(0, 2):
            resp = await conn.call(ApiKey.INCREMENTAL_ALTER_CONFIGS, api_version=v, validate_only=False, resources=[
                {"resource_type": 2, "resource_name": "v3", "configs": [
                    {"name": "segment.ms", "config_operation": 0, "value": str(60000 + v)}]}])
            assert resp.responses[0].error_code == 0, v
        for v in range(1, 6):
            resp = await conn.call(ApiKey.DELETE_TOPICS, api_version=v, timeout=20000, topic_names=[f"v{v + 1}"])
            assert resp.responses[0].error_code == 0, v
