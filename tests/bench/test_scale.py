"""Unit tests of the scale benchmark's own parts (kafkalike/bench/scale.py): the /proc counts it
reports per broker, the per-partition arithmetic, the names that put its points on the
failover-scaling plot, and the descriptor check that skips a system before starting anything.
No cluster here: the benchmark itself runs clusters of 30,000 partitions (minutes)."""

from __future__ import annotations

import mmap
import os
import resource
import types
from pathlib import Path

import pytest

from kafkalike.bench.harness import _Run
from kafkalike.bench.report import Sample, failover_partitions, scaling_table
from kafkalike.bench.scale import (BrokerFootprint, failover_workload, map_areas, measure_system,
                                   open_descriptors, parse_systems, per_partition)
from kafkalike.bench.systems import BenchError


def test_open_descriptors_counts_a_file_opened_and_closed(tmp_path: Path) -> None:
    """The count of this process's /proc/<pid>/fd grows by one per open file and falls back
    when it is closed."""
    before = open_descriptors(os.getpid())
    fds = [os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT) for i in range(3)]
    try:
        assert open_descriptors(os.getpid()) == before + 3
    finally:
        for fd in fds:
            os.close(fd)
    assert open_descriptors(os.getpid()) == before


def test_map_areas_sees_a_file_mapping(tmp_path: Path) -> None:
    """A mapped file is one more line of /proc/<pid>/maps, gone when the map is closed (what
    Kafka's mmapped indexes cost against vm.max_map_count)."""
    path = tmp_path / "index"
    path.write_bytes(b"\0" * 8192)
    before = map_areas(os.getpid())
    with open(path, "r+b") as f:
        mm = mmap.mmap(f.fileno(), 8192)
    during = map_areas(os.getpid())
    mm.close()
    assert during >= before + 1
    assert map_areas(os.getpid()) < during


def test_counts_of_a_process_that_is_gone_raise_bench_error() -> None:
    """A pid with no /proc entry is a BenchError, not an OSError or a zero."""
    pid = 2**22 + 12345  # above pid_max's usual 4,194,304: never a live process
    with pytest.raises(BenchError):
        open_descriptors(pid)
    with pytest.raises(BenchError):
        map_areas(pid)


def test_per_partition_is_the_mean_growth_over_brokers_measured_twice() -> None:
    """(with - idle) summed over the brokers present both times, over brokers × partitions;
    a broker measured only once is left out."""
    idle = [BrokerFootprint(1, 100 * 2**20, 150, 900), BrokerFootprint(2, 110 * 2**20, 160, 910)]
    loaded = [BrokerFootprint(1, 220 * 2**20, 30_150, 960), BrokerFootprint(2, 250 * 2**20, 30_162, 970),
              BrokerFootprint(3, 999 * 2**20, 99_999, 9_999)]
    grow = per_partition(idle, loaded, 30_000)
    assert grow["rss"] == (120 + 140) * 2**20 / 60_000
    assert grow["descriptors"] == (30_000 + 30_002) / 60_000
    assert grow["maps"] == (60 + 60) / 60_000
    with pytest.raises(ValueError):
        per_partition(idle, [BrokerFootprint(3, 1, 1, 1)], 30_000)
    with pytest.raises(ValueError):
        per_partition(idle, loaded, 0)


def test_failover_rows_join_the_scaling_plot_and_resource_rows_do_not() -> None:
    """The failover workload name carries the count as `kafkalike bench` writes it, so the
    30,000 point joins the 10,000 one in scaling_table; the RSS rows stay out of that plot."""
    assert failover_workload(30_000) == "failover, 30,000 partitions"
    assert failover_partitions(failover_workload(30_000)) == 30_000
    assert failover_partitions("resources, 30,000 partitions") is None
    samples = [Sample(failover_workload(n), "create topic to full ISR", "kafkalike", v, "s", 0, False)
               for n, v in ((10_000, 20.0), (30_000, 70.0))]
    samples.append(Sample("resources, 30,000 partitions", "RSS per broker", "kafkalike", 300.0, "MiB", 0, False))
    table = scaling_table(samples)
    assert table == {"create topic to full ISR": {"kafkalike": [(10_000, 20.0), (30_000, 70.0)]}}


def test_parse_systems_keeps_the_order_and_refuses_others() -> None:
    """The order given is the order measured; KRaft, unknown names, repeats and nothing are
    refused."""
    assert parse_systems("kafka-zk, kafkalike") == ["kafka-zk", "kafkalike"]
    for bad in ("kafka-kraft", "kafkalike,nope", "kafkalike,kafkalike", " , "):
        with pytest.raises(ValueError):
            parse_systems(bad)


def test_a_system_over_the_descriptor_limit_is_skipped_before_any_step() -> None:
    """kafkalike with more partitions than the open-files limit allows is recorded as skipped
    with the reason, and no step touches the system (it has no methods to call)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        pytest.skip("no open-files limit in this process")
    run = _Run()
    measure_system(run, "kafkalike", types.SimpleNamespace(name="kafkalike"), soft + 1)
    assert run.samples == []
    assert len(run.errors) == 1 and "skipped" in run.errors[0] and f"{soft:,}" in run.errors[0]


def test_kafka_heap_grows_with_the_largest_failover_topic() -> None:
    """512 MiB without large topics, Kafka's default 1 GiB from 5,000 partitions, 2 GiB from
    20,000 (the scale runs); only the failover workload's counts matter."""
    import attrs

    from kafkalike.bench.harness import QUICK, kafka_heap

    def heap(*counts: int, workloads: tuple[str, ...] = ("failover",)) -> str:
        return kafka_heap(attrs.evolve(QUICK, failover_partitions=counts), workloads)

    assert heap(100, 1_000) == "512m"
    assert heap(100, 10_000) == "1g"
    assert heap(10_000, 30_000) == "2g"
    assert heap(30_000, workloads=("produce",)) == "512m"


def test_controller_failover_waits_longer_only_for_large_clusters() -> None:
    """300 s up to 15,000 partitions (every earlier figure), 20 ms per partition past it."""
    from kafkalike.bench.workloads import failover_timeout

    assert failover_timeout(100) == failover_timeout(15_000) == 300.0
    assert failover_timeout(30_000) == 600.0
