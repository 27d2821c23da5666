"""KAFKA_CFG_* environment variables -> broker properties (kafkalike/cluster/env_config.py):
Bitnami's naming, the underscore escapes, the one-line errors, and the CLI's
``broker start --config-from-env`` refusing an unknown key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.broker.kafka_config import CONFIG_KEYS, ConfigError
from kafkalike.cluster.env_config import (
    EnvConfigError,
    config_from_env,
    properties_from_env,
    property_name,
    variable_for,
)

BASE = {"KAFKA_CFG_BROKER_ID": "2", "KAFKA_CFG_ZOOKEEPER_CONNECT": "zk1:2181,zk2:2181/kafka",
        "KAFKA_CFG_LOG_DIRS": "/var/lib/kafkalike/data"}


@pytest.mark.parametrize(("variable", "name"), [
    ("KAFKA_CFG_ZOOKEEPER_CONNECT", "zookeeper.connect"),
    ("KAFKA_CFG_BROKER_ID", "broker.id"),
    ("KAFKA_CFG_MIN_INSYNC_REPLICAS", "min.insync.replicas"),
    ("KAFKA_CFG_A___B__C_D", "a_b-c.d"),
])
def test_property_name_follows_the_kafka_cfg_convention(variable: str, name: str) -> None:
    """Prefix stripped, lowercased, "_" -> ".", "__" -> "-", "___" -> "_"."""
    assert property_name(variable) == name


@pytest.mark.parametrize("variable", ["KAFKA_CFG_", "KAFKA_CFG__X", "KAFKA_CFG_X_", "KAFKA_CFG_A____B", "KAFKA_X"])
def test_bad_variable_names_are_one_line_errors(variable: str) -> None:
    """A name with nothing after the prefix, a stray underscore or four in a row is refused."""
    with pytest.raises(EnvConfigError) as info:
        property_name(variable)
    assert "\n" not in str(info.value) and variable in str(info.value)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(CONFIG_KEYS)))
def test_every_known_key_has_a_variable_that_maps_back(name: str) -> None:
    """Every property kafkalike knows can be set by a KAFKA_CFG_* variable."""
    assert property_name(variable_for(name)) == name


def test_config_from_env_builds_a_validated_config() -> None:
    """Only KAFKA_CFG_* variables count; values are typed; overrides win."""
    env = {**BASE, "PATH": "/bin", "KAFKA_HEAP_OPTS": "-Xmx1g", "KAFKA_CFG_NUM_PARTITIONS": "4"}
    config = config_from_env(env, ["num.partitions=6"])
    assert config.broker_id == 2
    assert config.zookeeper_connect == "zk1:2181,zk2:2181/kafka"
    assert config["num.partitions"] == 6
    assert properties_from_env(env)["num.partitions"] == "4"


def test_unknown_key_names_its_variable() -> None:
    """An unknown property is the usual one-line ConfigError, naming the variable."""
    with pytest.raises(ConfigError, match=r"^unknown configuration key 'no\.such\.key' "
                                          r"\(environment variable KAFKA_CFG_NO_SUCH_KEY\)"):
        config_from_env({**BASE, "KAFKA_CFG_NO_SUCH_KEY": "1"})


def test_bad_value_is_a_config_error() -> None:
    """A value of the wrong type is refused with the key's name."""
    with pytest.raises(ConfigError, match="broker.id"):
        config_from_env({**BASE, "KAFKA_CFG_BROKER_ID": "two"})


def test_no_variables_at_all_is_an_error() -> None:
    """An environment without any KAFKA_CFG_* variable says what to set."""
    with pytest.raises(EnvConfigError, match="no KAFKA_CFG_"):
        config_from_env({"PATH": "/bin"})


def test_cli_refuses_an_unknown_variable_in_one_line() -> None:
    """``kafkalike broker start --config-from-env`` exits 2 with one line on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_CFG_")}
    env.update(BASE, KAFKA_CFG_LISTENER="PLAINTEXT://:0")
    r = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "broker", "start", "--config-from-env"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "kafkalike broker: unknown configuration key 'listener' (environment variable KAFKA_CFG_LISTENER): "
        "see docs/configuration.md for the keys kafkalike knows"]
