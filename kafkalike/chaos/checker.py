"""The chaos checker: a verdict on a history (kafkalike.chaos.history) computed from it alone.

``check(events, options) -> Verdict`` makes one pass over the events (keeping compact per-
record and per-consumer-stream tables), then derives every anomaly. The anomalies, each a
violation of what Kafka promises for acks=all, min.insync.replicas=2, idempotent producers
and unclean election off (docs/chaos.md, "The checker", says the same at length):

- lost: a record acknowledged before a drain of its partition began (its Assigned, else its
  Drained marker) was not read, at any offset, in that drain pass. A drain covers
  acknowledged offsets >= its start_offset; records acknowledged after the drain began,
  below its start, or on a partition without a drain are *unchecked* and make the verdict
  "unknown", never "valid".
- duplicate: one (key, seq) read at two different offsets of its partition (rereading one
  offset after a rewind is not a duplicate). Counted as an anomaly only with
  ``idempotent=True`` (the default); otherwise at-least-once allows it and it is reported.
- duplicate_new_epoch (reported, never judged): a duplicate whose producer's client moved
  the record's partition to a new idempotent epoch (a ProducerEpoch event) after sending the
  record and before its outcome. The broker deduplicates within one (producer id, epoch)
  only (KIP-98); librdkafka bumps the epoch on its own (after OUT_OF_ORDER_SEQUENCE_NUMBER
  on a request behind a failed one, or after message timeouts) and re-sends records that
  may already be in the log under the new epoch from sequence 0 (confluentinc/librdkafka
  issue 4953): a client's duplicate, not the cluster's.
- phantom: a read of a (key, seq) never sent, of a value that did not decode (seq None), or
  of a record whose send failed *definitely*.
- order: (a) acknowledged out of real-time order: record a of key k was acknowledged before
  record b of k was sent, yet b's offset is lower; (b) with ``idempotent``, one producer's
  records of k sent in one order and acknowledged at offsets in another (KIP-98 keeps the
  order of one producer's sends); (c) read out of order: a consumer pass first delivered
  k's records in an order differing from their acknowledged offsets (a record delivered
  again in the same pass is a duplicate, not an order violation).
- double_ack: one partition offset acknowledged for two different records.
- divergent_read: an offset read as a record other than the one acknowledged there, or read
  as different records by different reads (the log was rewritten under a reader).
- reorder: within one consumer pass (from an Assigned event to the next), an offset not
  greater than the previous one.
- gap: within one pass, a jump over an offset that some record is known to occupy (acked or
  read there by anyone), or from the Assigned offset to a higher first read. Offsets no
  event shows holding a record (transaction markers, compacted records) are not gaps;
  ``contiguous_offsets=True`` (topics with neither) counts any jump.

Consumer-group checks (for consumers that wrote a Joined event; groups that commit after
processing, as the workload's do):

- commit_backwards: a group committed an offset for a partition lower than one it had
  committed (and the coordinator accepted) before.
- skipped_by_group: an offset known to hold a record (acked or read there by anyone), at or
  above the partition's log start (the drain's start_offset, else 0), below an offset the
  group committed, that no member of the group had read by the time of that commit.
- unread_by_group: an acknowledged record the drain checked, at an offset below the group's
  last commit on its partition and not already a skipped_by_group offset, that no member of
  the group ever read (at any offset): the group read something else where it was. Records
  at or above the group's last commit were never reached by it: they make the verdict
  "unknown" (the group did not catch up), never "valid".

Unavailability, per partition (reported, not judged): a window opens at the first failed
produce on the partition while none is open -- starting at that produce's send time, or at
the partition's last acknowledgement if that came later -- and closes at the time of the
next acknowledgement (at a time strictly after the failure) on the partition; a window still
open closes at the history's last event and is marked open. A failure's partition is the
Failed event's, else its Sent's; failures with neither are counted as unattributed.

Verdict: "invalid" if any anomaly counts; else "unknown" if some acknowledged record went
unchecked (by the drain, or by a group that did not catch up); else "valid". Evidence
keeps at most ``max_evidence`` items per kind; the counts are exact. The history itself
must be consistent (each (key, seq) sent once, at most one outcome, every outcome after
its Sent): else HistoryError.
"""

from __future__ import annotations

import contextlib
import gc
import json
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

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
    Committed,
    Joined,
    ProducerEpoch,
    Sent,
)

LOST = "lost"
DUPLICATE = "duplicate"
DUPLICATE_NEW_EPOCH = "duplicate_new_epoch"
PHANTOM = "phantom"
ORDER = "order"
DOUBLE_ACK = "double_ack"
DIVERGENT_READ = "divergent_read"
REORDER = "reorder"
GAP = "gap"
COMMIT_BACKWARDS = "commit_backwards"
SKIPPED_BY_GROUP = "skipped_by_group"
UNREAD_BY_GROUP = "unread_by_group"
ANOMALY_KINDS: tuple[str, ...] = (LOST, DUPLICATE, PHANTOM, ORDER, DOUBLE_ACK, DIVERGENT_READ, REORDER, GAP,
                                  DUPLICATE_NEW_EPOCH, COMMIT_BACKWARDS, SKIPPED_BY_GROUP, UNREAD_BY_GROUP)
NEVER_JUDGED: frozenset[str] = frozenset((DUPLICATE_NEW_EPOCH,))
"""Kinds reported with their evidence but never making a verdict invalid."""

VALID = "valid"
INVALID = "invalid"
UNKNOWN = "unknown"


@attrs.frozen
class CheckerOptions:
    """How to judge a history.

    idempotent: the producers ran with enable.idempotence (the workload's default): duplicates
        are anomalies and one producer's per-key send order must hold in the log.
    contiguous_offsets: the topic has no transactions and no compaction, so every offset holds
        a data record and any jump in a consumer's offsets is a gap.
    max_evidence: evidence items kept per anomaly kind (counts stay exact).
    """

    idempotent: bool = True
    contiguous_offsets: bool = False
    max_evidence: int = 20


@attrs.frozen
class Window:
    """One unavailability window of a partition, in history seconds."""

    start: float
    end: float
    failures: int
    open: bool = False

    @property
    def duration(self) -> float:
        """end - start, seconds."""
        return self.end - self.start


@attrs.frozen
class PartitionAvailability:
    """The unavailability windows of one partition, with their total and longest (seconds)."""

    topic: str
    partition: int
    windows: tuple[Window, ...]
    acknowledged: int
    failed: int

    @property
    def total(self) -> float:
        """Sum of window durations, seconds."""
        return sum(w.duration for w in self.windows)

    @property
    def longest(self) -> float:
        """Longest window duration, seconds (0.0 without windows)."""
        return max((w.duration for w in self.windows), default=0.0)


@attrs.frozen
class Fault:
    """A fault of the nemesis timeline; end None: never healed in the history."""

    name: str
    target: str
    start: float
    end: float | None
    detail: str = ""


@attrs.frozen(eq=False)
class Verdict:
    """The checker's result.

    status: "valid" | "invalid" | "unknown"; counts: anomaly kind -> count (every kind);
    evidence: kind -> list of JSON-ready dicts (bounded); summary: named counts of the history;
    availability: per partition, sorted; faults: the timeline; unknown_reasons: why a
    history without anomalies is not "valid".
    """

    status: str
    counts: dict[str, int]
    evidence: dict[str, list[dict[str, Any]]]
    summary: dict[str, Any]
    availability: tuple[PartitionAvailability, ...]
    faults: tuple[Fault, ...]
    unknown_reasons: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        """True only for status "valid"."""
        return self.status == VALID

    @property
    def anomalies(self) -> frozenset[str]:
        """The kinds with a nonzero count that invalidate the history."""
        return frozenset(k for k, n in self.counts.items() if n and k in self.summary["judged_kinds"])

    @property
    def longest_unavailability(self) -> float:
        """Longest window over all partitions, seconds."""
        return max((a.longest for a in self.availability), default=0.0)

    def headline(self) -> str:
        """One line for a live run's last output, e.g. ``INVALID: lost=520 order=100 double_ack=100;
        acknowledged 1087, lost 520, longest unavailability 5.000 s``."""
        bad = [f"{k}={self.counts[k]}" for k in ANOMALY_KINDS if self.counts[k]]
        head = self.status.upper() + (": " + " ".join(bad) if bad else "")
        if self.unknown_reasons:
            head += f" ({self.unknown_reasons[0]})"
        return (f"{head}; acknowledged {self.summary['acknowledged']}, lost {self.counts[LOST]},"
                f" longest unavailability {self.longest_unavailability:.3f} s")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole verdict."""
        return {
            "status": self.status,
            "valid": self.valid,
            "counts": dict(self.counts),
            "unknown_reasons": list(self.unknown_reasons),
            "summary": dict(self.summary),
            "evidence": {k: list(v) for k, v in self.evidence.items() if v},
            "availability": [
                {
                    "topic": a.topic,
                    "partition": a.partition,
                    "acknowledged": a.acknowledged,
                    "failed": a.failed,
                    "total_s": round(a.total, 6),
                    "longest_s": round(a.longest, 6),
                    "windows": [
                        {"start": w.start, "end": w.end, "duration_s": round(w.duration, 6),
                         "failures": w.failures, "open": w.open}
                        for w in a.windows
                    ],
                }
                for a in self.availability
            ],
            "longest_unavailability_s": round(self.longest_unavailability, 6),
            "faults": [attrs.asdict(f) for f in self.faults],
        }

    def dumps(self) -> str:
        """to_json() as indented JSON text."""
        return json.dumps(self.to_json(), indent=2, sort_keys=False)

    def render_text(self, evidence_lines: int = 3, fault_lines: int = 30) -> str:
        """A human table: verdict, history counts, anomalies with their first
        ``evidence_lines`` evidence items, per-partition unavailability and the first
        ``fault_lines`` faults of the timeline."""
        s = self.summary
        out = [f"verdict: {self.status.upper()}"]
        for r in self.unknown_reasons:
            out.append(f"  unknown because: {r}")
        out.append(
            f"records: sent {s['sent']}, acknowledged {s['acknowledged']}, failed {s['failed']}"
            f" (definite {s['failed_definite']}, indefinite {s['failed_indefinite']}),"
            f" no outcome {s['no_outcome']}"
        )
        out.append(
            f"reads: {s['consumed_events']} consumed events, {s['distinct_consumed']} distinct records;"
            f" drains {s['drains']}; acknowledged checked {s['acked_checked']},"
            f" unchecked {s['acked_unchecked']}; indefinite/unanswered writes read {s['uncertain_read']}"
        )
        out.append("")
        out.append(f"{'anomaly':<32}{'count':>8}  evidence")
        for kind in ANOMALY_KINDS:
            n = self.counts[kind]
            ev = self.evidence.get(kind, [])
            judged = kind in s["judged_kinds"]
            label = kind if judged else f"{kind} (not judged)"
            first = _ev_text(ev[0]) if ev else ""
            out.append(f"{label:<32}{n:>8}  {first}")
            for e in ev[1:evidence_lines]:
                out.append(f"{'':<40}  {_ev_text(e)}")
        out.append("")
        out.append(f"{'partition':<20}{'acked':>8}{'failed':>8}{'windows':>9}{'total_s':>10}{'longest_s':>11}")
        for a in self.availability:
            tp = f"{a.topic}-{a.partition}"
            out.append(
                f"{tp:<20}{a.acknowledged:>8}{a.failed:>8}{len(a.windows):>9}"
                f"{a.total:>10.3f}{a.longest:>11.3f}"
            )
        if s["unattributed_failures"]:
            out.append(f"(failures without a partition: {s['unattributed_failures']})")
        if self.faults:
            out.append("")
            out.append("faults:")
            for f in self.faults[:fault_lines]:
                end = f"{f.end:.3f}" if f.end is not None else "never healed"
                out.append(f"  {f.start:.3f} .. {end}  {f.name} {f.target} {f.detail}".rstrip())
            if len(self.faults) > fault_lines:
                out.append(f"  ... {len(self.faults) - fault_lines} more")
        return "\n".join(out) + "\n"


def _ev_text(e: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in e.items())


class _Stream:
    """What one consumer read from one partition, in the order it read it."""

    __slots__ = ("offsets", "rids", "passes", "drains")

    def __init__(self) -> None:
        self.offsets = array("q")
        self.rids: list[tuple[Any, Any]] = []
        # (index of first read of the pass, Assigned offset or None, Assigned time or None)
        self.passes: list[tuple[int, int | None, float | None]] = []
        self.drains: list[tuple[int, Drained]] = []


class _Groups:
    """Consumer groups as the history shows them: member -> group (Joined), per (group,
    topic, partition) the first time each offset was read by a member and the accepted
    commits in history order (time, offset, consumer), per (group, topic) the records read."""

    __slots__ = ("members", "reads", "rids", "commits")

    def __init__(self) -> None:
        self.members: dict[str, str] = {}
        self.reads: dict[tuple[str, str, int], dict[int, float]] = {}
        self.rids: dict[tuple[str, str], set[tuple[Any, Any]]] = {}
        self.commits: dict[tuple[str, str, int], list[tuple[float, int, str]]] = {}


class _Evidence:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts = {k: 0 for k in ANOMALY_KINDS}
        self.items: dict[str, list[dict[str, Any]]] = {k: [] for k in ANOMALY_KINDS}

    def add(self, kind: str, item: dict[str, Any]) -> None:
        self.counts[kind] += 1
        lst = self.items[kind]
        if len(lst) < self.limit:
            lst.append(item)


def check(events: Iterable[Event], options: CheckerOptions | None = None) -> Verdict:
    """Check a history; returns a Verdict (see the module docstring for every rule).

    events: the history in file order (e.g. ``read_history(path)``); consumed once.
    Raises HistoryError for an inconsistent history (a (key, seq) sent twice, an outcome
    without a Sent or a second outcome, an unknown event object).
    """
    with _gc_paused():
        return _check(events, options or CheckerOptions())


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: the checker allocates millions of small tuples
    and no cycles, and generation-2 collections over them would double its run time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_EVENT_CLASSES = frozenset((Sent, Acknowledged, Failed, Assigned, Consumed, Drained, FaultStarted, FaultHealed,
                            ProducerEpoch, Joined, Committed))


def _check(events: Iterable[Event], opts: CheckerOptions) -> Verdict:
    # rid = (key, seq)
    sent: dict[tuple[Any, Any], tuple[float, str, str, int | None]] = {}
    acked: dict[tuple[Any, Any], tuple[str, int, int, float]] = {}
    failed: dict[tuple[Any, Any], tuple[str, bool, float, int | None]] = {}
    streams: dict[tuple[str, str, int], _Stream] = {}
    faults_raw: list[FaultStarted | FaultHealed] = []
    drains: list[tuple[str, str, int]] = []
    epochs: dict[tuple[str, str, int], list[ProducerEpoch]] = {}
    groups = _Groups()

    try:
        ingest = _ingest(events, sent, acked, failed, streams, faults_raw, drains, epochs, groups)
    except OverflowError as e:
        raise HistoryError(f"an offset does not fit in 64 bits: {e}") from None
    n_events, consumed_events, first_time, last_time = ingest

    evid = _Evidence(opts.max_evidence)
    if n_events == 0:
        last_time = first_time = 0.0

    # Acknowledged records per partition: offset -> rid (first), and double acks.
    acks_by_tp: dict[tuple[str, int], dict[int, tuple[Any, Any]]] = {}
    acked_by_tp: dict[tuple[str, int], list[tuple[Any, Any]]] = {}
    double_acked: dict[tuple[str, int], dict[int, set[tuple[Any, Any]]]] = {}
    for rid, (topic, part, off, at) in acked.items():
        tp = (topic, part)
        at_off = acks_by_tp.get(tp)
        if at_off is None:
            at_off = acks_by_tp[tp] = {}
            acked_by_tp[tp] = []
        acked_by_tp[tp].append(rid)
        other = at_off.get(off)
        if other is None:
            at_off[off] = rid
        else:
            double_acked.setdefault(tp, {}).setdefault(off, {other}).add(rid)
            evid.add(DOUBLE_ACK, {
                "topic": topic, "partition": part, "offset": off,
                "first": _rid_text(other), "second": _rid_text(rid),
                "first_acked_at": round(acked[other][3], 6), "second_acked_at": round(at, 6),
            })

    definite_failed = {rid for rid, f in failed.items() if f[1]}
    phantom_seen: set[tuple[Any, Any]] = set()
    read_at: dict[tuple[Any, Any], tuple[str, int, int]] = {}  # rid -> first (topic, part, offset)
    dup_seen: set[tuple[Any, Any]] = set()
    divergent_seen: set[tuple[str, int, int]] = set()
    read_holder: dict[tuple[str, int], dict[int, tuple[Any, Any]]] = {}
    jumps: list[tuple[tuple[str, str, int], int, int, int]] = []  # (stream, from, to, index)
    uncertain_read: set[tuple[Any, Any]] = set()

    for sk, st in streams.items():
        consumer, topic, part = sk
        tp = (topic, part)
        ack_off = acks_by_tp.get(tp, {})
        double = double_acked.get(tp)
        holder = read_holder.get(tp)
        if holder is None:
            holder = read_holder[tp] = {}
        offsets = st.offsets
        rids = st.rids
        bounds = [p[0] for p in st.passes] + [len(offsets)]
        for pi, (begin, assigned_off, _at) in enumerate(st.passes):
            end = bounds[pi + 1]
            last = None if assigned_off is None else assigned_off - 1
            key_last: dict[Any, tuple[int, tuple[Any, Any], int]] = {}
            pass_seen: list[Any] = [None, begin]  # lazily built set of rids read in this pass
            for i in range(begin, end):
                off = offsets[i]
                rid = rids[i]
                ak = acked.get(rid)
                # phantom (an acknowledged record was sent and did not fail)
                if ak is None and (rid not in sent or rid in definite_failed):
                    if rid not in phantom_seen:
                        phantom_seen.add(rid)
                        if rid[1] is None:
                            why = "value did not decode"
                        elif rid in sent:
                            why = "send failed definitely: " + failed[rid][0]
                        else:
                            why = "never sent"
                        evid.add(PHANTOM, {"key": rid[0], "seq": rid[1], "topic": topic,
                                           "partition": part, "offset": off, "consumer": consumer,
                                           "why": why})
                # duplicate
                first = read_at.get(rid)
                if first is None:
                    read_at[rid] = (topic, part, off)
                elif ((first[2] != off or first[1] != part or first[0] != topic)
                      and rid not in dup_seen and rid[1] is not None):
                    dup_seen.add(rid)
                    item = {"key": rid[0], "seq": rid[1], "first": f"{first[0]}-{first[1]}@{first[2]}",
                            "again": f"{topic}-{part}@{off}", "consumer": consumer}
                    bump = _epoch_bump_during(rid, sent, acked, failed, epochs) if epochs else None
                    if bump is None:
                        evid.add(DUPLICATE, item)
                    else:
                        evid.add(DUPLICATE_NEW_EPOCH, {**item, **bump})
                # divergent read
                # (At an acknowledged offset the ack is the reference: a read differing from
                # another read there differs from the ack too. Elsewhere the first read is.)
                a = ack_off.get(off)
                if a is None:
                    h = holder.get(off)
                    if h is None:
                        holder[off] = rid
                else:
                    h = None
                if (a is not None and a != rid and (not double or rid not in double.get(off, ())))\
                        or (h is not None and h != rid):
                    if (topic, part, off) not in divergent_seen:
                        divergent_seen.add((topic, part, off))
                        evid.add(DIVERGENT_READ, {
                            "topic": topic, "partition": part, "offset": off,
                            "read": _rid_text(rid), "consumer": consumer,
                            "acknowledged": _rid_text(a) if a is not None else None,
                            "read_before": _rid_text(h) if h is not None and h != rid else None,
                        })
                # reorder and gap within the pass
                if last is not None:
                    if off <= last:
                        evid.add(REORDER, {"consumer": consumer, "topic": topic, "partition": part,
                                           "previous_offset": last, "offset": off})
                    elif off > last + 1:
                        jumps.append((sk, last, off, i))
                last = off
                # per-key read order against acknowledged offsets
                if ak is None:
                    if rid in sent and rid not in definite_failed:
                        uncertain_read.add(rid)
                elif ak[0] == topic and ak[1] == part:
                    k = rid[0]
                    prev = key_last.get(k)
                    if prev is not None and ak[2] < prev[0] and not _delivered_before(rids, begin, i, pass_seen):
                        evid.add(ORDER, {
                            "why": "read out of acknowledged order", "key": k,
                            "consumer": consumer, "topic": topic, "partition": part,
                            "read_first": f"seq {prev[1][1]} (acked @{prev[0]}, read @{prev[2]})",
                            "read_then": f"seq {rid[1]} (acked @{ak[2]}, read @{off})",
                        })
                    if prev is None or ak[2] > prev[0]:
                        key_last[k] = (ak[2], rid, off)
        # A drain that stopped short of its end offset skipped what lies in between.
        for count, dr in st.drains:
            last_read = offsets[count - 1] if count > _drain_pass(st, count)[0] else dr.start_offset - 1
            if last_read < dr.end_offset - 1:
                jumps.append((sk, last_read, dr.end_offset, count))

    # gaps: a jump over an offset known to hold a record
    if jumps:
        known: dict[tuple[str, int], list[int]] = {}
        for sk, lo, hi, _i in jumps:
            tp = (sk[1], sk[2])
            if opts.contiguous_offsets:
                missing = hi - lo - 1
                example = lo + 1
            else:
                ks = known.get(tp)
                if ks is None:
                    s = set(acks_by_tp.get(tp, {}))
                    s.update(read_holder.get(tp, {}))
                    ks = known[tp] = sorted(s)
                a = bisect_right(ks, lo)
                b = bisect_left(ks, hi)
                missing = b - a
                example = ks[a] if missing else -1
            if missing:
                evid.add(GAP, {"consumer": sk[0], "topic": sk[1], "partition": sk[2],
                               "from_offset": lo, "to_offset": hi, "records_skipped": missing,
                               "first_skipped": example})

    # lost: acknowledged before a drain and not read by it
    lost_seen: set[tuple[Any, Any]] = set()
    checked: set[tuple[Any, Any]] = set()
    drained_tps: set[tuple[str, int]] = set()
    for sk in dict.fromkeys(drains):
        st = streams[sk]
        tp = (sk[1], sk[2])
        drained_tps.add(tp)
        for count, dr in st.drains:
            begin, began_at = _drain_pass(st, count)
            cutoff = dr.time if began_at is None else min(began_at, dr.time)
            got = set(st.rids[begin:count])
            for rid in acked_by_tp.get(tp, ()):
                topic, part, off, at = acked[rid]
                if at > cutoff or off < dr.start_offset:
                    continue
                checked.add(rid)
                if rid not in got and rid not in lost_seen:
                    lost_seen.add(rid)
                    evid.add(LOST, {"key": rid[0], "seq": rid[1], "topic": topic, "partition": part,
                                    "offset": off, "acked_at": round(at, 6), "drain_consumer": sk[0],
                                    "drain_end_offset": dr.end_offset})
    acked_unchecked = len(acked) - len(checked)

    group_unreached = _check_groups(groups, acked, acks_by_tp, acked_by_tp, read_holder, streams, drains, checked,
                                    evid) if groups.commits or groups.members else {}

    # order at acknowledgement: real time and (idempotent) per-producer send order
    _check_ack_order(sent, acked, evid, opts)

    availability, unattributed = _availability(sent, acked, failed, last_time)
    faults = _fault_timeline(faults_raw)

    judged = set(ANOMALY_KINDS) - NEVER_JUDGED
    if not opts.idempotent:
        judged.discard(DUPLICATE)
    reasons: list[str] = []
    if acked_unchecked:
        undrained = sorted(f"{t}-{p}" for t, p in set(acks_by_tp) - drained_tps)
        why = f"{acked_unchecked} acknowledged record(s) not covered by any drain"
        if undrained:
            why += f" (partitions without a drain: {', '.join(undrained[:10])})"
        reasons.append(why)
    for g, n in sorted(group_unreached.items()):
        reasons.append(f"group {g} did not commit past {n} acknowledged record(s): it never caught up with them")
    if any(evid.counts[k] for k in judged):
        status = INVALID
    elif reasons:
        status = UNKNOWN
    else:
        status = VALID

    n_def = len(definite_failed)
    summary: dict[str, Any] = {
        "events": n_events,
        "duration_s": round(last_time - first_time, 6),
        "sent": len(sent),
        "acknowledged": len(acked),
        "failed": len(failed),
        "failed_definite": n_def,
        "failed_indefinite": len(failed) - n_def,
        "no_outcome": len(sent) - len(acked) - len(failed),
        "consumed_events": consumed_events,
        "distinct_consumed": len(read_at),
        "consumers": len({sk[0] for sk in streams}),
        "drains": len(drains),
        "drained_partitions": len(drained_tps),
        "acked_checked": len(checked),
        "acked_unchecked": acked_unchecked,
        "uncertain_read": len(uncertain_read),
        "unattributed_failures": unattributed,
        "faults": len(faults),
        "groups": len(set(groups.members.values()) | {k[0] for k in groups.commits}),
        "commits": sum(len(c) for c in groups.commits.values()),
        "judged_kinds": sorted(judged),
    }
    return Verdict(
        status=status,
        counts=dict(evid.counts),
        evidence=evid.items,
        summary=summary,
        availability=availability,
        faults=faults,
        unknown_reasons=tuple(reasons),
    )


def _delivered_before(rids: list[tuple[Any, Any]], begin: int, i: int, cache: list[Any]) -> bool:
    """Whether rids[i] occurs in rids[begin:i] (a record delivered again in one pass: its later
    copy is a duplicate, not an order violation). cache = [set or None, index covered up to],
    built on first use and extended as the pass goes on, so a pass costs O(n) overall."""
    seen = cache[0]
    if seen is None:
        seen = cache[0] = set()
    upto = cache[1]
    if upto < i:
        seen.update(rids[upto:i])
        cache[1] = i
    return rids[i] in seen


def _epoch_bump_during(rid: tuple[Any, Any], sent: dict, acked: dict, failed: dict,
                       epochs: dict[tuple[str, str, int], list[ProducerEpoch]]) -> dict[str, Any] | None:
    """Evidence of the first epoch change of rid's producer on rid's partition after rid was
    sent and not after its outcome (None: none): a record the client may have re-sent under
    a new epoch, where the broker's deduplication does not reach."""
    s = sent.get(rid)
    if s is None:
        return None
    sent_at, producer, topic, part = s
    if part is None:
        a = acked.get(rid)
        f = failed.get(rid)
        part = a[1] if a is not None else (f[3] if f is not None else None)
    changes = epochs.get((producer, topic, part)) if part is not None else None
    if not changes:
        return None
    a = acked.get(rid)
    f = failed.get(rid)
    until = a[3] if a is not None else (f[2] if f is not None else float("inf"))
    prev: ProducerEpoch | None = None
    for ev in changes:
        # a change: a (producer id, epoch) other than the partition's previous one, or, with no
        # previous one recorded, one the client gave a reason for (a bump, not the first id)
        changed = (ev.reason != "") if prev is None else \
            (ev.producer_id, ev.epoch) != (prev.producer_id, prev.epoch)
        if changed and sent_at < ev.time <= until:
            return {"producer": producer, "epoch_changed_at": round(ev.time, 6),
                    "from": "?" if prev is None else f"{prev.producer_id}/{prev.epoch}",
                    "to": f"{ev.producer_id}/{ev.epoch}", "reason": ev.reason}
        prev = ev
    return None


def _ingest(events: Iterable[Event], sent: dict, acked: dict, failed: dict,
            streams: dict[tuple[str, str, int], _Stream], faults_raw: list, drains: list,
            epochs: dict[tuple[str, str, int], list[ProducerEpoch]] | None = None,
            groups: _Groups | None = None) -> tuple[int, int, float, float]:
    """The single pass over the history, filling the tables; returns (events, consumed
    events, first time, last time). Raises HistoryError for an inconsistent history."""
    n_events = 0
    consumed_events = 0
    last_time = float("-inf")
    first_time = float("inf")
    for ev in events:
        n_events += 1
        cls = type(ev)
        if cls not in _EVENT_CLASSES:
            raise HistoryError(f"event {n_events}: not a history event: {ev!r}")
        t = ev.time
        if t > last_time:
            last_time = t
        if t < first_time:
            first_time = t
        if cls is Consumed:
            consumed_events += 1
            sk = (ev.consumer, ev.topic, ev.partition)
            st = streams.get(sk)
            if st is None:
                st = streams[sk] = _Stream()
                st.passes.append((0, None, None))
            st.offsets.append(ev.offset)
            st.rids.append((ev.key, ev.seq))
            if groups is not None and groups.members:
                g = groups.members.get(ev.consumer)
                if g is not None:
                    gk = (g, ev.topic, ev.partition)
                    reads = groups.reads.get(gk)
                    if reads is None:
                        reads = groups.reads[gk] = {}
                    if ev.offset not in reads:
                        reads[ev.offset] = t
                    grids = groups.rids.get((g, ev.topic))
                    if grids is None:
                        grids = groups.rids[(g, ev.topic)] = set()
                    grids.add((ev.key, ev.seq))
        elif cls is Acknowledged:
            rid = (ev.key, ev.seq)
            if rid not in sent:
                raise HistoryError(f"event {n_events}: {rid} acknowledged but never sent")
            if rid in acked or rid in failed:
                raise HistoryError(f"event {n_events}: {rid} has a second outcome")
            acked[rid] = (ev.topic, ev.partition, ev.offset, t)
        elif cls is Sent:
            rid = (ev.key, ev.seq)
            if rid in sent:
                raise HistoryError(f"event {n_events}: {rid} sent twice")
            sent[rid] = (t, ev.producer, ev.topic, ev.partition)
        elif cls is Failed:
            rid = (ev.key, ev.seq)
            if rid not in sent:
                raise HistoryError(f"event {n_events}: {rid} failed but never sent")
            if rid in acked or rid in failed:
                raise HistoryError(f"event {n_events}: {rid} has a second outcome")
            failed[rid] = (ev.error, ev.definite, t, ev.partition)
        elif cls is Assigned:
            sk = (ev.consumer, ev.topic, ev.partition)
            st = streams.get(sk)
            if st is None:
                st = streams[sk] = _Stream()
            st.passes.append((len(st.offsets), ev.offset, t))
        elif cls is Drained:
            sk = (ev.consumer, ev.topic, ev.partition)
            st = streams.get(sk)
            if st is None:
                st = streams[sk] = _Stream()
                st.passes.append((0, None, None))
            st.drains.append((len(st.offsets), ev))
            drains.append(sk)
        elif cls is FaultStarted or cls is FaultHealed:
            faults_raw.append(ev)
        elif cls is ProducerEpoch:
            if epochs is not None:
                epochs.setdefault((ev.producer, ev.topic, ev.partition), []).append(ev)
        elif cls is Joined:
            if groups is not None:
                groups.members.setdefault(ev.consumer, ev.group)
        elif cls is Committed:
            if groups is not None:
                groups.commits.setdefault((ev.group, ev.topic, ev.partition), []).append((t, ev.offset, ev.consumer))
        else:
            raise HistoryError(f"event {n_events}: not a history event: {ev!r}")
    return n_events, consumed_events, first_time, last_time


def _check_groups(groups: _Groups, acked: dict, acks_by_tp: dict, acked_by_tp: dict, read_holder: dict,
                  streams: dict, drains: list, checked: set, evid: _Evidence) -> dict[str, int]:
    """commit_backwards, skipped_by_group and unread_by_group (module doc); returns, per
    group, how many drain-checked acknowledged records lay at or above its last commit."""
    log_start: dict[tuple[str, int], int] = {}
    for sk in dict.fromkeys(drains):
        for _count, dr in streams[sk].drains:
            tp = (sk[1], sk[2])
            log_start[tp] = min(log_start.get(tp, dr.start_offset), dr.start_offset)
    skipped: set[tuple[str, str, int, int]] = set()
    last_commit: dict[tuple[str, str, int], int] = {}
    for (g, topic, part), commits in groups.commits.items():
        tp = (topic, part)
        top = -1
        tops: list[int] = []    # rising maxima of the committed offsets, in history order
        top_at: list[float] = []  # ... and when each was first committed
        for at, off, consumer in commits:
            if off < top:
                evid.add(COMMIT_BACKWARDS, {"group": g, "topic": topic, "partition": part, "offset": off,
                                            "previous": top, "consumer": consumer, "time": round(at, 6)})
            elif off > top:
                top = off
                tops.append(off)
                top_at.append(at)
        last_commit[(g, topic, part)] = top
        if not tops:
            continue
        known = set(acks_by_tp.get(tp, ()))
        known.update(read_holder.get(tp, ()))
        reads = groups.reads.get((g, topic, part), {})
        lo = log_start.get(tp, 0)
        for off in sorted(known):
            if off < lo:
                continue
            i = bisect_right(tops, off)  # the first commit past this offset
            if i == len(tops):
                break
            read_at = reads.get(off)
            if read_at is None or read_at > top_at[i]:
                skipped.add((g, topic, part, off))
                evid.add(SKIPPED_BY_GROUP, {"group": g, "topic": topic, "partition": part, "offset": off,
                                            "committed": tops[i], "committed_at": round(top_at[i], 6),
                                            "read_at": None if read_at is None else round(read_at, 6)})
    unreached: dict[str, int] = {}
    for g in sorted(set(groups.members.values()) | {k[0] for k in groups.commits}):
        for tp, rids in acked_by_tp.items():
            topic, part = tp
            top = last_commit.get((g, topic, part), -1)
            got = groups.rids.get((g, topic), set())
            for rid in rids:
                if rid not in checked:
                    continue
                off = acked[rid][2]
                if off >= top:
                    unreached[g] = unreached.get(g, 0) + 1
                elif rid not in got and (g, topic, part, off) not in skipped:
                    evid.add(UNREAD_BY_GROUP, {"group": g, "key": rid[0], "seq": rid[1], "topic": topic,
                                               "partition": part, "offset": off, "group_committed": top})
    return unreached


def _drain_pass(st: _Stream, count: int) -> tuple[int, float | None]:
    """The pass a drain marker (after ``count`` reads) closes: (index of its first read, time
    of the Assigned that began it, None if none did): the last Assigned at or before it."""
    begin, at = 0, None
    for b, _o, t in st.passes:
        if b <= count:
            begin, at = b, t
        else:
            break
    return begin, at


def _rid_text(rid: tuple[Any, Any]) -> str:
    return f"{rid[0]}#{rid[1]}"


def _check_ack_order(sent: dict, acked: dict, evid: _Evidence, opts: CheckerOptions) -> None:
    """Order anomalies visible in acknowledgements alone, per (key, topic, partition).

    Real time: if a was acknowledged before b was sent, offset(a) < offset(b). Idempotent: if
    one producer sent a before b, offset(a) < offset(b). Both checked by one sweep over the
    key's records in descending offset order, tracking the earliest ack time and, per
    producer, the earliest send time seen at higher offsets.
    """
    groups: dict[tuple[Any, str, int], list[tuple[int, float, float, str, Any]]] = {}
    for rid, (topic, part, off, at) in acked.items():
        s = sent[rid]
        g = (rid[0], topic, part)
        lst = groups.get(g)
        if lst is None:
            lst = groups[g] = []
        lst.append((off, at, s[0], s[1], rid[1]))
    for (key, topic, part), recs in groups.items():
        if len(recs) < 2:
            continue
        recs.sort()
        # Fast path: offsets ascending with ack times and send times ascending too.
        ok = True
        prev = recs[0]
        for r in recs[1:]:
            if r[1] < prev[1] or r[2] < prev[2]:
                ok = False
                break
            prev = r
        if ok:
            continue
        min_ack: tuple[float, Any, int] | None = None  # (ack time, seq, offset) at higher offsets
        min_send: dict[str, tuple[float, Any, int]] = {}
        for off, at, st, prod, seq in reversed(recs):
            if min_ack is not None and min_ack[0] < st:
                evid.add(ORDER, {
                    "why": "acknowledged before the other was sent, yet at a higher offset",
                    "key": key, "topic": topic, "partition": part,
                    "earlier": f"seq {min_ack[1]} acked at t={min_ack[0]:.6f} @{min_ack[2]}",
                    "later": f"seq {seq} sent at t={st:.6f} acked @{off}",
                })
            elif opts.idempotent:
                ms = min_send.get(prod)
                if ms is not None and ms[0] < st:
                    evid.add(ORDER, {
                        "why": "one producer's sends acknowledged out of send order",
                        "key": key, "topic": topic, "partition": part, "producer": prod,
                        "sent_first": f"seq {ms[1]} sent at t={ms[0]:.6f} acked @{ms[2]}",
                        "sent_then": f"seq {seq} sent at t={st:.6f} acked @{off}",
                    })
            if min_ack is None or at < min_ack[0]:
                min_ack = (at, seq, off)
            ms = min_send.get(prod)
            if ms is None or st < ms[0]:
                min_send[prod] = (st, seq, off)


def _availability(sent: dict, acked: dict, failed: dict, end_time: float
                  ) -> tuple[tuple[PartitionAvailability, ...], int]:
    """Per-partition unavailability windows (module docstring); returns (partitions sorted,
    count of failures without a partition)."""
    ack_times: dict[tuple[str, int], list[float]] = {}
    for topic, part, _off, at in acked.values():
        lst = ack_times.get((topic, part))
        if lst is None:
            lst = ack_times[(topic, part)] = []
        lst.append(at)
    fails: dict[tuple[str, int], list[tuple[float, float]]] = {}
    unattributed = 0
    for rid, (_err, _definite, ft, fpart) in failed.items():
        st, _prod, topic, spart = sent[rid]
        part = fpart if fpart is not None else spart
        if part is None:
            unattributed += 1
            continue
        fails.setdefault((topic, part), []).append((ft, st))
    out = []
    for tp in sorted(set(ack_times) | set(fails)):
        acks = ack_times.get(tp, [])
        acks.sort()
        fl = sorted(fails.get(tp, []))
        windows: list[Window] = []
        close = None  # end time of the open window, or None
        start = 0.0
        count = 0
        for ft, st in fl:
            if close is not None and ft < close:
                count += 1
                continue
            if close is not None:
                windows.append(Window(start, close, count))
            i = bisect_right(acks, ft)
            start = st
            if i > 0 and acks[i - 1] > start:
                start = acks[i - 1]
            count = 1
            close = acks[i] if i < len(acks) else float("inf")
        if close is not None:
            if close == float("inf"):
                windows.append(Window(start, max(end_time, start), count, open=True))
            else:
                windows.append(Window(start, close, count))
        out.append(PartitionAvailability(tp[0], tp[1], tuple(windows), len(acks), len(fl)))
    return tuple(out), unattributed


def _fault_timeline(raw: list[FaultStarted | FaultHealed]) -> tuple[Fault, ...]:
    """Pair each FaultHealed with the latest unhealed FaultStarted of the same name and
    target; a heal without a start becomes a zero-length fault at the heal."""
    open_: dict[tuple[str, str], list[int]] = {}
    out: list[list[Any]] = []
    for ev in sorted(raw, key=lambda e: e.time):
        k = (ev.name, ev.target)
        if type(ev) is FaultStarted:
            open_.setdefault(k, []).append(len(out))
            out.append([ev.name, ev.target, ev.time, None, ev.detail])
        else:
            stack = open_.get(k)
            if stack:
                out[stack.pop()][3] = ev.time
            else:
                out.append([ev.name, ev.target, ev.time, ev.time, "heal without a start"])
    return tuple(Fault(n, tg, s, e, d) for n, tg, s, e, d in out)


def check_file(path: str, options: CheckerOptions | None = None) -> Verdict:
    """check() over a JSON-lines history file (a torn last line is ignored and counted in
    summary["torn_last_line"])."""
    from kafkalike.chaos.history import HistoryReader

    reader = HistoryReader(path)
    with _gc_paused():
        v = check(reader, options)
    v.summary["torn_last_line"] = reader.torn is not None
    return v
