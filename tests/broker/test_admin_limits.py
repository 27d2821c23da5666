"""Admin requests with extreme values get an error code and bounded memory: the
partitions per request / per cluster / replicas per broker limits (POLICY_VIOLATION) and the
controller mutation quota (KIP-599, THROTTLING_QUOTA_EXCEEDED with throttle_time_ms)."""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from kafkalike.broker.controller_mutation_quota import (ControllerMutationQuota, ThrottlingQuotaExceeded,
                                                        TokenBucket, sanitize)
from kafkalike.client.connection import KafkaConnection
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.coordination import zk_data as zd
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from tests.broker.broker_helpers import connect, port_of, running_broker

INT32_MAX = 2147483647


def vm_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status field in KiB (VmRSS, VmSize)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


def cap_address_space(pid: int, extra_bytes: int) -> None:
    """prlimit --as on a broker process: its current size + extra_bytes, so a broker that
    tries to allocate without bound fails inside its own process instead of making the
    shared machine's OOM killer pick a victim."""
    limit = vm_kib(pid, "VmSize") * 1024 + extra_bytes
    subprocess.run(["prlimit", f"--pid={pid}", f"--as={limit}:{limit}"], check=True)


async def _create(conn: KafkaConnection, name: str, partitions: int, rf: int = 1, *,
                  version: int = 7, validate_only: bool = False, timeout_ms: int = 20000) -> tuple:
    resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=version, timeout=timeout_ms,
                           validate_only=validate_only,
                           topics=[{"name": name, "num_partitions": partitions, "replication_factor": rf,
                                    "assignments": [], "configs": []}])
    return resp.topics[0].error_code, resp.topics[0].error_message, resp.throttle_time


async def _add_partitions(conn: KafkaConnection, name: str, count: int, *, version: int = 3,
                          validate_only: bool = False) -> tuple:
    resp = await conn.call(ApiKey.CREATE_PARTITIONS, api_version=version, timeout=20000,
                           validate_only=validate_only,
                           topics=[{"name": name, "count": count, "assignments": None}])
    return resp.results[0].error_code, resp.results[0].error_message, resp.throttle_time


def test_create_partitions_to_int32_max_gets_an_error_with_bounded_memory(
        make_cluster: Callable[..., LocalCluster]) -> None:
    """CreatePartitions to 2147483647 partitions (validate_only and not) is answered with
    POLICY_VIOLATION at once, and the broker process stays small and keeps serving."""
    cluster = make_cluster(brokers=1)
    pid = cluster.broker_pid(1)
    assert pid is not None
    cap_address_space(pid, 1 << 30)
    host, port = cluster.broker_address(1).rsplit(":", 1)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            conn = await KafkaConnection.connect(host, int(port), nursery=nursery, request_timeout_ms=60000)
            try:
                assert (await _create(conn, "huge", 1))[0] == ErrorCode.none
                before = vm_kib(pid, "VmRSS")
                for validate_only in (True, False):
                    started = trio.current_time()
                    with trio.fail_after(30):
                        error, message, _ = await _add_partitions(conn, "huge", INT32_MAX,
                                                                  validate_only=validate_only)
                    print(f"CreatePartitions to {INT32_MAX} (validate_only={validate_only}): "
                          f"{error!r} in {(trio.current_time() - started) * 1000:.1f} ms, "
                          f"broker RSS {before // 1024} -> {vm_kib(pid, 'VmRSS') // 1024} MiB")
                    assert error == ErrorCode.policy_violation, (error, message)
                    assert "kafkalike.max.partitions.per.request" in message
                with trio.fail_after(30):
                    error, _, _ = await _create(conn, "huge2", INT32_MAX, validate_only=True)
                assert error == ErrorCode.policy_violation
                assert vm_kib(pid, "VmRSS") - before < 100 * 1024
                assert (await _add_partitions(conn, "huge", 2))[0] == ErrorCode.none
            finally:
                await conn.aclose()

    trio.run(run)
    assert cluster.broker_alive(1)


async def test_partition_limits_per_request_cluster_and_broker(tmp_path: Path, zk_chroot_connect: str) -> None:
    """kafkalike.max.partitions.per.request counts every topic of one request, and
    kafkalike.max.partitions / kafkalike.max.replicas.per.broker count the partitions the
    cluster already has: past any of them CreateTopics and CreatePartitions answer
    POLICY_VIOLATION and write nothing."""
    async with running_broker(tmp_path, zk_chroot_connect, kafkalike_max_partitions_per_request="20",
                              kafkalike_max_replicas_per_broker="30", kafkalike_max_partitions="1000") as server, \
            connect(server) as conn:
        error, message, _ = await _create(conn, "big", 21, validate_only=True)
        assert error == ErrorCode.policy_violation and "excessively large" in message, message
        resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=True,
                               topics=[{"name": n, "num_partitions": 12, "replication_factor": 1,
                                        "assignments": [], "configs": []} for n in ("x", "y")])
        assert [t.error_code for t in resp.topics] == [ErrorCode.none, ErrorCode.policy_violation]
        assert (await _create(conn, "first", 20))[0] == ErrorCode.none
        error, message, _ = await _create(conn, "second", 11)
        assert error == ErrorCode.policy_violation and "replicas.per.broker" in message, message
        error, message, _ = await _add_partitions(conn, "first", 31)
        assert error == ErrorCode.policy_violation, message
        assert server.metadata_cache.topics() == ["first"]
        assert (await _create(conn, "second", 10))[0] == ErrorCode.none
        # more topics than the per-request limit: every one refused, none read or written
        resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False,
                               topics=[{"name": f"many{i}", "num_partitions": 1, "replication_factor": 1,
                                        "assignments": [], "configs": []} for i in range(21)])
        assert {t.error_code for t in resp.topics} == {ErrorCode.policy_violation}
        resp = await conn.call(ApiKey.DELETE_TOPICS, api_version=5, timeout=20000,
                               topic_names=["first", "second"] + [f"many{i}" for i in range(19)])
        assert {t.error_code for t in resp.responses} == {ErrorCode.policy_violation}
        assert server.metadata_cache.topics() == ["first", "second"]
    async with running_broker(tmp_path, zk_chroot_connect, kafkalike_max_partitions="35") as server, \
            connect(server) as conn:
        error, message, _ = await _create(conn, "third", 6)
        assert error == ErrorCode.policy_violation and "kafkalike.max.partitions=35" in message, message


async def _set_client_quota(server, entity: str, rate: str) -> None:
    await server.kafka_zk.set_entity_config(zd.CONFIG_TYPE_CLIENT, entity, {"controller_mutation_rate": rate})


async def test_controller_mutation_quota_throttles_strict_and_permissive_versions(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """With controller_mutation_rate=0.1 in /config/clients/<client-id> and a burst of 2
    (controller.quota.window.num=20), a client that overdrew its bucket gets
    THROTTLING_QUOTA_EXCEEDED and a throttle time from CreateTopics v6 / CreatePartitions v3 /
    DeleteTopics v5, older versions are served with a throttle time, other client ids are not
    limited until /config/clients/<default> sets a quota for them."""
    async with running_broker(tmp_path, zk_chroot_connect, controller_quota_window_num="20") as server, \
            trio.open_nursery() as nursery:
        limited = await KafkaConnection.connect("127.0.0.1", port_of(server), nursery=nursery,
                                                client_id="limited app", request_timeout_ms=20000)
        other = await KafkaConnection.connect("127.0.0.1", port_of(server), nursery=nursery,
                                              client_id="other", request_timeout_ms=20000)
        try:
            await _set_client_quota(server, sanitize("limited app"), "0.1")
            # the quota is picked up from the /config/changes notification
            with trio.fail_after(20):
                n = 0
                while True:
                    n += 1
                    error, _, throttle = await _create(limited, f"q{n}", 5, version=6)
                    if error == ErrorCode.throttling_quota_exceeded:
                        break
                    assert error == ErrorCode.none
                    await trio.sleep(0.2)
            # 2 - 5 = -3 tokens at 0.1/s: 30 s to refill (so a slow machine cannot refill it here)
            assert datetime.timedelta(seconds=10) < throttle <= datetime.timedelta(seconds=30)
            error, _, throttle = await _add_partitions(limited, "q1", 6, version=3)
            assert error == ErrorCode.throttling_quota_exceeded and throttle > datetime.timedelta(0)
            resp = await limited.call(ApiKey.DELETE_TOPICS, api_version=5, timeout=20000, topic_names=["q1"])
            assert resp.responses[0].error_code == ErrorCode.throttling_quota_exceeded
            # permissive: CreateTopics v5 / CreatePartitions v2 are served, with a throttle time
            error, _, throttle = await _create(limited, "permissive", 1, version=5)
            assert error == ErrorCode.none and throttle > datetime.timedelta(0)
            error, _, throttle = await _add_partitions(limited, "q1", 6, version=2)
            assert error == ErrorCode.none and throttle > datetime.timedelta(0)
            for i in range(3):
                error, _, throttle = await _create(other, f"free{i}", 5, version=7)
                assert (error, throttle) == (ErrorCode.none, datetime.timedelta(0))
            await _set_client_quota(server, "<default>", "0.1")
            with trio.fail_after(20):
                n = 0
                while True:
                    n += 1
                    error, _, _ = await _create(other, f"d{n}", 5, version=7)
                    if error == ErrorCode.throttling_quota_exceeded:
                        break
                    await trio.sleep(0.2)
        finally:
            await limited.aclose()
            await other.aclose()


def test_token_bucket_follows_kafkas_example() -> None:
    """Kafka's TokenBucket example (quota 5/s, 100 samples of 1 s: burst 500): a burst of 560
    leaves -60 tokens, a throttle of 12 s; a strict quota then refuses, a permissive one
    records and reports the throttle time; 12 s later the strict quota accepts again."""
    now = [1000.0]
    bucket = TokenBucket.full(5.0, 500.0, now[0])
    strict = ControllerMutationQuota(bucket, strict=True, clock=lambda: now[0])
    strict.record(560)  # not exhausted before: accepted, whatever its size
    assert bucket.tokens == -60 and bucket.throttle_ms(now[0]) == 12000
    with pytest.raises(ThrottlingQuotaExceeded) as refused:
        strict.record(1)
    assert refused.value.throttle_time_ms == 12000 and strict.throttle_time_ms == 12000
    permissive = ControllerMutationQuota(bucket, strict=False, clock=lambda: now[0])
    permissive.record(5)
    assert permissive.throttle_time_ms == 13000
    now[0] += 13.0
    strict.record(1)
    assert bucket.tokens == -1
    unbounded = ControllerMutationQuota(None, strict=True)
    unbounded.record(10**9)
    assert unbounded.throttle_time_ms == 0
