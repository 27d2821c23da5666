"""Kafka 3.9's own broker (``kafka.Kafka`` with ``process.roles=broker``) on three kafkalike controllers
(opt-in: KAFKALIKE_KAFKA_LIB and java). The Java broker registers (BrokerRegistration v4), follows
the metadata log as an observer (Raft Fetch), heartbeats until it is unfenced, and forwards a client's
CreateTopics (kafka-python's admin) in an Envelope; confluent-kafka then produces through it with
acks=all and kafka-python reads the records back: Kafka's data plane driven by kafkalike's control
plane. (librdkafka's admin client timed out "waiting for controller" in one run and is not used.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

from kafkalike.protocol import metadata_records as mr
from tests.kraft.kraft_helpers import CLUSTER_ID, active_controller, controller_quorum
from tests.raft.raft_helpers import free_ports, terminate, wait_for

LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)
pytestmark = pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars) and java")
LOG4J = """log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def _produce_and_consume(bootstrap: str, topic: str, n: int) -> list[bytes]:
    from confluent_kafka import Producer
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60000)
    admin.create_topics([NewTopic(topic, 3, 1)])
    admin.close()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(n):
        producer.produce(topic, value=f"record-{i}".encode(), partition=i % 3)
    assert producer.flush(90) == 0
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=20000,
                             auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, p) for p in range(3)])
    got = [m.value for _, m in zip(range(n), consumer)]
    consumer.close()
    return got


async def test_a_kafka_3_9_broker_runs_on_kafkalike_controllers(tmp_path: Path) -> None:
    with controller_quorum(tmp_path) as nodes:
        leader = await active_controller(nodes)
        [port] = free_ports(1)
        props = tmp_path / "broker4.properties"
        props.write_text(f"process.roles=broker\nnode.id=4\ncontroller.quorum.voters={nodes[0].voters}\n"
                         "controller.listener.names=CONTROLLER\n"
                         f"listeners=PLAINTEXT://127.0.0.1:{port}\n"
                         "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
                         f"log.dirs={tmp_path / 'broker4'}\noffsets.topic.replication.factor=1\n"
                         "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n")
        (tmp_path / "log4j.properties").write_text(LOG4J)
        formatted = subprocess.run(["java", "-cp", f"{LIB}/*", "kafka.tools.StorageTool", "format", "-t", CLUSTER_ID,
                                    "-c", str(props)], capture_output=True, text=True, timeout=300)
        assert formatted.returncode == 0, formatted.stdout + formatted.stderr
        with open(tmp_path / "broker4.out", "wb") as out:
            java = subprocess.Popen(["java", "-Xmx512m", f"-Dlog4j.configuration=file:{tmp_path / 'log4j.properties'}",
                                     "-cp", f"{LIB}/*", "kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT)
        try:
            async def unfenced() -> bool:
                records = leader.records()
                registered = [r for r in records if isinstance(r, mr.RegisterBrokerRecord) and r.broker_id == 4]
                return bool(registered) and mr.BrokerRegistrationChangeRecord(
                    broker_id=4, broker_epoch=registered[-1].broker_epoch, fenced=-1) in records
            await wait_for(unfenced, "Kafka's broker 4 registered and unfenced", timeout_s=240)
            got = await trio.to_thread.run_sync(_produce_and_consume, f"127.0.0.1:{port}", "judge", 30)
            assert sorted(got) == sorted(f"record-{i}".encode() for i in range(30))
            topics = [r for r in leader.records() if isinstance(r, mr.TopicRecord)]
            assert [t.name for t in topics if t.name == "judge"] == ["judge"]
            assert "Kafka Server started" in (tmp_path / "broker4.out").read_text()
        finally:
            terminate(java, 60)
