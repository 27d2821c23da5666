"""``kafkalike cluster up`` after a kill -9, and broker processes that die during start-up
(first bullet): real ZooKeeper, real broker processes, the real CLI."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import trio

from kafkalike.cluster import process
from kafkalike.cluster.local_cluster import ClusterError, LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination.kafka_zk_client import KafkaZkClient, RegisteredBroker
from tests.fixtures_cluster import MakeCluster


def registration(cluster: LocalCluster, broker_id: int) -> RegisteredBroker | None:
    """/brokers/ids/<broker_id> as ZooKeeper has it now (czxid = broker epoch, owner session)."""
    async def read() -> RegisteredBroker | None:
        async with ZooKeeperClient(cluster.zk_connect, name="test", sync_reads=True) as zk:
            return await KafkaZkClient(zk).get_broker(broker_id)

    return trio.run(read)


def last_line(path: Path) -> str:
    return process.tail(path, 1).strip()


def test_cluster_up_right_after_kill_9_waits_out_the_old_registration_then_starts_the_broker(
        make_cluster: MakeCluster) -> None:
    """``cluster up`` at once after kill -9 says it waits for the old session's registration,
    then returns with the broker running under a new session and every broker ready."""
    cluster = make_cluster(brokers=2, overrides={"zookeeper.session.timeout.ms": "10000"})
    old = registration(cluster, 2)
    old_pid = cluster.broker_pid(2)
    assert old is not None and cluster.kill_broker(2)
    # the old process is gone but its session (10 s) still holds the registration
    out = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "cluster", "up", "--dir", str(cluster.base_dir)],
                         capture_output=True, text=True, timeout=75)  # < the 90 s it used to hang
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"^broker 2: waiting up to 10 s for the previous session's registration to expire",
                     out.stdout, re.M), out.stdout
    new = registration(cluster, 2)
    assert new is not None and new.session_id != old.session_id and new.broker_epoch > old.broker_epoch
    assert cluster.broker_alive(2) and cluster.broker_pid(2) != old_pid
    assert cluster.metadata_broker_ids(1) == [1, 2] and cluster.metadata_broker_ids(2) == [1, 2]


def test_wait_ready_fails_at_once_with_the_log_tail_when_a_broker_process_is_gone(
        make_cluster: MakeCluster) -> None:
    """A broker process that is gone while ``wait_ready`` waits for it is reported at once,
    with its last log line, not after the timeout."""
    cluster = make_cluster(brokers=1)
    assert cluster.kill_broker(1)
    started = time.monotonic()
    with pytest.raises(ClusterError,
                       match=r"broker 1 \(pid \d+\) exited before it was ready \(killed by SIGKILL\)") as err:
        cluster.wait_ready([1], timeout=60)
    assert time.monotonic() - started < 20  # the timeout is 60 s; reporting takes no waiting
    assert last_line(cluster.log_path(1)) in str(err.value)


def test_start_fails_fast_with_the_last_log_line_when_a_broker_cannot_bind_its_port(
        tmp_path: Path, zk_connect: str) -> None:
    """A broker whose port is taken exits during start-up; ``start`` fails well before its
    timeout with the broker's last log lines, which name the taken address."""
    port = find_free_base_port(["127.0.0.1"], low=30000, high=32000)
    cluster = LocalCluster(tmp_path / "c", brokers=1, base_port=port, zookeeper_connect=zk_connect,
                           chroot=f"kafkalike-{uuid.uuid4().hex[:10]}")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        started = time.monotonic()
        try:
            with pytest.raises(ClusterError,
                               match=r"broker 1 \(pid \d+\) exited during start-up \(exit code 1\)") as err:
                cluster.start(timeout=60)
        finally:
            cluster.stop()
    assert time.monotonic() - started < 40  # the timeout is 60 s
    assert "Address already in use" in str(err.value)
    assert last_line(cluster.log_path(1)) in str(err.value)


async def test_a_registration_held_by_a_live_session_fails_start_after_the_session_timeout(
        tmp_path: Path, zk_connect: str) -> None:
    """If /brokers/ids/1 stays held by a live session (another broker with id 1 on this
    ZooKeeper), ``start`` gives up after the session timeout and a margin, naming that
    session, instead of taking the foreign registration for its broker's."""
    port = find_free_base_port(["127.0.0.1"], low=30000, high=32000)
    cluster = LocalCluster(tmp_path / "c", brokers=1, base_port=port, zookeeper_connect=zk_connect,
                           chroot=f"kafkalike-{uuid.uuid4().hex[:10]}",
                           overrides={"zookeeper.session.timeout.ms": "3000"})
    said: list[str] = []
    async with ZooKeeperClient(cluster.zk_connect, name="other-broker-1") as zk:
        await KafkaZkClient(zk).create_top_level_paths()
        await zk.create("/brokers/ids/1", b'{"version":5,"host":"127.0.0.9","port":1,"endpoints":[]}',
                        ephemeral=True)
        try:
            with pytest.raises(ClusterError, match=rf"/brokers/ids/1 is still held by session {zk.session_id_hex}"):
                await trio.to_thread.run_sync(lambda: cluster.start(timeout=60, say=said.append))
        finally:
            await trio.to_thread.run_sync(cluster.stop)
    assert said and said[0].startswith("broker 1: waiting up to 3 s for the previous session's registration")
    assert cluster.broker_pid(1) is None  # never started: it would have refused the id
