"""The KRaft metadata image and delta (Kafka's ``org.apache.kafka.image``), sans-IO.

``MetadataImage`` is a frozen view of the cluster's metadata at one offset of ``__cluster_metadata``;
``MetadataDelta`` replays metadata records on top of one and ``apply()`` gives the next image.
Brokers (and the quorum controller) rebuild their view of the cluster this way from the records of
``kafkalike.protocol.metadata_records``. Layer 1: imports only ``protocol/``; no trio.
"""

from kafkalike.image.metadata_delta import LocalReplicaChanges, MetadataDelta, PartitionInfo
from kafkalike.image.metadata_image import (BrokerRegistration, ClusterImage, ConfigurationsImage, FeaturesImage,
                                            MetadataImage, MetadataProvenance, PartitionRegistration,
                                            ProducerIdsImage, TopicImage, TopicsImage)

__all__ = ["BrokerRegistration", "ClusterImage", "ConfigurationsImage", "FeaturesImage", "LocalReplicaChanges",
           "MetadataDelta", "MetadataImage", "MetadataProvenance", "PartitionInfo", "PartitionRegistration",
           "ProducerIdsImage", "TopicImage", "TopicsImage"]
