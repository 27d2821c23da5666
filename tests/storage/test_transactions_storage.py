"""The partition side of transactions in storage (KIP-98; Kafka's ProducerStateManager,
TransactionIndex, UnifiedLog.lastStableOffset / collectAbortedTransactions): open transactions
hold the last stable offset back, markers end them (with producer- and coordinator-epoch
fencing), an ABORT marker writes a 34-byte .txnindex entry in Kafka's format, and all of it
comes back from the batches after a clean or unclean restart and after a truncation."""

from __future__ import annotations

import re
import struct
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.record_batch import (
    RecordBatch,
    SimpleRecord,
    build_batch,
    build_end_txn_marker,
    read_end_txn_marker,
)
from kafkalike.storage import LogConfig, UnifiedLog
from kafkalike.storage.producer_state_manager import ProducerStateError, ProducerStateManager
from kafkalike.storage.transaction_index import (
    ENTRY_SIZE,
    AbortedTxn,
    TransactionIndex,
    decode_entries,
    encode_entry,
)

NOW = int(time.time() * 1000)


def _txn_batch(pid: int, seq: int, n: int = 2, epoch: int = 0, transactional: bool = True) -> bytearray:
    recs = [SimpleRecord(value=f"p{pid}-{seq + i}".encode(), key=b"k", timestamp=NOW) for i in range(n)]
    return bytearray(build_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                                 transactional=transactional))


def _marker(pid: int, committed: bool, coordinator_epoch: int = 0, epoch: int = 0) -> bytearray:
    return bytearray(build_end_txn_marker(pid, epoch, coordinator_epoch, committed, NOW))


def _open(path: Path, **kw: object) -> UnifiedLog:
    return UnifiedLog.open(path, LogConfig(), **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- control records
def test_end_txn_marker_batch_is_a_transactional_control_batch_in_kafka_layout() -> None:
    raw = build_end_txn_marker(42, 3, 7, True, NOW)
    b = RecordBatch(raw)
    b.validate()
    assert (b.producer_id, b.producer_epoch, b.base_sequence, b.is_control, b.is_transactional) == (42, 3, -1, True, True)
    marker = read_end_txn_marker(b)
    assert marker is not None and marker.committed and marker.coordinator_epoch == 7
    # the key is ControlRecordType (version 0, type 1 COMMIT), the value EndTransactionMarker (version 0, epoch 7)
    assert b"\x00\x00\x00\x01" in raw and b"\x00\x00\x00\x00\x00\x07" in raw
    abort = read_end_txn_marker(RecordBatch(build_end_txn_marker(42, 3, 7, False, NOW)))
    assert abort is not None and not abort.committed


# ---------------------------------------------------------------- ProducerStateManager
def test_a_transactional_batch_opens_a_transaction_and_its_marker_ends_it() -> None:
    psm = ProducerStateManager("t-0")
    psm.update(1, 0, 0, 1, 10, 11, is_transactional=True)
    psm.update(1, 0, 2, 3, 14, 15, is_transactional=True)  # continues the same transaction
    assert psm.producers[1].current_txn_first_offset == 10
    assert psm.first_unstable_offset == 10
    done = psm.complete_txn(1, 0, 5, committed=False, offset=16)
    assert done is not None and (done.first_offset, done.last_offset, done.is_aborted) == (10, 16, True)
    assert psm.producers[1].current_txn_first_offset == -1 and psm.producers[1].coordinator_epoch == 5
    assert psm.first_unstable_offset == 10  # the marker is not below the high watermark yet
    psm.on_high_watermark_updated(17)
    assert psm.first_unstable_offset is None


def test_last_stable_offset_after_a_transaction_is_the_next_open_one_of_another_producer() -> None:
    psm = ProducerStateManager("t-0")
    psm.update(1, 0, 0, 0, 0, 0, is_transactional=True)
    psm.update(2, 0, 0, 0, 1, 1, is_transactional=True)
    done = psm.complete_txn(1, 0, 0, committed=False, offset=2)
    assert done is not None
    # computed as the log does it before completing: producer 2's transaction still open at 1
    psm2 = ProducerStateManager("t-0")
    psm2.update(1, 0, 0, 0, 0, 0, is_transactional=True)
    psm2.update(2, 0, 0, 0, 1, 1, is_transactional=True)
    assert psm2.last_stable_offset_after(done) == 1
    psm3 = ProducerStateManager("t-0")
    psm3.update(1, 0, 0, 0, 0, 0, is_transactional=True)
    assert psm3.last_stable_offset_after(done) == 3


def test_markers_from_an_older_coordinator_or_producer_epoch_are_fenced() -> None:
    psm = ProducerStateManager("t-0")
    psm.update(1, 2, 0, 0, 0, 0, is_transactional=True)
    psm.complete_txn(1, 2, 4, committed=True, offset=1)
    with pytest.raises(ProducerStateError) as exc:
        psm.check_end_txn_marker(1, 2, 3)
    assert exc.value.error_code == ErrorCode.transaction_coordinator_fenced
    with pytest.raises(ProducerStateError) as exc:
        psm.check_end_txn_marker(1, 1, 4)
    assert exc.value.error_code == ErrorCode.invalid_producer_epoch
    psm.check_end_txn_marker(1, 2, 4)  # same epochs: accepted
    psm.check_end_txn_marker(1, 3, 9)  # a newer coordinator (epoch bumped on abort): accepted


def test_a_plain_batch_inside_an_open_transaction_is_invalid_txn_state() -> None:
    psm = ProducerStateManager("t-0")
    psm.update(1, 0, 0, 0, 0, 0, is_transactional=True)
    with pytest.raises(ProducerStateError) as exc:
        psm.check(1, 0, 1, 1, is_transactional=False)
    assert exc.value.error_code == ErrorCode.invalid_txn_state
    psm.check(1, 0, 1, 1, is_transactional=True)


# ---------------------------------------------------------------- TransactionIndex
aborted_txns = st.builds(AbortedTxn, st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1),
                         st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))


@given(st.lists(aborted_txns, max_size=20), st.integers(0, ENTRY_SIZE - 1))
def test_txn_index_codec_round_trips_and_ignores_a_torn_tail(txns: list[AbortedTxn], torn: int) -> None:
    data = b"".join(encode_entry(t) for t in txns)
    assert len(data) == ENTRY_SIZE * len(txns)
    tail = encode_entry(AbortedTxn(1, 2, 3, 4))[:torn]
    assert decode_entries(data + tail) == txns


def test_txn_index_entry_is_kafkas_34_byte_layout(tmp_path: Path) -> None:
    idx = TransactionIndex(tmp_path / "00000000000000000000.txnindex", 0)
    idx.append(AbortedTxn(producer_id=9, first_offset=3, last_offset=8, last_stable_offset=9))
    raw = idx.path.read_bytes()
    assert raw == struct.pack(">hqqqq", 0, 9, 3, 8, 9)
    with pytest.raises(ValueError):
        idx.append(AbortedTxn(9, 9, 8, 9))  # last offsets must increase
    assert TransactionIndex(idx.path, 0).collect_aborted_txns(0, 100).aborted == (AbortedTxn(9, 3, 8, 9),)
    assert TransactionIndex(idx.path, 0).collect_aborted_txns(9, 100).aborted == ()


# ---------------------------------------------------------------- UnifiedLog
def _aborted_then_open(log: UnifiedLog) -> None:
    """offsets 0-1 pid 1 (aborted by the marker at 2), 3-4 pid 2 (committed at 5), 6-7 pid 3 (open)."""
    log.append(_txn_batch(1, 0))
    log.append(_marker(1, committed=False), origin="coordinator")
    log.append(_txn_batch(2, 0))
    log.append(_marker(2, committed=True), origin="coordinator")
    log.append(_txn_batch(3, 0))
    log.update_high_watermark(log.log_end_offset)


def test_log_lso_stops_at_an_open_transaction_and_abort_markers_fill_the_txnindex(tmp_path: Path) -> None:
    log = _open(tmp_path / "t-0")
    log.append(_txn_batch(1, 0))
    log.update_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 0
    log.append(_marker(1, committed=False), origin="coordinator")
    assert log.last_stable_offset == 0  # marker not replicated yet
    log.update_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 3
    log.append(_txn_batch(2, 0))
    log.append(_marker(2, committed=True), origin="coordinator")
    log.append(_txn_batch(3, 0))
    log.update_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 6
    assert log.collect_aborted_transactions(0, log.last_stable_offset) == [AbortedTxn(1, 0, 2, 3)]
    assert log.collect_aborted_transactions(3, log.last_stable_offset) == []
    assert (tmp_path / "t-0" / "00000000000000000000.txnindex").read_bytes() == struct.pack(">hqqqq", 0, 1, 0, 2, 3)
    log.close()


@pytest.mark.parametrize("clean", [True, False])
def test_reopening_the_log_rebuilds_lso_and_aborted_transactions(tmp_path: Path, clean: bool) -> None:
    d = tmp_path / "t-0"
    log = _open(d)
    _aborted_then_open(log)
    hw = log.high_watermark
    if clean:
        log.close()
    else:
        log.close_handlers()
    again = _open(d, had_clean_shutdown=clean)
    again.update_high_watermark(hw)
    assert again.last_stable_offset == 6
    assert again.collect_aborted_transactions(0, 6) == [AbortedTxn(1, 0, 2, 3)]
    assert again.producer_state_manager.producers[3].current_txn_first_offset == 6
    again.close()


def test_a_torn_or_missing_txnindex_is_rebuilt_from_the_batches(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = _open(d)
    _aborted_then_open(log)
    log.close_handlers()
    idx = d / "00000000000000000000.txnindex"
    idx.write_bytes(idx.read_bytes()[:20])  # torn write
    again = _open(d)
    assert idx.read_bytes() == struct.pack(">hqqqq", 0, 1, 0, 2, 3)
    again.close()
    idx.unlink()
    for snap in d.glob("*.snapshot"):  # a snapshot at the log end would cover the segment (Kafka's rule too)
        snap.unlink()
    third = _open(d, had_clean_shutdown=True)
    assert idx.read_bytes() == struct.pack(">hqqqq", 0, 1, 0, 2, 3)
    third.close()


def test_truncating_below_a_marker_reopens_its_transaction_and_drops_the_index_entry(tmp_path: Path) -> None:
    log = _open(tmp_path / "t-0")
    _aborted_then_open(log)
    log.truncate_to(2)  # the ABORT marker of pid 1 goes
    log.update_high_watermark(log.log_end_offset)
    assert log.producer_state_manager.producers[1].current_txn_first_offset == 0
    assert log.last_stable_offset == 0
    assert log.collect_aborted_transactions(0, 10) == []
    assert not (tmp_path / "t-0" / "00000000000000000000.txnindex").exists()
    log.close()


def test_clients_may_not_append_control_batches(tmp_path: Path) -> None:
    from kafkalike.storage.errors import InvalidRecordError

    log = _open(tmp_path / "t-0")
    with pytest.raises(InvalidRecordError):
        log.append(_marker(1, committed=True))
    log.close()


def test_kafka_dump_log_segments_reads_markers_and_the_txnindex(tmp_path: Path) -> None:
    """Kafka 3.9's DumpLogSegments decodes our transactional batches, the COMMIT/ABORT markers
    (control records) and the .txnindex entries (needs the reference jars and java)."""
    import os
    import shutil
    import subprocess

    lib = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
    if not (lib.is_dir() and any(lib.glob("kafka_2.13-*.jar")) and shutil.which("java")):
        pytest.skip("reference Kafka jars not fetched (./scripts/reference-kafka fetch) or no java")
    d = tmp_path / "t-0"
    log = _open(d)
    _aborted_then_open(log)
    log.close()
    files = [str(d / "00000000000000000000.log"), str(d / "00000000000000000000.txnindex")]
    out = subprocess.run(["java", "-cp", f"{lib}/*", "kafka.tools.DumpLogSegments", "--deep-iteration",
                          "--files", ",".join(files)], capture_output=True, text=True, timeout=120).stdout
    assert out.count("isvalid: true") == 5, out
    assert out.count("isTransactional: true") == 5 and out.count("isControl: true") == 2, out
    assert "endTxnMarker: ABORT coordinatorEpoch: 0" in out and "endTxnMarker: COMMIT coordinatorEpoch: 0" in out, out
    assert re.search(r"^version: 0 producerId: 1 firstOffset: 0 lastOffset: 2 lastStableOffset: 3$", out, re.M), out
    assert "Exception" not in out, out


def test_compaction_keeps_markers_and_carries_the_txnindex_into_cleaned_segments(tmp_path: Path) -> None:
    """The cleaner copies control batches, so an aborted transaction stays aborted: its .txnindex
    entry moves into the cleaned segment and the LSO / aborted list survive a reopen."""
    from kafkalike.storage.log_cleaner import LogCleaner

    d = tmp_path / "c-0"
    log = UnifiedLog.open(d, LogConfig(cleanup_policy="compact"))
    _aborted_then_open(log)
    log.append(_marker(3, committed=True), origin="coordinator")
    for i in range(5):  # newer values for key b"k": the older records become cleanable
        log.append(bytearray(build_batch([SimpleRecord(value=b"n%d" % i, key=b"k", timestamp=NOW)])))
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    stats = LogCleaner().clean_now(log)
    assert stats.records_retained < stats.records_read
    assert log.collect_aborted_transactions(0, log.last_stable_offset) == [AbortedTxn(1, 0, 2, 3)]
    hw = log.high_watermark
    log.close()
    again = UnifiedLog.open(d, LogConfig(cleanup_policy="compact"), had_clean_shutdown=True)
    again.update_high_watermark(hw)
    assert again.last_stable_offset == hw
    assert again.collect_aborted_transactions(0, hw) == [AbortedTxn(1, 0, 2, 3)]
    assert again.producer_state_manager.ongoing_txns == {}
    again.close()


def test_aborted_transactions_are_collected_up_to_the_segment_a_fetch_reads(tmp_path: Path) -> None:
    """Two segments, one aborted transaction in each: a fetch from the first segment gets the
    first one only (upper bound = the next segment's base offset), from the second the second."""
    log = _open(tmp_path / "t-0")
    log.append(_txn_batch(1, 0))
    log.append(_marker(1, committed=False), origin="coordinator")
    log.roll()
    log.append(_txn_batch(2, 0))
    log.append(_marker(2, committed=False), origin="coordinator")
    log.update_high_watermark(log.log_end_offset)
    assert log.fetch_upper_bound_offset(0) == 3 and log.fetch_upper_bound_offset(3) == 6
    assert log.collect_aborted_transactions(0, min(log.last_stable_offset, log.fetch_upper_bound_offset(0))) \
        == [AbortedTxn(1, 0, 2, 3)]
    assert log.collect_aborted_transactions(3, min(log.last_stable_offset, log.fetch_upper_bound_offset(3))) \
        == [AbortedTxn(2, 3, 5, 6)]
    log.close()
