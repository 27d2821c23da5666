"""examples/streams: the Kafka Streams app with a dead-letter topic (OrdersDlq.java,
docs/tutorials/streams-dlq.md), judged by examples/streams/orders_dlq.py against the input:
every good order summed once per customer (exactly_once_v2, updates 1..n read committed),
every poison record in ``orders.DLQ`` exactly once, with its original bytes and the exception
handler that matches its fault (deserialization: not JSON; KIP-1033 processing: bad values).

Default run: the checker's rules and its verdict on crafted outputs (no cluster, milliseconds).
KAFKALIKE_SLOW=1: the tutorial page against a running 3-broker cluster (Kafka Streams 3.9.2
built from Maven Central by ``scripts/streams-dlq build``; the judge SIGKILLs the app and a
broker half-way)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.fixtures_cluster import _new_cluster

ROOT = Path(__file__).resolve().parents[2]
ORDERS_DLQ = ROOT / "examples" / "streams" / "orders_dlq.py"


def orders_dlq() -> ModuleType:
    spec = importlib.util.spec_from_file_location("orders_dlq", ORDERS_DLQ)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_checker_classifies_records_with_the_apps_rules() -> None:
    od = orders_dlq()
    kinds = {i: od.classify(od.order(i)[1])[0] for i in range(1, 201)}
    assert {i for i, k in kinds.items() if k == "bad-json"} == {7, 57, 107, 157}
    assert {i for i, k in kinds.items() if k == "bad-value"} == {23, 41, 73, 123, 141, 173}
    assert od.classify(od.order(8)[1]) == ("good", "c1", 900)
    # what Jackson's readTree (FAIL_ON_TRAILING_TOKENS) refuses or gives as no object: the deserializer's fault
    for raw in (b'[1, 2]', b'"text"', b'{"customer": "c1"} trailing', b'', b'{"amount_cents": NaN}', b'\xff\xfe'):
        assert od.classify(raw)[0] == "bad-json", raw
    # a JSON object with bad values: validate-order's (the processing handler's) fault
    for raw in (b'{"customer": "", "quantity": 1, "amount_cents": 1}', b'{"customer": 5, "quantity": 1, "amount_cents": 1}',
                b'{"customer": "c", "quantity": 1.0, "amount_cents": 1}', b'{"customer": "c", "quantity": true, "amount_cents": 1}',
                b'{"customer": "c", "quantity": 2}', b'{"customer": "c", "quantity": -1, "amount_cents": 1}'):
        assert od.classify(raw)[0] == "bad-value", raw
    assert od.classify(b'{"customer": "c", "quantity": 1, "amount_cents": 0, "extra": [1]}') == ("good", "c", 0)


def _crafted(od: ModuleType, updates: dict[str, list[tuple[int, int]]],
             letters: dict[tuple[int, int], list[dict[str, Any]]]) -> tuple[Any, Any, Any]:
    expected = od.Expected()
    expected.totals = {"c1": (2, 300), "c2": (1, 50)}
    expected.poison = {(0, 4): ("bad-json", b"4", b"not an order"), (1, 9): ("bad-value", b"9", b'{"quantity": 0}')}
    expected.records = 5
    totals = object.__new__(od.TotalsReader)
    totals.updates, totals.bad, totals.records = dict(updates), [], sum(len(u) for u in updates.values())
    dead = object.__new__(od.DeadLetterReader)
    dead.letters, dead.unsourced, dead.records = dict(letters), [], sum(len(v) for v in letters.values())
    return expected, totals, dead


def _letter(handler: str, key: bytes, value: bytes) -> dict[str, Any]:
    return {"key": key, "value": value, "headers": {"kafkalike.dlq.handler": handler,
                                                    "__streams.errors.exception": "x.SomeException: why"}}


def test_the_verdict_passes_the_exact_answer_and_fails_a_recount_a_duplicate_a_loss_and_a_misroute() -> None:
    od = orders_dlq()
    good_updates = {"c1": [(1, 100), (2, 300)], "c2": [(1, 50)]}
    good_letters = {(0, 4): [_letter("deserialization", b"4", b"not an order")],
                    (1, 9): [_letter("processing", b"9", b'{"quantity": 0}')]}
    exact = od.verdict(*_crafted(od, good_updates, good_letters))
    assert exact["ok"] and exact["sequences_exact"] and exact["poison_records"] == 2 and exact["good_orders"] == 3
    # a restart that counted c1's second order again from an older state: final totals right, an update repeated
    recount = od.verdict(*_crafted(od, {**good_updates, "c1": [(1, 100), (2, 300), (2, 300)]}, good_letters))
    assert not recount["ok"] and recount["repeated_updates"] == 1 and not recount["wrong_customers"]
    lost = od.verdict(*_crafted(od, {"c1": [(1, 100)], "c2": [(1, 50)]}, good_letters))
    assert not lost["ok"] and lost["wrong_customers"] == {"c1": {"expected": [2, 300], "latest": [1, 100]}}
    twice = od.verdict(*_crafted(od, good_updates, {**good_letters, (0, 4): good_letters[(0, 4)] * 2}))
    assert not twice["ok"] and twice["dead_letters_duplicated"] == {"0@4": 2}
    missing = od.verdict(*_crafted(od, good_updates, {(0, 4): good_letters[(0, 4)]}))
    assert not missing["ok"] and missing["dead_letters_missing"] == ["1@9"]
    misrouted = od.verdict(*_crafted(od, good_updates, {**good_letters,
                                                        (1, 9): [_letter("deserialization", b"9", b'{"quantity": 0}')]}))
    assert not misrouted["ok"] and len(misrouted["dead_letters_mismatched"]) == 1
    altered = od.verdict(*_crafted(od, good_updates, {**good_letters,
                                                      (0, 4): [_letter("deserialization", b"4", b"not an order!")]}))
    assert not altered["ok"] and "key/value as input: True/False" in altered["dead_letters_mismatched"][0]
    extra = od.verdict(*_crafted(od, good_updates, {**good_letters, (2, 0): [_letter("processing", b"1", b"{}")]}))
    assert not extra["ok"] and extra["dead_letters_extra"] == ["2@0"]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1", reason="minutes long: KAFKALIKE_SLOW=1")
@pytest.mark.skipif(shutil.which("java") is None or shutil.which("mvn") is None, reason="needs java and maven")
def test_the_streams_dlq_tutorial_runs_against_a_running_cluster(zk_connect: str, tmp_path: Path) -> None:
    """The page's judge kills a broker of --cluster-dir .kafkalike-tutorial, which the runner maps
    to <work-dir>/cluster: the cluster is made there."""
    cluster = _new_cluster(tmp_path / "cluster", zk_connect, 3, None)
    try:
        done = subprocess.run([str(ROOT / "scripts" / "tutorial"), "streams-dlq", "--bootstrap-server",
                               cluster.bootstrap_servers, "--work-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=1500, cwd=ROOT)
    finally:
        cluster.stop()
    assert done.returncode == 0, f"{done.stdout[-5000:]}\n{done.stderr[-6000:]}"
    assert "tutorial streams-dlq: OK" in done.stdout
    assert "judge streams-dlq exactly_once_v2: PASS" in done.stdout
    assert "== kill -9 the app" in done.stdout and "== kill -9 broker" in done.stdout
    assert "__streams.errors.exception" in done.stdout  # the page's console-consumer printed a dead letter's headers
