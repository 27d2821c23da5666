"""The transactional checker on crafted histories: one valid history, then the same history
with each anomaly put in by hand; the checker must name exactly that anomaly. Also the
history's JSON-lines round trip and the value codec."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkalike.chaos.history import HistoryError
from kafkalike.chaos.txn_checker import (ABORTED_READ, DUPLICATE_IN_COMMITTED_TXN, LOST_COMMITTED_WRITE,
                                         OFFSET_COMMIT_MISMATCH, OFFSET_SKIP, READ_PAST_OPEN_TXN,
                                         TORN_TRANSACTION, GroupOffsetFetched, TxnAcked, TxnAssigned,
                                         TxnConsumed, TxnDrained, TxnEnded, TxnHistoryWriter, TxnOffsetsSent,
                                         TxnSent, check_txn, check_txn_file, decode_value, encode_value)

RC, RU = "read_committed", "read_uncommitted"
IN, OUT = "in", "out"


def _valid() -> list:
    """Input topic ``in`` (one partition, offsets 0-2, written without transactions); a
    consume-transform-produce producer turns in-0..in-1 into transaction t1 (out-0 and out-1,
    committed with the group's offset 2), in-2 into t2 (aborted on purpose, offset 3 not
    committed), then again into t3 (committed, offset 3). Offsets of ``out``: t1 at 0 (p0) and
    0 (p1), marker at 1 on both; t2 at 2 (p0), abort marker 3; t3 at 4 (p0), marker 5. A
    read_committed consumer reads everything committed and drains both partitions; a
    read_uncommitted one also sees t2's record."""
    ev: list = []
    t = 0.0

    def at() -> float:
        nonlocal t
        t += 1.0
        return t

    for off in range(3):
        ev.append(TxnConsumed(at(), "ctp", RC, IN, 0, off, None, None))
    ev += [TxnSent(at(), "p", "t1", 0, OUT, 0, IN, 0, 0), TxnSent(at(), "p", "t1", 1, OUT, 1, IN, 0, 1),
           TxnAcked(at(), "t1", 0, OUT, 0, 0), TxnAcked(at(), "t1", 1, OUT, 1, 0),
           TxnOffsetsSent(at(), "p", "t1", "g", IN, 0, 2)]
    s = at()
    ev.append(TxnEnded(at(), "p", "t1", "commit", "committed", s))
    ev += [TxnSent(at(), "p", "t2", 0, OUT, 0, IN, 0, 2), TxnAcked(at(), "t2", 0, OUT, 0, 2),
           TxnOffsetsSent(at(), "p", "t2", "g", IN, 0, 3)]
    s = at()
    ev.append(TxnEnded(at(), "p", "t2", "abort", "aborted", s))
    ev += [TxnSent(at(), "p", "t3", 0, OUT, 0, IN, 0, 2), TxnAcked(at(), "t3", 0, OUT, 0, 4),
           TxnOffsetsSent(at(), "p", "t3", "g", IN, 0, 3)]
    s = at()
    ev.append(TxnEnded(at(), "p", "t3", "commit", "committed", s))
    ev += [TxnAssigned(at(), "rc", RC, OUT, 0, 0), TxnConsumed(at(), "rc", RC, OUT, 0, 0, "t1", 0),
           TxnConsumed(at(), "rc", RC, OUT, 0, 4, "t3", 0), TxnDrained(at(), "rc", RC, OUT, 0, 0, 6),
           TxnAssigned(at(), "rc", RC, OUT, 1, 0), TxnConsumed(at(), "rc", RC, OUT, 1, 0, "t1", 1),
           TxnDrained(at(), "rc", RC, OUT, 1, 0, 2),
           TxnAssigned(at(), "ru", RU, OUT, 0, 0), TxnConsumed(at(), "ru", RU, OUT, 0, 0, "t1", 0),
           TxnConsumed(at(), "ru", RU, OUT, 0, 2, "t2", 0), TxnConsumed(at(), "ru", RU, OUT, 0, 4, "t3", 0),
           TxnDrained(at(), "ru", RU, OUT, 0, 0, 6),
           GroupOffsetFetched(at(), "g", IN, 0, 3)]
    return ev


def _only(events: list) -> set[str]:
    return set(check_txn(events).anomalies)


def test_valid_history_is_valid() -> None:
    verdict = check_txn(_valid())
    assert verdict.status == "valid", verdict.to_json()
    assert verdict.summary["committed"] == 2 and verdict.summary["aborted"] == 1
    assert verdict.headline().startswith("VALID;")


def test_aborted_read_by_read_committed_consumer() -> None:
    ev = _valid()
    ev.insert(-2, TxnConsumed(100.0, "rc2", RC, OUT, 0, 2, "t2", 0))
    assert _only(ev) == {ABORTED_READ}


def test_read_uncommitted_may_see_aborted_records() -> None:
    ev = _valid()
    ev.insert(-2, TxnConsumed(100.0, "ru2", RU, OUT, 0, 2, "t2", 0))
    assert check_txn(ev).valid


def test_lost_committed_write_and_torn_transaction() -> None:
    """t1's record on partition 1 is missing from the drain of partition 1: lost, and t1 is
    torn (its partition-0 record was seen)."""
    ev = [e for e in _valid() if not (isinstance(e, TxnConsumed) and e.consumer == "rc" and e.partition == 1)]
    assert _only(ev) == {LOST_COMMITTED_WRITE, TORN_TRANSACTION}


def test_torn_transaction_of_unknown_outcome() -> None:
    """A transaction whose commit outcome is unknown may be all there or all gone, never half."""
    ev = [e for e in _valid() if not (isinstance(e, TxnEnded) and e.txn == "t1")
          and not (isinstance(e, TxnConsumed) and e.consumer == "rc" and e.partition == 1)]
    ev = [e for e in ev if not (isinstance(e, GroupOffsetFetched))]
    assert _only(ev) == {TORN_TRANSACTION}


def test_read_past_an_open_transaction() -> None:
    """A read_committed consumer read t3's offset 4 while t2 (first offset 2) had not yet
    asked to abort: the LSO was at most 2."""
    ev = _valid()
    t2_end = next(e for e in ev if isinstance(e, TxnEnded) and e.txn == "t2")
    ev.append(TxnConsumed(t2_end.start_time - 0.5, "early", RC, OUT, 0, 4, "t3", 0))
    assert _only(ev) == {READ_PAST_OPEN_TXN}
    # after t2 asked to end, t3 (first offset 4) was still open: reading its record is too early
    ev[-1] = TxnConsumed(t2_end.start_time + 0.1, "early", RC, OUT, 0, 4, "t3", 0)
    assert _only(ev) == {READ_PAST_OPEN_TXN}
    # once t3 asked to commit, the read is fine
    t3_end = next(e for e in ev if isinstance(e, TxnEnded) and e.txn == "t3")
    ev[-1] = TxnConsumed(t3_end.start_time + 0.1, "early", RC, OUT, 0, 4, "t3", 0)
    assert check_txn(ev).valid


def test_duplicate_within_a_committed_transaction() -> None:
    ev = _valid()
    drain_at = next(i for i, e in enumerate(ev) if isinstance(e, TxnDrained) and e.partition == 0)
    ev.insert(drain_at, TxnConsumed(ev[drain_at].time - 0.1, "rc", RC, OUT, 0, 5, "t3", 0))
    assert _only(ev) == {DUPLICATE_IN_COMMITTED_TXN}


def test_committed_offset_that_skips_records() -> None:
    """t3 never happened: the aborted t2's input (in-2) was never processed by a committed
    transaction, yet a committed transaction moved the group's offset past it."""
    ev = [e for e in _valid() if getattr(e, "txn", None) != "t3"]
    ev = [e for e in ev if not isinstance(e, GroupOffsetFetched)]
    t1_offsets = next(i for i, e in enumerate(ev) if isinstance(e, TxnOffsetsSent) and e.txn == "t1")
    ev[t1_offsets] = TxnOffsetsSent(ev[t1_offsets].time, "p", "t1", "g", IN, 0, 3)
    assert _only(ev) == {OFFSET_SKIP}


def test_aborted_offset_commit_visible_is_a_mismatch() -> None:
    """The group's offset moved to 3 with only the aborted t2 asking for it."""
    ev = [e for e in _valid() if getattr(e, "txn", None) != "t3"]
    assert _only(ev) == {OFFSET_COMMIT_MISMATCH}


def test_committed_records_without_a_drain_make_the_verdict_unknown() -> None:
    ev = [e for e in _valid() if not (isinstance(e, TxnDrained) and e.isolation == RC and e.partition == 1)]
    verdict = check_txn(ev)
    assert verdict.status == "unknown" and verdict.summary["unchecked_committed_records"] == 1


def test_a_history_without_committed_transactions_is_not_valid() -> None:
    """Producers that never got a transaction through (e.g. init_transactions failing all
    run long) leave nothing to judge: unknown, not valid."""
    ev = [e for e in _valid() if isinstance(e, (TxnAssigned, TxnDrained))]
    verdict = check_txn(ev)
    assert verdict.status == "unknown" and "no committed transaction" in verdict.unknown_reasons[0]


def test_history_round_trip_and_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "txn-history.jsonl"
    w = TxnHistoryWriter(path)
    for e in _valid():
        w.write(e)
    w.close()
    with open(path, "a") as f:
        f.write('{"type":"txn_sent","ti')  # a crashed writer's last line
    assert check_txn_file(path).valid
    with open(path, "a") as f:
        f.write('\n{"type":"nope"}\n')
    with pytest.raises(HistoryError):
        check_txn_file(path)


def test_history_that_contradicts_itself_is_refused() -> None:
    ev = _valid()
    ev.append(TxnSent(999.0, "p", "t1", 0, OUT, 0))
    with pytest.raises(HistoryError):
        check_txn(ev)


def test_value_codec() -> None:
    assert decode_value(encode_value("p-1:7", 3)) == ("p-1:7", 3)
    assert decode_value(b"garbage") is None and decode_value(None) is None and decode_value(b"\xff:1") is None
