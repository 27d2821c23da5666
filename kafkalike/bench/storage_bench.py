"""Storage engine benchmarks, each beside the machine's own limit measured in the same run.

  append     UnifiedLog.append of 1 MiB batches vs `dd bs=1M` to the same directory, both without
             fsync (page cache) and both ending with an fsync (dd conv=fdatasync vs log.flush()).
  sendfile   Fetch-style reads (UnifiedLog.read, 1 MiB max_bytes, os.sendfile of the slices) over
             loopback TCP to a receiver process (`dd of=/dev/null bs=4M` on the socket), vs the
             same receiver fed by sock.sendall from a 1 MiB memory buffer (plain socket copy), by
             pread+sendall of the same files (the copy sendfile avoids), and iperf3 (3 s, one
             stream) when installed (--install-iperf3 runs `apt-get install -y iperf3`); all
             interleaved, one of each per repeat.
  small      Per-append cost of 1 KiB batches: default (page cache) vs flush.messages=1 (fsync
             on every append) — the durability trade-off in numbers.
  recovery   Reopen after an unclean shutdown of a 1 GiB log (16 KiB batches) with a torn tail:
             full scan (CRC of every batch), index rebuild, tail truncation.
  memory     Python heap (tracemalloc) and RSS per open partition, 1000 small partitions
             reopened after a clean shutdown; index mmaps are excluded by construction from
             the heap figure and reported separately (mapped bytes).

Usage (medians of --repeat runs; JSON on stdout with --json):
  .venv/bin/python -m kafkalike.bench.storage_bench all --dir /var/tmp/kafkalike-bench
  .venv/bin/python -m kafkalike.bench.storage_bench append --gib 1 --repeat 3
The directory is wiped before and after. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

MiB = 1 << 20
GiB = 1 << 30


def _batch_of_size(total: int, records: int = 1) -> bytearray:
    """An uncompressed v2 batch of exactly `total` bytes (the last record absorbs the rounding)."""
    from kafkalike.protocol.record_batch import SimpleRecord, build_batch

    ts = int(time.time() * 1000)
    per = max(1, (total - 61) // records - 16)
    last = per
    for _ in range(64):
        recs = [SimpleRecord(b"x" * per, None, timestamp=ts)] * (records - 1) + [SimpleRecord(b"x" * last, None, timestamp=ts)]
        data = build_batch(recs)
        diff = total - len(data)
        if diff == 0:
            return bytearray(data)
        last = max(0, last + (diff if abs(diff) > 1 else diff * 1))
        if last == 0:
            per -= 1
            last = per
    raise RuntimeError(f"cannot build a batch of exactly {total} bytes")


def _clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def _dd(path: Path, count_mib: int, sync: bool) -> float:
    """dd bs=1M from /dev/zero; returns MB/s (10^6 bytes/s) measured by wall clock."""
    args = ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={count_mib}"]
    if sync:
        args.append("conv=fdatasync")
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    dt = time.perf_counter() - t0
    path.unlink()
    return count_mib * MiB / dt / 1e6


def bench_append(dir: Path, gib: float, repeat: int) -> dict[str, Any]:
    from kafkalike.storage.log_config import LogConfig
    from kafkalike.storage.unified_log import UnifiedLog

    count = int(gib * 1024)
    batch = _batch_of_size(MiB)
    results: dict[str, list[float]] = {"log_nosync": [], "dd_nosync": [], "log_fsync": [], "dd_fdatasync": []}
    for _ in range(repeat):
        for sync in (False, True):
            _clean(dir)
            results["dd_fdatasync" if sync else "dd_nosync"].append(_dd(dir / "dd.out", count, sync))
            _clean(dir)
            log = UnifiedLog.open(dir / "bench-0", LogConfig())
            t0 = time.perf_counter()
            for _ in range(count):
                log.append(batch, leader_epoch=0)
            if sync:
                log.flush()
            dt = time.perf_counter() - t0
            results["log_fsync" if sync else "log_nosync"].append(count * MiB / dt / 1e6)
            log.close_handlers()
    _clean(dir)
    med = {k: statistics.median(v) for k, v in results.items()}
    return {
        "bench": "append",
        "batch_bytes": MiB,
        "total_bytes": count * MiB,
        "runs": repeat,
        "MBps_median": med,
        "ratio_nosync": med["log_nosync"] / med["dd_nosync"],
        "ratio_fsync": med["log_fsync"] / med["dd_fdatasync"],
        "samples": results,
    }


def bench_small(dir: Path, repeat: int) -> dict[str, Any]:
    """Per-append cost of 1 KiB batches (10 records): default policy vs flush.messages=1."""
    from kafkalike.storage.log_config import LogConfig
    from kafkalike.storage.unified_log import UnifiedLog

    batch = _batch_of_size(1024, records=10)
    res: dict[str, list[float]] = {"us_per_append_page_cache": [], "us_per_append_fsync_each": []}
    for _ in range(repeat):
        for key, cfg, n in (("us_per_append_page_cache", LogConfig(), 20000),
                            ("us_per_append_fsync_each", LogConfig(flush_messages=1), 300)):
            _clean(dir)
            log = UnifiedLog.open(dir / "bench-0", cfg)
            t0 = time.perf_counter()
            for _ in range(n):
                log.append(batch, leader_epoch=0)
            res[key].append((time.perf_counter() - t0) / n * 1e6)
            log.close_handlers()
    _clean(dir)
    med = {k: statistics.median(v) for k, v in res.items()}
    return {"bench": "small", "batch_bytes": 1024, "records_per_batch": 10, "runs": repeat, "median": med, "samples": res}




def _serve(total: int, send: Any) -> float:
    """Start a receiver process reading `total` bytes; send(conn) pushes them; returns MB/s.

    The receiver is `dd of=/dev/null bs=4M` reading the socket through bash's /dev/tcp — a C
    read loop like iperf3's, so the receiver is not the bottleneck. Timed from the first byte
    sent until the receiver has read everything and exited.
    """
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    proc = subprocess.Popen(
        ["bash", "-c", f"exec dd of=/dev/null bs=4M < /dev/tcp/127.0.0.1/{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        conn, _ = ls.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        t0 = time.perf_counter()
        send(conn)
        conn.shutdown(socket.SHUT_WR)
        proc.wait(timeout=120)
        dt = time.perf_counter() - t0
        conn.close()
    finally:
        ls.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return total / dt / 1e6


def _iperf3(install: bool) -> float | None:
    if shutil.which("iperf3") is None and install:
        subprocess.run(["apt-get", "install", "-y", "iperf3"], capture_output=True)
    if shutil.which("iperf3") is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "3", "-J"], capture_output=True, text=True, timeout=60)
        data = json.loads(out.stdout)
        return data["end"]["sum_received"]["bits_per_second"] / 8 / 1e6
    except (ValueError, KeyError, subprocess.TimeoutExpired):
        return None
    finally:
        server.terminate()
        server.wait(timeout=10)


def bench_sendfile(dir: Path, gib: float, repeat: int, install_iperf3: bool) -> dict[str, Any]:
    from kafkalike.storage.log_config import LogConfig
    from kafkalike.storage.unified_log import UnifiedLog

    _clean(dir)
    count = int(gib * 1024)
    batch = _batch_of_size(MiB)
    log = UnifiedLog.open(dir / "bench-0", LogConfig())
    for _ in range(count):
        log.append(batch)
    total = count * MiB
    memory = bytes(MiB)

    def send_log(conn: socket.socket) -> None:
        fd_out = conn.fileno()
        offset = 0
        while offset < log.log_end_offset:
            for s in log.read(offset, MiB):  # one 1 MiB batch per fetch, as a consumer's fetch
                pos, left = s.position, s.length
                while left:
                    n = os.sendfile(fd_out, s.fileno(), pos, left)
                    pos += n
                    left -= n
            offset += 1

    def send_memory(conn: socket.socket) -> None:
        for _ in range(count):
            conn.sendall(memory)

    seg_fds = [(seg.log.file.fd, seg.size) for seg in log.segments]
    buf = bytearray(MiB)

    def send_read_copy(conn: socket.socket) -> None:
        # the copying path sendfile avoids: pread the file into user space, then send
        view = memoryview(buf)
        for fd, size in seg_fds:
            pos = 0
            while pos < size:
                n = os.preadv(fd, [view], pos)
                conn.sendall(view[:n])
                pos += n

    # warm the page cache once (reads come from the page cache, as a tailing consumer's do)
    _serve(total, send_log)
    res: dict[str, list[float]] = {"log_sendfile": [], "socket_copy": [], "pread_copy": [], "iperf3": []}
    for _ in range(repeat):
        res["log_sendfile"].append(_serve(total, send_log))
        res["socket_copy"].append(_serve(total, send_memory))
        res["pread_copy"].append(_serve(total, send_read_copy))
        iperf = _iperf3(install_iperf3)
        if iperf is not None:
            res["iperf3"].append(iperf)
    log.close_handlers()
    _clean(dir)
    med = {k: statistics.median(v) for k, v in res.items() if v}
    return {
        "bench": "sendfile",
        "total_bytes": total,
        "runs": repeat,
        "MBps_median": med,
        "ratio_vs_socket_copy": med["log_sendfile"] / med["socket_copy"],
        "ratio_vs_pread_copy": med["log_sendfile"] / med["pread_copy"],
        "ratio_vs_iperf3": (med["log_sendfile"] / med["iperf3"]) if "iperf3" in med else None,
        "samples": res,
    }


def bench_recovery(dir: Path, gib: float, repeat: int, cold: bool) -> dict[str, Any]:
    from kafkalike.storage.log_config import LogConfig
    from kafkalike.storage.unified_log import UnifiedLog

    times = []
    batches = int(gib * GiB) // (16 * 1024)
    info: dict[str, Any] = {}
    for _ in range(repeat):
        _clean(dir)
        cfg = LogConfig(segment_bytes=GiB + MiB)
        log = UnifiedLog.open(dir / "bench-0", cfg)
        b = _batch_of_size(16 * 1024, records=8)
        for _ in range(batches):
            log.append(b)
        path = log.active_segment.log.path
        size = log.active_segment.size
        log.close_handlers()
        with open(path, "r+b") as f:
            f.truncate(size - 5000)  # torn tail: the last batch loses 5000 bytes
        if cold:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("1\n")
        t0 = time.perf_counter()
        log = UnifiedLog.open(dir / "bench-0", cfg, recovery_point=0, had_clean_shutdown=False)
        times.append(time.perf_counter() - t0)
        rep = log.last_recovery
        info = {"bytes_truncated": rep.bytes_truncated, "log_end_offset": log.log_end_offset, "batches": batches}
        log.close_handlers()
    _clean(dir)
    return {"bench": "recovery", "log_bytes": batches * 16 * 1024, "cold_cache": cold, "runs": repeat,
            "seconds_median": statistics.median(times), "samples": times, **info}


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def bench_memory(dir: Path, partitions: int) -> dict[str, Any]:
    from kafkalike.protocol.record_batch import SimpleRecord, build_batch
    from kafkalike.storage.checkpoints import TopicPartition
    from kafkalike.storage.log_config import LogConfig
    from kafkalike.storage.log_manager import LogManager

    _clean(dir)
    mgr = LogManager([dir], LogConfig())
    mgr.startup()
    for p in range(partitions):
        lg = mgr.get_or_create_log(TopicPartition("mem", p))
        for _ in range(10):
            lg.append(bytearray(build_batch([SimpleRecord(b"v" * 100, b"k")] * 10)))
    mgr.shutdown()
    import gc

    gc.collect()
    rss0 = _rss()
    tracemalloc.start()
    m0 = tracemalloc.get_traced_memory()[0]
    mgr = LogManager([dir], LogConfig())
    mgr.startup()
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0] - m0
    tracemalloc.stop()
    rss = _rss() - rss0
    mapped = sum(
        (s.offset_index._capacity * 8 + s.time_index._capacity * 12) for lg in mgr.logs.values() for s in lg.segments
    )
    fds = len(os.listdir("/proc/self/fd"))
    mgr.shutdown()
    _clean(dir)
    return {
        "bench": "memory",
        "partitions": partitions,
        "heap_bytes_per_partition": heap / partitions,
        "rss_bytes_per_partition": rss / partitions,
        "index_bytes_per_partition": mapped / partitions,  # held in memory (mmapped before dec75a5)
        "open_fds_total": fds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=["append", "small", "sendfile", "recovery", "memory", "all"])
    p.add_argument("--dir", type=Path, default=Path("/var/tmp/kafkalike-storage-bench"))
    p.add_argument("--gib", type=float, default=1.0, help="data volume per run, GiB")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--partitions", type=int, default=1000)
    p.add_argument("--install-iperf3", action="store_true")
    p.add_argument("--cold", action="store_true", help="recovery: drop the page cache first (root)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    import logging

    from kafkalike.logs import configure

    configure(level=logging.WARNING)
    out = []
    try:
        if a.which in ("append", "all"):
            out.append(bench_append(a.dir, a.gib, a.repeat))
        if a.which in ("small", "all"):
            out.append(bench_small(a.dir, a.repeat))
        if a.which in ("sendfile", "all"):
            out.append(bench_sendfile(a.dir, a.gib, a.repeat, a.install_iperf3))
        if a.which in ("recovery", "all"):
            out.append(bench_recovery(a.dir, a.gib, a.repeat, a.cold))
        if a.which in ("memory", "all"):
            out.append(bench_memory(a.dir, a.partitions))
    finally:
        shutil.rmtree(a.dir, ignore_errors=True)
    for r in out:
        print(json.dumps(r) if a.json else r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
