"""The faults new in nemesis menu v2 that act on one broker — full disk, clock jumps both
ways, ZooKeeper link delay and connection drops (kafkalike/chaos/faults.py FullDisk,
ClockJump, ZkLinkDelay, ZkLinkDrop) — on a real 3-broker local cluster whose log dirs are
64 MiB tmpfs mounts, whose brokers run with the clock library preloaded
(kafkalike/chaos/clock_offset.c) and reach ZooKeeper through the user-space proxy
(kafkalike/chaos/proxy.py).

One run of the ``tour-v2`` scenario injects each once under the chaos workload (idempotent
acks=all producers, a group committing after processing, the drain) and must be judged
VALID with no acknowledged record lost; then each fault's effect is checked directly: the
disk was filled to 0 bytes free, a broker's wall clock read through a LogAppendTime topic
is an hour ahead, and the proxy delayed and dropped the broker's ZooKeeper connections.
Needs root (tmpfs mounts, the backend's gids) and gcc; skipped otherwise."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkalike.chaos.local import FILLER_NAME, LocalBackend, mounts_under
from kafkalike.chaos.runner import RunOptions, _create_topic, run_chaos
from tests.chaos.chaos_helpers import started_local_backend

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("gcc") is None or shutil.which("iptables") is None,
                                reason="disk and clock faults need root (tmpfs mounts) and gcc")

OVERRIDES = {"zookeeper.session.timeout.ms": "4000", "min.insync.replicas": "2",
             "replica.lag.time.max.ms": "3000", "replica.fetch.wait.max.ms": "100",
             "unclean.leader.election.enable": "false"}


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalBackend]:
    with started_local_backend(tmp_path_factory, zk_connect, dir_name="disk-clock-cluster",
                               chroot_prefix="/disk-clock-", overrides=OVERRIDES, disk_mb=64,
                               clock_faults=True, zk_proxy=True) as b:
        base = b.cluster.base_dir
        assert len(mounts_under(base)) == 3
        yield b
    assert mounts_under(base) == [], "close() left a tmpfs mounted"


def test_full_disk_clock_jumps_and_zk_link_faults_under_load_lose_nothing(backend: LocalBackend,
                                                                          tmp_path: Path) -> None:
    """The leader's log dir filled to the last byte then freed, the leader's clock +1 h and
    the controller's -1 h (each then stepped back), the controller's ZooKeeper links delayed
    and the leader's dropped every 2 s: VALID, nothing lost, the group's commits checked; the
    filler is gone and the proxy really dropped connections."""
    lines: list[str] = []

    def say(s: str) -> None:
        lines.append(s)
        print(s)

    result = run_chaos(backend, RunOptions(tmp_path / "report", scenario="tour-v2", duration=1.0, seed=3,
                                           warmup=2.0, rate=30.0, partitions=1, consumers=1), say=say)
    v = result.verdict
    assert v.status == "valid", v.render_text()
    assert v.counts["lost"] == 0 and v.counts["order"] == 0
    assert result.fault_errors == (), result.fault_errors
    assert [f.name for f in v.faults] == ["disk-full", "clock-jump", "clock-jump", "net-delay", "net-drop"]
    assert all(f.end is not None for f in v.faults)
    assert v.summary["acknowledged"] > 50
    assert v.summary["groups"] == 1 and v.summary["commits"] > 0  # the group's checks ran on real commits
    assert all(backend.broker_alive(b) for b in backend.broker_ids)
    disk = next(line for line in lines if " fault  disk-full" in line)
    assert " 0 of " in disk, f"the disk was not filled to 0 bytes free: {disk}"
    for b in backend.broker_ids:
        assert not (backend.log_dir(b) / FILLER_NAME).exists()
    proxy = backend._proxy
    assert proxy is not None
    assert sum(r.severed for r in proxy.routes.values()) > 0, "net-drop closed no ZooKeeper connection"
    assert all(r.delay_s == 0 and not r.refuse for r in proxy.routes.values())


def test_a_clock_offset_moves_the_brokers_log_append_time(backend: LocalBackend) -> None:
    """With its offset at +1 h the leader of a LogAppendTime topic stamps a record about an
    hour ahead; back at 0, within a minute of the real time."""
    from confluent_kafka import Producer

    topic = f"clock-{uuid.uuid4().hex[:6]}"
    _create_topic(backend, topic, 1, {"message.timestamp.type": "LogAppendTime"})
    leader = backend.partition_states(topic)[0].leader  # type: ignore[index]  # the topic was just created
    producer = Producer({"bootstrap.servers": backend.bootstrap_servers, "acks": "all"})
    stamps: list[int] = []

    def produce() -> float:
        def cb(err: object, msg: object) -> None:
            assert err is None, err
            stamps.append(msg.timestamp()[1])  # type: ignore[attr-defined]  # a confluent_kafka Message

        producer.produce(topic, b"v", on_delivery=cb)
        assert producer.flush(30) == 0
        return stamps[-1] / 1000.0 - time.time()

    try:
        backend.set_clock_offset(leader, 3600.0)
        time.sleep(0.5)  # the library re-reads the offset file every 100 ms
        ahead = produce()
        backend.set_clock_offset(leader, 0.0)
        time.sleep(0.5)
        back = produce()
    finally:
        backend.set_clock_offset(leader, 0.0)
    assert 3540 < ahead < 3660, ahead
    assert abs(back) < 60, back
