"""The protocol benchmark runs and keeps record data as views of the frame (not a timing test)."""

from __future__ import annotations

from kafkalike.bench import protocol_codec
from kafkalike.protocol import codec
from kafkalike.protocol.frame import FrameReader
from kafkalike.protocol.record_batch import iter_batches


def test_benchmark_runs_and_reports_every_figure() -> None:
    """run() returns positive medians for a tiny number of runs."""
    result = protocol_codec.run(1024, 3)
    assert result["batches"] == 1 and result["payload"] >= 1 << 20
    assert all(result[k] > 0 for k in ("receive_copy_us", "total_us", "crc_us", "python_us"))


def test_produce_path_patches_the_frame_buffer_in_place() -> None:
    """one_request() patches offsets inside the received frame: no copy of the payload."""
    frame, _payload = protocol_codec.make_produce_frame(64 * 1024)
    reader = FrameReader()
    reader.feed(frame)
    body = reader.next_frame()
    assert body is not None
    size = protocol_codec.one_request(body, leader_epoch=7, next_offset=1000)
    records = codec.parse_request(body)[1].topic_data[0].partition_data[0].records
    batches = list(iter_batches(records))
    assert batches[0].base_offset == 1000 and {b.partition_leader_epoch for b in batches} == {7}
    assert size > records.nbytes
