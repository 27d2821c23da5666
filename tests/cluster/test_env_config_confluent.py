"""Confluent-style KAFKA_<NAME> variables (confluentinc/cp-kafka's convention) beside the
KAFKA_CFG_* ones (kafkalike/cluster/env_config.py): the name mapping and its escapes, the
variables cp-kafka reads for the JVM rather than as properties, cp-kafka's listeners and
log.dirs defaults, and the user's documented single-broker environment giving a valid config."""

from __future__ import annotations

import pytest

from kafkalike.broker.kafka_config import ConfigError
from kafkalike.cluster.env_config import (
    CONFLUENT_LOG_DIRS,
    EnvConfigError,
    config_from_env,
    confluent_property_name,
    ignored_from_env,
    properties_from_env,
)

# compose/docker-compose.single.yml's broker environment: the user's documents, unchanged
SEED = {"KAFKA_BROKER_ID": "1", "KAFKA_ZOOKEEPER_CONNECT": "zookeeper:2181",
        "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://localhost:9092", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1"}


@pytest.mark.parametrize(("variable", "name"), [
    ("KAFKA_BROKER_ID", "broker.id"),
    ("KAFKA_ZOOKEEPER_CONNECT", "zookeeper.connect"),
    ("KAFKA_ADVERTISED_LISTENERS", "advertised.listeners"),
    ("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "listener.security.protocol.map"),
    ("KAFKA_INTER_BROKER_LISTENER_NAME", "inter.broker.listener.name"),
    ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "offsets.topic.replication.factor"),
    ("KAFKA_A___B__C_D", "a_b-c.d"),
])
def test_confluent_variable_names_map_as_cp_kafka_documents(variable: str, name: str) -> None:
    """Strip KAFKA_, lowercase, "_" -> ".", "__" -> "-", "___" -> "_" (Confluent's Docker
    configuration reference)."""
    assert confluent_property_name(variable) == name


@pytest.mark.parametrize("variable", ["KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JMX_PORT", "KAFKA_LOG4J_LOGGERS",
                                      "KAFKA_CFG_BROKER_ID", "KAFKALIKE_IMAGE", "PATH"])
def test_jvm_and_foreign_variables_are_not_properties(variable: str) -> None:
    """What cp-kafka reads for the JVM/log4j, the KAFKA_CFG_* form and other names set nothing."""
    assert confluent_property_name(variable) is None


def test_bad_confluent_names_are_one_line_errors() -> None:
    """Four underscores in a row have no meaning: a one-line error naming the variable."""
    with pytest.raises(EnvConfigError) as info:
        properties_from_env({**SEED, "KAFKA_A____B": "1"})
    assert "\n" not in str(info.value) and "KAFKA_A____B" in str(info.value)


def test_the_documented_single_broker_environment_is_a_valid_config() -> None:
    """The user's compose environment: broker 1 listening on every interface at the port it
    advertises (cp-kafka's default listeners), logs under cp-kafka's default directory."""
    config = config_from_env({**SEED, "KAFKA_HEAP_OPTS": "-Xmx1g", "PATH": "/bin"})
    assert config.broker_id == 1
    assert config.zookeeper_connect == "zookeeper:2181"
    assert config["listeners"] == ["PLAINTEXT://0.0.0.0:9092"]
    assert config["advertised.listeners"] == ["PLAINTEXT://localhost:9092"]
    assert config["offsets.topic.replication.factor"] == 1
    assert config["log.dirs"] == [CONFLUENT_LOG_DIRS]


def test_default_listeners_replace_every_advertised_host() -> None:
    """Two listeners, one with an IPv6 literal: every host becomes 0.0.0.0, ports and names stay."""
    props = properties_from_env({**SEED, "KAFKA_ADVERTISED_LISTENERS": "INTERNAL://kafka1:29092,EXTERNAL://[::1]:9093",
                                 "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT"})
    assert props["listeners"] == "INTERNAL://0.0.0.0:29092,EXTERNAL://0.0.0.0:9093"


def test_explicit_listeners_and_log_dirs_win_over_the_defaults() -> None:
    """KAFKA_LISTENERS / KAFKA_LOG_DIRS given: used as they are."""
    props = properties_from_env({**SEED, "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:19092", "KAFKA_LOG_DIRS": "/data"})
    assert props["listeners"] == "PLAINTEXT://0.0.0.0:19092"
    assert props["log.dirs"] == "/data"


def test_kafka_cfg_only_environments_get_no_confluent_defaults() -> None:
    """The Bitnami-style form keeps kafkalike's own defaults (no listeners/log.dirs invented)."""
    props = properties_from_env({"KAFKA_CFG_BROKER_ID": "1", "KAFKA_CFG_ADVERTISED_LISTENERS": "PLAINTEXT://h:9092"})
    assert props == {"broker.id": "1", "advertised.listeners": "PLAINTEXT://h:9092"}


def test_both_conventions_mix_but_may_not_set_one_property_twice() -> None:
    """KAFKA_CFG_X and KAFKA_X together are fine for different properties, an error for one."""
    props = properties_from_env({**SEED, "KAFKA_CFG_NUM_PARTITIONS": "4"})
    assert props["num.partitions"] == "4" and props["broker.id"] == "1"
    with pytest.raises(EnvConfigError, match="both set 'broker.id'"):
        properties_from_env({**SEED, "KAFKA_CFG_BROKER_ID": "2"})


def test_confluent_server_properties_are_skipped_and_reported() -> None:
    """confluent.* keys (Confluent Server's own features, common in Confluent's examples) do not
    stop the broker; ignored_from_env names them."""
    env = {**SEED, "KAFKA_CONFLUENT_LICENSE_TOPIC_REPLICATION_FACTOR": "1"}
    assert "confluent.license.topic.replication.factor" not in properties_from_env(env)
    assert ignored_from_env(env) == ["KAFKA_CONFLUENT_LICENSE_TOPIC_REPLICATION_FACTOR"]
    assert config_from_env(env).broker_id == 1


def test_unknown_confluent_key_names_its_variable() -> None:
    """An unknown property set the Confluent way is the usual one-line error, naming the
    KAFKA_ variable the user wrote."""
    with pytest.raises(ConfigError, match=r"^unknown configuration key 'no\.such\.key' "
                                          r"\(environment variable KAFKA_NO_SUCH_KEY\)"):
        config_from_env({**SEED, "KAFKA_NO_SUCH_KEY": "1"})
