"""A trio producer: partitioning, per-partition batching (linger), v2 batches, acks 0/1/all.

Holds ``KafkaProducer``, ``RecordMetadata`` and ``PendingRecord``. After Kafka's
``KafkaProducer`` / ``RecordAccumulator`` / ``Sender``:

- ``enqueue()`` picks the partition (explicit; else murmur2 of the key, Kafka's default
  partitioner; else the sticky partition of KIP-480, which changes when its batch is sent)
  and appends the record to that partition's open batch. A batch is *ready* when it holds
  ``batch_size`` bytes, when ``linger_ms`` has passed since its first record, or on
  ``flush()``/close.
- One **sender task** drains ready batches, groups them by partition leader, and sends one
  Produce request per leader (requests to different leaders run concurrently). At most one
  batch per partition is in flight, so records of one partition are written in the order
  they were enqueued even across retries (Kafka's ``max.in.flight.requests.per.connection=1``
  guarantee, without idempotence).
- Batches are record batch v2 built by kafkalike.protocol.records.build_records_batch,
  compressed with ``compression_type`` (none, gzip, snappy, lz4, zstd).
- Retriable partition errors (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE,
  UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT ...), lost connections
  and timeouts put the batch back at the head of its partition's queue after a backoff and a
  Metadata refresh (backoff ``retry_backoff_ms`` doubling per attempt up to
  ``retry_backoff_max_ms``), until ``delivery_timeout_ms`` has passed since the batch was
  created or ``retries`` attempts were made (Kafka 2.1+: delivery.timeout.ms 120 s, retries
  unbounded); a batch that expires fails with RequestTimeoutError. Other errors fail the
  batch's records with KafkaError.
- Without idempotence a batch retried after a lost response may be written twice. With
  ``enable_idempotence`` (KIP-98; needs acks=all) the producer gets a producer id and epoch
  from InitProducerId and numbers each partition's records with sequence numbers in the
  batch header; a retried batch carries the same numbers, so the leader writes it once
  (answering NONE with the first write's offset, or DUPLICATE_SEQUENCE_NUMBER, taken as
  success with offset -1). OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID and
  INVALID_PRODUCER_EPOCH fail that batch and make the producer take a new producer id.
- ``acks``: 0 (no response; offsets are -1), 1 (leader), -1/"all" (all in-sync replicas).
- Backpressure: records waiting for acknowledgement may hold ``buffer_memory`` bytes; beyond
  that ``enqueue()`` sends what is queued and blocks until acknowledgements free room (at
  most ``max_block_ms``), so ``send_many()`` of millions of records runs in bounded memory.

Errors: ``send()`` / ``PendingRecord.wait()`` raise KafkaError, KafkaConnectionError,
RequestTimeoutError or UnsupportedApiVersionError; ``enqueue()`` raises ValueError for bad
arguments and KafkaError (UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, ...) for a topic
that Metadata still does not show with partitions after ``max_block_ms`` (asking with
auto-creation allowed, backing off on retriable errors) or a partition it does not have.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import structlog
import trio

from kafkalike.client.cluster import TopicPartition
from kafkalike.client.errors import ClientError, KafkaError, RequestTimeoutError
from kafkalike.client.kafka_client import KafkaClient
from kafkalike.client.partitioner import partition_for_key
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.records import build_records_batch

__all__ = ["KafkaProducer", "RecordMetadata", "PendingRecord", "ProducerStatistics",
           "COMPRESSION_TYPES"]

log = structlog.get_logger("kafkalike.client.producer")

COMPRESSION_TYPES = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
"""Kafka's ``compression.type`` names -> codec ids in the batch attributes."""

_SEQUENCE_ERRORS = frozenset({ErrorCode.out_of_order_sequence_number,
                              ErrorCode.unknown_producer_id, ErrorCode.invalid_producer_epoch})
_PRODUCE_MAX_VERSION = 9  # the codec's Produce fast path covers v3-v9
_RECORD_OVERHEAD = 24  # rough per-record bytes beyond key/value, for batch_size accounting


@attrs.frozen
class ProducerStatistics:
    """A producer's state in one value: records waiting (enqueued, not yet acknowledged or
    failed), partitions with a batch in flight, Produce requests sent, records acknowledged
    and failed, batch retries, and the producer id/epoch (-1 without idempotence)."""

    records_waiting: int
    bytes_waiting: int
    partitions_in_flight: int
    requests_sent: int
    records_acked: int
    records_failed: int
    retries: int
    producer_id: int
    producer_epoch: int


@attrs.frozen
class RecordMetadata:
    """Where a record was written: ``offset`` (-1 with acks=0), ``timestamp`` ms (the
    broker's LogAppendTime when the topic uses it, else the record's CreateTime)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class PendingRecord:
    """A record handed to the producer; ``await wait()`` gives its RecordMetadata.

    Records of one batch share the batch's completion (one event per batch, not per record).
    """

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    @property
    def topic(self) -> str:
        return self._batch.tp.topic

    @property
    def partition(self) -> int:
        return self._batch.tp.partition

    @property
    def done(self) -> bool:
        """True once acknowledged or failed."""
        return self._batch.done.is_set()

    async def wait(self) -> RecordMetadata:
        """RecordMetadata once acknowledged; raises the error that failed the record."""
        batch = self._batch
        await batch.done.wait()
        if batch.error is not None:
            raise batch.error
        offset = -1 if batch.base_offset < 0 else batch.base_offset + self._index
        timestamp = batch.log_append_time if batch.log_append_time >= 0 else \
            batch.records[self._index][3]
        return RecordMetadata(batch.tp.topic, batch.tp.partition, offset, timestamp)


def _as_bytes(name: str, blob: object) -> bytes:
    if isinstance(blob, (bytes, bytearray, memoryview)):
        return bytes(blob)
    raise ValueError(f"{name} must be bytes or None, got {type(blob).__name__}")


@attrs.define
class _Batch:
    tp: TopicPartition
    created: float
    records: list[tuple] = attrs.field(factory=list)
    size: int = 0
    attempts: int = 0
    retry_at: float = 0.0
    encoded: bytes | None = None
    done: trio.Event = attrs.field(factory=trio.Event)
    base_offset: int = -1
    log_append_time: int = -1
    error: BaseException | None = None


class KafkaProducer:
    """Produce records to a cluster (see module doc).

    ``client``: a started KafkaClient, or bootstrap servers (the producer then owns a client).
    ``acks`` 0, 1, -1 or "all"; ``compression_type`` a COMPRESSION_TYPES name; ``linger_ms``
    and ``request_timeout_ms`` in ms (the latter is also the Produce timeout sent to the
    broker); ``batch_size`` bytes per partition batch; ``max_request_size`` bytes;
    ``max_block_ms``: how long enqueue() waits for a new topic's Metadata;
    ``enable_idempotence``: sequence-numbered batches (KIP-98), needs ``acks="all"``;
    ``buffer_memory``: bytes of records waiting (enqueued, not yet acknowledged) before
    enqueue() blocks (Kafka's buffer.memory, 32 MiB);
    ``delivery_timeout_ms``: how long a record may take from enqueue() to acknowledgement,
    retries included; ``retries``, ``retry_backoff_ms``, ``retry_backoff_max_ms``: see above.
    Use as ``async with KafkaProducer(...) as producer:``; leaving flushes.
    """

    def __init__(
        self, client: KafkaClient | str | Iterable[str], *, acks: int | str = 1,
        compression_type: str = "none", linger_ms: float = 0, batch_size: int = 16384,
        max_request_size: int = 1048576, request_timeout_ms: float = 30000,
        retries: int = 2147483647, retry_backoff_ms: float = 100,
        retry_backoff_max_ms: float = 1000, delivery_timeout_ms: float = 120000,
        max_block_ms: float = 60000,
        enable_idempotence: bool = False, buffer_memory: int = 33554432,
        client_id: str = "kafkalike-producer",
    ) -> None:
        if acks == "all":
            acks = -1
        if acks not in (0, 1, -1):
            raise ValueError(f"acks must be 0, 1, -1 or 'all', got {acks!r}")
        if enable_idempotence and acks != -1:
            raise ValueError("enable_idempotence needs acks='all' (Kafka's rule)")
        if compression_type not in COMPRESSION_TYPES:
            raise ValueError(f"compression_type must be one of {sorted(COMPRESSION_TYPES)}, "
                             f"got {compression_type!r}")
        if batch_size < 1 or linger_ms < 0:
            raise ValueError("batch_size must be >= 1 and linger_ms >= 0")
        self._owns_client = not isinstance(client, KafkaClient)
        self.client = client if isinstance(client, KafkaClient) else KafkaClient(
            client, client_id=client_id, request_timeout_ms=request_timeout_ms + 5000)
        self.acks = int(acks)
        self.codec = COMPRESSION_TYPES[compression_type]
        self.linger_ms = linger_ms
        self.batch_size = batch_size
        self.max_request_size = max_request_size
        self.request_timeout_ms = request_timeout_ms
        self.retries = retries
        self.retry_backoff_ms = retry_backoff_ms
        self.retry_backoff_max_ms = retry_backoff_max_ms
        self.delivery_timeout_ms = delivery_timeout_ms
        self.max_block_ms = max_block_ms
        self.buffer_memory = buffer_memory
        self.enable_idempotence = enable_idempotence
        self.producer_id = -1
        """Producer id from InitProducerId (idempotence), -1 without."""
        self.producer_epoch = -1
        self._sequences: dict[TopicPartition, int] = {}
        self._reset_producer_id = False
        self._requests_sent = 0
        self._records_acked = 0
        self._records_failed = 0
        self._retries = 0
        self._queues: dict[TopicPartition, deque[_Batch]] = {}
        self._in_flight: set[TopicPartition] = set()
        self._sticky: dict[str, int] = {}
        self._wakeup = trio.Event()
        self._flushing = 0
        self._unsent = 0  # records enqueued and not yet resolved
        self._buffered = 0  # their bytes (estimate), bounded by buffer_memory
        self._buffer_freed: trio.Event | None = None
        self._idle = trio.Event()
        self._idle.set()
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._closed = False
        self._refreshing = False

    def statistics(self) -> ProducerStatistics:
        """The producer's state and counters now."""
        return ProducerStatistics(
            records_waiting=self._unsent, bytes_waiting=self._buffered,
            partitions_in_flight=len(self._in_flight),
            requests_sent=self._requests_sent, records_acked=self._records_acked,
            records_failed=self._records_failed, retries=self._retries,
            producer_id=self.producer_id, producer_epoch=self.producer_epoch)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> KafkaProducer:
        if self._owns_client:
            await self.client.start()
        if self.enable_idempotence:
            try:
                await self._init_producer_id()
            except BaseException:
                if self._owns_client:
                    await self.client.aclose()
                raise
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        self._nursery.start_soon(self._sender)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.flush()
        finally:
            self._closed = True
            self._fail_all(ClientError("producer closed"))
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()
            await self._nursery_cm.__aexit__(None, None, None)
            if self._owns_client:
                await self.client.aclose()

    # ------------------------------------------------------------------ public API

    async def send(self, topic: str, value: bytes | None, *, key: bytes | None = None,
                   headers: Sequence[tuple[str, bytes | None]] = (),
                   partition: int | None = None,
                   timestamp_ms: int | None = None) -> RecordMetadata:
        """Produce one record and wait for its acknowledgement; see enqueue()."""
        pending = await self.enqueue(topic, value, key=key, headers=headers,
                                     partition=partition, timestamp_ms=timestamp_ms)
        return await pending.wait()

    async def send_many(self, topic: str, records: Iterable[tuple]) -> list[RecordMetadata]:
        """Produce ``records`` ((key, value) or (key, value, headers) tuples) and wait for
        all; returns their RecordMetadata in input order. Raises the first failure."""
        pendings = []
        for rec in records:
            headers = rec[2] if len(rec) > 2 else ()
            pendings.append(await self.enqueue(topic, rec[1], key=rec[0], headers=headers))
        return [await p.wait() for p in pendings]

    async def enqueue(self, topic: str, value: bytes | None, *, key: bytes | None = None,
                      headers: Sequence[tuple[str, bytes | None]] = (),
                      partition: int | None = None,
                      timestamp_ms: int | None = None) -> PendingRecord:
        """Append a record to its partition's batch and return at once (after a Metadata
        lookup for a topic seen for the first time). ``timestamp_ms`` defaults to now.

        Raises ValueError (closed producer, non-bytes key/value), KafkaError
        (UNKNOWN_TOPIC_OR_PARTITION after ``max_block_ms``; MESSAGE_TOO_LARGE for a record
        above ``max_request_size``).
        """
        if self._closed or self._nursery is None:
            raise ValueError("producer is not open: use 'async with KafkaProducer(...)'")
        if key is not None and type(key) is not bytes:
            key = _as_bytes("key", key)
        if value is not None and type(value) is not bytes:
            value = _as_bytes("value", value)
        partitions = self.client.cluster.partitions_for(topic)
        if not partitions:
            partitions = await self._wait_for_topic(topic)
        if partition is None:
            if key is not None:
                partition = partitions[partition_for_key(key, len(partitions))]
            else:
                partition = self._sticky_partition(topic, partitions)
        elif partition not in partitions:
            raise KafkaError(ErrorCode.unknown_topic_or_partition,
                             f"produce to {topic}-{partition}")
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        size = _RECORD_OVERHEAD + (len(key) if key is not None else 0) + \
            (len(value) if value is not None else 0)
        if headers:
            headers = tuple(headers)
            size += sum(len(h[0]) + len(h[1] or b"") for h in headers)
        else:
            headers = ()
        record = (key, value, headers, ts)
        if size > self.max_request_size:
            raise KafkaError(ErrorCode.message_too_large,
                             f"produce to {topic}: record of about {size} bytes exceeds "
                             f"max_request_size={self.max_request_size}")
        if self._buffered + size > self.buffer_memory and self._unsent:
            await self._wait_for_buffer(size)
        tp = TopicPartition(topic, partition)
        queue = self._queues.get(tp)
        if queue is None:
            queue = self._queues[tp] = deque()
        wake = False
        if not queue or queue[-1].encoded is not None or \
                (queue[-1].size + size > self.batch_size and queue[-1].records):
            queue.append(_Batch(tp, trio.current_time()))
            wake = True  # the sender sleeps until the earliest known batch is due
        batch = queue[-1]
        pending = PendingRecord(batch, len(batch.records))
        batch.records.append(record)
        batch.size += size
        if batch.size >= self.batch_size:
            wake = True
        self._unsent += 1
        self._buffered += size
        if self._idle.is_set():
            self._idle = trio.Event()
        if wake:
            self._wakeup.set()
        return pending

    async def _wait_for_topic(self, topic: str) -> list[int]:
        """Ask Metadata for ``topic`` (auto-creation allowed) until it has partitions, backing
        off while the error is retriable (a new topic is LEADER_NOT_AVAILABLE until its
        leaders are elected), for at most ``max_block_ms`` (Kafka's max.block.ms)."""
        deadline = trio.current_time() + self.max_block_ms / 1000
        backoff = self.retry_backoff_ms
        while True:
            await self.client.refresh_metadata([topic], allow_auto_topic_creation=True)
            partitions = self.client.cluster.partitions_for(topic)
            if partitions:
                return partitions
            info = self.client.cluster.topics.get(topic)
            code = info.error_code if info is not None and info.error_code else \
                ErrorCode.unknown_topic_or_partition
            if not code.retriable or trio.current_time() + backoff / 1000 > deadline:
                raise KafkaError(code, f"produce to {topic} (after {self.max_block_ms} ms)")
            await trio.sleep(backoff / 1000)
            backoff = min(backoff * 2, 1000)

    async def _wait_for_buffer(self, size: int) -> None:
        """Block enqueue() until ``size`` more bytes fit in ``buffer_memory`` (Kafka's
        BufferPool): batches are sent at once meanwhile. Raises RequestTimeoutError after
        ``max_block_ms``."""
        self._flushing += 1  # whatever waits goes out now, linger or not
        self._wakeup.set()
        try:
            with trio.move_on_after(self.max_block_ms / 1000):
                while self._buffered + size > self.buffer_memory and self._unsent:
                    if self._buffer_freed is None:
                        self._buffer_freed = trio.Event()
                    await self._buffer_freed.wait()
                return
            raise RequestTimeoutError(
                f"no room for {size} bytes in buffer_memory={self.buffer_memory} within "
                f"max_block_ms={self.max_block_ms}", self.max_block_ms)
        finally:
            self._flushing -= 1

    async def flush(self) -> None:
        """Send every enqueued record now and wait until all are acknowledged or failed."""
        self._flushing += 1
        self._wakeup.set()
        try:
            await self._idle.wait()
        finally:
            self._flushing -= 1

    # ------------------------------------------------------------------ internals

    async def _init_producer_id(self) -> None:
        """InitProducerId (KIP-98) without a transactional id: a fresh producer id and
        epoch; sequence numbers restart at 0 for every partition. Raises KafkaError."""
        async def attempt() -> None:
            conn = await self.client.any_connection()
            response = await conn.call(ApiKey.INIT_PRODUCER_ID, transactional_id=None,
                                       transaction_timeout=60000, producer_id=-1,
                                       producer_epoch=-1)
            if response.error_code != ErrorCode.none:
                raise KafkaError(response.error_code, "init_producer_id")
            self.producer_id = int(response.producer_id)
            self.producer_epoch = int(response.producer_epoch)

        await self.client.retry(attempt, what="init_producer_id")
        self._sequences.clear()
        self._reset_producer_id = False
        log.debug("producer_id_assigned", producer_id=self.producer_id,
                  epoch=self.producer_epoch)

    def _encode(self, batch: _Batch) -> bytes:
        if not self.enable_idempotence:
            return build_records_batch(batch.records, compression=self.codec)
        seq = self._sequences.get(batch.tp, 0)
        # Kafka's DefaultRecordBatch.incrementSequence: wraps to 0 after Integer.MAX_VALUE
        self._sequences[batch.tp] = (seq + len(batch.records)) & 0x7FFFFFFF
        return build_records_batch(batch.records, compression=self.codec,
                                   producer_id=self.producer_id,
                                   producer_epoch=self.producer_epoch, base_sequence=seq)

    def _sticky_partition(self, topic: str, partitions: list[int]) -> int:
        current = self._sticky.get(topic)
        if current is not None:
            queue = self._queues.get(TopicPartition(topic, current))
            if queue and queue[-1].encoded is None and queue[-1].size < self.batch_size:
                return current
        available = self.client.cluster.available_partitions_for(topic) or partitions
        choice = random.choice(available)
        if current is not None and len(available) > 1:
            while choice == current:
                choice = random.choice(available)
        self._sticky[topic] = choice
        return choice

    def _ready(self, now: float) -> tuple[list[_Batch], float]:
        ready = []
        expired: list[_Batch] = []
        wake = float("inf")
        linger = self.linger_ms / 1000
        for tp, queue in self._queues.items():
            if not queue or tp in self._in_flight:
                continue
            if self._reset_producer_id:
                continue
            head = queue[0]
            if now >= head.created + self.delivery_timeout_ms / 1000:
                expired.append(head)
                continue
            if head.retry_at > now:
                wake = min(wake, head.retry_at)
                continue
            due = head.created + linger
            if self._flushing or self._closed or len(queue) > 1 or \
                    head.size >= self.batch_size or due <= now:
                ready.append(head)
            else:
                wake = min(wake, due)
            wake = min(wake, head.created + self.delivery_timeout_ms / 1000)
        for batch in expired:
            self._queues[batch.tp].popleft()
            self._finish(batch, None, RequestTimeoutError(
                f"produce to {batch.tp}: {len(batch.records)} record(s) expired, "
                f"{self.delivery_timeout_ms} ms passed since batch creation",
                self.delivery_timeout_ms))
        return ready, wake

    async def _sender(self) -> None:
        assert self._nursery is not None
        while True:
            if self._reset_producer_id and not self._in_flight:
                try:
                    await self._init_producer_id()
                except ClientError as exc:
                    log.warning("init_producer_id_failed", error=str(exc))
                    self._fail_all(exc)
                for queue in self._queues.values():
                    for batch in queue:
                        batch.encoded = None  # re-sequenced under the new producer id
            self._wakeup = trio.Event()
            ready, wake = self._ready(trio.current_time())
            if not ready:
                with trio.move_on_at(wake):
                    await self._wakeup.wait()
                continue
            by_leader: dict[int, list[_Batch]] = {}
            for batch in ready:
                leader = self.client.cluster.leader_for(batch.tp.topic, batch.tp.partition)
                if leader is None:
                    batch.retry_at = trio.current_time() + self._backoff(batch) / 1000
                    self._count_attempt(batch, KafkaError(ErrorCode.leader_not_available,
                                                          f"produce to {batch.tp}"))
                    self._request_refresh([batch.tp.topic])
                    continue
                by_leader.setdefault(leader, []).append(batch)
            for leader, batches in by_leader.items():
                request: list[_Batch] = []
                request_bytes = 0
                for batch in batches:
                    self._queues[batch.tp].popleft()
                    self._in_flight.add(batch.tp)
                    if batch.encoded is None:
                        batch.encoded = self._encode(batch)
                    if request and request_bytes + len(batch.encoded) > self.max_request_size:
                        self._nursery.start_soon(self._send_batches, leader, request)
                        request, request_bytes = [], 0
                    request.append(batch)
                    request_bytes += len(batch.encoded)
                self._nursery.start_soon(self._send_batches, leader, request)

    def _backoff(self, batch: _Batch) -> float:
        """ms to wait before the next attempt of ``batch`` (exponential, capped)."""
        return min(self.retry_backoff_ms * (2 ** min(batch.attempts, 20)),
                   self.retry_backoff_max_ms)

    def _count_attempt(self, batch: _Batch, error: BaseException) -> None:
        """Charge one failed attempt to a batch still at the head of its queue; fail it
        when out of retries."""
        batch.attempts += 1
        if batch.attempts > self.retries:  # (expiry by delivery_timeout_ms is _ready()'s)
            queue = self._queues.get(batch.tp)
            if queue and queue[0] is batch:
                queue.popleft()
            self._finish(batch, None, error)

    def _request_refresh(self, topics: list[str] | None) -> None:
        if self._refreshing or self._nursery is None:
            return
        self._refreshing = True

        async def refresh() -> None:
            try:
                await self.client.refresh_metadata(topics)
            except ClientError as exc:
                log.debug("metadata_refresh_failed", error=str(exc))
            finally:
                self._refreshing = False
                self._wakeup.set()

        self._nursery.start_soon(refresh)

    async def _send_batches(self, leader: int, batches: list[_Batch]) -> None:
        try:
            results = await self._produce(leader, batches)
        except ClientError as exc:
            results = {b.tp: (None, -1, exc) for b in batches}
        retry_topics = set()
        for batch in batches:
            self._in_flight.discard(batch.tp)
            base_offset, log_append_time, error = results.get(
                batch.tp, (None, -1, KafkaError(ErrorCode.unknown_server_error,
                                                f"no answer for {batch.tp}")))
            if error is None:
                self._finish(batch, (base_offset, log_append_time), None)
                continue
            code = getattr(error, "error_code", None)
            if self.enable_idempotence and code in _SEQUENCE_ERRORS:
                # The broker's view of this producer's sequence differs from ours: fail the
                # batch and start over with a new producer id (as Kafka's TransactionManager
                # does for an idempotent producer).
                log.warning("producer_sequence_reset", tp=str(batch.tp), error=str(error))
                self._reset_producer_id = True
                self._finish(batch, None, error)
                continue
            retriable = getattr(error, "retriable", False)
            now = trio.current_time()
            if retriable and batch.attempts < self.retries and \
                    now + self._backoff(batch) / 1000 < \
                    batch.created + self.delivery_timeout_ms / 1000:
                batch.attempts += 1
                self._retries += 1
                batch.retry_at = now + self._backoff(batch) / 1000
                self._queues[batch.tp].appendleft(batch)
                retry_topics.add(batch.tp.topic)
                log.debug("produce_retry", tp=str(batch.tp), attempt=batch.attempts,
                          error=str(error))
            else:
                self._finish(batch, None, error)
        if retry_topics:
            self._request_refresh(sorted(retry_topics))
        self._wakeup.set()

    async def _produce(self, leader: int, batches: list[_Batch]) -> dict:
        conn = await self.client.connection(leader)
        self._requests_sent += 1
        version = conn.api_version(ApiKey.PRODUCE, max_version=_PRODUCE_MAX_VERSION)
        topics: dict[str, list[dict]] = {}
        for batch in batches:
            topics.setdefault(batch.tp.topic, []).append(
                {"index": batch.tp.partition, "records": batch.encoded})
        response = await conn.call(
            ApiKey.PRODUCE, api_version=version, transactional_id=None, acks=self.acks,
            timeout=int(self.request_timeout_ms),
            timeout_ms=self.request_timeout_ms + 5000,
            topic_data=[{"name": t, "partition_data": ps} for t, ps in topics.items()])
        if response is None:  # acks=0
            return {b.tp: (-1, -1, None) for b in batches}
        out = {}
        for t in response.responses:
            for p in t.partition_responses:
                tp = TopicPartition(t.name, int(p.index))
                if p.error_code == ErrorCode.duplicate_sequence_number:
                    out[tp] = (-1, -1, None)  # already written: success, offset unknown
                elif p.error_code != ErrorCode.none:
                    out[tp] = (None, -1, KafkaError(p.error_code, f"produce to {tp}",
                                                    getattr(p, "error_message", None)))
                else:
                    lat = getattr(p, "log_append_time", None)
                    lat_ms = -1 if lat is None else int(lat.timestamp() * 1000)
                    out[tp] = (int(p.base_offset), lat_ms, None)
        return out

    def _finish(self, batch: _Batch, result: tuple[int, int] | None,
                error: BaseException | None) -> None:
        if error is not None:
            batch.error = error
            self._records_failed += len(batch.records)
            if self.enable_idempotence and batch.encoded is not None and not self._closed:
                # its sequence numbers were used and will never be acknowledged: the next
                # batch would be OUT_OF_ORDER_SEQUENCE_NUMBER, so start a fresh producer id
                self._reset_producer_id = True
        else:
            assert result is not None
            batch.base_offset, batch.log_append_time = result
            self._records_acked += len(batch.records)
        batch.done.set()
        self._unsent -= len(batch.records)
        self._buffered -= batch.size
        if self._buffer_freed is not None:
            self._buffer_freed.set()
            self._buffer_freed = None
        if self._unsent == 0:
            self._idle.set()

    def _fail_all(self, error: BaseException) -> None:
        for queue in self._queues.values():
            while queue:
                self._finish(queue.popleft(), None, error)
