"""examples/orders (the order-processing system with retries and a DLQ) in Avro through
``kafkalike schema-registry``, run end to end with confluent-kafka against a real 1-broker
kafkalike cluster: every good order is processed by inventory, billing and notification, and
the bytes confluent-kafka's AvroDeserializer refuses end in orders.DLQ with its error in the
headers. The JSON variant (with a service SIGKILLed half-way) runs as docs/tutorials/dlq.md in
tests/examples/test_tutorials.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.fixtures_cluster import MakeCluster
from tests.schema_registry.registry_helpers import running_registry

ORDERS_PY = Path(__file__).resolve().parents[2] / "examples" / "orders" / "orders.py"


def run_demo(bootstrap: str, state: Path, *extra: str) -> dict:
    done = subprocess.run([sys.executable, str(ORDERS_PY), "demo", "--bootstrap-server", bootstrap,
                           "--state-dir", str(state), "--count", "40", "--backoff-ms", "100", "--timeout", "90",
                           *extra], capture_output=True, text=True, timeout=180)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(state.glob("*.log")))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{logs}"
    return json.loads((state / "summary.json").read_text())


def test_avro_orders_through_the_registry_and_malformed_bytes_to_the_dlq(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = make_cluster(brokers=1)
    with running_registry(cluster.bootstrap_servers, tmp_path / "registry.log") as url:
        summary = run_demo(cluster.bootstrap_servers, tmp_path / "state", "--schema-registry", url)
    assert summary["ok"] and summary["format"] == "avro"
    garbage = [r for r in summary["dlq"] if r["key"] == "poison-garbage"]
    assert len(garbage) == 3
    for record in garbage:  # confluent-kafka's AvroDeserializer refused the bytes with a clear error
        assert record["headers"]["error.class"] == "SerializationError", record
        assert "magic byte" in record["headers"]["error.message"].lower(), record

