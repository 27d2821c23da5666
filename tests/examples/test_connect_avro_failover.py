"""``./scripts/tutorial connect-avro-failover`` (docs/tutorials/connect-avro-failover.md): the
connect-avro tutorial (MariaDB -> Debezium 2.6 -> Apicurio's AvroConverter -> kafkalike, schemas
in ``kafkalike schema-registry``) on 3 brokers with replication factor 3 and exactly-once
source support, the broker leading the change-event topic SIGKILLed while the database takes
300 inserts, 100 updates and 30 deletes, then every Avro change event replayed against the table
by examples/connect/check_cdc_avro.py: nothing lost, nothing twice.

Opt-in (KAFKALIKE_SLOW=1): installs Debian's maven and mariadb-server, fetches Connect, Debezium
and the converter from Maven Central, and runs minutes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures_cluster import _new_cluster, assert_no_process_runs_from

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                       reason="installs MariaDB, fetches Connect + Debezium + Apicurio's converter from Maven "
                              "Central, runs minutes: KAFKALIKE_SLOW=1"),
]


def test_avro_change_events_survive_a_kill_9_of_the_topic_leader_with_none_lost_or_repeated(
        zk_connect: str, tmp_path: Path) -> None:
    """The page's kill_leader.py acts on --cluster-dir .kafkalike-tutorial, which the runner maps
    to <work-dir>/cluster: the 3-broker cluster is made there."""
    cluster = _new_cluster(tmp_path / "cluster", zk_connect, 3, None)
    try:
        done = subprocess.run([str(ROOT / "scripts" / "tutorial"), "connect-avro-failover", "--bootstrap-server",
                               cluster.bootstrap_servers, "--work-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=1800, cwd=ROOT)
    finally:
        cluster.stop()
    assert done.returncode == 0, f"{done.stdout[-5000:]}\n{done.stderr[-8000:]}"
    assert "tutorial connect-avro-failover: OK" in done.stdout
    killed = [line for line in done.stdout.splitlines() if "kill -9 broker" in line]
    assert len(killed) == 1 and "leader of dbserver1.inventory.orders-0" in killed[0], killed
    assert "restarted broker" in done.stdout
    # the final check: 2 snapshot rows + 300 inserts - 30 deletes, every event once
    ok = [line for line in done.stdout.splitlines() if line.startswith("OK: ")]
    assert ok and ok[-1].startswith("OK: 272 rows in inventory.orders") and ", 0 duplicates," in ok[-1], ok
    summary_line = next(line for line in done.stdout.splitlines() if line.startswith("OK: 272 rows"))
    assert "'d': 30" in summary_line and "'u': 100" in summary_line and "'c': 300" in summary_line, summary_line
    assert_no_process_runs_from(tmp_path / "scratch")  # the page's clean-up stopped MariaDB, Connect, the registry
