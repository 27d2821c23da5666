"""Replica manager request paths against an in-process broker with a real ZooKeeper:
LeaderAndIsr / StopReplica fencing, Produce (acks 0/1/-1, bad batches), Fetch (HW vs LEO,
byte limits, long polling), ListOffsets and OffsetForLeaderEpoch, over real TCP."""

from __future__ import annotations

from pathlib import Path

import trio

from kafkalike.client.connection import KafkaConnection
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import (batch, connect, fetch, leader_and_isr, produce,
                                         running_broker, stop_replica, update_metadata, values_of)


async def _lead(conn: KafkaConnection, server, topic: str, partitions: int = 1, epoch: int = 0,
                isr: tuple[int, ...] | None = None, replicas: tuple[int, ...] | None = None) -> None:
    me = server.broker_id
    req = leader_and_isr(server, topic, {p: (me, isr or (me,), replicas or (me,)) for p in range(partitions)},
                         leader_epoch=epoch)
    resp = await conn.send(req, api_version=6)
    assert resp.error_code == 0
    assert all(e.error_code == 0 for t in resp.topics for e in t.partition_errors)


async def test_leader_and_isr_creates_log_and_makes_leader(tmp_path: Path, zk_chroot_connect: str) -> None:
    """The first LeaderAndIsr creates <topic>-<p> on disk and the partition reports itself leader."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "orders", partitions=2, epoch=3)
        stats = server.replica_manager.partition_statistics()
        assert sorted(stats) == ["orders-0", "orders-1"]
        assert stats["orders-0"].is_leader and stats["orders-0"].leader_epoch == 3
        assert (tmp_path / "logs-1" / "orders-1").is_dir()


async def test_leader_and_isr_fencing(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Older controller epoch -> STALE_CONTROLLER_EPOCH; older broker epoch -> STALE_BROKER_EPOCH;
    a leader epoch that does not grow -> STALE_CONTROLLER_EPOCH for that partition; a broker
    outside the replica list -> UNKNOWN_TOPIC_OR_PARTITION."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        me = server.broker_id
        ok = await conn.send(leader_and_isr(server, "t", {0: (me, [me], [me])}, leader_epoch=5,
                                            controller_epoch=4), api_version=6)
        assert ok.error_code == 0
        stale = await conn.send(leader_and_isr(server, "t", {0: (me, [me], [me])}, leader_epoch=6,
                                               controller_epoch=3), api_version=6)
        assert stale.error_code == ErrorCode.stale_controller_epoch
        old_broker = await conn.send(leader_and_isr(server, "t", {0: (me, [me], [me])}, leader_epoch=6,
                                                    controller_epoch=4, broker_epoch=server.broker_epoch - 1),
                                     api_version=6)
        assert old_broker.error_code == ErrorCode.stale_broker_epoch
        same = await conn.send(leader_and_isr(server, "t", {0: (me, [me], [me])}, leader_epoch=5,
                                              controller_epoch=4), api_version=6)
        assert same.error_code == 0
        assert same.topics[0].partition_errors[0].error_code == ErrorCode.stale_controller_epoch
        other = await conn.send(leader_and_isr(server, "u", {0: (7, [7], [7, 8])}, leader_epoch=1,
                                               controller_epoch=4), api_version=6)
        assert other.topics[0].partition_errors[0].error_code == ErrorCode.unknown_topic_or_partition
        v1 = await conn.send(leader_and_isr(server, "t", {0: (me, [me], [me])}, leader_epoch=4,
                                            controller_epoch=4, version=1), api_version=1)
        assert [(e.topic_name, e.error_code) for e in v1.partition_errors] == \
            [("t", ErrorCode.stale_controller_epoch)]
        assert server.replica_manager.partitions[TopicPartition("t", 0)].leader_epoch == 5


async def test_produce_then_fetch_round_trip(tmp_path: Path, zk_chroot_connect: str) -> None:
    """acks=1 produce gets consecutive base offsets; fetch returns the same records from disk."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "rt")
        r1 = await produce(conn, "rt", 0, batch([b"a", b"b", b"c"]))
        r2 = await produce(conn, "rt", 0, batch([b"d"]))
        assert (r1.error_code, r1.base_offset, r2.error_code, r2.base_offset) == (0, 0, 0, 3)
        d = await fetch(conn, "rt", 0, 0)
        assert d.error_code == 0 and d.high_watermark == 4 and d.log_start_offset == 0
        assert values_of(d.records) == [b"a", b"b", b"c", b"d"]
        d2 = await fetch(conn, "rt", 0, 3)
        assert values_of(d2.records) == [b"d"]
        none = await produce(conn, "rt", 0, batch([b"e"]), acks=0)
        assert none is None
        with trio.fail_after(5):
            while server.replica_manager.partitions[TopicPartition("rt", 0)].log_end_offset < 5:
                await trio.sleep(0.01)


async def test_produce_errors(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Unknown partition, bad CRC, legacy magic, two batches, oversize batch and bad acks each
    get Kafka's error code, and nothing is appended."""
    async with running_broker(tmp_path, zk_chroot_connect, message_max_bytes="2000",
                              auto_create_topics_enable="false") as server, connect(server) as conn:
        await _lead(conn, server, "e")
        assert (await produce(conn, "nope", 0, batch([b"x"]))).error_code == ErrorCode.unknown_topic_or_partition
        corrupt = bytearray(batch([b"x"]))
        corrupt[-1] ^= 0xFF
        assert (await produce(conn, "e", 0, bytes(corrupt))).error_code == ErrorCode.corrupt_message
        legacy = bytearray(batch([b"x"]))
        legacy[16] = 1
        assert (await produce(conn, "e", 0, bytes(legacy))).error_code == ErrorCode.invalid_record
        two = batch([b"x"]) + batch([b"y"])
        assert (await produce(conn, "e", 0, two)).error_code == ErrorCode.invalid_record
        big = batch([b"z" * 5000])
        assert (await produce(conn, "e", 0, big)).error_code == ErrorCode.message_too_large
        assert (await produce(conn, "e", 0, batch([b"x"]), acks=2)).error_code == ErrorCode.invalid_required_acks
        assert server.replica_manager.partitions[TopicPartition("e", 0)].log_end_offset == 0


async def test_not_leader_or_follower(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A follower replica answers NOT_LEADER_OR_FOLLOWER to produce and consumer fetch; a
    partition known only to the metadata cache too."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        me = server.broker_id
        resp = await conn.send(leader_and_isr(server, "f", {0: (2, [2, me], [2, me])}), api_version=6)
        assert resp.topics[0].partition_errors[0].error_code == 0
        assert (await produce(conn, "f", 0, batch([b"x"]))).error_code == ErrorCode.not_leader_or_follower
        assert (await fetch(conn, "f", 0, 0)).error_code == ErrorCode.not_leader_or_follower
        await conn.send(update_metadata([server], "g", {0: (2, [2], [2])}), api_version=7)
        assert (await produce(conn, "g", 0, batch([b"x"]))).error_code == ErrorCode.not_leader_or_follower


async def test_consumer_reads_to_hw_follower_to_leo(tmp_path: Path, zk_chroot_connect: str) -> None:
    """With a follower in the ISR the HW stays put until the follower fetches past it:
    consumers see nothing above the HW, a follower fetch sees up to the LEO and moves the HW."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        me = server.broker_id
        await _lead(conn, server, "hw", isr=(me, 2), replicas=(me, 2))
        assert (await produce(conn, "hw", 0, batch([b"a", b"b"]))).base_offset == 0
        consumer = await fetch(conn, "hw", 0, 0)
        assert consumer.high_watermark == 0 and values_of(consumer.records) == []
        follower = await fetch(conn, "hw", 0, 0, replica_id=2)
        assert values_of(follower.records) == [b"a", b"b"] and follower.high_watermark == 0
        follower2 = await fetch(conn, "hw", 0, 2, replica_id=2)
        assert follower2.high_watermark == 2
        assert values_of((await fetch(conn, "hw", 0, 0)).records) == [b"a", b"b"]


async def test_fetch_byte_limits(tmp_path: Path, zk_chroot_connect: str) -> None:
    """partition_max_bytes smaller than a batch still returns that first batch whole (KIP-74);
    the total max_bytes budget leaves later partitions empty."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "lim", partitions=2)
        for p in (0, 1):
            await produce(conn, "lim", p, batch([b"x" * 1000]))
            await produce(conn, "lim", p, batch([b"y" * 1000]))
        one = await fetch(conn, "lim", 0, 0, partition_max_bytes=10)
        assert values_of(one.records) == [b"x" * 1000]
        resp = await conn.call(ApiKey.FETCH, api_version=12, replica_id=-1, max_wait=0, min_bytes=1,
                               max_bytes=100, isolation_level=0, session_id=0, session_epoch=-1,
                               topics=[{"topic": "lim", "partitions": [
                                   {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20},
                                   {"partition": 1, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}])
        p0, p1 = resp.responses[0].partitions
        assert values_of(p0.records) == [b"x" * 1000]
        assert len(p1.records) == 0 and p1.high_watermark == 2


async def test_fetch_long_poll_wakes_on_produce(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A fetch at the log end waits (max_wait) and returns as soon as a produce lands; with no
    produce it returns empty after max_wait."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "lp")
        t0 = trio.current_time()
        empty = await fetch(conn, "lp", 0, 0, max_wait_ms=300)
        assert len(empty.records) == 0 and trio.current_time() - t0 >= 0.29
        result = {}

        async def poll() -> None:
            async with connect(server) as c2:
                result["d"] = await fetch(c2, "lp", 0, 0, max_wait_ms=10000)
                result["t"] = trio.current_time()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await trio.sleep(0.3)
            assert server.replica_manager.fetch_purgatory.watched(TopicPartition("lp", 0)) == 1
            t_produce = trio.current_time()
            await produce(conn, "lp", 0, batch([b"wake"]))
        assert values_of(result["d"].records) == [b"wake"]
        assert result["t"] - t_produce < 2
        assert server.replica_manager.fetch_purgatory.statistics().completed_delayed >= 1


async def test_offset_out_of_range(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Fetching past the LEO answers OFFSET_OUT_OF_RANGE."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "oor")
        await produce(conn, "oor", 0, batch([b"a"]))
        assert (await fetch(conn, "oor", 0, 5)).error_code == ErrorCode.offset_out_of_range


async def test_acks_all_waits_for_isr_and_not_enough_replicas(tmp_path: Path, zk_chroot_connect: str) -> None:
    """acks=-1 with a follower in the ISR completes only once the follower fetched past the
    batch; with ISR < min.insync.replicas it is refused before the append; a produce nobody
    replicates times out with REQUEST_TIMED_OUT."""
    async with running_broker(tmp_path, zk_chroot_connect, min_insync_replicas="2") as server, \
            connect(server) as conn:
        me = server.broker_id
        await _lead(conn, server, "all", partitions=2, isr=(me, 2), replicas=(me, 2))
        result = {}

        async def producer() -> None:
            async with connect(server) as c2:
                result["r"] = await produce(c2, "all", 0, batch([b"a", b"b"]), acks=-1, timeout_ms=10000)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            await trio.sleep(0.3)
            assert "r" not in result
            assert server.replica_manager.produce_purgatory.delayed == 1
            await fetch(conn, "all", 0, 0, replica_id=2)   # follower gets the batch
            await fetch(conn, "all", 0, 2, replica_id=2)   # ... and acknowledges it
        assert result["r"].error_code == 0 and result["r"].base_offset == 0
        timed_out = await produce(conn, "all", 1, batch([b"c"]), acks=-1, timeout_ms=200)
        assert timed_out.error_code == ErrorCode.request_timed_out
        resp = await conn.send(leader_and_isr(server, "all", {0: (me, [me], [me, 2])}, leader_epoch=1),
                               api_version=6)
        assert resp.topics[0].partition_errors[0].error_code == 0
        refused = await produce(conn, "all", 0, batch([b"d"]), acks=-1)
        assert refused.error_code == ErrorCode.not_enough_replicas
        assert (await produce(conn, "all", 0, batch([b"d"]), acks=1)).error_code == 0


async def test_list_offsets_and_offset_for_leader_epoch(tmp_path: Path, zk_chroot_connect: str) -> None:
    """ListOffsets earliest/latest/by timestamp and OffsetForLeaderEpoch from the epoch cache."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        me = server.broker_id
        await _lead(conn, server, "lo", epoch=0)
        await produce(conn, "lo", 0, batch([b"a", b"b"]))
        await conn.send(leader_and_isr(server, "lo", {0: (me, [me], [me])}, leader_epoch=1), api_version=6)
        await trio.sleep(0.02)
        await produce(conn, "lo", 0, batch([b"c"]))

        async def list_offset(ts: int) -> tuple[int, int, int]:
            resp = await conn.call(ApiKey.LIST_OFFSETS, api_version=7, replica_id=-1, isolation_level=0,
                                   topics=[{"name": "lo", "partitions": [{"partition_index": 0, "timestamp": ts}]}])
            p = resp.topics[0].partitions[0]
            return p.error_code, p.offset, p.leader_epoch

        assert await list_offset(-2) == (0, 0, 0)
        assert await list_offset(-1) == (0, 3, 1)
        assert (await list_offset(0))[:2] == (0, 0)
        assert (await list_offset(2**50))[:2] == (0, -1)

        resp = await conn.call(ApiKey.OFFSET_FOR_LEADER_EPOCH, api_version=4, replica_id=-1, topics=[
            {"topic": "lo", "partitions": [{"partition": 0, "current_leader_epoch": 1, "leader_epoch": 0},
                                           {"partition": 0, "current_leader_epoch": 1, "leader_epoch": 1},
                                           {"partition": 0, "current_leader_epoch": 0, "leader_epoch": 0}]}])
        e0, e1, fenced = resp.topics[0].partitions
        assert (e0.error_code, e0.leader_epoch, e0.end_offset) == (0, 0, 2)
        assert (e1.error_code, e1.leader_epoch, e1.end_offset) == (0, 1, 3)
        assert fenced.error_code == ErrorCode.fenced_leader_epoch


async def test_stop_replica_with_and_without_delete(tmp_path: Path, zk_chroot_connect: str) -> None:
    """StopReplica without delete keeps the log on disk; with delete removes it; a stale v3
    leader epoch is fenced."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "sr", partitions=2, epoch=2)
        fenced = await conn.send(stop_replica(server, "sr", [0], delete=False, leader_epoch=1), api_version=3)
        assert fenced.partition_errors[0].error_code == ErrorCode.fenced_leader_epoch
        keep = await conn.send(stop_replica(server, "sr", [0], delete=False, leader_epoch=2), api_version=3)
        assert keep.error_code == 0 and keep.partition_errors[0].error_code == 0
        assert TopicPartition("sr", 0) not in server.replica_manager.partitions
        assert (tmp_path / "logs-1" / "sr-0").is_dir()
        gone = await conn.send(stop_replica(server, "sr", [0, 1], delete=True, leader_epoch=-2), api_version=3)
        assert [e.error_code for e in gone.partition_errors] == [0, 0]
        with trio.fail_after(5):
            while (tmp_path / "logs-1" / "sr-1").exists():
                await trio.sleep(0.01)
        assert not (tmp_path / "logs-1" / "sr-0").exists()


async def test_retention_runs_in_the_background(tmp_path: Path, zk_chroot_connect: str) -> None:
    """The broker schedules the LogManager's retention pass (log.retention.check.interval.ms):
    with retention.bytes tiny, rolled segments are deleted and the log start offset moves."""
    async with running_broker(tmp_path, zk_chroot_connect, log_retention_check_interval_ms="500",
                              log_segment_bytes="1024", log_retention_bytes="1") as server, \
            connect(server) as conn:
        await _lead(conn, server, "ret")
        for i in range(6):
            assert (await produce(conn, "ret", 0, batch([bytes([i]) * 600]))).error_code == 0
        lg = server.replica_manager.partitions[TopicPartition("ret", 0)].log
        assert lg.log_start_offset == 0 and len(lg.segments) > 1
        with trio.fail_after(10):
            while lg.log_start_offset == 0:
                await trio.sleep(0.05)
        assert (await fetch(conn, "ret", 0, 0)).error_code == ErrorCode.offset_out_of_range


def _idem(values: list[bytes], seq: int, pid: int = 4000, epoch: int = 0) -> bytes:
    import time as _t

    from kafkalike.protocol.record_batch import SimpleRecord, build_batch
    now = int(_t.time() * 1000)
    return build_batch([SimpleRecord(value=v, timestamp=now) for v in values], producer_id=pid,
                       producer_epoch=epoch, base_sequence=seq)


async def test_idempotent_producer_sequences(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A retried batch answers its original offset without a second copy; a gap in sequences
    is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch INVALID_PRODUCER_EPOCH; a new epoch must
    start at 0; the state survives a broker restart (rebuilt from the log's batch headers)."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "idem")
        first = _idem([b"a", b"b"], seq=0)
        assert (await produce(conn, "idem", 0, first)).base_offset == 0
        retry = await produce(conn, "idem", 0, first)
        assert (retry.error_code, retry.base_offset) == (0, 0)
        p = server.replica_manager.partitions[TopicPartition("idem", 0)]
        assert p.log_end_offset == 2
        assert (await produce(conn, "idem", 0, _idem([b"x"], seq=5))).error_code == ErrorCode.out_of_order_sequence_number
        assert (await produce(conn, "idem", 0, _idem([b"c"], seq=2))).base_offset == 2
        assert (await produce(conn, "idem", 0, _idem([b"d"], seq=3, epoch=1))).error_code == \
            ErrorCode.out_of_order_sequence_number
        assert (await produce(conn, "idem", 0, _idem([b"d"], seq=0, epoch=1))).base_offset == 3
        assert (await produce(conn, "idem", 0, _idem([b"e"], seq=4, epoch=0))).error_code == \
            ErrorCode.invalid_producer_epoch
        assert (await produce(conn, "idem", 0, _idem([b"other"], seq=17, pid=4001))).base_offset == 4
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "idem", epoch=1)
        again = await produce(conn, "idem", 0, _idem([b"d"], seq=0, epoch=1))
        assert (again.error_code, again.base_offset) == (0, 3)
        assert server.replica_manager.partitions[TopicPartition("idem", 0)].log_end_offset == 5


async def test_every_served_version_round_trips(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Produce v3-v9, Fetch v4-v12, ListOffsets v1-v7 and OffsetForLeaderEpoch v2-v4 each get
    a well-formed answer of their own version with the right offsets."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "vers")
        for i, v in enumerate(range(3, 10)):
            r = await produce(conn, "vers", 0, batch([f"p{v}".encode()]), version=v)
            assert (r.error_code, r.base_offset) == (0, i)
        for v in range(4, 13):
            d = await fetch(conn, "vers", 0, 2, version=v)
            assert d.error_code == 0 and d.high_watermark == 7
            assert values_of(d.records) == [b"p5", b"p6", b"p7", b"p8", b"p9"]
        for v in range(1, 8):
            resp = await conn.call(ApiKey.LIST_OFFSETS, api_version=v, replica_id=-1, isolation_level=0,
                                   topics=[{"name": "vers", "partitions": [{"partition_index": 0, "timestamp": -1}]}])
            p = resp.topics[0].partitions[0]
            assert (p.error_code, p.offset) == (0, 7)
        for v in range(2, 5):
            resp = await conn.call(ApiKey.OFFSET_FOR_LEADER_EPOCH, api_version=v, replica_id=-1, topics=[
                {"topic": "vers", "partitions": [{"partition": 0, "current_leader_epoch": 0, "leader_epoch": 0}]}])
            e = resp.topics[0].partitions[0]
            assert (e.error_code, e.leader_epoch, e.end_offset) == (0, 0, 7)


async def test_clients_cannot_write_internal_topics(tmp_path: Path, zk_chroot_connect: str) -> None:
    """Produce to __consumer_offsets from a client answers INVALID_TOPIC_EXCEPTION (Kafka's
    rule); the broker's own appends (group coordinator) still work."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "__consumer_offsets")
        r = await produce(conn, "__consumer_offsets", 0, batch([b"x"]))
        assert r.error_code == ErrorCode.invalid_topic_exception
        statuses = await server.replica_manager.append_records(
            1, 1000, [(TopicPartition("__consumer_offsets", 0), memoryview(bytearray(batch([b"y"]))))])
        assert statuses[TopicPartition("__consumer_offsets", 0)].error == ErrorCode.none


async def test_fetch_response_carries_file_slices_not_bytes(tmp_path: Path, zk_chroot_connect: str) -> None:
    """The Fetch response's record data is a FileRecords slice of the segment file (sent with
    os.sendfile), never bytes copied through Python (docs/design.md decision 6)."""
    from kafkalike.broker.socket_server import ConnectionContext
    from kafkalike.client.messages import build_request
    from kafkalike.protocol.codec import encode_request
    from kafkalike.protocol.fetch import FileRecords

    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "zc")
        await produce(conn, "zc", 0, batch([b"a" * 500, b"b" * 500]))
        req = build_request(ApiKey.FETCH, 12, replica_id=-1, max_wait=0, min_bytes=1, max_bytes=1 << 20,
                            isolation_level=0, session_id=0, session_epoch=-1,
                            topics=[{"topic": "zc", "partitions": [
                                {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}])
        frame = encode_request(req, correlation_id=7)
        chunks = await server.apis.handle(memoryview(bytearray(frame[4:])), ConnectionContext("PLAINTEXT", ("x", 0), 1))
        slices = [c for c in chunks if isinstance(c, FileRecords)]
        assert len(slices) == 1
        segment = server.replica_manager.partitions[TopicPartition("zc", 0)].log.active_segment
        assert slices[0].file.fileno() == segment.log.file.fileno() and slices[0].position == 0
        assert all(isinstance(c, (bytes, FileRecords)) and (isinstance(c, FileRecords) or len(c) < 200)
                   for c in chunks)


async def test_fetch_from_a_broker_that_is_not_a_replica(tmp_path: Path, zk_chroot_connect: str) -> None:
    """A follower fetch from a broker outside the replica list answers NOT_LEADER_OR_FOLLOWER
    and moves nothing."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        me = server.broker_id
        await _lead(conn, server, "strangers", isr=(me, 2), replicas=(me, 2))
        await produce(conn, "strangers", 0, batch([b"a"]))
        assert (await fetch(conn, "strangers", 0, 1, replica_id=9)).error_code == ErrorCode.not_leader_or_follower
        assert server.replica_manager.partitions[TopicPartition("strangers", 0)].high_watermark == 0


async def test_list_offsets_by_timestamp_and_max_timestamp(tmp_path: Path, zk_chroot_connect: str) -> None:
    """ListOffsets finds the first offset at or after a timestamp across batches, and -3
    (KIP-734) the record with the largest timestamp."""
    from kafkalike.protocol.record_batch import SimpleRecord, build_batch

    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        await _lead(conn, server, "ts")
        for ts in (1000, 3000, 2000):
            await produce(conn, "ts", 0, build_batch([SimpleRecord(value=b"x", timestamp=ts),
                                                      SimpleRecord(value=b"y", timestamp=ts + 10)]))

        async def lookup(ts: int) -> tuple[int, int]:
            resp = await conn.call(ApiKey.LIST_OFFSETS, api_version=7, replica_id=-1, isolation_level=0,
                                   topics=[{"name": "ts", "partitions": [{"partition_index": 0, "timestamp": ts}]}])
            p = resp.topics[0].partitions[0]
            assert p.error_code == 0
            return p.timestamp, p.offset

        assert await lookup(500) == (1000, 0)
        assert await lookup(1005) == (1010, 1)
        assert await lookup(2500) == (3000, 2)
        assert await lookup(3011) == (-1, -1)
        assert await lookup(-3) == (3010, 3)
