"""Replication throttles (KIP-73; Kafka's ReplicationQuotaManager, ReplicaQuota and the
throttle half of TopicConfigHandler / BrokerConfigHandler, ZooKeeper mode).

Which partitions are throttled comes from two topic configs, read on every broker:
``leader.replication.throttled.replicas`` and ``follower.replication.throttled.replicas``, each
``partition:broker,...`` or ``*``. A broker throttles, on its leader side, the partitions
whose entries in the leader list name itself, and on its follower side those whose entries
in the follower list name itself; ``*`` throttles every partition of the topic; an empty or
absent value removes the topic's throttle (Kafka's parseThrottledPartitions). How fast comes
from the broker's dynamic configs ``leader.replication.throttled.rate`` and
``follower.replication.throttled.rate`` (bytes/s, per broker or cluster default; unlimited
when unset). kafka-reassign-partitions.sh --throttle writes both kinds and --verify removes
them.

Each manager measures the bytes of its throttled partitions with Kafka's SimpleRate over
``replication.quota.window.num`` (11) samples of ``replication.quota.window.size.seconds``
(1 s): rate = bytes in the live samples / max(time since the oldest sample began, one
window). The quota is exceeded while that rate is above the bound.

- Leader (ReplicaManager.readFromLog, shouldLeaderThrottle): a follower's fetch of a
  throttled partition returns no records while the quota is exceeded, unless the follower is
  in the ISR; the bytes a follower fetch returns for throttled partitions are recorded
  (KafkaApis.handleFetchRequest: quotas.leader.record). A throttled partition's bytes do not
  count towards the fetch's min_bytes (DelayedFetch).
- Follower (ReplicaFetcherThread.buildFetch, shouldFollowerThrottle): a throttled partition
  that has not caught up with the leader is left out of the next fetch while the quota is
  exceeded; the bytes fetched for throttled partitions are recorded
  (ReplicaFetcherThread.processPartitionData).

Counters (``statistics``): bytes recorded, partitions left out by the throttle; the broker's
/metrics shows the rates as kafka_server_leaderreplication_byte_rate /
kafka_server_followerreplication_byte_rate (Kafka's LeaderReplication / FollowerReplication
byte-rate) and the counters as kafkalike_replication_throttled_bytes_total /
kafkalike_replication_throttle_decisions_total{replication="leader|follower"}.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

import attrs
import structlog

from kafkalike.storage import TopicPartition

log = structlog.get_logger(__name__)

LONG_MAX = 2**63 - 1
LEADER_THROTTLED_REPLICAS = "leader.replication.throttled.replicas"
FOLLOWER_THROTTLED_REPLICAS = "follower.replication.throttled.replicas"


class _AllReplicas(frozenset[int]):
    """Kafka's AllReplicas marker: every partition of the topic (``*``)."""


ALL_REPLICAS = _AllReplicas()


def parse_throttled_partitions(value: str | None, broker_id: int) -> frozenset[int] | None:
    """A ``*.replication.throttled.replicas`` value -> the partitions ``broker_id`` throttles
    (ALL_REPLICAS for ``*``); None when empty or absent (no throttle). Entries naming other
    brokers are ignored; a malformed entry is skipped (the value was validated when written).
    Kafka's TopicConfigHandler.parseThrottledPartitions."""
    text = (value or "").strip()
    if not text:
        return None
    if text == "*":
        return ALL_REPLICAS
    out = set()
    for item in text.split(","):
        partition, _, broker = item.strip().partition(":")
        try:
            if int(broker) == broker_id:
                out.add(int(partition))
        except ValueError:
            continue
    return frozenset(out)


@attrs.frozen
class ReplicationQuotaStatistics:
    """One manager's counters: its kind ("leader" / "follower"), the bound (bytes/s,
    LONG_MAX = none), the current rate (bytes/s), bytes recorded, throttle decisions (a
    partition left out of a read or a fetch because the quota was exceeded), throttled
    topics."""

    kind: str
    bound: int
    rate: float
    recorded_bytes: int
    throttled_decisions: int
    throttled_topics: int


class ReplicationQuotaManager:
    """One side's replication quota (Kafka's ReplicationQuotaManager): the throttled
    partitions per topic, the bound (bytes/s) and the measured rate. ``clock`` returns
    seconds (monotonic)."""

    def __init__(self, kind: str, window_num: int = 11, window_size_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kind = kind
        self.window_num = window_num
        self.window_ms = window_size_s * 1000.0
        self.clock = clock
        self.bound = LONG_MAX
        self.throttled: dict[str, frozenset[int]] = {}
        self.samples: deque[list[float]] = deque()  # [start ms, bytes]
        self.recorded_bytes = 0
        self.throttled_decisions = 0

    # --- configuration
    def update_quota(self, bytes_per_second: int) -> None:
        """Set the bound (bytes/s); LONG_MAX = unlimited."""
        if bytes_per_second != self.bound:
            log.info("replication_quota_updated", kind=self.kind, bytes_per_second=bytes_per_second)
        self.bound = bytes_per_second

    def mark_throttled(self, topic: str, partitions: frozenset[int]) -> None:
        """Throttle these partitions of ``topic`` (ALL_REPLICAS: all), replacing the old set."""
        self.throttled[topic] = partitions

    def remove_throttle(self, topic: str) -> None:
        self.throttled.pop(topic, None)

    def is_throttled(self, tp: TopicPartition) -> bool:
        """Is ``tp`` throttled here (Kafka's isThrottled)?"""
        partitions = self.throttled.get(tp.topic)
        if partitions is None:
            return False
        return partitions is ALL_REPLICAS or tp.partition in partitions

    # --- measuring
    def _now_ms(self) -> float:
        return self.clock() * 1000.0

    def _purge(self, now_ms: float) -> None:
        expire = self.window_num * self.window_ms
        while self.samples and now_ms - self.samples[0][0] >= expire:
            self.samples.popleft()

    def record(self, nbytes: int) -> None:
        """Add ``nbytes`` to the measured rate, even above the quota (Kafka's record)."""
        if nbytes <= 0:
            return
        now = self._now_ms()
        self._purge(now)
        if not self.samples or now >= self.samples[-1][0] + self.window_ms:
            self.samples.append([now, 0.0])
            while len(self.samples) > self.window_num:
                self.samples.popleft()
        self.samples[-1][1] += nbytes
        self.recorded_bytes += nbytes

    def rate(self) -> float:
        """Bytes/s: Kafka's SimpleRate (bytes in live samples over max(elapsed, one window))."""
        now = self._now_ms()
        self._purge(now)
        if not self.samples:
            return 0.0
        elapsed = max(now - self.samples[0][0], self.window_ms)
        return sum(s[1] for s in self.samples) / (elapsed / 1000.0)

    def is_quota_exceeded(self) -> bool:
        """Is the measured rate above the bound (Kafka's sensor.checkQuotas)?"""
        return self.bound != LONG_MAX and self.rate() > self.bound

    def should_throttle(self, tp: TopicPartition, in_sync: bool) -> bool:
        """Leave ``tp`` out now? Not in sync, throttled and the quota exceeded (Kafka's
        shouldLeaderThrottle / shouldFollowerThrottle); counts the decision."""
        if in_sync or not self.is_throttled(tp) or not self.is_quota_exceeded():
            return False
        self.throttled_decisions += 1
        return True

    def statistics(self) -> ReplicationQuotaStatistics:
        return ReplicationQuotaStatistics(self.kind, self.bound, self.rate(), self.recorded_bytes,
                                          self.throttled_decisions, len(self.throttled))


@attrs.define
class ReplicationQuotas:
    """The broker's leader, follower and alter-log-dirs replication quotas (Kafka's
    QuotaManagers.leader / .follower / .alterLogDirs), fed by topic config changes
    (``update_topic``) and dynamic broker config changes (``update_rates``). The
    alter-log-dirs quota (replica.alter.log.dirs.io.max.bytes.per.second) is the hook a
    ReplicaAlterLogDirsThread checks (is_quota_exceeded / record) for every partition it moves."""

    broker_id: int
    leader: ReplicationQuotaManager
    follower: ReplicationQuotaManager
    alter_log_dirs: ReplicationQuotaManager

    @classmethod
    def create(cls, broker_id: int, window_num: int = 11, window_size_s: float = 1.0) -> "ReplicationQuotas":
        return cls(broker_id, ReplicationQuotaManager("leader", window_num, window_size_s),
                   ReplicationQuotaManager("follower", window_num, window_size_s),
                   ReplicationQuotaManager("alter_log_dirs", window_num, window_size_s))

    def update_topic(self, topic: str, config: Mapping[str, str]) -> None:
        """A topic's config (all of its overrides) was read or changed: set or remove its
        leader and follower throttles (Kafka's TopicConfigHandler.updateThrottledList)."""
        for key, manager in ((LEADER_THROTTLED_REPLICAS, self.leader), (FOLLOWER_THROTTLED_REPLICAS, self.follower)):
            partitions = parse_throttled_partitions(config.get(key), self.broker_id)
            if partitions is None:
                manager.remove_throttle(topic)
            else:
                manager.mark_throttled(topic, partitions)

    def update_rates(self, leader_rate: int, follower_rate: int, alter_log_dirs_rate: int = LONG_MAX) -> None:
        """New leader / follower / alter-log-dirs bounds (bytes/s; LONG_MAX = unlimited)."""
        self.leader.update_quota(leader_rate)
        self.follower.update_quota(follower_rate)
        self.alter_log_dirs.update_quota(alter_log_dirs_rate)

    def throttled_bytes(self, sizes: Iterable[tuple[TopicPartition, int]]) -> int:
        """Bytes of the throttled partitions among (tp, bytes) of one follower fetch answer."""
        return sum(n for tp, n in sizes if n and self.leader.is_throttled(tp))
