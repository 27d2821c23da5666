"""A trio consumer of assigned partitions: positions, long-poll Fetch, decoded records.

Holds ``KafkaConsumer`` and ``ConsumerRecord``. After Kafka's ``KafkaConsumer`` with manual
``assign()`` (group membership comes with the group coordinator) and its
``Fetcher``:

- ``assign()`` sets the partitions; a partition's position starts unknown and is resolved on
  first use by ``auto_offset_reset`` ("earliest" / "latest" through ListOffsets, "none"
  raises), or set with ``seek()`` / ``seek_to_beginning()`` / ``seek_to_end()``.
- ``poll()`` sends one Fetch per partition leader (concurrently), each a long poll the
  broker holds until ``fetch_min_bytes`` are there or ``fetch_max_wait_ms`` passed, and
  decodes the record batches with kafkalike.protocol.records (keys, values, headers,
  offsets, timestamps; every codec). A batch may start before the position (compressed
  batches are returned whole) and the last one may be cut at max bytes: both are handled
  as Kafka's consumer does. Control batches (transaction markers) are skipped.
- OFFSET_OUT_OF_RANGE resets the position by ``auto_offset_reset``; NOT_LEADER_OR_FOLLOWER,
  UNKNOWN_TOPIC_OR_PARTITION and other retriable errors refresh Metadata and are retried on
  the next poll; lost connections likewise.

Errors: KafkaError for non-retriable partition errors and for OFFSET_OUT_OF_RANGE with
``auto_offset_reset="none"``; ValueError for a partition that is not assigned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import attrs
import structlog
import trio

from kafkalike.client.cluster import TopicPartition
from kafkalike.client.errors import ClientError, KafkaError
from kafkalike.client.kafka_client import EARLIEST, LATEST, KafkaClient, OffsetAndTimestamp
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.records import decode_batches

__all__ = ["KafkaConsumer", "ConsumerRecord", "ConsumerStatistics"]

log = structlog.get_logger("kafkalike.client.consumer")

_FETCH_MAX_VERSION = 12  # the codec's Fetch fast path covers v4-v12 (v13+ address topics by id)


@attrs.frozen
class ConsumerStatistics:
    """A consumer's state in one value: positions per assigned partition (None = not yet
    resolved), last high watermarks, Fetch requests sent, records returned, offset resets."""

    positions: dict[TopicPartition, int | None]
    high_watermarks: dict[TopicPartition, int]
    fetches: int
    records: int
    offset_resets: int

    @property
    def lag(self) -> dict[TopicPartition, int]:
        """High watermark minus position, for partitions where both are known."""
        return {tp: hw - pos for tp, hw in self.high_watermarks.items()
                if (pos := self.positions.get(tp)) is not None}


@attrs.frozen
class ConsumerRecord:
    """One consumed record: position (topic, partition, offset), ``timestamp`` ms and its
    ``timestamp_type`` (0 CreateTime, 1 LogAppendTime), key, value, headers, and the
    batch's ``leader_epoch`` (-1 unknown)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    leader_epoch: int = -1


class KafkaConsumer:
    """Consume assigned partitions (see module doc).

    ``client``: a started KafkaClient or bootstrap servers (then owned). ``fetch_min_bytes``,
    ``fetch_max_bytes`` (per response), ``max_partition_fetch_bytes`` in bytes;
    ``fetch_max_wait_ms`` in ms; ``auto_offset_reset`` "earliest", "latest" or "none";
    ``isolation_level`` 0 read_uncommitted, 1 read_committed (fetches stop at the last stable
    offset and batches of aborted transactions are dropped, KIP-98).
    """

    def __init__(
        self, client: KafkaClient | str | Iterable[str], *, fetch_min_bytes: int = 1,
        fetch_max_wait_ms: int = 500, fetch_max_bytes: int = 52428800,
        max_partition_fetch_bytes: int = 1048576, auto_offset_reset: str = "latest",
        isolation_level: int = 0, client_id: str = "kafkalike-consumer",
        request_timeout_ms: float = 30000,
    ) -> None:
        if auto_offset_reset not in ("earliest", "latest", "none"):
            raise ValueError(f"auto_offset_reset must be earliest, latest or none, got "
                             f"{auto_offset_reset!r}")
        self._owns_client = not isinstance(client, KafkaClient)
        self.client = client if isinstance(client, KafkaClient) else KafkaClient(
            client, client_id=client_id, request_timeout_ms=request_timeout_ms)
        self.fetch_min_bytes = fetch_min_bytes
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_max_bytes = fetch_max_bytes
        self.max_partition_fetch_bytes = max_partition_fetch_bytes
        self.auto_offset_reset = auto_offset_reset
        self.isolation_level = isolation_level
        self._positions: dict[TopicPartition, int | None] = {}
        self.high_watermarks: dict[TopicPartition, int] = {}
        """Last high watermark each Fetch reported, per partition."""
        self._fetches = 0
        self._records = 0
        self._offset_resets = 0

    def statistics(self) -> ConsumerStatistics:
        """The consumer's state and counters now."""
        return ConsumerStatistics(dict(self._positions), dict(self.high_watermarks),
                                  self._fetches, self._records, self._offset_resets)

    async def __aenter__(self) -> KafkaConsumer:
        if self._owns_client:
            await self.client.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._owns_client:
            await self.client.aclose()

    # ------------------------------------------------------------------ assignment

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Consume exactly these partitions (positions of kept ones are kept)."""
        tps = [p if isinstance(p, TopicPartition) else TopicPartition(*p) for p in partitions]
        self._positions = {tp: self._positions.get(tp) for tp in tps}

    def assignment(self) -> set[TopicPartition]:
        """The assigned partitions."""
        return set(self._positions)

    def _check(self, tp: TopicPartition) -> None:
        if tp not in self._positions:
            raise ValueError(f"partition {tp} is not assigned")

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Next poll() fetches ``tp`` from ``offset``. Raises ValueError if not assigned."""
        self._check(tp)
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        self._positions[tp] = offset

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        """Move to the log start offset of ``tps`` (all assigned when none given)."""
        await self._reset(list(tps) or list(self._positions), EARLIEST)

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        """Move to the log end offset (high watermark) of ``tps`` (all when none given)."""
        await self._reset(list(tps) or list(self._positions), LATEST)

    async def position(self, tp: TopicPartition) -> int:
        """The offset the next record of ``tp`` will have (resolving it if unknown)."""
        self._check(tp)
        if self._positions[tp] is None:
            await self._reset_unknown()
        position = self._positions[tp]
        assert position is not None
        return position

    async def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Log start offsets by ListOffsets(EARLIEST)."""
        got = await self.client.list_offsets({tp: EARLIEST for tp in tps},
                                             isolation_level=self.isolation_level)
        return {tp: o.offset for tp, o in got.items()}

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Log end offsets (high watermark; last stable offset under read_committed)."""
        got = await self.client.list_offsets({tp: LATEST for tp in tps},
                                             isolation_level=self.isolation_level)
        return {tp: o.offset for tp, o in got.items()}

    async def offsets_for_times(
        self, timestamps: dict[TopicPartition, int],
    ) -> dict[TopicPartition, OffsetAndTimestamp]:
        """First offset whose timestamp is >= the given ms, per partition (offset -1: none)."""
        return await self.client.list_offsets(timestamps, isolation_level=self.isolation_level)

    async def _reset(self, tps: list[TopicPartition], timestamp: int) -> None:
        for tp in tps:
            self._check(tp)
        got = await self.client.list_offsets({tp: timestamp for tp in tps},
                                             isolation_level=self.isolation_level)
        for tp, o in got.items():
            self._positions[tp] = o.offset

    async def _reset_unknown(self, tps: Iterable[TopicPartition] | None = None) -> None:
        unknown = [tp for tp in (tps or self._positions) if self._positions.get(tp) is None]
        if not unknown:
            return
        if self.auto_offset_reset == "none":
            raise KafkaError(ErrorCode.offset_out_of_range,
                             f"no position for {', '.join(map(str, unknown))} and "
                             f"auto_offset_reset=none")
        await self._reset(unknown, EARLIEST if self.auto_offset_reset == "earliest" else LATEST)

    # ------------------------------------------------------------------ fetching

    async def poll(self, *, max_wait_ms: int | None = None) -> list[ConsumerRecord]:
        """One round of Fetch requests, one per leader, in parallel; the records after each
        partition's position, positions advanced past them. May return [] (nothing arrived
        within ``max_wait_ms``, default ``fetch_max_wait_ms``). Raises KafkaError."""
        await self._reset_unknown()
        by_leader: dict[int, list[TopicPartition]] = {}
        missing = []
        for tp in self._positions:
            leader = self.client.cluster.leader_for(tp.topic, tp.partition)
            if leader is None:
                missing.append(tp)
            else:
                by_leader.setdefault(leader, []).append(tp)
        if missing:
            try:
                await self.client.refresh_metadata({tp.topic for tp in missing})
            except ClientError as exc:
                log.debug("metadata_refresh_failed", error=str(exc))
            for tp in missing:
                leader = self.client.cluster.leader_for(tp.topic, tp.partition)
                if leader is not None:
                    by_leader.setdefault(leader, []).append(tp)
        if not by_leader:
            await trio.sleep(self.client.retry_backoff_ms / 1000)
            return []
        wait = self.fetch_max_wait_ms if max_wait_ms is None else max_wait_ms
        results: list[list[ConsumerRecord]] = []
        errors: list[BaseException] = []
        refresh: set[str] = set()

        async def fetch_from(leader: int, tps: list[TopicPartition]) -> None:
            try:
                results.append(await self._fetch(leader, tps, wait, refresh))
            except KafkaError as exc:
                if exc.retriable:
                    refresh.update(tp.topic for tp in tps)
                else:
                    errors.append(exc)
            except ClientError as exc:
                log.debug("fetch_failed", leader=leader, error=str(exc))
                refresh.update(tp.topic for tp in tps)
                if not exc.retriable:
                    errors.append(exc)

        async with trio.open_nursery() as nursery:
            for leader, tps in by_leader.items():
                nursery.start_soon(fetch_from, leader, tps)
        if errors:
            raise errors[0]
        if refresh:
            try:
                await self.client.refresh_metadata(refresh)
            except ClientError as exc:
                log.debug("metadata_refresh_failed", error=str(exc))
        out = [r for chunk in results for r in chunk]
        self._records += len(out)
        if not out and refresh:
            await trio.sleep(self.client.retry_backoff_ms / 1000)
        return out

    async def __aiter__(self) -> AsyncIterator[ConsumerRecord]:
        """Records forever, poll after poll."""
        while True:
            for record in await self.poll():
                yield record

    async def _fetch(self, leader: int, tps: list[TopicPartition], wait_ms: int,
                     refresh: set[str]) -> list[ConsumerRecord]:
        conn = await self.client.connection(leader)
        version = conn.api_version(ApiKey.FETCH, max_version=_FETCH_MAX_VERSION)
        topics: dict[str, list[dict]] = {}
        asked = {}
        for tp in tps:
            position = self._positions.get(tp)
            if position is None:
                continue
            asked[tp] = position
            topics.setdefault(tp.topic, []).append({
                "partition": tp.partition, "current_leader_epoch": -1,
                "fetch_offset": position, "last_fetched_epoch": -1, "log_start_offset": -1,
                "partition_max_bytes": self.max_partition_fetch_bytes})
        if not asked:
            return []
        self._fetches += 1
        response = await conn.call(
            ApiKey.FETCH, api_version=version, replica_id=-1, max_wait=wait_ms,
            min_bytes=self.fetch_min_bytes, max_bytes=self.fetch_max_bytes,
            isolation_level=self.isolation_level, session_id=0, session_epoch=-1,
            topics=[{"topic": t, "partitions": ps} for t, ps in topics.items()],
            forgotten_topics_data=[], rack_id="",
            timeout_ms=conn.request_timeout_ms + wait_ms)
        if getattr(response, "error_code", ErrorCode.none) != ErrorCode.none:
            raise KafkaError(response.error_code, f"fetch from broker {leader}")
        out: list[ConsumerRecord] = []
        for t in response.responses:
            for p in t.partitions:
                tp = TopicPartition(t.topic, int(p.partition_index))
                if tp not in asked or self._positions.get(tp) != asked[tp]:
                    continue  # reassigned or moved by seek() meanwhile
                code = ErrorCode(p.error_code)
                if code == ErrorCode.offset_out_of_range:
                    log.info("offset_out_of_range", tp=str(tp), offset=asked[tp],
                             reset=self.auto_offset_reset)
                    self._positions[tp] = None
                    self._offset_resets += 1
                    await self._reset_unknown([tp])
                    continue
                if code != ErrorCode.none:
                    if code.retriable:
                        refresh.add(tp.topic)
                        continue
                    raise KafkaError(code, f"fetch {tp}")
                self.high_watermarks[tp] = int(p.high_watermark)
                aborted = None
                if self.isolation_level == 1:
                    aborted = sorted((int(a.first_offset), int(a.producer_id))
                                     for a in (getattr(p, "aborted_transactions", None) or ()))
                out.extend(self._decode(tp, asked[tp], p.records, aborted))
        return out

    def _decode(self, tp: TopicPartition, position: int, data: Any,
                aborted: list[tuple[int, int]] | None = None) -> list[ConsumerRecord]:
        """Records of a fetched partition from ``position`` on. ``aborted`` (read_committed
        only): the response's aborted transactions as (first offset, producer id), sorted; a
        transactional batch of a producer whose aborted transaction began at or before the
        batch is skipped until that producer's ABORT marker (Kafka's Fetcher,
        consumeAbortedTransactionsUpTo / isBatchAborted / containsAbortMarker)."""
        if not data:
            return []
        out = []
        next_offset = position
        aborted_pids: set[int] = set()
        pending = list(aborted or ())
        for batch in decode_batches(data, allow_truncated_tail=True):
            if batch.last_offset < position:
                continue
            next_offset = max(next_offset, batch.last_offset + 1)
            if aborted is not None and batch.producer_id >= 0:
                while pending and pending[0][0] <= batch.last_offset:
                    aborted_pids.add(pending.pop(0)[1])
                if batch.is_control:
                    key = batch.records[0].key if batch.records else None
                    if key is not None and len(key) >= 4 and int.from_bytes(key[2:4], "big", signed=True) == 0:
                        aborted_pids.discard(batch.producer_id)  # the ABORT marker ends it
                elif batch.is_transactional and batch.producer_id in aborted_pids:
                    continue
            if batch.is_control:
                continue
            for r in batch.records:
                if r.offset < position:
                    continue
                out.append(ConsumerRecord(tp.topic, tp.partition, r.offset, r.timestamp,
                                          batch.timestamp_type, r.key, r.value, r.headers,
                                          batch.partition_leader_epoch))
        self._positions[tp] = next_offset
        return out
