"""Controller tests log through structlog's defaults, whatever an earlier in-process CLI call
configured: ``kafkalike.cli.main`` binds structlog to the sys.stderr of the moment, which under
pytest is a capture file closed after that test, so later log calls would raise
"I/O operation on closed file" inside the controller's event loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    structlog.reset_defaults()
    yield
