"""Shared pytest fixtures. Integration fixtures (ZooKeeper ensemble, brokers) live in
tests/fixtures_*.py modules registered here as plugins.

Hypothesis runs under one profile: no per-example deadline and no ``too_slow`` health check.
Both measure wall time, which on a shared 2-core machine says more about the other processes
than about the code (a codec round trip failed ``too_slow`` once at load 23); what a property
test checks is the property, and speed lives in benchmarks. A test's own ``@settings`` still
overrides these.

structlog's configuration is put back after every test: a test that runs a CLI ``main`` in
process calls ``kafkalike.logs.configure`` (a WARNING filter for most commands), and
``structlog.testing.capture_logs`` replaces only the processors, so a later test capturing INFO
events would see none (tests/test_logs_isolation.py)."""

from collections.abc import Iterator

import pytest
import structlog
from hypothesis import HealthCheck, settings

settings.register_profile("kafkalike", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kafkalike")

pytest_plugins = ["tests.fixtures_zk", "tests.fixtures_cluster"]


@pytest.fixture(autouse=True)
def _restore_structlog_config() -> Iterator[None]:
    """Each test starts with the structlog configuration the one before it started with."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
