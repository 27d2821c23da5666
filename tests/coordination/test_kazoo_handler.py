"""The kazoo handler ZooKeeperClient gives kazoo: ``poll_select`` keeps ``select.select``'s
contract for kazoo's connection thread with one poll(2) per wait, and against a real server
kazoo's own per-call epoll selector is never built (docs/benchmarks.md "kazoo against
ZooKeeper's Java client")."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from kazoo.handlers import threading as kazoo_threading

from kafkalike.coordination import zookeeper_client as zkc
from kafkalike.coordination.zookeeper_client import ZooKeeperClient, poll_select


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_poll_select_reports_readable_only_once_data_waits(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    assert poll_select([a, b], [], [], 0) == ([], [], [])
    b.send(b"x")
    assert poll_select([a, b], [], [], 0) == ([a], [], [])
    assert poll_select([a.fileno()], [], [], 0) == ([a.fileno()], [], [])


def test_poll_select_reports_writable_and_keeps_the_lists_apart(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.send(b"x")
    readable, writable, exceptional = poll_select([a], [b], [a, b], 1.0)
    assert (readable, writable, exceptional) == ([a], [b], [])


def test_poll_select_counts_a_hang_up_as_readable(pair: tuple[socket.socket, socket.socket]) -> None:
    """The peer closing makes the socket readable, so kazoo's next recv sees b"" (connection dropped)."""
    a, b = pair
    b.close()
    assert poll_select([a], [], [], 1.0)[0] == [a]
    assert a.recv(1) == b""


def test_poll_select_waits_for_the_timeout_and_refuses_a_closed_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _b = pair
    assert poll_select([a], [], [], 0.01) == ([], [], [])
    a.close()
    with pytest.raises(ValueError):
        poll_select([a], [], [], 0)


def test_poll_select_sees_descriptors_past_1024() -> None:
    """select.select cannot take an fd >= 1024; a broker with thousands of logs open has such fds."""
    a, b = socket.socketpair()
    try:
        high = socket.socket(fileno=os.dup2(a.fileno(), 1500))
    except OSError:
        a.close()
        b.close()
        pytest.skip("cannot open fd 1500 here (RLIMIT_NOFILE)")
    try:
        b.send(b"x")
        assert poll_select([high], [], [], 1.0)[0] == [high]
    finally:
        high.close()
        a.close()
        b.close()


async def test_kazoo_waits_with_one_poll_per_wait_and_never_builds_a_selector(
        zk_chroot_connect: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait of kazoo's connection thread during 200 pipelined reads goes through
    poll_select; kazoo's selector_select (a new epoll selector per call) is not called."""
    calls = {"poll": 0, "selector": 0}
    real_poll, real_selector = zkc.poll_select, kazoo_threading.selector_select

    def counting_poll(*a: Any, **kw: Any) -> Any:
        calls["poll"] += 1
        return real_poll(*a, **kw)

    def counting_selector(*a: Any, **kw: Any) -> Any:
        calls["selector"] += 1
        return real_selector(*a, **kw)

    monkeypatch.setattr(zkc, "poll_select", counting_poll)
    monkeypatch.setattr(kazoo_threading, "selector_select", counting_selector)
    async with ZooKeeperClient(zk_chroot_connect, name="handler-test") as zk:
        await zk.ensure_paths([f"/h/{i}" for i in range(200)])
        before = calls["poll"]
        got = await zk.get_many([f"/h/{i}" for i in range(200)])
        assert all(g is not None for g in got)
        assert calls["poll"] - before >= 200  # at least the wait for each answer
    assert calls["selector"] == 0
