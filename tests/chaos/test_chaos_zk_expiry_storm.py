"""The ZooKeeper session expiry storm fault (kafkalike/chaos/faults.py, ZkExpiryStorm) on a
real 3-broker local cluster with 2 s sessions: while it is active the broker's registration
is lost and made again under new sessions, more than once; after the heal the broker is
running, registered and back in every ISR of the topic."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from kafkalike.chaos.faults import FaultContext, Nemesis, ZkExpiryStorm, wait_isr_full
from kafkalike.chaos.local import LocalBackend
from kafkalike.chaos.runner import _create_topic
from tests.chaos.chaos_helpers import started_local_backend


@pytest.fixture(scope="module")
def storm_backend(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalBackend]:
    with started_local_backend(tmp_path_factory, zk_connect, dir_name="storm-cluster", chroot_prefix="/storm-",
                               overrides={"zookeeper.session.timeout.ms": "2000", "replica.lag.time.max.ms": "3000",
                                          "min.insync.replicas": "2"}) as backend:
        yield backend


def test_expiry_storm_makes_a_broker_re_register_repeatedly_then_heals(storm_backend: LocalBackend,
                                                                       tmp_path: Path) -> None:
    """Broker 2 stormed (3 s pauses against 2 s sessions, 4 s awake): its /brokers/ids/2
    vanishes and comes back under at least two new sessions; after the heal it runs, is
    registered, and every partition has its full ISR again."""
    backend = storm_backend
    topic = f"storm-{uuid.uuid4().hex[:6]}"
    _create_topic(backend, topic, 3, {"min.insync.replicas": "2"})
    events: list[object] = []

    class Recorder:
        def write(self, ev: object) -> None:
            events.append(ev)

    nemesis = Nemesis(FaultContext(backend, topic, 0, random.Random(3)), Recorder(), say=print)
    storm = ZkExpiryStorm(target=2, over=1.5, awake=4.0)
    zk = KazooClient(hosts=backend.cluster.zk_connect)
    zk.start(timeout=30)
    try:
        owner = zk.exists("/brokers/ids/2").ephemeralOwner
        owners, absent = {owner}, 0
        inj = nemesis.inject(storm)
        assert inj is not None, nemesis.errors
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (storm.cycles >= 3 and len(owners) >= 3):
            st = zk.exists("/brokers/ids/2")
            if st is None:
                absent += 1
            else:
                owners.add(st.ephemeralOwner)
            time.sleep(0.2)
        nemesis.heal(inj)
        assert storm.cycles >= 2
        assert absent > 0, "the registration never vanished: the session did not expire"
        assert len(owners) >= 3, f"registered under {len(owners)} sessions; expected the first and 2+ new ones"
        assert backend.broker_alive(2)
        assert wait_isr_full(backend, topic, 90.0)
        assert zk.exists("/brokers/ids/2") is not None
    finally:
        nemesis.heal_all()
        zk.stop()
        zk.close()
    assert [type(e).__name__ for e in events] == ["FaultStarted", "FaultHealed"]
