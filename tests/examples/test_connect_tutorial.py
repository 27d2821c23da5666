"""``./scripts/tutorial connect`` (docs/tutorials/connect.md): Apache Kafka 3.9's Connect runtime
in distributed mode with Debezium's MySQL connector reading a real MariaDB into kafkalike, and
Connect's FileStreamSink writing the rows back out, exactly-once; the page's own commands, its
checks (examples/connect/check_cdc.py) and its clean-up.

Opt-in (KAFKALIKE_SLOW=1): the first run installs Debian's maven and mariadb-server and fetches
the Connect and Debezium jars from Maven Central, and a run takes minutes (two JVM restarts of a
task, a MariaDB restart)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures_cluster import MakeCluster

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "scripts" / "tutorial"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                       reason="installs MariaDB, fetches Connect + Debezium from Maven Central, runs minutes: "
                              "KAFKALIKE_SLOW=1"),
]


def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TUTORIAL), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _no_process_left_in(work: Path) -> None:
    """The page's clean-up stopped what it started under ``work`` (MariaDB, the Connect worker,
    its own cluster): their pid files are gone and no process runs with ``work`` on its command
    line."""
    assert not list(work.rglob("*.pid")), list(work.rglob("*.pid"))
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert str(work) not in cmdline, f"pid {proc.name} still runs: {cmdline[:300]}"


def _check_summary(summary: dict[str, object]) -> None:
    """check_cdc.py's last verdict: the table (3 first rows, the bulk load, the rows changed while
    the worker was down and while the task was FAILED) equals both the replayed change events and
    the sink file, no duplicate event."""
    assert summary["ok"] is True and summary["problems"] == []
    assert summary["duplicates"] == 0
    ops = summary["ops"]
    assert isinstance(ops, dict)
    # snapshot of row 1; creates 2, 3, 100..299, 5, 4; updates 1, 50 bulk, 3; deletes 2, 20 bulk, 100
    assert ops == {"r": 1, "c": 204, "u": 52, "d": 22}
    assert summary["tombstones"] == 22
    assert summary["rows"] == summary["sink_rows"] == 3 + 200 - 20
    # the sink is at-least-once (a consumer group's committed offsets): a line may repeat, none may be missing
    sink_lines = summary["sink_lines"]
    assert isinstance(sink_lines, int) and sink_lines >= 1 + 204 + 52 + 22


def test_connect_tutorial_against_a_running_three_broker_cluster(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = make_cluster(brokers=3)
    done = run("connect", "--bootstrap-server", cluster.bootstrap_servers, "--work-dir", str(tmp_path), timeout=1500)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    assert "tutorial connect: OK" in done.stdout
    _check_summary(json.loads((tmp_path / "scratch" / "summary.json").read_text()))
    _no_process_left_in(tmp_path / "scratch")  # tmp_path/cluster0 is the fixture's cluster, still running


@pytest.mark.skipif(os.environ.get("KAFKALIKE_CONNECT_OWN_CLUSTER") != "1",
                    reason="starts its own cluster on 127.0.0.1-3:9092, ZooKeeper on 2181, Connect on 8083 and "
                           "MariaDB on 3306, as a reader does: KAFKALIKE_CONNECT_OWN_CLUSTER=1 too")
def test_connect_tutorial_from_cluster_up_to_cluster_down_with_a_broker_killed(tmp_path: Path) -> None:
    done = run("connect", "--work-dir", str(tmp_path), timeout=1800)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    assert "tutorial connect: OK" in done.stdout
    assert "kill -9" in done.stderr  # the own-cluster block ran (bash -x echoes it)
    _no_process_left_in(tmp_path)


def test_cdc_postgres_tutorial_mariadb_rows_reach_postgresql_through_the_jdbc_sink(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    """``./scripts/tutorial cdc-postgres`` (docs/tutorials/cdc-postgres.md) on a 3-broker test
    cluster: MariaDB -> Debezium source -> kafkalike -> Debezium JDBC sink -> PostgreSQL, the
    page's compare_databases.py checks equal after the first changes and after the bulk load."""
    cluster = make_cluster(brokers=3)
    done = run("cdc-postgres", "--bootstrap-server", cluster.bootstrap_servers, "--work-dir", str(tmp_path),
               timeout=1500)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    assert "tutorial cdc-postgres: OK" in done.stdout
    summary = json.loads((tmp_path / "scratch" / "summary.json").read_text())
    # rows 1 and 3 (2 deleted), the bulk load's 200 inserts less its 20 deletes
    assert summary["ok"] is True and summary["source_rows"] == summary["sink_rows"] == 2 + 200 - 20
    assert summary["missing"] == summary["extra"] == [] and summary["different"] == {}
    _no_process_left_in(tmp_path / "scratch")


@pytest.mark.skipif(os.environ.get("KAFKALIKE_CONNECT_OWN_CLUSTER") != "1",
                    reason="its own cluster on 127.0.0.1-3:9092, ZooKeeper 2181, Connect 8083, MariaDB 3306, "
                           "PostgreSQL 5432: KAFKALIKE_CONNECT_OWN_CLUSTER=1 too")
def test_cdc_postgres_tutorial_from_cluster_up_to_cluster_down_with_a_broker_killed(tmp_path: Path) -> None:
    done = run("cdc-postgres", "--work-dir", str(tmp_path), timeout=1800)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    assert "tutorial cdc-postgres: OK" in done.stdout
    assert "kill -9" in done.stderr  # the own-cluster block ran (bash -x echoes it)
    assert "OK: 182 rows in MariaDB's shop.orders and PostgreSQL's orders" in done.stdout  # after the bulk load
    _no_process_left_in(tmp_path)
