"""Request/response codec: frame bodies <-> (header, typed message), for servers and clients.

Holds the sans-IO entry points the broker, kafkalike's client and the controller channel call:

Server side
    ``parse_request(frame) -> (RequestHeader, request)``
    ``encode_response(header, response) -> bytes``                  (a whole frame)
    ``encode_response_chunks(header, response) -> list[chunk]``      (Fetch with FileRecords)
    ``encode_api_versions_fallback(correlation_id) -> bytes``        (KIP-511 fallback)
    ``api_versions_response(version) -> ApiVersionsResponse``        (the broker's table)
Client side
    ``encode_request(request, correlation_id=, client_id=, api_version=) -> bytes``
    ``decode_response(frame, api_key, api_version) -> (correlation_id, response)``
    ``encode_request_frame(api_key, api_version, correlation_id, client_id, body) -> bytes``
    ``decode_fetch_response_frame(frame, api_version) -> (correlation_id, FetchResponseFields)``
        (the follower's Fetch without kio entities: protocol.fetch / protocol.fetch_request)
    ``peek_correlation_id(frame) -> int``
Schemas
    ``request_class(api_key, version)`` / ``response_class(api_key, version)``,
    ``request_header_version()`` / ``response_header_version()``, ``is_flexible()``.

Messages are kio entities (one frozen dataclass per API version, e.g.
``kio.schema.metadata.v12.request.MetadataRequest``), except the ZooKeeper-era RPCs (keys 4-7)
which are kafkalike's own attrs classes covering all versions (kafkalike.protocol.schema);
for those, pass ``api_version`` when encoding. Produce requests and Fetch responses take the
fast paths in kafkalike.protocol.produce / .fetch (record data stays a memoryview); Fetch
requests are encoded by kafkalike.protocol.fetch_request (the follower's per-round-trip
request) and decoded by the generic reader (a hand-written decoder was no faster: building
kio's entities is most of the cost, docs/benchmarks.md).

Headers (Kafka protocol guide, "Headers"; Kafka's ``ApiKeys.requestHeaderVersion``):
request header v2 for flexible versions (client_id stays a *legacy* nullable string, then
tagged fields), v1 otherwise, v0 (no client_id) only for ControlledShutdown v0; response
header v1 (with tagged fields) for flexible versions except ApiVersions, which always
answers with header v0 so that any client can read it.

Errors: parse/decode raise only ProtocolError subclasses: UnknownApiKeyError /
UnsupportedVersionError (carrying api_key, api_version, correlation_id, client_id) and
MalformedFrameError. Passing a message of the wrong type to an encoder is a programming
error (TypeError/ValueError).
"""

from __future__ import annotations

import datetime
import io
import struct
from typing import TYPE_CHECKING, Any, cast

import attrs
from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_writer

from kafkalike.protocol import fetch as _fetch
from kafkalike.protocol import fetch_request as _fetch_request
from kafkalike.protocol import produce as _produce
from kafkalike.protocol.api_keys import SUPPORTED_APIS, ApiKey, api_name
from kafkalike.protocol.controlled_shutdown import (ControlledShutdownRequest,
                                                    ControlledShutdownResponse)
from kafkalike.protocol.errors import (ErrorCode, MalformedFrameError, ProtocolError,
                                       UnknownApiKeyError, UnsupportedVersionError)
from kafkalike.protocol.kio_reader import MAX_REQUEST_FIELDS, read_entity
from kafkalike.protocol.leader_and_isr import LeaderAndIsrRequest, LeaderAndIsrResponse
from kafkalike.protocol.schema import Message, decode_struct, encode_struct, skip_tagged_fields
from kafkalike.protocol.stop_replica import StopReplicaRequest, StopReplicaResponse
from kafkalike.protocol.update_metadata import UpdateMetadataRequest, UpdateMetadataResponse

if TYPE_CHECKING:
    from kio.static.protocol import Payload

__all__ = [
    "RequestHeader",
    "parse_request",
    "encode_response",
    "encode_response_chunks",
    "encode_api_versions_fallback",
    "api_versions_response",
    "encode_request",
    "decode_response",
    "decode_fetch_response_frame",
    "encode_request_frame",
    "request_header_bytes",
    "peek_correlation_id",
    "request_class",
    "response_class",
    "is_flexible",
    "request_header_version",
    "response_header_version",
]

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_FIXED = struct.Struct(">hhi")  # api_key, api_version, correlation_id

_IN_PROJECT: dict[int, tuple[type[Message], type[Message]]] = {
    ApiKey.LEADER_AND_ISR: (LeaderAndIsrRequest, LeaderAndIsrResponse),
    ApiKey.STOP_REPLICA: (StopReplicaRequest, StopReplicaResponse),
    ApiKey.UPDATE_METADATA: (UpdateMetadataRequest, UpdateMetadataResponse),
    ApiKey.CONTROLLED_SHUTDOWN: (ControlledShutdownRequest, ControlledShutdownResponse),
}


@attrs.frozen
class RequestHeader:
    """A parsed request header: api key/version, correlation id (int32), client id.

    ``header_version`` is 0, 1 or 2 (see module doc).
    """

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None = None
    header_version: int = 1

    @property
    def api_name(self) -> str:
        """Kafka's name of the API, e.g. "Metadata"."""
        return api_name(self.api_key)


# ------------------------------------------------------------------------------- schemas

_REQ_CACHE: dict[tuple[int, int], type] = {}
_RESP_CACHE: dict[tuple[int, int], type] = {}


def request_class(api_key: int, api_version: int) -> type:
    """The message class for this request (a kio entity, or a kafkalike Message for 4-7).

    Raises UnknownApiKeyError / UnsupportedVersionError when no schema exists (independent of
    SUPPORTED_APIS: the client side may use versions the broker table does not list).
    """
    return _schema(api_key, api_version, _REQ_CACHE, 0)


def response_class(api_key: int, api_version: int) -> type:
    """The message class for this response; errors as request_class()."""
    return _schema(api_key, api_version, _RESP_CACHE, 1)


def _schema(api_key: int, api_version: int, cache: dict[tuple[int, int], type], which: int) -> type:
    key = (api_key, api_version)
    cls = cache.get(key)
    if cls is not None:
        return cls
    if api_key in _IN_PROJECT:
        message_cls = _IN_PROJECT[api_key][which]
        lo, hi = message_cls.__valid_versions__
        if not lo <= api_version <= hi:
            raise UnsupportedVersionError(
                f"{api_name(api_key)} v{api_version} is not defined (v{lo}-v{hi})",
                api_key=api_key, api_version=api_version, correlation_id=-1)
        cls = message_cls
    else:
        loader = load_request_schema if which == 0 else load_response_schema
        try:
            cls = loader(api_key, api_version)
        except Exception as exc:  # kio: UnknownAPIKey / UnknownEntity
            kind = UnknownApiKeyError if "key" in type(exc).__name__.lower() else \
                UnsupportedVersionError
            raise kind(f"no schema for {api_name(api_key)} v{api_version}",
                       api_key=api_key, api_version=api_version, correlation_id=-1) from None
    cache[key] = cls
    return cls


def is_flexible(api_key: int, api_version: int) -> bool:
    """True when this API version uses the flexible encoding (KIP-482)."""
    cls = request_class(api_key, api_version)
    if isinstance(cls, type) and issubclass(cls, Message):
        return cls.is_flexible(api_version)
    return bool(cast("type[Payload]", cls).__flexible__)


def request_header_version(api_key: int, api_version: int) -> int:
    """0 (ControlledShutdown v0 only), 2 for flexible versions, else 1."""
    if api_key == ApiKey.CONTROLLED_SHUTDOWN and api_version == 0:
        return 0
    return 2 if is_flexible(api_key, api_version) else 1


def response_header_version(api_key: int, api_version: int) -> int:
    """1 for flexible versions, except ApiVersions (always 0); else 0."""
    if api_key == ApiKey.API_VERSIONS:
        return 0
    return 1 if is_flexible(api_key, api_version) else 0


# ------------------------------------------------------------------------------- bodies


def _decode_body(cls: type, api_version: int, buf: memoryview, pos: int,
                 max_fields: int | None = None) -> tuple[Any, int]:
    if issubclass(cls, Message):
        return decode_struct(cls, buf, pos, api_version, cls.is_flexible(api_version))
    # Not kio's native entity_reader: it preallocates arrays from untrusted lengths and
    # aborts the process on a malformed frame (see kafkalike.protocol.kio_reader).
    return read_entity(cls, buf, pos, max_fields)


def _encode_body(message: Any, api_version: int) -> bytes:
    if isinstance(message, Message):
        out = bytearray()
        encode_struct(message, api_version, type(message).is_flexible(api_version), out)
        return bytes(out)
    buf = io.BytesIO()
    entity_writer(type(message))(buf, message)
    return buf.getvalue()


def _check_message(message: Any, api_key: int, api_version: int, kind: str) -> None:
    cls = type(message)
    if issubclass(cls, Message):
        if cls.__api_key__ != api_key or cls.__kind__ != kind:
            raise TypeError(f"{cls.__name__} is not a {api_name(api_key)} {kind}")
        return
    if getattr(cls, "__api_key__", None) != api_key or getattr(cls, "__version__", None) != \
            api_version or getattr(cls, "__type__", None) is None or \
            cls.__type__.name != kind:
        raise TypeError(f"{cls.__module__}.{cls.__name__} is not {api_name(api_key)} "
                        f"v{api_version} {kind}")


# ------------------------------------------------------------------------------- server side


def _read_client_id(buf: memoryview, pos: int) -> tuple[str | None, int]:
    if pos + 2 > len(buf):
        raise MalformedFrameError("request header ends inside client_id")
    n = _I16.unpack_from(buf, pos)[0]
    pos += 2
    if n == -1:
        return None, pos
    if n < 0 or pos + n > len(buf):
        raise MalformedFrameError(f"invalid client_id length {n}")
    try:
        return str(buf[pos:pos + n], "utf-8"), pos + n
    except UnicodeDecodeError:
        raise MalformedFrameError("client_id is not valid UTF-8") from None


def parse_request(
    frame: bytes | bytearray | memoryview,
    supported: dict[int, tuple[int, int]] = SUPPORTED_APIS,
) -> tuple[RequestHeader, Any]:
    """Parse a request frame body (without its size prefix) into (RequestHeader, request).

    Only (api_key, api_version) pairs in ``supported`` are accepted. Raises
    UnknownApiKeyError / UnsupportedVersionError (with the correlation id, so the server can
    answer ApiVersions with ``encode_api_versions_fallback``), MalformedFrameError for a
    frame whose body does not decode or holds more than kio_reader.MAX_REQUEST_FIELDS array
    fields (bytes left after a complete body are ignored, as Kafka's
    broker ignores them).
    """
    buf = frame if isinstance(frame, memoryview) else memoryview(frame)
    if len(buf) < 8:
        raise MalformedFrameError(f"request frame of {len(buf)} bytes is shorter than a header")
    api_key, api_version, correlation_id = _FIXED.unpack_from(buf, 0)
    rng = supported.get(api_key)
    if rng is None:
        raise UnknownApiKeyError(
            f"unknown or unsupported api key {api_key}", api_key=api_key,
            api_version=api_version, correlation_id=correlation_id)
    if not rng[0] <= api_version <= rng[1]:
        client_id = None
        try:
            client_id = _read_client_id(buf, 8)[0]
        except ProtocolError:
            pass
        raise UnsupportedVersionError(
            f"{api_name(api_key)} v{api_version} is not supported (v{rng[0]}-v{rng[1]})",
            api_key=api_key, api_version=api_version, correlation_id=correlation_id,
            client_id=client_id)
    try:
        cls = request_class(api_key, api_version)
    except (UnknownApiKeyError, UnsupportedVersionError) as exc:
        raise type(exc)(str(exc), api_key=api_key, api_version=api_version,
                        correlation_id=correlation_id) from None
    header_version = request_header_version(api_key, api_version)
    pos = 8
    client_id = None
    if header_version >= 1:
        client_id, pos = _read_client_id(buf, pos)
    if header_version >= 2:
        pos = skip_tagged_fields(buf, pos)
    header = RequestHeader(api_key, api_version, correlation_id, client_id, header_version)
    if api_key == ApiKey.PRODUCE and api_version in _produce.FAST_VERSIONS:
        request, pos = _produce.decode_produce_request(buf, pos, api_version)
    else:
        request, pos = _decode_body(cls, api_version, buf, pos, MAX_REQUEST_FIELDS)
    # Bytes after the body are ignored, as Kafka's broker does (AbstractRequest.parseRequest
    # reads the message and never checks for leftovers): librdkafka 2.16 sends 3 extra bytes
    # after an all-topics Metadata v12 request, and Kafka serves it.
    return header, request


def _response_header_bytes(api_key: int, api_version: int, correlation_id: int) -> bytes:
    if response_header_version(api_key, api_version) == 1:
        return _I32.pack(correlation_id) + b"\x00"
    return _I32.pack(correlation_id)


def encode_response_chunks(header: RequestHeader, response: Any) -> list[_fetch.Chunk]:
    """The response frame (size prefix included) as a list of chunks.

    For Fetch, each partition's ``records`` (None, bytes, memoryview or fetch.FileRecords)
    becomes its own chunk, to be sent as is / with os.sendfile; every other API returns one
    bytes chunk. Raises TypeError when ``response`` is not the response class of
    ``header``'s api key and version.
    """
    _check_message(response, header.api_key, header.api_version, "response")
    if header.api_key == ApiKey.FETCH and header.api_version in _fetch.FAST_VERSIONS:
        return _fetch.encode_fetch_response(response, header.api_version, header.correlation_id)
    return [encode_response(header, response)]


def encode_response(header: RequestHeader, response: Any) -> bytes:
    """The whole response frame (size prefix, response header, body) as bytes.

    For a Fetch response whose records are FileRecords use encode_response_chunks().
    """
    _check_message(response, header.api_key, header.api_version, "response")
    if header.api_key == ApiKey.FETCH and header.api_version in _fetch.FAST_VERSIONS:
        chunks = _fetch.encode_fetch_response(response, header.api_version,
                                              header.correlation_id)
        if any(isinstance(c, _fetch.FileRecords) for c in chunks):
            raise TypeError("Fetch response holds FileRecords: use encode_response_chunks()")
        in_memory = cast("list[bytes | bytearray | memoryview]", chunks)  # no FileRecords: checked above
        return b"".join(bytes(c) if isinstance(c, memoryview) else c for c in in_memory)
    head = _response_header_bytes(header.api_key, header.api_version, header.correlation_id)
    body = _encode_body(response, header.api_version)
    return _I32.pack(len(head) + len(body)) + head + body


def encode_response_body(api_key: int, api_version: int, response: Any) -> bytes:
    """The body of a response (no size prefix, no response header): what stays the same
    between two requests answered alike, e.g. the all-topics Metadata answer that KafkaApis
    caches until the next UpdateMetadata. Frame it with ``frame_response_body``. Pure
    computation on an immutable entity: safe to run in a worker thread."""
    _check_message(response, api_key, api_version, "response")
    return _encode_body(response, api_version)


def frame_response_body(header: RequestHeader, body: bytes) -> bytes:
    """The response frame (size prefix, response header of ``header``'s correlation id) around
    a body from ``encode_response_body``."""
    head = _response_header_bytes(header.api_key, header.api_version, header.correlation_id)
    return _I32.pack(len(head) + len(body)) + head + body


def api_versions_response(
    api_version: int,
    supported: dict[int, tuple[int, int]] = SUPPORTED_APIS,
    error_code: ErrorCode = ErrorCode.none,
    throttle_time_ms: int = 0,
) -> Any:
    """The broker's ApiVersionsResponse (kio entity of ``api_version``) listing ``supported``."""
    cls = response_class(ApiKey.API_VERSIONS, api_version)
    mod = __import__(cls.__module__, fromlist=["ApiVersion"])
    keys = tuple(mod.ApiVersion(api_key=k, min_version=lo, max_version=hi)
                 for k, (lo, hi) in sorted(supported.items()))
    kwargs: dict[str, Any] = {"error_code": error_code, "api_keys": keys}
    if api_version >= 1:
        kwargs["throttle_time"] = datetime.timedelta(milliseconds=throttle_time_ms)
    return cls(**kwargs)


def encode_api_versions_fallback(
    correlation_id: int, supported: dict[int, tuple[int, int]] = SUPPORTED_APIS,
) -> bytes:
    """Answer to an ApiVersions request at a version we do not know (KIP-511).

    An ApiVersionsResponse v0 frame (response header v0) with error UNSUPPORTED_VERSION and
    the supported ranges (including ApiVersions' own, from which librdkafka and the Java
    client pick the version to retry with).
    """
    header = RequestHeader(ApiKey.API_VERSIONS, 0, correlation_id, None, 1)
    return encode_response(header, api_versions_response(0, supported,
                                                         ErrorCode.unsupported_version))


# ------------------------------------------------------------------------------- client side


def request_header_bytes(api_key: int, api_version: int, correlation_id: int, client_id: str | None) -> bytes:
    """The request header (Kafka protocol guide, "Request Header" v0-v2, the version the api
    and version call for): api key, version, correlation id, client id (v1+), an empty
    tagged-field section (v2)."""
    hv = request_header_version(api_key, api_version)
    head = bytearray(_FIXED.pack(api_key, api_version, correlation_id))
    if hv >= 1:
        if client_id is None:
            head += _I16.pack(-1)
        else:
            cid = client_id.encode("utf-8")
            head += _I16.pack(len(cid)) + cid
    if hv >= 2:
        head.append(0)
    return bytes(head)


def encode_request_frame(api_key: int, api_version: int, correlation_id: int, client_id: str | None,
                         body: bytes) -> bytes:
    """A whole request frame (size prefix, header, ``body``) around a body already encoded
    (e.g. protocol.fetch_request.encode_fetch_request_fields)."""
    head = request_header_bytes(api_key, api_version, correlation_id, client_id)
    return _I32.pack(len(head) + len(body)) + head + body


def encode_request(
    request: Any,
    *,
    correlation_id: int,
    client_id: str | None = "kafkalike",
    api_version: int | None = None,
) -> bytes:
    """A whole request frame (size prefix, request header, body) for ``request``.

    kio entities carry their api key and version; kafkalike Messages (keys 4-7) need
    ``api_version``. Raises ValueError when ``api_version`` is missing or contradicts the
    entity, TypeError for an object that is not a request.
    """
    cls = type(request)
    if issubclass(cls, Message):
        if api_version is None:
            raise ValueError(f"{cls.__name__} needs api_version")
        api_key = cls.__api_key__
        lo, hi = cls.__valid_versions__
        if not lo <= api_version <= hi:
            raise ValueError(f"{cls.__name__} has no version {api_version}")
    else:
        key = getattr(cls, "__api_key__", None)
        version = getattr(cls, "__version__", None)
        if key is None or version is None:
            raise TypeError(f"{cls.__name__} is not a request message")
        api_key = int(key)
        if api_version is not None and api_version != version:
            raise ValueError(f"{cls.__module__}.{cls.__name__} is version {version}, "
                             f"not {api_version}")
        api_version = int(version)
    _check_message(request, api_key, api_version, "request")
    head = request_header_bytes(api_key, api_version, correlation_id, client_id)
    if api_key == ApiKey.PRODUCE and api_version in _produce.FAST_VERSIONS:
        chunks = _produce.encode_produce_request_body(request, api_version)
        size = len(head) + sum(c.nbytes if isinstance(c, memoryview) else len(c)
                               for c in chunks)
        return b"".join([_I32.pack(size), head, *chunks])
    if api_key == ApiKey.FETCH and api_version in _fetch_request.FAST_VERSIONS:
        body = _fetch_request.encode_fetch_request_body(request, api_version)
    else:
        body = _encode_body(request, api_version)
    return _I32.pack(len(head) + len(body)) + head + body


def peek_correlation_id(frame: bytes | bytearray | memoryview) -> int:
    """The correlation id of a response frame body (its first 4 bytes).

    Raises MalformedFrameError for a frame shorter than 4 bytes.
    """
    if len(frame) < 4:
        raise MalformedFrameError("response frame shorter than its correlation id")
    return _I32.unpack_from(frame, 0)[0]


def decode_response(
    frame: bytes | bytearray | memoryview, api_key: int, api_version: int,
) -> tuple[int, Any]:
    """Decode a response frame body (without size prefix) for the request that was sent.

    Returns (correlation_id, response). Fetch responses keep records as memoryview slices of
    ``frame``. An ApiVersions answer with UNSUPPORTED_VERSION is decoded in the v0 format
    (KIP-511), whatever version was asked. Raises MalformedFrameError (and UnsupportedVersionError for an api/version
    without schema).
    """
    buf = frame if isinstance(frame, memoryview) else memoryview(frame)
    correlation_id, pos = _response_header(buf, api_key, api_version)
    if api_key == ApiKey.API_VERSIONS and api_version > 0 and len(buf) >= pos + 2 and \
            _I16.unpack_from(buf, pos)[0] == ErrorCode.unsupported_version:
        api_version = 0  # KIP-511: the broker answered in the v0 format
    cls = response_class(api_key, api_version)
    if api_key == ApiKey.FETCH and api_version in _fetch.FAST_VERSIONS:
        response, pos = _fetch.decode_fetch_response(buf, pos, api_version)
    else:
        response, pos = _decode_body(cls, api_version, buf, pos)
    _check_consumed(buf, pos, api_key, api_version)
    return correlation_id, response


def decode_fetch_response_frame(frame: bytes | bytearray | memoryview,
                                api_version: int) -> tuple[int, _fetch.FetchResponseFields]:
    """Decode a Fetch response frame body (v4-v12, without size prefix) into plain records
    (protocol.fetch.decode_fetch_response_fields: no kio entity; the follower's path).
    Returns (correlation_id, FetchResponseFields); records are memoryview slices of
    ``frame``. Raises MalformedFrameError; ValueError for a version outside v4-v12."""
    if api_version not in _fetch.FAST_VERSIONS:
        raise ValueError(f"Fetch v{api_version} has no plain-record decoder (v4-v12)")
    buf = frame if isinstance(frame, memoryview) else memoryview(frame)
    correlation_id, pos = _response_header(buf, ApiKey.FETCH, api_version)
    response, pos = _fetch.decode_fetch_response_fields(buf, pos, api_version)
    _check_consumed(buf, pos, ApiKey.FETCH, api_version)
    return correlation_id, response


def _response_header(buf: memoryview, api_key: int, api_version: int) -> tuple[int, int]:
    """(correlation id, position of the body) of a response frame body."""
    correlation_id = peek_correlation_id(buf)
    pos = 4
    if response_header_version(api_key, api_version) == 1:
        pos = skip_tagged_fields(buf, pos)
    return correlation_id, pos


def _check_consumed(buf: memoryview, pos: int, api_key: int, api_version: int) -> None:
    if pos != len(buf):
        raise MalformedFrameError(
            f"{len(buf) - pos} trailing bytes after {api_name(api_key)} v{api_version} response")
