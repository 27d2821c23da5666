"""KafkaConfig: Kafka's property names and defaults, and one-line errors naming the key."""

import pytest

from kafkalike.broker.kafka_config import ConfigError, KafkaConfig, parse_properties
from kafkalike.coordination.zk_data import EndPoint

BASE = "broker.id=1\nzookeeper.connect=127.0.0.1:2181\n"


def test_defaults_match_kafka() -> None:
    """Keys not set take Kafka's documented defaults."""
    c = KafkaConfig.from_properties(BASE)
    assert c["num.partitions"] == 1
    assert c["default.replication.factor"] == 1
    assert c["min.insync.replicas"] == 1
    assert c["offsets.topic.replication.factor"] == 3
    assert c["zookeeper.session.timeout.ms"] == 18000
    assert c["message.max.bytes"] == 1048588
    assert c["socket.request.max.bytes"] == 104857600
    assert c["replica.lag.time.max.ms"] == 30000
    assert c["unclean.leader.election.enable"] is False
    assert c["auto.create.topics.enable"] is True
    assert c.log_dirs == ["/tmp/kafka-logs"]
    assert c.listeners == [EndPoint("PLAINTEXT", "", 9092, "PLAINTEXT")]
    assert c.log_retention_ms == 168 * 3_600_000


def test_kafka_quickstart_server_properties_is_accepted() -> None:
    """Kafka's own config/server.properties (ZooKeeper mode) loads unchanged."""
    text = """
# Licensed to the Apache Software Foundation
broker.id=0
#listeners=PLAINTEXT://:9092
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kafka-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.retention.check.interval.ms=300000
zookeeper.connect=localhost:2181
zookeeper.connection.timeout.ms=18000
group.initial.rebalance.delay.ms=0
"""
    c = KafkaConfig.from_properties(text)
    assert c.broker_id == 0
    assert c["offsets.topic.replication.factor"] == 1
    assert c.zookeeper_connect == "localhost:2181"
    assert c["transaction.state.log.replication.factor"] == 1
    assert sorted(c.ignored_keys()) == sorted([
        "num.network.threads", "num.io.threads", "socket.send.buffer.bytes",
        "socket.receive.buffer.bytes"])


def test_unknown_key_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"^unknown configuration key 'num.partitons' \(line 3 of server.properties\)") as e:
        KafkaConfig.from_properties(BASE + "num.partitons=3\n")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("line, pattern", [
    ("num.partitions=three", r"^invalid value 'three' for configuration 'num.partitions': expected an int"),
    ("num.partitions=0", r"^invalid value '0' for configuration 'num.partitions': expected an int in \[1, "),
    ("auto.create.topics.enable=yes", r"'auto.create.topics.enable': expected true or false$"),
    ("listeners=127.0.0.1:9092", r"'listeners': expected NAME://host:port"),
    ("listener.security.protocol.map=K:KERBEROS\nlisteners=K://:9093",
     r"listener K maps to 'KERBEROS'.*PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL$"),
    ("security.inter.broker.protocol=SSL\ninter.broker.listener.name=PLAINTEXT",
     r"only one of inter.broker.listener.name and security.inter.broker.protocol should be set$"),
    ("compression.type=brotli", r"'compression.type': expected one of producer, uncompressed"),
    ("broker.id=5000", r"'broker.id': expected at most reserved.broker.max.id \(1000\)$"),
    ("message.max.bytes=99999999999", r"'message.max.bytes': expected an int in \[0, 2147483647\]$"),
])
def test_bad_values_are_one_line_naming_the_key(line: str, pattern: str) -> None:
    text = BASE.replace("broker.id=1\n", "") if line.startswith("broker.id") else BASE
    with pytest.raises(ConfigError, match=pattern) as e:
        KafkaConfig.from_properties(text + line + "\n")
    assert "\n" not in str(e.value)


def test_missing_zookeeper_connect_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^missing required configuration 'zookeeper.connect'"):
        KafkaConfig.from_properties("broker.id=1\n")


def test_overrides_win_and_are_checked() -> None:
    c = KafkaConfig.from_properties(BASE + "num.partitions=3\n", ["num.partitions=6", "log.dirs=/a,/b"])
    assert c["num.partitions"] == 6
    assert c.log_dirs == ["/a", "/b"]
    with pytest.raises(ConfigError, match=r"^unknown configuration key 'bogus' \(--override\)"):
        KafkaConfig.from_properties(BASE, ["bogus=1"])
    with pytest.raises(ConfigError, match=r"^invalid override 'num.partitions': expected key=value$"):
        KafkaConfig.from_properties(BASE, ["num.partitions"])


def test_retention_precedence_ms_over_minutes_over_hours() -> None:
    assert KafkaConfig.from_properties(BASE + "log.retention.minutes=5\n").log_retention_ms == 300_000
    c = KafkaConfig.from_properties(BASE + "log.retention.minutes=5\nlog.retention.ms=1234\n")
    assert c.log_retention_ms == 1234


def test_properties_syntax_follows_java() -> None:
    """Comments, ':' and whitespace separators, and backslash continuations parse as Java's."""
    text = "# c\n! c\na=1\nb: 2\nc 3\nd=x,\\\n   y\n\n"
    assert [(k, v) for _, k, v in parse_properties(text)] == [
        ("a", "1"), ("b", "2"), ("c", "3"), ("d", "x,y")]


def test_missing_file_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^cannot read configuration file '/nonexistent/x.properties'"):
        KafkaConfig.from_file("/nonexistent/x.properties")


def test_docs_configuration_table_matches_code() -> None:
    """docs/configuration.md carries exactly the table generated from CONFIG_KEYS."""
    from pathlib import Path

    from kafkalike.broker.kafka_config import render_markdown

    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    assert doc.endswith(render_markdown())
