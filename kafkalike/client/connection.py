"""One TCP connection to one Kafka broker: version negotiation, pipelined requests, timeouts.

Holds ``KafkaConnection`` (trio; the codec is kafkalike.protocol's) and ``CLIENT_API_VERSIONS``
(the versions this client can build and read). Design, after Kafka's ``NetworkClient`` /
``KafkaChannel`` and librdkafka's ``rd_kafka_broker``:

- ``connect()`` opens the stream and starts **one reader task** in the caller's nursery. The
  reader feeds a ``FrameReader`` and hands each response frame to the oldest in-flight
  request: Kafka answers the requests of one connection strictly in order, so a response
  whose correlation id is not the oldest one outstanding is a protocol violation that closes
  the connection (every waiter gets ``BadResponseError``).
- Requests are **pipelined**: ``send()`` takes the write lock (FIFO) only to append itself to
  the in-flight queue and write its frame, then waits for its response without holding it.
  Produce with ``acks=0`` expects no response and returns ``None`` once written.
- **ApiVersions negotiation** on connect (KIP-35/KIP-511): the newest ApiVersions this client
  knows is sent first; a broker that does not know it answers UNSUPPORTED_VERSION in the v0
  format with its own range, and the request is retried at the broker's newest version (v0
  when it gave none), as librdkafka does. Each API then uses the highest version both sides
  support (``api_version()``).
- **Timeouts** (ms, per request, default ``request_timeout_ms``): when one expires the
  connection is closed, because a late response would hold back every later one (Kafka's
  NetworkClient does the same: "Disconnecting from node due to request timeout"). Other
  in-flight requests fail with ``ConnectionClosedError``. A caller that is cancelled while
  waiting abandons its request (the reader discards its response); a frame being written is
  always finished first (the write is shielded from the caller's cancellation, bounded by the
  request timeout, after which the connection is closed).

Errors (kafkalike.client.errors): BrokerConnectionRefusedError, ConnectionClosedError,
RequestTimeoutError, BadResponseError, UnsupportedApiVersionError, KafkaError (a failed
ApiVersions). Error codes inside responses are left to the caller.
"""

from __future__ import annotations

import contextlib
import functools
import math
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import attrs
import structlog
import trio

from kafkalike.client.errors import (BadResponseError, BrokerConnectionRefusedError,
                                     ConnectionClosedError, KafkaError, RequestTimeoutError,
                                     UnsupportedApiVersionError)
from kafkalike.client.messages import build_request
from kafkalike.client.sasl import SaslClientConfig
from kafkalike.client.sasl import authenticate as sasl_authenticate
from kafkalike.protocol.api_keys import SUPPORTED_APIS, ApiKey, api_name
from kafkalike.protocol.codec import decode_response, encode_request, peek_correlation_id
from kafkalike.protocol.errors import ErrorCode, ProtocolError
from kafkalike.protocol.frame import DEFAULT_MAX_FRAME_SIZE, FrameReader
from kafkalike.protocol.schema import Message

__all__ = ["KafkaConnection", "ConnectionStatistics", "CLIENT_API_VERSIONS",
           "negotiate_versions"]

log = structlog.get_logger("kafkalike.client.connection")

CLIENT_API_VERSIONS: dict[int, tuple[int, int]] = dict(SUPPORTED_APIS)
"""{api_key: (min, max)} this client can send and decode: the codec's table (kio schemas,
Produce v3-9 and Fetch v4-12 fast paths, the in-project ZooKeeper-era RPCs)."""
# AddPartitionsToTxn v4+ is broker-to-broker (KIP-890 verification): clients stop at v3, as
# Kafka's AddPartitionsToTxnRequest.Builder.forClient does; the broker's verifier asks for v4
CLIENT_API_VERSIONS[24] = (0, 3)

_CLIENT_SOFTWARE_NAME = "kafkalike-python"
_CLIENT_SOFTWARE_VERSION = "0.1.0"
_RECEIVE_CHUNK = 256 * 1024


def negotiate_versions(
    client: dict[int, tuple[int, int]], broker: dict[int, tuple[int, int]],
) -> dict[int, int]:
    """{api_key: highest version both sides support} for the APIs they share a version of."""
    out = {}
    for key, (cmin, cmax) in client.items():
        if key not in broker:
            continue
        bmin, bmax = broker[key]
        version = min(cmax, bmax)
        if version >= max(cmin, bmin):
            out[key] = version
    return out


async def open_broker_stream(host: str, port: int, ssl_context: ssl.SSLContext | None,
                             connect_timeout_ms: float) -> trio.abc.Stream:
    """A TCP stream to ``host:port`` (TLS-wrapped and handshaken with ``ssl_context``), within
    ``connect_timeout_ms``. Raises BrokerConnectionRefusedError when the connect or the TLS
    handshake fails or takes longer (nothing is left open then). Used by KafkaConnection and
    the follower's ReplicaFetcherBlockingSend."""
    stream: trio.abc.Stream | None = None
    with trio.move_on_after(connect_timeout_ms / 1000):
        try:
            tcp = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise BrokerConnectionRefusedError(
                f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
        if ssl_context is None:
            stream = tcp
        else:
            tls = trio.SSLStream(tcp, ssl_context, server_hostname=host)
            try:
                await tls.do_handshake()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                await trio.aclose_forcefully(tcp)
                raise BrokerConnectionRefusedError(
                    f"TLS handshake with {host}:{port} failed: {exc.__cause__ or exc}") from exc
            except BaseException:  # cancelled (connect_timeout_ms)
                await trio.aclose_forcefully(tcp)
                raise
            stream = tls
    if stream is None:
        raise BrokerConnectionRefusedError(
            f"cannot connect to {host}:{port}: no answer in {connect_timeout_ms} ms")
    return stream


@attrs.define
class _InFlight:
    correlation_id: int
    api_key: int
    api_version: int
    done: trio.Event = attrs.field(factory=trio.Event)
    frame: memoryview | None = None
    error: BaseException | None = None
    abandoned: bool = False


@attrs.frozen
class ConnectionStatistics:
    """A connection's state in one value: address, node id, requests in flight, totals."""

    host: str
    port: int
    node_id: int | None
    closed: bool
    in_flight: int
    requests_sent: int
    responses_received: int
    bytes_sent: int
    bytes_received: int


class KafkaConnection:
    """A trio connection to one broker (see module doc). Create with ``connect()``.

    Attributes: ``host``, ``port``, ``node_id`` (broker id when known, else None),
    ``broker_versions`` ({api_key: (min, max)} from ApiVersions), ``versions``
    ({api_key: negotiated version}), ``request_timeout_ms``.
    """

    def __init__(self, stream: trio.abc.Stream, host: str, port: int, *,
                 client_id: str | None = "kafkalike", request_timeout_ms: float = 30000,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, node_id: int | None = None,
                 client_versions: dict[int, tuple[int, int]] | None = None) -> None:
        self.host = host
        self.port = port
        self.node_id = node_id
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.client_versions = dict(client_versions or CLIENT_API_VERSIONS)
        self.broker_versions: dict[int, tuple[int, int]] = {}
        self.versions: dict[int, int] = {}
        self._stream = stream
        self._max_frame_size = max_frame_size
        self._send_lock = trio.Lock()
        self._in_flight: deque[_InFlight] = deque()
        self._next_correlation_id = 0
        self._closed = False
        self._close_reason: BaseException | None = None
        self._reader_scope = trio.CancelScope()
        self._reader_done = trio.Event()
        self._requests_sent = 0
        self._responses_received = 0
        self._bytes_sent = 0
        self._bytes_received = 0

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def connect(
        cls, host: str, port: int, *, nursery: trio.Nursery,
        client_id: str | None = "kafkalike", request_timeout_ms: float = 30000,
        connect_timeout_ms: float = 10000, negotiate: bool = True,
        node_id: int | None = None, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        client_versions: dict[int, tuple[int, int]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sasl: SaslClientConfig | None = None,
    ) -> KafkaConnection:
        """Open a connection to ``host:port`` and (``negotiate``) run ApiVersions.

        ``ssl_context`` (a client context, e.g. kafkalike.broker.ssl_factory.client_context):
        speak TLS (Kafka's SSL security protocol), server_hostname = ``host``; the handshake
        counts against ``connect_timeout_ms`` and its failure (untrusted certificate, host name
        mismatch, a PLAINTEXT port) raises BrokerConnectionRefusedError naming the reason.

        ``sasl`` (kafkalike.client.sasl.SaslClientConfig): after ApiVersions, authenticate
        with SaslHandshake + SaslAuthenticate (SASL_PLAINTEXT, or SASL_SSL with ssl_context);
        a refusal raises SaslAuthenticationError (the connection is closed).

        The reader task runs in ``nursery`` until aclose() (an unclosed connection keeps that
        nursery open; ``open()`` is the context-managed form). Raises BrokerConnectionRefusedError
        when the TCP connect fails or takes over ``connect_timeout_ms``; the errors of
        ``send()`` when ApiVersions fails (the connection is closed then).
        """
        stream = await open_broker_stream(host, port, ssl_context, connect_timeout_ms)
        conn = cls(stream, host, port, client_id=client_id,
                   request_timeout_ms=request_timeout_ms, max_frame_size=max_frame_size,
                   node_id=node_id, client_versions=client_versions)
        nursery.start_soon(conn._read_loop)
        if negotiate or sasl is not None:
            try:
                await conn._negotiate()
                if sasl is not None:
                    await sasl_authenticate(conn, sasl)
            except BaseException:
                await conn.aclose()
                raise
        log.debug("connected", host=host, port=port, node_id=node_id)
        return conn

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, host: str, port: int, **kwargs: Any) -> AsyncIterator[KafkaConnection]:
        """``async with KafkaConnection.open(host, port) as conn:`` — connect() in a nursery
        of its own, closed on exit. ``kwargs`` as connect() (without ``nursery``)."""
        async with trio.open_nursery() as nursery:
            conn = await cls.connect(host, port, nursery=nursery, **kwargs)
            try:
                yield conn
            finally:
                await conn.aclose()

    @property
    def closed(self) -> bool:
        """True once the connection cannot carry requests any more."""
        return self._closed

    async def aclose(self) -> None:
        """Close the connection: outstanding requests fail with ConnectionClosedError.

        Idempotent; returns once the reader task has stopped.
        """
        self._fail(ConnectionClosedError(f"connection to {self.host}:{self.port} closed"))
        await trio.aclose_forcefully(self._stream)
        await self._reader_done.wait()

    async def __aenter__(self) -> KafkaConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def statistics(self) -> ConnectionStatistics:
        """The connection's state and counters now."""
        return ConnectionStatistics(
            host=self.host, port=self.port, node_id=self.node_id, closed=self._closed,
            in_flight=len(self._in_flight), requests_sent=self._requests_sent,
            responses_received=self._responses_received, bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received)

    # ------------------------------------------------------------------ versions

    def api_version(self, api_key: int, *, max_version: int | None = None,
                    min_version: int | None = None) -> int:
        """The version to use for ``api_key``: the highest both sides support, optionally
        capped to ``[min_version, max_version]``.

        Raises UnsupportedApiVersionError when there is none (or negotiation did not run).
        """
        if api_key not in self.versions:
            have = self.broker_versions.get(api_key)
            raise UnsupportedApiVersionError(
                f"{api_name(api_key)}: broker at {self.host}:{self.port} supports "
                f"{'no version' if have is None else f'v{have[0]}-v{have[1]}'}, client "
                f"v{self.client_versions.get(api_key, ('-', '-'))[0]}-"
                f"v{self.client_versions.get(api_key, ('-', '-'))[1]}", api_key)
        version = self.versions[api_key]
        if max_version is not None:
            version = min(version, max_version)
        low = max(self.broker_versions[api_key][0], self.client_versions[api_key][0],
                  min_version if min_version is not None else 0)
        if version < low:
            raise UnsupportedApiVersionError(
                f"{api_name(api_key)}: no common version in "
                f"[{min_version}, {max_version}]", api_key)
        return version

    async def _negotiate(self) -> None:
        version = self.client_versions[ApiKey.API_VERSIONS][1]
        for _attempt in range(3):
            request = build_request(ApiKey.API_VERSIONS, version,
                                    client_software_name=_CLIENT_SOFTWARE_NAME,
                                    client_software_version=_CLIENT_SOFTWARE_VERSION)
            response = await self.send(request)
            if response.error_code == ErrorCode.unsupported_version:
                # KIP-511: the broker lists its own ApiVersions range in a v0 answer.
                theirs = [k for k in response.api_keys if k.api_key == ApiKey.API_VERSIONS]
                retry = min(theirs[0].max_version, version - 1) if theirs else 0
                log.debug("api_versions_downgraded", host=self.host, port=self.port,
                          tried=version, retry=retry)
                if retry < 0 or retry >= version:
                    break
                version = retry
                continue
            if response.error_code != ErrorCode.none:
                raise KafkaError(response.error_code, f"ApiVersions v{version}")
            self.broker_versions = {int(k.api_key): (int(k.min_version), int(k.max_version))
                                    for k in response.api_keys}
            self.versions = negotiate_versions(self.client_versions, self.broker_versions)
            return
        raise UnsupportedApiVersionError(
            f"broker at {self.host}:{self.port} accepts no ApiVersions version",
            ApiKey.API_VERSIONS)

    # ------------------------------------------------------------------ requests

    async def call(self, api_key: int, *, api_version: int | None = None,
                   timeout_ms: float | None = None, **fields: Any) -> Any:
        """Build a kio request of ``api_key`` at ``api_version`` (default: negotiated) from
        ``fields`` (kafkalike.client.messages.build_request) and send it. Returns the
        response entity; raises as send() and build_request()."""
        if api_version is None:
            api_version = self.api_version(api_key)
        request = build_request(api_key, api_version, **fields)
        return await self.send(request, timeout_ms=timeout_ms)

    async def send(self, request: Any, *, api_version: int | None = None,
                   timeout_ms: float | None = None,
                   expect_response: bool | None = None, off_loop: bool = False) -> Any:
        """Send one request and return its decoded response (kio entity or kafkalike
        Message), or None when no response is expected (Produce with acks=0).

        ``request``: a kio request entity (its class gives the version) or a kafkalike
        Message for keys 4-7, sent at ``api_version`` (default: the negotiated version).
        ``timeout_ms``: default ``request_timeout_ms``; on expiry the connection is closed
        and RequestTimeoutError raised. Raises ConnectionClosedError, BadResponseError,
        UnsupportedApiVersionError. ``off_loop``: encode the request and decode its response in
        a worker thread (a controller request naming thousands of partitions took 0.1-0.2 s
        of the event loop to encode); the request must not be mutated meanwhile (kio
        entities and Messages are frozen).
        """
        if self._closed:
            raise self._closed_error()
        if isinstance(request, Message):
            api_key = type(request).__api_key__
            if api_version is None:
                api_version = self.api_version(api_key)
        else:
            api_key = int(getattr(type(request), "__api_key__", -1))
            api_version = int(getattr(type(request), "__version__", -1))
        if expect_response is None:
            expect_response = not (api_key == ApiKey.PRODUCE and request.acks == 0)
        timeout = self.request_timeout_ms if timeout_ms is None else timeout_ms
        deadline = trio.current_time() + timeout / 1000 if timeout != math.inf else math.inf
        entry = None
        with trio.CancelScope(deadline=deadline) as scope:
            async with self._send_lock:
                if self._closed:
                    raise self._closed_error()
                correlation_id = self._next_correlation_id
                self._next_correlation_id = (correlation_id + 1) & 0x7FFFFFFF
                if off_loop:
                    data = await trio.to_thread.run_sync(functools.partial(
                        encode_request, request, correlation_id=correlation_id, client_id=self.client_id,
                        api_version=api_version))
                else:
                    data = encode_request(request, correlation_id=correlation_id,
                                          client_id=self.client_id, api_version=api_version)
                if expect_response:
                    entry = _InFlight(correlation_id, api_key, api_version)
                    self._in_flight.append(entry)
                # The frame is written whole or the connection is dropped: a caller's
                # cancellation waits for the write (shield), only the request's own deadline
                # may cut it, and a half-written frame leaves nothing trustworthy after it.
                with trio.CancelScope(shield=True, deadline=deadline) as write_scope:
                    try:
                        await self._stream.send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError,
                            OSError) as exc:
                        self._fail(ConnectionClosedError(
                            f"connection to {self.host}:{self.port} broken while sending "
                            f"{api_name(api_key)}: {exc!r}"))
                        raise self._closed_error() from exc
                if write_scope.cancelled_caught:
                    self._fail(ConnectionClosedError(
                        f"connection to {self.host}:{self.port} closed: {api_name(api_key)} "
                        f"not written within {timeout} ms"))
                    raise RequestTimeoutError(
                        f"{api_name(api_key)} v{api_version} to {self.host}:{self.port}: not "
                        f"written in {timeout} ms", timeout)
                self._requests_sent += 1
                self._bytes_sent += len(data)
            if entry is None:
                return None
            try:
                await entry.done.wait()
            except BaseException:
                entry.abandoned = True
                raise
        if scope.cancelled_caught:
            if entry is not None:
                entry.abandoned = True
            err = RequestTimeoutError(
                f"{api_name(api_key)} v{api_version} to {self.host}:{self.port}: no response "
                f"in {timeout} ms", timeout)
            log.info("request_timed_out", host=self.host, port=self.port,
                     api=api_name(api_key), timeout_ms=timeout)
            self._fail(ConnectionClosedError(
                f"connection to {self.host}:{self.port} closed after a request timeout"))
            await trio.aclose_forcefully(self._stream)
            raise err
        assert entry is not None
        if entry.error is not None:
            failure = entry.error
            if isinstance(failure, (ConnectionClosedError, BadResponseError)):
                raise type(failure)(str(failure)) from failure
            raise failure
        assert entry.frame is not None
        try:
            if off_loop:
                _cid, response = await trio.to_thread.run_sync(decode_response, entry.frame, api_key, api_version)
            else:
                _cid, response = decode_response(entry.frame, api_key, api_version)
        except ProtocolError as exc:
            raise BadResponseError(
                f"{api_name(api_key)} v{api_version} response from {self.host}:{self.port} "
                f"does not decode: {exc}") from exc
        return response

    # ------------------------------------------------------------------ internals

    def _closed_error(self) -> ConnectionClosedError:
        reason = self._close_reason
        if isinstance(reason, ConnectionClosedError):
            return ConnectionClosedError(str(reason))
        return ConnectionClosedError(
            f"connection to {self.host}:{self.port} is closed"
            + (f": {reason}" if reason is not None else ""))

    def _fail(self, error: BaseException) -> None:
        """Mark closed, fail every in-flight request with ``error``, stop the reader."""
        if not self._closed:
            self._closed = True
            self._close_reason = error
        while self._in_flight:
            entry = self._in_flight.popleft()
            entry.error = error if not isinstance(error, ConnectionClosedError) else \
                ConnectionClosedError(str(error))
            entry.done.set()
        self._reader_scope.cancel()

    async def _read_loop(self) -> None:
        reader = FrameReader(self._max_frame_size)
        try:
            with self._reader_scope:
                while True:
                    try:
                        data = await self._stream.receive_some(_RECEIVE_CHUNK)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                        self._fail(ConnectionClosedError(
                            f"connection to {self.host}:{self.port} lost: {exc!r}"))
                        return
                    if not data:
                        self._fail(ConnectionClosedError(
                            f"connection to {self.host}:{self.port} closed by the broker"))
                        return
                    self._bytes_received += len(data)
                    try:
                        reader.feed(data)
                        while (frame := reader.next_frame()) is not None:
                            self._dispatch(frame)
                    except (ProtocolError, BadResponseError) as exc:
                        log.warning("bad_response", host=self.host, port=self.port,
                                    error=str(exc))
                        self._fail(exc if isinstance(exc, BadResponseError) else
                                   BadResponseError(str(exc)))
                        return
        finally:
            if not self._closed:
                self._fail(ConnectionClosedError(
                    f"connection to {self.host}:{self.port} closed"))
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self._stream)
            self._reader_done.set()

    def _dispatch(self, frame: memoryview) -> None:
        correlation_id = peek_correlation_id(frame)
        if not self._in_flight:
            raise BadResponseError(
                f"unexpected response (correlation id {correlation_id}) from "
                f"{self.host}:{self.port}: no request in flight")
        head = self._in_flight[0]
        if head.correlation_id != correlation_id:
            raise BadResponseError(
                f"response from {self.host}:{self.port} has correlation id {correlation_id}, "
                f"expected {head.correlation_id} (responses must come in request order)")
        self._in_flight.popleft()
        self._responses_received += 1
        if head.abandoned:
            return
        head.frame = frame
        head.done.set()
