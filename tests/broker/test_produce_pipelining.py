"""kafkalike.produce.pipelining (broker/request_pipelining.py, socket_server): while an acks=all
Produce waits for its follower, the broker reads and appends the next Produce of the same
connection; requests are appended in the order they were sent and answered in that order
(KafkaConnection refuses a response out of order). With the key off the connection waits, as
Kafka's muted channel does. An in-process broker with a real ZooKeeper over real TCP; the test
plays the follower (broker 2) with follower Fetches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import batch, connect, fetch, leader_and_isr, produce, running_broker


async def _lead_with_follower_2(server: Any, topic: str) -> None:
    me = server.broker_id
    async with connect(server) as conn:
        resp = await conn.send(leader_and_isr(server, topic, {0: (me, (me, 2), (me, 2))}), api_version=6)
        assert resp.topics[0].partition_errors[0].error_code == 0


def _log_end_offset(server: Any, topic: str) -> int:
    return int(server.replica_manager.partitions[TopicPartition(topic, 0)].log_end_offset)


@pytest.mark.parametrize("pipelining", ["true", "false"])
async def test_acks_all_produces_of_one_connection_are_appended_while_the_first_waits(
        tmp_path: Path, zk_chroot_connect: str, pipelining: str) -> None:
    """Three acks=all Produces on one connection to a partition whose follower has not fetched:
    pipelined, all three are appended (log end offset 3) while the first still waits; not
    pipelined (Kafka's way), only the first is, until it is answered. Once the follower
    acknowledges, every request is answered, in order, with base offsets 0, 1, 2."""
    topic = "pipe"
    async with running_broker(tmp_path, zk_chroot_connect, replica_lag_time_max_ms="600000",
                              kafkalike_produce_pipelining=pipelining) as server:
        await _lead_with_follower_2(server, topic)
        results: dict[int, Any] = {}
        async with connect(server) as conn, trio.open_nursery() as nursery:
            async def one(i: int) -> None:
                results[i] = await produce(conn, topic, 0, batch([f"r{i}".encode()]), acks=-1, timeout_ms=60_000)

            for i in range(3):  # each request written before the next one is sent
                sent = conn.statistics().requests_sent
                nursery.start_soon(one, i)
                with trio.fail_after(10):
                    while conn.statistics().requests_sent == sent:
                        await trio.sleep(0.005)
            expected = 3 if pipelining == "true" else 1
            with trio.fail_after(10):
                while _log_end_offset(server, topic) < expected:
                    await trio.sleep(0.01)
            await trio.sleep(0.3)  # nothing more is appended while the follower is silent
            assert _log_end_offset(server, topic) == expected
            assert results == {}
            async with connect(server) as follower:
                acknowledged = 0
                with trio.fail_after(20):
                    while len(results) < 3:  # the follower fetches what there is and acknowledges it
                        leo = _log_end_offset(server, topic)
                        if leo > acknowledged:
                            await fetch(follower, topic, 0, acknowledged, replica_id=2)
                            await fetch(follower, topic, 0, leo, replica_id=2)
                            acknowledged = leo
                        await trio.sleep(0.01)
        assert [results[i].error_code for i in range(3)] == [0, 0, 0]
        assert [results[i].base_offset for i in range(3)] == [0, 1, 2]


async def test_a_malformed_pipelined_produce_closes_the_connection_after_the_earlier_answer(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """A valid acks=all Produce waiting for its follower, then an acks=all Produce whose body is
    cut short on the same connection: the broker answers the first once the follower acknowledges
    it, then closes the connection (Kafka's answer to a malformed request), and the second appended
    nothing."""
    from kafkalike.client.messages import build_request
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.protocol.codec import decode_response, encode_request

    topic = "pipe-bad"
    async with running_broker(tmp_path, zk_chroot_connect, replica_lag_time_max_ms="600000") as server:
        await _lead_with_follower_2(server, topic)
        good = build_request(ApiKey.PRODUCE, 9, acks=-1, timeout=60_000, transactional_id=None, topic_data=[
            {"name": topic, "partition_data": [{"index": 0, "records": batch([b"ok"])}]}])
        first = encode_request(good, correlation_id=1, client_id="raw", api_version=9)
        whole = encode_request(good, correlation_id=2, client_id="raw", api_version=9)
        cut = whole[4:len(whole) - 20]  # header, transactional id, acks, part of the rest
        second = len(cut).to_bytes(4, "big") + cut
        stream = await trio.open_tcp_stream("127.0.0.1", server.bound_listeners[0].port)
        async with stream:
            await stream.send_all(first + second)
            with trio.fail_after(10):
                while _log_end_offset(server, topic) < 1:
                    await trio.sleep(0.01)
            async with connect(server) as follower:
                await fetch(follower, topic, 0, 0, replica_id=2)
                await fetch(follower, topic, 0, 1, replica_id=2)
            received = b""
            with trio.fail_after(20):
                while True:
                    data = await stream.receive_some(65536)
                    if not data:
                        break
                    received += data
        size = int.from_bytes(received[:4], "big")
        assert len(received) == 4 + size  # one answer, then the broker closed the connection
        correlation_id, response = decode_response(memoryview(received[4:]), ApiKey.PRODUCE, 9)
        assert correlation_id == 1
        assert response.responses[0].partition_responses[0].error_code == 0
        assert _log_end_offset(server, topic) == 1


class _PipelinedTaskTrips(trio.abc.Instrument):
    """Steps (trips through trio's scheduler) of each task serving a pipelined Produce, in the
    order the tasks first ran."""

    def __init__(self) -> None:
        self.trips: dict[trio.lowlevel.Task, int] = {}

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("_handle_pipelined"):
            self.trips[task] = self.trips.get(task, 0) + 1


async def test_a_later_produce_in_line_writes_its_answer_with_no_extra_scheduler_trip(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """Two acks=all Produces, one after the other on one connection, each acknowledged by the
    follower: the second request's task (the connection's earlier answer already written) takes
    as many trips through trio's scheduler as the first one's. It used to wait on the earlier
    request's set ``written`` Event, and trio's Event.wait yields even when the event is set:
    one more trip, in which every other runnable task went first, between the answer being
    encoded and written (docs/benchmarks.md, "Hop timing")."""
    topic = "pipe-trips"
    instrument = _PipelinedTaskTrips()
    async with running_broker(tmp_path, zk_chroot_connect, replica_lag_time_max_ms="600000") as server:
        await _lead_with_follower_2(server, topic)
        async with connect(server) as conn, connect(server) as follower:
            trio.lowlevel.add_instrument(instrument)
            try:
                for i in range(2):
                    result: list[Any] = []
                    async with trio.open_nursery() as nursery:
                        async def one() -> None:
                            result.append(await produce(conn, topic, 0, batch([f"r{i}".encode()]), acks=-1,
                                                        timeout_ms=60_000))

                        nursery.start_soon(one)
                        with trio.fail_after(10):
                            while _log_end_offset(server, topic) < i + 1:
                                await trio.sleep(0.01)
                        await fetch(follower, topic, 0, i, replica_id=2)
                        await fetch(follower, topic, 0, i + 1, replica_id=2)  # moves the high watermark
                    assert result[0].error_code == 0 and result[0].base_offset == i
            finally:
                trio.lowlevel.remove_instrument(instrument)
    trips = list(instrument.trips.values())
    assert len(trips) == 2, instrument.trips
    assert trips[1] == trips[0], trips
