"""The transactional workload against one real kafkalike broker process (no faults): its
history is judged valid by the transactional checker, with committed and aborted (on purpose)
transactions, consume-transform-produce output and the group's offsets committed inside
transactions; the same history with one aborted record made visible to read_committed is not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkalike.chaos.txn_checker import READ_COMMITTED, TxnConsumed, TxnEnded, check_txn, read_txn_history
from kafkalike.chaos.txn_workload import TxnWorkloadConfig, run_txn_workload
from kafkalike.cluster.local_cluster import LocalCluster
from tests.fixtures_cluster import _new_cluster

pytest.importorskip("confluent_kafka")

OVERRIDES = {"transaction.state.log.num.partitions": "2", "transaction.state.log.replication.factor": "1",
             "transaction.state.log.min.isr": "1", "offsets.topic.num.partitions": "2",
             "offsets.topic.replication.factor": "1", "group.initial.rebalance.delay.ms": "0"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    c = _new_cluster(tmp_path_factory.mktemp("txn-workload"), zk_connect, 1, OVERRIDES)
    try:
        yield c
    finally:
        c.stop()


def test_txn_workload_history_is_valid_without_faults(cluster: LocalCluster, tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    bs = cluster.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bs})
    for topic in ("txw-in", "txw-out"):
        admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    path = tmp_path / "txn-history.jsonl"
    config = TxnWorkloadConfig("txw-in", "txw-out", partitions=2, producers=2, txn_size=3, rate=8.0,
                               abort_every=3, group="txw-group", run="txw")
    stats = run_txn_workload(bs, config, str(path), seconds=6.0)
    events = list(read_txn_history(path))
    verdict = check_txn(events)
    assert verdict.status == "valid", (verdict.headline(), verdict.to_json(), stats)
    assert verdict.summary["committed"] >= 10 and verdict.summary["aborted"] >= 3, verdict.summary
    assert verdict.summary["drains"] == 4
    ctp_committed = [e for e in events if isinstance(e, TxnEnded) and e.txn.startswith("txw-ctp")
                     and e.outcome == "committed"]
    assert ctp_committed, "the consume-transform-produce stage committed nothing"
    # a read_committed read of an aborted record would be caught
    aborted = next(e for e in events if isinstance(e, TxnEnded) and e.outcome == "aborted"
                   and not e.txn.startswith("txw-ctp"))
    bad = [*events, TxnConsumed(events[-1].time, "forged", READ_COMMITTED, "txw-in", 0, 10**6, aborted.txn, 0)]
    assert check_txn(bad).anomalies == {"aborted_read"}


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1", reason="KAFKALIKE_SLOW=1 runs a transactional chaos run")
def test_chaos_run_with_the_txn_workload_under_the_random_nemesis(tmp_path: Path) -> None:
    """`kafkalike chaos run --workload txn --nemesis random` (20 s of faults, 3 brokers):
    the transactional history is judged valid and the report holds it."""
    out = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "chaos", "run", "--workload", "txn",
                          "--nemesis", "random", "--seed", "1", "--duration", "20s", "--report", str(tmp_path)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert verdict["status"] == "valid" and verdict["summary"]["committed"] > 0, verdict
    assert (tmp_path / "history.jsonl").exists()
