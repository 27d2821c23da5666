"""Producer state snapshots (Kafka's ProducerStateManager.takeSnapshot / readSnapshot, format
version 1): ``<20-digit offset>.snapshot`` written at every segment roll and at clean shutdown,
loaded when the log is opened so only the batches after it are replayed, deleted with their
segments and past a truncation, a corrupt one ignored with one log line; Kafka 3.9's
DumpLogSegments reads the files (reference jars only)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import crc32c
import pytest
import structlog

from kafkalike.protocol.record_batch import SimpleRecord, build_batch, build_end_txn_marker
from kafkalike.storage import LogConfig, UnifiedLog
from kafkalike.storage.producer_state_manager import (
    DuplicateBatch,
    ProducerStateError,
    ProducerStateManager,
    list_snapshot_files,
)

NOW = int(time.time() * 1000)
LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", "/nonexistent"))  # the Java judges only when it is set
HAVE_KAFKA = LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar")) and shutil.which("java") is not None


def _batch(pid: int, seq: int, n: int = 3, epoch: int = 0, transactional: bool = False) -> bytearray:
    recs = [SimpleRecord(value=b"v%d" % (seq + i), key=b"k", timestamp=NOW) for i in range(n)]
    return bytearray(build_batch(recs, producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                                 transactional=transactional))


def _open(d: Path, segment_bytes: int = 1 << 20, **kw: object) -> UnifiedLog:
    return UnifiedLog.open(d, LogConfig(segment_bytes=segment_bytes), **kw)  # type: ignore[arg-type]


def _fill(log: UnifiedLog, batches: int = 12) -> None:
    """Idempotent producers 7 and 8 (epoch 2) take turns; producer 9 leaves a transaction open."""
    seqs = {7: 0, 8: 0}
    for i in range(batches):
        pid = 7 + i % 2
        log.append(_batch(pid, seqs[pid], epoch=2))
        seqs[pid] += 3
    log.append(_batch(9, 0, n=2, transactional=True))
    log.update_high_watermark(log.log_end_offset)


def _full_replay(log: UnifiedLog) -> dict[int, tuple[int, int, int, int]]:
    """Each producer's (epoch, last seq, last offset, open txn first offset) from all batches."""
    psm = ProducerStateManager("check")  # no dir: no snapshot, the whole log is replayed
    psm.rebuild(log)
    return _summary(psm)


def _summary(psm: ProducerStateManager) -> dict[int, tuple[int, int, int, int]]:
    return {pid: (e.epoch, e.batches[-1].last_seq if e.batches else -1,
                  e.batches[-1].last_offset if e.batches else -1, e.current_txn_first_offset)
            for pid, e in psm.producers.items()}


def _parse(data: bytes) -> tuple[int, list[tuple[int, ...]]]:
    """Kafka's snapshot layout read by hand: version, then (after the CRC) the entries."""
    version, crc = struct.unpack_from(">hI", data, 0)
    assert crc == crc32c.crc32c(data[6:])
    (count,) = struct.unpack_from(">i", data, 6)
    assert len(data) == 10 + 46 * count
    return version, sorted(struct.unpack_from(">qhiqiqiq", data, 10 + 46 * i) for i in range(count))


def test_a_segment_roll_writes_a_snapshot_named_after_the_new_segment_in_kafkas_format(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = _open(d, segment_bytes=600)
    _fill(log)
    bases = [s.base_offset for s in log.segments]
    assert len(bases) > 2
    snaps = list_snapshot_files(d)
    assert [off for off, _ in snaps] == bases[1:]
    off, path = snaps[-1]
    version, entries = _parse(path.read_bytes())
    assert version == 1
    # state as of the roll: every batch below `off` applied, none at or above it
    for pid, epoch, last_seq, last_offset, delta, ts, coord_epoch, txn_first in entries:
        assert pid in (7, 8, 9) and last_offset < off and delta == 2
        assert (ts, coord_epoch) == (NOW, -1)
        assert epoch == (2 if pid in (7, 8) else 0)
        assert txn_first == (-1 if pid != 9 else last_offset - 1)
    log.close()


def test_a_clean_close_writes_a_snapshot_at_the_log_end_that_reopening_loads_without_a_replay(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = _open(d)
    _fill(log)
    leo, expected = log.log_end_offset, _summary(log.producer_state_manager)
    log.close()
    assert (d / f"{leo:020d}.snapshot").exists()
    with structlog.testing.capture_logs() as logs:
        again = _open(d, had_clean_shutdown=True)
    loaded = [e for e in logs if e["event"] == "producer_state_loaded"]
    assert loaded and loaded[0]["batches"] == 0 and loaded[0]["snapshot_offset"] == leo
    psm = again.producer_state_manager
    assert _summary(psm) == expected
    assert psm.ongoing_txns == {leo - 2: 9}
    again.update_high_watermark(leo)  # the broker restores it from its checkpoint
    assert again.last_stable_offset == leo - 2  # the open transaction holds the LSO back
    # the last batch of a producer still deduplicates, the next sequence follows it, a gap does not
    last = psm.producers[8].batches[-1]
    with pytest.raises(DuplicateBatch) as dup:
        psm.check(8, 2, last.first_seq, last.last_seq)
    assert (dup.value.first_offset, dup.value.last_offset) == (last.first_offset, last.last_offset)
    psm.check(8, 2, last.last_seq + 1, last.last_seq + 3)
    with pytest.raises(ProducerStateError):
        psm.check(8, 2, last.last_seq + 5, last.last_seq + 7)
    again.close()


def test_an_unclean_restart_replays_only_the_batches_after_the_newest_roll_snapshot(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = _open(d, segment_bytes=600)
    _fill(log)
    newest_roll = list_snapshot_files(d)[-1][0]
    log.close_handlers()  # a crash: no shutdown snapshot
    again = _open(d, segment_bytes=600, had_clean_shutdown=False)
    assert again.producer_state_manager.last_snap_offset == newest_roll
    assert _summary(again.producer_state_manager) == _full_replay(again)
    again.close()


def test_a_corrupt_snapshot_is_ignored_with_one_log_line_and_the_older_one_is_used(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = _open(d, segment_bytes=600)
    _fill(log)
    leo = log.log_end_offset
    log.close()
    newest = d / f"{leo:020d}.snapshot"
    data = bytearray(newest.read_bytes())
    data[20] ^= 0xFF
    newest.write_bytes(bytes(data))
    with structlog.testing.capture_logs() as logs:
        again = _open(d, segment_bytes=600, had_clean_shutdown=True)
    corrupt = [e for e in logs if e["event"] == "producer_snapshot_corrupt"]
    assert len(corrupt) == 1 and "CRC" in corrupt[0]["error"]
    assert not newest.exists()
    psm = again.producer_state_manager
    assert 0 < psm.last_snap_offset < leo  # the roll snapshot before it
    assert _summary(psm) == _full_replay(again)
    again.close()


def test_a_snapshot_of_another_version_or_truncated_is_ignored_and_the_log_replayed(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = _open(d)
    _fill(log)
    leo = log.log_end_offset
    log.close()
    snap = d / f"{leo:020d}.snapshot"
    good = snap.read_bytes()
    for bad in (struct.pack(">h", 2) + good[2:], good[:-5]):
        snap.write_bytes(bad)
        again = _open(d, had_clean_shutdown=True)
        assert again.producer_state_manager.last_snap_offset == 0
        assert _summary(again.producer_state_manager) == _full_replay(again)
        again.close()  # writes a good snapshot again


def test_snapshots_go_with_their_segments_and_past_a_truncation(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = _open(d, segment_bytes=600)
    _fill(log, batches=20)
    snaps = [off for off, _ in list_snapshot_files(d)]
    assert len(snaps) >= 3
    log.truncate_to(snaps[-1] - 1)
    left = [off for off, _ in list_snapshot_files(d)]
    assert left == snaps[:-1]
    assert _summary(log.producer_state_manager) == _full_replay(log)
    log.update_high_watermark(log.log_end_offset)
    log.delete_records_before(snaps[1])
    assert [off for off, _ in list_snapshot_files(d)] == [o for o in left if o >= log.segments[0].base_offset]
    assert min(off for off, _ in list_snapshot_files(d)) == log.segments[0].base_offset
    log.truncate_fully_and_start_at(1000)
    assert list_snapshot_files(d) == []
    log.close()


def test_a_marker_only_producer_and_its_coordinator_epoch_survive_a_snapshot(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = _open(d)
    log.append(_batch(5, 0, transactional=True))
    log.append(bytearray(build_end_txn_marker(5, 0, 4, False, NOW)), origin="coordinator")
    log.append(bytearray(build_end_txn_marker(6, 1, 3, True, NOW)), origin="coordinator")
    log.close()
    again = _open(d, had_clean_shutdown=True)
    psm = again.producer_state_manager
    assert psm.last_snap_offset == again.log_end_offset
    assert (psm.producers[5].coordinator_epoch, psm.producers[5].current_txn_first_offset) == (4, -1)
    assert (psm.producers[6].epoch, psm.producers[6].coordinator_epoch, list(psm.producers[6].batches)) == (1, 3, [])
    with pytest.raises(ProducerStateError):
        psm.check_end_txn_marker(5, 0, 3)  # an older coordinator epoch is still fenced
    assert again.collect_aborted_transactions(0, 10)[0].producer_id == 5
    again.close()


@pytest.mark.skipif(not HAVE_KAFKA, reason="set KAFKALIKE_KAFKA_LIB to the Kafka 3.9 jars (and have java)")
def test_kafka_dump_log_segments_reads_our_snapshot_files(tmp_path: Path) -> None:
    """kafka-dump-log.sh --files X.snapshot (DumpLogSegments) prints every producer of ours."""
    d = tmp_path / "t-0"
    log = _open(d)
    _fill(log)
    leo = log.log_end_offset
    log.close()
    out = subprocess.run(
        ["java", "-cp", f"{LIB}/*", "kafka.tools.DumpLogSegments", "--files", str(d / f"{leo:020d}.snapshot")],
        capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "Exception" not in text
    lines = {int(m.group(1)): m.group(0) for m in re.finditer(r"producerId: (\d+) producerEpoch: (\d+).*", text)}
    assert sorted(lines) == [7, 8, 9], text
    assert "producerEpoch: 2" in lines[7] and "producerEpoch: 0" in lines[9]
    assert f"currentTxnFirstOffset: OptionalLong[{leo - 2}]" in lines[9], lines[9]
    assert f"firstSequence: 0 lastSequence: 1 lastOffset: {leo - 1} offsetDelta: 1 timestamp: {NOW}" in lines[9]
    assert "currentTxnFirstOffset: OptionalLong.empty" in lines[7]
