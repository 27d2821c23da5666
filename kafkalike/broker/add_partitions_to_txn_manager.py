"""AddPartitionsToTxnManager: a partition leader's questions to transaction coordinators
(KIP-890 part 1; Kafka 3.9's kafka.server.AddPartitionsToTxnManager).

Before the first transactional write of a producer to a partition, the leader asks the
transaction coordinator of the producer's transactional id whether the partition is part of
the producer's ongoing transaction: AddPartitionsToTxn v4, one ``AddPartitionsToTxnTransaction``
per transactional id with ``verify_only=true``. ``verify(transactional_id, producer_id,
producer_epoch, partitions)`` queues the question for the coordinator broker (the leader of
the id's __transaction_state partition, read by ``coordinator_for``); one task per coordinator
broker drains its queue into a single request (the questions of all Produce requests waiting
meanwhile: Kafka batches the same way), over a kafkalike.client KafkaConnection on the
inter-broker listener (its SSL context and SASL credentials).

Answers, per partition: the coordinator's error (NONE, INVALID_TXN_STATE, PRODUCER_FENCED,
INVALID_PRODUCER_ID_MAPPING, CONCURRENT_TRANSACTIONS, NOT_COORDINATOR,
COORDINATOR_LOAD_IN_PROGRESS, ...). No coordinator known: COORDINATOR_NOT_AVAILABLE; a lost
connection, a coordinator without v4, or no answer within ``request_timeout_ms``:
NETWORK_EXCEPTION (Kafka answers a disconnect the same way). The caller (ReplicaManager)
turns the retriable ones into NOT_ENOUGH_REPLICAS for the producer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
import structlog
import trio

from kafkalike.client.connection import CLIENT_API_VERSIONS, KafkaConnection
from kafkalike.client.errors import ClientError, UnsupportedApiVersionError
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import request_class
from kafkalike.protocol.entities import entity
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition

__all__ = ["AddPartitionsToTxnManager", "VERIFY_VERSION"]

log = structlog.get_logger(__name__)

VERIFY_VERSION = 4
"""AddPartitionsToTxn version of the verification requests (the first with VerifyOnly)."""


@attrs.define(eq=False)
class _Question:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    partitions: tuple[TopicPartition, ...]
    done: trio.Event = attrs.field(factory=trio.Event)
    answer: dict[TopicPartition, ErrorCode] = attrs.field(factory=dict)

    def finish(self, errors: dict[TopicPartition, ErrorCode], default: ErrorCode) -> None:
        if self.done.is_set():
            return
        self.answer = {tp: errors.get(tp, default) for tp in self.partitions}
        self.done.set()


@attrs.define(eq=False)
class _Destination:
    broker_id: int
    queue: list[_Question] = attrs.field(factory=list)
    wakeup: trio.Event = attrs.field(factory=trio.Event)
    conn: KafkaConnection | None = None
    address: tuple[str, int] | None = None


class AddPartitionsToTxnManager:
    """The verification sender of one broker (see module doc).

    ``coordinator_for(transactional_id) -> broker id or -1`` and ``endpoint_for(broker_id) ->
    (host, port) or None`` read the broker's metadata cache (inter-broker listener).
    ``nursery``: where the per-coordinator send tasks run. ``inter_broker``
    (replica_fetcher.InterBrokerClientConfig): the inter-broker listener's TLS context and SASL
    credentials, read when a connection opens (they exist once the broker runs).
    ``request_timeout_ms``: the longest a verification waits for its answer.
    """

    def __init__(self, broker_id: int, coordinator_for: Callable[[str], int],
                 endpoint_for: Callable[[int], tuple[str, int] | None], nursery: trio.Nursery, *,
                 inter_broker: Any = None, request_timeout_ms: float = 30000) -> None:
        self.broker_id = broker_id
        self.coordinator_for = coordinator_for
        self.endpoint_for = endpoint_for
        self.nursery = nursery
        self.inter_broker = inter_broker
        self.request_timeout_ms = request_timeout_ms
        self._destinations: dict[int, _Destination] = {}
        self.requests_sent = 0

    async def verify(self, transactional_id: str, producer_id: int, producer_epoch: int,
                     partitions: Iterable[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """Ask the id's coordinator whether ``partitions`` are in the producer's ongoing
        transaction; returns the error of each partition (see module doc)."""
        question = _Question(transactional_id, producer_id, producer_epoch, tuple(partitions))
        node = self.coordinator_for(transactional_id)
        if node is None or node < 0 or self.endpoint_for(node) is None:
            return {tp: ErrorCode.coordinator_not_available for tp in question.partitions}
        dest = self._destinations.get(node)
        if dest is None:
            dest = self._destinations[node] = _Destination(node)
            self.nursery.start_soon(self._send_loop, dest)
        dest.queue.append(question)
        dest.wakeup.set()
        with trio.move_on_after(self.request_timeout_ms / 1000):
            await question.done.wait()
        question.finish({}, ErrorCode.network_exception)
        return question.answer

    async def shutdown(self) -> None:
        """Close the connections to the coordinators."""
        for dest in self._destinations.values():
            for q in dest.queue:
                q.finish({}, ErrorCode.network_exception)
            if dest.conn is not None:
                with trio.CancelScope(shield=True):
                    await dest.conn.aclose()
                dest.conn = None

    # ------------------------------------------------------------------ sending
    async def _send_loop(self, dest: _Destination) -> None:
        async with trio.open_nursery() as conn_nursery:
            while True:
                await dest.wakeup.wait()
                dest.wakeup = trio.Event()
                batch: list[_Question] = []
                later: list[_Question] = []
                ids: set[str] = set()
                for q in dest.queue:  # one entry per transactional id in a request
                    if q.done.is_set():
                        continue
                    (later if q.transactional_id in ids else batch).append(q)
                    ids.add(q.transactional_id)
                dest.queue = later
                if later:
                    dest.wakeup.set()
                if batch:
                    await self._send_batch(dest, batch, conn_nursery)

    def _build_request(self, batch: list[_Question]) -> Any:
        cls = request_class(ApiKey.ADD_PARTITIONS_TO_TXN, VERIFY_VERSION)
        txn_cls = entity(cls, "AddPartitionsToTxnTransaction")
        topic_cls = entity(cls, "AddPartitionsToTxnTopic")
        txns = []
        for q in batch:
            by_topic: dict[str, list[int]] = {}
            for tp in q.partitions:
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            txns.append(txn_cls(transactional_id=q.transactional_id, producer_id=q.producer_id,
                                producer_epoch=q.producer_epoch, verify_only=True,
                                topics=tuple(topic_cls(name=t, partitions=tuple(sorted(ps)))
                                             for t, ps in by_topic.items())))
        return cls(transactions=tuple(txns))

    async def _connection(self, dest: _Destination, nursery: trio.Nursery) -> KafkaConnection:
        address = self.endpoint_for(dest.broker_id)
        if address is None:
            raise ClientError(f"broker {dest.broker_id} is not alive")
        if dest.conn is not None and (dest.conn.closed or dest.address != address):
            await dest.conn.aclose()
            dest.conn = None
        if dest.conn is None:
            versions = dict(CLIENT_API_VERSIONS)
            versions[ApiKey.ADD_PARTITIONS_TO_TXN] = (VERIFY_VERSION, VERIFY_VERSION)
            dest.conn = await KafkaConnection.connect(
                address[0], address[1], nursery=nursery, client_id=f"broker-{self.broker_id}-txn-verifier",
                request_timeout_ms=self.request_timeout_ms, node_id=dest.broker_id,
                client_versions=versions, ssl_context=getattr(self.inter_broker, "ssl_context", None),
                sasl=getattr(self.inter_broker, "sasl", None))
            dest.address = address
        return dest.conn

    async def _send_batch(self, dest: _Destination, batch: list[_Question], nursery: trio.Nursery) -> None:
        try:
            conn = await self._connection(dest, nursery)
            conn.api_version(ApiKey.ADD_PARTITIONS_TO_TXN, min_version=VERIFY_VERSION)
            response = await conn.send(self._build_request(batch))
        except (ClientError, UnsupportedApiVersionError) as exc:
            log.info("txn_verification_failed", coordinator=dest.broker_id, transactions=len(batch), error=str(exc))
            if dest.conn is not None and not isinstance(exc, UnsupportedApiVersionError):
                await dest.conn.aclose()
                dest.conn = None
            for q in batch:
                q.finish({}, ErrorCode.network_exception)
            return
        self.requests_sent += 1
        top = ErrorCode(int(response.error_code))
        by_id: dict[str, dict[TopicPartition, ErrorCode]] = {}
        for result in response.results_by_transaction:
            errors = by_id.setdefault(result.transactional_id, {})
            for t in result.topic_results:
                for p in t.results_by_partition:
                    errors[TopicPartition(t.name, int(p.partition_index))] = ErrorCode(int(p.partition_error_code))
        for q in batch:
            q.finish(by_id.get(q.transactional_id, {}),
                     top if top != ErrorCode.none else ErrorCode.unknown_server_error)
