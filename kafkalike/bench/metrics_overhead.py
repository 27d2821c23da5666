"""What the Prometheus metrics (kafkalike/broker/broker_metrics.py) cost on the produce path,
measured before/after in one run.

Two 1-broker clusters of real broker processes on one ZooKeeper: "before" runs the code of
``--before`` (default: cb3f74d^, the parent of the commit that added the metrics), unpacked with ``git archive``
into the work dir and put first on the broker's PYTHONPATH; "after" runs this tree with
/metrics on, scraped every ``--scrape-interval`` seconds (default 1 s; Prometheus's default
is 15 s) by a thread of this process while producing. librdkafka (acks=1, linger.ms 5,
batch.size 16 KiB, 3 partitions) produces the same ``--mbytes`` of 100-byte records to each in
turn, alternating which goes first per round; records/s and broker CPU µs per record
(/proc), medians over ``--rounds``. Not a test: nothing here asserts.

Usage (from any directory but the repository root, so that ``python -m`` does not put this
tree ahead of the "before" code):
  cd /tmp && /work/main/.venv/bin/python -m kafkalike.bench.metrics_overhead --rounds 5 --mbytes 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _old_tree(base: Path, commit: str) -> Path:
    dest = base / "before-src"
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "kafkalike"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run(base: Path, rounds: int, mbytes: float, record_bytes: int, before: str,
        scrape_interval: float) -> dict[str, Any]:
    """Both clusters, the alternating produce rounds, then every process stopped."""
    from kafkalike.bench.produce_validation import produce_in_turn
    from kafkalike.cluster.local_cluster import LocalCluster
    from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port

    old_src = _old_tree(base, before)
    knows_key = "kafkalike.metrics.port" in (old_src / "kafkalike/broker/kafka_config.py").read_text()

    class OldCluster(LocalCluster):  # an old broker refuses the (then unknown) metrics key
        def server_properties(self, broker_id: int) -> dict[str, str]:
            props = super().server_properties(broker_id)
            if knows_key:  # --before a commit with metrics (a control run): endpoint off there
                props["kafkalike.metrics.port"] = "-1"
            else:
                props.pop("kafkalike.metrics.port", None)
            return props

    ens = ZkEnsemble(str(base / "zk"), nodes=1, base_port=find_free_base_port(["127.0.0.3"]), first_host=3,
                     die_with_parent=True)
    clusters: dict[str, LocalCluster] = {}
    stop_scraping = threading.Event()
    scrapes = [0]
    scrape_ms: list[float] = []
    scrape_bytes = [0]
    try:
        ens.start(timeout=60)
        port_b = find_free_base_port(["127.0.0.1"], low=30000, high=32000)
        clusters["before"] = OldCluster(base / "before", brokers=1, first_host=1, base_port=port_b,
                                        zookeeper_connect=ens.connect_string, chroot="metrics-before")
        port_a = find_free_base_port(["127.0.0.2"], low=30000, high=32000)
        metrics_port = find_free_base_port(["127.0.0.2"], low=33000, high=34000)
        clusters["after"] = LocalCluster(base / "after", brokers=1, first_host=2, base_port=port_a,
                                         zookeeper_connect=ens.connect_string, chroot="metrics-after",
                                         metrics_port=metrics_port)
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(old_src)
        try:
            clusters["before"].start(timeout=90)
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH")
            else:
                os.environ["PYTHONPATH"] = saved
        clusters["after"].start(timeout=90)
        url = clusters["after"].metrics_url(1)
        for mode, serves in (("before", False), ("after", True)):  # each broker runs the code asked for
            if ("metrics_listening" in clusters[mode].log_path(1).read_text(errors="replace")) != serves:
                raise RuntimeError(f"the {mode} broker did not start the code asked for")

        def scraper() -> None:
            while not stop_scraping.wait(scrape_interval):
                t0 = time.perf_counter()
                with urllib.request.urlopen(url, timeout=10) as r:
                    scrape_bytes[0] = len(r.read())
                scrape_ms.append((time.perf_counter() - t0) * 1000)
                scrapes[0] += 1

        thread = threading.Thread(target=scraper, daemon=True)
        thread.start()
        # clusters holds "before" then "after": round 0 produces to "before" first, as it did
        m = produce_in_turn(clusters, f"m-{record_bytes}", "none", record_bytes, mbytes, rounds)
        stop_scraping.set()
        return {"before_commit": before, "record_bytes": record_bytes, "records_per_run": m.records,
                "rounds": rounds, "scrape_interval_s": scrape_interval, "scrapes": scrapes[0],
                "scrape_ms_median": statistics.median(scrape_ms) if scrape_ms else None,
                "scrape_bytes": scrape_bytes[0],
                "records_per_s_before": m.records_per_s["before"], "records_per_s_after": m.records_per_s["after"],
                "after_vs_before": m.records_per_s["after"] / m.records_per_s["before"],
                "broker_cpu_us_per_record_before": m.cpu_us_per_record["before"],
                "broker_cpu_us_per_record_after": m.cpu_us_per_record["after"], "samples": m.samples}
    finally:
        stop_scraping.set()
        for cluster in clusters.values():
            cluster.stop()
        ens.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a summary (or --json)."""
    parser = argparse.ArgumentParser(prog="python -m kafkalike.bench.metrics_overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mbytes", type=float, default=10.0, help="MB of records per produce run")
    parser.add_argument("--record-bytes", type=int, default=100)
    parser.add_argument("--before", default="cb3f74d^",
                        help="commit whose broker is the 'before' (default: the parent of the metrics commit)")
    parser.add_argument("--scrape-interval", type=float, default=1.0, help="seconds between /metrics scrapes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="kafkalike-metrics-bench-"))
    try:
        result = run(base, args.rounds, args.mbytes, args.record_bytes, args.before, args.scrape_interval)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['records_per_run']:,} records of {result['record_bytes']} B per run, "
              f"{result['rounds']} rounds, /metrics scraped every {result['scrape_interval_s']:g} s "
              f"({result['scrapes']} scrapes, median {result['scrape_ms_median'] or 0:.1f} ms for "
              f"{result['scrape_bytes']:,} bytes, HTTP round trip included)")
        print(f"before ({result['before_commit']}): {result['records_per_s_before']:,.0f} records/s, "
              f"broker CPU {result['broker_cpu_us_per_record_before']:.2f} µs/record")
        print(f"after (metrics on):  {result['records_per_s_after']:,.0f} records/s, "
              f"broker CPU {result['broker_cpu_us_per_record_after']:.2f} µs/record "
              f"(after/before {result['after_vs_before']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
