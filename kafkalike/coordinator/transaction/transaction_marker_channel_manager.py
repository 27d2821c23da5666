"""TransactionMarkerChannelManager: sends the COMMIT/ABORT markers of finished transactions
to the leaders of their partitions with WriteTxnMarkers (Kafka 3.9's
TransactionMarkerChannelManager and TransactionMarkerRequestCompletionHandler; KIP-98).

``add_txn_markers_to_send(marker, on_complete)`` takes one transaction (producer id and
epoch, COMMIT or ABORT, its partitions, the coordinator epoch). Each partition is queued for
the broker that leads it now (``leader_for``, read from the broker's metadata cache); one
task per destination broker drains its queue into a single WriteTxnMarkers request (one
WritableTxnMarker per transaction, grouped by topic) over a kafkalike.client
KafkaConnection (the inter-broker listener, with its SSL context and SASL credentials).
Per partition result:

- NONE: the partition is done; when all of a transaction's partitions are done,
  ``on_complete()`` runs (the coordinator writes CompleteCommit/CompleteAbort);
- NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION (topic still known), NOT_ENOUGH_REPLICAS,
  NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR,
  COORDINATOR_LOAD_IN_PROGRESS, a lost connection or a broker that does not serve
  WriteTxnMarkers yet: retried after ``retry_backoff_ms``, re-routed to the partition's
  leader at that time (leader moves);
- UNKNOWN_TOPIC_OR_PARTITION for a topic the metadata no longer has, and
  UNSUPPORTED_FOR_MESSAGE_FORMAT: the partition is dropped (Kafka does the same);
- INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED: a newer coordinator or producer
  epoch exists; the transaction's markers stop here and ``on_complete`` is never called;
- anything else (CORRUPT_MESSAGE, ...): logged as an error and the partition dropped (Kafka
  throws IllegalStateException there).

``remove_markers_for_txn_topic_partition(p)`` cancels the transactions of a
__transaction_state partition the coordinator lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import structlog
import trio

from kafkalike.client.connection import CLIENT_API_VERSIONS, KafkaConnection
from kafkalike.client.errors import ClientError, UnsupportedApiVersionError
from kafkalike.protocol.codec import request_class
from kafkalike.protocol.entities import entity
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition

__all__ = ["TxnMarkerEntry", "TransactionMarkerChannelManager", "WRITE_TXN_MARKERS",
           "WRITE_TXN_MARKERS_VERSIONS"]

log = structlog.get_logger(__name__)

WRITE_TXN_MARKERS = 27
WRITE_TXN_MARKERS_VERSIONS = (1, 1)
"""WriteTxnMarkers versions this sender speaks: v1 (flexible), the oldest kio has; Kafka 3.9
sends v1 too."""

_RETRIABLE = frozenset({
    ErrorCode.not_leader_or_follower, ErrorCode.not_enough_replicas,
    ErrorCode.not_enough_replicas_after_append, ErrorCode.request_timed_out,
    ErrorCode.kafka_storage_error, ErrorCode.coordinator_load_in_progress,
    ErrorCode.unknown_topic_or_partition,
})
_FENCED = frozenset({ErrorCode.invalid_producer_epoch, ErrorCode.transaction_coordinator_fenced})


@attrs.frozen
class TxnMarkerEntry:
    """One transaction's markers: COMMIT (``committed``) or ABORT for ``partitions``."""

    transactional_id: str
    txn_topic_partition: int        # the __transaction_state partition of the id
    producer_id: int
    producer_epoch: int
    committed: bool
    coordinator_epoch: int
    partitions: frozenset[TopicPartition]


@attrs.define(eq=False)
class _PendingTxn:
    entry: TxnMarkerEntry
    remaining: set[TopicPartition]
    on_complete: Callable[[], Awaitable[None]]
    cancelled: bool = False


@attrs.define(eq=False)
class _Destination:
    broker_id: int
    queue: list[tuple[_PendingTxn, TopicPartition]] = attrs.field(factory=list)
    wakeup: trio.Event = attrs.field(factory=trio.Event)
    conn: KafkaConnection | None = None
    address: tuple[str, int] | None = None
    sent: int = 0
    failures: int = 0  # consecutive failed sends (logged at info on the first and every 50th)


class TransactionMarkerChannelManager:
    """The marker sender of one coordinator broker (see module doc).

    ``leader_for(tp) -> broker id or -1`` and ``endpoint_for(broker_id) -> (host, port) or
    None`` read the broker's metadata cache (inter-broker listener); ``topic_exists(topic)``
    too. ``ssl_context`` / ``sasl`` (kafkalike.client.sasl.SaslClientConfig): the inter-broker
    listener's TLS context and SASL credentials, None when it has none. ``request_timeout_ms``:
    per WriteTxnMarkers request; ``retry_backoff_ms``: wait before a failed partition is sent
    again.
    """

    def __init__(self, broker_id: int, leader_for: Callable[[TopicPartition], int],
                 endpoint_for: Callable[[int], tuple[str, int] | None],
                 topic_exists: Callable[[str], bool], *, ssl_context: Any = None, sasl: Any = None,
                 request_timeout_ms: float = 30000, retry_backoff_ms: float = 100) -> None:
        self.broker_id = broker_id
        self.leader_for = leader_for
        self.endpoint_for = endpoint_for
        self.topic_exists = topic_exists
        self.ssl_context = ssl_context
        self.sasl = sasl
        self.request_timeout_ms = request_timeout_ms
        self.retry_backoff_ms = retry_backoff_ms
        self._nursery: trio.Nursery | None = None
        self._destinations: dict[int, _Destination] = {}
        self._retry: list[tuple[_PendingTxn, TopicPartition]] = []
        self._retry_wakeup = trio.Event()
        self._pending: dict[str, _PendingTxn] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self, nursery: trio.Nursery) -> None:
        """Run the retry task (and, later, the destination tasks) in ``nursery``."""
        self._nursery = nursery
        nursery.start_soon(self._retry_loop)

    def shutdown(self) -> None:
        """Cancel every transaction's markers (the broker is stopping)."""
        for pending in list(self._pending.values()):
            pending.cancelled = True
        self._pending.clear()

    # ------------------------------------------------------------------ API
    def add_txn_markers_to_send(self, entry: TxnMarkerEntry, on_complete: Callable[[], Awaitable[None]]) -> None:
        """Send ``entry``'s markers; ``on_complete()`` runs (in the manager's nursery) once every
        partition acknowledged them. A transaction with no partitions completes at once."""
        previous = self._pending.pop(entry.transactional_id, None)
        if previous is not None:
            previous.cancelled = True
        pending = _PendingTxn(entry, set(entry.partitions), on_complete)
        self._pending[entry.transactional_id] = pending
        log.debug("txn_markers_queued", transactional_id=entry.transactional_id, producer_id=entry.producer_id,
                  committed=entry.committed, partitions=len(entry.partitions))
        if not pending.remaining:
            self._complete(pending)
            return
        for tp in sorted(pending.remaining, key=lambda t: (t.topic, t.partition)):
            self._route(pending, tp)

    def remove_markers_for_txn_topic_partition(self, txn_topic_partition: int) -> int:
        """Stop sending the markers of transactions of a lost __transaction_state partition;
        returns how many were stopped."""
        gone = [p for p in self._pending.values() if p.entry.txn_topic_partition == txn_topic_partition]
        for p in gone:
            p.cancelled = True
            del self._pending[p.entry.transactional_id]
        return len(gone)

    def pending_transactions(self) -> dict[str, frozenset[TopicPartition]]:
        """{transactional id: partitions still without a marker} (for tests and metrics)."""
        return {tid: frozenset(p.remaining) for tid, p in self._pending.items()}

    # ------------------------------------------------------------------ routing
    def _route(self, pending: _PendingTxn, tp: TopicPartition) -> None:
        if pending.cancelled or tp not in pending.remaining:
            return
        leader = self.leader_for(tp)
        if leader is None or leader < 0 or self.endpoint_for(leader) is None:
            self._schedule_retry(pending, tp)
            return
        dest = self._destinations.get(leader)
        if dest is None:
            dest = self._destinations[leader] = _Destination(leader)
            if self._nursery is None:
                raise RuntimeError("TransactionMarkerChannelManager used before start(nursery)")
            self._nursery.start_soon(self._send_loop, dest)
        dest.queue.append((pending, tp))
        dest.wakeup.set()

    def _schedule_retry(self, pending: _PendingTxn, tp: TopicPartition) -> None:
        self._retry.append((pending, tp))
        self._retry_wakeup.set()

    async def _retry_loop(self) -> None:
        while True:
            await self._retry_wakeup.wait()
            self._retry_wakeup = trio.Event()
            await trio.sleep(self.retry_backoff_ms / 1000)
            items, self._retry = self._retry, []
            for pending, tp in items:
                self._route(pending, tp)

    def _complete(self, pending: _PendingTxn) -> None:
        if pending.cancelled:
            return
        pending.cancelled = True  # nothing more to send
        if self._pending.get(pending.entry.transactional_id) is pending:
            del self._pending[pending.entry.transactional_id]
        log.info("txn_markers_written", transactional_id=pending.entry.transactional_id,
                 producer_id=pending.entry.producer_id, committed=pending.entry.committed,
                 partitions=len(pending.entry.partitions))

        async def run() -> None:
            try:
                await pending.on_complete()
            except Exception:
                log.exception("txn_markers_completion_failed", transactional_id=pending.entry.transactional_id)

        assert self._nursery is not None
        self._nursery.start_soon(run)

    # ------------------------------------------------------------------ sending
    async def _send_loop(self, dest: _Destination) -> None:
        try:
            async with trio.open_nursery() as conn_nursery:
                while True:
                    await dest.wakeup.wait()
                    dest.wakeup = trio.Event()
                    items = [(p, tp) for p, tp in dest.queue if not p.cancelled and tp in p.remaining]
                    dest.queue.clear()
                    if items:
                        await self._send_batch(dest, items, conn_nursery)
        finally:
            if dest.conn is not None:
                with trio.CancelScope(shield=True):
                    await dest.conn.aclose()

    def _build_request(self, version: int, items: list[tuple[_PendingTxn, TopicPartition]]) -> Any:
        cls = request_class(WRITE_TXN_MARKERS, version)
        marker_cls = entity(cls, "WritableTxnMarker")
        topic_cls = entity(cls, "WritableTxnMarkerTopic")
        by_txn: dict[int, tuple[_PendingTxn, dict[str, list[int]]]] = {}
        for pending, tp in items:
            _, topics = by_txn.setdefault(id(pending), (pending, {}))
            topics.setdefault(tp.topic, []).append(tp.partition)
        markers = tuple(
            marker_cls(producer_id=p.entry.producer_id, producer_epoch=p.entry.producer_epoch,
                       transaction_result=p.entry.committed, coordinator_epoch=p.entry.coordinator_epoch,
                       topics=tuple(topic_cls(name=t, partition_indexes=tuple(sorted(ps)))
                                    for t, ps in topics.items()))
            for p, topics in by_txn.values())
        return cls(markers=markers)

    async def _connection(self, dest: _Destination, nursery: trio.Nursery) -> KafkaConnection:
        address = self.endpoint_for(dest.broker_id)
        if address is None:
            raise ClientError(f"broker {dest.broker_id} is not alive")
        if dest.conn is not None and (dest.conn.closed or dest.address != address):
            await dest.conn.aclose()
            dest.conn = None
        if dest.conn is None:
            versions = dict(CLIENT_API_VERSIONS)
            versions[WRITE_TXN_MARKERS] = WRITE_TXN_MARKERS_VERSIONS
            dest.conn = await KafkaConnection.connect(
                address[0], address[1], nursery=nursery, client_id=f"broker-{self.broker_id}-txn-marker-sender",
                request_timeout_ms=self.request_timeout_ms, node_id=dest.broker_id,
                client_versions=versions, ssl_context=self.ssl_context, sasl=self.sasl)
            dest.address = address
        return dest.conn

    async def _send_batch(self, dest: _Destination, items: list[tuple[_PendingTxn, TopicPartition]],
                          nursery: trio.Nursery) -> None:
        try:
            conn = await self._connection(dest, nursery)
            version = conn.api_version(WRITE_TXN_MARKERS)
            response = await conn.send(self._build_request(version, items))
        except (ClientError, UnsupportedApiVersionError) as exc:
            dest.failures += 1
            (log.info if dest.failures % 50 == 1 else log.debug)(
                "txn_markers_send_failed", target_broker=dest.broker_id, partitions=len(items),
                error=str(exc), retry_ms=self.retry_backoff_ms, failures=dest.failures)
            if dest.conn is not None and not isinstance(exc, UnsupportedApiVersionError):
                await dest.conn.aclose()
                dest.conn = None
            for pending, tp in items:
                self._schedule_retry(pending, tp)
            return
        dest.sent += 1
        dest.failures = 0
        by_pid: dict[int, dict[TopicPartition, int]] = {}
        for result in response.markers:
            errors = by_pid.setdefault(int(result.producer_id), {})
            for t in result.topics:
                for p in t.partitions:
                    errors[TopicPartition(t.name, int(p.partition_index))] = int(p.error_code)
        for pending, tp in items:
            code = by_pid.get(pending.entry.producer_id, {}).get(tp)
            self._handle_result(dest, pending, tp, ErrorCode(code) if code is not None else None)

    def _handle_result(self, dest: _Destination, pending: _PendingTxn, tp: TopicPartition,
                       error: ErrorCode | None) -> None:
        if pending.cancelled:
            return
        txn = pending.entry.transactional_id
        if error is None:
            log.warning("txn_marker_missing_from_response", transactional_id=txn, partition=str(tp),
                        target_broker=dest.broker_id)
            self._schedule_retry(pending, tp)
            return
        if error == ErrorCode.none:
            pending.remaining.discard(tp)
        elif error == ErrorCode.unknown_topic_or_partition and not self.topic_exists(tp.topic):
            log.info("txn_marker_topic_deleted", transactional_id=txn, partition=str(tp))
            pending.remaining.discard(tp)
        elif error in _RETRIABLE:
            log.debug("txn_marker_retry", transactional_id=txn, partition=str(tp), error=error.name.upper(),
                      target_broker=dest.broker_id)
            self._schedule_retry(pending, tp)
            return
        elif error in _FENCED:
            log.warning("txn_markers_fenced", transactional_id=txn, partition=str(tp), error=error.name.upper(),
                        coordinator_epoch=pending.entry.coordinator_epoch)
            pending.cancelled = True
            if self._pending.get(txn) is pending:
                del self._pending[txn]
            return
        else:
            (log.info if error == ErrorCode.unsupported_for_message_format else log.error)(
                "txn_marker_dropped", transactional_id=txn, partition=str(tp), error=error.name.upper())
            pending.remaining.discard(tp)
        if not pending.remaining:
            self._complete(pending)


