"""The flights demo, exactly once (kafkalike/demo/exactly_once.py), on a slice of the real data:
consume-transform-produce with confluent-kafka's transactional producer and a read_committed
consumer on 3 broker processes, one killed with SIGKILL and restarted mid-run."""

from __future__ import annotations

import io
import re

from tests.fixtures_cluster import MakeCluster

# small internal topics so the short run does not spend its time creating 50 + 50 partitions
OVERRIDES = {"transaction.state.log.num.partitions": "3", "offsets.topic.num.partitions": "3"}


def test_exactly_once_demo_counts_every_flight_once_through_a_broker_kill(make_cluster: MakeCluster) -> None:
    """300 flights, at most 20 per transaction, every 4th transaction aborted on purpose, kill -9
    of the busiest leader and its restart, and at 80% a second producer instance with the same
    transactional.id fencing the first mid-transaction: the committed aggregates read with read_committed
    count each origin's flights exactly as the CSV does, no seq twice or missing, the group's
    offsets end at the input's end, and read_uncommitted does see the aborted aggregates."""
    from kafkalike.demo.exactly_once import run_exactly_once_demo

    cluster = make_cluster(brokers=3, overrides=OVERRIDES)
    out = io.StringIO()
    code = run_exactly_once_demo(str(cluster.base_dir), limit=300, out=out, timeout_s=240, batch=20, abort_every=4)
    text = out.getvalue()
    assert code == 0, text[-4000:]
    assert "PASS: every one of 300 flights counted exactly once" in text
    assert re.search(r"== kill -9 broker \d \(pid \d+\), leader of \d+ of 9 partitions", text)
    assert re.search(r"== restarting broker \d", text)
    assert "calls init_transactions in the middle of transaction" in text
    assert re.search(r"[1-9]\d* with an unknown outcome; [3-9] producer instance", text)  # the fenced one, replaced
    assert re.search(r"flights counted twice\s+0\s+flights never counted\s+0", text)
    assert re.search(r"total\s+300\s+300\s", text)
    committed_txns, aborted = map(int, re.search(r"transactions: (\d+) committed, (\d+) aborted on purpose", text).groups())
    assert committed_txns >= 300 // 20 and aborted >= 1
    extra = int(re.search(r"read_uncommitted also sees ([\d,]+) aggregate records", text).group(1).replace(",", ""))
    assert extra > 0  # the aborted transactions' aggregates are in the log, read_committed skips them
