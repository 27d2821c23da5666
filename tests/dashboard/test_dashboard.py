"""``kafkalike dashboard`` against real processes: a 3-broker cluster on the session's real
ZooKeeper ensemble, the dashboard as a subprocess, the page in Debian's headless Chromium."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import trio
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from kafkalike.broker.kafka_config import CONFIG_KEYS
from kafkalike.client.admin import AdminClient, NewTopic
from kafkalike.cluster.zk_ensemble import find_free_base_port
from tests.dashboard.dashboard_helpers import chromium, http, running_dashboard
from tests.fixtures_cluster import MakeCluster

TOPIC = "teach"


def create_topic(bootstrap: str) -> None:
    """3 partitions, replication factor 3."""
    async def run() -> None:
        async with AdminClient(bootstrap) as admin:
            await admin.create_topics([NewTopic(TOPIC, 3, 3)])

    trio.run(run)


def free_metrics_port() -> dict[str, str]:
    """Brokers' /metrics on any free port where brokers serve metrics: other clusters run
    beside this one on the machine."""
    return {"kafkalike.metrics.port": "0"} if "kafkalike.metrics.port" in CONFIG_KEYS else {}


def timeline(driver) -> list[str]:  # type: ignore[no-untyped-def]
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#timeline li")]


def test_page_lists_three_brokers_marks_the_controller_and_shows_a_killed_brokers_registration_gone_and_new_leaders(
        make_cluster: MakeCluster) -> None:
    """Headless Chromium sees 3 brokers and the controller; after kill -9 (the page's own button,
    confirmed) the timeline shows /brokers/ids/<victim> deleted and the partitions it led
    getting new leaders, within the session timeout plus a margin."""
    cluster = make_cluster(brokers=3, overrides=free_metrics_port())
    create_topic(cluster.bootstrap_servers)
    shots = os.environ.get("KAFKALIKE_DASHBOARD_SCREENSHOTS")
    with running_dashboard(cluster.base_dir, host="127.0.0.1") as url, chromium() as driver:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 30, poll_frequency=0.2)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#brokers tr.broker")) == 3
                   and len(d.find_elements(By.CSS_SELECTOR, "#partitions tr.partition")) == 3
                   and all(r.text.split()[2] != "\u2013" for r in d.find_elements(By.CSS_SELECTOR, "#partitions tr.partition")))
        rows = driver.find_elements(By.CSS_SELECTOR, "#brokers tr.broker")
        assert [r.get_attribute("data-broker") for r in rows] == ["1", "2", "3"]
        controllers = driver.find_elements(By.CSS_SELECTOR, "#brokers tr.controller")
        assert len(controllers) == 1 and "controller" in controllers[0].text
        controller = int(controllers[0].get_attribute("data-broker"))
        assert driver.find_element(By.ID, "controller-id").text == str(controller)
        state = http("GET", url + "/api/state")[1]["state"]
        leaders = {p["partition"]: p["leader"] for p in state["partitions"]}
        victim = next(b for b in sorted(set(leaders.values())) if b != controller)
        led = sorted(p for p, b in leaders.items() if b == victim)
        if shots:
            driver.save_screenshot(str(Path(shots) / "dashboard-before-kill.png"))

        driver.find_element(By.CSS_SELECTOR, f"#broker-{victim} button.kill").click()
        WebDriverWait(driver, 10).until(lambda d: d.switch_to.alert).accept()
        killed = time.monotonic()
        expected = [f"/brokers/ids/{victim} deleted"] + [f"partition {TOPIC}-{p} leader {victim}\u2192" for p in led]
        margin_s = 6 + 30  # zookeeper.session.timeout.ms=6000 plus a margin for a busy machine
        WebDriverWait(driver, margin_s, poll_frequency=0.2).until(
            lambda d: all(any(e in line for line in timeline(d)) for e in expected))
        seen_after_s = time.monotonic() - killed
        assert not cluster.broker_alive(victim)
        lines = timeline(driver)
        assert any(f"you: kill -9 broker {victim}" in line for line in lines)
        assert any(f"broker {victim} process" in line and "is gone" in line for line in lines)
        # leaders moved to a survivor, and the victim's row says it is down
        for p in led:
            row = driver.find_element(By.CSS_SELECTOR, f'#partitions tr[data-partition="{TOPIC}-{p}"]')
            assert row.text.split()[2] in {str(b) for b in (1, 2, 3) if b != victim}
        WebDriverWait(driver, 10).until(lambda d: "no registration" in d.find_element(By.ID, f"broker-{victim}").text)
        if shots:
            time.sleep(1)  # let the ISR shrink land in the picture
            driver.save_screenshot(str(Path(shots) / "dashboard-after-kill.png"))
            (Path(shots) / "dashboard-kill-timeline.txt").write_text(
                f"seen {seen_after_s:.1f} s after the kill\n" + "\n".join(timeline(driver)) + "\n")
        print(f"timeline showed the new leaders {seen_after_s:.1f} s after kill -9")


def test_a_down_cluster_shows_as_down_and_bad_requests_get_clear_errors(tmp_path: Path) -> None:
    """With nothing listening where the cluster should be, the page and /api/state answer and
    say ZooKeeper is down; unknown routes 404; actions without confirmation 400; brokers
    outside the cluster 404; killing a broker that is not running 409."""
    zk_port = find_free_base_port(["127.0.0.1"], low=32000, high=34000)
    (tmp_path / "cluster.json").write_text(json.dumps(
        {"brokers": 3, "zookeeper_connect": f"127.0.0.1:{zk_port}", "base_port": zk_port + 1}))
    with running_dashboard(tmp_path, host="127.0.0.1") as url:
        status, page = http("GET", url + "/")
        assert status == 200 and "kafkalike dashboard" in page
        status, msg = http("GET", url + "/api/state")
        assert status == 200
        st = msg["state"]
        assert st["zk_connected"] is False and any(e.startswith("ZooKeeper") for e in st["errors"])
        assert [n["up"] for n in st["zk_nodes"]] == [False]
        assert all(not b["alive"] and not b["registered"] for b in st["brokers"].values())
        assert http("GET", url + "/no/such/page")[0] == 404
        assert http("POST", url + "/api/brokers/1/explode", {"confirm": True})[0] == 404
        assert http("POST", url + "/api/brokers/9/kill", {"confirm": True})[0] == 404
        status, body = http("POST", url + "/api/brokers/1/kill", {})
        assert status == 400 and "confirm" in body["error"]
        assert http("POST", url + "/api/brokers/1/kill", b"not json")[0] == 400
        status, body = http("POST", url + "/api/brokers/1/kill", {"confirm": True})
        assert status == 409 and "not running" in body["error"]
        assert http("GET", url + "/api/state")[0] == 200  # still serving after all of that
