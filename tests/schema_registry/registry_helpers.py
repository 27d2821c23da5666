"""Helpers for the schema registry tests: ``kafkalike schema-registry`` as a real subprocess
on a free port (stopped by pid, pass or fail), a tiny JSON-over-HTTP client, and the
module-scoped fixtures ``registry_cluster`` (a real 1-broker cluster) and ``registry`` (a
registry on it), which tests/schema_registry/conftest.py makes visible to the tests there."""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkalike.cluster import process
from kafkalike.cluster.local_cluster import LocalCluster


@contextlib.contextmanager
def running_registry(bootstrap: str, log_path: Path, port: int = 0) -> Iterator[str]:
    """Start ``kafkalike schema-registry --bootstrap-server bootstrap --port port``; yield its
    base URL (no trailing slash); stop it by pid afterwards. Its log goes to ``log_path``."""
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kafkalike.cli.main", "schema-registry", "--bootstrap-server", bootstrap,
             "--port", str(port)], stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    break
                if line.startswith("schema-registry: http://"):
                    url = line.split()[1].rstrip("/")
        assert url is not None, f"schema registry did not start:\n{log_path.read_text()}"
        yield url
    finally:
        process.stop_pid(proc.pid, timeout=10)
        proc.wait(timeout=10)


def http(method: str, url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    """(status, decoded JSON) of one request; HTTP errors are returned, not raised."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/vnd.schemaregistry.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, payload = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    return status, json.loads(payload)


@pytest.fixture(scope="module")
def registry_cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    """A real 1-broker kafkalike cluster for one test module (stopped afterwards)."""
    from tests.fixtures_cluster import _new_cluster

    cluster = _new_cluster(tmp_path_factory.mktemp("registry-cluster"), zk_connect, 1, None)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def registry(registry_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a schema registry on ``registry_cluster`` for one test module; its log in
    a temporary ``registry.log``."""
    log_path = tmp_path_factory.mktemp("registry-log") / "registry.log"
    with running_registry(registry_cluster.bootstrap_servers, log_path) as url:
        yield url
