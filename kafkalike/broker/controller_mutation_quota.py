"""The controller mutation quota (KIP-599): a token bucket per client id that bounds how many
partitions a client may create or delete per second.

Holds ``TokenBucket`` (Kafka's org.apache.kafka.common.metrics.stats.TokenBucket),
``ControllerMutationQuota`` (one request's view of a bucket: strict or permissive, Kafka's
StrictControllerMutationQuota / PermissiveControllerMutationQuota), ``ThrottlingQuotaExceeded``
and ``ControllerMutationQuotaManager`` (buckets per client id, quotas read from ZooKeeper).

The quota is the client quota ``controller_mutation_rate`` (partitions per second, a double)
that ``kafka-configs --alter --add-config controller_mutation_rate=N --entity-type clients
--entity-name <id>`` writes to ``/config/clients/<id>`` (``--entity-default``:
``/config/clients/<default>``) as ``{"version":1,"config":{"controller_mutation_rate":"N"}}``,
followed by a ``/config/changes`` notification. kafkalike has no authentication, so every
principal is ANONYMOUS and only the client-id levels of Kafka's quota precedence apply:
``/config/clients/<client-id>``, then ``/config/clients/<default>``; ``/config/users/...``
quotas are not read. No quota configured = no limit (Kafka's UnboundedControllerMutationQuota).

Burst: ``controller.quota.window.num`` (11) x ``controller.quota.window.size.seconds`` (1) x
rate permits, Kafka's defaults. A strict quota (CreateTopics v6+, CreatePartitions v3+,
DeleteTopics v5+) refuses a mutation with THROTTLING_QUOTA_EXCEEDED once the bucket is below
zero, and accepts any size while it is not (so one request may overdraw it); a permissive
quota (older versions) accepts and only reports a throttle time. The throttle time is the time
the bucket needs to refill to zero: ``-tokens / rate`` seconds (ControllerMutationQuotaManager.
throttleTimeMs). Source: Kafka core, kafka/server/ControllerMutationQuotaManager.scala.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping

import attrs
import structlog

log = structlog.get_logger(__name__)

QUOTA_KEY = "controller_mutation_rate"
DEFAULT_ENTITY = "<default>"
#: Kafka's QuotaConfig defaults: controller.quota.window.num / .window.size.seconds
DEFAULT_WINDOW_NUM = 11
DEFAULT_WINDOW_SIZE_S = 1.0
#: first API version whose quota is strict (KafkaApis: CreateTopics 6, CreatePartitions 3,
#: DeleteTopics 5)
STRICT_SINCE = {"CreateTopics": 6, "CreatePartitions": 3, "DeleteTopics": 5}


def sanitize(client_id: str) -> str:
    """Kafka's Sanitizer.sanitize: the znode name of a client id (URL-encoded UTF-8; only
    ASCII letters, digits, ``.``, ``-`` and ``_`` stay as they are)."""
    return urllib.parse.quote(client_id, safe="").replace("~", "%7E")


class ThrottlingQuotaExceeded(Exception):
    """The strict quota refused a mutation: Kafka's ThrottlingQuotaExceededException
    (THROTTLING_QUOTA_EXCEEDED, 89) with the throttle time in ms."""

    def __init__(self, throttle_time_ms: int) -> None:
        super().__init__("The throttling quota has been exceeded.")
        self.throttle_time_ms = throttle_time_ms


@attrs.define
class TokenBucket:
    """Kafka's TokenBucket: ``rate`` permits/s refill, at most ``burst`` permits; starts full.
    Times are monotonic seconds."""

    rate: float
    burst: float
    tokens: float
    last: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> "TokenBucket":
        """A bucket holding ``burst`` permits at ``now``."""
        return cls(rate, burst, burst, now)

    def refill(self, now: float) -> float:
        """Add the permits earned since the last call (capped at burst); returns the tokens."""
        self.tokens = min(self.burst, self.tokens + self.rate * max(0.0, now - self.last))
        self.last = now
        return self.tokens

    def record(self, permits: float, now: float) -> None:
        """Take ``permits`` (the bucket may go below zero)."""
        self.refill(now)
        self.tokens = min(self.burst, self.tokens - permits)

    def throttle_ms(self, now: float) -> int:
        """ms until the bucket is back at zero (0 when it is not below zero)."""
        tokens = self.refill(now)
        return 0 if tokens >= 0 else int(round(-tokens / self.rate * 1000))


@attrs.define
class ControllerMutationQuota:
    """One request's quota: ``record(permits)`` before each mutation, ``throttle_time_ms``
    for the response. ``bucket`` None = unbounded (no quota configured)."""

    bucket: TokenBucket | None
    strict: bool
    clock: Callable[[], float] = time.monotonic
    _throttle_ms: int = 0
    _throttle_at: float = 0.0

    def record(self, permits: float) -> None:
        """Account ``permits`` partitions. Strict: raises ThrottlingQuotaExceeded (nothing
        taken) when the bucket is already below zero. Permissive: always takes them."""
        if self.bucket is None:
            return
        now = self.clock()
        if self.strict:
            throttle = self.bucket.throttle_ms(now)
            if throttle > 0:
                self._throttle_ms, self._throttle_at = throttle, now
                raise ThrottlingQuotaExceeded(throttle)
            self.bucket.record(permits, now)
        else:
            self.bucket.record(permits, now)
            throttle = self.bucket.throttle_ms(now)
            if throttle > 0:
                self._throttle_ms, self._throttle_at = throttle, now

    @property
    def throttle_time_ms(self) -> int:
        """The last throttle time, less the time elapsed since it was computed (Kafka's
        AbstractControllerMutationQuota.throttleTime)."""
        if self._throttle_ms <= 0:
            return 0
        elapsed_ms = (self.clock() - self._throttle_at) * 1000
        return max(0, int(self._throttle_ms - elapsed_ms))


ConfigReader = Callable[[str], Awaitable[Mapping[str, str]]]


class ControllerMutationQuotaManager:
    """Buckets per client id and the quota values read from ``/config/clients``.

    ``read_config(name)`` returns the config of ``/config/clients/<name>`` ({} if absent).
    Resolved quotas are cached until ``invalidate()`` (called on every clients/users change
    notification of ``/config/changes``).
    """

    def __init__(self, read_config: ConfigReader, window_num: int = DEFAULT_WINDOW_NUM,
                 window_size_s: float = DEFAULT_WINDOW_SIZE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read_config = read_config
        self.window_num = window_num
        self.window_size_s = window_size_s
        self.clock = clock
        self._rates: dict[str, float | None] = {}
        self._buckets: dict[str, TokenBucket] = {}

    def invalidate(self) -> None:
        """Forget cached quota values (a client quota changed); buckets keep their tokens."""
        self._rates.clear()

    async def _rate(self, client_id: str) -> float | None:
        if client_id in self._rates:
            return self._rates[client_id]
        rate: float | None = None
        names = ([sanitize(client_id)] if client_id else []) + [DEFAULT_ENTITY]
        for name in names:
            value = (await self.read_config(name)).get(QUOTA_KEY)
            if value is None:
                continue
            try:
                rate = float(value)
            except ValueError:
                log.warning("quota_unreadable", client_id=client_id, entity=name, value=value)
                continue
            if not math.isfinite(rate) or rate <= 0:
                log.warning("quota_unreadable", client_id=client_id, entity=name, value=value)
                rate = None
                continue
            break
        if len(self._rates) > 10_000:  # client ids come from the wire: bound the cache
            self._rates.clear()
        self._rates[client_id] = rate
        return rate

    async def quota_for(self, client_id: str | None, strict: bool) -> ControllerMutationQuota:
        """The quota of one request from ``client_id`` (strict or permissive)."""
        cid = client_id or ""
        rate = await self._rate(cid)
        if rate is None:
            self._buckets.pop(cid, None)
            return ControllerMutationQuota(None, strict, self.clock)
        burst = self.window_num * self.window_size_s * rate
        bucket = self._buckets.get(cid)
        now = self.clock()
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._buckets.clear()
            bucket = self._buckets[cid] = TokenBucket.full(rate, burst, now)
        elif bucket.rate != rate:
            bucket.refill(now)
            bucket.rate, bucket.burst = rate, burst
            bucket.tokens = min(bucket.tokens, burst)
        return ControllerMutationQuota(bucket, strict, self.clock)
