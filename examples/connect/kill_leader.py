#!/usr/bin/env python3
"""SIGKILLs the broker leading a topic's partition in a local kafkalike cluster, keeps it down
for a while, and starts it again (docs/tutorials/connect-avro-failover.md):

    kill_leader.py --cluster-dir D --bootstrap-server B --topic T [--partition 0] [--after 5] [--down 10]

``--after``: seconds to wait before the kill; ``--down``: seconds the broker stays dead. The
broker is started again with its data (``LocalCluster.start_broker``) and the tool returns once
it is registered in ZooKeeper again. Prints one line per step; exit 1 when the partition has no
leader. D is the directory of ``kafkalike cluster up --dir D`` (or of the tests' cluster).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import structlog
from confluent_kafka.admin import AdminClient

from kafkalike.cluster.local_cluster import LocalCluster

_T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster-dir", type=Path, required=True)
    parser.add_argument("--bootstrap-server", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partition", type=int, default=0)
    parser.add_argument("--after", type=float, default=5.0, help="seconds before the kill")
    parser.add_argument("--down", type=float, default=10.0, help="seconds the broker stays dead")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    # the real path: a broker is known by its config path in its command line
    cluster = LocalCluster.load(args.cluster_dir.resolve())
    time.sleep(args.after)
    meta = AdminClient({"bootstrap.servers": args.bootstrap_server}).list_topics(args.topic, timeout=30)
    partition = meta.topics[args.topic].partitions.get(args.partition)
    if partition is None or partition.leader < 0:
        print(f"kill-leader: {args.topic}-{args.partition} has no leader", file=sys.stderr)
        return 1
    victim = int(partition.leader)
    if not cluster.kill_broker(victim):
        print(f"kill-leader: broker {victim} is not a running process of {args.cluster_dir}", file=sys.stderr)
        return 1
    say(f"kill -9 broker {victim} (leader of {args.topic}-{args.partition}, replicas {partition.replicas}, "
        f"isr {partition.isrs})")
    time.sleep(args.down)
    cluster.start_broker(victim, say=say)
    cluster.wait_registered([victim], timeout=120)
    say(f"restarted broker {victim}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
