"""The workload reads librdkafka's idempotence log lines (debug=eos) into ProducerEpoch events:
the parser on the exact texts librdkafka 2.x writes, and the handler's events and reasons."""

import io
import logging
import threading

from kafkalike.chaos.history import HistoryWriter, ProducerEpoch, read_history
from kafkalike.chaos.workload import EosLogHandler, LockedHistory, parse_eos_line

NEWPID_FIRST = ("NEWPID [p0.0#producer-1] [thrd:127.0.0.1:40001/1]: chaos-x [2] changed "
                "PID{Invalid} -> PID{Id:1000,Epoch:0} with base MsgId 1")
NEWPID_BUMP = ("NEWPID [p0.0#producer-1] [thrd:127.0.0.1:40001/1]: chaos-x [2] changed "
               "PID{Id:1000,Epoch:0} -> PID{Id:1000,Epoch:1} with base MsgId 1833")
DRAIN_BUMP = ("DRAIN [p0.0#producer-1] [thrd:127.0.0.3:40003/3]: Beginning partition drain in state "
              "Assigned for PID{Id:1000,Epoch:0} epoch bump for 2 partition(s) with in-flight "
              "requests: skipped sequence numbers")


def test_parse_eos_line_reads_newpid_and_drain_lines() -> None:
    """NEWPID gives the partition and both ids; DRAIN gives what happens and why; others None."""
    assert parse_eos_line(NEWPID_BUMP) == ("newpid", {"topic": "chaos-x", "partition": 2, "old_id": 1000,
                                                      "old_epoch": 0, "id": 1000, "epoch": 1})
    assert parse_eos_line(NEWPID_FIRST) == ("newpid", {"topic": "chaos-x", "partition": 2, "old_id": -1,
                                                       "old_epoch": -1, "id": 1000, "epoch": 0})
    assert parse_eos_line("DRAIN [p0.0#producer-1] [thrd:127.0.0.1:1/1]: chaos-x [0] beginning partition drain: "
                          "wait for outstanding requests to finish before producing to new leader") is None
    assert parse_eos_line(DRAIN_BUMP) == ("drain", {"what": "epoch bump", "reason": "skipped sequence numbers"})
    assert parse_eos_line("IDEMPSTATE [p0.0#producer-1] [thrd:main]: Idempotent producer state "
                          "change Init -> RequestPID") is None
    assert parse_eos_line("NEWPID garbage") is None
    assert parse_eos_line("") is None


def test_eos_handler_writes_producer_epochs_with_the_bump_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The first id of a partition has no reason; a bump carries the last DRAIN reason; warnings
    are printed; debug noise is dropped."""
    path = tmp_path / "history.jsonl"
    history = LockedHistory(HistoryWriter(path))
    out = io.StringIO()
    changes = []
    handler = EosLogHandler("p0.0", history, lambda: changes.append(1), stream=out)
    logger = logging.getLogger("test_chaos_workload_eos")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.debug(NEWPID_FIRST)
    logger.debug("IDEMPSTATE [p0.0#producer-1] [thrd:main]: noise")
    logger.debug(DRAIN_BUMP)
    logger.debug(NEWPID_BUMP)
    logger.error("FAIL [p0.0#producer-1] [thrd:x]: Connect to ipv4#127.0.0.3:1 failed")
    history.close()
    events = list(read_history(path))
    assert [(e.producer, e.topic, e.partition, e.producer_id, e.epoch, e.reason) for e in events] == [
        ("p0.0", "chaos-x", 2, 1000, 0, ""),
        ("p0.0", "chaos-x", 2, 1000, 1, "epoch bump: skipped sequence numbers"),
    ]
    assert all(isinstance(e, ProducerEpoch) for e in events)
    assert changes == [1]
    assert "Connect to ipv4#127.0.0.3:1 failed" in out.getvalue() and "noise" not in out.getvalue()
    assert threading.active_count() >= 1
