"""Typed errors raised by the storage engine, each carrying the Kafka error code name it maps to.

The broker turns `exc.error_code` into the wire error: OFFSET_OUT_OF_RANGE (1), CORRUPT_MESSAGE (2),
MESSAGE_TOO_LARGE (10), KAFKA_STORAGE_ERROR (56), INVALID_RECORD (87) ... (Kafka's Errors enum).
"""

from __future__ import annotations

from pathlib import Path


class StorageError(Exception):
    """Base class for storage errors; `error_code` is a Kafka error code name."""

    error_code = "UNKNOWN_SERVER_ERROR"


class OffsetOutOfRangeError(StorageError):
    """An offset outside [log start offset, log end offset] (OFFSET_OUT_OF_RANGE).

    Fields: offset asked for, log_start_offset and log_end_offset at the time.
    """

    error_code = "OFFSET_OUT_OF_RANGE"

    def __init__(self, message: str, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(message)
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class CorruptRecordError(StorageError):
    """Appended bytes that are not valid v2 batches (CORRUPT_MESSAGE); `position` in the input."""

    error_code = "CORRUPT_MESSAGE"

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.position = position


class RecordTooLargeError(StorageError):
    """A batch larger than max.message.bytes (+12) or segment.bytes (MESSAGE_TOO_LARGE)."""

    error_code = "MESSAGE_TOO_LARGE"


class InvalidRecordError(StorageError):
    """A batch the log refuses by rule, e.g. a keyless record on a compacted topic (INVALID_RECORD)."""

    error_code = "INVALID_RECORD"


class UnexpectedAppendOffsetError(StorageError):
    """A follower append (assign_offsets=False) whose offsets go backwards or below the log end
    offset (Kafka's UnexpectedAppendOffsetException / OffsetsOutOfOrderException;
    UNKNOWN_SERVER_ERROR on the wire: the follower must truncate first)."""

    error_code = "UNKNOWN_SERVER_ERROR"

    def __init__(self, message: str, first_offset: int, last_offset: int) -> None:
        super().__init__(message)
        self.first_offset = first_offset
        self.last_offset = last_offset


class KafkaStorageError(StorageError):
    """A log (or log dir) that cannot be read or written (KAFKA_STORAGE_ERROR).

    `path` names the file or directory at fault; the broker takes the partition (or the whole
    log dir) offline and keeps serving the rest (Kafka's LogDirFailureChannel).
    """

    error_code = "KAFKA_STORAGE_ERROR"

    def __init__(self, message: str, path: Path | str) -> None:
        super().__init__(f"{message}: {path}")
        self.path = Path(path)


class LogDirFailureError(KafkaStorageError):
    """A write failed and could not be undone: the bytes after the log end are unknown, so the
    log (and, as Kafka does, its whole log dir) must go offline (KAFKA_STORAGE_ERROR). Kafka's
    LogDirFailureChannel.maybeAddOfflineLogDir -> ReplicaManager.handleLogDirFailure."""


class CorruptIndexError(StorageError):
    """An index file failing its sanity check (Kafka's CorruptIndexException); rebuilt on load."""

    error_code = "KAFKA_STORAGE_ERROR"

    def __init__(self, message: str, path: Path | str) -> None:
        super().__init__(f"{message}: {path}")
        self.path = Path(path)


class InconsistentBrokerMetadataError(StorageError):
    """meta.properties names another broker.id or cluster.id than the one configured
    (Kafka's InconsistentBrokerIdException / InconsistentClusterIdException): the broker must
    refuse to start on this log dir."""

    error_code = "KAFKA_STORAGE_ERROR"
