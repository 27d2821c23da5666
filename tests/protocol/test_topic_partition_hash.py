"""TopicPartition caches its hash (attrs cache_hash): equal values still hash alike, and a copy
that crossed a pickle (another process's str hashes differ) hashes as its new process's own."""

from __future__ import annotations

import pickle
import subprocess
import sys

from kafkalike.protocol.topic_partition import TopicPartition


def test_equal_partitions_hash_alike_and_find_each_other_in_dicts() -> None:
    a, b = TopicPartition("orders", 3), TopicPartition("orders", 3)
    assert a is not b and a == b and hash(a) == hash(b) == hash(a)
    assert {a: 1}[b] == 1 and TopicPartition("orders", 4) not in {a: 1}


def test_a_pickled_partition_is_found_in_another_processes_dict() -> None:
    """The cached hash is not carried over: the child, whose str hashes are salted differently,
    finds the unpickled key in a dict of its own values."""
    tp = TopicPartition("orders", 3)
    hash(tp)  # fill the cache before pickling
    code = ("import pickle, sys; from kafkalike.protocol.topic_partition import TopicPartition as T; "
            "tp = pickle.loads(sys.stdin.buffer.read()); print({T('orders', 3): 'found'}.get(tp, 'missing'))")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(tp), capture_output=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}).stdout.decode().strip()
    assert out == "found"
