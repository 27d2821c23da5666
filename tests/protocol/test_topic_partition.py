"""Tests for kafkalike.protocol.topic_partition: one TopicPartition value for every layer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.protocol.topic_partition import TopicPartition


def test_every_layer_names_the_same_class() -> None:
    """zk_data, checkpoints, client.cluster and kafkalike.client re-export the one class, so values are equal across layers."""
    from kafkalike import client
    from kafkalike.client import cluster
    from kafkalike.coordination import zk_data
    from kafkalike.storage import checkpoints

    assert zk_data.TopicPartition is checkpoints.TopicPartition is cluster.TopicPartition \
        is client.TopicPartition is TopicPartition
    assert {zk_data.TopicPartition("a", 1), checkpoints.TopicPartition("a", 1)} == {TopicPartition("a", 1)}


@settings(max_examples=100, deadline=None)
@given(topic=st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True), partition=st.integers(0, 2**31 - 1))
def test_dir_name_and_dict_round_trip(topic: str, partition: int) -> None:
    """str() is Kafka's "<topic>-<partition>" directory name and parses back; to_dict/from_dict round-trip."""
    tp = TopicPartition(topic, partition)
    assert str(tp) == f"{topic}-{partition}"
    assert TopicPartition.parse_dir_name(str(tp)) == tp
    assert TopicPartition.from_dict(tp.to_dict(), "x") == tp


def test_values_order_by_topic_then_partition() -> None:
    """sorted() orders by topic name, then partition number."""
    got = sorted([TopicPartition("b", 0), TopicPartition("a", 10), TopicPartition("a", 2)])
    assert got == [TopicPartition("a", 2), TopicPartition("a", 10), TopicPartition("b", 0)]


class _DecodeError(ValueError):
    pass


@pytest.mark.parametrize(("obj", "message"), [
    ([1], r"^/p: expected \{topic, partition\}, got \[1\]$"),
    ({"topic": "t"}, r"^/p: missing key 'partition'$"),
    ({"topic": 3, "partition": 1}, r"^/p: 'topic' has the wrong type: 3$"),
    ({"topic": "t", "partition": True}, r"^/p: 'partition' must be an integer, got True$"),
])
def test_from_dict_raises_the_callers_error_type(obj: object, message: str) -> None:
    """Malformed input raises the error class the caller passes (zk_data: ZNodeDecodeError), naming what was wrong."""
    with pytest.raises(_DecodeError, match=message):
        TopicPartition.from_dict(obj, "/p", _DecodeError)


def test_parse_dir_name_refuses_names_without_a_partition() -> None:
    """A directory name without a "-<int>" tail is a ValueError."""
    for name in ("orders", "orders-", "-3", "orders-x"):
        with pytest.raises(ValueError, match="not a partition directory name"):
            TopicPartition.parse_dir_name(name)
