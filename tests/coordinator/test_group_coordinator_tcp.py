"""The group coordinator over TCP on an in-process broker (real ZooKeeper, the broker's own
controller): FindCoordinator creating __consumer_offsets, the join/sync handshake, heartbeats,
session expiry, offsets, admin APIs, and reloading groups from the log after a restart."""

from __future__ import annotations

from pathlib import Path

import trio

from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordinator.group_metadata_manager import partition_for
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from tests.broker.broker_helpers import connect, running_broker, zk_json
from tests.coordinator.coordinator_helpers import (assignment, commit, create_topics, fetch_offsets,
                                                   find_coordinator, heartbeat, join, join_with_handshake, sync,
                                                   until_loaded)

PARTS = "4"
FAST = {"offsets_topic_num_partitions": PARTS, "group_initial_rebalance_delay_ms": "0",
        "group_min_session_timeout_ms": "500"}


async def test_find_coordinator_creates_compacted_offsets_topic(tmp_path: Path, zk_chroot_connect: str,
                                                                zk_client: ZooKeeperClient) -> None:
    """The first FindCoordinator creates __consumer_offsets (configured partitions, RF clamped
    to the one live broker, cleanup.policy=compact) and then names this broker."""
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            r = await find_coordinator(conn, "g1")
            assert (r.node_id, r.port) == (server.broker_id, server.bound_listeners[0].port)
            doc = await zk_json(zk_client, "/brokers/topics/__consumer_offsets")
            assert sorted(doc["partitions"]) == ["0", "1", "2", "3"]
            assert all(len(r) == 1 for r in doc["partitions"].values())
            cfg = await zk_json(zk_client, "/config/topics/__consumer_offsets")
            assert cfg["config"]["cleanup.policy"] == "compact"
            r0 = await conn.call(ApiKey.FIND_COORDINATOR, api_version=0, key="g1")
            assert r0.error_code == ErrorCode.none and r0.node_id == server.broker_id


async def test_join_sync_heartbeat_commit_describe_leave_delete(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Two members: MEMBER_ID_REQUIRED handshake, one generation with a leader who gets the
    member list and hands out assignments, heartbeats, generation-checked commits, describe,
    list, leave (rebalance for the other), and delete once Empty."""
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as a, connect(server) as b:
            await find_coordinator(a, "grp")
            await until_loaded(a, "grp")
            await create_topics(a, "t")
            j1 = await join_with_handshake(a, "grp")
            assert j1.error_code == ErrorCode.none and j1.generation_id == 1
            assert j1.leader == j1.member_id and len(j1.members) == 1
            s1 = await sync(a, "grp", 1, j1.member_id, {j1.member_id: assignment({"t": [0, 1]})})
            assert s1.error_code == ErrorCode.none and s1.assignment == assignment({"t": [0, 1]})
            assert (await heartbeat(a, "grp", 1, j1.member_id)).error_code == ErrorCode.none

            # a second member joins: the first learns of the rebalance by heartbeat, rejoins
            first_b = await join(b, "grp")
            assert first_b.error_code == ErrorCode.member_id_required
            async with trio.open_nursery() as nursery:
                results = {}

                async def join_b() -> None:
                    results["b"] = await join(b, "grp", first_b.member_id)

                nursery.start_soon(join_b)
                with trio.fail_after(10):
                    while (await heartbeat(a, "grp", 1, j1.member_id)).error_code != ErrorCode.rebalance_in_progress:
                        await trio.sleep(0.05)
                results["a"] = await join(a, "grp", j1.member_id)
            ja, jb = results["a"], results["b"]
            assert ja.generation_id == jb.generation_id == 2
            assert ja.leader == j1.member_id and len(ja.members) == 2 and jb.members == ()
            completing = await commit(a, "grp", {("t", 0): 5}, generation=2, member_id=ja.member_id)
            assert completing == {("t", 0): ErrorCode.rebalance_in_progress.value}
            async with trio.open_nursery() as nursery:
                sb: dict = {}

                async def sync_b() -> None:
                    sb["r"] = await sync(b, "grp", 2, jb.member_id)

                nursery.start_soon(sync_b)
                await trio.sleep(0.1)
                sa = await sync(a, "grp", 2, ja.member_id, {ja.member_id: assignment({"t": [0]}),
                                                            jb.member_id: assignment({"t": [1]})})
            assert sa.assignment == assignment({"t": [0]})
            assert sb["r"].error_code == ErrorCode.none and sb["r"].assignment == assignment({"t": [1]})
            stale = await commit(a, "grp", {("t", 0): 5}, generation=1, member_id=j1.member_id)
            assert stale == {("t", 0): ErrorCode.illegal_generation.value}
            unknown = await commit(a, "grp", {("t", 0): 5}, generation=2, member_id="nobody")
            assert unknown == {("t", 0): ErrorCode.unknown_member_id.value}
            ok = await commit(a, "grp", {("t", 0): 42, ("t", 1): 7}, generation=2, member_id=ja.member_id)
            assert set(ok.values()) == {0}
            assert await fetch_offsets(a, "grp", [("t", 0), ("t", 1), ("t", 2)]) == \
                {("t", 0): 42, ("t", 1): 7, ("t", 2): -1}

            d = await a.call(ApiKey.DESCRIBE_GROUPS, groups=["grp", "missing"], include_authorized_operations=False)
            grp, missing = d.groups
            assert (grp.group_state, grp.protocol_type, grp.protocol_data) == ("Stable", "consumer", "range")
            assert {m.member_id for m in grp.members} == {ja.member_id, jb.member_id}
            assert all(m.client_host == "/127.0.0.1" for m in grp.members)
            assert missing.group_state == "Dead" and missing.members == ()
            lg = await a.call(ApiKey.LIST_GROUPS, states_filter=[])
            assert [(g.group_id, g.group_state) for g in lg.groups] == [("grp", "Stable")]

            nonempty = await a.call(ApiKey.DELETE_GROUPS, groups_names=["grp"])
            assert nonempty.results[0].error_code == ErrorCode.non_empty_group
            for conn, member in ((a, ja.member_id), (b, jb.member_id)):
                lv = await conn.call(ApiKey.LEAVE_GROUP, group_id="grp",
                                     members=[{"member_id": member, "group_instance_id": None}])
                assert lv.error_code == ErrorCode.none and lv.members[0].error_code == ErrorCode.none
            with trio.fail_after(5):
                while True:
                    d = await a.call(ApiKey.DESCRIBE_GROUPS, groups=["grp"], include_authorized_operations=False)
                    if d.groups[0].group_state == "Empty":
                        break
                    await trio.sleep(0.05)
            deleted = await a.call(ApiKey.DELETE_GROUPS, groups_names=["grp", "grp"][:1] + ["never"])
            assert [(r.group_id, r.error_code) for r in deleted.results] == \
                [("grp", ErrorCode.none), ("never", ErrorCode.group_id_not_found)]
            assert await fetch_offsets(a, "grp", [("t", 0)]) == {("t", 0): -1}


async def test_session_timeout_removes_silent_member(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A member that stops heartbeating is removed after its session timeout; the group, now
    without members, goes Empty and the next heartbeat is UNKNOWN_MEMBER_ID."""
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "quiet")
            await until_loaded(conn, "quiet")
            j = await join_with_handshake(conn, "quiet", session_ms=600)
            s = await sync(conn, "quiet", j.generation_id, j.member_id, {j.member_id: b""})
            assert s.error_code == ErrorCode.none
            await trio.sleep(1.2)
            hb = await heartbeat(conn, "quiet", j.generation_id, j.member_id)
            assert hb.error_code == ErrorCode.unknown_member_id
            stats = server.group_coordinator.statistics()
            assert stats.groups["quiet"] == "Empty" and stats.expired_members == 1


async def test_simple_commits_and_invalid_requests(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Commits with generation -1 work for groups without members; bad session timeouts,
    unknown member ids, empty group ids and a loading partition get Kafka's errors."""
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "simple")
            await until_loaded(conn, "simple")
            await create_topics(conn, "x")
            assert await commit(conn, "simple", {("x", 0): 3, ("x", 1): 4}, metadata="m") == \
                {("x", 0): 0, ("x", 1): 0}
            assert await fetch_offsets(conn, "simple") == {("x", 0): 3, ("x", 1): 4}
            too_long = await commit(conn, "simple", {("x", 0): 9}, metadata="z" * 5000)
            assert too_long == {("x", 0): ErrorCode.offset_metadata_too_large.value}
            unknown = await commit(conn, "simple", {("nope", 0): 1, ("x", 7): 1, ("x", 1): 5})
            assert unknown == {("nope", 0): ErrorCode.unknown_topic_or_partition.value,
                               ("x", 7): ErrorCode.unknown_topic_or_partition.value, ("x", 1): 0}
            await commit(conn, "simple", {("x", 1): 4})
            bad = await join(conn, "simple", session_ms=100)
            assert bad.error_code == ErrorCode.invalid_session_timeout
            ghost = await join(conn, "simple", "ghost-member")
            assert ghost.error_code == ErrorCode.unknown_member_id
            empty = await join(conn, "")
            assert empty.error_code == ErrorCode.invalid_group_id
            # while its partition loads, a group's requests get COORDINATOR_LOAD_IN_PROGRESS
            mgr = server.group_coordinator.manager
            p = partition_for("simple", int(PARTS))
            mgr.loading_partitions[p] = mgr.owned_partitions.pop(p)
            r = await conn.call(ApiKey.OFFSET_FETCH, group_id="simple", topics=None, require_stable=False)
            assert r.error_code == ErrorCode.coordinator_load_in_progress
            assert (await heartbeat(conn, "simple", 1, "m")).error_code == ErrorCode.coordinator_load_in_progress
            mgr.owned_partitions[p] = mgr.loading_partitions.pop(p)
            assert await fetch_offsets(conn, "simple") == {("x", 0): 3, ("x", 1): 4}


async def test_groups_and_offsets_reload_after_restart(tmp_path: Path, zk_chroot_connect: str) -> None:
    """After a broker restart the coordinator reloads __consumer_offsets: committed offsets
    and the stored group (generation, members) are back, even though the restarted broker is
    configured with another offsets.topic.num.partitions (the topic's real count wins)."""
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "durable")
            await until_loaded(conn, "durable")
            await create_topics(conn, "t")
            j = await join_with_handshake(conn, "durable", session_ms=30000)
            await sync(conn, "durable", j.generation_id, j.member_id, {j.member_id: assignment({"t": [0]})})
            await commit(conn, "durable", {("t", 0): 11}, generation=j.generation_id, member_id=j.member_id)
    async with running_broker(tmp_path, zk_chroot_connect, **dict(FAST, offsets_topic_num_partitions="7")) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "durable")
            await until_loaded(conn, "durable")
            assert await fetch_offsets(conn, "durable") == {("t", 0): 11}
            d = await conn.call(ApiKey.DESCRIBE_GROUPS, groups=["durable"], include_authorized_operations=False)
            g = d.groups[0]
            assert g.group_state == "Stable" and [m.member_id for m in g.members] == [j.member_id]
            assert g.members[0].member_assignment == assignment({"t": [0]})
            hb = await heartbeat(conn, "durable", j.generation_id, j.member_id)
            assert hb.error_code == ErrorCode.none
            assert server.group_coordinator.offset_config.num_partitions == int(PARTS)


async def test_static_member_rejoins_without_rebalance_and_old_id_is_fenced(tmp_path: Path,
                                                                           zk_chroot_connect: str) -> None:
    """A static member (group.instance.id) restarting with an unknown member id gets a new id
    in the same generation with its old assignment (no rebalance); its old id is fenced, and
    LeaveGroup by instance id removes it."""
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "static")
            await until_loaded(conn, "static")
            j1 = await join(conn, "static", instance_id="host-1")  # static members skip MEMBER_ID_REQUIRED
            assert j1.error_code == ErrorCode.none and j1.generation_id == 1
            await sync(conn, "static", 1, j1.member_id, {j1.member_id: assignment({"t": [0, 1]})},
                       instance_id="host-1")
            j2 = await join(conn, "static", instance_id="host-1")
            assert j2.error_code == ErrorCode.none and j2.generation_id == 1 and j2.member_id != j1.member_id
            s2 = await sync(conn, "static", 1, j2.member_id, instance_id="host-1")
            assert s2.error_code == ErrorCode.none and s2.assignment == assignment({"t": [0, 1]})
            fenced = await conn.call(ApiKey.HEARTBEAT, group_id="static", generation_id=1,
                                     member_id=j1.member_id, group_instance_id="host-1")
            assert fenced.error_code == ErrorCode.fenced_instance_id
            lv = await conn.call(ApiKey.LEAVE_GROUP, group_id="static",
                                 members=[{"member_id": "", "group_instance_id": "host-1"}])
            assert lv.members[0].error_code == ErrorCode.none and lv.members[0].member_id == j2.member_id
            assert server.group_coordinator.statistics().groups["static"] == "Empty"


async def test_old_api_versions(tmp_path: Path, zk_chroot_connect: str) -> None:
    """JoinGroup v0-v3 join directly (no MEMBER_ID_REQUIRED), LeaveGroup v0 leaves a single
    member, OffsetCommit v2 with a retention time and OffsetFetch v1 work."""
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "old")
            await until_loaded(conn, "old")
            await create_topics(conn, "t")
            for version in (0, 3):
                j = await join(conn, "old", version=version)
                assert j.error_code == ErrorCode.none and j.member_id, (version, j)
                lv = await conn.call(ApiKey.LEAVE_GROUP, api_version=0, group_id="old", member_id=j.member_id)
                assert lv.error_code == ErrorCode.none
            r = await conn.call(ApiKey.OFFSET_COMMIT, api_version=2, group_id="old", generation_id_or_member_epoch=-1,
                                member_id="", retention_time=60000,
                                topics=[{"name": "t", "partitions": [{"partition_index": 0, "committed_offset": 8,
                                                                      "committed_metadata": "x"}]}])
            assert r.topics[0].partitions[0].error_code == ErrorCode.none
            om = server.group_coordinator.manager.get_group("old").offsets
            (only,) = om.values()
            assert only.offset == 8 and only.expire_timestamp == only.commit_timestamp + 60000
            f = await conn.call(ApiKey.OFFSET_FETCH, api_version=1, group_id="old",
                                topics=[{"name": "t", "partition_indexes": [0, 1]}])
            assert [(p.partition_index, p.committed_offset, p.metadata) for p in f.topics[0].partitions] == \
                [(0, 8, "x"), (1, -1, "")]


async def test_expired_offsets_are_tombstoned_and_empty_group_dies(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Offset retention: a simple group's offsets expire retention after their commit; the
    group, Empty without offsets, becomes Dead; after a restart nothing comes back (the
    tombstones were written to __consumer_offsets)."""
    import attrs

    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "ephemeral")
            await until_loaded(conn, "ephemeral")
            await create_topics(conn, "t")
            assert set((await commit(conn, "ephemeral", {("t", 0): 1, ("t", 1): 2})).values()) == {0}
            await commit(conn, "keeper", {("t", 0): 5})
            mgr = server.group_coordinator.manager
            mgr.config = attrs.evolve(mgr.config, retention_ms=300)
            mgr.groups["keeper"].offsets = {tp: attrs.evolve(om, commit_timestamp=om.commit_timestamp + 10**9)
                                            for tp, om in mgr.groups["keeper"].offsets.items()}
            await trio.sleep(0.4)
            assert await mgr.cleanup_group_metadata() == 2
            assert mgr.get_group("ephemeral") is None and mgr.get_group("keeper") is not None
            assert await fetch_offsets(conn, "ephemeral") == {}
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as conn:
            await find_coordinator(conn, "ephemeral")
            await until_loaded(conn, "ephemeral")
            assert await fetch_offsets(conn, "ephemeral") == {}
            assert await fetch_offsets(conn, "keeper") == {("t", 0): 5}


async def test_member_that_never_syncs_is_removed_after_rebalance_timeout(tmp_path: Path,
                                                                         zk_chroot_connect: str) -> None:
    """A member that joins a generation but never sends SyncGroup (while still heartbeating)
    is removed once the rebalance timeout passes, and the group rebalances without it (Kafka
    3.x's pending-sync timeout)."""
    async with running_broker(tmp_path, zk_chroot_connect, **FAST) as server:
        async with connect(server) as a, connect(server) as b:
            await find_coordinator(a, "lazy")
            await until_loaded(a, "lazy")
            ja = await join_with_handshake(a, "lazy", rebalance_ms=800)
            await sync(a, "lazy", ja.generation_id, ja.member_id, {ja.member_id: b"A"})
            first_b = await join(b, "lazy", rebalance_ms=800)
            results: dict = {}
            async with trio.open_nursery() as nursery:
                async def join_b() -> None:
                    results["b"] = await join(b, "lazy", first_b.member_id, rebalance_ms=800)

                nursery.start_soon(join_b)
                with trio.fail_after(10):
                    while (await heartbeat(a, "lazy", 1, ja.member_id)).error_code != ErrorCode.rebalance_in_progress:
                        await trio.sleep(0.05)
                results["a"] = await join(a, "lazy", ja.member_id, rebalance_ms=800)
            gen = results["a"].generation_id
            s = await sync(a, "lazy", gen, ja.member_id, {ja.member_id: b"A", results["b"].member_id: b"B"})
            assert s.error_code == ErrorCode.none
            with trio.fail_after(10):  # b heartbeats but never syncs
                while True:
                    hb = await heartbeat(b, "lazy", gen, results["b"].member_id)
                    if hb.error_code != ErrorCode.none:
                        break
                    await trio.sleep(0.1)
            assert hb.error_code == ErrorCode.unknown_member_id
            assert (await heartbeat(a, "lazy", gen, ja.member_id)).error_code == ErrorCode.rebalance_in_progress
            again = await join(a, "lazy", ja.member_id, rebalance_ms=800)
            assert again.generation_id == gen + 1 and [m.member_id for m in again.members] == [ja.member_id]
