"""A simulated *correct* Kafka log and workload that writes a history, for checker tests.

Producers own keys and send each key's seqs in order; a partition's log appends in send order
(an idempotent producer on a correct broker), acknowledgements and failures arrive later and
out of order across partitions; definite failures never append, indefinite ones may or may
not; some offsets hold transaction markers (no record); group consumers read forward and are
sometimes reassigned back to an earlier committed offset; faults start and heal; at the end a
drain consumer reads every partition from 0 to its end. Nothing here may break a Kafka
guarantee, so the checker must call every history it makes valid.

Also usable as a generator of big histories for the checker benchmark (``python
tests/chaos/chaos_sim.py EVENTS PATH``).
"""

from __future__ import annotations

import heapq
import random
import sys
import time

from kafkalike.chaos.history import (
    Acknowledged,
    Assigned,
    Consumed,
    Drained,
    Event,
    Failed,
    FaultHealed,
    FaultStarted,
    Sent,
)

TOPIC = "chaos"


def simulate(
    seed: int,
    ops: int = 200,
    partitions: int = 3,
    keys: int = 6,
    producers: int = 2,
    consumers: int = 2,
    p_fail: float = 0.1,
    p_marker: float = 0.05,
    p_no_outcome: float = 0.02,
) -> list[Event]:
    """Run the simulation for ``ops`` steps; return the history (time-ordered events)."""
    rnd = random.Random(seed)
    out: list[Event] = []
    t = 0.0
    logs: list[list[tuple[str, int] | None]] = [[] for _ in range(partitions)]
    key_names = [f"k{i}" for i in range(keys)]
    owner = {k: f"p{i % producers}" for i, k in enumerate(key_names)}
    part_of = {k: i % partitions for i, k in enumerate(key_names)}
    next_seq = {k: 0 for k in key_names}
    pending: list[tuple[float, int, Event]] = []  # (due, tiebreak, event)
    tie = 0
    down: set[int] = set()  # partitions refusing writes (a fault)
    # consumer -> partition -> position
    cons = [f"c{i}" for i in range(consumers)]
    pos: dict[str, dict[int, int]] = {c: {} for c in cons}
    for c in cons:
        for p in range(partitions):
            if rnd.random() < 0.7:
                pos[c][p] = 0
                out.append(Assigned(t, c, TOPIC, p, 0))
    faults: list[tuple[str, str]] = []

    def flush_due(now: float) -> None:
        while pending and pending[0][0] <= now:
            out.append(heapq.heappop(pending)[2])

    for _ in range(ops):
        t += rnd.uniform(0.001, 0.05)
        flush_due(t)
        r = rnd.random()
        if r < 0.5:
            k = rnd.choice(key_names)
            seq = next_seq[k]
            next_seq[k] += 1
            p = part_of[k]
            out.append(Sent(t, owner[k], TOPIC, k, seq, p))
            due = t + rnd.uniform(0.001, 0.2)
            tie += 1
            if p in down or rnd.random() < p_fail:
                if rnd.random() < 0.5:
                    ev: Event | None = Failed(due, TOPIC, k, seq, "NOT_ENOUGH_REPLICAS", True, p)
                else:
                    if rnd.random() < 0.5:
                        logs[p].append((k, seq))  # written although the client timed out
                    ev = Failed(due, TOPIC, k, seq, "REQUEST_TIMED_OUT", False, p)
            else:
                if rnd.random() < p_marker:
                    logs[p].append(None)  # a transaction marker before the record
                off = len(logs[p])
                logs[p].append((k, seq))
                ev = Acknowledged(due, TOPIC, k, seq, p, off)
                if rnd.random() < p_no_outcome:
                    ev = None  # the run ends before the client hears back
            if ev is not None:
                heapq.heappush(pending, (due, tie, ev))
        elif r < 0.85:
            c = rnd.choice(cons)
            if not pos[c]:
                continue
            p = rnd.choice(sorted(pos[c]))
            o = pos[c][p]
            while o < len(logs[p]) and logs[p][o] is None:
                o += 1
            if o < len(logs[p]):
                k, seq = logs[p][o]  # type: ignore[misc]
                out.append(Consumed(t, c, TOPIC, p, o, k, seq))
                pos[c][p] = o + 1
            else:
                pos[c][p] = o
        elif r < 0.9:
            # rebalance: consumer gets a partition at an earlier committed offset
            c = rnd.choice(cons)
            p = rnd.randrange(partitions)
            o = rnd.randint(0, pos[c].get(p, 0))
            pos[c][p] = o
            out.append(Assigned(t, c, TOPIC, p, o))
        elif r < 0.95:
            if faults and rnd.random() < 0.6:
                name, target = faults.pop()
                out.append(FaultHealed(t, name, target))
                down.discard(int(target.rsplit("-", 1)[1]))
            else:
                p = rnd.randrange(partitions)
                faults.append(("leader_kill", f"{TOPIC}-{p}"))
                down.add(p)
                out.append(FaultStarted(t, "leader_kill", f"{TOPIC}-{p}", "simulated"))
        else:
            t += rnd.uniform(0.0, 0.3)
    t += 1.0
    flush_due(float("inf"))
    for name, target in faults:
        out.append(FaultHealed(t, name, target))
    for p in range(partitions):
        t += 0.01
        out.append(Assigned(t, "drain", TOPIC, p, 0))
        for o, rec in enumerate(logs[p]):
            if rec is not None:
                out.append(Consumed(t, "drain", TOPIC, p, o, rec[0], rec[1]))
        out.append(Drained(t, "drain", TOPIC, p, 0, len(logs[p])))
    return out


def big_history(events: int, seed: int = 1) -> list[Event]:
    """About ``events`` events from a simulation with many keys and steady consumers."""
    # about 1.87 events per step: a send (0.5) with its outcome, group reads, drain reads
    return simulate(seed, ops=int(events / 1.87), partitions=6, keys=1000, producers=4,
                    consumers=2, p_fail=0.02, p_marker=0.0, p_no_outcome=0.001)


if __name__ == "__main__":
    from kafkalike.chaos.history import write_history

    n = int(sys.argv[1])
    path = sys.argv[2]
    t0 = time.monotonic()
    h = big_history(n)
    written = write_history(path, h)
    print(f"wrote {written} events to {path} in {time.monotonic() - t0:.1f} s")
