"""A user-space TCP proxy for network faults where ``tc netem`` is not available.

``TcpProxy`` runs one trio event loop in a background thread and serves any number of
``Route``s: each listens on (listen_host, listen_port) and forwards every accepted
connection to (target_host, target_port), both directions. Per route, from any thread:

- ``set_delay(name, seconds)``: every chunk read from either side is written to the other
  side ``seconds`` later (order kept; a latency, not a bandwidth limit);
- ``sever(name)``: close every connection of the route now (both sides see the connection
  drop, as after a lost link; new connections are accepted again at once);
- ``set_refuse(name, on)``: while on, accepted connections are closed at once (a link that
  keeps failing).

The local chaos backend puts one route per (broker, ZooKeeper node) between the brokers and
the ensemble (each broker's ``zookeeper.connect`` names its own routes), so delay and
connection-drop faults hit one broker's ZooKeeper session only. Loopback only: routes must
listen on and connect to 127.0.0.0/8.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import attrs
import structlog
import trio

log = structlog.get_logger(__name__)


class ProxyError(Exception):
    """A route could not be set up (bad address, port taken) or the proxy is not running."""


@attrs.define
class Route:
    """One forwarded link; ``name`` is how faults address it. Counters: connections accepted,
    severed by a fault, bytes forwarded."""

    name: str
    listen_host: str
    listen_port: int
    target_host: str
    target_port: int
    delay_s: float = 0.0
    refuse: bool = False
    accepted: int = 0
    severed: int = 0
    forwarded_bytes: int = 0
    _scopes: set[trio.CancelScope] = attrs.Factory(set)

    def __attrs_post_init__(self) -> None:
        for host in (self.listen_host, self.target_host):
            if not host.startswith("127."):
                raise ProxyError(f"route {self.name}: {host} is not a loopback address")


class TcpProxy:
    """The proxy (module doc). ``start()`` binds every route (a route with listen_port 0 gets
    a free port, written back into it) and returns once they listen (ProxyError if one
    cannot bind); ``close()`` stops the loop and closes every connection."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = {r.name: r for r in routes}
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control (any thread)
    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-tcp-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ProxyError("the proxy did not start listening in time")
        if self._error is not None:
            raise ProxyError(f"the proxy could not listen: {self._error}") from self._error

    def close(self) -> None:
        if self._token is not None and self._stop is not None:
            try:
                self._token.run_sync_soon(self._stop.set)
            except trio.RunFinishedError:
                pass
        if self._thread is not None:
            self._thread.join(10.0)
        self._token = None

    def set_delay(self, name: str, seconds: float) -> None:
        """Delay every chunk of route ``name`` by ``seconds`` (0: none) from now on."""
        self.routes[name].delay_s = max(0.0, seconds)

    def set_refuse(self, name: str, on: bool) -> None:
        """While ``on``, close route ``name``'s new connections at once."""
        self.routes[name].refuse = on

    def sever(self, name: str) -> int:
        """Close every open connection of route ``name``; returns how many."""
        route = self.routes[name]
        scopes = list(route._scopes)
        self._call(lambda: [cs.cancel() for cs in scopes])
        route.severed += len(scopes)
        return len(scopes)

    def _call(self, fn: Callable[[], Any]) -> None:
        if self._token is None:
            raise ProxyError("the proxy is not running")
        self._token.run_sync_soon(fn)

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # a bind failure before ready, or a crash
            self._error = exc
            self._ready.set()
            log.warning("proxy_stopped", error=repr(exc))

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for route in self.routes.values():
                listeners = await trio.open_tcp_listeners(route.listen_port, host=route.listen_host)
                route.listen_port = listeners[0].socket.getsockname()[1]  # port 0: the one the OS chose
                nursery.start_soon(self._serve, route, listeners)
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    async def _serve(self, route: Route, listeners: list[trio.SocketListener]) -> None:
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept, route, listener)

    async def _accept(self, route: Route, listener: trio.SocketListener) -> None:
        async with listener, trio.open_nursery() as nursery:
            while True:
                stream = await listener.accept()
                route.accepted += 1
                if route.refuse:
                    await stream.aclose()
                    continue
                nursery.start_soon(self._connection, route, stream)

    async def _connection(self, route: Route, client: trio.SocketStream) -> None:
        with trio.CancelScope() as scope:
            route._scopes.add(scope)
            try:
                try:
                    server = await trio.open_tcp_stream(route.target_host, route.target_port)
                except OSError:
                    return
                async with server, trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, route, client, server, nursery.cancel_scope)
                    nursery.start_soon(self._pump, route, server, client, nursery.cancel_scope)
            except Exception as exc:  # anything one connection raises ends that connection only
                log.debug("proxy_connection_failed", route=route.name, error=repr(exc))
            finally:
                route._scopes.discard(scope)
                with trio.CancelScope(shield=True):
                    await client.aclose()

    async def _pump(self, route: Route, src: trio.SocketStream, dst: trio.SocketStream,
                    both: trio.CancelScope) -> None:
        """src -> dst, each chunk held until its read time + the route's delay then; either
        side closing (or an error) ends the whole connection."""
        send, recv = trio.open_memory_channel[tuple[float, bytes]](math.inf)

        async def deliver() -> None:
            async for at, data in recv:
                await trio.sleep_until(at)
                await dst.send_all(data)
                route.forwarded_bytes += len(data)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(deliver)
                async with send:
                    while True:
                        data = await src.receive_some(65536)
                        if not data:
                            break
                        send.send_nowait((trio.current_time() + route.delay_s, data))
        except Exception:  # noqa: S110 - a reset or closed socket on either side (grouped by the nursery)
            pass
        finally:
            both.cancel()
