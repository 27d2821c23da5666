"""The dashboard's state holder (``Dashboard``: polling loop, timeline, teaching actions) and
its starlette ASGI app (``make_app``).

Routes::

    GET  /                                  the page (kafkalike.dashboard.page)
    GET  /events[?since=SEQ]                server-sent events: one JSON message per snapshot,
                                            {"state": {...}, "events": [{seq, ts_ms, kind, text}]}
    GET  /api/state                         the same message once, as JSON
    POST /api/brokers/<id>/kill             kill -9 broker <id> of THIS cluster
    POST /api/brokers/<id>/restart          start it again (waits out its old registration)
    POST /api/brokers/<id>/pause            SIGSTOP it (a zombie: sockets open, nothing answers)
    POST /api/brokers/<id>/resume           SIGCONT a paused broker
    POST /api/brokers/<id>/cut-zk           drop what it sends to every ZooKeeper node (iptables)
    POST /api/brokers/<id>/heal-zk          remove those rules
    POST /api/elect-preferred               ElectLeaders (PREFERRED) for every partition
    POST /api/produce                       {"topic": T, "count": N}: N records to T (acks=all)

Kill, restart, pause and the election need the JSON body ``{"confirm": true}`` (the page asks
with confirm() first): anything else is 400; every action needs Content-Type application/json
(else 415) and, when the browser sends an Origin, the page's own (else 403), so another web
site open in the same browser cannot post them; a broker id not in the cluster the dashboard
was started for, or any other route, is 404; killing or pausing a broker that is not running,
restarting one that is, resuming one that is not paused, 409. A produce burst needs a topic
name and 1 <= count <= MAX_BURST (else 400). cut-zk needs confirmation too, and a broker that
runs with its own gid (the chaos backend's iptables owner match): brokers the dashboard
restarted have one (``gid_base + id``), others 409 with what to do; without iptables (root) 501.
"""

from __future__ import annotations

import collections
import json
import random
import signal
from urllib.parse import urlsplit
from typing import Any, AsyncIterator

import attrs
import structlog
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kafkalike.client import KafkaClient, KafkaProducer
from kafkalike.client.errors import ClientError
from kafkalike.cluster import process
from kafkalike.chaos.local import ChaosBackendError, LocalBackend
from kafkalike.cluster.local_cluster import ClusterError, LocalCluster
from kafkalike.coordination import ZooKeeperClient
from kafkalike.dashboard.page import PAGE
from kafkalike.protocol.errors import ErrorCode
from kafkalike.dashboard.state import ChildrenCache, Event, Snapshot, collect, diff, now_ms
from kafkalike.dashboard.state_change_log import StateChangeLogReader, StateChangeTimeline

log = structlog.get_logger(__name__)

#: timeline events kept (older ones fall off)
MAX_EVENTS = 2000
#: seconds between SSE keep-alive comments when nothing changes
KEEPALIVE_S = 15.0
#: most records one produce burst sends
MAX_BURST = 100_000
#: seconds a teaching action's Kafka requests may take
ACTION_TIMEOUT_S = 30.0


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
    _paused: set[int] = attrs.Factory(set)
    #: brokers restarted here run with gid gid_base + id, so that a ZooKeeper cut can match
    #: their packets (kafkalike.chaos.local.LocalBackend.cut); random per dashboard, outside the
    #: chaos runner's range [40000, 59000)
    gid_base: int = attrs.Factory(lambda: random.randrange(60000, 65000, 10))
    _backend: LocalBackend | None = None
    _cuts: dict[int, list[tuple[str, ...]]] = attrs.Factory(dict)

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
            tree_cache: ChildrenCache = {}
            try:
                while True:
                    if zk is None:
                        zk = await self._connect()
                    snap = await collect(self.cluster, zk, tree_cache)
                    if not snap.zk_connected and zk is not None:
                        with trio.move_on_after(2):
                            await zk.close()
                        zk = None
                    records = await trio.to_thread.run_sync(reader.poll)
                    # no await from here to the wake-up: a listener sees the new events with
                    # the snapshot they describe
                    self.add(diff(self.snapshot, snap))
                    self.add(steps.feed(records, now_ms()))
                    self.snapshot = snap
                    self._wake()
                    if not started:
                        task_status.started()
                        started = True
                    await trio.sleep(self.poll_interval_s)
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self.remove_cuts)
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
        self._paused.discard(broker_id)
        for handle in self._cuts.pop(broker_id, []):  # a restarted process starts uncut
            await trio.to_thread.run_sync(self._chaos().restore, handle)
        self.add([Event(now_ms(), "action", f"you: kill -9 broker {broker_id} (pid {pid})")])
        return 200, f"broker {broker_id} (pid {pid}) killed"

    async def pause(self, broker_id: int) -> tuple[int, str]:
        """SIGSTOP broker ``broker_id``: (HTTP status, message). Its sockets stay open and its
        ZooKeeper session expires after zookeeper.session.timeout.ms: the controller sees it
        gone while clients still connect to it."""
        pid = await trio.to_thread.run_sync(self.cluster.broker_pid, broker_id)
        if broker_id in self._paused:
            return 409, f"broker {broker_id} is already paused"
        if not await trio.to_thread.run_sync(self.cluster.kill_broker, broker_id, signal.SIGSTOP):
            return 409, f"broker {broker_id} is not running"
        self._paused.add(broker_id)
        self.add([Event(now_ms(), "action", f"you: pause broker {broker_id} (SIGSTOP pid {pid}; its session "
                                            f"expires after the session timeout, its sockets stay open)")])
        return 200, f"broker {broker_id} (pid {pid}) paused"

    async def resume(self, broker_id: int) -> tuple[int, str]:
        """SIGCONT a broker paused here: (HTTP status, message)."""
        pid = await trio.to_thread.run_sync(self.cluster.broker_pid, broker_id)
        if broker_id not in self._paused or pid is None:
            return 409, f"broker {broker_id} is not paused"
        self._paused.discard(broker_id)
        if not process.signal_pid(pid, signal.SIGCONT):
            return 409, f"broker {broker_id} (pid {pid}) is gone"
        self.add([Event(now_ms(), "action", f"you: resume broker {broker_id} (SIGCONT pid {pid})")])
        return 200, f"broker {broker_id} (pid {pid}) resumed"

    async def elect_preferred(self) -> tuple[int, str]:
        """ElectLeaders (election type PREFERRED, every partition) to the controller, as
        kafka-leader-election.sh --election-type preferred --all-topic-partitions: (HTTP
        status, a summary: elected, ELECTION_NOT_NEEDED, other errors)."""
        from kafkalike.protocol.api_keys import ApiKey

        self.add([Event(now_ms(), "action", "you: preferred leader election for every partition")])
        try:
            with trio.fail_after(ACTION_TIMEOUT_S):
                async with KafkaClient(self.cluster.bootstrap_servers, client_id="kafkalike-dashboard") as client:
                    conn = await client.controller_connection()
                    response = await conn.call(ApiKey.ELECT_LEADERS, election_type=0, topic_partitions=None,
                                               timeout=_timedelta_ms(ACTION_TIMEOUT_S * 1000))
        except (ClientError, OSError, trio.TooSlowError) as exc:
            text = f"preferred leader election failed: {exc or type(exc).__name__}"
            self.add([Event(now_ms(), "error", text)])
            return 502, text
        counts: dict[str, int] = collections.Counter()
        elected = []
        for topic in response.replica_election_results:
            for p in topic.partition_result:
                name = ErrorCode(p.error_code).name.upper()
                counts[name] += 1
                if p.error_code == 0:
                    elected.append(f"{topic.topic}-{p.partition_id}")
        summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "no partitions"
        text = f"preferred leader election: {summary}" + (f" (new leaders for {', '.join(elected[:10])})"
                                                          if elected else "")
        self.add([Event(now_ms(), "action", text)])
        return 200, text

    async def produce_burst(self, topic: str, count: int) -> tuple[int, str]:
        """Produce ``count`` records (``burst-<i>``, acks=all) to ``topic`` with kafkalike's
        producer: (HTTP status, message)."""
        self.add([Event(now_ms(), "action", f"you: produce {count} records to {topic}")])
        started = trio.current_time()
        try:
            with trio.fail_after(ACTION_TIMEOUT_S):
                async with KafkaProducer(self.cluster.bootstrap_servers, acks="all") as producer:
                    await producer.send_many(topic, [(None, b"burst-%d" % i) for i in range(count)])
        except (ClientError, OSError, trio.TooSlowError) as exc:
            text = f"produce to {topic} failed: {exc or type(exc).__name__}"
            self.add([Event(now_ms(), "error", text)])
            return 502, text
        text = f"{count} records produced to {topic} in {(trio.current_time() - started) * 1000:.0f} ms"
        self.add([Event(now_ms(), "action", text)])
        return 200, text

    def _chaos(self) -> LocalBackend:
        if self._backend is None:
            self._backend = LocalBackend(self.cluster, self.gid_base)
        return self._backend

    async def cut_zk(self, broker_id: int) -> tuple[int, str]:
        """Drop every packet broker ``broker_id`` sends to the ZooKeeper nodes (the chaos
        backend's link cut, one per node): its session expires while the process and its
        Kafka connections live. (HTTP status, message): 409 not running / already cut / not
        on its own gid, 501 no iptables."""
        pid = await trio.to_thread.run_sync(self.cluster.broker_pid, broker_id)
        if pid is None or not await trio.to_thread.run_sync(self.cluster.broker_alive, broker_id):
            return 409, f"broker {broker_id} is not running"
        if broker_id in self._cuts:
            return 409, f"broker {broker_id} is already cut from ZooKeeper"
        backend = self._chaos()
        if not backend.iptables.available:
            return 501, "cutting from ZooKeeper needs iptables (and root)"
        gid = await trio.to_thread.run_sync(_process_gid, pid)
        if gid != backend.gid(broker_id):
            return 409, (f"broker {broker_id} (pid {pid}) runs with gid {gid}, shared with other processes; "
                         "kill -9 and restart it here to give it its own gid, then cut it")
        try:
            handles = [await trio.to_thread.run_sync(backend.cut, f"b{broker_id}", zk) for zk in backend.zk_nodes()]
        except ChaosBackendError as exc:
            await trio.to_thread.run_sync(backend.iptables.remove_all)
            return 502, f"cut of broker {broker_id} failed: {exc}"
        self._cuts[broker_id] = handles
        self.add([Event(now_ms(), "action", f"you: cut broker {broker_id} from ZooKeeper (iptables drops what gid "
                                            f"{gid} sends to {', '.join(backend.zk_nodes())}; its session expires "
                                            "after the session timeout, its Kafka connections stay)")])
        return 200, f"broker {broker_id} cut from ZooKeeper"

    async def heal_zk(self, broker_id: int) -> tuple[int, str]:
        """Remove broker ``broker_id``'s ZooKeeper cut: (HTTP status, message)."""
        handles = self._cuts.pop(broker_id, None)
        if handles is None:
            return 409, f"broker {broker_id} is not cut from ZooKeeper"
        for handle in handles:
            await trio.to_thread.run_sync(self._chaos().restore, handle)
        self.add([Event(now_ms(), "action", f"you: heal broker {broker_id}'s link to ZooKeeper")])
        return 200, f"broker {broker_id} reaches ZooKeeper again"

    def remove_cuts(self) -> None:
        """Delete every iptables rule this dashboard added (at exit)."""
        if self._backend is not None:
            self._backend.iptables.remove_all()
        self._cuts.clear()

    async def restart(self, broker_id: int) -> tuple[int, str]:
        """Start broker ``broker_id`` again in the background: (HTTP status, message)."""
        if broker_id in self._busy or await trio.to_thread.run_sync(self.cluster.broker_alive, broker_id):
            return 409, f"broker {broker_id} is running or starting"
        self._paused.discard(broker_id)
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
            pid = await trio.to_thread.run_sync(
                lambda: self.cluster.start_broker(broker_id, say=say, group=self.gid_base + broker_id))
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

    async def checked_body(request: Request, what: str, confirm: bool) -> dict[str, Any] | Response:
        """The action's JSON body, or the refusal: 403 another origin, 415 not JSON, 400 not an
        object or (``confirm``) without ``"confirm": true``."""
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
        if not isinstance(body, dict) or (confirm and body.get("confirm") is not True):
            return JSONResponse({"error": f"{what} is destructive: send {{\"confirm\": true}}" if confirm
                                 else f"{what}: send a JSON object"}, status_code=400)
        return body

    def answer(status: int, text: str) -> Response:
        return JSONResponse({"ok": status < 300, "message": text, **({} if status < 300 else {"error": text})},
                            status_code=status)

    async def action(request: Request) -> Response:
        broker_id = request.path_params["broker_id"]
        what = request.path_params["action"]
        handlers = {"kill": dash.kill, "restart": dash.restart, "pause": dash.pause, "resume": dash.resume,
                    "cut-zk": dash.cut_zk, "heal-zk": dash.heal_zk}
        if what not in handlers or broker_id not in dash.cluster.broker_ids:
            return JSONResponse({"error": f"no broker {broker_id} action {what!r} in this cluster"}, status_code=404)
        body = await checked_body(request, f"{what} broker {broker_id}", confirm=what not in ("resume", "heal-zk"))
        if isinstance(body, Response):
            return body
        return answer(*await handlers[what](broker_id))

    async def elect_preferred(request: Request) -> Response:
        body = await checked_body(request, "preferred leader election", confirm=True)
        if isinstance(body, Response):
            return body
        return answer(*await dash.elect_preferred())

    async def produce(request: Request) -> Response:
        body = await checked_body(request, "produce", confirm=False)
        if isinstance(body, Response):
            return body
        topic, count = body.get("topic"), body.get("count")
        if not isinstance(topic, str) or not topic or len(topic) > 249 \
                or not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_BURST:
            return JSONResponse({"error": f"produce: send {{\"topic\": name, \"count\": 1..{MAX_BURST}}}"},
                                status_code=400)
        return answer(*await dash.produce_burst(topic, count))

    return Starlette(routes=[
        Route("/", index),
        Route("/events", events),
        Route("/api/state", state),
        Route("/api/brokers/{broker_id:int}/{action}", action, methods=["POST"]),
        Route("/api/elect-preferred", elect_preferred, methods=["POST"]),
        Route("/api/produce", produce, methods=["POST"]),
    ])


def _process_gid(pid: int) -> int | None:
    """The effective gid of process ``pid`` (/proc/<pid>/status), None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Gid:"):
                    return int(line.split()[2])
    except OSError:
        return None
    return None


def _timedelta_ms(ms: float) -> Any:
    import datetime

    return datetime.timedelta(milliseconds=ms)
