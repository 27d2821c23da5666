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
timestamp (the max timestamp of its last batch or marker, ms), the coordinator epoch of its last
transaction marker (-1 none) and the first offset of its open transaction (-1 none), all from
the log's ProducerStateManager.
"""

from __future__ import annotations


import attrs

from kafkalike.broker.replica_manager import ReplicaManager
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition

__all__ = ["ActiveProducer", "PartitionProducerState", "active_producer_state"]


@attrs.frozen
class ActiveProducer:
    """One producer of DescribeProducersResponse.ProducerState: ``last_sequence`` -1 and
    ``last_timestamp`` -1 (ms) when unknown; ``coordinator_epoch`` -1 before its first
    transaction marker; ``current_txn_start_offset`` the first offset of its open transaction
    (-1 none)."""

    producer_id: int
    producer_epoch: int
    last_sequence: int = -1
    last_timestamp: int = -1
    coordinator_epoch: int = -1
    current_txn_start_offset: int = -1


@attrs.frozen
class PartitionProducerState:
    """One partition of a DescribeProducers answer: error and its active producers."""

    error: ErrorCode
    producers: tuple[ActiveProducer, ...] = ()


def active_producer_state(replica_manager: ReplicaManager, tp: TopicPartition) -> PartitionProducerState:
    """The error and producers of one partition on this broker (see the module doc for the
    errors: NONE, UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR).
    Producers are sorted by producer id."""
    partition = replica_manager.get_partition(tp)
    if partition is None:
        return PartitionProducerState(replica_manager.unknown_partition_error(tp))
    out = []
    for pid, entry in sorted(partition.producer_state.producers.items()):
        last = entry.batches[-1] if entry.batches else None
        out.append(ActiveProducer(
            producer_id=pid, producer_epoch=entry.epoch,
            last_sequence=last.last_seq if last is not None else -1,
            last_timestamp=entry.last_timestamp,
            coordinator_epoch=entry.coordinator_epoch,
            current_txn_start_offset=entry.current_txn_first_offset))
    return PartitionProducerState(ErrorCode.none, tuple(out))
