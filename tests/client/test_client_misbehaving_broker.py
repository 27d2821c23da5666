"""KafkaProducer against a broker that loses one response or answers a sequence error on
purpose (misbehaving_broker.py says why these cannot run against a real broker)."""

from __future__ import annotations

import pytest
import trio

from kafkalike.client import KafkaError, KafkaProducer
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.records import decode_batches
from misbehaving_broker import TinyCluster, start_tiny_cluster

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _bootstrap(cluster: TinyCluster) -> list[str]:
    return [f"{h}:{p}" for h, p in cluster.brokers.values()]


@pytest.mark.parametrize("idempotent", [False, True])
async def test_lost_produce_response_duplicates_unless_idempotent(idempotent: bool) -> None:
    """The broker writes a batch and hangs up before answering; the producer retries. Without
    idempotence the record is written twice (Kafka's documented at-least-once); with it the
    retried batch carries the same producer id and sequence and is written once."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("dup", 1)
        acks = "all" if idempotent else 1
        async with KafkaProducer(_bootstrap(cluster), acks=acks, retry_backoff_ms=10,
                                 enable_idempotence=idempotent) as producer:
            await producer.send("dup", b"first")
            cluster.lose_response.add(ApiKey.PRODUCE)
            meta = await producer.send("dup", b"second")
            await producer.send("dup", b"third")
            batches = decode_batches(cluster.records("dup", 0))
            values = [r.value for b in batches for r in b.records]
            if idempotent:
                assert values == [b"first", b"second", b"third"]
                assert meta.offset == 1
                assert {b.producer_id for b in batches} == {producer.producer_id} == {4001}
                assert [b.base_sequence for b in batches] == [0, 1, 2]
            else:
                assert values == [b"first", b"second", b"second", b"third"]
                assert {b.producer_id for b in batches} == {-1}
        nursery.cancel_scope.cancel()


async def test_out_of_order_sequence_resets_the_producer_id() -> None:
    """OUT_OF_ORDER_SEQUENCE_NUMBER fails that batch; the producer takes a new producer id
    and the next records start again at sequence 0."""
    async with trio.open_nursery() as nursery:
        cluster, _nodes = await start_tiny_cluster(nursery, 1)
        cluster.add_topic("oos", 1)
        async with KafkaProducer(_bootstrap(cluster), acks="all",
                                 enable_idempotence=True) as producer:
            await producer.send("oos", b"a")
            cluster.errors[("oos", 0)] = [ErrorCode.out_of_order_sequence_number]
            with pytest.raises(KafkaError, match="OUT_OF_ORDER_SEQUENCE_NUMBER"):
                await producer.send("oos", b"b")
            await producer.send("oos", b"c")
            batches = decode_batches(cluster.records("oos", 0))
            assert [(b.producer_id, b.base_sequence) for b in batches] == [(4001, 0),
                                                                           (4002, 0)]
        nursery.cancel_scope.cancel()
