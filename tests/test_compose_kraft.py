"""compose/docker-compose.kraft.yml (issue 21): kafkalike in KRaft mode in containers, 3 controllers
(process.roles=controller, ids 3001-3003) and 3 brokers (process.roles=broker, ids 1-3), every node
configured by KAFKA_CFG_* variables and its storage formatted at start by the image's command,
compose/image/kafkalike-start (CLUSTER_ID / KAFKA_KRAFT_CLUSTER_ID, as apache/kafka's and Bitnami's
images).

Default run (seconds): ``docker-compose config`` of the file, every node's environment read by
kafkalike's own env_config (an unknown key would stop the node) into one consistent quorum; and
kafkalike-start itself on this machine (no Docker): without a cluster id it refuses a KRaft node in
one line. KAFKALIKE_SLOW=1: with one (Bitnami's KAFKA_KRAFT_CLUSTER_ID) it formats a controller's
dir (meta.properties with that cluster id, bootstrap.checkpoint) and starts the controller, which a
SIGTERM stops; and (with a Docker engine and kafkalike:latest: ./scripts/build-image): ``up -d``
under a project name of its own; from the host ``kafkalike topics --create`` (RF 3) and
``--describe`` on a broker's container address, acks=all produce and a consumer group reading
everything back with confluent-kafka; with KAFKALIKE_KAFKA_LIB also Kafka's
``kafka-metadata-quorum.sh --bootstrap-server <broker> describe --status``; ``down -v`` leaves no
container, network or volume of the project."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import run_main
from tests.compose_helpers import compose_skip_reason, container_address, project_objects, service_containers

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "compose" / "docker-compose.kraft.yml"
START = REPO / "compose" / "image" / "kafkalike-start"
CONTROLLERS = {f"controller{j}": 3000 + j for j in (1, 2, 3)}
BROKERS = {f"broker{i}": i for i in (1, 2, 3)}


#: the SLOW test's quorum timeouts (ms): Kafka's 2000 / 1000 lost the leader over and over on this
#: shared 2-core machine at load 90-120, where a container waited minutes for CPU
SLOW_ENV = {"KAFKALIKE_QUORUM_FETCH_TIMEOUT_MS": "10000", "KAFKALIKE_QUORUM_ELECTION_TIMEOUT_MS": "5000"}


def _compose(project: str, *args: str, timeout: float = 600,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), "-p", project, *args],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def _config() -> dict[str, Any]:
    """``docker-compose config`` as a dict (its YAML read by docker-compose's own interpreter,
    which has PyYAML; kafkalike's venv does not)."""
    out = _compose("kafkalike-kraft-config", "config")
    assert out.returncode == 0, out.stderr
    shebang = Path(shutil.which("docker-compose") or "").read_text(errors="replace").splitlines()[0]
    as_json = subprocess.run([*shebang.removeprefix("#!").split(), "-c",
                              "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                             input=out.stdout, capture_output=True, text=True, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    return dict(json.loads(as_json.stdout))


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_kraft_compose_file_configures_three_controllers_and_three_brokers_of_one_cluster() -> None:
    from kafkalike.cluster.env_config import config_from_env
    from kafkalike.raft.kafka_raft_client import parse_voters

    services = _config()["services"]
    assert sorted(services) == sorted([*CONTROLLERS, *BROKERS])
    cluster_ids = set()
    for name, node_id in {**CONTROLLERS, **BROKERS}.items():
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        cluster_ids.add(env["CLUSTER_ID"])
        if name in BROKERS:
            env["KAFKA_CFG_ADVERTISED_LISTENERS"] = "PLAINTEXT://172.18.0.5:9092"  # set by the command
            assert "kafkalike-start" in services[name]["command"][-1]
        cfg = config_from_env(env)  # raises on a variable naming no Kafka key
        assert cfg.node_id == node_id and services[name]["hostname"] == name
        assert cfg.process_roles == {"controller" if name in CONTROLLERS else "broker"}
        voters = parse_voters(cfg["controller.quorum.voters"])
        assert voters == {n: (host, 9093) for host, n in CONTROLLERS.items()}
        if name in BROKERS:
            assert cfg["metadata.log.dir"] not in cfg.log_dirs
            assert cfg["min.insync.replicas"] == 2 and cfg["default.replication.factor"] == 3
            assert sorted(services[name]["depends_on"]) == sorted(CONTROLLERS)
    assert len(cluster_ids) == 1
    [cluster_id] = cluster_ids
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16  # a Uuid, as kafka-storage.sh random-uuid's


def _start_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """kafkalike-start's environment for a one-voter controller in ``tmp_path`` (the venv's
    ``kafkalike`` and ``python3`` first on PATH, as /opt/kafkalike/bin is in the image)."""
    from tests.raft.raft_helpers import free_ports

    [port] = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}", KAFKA_CFG_PROCESS_ROLES="controller",
               KAFKA_CFG_NODE_ID="3001", KAFKA_CFG_CONTROLLER_QUORUM_VOTERS=f"3001@127.0.0.1:{port}",
               KAFKA_CFG_CONTROLLER_LISTENER_NAMES="CONTROLLER", KAFKA_CFG_LISTENERS=f"CONTROLLER://127.0.0.1:{port}",
               KAFKA_CFG_LOG_DIRS=str(tmp_path / "metadata"), **extra)
    env.pop("CLUSTER_ID", None)
    return env


def test_kafkalike_start_refuses_a_kraft_node_without_a_cluster_id(tmp_path: Path) -> None:
    done = subprocess.run(["sh", str(START)], env=_start_env(tmp_path), cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "kafkalike-start: process.roles=controller is a KRaft node: set CLUSTER_ID (or KAFKA_KRAFT_CLUSTER_ID) "
        "to the cluster's id, the same on every node (kafkalike storage random-uuid makes one)"]
    assert not (tmp_path / "metadata").exists()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="KAFKALIKE_SLOW=1: three Python start-ups (62 s at load 60-75, a few s idle)")
def test_kafkalike_start_formats_a_kraft_controller_and_starts_it(tmp_path: Path) -> None:
    """With Bitnami's KAFKA_KRAFT_CLUSTER_ID (the variable env_config must not take for a property):
    the dir is formatted with that id and the controller serves; SIGTERM stops it."""
    from kafkalike.storage.meta_properties import read_meta_properties_v1

    cluster_id = "a2Fma2FsaWtlLXRlc3QxMg"
    workdir = tmp_path / "work"
    workdir.mkdir()
    out_path = tmp_path / "start.out"
    with open(out_path, "wb") as out:
        # the script writes /var/lib/kafkalike/server.properties: a copy pointing at tmp_path here
        script = START.read_text().replace("/var/lib/kafkalike", str(workdir))
        proc = subprocess.Popen(["sh", "-c", script, "kafkalike-start"],
                                env=_start_env(tmp_path, KAFKA_KRAFT_CLUSTER_ID=cluster_id), cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "controller_started" not in out_path.read_text(errors="replace"):
            assert proc.poll() is None, out_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, out_path.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = out_path.read_text(errors="replace")
    assert f"Formatting metadata directory {tmp_path / 'metadata'} with metadata.version 3.9-IV0." in text
    meta = read_meta_properties_v1(tmp_path / "metadata")
    assert meta is not None and meta.cluster_id == cluster_id and meta.node_id == 3001
    assert (tmp_path / "metadata" / "bootstrap.checkpoint").exists()
    assert "process.roles=controller" in (workdir / "server.properties").read_text()
    assert proc.returncode == 0, text[-3000:]


def _broker_addresses(project: str, timeout: float) -> dict[int, str]:
    """broker id -> container address, once all three broker containers are healthy."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        out: dict[int, str] = {}
        for name, i in BROKERS.items():
            found = service_containers(project, name)
            if not found:
                continue
            c = found[0]
            health = c.attrs["State"].get("Health", {}).get("Status")
            last = f"{name}: {c.status}/{health}"
            if c.status == "exited":
                raise AssertionError(f"{name} exited: {c.logs(tail=30).decode(errors='replace')}")
            address = container_address(c)
            if health == "healthy" and address is not None:
                out[i] = address
        if len(out) == 3:
            return out
        time.sleep(3)
    raise AssertionError(f"brokers not healthy within {timeout:.0f} s; last: {last}")


def _produce_and_consume(bootstrap: str, topic: str, n: int) -> list[str]:
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": 120000})
    for i in range(n):
        producer.produce(topic, key=str(i), value=f"flight-{i}")
    assert producer.flush(150) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kraft-compose", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[str] = []
    deadline = time.monotonic() + 150
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = consumer.poll(1)
            if m is not None and not m.error():
                got.append(m.value().decode())
    finally:
        consumer.close()
    return got


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="KAFKALIKE_SLOW=1 runs the KRaft compose project (minutes)")
def test_kraft_compose_serves_topics_produce_and_consume_from_the_host_and_down_leaves_nothing() -> None:
    reason = compose_skip_reason(cli=True)
    if reason is not None:
        pytest.skip(reason)
    project = f"kl-kraft-{uuid.uuid4().hex[:8]}"
    try:
        up = _compose(project, "up", "-d", env=SLOW_ENV)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        brokers = _broker_addresses(project, timeout=900)  # a loaded 2-core machine starves containers
        bootstrap = f"{brokers[1]}:9092"
        code, out, err = run_main("topics", "--bootstrap-server", bootstrap, "--create", "--topic", "flights",
                                  "--partitions", "3", "--replication-factor", "3")
        assert code == 0, out + err
        code, out, err = run_main("topics", "--bootstrap-server", bootstrap, "--describe", "--topic", "flights")
        assert code == 0 and out.count("Leader:") == 3 and "ReplicationFactor: 3" in out, out + err
        everyone = ",".join(f"{ip}:9092" for ip in brokers.values())
        got = _produce_and_consume(everyone, "flights", 50)
        assert sorted(got) == sorted(f"flight-{i}" for i in range(50))
        lib = os.environ.get("KAFKALIKE_KAFKA_LIB")
        if lib:
            status = subprocess.run(["java", "-cp", f"{lib}/*", "org.apache.kafka.tools.MetadataQuorumCommand",
                                     "--bootstrap-server", f"{brokers[2]}:9092", "describe", "--status"],
                                    capture_output=True, text=True, timeout=300)
            assert status.returncode == 0, status.stdout + status.stderr
            fields = dict(line.split(":", 1) for line in status.stdout.splitlines() if ":" in line)
            assert fields["ClusterId"].strip() == "a2Fma2FsaWtlLWtyYWZ0MQ"
            assert int(fields["LeaderId"]) in CONTROLLERS.values()
    except BaseException:
        logs = _compose(project, "logs", "--no-color", "--tail", "40", timeout=120, env=SLOW_ENV)
        print(logs.stdout[-12000:])
        raise
    finally:
        down = _compose(project, "down", "-v", "--remove-orphans", timeout=300, env=SLOW_ENV)
        print(down.stdout[-2000:], down.stderr[-2000:])
    assert project_objects(project) == []
