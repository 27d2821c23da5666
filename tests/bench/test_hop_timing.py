"""``python -m kafkalike.bench.hop_timing``: the end-to-end latency workload against a
kafkalike cluster with kafkalike.debug.request.hops on, side by side with a second kafkalike
running another source tree, and the median of each hop."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest

from kafkalike.bench.hop_timing import HopLine, parse_hop_lines, run, summarize, PRODUCE_HOPS

LINE = ("2026-12-07T06:18:30.1Z [info     ] request_hops                   api=Produce broker_id=1 delayed=True "
        "kind=produce started_us=40 appended_us=300 follower_prev_written_us=900 follower_fetch_received_us=2100 "
        "hw_advanced_us=2400 woken_us=2600 response_queued_us=2700 written_us=2900")


def test_hop_lines_are_parsed_from_broker_logs_and_summarized_as_medians() -> None:
    """A broker's request_hops line becomes marks in µs (received = 0); other lines are
    skipped; each hop's median is taken over the lines carrying both of its marks."""
    lines = parse_hop_lines(["2026-12-07 [info] broker_started broker_id=1", LINE,
                             LINE.replace("appended_us=300", "appended_us=500").replace("delayed=True", "delayed=False")])
    assert lines[0] == HopLine("Produce", "produce", True, {
        "received": 0, "started": 40, "appended": 300, "follower_prev_written": 900, "follower_fetch_received": 2100,
        "hw_advanced": 2400, "woken": 2600, "response_queued": 2700, "written": 2900})
    assert len(lines) == 2 and not lines[1].delayed
    waited = summarize(lines, "produce", PRODUCE_HOPS)
    assert waited.requests == 1
    rows = {name: ms for name, ms, _ in waited.rows}
    assert rows["started → appended (local append)"] == 0.26
    assert rows["follower turnaround (response written → next Fetch read)"] == 1.2
    assert rows["total (read → written)"] == 2.9
    every = summarize(lines, "produce", PRODUCE_HOPS, delayed_only=False)
    assert dict((n, ms) for n, ms, _ in every.rows)["started → appended (local append)"] == pytest.approx(0.36)
    assert all(math.isnan(ms) for _, ms, _ in summarize(lines, "consumer", PRODUCE_HOPS).rows)


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="starts two 3-broker clusters and runs the latency workload: KAFKALIKE_SLOW=1")
def test_hop_timing_runs_this_checkout_beside_another_source_tree(tmp_path: Path, zk_connect: str) -> None:
    """Two clusters (this checkout, and a copy of HEAD run from its own tree) each deliver the
    latency workload's records and log the hops of Produce requests that waited for their
    followers; every process is stopped afterwards."""
    tree = tmp_path / "tree"
    tree.mkdir()
    root = Path(__file__).parents[2]
    archive = subprocess.run(["git", "archive", "HEAD", "kafkalike"], cwd=root, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    results = run(50, 2.0, zk_connect, tmp_path / "work", rounds=1, before=tree, warmup=1.0)
    assert [r.label for r in results] == ["kafkalike-before", "kafkalike"]
    for r in results:
        assert len(r.latencies) == 1 and r.latencies[0].samples > 0
        assert len(r.cpu_ms_per_1k) == 1 and r.cpu_ms_per_1k[0] > 0  # the brokers' CPU was read
        produce = r.summaries[0]
        assert produce.kind == "produce" and produce.requests > 0
        assert all(n > 0 for _, _, n in produce.rows)
