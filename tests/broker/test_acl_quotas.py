"""Client quotas (issue 19, KIP-13/55/219/546): the Rate and precedence rules (unit), and on a
real broker process AlterClientQuotas / DescribeClientQuotas storing Kafka's znodes, a
confluent-kafka producer over its producer_byte_rate receiving throttle times (its
throttle_cb), and Kafka 3.9's kafka-configs.sh (opt-in) adding and describing a quota.

The benchmark (how close the throttled rate comes to the quota) is not a test:

    .venv/bin/python -m tests.broker.test_acl_quotas --quota 500000 --seconds 30
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from kafkalike.broker.client_quota_manager import DEFAULT, ClientQuotaManager, QuotaEntity, Rate
from tests.broker.listener_helpers import broker_process, free_ports, plaintext_broker_properties, read_zk_json

KAFKA_LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and KAFKA_LIB.is_dir() and any(KAFKA_LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)


def test_rate_counts_at_least_ten_full_windows_as_kafkas_rate() -> None:
    r = Rate(window_ms=1000, num=11)
    r.record(10_000, now_ms=0)
    assert r.window_size_ms(0) == 10_000  # a fresh sensor: 10 windows, not 0
    assert r.rate(0) == 1_000.0
    for t in range(1, 30):
        r.record(1_000, now_ms=t * 1000)
    assert len(r.samples) <= 11
    assert abs(r.rate(29_500) - 1_000 * 11 / 10.5) < 1


def test_throttle_time_is_the_excess_over_the_quota_times_the_window() -> None:
    m = ClientQuotaManager()
    m.quotas = {QuotaEntity(client_id="c"): {"producer_byte_rate": 1000.0}}
    assert m.record_and_get_throttle_time_ms("producer_byte_rate", "ANONYMOUS", "c", 5_000, now_ms=0) == 0
    # 20,000 bytes in a 10 s window = 2,000 B/s, twice the quota: throttle (2000-1000)/1000 * 10 s
    assert m.record_and_get_throttle_time_ms("producer_byte_rate", "ANONYMOUS", "c", 15_000, now_ms=0) == 10_000
    assert m.record_and_get_throttle_time_ms("producer_byte_rate", "ANONYMOUS", "other", 10**9, now_ms=0) == 0


def test_quota_precedence_is_kafkas() -> None:
    m = ClientQuotaManager()
    m.quotas = {QuotaEntity(client_id=DEFAULT): {"producer_byte_rate": 8.0},
                QuotaEntity(client_id="c"): {"producer_byte_rate": 7.0},
                QuotaEntity(DEFAULT): {"producer_byte_rate": 6.0},
                QuotaEntity(DEFAULT, "c"): {"producer_byte_rate": 4.0},
                QuotaEntity("alice"): {"producer_byte_rate": 3.0},
                QuotaEntity("alice", "c"): {"producer_byte_rate": 1.0}}
    key = "producer_byte_rate"
    assert m.matching(key, "alice", "c") == (QuotaEntity("alice", "c"), 1.0)
    assert m.matching(key, "alice", "d") == (QuotaEntity("alice"), 3.0)
    assert m.matching(key, "bob", "c") == (QuotaEntity("bob", "c"), 4.0)
    assert m.matching(key, "bob", "d") == (QuotaEntity("bob"), 6.0)
    del m.quotas[QuotaEntity(DEFAULT)], m.quotas[QuotaEntity(DEFAULT, "c")]
    assert m.matching(key, "bob", "c") == (QuotaEntity(client_id="c"), 7.0)
    assert m.matching(key, "bob", "d") == (QuotaEntity(client_id="d"), 8.0)
    assert m.matching("consumer_byte_rate", "bob", "d") is None


# ---------------------------------------------------------------------------- a real broker
@pytest.fixture(scope="module")
def quota_broker(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[tuple[int, str]]:
    base = tmp_path_factory.mktemp("quota")
    (port,) = free_ports(1)
    chroot = f"{zk_connect}/kafkalike-quota-{uuid.uuid4().hex[:10]}"
    with broker_process(base, plaintext_broker_properties(base, chroot, port), port):
        yield port, chroot


async def _call(port: int, api_key: int, **fields: Any) -> Any:
    from kafkalike.client.connection import KafkaConnection
    async with KafkaConnection.open("127.0.0.1", port) as conn:
        return await conn.call(api_key, **fields)


def test_alter_and_describe_client_quotas_store_kafkas_znodes(quota_broker: tuple[int, str]) -> None:
    from kafkalike.protocol.api_keys import ApiKey

    port, chroot = quota_broker
    answer = trio.run(lambda: _call(port, ApiKey.ALTER_CLIENT_QUOTAS, validate_only=False, entries=[
        {"entity": [{"entity_type": "user", "entity_name": "alice"}, {"entity_type": "client-id", "entity_name": "c1"}],
         "ops": [{"key": "producer_byte_rate", "value": 1048576.0, "remove": False}]},
        {"entity": [{"entity_type": "client-id", "entity_name": None}],
         "ops": [{"key": "consumer_byte_rate", "value": 2048.0, "remove": False}]},
        {"entity": [{"entity_type": "client-id", "entity_name": "x"}],
         "ops": [{"key": "no_such_quota", "value": 1.0, "remove": False}]}]))
    assert [int(e.error_code) for e in answer.entries] == [0, 0, 42]  # INVALID_REQUEST for the unknown key
    assert read_zk_json(chroot, "/config/users/alice/clients/c1") == {"version": 1, "config": {"producer_byte_rate": "1048576"}}
    assert read_zk_json(chroot, "/config/clients/<default>") == {"version": 1, "config": {"consumer_byte_rate": "2048"}}
    described = trio.run(lambda: _call(port, ApiKey.DESCRIBE_CLIENT_QUOTAS, strict=False, components=[
        {"entity_type": "client-id", "match_type": 2, "match": None}]))
    found = {tuple((e.entity_type, e.entity_name) for e in entry.entity): {v.key: v.value for v in entry.values}
             for entry in described.entries}
    assert found == {(("user", "alice"), ("client-id", "c1")): {"producer_byte_rate": 1048576.0},
                     (("client-id", None),): {"consumer_byte_rate": 2048.0}}


def test_a_producer_over_its_byte_rate_is_throttled(quota_broker: tuple[int, str]) -> None:
    from confluent_kafka import Producer

    from kafkalike.protocol.api_keys import ApiKey

    port, _ = quota_broker
    answer = trio.run(lambda: _call(port, ApiKey.ALTER_CLIENT_QUOTAS, validate_only=False, entries=[
        {"entity": [{"entity_type": "client-id", "entity_name": "throttled"}],
         "ops": [{"key": "producer_byte_rate", "value": 20000.0, "remove": False}]}]))
    assert int(answer.entries[0].error_code) == 0
    throttles: list[int] = []
    deadline = time.monotonic() + 30
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "client.id": "throttled", "linger.ms": 5,
                         "throttle_cb": lambda event: throttles.append(event.throttle_time)})
    while not throttles and time.monotonic() < deadline:  # the broker reloads quotas from /config/changes
        for _ in range(50):
            producer.produce("quota-t", value=b"x" * 4000)
        producer.flush(30)
        producer.poll(0.2)
    assert throttles and max(throttles) > 0


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB set to Kafka 3.9's jars and java")
def test_kafkas_own_kafka_configs_sh_alters_and_describes_client_quotas(quota_broker: tuple[int, str]) -> None:
    port, chroot = quota_broker

    def configs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["java", "-Xmx256m", "-cp", f"{KAFKA_LIB}/*", "kafka.admin.ConfigCommand",
                               "--bootstrap-server", f"127.0.0.1:{port}", *args], capture_output=True, text=True,
                              timeout=180)
    out = configs("--alter", "--add-config", "producer_byte_rate=4096,consumer_byte_rate=8192",
                  "--entity-type", "clients", "--entity-name", "java-c")
    assert out.returncode == 0 and "Completed updating config for client java-c." in out.stdout, out.stderr[-2000:]
    assert read_zk_json(chroot, "/config/clients/java-c")["config"] == {"producer_byte_rate": "4096",
                                                                   "consumer_byte_rate": "8192"}
    out = configs("--describe", "--entity-type", "clients", "--entity-name", "java-c")
    assert "Quota configs for client-id 'java-c' are" in out.stdout, out.stdout + out.stderr[-2000:]
    assert "producer_byte_rate=4096.0" in out.stdout and "consumer_byte_rate=8192.0" in out.stdout
    # users: DescribeClientQuotas first, then DescribeUserScramCredentials (failed before quotas existed)
    trio.run(lambda: _call(port, 49, validate_only=False, entries=[
        {"entity": [{"entity_type": "user", "entity_name": "quota-user"}],
         "ops": [{"key": "consumer_byte_rate", "value": 1024.0, "remove": False}]}]))
    out = configs("--describe", "--entity-type", "users", "--entity-name", "quota-user")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Quota configs for user-principal 'quota-user' are consumer_byte_rate=1024.0" in out.stdout, out.stdout


# ---------------------------------------------------------------------------- the benchmark
def benchmark(quota: int, seconds: float, bootstrap: str) -> tuple[float, float]:
    """Produce as fast as possible for ``seconds`` as client id "bench-quota" under a
    producer_byte_rate of ``quota``; returns (acknowledged bytes/s over the second half of the
    run, the quota). Record size 10,000 bytes."""
    from confluent_kafka import Producer

    acked: list[tuple[float, int]] = []
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "bench-quota", "linger.ms": 5,
                         "queue.buffering.max.kbytes": 4096})
    value = b"b" * 10_000
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            producer.produce("bench-quota", value=value,
                             on_delivery=lambda err, msg: err is None and acked.append((time.monotonic(), len(msg.value()))))
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    half = start + seconds / 2
    late = [(t, n) for t, n in acked if half <= t <= start + seconds]
    return sum(n for _, n in late) / (seconds / 2), float(quota)


def _main() -> None:
    import argparse

    from kafkalike.cluster.local_cluster import LocalCluster
    from kafkalike.cluster.zk_ensemble import find_free_base_port
    from kafkalike.protocol.api_keys import ApiKey

    p = argparse.ArgumentParser(description="client quota benchmark: achieved produce rate vs producer_byte_rate")
    p.add_argument("--quota", type=int, default=500_000)
    p.add_argument("--seconds", type=float, default=30.0)
    args = p.parse_args()
    base = Path(f"/tmp/kafkalike-quota-bench-{uuid.uuid4().hex[:6]}")
    port = find_free_base_port(["127.0.0.1"], per_host_ports=2, low=38000, high=40000)
    zk_port = find_free_base_port(["127.0.0.1"], per_host_ports=3, low=40000, high=42000)
    cluster = LocalCluster(base, brokers=1, zk_nodes=1, base_port=port, zk_base_port=zk_port)
    try:
        cluster.start(timeout=120)
        trio.run(lambda: _call(port, ApiKey.ALTER_CLIENT_QUOTAS, validate_only=False, entries=[
            {"entity": [{"entity_type": "client-id", "entity_name": "bench-quota"}],
             "ops": [{"key": "producer_byte_rate", "value": float(args.quota), "remove": False}]}]))
        time.sleep(2)  # the broker reloads quotas from /config/changes
        rate, quota = benchmark(args.quota, args.seconds, cluster.bootstrap_servers)
        load = os.getloadavg()[0]
        print(f"producer_byte_rate={quota:.0f} B/s achieved={rate:.0f} B/s ({rate / quota * 100:.1f}% of the quota) "
              f"over the last {args.seconds / 2:.0f} s of {args.seconds:.0f} s; load average {load:.1f}")
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(_main())
