"""kafkalike.bench.cold_path: every case runs, and the kio and plain follower paths it times
give the same answer values and the same request bytes."""

from __future__ import annotations

from kafkalike.bench import cold_path
from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import ApiKey


def test_cold_path_bench_times_every_case_warm_and_cold() -> None:
    results = cold_path.run(samples=3, gap_ms=0.1, runs=10)
    assert set(results) == set(cold_path.cases())
    assert all(warm > 0 and cold > 0 for warm, cold in results.values())


def test_cold_path_bench_compares_paths_that_agree() -> None:
    """The two request paths write the same frame, and the two decoders read the same answer
    (the bench refuses to time paths that disagree)."""
    assert cold_path.request_kio() == cold_path.request_plain()
    frame = cold_path.follower_answer_frame()
    kio = codec.decode_response(frame, ApiKey.FETCH, cold_path.VERSION)
    plain = codec.decode_fetch_response_frame(frame, cold_path.VERSION)
    assert kio[0] == plain[0] == 3
    assert bytes(kio[1].responses[0].partitions[0].records) == bytes(plain[1].responses[0].partitions[0].records) \
        == bytes(170)
