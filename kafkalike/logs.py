"""structlog set-up shared by every kafkalike process.

Events are short verbs with key-value fields: ``log.info("isr_shrunk", topic=t, isr=[1, 2])``.
``configure(fmt="console")`` gives human ``key=value`` lines, ``fmt="json"`` JSON lines;
fields bound with ``configure(..., broker_id=1)`` appear on every line of the process.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at write time, not at configure time: code that
    swaps stderr (pytest's capture, a CLI run in-process) must not leave loggers holding a
    closed file."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(fmt: str = "console", level: int = logging.INFO, stream: Any = None, **bound: Any) -> None:
    """Configure structlog for this process.

    fmt: "console" (key=value lines) or "json" (one JSON object a line).
    level: stdlib level number; lines below it are dropped.
    stream: file object to write to (default: sys.stderr as it is at each write).
    bound: key-values added to every line (e.g. broker_id=1).
    Raises ValueError for an unknown fmt.
    """
    if fmt not in ("console", "json"):
        raise ValueError(f"log format must be 'console' or 'json', got {fmt!r}")
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or _CurrentStderr()),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    if bound:
        structlog.contextvars.bind_contextvars(**bound)
