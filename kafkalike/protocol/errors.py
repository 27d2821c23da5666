"""Kafka's error codes (one enum) and the codec's own exception hierarchy.

Holds:

- ``ErrorCode``: every Kafka error code with its number, its name and whether a client may
  retry it. It *is* kio's ``kio.schema.errors.ErrorCode`` (generated from Kafka's
  ``Errors.java``), re-exported so that kio entities and kafkalike code share one type.
  Members are lower-case (``ErrorCode.not_leader_or_follower``); ``kafka_name(code)`` gives
  Kafka's spelling (``"NOT_LEADER_OR_FOLLOWER"``) and ``error_code_by_name()`` looks one up.
- ``ProtocolError`` and its subclasses: the only exceptions the sans-IO codec raises on bad
  input (framing, headers, message bodies, records). Each carries ``error_code``: the
  ``ErrorCode`` a broker would answer with, when an answer is possible at all.

Source: Kafka's ``org.apache.kafka.common.protocol.Errors`` and the Kafka protocol guide,
"Error Codes".
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode

__all__ = [
    "ErrorCode",
    "kafka_name",
    "error_code_by_name",
    "ProtocolError",
    "FrameSizeError",
    "MalformedFrameError",
    "UnsupportedApiError",
    "UnknownApiKeyError",
    "UnsupportedVersionError",
    "RecordsError",
    "CorruptRecordsError",
    "UnsupportedMagicError",
    "UnsupportedCompressionError",
]


def kafka_name(code: ErrorCode | int) -> str:
    """Kafka's upper-case name of an error code, e.g. 6 -> ``"NOT_LEADER_OR_FOLLOWER"``.

    Raises ValueError for a number that is not a Kafka error code.
    """
    return ErrorCode(code).name.upper()


def error_code_by_name(name: str) -> ErrorCode:
    """The ErrorCode named ``name`` in Kafka's spelling or kio's (case-insensitive).

    Raises KeyError for an unknown name.
    """
    try:
        return ErrorCode[name.lower()]
    except KeyError:
        raise KeyError(f"no Kafka error code named {name!r}") from None


class ProtocolError(Exception):
    """Base of every error the codec raises on bad input.

    ``error_code`` is the Kafka error a broker would put in its answer (INVALID_REQUEST by
    default). Errors raised while reading a frame mean the connection cannot be trusted any
    more: Kafka's SocketServer closes it.
    """

    error_code: ErrorCode = ErrorCode.invalid_request


class FrameSizeError(ProtocolError):
    """A frame's int32 size prefix is negative or above ``socket.request.max.bytes``.

    Raised by FrameReader before anything of that size is allocated, as Kafka's
    NetworkReceive does with InvalidReceiveException; the connection must be closed.
    ``size`` is the announced size in bytes, ``max_size`` the limit.
    """

    def __init__(self, size: int, max_size: int) -> None:
        if size < 0:
            msg = f"invalid frame size {size} (negative)"
        else:
            msg = f"frame size {size} bytes exceeds the limit of {max_size} bytes"
        super().__init__(msg)
        self.size = size
        self.max_size = max_size


class MalformedFrameError(ProtocolError):
    """A frame whose header or body does not decode as the schema says (INVALID_REQUEST).

    Truncated fields, trailing garbage, bad varints, invalid UTF-8, negative lengths, unknown
    enum values. Kafka answers nothing and closes the connection.
    """


class UnsupportedApiError(ProtocolError):
    """A well-framed request whose (api_key, api_version) this broker does not serve.

    Carries what could be read of the request header so the server can still answer:
    ``api_key``, ``api_version``, ``correlation_id`` (int32) and ``client_id`` (str or None).
    For ApiVersions the server answers ``encode_api_versions_fallback()`` (UNSUPPORTED_VERSION
    in the v0 format, KIP-511); for any other API Kafka closes the connection.
    """

    error_code = ErrorCode.unsupported_version

    def __init__(
        self, message: str, *, api_key: int, api_version: int, correlation_id: int,
        client_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id
        self.client_id = client_id


class UnknownApiKeyError(UnsupportedApiError):
    """The api_key is not one this broker serves at all (Kafka: INVALID_REQUEST, close)."""

    error_code = ErrorCode.invalid_request


class UnsupportedVersionError(UnsupportedApiError):
    """The api_key is served, but not at this api_version (UNSUPPORTED_VERSION)."""


class RecordsError(ProtocolError):
    """Record data that cannot be decoded (base of the record-level errors)."""

    error_code = ErrorCode.corrupt_message


class CorruptRecordsError(RecordsError):
    """A batch or record whose bytes are wrong: CRC mismatch, bad lengths, bad varints,
    a decompressed payload that does not parse (CORRUPT_MESSAGE)."""


class UnsupportedMagicError(RecordsError):
    """A legacy message set (magic 0 or 1): kafkalike only speaks record batch v2.

    error_code CORRUPT_MESSAGE, the same answer kafkalike.protocol.record_batch documents
    (what a Kafka 2.x broker gave to a Produce v3+ carrying magic < 2).
    """


class UnsupportedCompressionError(RecordsError):
    """A compression codec id outside 0-4 (UNSUPPORTED_COMPRESSION_TYPE)."""

    error_code = ErrorCode.unsupported_compression_type
