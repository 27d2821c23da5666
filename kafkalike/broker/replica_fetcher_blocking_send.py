"""The follower's connection to its leader: one request at a time, its answer read by the
fetcher's own task (Kafka's ReplicaFetcherBlockingSend, the BlockingSend a
ReplicaFetcherThread uses: ``sendRequest`` = NetworkClientUtils.sendAndReceive on the
fetcher thread, no other thread involved).

Why not kafkalike.client.KafkaConnection: that connection pipelines requests, so a reader
task of its own reads every answer and wakes the waiting caller through a trio Event, and
the caller takes a write lock and writes with trio's ``send_all``. Each of those is a trip
through trio's scheduler, where every other runnable task of the broker goes first: between
the bytes of a Fetch answer arriving and the follower's next Fetch leaving, the reader's
wake-up, the Event, the lock and ``send_all`` cost the fetcher 3 trips (4 task steps in all),
the largest part of the follower's turnaround on a loaded machine (docs/benchmarks.md, "Hop
timing"). A follower has one request outstanding at a time, so it needs none of that:
``send()`` writes the frame with direct non-blocking system calls and reads the answer in the
same task, waiting (``wait_readable``) only while no bytes are there: 1 trip per round trip,
the wake-up when the answer arrives. Over TLS the stream's own ``send_all`` and
``receive_some`` are used (trio's SSLStream needs its task switches), still in one task.

Timeouts (ms, per request): on expiry the connection is closed and RequestTimeoutError
raised, as KafkaConnection does (a late answer would be read as the next one's). A
cancelled request closes the connection too (half a frame may be on the wire). Errors
(kafkalike.client.errors): BrokerConnectionRefusedError, ConnectionClosedError,
RequestTimeoutError, BadResponseError, UnsupportedApiVersionError, KafkaError (ApiVersions),
SaslAuthenticationError.
"""

from __future__ import annotations

import math
import os
import ssl
from collections.abc import Callable
from typing import Any

import structlog
import trio

from kafkalike.client.connection import CLIENT_API_VERSIONS, negotiate_versions, open_broker_stream
from kafkalike.client.errors import (BadResponseError, ConnectionClosedError, KafkaError, RequestTimeoutError,
                                     UnsupportedApiVersionError)
from kafkalike.client.messages import build_request
from kafkalike.client.sasl import SaslClientConfig
from kafkalike.client.sasl import authenticate as sasl_authenticate
from kafkalike.protocol.api_keys import ApiKey, api_name
from kafkalike.protocol.codec import (decode_fetch_response_frame, decode_response, encode_request,
                                      encode_request_frame, peek_correlation_id)
from kafkalike.protocol.errors import ErrorCode, ProtocolError
from kafkalike.protocol.fetch import FetchResponseFields
from kafkalike.protocol.fetch_request import FetchRequestFields, encode_fetch_request_fields
from kafkalike.protocol.frame import DEFAULT_MAX_FRAME_SIZE, FrameReader
from kafkalike.protocol.schema import Message

log = structlog.get_logger(__name__)

RECEIVE_SIZE = 256 * 1024
"""Bytes asked of the socket per read."""

_SOFTWARE_NAME = "kafkalike-replica-fetcher"
_SOFTWARE_VERSION = "0.1.0"


class ReplicaFetcherBlockingSend:
    """One connection from a follower to a leader (module doc). Create with ``connect()``;
    ``call()`` / ``send()`` one request at a time (concurrent calls raise RuntimeError);
    ``api_version()`` as KafkaConnection's; ``aclose()``. Attributes ``host``, ``port``,
    ``versions`` ({api key: negotiated version}), ``broker_versions``."""

    def __init__(self, stream: trio.abc.Stream, host: str, port: int, *, client_id: str | None,
                 request_timeout_ms: float, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.client_versions = dict(CLIENT_API_VERSIONS)
        self.broker_versions: dict[int, tuple[int, int]] = {}
        self.versions: dict[int, int] = {}
        self._stream = stream
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        self._reader = FrameReader(max_frame_size)
        self._next_correlation_id = 0
        self._busy = False
        self._closed = False

    @classmethod
    async def connect(cls, host: str, port: int, *, client_id: str | None, request_timeout_ms: float,
                      connect_timeout_ms: float, ssl_context: ssl.SSLContext | None = None,
                      sasl: SaslClientConfig | None = None) -> ReplicaFetcherBlockingSend:
        """Open a connection to ``host:port`` (TLS with ``ssl_context``), run ApiVersions and,
        with ``sasl``, SaslHandshake + SaslAuthenticate. Raises BrokerConnectionRefusedError
        when the TCP connect or the TLS handshake fails or takes over ``connect_timeout_ms``;
        the errors of ``send()`` (the connection is closed then)."""
        stream = await open_broker_stream(host, port, ssl_context, connect_timeout_ms)
        conn = cls(stream, host, port, client_id=client_id, request_timeout_ms=request_timeout_ms)
        try:
            await conn._negotiate()
            if sasl is not None:
                await sasl_authenticate(conn, sasl)
        except BaseException:
            await conn.aclose()
            raise
        return conn

    @property
    def closed(self) -> bool:
        """True once the connection cannot carry requests any more."""
        return self._closed

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        self._closed = True
        await trio.aclose_forcefully(self._stream)

    def api_version(self, api_key: int, *, max_version: int | None = None,
                    min_version: int | None = None) -> int:
        """The highest version of ``api_key`` both sides support, capped to
        ``[min_version, max_version]``; UnsupportedApiVersionError when there is none."""
        if api_key not in self.versions:
            raise UnsupportedApiVersionError(
                f"{api_name(api_key)}: broker at {self.host}:{self.port} supports "
                f"{self.broker_versions.get(api_key, 'no version')}", api_key)
        version = self.versions[api_key]
        if max_version is not None:
            version = min(version, max_version)
        low = max(self.broker_versions[api_key][0], self.client_versions[api_key][0],
                  min_version if min_version is not None else 0)
        if version < low:
            raise UnsupportedApiVersionError(
                f"{api_name(api_key)}: no common version in [{min_version}, {max_version}]", api_key)
        return version

    async def _negotiate(self) -> None:
        """ApiVersions (KIP-35/511): the newest this client knows, then, if the broker answers
        UNSUPPORTED_VERSION, the broker's newest (v0 when it names none)."""
        version = self.client_versions[ApiKey.API_VERSIONS][1]
        for _attempt in range(3):
            response = await self.send(build_request(
                ApiKey.API_VERSIONS, version, client_software_name=_SOFTWARE_NAME,
                client_software_version=_SOFTWARE_VERSION))
            if response.error_code == ErrorCode.unsupported_version:
                theirs = [k for k in response.api_keys if k.api_key == ApiKey.API_VERSIONS]
                retry = min(theirs[0].max_version, version - 1) if theirs else 0
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
            f"broker at {self.host}:{self.port} accepts no ApiVersions version", ApiKey.API_VERSIONS)

    async def call(self, api_key: int, *, api_version: int | None = None,
                   timeout_ms: float | None = None, **fields: Any) -> Any:
        """Build a request of ``api_key`` at ``api_version`` (default: negotiated) from
        ``fields`` (kafkalike.client.messages.build_request), send it, return its answer."""
        if api_version is None:
            api_version = self.api_version(api_key)
        return await self.send(build_request(api_key, api_version, **fields), timeout_ms=timeout_ms)

    async def send(self, request: Any, *, api_version: int | None = None,
                   timeout_ms: float | None = None) -> Any:
        """Write ``request`` (a kio request entity, or a kafkalike Message sent at
        ``api_version``) and read its answer in this task; returns the decoded response.
        ``timeout_ms`` (default ``request_timeout_ms``) bounds the whole round trip. Takes
        at least one checkpoint. Raises ConnectionClosedError, RequestTimeoutError,
        BadResponseError (the connection is closed after each)."""
        if isinstance(request, Message):
            api_key = type(request).__api_key__
            if api_version is None:
                api_version = self.api_version(api_key)
        else:
            api_key = int(getattr(type(request), "__api_key__", -1))
            api_version = int(getattr(type(request), "__version__", -1))
        version = api_version

        def encode(correlation_id: int) -> bytes:
            return encode_request(request, correlation_id=correlation_id, client_id=self.client_id,
                                  api_version=version)

        def decode(frame: memoryview) -> Any:
            return decode_response(frame, api_key, version)[1]

        return await self._round_trip(api_key, version, encode, decode, timeout_ms)

    async def send_fetch(self, request: FetchRequestFields, api_version: int, *,
                         timeout_ms: float | None = None) -> FetchResponseFields:
        """A Fetch (v4-v12) from plain records, its answer decoded into plain records
        (protocol.fetch_request.encode_fetch_request_fields, codec.decode_fetch_response_frame):
        the follower's round trip without kio entities (docs/benchmarks.md, "Cold paths").
        Otherwise as ``send``."""
        body = encode_fetch_request_fields(request, api_version)

        def encode(correlation_id: int) -> bytes:
            return encode_request_frame(ApiKey.FETCH, api_version, correlation_id, self.client_id, body)

        def decode(frame: memoryview) -> FetchResponseFields:
            return decode_fetch_response_frame(frame, api_version)[1]

        return await self._round_trip(ApiKey.FETCH, api_version, encode, decode, timeout_ms)

    async def _round_trip(self, api_key: int, api_version: int, encode: Callable[[int], bytes],
                          decode: Callable[[memoryview], Any], timeout_ms: float | None) -> Any:
        """Write ``encode(correlation id)``, read the answer in this task, return
        ``decode(frame)`` (``decode`` raises ProtocolError for a bad answer)."""
        if self._closed:
            raise ConnectionClosedError(f"connection to {self.host}:{self.port} is closed")
        if self._busy:
            raise RuntimeError("ReplicaFetcherBlockingSend carries one request at a time")
        correlation_id = self._next_correlation_id
        self._next_correlation_id = (correlation_id + 1) & 0x7FFFFFFF
        data = encode(correlation_id)
        timeout = self.request_timeout_ms if timeout_ms is None else timeout_ms
        frame: memoryview | None = None
        self._busy = True
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            with trio.move_on_after(timeout / 1000 if timeout != math.inf else math.inf):
                waited = await self._write(data)
                frame, waited_read = await self._read_frame()
                waited = waited or waited_read
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._closed = True
            raise ConnectionClosedError(
                f"connection to {self.host}:{self.port} lost during {api_name(api_key)}: {exc!r}") from exc
        except ProtocolError as exc:
            self._closed = True
            raise BadResponseError(f"bad frame from {self.host}:{self.port}: {exc}") from exc
        except BaseException:
            self._closed = True  # cancelled: half a request or answer may be on the wire
            raise
        finally:
            self._busy = False
        if frame is None:
            self._closed = True
            log.info("request_timed_out", host=self.host, port=self.port, api=api_name(api_key),
                     timeout_ms=timeout)
            raise RequestTimeoutError(
                f"{api_name(api_key)} v{api_version} to {self.host}:{self.port}: no response "
                f"in {timeout} ms", timeout)
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()  # the answer was there at once
        if peek_correlation_id(frame) != correlation_id:
            self._closed = True
            raise BadResponseError(
                f"response from {self.host}:{self.port} has correlation id "
                f"{peek_correlation_id(frame)}, expected {correlation_id}")
        try:
            return decode(frame)
        except ProtocolError as exc:
            self._closed = True
            raise BadResponseError(
                f"{api_name(api_key)} v{api_version} response from {self.host}:{self.port} "
                f"does not decode: {exc}") from exc

    async def _write(self, data: bytes) -> bool:
        """Write all of ``data``; True if the task had to wait (a trip through the scheduler).
        On a plain socket: direct non-blocking writes, waiting only while its buffer is full."""
        if self._socket is None:
            await self._stream.send_all(data)
            return True
        view = memoryview(data)
        waited = False
        while view.nbytes:
            try:
                sent = os.write(self._socket.fileno(), view)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._socket)
                waited = True
                continue
            view = view[sent:]
        return waited

    async def _read_frame(self) -> tuple[memoryview, bool]:
        """The next whole frame, and whether the task had to wait for its bytes. On a plain
        socket the bytes already there are read without a trip through the scheduler."""
        waited = False
        while (frame := self._reader.next_frame()) is None:
            if self._socket is None:
                data = await self._stream.receive_some(RECEIVE_SIZE)
                waited = True
            else:
                try:
                    data = os.read(self._socket.fileno(), RECEIVE_SIZE)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(self._socket)
                    waited = True
                    continue
            if not data:
                raise trio.BrokenResourceError("closed by the leader")
            self._reader.feed(data)
        return frame, waited
