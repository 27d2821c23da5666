"""KIP-890 part 1 (transaction.partition.verification.enable) against real kafkalike broker
processes and a real ZooKeeper: a partition leader asks the transaction coordinator
(AddPartitionsToTxn v4, verify_only) before a producer's first transactional write to a
partition, so a Produce for a partition the producer's transaction never added, or a late
Produce after the transaction was aborted ("hanging transaction"), answers INVALID_TXN_STATE
and writes nothing. Produce requests, InitProducerId, AddPartitionsToTxn and EndTxn are sent
with kafkalike's own client (the role of a misbehaving producer); confluent-kafka's
transactional producer still commits (the other transaction tests cover it in depth)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from kafkalike.client import KafkaClient
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from tests import fixtures_cluster
from tests.fixtures_cluster import MakeCluster, _new_cluster

OVERRIDES = {"transaction.state.log.num.partitions": "4", "offsets.topic.num.partitions": "4"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    """Three brokers, verification on (the default)."""
    c = _new_cluster(tmp_path_factory.mktemp("kip890"), zk_connect, 3, OVERRIDES)
    try:
        yield c
    finally:
        c.stop()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _coordinator_call(bs: str, txn_id: str, api_key: int, **fields: Any) -> Any:
    """``api_key`` to ``txn_id``'s transaction coordinator, as a client does it: found again when
    the answer is NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE (the __transaction_state partition's
    leadership can still move right after the cluster started: the clean-clone CI of 348a293 got
    NOT_COORDINATOR from InitProducerId), retried while it loads or a transaction is settling."""
    retry = (ErrorCode.coordinator_load_in_progress, ErrorCode.concurrent_transactions,
             ErrorCode.not_coordinator, ErrorCode.coordinator_not_available)
    async with KafkaClient(bs, client_id="kip890-test") as client:
        r = None
        for _ in range(150):
            conn = await client.any_connection()
            found = await conn.call(ApiKey.FIND_COORDINATOR, key=txn_id, key_type=1)
            if found.error_code != ErrorCode.none:
                await trio.sleep(0.2)
                continue
            coordinator = await client.connection(int(found.node_id))
            r = await coordinator.call(api_key, **fields)
            if getattr(r, "error_code", ErrorCode.none) not in retry:
                return r
            await trio.sleep(0.2)
        raise AssertionError(f"{txn_id}: no answer from a transaction coordinator but {r}")


def coordinator_call(cluster: LocalCluster, txn_id: str, api_key: int, **fields: Any) -> Any:
    return trio.run(lambda: _coordinator_call(cluster.bootstrap_servers, txn_id, api_key, **fields))


async def _leader_call(bs: str, topic: str, api_key: int, **fields: Any) -> Any:
    async with KafkaClient(bs, client_id="kip890-test") as client:
        await client.refresh_metadata([topic])
        conn = await client.leader_connection(topic, 0)
        return await conn.call(api_key, **fields)


def produce(cluster: LocalCluster, topic: str, txn_id: str | None, pid: int, epoch: int, seq: int,
            value: bytes) -> Any:
    """One transactional batch to partition 0's leader; returns the partition's response."""
    batch = build_batch([SimpleRecord(value=value, key=b"k", timestamp=int(time.time() * 1000))],
                        producer_id=pid, producer_epoch=epoch, base_sequence=seq, transactional=True)
    r = trio.run(lambda: _leader_call(cluster.bootstrap_servers, topic, ApiKey.PRODUCE, acks=-1, timeout=10000,
                                      transactional_id=txn_id,
                                      topic_data=[{"name": topic, "partition_data": [{"index": 0, "records": batch}]}]))
    return r.responses[0].partition_responses[0]


def log_end(cluster: LocalCluster, topic: str, isolation_level: int = 0) -> int:
    r = trio.run(lambda: _leader_call(
        cluster.bootstrap_servers, topic, ApiKey.LIST_OFFSETS, replica_id=-1, isolation_level=isolation_level,
        topics=[{"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1, "current_leader_epoch": -1}]}]))
    p = r.topics[0].partitions[0]
    assert p.error_code == ErrorCode.none, p
    return int(p.offset)


def init_producer(cluster: LocalCluster, txn_id: str) -> tuple[int, int]:
    r = coordinator_call(cluster, txn_id, ApiKey.INIT_PRODUCER_ID, transactional_id=txn_id,
                         transaction_timeout=60000)
    assert r.error_code == ErrorCode.none, r
    return int(r.producer_id), int(r.producer_epoch)


def add_partition(cluster: LocalCluster, txn_id: str, pid: int, epoch: int, topic: str) -> ErrorCode:
    r = coordinator_call(cluster, txn_id, ApiKey.ADD_PARTITIONS_TO_TXN, api_version=3,
                         v3_and_below_transactional_id=txn_id, v3_and_below_producer_id=pid,
                         v3_and_below_producer_epoch=epoch, v3_and_below_topics=({"name": topic, "partitions": (0,)},))
    return ErrorCode(r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code)


def verify_only(cluster: LocalCluster, txn_id: str, pid: int, epoch: int, topic: str) -> ErrorCode:
    r = coordinator_call(cluster, txn_id, ApiKey.ADD_PARTITIONS_TO_TXN, api_version=4, transactions=({
        "transactional_id": txn_id, "producer_id": pid, "producer_epoch": epoch, "verify_only": True,
        "topics": ({"name": topic, "partitions": (0,)},)},))
    assert r.error_code == ErrorCode.none
    (result,) = r.results_by_transaction
    assert result.transactional_id == txn_id
    return ErrorCode(result.topic_results[0].results_by_partition[0].partition_error_code)


def end_txn(cluster: LocalCluster, txn_id: str, pid: int, epoch: int, committed: bool) -> None:
    r = coordinator_call(cluster, txn_id, ApiKey.END_TXN, transactional_id=txn_id, producer_id=pid,
                         producer_epoch=epoch, committed=committed)
    assert r.error_code == ErrorCode.none, r


def wait_stable(cluster: LocalCluster, topic: str, timeout: float = 30) -> None:
    """Until the last stable offset reaches the log end (the markers are written)."""
    deadline = time.monotonic() + timeout
    while log_end(cluster, topic, 1) != log_end(cluster, topic, 0):
        assert time.monotonic() < deadline, "the transaction's markers were never written"
        time.sleep(0.2)


def test_produce_to_a_partition_the_transaction_never_added_answers_invalid_txn_state(cluster: LocalCluster) -> None:
    topic, txn_id = _name("kip890-never"), _name("never")
    fixtures_cluster.create_topic(cluster.bootstrap_servers, topic, 1, 3, leaders_within=30)
    pid, epoch = init_producer(cluster, txn_id)
    assert verify_only(cluster, txn_id, pid, epoch, topic) == ErrorCode.invalid_txn_state
    p = produce(cluster, topic, txn_id, pid, epoch, 0, b"not-added")
    assert p.error_code == ErrorCode.invalid_txn_state
    assert (log_end(cluster, topic, 0), log_end(cluster, topic, 1)) == (0, 0)  # nothing written, nothing hanging


def test_late_produce_after_an_abort_answers_invalid_txn_state_and_leaves_no_hanging_transaction(
        cluster: LocalCluster) -> None:
    topic, txn_id = _name("kip890-late"), _name("late")
    fixtures_cluster.create_topic(cluster.bootstrap_servers, topic, 1, 3, leaders_within=30)
    pid, epoch = init_producer(cluster, txn_id)
    assert add_partition(cluster, txn_id, pid, epoch, topic) == ErrorCode.none
    assert verify_only(cluster, txn_id, pid, epoch, topic) == ErrorCode.none
    first = produce(cluster, topic, txn_id, pid, epoch, 0, b"in-the-transaction")
    assert first.error_code == ErrorCode.none, first
    # a second batch of the same open transaction needs no new verification
    assert produce(cluster, topic, txn_id, pid, epoch, 1, b"still-in-it").error_code == ErrorCode.none
    end_txn(cluster, txn_id, pid, epoch, committed=False)
    wait_stable(cluster, topic)
    written = log_end(cluster, topic, 0)
    assert written == 3  # two records and the ABORT marker
    assert verify_only(cluster, txn_id, pid, epoch, topic) == ErrorCode.invalid_txn_state
    late = produce(cluster, topic, txn_id, pid, epoch, 2, b"late-from-the-aborted-transaction")
    assert late.error_code == ErrorCode.invalid_txn_state
    # nothing appended, and the last stable offset is not held back by a hanging transaction
    assert (log_end(cluster, topic, 0), log_end(cluster, topic, 1)) == (written, written)


def test_confluent_transactional_producer_commits_with_verification_on(cluster: LocalCluster) -> None:
    from confluent_kafka import Producer

    topic = _name("kip890-ck")
    fixtures_cluster.create_topic(cluster.bootstrap_servers, topic, 1, 3, leaders_within=30)
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": _name("ck")})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"v{i}".encode(), partition=0)
    p.commit_transaction(60)
    wait_stable(cluster, topic)  # the COMMIT marker is written after EndTxn is answered
    assert log_end(cluster, topic, 1) == 6  # five records and the marker, all stable


def test_with_verification_off_a_never_added_partition_is_written_as_before(make_cluster: MakeCluster) -> None:
    c = make_cluster(1, {**OVERRIDES, "transaction.partition.verification.enable": "false"})
    topic, txn_id = _name("kip890-off"), _name("off")
    fixtures_cluster.create_topic(c.bootstrap_servers, topic, 1, 1, leaders_within=30)
    pid, epoch = init_producer(c, txn_id)
    p = produce(c, topic, txn_id, pid, epoch, 0, b"not-added")
    assert p.error_code == ErrorCode.none
    # the batch opened a transaction the coordinator knows nothing about: it hangs
    assert (log_end(c, topic, 0), log_end(c, topic, 1)) == (1, 0)
