"""StateChangeLogger: Kafka's ``state-change.log``, the controller's and the brokers' record of
every partition and replica state change (Kafka's kafka.controller.StateChangeLogger).

In Kafka every state change goes to the log4j logger ``state.change.logger``, which Kafka's
``config/log4j.properties`` sends to ``${kafka.logs.dir}/state-change.log`` with the layout
``[%d] %p %m (%c)%n``::

    [2026-12-07 03:01:02,123] INFO [Controller id=1 epoch=3] Changed partition flights-0 from
    OfflinePartition to OnlinePartition with state LeaderAndIsr(leader=1, leaderEpoch=4, ...)
    (state.change.logger)

(one line in the file). The ``[Controller id=1 epoch=3] `` / ``[Broker id=2] `` prefix is what
the StateChangeLogger class adds (its ``logIdent``). kafkalike writes the same lines, one file
per broker, through a Python ``logging`` file handler owned by a StateChangeLog; a
StateChangeLogger is Kafka's class: broker id, controller context or not, controller epoch,
and the log it writes to.

The message shapes (``leader_and_isr_str``, ``leader_and_isr_partition_state_str``, ...) follow
Kafka 3.9's ``toString`` of the objects Kafka interpolates (``kafka.api.LeaderAndIsr``, the
generated ``LeaderAndIsrPartitionState`` / ``StopReplicaPartitionState`` message classes,
``org.apache.kafka.common.Node``, Scala's ``HashSet``), so that tools and eyes used to Kafka's
file read ours unchanged.

Level: the log records TRACE and up by default (Kafka's shipped log4j config used TRACE for
this logger up to 2.x and INFO since; the per-partition lines Kafka writes at TRACE are what
make a change followable partition by partition). ``StateChangeLog(path, level=INFO)`` keeps
only Kafka 3.x's default lines.

Source: Kafka core kafka.controller.StateChangeLogger, PartitionStateMachine,
ReplicaStateMachine, ControllerChannelManager, kafka.server.ReplicaManager (3.9);
config/log4j.properties.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kafkalike.coordination.zk_data import LeaderIsrAndControllerEpoch, TopicPartition

#: log4j's TRACE, below logging.DEBUG
TRACE = 5
#: what Kafka's pattern prints for each level (%p)
_LEVEL_NAMES = {TRACE: "TRACE", logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN",
                logging.ERROR: "ERROR"}
#: the file's name in Kafka's log4j.properties
STATE_CHANGE_LOG_FILE = "state-change.log"
#: the logger name Kafka's lines end with, ``(%c)``
LOGGER_NAME = "state.change.logger"


class StateChangeLog:
    """One ``state-change.log`` file (Kafka's stateChangeAppender).

    path: the file, appended to and opened at the first line (its directory must exist by
    then: a broker's log dir, which LogManager creates); None: a log that writes nothing
    (components built without a file, e.g. in unit tests). level: the lowest level written
    (TRACE = 5 by default, logging.INFO for Kafka 3.x's default lines). Each line is written
    and flushed synchronously (a few hundred bytes; log4j's FileAppender does the same), except
    inside ``buffered()``: the lines of a synchronous stretch (the per-partition lines of one
    LeaderAndIsr, one replica state change) are written with one write and one flush when it
    ends, in the order they were made. A failed write (missing dir, disk full) is reported on
    stderr, never raised into the caller. ``close()`` closes the file.

    Lines are formatted here, not through ``logging``: a LogRecord per line (with logging's
    search of the caller's stack frame) and a flush per line cost ~0.1-0.4 ms each, and a
    controller failover at 10,000 partitions writes tens of thousands of TRACE lines on the
    event loop (docs/benchmarks.md, "Controller failover and controlled shutdown").
    """

    def __init__(self, path: Path | str | None, level: int = TRACE) -> None:
        self.path = Path(path) if path is not None else None
        self.level = level
        self._file: Any = None
        self._closed = self.path is None
        self._buffer: list[str] | None = None
        self._depth = 0
        self._stamp_second = -1
        self._stamp = ""
        self._lock = threading.Lock()  # a broker thread may write too (lines stay whole)

    def is_enabled_for(self, level: int) -> bool:
        return not self._closed and level >= self.level

    def _format(self, level: int, message: str) -> str:
        """``[%d] %p %m (%c)`` with log4j's ISO8601 %d: ``2026-12-07 03:01:02,123`` (local time)."""
        now = time.time()
        second = int(now)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        ms = int((now - second) * 1000)
        return f"[{self._stamp},{ms:03d}] {_LEVEL_NAMES.get(level, logging.getLevelName(level))} {message} ({LOGGER_NAME})\n"

    def write(self, level: int, message: str) -> None:
        """Append one line at ``level``."""
        if self._closed or level < self.level:
            return
        line = self._format(level, message)
        with self._lock:
            if self._buffer is not None:
                self._buffer.append(line)
            else:
                self._emit(line)

    @contextlib.contextmanager
    def buffered(self) -> Iterator[None]:
        """Within the block (for synchronous stretches of code), lines are kept and written
        with one write and one flush at its end; blocks may nest (the outermost writes)."""
        with self._lock:
            self._depth += 1
            if self._buffer is None:
                self._buffer = []
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    lines, self._buffer = self._buffer, None
                    if lines:
                        self._emit("".join(lines))

    def _emit(self, text: str) -> None:
        """Write ``text`` and flush; errors go to stderr (logging.Handler.handleError's way)."""
        try:
            if self._file is None:
                assert self.path is not None
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write(text)
            self._file.flush()
        except Exception as exc:
            print(f"--- state-change.log write failed ({self.path}): {exc!r}", file=sys.stderr)

    def close(self) -> None:
        with self._lock:
            if self._buffer:
                lines, self._buffer = self._buffer, None
                self._emit("".join(lines))
            self._closed = True
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass
                self._file = None


#: shared by components built without a state-change log
NULL_STATE_CHANGE_LOG = StateChangeLog(None)


class StateChangeLogger:
    """Kafka's StateChangeLogger: writes ``[Controller id=<broker_id> epoch=<controller_epoch>] ``
    or ``[Broker id=<broker_id>] `` + message to a StateChangeLog.

    broker_id: this broker's id. in_controller_context: True for the controller's components
    (prefix "Controller"), False for the broker's (ReplicaManager: prefix "Broker").
    controller_epoch: only in controller context (Kafka raises IllegalArgumentException
    otherwise; here ValueError). log: the file; default writes nothing.
    ``with_controller_epoch(e)`` gives the logger a controller component uses for one step
    (Kafka's withControllerEpoch).
    """

    def __init__(self, broker_id: int, in_controller_context: bool, controller_epoch: int | None = None,
                 log: StateChangeLog = NULL_STATE_CHANGE_LOG) -> None:
        if controller_epoch is not None and not in_controller_context:
            raise ValueError("Controller epoch should only be defined if inControllerContext is true")
        self.broker_id = broker_id
        self.in_controller_context = in_controller_context
        self.controller_epoch = controller_epoch
        self.log = log
        prefix = "Controller" if in_controller_context else "Broker"
        epoch = "" if controller_epoch is None else f" epoch={controller_epoch}"
        self.log_ident = f"[{prefix} id={broker_id}{epoch}] "

    def with_controller_epoch(self, controller_epoch: int) -> StateChangeLogger:
        return StateChangeLogger(self.broker_id, self.in_controller_context, controller_epoch, self.log)

    def message_with_prefix(self, message: str) -> str:
        return self.log_ident + message

    def buffered(self) -> contextlib.AbstractContextManager[None]:
        """The log's ``buffered()``: the lines of a synchronous stretch in one write."""
        return self.log.buffered()

    @property
    def is_trace_enabled(self) -> bool:
        return self.log.is_enabled_for(TRACE)

    def trace(self, message: str) -> None:
        self.log.write(TRACE, self.log_ident + message)

    def info(self, message: str) -> None:
        self.log.write(logging.INFO, self.log_ident + message)

    def warn(self, message: str) -> None:
        self.log.write(logging.WARNING, self.log_ident + message)

    def error(self, message: str, cause: str | None = None) -> None:
        """An ERROR line; ``cause`` (Kafka's Throwable, e.g. ``"kafka.common.StateChangeFailedException:
        ..."``) goes on the next line, where log4j prints the exception."""
        self.log.write(logging.ERROR, self.log_ident + message + ("" if cause is None else "\n" + cause))


# ---- Kafka's toString of the objects the lines interpolate ---------------------------------


def scala_list(items: Iterable[object]) -> str:
    """Scala's ``List(1, 2)``."""
    return "List(" + ", ".join(str(i) for i in items) + ")"


def scala_set(items: Iterable[object]) -> str:
    """Scala 2.13's mutable ``HashSet(1, 2, 3)`` (Kafka's updateMetadataRequestBrokerSet)."""
    return "HashSet(" + ", ".join(str(i) for i in items) + ")"


def java_list(items: Iterable[object]) -> str:
    """A generated message's int array field, ``[1, 2]`` (MessageUtil.deepToString)."""
    return "[" + ", ".join(str(i) for i in items) + "]"


def leader_and_isr_str(li: LeaderIsrAndControllerEpoch) -> str:
    """Kafka 3.9's ``kafka.api.LeaderAndIsr.toString`` for a ZooKeeper-mode state: the ISR as
    BrokerState entries with broker epoch -1 (ZooKeeper mode does not know them), the
    partition epoch is the state znode's zkVersion."""
    isr = scala_list(f"BrokerState(brokerId={b}, brokerEpoch=-1)" for b in li.isr)
    recovery = "RECOVERING" if li.leader_recovery_state == 1 else "RECOVERED"
    return (f"LeaderAndIsr(leader={li.leader}, leaderEpoch={li.leader_epoch}, isrWithBrokerEpoch={isr}, "
            f"leaderRecoveryState={recovery}, partitionEpoch={li.zk_version})")


def leader_and_isr_partition_state_str(topic: str, partition: int, controller_epoch: int, leader: int,
                                       leader_epoch: int, isr: Sequence[int], partition_epoch: int,
                                       replicas: Sequence[int], adding: Sequence[int] = (),
                                       removing: Sequence[int] = (), is_new: bool = False,
                                       leader_recovery_state: int = 0) -> str:
    """The generated ``LeaderAndIsrPartitionState.toString`` (LeaderAndIsrRequest.json)."""
    return (f"LeaderAndIsrPartitionState(topicName='{topic}', partitionIndex={partition}, "
            f"controllerEpoch={controller_epoch}, leader={leader}, leaderEpoch={leader_epoch}, "
            f"isr={java_list(isr)}, partitionEpoch={partition_epoch}, replicas={java_list(replicas)}, "
            f"addingReplicas={java_list(adding)}, removingReplicas={java_list(removing)}, "
            f"isNew={'true' if is_new else 'false'}, leaderRecoveryState={leader_recovery_state})")


def stop_replica_partition_state_str(partition: int, leader_epoch: int, delete_partition: bool) -> str:
    """The generated ``StopReplicaPartitionState.toString`` (StopReplicaRequest.json v3+)."""
    return (f"StopReplicaPartitionState(partitionIndex={partition}, leaderEpoch={leader_epoch}, "
            f"deletePartition={'true' if delete_partition else 'false'})")


def node_str(host: str, port: int, broker_id: int, rack: str | None = None) -> str:
    """``org.apache.kafka.common.Node.toString``: ``127.0.0.2:9092 (id: 2 rack: null)``."""
    return f"{host}:{port} (id: {broker_id} rack: {rack if rack is not None else 'null'})"


def partition_str(tp: TopicPartition) -> str:
    """``TopicPartition.toString``: ``flights-0``."""
    return f"{tp.topic}-{tp.partition}"


# ---- the broker's lines (Kafka's ReplicaManager.becomeLeaderOrFollower / stopReplicas) -------

#: STALE_CONTROLLER_EPOCH, STALE_BROKER_EPOCH (Kafka error codes)
_STALE_CONTROLLER_EPOCH = 11
_STALE_BROKER_EPOCH = 77


def _leader_and_isr_states(version: int, request: Any) -> list[tuple[str, Any]]:
    """[(topic, LeaderAndIsrPartitionState)] of a LeaderAndIsr request of any version."""
    if version >= 2:
        return [(t.topic_name, p) for t in request.topic_states for p in t.partition_states]
    return [(p.topic_name, p) for p in request.ungrouped_partition_states]


def _leader_and_isr_errors(version: int, request: Any, response: Any) -> dict[tuple[str, int], int]:
    """{(topic, partition): error code} of a LeaderAndIsr response (v5+ names topics by id)."""
    if version >= 5:
        names = {t.topic_id: t.topic_name for t in request.topic_states}
        return {(names.get(t.topic_id, ""), e.partition_index): e.error_code
                for t in response.topics for e in t.partition_errors}
    return {(e.topic_name, e.partition_index): e.error_code for e in response.partition_errors}


def log_leader_and_isr_received(scl: StateChangeLogger, correlation_id: int, version: int, request: Any) -> None:
    """Kafka's lines on taking a LeaderAndIsr request: "Handling LeaderAndIsr request
    correlationId 5 from controller 1 for 3 partitions" (INFO) and, per partition, "Received
    LeaderAndIsr request LeaderAndIsrPartitionState(...) correlation id 5 from controller 1
    epoch 3" (TRACE). ``scl``: the broker's logger (not in controller context)."""
    states = _leader_and_isr_states(version, request)
    cid, ctl = correlation_id, request.controller_id
    with scl.buffered():
        scl.info(f"Handling LeaderAndIsr request correlationId {cid} from controller {ctl} for {len(states)} partitions")
        if scl.is_trace_enabled:
            for topic, p in states:
                state = leader_and_isr_partition_state_str(
                    topic, p.partition_index, p.controller_epoch, p.leader, p.leader_epoch, p.isr, p.zk_version,
                    p.replicas, p.adding_replicas, p.removing_replicas, p.is_new, p.leader_recovery_state)
                scl.trace(f"Received LeaderAndIsr request {state} correlation id {cid} from controller {ctl} "
                          f"epoch {request.controller_epoch}")


def log_leader_and_isr_handled(scl: StateChangeLogger, broker_id: int, correlation_id: int, version: int,
                               request: Any, response: Any, elapsed_ms: float) -> None:
    """Kafka's lines once a LeaderAndIsr request was handled (``response``: its answer): for
    the partitions this broker now leads (answered NONE, leader = ``broker_id``) the
    become-leader transition, for the others the become-follower one, then "Finished
    LeaderAndIsr request in 12ms correlationId 5 from controller 1 for 3 partitions". A request
    refused as a whole (STALE_CONTROLLER_EPOCH, STALE_BROKER_EPOCH) gets Kafka's WARN instead.
    Kafka writes the transition lines while it works; kafkalike writes them after (same order)."""
    cid, ctl, epoch = correlation_id, request.controller_id, request.controller_epoch
    if response.error_code == _STALE_CONTROLLER_EPOCH:
        scl.warn(f"Ignoring LeaderAndIsr request from controller {ctl} with correlation id {cid} since its "
                 f"controller epoch {epoch} is old.")
        return
    if response.error_code == _STALE_BROKER_EPOCH:
        scl.warn(f"Ignoring LeaderAndIsr request from controller {ctl} with correlation id {cid} since its "
                 f"broker epoch {request.broker_epoch} is stale.")
        return
    with scl.buffered():
        errors = _leader_and_isr_errors(version, request, response)
        states = [(t, p) for t, p in _leader_and_isr_states(version, request) if errors.get((t, p.partition_index)) == 0]
        lead = [(t, p) for t, p in states if p.leader == broker_id]
        follow = [(t, p) for t, p in states if p.leader != broker_id]
        trace = scl.is_trace_enabled
        if lead:
            if trace:
                for t, p in lead:
                    scl.trace(f"Handling LeaderAndIsr request correlationId {cid} from controller {ctl} epoch {epoch} "
                              f"starting the become-leader transition for partition {t}-{p.partition_index}")
            scl.info(f"Stopped fetchers as part of LeaderAndIsr request correlationId {cid} from controller {ctl} "
                     f"epoch {epoch} as part of the become-leader transition for {len(lead)} partitions")
            if trace:
                for t, p in lead:
                    scl.trace(f"Completed LeaderAndIsr request correlationId {cid} from controller {ctl} epoch {epoch} "
                              f"for the become-leader transition for partition {t}-{p.partition_index}")
        if follow:
            if trace:
                for t, p in follow:
                    scl.trace(f"Handling LeaderAndIsr request correlationId {cid} from controller {ctl} epoch {epoch} "
                              f"starting the become-follower transition for partition {t}-{p.partition_index} with "
                              f"leader {p.leader}")
            scl.info(f"Stopped fetchers as part of become-follower request from controller {ctl} epoch {epoch} with "
                     f"correlation id {cid} for {len(follow)} partitions")
            if trace:
                for t, p in follow:
                    scl.trace(f"Completed LeaderAndIsr request correlationId {cid} from controller {ctl} epoch {epoch} "
                              f"for the become-follower transition for partition {t}-{p.partition_index} with leader "
                              f"{p.leader}")
        total = len(_leader_and_isr_states(version, request))
        scl.info(f"Finished LeaderAndIsr request in {int(elapsed_ms)}ms correlationId {cid} from controller {ctl} "
                 f"for {total} partitions")


def log_stop_replica_received(scl: StateChangeLogger, correlation_id: int, version: int, request: Any) -> None:
    """Kafka's lines on taking a StopReplica request: "Handling StopReplica request
    correlationId 7 from controller 1 for 3 partitions" (INFO) and per partition "Received
    StopReplica request StopReplicaPartitionState(partitionIndex=0, leaderEpoch=4,
    deletePartition=false) correlation id 7 from controller 1 epoch 3 for partition t-0" (TRACE;
    v0-v2 carry no leader epoch: -1, as Kafka's request converts them)."""
    parts: list[tuple[str, int, int, bool]] = []
    if version >= 3:
        parts = [(t.topic_name, p.partition_index, p.leader_epoch, p.delete_partition)
                 for t in request.topic_states for p in t.partition_states]
    elif version >= 1:
        parts = [(t.name, i, -1, request.delete_partitions) for t in request.topics for i in t.partition_indexes]
    else:
        parts = [(p.topic_name, p.partition_index, -1, request.delete_partitions) for p in request.ungrouped_partitions]
    cid, ctl = correlation_id, request.controller_id
    with scl.buffered():
        scl.info(f"Handling StopReplica request correlationId {cid} from controller {ctl} for {len(parts)} partitions")
        if scl.is_trace_enabled:
            for topic, partition, leader_epoch, delete in parts:
                scl.trace(f"Received StopReplica request {stop_replica_partition_state_str(partition, leader_epoch, delete)} "
                          f"correlation id {cid} from controller {ctl} epoch {request.controller_epoch} for partition "
                          f"{topic}-{partition}")
