"""The chaos workload: keyed, sequenced producers and a consumer group, recording a history.

Producers (confluent-kafka / librdkafka; acks=all and enable.idempotence by default) each own
a set of keys and send every key's values with seq 0, 1, 2, ... (value ``b"<key>:<seq>"``)
to the partition ``crc32(key) % partitions``, paced at ``rate`` records/s each. Every
record is recorded as ``Sent`` before it is handed to the client, then ``Acknowledged``
(partition, offset) or ``Failed`` from the delivery callback. A delivery report with no
error but no offset (librdkafka gave 2 in one 300 s random run, both during faults) is
recorded as ``Failed`` with error ``ACKED_OFFSET_UNKNOWN``, indefinite: the history's
acknowledgements carry offsets, and an indefinite record is never called lost.
Failures reported by the client are *indefinite* (librdkafka retries internally, so the record may be in the log);
only a record the client refused to enqueue (``produce()`` raised: queue full, fatal
producer) is ``definite``. A producer whose client hits a fatal error (e.g. the idempotent
producer's sequence state lost after an unclean election) is purged, closed and recreated
under a new name (``p<i>.<generation>``), since Kafka orders one producer instance's sends.

Producers run with librdkafka's ``debug=eos`` into a Python logger (``EosLogHandler``): each
time the client moves a partition to a new idempotent (producer id, epoch) -- its NEWPID
log line -- the workload writes ``ProducerEpoch`` with the reason librdkafka gave for the
bump (its DRAIN line), so the checker can tell a duplicate the client made by re-sending
under a new epoch from one the broker's deduplication let through. Other client log lines
of level warning and above go to stderr, as librdkafka's own logger would print them.

Consumers (``consumers`` members of one group) record ``Joined`` when created, ``Assigned``
from the rebalance callback (offset None: the position is the committed offset, unknown to
us) and ``Consumed`` for every record. They commit by hand after processing (auto commit
off): after each batch is recorded, a synchronous commit of the positions, and every
partition the coordinator accepted becomes ``Committed``. ``wait_group_caught_up`` waits,
after the producers stopped, until the group has committed every partition's high
watermark (the checker's consumer-group checks: docs/chaos.md).

``drain()`` is the final reader of docs/chaos.md: with producers stopped and faults healed,
a group-less consumer (kafka-python) assigns itself each partition, seeks to the log start
offset (``Assigned``), reads until its position reaches the end offset it fetched,
recording each record as ``Consumed``, then ``Drained``. The end offsets are read until two
readings a second apart agree (a new leader's high watermark may still be moving).

Threads: one per producer and consumer; the history writer is shared under a lock.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import attrs
import structlog

from kafkalike.chaos.history import (
    Acknowledged,
    Assigned,
    Committed,
    Consumed,
    Drained,
    Event,
    Failed,
    HistoryWriter,
    Joined,
    ProducerEpoch,
    Sent,
    now,
)

log = structlog.get_logger(__name__)

ACKED_OFFSET_UNKNOWN = "ACKED_OFFSET_UNKNOWN"
"""The Failed.error of a record librdkafka reported delivered without an offset."""


class LockedHistory:
    """A HistoryWriter shared by threads (one lock around each write)."""

    def __init__(self, writer: HistoryWriter) -> None:
        self.writer = writer
        self._lock = threading.Lock()

    def write(self, event: Event) -> None:
        with self._lock:
            self.writer.write(event)

    def close(self) -> None:
        with self._lock:
            self.writer.close()


_NEWPID = re.compile(r"(?P<topic>\S+) \[(?P<partition>\d+)\] changed "
                     r"PID\{(?:Invalid|Id:(?P<old_id>-?\d+),Epoch:(?P<old_epoch>-?\d+))\}"
                     r" -> PID\{Id:(?P<id>-?\d+),Epoch:(?P<epoch>-?\d+)\}")
_DRAIN = re.compile(r"Beginning partition drain (?:in state \S+ )?for .*?(?P<what>epoch bump|reset) .*?"
                    r"in-flight requests: (?P<reason>.*)$")


def parse_eos_line(message: str) -> tuple[str, dict[str, Any]] | None:
    """One librdkafka log message as the Python logger gets it (``"FAC [client] [thrd:..]: text"``):
    ("newpid", {topic, partition, old_id, old_epoch, id, epoch}) for a partition's producer id
    change (rdkafka_partition.c, NEWPID; old_id -1 for the first, ``PID{Invalid}``);
    ("drain", {what: "epoch bump" | "reset", reason}) for the start of an epoch bump or
    producer id reset (rdkafka_idempotence.c, DRAIN); else None."""
    fac, _, rest = message.partition(" ")
    text = rest.split("]: ", 2)[-1]
    if fac == "NEWPID":
        m = _NEWPID.search(text)
        if m:
            d = m.groupdict()
            return "newpid", {"topic": d["topic"],
                              **{k: -1 if v is None else int(v) for k, v in d.items() if k != "topic"}}
    elif fac == "DRAIN":
        m = _DRAIN.search(text)
        if m:
            return "drain", {"what": m["what"], "reason": m["reason"].strip()}
    return None


class EosLogHandler(logging.Handler):
    """A producer client's log: idempotence state changes become ``ProducerEpoch`` events of
    ``producer`` in ``history``; other records of level WARNING and above are printed to
    ``stream`` (default: sys.stderr at the time of writing) the way librdkafka prints them.
    ``on_epoch_change()`` is called for every change after a partition's first producer id."""

    def __init__(self, producer: str, history: "LockedHistory",
                 on_epoch_change: Callable[[], None] | None = None, stream: Any = None) -> None:
        super().__init__(logging.DEBUG)
        self.producer = producer
        self.history = history
        self.on_epoch_change = on_epoch_change
        self.stream = stream
        self.reason = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            parsed = parse_eos_line(message)
            if parsed is not None:
                kind, d = parsed
                if kind == "drain":
                    self.reason = f"{d['what']}: {d['reason']}"
                else:
                    reason = "" if d["old_id"] < 0 else self.reason
                    if d["old_id"] >= 0 and self.on_epoch_change is not None:
                        self.on_epoch_change()
                    self.history.write(ProducerEpoch(now(), self.producer, d["topic"], d["partition"],
                                                     d["id"], d["epoch"], reason))
            elif record.levelno >= logging.WARNING:
                print(f"%{record.levelname[:4]}|{time.time():.3f}|{message}",
                      file=self.stream or sys.stderr)
        except Exception:  # a log line must never take the producer down
            self.handleError(record)


@attrs.frozen
class WorkloadConfig:
    """The workload's shape.

    topic/partitions: where it writes; producers x keys_per_producer keys; rate: records/s per
    producer; acks: "all" | "1" | "0"; idempotence: enable.idempotence; message_timeout_ms:
    librdkafka's message.timeout.ms (delivery timeout: a record not acknowledged by then
    fails, indefinitely; default 120 s, Kafka's delivery.timeout.ms: librdkafka bumps the
    idempotent producer's epoch when messages time out, and records it then retries under
    the new epoch can be written twice, which the checker rightly calls duplicates —
    librdkafka issue 4953; docs/chaos.md shows a run); consumers: members of the group ``group`` (0: none).
    """

    topic: str
    partitions: int = 3
    producers: int = 2
    keys_per_producer: int = 6
    rate: float = 50.0
    acks: str = "all"
    idempotence: bool = True
    message_timeout_ms: int = 120000
    consumers: int = 2
    group: str = "chaos"


def partition_for(key: str, partitions: int) -> int:
    """The workload's partitioner: crc32 of the key's UTF-8 bytes modulo ``partitions``."""
    return zlib.crc32(key.encode()) % partitions


def decode_value(value: bytes | None) -> tuple[str | None, int | None]:
    """(key, seq) from a value ``b"<key>:<seq>"``; (None, None) if it does not decode."""
    try:
        text = (value or b"").decode()
        key, seq = text.rsplit(":", 1)
        return key, int(seq)
    except (UnicodeDecodeError, ValueError):
        return None, None


@attrs.define
class WorkloadStats:
    """Counters, updated by the threads (approximate while running)."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    consumed: int = 0
    commits: int = 0
    acked_offset_unknown: int = 0
    epoch_changes: int = 0
    producer_generations: int = 0
    errors: dict[str, int] = attrs.Factory(dict)


class Workload:
    """Producers and group consumers in threads, writing into ``history``.

    ``start()``; ``stop_producers(timeout)`` (flush: every record gets its outcome or is left
    without one); ``stop_consumers()``; ``drain(timeout)``. ``stats`` counts as it goes.
    """

    def __init__(self, bootstrap: str, config: WorkloadConfig, history: LockedHistory,
                 say: Callable[[str], None] | None = None) -> None:
        self.bootstrap = bootstrap
        self.config = config
        self.history = history
        self.say = say or (lambda s: None)
        self.stats = WorkloadStats()
        self._stop_producing = threading.Event()
        self._stop_consuming = threading.Event()
        self._producer_threads: list[threading.Thread] = []
        self._consumer_threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._committed: dict[int, int] = {}  # partition -> highest offset the group committed

    # ---------------------------------------------------------------- producers
    def keys_of(self, producer_index: int) -> list[str]:
        """The keys producer ``producer_index`` owns."""
        return [f"k{producer_index}-{j}" for j in range(self.config.keys_per_producer)]

    def _producer_conf(self, name: str) -> dict[str, Any]:
        c = self.config
        return {"bootstrap.servers": self.bootstrap, "client.id": name, "acks": c.acks,
                "enable.idempotence": c.idempotence, "linger.ms": 5,
                "message.timeout.ms": c.message_timeout_ms,
                "metadata.max.age.ms": 5000, "topic.metadata.refresh.interval.ms": 2000,
                "reconnect.backoff.max.ms": 1000, "retry.backoff.ms": 100}

    def _count(self, field: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + n)

    def _error(self, name: str) -> None:
        with self._lock:
            self.stats.errors[name] = self.stats.errors.get(name, 0) + 1

    def _produce_loop(self, index: int) -> None:
        from confluent_kafka import KafkaException, Producer

        c = self.config
        keys = self.keys_of(index)
        seqs = dict.fromkeys(keys, 0)
        generation = 0
        fatal = threading.Event()

        def new_producer() -> tuple[str, Any]:
            nonlocal generation
            name = f"p{index}.{generation}"
            generation += 1
            self._count("producer_generations")

            def on_error(err: Any) -> None:
                if err.fatal():
                    fatal.set()
                    self._error(f"fatal:{err.name()}")

            conf: dict[str, Any] = {**self._producer_conf(name), "error_cb": on_error}
            if c.idempotence and c.acks == "all":
                eos = EosLogHandler(name, self.history, lambda: self._count("epoch_changes"))
                logger = logging.getLogger(f"kafkalike.chaos.librdkafka.{name}")
                logger.handlers[:] = [eos]
                logger.setLevel(logging.DEBUG)
                logger.propagate = False
                conf.update({"debug": "eos", "logger": logger})
            return name, Producer(conf)

        name, producer = new_producer()
        topic = c.topic
        interval = 1.0 / c.rate if c.rate > 0 else 0.0
        next_at = time.monotonic()
        i = 0

        def deliver(key: str, seq: int, part: int) -> Callable[[Any, Any], None]:
            def cb(err: Any, msg: Any) -> None:
                if err is None and (msg.offset() is None or msg.offset() < 0):
                    # delivered, says librdkafka, but without an offset: the history needs
                    # one for an acknowledgement, so this is recorded as an indefinite outcome
                    self.history.write(Failed(now(), topic, key, seq, ACKED_OFFSET_UNKNOWN, False, part))
                    self._count("acked_offset_unknown")
                elif err is None:
                    self.history.write(Acknowledged(now(), topic, key, seq, msg.partition(), msg.offset()))
                    self._count("acked")
                else:
                    self.history.write(Failed(now(), topic, key, seq, err.name(), False, part))
                    self._count("failed")
                    self._error(err.name())
            return cb

        def poll(producer: Any, timeout: float) -> None:
            # confluent-kafka raises a fatal error from poll()/flush() once it is raised
            try:
                producer.poll(timeout)
            except KafkaException as exc:
                if exc.args and exc.args[0].fatal():
                    fatal.set()
                else:
                    raise

        try:
            while not self._stop_producing.is_set():
                if fatal.is_set():
                    # A fatal idempotent producer: fail what it holds (indefinitely), start over.
                    self._retire(producer)
                    fatal.clear()
                    self.say(f"producer {name} hit a fatal error; recreated")
                    name, producer = new_producer()
                key = keys[i % len(keys)]
                i += 1
                seq = seqs[key]
                seqs[key] = seq + 1
                part = partition_for(key, c.partitions)
                self.history.write(Sent(now(), name, topic, key, seq, part))
                self._count("sent")
                try:
                    producer.produce(topic, key=key.encode(), value=f"{key}:{seq}".encode(), partition=part,
                                     on_delivery=deliver(key, seq, part))
                except BufferError:
                    self.history.write(Failed(now(), topic, key, seq, "_QUEUE_FULL", True, part))
                    self._count("failed")
                    self._error("_QUEUE_FULL")
                except KafkaException as exc:
                    err = exc.args[0]
                    self.history.write(Failed(now(), topic, key, seq, err.name(), True, part))
                    self._count("failed")
                    self._error(err.name())
                    if err.fatal():
                        fatal.set()
                poll(producer, 0)
                next_at += interval
                if next_at - time.monotonic() < -1.0:
                    next_at = time.monotonic()  # fell behind (GIL, load): don't burst
                # poll() returns after serving one callback: loop until the send time
                while (delay := next_at - time.monotonic()) > 0 and not fatal.is_set():
                    poll(producer, delay)
        finally:
            # Give in-flight records their outcome; those still without one stay "no outcome".
            if fatal.is_set():
                self._retire(producer)
            else:
                try:
                    left = producer.flush(max(5.0, c.message_timeout_ms / 1000.0 + 5.0))
                except KafkaException:
                    left = -1
                    self._retire(producer)
                if left:
                    log.warning("producer_flush_left", producer=name, records=left)

    @staticmethod
    def _retire(producer: Any) -> None:
        """Purge a fatal producer: its queued and in-flight records get their (indefinite)
        failure callbacks now."""
        from confluent_kafka import KafkaException

        for call in (producer.purge, lambda: producer.poll(0), lambda: producer.flush(2)):
            try:
                call()
            except (KafkaException, RuntimeError):
                pass

    # ---------------------------------------------------------------- consumers
    def _consume_loop(self, index: int) -> None:
        from confluent_kafka import Consumer

        c = self.config
        name = f"c{index}"
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": c.group, "client.id": name,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "session.timeout.ms": 10000,
                             "heartbeat.interval.ms": 1000, "metadata.max.age.ms": 5000,
                             "topic.metadata.refresh.interval.ms": 2000, "socket.timeout.ms": 5000,
                             "reconnect.backoff.max.ms": 1000})

        def on_assign(cons: Any, parts: list[Any]) -> None:
            t = now()
            for tp in parts:
                off = tp.offset if tp.offset >= 0 else None
                self.history.write(Assigned(t, name, tp.topic, tp.partition, off))

        self.history.write(Joined(now(), name, c.group))
        consumer.subscribe([c.topic], on_assign=on_assign)
        try:
            while not self._stop_consuming.is_set():
                msgs = consumer.consume(num_messages=500, timeout=0.3)
                processed = False
                for m in msgs:
                    if m.error() is not None:
                        self._error(f"consume:{m.error().name()}")
                        continue
                    key, seq = decode_value(m.value())
                    if key is None and m.key() is not None:
                        key = m.key().decode(errors="replace")
                    self.history.write(Consumed(now(), name, m.topic(), m.partition(), m.offset(), key, seq))
                    self._count("consumed")
                    processed = True
                if processed:
                    self._commit(consumer, name)
        finally:
            try:
                consumer.close()
            except Exception:
                pass

    def _commit(self, consumer: Any, name: str) -> None:
        """Commit the positions of what was just recorded (synchronously); record every
        partition the coordinator accepted as Committed, count the refusals by error name."""
        from confluent_kafka import KafkaException

        try:
            parts = consumer.commit(asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            self._error(f"commit:{err.name() if hasattr(err, 'name') else type(exc).__name__}")
            return
        t = now()
        for tp in parts or ():
            if tp.error is not None:
                self._error(f"commit:{tp.error.name()}")
            elif tp.offset >= 0:
                self.history.write(Committed(t, name, self.config.group, tp.topic, tp.partition, tp.offset))
                self._count("commits")
                with self._lock:
                    if tp.offset > self._committed.get(tp.partition, -1):
                        self._committed[tp.partition] = tp.offset

    def wait_group_caught_up(self, timeout: float = 60.0) -> bool:
        """Block until the group has committed every partition's high watermark (read once,
        after the producers stopped), at most ``timeout`` s; True if it did (or there is no
        group). Without it the checker's unread/skipped checks see a group that never got to
        the last records (verdict unknown)."""
        if self.config.consumers == 0:
            return True
        from confluent_kafka import Consumer, TopicPartition

        c = self.config
        deadline = time.monotonic() + timeout
        probe = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{c.group}-watermarks",
                          "enable.auto.commit": False})
        try:
            ends: dict[int, int] = {}
            for p in range(c.partitions):
                while p not in ends:
                    try:
                        ends[p] = probe.get_watermark_offsets(TopicPartition(c.topic, p), timeout=10, cached=False)[1]
                    except Exception as exc:
                        if time.monotonic() > deadline:
                            log.warning("watermark_failed", partition=p, error=repr(exc))
                            return False
                        time.sleep(1.0)
        finally:
            probe.close()
        while True:
            with self._lock:
                behind = {p: e for p, e in ends.items() if e > 0 and self._committed.get(p, -1) < e}
            if not behind:
                return True
            if time.monotonic() > deadline:
                log.warning("group_not_caught_up", behind=behind, committed=dict(self._committed))
                return False
            time.sleep(0.5)

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        """Start the consumer and producer threads."""
        for i in range(self.config.consumers):
            t = threading.Thread(target=self._consume_loop, args=(i,), name=f"chaos-consumer-{i}", daemon=True)
            t.start()
            self._consumer_threads.append(t)
        for i in range(self.config.producers):
            t = threading.Thread(target=self._produce_loop, args=(i,), name=f"chaos-producer-{i}", daemon=True)
            t.start()
            self._producer_threads.append(t)

    def stop_producers(self, timeout: float | None = None) -> None:
        """Stop producing and wait for the producers' flush (at most about
        message.timeout.ms + 5 s, or ``timeout``)."""
        self._stop_producing.set()
        limit = timeout if timeout is not None else self.config.message_timeout_ms / 1000.0 + 15.0
        for t in self._producer_threads:
            t.join(limit)

    def stop_consumers(self, timeout: float = 20.0) -> None:
        """Stop the group consumers (close leaves the group)."""
        self._stop_consuming.set()
        for t in self._consumer_threads:
            t.join(timeout)

    def drain(self, timeout: float = 60.0, name: str = "drain") -> dict[int, tuple[int, int] | None]:
        """The final pass over every partition (see module doc); returns partition ->
        (start_offset, end_offset), or None for a partition it could not read to the end
        within ``timeout`` s (no Drained marker then: the checker says "unknown")."""
        from kafka import KafkaConsumer, TopicPartition

        c = self.config
        out: dict[int, tuple[int, int] | None] = {}
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, client_id=name,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 request_timeout_ms=15000, max_poll_records=2000)
        try:
            for p in range(c.partitions):
                tp = TopicPartition(c.topic, p)
                deadline = time.monotonic() + timeout
                consumer.assign([tp])
                try:
                    start = consumer.beginning_offsets([tp], timeout_ms=10000)[tp]
                    end = consumer.end_offsets([tp], timeout_ms=10000)[tp]
                    for _ in range(30):  # the high watermark is final once two readings agree
                        time.sleep(1.0)
                        again = consumer.end_offsets([tp], timeout_ms=10000)[tp]
                        if again == end:
                            break
                        end = again
                except Exception as exc:
                    log.warning("drain_offsets_failed", partition=p, error=repr(exc))
                    out[p] = None
                    continue
                self.history.write(Assigned(now(), name, c.topic, p, start))
                consumer.seek(tp, start)
                while consumer.position(tp) < end and time.monotonic() < deadline:
                    for records in consumer.poll(timeout_ms=500).values():
                        for r in records:
                            key, seq = decode_value(r.value)
                            if key is None and r.key is not None:
                                key = r.key.decode(errors="replace")
                            self.history.write(Consumed(now(), name, c.topic, p, r.offset, key, seq))
                if consumer.position(tp) >= end:
                    self.history.write(Drained(now(), name, c.topic, p, start, end))
                    out[p] = (start, end)
                else:
                    out[p] = None
        finally:
            consumer.close()
        return out
