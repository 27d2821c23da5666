"""Kafka's default partitioner: murmur2 equals Kafka's Utils.murmur2 and kafka-python's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from kafkalike.client.partitioner import murmur2, partition_for_key, to_positive

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Values from Kafka's clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java
JAVA_CASES = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize("key", sorted(JAVA_CASES))
def test_murmur2_matches_kafkas_java_test_vectors(key: bytes) -> None:
    """The signed 32-bit hash equals what Kafka's own unit test pins."""
    assert murmur2(key) == JAVA_CASES[key]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=80))
def test_murmur2_matches_kafka_python(key: bytes) -> None:
    """Same 32 bits as kafka-python's murmur2 for any key."""
    assert murmur2(key) & 0xFFFFFFFF == kafka_python_murmur2(key) & 0xFFFFFFFF


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=40), st.integers(1, 1000))
def test_partition_for_key_matches_kafka_python_default_partitioner(key: bytes,
                                                                    partitions: int) -> None:
    """A key lands on the partition kafka-python's DefaultPartitioner picks."""
    expected = (kafka_python_murmur2(key) & 0x7FFFFFFF) % partitions
    assert partition_for_key(key, partitions) == expected


def test_to_positive_clears_the_sign_bit_instead_of_negating() -> None:
    """Utils.toPositive(-1) is 0x7fffffff, not 1 (abs() would disagree with Kafka)."""
    assert to_positive(-1) == 0x7FFFFFFF
    assert to_positive(-2147483648) == 0


def test_partition_for_key_refuses_zero_partitions() -> None:
    """A topic without partitions is a ValueError, not a ZeroDivisionError."""
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for_key(b"k", 0)
