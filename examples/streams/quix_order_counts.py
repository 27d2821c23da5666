#!/usr/bin/env python3
"""The seed's "count how many orders were placed in the last 10 minutes" with quixstreams
(docs/tutorials/streams.md): the same topology as the Kafka Streams app (OrderCounts.java).

Reads ``orders`` (key: order id; value: examples/orders JSON), re-keys each order by its
``status`` (quixstreams' group_by: a repartition topic), counts per 10-minute tumbling window of
the record's timestamp (event time set by the producer; grace 1 day, so no order is late), and
writes every change of a window's count (``.current()``: one update per order) to the output
topic: key ``"<status>"``, value ``{"status", "window_start", "window_end", "count"}`` (epoch ms).
The window state lives in RocksDB under --state-dir with a changelog topic on the cluster.
Values that are not JSON orders are counted under status ``"invalid"``.

    quix_order_counts.py --bootstrap-server B --application-id ID --state-dir D --output T
                         [--guarantee exactly-once|at-least-once] [--input orders]

Runs in its own venv (quixstreams 3.28 pins confluent-kafka < 2.13): ./scripts/streams quix ARGS.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from quixstreams import Application


def status_of(value: Any) -> str:
    """The order's status, or "invalid" for anything that is not an order."""
    if isinstance(value, dict) and isinstance(value.get("status"), str):
        return value["status"]
    return "invalid"


def parse_order(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-server", required=True)
    parser.add_argument("--application-id", required=True, help="the consumer group")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--input", default="orders")
    parser.add_argument("--guarantee", choices=["exactly-once", "at-least-once"], default="exactly-once")
    parser.add_argument("--replication-factor", type=int, default=None,
                        help="ignored: quixstreams gives its changelog and repartition topics the input's")
    parser.add_argument("--window-minutes", type=int, default=10)
    args = parser.parse_args()

    app = Application(broker_address=args.bootstrap_server, consumer_group=args.application_id,
                      state_dir=args.state_dir, processing_guarantee=args.guarantee,
                      auto_offset_reset="earliest", commit_interval=0.5,
                      consumer_extra_config={"session.timeout.ms": 10000})
    orders = app.topic(args.input, key_deserializer="str", value_deserializer="bytes")
    output = app.topic(args.output, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(orders)
    sdf = sdf.apply(parse_order)
    sdf = sdf.group_by(status_of, name="orders-by-status")
    sdf = sdf.tumbling_window(timedelta(minutes=args.window_minutes), grace_ms=timedelta(days=1)).count().current()
    sdf = sdf.apply(lambda window, key, timestamp, headers: {
        "status": key, "window_start": window["start"], "window_end": window["end"], "count": window["value"]},
        metadata=True)
    sdf.to_topic(output)
    app.run()


if __name__ == "__main__":
    main()
