"""DelayedProduce: an acks=all Produce waiting until every ISR member has the batch (Kafka's
kafka.server.DelayedProduce).

Watched in the ReplicaManager's "Produce" purgatory under each partition it appended to;
``check_and_complete(tp)`` runs when a partition's high watermark moves, its ISR changes, or
its leadership changes. A partition is satisfied when the HW reaches its last appended
offset + 1 (Partition.check_enough_replicas_reached_offset): NONE, or
NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR fell below min.insync.replicas meanwhile, or
NOT_LEADER_OR_FOLLOWER if this broker lost leadership. On timeout (the request's
timeout_ms) every unsatisfied partition answers REQUEST_TIMED_OUT; the records stay in the
log (a retry may duplicate them, as in Kafka without idempotence).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from kafkalike.broker import request_hops
from kafkalike.broker.delayed_operation import DelayedOperation
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition
from kafkalike.storage.log_validator import RecordError


@attrs.define
class ProducePartitionStatus:
    """One partition of a Produce: the offset the HW must reach, and the answer so far.

    required_offset: last appended offset + 1. acks_pending: still waiting for replicas.
    log_append_time_ms -1 unless the topic uses LogAppendTime. record_errors: the
    log_validator.RecordError (batch index, message) of each record refused one by one
    (INVALID_RECORD, Produce v8+ record_errors, KIP-467).
    """

    required_offset: int
    error: ErrorCode = ErrorCode.none
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    acks_pending: bool = False
    error_message: str | None = None
    record_errors: tuple[RecordError, ...] = ()


class DelayedProduce(DelayedOperation):
    """Waits for replication of the partitions in ``statuses`` whose ``acks_pending``.

    partition_of(tp) returns the hosted Partition (or None); min_isr_of(topic) the topic's
    min.insync.replicas.
    """

    def __init__(self, delay_ms: int, statuses: dict[TopicPartition, ProducePartitionStatus],
                 partition_of: Callable[[TopicPartition], Any],
                 min_isr_of: Callable[[str], int]) -> None:
        super().__init__(delay_ms)
        self.hops = request_hops.current()  # the Produce's hop timing (debug, usually None)
        self.statuses = statuses
        self._partition_of = partition_of
        self._min_isr_of = min_isr_of

    def try_complete(self) -> bool:
        for tp, status in self.statuses.items():
            if not status.acks_pending:
                continue
            partition = self._partition_of(tp)
            if partition is None:
                done, error = True, ErrorCode.unknown_topic_or_partition
            else:
                done, error = partition.check_enough_replicas_reached_offset(
                    status.required_offset, self._min_isr_of(tp.topic))
            if done:
                status.acks_pending = False
                status.error = error
        if any(s.acks_pending for s in self.statuses.values()):
            return False
        return self.force_complete()

    def on_complete(self) -> None:
        request_hops.mark_replicated(self.hops)
        for status in self.statuses.values():
            if status.acks_pending:
                status.acks_pending = False
                status.error = ErrorCode.request_timed_out
