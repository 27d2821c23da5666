"""The transactional chaos checker: a verdict on a history of Kafka transactions (KIP-98),
computed from the history alone, as kafkalike.chaos.checker does for idempotent produce.

The history (JSON lines, one event a line, written by kafkalike.chaos.txn_workload) records
what transactional producers, a consume-transform-produce stage and read_committed /
read_uncommitted consumers did. A record's identity is ``(txn, index)``: ``txn`` names one
transaction attempt (unique in the run), ``index`` the record's place in it; the value
written to Kafka is ``b"<txn>:<index>"`` (``encode_value``) and readers decode it back.

Events (``"type"`` tag in brackets); ``time`` is float seconds of ``time.monotonic()``, one
clock for every process on the machine, so events of several processes compare:

- TxnSent [txn_sent]: producer ``producer`` produced record ``(txn, index)`` to
  ``topic``/``partition`` inside its open transaction; ``source_*`` name the input record it
  was made from (consume-transform-produce), else None.
- TxnAcked [txn_acked]: the record's delivery report: written at ``partition``/``offset``
  (not yet committed: a transactional write is visible to read_committed only after its
  COMMIT marker).
- TxnOffsetsSent [txn_offsets_sent]: the producer added ``group``'s offset ``offset`` (the
  next offset to consume) of ``topic``/``partition`` to transaction ``txn``
  (send_offsets_to_transaction, TxnOffsetCommit).
- TxnEnded [txn_ended]: the producer asked to ``intent`` ("commit" | "abort") at
  ``start_time`` and learned ``outcome`` at ``time``: "committed", "aborted" (both definite)
  or "unknown" (the call failed in a way that leaves the outcome open, or the process died).
  A transaction with no TxnEnded is unknown too.
- TxnAssigned [txn_assigned]: consumer ``consumer`` (isolation level ``isolation``:
  "read_committed" | "read_uncommitted") starts a pass over a partition at ``offset``.
- TxnConsumed [txn_consumed]: the consumer read ``(txn, index)`` at ``partition``/``offset``
  (``txn`` None: a value that did not decode).
- TxnDrained [txn_drained]: the consumer has read the partition from ``start_offset`` to
  ``end_offset`` (exclusive) in the current pass, after producers stopped and faults healed.
- GroupOffsetFetched [group_offset_fetched]: at the end, ``group``'s committed offset of a
  partition as the coordinator answers it (-1: none).
- FaultStarted / FaultHealed (kafkalike.chaos.history's events, same tags): the nemesis.

Anomalies (each judged; docs/chaos.md explains them beside Jepsen's Bufstream findings):

- aborted_read: a read_committed consumer read a record of a transaction that was aborted.
- lost_committed_write: a record of a committed transaction missing from a read_committed
  drain pass of its partition (records below the drain's start are not checked).
- torn_transaction: read_committed drains of every partition a transaction wrote saw some of
  its records but not all (whatever its outcome: all or nothing).
- read_past_open_txn: a read_committed consumer read offset o of a partition at time t while
  a transaction with a record at an offset <= o on that partition had not yet asked to end
  (t < its TxnEnded.start_time): the read went past the last stable offset.
- duplicate_in_committed_txn: a record of a committed transaction read by read_committed
  consumers at two different offsets.
- offset_skip: a committed transaction committed ``group``'s offset O of an input partition
  while an input record at an offset < O (seen by a read_committed reader of the input) was
  never turned into output by a transaction that committed (or may have: unknown outcome).
- offset_commit_mismatch: the group's final committed offset (GroupOffsetFetched) is not the
  offset of the last committed transaction that set it (an aborted TxnOffsetCommit became
  visible, or a committed one was lost); a transaction of unknown outcome may explain it.

Verdict: "invalid" if any anomaly counts; else "unknown" when something could not be checked
(a committed record on a partition without a read_committed drain, or no transaction committed
at all); else "valid".
"""

from __future__ import annotations

import json
import os
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from typing import IO, Any

import attrs

from kafkalike.chaos.history import FaultHealed, FaultStarted, HistoryError

READ_COMMITTED = "read_committed"
READ_UNCOMMITTED = "read_uncommitted"
COMMITTED, ABORTED, UNKNOWN = "committed", "aborted", "unknown"

ABORTED_READ = "aborted_read"
LOST_COMMITTED_WRITE = "lost_committed_write"
TORN_TRANSACTION = "torn_transaction"
READ_PAST_OPEN_TXN = "read_past_open_txn"
DUPLICATE_IN_COMMITTED_TXN = "duplicate_in_committed_txn"
OFFSET_SKIP = "offset_skip"
OFFSET_COMMIT_MISMATCH = "offset_commit_mismatch"
ANOMALY_KINDS = (ABORTED_READ, LOST_COMMITTED_WRITE, TORN_TRANSACTION, READ_PAST_OPEN_TXN,
                 DUPLICATE_IN_COMMITTED_TXN, OFFSET_SKIP, OFFSET_COMMIT_MISMATCH)


def encode_value(txn: str, index: int) -> bytes:
    """The bytes a transactional record carries: ``b"<txn>:<index>"``."""
    return f"{txn}:{index}".encode()


def decode_value(value: bytes | None) -> tuple[str, int] | None:
    """(txn, index) from a record value, None when it does not decode."""
    if value is None:
        return None
    try:
        txn, _, index = value.decode().rpartition(":")
        return (txn, int(index)) if txn else None
    except (UnicodeDecodeError, ValueError):
        return None


# ----------------------------------------------------------------------------- events

@attrs.frozen
class TxnSent:
    """Record (txn, index) produced to topic/partition inside the open transaction."""

    time: float
    producer: str
    txn: str
    index: int
    topic: str
    partition: int
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None


@attrs.frozen
class TxnAcked:
    """Record (txn, index) written at partition/offset (its delivery report)."""

    time: float
    txn: str
    index: int
    topic: str
    partition: int
    offset: int


@attrs.frozen
class TxnOffsetsSent:
    """Group ``group``'s next offset ``offset`` of topic/partition added to transaction txn."""

    time: float
    producer: str
    txn: str
    group: str
    topic: str
    partition: int
    offset: int


@attrs.frozen
class TxnEnded:
    """The end of transaction txn: asked to ``intent`` at start_time, ``outcome`` at time."""

    time: float
    producer: str
    txn: str
    intent: str
    outcome: str
    start_time: float
    error: str = ""


@attrs.frozen
class TxnAssigned:
    """A consumer of ``isolation`` level starts a pass over topic/partition at offset."""

    time: float
    consumer: str
    isolation: str
    topic: str
    partition: int
    offset: int | None = None


@attrs.frozen
class TxnConsumed:
    """A consumer read (txn, index) at topic/partition/offset (txn None: undecodable)."""

    time: float
    consumer: str
    isolation: str
    topic: str
    partition: int
    offset: int
    txn: str | None
    index: int | None


@attrs.frozen
class TxnDrained:
    """The consumer read topic/partition from start_offset to end_offset (exclusive)."""

    time: float
    consumer: str
    isolation: str
    topic: str
    partition: int
    start_offset: int
    end_offset: int


@attrs.frozen
class GroupOffsetFetched:
    """The group's committed offset of topic/partition at the end (-1: none)."""

    time: float
    group: str
    topic: str
    partition: int
    offset: int


TxnEvent = (TxnSent | TxnAcked | TxnOffsetsSent | TxnEnded | TxnAssigned | TxnConsumed | TxnDrained
            | GroupOffsetFetched | FaultStarted | FaultHealed)
EVENT_TYPES: dict[str, type] = {
    "txn_sent": TxnSent, "txn_acked": TxnAcked, "txn_offsets_sent": TxnOffsetsSent,
    "txn_ended": TxnEnded, "txn_assigned": TxnAssigned, "txn_consumed": TxnConsumed,
    "txn_drained": TxnDrained, "group_offset_fetched": GroupOffsetFetched,
    "fault_started": FaultStarted, "fault_healed": FaultHealed,
}
_TAGS = {cls: tag for tag, cls in EVENT_TYPES.items()}


def dumps(event: Any) -> str:
    """One history line (no newline) for ``event``. Raises HistoryError for a non-event."""
    tag = _TAGS.get(type(event))
    if tag is None:
        raise HistoryError(f"not a transactional history event: {event!r}")
    return json.dumps({"type": tag, **attrs.asdict(event)}, separators=(",", ":"))


def loads(line: str) -> Any:
    """The event of one history line. Raises HistoryError for bad JSON, an unknown type or
    fields that do not fit it."""
    try:
        d = json.loads(line)
    except json.JSONDecodeError as exc:
        raise HistoryError(f"not JSON: {exc}") from None
    if not isinstance(d, dict) or d.get("type") not in EVENT_TYPES:
        raise HistoryError(f"unknown event: {line[:80]!r}")
    cls = EVENT_TYPES[d.pop("type")]
    try:
        return cls(**d)
    except TypeError as exc:
        raise HistoryError(f"bad {cls.__name__}: {exc}") from None


class TxnHistoryWriter:
    """Appends events to a JSON-lines file (or text stream), one line each, flushed."""

    def __init__(self, target: str | os.PathLike[str] | IO[str]) -> None:
        self._own = isinstance(target, (str, os.PathLike))
        self._f: IO[str] = open(target, "a", encoding="utf-8") if isinstance(target, (str, os.PathLike)) \
            else target

    def write(self, event: Any) -> None:
        self._f.write(dumps(event) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._own:
            self._f.close()


def read_txn_history(path: str | os.PathLike[str]) -> Iterator[Any]:
    """Events of a history file; a torn last line (a crashed writer) is ignored, a bad line
    elsewhere raises HistoryError naming its number."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield loads(line)
        except HistoryError as exc:
            if n == len(lines):  # no newline after it: torn tail
                return
            raise HistoryError(f"line {n}: {exc}") from None


# ----------------------------------------------------------------------------- verdict

@attrs.frozen(eq=False)
class TxnVerdict:
    """status "valid" | "invalid" | "unknown"; counts per anomaly kind (every kind);
    evidence per kind (at most max_evidence each); summary counts; unknown_reasons."""

    status: str
    counts: dict[str, int]
    evidence: dict[str, list[dict[str, Any]]]
    summary: dict[str, int]
    unknown_reasons: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    @property
    def anomalies(self) -> frozenset[str]:
        """Kinds with a nonzero count."""
        return frozenset(k for k, n in self.counts.items() if n)

    def headline(self) -> str:
        """e.g. ``INVALID: aborted_read=3; transactions 120 (committed 80, aborted 38, unknown 2)``."""
        bad = [f"{k}={self.counts[k]}" for k in ANOMALY_KINDS if self.counts[k]]
        head = self.status.upper() + (": " + " ".join(bad) if bad else "")
        if self.unknown_reasons:
            head += f" ({self.unknown_reasons[0]})"
        s = self.summary
        return (f"{head}; transactions {s['transactions']} (committed {s['committed']}, aborted "
                f"{s['aborted']}, unknown {s['unknown']}), read_committed reads {s['read_committed_reads']}")

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "valid": self.valid, "counts": dict(self.counts),
                "unknown_reasons": list(self.unknown_reasons), "summary": dict(self.summary),
                "evidence": {k: v for k, v in self.evidence.items() if v}}


@attrs.frozen
class TxnCheckerOptions:
    """max_evidence: evidence items kept per anomaly kind (counts stay exact)."""

    max_evidence: int = 20


def check_txn(events: Iterable[Any], options: TxnCheckerOptions | None = None) -> TxnVerdict:
    """Judge a transactional history (see the module doc). Raises HistoryError when the
    history contradicts itself (a record sent twice, a transaction ended twice)."""
    opts = options or TxnCheckerOptions()
    counts = {k: 0 for k in ANOMALY_KINDS}
    evidence: dict[str, list[dict[str, Any]]] = {k: [] for k in ANOMALY_KINDS}

    def flag(kind: str, **item: Any) -> None:
        counts[kind] += 1
        if len(evidence[kind]) < opts.max_evidence:
            evidence[kind].append(item)

    sent: dict[tuple[str, int], TxnSent] = {}
    txn_records: dict[str, list[tuple[str, int]]] = {}
    ended: dict[str, TxnEnded] = {}
    offsets_sent: list[TxnOffsetsSent] = []
    # offsets of each record on its partition, known from acks and reads
    record_offsets: dict[tuple[str, int], set[int]] = {}
    rc_reads: list[TxnConsumed] = []
    fetched: list[GroupOffsetFetched] = []
    # passes: (consumer, topic, partition) -> reads since the last TxnAssigned
    passes: dict[tuple[str, str, int], list[TxnConsumed]] = {}
    drains: list[tuple[TxnDrained, list[TxnConsumed]]] = []
    n_events = 0
    for ev in events:
        n_events += 1
        if isinstance(ev, TxnSent):
            rid = (ev.txn, ev.index)
            if rid in sent:
                raise HistoryError(f"record {ev.txn}:{ev.index} sent twice")
            sent[rid] = ev
            txn_records.setdefault(ev.txn, []).append(rid)
        elif isinstance(ev, TxnAcked):
            record_offsets.setdefault((ev.txn, ev.index), set()).add(ev.offset)
        elif isinstance(ev, TxnOffsetsSent):
            offsets_sent.append(ev)
        elif isinstance(ev, TxnEnded):
            if ev.txn in ended:
                raise HistoryError(f"transaction {ev.txn} ended twice")
            ended[ev.txn] = ev
        elif isinstance(ev, TxnAssigned):
            passes[(ev.consumer, ev.topic, ev.partition)] = []
        elif isinstance(ev, TxnConsumed):
            passes.setdefault((ev.consumer, ev.topic, ev.partition), []).append(ev)
            if ev.txn is not None and ev.index is not None:
                record_offsets.setdefault((ev.txn, ev.index), set()).add(ev.offset)
            if ev.isolation == READ_COMMITTED:
                rc_reads.append(ev)
        elif isinstance(ev, TxnDrained):
            if ev.isolation == READ_COMMITTED:
                drains.append((ev, list(passes.get((ev.consumer, ev.topic, ev.partition), []))))
        elif isinstance(ev, GroupOffsetFetched):
            fetched.append(ev)

    def outcome(txn: str) -> str:
        e = ended.get(txn)
        return e.outcome if e is not None else UNKNOWN

    # aborted reads and duplicates within committed transactions
    rc_offsets: dict[tuple[str, int], set[int]] = {}
    for r in rc_reads:
        if r.txn is None or r.index is None:
            continue
        rid = (r.txn, r.index)
        if outcome(r.txn) == ABORTED:
            flag(ABORTED_READ, consumer=r.consumer, txn=r.txn, index=r.index, topic=r.topic,
                 partition=r.partition, offset=r.offset, time=r.time)
        rc_offsets.setdefault(rid, set()).add(r.offset)
    for rid, offs in rc_offsets.items():
        if len(offs) > 1 and outcome(rid[0]) == COMMITTED:
            flag(DUPLICATE_IN_COMMITTED_TXN, txn=rid[0], index=rid[1], offsets=sorted(offs))

    # drains: lost committed writes and torn transactions
    drained_parts: dict[tuple[str, int], list[tuple[int, set[tuple[str, int]]]]] = {}
    for d, reads in drains:
        seen: set[tuple[str, int]] = {(r.txn, r.index) for r in reads if r.txn is not None and r.index is not None}
        drained_parts.setdefault((d.topic, d.partition), []).append((d.start_offset, seen))

    def covered(rid: tuple[str, int], start: int) -> bool:
        offs = record_offsets.get(rid)
        return not offs or min(offs) >= start

    unchecked = 0
    for txn, rids in txn_records.items():
        status = outcome(txn)
        seen_any, missing_any, all_drained = False, False, True
        for rid in rids:
            s = sent[rid]
            passes_here = [(start, seen) for start, seen in drained_parts.get((s.topic, s.partition), [])
                           if covered(rid, start)]
            if not passes_here:
                all_drained = False
                if status == COMMITTED:
                    unchecked += 1
                continue
            for _start, seen in passes_here:
                if rid in seen:
                    seen_any = True
                else:
                    missing_any = True
                    if status == COMMITTED:
                        flag(LOST_COMMITTED_WRITE, txn=txn, index=rid[1], topic=s.topic, partition=s.partition)
        if all_drained and seen_any and missing_any:
            flag(TORN_TRANSACTION, txn=txn, outcome=status, records=len(rids))

    # reads past an open transaction: per partition, txns' first offsets with their end start
    firsts: dict[tuple[str, int], dict[str, int]] = {}
    for rid, offs in record_offsets.items():
        rec = sent.get(rid)
        if rec is None or not offs:
            continue
        per = firsts.setdefault((rec.topic, rec.partition), {})
        per[rid[0]] = min(per.get(rid[0], min(offs)), min(offs))
    open_until: dict[tuple[str, int], tuple[list[int], list[float], list[str]]] = {}
    for tp, per in firsts.items():
        rows = sorted((first, ended[txn].start_time if txn in ended else float("-inf"), txn)
                      for txn, first in per.items() if txn in ended)
        fs, ends, names = [], [], []
        best, best_txn = float("-inf"), ""
        for first, end_start, txn in rows:
            if end_start > best:
                best, best_txn = end_start, txn
            fs.append(first)
            ends.append(best)
            names.append(best_txn)
        open_until[tp] = (fs, ends, names)
    for r in rc_reads:
        table = open_until.get((r.topic, r.partition))
        if table is None:
            continue
        fs, ends, names = table
        i = bisect_right(fs, r.offset) - 1
        if i >= 0 and ends[i] > r.time:
            flag(READ_PAST_OPEN_TXN, consumer=r.consumer, topic=r.topic, partition=r.partition,
                 offset=r.offset, time=r.time, open_txn=names[i], open_until=ends[i])

    # consume-transform-produce: committed offsets that skip input records
    processed: set[tuple[str, int, int]] = set()
    for rid, s in sent.items():
        if s.source_topic is not None and s.source_partition is not None and s.source_offset is not None \
                and outcome(rid[0]) != ABORTED:  # an unknown outcome may have committed
            processed.add((s.source_topic, s.source_partition, s.source_offset))
    input_offsets: dict[tuple[str, int], set[int]] = {}
    for r in rc_reads:
        input_offsets.setdefault((r.topic, r.partition), set()).add(r.offset)
    last_committed: dict[tuple[str, str, int], tuple[float, int]] = {}
    possible: dict[tuple[str, str, int], set[int]] = {}
    for o in offsets_sent:
        key = (o.group, o.topic, o.partition)
        status = outcome(o.txn)
        if status == UNKNOWN:
            possible.setdefault(key, set()).add(o.offset)
        if status != COMMITTED:
            continue
        end_time = ended[o.txn].time
        if key not in last_committed or end_time >= last_committed[key][0]:
            last_committed[key] = (end_time, o.offset)
        for x in sorted(input_offsets.get((o.topic, o.partition), ())):
            if x >= o.offset:
                break
            if (o.topic, o.partition, x) not in processed:
                flag(OFFSET_SKIP, group=o.group, topic=o.topic, partition=o.partition, committed=o.offset,
                     skipped=x, txn=o.txn)
    for f in fetched:
        key = (f.group, f.topic, f.partition)
        expected = last_committed.get(key, (0.0, -1))[1]
        if f.offset != expected and f.offset not in possible.get(key, set()):
            flag(OFFSET_COMMIT_MISMATCH, group=f.group, topic=f.topic, partition=f.partition,
                 fetched=f.offset, expected=expected)

    outcomes = [outcome(t) for t in txn_records]
    summary = {"events": n_events, "transactions": len(txn_records),
               "committed": outcomes.count(COMMITTED), "aborted": outcomes.count(ABORTED),
               "unknown": outcomes.count(UNKNOWN), "records": len(sent),
               "read_committed_reads": len(rc_reads), "drains": len(drains),
               "unchecked_committed_records": unchecked}
    reasons: list[str] = []
    if unchecked:
        reasons.append(f"{unchecked} committed records on partitions without a read_committed drain")
    if not any(counts.values()) and not drains and txn_records:
        reasons.append("no read_committed drain")
    if not summary["committed"]:
        reasons.append("no committed transaction: nothing was judged")
    status = "invalid" if any(counts.values()) else ("unknown" if reasons else "valid")
    return TxnVerdict(status, counts, evidence, summary, tuple(reasons))


def check_txn_file(path: str | os.PathLike[str], options: TxnCheckerOptions | None = None) -> TxnVerdict:
    """check_txn over a history file."""
    return check_txn(read_txn_history(path), options)
