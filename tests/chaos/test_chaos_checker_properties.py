"""Checker properties on generated histories: a simulated correct log is always valid, and any
injected fault in it is never called valid (a deleted acked record is always reported lost)."""

import io

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos_sim import simulate
from kafkalike.chaos.checker import DOUBLE_ACK, DUPLICATE, GAP, LOST, PHANTOM, REORDER, UNKNOWN, VALID, check
from kafkalike.chaos.history import (
    Acknowledged,
    Assigned,
    Consumed,
    Drained,
    Event,
    Failed,
    Sent,
    history_text,
    read_history,
)


@attrs.frozen
class Sim:
    """Parameters of one simulated run; ``history()`` runs it (in the test body, so that data
    generation stays fast and hypothesis's health checks hold on a loaded machine)."""

    seed: int
    ops: int
    partitions: int
    keys: int
    consumers: int

    def history(self) -> list[Event]:
        return simulate(self.seed, ops=self.ops, partitions=self.partitions, keys=self.keys,
                        consumers=self.consumers)


sims = st.builds(
    Sim,
    st.integers(0, 2**32),
    st.integers(20, 300),
    st.integers(1, 4),
    st.integers(1, 8),
    st.integers(1, 3),
)


@settings(max_examples=60, deadline=None)
@given(sims)
def test_simulated_correct_log_is_valid(sim: Sim) -> None:
    """Every history of the simulated correct log gets status valid with no anomaly."""
    h = sim.history()
    v = check(h)
    assert v.status == VALID, v.render_text()
    assert not any(v.counts.values())


@settings(max_examples=10, deadline=None)
@given(sims)
def test_verdict_survives_the_file_format(sim: Sim) -> None:
    """Writing a history as JSON lines and reading it back gives the same verdict."""
    h = sim.history()
    back = list(read_history(io.StringIO(history_text(h))))
    assert back == h
    assert check(back).to_json() == check(h).to_json()


def acked_records(h: list[Event]) -> list[Acknowledged]:
    return [e for e in h if isinstance(e, Acknowledged)]


@settings(max_examples=60, deadline=None)
@given(sims, st.data())
def test_deleting_an_acked_record_from_what_was_read_is_always_lost(sim: Sim, data: st.DataObject) -> None:
    """Remove every read of one acknowledged record: the checker reports exactly it as lost."""
    h = sim.history()
    acks = acked_records(h)
    if not acks:
        return
    victim = data.draw(st.sampled_from(acks))
    rid = (victim.key, victim.seq)
    mutated = [e for e in h if not (isinstance(e, Consumed) and (e.key, e.seq) == rid)]
    v = check(mutated)
    assert v.status != VALID
    assert v.counts[LOST] == 1
    e = v.evidence[LOST][0]
    assert (e["key"], e["seq"], e["partition"], e["offset"]) == (victim.key, victim.seq, victim.partition,
                                                                 victim.offset)


@settings(max_examples=60, deadline=None)
@given(sims, st.data())
def test_injected_faults_are_never_called_valid(sim: Sim, data: st.DataObject) -> None:
    """Each mutation breaks a guarantee; the verdict must not be valid and must name it."""
    h = sim.history()
    acks = acked_records(h)
    drains = [e for e in h if isinstance(e, Drained) and any(a.partition == e.partition for a in acks)]
    if len(acks) < 2 or not drains:
        return
    kind = data.draw(st.sampled_from(["double_ack", "duplicate", "phantom", "undrained"]))
    if kind == "double_ack":
        a, b = data.draw(st.lists(st.sampled_from(acks), min_size=2, max_size=2, unique=True))
        i = h.index(b)
        mutated = h[:i] + [Acknowledged(b.time, b.topic, b.key, b.seq, a.partition, a.offset)] + h[i + 1:]
        expect = DOUBLE_ACK
    elif kind == "duplicate":
        d = data.draw(st.sampled_from(drains))
        a = data.draw(st.sampled_from([e for e in acks if e.partition == d.partition]))
        i = h.index(d)
        copy = Consumed(d.time, d.consumer, d.topic, d.partition, d.end_offset, a.key, a.seq)
        end = Drained(d.time, d.consumer, d.topic, d.partition, d.start_offset, d.end_offset + 1)
        mutated = h[:i] + [copy, end] + h[i + 1:]
        expect = DUPLICATE
    elif kind == "phantom":
        d = data.draw(st.sampled_from(drains))
        i = h.index(d)
        ghost = Consumed(d.time, d.consumer, d.topic, d.partition, d.end_offset, "never-sent", 0)
        end = Drained(d.time, d.consumer, d.topic, d.partition, d.start_offset, d.end_offset + 1)
        mutated = h[:i] + [ghost, end] + h[i + 1:]
        expect = PHANTOM
    else:
        d = data.draw(st.sampled_from(drains))
        mutated = [e for e in h if e is not d]
        v = check(mutated)
        assert v.status == UNKNOWN
        return
    v = check(mutated)
    assert v.status != VALID
    assert v.counts[expect] >= 1, (kind, v.render_text())


def consecutive_reads(h: list[Event], consumer_filter: str | None = None) -> list[tuple[int, int]]:
    """Index pairs (i, j) of consecutive Consumed events of one consumer and partition within
    one pass (no Assigned for them in between)."""
    last: dict[tuple[str, int], int] = {}
    pairs = []
    for j, e in enumerate(h):
        if isinstance(e, Assigned):
            last.pop((e.consumer, e.partition), None)
        elif isinstance(e, Consumed) and (consumer_filter is None or e.consumer != consumer_filter):
            k = (e.consumer, e.partition)
            if k in last:
                pairs.append((last[k], j))
            last[k] = j
    return pairs


@settings(max_examples=60, deadline=None)
@given(sims, st.data())
def test_consumer_going_backwards_is_always_reported(sim: Sim, data: st.DataObject) -> None:
    """Swap two consecutive reads of one consumer pass: reorder, never valid."""
    h = sim.history()
    pairs = consecutive_reads(h)
    if not pairs:
        return
    i, j = data.draw(st.sampled_from(pairs))
    mutated = list(h)
    mutated[i], mutated[j] = h[j], h[i]
    v = check(mutated)
    assert v.status != VALID
    assert v.counts[REORDER] >= 1


@settings(max_examples=60, deadline=None)
@given(sims, st.data())
def test_group_consumer_skipping_a_record_is_exactly_a_gap(sim: Sim, data: st.DataObject) -> None:
    """Delete a read that another read of the same pass follows: the consumer skipped a known
    offset (the drain still has the record): exactly one gap."""
    h = sim.history()
    pairs = consecutive_reads(h, consumer_filter="drain")
    if not pairs:
        return
    i, _j = data.draw(st.sampled_from(pairs))
    mutated = h[:i] + h[i + 1:]
    v = check(mutated)
    assert v.status != VALID
    assert {k for k, n in v.counts.items() if n} == {GAP}
    assert v.counts[GAP] == 1


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 1000), st.integers(0, 50)), max_size=40))
def test_unavailability_windows_cover_every_failure_and_no_acknowledgement(ops: list) -> None:
    """For any mix of acknowledged and failed produces on one partition: windows are sorted
    and disjoint, every failure's time lies in exactly one window, no acknowledgement falls
    strictly inside one, and each window ends at an acknowledgement or the history's end."""
    h: list[Event] = []
    acks, fails = [], []
    for i, (ok, sent_ms, latency_ms) in enumerate(ops):
        t_sent, t_done = sent_ms / 1000, (sent_ms + latency_ms) / 1000
        h.append(Sent(t_sent, "p0", "t", "k", i, 0))
        if ok:
            h.append(Acknowledged(t_done, "t", "k", i, 0, i))
            acks.append(t_done)
        else:
            h.append(Failed(t_done, "t", "k", i, "REQUEST_TIMED_OUT", False, 0))
            fails.append(t_done)
    v = check(h)
    if not fails:
        assert all(not a.windows for a in v.availability)
        return
    (avail,) = v.availability
    ws = avail.windows
    assert all(a.end <= b.start for a, b in zip(ws, ws[1:]))
    assert sum(w.failures for w in ws) == len(fails)
    for f in fails:
        assert sum(1 for w in ws if w.start <= f and (f < w.end or w.open)) == 1
    for a in acks:
        assert not any(w.start < a < w.end for w in ws)
    end = max(e.time for e in h)
    for w in ws:
        assert w.end in acks or (w.open and w.end == end)
