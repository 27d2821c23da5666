"""Per-request hop timing of Produce and Fetch, a debug metric off by default
(``kafkalike.debug.request.hops=true``).

Kafka splits a request's time into RequestQueueTimeMs, LocalTimeMs, RemoteTimeMs,
ResponseQueueTimeMs and ResponseSendTimeMs (kafka.network.RequestMetrics); kafkalike times
the same path with finer marks, so that an acks=all round trip can be taken apart hop by hop:

Produce (acks=all), marks in the order they happen:

- ``received``: the socket read that completed the request's frame (socket_server);
- ``started``: the handler began (after the connection's earlier requests were answered:
  a connection's requests are served one at a time, Kafka's RequestQueueTimeMs);
- ``appended``: every partition appended to the leader's log (ReplicaManager.append_records);
- ``follower_prev_written``: the follower's previous Fetch response on its connection was
  written (the response carrying these records, when the follower was waiting in purgatory);
- ``follower_fetch_received``: the follower Fetch that advanced the high watermark past the
  records arrived (its ``received``);
- ``hw_advanced``: the DelayedProduce completed (high watermark reached, in that Fetch's task);
- ``woken``: the Produce's own task ran again after the purgatory wait;
- ``response_queued``: the response was encoded (the handler returned);
- ``written``: the response's last byte was handed to the kernel.

Fetch: ``received``, ``started``, ``read`` (the data read: at once, or when the DelayedFetch completed),
``woken`` (delayed fetches: the task ran again), ``response_queued``, ``written``.

When enabled, one structlog line ``request_hops`` per Produce/Fetch request: ``api``,
``kind`` (produce, follower, consumer), ``delayed`` (waited in a purgatory) and each mark as
microseconds after ``received`` (``<mark>_us``). ``kafkalike.bench.hop_timing`` reads these
lines and prints the median of each hop.

The current request's RequestHops lives in a context variable: a trio connection task
serves its requests one at a time, so the handler, ReplicaManager and the purgatory code
running in that task see their own request; a DelayedProduce completed from a follower's
Fetch task sees that Fetch as ``current()``, which is how the follower hop is attributed.
Marks cost one ContextVar lookup when disabled (no RequestHops set).
"""

from __future__ import annotations

import contextvars
from time import perf_counter_ns

import attrs
import structlog

log = structlog.get_logger(__name__)

PRODUCE_MARKS = ("started", "appended", "follower_prev_written", "follower_fetch_received", "hw_advanced",
                 "woken", "response_queued", "written")
FETCH_MARKS = ("started", "read", "woken", "response_queued", "written")


@attrs.define
class RequestHops:
    """The marks of one request: ``api`` (Produce, Fetch), ``kind`` (produce, follower,
    consumer), ``received_ns`` and ``prev_written_ns`` (perf_counter_ns of the frame's read
    and of the previous response written on the same connection, 0 if none), ``marks``
    {name: perf_counter_ns}, first mark of each name wins."""

    api: str
    kind: str
    received_ns: int
    prev_written_ns: int = 0
    delayed: bool = False
    marks: dict[str, int] = attrs.Factory(dict)
    finished: bool = False

    def mark(self, name: str, ns: int | None = None) -> None:
        """Record ``name`` at ``ns`` (now by default) unless already recorded."""
        if not self.finished and name not in self.marks:
            self.marks[name] = perf_counter_ns() if ns is None else ns

    def offsets_us(self) -> dict[str, int]:
        """{"<mark>_us": microseconds after received} for every mark."""
        return {f"{k}_us": (v - self.received_ns) // 1000 for k, v in self.marks.items()}


_current: contextvars.ContextVar[RequestHops | None] = contextvars.ContextVar("request_hops", default=None)


def begin(api: str, kind: str, received_ns: int, prev_written_ns: int = 0) -> RequestHops:
    """Start timing the request being served by this task (replaces the previous one)."""
    hops = RequestHops(api, kind, received_ns, prev_written_ns)
    hops.mark("started")
    _current.set(hops)
    return hops


def current() -> RequestHops | None:
    """The RequestHops of the request this task is serving, None when timing is off."""
    return _current.get()


def mark(name: str) -> None:
    """Mark ``name`` now on the current request (no-op when timing is off)."""
    hops = _current.get()
    if hops is not None:
        hops.mark(name)


def mark_replicated(produce: RequestHops | None) -> None:
    """A DelayedProduce of ``produce`` completed in this task: when this task serves a
    follower Fetch, record that Fetch's arrival, the previous response written to that
    follower, and now as ``hw_advanced``. Completion in the Produce's own task (at once, or
    expiry) records nothing."""
    by = _current.get()
    if produce is None or by is None or by is produce or by.kind != "follower":
        return
    produce.delayed = True
    if by.prev_written_ns:
        produce.mark("follower_prev_written", by.prev_written_ns)
    produce.mark("follower_fetch_received", by.received_ns)
    produce.mark("hw_advanced")


def finish(written_ns: int) -> None:
    """The response of the current request was written at ``written_ns``: log its line and
    clear the context (no-op when timing is off or the request was not timed)."""
    hops = _current.get()
    if hops is None or hops.finished:
        return
    _current.set(None)
    finish_request(hops, written_ns)


def finish_request(hops: RequestHops | None, written_ns: int) -> None:
    """``finish`` for a request served in another task (a pipelined Produce, whose response
    the connection's writer task writes): log ``hops``' line (no-op for None)."""
    if hops is None or hops.finished:
        return
    hops.mark("written", written_ns)
    hops.finished = True
    log.info("request_hops", api=hops.api, kind=hops.kind, delayed=hops.delayed, **hops.offsets_us())


def clear() -> None:
    """Forget the current request (a request that gets no response, e.g. acks=0)."""
    if _current.get() is not None:
        _current.set(None)
