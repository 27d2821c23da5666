"""A group consumer run as its own process by the coordinator tests (so a test can kill -9
it). Prints, flushing each line: ``assigned [p, ...]`` when its assignment changes,
``rec <partition> <offset>`` per record, ``commit <partition> <next offset>`` after each
successful synchronous commit (``commit_failed <error>`` otherwise).

Usage: group_worker.py CLIENT BOOTSTRAP GROUP TOPIC SESSION_MS, CLIENT being ``confluent``
(librdkafka) or ``kafka-python``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any


def emit(*words: Any) -> None:
    print(*words, flush=True)


def run(poll: Callable[[], dict[int, list[int]]], assignment: Callable[[], list[int]],
        commit: Callable[[dict[int, int]], None]) -> None:
    """The loop: poll -> print records -> commit the next offsets synchronously."""
    last: list[int] | None = None
    while True:
        batch = poll()
        assigned = assignment()
        if assigned != last:
            emit("assigned", json.dumps(assigned))
            last = assigned
        for partition, offsets in batch.items():
            for o in offsets:
                emit("rec", partition, o)
        if batch:
            nxt = {p: offsets[-1] + 1 for p, offsets in batch.items()}
            try:
                commit(nxt)
            except Exception as exc:  # a rebalance took the partitions: redelivered elsewhere
                emit("commit_failed", type(exc).__name__)
                continue
            for p, o in nxt.items():
                emit("commit", p, o)


def confluent(bootstrap: str, group: str, topic: str, session_ms: int) -> None:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": f"worker-{group}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": session_ms, "heartbeat.interval.ms": 300,
                  "max.poll.interval.ms": max(session_ms, 20000)})
    c.subscribe([topic])

    def poll() -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for m in c.consume(num_messages=20, timeout=0.2):
            if m.error() is None:
                out.setdefault(m.partition(), []).append(m.offset())
        return out

    run(poll, lambda: sorted(tp.partition for tp in c.assignment()),
        lambda nxt: c.commit(offsets=[TopicPartition(topic, p, o) for p, o in nxt.items()], asynchronous=False))


def kafka_python(bootstrap: str, group: str, topic: str, session_ms: int) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, client_id=f"worker-{group}",
                      auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=session_ms,
                      heartbeat_interval_ms=300, max_poll_records=20, max_poll_interval_ms=20000)

    def poll() -> dict[int, list[int]]:
        return {tp.partition: [r.offset for r in records]
                for tp, records in c.poll(timeout_ms=5000).items()}

    run(poll, lambda: sorted(tp.partition for tp in c.assignment()),
        lambda nxt: c.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in nxt.items()}))


if __name__ == "__main__":
    client, bootstrap, group, topic, session = sys.argv[1:6]
    {"confluent": confluent, "kafka-python": kafka_python}[client](bootstrap, group, topic, int(session))
