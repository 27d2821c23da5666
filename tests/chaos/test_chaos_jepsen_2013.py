"""The Kafka 0.8 failure Jepsen found in 2013, replayed as a history: the checker reports the
lost acknowledged writes, the rewritten offsets and the order break; the same run with
min.insync.replicas=2 and clean elections only is valid, with an unavailability window."""

import re

from kafkalike.chaos.checker import DOUBLE_ACK, INVALID, LOST, ORDER, VALID, check
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

T = "jepsen"
KEYS = [f"k{i}" for i in range(5)]
REPLICATED = 467    # acknowledged while the ISR still had followers
LONE_LEADER = 520   # acknowledged by a leader whose ISR had shrunk to itself
AFTER = 100         # written to the new leader after the election


def jepsen_2013(min_insync_replicas: int) -> list[Event]:
    """One partition, five keys, one producer; a partition shrinks the ISR to the leader, then
    cuts the leader off and a replica outside the ISR is elected (Kafka 0.8's behaviour), which
    truncates the lone leader's tail. With min.insync.replicas=2 the lone-leader writes are
    refused instead (NOT_ENOUGH_REPLICAS, definite) and no unclean election happens."""
    h: list[Event] = []
    t = 0.0
    seq = {k: 0 for k in KEYS}
    log: list[tuple[str, int]] = []   # the log the surviving leader ends with
    n = 0

    def send() -> tuple[str, int]:
        nonlocal t, n
        k = KEYS[n % len(KEYS)]
        n += 1
        s = seq[k]
        seq[k] += 1
        t += 0.01
        h.append(Sent(t, "p0", T, k, s, 0))
        return k, s

    for _ in range(REPLICATED):
        k, s = send()
        h.append(Acknowledged(t + 0.005, T, k, s, 0, len(log)))
        log.append((k, s))
    h.append(FaultStarted(t + 0.001, "partition", "leader|followers"))
    for i in range(LONE_LEADER):
        k, s = send()
        if min_insync_replicas >= 2:
            h.append(Failed(t + 0.005, T, k, s, "NOT_ENOUGH_REPLICAS", True, 0))
        else:
            h.append(Acknowledged(t + 0.005, T, k, s, 0, REPLICATED + i))  # never replicated
    h.append(FaultStarted(t + 0.001, "partition", "leader|zookeeper"))
    t += 5.0  # election
    h.append(FaultHealed(t, "partition", "leader|followers"))
    h.append(FaultHealed(t, "partition", "leader|zookeeper"))
    for _ in range(AFTER):
        k, s = send()
        h.append(Acknowledged(t + 0.005, T, k, s, 0, len(log)))
        log.append((k, s))
    t += 1.0
    h.append(Assigned(t, "drain", T, 0, 0))
    h += [Consumed(t, "drain", T, 0, off, k, s) for off, (k, s) in enumerate(log)]
    h.append(Drained(t, "drain", T, 0, 0, len(log)))
    return h


def test_kafka_08_unclean_election_loses_the_lone_leaders_writes() -> None:
    """987 writes acknowledged before the election, 520 of them only by the lone leader: the
    checker reports exactly those 520 as lost, the 100 offsets acknowledged twice, and keys
    whose new writes got offsets below writes already acknowledged to them."""
    v = check(jepsen_2013(min_insync_replicas=1))
    assert v.status == INVALID
    assert v.summary["acknowledged"] == REPLICATED + LONE_LEADER + AFTER
    assert v.counts[LOST] == LONE_LEADER
    assert v.counts[DOUBLE_ACK] == AFTER
    assert v.counts[ORDER] == AFTER
    assert {e["offset"] for e in v.evidence[LOST]} <= set(range(REPLICATED, REPLICATED + LONE_LEADER))
    assert re.search(rf"^lost\s+{LONE_LEADER}\s", v.render_text(), re.M)


def test_min_insync_replicas_turns_the_loss_into_unavailability() -> None:
    """With min.insync.replicas=2 the lone-leader writes fail definitely: nothing acknowledged is
    lost, and the partition shows one unavailability window from the first refusal to the
    first write acknowledged by the new leader."""
    h = jepsen_2013(min_insync_replicas=2)
    v = check(h)
    assert v.status == VALID
    assert v.summary["failed_definite"] == LONE_LEADER
    (avail,) = v.availability
    (w,) = avail.windows
    first_refused = next(e for e in h if isinstance(e, Failed))
    first_sent = next(e for e in h if isinstance(e, Sent) and (e.key, e.seq) == (first_refused.key, first_refused.seq))
    first_after = [e for e in h if isinstance(e, Acknowledged)][REPLICATED]
    assert (w.start, w.end, w.failures) == (first_sent.time, first_after.time, LONE_LEADER)
