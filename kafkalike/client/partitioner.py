"""Kafka's default partitioner: murmur2 of the key bytes, made positive, modulo partitions.

Holds ``murmur2()`` (Kafka's ``org.apache.kafka.common.utils.Utils.murmur2``: MurmurHash2,
seed 0x9747b28c, returning a signed 32-bit int as Java does), ``to_positive()``
(``Utils.toPositive``: ``n & 0x7fffffff``) and ``partition_for_key()``
(``BuiltInPartitioner.partitionForKey``), so a key lands on the same partition whether
kafkalike's client, the Java client, kafka-python or librdkafka's ``murmur2_random``
partitioner (confluent-kafka's default is ``consistent_random``, i.e. CRC32: set
``partitioner=murmur2_random`` there to agree) produced it.

Records without a key use the sticky partitioner of KIP-480 (kafkalike.client.producer).
"""

from __future__ import annotations

__all__ = ["murmur2", "to_positive", "partition_for_key"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24
_MASK = 0xFFFFFFFF


def murmur2(data: bytes | bytearray | memoryview) -> int:
    """MurmurHash2 of ``data`` as Kafka computes it; a signed 32-bit int."""
    data = bytes(data)
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end4 = length & ~3
    for i in range(0, end4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> _R
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra >= 3:
        h ^= data[end4 + 2] << 16
    if extra >= 2:
        h ^= data[end4 + 1] << 8
    if extra >= 1:
        h ^= data[end4]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(number: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit of a 32-bit int (not abs())."""
    return number & 0x7FFFFFFF


def partition_for_key(key: bytes | bytearray | memoryview, num_partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` among ``num_partitions``.

    Raises ValueError when ``num_partitions`` < 1.
    """
    if num_partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {num_partitions}")
    return to_positive(murmur2(key)) % num_partitions
