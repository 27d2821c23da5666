"""The dashboard's reading of state-change.log files: lines written by the real
StateChangeLogger (the broker's writer) into files, read back by StateChangeLogReader as they
grow, and summed up into timeline lines."""

from __future__ import annotations

from pathlib import Path

from kafkalike.controller.state_change_logger import (
    StateChangeLog,
    StateChangeLogger,
    leader_and_isr_partition_state_str,
    leader_and_isr_str,
)
from kafkalike.coordination.zk_data import LeaderIsrAndControllerEpoch
from kafkalike.dashboard.state_change_log import StateChangeLogReader, StateChangeTimeline, summarize


def write_kill_of_broker_1(ctl_log: StateChangeLog, b2_log: StateChangeLog) -> None:
    """What controller 2 and broker 2 write when broker 1, leader of flights-1, dies."""
    ctl = StateChangeLogger(2, in_controller_context=True, log=ctl_log).with_controller_epoch(3)
    ctl.trace("Changed partition flights-1 state from OnlinePartition to OfflinePartition")
    for p in range(40):
        ctl.trace(f"Changed partition __consumer_offsets-{p} state from OnlinePartition to OfflinePartition")
    li = LeaderIsrAndControllerEpoch(leader=2, leader_epoch=4, isr=(2, 3), controller_epoch=3, zk_version=5)
    ctl.info(f"Changed partition flights-1 from OfflinePartition to OnlinePartition with state {leader_and_isr_str(li)}")
    ctl.info("Sending LeaderAndIsr request to broker 2 with 1 become-leader and 0 become-follower partitions")
    ctl.info("Sending UpdateMetadata request to brokers HashSet(2, 3) for 1 partitions")
    for p in range(3):
        ctl.trace(f"Changed state of replica 1 for partition flights-{p} from OnlineReplica to OfflineReplica")
    ctl.error("Controller 2 epoch 3 failed to change state for partition flights-9 from OfflinePartition to "
              "OnlinePartition", "kafka.common.StateChangeFailedException: Failed to elect leader")
    broker = StateChangeLogger(2, in_controller_context=False, log=b2_log)
    broker.info("Handling LeaderAndIsr request correlationId 8 from controller 2 for 1 partitions")
    state = leader_and_isr_partition_state_str("flights", 1, 3, 2, 4, [2, 3], 5, [1, 2, 3])
    broker.trace(f"Received LeaderAndIsr request {state} correlation id 8 from controller 2 epoch 3")


def test_reader_follows_files_from_their_end_and_the_timeline_names_steps_and_correlation_ids(
        tmp_path: Path) -> None:
    files = {2: tmp_path / "b2" / "state-change.log", 3: tmp_path / "b3" / "state-change.log"}
    for f in files.values():
        f.parent.mkdir()
    old = StateChangeLog(files[2])
    StateChangeLogger(2, True, log=old).info("Sending LeaderAndIsr request to broker 9 with 0 become-leader and "
                                             "1 become-follower partitions")
    old.close()
    reader = StateChangeLogReader(files)  # broker 3's file does not exist yet
    assert reader.poll() == []  # what was there before is not news

    b2, b3 = StateChangeLog(files[2]), StateChangeLog(files[3])
    write_kill_of_broker_1(b2, b2)
    StateChangeLogger(3, False, log=b3).info("Handling StopReplica request correlationId 4 from controller 2 for "
                                             "0 partitions")
    records = reader.poll()
    assert {r.broker_id for r in records} == {2, 3}
    error = next(r for r in records if r.level == "ERROR")
    assert error.message.endswith("\nkafka.common.StateChangeFailedException: Failed to elect leader")

    timeline = StateChangeTimeline()
    texts = [e.text for e in timeline.feed(records, now_ms=records[-1].ts_ms)]
    assert ("controller 2 (epoch 3): flights-1 OfflinePartition\u2192OnlinePartition, leader 2, leader epoch 4, "
            "ISR [2, 3], zkVersion 5") in texts
    assert "controller 2 (epoch 3): flights-1 + 40 __consumer_offsets OnlinePartition\u2192OfflinePartition" in texts
    assert ("controller 2 (epoch 3): replica 1 OnlineReplica\u2192OfflineReplica for flights-0, flights-1, "
            "flights-2") in texts
    assert ("controller 2 (epoch 3) \u2192 broker 2: LeaderAndIsr (1 become-leader, 0 become-follower)") in texts
    assert "controller 2 (epoch 3) \u2192 brokers [2, 3]: UpdateMetadata for 1 partitions" in texts
    assert any(t.startswith("state-change.log of broker 2: ERROR controller 2: Controller 2 epoch 3 failed")
               for t in texts)
    assert "broker 3 \u2190 StopReplica correlation id 4 from controller 2: 0 partitions" in texts
    # broker 2's LeaderAndIsr has not finished yet: it waits for its Finished line
    assert not any("correlation id 8" in t for t in texts)
    broker = StateChangeLogger(2, in_controller_context=False, log=b2)
    broker.trace("Handling LeaderAndIsr request correlationId 8 from controller 2 epoch 3 starting the "
                 "become-leader transition for partition flights-1")
    broker.info("Finished LeaderAndIsr request in 3ms correlationId 8 from controller 2 for 1 partitions")
    later = [e.text for e in timeline.feed(reader.poll(), now_ms=records[-1].ts_ms)]
    assert later == ["broker 2 \u2190 LeaderAndIsr correlation id 8 from controller 2 (epoch 3): leads flights-1 "
                     "(flights-1 at leader epoch 4, ISR [2, 3]) in 3 ms"]
    b2.close()
    b3.close()


def test_a_file_that_shrank_is_read_again_and_partial_lines_wait(tmp_path: Path) -> None:
    path = tmp_path / "state-change.log"
    path.write_text("")
    reader = StateChangeLogReader({1: path})
    line = "[2026-12-07 03:05:27,419] INFO [Controller id=1 epoch=2] Sending UpdateMetadata request to brokers " \
           "HashSet(1) for 2 partitions (state.change.logger)"
    path.write_text(line)  # no newline yet: not read
    assert reader.poll() == []
    path.write_text(line + "\n" + line + "\n")
    assert len(reader.poll()) == 2
    path.write_text(line + "\n")  # rotated: a new, shorter file
    assert [r.message for r in reader.poll()] == ["Sending UpdateMetadata request to brokers HashSet(1) for 2 "
                                                   "partitions"]
    assert [e.text for e in summarize(reader.poll())] == []
