"""A minimal in-test Kafka endpoint that misbehaves on purpose (real TCP sockets, real codec).

Why it exists: the client's producer, consumer and admin tests run against real kafkalike
broker processes (test_client_cluster.py, test_client_kafkalike_cluster.py). What is left here
is what a correct broker never does, or does only under faults that cannot be placed at an
exact request, so only a server built for it can show the client's side:

- answer nothing until N requests are queued (``hold``: proves pipelining), never answer an
  API (``never_answer``), answer two responses in the wrong order (``swap_next``), hang up on
  an API (``close_on``), wait a chosen time per request (``delay``);
- handle a Produce and then hang up instead of answering (``lose_response``: the network
  losing exactly one response, which decides between a duplicate and an idempotent retry);
- answer a Produce with a queued error (``errors``), e.g. OUT_OF_ORDER_SEQUENCE_NUMBER,
  which a real broker gives a correct client only after losing producer state;
- advertise a chosen ApiVersions table (``supported``: an older broker, the KIP-511
  fallback) and record what arrived (``seen``, ``leader_and_isr``).

It serves ApiVersions, Metadata, Produce (offsets assigned by patching baseOffset; idempotent
producers' sequence checks as Kafka's ProducerStateManager does for the last batch:
duplicate -> the first write's offset, gap -> OUT_OF_ORDER_SEQUENCE_NUMBER), InitProducerId
(ids from 4001), DescribeCluster and LeaderAndIsr, one trio TCP server per node on 127.0.0.1
(port 0), each connection's requests processed in order as Kafka's SocketServer does.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from typing import Any

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
    """One partition: its leader node and its batches (bytes, offsets patched)."""

    leader: int
    batches: list[bytearray] = attrs.field(factory=list)
    next_offset: int = 0


@attrs.define
class TinyCluster:
    """Shared state of the nodes and the misbehaviour switches (see module doc)."""

    brokers: dict[int, tuple[str, int]] = attrs.field(factory=dict)
    topics: dict[str, list[PartitionLog]] = attrs.field(factory=dict)
    controller_id: int = 1
    supported: dict[int, tuple[int, int]] = attrs.field(factory=lambda: dict(SUPPORTED_APIS))
    hold: int = 0
    never_answer: set[int] = attrs.field(factory=set)
    close_on: set[int] = attrs.field(factory=set)
    swap_next: bool = False
    errors: dict[tuple[str, int], list[ErrorCode]] = attrs.field(factory=dict)  # Produce
    seen: list[tuple[int, int, int]] = attrs.field(factory=list)  # (node, api_key, version)
    leader_and_isr: list[Any] = attrs.field(factory=list)
    delay: Callable[[RequestHeader, Any], float] | None = None  # seconds before answering
    lose_response: set[int] = attrs.field(factory=set)  # handle, then hang up (once per key)
    producer_ids: int = 0
    # (topic, partition, producer id) -> (base sequence, last sequence, base offset) of the
    # producer's last batch, for Kafka's duplicate / out-of-order sequence checks
    sequences: dict[tuple[str, int, int], tuple[int, int, int]] = attrs.field(factory=dict)

    def add_topic(self, name: str, partitions: int) -> None:
        """A topic whose partitions are led by the nodes in turn."""
        ids = sorted(self.brokers) or [1]
        self.topics[name] = [PartitionLog(ids[p % len(ids)]) for p in range(partitions)]

    def records(self, topic: str, partition: int) -> bytes:
        """Every stored batch of the partition, back to back."""
        return b"".join(bytes(b) for b in self.topics[topic][partition].batches)


class TinyNode:
    """One node: ``node_id``, ``port``."""

    def __init__(self, cluster: TinyCluster, node_id: int) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.port = 0

    async def start(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, self._serve, 0, host="127.0.0.1"))
        self.port = listeners[0].socket.getsockname()[1]
        self.cluster.brokers[self.node_id] = ("127.0.0.1", self.port)

    async def _serve(self, stream: trio.SocketStream) -> None:
        reader = FrameReader()
        queue: list[tuple[RequestHeader | None, Any, bytes | None]] = []
        c = self.cluster
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                reader.feed(data)
                while (frame := reader.next_frame()) is not None:
                    try:
                        header, request = parse_request(frame, c.supported)
                    except UnsupportedVersionError as exc:
                        if exc.api_key == ApiKey.API_VERSIONS:
                            c.seen.append((self.node_id, exc.api_key, exc.api_version))
                            queue.append((None, None, encode_api_versions_fallback(
                                exc.correlation_id, c.supported)))
                            continue
                        return
                    except ProtocolError:
                        return
                    c.seen.append((self.node_id, header.api_key, header.api_version))
                    if header.api_key in c.close_on:
                        return
                    queue.append((header, request, None))
                if len(queue) < c.hold:
                    continue
                out = []
                for header, request, ready in queue:
                    if ready is not None:
                        out.append(ready)
                        continue
                    assert header is not None
                    if header.api_key in c.never_answer:
                        continue
                    if c.delay is not None:
                        await trio.sleep(c.delay(header, request))
                    response = self._handle(header, request)
                    if header.api_key in c.lose_response:
                        c.lose_response.discard(header.api_key)
                        return
                    if response is not None:
                        out.append(encode_response(header, response))
                queue.clear()
                if c.swap_next and len(out) >= 2:
                    c.swap_next = False
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

    def _handle(self, header: RequestHeader, request: Any) -> Any:
        key = header.api_key
        c = self.cluster
        if key == ApiKey.API_VERSIONS:
            return api_versions_response(header.api_version, c.supported)
        if key == ApiKey.METADATA:
            return self._metadata(header, request)
        if key == ApiKey.PRODUCE:
            return self._produce(header, request)
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
        raise AssertionError(f"the misbehaving broker cannot answer api {key}")

    def _metadata(self, header: RequestHeader, request: Any) -> Any:
        c = self.cluster
        names = sorted(c.topics) if request.topics is None else [t.name for t in request.topics]
        topics: list[dict[str, Any]] = []
        for name in names:
            if name not in c.topics:
                topics.append({"name": name, "error_code": ErrorCode.unknown_topic_or_partition})
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
        responses = []
        for t in request.topic_data:
            parts = []
            for p in t.partition_data:
                logs = self.cluster.topics.get(t.name, [])
                plog = logs[p.index] if 0 <= p.index < len(logs) else None
                queued = self.cluster.errors.get((t.name, p.index))
                code = queued.pop(0) if queued else ErrorCode.none
                if plog is None:
                    code = ErrorCode.unknown_topic_or_partition
                elif plog.leader != self.node_id:
                    code = ErrorCode.not_leader_or_follower
                if code != ErrorCode.none:
                    parts.append({"index": p.index, "error_code": code, "base_offset": -1})
                    continue
                assert plog is not None
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
        if request.acks == 0:
            return None
        return self._resp(header, responses=responses)


async def start_tiny_cluster(nursery: trio.Nursery, nodes: int = 1) -> tuple[TinyCluster,
                                                                             list[TinyNode]]:
    """Start ``nodes`` nodes (ids 1..n) sharing one TinyCluster, in ``nursery``."""
    cluster = TinyCluster()
    started = []
    for node_id in range(1, nodes + 1):
        node = TinyNode(cluster, node_id)
        await node.start(nursery)
        started.append(node)
    return cluster, started


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
