"""kafkalike's log storage engine: Kafka's on-disk layout, recovery, retention and compaction.

Modules follow Kafka's classes: unified_log (UnifiedLog), log_segment (LogSegment), offset_index,
time_index, file_records (FileRecords), log_loader (LogLoader), leader_epoch_file_cache,
checkpoints (OffsetCheckpointFile, LeaderEpochCheckpointFile, meta.properties), log_manager
(LogManager), log_cleaner (LogCleaner), log_config (LogConfig). No trio, no network: the broker
calls these synchronously. See docs/storage.md.
"""

from kafkalike.storage.checkpoints import TopicPartition
from kafkalike.storage.errors import (
    CorruptRecordError,
    InconsistentBrokerMetadataError,
    KafkaStorageError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StorageError,
    UnexpectedAppendOffsetError,
)
from kafkalike.storage.file_records import FileSlice, read_slices
from kafkalike.storage.log_cleaner import CleanerStats, LogCleaner
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.log_manager import LogManager
from kafkalike.storage.unified_log import LogAppendInfo, LogStatistics, TimestampAndOffset, UnifiedLog

__all__ = [
    "CleanerStats",
    "LogCleaner",
    "LogManager",
    "CorruptRecordError",
    "FileSlice",
    "InconsistentBrokerMetadataError",
    "KafkaStorageError",
    "LogAppendInfo",
    "LogConfig",
    "LogStatistics",
    "OffsetOutOfRangeError",
    "RecordTooLargeError",
    "StorageError",
    "TimestampAndOffset",
    "TopicPartition",
    "UnexpectedAppendOffsetError",
    "UnifiedLog",
    "read_slices",
]
