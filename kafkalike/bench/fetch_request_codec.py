"""Benchmark of the follower's Fetch request: built and encoded the generic way against
protocol/fetch_request's direct path, and parsed as the leader parses it.

    .venv/bin/python -m kafkalike.bench.fetch_request_codec [--partitions 1,6,100] [--runs 20000]

Per request, Fetch v12 with a session and ``--partitions`` partitions of one topic (what a
follower sends its leader each round trip): "build (build_request)" is
client.messages.build_request from keyword fields, "build (fetch_request)" the kio entities
built directly; "encode (kio writer)" kio's generic entity writer of the body, "encode
(fetch_request)" the hand-written one; "parse (leader)" codec.parse_request of the whole
frame. Medians in µs over batches of ``--runs`` calls (docs/benchmarks.md, "The follower's
Fetch request").
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from kio.serial import entity_writer

from kafkalike.client.messages import build_request
from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.fetch_request import encode_fetch_request_body, fetch_partition, fetch_request

VERSION = 12


def _fields(partitions: int) -> list[dict[str, int]]:
    return [{"partition": i, "current_leader_epoch": 3, "fetch_offset": 123_456 + i, "last_fetched_epoch": -1,
             "log_start_offset": 0, "partition_max_bytes": 1 << 20} for i in range(partitions)]


def build_generic(partitions: int) -> Any:
    """The request as ReplicaFetcher built it before: build_request from keyword fields."""
    return build_request(ApiKey.FETCH, VERSION, replica_id=2, max_wait=500, min_bytes=1, max_bytes=10 << 20,
                         isolation_level=0, session_id=7, session_epoch=42,
                         topics=[{"topic": "flights", "partitions": _fields(partitions)}], forgotten_topics_data=[])


def build_direct(partitions: int) -> Any:
    """The request as ReplicaFetcher built it from 48e14ab on (kio's entities built directly,
    protocol/fetch_request); it now builds plain records instead (bench/cold_path.py)."""
    parts = [fetch_partition(VERSION, d["partition"], d["fetch_offset"], d["partition_max_bytes"],
                             d["current_leader_epoch"], d["log_start_offset"], d["last_fetched_epoch"])
             for d in _fields(partitions)]
    return fetch_request(VERSION, replica_id=2, max_wait_ms=500, min_bytes=1, max_bytes=10 << 20, isolation_level=0,
                         session_id=7, session_epoch=42, topics={"flights": parts}, forgotten={})


def _median_us(fn: Callable[[], Any], runs: int, repeats: int = 7) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(runs):
            fn()
        samples.append((time.perf_counter() - t0) / runs * 1e6)
    return statistics.median(samples)


def run(partitions: int, runs: int) -> dict[str, float]:
    """{step: median µs} for a request of ``partitions`` partitions; asserts both paths build
    equal entities and write equal bytes."""
    generic, direct = build_generic(partitions), build_direct(partitions)
    assert generic == direct
    writer = entity_writer(codec.request_class(ApiKey.FETCH, VERSION))

    def kio_encode() -> bytes:
        buf = io.BytesIO()
        writer(buf, generic)
        return buf.getvalue()

    assert kio_encode() == encode_fetch_request_body(direct, VERSION)
    frame = memoryview(bytearray(codec.encode_request(direct, correlation_id=1, client_id="broker-2-fetcher-1")[4:]))
    return {
        "build (build_request)": _median_us(lambda: build_generic(partitions), runs),
        "build (fetch_request)": _median_us(lambda: build_direct(partitions), runs),
        "encode (kio writer)": _median_us(kio_encode, runs),
        "encode (fetch_request)": _median_us(lambda: encode_fetch_request_body(direct, VERSION), runs),
        "parse (leader)": _median_us(lambda: codec.parse_request(frame), runs),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kafkalike.bench.fetch_request_codec", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--partitions", default="1,6,100", help="comma-separated partition counts (default 1,6,100)")
    p.add_argument("--runs", type=int, default=20_000, help="calls per timed batch (default 20,000)")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.partitions.split(",")]
    results = {n: run(n, max(1, args.runs // n)) for n in counts}
    print("| Fetch v12 request, µs (median) | " + " | ".join(f"{n} partition{'s' if n > 1 else ''}" for n in counts) + " |")
    print("|---|" + "---:|" * len(counts))
    for step in results[counts[0]]:
        print(f"| {step} | " + " | ".join(f"{results[n][step]:.1f}" for n in counts) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
