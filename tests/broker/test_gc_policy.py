"""The broker's garbage-collection policy (kafkalike/broker/gc_policy.py): collect, then
gc.freeze() after start-up and every kafkalike.gc.freeze.interval.ms, with an unfreeze pass
bounding the cyclic garbage that freezing keeps. Structural checks (no timing): what the
collector holds after each pass, in-process and through a real broker's /metrics."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator

import pytest
import trio

from kafkalike.broker.gc_policy import GcPolicy
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port
from tests.broker.test_metrics import scrape, value, wait_for


class Node:
    """A container that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[weakref.ref[Node], Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a), a


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Leave this test process's objects unfrozen whatever the test did."""
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_freeze_pass_collects_cyclic_garbage_before_freezing_and_unfreeze_pass_frees_frozen_garbage(
        unfrozen: None) -> None:
    policy = GcPolicy(freeze_interval_ms=10_000, unfreeze_interval_ms=3_600_000)
    dead_before, a = cycle()
    del a  # garbage, but only the cyclic collector can free it
    assert dead_before() is not None
    done = policy.collect_and_freeze()
    assert dead_before() is None  # collected by the pass, not frozen
    assert done.kind == "freeze" and done.collected >= 2 and done.frozen == gc.get_freeze_count() > 0
    assert policy.frozen_total == done.frozen

    kept_ref, kept = cycle()
    policy.collect_and_freeze()  # alive: frozen
    del kept  # now garbage inside the frozen generation: the leak freezing makes
    policy.collect_and_freeze()
    gc.collect()
    assert kept_ref() is not None
    done = policy.collect_and_freeze("unfreeze")  # the bound: unfreeze, full collection, freeze
    assert kept_ref() is None
    assert done.kind == "unfreeze" and policy.passes == {"startup": 0, "freeze": 3, "unfreeze": 1}


async def test_run_freezes_every_interval_and_unfreezes_on_its_own_interval(
        unfrozen: None, autojump_clock: trio.testing.MockClock) -> None:
    policy = GcPolicy(freeze_interval_ms=1_000, unfreeze_interval_ms=5_000)
    async with trio.open_nursery() as nursery:
        await nursery.start(policy.run)
        await trio.sleep(10.5)
        nursery.cancel_scope.cancel()
    # passes at 1..10 s: the ones at 5 s and 10 s unfreeze first
    assert policy.passes == {"startup": 0, "freeze": 8, "unfreeze": 2}
    assert gc.get_freeze_count() > 0


async def test_interval_zero_disables_the_policy(unfrozen: None) -> None:
    policy = GcPolicy(freeze_interval_ms=0, unfreeze_interval_ms=3_600_000)
    assert policy.after_startup() is None
    async with trio.open_nursery() as nursery:
        await nursery.start(policy.run)  # returns at once: nothing left to cancel
    assert policy.passes == {"startup": 0, "freeze": 0, "unfreeze": 0} and gc.get_freeze_count() == 0


def gc_cluster(make_cluster: Callable[..., LocalCluster], interval_ms: int) -> LocalCluster:
    port = find_free_base_port(["127.0.0.1"], low=34000, high=35000)
    return make_cluster(1, overrides={"kafkalike.metrics.port": str(port),
                                      "kafkalike.gc.freeze.interval.ms": str(interval_ms)})


def frozen(cluster: LocalCluster) -> float:
    return value(scrape(cluster.metrics_url(cluster.broker_ids[0])), "kafkalike_gc_frozen_objects_total")


def test_broker_freezes_after_startup_and_again_after_leader_and_isr_creates_logs(
        make_cluster: Callable[..., LocalCluster]) -> None:
    """A broker process (kafkalike.gc.freeze.interval.ms=500) has frozen objects once started; after
    a LeaderAndIsr created 100 logs a later pass freezes their objects too
    (kafkalike_gc_frozen_objects_total grows by at least 20 objects per log); with the key at 0
    nothing is ever frozen."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    cluster = gc_cluster(make_cluster, 500)
    at_start = frozen(cluster)
    assert at_start > 0
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(f"gc-{i}", 1, 1) for i in range(100)], timeout_ms=60000)
    finally:
        admin.close()
    url = cluster.metrics_url(cluster.broker_ids[0])
    wait_for(lambda: value(scrape(url), "kafka_server_replicamanager_partitioncount") >= 100, 60,
             "100 logs created by LeaderAndIsr")
    wait_for(lambda: frozen(cluster) >= at_start + 100 * 20, 30, "the new logs' objects frozen")

    off = gc_cluster(make_cluster, 0)
    assert frozen(off) == 0
