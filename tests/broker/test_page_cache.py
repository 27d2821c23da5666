"""broker/page_cache: the residency probe tells a cached region from one evicted from the page
cache (fdatasync + POSIX_FADV_DONTNEED drops a file's clean pages without root), ``load`` brings
it back, and send_chunks reads an evicted region in through a worker thread before sendfile
while the bytes still arrive whole. Real files and loopback sockets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from kafkalike.broker import page_cache
from kafkalike.broker.socket_server import send_chunks
from kafkalike.protocol.fetch import FileRecords

pytestmark = pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="needs preadv2 RWF_NOWAIT (Linux 4.14+)")

SIZE = 4 << 20


def _evicted_file(tmp_path: Path) -> Path:
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(os.urandom(SIZE))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return path


def test_a_written_region_is_resident_an_evicted_one_is_not_until_loaded(tmp_path: Path) -> None:
    """Right after writing, the file is cached; once dropped, the probe says so without reading
    (the probe is RWF_NOWAIT: it does not load the page itself); load reads every byte back in."""
    path = tmp_path / "fresh.log"
    path.write_bytes(b"x" * 65_536)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert page_cache.is_resident(fd, 0, 65_536)
    finally:
        os.close(fd)
    path = _evicted_file(tmp_path)
    fd = os.open(path, os.O_RDONLY)
    try:
        if page_cache.is_resident(fd, 0, SIZE):
            pytest.skip("this file system keeps the pages after POSIX_FADV_DONTNEED")
        assert not page_cache.is_resident(fd, 0, SIZE)  # probing twice did not load it
        assert page_cache.load(fd, 0, SIZE) == SIZE
        assert page_cache.is_resident(fd, 0, SIZE)
        assert page_cache.load(fd, SIZE - 10, 100) == 10  # end of file: fewer bytes
    finally:
        os.close(fd)


async def test_an_evicted_region_is_loaded_in_a_worker_thread_then_sent_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """send_chunks of a FileRecords region that is not cached calls page_cache.load (in a
    worker thread, not the event loop's) once, then the region arrives byte for byte."""
    path = _evicted_file(tmp_path)
    threads: list[bool] = []
    real_load = page_cache.load

    def spy(fd: int, position: int, size: int) -> int:
        threads.append(trio.lowlevel.in_trio_run())  # False in a worker thread
        return real_load(fd, position, size)

    monkeypatch.setattr(page_cache, "load", spy)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    client = await trio.open_tcp_stream("127.0.0.1", listeners[0].socket.getsockname()[1])
    server = await listeners[0].accept()
    got = bytearray()
    with open(path, "rb") as f:
        if page_cache.is_resident(f.fileno(), 0, SIZE):
            pytest.skip("this file system keeps the pages after POSIX_FADV_DONTNEED")

        async def read_all() -> None:
            while len(got) < SIZE + 3:
                data = await client.receive_some(1 << 20)
                assert data
                got.extend(data)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            await send_chunks(server, [b"abc", FileRecords(f, 0, SIZE)])
    assert threads == [False]
    assert bytes(got) == b"abc" + path.read_bytes()
    for stream in (server, client, listeners[0]):
        await stream.aclose()
