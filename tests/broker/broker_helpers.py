"""Helpers for broker request-path tests: an in-process KafkaServer (trio) against the real
ZooKeeper ensemble, a kafkalike client connection over real TCP, controller requests
(LeaderAndIsr, StopReplica, UpdateMetadata) built by hand, and record batches."""

from __future__ import annotations

import datetime
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.kafka_server import KafkaServer
from kafkalike.client.connection import KafkaConnection
from kafkalike.protocol.leader_and_isr import (LeaderAndIsrLiveLeader, LeaderAndIsrPartitionState,
                                               LeaderAndIsrRequest, LeaderAndIsrTopicState)
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from kafkalike.protocol.stop_replica import (StopReplicaPartitionState, StopReplicaRequest,
                                             StopReplicaTopicState)
from kafkalike.protocol.update_metadata import (UpdateMetadataBroker, UpdateMetadataEndpoint,
                                                UpdateMetadataPartitionState, UpdateMetadataRequest,
                                                UpdateMetadataTopicState)


def make_config(tmp_path: Path, zk: str, broker_id: int = 1, **extra: str) -> KafkaConfig:
    """A broker config on 127.0.0.1, port 0, logs under tmp_path, 4 s ZooKeeper sessions."""
    props = {
        "broker.id": str(broker_id),
        "listeners": "PLAINTEXT://127.0.0.1:0",
        "log.dirs": str(tmp_path / f"logs-{broker_id}"),
        "zookeeper.connect": zk,
        "zookeeper.session.timeout.ms": "4000",
    }
    props.update({k.replace("_", "."): v for k, v in extra.items()})
    return KafkaConfig.from_mapping(props)


@asynccontextmanager
async def running_broker(tmp_path: Path, zk: str, broker_id: int = 1, **extra: str) -> AsyncIterator[KafkaServer]:
    """A started KafkaServer; shut down cleanly when the block ends (also on failure)."""
    server = KafkaServer(make_config(tmp_path, zk, broker_id, **extra))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        try:
            # this broker's own controller (every KafkaServer runs the election) sends its first
            # UpdateMetadata soon after start-up; wait for it so the controller epoch the
            # hand-built requests below default to is the current one (one controller epoch
            # fences LeaderAndIsr, StopReplica and UpdateMetadata alike, as in Kafka)
            with trio.move_on_after(30):
                while server.metadata_cache.updates == 0:
                    await trio.sleep(0.02)
            yield server
        finally:
            server.request_shutdown()


def port_of(server: KafkaServer) -> int:
    return server.bound_listeners[0].port


@asynccontextmanager
async def connect(server: KafkaServer) -> AsyncIterator[KafkaConnection]:
    """A kafkalike client connection to the broker over TCP (ApiVersions negotiated)."""
    async with trio.open_nursery() as nursery:
        conn = await KafkaConnection.connect("127.0.0.1", port_of(server), nursery=nursery,
                                             request_timeout_ms=20000)
        try:
            yield conn
        finally:
            await conn.aclose()


def current_controller_epoch(server: KafkaServer) -> int:
    """The controller epoch ``server`` fences controller requests with (at least 1)."""
    return max(1, server.replica_manager.controller_epoch)


def leader_and_isr(server: KafkaServer, topic: str, partitions: dict[int, tuple[int, Sequence[int], Sequence[int]]],
                   leader_epoch: int = 0, controller_epoch: int | None = None, broker_epoch: int | None = None,
                   leaders: dict[int, KafkaServer] | None = None, zk_version: int = 0,
                   version: int = 6) -> LeaderAndIsrRequest:
    """LeaderAndIsr for ``partitions``: p -> (leader, isr, replicas), in the layout of
    ``version`` (v0-v1 ungrouped, v2+ per topic). ``controller_epoch`` defaults to the
    broker's current one (``current_controller_epoch``)."""
    controller_epoch = current_controller_epoch(server) if controller_epoch is None else controller_epoch
    states = tuple(LeaderAndIsrPartitionState(
        topic_name=topic, partition_index=p, controller_epoch=controller_epoch, leader=leader, leader_epoch=leader_epoch,
        isr=tuple(isr), zk_version=zk_version, replicas=tuple(replicas), adding_replicas=(),
        removing_replicas=(), is_new=False) for p, (leader, isr, replicas) in partitions.items())
    live = tuple(LeaderAndIsrLiveLeader(broker_id=b, host_name="127.0.0.1", port=port_of(s))
                 for b, s in (leaders or {}).items())
    if version < 2:
        return LeaderAndIsrRequest(controller_id=99, controller_epoch=controller_epoch,
                                   ungrouped_partition_states=states, topic_states=(), live_leaders=live)
    return LeaderAndIsrRequest(
        controller_id=99, controller_epoch=controller_epoch,
        broker_epoch=server.broker_epoch if broker_epoch is None else broker_epoch,
        ungrouped_partition_states=(),
        topic_states=(LeaderAndIsrTopicState(topic_name=topic, partition_states=states),),
        live_leaders=live)


def stop_replica(server: KafkaServer, topic: str, partitions: Sequence[int], delete: bool,
                 leader_epoch: int = -1, controller_epoch: int | None = None) -> StopReplicaRequest:
    """StopReplica v3 for ``partitions`` of ``topic`` (controller epoch: the broker's current one)."""
    controller_epoch = current_controller_epoch(server) if controller_epoch is None else controller_epoch
    return StopReplicaRequest(
        controller_id=99, controller_epoch=controller_epoch, broker_epoch=server.broker_epoch,
        topic_states=(StopReplicaTopicState(topic_name=topic, partition_states=tuple(
            StopReplicaPartitionState(partition_index=p, leader_epoch=leader_epoch, delete_partition=delete)
            for p in partitions)),))


def update_metadata(servers: Sequence[KafkaServer], topic: str,
                    partitions: dict[int, tuple[int, Sequence[int], Sequence[int]]],
                    leader_epoch: int = 0, controller_epoch: int | None = None) -> UpdateMetadataRequest:
    """UpdateMetadata v7 listing ``servers`` as live brokers and ``partitions`` of ``topic``
    (controller epoch: the highest current one among ``servers``)."""
    if controller_epoch is None:
        controller_epoch = max(current_controller_epoch(s) for s in servers)
    states = tuple(UpdateMetadataPartitionState(
        partition_index=p, controller_epoch=controller_epoch, leader=leader, leader_epoch=leader_epoch,
        isr=tuple(isr), zk_version=0, replicas=tuple(replicas), offline_replicas=())
        for p, (leader, isr, replicas) in partitions.items())
    brokers = tuple(UpdateMetadataBroker(id=s.broker_id, endpoints=(UpdateMetadataEndpoint(
        port=port_of(s), host="127.0.0.1", listener="PLAINTEXT", security_protocol=0),), rack=None)
        for s in servers)
    return UpdateMetadataRequest(
        controller_id=99, controller_epoch=controller_epoch, broker_epoch=-1,
        topic_states=(UpdateMetadataTopicState(topic_name=topic, partition_states=states),) if states else (),
        live_brokers=brokers)


def batch(values: Sequence[bytes], key: bytes | None = None) -> bytes:
    """One uncompressed v2 batch with these values (CreateTime = now)."""
    now = int(time.time() * 1000)
    return build_batch([SimpleRecord(value=v, key=key, timestamp=now) for v in values])


def ms(n: int) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=n)


async def produce(conn: KafkaConnection, topic: str, partition: int, records: bytes | None,
                  acks: int = 1, timeout_ms: int = 5000, version: int = 9) -> Any:
    """Send one Produce; returns the partition's response entity (None for acks=0)."""
    from kafkalike.protocol.api_keys import ApiKey
    resp = await conn.call(ApiKey.PRODUCE, api_version=version, acks=acks, timeout=timeout_ms,
                           transactional_id=None,
                           topic_data=[{"name": topic, "partition_data": [{"index": partition, "records": records}]}])
    if resp is None:
        return None
    return resp.responses[0].partition_responses[0]


async def create_filled_partition(server: KafkaServer, topic: str, batches: int) -> None:
    """Topic ``topic`` with one partition whose only replica is ``server`` (CreateTopics v7 with
    a manual assignment), then, once ``server`` hosts it (at most 20 s), ``batches`` batches of
    4 records of 16000 bytes each (~64 KB a batch) produced to it with acks=1 (the partition
    the reassignment-throttle tests move)."""
    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.storage import TopicPartition

    async with connect(server) as conn:
        resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False, topics=[
            {"name": topic, "num_partitions": -1, "replication_factor": -1,
             "assignments": [{"partition_index": 0, "broker_ids": [server.config.broker_id]}], "configs": []}])
        assert resp.topics[0].error_code == 0
        with trio.fail_after(20):
            while TopicPartition(topic, 0) not in server.replica_manager.partitions:
                await trio.sleep(0.05)
        for _ in range(batches):
            await produce(conn, topic, 0, batch([b"x" * 16000] * 4), acks=1)


async def fetch(conn: KafkaConnection, topic: str, partition: int, offset: int, *, max_wait_ms: int = 0,
                min_bytes: int = 1, max_bytes: int = 1 << 20, partition_max_bytes: int = 1 << 20,
                replica_id: int = -1, current_leader_epoch: int = -1, version: int = 12) -> Any:
    """Send one Fetch for one partition; returns the partition's response data."""
    from kafkalike.protocol.api_keys import ApiKey
    resp = await conn.call(ApiKey.FETCH, api_version=version, replica_id=replica_id, max_wait=max_wait_ms,
                           min_bytes=min_bytes, max_bytes=max_bytes, isolation_level=0, session_id=0,
                           session_epoch=-1,
                           topics=[{"topic": topic, "partitions": [{
                               "partition": partition, "fetch_offset": offset, "current_leader_epoch": current_leader_epoch,
                               "log_start_offset": -1, "partition_max_bytes": partition_max_bytes}]}])
    return resp.responses[0].partitions[0]


def values_of(records: Any) -> list[bytes | None]:
    """Values of every complete record in a fetched records blob (uncompressed batches)."""
    from kafkalike.protocol.record_batch import RecordBatch, iter_simple_records
    out: list[bytes | None] = []
    if not records:
        return out
    mv = memoryview(bytes(records))
    pos = 0
    while pos + 61 <= len(mv):
        b = RecordBatch(mv, pos)
        if b.end_position > len(mv):
            break
        out.extend(r.value for _, r in iter_simple_records(b))
        pos = b.end_position
    return out


async def zk_json(zk: Any, path: str) -> Any:
    """The JSON of ``path`` read after a sync (the broker wrote through another server)."""
    import json
    await zk.sync(path)
    return json.loads((await zk.get(path))[0])


async def zk_exists(zk: Any, path: str) -> bool:
    """Whether ``path`` exists, after a sync."""
    await zk.sync("/")
    return await zk.exists(path) is not None


def has_controller(server: KafkaServer) -> bool:
    """True once the controller is wired into KafkaServer (it then elects itself in a
    one-broker test and answers admin changes with LeaderAndIsr/UpdateMetadata)."""
    return getattr(server, "controller", None) is not None


async def three_brokers_with_topic(stack: Any, tmp_path: Path, zk: str, topic: str, partitions: int = 1,
                                   **extra: str) -> dict[int, KafkaServer]:
    """Brokers 1-3 (``extra``: running_broker's config overrides) entered on ``stack`` (an
    AsyncExitStack), an RF-3 ``topic`` of ``partitions`` created with CreateTopics v7 through
    broker 1, and every partition hosted on every broker (20 s, else trio.TooSlowError).
    pytest.skip when the controller is not wired into KafkaServer."""
    import pytest
    import trio

    from kafkalike.protocol.api_keys import ApiKey
    from kafkalike.storage import TopicPartition

    servers = {i: await stack.enter_async_context(running_broker(tmp_path, zk, broker_id=i, **extra))
               for i in (1, 2, 3)}
    if not has_controller(servers[1]):
        pytest.skip("needs the controller wired into KafkaServer")
    conn = await stack.enter_async_context(connect(servers[1]))
    resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False, topics=[
        {"name": topic, "num_partitions": partitions, "replication_factor": 3, "assignments": [], "configs": []}])
    assert resp.topics[0].error_code == 0
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    with trio.fail_after(20):
        while not all(tp in s.replica_manager.partitions for s in servers.values() for tp in tps):
            await trio.sleep(0.02)
    return servers
