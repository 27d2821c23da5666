"""DescribeLogDirs (API key 35, KIP-113): a broker with two log dirs answers each dir with its
partitions' sizes (the bytes of their .log files on disk), offset lag 0 and is_future false,
the volume's total / usable bytes (v4), KAFKA_STORAGE_ERROR for a dir taken offline, and only
the asked partitions when topics are named. Then kafka-python's describe_log_dirs and
``kafkalike log-dirs`` (Kafka's LogDirsCommand output, compared byte for byte with Kafka 3.9's
own tool when its jars are fetched: ./scripts/reference-kafka fetch) against real broker
processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import KafkaStorageError, TopicPartition
from tests.broker.broker_helpers import batch, connect, has_controller, produce, running_broker


KAFKA_LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = KAFKA_LIB.is_dir() and any(KAFKA_LIB.glob("kafka_2.13-*.jar")) and shutil.which("java") is not None


def _log_bytes(partition_dir: Path) -> int:
    """Bytes of a partition's .log files on disk."""
    return sum(f.stat().st_size for f in partition_dir.iterdir() if f.name.endswith(".log"))


def _answer(resp: Any) -> dict[str, tuple[int, dict[tuple[str, int], tuple[int, int, bool]]]]:
    """{log dir: (error, {(topic, partition): (size, offset lag, is future)})}."""
    return {r.log_dir: (r.error_code, {(t.name, p.partition_index): (p.partition_size, p.offset_lag, p.is_future_key)
                                       for t in r.topics for p in t.partitions})
            for r in resp.results}


async def test_describe_log_dirs_reports_each_dir_its_partitions_sizes_and_offline_dirs(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """Every version 1-4 lists both dirs with each partition's .log bytes, lag 0, not future; v4
    adds the volume's sizes; named topics narrow the answer; an offline dir is KAFKA_STORAGE_ERROR."""
    d1, d2 = tmp_path / "dir-a", tmp_path / "dir-b"
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(
            running_broker(tmp_path, zk_chroot_connect, log_dirs=f"{d1},{d2}"))
        if not has_controller(server):
            import pytest
            pytest.skip("needs the controller wired into KafkaServer")
        conn = await stack.enter_async_context(connect(server))
        resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False, topics=[
            {"name": "ld", "num_partitions": 4, "replication_factor": 1, "assignments": [], "configs": []},
            {"name": "other", "num_partitions": 1, "replication_factor": 1, "assignments": [], "configs": []}])
        assert [t.error_code for t in resp.topics] == [0, 0]
        tps = [TopicPartition("ld", p) for p in range(4)] + [TopicPartition("other", 0)]
        with trio.fail_after(20):
            while not all(tp in server.replica_manager.partitions for tp in tps):
                await trio.sleep(0.02)
        for p in range(4):
            for i in range(p + 1):
                r = await produce(conn, "ld", p, batch([b"x" * (100 * (i + 1))]), acks=-1)
                assert r.error_code == 0

        on_disk = {}
        for d in (d1, d2):
            for entry in d.iterdir():
                if entry.is_dir() and entry.name.startswith(("ld-", "other-")):
                    topic, _, part = entry.name.rpartition("-")
                    on_disk[(str(d), (topic, int(part)))] = _log_bytes(entry)
        assert len(on_disk) == 5 and {k[0] for k in on_disk} == {str(d1), str(d2)}  # spread over both dirs
        want = {str(d): (0, {tp: (size, 0, False) for (dd, tp), size in on_disk.items() if dd == str(d)})
                for d in (d1, d2)}
        assert all(size > 0 for (_, (t, _)), size in on_disk.items() if t == "ld")

        for version in (1, 2, 3, 4):
            resp = await conn.call(ApiKey.DESCRIBE_LOG_DIRS, api_version=version, topics=None)
            assert _answer(resp) == want, version
            if version >= 3:
                assert resp.error_code == 0
            if version >= 4:
                st = os.statvfs(d1)
                for r in resp.results:
                    assert r.total_bytes == st.f_blocks * st.f_frsize and 0 < r.usable_bytes <= r.total_bytes

        resp = await conn.call(ApiKey.DESCRIBE_LOG_DIRS, api_version=4,
                               topics=[{"topic": "ld", "partitions": [1, 3]}, {"topic": "nope", "partitions": [0]}])
        got = {tp for _, parts in _answer(resp).values() for tp in parts}
        assert got == {("ld", 1), ("ld", 3)}
        resp = await conn.call(ApiKey.DESCRIBE_LOG_DIRS, api_version=4, topics=[])
        assert {d: parts for d, (_, parts) in _answer(resp).items()} == {str(d1): {}, str(d2): {}}

        offline = server.log_manager.get_log(TopicPartition("other", 0)).dir.parent
        online = d2 if offline == d1 else d1
        server.replica_manager.handle_log_dir_failure(offline, KafkaStorageError("disk gone (test)", offline))
        resp = await conn.call(ApiKey.DESCRIBE_LOG_DIRS, api_version=4, topics=None)
        answer = _answer(resp)
        assert answer[str(offline)] == (ErrorCode.kafka_storage_error, {})
        assert answer[str(online)] == want[str(online)]
        assert {r.log_dir: (r.total_bytes, r.usable_bytes) for r in resp.results}[str(offline)] == (-1, -1)


def test_kafka_python_and_the_cli_describe_log_dirs(make_cluster: Any) -> None:
    """Against 3 real broker processes: kafka-python's KafkaAdminClient.describe_log_dirs lists
    each broker's dir with the partitions' .log sizes, and ``kafkalike log-dirs --describe``
    prints Kafka's two lines and its JSON (broker and topic filters, unknown broker refused)."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    cluster = make_cluster(brokers=3)
    bootstrap = cluster.bootstrap_servers
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic("sizes", 3, 2), NewTopic("skip", 1, 1)])
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for p in range(3):
            for i in range(5 * (p + 1)):
                producer.send("sizes", value=b"v" * 200, partition=p)
        producer.send("skip", value=b"s")
        producer.flush()  # acks=all: every replica has appended the batches before the answer
        producer.close()

        expected = {}  # {(broker, "topic-p"): (log dir, .log bytes)} from the brokers' dirs on disk
        for b in cluster.broker_ids:
            d = os.path.abspath(cluster.server_properties(b)["log.dirs"])
            for entry in Path(d).iterdir():
                if entry.is_dir() and entry.name.startswith(("sizes-", "skip-")):
                    expected[(b, entry.name)] = (d, _log_bytes(entry))
        assert len(expected) == 3 * 2 + 1 and all(size > 0 for _, size in expected.values())

        seen = {}
        for broker in admin.describe_log_dirs():
            for d in broker["log_dirs"]:
                assert d["error_code"] == 0
                for t in d["topics"]:
                    for p in t["partitions"]:
                        assert p["offset_lag"] == 0 and p["is_future_key"] is False
                        seen[(broker["broker"], f"{t['name']}-{p['partition_index']}")] = (d["log_dir"], p["partition_size"])
        assert seen == expected
    finally:
        admin.close()

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "log-dirs", "--describe",
                               "--bootstrap-server", bootstrap, *extra], capture_output=True, text=True, timeout=120)

    out = run("--topic-list", "sizes")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[:2] == ["Querying brokers for log directories information",
                         "Received log directory information from brokers 1,2,3"]
    doc = json.loads(lines[2])
    assert list(doc) == ["brokers", "version"] and doc["version"] == 1
    got = {}
    for b in doc["brokers"]:
        assert list(b) == ["broker", "logDirs"]
        for d in b["logDirs"]:
            assert list(d) == ["partitions", "error", "logDir"] and d["error"] is None
            for p in d["partitions"]:
                assert list(p) == ["partition", "size", "offsetLag", "isFuture"]
                assert p["offsetLag"] == 0 and p["isFuture"] is False
                got[(b["broker"], p["partition"])] = (d["logDir"], p["size"])
    assert got == {k: v for k, v in expected.items() if k[1].startswith("sizes-")}

    out = run("--broker-list", "2")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[1] == "Received log directory information from brokers 2"
    assert [b["broker"] for b in json.loads(out.stdout.splitlines()[2])["brokers"]] == [2]

    out = run("--broker-list", "2,7")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == ("ERROR: The given brokers do not exist from --broker-list: 7. "
                                  "Current existent brokers: 1,2,3")

    if HAVE_KAFKA:  # Kafka 3.9's own kafka-log-dirs.sh prints the very same bytes
        for extra in (("--topic-list", "sizes"), ("--broker-list", "2,3")):
            java = subprocess.run(["java", "-cp", f"{KAFKA_LIB}/*", "org.apache.kafka.tools.LogDirsCommand",
                                   "--describe", "--bootstrap-server", bootstrap, *extra],
                                  capture_output=True, text=True, timeout=120)
            assert java.returncode == 0, java.stderr[-2000:]
            assert java.stdout == run(*extra).stdout
