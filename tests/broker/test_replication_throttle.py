"""Replication throttles (KIP-73) on a reassignment between two in-process brokers on the real
ZooKeeper ensemble (own chroot): the topic configs leader/follower.replication.throttled.replicas
plus the brokers' dynamic leader/follower.replication.throttled.rate, as
kafka-reassign-partitions.sh --throttle writes them. Two equal partitions move from broker 1 to
brokers 1+2 at once; only one is throttled. Asserted on the quotas' counters and the replicas'
log end offsets, never on wall time: the unthrottled copy completes while the throttled one is
still behind, the leader left the throttled partition out of reads (throttle decisions), the
follower left it out of fetches, and exactly the throttled partition's bytes were recorded."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from kafkalike.client.admin import RESOURCE_BROKER, RESOURCE_TOPIC, AdminClient
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import batch, connect, port_of, produce, running_broker

pytestmark = pytest.mark.trio

RATE = 200_000  # bytes/s, leader and follower
FETCH_MAX = 131_072  # replica.fetch.max.bytes: several fetches per partition


async def _fill(server: object, topic: str, nbytes: int) -> None:
    value = b"x" * 16_000
    async with connect(server) as conn:  # type: ignore[arg-type]
        sent = 0
        while sent < nbytes:
            await produce(conn, topic, 0, batch([value] * 4), acks=1)
            sent += 4 * len(value)


async def test_throttled_reassignment_copies_slower_than_unthrottled_by_bytes_counted(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    extra = {"replica_fetch_max_bytes": str(FETCH_MAX), "replica_fetch_wait_max_ms": "100"}
    async with AsyncExitStack() as stack:
        b1 = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=1, **extra))
        b2 = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, broker_id=2, **extra))
        admin = await stack.enter_async_context(AdminClient(f"127.0.0.1:{port_of(b1)}"))
        async with connect(b1) as conn:
            resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False, topics=[
                {"name": name, "num_partitions": -1, "replication_factor": -1,
                 "assignments": [{"partition_index": 0, "broker_ids": [1]}], "configs": []}
                for name in ("slow", "fast")])
            assert [t.error_code for t in resp.topics] == [0, 0]
        slow, fast = TopicPartition("slow", 0), TopicPartition("fast", 0)
        with trio.fail_after(30):
            while not (slow in b1.replica_manager.partitions and fast in b1.replica_manager.partitions):
                await trio.sleep(0.05)
        await _fill(b1, "slow", 1_200_000)
        await _fill(b1, "fast", 1_200_000)
        end = b1.replica_manager.partitions[slow].log_end_offset
        assert b1.replica_manager.partitions[fast].log_end_offset == end

        # what kafka-reassign-partitions.sh --execute --throttle 200000 writes for "slow"
        await admin.alter_configs(RESOURCE_TOPIC, "slow", {"leader.replication.throttled.replicas": "0:1",
                                                           "follower.replication.throttled.replicas": "0:2"})
        for broker in ("1", "2"):
            await admin.alter_configs(RESOURCE_BROKER, broker, {"leader.replication.throttled.rate": str(RATE),
                                                                "follower.replication.throttled.rate": str(RATE)})
        q1, q2 = b1.replication_quotas, b2.replication_quotas
        with trio.fail_after(20):
            while not (q1.leader.bound == RATE and q2.follower.bound == RATE
                       and q1.leader.is_throttled(slow) and q2.follower.is_throttled(slow)):
                await trio.sleep(0.05)
        assert not q1.leader.is_throttled(fast) and not q2.follower.is_throttled(fast)

        result = await admin.alter_partition_reassignments({slow: [1, 2], fast: [1, 2]})
        assert {tp: e for tp, (e, _) in result.items()} == {slow: 0, fast: 0}

        def leo(tp: TopicPartition) -> int:
            p = b2.replica_manager.partitions.get(tp)
            return p.log_end_offset if p is not None else -1

        with trio.fail_after(60):
            while leo(fast) < end:
                await trio.sleep(0.01)
        behind = leo(slow)
        assert behind < end  # the throttled copy is still behind when the unthrottled one is done
        with trio.fail_after(90):
            while leo(slow) < end:
                await trio.sleep(0.05)

        leader, follower = q1.leader.statistics(), q2.follower.statistics()
        assert leader.throttled_decisions > 0 and follower.throttled_decisions > 0
        slow_bytes = b1.replica_manager.partitions[slow].log.size_in_bytes
        # the leader recorded what it sent of the throttled partition (whole batches: >= the log)
        # and nothing of the unthrottled one (which would have doubled it)
        assert slow_bytes <= leader.recorded_bytes < 2 * slow_bytes
        assert slow_bytes <= follower.recorded_bytes < 2 * slow_bytes
        assert q2.leader.statistics().recorded_bytes == 0  # broker 2 leads nothing throttled

        # the same counters on /metrics (the broker's own collector, read as a scrape does)
        from kafkalike.broker.broker_metrics import BrokerMetricsCollector
        collector = BrokerMetricsCollector(
            broker_id=2, replica_manager=b2.replica_manager, controller=b2.controller, group_coordinator=None,
            zk_statistics=lambda: None, request_stats=b2.apis.request_stats, topic_stats=b2.apis.topic_stats)
        samples = {(s.name, s.labels.get("replication")): s.value
                   for family in collector.collect() for s in family.samples}
        assert samples[("kafkalike_replication_throttled_bytes_total", "follower")] == follower.recorded_bytes
        assert samples[("kafkalike_replication_throttle_decisions_total", "follower")] == follower.throttled_decisions
        assert ("kafka_server_followerreplication_byte_rate", None) in samples

        # removing the throttle (what --verify does) clears the throttled partitions
        await admin.alter_configs(RESOURCE_TOPIC, "slow", {"leader.replication.throttled.replicas": None,
                                                           "follower.replication.throttled.replicas": None})
        with trio.fail_after(20):
            while q1.leader.is_throttled(slow) or q2.follower.is_throttled(slow):
                await trio.sleep(0.05)
