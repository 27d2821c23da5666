"""``kafkalike cluster up --security sasl_ssl`` (issue 19): one command gives a cluster whose
clients AND brokers talk SASL_SSL (SCRAM-SHA-512 as the brokers' own user admin), whose
AclAuthorizer denies by default with ``super.users=User:admin``, and whose ZooKeeper ensemble
accepts SASL DIGEST-MD5 logins, the brokers logging in with ``zookeeper.set.acl=true`` so their
znodes carry Kafka's secure ACLs (checked with ``kafkalike zk getacl``). The admin's client
properties it prints work; a user with only Read on one topic and his group reads it and nothing
else; the PLAINTEXT listener kept for kafkalike's own tools serves User:ANONYMOUS nothing."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafkalike.cluster.client_properties import ClientProperties
from kafkalike.cluster.local_cluster import ClusterError, LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port


def _main(*argv: str) -> tuple[int, str, str]:
    """A kafkalike CLI command run in this process (its main): (exit code, stdout, stderr)."""
    from kafkalike.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="starts a ZooKeeper JVM and a broker with TLS (~20-55 s): KAFKALIKE_SLOW=1")
def test_cluster_up_sasl_ssl_secures_clients_brokers_and_zookeeper(tmp_path: Path) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    port = find_free_base_port(["127.0.0.1"], per_host_ports=2, low=42000, high=44000)
    zk_port = find_free_base_port(["127.0.0.1"], per_host_ports=1, low=44000, high=46000)
    base = tmp_path / "secure"
    try:
        up = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "cluster", "up", "--dir", str(base),
                             "--brokers", "1", "--zk-nodes", "1", "--base-port", str(port), "--zk-base-port",
                             str(zk_port), "--security", "sasl_ssl"], capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        cluster = LocalCluster.load(base)
        assert (f"SASL_SSL bootstrap.servers={cluster.sasl_bootstrap_servers} "
                f"(admin client properties: {cluster.admin_client_properties_path})") in up.stdout
        assert "ACLs: deny by default; super.users=User:admin" in up.stdout
        assert f"ZooKeeper: SASL, zookeeper.set.acl=true (login: {cluster.zk_jaas_path}" in up.stdout
        server = dict(line.split("=", 1) for line in cluster.config_path(1).read_text().splitlines()
                      if "=" in line and not line.startswith("#"))
        assert {k: server[k] for k in ("inter.broker.listener.name", "sasl.mechanism.inter.broker.protocol",
                                        "zookeeper.set.acl", "allow.everyone.if.no.acl.found", "super.users")} == {
            "inter.broker.listener.name": "SASL_SSL", "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "zookeeper.set.acl": "true", "allow.everyone.if.no.acl.found": "false", "super.users": "User:admin"}
        for secret in (cluster.admin_client_properties_path, cluster.zk_jaas_path):
            assert os.stat(secret).st_mode & 0o077 == 0, secret

        # ZooKeeper: the brokers' znodes are theirs (sasl:kafka), readable by all but credentials
        zk = ["zk", "getacl", "--zookeeper", cluster.zk_connect]
        assert _main(*zk, "/brokers/ids/1")[:2] == (0, "'sasl,'kafka\n: cdrwa\n'world,'anyone\n: r\n")
        assert _main(*zk, "/controller")[1] == "'sasl,'kafka\n: cdrwa\n'world,'anyone\n: r\n"
        code, _, err = _main(*zk, "/config/users/admin")
        assert code == 1 and "Insufficient permission : /config/users/admin" in err
        assert _main(*zk, "/config/users/admin", "--jaas-config", str(cluster.zk_jaas_path))[1] == \
            "'sasl,'kafka\n: cdrwa\n"

        # the admin, with the printed properties, makes a topic and a user and grants bob Read
        admin_props = ClientProperties.load(cluster.admin_client_properties_path)
        assert admin_props.security_protocol == "SASL_SSL"
        admin_conf = {"bootstrap.servers": cluster.sasl_bootstrap_servers, **admin_props.librdkafka_config()}
        admin = AdminClient(admin_conf)  # (kept: a collected client ends its futures)
        admin.create_topics([NewTopic("flights", 1, 1)])["flights"].result(60)
        p = Producer(admin_conf)
        for i in range(5):
            p.produce("flights", f"flight-{i}".encode())
        assert p.flush(60) == 0
        wire = ["--bootstrap-server", cluster.sasl_bootstrap_servers, "--command-config",
                str(cluster.admin_client_properties_path)]
        code, out, err = _main("configs", *wire, "--alter", "--entity-type", "users", "--entity-name", "bob",
                               "--add-config", "SCRAM-SHA-512=[password=bob-secret]")
        assert (code, out) == (0, "Completed updating config for user bob.\n"), err
        code, _, err = _main("acls", *wire, "--add", "--allow-principal", "User:bob", "--operation", "Read",
                             "--topic", "flights", "--group", "bob-group")
        assert code == 0, err

        bob = {"bootstrap.servers": cluster.sasl_bootstrap_servers, "security.protocol": "SASL_SSL",
               "ssl.ca.location": str(cluster.ssl_dir / "ca.pem"), "sasl.mechanism": "SCRAM-SHA-512",
               "sasl.username": "bob", "sasl.password": "bob-secret"}
        c = Consumer({**bob, "group.id": "bob-group", "auto.offset.reset": "earliest"})
        try:
            c.subscribe(["flights"])
            read: list[bytes] = []
            deadline = time.monotonic() + 60
            while len(read) < 5 and time.monotonic() < deadline:
                read += [m.value() for m in c.consume(num_messages=10, timeout=1.0) if m.error() is None]
            assert sorted(read) == [f"flight-{i}".encode() for i in range(5)]
            assert set(c.list_topics(timeout=30).topics) == {"flights"}  # nothing else is visible to bob
        finally:
            c.close()
        errors: list[str] = []
        bp = Producer({**bob, "message.timeout.ms": 20000})
        bp.produce("flights", b"bob was here", on_delivery=lambda err, msg: errors.append(str(err)))
        bp.flush(60)
        assert errors and "TOPIC_AUTHORIZATION_FAILED" in errors[0]
        del bp

        # the PLAINTEXT listener (kafkalike's own tools) serves User:ANONYMOUS, denied by default
        anonymous = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        assert "flights" not in anonymous.list_topics(timeout=30).topics
    finally:
        with contextlib.suppress(ClusterError):
            LocalCluster.load(base).stop()


@pytest.mark.parametrize("security", ["sasl_plaintext", "sasl_ssl"])
def test_a_sasl_cluster_on_its_own_ensemble_secures_zookeeper_but_not_an_existing_one(tmp_path: Path,
                                                                                       security: str) -> None:
    own = LocalCluster(tmp_path / "own", brokers=1, zk_nodes=1, security=security)
    sasl = own.zk_sasl_credentials
    assert own.zk_secured and sasl is not None and sasl.username == "kafka"
    assert own.zk is not None and own.zk.sasl_users == {"kafka": sasl.password}
    assert own.server_properties(1)["zookeeper.set.acl"] == "true"
    assert ("authorizer.class.name" in own.server_properties(1)) == (security == "sasl_ssl")
    own._write_zk_jaas()
    again = LocalCluster(tmp_path / "own", brokers=1, zk_nodes=1, security=security)
    assert again.zk_sasl_credentials == sasl  # read back from kafka_server_jaas.conf, not made anew
    shared = LocalCluster(tmp_path / "shared", brokers=1, zookeeper_connect="127.0.0.1:2181", security=security)
    assert not shared.zk_secured and "zookeeper.set.acl" not in shared.server_properties(1)
