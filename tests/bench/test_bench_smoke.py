"""End-to-end smoke tests of ``kafkalike bench``: every workload against a real kafkalike
cluster (tiny sizes, librdkafka load) writes a report with numbers; the CLI rejects bad
arguments; with KAFKALIKE_REFERENCE=1 all three systems run in one invocation."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import attrs
import pytest

from kafkalike.bench.background_load import BackgroundLoadSpec
from kafkalike.bench.harness import QUICK, WORKLOADS, run_bench
from kafkalike.bench.report import SYSTEMS, samples_from_json
from kafkalike.bench.systems import BenchError
from kafkalike.cli.main import main
from tests.fixtures_cluster import assert_no_process_runs_from

# 100,000 records (10 MB): enough broker CPU to be seen in /proc's 10 ms clock ticks. With
# 3,000 (0.3 MB, ~5 ms of broker CPU at ~17 CPU s/GB) a produce run could count 0 ticks and
# report 0 CPU s/GB (CI, 2026-11-21).
TINY = attrs.evolve(QUICK, name="tiny", records=100_000, rounds=1, latency_rates=(50,), latency_seconds=2,
                    rss_partitions=24, idle_seconds=0.5, failover_partitions=(6,), failover_rounds=1,
                    dd_mib=16, iperf_seconds=1, client_defaults=True, warmup=0.05,
                    latency_idle_partitions=(0, 12))


def test_bench_runs_every_workload_against_kafkalike_alone(tmp_path: Path, zk_connect: str) -> None:
    """A tiny run of all workloads against kafkalike (discarded warm-ups first, produce also
    at client defaults, consume assigned and in a fresh group, latency also with 12 idle
    partitions) writes report.md, plots and a positive number for every metric, with no
    failed measurement, and stops every process, the background CPU hog (a light one here)
    included; the report says what the hog was and the CPU it used."""
    work = tmp_path / "work"
    path = run_bench(TINY, ["kafkalike"], tmp_path / "report", tools=["librdkafka"], work_dir=work,
                     zookeeper_connect=zk_connect, command="smoke", background_load=BackgroundLoadSpec(1, 10))
    text = path.read_text()
    assert "- **errors**: none" in text, text
    hog_line = next(ln for ln in text.splitlines() if ln.startswith("- **background load**"))
    assert "stress-ng --cpu 1 --cpu-load 10" in hog_line and " s of CPU over " in hog_line, hog_line
    samples = samples_from_json(json.loads((tmp_path / "report" / "samples.json").read_text()))
    assert {s.system for s in samples} == {"kafkalike"}
    metrics = {(s.workload, s.metric) for s in samples}
    for expected in [("produce acks=1", "records/s (librdkafka)"), ("produce acks=all", "records/s (librdkafka)"),
                     ("produce acks=all, client defaults", "records/s (librdkafka)"),
                     ("consume", "records/s (librdkafka)"), ("consume", "records/s (librdkafka, fresh group)"),
                     ("broker CPU", "CPU s per GB written (all brokers)"),
                     ("latency @ 50 records/s, acks=all, 12 idle partitions", "p50"),
                     ("latency @ 50 records/s, acks=all", "p99.9"),
                     ("latency @ 50 records/s, acks=all", "records/s delivered"),
                     ("resources", "RSS per broker, idle"),
                     ("resources", "RSS per broker, 24 partitions"),
                     ("failover, 6 partitions", "leader kill -9 → first ack"),
                     ("failover, 6 partitions", "controller kill -9 → CreateTopics ok"),
                     ("failover, 6 partitions", "controlled shutdown (SIGTERM → exit)")]:
        assert expected in metrics, f"missing {expected}"
    for s in samples:
        if "CPU per broker" not in s.metric:  # an idle broker may spend 0 ticks
            assert s.value > 0, s
    # the latency producer kept up with its offered rate (a queue would show as far less)
    for delivered in [s.value for s in samples if s.metric == "records/s delivered"]:
        assert delivered >= 0.25 * TINY.latency_rates[0], delivered
    assert {s.round for s in samples} == {0}, "a warm-up run was recorded"
    assert "discarded warm-up of 0.05x" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| produce acks=all"))
    assert re.search(r"\| records/s \| [\d,]+ \(n=1\) \| — \| — \|", line), line
    assert len(list((tmp_path / "report").glob("*.png"))) >= 5
    assert json.loads((tmp_path / "report" / "limits.json").read_text())["disk_mb_s"] > 0
    assert_no_process_runs_from(work)


def test_bench_cli_rejects_unknown_system_and_tool(capsys: pytest.CaptureFixture[str]) -> None:
    """`kafkalike bench --systems redpanda` is a usage error (exit 2) naming the choices."""
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--quick", "--systems", "redpanda"])
    assert exc.value.code == 2
    assert "choose from kafkalike, kafka-zk, kafka-kraft" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--tools", "jmeter"])
    assert main(["bench", "--quick", "--failover-rounds", "0"]) == 2
    assert "--failover-rounds 0: expected at least 1" in capsys.readouterr().err
    with pytest.raises(BenchError, match="^unknown workload 'soak'"):
        run_bench(TINY, ["kafkalike"], "unused", workloads=["soak"])
    assert set(WORKLOADS) == {"produce", "consume", "latency", "resources", "failover"}


@pytest.mark.skipif(os.environ.get("KAFKALIKE_REFERENCE") != "1",
                    reason="needs Apache Kafka 3.9 jars from Maven and 6 JVMs: set KAFKALIKE_REFERENCE=1")
def test_bench_measures_all_three_systems_in_one_run(tmp_path: Path, zk_connect: str) -> None:
    """With Kafka's jars, one run measures kafkalike, Kafka ZK and Kafka KRaft with both load
    generators and reports ratios for the produce workload."""
    work = tmp_path / "work"
    path = run_bench(attrs.evolve(TINY, records=20_000), list(SYSTEMS), tmp_path / "report",
                     workloads=["produce", "consume"], work_dir=work, zookeeper_connect=zk_connect)
    text = path.read_text()
    assert "- **errors**: none" in text, text
    samples = samples_from_json(json.loads((tmp_path / "report" / "samples.json").read_text()))
    for system in SYSTEMS:
        for tool in ("kafka-perf", "librdkafka"):
            assert any(s.system == system and s.metric == f"records/s ({tool})" for s in samples), (system, tool)
    line = next(ln for ln in text.splitlines() if ln.startswith("| produce acks=all") and "kafka-perf" in ln)
    assert re.search(r"\| \d+\.\d\dx \| \d+\.\d\dx \|", line), line
    assert_no_process_runs_from(work)
