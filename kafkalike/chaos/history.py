"""The chaos workload's operation history: event types and a JSON-lines writer and reader.

A history is the only input of the checker (kafkalike.chaos.checker): everything the
workload's producers and consumers did, and every fault the nemesis injected, one event a
line, in the order each process observed it.

Identity of a record: ``(key, seq)``. The workload gives every key one owner and sends each
key's values with increasing ``seq`` (0, 1, 2, ...), each ``(key, seq)`` at most once; the
value written to Kafka encodes the seq, and a consumer decodes it back (``seq=None`` when a
value did not decode: the checker reports such a read as a phantom). ``producer`` names one
producer client instance (one idempotent producer id); a producer recreated after a crash
takes a new name, since Kafka keeps the order of one producer's sends only.

Timestamps: ``time`` is float seconds of ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for
every process on a machine, so events of several local processes compare). Only differences
and order mean anything; ``now()`` returns it. Compose runs write the history on the host
that runs the workload, so one clock holds there too.

Events (JSON ``"type"`` tag in brackets):

- Sent [sent]: a producer handed ``(key, seq)`` to its client for ``topic`` (``partition``:
  the partition the workload's partitioner chose, None if unknown).
- Acknowledged [acked]: the broker acknowledged ``(key, seq)`` at ``partition``/``offset``.
- Failed [failed]: the send completed with Kafka error ``error`` (a Kafka error code name,
  e.g. NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, or a client exception name). ``definite`` is
  True only when the write is known NOT to have happened (rejected before append on the
  only attempt); a timeout or a retried send is indefinite: the record may or may not be in
  the log, so the checker counts it neither as lost nor as phantom if it is read.
- Assigned [assigned]: a consumer starts (or restarts) reading ``partition`` at ``offset``
  (None if it does not know where: a committed position it was not told). Every assignment
  or seek starts a new *pass*; within a pass offsets must only go up.
- Consumed [consumed]: a consumer read ``(key, seq)`` at ``partition``/``offset``.
- Drained [drained]: the consumer has read ``partition`` from ``start_offset`` up to
  ``end_offset`` (exclusive; the log end offset it fetched last, after producers stopped and
  faults healed). This is the "read to the end" marker: the checker calls an acknowledged
  record lost only against a drain.
- FaultStarted [fault_started] / FaultHealed [fault_healed]: the nemesis's timeline,
  ``name`` (e.g. "kill9", "partition") and ``target`` (e.g. "broker-2", "b1|zk").
- ProducerEpoch [producer_epoch]: producer ``producer``'s client starts sending
  ``partition``'s records under idempotent ``(producer_id, epoch)`` (librdkafka's NEWPID);
  ``reason`` says why the client left the previous one ("" for the first). The broker's
  duplicate detection holds within one (producer id, epoch) only (KIP-98), so a record
  still unacknowledged when the epoch changes may be written twice (checker: the
  ``duplicate_new_epoch`` kind).
- Joined [joined]: consumer ``consumer`` is a member of consumer group ``group`` (written
  once, when its client is created; a consumer without one belongs to no group).
- Committed [committed]: group ``group`` committed ``offset`` (the next offset to read) for
  ``partition``, through member ``consumer``, and the coordinator accepted it (the
  OffsetCommit answer had no error). The workload commits after processing, so every
  record below ``offset`` must have been read by the group by then.

Files: one JSON object a line, UTF-8, keys = the attrs field names plus ``"type"``.
``HistoryWriter`` flushes each line to the OS as written; ``read_history`` streams, and
ignores a torn last line (no newline and not parseable: the history of a crashed run),
raising HistoryError for a bad line anywhere else.
"""

from __future__ import annotations

import io
import json
import json.scanner
import os
import time as _time
from collections.abc import Iterable, Iterator
from typing import IO, Any

import attrs


def now() -> float:
    """Seconds of the monotonic clock the history's ``time`` fields use."""
    return _time.monotonic()


class HistoryError(ValueError):
    """A history line or event sequence that is not a valid history (the workload's fault,
    not the system's); the message names the line or event."""


@attrs.frozen
class Sent:
    """A producer handed record (key, seq) to its client."""

    time: float
    producer: str
    topic: str
    key: str
    seq: int
    partition: int | None = None


@attrs.frozen
class Acknowledged:
    """The broker acknowledged record (key, seq) at partition/offset."""

    time: float
    topic: str
    key: str
    seq: int
    partition: int
    offset: int


@attrs.frozen
class Failed:
    """The send of (key, seq) completed with error ``error``; ``definite``: known not written."""

    time: float
    topic: str
    key: str
    seq: int
    error: str
    definite: bool = False
    partition: int | None = None


@attrs.frozen
class Assigned:
    """A consumer starts a new pass over partition at offset (None: position unknown)."""

    time: float
    consumer: str
    topic: str
    partition: int
    offset: int | None = None


@attrs.frozen
class Consumed:
    """A consumer read (key, seq) at partition/offset; seq None: the value did not decode."""

    time: float
    consumer: str
    topic: str
    partition: int
    offset: int
    key: str | None
    seq: int | None


@attrs.frozen
class Drained:
    """The consumer read partition from start_offset to end_offset (exclusive) to the end."""

    time: float
    consumer: str
    topic: str
    partition: int
    start_offset: int
    end_offset: int


@attrs.frozen
class FaultStarted:
    """The nemesis injected fault ``name`` on ``target``."""

    time: float
    name: str
    target: str
    detail: str = ""


@attrs.frozen
class FaultHealed:
    """The nemesis healed fault ``name`` on ``target``."""

    time: float
    name: str
    target: str


@attrs.frozen
class ProducerEpoch:
    """Producer ``producer`` sends partition's records under (producer_id, epoch) from now on."""

    time: float
    producer: str
    topic: str
    partition: int
    producer_id: int
    epoch: int
    reason: str = ""


@attrs.frozen
class Joined:
    """Consumer ``consumer`` is a member of consumer group ``group``."""

    time: float
    consumer: str
    group: str


@attrs.frozen
class Committed:
    """Group ``group`` committed ``offset`` (the next to read) for partition, through member
    ``consumer``; only commits the group coordinator accepted."""

    time: float
    consumer: str
    group: str
    topic: str
    partition: int
    offset: int


Event = (Sent | Acknowledged | Failed | Assigned | Consumed | Drained | FaultStarted | FaultHealed
         | ProducerEpoch | Joined | Committed)

EVENT_TYPES: dict[str, type] = {
    "sent": Sent,
    "acked": Acknowledged,
    "failed": Failed,
    "assigned": Assigned,
    "consumed": Consumed,
    "drained": Drained,
    "fault_started": FaultStarted,
    "fault_healed": FaultHealed,
    "producer_epoch": ProducerEpoch,
    "joined": Joined,
    "committed": Committed,
}
_TAGS: dict[type, str] = {cls: tag for tag, cls in EVENT_TYPES.items()}

_INT = (int,)
_OPT_INT = (int, type(None))
_NUM = (float, int)
_STR = (str,)
_OPT_STR = (str, type(None))
_BOOL = (bool,)
# Field name -> accepted JSON types, per event class (bool is excluded from ints below).
_SCHEMA: dict[type, tuple[tuple[str, tuple[type, ...]], ...]] = {
    Sent: (("time", _NUM), ("producer", _STR), ("topic", _STR), ("key", _STR), ("seq", _INT),
           ("partition", _OPT_INT)),
    Acknowledged: (("time", _NUM), ("topic", _STR), ("key", _STR), ("seq", _INT),
                   ("partition", _INT), ("offset", _INT)),
    Failed: (("time", _NUM), ("topic", _STR), ("key", _STR), ("seq", _INT), ("error", _STR),
             ("definite", _BOOL), ("partition", _OPT_INT)),
    Assigned: (("time", _NUM), ("consumer", _STR), ("topic", _STR), ("partition", _INT),
               ("offset", _OPT_INT)),
    Consumed: (("time", _NUM), ("consumer", _STR), ("topic", _STR), ("partition", _INT),
               ("offset", _INT), ("key", _OPT_STR), ("seq", _OPT_INT)),
    Drained: (("time", _NUM), ("consumer", _STR), ("topic", _STR), ("partition", _INT),
              ("start_offset", _INT), ("end_offset", _INT)),
    FaultStarted: (("time", _NUM), ("name", _STR), ("target", _STR), ("detail", _STR)),
    FaultHealed: (("time", _NUM), ("name", _STR), ("target", _STR)),
    ProducerEpoch: (("time", _NUM), ("producer", _STR), ("topic", _STR), ("partition", _INT),
                    ("producer_id", _INT), ("epoch", _INT), ("reason", _STR)),
    Joined: (("time", _NUM), ("consumer", _STR), ("group", _STR)),
    Committed: (("time", _NUM), ("consumer", _STR), ("group", _STR), ("topic", _STR), ("partition", _INT),
                ("offset", _INT)),
}
_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(f for f, _ in s) for cls, s in _SCHEMA.items()}


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON object of one event: {"type": tag, field: value, ...}.

    Raises HistoryError for an object that is not one of the event classes.
    """
    cls = type(event)
    tag = _TAGS.get(cls)
    if tag is None:
        raise HistoryError(f"not a history event: {event!r}")
    d: dict[str, Any] = {"type": tag}
    for name in _FIELDS[cls]:
        d[name] = getattr(event, name)
    return d


def _compile_fast(cls: type) -> Any:
    """A constructor for the common case (every field present, right JSON types): returns the
    event, or None to send the object through the checking slow path. Generated once per
    class so that reading millions of lines costs one call and no loop per line."""
    fields = _SCHEMA[cls]
    lines = ["def fast(d, cls=cls, NUM=_NUM, OPT_INT=_OPT_INT, OPT_STR=_OPT_STR):",
             f"    if len(d) != {len(fields) + 1}:",
             "        return None",
             "    try:"]
    checks = []
    for i, (name, types) in enumerate(fields):
        lines.append(f"        v{i} = d[{name!r}]")
        if types is _NUM:
            checks.append(f"(type(v{i}) is float and v{i} == v{i} or type(v{i}) is int)")
        elif types is _INT:
            checks.append(f"type(v{i}) is int")
        elif types is _STR:
            checks.append(f"type(v{i}) is str")
        elif types is _BOOL:
            checks.append(f"type(v{i}) is bool")
        elif types is _OPT_INT:
            checks.append(f"(v{i} is None or type(v{i}) is int)")
        elif types is _OPT_STR:
            checks.append(f"(v{i} is None or type(v{i}) is str)")
        else:  # pragma: no cover - every schema type is listed above
            raise AssertionError(types)
    lines += ["    except KeyError:", "        return None",
              f"    if {' and '.join(checks)}:",
              f"        return cls({', '.join(f'v{i}' for i in range(len(fields)))})",
              "    return None"]
    ns: dict[str, Any] = {"cls": cls, "_NUM": _NUM, "_OPT_INT": _OPT_INT, "_OPT_STR": _OPT_STR}
    exec("\n".join(lines), ns)  # noqa: S102 - generated from the constant schema above
    return ns["fast"]


_FAST: dict[Any, Any] = {tag: _compile_fast(cls) for tag, cls in EVENT_TYPES.items()}


def event_from_dict(d: Any) -> Event:
    """Build the event a JSON object describes; HistoryError on an unknown type, a missing or
    unknown field, or a field of the wrong JSON type."""
    if type(d) is dict:
        fast = _FAST.get(d.get("type"))
        if fast is not None:
            ev = fast(d)
            if ev is not None:
                return ev
    return _event_from_dict_checked(d)


def _event_from_dict_checked(d: Any) -> Event:
    if not isinstance(d, dict):
        raise HistoryError(f"event must be a JSON object, got {type(d).__name__}")
    tag = d.get("type")
    cls = EVENT_TYPES.get(tag)  # type: ignore[arg-type]  # tag is unchecked JSON; a non-str tag finds no class
    if cls is None:
        raise HistoryError(f"unknown event type {tag!r}")
    kwargs = {}
    for name, types in _SCHEMA[cls]:
        if name in d:
            v = d[name]
            t = type(v)
            if t not in types or (t is bool and types is not _BOOL):
                raise HistoryError(f"{tag}: field {name!r} has type {t.__name__}")
            if t is float and v != v:
                raise HistoryError(f"{tag}: field {name!r} is NaN")
            kwargs[name] = v
    if len(kwargs) + 1 != len(d):
        extra = sorted(set(d) - set(kwargs) - {"type"})
        raise HistoryError(f"{tag}: unknown field(s) {extra}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise HistoryError(f"{tag}: {e}") from None


def dumps(event: Event) -> str:
    """One history line (no newline) for event."""
    return json.dumps(event_to_dict(event), separators=(",", ":"), ensure_ascii=False)


def loads(line: str | bytes) -> Event:
    """The event of one history line; HistoryError if it is not one."""
    try:
        d = json.loads(line)
    except ValueError as e:
        raise HistoryError(f"not JSON: {e}") from None
    return event_from_dict(d)


def _cut_torn_tail(path: str | os.PathLike[str]) -> int:
    """Truncate a history file after its last newline unless what follows is a complete event
    (then add its newline); returns the bytes removed (0 for a missing or empty file, or one
    ending in a newline)."""
    try:
        f = open(path, "r+b")
    except FileNotFoundError:
        return 0
    with f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = pos - step + i + 1
                break
            pos -= step
        else:
            keep = 0
        f.seek(keep)
        tail = f.read()
        try:
            loads(tail)
        except HistoryError:
            f.truncate(keep)
            return size - keep
        f.write(b"\n")  # a complete last event without its newline: keep it
        return 0


class HistoryWriter:
    """Appends events to a JSON-lines history, one line per event.

    ``HistoryWriter(path)`` opens (appends to) a file; ``HistoryWriter(fileobj)`` writes to an
    open text file without owning it. Each ``write`` hands its whole line to the OS at once
    (``flush=True``, the default), so a crash loses at most the line being written and leaves
    at worst a torn last line, which ``read_history`` ignores. ``flush=False`` buffers (bulk
    writes, benchmarks). Blocking file I/O: one short write per event, fine inside trio for a
    workload's rates. A context manager; ``close`` closes only a file it opened.

    Appending to a file whose last line is torn (a crashed run being resumed) first cuts that
    fragment off, as a reader would ignore it, so that it cannot glue onto the next line;
    ``dropped_torn``: the bytes cut (0 normally).
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str], *, flush: bool = True) -> None:
        self.dropped_torn = 0
        if isinstance(target, (str, os.PathLike)):
            self.dropped_torn = _cut_torn_tail(target)
            self._file: IO[str] = open(target, "a", encoding="utf-8")
            self._owned = True
        else:
            self._file = target
            self._owned = False
        self._flush = flush
        self.count = 0

    def write(self, event: Event) -> None:
        """Append one event (HistoryError if it is not a history event)."""
        self._file.write(dumps(event) + "\n")
        if self._flush:
            self._file.flush()
        self.count += 1

    def write_all(self, events: Iterable[Event]) -> None:
        """Append events in order."""
        for e in events:
            self.write(e)

    def close(self) -> None:
        """Flush; close the file if this writer opened it."""
        self._file.flush()
        if self._owned:
            self._file.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HistoryReader:
    """Streams the events of a JSON-lines history.

    Iterate it for events in file order. A last line without a newline that does not parse is
    a torn write of a crashed run: it is skipped and kept in ``torn`` (its text, else None).
    Any other bad line raises HistoryError naming its line number. Blank lines are skipped.
    ``lines``: lines read so far.
    """

    def __init__(self, source: str | os.PathLike[str] | IO[str] | IO[bytes]) -> None:
        self._source = source
        self.torn: str | None = None
        self.lines = 0

    def __iter__(self) -> Iterator[Event]:
        if isinstance(self._source, (str, os.PathLike)):
            # surrogateescape: a torn multi-byte character at the end must not fail the
            # decoder; _events rejects escaped (invalid UTF-8) bytes on complete lines.
            with open(self._source, encoding="utf-8", errors="surrogateescape", newline="\n") as f:
                yield from self._events(f)
        else:
            yield from self._events(self._source)

    def _events(self, f: IO[str] | IO[bytes]) -> Iterator[Event]:
        scan = _SCAN
        from_dict = event_from_dict
        n = 0
        try:
            for line in f:
                n += 1
                if type(line) is bytes:
                    line = line.decode("utf-8", "surrogateescape")
                if line[-1:] == "\n":
                    # Fast path: the C scanner on the line, which must be one object, then
                    # only the newline (json.loads does the same through three Python calls).
                    try:
                        d, end = scan(line, 0)
                    except (StopIteration, ValueError):
                        end = -1
                    if end != len(line) - 1 and not (end > 0 and line[end:].isspace()):
                        if line.isspace():
                            continue
                        d = _loads_strict(line, n)
                    elif not line.isascii():
                        _check_utf8(line, n)
                    try:
                        yield from_dict(d)
                    except HistoryError as e:
                        raise HistoryError(f"history line {n}: {e}") from None
                else:
                    # The last line (no newline): complete if it parses, torn if not.
                    if not line or line.isspace():
                        continue
                    try:
                        d = json.loads(line)
                        if not line.isascii():
                            line.encode("utf-8")
                    except ValueError:  # UnicodeEncodeError is one too
                        self.torn = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                        continue
                    try:
                        yield from_dict(d)
                    except HistoryError as e:
                        raise HistoryError(f"history line {n}: {e}") from None
        finally:
            self.lines = n


_SCAN = json.scanner.make_scanner(json.JSONDecoder())


def _loads_strict(line: str, n: int) -> Any:
    """json.loads for a line the fast path refused, with HistoryError naming the line."""
    try:
        d = json.loads(line)
    except ValueError as e:
        raise HistoryError(f"history line {n}: not JSON: {e}") from None
    _check_utf8(line, n)
    return d


def _check_utf8(line: str, n: int) -> None:
    """Refuse a line that held invalid UTF-8 (decoded to escaped surrogates)."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as e:
        raise HistoryError(f"history line {n}: not UTF-8 ({e.reason})") from None


def read_history(source: str | os.PathLike[str] | IO[str] | IO[bytes]) -> Iterator[Event]:
    """Stream the events of a history file (path or open text file); see HistoryReader."""
    return iter(HistoryReader(source))


def write_history(path: str | os.PathLike[str], events: Iterable[Event]) -> int:
    """Write events to a new history file at path (truncating it); returns the count."""
    with open(path, "w", encoding="utf-8") as f:
        w = HistoryWriter(f, flush=False)
        w.write_all(events)
        w.close()
        return w.count


def history_text(events: Iterable[Event]) -> str:
    """The JSON-lines text of events (for tests and small tools)."""
    buf = io.StringIO()
    w = HistoryWriter(buf, flush=False)
    w.write_all(events)
    return buf.getvalue()
