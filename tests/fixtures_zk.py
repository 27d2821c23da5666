"""pytest fixtures for a REAL ZooKeeper ensemble (Debian's jars, JVM processes), registered as a
plugin in tests/conftest.py.

zk_ensemble         session: a 3-node ensemble on 127.0.0.1-3, random free ports, in a tmp
                    dir; started once, stopped by pid at the end of the session (also at exit;
                    and the nodes get SIGKILL if pytest itself is killed). Restart killed
                    nodes from the main thread (ens.start_node / ens.start), not from
                    trio.to_thread, so they keep that guarantee
zk_connect          session: its connect string "127.0.0.1:P,127.0.0.2:P,127.0.0.3:P"
zk_chroot_connect   per test: the connect string with a fresh chroot ("/t-<hex>"), so tests
                    never see each other's znodes; the chroot is created by ZooKeeperClient
zk_client           per test (async): a started ZooKeeperClient on zk_chroot_connect,
                    session timeout 4 s, closed after the test; it syncs before every read
                    (sync_reads), so it sees what brokers/other sessions just wrote
zk_standalone       session, lazy: a 1-node (standalone) ensemble
zk_expire           an async helper: ``await zk_expire(client)`` expires that client's
                    session on the server (second connection with the same id+password,
                    closed) and returns once the client has seen EXPIRED
zk_ensemble_restored  per test: the session ensemble, and after the test every node is
                    running and serving again (SIGCONT + restart), for tests that kill nodes
"""

from __future__ import annotations

import atexit
import os
import signal
import uuid
from typing import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import trio

from kafkalike.cluster import process
from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port
from kafkalike.coordination import SessionState, ZooKeeperClient, expire_session


def _start_ensemble(base_dir: str, nodes: int, first_host: int = 1) -> ZkEnsemble:
    hosts = [f"127.0.0.{first_host + i}" for i in range(nodes)]
    last_error: Exception | None = None
    for _ in range(3):  # a port can be taken between the probe and the JVM's bind
        ens = ZkEnsemble(base_dir, nodes=nodes, base_port=find_free_base_port(hosts), first_host=first_host,
                         die_with_parent=True)  # no JVM outlives a killed pytest
        atexit.register(ens.stop)
        try:
            ens.start(timeout=60)
            return ens
        except Exception as exc:
            last_error = exc
            ens.destroy()
    raise RuntimeError(f"could not start a {nodes}-node ZooKeeper ensemble: {last_error}")


@pytest.fixture(scope="session")
def zk_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkEnsemble]:
    """A real 3-node ZooKeeper ensemble for the whole test session."""
    ens = _start_ensemble(str(tmp_path_factory.mktemp("zk3")), nodes=3)
    try:
        yield ens
    finally:
        for node_id in range(1, ens.nodes + 1):
            pid = ens.pid(node_id)
            if pid is not None:
                process.signal_pid(pid, signal.SIGCONT)
        ens.stop()


@pytest.fixture(scope="session")
def zk_connect(zk_ensemble: ZkEnsemble) -> str:
    """The 3-node ensemble's connect string (no chroot)."""
    return zk_ensemble.connect_string


@pytest.fixture(scope="session")
def zk_standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkEnsemble]:
    """A real 1-node (standalone) ZooKeeper, started on first use."""
    ens = _start_ensemble(str(tmp_path_factory.mktemp("zk1")), nodes=1, first_host=1)
    try:
        yield ens
    finally:
        ens.stop()


@pytest.fixture
def zk_chroot_connect(zk_connect: str) -> str:
    """The ensemble's connect string with a fresh chroot for this test only."""
    return f"{zk_connect}/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def zk_client(zk_chroot_connect: str) -> AsyncIterator[ZooKeeperClient]:
    """A started ZooKeeperClient (session timeout 4 s) in this test's own chroot."""
    client = ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000, connection_timeout_ms=10000, name="test",
                             sync_reads=True)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def _expire(client: ZooKeeperClient, timeout: float = 20.0) -> None:
    sid, password = client.session_id, client.session_password
    assert sid is not None and password is not None, "client has no session to expire"
    events = client.session_events()
    try:
        await expire_session(client.connect, sid, password)
        with trio.fail_after(timeout):
            async for ev in events:
                if ev.state == SessionState.EXPIRED:
                    return
    finally:
        events.close()


@pytest.fixture
def zk_expire() -> Callable[[ZooKeeperClient], Awaitable[None]]:
    """``await zk_expire(client)``: expire ``client``'s session; returns once it saw EXPIRED."""
    return _expire


@pytest.fixture
def zk_ensemble_restored(zk_ensemble: ZkEnsemble) -> Iterator[ZkEnsemble]:
    """The session ensemble; after the test, stopped/killed nodes are resumed and restarted."""
    try:
        yield zk_ensemble
    finally:
        for node_id in range(1, zk_ensemble.nodes + 1):
            pid = zk_ensemble.pid(node_id)
            if pid is not None:
                os.kill(pid, signal.SIGCONT)
        zk_ensemble.start(timeout=60)
