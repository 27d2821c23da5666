"""InitProducerId: producer ids from /latest_producer_id_block, unique across brokers."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from kafkalike.broker.kafka_server import KafkaServer
from kafkalike.coordination import ZooKeeperClient
from tests.broker.test_kafka_server import make_config


async def test_producer_ids_come_from_zookeeper_blocks_and_never_repeat(
        tmp_path: Path, zk_chroot_connect: str, zk_client: ZooKeeperClient) -> None:
    """Two brokers claim distinct blocks of 1000 and hand out distinct ids, as Kafka's
    ZkProducerIdManager does; the znode holds Kafka's JSON."""
    a = KafkaServer(make_config(tmp_path / "a", zk_chroot_connect, broker_id=1))
    b = KafkaServer(make_config(tmp_path / "b", zk_chroot_connect, broker_id=2))
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        ids_a = [await a.producer_id_manager.generate_producer_id() for _ in range(3)]
        ids_b = [await b.producer_id_manager.generate_producer_id() for _ in range(3)]
        assert ids_a == [0, 1, 2]
        assert ids_b == [1000, 1001, 1002]
        doc = json.loads((await zk_client.get("/latest_producer_id_block"))[0])
        assert doc == {"version": 1, "broker": 2, "block_start": "1000", "block_end": "1999"}
        a.request_shutdown()
        b.request_shutdown()
