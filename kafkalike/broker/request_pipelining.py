"""Pipelined acks=all Produce requests on one connection: the signal a handler gives when its
request has done all its work on this broker and only waits for the followers.

Kafka's SocketServer mutes a connection from the moment a request is read until its response
is sent, so a producer's in-flight requests (up to 5 per connection) wait in the socket while
the first one waits for its followers. kafkalike's SocketServer (with
``kafkalike.produce.pipelining``, on by default) reads and serves the next request of a
connection as soon as an acks=all Produce is appended to the leaders' logs and parked in the
produce purgatory (``ReplicaManager.append_records`` calls ``local_work_done``). Requests are
still handled in the order they arrived (the next one starts only once the previous one's
appends are done), and responses are written in that order; only the waits for replication
overlap. docs/design.md "Where kafkalike differs" and docs/benchmarks.md record why.

The signal lives in a context variable of the task that serves the request (the SocketServer
runs a pipelined Produce in its own task), so code deep in the handler needs no reference to
the connection. ``hold`` takes it away where the request must finish first (client quotas:
the throttle of one response mutes the connection for the next request).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

_release: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "request_pipelining_release", default=None)


def serve(release: Callable[[], None]) -> None:
    """In the task serving a pipelined request: ``release()`` lets the connection go on to its
    next request; called at most once, by ``local_work_done``."""
    _release.set(release)


def local_work_done() -> None:
    """The request this task serves has finished its work on this broker (appends done,
    waiting in a purgatory for other brokers): its connection may read and serve its next
    request. No-op outside a pipelined request, or after ``hold``."""
    release = _release.get()
    if release is not None:
        _release.set(None)
        release()


def hold() -> None:
    """The request this task serves must be answered before its connection serves the next one
    (what Kafka always does)."""
    _release.set(None)
