"""SocketServer: the broker's trio TCP listeners (Kafka's kafka.network.SocketServer).

One trio task per connection. Frames are cut by the codec's FrameReader (int32 size prefix,
socket.request.max.bytes); each request is handed to the RequestHandler and its response
sent before the next request of that connection is handled, so responses leave in request
order (Kafka's per-connection ordering guarantee). A client may pipeline: frames that arrive
while a request is being served wait in the reader's buffer.

Responses are chunk lists (bytes / memoryview / protocol.fetch.FileRecords); FileRecords go
out with os.sendfile straight from the segment file to the socket, so fetched record bytes
are never copied through Python.

A frame the codec refuses (negative size, over socket.request.max.bytes) or a handler that
raises CloseConnection ends that connection with one log line; any other handler exception
is logged with its traceback and also closes only that connection — never the broker.
Connections idle longer than connections.max.idle.ms are closed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import structlog
import trio

from kafkalike.protocol.fetch import FileRecords
from kafkalike.protocol.frame import FrameReader
from kafkalike.protocol.errors import ProtocolError

log = structlog.get_logger(__name__)

RECEIVE_SIZE = 256 * 1024


class CloseConnection(Exception):
    """Raised by a handler to close the connection after logging ``str(exc)`` once."""


@attrs.define
class ConnectionContext:
    """What a handler knows of the connection a request came on: listener name, peer
    address (host, port), and a per-connection id for logs."""

    listener_name: str
    peer: tuple[str, int]
    connection_id: int


class RequestHandler(Protocol):
    """KafkaApis' face toward the socket server."""

    async def handle(self, frame: memoryview, conn: ConnectionContext) -> Sequence[Any] | None:
        """Serve one request frame (body without size prefix); return the response chunks,
        or None when no response is due (Produce with acks=0). May raise CloseConnection."""
        ...


@attrs.frozen
class BoundListener:
    """A listener after binding: name, host and the actual port (port 0 in the config picks one)."""

    listener_name: str
    host: str
    port: int


async def send_chunks(stream: trio.SocketStream, chunks: Sequence[Any]) -> None:
    """Write a response: bytes-like chunks with send_all, FileRecords with os.sendfile.

    Consecutive small bytes chunks are joined into one write. Raises trio.BrokenResourceError
    / trio.ClosedResourceError if the peer went away, OSError if a file can't be read.
    """
    pending: list[bytes | memoryview] = []

    async def flush() -> None:
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            await stream.send_all(data)

    for chunk in chunks:
        if isinstance(chunk, FileRecords):
            await flush()
            await _sendfile(stream, chunk)
        elif chunk is not None:
            pending.append(chunk)
    await flush()


async def _sendfile(stream: trio.SocketStream, region: FileRecords) -> None:
    fd = region.file if isinstance(region.file, int) else region.file.fileno()
    sock = stream.socket
    offset, remaining = region.position, region.size
    while remaining > 0:
        try:
            sent = os.sendfile(sock.fileno(), fd, offset, remaining)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                raise trio.BrokenResourceError(str(exc)) from exc
            raise
        if sent == 0:  # file shorter than promised (truncated under us): pad is not possible
            raise trio.BrokenResourceError(f"sendfile hit end of file at {offset}")
        offset += sent
        remaining -= sent
        await trio.lowlevel.checkpoint()


@attrs.define
class SocketServer:
    """Serves ``handler`` on each (listener_name, host, port) in ``listeners``.

    max_request_bytes: socket.request.max.bytes. idle_ms: connections.max.idle.ms.
    ``await nursery.start(server.serve)`` returns the list of BoundListener once every
    listener is bound; cancel the nursery to stop (open connections are closed).
    """

    listeners: Sequence[tuple[str, str, int]]
    handler: RequestHandler
    max_request_bytes: int = 104857600
    idle_ms: int = 600000
    bound: list[BoundListener] = attrs.Factory(list)
    _next_id: int = 0
    open_connections: int = 0

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bind every listener, report them through task_status, then serve until cancelled.

        Raises OSError (e.g. EADDRINUSE) if a listener can't be bound.
        """
        async with trio.open_nursery() as nursery:
            for name, host, port in self.listeners:
                tcp = await trio.open_tcp_listeners(port, host=host or None)
                actual = tcp[0].socket.getsockname()[1]
                self.bound.append(BoundListener(name, host, actual))
                log.info("listener_bound", listener=name, host=host or "0.0.0.0", port=actual)
                nursery.start_soon(trio.serve_listeners, self._make_handler(name), tcp)
            task_status.started(list(self.bound))

    def _make_handler(self, listener_name: str) -> Any:
        async def handler(stream: trio.SocketStream) -> None:
            self._next_id += 1
            try:
                peer = stream.socket.getpeername()[:2]
            except OSError:
                peer = ("?", 0)
            conn = ConnectionContext(listener_name, peer, self._next_id)
            self.open_connections += 1
            try:
                await self._serve_connection(stream, conn)
            finally:
                self.open_connections -= 1
                await trio.aclose_forcefully(stream)
        return handler

    async def _serve_connection(self, stream: trio.SocketStream, conn: ConnectionContext) -> None:
        reader = FrameReader(self.max_request_bytes)
        idle_s = self.idle_ms / 1000.0
        try:
            while True:
                frame = reader.next_frame()
                if frame is None:
                    with trio.move_on_after(idle_s) as idle:
                        data = await stream.receive_some(RECEIVE_SIZE)
                    if idle.cancelled_caught:
                        log.info("connection_idle_closed", peer=conn.peer, idle_ms=self.idle_ms)
                        return
                    if not data:
                        return
                    reader.feed(data)
                    continue
                response = await self.handler.handle(frame, conn)
                if response is not None:
                    await send_chunks(stream, response)
        except ProtocolError as exc:
            log.warning("connection_closed_bad_frame", peer=conn.peer, error=str(exc))
        except CloseConnection as exc:
            log.warning("connection_closed", peer=conn.peer, reason=str(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("request_handler_failed", peer=conn.peer)
