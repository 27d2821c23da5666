"""``kafkalike protocol explain``: golden frames and responses printed field by field."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest

from kafkalike.cli import protocol as protocol_cli
from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.explain import explain_frame, load_frame, parse_api_spec

GOLDEN = Path(__file__).parent.parent / "data" / "golden"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="kafkalike")
    protocol_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_explain_prints_a_compressed_produce_request_record_by_record(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A librdkafka zstd Produce is shown with its header, batch header and decoded record."""
    rc, out, _ = _run(["protocol", "explain", str(GOLDEN / "librdkafka-zstd-Produce-v9.bin")],
                      capsys)
    assert rc == 0
    assert "api_key: 0 (Produce)" in out and "client_id: 'golden-librdkafka'" in out
    assert "codec=zstd" in out and "recordsCount         1" in out
    assert "key=10 bytes b'golden-key'" in out and "headers=[('h', b'v')]" in out


def test_explain_reads_hex_from_stdin(capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Hex text on standard input (with the size prefix) is accepted."""
    hex_text = (GOLDEN / "kcat-Metadata-v4.bin").read_bytes().hex(" ") + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(hex_text.encode())))
    rc, out, _ = _run(["protocol", "explain", "-"], capsys)
    assert rc == 0
    assert "Metadata request v4" in out and "name: 'golden'" in out


def test_explain_decodes_a_response_when_told_which(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    """--response ApiVersions:3 decodes a response frame (here our own table)."""
    frame = codec.encode_response(codec.RequestHeader(18, 3, 11, None),
                                  codec.api_versions_response(3))
    path = tmp_path / "resp.bin"
    path.write_bytes(frame)
    rc, out, _ = _run(["protocol", "explain", "--response", "ApiVersions:3", str(path)], capsys)
    assert rc == 0
    assert "correlation_id: 11" in out and "max_version: 12" in out


def test_explain_reports_codec_errors_with_the_kafka_code(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A truncated frame exits 1 and names the error and its Kafka error code."""
    path = tmp_path / "bad.bin"
    path.write_bytes((GOLDEN / "kcat-Produce-v7.bin").read_bytes()[4:60])
    rc, _, err = _run(["protocol", "explain", str(path)], capsys)
    assert rc == 1
    assert err.startswith("error: MalformedFrameError") and "INVALID_REQUEST" in err


def test_explain_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable file or a bad --response spec exits 2."""
    assert _run(["protocol", "explain", "/nonexistent/frame.bin"], capsys)[0] == 2
    assert _run(["protocol", "explain", "--response", "Nope:1", "-"], capsys)[0] == 2


def test_explain_helpers() -> None:
    """load_frame strips the size prefix and hex; parse_api_spec takes names or numbers."""
    raw = (GOLDEN / "aiokafka-ApiVersions-v0.bin").read_bytes()
    assert load_frame(raw) == raw[4:] == load_frame(raw.hex().encode()) == load_frame(raw[4:])
    assert parse_api_spec("Fetch:12") == (1, 12) == parse_api_spec("1:12")
    assert parse_api_spec("offsetforleaderepoch:4") == (ApiKey.OFFSET_FOR_LEADER_EPOCH, 4)
    assert "ApiVersions request v0" in explain_frame(raw[4:])
