"""Thousands of topics must not disable a cluster: against a real broker process
and the session's ZooKeeper ensemble, with TOPICS single-partition topics, all-topics Metadata
requests do not keep the broker from answering ApiVersions, a broker whose controller is busy
deleting them all stops on SIGTERM within its controlled-shutdown bound, and, restarted, it
finishes deleting them in seconds. One scenario, so that the topics are created once.

The topics and their deletion marks are written to ZooKeeper directly, pipelined (what Kafka's
AdminZkClient writes, as ``kafka-topics --zookeeper`` did), so that the real controller creates
and deletes their partitions and the broker their logs without the test paying the admin
requests' round trips per topic.
The 10,000-topic figures are in docs/benchmarks.md ("Many topics", kafkalike.bench.many_topics).
"""

from __future__ import annotations

import time

import trio

from kafkalike.bench.many_topics import (
    create_in_zk,
    mark_for_deletion_in_zk,
    metadata,
    topic_count,
    topic_names,
    wait_topic_count,
    while_pinging,
)
from kafkalike.cluster import process
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from tests.fixtures_cluster import MakeCluster

TOPICS = 3000
#: clients asking for all topics at once (as clients refreshing their metadata do)
CLIENTS = 10
#: generous: the broker answers ApiVersions in a few ms when idle; before the fix each
#: all-topics Metadata request at 3,000 topics held the event loop ~0.25 s, five at once kept
#: ApiVersions waiting 1.18 s, ten ~2.5 s (one: 5-21 s at 10,000 topics)
MAX_PING_S = 1.0
#: generous: ~30 s after the fix on a busy 2-core machine (most of it the broker deleting
#: 3,000 log directories); before, a third of them were deleted after 90 s
DELETE_WITHIN_S = 90.0
#: the controlled-shutdown bound (1 attempt x controller.socket.timeout.ms 30 s; no backoff
#: after the last attempt) + 6 s for the rest of the shutdown. After the fix the controller
#: answers the ControlledShutdown after its current event (~15 s in all on a loaded machine);
#: before, that request waited out its 30 s behind thousands of queued deletion events, and
#: the controller's shutdown another 10 s behind them
STOP_WITHIN_S = 30 + 6

OVERRIDES = {"auto.create.topics.enable": "false", "num.partitions": "1", "default.replication.factor": "1",
             "auto.leader.rebalance.enable": "false"}


async def _zk(cluster: LocalCluster) -> ZooKeeperClient:
    zk = ZooKeeperClient(cluster.zk_connect, session_timeout_ms=10000, connection_timeout_ms=10000,
                         name="test-many-topics")
    await zk.start()
    return zk


async def zk_topics_left(cluster: LocalCluster) -> tuple[int, int]:
    """(children of /brokers/topics, children of /admin/delete_topics)."""
    zk = await _zk(cluster)
    try:
        topics = await zk.get_children(zd.BROKER_TOPICS_PATH, sync=True)
        try:
            marks = await zk.get_children(zd.DELETE_TOPICS_PATH, sync=True)
        except Exception:
            marks = []
        return len(topics), len(marks)
    finally:
        await zk.close()


def test_thousands_of_topics_keep_metadata_responsive_and_delete_in_seconds_even_across_a_sigterm(
        make_cluster: MakeCluster) -> None:
    """With 3,000 topics, ten all-topics Metadata requests at once leave the broker answering
    ApiVersions within a second; SIGTERM right after every topic was marked for deletion stops
    the broker (the busy controller) within its controlled-shutdown bound (30 s) plus 6 s; restarted,
    it finishes the deletion (metadata and ZooKeeper) well within 90 s."""
    cluster = make_cluster(brokers=1, overrides={**OVERRIDES, "controlled.shutdown.max.retries": "1"})
    address = cluster.broker_address(1)
    names = topic_names(TOPICS)

    async def create_and_ask() -> None:
        t0 = time.monotonic()
        await create_in_zk(cluster.zk_connect, names)
        await wait_topic_count([address], lambda n: n >= TOPICS, timeout=240)
        print(f"{TOPICS} topics created in {time.monotonic() - t0:.1f} s")

        async def refresh_together() -> list[int]:
            counts: list[int] = []

            async def one() -> None:
                resp = await metadata(address, None)
                counts.append(sum(1 for t in resp.topics if t.error_code == 0))

            async with trio.open_nursery() as nursery:
                for _ in range(CLIENTS):
                    nursery.start_soon(one)
            return counts

        for _ in range(2):  # the first answer after an UpdateMetadata is built, the second may be cached
            counts, ping = await while_pinging(address, refresh_together)
            assert counts == [TOPICS] * CLIENTS
            assert ping.rtts, "no ApiVersions round trip completed"
            assert ping.max < MAX_PING_S, f"ApiVersions waited {ping.max:.2f} s during all-topics Metadata requests"
            print(f"longest ApiVersions round trip during {CLIENTS} all-topics Metadata requests: "
                  f"{ping.max * 1000:.0f} ms")
        await mark_for_deletion_in_zk(cluster.zk_connect, names)

    trio.run(create_and_ask)

    # the controller is now busy with 3,000 deletions: SIGTERM must not wait for them
    pid = cluster.broker_pid(1)
    assert pid is not None and process.is_alive(pid)
    t0 = time.monotonic()
    process.signal_pid(pid, 15)
    try:
        process.wait_for(lambda: not process.is_alive(pid), STOP_WITHIN_S, what="the broker to exit after SIGTERM")
    except TimeoutError:
        raise AssertionError(f"broker still running {STOP_WITHIN_S} s after SIGTERM") from None
    print(f"broker exited {time.monotonic() - t0:.1f} s after SIGTERM")

    cluster.start_broker(1)
    cluster.wait_registered([1], timeout=60)
    cluster.wait_ready([1], timeout=120)

    async def deletion_finishes() -> None:
        t0 = time.monotonic()
        with trio.fail_after(DELETE_WITHIN_S):
            while await topic_count(address) or await zk_topics_left(cluster) != (0, 0):
                await trio.sleep(0.5)
        print(f"{TOPICS} topics deleted {time.monotonic() - t0:.1f} s after the restart")

    trio.run(deletion_finishes)
