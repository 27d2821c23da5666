"""compose/docker-compose.secure.yml (issue 19): 3 ZooKeeper nodes with SASL DIGEST-MD5 and
``zookeeper.set.acl=true``, 3 brokers speaking SASL_SSL to clients and to each other, the
AclAuthorizer denying by default (super.users=User:admin), certificates made by the one-shot
``secrets`` service and by each broker at start with kafkalike/cluster/certs.py.

Default run: ``docker-compose config`` of the file (no containers) and the brokers' KAFKA_CFG_*
environment read by kafkalike's own env_config (an unknown key would stop the brokers).
KAFKALIKE_SLOW=1 (and a Docker engine with kafkalike:latest, as tests/cluster/
test_compose_prometheus.py): ``up`` under a project name of its own; from the host, the admin
creates a topic over SASL_SSL (the CA from the secrets directory, host names checked), produces
and consumes; ``kafkalike zk getacl`` shows the brokers' znodes owned by sasl:kafka; the
PLAINTEXT listener's User:ANONYMOUS sees no topic; ``down -v`` leaves no container, network or
volume of the project."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.secured_helpers import BROKER_ZNODE_ACL, add_scram_reader, admin_round_trip, consume_values, run_main
from tests.compose_helpers import compose_skip_reason, container_address, project_objects, service_containers

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "compose" / "docker-compose.secure.yml"


def _compose(project: str, env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), "-p", project, *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)


def _config(env: dict[str, str]) -> dict[str, Any]:
    """``docker-compose config`` (the file resolved as compose reads it) as a dict: its YAML read
    by docker-compose's own interpreter (which has PyYAML; kafkalike's venv does not)."""
    import json

    out = _compose("kafkalike-secure-config", env, "config")
    assert out.returncode == 0, out.stderr
    shebang = Path(shutil.which("docker-compose") or "").read_text(errors="replace").splitlines()[0]
    as_json = subprocess.run([*shebang.removeprefix("#!").split(), "-c",
                              "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                             input=out.stdout, capture_output=True, text=True, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    return dict(json.loads(as_json.stdout))


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_secure_compose_file_configures_sasl_ssl_acls_and_a_secured_zookeeper(tmp_path: Path) -> None:
    from kafkalike.cluster.env_config import config_from_env

    cfg = _config({"KAFKALIKE_SECURE_DIR": str(tmp_path), "KAFKALIKE_ADMIN_PASSWORD": "pw-a"})
    services = cfg["services"]
    assert sorted(services) == ["broker1", "broker2", "broker3", "secrets", "zk1", "zk2", "zk3"]
    for i in (1, 2, 3):
        env = {k: str(v) for k, v in services[f"broker{i}"]["environment"].items()}
        env["KAFKA_CFG_SSL_KEYSTORE_LOCATION"] = "/var/lib/kafkalike/tls/broker.pem"  # set by the command
        broker = config_from_env(env)  # raises on a variable naming no Kafka key
        assert broker["broker.id"] == i
        assert broker["inter.broker.listener.name"] == "SASL_SSL"
        assert broker["zookeeper.set.acl"] is True
        assert broker["allow.everyone.if.no.acl.found"] is False
        assert broker.originals["super.users"] == "User:admin"
        assert 'password="pw-a"' in broker.originals["listener.name.sasl_ssl.plain.sasl.jaas.config"]
        assert [str(v) for v in services[f"broker{i}"]["volumes"]] == [f"{tmp_path}:/etc/kafkalike/secure:rw"]
    for z in ("zk1", "zk2", "zk3"):
        assert "SASLAuthenticationProvider" in services[z]["environment"]["JAVA_TOOL_OPTIONS"]
        assert services[z]["depends_on"]["secrets"]["condition"] == "service_completed_successfully"


def _broker_addresses(project: str, timeout: float) -> dict[int, str]:
    """broker id -> container address, once all three containers are healthy."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        out: dict[int, str] = {}
        for i in (1, 2, 3):
            found = service_containers(project, f"broker{i}")
            if not found:
                continue
            c = found[0]
            health = c.attrs["State"].get("Health", {}).get("Status")
            last = f"broker{i}: {c.status}/{health}"
            if c.status == "exited":
                raise AssertionError(f"broker{i} exited: {c.logs(tail=30).decode(errors='replace')}")
            address = container_address(c)
            if health == "healthy" and address is not None:
                out[i] = address
        if len(out) == 3:
            return out
        time.sleep(3)
    raise AssertionError(f"brokers not healthy within {timeout:.0f} s; last: {last}")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="KAFKALIKE_SLOW=1 runs the secured compose project (minutes)")
def test_secure_compose_serves_an_admin_over_sasl_ssl_and_down_leaves_nothing(tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient

    from kafkalike.cluster.client_properties import ClientProperties

    reason = compose_skip_reason(cli=True)
    if reason is not None:
        pytest.skip(reason)
    project = f"kl-secure-{uuid.uuid4().hex[:8]}"
    secure = tmp_path / "secure"
    secure.mkdir()
    env = {"KAFKALIKE_SECURE_DIR": str(secure), "KAFKALIKE_ADMIN_PASSWORD": secrets.token_urlsafe(16),
           "KAFKALIKE_ZK_PASSWORD": secrets.token_urlsafe(16)}
    try:
        up = _compose(project, env, "up", "-d")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        brokers = _broker_addresses(project, timeout=600)
        props = ClientProperties.load(secure / "admin-client.properties")
        assert props.security_protocol == "SASL_SSL"
        bootstrap = ",".join(f"{ip}:9093" for ip in brokers.values())
        conf = {"bootstrap.servers": bootstrap, **props.librdkafka_config()}
        assert conf["sasl.password"] == env["KAFKALIKE_ADMIN_PASSWORD"]
        assert conf["ssl.ca.location"] == "/etc/kafkalike/secure/ca.pem"  # the containers' path
        conf["ssl.ca.location"] = str(secure / "ca.pem")  # the same file, on the host
        flights = [f"flight-{i}".encode() for i in range(30)]
        admin_round_trip(conf, "flights", 3, 3, flights, 120)  # librdkafka's default acks: all
        # the README's host commands: the admin's properties with the host's path to the CA make
        # a SCRAM user bob and grant him Read; bob reads flights and sees nothing else
        host_props = tmp_path / "admin.properties"
        host_props.write_text((secure / "admin-client.properties").read_text()
                              .replace("/etc/kafkalike/secure", str(secure)))
        wire = ["--bootstrap-server", bootstrap, "--command-config", str(host_props)]
        add_scram_reader(wire, "bob", "bob-secret", "flights", "bob-group")
        code, out, err = run_main("acls", *wire, "--list")
        assert code == 0 and "principal=User:bob" in out, out + err
        bob = {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", "ssl.ca.location": str(secure / "ca.pem"),
               "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bob", "sasl.password": "bob-secret"}
        assert sorted(consume_values(bob, "flights", "bob-group", 30, 120)) == sorted(flights)
        assert set(AdminClient(bob).list_topics(timeout=30).topics) == {"flights"}

        # User:ANONYMOUS on the PLAINTEXT listener: denied by default, sees no topic
        anonymous = AdminClient({"bootstrap.servers": f"{brokers[1]}:9092"})
        assert "flights" not in anonymous.list_topics(timeout=30).topics

        # ZooKeeper: the brokers' znodes are sasl:kafka's, readable by all
        zk_ip = container_address(service_containers(project, "zk1")[0])
        code, out, err = run_main("zk", "getacl", "--zookeeper", f"{zk_ip}:2181", "/brokers/ids/1")
        assert (code, out) == (0, BROKER_ZNODE_ACL), err
    except BaseException:
        logs = _compose(project, env, "logs", "--no-color", "--tail", "40", timeout=120)
        print(logs.stdout[-12000:])
        raise
    finally:
        down = _compose(project, env, "down", "-v", "--remove-orphans", timeout=300)
        print(down.stdout[-2000:], down.stderr[-2000:])
    assert project_objects(project) == []
