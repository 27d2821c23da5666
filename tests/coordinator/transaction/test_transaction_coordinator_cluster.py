"""The transaction coordinator against three real kafkalike broker processes and a real
ZooKeeper ensemble: confluent-kafka's transactional producer (librdkafka 2.16) commits and
aborts over two partitions, a second producer with the same transactional.id fences the
first, a transaction past its timeout is aborted by the coordinator, and raw requests get
Kafka's error codes (unknown transactional id, stale epoch, bad timeout)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from kafkalike.client.connection import KafkaConnection
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from tests import fixtures_cluster
from tests.fixtures_cluster import MakeCluster, _new_cluster

pytest.importorskip("confluent_kafka")

LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[3] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)
"""Kafka 3.9's Java tools (DumpLogSegments, TransactionsCommand) run only with KAFKALIKE_KAFKA_LIB
set (each JVM start takes seconds): KAFKALIKE_KAFKA_LIB=reference/lib pytest ..."""
OVERRIDES = {"transaction.state.log.num.partitions": "4", "offsets.topic.num.partitions": "4",
             "transaction.abort.timed.out.transaction.cleanup.interval.ms": "500"}


@pytest.fixture(scope="module")
def txn_cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    """Three brokers with a 4-partition __transaction_state (RF 3, min ISR 2) and timed-out
    transactions checked every 500 ms, shared by this module's tests (each uses its own
    topic and transactional ids)."""
    cluster = _new_cluster(tmp_path_factory.mktemp("txn"), zk_connect, 3, OVERRIDES)
    try:
        yield cluster
    finally:
        cluster.stop()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    """RF 3, and every partition led in Metadata before the test goes on."""
    fixtures_cluster.create_topic(bootstrap, name, partitions, 3, leaders_within=30)


def producer(bootstrap: str, txn_id: str, **extra: Any) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, **extra})


async def _request(cluster: LocalCluster, api_key: int, *, coordinator_for: str | None = None, **fields: Any) -> Any:
    """Send one request to the transaction coordinator of ``coordinator_for`` (or the first live broker
    when None)."""
    alive = [b for b in cluster.broker_ids if cluster.broker_alive(b)]
    host, port = cluster.broker_address(alive[0]).split(":")
    async with KafkaConnection.open(host, int(port)) as conn:
        if coordinator_for is None:
            return await conn.call(api_key, **fields)
        for _ in range(100):
            found = await conn.call(ApiKey.FIND_COORDINATOR, key=coordinator_for, key_type=1)
            if found.error_code == ErrorCode.none:
                break
            await trio.sleep(0.2)
        else:
            raise AssertionError(f"no transaction coordinator for {coordinator_for}: {found}")
    async with KafkaConnection.open(found.host, int(found.port)) as coordinator:
        return await coordinator.call(api_key, **fields)


def request(cluster: LocalCluster, api_key: int, **kw: Any) -> Any:
    return trio.run(lambda: _request(cluster, api_key, **kw))


def describe(cluster: LocalCluster, txn_id: str) -> Any:
    response = request(cluster, ApiKey.DESCRIBE_TRANSACTIONS, coordinator_for=txn_id, transactional_ids=(txn_id,))
    (state,) = response.transaction_states
    return state


def wait_state(cluster: LocalCluster, txn_id: str, state: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        d = describe(cluster, txn_id)
        if d.transaction_state == state or time.monotonic() > deadline:
            return d
        time.sleep(0.2)


def committed_values(bootstrap: str, topic: str, partitions: int, expect: int) -> list[bytes]:
    """Values a read_committed consumer reads from ``topic`` (until ``expect`` or 20 s idle)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": _name("g"), "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(out) < expect and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                out.append(m.value())
        end = time.monotonic() + 1.5  # nothing more (an aborted record would show up here)
        while time.monotonic() < end:
            m = c.poll(0.3)
            if m is not None and m.error() is None:
                out.append(m.value())
        return out
    finally:
        c.close()


def test_confluent_producer_commits_and_aborts_over_two_partitions(txn_cluster: LocalCluster) -> None:
    bootstrap = txn_cluster.bootstrap_servers
    topic, txn_id = _name("txn-topic"), _name("txn")
    create_topic(bootstrap, topic, 2)
    p = producer(bootstrap, txn_id)
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=f"c{i}".encode(), partition=i % 2)
    p.commit_transaction(60)
    done = wait_state(txn_cluster, txn_id, "CompleteCommit")
    assert done.transaction_state == "CompleteCommit"
    assert done.topics == ()

    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=f"a{i}".encode(), partition=i % 2)
    p.flush(30)
    ongoing = describe(txn_cluster, txn_id)
    assert ongoing.transaction_state == "Ongoing"
    assert {(t.topic, tuple(sorted(t.partitions))) for t in ongoing.topics} == {(topic, (0, 1))}
    p.abort_transaction(60)
    assert wait_state(txn_cluster, txn_id, "CompleteAbort").transaction_state == "CompleteAbort"

    listed = request(txn_cluster, ApiKey.LIST_TRANSACTIONS, coordinator_for=txn_id, state_filters=("CompleteAbort",))
    assert listed.error_code == ErrorCode.none
    assert txn_id in {t.transactional_id for t in listed.transaction_states}

    values = committed_values(bootstrap, topic, 2, 10)
    assert sorted(values) == sorted(f"c{i}".encode() for i in range(10))


def test_second_producer_with_the_same_transactional_id_fences_the_first(txn_cluster: LocalCluster) -> None:
    from confluent_kafka import KafkaException

    bootstrap = txn_cluster.bootstrap_servers
    topic, txn_id = _name("fence-topic"), _name("txn")
    create_topic(bootstrap, topic, 2)
    first = producer(bootstrap, txn_id)
    first.init_transactions(60)
    first.begin_transaction()
    first.produce(topic, value=b"zombie", partition=0)
    first.flush(30)
    epoch_before = describe(txn_cluster, txn_id).producer_epoch

    second = producer(bootstrap, txn_id)
    second.init_transactions(60)  # aborts the first producer's open transaction, bumps the epoch
    after = describe(txn_cluster, txn_id)
    # Kafka's sequence: epoch+1 fences and aborts the open transaction (PrepareAbort ->
    # CompleteAbort, markers with the new epoch), the retried InitProducerId bumps again (Empty)
    assert (after.transaction_state, after.producer_epoch) == ("Empty", epoch_before + 2)

    with pytest.raises(KafkaException) as raised:
        first.produce(topic, value=b"zombie-2", partition=1)
        first.commit_transaction(30)
    err = raised.value.args[0]
    assert err.fatal(), str(err)
    assert "fenced" in str(err).lower(), str(err)

    second.begin_transaction()
    second.produce(topic, value=b"fresh", partition=1)
    second.commit_transaction(60)
    assert committed_values(bootstrap, topic, 2, 1) == [b"fresh"]


def test_transaction_past_its_timeout_is_aborted_by_the_coordinator(txn_cluster: LocalCluster) -> None:
    bootstrap = txn_cluster.bootstrap_servers
    topic, txn_id = _name("timeout-topic"), _name("txn")
    create_topic(bootstrap, topic, 1)
    p = producer(bootstrap, txn_id, **{"transaction.timeout.ms": 2000})
    p.init_transactions(60)
    p.begin_transaction()
    p.produce(topic, value=b"late", partition=0)
    p.flush(30)
    before = describe(txn_cluster, txn_id)
    assert before.transaction_state == "Ongoing"
    after = wait_state(txn_cluster, txn_id, "CompleteAbort", timeout=30)
    assert after.transaction_state == "CompleteAbort"
    assert after.producer_epoch == before.producer_epoch + 1  # the coordinator fenced the producer
    with pytest.raises(Exception):
        p.commit_transaction(30)
    assert committed_values(bootstrap, topic, 1, 0) == []


def test_raw_requests_get_kafkas_error_codes_and_write_nothing(txn_cluster: LocalCluster) -> None:
    txn_id = _name("raw")
    unknown = request(txn_cluster, ApiKey.END_TXN, coordinator_for=txn_id, transactional_id=txn_id, producer_id=12345,
                      producer_epoch=0, committed=True)
    assert unknown.error_code == ErrorCode.invalid_producer_id_mapping
    assert describe(txn_cluster, txn_id).error_code == ErrorCode.transactional_id_not_found

    too_long = request(txn_cluster, ApiKey.INIT_PRODUCER_ID, coordinator_for=txn_id, transactional_id=txn_id,
                       transaction_timeout=900001)
    assert too_long.error_code == ErrorCode.invalid_transaction_timeout

    init = request(txn_cluster, ApiKey.INIT_PRODUCER_ID, coordinator_for=txn_id, transactional_id=txn_id,
                   transaction_timeout=60000)
    assert init.error_code == ErrorCode.none and init.producer_epoch == 0
    topic = _name("raw-topic")
    create_topic(txn_cluster.bootstrap_servers, topic, 1)
    stale = request(txn_cluster, ApiKey.ADD_PARTITIONS_TO_TXN, coordinator_for=txn_id,
                    v3_and_below_transactional_id=txn_id, v3_and_below_producer_id=init.producer_id,
                    v3_and_below_producer_epoch=init.producer_epoch + 1,
                    v3_and_below_topics=({"name": topic, "partitions": (0,)},))
    (result,) = stale.results_by_topic_v3_and_below
    assert result.results_by_partition[0].partition_error_code == ErrorCode.producer_fenced
    missing = request(txn_cluster, ApiKey.ADD_PARTITIONS_TO_TXN, coordinator_for=txn_id,
                      v3_and_below_transactional_id=txn_id, v3_and_below_producer_id=init.producer_id,
                      v3_and_below_producer_epoch=init.producer_epoch,
                      v3_and_below_topics=({"name": topic, "partitions": (0, 7)},))
    errors = {int(p.partition_index): p.partition_error_code
              for p in missing.results_by_topic_v3_and_below[0].results_by_partition}
    assert errors == {0: ErrorCode.operation_not_attempted, 7: ErrorCode.unknown_topic_or_partition}
    end_empty = request(txn_cluster, ApiKey.END_TXN, coordinator_for=txn_id, transactional_id=txn_id,
                        producer_id=init.producer_id, producer_epoch=init.producer_epoch, committed=True)
    assert end_empty.error_code == ErrorCode.invalid_txn_state
    d = describe(txn_cluster, txn_id)
    assert (d.transaction_state, d.producer_epoch, d.topics) == ("Empty", 0, ())

    # KIP-360 (InitProducerId v3+ carrying the producer id and epoch the client had): another
    # producer id is fenced; for an id the coordinator has never seen, any is accepted
    other = request(txn_cluster, ApiKey.INIT_PRODUCER_ID, coordinator_for=txn_id, transactional_id=txn_id,
                    transaction_timeout=60000, producer_id=987654321, producer_epoch=0)
    assert other.error_code == ErrorCode.producer_fenced
    fresh_id = _name("raw-fresh")
    fresh = request(txn_cluster, ApiKey.INIT_PRODUCER_ID, coordinator_for=fresh_id, transactional_id=fresh_id,
                    transaction_timeout=60000, producer_id=987654321, producer_epoch=5)
    assert (fresh.error_code, fresh.producer_epoch) == (ErrorCode.none, 0)
    assert fresh.producer_id != 987654321
    empty = request(txn_cluster, ApiKey.DESCRIBE_TRANSACTIONS, transactional_ids=("",))
    assert empty.transaction_states[0].error_code == ErrorCode.invalid_request


def _find_coordinator_id(cluster: LocalCluster, txn_id: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        r = trio.run(lambda: _request(cluster, ApiKey.FIND_COORDINATOR, key=txn_id, key_type=1))
        if r.error_code == ErrorCode.none or time.monotonic() > deadline:
            assert r.error_code == ErrorCode.none, r
            return int(r.node_id)
        time.sleep(0.3)


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars, ./scripts/reference-kafka fetch) and java")
def test_kafka_dump_log_segments_decodes_our_transaction_state(txn_cluster: LocalCluster) -> None:
    """Kafka 3.9's DumpLogSegments --transaction-log-decoder reads the coordinator's
    __transaction_state segment: every state of one committed transaction, in order."""
    from kafkalike.coordinator.transaction.transaction_state_manager import partition_for

    bootstrap = txn_cluster.bootstrap_servers
    topic, txn_id = _name("dump-topic"), _name("txn")
    create_topic(bootstrap, topic, 1)
    p = producer(bootstrap, txn_id)
    p.init_transactions(60)
    p.begin_transaction()
    p.produce(topic, value=b"v", partition=0)
    p.commit_transaction(60)
    assert wait_state(txn_cluster, txn_id, "CompleteCommit").transaction_state == "CompleteCommit"
    node = _find_coordinator_id(txn_cluster, txn_id)
    part = txn_cluster.broker_dir(node) / "logs" / f"__transaction_state-{partition_for(txn_id, 4)}"
    files = ",".join(str(f) for f in sorted(part.glob("*.log")))
    out = subprocess.run(["java", "-cp", f"{LIB}/*", "kafka.tools.DumpLogSegments", "--transaction-log-decoder",
                          "--files", files], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    ours = [line.split(" payload: ")[1] for line in out.stdout.splitlines()
            if f"key: transaction_metadata::transactionalId={txn_id} payload: " in line]
    states = [field.split("=")[1] for line in ours for field in line.split(",") if field.startswith("state=")]
    assert states[-3:] == ["Ongoing", "PrepareCommit", "CompleteCommit"], out.stdout
    assert states[0] == "Empty"
    assert f"partitions=[{topic}-0]" in ours[-2], ours
    assert "partitions=[]" in ours[-1] and "txnTimeoutMs=60000" in ours[-1], ours


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars, ./scripts/reference-kafka fetch) and java")
def test_kafka_dump_log_segments_reads_the_markers_the_coordinator_wrote_on_every_replica(
        txn_cluster: LocalCluster) -> None:
    """A committed and an aborted transaction of confluent-kafka's producer on a partition of
    RF 3: Kafka 3.9's DumpLogSegments (kafka-dump-log.sh --deep-iteration) on each replica's
    segment finds the transactional batches, the COMMIT and ABORT control records with the
    producer's id and epoch, and the aborted transaction in the .txnindex."""
    bootstrap = txn_cluster.bootstrap_servers
    topic, txn_id = _name("marker-topic"), _name("txn")
    create_topic(bootstrap, topic, 1)
    p = producer(bootstrap, txn_id)
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=f"c{i}".encode(), partition=0)
    p.commit_transaction(60)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=f"a{i}".encode(), partition=0)
    p.flush(30)  # written before the abort (else librdkafka purges it unsent)
    p.abort_transaction(60)
    done = wait_state(txn_cluster, txn_id, "CompleteAbort")
    assert done.transaction_state == "CompleteAbort"
    pid, epoch = done.producer_id, done.producer_epoch

    async def read_committed_end() -> int:
        from kafkalike.client import KafkaClient

        async with KafkaClient(bootstrap, client_id="dump-test") as client:
            conn = await client.leader_connection(topic, 0)
            r = await conn.call(ApiKey.LIST_OFFSETS, replica_id=-1, isolation_level=1, topics=[
                {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}])
            return int(r.topics[0].partitions[0].offset)

    # c0-c2 at 0-2, COMMIT at 3, a0-a2 at 4-6, ABORT at 7: the LSO reaches 8 once the ABORT
    # marker is below the high watermark, i.e. on every replica of the ISR
    deadline = time.monotonic() + 30
    while trio.run(read_committed_end) != 8:
        assert time.monotonic() < deadline, trio.run(read_committed_end)
        time.sleep(0.2)
    for broker in txn_cluster.broker_ids:
        part = txn_cluster.broker_dir(broker) / "logs" / f"{topic}-0"
        files = [str(f) for f in sorted(part.glob("*.log")) + sorted(part.glob("*.txnindex"))]
        out = subprocess.run(["java", "-cp", f"{LIB}/*", "kafka.tools.DumpLogSegments", "--deep-iteration",
                              "--files", ",".join(files)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "Exception" not in out.stdout + out.stderr, out.stdout + out.stderr
        batches = [line for line in out.stdout.splitlines() if line.startswith("baseOffset: ")]
        assert batches and all(f"producerId: {pid} " in b and "isTransactional: true" in b
                               and "isvalid: true" in b for b in batches), out.stdout
        control = [b.split()[1] for b in batches if "isControl: true" in b]
        assert control == ["3", "7"], out.stdout
        assert [f"producerEpoch: {epoch} " in b for b in batches if "isControl: true" in b] == [True, True]
        markers = re.findall(r"^\| offset: (\d+) .*endTxnMarker: (COMMIT|ABORT) coordinatorEpoch: (\d+)$",
                             out.stdout, re.M)
        assert [(o, kind) for o, kind, _ in markers] == [("3", "COMMIT"), ("7", "ABORT")], out.stdout
        assert markers[0][2] == markers[1][2], markers  # the same coordinator wrote both
        assert re.search(rf"^version: 0 producerId: {pid} firstOffset: 4 lastOffset: 7 lastStableOffset: 8$",
                         out.stdout, re.M), out.stdout


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars, ./scripts/reference-kafka fetch) and java")
def test_kafkas_transactional_message_copier_copies_every_record_exactly_once(txn_cluster: LocalCluster) -> None:
    """Kafka 3.9's TransactionalMessageCopier (the consume-transform-produce tool of Kafka's own
    exactly-once system tests; Java producer and consumer): a subscribed group member (KIP-447
    group metadata) copies 400 records in transactions of 25, aborting some at random and
    rewinding to the committed offsets; the output read read_committed (by confluent-kafka and
    by Kafka's Java ConsoleConsumer) holds every input record exactly once, and the group's
    committed offset is the input's end."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    bootstrap = txn_cluster.bootstrap_servers
    source, sink, group, txn_id = _name("copy-in"), _name("copy-out"), _name("copy-g"), _name("copier")
    create_topic(bootstrap, source, 1)
    create_topic(bootstrap, sink, 3)
    plain = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(400):
        plain.produce(source, value=f"m{i}".encode(), partition=0)
    assert plain.flush(30) == 0
    out = subprocess.run(["java", "-cp", f"{LIB}/*", "org.apache.kafka.tools.TransactionalMessageCopier",
                          "--broker-list", bootstrap, "--input-topic", source, "--input-partition", "0",
                          "--output-topic", sink, "--consumer-group", group, "--transactional-id", txn_id,
                          "--transaction-size", "25", "--enable-random-aborts", "--group-mode",
                          "--use-group-metadata"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    status = [line for line in out.stdout.splitlines() if '"remaining"' in line]
    assert status and '"remaining":0' in status[-1].replace(" ", ""), out.stdout[-3000:]
    values = committed_values(bootstrap, sink, 3, 400)
    assert sorted(values) == sorted(f"m{i}".encode() for i in range(400)), len(values)
    # Kafka's own read path too: the Java consumer drops the aborted batches with our
    # aborted-transactions list (an aborted copy read would displace a committed record)
    java = subprocess.run(["java", "-cp", f"{LIB}/*", "org.apache.kafka.tools.consumer.ConsoleConsumer",
                           "--bootstrap-server", bootstrap, "--topic", sink, "--from-beginning",
                           "--isolation-level", "read_committed", "--max-messages", "400", "--timeout-ms", "60000"],
                          capture_output=True, text=True, timeout=180)
    assert sorted(java.stdout.split()) == sorted(f"m{i}" for i in range(400)), java.stdout[-2000:] + java.stderr[-2000:]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = consumer.committed([TopicPartition(source, 0)], timeout=30)
        assert tp.offset == 400
    finally:
        consumer.close()


@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="stops a broker and kills the coordinator's, waiting out its ZooKeeper session: KAFKALIKE_SLOW=1")
def test_new_coordinator_completes_a_commit_whose_markers_were_not_written(make_cluster: MakeCluster) -> None:
    """kill -9 of the coordinator between PrepareCommit and the markers, made deterministic:
    the only replica of the data partition is down, so no marker can be written; the commit
    is answered (PrepareCommit is in the log), the coordinator is killed, the new coordinator
    loads PrepareCommit and sends the markers again, and once the partition is back the
    transaction completes and a read_committed consumer reads its record."""
    from confluent_kafka.admin import AdminClient, NewTopic

    cluster = make_cluster(3, {**OVERRIDES, "transaction.state.log.min.isr": "1"})
    bootstrap = cluster.bootstrap_servers
    topic, txn_id = _name("failover-topic"), _name("txn")
    p = producer(bootstrap, txn_id)
    p.init_transactions(60)
    coordinator = _find_coordinator_id(cluster, txn_id)
    holder = next(b for b in cluster.broker_ids if b != coordinator)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1, replica_assignment=[[holder]])])[topic].result(30)
    deadline = time.monotonic() + 30
    while admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader != holder:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    p.begin_transaction()
    p.produce(topic, value=b"survives", partition=0)
    p.flush(30)
    assert cluster.stop_broker(holder)
    p.commit_transaction(60)  # answered once PrepareCommit is written; the markers cannot be
    assert describe(cluster, txn_id).transaction_state == "PrepareCommit"

    assert cluster.kill_broker(coordinator)
    deadline = time.monotonic() + 60
    while _find_coordinator_id(cluster, txn_id) == coordinator:
        assert time.monotonic() < deadline, "no new coordinator within 60 s"
        time.sleep(0.5)
    assert wait_state(cluster, txn_id, "CompleteCommit", timeout=3).transaction_state == "PrepareCommit"

    cluster.start_broker(holder)
    cluster.wait_registered([holder])
    assert wait_state(cluster, txn_id, "CompleteCommit", timeout=60).transaction_state == "CompleteCommit"
    assert committed_values(bootstrap, topic, 1, 1) == [b"survives"]


def test_send_offsets_to_transaction_commits_offsets_only_with_the_transaction(txn_cluster: LocalCluster) -> None:
    """AddOffsetsToTxn (the group's __consumer_offsets partition joins the transaction), then
    TxnOffsetCommit to the group coordinator: the offsets become the group's committed offsets
    when the transaction commits (the COMMIT marker reaches __consumer_offsets) and are
    dropped when it aborts."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    bootstrap = txn_cluster.bootstrap_servers
    source, sink, txn_id, group = _name("src"), _name("sink"), _name("txn"), _name("g")
    create_topic(bootstrap, source, 1)
    create_topic(bootstrap, sink, 1)
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(10):
        plain.produce(source, value=f"in{i}".encode(), partition=0)
    plain.flush(30)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    try:
        consumer.assign([TopicPartition(source, 0, 0)])
        p = producer(bootstrap, txn_id)
        p.init_transactions(60)

        def committed() -> int:
            (tp,) = consumer.committed([TopicPartition(source, 0)], timeout=30)
            return int(tp.offset)

        p.begin_transaction()
        p.produce(sink, value=b"out-1", partition=0)
        p.send_offsets_to_transaction([TopicPartition(source, 0, 5)], consumer.consumer_group_metadata(), 60)
        ongoing = describe(txn_cluster, txn_id)
        assert any(t.topic == "__consumer_offsets" for t in ongoing.topics), ongoing
        p.commit_transaction(60)
        deadline = time.monotonic() + 30
        while committed() != 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert committed() == 5

        p.begin_transaction()
        p.produce(sink, value=b"out-2", partition=0)
        p.send_offsets_to_transaction([TopicPartition(source, 0, 8)], consumer.consumer_group_metadata(), 60)
        p.abort_transaction(60)
        assert wait_state(txn_cluster, txn_id, "CompleteAbort").transaction_state == "CompleteAbort"
        assert committed() == 5
    finally:
        consumer.close()
    assert committed_values(bootstrap, sink, 1, 1) == [b"out-1"]


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars, ./scripts/reference-kafka fetch) and java")
def test_kafka_transactions_tool_lists_and_describes_an_open_transaction(txn_cluster: LocalCluster) -> None:
    """Kafka 3.9's kafka-transactions.sh (TransactionsCommand, Java admin client): ``list``
    (ListTransactions to every broker) and ``describe`` (FindCoordinator key type 1, then
    DescribeTransactions) show an Ongoing transaction with its coordinator, producer id and
    partition."""
    bootstrap = txn_cluster.bootstrap_servers
    topic, txn_id = _name("tool-topic"), _name("txn")
    create_topic(bootstrap, topic, 1)
    p = producer(bootstrap, txn_id)
    p.init_transactions(60)
    p.begin_transaction()
    p.produce(topic, value=b"v", partition=0)
    p.flush(30)
    ours = describe(txn_cluster, txn_id)
    coordinator = _find_coordinator_id(txn_cluster, txn_id)

    def tool(*args: str) -> str:
        out = subprocess.run(["java", "-cp", f"{LIB}/*", "org.apache.kafka.tools.TransactionsCommand",
                              "--bootstrap-server", bootstrap, *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    listed = [line.split() for line in tool("list").splitlines()]
    assert listed[0][:4] == ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"], listed
    assert [txn_id, str(coordinator), str(ours.producer_id), "Ongoing"] in listed, listed
    described = [line.split() for line in tool("describe", "--transactional-id", txn_id).splitlines()]
    header, row = described[0], described[1]
    fields = dict(zip(header, row))
    assert fields["TransactionalId"] == txn_id and fields["TransactionState"] == "Ongoing", described
    assert fields["CoordinatorId"] == str(coordinator) and fields["ProducerEpoch"] == str(ours.producer_epoch)
    assert row[-1] == f"{topic}-0", described
    p.commit_transaction(60)


def test_kafka_python_and_aiokafka_transactional_producers_commit_and_abort(txn_cluster: LocalCluster) -> None:
    """kafka-python 3's and aiokafka's transactional producers: one committed and one aborted
    transaction each; a read_committed consumer reads exactly the committed records."""
    from aiokafka import AIOKafkaProducer
    from kafka import KafkaProducer

    bootstrap = txn_cluster.bootstrap_servers
    topic = _name("clients-topic")
    create_topic(bootstrap, topic, 2)

    kp = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=_name("kp"))
    try:
        kp.init_transactions()
        kp.begin_transaction()
        for i in range(4):
            kp.send(topic, value=f"kp-commit-{i}".encode(), partition=i % 2)
        kp.commit_transaction()
        kp.begin_transaction()
        for i in range(4):
            kp.send(topic, value=f"kp-abort-{i}".encode(), partition=i % 2)
        kp.flush()
        kp.abort_transaction()
    finally:
        kp.close()

    async def aio() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=_name("aio"))
        await producer.start()
        try:
            async with producer.transaction():
                for i in range(4):
                    await producer.send_and_wait(topic, value=f"aio-commit-{i}".encode(), partition=i % 2)
            await producer.begin_transaction()
            for i in range(4):
                await producer.send_and_wait(topic, value=f"aio-abort-{i}".encode(), partition=i % 2)
            await producer.abort_transaction()
        finally:
            await producer.stop()

    import asyncio
    asyncio.run(aio())
    expected = {f"{who}-commit-{i}".encode() for who in ("kp", "aio") for i in range(4)}
    assert sorted(committed_values(bootstrap, topic, 2, 8)) == sorted(expected)


def test_kafka_python_and_aiokafka_send_offsets_to_transaction_commit_offsets_only_with_it(
        txn_cluster: LocalCluster) -> None:
    """Consume-transform-produce with kafka-python 3's and aiokafka's producers:
    send_offsets_to_transaction (AddOffsetsToTxn, then TxnOffsetCommit) in a committed
    transaction moves the group's committed offset, as each library's own consumer reads it;
    in an aborted one it does not, and the aborted output stays invisible to read_committed."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioTopicPartition
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import OffsetAndMetadata, TopicPartition as KpTopicPartition

    bootstrap = txn_cluster.bootstrap_servers
    source, sink = _name("src"), _name("sink")
    create_topic(bootstrap, source, 1)
    create_topic(bootstrap, sink, 1)

    def wait_for(read: Any, expected: int | None) -> int | None:
        deadline = time.monotonic() + 30
        got = read()
        while got != expected and time.monotonic() < deadline:
            time.sleep(0.2)
            got = read()
        return got

    kp_group = _name("kp-g")
    kp = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=_name("kp"))
    kc = KafkaConsumer(bootstrap_servers=bootstrap, group_id=kp_group, enable_auto_commit=False)
    try:
        def kp_committed() -> int | None:
            return kc.committed(KpTopicPartition(source, 0), timeout_ms=10_000)

        kp.init_transactions()
        kp.begin_transaction()
        kp.send(sink, value=b"kp-out-1", partition=0)
        kp.send_offsets_to_transaction({KpTopicPartition(source, 0): OffsetAndMetadata(5, "", -1)}, kp_group)
        kp.commit_transaction()
        assert wait_for(kp_committed, 5) == 5
        kp.begin_transaction()
        kp.send(sink, value=b"kp-out-2", partition=0)
        kp.send_offsets_to_transaction({KpTopicPartition(source, 0): OffsetAndMetadata(8, "", -1)}, kp_group)
        kp.flush()
        kp.abort_transaction()
        assert kp_committed() == 5
    finally:
        kc.close()
        kp.close()

    aio_group = _name("aio-g")

    async def aio() -> tuple[int | None, int | None]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=_name("aio"))
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=aio_group, enable_auto_commit=False)
        await producer.start()
        await consumer.start()
        try:
            tp = AioTopicPartition(source, 0)
            async with producer.transaction():
                await producer.send_and_wait(sink, value=b"aio-out-1", partition=0)
                await producer.send_offsets_to_transaction({tp: 5}, aio_group)
            deadline = time.monotonic() + 30
            after_commit = await consumer.committed(tp)
            while after_commit != 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                after_commit = await consumer.committed(tp)
            await producer.begin_transaction()
            await producer.send_and_wait(sink, value=b"aio-out-2", partition=0)
            await producer.send_offsets_to_transaction({tp: 8}, aio_group)
            await producer.abort_transaction()
            return after_commit, await consumer.committed(tp)
        finally:
            await consumer.stop()
            await producer.stop()

    assert asyncio.run(aio()) == (5, 5)
    assert sorted(committed_values(bootstrap, sink, 1, 2)) == [b"aio-out-1", b"kp-out-1"]


def test_markers_authenticate_over_a_sasl_inter_broker_listener(tmp_path: Path, zk_connect: str) -> None:
    """With SASL_PLAINTEXT as the inter-broker listener (SCRAM-SHA-512 admin), the coordinator's
    WriteTxnMarkers connections authenticate: a committed transaction completes and is read by
    a read_committed consumer, an aborted one is not (markers sent to the broker itself)."""
    import uuid as _uuid

    from confluent_kafka import Consumer, Producer
    from confluent_kafka import TopicPartition as CTopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from kafkalike.client.sasl import SaslClientConfig
    from kafkalike.cluster.zk_ensemble import find_free_base_port

    port = find_free_base_port(["127.0.0.1"], per_host_ports=2, low=30000, high=32000)
    cluster = LocalCluster(tmp_path / "c", brokers=1, base_port=port, zookeeper_connect=zk_connect,
                           chroot=f"kafkalike-{_uuid.uuid4().hex[:10]}", security="sasl_plaintext",
                           overrides={"transaction.state.log.num.partitions": "2",
                                      "transaction.state.log.replication.factor": "1",
                                      "transaction.state.log.min.isr": "1", "offsets.topic.num.partitions": "2",
                                      "offsets.topic.replication.factor": "1"})
    try:
        cluster.start(timeout=90)
        props = {k: v for k, v in (line.split("=", 1) for line in
                                   cluster.admin_client_properties_path.read_text().splitlines()
                                   if "=" in line and not line.startswith("#"))}
        admin_user = SaslClientConfig.from_jaas(props["sasl.mechanism"], props["sasl.jaas.config"])
        conf = {"bootstrap.servers": cluster.sasl_bootstrap_servers, "security.protocol": props["security.protocol"],
                "sasl.mechanism": props["sasl.mechanism"], "sasl.username": admin_user.username,
                "sasl.password": admin_user.password}
        topic, txn_id = _name("sasl-txn"), _name("txn")
        admin = AdminClient(conf)
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        p = Producer({**conf, "transactional.id": txn_id})
        p.init_transactions(60)
        p.begin_transaction()
        p.produce(topic, value=b"kept", partition=0)
        p.commit_transaction(60)
        p.begin_transaction()
        p.produce(topic, value=b"dropped", partition=0)
        p.flush(30)  # written before the abort (else librdkafka purges it unsent)
        p.abort_transaction(60)
        c = Consumer({**conf, "group.id": _name("g"), "isolation.level": "read_committed",
                      "enable.auto.commit": False})
        try:
            c.assign([CTopicPartition(topic, 0, 0)])
            seen: list[bytes] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(seen) < 1:
                m = c.poll(0.5)
                if m is not None and m.error() is None:
                    seen.append(m.value())
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                m = c.poll(0.3)
                if m is not None and m.error() is None:
                    seen.append(m.value())
            assert seen == [b"kept"]
            # the ABORT marker is written too (after abort_transaction returns): the
            # read_committed end offset (LSO) reaches the log end: kept, COMMIT, dropped, ABORT
            deadline = time.monotonic() + 20
            while c.get_watermark_offsets(CTopicPartition(topic, 0), timeout=10)[1] != 4:
                assert time.monotonic() < deadline, c.get_watermark_offsets(CTopicPartition(topic, 0), timeout=10)
                time.sleep(0.2)
        finally:
            c.close()
    finally:
        cluster.stop()
