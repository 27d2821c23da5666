"""``KafkaStore``: the ``_schemas`` topic as the registry's only storage (Confluent's
``storage/KafkaStore`` + ``KafkaStoreReaderThread``), with kafkalike's trio client.

On start it creates the topic if missing (1 partition, ``cleanup.policy=compact``, replication
factor min(3, brokers)) and refuses one with more than one partition. A reader task consumes
the partition from offset 0 for ever and applies each record to an ``InMemoryCache``.
``catch_up()`` waits until every record written before the call is applied (the end offset from
ListOffsets; Confluent writes a NOOP record for this); ``append()`` produces with acks=all and
waits until the reader has applied the record, so the caller sees the log's verdict.
"""

from __future__ import annotations

from typing import Any

import structlog
import trio

from kafkalike.client import (LATEST, AdminClient, ClientError, KafkaClient, KafkaConsumer,
                              KafkaProducer, NewTopic, TopicPartition)
from kafkalike.protocol.errors import ErrorCode
from kafkalike.schema_registry import errors
from kafkalike.schema_registry.in_memory_cache import InMemoryCache

log = structlog.get_logger(__name__)

DEFAULT_TOPIC = "_schemas"
"""Confluent's kafkastore.topic default."""


class KafkaStore:
    """The ``_schemas`` topic on the cluster at ``bootstrap_servers`` (see module doc).
    ``timeout_ms``: how long catch_up()/append() wait before answering 50002
    (Confluent's kafkastore.timeout.ms, 500 ms there; longer here for slow test machines)."""

    def __init__(self, bootstrap_servers: str, cache: InMemoryCache, *, topic: str = DEFAULT_TOPIC,
                 timeout_ms: int = 10000) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.cache = cache
        self.topic = topic
        self.timeout_ms = timeout_ms
        self._tp = TopicPartition(topic, 0)
        self._applied = trio.Condition()
        self._writer: KafkaClient | None = None
        self._producer: KafkaProducer | None = None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Create/check the topic, read it to its end, then report started and keep reading
        until cancelled. Raises ClientError when the cluster cannot be reached, RuntimeError
        when the topic has more than one partition."""
        async with KafkaClient(self.bootstrap_servers, client_id="schema-registry") as writer, \
                KafkaClient(self.bootstrap_servers, client_id="schema-registry-reader") as reader_client:
            await self._ensure_topic(writer)
            self._writer = writer
            async with KafkaProducer(writer, acks="all", client_id="schema-registry") as producer:
                self._producer = producer
                consumer = KafkaConsumer(reader_client, auto_offset_reset="earliest", fetch_max_wait_ms=200)
                consumer.assign([self._tp])
                consumer.seek(self._tp, 0)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read, consumer)
                    await self._wait_applied(await self._end_offset(), timeout_ms=60000)
                    log.info("schemas_loaded", topic=self.topic, offset=self.cache.offset,
                             subjects=len(self.cache.subjects))
                    task_status.started()

    async def _ensure_topic(self, client: KafkaClient) -> None:
        admin = AdminClient(client)
        brokers = len((await admin.describe_cluster()).brokers)
        codes = await admin.create_topics(
            [NewTopic(self.topic, num_partitions=1, replication_factor=min(3, max(1, brokers)),
                      configs={"cleanup.policy": "compact"})], raise_errors=False)
        code = codes.get(self.topic, ErrorCode.none)
        if code not in (ErrorCode.none, ErrorCode.topic_already_exists):
            raise RuntimeError(f"cannot create topic {self.topic}: {code.name}")
        info = (await admin.describe_topics([self.topic]))[self.topic]
        if len(info.partitions) != 1:
            raise RuntimeError(f"topic {self.topic} has {len(info.partitions)} partitions; the schema store needs 1")

    async def _read(self, consumer: KafkaConsumer) -> None:
        while True:
            try:
                records = await consumer.poll()
            except ClientError as exc:
                log.warning("schemas_read_failed", error=str(exc))
                await trio.sleep(0.5)
                continue
            for rec in records:
                self.cache.apply(rec.offset, rec.key, rec.value)
            if records:
                async with self._applied:
                    self._applied.notify_all()

    async def _end_offset(self) -> int:
        assert self._writer is not None
        offsets = await self._writer.list_offsets({self._tp: LATEST})
        return offsets[self._tp].offset

    async def _wait_applied(self, offset: int, *, timeout_ms: int | None = None) -> None:
        with trio.move_on_after((timeout_ms or self.timeout_ms) / 1000) as scope:
            async with self._applied:
                while self.cache.offset < offset:
                    await self._applied.wait()
        if scope.cancelled_caught:
            raise errors.operation_timeout(f"Store read timed out waiting for offset {offset} of {self.topic}")

    async def catch_up(self) -> None:
        """Wait until every record in the topic now is applied. RestError 50001/50002."""
        try:
            end = await self._end_offset()
        except ClientError as exc:
            raise errors.store_error(f"Error while reading the end of {self.topic}: {exc}") from None
        await self._wait_applied(end)

    async def append(self, key: bytes, value: bytes | None) -> int:
        """Produce one record (acks=all) and wait until it is applied; returns its offset.
        RestError 50001 when the write fails, 50002 when it is not read back in time."""
        assert self._producer is not None, "KafkaStore.run has not started"
        try:
            meta = await self._producer.send(self.topic, value, key=key, partition=0)
        except ClientError as exc:
            raise errors.store_error(f"Error while writing to {self.topic}: {exc}") from None
        await self._wait_applied(meta.offset + 1)
        return meta.offset
