"""The dashboard's teaching controls beside kill/restart, through its HTTP API against a real
3-broker cluster: a produce burst, pause (SIGSTOP) and resume, and a preferred leader
election, each on the timeline with its consequences; and their bad-input answers."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.dashboard.dashboard_helpers import http, running_dashboard
from tests.dashboard.test_dashboard import TOPIC, create_topic_produce_and_commit, free_metrics_port
from tests.fixtures_cluster import MakeCluster


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.3)
    return value


def test_produce_burst_pause_resume_and_preferred_election_show_on_the_timeline(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(brokers=3, overrides=free_metrics_port())
    create_topic_produce_and_commit(cluster.bootstrap_servers)  # 30 records in 3 partitions, RF 3
    with running_dashboard(cluster.base_dir, host="127.0.0.1") as url:

        def state() -> dict[str, Any]:
            return http("GET", url + "/api/state")[1]["state"]

        def timeline() -> list[str]:
            return [e["text"] for e in http("GET", url + "/api/state")[1]["events"]]

        def parts() -> list[dict[str, Any]]:
            return [p for p in state()["partitions"] if p["topic"] == TOPIC]

        wait_for("the topic's high watermarks", lambda: sum(p["high_watermark"] or 0 for p in parts()) == 30)

        # bad input first
        assert http("POST", url + "/api/produce", {"topic": TOPIC, "count": 0})[0] == 400
        assert http("POST", url + "/api/produce", {"topic": TOPIC, "count": True})[0] == 400
        assert http("POST", url + "/api/produce", {"count": 5})[0] == 400
        assert http("POST", url + "/api/produce", b"{}", {"content-type": "text/plain"})[0] == 415
        assert http("POST", url + "/api/elect-preferred", {})[0] == 400
        assert http("POST", url + "/api/elect-preferred", {"confirm": True},
                    {"origin": "http://evil.example"})[0] == 403
        assert http("POST", url + "/api/brokers/1/pause", {})[0] == 400
        assert http("POST", url + "/api/brokers/1/resume", {})[0] == 409  # not paused
        assert http("POST", url + "/api/brokers/9/pause", {"confirm": True})[0] == 404

        # a burst of 500: the high watermarks grow by 500
        status, body = http("POST", url + "/api/produce", {"topic": TOPIC, "count": 500})
        assert status == 200 and body["message"].startswith(f"500 records produced to {TOPIC}")
        wait_for("the burst in the high watermarks", lambda: sum(p["high_watermark"] or 0 for p in parts()) == 530)
        assert any(f"you: produce 500 records to {TOPIC}" in line for line in timeline())

        # pause a broker that leads a partition and is not the controller: its session expires
        controller = state()["controller"]["id"]
        victim = next(p["leader"] for p in parts() if p["leader"] != controller)
        pid = cluster.broker_pid(victim)
        status, body = http("POST", url + f"/api/brokers/{victim}/pause", {"confirm": True})
        assert status == 200, body
        try:
            assert http("POST", url + f"/api/brokers/{victim}/pause", {"confirm": True})[0] == 409
            wait_for("the paused broker's registration gone and its partitions led elsewhere", lambda: (
                any(f"/brokers/ids/{victim} deleted" in line for line in timeline())
                and all(p["leader"] != victim for p in parts())), timeout=45)
            assert cluster.broker_alive(victim) and cluster.broker_pid(victim) == pid  # stopped, not dead
            assert any(f"you: pause broker {victim} (SIGSTOP pid {pid}" in line for line in timeline())
        finally:
            status, body = http("POST", url + f"/api/brokers/{victim}/resume", {})
        assert status == 200, body
        wait_for("the resumed broker registered again and back in every ISR", lambda: (
            any(f"/brokers/ids/{victim} created" in line for line in timeline())
            and all(len(p["isr"]) == 3 for p in parts())), timeout=60)
        assert any(f"you: resume broker {victim} (SIGCONT pid {pid})" in line for line in timeline())
        assert any(p["leader"] != p["replicas"][0] for p in parts())  # the victim's preferred partition moved

        # preferred election: every partition led by its first replica again
        status, body = http("POST", url + "/api/elect-preferred", {"confirm": True})
        assert status == 200 and body["message"].startswith("preferred leader election: "), body
        assert "NONE" in body["message"], body
        wait_for("every partition led by its preferred replica", lambda: all(
            p["leader"] == p["replicas"][0] for p in parts()), timeout=30)
        lines = timeline()
        assert any(line.startswith("preferred leader election: ") for line in lines)
        assert any(f"partition {TOPIC}-" in line and f"leader {victim}" not in line.split("leader", 1)[0]
                   and f"\u2192{victim}" in line for line in lines), lines


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1" or shutil.which("iptables") is None or os.geteuid() != 0,
                    reason="kill, restart and a ZooKeeper session expiry, about 1 min, iptables as root: KAFKALIKE_SLOW=1")
def test_cut_from_zookeeper_expires_the_session_of_a_live_broker_and_heal_brings_it_back(
        make_cluster: MakeCluster) -> None:
    cluster = make_cluster(brokers=3, overrides=free_metrics_port())
    create_topic_produce_and_commit(cluster.bootstrap_servers)
    with running_dashboard(cluster.base_dir, host="127.0.0.1") as url:

        def state() -> dict[str, Any]:
            return http("GET", url + "/api/state")[1]["state"]

        def timeline() -> list[str]:
            return [e["text"] for e in http("GET", url + "/api/state")[1]["events"]]

        def parts() -> list[dict[str, Any]]:
            return [p for p in state()["partitions"] if p["topic"] == TOPIC]

        wait_for("a controller", lambda: state()["controller"])
        controller = state()["controller"]["id"]
        victim = next(b for b in (1, 2, 3) if b != controller)
        assert http("POST", url + f"/api/brokers/{victim}/cut-zk", {})[0] == 400  # unconfirmed
        status, body = http("POST", url + f"/api/brokers/{victim}/cut-zk", {"confirm": True})
        assert status == 409 and "own gid" in body["error"], body  # started by the fixture: gid shared
        assert http("POST", url + f"/api/brokers/{victim}/heal-zk", {})[0] == 409  # not cut

        # kill -9 and restart from the dashboard: the new process runs with its own gid
        old_epoch = state()["brokers"][str(victim)]["epoch"]
        assert http("POST", url + f"/api/brokers/{victim}/kill", {"confirm": True})[0] == 200
        assert http("POST", url + f"/api/brokers/{victim}/restart", {"confirm": True})[0] == 202
        wait_for("the restarted broker registered (a new broker epoch) and back in every ISR", lambda: (
            state()["brokers"][str(victim)]["registered"] and state()["brokers"][str(victim)]["epoch"] != old_epoch
            and all(len(p["isr"]) == 3 for p in parts())), 90)
        pid = cluster.broker_pid(victim)
        status, body = http("POST", url + f"/api/brokers/{victim}/cut-zk", {"confirm": True})
        assert status == 200, body
        try:
            wait_for("the cut broker's registration gone and its partitions led elsewhere", lambda: (
                not state()["brokers"][str(victim)]["registered"]
                and all(p["leader"] != victim and victim not in p["isr"] for p in parts())), 45)
            assert cluster.broker_alive(victim) and cluster.broker_pid(victim) == pid
            assert any(f"you: cut broker {victim} from ZooKeeper" in line for line in timeline())
        finally:
            status, body = http("POST", url + f"/api/brokers/{victim}/heal-zk", {})
        assert status == 200, body
        wait_for("the healed broker registered again and back in every ISR", lambda: (
            state()["brokers"][str(victim)]["registered"] and all(len(p["isr"]) == 3 for p in parts())), 90)
        assert any(f"/brokers/ids/{victim} created" in line for line in timeline())
        assert cluster.broker_pid(victim) == pid  # the same process: it was never stopped
        assert any(f"you: heal broker {victim}'s link to ZooKeeper" in line for line in timeline())
