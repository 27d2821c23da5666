"""Kafka 3.x's LogConfig ConfigDef as kafkalike's topic config validation table: for every topic
config kafkalike knows, a valid value and the boundary are accepted, and the value just past
the boundary (or a bad type / an unknown value) is refused with Kafka's ConfigException text."""

from __future__ import annotations

import pytest

from kafkalike.storage.log_config import (TOPIC_CONFIG_KEYS, LogConfig, java_double_str,
                                          validate_topic_configs)

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1

# name -> (a valid value, the boundary value(s) accepted, (refused value, Kafka's message))
# from Kafka 3.x core/src/main/scala/kafka/log/LogConfig.scala (configDef) and ConfigDef.java
TABLE: dict[str, tuple[str, tuple[str, ...], tuple[str, str]]] = {
    "segment.bytes": ("1048576", ("14", str(INT_MAX)),
                      ("13", "Invalid value 13 for configuration segment.bytes: Value must be at least 14")),
    "segment.ms": ("3600000", ("1", str(LONG_MAX)),
                   ("0", "Invalid value 0 for configuration segment.ms: Value must be at least 1")),
    "segment.jitter.ms": ("1000", ("0",),
                          ("-1", "Invalid value -1 for configuration segment.jitter.ms: Value must be at least 0")),
    "segment.index.bytes": ("1048576", ("4",),
                            ("3", "Invalid value 3 for configuration segment.index.bytes: Value must be at least 4")),
    "flush.messages": ("10000", ("1",),
                       ("0", "Invalid value 0 for configuration flush.messages: Value must be at least 1")),
    "flush.ms": ("1000", ("0",),
                 ("-1", "Invalid value -1 for configuration flush.ms: Value must be at least 0")),
    "retention.bytes": ("1073741824", ("-1", str(-(2**63))),
                        ("1.5", "Invalid value 1.5 for configuration retention.bytes: Not a number of type LONG")),
    "retention.ms": ("86400000", ("-1",),
                     ("-2", "Invalid value -2 for configuration retention.ms: Value must be at least -1")),
    "max.message.bytes": ("2097152", ("0",),
                          ("-1", "Invalid value -1 for configuration max.message.bytes: Value must be at least 0")),
    "index.interval.bytes": ("4096", ("0",),
                             ("-1", "Invalid value -1 for configuration index.interval.bytes: Value must be at least 0")),
    "delete.retention.ms": ("3600000", ("0",),
                            ("-1", "Invalid value -1 for configuration delete.retention.ms: Value must be at least 0")),
    "min.compaction.lag.ms": ("1000", ("0",),
                              ("-1", "Invalid value -1 for configuration min.compaction.lag.ms: Value must be at least 0")),
    "max.compaction.lag.ms": ("3600000", ("1",),
                              ("0", "Invalid value 0 for configuration max.compaction.lag.ms: Value must be at least 1")),
    "file.delete.delay.ms": ("1000", ("0",),
                             ("-1", "Invalid value -1 for configuration file.delete.delay.ms: Value must be at least 0")),
    "min.cleanable.dirty.ratio": ("0.3", ("0", "1", "1.0"),
                                  ("1.01", "Invalid value 1.01 for configuration min.cleanable.dirty.ratio: "
                                           "Value must be no more than 1")),
    "cleanup.policy": ("compact", ("delete", "compact,delete", "delete , compact", ""),
                       ("compact,zzz", "Invalid value zzz for configuration cleanup.policy: "
                                       "String must be one of: compact, delete")),
    "unclean.leader.election.enable": ("true", ("FALSE",),
                                       ("yes", "Invalid value yes for configuration unclean.leader.election.enable: "
                                               "Expected value to be either true or false")),
    "min.insync.replicas": ("2", ("1",),
                            ("0", "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1")),
    "compression.type": ("zstd", ("uncompressed", "lz4", "snappy", "gzip", "producer"),
                         ("zzz", "Invalid value zzz for configuration compression.type: String must be one of: "
                                 "uncompressed, zstd, lz4, snappy, gzip, producer")),
    "preallocate": ("false", ("true",),
                    ("1", "Invalid value 1 for configuration preallocate: Expected value to be either true or false")),
    "message.timestamp.type": ("LogAppendTime", ("CreateTime",),
                               ("createtime", "Invalid value createtime for configuration message.timestamp.type: "
                                              "String must be one of: CreateTime, LogAppendTime")),
    "leader.replication.throttled.replicas": ("0:1,1:2", ("*", ""),
                                              ("0:1,x", "Invalid value [0:1, x] for configuration "
                                               "leader.replication.throttled.replicas: leader.replication.throttled."
                                               "replicas must be the literal '*' or a list of replicas in the "
                                               "following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")),
    "follower.replication.throttled.replicas": ("0:1", ("*",),
                                                ("*,0:1", "Invalid value [*, 0:1] for configuration "
                                                 "follower.replication.throttled.replicas: follower.replication."
                                                 "throttled.replicas must be the literal '*' or a list of replicas in "
                                                 "the following format: [partitionId]:[brokerId],[partitionId]:"
                                                 "[brokerId],...")),
    "message.downconversion.enable": ("false", ("true",),
                                      ("on", "Invalid value on for configuration message.downconversion.enable: "
                                             "Expected value to be either true or false")),
}


def test_the_table_covers_every_topic_config_kafkalike_knows() -> None:
    """Every key of the validation table has a row here, and no row names an unknown key."""
    assert sorted(TABLE) == sorted(TOPIC_CONFIG_KEYS)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_a_valid_value_and_the_boundary_are_accepted(name: str) -> None:
    """A typical value and the edge of Kafka's range / valid values pass the validation."""
    valid, boundaries, _ = TABLE[name]
    for value in (valid, *boundaries):
        assert validate_topic_configs({name: value}, 3) is None, value


@pytest.mark.parametrize("name", sorted(TABLE))
def test_just_past_the_boundary_is_refused_with_kafkas_message(name: str) -> None:
    """The first value outside Kafka's ConfigDef is refused with its ConfigException text."""
    refused, message = TABLE[name][2]
    assert validate_topic_configs({name: refused}, 3) == message


@pytest.mark.parametrize("props, message", [
    ({"segment.bytes": "1"}, "Invalid value 1 for configuration segment.bytes: Value must be at least 14"),
    ({"max.message.bytes": "-1"}, "Invalid value -1 for configuration max.message.bytes: Value must be at least 0"),
    ({"retention.ms": "-5"}, "Invalid value -5 for configuration retention.ms: Value must be at least -1"),
    ({"compression.type": "zzz"}, "Invalid value zzz for configuration compression.type: String must be one of: "
                                  "uncompressed, zstd, lz4, snappy, gzip, producer"),
])
def test_the_configs_of_the_issue_are_refused(props: dict, message: str) -> None:
    """The four values once accepted (docs/robustness.md) are refused, each with Kafka's message."""
    assert validate_topic_configs(props, 3) == message


def test_min_insync_replicas_above_the_replication_factor_is_refused() -> None:
    """min.insync.replicas 5 on RF 3 is refused (kafkalike's addition); 3 on RF 3 is accepted."""
    assert validate_topic_configs({"min.insync.replicas": "5"}, 3) == (
        "Invalid value 5 for configuration min.insync.replicas: "
        "Value must be no more than the topic's replication factor (3)")
    assert validate_topic_configs({"min.insync.replicas": "3"}, 3) is None
    assert validate_topic_configs({"min.insync.replicas": "5"}, None) is None  # RF unknown: ranges only


@pytest.mark.parametrize("name, raw, kind", [
    ("segment.bytes", "2147483648", "INT"),  # past Integer.MAX_VALUE
    ("segment.ms", "9223372036854775808", "LONG"),  # past Long.MAX_VALUE
    ("retention.ms", "1_000", "LONG"),  # Python's int() would take it, Java's parseLong does not
    ("retention.ms", "soon", "LONG"),
    ("segment.bytes", "", "INT"),
    ("min.cleanable.dirty.ratio", "half", "DOUBLE"),
])
def test_values_that_are_not_numbers_of_the_type_are_refused(name: str, raw: str, kind: str) -> None:
    """What Java's Integer/Long/Double parsing refuses gives ConfigDef's "Not a number" text."""
    assert validate_topic_configs({name: raw}, 3) == \
        f"Invalid value {raw} for configuration {name}: Not a number of type {kind}"


def test_values_are_trimmed_as_java_does() -> None:
    """Surrounding whitespace is ignored, as ConfigDef.parseType trims before parsing."""
    assert validate_topic_configs({"segment.bytes": " 1048576 ", "compression.type": " gzip\t"}, 3) is None


def test_an_unknown_name_is_refused_first() -> None:
    """An unknown name wins over a bad value (LogConfig.validateNames runs first)."""
    assert validate_topic_configs({"segment.bytes": "1", "segment.bytez": "1"}, 3) == \
        "Unknown topic config name: segment.bytez"


def test_the_first_bad_key_is_reported_in_configdef_order() -> None:
    """With two bad values the one Kafka's ConfigDef defines first is reported."""
    assert validate_topic_configs({"compression.type": "zzz", "segment.bytes": "1"}, 3) == \
        "Invalid value 1 for configuration segment.bytes: Value must be at least 14"


def test_min_compaction_lag_above_max_compaction_lag_is_refused() -> None:
    """LogConfig.validateValues: min.compaction.lag.ms > max.compaction.lag.ms, also against the base."""
    assert validate_topic_configs({"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}, 3) == \
        "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"
    assert validate_topic_configs({"min.compaction.lag.ms": "10"}, 3, LogConfig(max_compaction_lag_ms=5)) == \
        "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"


def test_none_values_count_as_unset() -> None:
    """A None value (a deleted key) is not validated."""
    assert validate_topic_configs({"segment.bytes": None}, 3) is None


def test_doubles_print_as_java_prints_them() -> None:
    """Messages show doubles as Java's Double.toString does."""
    assert [java_double_str(v) for v in (1.5, 2.0, 1e9, 1.25e-5, -3.0)] == \
        ["1.5", "2.0", "1.0E9", "1.25E-5", "-3.0"]
    assert validate_topic_configs({"min.cleanable.dirty.ratio": "2"}, 3) == \
        "Invalid value 2.0 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"
