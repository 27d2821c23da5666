"""The ZooKeeper-era controller: KafkaController (one event queue), ControllerContext,
PartitionStateMachine / ReplicaStateMachine, ControllerChannelManager, and the pure
algorithms they use (leader election, replica placement)."""
