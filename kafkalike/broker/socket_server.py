"""SocketServer: the broker's trio TCP listeners (Kafka's kafka.network.SocketServer).

One trio task per connection. Frames are cut by the codec's FrameReader (int32 size prefix,
socket.request.max.bytes); each request is handed to the RequestHandler and its response
sent before the next request of that connection is handled, so responses leave in request
order (Kafka's per-connection ordering guarantee). A client may pipeline: frames that arrive
while a request is being served wait in the reader's buffer. One exception, kafkalike's own
(``pipeline_produce``, kafkalike.produce.pipelining; docs/design.md decision 13): an acks=all
Produce runs in its own task, and once it has appended and only waits for the followers
(broker/request_pipelining.py) the connection reads and serves its next request; each such
task writes its response once the previous one has written its own (request order), and any
other request first waits until they are written.

Responses are chunk lists (bytes / memoryview / protocol.fetch.FileRecords); FileRecords go
out with os.sendfile straight from the segment file to the socket, so fetched record bytes
are never copied through Python. A response with at most CORK_MAX_RECORD_BYTES of records is
written under TCP_CORK, so its header, records and trailer leave as one TCP segment.

SSL listeners (an ssl.SSLContext for the listener name, from broker/ssl_factory.py) wrap
the accepted socket in a ServerTlsStream (ssl.SSLObject over memory BIOs, decrypting every
TLS record a socket read brought in one receive_some); the handshake is bounded by
connections.max.idle.ms.
A failed handshake (a PLAINTEXT client, an untrusted or missing client certificate) closes
the connection with one ``ssl_handshake_failed`` line (rate-limited per listener: at most one
per LIMIT_LOG_INTERVAL_S, with a count), as Kafka's Selector
closes a channel whose SslTransportLayer.handshake fails. Over TLS the kernel can't encrypt,
so FileRecords are read from the segment in SSL_FILE_CHUNK pieces (os.pread) and sent through
the SSL stream, as Kafka's SslTransportLayer.transferFrom does; PLAINTEXT keeps sendfile.
A TLS client on a PLAINTEXT listener: its ClientHello (0x16 0x03 ...) reads as a frame size
over socket.request.max.bytes, so the frame check closes it.

SASL listeners (SASL_PLAINTEXT, SASL_SSL after the TLS handshake) get an Authenticator per
connection from ``authenticators`` (broker/sasl_server_authenticator.py): every frame goes to it
until it reports ``complete`` (then to the handler, with ConnectionContext.principal set); a
step that says ``close`` ends the connection once its response is sent and
connection.failed.authentication.delay.ms has passed. Nothing reaches the
request handler before authentication but what the authenticator passes on (ApiVersions).

A frame the codec refuses (negative size, over socket.request.max.bytes) or a handler that
raises CloseConnection ends that connection with one log line; any other handler exception
is logged with its traceback and also closes only that connection — never the broker.
Connections idle longer than connections.max.idle.ms are closed.

Limits (Kafka's SocketServer / ConnectionQuotas / SimpleMemoryPool; docs/broker.md):

- Memory: request bytes being received or waiting to be handled come from one MemoryPool of
  ``queued.max.request.bytes``; a frame's buffer grows as its bytes arrive (never at the
  declared size up front). When the pool is exhausted a connection stops reading (Kafka
  mutes the channel) until a handled request gives its bytes back.
- Connections: ``max.connections`` (broker-wide; the accept loop waits for a free slot, as
  Kafka's Acceptor blocks) and ``max.connections.per.ip`` / ``max.connections.per.ip.overrides``
  (a connection over its address's limit is closed at once). The inter-broker listener is
  exempt from the broker-wide wait when there are several listeners; going over the limit
  that way closes the least recently active connection of another listener (Kafka's
  protected listener). Whatever the configuration, the total is also kept below the
  process's open-files limit (RLIMIT_NOFILE, raised from soft to hard at start-up as the
  JVM does) minus the descriptors the broker holds besides its connections minus a reserve,
  so segment rolls, checkpoints and log maintenance keep working; near the limit the bound is
  recomputed (past half of it, at most once a second) as the broker's own files come and go.
- accept() failing with EMFILE / ENFILE / ENOBUFS / ENOMEM (descriptors used elsewhere)
  backs off 50 ms doubling to 1 s and logs once per 10 s with a count, instead of a log
  line every 100 ms (trio.serve_listeners); the pending connections wait in the backlog.
"""

from __future__ import annotations

import errno
import os
import resource
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import structlog
import trio

from kafkalike.broker import request_hops, request_pipelining
from kafkalike.broker.ssl_factory import NoMatchingRule, SslPrincipalMapper, principal_from_peer_certificate
from kafkalike.protocol.fetch import FileRecords
from kafkalike.protocol.frame import FrameReader, MemoryPool
from kafkalike.protocol.errors import ProtocolError
from kafkalike.protocol.produce import peek_required_acks

log = structlog.get_logger(__name__)

RECEIVE_SIZE = 256 * 1024

INT_MAX = 2**31 - 1

DEFAULT_QUEUED_MAX_REQUEST_BYTES = 512 * 1024 * 1024
"""kafkalike's default for queued.max.request.bytes (bytes); Kafka's is -1 (unbounded)."""

FD_RESERVE_MIN = 64
"""Descriptors kept free for the broker's own files beyond those open at start-up (at least
this many, or an eighth of the limit if larger)."""

ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_BACKOFF_MIN_S = 0.05
ACCEPT_BACKOFF_MAX_S = 1.0
LIMIT_LOG_INTERVAL_S = 10.0

SSL_FILE_CHUNK = 256 * 1024
"""Bytes of a FileRecords region read per os.pread when it goes out over TLS."""
CORK_MAX_RECORD_BYTES = 4096
"""Responses with at most this many bytes of records are written corked, in one segment
(``_send_chunks_to_socket``)."""
MAX_PIPELINED_REQUESTS = 16
"""Pipelined acks=all Produce requests of one connection waiting for their followers at most;
the next frame is read only once the oldest one's response is written (a producer keeps at
most max.in.flight.requests.per.connection = 5 in flight; this bounds a misbehaving one)."""


class CloseConnection(Exception):
    """Raised by a handler to close the connection after logging ``str(exc)`` once."""


@attrs.define
class ConnectionContext:
    """What a handler knows of the connection a request came on: listener name, peer
    address (host, port), a per-connection id for logs, and the authenticated principal
    (``User:<name>`` after SASL, Kafka's KafkaPrincipal; ``User:ANONYMOUS`` otherwise)."""

    listener_name: str
    peer: tuple[str, int]
    connection_id: int
    principal: str = "User:ANONYMOUS"
    received_ns: int = 0
    """perf_counter_ns of the socket read that completed the frame being served."""
    written_ns: int = 0
    """perf_counter_ns at which the previous response on this connection was written."""

    def response_written(self) -> None:
        """A response's last byte went to the kernel: stamp ``written_ns``, end its hop timing."""
        self.written_ns = time.perf_counter_ns()
        request_hops.finish(self.written_ns)


class Authenticator(Protocol):
    """The authentication exchange of one connection (broker/sasl_server_authenticator.py):
    every frame goes to ``authenticate`` until ``complete``."""

    @property
    def complete(self) -> bool:
        ...

    async def authenticate(self, frame: memoryview) -> Any:
        """Returns an object with ``response`` (chunks or None) and ``close`` (a reason to
        close the connection after sending the response, or None)."""
        ...


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


def parse_per_ip_overrides(text: str | None) -> dict[str, int]:
    """Parse ``max.connections.per.ip.overrides``: ``host:count[,host:count...]`` (host a name
    or an IP; IPv6 keeps its colons, the count is after the last one). Raises ValueError with
    a one-line reason, as Kafka's ``KafkaConfig.getMap`` refuses a malformed map."""
    out: dict[str, int] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, count = item.rpartition(":")
        host = host.strip().strip("[]")
        try:
            value = int(count)
        except ValueError:
            value = -1
        if not sep or not host or value < 0:
            raise ValueError(f"invalid value {text!r} for configuration "
                             "'max.connections.per.ip.overrides': expected host:count pairs "
                             "separated by commas, counts >= 0")
        out[host] = value
    return out


def check_connection_config(max_connections_per_ip: int, overrides: Mapping[str, int],
                            queued_max_request_bytes: int, socket_request_max_bytes: int) -> None:
    """Kafka's KafkaConfig.validateValues checks of these keys; raises ValueError (one line).

    max.connections.per.ip may be 0 only with overrides; queued.max.request.bytes, when
    bounded (> 0), must be >= socket.request.max.bytes.
    """
    if max_connections_per_ip == 0 and not overrides:
        raise ValueError("max.connections.per.ip can be set to zero only if "
                         "max.connections.per.ip.overrides is set")
    if 0 < queued_max_request_bytes < socket_request_max_bytes:
        raise ValueError("queued.max.request.bytes must be larger or equal to "
                         "socket.request.max.bytes")


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit, as the JVM does at start-up on
    Linux (HotSpot's MaxFDLimit, on by default); returns (soft, hard) afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft, hard


def open_descriptors() -> int:
    """Descriptors this process has open now (0 if /proc is unavailable)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def descriptor_connection_limit(soft_limit: int, open_now: int) -> int:
    """Connections that fit below ``soft_limit`` descriptors when ``open_now`` are in use:
    the limit minus those minus a reserve of max(FD_RESERVE_MIN, limit // 8) for files the
    broker opens later (new segments and indexes, checkpoints); at least 1."""
    if soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        return INT_MAX
    reserve = max(FD_RESERVE_MIN, soft_limit // 8)
    return max(1, min(INT_MAX, soft_limit - open_now - reserve))


async def send_chunks(stream: trio.abc.Stream, chunks: Sequence[Any],
                      written: Callable[[], None] | None = None) -> None:
    """Write a response: bytes-like chunks and FileRecords (os.sendfile from the segment
    file); over a stream that isn't a plain socket (TLS) FileRecords are read in
    SSL_FILE_CHUNK pieces and sent through the stream. ``written`` is called once the last
    byte was handed to the kernel (before the final checkpoint: the hop timing's mark).

    On a plain trio.SocketStream every chunk goes out with non-blocking system calls made
    directly on the socket (bytes with os.writev, FileRecords with os.sendfile), waiting only
    while the socket's send buffer is full, then one checkpoint: a response costs one trip
    through trio's scheduler, not one per chunk (trio's send_all yields after each send, so
    a Fetch response of n partitions with records took 2n + 1 trips; on a loaded machine
    each trip is where other tasks run first; docs/benchmarks.md "Hop timing").

    Raises trio.BrokenResourceError / trio.ClosedResourceError if the peer went away or the
    stream was closed, OSError if a file can't be read.
    """
    if isinstance(stream, trio.SocketStream):
        await _send_chunks_to_socket(stream.socket, chunks)
        if written is not None:
            written()
        await trio.lowlevel.checkpoint()
        return
    pending: list[bytes | memoryview] = []

    async def flush() -> None:
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            await stream.send_all(data)

    for chunk in chunks:
        if isinstance(chunk, FileRecords):
            await flush()
            await _send_file_region(stream, chunk)
        elif chunk is not None:
            pending.append(chunk)
    await flush()
    if written is not None:
        written()


async def receive_some(stream: trio.abc.Stream) -> bytes:
    """Up to RECEIVE_SIZE bytes of a request stream; b"" at end of stream.

    On a plain trio.SocketStream the bytes already in the socket are read at once with a
    direct non-blocking read, and the task waits (wait_readable) only when there are none:
    trio's receive_some yields to the scheduler after every successful read, so a request
    whose bytes had arrived was served one scheduler trip late (every other runnable task
    first). The connection loop still yields at least once per request (send_chunks'
    checkpoint, or an explicit one when no response is due). Raises
    trio.BrokenResourceError if the peer reset the connection, trio.ClosedResourceError if
    the stream was closed here.
    """
    if not isinstance(stream, trio.SocketStream):
        return await stream.receive_some(RECEIVE_SIZE)
    sock = stream.socket
    while True:
        try:
            return os.read(sock.fileno(), RECEIVE_SIZE)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
        except OSError as exc:
            raise _socket_error(exc) from exc


IOV_MAX = 1024
"""Buffers per os.writev call (Linux's UIO_MAXIOV)."""


def _socket_error(exc: OSError) -> Exception:
    """The trio stream error for a failed send on a socket (closed here, or by the peer)."""
    if exc.errno == errno.EBADF:
        return trio.ClosedResourceError(str(exc))
    if exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ETIMEDOUT):
        return trio.BrokenResourceError(str(exc))
    return exc


async def _send_chunks_to_socket(sock: Any, chunks: Sequence[Any]) -> None:
    """The chunks with writev / sendfile. A response holding at most CORK_MAX_RECORD_BYTES of
    records (FileRecords chunks) is written corked (TCP_CORK around the whole response, as
    nginx's tcp_nopush around sendfile): its header, records and trailing bytes leave as one
    TCP segment. Without it every system call sends its own segment (trio sets TCP_NODELAY):
    a one-partition Fetch answer of one record went out as three, and the receiver's kernel and
    event loop handled each. Larger responses are not corked: measured under
    ProducerPerformance at client defaults, corking the followers' 16-80 KiB answers cut the
    rate from 112k to 66k records/s (docs/benchmarks.md, "Cold paths"). Uncorking sends what
    is left at once."""
    record_bytes = 0
    for chunk in chunks:
        if isinstance(chunk, FileRecords):
            record_bytes += chunk.size
    corked = 0 < record_bytes <= CORK_MAX_RECORD_BYTES and _set_cork(sock, True)
    pending: list[memoryview] = []
    try:
        for chunk in chunks:
            if isinstance(chunk, FileRecords):
                if pending:
                    await _writev_all(sock, pending)
                    pending = []
                await _sendfile(sock, chunk)
            elif chunk is not None and len(chunk):
                pending.append(memoryview(chunk).cast("B"))
        if pending:
            await _writev_all(sock, pending)
    finally:
        if corked:
            _set_cork(sock, False)


def _set_cork(sock: Any, on: bool) -> bool:
    """Set or clear TCP_CORK on ``sock``; False (nothing set) where the socket refuses it (not
    TCP, or already closed)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1 if on else 0)
    except OSError:
        return False
    return True


async def _writev_all(sock: Any, views: list[memoryview]) -> None:
    """Write every byte of ``views`` to the non-blocking trio socket ``sock``."""
    i = 0
    while i < len(views):
        try:
            sent = os.writev(sock.fileno(), views[i:i + IOV_MAX])
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        except OSError as exc:
            raise _socket_error(exc) from exc
        while sent and i < len(views):
            n = views[i].nbytes
            if sent >= n:
                sent -= n
                i += 1
            else:
                views[i] = views[i][sent:]
                sent = 0
        while i < len(views) and not views[i].nbytes:
            i += 1


async def _send_file_region(stream: trio.abc.Stream, region: FileRecords) -> None:
    """FileRecords over a stream that isn't a plain socket (TLS): pread + send_all."""
    fd = region.file if isinstance(region.file, int) else region.file.fileno()
    offset, remaining = region.position, region.size
    while remaining > 0:
        data = os.pread(fd, min(remaining, SSL_FILE_CHUNK), offset)
        if not data:  # file shorter than promised (truncated under us)
            raise trio.BrokenResourceError(f"read hit end of file at {offset}")
        await stream.send_all(data)
        offset += len(data)
        remaining -= len(data)


async def _sendfile(sock: Any, region: FileRecords) -> None:
    """os.sendfile of ``region`` to the non-blocking trio socket ``sock``; yields when the
    socket's send buffer is full (and after a partial send), not after a complete one."""
    fd = region.file if isinstance(region.file, int) else region.file.fileno()
    offset, remaining = region.position, region.size
    while remaining > 0:
        try:
            sent = os.sendfile(sock.fileno(), fd, offset, remaining)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        except OSError as exc:
            raise _socket_error(exc) from exc
        if sent == 0:  # file shorter than promised (truncated under us): pad is not possible
            raise trio.BrokenResourceError(f"sendfile hit end of file at {offset}")
        offset += sent
        remaining -= sent
        if remaining > 0:
            await trio.lowlevel.checkpoint()


class ServerTlsStream(trio.abc.Stream):
    """The server side of TLS over a trio.SocketStream, for SocketServer's connections.

    Unlike trio.SSLStream, whose receive_some returns one TLS record per call (librdkafka's
    produce requests arrive as TLS records of ~500 bytes), receive_some here decrypts every record
    the socket read brought (up to ``max_bytes``) in one call, so a produce request costs a
    few reads, not one trip through the event loop per record. Not safe for concurrent
    send/receive (SocketServer reads a request, then writes its response). A failed
    handshake or a corrupt record raise trio.BrokenResourceError (from the ssl.SSLError).
    """

    def __init__(self, transport: trio.SocketStream, context: ssl.SSLContext) -> None:
        self.transport = transport
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._buffer = bytearray(RECEIVE_SIZE)
        self._eof = False

    def peer_certificate(self) -> bytes | None:
        """The client's certificate (DER bytes) after the handshake; None when it sent none."""
        return self._tls.getpeercert(binary_form=True)

    async def _flush(self) -> None:
        if self._outgoing.pending:
            await self.transport.send_all(self._outgoing.read())

    async def _fill(self) -> bool:
        """Feed one socket read to the TLS object; False at end of stream."""
        data = await self.transport.receive_some(RECEIVE_SIZE)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def do_handshake(self) -> None:
        """Run the server handshake; trio.BrokenResourceError when it fails."""
        while True:
            try:
                self._tls.do_handshake()
                await self._flush()
                return
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    raise trio.BrokenResourceError("peer closed the connection during the TLS handshake")
            except ssl.SSLError as exc:
                with trio.move_on_after(1):  # the alert, best effort
                    try:
                        await self._flush()
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                raise trio.BrokenResourceError(str(exc)) from exc

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Plaintext bytes (at most max_bytes, default RECEIVE_SIZE); b"" at end of stream."""
        size = min(max_bytes or RECEIVE_SIZE, RECEIVE_SIZE)
        view = memoryview(self._buffer)
        while True:
            got = 0
            try:
                while got < size:
                    n: int = self._tls.read(size - got, view[got:size])  # type: ignore[assignment]  # an int with a buffer
                    if n == 0:
                        self._eof = True
                        break
                    got += n
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                self._eof = True
            except ssl.SSLError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            await self._flush()  # post-handshake messages (session tickets, key updates)
            if got or self._eof:
                return bytes(view[:got])
            if not await self._fill():
                self._eof = True

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send all of data."""
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        pos = 0
        try:
            while pos < len(view):
                pos += self._tls.write(view[pos:pos + RECEIVE_SIZE])
                if self._outgoing.pending >= RECEIVE_SIZE:
                    await self._flush()
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.transport.aclose()


@attrs.define(eq=False)
class _Connection:
    """Book-keeping of one open connection: for counts, and to close the least recently
    active one when a protected listener goes over the limit."""

    context: ConnectionContext
    ip: str
    scope: trio.CancelScope
    last_active: float


def _log_connection_end(exc: Exception, peer: tuple[str, int]) -> None:
    """The one log line of a connection ended by ``exc`` (call it in the ``except`` block):
    a refused frame, a handler's CloseConnection, the peer gone (nothing), or a handler's
    unexpected error (with its traceback)."""
    if isinstance(exc, ProtocolError):
        log.warning("connection_closed_bad_frame", peer=peer, error=str(exc))
    elif isinstance(exc, CloseConnection):
        log.warning("connection_closed", peer=peer, reason=str(exc))
    elif not isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError)):
        log.exception("request_handler_failed", peer=peer)


@attrs.define(eq=False)
class _PipelinedRequest:
    """One acks=all Produce served in its own task: ``ready`` once its local work is done
    (request_pipelining.local_work_done) or it finished (``failed`` if it raised); ``written``
    once its response was written (or it had none), which the next pipelined request waits for."""

    ready: trio.Event = attrs.Factory(trio.Event)
    written: trio.Event = attrs.Factory(trio.Event)
    failed: bool = False


@attrs.define(eq=False)
class _Pipeline:
    """A connection's pipelined requests: how many are not yet answered, and the newest (each
    writes its response once the one before it has written its own)."""

    nursery: trio.Nursery
    pending: int = 0
    last: _PipelinedRequest | None = None
    changed: trio.Event = attrs.Factory(trio.Event)
    """Set (and replaced) whenever a pipelined response was written."""

    def written(self) -> None:
        self.pending -= 1
        self.changed.set()
        self.changed = trio.Event()


@attrs.define(eq=False)
class _RateLimitedLog:
    """Logs an event at most once per LIMIT_LOG_INTERVAL_S, with how often it happened."""

    event: str
    last: float = -1e18
    suppressed: int = 0

    def __call__(self, **kw: Any) -> None:
        now = trio.current_time()
        if now - self.last >= LIMIT_LOG_INTERVAL_S:
            log.warning(self.event, times=self.suppressed + 1, **kw)
            self.last = now
            self.suppressed = 0
        else:
            self.suppressed += 1


@attrs.define
class SocketServer:
    """Serves ``handler`` on each (listener_name, host, port) in ``listeners``.

    max_request_bytes: socket.request.max.bytes. idle_ms: connections.max.idle.ms.
    queued_max_request_bytes: queued.max.request.bytes (<= 0: unbounded). max_connections:
    max.connections; max_connections_per_ip / per_ip_overrides (host or IP -> count):
    max.connections.per.ip(.overrides). inter_broker_listener: the listener exempt from the
    max.connections wait when there are several. ssl_contexts: listener name -> server
    SSLContext for the SSL listeners. authenticators: listener name -> a factory making each
    new connection's Authenticator (SASL listeners). ``await nursery.start(server.serve)``
    returns the list of BoundListener once every listener is bound; cancel the nursery to
    stop (open connections are closed).
    """

    listeners: Sequence[tuple[str, str, int]]
    handler: RequestHandler
    max_request_bytes: int = 104857600
    idle_ms: int = 600000
    queued_max_request_bytes: int = DEFAULT_QUEUED_MAX_REQUEST_BYTES
    max_connections: int = INT_MAX
    max_connections_per_ip: int = INT_MAX
    per_ip_overrides: Mapping[str, int] = attrs.Factory(dict)
    inter_broker_listener: str | None = None
    ssl_contexts: Mapping[str, ssl.SSLContext] = attrs.Factory(dict)
    """listener name -> server SSLContext, for the listeners that serve TLS."""
    principal_mappers: Mapping[str, SslPrincipalMapper] = attrs.Factory(dict)
    """listener name -> its ssl.principal.mapping.rules (absent: DEFAULT, the subject DN)."""
    authenticators: Mapping[str, Callable[[ConnectionContext], Authenticator]] = attrs.Factory(dict)
    """listener name -> Authenticator factory, for the SASL listeners."""
    pipeline_produce: bool = False
    """kafkalike.produce.pipelining: read and serve a connection's next request while an acks=all
    Produce waits for its followers (request_pipelining); responses still leave in order."""
    failed_authentication_delay_ms: int = 0
    """connection.failed.authentication.delay.ms: how long a connection whose authentication
    failed stays open (not read) after its error response, as Kafka delays the close to slow
    down password guessing."""
    bound: list[BoundListener] = attrs.Factory(list)
    _next_id: int = 0
    open_connections: int = 0
    connection_limit: int = INT_MAX
    """min(max.connections, the descriptor bound), set when serve() starts."""
    pool: MemoryPool = attrs.field(init=False)
    _per_ip: dict[str, int] = attrs.Factory(dict)
    _ip_limits: dict[str, int] = attrs.Factory(dict)
    _connections: dict[int, _Connection] = attrs.Factory(dict)
    _bound_checked_at: float = -1e18
    _slot_freed: trio.Event = attrs.Factory(trio.Event)
    _memory_freed: trio.Event = attrs.Factory(trio.Event)
    _log_accept_failed: _RateLimitedLog = attrs.Factory(lambda: _RateLimitedLog("accept_failed"))
    _log_slots_full: _RateLimitedLog = attrs.Factory(lambda: _RateLimitedLog("connections_at_limit"))
    _log_per_ip: _RateLimitedLog = attrs.Factory(lambda: _RateLimitedLog("connection_refused_per_ip"))
    _log_muted: _RateLimitedLog = attrs.Factory(lambda: _RateLimitedLog("connection_muted_memory"))
    _log_handshake: dict[str, _RateLimitedLog] = attrs.Factory(dict)
    """listener name -> its rate-limited ssl_handshake_failed log."""

    def __attrs_post_init__(self) -> None:
        self.pool = MemoryPool(self.queued_max_request_bytes)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bind every listener, report them through task_status, then serve until cancelled.

        Raises OSError (e.g. EADDRINUSE) if a listener can't be bound.
        """
        await self._resolve_ip_overrides()
        async with trio.open_nursery() as nursery:
            bound_tcp = []
            for name, host, port in self.listeners:
                tcp = await trio.open_tcp_listeners(port, host=host or None)
                actual = tcp[0].socket.getsockname()[1]
                self.bound.append(BoundListener(name, host, actual))
                log.info("listener_bound", listener=name, host=host or "0.0.0.0", port=actual)
                bound_tcp.append((name, tcp))
            soft, hard = raise_descriptor_limit()
            fd_bound = descriptor_connection_limit(soft, open_descriptors())
            self.connection_limit = min(self.max_connections, fd_bound)
            log.info("connection_limits", max_connections=self.max_connections,
                     descriptor_limit=soft, descriptor_bound=fd_bound,
                     connection_limit=self.connection_limit,
                     max_connections_per_ip=self.max_connections_per_ip,
                     queued_max_request_bytes=self.queued_max_request_bytes)
            protected = (self.inter_broker_listener
                         if len(bound_tcp) > 1 and self.inter_broker_listener is not None else None)
            for name, tcp in bound_tcp:
                for listener in tcp:
                    nursery.start_soon(self._accept_loop, name, listener, name == protected, nursery)
            task_status.started(list(self.bound))

    async def _resolve_ip_overrides(self) -> None:
        """max.connections.per.ip.overrides by IP: names are resolved once (Kafka's
        InetAddress.getByName); a name that does not resolve is kept as given."""
        for host, count in self.per_ip_overrides.items():
            try:
                infos = await trio.socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError:
                infos = []
            addresses = {info[4][0] for info in infos} or {host}
            for address in addresses:
                self._ip_limits[address] = count

    # -- accepting
    async def _accept_loop(self, listener_name: str, listener: trio.SocketListener, protected: bool,
                           nursery: trio.Nursery) -> None:
        backoff = ACCEPT_BACKOFF_MIN_S
        async with listener:
            while True:
                if not protected:
                    await self._wait_connection_slot(listener_name)
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                        raise
                    self._log_accept_failed(listener=listener_name, errno=errno.errorcode[exc.errno],
                                            error=os.strerror(exc.errno), open_connections=self.open_connections,
                                            retry_in_ms=int(backoff * 1000))
                    await trio.sleep(backoff)
                    backoff = min(ACCEPT_BACKOFF_MAX_S, backoff * 2)
                    continue
                backoff = ACCEPT_BACKOFF_MIN_S
                self._admit(listener_name, stream, nursery)

    async def _wait_connection_slot(self, listener_name: str) -> None:
        """Kafka's ConnectionQuotas.waitForConnectionSlot: block this acceptor while the broker
        holds connection_limit connections (re-checked at least every second, since the
        descriptor bound moves with the broker's own files)."""
        self._refresh_descriptor_bound()
        while self.open_connections >= self.connection_limit:
            self._log_slots_full(listener=listener_name, open_connections=self.open_connections,
                                 connection_limit=self.connection_limit)
            with trio.move_on_after(1.0):
                await self._slot_freed.wait()
            self._refresh_descriptor_bound()

    def _refresh_descriptor_bound(self) -> None:
        """Past half the limit, at most once a second: recompute the descriptor bound from the
        current RLIMIT_NOFILE and the descriptors the broker holds besides its connections
        (segments of partitions created since start-up count against it)."""
        if self.open_connections * 2 < self.connection_limit:
            return
        now = trio.current_time()
        if now - self._bound_checked_at < 1.0:
            return
        self._bound_checked_at = now
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        own = max(0, open_descriptors() - self.open_connections)
        limit = min(self.max_connections, descriptor_connection_limit(soft, own))
        if limit != self.connection_limit:
            log.info("connection_limit_changed", connection_limit=limit, descriptor_limit=soft,
                     own_descriptors=own, open_connections=self.open_connections)
            self.connection_limit = limit

    def _admit(self, listener_name: str, stream: trio.SocketStream, nursery: trio.Nursery) -> None:
        try:
            peer = stream.socket.getpeername()[:2]
        except OSError:
            peer = ("?", 0)
        ip = peer[0]
        limit = self._ip_limits.get(ip, self.max_connections_per_ip)
        if self._per_ip.get(ip, 0) >= limit:  # Kafka: TooManyConnectionsException, closed at once
            self._log_per_ip(listener=listener_name, ip=ip, limit=limit)
            stream.socket.close()
            return
        self._next_id += 1
        conn = _Connection(ConnectionContext(listener_name, peer, self._next_id), ip, trio.CancelScope(),
                           trio.current_time())
        self._connections[conn.context.connection_id] = conn
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        self.open_connections += 1
        if self.open_connections > self.connection_limit:  # a protected listener went over
            self._close_least_recently_active(listener_name)
        nursery.start_soon(self._run_connection, stream, conn)

    def _close_least_recently_active(self, protected_listener: str) -> None:
        """Kafka's Processor.closeExcessConnections: close the least recently active
        connection of another listener."""
        others = [c for c in self._connections.values()
                  if c.context.listener_name != protected_listener and not c.scope.cancel_called]
        if others:
            victim = min(others, key=lambda c: c.last_active)
            log.info("connection_closed_over_limit", peer=victim.context.peer,
                     listener=victim.context.listener_name, connection_limit=self.connection_limit)
            victim.scope.cancel()

    async def _run_connection(self, stream: trio.SocketStream, conn: _Connection) -> None:
        try:
            with conn.scope:
                ctx = self.ssl_contexts.get(conn.context.listener_name)
                if ctx is None:
                    await self._serve_connection(stream, conn)
                else:
                    tls = await self._tls_handshake(stream, ctx, conn.context)
                    if tls is not None:
                        await self._serve_connection(tls, conn)
        finally:
            del self._connections[conn.context.connection_id]
            left = self._per_ip[conn.ip] - 1
            if left:
                self._per_ip[conn.ip] = left
            else:
                del self._per_ip[conn.ip]
            self.open_connections -= 1
            self._slot_freed.set()
            self._slot_freed = trio.Event()
            await trio.aclose_forcefully(stream)

    async def _tls_handshake(self, stream: trio.SocketStream, ctx: ssl.SSLContext,
                             conn: ConnectionContext) -> "ServerTlsStream | None":
        """The server side of the TLS handshake, bounded by connections.max.idle.ms; None (after
        one rate-limited log line) when it fails or times out."""
        tls = ServerTlsStream(stream, ctx)
        error: str | None = None
        with trio.move_on_after(self.idle_ms / 1000.0) as timeout:
            try:
                await tls.do_handshake()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                cause = exc.__cause__
                error = str(cause) if cause is not None else (str(exc) or "connection closed")
        if timeout.cancelled_caught:
            error = f"no handshake within connections.max.idle.ms ({self.idle_ms} ms)"
        if error is not None:
            limited = self._log_handshake.get(conn.listener_name)
            if limited is None:
                limited = self._log_handshake[conn.listener_name] = _RateLimitedLog("ssl_handshake_failed")
            limited(listener=conn.listener_name, peer=conn.peer, error=error)
            return None
        # the certificate's subject (User:CN=...) as ssl.principal.mapping.rules map it, or
        # ANONYMOUS; SASL_SSL's SASL exchange replaces it
        try:
            conn.principal = principal_from_peer_certificate(tls.peer_certificate(),
                                                             self.principal_mappers.get(conn.listener_name))
        except NoMatchingRule as exc:  # Kafka: "Failed to map name ... based on SSL principal mapping rules"
            log.warning("ssl_principal_mapping_failed", listener=conn.listener_name, peer=conn.peer, error=str(exc))
            return None
        return tls

    # -- serving
    def _memory_changed(self) -> None:
        self._memory_freed.set()
        self._memory_freed = trio.Event()

    async def _serve_connection(self, stream: trio.abc.Stream, conn_state: _Connection) -> None:
        async with trio.open_nursery() as nursery:  # the pipelined requests, each writing its own answer in turn
            try:
                await self._serve_frames(stream, conn_state, _Pipeline(nursery))
            finally:
                nursery.cancel_scope.cancel()  # the connection is done: no response is written now

    async def _serve_frames(self, stream: trio.abc.Stream, conn_state: _Connection, pipe: _Pipeline) -> None:
        conn = conn_state.context
        reader = FrameReader(self.max_request_bytes, pool=self.pool)
        idle_s = self.idle_ms / 1000.0
        make_authenticator = self.authenticators.get(conn.listener_name)
        auth = make_authenticator(conn) if make_authenticator is not None else None
        try:
            while True:
                frame = reader.next_frame()
                if frame is None:
                    if reader.waiting_for_memory:  # muted: wait for a handled request's bytes
                        freed = self._memory_freed
                        if reader.resume():
                            if self.pool.waiting:  # the next in line may have slept through its turn
                                self._memory_changed()
                            continue
                        with trio.move_on_after(idle_s) as idle:
                            await freed.wait()
                        if idle.cancelled_caught:
                            log.info("connection_idle_closed", peer=conn.peer, idle_ms=self.idle_ms)
                            return
                        continue
                    with trio.move_on_after(idle_s) as idle:
                        data = await receive_some(stream)
                    if idle.cancelled_caught:
                        log.info("connection_idle_closed", peer=conn.peer, idle_ms=self.idle_ms)
                        return
                    if not data:
                        return
                    conn_state.last_active = trio.current_time()
                    conn.received_ns = time.perf_counter_ns()
                    reader.feed(data)
                    if reader.waiting_for_memory:
                        self._log_muted(peer=conn.peer, pool_used=self.pool.used,
                                        queued_max_request_bytes=self.pool.capacity)
                        self._memory_changed()  # the first waiter may now be the only one left
                    continue
                if (self.pipeline_produce and (auth is None or auth.complete)
                        and peek_required_acks(frame) == -1):
                    await self._serve_pipelined(frame, reader, conn, stream, pipe)
                    del frame
                    continue
                while pipe.pending:  # earlier pipelined responses leave first
                    await pipe.changed.wait()
                close_reason = None
                try:
                    if auth is not None and not auth.complete:
                        step = await auth.authenticate(frame)
                        response, close_reason = step.response, step.close
                    else:
                        response = await self.handler.handle(frame, conn)
                finally:
                    reader.release(frame)
                    del frame
                    if self.pool.waiting:
                        self._memory_changed()
                conn_state.last_active = trio.current_time()
                if response is not None:
                    request_hops.mark("response_queued")
                    await send_chunks(stream, response, written=conn.response_written)
                else:
                    request_hops.clear()
                    await trio.lowlevel.checkpoint()  # receive_some may not yield: let others run
                if close_reason is not None:  # failed authentication: logged by the authenticator
                    await trio.sleep(self.failed_authentication_delay_ms / 1000.0)
                    return
        except Exception as exc:
            _log_connection_end(exc, conn.peer)
        finally:
            reader.close()
            if self.pool.waiting:
                self._memory_changed()

    async def _serve_pipelined(self, frame: memoryview, reader: FrameReader, conn: ConnectionContext,
                               stream: trio.abc.Stream, pipe: _Pipeline) -> None:
        """Serve an acks=all Produce in its own task and return once it has done its local work
        (its appends; request_pipelining) or finished, so that the connection's next request can
        be read while this one waits for the followers. The task writes its response itself,
        once the connection's previous pipelined request has written its own: answers leave in
        request order, and the first in line is written with no extra task wake-up."""
        while pipe.pending >= MAX_PIPELINED_REQUESTS:
            await pipe.changed.wait()
        request, previous = _PipelinedRequest(), pipe.last
        pipe.last = request
        pipe.pending += 1
        pipe.nursery.start_soon(self._handle_pipelined, frame, reader, conn, stream, pipe, request, previous)
        await request.ready.wait()
        if request.failed:
            await trio.sleep_forever()  # nothing more is read: its task logs it and ends the connection

    async def _handle_pipelined(self, frame: memoryview, reader: FrameReader, conn: ConnectionContext,
                                stream: trio.abc.Stream, pipe: _Pipeline, request: _PipelinedRequest,
                                previous: _PipelinedRequest | None) -> None:
        request_pipelining.serve(request.ready.set)
        response: Sequence[Any] | None = None
        error: Exception | None = None
        try:
            response = await self.handler.handle(frame, conn)
            if response is not None:
                request_hops.mark("response_queued")
            else:
                request_hops.clear()
        except Exception as exc:  # noqa: BLE001 -- raised below, in request order
            error = exc
            request.failed = True
        finally:
            reader.release(frame)
            del frame
            if self.pool.waiting:
                self._memory_changed()
            request.ready.set()
        hops = request_hops.current()

        def written() -> None:
            conn.written_ns = time.perf_counter_ns()
            request_hops.finish_request(hops, conn.written_ns)

        try:
            if previous is not None and not previous.written.is_set():
                await previous.written.wait()
            else:  # first in line: write now (Event.wait on a set event is a trip through the scheduler)
                await trio.lowlevel.checkpoint_if_cancelled()
            if error is not None:
                raise error
            if response is not None:
                await send_chunks(stream, response, written=written)
        except Exception as exc:
            _log_connection_end(exc, conn.peer)
        else:
            request.written.set()
            pipe.written()
            return
        pipe.nursery.cancel_scope.cancel()  # the connection ends with its first failed request
