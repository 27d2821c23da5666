"""``kafkalike consumer-groups`` argument handling without a cluster: usage errors exit 2
with a one-line reason, --to-datetime parsing, and an unreachable bootstrap server exits 1."""

from __future__ import annotations

import pytest

from kafkalike.cli.consumer_groups import parse_datetime_ms
from kafkalike.cli.main import build_parser


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    args = build_parser().parse_args(["consumer-groups", *argv])
    code = int(args.func(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("argv,message", [
    (("--describe",), r"--group is required"),
    (("--reset-offsets", "--group", "g", "--to-earliest"), r"needs --topic or --all-topics"),
    (("--reset-offsets", "--group", "g", "--topic", "t"), r"needs one of --to-earliest"),
    (("--reset-offsets", "--group", "g", "--topic", "t", "--to-datetime", "yesterday"), r"bad --to-datetime"),
    (("--delete-offsets", "--topic", "t"), r"--group is required"),
    (("--delete-offsets", "--group", "g"), r"--delete-offsets takes one --group and at least one --topic"),
    (("--delete-offsets", "--group", "g", "--group", "h", "--topic", "t"), r"takes one --group"),
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    """Missing or malformed options are refused before any network I/O, exit code 2."""
    import re

    code, out = run(capsys, "--bootstrap-server", "127.0.0.1:1", *argv)
    assert code == 2 and re.search(message, out), out


def test_to_datetime_formats() -> None:
    """Kafka's --to-datetime format, with or without milliseconds and zone (UTC by default)."""
    assert parse_datetime_ms("1970-01-01T00:00:01.500") == 1500
    assert parse_datetime_ms("1970-01-01T00:00:01Z") == 1000
    assert parse_datetime_ms("1970-01-01T01:00:00+01:00") == 0
    with pytest.raises(ValueError):
        parse_datetime_ms("2026-13-01T00:00:00")


def test_unreachable_cluster_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """No broker answering the bootstrap address: one 'Error:' line, exit code 1."""
    code, out = run(capsys, "--bootstrap-server", "127.0.0.1:1", "--list", "--timeout", "20")
    assert code == 1 and out.startswith("Error: ") and len(out.strip().splitlines()) == 1, out
