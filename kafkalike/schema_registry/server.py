"""Serving the registry: the ``KafkaStore`` reader and hypercorn's trio worker running the
starlette app, in one trio run (``serve``)."""

from __future__ import annotations

from typing import Callable

import structlog
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from kafkalike.schema_registry.app import make_app
from kafkalike.schema_registry.in_memory_cache import InMemoryCache
from kafkalike.schema_registry.kafka_schema_registry import KafkaSchemaRegistry
from kafkalike.schema_registry.kafka_store import DEFAULT_TOPIC, KafkaStore

log = structlog.get_logger(__name__)


async def serve(bootstrap_servers: str, *, bind: str = "127.0.0.1", port: int = 8081, topic: str = DEFAULT_TOPIC,
                on_ready: Callable[[list[str]], None] | None = None) -> None:
    """Serve a schema registry storing in ``topic`` of the cluster at ``bootstrap_servers``,
    on ``bind``:``port`` (0: any free port), until cancelled. ``on_ready(urls)`` is called once
    the store is read to its end and the socket listens. Raises OSError if the address cannot
    be bound, kafkalike.client.ClientError if the cluster cannot be reached."""
    store = KafkaStore(bootstrap_servers, InMemoryCache(), topic=topic)
    registry = KafkaSchemaRegistry(store)
    config = Config()
    config.bind = [f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0
    # idle keep-alive connections are closed after 30 s, as Confluent's registry (rest-utils'
    # idle.timeout.ms, 30000) does; hypercorn's 5 s default raced Java's HttpClient, which reuses
    # a pooled connection the server is closing (a converter's task failed so, load 70-110)
    config.keep_alive_timeout = 30.0
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        app = make_app(registry)
        binds = await nursery.start(lambda task_status: hypercorn_serve(
            app, config, task_status=task_status))  # type: ignore[arg-type]  # starlette's ASGI types vs hypercorn's
        log.info("schema_registry_serving", urls=binds, topic=topic)
        if on_ready is not None:
            on_ready(list(binds))
