"""The dashboard's state holder (``Dashboard``: polling loop, timeline, teaching actions) and
its starlette ASGI app (``make_app``).

Routes::

    GET  /                                  the page (kafkalike.dashboard.page)
    GET  /events[?since=SEQ]                server-sent events: one JSON message per snapshot,
                                            {"state": {...}, "events": [{seq, ts_ms, kind, text}]}
    GET  /api/state                         the same message once, as JSON
    POST /api/brokers/<id>/kill             kill -9 broker <id> of THIS cluster
    POST /api/brokers/<id>/restart          start it again (waits out its old registration)

Actions need the JSON body ``{"confirm": true}`` (the page asks with confirm() first):
anything else is 400; another Content-Type than application/json is 415 and an Origin other
than the page's own 403 (so another web site open in the same browser cannot post them); a broker
id not in the cluster the dashboard was started for, or any other route, is 404; killing a broker
that is not running or restarting one that is, 409.
"""

from __future__ import annotations

import collections
import json
from urllib.parse import urlsplit
from typing import Any, AsyncIterator

import attrs
import structlog
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kafkalike.cluster.local_cluster import ClusterError, LocalCluster
from kafkalike.coordination import ZooKeeperClient
from kafkalike.dashboard.page import PAGE
from kafkalike.dashboard.state import Event, Snapshot, collect, diff, now_ms
from kafkalike.dashboard.state_change_log import StateChangeLogReader, StateChangeTimeline

log = structlog.get_logger(__name__)

#: timeline events kept (older ones fall off)
MAX_EVENTS = 2000
#: seconds between SSE keep-alive comments when nothing changes
KEEPALIVE_S = 15.0


@attrs.define
class Dashboard:
    """Polls ``cluster`` every ``poll_interval_s`` seconds into ``snapshot`` and appends what
    changed to the timeline (``events``: (seq, Event), seq from 1), followed by what the
    brokers' state-change.log files gained meanwhile (kafkalike.dashboard.state_change_log:
    the controller's and the brokers' steps, with correlation ids). Run ``run`` in a nursery;
    teaching actions started by the app run in that nursery too."""

    cluster: LocalCluster
    poll_interval_s: float = 1.0
    snapshot: Snapshot | None = None
    events: collections.deque[tuple[int, Event]] = attrs.Factory(lambda: collections.deque(maxlen=MAX_EVENTS))
    seq: int = 0
    _changed: trio.Event = attrs.Factory(trio.Event)
    _nursery: trio.Nursery | None = None
    _busy: set[int] = attrs.Factory(set)

    def add(self, events: list[Event]) -> None:
        """Append ``events`` to the timeline and wake every listener."""
        for e in events:
            self.seq += 1
            self.events.append((self.seq, e))
            log.info("timeline", kind=e.kind, text=e.text)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_change(self) -> None:
        """Return at the next snapshot or timeline event."""
        await self._changed.wait()

    def message(self, since: int = 0) -> dict[str, Any]:
        """The SSE/JSON message: the latest snapshot and the timeline events after ``since``."""
        return {
            "state": self.snapshot.to_json() if self.snapshot else None,
            "events": [{"seq": s, **attrs.asdict(e)} for s, e in self.events if s > since],
        }

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll forever; ``task_status.started()`` after the first snapshot."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            zk: ZooKeeperClient | None = None
            started = False
            # the state-change.log files, followed from their ends as they are now
            reader = await trio.to_thread.run_sync(StateChangeLogReader.for_cluster, self.cluster)
            steps = StateChangeTimeline()
            try:
                while True:
                    if zk is None:
                        zk = await self._connect()
                    snap = await collect(self.cluster, zk)
                    if not snap.zk_connected and zk is not None:
                        with trio.move_on_after(2):
                            await zk.close()
                        zk = None
                    self.add(diff(self.snapshot, snap))
                    self.add(steps.feed(await trio.to_thread.run_sync(reader.poll), now_ms()))
                    self.snapshot = snap
                    self._wake()
                    if not started:
                        task_status.started()
                        started = True
                    await trio.sleep(self.poll_interval_s)
            finally:
                if zk is not None:
                    with trio.CancelScope(shield=True), trio.move_on_after(2):
                        await zk.close()

    async def _connect(self) -> ZooKeeperClient | None:
        zk = ZooKeeperClient(self.cluster.zk_connect, session_timeout_ms=6000, connection_timeout_ms=3000,
                             name="dashboard")
        try:
            await zk.start()
            return zk
        except Exception as exc:
            log.info("zk_unreachable", connect=self.cluster.zk_connect, error=str(exc))
            with trio.move_on_after(2):
                await zk.close()
            return None

    # ------------------------------------------------------------------ teaching actions

    async def kill(self, broker_id: int) -> tuple[int, str]:
        """kill -9 broker ``broker_id``: (HTTP status, message)."""
        pid = await trio.to_thread.run_sync(self.cluster.broker_pid, broker_id)
        if not await trio.to_thread.run_sync(self.cluster.kill_broker, broker_id):
            return 409, f"broker {broker_id} is not running"
        self.add([Event(now_ms(), "action", f"you: kill -9 broker {broker_id} (pid {pid})")])
        return 200, f"broker {broker_id} (pid {pid}) killed"

    async def restart(self, broker_id: int) -> tuple[int, str]:
        """Start broker ``broker_id`` again in the background: (HTTP status, message)."""
        if broker_id in self._busy or await trio.to_thread.run_sync(self.cluster.broker_alive, broker_id):
            return 409, f"broker {broker_id} is running or starting"
        assert self._nursery is not None
        self._busy.add(broker_id)
        self.add([Event(now_ms(), "action", f"you: restart broker {broker_id}")])
        self._nursery.start_soon(self._restart, broker_id)
        return 202, f"starting broker {broker_id}"

    async def _restart(self, broker_id: int) -> None:
        token = trio.lowlevel.current_trio_token()

        def say(text: str) -> None:
            trio.from_thread.run_sync(self.add, [Event(now_ms(), "action", text)], trio_token=token)

        try:
            pid = await trio.to_thread.run_sync(lambda: self.cluster.start_broker(broker_id, say=say))
            self.add([Event(now_ms(), "process", f"broker {broker_id} process started (pid {pid})")])
        except (ClusterError, OSError) as exc:
            self.add([Event(now_ms(), "error", f"restart of broker {broker_id} failed: {exc}")])
        finally:
            self._busy.discard(broker_id)


def make_app(dash: Dashboard) -> Starlette:
    """The ASGI app serving ``dash`` (routes in the module doc)."""

    async def index(request: Request) -> Response:
        return HTMLResponse(PAGE)

    def _since(request: Request) -> int:
        try:
            return max(0, int(request.query_params.get("since", "0")))
        except ValueError:
            return 0

    async def state(request: Request) -> Response:
        return JSONResponse(dash.message(_since(request)))

    async def events(request: Request) -> Response:
        since = _since(request)

        async def stream() -> AsyncIterator[str]:
            nonlocal since
            while True:
                msg = dash.message(since)
                if msg["state"] is not None:
                    if msg["events"]:
                        since = msg["events"][-1]["seq"]
                    yield f"data: {json.dumps(msg)}\n\n"
                with trio.move_on_after(KEEPALIVE_S) as scope:
                    await dash.wait_change()
                if scope.cancelled_caught:
                    yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def action(request: Request) -> Response:
        broker_id = request.path_params["broker_id"]
        what = request.path_params["action"]
        if what not in ("kill", "restart") or broker_id not in dash.cluster.broker_ids:
            return JSONResponse({"error": f"no broker {broker_id} action {what!r} in this cluster"}, status_code=404)
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            return JSONResponse({"error": f"{what} from another site ({origin}) refused"}, status_code=403)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            # a cross-site HTML form can post text/plain; JSON needs a CORS preflight we never grant
            return JSONResponse({"error": "send Content-Type: application/json"}, status_code=415)
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or body.get("confirm") is not True:
            return JSONResponse({"error": f"{what} broker {broker_id} is destructive: send {{\"confirm\": true}}"},
                                status_code=400)
        status, text = await (dash.kill(broker_id) if what == "kill" else dash.restart(broker_id))
        return JSONResponse({"ok": status < 300, "message": text, **({} if status < 300 else {"error": text})},
                            status_code=status)

    return Starlette(routes=[
        Route("/", index),
        Route("/events", events),
        Route("/api/state", state),
        Route("/api/brokers/{broker_id:int}/{action}", action, methods=["POST"]),
    ])
