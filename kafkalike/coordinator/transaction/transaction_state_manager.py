"""TransactionStateManager: the ``__transaction_state`` topic and the cache of the
transactions whose partition this broker leads (Kafka 3.9's TransactionStateManager and
TransactionConfig).

- Placement: ``partition_for(transactional_id) = Utils.abs(id.hashCode()) %
  transaction.state.log.num.partitions`` (Java's String.hashCode; Utils.abs maps
  Integer.MIN_VALUE to 0). The leader of that partition is the id's coordinator.
- The topic (created by the coordinator on the first FindCoordinator with key type 1):
  transaction.state.log.num.partitions (50) partitions, replication factor
  transaction.state.log.replication.factor (3), cleanup.policy=compact,
  compression.type=uncompressed, min.insync.replicas=transaction.state.log.min.isr (2),
  segment.bytes=transaction.state.log.segment.bytes (100 MiB), unclean leader election off.
  kafkalike caps the replication factor at the live brokers (and min.insync.replicas at that
  factor) with a warning, as it does for __consumer_offsets; Kafka 3.9 answers
  COORDINATOR_NOT_AVAILABLE until enough brokers are up.
- Loading (``load_transactions_for_partition``): when this broker becomes a partition's
  leader its log is replayed from the start (the last record per transactional id wins, a
  tombstone removes the id); the partition's leader epoch is the coordinator epoch carried by
  every marker sent for its transactions. While loading, requests for its ids answer
  COORDINATOR_LOAD_IN_PROGRESS; unloaded (no longer leader), NOT_COORDINATOR.
- Writes (``append_transaction_to_log``): one record (TransactionLogKey, TransactionLogValue
  v0) through the replica manager with acks=-1, waiting up to request.timeout.ms; the
  transition is applied to the cached metadata only after the write is acknowledged and only
  if the coordinator epoch did not change meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import structlog

from kafkalike.coordinator.group_metadata_manager import iter_log_batches, java_string_hash, kafka_abs
from kafkalike.coordinator.transaction.transaction_log import (TransactionLogError, TransactionLogKey,
                                                                decode_key, decode_value, encode_key,
                                                                encode_value)
from kafkalike.coordinator.transaction.transaction_metadata import (TransactionMetadata, TransactionState,
                                                                    TxnTransitMetadata)
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.records import build_records_batch
from kafkalike.storage import TopicPartition

__all__ = ["TRANSACTION_STATE_TOPIC", "TransactionConfig", "TransactionStateManager", "partition_for",
           "TxnMetadataCacheEntry", "CoordinatorEpochAndTxnMetadata", "APPEND_ERROR_MAP"]

log = structlog.get_logger(__name__)

TRANSACTION_STATE_TOPIC = "__transaction_state"


def partition_for(transactional_id: str, num_partitions: int) -> int:
    """The __transaction_state partition of ``transactional_id`` (Kafka's partitionFor)."""
    return kafka_abs(java_string_hash(transactional_id)) % num_partitions


@attrs.frozen
class TransactionConfig:
    """Transaction coordinator settings (Kafka property names; times in ms, sizes in bytes)."""

    num_partitions: int = 50                       # transaction.state.log.num.partitions
    replication_factor: int = 3                    # transaction.state.log.replication.factor
    min_isr: int = 2                               # transaction.state.log.min.isr
    segment_bytes: int = 104857600                 # transaction.state.log.segment.bytes
    load_buffer_size: int = 5242880                # transaction.state.log.load.buffer.size
    max_timeout_ms: int = 900000                   # transaction.max.timeout.ms
    abort_timed_out_interval_ms: int = 10000       # transaction.abort.timed.out.transaction.cleanup.interval.ms
    transactional_id_expiration_ms: int = 604800000  # transactional.id.expiration.ms (not applied)
    request_timeout_ms: int = 30000                # request.timeout.ms (append timeout)

    @classmethod
    def from_broker_config(cls, config: Any) -> "TransactionConfig":
        """Read the transaction.* keys of a KafkaConfig (``config[key]``)."""
        def get(key: str, default: int) -> int:
            try:
                return int(config[key])
            except (KeyError, TypeError):
                return default
        d = cls()
        return cls(
            num_partitions=get("transaction.state.log.num.partitions", d.num_partitions),
            replication_factor=get("transaction.state.log.replication.factor", d.replication_factor),
            min_isr=get("transaction.state.log.min.isr", d.min_isr),
            segment_bytes=get("transaction.state.log.segment.bytes", d.segment_bytes),
            load_buffer_size=get("transaction.state.log.load.buffer.size", d.load_buffer_size),
            max_timeout_ms=get("transaction.max.timeout.ms", d.max_timeout_ms),
            abort_timed_out_interval_ms=get("transaction.abort.timed.out.transaction.cleanup.interval.ms",
                                            d.abort_timed_out_interval_ms),
            transactional_id_expiration_ms=get("transactional.id.expiration.ms",
                                               d.transactional_id_expiration_ms),
            request_timeout_ms=get("request.timeout.ms", d.request_timeout_ms))

    def topic_configs(self, min_isr: int) -> dict[str, str]:
        """The topic configs __transaction_state is created with (Kafka's TransactionLog)."""
        return {"cleanup.policy": "compact", "compression.type": "uncompressed",
                "min.insync.replicas": str(min_isr), "segment.bytes": str(self.segment_bytes),
                "unclean.leader.election.enable": "false"}


@attrs.define
class TxnMetadataCacheEntry:
    """The transactions of one __transaction_state partition, loaded at ``coordinator_epoch``."""

    coordinator_epoch: int
    metadata_per_transactional_id: dict[str, TransactionMetadata] = attrs.field(factory=dict)


@attrs.frozen
class CoordinatorEpochAndTxnMetadata:
    """A cached transaction and the coordinator epoch of its partition."""

    coordinator_epoch: int
    transaction_metadata: TransactionMetadata


APPEND_ERROR_MAP = {
    ErrorCode.unknown_topic_or_partition: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas_after_append: ErrorCode.coordinator_not_available,
    ErrorCode.request_timed_out: ErrorCode.coordinator_not_available,
    ErrorCode.not_leader_or_follower: ErrorCode.not_coordinator,
    ErrorCode.kafka_storage_error: ErrorCode.not_coordinator,
    ErrorCode.message_too_large: ErrorCode.unknown_server_error,
    ErrorCode.record_list_too_large: ErrorCode.unknown_server_error,
}
"""How an append error on __transaction_state reaches a transactional client (Kafka's
TransactionStateManager.appendTransactionToLog); any other error is UNKNOWN_SERVER_ERROR."""


def iter_partition_records(partition_log: Any, end_offset: int,
                           chunk_bytes: int) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) of every data record of a storage UnifiedLog from its start up to
    ``end_offset`` (exclusive), read ``chunk_bytes`` at a time (control batches skipped)."""
    for batch in iter_log_batches(partition_log, end_offset, chunk_bytes):
        if batch.control is None:
            yield from batch.records


class TransactionStateManager:
    """The transactions of the __transaction_state partitions this broker leads, and their
    persistence. ``replica_manager``: the broker's ReplicaManager (``partitions``,
    ``append_records``); ``wall_clock_ms``: injectable clock (ms)."""

    def __init__(self, broker_id: int, config: TransactionConfig, replica_manager: Any,
                 wall_clock_ms: Callable[[], int] | None = None) -> None:
        self.broker_id = broker_id
        self.config = config
        self.replica_manager = replica_manager
        self.wall_clock_ms = wall_clock_ms or (lambda: int(time.time() * 1000))
        self.transaction_metadata_cache: dict[int, TxnMetadataCacheEntry] = {}
        self.loading_partitions: dict[int, int] = {}  # partition -> coordinator epoch being loaded

    # ------------------------------------------------------------------ ownership
    def partition_for(self, transactional_id: str) -> int:
        return partition_for(transactional_id, self.config.num_partitions)

    def use_partition_count(self, count: int) -> None:
        """The topic's real partition count wins over the configured one (Kafka reads it
        from ZooKeeper at start-up)."""
        if count > 0 and count != self.config.num_partitions:
            log.warning("transaction_topic_partition_count_differs", configured=self.config.num_partitions,
                        actual=count)
            self.config = attrs.evolve(self.config, num_partitions=count)

    def get_transaction_state(self, transactional_id: str) -> ErrorCode | CoordinatorEpochAndTxnMetadata | None:
        """The cached transaction of ``transactional_id``: COORDINATOR_LOAD_IN_PROGRESS while
        its partition loads, NOT_COORDINATOR when this broker does not own it, None when the id
        is unknown to an owned partition."""
        partition = self.partition_for(transactional_id)
        if partition in self.loading_partitions:
            return ErrorCode.coordinator_load_in_progress
        entry = self.transaction_metadata_cache.get(partition)
        if entry is None:
            return ErrorCode.not_coordinator
        md = entry.metadata_per_transactional_id.get(transactional_id)
        return None if md is None else CoordinatorEpochAndTxnMetadata(entry.coordinator_epoch, md)

    def put_transaction_state_if_not_exists(self, metadata: TransactionMetadata) -> ErrorCode | CoordinatorEpochAndTxnMetadata:
        """Cache ``metadata`` unless its id is there already; returns what is cached."""
        found = self.get_transaction_state(metadata.transactional_id)
        if isinstance(found, (ErrorCode, CoordinatorEpochAndTxnMetadata)):
            return found
        entry = self.transaction_metadata_cache[self.partition_for(metadata.transactional_id)]
        entry.metadata_per_transactional_id[metadata.transactional_id] = metadata
        return CoordinatorEpochAndTxnMetadata(entry.coordinator_epoch, metadata)

    def all_transactions(self) -> Iterator[tuple[int, TransactionMetadata]]:
        """(coordinator epoch, metadata) of every cached transaction."""
        for entry in list(self.transaction_metadata_cache.values()):
            for md in list(entry.metadata_per_transactional_id.values()):
                yield entry.coordinator_epoch, md

    def timed_out_transactions(self, now_ms: int) -> list[tuple[str, int, int]]:
        """(transactional id, producer id, producer epoch) of each Ongoing transaction with
        nothing pending that started more than its timeout ago (Kafka's
        timedOutTransactions)."""
        return [(md.transactional_id, md.producer_id, md.producer_epoch)
                for _, md in self.all_transactions()
                if md.state == TransactionState.ONGOING and md.pending_state is None
                and md.txn_start_timestamp + md.txn_timeout_ms < now_ms]

    # ------------------------------------------------------------------ loading
    def load_transactions_for_partition(self, partition: int, coordinator_epoch: int) -> list[TransactionMetadata]:
        """Replay __transaction_state-``partition`` from this broker's log and install its
        transactions at ``coordinator_epoch``. Returns those that were found in
        PrepareCommit/PrepareAbort (their markers must be sent again). Raises KeyError when the
        partition is not hosted here."""
        p = self.replica_manager.partitions[TopicPartition(TRANSACTION_STATE_TOPIC, partition)]
        found: dict[str, TransactionMetadata] = {}
        records = 0
        for key_bytes, value_bytes in iter_partition_records(p.log, p.log.log_end_offset,
                                                             self.config.load_buffer_size):
            records += 1
            if key_bytes is None:
                continue
            try:
                txn_id = decode_key(key_bytes).transactional_id
                if value_bytes is None:
                    found.pop(txn_id, None)
                else:
                    found[txn_id] = TransactionMetadata.from_log_value(txn_id, decode_value(value_bytes))
            except (TransactionLogError, ValueError) as exc:
                log.warning("transaction_record_skipped", partition=partition, error=str(exc))
        self.transaction_metadata_cache[partition] = TxnMetadataCacheEntry(coordinator_epoch, found)
        self.loading_partitions.pop(partition, None)
        log.info("transaction_partition_loaded", partition=partition, coordinator_epoch=coordinator_epoch,
                 records=records, transactions=len(found))
        return [md for md in found.values()
                if md.state in (TransactionState.PREPARE_COMMIT, TransactionState.PREPARE_ABORT)]

    def remove_transactions_for_partition(self, partition: int) -> int:
        """Forget a partition this broker no longer leads; returns how many ids it held."""
        self.loading_partitions.pop(partition, None)
        entry = self.transaction_metadata_cache.pop(partition, None)
        return 0 if entry is None else len(entry.metadata_per_transactional_id)

    # ------------------------------------------------------------------ writes
    def _still_owned(self, transactional_id: str, coordinator_epoch: int,
                     metadata: TransactionMetadata) -> ErrorCode | None:
        found = self.get_transaction_state(transactional_id)
        if isinstance(found, ErrorCode):
            return found
        if found is None or found.coordinator_epoch != coordinator_epoch or found.transaction_metadata is not metadata:
            return ErrorCode.not_coordinator
        return None

    async def append_transaction_to_log(self, transactional_id: str, coordinator_epoch: int,
                                        metadata: TransactionMetadata,
                                        transit: TxnTransitMetadata) -> ErrorCode:
        """Write ``transit`` for ``transactional_id`` (acks=-1) and, once acknowledged, apply
        it to ``metadata``. Returns NONE, or the error a client sees (APPEND_ERROR_MAP;
        NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS when the partition moved or is being
        reloaded). On any error the pending transition is dropped and nothing is applied."""
        error = self._still_owned(transactional_id, coordinator_epoch, metadata)
        if error is not None:
            metadata.abort_transition()
            return error
        partition = self.partition_for(transactional_id)
        tp = TopicPartition(TRANSACTION_STATE_TOPIC, partition)
        record = (encode_key(TransactionLogKey(transactional_id)), encode_value(transit.to_log_value()))
        batch = build_records_batch([(record[0], record[1], (), self.wall_clock_ms())])
        statuses = await self.replica_manager.append_records(
            -1, self.config.request_timeout_ms, [(tp, memoryview(bytearray(batch)))])
        status = statuses[tp].error
        if status != ErrorCode.none:
            error = APPEND_ERROR_MAP.get(status, ErrorCode.unknown_server_error)
            log.warning("transaction_append_failed", transactional_id=transactional_id, partition=partition,
                        state=transit.txn_state.kafka_name, error=status.name.upper(),
                        answered=error.name.upper())
        else:
            error = self._still_owned(transactional_id, coordinator_epoch, metadata) or ErrorCode.none
        if error != ErrorCode.none:
            if metadata.pending_state == transit.txn_state:
                metadata.abort_transition()
            return error
        metadata.complete_transition_to(transit)
        log.debug("transaction_state_written", transactional_id=transactional_id,
                  state=transit.txn_state.kafka_name, producer_id=transit.producer_id,
                  producer_epoch=transit.producer_epoch)
        return ErrorCode.none
