"""KRaft snapshot files (kafkalike/storage/snapshots.py) and meta.properties v1
(kafkalike/storage/meta_properties.py): names, atomic writes, round trips, corruption refused; with
KAFKALIKE_KAFKA_LIB set, Kafka 3.9's DumpLogSegments --cluster-metadata-decoder and (when the
kafka-shell jar is there too) MetadataShell read a snapshot we wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.records import decode_batches
from kafkalike.storage import snapshots
from kafkalike.storage.errors import KafkaStorageError
from kafkalike.storage.meta_properties import (MetaPropertiesV1, format_meta_properties, read_meta_properties_v1,
                                               write_meta_properties_v1)
from kafkalike.storage.snapshots import CorruptSnapshotError, SnapshotId

LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)
SHELL_LIB = Path(os.environ.get("KAFKALIKE_KAFKA_SHELL_LIB", LIB))
"""Where kafka-shell-3.9.*.jar and jline are (scripts/reference/pom.xml does not fetch them yet; see docs/kraft.md)."""
HAVE_SHELL = HAVE_KAFKA and any(SHELL_LIB.glob("kafka-shell-*.jar"))
NEEDS_KAFKA = pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars) and java")

TOPIC_ID = uuid.UUID(int=0x1234567890ABCDEF1234567890ABCDEF)


def _records() -> list[mr.ApiMessage]:
    return [
        mr.FeatureLevelRecord(name="metadata.version", feature_level=21),
        mr.TopicRecord(name="orders", topic_id=TOPIC_ID),
        mr.PartitionRecord(partition_id=0, topic_id=TOPIC_ID, replicas=(1, 2), isr=(1, 2), leader=1, leader_epoch=0,
                           partition_epoch=0, directories=(mr.ZERO_UUID, mr.ZERO_UUID)),
        mr.PartitionRecord(partition_id=1, topic_id=TOPIC_ID, replicas=(2, 1), isr=(2,), leader=2, leader_epoch=3,
                           partition_epoch=4, directories=(mr.ZERO_UUID, mr.ZERO_UUID)),
        mr.ConfigRecord(resource_type=2, resource_name="orders", name="cleanup.policy", value="compact"),
    ]


def test_snapshot_file_names_are_kafkas() -> None:
    sid = SnapshotId(end_offset=1234, epoch=5)
    assert sid.file_name == "00000000000000001234-0000000005.checkpoint"
    assert SnapshotId.from_file_name(sid.file_name) == sid
    assert SnapshotId.from_file_name(sid.file_name + ".part") is None
    assert SnapshotId.from_file_name("bootstrap.checkpoint") is None


def test_snapshot_round_trips_with_header_footer_and_epoch(tmp_path: Path) -> None:
    path = snapshots.write_snapshot(tmp_path, SnapshotId(40, 3), _records(), last_contained_log_timestamp=1_700_000_000_000)
    assert path.name == "00000000000000000040-0000000003.checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the .part file was renamed
    snap = snapshots.read_snapshot(path)
    assert snap.header == mr.SnapshotHeaderRecord(version=0, last_contained_log_timestamp=1_700_000_000_000)
    assert snap.footer == mr.SnapshotFooterRecord(version=0)
    assert [r.message for r in snap.records] == _records()
    assert [r.version for r in snap.records] == [0, 0, 1, 1, 0]
    assert snap.epoch == 3
    batches = decode_batches(path.read_bytes())
    assert [b.is_control for b in batches] == [True, False, True]
    assert [b.base_offset for b in batches] == [0, 1, 6]
    assert {b.partition_leader_epoch for b in batches} == {3}
    assert all(r.key is None for r in batches[1].records)


def test_records_are_cut_into_batches_by_size(tmp_path: Path) -> None:
    records = [mr.NoOpRecord()] * 10 + _records()
    data = snapshots.encode_snapshot(records, epoch=1, last_contained_log_timestamp=0, max_batch_bytes=40)
    batches = decode_batches(data)
    assert len(batches) > 4
    assert [r.offset for b in batches for r in b.records] == list(range(len(records) + 2))
    assert [r.message for r in snapshots.decode_snapshot(data).records] == records


def test_list_snapshots_ignores_part_files(tmp_path: Path) -> None:
    for sid in (SnapshotId(10, 1), SnapshotId(5, 1), SnapshotId(20, 2)):
        snapshots.write_snapshot(tmp_path, sid, [], last_contained_log_timestamp=0)
    (tmp_path / (SnapshotId(30, 2).file_name + ".part")).write_bytes(b"partial")
    assert snapshots.list_snapshots(tmp_path) == [SnapshotId(5, 1), SnapshotId(10, 1), SnapshotId(20, 2)]


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-5], "corrupt snapshot"),                             # torn tail
    (lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:], "corrupt snapshot"),  # CRC mismatch
    (lambda b: b"", "no SnapshotHeader"),                               # empty file
])
def test_damaged_snapshots_are_refused(tmp_path: Path, damage, message: str) -> None:
    data = snapshots.encode_snapshot(_records(), epoch=1, last_contained_log_timestamp=0)
    path = tmp_path / SnapshotId(6, 1).file_name
    path.write_bytes(damage(data))
    with pytest.raises(CorruptSnapshotError, match=message) as info:
        snapshots.read_snapshot(path)
    assert info.value.path == path


def test_snapshot_without_footer_or_header_is_refused(tmp_path: Path) -> None:
    data = snapshots.encode_snapshot(_records(), epoch=1, last_contained_log_timestamp=0)
    batches = decode_batches(data)
    without_footer = data[:len(data) - batches[-1].size_in_bytes]
    with pytest.raises(CorruptSnapshotError, match="no SnapshotFooter"):
        snapshots.decode_snapshot(without_footer)
    without_header = data[batches[0].size_in_bytes:]
    with pytest.raises(CorruptSnapshotError, match="not a SnapshotHeader"):
        snapshots.decode_snapshot(without_header)


def test_undecodable_record_in_a_snapshot_is_refused() -> None:
    from kafkalike.protocol.record_batch import SimpleRecord, build_batch
    good = snapshots.encode_snapshot([], epoch=0, last_contained_log_timestamp=0)
    header_len = decode_batches(good)[0].size_in_bytes
    bad = build_batch([SimpleRecord(value=bytes.fromhex("017f00"))], 1, partition_leader_epoch=0)
    with pytest.raises(CorruptSnapshotError, match="Unknown metadata id 127"):
        snapshots.decode_snapshot(good[:header_len] + bad + good[header_len:])


def test_meta_properties_v1_round_trip_in_kafkas_key_order(tmp_path: Path) -> None:
    meta = MetaPropertiesV1(version=1, node_id=3, cluster_id="MkU3OEVBNTcwNTJENDM2Qg", directory_id=mr.random_uuid())
    write_meta_properties_v1(tmp_path, meta)
    assert read_meta_properties_v1(tmp_path) == meta
    lines = (tmp_path / "meta.properties").read_text().splitlines()
    assert lines[0] == "#" and lines[1].startswith("#")
    assert [line.split("=")[0] for line in lines[2:]] == ["node.id", "directory.id", "version", "cluster.id"]
    assert read_meta_properties_v1(tmp_path / "absent") is None


def test_meta_properties_v0_is_read_too(tmp_path: Path) -> None:
    (tmp_path / "meta.properties").write_text("#\n#Mon\ncluster.id=abc\nversion=0\nbroker.id=2\n")
    assert read_meta_properties_v1(tmp_path) == MetaPropertiesV1(version=0, node_id=2, cluster_id="abc")


@pytest.mark.parametrize("text, message", [
    ("version=1\ncluster.id=abc\n", "node.id was not found"),
    ("version=1\nnode.id=1\n", "cluster.id was not found"),
    ("version=1\nnode.id=x\ncluster.id=a\n", "node.id as a base-10 number"),
    ("version=1\nnode.id=1\ncluster.id=a\ndirectory.id=nope\n", "directory.id as a Uuid"),
    ("version=2\nnode.id=1\ncluster.id=a\n", "Unknown meta.properties version"),
])
def test_bad_meta_properties_are_refused_with_kafkas_messages(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "meta.properties").write_text(text)
    with pytest.raises(KafkaStorageError, match=message):
        read_meta_properties_v1(tmp_path)


def test_meta_properties_v1_needs_node_and_cluster_id(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_meta_properties_v1(tmp_path, MetaPropertiesV1(version=1, node_id=None, cluster_id="a"))
    assert "broker.id=4" in format_meta_properties(MetaPropertiesV1(version=0, node_id=4, cluster_id=None))


@NEEDS_KAFKA
def test_kafka_dump_log_segments_decodes_our_snapshot(tmp_path: Path) -> None:
    log_dir = tmp_path / "__cluster_metadata-0"
    log_dir.mkdir()
    path = snapshots.write_snapshot(log_dir, SnapshotId(5, 2), _records(), last_contained_log_timestamp=1_700_000_000_000)
    out = subprocess.run(["java", "-cp", f"{LIB}/*", "kafka.tools.DumpLogSegments", "--cluster-metadata-decoder",
                          "--files", str(path)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "Snapshot end offset: 5, epoch: 2" in out.stdout
    assert out.stdout.count("isvalid: true") == 3 and "isvalid: false" not in out.stdout
    assert 'SnapshotHeader {"version":0,"lastContainedLogTimestamp":1700000000000}' in out.stdout
    assert 'SnapshotFooter {"version":0}' in out.stdout
    assert '"type":"TOPIC_RECORD","version":0,"data":{"name":"orders","topicId":"EjRWeJCrze8SNFZ4kKvN7w"}' in out.stdout
    assert out.stdout.count('"type":"PARTITION_RECORD","version":1') == 2
    assert "Exception" not in out.stdout + out.stderr


@pytest.mark.skipif(not HAVE_SHELL, reason="needs KAFKALIKE_KAFKA_LIB and the kafka-shell 3.9 jar + jline "
                                           "(KAFKALIKE_KAFKA_SHELL_LIB, see docs/kraft.md)")
def test_kafka_metadata_shell_lists_the_topic_of_our_snapshot(tmp_path: Path) -> None:
    path = snapshots.write_snapshot(tmp_path, SnapshotId(5, 2), _records(), last_contained_log_timestamp=0)

    def shell(*command: str) -> str:
        out = subprocess.run(["java", "-cp", f"{LIB}/*:{SHELL_LIB}/*", "org.apache.kafka.shell.MetadataShell",
                              "--snapshot", str(path), *command], capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        return out.stdout

    # Kafka 3.9's shell shows the image under /image (`ls /topics` was the 3.3 layout). Its
    # non-interactive mode runs the command once the loader's lastAppliedOffset > 0, which can be
    # before its publisher has the image (MetadataShell.waitUntilCaughtUp): an empty answer is
    # retried, a few times, as one would retype the command.
    listing: list[str] = []
    for _attempt in range(5):
        listing = shell("ls", "/image/topics/byName").split()
        if listing:
            break
    assert listing == ["orders"]
    found: list[str] = []
    for _attempt in range(5):
        found = shell("find", "/image").splitlines()
        if "/image/topics/byId/EjRWeJCrze8SNFZ4kKvN7w/1" in found:
            break
    assert "/image/topics/byId/EjRWeJCrze8SNFZ4kKvN7w/1" in found
    assert "/image/configs/TOPIC:orders/cleanup.policy" in found


def _metadata_log(tmp_path: Path) -> Path:
    """A __cluster_metadata-0 segment log as a Raft leader of epoch 4 would write it: LeaderChange
    control batch, then batches of records (offsets assigned by the log)."""
    from kafkalike.storage.unified_log import UnifiedLog

    log_dir = tmp_path / "__cluster_metadata-0"
    log = UnifiedLog.open(log_dir)
    leader_change = mr.LeaderChangeMessage(version=0, leader_id=1, voters=(mr.Voter(1), mr.Voter(2), mr.Voter(3)),
                                           granting_voters=(mr.Voter(1), mr.Voter(3)))
    # Kafka appends with AppendOrigin.RAFT_LEADER, which skips the client checks (a control batch)
    log.append(bytearray(mr.build_control_batch(leader_change, epoch=4, append_time_ms=1_700_000_000_000)),
               leader_epoch=4, origin="raft_leader")
    records = _records()
    log.append(bytearray(mr.build_metadata_batch(records[:2], epoch=4, append_time_ms=1_700_000_000_001)), leader_epoch=4)
    log.append(bytearray(mr.build_metadata_batch(records[2:], epoch=4, append_time_ms=1_700_000_000_002)), leader_epoch=4)
    log.close()
    return log_dir


def test_metadata_log_batches_carry_the_raft_epoch_and_decode(tmp_path: Path) -> None:
    log_dir = _metadata_log(tmp_path)
    data = (log_dir / "00000000000000000000.log").read_bytes()
    batches = decode_batches(data)
    assert [(b.base_offset, b.is_control, len(b.records)) for b in batches] == [(0, True, 1), (1, False, 2), (3, False, 3)]
    assert {b.partition_leader_epoch for b in batches} == {4}
    first = batches[0].records[0]
    assert first.key == bytes.fromhex("00000002")
    assert mr.parse_control_record(first.key, first.value).granting_voters == (mr.Voter(1), mr.Voter(3))
    assert [mr.deserialize_record(r.value).message for b in batches[1:] for r in b.records] == _records()


@NEEDS_KAFKA
def test_kafka_dump_log_segments_decodes_our_metadata_log_segment(tmp_path: Path) -> None:
    segment = _metadata_log(tmp_path) / "00000000000000000000.log"
    out = subprocess.run(["java", "-cp", f"{LIB}/*", "kafka.tools.DumpLogSegments", "--cluster-metadata-decoder",
                          "--files", str(segment)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("isvalid: true") == 3 and "isvalid: false" not in out.stdout
    assert out.stdout.count("partitionLeaderEpoch: 4") == 3
    # in a segment, DumpLogSegments names a control record's type (its value is judged by MetadataRecordSerdeCheck.java)
    assert "keySize: 4 valueSize: 34 sequence: -1 headerKeys: [] controlType: LEADER_CHANGE(2)" in out.stdout
    assert out.stdout.count("payload: {") == 5
    assert "Exception" not in out.stdout + out.stderr
