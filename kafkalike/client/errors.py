"""The client's typed errors: connection failures, timeouts, and Kafka error codes.

Hierarchy (every class derives from ``ClientError``):

- ``KafkaConnectionError``: the TCP connection to a broker could not be used.
  - ``BrokerConnectionRefusedError``: connect() failed (refused, unreachable, DNS, connect
    timeout). Nothing was sent.
  - ``ConnectionClosedError``: the connection was (or became) closed while a request was
    outstanding; the request may or may not have reached the broker.
- ``RequestTimeoutError``: no response within the request timeout (ms). As Kafka's
  ``NetworkClient`` does, the connection is closed afterwards.
- ``KafkaError``: the broker answered with an error code; ``error_code`` is the
  ``ErrorCode`` (Kafka's ``Errors``), ``retriable`` says whether Kafka marks it retriable.
- ``UnsupportedApiVersionError``: no version of an API is supported by both sides.
- ``BadResponseError``: a response that does not decode (the connection is closed).
- ``NoBrokersAvailableError``: no bootstrap server or known broker could be reached.

Source: Kafka's ``org.apache.kafka.common.errors`` (``RetriableException``,
``TimeoutException``, ``DisconnectException``, ``UnsupportedVersionException``).
"""

from __future__ import annotations

from kafkalike.protocol.errors import ErrorCode, kafka_name

__all__ = [
    "ClientError",
    "KafkaConnectionError",
    "BrokerConnectionRefusedError",
    "ConnectionClosedError",
    "RequestTimeoutError",
    "KafkaError",
    "UnsupportedApiVersionError",
    "BadResponseError",
    "NoBrokersAvailableError",
    "raise_for_error",
]


class ClientError(Exception):
    """Base of every error kafkalike's client raises."""

    retriable: bool = False


class KafkaConnectionError(ClientError):
    """A connection to a broker failed; a new connection may succeed (retriable)."""

    retriable = True


class BrokerConnectionRefusedError(KafkaConnectionError):
    """Could not open a TCP connection to ``host:port`` (refused, unreachable, timed out)."""


class ConnectionClosedError(KafkaConnectionError):
    """The connection closed (by the peer, a protocol violation, or close()) while in use."""


class RequestTimeoutError(ClientError):
    """No response within ``timeout_ms``; the connection has been closed (retriable)."""

    retriable = True

    def __init__(self, message: str, timeout_ms: float | None = None) -> None:
        super().__init__(message)
        self.timeout_ms = timeout_ms


class KafkaError(ClientError):
    """A broker answered with ``error_code`` (an ``ErrorCode``, never NONE).

    ``retriable`` follows Kafka's classification (``ErrorCode.retriable``). ``context`` says
    what failed (e.g. ``"produce t-0"``); ``message`` is the broker's error message, if any.
    """

    def __init__(self, error_code: ErrorCode | int, context: str = "",
                 message: str | None = None) -> None:
        code = ErrorCode(error_code)
        text = kafka_name(code)
        if context:
            text = f"{context}: {text}"
        if message:
            text = f"{text} ({message})"
        super().__init__(text)
        self.error_code = code
        self.context = context
        self.message = message

    @property
    def retriable(self) -> bool:  # type: ignore[override]  # a property over Exception's plain attribute
        return bool(self.error_code.retriable)


class UnsupportedApiVersionError(ClientError):
    """The broker and the client share no version of ``api_key`` (or the broker lacks it)."""

    def __init__(self, message: str, api_key: int) -> None:
        super().__init__(message)
        self.api_key = api_key


class BadResponseError(ClientError):
    """A response frame that does not decode, or whose correlation id is out of order."""


class NoBrokersAvailableError(KafkaConnectionError):
    """None of the bootstrap servers / known brokers accepted a connection."""


def raise_for_error(error_code: ErrorCode | int, context: str = "",
                    message: str | None = None) -> None:
    """Raise KafkaError unless ``error_code`` is NONE (0)."""
    if int(error_code) != 0:
        raise KafkaError(error_code, context, message)
