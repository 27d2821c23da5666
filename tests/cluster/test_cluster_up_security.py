"""``kafkalike cluster up --security sasl_ssl`` (issue 19): one command gives a cluster whose
clients AND brokers talk SASL_SSL (SCRAM-SHA-512 as the brokers' own user admin), whose
AclAuthorizer denies by default with ``super.users=User:admin``, and whose ZooKeeper ensemble
accepts SASL DIGEST-MD5 logins, the brokers logging in with ``zookeeper.set.acl=true`` so their
znodes carry Kafka's secure ACLs (checked with ``kafkalike zk getacl``). The admin's client
properties it prints work; a user with only Read on one topic and his group reads it and nothing
else; the PLAINTEXT listener kept for kafkalike's own tools serves User:ANONYMOUS nothing."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from kafkalike.cluster.client_properties import ClientProperties
from kafkalike.cluster.local_cluster import ClusterError, LocalCluster
from tests.cluster.secured_helpers import (BROKER_ZNODE_ACL, add_scram_reader, admin_round_trip, cluster_up_secured,
                                           consume_values, run_main)


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="starts a ZooKeeper JVM and a broker with TLS (~20-55 s): KAFKALIKE_SLOW=1")
def test_cluster_up_sasl_ssl_secures_clients_brokers_and_zookeeper(tmp_path: Path) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    base = tmp_path / "secure"
    try:
        stdout, cluster = cluster_up_secured(base, "sasl_ssl")
        assert (f"SASL_SSL bootstrap.servers={cluster.sasl_bootstrap_servers} "
                f"(admin client properties: {cluster.admin_client_properties_path})") in stdout
        assert "ACLs: deny by default; super.users=User:admin" in stdout
        assert f"ZooKeeper: SASL, zookeeper.set.acl=true (login: {cluster.zk_jaas_path}" in stdout
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
        assert run_main(*zk, "/brokers/ids/1")[:2] == (0, BROKER_ZNODE_ACL)
        assert run_main(*zk, "/controller")[1] == BROKER_ZNODE_ACL
        code, _, err = run_main(*zk, "/config/users/admin")
        assert code == 1 and "Insufficient permission : /config/users/admin" in err
        assert run_main(*zk, "/config/users/admin", "--jaas-config", str(cluster.zk_jaas_path))[1] == \
            "'sasl,'kafka\n: cdrwa\n"

        # the admin, with the printed properties, makes a topic and a user and grants bob Read
        admin_props = ClientProperties.load(cluster.admin_client_properties_path)
        assert admin_props.security_protocol == "SASL_SSL"
        admin_conf = {"bootstrap.servers": cluster.sasl_bootstrap_servers, **admin_props.librdkafka_config()}
        admin_round_trip(admin_conf, "flights", 1, 1, [f"flight-{i}".encode() for i in range(5)], 60)
        wire = ["--bootstrap-server", cluster.sasl_bootstrap_servers, "--command-config",
                str(cluster.admin_client_properties_path)]
        add_scram_reader(wire, "bob", "bob-secret", "flights", "bob-group")

        bob = {"bootstrap.servers": cluster.sasl_bootstrap_servers, "security.protocol": "SASL_SSL",
               "ssl.ca.location": str(cluster.ssl_dir / "ca.pem"), "sasl.mechanism": "SCRAM-SHA-512",
               "sasl.username": "bob", "sasl.password": "bob-secret"}
        assert sorted(consume_values(bob, "flights", "bob-group", 5, 60)) == [f"flight-{i}".encode() for i in range(5)]
        assert set(AdminClient(bob).list_topics(timeout=30).topics) == {"flights"}  # nothing else is visible to bob
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
