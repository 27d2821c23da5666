"""Configs that break a topic are refused: topic configs outside Kafka's LogConfig
ConfigDef get INVALID_CONFIG (error 40) with Kafka's message from CreateTopics (also
validate_only), AlterConfigs and IncrementalAlterConfigs of a REAL 3-broker cluster, through
kafka-python, confluent-kafka and ``kafkalike topics``, and the topic is left unchanged; a
server.properties value outside Kafka's KafkaConfig ranges stops a real broker process at
start-up with one line naming the key."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kafkalike.broker.kafka_config import ConfigError, KafkaConfig
from kafkalike.broker.zk_admin_manager import TOPIC_CONFIGS
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.storage.log_config import TOPIC_CONFIG_KEYS

# the values docs/robustness.md lists, each with Kafka's message (the RF 3 one is kafkalike's addition)
BAD = [
    ({"segment.bytes": "1"}, "Invalid value 1 for configuration segment.bytes: Value must be at least 14"),
    ({"max.message.bytes": "-1"}, "Invalid value -1 for configuration max.message.bytes: Value must be at least 0"),
    ({"retention.ms": "-5"}, "Invalid value -5 for configuration retention.ms: Value must be at least -1"),
    ({"compression.type": "zzz"}, "Invalid value zzz for configuration compression.type: String must be one of: "
                                  "uncompressed, zstd, lz4, snappy, gzip, producer"),
    ({"min.insync.replicas": "5"}, "Invalid value 5 for configuration min.insync.replicas: "
                                   "Value must be no more than the topic's replication factor (3)"),
]
IDS = [next(iter(c)) for c, _ in BAD]
INVALID_CONFIG = 40


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _kafka_python_admin(cluster: LocalCluster):  # type: ignore[no-untyped-def]
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)


def _overrides(admin, topic: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The topic's dynamic (DYNAMIC_TOPIC_CONFIG) overrides, read back with DescribeConfigs."""
    from kafka.admin import ConfigResource, ConfigResourceType

    entries = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])["topic"][topic]
    return {k: e["value"] for k, e in entries.items() if e.get("config_source") in (1, "DYNAMIC_TOPIC_CONFIG")}


def test_every_topic_config_described_has_a_validation_rule() -> None:
    """DescribeConfigs' topic config list and the validation table name the same keys and types."""
    assert sorted(TOPIC_CONFIGS) == sorted(TOPIC_CONFIG_KEYS)
    assert {n: d.type for n, d in TOPIC_CONFIGS.items()} == {n: k.type for n, k in TOPIC_CONFIG_KEYS.items()}


@pytest.mark.parametrize("configs, message", BAD, ids=IDS)
def test_kafka_python_create_topics_with_a_bad_config_is_refused(kafka_cluster: LocalCluster,
                                                                  configs: dict, message: str) -> None:
    """kafka-python's create_topics (validate_only and real) raises InvalidConfigurationError with
    Kafka's message, and no topic appears."""
    from kafka.errors import InvalidConfigurationError

    admin = _kafka_python_admin(kafka_cluster)
    topic = _name("badcfg")
    try:
        for validate_only in (True, False):
            with pytest.raises(InvalidConfigurationError) as err:
                admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 3, "configs": configs}},
                                    validate_only=validate_only)
            assert message in str(err.value), str(err.value)
        assert topic not in admin.list_topics()
    finally:
        admin.close()


def test_create_topics_with_a_null_config_value_is_refused(kafka_cluster: LocalCluster) -> None:
    """A CreateTopics config entry with a null value gets INVALID_CONFIG with Kafka's message
    (ZkAdminManager.createTopics), not a topic with the entry silently dropped."""
    from kafka.errors import InvalidConfigurationError

    admin = _kafka_python_admin(kafka_cluster)
    topic = _name("nullcfg")
    try:
        with pytest.raises(InvalidConfigurationError) as err:
            admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 3,
                                         "configs": {"retention.ms": None, "segment.ms": None}}})
        assert "Null value not supported for topic configs: retention.ms,segment.ms" in str(err.value)
        assert topic not in admin.list_topics()
    finally:
        admin.close()


def test_confluent_create_topics_with_a_bad_config_gets_invalid_config(kafka_cluster: LocalCluster) -> None:
    """librdkafka's create_topics answers each bad config with error 40 and Kafka's message."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers})
    news = {_name("rdk"): (configs, message) for configs, message in BAD}
    futures = admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=3, config=c)
                                   for t, (c, _) in news.items()], request_timeout=30)
    for topic, fut in futures.items():
        with pytest.raises(KafkaException) as err:
            fut.result(timeout=60)
        kerr = err.value.args[0]
        assert kerr.code() == INVALID_CONFIG and news[topic][1] in kerr.str(), kerr
    assert not set(news) & set(admin.list_topics(timeout=30).topics)


def test_alter_configs_with_a_bad_value_is_refused_and_changes_nothing(kafka_cluster: LocalCluster) -> None:
    """AlterConfigs (kafka-python) and IncrementalAlterConfigs (kafka-python and confluent-kafka)
    with each bad value answer INVALID_CONFIG with Kafka's message; the topic's overrides stay."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    from kafka.admin import ConfigResource as KpResource
    from kafka.admin import ConfigResourceType
    admin = _kafka_python_admin(kafka_cluster)
    rdk = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers})
    topic = _name("alter")
    try:
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 3,
                                     "configs": {"retention.ms": "3600000"}}})
        assert _overrides(admin, topic) == {"retention.ms": "3600000"}
        for configs, message in BAD:
            for incremental in (False, True):
                for validate_only in (True, False):
                    result = admin.alter_configs([KpResource(ConfigResourceType.TOPIC, topic, configs=dict(configs))],
                                                 validate_only=validate_only, incremental=incremental)
                    error = str(result["topic"][topic])
                    assert error == f"[Error 40] InvalidConfigurationError: {message}", (incremental, error)
            (name, value), = configs.items()
            fut = rdk.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
                ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])])
            with pytest.raises(KafkaException) as err:
                next(iter(fut.values())).result(timeout=60)
            kerr = err.value.args[0]
            assert kerr.code() == INVALID_CONFIG and message in kerr.str(), kerr
        assert _overrides(admin, topic) == {"retention.ms": "3600000"}
        # the boundary values are accepted and stored
        good = {"segment.bytes": "14", "retention.ms": "-1", "max.message.bytes": "0",
                "compression.type": "zstd", "min.insync.replicas": "3"}
        result = admin.alter_configs([KpResource(ConfigResourceType.TOPIC, topic, configs=good)], incremental=True)
        assert result == {"topic": {topic: "OK"}}
        assert _overrides(admin, topic) == {"retention.ms": "-1", **good}
    finally:
        admin.close()


def test_kafkalike_topics_prints_kafkas_error_for_a_bad_config(kafka_cluster: LocalCluster) -> None:
    """``kafkalike topics --create --config segment.bytes=1`` prints what kafka-topics.sh prints
    and exits 1."""
    topic = _name("cli")
    out = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "topics", "--bootstrap-server",
                          kafka_cluster.bootstrap_servers, "--create", "--topic", topic, "--partitions", "1",
                          "--replication-factor", "3", "--config", "segment.bytes=1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out
    assert out.stderr.strip() == ("Error while executing topic command : Invalid value 1 for configuration "
                                  "segment.bytes: Value must be at least 14")


BASE = "broker.id=1\nzookeeper.connect=127.0.0.1:2181\nlisteners=PLAINTEXT://127.0.0.1:0\n"


@pytest.mark.parametrize("line, pattern", [
    ("log.cleanup.policy=delete,zzz", r"^invalid value 'zzz' in configuration 'log.cleanup.policy': expected a "
                                      r"comma separated list of compact, delete$"),
    ("log.cleaner.min.cleanable.ratio=1.5", r"^invalid value '1.5' for configuration "
                                            r"'log.cleaner.min.cleanable.ratio': expected a number <= 1$"),
    ("fetch.max.bytes=1023", r"^invalid value '1023' for configuration 'fetch.max.bytes': expected an int in "
                             r"\[1024, 2147483647\]$"),
    ("offsets.commit.timeout.ms=0", r"'offsets.commit.timeout.ms': expected an int in \[1, "),
    ("offsets.load.buffer.size=0", r"'offsets.load.buffer.size': expected an int in \[1, "),
    ("offsets.retention.check.interval.ms=0", r"'offsets.retention.check.interval.ms': expected a long in \[1, "),
    ("producer.id.expiration.ms=0", r"'producer.id.expiration.ms': expected an int in \[1, "),
    ("num.io.threads=0", r"'num.io.threads': expected an int in \[1, "),
    ("log.retention.ms=0", r"^invalid value '0' for configuration 'log.retention.ms': log.retention.ms must be "
                           r"unlimited \(-1\) or, greater than or equal to 1$"),
    ("replica.fetch.wait.max.ms=40000\nreplica.socket.timeout.ms=50000",
                                        r"^invalid value '40000' for configuration 'replica.fetch.wait.max.ms': "
                                        r"replica.fetch.wait.max.ms should always be less than or equal to "
                                        r"replica.lag.time.max.ms \(30000\)"),
    ("replica.fetch.wait.max.ms=40000\nreplica.lag.time.max.ms=50000",
     r"^invalid value '30000' for configuration 'replica.socket.timeout.ms': replica.socket.timeout.ms should "
     r"always be at least replica.fetch.wait.max.ms \(40000\) to prevent unnecessary socket timeouts$"),
])
def test_broker_values_outside_kafkas_ranges_are_one_line_naming_the_key(line: str, pattern: str) -> None:
    """server.properties values KafkaConfig refuses are refused, in one line naming the key."""
    with pytest.raises(ConfigError, match=pattern) as err:
        KafkaConfig.from_properties(BASE + line + "\n")
    assert "\n" not in str(err.value)


def test_negative_broker_retention_means_unlimited() -> None:
    """log.retention.ms=-5 is unlimited (-1), as KafkaConfig.logRetentionTimeMillis reads it."""
    assert KafkaConfig.from_properties(BASE + "log.retention.ms=-5\n").log_retention_ms == -1


def test_broker_process_with_an_out_of_range_value_exits_at_start_up(tmp_path: Path, zk_connect: str) -> None:
    """A real ``kafkalike broker start`` whose server.properties has log.cleanup.policy=zzz exits
    at once, code 2, with one stderr line naming the key (and registers nothing)."""
    props = tmp_path / "server.properties"
    props.write_text(f"broker.id=1\nzookeeper.connect={zk_connect}/bad-{uuid.uuid4().hex[:8]}\n"
                     f"listeners=PLAINTEXT://127.0.0.1:0\nlog.dirs={tmp_path / 'logs'}\n"
                     "log.cleanup.policy=zzz\n")
    proc = subprocess.Popen([sys.executable, "-m", "kafkalike.cli.main", "broker", "start", "--config", str(props)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=30)  # a broker that started would run until killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, stderr
    assert stderr.splitlines() == ["kafkalike broker: invalid value 'zzz' in configuration 'log.cleanup.policy': "
                                   "expected a comma separated list of compact, delete"]
