"""``kafkalike topics --list | grep -q NAME``: when the reader of the tool's stdout is gone the
tool exits 0 quietly, as kafka-topics.sh does (Java's PrintStream ignores the error), instead
of reporting the closed pipe as "no broker reachable" (found by docs/tutorials/streams.md)."""

from __future__ import annotations

import os
import subprocess
import sys

from kafkalike.cluster.local_cluster import LocalCluster


def test_topics_list_into_a_closed_pipe_exits_0_without_blaming_the_brokers(kafka_cluster: LocalCluster) -> None:
    created = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "topics", "--bootstrap-server",
                              kafka_cluster.bootstrap_servers, "--create", "--topic", "closed-stdout",
                              "--partitions", "1", "--replication-factor", "1"], capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr  # so that --list has a line to write
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the tool writes: every write fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "topics", "--bootstrap-server",
                               kafka_cluster.bootstrap_servers, "--list"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert "no broker reachable" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
