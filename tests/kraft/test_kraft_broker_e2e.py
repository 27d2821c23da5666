"""KRaft mode end to end with real processes and real clients: controller processes and
``process.roles=broker`` processes (BrokerServer: an observer of the metadata log, registered and
heartbeating, admin requests forwarded to the active controller).

Default run: one controller and one broker (a quorum of one: the fewest processes); a topic
created with confluent-kafka's admin and one with ``kafkalike topics``; idempotent acks=all
produce (producer ids from AllocateProducerIds), a consumer group committing offsets
(``__consumer_offsets`` created through the controller), kafka-python reading everything back;
SIGTERM is a controlled shutdown the controller sees.
Also in the default run (issue 21 asks the default run to cover KRaft mode end to end): three
controllers and three brokers, RF 3 / min.insync.replicas 2: kill -9 of a broker -> every partition
led again and produce goes on; kill -9 of the quorum leader -> a new leader is elected and a topic
can be created again; a group reads everything back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafkalike.cli.main import main as cli_main
from tests.kraft.kraft_broker_helpers import kraft_cluster
from tests.kraft.kraft_helpers import active_controller
from tests.raft.raft_helpers import wait_for

N = 20


def _create(bootstrap: str, topic: str, partitions: int, rf: int, configs: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=rf,
                                            config=configs or {})], operation_timeout=60, request_timeout=90)
    futures[topic].result(timeout=120)


def _leaders(bootstrap: str, topic: str) -> dict[int, int]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return {}
    return {p.id: p.leader for p in t.partitions.values()}


def _produce(bootstrap: str, topic: str, values: list[str]) -> list[Any]:
    """acks=all, idempotent; returns the delivery errors (empty: all acknowledged)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": 120000})
    errors: list[Any] = []
    for v in values:
        producer.produce(topic, key=v, value=v, on_delivery=lambda e, m: errors.append(e) if e else None)
    assert producer.flush(150) == 0
    return errors


def _consume_group(bootstrap: str, topic: str, group: str, n: int) -> list[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[str] = []
    deadline = time.monotonic() + 150
    try:
        while len(got) < n and time.monotonic() < deadline:
            m = consumer.poll(1)
            if m is None or m.error():
                continue
            got.append(m.value().decode())
        consumer.commit(asynchronous=False)
        committed = consumer.committed(consumer.assignment(), timeout=30)
        assert sum(tp.offset for tp in committed if tp.offset >= 0) == n
    finally:
        consumer.close()
    return got


def _read_all_kafka_python(bootstrap: str, topic: str, n: int) -> list[str]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=30000)
    try:
        got = []
        for m in consumer:
            got.append(m.value.decode())
            if len(got) >= n:
                break
        return got
    finally:
        consumer.close()


async def test_one_broker_serves_topics_producers_groups_and_shuts_down_under_control(tmp_path: Path) -> None:
    with kraft_cluster(tmp_path, brokers=1, controllers=1) as (controllers, brokers):
        broker = brokers[0]
        await broker.started()
        bs = broker.bootstrap
        await trio.to_thread.run_sync(_create, bs, "orders", 2, 1)
        assert await trio.to_thread.run_sync(cli_main, [
            "topics", "--bootstrap-server", bs, "--create", "--topic", "audit", "--partitions", "1",
            "--replication-factor", "1"]) == 0

        async def leaders_known() -> bool:
            leaders = await trio.to_thread.run_sync(_leaders, bs, "orders")
            return sorted(leaders) == [0, 1] and set(leaders.values()) == {broker.node_id}
        await wait_for(leaders_known, "orders led by the broker", timeout_s=60)

        values = [f"v{i}" for i in range(N)]
        assert await trio.to_thread.run_sync(_produce, bs, "orders", values) == []
        assert await trio.to_thread.run_sync(_produce, bs, "audit", values[:5]) == []
        got = await trio.to_thread.run_sync(_consume_group, bs, "orders", "kraft-group", N)
        assert sorted(got) == sorted(values)
        assert sorted(await trio.to_thread.run_sync(_read_all_kafka_python, bs, "audit", 5)) == values[:5]
        assert broker.events("producer_id_block_claimed") and broker.events("offsets_topic_created")

        broker.stop()  # SIGTERM: controlled shutdown through heartbeats
        assert broker.process is not None and broker.process.returncode == 0
        finished = broker.events("controlled_shutdown_finished")
        assert finished and finished[-1]["succeeded"] is True
        assert any(c.events("broker_in_controlled_shutdown") for c in controllers)


async def test_three_brokers_survive_a_broker_kill_and_a_quorum_leader_kill(tmp_path: Path) -> None:
    with kraft_cluster(tmp_path, brokers=3, broker_extra="min.insync.replicas=2\n") as (controllers, brokers):
        for b in brokers:
            await b.started()
        bs = ",".join(b.bootstrap for b in brokers)
        await trio.to_thread.run_sync(_create, bs, "events", 3, 3, {"min.insync.replicas": "2"})
        first = [f"a{i}" for i in range(N)]
        assert await trio.to_thread.run_sync(_produce, bs, "events", first) == []

        victim = brokers[0]
        victim.kill9()
        survivors = [b for b in brokers if b is not victim]
        live_bs = ",".join(b.bootstrap for b in survivors)

        async def led_again() -> bool:
            leaders = await trio.to_thread.run_sync(_leaders, live_bs, "events")
            return sorted(leaders) == [0, 1, 2] and all(
                leader in {b.node_id for b in survivors} for leader in leaders.values())
        await wait_for(led_again, "every partition led by a live broker", timeout_s=120)
        second = [f"b{i}" for i in range(N)]
        assert await trio.to_thread.run_sync(_produce, live_bs, "events", second) == []

        leader = await active_controller(controllers)
        leader.kill9()
        await active_controller(controllers)
        await trio.to_thread.run_sync(_create, live_bs, "after-failover", 1, 2)
        got = await trio.to_thread.run_sync(_consume_group, live_bs, "events", "g-slow", 2 * N)
        assert sorted(got) == sorted(first + second)
