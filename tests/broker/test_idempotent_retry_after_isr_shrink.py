"""The broker's side of the chaos run's duplicate (docs/chaos.md, "Results: local backend"): an
idempotent batch appended just before the ISR shrank below min.insync.replicas is answered
NOT_ENOUGH_REPLICAS_AFTER_APPEND; its retries are refused NOT_ENOUGH_REPLICAS while the ISR is
short; once the ISR is full again a retry under the same (producer id, epoch) is answered with
the original offset and not written twice. A batch behind a refused one is
OUT_OF_ORDER_SEQUENCE_NUMBER, and the same records re-sent under a bumped epoch from sequence 0
are a new append, as in Kafka (KIP-98: deduplication holds within one epoch): that is what
librdkafka's epoch bump on OUT_OF_ORDER_SEQUENCE_NUMBER does (confluentinc/librdkafka#4953)."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from kafkalike.storage import TopicPartition
from tests.broker.broker_helpers import connect, fetch, leader_and_isr, produce, running_broker

PID = 7000


def idem(values: list[bytes], seq: int, epoch: int = 0) -> bytes:
    now = int(time.time() * 1000)
    return build_batch([SimpleRecord(value=v, timestamp=now) for v in values], producer_id=PID,
                       producer_epoch=epoch, base_sequence=seq)


async def test_retry_after_isr_shrink_and_expand_is_answered_with_the_original_offset(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """Appended, ISR shrinks (NOT_ENOUGH_REPLICAS_AFTER_APPEND), retried while short
    (NOT_ENOUGH_REPLICAS), retried after the ISR is full again: original offset, one copy."""
    async with running_broker(tmp_path, zk_chroot_connect, min_insync_replicas="2") as server, \
            connect(server) as conn:
        me = server.broker_id
        resp = await conn.send(leader_and_isr(server, "dup", {0: (me, [me, 2], [me, 2])}), api_version=6)
        assert resp.topics[0].partition_errors[0].error_code == 0
        p = server.replica_manager.partitions[TopicPartition("dup", 0)]
        a = idem([b"a0", b"a1"], seq=0)
        result = {}

        async def first_send() -> None:
            async with connect(server) as c2:
                result["r"] = await produce(c2, "dup", 0, a, acks=-1, timeout_ms=10000)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first_send)
            while p.log_end_offset < 2:
                await trio.sleep(0.01)
            # the follower is cut off: the ISR shrinks to the leader alone (a new state)
            resp = await conn.send(leader_and_isr(server, "dup", {0: (me, [me], [me, 2])}, leader_epoch=1),
                                   api_version=6)
            assert resp.topics[0].partition_errors[0].error_code == 0
        assert result["r"].error_code == ErrorCode.not_enough_replicas_after_append
        assert p.log_end_offset == 2

        short = await produce(conn, "dup", 0, a, acks=-1)
        assert short.error_code == ErrorCode.not_enough_replicas
        behind = await produce(conn, "dup", 0, idem([b"c"], seq=3), acks=-1)  # seq 2 never arrived
        assert behind.error_code == ErrorCode.not_enough_replicas  # min ISR is checked first, as in Kafka
        assert p.log_end_offset == 2

        # healed: the follower is back in the ISR
        resp = await conn.send(leader_and_isr(server, "dup", {0: (me, [me, 2], [me, 2])}, leader_epoch=2),
                               api_version=6)
        assert resp.topics[0].partition_errors[0].error_code == 0
        await fetch(conn, "dup", 0, 2, replica_id=2)  # the follower has everything
        retry = await produce(conn, "dup", 0, a, acks=-1)
        assert (retry.error_code, retry.base_offset) == (0, 0)
        assert p.log_end_offset == 2  # not written twice

        # a batch behind one that never arrived: OUT_OF_ORDER_SEQUENCE_NUMBER (librdkafka then
        # bumps the epoch) ...
        assert (await produce(conn, "dup", 0, idem([b"c"], seq=3), acks=1)).error_code == \
            ErrorCode.out_of_order_sequence_number
        # ... and re-sends what it had not seen acknowledged under the new epoch from seq 0:
        # the broker cannot know these records are already in the log, and appends them.
        again = await produce(conn, "dup", 0, idem([b"a0", b"a1"], seq=0, epoch=1), acks=1)
        assert (again.error_code, again.base_offset) == (0, 2)
        assert p.log_end_offset == 4
