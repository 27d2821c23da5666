"""The flights demo on a slice of the real data, broker kill included."""

from __future__ import annotations

import io
import re

from tests.fixtures_cluster import MakeCluster


def test_flights_demo_slice_survives_a_broker_kill_with_every_count_equal(make_cluster: MakeCluster) -> None:
    """3,000 flights, acks=all, a consumer group of 3, kill -9 of the busiest leader and its
    restart: sent = acknowledged = consumed, no per-key order violation, the mean delays equal
    the CSV's, and the broker re-joins every ISR."""
    from kafkalike.demo.flights import run_demo

    cluster = make_cluster(brokers=3)
    out = io.StringIO()
    code = run_demo(str(cluster.base_dir), limit=3000, out=out, timeout_s=300)
    text = out.getvalue()
    assert code == 0, text[-3000:]
    assert re.search(r"== kill -9 broker \d, leader of \d of 6 partitions", text)
    assert re.search(r"== the controller moved broker \d's partitions", text)
    assert re.search(r"<- moved", text)
    for label in ("records sent", "acknowledged", "consumed \\(distinct\\)"):
        assert re.search(rf"{label}\s+3,000\s+ok", text), label
    assert re.search(r"per-key order violations\s+0\s+ok", text)
    assert re.search(r"back in every ISR: [\d.]+ s", text)
    assert "DEMO FAILED" not in text
