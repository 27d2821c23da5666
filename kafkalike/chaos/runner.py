"""One chaos run: topic, workload, scenario (or random nemesis), heal, drain, verdict, report.

``run_chaos(backend, RunOptions(...)) -> RunResult``:

1. create the topic (RF 3, ``partitions``; ``min.insync.replicas=2`` unless the scenario
   says otherwise) and wait for full ISRs;
2. start the workload (kafkalike.chaos.workload) writing ``<report>/history.jsonl``;
   ``warmup`` seconds of calm;
3. run the scenario until ``duration`` is used up; **whatever happens** (errors, Ctrl-C)
   the nemesis then heals everything (restarts, SIGCONT, iptables rules removed);
4. stop the producers (flush), let the group catch up, stop it, wait for full ISRs, drain;
5. check the history (kafkalike.chaos.checker) and write the report directory
   (kafkalike.chaos.report). ``say`` gets a live line per fault and the verdict.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import structlog

from kafkalike.chaos.checker import CheckerOptions, Verdict, check_file
from kafkalike.chaos.faults import DEFAULT_MENU, Backend, FaultContext, Nemesis, wait_isr_full
from kafkalike.chaos.history import HistoryWriter, now
from kafkalike.chaos.report import write_report
from kafkalike.chaos.scenarios import SCENARIOS, Scenario, ScenarioContext
from kafkalike.chaos.workload import LockedHistory, Workload, WorkloadConfig

log = structlog.get_logger(__name__)


class ChaosRunError(Exception):
    """The run could not be set up (unknown scenario, topic not created, ...)."""


@attrs.frozen
class RunOptions:
    """A run's parameters. duration: seconds of faults (after ``warmup``); scenario: a name
    of scenarios.SCENARIOS ("random": the seeded random nemesis); topic: default
    ``chaos-<scenario>-<hex>``; menu: the random nemesis's menu version (faults.MENUS); the
    rest shapes the workload (WorkloadConfig). acks "all" runs
    idempotent producers; "1"/"0" run plain ones, and the checker then does not judge duplicates."""

    report_dir: Path
    scenario: str = "random"
    duration: float = 60.0
    seed: int = 0
    warmup: float = 3.0
    topic: str | None = None
    partitions: int = 3
    producers: int = 2
    keys_per_producer: int = 6
    rate: float = 50.0
    acks: str = "all"
    consumers: int = 2
    message_timeout_ms: int = 120000
    min_insync_replicas: int = 2
    menu: str = DEFAULT_MENU


@attrs.frozen
class RunResult:
    """What a run produced: the verdict, whether it matched the scenario's expectation, the
    report directory, the faults applied (and any that could not be), workload counters."""

    verdict: Verdict
    expected: str
    as_expected: bool
    report_dir: Path
    faults_injected: int
    fault_errors: tuple[str, ...]
    stats: dict[str, Any]
    drained: dict[int, Any]
    longest_ack_stall: float = 0.0


def _create_topic(backend: Backend, topic: str, partitions: int, config: dict[str, str]) -> None:
    """Create ``topic`` (RF 3) through the admin API, retrying for up to 90 s while the fresh
    cluster has no controller in its metadata yet; then wait for full ISRs."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": backend.bootstrap_servers})
    deadline = time.monotonic() + 90.0
    while True:
        futures = admin.create_topics([NewTopic(topic, partitions, 3, config=config)], operation_timeout=30,
                                      request_timeout=40)
        try:
            futures[topic].result(60)
            break
        except Exception as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                break
            if time.monotonic() > deadline:
                raise ChaosRunError(f"could not create topic {topic}: {exc}") from exc
            log.info("create_topic_retry", topic=topic, error=str(exc))
            time.sleep(2.0)
    if not wait_isr_full(backend, topic, 60.0):
        raise ChaosRunError(f"topic {topic}: partitions did not get full ISRs within 60 s")


def expectation_met(scenario: Scenario, verdict: Verdict) -> bool:
    """valid-scenarios: the verdict is valid; loss scenarios: the checker reports lost > 0."""
    if scenario.expect == "lost":
        return verdict.counts["lost"] > 0
    return verdict.valid


def run_chaos(backend: Backend, options: RunOptions, say: Callable[[str], None] = print,
              stop: threading.Event | None = None) -> RunResult:
    """Run one scenario against ``backend`` (already started); see the module doc.
    Raises ChaosRunError for a bad scenario or a cluster it cannot set up."""
    scenario = SCENARIOS.get(options.scenario)
    if scenario is None:
        raise ChaosRunError(f"unknown scenario {options.scenario!r}; known: {', '.join(SCENARIOS)}")
    if scenario.needs_zk and not backend.zk_node_ids:
        raise ChaosRunError(f"scenario {scenario.name} breaks ZooKeeper, which this backend does not own")
    surfaces = {"disk": "disk_faults", "clock": "clock_faults", "spare": "spares", "proxy": "zk_proxy"}
    missing = [n for n in scenario.needs if not getattr(backend, surfaces.get(n, n), False)]
    if missing:
        raise ChaosRunError(f"scenario {scenario.name} needs a backend with {', '.join(missing)} faults "
                            f"(the local backend, as root, with gcc, with a spare broker); {backend.name} has none")
    report_dir = Path(options.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    topic = options.topic or f"chaos-{scenario.name}-{uuid.uuid4().hex[:6]}"
    config = {"min.insync.replicas": str(options.min_insync_replicas), **scenario.topic_config}
    history_path = report_dir / "history.jsonl"
    history_path.unlink(missing_ok=True)
    say(f"chaos run: backend {backend.name}, scenario {scenario.name}"
        f"{f' (menu {options.menu})' if scenario.name == 'random' else ''}, seed {options.seed}, "
        f"duration {options.duration:g}s, topic {topic} {config}")
    _create_topic(backend, topic, options.partitions, config)

    # librdkafka's idempotence needs acks=all; with acks 1/0 duplicates are allowed (at least once)
    idempotent = options.acks == "all"
    rng = random.Random(options.seed)
    history = LockedHistory(HistoryWriter(history_path))
    fctx = FaultContext(backend, topic, 0, rng)
    nemesis = Nemesis(fctx, history, say)
    wl = Workload(backend.bootstrap_servers,
                  WorkloadConfig(topic, options.partitions, options.producers, options.keys_per_producer,
                                 options.rate, options.acks, idempotent, options.message_timeout_ms, options.consumers,
                                 group=f"{topic}-group"),
                  history, say)
    t0 = now()
    drained: dict[int, Any] = {}
    stop = stop or threading.Event()
    try:
        wl.start()
        stop.wait(options.warmup)
        sctx = ScenarioContext(nemesis, time.monotonic() + options.duration, rng, stop, menu=options.menu)
        try:
            scenario.run(sctx)
        finally:
            nemesis.heal_all()
        say(f"[{now() - t0:7.1f}s] faults over; stopping producers "
            f"(sent {wl.stats.sent}, acknowledged {wl.stats.acked}, failed {wl.stats.failed})")
        wl.stop_producers()
        say(f"[{now() - t0:7.1f}s] producers stopped; waiting for the group to commit every high watermark")
        caught_up = wl.wait_group_caught_up(90.0)
        say(f"[{now() - t0:7.1f}s] group {'caught up' if caught_up else 'NOT caught up after 90 s'}; stopping it")
        wl.stop_consumers()
        say(f"[{now() - t0:7.1f}s] group stopped; waiting for full ISRs")
        if not wait_isr_full(backend, topic, 90.0):
            say("warning: not every partition has a full ISR again after 90 s; draining anyway")
        say(f"[{now() - t0:7.1f}s] draining")
        drained = wl.drain(timeout=60.0)
        say(f"[{now() - t0:7.1f}s] drained {drained}")
    finally:
        wl.stop_producers(timeout=30)
        wl.stop_consumers()
        nemesis.heal_all()
        history.close()
    verdict = check_file(str(history_path), CheckerOptions(idempotent=idempotent, contiguous_offsets=True))
    ok = expectation_met(scenario, verdict)
    info = {"title": f"{backend.name} {scenario.name} seed {options.seed}", "backend": backend.name,
            "scenario": scenario.name, "seed": options.seed, "duration_s": options.duration, "topic": topic,
            "menu": options.menu if scenario.name == "random" else None,
            "topic_config": config, "expect": scenario.expect, "as_expected": ok,
            "faults_injected": len(nemesis.injected), "fault_errors": nemesis.errors,
            "workload": attrs.asdict(wl.stats)}
    write_report(report_dir, verdict, history_path, nemesis.injected, info, t0)
    say(verdict.render_text())
    stall = json.loads((report_dir / "verdict.json").read_text())["longest_ack_stall_s"]
    say(f"longest stall without acknowledgements on a partition: {stall:.1f} s")
    say(f"VERDICT {verdict.headline()}")
    say(f"expected {'loss' if scenario.expect == 'lost' else 'valid'}: "
        f"{'as expected' if ok else 'NOT as expected'}; report in {report_dir}")
    return RunResult(verdict, scenario.expect, ok, report_dir, len(nemesis.injected), tuple(nemesis.errors),
                     attrs.asdict(wl.stats), drained, stall)
