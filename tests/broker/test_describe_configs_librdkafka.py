"""confluent-kafka 2.16 (librdkafka) and kafka-python admin config calls against kafkalike
(issue 17): ``describe_configs`` of a topic and of a broker returns the values kafkalike
holds, with Kafka's sources and synonyms, and ``alter_configs`` /
``incremental_alter_configs`` show up in the next describe.

Why this file exists: "confluent-kafka's describe_configs never returns against kafkalike"
was reported from a pytest-trio test running the broker IN-PROCESS (KafkaServer on the test's
trio loop) and then calling the admin future's blocking ``result()`` on that same thread (or
a blocking ``subprocess.run``). That blocks the trio loop, so the broker cannot answer until
``result()`` has timed out; librdkafka's debug log then shows the response arriving, 8 s
late (rtt = the result() timeout). kafkalike's DescribeConfigs (librdkafka asks v1) parses
fine. Call blocking client APIs through ``trio.to_thread.run_sync`` when the broker is
in-process, as the last test here does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from kafkalike.cluster.local_cluster import LocalCluster
from tests.broker.broker_helpers import port_of, running_broker
from tests.fixtures_cluster import create_topic

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,  # noqa: E402
                                   ConfigResource, ConfigSource)

#: a bound on each admin future (seconds); a future that never resolves fails the test here
WAIT_S = 60.0


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def _describe(admin: AdminClient, resource: ConfigResource) -> dict[str, Any]:
    """name -> confluent ConfigEntry of one resource; raises on an error or a timeout."""
    (future,) = admin.describe_configs([resource], request_timeout=WAIT_S).values()
    return dict(future.result(timeout=WAIT_S))


def _wait_all(futures: dict[Any, Any]) -> None:
    for future in futures.values():
        future.result(timeout=WAIT_S)


def test_confluent_describe_configs_of_topic_returns_its_values(kafka_cluster: LocalCluster) -> None:
    create_topic(kafka_cluster.bootstrap_servers, "dc-topic", partitions=1, replication_factor=2,
                 configs={"retention.ms": "3600000"})
    entries = _describe(_admin(kafka_cluster.bootstrap_servers), ConfigResource("topic", "dc-topic"))
    retention = entries["retention.ms"]
    assert (retention.value, retention.source) == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert not retention.is_default
    # librdkafka asks for synonyms. A Kafka 3.9 broker lists only the override here: its broker
    # synonyms start at log.retention.ms (unset), so the default log.retention.hours is left out
    assert [(s.name, s.value, s.source) for s in retention.synonyms.values()] == \
        [("retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)]
    assert (entries["segment.ms"].value, list(entries["segment.ms"].synonyms)) == ("604800000", [])
    segment = entries["segment.bytes"]
    assert [(s.name, s.value, s.source) for s in segment.synonyms.values()] == \
        [("log.segment.bytes", "1073741824", ConfigSource.DEFAULT_CONFIG.value)]
    policy = entries["cleanup.policy"]
    assert (policy.value, policy.source, policy.is_default) == ("delete", ConfigSource.DEFAULT_CONFIG.value, True)
    assert not entries["min.insync.replicas"].is_read_only


def test_confluent_describe_configs_of_a_broker_is_answered_by_that_broker(kafka_cluster: LocalCluster) -> None:
    admin = _admin(kafka_cluster.bootstrap_servers)
    for broker_id in kafka_cluster.broker_ids:
        entries = _describe(admin, ConfigResource("broker", str(broker_id)))
        assert entries["broker.id"].value == str(broker_id)
        assert entries["broker.id"].source == ConfigSource.STATIC_BROKER_CONFIG.value
        assert entries["listeners"].value == f"PLAINTEXT://{kafka_cluster.broker_address(broker_id)}"
        assert entries["num.partitions"].source == ConfigSource.DEFAULT_CONFIG.value
        # PASSWORD keys are sensitive, with no value, as on a Kafka 3.9 broker
        for name in ("ssl.keystore.password", "sasl.jaas.config"):
            assert (entries[name].is_sensitive, entries[name].value) == (True, None), name
        assert not entries["num.partitions"].is_sensitive


def test_confluent_alter_and_incremental_alter_topic_configs_show_in_describe(kafka_cluster: LocalCluster) -> None:
    create_topic(kafka_cluster.bootstrap_servers, "dc-alter", partitions=1, replication_factor=2)
    admin = _admin(kafka_cluster.bootstrap_servers)
    _wait_all(admin.alter_configs([ConfigResource("topic", "dc-alter", set_config={"retention.ms": "7200000"})],
                                  request_timeout=WAIT_S))
    assert _describe(admin, ConfigResource("topic", "dc-alter"))["retention.ms"].value == "7200000"
    _wait_all(admin.incremental_alter_configs([ConfigResource("topic", "dc-alter", incremental_configs=[
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", "", incremental_operation=AlterConfigOpType.DELETE)])],
        request_timeout=WAIT_S))
    entries = _describe(admin, ConfigResource("topic", "dc-alter"))
    assert (entries["segment.bytes"].value, entries["segment.bytes"].source) == \
        ("1048576", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert (entries["retention.ms"].value, entries["retention.ms"].source) == \
        ("604800000", ConfigSource.DEFAULT_CONFIG.value)


def test_kafka_python_describe_configs_of_a_broker(kafka_cluster: LocalCluster) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KpResource
    from kafka.admin import ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers, request_timeout_ms=30000)
    try:
        broker_id = kafka_cluster.broker_ids[-1]
        described = admin.describe_configs([KpResource(ConfigResourceType.BROKER, str(broker_id))],
                                           config_filter="all")
        entries = described["broker"][str(broker_id)]
        assert entries["broker.id"]["value"] == str(broker_id)
        assert entries["log.dirs"]["value"] == str(kafka_cluster.broker_dir(broker_id) / "logs")
    finally:
        admin.close()


async def test_confluent_describe_configs_against_in_process_broker_off_the_trio_thread(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """The reported symptom's setting: the broker on this test's trio loop. The blocking
    librdkafka calls run in a worker thread, so the broker keeps serving and both describes
    return (calling ``result()`` on the trio thread is what made them time out)."""
    async with running_broker(tmp_path, zk_chroot_connect, 1) as server:
        bootstrap = f"127.0.0.1:{port_of(server)}"

        def client() -> tuple[str, str]:
            from confluent_kafka.admin import NewTopic
            admin = _admin(bootstrap)
            _wait_all(admin.create_topics([NewTopic("dc-inproc", 1, 1, config={"retention.ms": "1000000"})]))
            topic = _describe(admin, ConfigResource("topic", "dc-inproc"))
            broker = _describe(admin, ConfigResource("broker", "1"))
            return topic["retention.ms"].value, broker["broker.id"].value

        assert await trio.to_thread.run_sync(client) == ("1000000", "1")
