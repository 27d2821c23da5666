"""What a control manager's operation returns (Kafka's ControllerResult) and how it fails.

An operation reads the committed state only and returns the records that make its change plus
the response to send once they are committed; it never changes the state itself (replay does).
"""

from __future__ import annotations

from typing import Any

import attrs

from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode

__all__ = ["ControllerResult", "ControllerError"]


@attrs.frozen
class ControllerResult:
    """``records`` to append as one batch (may be empty: nothing to write) and ``response``, the
    value handed back to the caller once they are committed (Kafka's ControllerResult)."""

    records: tuple[mr.ApiMessage | mr.ApiMessageAndVersion, ...]
    response: Any = None


class ControllerError(Exception):
    """An operation refused with a Kafka error code (``error``) and a message (Kafka throws an
    ApiException whose class names the code, e.g. StaleBrokerEpochException)."""

    def __init__(self, error: ErrorCode, message: str = "") -> None:
        super().__init__(message or error.name)
        self.error = error
        self.message = message
