"""``python -m kafkalike.bench.fetch_request_codec``: both ways of building and encoding the
follower's Fetch request give equal entities and equal bytes (asserted inside run), and every
step is timed."""

from __future__ import annotations

import pytest

from kafkalike.bench.fetch_request_codec import build_direct, build_generic, main, run


@pytest.mark.parametrize("partitions", [1, 3])
def test_fetch_request_bench_times_every_step_of_equal_requests(partitions: int) -> None:
    """run() checks the two builds are equal and the two encoders write the same bytes, then
    reports a positive median for each of the five steps."""
    assert build_direct(partitions) == build_generic(partitions)
    result = run(partitions, runs=20)
    assert set(result) == {"build (build_request)", "build (fetch_request)", "encode (kio writer)",
                           "encode (fetch_request)", "parse (leader)"}
    assert all(us > 0 for us in result.values())


def test_fetch_request_bench_prints_a_markdown_table(capsys: pytest.CaptureFixture[str]) -> None:
    """The command line prints one row per step with a column per partition count."""
    assert main(["--partitions", "1,2", "--runs", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| Fetch v12 request") and "2 partitions" in lines[0]
    assert len(lines) == 2 + 5 and all(line.count("|") == 4 for line in lines)
