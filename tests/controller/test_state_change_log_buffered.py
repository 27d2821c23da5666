"""StateChangeLog.buffered(): the per-partition lines of one state change (a LeaderAndIsr, a
replica state change) reach state-change.log with one write at the end of the block, in the
order they were made and in the same layout as lines written one by one; the broker's
LeaderAndIsr lines go through it (docs/benchmarks.md, "Controller failover and controlled
shutdown": a line through logging cost 0.26-0.34 ms)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from kafkalike.controller.state_change_logger import (
    StateChangeLog,
    StateChangeLogger,
    log_leader_and_isr_received,
)

#: log4j's ``[%d] %p %m (%c)``
LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] (TRACE|INFO|WARN|ERROR) (.*) \(state\.change\.logger\)$")


def _messages(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        assert m, line
        out.append((m.group(1), m.group(2)))
    return out


def test_lines_of_a_buffered_block_arrive_together_at_its_end_in_order(tmp_path: Path) -> None:
    path = tmp_path / "state-change.log"
    log = StateChangeLog(path)
    controller = StateChangeLogger(1, in_controller_context=True, controller_epoch=3, log=log)
    broker = StateChangeLogger(1, in_controller_context=False, log=log)
    controller.info("before the block")
    with controller.buffered():
        for p in range(3):
            controller.trace(f"Changed state of replica 2 for partition t-{p} from OnlineReplica to OfflineReplica")
            with broker.buffered():  # nested: the outermost block writes
                broker.trace(f"Received LeaderAndIsr request for t-{p}")
        assert _messages(path) == [("INFO", "[Controller id=1 epoch=3] before the block")]
    controller.info("after the block")
    log.close()
    assert _messages(path) == [
        ("INFO", "[Controller id=1 epoch=3] before the block"),
        ("TRACE", "[Controller id=1 epoch=3] Changed state of replica 2 for partition t-0 from OnlineReplica to OfflineReplica"),
        ("TRACE", "[Broker id=1] Received LeaderAndIsr request for t-0"),
        ("TRACE", "[Controller id=1 epoch=3] Changed state of replica 2 for partition t-1 from OnlineReplica to OfflineReplica"),
        ("TRACE", "[Broker id=1] Received LeaderAndIsr request for t-1"),
        ("TRACE", "[Controller id=1 epoch=3] Changed state of replica 2 for partition t-2 from OnlineReplica to OfflineReplica"),
        ("TRACE", "[Broker id=1] Received LeaderAndIsr request for t-2"),
        ("INFO", "[Controller id=1 epoch=3] after the block"),
    ]


def test_a_leader_and_isr_request_is_logged_per_partition_in_one_write(tmp_path: Path) -> None:
    """The broker's "Received LeaderAndIsr request" lines of a 500-partition request: Kafka's
    INFO line and one TRACE line per partition, all in the file at once (the file's size moves
    once), each in Kafka's LeaderAndIsrPartitionState shape."""
    path = tmp_path / "state-change.log"
    log = StateChangeLog(path)
    broker = StateChangeLogger(2, in_controller_context=False, log=log)
    states = [SimpleNamespace(partition_index=p, controller_epoch=3, leader=1, leader_epoch=4, isr=[1, 2],
                              zk_version=5, replicas=[1, 2], adding_replicas=[], removing_replicas=[],
                              is_new=False, leader_recovery_state=0) for p in range(500)]
    request = SimpleNamespace(controller_id=1, controller_epoch=3,
                              topic_states=[SimpleNamespace(topic_name="t", partition_states=states)])
    writes: list[int] = []
    emit = log._emit

    def counting_emit(text: str) -> None:
        writes.append(text.count("\n"))
        emit(text)

    log._emit = counting_emit  # type: ignore[method-assign]
    log_leader_and_isr_received(broker, 9, 6, request)
    log.close()
    assert writes == [501]
    got = _messages(path)
    assert got[0] == ("INFO", "[Broker id=2] Handling LeaderAndIsr request correlationId 9 from controller 1 "
                              "for 500 partitions")
    assert got[500] == ("TRACE", "[Broker id=2] Received LeaderAndIsr request LeaderAndIsrPartitionState("
                                 "topicName='t', partitionIndex=499, controllerEpoch=3, leader=1, leaderEpoch=4, "
                                 "isr=[1, 2], partitionEpoch=5, replicas=[1, 2], addingReplicas=[], "
                                 "removingReplicas=[], isNew=false, leaderRecoveryState=0) correlation id 9 from "
                                 "controller 1 epoch 3")
