"""socket_server.send_chunks on a plain TCP connection writes a response with direct
non-blocking system calls (os.writev for bytes, os.sendfile for FileRecords) and one trip
through trio's scheduler per response, instead of one per chunk; socket_server.receive_some
reads request bytes already in the socket without a trip (the "response encoded → written"
and "follower turnaround" hops of docs/benchmarks.md's hop timing). Real loopback sockets, a
real segment-like file."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from kafkalike.broker.socket_server import receive_some, send_chunks
from kafkalike.protocol.fetch import FileRecords


async def _connected_pair() -> tuple[trio.SocketStream, trio.SocketStream, trio.SocketListener]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    return server, client, listeners[0]


async def _read_exactly(stream: trio.SocketStream, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = await stream.receive_some(1 << 20)
        assert data, f"peer closed after {len(out)} of {n} bytes"
        out += data
    return bytes(out)


def _segment(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes((bytes(range(251)) * (size // 251 + 1))[:size])
    return path


class _Trips(trio.abc.Instrument):
    """Counts how often ``task`` is resumed by trio's scheduler (its trips through it)."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.trips = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.trips += 1


async def test_a_fetch_like_response_arrives_whole_and_in_order_with_one_scheduler_trip(tmp_path: Path) -> None:
    """Header bytes, two file regions with bytes between them and a memoryview trailer
    arrive byte for byte in chunk order, and writing them took one trip through trio's
    scheduler (at most two, should the kernel take a region in two pieces), where send_all
    per chunk took one per chunk (5 here); ``written`` is called before that last trip."""
    seg = _segment(tmp_path, 10_000)
    server, client, listener = await _connected_pair()
    with open(seg, "rb") as f:
        chunks = [b"HEAD", FileRecords(f, 100, 2_000), b"-mid-", FileRecords(f.fileno(), 5_000, 3_000),
                  memoryview(b"xxTAILxx")[2:6], None, b""]
        expected = b"HEAD" + seg.read_bytes()[100:2_100] + b"-mid-" + seg.read_bytes()[5_000:8_000] + b"TAIL"
        trips = _Trips(trio.lowlevel.current_task())
        trio.lowlevel.add_instrument(trips)
        written_after: list[int] = []
        try:
            await send_chunks(server, chunks, written=lambda: written_after.append(trips.trips))
        finally:
            trio.lowlevel.remove_instrument(trips)
        received = await _read_exactly(client, len(expected))
    assert received == expected
    assert 1 <= trips.trips <= 2, trips.trips
    assert written_after == [trips.trips - 1]  # the write is reported before the final trip
    await server.aclose()
    await client.aclose()
    await listener.aclose()


async def test_a_response_larger_than_the_socket_buffer_waits_for_the_reader(tmp_path: Path) -> None:
    """8 MiB of file region and 2 MiB of bytes (more than loopback's send buffer) go out
    whole while the peer reads slowly: the writer waits for the socket to drain instead of
    losing or reordering bytes."""
    seg = _segment(tmp_path, 8 << 20)
    big = bytes(range(256)) * (8 << 10)  # 2 MiB
    server, client, listener = await _connected_pair()
    with open(seg, "rb") as f:
        expected = big + seg.read_bytes() + big[:1000]
        got: list[bytes] = []

        async def reader() -> None:
            await trio.sleep(0.2)  # let the buffers fill first
            got.append(await _read_exactly(client, len(expected)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await send_chunks(server, [big, FileRecords(f, 0, 8 << 20), memoryview(big)[:1000]])
    assert got[0] == expected
    await server.aclose()
    await client.aclose()
    await listener.aclose()


async def test_writing_to_a_closed_peer_or_a_closed_stream_raises_trio_stream_errors(tmp_path: Path) -> None:
    """A peer that went away gives trio.BrokenResourceError (as send_all does), a stream
    closed here trio.ClosedResourceError: the connection loop ends quietly on both."""
    server, client, listener = await _connected_pair()
    await client.aclose()
    with pytest.raises(trio.BrokenResourceError):
        for _ in range(100):  # the first writes may still be accepted by the kernel
            await send_chunks(server, [b"x" * 65_536])
            await trio.sleep(0.01)
    await server.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await send_chunks(server, [b"after close"])
    await listener.aclose()


async def test_request_bytes_already_in_the_socket_are_read_without_a_scheduler_trip() -> None:
    """receive_some returns the bytes waiting in the socket without a trip through trio's
    scheduler (trio's own receive_some takes one); with nothing there it waits for the next
    bytes; at the peer's close it returns b""."""
    server, client, listener = await _connected_pair()
    await client.send_all(b"request-1")
    await trio.sleep(0.2)  # the bytes are in the server's socket now
    trips = _Trips(trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(trips)
    try:
        first = await receive_some(server)
    finally:
        trio.lowlevel.remove_instrument(trips)
    assert first == b"request-1" and trips.trips == 0
    async with trio.open_nursery() as nursery:
        got: list[bytes] = []

        async def late_reader() -> None:
            got.append(await receive_some(server))

        nursery.start_soon(late_reader)
        await trio.sleep(0.05)
        assert not got  # waiting: nothing to read yet
        await client.send_all(b"request-2")
    assert got == [b"request-2"]
    await client.aclose()
    assert await receive_some(server) == b""
    await server.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await receive_some(server)
    await listener.aclose()


def _segments_out(stream: trio.SocketStream) -> int:
    """TCP segments the socket has sent (Linux tcp_info.tcpi_segs_out, at byte 136)."""
    import socket
    import struct

    info = stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("=I", info, 136)[0])


async def test_a_response_with_records_leaves_in_one_segment_not_one_per_system_call(tmp_path: Path) -> None:
    """A small one-partition Fetch-like answer (header bytes, 170 bytes of records from the
    file, trailing tag bytes) is written corked: one TCP segment on loopback where the three
    system calls sent three (TCP_NODELAY), each of which the receiver handled on its own.
    Without records (plain bytes, one writev) nothing is corked and it is one segment too."""
    seg = _segment(tmp_path, 1000)
    server, client, listener = await _connected_pair()
    try:
        assert _segments_out(server) == _segments_out(server)  # steady: nothing in flight
        with seg.open("rb") as f:
            for chunks, size in (([b"h" * 40, FileRecords(f, 0, 170), b"\x00\x00\x00"], 213),
                                 ([b"p" * 60, memoryview(b"q" * 20)], 80)):
                before = _segments_out(server)
                await send_chunks(server, chunks)
                assert _segments_out(server) - before == 1
                assert len(await _read_exactly(client, size)) == size
        # the cork is off again: a later small write leaves at once
        before = _segments_out(server)
        await send_chunks(server, [b"x"])
        assert _segments_out(server) - before == 1
        assert await _read_exactly(client, 1) == b"x"
    finally:
        await server.aclose()
        await client.aclose()
        await listener.aclose()


async def test_a_response_with_more_records_than_the_cork_limit_is_not_corked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records over CORK_MAX_RECORD_BYTES stream out as sendfile sends them (corking the
    followers' 16-80 KiB answers halved the acks=all rate at client defaults): the socket is
    never corked, so no write is held back; the bytes arrive whole."""
    import socket

    from kafkalike.broker import socket_server

    seg = _segment(tmp_path, 100_000)
    server, client, listener = await _connected_pair()
    corks: list[int] = []
    real = socket_server._set_cork

    def spy(sock: object, on: bool) -> bool:
        corks.append(on)
        return real(sock, on)
    monkeypatch.setattr(socket_server, "_set_cork", spy)
    try:
        with seg.open("rb") as f:
            size = socket_server.CORK_MAX_RECORD_BYTES + 1
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_chunks, server, [b"h" * 40, FileRecords(f, 0, size), b"\x00"])
                assert len(await _read_exactly(client, 41 + size)) == 41 + size
            assert corks == []
            await send_chunks(server, [b"h" * 40, FileRecords(f, 0, 170), b"\x00"])
            assert corks == [True, False]
            assert server.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0
            assert len(await _read_exactly(client, 211)) == 211
    finally:
        await server.aclose()
        await client.aclose()
        await listener.aclose()
