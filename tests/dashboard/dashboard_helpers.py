"""Helpers for the dashboard tests: ``kafkalike dashboard`` as a real subprocess on a free
port of a loopback address (stopped by pid), and Debian's headless Chromium through
Selenium and Debian's chromedriver."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
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

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextlib.contextmanager
def running_dashboard(cluster_dir: Path, host: str = "127.0.0.1", interval: float = 0.5) -> Iterator[str]:
    """Start ``kafkalike dashboard --dir cluster_dir --bind host --port 0``; yield its base URL
    (no trailing slash); stop it by pid afterwards, pass or fail."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kafkalike.cli.main", "dashboard", "--dir", str(cluster_dir), "--bind", host,
         "--port", "0", "--interval", str(interval)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    break
                seen.append(line)
                if line.startswith("dashboard: http://"):
                    url = line.split()[1].rstrip("/")
        assert url is not None, f"dashboard did not start: {''.join(seen)}"
        yield url
    finally:
        process.stop_pid(proc.pid, timeout=10)
        proc.wait(timeout=10)


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, decoded JSON or text) of one request; HTTP errors are returned, not raised."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium driven by Selenium (nothing downloaded); quit afterwards."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: scripts/lib/setup.sh installs Debian's "
                    "chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1500,1000", "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
