"""kafkalike.client: a trio-native Kafka client (connection, cluster metadata, admin,
producer, consumer) over kafkalike.protocol's sans-IO codec.

Used by kafkalike's controller channel (raw ``KafkaConnection.send()`` of LeaderAndIsr /
UpdateMetadata / StopReplica), replica fetchers, CLI and tests; speaks to real Kafka
brokers too. Modules:

- ``connection``: KafkaConnection (ApiVersions negotiation, pipelining, timeouts).
- ``kafka_client``: KafkaClient (bootstrap, Metadata, connection per broker, retries,
  ListOffsets).
- ``cluster``: TopicPartition, Node, PartitionInfo, TopicInfo, Cluster (values).
- ``admin``: AdminClient (create/delete topics, create partitions, describe configs/cluster).
- ``producer``: KafkaProducer (murmur2 partitioning, batching, compression, acks 0/1/all).
- ``consumer``: KafkaConsumer (assign, seek, long-poll Fetch, decoded records).
- ``group_consumer``: KafkaGroupConsumer (consumer group membership, range/roundrobin, commits).
- ``partitioner``: Kafka's murmur2 default partitioner.
- ``messages``: build a kio request of any version from keyword fields.
- ``errors``: the typed errors.

See docs/client.md.
"""

from kafkalike.client.admin import AdminClient, ClusterDescription, ConfigEntry, NewTopic
from kafkalike.client.cluster import Cluster, Node, PartitionInfo, TopicInfo, TopicPartition
from kafkalike.client.connection import CLIENT_API_VERSIONS, KafkaConnection
from kafkalike.client.consumer import ConsumerRecord, ConsumerStatistics, KafkaConsumer
from kafkalike.client.group_consumer import KafkaGroupConsumer
from kafkalike.client.errors import (BadResponseError, BrokerConnectionRefusedError,
                                     ClientError, ConnectionClosedError, KafkaConnectionError,
                                     KafkaError, NoBrokersAvailableError, RequestTimeoutError,
                                     UnsupportedApiVersionError)
from kafkalike.client.kafka_client import (EARLIEST, LATEST, ClientStatistics, KafkaClient,
                                           OffsetAndTimestamp)
from kafkalike.client.partitioner import murmur2, partition_for_key
from kafkalike.client.producer import (KafkaProducer, PendingRecord, ProducerStatistics,
                                       RecordMetadata)

__all__ = [
    "AdminClient", "ClusterDescription", "ConfigEntry", "NewTopic",
    "Cluster", "Node", "PartitionInfo", "TopicInfo", "TopicPartition",
    "CLIENT_API_VERSIONS", "KafkaConnection",
    "ConsumerRecord", "ConsumerStatistics", "KafkaConsumer", "KafkaGroupConsumer",
    "BadResponseError", "BrokerConnectionRefusedError", "ClientError",
    "ConnectionClosedError", "KafkaConnectionError", "KafkaError", "NoBrokersAvailableError",
    "RequestTimeoutError", "UnsupportedApiVersionError",
    "EARLIEST", "LATEST", "ClientStatistics", "KafkaClient", "OffsetAndTimestamp",
    "murmur2", "partition_for_key",
    "KafkaProducer", "PendingRecord", "ProducerStatistics", "RecordMetadata",
]
