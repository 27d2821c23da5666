"""compose/docker-compose.single.yml (the user's documented single-broker file, Confluent's
image convention, kafkalike's images) and compose/docker-compose.confluent.yml (3 ZooKeeper
nodes + 3 brokers, two listeners): `up -d`, every service healthy, `kafkalike topics
--bootstrap-server localhost:PORT --create` from the host, a record produced and consumed
through the published port, then `down -v` leaves no container, network or volume.

Real containers: gated like tests/chaos/test_chaos_compose.py, the 3+3 file also behind
KAFKALIKE_SLOW (it takes minutes on a loaded machine) (./scripts/test installs Docker,
starts dockerd and runs ./scripts/build-image; KAFKALIKE_COMPOSE_SKIP says why not). The
files publish fixed host ports (9092..9094); the test runs a copy with those numbers replaced
by free ports, nothing else changed."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kafkalike.chaos.compose import compose_command, docker_client
from tests.compose_helpers import compose_skip_reason, project_objects

COMPOSE_DIR = Path(__file__).resolve().parents[2] / "compose"
IMAGES = ("kafkalike:latest", "kafkalike-zookeeper:latest")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("0.0.0.0", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait_healthy(project: str, services: int, timeout: float) -> None:
    client = docker_client()
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        cs = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
        states = {c.name: c.attrs["State"].get("Health", {}).get("Status", c.status) for c in cs}
        if len(states) == services and all(s == "healthy" for s in states.values()):
            return
        time.sleep(2)
    raise AssertionError(f"not every service became healthy within {timeout:.0f} s: {states}")


def _up_create_produce_down(tmp_path: Path, file_name: str, host_ports: list[int], services: int,
                            replication_factor: int) -> None:
    text = (COMPOSE_DIR / file_name).read_text()
    ports = _free_ports(len(host_ports))
    for old, new in zip(host_ports, ports):
        text = re.sub(rf"(?<![0-9]){old}(?![0-9])", str(new), text)
    compose_file = tmp_path / file_name
    compose_file.write_text(text)
    project = f"kltest{uuid.uuid4().hex[:8]}"
    compose = compose_command() + ["-p", project, "-f", str(compose_file)]
    try:
        up = subprocess.run(compose + ["up", "-d"], capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        _wait_healthy(project, services, 300)
        bootstrap = f"localhost:{ports[0]}"
        topic = f"t-{uuid.uuid4().hex[:6]}"
        created = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "topics", "--bootstrap-server", bootstrap,
                                  "--create", "--topic", topic, "--partitions", "3",
                                  "--replication-factor", str(replication_factor)],
                                 capture_output=True, text=True, timeout=120)
        assert created.returncode == 0, created.stdout + created.stderr
        assert f"Created topic {topic}." in created.stdout

        from confluent_kafka import Consumer, Producer

        p = Producer({"bootstrap.servers": f"localhost:{ports[-1]}", "acks": "all", "enable.idempotence": True})
        p.produce(topic, b"hello", key=b"k")
        assert p.flush(60) == 0
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
        try:
            c.subscribe([topic])
            got = None
            deadline = time.monotonic() + 90
            while got is None and time.monotonic() < deadline:
                m = c.poll(1.0)
                if m is not None and not m.error():
                    got = m.value()
            assert got == b"hello"
        finally:
            c.close()
    except BaseException:
        logs = subprocess.run(compose + ["logs", "--no-color", "--tail", "30"], capture_output=True, text=True)
        print(logs.stdout[-6000:])
        raise
    finally:
        down = subprocess.run(compose + ["down", "-v", "-t", "10"], capture_output=True, text=True, timeout=300)
        left = project_objects(project)
        client = docker_client()
        for c in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}):
            c.remove(force=True, v=True)  # never leave anything, even when the assertion below fails
    assert down.returncode == 0, down.stderr
    assert left == []


def test_documented_single_broker_file_works_from_the_host(tmp_path: Path) -> None:
    """The seed's file: ZooKeeper and one broker healthy; a topic created with `kafkalike
    topics` and a record round-tripped through localhost; `down -v` leaves nothing."""
    reason = compose_skip_reason(IMAGES)
    if reason is not None:
        pytest.skip(reason)
    _up_create_produce_down(tmp_path, "docker-compose.single.yml", [9092], services=2, replication_factor=1)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1", reason="KAFKALIKE_SLOW=1 runs the 3+3 compose file (minutes)")
def test_confluent_style_three_by_three_file_works_from_the_host(tmp_path: Path) -> None:
    """Three ZooKeeper nodes in a quorum, three brokers on INTERNAL/EXTERNAL listeners: an RF 3
    topic created through broker 1's published port, a record produced through broker 3's and
    consumed through broker 1's; `down -v` leaves nothing."""
    reason = compose_skip_reason(IMAGES)
    if reason is not None:
        pytest.skip(reason)
    _up_create_produce_down(tmp_path, "docker-compose.confluent.yml", [9092, 9093, 9094], services=6,
                            replication_factor=3)
