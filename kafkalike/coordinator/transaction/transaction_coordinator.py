"""TransactionCoordinator: the broker-side logic of transactional producers (Kafka 3.9's
kafka.coordinator.transaction.TransactionCoordinator, ZooKeeper mode; KIP-98, KIP-360).

Each broker coordinates the transactional ids whose __transaction_state partition it leads
(transaction_state_manager.partition_for). Handled here, with Kafka's error codes and nothing
written on an error:

- FindCoordinator key type 1: the leader of the id's partition, creating the topic on first use.
- InitProducerId with a transactional id: a new id gets a producer id from the
  ProducerIdManager and epoch 0; a known one gets its epoch bumped (fencing the previous
  producer instance; a new producer id when the epoch is exhausted). KIP-360: InitProducerId
  v3+ may carry the producer id and epoch the client has; a stale one is PRODUCER_FENCED, the
  previous epoch is a retry. An Ongoing transaction of the id is aborted first (epoch fence +
  PrepareAbort) and the caller gets CONCURRENT_TRANSACTIONS until it is complete;
  PrepareCommit/PrepareAbort: CONCURRENT_TRANSACTIONS. Timeouts outside
  (0, transaction.max.timeout.ms]: INVALID_TRANSACTION_TIMEOUT.
- AddPartitionsToTxn / AddOffsetsToTxn (the group's __consumer_offsets partition): Ongoing
  with the partitions added (no write when they are all in already). Unknown id or other
  producer id: INVALID_PRODUCER_ID_MAPPING; other epoch: PRODUCER_FENCED; a transition in
  flight or PrepareCommit/PrepareAbort: CONCURRENT_TRANSACTIONS.
- EndTxn: PrepareCommit/PrepareAbort written (acks=-1), the response sent after that write,
  then the markers sent to every partition leader (TransactionMarkerChannelManager), then
  CompleteCommit/CompleteAbort written. A retried EndTxn of a completed transaction answers
  NONE; one still in its Prepare state CONCURRENT_TRANSACTIONS; the opposite result or Empty
  INVALID_TXN_STATE.
- Timed-out transactions: every transaction.abort.timed.out.transaction.cleanup.interval.ms,
  Ongoing transactions older than their timeout are aborted with a bumped epoch (the producer
  is fenced, as in Kafka).
- Failover: a partition loaded with transactions in PrepareCommit/PrepareAbort sends their
  markers again and completes them.
- DescribeTransactions, ListTransactions (KIP-664; v1's duration filter, KIP-994).

- KIP-890 part 1: AddPartitionsToTxn v4 with verify_only (a partition leader asks, before the
  first transactional write of a producer to a partition, whether the partition is in the
  producer's ongoing transaction): per partition NONE when it is, INVALID_TXN_STATE when not;
  the id-level errors as for AddPartitionsToTxn (nothing written either way).

Not done: transactional.id.expiration.ms (ids never expire; Kafka tombstones ids idle that
long).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs
import structlog
import trio

from kafkalike.coordinator.group_coordinator import FindCoordinatorResult  # key type 1 answers the same shape
from kafkalike.coordinator.transaction.transaction_marker_channel_manager import (TransactionMarkerChannelManager,
                                                                                   TxnMarkerEntry)
from kafkalike.coordinator.transaction.transaction_metadata import (NO_PRODUCER_EPOCH, TransactionMetadata,
                                                                    TransactionState)
from kafkalike.coordinator.transaction.transaction_state_manager import (TRANSACTION_STATE_TOPIC,
                                                                          CoordinatorEpochAndTxnMetadata,
                                                                          TransactionConfig,
                                                                          TransactionStateManager)
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition

__all__ = ["TransactionCoordinator", "InitProducerIdResult", "FindCoordinatorResult", "TransactionDescription",
           "ListedTransaction"]

log = structlog.get_logger(__name__)

S = TransactionState


@attrs.frozen
class InitProducerIdResult:
    """InitProducerId's answer: error, producer id (int64), producer epoch (int16)."""

    error: ErrorCode
    producer_id: int = -1
    producer_epoch: int = -1


@attrs.frozen
class TransactionDescription:
    """One entry of DescribeTransactions (times in wall-clock ms, -1 for none)."""

    error: ErrorCode
    transactional_id: str
    state: str = ""
    timeout_ms: int = 0
    start_timestamp_ms: int = -1
    producer_id: int = -1
    producer_epoch: int = -1
    partitions: tuple[TopicPartition, ...] = ()


@attrs.frozen
class ListedTransaction:
    """One entry of ListTransactions."""

    transactional_id: str
    producer_id: int
    state: str


class TransactionCoordinator:
    """The transaction coordinator of one broker (see module doc).

    ``replica_manager``: partitions (leadership, logs) and appends; ``metadata_cache``: topic
    partitions, leaders and broker endpoints; ``admin_manager``: creates __transaction_state
    (``create_topic``); ``generate_producer_id``: the ProducerIdManager's (async, int64);
    ``inter_broker_listener``: where markers are sent; ``wall_clock_ms``: injectable clock.
    ``startup()`` gives it the broker id, nursery, ZooKeeper client and the inter-broker
    listener's SSL context and SASL credentials, which exist only once the broker runs.
    """

    def __init__(self, config: TransactionConfig, *, replica_manager: Any, metadata_cache: Any,
                 admin_manager: Any, generate_producer_id: Callable[[], Awaitable[int]],
                 inter_broker_listener: str, wall_clock_ms: Callable[[], int] | None = None) -> None:
        self.config = config
        self.replica_manager = replica_manager
        self.metadata_cache = metadata_cache
        self.admin_manager = admin_manager
        self.generate_producer_id = generate_producer_id
        self.inter_broker_listener = inter_broker_listener
        self.wall_clock_ms = wall_clock_ms or (lambda: int(time.time() * 1000))
        self.state_manager = TransactionStateManager(-1, config, replica_manager, self.wall_clock_ms)
        self.marker_manager = TransactionMarkerChannelManager(
            -1, self._leader_for, self._endpoint_for, self._topic_exists,
            request_timeout_ms=config.request_timeout_ms)
        self.active = False
        self.kafka_zk: Any = None
        self._nursery: trio.Nursery | None = None
        self._create_lock = trio.Lock()

    # ------------------------------------------------------------------ metadata lookups
    def _leader_for(self, tp: TopicPartition) -> int:
        info = self.metadata_cache.partition(tp)
        return -1 if info is None else int(info.leader)

    def _endpoint_for(self, broker_id: int) -> tuple[str, int] | None:
        return self.metadata_cache.endpoint(broker_id, self.inter_broker_listener)

    def _topic_exists(self, topic: str) -> bool:
        return bool(self.metadata_cache.contains_topic(topic))

    def partition_exists(self, tp: TopicPartition) -> bool:
        """True when the broker's metadata knows ``tp``."""
        return self.metadata_cache.partition(tp) is not None

    # ------------------------------------------------------------------ lifecycle
    async def startup(self, nursery: trio.Nursery | None, broker_id: int, kafka_zk: Any,
                      ssl_context: Any = None, sasl: Any = None) -> None:
        """Start serving: the marker sender, the timed-out transaction aborter, and the
        partitions this broker leads already. If __transaction_state exists its real partition
        count wins over transaction.state.log.num.partitions."""
        assert nursery is not None, "startup() of a broker that is not running"
        self._nursery = nursery
        self.kafka_zk = kafka_zk
        self.state_manager.broker_id = broker_id
        self.marker_manager.broker_id = broker_id
        self.marker_manager.ssl_context = ssl_context
        self.marker_manager.sasl = sasl
        if kafka_zk is not None:
            try:
                found = await kafka_zk.get_topic_assignment(TRANSACTION_STATE_TOPIC)
            except Exception as exc:
                log.warning("transaction_topic_read_failed", error=str(exc))
                found = None
            if found is not None:
                self.state_manager.use_partition_count(len(found[0].partitions))
        self.marker_manager.start(nursery)
        nursery.start_soon(self._abort_timed_out_loop)
        self.active = True
        self.on_leadership_change()

    async def shutdown(self) -> None:
        """Stop serving: answers NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE from now on."""
        self.active = False
        self.marker_manager.shutdown()
        for p in list(self.state_manager.transaction_metadata_cache) + list(self.state_manager.loading_partitions):
            self.state_manager.remove_transactions_for_partition(p)

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception:
                log.exception("transaction_coordinator_task_failed", task=getattr(fn, "__name__", repr(fn)))
        if self._nursery is not None:
            self._nursery.start_soon(guarded)

    # ------------------------------------------------------------------ leadership
    def on_leadership_change(self) -> None:
        """Load the __transaction_state partitions this broker now leads (coordinator epoch =
        the partition's leader epoch) and unload those it lost (Kafka's onElection /
        onResignation), after every LeaderAndIsr / StopReplica."""
        if not self.active:
            return
        sm = self.state_manager
        for p in range(sm.config.num_partitions):
            part = self.replica_manager.partitions.get(TopicPartition(TRANSACTION_STATE_TOPIC, p))
            leading = part is not None and part.is_leader
            loaded = sm.transaction_metadata_cache.get(p)
            epoch = int(part.leader_epoch) if leading else -1
            if leading and p not in sm.loading_partitions and (loaded is None or loaded.coordinator_epoch != epoch):
                sm.loading_partitions[p] = epoch
                self.marker_manager.remove_markers_for_txn_topic_partition(p)
                self._spawn(self._load, p, epoch)
            elif not leading and (loaded is not None or p in sm.loading_partitions):
                n = sm.remove_transactions_for_partition(p)
                stopped = self.marker_manager.remove_markers_for_txn_topic_partition(p)
                log.info("transaction_partition_unloaded", partition=p, transactions=n, markers_stopped=stopped)

    async def _load(self, partition: int, epoch: int) -> None:
        await trio.sleep(0)
        sm = self.state_manager
        if sm.loading_partitions.get(partition) != epoch:
            return
        try:
            to_complete = sm.load_transactions_for_partition(partition, epoch)
        except Exception as exc:
            log.error("transaction_partition_load_failed", partition=partition, error=str(exc))
            sm.loading_partitions.pop(partition, None)
            return
        for md in to_complete:
            log.info("transaction_markers_resent", transactional_id=md.transactional_id,
                     state=md.state.kafka_name, coordinator_epoch=epoch)
            self._send_markers(md, epoch, md.state == S.PREPARE_COMMIT)

    # ------------------------------------------------------------------ FindCoordinator
    async def find_coordinator(self, transactional_id: str | None, listener_name: str) -> FindCoordinatorResult:
        """FindCoordinator key type 1: the leader of the id's __transaction_state partition,
        creating the topic on first use (COORDINATOR_NOT_AVAILABLE meanwhile and while the
        partition has no live leader); INVALID_REQUEST for an empty or null id."""
        if not transactional_id:
            return FindCoordinatorResult(ErrorCode.invalid_request, message="empty transactional id")
        cache = self.metadata_cache
        existing = cache.partitions_of(TRANSACTION_STATE_TOPIC)
        if existing:
            self.state_manager.use_partition_count(len(existing))
        partition = self.state_manager.partition_for(transactional_id)
        info = cache.partition(TopicPartition(TRANSACTION_STATE_TOPIC, partition))
        if info is None:
            if not existing:
                await self._create_transaction_topic()
            return FindCoordinatorResult(ErrorCode.coordinator_not_available,
                                         message=f"{TRANSACTION_STATE_TOPIC} is being created")
        endpoint = cache.endpoint(info.leader, listener_name) if info.leader >= 0 else None
        if endpoint is None:
            return FindCoordinatorResult(ErrorCode.coordinator_not_available,
                                         message=f"{TRANSACTION_STATE_TOPIC}-{partition} has no live leader")
        return FindCoordinatorResult(ErrorCode.none, info.leader, endpoint[0], endpoint[1])

    async def _create_transaction_topic(self) -> None:
        async with self._create_lock:
            kzk = self.kafka_zk
            if kzk is None or self.admin_manager is None or \
                    await kzk.get_topic_assignment(TRANSACTION_STATE_TOPIC) is not None:
                return
            live = await kzk.get_broker_ids()
            rf = self.config.replication_factor
            if len(live) < rf:
                log.warning("transaction_topic_replication_factor_clamped", configured=rf, live_brokers=len(live),
                            hint="set transaction.state.log.replication.factor to the cluster size")
                rf = max(1, len(live))
            min_isr = min(self.config.min_isr, rf)
            try:
                await self.admin_manager.create_topic(TRANSACTION_STATE_TOPIC, self.state_manager.config.num_partitions,
                                                      rf, self.config.topic_configs(min_isr))
            except Exception as exc:
                if "already exists" not in str(exc):
                    log.warning("transaction_topic_create_failed", error=str(exc))
                return
            log.info("transaction_topic_created", partitions=self.state_manager.config.num_partitions,
                     replication_factor=rf, min_insync_replicas=min_isr)

    # ------------------------------------------------------------------ InitProducerId
    def _state(self, transactional_id: str) -> ErrorCode | CoordinatorEpochAndTxnMetadata | None:
        if not self.active:
            return ErrorCode.coordinator_not_available
        return self.state_manager.get_transaction_state(transactional_id)

    def _producer_state(self, transactional_id: str,
                        producer_id: int) -> ErrorCode | CoordinatorEpochAndTxnMetadata:
        """The id's state if ``producer_id`` owns it, else the error AddPartitionsToTxn, EndTxn and
        the KIP-890 check answer: INVALID_REQUEST (empty id), COORDINATOR_NOT_AVAILABLE /
        NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS (from the state manager),
        INVALID_PRODUCER_ID_MAPPING (unknown id or another producer id)."""
        if transactional_id == "":
            return ErrorCode.invalid_request
        found = self._state(transactional_id)
        if isinstance(found, ErrorCode):
            return found
        if found is None or found.transaction_metadata.producer_id != producer_id:
            return ErrorCode.invalid_producer_id_mapping
        return found

    async def handle_init_producer_id(self, transactional_id: str, transaction_timeout_ms: int,
                                      expected: tuple[int, int] | None = None) -> InitProducerIdResult:
        """InitProducerId for a transactional id (see module doc). ``expected``: (producer id,
        epoch) the client has (v3+), None when it has none."""
        if transactional_id == "":
            return InitProducerIdResult(ErrorCode.invalid_request)
        if not 0 < transaction_timeout_ms <= self.config.max_timeout_ms:
            return InitProducerIdResult(ErrorCode.invalid_transaction_timeout)
        found = self._state(transactional_id)
        if found is None:
            try:
                pid = await self.generate_producer_id()
            except Exception as exc:
                log.warning("producer_id_unavailable", error=str(exc))
                return InitProducerIdResult(ErrorCode.coordinator_not_available)
            found = self.state_manager.put_transaction_state_if_not_exists(TransactionMetadata(
                transactional_id, pid, NO_PRODUCER_EPOCH, transaction_timeout_ms, S.EMPTY,
                txn_last_update_timestamp=self.wall_clock_ms()))
        if isinstance(found, ErrorCode):
            return InitProducerIdResult(found)
        assert found is not None
        coordinator_epoch, md = found.coordinator_epoch, found.transaction_metadata
        now = self.wall_clock_ms()
        if md.pending_state is not None:
            return InitProducerIdResult(ErrorCode.concurrent_transactions)
        # Kafka's isValidProducerId: a just-created id (no epoch yet) accepts any producer id (a
        # producer recovering from UNKNOWN_PRODUCER_ID); otherwise it must be the current one
        if expected is not None and md.producer_epoch != NO_PRODUCER_EPOCH and expected[0] != md.producer_id:
            return InitProducerIdResult(ErrorCode.producer_fenced)
        if md.state in (S.PREPARE_ABORT, S.PREPARE_COMMIT):
            return InitProducerIdResult(ErrorCode.concurrent_transactions)
        if md.state == S.ONGOING:
            fence = md.prepare_fence_producer_epoch()
            md.enter_epoch_fence(fence)
            log.info("transaction_fenced_by_init", transactional_id=transactional_id, producer_id=md.producer_id,
                     new_epoch=md.producer_epoch)
            error = await self.handle_end_transaction(transactional_id, md.producer_id, md.producer_epoch,
                                                      committed=False, is_from_client=False)
            return InitProducerIdResult(error if error != ErrorCode.none else ErrorCode.concurrent_transactions)
        if md.state not in (S.EMPTY, S.COMPLETE_ABORT, S.COMPLETE_COMMIT):
            return InitProducerIdResult(ErrorCode.unknown_server_error)
        if md.is_producer_epoch_exhausted and (expected is None or expected[1] == md.producer_epoch):
            try:
                new_pid = await self.generate_producer_id()
            except Exception as exc:
                log.warning("producer_id_unavailable", error=str(exc))
                return InitProducerIdResult(ErrorCode.coordinator_not_available)
            if md.pending_state is not None:
                return InitProducerIdResult(ErrorCode.concurrent_transactions)
            transit = md.prepare_producer_id_rotation(new_pid, transaction_timeout_ms, now, expected is not None)
        else:
            outcome = md.prepare_increment_producer_epoch(transaction_timeout_ms,
                                                          None if expected is None else expected[1], now)
            if isinstance(outcome, ErrorCode):
                return InitProducerIdResult(outcome)
            transit = outcome
        error = await self.state_manager.append_transaction_to_log(transactional_id, coordinator_epoch, md, transit)
        if error != ErrorCode.none:
            return InitProducerIdResult(error)
        log.info("producer_initialized", transactional_id=transactional_id, producer_id=transit.producer_id,
                 producer_epoch=transit.producer_epoch)
        return InitProducerIdResult(ErrorCode.none, transit.producer_id, transit.producer_epoch)

    # ------------------------------------------------------------------ AddPartitionsToTxn
    async def handle_add_partitions_to_transaction(self, transactional_id: str, producer_id: int,
                                                   producer_epoch: int,
                                                   partitions: Iterable[TopicPartition]) -> ErrorCode:
        """Add ``partitions`` to the id's transaction (state Ongoing). Errors: see module doc."""
        found = self._producer_state(transactional_id, producer_id)
        if isinstance(found, ErrorCode):
            return found
        md = found.transaction_metadata
        added = set(partitions)
        if md.producer_epoch != producer_epoch:
            return ErrorCode.producer_fenced
        if md.pending_state is not None or md.state in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
            return ErrorCode.concurrent_transactions
        if md.state == S.ONGOING and added <= md.topic_partitions:
            return ErrorCode.none
        if md.state not in (S.EMPTY, S.ONGOING, S.COMPLETE_COMMIT, S.COMPLETE_ABORT):
            return ErrorCode.invalid_txn_state
        transit = md.prepare_add_partitions(added, self.wall_clock_ms())
        return await self.state_manager.append_transaction_to_log(transactional_id, found.coordinator_epoch,
                                                                  md, transit)

    def handle_verify_partitions_in_transaction(self, transactional_id: str, producer_id: int,
                                                producer_epoch: int,
                                                partitions: Iterable[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """KIP-890 part 1 (Kafka 3.9's TransactionCoordinator.handleVerifyPartitionsInTransaction):
        is each of ``partitions`` part of the id's ongoing transaction? Per partition NONE (it
        is) or INVALID_TXN_STATE (it is not: the transaction never added it, or completed; newer
        Kafka answers TRANSACTION_ABORTABLE here). Every
        partition gets the same id-level error when there is one: INVALID_REQUEST (empty id),
        NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS, INVALID_PRODUCER_ID_MAPPING (unknown id
        or other producer id), PRODUCER_FENCED (other epoch), CONCURRENT_TRANSACTIONS (the
        transaction is in PrepareCommit/PrepareAbort). Writes nothing."""
        wanted = list(partitions)
        error = self._verify_error(transactional_id, producer_id, producer_epoch)
        if isinstance(error, ErrorCode):
            return {tp: error for tp in wanted}
        # the partitions are recorded when AddPartitionsToTxn is written and cleared when the
        # transaction completes (Kafka checks membership only, as here)
        return {tp: ErrorCode.none if tp in error.topic_partitions else ErrorCode.invalid_txn_state
                for tp in wanted}

    def _verify_error(self, transactional_id: str, producer_id: int,
                      producer_epoch: int) -> ErrorCode | TransactionMetadata:
        found = self._producer_state(transactional_id, producer_id)
        if isinstance(found, ErrorCode):
            return found
        md = found.transaction_metadata
        if md.producer_epoch != producer_epoch:
            return ErrorCode.producer_fenced
        if md.state in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
            return ErrorCode.concurrent_transactions
        return md

    # ------------------------------------------------------------------ EndTxn
    async def handle_end_transaction(self, transactional_id: str, producer_id: int, producer_epoch: int,
                                     committed: bool, *, is_from_client: bool = True) -> ErrorCode:
        """End the id's transaction: PrepareCommit/PrepareAbort written, then (after this
        returns NONE) markers and CompleteCommit/CompleteAbort. Errors: see module doc."""
        found = self._producer_state(transactional_id, producer_id)
        if isinstance(found, ErrorCode):
            return found
        md = found.transaction_metadata
        if (is_from_client and producer_epoch != md.producer_epoch) or producer_epoch < md.producer_epoch:
            return ErrorCode.producer_fenced
        if md.pending_state is not None:
            return ErrorCode.concurrent_transactions
        state = md.state
        if state == S.ONGOING or (state == S.PREPARE_EPOCH_FENCE and not committed and not is_from_client):
            target = S.PREPARE_COMMIT if committed else S.PREPARE_ABORT
            transit = md.prepare_abort_or_commit(target, self.wall_clock_ms())
            error = await self.state_manager.append_transaction_to_log(
                transactional_id, found.coordinator_epoch, md, transit)
            if error != ErrorCode.none:
                if md.state == S.PREPARE_EPOCH_FENCE:  # keep the bumped epoch, do not bump it again
                    md.state = S.ONGOING
                    md.has_failed_epoch_fence = True
                return error
            log.info("transaction_ending", transactional_id=transactional_id, producer_id=md.producer_id,
                     producer_epoch=md.producer_epoch, result="COMMIT" if committed else "ABORT",
                     partitions=len(md.topic_partitions))
            self._send_markers(md, found.coordinator_epoch, committed)
            return ErrorCode.none
        if state == S.COMPLETE_COMMIT:
            return ErrorCode.none if committed else ErrorCode.invalid_txn_state
        if state == S.COMPLETE_ABORT:
            return ErrorCode.none if not committed else ErrorCode.invalid_txn_state
        if state == S.PREPARE_COMMIT:
            return ErrorCode.concurrent_transactions if committed else ErrorCode.invalid_txn_state
        if state == S.PREPARE_ABORT:
            return ErrorCode.concurrent_transactions if not committed else ErrorCode.invalid_txn_state
        return ErrorCode.invalid_txn_state

    def _send_markers(self, md: TransactionMetadata, coordinator_epoch: int, committed: bool) -> None:
        entry = TxnMarkerEntry(md.transactional_id, self.state_manager.partition_for(md.transactional_id),
                               md.producer_id, md.producer_epoch, committed, coordinator_epoch,
                               frozenset(md.topic_partitions))

        async def complete() -> None:
            await self._complete_transaction(md, coordinator_epoch)

        self.marker_manager.add_txn_markers_to_send(entry, complete)

    async def _complete_transaction(self, md: TransactionMetadata, coordinator_epoch: int) -> None:
        """Write CompleteCommit/CompleteAbort once every marker is written. Retried (backoff
        0.1 s doubling to 2 s) while the log answers COORDINATOR_NOT_AVAILABLE (e.g. fewer
        in-sync replicas than transaction.state.log.min.isr), as Kafka retries the append;
        dropped when this broker is no longer the coordinator at that epoch (the next one
        loads the Prepare state and completes the transaction)."""
        txn_id = md.transactional_id
        attempt = 0
        while True:
            found = self._state(txn_id)
            if not isinstance(found, CoordinatorEpochAndTxnMetadata) or found.transaction_metadata is not md \
                    or found.coordinator_epoch != coordinator_epoch:
                log.info("transaction_completion_dropped", transactional_id=txn_id, reason="coordinator moved")
                return
            if md.state not in (S.PREPARE_COMMIT, S.PREPARE_ABORT) or md.pending_state is not None:
                log.warning("transaction_completion_dropped", transactional_id=txn_id, state=md.state.kafka_name)
                return
            transit = md.prepare_complete(self.wall_clock_ms())
            error = await self.state_manager.append_transaction_to_log(txn_id, coordinator_epoch, md, transit)
            if error == ErrorCode.none:
                log.info("transaction_completed", transactional_id=txn_id, state=transit.txn_state.kafka_name,
                         producer_id=md.producer_id, producer_epoch=md.producer_epoch)
                return
            if error != ErrorCode.coordinator_not_available:
                log.warning("transaction_completion_failed", transactional_id=txn_id, error=error.name.upper())
                return
            attempt += 1
            (log.info if attempt % 20 == 1 else log.debug)(
                "transaction_completion_retry", transactional_id=txn_id, attempt=attempt, error=error.name.upper())
            await trio.sleep(min(0.1 * 2 ** min(attempt, 5), 2.0))

    # ------------------------------------------------------------------ timeouts
    async def _abort_timed_out_loop(self) -> None:
        interval = max(self.config.abort_timed_out_interval_ms, 10) / 1000
        while True:
            await trio.sleep(interval)
            await self.abort_timed_out_transactions()

    async def abort_timed_out_transactions(self) -> int:
        """Abort every Ongoing transaction older than its timeout, fencing its producer with
        a bumped epoch (Kafka's abortTimedOutTransactions). Returns how many were started."""
        started = 0
        for txn_id, producer_id, producer_epoch in self.state_manager.timed_out_transactions(self.wall_clock_ms()):
            found = self._state(txn_id)
            if not isinstance(found, CoordinatorEpochAndTxnMetadata):
                continue
            md = found.transaction_metadata
            if md.producer_id != producer_id or md.producer_epoch != producer_epoch or md.pending_state is not None \
                    or md.state != S.ONGOING:
                continue
            fence = md.prepare_fence_producer_epoch()
            md.enter_epoch_fence(fence)
            log.info("transaction_timed_out", transactional_id=txn_id, producer_id=producer_id,
                     old_epoch=producer_epoch, new_epoch=md.producer_epoch, timeout_ms=md.txn_timeout_ms)
            error = await self.handle_end_transaction(txn_id, md.producer_id, md.producer_epoch, committed=False,
                                                      is_from_client=False)
            if error != ErrorCode.none:
                log.warning("transaction_timeout_abort_failed", transactional_id=txn_id, error=error.name.upper())
            else:
                started += 1
        return started

    # ------------------------------------------------------------------ describe / list
    def handle_describe_transactions(self, transactional_id: str) -> TransactionDescription:
        """DescribeTransactions for one id: COORDINATOR_NOT_AVAILABLE, INVALID_REQUEST (empty
        id), COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR, TRANSACTIONAL_ID_NOT_FOUND (unknown
        or Dead) or its state (Kafka's handleDescribeTransactions)."""
        if not self.active:
            return TransactionDescription(ErrorCode.coordinator_not_available, transactional_id)
        if not transactional_id:
            return TransactionDescription(ErrorCode.invalid_request, transactional_id)
        found = self._state(transactional_id)
        if isinstance(found, ErrorCode):
            return TransactionDescription(found, transactional_id)
        if found is None or found.transaction_metadata.state == S.DEAD:
            return TransactionDescription(ErrorCode.transactional_id_not_found, transactional_id)
        md = found.transaction_metadata
        return TransactionDescription(
            ErrorCode.none, transactional_id, md.state.kafka_name, md.txn_timeout_ms, md.txn_start_timestamp,
            md.producer_id, md.producer_epoch,
            tuple(sorted(md.topic_partitions, key=lambda t: (t.topic, t.partition))))

    def handle_list_transactions(self, state_filters: Iterable[str], producer_id_filters: Iterable[int],
                                 duration_filter_ms: int = -1) -> tuple[ErrorCode, tuple[str, ...], list[ListedTransaction]]:
        """ListTransactions: (error, unknown state filters, matching transactions). A state
        filter that names no state is returned as unknown; ``duration_filter_ms`` >= 0 keeps
        transactions running longer than that. COORDINATOR_LOAD_IN_PROGRESS while any
        partition loads."""
        if not self.active:
            return ErrorCode.coordinator_not_available, (), []
        if self.state_manager.loading_partitions:
            return ErrorCode.coordinator_load_in_progress, (), []
        states: set[TransactionState] = set()
        unknown: list[str] = []
        for name in state_filters:
            state = TransactionState.from_kafka_name(name)
            if state is None:
                unknown.append(name)
            else:
                states.add(state)
        pids = set(producer_id_filters)
        now = self.wall_clock_ms()
        out = []
        for _, md in self.state_manager.all_transactions():
            if md.state == S.DEAD:  # being expired (Kafka leaves it out too)
                continue
            if states and md.state not in states:
                continue
            if pids and md.producer_id not in pids:
                continue
            if duration_filter_ms >= 0 and (md.txn_start_timestamp < 0 or now - md.txn_start_timestamp <= duration_filter_ms):
                continue
            out.append(ListedTransaction(md.transactional_id, md.producer_id, md.state.kafka_name))
        if unknown and not states:
            out = []  # only unknown states asked: nothing matches
        return ErrorCode.none, tuple(unknown), sorted(out, key=lambda t: t.transactional_id)
