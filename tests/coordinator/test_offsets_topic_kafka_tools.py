"""Apache Kafka's own tools read kafkalike's __consumer_offsets: DumpLogSegments
--offsets-decoder decodes our offset commit and group metadata records (interop check).

Needs the reference Kafka 3.9 jars (``./scripts/reference-kafka fetch`` puts them in
reference/lib) and java; skipped when they are absent."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.broker.broker_helpers import connect, running_broker
from tests.coordinator.coordinator_helpers import (assignment, commit, create_topics, find_coordinator,
                                                   join_with_handshake, sync, until_loaded)

LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar")) and shutil.which("java") is not None


@pytest.mark.skipif(not HAVE_KAFKA, reason="reference Kafka jars not fetched (./scripts/reference-kafka fetch) or no java")
async def test_kafka_dump_log_segments_decodes_our_offsets_records(tmp_path: Path, zk_chroot_connect: str) -> None:
    """DumpLogSegments --offsets-decoder prints our OffsetCommit and GroupMetadata records with
    the group, topic-partition, offset, metadata, protocol, generation and members we stored."""
    import trio

    async with running_broker(tmp_path, zk_chroot_connect, offsets_topic_num_partitions="1",
                              group_initial_rebalance_delay_ms="0") as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "audit")
            await until_loaded(conn, "audit")
            await create_topics(conn, "payments", partitions=1)
            j = await join_with_handshake(conn, "audit", topics=("payments",))
            await sync(conn, "audit", j.generation_id, j.member_id, {j.member_id: assignment({"payments": [0]})})
            errors = await commit(conn, "audit", {("payments", 0): 1234}, generation=j.generation_id,
                                  member_id=j.member_id, metadata="checkpoint-7")
            assert set(errors.values()) == {0}
    files = sorted(str(p) for p in (tmp_path / "logs-1" / "__consumer_offsets-0").glob("*.log"))
    out = await trio.to_thread.run_sync(lambda: subprocess.run(
        ["java", "-cp", f"{LIB}/*", "kafka.tools.DumpLogSegments", "--offsets-decoder", "--files", ",".join(files)],
        capture_output=True, text=True, timeout=120))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    # Kafka 3.9 prints keys as {"type":"<key version>","data":...} and values as JSON
    assert 'key: {"type":"1","data":{"group":"audit","topic":"payments","partition":0}}' in text, text
    assert ('payload: {"version":"3","data":{"offset":1234,"leaderEpoch":-1,"metadata":"checkpoint-7",'
            '"commitTimestamp":') in text, text
    assert 'key: {"type":"2","data":{"group":"audit"}}' in text, text
    assert ('payload: {"version":"3","data":{"protocolType":"consumer","generation":1,"protocol":"range",'
            f'"leader":"{j.member_id}"') in text, text
    assert '"subscription":{"topics":["payments"],"userData":null}' in text, text
    assert '"assignment":{"assignedPartitions":[{"topic":"payments","partitions":[0]}],"userData":null}' in text, text
