"""__transaction_state records (TransactionLogKey v0 / TransactionLogValue v0-v1) and the
transaction state machine: round trips, Kafka's byte layout, placement with Java's hash."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkalike.coordinator.transaction.transaction_log import (PartitionsSchema, TransactionLogError,
                                                                TransactionLogKey, TransactionLogValue,
                                                                decode_key, decode_value, encode_key,
                                                                encode_value)
from kafkalike.coordinator.transaction.transaction_metadata import (VALID_PREVIOUS_STATES, IllegalTransitionError,
                                                                    TransactionMetadata, TransactionState)
from kafkalike.coordinator.transaction.transaction_state_manager import partition_for
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition

S = TransactionState

_i64 = st.integers(-(2 ** 63), 2 ** 63 - 1)
_i32 = st.integers(-(2 ** 31), 2 ** 31 - 1)
_i16 = st.integers(-(2 ** 15), 2 ** 15 - 1)
_text = st.text(max_size=40)
_values = st.builds(
    TransactionLogValue, producer_id=_i64, producer_epoch=_i16, transaction_timeout_ms=_i32,
    transaction_status=st.integers(0, 7),
    transaction_partitions=st.none() | st.lists(st.builds(
        PartitionsSchema, topic=_text, partition_ids=st.lists(_i32, max_size=5).map(tuple)), max_size=4).map(tuple),
    transaction_last_update_timestamp_ms=_i64, transaction_start_timestamp_ms=_i64)


@given(_text)
def test_key_round_trips(txn_id: str) -> None:
    assert decode_key(encode_key(TransactionLogKey(txn_id))) == TransactionLogKey(txn_id)


@given(_values, st.sampled_from([0, 1]))
def test_value_round_trips_in_both_versions(value: TransactionLogValue, version: int) -> None:
    assert decode_value(encode_value(value, version)) == value


def test_value_v0_has_kafkas_layout() -> None:
    """Version prefix, then the fields in TransactionLogValue.json's order with int16 string
    and int32 array lengths (what Kafka 3.9 writes without the transaction.version feature)."""
    value = TransactionLogValue(1000, 3, 60000, int(S.ONGOING), (PartitionsSchema("t", (0, 2)),), 1700, 1600)
    expected = (struct.pack(">hqhib", 0, 1000, 3, 60000, 1) + struct.pack(">i", 1) + struct.pack(">h", 1) + b"t"
                + struct.pack(">iii", 2, 0, 2) + struct.pack(">qq", 1700, 1600))
    assert encode_value(value) == expected
    assert encode_key(TransactionLogKey("tx")) == struct.pack(">hh", 0, 2) + b"tx"


def test_value_v1_is_flexible_with_compact_lengths_and_tag_sections() -> None:
    value = TransactionLogValue(1, 0, 100, int(S.EMPTY), None, 5, -1)
    assert encode_value(value, 1) == (struct.pack(">hqhib", 1, 1, 0, 100, 0) + b"\x00"
                                      + struct.pack(">qq", 5, -1) + b"\x00")


def test_value_v1_skips_unknown_tagged_fields() -> None:
    value = TransactionLogValue(1, 0, 100, int(S.EMPTY), None, 5, -1)
    data = encode_value(value, 1)[:-1] + b"\x01\x07\x02ab"  # one tagged field: tag 7, 2 bytes
    assert decode_value(data) == value


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x05\x00\x00", struct.pack(">hqhib", 0, 1, 0, 1, 0),
                                  struct.pack(">hqhib", 0, 1, 0, 1, 0) + struct.pack(">i", 2 ** 30)])
def test_bad_values_raise_transaction_log_error(data: bytes) -> None:
    with pytest.raises(TransactionLogError):
        decode_value(data)


def test_bad_key_version_raises() -> None:
    with pytest.raises(TransactionLogError, match="unknown version 1"):
        decode_key(struct.pack(">hh", 1, 1) + b"x")


@pytest.mark.parametrize("txn_id,partition", [
    # String.hashCode() and Utils.abs(h) % 50 printed by Java 17 (java H.java, see the commit):
    # "" 0, "a" 97, "txn-1" 110810510, "my-transactional-id" -959806496,
    # "polygenelubricants" Integer.MIN_VALUE (Utils.abs -> 0), "été-😀" -1803456526 (UTF-16 pairs)
    ("", 0), ("a", 47), ("txn-1", 10), ("my-transactional-id", 46), ("polygenelubricants", 0),
    ("\u00e9t\u00e9-\U0001F600", 26)])
def test_partition_for_matches_java(txn_id: str, partition: int) -> None:
    assert partition_for(txn_id, 50) == partition


def test_empty_state_is_written_with_null_partitions() -> None:
    md = TransactionMetadata("t", 7, -1, 1000)
    transit = md.prepare_increment_producer_epoch(1000, None, 10)
    assert not isinstance(transit, ErrorCode)
    assert transit.to_log_value().transaction_partitions is None
    assert transit.producer_epoch == 0


def test_transitions_follow_kafkas_valid_previous_states() -> None:
    for target, previous in VALID_PREVIOUS_STATES.items():
        for source in TransactionState:
            md = TransactionMetadata("t", 1, 0, 1000, state=source)
            allowed = source in previous
            try:
                md._prepare(target, 1, 0, -1, 1000, frozenset(), -1, 0)
            except IllegalTransitionError:
                assert not allowed, (source, target)
            else:
                assert allowed, (source, target)
                assert md.pending_state == target


def test_a_commit_goes_ongoing_prepare_complete_and_clears_partitions() -> None:
    md = TransactionMetadata("t", 1, 0, 1000)
    tp = TopicPartition("x", 0)
    for step in (lambda: md.prepare_add_partitions({tp}, 100),
                 lambda: md.prepare_abort_or_commit(S.PREPARE_COMMIT, 200),
                 lambda: md.prepare_complete(300)):
        md.complete_transition_to(step())
    assert md.state == S.COMPLETE_COMMIT
    assert md.topic_partitions == set()
    assert md.txn_start_timestamp == 100


def test_a_pending_transition_blocks_another() -> None:
    md = TransactionMetadata("t", 1, 0, 1000)
    md.prepare_add_partitions({TopicPartition("x", 0)}, 1)
    with pytest.raises(IllegalTransitionError, match="pending"):
        md.prepare_add_partitions({TopicPartition("x", 1)}, 1)
    md.abort_transition()
    assert md.state == S.EMPTY and md.pending_state is None


def test_kip_360_epoch_bump_retry_and_fencing() -> None:
    md = TransactionMetadata("t", 1, 4, 1000)
    transit = md.prepare_increment_producer_epoch(1000, 4, 0)
    assert not isinstance(transit, ErrorCode)
    md.complete_transition_to(transit)
    assert (md.producer_epoch, md.last_producer_epoch) == (5, 4)
    retry = md.prepare_increment_producer_epoch(1000, 4, 0)  # the same request again
    assert not isinstance(retry, ErrorCode) and retry.producer_epoch == 5
    md.abort_transition()
    assert md.prepare_increment_producer_epoch(1000, 2, 0) == ErrorCode.producer_fenced


def test_epoch_fence_bumps_once_and_allows_prepare_abort() -> None:
    md = TransactionMetadata("t", 1, 3, 1000)
    md.complete_transition_to(md.prepare_add_partitions({TopicPartition("x", 0)}, 1))
    md.enter_epoch_fence(md.prepare_fence_producer_epoch())
    assert md.producer_epoch == 4
    transit = md.prepare_abort_or_commit(S.PREPARE_ABORT, 2)
    assert transit.producer_epoch == 4 and transit.txn_state == S.PREPARE_ABORT
