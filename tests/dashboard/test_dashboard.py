"""``kafkalike dashboard`` against real processes: a 3-broker cluster on the session's real
ZooKeeper ensemble, the dashboard as a subprocess, the page in Debian's headless Chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import trio
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from kafkalike.broker.kafka_config import CONFIG_KEYS
from kafkalike.client import AdminClient, KafkaGroupConsumer, KafkaProducer, NewTopic, TopicPartition
from kafkalike.cluster.zk_ensemble import find_free_base_port
from tests.dashboard.dashboard_helpers import chromium, http, running_dashboard
from tests.fixtures_cluster import MakeCluster

TOPIC = "teach"


GROUP = "teach-readers"
RECORDS = 30
COMMITTED = 5  # the group's committed offset in every partition


def create_topic_produce_and_commit(bootstrap: str) -> None:
    """3 partitions, replication factor 3, ``RECORDS`` records (acks=all), and a group that
    committed offset ``COMMITTED`` in each partition, then left."""
    async def run() -> None:
        async with AdminClient(bootstrap) as admin:
            await admin.create_topics([NewTopic(TOPIC, 3, 3)])
        async with KafkaProducer(bootstrap, acks="all") as producer:
            await producer.send_many(TOPIC, [(b"v%d" % i, b"k%d" % i) for i in range(RECORDS)])
        async with KafkaGroupConsumer(bootstrap, GROUP, [TOPIC], enable_auto_commit=False) as consumer:
            await consumer.ensure_active_group()
            await consumer.commit({TopicPartition(TOPIC, p): COMMITTED for p in range(3)})

    trio.run(run)


def free_metrics_port() -> dict[str, str]:
    """Brokers' /metrics on any free port where brokers serve metrics: other clusters run
    beside this one on the machine."""
    return {"kafkalike.metrics.port": "0"} if "kafkalike.metrics.port" in CONFIG_KEYS else {}


def texts(driver, selector: str) -> list[str]:  # type: ignore[no-untyped-def]
    """innerText of every element matching ``selector``, read in one script (the page
    re-renders rows as snapshots arrive, so element handles can go stale)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map((e) => e.innerText)", selector)


def attr(driver, selector: str, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Attribute ``name`` of every element matching ``selector``."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map((e) => e.getAttribute(arguments[1]))",
        selector, name)


def timeline(driver) -> list[str]:  # type: ignore[no-untyped-def]
    return texts(driver, "#timeline li")


def click_and_confirm(driver, selector: str) -> None:  # type: ignore[no-untyped-def]
    """Click the button (again if a re-render replaced it) and accept the confirm() dialog."""
    def click(d) -> bool:  # type: ignore[no-untyped-def]
        try:
            d.find_element(By.CSS_SELECTOR, selector).click()
            return True
        except StaleElementReferenceException:
            return False

    WebDriverWait(driver, 10, poll_frequency=0.1).until(click)
    WebDriverWait(driver, 10).until(lambda d: d.switch_to.alert).accept()


def test_page_lists_three_brokers_marks_the_controller_and_shows_a_killed_brokers_registration_gone_and_new_leaders(
        make_cluster: MakeCluster) -> None:
    """Headless Chromium sees 3 brokers and the controller; after kill -9 (the page's own button,
    confirmed) the timeline shows /brokers/ids/<victim> deleted and the partitions it led
    getting new leaders, within the session timeout plus a margin."""
    cluster = make_cluster(brokers=3, overrides=free_metrics_port())
    create_topic_produce_and_commit(cluster.bootstrap_servers)
    shots = os.environ.get("KAFKALIKE_DASHBOARD_SCREENSHOTS")
    with running_dashboard(cluster.base_dir, host="127.0.0.1") as url, chromium() as driver:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 30, poll_frequency=0.2)
        wait.until(lambda d: len(texts(d, "#brokers tr.broker")) == 3
                   and len(texts(d, "#partitions tr.partition")) == 3
                   and all(t.split()[2] != "\u2013" for t in texts(d, "#partitions tr.partition"))
                   and any(GROUP in t for t in texts(d, "#groups tr")))
        group_row = next(t for t in texts(driver, "#groups tr") if GROUP in t).split()
        assert group_row[0] == GROUP and group_row[-1] == str(RECORDS - 3 * COMMITTED)  # lag = HW - committed
        assert attr(driver, "#brokers tr.broker", "data-broker") == ["1", "2", "3"]
        controllers = attr(driver, "#brokers tr.controller", "data-broker")
        assert len(controllers) == 1
        controller = int(controllers[0])
        assert "controller" in texts(driver, f"#broker-{controller}")[0]
        assert texts(driver, "#controller-id") == [str(controller)]
        state = http("GET", url + "/api/state")[1]["state"]
        leaders = {p["partition"]: p["leader"] for p in state["partitions"] if p["topic"] == TOPIC}
        victim = next(b for b in sorted(set(leaders.values())) if b != controller)
        led = sorted(p for p, b in leaders.items() if b == victim)
        # the znode tree: registrations and /controller are ephemeral (owned by a session), topics persistent
        def znode_kind(d, path: str) -> str:  # type: ignore[no-untyped-def]
            rows = texts(d, f'#znodes tr[data-path="{path}"]')
            return rows[0] if rows else ""

        wait.until(lambda d: all("ephemeral 0x" in znode_kind(d, f"/brokers/ids/{b}") for b in (1, 2, 3)))
        assert "ephemeral 0x" in znode_kind(driver, "/controller")
        assert "persistent" in znode_kind(driver, f"/brokers/topics/{TOPIC}")
        victim_session = znode_kind(driver, f"/brokers/ids/{victim}").split("ephemeral ")[1].split()[0]
        if shots:
            driver.save_screenshot(str(Path(shots) / "dashboard-before-kill.png"))

        click_and_confirm(driver, f"#broker-{victim} button.kill")
        killed = time.monotonic()
        # znodes written by the controller after the kill are highlighted as they change
        WebDriverWait(driver, 6 + 30, poll_frequency=0.2).until(lambda d: texts(d, "#znodes tr.changed"))
        expected = [f"/brokers/ids/{victim} deleted"] + [f"partition {TOPIC}-{p} leader {victim}\u2192" for p in led]
        margin_s = 6 + 30  # zookeeper.session.timeout.ms=6000 plus a margin for a busy machine
        WebDriverWait(driver, margin_s, poll_frequency=0.2).until(
            lambda d: all(any(e in line for line in timeline(d)) for e in expected))
        seen_after_s = time.monotonic() - killed
        assert not cluster.broker_alive(victim)
        lines = timeline(driver)
        assert any(f"you: kill -9 broker {victim}" in line for line in lines)
        assert any(f"broker {victim} process" in line and "is gone" in line for line in lines)
        # the steps from the brokers' state-change.log: the controller's elections, and each
        # survivor's LeaderAndIsr named by its correlation id
        survivors = [b for b in (1, 2, 3) if b != victim]
        steps = [rf"controller {controller} \(epoch \d+\): {TOPIC}-{p} OfflinePartition\u2192OnlinePartition, "
                 rf"leader (?!{victim}\b)\d, " for p in led]
        steps += [rf"broker {b} \u2190 LeaderAndIsr correlation id \d+ from controller {controller} " for b in survivors]
        WebDriverWait(driver, 20, poll_frequency=0.2).until(
            lambda d: all(any(re.search(s, line) for line in timeline(d)) for s in steps))
        # leaders moved to a survivor, and the victim's row says it is down
        for p in led:
            row = texts(driver, f'#partitions tr[data-partition="{TOPIC}-{p}"]')[0]
            assert row.split()[2] in {str(b) for b in (1, 2, 3) if b != victim}
        WebDriverWait(driver, 10).until(lambda d: "no registration" in texts(d, f"#broker-{victim}")[0])
        WebDriverWait(driver, 10).until(lambda d: znode_kind(d, f"/brokers/ids/{victim}") == "")
        if shots:
            time.sleep(1)  # let the ISR shrink land in the picture
            driver.save_screenshot(str(Path(shots) / "dashboard-after-kill.png"))
            (Path(shots) / "dashboard-kill-timeline.txt").write_text(
                f"seen {seen_after_s:.1f} s after the kill\n" + "\n".join(timeline(driver)) + "\n")
        print(f"timeline showed the new leaders {seen_after_s:.1f} s after kill -9")

        # restart through the page: the broker registers again and returns to every ISR
        click_and_confirm(driver, f"#broker-{victim} button.restart")
        WebDriverWait(driver, 90, poll_frequency=0.5).until(
            lambda d: any(f"/brokers/ids/{victim} created" in line for line in timeline(d))
            and all(len(t.split()[4].split(",")) == 3 for t in texts(d, "#partitions tr.partition")))
        lines = timeline(driver)
        assert any(f"you: restart broker {victim}" in line for line in lines)
        assert cluster.broker_alive(victim)
        # its registration is back in the tree, owned by a new session
        WebDriverWait(driver, 10).until(lambda d: "ephemeral 0x" in znode_kind(d, f"/brokers/ids/{victim}"))
        assert victim_session not in znode_kind(driver, f"/brokers/ids/{victim}")
        if shots:
            driver.save_screenshot(str(Path(shots) / "dashboard-after-restart.png"))


def test_a_down_cluster_shows_as_down_and_bad_requests_get_clear_errors(tmp_path: Path) -> None:
    """With nothing listening where the cluster should be, the page and /api/state answer and
    say ZooKeeper is down; unknown routes 404; actions without confirmation 400, not JSON 415,
    from another origin 403; brokers outside the cluster 404; killing a broker that is not
    running 409."""
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
        assert http("POST", url + "/api/brokers/1/kill", b'{"confirm": true}',
                    headers={"content-type": "text/plain"})[0] == 415  # what a cross-site form can send
        assert http("POST", url + "/api/brokers/1/kill", {"confirm": True},
                    headers={"origin": "http://evil.example"})[0] == 403
        status, body = http("POST", url + "/api/brokers/1/kill", {"confirm": True})
        assert status == 409 and "not running" in body["error"]
        assert http("GET", url + "/api/state")[0] == 200  # still serving after all of that


def test_cli_refuses_a_dir_without_a_cluster_and_bad_options_with_exit_1(tmp_path: Path) -> None:
    """No cluster.json in --dir, a --bind that is not an IP address and an out-of-range --port
    each exit 1 with a message naming the problem, without serving anything."""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cluster.json").write_text(json.dumps({"brokers": 1, "zookeeper_connect": "127.0.0.1:1"}))
    cases = [(["--dir", str(tmp_path / "none")], "no kafkalike cluster in"),
             (["--dir", str(tmp_path / "c"), "--bind", "localhost:80"], "not an IP address"),
             (["--dir", str(tmp_path / "c"), "--port", "70000"], "not a TCP port")]
    for argv, message in cases:
        out = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "dashboard", *argv],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1 and message in out.stderr, (argv, out.stdout, out.stderr)
