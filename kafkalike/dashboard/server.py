"""Serving the dashboard: hypercorn's trio worker running the starlette app, beside the
``Dashboard`` polling loop, in one trio run (``serve``)."""

from __future__ import annotations

from typing import Callable

import structlog
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.dashboard.app import Dashboard, make_app

log = structlog.get_logger(__name__)


async def serve(cluster: LocalCluster, *, bind: str = "127.0.0.1", port: int = 8080,
                poll_interval_s: float = 1.0, on_ready: Callable[[list[str]], None] | None = None) -> None:
    """Serve the dashboard of ``cluster`` on ``bind``:``port`` (port 0: any free port) until
    cancelled. ``on_ready(urls)`` is called once the socket listens and the first snapshot
    is taken. Raises OSError if the address cannot be bound."""
    dash = Dashboard(cluster, poll_interval_s=poll_interval_s)
    config = Config()
    config.bind = [f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    async with trio.open_nursery() as nursery:
        await nursery.start(dash.run)
        binds = await nursery.start(lambda task_status: hypercorn_serve(make_app(dash), config,
                                                                        task_status=task_status))
        urls = [b + "/" for b in binds]
        log.info("dashboard_serving", urls=urls, cluster=str(cluster.base_dir))
        if on_ready is not None:
            on_ready(urls)
