"""``kafkalike configs --entity-type brokers`` and ``kafkalike reassign-partitions --throttle`` (the
kafka-configs.sh / kafka-reassign-partitions.sh faces of KIP-226 and KIP-73) as subprocesses
against two in-process brokers on the real ZooKeeper ensemble (own chroot): Kafka's output
lines, the znodes they leave, and --verify removing the throttle. Opt-in (KAFKALIKE_SLOW=1): nine
CLI processes take 1-1.5 minutes on the loaded test machine. The broker side of the same
behaviour runs by default (tests/broker/test_dynamic_broker_config.py,
test_replication_throttle.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from kafkalike.coordination import ZooKeeperClient
from tests.broker.broker_helpers import create_filled_partition, port_of, running_broker

pytestmark = [pytest.mark.trio,
              pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1", reason="nine CLI processes: KAFKALIKE_SLOW=1")]


async def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "kafkalike.cli.main", *args], capture_output=True, text=True, timeout=120))


async def _znode(zk_connect: str, path: str) -> dict[str, object]:
    async with ZooKeeperClient(zk_connect, session_timeout_ms=4000) as zk:
        await zk.sync("/")
        data, _ = await zk.get(path)
    return dict(json.loads(data))


async def test_configs_brokers_and_reassign_throttle_print_kafkas_lines_and_write_kafkas_znodes(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    async with AsyncExitStack() as stack:
        b1 = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=1))
        b2 = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=2))
        bs = f"127.0.0.1:{port_of(b1)}"

        def configs(*args: str) -> list[str]:
            return ["configs", "--bootstrap-server", bs, "--entity-type", "brokers", *args]

        out = await _cli(*configs("--alter", "--entity-default", "--add-config", "log.retention.ms=3600000"))
        assert (out.returncode, out.stdout) == (0, "Completed updating default config for brokers in the cluster.\n")
        out = await _cli(*configs("--alter", "--entity-name", "2", "--add-config", "message.max.bytes=2000000"))
        assert (out.returncode, out.stdout) == (0, "Completed updating config for broker 2.\n"), out.stderr
        assert await _znode(zk_chroot_connect, "/config/brokers/2") == {
            "version": 1, "config": {"message.max.bytes": "2000000"}}
        with trio.fail_after(20):
            while b2.dynamic_config.current["message.max.bytes"] != 2000000 or \
                    b1.dynamic_config.current["log.retention.ms"] != 3600000:
                await trio.sleep(0.05)
        out = await _cli(*configs("--describe"))
        assert out.stdout == (
            "Dynamic configs for broker 1 are:\n"
            "Dynamic configs for broker 2 are:\n"
            "  message.max.bytes=2000000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:message.max.bytes=2000000, "
            "DEFAULT_CONFIG:message.max.bytes=1048588}\n"
            "Default configs for brokers in the cluster are:\n"
            "  log.retention.ms=3600000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:"
            "log.retention.ms=3600000, DEFAULT_CONFIG:log.retention.hours=168}\n"), out.stderr
        out = await _cli(*configs("--alter", "--entity-name", "1", "--delete-config", "log.retention.ms"))
        assert (out.returncode, out.stderr) == (1, "Error: Invalid config(s): log.retention.ms\n")
        out = await _cli(*configs("--alter", "--entity-name", "1", "--add-config", "broker.id=3"))
        assert out.returncode == 1
        assert "Cannot update these configs dynamically: Set(broker.id)" in out.stderr

        # reassign-partitions --throttle: the topic and broker configs Kafka's tool writes
        await create_filled_partition(b1, "moving", batches=10)
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "moving", "partition": 0,
                                                                  "replicas": [1, 2]}]}))
        out = await _cli("reassign-partitions", "--bootstrap-server", bs, "--execute", "--reassignment-json-file",
                         str(plan), "--throttle", "300000")
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.endswith(
            "Save this to use as the --reassignment-json-file option during rollback\n"
            "Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle "
            "is removed.\n"
            "The inter-broker throttle limit was set to 300000 B/s\n"
            "Successfully started partition reassignment for moving-0\n")
        assert await _znode(zk_chroot_connect, "/config/topics/moving") == {"version": 1, "config": {
            "leader.replication.throttled.replicas": "0:1", "follower.replication.throttled.replicas": "0:2"}}
        assert await _znode(zk_chroot_connect, "/config/brokers/1") == {"version": 1, "config": {
            "leader.replication.throttled.rate": "300000", "follower.replication.throttled.rate": "300000"}}
        assert await _znode(zk_chroot_connect, "/config/brokers/2") == {"version": 1, "config": {
            "message.max.bytes": "2000000", "leader.replication.throttled.rate": "300000",
            "follower.replication.throttled.rate": "300000"}}
        with trio.fail_after(90):
            while True:
                out = await _cli("reassign-partitions", "--bootstrap-server", bs, "--verify",
                                 "--reassignment-json-file", str(plan))
                if "Reassignment of partition moving-0 is completed." in out.stdout:
                    break
                await trio.sleep(0.5)
        assert out.stdout.endswith("Clearing broker-level throttles on brokers 1,2\n"
                                   "Clearing topic-level throttles on topic moving\n")
        assert await _znode(zk_chroot_connect, "/config/topics/moving") == {"version": 1, "config": {}}
        assert await _znode(zk_chroot_connect, "/config/brokers/1") == {"version": 1, "config": {}}
        assert await _znode(zk_chroot_connect, "/config/brokers/2") == {
            "version": 1, "config": {"message.max.bytes": "2000000"}}
        assert b2.replication_quotas.follower.statistics().recorded_bytes > 0
