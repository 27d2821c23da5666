"""The dashboard's timeline (kafkalike.dashboard.state.diff) on snapshots as a kill -9 of a
controller produces them: cause-first order, bounded times, summed internal topics."""

from __future__ import annotations

from typing import Any

from kafkalike.dashboard.state import Snapshot, diff


def snap(taken_ms: int, *, registered: set[int], alive: set[int], controller: dict[str, Any] | None,
         parts: list[dict[str, Any]]) -> Snapshot:
    """A snapshot of brokers 1-3 and the given partitions."""
    brokers = {i: {"id": i, "address": f"127.0.0.{i}:9092", "registered": i in registered,
                   "epoch": 100 + i if i in registered else None, "pid": 1000 + i, "alive": i in alive}
               for i in (1, 2, 3)}
    return Snapshot(taken_ms, "/c", zk_nodes=[{"address": "127.0.0.1:2181", "up": True, "mode": "standalone"}],
                    zk_connected=True, brokers=brokers, controller=controller, partitions=parts)


def part(topic: str, p: int, leader: int, epoch: int, isr: list[int], mtime: int) -> dict[str, Any]:
    return {"topic": topic, "partition": p, "internal": topic.startswith("__"), "replicas": [1, 2, 3],
            "leader": leader, "leader_epoch": epoch, "isr": isr, "zk_version": epoch, "mtime_ms": mtime,
            "high_watermark": 0}


def test_a_killed_controllers_events_come_cause_first_with_the_deletion_bounded_by_its_effects() -> None:
    """Process gone, registration deleted, new controller, then the partition moves; the
    deletion (no znode time) is shown at or before the first write it caused; 50 internal
    partitions make one line."""
    before = snap(1_000, registered={1, 2, 3}, alive={1, 2, 3}, controller={"id": 1, "epoch": 4, "since_ms": 10},
                  parts=[part("t", 0, 1, 4, [1, 2, 3], 500)] +
                        [part("__consumer_offsets", p, 1, 0, [1, 2, 3], 500) for p in range(50)])
    after = snap(9_000, registered={2, 3}, alive={2, 3}, controller={"id": 2, "epoch": 5, "since_ms": 7_000},
                 parts=[part("t", 0, 2, 5, [2, 3], 7_100)] +
                       [part("__consumer_offsets", p, 2, 1, [2, 3], 7_200) for p in range(50)])
    events = diff(before, after)
    assert [e.text for e in events] == [
        "broker 1 process (pid 1001) is gone",
        "/brokers/ids/1 deleted (session expired: its process is gone; broker epoch 101 ends)",
        "/controller: broker 2 elected, controller epoch 5 (was broker 1, epoch 4)",
        "partition t-0 leader 1\u21922, leader_epoch 4\u21925, ISR [1, 2, 3]\u2192[2, 3]",
        "__consumer_offsets: 50 partitions changed state (leader moved in 50)",
    ]
    assert [(e.ts_ms, e.at_or_before) for e in events] == [
        (7_000, True), (7_000, True), (7_000, False), (7_100, False), (7_200, False)]


def test_an_unreachable_zookeeper_is_not_reported_as_every_broker_deleted() -> None:
    """When the dashboard loses ZooKeeper, the timeline says so and nothing else: registrations
    it cannot read are not news of deletions."""
    before = snap(1_000, registered={1, 2, 3}, alive={1, 2, 3}, controller={"id": 1, "epoch": 4, "since_ms": 10},
                  parts=[part("t", 0, 1, 4, [1, 2, 3], 500)])
    after = Snapshot(2_000, "/c", zk_nodes=[{"address": "127.0.0.1:2181", "up": False, "mode": None}],
                     zk_connected=False, brokers={i: dict(b) for i, b in before.brokers.items()})
    for b in after.brokers.values():
        b.update(registered=False, epoch=None)
    assert [e.text for e in diff(before, after)] == [
        "ZooKeeper 127.0.0.1:2181: standalone \u2192 down", "dashboard's ZooKeeper session lost"]
