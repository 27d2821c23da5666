"""Transactions seen from the group side and from the tools, against one real kafkalike broker
process and real ZooKeeper: confluent-kafka's transactional producer (librdkafka 2.16) with
send_offsets_to_transaction moves the group's committed offset when it commits and leaves it
when it aborts; ``kafkalike transactions list|describe|describe-producers`` print Kafka's
kafka-transactions.sh tables (and agree with Kafka 3.9's own tool when its jars are present);
``kafkalike console-consumer --isolation-level read_committed`` prints only committed records."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkalike.cli.transactions import DESCRIBE_HEADERS, LIST_HEADERS, PRODUCERS_HEADERS, format_table
from kafkalike.cluster.local_cluster import LocalCluster
from tests.fixtures_cluster import _new_cluster

ck = pytest.importorskip("confluent_kafka")

OVERRIDES = {"transaction.state.log.num.partitions": "2", "transaction.state.log.replication.factor": "1",
             "transaction.state.log.min.isr": "1", "offsets.topic.num.partitions": "2",
             "offsets.topic.replication.factor": "1", "group.initial.rebalance.delay.ms": "0"}
LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar"))
              and shutil.which("java") is not None)
"""Kafka 3.9's kafka-transactions.sh runs only with KAFKALIKE_KAFKA_LIB set (four JVM starts):
KAFKALIKE_KAFKA_LIB=reference/lib pytest tests/coordinator/test_transactions_end_to_end.py"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    c = _new_cluster(tmp_path_factory.mktemp("txn-group"), zk_connect, 1, OVERRIDES)
    try:
        yield c
    finally:
        c.stop()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(bs: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md is not None and md.error is None and all(p.leader >= 0 for p in md.partitions.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"{topic} has no leader")


def _producer(bs: str, txn_id: str) -> Any:
    p = ck.Producer({"bootstrap.servers": bs, "transactional.id": txn_id, "transaction.timeout.ms": 60000})
    p.init_transactions(60)
    return p


def _committed(bs: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = ck.Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([ck.TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def _group_metadata(bs: str, group: str) -> Any:
    c = ck.Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
    meta = c.consumer_group_metadata()
    c.close()
    return meta


def cli(*argv: str) -> tuple[int, str, str]:
    """``kafkalike ...`` through its parser in this process: (exit code, stdout, stderr). Log
    events below WARNING are dropped, as ``kafkalike``'s main() does for tools."""
    import logging

    import structlog

    from kafkalike.cli.main import build_parser

    args = build_parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = int(args.func(args))
    finally:
        structlog.reset_defaults()
    return code, out.getvalue(), err.getvalue()


def _rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("\t")[:-1]] for line in table.splitlines()]


def test_format_table_is_kafkas_pretty_print() -> None:
    """Kafka's prettyPrintTable: cells padded to the column width, a tab after every cell."""
    assert format_table(("A", "Bee"), [("long-cell", "x")]) == "A        \tBee\t\nlong-cell\tx  \t\n"
    assert format_table(LIST_HEADERS, []) == "TransactionalId\tCoordinator\tProducerId\tTransactionState\t\n"


def test_send_offsets_to_transaction_commit_moves_group_offset_abort_does_not(cluster: LocalCluster) -> None:
    bs = cluster.bootstrap_servers
    topic, group = _name("in"), _name("ctp")
    _create(bs, topic, 2)
    p = _producer(bs, _name("tx"))
    meta = _group_metadata(bs, group)
    p.begin_transaction()
    p.produce(topic, b"a", partition=0)
    p.produce(topic, b"b", partition=1)
    p.send_offsets_to_transaction([ck.TopicPartition(topic, 0, 5), ck.TopicPartition(topic, 1, 7)], meta, 30)
    p.commit_transaction(60)
    assert _committed(bs, group, topic, 2) == {0: 5, 1: 7}
    p.begin_transaction()
    p.produce(topic, b"c", partition=0)
    p.flush(30)
    p.send_offsets_to_transaction([ck.TopicPartition(topic, 0, 9), ck.TopicPartition(topic, 1, 9)], meta, 30)
    p.abort_transaction(60)
    assert _committed(bs, group, topic, 2) == {0: 5, 1: 7}
    p.begin_transaction()
    p.send_offsets_to_transaction([ck.TopicPartition(topic, 0, 11)], meta, 30)
    p.commit_transaction(60)
    assert _committed(bs, group, topic, 2) == {0: 11, 1: 7}


def test_transactions_cli_list_describe_and_describe_producers(cluster: LocalCluster) -> None:
    bs = cluster.bootstrap_servers
    topic, txn_id = _name("tcli"), _name("tx-cli")
    _create(bs, topic, 2)
    p = _producer(bs, txn_id)
    p.begin_transaction()
    p.produce(topic, b"x", partition=0)
    p.produce(topic, b"y", partition=1)
    p.flush(30)
    # an open transaction: Ongoing with its partitions and start time
    code, out, err = cli("transactions", "--bootstrap-server", bs, "describe", "--transactional-id", txn_id)
    assert code == 0, err
    header, row = _rows(out)
    assert header == list(DESCRIBE_HEADERS)
    d = dict(zip(header, row))
    assert d["TransactionalId"] == txn_id and d["TransactionState"] == "Ongoing"
    assert d["TransactionTimeoutMs"] == "60000" and int(d["CurrentTransactionStartTimeMs"]) > 0
    assert int(d["TransactionDurationMs"]) >= 0 and d["CoordinatorId"] == "1"
    assert sorted(d["TopicPartitions"].split(",")) == [f"{topic}-0", f"{topic}-1"]
    code, out, err = cli("transactions", "--bootstrap-server", bs, "describe-producers", "--topic", topic,
                         "--partition", "0")
    assert code == 0, err
    header, *rows = _rows(out)
    assert header == list(PRODUCERS_HEADERS) and len(rows) == 1
    prod = dict(zip(header, rows[0]))
    assert prod["ProducerId"] == d["ProducerId"] and prod["CurrentTransactionStartOffset"] == "0"
    assert prod["LastSequence"] == "0" and prod["LatestCoordinatorEpoch"] == "-1"
    p.commit_transaction(60)
    code, out, err = cli("transactions", "--bootstrap-server", bs, "list")
    assert code == 0, err
    header, *rows = _rows(out)
    assert header == list(LIST_HEADERS)
    assert [txn_id, "1", d["ProducerId"], "CompleteCommit"] in rows
    code, out, err = cli("transactions", "--bootstrap-server", bs, "describe-producers", "--topic", topic,
                         "--partition", "0")
    prod = dict(zip(*_rows(out)))
    assert prod["CurrentTransactionStartOffset"] == "None" and int(prod["LatestCoordinatorEpoch"]) >= 0
    code, out, err = cli("transactions", "--bootstrap-server", bs, "describe", "--transactional-id", "no-such-id")
    assert (code, out) == (1, "")
    assert err == ("Failed to describe transaction state of transactional-id `no-such-id`: The transactionalId "
                   "could not be found. Enable debug logging for additional detail.\n")


def test_console_consumer_isolation_levels(cluster: LocalCluster) -> None:
    bs = cluster.bootstrap_servers
    topic = _name("iso")
    _create(bs, topic, 1)
    p = _producer(bs, _name("tx-iso"))
    for value, commit in ((b"kept-1", True), (b"dropped", False), (b"kept-2", True)):
        p.begin_transaction()
        p.produce(topic, value, partition=0)
        p.flush(30)  # written before the abort (librdkafka purges unsent records at abort)
        (p.commit_transaction if commit else p.abort_transaction)(60)
    base = ("console-consumer", "--bootstrap-server", bs, "--topic", topic, "--from-beginning", "--timeout-ms", "5000")
    code, out, _ = cli(*base, "--isolation-level", "read_committed")
    assert code == 0 and out.split() == ["kept-1", "kept-2"]
    code, out, _ = cli(*base)
    assert code == 0 and out.split() == ["kept-1", "dropped", "kept-2"]


def _kafka_transactions(*argv: str) -> str:
    r = subprocess.run(["java", "-cp", f"{LIB}/*", "org.apache.kafka.tools.TransactionsCommand", *argv],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    return "\n".join(line for line in r.stdout.splitlines() if not re.match(r"^\[?\d{4}-\d\d-\d\d|^SLF4J", line)) + "\n"


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars, ./scripts/reference-kafka fetch) and java")
def test_kafkas_transactions_tool_prints_what_ours_prints(cluster: LocalCluster) -> None:
    """Kafka 3.9's kafka-transactions.sh (Java AdminClient) against kafkalike: list,
    describe-producers and describe give the same tables as ``kafkalike transactions``
    (byte for byte, except describe's duration column, which depends on the moment)."""
    bs = cluster.bootstrap_servers
    topic, txn_id = _name("tjava"), _name("tx-java")
    _create(bs, topic, 1)
    p = _producer(bs, txn_id)
    p.begin_transaction()
    p.produce(topic, b"j", partition=0)
    p.commit_transaction(60)
    for argv in (("list",), ("describe-producers", "--topic", topic, "--partition", "0")):
        theirs = _kafka_transactions("--bootstrap-server", bs, *argv)
        code, ours, err = cli("transactions", "--bootstrap-server", bs, *argv)
        assert code == 0, err
        assert sorted(theirs.splitlines()) == sorted(ours.splitlines()), (theirs, ours)
    theirs = _kafka_transactions("--bootstrap-server", bs, "describe", "--transactional-id", txn_id)
    code, ours, err = cli("transactions", "--bootstrap-server", bs, "describe", "--transactional-id", txn_id)
    assert code == 0, err

    def without_duration(table: str) -> list[list[str]]:
        return [cells[:7] + cells[8:] for cells in (line.split("\t") for line in table.splitlines())]

    assert len(theirs) == len(ours) and without_duration(theirs) == without_duration(ours), (theirs, ours)
