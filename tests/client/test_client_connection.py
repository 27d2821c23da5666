"""KafkaConnection against misbehaving_broker.py (real TCP, kafkalike's codec, misbehaviour on
demand): negotiation with older brokers, pipelining, correlation ids, timeouts, out-of-order
responses, closing, typed errors. A connection to a real broker (acks=0, open()) is tested in
test_client_cluster.py."""

from __future__ import annotations

import time

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.client.connection import KafkaConnection, negotiate_versions
from kafkalike.client.errors import (BadResponseError, BrokerConnectionRefusedError,
                                     ConnectionClosedError, RequestTimeoutError,
                                     UnsupportedApiVersionError)
from kafkalike.client.messages import build_request
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.leader_and_isr import (LeaderAndIsrPartitionState,
                                               LeaderAndIsrRequest)
from misbehaving_broker import free_port, start_tiny_cluster


async def _connect(nursery: trio.Nursery, port: int, **kw: object) -> KafkaConnection:
    return await KafkaConnection.connect("127.0.0.1", port, nursery=nursery, **kw)


def test_negotiate_versions_picks_highest_common_version() -> None:
    """Each API gets min(client max, broker max) unless the ranges do not overlap."""
    got = negotiate_versions({3: (0, 12), 0: (3, 9), 1: (4, 12), 60: (0, 1)},
                             {3: (0, 9), 0: (0, 2), 1: (4, 16)})
    assert got == {3: 9, 1: 12}


async def test_connect_negotiates_each_api_to_the_highest_common_version() -> None:
    """The broker's ApiVersions table caps each API; requests then go out at that version."""
    async with trio.open_nursery() as nursery:
        cluster, (node,) = await start_tiny_cluster(nursery)
        cluster.supported[ApiKey.METADATA] = (0, 5)
        conn = await _connect(nursery, node.port)
        assert conn.versions[ApiKey.METADATA] == 5
        assert conn.versions[ApiKey.API_VERSIONS] == 3
        await conn.call(ApiKey.METADATA, topics=None)
        assert cluster.seen[-1] == (1, ApiKey.METADATA, 5)
        await conn.aclose()
        nursery.cancel_scope.cancel()


async def test_api_versions_falls_back_when_broker_answers_unsupported_version() -> None:
    """A broker knowing ApiVersions only up to v2 answers v3 with UNSUPPORTED_VERSION
    (KIP-511); the client retries at v2, like librdkafka."""
    async with trio.open_nursery() as nursery:
        cluster, (node,) = await start_tiny_cluster(nursery)
        cluster.supported[ApiKey.API_VERSIONS] = (0, 2)
        conn = await _connect(nursery, node.port)
        versions = [v for (_n, k, v) in cluster.seen if k == ApiKey.API_VERSIONS]
        assert versions == [3, 2]
        assert conn.versions[ApiKey.API_VERSIONS] == 2
        assert conn.versions[ApiKey.METADATA] == 12
        await conn.aclose()
        nursery.cancel_scope.cancel()


async def test_api_the_broker_lacks_raises_unsupported_api_version() -> None:
    """Asking for an API the broker does not list is a typed error naming the API."""
    async with trio.open_nursery() as nursery:
        cluster, (node,) = await start_tiny_cluster(nursery)
        del cluster.supported[ApiKey.DESCRIBE_CLUSTER]
        conn = await _connect(nursery, node.port)
        with pytest.raises(UnsupportedApiVersionError, match=r"^DescribeCluster: broker"):
            await conn.call(ApiKey.DESCRIBE_CLUSTER)
        await conn.aclose()
        nursery.cancel_scope.cancel()


async def test_requests_are_pipelined_and_matched_to_their_responses() -> None:
    """50 concurrent requests are all on the wire before the server answers any (it holds
    until it has 50), and each caller gets its own response."""
    async with trio.open_nursery() as nursery:
        cluster, (node,) = await start_tiny_cluster(nursery)
        for i in range(5):
            cluster.add_topic(f"t{i}", i + 1)
        conn = await _connect(nursery, node.port)
        cluster.hold = 50
        results: dict[int, int] = {}

        async def ask(i: int) -> None:
            topic = f"t{i % 5}"
            response = await conn.call(ApiKey.METADATA, topics=[{"name": topic}],
                                       timeout_ms=5000)
            (t,) = response.topics
            assert t.name == topic
            results[i] = len(t.partitions)

        async with trio.open_nursery() as inner:
            for i in range(50):
                inner.start_soon(ask, i)
        assert results == {i: i % 5 + 1 for i in range(50)}
        stats = conn.statistics()
        assert stats.in_flight == 0 and stats.responses_received == 51
        await conn.aclose()
        nursery.cancel_scope.cancel()


async def test_request_timeout_raises_and_closes_the_connection() -> None:
    """No answer within timeout_ms: RequestTimeoutError after about that long; the
    connection closes and a request pipelined behind it fails with ConnectionClosedError."""
    async with trio.open_nursery() as nursery:
        cluster, (node,) = await start_tiny_cluster(nursery)
        conn = await _connect(nursery, node.port)
        cluster.never_answer.add(ApiKey.DESCRIBE_CLUSTER)
        behind: list[BaseException] = []

        async def second() -> None:
            await trio.sleep(0.05)
            try:
                await conn.call(ApiKey.DESCRIBE_CLUSTER, timeout_ms=10000)
            except ConnectionClosedError as exc:
                behind.append(exc)

        nursery.start_soon(second)
        start = time.monotonic()
        with pytest.raises(RequestTimeoutError, match=r"no response in 300 ms"):
            await conn.call(ApiKey.DESCRIBE_CLUSTER, timeout_ms=300)
        elapsed = time.monotonic() - start
        assert 0.29 <= elapsed < 2.0
        await trio.sleep(0.05)
        assert conn.closed and len(behind) == 1
        with pytest.raises(ConnectionClosedError):
            await conn.call(ApiKey.METADATA, topics=None)
        nursery.cancel_scope.cancel()


async def test_cancelled_waiter_abandons_its_response_and_the_connection_stays_usable() -> None:
    """A caller cancelled while waiting leaves the connection in sync: the late response
    is discarded and the next request gets its own."""
    async with trio.open_nursery() as nursery:
        cluster, (node,) = await start_tiny_cluster(nursery)
        cluster.add_topic("a", 3)
        conn = await _connect(nursery, node.port)
        cluster.hold = 2  # the first request waits for the second one
        with trio.move_on_after(0.2) as scope:
            await conn.call(ApiKey.METADATA, topics=[{"name": "a"}])
        assert scope.cancelled_caught and not conn.closed
        response = await conn.call(ApiKey.DESCRIBE_CLUSTER, timeout_ms=5000)
        assert response.cluster_id == "tiny-cluster"
        cluster.hold = 0
        response = await conn.call(ApiKey.METADATA, topics=[{"name": "a"}])
        assert len(response.topics[0].partitions) == 3
        await conn.aclose()
        nursery.cancel_scope.cancel()


async def test_out_of_order_response_is_a_protocol_violation() -> None:
    """Responses must come back in request order; a swapped pair fails both requests with
    BadResponseError and closes the connection."""
    async with trio.open_nursery() as nursery:
        cluster, (node,) = await start_tiny_cluster(nursery)
        conn = await _connect(nursery, node.port)
        cluster.hold = 2
        cluster.swap_next = True
        errors: list[BaseException] = []

        async def ask() -> None:
            try:
                await conn.call(ApiKey.METADATA, topics=None, timeout_ms=5000)
            except BadResponseError as exc:
                errors.append(exc)

        async with trio.open_nursery() as inner:
            inner.start_soon(ask)
            inner.start_soon(ask)
        assert len(errors) == 2
        assert "correlation id" in str(errors[0])
        assert conn.closed
        nursery.cancel_scope.cancel()


async def test_connection_refused_is_typed() -> None:
    """Connecting to a port nobody listens on raises BrokerConnectionRefusedError."""
    async with trio.open_nursery() as nursery:
        port = free_port()
        with pytest.raises(BrokerConnectionRefusedError, match=rf"127\.0\.0\.1:{port}"):
            await _connect(nursery, port)


async def test_broker_closing_the_connection_fails_in_flight_requests() -> None:
    """When the broker hangs up, the waiting request fails with ConnectionClosedError."""
    async with trio.open_nursery() as nursery:
        cluster, (node,) = await start_tiny_cluster(nursery)
        conn = await _connect(nursery, node.port)
        cluster.close_on.add(ApiKey.DESCRIBE_CLUSTER)
        with pytest.raises(ConnectionClosedError, match="closed by the broker"):
            await conn.call(ApiKey.DESCRIBE_CLUSTER, timeout_ms=5000)
        assert conn.closed
        nursery.cancel_scope.cancel()


async def test_close_fails_outstanding_requests() -> None:
    """aclose() while a request waits: the request fails with ConnectionClosedError."""
    async with trio.open_nursery() as nursery:
        cluster, (node,) = await start_tiny_cluster(nursery)
        conn = await _connect(nursery, node.port)
        cluster.never_answer.add(ApiKey.METADATA)
        failed: list[BaseException] = []

        async def ask() -> None:
            try:
                await conn.call(ApiKey.METADATA, topics=None)
            except ConnectionClosedError as exc:
                failed.append(exc)

        nursery.start_soon(ask)
        await trio.sleep(0.05)
        await conn.aclose()
        await trio.sleep(0.01)
        assert len(failed) == 1
        nursery.cancel_scope.cancel()


async def test_raw_send_of_a_zk_era_request_at_a_given_version() -> None:
    """The controller channel's path: a kafkalike LeaderAndIsr message sent with an explicit
    api_version arrives at that version with its fields, and the response decodes."""
    async with trio.open_nursery() as nursery:
        cluster, (node,) = await start_tiny_cluster(nursery)
        conn = await _connect(nursery, node.port)
        state = LeaderAndIsrPartitionState(topic_name="t", partition_index=0,
                                           controller_epoch=3, leader=1, leader_epoch=7,
                                           isr=[1], zk_version=0, replicas=[1],
                                           is_new=True)
        request = LeaderAndIsrRequest(controller_id=1, controller_epoch=3, broker_epoch=42,
                                      ungrouped_partition_states=[state], live_leaders=[])
        response = await conn.send(request, api_version=1)
        assert response.error_code == 0
        version, got = cluster.leader_and_isr[-1]
        assert version == 1
        assert got.ungrouped_partition_states[0].leader_epoch == 7
        response = await conn.send(request)  # negotiated: kafkalike's newest, v6
        assert cluster.leader_and_isr[-1][0] == 6
        await conn.aclose()
        nursery.cancel_scope.cancel()


def test_build_request_rejects_unknown_fields() -> None:
    """A field name no version of the API has is a TypeError, not silently dropped."""
    with pytest.raises(TypeError, match=r"^Metadata has no field\(s\) \['topicz'\]$"):
        build_request(ApiKey.METADATA, 12, topicz=None)
    request = build_request(ApiKey.METADATA, 4, topics=[{"name": "x", "topic_id": None}])
    assert request.topics[0].name == "x"  # topic_id exists only from v10: dropped


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.integers(0, 4)),
                min_size=1, max_size=25))
def test_pipelined_callers_get_their_own_responses_despite_delays_and_cancels(
        plan: list[tuple[int, bool, int]]) -> None:
    """Each caller (answer delay ms, cancelled?, start delay ms) gets the response to its own
    request; cancelled callers leave the connection in sync for everyone else."""

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            cluster, (node,) = await start_tiny_cluster(nursery)
            cluster.delay = lambda header, request: (
                int(request.topics[0].name.split("-")[1]) / 1000
                if header.api_key == ApiKey.METADATA and request.topics else 0)
            conn = await _connect(nursery, node.port)
            answered: dict[int, str] = {}

            async def caller(i: int, answer_ms: int, cancel: bool, start_ms: int) -> None:
                await trio.sleep(start_ms / 1000)
                name = f"t{i}-{answer_ms}"
                with trio.CancelScope() as scope:
                    if cancel:
                        scope.deadline = trio.current_time() + 0.001
                    response = await conn.call(ApiKey.METADATA, topics=[{"name": name}],
                                               timeout_ms=10000)
                    answered[i] = response.topics[0].name

            async with trio.open_nursery() as inner:
                for i, (answer_ms, cancel, start_ms) in enumerate(plan):
                    inner.start_soon(caller, i, answer_ms, cancel, start_ms)
            for i, (answer_ms, cancel, _s) in enumerate(plan):
                if not cancel:
                    assert answered[i] == f"t{i}-{answer_ms}"
                elif i in answered:
                    assert answered[i] == f"t{i}-{answer_ms}"
            response = await conn.call(ApiKey.METADATA, topics=[{"name": "last-0"}])
            assert response.topics[0].name == "last-0" and not conn.closed
            await conn.aclose()
            nursery.cancel_scope.cancel()

    trio.run(run)
