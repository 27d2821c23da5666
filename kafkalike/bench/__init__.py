"""Benchmarks: kafkalike side by side with Apache Kafka 3.9 (ZooKeeper and KRaft mode).

``reference_kafka`` fetches and runs the reference Apache Kafka cluster and its tools."""
