"""examples/connect/check_cdc.py, the connect tutorial's judge, on Debezium-shaped change events
(JsonConverter with schemas: ``{"schema": ..., "payload": {"op", "before", "after", "source"}}``)
and FileStreamSink lines: it must accept a consistent history and refuse an inconsistent one,
so that the tutorial's check can fail."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CHECK = Path(__file__).resolve().parents[2] / "examples" / "connect" / "check_cdc.py"


@pytest.fixture(scope="module")
def check_cdc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_cdc", CHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_cdc"] = module
    spec.loader.exec_module(module)
    return module


def event(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, pos: int, row: int = 0) -> bytes:
    source = {"connector": "mysql", "name": "shop", "db": "shop", "table": "orders",
              "file": "binlog.000001", "pos": pos, "row": row, "snapshot": "true" if op == "r" else "false"}
    return json.dumps({"schema": {"type": "struct"},
                       "payload": {"op": op, "before": before, "after": after, "source": source}}).encode()


ALICE = {"id": 1, "customer": "alice", "quantity": 2, "status": "placed"}
ALICE_PAID = {"id": 1, "customer": "alice", "quantity": 3, "status": "paid"}
BOB = {"id": 2, "customer": "bob", "quantity": 1, "status": "placed"}


def as_text(row: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in row.items()}


def test_a_consistent_history_replays_to_the_table(check_cdc: ModuleType) -> None:
    replay = check_cdc.Replay()
    for offset, value in enumerate([event("r", None, ALICE, 100), event("c", None, BOB, 200),
                                    event("u", ALICE, ALICE_PAID, 300), event("d", BOB, None, 400), None]):
        replay.apply(offset, value)
    assert replay.errors == [] and replay.duplicates == 0 and replay.tombstones == 1
    assert replay.ops == {"r": 1, "c": 1, "u": 1, "d": 1}
    assert check_cdc.diff("topic", replay.state, {"1": as_text(ALICE_PAID)}) == []


def test_an_update_whose_before_is_not_the_replayed_row_is_an_error(check_cdc: ModuleType) -> None:
    replay = check_cdc.Replay()
    replay.apply(0, event("c", None, ALICE, 100))
    replay.apply(1, event("u", {**ALICE, "quantity": 9}, ALICE_PAID, 200))
    assert len(replay.errors) == 1 and "before=" in replay.errors[0]


def test_a_redelivered_event_is_counted_as_a_duplicate_and_not_applied_twice(check_cdc: ModuleType) -> None:
    replay = check_cdc.Replay()
    for offset, value in enumerate([event("c", None, ALICE, 100), event("c", None, ALICE, 100)]):
        replay.apply(offset, value)
    assert replay.duplicates == 1 and replay.events == 1 and replay.errors == []


def test_a_lost_event_shows_as_a_difference_from_the_table(check_cdc: ModuleType) -> None:
    replay = check_cdc.Replay()
    replay.apply(0, event("c", None, ALICE, 100))  # the update to ALICE_PAID never arrived
    problems = check_cdc.diff("topic", replay.state, {"1": as_text(ALICE_PAID)})
    assert problems and "id 1" in problems[0]


def test_the_sink_file_replays_rows_and_rewritten_deletes(check_cdc: ModuleType, tmp_path: Path) -> None:
    sink = tmp_path / "orders.txt"
    sink.write_text("Struct{id=1,customer=alice,quantity=2,status=placed,__deleted=false}\n"
                    "Struct{id=2,customer=bob,quantity=1,status=placed,__deleted=false}\n"
                    "Struct{id=1,customer=alice,quantity=3,status=paid,__deleted=false}\n"
                    "Struct{id=2,customer=bob,quantity=1,status=placed,__deleted=true}\n")
    state, lines = check_cdc.sink_state(sink)
    assert lines == 4 and state == {"1": as_text(ALICE_PAID)}
    sink.write_text("{id=1}\n")
    with pytest.raises(ValueError, match="not a Struct line"):
        check_cdc.sink_state(sink)
