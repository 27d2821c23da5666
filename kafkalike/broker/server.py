"""What every server process of kafkalike shares (Kafka's ``kafka.server.Server`` trait and the
signal handling of ``kafka.Kafka.main``): run one server until SIGTERM or SIGINT, which ask it to
shut down (controlled shutdown for a broker), and turn its start-up error into one log line and
exit code 1. Used by ``run_broker`` (ZooKeeper mode), ``run_kraft_broker`` and ``run_controller``."""

from __future__ import annotations

import signal
from typing import Any, Protocol

import trio

__all__ = ["Server", "run_until_signal"]


class Server(Protocol):
    """A server process: ``run()`` serves until ``request_shutdown()`` (then returns once stopped)."""

    async def run(self) -> None: ...

    def request_shutdown(self) -> None: ...


async def run_until_signal(server: Server, startup_error: type[Exception], failed_event: str, log: Any) -> int:
    """Run ``server`` until SIGTERM or SIGINT (logged ``signal_received``, then
    ``server.request_shutdown()``); the process exit code: 0 after a clean stop, 1 when ``run()``
    raises ``startup_error`` (logged as one line ``failed_event`` with ``error=``; any other
    exception propagates). ``log`` is the caller's structlog logger (its events keep their
    logger name)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            async def on_signal() -> None:
                async for sig in signals:
                    log.info("signal_received", signal=signal.Signals(sig).name)
                    server.request_shutdown()
                    return

            nursery.start_soon(on_signal)
            try:
                await server.run()
            except startup_error as exc:
                log.error(failed_event, error=str(exc))
                nursery.cancel_scope.cancel()
                return 1
            nursery.cancel_scope.cancel()
    return 0
