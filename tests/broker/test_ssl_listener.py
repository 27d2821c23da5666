"""TLS listeners (Kafka's SSL security protocol): one real broker process with a PLAINTEXT
listener, an SSL listener and an SSL listener requiring client certificates (MTLS, set up with
the ``listener.name.mtls.ssl.*`` prefix); certificates made per module with trustme.

Real clients (confluent-kafka / librdkafka, kafka-python) produce and fetch over TLS; raw
sockets play the wrong-protocol peers (a PLAINTEXT client on the TLS port, a TLS client on
the PLAINTEXT port, a client without certificate on MTLS), after which the broker must
still serve. A keystore path that does not exist stops start-up with one line naming it."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trustme

# _free_ports, _spawn, _stop, _wait_port, _write_properties: also imported from here by
# tests/broker/test_acl_*.py
from tests.broker.listener_helpers import START_TIMEOUT_S, broker_process, confluent_round_trip, kafka_python_round_trip
from tests.broker.listener_helpers import api_versions_frame as _api_versions_frame
from tests.broker.listener_helpers import call_api_versions as _call_api_versions
from tests.broker.listener_helpers import free_ports as _free_ports
from tests.broker.listener_helpers import single_broker_properties
from tests.broker.listener_helpers import spawn as _spawn
from tests.broker.listener_helpers import stop as _stop
from tests.broker.listener_helpers import wait_port as _wait_port  # noqa: F401  (test_acl_*.py)
from tests.broker.listener_helpers import write_properties as _write_properties

@attrs.frozen
class SslBroker:
    """A running broker process and what tests need to reach it."""

    process: subprocess.Popen[bytes]
    log_path: Path
    plaintext_port: int
    ssl_port: int
    mtls_port: int
    ca_pem: Path
    client_cert: Path
    client_key: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def ssl_broker(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[SslBroker]:
    """One broker process with PLAINTEXT, SSL and MTLS (SSL + ssl.client.auth=required) listeners."""
    base = tmp_path_factory.mktemp("ssl")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client.kafkalike.test")
    keystore, ca_pem = base / "broker.pem", base / "ca.pem"
    client_cert, client_key = base / "client-cert.pem", base / "client-key.pem"
    server.private_key_and_cert_chain_pem.write_to_path(str(keystore))
    ca.cert_pem.write_to_path(str(ca_pem))
    client.cert_chain_pems[0].write_to_path(str(client_cert))
    client.private_key_pem.write_to_path(str(client_key))
    plain, tls, mtls = _free_ports(3)
    props = single_broker_properties(base, zk_connect, "ssl", plain, f"SSL://127.0.0.1:{tls},MTLS://127.0.0.1:{mtls}", **{
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "listener.name.mtls.ssl.truststore.type": "PEM",
        "listener.name.mtls.ssl.truststore.location": str(ca_pem),
        "listener.name.mtls.ssl.client.auth": "required",
    })
    with broker_process(base, props, plain) as (process, log_path):
        yield SslBroker(process, log_path, plain, tls, mtls, ca_pem, client_cert, client_key)


def _confluent_round_trip(broker: SslBroker, topic: str, n: int) -> list[bytes]:
    return confluent_round_trip(broker.ssl_port, topic, n, padding=b"x" * 200, **{
        "security.protocol": "SSL", "ssl.ca.location": str(broker.ca_pem)})


def _kafka_python_round_trip(broker: SslBroker, port: int, topic: str, n: int,
                             with_cert: bool = False) -> list[bytes]:
    common: dict[str, object] = {"bootstrap_servers": f"127.0.0.1:{port}", "security_protocol": "SSL",
                                 "ssl_cafile": str(broker.ca_pem)}
    if with_cert:
        common.update(ssl_certfile=str(broker.client_cert), ssl_keyfile=str(broker.client_key))
    return kafka_python_round_trip(common, topic, n, lambda i: b"p%05d" % i + b"y" * 300)


def test_confluent_kafka_produces_and_fetches_over_the_ssl_listener(ssl_broker: SslBroker) -> None:
    """librdkafka with security.protocol=SSL produces 2000 records and fetches all of them back in order."""
    got = _confluent_round_trip(ssl_broker, "ssl-confluent", 2000)
    assert got == [b"v%05d" % i + b"x" * 200 for i in range(2000)]


def test_kafka_python_produces_and_fetches_over_the_ssl_listener(ssl_broker: SslBroker) -> None:
    """kafka-python with security_protocol=SSL produces 1000 records and fetches all of them back in order."""
    got = _kafka_python_round_trip(ssl_broker, ssl_broker.ssl_port, "ssl-kafka-python", 1000)
    assert got == [b"p%05d" % i + b"y" * 300 for i in range(1000)]


def test_client_auth_required_refuses_a_client_without_certificate(ssl_broker: SslBroker) -> None:
    """On the ssl.client.auth=required listener a TLS client without a certificate gets no answer."""
    ctx = ssl.create_default_context(cafile=str(ssl_broker.ca_pem))
    with socket.create_connection(("127.0.0.1", ssl_broker.mtls_port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                _call_api_versions(tls)  # TLS 1.3: the refusal arrives on the first read
    ctx.load_cert_chain(str(ssl_broker.client_cert), str(ssl_broker.client_key))
    with socket.create_connection(("127.0.0.1", ssl_broker.mtls_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert _call_api_versions(tls) == 0


def test_client_auth_required_serves_kafka_python_with_a_certificate(ssl_broker: SslBroker) -> None:
    """kafka-python with a client certificate signed by the truststore's CA produces and fetches on MTLS."""
    got = _kafka_python_round_trip(ssl_broker, ssl_broker.mtls_port, "ssl-mtls", 200, with_cert=True)
    assert got == [b"p%05d" % i + b"y" * 300 for i in range(200)]


def test_plaintext_client_on_the_tls_port_is_closed_and_the_broker_still_serves(ssl_broker: SslBroker) -> None:
    """A Kafka request sent in clear to the SSL port closes that connection with an
    ssl_handshake_failed line; TLS clients are served afterwards."""
    with socket.create_connection(("127.0.0.1", ssl_broker.ssl_port), timeout=10) as s:
        s.sendall(_api_versions_frame())
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            data = b""
        assert data == b"" or data[:1] == b"\x15"  # closed, or a TLS alert record then closed
    ctx = ssl.create_default_context(cafile=str(ssl_broker.ca_pem))
    with socket.create_connection(("127.0.0.1", ssl_broker.ssl_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert _call_api_versions(tls) == 0
    def failed_on_ssl_listener() -> list[str]:
        return [line for line in ssl_broker.log_text().splitlines()
                if "ssl_handshake_failed" in line and "listener=SSL " in line]

    deadline = time.monotonic() + 10
    while not failed_on_ssl_listener() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(failed_on_ssl_listener()) == 1
    assert ssl_broker.process.poll() is None


def test_tls_client_on_the_plaintext_port_is_closed_by_the_frame_check(ssl_broker: SslBroker) -> None:
    """A TLS ClientHello on the PLAINTEXT port reads as an oversized frame: the connection is
    closed (connection_closed_bad_frame) and PLAINTEXT clients are still served."""
    ctx = ssl.create_default_context(cafile=str(ssl_broker.ca_pem))
    with socket.create_connection(("127.0.0.1", ssl_broker.plaintext_port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", ssl_broker.plaintext_port), timeout=10) as s:
        assert _call_api_versions(s) == 0
    assert "connection_closed_bad_frame" in ssl_broker.log_text()  # logged before the answer above
    assert ssl_broker.process.poll() is None


def test_missing_keystore_stops_start_up_with_one_line_naming_the_key(tmp_path: Path, zk_connect: str) -> None:
    """ssl.keystore.location pointing nowhere: the broker exits non-zero and says which key is wrong."""
    plain, tls = _free_ports(2)
    config = tmp_path / "server.properties"
    _write_properties(config, {
        "broker.id": "1", "zookeeper.connect": f"{zk_connect}/kafkalike-ssl-{uuid.uuid4().hex[:10]}",
        "log.dirs": str(tmp_path / "logs"), "kafkalike.metrics.port": "-1",
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}",
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(tmp_path / "nope.pem"),
    })
    log_path = tmp_path / "broker.log"
    process = _spawn(config, log_path)
    try:
        assert process.wait(START_TIMEOUT_S) != 0
    finally:
        _stop(process)
    lines = [line for line in log_path.read_text().splitlines() if "ssl.keystore.location" in line]
    assert lines and "no such file" in lines[0], log_path.read_text()[-2000:]


def _kafkalike_client_call(port: int, truststore: Path) -> int:
    """ApiVersions + Metadata with kafkalike's own KafkaConnection over TLS; returns the
    number of brokers listed."""
    import trio

    from kafkalike.broker.ssl_factory import client_context
    from kafkalike.client.connection import KafkaConnection
    from kafkalike.protocol.api_keys import ApiKey

    ctx = client_context({"ssl.truststore.type": ("ssl.truststore.type", "PEM"),
                          "ssl.truststore.location": ("ssl.truststore.location", str(truststore))})

    async def call() -> int:
        async with KafkaConnection.open("127.0.0.1", port, ssl_context=ctx,
                                        request_timeout_ms=20000) as conn:
            response = await conn.call(ApiKey.METADATA, topics=[])
        return len(response.brokers)

    return trio.run(call)


def test_kafkalike_connection_speaks_tls_and_refuses_an_untrusted_broker(
        ssl_broker: SslBroker, tmp_path: Path) -> None:
    """KafkaConnection with a client SSLContext gets Metadata over the SSL listener; trusting
    another CA, the handshake fails with BrokerConnectionRefusedError."""
    from kafkalike.client.errors import BrokerConnectionRefusedError

    assert _kafkalike_client_call(ssl_broker.ssl_port, ssl_broker.ca_pem) == 1
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    with pytest.raises(BaseExceptionGroup) as info:  # raised inside open()'s nursery
        _kafkalike_client_call(ssl_broker.ssl_port, other_ca)
    refused = info.value.subgroup(BrokerConnectionRefusedError)
    assert refused is not None
    assert "TLS handshake with 127.0.0.1:" in str(refused.exceptions[0])
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.exceptions[0])


def test_local_cluster_with_security_ssl_serves_clients_from_client_ssl_properties(
        tmp_path: Path, zk_connect: str) -> None:
    """LocalCluster(security="ssl") (kafkalike cluster up --security ssl): the broker serves mutual
    TLS on base port + 1 with a generated certificate, and the truststore and admin keystore named
    in admin-client.properties are enough for kafka-python to produce and fetch."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from kafkalike.cluster.local_cluster import LocalCluster
    from kafkalike.cluster.zk_ensemble import find_free_base_port

    port = find_free_base_port(["127.0.0.1"], per_host_ports=2, low=30000, high=32000)
    cluster = LocalCluster(tmp_path / "c", brokers=1, base_port=port, zookeeper_connect=zk_connect,
                           chroot=f"kafkalike-{uuid.uuid4().hex[:10]}", security="ssl")
    try:
        cluster.start(timeout=60)
        props = dict(line.split("=", 1) for line in cluster.admin_client_properties_path.read_text().splitlines()
                     if line and not line.startswith("#"))
        assert props["security.protocol"] == "SSL" and props["ssl.truststore.type"] == "PEM"
        common = {"bootstrap_servers": cluster.ssl_bootstrap_servers, "security_protocol": "SSL",
                  "ssl_cafile": props["ssl.truststore.location"],
                  "ssl_certfile": props["ssl.keystore.location"], "ssl_keyfile": props["ssl.keystore.location"]}
        producer = KafkaProducer(**common)
        try:
            for i in range(50):
                producer.send("cluster-ssl", value=b"c%d" % i)
            producer.flush(60)
        finally:
            producer.close()
        consumer = KafkaConsumer(**common, group_id=None, enable_auto_commit=False)
        tp = TopicPartition("cluster-ssl", 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got: list[bytes] = []
        deadline = time.monotonic() + 60
        try:
            while len(got) < 50 and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    got.extend(r.value for r in records)
        finally:
            consumer.close()
        assert got == [b"c%d" % i for i in range(50)]
    finally:
        cluster.stop()


def _settings(**kw: str) -> dict[str, tuple[str, str]]:
    """ssl_factory settings from keyword names (ssl_keystore_type -> ssl.keystore.type)."""
    return {k.replace("_", "."): (k.replace("_", "."), v) for k, v in kw.items()}


async def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> bytes:
    """A TLS handshake and one echo between ServerTlsStream and trio.SSLStream on a socket pair."""
    import trio

    from kafkalike.broker.socket_server import ServerTlsStream

    a, b = trio.socket.socketpair()
    server = ServerTlsStream(trio.SocketStream(a), server_ctx)
    client = trio.SSLStream(trio.SocketStream(b), client_ctx, server_hostname="127.0.0.1")
    got = b""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.do_handshake)
        await client.do_handshake()
    await client.send_all(b"ping" * 10000)
    while len(got) < 40000:
        got += await server.receive_some()
    await server.send_all(got[:4])
    answer = await client.receive_some()
    await client.aclose()
    await server.aclose()
    return answer


def test_ssl_factory_reads_pkcs12_and_inline_pem_stores(tmp_path: Path) -> None:
    """A PKCS12 keystore + truststore and KIP-651 inline PEM keys both give contexts that complete
    a handshake with a client trusting the CA."""
    import trio
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    from kafkalike.broker.ssl_factory import client_context, server_context

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    from cryptography import x509
    leaf = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    p12 = tmp_path / "broker.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"broker", key, leaf, [ca_cert], serialization.BestAvailableEncryption(b"secret")))  # type: ignore[arg-type]
    trust_p12 = tmp_path / "trust.p12"
    trust_p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"trust", None, None, [ca_cert], serialization.BestAvailableEncryption(b"trustpw")))
    client = client_context(_settings(ssl_truststore_type="PKCS12", ssl_truststore_location=str(trust_p12),
                                      ssl_truststore_password="trustpw"))
    from_p12 = server_context(_settings(ssl_keystore_type="PKCS12", ssl_keystore_location=str(p12),
                                        ssl_keystore_password="secret"))
    assert trio.run(_handshake, from_p12, client) == b"ping"
    inline = server_context(_settings(ssl_keystore_type="PEM",
                                      ssl_keystore_key=cert.private_key_pem.bytes().decode(),
                                      ssl_keystore_certificate_chain=cert.cert_chain_pems[0].bytes().decode()))
    assert trio.run(_handshake, inline, client) == b"ping"


@pytest.mark.parametrize("kw, pattern", [
    ({"ssl_keystore_location": "/x.jks"}, r"^invalid value 'JKS' for configuration 'ssl.keystore.type': "
                                          r"expected PEM or PKCS12"),
    ({"ssl_keystore_type": "PEM"}, r"^missing configuration 'ssl.keystore.location'"),
    ({"ssl_keystore_type": "PKCS12", "ssl_keystore_location": "@P12", "ssl_keystore_password": "wrong"},
     r"^invalid value '.*broker.p12' for configuration 'ssl.keystore.location': cannot load the PKCS12"),
    ({"ssl_keystore_type": "PEM", "ssl_keystore_location": "@PEM", "ssl_client_auth": "required"},
     r"^missing configuration 'ssl.truststore.location': ssl.client.auth=required needs a truststore"),
])
def test_ssl_factory_errors_are_one_line_naming_the_key(tmp_path: Path, kw: dict[str, str], pattern: str) -> None:
    """Unusable ssl.* settings raise SslConfigError naming the property (JKS, no keystore, a wrong
    PKCS12 password, client auth without truststore)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    from kafkalike.broker.ssl_factory import SslConfigError, server_context

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    pem = tmp_path / "broker.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    from cryptography import x509
    p12 = tmp_path / "broker.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"b", key, x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()), None,  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(b"right")))
    kw = {k: {"@P12": str(p12), "@PEM": str(pem)}.get(v, v) for k, v in kw.items()}
    with pytest.raises(SslConfigError, match=pattern) as info:
        server_context(_settings(**kw))
    assert "\n" not in str(info.value)


def _brokers_listed(admin: Any) -> dict[int, Any]:
    """The brokers a Metadata answer lists, or none while no broker answers yet (librdkafka
    raises a transport error from list_topics when it reaches no broker within the timeout)."""
    from confluent_kafka import KafkaException

    try:
        return admin.list_topics(timeout=5).brokers
    except KafkaException:
        return {}


def test_brokers_replicate_and_take_controller_requests_over_an_ssl_inter_broker_listener(
        tmp_path: Path, zk_connect: str) -> None:
    """Two brokers with only SSL listeners (security.inter.broker.protocol=SSL, client auth
    required): the controller's requests and the follower's fetches go over TLS, so a
    replication-factor-2 topic gets both replicas in sync and serves acks=all produce."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    ca = trustme.CA()
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    chroot = f"kafkalike-ssl-{uuid.uuid4().hex[:10]}"
    processes, ports = [], _free_ports(2)
    try:
        for broker_id, port in zip((1, 2), ports):
            keystore = tmp_path / f"broker-{broker_id}.pem"
            ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(keystore))
            config = tmp_path / f"server-{broker_id}.properties"
            _write_properties(config, {
                "broker.id": str(broker_id), "zookeeper.connect": f"{zk_connect}/{chroot}",
                "zookeeper.session.timeout.ms": "6000", "log.dirs": str(tmp_path / f"logs-{broker_id}"),
                "kafkalike.metrics.port": "-1", "listeners": f"SSL://127.0.0.1:{port}",
                "security.inter.broker.protocol": "SSL", "ssl.client.auth": "required",
                "ssl.keystore.type": "PEM", "ssl.keystore.location": str(keystore),
                "ssl.truststore.type": "PEM", "ssl.truststore.location": str(ca_pem),
                "offsets.topic.replication.factor": "1",
            })
            processes.append(_spawn(config, tmp_path / f"broker-{broker_id}.log"))
        client_pem = tmp_path / "client.pem"
        ca.issue_cert("client.kafkalike.test").private_key_and_cert_chain_pem.write_to_path(str(client_pem))
        conf = {"bootstrap.servers": f"127.0.0.1:{ports[0]}", "security.protocol": "SSL",
                "ssl.ca.location": str(ca_pem), "ssl.certificate.location": str(client_pem),
                "ssl.key.location": str(client_pem)}
        admin = AdminClient(conf)
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(_brokers_listed(admin)) < 2:  # a slow start (loaded machine): not listening yet
            assert time.monotonic() < deadline, "brokers did not both register"
            assert all(p.poll() is None for p in processes)
            time.sleep(0.2)
        admin.create_topics([NewTopic("ssl-replicated", 1, replication_factor=2)])["ssl-replicated"].result(30)
        producer = Producer({**conf, "acks": "all"})
        for i in range(100):
            producer.produce("ssl-replicated", value=b"r%d" % i)
        assert producer.flush(60) == 0
        deadline = time.monotonic() + 30
        while True:
            partition = admin.list_topics("ssl-replicated", timeout=5).topics["ssl-replicated"].partitions[0]
            if sorted(partition.isrs) == [1, 2]:
                break
            assert time.monotonic() < deadline, f"ISR stayed {partition.isrs}"
            time.sleep(0.2)
        follower = 2 if partition.leader == 1 else 1
        hw_dir = tmp_path / f"logs-{follower}" / "ssl-replicated-0"
        assert hw_dir.is_dir() and sum(f.stat().st_size for f in hw_dir.glob("*.log")) > 0
    finally:
        for p in processes:  # both at once: the last one has no controller to hand leadership to
            if p.poll() is None:
                p.terminate()
        for p in processes:
            _stop(p)
