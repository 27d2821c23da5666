"""kafkalike: Apache Kafka's ZooKeeper-era architecture, rebuilt in Python on trio.

Layers (imports only point down; see docs/architecture.md):

    cli/                      thin command-line face, imported by nothing
    chaos/  bench/            fault injection, benchmarks
    cluster/                  local supervision of ZooKeeper nodes and broker processes
    broker/                   the broker process: socket server, KafkaApis, ReplicaManager
    controller/ coordinator/  KafkaController, GroupCoordinator
    storage/  client/         the log engine; a trio Kafka client
    protocol/ coordination/   sans-IO wire codec; the kazoo bridge and ZooKeeper layout
"""

__version__ = "0.1.0"
