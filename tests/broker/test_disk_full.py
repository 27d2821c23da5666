"""A real broker process on a small filesystem the test mounts (docs/robustness.md): a full disk
answers KAFKA_STORAGE_ERROR and leaves nothing after the log end, so clean and unclean
(kill -9) restarts keep exactly the acknowledged records (a 2 MiB tmpfs); a write that
cannot be rolled back halts a one-dir broker, as Kafka's does, and loses nothing, and with two
log dirs takes only its dir offline and posts a log dir event (an ext4 loop device whose
segment file is made immutable with chattr +i). Each mount is removed even if the test fails.

In the default run: about 40 s, some of it waiting out 4 s ZooKeeper sessions."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kafkalike.cluster.local_cluster import LocalCluster

TOPIC = "full"
OVERRIDES = {"zookeeper.session.timeout.ms": "4000", "num.partitions": "1",
             "default.replication.factor": "1", "offsets.topic.replication.factor": "1"}


@contextmanager
def _mounted(path: Path, *mount_args: str, skip_if_impossible: bool = False) -> Iterator[Path]:
    """`mount <mount_args> <path>`, unmounted (lazily if still busy) and removed afterwards.
    skip_if_impossible: skip the test when the mount fails (no loop devices in a container)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *mount_args, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        path.rmdir()
        if skip_if_impossible:
            pytest.skip(f"cannot mount {mount_args}: {done.stderr.strip()}")
        raise AssertionError(f"mount {mount_args} failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)
        path.rmdir()


def _producer(cluster: LocalCluster):  # type: ignore[no-untyped-def]
    from kafka import KafkaProducer

    # retries=0: every send is one Produce whose answer the test sees (KAFKA_STORAGE_ERROR
    # is retriable, so kafka-python would otherwise retry it until delivery.timeout.ms)
    return KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all", retries=0,
                         linger_ms=0, max_request_size=1 << 20, request_timeout_ms=10000)


def _send(producer, value: bytes, topic: str = TOPIC, partition: int = 0) -> int:  # type: ignore[no-untyped-def]
    """Send one record and wait: its offset (raises the client's error)."""
    return producer.send(topic, value=value, partition=partition).get(timeout=20).offset


def _end_and_values(cluster: LocalCluster, expected: int, topic: str = TOPIC,
                    partition: int = 0) -> tuple[int, list[bytes]]:
    """(latest offset, every record value from offset 0) read by a real consumer."""
    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(topic, partition)
    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap_servers, group_id=None,
                             enable_auto_commit=False, fetch_max_bytes=1 << 20,
                             max_partition_fetch_bytes=1 << 20, consumer_timeout_ms=1000)
    try:
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        consumer.seek(tp, 0)
        got: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(r.value for r in records)
        return end, got
    finally:
        consumer.close()


def _wait_unregistered(cluster: LocalCluster, broker_id: int) -> None:
    """Wait until a dead broker's /brokers/ids entry expired (its ZooKeeper session)."""
    deadline = time.monotonic() + 30
    while broker_id in cluster.registered_broker_ids():
        assert time.monotonic() < deadline, "the dead broker's registration did not expire"
        time.sleep(0.5)


def _restart(cluster: LocalCluster, kill: bool) -> None:
    if kill:
        cluster.kill_broker(1)
        _wait_unregistered(cluster, 1)
    else:
        assert cluster.stop_broker(1)
    cluster.start_broker(1)
    cluster.wait_registered([1])
    cluster.wait_ready([1])


def _assert_exactly(cluster: LocalCluster, acked: dict[int, bytes]) -> None:
    """The log ends right after the last acknowledged offset and holds exactly those records."""
    end, values = _end_and_values(cluster, len(acked))
    assert end == max(acked) + 1
    assert sorted(acked) == list(range(len(acked)))
    assert values == [acked[o] for o in range(len(acked))]


def test_full_disk_keeps_exactly_the_acknowledged_records_across_restarts(
        tmp_path: Path, make_cluster: Callable[..., LocalCluster]) -> None:
    """Produce until a 2 MiB disk is full, free space, restart cleanly then with kill -9: no garbage offsets, nothing lost."""
    with _mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=2m", "tmpfs") as disk:
        (disk / "filler").write_bytes(b"\0" * (512 << 10))
        cluster = make_cluster(brokers=1, overrides={**OVERRIDES, "log.dirs": str(disk / "logs")})
        try:
            producer = _producer(cluster)
            acked: dict[int, bytes] = {}
            errors = 0
            try:
                for i in range(400):
                    value = bytes([65 + i % 26]) * 30000 + str(i).encode()
                    try:
                        acked[_send(producer, value)] = value
                    except Exception as exc:  # kafka.errors.KafkaStorageError
                        assert "KafkaStorageError" in type(exc).__name__, repr(exc)
                        errors += 1
                        if errors == 3:
                            break
                assert errors == 3 and len(acked) > 10, "the disk never filled up"
                assert cluster.broker_alive(1)
                (disk / "filler").unlink()
                for i in range(3):
                    value = b"after-free-%d" % i
                    offset = _send(producer, value)
                    assert offset == max(acked) + 1
                    acked[offset] = value
            finally:
                producer.close()

            _restart(cluster, kill=False)
            _assert_exactly(cluster, acked)
            producer = _producer(cluster)
            try:
                offset = _send(producer, b"after-clean-restart")
                assert offset == max(acked) + 1
                acked[offset] = b"after-clean-restart"
            finally:
                producer.close()

            _restart(cluster, kill=True)
            _assert_exactly(cluster, acked)
        finally:
            cluster.stop()


def _loop_ext4(image: Path, size_mb: int = 16) -> None:
    subprocess.run(["truncate", "-s", f"{size_mb}M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)


def test_write_that_cannot_be_rolled_back_halts_the_broker_and_loses_nothing(
        tmp_path: Path, make_cluster: Callable[..., LocalCluster]) -> None:
    """An immutable segment file fails the write and its rollback: the broker halts (exit 1, Kafka's message) and
    restarts with every acknowledged record."""
    image = tmp_path / "disk.img"
    try:
        _loop_ext4(image)
    except (OSError, subprocess.CalledProcessError) as exc:  # pragma: no cover - no mkfs
        pytest.skip(f"cannot make an ext4 image: {exc}")
    if shutil.which("chattr") is None:  # pragma: no cover - e2fsprogs without chattr
        pytest.skip("no chattr")
    with _mounted(tmp_path / "disk", "-o", "loop", str(image), skip_if_impossible=True) as disk:
        cluster = make_cluster(brokers=1, overrides={**OVERRIDES, "log.dirs": str(disk / "logs")})
        segment = None
        try:
            producer = _producer(cluster)
            acked: dict[int, bytes] = {}
            try:
                for i in range(20):
                    value = b"record-%d" % i
                    acked[_send(producer, value)] = value
                segment = sorted((disk / "logs" / f"{TOPIC}-0").glob("*.log"))[-1]
                subprocess.run(["chattr", "+i", str(segment)], check=True)
                with pytest.raises(Exception):
                    _send(producer, b"never-acknowledged")
            finally:
                producer.close(timeout=5)
            deadline = time.monotonic() + 20
            while cluster.broker_alive(1):
                assert time.monotonic() < deadline, "the broker did not halt"
                time.sleep(0.2)
            assert "Shutdown broker because all log dirs in" in cluster.log_path(1).read_text()
            subprocess.run(["chattr", "-i", str(segment)], check=True)
            segment = None
            assert not (disk / "logs" / ".kafka_cleanshutdown").exists()

            _wait_unregistered(cluster, 1)
            cluster.start_broker(1)
            cluster.wait_registered([1])
            cluster.wait_ready([1])
            _assert_exactly(cluster, acked)
            producer = _producer(cluster)
            try:
                assert _send(producer, b"after-restart") == max(acked) + 1
            finally:
                producer.close()
        finally:
            if segment is not None:
                subprocess.run(["chattr", "-i", str(segment)], check=False)
            cluster.stop()


def test_failed_log_dir_goes_offline_while_the_other_dir_serves(
        tmp_path: Path, make_cluster: Callable[..., LocalCluster]) -> None:
    """With two log dirs, a write that cannot be rolled back takes only its dir offline: its partition answers
    KAFKA_STORAGE_ERROR, the other keeps serving, a log dir event is posted, a restart loses nothing."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    image = tmp_path / "disk.img"
    try:
        _loop_ext4(image)
    except (OSError, subprocess.CalledProcessError) as exc:  # pragma: no cover - no mkfs
        pytest.skip(f"cannot make an ext4 image: {exc}")
    if shutil.which("chattr") is None:  # pragma: no cover - e2fsprogs without chattr
        pytest.skip("no chattr")
    with _mounted(tmp_path / "disk", "-o", "loop", str(image), skip_if_impossible=True) as disk:
        bad_dir, good_dir = disk / "logs", tmp_path / "good-logs"
        cluster = make_cluster(brokers=1, overrides={**OVERRIDES, "log.dirs": f"{bad_dir},{good_dir}"})
        segment = None
        try:
            admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
            try:
                admin.create_topics([NewTopic("two", 2, 1)], timeout_ms=30000)
            finally:
                admin.close()
            producer = _producer(cluster)
            acked: dict[int, dict[int, bytes]] = {0: {}, 1: {}}
            try:
                for i in range(10):
                    for p in (0, 1):
                        value = b"p%d-%d" % (p, i)
                        acked[p][_send(producer, value, "two", p)] = value
                (bad_log,) = bad_dir.glob("two-*")
                bad_p = int(bad_log.name.rsplit("-", 1)[1])
                good_p = 1 - bad_p
                segment = sorted(bad_log.glob("*.log"))[-1]
                subprocess.run(["chattr", "+i", str(segment)], check=True)
                for _ in range(2):
                    with pytest.raises(Exception) as caught:
                        _send(producer, b"refused", "two", bad_p)
                    assert "KafkaStorageError" in type(caught.value).__name__, repr(caught.value)
                value = b"still-served"
                acked[good_p][_send(producer, value, "two", good_p)] = value
            finally:
                producer.close(timeout=5)
            assert cluster.broker_alive(1)
            deadline = time.monotonic() + 15  # posted by a task the failure started
            while not (events := _log_dir_events(cluster)) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert events == [{"version": 1, "broker": 1, "event": 1}]
            subprocess.run(["chattr", "-i", str(segment)], check=True)
            segment = None

            assert cluster.stop_broker(1)
            assert not (bad_dir / ".kafka_cleanshutdown").exists()
            assert (good_dir / ".kafka_cleanshutdown").exists()
            cluster.start_broker(1)
            cluster.wait_registered([1])
            cluster.wait_ready([1])
            for p in (0, 1):
                end, values = _end_and_values(cluster, len(acked[p]), "two", p)
                assert end == len(acked[p])
                assert values == [acked[p][o] for o in range(len(acked[p]))]
        finally:
            if segment is not None:
                subprocess.run(["chattr", "-i", str(segment)], check=False)
            cluster.stop()


def _log_dir_events(cluster: LocalCluster) -> list[dict]:
    """The JSON of every /log_dir_event_notification child, in sequence order."""
    import json

    import trio

    from kafkalike.coordination import NoNode, ZooKeeperClient

    async def read() -> list[dict]:
        async with ZooKeeperClient(cluster.zk_connect, session_timeout_ms=4000) as zk:
            await zk.sync("/")
            try:
                names = sorted(await zk.get_children("/log_dir_event_notification"))
            except NoNode:
                return []
            return [json.loads((await zk.get(f"/log_dir_event_notification/{n}"))[0]) for n in names]

    return trio.run(read)
