"""A tiny in-test Kafka endpoint for the client tests: real TCP sockets, real codec.

kafkalike's own broker does not serve clients yet, so the client tests talk to this: a trio
TCP server per node on 127.0.0.1 (port 0), reading frames with kafkalike.protocol's
FrameReader, parsing requests with ``parse_request`` and answering with ``encode_response``
(ApiVersions fallback with ``encode_api_versions_fallback``), processing each connection's
requests in order as Kafka's SocketServer does. Several nodes share one ``TinyCluster``
state: topics whose partitions have a leader node and an in-memory log of v2 batches
(offsets assigned by patching baseOffset, as the real broker does), a controller id.

It implements just what the client uses (ApiVersions, Metadata, Produce, Fetch with long
poll, ListOffsets, CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
DescribeCluster, LeaderAndIsr) and hooks the tests use to misbehave: ``hold`` (answer nothing
until N requests are queued), ``never_answer`` (api keys left unanswered), ``swap_next``
(answer two responses in the wrong order), ``close_on`` (close the connection on an api key),
``errors`` (queued per-partition error codes for Produce/Fetch), ``delay`` (seconds to wait
before answering a request), ``lose_response`` (handle a request, then hang up instead of
answering). Produce checks idempotent producers' sequence numbers as Kafka's
ProducerStateManager does for the last batch (duplicate -> the first write's offset; a gap ->
OUT_OF_ORDER_SEQUENCE_NUMBER); InitProducerId hands out ids from 4001.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import functools

import attrs
import trio

from kafkalike.client.messages import build_entity
from kafkalike.protocol.api_keys import SUPPORTED_APIS, ApiKey
from kafkalike.protocol.codec import (RequestHeader, api_versions_response,
                                      encode_api_versions_fallback, encode_response,
                                      parse_request, response_class)
from kafkalike.protocol.errors import ErrorCode, ProtocolError, UnsupportedVersionError
from kafkalike.protocol.frame import FrameReader
from kafkalike.protocol.leader_and_isr import LeaderAndIsrResponse
from kafkalike.protocol.record_batch import RecordBatch, iter_batches


@attrs.define
class PartitionLog:
    leader: int
    batches: list[bytearray] = attrs.field(factory=list)
    next_offset: int = 0
    log_start: int = 0


@attrs.define
class TinyCluster:
    """Shared state of the tiny nodes (see module doc)."""

    brokers: dict[int, tuple[str, int]] = attrs.field(factory=dict)
    topics: dict[str, list[PartitionLog]] = attrs.field(factory=dict)
    controller_id: int = 1
    supported: dict[int, tuple[int, int]] = attrs.field(factory=lambda: dict(SUPPORTED_APIS))
    configs: dict[str, dict[str, str]] = attrs.field(factory=dict)
    hold: int = 0
    never_answer: set[int] = attrs.field(factory=set)
    close_on: set[int] = attrs.field(factory=set)
    swap_next: bool = False
    errors: dict[tuple[int, str, int], list[ErrorCode]] = attrs.field(factory=dict)
    seen: list[tuple[int, int, int]] = attrs.field(factory=list)  # (node, api_key, version)
    produce_requests: int = 0
    appended: trio.Event = attrs.field(factory=trio.Event)
    leader_and_isr: list[Any] = attrs.field(factory=list)
    delay: Callable[[RequestHeader, Any], float] | None = None  # seconds before answering
    lose_response: set[int] = attrs.field(factory=set)  # handle, then hang up (once per key)
    producer_ids: int = 0
    # (topic, partition, producer id) -> (base sequence, last sequence, base offset) of the
    # producer's last batch, for Kafka's duplicate / out-of-order sequence checks
    sequences: dict[tuple[str, int, int], tuple[int, int, int]] = attrs.field(factory=dict)

    def add_topic(self, name: str, partitions: int, leaders: list[int] | None = None) -> None:
        ids = sorted(self.brokers) or [1]
        leaders = leaders or [ids[p % len(ids)] for p in range(partitions)]
        self.topics[name] = [PartitionLog(leader) for leader in leaders]

    def records(self, topic: str, partition: int) -> bytes:
        return b"".join(bytes(b) for b in self.topics[topic][partition].batches)


class TinyNode:
    """One node: ``node_id``, ``port``; ``connections`` accepted so far."""

    def __init__(self, cluster: TinyCluster, node_id: int) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.port = 0
        self.connections = 0
        self.listeners: list[trio.SocketListener] = []

    async def start(self, nursery: trio.Nursery) -> None:
        self.listeners = await nursery.start(
            functools.partial(trio.serve_tcp, self._serve, 0, host="127.0.0.1"))
        self.port = self.listeners[0].socket.getsockname()[1]
        self.cluster.brokers[self.node_id] = ("127.0.0.1", self.port)

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        reader = FrameReader()
        queue: list[tuple[RequestHeader | None, Any, bytes | None]] = []
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                reader.feed(data)
                while (frame := reader.next_frame()) is not None:
                    try:
                        header, request = parse_request(frame, self.cluster.supported)
                    except UnsupportedVersionError as exc:
                        if exc.api_key == ApiKey.API_VERSIONS:
                            self.cluster.seen.append((self.node_id, exc.api_key,
                                                      exc.api_version))
                            queue.append((None, None, encode_api_versions_fallback(
                                exc.correlation_id, self.cluster.supported)))
                            continue
                        return
                    except ProtocolError:
                        return
                    self.cluster.seen.append((self.node_id, header.api_key,
                                              header.api_version))
                    if header.api_key in self.cluster.close_on:
                        return
                    queue.append((header, request, None))
                if len(queue) < self.cluster.hold:
                    continue
                out = []
                for header, request, ready in queue:
                    if ready is not None:
                        out.append(ready)
                        continue
                    assert header is not None
                    if header.api_key in self.cluster.never_answer:
                        continue
                    if self.cluster.delay is not None:
                        await trio.sleep(self.cluster.delay(header, request))
                    response = await self._handle(header, request)
                    if header.api_key in self.cluster.lose_response:
                        self.cluster.lose_response.discard(header.api_key)
                        return
                    if response is not None:
                        out.append(encode_response(header, response))
                queue.clear()
                if self.cluster.swap_next and len(out) >= 2:
                    self.cluster.swap_next = False
                    out[0], out[1] = out[1], out[0]
                for chunk in out:
                    await stream.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    # ------------------------------------------------------------------ handlers

    def _resp(self, header: RequestHeader, **fields: Any) -> Any:
        return build_entity(response_class(header.api_key, header.api_version), fields)

    def _error(self, topic: str, partition: int, api_key: int) -> ErrorCode:
        queued = self.cluster.errors.get((api_key, topic, partition))
        if queued:
            return queued.pop(0)
        return ErrorCode.none

    async def _handle(self, header: RequestHeader, request: Any) -> Any:
        key = header.api_key
        c = self.cluster
        if key == ApiKey.API_VERSIONS:
            return api_versions_response(header.api_version, c.supported)
        if key == ApiKey.METADATA:
            return self._metadata(header, request)
        if key == ApiKey.PRODUCE:
            return self._produce(header, request)
        if key == ApiKey.FETCH:
            return await self._fetch(header, request)
        if key == ApiKey.LIST_OFFSETS:
            topics = []
            for t in request.topics:
                parts = []
                for p in t.partitions:
                    plog = self._partition(t.name, p.partition_index)
                    if plog is None or plog.leader != self.node_id:
                        code = ErrorCode.unknown_topic_or_partition if plog is None else \
                            ErrorCode.not_leader_or_follower
                        parts.append({"partition_index": p.partition_index, "error_code": code,
                                      "timestamp": -1, "offset": -1})
                        continue
                    offset = plog.log_start if p.timestamp == -2 else plog.next_offset
                    parts.append({"partition_index": p.partition_index, "timestamp": -1,
                                  "offset": offset, "leader_epoch": 0})
                topics.append({"name": t.name, "partitions": parts})
            return self._resp(header, topics=topics)
        if key in (ApiKey.CREATE_TOPICS, ApiKey.DELETE_TOPICS, ApiKey.CREATE_PARTITIONS):
            return self._admin(header, request)
        if key == ApiKey.DESCRIBE_CONFIGS:
            results = []
            for r in request.resources:
                if r.resource_type == 2 and r.resource_name not in c.topics:
                    results.append({"error_code": ErrorCode.unknown_topic_or_partition,
                                    "resource_type": 2, "resource_name": r.resource_name})
                    continue
                cfg = {"cleanup.policy": "delete", "retention.ms": "604800000",
                       **c.configs.get(r.resource_name, {})}
                results.append({"resource_type": r.resource_type,
                                "resource_name": r.resource_name,
                                "configs": [{"name": k, "value": v, "config_source": 5}
                                            for k, v in sorted(cfg.items())
                                            if r.configuration_keys is None or
                                            k in r.configuration_keys]})
            return self._resp(header, results=results)
        if key == ApiKey.INCREMENTAL_ALTER_CONFIGS:
            responses = []
            for r in request.resources:
                code = ErrorCode.none
                if r.resource_type == 2 and r.resource_name not in c.topics:
                    code = ErrorCode.unknown_topic_or_partition
                elif not request.validate_only:
                    cfg = c.configs.setdefault(r.resource_name, {})
                    for item in r.configs:
                        if item.config_operation == 1:
                            cfg.pop(item.name, None)
                        else:
                            cfg[item.name] = item.value
                responses.append({"error_code": code, "resource_type": r.resource_type,
                                  "resource_name": r.resource_name})
            return self._resp(header, responses=responses)
        if key == ApiKey.DESCRIBE_CLUSTER:
            return self._resp(header, cluster_id="tiny-cluster", controller_id=c.controller_id,
                              endpoint_type=1,
                              brokers=[{"broker_id": i, "host": h, "port": p}
                                       for i, (h, p) in sorted(c.brokers.items())])
        if key == ApiKey.INIT_PRODUCER_ID:
            c.producer_ids += 1
            return self._resp(header, producer_id=4000 + c.producer_ids, producer_epoch=0)
        if key == ApiKey.LEADER_AND_ISR:
            c.leader_and_isr.append((header.api_version, request))
            return LeaderAndIsrResponse(error_code=0)
        raise AssertionError(f"tiny broker cannot answer api {key}")

    def _partition(self, topic: str, partition: int) -> PartitionLog | None:
        parts = self.cluster.topics.get(topic)
        if parts is None or not 0 <= partition < len(parts):
            return None
        return parts[partition]

    def _metadata(self, header: RequestHeader, request: Any) -> Any:
        c = self.cluster
        if request.topics is None or (header.api_version == 0 and not request.topics):
            names = sorted(c.topics)
        else:
            names = [t.name for t in request.topics]
        auto = getattr(request, "allow_auto_topic_creation", True)
        topics = []
        for name in names:
            if name not in c.topics:
                if auto and c.configs.get("__auto_create__") is not None:
                    c.add_topic(name, int(c.configs["__auto_create__"]["partitions"]))
                else:
                    topics.append({"name": name,
                                   "error_code": ErrorCode.unknown_topic_or_partition})
                    continue
            topics.append({"name": name, "partitions": [
                {"partition_index": i, "leader_id": p.leader, "leader_epoch": 0,
                 "replica_nodes": [p.leader], "isr_nodes": [p.leader]}
                for i, p in enumerate(c.topics[name])]})
        return self._resp(header, brokers=[{"node_id": i, "host": h, "port": p}
                                           for i, (h, p) in sorted(c.brokers.items())],
                          cluster_id="tiny-cluster", controller_id=c.controller_id,
                          topics=topics)

    def _produce(self, header: RequestHeader, request: Any) -> Any:
        self.cluster.produce_requests += 1
        responses = []
        for t in request.topic_data:
            parts = []
            for p in t.partition_data:
                plog = self._partition(t.name, p.index)
                code = self._error(t.name, p.index, ApiKey.PRODUCE)
                if plog is None:
                    code = ErrorCode.unknown_topic_or_partition
                elif plog.leader != self.node_id:
                    code = ErrorCode.not_leader_or_follower
                if code != ErrorCode.none:
                    parts.append({"index": p.index, "error_code": code, "base_offset": -1})
                    continue
                base = plog.next_offset
                for batch in iter_batches(p.records):
                    pid = batch.producer_id
                    if pid >= 0:
                        key = (t.name, p.index, pid)
                        last = self.cluster.sequences.get(key)
                        if last is not None and last[0] == batch.base_sequence:
                            base = last[2]  # a duplicate: answer the first write's offset
                            break
                        expected = 0 if last is None else last[1] + 1
                        if batch.base_sequence != expected:
                            code = ErrorCode.out_of_order_sequence_number
                            break
                        self.cluster.sequences[key] = (
                            batch.base_sequence,
                            batch.base_sequence + batch.last_offset_delta, plog.next_offset)
                    stored = bytearray(batch.view())
                    view = RecordBatch(stored)
                    view.set_base_offset(plog.next_offset)
                    plog.next_offset = view.next_offset
                    plog.batches.append(stored)
                if code != ErrorCode.none:
                    parts.append({"index": p.index, "error_code": code, "base_offset": -1})
                    continue
                parts.append({"index": p.index, "base_offset": base, "log_start_offset": 0})
            responses.append({"name": t.name, "partition_responses": parts})
        self.cluster.appended.set()
        self.cluster.appended = trio.Event()
        if request.acks == 0:
            return None
        return self._resp(header, responses=responses)

    async def _fetch(self, header: RequestHeader, request: Any) -> Any:
        deadline = trio.current_time() + request.max_wait.total_seconds()
        while True:
            topics, total = self._fetch_once(request)
            if total >= request.min_bytes or trio.current_time() >= deadline:
                break
            with trio.move_on_at(deadline):
                await self.cluster.appended.wait()
        return self._resp(header, responses=topics)

    def _fetch_once(self, request: Any) -> tuple[list, int]:
        total = 0
        topics = []
        for t in request.topics:
            parts = []
            for p in t.partitions:
                plog = self._partition(t.topic, p.partition)
                code = self._error(t.topic, p.partition, ApiKey.FETCH)
                if plog is None:
                    code = ErrorCode.unknown_topic_or_partition
                elif plog.leader != self.node_id:
                    code = ErrorCode.not_leader_or_follower
                elif not plog.log_start <= p.fetch_offset <= plog.next_offset:
                    code = ErrorCode.offset_out_of_range
                if code != ErrorCode.none:
                    parts.append({"partition_index": p.partition, "error_code": code,
                                  "high_watermark": -1, "records": None})
                    continue
                data = bytearray()
                for b in plog.batches:
                    view = RecordBatch(b)
                    if view.last_offset >= p.fetch_offset:
                        if data and len(data) + len(b) > p.partition_max_bytes:
                            data += b[:len(b) // 2]  # a cut tail, as Kafka may send
                            break
                        data += b
                total += len(data)
                parts.append({"partition_index": p.partition, "high_watermark": plog.next_offset,
                              "last_stable_offset": plog.next_offset, "log_start_offset": 0,
                              "records": bytes(data)})
            topics.append({"topic": t.topic, "partitions": parts})
        return topics, total

    def _admin(self, header: RequestHeader, request: Any) -> Any:
        c = self.cluster
        not_controller = c.controller_id != self.node_id
        if header.api_key == ApiKey.CREATE_TOPICS:
            results = []
            for t in request.topics:
                code = ErrorCode.none
                if not_controller:
                    code = ErrorCode.not_controller
                elif t.name in c.topics:
                    code = ErrorCode.topic_already_exists
                elif t.replication_factor > len(c.brokers):
                    code = ErrorCode.invalid_replication_factor
                elif t.num_partitions == 0 or t.num_partitions < -1:
                    code = ErrorCode.invalid_partitions
                elif not request.validate_only:
                    n = t.num_partitions if t.num_partitions > 0 else len(t.assignments) or 1
                    leaders = [a.broker_ids[0] for a in t.assignments] or None
                    c.add_topic(t.name, n, leaders)
                    c.configs[t.name] = {cfg.name: cfg.value for cfg in t.configs}
                results.append({"name": t.name, "error_code": code,
                                "error_message": None if code == ErrorCode.none else
                                f"tiny: {code.name}", "num_partitions": -1,
                                "replication_factor": -1})
            return self._resp(header, topics=results)
        if header.api_key == ApiKey.DELETE_TOPICS:
            results = []
            for name in request.topic_names:
                code = ErrorCode.not_controller if not_controller else \
                    ErrorCode.none if c.topics.pop(name, None) is not None else \
                    ErrorCode.unknown_topic_or_partition
                results.append({"name": name, "error_code": code})
            return self._resp(header, responses=results)
        results = []
        for t in request.topics:
            code = ErrorCode.none
            if not_controller:
                code = ErrorCode.not_controller
            elif t.name not in c.topics:
                code = ErrorCode.unknown_topic_or_partition
            elif t.count <= len(c.topics[t.name]):
                code = ErrorCode.invalid_partitions
            elif not request.validate_only:
                ids = sorted(c.brokers)
                for p in range(len(c.topics[t.name]), t.count):
                    c.topics[t.name].append(PartitionLog(ids[p % len(ids)]))
            results.append({"name": t.name, "error_code": code})
        return self._resp(header, results=results)


async def start_tiny_cluster(nursery: trio.Nursery, nodes: int = 1,
                             cluster: TinyCluster | None = None) -> tuple[TinyCluster,
                                                                         list[TinyNode]]:
    """Start ``nodes`` nodes (ids 1..n) sharing one TinyCluster, in ``nursery``."""
    cluster = cluster or TinyCluster()
    started = []
    for node_id in range(1, nodes + 1):
        node = TinyNode(cluster, node_id)
        await node.start(nursery)
        started.append(node)
    return cluster, started


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

