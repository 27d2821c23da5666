"""SASL listeners (SASL_PLAINTEXT, SASL_SSL; PLAIN and SCRAM-SHA-256/512): one real broker
process with a PLAINTEXT listener (inter-broker, used to create SCRAM credentials with
AlterUserScramCredentials through confluent-kafka's AdminClient), a SASL_PLAINTEXT listener
and a SASL_SSL listener.

Real clients (confluent-kafka / librdkafka, kafka-python, aiokafka) authenticate and produce /
fetch; a wrong password gets SASL_AUTHENTICATION_FAILED and nothing is served; a request
before authentication closes the connection; a bad SASL configuration stops start-up with
one line naming the key."""

from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trustme

from tests.broker.listener_helpers import (broker_process, confluent_round_trip, free_ports, kafka_python_round_trip,
                                           single_broker_properties, spawn, stop, wait_for_controller, write_properties)

ADMIN_PASSWORD = "admin-secret"
ALICE_PASSWORD = "alice-secret"


@attrs.frozen
class SaslBroker:
    process: object
    log_path: Path
    plaintext_port: int
    sasl_port: int
    sasl_ssl_port: int
    ca_pem: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _plain_jaas(**users: str) -> str:
    opts = " ".join(f'user_{u}="{p}"' for u, p in users.items())
    return ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="admin" password="{ADMIN_PASSWORD}" {opts};')


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[SaslBroker]:
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    base = tmp_path_factory.mktemp("sasl")
    ca = trustme.CA()
    keystore, ca_pem = base / "broker.pem", base / "ca.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(keystore))
    ca.cert_pem.write_to_path(str(ca_pem))
    plain, sasl, sasl_ssl = free_ports(3)
    props = single_broker_properties(
        base, zk_connect, "sasl", plain, f"SASL_PLAINTEXT://127.0.0.1:{sasl},SASL_SSL://127.0.0.1:{sasl_ssl}", **{
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": _plain_jaas(admin=ADMIN_PASSWORD,
                                                                               alice=ALICE_PASSWORD),
            "listener.name.sasl_ssl.plain.sasl.jaas.config": _plain_jaas(admin=ADMIN_PASSWORD),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
        })
    with broker_process(base, props, plain) as (process, log_path):
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{plain}"})
        wait_for_controller(admin, 60)  # librdkafka sends the alter to the controller: wait for one
        upserts = [UserScramCredentialUpsertion("alice", ScramCredentialInfo(mechanism, 4096), ALICE_PASSWORD.encode())
                   for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
        for future in admin.alter_user_scram_credentials(upserts).values():
            try:
                future.result(30)
            except Exception as exc:
                raise AssertionError(f"{exc!r}: {log_path.read_text()[-3000:]}") from exc
        yield SaslBroker(process, log_path, plain, sasl, sasl_ssl, ca_pem)


@pytest.mark.parametrize("mechanism, user, password", [
    ("PLAIN", "alice", ALICE_PASSWORD),
    ("SCRAM-SHA-256", "alice", ALICE_PASSWORD),
    ("SCRAM-SHA-512", "alice", ALICE_PASSWORD),
])
def test_confluent_kafka_produces_and_consumes_over_sasl_plaintext(
        sasl_broker: SaslBroker, mechanism: str, user: str, password: str) -> None:
    topic = f"sasl-{mechanism.lower()}"
    got = confluent_round_trip(sasl_broker.sasl_port, topic, 500, **{
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
        "sasl.username": user, "sasl.password": password})
    assert got == [b"v%05d" % i for i in range(500)]
    assert f"principal=User:{user}" in sasl_broker.log_text() or "User:alice" in sasl_broker.log_text()


def test_confluent_kafka_over_sasl_ssl_with_scram_sha_512(sasl_broker: SaslBroker) -> None:
    got = confluent_round_trip(sasl_broker.sasl_ssl_port, "sasl-ssl", 300, **{
        "security.protocol": "SASL_SSL", "ssl.ca.location": str(sasl_broker.ca_pem),
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice", "sasl.password": ALICE_PASSWORD})
    assert got == [b"v%05d" % i for i in range(300)]


def test_kafka_python_with_scram_sha_256(sasl_broker: SaslBroker) -> None:
    common: dict[str, object] = {"bootstrap_servers": f"127.0.0.1:{sasl_broker.sasl_port}",
                                 "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                                 "sasl_plain_username": "alice", "sasl_plain_password": ALICE_PASSWORD}
    got = kafka_python_round_trip(common, "sasl-kafka-python", 100, lambda i: b"p%03d" % i)
    assert got == [b"p%03d" % i for i in range(100)]


def test_aiokafka_with_scram_sha_512(sasl_broker: SaslBroker) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    common: dict[str, object] = {"bootstrap_servers": f"127.0.0.1:{sasl_broker.sasl_port}",
                                 "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                                 "sasl_plain_username": "alice", "sasl_plain_password": ALICE_PASSWORD}

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(**common)
        await producer.start()
        try:
            for i in range(50):
                await producer.send_and_wait("sasl-aiokafka", b"a%02d" % i, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(**common, enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        got: list[bytes] = []
        try:
            tp = TopicPartition("sasl-aiokafka", 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            deadline = time.monotonic() + 60
            while len(got) < 50 and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(r.value for r in records)
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == [b"a%02d" % i for i in range(50)]


def _raw_call(sock: socket.socket, api_key: int, version: int, body: bytes, correlation_id: int = 1) -> bytes | None:
    """Send one request with a v1 header (client id null); return the response body after the
    correlation id, or None when the broker closed the connection."""
    header = struct.pack(">hhih", api_key, version, correlation_id, -1)
    buf = b""
    try:
        sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
    except ConnectionError:  # reset: the broker closed with our request unread
        return None
    return buf[8:]


def _string(s: str) -> bytes:
    return struct.pack(">h", len(s)) + s.encode()


def test_wrong_password_gets_sasl_authentication_failed_and_nothing_is_served(sasl_broker: SaslBroker) -> None:
    with socket.create_connection(("127.0.0.1", sasl_broker.sasl_port), timeout=10) as s:
        body = _raw_call(s, 17, 1, _string("PLAIN"))
        assert body is not None and struct.unpack(">h", body[:2])[0] == 0
        token = b"\0alice\0wrong"
        body = _raw_call(s, 36, 0, struct.pack(">i", len(token)) + token, 2)
        assert body is not None
        error, msg_len = struct.unpack(">hh", body[:4])
        assert error == 58  # SASL_AUTHENTICATION_FAILED
        assert body[4:4 + msg_len].decode() == "Authentication failed: Invalid username or password"
        # Metadata v1 (empty topic list) is not served: the connection is closed
        assert _raw_call(s, 3, 1, struct.pack(">i", -1), 3) is None
    assert "sasl_authentication_failed" in sasl_broker.log_text()


def test_confluent_kafka_with_a_wrong_scram_password_fails_authentication(sasl_broker: SaslBroker) -> None:
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient

    errors: list[KafkaError] = []
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{sasl_broker.sasl_port}",
                         "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
                         "sasl.username": "alice", "sasl.password": "nope", "error_cb": errors.append})
    with pytest.raises(Exception):
        admin.list_topics(timeout=5)
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        admin.poll(0.5)  # error_cb is served from poll
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert "invalid credentials with SASL mechanism SCRAM-SHA-256" in errors[0].str()


def test_request_before_authentication_closes_the_connection(sasl_broker: SaslBroker) -> None:
    with socket.create_connection(("127.0.0.1", sasl_broker.sasl_port), timeout=10) as s:
        # ApiVersions is answered before authentication
        body = _raw_call(s, 18, 0, b"")
        assert body is not None and struct.unpack(">h", body[:2])[0] == 0
        assert _raw_call(s, 3, 1, struct.pack(">i", -1), 2) is None
    assert "Unexpected Kafka request of type Metadata during SASL handshake" in sasl_broker.log_text()


def test_unknown_mechanism_gets_unsupported_sasl_mechanism_with_the_enabled_list(sasl_broker: SaslBroker) -> None:
    with socket.create_connection(("127.0.0.1", sasl_broker.sasl_port), timeout=10) as s:
        body = _raw_call(s, 17, 1, _string("GSSAPI"))
        assert body is not None
        error, count = struct.unpack(">hi", body[:6])
        assert error == 33 and count == 3  # UNSUPPORTED_SASL_MECHANISM, PLAIN + 2 SCRAM
        assert _raw_call(s, 18, 0, b"", 2) is None


def test_sasl_authenticate_without_handshake_closes_and_handshake_on_plaintext_is_illegal(
        sasl_broker: SaslBroker) -> None:
    with socket.create_connection(("127.0.0.1", sasl_broker.sasl_port), timeout=10) as s:
        assert _raw_call(s, 36, 0, struct.pack(">i", 0)) is None
    with socket.create_connection(("127.0.0.1", sasl_broker.plaintext_port), timeout=10) as s:
        body = _raw_call(s, 17, 1, _string("PLAIN"))
        assert body is not None and struct.unpack(">h", body[:2])[0] == 34  # ILLEGAL_SASL_STATE


def test_handshake_v0_raw_tokens_authenticate_plain(sasl_broker: SaslBroker) -> None:
    """SaslHandshake v0: the PLAIN token follows as a size-prefixed raw frame (pre-KIP-152)."""
    with socket.create_connection(("127.0.0.1", sasl_broker.sasl_port), timeout=10) as s:
        body = _raw_call(s, 17, 0, _string("PLAIN"))
        assert body is not None and struct.unpack(">h", body[:2])[0] == 0
        token = b"\0alice\0" + ALICE_PASSWORD.encode()
        s.sendall(struct.pack(">i", len(token)) + token)
        assert s.recv(4) == struct.pack(">i", 0)  # an empty challenge: done
        body = _raw_call(s, 3, 1, struct.pack(">i", 0), 5)
        assert body is not None  # Metadata is served now


@pytest.mark.parametrize("props, pattern", [
    ({"sasl.enabled.mechanisms": "GSSAPI"},
     r"broker_startup_failed.*invalid value .?'GSSAPI.?' in configuration .?'sasl\.enabled\.mechanisms"),
    ({"sasl.enabled.mechanisms": "PLAIN"},
     r"broker_startup_failed.*missing configuration .?'listener\.name\.sasl_plaintext\.plain\.sasl\.jaas\.config"),
])
def test_bad_sasl_config_stops_start_up_with_one_line_naming_the_key(
        tmp_path: Path, zk_connect: str, props: dict[str, str], pattern: str) -> None:
    import re

    (port,) = free_ports(1)
    config = tmp_path / "server.properties"
    write_properties(config, {
        "broker.id": "1", "zookeeper.connect": f"{zk_connect}/kafkalike-sasl-bad-{uuid.uuid4().hex[:8]}",
        "log.dirs": str(tmp_path / "logs"), "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "kafkalike.metrics.port": "-1", **props})
    log_path = tmp_path / "broker.log"
    process = spawn(config, log_path)
    try:
        assert process.wait(60) != 0
    finally:
        stop(process)
    lines = [line for line in log_path.read_text().splitlines() if re.search(pattern, line)]
    assert len(lines) == 1, log_path.read_text()[-2000:]


def test_scram_credentials_alter_describe_and_delete_with_confluent_admin(sasl_broker: SaslBroker) -> None:
    """AlterUserScramCredentials / DescribeUserScramCredentials through librdkafka's admin
    client: Kafka's per-user errors (UNACCEPTABLE_CREDENTIAL for too few iterations,
    RESOURCE_NOT_FOUND for deleting or describing what does not exist), a deleted mechanism no
    longer authenticates while the other still does."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion,
                                       UserScramCredentialUpsertion)

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{sasl_broker.plaintext_port}"})
    sha256, sha512 = ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512
    for mechanism in (sha256, sha512):
        upsert = UserScramCredentialUpsertion("carol", ScramCredentialInfo(mechanism, 8192), b"carol-secret")
        admin.alter_user_scram_credentials([upsert])["carol"].result(30)
    described = admin.describe_user_scram_credentials(["carol"])["carol"].result(30)
    assert sorted((i.mechanism, i.iterations) for i in described.scram_credential_infos) == [(sha256, 8192), (sha512, 8192)]

    too_few = UserScramCredentialUpsertion("dave", ScramCredentialInfo(sha256, 1000), b"dave-secret")
    with pytest.raises(KafkaException) as err:
        admin.alter_user_scram_credentials([too_few])["dave"].result(30)
    assert err.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL

    admin.alter_user_scram_credentials([UserScramCredentialDeletion("carol", sha512)])["carol"].result(30)
    with pytest.raises(KafkaException) as err:
        admin.alter_user_scram_credentials([UserScramCredentialDeletion("carol", sha512)])["carol"].result(30)
    assert err.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    with pytest.raises(KafkaException) as err:
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(30)
    assert err.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND

    def can_produce(mechanism: str) -> bool:
        from confluent_kafka import Producer

        errors: list[KafkaError] = []
        producer = Producer({"bootstrap.servers": f"127.0.0.1:{sasl_broker.sasl_port}",
                             "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
                             "sasl.username": "carol", "sasl.password": "carol-secret", "error_cb": errors.append,
                             "message.timeout.ms": 5000})
        producer.produce("sasl-carol", b"x")
        return producer.flush(10) == 0 and not any(e.code() == KafkaError._AUTHENTICATION for e in errors)

    assert can_produce("SCRAM-SHA-256")
    assert not can_produce("SCRAM-SHA-512")


def test_scram_exchange_cut_half_way_leaves_the_broker_serving(sasl_broker: SaslBroker) -> None:
    """A client that sends SCRAM's client-first message and disconnects before the final one:
    that connection just ends; the next client authenticates and is served."""
    import scramp

    with socket.create_connection(("127.0.0.1", sasl_broker.sasl_port), timeout=10) as s:
        body = _raw_call(s, 17, 1, _string("SCRAM-SHA-256"))
        assert body is not None and struct.unpack(">h", body[:2])[0] == 0
        first = scramp.ScramClient(["SCRAM-SHA-256"], "alice", ALICE_PASSWORD).get_client_first().encode()
        body = _raw_call(s, 36, 0, struct.pack(">i", len(first)) + first, 2)
        assert body is not None and struct.unpack(">h", body[:2])[0] == 0  # server-first came back
    with socket.create_connection(("127.0.0.1", sasl_broker.sasl_port), timeout=10) as s:
        assert _raw_call(s, 17, 1, _string("PLAIN")) is not None
        token = b"\0alice\0" + ALICE_PASSWORD.encode()
        body = _raw_call(s, 36, 0, struct.pack(">i", len(token)) + token, 2)
        assert body is not None and struct.unpack(">h", body[:2])[0] == 0
        assert _raw_call(s, 3, 1, struct.pack(">i", 0), 3) is not None  # Metadata served
