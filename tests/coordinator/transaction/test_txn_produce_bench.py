"""kafkalike.bench.txn_produce, the transactional-produce benchmark (docs/benchmarks.md,
"Transactional produce"): a tiny run against a real 3-broker kafkalike cluster measures both
modes, reads every record back read_committed and stops every process it started; bad
arguments are refused. With KAFKALIKE_REFERENCE=1 (three Kafka 3.9 broker JVMs) the same run
also measures Apache Kafka in ZooKeeper mode and reports the kafkalike/Kafka ratios."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kafkalike.bench.systems import BenchError
from kafkalike.bench.txn_produce import TxnBenchConfig, format_table, main, run
from tests.fixtures_cluster import assert_no_process_runs_from

pytest.importorskip("confluent_kafka")

TINY = TxnBenchConfig(records=300, size=100, txn_records=100, partitions=3, rounds=1, warmup_rounds=0)


def test_txn_produce_bench_measures_both_modes_and_reads_every_record_back(tmp_path: Path, zk_connect: str) -> None:
    """300 records in 3 transactions of 100 and 300 idempotent records: both measured, every
    record read back by a read_committed consumer (run() raises otherwise), processes gone."""
    work = tmp_path / "work"
    out = run(TINY, ["kafkalike"], work=work, zookeeper_connect=zk_connect)
    by_mode = {r["mode"]: r for r in out["results"]}
    assert set(by_mode) == {"idempotent", "transactional"}
    assert by_mode["transactional"]["transactions"] == 3 and by_mode["idempotent"]["transactions"] == 0
    for r in by_mode.values():
        assert r["system"] == "kafkalike" and r["records"] == 300 and len(r["seconds"]) == 1
        assert r["seconds"][0] > 0 and r["records_per_s"] > 0
    assert set(out["ratios"]) == {"kafkalike transactional/idempotent"}
    table = format_table(out)
    assert "| kafkalike | transactional |" in table and "| kafkalike | idempotent | " in table, table
    assert_no_process_runs_from(work)


def test_txn_produce_bench_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(BenchError, match="--txn-records must be at least 1"):
        run(TxnBenchConfig(txn_records=0), ["kafkalike"], work=tmp_path)
    with pytest.raises(BenchError, match="systems must be among kafkalike, kafka-zk"):
        run(TINY, ["redpanda"], work=tmp_path)
    assert main(["--records", "0", "--systems", "kafkalike"]) == 1
    assert "--records must be at least 1" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())  # refused before anything was started


@pytest.mark.skipif(os.environ.get("KAFKALIKE_REFERENCE") != "1",
                    reason="needs Apache Kafka 3.9's jars and 3 broker JVMs: set KAFKALIKE_REFERENCE=1")
def test_txn_produce_bench_measures_kafkalike_and_kafka_in_one_run(tmp_path: Path, zk_connect: str) -> None:
    work = tmp_path / "work"
    out = run(TINY, ["kafkalike", "kafka-zk"], work=work, zookeeper_connect=zk_connect)
    assert {(r["system"], r["mode"]) for r in out["results"]} == {
        (s, m) for s in ("kafkalike", "kafka-zk") for m in ("idempotent", "transactional")}
    assert out["kafka_version"].startswith("3.9")
    assert set(out["ratios"]) == {"kafkalike transactional/idempotent", "kafka-zk transactional/idempotent",
                                  "idempotent kafkalike/kafka-zk", "transactional kafkalike/kafka-zk"}
    assert all(v > 0 for v in out["ratios"].values())
    assert_no_process_runs_from(work)
