"""The chaos TCP proxy (kafkalike/chaos/proxy.py) against a real echo server on loopback:
bytes pass both ways, unchanged and in order, with and without a delay; ``sever`` closes an
open connection; while refusing, new connections are closed at once; routes off loopback
are refused."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from kafkalike.chaos.proxy import ProxyError, Route, TcpProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return

            def echo(c: socket.socket = conn) -> None:
                with c:
                    while data := c.recv(4096):
                        c.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    stop.set()
    srv.close()


def _recv_exactly(c: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = c.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def test_bytes_pass_in_order_with_and_without_delay_and_sever_closes(echo_port: int) -> None:
    proxy = TcpProxy([Route("r", "127.0.0.1", 0, "127.0.0.1", echo_port)])
    proxy.start()
    try:
        route = proxy.routes["r"]
        assert route.listen_port > 0
        c = socket.create_connection(("127.0.0.1", route.listen_port), timeout=10)
        payload = bytes(range(256)) * 64
        c.sendall(payload)
        assert _recv_exactly(c, len(payload)) == payload
        proxy.set_delay("r", 0.2)
        for i in range(5):
            c.sendall(b"chunk%d" % i)
        assert _recv_exactly(c, 30) == b"".join(b"chunk%d" % i for i in range(5))
        proxy.set_delay("r", 0.0)
        assert proxy.sever("r") == 1
        assert c.recv(10) == b""  # the proxy closed it
        c.close()
        proxy.set_refuse("r", True)
        c2 = socket.create_connection(("127.0.0.1", route.listen_port), timeout=10)
        assert c2.recv(10) == b""
        c2.close()
        proxy.set_refuse("r", False)
        c3 = socket.create_connection(("127.0.0.1", route.listen_port), timeout=10)
        c3.sendall(b"again")
        assert _recv_exactly(c3, 5) == b"again"
        c3.close()
        assert route.severed == 1 and route.accepted == 3
    finally:
        proxy.close()


def test_a_route_off_loopback_is_refused() -> None:
    with pytest.raises(ProxyError, match="not a loopback address"):
        Route("r", "10.0.0.1", 0, "127.0.0.1", 2181)


def test_a_reset_connection_ends_only_itself(echo_port: int) -> None:
    """Regression (v2 campaign, seeds 6 and 10): a peer that reset its connection (a broker
    or ZooKeeper node killed -9) made the proxy's read or write raise inside a nursery; the
    exception group escaped the proxy's except clause and stopped the whole proxy, cutting
    every broker from ZooKeeper. Now the reset ends that connection and every route keeps
    serving."""
    import struct

    resetter = socket.socket()
    resetter.bind(("127.0.0.1", 0))
    resetter.listen()
    proxy = TcpProxy([Route("reset", "127.0.0.1", 0, "127.0.0.1", resetter.getsockname()[1]),
                      Route("echo", "127.0.0.1", 0, "127.0.0.1", echo_port)])
    proxy.start()
    try:
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", proxy.routes["reset"].listen_port), timeout=10)
            far, _ = resetter.accept()
            c.sendall(b"x" * 1000)
            assert _recv_exactly(far, 1000) == b"x" * 1000  # through the proxy ...
            far.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            far.close()  # ... then the far side resets (RST), as a killed process's socket does
            try:
                assert c.recv(10) == b""  # the proxy ended this connection: closed ...
            except ConnectionResetError:
                pass  # ... or reset
            c.close()
        e = socket.create_connection(("127.0.0.1", proxy.routes["echo"].listen_port), timeout=10)
        e.sendall(b"still here")
        assert _recv_exactly(e, 10) == b"still here"
        e.close()
    finally:
        proxy.close()
        resetter.close()
