"""Fixtures for the coordinator tests.

Some test modules elsewhere run the CLI's ``main()``, which points structlog at that test's
captured stderr (kafkalike.logs.configure); once pytest closes that capture, every later
warning logged in this process raises ``ValueError: I/O operation on closed file`` — inside an
in-process broker that breaks request handling. The coordinator tests log from in-process
brokers, so each starts from structlog's defaults (which look up sys.stdout at every call).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def structlog_to_live_stdout() -> Iterator[None]:
    """structlog writes to the current sys.stdout during each coordinator test."""
    structlog.reset_defaults()
    yield
