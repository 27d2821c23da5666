"""A partition directory's ``partition.metadata`` file: the topic id of the log (KIP-516; Kafka's
PartitionMetadataFile, PartitionMetadata and PartitionMetadataReadBuffer).

Format, exactly as Kafka writes it (no trailing newline)::

    version: 0
    topic_id: <22-character URL-safe base64 of the 16 id bytes, no padding>

Written once per log, when the broker first learns the topic id (a LeaderAndIsr v5+ naming it),
atomically (partition.metadata.tmp, fsync, rename, fsync of the directory: checkpoints.
write_atomically, as Kafka's Utils.atomicMoveWithFallback). Read when the log is loaded; a log
whose file names another id than a later LeaderAndIsr gets INCONSISTENT_TOPIC_ID for that
partition (ReplicaManager.becomeLeaderOrFollower's hasConsistentTopicId).
"""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path

from kafkalike.storage.checkpoints import write_atomically
from kafkalike.storage.errors import KafkaStorageError

PARTITION_METADATA_FILE = "partition.metadata"
CURRENT_VERSION = 0
_SEPARATOR = re.compile(r":\s+")  # Kafka's WHITE_SPACES_PATTERN


def topic_id_to_string(topic_id: uuid.UUID) -> str:
    """Kafka's Uuid.toString: URL-safe base64 of the 16 bytes, without padding (22 chars)."""
    return base64.urlsafe_b64encode(topic_id.bytes).decode("ascii").rstrip("=")


def topic_id_from_string(text: str) -> uuid.UUID:
    """Kafka's Uuid.fromString. Raises ValueError for anything but 22 base64url characters."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{22}", text):
        raise ValueError(f"not a base64 topic id: {text!r}")
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=="))


def encode(topic_id: uuid.UUID) -> str:
    """The file's text (Kafka's PartitionMetadata.encode)."""
    return f"version: {CURRENT_VERSION}\ntopic_id: {topic_id_to_string(topic_id)}"


class PartitionMetadataFile:
    """``<partition dir>/partition.metadata``. Errors raise KafkaStorageError naming the file
    (KAFKA_STORAGE_ERROR; Kafka also takes the log dir offline on an I/O error, kafkalike's
    LogManager takes the partition offline when the file cannot be read at load)."""

    def __init__(self, partition_dir: Path) -> None:
        self.path = Path(partition_dir) / PARTITION_METADATA_FILE

    def exists(self) -> bool:
        """True when the file is there."""
        return self.path.exists()

    def read(self) -> uuid.UUID:
        """The topic id in the file (Kafka's PartitionMetadataReadBuffer.read): first line
        ``version: N`` with N >= 0, second ``topic_id: <id>``, a non-zero id. Raises
        KafkaStorageError ("Malformed line in checkpoint file ...", "Invalid topic ID ...")."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KafkaStorageError(f"Error while reading partition metadata file ({exc})", self.path) from exc
        lines = text.split("\n")
        first = lines[0]
        parts = _SEPARATOR.split(first)
        try:
            if len(parts) != 2:
                raise ValueError
            version = int(parts[1])
        except ValueError:
            raise KafkaStorageError(f"Malformed line in checkpoint file: {first!r}", self.path) from None
        if version < CURRENT_VERSION:
            raise KafkaStorageError(f"Unrecognized version of partition metadata file: {version}", self.path)
        second = lines[1] if len(lines) > 1 else ""
        parts = _SEPARATOR.split(second)
        try:
            if len(parts) != 2:
                raise ValueError
            topic_id = topic_id_from_string(parts[1].strip())
        except ValueError:
            raise KafkaStorageError(f"Malformed line in checkpoint file: {second!r}", self.path) from None
        if topic_id.int == 0:
            raise KafkaStorageError("Invalid topic ID in partition metadata file", self.path)
        return topic_id

    def write(self, topic_id: uuid.UUID) -> None:
        """Write the file atomically and durably (tmp, fsync, rename, fsync dir). Raises
        KafkaStorageError ("Error while writing partition metadata file")."""
        try:
            write_atomically(self.path, encode(topic_id))
        except KafkaStorageError as exc:
            cause = exc.__cause__
            why = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc)
            raise KafkaStorageError(f"Error while writing partition metadata file ({why})", self.path) from exc


def write_partition_metadata(items: list[tuple[object, Path, uuid.UUID]]) -> list[tuple[object, Path, KafkaStorageError]]:
    """Write ``partition.metadata`` into each (key, partition dir, topic id) of ``items``; returns
    (key, dir, error) for each write that failed. Touches only those files, so the broker runs it
    in a worker thread (Kafka's "flush-metadata-file" scheduler task). A partition dir that no
    longer exists (deleted meanwhile) is skipped."""
    failed = []
    for key, partition_dir, topic_id in items:
        if not Path(partition_dir).is_dir():
            continue
        try:
            PartitionMetadataFile(partition_dir).write(topic_id)
        except KafkaStorageError as exc:
            failed.append((key, Path(partition_dir), exc))
    return failed
