"""ReplicationQuotaManager and the throttled-replica lists on their own (KIP-73; Kafka's
ReplicationQuotaManagerTest and TopicConfigHandler.parseThrottledPartitions): which partitions
a broker throttles, Kafka's SimpleRate over 11 x 1 s windows read on a clock the test moves,
and when a partition is held back."""

from __future__ import annotations

from kafkalike.broker.replication_quota_manager import (ALL_REPLICAS, LONG_MAX, ReplicationQuotaManager,
                                                        ReplicationQuotas, parse_throttled_partitions)
from kafkalike.storage import TopicPartition


def test_a_broker_throttles_the_partitions_whose_entries_name_it() -> None:
    assert parse_throttled_partitions("0:1,1:2,2:1,3:11", 1) == frozenset({0, 2})
    assert parse_throttled_partitions(" 0:2 , 1:2 ", 2) == frozenset({0, 1})
    assert parse_throttled_partitions("*", 5) is ALL_REPLICAS
    assert parse_throttled_partitions("", 1) is None and parse_throttled_partitions(None, 1) is None
    assert parse_throttled_partitions("0:1,bad,1:x", 1) == frozenset({0})


def test_topic_configs_mark_and_remove_the_leader_and_follower_throttles() -> None:
    quotas = ReplicationQuotas.create(broker_id=2)
    quotas.update_topic("t", {"leader.replication.throttled.replicas": "0:1,1:2",
                              "follower.replication.throttled.replicas": "*"})
    assert not quotas.leader.is_throttled(TopicPartition("t", 0))
    assert quotas.leader.is_throttled(TopicPartition("t", 1))
    assert quotas.follower.is_throttled(TopicPartition("t", 7))
    assert not quotas.follower.is_throttled(TopicPartition("other", 0))
    quotas.update_topic("t", {"retention.ms": "1000"})  # throttle keys gone: removed
    assert not quotas.leader.throttled and not quotas.follower.throttled


def test_simple_rate_over_the_window_decides_when_the_quota_is_exceeded() -> None:
    now = [100.0]
    q = ReplicationQuotaManager("leader", window_num=11, window_size_s=1.0, clock=lambda: now[0])
    tp = TopicPartition("t", 0)
    q.mark_throttled("t", frozenset({0}))
    q.record(500)
    assert not q.is_quota_exceeded()  # no bound yet (LONG_MAX)
    q.update_quota(100)
    assert q.rate() == 500.0  # 500 bytes over max(elapsed, one window) = 1 s
    assert q.should_throttle(tp, in_sync=False)
    assert not q.should_throttle(tp, in_sync=True)  # in-sync replicas are never held back
    assert not q.should_throttle(TopicPartition("t", 1), in_sync=False)  # not a throttled partition
    now[0] += 6.0
    assert round(q.rate(), 3) == round(500 / 6, 3)  # elapsed since the oldest sample began
    assert not q.should_throttle(tp, in_sync=False)
    now[0] += 5.0  # 11 s: the sample left the 11-window span
    assert q.rate() == 0.0
    stats = q.statistics()
    assert (stats.recorded_bytes, stats.throttled_decisions, stats.bound) == (500, 1, 100)
    q.update_quota(LONG_MAX)
    q.record(10**9)
    assert not q.is_quota_exceeded()
