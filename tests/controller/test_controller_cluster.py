"""The controller in real broker processes (LocalCluster, 3 brokers on 127.0.0.1-3 against the
session's ZooKeeper ensemble): topic creation reaches every broker's metadata cache and the
leaders accept produce; deletion removes the znodes and the topic; kill -9 of the controller
gives a new controller with epoch + 1 that moves the dead broker's leaderships; the restarted
broker is sent the metadata again; ControlledShutdown over the wire moves leaderships away."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import trio

from kafkalike.client.admin import AdminClient, NewTopic
from kafkalike.client.connection import KafkaConnection
from kafkalike.client.producer import KafkaProducer
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.controller.kafka_controller import send_controlled_shutdown
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import KafkaZkClient
from kafkalike.protocol.api_keys import ApiKey
from tests.fixtures_cluster import MakeCluster

TIMEOUT = 30


async def _zk(cluster: LocalCluster) -> ZooKeeperClient:
    zk = ZooKeeperClient(cluster.zk_connect, session_timeout_ms=6000, connection_timeout_ms=10000, name="test")
    await zk.start()
    return zk


async def metadata(cluster: LocalCluster, broker_id: int, topics: list[str]) -> dict[str, Any]:
    """{topic: {partition: leader}} (topics the broker knows) and "controller" from a broker's
    Metadata answer, i.e. from its metadata cache."""
    host, port = cluster.broker_address(broker_id).split(":")
    async with trio.open_nursery() as nursery:
        conn = await KafkaConnection.connect(host, int(port), nursery=nursery, request_timeout_ms=10000)
        try:
            resp = await conn.call(ApiKey.METADATA, topics=[{"name": t} for t in topics],
                                   allow_auto_topic_creation=False)
        finally:
            await conn.aclose()
    out: dict[str, Any] = {"controller": resp.controller_id}
    for t in resp.topics:
        if t.error_code == 0:
            out[t.name] = {p.partition_index: p.leader_id for p in t.partitions}
    return out


async def eventually(check: Any, timeout: float = TIMEOUT) -> Any:
    deadline = trio.current_time() + timeout
    last: Any = None
    while True:
        try:
            last = await check()
            if last:
                return last
        except Exception as exc:  # a broker not up yet, a znode not there yet
            last = exc
        if trio.current_time() > deadline:
            raise AssertionError(f"condition not met in {timeout} s; last value: {last!r}")
        await trio.sleep(0.1)


async def leaders_in_zk(zk: ZooKeeperClient, topic: str, partitions: int) -> dict[int, zd.LeaderIsrAndControllerEpoch]:
    kzk = KafkaZkClient(zk)
    out = {}
    for p in range(partitions):
        li = await kzk.get_partition_state(topic, p)
        if li is None:
            return {}
        out[p] = li
    return out


def test_controller_drives_real_brokers_through_create_delete_failover_and_rejoin(make_cluster: MakeCluster) -> None:
    """Create -> every broker's cache has the leaders written in ZooKeeper and produce works;
    delete -> znodes and metadata gone; the same through the admin API, seen in `kafkalike zk
    tree`; kill -9 controller -> epoch + 1, leaderships move off
    the dead broker, a deletion waits for it; restart -> it registers, learns the metadata
    again and the deletion completes; ControlledShutdown
    of the controller's own broker -> its leaderships move to the other ISR member."""
    cluster = make_cluster(brokers=3)
    state: dict[str, Any] = {}

    async def create_and_delete() -> None:
        zk = await _zk(cluster)
        try:
            kzk = KafkaZkClient(zk)
            controller = await eventually(kzk.get_controller_id)
            epoch = await kzk.get_controller_epoch()
            assert epoch is not None
            state.update(controller=controller, epoch=epoch.epoch)
            await kzk.create_topic_assignment(zd.TopicAssignment(
                "replicated", {0: zd.ReplicaAssignment((1, 2, 3)), 1: zd.ReplicaAssignment((2, 3, 1)),
                               2: zd.ReplicaAssignment((3, 1, 2))}, zd.generate_uuid_base64()))
            await kzk.create_topic_assignment(zd.TopicAssignment(
                "stalled", {0: zd.ReplicaAssignment((1,)), 1: zd.ReplicaAssignment((2,)),
                            2: zd.ReplicaAssignment((3,))}, zd.generate_uuid_base64()))
            await kzk.create_topic_assignment(zd.TopicAssignment(
                "doomed", {0: zd.ReplicaAssignment((1,)), 1: zd.ReplicaAssignment((2,))}, zd.generate_uuid_base64()))
            states = await eventually(lambda: leaders_in_zk(zk, "replicated", 3))
            assert {p: li.leader for p, li in states.items()} == {0: 1, 1: 2, 2: 3}
            assert all(li.isr == r and li.leader_epoch == 0 and li.controller_epoch == epoch.epoch
                       for li, r in zip(states.values(), [(1, 2, 3), (2, 3, 1), (3, 1, 2)]))
            for b in (1, 2, 3):  # UpdateMetadata reached every broker's cache
                async def cached(b: int = b) -> bool:
                    md = await metadata(cluster, b, ["replicated", "doomed"])
                    return md.get("replicated") == {0: 1, 1: 2, 2: 3} and md.get("doomed") == {0: 1, 1: 2} \
                        and md["controller"] == controller
                await eventually(cached)
            # LeaderAndIsr made the leaders leaders: acks=1 produce succeeds on every partition
            async with KafkaProducer(cluster.bootstrap_servers, acks=1, request_timeout_ms=10000) as producer:
                for p in range(3):
                    meta = await producer.send("replicated", b"v%d" % p, partition=p)
                    assert meta.offset == 0
            # deletion through /admin/delete_topics
            await kzk.create_delete_topic_path("doomed")

            async def deleted() -> bool:
                gone = await zk.exists(zd.topic_path("doomed")) is None
                unmarked = await zk.exists(zd.delete_topic_path("doomed")) is None
                caches = [("doomed" not in await metadata(cluster, b, ["doomed"])) for b in (1, 2, 3)]
                return gone and unmarked and all(caches)
            await eventually(deleted)
            assert "doomed" not in await kzk.get_all_topics()
        finally:
            await zk.close()

    trio.run(create_and_delete)

    # through the admin API: CreateTopics / DeleteTopics, seen in `kafkalike zk tree`
    def zk_tree() -> str:
        done = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", "zk", "tree", "/brokers/topics",
                               "--zookeeper", cluster.zk_connect], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    async def admin_create() -> None:
        async with AdminClient(cluster.bootstrap_servers) as admin:
            await admin.create_topics([NewTopic("via-admin", num_partitions=2, replication_factor=2)])
        zk = await _zk(cluster)
        try:
            await eventually(lambda: leaders_in_zk(zk, "via-admin", 2))
        finally:
            await zk.close()

    trio.run(admin_create)
    tree = zk_tree()
    assert "via-admin" in tree and "/brokers/topics/via-admin/partitions/1/state" in tree
    assert '"leader_epoch":0' in tree

    async def admin_delete() -> None:
        async with AdminClient(cluster.bootstrap_servers) as admin:
            await admin.delete_topics(["via-admin"])
        zk = await _zk(cluster)
        try:
            async def gone() -> bool:
                return await zk.exists(zd.topic_path("via-admin")) is None
            await eventually(gone)
        finally:
            await zk.close()

    trio.run(admin_delete)
    assert "via-admin" not in zk_tree()
    victim = state["controller"]
    assert cluster.kill_broker(victim)
    killed_at = time.monotonic()

    async def failover() -> None:
        zk = await _zk(cluster)
        try:
            kzk = KafkaZkClient(zk)

            async def new_controller() -> bool:
                cid = await kzk.get_controller_id()
                epoch = await kzk.get_controller_epoch()
                return cid is not None and cid != victim and epoch is not None and epoch.epoch == state["epoch"] + 1
            await eventually(new_controller)
            state["new_controller"] = await kzk.get_controller_id()

            async def moved() -> dict[int, zd.LeaderIsrAndControllerEpoch] | None:
                got = await leaders_in_zk(zk, "replicated", 3)
                ok = got and all(li.leader not in (victim, -1) and victim not in li.isr for li in got.values())
                return got if ok else None
            states = await eventually(moved)
            for p, li in states.items():  # offline-partition algorithm: next live ISR member in order
                replicas = [(1, 2, 3), (2, 3, 1), (3, 1, 2)][p]
                assert li.leader == next(r for r in replicas if r != victim)
                assert li.controller_epoch == state["epoch"] + 1
            survivors = [b for b in (1, 2, 3) if b != victim]
            for b in survivors:
                async def cached(b: int = b) -> bool:
                    md = await metadata(cluster, b, ["replicated"])
                    return md["controller"] == state["new_controller"] and victim not in md["replicated"].values()
                await eventually(cached)
            # a deletion with a replica on the dead broker: caches drop the topic, the znodes stay
            await eventually(lambda: leaders_in_zk(zk, "stalled", 3))
            await kzk.create_delete_topic_path("stalled")
            for b in survivors:
                async def dropped(b: int = b) -> bool:
                    return "stalled" not in await metadata(cluster, b, ["stalled"])
                await eventually(dropped)
            await trio.sleep(1)
            assert await zk.exists(zd.topic_path("stalled")) is not None  # waits for the dead broker
        finally:
            await zk.close()

    trio.run(failover)
    assert time.monotonic() - killed_at < 40
    cluster.start_broker(victim)
    cluster.wait_registered([victim], timeout=TIMEOUT)

    async def rejoined() -> None:
        async def cached() -> bool:
            md = await metadata(cluster, victim, ["replicated"])
            return md["controller"] == state["new_controller"] and set(md.get("replicated", {})) == {0, 1, 2}
        await eventually(cached)
        zk = await _zk(cluster)
        try:  # the returning broker deletes its replica and the stalled deletion completes
            async def deleted() -> bool:
                return (await zk.exists(zd.topic_path("stalled")) is None
                        and await zk.exists(zd.delete_topic_path("stalled")) is None)
            await eventually(deleted)
        finally:
            await zk.close()

    trio.run(rejoined)

    async def controlled_shutdown_of_the_controller() -> None:
        zk = await _zk(cluster)
        try:
            kzk = KafkaZkClient(zk)
            target = state["new_controller"]
            registered = await kzk.get_broker(target)
            assert registered is not None
            before = await leaders_in_zk(zk, "replicated", 3)
            assert any(li.leader == target for li in before.values())
            # ControlledShutdown over the wire, to the controller (which is the target itself)
            assert await send_controlled_shutdown(kzk, target, registered.broker_epoch, retry_backoff_ms=500)
            after = await leaders_in_zk(zk, "replicated", 3)
            for p, li in after.items():
                assert li.leader not in (target, -1) and target not in li.isr
                if before[p].leader == target:
                    assert li.leader_epoch == before[p].leader_epoch + 1
            # a stale broker epoch is refused: nothing more moves
            assert not await send_controlled_shutdown(kzk, target, registered.broker_epoch - 1, max_retries=1)
        finally:
            await zk.close()

    trio.run(controlled_shutdown_of_the_controller)


def test_older_inter_broker_protocol_drives_brokers_with_older_request_versions(make_cluster: MakeCluster) -> None:
    """inter.broker.protocol.version=2.2 (LeaderAndIsr v2, UpdateMetadata v5, StopReplica v1):
    the brokers still get their leaderships and metadata, produce works, deletion completes."""
    cluster = make_cluster(brokers=2, overrides={"inter.broker.protocol.version": "2.2"})

    async def run() -> None:
        zk = await _zk(cluster)
        try:
            kzk = KafkaZkClient(zk)
            await kzk.create_topic_assignment(zd.TopicAssignment(
                "old-wire", {0: zd.ReplicaAssignment((1, 2)), 1: zd.ReplicaAssignment((2, 1))}, None))
            for b in (1, 2):
                async def cached(b: int = b) -> bool:
                    return (await metadata(cluster, b, ["old-wire"])).get("old-wire") == {0: 1, 1: 2}
                await eventually(cached)
            async with KafkaProducer(cluster.bootstrap_servers, acks=1, request_timeout_ms=10000) as producer:
                assert (await producer.send("old-wire", b"x", partition=1)).offset == 0
            await kzk.create_delete_topic_path("old-wire")

            async def deleted() -> bool:
                return await zk.exists(zd.topic_path("old-wire")) is None
            await eventually(deleted)
        finally:
            await zk.close()

    trio.run(run)
    # the controller says which versions it negotiated with each broker
    lines = [ln for b in (1, 2) for ln in cluster.log_path(b).read_text().splitlines()
             if "controller_channel_connected" in ln]
    assert lines and all("leader_and_isr_version=2" in ln and "update_metadata_version=5" in ln
                         and "stop_replica_version=1" in ln for ln in lines), lines


def test_paused_controller_wakes_fenced_and_resigned(make_cluster: MakeCluster) -> None:
    """SIGSTOP the controller's broker until its session expires: another broker becomes
    controller with epoch + 1; after SIGCONT the old one has resigned (its log says so, its
    cache names the new controller), and a write guarded by the old epoch's zkVersion — what
    the zombie would send — is refused by ZooKeeper."""
    import signal

    from kafkalike.coordination.kafka_zk_client import ControllerMoved

    cluster = make_cluster(brokers=2)
    state: dict[str, Any] = {}

    async def before() -> None:
        zk = await _zk(cluster)
        try:
            kzk = KafkaZkClient(zk)
            state["controller"] = await eventually(kzk.get_controller_id)
            epoch = await kzk.get_controller_epoch()
            assert epoch is not None
            state["epoch"] = epoch
            await kzk.create_topic_assignment(zd.TopicAssignment("z", {0: zd.ReplicaAssignment((1, 2))}, None))
            await eventually(lambda: leaders_in_zk(zk, "z", 1))
        finally:
            await zk.close()

    trio.run(before)
    zombie = state["controller"]
    assert cluster.kill_broker(zombie, signal.SIGSTOP)
    try:
        async def new_controller() -> None:
            zk = await _zk(cluster)
            try:
                kzk = KafkaZkClient(zk)

                async def elected() -> bool:
                    epoch = await kzk.get_controller_epoch()
                    return epoch is not None and epoch.epoch == state["epoch"].epoch + 1 \
                        and await kzk.get_controller_id() not in (None, zombie)
                await eventually(elected)
                state["new_controller"] = await kzk.get_controller_id()
            finally:
                await zk.close()

        trio.run(new_controller)
    finally:
        cluster.kill_broker(zombie, signal.SIGCONT)

    async def after() -> None:
        zk = await _zk(cluster)
        try:
            kzk = KafkaZkClient(zk)

            async def cached() -> bool:
                return (await metadata(cluster, zombie, ["z"]))["controller"] == state["new_controller"]
            await eventually(cached)
            li = await kzk.get_partition_state("z", 0)
            assert li is not None
            stale = zd.LeaderIsrAndControllerEpoch(leader=zombie, leader_epoch=li.leader_epoch + 5, isr=(zombie,),
                                                   controller_epoch=state["epoch"].epoch, zk_version=li.zk_version)
            try:
                await kzk.update_partition_state_as_controller(zd.TopicPartition("z", 0), stale,
                                                               state["epoch"].zk_version)
            except ControllerMoved:
                pass
            else:
                raise AssertionError("a write fenced by the old controller epoch went through")
            # the leader may expand the ISR meanwhile (the woken broker catches up), which
            # rewrites the state; what must not appear is the fenced write's leader and epoch
            now = await kzk.get_partition_state("z", 0)
            assert now is not None
            assert (now.leader, now.leader_epoch) == (li.leader, li.leader_epoch)
        finally:
            await zk.close()

    trio.run(after)
    log = cluster.log_path(zombie).read_text()
    assert "controller_resigned" in log and "zookeeper session expired" in log
