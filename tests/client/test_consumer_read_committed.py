"""kafkalike's consumer with isolation_level=1 (read_committed) drops the batches of aborted
transactions the way Kafka's Fetcher does: a transactional batch of a producer listed in the
Fetch response's aborted_transactions, at or after that transaction's first offset, is skipped
until the producer's ABORT marker; committed transactions and later transactions of the same
producer are delivered; control batches never are. ``kafkalike console-consumer`` takes Kafka's
``--isolation-level`` flag."""

from __future__ import annotations

import struct

import pytest

from kafkalike.client.cluster import TopicPartition
from kafkalike.client.consumer import KafkaConsumer
from kafkalike.protocol.records import build_records_batch

TP = TopicPartition("t", 0)


def _data(base: int, pid: int, n: int) -> bytes:
    return build_records_batch([(None, f"{pid}-{base + i}".encode()) for i in range(n)], base_offset=base,
                               producer_id=pid, producer_epoch=0, base_sequence=base, transactional=True)


def _marker(base: int, pid: int, committed: bool) -> bytes:
    return build_records_batch([(struct.pack(">hh", 0, 1 if committed else 0), struct.pack(">hi", 0, 0))],
                               base_offset=base, producer_id=pid, producer_epoch=0, transactional=True,
                               control=True)


LOG = (_data(0, 5, 2) + _data(2, 6, 1) + _marker(3, 5, False) + _marker(4, 6, True) + _data(5, 5, 1)
       + build_records_batch([(None, b"plain")], base_offset=6))


def _values(isolation: int, aborted: list[tuple[int, int]] | None, position: int = 0) -> list[bytes | None]:
    consumer = KafkaConsumer(["127.0.0.1:1"], isolation_level=isolation)
    return [r.value for r in consumer._decode(TP, position, LOG, aborted)]


def test_read_committed_drops_the_aborted_transaction_only() -> None:
    assert _values(1, [(0, 5)]) == [b"6-2", b"5-5", b"plain"]


def test_read_uncommitted_sees_every_data_record() -> None:
    assert _values(0, None) == [b"5-0", b"5-1", b"6-2", b"5-5", b"plain"]


def test_aborted_transaction_starting_later_spares_earlier_batches() -> None:
    """Producer 5's aborted transaction begins at offset 5: its batch at 0-1 (committed
    earlier, its marker outside this fetch) is kept."""
    assert _values(1, [(5, 5)]) == [b"5-0", b"5-1", b"6-2", b"plain"]


def test_console_consumer_isolation_level_flag() -> None:
    from kafkalike.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["console-consumer", "--bootstrap-server", "h:1", "--topic", "t"])
    assert args.isolation_level == "read_uncommitted"
    args = parser.parse_args(["console-consumer", "--bootstrap-server", "h:1", "--topic", "t",
                              "--isolation-level", "read_committed"])
    assert args.isolation_level == "read_committed"
    with pytest.raises(SystemExit):
        parser.parse_args(["console-consumer", "--bootstrap-server", "h:1", "--topic", "t",
                           "--isolation-level", "committed"])
