"""kafkalike's group consumer (KafkaGroupConsumer) against kafkalike's REAL broker processes
and their GroupCoordinator: the range split, a rebalance after a member leaves, committed
offsets resumed by the next member, a group shared with confluent-kafka (librdkafka),
``consumer-groups --describe`` and ``console-consumer --group``. The assignors and the
ConsumerProtocol codecs are checked as pure functions (hypothesis) first."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.client import AdminClient, KafkaProducer, NewTopic, TopicPartition
from kafkalike.client.assignors import (RangeAssignor, RoundRobinAssignor, Subscription,
                                        decode_assignment, decode_subscription,
                                        encode_assignment, encode_subscription)
from kafkalike.client.group_consumer import KafkaGroupConsumer
from kafkalike.client.errors import ClientError
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.protocol.errors import MalformedFrameError
from tests.fixtures_cluster import MakeCluster

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FAST = {"heartbeat_interval_ms": 300, "session_timeout_ms": 6000, "auto_commit_interval_ms": 500,
        "fetch_max_wait_ms": 200}


# ---------------------------------------------------------------------- pure functions

def test_range_assignor_matches_kafka_example() -> None:
    """Kafka's RangeAssignor javadoc: C0, C1 on t0, t1 with 3 partitions each -> C0 gets
    t0p0, t0p1, t1p0, t1p1 and C1 gets t0p2, t1p2."""
    subs = {"C1": Subscription(("t0", "t1")), "C0": Subscription(("t0", "t1"))}
    plan = RangeAssignor().assign({"t0": 3, "t1": 3}, subs)
    tp = TopicPartition
    assert plan == {"C0": [tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)],
                    "C1": [tp("t0", 2), tp("t1", 2)]}


def test_roundrobin_assignor_matches_kafka_example() -> None:
    """Kafka's RoundRobinAssignor javadoc: C0 on t0; C1 on t0, t1; C2 on t0, t1, t2 (1, 2, 3
    partitions) -> C0 [t0p0], C1 [t1p0], C2 [t1p1, t2p0, t2p1, t2p2]."""
    subs = {"C0": Subscription(("t0",)), "C1": Subscription(("t0", "t1")),
            "C2": Subscription(("t0", "t1", "t2"))}
    plan = RoundRobinAssignor().assign({"t0": 1, "t1": 2, "t2": 3}, subs)
    tp = TopicPartition
    assert plan == {"C0": [tp("t0", 0)], "C1": [tp("t1", 0)],
                    "C2": [tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]}


@settings(max_examples=200, deadline=None)
@given(partitions=st.integers(0, 40), members=st.sets(st.text("abcdef0123-", min_size=1, max_size=8),
                                                      min_size=1, max_size=9),
       roundrobin=st.booleans())
def test_assignors_cover_every_partition_once_and_balance(partitions: int, members: set[str],
                                                          roundrobin: bool) -> None:
    """Every partition goes to exactly one member and member counts differ by at most one;
    range gives consecutive blocks, larger ones to the first members by id."""
    subs = {m: Subscription(("t",)) for m in members}
    assignor = RoundRobinAssignor() if roundrobin else RangeAssignor()
    plan = assignor.assign({"t": partitions}, subs)
    got = sorted(tp.partition for ps in plan.values() for tp in ps)
    assert got == list(range(partitions))
    sizes = [len(plan[m]) for m in sorted(members)]
    assert max(sizes) - min(sizes) <= 1
    if not roundrobin:
        assert sizes == sorted(sizes, reverse=True)
        flat = [tp.partition for m in sorted(members) for tp in plan[m]]
        assert flat == list(range(partitions))


@settings(max_examples=100, deadline=None)
@given(topics=st.lists(st.text(min_size=1, max_size=20), max_size=5),
       parts=st.dictionaries(st.text(min_size=1, max_size=10), st.sets(st.integers(0, 2**31 - 1), max_size=5),
                             max_size=4),
       user_data=st.none() | st.binary(max_size=20))
def test_consumer_protocol_codecs_round_trip(topics: list[str], parts: dict[str, set[int]],
                                             user_data: bytes | None) -> None:
    """Subscription and assignment bytes decode to what was encoded (version 0 prefix)."""
    sub = decode_subscription(encode_subscription(topics, user_data))
    assert sub == Subscription(tuple(sorted(set(topics))), user_data)
    tps = [TopicPartition(t, p) for t, ps in parts.items() for p in ps]
    data = encode_assignment(tps, user_data)
    assert data[:2] == b"\x00\x00"
    assert decode_assignment(data) == sorted(tps)


def test_consumer_protocol_decoders_reject_garbage_with_a_typed_error() -> None:
    """Truncated or hostile metadata raises MalformedFrameError, never a crash."""
    for bad in (b"\x00", b"\x00\x00\x7f\xff\xff\xff", encode_subscription(["abc"])[:-6], b"\xff\xff"):
        with pytest.raises(MalformedFrameError):
            decode_subscription(bad)
    with pytest.raises(MalformedFrameError):
        decode_assignment(b"\x00\x01\x00\x00\x00\x05")
    # A newer version's extra fields (v3: owned partitions, generation, rack) still decode.
    v3 = (b"\x00\x03" + b"\x00\x00\x00\x01\x00\x01t" + b"\xff\xff\xff\xff" + b"\x00\x00\x00\x00"
          + b"\x00\x00\x00\x07" + b"\xff\xff" + b"extra")
    assert decode_subscription(v3).topics == ("t",)


# ---------------------------------------------------------------------- real brokers

async def _topic(bootstrap: str, partitions: int = 6, records: int = 0, *,
                 replication_factor: int = 1) -> str:
    name = f"grp-{uuid.uuid4().hex[:8]}"
    async with AdminClient(bootstrap) as admin:
        await admin.create_topics([NewTopic(name, partitions, replication_factor)])
        with trio.fail_after(30):
            while True:
                info = (await admin.describe_topics([name])).get(name)
                if info is not None and len(info.partitions) == partitions and all(
                        p.leader >= 0 for p in info.partitions.values()):
                    break
                await trio.sleep(0.1)
    if records:
        await _produce(bootstrap, name, 0, records)
    return name


async def _produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    async with KafkaProducer(bootstrap, acks="all", linger_ms=5) as producer:
        await producer.send_many(topic, [(f"k{i}".encode(), f"v{i}".encode())
                                         for i in range(start, start + count)])


async def _consume_until(members: list[KafkaGroupConsumer], seen: list[Counter[bytes]], want: int,
                         timeout: float = 30, until: object = None) -> None:
    """Poll every member in parallel until ``want`` distinct values arrived in total (and
    ``until()`` holds, when given)."""
    def done() -> bool:
        total: set[bytes] = set()
        for c in seen:
            total.update(c)
        return len(total) >= want and (until is None or until())  # type: ignore[operator]

    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            async def run(i: int) -> None:
                while not done():
                    for r in await members[i].poll(max_wait_ms=200):
                        seen[i][r.value] += 1
                nursery.cancel_scope.cancel()
            for i in range(len(members)):
                nursery.start_soon(run, i)


async def test_two_members_split_by_range_then_one_leaves(kafka_cluster: LocalCluster) -> None:
    """Two members of one group get 3 + 3 partitions of a 6-partition topic (range) and
    together read each of 600 records once; after one closes (LeaveGroup) the other owns all
    six and reads what is produced next."""
    bs = kafka_cluster.bootstrap_servers
    topic = await _topic(bs, 6, 600)
    group = f"g-{uuid.uuid4().hex[:6]}"
    a = KafkaGroupConsumer(bs, group, [topic], auto_offset_reset="earliest", client_id="member-a", **FAST)
    b = KafkaGroupConsumer(bs, group, [topic], auto_offset_reset="earliest", client_id="member-b", **FAST)
    async with a:
        seen_a: Counter[bytes] = Counter()
        async with b:
            seen_b: Counter[bytes] = Counter()
            both_in = lambda: (len(a.assignment()) == 3 and len(b.assignment()) == 3  # noqa: E731
                               and a.statistics().generation_id == b.statistics().generation_id)
            await _consume_until([a, b], [seen_a, seen_b], 600, until=both_in)
            assert a.assignment() | b.assignment() == {TopicPartition(topic, p) for p in range(6)}
            first, second = sorted([a, b], key=lambda c: c.member_id)
            assert first.assignment() == {TopicPartition(topic, p) for p in range(3)}  # range
            # Partitions moved once (the first member read alone until the second joined):
            # every record was read, and none twice beyond that one rebalance's window.
            total = seen_a + seen_b
            assert set(total) == {f"v{i}".encode() for i in range(600)}
            assert a.statistics().state == "stable" and a.statistics().rebalances >= 1
            await b.commit()
        # b left the group on close: a gets all six partitions after the rebalance.
        await _produce(bs, topic, 600, 60)
        later = {f"v{i}".encode() for i in range(600, 660)}
        before = Counter(seen_a)
        await _consume_until([a], [seen_a], 0, until=lambda: later <= set(seen_a))
        assert a.assignment() == {TopicPartition(topic, p) for p in range(6)}
        # b committed what it read before leaving and a committed before rejoining: after the
        # rebalance a reads exactly the new records, once each.
        assert seen_a - before == Counter(later)


async def test_second_member_resumes_after_first_members_commits(kafka_cluster: LocalCluster) -> None:
    """A member reads 100 of 300 records (max_records) and closes (commit on close); a
    second consumer of the same group starts at exactly the next records."""
    bs = kafka_cluster.bootstrap_servers
    topic = await _topic(bs, 2, 300)
    group = f"g-{uuid.uuid4().hex[:6]}"
    first: list[bytes] = []
    async with KafkaGroupConsumer(bs, group, [topic], auto_offset_reset="earliest", **FAST) as c:
        with trio.fail_after(30):
            while len(first) < 100:
                first.extend(r.value for r in await c.poll(max_records=100 - len(first)))
        committed_before_close = c.statistics().committed
    assert len(first) == 100
    async with KafkaGroupConsumer(bs, group, [topic], auto_offset_reset="earliest", **FAST) as c2:
        offsets = await c2.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        assert sum(offsets.values()) == 100, (offsets, committed_before_close)
        second: list[bytes] = []
        with trio.fail_after(30):
            while len(second) < 200:
                second.extend(r.value for r in await c2.poll())
    assert len(second) == 200
    assert sorted(first + second) == sorted(f"v{i}".encode() for i in range(300))


def _confluent_member(bs: str, group: str, topic: str, stop: threading.Event,
                      out: dict[str, object]) -> None:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                  "partition.assignment.strategy": "range", "client.id": "librdkafka-member",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 300})
    c.subscribe([topic])
    values: list[bytes] = []
    try:
        while not stop.is_set():
            m = c.poll(0.2)
            out["assignment"] = sorted(tp.partition for tp in c.assignment())
            if m is not None and m.error() is None:
                values.append(m.value())
                out["values"] = list(values)
    finally:
        c.close()


@pytest.mark.parametrize("leader", ["kafkalike", "librdkafka"])
async def test_kafkalike_and_confluent_members_share_one_group(kafka_cluster: LocalCluster,
                                                               leader: str) -> None:
    """A kafkalike member and a confluent-kafka member (range) in one group, either one
    joining first and so leading (running the assignor on the other's subscription), split 6
    partitions 3/3 and together read all 300 records; ``consumer-groups --describe`` lists
    the kafkalike member's client id, member id and host."""
    await _share_with_confluent(kafka_cluster.bootstrap_servers, leader, describe=True)


async def _share_with_confluent(bs: str, leader: str, *, describe: bool,
                                replication_factor: int = 1) -> None:
    topic = await _topic(bs, 6, replication_factor=replication_factor)
    group = f"mix-{uuid.uuid4().hex[:6]}"
    stop = threading.Event()
    out: dict[str, object] = {}
    c = KafkaGroupConsumer(bs, group, [topic], auto_offset_reset="earliest",
                           client_id="kafkalike-member", **FAST)
    mine: list[bytes] = []
    async with trio.open_nursery() as nursery:
        try:
            if leader == "librdkafka":
                nursery.start_soon(lambda: trio.to_thread.run_sync(
                    _confluent_member, bs, group, topic, stop, out))
                with trio.fail_after(30):
                    while len(out.get("assignment", ())) != 6:  # type: ignore[arg-type]
                        await trio.sleep(0.1)
            await c.start()  # not inside a cancel scope that ends before c.aclose()
            with trio.fail_after(45):
                if leader == "kafkalike":
                    while len(c.assignment()) != 6:
                        await c.poll(max_wait_ms=100)
                    nursery.start_soon(lambda: trio.to_thread.run_sync(
                        _confluent_member, bs, group, topic, stop, out))
                while not (len(c.assignment()) == 3 and
                           len(out.get("assignment", ())) == 3):  # type: ignore[arg-type]
                    mine.extend(r.value for r in await c.poll(max_wait_ms=200))
                assert c.statistics().is_leader == (leader == "kafkalike")
                await _produce(bs, topic, 0, 300)
                while len(set(mine) | set(out.get("values", ()))) < 300:  # type: ignore[arg-type]
                    mine.extend(r.value for r in await c.poll(max_wait_ms=200))
            assert mine and out["values"]  # both members read their share
            assert {tp.partition for tp in c.assignment()} | set(out["assignment"]) == set(range(6))  # type: ignore[arg-type]
            assert set(mine) | set(out["values"]) == {f"v{i}".encode() for i in range(300)}  # type: ignore[arg-type]
            await c.commit()
            if describe and leader == "kafkalike":
                desc = await trio.to_thread.run_sync(lambda: _cli(
                    "consumer-groups", "--bootstrap-server", bs, "--describe", "--group", group))
                assert desc.returncode == 0, desc.stderr
                mine_lines = [ln for ln in desc.stdout.splitlines() if "kafkalike-member" in ln]
                assert len(mine_lines) == 3, desc.stdout  # one line per assigned partition
                assert all(c.member_id in ln and "/127." in ln for ln in mine_lines), desc.stdout
                assert any("librdkafka-member" in ln for ln in desc.stdout.splitlines()), desc.stdout
        finally:
            stop.set()
            await c.aclose()



async def test_member_that_stops_polling_leaves_and_rejoins(kafka_cluster: LocalCluster) -> None:
    """max_poll_interval_ms (KIP-62): a member whose caller stops calling poll() leaves the
    group although its heartbeats work, the other member takes all 4 partitions, and the
    idle member's next poll() joins again (2 + 2)."""
    bs = kafka_cluster.bootstrap_servers
    topic = await _topic(bs, 4)
    group = f"idle-{uuid.uuid4().hex[:6]}"
    idle = KafkaGroupConsumer(bs, group, [topic], max_poll_interval_ms=2000, **FAST)
    busy = KafkaGroupConsumer(bs, group, [topic], **FAST)
    await idle.start()
    await busy.start()
    try:
        async with trio.open_nursery() as nursery:
            async def keep_busy() -> None:  # busy's caller polls all the time
                while True:
                    await busy.poll(max_wait_ms=100)
            nursery.start_soon(keep_busy)
            with trio.fail_after(40):
                while len(busy.assignment()) != 2 or len(idle.assignment()) != 2:
                    await idle.poll(max_wait_ms=100)
                # idle's caller stops polling: after 2 s the member leaves by itself.
                while len(busy.assignment()) != 4:
                    await trio.sleep(0.1)
                assert idle.statistics().state == "unjoined" and not idle.assignment()
                while len(idle.assignment()) != 2 or len(busy.assignment()) != 2:
                    await idle.poll(max_wait_ms=100)
            nursery.cancel_scope.cancel()
    finally:
        await busy.aclose()
        await idle.aclose()

def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *args],
                          capture_output=True, text=True, timeout=60)


async def test_console_consumer_group_second_run_continues(kafka_cluster: LocalCluster) -> None:
    """``console-consumer --group G --from-beginning --max-messages 4`` twice: the second run
    prints the next 4 records (offsets committed), --from-beginning no longer rewinds."""
    bs = kafka_cluster.bootstrap_servers
    topic = await _topic(bs, 1, 10)
    group = f"console-{uuid.uuid4().hex[:6]}"
    args = ("console-consumer", "--bootstrap-server", bs, "--topic", topic, "--group", group,
            "--from-beginning", "--max-messages", "4", "--timeout-ms", "20000")
    first = await trio.to_thread.run_sync(lambda: _cli(*args))
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["v0", "v1", "v2", "v3"]
    assert "Processed a total of 4 messages" in first.stderr
    second = await trio.to_thread.run_sync(lambda: _cli(*args))
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["v4", "v5", "v6", "v7"]
    bad = await trio.to_thread.run_sync(lambda: _cli(*args, "--partition", "0"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr


async def test_killed_console_member_partitions_move_after_session_timeout(kafka_cluster: LocalCluster) -> None:
    """A ``console-consumer --group G`` process shares a 6-partition topic 3/3 with an
    in-process member; after kill -9 (no LeaveGroup) the coordinator expires it at its
    10 s session timeout and the in-process member gets all six partitions."""
    bs = kafka_cluster.bootstrap_servers
    topic = await _topic(bs, 6)
    group = f"kill-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([sys.executable, "-m", "kafkalike.cli.main", "console-consumer",
                             "--bootstrap-server", bs, "--topic", topic, "--group", group],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = KafkaGroupConsumer(bs, group, [topic], client_id="survivor", **FAST)
    await c.start()
    try:
        with trio.fail_after(45):
            while len(c.assignment()) != 3:
                await c.poll(max_wait_ms=100)
        proc.kill()  # SIGKILL of the process this test started
        await trio.to_thread.run_sync(proc.wait)
        killed_at = trio.current_time()
        with trio.fail_after(45):
            while len(c.assignment()) != 6:
                await c.poll(max_wait_ms=100)
        # Not a LeaveGroup: the move waited for the coordinator's session expiry.
        assert trio.current_time() - killed_at > 3
        assert c.assignment() == {TopicPartition(topic, p) for p in range(6)}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await c.aclose()



@pytest.mark.skipif(os.environ.get("KAFKALIKE_SLOW") != "1",
                    reason="kills the coordinator's broker and waits out its ZooKeeper session: KAFKALIKE_SLOW=1")
async def test_group_survives_kill_of_the_coordinators_broker(make_cluster: MakeCluster) -> None:
    """kill -9 of the broker hosting the group's coordinator (RF 3 everywhere): the members
    find the new coordinator, every record (300 before, 300 after) is read, and their
    commits land with the new coordinator."""
    cluster = await trio.to_thread.run_sync(make_cluster, 3)  # LocalCluster.start runs its own trio loop
    bs = cluster.bootstrap_servers
    topic = await _topic(bs, 6, 300, replication_factor=3)
    group = f"fo-{uuid.uuid4().hex[:6]}"
    a = KafkaGroupConsumer(bs, group, [topic], auto_offset_reset="earliest", **FAST)
    b = KafkaGroupConsumer(bs, group, [topic], auto_offset_reset="earliest", **FAST)
    await a.start()
    await b.start()
    try:
        seen: list[Counter[bytes]] = [Counter(), Counter()]
        await _consume_until([a, b], seen, 300, timeout=45,
                             until=lambda: len(a.assignment()) == len(b.assignment()) == 3)
        await a.commit()
        await b.commit()
        coordinator = a.statistics().coordinator_id
        assert coordinator in cluster.broker_ids
        cluster.kill_broker(coordinator)
        await _produce(bs, topic, 300, 300)
        await _consume_until([a, b], seen, 600, timeout=90)
        assert set(seen[0] + seen[1]) == {f"v{i}".encode() for i in range(600)}
        tps = [TopicPartition(topic, p) for p in range(6)]
        with trio.fail_after(60):
            while True:  # commits reach the new coordinator and cover every record
                for c in (a, b):
                    await c.poll(max_wait_ms=100)
                    try:
                        await c.commit()
                    except ClientError:
                        pass
                committed = await a.committed(tps)
                if sum(committed.values()) == 600:
                    break
        assert a.statistics().coordinator_id not in (-1, coordinator)
    finally:
        await b.aclose()
        await a.aclose()

# ---------------------------------------------------------------------- real Apache Kafka

REFERENCE = os.environ.get("KAFKALIKE_REFERENCE") == "1"


@pytest.fixture(scope="module")
def reference_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running 3-broker Apache Kafka 3.9 cluster (ZooKeeper mode, Maven-fetched jars);
    yields its bootstrap string. Stopped by pid afterwards."""
    from kafkalike.bench import reference_kafka as rk
    rk.fetch()
    hosts = [f"{rk.HOST_PREFIX}{i}" for i in (1, 2, 3)]
    port = rk.find_free_port(hosts, span=2)
    cluster = rk.ReferenceKafka(
        mode="zk", base_dir=Path(tmp_path_factory.mktemp("ref")) / "ref", port=port,
        controller_port=port + 1,
        zookeeper_port=rk.find_free_port([rk.ZOOKEEPER_HOST], span=1))
    try:
        cluster.up(fresh=True, timeout=240)
        yield cluster.bootstrap
    finally:
        cluster.down(timeout=60)


@pytest.mark.skipif(not REFERENCE, reason="needs Kafka 3.9 jars and 3 broker JVMs: set KAFKALIKE_REFERENCE=1")
@pytest.mark.parametrize("leader", ["kafkalike", "librdkafka"])
async def test_group_member_against_real_kafka(reference_kafka: str, leader: str) -> None:
    """The same group shared with confluent-kafka, against Apache Kafka 3.9's own
    GroupCoordinator: the client follows Kafka's protocol, not just kafkalike's broker."""
    await _share_with_confluent(reference_kafka, leader, describe=False, replication_factor=3)


@pytest.mark.skipif(not REFERENCE, reason="needs Kafka 3.9 jars and 3 broker JVMs: set KAFKALIKE_REFERENCE=1")
async def test_commits_resume_against_real_kafka(reference_kafka: str) -> None:
    """Commits made by one kafkalike member are where the next one starts, on Apache Kafka."""
    topic = await _topic(reference_kafka, 2, 50, replication_factor=3)
    group = f"g-{uuid.uuid4().hex[:6]}"
    first: list[bytes] = []
    async with KafkaGroupConsumer(reference_kafka, group, [topic], auto_offset_reset="earliest",
                                  **FAST) as c:
        with trio.fail_after(60):
            while len(first) < 20:
                first.extend(r.value for r in await c.poll(max_records=20 - len(first)))
    async with KafkaGroupConsumer(reference_kafka, group, [topic], auto_offset_reset="earliest",
                                  **FAST) as c2:
        second: list[bytes] = []
        with trio.fail_after(60):
            while len(second) < 30:
                second.extend(r.value for r in await c2.poll())
    assert sorted(first + second) == sorted(f"v{i}".encode() for i in range(50))
