"""``./scripts/tutorial connect-avro`` (docs/tutorials/connect-avro.md): Debezium's MySQL source
reading a real MariaDB with Apicurio's AvroConverter 2.6.2 writing keys and values as Avro, the
schemas registered in ``kafkalike schema-registry`` through its Apicurio v2 API, the events read
back by examples/connect/avro_events.py (schema fetched by the id in each record, fastavro).

Opt-in (KAFKALIKE_SLOW=1): installs Debian's maven and mariadb-server, fetches Connect, Debezium
and the converter from Maven Central, and runs minutes."""

from __future__ import annotations

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
                       reason="installs MariaDB, fetches Connect + Debezium + Apicurio's converter from Maven "
                              "Central, runs minutes: KAFKALIKE_SLOW=1"),
]


def test_connect_avro_tutorial_change_events_are_avro_with_registered_schemas(make_cluster: MakeCluster,
                                                                               tmp_path: Path) -> None:
    cluster = make_cluster(brokers=1)
    done = subprocess.run([str(TUTORIAL), "connect-avro", "--bootstrap-server", cluster.bootstrap_servers,
                           "--work-dir", str(tmp_path)], capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    assert "tutorial connect-avro: OK" in done.stdout
    # the page's consumer output (its scratch files are removed by the clean-up)
    lines = [line for line in done.stdout.splitlines() if line.startswith(("r key=", "c key=", "u key=", "d key=",
                                                                           "tombstone key="))]
    first = lines[:6]  # snapshot read of row 1, creates 2 and 3, update of 1, delete of 2 and its tombstone
    assert sorted(line.split(" ", 1)[0] for line in first) == ["c", "c", "d", "r", "tombstone", "u"], lines
    assert any("'phone': '555-0100'" in line for line in lines[6:]), lines
    for proc in Path("/proc").iterdir():  # the page's clean-up stopped MariaDB, Connect and the registry
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert str(tmp_path / "scratch") not in cmdline, f"pid {proc.name} still runs: {cmdline[:300]}"
