"""The checker's consumer-group checks (kafkalike/chaos/checker.py: commit_backwards,
skipped_by_group, unread_by_group) on simulated histories of a group that commits after
processing: a correct group, with rebalances that send partitions back to the committed
offset, is always valid; a seek past an unread record followed by a commit is exactly one
skipped_by_group; a commit below an earlier one is exactly one commit_backwards; a group that
never caught up leaves the verdict unknown, not valid."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.chaos.checker import (
    COMMIT_BACKWARDS,
    SKIPPED_BY_GROUP,
    UNREAD_BY_GROUP,
    CheckerOptions,
    check,
)
from kafkalike.chaos.history import Acknowledged, Assigned, Committed, Consumed, Drained, Event, Joined, Sent

TOPIC = "chaos"
GROUP = "g"
OPTS = CheckerOptions(idempotent=True, contiguous_offsets=True)


def simulate_group(seed: int, steps: int = 300, partitions: int = 2, members: int = 2,
                   skip: bool = False, backwards: bool = False, catch_up: bool = True) -> list[Event]:
    """A correct log, a group of ``members`` that reads forward from the group's committed
    offset and commits its position after processing, rebalances (every partition handed to a
    random member, which starts at the committed offset: what it had read since the last
    commit it reads again), then (``catch_up``) every owner reads to the end and commits it,
    and a drain. ``skip``: during the catch-up, one owner seeks one record past an offset no
    member has read and commits; ``backwards``: a member commits one offset below the
    group's last commit of a partition (what the coordinator must refuse)."""
    rnd = random.Random(seed)
    t = 0.0
    out: list[Event] = []
    logs: list[list[tuple[str, int]]] = [[] for _ in range(partitions)]
    next_seq: dict[str, int] = {}
    names = [f"c{i}" for i in range(members)]
    for c in names:
        out.append(Joined(t, c, GROUP))
    committed = [0] * partitions
    owner = [rnd.choice(names) for _ in range(partitions)]
    pos = [0] * partitions
    read_max = [-1] * partitions

    def tick() -> float:
        nonlocal t
        t += rnd.uniform(0.001, 0.02)
        return t

    def assign() -> None:
        for p in range(partitions):
            owner[p] = rnd.choice(names)
            pos[p] = committed[p]
            out.append(Assigned(tick(), owner[p], TOPIC, p, pos[p]))

    def read(p: int) -> None:
        k, seq = logs[p][pos[p]]
        out.append(Consumed(tick(), owner[p], TOPIC, p, pos[p], k, seq))
        read_max[p] = max(read_max[p], pos[p])
        pos[p] += 1

    def commit(p: int) -> None:
        committed[p] = pos[p]
        out.append(Committed(tick(), owner[p], GROUP, TOPIC, p, pos[p]))

    assign()
    for _ in range(steps):
        r = rnd.random()
        if r < 0.5:
            p = rnd.randrange(partitions)
            k = f"k{p}-{rnd.randrange(3)}"
            seq = next_seq.get(k, 0)
            next_seq[k] = seq + 1
            out.append(Sent(tick(), f"p{p}", TOPIC, k, seq, p))
            logs[p].append((k, seq))
            out.append(Acknowledged(tick(), TOPIC, k, seq, p, len(logs[p]) - 1))
        elif r < 0.85:
            p = rnd.randrange(partitions)
            if pos[p] < len(logs[p]):
                read(p)
        elif r < 0.95:
            p = rnd.randrange(partitions)
            if pos[p] > committed[p]:
                commit(p)
        else:
            assign()
    skipped = False
    if skip:  # one record no member can have read yet, so there is always one to skip
        out.append(Sent(tick(), "p0", TOPIC, "k-last", 0, 0))
        logs[0].append(("k-last", 0))
        out.append(Acknowledged(tick(), TOPIC, "k-last", 0, 0, len(logs[0]) - 1))
    for p in range(partitions):
        if not catch_up:
            break
        while pos[p] < len(logs[p]):
            if skip and not skipped and pos[p] > read_max[p]:
                pos[p] += 1  # a seek over a record no member has read
                out.append(Assigned(tick(), owner[p], TOPIC, p, pos[p]))
                skipped = True
                continue
            read(p)
        commit(p)
    if backwards:
        p = max(range(partitions), key=lambda i: committed[i])
        out.append(Committed(tick(), owner[p], GROUP, TOPIC, p, committed[p] - 1))
    for p in range(partitions):
        out.append(Assigned(tick(), "drain", TOPIC, p, 0))
        for o, (k, seq) in enumerate(logs[p]):
            out.append(Consumed(tick(), "drain", TOPIC, p, o, k, seq))
        out.append(Drained(tick(), "drain", TOPIC, p, 0, len(logs[p])))
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6))
def test_a_correct_group_with_rebalances_is_valid(seed: int) -> None:
    """Re-reading after a rebalance (back to the committed offset) is no anomaly."""
    v = check(simulate_group(seed), OPTS)
    assert v.status == "valid", v.render_text()
    assert v.summary["groups"] == 1 and v.summary["commits"] >= 2


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6))
def test_a_seek_past_an_unread_record_then_a_commit_is_exactly_one_skip(seed: int) -> None:
    """The skipped offset is reported, with the commit that covered it, and nothing else."""
    v = check(simulate_group(seed, skip=True), OPTS)
    assert v.counts[SKIPPED_BY_GROUP] == 1, v.render_text()
    assert {k for k, n in v.counts.items() if n} == {SKIPPED_BY_GROUP}
    assert v.status == "invalid"
    ev = v.evidence[SKIPPED_BY_GROUP][0]
    assert ev["group"] == GROUP and ev["read_at"] is None and ev["committed"] > ev["offset"]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6))
def test_a_commit_below_an_earlier_one_is_exactly_one_commit_backwards(seed: int) -> None:
    v = check(simulate_group(seed, backwards=True), OPTS)
    assert {k for k, n in v.counts.items() if n} == {COMMIT_BACKWARDS}, v.render_text()
    assert v.counts[COMMIT_BACKWARDS] == 1
    ev = v.evidence[COMMIT_BACKWARDS][0]
    assert ev["offset"] == ev["previous"] - 1


def test_a_group_that_never_caught_up_makes_the_verdict_unknown() -> None:
    h = simulate_group(7, catch_up=False)
    v = check(h, OPTS)
    assert v.status == "unknown", v.render_text()
    assert any("group g did not commit past" in r for r in v.unknown_reasons)
    assert not any(v.counts.values())


def test_a_record_the_group_read_something_else_in_place_of_is_unread_by_the_group() -> None:
    """The drain finds r1 at 0 and r2 at 1 (as acknowledged), but the group read r1 at both
    offsets and committed 2: r2 was never read by the group although it committed past it
    (with the divergent read and the duplicate that necessarily come with it)."""
    h: list[Event] = [Joined(0.0, "c0", GROUP),
                      Sent(0.1, "p0", TOPIC, "k", 0, 0), Acknowledged(0.2, TOPIC, "k", 0, 0, 0),
                      Sent(0.3, "p0", TOPIC, "k", 1, 0), Acknowledged(0.4, TOPIC, "k", 1, 0, 1),
                      Assigned(0.5, "c0", TOPIC, 0, 0),
                      Consumed(0.6, "c0", TOPIC, 0, 0, "k", 0), Consumed(0.7, "c0", TOPIC, 0, 1, "k", 0),
                      Committed(0.8, "c0", GROUP, TOPIC, 0, 2),
                      Assigned(1.0, "drain", TOPIC, 0, 0),
                      Consumed(1.1, "drain", TOPIC, 0, 0, "k", 0), Consumed(1.2, "drain", TOPIC, 0, 1, "k", 1),
                      Drained(1.3, "drain", TOPIC, 0, 0, 2)]
    v = check(h, OPTS)
    assert v.counts[UNREAD_BY_GROUP] == 1
    assert v.evidence[UNREAD_BY_GROUP][0]["seq"] == 1
    assert v.counts["divergent_read"] == 1 and v.counts[SKIPPED_BY_GROUP] == 0
    assert v.status == "invalid"
