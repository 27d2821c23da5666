"""Checkpoint files with Kafka's names and text formats, written atomically (Kafka's CheckpointFile).

Per log dir (OffsetCheckpointFile, "version 0"):
    recovery-point-offset-checkpoint, replication-offset-checkpoint (high watermarks),
    log-start-offset-checkpoint, cleaner-offset-checkpoint
      0
      <entry count>
      <topic> <partition> <offset>      (one line per partition)
Per partition dir (LeaderEpochCheckpointFile):
    leader-epoch-checkpoint
      0
      <entry count>
      <epoch> <start offset>
Per log dir, `meta.properties` (Kafka's BrokerMetadataCheckpoint, Java properties syntax):
      version=0, broker.id=N, cluster.id=<22-char base64 uuid>   (ZooKeeper mode; version=1 with
      node.id is KRaft's and is read too).

Every write is atomic: write <name>.tmp, fsync it, rename over <name>, fsync the directory.
A malformed file raises KafkaStorageError naming it (Kafka: "Malformed line in checkpoint file").
`TopicPartition` here is kafkalike.protocol.topic_partition's, re-exported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from kafkalike.protocol.topic_partition import TopicPartition  # re-exported: checkpoints.TopicPartition
from kafkalike.storage.errors import InconsistentBrokerMetadataError, KafkaStorageError

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
REPLICATION_OFFSET_CHECKPOINT = "replication-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"
LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"
META_PROPERTIES = "meta.properties"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"

CHECKPOINT_VERSION = 0


def write_atomically(path: Path, text: str) -> None:
    """Write text to path via path.tmp + fsync + rename + fsync(dir). OSError -> KafkaStorageError."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            data = text.encode()
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)  # a partial .tmp would only hold space on a full disk
        except OSError:
            pass
        raise KafkaStorageError(f"cannot write checkpoint ({exc.strerror})", path) from exc


def _read_lines(path: Path) -> list[str] | None:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KafkaStorageError(f"cannot read checkpoint ({exc})", path) from exc


def _parse(path: Path, fields: int) -> list[list[str]]:
    lines = _read_lines(path)
    if not lines:  # missing, or the empty file Kafka's CheckpointFile creates: no entries
        return []
    try:
        version = int(lines[0])
        if version != CHECKPOINT_VERSION:
            raise KafkaStorageError(f"unrecognized checkpoint version {version}", path)
        count = int(lines[1])
        entries = [line.split() for line in lines[2 : 2 + count]]
    except (IndexError, ValueError) as exc:
        raise KafkaStorageError("malformed checkpoint file header", path) from exc
    if len(entries) != count or any(len(e) != fields for e in entries):
        raise KafkaStorageError(f"malformed line in checkpoint file (expected {count} entries of {fields} fields)", path)
    return entries


class OffsetCheckpointFile:
    """A per-log-dir map TopicPartition -> offset (Kafka's OffsetCheckpointFile)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def write(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Replace the file with these entries (sorted for stable output)."""
        lines = [str(CHECKPOINT_VERSION), str(len(offsets))]
        lines += [f"{tp.topic} {tp.partition} {off}" for tp, off in sorted(offsets.items())]
        write_atomically(self.path, "\n".join(lines) + "\n")

    def read(self) -> dict[TopicPartition, int]:
        """Entries, {} when the file does not exist. KafkaStorageError if malformed."""
        out = {}
        for topic, part, off in _parse(self.path, 3):
            try:
                out[TopicPartition(topic, int(part))] = int(off)
            except ValueError as exc:
                raise KafkaStorageError(f"malformed line in checkpoint file: {topic} {part} {off}", self.path) from exc
        return out


class LeaderEpochCheckpointFile:
    """A partition's leader-epoch-checkpoint: [(epoch, start offset)] (Kafka's LeaderEpochCheckpointFile)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def write(self, entries: Iterable[tuple[int, int]]) -> None:
        """Replace the file with these (epoch, start offset) entries."""
        entries = list(entries)
        lines = [str(CHECKPOINT_VERSION), str(len(entries))] + [f"{e} {o}" for e, o in entries]
        write_atomically(self.path, "\n".join(lines) + "\n")

    def create_empty(self) -> None:
        """Create the file empty if it does not exist, without fsync (Kafka's CheckpointFile
        constructor does ``Files.createFile``; an empty file reads as no entries). A new
        partition costs one create instead of an fsync'd atomic write."""
        try:
            with open(self.path, "x"):
                pass
        except FileExistsError:
            pass
        except OSError as exc:
            raise KafkaStorageError(f"cannot create checkpoint ({exc.strerror})", self.path) from exc

    def read(self) -> list[tuple[int, int]]:
        """Entries, [] when the file does not exist or is empty. KafkaStorageError if malformed."""
        out = []
        for epoch, off in _parse(self.path, 2):
            try:
                out.append((int(epoch), int(off)))
            except ValueError as exc:
                raise KafkaStorageError(f"malformed line in checkpoint file: {epoch} {off}", self.path) from exc
        return out


# ----------------------------------------------------------------------------- meta.properties


@attrs.frozen
class MetaProperties:
    """Contents of meta.properties: version 0 (ZooKeeper mode) with broker.id and cluster.id."""

    broker_id: int
    cluster_id: str | None = None
    version: int = 0


def read_meta_properties(log_dir: Path) -> MetaProperties | None:
    """Parse <log_dir>/meta.properties (Java properties: key=value, # comments); None if absent.

    Raises KafkaStorageError if the file is unreadable or lacks version/broker.id.
    """
    path = Path(log_dir) / META_PROPERTIES
    lines = _read_lines(path)
    if lines is None:
        return None
    props: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        for sep in ("=", ":"):
            if sep in line:
                k, v = line.split(sep, 1)
                props[k.strip()] = v.strip()
                break
    try:
        version = int(props["version"])
        broker_id = int(props["broker.id"] if version == 0 else props.get("node.id", props.get("broker.id", "")))
    except (KeyError, ValueError) as exc:
        raise KafkaStorageError("meta.properties lacks a valid version / broker.id", path) from exc
    return MetaProperties(broker_id=broker_id, cluster_id=props.get("cluster.id"), version=version)


def write_meta_properties(log_dir: Path, meta: MetaProperties) -> None:
    """Write meta.properties as Kafka does (comment with the date, then key=value lines)."""
    stamp = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime())
    lines = ["#", f"#{stamp}"]
    if meta.cluster_id is not None:
        lines.append(f"cluster.id={meta.cluster_id}")
    lines += [f"version={meta.version}", f"broker.id={meta.broker_id}"]
    write_atomically(Path(log_dir) / META_PROPERTIES, "\n".join(lines) + "\n")


def check_meta_properties(log_dir: Path, broker_id: int, cluster_id: str | None) -> MetaProperties:
    """Make meta.properties agree with this broker: write it if missing, fill a missing cluster.id,
    refuse a foreign one.

    Raises InconsistentBrokerMetadataError with Kafka's messages (InconsistentBrokerIdException,
    InconsistentClusterIdException) when the stored ids differ.
    """
    stored = read_meta_properties(log_dir)
    if stored is None:
        meta = MetaProperties(broker_id=broker_id, cluster_id=cluster_id)
        write_meta_properties(log_dir, meta)
        return meta
    if stored.broker_id != broker_id:
        raise InconsistentBrokerMetadataError(
            f"Configured broker.id {broker_id} doesn't match stored broker.id Some({stored.broker_id}) "
            f"in meta.properties ({Path(log_dir) / META_PROPERTIES}). If you moved your data, make sure your "
            "configured broker.id matches. If you intend to create a new broker, you should remove all "
            "data in your data directories (log.dirs)."
        )
    if cluster_id is not None and stored.cluster_id is not None and stored.cluster_id != cluster_id:
        raise InconsistentBrokerMetadataError(
            f"The Cluster ID {cluster_id} doesn't match stored clusterId Some({stored.cluster_id}) in "
            f"meta.properties ({Path(log_dir) / META_PROPERTIES}). The broker is trying to join the wrong "
            "cluster. Configured zookeeper.connect may be wrong."
        )
    if stored.cluster_id is None and cluster_id is not None:
        stored = attrs.evolve(stored, cluster_id=cluster_id)
        write_meta_properties(log_dir, stored)
    return stored


def sync_dir_path(path: Path) -> None:
    """fsync a directory (after creating or renaming files in it). OSError -> KafkaStorageError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise KafkaStorageError(f"cannot fsync directory ({exc.strerror})", path) from exc
