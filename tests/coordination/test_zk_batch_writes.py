"""Pipelined guarded writes against a real ensemble: ZooKeeperClient.multi_many gives one
outcome per transaction in order, and KafkaZkClient.update_leader_and_isr_many sorts them into
succeeded / BadVersion / failed and refuses to go on when the controller epoch moved."""

from __future__ import annotations

import attrs
import pytest

from kafkalike.coordination import BadVersion, ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.errors import MultiOpFailed, NodeExists, NoNode
from kafkalike.coordination.kafka_zk_client import ControllerEpoch, ControllerMoved, KafkaZkClient
from kafkalike.coordination.zookeeper_client import CheckOp, CreateOp, SetDataOp, ZnodeStat


async def test_multi_many_returns_each_transactions_outcome_in_order(zk_client: ZooKeeperClient) -> None:
    """Each transaction applies or fails on its own: success gives its new stat, a stale version
    BadVersion, a missing node NoNode, an existing one NodeExists, and a failed one writes nothing."""
    await zk_client.create("/a", b"a0")
    await zk_client.create("/b", b"b0")
    await zk_client.create("/guard", b"g")
    await zk_client.set("/b", b"b1")  # /b now at version 1
    outcomes = await zk_client.multi_many([
        [CheckOp("/guard", 0), SetDataOp("/a", b"a1", 0)],
        [CheckOp("/guard", 0), SetDataOp("/b", b"b2", 0)],  # stale
        [CheckOp("/guard", 0), SetDataOp("/missing", b"x", 0)],
        [],
        [CheckOp("/guard", 0), CreateOp("/a")],
        [CheckOp("/guard", 0), CreateOp("/c", b"c0"), SetDataOp("/b", b"b3", 1)],
    ])
    assert len(outcomes) == 6
    ok = outcomes[0]
    assert isinstance(ok, list) and ok[0] is True and isinstance(ok[1], ZnodeStat) and ok[1].version == 1
    for i, (index, error) in {1: (1, BadVersion), 2: (1, NoNode), 4: (1, NodeExists)}.items():
        failed = outcomes[i]
        assert isinstance(failed, MultiOpFailed), (i, failed)
        assert failed.index == index and isinstance(failed.error, error), (i, failed)
    assert outcomes[3] == []
    last = outcomes[5]
    assert isinstance(last, list) and last[1] == "/c" and isinstance(last[2], ZnodeStat) and last[2].version == 2
    assert (await zk_client.get("/a"))[0] == b"a1"
    assert (await zk_client.get("/b"))[0] == b"b3"
    assert await zk_client.exists("/missing") is None
    assert await zk_client.multi_many([]) == []


async def _partitions(kzk: KafkaZkClient, n: int) -> tuple[int, list[zd.TopicPartition]]:
    epoch = await kzk.register_controller_and_increment_epoch(1)
    tps = [zd.TopicPartition("t", p) for p in range(n)]
    for tp in tps:
        await kzk.create_partition_state(tp, zd.LeaderIsrAndControllerEpoch(1, 0, (1, 2, 3), epoch.epoch),
                                         epoch.zk_version)
    return epoch.zk_version, tps


async def test_update_leader_and_isr_many_sorts_success_bad_version_and_no_node(zk_client: ZooKeeperClient) -> None:
    """Fresh versions are written and their new zkVersions returned; a state changed behind the
    controller's back is BadVersion and keeps the other writer's data; a missing one is NoNode."""
    kzk = KafkaZkClient(zk_client)
    epoch_zk_version, tps = await _partitions(kzk, 4)
    states = await kzk.get_partition_states(tps)
    changed = await kzk.update_partition_state(tps[1], zd.LeaderIsrAndControllerEpoch(1, 0, (1,), 1, zk_version=0))
    assert changed == 1
    gone = zd.TopicPartition("gone", 0)
    new = {tp: zd.LeaderIsrAndControllerEpoch(2, 1, (2, 3), 1, zk_version=states[tp].zk_version) for tp in tps}
    new[gone] = zd.LeaderIsrAndControllerEpoch(2, 1, (2,), 1, zk_version=0)
    result = await kzk.update_leader_and_isr_many(new, epoch_zk_version)
    assert result.succeeded == {tps[0]: 1, tps[2]: 1, tps[3]: 1}
    assert result.bad_version == [tps[1]]
    assert list(result.failed) == [gone] and isinstance(result.failed[gone], NoNode)
    after = await kzk.get_partition_states(tps)
    assert after[tps[1]] == zd.LeaderIsrAndControllerEpoch(1, 0, (1,), 1, zk_version=1)
    for tp in (tps[0], tps[2], tps[3]):
        assert after[tp] == zd.LeaderIsrAndControllerEpoch(2, 1, (2, 3), 1, zk_version=1)


async def test_update_leader_and_isr_many_raises_controller_moved_and_writes_nothing(
        zk_client: ZooKeeperClient) -> None:
    """With a stale controller-epoch zkVersion the batch raises ControllerMoved and no state is written."""
    kzk = KafkaZkClient(zk_client)
    epoch_zk_version, tps = await _partitions(kzk, 3)
    states = await kzk.get_partition_states(tps)
    new = {tp: zd.LeaderIsrAndControllerEpoch(2, 1, (2,), 1, zk_version=states[tp].zk_version) for tp in tps}
    with pytest.raises(ControllerMoved, match=r"^/controller_epoch is no longer at zkVersion"):
        await kzk.update_leader_and_isr_many(new, epoch_zk_version + 1)
    assert await kzk.get_partition_states(tps) == states


async def test_create_partition_states_many_creates_parents_and_reports_existing(zk_client: ZooKeeperClient) -> None:
    """New states are created with their missing parents (version 0); one that exists already
    is reported NodeExists and keeps its data; a moved epoch raises ControllerMoved."""
    kzk = KafkaZkClient(zk_client)
    epoch = await kzk.register_controller_and_increment_epoch(1)
    old = zd.LeaderIsrAndControllerEpoch(3, 4, (3,), 1)
    await kzk.create_partition_state(zd.TopicPartition("t", 1), old, epoch.zk_version)
    tps = [zd.TopicPartition(t, p) for t in ("t", "u") for p in range(3)]
    new = {tp: zd.LeaderIsrAndControllerEpoch(1, 0, (1, 2), 1) for tp in tps}
    created = await kzk.create_partition_states_many(new, epoch.zk_version)
    assert list(created) == tps
    assert isinstance(created.pop(zd.TopicPartition("t", 1)), NodeExists)
    assert created == {tp: 0 for tp in tps if tp != zd.TopicPartition("t", 1)}
    states = await kzk.get_partition_states(tps)
    assert states[zd.TopicPartition("t", 1)] == attrs.evolve(old, zk_version=0)
    assert all(states[tp] == attrs.evolve(new[tp], zk_version=0) for tp in created)
    with pytest.raises(ControllerMoved):
        await kzk.create_partition_states_many({zd.TopicPartition("v", 0): new[tps[0]]}, epoch.zk_version + 1)
    assert await kzk.get_partition_state("v", 0) is None


async def test_delete_topic_znodes_many_removes_every_topics_tree_config_and_mark(zk_client: ZooKeeperClient) -> None:
    """A batch deletion removes each topic's znode with its partition states, its config and its
    deletion mark; a topic whose tree has an extra node (or no partition states) still goes
    (recursive fallback); missing configs and marks are fine; a moved epoch deletes nothing."""
    kzk = KafkaZkClient(zk_client)
    epoch = await kzk.register_controller_and_increment_epoch(1)
    topics = {"a": [0, 1], "b": [0], "odd": [0], "bare": [0]}
    for t, parts in topics.items():
        await kzk.create_topic_assignment(zd.TopicAssignment(t, {p: zd.ReplicaAssignment((1,)) for p in parts}))
        if t != "bare":  # "bare": the controller never wrote its partition states
            await kzk.create_partition_states_many(
                {zd.TopicPartition(t, p): zd.LeaderIsrAndControllerEpoch(1, 0, (1,), epoch.epoch) for p in parts},
                epoch.zk_version)
        await kzk.create_delete_topic_path(t)
    await zk_client.create(zd.topic_path("odd") + "/extra", b"")
    await zk_client.create(zd.config_entity_path(zd.CONFIG_TYPE_TOPIC, "a"), b"{}", make_parents=True)
    await zk_client.create_if_absent(zd.topic_path("kept"))
    await kzk.create_delete_topic_path("kept")
    with pytest.raises(ControllerMoved):
        await kzk.delete_topic_znodes_many({"kept": [0]}, epoch.zk_version + 1)
    assert await zk_client.exists(zd.topic_path("kept")) is not None
    await kzk.delete_topic_znodes_many(topics, epoch.zk_version)
    assert await zk_client.get_children(zd.BROKER_TOPICS_PATH) == ["kept"]
    assert await zk_client.get_children(zd.DELETE_TOPICS_PATH) == ["kept"]
    assert await zk_client.exists(zd.config_entity_path(zd.CONFIG_TYPE_TOPIC, "a")) is None


async def test_topic_assignments_read_and_deletion_marks_written_in_one_batch(zk_client: ZooKeeperClient) -> None:
    """get_topic_assignments_many answers each topic in order (None for a missing one) and
    create_delete_topic_paths marks every topic, an already-marked one included (what
    DeleteTopics now does with one pipelined batch each instead of a round trip per topic)."""
    kzk = KafkaZkClient(zk_client)
    await kzk.create_top_level_paths()
    for t, n in (("a", 2), ("b", 1)):
        await kzk.create_topic_assignment(zd.TopicAssignment(t, {p: zd.ReplicaAssignment((1,)) for p in range(n)}))
    found = await kzk.get_topic_assignments_many(["b", "missing", "a"])
    assert [None if f is None else (f[0].topic, sorted(f[0].partitions)) for f in found] == \
        [("b", [0]), None, ("a", [0, 1])]
    assert await kzk.create_delete_topic_path("a")
    await kzk.create_delete_topic_paths(["a", "b"])
    assert sorted(await kzk.get_topic_deletions()) == ["a", "b"]


async def _created(kzk: KafkaZkClient, epoch: ControllerEpoch, topic: str, n: int) -> list[zd.TopicPartition]:
    tps = [zd.TopicPartition(topic, i) for i in range(n)]
    created = await kzk.create_partition_states_many(
        {tp: zd.LeaderIsrAndControllerEpoch(1, 0, (1, 2, 3), epoch.epoch) for tp in tps}, epoch.zk_version)
    assert created == {tp: 0 for tp in tps}
    return tps


async def test_update_leader_and_isr_many_packs_fifty_partitions_per_multi(zk_client: ZooKeeperClient) -> None:
    """120 partition-state writes go out as 3 guarded multis (50 + 50 + 20), one request each,
    and every partition gets its own new zkVersion; with partitions_per_multi=1 it is Kafka's
    one multi per partition, 120 requests."""
    epoch = await KafkaZkClient(zk_client).register_controller_and_increment_epoch(1)
    for topic, per_multi, requests in (("p", 50, 3), ("q", 1, 120)):
        kzk = KafkaZkClient(zk_client, partitions_per_multi=per_multi)
        tps = await _created(kzk, epoch, topic, 120)
        states = await kzk.get_partition_states(tps)
        new = {tp: attrs.evolve(states[tp], leader=2, isr=(2, 3)) for tp in tps}
        before = zk_client.statistics().requests
        result = await kzk.update_leader_and_isr_many(new, epoch.zk_version)
        assert zk_client.statistics().requests - before == requests
        assert result.succeeded == {tp: 1 for tp in tps} and not result.bad_version and not result.failed
        assert await kzk.get_partition_states(tps) == {tp: attrs.evolve(new[tp], zk_version=1) for tp in tps}


async def test_a_stale_partition_fails_alone_and_its_pack_is_sent_again_one_per_multi(
        zk_client: ZooKeeperClient) -> None:
    """A stale zkVersion in the second pack of 50 rolls that pack back: the stale partition is
    BadVersion (the other writer's state kept), its 49 neighbours are written one multi each
    (3 + 49 requests), and every other partition is written once, at version 1."""
    kzk = KafkaZkClient(zk_client)
    epoch = await kzk.register_controller_and_increment_epoch(1)
    tps = await _created(kzk, epoch, "p", 120)
    states = await kzk.get_partition_states(tps)
    stale = tps[60]
    theirs = zd.LeaderIsrAndControllerEpoch(1, 0, (1,), 1, zk_version=0)
    assert await kzk.update_partition_state(stale, theirs) == 1
    new = {tp: attrs.evolve(states[tp], leader=2, isr=(2, 3)) for tp in tps}
    before = zk_client.statistics().requests
    result = await kzk.update_leader_and_isr_many(new, epoch.zk_version)
    assert zk_client.statistics().requests - before == 3 + 49
    assert result.bad_version == [stale] and not result.failed
    assert result.succeeded == {tp: 1 for tp in tps if tp != stale}
    after = await kzk.get_partition_states(tps)
    assert after.pop(stale) == attrs.evolve(theirs, zk_version=1)
    assert after == {tp: attrs.evolve(new[tp], zk_version=1) for tp in tps if tp != stale}
