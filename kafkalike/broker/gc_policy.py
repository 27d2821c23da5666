"""GcPolicy: how a broker process keeps CPython's cyclic garbage collector from stalling its
event loop (docs/design.md "Garbage collection", docs/robustness.md "Many topics").

CPython's collector is generational: a full (generation 2) collection walks every container
object the process holds. A broker with 10,000 topics holds several hundred thousand of them
(logs, segments, indexes, partitions, metadata), so each full collection took 0.3-1.3 s of
CPU on the loop thread (any thread's collection holds them all), ~40 times while creating
10,000 topics. Kafka's JVM runs G1 with MaxGCPauseMillis=20 (kafka-run-class.sh); CPython
has no pause target, so kafkalike keeps the long-lived objects out of the collector's view:

- after start-up: ``gc.collect()`` then ``gc.freeze()`` (Python docs, gc.freeze: "move all
  objects tracked by the garbage collector into a permanent generation", ignored by every
  later collection; Instagram's "Dismissing Python Garbage Collection at Instagram");
- every ``kafkalike.gc.freeze.interval.ms`` (default 10 s): a collection of the two young
  generations (bounded by CPython's thresholds, 700 x 10 allocations: milliseconds), then
  freeze the survivors. Metadata changes that created many long-lived objects (a LeaderAndIsr
  creating logs, a __consumer_offsets load) are frozen within one interval. CPython's own
  full collections go on between passes, over the unfrozen objects only, so they are short
  too. (A full collection in every pass, tried first, took up to 160 ms of CPU while 10,000
  topics were being created: everything allocated in 10 s);
- the bound on the leak freezing makes: a frozen object that later becomes cyclic garbage
  (a deleted topic's log, say), or cyclic garbage that reached the old generation since
  CPython's last full collection and was frozen with the survivors, is never collected while
  frozen (reference counting still frees everything not in a cycle). Every ``kafkalike.gc.unfreeze.interval.ms`` (default 1 h) the
  policy unfreezes everything, runs one full collection (the one long pause, hundreds of ms
  at 10,000 topics, once an hour instead of ~40 times per 10,000 creations) and freezes again.

0 for the freeze interval disables the policy (CPython's defaults: automatic collections of
every generation); 0 for the unfreeze interval never unfreezes.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import attrs
import structlog
import trio

log = structlog.get_logger(__name__)


@attrs.frozen
class GcPass:
    """One pass of the policy: ``kind`` ("startup", "freeze" or "unfreeze"), ``collected``
    (unreachable objects found by the collection), ``frozen`` (objects this pass moved into
    the permanent generation), ``ms`` (wall time of the pass, milliseconds)."""

    kind: str
    collected: int
    frozen: int
    ms: float


class GcPolicy:
    """Collect-then-freeze passes over the process's objects (see the module docstring).

    ``freeze_interval_ms`` (> 0 on; 0 disables ``run``, ``after_startup`` does nothing),
    ``unfreeze_interval_ms`` (0: never unfreeze). ``passes`` counts the passes by kind,
    ``last`` is the latest GcPass, ``frozen_total`` the objects all passes have frozen (a
    counter: frozen objects freed later are not subtracted). Nothing raises.

    gc.get_freeze_count() walks the whole permanent generation (~90 ms for 600,000 objects at
    load 15), so the periodic pass counts only what it freezes (``len(gc.get_objects())``: the
    unfrozen objects) and the /metrics counter is ``frozen_total``.
    """

    def __init__(self, freeze_interval_ms: int, unfreeze_interval_ms: int) -> None:
        self.freeze_interval_ms = freeze_interval_ms
        self.unfreeze_interval_ms = unfreeze_interval_ms
        self.passes: dict[str, int] = {"startup": 0, "freeze": 0, "unfreeze": 0}
        self.last: GcPass | None = None
        self.frozen_total = 0

    @property
    def enabled(self) -> bool:
        return self.freeze_interval_ms > 0

    def collect_and_freeze(self, kind: str = "freeze") -> GcPass:
        """Collect, then freeze the survivors. ``kind="freeze"``: the young generations (0, 1)
        only; "startup": a full collection; "unfreeze": unfreeze everything first, then a full
        collection over all objects."""
        started = time.perf_counter()
        if kind == "unfreeze":
            gc.unfreeze()
        collected = gc.collect(1 if kind == "freeze" else 2)
        if kind == "freeze":
            moved = len(gc.get_objects())  # the unfrozen objects only
            gc.freeze()
        else:  # these passes walked every object already
            before = 0 if kind == "unfreeze" else gc.get_freeze_count()
            gc.freeze()
            moved = gc.get_freeze_count() - before
        self.frozen_total += moved
        done = GcPass(kind=kind, collected=collected, frozen=moved,
                      ms=round((time.perf_counter() - started) * 1000, 1))
        self.passes[kind] = self.passes.get(kind, 0) + 1
        self.last = done
        (log.info if kind != "freeze" else log.debug)(
            "gc_frozen", kind=kind, collected=done.collected, frozen=done.frozen, ms=done.ms)
        return done

    def after_startup(self) -> GcPass | None:
        """The start-up pass (KafkaServer calls it once the broker has started)."""
        return self.collect_and_freeze("startup") if self.enabled else None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Every freeze interval a "freeze" pass; an "unfreeze" pass instead once the unfreeze
        interval has passed since the last one. Returns at once when disabled; else runs until
        cancelled."""
        task_status.started()
        if not self.enabled:
            return
        last_unfreeze = trio.current_time()
        while True:
            await trio.sleep(self.freeze_interval_ms / 1000)
            now = trio.current_time()
            if self.unfreeze_interval_ms > 0 and (now - last_unfreeze) * 1000 >= self.unfreeze_interval_ms:
                self.collect_and_freeze("unfreeze")
                last_unfreeze = now
            else:
                self.collect_and_freeze("freeze")

    def shutdown(self) -> None:
        """Unfreeze (objects left frozen are fine at exit; this keeps an in-process broker,
        as tests run it, from leaving its objects frozen in the test process)."""
        if self.enabled:
            gc.unfreeze()
