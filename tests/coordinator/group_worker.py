"""A kafka-python group consumer run as its own process by the coordinator tests (so a test
can kill -9 it). Prints, flushing each line: ``assigned [p, ...]`` when its assignment
changes, ``rec <partition> <offset>`` per record, ``commit <partition> <next offset>`` after
each successful synchronous commit. Usage: group_worker.py BOOTSTRAP GROUP TOPIC SESSION_MS"""

from __future__ import annotations

import json
import sys

from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata


def main() -> None:
    bootstrap, group, topic, session_ms = sys.argv[1:5]
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, client_id=f"worker-{group}",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=int(session_ms), heartbeat_interval_ms=300,
                             max_poll_records=20, max_poll_interval_ms=20000)
    last: list[int] | None = None
    while True:
        batch = consumer.poll(timeout_ms=200)
        assigned = sorted(tp.partition for tp in consumer.assignment())
        if assigned != last:
            print("assigned", json.dumps(assigned), flush=True)
            last = assigned
        for tp, records in batch.items():
            for r in records:
                print("rec", tp.partition, r.offset, flush=True)
        if batch:
            try:
                consumer.commit({tp: OffsetAndMetadata(records[-1].offset + 1, "", -1)
                                 for tp, records in batch.items()})
            except Exception as exc:  # a rebalance took the partitions: redelivered elsewhere
                print("commit_failed", type(exc).__name__, flush=True)
                continue
            for tp, records in batch.items():
                print("commit", tp.partition, records[-1].offset + 1, flush=True)


if __name__ == "__main__":
    main()
