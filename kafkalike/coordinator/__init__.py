"""kafkalike.coordinator: the broker-side group coordinator and __consumer_offsets (Kafka's
kafka.coordinator.group package, ZooKeeper era).

Modules (Kafka class names in snake_case):

- ``offset_config``: OffsetConfig / GroupConfig from the broker's properties.
- ``member_metadata``: MemberMetadata (one member, its protocols, parked requests).
- ``group_metadata``: GroupMetadata and GroupState (the state machine), OffsetAndMetadata.
- ``group_metadata_manager``: placement (Java String.hashCode), the __consumer_offsets key and
  value formats, loading a partition's groups, persisting offsets and groups, expiration.
- ``group_coordinator``: GroupCoordinator (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
  LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete,
  removal of deleted topics' offsets, timers).
- ``group_apis``: the kio request/response translation registered with KafkaApis.

See docs/groups.md.
"""
