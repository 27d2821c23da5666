"""A real Prometheus (Debian's ``prometheus`` package) scraping a local cluster of real
broker processes, started the way ``kafkalike cluster up --with-prometheus`` starts it (the
Grafana dashboard's queries run against it); and the alert rules file accepted by
``promtool check rules``."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable

from kafkalike.cluster.local_cluster import ALERT_RULES, LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port


def _api(cluster: LocalCluster, path: str) -> dict:
    with urllib.request.urlopen(f"{cluster.prometheus_url}{path}", timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def test_promtool_accepts_the_alert_rules() -> None:
    """prometheus/kafkalike-alerts.yml passes promtool check rules and holds the operators' alerts."""
    out = subprocess.run(["promtool", "check", "rules", str(ALERT_RULES)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    text = ALERT_RULES.read_text()
    for name in ("kafka_server_replicamanager_underreplicatedpartitions",
                 "kafka_controller_kafkacontroller_offlinepartitionscount",
                 "sum(kafka_controller_kafkacontroller_activecontrollercount) != 1",
                 "kafka_server_replicamanager_isrshrinks_total", "kafka_consumergroup_lag"):
        assert name in text


def test_prometheus_scrapes_every_broker_and_answers_a_query(make_cluster: Callable[..., LocalCluster]) -> None:
    """start_prometheus (cluster up --with-prometheus) writes a scrape config for every broker: all three
    targets come up, a PromQL query over the brokers' metrics answers 1 active controller, every
    panel query of prometheus/grafana-dashboard.json is accepted and the alert rules are loaded; the
    Prometheus process is stopped by its pid afterwards."""
    port = find_free_base_port([f"127.0.0.{i}" for i in (1, 2, 3)], low=34000, high=35000)
    cluster = make_cluster(3, overrides={"kafkalike.metrics.port": str(port)})
    cluster.prometheus_port = find_free_base_port(["127.0.0.1"], low=35000, high=36000)
    try:
        pid = cluster.start_prometheus()
        assert cluster.prometheus_alive()
        deadline = time.monotonic() + 60
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            targets = _api(cluster, "/api/v1/targets")["activeTargets"]
            health = {t["labels"]["broker"]: t["health"] for t in targets}
            if health == {"1": "up", "2": "up", "3": "up"}:
                break
            time.sleep(0.5)
        assert health == {"1": "up", "2": "up", "3": "up"}, targets
        query = urllib.parse.quote("sum(kafka_controller_kafkacontroller_activecontrollercount)")
        result = _api(cluster, f"/api/v1/query?query={query}")["result"]
        assert [float(r["value"][1]) for r in result] == [1.0]
        # every panel of the Grafana dashboard is a query this Prometheus accepts over these brokers
        dashboard = json.loads((ALERT_RULES.parent / "grafana-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                _api(cluster, "/api/v1/query?query=" + urllib.parse.quote(target["expr"]))
        rules = _api(cluster, "/api/v1/rules")["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {"KafkaUnderReplicatedPartitions",
                                                                  "KafkaNoActiveController"}
    finally:
        cluster.stop_prometheus()
    assert not cluster.prometheus_alive()
    assert cluster.prometheus_pid() == pid
