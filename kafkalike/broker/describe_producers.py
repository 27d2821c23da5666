"""DescribeProducers (API key 61, KIP-664): the active idempotent producers of a partition,
read from the replica's producer state (Kafka's KafkaApis.handleDescribeProducersRequest,
ReplicaManager.activeProducerState, Partition.activeProducerState, UnifiedLog.activeProducers).

Holds ``ActiveProducer`` (one producer as the response carries it) and
``active_producer_state`` (the per-partition answer), used by KafkaApis.

What Kafka answers, per partition: UNKNOWN_TOPIC_OR_PARTITION when the broker's metadata does
not know it; otherwise getPartitionOrError's error (NOT_LEADER_OR_FOLLOWER when this broker
hosts no replica of it, KAFKA_STORAGE_ERROR when its log dir is offline); otherwise the
producers of the local replica's log — a follower answers too, from its own replicated
producer state (Kafka does not require leadership here; the admin client asks the leader
unless told a broker id). Each producer: id, epoch, last sequence (of its last batch), last
timestamp (the last batch's max timestamp, ms), coordinator epoch -1 and current transaction
start offset -1: kafkalike has no transactions, so no producer is ever in one.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.record_batch import HEADER, HEADER_SIZE
from kafkalike.storage import TopicPartition

__all__ = ["ActiveProducer", "active_producer_state"]


@attrs.frozen
class ActiveProducer:
    """One producer of DescribeProducersResponse.ProducerState: ``last_sequence`` -1 and
    ``last_timestamp`` -1 (ms) when unknown; ``coordinator_epoch`` and
    ``current_txn_start_offset`` are always -1 (no transactions in kafkalike)."""

    producer_id: int
    producer_epoch: int
    last_sequence: int = -1
    last_timestamp: int = -1
    coordinator_epoch: int = -1
    current_txn_start_offset: int = -1


def active_producer_state(replica_manager: Any, tp: TopicPartition) -> tuple[ErrorCode, list[ActiveProducer]]:
    """(error, producers) for one partition on this broker (see the module doc for the
    errors: NONE, UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR).
    Producers are sorted by producer id. Reads one 61-byte batch header per producer (its
    last batch, for the timestamp); a header that cannot be read (segment deleted by
    retention since) gives last_timestamp -1."""
    partition = replica_manager.get_partition(tp)
    if partition is None:
        return replica_manager._unknown_error(tp), []
    out = []
    for pid, entry in sorted(partition.producer_state.producers.items()):
        last = entry.batches[-1] if entry.batches else None
        out.append(ActiveProducer(
            producer_id=pid, producer_epoch=entry.epoch,
            last_sequence=last.last_seq if last is not None else -1,
            last_timestamp=_batch_max_timestamp(partition.log, last.first_offset) if last is not None else -1))
    return ErrorCode.none, out


def _batch_max_timestamp(log: Any, offset: int) -> int:
    """The max timestamp (ms) in the header of the stored batch holding ``offset``, or -1."""
    try:
        slices = log.read(offset, HEADER_SIZE)
        if not slices:
            return -1
        raw = os.pread(slices[0].fileno(), HEADER_SIZE, slices[0].position)
    except Exception:  # out of range after retention, closed log: no timestamp, never an error
        return -1
    if len(raw) < HEADER_SIZE:
        return -1
    return int(HEADER.unpack(raw)[8])
