"""LocalCluster and the broker process: real broker processes against a real ensemble."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafkalike.cluster.local_cluster import LocalCluster
from tests.fixtures_cluster import MakeCluster


def kafkalike(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


def test_killed_brokers_node_vanishes_after_session_timeout(make_cluster: MakeCluster) -> None:
    """kill -9 leaves /brokers/ids/<id> until ZooKeeper expires the session (6 s here)."""
    cluster = make_cluster(brokers=2)
    assert cluster.registered_broker_ids() == [1, 2]
    killed_at = time.monotonic()
    assert cluster.kill_broker(2)
    assert not cluster.broker_alive(2)
    assert cluster.registered_broker_ids() == [1, 2]  # the session outlives the process for a while
    while 2 in cluster.registered_broker_ids():
        assert time.monotonic() - killed_at < 20, "ephemeral node still there 20 s after kill -9"
        time.sleep(0.2)
    assert cluster.registered_broker_ids() == [1]
    assert time.monotonic() - killed_at >= 3  # it was the session timeout, not the kill, that removed it


def test_cluster_down_then_up_keeps_log_dirs_and_meta_properties(make_cluster: MakeCluster) -> None:
    """Stopping and starting the same cluster reuses its data: same cluster id, same meta.properties."""
    cluster = make_cluster(brokers=3)
    metas = {i: (cluster.broker_dir(i) / "logs" / "meta.properties").read_text() for i in cluster.broker_ids}
    assert all(f"broker.id={i}" in m for i, m in metas.items())
    cluster.stop()
    assert cluster.registered_broker_ids() == []
    assert not any(s.alive for s in cluster.status())
    again = LocalCluster.load(cluster.base_dir)
    again.start(timeout=60)
    try:
        assert again.registered_broker_ids() == [1, 2, 3]
        for i in again.broker_ids:
            meta = (again.broker_dir(i) / "logs" / "meta.properties").read_text()
            cluster_id_line = [ln for ln in meta.splitlines() if ln.startswith("cluster.id=")]
            assert cluster_id_line and cluster_id_line[0] in metas[i]
    finally:
        again.stop()
    assert not any(s.alive for s in again.status())


def test_status_json_lists_every_process(make_cluster: MakeCluster) -> None:
    """``kafkalike cluster status --json`` names each broker with its address, pid and liveness."""
    cluster = make_cluster(brokers=2)
    out = kafkalike("cluster", "status", "--dir", str(cluster.base_dir), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    brokers = [p for p in doc["processes"] if p["role"] == "broker"]
    assert [(b["id"], b["address"], b["alive"]) for b in brokers] == [
        (1, cluster.broker_address(1), True), (2, cluster.broker_address(2), True)]
    assert all(isinstance(b["pid"], int) for b in brokers)
    assert doc["bootstrap_servers"] == cluster.bootstrap_servers


@pytest.mark.parametrize("line, message", [
    ("num.partitons=3", r"^kafkalike broker: unknown configuration key 'num.partitons' \(line 3 of server.properties\)"),
    ("num.partitions=-1", r"^kafkalike broker: invalid value '-1' for configuration 'num.partitions': expected an int in \[1, "),
])
def test_broker_start_with_bad_config_prints_one_line(tmp_path: Path, line: str, message: str) -> None:
    """A bad key or value stops the broker before it touches anything, with one stderr line."""
    import re

    cfg = tmp_path / "server.properties"
    cfg.write_text(f"broker.id=1\nzookeeper.connect=127.0.0.1:1\n{line}\n")
    out = kafkalike("broker", "start", "--config", str(cfg))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(message, lines[0]), out.stderr
