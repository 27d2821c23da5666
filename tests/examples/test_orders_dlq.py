"""examples/orders (the order-processing system with retries and a DLQ) run end to end as its
user would, with confluent-kafka against a real 1-broker kafkalike cluster: every good order is
processed by inventory, billing and notification, each poison message ends in orders.DLQ with
its headers after bounded retries, and the services keep going meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_poison_messages_reach_the_dlq_with_headers_and_good_orders_are_all_processed(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = make_cluster(brokers=1)
    summary = run_demo(cluster.bootstrap_servers, tmp_path / "state")
    assert summary["ok"] and summary["missing"] == {} and summary["processed"] == {
        "inventory": 40, "billing": 41, "notification": 41}
    by_key = sorted((r["key"], r["headers"]["retry.service"]) for r in summary["dlq"])
    assert by_key == [("poison-garbage", "billing"), ("poison-garbage", "inventory"),
                      ("poison-garbage", "notification"), ("poison-quantity", "inventory")]
    for record in summary["dlq"]:
        h = record["headers"]
        assert h["retry.attempt"] == "3" and h["original.topic"] == "orders"
        assert int(h["original.offset"]) >= 0 and h["error.message"]
    quantity = next(r for r in summary["dlq"] if r["key"] == "poison-quantity")
    assert quantity["headers"]["error.class"] == "ValueError" and "quantity -1" in quantity["headers"]["error.message"]
    garbage = next(r for r in summary["dlq"] if r["key"] == "poison-garbage")
    assert garbage["headers"]["error.class"] in ("JSONDecodeError", "UnicodeDecodeError")


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


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="waits out the killed consumer's session before the group rebalances: KAFKALIKE_SLOW=1")
def test_a_service_killed_mid_stream_loses_no_order(make_cluster: MakeCluster, tmp_path: Path) -> None:
    """At-least-once: the inventory service is SIGKILLed after the first orders (offsets of what
    it had in hand not committed) and started again; it still processes every order."""
    cluster = make_cluster(brokers=1)
    summary = run_demo(cluster.bootstrap_servers, tmp_path / "state", "--crash")
    assert summary["ok"] and summary["missing"] == {}
    assert summary["processed"]["inventory"] == 40
