"""The operator compatibility suite (tests/compat/compat_suite.py) against one 3-broker kafkalike
cluster of real broker processes with two log dirs each: confluent-kafka's and kafka-python's
admin calls always; Apache Kafka 3.9's own tools with KAFKALIKE_KAFKA_LIB (the reference jars).
Every row must work; the table is printed (``pytest -s``) and, with
``KAFKALIKE_COMPAT_TABLE=<file>``, written there (docs/compatibility.md shows it)."""

from __future__ import annotations

import atexit
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkalike.cluster.zk_ensemble import find_free_base_port
from tests.compat.compat_suite import Suite, TwoDirCluster, run_java_tools, run_kadm, run_python_clients, setup

LIB = os.environ.get("KAFKALIKE_KAFKA_LIB")
HAVE_KAFKA = bool(LIB) and Path(LIB or ".").is_dir() and any(Path(LIB or ".").glob("kafka_2.13-*.jar")) \
    and shutil.which("java") is not None


# issue 17 rows kafkalike does not pass yet, with the reason (they stay in the table as FAILS)
KNOWN_GAPS: dict[str, str] = {}  # call -> reason; none left (2026-12-07)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[Suite]:
    base = tmp_path_factory.mktemp("compat")
    hosts = [f"127.0.0.{i}" for i in range(1, 4)]
    cluster = TwoDirCluster(base / "cluster", brokers=3, base_port=find_free_base_port(hosts, low=30000, high=32000),
                            zookeeper_connect=zk_connect, chroot=f"kafkalike-{uuid.uuid4().hex[:10]}",
                            overrides={"log.segment.delete.delay.ms": "1000"})
    atexit.register(cluster.stop)
    try:
        cluster.start(timeout=60)
        s = Suite(cluster, Path(LIB) if HAVE_KAFKA and LIB else None, base)
        setup(s)
        yield s
    finally:
        cluster.stop()
    out = os.environ.get("KAFKALIKE_COMPAT_TABLE")
    if out:
        Path(out).write_text(s.table() + "\n")
    print("\n" + s.table())


@pytest.mark.skipif(not HAVE_KAFKA and os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="about a minute (a 3-broker cluster): KAFKALIKE_SLOW=1 or KAFKALIKE_KAFKA_LIB")
def test_confluent_kafka_and_kafka_python_admin_calls_work(suite: Suite) -> None:
    run_python_clients(suite)
    failed = [r for r in suite.rows if not r.works]
    assert failed == [], "\n".join(f"{r.client} {r.call}: {r.note}" for r in failed)


@pytest.mark.skipif(not HAVE_KAFKA, reason="set KAFKALIKE_KAFKA_LIB to the Kafka 3.9 jars (and have java)")
def test_kafka_3_9_tools_work(suite: Suite) -> None:
    before = len(suite.rows)
    run_java_tools(suite)
    failed = [r for r in suite.rows[before:] if not r.works and r.call not in KNOWN_GAPS]
    assert failed == [], "\n".join(f"{r.call}: {r.note}" for r in failed)


@pytest.mark.skipif(shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists(), reason="no Go toolchain")
@pytest.mark.skipif(not HAVE_KAFKA and os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="builds franz-go (Go module proxy): KAFKALIKE_SLOW=1 or KAFKALIKE_KAFKA_LIB")
def test_franz_go_kadm_calls_work(suite: Suite) -> None:
    before = len(suite.rows)
    run_kadm(suite, shutil.which("go") or "/usr/local/go/bin/go")
    rows = suite.rows[before:]
    assert len(rows) >= 10
    failed = [r for r in rows if not r.works and r.call not in KNOWN_GAPS]
    assert failed == [], "\n".join(f"{r.call}: {r.note}" for r in failed)
