"""The dashboard's reader of the brokers' ``state-change.log`` files: it follows each file as it
grows and turns what the controller and the brokers wrote into timeline lines.

Each broker writes Kafka's state-change log (kafkalike.controller.state_change_logger) to
``<first log dir>/state-change.log``; the dashboard, a client of the cluster it was started
for, reads those files (found from each broker's ``log.dirs`` in the cluster's config) from
where they ended when it started.

``StateChangeLogReader.poll()`` returns the ``Record``s written since the last call (complete
lines only; a cause line after an ERROR belongs to it; a file that shrank is read again from
its start). ``summarize(records)`` makes timeline ``Event``s of kind ``statechange``, one per
step rather than one per partition:

* controller: partitions changing state (``flights-0 OfflinePartition→OnlinePartition,
  leader 3, leader epoch 1, ISR [3, 2]``), replicas changing state (grouped per replica and
  transition), the LeaderAndIsr / UpdateMetadata / StopReplica requests it sends;
* broker: one line per LeaderAndIsr / StopReplica request it handled, named by the
  controller and the request's correlation id (the id the controller's file gives with the
  answer: ``Received response ... with correlation id 8 sent to broker 3``), with the
  partitions it now leads or follows and the time it took;
* WARN / ERROR lines as they are (kind ``error``).

Partitions of internal topics (``__consumer_offsets``) are counted, not listed.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import attrs

from kafkalike.controller.state_change_logger import STATE_CHANGE_LOG_FILE
from kafkalike.dashboard.state import INTERNAL_TOPICS, Event

#: ``[2026-12-07 03:05:27,419] INFO [Controller id=2 epoch=1] message (state.change.logger)``
_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\] (TRACE|DEBUG|INFO|WARN|ERROR) "
                   r"\[(Controller|Broker) id=(-?\d+)(?: epoch=(\d+))?\] (.*?)(?: \(state\.change\.logger\))?$")
#: bytes read from one file per poll at most (a huge backlog is read over several polls)
MAX_READ_BYTES = 4 * 1024 * 1024


@attrs.frozen
class Record:
    """One state-change.log line: ``broker_id`` (whose file), ``ts_ms`` (the line's time, ms
    since the epoch, local time as log4j writes it), ``level``, ``controller`` (True for
    "[Controller id=..]" lines), ``source_id`` (the id in the prefix), ``epoch`` (controller
    epoch, or None), ``message`` (with an ERROR's cause line after a newline)."""

    broker_id: int
    ts_ms: int
    level: str
    controller: bool
    source_id: int
    epoch: int | None
    message: str


def parse_line(broker_id: int, line: str) -> Record | None:
    """A Record of one line, or None if it is not a state-change.log line."""
    m = _LINE.match(line)
    if m is None:
        return None
    stamp, ms, level, who, source, epoch, message = m.groups()
    ts = int(time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))) * 1000 + int(ms)
    return Record(broker_id, ts, level, who == "Controller", int(source), int(epoch) if epoch else None, message)


@attrs.define
class _Tail:
    path: Path
    offset: int = 0


class StateChangeLogReader:
    """Follows ``paths`` ({broker id: its state-change.log}) from their current ends (files
    not there yet are read from their start once they appear). ``poll()`` is synchronous file
    I/O: run it in a worker thread."""

    def __init__(self, paths: dict[int, Path]) -> None:
        self._tails = {b: _Tail(p, _size(p)) for b, p in sorted(paths.items())}

    @classmethod
    def for_cluster(cls, cluster: object) -> "StateChangeLogReader":
        """The files of a LocalCluster's brokers: ``<first of log.dirs>/state-change.log``."""
        paths: dict[int, Path] = {}
        for b in cluster.broker_ids:  # type: ignore[attr-defined]  # cluster: a LocalCluster, not imported (layering)
            log_dirs = cluster.server_properties(b).get("log.dirs", "")  # type: ignore[attr-defined]  # cluster: a LocalCluster, not imported (layering)
            if log_dirs:
                paths[b] = Path(log_dirs.split(",")[0]) / STATE_CHANGE_LOG_FILE
        return cls(paths)

    def poll(self) -> list[Record]:
        """The records written since the last poll, each file's in order, files by broker id."""
        out: list[Record] = []
        for broker_id, tail in self._tails.items():
            size = _size(tail.path)
            if size < tail.offset:  # replaced or truncated: read the new file from its start
                tail.offset = 0
            if size == tail.offset:
                continue
            try:
                with tail.path.open("rb") as f:
                    f.seek(tail.offset)
                    data = f.read(min(size - tail.offset, MAX_READ_BYTES))
            except OSError:
                continue
            end = data.rfind(b"\n")
            if end < 0:
                continue
            tail.offset += end + 1
            for line in data[:end].decode("utf-8", "replace").split("\n"):
                rec = parse_line(broker_id, line)
                if rec is not None:
                    out.append(rec)
                elif out and out[-1].broker_id == broker_id and line.strip():
                    # an ERROR's cause, on the next line as log4j prints an exception
                    cause = line.removesuffix(" (state.change.logger)")
                    out[-1] = attrs.evolve(out[-1], message=out[-1].message + "\n" + cause)
        return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# ---- from records to timeline lines ---------------------------------------------------------

_CHANGED_ONLINE = re.compile(r"^Changed partition (.+)-(\d+) from (\w+) to (\w+) with state LeaderAndIsr\("
                             r"leader=(-?\d+), leaderEpoch=(\d+), isrWithBrokerEpoch=List\((.*?)\), "
                             r"leaderRecoveryState=\w+, partitionEpoch=(-?\d+)\)$")
_CHANGED_STATE = re.compile(r"^Changed partition (.+)-(\d+) state from (\w+) to (\w+)(?: with assigned replicas "
                            r"([\d,]*))?$")
_REPLICA = re.compile(r"^Changed state of replica (\d+) for partition (.+)-(\d+) from (\w+) to (\w+)$")
_SEND_LAI = re.compile(r"^Sending LeaderAndIsr request to broker (\d+) with (\d+) become-leader and (\d+) "
                       r"become-follower partitions$")
_SEND_UM = re.compile(r"^Sending UpdateMetadata request to brokers \w*\(([\d, ]*)\) for (\d+) partitions$")
_SEND_SR = re.compile(r"^Sending StopReplica request \(delete = (\w+)\) for (\d+) replicas to broker (\d+)$")
_RESPONSE = re.compile(r"^Received response (\w+)\(errorCode=(-?\d+)\) for request (\w+) with correlation id (\d+) "
                       r"sent to broker .*\(id: (\d+) ")
_HANDLING = re.compile(r"^Handling (LeaderAndIsr|StopReplica) request correlationId (\d+) from controller (\d+) for "
                       r"(\d+) partitions$")
_RECEIVED_LAI = re.compile(r"^Received LeaderAndIsr request LeaderAndIsrPartitionState\(topicName='(.*?)', "
                           r"partitionIndex=(\d+), controllerEpoch=(\d+), leader=(-?\d+), leaderEpoch=(\d+), "
                           r"isr=\[([\d, ]*)\].* correlation id (\d+) from controller (\d+) epoch (\d+)$")
_RECEIVED_SR = re.compile(r"^Received StopReplica request StopReplicaPartitionState\(partitionIndex=(\d+), "
                          r"leaderEpoch=(-?\d+), deletePartition=(\w+)\) correlation id (\d+) from controller (\d+) "
                          r"epoch (\d+) for partition (.+)-\d+$")
_FINISHED = re.compile(r"^Finished LeaderAndIsr request in (\d+)ms correlationId (\d+) from controller (\d+)")


def _isr(list_text: str) -> list[int]:
    return [int(x) for x in re.findall(r"brokerId=(\d+)", list_text)]


def _names(partitions: Iterable[tuple[str, int]], limit: int = 8) -> str:
    """``flights-0, flights-1 + 50 __consumer_offsets`` (internal topics counted)."""
    shown = sorted(p for p in set(partitions) if p[0] not in INTERNAL_TOPICS)
    internal: dict[str, int] = defaultdict(int)
    for t, _p in set(partitions):
        if t in INTERNAL_TOPICS:
            internal[t] += 1
    text = ", ".join(f"{t}-{p}" for t, p in shown[:limit])
    if len(shown) > limit:
        text += f" and {len(shown) - limit} more"
    for t, n in sorted(internal.items()):
        text += (" + " if text else "") + f"{n} {t}"
    return text


@attrs.define
class _Request:
    """One request as a broker's file tells it (lines sharing a correlation id)."""

    ts_ms: int
    api: str
    correlation_id: int
    controller_id: int
    epoch: int | None = None
    partitions: int = 0
    leads: list[tuple[str, int, int, list[int]]] = attrs.Factory(list)  # topic, partition, epoch, isr
    follows: list[tuple[str, int, int]] = attrs.Factory(list)  # topic, partition, leader
    stopped: list[tuple[str, int, bool]] = attrs.Factory(list)  # topic, partition, delete
    elapsed_ms: int | None = None


#: a LeaderAndIsr whose "Finished" line has not come after this long is shown as it is
OPEN_REQUEST_MS = 5000


def summarize(records: list[Record]) -> list[Event]:
    """Timeline events for ``records`` alone (see module doc), in the records' time order
    (every broker-side request shown, finished or not)."""
    return StateChangeTimeline().feed(records, now_ms=None)


class StateChangeTimeline:
    """``feed(records, now_ms)`` -> timeline events, keeping a broker's LeaderAndIsr request
    whose lines straddle two polls until its "Finished" line (or OPEN_REQUEST_MS)."""

    def __init__(self) -> None:
        self._open: dict[tuple[int, int, int], _Request] = {}

    def feed(self, records: list[Record], now_ms: int | None) -> list[Event]:
        """Events for ``records``; ``now_ms`` None shows every open request now."""
        return _summarize(records, self._open, now_ms)


def _summarize(records: list[Record], requests: dict[tuple[int, int, int], _Request],
               now_ms: int | None) -> list[Event]:
    events: list[tuple[int, int, Event]] = []  # (ts, order, event)
    order = 0

    def emit(ts: int, text: str, kind: str = "statechange") -> None:
        nonlocal order
        order += 1
        events.append((ts, order, Event(ts, kind, text)))

    # grouped lines: (controller, kind, from, to) -> [first ts, partitions]; broker requests by id
    partition_moves: dict[tuple[int, int | None, str, str], tuple[int, list[tuple[str, int]]]] = {}
    replica_moves: dict[tuple[int, int | None, int, str, str], tuple[int, list[tuple[str, int]]]] = {}
    for r in records:
        m_text = r.message
        if r.level in ("WARN", "ERROR"):
            who = f"controller {r.source_id}" if r.controller else f"broker {r.source_id}"
            emit(r.ts_ms, f"state-change.log of broker {r.broker_id}: {r.level} {who}: {m_text}", "error")
            continue
        if r.controller:
            ctl = f"controller {r.source_id}" + (f" (epoch {r.epoch})" if r.epoch is not None else "")
            if m := _CHANGED_ONLINE.match(m_text):
                topic, part, frm, to, leader, lepoch, isr, version = m.groups()
                if topic in INTERNAL_TOPICS:
                    partition_moves.setdefault((r.source_id, r.epoch, frm, to), (r.ts_ms, []))[1].append(
                        (topic, int(part)))
                else:
                    emit(r.ts_ms, f"{ctl}: {topic}-{part} {frm}\u2192{to}, leader {leader}, leader epoch {lepoch}, "
                                  f"ISR {_isr(isr)}, zkVersion {version}")
            elif m := _CHANGED_STATE.match(m_text):
                topic, part, frm, to, _replicas = m.groups()
                partition_moves.setdefault((r.source_id, r.epoch, frm, to), (r.ts_ms, []))[1].append(
                    (topic, int(part)))
            elif m := _REPLICA.match(m_text):
                replica, topic, part, frm, to = m.groups()
                replica_moves.setdefault((r.source_id, r.epoch, int(replica), frm, to), (r.ts_ms, []))[1].append(
                    (topic, int(part)))
            elif m := _SEND_LAI.match(m_text):
                broker, lead, follow = m.groups()
                emit(r.ts_ms, f"{ctl} \u2192 broker {broker}: LeaderAndIsr ({lead} become-leader, "
                              f"{follow} become-follower)")
            elif m := _SEND_UM.match(m_text):
                brokers, count = m.groups()
                if int(count):
                    emit(r.ts_ms, f"{ctl} \u2192 brokers [{brokers}]: UpdateMetadata for {count} partitions")
            elif m := _SEND_SR.match(m_text):
                delete, count, broker = m.groups()
                emit(r.ts_ms, f"{ctl} \u2192 broker {broker}: StopReplica (delete={delete}) for {count} replicas")
            elif m := _RESPONSE.match(m_text):
                name, error, api, cid, broker = m.groups()
                if int(error) != 0:
                    emit(r.ts_ms, f"{ctl}: broker {broker} answered {api} correlation id {cid} with error "
                                  f"code {error}", "error")
            continue
        # broker side: one request per (broker, controller, correlation id)
        if m := _HANDLING.match(m_text):
            api, cid, ctl_id, count = m.groups()
            key = (r.broker_id, int(ctl_id), int(cid))
            requests[key] = _Request(r.ts_ms, api, int(cid), int(ctl_id), partitions=int(count))
        elif m := _RECEIVED_LAI.match(m_text):
            topic, part, _cepoch, leader, lepoch, isr, cid, ctl_id, epoch = m.groups()
            req = requests.get((r.broker_id, int(ctl_id), int(cid)))
            if req is not None:
                req.epoch = int(epoch)
                if int(leader) == r.broker_id:
                    req.leads.append((topic, int(part), int(lepoch), [int(x) for x in isr.split(", ") if x]))
                else:
                    req.follows.append((topic, int(part), int(leader)))
        elif m := _RECEIVED_SR.match(m_text):
            part, _lepoch, delete, cid, ctl_id, epoch, topic = m.groups()
            req = requests.get((r.broker_id, int(ctl_id), int(cid)))
            if req is not None:
                req.epoch = int(epoch)
                req.stopped.append((topic, int(part), delete == "true"))
        elif m := _FINISHED.match(m_text):
            elapsed, cid, ctl_id = m.groups()
            req = requests.get((r.broker_id, int(ctl_id), int(cid)))
            if req is not None:
                req.elapsed_ms = int(elapsed)

    for (ctl_id, epoch, frm, to), (ts, parts) in partition_moves.items():
        ctl = f"controller {ctl_id}" + (f" (epoch {epoch})" if epoch is not None else "")
        emit(ts, f"{ctl}: {_names(parts)} {frm}\u2192{to}")
    for (ctl_id, epoch, replica, frm, to), (ts, parts) in replica_moves.items():
        ctl = f"controller {ctl_id}" + (f" (epoch {epoch})" if epoch is not None else "")
        emit(ts, f"{ctl}: replica {replica} {frm}\u2192{to} for {_names(parts)}")
    for key, req in list(requests.items()):
        if req.api == "LeaderAndIsr" and req.elapsed_ms is None and now_ms is not None \
                and now_ms - req.ts_ms < OPEN_REQUEST_MS:
            continue  # its Finished line comes with the next poll
        del requests[key]
        broker_id = key[0]
        head = (f"broker {broker_id} \u2190 {req.api} correlation id {req.correlation_id} from controller "
                f"{req.controller_id}" + (f" (epoch {req.epoch})" if req.epoch is not None else ""))
        said: list[str] = []
        leads = [(t, p) for t, p, _e, _i in req.leads]
        shown = [x for x in req.leads if x[0] not in INTERNAL_TOPICS][:4]
        if leads:
            detail = "; ".join(f"{t}-{p} at leader epoch {e}, ISR {isr}" for t, p, e, isr in shown)
            said.append(f"leads {_names(leads)}" + (f" ({detail})" if detail else ""))
        if req.follows:
            visible = [f"{t}-{p} (leader {ld})" for t, p, ld in req.follows if t not in INTERNAL_TOPICS]
            internal = sum(1 for f in req.follows if f[0] in INTERNAL_TOPICS)
            said.append("follows " + " + ".join(
                ([", ".join(visible[:8]) + (f" and {len(visible) - 8} more" if len(visible) > 8 else "")]
                 if visible else []) + ([f"{internal} internal"] if internal else [])))
        if req.stopped:
            deletes = {d for _t, _p, d in req.stopped}
            said.append(f"stops {_names([(t, p) for t, p, _d in req.stopped])}"
                         + (" and deletes them" if deletes == {True} else ""))
        if not said:
            said.append(f"{req.partitions} partitions")
        tail = f" in {req.elapsed_ms} ms" if req.elapsed_ms is not None else ""
        emit(req.ts_ms, f"{head}: {'; '.join(said)}{tail}")
    return [e for _ts, _o, e in sorted(events, key=lambda x: (x[0], x[1]))]
