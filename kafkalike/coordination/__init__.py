"""The coordination layer: ZooKeeper, bridged into trio. The ONLY package that imports kazoo.

zookeeper_client  ZooKeeperClient (trio API over kazoo: reads, writes, one-shot watches,
                  multi-ops, session events), expire_session (tests/chaos)
errors            ZooKeeper errors under kafkalike's names (NoNode, NodeExists, BadVersion, ...)
zk_data           Kafka's znode paths and JSON codecs (Kafka's ZkData.scala)
kafka_zk_client   typed Kafka operations on top (Kafka's KafkaZkClient.scala)
"""

from kafkalike.coordination.errors import (
    AuthFailed,
    BadArguments,
    BadVersion,
    ConnectionClosed,
    ConnectionLoss,
    ConnectTimeout,
    CoordinationError,
    KeeperError,
    MultiOpFailed,
    NoChildrenForEphemerals,
    NoNode,
    NodeExists,
    NotEmpty,
    OperationTimeout,
    RolledBack,
    RuntimeInconsistency,
    SessionExpired,
    SessionMoved,
    ZooKeeperError,
)
from kafkalike.coordination.zookeeper_client import (
    CheckOp,
    CreateOp,
    DeleteOp,
    Op,
    OpResult,
    SessionEvent,
    SessionState,
    SetDataOp,
    Watch,
    WatchEvent,
    WatchEventType,
    ZkClientStatistics,
    ZnodeStat,
    ZooKeeperClient,
    expire_session,
    split_connect_string,
)

__all__ = [
    "AuthFailed", "BadArguments", "BadVersion", "CheckOp", "ConnectTimeout", "ConnectionClosed",
    "ConnectionLoss", "CoordinationError", "CreateOp", "DeleteOp", "KeeperError", "MultiOpFailed",
    "NoChildrenForEphemerals", "NoNode", "NodeExists", "NotEmpty", "Op", "OpResult",
    "OperationTimeout", "RolledBack", "RuntimeInconsistency", "SessionEvent", "SessionExpired",
    "SessionMoved", "SessionState", "SetDataOp", "Watch", "WatchEvent", "WatchEventType",
    "ZkClientStatistics", "ZnodeStat", "ZooKeeperClient", "ZooKeeperError", "expire_session", "split_connect_string",
]
