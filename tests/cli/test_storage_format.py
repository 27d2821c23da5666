"""`kafkalike storage format` / `random-uuid` (kafkalike/cli/storage.py), like kafka-storage.sh:
meta.properties v1 and bootstrap.checkpoint in every dir, Kafka's lines and refusals; with
KAFKALIKE_KAFKA_LIB set, compared with what Kafka 3.9's StorageTool writes for the same config
(byte for byte apart from batch timestamps and CRCs), and read by DumpLogSegments."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from kafkalike.cli.main import main
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.record_batch import HEADER, iter_batches
from kafkalike.storage.meta_properties import read_meta_properties_v1
from kafkalike.storage.snapshots import read_snapshot

LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)
CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qg"


def _config(tmp_path: Path, dirs: list[Path], *, extra: str = "", roles: str = "broker,controller") -> Path:
    path = tmp_path / f"server-{len(list(tmp_path.glob('server-*')))}.properties"
    lines = [f"process.roles={roles}" if roles else "broker.id=1", "node.id=1",
             "controller.quorum.voters=1@127.0.0.1:19093",
             "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
             "controller.listener.names=CONTROLLER", "log.dirs=" + ",".join(str(d) for d in dirs)]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def _format(config: Path, *extra: str) -> int:
    return main(["storage", "format", "-t", CLUSTER_ID, "-c", str(config), *extra])


def test_format_writes_meta_properties_v1_and_bootstrap_checkpoint_in_every_dir(tmp_path: Path, capsys) -> None:
    data, meta_dir = tmp_path / "data", tmp_path / "meta"
    config = _config(tmp_path, [data], extra=f"metadata.log.dir={meta_dir}\n")
    assert _format(config) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"Formatting data directory {data} with metadata.version 3.9-IV0.",
        f"Formatting metadata directory {meta_dir} with metadata.version 3.9-IV0.",
    ]
    metas = [read_meta_properties_v1(d) for d in (data, meta_dir)]
    for meta in metas:
        assert meta is not None
        assert (meta.version, meta.node_id, meta.cluster_id) == (1, 1, CLUSTER_ID)
    assert metas[0].directory_id != metas[1].directory_id  # type: ignore[union-attr]
    for d in (data, meta_dir):
        snap = read_snapshot(d / "bootstrap.checkpoint")
        assert [r.message for r in snap.records] == [mr.FeatureLevelRecord(name="metadata.version", feature_level=21)]
        assert snap.header.last_contained_log_timestamp == 0 and snap.epoch == 0
        assert sorted(p.name for p in d.iterdir()) == ["bootstrap.checkpoint", "meta.properties"]


def test_format_refuses_a_formatted_dir_unless_told_to_ignore_it(tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert _format(_config(tmp_path, [first])) == 0
    before = (first / "meta.properties").read_text()
    config = _config(tmp_path, [first, second])
    capsys.readouterr()
    assert _format(config) == 1
    assert capsys.readouterr().err.strip() == (f"Log directory {first} is already formatted. Use --ignore-formatted "
                                               "to ignore this directory and format the others.")
    assert not second.exists()
    assert _format(config, "--ignore-formatted") == 0
    assert capsys.readouterr().out.splitlines() == [f"Formatting data directory {second} with metadata.version 3.9-IV0."]
    assert (first / "meta.properties").read_text() == before
    assert _format(config, "-g") == 0
    assert capsys.readouterr().out.strip() == "All of the log directories are already formatted."


@pytest.mark.parametrize("kwargs, args, message", [
    ({"roles": ""}, (), "The kafka configuration file appears to be for a legacy cluster. Formatting is only "
                        "supported for clusters in KRaft mode."),
    ({}, ("--release-version", "3.7-IV4"), "metadata.version 3.7-IV4 is not one kafkalike writes (only 3.9-IV0)."),
])
def test_format_refusals_are_one_line_and_exit_1(tmp_path: Path, capsys, kwargs, args, message: str) -> None:
    data = tmp_path / "data"
    assert _format(_config(tmp_path, [data], **kwargs), *args) == 1
    assert capsys.readouterr().err.strip() == message
    assert not data.exists()


def test_format_on_a_controller_needs_quorum_voters(tmp_path: Path, capsys) -> None:
    config = _config(tmp_path, [tmp_path / "d"])
    config.write_text(config.read_text().replace("controller.quorum.voters=1@127.0.0.1:19093\n", ""))
    assert _format(config) == 1
    assert capsys.readouterr().err.startswith("Because controller.quorum.voters is not set on this controller")


def test_random_uuid_prints_a_kafka_uuid(capsys) -> None:
    assert main(["storage", "random-uuid"]) == 0
    text = capsys.readouterr().out.strip()
    assert len(text) == 22 and not text.startswith("-")
    assert mr.uuid_from_base64(text) not in (mr.ZERO_UUID, mr.METADATA_TOPIC_ID)


def _without_timestamps(data: bytes) -> bytes:
    """The file with every batch's baseTimestamp, maxTimestamp and CRC zeroed (they hold the time of writing)."""
    out = bytearray(data)
    for batch in iter_batches(data):
        fields = list(HEADER.unpack_from(out, batch.position))
        fields[4], fields[7], fields[8] = 0, 0, 0
        HEADER.pack_into(out, batch.position, *fields)
    return bytes(out)


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars, ./scripts/reference-kafka fetch) and java")
def test_format_matches_kafka_storage_tool_and_kafka_reads_ours(tmp_path: Path) -> None:
    theirs, ours = tmp_path / "kafka", tmp_path / "ours"
    out = subprocess.run(["java", "-cp", f"{LIB}/*", "kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c",
                          str(_config(tmp_path, [theirs])), "--release-version", "3.9-IV0"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"Formatting metadata directory {theirs} with metadata.version 3.9-IV0."
    assert _format(_config(tmp_path, [ours]), "--release-version", "3.9-IV0") == 0
    assert sorted(p.name for p in theirs.iterdir()) == sorted(p.name for p in ours.iterdir())
    kafka_bytes = (theirs / "bootstrap.checkpoint").read_bytes()
    our_bytes = (ours / "bootstrap.checkpoint").read_bytes()
    assert _without_timestamps(our_bytes) == _without_timestamps(kafka_bytes)
    # our reader takes Kafka's files
    assert read_snapshot(theirs / "bootstrap.checkpoint") == read_snapshot(ours / "bootstrap.checkpoint")
    kafka_meta, our_meta = read_meta_properties_v1(theirs), read_meta_properties_v1(ours)
    assert kafka_meta is not None and our_meta is not None and kafka_meta.directory_id is not None
    assert (kafka_meta.version, kafka_meta.node_id, kafka_meta.cluster_id) == (1, 1, CLUSTER_ID)
    key_order = [[line.split("=")[0] for line in (d / "meta.properties").read_text().splitlines()[2:]]
                 for d in (theirs, ours)]
    assert key_order[0] == key_order[1]
    # and Kafka's DumpLogSegments takes ours
    dump = subprocess.run(["java", "-cp", f"{LIB}/*", "kafka.tools.DumpLogSegments", "--cluster-metadata-decoder",
                           "--files", str(ours / "bootstrap.checkpoint")], capture_output=True, text=True, timeout=180)
    assert dump.returncode == 0, dump.stderr
    assert "KRaft bootstrap snapshot" in dump.stdout
    assert dump.stdout.count("isvalid: true") == 3 and "Exception" not in dump.stdout + dump.stderr
    assert ('{"type":"FEATURE_LEVEL_RECORD","version":0,"data":{"name":"metadata.version","featureLevel":21}}'
            in dump.stdout)
    assert struct.unpack_from(">i", our_bytes, 12)[0] == 0  # partition leader epoch 0, as Kafka's
