"""request_percentage quotas (issue 19; Kafka's ClientRequestQuotaManager, KIP-124) and the quota
sensors on /metrics: the throttle rule (unit), and on a real broker process a client id over its
request_percentage getting throttle_time_ms in its answers (capped at one window, as Kafka), its
connection muted for that time, another client id untouched, confluent-kafka's throttle_cb
called, and the per-entity sensors on /metrics under the JMX exporter's names."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from kafkalike.broker.client_quota_manager import (REQUEST_PERCENTAGE, Avg, ClientQuotaManager, QuotaEntity,
                                                   QuotaMetricsCollector)
from kafkalike.protocol.api_keys import ApiKey
from tests.broker.listener_helpers import broker_process, free_ports, plaintext_broker_properties


def test_request_time_over_request_percentage_is_throttled_at_most_one_window() -> None:
    m = ClientQuotaManager()
    m.quotas = {QuotaEntity(client_id="c"): {REQUEST_PERCENTAGE: 10.0}}
    # 50 % of a second recorded in a fresh 10-s window: 5 %/s, under the 10 % quota
    assert m.record_and_get_throttle_time_ms(REQUEST_PERCENTAGE, "ANONYMOUS", "c", 50.0, now_ms=0) == 0
    # 150 % more: 20 %/s, twice the quota; Kafka's formula gives 10 s, request quotas cap it at 1 window
    assert m.record_and_get_throttle_time_ms(REQUEST_PERCENTAGE, "ANONYMOUS", "c", 150.0, now_ms=0) == 1000
    # byte-rate quotas are not capped
    m.quotas[QuotaEntity(client_id="c")]["producer_byte_rate"] = 1000.0
    assert m.record_and_get_throttle_time_ms("producer_byte_rate", "ANONYMOUS", "c", 20_000, now_ms=0) == 10_000
    assert m.record_and_get_throttle_time_ms(REQUEST_PERCENTAGE, "ANONYMOUS", "other", 1e6, now_ms=0) == 0


def test_quota_sensors_report_rate_and_mean_throttle_time_per_entity() -> None:
    a = Avg(window_ms=1000, num=11)
    assert a.value(0) == 0.0
    a.record(0, now_ms=0)
    a.record(1000, now_ms=500)
    assert a.value(600) == 500.0
    assert a.value(20_000) == 0.0  # samples older than 11 windows are gone

    m = ClientQuotaManager()
    m.quotas = {QuotaEntity("alice"): {"producer_byte_rate": 1000.0}}
    m.record_and_get_throttle_time_ms("producer_byte_rate", "alice", "c1", 5000, now_ms=0)
    m.record_and_get_throttle_time_ms("producer_byte_rate", "alice", "c2", 15_000, now_ms=0)
    (v,) = m.sensor_values(now_ms=0)  # measured per user: one entity for both client ids
    assert (v.quota_type, v.user, v.client_id, v.rate) == ("Produce", "alice", "", 2000.0)
    assert v.throttle_time_ms == 5000.0  # mean of 0 and 10,000 ms
    (byte_rate, request_time, throttle) = QuotaMetricsCollector(m).collect()
    assert byte_rate.name == "kafka_server_quota_byte_rate" and throttle.name == "kafka_server_quota_throttle_time"
    # (collected at the monotonic clock's now, long after the samples at 0 ms: labels only)
    assert [s.labels for s in byte_rate.samples] == [{"resource": "Produce", "user": "alice", "clientId": ""}]
    assert request_time.samples == []


# ---------------------------------------------------------------------------- a real broker
@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[tuple[int, int]]:
    """One broker process: (its PLAINTEXT port, its /metrics port)."""
    base = tmp_path_factory.mktemp("request-quota")
    port, metrics_port = free_ports(2)
    props = plaintext_broker_properties(base, f"{zk_connect}/kafkalike-rq-{uuid.uuid4().hex[:10]}", port,
                                        **{"kafkalike.metrics.port": str(metrics_port)})
    with broker_process(base, props, port):
        yield port, metrics_port


def _set_quota(port: int, client_id: str, value: float) -> None:
    from kafkalike.client.connection import KafkaConnection

    async def alter() -> Any:
        async with KafkaConnection.open("127.0.0.1", port) as conn:
            return await conn.call(ApiKey.ALTER_CLIENT_QUOTAS, validate_only=False, entries=[
                {"entity": [{"entity_type": "client-id", "entity_name": client_id}],
                 "ops": [{"key": REQUEST_PERCENTAGE, "value": value, "remove": False}]}])
    answer = trio.run(alter)
    assert int(answer.entries[0].error_code) == 0


def _metadata_twice(port: int, client_id: str) -> tuple[float, float, float]:
    """Two Metadata requests on one connection as ``client_id``: (throttle ms of the first, of the
    second, seconds from sending the first to the second's answer). The broker mutes the
    connection after handling the first, so a mute of T ms makes that span at least T ms however
    loaded the machine is (both processes read the same monotonic clock)."""
    from kafkalike.client.connection import KafkaConnection

    async def run() -> tuple[float, float, float]:
        async with KafkaConnection.open("127.0.0.1", port, client_id=client_id) as conn:
            sent = time.monotonic()
            first = await conn.call(ApiKey.METADATA, topics=[], allow_auto_topic_creation=False)
            second = await conn.call(ApiKey.METADATA, topics=[], allow_auto_topic_creation=False)
            return (first.throttle_time.total_seconds() * 1000, second.throttle_time.total_seconds() * 1000,
                    time.monotonic() - sent)
    return trio.run(run)


def test_a_client_over_its_request_percentage_is_throttled_muted_and_measured(broker: tuple[int, int]) -> None:
    port, metrics_port = broker
    # 0.0001 % of a thread: any handler time over ~11 us in a 10-s window is over 10x the quota
    _set_quota(port, "greedy", 0.0001)
    first, second, waited = _metadata_twice(port, "greedy")
    assert first == 1000.0 and second == 1000.0  # Kafka's formula, capped at one 1-s window
    assert waited >= 1.0  # the connection was muted for the first answer's throttle time (a lower bound)
    assert _metadata_twice(port, "modest")[:2] == (0.0, 0.0)  # no quota for this client id

    from confluent_kafka import Producer

    throttles: list[int] = []
    p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "client.id": "greedy",
                  "throttle_cb": lambda event: throttles.append(int(event.throttle_time * 1000))})
    try:
        p.produce("request-quota", b"v")  # (auto-created) Produce answers carry throttle_time_ms
        deadline = time.monotonic() + 30
        while not throttles and time.monotonic() < deadline:
            p.poll(0.5)
    finally:
        p.flush(10)
        del p  # closes its connections now, not at garbage collection
    assert throttles and max(throttles) == 1000

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    samples = {(s.name, s.labels.get("resource"), s.labels.get("user"), s.labels.get("clientId")): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name.startswith("kafka_server_quota_")}
    assert samples[("kafka_server_quota_throttle_time", "Request", "", "greedy")] == 1000.0
    assert samples[("kafka_server_quota_request_time", "Request", "", "greedy")] > 0.0001
    assert not [k for k in samples if k[3] == "modest"]  # no quota, no sensor (Kafka: quota'd entities' sensors)


def test_removing_the_request_quota_stops_throttling(broker: tuple[int, int], tmp_path: Path) -> None:
    port, _ = broker
    _set_quota(port, "relieved", 0.0001)
    assert _metadata_twice(port, "relieved")[0] == 1000.0
    from kafkalike.client.connection import KafkaConnection

    async def remove() -> Any:
        async with KafkaConnection.open("127.0.0.1", port) as conn:
            return await conn.call(ApiKey.ALTER_CLIENT_QUOTAS, validate_only=False, entries=[
                {"entity": [{"entity_type": "client-id", "entity_name": "relieved"}],
                 "ops": [{"key": REQUEST_PERCENTAGE, "value": 0.0, "remove": True}]}])
    assert int(trio.run(remove).entries[0].error_code) == 0
    assert _metadata_twice(port, "relieved")[:2] == (0.0, 0.0)
