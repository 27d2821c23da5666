"""A KRaft broker's state-change.log: Kafka 3.9 writes the partition state changes of KRaft mode in
the brokers' ``state.change.logger`` (ReplicaManager.applyDelta: "Transitioning N partition(s) to
local leaders.", "Creating new partition t-0 with topic id ...", "Deleting N partition(s).", the
become-follower fetcher lines), with the ZooKeeper mode's file layout ``[%d] %p [Broker id=1] ...
(state.change.logger)``; its controllers write none (their ReplicationControlManager lines go to
controller.log). Driven here by committed metadata records through the broker's real loader,
publisher and ReplicaManager (tests/kraft/test_kraft_broker_publisher.py's in-process broker)."""

from __future__ import annotations

import re
from pathlib import Path

from kafkalike.controller.state_change_logger import STATE_CHANGE_LOG_FILE, StateChangeLog, StateChangeLogger
from kafkalike.protocol import metadata_records as mr
from tests.kraft.test_kraft_broker_publisher import FOO, ME, kraft_broker, partition, register

LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] INFO \[Broker id=1\] (.*) \(state\.change\.logger\)$")


def _messages(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    matched = [LINE.match(line) for line in lines]
    assert all(matched), lines
    return [m.group(1) for m in matched if m]


async def test_a_kraft_broker_writes_kafkas_apply_delta_lines_to_its_state_change_log(tmp_path: Path) -> None:
    path = tmp_path / STATE_CHANGE_LOG_FILE
    state_change_log = StateChangeLog(path)
    foo = mr.uuid_to_base64(FOO)
    try:
        async with kraft_broker(tmp_path) as b:
            b.publisher.state_change_logger = StateChangeLogger(ME, False, log=state_change_log)
            await b.commit(mr.FeatureLevelRecord("metadata.version", 21), register(1), register(2),
                           mr.TopicRecord("foo", FOO), partition(FOO, 0, (1, 2)), partition(FOO, 1, (2, 1)),
                           partition(FOO, 2, (2,)))
            assert _messages(path) == [
                "Transitioning 1 partition(s) to local leaders.",
                f"Creating new partition foo-0 with topic id {foo}.",
                "Transitioning 1 partition(s) to local followers.",
                f"Creating new partition foo-1 with topic id {foo}.",
                "Stopped fetchers as part of become-follower for 1 partitions",
                "Started fetchers as part of become-follower for 1 partitions",
            ]
            # broker 2 fenced, this broker elected for foo-1: a local leader, no partition created
            await b.commit(mr.BrokerRegistrationChangeRecord(broker_id=2, broker_epoch=20, fenced=1, log_dirs=()),
                           mr.PartitionChangeRecord(partition_id=1, topic_id=FOO, leader=1, isr=(1,)))
            assert _messages(path)[6:] == ["Transitioning 1 partition(s) to local leaders."]
            await b.commit(mr.RemoveTopicRecord(FOO))
            assert _messages(path)[7:] == ["Deleting 2 partition(s)."]
    finally:
        state_change_log.close()
