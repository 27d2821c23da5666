"""OffsetDelete (KIP-496) and the removal of a deleted topic's committed offsets, against a
real kafkalike broker process and real ZooKeeper, driven by kafka-python's admin client
(delete_group_offsets, list_group_offsets), raw requests through kafkalike's own client and
``kafkalike consumer-groups --delete-offsets / --describe``."""

from __future__ import annotations

import contextlib
import io
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from tests.coordinator.coordinator_helpers import find_coordinator, join_with_handshake, sync, until_loaded
from tests.fixtures_cluster import _new_cluster

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")
OVERRIDES = {"offsets.topic.num.partitions": "3", "group.initial.rebalance.delay.ms": "0",
             "group.min.session.timeout.ms": "1000"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, zk_connect: str) -> Iterator[LocalCluster]:
    """One broker process (3 offsets partitions) shared by this module; each test uses its own
    topics and groups."""
    c = _new_cluster(tmp_path_factory.mktemp("offset-delete"), zk_connect, 1, OVERRIDES)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def admin(cluster: LocalCluster) -> Iterator[Any]:
    from kafka import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)
    try:
        yield a
    finally:
        a.close()


def _create(admin: Any, *topics: str, partitions: int = 3) -> None:
    from kafka.admin import NewTopic

    admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    admin.wait_for_topics(list(topics), timeout_ms=30000)


def _retrying(call: Any, *args: Any) -> Any:
    """``call(*args)``, retried while kafka-python's admin client meets a coordinator that is
    being created or loaded (it does not retry those itself)."""
    from kafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError, NotCoordinatorError

    deadline = time.monotonic() + 30
    while True:
        try:
            return call(*args)
        except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _commit(admin: Any, group: str, offsets: dict[tuple[str, int], int]) -> None:
    from kafka.errors import NoError
    from kafka.structs import OffsetAndMetadata, TopicPartition

    answer = _retrying(admin.alter_group_offsets, group, {TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                                               for (t, p), o in offsets.items()})
    assert set(answer.values()) == {NoError}, answer


def _committed(admin: Any, group: str) -> dict[tuple[str, int], int]:
    got = _retrying(admin.list_group_offsets, {group: None})[group]
    return {(tp.topic, tp.partition): om.offset for tp, om in got.items() if om.offset >= 0}


def _cli(*argv: str) -> tuple[int, str]:
    """``kafkalike consumer-groups ...`` in this process: (exit code, stdout + stderr)."""
    from kafkalike.cli.main import build_parser

    args = build_parser().parse_args(["consumer-groups", *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = int(args.func(args))
    # the client's structlog lines go to the same (redirected) stdout in tests: leave them out
    return code, "".join(ln for ln in out.getvalue().splitlines(keepends=True) if not LOG_LINE.match(ln))


def test_offset_delete_removes_an_empty_groups_offsets_and_reports_unknown_partitions(admin: Any) -> None:
    """kafka-python's delete_group_offsets on an Empty group removes exactly the partitions
    asked for, answers UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist, and the
    group becomes Dead once its last offset is gone; an unknown group is GROUP_ID_NOT_FOUND."""
    from kafka.errors import GroupIdNotFoundError, NoError, UnknownTopicOrPartitionError
    from kafka.structs import TopicPartition

    _create(admin, "od-orders")
    _commit(admin, "od-billing", {("od-orders", 0): 5, ("od-orders", 1): 7, ("od-orders", 2): 9})
    answer = admin.delete_group_offsets("od-billing", [TopicPartition("od-orders", 0),
                                                       TopicPartition("od-orders", 1),
                                                       TopicPartition("od-orders", 7)])
    assert answer == {TopicPartition("od-orders", 0): NoError, TopicPartition("od-orders", 1): NoError,
                      TopicPartition("od-orders", 7): UnknownTopicOrPartitionError}
    assert _committed(admin, "od-billing") == {("od-orders", 2): 9}
    assert admin.delete_group_offsets("od-billing", [TopicPartition("od-orders", 2)]) == \
        {TopicPartition("od-orders", 2): NoError}
    assert _committed(admin, "od-billing") == {}
    assert "od-billing" not in {g[0] for g in admin.list_groups()}
    with pytest.raises(GroupIdNotFoundError):
        admin.delete_group_offsets("od-billing", [TopicPartition("od-orders", 2)])


async def _active_group_answers(bootstrap: str, group: str) -> tuple[dict[tuple[str, int], int], int, int]:
    """A consumer-protocol member subscribed to od-live joins and syncs ``group`` (Stable);
    then OffsetDelete for od-live:0 and od-other:0; then a member of a group with protocol
    type "connect" and OffsetDelete on it. Returns ({(topic, partition): error} of the first,
    top-level error of the first, top-level error of the second)."""
    from kafkalike.client import KafkaClient
    from tests.coordinator.coordinator_helpers import commit

    async with KafkaClient(bootstrap, client_id="offset-delete-test") as client:
        conn = await client.any_connection()
        await find_coordinator(conn, group)
        await find_coordinator(conn, group + "-connect")
        await until_loaded(conn, group)
        assert await commit(conn, group, {("od-live", 0): 3, ("od-other", 0): 4}) == \
            {("od-live", 0): 0, ("od-other", 0): 0}
        joined = await join_with_handshake(conn, group, topics=("od-live",), session_ms=30000)
        assert joined.error_code == ErrorCode.none, joined
        synced = await sync(conn, group, joined.generation_id, joined.member_id, {joined.member_id: b""})
        assert synced.error_code == ErrorCode.none, synced
        r = await conn.call(ApiKey.OFFSET_DELETE, group_id=group, topics=[
            {"name": "od-live", "partitions": [{"partition_index": 0}]},
            {"name": "od-other", "partitions": [{"partition_index": 0}]}])
        errors = {(t.name, p.partition_index): p.error_code.value for t in r.topics for p in t.partitions}
        other = group + "-connect"
        first = await conn.call(ApiKey.JOIN_GROUP, group_id=other, session_timeout=30000, rebalance_timeout=30000,
                                member_id="", group_instance_id=None, protocol_type="connect",
                                protocols=[{"name": "default", "metadata": b"x"}])
        j = await conn.call(ApiKey.JOIN_GROUP, group_id=other, session_timeout=30000, rebalance_timeout=30000,
                            member_id=first.member_id, group_instance_id=None, protocol_type="connect",
                            protocols=[{"name": "default", "metadata": b"x"}])
        assert j.error_code == ErrorCode.none, j
        r2 = await conn.call(ApiKey.OFFSET_DELETE, group_id=other, topics=[
            {"name": "od-other", "partitions": [{"partition_index": 0}]}])
        assert r2.topics == ()
        return errors, r.error_code.value, r2.error_code.value


def test_offset_delete_refuses_topics_an_active_consumer_group_subscribes_to(cluster: LocalCluster,
                                                                             admin: Any) -> None:
    """With a Stable member subscribed to od-live, OffsetDelete answers
    GROUP_SUBSCRIBED_TO_TOPIC for od-live and deletes od-other's offset; a group with members
    that is not a consumer group gets NON_EMPTY_GROUP and no partitions (Kafka's rules)."""
    _create(admin, "od-live", "od-other", partitions=1)
    errors, top, connect_top = trio.run(_active_group_answers, cluster.bootstrap_servers, "od-active")
    assert top == 0
    assert errors == {("od-live", 0): ErrorCode.group_subscribed_to_topic.value, ("od-other", 0): 0}
    assert connect_top == ErrorCode.non_empty_group.value
    assert _committed(admin, "od-active") == {("od-live", 0): 3}


def test_cli_delete_offsets_prints_kafkas_report(cluster: LocalCluster, admin: Any) -> None:
    """``consumer-groups --delete-offsets --group G --topic T`` deletes every partition of T and
    prints Kafka's "Request succeed ..." line and TOPIC PARTITION STATUS table; an unknown
    group prints Kafka's "does not exist" error and exits 1."""
    _create(admin, "od-cli", partitions=2)
    _commit(admin, "od-cli-group", {("od-cli", 0): 1, ("od-cli", 1): 2})
    bs = cluster.bootstrap_servers
    code, out = _cli("--bootstrap-server", bs, "--delete-offsets", "--group", "od-cli-group", "--topic", "od-cli")
    assert code == 0, out
    lines = [ln.split() for ln in out.splitlines() if ln.strip()]
    assert out.splitlines()[0] == "Request succeed for deleting offsets with topic od-cli group od-cli-group"
    assert lines[1:] == [["TOPIC", "PARTITION", "STATUS"], ["od-cli", "0", "Successful"],
                         ["od-cli", "1", "Successful"]]
    assert _committed(admin, "od-cli-group") == {}
    code, out = _cli("--bootstrap-server", bs, "--delete-offsets", "--group", "od-cli-group", "--topic", "od-cli:0")
    assert code == 1 and "Error: 'od-cli-group' does not exist." in out, out


def test_deleting_a_topic_removes_its_committed_offsets_from_every_group(cluster: LocalCluster,
                                                                         admin: Any) -> None:
    """After DeleteTopics, the groups that committed offsets of the topic lose them (the
    coordinator tombstones them when the UpdateMetadata deleting the topic arrives, as Kafka's
    handleDeletedPartitions does), other topics' offsets stay, and ``consumer-groups
    --describe`` shows only the surviving topic."""
    _create(admin, "od-doomed", "od-kept", partitions=2)
    for group in ("od-g1", "od-g2"):
        _commit(admin, group, {("od-doomed", 0): 3, ("od-doomed", 1): 4, ("od-kept", 0): 5})
    admin.delete_topics(["od-doomed"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = {g: _committed(admin, g) for g in ("od-g1", "od-g2")}
        if all(("od-doomed", 0) not in c for c in left.values()):
            break
        time.sleep(0.2)
    assert left == {"od-g1": {("od-kept", 0): 5}, "od-g2": {("od-kept", 0): 5}}
    code, out = _cli("--bootstrap-server", cluster.bootstrap_servers, "--describe", "--group", "od-g1")
    assert code == 0, out
    assert "od-doomed" not in out and "od-kept" in out


def test_removed_offsets_stay_removed_after_the_coordinator_reloads(cluster: LocalCluster, admin: Any) -> None:
    """Offsets removed by OffsetDelete and by deleting their topic stay removed after the
    broker restarts and reloads __consumer_offsets: tombstones were written, not only the
    cache changed."""
    from kafka import KafkaAdminClient
    from kafka.structs import TopicPartition

    _create(admin, "od-reload-a", "od-reload-b", "od-reload-c", partitions=1)
    _commit(admin, "od-reload", {("od-reload-a", 0): 11, ("od-reload-b", 0): 12, ("od-reload-c", 0): 13})
    _retrying(admin.delete_group_offsets, "od-reload", [TopicPartition("od-reload-a", 0)])
    admin.delete_topics(["od-reload-b"])
    deadline = time.monotonic() + 60
    while ("od-reload-b", 0) in _committed(admin, "od-reload") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _committed(admin, "od-reload") == {("od-reload-c", 0): 13}
    (broker,) = cluster.broker_ids
    cluster.stop_broker(broker)
    cluster.start_broker(broker)
    cluster.wait_ready([broker], timeout=60)
    fresh = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers, request_timeout_ms=30000)
    try:
        assert _committed(fresh, "od-reload") == {("od-reload-c", 0): 13}
    finally:
        fresh.close()
