"""Benchmark of code run cold against the same code run warm: what a broker pays per request
when it has sat idle between requests, as it does at 100 records/s.

    .venv/bin/python -m kafkalike.bench.cold_path [--samples 300] [--gap-ms 10] [--runs 20000]

Each case is timed two ways: *warm*, the mean of ``--runs`` calls back to back (what a
micro-benchmark reports), and *cold*, the median of ``--samples`` single calls each after
sleeping ``--gap-ms`` (the process blocks, the CPU goes idle; on a virtual machine whose
guest does not poll before halting, the host runs other work on that core meanwhile and the
caches and branch predictors no longer hold the interpreter's state for this code).

Cases: a call of an empty function (the floor); ``ErrorCode(0)`` (one enum lookup); the
follower's Fetch answer (one partition, one 170-byte batch, v12) decoded into kio's entities
(codec.decode_response) and into plain records (codec.decode_fetch_response_frame); the
follower's next Fetch (two partitions of one topic, a session) built and encoded through
kio's entities (fetch_partition, fetch_request, encode_request) and from plain records
(FetchRequestFields, encode_fetch_request_fields, encode_request_frame). The kio and plain
results are compared (the same values, the same bytes) before anything is timed.
docs/benchmarks.md, "Cold paths".
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.fetch_request import (FetchPartitionFields, FetchRequestFields, FetchTopicFields,
                                              encode_fetch_request_fields, fetch_partition, fetch_request)

VERSION = 12
CLIENT_ID = "broker-1-fetcher-2"


def follower_answer_frame() -> memoryview:
    """A Fetch v12 response frame body (no size prefix): one topic, one partition, 170 bytes
    of records, session 7: what a follower reads per record at 100 records/s."""
    mod = sys.modules[codec.response_class(ApiKey.FETCH, VERSION).__module__]
    part = mod.PartitionData(partition_index=0, error_code=ErrorCode.none, high_watermark=5, last_stable_offset=5,
                             log_start_offset=0, aborted_transactions=None, preferred_read_replica=-1,
                             records=bytes(170))
    response = mod.FetchResponse(throttle_time=datetime.timedelta(0), error_code=ErrorCode.none, session_id=7,
                                 responses=(mod.FetchableTopicResponse(topic="latency", partitions=(part,)),))
    return memoryview(codec.encode_response(codec.RequestHeader(ApiKey.FETCH, VERSION, 3), response)[4:])


def request_kio() -> bytes:
    """The follower's next Fetch through kio's entities (ReplicaFetcher until session 14)."""
    topics = {"latency": [fetch_partition(VERSION, i, 100, 1 << 20, 3, 0, -1) for i in range(2)]}
    request = fetch_request(VERSION, replica_id=2, max_wait_ms=500, min_bytes=1, max_bytes=10 << 20,
                            isolation_level=0, session_id=5, session_epoch=3, topics=topics, forgotten={})
    return codec.encode_request(request, correlation_id=1, client_id=CLIENT_ID)


def request_plain() -> bytes:
    """The same Fetch from plain records (ReplicaFetcher now)."""
    parts = tuple(FetchPartitionFields(i, 3, 100, -1, 0, 1 << 20) for i in range(2))
    request = FetchRequestFields(replica_id=2, max_wait_ms=500, min_bytes=1, max_bytes=10 << 20, isolation_level=0,
                                 session_id=5, session_epoch=3, topics=(FetchTopicFields("latency", parts),))
    return codec.encode_request_frame(ApiKey.FETCH, VERSION, 1, CLIENT_ID, encode_fetch_request_fields(request, VERSION))


def cases() -> dict[str, Callable[[], Any]]:
    """{name: zero-argument call}; raises AssertionError if the kio and plain paths disagree."""
    frame = follower_answer_frame()
    kio = codec.decode_response(frame, ApiKey.FETCH, VERSION)[1]
    plain = codec.decode_fetch_response_frame(frame, VERSION)[1]
    kp, pp = kio.responses[0].partitions[0], plain.responses[0].partitions[0]
    assert (kio.session_id, kp.high_watermark, bytes(kp.records)) == \
        (plain.session_id, pp.high_watermark, bytes(pp.records)), "decoders disagree"
    assert request_kio() == request_plain(), "request encoders disagree"

    def empty() -> None:
        return None

    return {
        "empty call": empty,
        "ErrorCode(0)": lambda: ErrorCode(0),
        "answer decoded into kio entities": lambda: codec.decode_response(frame, ApiKey.FETCH, VERSION),
        "answer decoded into plain records": lambda: codec.decode_fetch_response_frame(frame, VERSION),
        "next Fetch through kio entities": request_kio,
        "next Fetch from plain records": request_plain,
    }


def warm_us(fn: Callable[[], Any], runs: int) -> float:
    """Mean µs per call over ``runs`` calls back to back."""
    t0 = time.perf_counter_ns()
    for _ in range(runs):
        fn()
    return (time.perf_counter_ns() - t0) / runs / 1000


def cold_us(fn: Callable[[], Any], samples: int, gap_ms: float) -> float:
    """Median µs of ``samples`` single calls, each after sleeping ``gap_ms``."""
    times = []
    for _ in range(samples):
        time.sleep(gap_ms / 1000)
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000


def run(samples: int, gap_ms: float, runs: int) -> dict[str, tuple[float, float]]:
    """{case: (warm µs, cold µs)}."""
    return {name: (warm_us(fn, runs), cold_us(fn, samples, gap_ms)) for name, fn in cases().items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m kafkalike.bench.cold_path", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=300, help="cold calls per case (default 300)")
    p.add_argument("--gap-ms", type=float, default=10.0, help="sleep before each cold call, ms (default 10)")
    p.add_argument("--runs", type=int, default=20000, help="warm calls per case (default 20000)")
    args = p.parse_args(argv)
    print(f"{'case':40} {'warm µs':>9} {'cold µs':>9} {'cold/warm':>9}   (cold: median after {args.gap_ms:g} ms idle)")
    for name, (warm, cold) in run(args.samples, args.gap_ms, args.runs).items():
        print(f"{name:40} {warm:9.1f} {cold:9.1f} {cold / warm:9.1f}")


if __name__ == "__main__":
    main()
