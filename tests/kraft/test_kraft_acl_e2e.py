"""ACLs on a KRaft cluster of real processes: one controller and one broker whose only listener is
SASL_PLAINTEXT (PLAIN users admin, alice, bob) with Kafka's StandardAuthorizer and
``super.users=User:admin``. ``kafkalike acls --add`` (CreateAcls forwarded to the controller,
an AccessControlEntryRecord) grants alice WRITE on a topic: her produce succeeds once the
broker's image has the record, bob's gets TOPIC_AUTHORIZATION_FAILED; ``--list`` answers from the
image; ``--remove`` (DeleteAcls, a RemoveAccessControlEntryRecord) takes alice's right away again.
With KAFKALIKE_KAFKA_LIB, Kafka 3.9's own AclCommand (kafka-acls.sh) grants bob the same and lists
the ACLs as kafkalike's CLI does, and as the controller answers them (DescribeAcls on the
controller listener).

Minutes of process start-up: behind KAFKALIKE_SLOW. The rules are covered in the default run
by tests/kraft/test_kraft_acl.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.raft.raft_helpers import wait_for

pytestmark = pytest.mark.skipif(not os.environ.get("KAFKALIKE_SLOW"), reason="minutes: set KAFKALIKE_SLOW=1")

PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


def _client(bootstrap: str, user: str, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": PASSWORDS[user], **extra}


def _produce(bootstrap: str, user: str, topic: str) -> Any:
    """One record as ``user``; the delivery error (None: acknowledged)."""
    from confluent_kafka import Producer

    producer = Producer(_client(bootstrap, user, **{"message.timeout.ms": 15000}))
    errors: list[Any] = []
    producer.produce(topic, value=user.encode(), on_delivery=lambda e, m: errors.append(e))
    producer.flush(30)
    return errors[0] if errors else "no delivery report"


async def test_acls_created_through_the_controller_authorize_produce_on_a_kraft_broker(tmp_path: Path) -> None:
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient, NewTopic

    from kafkalike.cli.main import main as cli_main
    from tests.kraft.kraft_broker_helpers import BrokerNode
    from tests.kraft.kraft_helpers import CLUSTER_ID, controller_quorum
    from tests.raft.raft_helpers import free_ports

    users = " ".join(f'user_{u}="{p}"' for u, p in PASSWORDS.items())
    with controller_quorum(tmp_path, 1) as voters:
        (port,) = free_ports(1)
        node = BrokerNode(101, port, tmp_path / "broker101", voters[0].voters, [], extra=(
            f"listeners=SASL_PLAINTEXT://127.0.0.1:{port}\n"
            "inter.broker.listener.name=SASL_PLAINTEXT\n"
            "sasl.enabled.mechanisms=PLAIN\nsasl.mechanism.inter.broker.protocol=PLAIN\n"
            "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain."
            f'PlainLoginModule required username="admin" password="{PASSWORDS["admin"]}" {users};\n'
            f"authorizer.class.name={STANDARD_AUTHORIZER}\nsuper.users=User:admin\n"))
        try:
            node.dir.mkdir(parents=True, exist_ok=True)
            node.write_config()
            assert cli_main(["storage", "format", "-t", CLUSTER_ID, "-c", str(node.config)]) == 0
            node.start()
            await node.started()
            bs = node.bootstrap
            admin_props = tmp_path / "admin.properties"
            admin_props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                                   "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule "
                                   f'required username="admin" password="{PASSWORDS["admin"]}";\n')

            def create_topic() -> None:
                admin = AdminClient(_client(bs, "admin"))
                for f in admin.create_topics([NewTopic("payments", 1, 1)]).values():
                    f.result(60)
            await trio.to_thread.run_sync(create_topic)

            # no ACL yet: alice is refused (deny by default)
            denied = await trio.to_thread.run_sync(_produce, bs, "alice", "payments")
            assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, denied

            acls = ["acls", "--bootstrap-server", bs, "--command-config", str(admin_props)]
            added = await trio.to_thread.run_sync(lambda: _cli(
                *acls, "--add", "--allow-principal", "User:alice", "--operation", "Write", "--topic", "payments"))
            assert added.returncode == 0, added.stderr
            assert "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=payments, " \
                   "patternType=LITERAL)`" in added.stdout, added.stdout

            async def alice_writes() -> bool:
                return await trio.to_thread.run_sync(_produce, bs, "alice", "payments") is None
            await wait_for(alice_writes, "alice's produce allowed by the new ACL", timeout_s=60)
            refused = await trio.to_thread.run_sync(_produce, bs, "bob", "payments")
            assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, refused

            listed = await trio.to_thread.run_sync(lambda: _cli(*acls, "--list", "--topic", "payments"))
            assert listed.returncode == 0, listed.stderr
            assert "(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)" in listed.stdout, \
                listed.stdout
            assert node.events("acls_create_forwarded") and node.events("acls_loaded")

            removed = await trio.to_thread.run_sync(lambda: _cli(
                *acls, "--remove", "--force", "--allow-principal", "User:alice", "--operation", "Write",
                "--topic", "payments"))
            assert removed.returncode == 0, removed.stderr

            async def alice_refused() -> bool:
                error = await trio.to_thread.run_sync(_produce, bs, "alice", "payments")
                return error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
            await wait_for(alice_refused, "alice refused again after --remove", timeout_s=60)

            if HAVE_KAFKA:  # Kafka 3.9's kafka-acls.sh against the KRaft broker
                def kafka_acls(*args: str) -> subprocess.CompletedProcess[str]:
                    return subprocess.run(["java", "-Xmx256m", "-cp", f"{LIB}/*", "kafka.admin.AclCommand",
                                           "--bootstrap-server", bs, "--command-config", str(admin_props), *args],
                                          capture_output=True, text=True, timeout=180)
                out = await trio.to_thread.run_sync(lambda: kafka_acls(
                    "--add", "--allow-principal", "User:bob", "--operation", "Write", "--topic", "payments"))
                assert out.returncode == 0, out.stderr[-2000:]

                async def bob_writes() -> bool:
                    return await trio.to_thread.run_sync(_produce, bs, "bob", "payments") is None
                await wait_for(bob_writes, "bob's produce allowed by Kafka's AclCommand's ACL", timeout_s=60)
                kafka_listed = await trio.to_thread.run_sync(lambda: kafka_acls("--list", "--topic", "payments"))
                ours = await trio.to_thread.run_sync(lambda: _cli(*acls, "--list", "--topic", "payments"))
                assert "(principal=User:bob, host=*, operation=WRITE, permissionType=ALLOW)" in kafka_listed.stdout, \
                    kafka_listed.stdout + kafka_listed.stderr[-2000:]
                assert ours.stdout.strip() == kafka_listed.stdout.strip()
                # the controller answers DescribeAcls from its committed ACLs
                from_controller = await trio.to_thread.run_sync(lambda: _cli(
                    "acls", "--bootstrap-server", f"127.0.0.1:{voters[0].port}", "--list", "--topic", "payments"))
                assert from_controller.stdout.strip() == kafka_listed.stdout.strip(), from_controller.stderr[-2000:]
        finally:
            node.stop()
