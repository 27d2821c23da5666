"""Serving Fetches of partitions with nothing new (issue 24): the per-partition work of a
follower or consumer fetch at the log end offset / high watermark. Real components, no broker
process: a LogManager on tmp_path, a ReplicaManager leading the partitions (every follower in
the ISR, so no ISR write and no ZooKeeper is needed), FetchManager sessions. Work is counted
with a profile hook (calls of the storage read path, of the HW recomputation, of the follower
fetch state update), never timed."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import trio

from kafkalike.broker.delayed_fetch import FetchPartitionInfo
from kafkalike.broker.fetch_session import FetchManager, FetchRequestPartition, FetchSessionCache
from kafkalike.broker.metadata_cache import MetadataCache
from kafkalike.broker.partition import Partition, PartitionState
from kafkalike.broker.replica_manager import FetchPartitionData, ReplicaManager, ReplicaStateChange
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from kafkalike.storage import TopicPartition
from kafkalike.storage.log_manager import LogManager
from kafkalike.storage.log_segment import LogSegment
from kafkalike.storage.unified_log import UnifiedLog
from tests.broker.broker_helpers import make_config

ME, FOLLOWER = 1, 2
TOPIC = "at-end"
MAX = 1 << 20


@asynccontextmanager
async def leading(tmp_path: Path, partitions: int, leader_epoch: int = 3) -> AsyncIterator[ReplicaManager]:
    """A ReplicaManager of broker 1 leading ``partitions`` partitions of TOPIC (replicas and
    ISR 1, 2; one 3-record batch each); shut down and its logs closed when the block ends."""
    config = make_config(tmp_path, "127.0.0.1:1/unused", broker_id=ME)
    log_manager = LogManager(config.log_dirs)
    log_manager.startup(broker_id=ME, cluster_id="at-end")
    try:
        async with trio.open_nursery() as nursery:
            no_zookeeper: Any = None  # every follower is in the ISR: no ISR write, topic config given below
            rm = ReplicaManager(config, ME, log_manager, MetadataCache(broker_id=ME), no_zookeeper, nursery,
                                broker_epoch=lambda: 10)
            rm.topic_configs[TOPIC] = {}
            state = PartitionState(leader=ME, leader_epoch=leader_epoch, isr=(ME, FOLLOWER),
                                   replicas=(ME, FOLLOWER), partition_epoch=0, controller_epoch=1)
            errors = await rm.become_leader_or_follower(
                [ReplicaStateChange(TopicPartition(TOPIC, i), None, state) for i in range(partitions)], {})
            assert set(errors.values()) == {ErrorCode.none}
            for i in range(partitions):
                rm.partitions[TopicPartition(TOPIC, i)].append_records_to_leader(records(3), 1, 1)
            try:
                yield rm
            finally:
                with trio.CancelScope(shield=True):
                    await rm.shutdown()
                nursery.cancel_scope.cancel()
    finally:
        log_manager.shutdown()


def records(n: int, **kw: Any) -> memoryview:
    return memoryview(bytearray(build_batch([SimpleRecord(value=b"v%d" % i) for i in range(n)], **kw)))


def tps(n: int) -> list[TopicPartition]:
    return [TopicPartition(TOPIC, i) for i in range(n)]


def at(offset: int, n: int, epoch: int = 3, log_start: int = 0) -> list[FetchPartitionInfo]:
    """A follower's fetch of partitions 0..n-1 at ``offset``."""
    return [FetchPartitionInfo(tp, offset, MAX, epoch, log_start) for tp in tps(n)]


@contextmanager
def counting(*functions: Callable[..., Any]) -> Iterator[Counter[str]]:
    """Count the calls of ``functions`` (by their code objects) made within the block."""
    codes = {f.__code__: f.__qualname__ for f in functions}
    calls: Counter[str] = Counter()

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in codes:
            calls[codes[frame.f_code]] += 1

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield calls
    finally:
        sys.setprofile(previous)


READ_PATH = (LogSegment.read, UnifiedLog._segment_index_for, LogSegment.translate_offset,
             Partition.maybe_increment_leader_hw)


async def test_a_follower_fetch_at_the_log_end_offset_reads_no_segment_and_reuses_its_answers(
        tmp_path: Path) -> None:
    async with leading(tmp_path, 40) as rm:
        first = rm.read_from_local_log(at(3, 40), MAX, FOLLOWER)  # the follower caught up: every HW moves
        assert [(d.error, d.high_watermark, d.last_stable_offset, d.log_start_offset, d.size) for d in first] \
            == [(ErrorCode.none, 3, 3, 0, 0)] * 40
        with counting(*READ_PATH, FetchPartitionData.__init__) as calls:
            again = rm.read_from_local_log(at(3, 40), MAX, FOLLOWER)
            consumer = rm.read_from_local_log([FetchPartitionInfo(tp, 3, MAX) for tp in tps(40)], MAX, -1)
        assert calls == Counter()  # no segment or index lookup, no HW recomputation, no new answer object
        assert all(a is b for a, b in zip(again, first))
        assert all(a is b for a, b in zip(consumer, first))  # the consumer at the HW gets the same answer


async def test_a_follower_catching_up_moves_the_high_watermark_and_the_answers_follow_it(tmp_path: Path) -> None:
    async with leading(tmp_path, 2) as rm:
        p0 = rm.partitions[TopicPartition(TOPIC, 0)]
        assert p0.high_watermark == 0
        with counting(Partition.maybe_increment_leader_hw) as calls:
            caught_up = rm.read_from_local_log(at(3, 2), MAX, FOLLOWER)
        assert calls["Partition.maybe_increment_leader_hw"] == 2  # the follower's LEO moved from -1 to 3
        assert [d.high_watermark for d in caught_up] == [3, 3] and p0.high_watermark == 3
        p0.append_records_to_leader(records(2), 1, 1)
        behind = rm.read_from_local_log(at(3, 2), MAX, FOLLOWER)
        assert behind[0].size > 0 and behind[0].high_watermark == 3 and behind[1].size == 0
        ahead = rm.read_from_local_log([FetchPartitionInfo(TopicPartition(TOPIC, 0), 5, MAX, 3, 0)], MAX, FOLLOWER)
        assert (ahead[0].high_watermark, ahead[0].size) == (5, 0) and p0.high_watermark == 5
        assert ahead[0] is not behind[1] and p0.empty_fetch_answer is ahead[0]


async def test_a_moved_log_start_offset_or_an_open_transaction_shows_in_the_next_answer(tmp_path: Path) -> None:
    async with leading(tmp_path, 2) as rm:
        rm.read_from_local_log(at(3, 2), MAX, FOLLOWER)
        p0, p1 = rm.partitions[TopicPartition(TOPIC, 0)], rm.partitions[TopicPartition(TOPIC, 1)]
        p0.log.delete_records_before(2)
        p1.append_records_to_leader(records(2, producer_id=9, producer_epoch=0, base_sequence=0,
                                            transactional=True), 1, 1)
        answers = rm.read_from_local_log(at(3, 1) + [FetchPartitionInfo(p1.tp, 5, MAX, 3, 0)], MAX, FOLLOWER)
        assert (answers[0].log_start_offset, answers[0].high_watermark, answers[0].size) == (2, 3, 0)
        assert (answers[1].high_watermark, answers[1].last_stable_offset) == (5, 3)  # the open transaction
        committed = rm.read_from_local_log([FetchPartitionInfo(p1.tp, 3, MAX)], MAX, -1, isolation_level=1)
        assert (committed[0].error, committed[0].size, committed[0].aborted_transactions) == (ErrorCode.none, 0, ())


async def test_fetches_at_the_log_end_offset_keep_every_error(tmp_path: Path) -> None:
    async with leading(tmp_path, 1) as rm:
        tp = TopicPartition(TOPIC, 0)

        def fetch(offset: int, epoch: int, replica: int = FOLLOWER, partition: TopicPartition = tp) -> ErrorCode:
            return rm.read_from_local_log([FetchPartitionInfo(partition, offset, MAX, epoch, 0)], MAX, replica)[0].error
        assert fetch(3, 3) == ErrorCode.none
        assert fetch(3, 2) == ErrorCode.fenced_leader_epoch
        assert fetch(3, 4) == ErrorCode.unknown_leader_epoch
        assert fetch(3, 3, replica=7) == ErrorCode.not_leader_or_follower  # not a replica of the partition
        assert fetch(4, 3) == ErrorCode.offset_out_of_range
        assert fetch(3, -1, partition=TopicPartition(TOPIC, 5)) == ErrorCode.unknown_topic_or_partition
        rm.partitions[tp].make_follower(PartitionState(leader=FOLLOWER, leader_epoch=4, isr=(ME, FOLLOWER),
                                                       replicas=(ME, FOLLOWER), partition_epoch=1))
        assert fetch(3, 4) == ErrorCode.not_leader_or_follower
        assert fetch(3, -1) == ErrorCode.not_leader_or_follower


async def test_a_long_poll_that_expires_updates_the_follower_fetch_state_once_and_reads_again(
        tmp_path: Path) -> None:
    async with leading(tmp_path, 30) as rm:
        rm.read_from_local_log(at(3, 30), MAX, FOLLOWER)
        with counting(Partition.update_follower_fetch_state, ReplicaManager._bytes_available, *READ_PATH) as calls:
            answer = await rm.fetch_messages(FOLLOWER, 20, 1, MAX, 0, at(3, 30))
        assert rm.fetch_purgatory.expired == 1 and rm.fetch_purgatory.watchers == {}
        # fetch state: the first read only (Kafka's readFromPurgatory does not update it); one
        # DelayedFetch check once the keys are watched (the read was the first); no segment read
        assert calls == Counter({"Partition.update_follower_fetch_state": 30, "ReplicaManager._bytes_available": 30})
        assert [(d.error, d.high_watermark, d.size) for d in answer] == [(ErrorCode.none, 3, 0)] * 30


@asynccontextmanager
async def long_poll(rm: ReplicaManager, partitions: int, min_bytes: int = 1
                    ) -> AsyncIterator[list[list[FetchPartitionData]]]:
    """A follower's long poll (30 s) of partitions 0..n-1 at offset 3, waiting in the Fetch
    purgatory while the block runs; its answer is appended to the yielded list when it
    completes (the block must complete it: 20 s guard)."""
    rm.read_from_local_log(at(3, partitions), MAX, FOLLOWER)
    got: list[list[FetchPartitionData]] = []

    async def poll() -> None:
        got.append(await rm.fetch_messages(FOLLOWER, 30_000, min_bytes, MAX, 0, at(3, partitions)))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            while rm.fetch_purgatory.delayed == 0:
                await trio.sleep(0.001)
            yield got


async def test_a_long_poll_at_the_log_end_offset_is_woken_by_an_append(tmp_path: Path) -> None:
    async with leading(tmp_path, 3) as rm:
        async with long_poll(rm, 3) as got:
            rm.partitions[TopicPartition(TOPIC, 1)].append_records_to_leader(records(1), 1, 1)
            rm.fetch_purgatory.check_and_complete(TopicPartition(TOPIC, 1))
        assert [d.size > 0 for d in got[0]] == [False, True, False]
        assert rm.fetch_purgatory.expired == 0 and rm.fetch_purgatory.completed_delayed == 1


async def test_a_long_poll_woken_by_an_append_reads_the_new_batch_once(tmp_path: Path) -> None:
    """With min_bytes 1 the purgatory check answers from the offsets alone (Kafka's
    DelayedFetch compares positions), so the woken fetch reads the segment once, to answer:
    it read twice before (once to count the bytes, once on completion)."""
    async with leading(tmp_path, 1) as rm:
        tp = TopicPartition(TOPIC, 0)
        async with long_poll(rm, 1) as got:
            rm.partitions[tp].append_records_to_leader(records(1), 1, 1)
            with counting(LogSegment.read) as calls:
                assert rm.fetch_purgatory.check_and_complete(tp) == 1
        assert calls == Counter({"LogSegment.read": 1})
        assert got[0][0].size > 0


async def test_a_long_poll_with_min_bytes_above_a_batch_header_waits_until_that_many_bytes(tmp_path: Path) -> None:
    """A min_bytes larger than one batch header still counts the readable bytes (a read per
    check) and completes only once they reach it."""
    async with leading(tmp_path, 1) as rm:
        tp = TopicPartition(TOPIC, 0)
        one_batch = len(records(1))
        async with long_poll(rm, 1, min_bytes=3 * one_batch) as got:
            for expected in (0, 0, 1):
                rm.partitions[tp].append_records_to_leader(records(1), 1, 1)
                assert rm.fetch_purgatory.check_and_complete(tp) == expected
        assert got[0][0].size == 3 * one_batch


async def test_an_incremental_fetch_answers_only_the_partitions_with_something_new(tmp_path: Path) -> None:
    async with leading(tmp_path, 20) as rm:
        manager = FetchManager(FetchSessionCache(4))
        full = {tp: FetchRequestPartition(3, MAX, 3, 0) for tp in tps(20)}

        async def fetch(ctx: Any) -> Any:
            infos = [FetchPartitionInfo(tp, r.fetch_offset, r.max_bytes, r.current_leader_epoch, r.log_start_offset)
                     for tp, r in ctx.partitions()]
            results = await rm.fetch_messages(FOLLOWER, 0, 1, MAX, 0, infos)
            return ctx.update_and_generate_response({d.tp: d for d in results})
        session_id, answered = await fetch(manager.new_context(12, 0, 0, True, full, [], 0))
        assert session_id != 0 and len(answered) == 20
        _, answered = await fetch(manager.new_context(12, session_id, 1, True, {}, [], 0))
        assert answered == []  # nothing new anywhere
        tp7 = TopicPartition(TOPIC, 7)
        rm.partitions[tp7].append_records_to_leader(records(2), 1, 1)
        _, answered = await fetch(manager.new_context(12, session_id, 2, True, {}, [], 0))
        assert [(tp, d.size > 0) for tp, d in answered] == [(tp7, True)]
        _, answered = await fetch(manager.new_context(12, session_id, 3, True, {tp7: FetchRequestPartition(5, MAX, 3, 0)},
                                                      [], 0))
        assert [(tp, d.high_watermark, d.size) for tp, d in answered] == [(tp7, 5, 0)]  # its HW moved
        session = manager.cache.get(session_id)
        assert session is not None and list(session.partitions)[-1] == tp7  # answered partitions go last


async def test_shutdown_checks_a_waiting_follower_fetch_once_not_once_per_partition(tmp_path: Path) -> None:
    # a follower's long poll of n partitions is watched under n keys: completing the purgatory
    # key by key at shutdown checked it n times over its n partitions (85 s of a broker's
    # shutdown at 10,000 partitions)
    async with leading(tmp_path, 200) as rm:
        rm.read_from_local_log(at(3, 200), MAX, FOLLOWER)
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rm.fetch_messages, FOLLOWER, 30_000, 1, MAX, 0, at(3, 200))
                while rm.fetch_purgatory.delayed == 0:
                    await trio.sleep(0.001)
                with counting(ReplicaManager._bytes_available) as calls:
                    await rm.shutdown()
                assert rm.fetch_purgatory.delayed == 1  # nothing new: it still waits
                nursery.cancel_scope.cancel()
        assert calls == Counter({"ReplicaManager._bytes_available": 200})
