"""SIGTERM and SIGINT unwind a long bench run like Ctrl-C, so the clusters it started are stopped
by pid in its ``finally`` blocks instead of being left running when the process dies.

Used by ``kafkalike bench`` (harness.run_bench) and ``kafkalike compare`` (compare.run_compare).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class BenchInterrupted(BaseException):
    """SIGTERM or SIGINT arrived. A BaseException, so the ``except Exception`` blocks that record a
    failed measurement and go on to the next one let it through to the run's ``finally``."""


def stop_on_sigterm() -> dict[int, Any]:
    """Make SIGTERM (and SIGINT, which a shell's background job ignores) raise BenchInterrupted in
    the main thread. Returns the previous handlers ({signal number: handler}) for
    ``restore_signals``; an empty dict (nothing installed) outside the main thread, where Python
    cannot install handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        raise BenchInterrupted(f"signal {signum}")

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def restore_signals(previous: dict[int, Any]) -> None:
    """Put back the handlers ``stop_on_sigterm`` replaced."""
    for sig, h in previous.items():
        signal.signal(sig, h)


@contextmanager
def stopped_on_sigterm() -> Iterator[None]:
    """``with stopped_on_sigterm(): ...``: ``stop_on_sigterm`` for the block, the old handlers after."""
    previous = stop_on_sigterm()
    try:
        yield
    finally:
        restore_signals(previous)
