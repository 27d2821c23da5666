"""Duplicates the client made by re-sending under a new idempotent epoch (ProducerEpoch events)
are reported as ``duplicate_new_epoch`` and do not make a verdict invalid; every other
duplicate still does."""

import pytest

from kafkalike.chaos.checker import DUPLICATE, DUPLICATE_NEW_EPOCH, INVALID, VALID, check
from kafkalike.chaos.history import Event, ProducerEpoch

from test_chaos_checker import P0, P1, T, drain, flagged, produced, reads

# a#1 is sent at 1.1 and acknowledged at 1.11 at offset 1 (test_chaos_checker.produced); here
# the log holds it again at offset 4.
P0_DUP = P0 + [(4, "a", 1)]


def dup_history(epochs: list[Event]) -> list[Event]:
    return (produced() + epochs + reads("c0", 0, P0_DUP, 4.0) + reads("c0", 1, P1, 4.0)
            + drain(0, P0_DUP, 5) + drain(1, P1, 3))


def first_epoch(t: float = 0.9, producer: str = "p0", part: int = 0) -> ProducerEpoch:
    return ProducerEpoch(t, producer, T, part, 1000, 0, "")


def test_duplicate_across_an_epoch_bump_is_reported_but_not_judged() -> None:
    """a#1's producer moved partition 0 to epoch 1 between a#1's send and its acknowledgement:
    the second copy is the client's re-send under the new epoch: valid, counted, with the bump."""
    bump = ProducerEpoch(1.105, "p0", T, 0, 1000, 1, "epoch bump: skipped sequence numbers")
    v = check(dup_history([first_epoch(), bump]))
    assert v.status == VALID
    assert flagged(v) == {DUPLICATE_NEW_EPOCH}
    assert v.counts[DUPLICATE_NEW_EPOCH] == 1 and v.counts[DUPLICATE] == 0
    e = v.evidence[DUPLICATE_NEW_EPOCH][0]
    assert (e["key"], e["seq"], e["first"], e["again"]) == ("a", 1, "chaos-0@1", "chaos-0@4")
    assert (e["from"], e["to"], e["epoch_changed_at"], e["reason"]) == (
        "1000/0", "1000/1", 1.105, "epoch bump: skipped sequence numbers")
    assert "duplicate_new_epoch (not judged)" in v.render_text()


def test_a_bump_with_a_reason_counts_without_the_first_assignment() -> None:
    """A history that missed the partition's first producer id still shows a bump the client
    gave a reason for."""
    bump = ProducerEpoch(1.105, "p0", T, 0, 1000, 1, "epoch bump: skipped sequence numbers")
    v = check(dup_history([bump]))
    assert v.status == VALID and flagged(v) == {DUPLICATE_NEW_EPOCH}
    assert v.evidence[DUPLICATE_NEW_EPOCH][0]["from"] == "?"


@pytest.mark.parametrize(
    ("epochs", "why"),
    [([], "no epoch events at all"),
     ([first_epoch()], "only the first producer id assignment"),
     ([first_epoch(), ProducerEpoch(1.2, "p0", T, 0, 1000, 1, "x")], "bump after the acknowledgement"),
     ([first_epoch(), ProducerEpoch(1.05, "p0", T, 0, 1000, 1, "x")], "bump before the send"),
     ([first_epoch(part=1), ProducerEpoch(1.105, "p0", T, 1, 1000, 1, "x")], "bump on another partition"),
     ([first_epoch(producer="p1"), ProducerEpoch(1.105, "p1", T, 0, 1000, 1, "x")],
      "bump of another producer"),
     ([first_epoch(), ProducerEpoch(1.105, "p0", T, 0, 1000, 0, "")], "same producer id and epoch again"),
     ([first_epoch(1.105)], "the first producer id, assigned after the send")],
)
def test_other_duplicates_stay_judged(epochs: list[Event], why: str) -> None:
    """A duplicate is the cluster's unless its own producer changed its own partition's epoch
    while the record was unacknowledged."""
    v = check(dup_history(epochs))
    assert v.status == INVALID, why
    assert flagged(v) == {DUPLICATE}, why
