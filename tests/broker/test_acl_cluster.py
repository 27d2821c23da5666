"""ACLs on a real broker process (SASL_PLAINTEXT with PLAIN, authorizer.class.name=
kafka.security.authorizer.AclAuthorizer, super.users=User:admin, deny by default).

confluent-kafka's AdminClient creates / describes / deletes ACLs (CreateAcls, DescribeAcls,
DeleteAcls), which land in ZooKeeper as Kafka stores them; alice (ACLs on every topic and
group) produces and consumes; bob, with only Read on topic ``t`` and on his group, reads t and
nothing else (TOPIC_AUTHORIZATION_FAILED on u, cannot produce, sees only t in Metadata); carol
with no ACL gets nothing; ``kafkalike acls`` and Kafka 3.9's kafka-acls.sh (opt-in) add, list and
remove ACLs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

from kafkalike.coordination import ZooKeeperClient
from tests.broker.test_ssl_listener import _free_ports, _spawn, _stop, _wait_port, _write_properties

PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
KAFKA_LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and KAFKA_LIB.is_dir() and any(KAFKA_LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)


@attrs.frozen
class AclBroker:
    port: int
    zk_connect: str  # with the broker's chroot
    log_path: Path
    tmp: Path

    def client(self, user: str, **extra: object) -> dict[str, object]:
        return {"bootstrap.servers": f"127.0.0.1:{self.port}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": PASSWORDS[user], **extra}

    def properties(self, user: str) -> Path:
        path = self.tmp / f"{user}.properties"
        path.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                        f'username="{user}" password="{PASSWORDS[user]}";\n')
        return path


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[AclBroker]:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    base = tmp_path_factory.mktemp("acl")
    (port,) = _free_ports(1)
    users = " ".join(f'user_{u}="{p}"' for u, p in PASSWORDS.items())
    chroot = f"{zk_connect}/kafkalike-acl-{uuid.uuid4().hex[:10]}"
    props = {
        "broker.id": "1",
        "zookeeper.connect": chroot,
        "zookeeper.session.timeout.ms": "6000",
        "log.dirs": str(base / "logs"),
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config":
            'org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
            f'password="{PASSWORDS["admin"]}" {users};',
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:admin",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "group.initial.rebalance.delay.ms": "0",
        "kafkalike.metrics.port": "-1",
    }
    config = base / "server.properties"
    _write_properties(config, props)
    log_path = base / "broker.log"
    process = _spawn(config, log_path)
    try:
        _wait_port(port, process, log_path)  # ApiVersions is answered before authentication
        broker = AclBroker(port, chroot, log_path, base)
        admin = AdminClient(broker.client("admin"))
        deadline = time.monotonic() + 60
        while True:
            try:
                if admin.list_topics(timeout=5).controller_id >= 0:
                    break
            except KafkaException:
                pass
            assert time.monotonic() < deadline, f"no controller: {log_path.read_text()[-3000:]}"
            time.sleep(0.2)
        for f in admin.create_topics([NewTopic("t", 1, 1), NewTopic("u", 1, 1)]).values():
            f.result(30)
        yield broker
    finally:
        _stop(process)


def _admin(broker: AclBroker, user: str = "admin") -> object:
    from confluent_kafka.admin import AdminClient
    return AdminClient(broker.client(user))


def _binding(restype: str, name: str, principal: str, operation: str, permission: str = "ALLOW",
             pattern: str = "LITERAL") -> object:
    from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType
    return AclBinding(ResourceType[restype], name, ResourcePatternType[pattern], principal, "*",
                      AclOperation[operation], AclPermissionType[permission])


def _create(broker: AclBroker, *bindings: object, user: str = "admin") -> None:
    admin = _admin(broker, user)  # kept alive until the futures complete
    for f in admin.create_acls(list(bindings)).values():  # type: ignore[attr-defined]
        f.result(30)


def _zk_json(broker: AclBroker, path: str) -> object:
    async def read() -> object:
        async with ZooKeeperClient(broker.zk_connect, session_timeout_ms=6000) as zk:
            data, _ = await zk.get(path, sync=True)
            return json.loads(data)
    return trio.run(read)


def _wait_until(predicate: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.fixture(scope="module")
def granted(acl_broker: AclBroker) -> AclBroker:
    """alice: All on every topic and group, IdempotentWrite; bob: Read on t and on group bob-g."""
    _create(acl_broker,
            _binding("TOPIC", "*", "User:alice", "ALL"), _binding("GROUP", "*", "User:alice", "ALL"),
            _binding("BROKER", "kafka-cluster", "User:alice", "IDEMPOTENT_WRITE"),
            _binding("TOPIC", "t", "User:bob", "READ"), _binding("GROUP", "bob-g", "User:bob", "READ"))
    return acl_broker


def test_confluent_admin_creates_describes_and_deletes_acls_stored_in_zookeeper(acl_broker: AclBroker) -> None:
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)

    _create(acl_broker, _binding("TOPIC", "audit-", "User:dave", "WRITE", pattern="PREFIXED"),
            _binding("TOPIC", "audit-x", "User:dave", "READ", permission="DENY"))
    assert _zk_json(acl_broker, "/kafka-acl-extended/prefixed/Topic/audit-") == {"version": 1, "acls": [
        {"principal": "User:dave", "permissionType": "Allow", "operation": "Write", "host": "*"}]}
    assert _zk_json(acl_broker, "/kafka-acl/Topic/audit-x") == {"version": 1, "acls": [
        {"principal": "User:dave", "permissionType": "Deny", "operation": "Read", "host": "*"}]}
    admin = _admin(acl_broker)
    dave = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:dave", None,
                            AclOperation.ANY, AclPermissionType.ANY)
    found = admin.describe_acls(dave).result(30)  # type: ignore[attr-defined]
    assert sorted((b.name, b.resource_pattern_type.name, b.operation.name, b.permission_type.name) for b in found) == [
        ("audit-", "PREFIXED", "WRITE", "ALLOW"), ("audit-x", "LITERAL", "READ", "DENY")]
    match = AclBindingFilter(ResourceType.TOPIC, "audit-x", ResourcePatternType.MATCH, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    assert len(admin.describe_acls(match).result(30)) == 2  # type: ignore[attr-defined]
    deleted = next(iter(admin.delete_acls([dave]).values())).result(30)  # type: ignore[attr-defined]
    assert len(deleted) == 2
    assert admin.describe_acls(dave).result(30) == []  # type: ignore[attr-defined]


def test_a_user_without_alter_on_the_cluster_cannot_create_acls(acl_broker: AclBroker) -> None:
    from confluent_kafka import KafkaException

    with pytest.raises(KafkaException, match="CLUSTER_AUTHORIZATION_FAILED|[Cc]luster authorization"):
        _create(acl_broker, _binding("TOPIC", "t", "User:carol", "ALL"), user="carol")


def test_alice_with_acls_produces_and_consumes_with_a_group(granted: AclBroker) -> None:
    from confluent_kafka import Consumer, Producer

    producer = Producer(granted.client("alice", **{"enable.idempotence": True}))
    for i in range(20):
        producer.produce("t", value=b"t%02d" % i)
        producer.produce("u", value=b"u%02d" % i)
    assert producer.flush(60) == 0
    consumer = Consumer(granted.client("alice", **{"group.id": "alice-g", "auto.offset.reset": "earliest"}))
    consumer.subscribe(["u"])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < 20 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert got == [b"u%02d" % i for i in range(20)]


def test_bob_with_only_read_on_t_reads_t_and_nothing_else(granted: AclBroker) -> None:
    from confluent_kafka import Consumer, KafkaError, Producer

    producer = Producer(granted.client("alice"))
    for i in range(10):
        producer.produce("t", value=b"bob%02d" % i)
    assert producer.flush(60) == 0

    metadata = _admin(granted, "bob").list_topics(timeout=30)  # type: ignore[attr-defined]
    assert set(metadata.topics) == {"t"}  # u and __consumer_offsets hidden

    consumer = Consumer(granted.client("bob", **{"group.id": "bob-g", "auto.offset.reset": "earliest"}))
    consumer.subscribe(["t"])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while b"bob09" not in got and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        consumer.commit(asynchronous=False)  # OffsetCommit: Read on the group and on t
    finally:
        consumer.close()
    assert [v for v in got if v.startswith(b"bob")] == [b"bob%02d" % i for i in range(10)]

    denied = Consumer(granted.client("bob", **{"group.id": "bob-g", "auto.offset.reset": "earliest"}))
    denied.subscribe(["u"])
    errors = []
    deadline = time.monotonic() + 30
    try:
        while not errors and time.monotonic() < deadline:
            msg = denied.poll(0.5)
            if msg is not None and msg.error() is not None:
                errors.append(msg.error().code())
            assert msg is None or msg.error() is not None, "bob read a record of u"
    finally:
        denied.close()
    assert KafkaError.TOPIC_AUTHORIZATION_FAILED in errors

    reports: list[object] = []
    bob_producer = Producer(granted.client("bob", **{"message.timeout.ms": 10000}))
    bob_producer.produce("t", value=b"nope", on_delivery=lambda err, msg: reports.append(err))
    bob_producer.flush(30)
    assert len(reports) == 1 and reports[0] is not None
    assert reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED  # type: ignore[attr-defined]
    assert "denied" in granted.log_path.read_text() and "User:bob" in granted.log_path.read_text()


def test_a_user_without_any_acl_sees_no_topic_and_cannot_produce(granted: AclBroker) -> None:
    from confluent_kafka import KafkaError, Producer

    assert set(_admin(granted, "carol").list_topics(timeout=30).topics) == set()  # type: ignore[attr-defined]
    reports: list[object] = []
    producer = Producer(granted.client("carol", **{"message.timeout.ms": 10000}))
    producer.produce("t", value=b"nope", on_delivery=lambda err, msg: reports.append(err))
    producer.flush(30)
    assert len(reports) == 1 and reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED  # type: ignore[attr-defined]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


def test_kafkalike_acls_adds_lists_and_removes_with_kafkas_output(acl_broker: AclBroker) -> None:
    common = ["acls", "--bootstrap-server", f"127.0.0.1:{acl_broker.port}",
              "--command-config", str(acl_broker.properties("admin"))]
    out = _cli(*common, "--add", "--allow-principal", "User:erin", "--operation", "Read", "--operation", "Describe",
               "--topic", "erin-t")
    assert out.returncode == 0, out.stderr
    resource = "`ResourcePattern(resourceType=TOPIC, name=erin-t, patternType=LITERAL)`"
    assert f"Adding ACLs for resource {resource}: " in out.stdout
    assert f"Current ACLs for resource {resource}: " in out.stdout
    assert "\t(principal=User:erin, host=*, operation=READ, permissionType=ALLOW)" in out.stdout
    assert "\t(principal=User:erin, host=*, operation=DESCRIBE, permissionType=ALLOW)" in out.stdout
    stored = _zk_json(acl_broker, "/kafka-acl/Topic/erin-t")["acls"]  # type: ignore[index]
    assert sorted(stored, key=lambda a: a["operation"]) == [
        {"principal": "User:erin", "permissionType": "Allow", "operation": "Describe", "host": "*"},
        {"principal": "User:erin", "permissionType": "Allow", "operation": "Read", "host": "*"}]
    listed = _cli(*common, "--list", "--topic", "erin-t")
    assert listed.returncode == 0 and "operation=READ" in listed.stdout, listed.stderr
    removed = _cli(*common, "--remove", "--force", "--allow-principal", "User:erin", "--operation", "Read",
                   "--topic", "erin-t")
    assert removed.returncode == 0, removed.stderr
    listed = _cli(*common, "--list", "--topic", "erin-t")
    assert "operation=READ" not in listed.stdout and "operation=DESCRIBE" in listed.stdout
    denied = _cli("acls", "--bootstrap-server", f"127.0.0.1:{acl_broker.port}", "--command-config",
                  str(acl_broker.properties("carol")), "--list")
    assert denied.returncode == 1 and "CLUSTER_AUTHORIZATION_FAILED" in denied.stderr


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB set to Kafka 3.9's jars and java")
def test_kafkas_own_kafka_acls_sh_adds_lists_and_removes_acls(acl_broker: AclBroker) -> None:
    """Kafka 3.9's kafka.admin.AclCommand (kafka-acls.sh) with --bootstrap-server."""
    def acls(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["java", "-Xmx256m", "-cp", f"{KAFKA_LIB}/*", "kafka.admin.AclCommand",
                               "--bootstrap-server", f"127.0.0.1:{acl_broker.port}",
                               "--command-config", str(acl_broker.properties("admin")), *args],
                              capture_output=True, text=True, timeout=180)
    out = acls("--add", "--allow-principal", "User:frank", "--consumer", "--topic", "frank-t", "--group", "frank-g")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Adding ACLs for resource `ResourcePattern(resourceType=GROUP, name=frank-g, patternType=LITERAL)`" \
        in out.stdout
    assert _zk_json(acl_broker, "/kafka-acl/Group/frank-g")["acls"] == [  # type: ignore[index]
        {"principal": "User:frank", "permissionType": "Allow", "operation": "Read", "host": "*"}]
    listed = acls("--list", "--topic", "frank-t")
    assert "(principal=User:frank, host=*, operation=READ, permissionType=ALLOW)" in listed.stdout, listed.stderr
    ours = _cli("acls", "--bootstrap-server", f"127.0.0.1:{acl_broker.port}", "--command-config",
                str(acl_broker.properties("admin")), "--list", "--topic", "frank-t")
    assert ours.stdout.strip() == listed.stdout.strip()
    out = acls("--remove", "--force", "--allow-principal", "User:frank", "--consumer", "--topic", "frank-t",
               "--group", "frank-g")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "User:frank" not in acls("--list").stdout


def test_a_transactional_producer_needs_write_on_its_transactional_id(granted: AclBroker) -> None:
    """alice (All on topics and groups) with Write on transactional id tx-a commits a
    transaction; with id tx-b, which no ACL names, init_transactions fails with
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED (FindCoordinator / InitProducerId)."""
    from confluent_kafka import KafkaError, KafkaException, Producer

    _create(granted, _binding("TRANSACTIONAL_ID", "tx-a", "User:alice", "WRITE"),
            _binding("TRANSACTIONAL_ID", "tx-a", "User:alice", "DESCRIBE"))
    producer = Producer(granted.client("alice", **{"transactional.id": "tx-a"}))
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce("t", value=b"in-a-transaction")
    producer.commit_transaction(60)
    refused = Producer(granted.client("alice", **{"transactional.id": "tx-b"}))
    with pytest.raises(KafkaException) as err:
        refused.init_transactions(30)
    assert err.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_authorized_operations_are_answered_when_asked(granted: AclBroker) -> None:
    """Metadata / DescribeCluster / DescribeGroups authorized-operations bit fields, through
    confluent-kafka's describe_topics / describe_cluster / describe_consumer_groups."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AclOperation

    bob = _admin(granted, "bob")
    topic = bob.describe_topics(TopicCollection(["t"]),  # type: ignore[attr-defined]
                                include_authorized_operations=True)["t"].result(30)
    assert set(topic.authorized_operations) == {AclOperation.READ, AclOperation.DESCRIBE}
    cluster = bob.describe_cluster(include_authorized_operations=True).result(30)  # type: ignore[attr-defined]
    assert not cluster.authorized_operations  # bob has no cluster ACL
    admin = _admin(granted)  # kept alive until the future completes
    admin_cluster = admin.describe_cluster(include_authorized_operations=True).result(30)  # type: ignore[attr-defined]
    assert AclOperation.ALTER in admin_cluster.authorized_operations  # a super user
    group = bob.describe_consumer_groups(["bob-g"],  # type: ignore[attr-defined]
                                         include_authorized_operations=True)["bob-g"].result(30)
    assert set(group.authorized_operations) == {AclOperation.READ, AclOperation.DESCRIBE}


def test_admin_apis_answer_authorization_errors_per_resource(granted: AclBroker) -> None:
    """bob (Read on t only): CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs of
    t / u and AlterConfigs are refused per resource; his own group is listed, alice's is not."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic

    bob = _admin(granted, "bob")

    def code(future: object) -> int:
        with pytest.raises(KafkaException) as err:
            future.result(30)  # type: ignore[attr-defined]
        return err.value.args[0].code()
    assert code(bob.create_topics([NewTopic("bobs", 1, 1)])["bobs"]) == KafkaError.TOPIC_AUTHORIZATION_FAILED  # type: ignore[attr-defined]
    assert code(bob.delete_topics(["t"])["t"]) == KafkaError.TOPIC_AUTHORIZATION_FAILED  # type: ignore[attr-defined]
    assert code(bob.create_partitions([NewPartitions("t", 2)])["t"]) == KafkaError.TOPIC_AUTHORIZATION_FAILED  # type: ignore[attr-defined]
    resource = ConfigResource(ConfigResource.Type.TOPIC, "u")
    assert code(bob.describe_configs([resource])[resource]) == KafkaError.TOPIC_AUTHORIZATION_FAILED  # type: ignore[attr-defined]
    assert set(_admin(granted).list_topics(timeout=30).topics) >= {"t", "u"}  # nothing was deleted
    groups = bob.list_consumer_groups().result(30)  # type: ignore[attr-defined]
    names = {g.group_id for g in groups.valid}
    assert "alice-g" not in names


def test_removing_a_read_acl_stops_a_running_consumer_on_its_fetch_session(granted: AclBroker) -> None:
    """kafka-python (incremental fetch sessions, KIP-227) reads topic rv as bob; once his Read
    ACL is deleted, records produced afterwards never reach him, though his session's fetches no
    longer name the partition; his consumer sees TOPIC_AUTHORIZATION_FAILED."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType, NewTopic,
                                       ResourcePatternType, ResourceType)
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import TopicAuthorizationFailedError

    admin = _admin(granted)
    admin.create_topics([NewTopic("rv", 1, 1)])["rv"].result(30)  # type: ignore[attr-defined]
    _create(granted, _binding("TOPIC", "rv", "User:bob", "READ"))
    producer = Producer(granted.client("alice"))

    def produce(prefix: bytes) -> None:
        for i in range(5):
            producer.produce("rv", value=prefix + b"%d" % i)
        assert producer.flush(30) == 0
    produce(b"before")
    consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{granted.port}", security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="PLAIN", sasl_plain_username="bob", sasl_plain_password=PASSWORDS["bob"],
                             enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=200)
    try:
        tp = TopicPartition("rv", 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                got.extend(r.value for r in records)
        assert got == [b"before%d" % i for i in range(5)]
        revoke = AclBindingFilter(ResourceType.TOPIC, "rv", ResourcePatternType.LITERAL, "User:bob", None,
                                  AclOperation.ANY, AclPermissionType.ANY)
        assert len(next(iter(admin.delete_acls([revoke]).values())).result(30)) == 1  # type: ignore[attr-defined]
        # a fetch already waiting (fetch_max_wait_ms 200) was authorized when it arrived, as in Kafka:
        # let those finish before writing what bob must not read
        time.sleep(1.0)
        produce(b"after")
        refused = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                for records in consumer.poll(timeout_ms=300).values():
                    got.extend(r.value for r in records)
            except Exception as exc:  # kafka-python 3.0 raises it, then a KeyError of its own while doing so
                refused = refused or isinstance(exc, TopicAuthorizationFailedError) or isinstance(
                    exc.__context__, TopicAuthorizationFailedError)
        assert not [v for v in got if v.startswith(b"after")], "bob read records after his ACL was removed"
        assert refused
        assert "resource=Topic:LITERAL:rv" in granted.log_path.read_text()
    finally:
        consumer.close()
