"""Kafka 3.9's own kafka-configs.sh (kafka.admin.ConfigCommand) and kafka-reassign-partitions.sh
(ReassignPartitionsCommand) on dynamic broker configs and replication throttles, against two
in-process kafkalike brokers on the real ZooKeeper ensemble (own chroot). Opt-in: needs
KAFKALIKE_KAFKA_LIB set to the reference jars and java (each JVM takes seconds under load, so
it stays out of the default run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from kafkalike.coordination import ZooKeeperClient
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import create_filled_partition, port_of, running_broker

KAFKA_LIB = os.environ.get("KAFKALIKE_KAFKA_LIB", "")
HAVE_KAFKA = bool(KAFKA_LIB) and any(Path(KAFKA_LIB).glob("kafka_2.13-*.jar")) and shutil.which("java") is not None
pytestmark = [pytest.mark.trio,
              pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB set to Kafka 3.9's jars and java")]


def _java(main: str, bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["java", "-Xmx256m", "-cp", f"{KAFKA_LIB}/*", main, "--bootstrap-server", bootstrap, *args],
                          capture_output=True, text=True, timeout=180)


async def _run(main: str, bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(lambda: _java(main, bootstrap, *args))


async def _znode(zk_connect: str, path: str) -> dict[str, object]:
    async with ZooKeeperClient(zk_connect, session_timeout_ms=4000) as zk:
        await zk.sync("/")
        data, _ = await zk.get(path)
    return dict(json.loads(data))


CONFIGS = "kafka.admin.ConfigCommand"
REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"


async def test_kafka_configs_sh_alters_describes_and_is_refused_for_brokers(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    async with AsyncExitStack() as stack:
        b1 = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=1))
        bs = f"127.0.0.1:{port_of(b1)}"
        out = await _run(CONFIGS, bs, "--alter", "--entity-type", "brokers", "--entity-name", "1",
                         "--add-config", "log.retention.ms=3600000")
        assert (out.returncode, out.stdout) == (0, "Completed updating config for broker 1.\n"), out.stderr
        out = await _run(CONFIGS, bs, "--alter", "--entity-type", "brokers", "--entity-default",
                         "--add-config", "leader.replication.throttled.rate=1000000,log.segment.bytes=104857600")
        assert (out.returncode, out.stdout) == (0, "Completed updating default config for brokers in the cluster.\n")
        assert await _znode(zk_chroot_connect, "/config/brokers/<default>") == {"version": 1, "config": {
            "leader.replication.throttled.rate": "1000000", "log.segment.bytes": "104857600"}}
        out = await _run(CONFIGS, bs, "--describe", "--entity-type", "brokers", "--entity-name", "1")
        assert out.stdout == (
            "Dynamic configs for broker 1 are:\n"
            "  log.retention.ms=3600000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=3600000, "
            "DEFAULT_CONFIG:log.retention.hours=168}\n")
        out = await _run(CONFIGS, bs, "--describe", "--entity-type", "brokers", "--entity-default")
        assert out.stdout == (
            "Default configs for brokers in the cluster are:\n"
            "  leader.replication.throttled.rate=1000000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:"
            "leader.replication.throttled.rate=1000000, DEFAULT_CONFIG:leader.replication.throttled.rate="
            "9223372036854775807}\n"
            "  log.segment.bytes=104857600 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:"
            "log.segment.bytes=104857600, DEFAULT_CONFIG:log.segment.bytes=1073741824}\n")
        out = await _run(CONFIGS, bs, "--describe", "--all", "--entity-type", "brokers", "--entity-name", "1")
        assert out.stdout.startswith("All configs for broker 1 are:\n")
        assert ("  broker.id=1 sensitive=false synonyms={STATIC_BROKER_CONFIG:broker.id=1, "
                "DEFAULT_CONFIG:broker.id=-1}\n") in out.stdout
        assert ("  log.segment.bytes=104857600 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:"
                "log.segment.bytes=104857600, DEFAULT_CONFIG:log.segment.bytes=1073741824}\n") in out.stdout
        out = await _run(CONFIGS, bs, "--alter", "--entity-type", "brokers", "--entity-name", "1",
                         "--add-config", "broker.id=5")
        assert out.returncode == 1
        assert ("InvalidConfigurationException: Invalid config value for resource ConfigResource(type=BROKER, "
                "name='1'): Cannot update these configs dynamically: Set(broker.id)") in out.stderr
        out = await _run(CONFIGS, bs, "--alter", "--entity-type", "brokers", "--entity-name", "1",
                         "--delete-config", "log.retention.ms")
        assert out.returncode == 0
        assert await _znode(zk_chroot_connect, "/config/brokers/1") == {"version": 1, "config": {}}
        with trio.fail_after(20):
            while b1.dynamic_config.current["log.segment.bytes"] != 104857600 or b1.dynamic_config.dynamic_broker:
                await trio.sleep(0.05)


async def test_kafka_reassign_partitions_sh_throttle_is_written_and_verify_removes_it(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    async with AsyncExitStack() as stack:
        b1 = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=1))
        b2 = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=2))
        tp = TopicPartition("moving", 0)
        await create_filled_partition(b1, "moving", batches=40)
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "moving", "partition": 0,
                                                                  "replicas": [1, 2]}]}))
        bs = f"127.0.0.1:{port_of(b1)}"
        out = await _run(REASSIGN, bs, "--execute", "--reassignment-json-file", str(plan), "--throttle", "300000")
        assert out.returncode == 0, out.stderr
        assert "The inter-broker throttle limit was set to 300000 B/s\n" in out.stdout
        assert "Successfully started partition reassignment for moving-0\n" in out.stdout
        assert await _znode(zk_chroot_connect, "/config/topics/moving") == {"version": 1, "config": {
            "leader.replication.throttled.replicas": "0:1", "follower.replication.throttled.replicas": "0:2"}}
        for broker in (1, 2):
            assert await _znode(zk_chroot_connect, f"/config/brokers/{broker}") == {"version": 1, "config": {
                "leader.replication.throttled.rate": "300000", "follower.replication.throttled.rate": "300000"}}
        with trio.fail_after(120):
            while True:
                p = b2.replica_manager.partitions.get(tp)
                if p is not None and p.log_end_offset == b1.replica_manager.partitions[tp].log_end_offset:
                    break
                await trio.sleep(0.1)
        # the throttle acted: the follower quota recorded the copied bytes and left the partition out
        follower = b2.replication_quotas.follower.statistics()
        assert follower.recorded_bytes >= b1.replica_manager.partitions[tp].log.size_in_bytes
        assert follower.throttled_decisions > 0
        with trio.fail_after(120):
            while True:
                out = await _run(REASSIGN, bs, "--verify", "--reassignment-json-file", str(plan))
                if "Reassignment of partition moving-0 is completed." in out.stdout:
                    break
        assert out.stdout.endswith("Clearing broker-level throttles on brokers 1,2\n"
                                   "Clearing topic-level throttles on topic moving\n")
        assert await _znode(zk_chroot_connect, "/config/topics/moving") == {"version": 1, "config": {}}
        for broker in (1, 2):
            assert await _znode(zk_chroot_connect, f"/config/brokers/{broker}") == {"version": 1, "config": {}}
        with trio.fail_after(20):
            while b2.replication_quotas.follower.is_throttled(tp) or b1.replication_quotas.leader.bound < 2**63 - 1:
                await trio.sleep(0.05)
