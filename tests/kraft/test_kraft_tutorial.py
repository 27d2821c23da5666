"""README.md's "A 10-minute tutorial" on a KRaft cluster (``kafkalike cluster up --mode kraft``).

The tutorial's commands as a reader types them, in order, on 3 controllers + 3 brokers: cluster
status (the quorum in place of ``zk status``), topics create/describe/list, console producer and
consumer, kafka-python and confluent-kafka as in step 5, consumer-groups list/describe/reset, kill
-9 of broker 2 (its partitions get new leaders once the controller fences it after
broker.session.timeout.ms), ``cluster up`` restarting it until nothing is under-replicated, and
``cluster down``. The ZooKeeper-only commands (``kafkalike zk ...``) are left out: KRaft mode has
no ZooKeeper. Free ports and a temporary --dir instead of 9092 and .kafkalike. Minutes on a loaded
machine: KAFKALIKE_SLOW=1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafkalike.cluster.kraft_cluster import KRaftCluster
from tests.raft.raft_helpers import REPO, free_ports

pytestmark = pytest.mark.skipif(not os.environ.get("KAFKALIKE_SLOW"), reason="minutes: set KAFKALIKE_SLOW=1")


def kafkalike(*args: str, stdin: str | None = None, timeout: float = 600) -> str:
    done = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args], capture_output=True, text=True,
                          input=stdin, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, f"kafkalike {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def partitions(bs: str, topic: str) -> dict[int, tuple[int, list[int]]]:
    """``topics --describe``: partition -> (leader, isr)."""
    out: dict[int, tuple[int, list[int]]] = {}
    for line in kafkalike("topics", "--bootstrap-server", bs, "--describe", "--topic", topic).splitlines():
        fields = line.split()
        if "Partition:" in fields:
            leader = int(fields[fields.index("Leader:") + 1])
            isr = [int(b) for b in fields[fields.index("Isr:") + 1].split(",") if b]
            out[int(fields[fields.index("Partition:") + 1])] = (leader, isr)
    return out


def wait_until(check, what: str, timeout_s: float = 180) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f} s"
        time.sleep(1)


def test_the_readme_tutorial_runs_on_a_kraft_cluster(tmp_path: Path) -> None:
    base = str(tmp_path / "kraft")
    port = free_ports(1)[0]
    try:
        # 1. A cluster (and the quorum in place of `zk status`)
        up = kafkalike("cluster", "up", "--mode", "kraft", "--dir", base, "--base-port", str(port))
        assert "quorum: leader 300" in up
        status = json.loads(kafkalike("cluster", "status", "--dir", base, "--json"))
        bs = status["bootstrap_servers"]
        first = bs.split(",")[0]  # the README's localhost:9092: broker 1
        # 3. Topics
        kafkalike("topics", "--bootstrap-server", first, "--create", "--topic", "logs", "--partitions", "3",
                  "--replication-factor", "3")
        assert {leader for leader, _isr in partitions(first, "logs").values()} <= {1, 2, 3}
        assert "logs" in kafkalike("topics", "--bootstrap-server", first, "--list").split()
        # 4. Produce and consume from the command line
        kafkalike("console-producer", "--bootstrap-server", first, "--topic", "logs", "--property", "parse.key=true",
                  "--property", "key.separator=:", "--producer-property", "acks=all",
                  stdin="server-a:Anomaly detected\nserver-b:Login failed\n")
        consumed = kafkalike("console-consumer", "--bootstrap-server", first, "--topic", "logs", "--from-beginning",
                             "--max-messages", "2", "--property", "print.key=true", "--property",
                             "print.partition=true")
        assert "Anomaly detected" in consumed and "Login failed" in consumed and "server-a" in consumed
        # 5. From Python, unchanged Kafka code
        from confluent_kafka import Consumer, Producer
        from kafka import KafkaConsumer, KafkaProducer

        producer = KafkaProducer(bootstrap_servers=first)
        producer.send("logs", b"Anomaly detected on server A")
        producer.flush()
        producer.close()
        consumer = KafkaConsumer("logs", bootstrap_servers=first, auto_offset_reset="earliest",
                                 consumer_timeout_ms=5000)
        assert b"Anomaly detected on server A" in [m.value for m in consumer]
        consumer.close()
        p = Producer({"bootstrap.servers": first, "acks": "all"})
        p.produce("orders", key=b"1", value=b'{"order_id": 123, "status": "created"}')
        assert p.flush(60) == 0
        c = Consumer({"bootstrap.servers": first, "group.id": "billing", "auto.offset.reset": "earliest"})
        c.subscribe(["orders"])
        deadline = time.monotonic() + 120
        msg = None
        while msg is None or msg.error():
            assert time.monotonic() < deadline, "confluent-kafka consumer got nothing"
            msg = c.poll(10)
        assert msg.value() == b'{"order_id": 123, "status": "created"}'
        c.commit(asynchronous=False)
        c.close()
        # 6. Consumer groups and offsets
        assert "billing" in kafkalike("consumer-groups", "--bootstrap-server", first, "--list").split()
        described = kafkalike("consumer-groups", "--bootstrap-server", first, "--describe", "--group", "billing")
        assert "orders" in described and "CURRENT-OFFSET" in described
        reset = kafkalike("consumer-groups", "--bootstrap-server", first, "--reset-offsets", "--group", "billing",
                          "--topic", "orders", "--to-earliest", "--execute")
        assert "orders" in reset
        # 7. Kill a broker and watch the controller
        pid = int((Path(base) / "broker-2.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: all(leader != 2 and 2 not in isr for leader, isr in partitions(first, "logs").values()),
                   "new leaders without broker 2 (fenced after broker.session.timeout.ms)")
        kafkalike("cluster", "up", "--dir", base)  # restarts broker 2; it catches up and re-joins the ISRs
        wait_until(lambda: kafkalike("topics", "--bootstrap-server", first, "--describe",
                                     "--under-replicated-partitions").strip() == "", "full ISRs again")
        assert all(set(isr) == {1, 2, 3} for _l, isr in partitions(first, "logs").values())
    finally:
        if KRaftCluster.is_kraft(base):
            kafkalike("cluster", "down", "--dir", base)
            assert not any(s.alive for s in KRaftCluster.load(base).status())
