"""``ssl.principal.mapping.rules`` (issue 19, KIP-371; Kafka's SslPrincipalMapper): the rule syntax
and mapping of Kafka's own SslPrincipalMapperTest cases, a bad rule refused naming the property,
and on a real broker process an mTLS listener whose rule maps ``CN=alice,OU=judges,...`` to
``User:ALICE`` (ACLs name ALICE), while a certificate no rule maps is refused with one log line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkalike.broker.ssl_factory import NoMatchingRule, SslConfigError, SslPrincipalMapper
from tests.broker.listener_helpers import (broker_process, confluent_round_trip, free_ports, mtls_certificates,
                                           single_broker_properties, wait_for_controller)

KAFKA_TEST_RULES = ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),"
                    "C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U,DEFAULT")


def test_rules_map_subjects_as_kafkas_ssl_principal_mapper() -> None:
    m = SslPrincipalMapper.from_rules(KAFKA_TEST_RULES)
    assert m.name("CN=kafka1,OU=ServiceUsers,O=Org,L=Santa Clara,ST=CA,C=US") == "kafka1"
    assert m.name("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Palo Alto,ST=CA,C=US") == "duke@javasoft"
    assert m.name("CN=kafka-client.example.com,OU=Org") == "KAFKA"  # [a-zA-Z0-9.]* stops at '-'
    assert m.name("OU=JavaSoft,O=Sun Microsystems,C=US") == "OU=JavaSoft,O=Sun Microsystems,C=US"  # DEFAULT
    assert SslPrincipalMapper.from_rules(None).name("CN=x,O=y") == "CN=x,O=y"
    assert SslPrincipalMapper.from_rules("DEFAULT").name("CN=x,O=y") == "CN=x,O=y"
    # a comma inside a rule's pattern stays in it; $2 beyond the groups is literal
    escaped = SslPrincipalMapper.from_rules(r"RULE:^CN=([^,]*),O=(.*)$/$1\/$2/, RULE:^(.*)$/$1-$3/")
    assert escaped.name("CN=a,O=b") == "a/b"
    assert escaped.name("OU=z") == "OU=z-$3"
    with pytest.raises(NoMatchingRule, match="No rules apply to CN=x"):
        SslPrincipalMapper.from_rules("RULE:^CN=(.*),OU=eng$/$1/").name("CN=x,OU=ops")


@pytest.mark.parametrize("rule", ["default", "DEFAUL", "DEFAULT/L", "DEFAULT/U",
                                  "RULE:CN=(.*?),OU=ServiceUsers.*/$1", "rule:CN=(.*?),OU=ServiceUsers.*/$1/",
                                  "RULE:CN=(.*?),OU=ServiceUsers.*/$1/L/U", "RULE:(/$1/"])
def test_a_rule_kafka_refuses_is_refused_naming_the_property(rule: str) -> None:
    with pytest.raises(SslConfigError, match="listener.name.mtls.ssl.principal.mapping.rules"):
        SslPrincipalMapper.from_rules(rule, "listener.name.mtls.ssl.principal.mapping.rules")


@pytest.fixture(scope="module")
def mapped_broker(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[dict[str, object]]:
    """A broker whose MTLS listener maps CN=<lowercase>,OU=judges,... to the upper-cased CN and
    nothing else; PLAINTEXT (ANONYMOUS the super user) for the test's ACL writes."""
    base = tmp_path_factory.mktemp("mapping")
    keystore, ca_pem, certs = mtls_certificates(base, {"alice": "judges", "carol": "outsiders"})
    plain, mtls = free_ports(2)
    props = single_broker_properties(base, zk_connect, "mapping", plain, f"MTLS://127.0.0.1:{mtls}", **{
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,MTLS:SSL",
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM", "ssl.truststore.location": str(ca_pem),
        "ssl.client.auth": "required",
        "listener.name.mtls.ssl.principal.mapping.rules": "RULE:^CN=([a-z]+),OU=judges,.*$/$1/U",
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:ANONYMOUS",
    })
    with broker_process(base, props, plain) as (_process, log_path):
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{plain}"})
        wait_for_controller(admin, 90)  # the test's CreateAcls go to a broker that has a controller
        del admin
        yield {"plain": plain, "mtls": mtls, "ca": ca_pem, "certs": certs, "log": log_path}


def _tls(broker: dict[str, object], who: str) -> dict[str, str]:
    cert, key = broker["certs"][who]  # type: ignore[index]  # the fixture's dict
    return {"security.protocol": "SSL", "ssl.ca.location": str(broker["ca"]),
            "ssl.certificate.location": str(cert), "ssl.key.location": str(key)}


def test_the_mapped_name_is_the_principal_and_an_unmapped_subject_is_refused(
        mapped_broker: dict[str, object]) -> None:
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType)

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{mapped_broker['plain']}"})
    bindings = [AclBinding(ResourceType.TOPIC, "mapped-t", ResourcePatternType.LITERAL, "User:ALICE", "*",
                           AclOperation.ALL, AclPermissionType.ALLOW),
                AclBinding(ResourceType.GROUP, "g-mapped-t", ResourcePatternType.LITERAL, "User:ALICE", "*",
                           AclOperation.READ, AclPermissionType.ALLOW)]
    for future in admin.create_acls(bindings, request_timeout=60).values():
        future.result(90)
    del admin
    deadline = time.monotonic() + 60  # a controller, and the ACL cache following the notification
    while True:
        try:
            got = confluent_round_trip(int(mapped_broker["mtls"]), "mapped-t", 20,  # type: ignore[call-overload]
                                       **_tls(mapped_broker, "alice"))
            break
        except (AssertionError, KafkaException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert got == [b"v%05d" % i for i in range(20)]

    errors: list[str] = []  # carol's certificate is trusted, but no rule maps OU=outsiders
    carol = Producer({"bootstrap.servers": f"127.0.0.1:{mapped_broker['mtls']}", **_tls(mapped_broker, "carol"),
                      "message.timeout.ms": 8000})
    carol.produce("mapped-t", b"carol", on_delivery=lambda err, msg: errors.append(str(err)))
    carol.flush(30)
    del carol
    assert errors and "carol" not in errors[0]  # not delivered (timed out: every connection closed)
    log = Path(str(mapped_broker["log"])).read_text(errors="replace")
    assert "ssl_principal_mapping_failed" in log and "No rules apply to CN=carol,OU=outsiders" in log
