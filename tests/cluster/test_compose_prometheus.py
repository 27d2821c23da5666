"""compose/docker-compose.yml's `prometheus` service: Debian's Prometheus (in kafkalike:latest,
built offline by ./scripts/build-image) scraping broker1..3:7071 with compose/prometheus.yml
and loading prometheus/kafkalike-alerts.yml. The project is brought up by the compose chaos
backend (ComposeBackend: unique project name, waits for ZooKeeper and the brokers to be
healthy, `down -v` plus removal by label in close(), even when the test fails); the test then
asks Prometheus's HTTP API, at its container address, for its targets, a PromQL query and
its rules.

The containers take minutes on a loaded machine: that test is behind KAFKALIKE_SLOW=1 and
gated like tests/chaos/test_chaos_compose.py (./scripts/test installs Docker, starts dockerd
and runs ./scripts/build-image; KAFKALIKE_COMPOSE_SKIP says why not). The default run checks
the files only (promtool, seconds)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kafkalike.chaos.compose import ComposeBackend
from tests.compose_helpers import compose_skip_reason, container_address, service_containers

COMPOSE_DIR = Path(__file__).resolve().parents[2] / "compose"
RULES_DIR = COMPOSE_DIR.parent / "prometheus"


def _api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]


def _until(what: str, probe: Any, timeout: float) -> Any:
    """Call probe() until it returns something truthy (errors count as not yet), at most timeout s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            got = probe()
            if got:
                return got
            last = got
        except Exception as exc:  # not serving yet, or a target still down
            last = exc
        time.sleep(2)
    raise AssertionError(f"{what} not seen within {timeout:.0f} s; last: {last!r}")


def test_compose_scrape_config_passes_promtool_and_lists_every_broker_service(tmp_path: Path) -> None:
    """compose/prometheus.yml (its rule file pointed at the repository's prometheus/, which
    the service mounts there) passes `promtool check config`; it scrapes exactly
    broker<i>:7071 labelled broker="<i>" for every broker<i> service of docker-compose.yml,
    whose brokers set kafkalike.metrics.port 7071 and whose prometheus service mounts both files."""
    config = (COMPOSE_DIR / "prometheus.yml").read_text()
    assert "/etc/kafkalike/prometheus/kafkalike-alerts.yml" in config
    copy = tmp_path / "prometheus.yml"
    copy.write_text(config.replace("/etc/kafkalike/prometheus/", f"{RULES_DIR}/"))
    out = subprocess.run(["promtool", "check", "config", str(copy)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 rule files found" in out.stdout

    compose = (COMPOSE_DIR / "docker-compose.yml").read_text()
    brokers = sorted(re.findall(r"^  broker(\d+):$", compose, re.M))
    assert brokers == ["1", "2", "3"]
    targets = re.findall(r'- targets: \["broker(\d+):(\d+)"\]\n\s+labels: \{broker: "(\d+)"\}', config)
    assert sorted(targets) == [(b, "7071", b) for b in brokers]
    assert 'KAFKA_CFG_KAFKALIKE_METRICS_PORT: "7071"' in compose
    assert "./prometheus.yml:/etc/kafkalike/prometheus.yml:ro" in compose
    assert "../prometheus:/etc/kafkalike/prometheus:ro" in compose


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="KAFKALIKE_SLOW=1 runs the compose project with Prometheus (minutes)")
def test_compose_prometheus_scrapes_all_three_brokers_and_answers_promql(tmp_path: Path) -> None:
    """compose up (3 ZooKeeper nodes, 3 brokers, prometheus): /api/v1/targets lists three
    active targets of job "kafkalike", broker="1".."3" at broker<i>:7071, all health "up";
    `sum(kafka_controller_kafkacontroller_activecontrollercount)` answers 1; the rule group
    "kafkalike" of prometheus/kafkalike-alerts.yml is loaded. close() leaves nothing behind."""
    reason = compose_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    backend = ComposeBackend.create(tmp_path / "compose")
    try:
        backend.start(timeout=600)
        found = service_containers(backend.project, "prometheus")
        assert len(found) == 1, f"expected one prometheus container in {backend.project}, found {found}"
        assert found[0].status == "running", found[0].logs(tail=20).decode(errors="replace")
        base = f"http://{container_address(found[0])}:9090"

        def three_up() -> list[dict[str, Any]] | None:
            active = _api(base, "/api/v1/targets", state="active")["activeTargets"]
            ours = [t for t in active if t["labels"].get("job") == "kafkalike"]
            return ours if len(ours) == 3 and all(t["health"] == "up" for t in ours) else None

        targets = _until("three kafkalike targets up", three_up, 180)
        assert sorted((t["labels"]["broker"], t["labels"]["instance"]) for t in targets) == [
            ("1", "broker1:7071"), ("2", "broker2:7071"), ("3", "broker3:7071")]

        def one_controller() -> list[Any] | None:
            result = _api(base, "/api/v1/query", query="sum(kafka_controller_kafkacontroller_activecontrollercount)")
            return result["result"] if result["result"] and float(result["result"][0]["value"][1]) == 1.0 else None

        result = _until("sum(activecontrollercount) == 1", one_controller, 120)
        assert len(result) == 1
        per_broker = _api(base, "/api/v1/query", query="kafka_controller_kafkacontroller_activecontrollercount")
        assert sorted(r["metric"]["broker"] for r in per_broker["result"]) == ["1", "2", "3"]

        groups = _api(base, "/api/v1/rules")["groups"]
        rules = {r["name"] for g in groups if g["name"] == "kafkalike" for r in g["rules"]}
        assert {"KafkaNoActiveController", "KafkaOfflinePartitions", "KafkaBrokerMetricsDown"} <= rules
    except BaseException:
        backend.save_logs(tmp_path / "logs")
        for c in service_containers(backend.project, "prometheus"):
            print("prometheus log:", c.logs(tail=30).decode(errors="replace"))
        raise
    finally:
        backend.close()
    assert backend.leftovers() == []
