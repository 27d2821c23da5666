"""partition.metadata (KIP-516): each partition dir holds its topic id in Kafka's format, written
when a LeaderAndIsr v5+ names the id, read back at start-up; a LeaderAndIsr naming another id
gets INCONSISTENT_TOPIC_ID for that partition; a malformed file takes only its partition offline."""

from __future__ import annotations

import uuid
from pathlib import Path

import attrs
import pytest
import trio

from kafkalike.coordination import zk_data as zd
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import KafkaStorageError, LogManager, TopicPartition
from kafkalike.storage.partition_metadata_file import PartitionMetadataFile, write_partition_metadata
from tests.broker.broker_helpers import connect, has_controller, leader_and_isr, running_broker

TOPIC_ID = uuid.UUID("5a1b4e0c-9c1e-4b7e-8f3a-2d6c1f0e9b42")


def test_file_holds_kafkas_two_lines_and_reads_back(tmp_path: Path) -> None:
    """The file is exactly "version: 0\\ntopic_id: <base64 id>" (Kafka's PartitionMetadata.encode) and reads back."""
    f = PartitionMetadataFile(tmp_path)
    f.write(TOPIC_ID)
    assert (tmp_path / "partition.metadata").read_bytes() == (
        b"version: 0\ntopic_id: " + zd.uuid_to_base64(TOPIC_ID).encode())
    assert f.read() == TOPIC_ID
    assert not (tmp_path / "partition.metadata.tmp").exists()


@pytest.mark.parametrize("text", ["", "version 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA", "version: x\n",
                                  "version: 0\n", "version: 0\ntopic_id: tooshort",
                                  "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA", "version: -1\ntopic_id: x"])
def test_malformed_files_raise_a_storage_error_naming_the_file(tmp_path: Path, text: str) -> None:
    """Bad version lines, bad or zero ids raise KafkaStorageError with the file's path (Kafka's IOException messages)."""
    (tmp_path / "partition.metadata").write_text(text)
    with pytest.raises(KafkaStorageError) as info:
        PartitionMetadataFile(tmp_path).read()
    assert info.value.path == tmp_path / "partition.metadata"


def test_log_manager_loads_ids_and_a_malformed_file_takes_only_its_partition_offline(tmp_path: Path) -> None:
    """At start-up each partition's id comes from its file; a malformed file makes that partition offline, the others load."""
    lm = LogManager([tmp_path / "d"])
    lm.startup()
    good, bad, none = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0)
    for tp in (good, bad, none):
        lm.get_or_create_log(tp)
    assert lm.assign_topic_id(good, TOPIC_ID) and lm.assign_topic_id(bad, TOPIC_ID)
    assert not lm.assign_topic_id(good, uuid.uuid4())  # another id: INCONSISTENT_TOPIC_ID
    assert write_partition_metadata(lm.take_pending_partition_metadata()) == []
    assert lm.take_pending_partition_metadata() == []
    lm.shutdown()
    (tmp_path / "d" / "t-1" / "partition.metadata").write_text("version: 0\ntopic_id: !!")

    lm = LogManager([tmp_path / "d"])
    lm.startup()
    try:
        assert lm.topic_id(good) == TOPIC_ID and lm.topic_id(none) is None
        assert bad in lm.offline and lm.get_log(bad) is None
        assert lm.get_log(good) is not None and lm.get_log(none) is not None
    finally:
        lm.shutdown()


async def test_broker_writes_the_topic_id_and_refuses_another(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A topic created through the controller gets partition.metadata with its ZooKeeper topic id;
    a LeaderAndIsr naming another id answers INCONSISTENT_TOPIC_ID for that partition only; the
    id survives a restart."""
    from kafkalike.protocol.api_keys import ApiKey

    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        if not has_controller(server):
            pytest.skip("needs the controller wired into KafkaServer")
        resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False, topics=[
            {"name": "ids", "num_partitions": 2, "replication_factor": 1, "assignments": [], "configs": []}])
        assert resp.topics[0].error_code == 0
        topic_id = resp.topics[0].topic_id
        assert topic_id.int != 0
        files = [tmp_path / "logs-1" / f"ids-{p}" / "partition.metadata" for p in range(2)]
        with trio.fail_after(20):
            while not all(f.exists() for f in files):
                await trio.sleep(0.02)
        for f in files:
            assert f.read_text() == f"version: 0\ntopic_id: {zd.uuid_to_base64(topic_id)}"

        me = server.broker_id
        epoch = server.replica_manager.partitions[TopicPartition("ids", 0)].leader_epoch
        req = leader_and_isr(server, "ids", {0: (me, [me], [me]), 1: (me, [me], [me])}, leader_epoch=epoch + 1)
        other = uuid.uuid4()
        req = attrs.evolve(req, topic_states=tuple(attrs.evolve(t, topic_id=other) for t in req.topic_states))
        answer = await conn.send(req, api_version=6)
        assert answer.error_code == 0
        assert [e.error_code for e in answer.topics[0].partition_errors] == [ErrorCode.inconsistent_topic_id] * 2
        assert server.replica_manager.partitions[TopicPartition("ids", 0)].leader_epoch == epoch  # unchanged
        assert files[0].read_text().endswith(zd.uuid_to_base64(topic_id))

        same = attrs.evolve(req, topic_states=tuple(attrs.evolve(t, topic_id=topic_id) for t in req.topic_states))
        answer = await conn.send(same, api_version=6)
        assert [e.error_code for e in answer.topics[0].partition_errors] == [ErrorCode.none] * 2

    async with running_broker(tmp_path, zk_chroot_connect) as server:
        assert server.log_manager.topic_id(TopicPartition("ids", 1)) == topic_id
