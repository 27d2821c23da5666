"""ZooKeeperClient: kazoo bridged into trio (Kafka's kafka.zookeeper.ZooKeeperClient role).

kazoo runs its own threads (a connection thread and a callback thread); nothing else in
kafkalike does (docs/design.md decision 7). This module is the bridge:

* Blocking kazoo calls run in a worker thread via ``trio.to_thread.run_sync`` (cancellable:
  a cancelled trio caller abandons the thread; the ZooKeeper operation may still complete,
  exactly like a call that ends in ConnectionLoss).
* Session state changes (kazoo's connection listener, which must not block) and watch firings
  (kazoo's callback thread) are handed to trio with ``TrioToken.run_sync_soon`` and delivered
  through trio memory channels / events, never by blocking a kazoo thread.

Sessions. ``session_events()`` gives a receive channel of ``SessionEvent``:
CONNECTED (``new_session`` True for the first session and for every session created after an
expiry), SUSPENDED (connection lost, session may survive), EXPIRED (session gone: every
ephemeral node of it is deleted by ZooKeeper; kazoo then opens a NEW session by itself, which
arrives as CONNECTED with ``new_session=True``), CLOSED (``close()`` was called). A broker
re-registers on CONNECTED/new_session; a controller resigns on EXPIRED.

Watches are one-shot, as in ZooKeeper: ``get_and_watch``, ``exists_and_watch`` and
``get_children_and_watch`` return a ``Watch`` that fires at most once; ``await
watch.wait()`` gives the ``WatchEvent``, and with ``channel=`` the event is also sent to that
trio channel (e.g. a controller's event queue). To keep watching, re-arm: call the same
``*_and_watch`` again after handling the event (and read the fresh data in the same call,
which is why the read and the arm are one call). kazoo differs from the Java client in one
way: when the connection drops (SUSPENDED) kazoo fires every pending watch with type
DISCONNECTED instead of keeping it; treat DISCONNECTED as "state unknown": wait for
CONNECTED (``wait_connected()``) then re-read and re-arm.

Multi-op: ``multi([CheckOp, CreateOp, SetDataOp, DeleteOp, ...])`` applies all or nothing;
on failure it raises ``MultiOpFailed`` naming the failing op and its error (BadVersion for a
stale version check, NodeExists, NoNode, NotEmpty). Kafka's controller guards every write with
a ``CheckOp("/controller_epoch", epoch_zk_version)``.

Batches. ``get_many`` (reads) and ``multi_many`` (independent multi-ops) queue every request
on the session's connection from one worker thread and then collect the answers in order, as
Kafka's KafkaZkClient pipelines its async requests (retryRequestsUntilConnected), instead of one
trio->thread hand-off per call (~0.4 ms of client CPU each).

Connect strings: ``host:port,host:port[/chroot]``; a missing chroot is created on start, as
Kafka's KafkaZkClient does (KAFKA-7165 era ``createChrootIfNecessary``).

Security (docs/security.md "ZooKeeper security"). ``sasl=ZkSaslCredentials(user, password)``
authenticates the session with SASL DIGEST-MD5, as Kafka's ZooKeeper client does from the JAAS
``Client`` section (``read_jaas_client_section`` reads that section from a JAAS file); a wrong
password makes ``start()`` raise AuthFailed. ``acl_provider(path) -> [ACL]`` gives the ACL of
every znode this client creates (``create``, ``ensure_path(s)``, multi ``CreateOp``, the
chroot), as Kafka passes ``ZkData.defaultAcls(isSecure, path)`` to every create.
"""

from __future__ import annotations

import enum
import functools
import math
import os
import re
import select
import shlex
import socket
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import attrs
import structlog
import trio
from kazoo import exceptions as _kx
from kazoo.client import KazooClient, KazooState
from kazoo.handlers import utils as _kz_utils
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.protocol.states import EventType, KeeperState, WatchedEvent
from kazoo.protocol.states import ZnodeStat as _KzStat
from kazoo.security import ACL

from kafkalike.coordination.errors import (
    ConnectTimeout,
    CoordinationError,
    MultiOpFailed,
    NodeExists,
    NoNode,
    RolledBack,
    RuntimeInconsistency,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")
#: NOAUTH (-102): the session's identities lack the permission a znode's ACL demands
NoAuth = _kx.NoAuthError
#: ``acl_provider``: a chroot-relative path -> the ACL list its znode is created with
AclProvider = Callable[[str], list[ACL]]


@attrs.frozen
class ZkSaslCredentials:
    """A SASL DIGEST-MD5 identity for the ZooKeeper session: ``username`` / ``password`` (what
    the JAAS ``Client`` section's DigestLoginModule gives Kafka's ZooKeeper client). The
    server's ``SASLAuthenticationProvider`` then names the session ``sasl:<username>``."""

    username: str
    password: str = attrs.field(repr=False)

    def sasl_options(self) -> dict[str, str]:
        """kazoo's ``sasl_options`` for this identity (pure-sasl DIGEST-MD5)."""
        return {"mechanism": "DIGEST-MD5", "username": self.username, "password": self.password}


_JAAS_SECTION = re.compile(r"([A-Za-z0-9_.-]+)\s*\{(.*?)\}\s*;", re.S)
_JAAS_OPTION = re.compile(r"([A-Za-z0-9_.]+)\s*=\s*(\"(?:[^\"\\\\]|\\\\.)*\"|[^\s;]+)")


def read_jaas_client_section(text: str, section: str = "Client") -> ZkSaslCredentials | None:
    """The ``username``/``password`` of JAAS file ``text``'s ``section`` (ZooKeeper's client
    section name, ``zookeeper.sasl.clientconfig``, default "Client"), or None if the file has
    no such section. Raises CoordinationError if the section lacks username or password."""
    for name, body in _JAAS_SECTION.findall(text):
        if name != section:
            continue
        opts = {k: (v[1:-1] if v.startswith('"') else v) for k, v in _JAAS_OPTION.findall(body)}
        if "username" not in opts or "password" not in opts:
            raise CoordinationError(f"JAAS section {section!r} needs username= and password= "
                                    "(org.apache.zookeeper.server.auth.DigestLoginModule)")
        return ZkSaslCredentials(opts["username"], opts["password"])
    return None


def read_jaas_login(path: str | None) -> ZkSaslCredentials | None:
    """The SASL login to ZooKeeper of a broker or a tool: the ``Client`` section of the JAAS file
    ``path``, else (``path`` None) of the file named by ``-Djava.security.auth.login.config=`` in the KAFKA_OPTS
    environment variable (where Kafka's scripts pass it to the JVM; the last one counts); None
    if neither is set or the file has no Client section (Kafka then connects without SASL).
    Raises CoordinationError ``cannot read the ZooKeeper JAAS login from <path>: <reason>`` for
    an unreadable file or a Client section without username/password."""
    if path is None:
        for arg in shlex.split(os.environ.get("KAFKA_OPTS", "")):
            if arg.startswith("-Djava.security.auth.login.config="):
                path = arg.partition("=")[2]
    if not path:
        return None
    try:
        return read_jaas_client_section(Path(path).read_text())
    except (OSError, CoordinationError) as exc:
        raise CoordinationError(f"cannot read the ZooKeeper JAAS login from {path}: {exc}") from exc


# ---- values ---------------------------------------------------------------------------------


@attrs.frozen
class ZnodeStat:
    """A znode's Stat (ZooKeeper's data/Stat.java), in snake_case.

    czxid: zxid of the create (Kafka uses the broker registration's czxid as broker epoch);
    version: data version (Kafka's "zkVersion", the partition epoch of a state znode);
    ephemeral_owner: session id owning an ephemeral node, 0 for a persistent one;
    ctime_ms / mtime_ms: create / modify time, ms since the epoch.
    """

    czxid: int
    mzxid: int
    ctime_ms: int
    mtime_ms: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    data_length: int
    num_children: int
    pzxid: int

    @property
    def ephemeral(self) -> bool:
        """True for an ephemeral node (owned by a session)."""
        return self.ephemeral_owner != 0

    @classmethod
    def from_kazoo(cls, s: _KzStat) -> "ZnodeStat":
        """Convert kazoo's ZnodeStat namedtuple."""
        return cls(
            czxid=s.czxid, mzxid=s.mzxid, ctime_ms=s.ctime, mtime_ms=s.mtime, version=s.version,
            cversion=s.cversion, aversion=s.aversion, ephemeral_owner=s.ephemeralOwner,
            data_length=s.dataLength, num_children=s.numChildren, pzxid=s.pzxid,
        )


class SessionState(enum.Enum):
    """ZooKeeper session states as kafkalike's layers see them (kazoo's KazooState, with
    LOST split into EXPIRED and CLOSED)."""

    CONNECTED = "CONNECTED"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    CLOSED = "CLOSED"


@attrs.frozen
class SessionEvent:
    """A session state change. ``session_id`` is the session the client holds after the
    change (None when expired/closed); ``new_session`` is True on CONNECTED when this is a
    different session from the previous one (first connect, or reconnect after expiry);
    ``at`` is trio.current_time() when delivered."""

    state: SessionState
    session_id: int | None
    new_session: bool = False
    at: float = 0.0


class WatchEventType(enum.Enum):
    """What fired a watch (ZooKeeper's Watcher.Event.EventType; NONE is DISCONNECTED)."""

    CREATED = "CREATED"
    DELETED = "DELETED"
    CHANGED = "CHANGED"
    CHILD = "CHILD"
    DISCONNECTED = "DISCONNECTED"  # connection lost / session ended: re-read and re-arm


_EVENT_TYPES = {
    EventType.CREATED: WatchEventType.CREATED,
    EventType.DELETED: WatchEventType.DELETED,
    EventType.CHANGED: WatchEventType.CHANGED,
    EventType.CHILD: WatchEventType.CHILD,
    EventType.NONE: WatchEventType.DISCONNECTED,
}


@attrs.frozen
class WatchEvent:
    """A fired one-shot watch: ``type``, the watched ``path`` (chroot-relative), and ``kind``
    of watch that was armed ("data", "exists" or "children")."""

    type: WatchEventType
    path: str
    kind: str


@attrs.frozen
class ZkClientStatistics:
    """A ZooKeeperClient's state in one value (for the CLI, dashboards and tests).

    calls: ZooKeeper operations issued; watches_armed / watches_fired: one-shot watches set /
    delivered to trio; sessions: sessions opened (1 + reconnects after expiry);
    expirations: EXPIRED events seen; request_ms_total: milliseconds the calls took, summed;
    requests: ZooKeeper requests sent (a call is one; a pipelined batch one per read or multi).
    """

    connect: str
    state: SessionState
    session_id: str | None
    calls: int
    watches_armed: int
    watches_fired: int
    sessions: int
    expirations: int
    request_ms_total: float = 0.0  # wall time of the ``calls``, summed (ZooKeeperRequestLatencyMs)
    requests: int = 0  # ZooKeeper requests sent: 1 per call, one per znode/multi of a pipelined batch


class Watch:
    """A one-shot ZooKeeper watch surfaced in trio. ``await wait()`` returns the WatchEvent
    once it fired; ``fired`` is that event or None. Re-arm by calling the ``*_and_watch``
    method again."""

    def __init__(self, path: str, kind: str, channel: trio.MemorySendChannel[WatchEvent] | None) -> None:
        self.path = path
        self.kind = kind
        self.fired: WatchEvent | None = None
        self._event = trio.Event()
        self._channel = channel

    def __repr__(self) -> str:
        return f"<Watch {self.kind} {self.path} fired={self.fired}>"

    async def wait(self) -> WatchEvent:
        """Block until the watch fires; returns its event."""
        await self._event.wait()
        assert self.fired is not None
        return self.fired

    def _fire(self, ev: WatchEvent) -> None:  # runs in the trio thread
        if self.fired is not None:
            return
        self.fired = ev
        self._event.set()
        if self._channel is not None:
            _send_or_spawn(self._channel, ev)


def _send_or_spawn(channel: trio.MemorySendChannel[Any], value: Any) -> None:
    """Deliver ``value`` without blocking the trio thread's callback: send_nowait, or if the
    channel is full, a system task that waits for room. A closed channel drops it."""
    try:
        channel.send_nowait(value)
    except trio.WouldBlock:

        async def _send() -> None:
            try:
                await channel.send(value)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        trio.lowlevel.spawn_system_task(_send)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


# ---- multi-op ------------------------------------------------------------------------------


@attrs.frozen
class CheckOp:
    """Multi-op: require ``path`` to be at data ``version`` (ZooKeeper's Op.check)."""

    path: str
    version: int


@attrs.frozen
class CreateOp:
    """Multi-op: create ``path`` with ``data`` (result: the created path; with
    ``sequential`` it carries ZooKeeper's 10-digit suffix)."""

    path: str
    data: bytes = b""
    ephemeral: bool = False
    sequential: bool = False


@attrs.frozen
class SetDataOp:
    """Multi-op: set ``path``'s data if at ``version`` (-1: any). Result: its new ZnodeStat."""

    path: str
    data: bytes
    version: int = -1


@attrs.frozen
class DeleteOp:
    """Multi-op: delete ``path`` if at ``version`` (-1: any). Result: True."""

    path: str
    version: int = -1


Op = CheckOp | CreateOp | SetDataOp | DeleteOp
OpResult = str | ZnodeStat | bool


# ---- connect strings -------------------------------------------------------------------------


def split_connect_string(connect: str) -> tuple[str, str]:
    """``"h1:p1,h2:p2/chroot"`` -> (``"h1:p1,h2:p2"``, ``"/chroot"``); chroot "" if none.

    Raises CoordinationError for an empty host list or a malformed chroot.
    """
    hosts, slash, chroot = connect.strip().partition("/")
    if not hosts or any(not h.strip() for h in hosts.split(",")):
        raise CoordinationError(f"bad ZooKeeper connect string {connect!r}: expected host:port[,host:port...][/chroot]")
    if slash:
        chroot = "/" + chroot.strip("/")
        if chroot == "/":
            chroot = ""
        elif "//" in chroot:
            raise CoordinationError(f"bad chroot in ZooKeeper connect string {connect!r}")
    return hosts, chroot


def _check_path(path: str) -> str:
    if not path.startswith("/") or (len(path) > 1 and path.endswith("/")) or "//" in path:
        raise CoordinationError(f"bad znode path {path!r}: must be absolute, no trailing or double '/'")
    return path


# ---- the client ------------------------------------------------------------------------------


_POLL_READ = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR | select.POLLNVAL
_POLL_WRITE = select.POLLOUT | select.POLLHUP | select.POLLERR | select.POLLNVAL


def poll_select(rlist: Sequence[Any], wlist: Sequence[Any], xlist: Sequence[Any],
                timeout: float | None = None) -> tuple[list[Any], list[Any], list[Any]]:
    """``select.select``'s contract (kazoo's ``IHandler.select``) over ONE ``poll(2)`` call.

    rlist / wlist: objects with ``fileno()`` (or fds) to wait on for reading / writing;
    xlist: ignored, and always returned empty, as kazoo's own ``selector_select`` does;
    timeout: seconds, None = block. Returns the ready subsets (readable, writable, []): a hang-up
    or error counts as ready for both, so the following recv/send sees it. Raises ValueError
    for a closed object (fileno() -1), as kazoo's selector_select does.

    kazoo's threading handler builds an epoll selector for each of these calls (epoll_create,
    epoll_ctl per fd, epoll_wait, close: ~13 µs of CPU here), and its connection thread makes
    ~6 of them per request (before each send, before each of the two reads of a reply, and
    its loop); a poll object is a Python-side fd list and one syscall (~1.4 µs). No fd limit,
    unlike ``select.select`` (a broker with 10,000 logs open holds fds past 1024).
    """
    rfds = [_fileno(obj) for obj in rlist]
    wfds = [_fileno(obj) for obj in wlist]
    masks = dict.fromkeys(rfds, select.POLLIN | select.POLLPRI)
    for fd in wfds:
        masks[fd] = masks.get(fd, 0) | select.POLLOUT
    poller = select.poll()
    for fd, mask in masks.items():
        poller.register(fd, mask)
    ready = dict(poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))))
    readable = [obj for obj, fd in zip(rlist, rfds) if ready.get(fd, 0) & _POLL_READ]
    writable = [obj for obj, fd in zip(wlist, wfds) if ready.get(fd, 0) & _POLL_WRITE]
    return readable, writable, []


def _fileno(obj: Any) -> int:
    fd = obj if isinstance(obj, int) else obj.fileno()
    if fd < 0:
        raise ValueError("Invalid event mask or fd")
    return int(fd)


class _KazooHandler(SequentialThreadingHandler):
    """kazoo's threading handler with ``select`` = ``poll_select`` (one poll(2) per wait instead
    of a new epoll selector each time, the largest per-request CPU cost of kazoo's connection
    thread: docs/benchmarks.md "kazoo against ZooKeeper's Java client"), and, when
    ``source_host`` is set, every connection bound to that local source address.

    On loopback the kernel picks 127.0.0.1 as the source of every connection, whatever
    address the process serves on; binding the source to the process's own 127.0.0.x makes
    its ZooKeeper links distinguishable, so a chaos test can cut exactly one of them with an
    iptables rule on (source, destination).
    """

    def __init__(self, source_host: str | None = None) -> None:
        super().__init__()
        self.source_host = source_host

    def select(self, *args: Any, **kwargs: Any) -> tuple[list[Any], list[Any], list[Any]]:
        return poll_select(*args, **kwargs)

    def create_connection(self, *args: Any, **kwargs: Any) -> socket.socket:
        if self.source_host is None:
            return super().create_connection(*args, **kwargs)
        source = (self.source_host, 0)

        class _SocketModule:  # the socket module, with create_connection bound to `source`
            def __getattr__(self, name: str) -> Any:
                return getattr(socket, name)

            @staticmethod
            def create_connection(address: Any, timeout: Any = None) -> socket.socket:
                return socket.create_connection(address, timeout, source_address=source)

        return _kz_utils.create_tcp_connection(_SocketModule(), *args, **kwargs)


class ZooKeeperClient:
    """An async (trio) ZooKeeper client over kazoo. One per trio run; use from that run only.

    connect: ``host:port,...[/chroot]``. session_timeout_ms: requested session timeout
    (Kafka's zookeeper.session.timeout.ms, default 18000; ZooKeeper clamps it to
    [2, 20] x tickTime unless its config widens the range). connection_timeout_ms: how long
    ``start()`` waits for the first connection (Kafka's zookeeper.connection.timeout.ms).
    source_host: local address to connect from (e.g. the broker's own 127.0.0.x), so each
    process's ZooKeeper links have their own (source, destination) pair; None = kernel's
    choice (127.0.0.1 for every loopback connection). sync_reads: ``sync`` before every read,
    so reads also see other sessions' latest writes (one more round trip each; for tests and
    tools — see ``get``). sasl: authenticate with SASL DIGEST-MD5 (None: anonymous).
    acl_provider: ACLs of the znodes this client creates (None: world:anyone ALL, ZooKeeper's
    OPEN_ACL_UNSAFE, Kafka's choice when ``zookeeper.set.acl`` is false).

    Use ``async with ZooKeeperClient(...) as zk:`` or ``await zk.start()`` / ``await
    zk.close()``. Paths are chroot-relative. Errors are those of
    ``kafkalike.coordination.errors`` (NoNode, NodeExists, BadVersion, ConnectionLoss,
    SessionExpired, ...).
    """

    def __init__(
        self,
        connect: str,
        session_timeout_ms: int = 18000,
        connection_timeout_ms: int = 18000,
        name: str = "zk",
        source_host: str | None = None,
        sync_reads: bool = False,
        sasl: ZkSaslCredentials | None = None,
        acl_provider: AclProvider | None = None,
    ) -> None:
        self.connect = connect
        self.sasl = sasl
        self.acl_provider = acl_provider
        self.source_host = source_host
        self.sync_reads = sync_reads
        self.hosts, self.chroot = split_connect_string(connect)
        self.session_timeout_ms = session_timeout_ms
        self.connection_timeout_ms = connection_timeout_ms
        self.name = name
        self._kz: KazooClient | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._limiter = trio.CapacityLimiter(16)
        self._subscribers: list[trio.MemorySendChannel[SessionEvent]] = []
        self._closing = False
        self._state = SessionState.CLOSED
        self._session_id: int | None = None
        self._last_session_id: int | None = None  # kazoo-thread view, for new_session
        self._connected = trio.Event()
        self._calls = 0
        self._request_ms_total = 0.0
        self._requests = 0
        self._watches_armed = 0
        self._watches_fired = 0
        self._sessions = 0
        self._expirations = 0

    def statistics(self) -> ZkClientStatistics:
        """The client's state and counters right now."""
        return ZkClientStatistics(
            connect=self.connect, state=self._state, session_id=self.session_id_hex, calls=self._calls,
            watches_armed=self._watches_armed, watches_fired=self._watches_fired,
            sessions=self._sessions, expirations=self._expirations, request_ms_total=self._request_ms_total,
            requests=self._requests,
        )

    # -- lifecycle --

    async def __aenter__(self) -> "ZooKeeperClient":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _new_kazoo(self, hosts: str, **kw: Any) -> KazooClient:
        kw.setdefault("handler", _KazooHandler(self.source_host or None))
        if self.sasl is not None:
            kw.setdefault("sasl_options", self.sasl.sasl_options())
        return KazooClient(
            hosts=hosts,
            timeout=self.session_timeout_ms / 1000.0,
            connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": 1.0},
            **kw,
        )

    async def start(self) -> None:
        """Connect (creating the chroot if absent) and open a session.

        Raises ConnectTimeout if no server answers within connection_timeout_ms.
        """
        if self._kz is not None:
            raise CoordinationError("ZooKeeperClient already started")
        self._token = trio.lowlevel.current_trio_token()
        self._closing = False
        timeout_s = self.connection_timeout_ms / 1000.0
        if self.chroot:
            await self._run(functools.partial(self._ensure_chroot, timeout_s))
        kz = self._new_kazoo(self.hosts + self.chroot)
        kz.add_listener(self._on_kazoo_state)
        self._kz = kz
        try:
            await self._run(functools.partial(kz.start, timeout=timeout_s))
        except BaseException as exc:
            self._kz = None
            with trio.CancelScope(shield=True):  # never leave kazoo's threads behind
                await trio.to_thread.run_sync(self._stop_kazoo, kz)
            if isinstance(exc, _kx.AuthFailedError):  # the SASL login was rejected during start()
                raise self._auth_failed() from None
            raise
        # kazoo's start() can return before its CONNECTED listener call reached trio
        try:
            await self.wait_connected(timeout=timeout_s)
        except trio.TooSlowError:
            await self.close()
            raise ConnectTimeout(f"no ZooKeeper session within {timeout_s:.1f}s at {self.connect}") from None
        if self.sasl is not None:
            # kazoo reports CONNECTED before its SASL exchange; the first request is answered
            # only after it, so one round trip tells whether the login was accepted
            try:
                await self._run(functools.partial(kz.exists, "/"))
            except Exception as exc:
                if not (isinstance(exc, _kx.AuthFailedError) or kz.client_state == KeeperState.AUTH_FAILED):
                    raise
                await self.close()
                raise self._auth_failed() from None
        log.info("zk_connected", name=self.name, connect=self.connect, session_id=self.session_id_hex)

    def _ensure_chroot(self, timeout_s: float) -> None:
        kz = self._new_kazoo(self.hosts)
        try:
            kz.start(timeout=timeout_s)
            kz.ensure_path(self.chroot, acl=self._acl(self.chroot))
        except Exception as exc:
            if isinstance(exc, _kx.AuthFailedError) or kz.client_state == KeeperState.AUTH_FAILED:
                raise self._auth_failed() from None
            raise
        finally:
            self._stop_kazoo(kz)

    def _auth_failed(self) -> Exception:
        user = self.sasl.username if self.sasl is not None else None
        return _kx.AuthFailedError(f"ZooKeeper at {self.hosts} rejected the SASL DIGEST-MD5 login of user "
                                   f"{user!r} (wrong username or password?)")

    @staticmethod
    def _stop_kazoo(kz: KazooClient) -> None:
        try:
            kz.stop()
        finally:
            kz.close()

    async def close(self) -> None:
        """Close the session (its ephemeral nodes are deleted at once) and stop kazoo's
        threads. Subscribers get CLOSED and then end-of-channel."""
        kz, self._kz = self._kz, None
        if kz is None:
            return
        self._closing = True
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._stop_kazoo, kz)
            self._set_state(SessionEvent(SessionState.CLOSED, None))
            for ch in self._subscribers:
                ch.close()
            self._subscribers.clear()
        log.info("zk_closed", name=self.name)

    # -- session state --

    def _on_kazoo_state(self, state: str) -> bool:
        """kazoo listener (kazoo's connection thread): must not block."""
        if state == KazooState.CONNECTED:
            sid = self._kz.client_id[0] if self._kz is not None and self._kz.client_id else None
            new = sid != self._last_session_id
            self._last_session_id = sid
            ev = SessionEvent(SessionState.CONNECTED, sid, new_session=new)
        elif state == KazooState.SUSPENDED:
            ev = SessionEvent(SessionState.SUSPENDED, self._last_session_id)
        else:  # LOST: expired, auth failed, or closed by us
            ev = SessionEvent(SessionState.CLOSED if self._closing else SessionState.EXPIRED, None)
        self._to_trio(self._set_state, ev)
        return False  # stay registered

    def _to_trio(self, fn: Callable[..., None], *args: Any) -> None:
        token = self._token
        if token is None:
            return
        try:
            token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            pass

    def _set_state(self, ev: SessionEvent) -> None:  # trio thread
        if self._state == SessionState.CLOSED and ev.state == SessionState.CLOSED:
            return
        ev = attrs.evolve(ev, at=trio.current_time())
        prev = self._state
        self._state = ev.state
        if ev.state == SessionState.EXPIRED:
            self._expirations += 1
        if ev.state == SessionState.CONNECTED:
            self._sessions += int(ev.new_session)
            self._session_id = ev.session_id
            self._connected.set()
        else:
            if self._connected.is_set():
                self._connected = trio.Event()
            if ev.state != SessionState.SUSPENDED:
                self._session_id = None
        if prev != ev.state or ev.new_session:
            log.info("zk_session_state", name=self.name, state=ev.state.value,
                     session_id=None if ev.session_id is None else f"0x{ev.session_id:x}",
                     new_session=ev.new_session)
        for ch in list(self._subscribers):
            try:
                ch.send_nowait(ev)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(ch)

    def session_events(self) -> trio.MemoryReceiveChannel[SessionEvent]:
        """A new receive channel of every later SessionEvent (unbounded buffer: state changes
        are rare). Close it when done. Each call gives an independent subscription; subscribe
        before ``start()`` to also see the first CONNECTED."""
        send, recv = trio.open_memory_channel[SessionEvent](math.inf)
        self._subscribers.append(send)
        return recv

    @property
    def state(self) -> SessionState:
        """The session state as last delivered to trio."""
        return self._state

    @property
    def connected(self) -> bool:
        """True while the session is connected."""
        return self._state == SessionState.CONNECTED

    @property
    def session_id(self) -> int | None:
        """The current session id (None while expired/closed)."""
        return self._session_id

    @property
    def session_id_hex(self) -> str | None:
        """The session id as ZooKeeper prints it (``0x...``)."""
        return None if self._session_id is None else f"0x{self._session_id:x}"

    @property
    def session_password(self) -> bytes | None:
        """The current session's password (with session_id, enough to take the session over)."""
        kz = self._kz
        return kz.client_id[1] if kz is not None and kz.client_id else None

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Block until the session is CONNECTED. Raises trio.TooSlowError after ``timeout`` s."""
        with trio.fail_after(math.inf if timeout is None else timeout):
            while self._state != SessionState.CONNECTED:
                if self._kz is None:
                    raise CoordinationError("ZooKeeperClient is closed")
                await self._connected.wait()

    # -- plumbing --

    def _acl(self, path: str) -> list[ACL] | None:
        """The ACL a znode at ``path`` is created with (None: kazoo's OPEN_ACL_UNSAFE)."""
        return None if self.acl_provider is None else self.acl_provider(path)

    async def get_acls(self, path: str) -> tuple[list[ACL], ZnodeStat]:
        """``path``'s ACL list and stat (ZooKeeper getACL). Raises NoNode."""
        acls, stat = await self._run(functools.partial(self._client().get_acls, _check_path(path)))
        return list(acls), ZnodeStat.from_kazoo(stat)

    async def set_acls(self, path: str, acls: Sequence[ACL], version: int = -1) -> ZnodeStat:
        """Replace ``path``'s ACL if its ACL version is ``version`` (-1: any); ZooKeeper setACL.
        Raises NoNode, BadVersion, NoAuth (the session lacks ADMIN on it)."""
        stat = await self._run(functools.partial(self._client().set_acls, _check_path(path), list(acls), version))
        return ZnodeStat.from_kazoo(stat)

    def _client(self) -> KazooClient:
        if self._kz is None:
            raise CoordinationError("ZooKeeperClient is not started (or closed)")
        return self._kz

    async def _run(self, fn: Callable[[], T], requests: int = 1) -> T:
        self._calls += 1
        self._requests += requests
        started = time.perf_counter()
        try:
            return await trio.to_thread.run_sync(fn, abandon_on_cancel=True, limiter=self._limiter)
        finally:
            self._request_ms_total += (time.perf_counter() - started) * 1000.0

    def _watcher(self, path: str, kind: str, channel: trio.MemorySendChannel[WatchEvent] | None
                 ) -> tuple[Watch, Callable[[WatchedEvent], None]]:
        watch = Watch(path, kind, channel)
        self._watches_armed += 1

        def fire(ev: WatchEvent) -> None:  # trio thread
            if watch.fired is None:
                self._watches_fired += 1
            watch._fire(ev)

        def on_event(event: WatchedEvent) -> None:  # kazoo's callback thread
            ev = WatchEvent(_EVENT_TYPES.get(event.type, WatchEventType.DISCONNECTED), path, kind)
            self._to_trio(fire, ev)

        return watch, on_event

    # -- reads --

    async def get(self, path: str, *, sync: bool = False) -> tuple[bytes, ZnodeStat]:
        """The data and stat of ``path``. Raises NoNode.

        ZooKeeper serves reads from the server this session is connected to, which may lag the
        leader: a read sees this session's own writes, but another session's write only after
        ``sync=True`` (a ``sync(path)`` first) — as tests reading what a broker wrote need.
        """
        if sync or self.sync_reads:
            await self.sync(path)
        data, stat = await self._run(functools.partial(self._client().get, _check_path(path)))
        return data, ZnodeStat.from_kazoo(stat)

    async def get_many(self, paths: Sequence[str]) -> list[tuple[bytes, ZnodeStat] | None]:
        """The data and stat of each of ``paths``, in order (None where the node is absent).

        All requests are pipelined on the session's connection from one worker thread (kazoo's
        ``get_async``), as Kafka's KafkaZkClient sends a batch of GetDataRequests at once,
        instead of one thread hand-off per read: 5,000 reads take ~0.7-0.9 s here against
        ~1.6 s 16 at a time (docs/benchmarks.md). Raises ConnectionLoss / SessionExpired as
        any call (then none of the results is returned)."""
        if not paths:
            return []
        checked = [_check_path(p) for p in paths]
        if self.sync_reads:
            await self.sync(checked[0])
        kz = self._client()

        def finish(_i: int, r: Any) -> tuple[bytes, ZnodeStat] | None:
            try:
                data, stat = r.get()
            except NoNode:
                return None
            return data, ZnodeStat.from_kazoo(stat)

        return await self._pipelined([functools.partial(kz.get_async, p) for p in checked], finish)

    async def get_many_and_watch(
        self, paths: Sequence[str], channel: trio.MemorySendChannel[WatchEvent] | None = None
    ) -> list[tuple[bytes, ZnodeStat, Watch] | None]:
        """``get_and_watch`` for many paths, pipelined from one worker thread as ``get_many``:
        per path its data, stat and armed one-shot data watch, or None where the node is
        absent (nothing armed there). What the controller needs to read thousands of new topic
        znodes (Kafka's getReplicaAssignmentAndTopicIdForTopics sends them all at once)
        instead of one round trip each. Raises ConnectionLoss / SessionExpired as any call."""
        if not paths:
            return []
        checked = [_check_path(p) for p in paths]
        if self.sync_reads:
            await self.sync(checked[0])
        kz = self._client()
        watchers = [self._watcher(p, "data", channel) for p in checked]

        def finish(i: int, r: Any) -> tuple[bytes, ZnodeStat, Watch] | None:
            try:
                data, stat = r.get()
            except NoNode:
                return None
            return data, ZnodeStat.from_kazoo(stat), watchers[i][0]

        return await self._pipelined([functools.partial(kz.get_async, p, watch=w[1]) for p, w in zip(checked, watchers)],
                                     finish)

    async def _pipelined(self, starts: Sequence[Callable[[], Any]], finish: Callable[[int, Any], T]) -> list[T]:
        """Pipeline a batch from ONE worker thread: call every ``starts[i]()`` (a kazoo
        ``*_async`` call, which only queues the request on the session's connection; it returns
        the request's IAsyncResult, or None for nothing sent), then ``finish(i, result)`` for each
        in order. An exception ``finish`` lets through (ConnectionLoss, SessionExpired) abandons
        the whole batch, as for any call.

        The thread first waits for the LAST answer only: one session's answers arrive in the
        order of its requests (kazoo matches them by xid in order), so then every earlier one is
        there and ``finish`` takes them without blocking: one wake-up of this thread per batch
        instead of one per request, and kazoo's connection thread is not interrupted for each."""

        def run_all() -> list[T]:
            pending = [start() for start in starts]
            self._requests += len(pending) - pending.count(None)
            last = next((r for r in reversed(pending) if r is not None), None)
            if last is not None:
                last.wait()
            return [finish(i, r) for i, r in enumerate(pending)]

        return await self._run(run_all, requests=0)

    async def get_and_watch(
        self, path: str, channel: trio.MemorySendChannel[WatchEvent] | None = None
    ) -> tuple[bytes, ZnodeStat, Watch]:
        """Read ``path`` and arm a one-shot data watch (fires CHANGED or DELETED). Raises
        NoNode (and arms nothing) if absent — use exists_and_watch to wait for a create."""
        watch, cb = self._watcher(_check_path(path), "data", channel)
        if self.sync_reads:
            await self.sync(path)
        data, stat = await self._run(functools.partial(self._client().get, path, watch=cb))
        return data, ZnodeStat.from_kazoo(stat), watch

    async def exists(self, path: str, *, sync: bool = False) -> ZnodeStat | None:
        """The stat of ``path``, or None if it does not exist (``sync``: see ``get``)."""
        if sync or self.sync_reads:
            await self.sync(path)
        stat = await self._run(functools.partial(self._client().exists, _check_path(path)))
        return None if stat is None else ZnodeStat.from_kazoo(stat)

    async def exists_and_watch(
        self, path: str, channel: trio.MemorySendChannel[WatchEvent] | None = None
    ) -> tuple[ZnodeStat | None, Watch]:
        """Stat ``path`` and arm a one-shot watch that fires on CREATED, CHANGED or DELETED
        (Kafka's ZNodeChangeHandler registration is an exists watch)."""
        watch, cb = self._watcher(_check_path(path), "exists", channel)
        if self.sync_reads:
            await self.sync(path)
        stat = await self._run(functools.partial(self._client().exists, path, watch=cb))
        return (None if stat is None else ZnodeStat.from_kazoo(stat)), watch

    async def get_children(self, path: str, *, sync: bool = False) -> list[str]:
        """The child names of ``path``, sorted. Raises NoNode (``sync``: see ``get``)."""
        if sync or self.sync_reads:
            await self.sync(path)
        children = await self._run(functools.partial(self._client().get_children, _check_path(path)))
        return sorted(children)

    async def get_children_and_watch(
        self, path: str, channel: trio.MemorySendChannel[WatchEvent] | None = None
    ) -> tuple[list[str], Watch]:
        """Children of ``path`` (sorted) and a one-shot child watch (fires CHILD on a child
        created/deleted, DELETED if ``path`` goes). Raises NoNode."""
        watch, cb = self._watcher(_check_path(path), "children", channel)
        if self.sync_reads:
            await self.sync(path)
        children = await self._run(functools.partial(self._client().get_children, path, watch=cb))
        return sorted(children), watch

    async def sync(self, path: str = "/") -> None:
        """Make the connected server catch up with the leader before the next read of
        ``path`` (ZooKeeper's sync): reads after it see every write committed before it.
        A missing ``path`` is fine."""
        try:
            await self._run(functools.partial(self._client().sync, _check_path(path)))
        except NoNode:
            pass

    # -- writes --

    async def create(
        self,
        path: str,
        data: bytes = b"",
        *,
        ephemeral: bool = False,
        sequential: bool = False,
        make_parents: bool = False,
    ) -> tuple[str, ZnodeStat]:
        """Create ``path`` with ``data``; returns (created path, its stat) — the stat's czxid
        is what Kafka calls the broker epoch for /brokers/ids/<id>.

        Raises NodeExists, NoNode (parent missing and not make_parents),
        NoChildrenForEphemerals.
        """
        kz = self._client()
        if make_parents and self.acl_provider is not None and path.count("/") > 1:
            await self.ensure_paths([path.rsplit("/", 1)[0]])  # each parent with its own ACL
        created, stat = await self._run(
            functools.partial(
                kz.create, _check_path(path), bytes(data), acl=self._acl(path), ephemeral=ephemeral,
                sequence=sequential, makepath=make_parents, include_data=True,
            )
        )
        return created, ZnodeStat.from_kazoo(stat)

    async def set(self, path: str, data: bytes, version: int = -1) -> ZnodeStat:
        """Set ``path``'s data if its version is ``version`` (-1: unconditionally); returns
        the new stat. Raises BadVersion, NoNode."""
        stat = await self._run(functools.partial(self._client().set, _check_path(path), bytes(data), version))
        return ZnodeStat.from_kazoo(stat)

    async def delete(self, path: str, version: int = -1, recursive: bool = False) -> None:
        """Delete ``path`` (if at ``version``; -1 any). With ``recursive`` its subtree too.
        Raises NoNode, BadVersion, NotEmpty."""
        await self._run(functools.partial(self._client().delete, _check_path(path), version, recursive))

    async def ensure_path(self, path: str) -> None:
        """Create ``path`` and any missing parents as empty persistent nodes (no error if
        present)."""
        if self.acl_provider is not None:
            await self.ensure_paths([path])  # each missing parent with its own ACL
            return
        await self._run(functools.partial(self._client().ensure_path, _check_path(path)))

    async def ensure_paths(self, paths: Sequence[str]) -> None:
        """``ensure_path`` for many paths at once: every missing ancestor and path is created
        as an empty persistent node, one pipelined batch of creates per depth (NodeExists is
        fine), as Kafka's KafkaZkClient.createTopicPartitions pipelines its CreateRequests.
        Raises ConnectionLoss / SessionExpired as any call."""
        wanted: set[str] = set()
        for path in paths:
            parts = _check_path(path).split("/")[1:]
            wanted.update("/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1) if parts[0])
        kz = self._client()

        def finish(_i: int, r: Any) -> None:
            try:
                r.get()
            except NodeExists:
                pass

        for depth in sorted({p.count("/") for p in wanted}):
            level = sorted(p for p in wanted if p.count("/") == depth)
            await self._pipelined([functools.partial(kz.create_async, p, b"", acl=self._acl(p)) for p in level],
                                  finish)

    async def create_if_absent(self, path: str, data: bytes = b"") -> bool:
        """Create a persistent ``path`` (parents too) unless it exists; True if created
        (Kafka's KafkaZkClient.createRecursive ignoring NodeExists)."""
        try:
            await self.create(path, data, make_parents=True)
        except NodeExists:
            return False
        return True

    async def multi(self, ops: Sequence[Op]) -> list[OpResult]:
        """Apply ``ops`` atomically (ZooKeeper multi). Returns one result per op: created path
        (CreateOp), new ZnodeStat (SetDataOp), True (CheckOp, DeleteOp).

        Raises MultiOpFailed (nothing applied) with the failing op's index and error, e.g.
        BadVersion for a CheckOp on a stale version; ConnectionLoss / SessionExpired as any call.
        """
        if not ops:
            return []
        tx = self._transaction(ops)
        outcome = _multi_outcome(ops, await self._run(tx.commit))
        if isinstance(outcome, MultiOpFailed):
            raise outcome
        return outcome

    async def multi_many(self, batches: Sequence[Sequence[Op]]) -> list[list[OpResult] | MultiOpFailed]:
        """Apply each of ``batches`` as its own atomic multi-op, all pipelined at once; returns
        one outcome per batch, in order: its results (as ``multi`` returns them) if applied, or
        the ``MultiOpFailed`` (failing op's index and error: BadVersion, NoNode, NodeExists,
        ...; nothing of that batch applied) it would have raised. Batches are independent: one
        failing does not stop the others. An empty batch gives [].

        Every transaction is committed (kazoo ``commit_async``) from one worker thread before
        any answer is awaited, as Kafka's KafkaZkClient.updateLeaderAndIsr sends all its
        MultiRequests through retryRequestsUntilConnected and then sorts the responses, instead
        of one thread hand-off per multi-op. Raises ConnectionLoss / SessionExpired for the
        whole batch as any call does (some transactions may then have been applied: re-read).
        """
        txs = [self._transaction(ops) if ops else None for ops in batches]

        def finish(i: int, r: Any) -> list[OpResult] | MultiOpFailed:
            return [] if r is None else _multi_outcome(batches[i], r.get())

        if not batches:
            return []
        return await self._pipelined([(lambda: None) if tx is None else tx.commit_async for tx in txs], finish)

    def _transaction(self, ops: Sequence[Op]) -> Any:
        """A kazoo transaction holding ``ops`` (not yet committed). Raises CoordinationError
        for a bad path or something that is not an Op."""
        tx = self._client().transaction()
        for op in ops:
            if isinstance(op, CheckOp):
                tx.check(_check_path(op.path), op.version)
            elif isinstance(op, CreateOp):
                tx.create(_check_path(op.path), bytes(op.data), acl=self._acl(op.path), ephemeral=op.ephemeral,
                          sequence=op.sequential)
            elif isinstance(op, SetDataOp):
                tx.set_data(_check_path(op.path), bytes(op.data), op.version)
            elif isinstance(op, DeleteOp):
                tx.delete(_check_path(op.path), op.version)
            else:
                raise CoordinationError(f"not a multi-op: {op!r}")
        return tx


def _multi_outcome(ops: Sequence[Op], raw: Sequence[Any]) -> list[OpResult] | MultiOpFailed:
    """kazoo's per-op transaction results -> our results, or the MultiOpFailed naming the
    first op that failed (not RolledBack / RuntimeInconsistency, which only follow it)."""
    results: list[OpResult] = []
    failure: tuple[int, BaseException] | None = None
    for i, r in enumerate(raw):
        if isinstance(r, BaseException):
            if failure is None and not isinstance(r, (RolledBack, RuntimeInconsistency)):
                failure = (i, r)
            # kazoo puts a failed op's exception in its slot; such a list only travels inside
            # MultiOpFailed.results, never as the success value typed list[OpResult]
            results.append(r)  # type: ignore[arg-type]  # exception slot, see above
        elif isinstance(r, tuple) and hasattr(r, "czxid"):
            results.append(ZnodeStat.from_kazoo(r))
        else:
            results.append(r)
    if failure is not None:
        i, err = failure
        return MultiOpFailed(index=i, op=ops[i], error=err, results=results)
    return results


async def expire_session(connect: str, session_id: int, session_password: bytes, timeout: float = 10.0) -> None:
    """Force ZooKeeper to expire session ``session_id`` (for tests and chaos): open a second
    connection with the same session id and password and close it, which closes the session
    on the server (the classic trick of ZooKeeper's and Kafka's own tests). The original
    client then sees SUSPENDED, EXPIRED and, once kazoo opens a new session, CONNECTED.

    The trick can lose a race: the original client, dropped when the second connection takes
    the session over, may reconnect and take it back before the close arrives; ZooKeeper then
    refuses the close (the session moved) and the session lives on (seen in CI). So the close
    is repeated until a connection with the old id and password is given a *new* session,
    which is ZooKeeper saying the old one is gone. RuntimeError after ``attempts`` closes.
    """
    hosts, chroot = split_connect_string(connect)
    attempts = 5

    def _close_once() -> bool:
        """One connect-and-close; True once the old session no longer exists."""
        kz = KazooClient(hosts=hosts, client_id=(session_id, session_password), timeout=10.0)
        try:
            kz.start(timeout=timeout)
            return kz.client_id is None or kz.client_id[0] != session_id
        finally:
            kz.stop()
            kz.close()

    for attempt in range(1, attempts + 1):
        if await trio.to_thread.run_sync(_close_once, abandon_on_cancel=True):
            log.info("zk_session_expired_forcibly", session_id=f"0x{session_id:x}", closes=attempt - 1)
            return
    raise RuntimeError(f"ZooKeeper session 0x{session_id:x} outlived {attempts} forced closes")


def now_ms() -> int:
    """Wall-clock ms since the epoch (the timestamps Kafka writes into znodes)."""
    return int(time.time() * 1000)
