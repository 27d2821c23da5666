"""DelayedFetch: a Fetch long-polling until min_bytes are available or max_wait_ms passes
(Kafka's kafka.server.DelayedFetch).

Watched in the ReplicaManager's "Fetch" purgatory under each fetched partition;
``check_and_complete(tp)`` runs after an append (followers wait for the LEO) and after the
high watermark moves (consumers wait for the HW, read_committed consumers for the last stable
offset, which moves with the HW and with transaction markers). ``try_complete`` completes when (Kafka's
cases) a partition is no longer led here or its epoch moved (A), the fetch offset is beyond
the log end after a truncation (D), or the bytes now readable across all partitions reach
min_bytes (C). On completion, or at max_wait, the data is read afresh (``read``) and kept in
``result`` for the handler to encode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from kafkalike.broker import request_hops
from kafkalike.broker.delayed_operation import DelayedOperation
from kafkalike.storage import TopicPartition


@attrs.frozen
class FetchPartitionInfo:
    """One partition of a Fetch request: fetch offset, byte limit, the leader epoch the
    client knows (-1 = unchecked), the follower's log start offset (-1 for consumers)."""

    tp: TopicPartition
    fetch_offset: int
    max_bytes: int
    current_leader_epoch: int = -1
    log_start_offset: int = -1


class DelayedFetch(DelayedOperation):
    """``bytes_available(info)`` -> readable bytes at the fetch offset (or None when the
    partition must answer at once: error, truncation, leadership change);
    ``read()`` -> the per-partition results, stored in ``result``.

    ``known_incomplete``: the caller has just read every partition, on the same trio step,
    and found nothing to answer yet (ReplicaManager.fetch_messages: no error, fewer than
    min_bytes; Kafka's fetchMessages decides from its read in the same way), so the first
    ``try_complete`` (the purgatory's before it watches the keys) answers False without going
    over the partitions again; the purgatory's next one, once the keys are watched, checks
    them. Each check goes over every partition of the fetch."""

    def __init__(self, delay_ms: int, infos: list[FetchPartitionInfo], min_bytes: int,
                 bytes_available: Callable[[FetchPartitionInfo], int | None],
                 read: Callable[[], Any], known_incomplete: bool = False) -> None:
        super().__init__(delay_ms)
        self.infos = infos
        self.min_bytes = min_bytes
        self._bytes_available = bytes_available
        self._read = read
        self._skip_check = known_incomplete
        self.checks = 0  # passes over the partitions so far
        self.result: Any = None
        self.hops = request_hops.current()  # the Fetch's hop timing (debug, usually None)
        if self.hops is not None:
            self.hops.delayed = True

    def try_complete(self) -> bool:
        if self._skip_check:
            self._skip_check = False
            return False
        self.checks += 1
        total = 0
        for info in self.infos:
            n = self._bytes_available(info)
            if n is None:
                return self.force_complete()
            total += n
        if total >= self.min_bytes:
            return self.force_complete()
        return False

    def on_complete(self) -> None:
        self.result = self._read()
        if self.hops is not None:
            self.hops.mark("read")
