"""kafkalike's TransactionLogKey / TransactionLogValue bytes are the bytes Kafka 3.9's own
generated classes produce (TransactionLogSerde.java, run with the reference jars), for value
versions 0 and 1, with partitions and with the null partitions of Empty; and decode back."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kafkalike.coordinator.transaction.transaction_log import (PartitionsSchema, TransactionLogKey,
                                                                TransactionLogValue, decode_value, encode_key,
                                                                encode_value)

LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[3] / "reference" / "lib"))
HAVE_KAFKA = ("KAFKALIKE_KAFKA_LIB" in os.environ and LIB.is_dir() and any(LIB.glob("kafka-transaction-coordinator-*.jar"))
              and shutil.which("java") is not None)

PREPARE = TransactionLogValue(1234567890123, 7, 60000, 2, (PartitionsSchema("orders", (0, 3)),
                                                            PartitionsSchema("__consumer_offsets", (17,))),
                              1700000000123, 1700000000000)
EMPTY = TransactionLogValue(5, 0, 900000, 0, None, 42, -1)


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB (Kafka 3.9 jars, ./scripts/reference-kafka fetch) and java")
def test_our_records_are_byte_for_byte_kafkas() -> None:
    source = Path(__file__).with_name("TransactionLogSerde.java")
    out = subprocess.run(["java", "-cp", f"{LIB}/*", str(source)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    kafka = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line and not line.startswith("log4j"))
    ours = {"key": encode_key(TransactionLogKey("tx-\u00e9")).hex()}
    for v in (0, 1):
        ours[f"prepare{v}"] = encode_value(PREPARE, v).hex()
        ours[f"empty{v}"] = encode_value(EMPTY, v).hex()
    assert ours == kafka
    for v in (0, 1):
        assert decode_value(bytes.fromhex(kafka[f"prepare{v}"])) == PREPARE
        assert decode_value(bytes.fromhex(kafka[f"empty{v}"])) == EMPTY
