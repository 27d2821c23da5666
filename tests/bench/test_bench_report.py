"""Unit tests of the side-by-side benchmark's report code: medians, ratios, percentiles,
grouping into rows, the Markdown table, plots and the samples file round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resource
import types

from kafkalike.bench.harness import (KAFKALIKE_FDS_PER_PARTITION, _Run, descriptor_shortfall,
                                     raise_open_files_limit, rotated)
from kafkalike.bench.report import (ReportError, Sample, format_number, median, percentile, ratio,
                                    render_markdown, samples_from_json, samples_to_json, summarize,
                                    write_report)


def _s(system: str, value: float, metric: str = "records/s (librdkafka)", workload: str = "produce acks=1",
       higher: bool = True, rnd: int = 0) -> Sample:
    return Sample(workload, metric, system, value, "records/s" if higher else "s", rnd, higher,
                  "loopback_mb_s" if higher else "", 1e-4 if higher else 1.0)


def test_median_of_odd_and_even_counts() -> None:
    """The median is the middle value, or the mean of the middle two."""
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ReportError, match="^median of no values$"):
        median([])


def test_ratio_is_ours_over_theirs_and_none_when_undefined() -> None:
    """ratio() divides kafkalike's median by Kafka's; missing or zero gives None."""
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None


def test_percentile_nearest_rank() -> None:
    """Nearest-rank percentiles over 1..1000 hit exact ranks."""
    values = [float(i) for i in range(1, 1001)]
    assert percentile(values, 50) == 500.0
    assert percentile(values, 99) == 990.0
    assert percentile(values, 99.9) == 999.0
    assert percentile(values, 100) == 1000.0
    assert percentile([7.0], 99.9) == 7.0
    with pytest.raises(ReportError):
        percentile([], 50)
    with pytest.raises(ReportError):
        percentile([1.0], 101)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=1, max_size=50),
       st.floats(min_value=0, max_value=100))
def test_percentile_is_an_element_and_monotone(values: list[float], q: float) -> None:
    """A percentile is one of the values, and never below a lower percentile."""
    s = sorted(values)
    p = percentile(s, q)
    assert p in s
    assert percentile(s, q / 2) <= p


def test_summarize_medians_ratios_and_limit_fraction() -> None:
    """Rows hold per-system medians, kafkalike/Kafka ratios and the best system vs the limit."""
    samples = [_s("kafkalike", 100.0, rnd=0), _s("kafkalike", 300.0, rnd=1), _s("kafkalike", 200.0, rnd=2),
               _s("kafka-zk", 1000.0), _s("kafka-kraft", 400.0), _s("kafka-kraft", 600.0),
               _s("kafkalike", 4.0, metric="failover", workload="f", higher=False),
               _s("kafka-zk", 2.0, metric="failover", workload="f", higher=False)]
    rows = summarize(samples, {"loopback_mb_s": 1.0})
    assert [(r.workload, r.metric) for r in rows] == [("produce acks=1", "records/s (librdkafka)"), ("f", "failover")]
    r = rows[0]
    assert r.medians == {"kafkalike": 200.0, "kafka-zk": 1000.0, "kafka-kraft": 500.0}
    assert r.counts == {"kafkalike": 3, "kafka-zk": 1, "kafka-kraft": 2}
    assert r.ratio_zk == pytest.approx(0.2)
    assert r.ratio_kraft == pytest.approx(0.4)
    assert r.best_fraction_of_limit == pytest.approx(1000.0 * 1e-4 / 1.0)
    f = rows[1]
    assert f.medians["kafka-kraft"] is None and f.ratio_kraft is None
    assert f.ratio_zk == pytest.approx(2.0)
    assert f.best_fraction_of_limit is None


def test_summarize_refuses_mixed_units_and_samples_refuse_bad_values() -> None:
    """One metric in two units, an unknown system or a NaN value is a ReportError."""
    a = Sample("w", "m", "kafkalike", 1.0, "s")
    b = Sample("w", "m", "kafka-zk", 1.0, "ms")
    with pytest.raises(ReportError, match="mixes units"):
        summarize([a, b])
    with pytest.raises(ReportError, match="unknown system 'redpanda'"):
        Sample("w", "m", "redpanda", 1.0, "s")
    with pytest.raises(ReportError, match="not finite"):
        Sample("w", "m", "kafkalike", float("nan"), "s")


def test_markdown_table_has_a_line_per_row_with_ratios() -> None:
    """The Markdown report lists each metric with medians, sample counts and ratios."""
    rows = summarize([_s("kafkalike", 250_000.0), _s("kafka-zk", 500_000.0), _s("kafka-kraft", 1_000_000.0)],
                     {"loopback_mb_s": 2000.0})
    text = render_markdown(rows, context={"command": "kafkalike bench --quick"}, limits={"loopback_mb_s": 2000.0})
    assert "- **command**: kafkalike bench --quick" in text
    assert "- loopback (iperf3): 2,000 MB/s" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| produce acks=1"))
    assert re.search(r"\| 250,000 \(n=1\) \| 500,000 \(n=1\) \| 1,000,000 \(n=1\) \| 0\.50x \| 0\.25x \| "
                     r"5\.0% of loopback \(iperf3\) \|$", line), line


def test_format_number() -> None:
    """Big figures get separators, small ones three significant digits."""
    assert format_number(None) == "—"
    assert format_number(1234567.8) == "1,234,568"
    assert format_number(12.345) == "12.3"
    assert format_number(0.012345) == "0.0123"
    assert format_number(0) == "0"


def test_rotated_visits_every_system_first_once() -> None:
    """Round r starts with the r-th system; every round visits all of them."""
    names = ["kafkalike", "kafka-zk", "kafka-kraft"]
    orders = [rotated(names, r) for r in range(3)]
    assert [o[0] for o in orders] == names
    assert all(sorted(o) == sorted(names) for o in orders)
    assert rotated([], 5) == []


def test_write_report_writes_markdown_plots_and_samples(tmp_path: Path) -> None:
    """write_report produces report.md, one PNG per workload and a samples file that reads back."""
    samples = [_s("kafkalike", 1.0), _s("kafka-zk", 2.0),
               _s("kafkalike", 4.0, metric="leader kill", workload="failover", higher=False)]
    path = write_report(samples, tmp_path / "r", limits={"loopback_mb_s": 100.0}, context={"errors": "none"})
    text = path.read_text()
    pngs = sorted(p.name for p in (tmp_path / "r").glob("*.png"))
    assert pngs == ["bench-failover.png", "bench-produce-acks-1.png"]
    for name in pngs:
        assert (tmp_path / "r" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{name}]({name})" in text
    back = samples_from_json(json.loads((tmp_path / "r" / "samples.json").read_text()))
    assert back == samples
    assert samples_to_json(back)[0]["system"] == "kafkalike"
    with pytest.raises(ReportError):
        samples_from_json({"not": "a list"})


def test_failed_attempt_is_recorded_and_the_run_goes_on() -> None:
    """A measurement that raises is listed in the run's errors with its name, returns None,
    and the next measurement still runs and records its sample."""
    run = _Run()

    def boom() -> float:
        raise TimeoutError("kafka-zk took too long")

    assert run.attempt("kafka-zk failover, 10,000 partitions round 0", boom) is None
    assert run.attempt("kafka-kraft failover", lambda: 4.5) == 4.5
    run.add("failover", "leader kill", "kafka-kraft", 4.5, "s", 0, False)
    assert run.errors == ["kafka-zk failover, 10,000 partitions round 0: TimeoutError: kafka-zk took too long"]
    assert [s.system for s in run.samples] == ["kafka-kraft"]


def test_descriptor_shortfall_only_for_kafkalike_beyond_the_open_files_limit() -> None:
    """kafkalike needs ~1 descriptor per hosted partition: a count past the open-files limit
    is refused with the reason, a small count and the Kafka systems are not."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    kafkalike = types.SimpleNamespace(name="kafkalike")
    assert descriptor_shortfall(kafkalike, 100) == ""  # type: ignore[arg-type]
    if soft != resource.RLIM_INFINITY:
        too_many = soft // KAFKALIKE_FDS_PER_PARTITION + 1
        reason = descriptor_shortfall(kafkalike, too_many)  # type: ignore[arg-type]
        assert f"{too_many:,} partitions" in reason and f"{soft:,}" in reason
        assert descriptor_shortfall(types.SimpleNamespace(name="kafka-zk"), too_many) == ""  # type: ignore[arg-type]


def test_raise_open_files_limit_never_lowers_it() -> None:
    """The limit after raise_open_files_limit is at least the one before (soft and hard)."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    after = raise_open_files_limit(before[0])
    assert after[0] >= before[0] and after[1] >= before[1]
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == after


def test_failover_partitions_reads_the_count_from_the_workload_name() -> None:
    """"failover, 10,000 partitions" is 10000; other workloads have no count."""
    from kafkalike.bench.report import failover_partitions

    assert failover_partitions("failover, 10,000 partitions") == 10_000
    assert failover_partitions("failover, 30 partitions") == 30
    assert failover_partitions("produce acks=all") is None
    assert failover_partitions("failover, many partitions") is None


def test_combine_merges_pieces_and_plots_failover_scaling(tmp_path: Path) -> None:
    """Two pieces' samples end up in one report whose context names both commands, with a
    scaling plot over their partition counts and per-count medians in scaling_table."""
    from kafkalike.bench.combine import combine
    from kafkalike.bench.report import scaling_table

    a = [_s("kafkalike", 1e5), _s("kafka-zk", 2e5)]
    b = [_s(sys_, v, metric="leader kill", workload=f"failover, {n:,} partitions", higher=False)
         for sys_, n, v in (("kafkalike", 100, 6.0), ("kafkalike", 1000, 7.0), ("kafka-zk", 100, 6.5),
                            ("kafka-zk", 1000, 8.0), ("kafka-zk", 1000, 10.0))]
    write_report(a, tmp_path / "a", limits={"loopback_mb_s": 100.0}, context={"command": "piece-a", "errors": "none"})
    write_report(b, tmp_path / "b", limits={"loopback_mb_s": 300.0}, context={"command": "piece-b", "errors": "none"})
    path = combine(tmp_path / "out", [tmp_path / "a", tmp_path / "b"])
    text = path.read_text()
    assert "- **piece 1 command**: piece-a" in text and "- **piece 2 command**: piece-b" in text
    assert "failover-scaling.png" in text and (tmp_path / "out" / "failover-scaling.png").stat().st_size > 0
    assert json.loads((tmp_path / "out" / "limits.json").read_text()) == {"loopback_mb_s": 200.0}
    assert scaling_table(b)["leader kill"]["kafka-zk"] == [(100, 6.5), (1000, 9.0)]
    with pytest.raises(ReportError):
        combine(tmp_path / "out2", [tmp_path / "missing"])


def test_full_takes_one_trial_at_large_partition_counts_unless_told() -> None:
    import attrs

    from kafkalike.bench.harness import FULL, LARGE_PARTITIONS

    assert FULL.rounds_for(100) == 3
    assert FULL.rounds_for(1_000) == 3
    assert FULL.rounds_for(LARGE_PARTITIONS) == 1
    assert FULL.rounds_for(10_000) == 1
    told = attrs.evolve(FULL, failover_rounds=3, large_failover_rounds=3)  # --failover-rounds 3
    assert told.rounds_for(10_000) == 3
