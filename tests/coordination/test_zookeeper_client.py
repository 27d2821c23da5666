"""ZooKeeperClient against a real 3-node ensemble: reads/writes, one-shot watches into trio,
multi-op version checks, session events and expiry, chroot creation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable

import pytest
import trio

from kafkalike.coordination import (
    BadVersion,
    CheckOp,
    CoordinationError,
    CreateOp,
    DeleteOp,
    MultiOpFailed,
    NodeExists,
    NoNode,
    NotEmpty,
    SessionState,
    SetDataOp,
    WatchEvent,
    WatchEventType,
    ZnodeStat,
    ZooKeeperClient,
    split_connect_string,
)

if TYPE_CHECKING:
    from kafkalike.cluster.zk_ensemble import ZkEnsemble


async def test_create_get_set_delete_round_trip(zk_client: ZooKeeperClient) -> None:
    """Data written is read back with its stat; versions advance; delete removes the node."""
    path, stat = await zk_client.create("/a/b", b"one", make_parents=True)
    assert path == "/a/b" and stat.version == 0 and not stat.ephemeral and stat.czxid > 0
    data, st = await zk_client.get("/a/b")
    assert data == b"one" and st.czxid == stat.czxid
    st2 = await zk_client.set("/a/b", b"two", version=0)
    assert st2.version == 1
    with pytest.raises(BadVersion):
        await zk_client.set("/a/b", b"three", version=0)
    with pytest.raises(NodeExists):
        await zk_client.create("/a/b")
    with pytest.raises(NotEmpty):
        await zk_client.delete("/a")
    assert await zk_client.get_children("/a") == ["b"]
    await zk_client.delete("/a", recursive=True)
    assert await zk_client.exists("/a") is None
    with pytest.raises(NoNode):
        await zk_client.get("/a/b")


async def test_ephemeral_node_has_session_as_owner(zk_client: ZooKeeperClient) -> None:
    """An ephemeral node's ephemeralOwner is the creating session's id."""
    _, stat = await zk_client.create("/eph", b"x", ephemeral=True)
    assert stat.ephemeral and stat.ephemeral_owner == zk_client.session_id


async def test_sequential_create_appends_ten_digit_counter(zk_client: ZooKeeperClient) -> None:
    """Sequential nodes get ZooKeeper's zero-padded 10-digit suffix, increasing."""
    await zk_client.ensure_path("/isr_change_notification")
    p1, _ = await zk_client.create("/isr_change_notification/isr_change_", b"{}", sequential=True)
    p2, _ = await zk_client.create("/isr_change_notification/isr_change_", b"{}", sequential=True)
    assert p1 == "/isr_change_notification/isr_change_0000000000"
    assert p2 == "/isr_change_notification/isr_change_0000000001"


async def test_data_watch_fires_once_into_trio_and_channel(zk_client: ZooKeeperClient) -> None:
    """A data watch fires CHANGED exactly once, as a trio event and into the given channel."""
    await zk_client.create("/w", b"0")
    send, recv = trio.open_memory_channel[WatchEvent](10)
    data, stat, watch = await zk_client.get_and_watch("/w", channel=send)
    assert data == b"0" and watch.fired is None
    await zk_client.set("/w", b"1")
    with trio.fail_after(5):
        ev = await watch.wait()
        assert ev == WatchEvent(WatchEventType.CHANGED, "/w", "data")
        assert await recv.receive() == ev
    stats = zk_client.statistics()
    assert (stats.watches_armed, stats.watches_fired, stats.state) == (1, 1, SessionState.CONNECTED)
    await zk_client.set("/w", b"2")  # not re-armed: no second event
    await zk_client.sync("/w")
    await trio.sleep(0.3)
    with pytest.raises(trio.WouldBlock):
        recv.receive_nowait()


async def test_exists_watch_fires_on_create_and_child_watch_on_new_child(zk_client: ZooKeeperClient) -> None:
    """An exists watch on an absent node fires CREATED; a child watch fires CHILD; re-arming works."""
    stat, watch = await zk_client.exists_and_watch("/controller")
    assert stat is None
    await zk_client.create("/controller", b"{}", ephemeral=True)
    with trio.fail_after(5):
        assert (await watch.wait()).type == WatchEventType.CREATED

    await zk_client.ensure_path("/brokers/ids")
    children, cwatch = await zk_client.get_children_and_watch("/brokers/ids")
    assert children == []
    await zk_client.create("/brokers/ids/1", b"{}", ephemeral=True)
    with trio.fail_after(5):
        assert (await cwatch.wait()) == WatchEvent(WatchEventType.CHILD, "/brokers/ids", "children")
    children, cwatch2 = await zk_client.get_children_and_watch("/brokers/ids")  # re-arm
    assert children == ["1"]
    await zk_client.delete("/brokers/ids/1")
    with trio.fail_after(5):
        assert (await cwatch2.wait()).type == WatchEventType.CHILD


async def test_get_many_reads_every_path_in_order_with_none_for_absent(zk_client: ZooKeeperClient) -> None:
    """get_many returns each node's data and stat in the order asked, None for a missing one,
    and the same values as one-by-one reads."""
    await zk_client.create("/many/a", b"1", make_parents=True)
    await zk_client.create("/many/b", b"22")
    await zk_client.set("/many/b", b"333")
    got = await zk_client.get_many(["/many/b", "/many/missing", "/many/a"])
    assert [g[0] if g else None for g in got] == [b"333", None, b"1"]
    assert got[0] is not None and got[0][1].version == 1
    assert got[0] == await zk_client.get("/many/b")
    assert await zk_client.get_many([]) == []


async def test_get_many_and_watch_reads_in_order_and_arms_a_data_watch_per_present_node(
        zk_client: ZooKeeperClient) -> None:
    """get_many_and_watch returns each node's data and stat in order with an armed data watch
    (None for a missing node), and each watch fires once into the channel when its node changes."""
    await zk_client.create("/mw/a", b"1", make_parents=True)
    await zk_client.create("/mw/b", b"2")
    send, recv = trio.open_memory_channel[WatchEvent](10)
    got = await zk_client.get_many_and_watch(["/mw/b", "/mw/missing", "/mw/a"], channel=send)
    assert [g[0] if g else None for g in got] == [b"2", None, b"1"]
    assert got[0] is not None and got[2] is not None
    await zk_client.set("/mw/a", b"3")
    with trio.fail_after(5):
        assert await got[2][2].wait() == WatchEvent(WatchEventType.CHANGED, "/mw/a", "data")
        assert await recv.receive() == WatchEvent(WatchEventType.CHANGED, "/mw/a", "data")
    assert got[0][2].fired is None
    assert await zk_client.get_many_and_watch([]) == []


async def test_multi_applies_all_ops_atomically(zk_client: ZooKeeperClient) -> None:
    """A multi-op with a passing version check applies every op and returns their results."""
    await zk_client.create("/controller_epoch", b"1")
    results = await zk_client.multi([
        CheckOp("/controller_epoch", 0),
        CreateOp("/controller", b'{"brokerid":1}', ephemeral=True),
        SetDataOp("/controller_epoch", b"2", 0),
    ])
    assert results[0] is True and results[1] == "/controller"
    assert isinstance(results[2], ZnodeStat) and results[2].version == 1
    assert (await zk_client.get("/controller_epoch"))[0] == b"2"


async def test_multi_with_stale_version_fails_and_applies_nothing(zk_client: ZooKeeperClient) -> None:
    """A stale CheckOp version rolls the whole multi back and names the failing op."""
    await zk_client.create("/controller_epoch", b"1")
    await zk_client.set("/controller_epoch", b"2")  # now at version 1
    with pytest.raises(MultiOpFailed) as info:
        await zk_client.multi([
            CreateOp("/p", b"x"),
            CheckOp("/controller_epoch", 0),
            DeleteOp("/controller_epoch"),
        ])
    assert info.value.index == 1 and isinstance(info.value.error, BadVersion)
    assert info.value.op == CheckOp("/controller_epoch", 0)
    assert await zk_client.exists("/p") is None
    assert await zk_client.exists("/controller_epoch") is not None


async def test_chroot_is_created_and_hides_outer_tree(zk_connect: str, zk_chroot_connect: str) -> None:
    """A connect string with a missing chroot creates it; paths are relative to it."""
    async with ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000) as inner:
        await inner.create("/x", b"1")
    _, chroot = split_connect_string(zk_chroot_connect)
    async with ZooKeeperClient(zk_connect, session_timeout_ms=4000) as outer:
        assert (await outer.get(chroot + "/x", sync=True))[0] == b"1"
        await outer.delete(chroot, recursive=True)


def test_bad_connect_string_and_path_are_typed_errors() -> None:
    """Malformed connect strings give CoordinationError, never a crash."""
    with pytest.raises(CoordinationError, match="connect string"):
        ZooKeeperClient("")
    with pytest.raises(CoordinationError, match="connect string"):
        ZooKeeperClient("a:1,,b:2")
    assert split_connect_string("h:1,h:2/kafka/") == ("h:1,h:2", "/kafka")


async def test_bad_path_is_typed_error(zk_client: ZooKeeperClient) -> None:
    """A relative path is refused with CoordinationError before reaching ZooKeeper."""
    with pytest.raises(CoordinationError, match="bad znode path"):
        await zk_client.get("relative")


async def test_session_expiry_is_delivered_and_new_session_follows(
    zk_client: ZooKeeperClient, zk_expire: Callable[[ZooKeeperClient], Awaitable[None]]
) -> None:
    """Expiring the session delivers EXPIRED, deletes its ephemerals, then a new session CONNECTs."""
    await zk_client.create("/brokers/ids/1", b"{}", ephemeral=True, make_parents=True)
    old = zk_client.session_id
    events = zk_client.session_events()
    await zk_expire(zk_client)
    seen = []
    with trio.fail_after(20):
        async for ev in events:
            seen.append(ev.state)
            if ev.state == SessionState.CONNECTED and ev.new_session:
                assert ev.session_id != old
                break
    assert SessionState.EXPIRED in seen
    await zk_client.wait_connected(timeout=10)
    assert zk_client.session_id not in (None, old)
    stats = zk_client.statistics()
    assert (stats.sessions, stats.expirations) == (2, 1) and stats.session_id == zk_client.session_id_hex
    assert await zk_client.exists("/brokers/ids/1") is None
    # the new session can register again; its czxid is a new broker epoch
    _, stat = await zk_client.create("/brokers/ids/1", b"{}", ephemeral=True)
    assert stat.ephemeral_owner == zk_client.session_id


async def test_connecting_to_nobody_times_out_with_typed_error() -> None:
    """With no server at the address, start() raises ConnectTimeout after connection_timeout_ms."""
    from kafkalike.cluster.zk_ensemble import find_free_base_port
    from kafkalike.coordination import ConnectTimeout

    port = find_free_base_port(["127.0.0.1"])
    client = ZooKeeperClient(f"127.0.0.1:{port}", session_timeout_ms=2000, connection_timeout_ms=1000)
    with trio.fail_after(10):
        with pytest.raises(ConnectTimeout):
            await client.start()


async def test_losing_the_server_suspends_fires_watches_disconnected_and_resumes_session(
    zk_ensemble_restored: "ZkEnsemble", zk_chroot_connect: str
) -> None:
    """Killing the only server a client knows gives SUSPENDED and DISCONNECTED watch events;
    once the node is back the SAME session resumes (CONNECTED, new_session False)."""
    ens = zk_ensemble_restored
    follower = next(s.node_id for s in ens.status() if s.mode == "follower")
    _, chroot = split_connect_string(zk_chroot_connect)
    async with ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000) as setup:
        await setup.create("/w", b"0")
    client = ZooKeeperClient(ens.spec(follower).address + chroot, session_timeout_ms=30000)
    events = client.session_events()
    await client.start()
    try:
        assert (await events.receive()).state == SessionState.CONNECTED
        sid = client.session_id
        await client.sync("/w")  # /w was written through another session, maybe another server
        _, _, watch = await client.get_and_watch("/w")
        await trio.to_thread.run_sync(ens.kill_node, follower)
        with trio.fail_after(15):
            assert (await events.receive()).state == SessionState.SUSPENDED
            assert (await watch.wait()).type == WatchEventType.DISCONNECTED
        ens.start_node(follower)  # from the main thread: spawning returns at once
        with trio.fail_after(30):
            ev = await events.receive()
        assert ev.state == SessionState.CONNECTED and not ev.new_session and ev.session_id == sid
        data, _, _ = await client.get_and_watch("/w")  # re-read and re-arm after DISCONNECTED
        assert data == b"0"
    finally:
        await client.close()


async def test_source_host_binds_the_client_connection(zk_connect: str) -> None:
    """With source_host, the client's ZooKeeper connection comes from that loopback address
    (so one process's link can be cut by an iptables rule), and the session works."""
    async with ZooKeeperClient(zk_connect, session_timeout_ms=4000, source_host="127.0.0.77") as zk:
        assert await zk.exists("/") is not None
        # /proc/net/tcp lists local addresses as little-endian hex: 127.0.0.77 -> 4D00007F
        local = {line.split()[1].split(":")[0] for line in open("/proc/net/tcp").readlines()[1:]}
        assert "4D00007F" in local


async def test_sync_read_sees_another_sessions_write(zk_client: ZooKeeperClient, zk_chroot_connect: str) -> None:
    """get(sync=True) sees a write another session just made; sync on a missing path is fine."""
    async with ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000) as other:
        for i in range(20):
            await other.create(f"/s{i}", b"v")
            assert (await zk_client.get(f"/s{i}", sync=True))[0] == b"v"
            assert await zk_client.exists(f"/s{i}", sync=True) is not None
        assert len(await zk_client.get_children("/", sync=True)) == 20
    await zk_client.sync("/no/such/node")
