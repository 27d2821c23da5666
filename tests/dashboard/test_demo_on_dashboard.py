"""The flights demo watched by the dashboard: the demo prints how to start it, and the
dashboard's timeline shows the demo's broker kill (the process gone, its registration
deleted, the controller's new leaders and the survivors' LeaderAndIsr from the brokers'
state-change.log files)."""

from __future__ import annotations

import io
import os
import re

import pytest

from tests.dashboard.dashboard_helpers import http, running_dashboard
from tests.fixtures_cluster import MakeCluster


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="a 3,000-flight demo run with a kill, about 1 min: KAFKALIKE_SLOW=1")
def test_the_dashboard_shows_the_flights_demos_broker_kill(make_cluster: MakeCluster) -> None:
    from kafkalike.demo.flights import run_demo

    cluster = make_cluster(brokers=3)
    out = io.StringIO()
    with running_dashboard(cluster.base_dir, host="127.0.0.1") as url:
        code = run_demo(str(cluster.base_dir), limit=3000, out=out, timeout_s=300)
        text = out.getvalue()
        assert code == 0, text[-3000:]
        assert f"kafkalike dashboard --dir {cluster.base_dir}` in another terminal and open " \
               "http://127.0.0.1:8080/" in text
        m = re.search(r"== kill -9 broker (\d), leader of", text)
        assert m, text
        victim = int(m.group(1))
        lines = [e["text"] for e in http("GET", url + "/api/state")[1]["events"]]
    assert any(f"broker {victim} process" in line and "is gone" in line for line in lines), lines
    assert any(f"/brokers/ids/{victim} deleted" in line for line in lines), lines
    assert any(re.search(rf"controller \d \(epoch \d+\): flights-\d OfflinePartition\u2192OnlinePartition, "
                         rf"leader (?!{victim}\b)\d", line) for line in lines), lines
    assert any(re.search(rf"broker (?!{victim}\b)\d \u2190 LeaderAndIsr correlation id \d+ from controller \d",
                         line) for line in lines), lines
    assert any(f"/brokers/ids/{victim} created" in line for line in lines), lines  # the demo restarts it
