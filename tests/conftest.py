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


#: structlog's configuration before any test ran (conftest is imported before test modules)
_STRUCTLOG_BASELINE = structlog.get_config()


@pytest.fixture(autouse=True)
def _restore_structlog_config() -> Iterator[None]:
    """After each test, structlog's configuration is the one from before the first test: a
    module- or session-scoped fixture that configured it (set up before a test's own fixtures,
    so saving at each test's start would keep its change) does not leak past its module's
    tests either."""
    yield
    structlog.configure(**_STRUCTLOG_BASELINE)
