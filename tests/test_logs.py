"""kafkalike.logs: the two line formats and the fields bound to every line."""

import io
import json

import pytest
import structlog

from kafkalike import logs


def test_json_lines_carry_bound_fields() -> None:
    """With fmt=json every line is one JSON object holding the event and the bound broker_id."""
    out = io.StringIO()
    logs.configure(fmt="json", stream=out, broker_id=3)
    structlog.get_logger().info("isr_shrunk", topic="t", isr=[1, 2])
    line = json.loads(out.getvalue().strip())
    assert line["event"] == "isr_shrunk"
    assert line["broker_id"] == 3
    assert line["isr"] == [1, 2]
    assert line["level"] == "info"


def test_console_lines_are_key_value() -> None:
    """The default format prints the event then key=value pairs."""
    out = io.StringIO()
    logs.configure(fmt="console", stream=out, broker_id=7)
    structlog.get_logger().warning("broker_registered", epoch=42)
    text = out.getvalue()
    assert "broker_registered" in text and "epoch=42" in text and "broker_id=7" in text


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^log format must be 'console' or 'json'"):
        logs.configure(fmt="xml")


def test_default_stream_follows_sys_stderr_after_it_is_swapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configured while one stderr is current, lines go to the stderr current when they are
    written (a closed earlier stderr must not break logging)."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    logs.configure(fmt="json")
    first.close()
    monkeypatch.setattr("sys.stderr", second)
    structlog.get_logger().warning("after_swap")
    assert json.loads(second.getvalue())["event"] == "after_swap"
