"""Mutual TLS principals (issue 19): on an SSL listener with ``ssl.client.auth=required`` the
connection's principal is ``User:`` + the client certificate's subject DN in RFC 2253 form
(Kafka's DefaultKafkaPrincipalBuilder with ``ssl.principal.mapping.rules=DEFAULT``), and ACLs
written for that principal decide what it may do on a broker whose AclAuthorizer denies by
default. One broker: PLAINTEXT (inter-broker; ANONYMOUS is its super user here, so the tests'
admin can write ACLs) beside MTLS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from kafkalike.broker.ssl_factory import principal_from_peer_certificate
from tests.broker.listener_helpers import (broker_process, confluent_round_trip, free_ports, mtls_certificates,
                                           single_broker_properties, wait_for_controller)

ALICE = "User:CN=alice,OU=judges,O=kafkalike"


@attrs.frozen
class MtlsBroker:
    log_path: Path
    plaintext_port: int
    mtls_port: int
    ca_pem: Path
    certs: dict[str, tuple[Path, Path]]  # name -> (certificate, key)


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[MtlsBroker]:
    base = tmp_path_factory.mktemp("mtls")
    keystore, ca_pem, certs = mtls_certificates(base, {"alice": "judges", "bob": "judges"})
    plain, mtls = free_ports(2)
    props = single_broker_properties(base, zk_connect, "mtls", plain, f"MTLS://127.0.0.1:{mtls}", **{
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,MTLS:SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca_pem),
        "ssl.client.auth": "required",
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:ANONYMOUS",
    })
    with broker_process(base, props, plain) as (_process, log_path):
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{plain}"})
        wait_for_controller(admin, 60)  # the admin requests below go to a broker that has a controller
        yield MtlsBroker(log_path, plain, mtls, ca_pem, certs)


def _tls(broker: MtlsBroker, who: str) -> dict[str, str]:
    cert, key = broker.certs[who]
    return {"security.protocol": "SSL", "ssl.ca.location": str(broker.ca_pem),
            "ssl.certificate.location": str(cert), "ssl.key.location": str(key)}


def test_principal_of_a_connection_without_certificate_is_anonymous() -> None:
    assert principal_from_peer_certificate(None) == "User:ANONYMOUS"
    assert principal_from_peer_certificate(b"") == "User:ANONYMOUS"


def test_client_certificate_subject_is_the_principal_and_its_acls_apply(mtls_broker: MtlsBroker) -> None:
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType)

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{mtls_broker.plaintext_port}"})
    bindings = [AclBinding(ResourceType.TOPIC, "mtls-t", ResourcePatternType.LITERAL, ALICE, "*", op,
                           AclPermissionType.ALLOW) for op in (AclOperation.ALL,)]
    bindings.append(AclBinding(ResourceType.GROUP, "g-mtls-t", ResourcePatternType.LITERAL, ALICE, "*",
                               AclOperation.READ, AclPermissionType.ALLOW))
    for future in admin.create_acls(bindings, request_timeout=60).values():
        future.result(90)
    deadline = time.monotonic() + 30  # the broker's ACL cache follows the change notification
    while True:
        try:
            got = confluent_round_trip(mtls_broker.mtls_port, "mtls-t", 50, **_tls(mtls_broker, "alice"))
            break
        except (AssertionError, KafkaException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert got == [b"v%05d" % i for i in range(50)]

    errors: list[str] = []  # bob's certificate is trusted, but User:CN=bob,... has no ACL
    bob = Producer({"bootstrap.servers": f"127.0.0.1:{mtls_broker.mtls_port}", **_tls(mtls_broker, "bob"),
                    "message.timeout.ms": 20000})
    bob.produce("mtls-t", b"bob", on_delivery=lambda err, msg: errors.append(str(err)))
    bob.flush(60)
    assert errors and "TOPIC_AUTHORIZATION_FAILED" in errors[0]
    log = mtls_broker.log_path.read_text(errors="replace")
    assert "User:CN=bob,OU=judges,O=kafkalike" in log  # the authorizer's denial line names him


def test_aiokafka_with_a_client_certificate_acts_as_its_subject(mtls_broker: MtlsBroker) -> None:
    """aiokafka over mutual TLS as alice (her ACLs: All on mtls-a) produces and reads back;
    bob's certificate gets TopicAuthorizationFailedError on the same topic."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.errors import TopicAuthorizationFailedError
    from aiokafka.helpers import create_ssl_context
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType)

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{mtls_broker.plaintext_port}"})
    for future in admin.create_acls([AclBinding(ResourceType.TOPIC, "mtls-a", ResourcePatternType.LITERAL, ALICE,
                                                "*", AclOperation.ALL, AclPermissionType.ALLOW)]).values():
        future.result(30)

    def tls(who: str) -> dict[str, object]:
        cert, key = mtls_broker.certs[who]
        return {"bootstrap_servers": f"127.0.0.1:{mtls_broker.mtls_port}", "security_protocol": "SSL",
                "ssl_context": create_ssl_context(cafile=str(mtls_broker.ca_pem), certfile=str(cert),
                                                  keyfile=str(key))}

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(**tls("alice"))
        await producer.start()
        try:
            for attempt in range(60):  # the broker's ACL cache follows the change notification
                try:
                    await producer.send_and_wait("mtls-a", b"first", partition=0)
                    break
                except TopicAuthorizationFailedError:
                    assert attempt < 59
                    await asyncio.sleep(0.5)
            for i in range(20):
                await producer.send_and_wait("mtls-a", b"m%02d" % i, partition=0)
        finally:
            await producer.stop()
        bob = AIOKafkaProducer(**tls("bob"))
        await bob.start()
        try:
            try:
                await bob.send_and_wait("mtls-a", b"bob", partition=0)
                raise AssertionError("bob wrote to mtls-a without an ACL")
            except TopicAuthorizationFailedError:
                pass
        finally:
            await bob.stop()
        consumer = AIOKafkaConsumer(**tls("alice"), enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tp = TopicPartition("mtls-a", 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            got: list[bytes] = []
            while len(got) < 21:
                batch = await consumer.getmany(tp, timeout_ms=10000)
                assert batch, f"no records after {len(got)}"
                got += [m.value for m in batch[tp]]
            return got
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == [b"first"] + [b"m%02d" % i for i in range(20)]
