"""``kafkalike cluster up --security ssl`` (issue 19): mutual TLS for clients and between brokers
(``ssl.client.auth=required``, the principal the certificate's subject DN, Kafka's default
``ssl.principal.mapping.rules``), the AclAuthorizer denying by default with ``super.users`` naming
every broker's certificate and the admin's, ZooKeeper secured as ``sasl_ssl`` secures it (SASL
DIGEST-MD5 + ``zookeeper.set.acl=true``), and ``<dir>/admin-client.properties`` with the admin's
PEM keystore and truststore.

Default run: the generated files, checked without processes (the broker's own KafkaConfig and
SslFactory read them; a TLS handshake in memory proves the client certificate is required).
KAFKALIKE_SLOW=1: ``cluster up`` as a process, the admin creates/produces/consumes with
confluent-kafka over mutual TLS, a client without a certificate and a certificate the admin did
not authorize get nothing."""

from __future__ import annotations

import contextlib
import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.ssl_factory import client_context, server_context
from kafkalike.cluster import certs
from kafkalike.cluster.client_properties import ClientProperties
from kafkalike.cluster.local_cluster import ClusterError, LocalCluster
from tests.cluster.secured_helpers import BROKER_ZNODE_ACL, admin_round_trip, cluster_up_secured, run_main

BROKER_SUPERS = "User:CN=kafkalike-broker-1;User:CN=kafkalike-broker-2;User:CN=kafkalike-broker-3"


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str) -> str | None:
    """A TLS handshake over memory BIOs; returns the client certificate's subject the server
    saw (None: none), raises ssl.SSLError when either side refuses."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, obj in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    # TLS 1.3: the server checks the client certificate after the client's handshake ends
    c.write(b"x")
    s_in.write(c_out.read())
    assert s.read(1) == b"x"
    peer = s.getpeercert(binary_form=True)
    return None if peer is None else x509.load_der_x509_certificate(peer).subject.rfc4514_string()


def test_ssl_cluster_configs_are_mutual_tls_deny_by_default_and_a_secured_zookeeper(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "c", brokers=3, zk_nodes=3, security="ssl")
    cluster.write_configs()
    props = cluster.server_properties(2)
    assert props["listeners"] == "PLAINTEXT://127.0.0.2:9092,SSL://127.0.0.2:9093"
    assert {k: props[k] for k in ("inter.broker.listener.name", "ssl.client.auth", "allow.everyone.if.no.acl.found",
                                  "super.users", "zookeeper.set.acl")} == {
        "inter.broker.listener.name": "SSL", "ssl.client.auth": "required", "allow.everyone.if.no.acl.found": "false",
        "super.users": BROKER_SUPERS + ";User:CN=admin", "zookeeper.set.acl": "true"}
    assert cluster.zk is not None and cluster.zk.sasl_users == {"kafka": cluster.zk_sasl_credentials.password}  # type: ignore[union-attr]
    assert Path(props["kafkalike.zookeeper.jaas.config"]) == cluster.zk_jaas_path

    # the broker reads its server.properties and builds its listener's SslFactory from it
    cfg = KafkaConfig.from_file(cluster.config_path(2))
    server = server_context(cfg.listener_ssl_config("SSL"))
    inter_broker = client_context(cfg.listener_ssl_config("SSL"))  # the broker as a client of broker 3
    assert server.verify_mode == ssl.CERT_REQUIRED

    # admin-client.properties: the admin's PEM keystore + the CA, secret (0600)
    admin = ClientProperties.load(cluster.admin_client_properties_path)
    assert os.stat(cluster.admin_client_properties_path).st_mode & 0o077 == 0
    assert admin.security_protocol == "SSL"
    rd = admin.librdkafka_config()
    assert rd["ssl.ca.location"] == str(cluster.ssl_dir / "ca.pem")
    assert rd["ssl.certificate.location"] == rd["ssl.key.location"] == str(cluster.ssl_dir / "admin.pem")
    assert ClientProperties.load(cluster.admin_client_properties_path).bootstrap_servers_for(cluster) == \
        "127.0.0.1:9093,127.0.0.2:9093,127.0.0.3:9093"
    admin_ctx, sasl = admin.kafkalike_security()
    assert admin_ctx is not None and sasl is None

    # mutual TLS: the admin and a broker pass as their certificate's subject; no certificate: refused
    assert _handshake(server, admin_ctx, "127.0.0.2") == "CN=admin"
    assert _handshake(server, inter_broker, "127.0.0.2") == "CN=kafkalike-broker-2"
    assert f"User:{certs.broker_subject(2)}" in props["super.users"].split(";")
    only_trust = ClientProperties.load(cluster.client_ssl_properties_path).kafkalike_security()[0]
    assert only_trust is not None
    with pytest.raises(ssl.SSLError):
        _handshake(server, only_trust, "127.0.0.2")

    # made once: a second write keeps the CA and the keys (clients keep trusting the cluster)
    before = (cluster.ssl_dir / "ca.pem").read_bytes(), (cluster.ssl_dir / "admin.pem").read_bytes()
    LocalCluster(tmp_path / "c", brokers=3, zk_nodes=3, security="ssl").write_configs()
    assert ((cluster.ssl_dir / "ca.pem").read_bytes(), (cluster.ssl_dir / "admin.pem").read_bytes()) == before


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="starts a ZooKeeper JVM and a broker with mutual TLS (~20-60 s): KAFKALIKE_SLOW=1")
def test_cluster_up_ssl_serves_the_admin_certificate_and_refuses_strangers(tmp_path: Path) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    base = tmp_path / "mtls"
    try:
        stdout, cluster = cluster_up_secured(base, "ssl")
        assert (f"SSL bootstrap.servers={cluster.ssl_bootstrap_servers} "
                f"(admin client properties: {cluster.admin_client_properties_path}; mutual TLS)") in stdout
        assert "ACLs: deny by default; super.users=User:CN=kafkalike-broker-1;User:CN=admin" in stdout
        assert f"ZooKeeper: SASL, zookeeper.set.acl=true (login: {cluster.zk_jaas_path}" in stdout
        zk = ["zk", "getacl", "--zookeeper", cluster.zk_connect]
        assert run_main(*zk, "/brokers/ids/1")[:2] == (0, BROKER_ZNODE_ACL)

        admin_conf = {"bootstrap.servers": cluster.ssl_bootstrap_servers,
                      **ClientProperties.load(cluster.admin_client_properties_path).librdkafka_config()}
        admin_round_trip(admin_conf, "flights", 1, 1, [f"flight-{i}".encode() for i in range(5)], 60)

        # a certificate from the same CA but no ACL (User:CN=mallory): authenticated, denied
        mallory = certs.ensure_client_keystore(cluster.ssl_dir, "mallory")
        m_conf = {**admin_conf, "ssl.certificate.location": str(mallory), "ssl.key.location": str(mallory)}
        assert "flights" not in AdminClient(m_conf).list_topics(timeout=30).topics
        # no client certificate: the TLS handshake fails, nothing is served
        stranger = AdminClient({"bootstrap.servers": cluster.ssl_bootstrap_servers, "security.protocol": "SSL",
                                "ssl.ca.location": str(cluster.ssl_dir / "ca.pem")})
        with pytest.raises(KafkaException):
            stranger.list_topics(timeout=10)
        # the PLAINTEXT listener serves User:ANONYMOUS, denied by default
        assert "flights" not in AdminClient({"bootstrap.servers": cluster.bootstrap_servers}).list_topics(
            timeout=30).topics
    finally:
        with contextlib.suppress(ClusterError):
            LocalCluster.load(base).stop()
