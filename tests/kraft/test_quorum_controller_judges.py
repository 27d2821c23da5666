"""Kafka 3.9's own tools judge kafkalike's controllers (opt-in: KAFKALIKE_KAFKA_LIB with the jars,
and java): ``kafka-metadata-quorum.sh --bootstrap-controller ... describe --status / --replication``
(MetadataQuorumCommand) against a running controller quorum with brokers registered, and
``kafka-dump-log.sh --cluster-metadata-decoder`` (DumpLogSegments) on every voter's segments after a
workload of registrations, fencing, topics, configs, ISR changes and producer ids: every batch valid,
every record decoded by Kafka's MetadataRecordSerde; the same for the controllers' latest snapshot."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

from kafkalike.client.messages import build_request
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.raft.kafka_metadata_log import METADATA_PARTITION_DIR
from tests.kraft.kraft_helpers import (ALLOCATE_PRODUCER_IDS, CLUSTER_ID, DrivenBroker, active_controller,
                                       controller_quorum, heartbeat_until, keep_heartbeating, send)
from tests.raft.raft_helpers import wait_for

LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)
pytestmark = pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars) and java")


def _java(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["java", "-cp", f"{LIB}/*", *args], capture_output=True, text=True, timeout=300)


async def test_kafka_tools_describe_the_controller_quorum_and_decode_every_record_it_wrote(tmp_path: Path) -> None:
    with controller_quorum(tmp_path, extra="broker.session.timeout.ms=3000\n"
                           "metadata.log.max.record.bytes.between.snapshots=2048\n") as nodes:
        leader = await active_controller(nodes)
        brokers = [DrivenBroker(i) for i in (1, 2, 3)]
        for b in brokers:
            assert (await b.register(leader)).error_code == ErrorCode.none
        await heartbeat_until(leader, brokers, offset=2**40, fenced=False)
        async with keep_heartbeating(nodes, brokers[:2]):
            created = await send(leader, build_request(ApiKey.CREATE_TOPICS, 7, topics=[{
                "name": "judged", "num_partitions": 3, "replication_factor": 3, "assignments": [],
                "configs": [{"name": "retention.ms", "value": "60000"}]}], timeout=10000, validate_only=False))
            assert created.topics[0].error_code == ErrorCode.none
            blocks = await send(leader, build_request(ALLOCATE_PRODUCER_IDS, 0, broker_id=1,
                                                      broker_epoch=brokers[0].epoch))
            assert blocks.error_code == ErrorCode.none

            async def broker3_fenced() -> bool:  # broker 3 went silent: fenced, partitions changed
                return any(type(r).__name__ == "PartitionChangeRecord" for r in leader.records())
            await wait_for(broker3_fenced, "broker 3 fenced by its session timeout", timeout_s=60)
            standby = next(n for n in nodes if n is not leader)

            def quorum_tool(*args: str) -> str:
                out = _java("org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-controller",
                            f"127.0.0.1:{standby.port}", "describe", *args)
                assert out.returncode == 0, out.stdout + out.stderr
                return out.stdout
            status = await trio.to_thread.run_sync(quorum_tool, "--status")
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            assert fields["ClusterId"].strip() == CLUSTER_ID
            assert int(fields["LeaderId"]) == leader.node_id
            replication = await trio.to_thread.run_sync(quorum_tool, "--replication")
            rows = [line.split() for line in replication.splitlines()[1:] if line.strip()]
            assert sorted((int(r[0]), r[-1]) for r in rows) == sorted(
                (n.node_id, "Leader" if n is leader else "Follower") for n in nodes)
    for node in nodes:
        out = await trio.to_thread.run_sync(lambda: _java(
            "kafka.tools.DumpLogSegments", "--cluster-metadata-decoder", "--files", ",".join(map(str, node.segments))))
        assert out.returncode == 0, out.stderr
        batches = node.batches()
        text = out.stdout.replace(" ", "")
        assert out.stdout.count("isvalid: true") == len(batches) and "isvalid: false" not in out.stdout
        records = node.records()
        assert text.count('"type":') == len(records), (text.count('"type":'), len(records))
        for kind in ("FEATURE_LEVEL_RECORD", "REGISTER_BROKER_RECORD", "BROKER_REGISTRATION_CHANGE_RECORD",
                     "TOPIC_RECORD", "CONFIG_RECORD", "PARTITION_RECORD", "PARTITION_CHANGE_RECORD",
                     "PRODUCER_IDS_RECORD", "NO_OP_RECORD"):
            assert f'"type":"{kind}"' in text, kind
        assert "Exception" not in out.stdout + out.stderr
        # the controller's snapshots: Kafka reads them too (header, records, footer)
        snapshots = sorted((node.dir / METADATA_PARTITION_DIR).glob("*.checkpoint"))
        assert snapshots
        out = await trio.to_thread.run_sync(lambda: _java(
            "kafka.tools.DumpLogSegments", "--cluster-metadata-decoder", "--files", str(snapshots[-1])))
        assert out.returncode == 0 and "isvalid: false" not in out.stdout, out.stdout + out.stderr
        assert "SnapshotHeader" in out.stdout and "SnapshotFooter" in out.stdout
        text = out.stdout.replace(" ", "")
        assert '"type":"TOPIC_RECORD"' in text and '"type":"REGISTER_BROKER_RECORD"' in text
        assert "Exception" not in out.stdout + out.stderr
