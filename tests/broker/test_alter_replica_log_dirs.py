"""AlterReplicaLogDirs (API key 34, KIP-113) against a real broker with two log dirs: a replica
moves to the other dir through a ``<topic>-<p>.<uuid>-future`` log that DescribeLogDirs shows
(is_future, offset lag) while it fills, is swapped in while producing goes on (the old dir gets
Kafka's ``-delete`` suffix) and every record stays readable; an unknown dir is
LOG_DIR_NOT_FOUND, a replica not created yet REPLICA_NOT_AVAILABLE with the dir remembered for
its creation, its own dir NONE; a restart keeps the moved replica. With the reference jars,
Kafka 3.9's kafka-reassign-partitions.sh (log_dirs in the plan) and kafka-log-dirs.sh
--describe are the judges."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import (batch, connect, fetch, has_controller, port_of, produce, running_broker,
                                         values_of)

KAFKA_LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", "/nonexistent"))  # the Java judges only when it is set
HAVE_KAFKA = KAFKA_LIB.is_dir() and any(KAFKA_LIB.glob("kafka_2.13-*.jar")) and shutil.which("java") is not None


@attrs.define
class Gate:
    """A ReplicaQuota for the move task's throttle hook: exceeded (nothing copied) while closed."""

    closed: bool = True
    recorded: int = 0

    def is_quota_exceeded(self) -> bool:
        return self.closed

    def record(self, nbytes: int) -> None:
        self.recorded += nbytes


def _answer(resp: Any) -> dict[str, dict[tuple[str, int, bool], int]]:
    """{log dir: {(topic, partition, is future): offset lag}}."""
    return {r.log_dir: {(t.name, p.partition_index, p.is_future_key): p.offset_lag
                        for t in r.topics for p in t.partitions} for r in resp.results}


async def _alter(conn: Any, path: str, topic: str, partitions: list[int], version: int = 2) -> dict[int, int]:
    resp = await conn.call(ApiKey.ALTER_REPLICA_LOG_DIRS, api_version=version,
                           dirs=[{"path": path, "topics": [{"name": topic, "partitions": partitions}]}])
    return {p.partition_index: p.error_code for t in resp.results for p in t.partitions}


async def _create(conn: Any, server: Any, topic: str, partitions: int = 1) -> None:
    resp = await conn.call(ApiKey.CREATE_TOPICS, api_version=7, timeout=20000, validate_only=False, topics=[
        {"name": topic, "num_partitions": partitions, "replication_factor": 1, "assignments": [], "configs": []}])
    assert resp.topics[0].error_code == 0
    with trio.fail_after(20):
        while not all(TopicPartition(topic, p) in server.replica_manager.partitions for p in range(partitions)):
            await trio.sleep(0.02)


async def test_a_replica_moves_to_the_other_log_dir_and_is_swapped_in_while_producing(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    d1, d2 = tmp_path / "dir-a", tmp_path / "dir-b"
    tp = TopicPartition("mv", 0)
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(running_broker(
            tmp_path, zk_chroot_connect, log_dirs=f"{d1},{d2}", **{"log.segment.bytes": "20000"}))
        if not has_controller(server):
            pytest.skip("needs the controller wired into KafkaServer")
        conn = await stack.enter_async_context(connect(server))
        await _create(conn, server, "mv")
        sent = []
        for i in range(150):
            values = [b"v%04d-%d" % (i, j) + b"x" * 100 for j in range(3)]
            assert (await produce(conn, "mv", 0, batch(values), acks=-1)).error_code == 0
            sent += values
        lm, rm = server.log_manager, server.replica_manager
        source = lm.get_log(tp).dir.parent
        dest = d2 if source == d1 else d1
        assert len(lm.get_log(tp).segments) > 2

        gate = Gate()
        rm.alter_log_dirs_thread().quota = gate  # hold the copy so the -future log can be seen
        assert await _alter(conn, str(dest), "mv", [0]) == {0: ErrorCode.none}
        future_dirs = [p.name for p in dest.iterdir() if p.name.endswith("-future")]
        assert len(future_dirs) == 1 and future_dirs[0].startswith("mv-0.")
        leo = lm.get_log(tp).log_end_offset
        answer = _answer(await conn.call(ApiKey.DESCRIBE_LOG_DIRS, api_version=4, topics=None))
        assert answer[str(dest)] == {("mv", 0, True): leo}  # nothing copied yet: lag = the current LEO
        assert answer[str(source)] == {("mv", 0, False): 0}
        assert await _alter(conn, str(dest), "mv", [0]) == {0: ErrorCode.none}  # already moving there
        assert len([p for p in dest.iterdir() if p.name.endswith("-future")]) == 1

        gate.closed = False
        with trio.fail_after(60):
            i = 150
            while lm.get_log(tp).dir.parent != dest:
                values = [b"v%04d-%d" % (i, j) for j in range(3)]
                assert (await produce(conn, "mv", 0, batch(values), acks=-1)).error_code == 0
                sent += values
                i += 1
                await trio.sleep(0.001)
        moved = lm.get_log(tp)
        assert moved.dir == dest / "mv-0" and rm.partitions[tp].log is moved
        assert gate.recorded > 0
        assert not (source / "mv-0").exists()
        assert [p.name for p in source.iterdir() if p.name.startswith("mv-0.")][0].endswith("-delete")
        answer = _answer(await conn.call(ApiKey.DESCRIBE_LOG_DIRS, api_version=4, topics=None))
        assert answer[str(dest)] == {("mv", 0, False): 0} and answer[str(source)] == {}
        for i in range(3):  # the moved log takes new records
            values = [b"after-%d" % i]
            assert (await produce(conn, "mv", 0, batch(values), acks=-1)).error_code == 0
            sent += values
        got: list[bytes | None] = []
        while len(got) < len(sent):
            part = await fetch(conn, "mv", 0, len(got))
            assert part.error_code == 0
            got += values_of(part.records)
        assert got == sent
        assert (dest / "mv-0" / "partition.metadata").exists()


async def test_alter_replica_log_dirs_errors_and_a_dir_chosen_before_the_replica_exists(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    d1, d2 = tmp_path / "dir-a", tmp_path / "dir-b"
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, log_dirs=f"{d1},{d2}"))
        if not has_controller(server):
            pytest.skip("needs the controller wired into KafkaServer")
        conn = await stack.enter_async_context(connect(server))
        await _create(conn, server, "e", partitions=3)
        lm = server.log_manager
        here = lm.get_log(TopicPartition("e", 0)).dir.parent
        for version in (1, 2):
            assert await _alter(conn, str(tmp_path / "elsewhere"), "e", [0], version) == {0: ErrorCode.log_dir_not_found}
            assert await _alter(conn, str(here), "e", [0], version) == {0: ErrorCode.none}
        assert lm.future_logs == {}
        # the dir with more partitions, where placement would not put a new one
        crowded = max((d1, d2), key=lambda d: sum(1 for lg in lm.logs.values() if lg.dir.parent == d))
        assert await _alter(conn, str(crowded), "later", [0]) == {0: ErrorCode.replica_not_available}
        await _create(conn, server, "later")
        assert lm.get_log(TopicPartition("later", 0)).dir.parent == crowded
        assert lm.future_logs == {}


async def test_a_replica_whose_log_start_is_inside_a_batch_moves_and_keeps_its_log_start(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """DeleteRecords to offset 4 of a 10-record batch: the future log starts at the batch's
    base offset (Kafka's rule), and the swapped-in log still starts at 4."""
    d1, d2 = tmp_path / "dir-a", tmp_path / "dir-b"
    tp = TopicPartition("mid", 0)
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, log_dirs=f"{d1},{d2}"))
        if not has_controller(server):
            pytest.skip("needs the controller wired into KafkaServer")
        conn = await stack.enter_async_context(connect(server))
        await _create(conn, server, "mid")
        assert (await produce(conn, "mid", 0, batch([b"m%d" % i for i in range(10)]), acks=-1)).error_code == 0
        resp = await conn.call(ApiKey.DELETE_RECORDS, api_version=2, timeout_ms=10000, topics=[
            {"name": "mid", "partitions": [{"partition_index": 0, "offset": 4}]}])
        assert resp.topics[0].partitions[0].low_watermark == 4
        dest = d2 if server.log_manager.get_log(tp).dir.parent == d1 else d1
        assert await _alter(conn, str(dest), "mid", [0]) == {0: ErrorCode.none}
        with trio.fail_after(30):
            while server.log_manager.get_log(tp).dir.parent != dest:
                await trio.sleep(0.02)
        moved = server.log_manager.get_log(tp)
        assert (moved.log_start_offset, moved.log_end_offset) == (4, 10)
        part = await fetch(conn, "mid", 0, 4)
        assert part.error_code == 0 and values_of(part.records)[-6:] == [b"m%d" % i for i in range(4, 10)]


async def test_a_moved_replica_stays_in_its_new_dir_after_a_restart(tmp_path: Path, zk_chroot_connect: str) -> None:
    d1, d2 = tmp_path / "dir-a", tmp_path / "dir-b"
    tp = TopicPartition("r", 0)
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, log_dirs=f"{d1},{d2}"))
        if not has_controller(server):
            pytest.skip("needs the controller wired into KafkaServer")
        conn = await stack.enter_async_context(connect(server))
        await _create(conn, server, "r")
        for i in range(20):
            assert (await produce(conn, "r", 0, batch([b"r%d" % i]), acks=-1)).error_code == 0
        dest = d2 if server.log_manager.get_log(tp).dir.parent == d1 else d1
        assert await _alter(conn, str(dest), "r", [0]) == {0: ErrorCode.none}
        with trio.fail_after(30):
            while server.log_manager.get_log(tp).dir.parent != dest:
                await trio.sleep(0.02)
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, log_dirs=f"{d1},{d2}"))
        conn = await stack.enter_async_context(connect(server))
        with trio.fail_after(30):
            while tp not in server.replica_manager.partitions or not server.replica_manager.partitions[tp].is_leader:
                await trio.sleep(0.02)
        assert server.log_manager.get_log(tp).dir == dest / "r-0"
        part = await fetch(conn, "r", 0, 0)
        assert values_of(part.records) == [b"r%d" % i for i in range(20)]


def _kafka_tool(cls: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["java", "-cp", f"{KAFKA_LIB}/*", cls, *args], capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not HAVE_KAFKA, reason="set KAFKALIKE_KAFKA_LIB to the Kafka 3.9 jars (and have java)")
async def test_kafka_reassign_partitions_moves_a_replica_between_log_dirs_and_kafka_log_dirs_sees_it(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """kafka-reassign-partitions.sh --execute with log_dirs, then --verify; kafka-log-dirs.sh
    --describe shows the replica in its new dir."""
    d1, d2 = tmp_path / "dir-a", tmp_path / "dir-b"
    tp = TopicPartition("kr", 0)
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(running_broker(tmp_path, zk_chroot_connect, log_dirs=f"{d1},{d2}"))
        if not has_controller(server):
            pytest.skip("needs the controller wired into KafkaServer")
        conn = await stack.enter_async_context(connect(server))
        await _create(conn, server, "kr")
        for i in range(30):
            assert (await produce(conn, "kr", 0, batch([b"k%d" % i]), acks=-1)).error_code == 0
        dest = d2 if server.log_manager.get_log(tp).dir.parent == d1 else d1
        bootstrap = f"127.0.0.1:{port_of(server)}"
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": "kr", "partition": 0, "replicas": [server.broker_id], "log_dirs": [str(dest)]}]}))
        out = await trio.to_thread.run_sync(lambda: _kafka_tool(
            "org.apache.kafka.tools.reassign.ReassignPartitionsCommand", "--bootstrap-server", bootstrap, "--execute",
            "--reassignment-json-file", str(plan)))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Successfully started partition reassignment" in out.stdout
        with trio.fail_after(60):
            while server.log_manager.get_log(tp).dir.parent != dest:
                await trio.sleep(0.05)
        out = await trio.to_thread.run_sync(lambda: _kafka_tool(
            "org.apache.kafka.tools.reassign.ReassignPartitionsCommand", "--bootstrap-server", bootstrap, "--verify",
            "--reassignment-json-file", str(plan)))
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"Reassignment of replica kr-0-{server.broker_id} completed successfully." in out.stdout
        out = await trio.to_thread.run_sync(lambda: _kafka_tool(
            "org.apache.kafka.tools.LogDirsCommand", "--bootstrap-server", bootstrap, "--describe", "--topic-list", "kr"))
        assert out.returncode == 0, out.stdout + out.stderr
        answer = json.loads(out.stdout.strip().splitlines()[-1])
        where = {d["logDir"]: [p["partition"] for p in d["partitions"]] for b in answer["brokers"] for d in b["logDirs"]}
        assert where == {str(dest): ["kr-0"], str(d1 if dest == d2 else d2): []}
