"""The log cleaner and transactions (KIP-98, KIP-534; Kafka's Cleaner with
CleanedTransactionMetadata): aborted records are removed and never shadow committed ones,
markers stay while their transaction has data and then for delete.retention.ms, batches past
the last stable offset are not cleaned, each producer's last batch survives, and the cleaned
.txnindex lists only the aborted transactions that still have data."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkalike.protocol.record_batch import (
    DELETE_HORIZON_FLAG_MASK,
    SimpleRecord,
    build_batch,
    build_end_txn_marker,
    iter_batches,
    read_end_txn_marker,
)
from kafkalike.storage import batch_codec
from kafkalike.storage.file_records import read_slices
from kafkalike.storage.log_cleaner import LogCleaner
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog
from storage_helpers import FakeClock

RETENTION = 60_000
CFG = LogConfig(segment_bytes=100_000, index_interval_bytes=200, cleanup_policy="compact",
                delete_retention_ms=RETENTION, min_cleanable_dirty_ratio=0.0)


class Txns:
    """Writes transactional and plain batches to a log with per-producer sequences."""

    def __init__(self, log: UnifiedLog, clock: FakeClock) -> None:
        self.log, self.clock, self.seq = log, clock, {}  # type: ignore[var-annotated]

    def data(self, pid: int, kvs: list[tuple[bytes, bytes | None]], transactional: bool = True) -> int:
        seq = self.seq.get(pid, 0)
        recs = [SimpleRecord(value=v, key=k, timestamp=self.clock.now) for k, v in kvs]
        raw = build_batch(recs, producer_id=pid, producer_epoch=0, base_sequence=seq, transactional=transactional) \
            if pid >= 0 else build_batch(recs)
        self.seq[pid] = seq + len(kvs)
        self.clock.now += 10
        return self.log.append(bytearray(raw)).first_offset

    def end(self, pid: int, committed: bool) -> int:
        raw = build_end_txn_marker(pid, 0, 0, committed, self.clock.now)
        self.clock.now += 10
        return self.log.append(bytearray(raw), origin="coordinator").first_offset


def batches(log: UnifiedLog) -> list:  # type: ignore[type-arg]
    data = read_slices(log.read(log.log_start_offset, 10**9))
    out = []
    for b in iter_batches(data):
        assert b.is_valid()
        out.append(b)
    return out


def records(log: UnifiedLog) -> list[tuple[int, bytes | None, bytes | None]]:
    return [(r.offset, r.key, r.value) for b in batches(log) if not b.is_control for r in batch_codec.iter_records(b)]


def markers(log: UnifiedLog) -> list[tuple[int, int, bool, int]]:
    """(offset, producer id, committed, records) of each control batch."""
    out = []
    for b in batches(log):
        if b.is_control:
            m = read_end_txn_marker(b)
            out.append((b.base_offset, b.producer_id, bool(m and m.committed), b.records_count))
    return out


def settle(log: UnifiedLog) -> None:
    log.roll()
    log.update_high_watermark(log.log_end_offset)


def test_aborted_records_are_removed_and_do_not_shadow_committed_values(tmp_path: Path) -> None:
    """A committed value of key a survives a later aborted value of a; the aborted records go;
    both markers stay (their transactions still have data) and the ABORT keeps its .txnindex entry."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    w = Txns(log, clock)
    a1 = w.data(1, [(b"a", b"committed-a"), (b"b", b"committed-b")])
    w.end(1, committed=True)
    a2 = w.data(2, [(b"a", b"aborted-a"), (b"c", b"aborted-c")])
    abort_at = w.end(2, committed=False)
    w.data(2, [(b"d", b"committed-d")])
    w.end(2, committed=True)
    settle(log)
    stats = LogCleaner(clock=clock).clean_now(log)
    assert stats.aborted_records_dropped == 2
    kept = records(log)
    assert (a1, b"a", b"committed-a") in kept and (a1 + 1, b"b", b"committed-b") in kept
    assert not [r for r in kept if r[2] and r[2].startswith(b"aborted")]
    assert [(o, p, c) for o, p, c, _ in markers(log)] == [(a1 + 2, 1, True), (abort_at, 2, False), (abort_at + 2, 2, True)]
    entries = [t for s in log.segments for t in s.txn_index.entries]
    assert [(t.producer_id, t.first_offset, t.last_offset) for t in entries] == [(2, a2, abort_at)]
    # read_committed and read_uncommitted now read the same data records
    assert log.collect_aborted_transactions(0, log.log_end_offset)[0].first_offset == a2
    log.close()
    reopened = UnifiedLog.open(tmp_path / "t-0", CFG, had_clean_shutdown=False, clock=clock)
    assert records(reopened) == kept
    assert reopened.producer_state_manager.ongoing_txns == {}  # every transaction still ends at its marker


def test_a_marker_without_data_gets_a_delete_horizon_and_goes_after_delete_retention(tmp_path: Path) -> None:
    """Pass 1 removes the aborted data (marker kept, data was met); pass 2 finds the ABORT marker
    alone and rewrites it with a delete horizon (bit 6, baseTimestamp = now + delete.retention.ms);
    pass 3 after the horizon removes it and its .txnindex entry is gone."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    w = Txns(log, clock)
    w.data(2, [(b"x", b"aborted-x")])
    abort_at = w.end(2, committed=False)
    w.data(2, [(b"y", b"committed-y")])
    w.end(2, committed=True)
    settle(log)
    cleaner = LogCleaner(clock=clock)
    cleaner.clean_now(log)
    ctl = {b.base_offset: b for b in batches(log) if b.is_control}
    assert not ctl[abort_at].has_delete_horizon
    # pass 2 (more data makes the log dirty again)
    w.data(-1, [(b"z", b"plain")])
    settle(log)
    cleaner.clean_now(log)
    ctl = {b.base_offset: b for b in batches(log) if b.is_control}
    b = ctl[abort_at]
    assert b.attributes & DELETE_HORIZON_FLAG_MASK and b.base_timestamp == clock.now + RETENTION
    assert [r.timestamp for r in batch_codec.iter_records(b)] == [b.max_timestamp]  # record time unchanged
    assert not [t for s in log.segments for t in s.txn_index.entries]
    # pass 3 before the horizon keeps it; after it, it goes
    w.data(-1, [(b"z", b"plain2")])
    settle(log)
    cleaner.clean_now(log)
    assert abort_at in {o for o, *_ in markers(log)}
    clock.now += RETENTION + 1
    w.data(-1, [(b"z", b"plain3")])
    settle(log)
    stats = cleaner.clean_now(log)
    assert stats.markers_dropped >= 1
    assert abort_at not in {o for o, *_ in markers(log)}
    assert (abort_at + 1, b"y", b"committed-y") in records(log)


def test_an_ongoing_transaction_is_not_cleaned(tmp_path: Path) -> None:
    """Batches at or past the last stable offset stay as they are, even in inactive segments."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    w = Txns(log, clock)
    w.data(-1, [(b"k", b"old")])
    w.data(-1, [(b"k", b"new")])
    log.roll()
    open_at = w.data(3, [(b"k", b"open-1")])
    log.roll()
    w.data(3, [(b"k", b"open-2")])
    settle(log)
    assert log.last_stable_offset == open_at
    before = records(log)
    LogCleaner(clock=clock).clean_now(log)
    after = records(log)
    assert (0, b"k", b"old") not in after  # below the LSO: compacted
    assert [r for r in after if r[0] >= open_at] == [r for r in before if r[0] >= open_at]


def test_the_last_batch_of_a_producer_stays_empty_so_its_state_survives(tmp_path: Path) -> None:
    """A producer whose last data batch was aborted keeps it as an empty batch (and its marker);
    reopening from the cleaned log restores the producer's epoch and next sequence."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    w = Txns(log, clock)
    w.data(4, [(b"a", b"v1"), (b"b", b"v2")])
    w.end(4, committed=True)
    last = w.data(4, [(b"a", b"aborted")])
    w.end(4, committed=False)
    settle(log)
    LogCleaner(clock=clock).clean_now(log)
    empty = [b for b in batches(log) if b.base_offset == last]
    assert len(empty) == 1 and empty[0].records_count == 0 and empty[0].producer_id == 4
    log.close()
    reopened = UnifiedLog.open(tmp_path / "t-0", CFG, had_clean_shutdown=False, clock=clock)
    entry = reopened.producer_state_manager.producers[4]
    assert entry.batches[-1].last_seq == 2 and entry.current_txn_first_offset == -1


def test_non_transactional_cleaning_is_byte_for_byte_unchanged_by_markers_elsewhere(tmp_path: Path) -> None:
    """Plain batches clean the same with and without transactions in the same log: the plain
    batches' bytes after cleaning are identical in both logs."""
    out = []
    for with_txn in (False, True):
        clock = FakeClock()
        log = UnifiedLog.open(tmp_path / f"t-{int(with_txn)}", CFG, clock=clock)
        w = Txns(log, clock)
        for i in range(6):
            w.data(-1, [(b"k%d" % (i % 3), b"v%d" % i), (b"j", b"w%d" % i)])
        if with_txn:
            log.append(bytearray(build_end_txn_marker(9, 0, 0, False, clock.now)), origin="coordinator")
        settle(log)
        LogCleaner(clock=clock).clean_now(log)
        out.append([bytes(b.view()) for b in batches(log) if b.producer_id < 0])
    assert out[0] == out[1] and out[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 3), st.booleans(),
                          st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c", b"d"]), st.binary(max_size=4)),
                                   min_size=1, max_size=3)),
                min_size=1, max_size=8),
       st.sets(st.integers(0, 7)))
def test_cleaning_keeps_exactly_the_latest_committed_value_per_key(tmp_path_factory, txns, passes) -> None:  # type: ignore[no-untyped-def]
    """For any mix of committed and aborted transactions, cleaned in one pass or in several
    (a pass after each transaction in `passes`), the log's data records are exactly the latest
    committed record per key, at their original offsets."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path_factory.mktemp("h") / "t-0", CFG, clock=clock)
    w = Txns(log, clock)
    latest: dict[bytes, tuple[int, bytes]] = {}
    for n, (pid, committed, kvs) in enumerate(txns):
        first = w.data(pid, list(kvs))
        w.end(pid, committed)
        if committed:
            for i, (k, v) in enumerate(kvs):
                latest[k] = (first + i, v)
        if n in passes:
            settle(log)
            LogCleaner(clock=clock).clean_now(log)
    settle(log)
    LogCleaner(clock=clock).clean_now(log)
    assert {k: (o, v) for o, k, v in records(log)} == latest
    assert sorted(o for o, _, _ in records(log)) == sorted(o for o, _ in latest.values())
    log.close()


def test_kafka_dump_log_segments_reads_cleaned_transactional_segments(tmp_path: Path) -> None:
    """Kafka 3.9's DumpLogSegments reads a cleaned segment: every batch valid, the ABORT marker
    with its delete horizon and its record's original CreateTime, the aborted record gone."""
    import os
    import shutil
    import subprocess

    import pytest

    lib = os.environ.get("KAFKALIKE_KAFKA_LIB")
    if not lib or not shutil.which("java"):
        pytest.skip("set KAFKALIKE_KAFKA_LIB to the Kafka 3.9 jars (and have java)")
    clock = FakeClock()
    d = tmp_path / "t-0"
    log = UnifiedLog.open(d, CFG, clock=clock)
    w = Txns(log, clock)
    w.data(2, [(b"x", b"aborted-x")])
    abort_at = w.end(2, committed=False)
    marker_ts = clock.now - 10
    w.data(2, [(b"y", b"committed-y")])
    w.end(2, committed=True)
    settle(log)
    cleaner = LogCleaner(clock=clock)
    cleaner.clean_now(log)
    w.data(-1, [(b"z", b"plain")])
    settle(log)
    cleaner.clean_now(log)
    horizon = clock.now + RETENTION
    log.close()
    files = sorted(str(p) for p in d.iterdir() if p.suffix == ".log")
    out = subprocess.run(
        ["java", "-cp", f"{lib}/*", "kafka.tools.DumpLogSegments", "--deep-iteration", "--print-data-log",
         "--files", ",".join(files)], capture_output=True, text=True, timeout=120).stdout
    assert out.count("isvalid: true") == 4 and "isvalid: false" not in out and "Exception" not in out
    assert f"baseOffset: {abort_at} lastOffset: {abort_at} count: 1" in out
    assert f"isControl: true deleteHorizonMs: OptionalLong[{horizon}]" in out
    assert f"| offset: {abort_at} CreateTime: {marker_ts} " in out and "endTxnMarker: ABORT" in out
    assert "aborted-x" not in out and "payload: committed-y" in out


def test_a_producer_aborted_in_a_clean_segment_still_compacts_its_later_commits(tmp_path: Path) -> None:
    """The offset map of a second pass covers only the dirty segments: a producer's aborted
    transaction ended in an already-cleaned segment does not make its later committed records
    look aborted, so they still shadow the key's older value."""
    clock = FakeClock()
    log = UnifiedLog.open(tmp_path / "t-0", CFG, clock=clock)
    w = Txns(log, clock)
    old = w.data(-1, [(b"k", b"old")])
    w.data(5, [(b"x", b"aborted")])
    w.end(5, committed=False)
    settle(log)
    cleaner = LogCleaner(clock=clock)
    cleaner.clean_now(log)
    new = w.data(5, [(b"k", b"new")])
    w.end(5, committed=True)
    settle(log)
    stats = cleaner.clean_now(log)
    assert stats.first_dirty_offset > old
    assert [(o, v) for o, k, v in records(log) if k == b"k"] == [(new, b"new")]
