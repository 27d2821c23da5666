"""The socket server's memory and connection limits, on a real broker process.

Each test starts one kafkalike broker process (``kafkalike broker start``) against the real
ZooKeeper ensemble, optionally under a low RLIMIT_NOFILE (``prlimit``), talks to it over raw
TCP sockets, reads its memory (``/proc/<pid>/status`` VmRSS) and CPU time
(``/proc/<pid>/stat``), and stops it by pid afterwards, pass or fail.
"""

from __future__ import annotations

import os
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import trio

from kafkalike.cluster.zk_ensemble import find_free_base_port
from tests.fixtures_cluster import create_topic

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")

MIB = 1024 * 1024


class BrokerProcess:
    """A broker process started by ``broker_process``: pid, port, log dir, log file."""

    def __init__(self, pid: int, port: int, log_dir: Path, log_file: Path) -> None:
        self.pid, self.port, self.log_dir, self.log_file = pid, port, log_dir, log_file

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return Path(f"/proc/{self.pid}/status").read_text().find("State:\tZ") < 0

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")


@contextmanager
def broker_process(tmp_path: Path, zk: str, nofile: int | None = None, **overrides: str) -> Iterator[BrokerProcess]:
    """Start ``kafkalike broker start`` (under ``prlimit --nofile`` when given) and wait until
    it answers ApiVersions; SIGTERM (then SIGKILL) by pid when the block ends."""
    port = find_free_base_port(["127.0.0.1"], low=34000, high=36000)
    log_dir = tmp_path / "logs"
    props = {
        "broker.id": "1",
        "listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "log.dirs": str(log_dir),
        "zookeeper.connect": zk,
        "zookeeper.session.timeout.ms": "6000",
        "offsets.topic.replication.factor": "1",
        "controlled.shutdown.enable": "false",
    }
    props.update({k.replace("_", "."): v for k, v in overrides.items()})
    config = tmp_path / "server.properties"
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    argv = [sys.executable, "-m", "kafkalike.cli.main", "broker", "start", "--config", str(config)]
    if nofile is not None:
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            pytest.skip("needs prlimit (util-linux)")
        argv = [prlimit, f"--nofile={nofile}:{nofile}", "--", *argv]
    log_file = tmp_path / "broker.log"
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    broker = BrokerProcess(proc.pid, port, log_dir, log_file)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"broker exited: {broker.log_text()[-2000:]}"
            with suppress(OSError):
                with connect(port, timeout=2) as s:
                    if api_versions(s, 1):
                        break
            assert time.monotonic() < deadline, f"broker not serving: {broker.log_text()[-2000:]}"
            time.sleep(0.2)
        yield broker
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def connect(port: int, timeout: float = 5.0, source: str | None = None) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    return s


def api_versions_frame(correlation_id: int) -> bytes:
    """ApiVersions v0: header (api key 18, version 0, correlation id, client id), empty body."""
    client = b"limits-test"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client)) + client
    return struct.pack(">i", len(body)) + body


def read_response_id(s: socket.socket) -> int | None:
    """The correlation id of the next response on ``s``, None if closed or timed out."""
    try:
        head = b""
        while len(head) < 8:
            chunk = s.recv(8 - len(head))
            if not chunk:
                return None
            head += chunk
        size, correlation_id = struct.unpack(">ii", head)
        left = size - 4
        while left > 0:
            chunk = s.recv(min(left, 65536))
            if not chunk:
                return None
            left -= len(chunk)
        return correlation_id
    except (TimeoutError, socket.timeout, ConnectionError):
        return None


def api_versions(s: socket.socket, correlation_id: int) -> bool:
    """Send ApiVersions on ``s`` and read its answer (within the socket's timeout)."""
    s.sendall(api_versions_frame(correlation_id))
    return read_response_id(s) == correlation_id


def closed_by_peer(s: socket.socket, timeout: float = 5.0) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionError:
        return True
    except (TimeoutError, socket.timeout):
        return False


def wait_for(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_declared_100_mib_frames_do_not_grow_the_broker_and_it_keeps_serving(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """10 connections each declaring a 100 MiB frame (4 bytes sent) leave RSS within 50 MB; ApiVersions answers."""
    with broker_process(tmp_path, zk_chroot_connect) as broker:
        time.sleep(1.0)
        before = broker.rss_bytes()
        attackers = [connect(broker.port) for _ in range(10)]
        try:
            for s in attackers:
                s.sendall(struct.pack(">i", 100 * MIB))
            time.sleep(1.0)
            with connect(broker.port) as probe:
                assert api_versions(probe, 7)
            time.sleep(0.5)
            grown = broker.rss_bytes() - before
            assert grown < 50 * MIB, f"RSS grew by {grown / MIB:.0f} MiB"
        finally:
            for s in attackers:
                s.close()
        assert broker.alive()


def send_round_robin(conns: list[socket.socket], data: bytes, sent: list[int], upto: int, deadline: float) -> None:
    """Send ``data[sent[i]:upto]`` on every connection i, to whichever is writable (a muted
    one just waits), counting in ``sent``, until done or ``deadline``."""
    for s in conns:
        s.setblocking(False)
    while min(sent) < upto and time.monotonic() < deadline:
        pending = [s for i, s in enumerate(conns) if sent[i] < upto]
        _, writable, _ = select.select([], pending, [], 0.2)
        for s in writable:
            i = conns.index(s)
            with suppress(BlockingIOError):
                sent[i] += s.send(data[sent[i]:min(upto, sent[i] + MIB)])


def test_queued_max_request_bytes_bounds_partly_received_frames(tmp_path: Path, zk_chroot_connect: str) -> None:
    """With a 20 MiB pool, 10 connections sending 8 MiB of 20 MiB frames hold ~20 MiB, not 80+; all complete."""
    with broker_process(tmp_path, zk_chroot_connect, socket_request_max_bytes=str(20 * MIB),
                        queued_max_request_bytes=str(20 * MIB)) as broker:
        time.sleep(1.0)
        before = broker.rss_bytes()
        conns = [connect(broker.port) for _ in range(10)]
        try:
            # api key 32767 (unknown): once complete the broker closes the connection
            data = struct.pack(">ihhi", 20 * MIB, 32767, 0, 1) + bytes(20 * MIB - 8)
            sent = [0] * len(conns)
            send_round_robin(conns, data, sent, 8 * MIB, time.monotonic() + 2)  # muted ones fill up
            time.sleep(1.0)
            grown = broker.rss_bytes() - before
            assert grown < 60 * MIB, f"RSS grew by {grown / MIB:.0f} MiB"
            # finish every frame: each completes (nothing is stuck) and is refused
            send_round_robin(conns, data, sent, len(data), time.monotonic() + 90)
            assert min(sent) == len(data), f"frames stuck: {[n // MIB for n in sent]} MiB sent"
            for s in conns:
                s.setblocking(True)
                assert closed_by_peer(s, timeout=30)
        finally:
            for s in conns:
                s.close()
        with connect(broker.port) as probe:
            assert api_versions(probe, 8)
        assert broker.log_text().count("unknown api key") == 10


def test_max_connections_makes_accept_wait_and_serves_waiting_clients_after_closes(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """Over max.connections new clients wait (not refused); closing served ones lets them in."""
    with broker_process(tmp_path, zk_chroot_connect, max_connections="6") as broker:
        conns = [connect(broker.port, timeout=1.5) for _ in range(10)]
        try:
            for i, s in enumerate(conns):
                s.sendall(api_versions_frame(100 + i))
            time.sleep(1.5)
            readable, _, _ = select.select(conns, [], [], 0)
            served = [s for s in conns if s in readable and read_response_id(s) is not None]
            waiting = [s for s in conns if s not in served]
            assert 1 <= len(served) <= 6 and len(waiting) >= 4
            for s in served:
                s.close()
            for i, s in enumerate(waiting[:len(served)]):
                s.settimeout(10)
                assert read_response_id(s) is not None, "a waiting client was not served after closes"
        finally:
            for s in conns:
                s.close()
        with connect(broker.port, timeout=10) as probe:
            assert api_versions(probe, 9)
        assert "connections_at_limit" in broker.log_text()


def test_max_connections_per_ip_override_closes_the_extra_connection_at_once(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """max.connections.per.ip.overrides=127.0.0.3:2: a third connection from it is closed; others unaffected."""
    with broker_process(tmp_path, zk_chroot_connect, max_connections_per_ip="50",
                        max_connections_per_ip_overrides="127.0.0.3:2") as broker:
        first, second = connect(broker.port, source="127.0.0.3"), connect(broker.port, source="127.0.0.3")
        try:
            assert api_versions(first, 1) and api_versions(second, 2)
            third = connect(broker.port, source="127.0.0.3")
            assert closed_by_peer(third)
            third.close()
            with connect(broker.port, source="127.0.0.4") as other:
                assert api_versions(other, 3)
            first.close()
            time.sleep(0.3)
            with connect(broker.port, source="127.0.0.3") as again:
                assert api_versions(again, 4)
        finally:
            first.close()
            second.close()
        assert "connection_refused_per_ip" in broker.log_text()


def test_low_descriptor_limit_keeps_checkpoints_and_new_clients_working(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """Under RLIMIT_NOFILE=256, 300 connections: checkpoints keep being written, no spin, clients served after closes."""
    with broker_process(tmp_path, zk_chroot_connect, nofile=256,
                        replica_high_watermark_checkpoint_interval_ms="300") as broker:
        create_topic(f"127.0.0.1:{broker.port}", "fd-limit", 1, 1, request_timeout_ms=20000)
        checkpoint = broker.log_dir / "replication-offset-checkpoint"
        wait_for(lambda: checkpoint.exists() and "fd-limit" in checkpoint.read_text(), 30, "HW checkpoint")
        conns = []
        try:
            for _ in range(300):
                conns.append(connect(broker.port, timeout=1))  # the kernel's backlog completes them
            time.sleep(1.0)
            assert broker.open_fds() < 256
            cpu_before = broker.cpu_seconds()
            mtime_before = checkpoint.stat().st_mtime_ns
            time.sleep(3.0)
            assert checkpoint.stat().st_mtime_ns > mtime_before, "HW checkpoint stopped"
            cpu = broker.cpu_seconds() - cpu_before
            assert cpu < 1.5, f"broker used {cpu:.2f} s CPU in 3 s at the limit"
            with connect(broker.port, timeout=1.5) as late:
                assert not api_versions(late, 5)  # waits in the backlog while the broker is full
            for s in conns[:200]:  # the 100 still queued (and late) get the freed slots first
                s.close()
            with connect(broker.port, timeout=15) as probe:
                assert api_versions(probe, 6)
        finally:
            for s in conns:
                s.close()
        log_text = broker.log_text()
        assert "hw_checkpoint_failed" not in log_text and "Too many open files" not in log_text
        assert broker.alive()


def test_partitions_created_after_start_up_shrink_the_connection_bound(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Under RLIMIT_NOFILE=256, 100 partitions created after start-up take descriptors; connections yield them."""
    with broker_process(tmp_path, zk_chroot_connect, nofile=256,
                        replica_high_watermark_checkpoint_interval_ms="300") as broker:
        create_topic(f"127.0.0.1:{broker.port}", "many", 100, 1, request_timeout_ms=20000)
        checkpoint = broker.log_dir / "replication-offset-checkpoint"
        wait_for(lambda: checkpoint.exists() and checkpoint.read_text().count("many") == 100, 60, "HW checkpoint")
        conns = []
        try:
            for _ in range(250):
                conns.append(connect(broker.port, timeout=1))
            time.sleep(1.5)
            assert broker.open_fds() < 256
            mtime_before = checkpoint.stat().st_mtime_ns
            time.sleep(1.5)
            assert checkpoint.stat().st_mtime_ns > mtime_before, "HW checkpoint stopped"
        finally:
            for s in conns:
                s.close()
        log_text = broker.log_text()
        assert "connection_limit_changed" in log_text
        assert "hw_checkpoint_failed" not in log_text and "Too many open files" not in log_text


def test_accept_failing_with_emfile_backs_off_and_logs_rarely(tmp_path: Path, zk_chroot_connect: str) -> None:
    """When descriptors run out anyway (limit lowered under the broker), accept backs off and logs once, no flood."""
    if shutil.which("prlimit") is None:
        pytest.skip("needs prlimit (util-linux)")
    with broker_process(tmp_path, zk_chroot_connect) as broker:
        # the controller's channel and clients are set up first
        create_topic(f"127.0.0.1:{broker.port}", "emfile", 1, 1, request_timeout_ms=20000)
        time.sleep(0.5)
        limit = broker.open_fds() + 3
        subprocess.run(["prlimit", f"--pid={broker.pid}", f"--nofile={limit}:20000"], check=True)
        conns = []
        try:
            for _ in range(10):
                conns.append(connect(broker.port, timeout=1))
            cpu_before = broker.cpu_seconds()
            time.sleep(3.0)
            cpu = broker.cpu_seconds() - cpu_before
            assert cpu < 1.5, f"broker used {cpu:.2f} s CPU in 3 s"
            log_text = broker.log_text()
            emfile_lines = [ln for ln in log_text.splitlines()
                            if "accept" in ln.lower() and ("EMFILE" in ln or "Too many open files" in ln)]
            assert 1 <= len(emfile_lines) <= 2, emfile_lines[:5]
            subprocess.run(["prlimit", f"--pid={broker.pid}", "--nofile=20000:20000"], check=True)
            for s in conns[:3]:
                s.close()
            with connect(broker.port, timeout=15) as probe:
                assert api_versions(probe, 11)
        finally:
            for s in conns:
                s.close()
        assert broker.alive()


async def _api_versions_async(stream: "trio.SocketStream", correlation_id: int, timeout: float) -> bool:
    """ApiVersions over a trio stream; True if answered within ``timeout`` seconds."""
    await stream.send_all(api_versions_frame(correlation_id))
    got = b""
    with trio.move_on_after(timeout):
        while len(got) < 4 or len(got) < 4 + struct.unpack(">i", got[:4])[0]:
            chunk = await stream.receive_some()
            if not chunk:
                return False
            got += chunk
        return struct.unpack(">i", got[4:8])[0] == correlation_id
    return False


async def test_inter_broker_listener_is_let_in_at_max_connections_and_the_oldest_idle_client_closed(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """At max.connections the inter-broker listener still accepts; the least recently active client is closed."""
    from tests.broker.broker_helpers import running_broker

    async with running_broker(tmp_path, zk_chroot_connect, max_connections="4",
                              listeners="PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
                              **{"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
                                 "inter.broker.listener.name": "INTERNAL"}) as server:
        ports = {b.listener_name: b.port for b in server.bound_listeners}
        ss = server.socket_server
        assert ss is not None and ss.connection_limit == 4
        clients = []
        try:
            while ss.open_connections < 4:
                stream = await trio.open_tcp_stream("127.0.0.1", ports["PLAINTEXT"])
                clients.append(stream)
                assert await _api_versions_async(stream, len(clients), 10)
            oldest = clients[0]
            for i, stream in enumerate(clients[1:]):  # every client but the first is active again
                assert await _api_versions_async(stream, 100 + i, 10)
            blocked = await trio.open_tcp_stream("127.0.0.1", ports["PLAINTEXT"])
            clients.append(blocked)
            assert not await _api_versions_async(blocked, 200, 0.5)  # accept waits
            internal = await trio.open_tcp_stream("127.0.0.1", ports["INTERNAL"])
            clients.append(internal)
            assert await _api_versions_async(internal, 300, 10)
            with trio.fail_after(10):
                assert await oldest.receive_some(1) == b""  # least recently active: closed
        finally:
            for stream in clients:
                await trio.aclose_forcefully(stream)


def test_connection_config_follows_kafkas_validate_values() -> None:
    """Kafka's rules: per-ip 0 needs overrides; a bounded pool must hold the largest request; overrides parse host:count."""
    from kafkalike.broker.socket_server import check_connection_config, parse_per_ip_overrides

    assert parse_per_ip_overrides("localhost:7, 10.0.0.1:0,[::1]:3") == {"localhost": 7, "10.0.0.1": 0, "::1": 3}
    assert parse_per_ip_overrides("") == {}
    for bad in ("localhost", "host:x", "host:-1", ":5"):
        with pytest.raises(ValueError, match="max.connections.per.ip.overrides"):
            parse_per_ip_overrides(bad)
    with pytest.raises(ValueError, match="can be set to zero only if"):
        check_connection_config(0, {}, -1, 100)
    check_connection_config(0, {"127.0.0.1": 5}, -1, 100)
    with pytest.raises(ValueError, match="queued.max.request.bytes must be larger or equal"):
        check_connection_config(10, {}, 99, 100)
    check_connection_config(10, {}, 100, 100)
    check_connection_config(10, {}, -1, 100)


def test_descriptor_bound_keeps_a_reserve_below_the_open_files_limit() -> None:
    """Connections allowed = limit - own descriptors - max(64, limit/8), at least 1."""
    from kafkalike.broker.socket_server import INT_MAX, descriptor_connection_limit

    assert descriptor_connection_limit(256, 15) == 256 - 15 - 64
    assert descriptor_connection_limit(65536, 1000) == 65536 - 1000 - 8192
    assert descriptor_connection_limit(100, 90) == 1
    assert descriptor_connection_limit(resource.RLIM_INFINITY, 10) == INT_MAX


async def test_broker_refuses_to_start_with_a_pool_smaller_than_the_largest_request(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """queued.max.request.bytes below socket.request.max.bytes stops start-up with one line, as Kafka's check does."""
    from kafkalike.broker.kafka_server import BrokerStartupError, KafkaServer
    from tests.broker.broker_helpers import make_config

    server = KafkaServer(make_config(tmp_path, zk_chroot_connect, queued_max_request_bytes="1000"))
    with pytest.raises(BrokerStartupError, match=r"^queued\.max\.request\.bytes must be larger or equal to "
                                                 r"socket\.request\.max\.bytes$"):
        await server.run()
