"""A secured three-broker cluster: LocalCluster(security="sasl_ssl") (SASL_SSL for clients and
between brokers, SCRAM-SHA-512 as the super user admin) with the AclAuthorizer and deny by
default. Users made with ``kafkalike configs --zookeeper``, ACLs with ``kafkalike acls``; alice
(--producer/--consumer ACLs) writes acks=all to a replication-factor-3 topic, which needs the
followers' fetches (ClusterAction, as admin) to pass the authorizer; bob (Read on the topic and
his group) reads it and cannot write; an unauthenticated client on the PLAINTEXT listener cannot
send ControlledShutdown (CLUSTER_AUTHORIZATION_FAILED) and sees no topic."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port

TOPIC = "secured"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


def test_a_sasl_ssl_cluster_denies_by_default_and_serves_what_the_acls_allow(tmp_path: Path, zk_connect: str) -> None:
    from confluent_kafka import Consumer, KafkaError, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    port = find_free_base_port(hosts, per_host_ports=2, low=32000, high=34000)
    cluster = LocalCluster(tmp_path / "c", brokers=3, base_port=port, zookeeper_connect=zk_connect,
                           chroot=f"kafkalike-{uuid.uuid4().hex[:10]}", security="sasl_ssl",
                           overrides={"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                                      "super.users": "User:admin"})
    try:
        cluster.start(timeout=120)
        admin_props = str(cluster.admin_client_properties_path)
        for user in ("alice", "bob"):
            made = _cli("configs", "--zookeeper", cluster.zk_connect, "--alter", "--entity-type", "users",
                        "--entity-name", user, "--add-config", f"SCRAM-SHA-512=[password={user}-secret]")
            assert made.returncode == 0, made.stderr
        acls = ["acls", "--bootstrap-server", cluster.sasl_bootstrap_servers, "--command-config", admin_props, "--add"]
        for args in (["--allow-principal", "User:alice", "--producer", "--consumer", "--topic", TOPIC,
                      "--group", "alice-g", "--idempotent"],
                     ["--allow-principal", "User:bob", "--operation", "Read", "--topic", TOPIC, "--group", "bob-g"]):
            added = _cli(*acls, *args)
            assert added.returncode == 0, added.stderr

        ca = str(cluster.ssl_dir / "ca.pem")
        def conf(user: str, password: str) -> dict[str, object]:
            return {"bootstrap.servers": cluster.sasl_bootstrap_servers, "security.protocol": "SASL_SSL",
                    "ssl.ca.location": ca, "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
                    "sasl.password": password}
        admin = AdminClient(conf("admin", cluster.admin_password))
        admin.create_topics([NewTopic(TOPIC, 1, replication_factor=3)])[TOPIC].result(30)

        producer = Producer({**conf("alice", "alice-secret"), "acks": "all", "enable.idempotence": True})
        for i in range(200):
            producer.produce(TOPIC, value=b"s%03d" % i)
        assert producer.flush(60) == 0
        deadline = time.monotonic() + 30
        while sorted((p := admin.list_topics(TOPIC, timeout=5).topics[TOPIC].partitions[0]).isrs) != [1, 2, 3]:
            assert time.monotonic() < deadline, f"ISR stayed {p.isrs}"
            time.sleep(0.2)

        consumer = Consumer({**conf("bob", "bob-secret"), "group.id": "bob-g", "auto.offset.reset": "earliest"})
        consumer.subscribe([TOPIC])
        got: list[bytes] = []
        deadline = time.monotonic() + 60
        try:
            while len(got) < 200 and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    got.append(msg.value())
        finally:
            consumer.close()
        assert got == [b"s%03d" % i for i in range(200)]
        reports: list[object] = []
        bob = Producer({**conf("bob", "bob-secret"), "message.timeout.ms": 10000})
        bob.produce(TOPIC, value=b"nope", on_delivery=lambda err, msg: reports.append(err))
        bob.flush(30)
        assert reports and reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED  # type: ignore[attr-defined]

        # an unauthenticated client (User:ANONYMOUS on the PLAINTEXT listener) can't shut a broker down
        import trio

        from kafkalike.client.connection import KafkaConnection
        from kafkalike.protocol.controlled_shutdown import ControlledShutdownRequest
        from kafkalike.protocol.errors import ErrorCode

        async def anonymous() -> tuple[int, list[str]]:
            async with KafkaConnection.open(cluster.broker_host(1), cluster.base_port) as conn:
                answer = await conn.send(ControlledShutdownRequest(broker_id=2, broker_epoch=-1), api_version=1)
                metadata = await conn.call(3, topics=None)
                return answer.error_code, [t.name for t in metadata.topics]
        error, visible = trio.run(anonymous)
        assert error == ErrorCode.cluster_authorization_failed
        assert visible == []
        partition = admin.list_topics(TOPIC, timeout=5).topics[TOPIC].partitions[0]
        assert sorted(partition.isrs) == [1, 2, 3]
        logs = "".join(cluster.log_path(i).read_text() for i in cluster.broker_ids)
        assert "principal=User:ANONYMOUS" in logs and "ClusterAction" in logs
    finally:
        cluster.stop()
