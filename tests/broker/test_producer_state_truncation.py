"""A follower's truncation rebuilds the idempotent producer state from the log that is left,
as Kafka's UnifiedLog.truncateTo reloads it (ProducerStateManager.truncateAndReload): batches
older than the five retained ones, and an older epoch whose batches survive, come back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kafkalike.broker.partition import DuplicateBatch, ProducerStateManager
from kafkalike.protocol.record_batch import SimpleRecord, build_batch
from kafkalike.storage import LogConfig, UnifiedLog

PID = 4242


def _append(log: UnifiedLog, state: ProducerStateManager, seq: int, epoch: int = 0) -> None:
    now = int(time.time() * 1000)
    raw = bytearray(build_batch([SimpleRecord(value=f"v{seq}".encode(), timestamp=now)],
                                producer_id=PID, producer_epoch=epoch, base_sequence=seq))
    info = log.append(raw)
    state.update(PID, epoch, seq, seq, info.first_offset, info.last_offset)


def test_truncating_the_five_retained_batches_restores_the_older_ones(tmp_path: Path) -> None:
    """Eight batches, truncation at the fourth: a retry of the third is still a duplicate."""
    log = UnifiedLog.open(tmp_path / "t-0", LogConfig())
    state = ProducerStateManager("t-0")
    for seq in range(8):
        _append(log, state, seq)
    log.truncate_to(3)
    state.truncate_and_reload(log)
    with pytest.raises(DuplicateBatch) as dup:
        state.check(PID, 0, 2, 2)
    assert (dup.value.first_offset, dup.value.last_offset) == (2, 2)
    state.check(PID, 0, 3, 3)  # the next sequence is accepted
    log.close()


def test_truncating_a_new_epoch_restores_the_older_epoch(tmp_path: Path) -> None:
    """Epoch 0 at offsets 0-2, epoch 1 at offset 3; truncation at 3 makes epoch 0 current again."""
    log = UnifiedLog.open(tmp_path / "t-0", LogConfig())
    state = ProducerStateManager("t-0")
    for seq in range(3):
        _append(log, state, seq)
    _append(log, state, 0, epoch=1)
    log.truncate_to(3)
    state.truncate_and_reload(log)
    with pytest.raises(DuplicateBatch):
        state.check(PID, 0, 1, 1)
    assert state.producers[PID].epoch == 0
    log.close()
