"""The three systems ``kafkalike bench`` measures, behind one small interface.

``BenchSystem`` is what a workload needs from a cluster: its bootstrap string, the pids of
its broker processes (for CPU and RSS from /proc), kill -9 / SIGTERM / restart of one
broker, the active controller's id, and topic admin through librdkafka (confluent-kafka's
AdminClient, the same client for every system so the admin path is not what differs).

- ``KafkalikeSystem``: kafkalike's ``LocalCluster`` (3 broker processes on 127.0.0.1-3)
  against a shared ZooKeeper ensemble under its own chroot.
- ``ReferenceSystem``: Apache Kafka 3.9 through ``reference_kafka.ReferenceKafka`` in
  ZooKeeper mode (the same ensemble, another chroot) or KRaft mode (3 combined nodes), on
  127.0.1.1-3.

Timeouts are lined up (the teaching cluster's 6 s ZooKeeper session, see local_cluster.py):
Kafka ZK mode gets ``zookeeper.session.timeout.ms=6000``; KRaft gets
``broker.session.timeout.ms=6000`` (Kafka's default is 9000; heartbeats every 2 s), so a
killed broker is noticed after the same 6 s by every system.

Synchronous (subprocess, sockets, librdkafka); the harness calls it from plain threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs
import structlog

from kafkalike.bench.reference_kafka import ReferenceKafka, ReferenceKafkaError
from kafkalike.cluster.local_cluster import LocalCluster

log = structlog.get_logger(__name__)

SESSION_TIMEOUT_MS = 6000
EXCESSIVE_BATCH = "excessively large batch"
KRAFT_PARTITIONS_PER_OP = 5_000
LIBRDKAFKA_LOGGER = logging.getLogger("kafkalike.bench.librdkafka")
LIBRDKAFKA_LOGGER.disabled = True


class BenchError(Exception):
    """A system could not be started, a topic could not be created, or a measurement did
    not complete in time; the message says which system and step."""


def admin_client(bootstrap: str, **conf: Any) -> Any:
    """A confluent-kafka AdminClient for ``bootstrap`` with librdkafka's logs silenced."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOGGER,
                        "error_cb": lambda err: None, **conf})


class BenchSystem(Protocol):
    """What workloads need from a cluster (see module doc). Broker ids are 1..3."""

    name: str

    @property
    def bootstrap(self) -> str: ...
    def up(self) -> None: ...
    def down(self) -> None: ...
    def pids(self) -> dict[int, int]: ...
    def kill_broker(self, broker_id: int) -> None: ...
    def stop_broker(self, broker_id: int) -> float: ...
    def start_broker(self, broker_id: int, timeout: float = 180.0) -> None: ...
    def active_controller(self) -> int: ...


@attrs.define
class KafkalikeSystem:
    """kafkalike: a ``LocalCluster`` of ``brokers`` processes on 127.0.0.x at ``port``,
    against ``zookeeper_connect`` (an existing ensemble) under ``chroot``."""

    base_dir: Path
    zookeeper_connect: str
    port: int
    brokers: int = 3
    chroot: str = "bench-kafkalike"
    name: str = "kafkalike"
    overrides: dict[str, str] = attrs.Factory(dict)
    """extra broker configuration (e.g. kafkalike.debug.request.hops=true)."""
    cluster: LocalCluster = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.cluster = LocalCluster(self.base_dir, brokers=self.brokers, base_port=self.port,
                                    zookeeper_connect=self.zookeeper_connect, chroot=self.chroot,
                                    overrides={"zookeeper.session.timeout.ms": str(SESSION_TIMEOUT_MS),
                                               # the durability settings Kafka gets (topic_defaults)
                                               "min.insync.replicas": "2",
                                               "default.replication.factor": str(min(3, self.brokers)),
                                               "unclean.leader.election.enable": "false",
                                               **self.overrides})

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap_servers

    def up(self) -> None:
        """Start every broker; return when all are registered and Metadata lists them."""
        self.cluster.start(timeout=90)
        wait_metadata_brokers(self.bootstrap, set(self.cluster.broker_ids), 60.0, self.name)

    def down(self) -> None:
        self.cluster.stop()

    def pids(self) -> dict[int, int]:
        return {i: p for i in self.cluster.broker_ids
                if self.cluster.broker_alive(i) and (p := self.cluster.broker_pid(i)) is not None}

    def kill_broker(self, broker_id: int) -> None:
        self.cluster.kill_broker(broker_id)

    def stop_broker(self, broker_id: int) -> float:
        """SIGTERM (controlled shutdown) and wait for the process to exit; seconds taken."""
        t0 = time.monotonic()
        self.cluster.stop_broker(broker_id, timeout=120.0)
        return time.monotonic() - t0

    def start_broker(self, broker_id: int, timeout: float = 180.0) -> None:
        """Restart ``broker_id``; return when it is registered and Metadata lists every
        broker (BenchError / LocalCluster's error after ``timeout`` seconds)."""
        t0 = time.monotonic()
        self.cluster.start_broker(broker_id)
        self.cluster.wait_registered([broker_id], timeout=timeout)
        wait_metadata_brokers(self.bootstrap, set(self.cluster.broker_ids),
                              max(60.0, timeout - (time.monotonic() - t0)), self.name)

    def active_controller(self) -> int:
        return metadata_controller(self.bootstrap, self.name)


@attrs.define
class ReferenceSystem:
    """Apache Kafka 3.9 in ``mode`` "zk" (against ``zookeeper_connect`` under ``chroot``) or
    "kraft", on 127.0.1.x at ``port`` (KRaft controllers at port+1)."""

    base_dir: Path
    mode: str
    port: int
    zookeeper_connect: str | None = None
    chroot: str = "/bench-kafka-zk"
    brokers: int = 3
    heap: str = "512m"
    name: str = attrs.field(init=False)
    rk: ReferenceKafka = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.name = "kafka-zk" if self.mode == "zk" else "kafka-kraft"
        overrides = ({"zookeeper.session.timeout.ms": str(SESSION_TIMEOUT_MS)} if self.mode == "zk"
                     else {"broker.session.timeout.ms": str(SESSION_TIMEOUT_MS)})
        zk = None
        if self.mode == "zk" and self.zookeeper_connect:
            zk = self.zookeeper_connect + self.chroot
        self.rk = ReferenceKafka(mode=self.mode, base_dir=self.base_dir, brokers=self.brokers,  # type: ignore[arg-type]  # mode is 'zk' or 'kraft', checked by the CLI
                                 port=self.port, controller_port=self.port + 1, zookeeper=zk,
                                 overrides=overrides, heap=self.heap)

    @property
    def bootstrap(self) -> str:
        return self.rk.bootstrap

    def up(self) -> None:
        try:
            self.rk.up(fresh=True, timeout=180)
        except ReferenceKafkaError as e:
            raise BenchError(f"{self.name} did not start: {e}") from e

    def down(self) -> None:
        self.rk.down(timeout=60)

    def pids(self) -> dict[int, int]:
        return self.rk.pids()

    def kill_broker(self, broker_id: int) -> None:
        self.rk.kill_broker(broker_id)

    def stop_broker(self, broker_id: int) -> float:
        return self.rk.stop_broker(broker_id, timeout=120.0)

    def start_broker(self, broker_id: int, timeout: float = 180.0) -> None:
        """Restart ``broker_id`` and wait until it listens and is registered (a broker of
        10,000 partitions loads every log first: minutes on this machine after a kill -9)."""
        try:
            self.rk.start_broker(broker_id, wait=True, timeout=timeout)
        except ReferenceKafkaError as e:
            raise BenchError(f"{self.name}: broker {broker_id} did not restart: {e}") from e

    def active_controller(self) -> int:
        try:
            return self.rk.active_controller()
        except ReferenceKafkaError as e:
            raise BenchError(f"{self.name}: {e}") from e


# ------------------------------------------------------------------ metadata helpers


T = TypeVar("T")


def rotated(items: Sequence[T], r: int) -> list[T]:
    """``items`` rotated left by ``r``: the visiting order of round ``r`` of a side-by-side
    measurement (round 0: a, b, c; round 1: b, c, a; ...), so that warm-up and drift over a run
    fall on every side alike. With two sides: A B, B A, A B, ... (negative warm-up rounds too)."""
    if not items:
        return []
    k = r % len(items)
    return list(items[k:]) + list(items[:k])


class _Stoppable(Protocol):
    def stop(self) -> None: ...


def stop_systems(live: Mapping[str, BenchSystem], ensemble: _Stoppable | None, event: str) -> None:
    """Stop every system in ``live`` (printing which), then ``ensemble`` (the ZooKeeper the
    bench started itself, or None). A system that fails to stop is logged as ``event`` with its
    name and the error, and the others are still stopped: for a bench's ``finally`` block."""
    for name, system in live.items():
        print(f"stopping {name} ...", flush=True)
        try:
            system.down()
        except Exception as e:
            log.warning(event, system=name, error=str(e))
    if ensemble is not None:
        ensemble.stop()


def wait_metadata_brokers(bootstrap: str, expected: set[int], timeout: float, name: str) -> None:
    """Block until a Metadata response lists exactly ``expected`` broker ids; BenchError after
    ``timeout`` seconds."""
    admin = admin_client(bootstrap, **{"socket.timeout.ms": 3000})
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while time.monotonic() < deadline:
        try:
            seen = set(admin.list_topics(timeout=5).brokers)
            if seen == expected:
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise BenchError(f"{name}: Metadata lists brokers {sorted(seen)}, expected {sorted(expected)}")


def metadata_controller(bootstrap: str, name: str) -> int:
    """The controller id in a Metadata response (ZooKeeper-era: the /controller holder)."""
    try:
        cid = admin_client(bootstrap).list_topics(timeout=10).controller_id
    except Exception as e:
        raise BenchError(f"{name}: no Metadata: {e}") from e
    if cid < 0:
        raise BenchError(f"{name}: no controller in Metadata")
    return int(cid)


def create_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int = 3,
                 timeout: float = 600.0, configs: dict[str, str] | None = None) -> float:
    """Create ``topic`` with CreateTopics (librdkafka) and wait until Metadata shows a leader
    for every partition; returns the seconds that took. BenchError on a CreateTopics error
    or after ``timeout`` seconds."""
    from confluent_kafka.admin import NewPartitions, NewTopic

    t0 = time.monotonic()
    # librdkafka fails a request after socket.timeout.ms (60 s by default): a ZooKeeper-mode
    # controller can take longer than that for thousands of partitions on a busy machine
    admin = admin_client(bootstrap, **{"socket.timeout.ms": int(min(timeout, 300.0) * 1000)})
    step = min(timeout, 300.0)
    futures = admin.create_topics([NewTopic(topic, partitions, replication_factor, config=configs or {})],
                                  request_timeout=step, operation_timeout=step)
    try:
        futures[topic].result(timeout=timeout)
    except Exception as e:
        if EXCESSIVE_BATCH not in str(e):
            raise BenchError(f"CreateTopics {topic} ({partitions} partitions): {e}") from e
        # KRaft's controller refuses a user operation of more than 10,000 metadata records
        # (QuorumController's MAX_RECORDS_PER_USER_OP; BoundedListTooLongException becomes
        # POLICY_VIOLATION): a 10,000-partition topic is one TopicRecord + 10,000
        # PartitionRecords. Kafka's answer is to grow the topic with CreatePartitions.
        log.info("bench_create_topic_in_steps", topic=topic, partitions=partitions)
        count = min(partitions, KRAFT_PARTITIONS_PER_OP)
        try:
            admin.create_topics([NewTopic(topic, count, replication_factor, config=configs or {})],
                                request_timeout=step, operation_timeout=step)[topic].result(timeout=timeout)
            while count < partitions:
                count = min(partitions, count + KRAFT_PARTITIONS_PER_OP)
                admin.create_partitions([NewPartitions(topic, count)], request_timeout=step,
                                        operation_timeout=step)[topic].result(timeout=timeout)
        except Exception as e2:
            raise BenchError(f"CreateTopics/CreatePartitions {topic} ({count} of {partitions} "
                             f"partitions): {e2}") from e2
    wait_leaders(bootstrap, topic, partitions, timeout - (time.monotonic() - t0))
    return time.monotonic() - t0


def elect_preferred_leaders(bootstrap: str, topic: str, timeout: float = 60.0) -> None:
    """ElectLeaders (PREFERRED, KIP-460) for every partition of ``topic``, best effort: after
    kill -9s and restarts a ZooKeeper-mode cluster can leave every leadership on one broker
    until its periodic rebalance (leader.imbalance.check.interval.seconds, 300 s). Errors
    (ELECTION_NOT_NEEDED, or a broker without the API) are logged, not raised."""
    from confluent_kafka import ElectionType, TopicPartition

    md = partition_metadata(bootstrap, topic)
    admin = admin_client(bootstrap, **{"socket.timeout.ms": int(timeout * 1000)})
    try:
        admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, p) for p in md],
                            request_timeout=timeout, operation_timeout=timeout).result(timeout=timeout)
    except Exception as e:
        log.info("bench_elect_leaders_failed", topic=topic, error=str(e)[:300])


def partition_metadata(bootstrap: str, topic: str, timeout: float = 30.0) -> dict[int, tuple[int, list[int]]]:
    """{partition: (leader id, isr)} of ``topic``; empty when unknown or unreachable."""
    try:
        md = admin_client(bootstrap).list_topics(topic=topic, timeout=timeout)
    except Exception:
        return {}
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return {}
    return {p.id: (p.leader, list(p.isrs)) for p in t.partitions.values()}


def wait_leaders(bootstrap: str, topic: str, partitions: int, timeout: float,
                 full_isr: int = 0) -> None:
    """Block until every partition of ``topic`` has a leader (and, with ``full_isr``, at
    least that many ISR members); BenchError after ``timeout`` seconds."""
    deadline = time.monotonic() + max(timeout, 1.0)
    while True:
        md = partition_metadata(bootstrap, topic)
        if len(md) == partitions and all(leader >= 0 and len(isr) >= full_isr for leader, isr in md.values()):
            return
        if time.monotonic() > deadline:
            ready = sum(1 for leader, isr in md.values() if leader >= 0 and len(isr) >= full_isr)
            raise BenchError(f"topic {topic}: {ready}/{partitions} partitions ready after {timeout:.0f} s")
        time.sleep(0.5)


def delete_topic(bootstrap: str, topic: str, timeout: float = 120.0) -> None:
    """DeleteTopics, best effort (a failure is logged, not raised: deletion only keeps the
    next measurement's partition count clean)."""
    admin = admin_client(bootstrap)  # kept alive until the future resolves
    try:
        admin.delete_topics([topic], operation_timeout=timeout)[topic].result(timeout=timeout)
    except Exception as e:
        log.warning("bench_delete_topic_failed", topic=topic, error=str(e))


@contextlib.contextmanager
def processes_run_from(checkout: str | Path) -> Iterator[None]:
    """Within the block, kafkalike processes started (``python -m kafkalike ...``) import the
    code of ``checkout`` (another kafkalike checkout): cwd and PYTHONPATH point there, and both
    are restored on exit. For before/after benchmarks of two commits side by side
    (bench/idle_cpu.py, bench/ack_latency.py); a broker restarted after the block would run
    this process's code."""
    cwd, pythonpath = os.getcwd(), os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(checkout)
    os.chdir(checkout)
    try:
        yield
    finally:
        os.chdir(cwd)
        if pythonpath is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = pythonpath
