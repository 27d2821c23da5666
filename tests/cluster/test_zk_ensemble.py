"""Real ZooKeeper ensembles (1 and 3 JVM nodes): quorum, modes from srvr, failover, start-up
errors, the ``kafkalike zk`` commands, and the pid-file process helpers they stand on."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafkalike.cluster import process
from kafkalike.cluster.zk_ensemble import (
    ZkEnsemble,
    ZkEnsembleError,
    find_free_base_port,
    four_letter_word,
    parse_srvr,
)


def test_three_node_ensemble_has_one_leader_two_followers(zk_ensemble: ZkEnsemble) -> None:
    """A 3-node ensemble forms a quorum: srvr reports exactly one leader and two followers."""
    statuses = zk_ensemble.status()
    assert [s.alive for s in statuses] == [True, True, True]
    assert sorted(str(s.mode) for s in statuses) == ["follower", "follower", "leader"]
    hosts = {s.address.split(":")[0] for s in statuses}
    assert hosts == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}  # each node its own address
    assert zk_ensemble.connect_string == ",".join(s.address for s in statuses)


def test_node_listens_only_on_its_own_address(zk_ensemble: ZkEnsemble) -> None:
    """Node 2 bound to 127.0.0.2 answers there and not on 127.0.0.1 at the same port."""
    spec = zk_ensemble.spec(2)
    assert parse_srvr(four_letter_word(spec.host, spec.client_port))["Mode"] in ("leader", "follower")
    if zk_ensemble.spec(1).client_port != spec.client_port:
        pytest.skip("nodes do not share a port")
    # 127.0.0.1:port is node 1, a different process: its srvr must not be node 2's
    with socket.create_connection(("127.0.0.2", spec.client_port), timeout=2):
        pass
    assert zk_ensemble.spec(1).host != spec.host


def test_standalone_ensemble_reports_standalone_mode(zk_standalone: ZkEnsemble) -> None:
    """A 1-node ensemble runs in standalone mode (no server.N lines) and serves."""
    [st] = zk_standalone.status()
    assert st.alive and st.mode == "standalone" and st.serving
    cfg = zk_standalone.spec(1).cfg_path.read_text()
    assert "server.1=" not in cfg and "tickTime=500" in cfg
    assert (zk_standalone.spec(1).data_dir / "myid").read_text().strip() == "1"


def test_killing_the_leader_elects_a_new_one(zk_ensemble_restored: ZkEnsemble) -> None:
    """SIGKILL of the leader: the two survivors elect a new leader and keep serving."""
    ens = zk_ensemble_restored
    old = ens.leader_id()
    assert old is not None
    assert ens.kill_node(old)
    assert ens.pid(old) is None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = ens.leader_id()
        if new is not None and new != old:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no new leader after killing node {old}: {ens.status()}")
    ens.wait_until_serving(timeout=30, all_nodes=False)


def test_missing_java_gives_clear_error(tmp_path: Path) -> None:
    """Without a java executable, start() fails naming Java and how to install it."""
    ens = ZkEnsemble(tmp_path, nodes=1, base_port=find_free_base_port(["127.0.0.1"]), java="no-such-java-kafkalike")
    with pytest.raises(ZkEnsembleError, match=r"^Java not found .*default-jre-headless"):
        ens.start()


def test_missing_zookeeper_jars_give_clear_error(tmp_path: Path) -> None:
    """Without Debian's zookeeper jars, start() fails naming the package."""
    ens = ZkEnsemble(tmp_path, nodes=1, base_port=find_free_base_port(["127.0.0.1"]), java_dir=tmp_path / "nojars")
    with pytest.raises(ZkEnsembleError, match=r"^ZooKeeper jars not found .*apt-get install zookeeper"):
        ens.start()


def test_node_that_dies_at_start_fails_up_with_log_tail(tmp_path: Path) -> None:
    """A node that exits during start-up (bad config) makes start() fail with its log's last lines,
    and no node is left running."""
    ens = ZkEnsemble(tmp_path, nodes=1, base_port=find_free_base_port(["127.0.0.1"]))
    ens.write_configs()
    cfg = ens.spec(1).cfg_path
    cfg.write_text(cfg.read_text().replace("tickTime=500", "tickTime=notanumber"))
    ens.zk_dir = tmp_path / "zkdir"  # a template that keeps the broken value
    ens.zk_dir.mkdir()
    (ens.zk_dir / "zoo.cfg.template").write_text(cfg.read_text())
    (ens.zk_dir / "log4j.properties").write_text(
        (Path(__file__).resolve().parents[2] / "zk" / "log4j.properties").read_text()
    )
    with pytest.raises(ZkEnsembleError, match=r"(?s)^ZooKeeper node 1 .*died during start-up; last lines of .*zk-1\.log:\n.*notanumber"):
        ens.start(timeout=30)
    assert ens.pid(1) is None


def test_reusing_a_dir_with_another_shape_is_refused(tmp_path: Path) -> None:
    """A base dir laid out for 1 node refuses a 3-node ensemble instead of mixing data."""
    ZkEnsemble(tmp_path, nodes=1, base_port=30001).write_configs()
    with pytest.raises(ZkEnsembleError, match="already holds a different ZooKeeper ensemble"):
        ZkEnsemble(tmp_path, nodes=3, base_port=30001).write_configs()
    assert ZkEnsemble.load(tmp_path).nodes == 1


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kafkalike.cli.main", *args], capture_output=True, text=True, timeout=90
    )


def test_cli_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    """`kafkalike zk up/status/down` on a 1-node ensemble: up prints the connect string,
    status shows standalone, down stops the JVM by pid and status then fails."""
    base = find_free_base_port(["127.0.0.1"])
    d = str(tmp_path / "kl" / "zk")
    up = _cli("zk", "up", "--nodes", "1", "--dir", d, "--base-port", str(base))
    try:
        assert up.returncode == 0, up.stderr
        assert f"zookeeper.connect=127.0.0.1:{base}" in up.stdout
        pid = process.read_pid(Path(d) / "zk-1.pid")
        assert process.is_alive(pid)
        st = _cli("zk", "status", "--dir", d, "--json")
        assert st.returncode == 0
        [node] = json.loads(st.stdout)
        assert node["mode"] == "standalone" and node["pid"] == pid
        # a cluster's base dir keeps its ensemble in <base>/zk: status finds it from there too
        assert json.loads(_cli("zk", "status", "--dir", str(tmp_path / "kl"), "--json").stdout)[0]["pid"] == pid
    finally:
        down = _cli("zk", "down", "--dir", d)
    assert down.returncode == 0, down.stderr
    assert not process.is_alive(pid)
    assert not (Path(d) / "zk-1.pid").exists()
    assert _cli("zk", "status", "--dir", d).returncode == 1


def test_cli_status_without_ensemble_is_one_line_error(tmp_path: Path) -> None:
    """`kafkalike zk status` on an empty dir exits 1 with one line naming the dir."""
    st = _cli("zk", "status", "--dir", str(tmp_path))
    assert st.returncode == 1
    assert st.stderr.strip().startswith("kafkalike zk: no ZooKeeper ensemble in")
    assert len(st.stderr.strip().splitlines()) == 1


def test_stop_pid_escalates_to_sigkill(tmp_path: Path) -> None:
    """A process ignoring SIGTERM is SIGKILLed after the timeout; its pid file names it."""
    spawned = process.spawn_detached(
        ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"],
        tmp_path / "p.log", tmp_path / "p.pid",
    )
    assert process.read_pid(tmp_path / "p.pid") == spawned.pid
    process.wait_for(lambda: "ready" in (tmp_path / "p.log").read_text(), 5, what="ready")
    t0 = time.monotonic()
    assert process.stop_pid(spawned.pid, timeout=0.5)
    assert 0.4 < time.monotonic() - t0 < 5
    assert not process.is_alive(spawned.pid)
    assert process.stop_pid(spawned.pid) is False


def test_is_alive_checks_cmdline_marker(tmp_path: Path) -> None:
    """is_alive with a cmdline marker rejects a live pid running something else."""
    spawned = process.spawn_detached(["sleep", "30"], tmp_path / "s.log", tmp_path / "s.pid")
    try:
        process.wait_for(lambda: bool(process.cmdline(spawned.pid)), 5, what="exec")
        assert process.is_alive(spawned.pid, expect_in_cmdline="sleep")
        assert not process.is_alive(spawned.pid, expect_in_cmdline="QuorumPeerMain")
        assert not process.is_alive(os.getpid() + 10_000_000)
    finally:
        process.kill_pid(spawned.pid, signal.SIGKILL)
    assert not process.is_alive(spawned.pid)


@pytest.mark.skipif(os.geteuid() != 0, reason="setting a gid needs root")
def test_spawn_detached_can_run_with_its_own_gid(tmp_path: Path) -> None:
    """A process spawned with group=N runs with gid N (for iptables owner matches)."""
    spawned = process.spawn_detached(["sleep", "30"], tmp_path / "g.log", tmp_path / "g.pid", group=61234)
    try:
        process.wait_for(lambda: bool(process.cmdline(spawned.pid)), 5, what="exec")
        gid_line = next(row for row in Path(f"/proc/{spawned.pid}/status").read_text().splitlines() if row.startswith("Gid:"))
        assert gid_line.split()[1] == "61234"
    finally:
        process.kill_pid(spawned.pid)


@pytest.mark.skipif(os.geteuid() != 0, reason="setting a gid needs root")
def test_ensemble_nodes_can_run_with_their_own_gids(tmp_path: Path) -> None:
    """With gid_base, node i's JVM runs with gid gid_base + i and still serves; load() keeps it."""
    ens = ZkEnsemble(tmp_path, nodes=1, base_port=find_free_base_port(["127.0.0.1"]), gid_base=62000)
    ens.start(timeout=60)
    try:
        pid = ens.pid(1)
        gid_line = next(row for row in Path(f"/proc/{pid}/status").read_text().splitlines() if row.startswith("Gid:"))
        assert gid_line.split()[1] == "62001" == str(ens.node_gid(1))
        assert ens.status()[0].mode == "standalone"
        assert ZkEnsemble.load(tmp_path).gid_base == 62000
    finally:
        ens.stop()


def test_die_with_parent_kills_the_child_when_the_spawner_dies(tmp_path: Path) -> None:
    """A process spawned with die_with_parent is SIGKILLed when the Python process that spawned
    it dies (so a killed pytest leaves no ZooKeeper behind)."""
    script = (
        "from kafkalike.cluster import process; import sys; "
        f"sp = process.spawn_detached(['sleep', '60'], {str(tmp_path / 'c.log')!r}, {str(tmp_path / 'c.pid')!r}, "
        "die_with_parent=True); print(sp.pid, flush=True)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    pid = int(out.stdout.strip().splitlines()[-1])
    try:
        process.wait_for(lambda: not process.is_alive(pid), 5, what="orphan to be killed")
    finally:
        process.kill_pid(pid)
