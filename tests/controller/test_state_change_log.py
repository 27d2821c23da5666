"""Kafka's state-change.log: the controller's and the brokers' lines in Kafka 3.9's shapes, written
per broker to ``<first log dir>/state-change.log`` (kafkalike.controller.state_change_logger).

The cluster test kills a broker of a real 3-broker cluster and follows the change through the
files: the controller moves the dead broker's partitions to OnlinePartition with new leaders,
its replicas to OfflineReplica, sends LeaderAndIsr to the survivors, and each survivor logs
that request under the correlation id the controller logged its answer with."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.controller.state_change_logger import (
    TRACE,
    StateChangeLog,
    StateChangeLogger,
    leader_and_isr_str,
)
from kafkalike.coordination.zk_data import LeaderIsrAndControllerEpoch

#: log4j's ``[%d] %p %m (%c)``
LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] (TRACE|DEBUG|INFO|WARN|ERROR) (.*) "
                  r"\(state\.change\.logger\)$")


def test_lines_have_kafkas_layout_prefix_and_leader_and_isr_shape(tmp_path: Path) -> None:
    path = tmp_path / "state-change.log"
    log = StateChangeLog(path)
    controller = StateChangeLogger(1, in_controller_context=True, log=log)
    broker = StateChangeLogger(2, in_controller_context=False, log=log)
    li = LeaderIsrAndControllerEpoch(leader=1, leader_epoch=4, isr=(1, 2), controller_epoch=3, zk_version=5)
    controller.with_controller_epoch(3).info(f"Changed partition flights-0 from OfflinePartition to "
                                             f"OnlinePartition with state {leader_and_isr_str(li)}")
    broker.trace("Handling LeaderAndIsr request correlationId 5 from controller 1 for 3 partitions")
    controller.with_controller_epoch(3).error("Controller 1 epoch 3 failed to change state",
                                              "kafka.common.StateChangeFailedException: why")
    log.close()
    lines = path.read_text().splitlines()
    parsed = [LINE.match(line) for line in lines[:2]]
    assert all(parsed), lines
    assert parsed[0] and parsed[0].group(2) == "INFO" and parsed[0].group(3) == (
        "[Controller id=1 epoch=3] Changed partition flights-0 from OfflinePartition to OnlinePartition with "
        "state LeaderAndIsr(leader=1, leaderEpoch=4, isrWithBrokerEpoch=List(BrokerState(brokerId=1, "
        "brokerEpoch=-1), BrokerState(brokerId=2, brokerEpoch=-1)), leaderRecoveryState=RECOVERED, "
        "partitionEpoch=5)")
    assert parsed[1] and parsed[1].group(2) == "TRACE" and parsed[1].group(3).startswith("[Broker id=2] Handling")
    # the cause goes on its own line after the ERROR line, as log4j prints an exception
    assert lines[2].startswith("[") and " ERROR [Controller id=1 epoch=3] Controller 1 epoch 3 failed" in lines[2]
    assert lines[3] == "kafka.common.StateChangeFailedException: why (state.change.logger)"


def test_info_level_keeps_trace_lines_out_and_a_broker_logger_refuses_an_epoch(tmp_path: Path) -> None:
    import logging

    import pytest

    path = tmp_path / "state-change.log"
    log = StateChangeLog(path, level=logging.INFO)
    scl = StateChangeLogger(7, in_controller_context=True, log=log)
    assert not scl.is_trace_enabled
    scl.trace("Changed state of replica 2 for partition t-0 from OnlineReplica to OfflineReplica")
    scl.info("Sending LeaderAndIsr request to broker 2 with 0 become-leader and 1 become-follower partitions")
    log.close()
    assert [LINE.match(x).group(3) for x in path.read_text().splitlines()] == [  # type: ignore[union-attr]
        "[Controller id=7] Sending LeaderAndIsr request to broker 2 with 0 become-leader and 1 become-follower "
        "partitions"]
    with pytest.raises(ValueError):
        StateChangeLogger(7, in_controller_context=False, controller_epoch=1)
    assert StateChangeLog(tmp_path / "x.log").is_enabled_for(TRACE)


# ---- a real cluster ------------------------------------------------------------------------


def messages(path: Path) -> list[str]:
    """The file's messages (level and ``(state.change.logger)`` stripped), in order."""
    if not path.exists():
        return []
    return [m.group(2) + " " + m.group(3) for m in map(LINE.match, path.read_text().splitlines()) if m]


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def index_of(lines: list[str], pattern: str, start: int = 0) -> int:
    """Index of the first line at or after ``start`` matching ``pattern`` (regex), else -1."""
    rx = re.compile(pattern)
    return next((i for i in range(start, len(lines)) if rx.search(lines[i])), -1)


def test_a_killed_broker_shows_in_the_controllers_and_survivors_state_change_logs_in_order(
        make_cluster: Callable[..., LocalCluster]) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    cluster = make_cluster(3)
    topic = "flights"
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, 3, 3)], timeout_ms=30000)
        controller = int(admin.describe_cluster()["controller_id"])
    finally:
        admin.close()
    files = {b: cluster.broker_dir(b) / "logs" / "state-change.log" for b in cluster.broker_ids}
    assert controller in cluster.broker_ids
    ctl_file = files[controller]
    # creation: each partition New -> Online, and every broker hears of its replicas
    wait_for("the topic's partitions online in the controller's log", lambda: sum(
        1 for m in messages(ctl_file)
        if re.search(rf"Changed partition {topic}-\d from NewPartition to OnlinePartition with state "
                     r"LeaderAndIsr\(leader=\d, leaderEpoch=0, ", m)) == 3)
    new_lines = messages(ctl_file)
    assert any(re.search(rf"INFO \[Controller id={controller} epoch=\d+\] Changed partition {topic}-0 state from "
                         rf"NonExistentPartition to NewPartition with assigned replicas \d,\d,\d$", m)
               for m in new_lines), new_lines
    for b in cluster.broker_ids:
        wait_for(f"broker {b} handling the topic's LeaderAndIsr", lambda b=b: any(
            f"Received LeaderAndIsr request LeaderAndIsrPartitionState(topicName='{topic}'" in m
            for m in messages(files[b])))

    # kill -9 a broker that is not the controller and leads one of the partitions
    led = {int(m.group(1)): int(m.group(2)) for m in (re.search(
        rf"Changed partition {topic}-(\d) from NewPartition to OnlinePartition with state LeaderAndIsr\(leader=(\d)",
        x) for x in new_lines) if m}
    victim = next(b for b in cluster.broker_ids if b != controller and b in led.values())
    survivors = [b for b in cluster.broker_ids if b != victim]
    moved = sorted(p for p, leader in led.items() if leader == victim)
    mark = {b: len(messages(files[b])) for b in survivors}
    assert cluster.kill_broker(victim)

    def after_kill(b: int) -> list[str]:
        return messages(files[b])[mark[b]:]

    online = [rf"Changed partition {topic}-{p} from OfflinePartition to OnlinePartition with state "
              rf"LeaderAndIsr\(leader=(?!{victim})\d, leaderEpoch=1, " for p in moved]
    wait_for("the victim's replicas offline in the controller's log", lambda: all(
        index_of(after_kill(controller), rf"Changed state of replica {victim} for partition {topic}-{p} from "
                 r"OnlineReplica to OfflineReplica") >= 0 for p in range(3)))
    lines = after_kill(controller)
    prefix = rf"\[Controller id={controller} epoch=\d+\] "
    # Kafka's onBrokerFailure order: led partitions Online -> Offline, new leaders elected (Offline ->
    # Online), LeaderAndIsr to the survivors, then the dead broker's replicas go OfflineReplica
    first_offline = index_of(lines, rf"TRACE {prefix}Changed partition {topic}-{moved[0]} state from "
                             r"OnlinePartition to OfflinePartition$")
    assert first_offline >= 0, lines
    first_online = index_of(lines, "INFO " + prefix + online[0], first_offline)
    assert first_online > first_offline, lines
    for pattern in online[1:]:
        assert index_of(lines, pattern, first_offline) > first_offline, lines
    sending = index_of(lines, rf"INFO {prefix}Sending LeaderAndIsr request to broker {survivors[0]} with \d+ "
                       r"become-leader and \d+ become-follower partitions", first_online)
    assert sending > first_online, lines
    replica_offline = index_of(lines, rf"Changed state of replica {victim} for partition {topic}-\d from "
                               "OnlineReplica to OfflineReplica", first_online)
    assert replica_offline > first_online, lines
    assert index_of(lines, rf"Sending StopReplica request .* to broker {victim}") == -1  # it is not live

    # each survivor handled a LeaderAndIsr whose correlation id the controller logged with its answer
    for b in survivors:
        handled: list[str] = []

        def got_it(b: int = b) -> bool:
            handled[:] = [m for m in after_kill(b) if re.search(
                rf"INFO \[Broker id={b}\] Handling LeaderAndIsr request correlationId \d+ from controller "
                rf"{controller} for \d+ partitions", m)]
            return bool(handled)

        wait_for(f"broker {b}'s LeaderAndIsr after the kill", got_it)
        cid = re.search(r"correlationId (\d+)", handled[0]).group(1)  # type: ignore[union-attr]
        mine = after_kill(b)
        start = index_of(mine, rf"Handling LeaderAndIsr request correlationId {cid} ")
        assert index_of(mine, rf"Received LeaderAndIsr request LeaderAndIsrPartitionState\(topicName='{topic}', "
                        rf".*\) correlation id {cid} from controller {controller} epoch \d+$", start) > start, mine
        assert index_of(mine, rf"Finished LeaderAndIsr request in \d+ms correlationId {cid} from controller "
                        rf"{controller} for \d+ partitions", start) > start, mine
        wait_for(f"the controller's record of broker {b}'s answer to correlation id {cid}", lambda b=b, cid=cid: (
            index_of(after_kill(controller), rf"Received response LeaderAndIsrResponse\(errorCode=0\) for request "
                     rf"LEADER_AND_ISR with correlation id {cid} sent to broker 127\.0\.0\.{b}:\d+ "
                     rf"\(id: {b} rack: null\)") >= 0), timeout=30)
    # the new leader of a moved partition went through the become-leader transition
    for p in moved:
        new_leader = int(re.search(online[0].replace(f"{topic}-{moved[0]}", f"{topic}-{p}")  # type: ignore[union-attr]
                                   .replace(rf"(?!{victim})\d", r"(\d)"), "\n".join(lines)).group(1))
        assert index_of(after_kill(new_leader), rf"Handling LeaderAndIsr request correlationId \d+ from "
                        rf"controller {controller} epoch \d+ starting the become-leader transition for partition "
                        rf"{topic}-{p}$") >= 0, after_kill(new_leader)
