"""Menu v2's full disk and clock jumps on the compose backend (kafkalike/chaos/compose.py
``disk_mb``, ``clock_faults``): each broker container's log dir is a bind mount of a small
tmpfs the backend mounts on the host, and every broker container preloads the clock library
(built on the host, bind-mounted) with its offset file in a bind-mounted host directory. The
``tour-v2`` scenario fills partition 0's leader's log dir to the last byte and frees it, steps
the leader's wall clock +1 h and the controller's -1 h (each stepped back), under the chaos
workload: the checker must say VALID with nothing lost; a process in a broker container must
see the offset; close() must leave no container, network, volume or mount behind.

Needs Docker with the kafkalike image (as tests/chaos/test_chaos_compose.py: skipped with
KAFKALIKE_COMPOSE_SKIP's reason), root for the mounts, gcc, and KAFKALIKE_SLOW (the compose
project takes minutes to come up on a loaded 2-core machine)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from kafkalike.chaos.compose import ComposeBackend, docker_client
from kafkalike.chaos.local import FILLER_NAME, ChaosBackendError, mounts_under
from kafkalike.chaos.runner import RunOptions, run_chaos


def _skip_reason() -> str | None:
    if not os.environ.get("KAFKALIKE_SLOW"):
        return "KAFKALIKE_SLOW=1 runs the compose full-disk smoke (minutes)"
    if os.geteuid() != 0 or shutil.which("gcc") is None:
        return "the tmpfs log dirs need root, the clock library gcc"
    if os.environ.get("KAFKALIKE_COMPOSE_SKIP"):
        return os.environ["KAFKALIKE_COMPOSE_SKIP"]
    try:
        client = docker_client()
    except ChaosBackendError as exc:
        return f"no Docker engine (./scripts/test starts one): {exc}"
    try:
        client.images.get("kafkalike:latest")
    except Exception:
        return "no kafkalike:latest image (./scripts/build-image builds it)"
    return None


def test_full_disk_and_clock_jumps_on_compose_lose_nothing_and_leave_nothing_behind(tmp_path: Path) -> None:
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    lines: list[str] = []

    def say(s: str) -> None:
        lines.append(s)
        print(s)

    # a 10 s session: at load 50-100 brokers lost 4 s sessions while starting (set-up, not the faults)
    backend = ComposeBackend.create(tmp_path / "compose", disk_mb=64, clock_faults=True, overrides={
        "zookeeper.session.timeout.ms": "10000", "replica.lag.time.max.ms": "3000",
        "replica.fetch.wait.max.ms": "100", "min.insync.replicas": "2"})
    try:
        backend.start(timeout=600)
        assert len(mounts_under(tmp_path / "compose")) == 3
        assert abs(backend.container_time(2) - time.time()) < 60
        result = run_chaos(backend, RunOptions(tmp_path / "report", scenario="tour-v2", duration=8.0, seed=3,
                                               warmup=2.0, rate=30.0), say=say)
        assert all(backend.broker_alive(b) for b in backend.broker_ids)
        assert not any((backend.log_dir(b) / FILLER_NAME).exists() for b in backend.broker_ids)
        backend.set_clock_offset(2, 7200.0)
        time.sleep(0.5)  # the library re-reads its offset file every 100 ms
        ahead = backend.container_time(2) - time.time()
        backend.set_clock_offset(2, 0.0)
    except BaseException:
        backend.save_logs(tmp_path / "logs")
        raise
    finally:
        backend.close()
    assert backend.leftovers() == []
    assert mounts_under(tmp_path / "compose") == [], "close() left a tmpfs mounted"
    assert 7100 < ahead < 7300, ahead
    v = result.verdict
    assert v.status == "valid", v.render_text()
    assert v.counts["lost"] == 0 and v.counts["order"] == 0
    assert [f.name for f in v.faults] == ["disk-full", "clock-jump", "clock-jump"], result.fault_errors
    filled = [ln for ln in lines if "fault  disk-full" in ln]
    assert " 0 of " in filled[0], filled  # the filler took every free byte
    assert v.summary["acknowledged"] > 100


def test_compose_override_mounts_tmpfs_log_dirs_and_the_clock_library_only_when_asked(tmp_path: Path) -> None:
    """The override file compose reads beside compose/docker-compose.yml (no engine needed)."""
    import json

    with_disk = ComposeBackend.create(tmp_path / "a", disk_mb=64, clock_faults=True)
    with_disk.workdir.mkdir(parents=True)
    with_disk._write_override()
    doc = json.loads((with_disk.workdir / "compose.override.yml").read_text())
    assert with_disk.disk_faults
    a = (tmp_path / "a").absolute()
    assert {svc: body["volumes"] for svc, body in doc["services"].items()} == {
        f"broker{i}": [f"{a / f'disk-b{i}'}:/var/lib/kafkalike/data", f"{a / 'clock-lib'}:/opt/kafkalike-chaos-clock:ro",
                       f"{a / f'clock-b{i}'}:/var/lib/kafkalike-chaos-clock"] for i in (1, 2, 3)}
    env = doc["services"]["broker2"]["environment"]
    assert env["LD_PRELOAD"] == "/opt/kafkalike-chaos-clock/libkafkalike_clock.so"
    assert env["KAFKALIKE_CLOCK_OFFSET_FILE"] == "/var/lib/kafkalike-chaos-clock/clock-offset"
    plain = ComposeBackend.create(tmp_path / "b")
    plain.workdir.mkdir(parents=True)
    plain._write_override()
    doc = json.loads((plain.workdir / "compose.override.yml").read_text())
    assert not plain.disk_faults
    assert all("volumes" not in body for body in doc["services"].values())
    assert all("LD_PRELOAD" not in body["environment"] for body in doc["services"].values())
    with pytest.raises(ChaosBackendError, match="disk_mb"):
        plain.fill_disk(1)
    with pytest.raises(ChaosBackendError, match="clock_faults"):
        plain.set_clock_offset(1, 60.0)
