"""The checker on hand-made histories: a clean one is valid, and each anomaly injected alone is
reported as exactly that anomaly, with its evidence."""

import json
import pathlib
import re

import pytest

from kafkalike.chaos.checker import (
    ANOMALY_KINDS,
    DIVERGENT_READ,
    DOUBLE_ACK,
    DUPLICATE,
    GAP,
    INVALID,
    LOST,
    ORDER,
    PHANTOM,
    REORDER,
    UNKNOWN,
    VALID,
    CheckerOptions,
    Verdict,
    Window,
    check,
    check_file,
)
from kafkalike.chaos.history import (
    Acknowledged,
    Assigned,
    Consumed,
    Drained,
    Event,
    Failed,
    FaultHealed,
    FaultStarted,
    HistoryError,
    Sent,
    dumps,
    history_text,
)

T = "chaos"


def acked(t: float, key: str, seq: int, part: int, off: int, producer: str = "p0",
          ack_dt: float = 0.01) -> list[Event]:
    """A send and its acknowledgement ack_dt later."""
    return [Sent(t, producer, T, key, seq, part), Acknowledged(t + ack_dt, T, key, seq, part, off)]


def reads(consumer: str, part: int, recs: list[tuple[int, str, int | None]], t: float,
          start: int | None = 0) -> list[Event]:
    """An assignment at ``start`` then one Consumed per (offset, key, seq)."""
    out: list[Event] = [Assigned(t, consumer, T, part, start)]
    for i, (off, key, seq) in enumerate(recs):
        out.append(Consumed(t + 0.001 * (i + 1), consumer, T, part, off, key, seq))
    return out


def drain(part: int, recs: list[tuple[int, str, int | None]], end: int, t: float = 9.0) -> list[Event]:
    """The final reader: a pass over the whole partition and its Drained marker."""
    return reads("drain", part, recs, t) + [Drained(t + 0.5, "drain", T, part, 0, end)]


P0 = [(0, "a", 0), (1, "a", 1), (2, "a", 2), (3, "a", 3)]
P1 = [(0, "b", 0), (1, "b", 1), (2, "b", 2)]


def produced() -> list[Event]:
    """Writes of the clean run: a#0-3 on partition 0, b#0-2 on partition 1, a definite and an
    indefinite failure, and a fault around them."""
    h: list[Event] = [FaultStarted(0.5, "kill9", "broker-2")]
    for i, (off, key, seq) in enumerate(P0):
        h += acked(1.0 + 0.1 * i, key, seq, 0, off)
    for i, (off, key, seq) in enumerate(P1):
        h += acked(1.05 + 0.1 * i, key, seq, 1, off)
    h += [Sent(1.5, "p0", T, "b", 3, 1), Failed(1.51, T, "b", 3, "NOT_ENOUGH_REPLICAS", True, 1)]
    h += [Sent(1.6, "p0", T, "a", 4, 0), Failed(2.6, T, "a", 4, "REQUEST_TIMED_OUT", False)]
    h += [FaultHealed(3.0, "kill9", "broker-2")]
    return h


def clean() -> list[Event]:
    """A history of a correct run: group consumer c0 reads everything, then a drain."""
    return (produced() + reads("c0", 0, P0, 4.0) + reads("c0", 1, P1, 4.0)
            + drain(0, P0, 4) + drain(1, P1, 3))


def flagged(v: Verdict) -> set[str]:
    return {k for k in ANOMALY_KINDS if v.counts[k]}


def test_clean_history_is_valid() -> None:
    """A correct run's history gets status valid, no anomaly, exact summary counts."""
    v = check(clean())
    assert v.status == VALID and v.valid
    assert flagged(v) == set()
    s = v.summary
    assert (s["sent"], s["acknowledged"], s["failed"], s["failed_definite"], s["failed_indefinite"],
            s["no_outcome"]) == (9, 7, 2, 1, 1, 0)
    assert (s["consumed_events"], s["distinct_consumed"], s["drains"], s["acked_checked"],
            s["acked_unchecked"]) == (14, 7, 2, 7, 0)
    assert [(f.name, f.target, f.start, f.end) for f in v.faults] == [("kill9", "broker-2", 0.5, 3.0)]


def test_lost_record_alone() -> None:
    """a#3, acknowledged at offset 3, is beyond the drain's end (the log was truncated) and no
    one read it: lost, and nothing else."""
    h = (produced() + reads("c0", 0, P0[:3], 4.0) + reads("c0", 1, P1, 4.0)
         + drain(0, P0[:3], 3) + drain(1, P1, 3))
    v = check(h)
    assert v.status == INVALID and not v.valid
    assert flagged(v) == {LOST}
    assert v.counts[LOST] == 1
    e = v.evidence[LOST][0]
    assert (e["key"], e["seq"], e["partition"], e["offset"], e["drain_end_offset"]) == ("a", 3, 0, 3, 3)


def test_record_read_during_the_run_but_missing_from_the_drain_is_lost() -> None:
    """A read by a group consumer does not save a record the final drain no longer finds."""
    h = (produced() + reads("c0", 0, P0, 4.0) + reads("c0", 1, P1, 4.0)
         + drain(0, P0[:3], 3) + drain(1, P1, 3))
    v = check(h)
    assert flagged(v) == {LOST}
    assert v.evidence[LOST][0]["seq"] == 3


def test_drain_counts_only_its_own_last_pass() -> None:
    """Reads of the drain consumer before its final assignment do not cover the drain."""
    h = (produced() + reads("drain", 0, P0, 4.0) + reads("c0", 1, P1, 4.0)
         + [Assigned(8.0, "drain", T, 0, 0), Drained(8.5, "drain", T, 0, 0, 0)] + drain(1, P1, 3))
    v = check(h)
    assert v.counts[LOST] == 4
    assert {e["seq"] for e in v.evidence[LOST]} == {0, 1, 2, 3}


def test_duplicate_alone() -> None:
    """a#1 read at offsets 1 and 4 (a retried non-idempotent send written twice): duplicate only."""
    p0 = P0 + [(4, "a", 1)]
    h = produced() + reads("c0", 0, p0, 4.0) + reads("c0", 1, P1, 4.0) + drain(0, p0, 5) + drain(1, P1, 3)
    v = check(h)
    assert flagged(v) == {DUPLICATE}
    assert v.counts[DUPLICATE] == 1
    e = v.evidence[DUPLICATE][0]
    assert (e["key"], e["seq"], e["first"], e["again"]) == ("a", 1, "chaos-0@1", "chaos-0@4")


def test_duplicates_are_reported_but_not_judged_without_idempotence() -> None:
    """With idempotent=False duplicates are at-least-once delivery: counted, verdict valid."""
    p0 = P0 + [(4, "a", 1)]
    h = produced() + reads("c0", 0, p0, 4.0) + reads("c0", 1, P1, 4.0) + drain(0, p0, 5) + drain(1, P1, 3)
    v = check(h, CheckerOptions(idempotent=False))
    assert v.status == VALID
    assert v.counts[DUPLICATE] == 1
    assert DUPLICATE not in v.anomalies
    assert "duplicate (not judged)" in v.render_text()


def test_rereading_the_same_offset_after_a_rewind_is_not_a_duplicate() -> None:
    """A consumer reassigned to an earlier offset reads records again at the same offsets: valid."""
    h = clean() + reads("c0", 0, P0[1:], 5.0, start=1)
    assert check(h).status == VALID


@pytest.mark.parametrize(
    ("record", "why"),
    [(("zz", 0), "never sent"), (("b", 3), "send failed definitely: NOT_ENOUGH_REPLICAS"),
     (("a", None), "value did not decode")],
)
def test_phantom_alone(record: tuple[str, int | None], why: str) -> None:
    """A record read that was never sent, whose send failed definitely, or that does not
    decode: phantom only."""
    p1 = P1 + [(3, record[0], record[1])]
    h = produced() + reads("c0", 0, P0, 4.0) + reads("c0", 1, P1, 4.0) + drain(0, P0, 4) + drain(1, p1, 4)
    v = check(h)
    assert flagged(v) == {PHANTOM}
    assert v.counts[PHANTOM] == 1
    assert v.evidence[PHANTOM][0]["why"] == why


def test_indefinite_failure_that_was_written_is_neither_lost_nor_phantom() -> None:
    """a#4 timed out but is in the log: reading it is fine, and it is counted as an uncertain read."""
    p0 = P0 + [(4, "a", 4)]
    h = produced() + reads("c0", 0, p0, 4.0) + reads("c0", 1, P1, 4.0) + drain(0, p0, 5) + drain(1, P1, 3)
    v = check(h)
    assert v.status == VALID
    assert v.summary["uncertain_read"] == 1


def test_order_violation_alone() -> None:
    """a#0 was acknowledged (offset 1) before a#1 was sent, yet a#1 got offset 0: order only,
    although every reader agrees with the acknowledged offsets."""
    h: list[Event] = []
    h += acked(1.0, "a", 0, 0, 1)
    h += acked(1.1, "a", 1, 0, 0)
    h += acked(1.2, "a", 2, 0, 2)
    p0 = [(0, "a", 1), (1, "a", 0), (2, "a", 2)]
    h += reads("c0", 0, p0, 4.0) + drain(0, p0, 3)
    v = check(h)
    assert flagged(v) == {ORDER}
    assert v.counts[ORDER] == 1
    e = v.evidence[ORDER][0]
    assert e["key"] == "a" and e["why"].startswith("acknowledged before the other was sent")
    assert "seq 0" in e["earlier"] and "seq 1" in e["later"]


def test_one_producers_sends_acknowledged_out_of_send_order() -> None:
    """a#0 sent before a#1 by one idempotent producer, both in flight, a#1 at the lower offset:
    an order violation with idempotence, accepted without it."""
    h: list[Event] = [Sent(1.0, "p0", T, "a", 0, 0), Sent(1.05, "p0", T, "a", 1, 0),
                      Acknowledged(1.2, T, "a", 1, 0, 0), Acknowledged(1.3, T, "a", 0, 0, 1)]
    p0 = [(0, "a", 1), (1, "a", 0)]
    h += reads("c0", 0, p0, 4.0) + drain(0, p0, 2)
    v = check(h)
    assert flagged(v) == {ORDER}
    assert v.evidence[ORDER][0]["why"] == "one producer's sends acknowledged out of send order"
    assert check(h, CheckerOptions(idempotent=False)).status == VALID


def test_consumer_reading_a_key_out_of_acknowledged_order() -> None:
    """c0 sees a#1 at offset 0 and a#0 at offset 1 while the acks (and the drain) say the
    opposite: the key was read out of order, both offsets were read divergently, and a#0 and
    a#1 each appear at two offsets across readers."""
    h = produced() + reads("c0", 0, [(0, "a", 1), (1, "a", 0)] + P0[2:], 4.0)
    h += reads("c0", 1, P1, 4.0) + drain(0, P0, 4) + drain(1, P1, 3)
    v = check(h)
    assert flagged(v) == {ORDER, DIVERGENT_READ, DUPLICATE}
    assert v.counts[DIVERGENT_READ] == 2 and v.counts[DUPLICATE] == 2
    assert v.evidence[ORDER][0]["why"] == "read out of acknowledged order"
    assert v.evidence[ORDER][0]["consumer"] == "c0"


def test_double_acknowledged_offset_alone() -> None:
    """a#3 was acknowledged at offset 2, a#2's offset, though it sits at 3: double_ack only."""
    h = [e for e in produced() if not (isinstance(e, Acknowledged) and e.seq == 3 and e.key == "a")]
    h.append(Acknowledged(1.31, T, "a", 3, 0, 2))
    h += reads("c0", 0, P0, 4.0) + reads("c0", 1, P1, 4.0) + drain(0, P0, 4) + drain(1, P1, 3)
    v = check(h)
    assert flagged(v) == {DOUBLE_ACK}
    e = v.evidence[DOUBLE_ACK][0]
    assert (e["partition"], e["offset"], e["first"], e["second"]) == (0, 2, "a#2", "a#3")


def test_double_acknowledged_offset_where_the_log_kept_one_record() -> None:
    """Two records acknowledged at one offset and the log holds only the first: the second is
    also lost (one offset cannot hold two records)."""
    h = [e for e in produced() if not (isinstance(e, Acknowledged) and e.seq == 3 and e.key == "a")]
    h.append(Acknowledged(1.31, T, "a", 3, 0, 2))
    h += reads("c0", 0, P0[:3], 4.0) + reads("c0", 1, P1, 4.0) + drain(0, P0[:3], 3) + drain(1, P1, 3)
    v = check(h)
    assert flagged(v) == {DOUBLE_ACK, LOST}
    assert v.evidence[LOST][0]["seq"] == 3


def test_divergent_read_alone() -> None:
    """c0 read offset 2 as a#4 (a timed-out send) while a#2 is acknowledged there and the drain
    reads a#2: divergent_read only."""
    p0_c0 = [(0, "a", 0), (1, "a", 1), (2, "a", 4), (3, "a", 3)]
    h = produced() + reads("c0", 0, p0_c0, 4.0) + reads("c0", 1, P1, 4.0) + drain(0, P0, 4) + drain(1, P1, 3)
    v = check(h)
    assert flagged(v) == {DIVERGENT_READ}
    e = v.evidence[DIVERGENT_READ][0]
    assert (e["offset"], e["read"], e["acknowledged"], e["consumer"]) == (2, "a#4", "a#2", "c0")


def test_reads_disagreeing_at_an_unacknowledged_offset_are_divergent() -> None:
    """Two consumers read different records at an offset no ack names: divergent_read."""
    p0 = P0 + [(4, "a", 4)]
    h = produced() + reads("c0", 0, P0 + [(4, "zz", 9)], 4.0) + reads("c0", 1, P1, 4.0)
    h += drain(0, p0, 5) + drain(1, P1, 3)
    v = check(h)
    assert DIVERGENT_READ in flagged(v)
    assert v.status == INVALID


def test_gap_alone() -> None:
    """c0 jumped from offset 1 to 3 over a#2, which the ack and the drain place at 2: gap only."""
    h = produced() + reads("c0", 0, [P0[0], P0[1], P0[3]], 4.0) + reads("c0", 1, P1, 4.0)
    h += drain(0, P0, 4) + drain(1, P1, 3)
    v = check(h)
    assert flagged(v) == {GAP}
    e = v.evidence[GAP][0]
    assert (e["consumer"], e["from_offset"], e["to_offset"], e["records_skipped"], e["first_skipped"]) \
        == ("c0", 1, 3, 1, 2)


def test_gap_from_the_assigned_offset() -> None:
    """A pass assigned at offset 0 whose first read is offset 2 skipped offsets 0 and 1."""
    h = produced() + reads("c0", 0, P0[2:], 4.0, start=0) + reads("c0", 1, P1, 4.0)
    h += drain(0, P0, 4) + drain(1, P1, 3)
    v = check(h)
    assert flagged(v) == {GAP}
    assert v.evidence[GAP][0]["records_skipped"] == 2


def test_jump_over_a_transaction_marker_is_not_a_gap() -> None:
    """Offset 2 holds no record anyone wrote or read (a control batch): skipping it is fine,
    unless the topic is declared contiguous."""
    h: list[Event] = []
    h += acked(1.0, "a", 0, 0, 0) + acked(1.1, "a", 1, 0, 1) + acked(1.2, "a", 2, 0, 3)
    p0 = [(0, "a", 0), (1, "a", 1), (3, "a", 2)]
    h += reads("c0", 0, p0, 4.0) + drain(0, p0, 4)
    assert check(h).status == VALID
    v = check(h, CheckerOptions(contiguous_offsets=True))
    assert flagged(v) == {GAP}
    assert v.counts[GAP] == 2  # c0 and the drain


def test_drain_stopping_short_of_its_end_skipped_records() -> None:
    """A drain whose last read is below end_offset - 1, with an acknowledged record between,
    skipped it: the record is lost and the drain has a gap."""
    h = produced() + reads("c0", 0, P0, 4.0) + reads("c0", 1, P1, 4.0) + drain(0, P0[:3], 4) + drain(1, P1, 3)
    v = check(h)
    assert flagged(v) == {LOST, GAP}
    assert v.evidence[GAP][0]["consumer"] == "drain"


def test_reorder_alone() -> None:
    """c0 read offsets 0, 1, 2, then 1 again without a new assignment: reorder only."""
    h = produced() + reads("c0", 0, P0[:3] + [P0[1], P0[2], P0[3]], 4.0) + reads("c0", 1, P1, 4.0)
    h += drain(0, P0, 4) + drain(1, P1, 3)
    v = check(h)
    assert flagged(v) == {REORDER}
    e = v.evidence[REORDER][0]
    assert (e["consumer"], e["previous_offset"], e["offset"]) == ("c0", 2, 1)


def test_unavailability_windows_have_exact_bounds() -> None:
    """Windows open at the failed send (or the last ack after it) and close at the next ack;
    one left open closes at the history's end."""
    h: list[Event] = []
    h += acked(9.0, "a", 0, 0, 0, ack_dt=0.5)           # ack at 9.5
    h += [Sent(10.0, "p0", T, "a", 1, 0), Sent(10.5, "p0", T, "a", 2, 0),
          Failed(11.0, T, "a", 1, "REQUEST_TIMED_OUT", False),
          Failed(11.5, T, "a", 2, "NOT_LEADER_OR_FOLLOWER", False)]
    h += acked(11.8, "a", 3, 0, 1, ack_dt=0.2)          # ack at 12.0 closes [10.0, 12.0]
    h += acked(19.0, "a", 4, 0, 2, ack_dt=1.0)          # ack at 20.0
    h += [Sent(19.5, "p0", T, "a", 5, 0), Failed(21.0, T, "a", 5, "REQUEST_TIMED_OUT", False, 0)]
    h += acked(24.0, "a", 6, 0, 3, ack_dt=1.0)          # ack at 25.0 closes [20.0, 25.0]
    h += [Sent(29.0, "p0", T, "a", 7, 0), Failed(30.0, T, "a", 7, "NOT_ENOUGH_REPLICAS", True, 0)]
    h += acked(26.0, "b", 0, 1, 0)                      # partition 1 never unavailable
    p0 = [(0, "a", 0), (1, "a", 3), (2, "a", 4), (3, "a", 6)]
    h += drain(0, p0, 4, t=39.0) + drain(1, [(0, "b", 0)], 1, t=39.0)  # last event at 39.5
    v = check(h)
    assert v.status == VALID
    a0, a1 = v.availability
    assert (a0.partition, a1.partition) == (0, 1)
    assert a0.windows == (Window(10.0, 12.0, 2), Window(20.0, 25.0, 1), Window(29.0, 39.5, 1, open=True))
    assert a0.total == pytest.approx(2.0 + 5.0 + 10.5)
    assert a0.longest == pytest.approx(10.5)
    assert (a0.acknowledged, a0.failed) == (4, 4)
    assert a1.windows == () and a1.total == 0.0
    assert v.longest_unavailability == pytest.approx(10.5)
    j = v.to_json()["availability"][0]
    assert j["total_s"] == 17.5 and j["longest_s"] == 10.5 and j["windows"][2]["open"] is True


def test_failures_without_a_partition_are_counted_apart() -> None:
    """A failure whose partition neither the Sent nor the Failed names opens no window."""
    h: list[Event] = [Sent(1.0, "p0", T, "x", 0), Failed(2.0, T, "x", 0, "REQUEST_TIMED_OUT", False)]
    v = check(h)
    assert v.availability == ()
    assert v.summary["unattributed_failures"] == 1


def test_history_without_a_drain_is_unknown_not_valid() -> None:
    """Acknowledged records no drain covers make the verdict unknown, naming the partitions."""
    h = produced() + reads("c0", 0, P0, 4.0) + drain(1, P1, 3)
    v = check(h)
    assert v.status == UNKNOWN and not v.valid
    assert v.summary["acked_unchecked"] == 4
    assert "chaos-0" in v.unknown_reasons[0]


def test_acknowledgement_after_the_drain_is_unchecked() -> None:
    """A record acknowledged after its partition's drain cannot be judged: unknown."""
    h = clean() + acked(20.0, "a", 9, 0, 4)
    v = check(h)
    assert v.status == UNKNOWN
    assert v.summary["acked_unchecked"] == 1


def test_acknowledgement_during_the_drain_pass_is_unchecked_not_lost() -> None:
    """A record acknowledged after the drain began may lie past the end offset the drain
    fetched: it is unchecked (unknown), never lost."""
    h = produced() + reads("c0", 1, P1, 4.0) + drain(1, P1, 3)
    h += [Assigned(9.0, "drain", T, 0, 0)] + [Consumed(9.1, "drain", T, 0, o, k, s) for o, k, s in P0]
    h += acked(9.2, "a", 9, 0, 4) + [Drained(9.5, "drain", T, 0, 0, 4)]
    v = check(h)
    assert v.status == UNKNOWN
    assert v.counts[LOST] == 0 and v.summary["acked_unchecked"] == 1


def test_anomaly_wins_over_unknown() -> None:
    """A history with an anomaly is invalid even if parts of it are unchecked."""
    h = produced() + reads("c0", 0, [P0[0], P0[0]], 4.0) + drain(1, P1, 3)
    assert check(h).status == INVALID


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([Sent(1.0, "p", T, "a", 0), Sent(2.0, "p", T, "a", 0)], r"^event 2: \('a', 0\) sent twice$"),
        ([Acknowledged(1.0, T, "a", 0, 0, 0)], r"^event 1: \('a', 0\) acknowledged but never sent$"),
        ([Failed(1.0, T, "a", 0, "E")], r"^event 1: \('a', 0\) failed but never sent$"),
        ([Sent(1.0, "p", T, "a", 0), Acknowledged(1.1, T, "a", 0, 0, 0), Failed(1.2, T, "a", 0, "E")],
         r"^event 3: \('a', 0\) has a second outcome$"),
        ([Sent(1.0, "p", T, "a", 0), {"type": "sent"}], r"^event 2: not a history event"),
    ],
)
def test_inconsistent_history_is_a_typed_error(events: list, message: str) -> None:
    """A history the workload could not have written raises HistoryError naming the event."""
    with pytest.raises(HistoryError, match=message):
        check(events)


def test_evidence_is_bounded_and_counts_are_exact() -> None:
    """With max_evidence=5, 50 lost records give 5 evidence items and a count of 50."""
    h: list[Event] = []
    for i in range(50):
        h += acked(1.0 + i * 0.01, "k", i, 0, i)
    h += drain(0, [], 0)
    v = check(h, CheckerOptions(max_evidence=5))
    assert v.counts[LOST] == 50
    assert len(v.evidence[LOST]) == 5


def test_verdict_renders_as_text_and_json() -> None:
    """The text table names the verdict, anomalies and partitions; to_json is plain JSON."""
    h = produced() + reads("c0", 0, P0[:3], 4.0) + reads("c0", 1, P1, 4.0) + drain(0, P0[:3], 3) + drain(1, P1, 3)
    v = check(h)
    text = v.render_text()
    assert text.startswith("verdict: INVALID\n")
    assert re.search(r"^lost +1  key=a seq=3", text, re.M)
    assert "chaos-0" in text and "kill9 broker-2" in text
    j = json.loads(v.dumps())
    assert j["status"] == "invalid" and j["valid"] is False
    assert j["counts"][LOST] == 1 and j["evidence"][LOST][0]["seq"] == 3
    assert j["faults"] == [{"name": "kill9", "target": "broker-2", "start": 0.5, "end": 3.0, "detail": ""}]


def test_headline_is_one_line_with_the_verdict_and_the_loss() -> None:
    """headline() names the status, the nonzero anomalies, acknowledged and lost counts."""
    h = produced() + reads("c0", 0, P0[:3], 4.0) + reads("c0", 1, P1, 4.0) + drain(0, P0[:3], 3) + drain(1, P1, 3)
    assert check(h).headline() == "INVALID: lost=1; acknowledged 7, lost 1, longest unavailability 8.000 s"
    assert check(clean()).headline().startswith("VALID; acknowledged 7, lost 0")


def test_check_file_ignores_a_torn_last_line(tmp_path: pathlib.Path) -> None:
    """A crashed run's history (torn last line) checks as its complete lines do."""
    path = tmp_path / "history.jsonl"
    path.write_text(history_text(clean()) + dumps(Sent(20.0, "p0", T, "a", 9, 0))[:17], encoding="utf-8")
    v = check_file(str(path))
    assert v.status == VALID
    assert v.summary["torn_last_line"] is True
    assert v.summary["events"] == len(clean())
