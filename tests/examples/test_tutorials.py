"""``./scripts/tutorial``: the pages of docs/tutorials/ run as written (their own ```bash
blocks), checked, and cleaned up. Default run: the runner itself (listing, an unknown page, a
failing check still cleans up). Behind KAFKALIKE_SLOW (each page starts a dozen processes): the
pages against a 1-broker cluster of the test fixtures (``--bootstrap-server``), and from
``kafkalike cluster up`` to ``cluster down`` on the documented ports, as a reader runs them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures_cluster import MakeCluster

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "scripts" / "tutorial"


def run(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TUTORIAL), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_list_prints_one_name_per_line() -> None:
    done = run("--list")
    assert done.returncode == 0
    names = done.stdout.split("\n")
    assert names[-1] == "" and names[:-1] == sorted(set(names[:-1]))  # one per line, sorted, no blank
    assert {"cdc-postgres", "connect", "dlq", "orders-fault-tolerant", "schemas", "streams"} <= set(names)


def test_unknown_tutorial_fails() -> None:
    assert run("nope").returncode == 2


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="runs a whole page's processes (1-2 min each on a loaded machine): KAFKALIKE_SLOW=1; the "
                           "default run covers the same demo in tests/examples/test_orders_dlq.py (Avro through the "
                           "registry, a service SIGKILLed half-way) and the registry in tests/schema_registry")
@pytest.mark.parametrize("name", ["schemas", "dlq"])
def test_tutorial_runs_against_a_running_cluster(name: str, make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = make_cluster(brokers=1)
    done = run(name, "--bootstrap-server", cluster.bootstrap_servers, "--work-dir", str(tmp_path))
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    assert f"tutorial {name}: OK" in done.stdout
    if name == "dlq":  # the page runs the demo with --crash: inventory SIGKILLed half-way
        summary = json.loads((tmp_path / "scratch" / "orders" / "summary.json").read_text())
        assert summary["ok"] and summary["missing"] == {} and summary["processed"] == {
            "inventory": 100, "billing": 101, "notification": 101}
        assert sorted((r["key"], r["headers"]["retry.service"]) for r in summary["dlq"]) == [
            ("poison-garbage", "billing"), ("poison-garbage", "inventory"),
            ("poison-garbage", "notification"), ("poison-quantity", "inventory")]
        for record in summary["dlq"]:
            h = record["headers"]
            assert h["retry.attempt"] == "3" and h["original.topic"] == "orders" and int(h["original.offset"]) >= 0
        quantity = next(r["headers"] for r in summary["dlq"] if r["key"] == "poison-quantity")
        assert quantity["error.class"] == "ValueError" and "quantity -1" in quantity["error.message"]
        garbage = next(r["headers"] for r in summary["dlq"] if r["key"] == "poison-garbage")
        assert garbage["error.class"] in ("JSONDecodeError", "UnicodeDecodeError")


def test_a_failing_check_fails_the_tutorial_and_cleanup_still_runs(tmp_path: Path) -> None:
    """A page whose check fails: the runner exits non-zero, skips the steps after it and runs
    the clean-up blocks anyway."""
    page = ROOT / "docs" / "tutorials" / "zz-failing-check.md"
    page.write_text("<!-- tutorial: runnable -->\n\n```bash\nmkdir -p .tutorial && touch .tutorial/started\n"
                    "test 1 -eq 2   # a check that fails\ntouch .tutorial/after-the-check\n```\n\n"
                    "```bash\n# cleanup\ntouch .tutorial/cleaned-up\n```\n")
    try:
        done = run("zz-failing-check", "--work-dir", str(tmp_path))
    finally:
        page.unlink()
    scratch = tmp_path / "scratch"
    assert done.returncode == 1 and "tutorial zz-failing-check: FAILED (exit 1)" in done.stdout
    assert (scratch / "started").exists() and (scratch / "cleaned-up").exists()
    assert not (scratch / "after-the-check").exists()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="starts its own cluster on 127.0.0.1:2181/9092 and the registry on 8081: KAFKALIKE_SLOW=1")
@pytest.mark.parametrize("name", ["schemas", "dlq"])
def test_tutorial_from_cluster_up_to_cluster_down(name: str, tmp_path: Path) -> None:
    done = run(name, "--work-dir", str(tmp_path), timeout=900)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-6000:]}"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="a 3-broker cluster, a broker killed and its partitions failed over: 2-3 min; "
                           "KAFKALIKE_SLOW=1")
def test_orders_fault_tolerant_page_loses_no_order_when_a_broker_is_killed(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    """docs/tutorials/orders-fault-tolerant.md against a 3-broker test cluster: the page's demo
    SIGKILLs the broker whose pid is in ``<work>/cluster/broker-2.pid`` (linked here to the test
    cluster's directory) half-way through 100 orders; every good order is still processed by
    every service, each poison message reaches orders.DLQ, every group ends at lag 0."""
    cluster = make_cluster(brokers=3)
    (tmp_path / "cluster").symlink_to(cluster.base_dir)
    killed = cluster.broker_pid(2)
    done = run("orders-fault-tolerant", "--bootstrap-server", cluster.bootstrap_servers, "--work-dir", str(tmp_path),
               timeout=600)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    assert "tutorial orders-fault-tolerant: OK" in done.stdout
    assert killed is not None and not cluster.broker_alive(2)  # the page did kill it
    summary = json.loads((tmp_path / "scratch" / "orders" / "summary.json").read_text())
    assert summary["ok"] and summary["broker_killed"] and summary["missing"] == {} and summary["unexpected"] == {}
    assert summary["processed"] == {"inventory": 100, "billing": 101, "notification": 101}
    assert sorted(set((r["key"], r["headers"]["retry.service"]) for r in summary["dlq"])) == [
        ("poison-garbage", "billing"), ("poison-garbage", "inventory"),
        ("poison-garbage", "notification"), ("poison-quantity", "inventory")]
