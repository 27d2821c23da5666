"""ReplicaAlterLogDirsThread.do_work on real logs of a real LogManager with two log dirs: the
future log follows a current log that is truncated and rewritten under a new leader epoch while
the copy is under way (it truncates where the epochs diverge, as a follower does), and the log
swapped in holds exactly the current log's batches."""

from __future__ import annotations

from pathlib import Path

from kafkalike.broker.replica_alter_log_dirs_thread import ReplicaAlterLogDirsThread, whole_batches
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from kafkalike.storage import LogConfig, TopicPartition
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_manager import LogManager


def _batch(tag: bytes) -> bytearray:
    return bytearray(build_batch([SimpleRecord(value=tag + b"-%d" % i, key=None, timestamp=1_700_000_000_000)
                                  for i in range(2)]))


def _bytes(lg: object) -> bytes:
    return read_slices(lg.read(lg.log_start_offset, 1 << 24, max_offset=lg.log_end_offset))  # type: ignore[attr-defined]


def test_the_future_log_follows_a_truncation_of_the_current_log_and_the_swap_holds_its_batches(tmp_path: Path) -> None:
    d1, d2 = tmp_path / "a", tmp_path / "b"
    lm = LogManager([d1, d2], LogConfig())
    lm.startup()
    tp = TopicPartition("t", 0)
    current = lm.get_or_create_log(tp)
    dest = d2 if current.dir.parent == d1 else d1
    for i in range(10):
        current.append(_batch(b"e0-%d" % i), leader_epoch=0)
    current.update_high_watermark(current.log_end_offset)
    lm.create_future_log(tp, dest)
    swapped: list[object] = []
    thread = ReplicaAlterLogDirsThread(lm, lambda _tp, new: swapped.append(new), fetch_max_bytes=300)
    thread.add_partition(tp)
    assert thread.do_work(tp)  # a part copied (300 bytes per round)
    fut = lm.future_logs[tp]
    assert 0 < fut.log_end_offset < current.log_end_offset
    copied = fut.log_end_offset
    # a new leader: the current log loses everything from offset 2 and takes epoch-1 batches
    current.truncate_to(2)
    for i in range(6):
        current.append(_batch(b"e1-%d" % i), leader_epoch=1)
    current.update_high_watermark(current.log_end_offset)
    rounds = 0
    while not swapped:
        thread.do_work(tp)
        rounds += 1
        assert rounds < 100
    new = lm.get_log(tp)
    assert swapped == [new] and new.dir == dest / "t-0" and tp not in lm.future_logs
    assert copied > 2
    assert new.log_end_offset == 14 and _bytes(new) == _bytes(current)
    assert [e[0] for e in new.leader_epoch_cache.entries] == [0, 1]
    assert thread.stats.moves_completed == 1
    lm.shutdown()


def test_whole_batches_drops_a_partial_tail_and_groups_within_the_segment_size() -> None:
    a, b, c = bytes(_batch(b"a")), bytes(_batch(b"b")), bytes(_batch(b"c"))
    data = a + b + c[:20]
    assert whole_batches(data, 1 << 20) == [(0, len(a) + len(b))]
    assert whole_batches(data, len(a)) == [(0, len(a)), (len(a), len(a) + len(b))]
    assert whole_batches(c[:11], 100) == []
