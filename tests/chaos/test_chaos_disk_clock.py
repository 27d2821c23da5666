"""The full-disk and clock-jump faults (kafkalike/chaos/faults.py FullDisk, ClockJump) on a
real 3-broker local cluster whose log dirs are 64 MiB tmpfs mounts and whose brokers run
with the clock library preloaded (kafkalike/chaos/clock_offset.c).

Each scenario runs under the chaos workload (idempotent acks=all producers, a group, the
drain) and must be judged VALID with no acknowledged record lost; the clock test also reads
a broker's wall clock through a LogAppendTime topic, whose records carry the leader's time.
Needs root (mount, iptables) and gcc; skipped otherwise."""

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
                               clock_faults=True) as b:
        base = b.cluster.base_dir
        assert len(mounts_under(base)) == 3
        yield b
    assert mounts_under(base) == [], "close() left a tmpfs mounted"


def _run(backend: LocalBackend, tmp_path: Path, scenario: str) -> tuple[object, list[str]]:
    lines: list[str] = []

    def say(s: str) -> None:
        lines.append(s)
        print(s)

    result = run_chaos(backend, RunOptions(tmp_path / "report", scenario=scenario, duration=1.0, seed=3,
                                           warmup=2.0, rate=30.0, partitions=1, consumers=1), say=say)
    v = result.verdict
    assert v.status == "valid", v.render_text()
    assert v.counts["lost"] == 0 and v.counts["order"] == 0
    assert result.faults_injected >= 1 and result.fault_errors == ()
    assert v.summary["acknowledged"] > 50
    assert v.summary["groups"] == 1 and v.summary["commits"] > 0  # the group's checks ran on real commits
    assert all(backend.broker_alive(b) for b in backend.broker_ids)
    return result, lines


def test_a_full_disk_under_the_leader_loses_no_acknowledged_record(backend: LocalBackend, tmp_path: Path) -> None:
    """The leader's 64 MiB log dir filled to the last byte while producing, then freed: the
    broker's appends fail (rolled back, or the dir goes offline and the broker halts and is
    started again by the heal), and the checker still finds every acknowledged record."""
    result, lines = _run(backend, tmp_path, "disk-full")
    started = [line for line in lines if " fault  disk-full" in line]
    assert started, lines
    assert " 0 of " in started[0], f"the disk was not filled to 0 bytes free: {started[0]}"
    for b in backend.broker_ids:
        assert not (backend.log_dir(b) / FILLER_NAME).exists()


def test_clock_jumps_on_a_broker_lose_nothing_and_move_its_log_append_time(backend: LocalBackend,
                                                                           tmp_path: Path) -> None:
    """The leader's wall clock +1 h then back and the controller's -1 h then back under load:
    VALID. Then, directly: with its offset at +1 h, the leader of a LogAppendTime topic
    stamps a record about an hour ahead; back at 0, within a minute of the real time."""
    _run(backend, tmp_path, "clock-jump")
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
