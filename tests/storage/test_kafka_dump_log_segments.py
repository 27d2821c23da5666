"""Apache Kafka's own DumpLogSegments reads our .log, .index and .timeindex files (interop check).

Needs the reference Kafka 3.9 jars (`./scripts/reference-kafka fetch` puts them in reference/lib)
and java; skipped when they are absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import struct
from pathlib import Path

import crc32c
import pytest

from kafkalike.protocol.record_batch import HEADER, SimpleRecord, build_batch
from kafkalike.storage import batch_codec
from kafkalike.storage.log_config import LogConfig
from kafkalike.storage.unified_log import UnifiedLog

LIB = Path(os.environ.get("KAFKALIKE_KAFKA_LIB", Path(__file__).resolve().parents[2] / "reference" / "lib"))
HAVE_KAFKA = LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar")) and shutil.which("java") is not None


def _compressed(records: list[SimpleRecord], codec: int) -> bytearray:
    plain = build_batch(records)
    out = bytearray(61) + batch_codec.compress(codec, plain[61:])
    f = list(HEADER.unpack_from(plain))
    f[1], f[5] = len(out) - 12, f[5] | codec
    HEADER.pack_into(out, 0, *f)
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return out


@pytest.mark.skipif(not HAVE_KAFKA, reason="reference Kafka jars not fetched (./scripts/reference-kafka fetch) or no java")
def test_kafka_dump_log_segments_reads_our_files(tmp_path: Path) -> None:
    """DumpLogSegments decodes every batch (all codecs) as valid and finds no index mismatches."""
    d = tmp_path / "t-0"
    log = UnifiedLog.open(d, LogConfig(segment_bytes=4000, index_interval_bytes=300))
    for i in range(60):
        recs = [SimpleRecord(b"value-%d-%d" % (i, j), b"key%d" % j, (("h", b"1"),), 1_700_000_000_000 + i * 100 + j) for j in range(3)]
        log.append(_compressed(recs, i % 5) if i % 5 else bytearray(build_batch(recs)), leader_epoch=i // 20)
    log.close()
    files = sorted(str(p) for p in d.iterdir() if p.suffix in (".log", ".index", ".timeindex"))
    out = subprocess.run(
        ["java", "-cp", f"{LIB}/*", "kafka.tools.DumpLogSegments", "--deep-iteration", "--print-data-log", "--files", ",".join(files)],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert out.count("isvalid: true") == 60
    assert "isvalid: false" not in out and "Mismatches" not in out and "Exception" not in out
    assert len(re.findall(r"^\| offset: \d+ CreateTime: \d+ keySize: 4", out, re.M)) == 180
    assert re.search(r"^offset: \d+ position: \d+$", out, re.M)
    assert re.search(r"^timestamp: 1700000\d+ offset: \d+$", out, re.M)
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        assert f"compresscodec: {codec}" in out


@pytest.mark.skipif(not HAVE_KAFKA, reason="reference Kafka jars not fetched (./scripts/reference-kafka fetch) or no java")
def test_kafka_dump_log_segments_reads_compacted_segments(tmp_path: Path) -> None:
    """Batches the cleaner rebuilt (records dropped, recompressed) are valid to Kafka, offsets kept."""
    from kafkalike.storage.log_cleaner import LogCleaner

    d = tmp_path / "c-0"
    log = UnifiedLog.open(d, LogConfig(segment_bytes=4000, index_interval_bytes=300, cleanup_policy="compact"))
    for i in range(40):
        recs = [SimpleRecord(b"v-%d-%d" % (i, j), b"key%d" % ((i + j) % 6), (), 1_700_000_000_000 + i) for j in range(3)]
        log.append(_compressed(recs, i % 5) if i % 5 else bytearray(build_batch(recs)))
    log.roll()
    log.update_high_watermark(log.log_end_offset)
    stats = LogCleaner().clean_now(log)
    assert stats.records_retained < stats.records_read
    log.close()
    files = sorted(str(p) for p in d.iterdir() if p.suffix in (".log", ".index", ".timeindex"))
    out = subprocess.run(
        ["java", "-cp", f"{LIB}/*", "kafka.tools.DumpLogSegments", "--deep-iteration", "--files", ",".join(files)],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "isvalid: false" not in out and "Mismatches" not in out and "Exception" not in out
    offsets = [int(m) for m in re.findall(r"^\| offset: (\d+)", out, re.M)]
    assert len(offsets) == stats.records_retained and offsets == sorted(offsets)
    assert "isvalid: true" in out
