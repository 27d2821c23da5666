"""The cluster-aware client: bootstrap, Metadata, a connection per broker, retries.

Holds ``KafkaClient`` (what Kafka's Java client splits into ``NetworkClient``, ``Metadata``
and ``ClusterConnectionStates``), ``parse_bootstrap()``, and ``OffsetAndTimestamp``.

- **Bootstrap**: the "host:port" list is tried in order until one accepts a connection and
  answers Metadata; from then on brokers are addressed by id, as Metadata advertises them.
- **Connections**: one ``KafkaConnection`` per broker id, opened on first use (concurrent
  users share one connect), reopened after it closes. Reader tasks run in the client's
  nursery, so use the client as ``async with KafkaClient([...]) as client:``.
- **Metadata**: ``refresh_metadata(topics)`` asks any live broker; concurrent refreshes
  coalesce into one. ``cluster`` is the latest ``Cluster`` snapshot.
- **Retries**: ``retry(op)`` runs an operation again on retriable failures
  (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION, NOT_CONTROLLER,
  any Kafka error marked retriable, lost connections, request timeouts) with exponential
  backoff (``retry_backoff_ms`` doubling up to ``retry_backoff_max_ms``, Kafka's
  ``retry.backoff.ms`` / ``retry.backoff.max.ms``), refreshing Metadata in between, for at
  most ``retries`` extra attempts. Other errors are raised at once.

Errors: NoBrokersAvailableError, and whatever the operation raises last (KafkaError,
KafkaConnectionError, RequestTimeoutError, UnsupportedApiVersionError).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import attrs
import structlog
import trio

from kafkalike.client.cluster import Cluster, Node, TopicPartition, cluster_from_metadata
from kafkalike.client.connection import KafkaConnection
from kafkalike.client.errors import ClientError, KafkaError, NoBrokersAvailableError
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode

__all__ = ["KafkaClient", "ClientStatistics", "parse_bootstrap", "OffsetAndTimestamp",
           "EARLIEST", "LATEST"]

log = structlog.get_logger("kafkalike.client.kafka_client")

T = TypeVar("T")

EARLIEST = -2
"""ListOffsets timestamp asking for the log start offset (Kafka's EARLIEST_TIMESTAMP)."""
LATEST = -1
"""ListOffsets timestamp asking for the log end offset / high watermark (LATEST_TIMESTAMP)."""


def parse_bootstrap(servers: str | Iterable[str]) -> list[tuple[str, int]]:
    """``"h1:9092,h2:9092"`` or ``["h1:9092", ...]`` -> [(host, port), ...].

    A missing port means 9092; ``[::1]:9092`` brackets IPv6. Raises ValueError for a bad
    entry or an empty list.
    """
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    out = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.lstrip(":") or "9092"
        elif item.count(":") == 1:
            host, port = item.split(":")
        else:
            host, port = item, "9092"
        try:
            port_no = int(port)
        except ValueError:
            raise ValueError(f"bad bootstrap server {raw!r}: port is not a number") from None
        if not host or not 0 < port_no < 65536:
            raise ValueError(f"bad bootstrap server {raw!r}")
        out.append((host, port_no))
    if not out:
        raise ValueError("no bootstrap servers given")
    return out


@attrs.frozen
class ClientStatistics:
    """A KafkaClient's state in one value: brokers and topics known, controller id, open
    connections (by broker id), Metadata refreshes and retries so far."""

    brokers: tuple[int, ...]
    topics: int
    controller_id: int
    connections: tuple[int, ...]
    metadata_refreshes: int
    retries: int


@attrs.frozen
class OffsetAndTimestamp:
    """A ListOffsets answer for one partition: ``offset`` (-1 none found), ``timestamp`` ms
    (-1 unknown), ``leader_epoch`` (-1 unknown)."""

    offset: int
    timestamp: int = -1
    leader_epoch: int = -1


class KafkaClient:
    """Connections to a cluster's brokers plus its Metadata (see module doc).

    ``bootstrap_servers``: "host:port" list or comma-separated string. Times in ms.
    ``retries``: extra attempts for retriable failures. ``metadata_max_age_ms``: Metadata
    for all topics is refreshed when it is this old (Kafka's metadata.max.age.ms).
    ``client_versions``: {api_key: (min, max)} this client may use (default
    CLIENT_API_VERSIONS); e.g. kafkalike.protocol.api_keys.TSHARK_COMPATIBLE_APIS keeps every
    request at versions Debian's tshark (Wireshark 4.0) dissects.
    """

    def __init__(
        self, bootstrap_servers: str | Iterable[str], *, client_id: str = "kafkalike",
        request_timeout_ms: float = 30000, connect_timeout_ms: float = 10000,
        retry_backoff_ms: float = 100, retry_backoff_max_ms: float = 1000, retries: int = 10,
        metadata_max_age_ms: float = 300000,
        client_versions: dict[int, tuple[int, int]] | None = None,
    ) -> None:
        self.bootstrap = parse_bootstrap(bootstrap_servers)
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.retry_backoff_ms = retry_backoff_ms
        self.retry_backoff_max_ms = retry_backoff_max_ms
        self.retries = retries
        self.metadata_max_age_ms = metadata_max_age_ms
        self.client_versions = client_versions
        self.cluster = Cluster()
        self._connections: dict[int, KafkaConnection] = {}
        self._connect_locks: dict[int, trio.Lock] = {}
        self._bootstrap_conn: KafkaConnection | None = None
        self._refresh_lock = trio.Lock()
        self._refresh_generation = 0
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._closed = False
        self._metadata_refreshes = 0
        self._retries = 0

    def statistics(self) -> ClientStatistics:
        """The client's state and counters now."""
        return ClientStatistics(
            brokers=tuple(sorted(self.cluster.brokers)), topics=len(self.cluster.topics),
            controller_id=self.cluster.controller_id,
            connections=tuple(sorted(n for n, c in self._connections.items() if not c.closed)),
            metadata_refreshes=self._metadata_refreshes, retries=self._retries)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> KafkaClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the client's nursery and bootstrap (connect + Metadata for all topics).

        Must be paired with aclose() in the same task (``async with`` does both). Raises
        NoBrokersAvailableError when no bootstrap server answers.
        """
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        try:
            await self._bootstrap_metadata()
        except BaseException as exc:
            await self.aclose(exc)
            raise
        self._nursery.start_soon(self._refresh_periodically)

    async def _refresh_periodically(self) -> None:
        """Kafka's metadata.max.age.ms: refresh all topics when Metadata is that old."""
        while True:
            generation = self._refresh_generation
            await trio.sleep(self.metadata_max_age_ms / 1000)
            if self._refresh_generation != generation:
                continue  # refreshed meanwhile; wait a whole period from now
            try:
                await self.refresh_metadata()
            except ClientError as exc:
                log.debug("metadata_refresh_failed", error=str(exc))

    async def aclose(self, exc: BaseException | None = None) -> None:
        """Close every connection and the nursery. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            conns = list(self._connections.values())
            if self._bootstrap_conn is not None:
                conns.append(self._bootstrap_conn)
            self._connections.clear()
            for conn in conns:
                await conn.aclose()
        if self._nursery_cm is not None:
            # Cancel scopes must nest: the nursery is exited outside the shield above.
            self._nursery.cancel_scope.cancel()  # type: ignore[union-attr]  # _nursery is set whenever _nursery_cm is
            await self._nursery_cm.__aexit__(None, None, None)

    @property
    def nursery(self) -> trio.Nursery:
        """The client's nursery (connection readers; producers may start tasks in it)."""
        if self._nursery is None:
            raise RuntimeError("KafkaClient not started: use 'async with KafkaClient(...)'")
        return self._nursery

    # ------------------------------------------------------------------ connections

    async def _open(self, host: str, port: int, node_id: int | None) -> KafkaConnection:
        return await KafkaConnection.connect(
            host, port, nursery=self.nursery, client_id=self.client_id,
            request_timeout_ms=self.request_timeout_ms,
            connect_timeout_ms=self.connect_timeout_ms, node_id=node_id,
            client_versions=self.client_versions)

    async def _bootstrap_metadata(self) -> None:
        errors = []
        for host, port in self.bootstrap:
            try:
                conn = await self._open(host, port, None)
            except ClientError as exc:
                errors.append(f"{host}:{port}: {exc}")
                continue
            try:
                cluster = await self._metadata_from(conn, None, False)
            except ClientError as exc:
                errors.append(f"{host}:{port}: {exc}")
                await conn.aclose()
                continue
            self.cluster = cluster
            self._refresh_generation += 1
            for node in cluster.brokers.values():
                if (node.host, node.port) == (host, port):
                    conn.node_id = node.node_id
                    self._connections[node.node_id] = conn
                    break
            else:
                self._bootstrap_conn = conn
            log.debug("bootstrapped", server=f"{host}:{port}", brokers=sorted(cluster.brokers),
                      cluster_id=cluster.cluster_id)
            return
        raise NoBrokersAvailableError("no bootstrap server answered: " + "; ".join(errors))

    async def connection(self, node_id: int) -> KafkaConnection:
        """The open connection to broker ``node_id``, connecting when needed.

        Raises KafkaError(BROKER_NOT_AVAILABLE, retriable) when the id is not in Metadata,
        BrokerConnectionRefusedError when it does not accept a connection.
        """
        conn = self._connections.get(node_id)
        if conn is not None and not conn.closed:
            return conn
        lock = self._connect_locks.setdefault(node_id, trio.Lock())
        async with lock:
            conn = self._connections.get(node_id)
            if conn is not None and not conn.closed:
                return conn
            node = self.cluster.brokers.get(node_id)
            if node is None:
                raise KafkaError(ErrorCode.broker_not_available, f"broker {node_id}")
            conn = await self._open(node.host, node.port, node_id)
            if self._closed:
                await conn.aclose()
                raise NoBrokersAvailableError("client closed")
            self._connections[node_id] = conn
            return conn

    async def any_connection(self) -> KafkaConnection:
        """A connection to some live broker: an open one with the fewest requests in flight,
        else a new one to a known broker, else to a bootstrap server.

        Raises NoBrokersAvailableError.
        """
        open_conns = [c for c in self._connections.values() if not c.closed]
        if self._bootstrap_conn is not None and not self._bootstrap_conn.closed:
            open_conns.append(self._bootstrap_conn)
        if open_conns:
            return min(open_conns, key=lambda c: c.statistics().in_flight)
        node_ids = list(self.cluster.brokers)
        random.shuffle(node_ids)
        errors = []
        for node_id in node_ids:
            try:
                return await self.connection(node_id)
            except ClientError as exc:
                errors.append(f"broker {node_id}: {exc}")
        for host, port in self.bootstrap:
            try:
                self._bootstrap_conn = await self._open(host, port, None)
                return self._bootstrap_conn
            except ClientError as exc:
                errors.append(f"{host}:{port}: {exc}")
        raise NoBrokersAvailableError("no broker reachable: " + "; ".join(errors))

    async def controller_connection(self) -> KafkaConnection:
        """A connection to the controller Metadata names (refreshing once when unknown).

        Raises KafkaError(NOT_CONTROLLER) when no controller is known (retriable).
        """
        if self.cluster.controller_id < 0:
            await self.refresh_metadata()
        if self.cluster.controller_id < 0:
            raise KafkaError(ErrorCode.not_controller, "no controller known")
        return await self.connection(self.cluster.controller_id)

    async def leader_connection(self, topic: str, partition: int) -> KafkaConnection:
        """A connection to the leader of ``topic``-``partition`` (refreshing Metadata for the
        topic once when it is unknown). Raises KafkaError UNKNOWN_TOPIC_OR_PARTITION or
        LEADER_NOT_AVAILABLE (both retriable)."""
        leader = await self.leader_for(topic, partition)
        return await self.connection(leader)

    async def leader_for(self, topic: str, partition: int) -> int:
        """Broker id leading ``topic``-``partition``; errors as leader_connection()."""
        leader = self.cluster.leader_for(topic, partition)
        if leader is None:
            await self.refresh_metadata([topic])
            leader = self.cluster.leader_for(topic, partition)
        if leader is None:
            if self.cluster.partition(topic, partition) is None:
                raise KafkaError(ErrorCode.unknown_topic_or_partition, f"{topic}-{partition}")
            raise KafkaError(ErrorCode.leader_not_available, f"{topic}-{partition}")
        return leader

    # ------------------------------------------------------------------ metadata

    async def _metadata_from(self, conn: KafkaConnection, topics: list[str] | None,
                             allow_auto_topic_creation: bool) -> Cluster:
        version = conn.api_version(ApiKey.METADATA)
        if topics is None:
            wanted: Any = () if version == 0 else None
        else:
            wanted = [{"name": t} for t in topics]
        response = await conn.call(ApiKey.METADATA, api_version=version, topics=wanted,
                                   allow_auto_topic_creation=allow_auto_topic_creation)
        return cluster_from_metadata(response)

    async def refresh_metadata(self, topics: Iterable[str] | None = None, *,
                               allow_auto_topic_creation: bool = False) -> Cluster:
        """Fetch Metadata (all topics when ``topics`` is None) and update ``cluster``.

        Topics asked for replace what was known of them; others are kept. Concurrent calls
        for all topics share one request. Returns the new snapshot. Raises
        NoBrokersAvailableError / the connection's errors.
        """
        names = None if topics is None else sorted(set(topics))
        generation = self._refresh_generation
        async with self._refresh_lock:
            if names is None and self._refresh_generation != generation:
                return self.cluster  # someone refreshed everything while we waited
            conn = await self.any_connection()
            try:
                fresh = await self._metadata_from(conn, names, allow_auto_topic_creation)
            except ClientError:
                await conn.aclose()
                raise
            self._metadata_refreshes += 1
            if names is None:
                self.cluster = fresh
                self._refresh_generation += 1
            else:
                self.cluster = self.cluster.merged(fresh, set(names))
            for node_id, c in list(self._connections.items()):
                node = fresh.brokers.get(node_id)
                if node is not None and (c.host, c.port) != (node.host, node.port):
                    await c.aclose()  # the broker moved: reconnect on next use
            log.debug("metadata_refreshed", topics=names, brokers=sorted(fresh.brokers),
                      controller=fresh.controller_id)
            return self.cluster

    # ------------------------------------------------------------------ retries

    async def retry(self, op: Callable[[], Awaitable[T]], *, what: str = "request",
                    refresh_topics: Iterable[str] | None = None) -> T:
        """Run ``op()``; on a retriable ClientError back off, refresh Metadata (for
        ``refresh_topics``, or all) and run it again, at most ``retries`` more times."""
        attempt = 0
        backoff = self.retry_backoff_ms
        while True:
            try:
                return await op()
            except ClientError as exc:
                if not exc.retriable or attempt >= self.retries:
                    raise
                attempt += 1
                self._retries += 1
                log.debug("retrying", what=what, attempt=attempt, error=str(exc))
                await trio.sleep(backoff * random.uniform(0.8, 1.2) / 1000)
                backoff = min(backoff * 2, self.retry_backoff_max_ms)
                try:
                    await self.refresh_metadata(refresh_topics)
                except ClientError as refresh_exc:
                    log.debug("metadata_refresh_failed", error=str(refresh_exc))

    # ------------------------------------------------------------------ shared requests

    async def list_offsets(self, timestamps: dict[TopicPartition, int], *,
                           isolation_level: int = 0) -> dict[TopicPartition, OffsetAndTimestamp]:
        """ListOffsets (Kafka protocol guide, ListOffsets v1-v7) for each partition.

        ``timestamps``: {tp: ms since the epoch, or EARLIEST (-2) / LATEST (-1)}. Sent to each
        partition's leader, retried on retriable errors (NOT_LEADER_OR_FOLLOWER, ...).
        ``isolation_level`` 0 read_uncommitted, 1 read_committed. Raises KafkaError for the
        first non-retriable partition error.
        """
        result: dict[TopicPartition, OffsetAndTimestamp] = {}
        pending = dict(timestamps)

        async def attempt() -> None:
            by_leader: dict[int, list[TopicPartition]] = {}
            for tp in pending:
                by_leader.setdefault(await self.leader_for(tp.topic, tp.partition),
                                     []).append(tp)
            errors: list[KafkaError] = []
            for leader, tps in sorted(by_leader.items()):
                conn = await self.connection(leader)
                topics: dict[str, list[dict]] = {}
                for tp in tps:
                    topics.setdefault(tp.topic, []).append(
                        {"partition_index": tp.partition, "timestamp": pending[tp],
                         "current_leader_epoch": -1})
                response = await conn.call(
                    ApiKey.LIST_OFFSETS, replica_id=-1, isolation_level=isolation_level,
                    topics=[{"name": t, "partitions": ps} for t, ps in topics.items()])
                for t in response.topics:
                    for p in t.partitions:
                        tp = TopicPartition(t.name, int(p.partition_index))
                        if p.error_code != ErrorCode.none:
                            errors.append(KafkaError(p.error_code, f"list_offsets {tp}"))
                            continue
                        offset = int(getattr(p, "offset", -1))
                        result[tp] = OffsetAndTimestamp(
                            offset, int(getattr(p, "timestamp", -1)),
                            int(getattr(p, "leader_epoch", -1)))
                        pending.pop(tp, None)
            if errors:
                retriable = [e for e in errors if e.retriable]
                raise (errors[0] if len(retriable) < len(errors) else retriable[0])

        await self.retry(attempt, what="list_offsets",
                         refresh_topics={tp.topic for tp in timestamps})
        return result

    def broker(self, node_id: int) -> Node | None:
        """The Node of broker ``node_id`` in the latest Metadata, or None."""
        return self.cluster.brokers.get(node_id)
