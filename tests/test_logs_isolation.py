"""structlog configuration does not leak from one test into the next (tests/conftest.py).

The first test configures kafkalike's logging with a WARNING filter, as a CLI ``main`` run in
process does; the second captures an INFO event. Without the conftest fixture that restores
structlog's configuration after each test, the second sees nothing (both were seen failing so in
the full run: tests/broker/test_request_hops.py and tests/storage/test_producer_state_snapshot.py
after a CLI test)."""

import logging

import structlog

from kafkalike import logs


def test_a_cli_style_configure_filters_info_events() -> None:
    logs.configure(fmt="json", level=logging.WARNING)
    with structlog.testing.capture_logs() as captured:
        structlog.get_logger("isolation").info("dropped_by_the_filter")
    assert captured == []


def test_the_next_test_captures_info_events_again() -> None:
    with structlog.testing.capture_logs() as captured:
        structlog.get_logger("isolation").info("captured", n=1)
    assert [(e["event"], e["n"]) for e in captured] == [("captured", 1)]
