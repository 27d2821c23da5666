"""DelayedDeleteRecords: a DeleteRecords request waiting until every replica has moved its
log start offset up to the requested offset (Kafka's kafka.server.DelayedDeleteRecords, KIP-107).

Watched in the ReplicaManager's "DeleteRecords" purgatory under each partition whose leader
accepted the new log start offset. ``check_and_complete(tp)`` runs when a follower's fetch
reports its log start offset, when leadership changes and when the replica is stopped. A
partition is satisfied when its low watermark (Partition.low_watermark_if_leader: the
smallest log start offset over the leader and every follower on a live broker) reaches the
requested offset; it answers NOT_LEADER_OR_FOLLOWER if this broker lost leadership meanwhile
and UNKNOWN_TOPIC_OR_PARTITION if the replica is gone. On timeout (the request's timeout_ms)
every unsatisfied partition answers REQUEST_TIMED_OUT with the low watermark known when the
request was accepted (Kafka sets the timeout error up front and clears it on completion).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from kafkalike.broker.delayed_operation import DelayedOperation
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition

INVALID_LOW_WATERMARK = -1


@attrs.define
class DeleteRecordsPartitionStatus:
    """One partition of a DeleteRecords: the offset every replica's log start offset must
    reach (``required_offset``, -1 when refused), and the answer so far (error, low watermark
    offset; -1 unknown). ``acks_pending``: still waiting for followers."""

    required_offset: int
    error: ErrorCode = ErrorCode.none
    low_watermark: int = INVALID_LOW_WATERMARK
    acks_pending: bool = False
    error_message: str | None = None


class DelayedDeleteRecords(DelayedOperation):
    """Waits for the partitions in ``statuses`` whose ``acks_pending``.

    ``partition_of(tp)`` returns the hosted Partition (or None); ``alive_brokers()`` the ids
    of the brokers the metadata cache lists as alive (followers elsewhere do not hold the
    low watermark back, as in Kafka's Partition.lowWatermarkIfLeader).
    """

    def __init__(self, delay_ms: int, statuses: dict[TopicPartition, DeleteRecordsPartitionStatus],
                 partition_of: Callable[[TopicPartition], Any],
                 alive_brokers: Callable[[], Any]) -> None:
        super().__init__(delay_ms)
        self.statuses = statuses
        self._partition_of = partition_of
        self._alive_brokers = alive_brokers

    def try_complete(self) -> bool:
        alive = None
        for tp, status in self.statuses.items():
            if not status.acks_pending:
                continue
            partition = self._partition_of(tp)
            if partition is None:
                done, error, lw = True, ErrorCode.unknown_topic_or_partition, INVALID_LOW_WATERMARK
            elif not partition.is_leader:
                done, error, lw = True, ErrorCode.not_leader_or_follower, INVALID_LOW_WATERMARK
            else:
                if alive is None:
                    alive = set(self._alive_brokers())
                lw = partition.low_watermark_if_leader(alive)
                done, error = lw >= status.required_offset, ErrorCode.none
            if done:
                status.acks_pending = False
                status.error = error
                status.low_watermark = lw
        if any(s.acks_pending for s in self.statuses.values()):
            return False
        return self.force_complete()

    def on_complete(self) -> None:
        for status in self.statuses.values():
            if status.acks_pending:
                status.acks_pending = False
                status.error = ErrorCode.request_timed_out
