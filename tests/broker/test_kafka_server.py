"""KafkaServer start-up against a real ZooKeeper: registration, ids, epochs, shutdown."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.kafka_server import BrokerStartupError, KafkaServer
from kafkalike.coordination import ZooKeeperClient


def make_config(tmp_path: Path, zk: str, broker_id: int = 1, **extra: str) -> KafkaConfig:
    props = {
        "broker.id": str(broker_id),
        "listeners": "PLAINTEXT://127.0.0.1:0",
        "log.dirs": str(tmp_path / f"logs-{broker_id}"),
        "zookeeper.connect": zk,
        "zookeeper.session.timeout.ms": "4000",
    }
    props.update(extra)
    return KafkaConfig.from_mapping(props)


async def test_registration_json_equals_kafkas_field_by_field(tmp_path: Path, zk_chroot_connect: str,
                                                              zk_client: ZooKeeperClient) -> None:
    """/brokers/ids/<id> is ephemeral, carries Kafka's version-5 keys, and its czxid is the epoch."""
    server = KafkaServer(make_config(tmp_path, zk_chroot_connect, broker_id=7))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        data, stat = await zk_client.get("/brokers/ids/7")
        doc = json.loads(data)
        port = server.bound_listeners[0].port
        assert set(doc) == {"features", "listener_security_protocol_map", "endpoints", "jmx_port",
                            "port", "host", "version", "timestamp"}
        assert doc["version"] == 5
        assert doc["endpoints"] == [f"PLAINTEXT://127.0.0.1:{port}"]
        assert doc["listener_security_protocol_map"] == {"PLAINTEXT": "PLAINTEXT"}
        assert (doc["host"], doc["port"], doc["jmx_port"], doc["features"]) == ("127.0.0.1", port, -1, {})
        assert isinstance(doc["timestamp"], str) and doc["timestamp"].isdigit()
        assert stat.ephemeral and stat.czxid == server.broker_epoch
        cluster_id = json.loads((await zk_client.get("/cluster/id"))[0])
        assert cluster_id["version"] == "1" and len(cluster_id["id"]) == 22
        for path in ["/brokers/topics", "/brokers/seqid", "/admin/delete_topics", "/config/topics",
                     "/config/changes", "/isr_change_notification", "/latest_producer_id_block"]:
            assert await zk_client.exists(path) is not None, path
        server.request_shutdown()
    assert await zk_client.exists("/brokers/ids/7") is None


async def test_duplicate_broker_id_is_refused(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A second broker with a live broker's id stops start-up with a clear one-line error."""
    first = KafkaServer(make_config(tmp_path / "a", zk_chroot_connect, broker_id=1))
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        second = KafkaServer(make_config(tmp_path / "b", zk_chroot_connect, broker_id=1))
        with pytest.raises(BrokerStartupError, match=r"broker\.id 1 is already registered") as e:
            await second.run()
        assert "\n" not in str(e.value)
        first.request_shutdown()


async def test_session_expiry_reregisters_with_new_broker_epoch(
        tmp_path: Path, zk_chroot_connect: str, zk_client: ZooKeeperClient,
        zk_expire: Callable[[ZooKeeperClient], Awaitable[None]]) -> None:
    """After its session expires the broker registers again; the new czxid is the new epoch."""
    server = KafkaServer(make_config(tmp_path, zk_chroot_connect, broker_id=2))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        old_epoch = server.broker_epoch
        assert server.zk is not None
        await zk_expire(server.zk)
        with trio.fail_after(20):
            while server.broker_epoch == old_epoch:
                await trio.sleep(0.05)
        _, stat = await zk_client.get("/brokers/ids/2")
        assert stat.czxid == server.broker_epoch > old_epoch
        server.request_shutdown()


async def test_generated_broker_id_is_kept_in_meta_properties(tmp_path: Path, zk_chroot_connect: str) -> None:
    """broker.id=-1 takes an id above reserved.broker.max.id and reuses it after a restart."""
    cfg = make_config(tmp_path, zk_chroot_connect, broker_id=-1)
    ids = []
    for _ in range(2):
        server = KafkaServer(cfg)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            ids.append(server.broker_id)
            server.request_shutdown()
    assert ids[0] == ids[1] > 1000
    meta = (tmp_path / "logs--1" / "meta.properties").read_text()
    assert f"broker.id={ids[0]}" in meta


async def test_log_dir_of_another_broker_is_refused(tmp_path: Path, zk_chroot_connect: str) -> None:
    """meta.properties naming another broker id stops start-up with Kafka's message."""
    server = KafkaServer(make_config(tmp_path, zk_chroot_connect, broker_id=3))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        server.request_shutdown()
    moved = make_config(tmp_path, zk_chroot_connect, broker_id=4, **{"log.dirs": str(tmp_path / "logs-3")})
    with pytest.raises(BrokerStartupError, match=r"^Configured broker\.id 4 doesn't match stored broker\.id Some\(3\)"):
        await KafkaServer(moved).run()


async def test_taken_listener_port_is_a_one_line_startup_error(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A listener port already bound by another socket stops start-up with one line naming the
    listener (before: trio's ExceptionGroup escaped as a nested traceback)."""
    taken = trio.socket.socket()
    await taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        server = KafkaServer(make_config(tmp_path, zk_chroot_connect, broker_id=3,
                                         listeners=f"PLAINTEXT://127.0.0.1:{port}"))
        with pytest.raises(BrokerStartupError, match=rf"^cannot bind listeners .*127\.0\.0\.1:{port}.*in use"):
            await server.run()
    finally:
        taken.close()
