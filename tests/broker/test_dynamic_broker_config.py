"""Dynamic broker configs (KIP-226) through confluent-kafka's AdminClient against an in-process
broker on the real ZooKeeper ensemble (its own chroot, so cluster-wide defaults never reach
another test): /config/brokers/<default> and /<id> in Kafka's JSON with /config/changes
notifications, the new default reaching a topic's log without a restart while an override
stays, DescribeConfigs sources and synonyms, and Kafka's refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import trio
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewTopic)

from kafkalike.coordination import ZooKeeperClient
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import port_of, running_broker

pytestmark = pytest.mark.trio


async def _in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


def _alter(admin: AdminClient, name: str, op: AlterConfigOpType, **configs: str) -> None:
    """IncrementalAlterConfigs of BROKER ``name`` (a broker id); raises KafkaException."""
    res = ConfigResource(ConfigResource.Type.BROKER, name, incremental_configs=[
        ConfigEntry(k.replace("_", "."), v, incremental_operation=op) for k, v in configs.items()])
    for fut in admin.incremental_alter_configs([res]).values():
        fut.result(timeout=20)


async def _alter_default(server: Any, op: int, **configs: str) -> Any:
    """IncrementalAlterConfigs of the cluster default (BROKER "", as kafka-configs.sh
    --entity-default sends it; librdkafka refuses an empty resource name) through kafkalike's
    client; returns the resource's response."""
    from kafkalike.protocol.api_keys import ApiKey
    from tests.broker.broker_helpers import connect
    async with connect(server) as conn:
        resp = await conn.call(ApiKey.INCREMENTAL_ALTER_CONFIGS, api_version=1, validate_only=False, resources=[
            {"resource_type": 4, "resource_name": "", "configs": [
                {"name": k.replace("_", "."), "config_operation": op, "value": v} for k, v in configs.items()]}])
    return resp.responses[0]


async def _describe_broker(server: Any, name: str, resource_type: int = 4) -> dict[str, Any]:
    """DescribeConfigs v4 (synonyms) of BROKER (4; TOPIC 2) ``name`` through kafkalike's client
    (a blocking confluent-kafka ``result()`` on this thread would stall the in-process broker's
    trio loop until it times out; tests/broker/test_describe_configs_librdkafka.py calls it from a
    worker thread)."""
    from kafkalike.protocol.api_keys import ApiKey
    from tests.broker.broker_helpers import connect
    async with connect(server) as conn:
        resp = await conn.call(ApiKey.DESCRIBE_CONFIGS, api_version=4, include_synonyms=True,
                               include_documentation=False, resources=[
                                   {"resource_type": resource_type, "resource_name": name, "configuration_keys": None}])
    assert resp.results[0].error_code == 0
    return {c.name: c for c in resp.results[0].configs}


async def _describe_default(server: Any) -> dict[str, tuple[str | None, int]]:
    return {n: (c.value, c.config_source) for n, c in (await _describe_broker(server, "")).items()}


async def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 20) -> None:
    with trio.move_on_after(timeout):
        while not cond():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def test_dynamic_log_retention_default_reaches_topics_without_override(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=1))
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port_of(server)}"})
        futures = admin.create_topics([NewTopic("plain", 1, 1),
                                       NewTopic("pinned", 1, 1, config={"retention.ms": "86400000"})])
        for fut in futures.values():
            await _in_thread(lambda f=fut: f.result(timeout=20))
        plain, pinned = TopicPartition("plain", 0), TopicPartition("pinned", 0)
        logs = server.log_manager.logs  # type: ignore[union-attr]
        await _wait_for(lambda: plain in logs and pinned in logs, "the topics' logs")
        assert logs[plain].config.retention_ms == 168 * 3600_000

        # cluster-wide default (entity-default): every broker, every topic without an override
        assert (await _alter_default(server, 0, log_retention_ms="3600000")).error_code == 0
        await _wait_for(lambda: logs[plain].config.retention_ms == 3600000, "the new default on the log")
        assert logs[pinned].config.retention_ms == 86400000  # the topic's override wins

        async with ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000) as zk:
            data, _ = await zk.get("/config/brokers/<default>")
            assert json.loads(data) == {"version": 1, "config": {"log.retention.ms": "3600000"}}
            changes = sorted(await zk.get_children("/config/changes"))
            data, _ = await zk.get(f"/config/changes/{changes[-1]}")
            assert json.loads(data) == {"version": 2, "entity_path": "brokers/<default>"}
            assert len(changes[-1]) == len("config_change_") + 10

        described = await _describe_broker(server, "1")
        entry = described["log.retention.ms"]
        assert (entry.value, entry.config_source, entry.read_only) == (
            "3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value, False)
        assert described["broker.id"].read_only
        assert await _describe_default(server) == {
            "log.retention.ms": ("3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)}

        # per-broker beats the default; the topic's DescribeConfigs names the dynamic source
        await _in_thread(lambda: _alter(admin, "1", AlterConfigOpType.SET, log_retention_ms="7200000"))
        await _wait_for(lambda: logs[plain].config.retention_ms == 7200000, "the per-broker value on the log")
        described = await _describe_broker(server, "1")
        entry = described["log.retention.ms"]
        assert (entry.value, entry.config_source) == ("7200000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
        assert [(s.name, s.value, s.source) for s in entry.synonyms][:2] == [
            ("log.retention.ms", "7200000", ConfigSource.DYNAMIC_BROKER_CONFIG.value),
            ("log.retention.ms", "3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)]
        topic = await _describe_broker(server, "plain", resource_type=2)
        assert (topic["retention.ms"].value, topic["retention.ms"].config_source) == (
            "7200000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)

        # deleting both falls back to server.properties / Kafka's default
        await _in_thread(lambda: _alter(admin, "1", AlterConfigOpType.DELETE, log_retention_ms=""))
        assert (await _alter_default(server, 1, log_retention_ms="")).error_code == 0
        await _wait_for(lambda: logs[plain].config.retention_ms == 168 * 3600_000, "the static value back")


async def test_read_only_bad_value_and_wrong_broker_are_refused_with_kafkas_errors(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    from confluent_kafka import KafkaError, KafkaException

    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=1))
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port_of(server)}"})

        def refused(name: str, **configs: str) -> KafkaError:
            with pytest.raises(KafkaException) as info:
                _alter(admin, name, AlterConfigOpType.SET, **configs)
            return info.value.args[0]

        err = await _in_thread(lambda: refused("1", broker_id="7"))
        assert err.code() == KafkaError.INVALID_CONFIG
        assert ("Invalid config value for resource ConfigResource(type=BROKER, name='1'): "
                "Cannot update these configs dynamically: Set(broker.id)") in err.str()
        r = await _alter_default(server, 0, leader_replication_throttled_rate="fast")
        assert r.error_code == KafkaError.INVALID_CONFIG
        assert r.error_message == ("Invalid config value for resource ConfigResource(type=BROKER, name=''): "
                                   "Invalid value fast for configuration leader.replication.throttled.rate: "
                                   "Not a number of type LONG")
        err = await _in_thread(lambda: refused("1", message_max_bytes="-5"))
        assert "Value must be at least 0" in err.str()
        # nothing was written for the refused changes
        async with ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000) as zk:
            assert await zk.exists("/config/brokers/1") is None
        # message.max.bytes is dynamic: the new broker default reaches a new topic's log
        await _in_thread(lambda: _alter(admin, "1", AlterConfigOpType.SET, message_max_bytes="2000000"))
        await _wait_for(lambda: server.dynamic_config.current["message.max.bytes"] == 2000000,
                        "message.max.bytes applied")


async def test_describe_of_another_brokers_id_is_invalid_request(tmp_path: Path, zk_chroot_connect: str) -> None:
    from confluent_kafka import KafkaError

    async with AsyncExitStack() as stack:
        # the admin clients route a BROKER resource to that broker: ask broker 1 about "2" directly
        server = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=1))
        from kafkalike.protocol.api_keys import ApiKey
        from tests.broker.broker_helpers import connect
        async with connect(server) as conn:
            resp = await conn.call(ApiKey.INCREMENTAL_ALTER_CONFIGS, api_version=1, validate_only=False, resources=[
                {"resource_type": 4, "resource_name": "2", "configs": [
                    {"name": "log.retention.ms", "config_operation": 0, "value": "1000"}]}])
            r = resp.responses[0]
            assert r.error_code == KafkaError.INVALID_REQUEST
            assert r.error_message == "Unexpected broker id, expected 1, but received 2"
            resp = await conn.call(ApiKey.DESCRIBE_CONFIGS, api_version=4, include_synonyms=True,
                                   include_documentation=False, resources=[
                                       {"resource_type": 4, "resource_name": "2", "configuration_keys": None}])
            r = resp.results[0]
            assert r.error_code == KafkaError.INVALID_REQUEST
            assert r.error_message == "Unexpected broker id, expected 1 or empty string, but received 2"
