"""The broker process: KafkaServer start-up and registration, the socket server, KafkaApis,
ReplicaManager and Partition (Kafka's kafka.server package)."""
