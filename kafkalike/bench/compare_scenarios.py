"""The clusters and scenarios of ``kafkalike compare`` (issue 21): the same faults on kafkalike in
ZooKeeper mode (LocalCluster: 3-node ZooKeeper ensemble + 3 brokers) and in KRaft mode
(KRaftCluster: 3 controllers + 3 brokers), each measured from the fault to the moment clients
can see the cluster whole again, through Metadata answers of every live broker.

Scenarios (``SCENARIOS``; seconds, wall clock, measured by this process polling every ~0.1 s):

* ``controller_failover``: kill -9 of the active controller (ZK mode: the broker holding
  /controller; KRaft: the quorum leader) -> until a CreateTopics (1 partition, RF 2) succeeds and a
  live broker's Metadata shows the topic with a leader.
* ``broker_failure``: kill -9 of the broker that is not the ZK controller and leads the most
  partitions of the scenario topic -> until every partition has a live leader in every surviving
  broker's Metadata; ``moved`` = the partitions it led.
* ``controlled_shutdown``: SIGTERM of the broker chosen the same way -> until its process exited;
  ``moved`` = the partitions it led before.
* ``create_partitions``: CreateTopics of a topic of P partitions (RF 3; above 5,000 partitions
  CreateTopics of 5,000 then CreatePartitions by 5,000, see ``create_topic``) -> until every
  broker's Metadata shows all P with a leader.
* ``metadata_propagation``: CreateTopics of a 1-partition topic -> until every broker's Metadata
  shows it with a leader.
* ``cold_restart``: stop the whole cluster (brokers' controlled shutdown, then ZooKeeper or the
  controllers), start it again -> from the start until every partition is led in every broker's
  Metadata.

Before each fault the scenario topic's preferred leaders are elected (ElectLeaders), so every
broker leads about a third of it. Each fault is undone after the measurement (the node restarted, the cluster whole again) before
the next. All functions are synchronous (they drive processes); probes run ``trio.run``.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import structlog
import trio

from kafkalike.client.admin import AdminClient, NewTopic
from kafkalike.client.cluster import Cluster, cluster_from_metadata
from kafkalike.client.connection import KafkaConnection
from kafkalike.cluster import process
from kafkalike.cluster.kraft_cluster import KRaftCluster
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import find_free_base_port
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

__all__ = ["SYSTEMS", "SCENARIOS", "ComparedCluster", "Measurement", "CompareError", "run_scenario",
           "metadata_of", "wait_until", "elect_preferred_leaders"]

SYSTEMS = ("kafkalike-zk", "kafkalike-kraft")
SCENARIOS = ("controller_failover", "broker_failure", "controlled_shutdown", "create_partitions",
             "metadata_propagation", "cold_restart")
#: the topic every fault scenario watches (P partitions, RF 3), made once per cluster
TOPIC = "compare-topic"
POLL_S = 0.1


class CompareError(Exception):
    """A scenario did not complete within its timeout (the message says what was awaited)."""


@attrs.frozen
class Measurement:
    """One round of one scenario: ``seconds`` from the fault (wall clock), ``fault_at`` /
    ``done_at`` (time.time() s, to cut the logs for the trace), ``moved`` (controlled shutdown:
    partitions the stopped broker led; else 0), ``node`` (the node faulted, or -1)."""

    scenario: str
    seconds: float
    fault_at: float
    done_at: float
    moved: int = 0
    node: int = -1


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` every POLL_S s until true; the seconds waited. CompareError after ``timeout`` s."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise CompareError(f"{what}: not within {timeout:.0f}s")
        time.sleep(POLL_S)
    return time.monotonic() - start


def metadata_of(address: str, topics: list[str] | None, timeout_s: float = 5.0) -> Cluster | None:
    """Metadata answered by the one broker at ``address`` ("host:port") for ``topics`` (None: all);
    None if it does not answer within ``timeout_s``."""

    async def ask() -> Cluster:
        host, _, port = address.rpartition(":")
        with trio.fail_after(timeout_s):
            async with KafkaConnection.open(host, int(port), connect_timeout_ms=timeout_s * 1000) as conn:
                wanted: Any = None if topics is None else [{"name": t} for t in topics]
                response = await conn.call(ApiKey.METADATA, topics=wanted, allow_auto_topic_creation=False,
                                           timeout_ms=timeout_s * 1000)
                return cluster_from_metadata(response)
    try:
        return trio.run(ask)
    except Exception:  # noqa: BLE001 -- a broker down or starting answers nothing; the probe says None
        return None


PARTITIONS_PER_REQUEST = 5000
"""Partitions one CreateTopics / CreatePartitions creates at most: a KRaft controller refuses a
user operation of more than 10,000 records (Kafka 3.9's MAX_RECORDS_PER_USER_OP; one record per
partition plus the TopicRecord), so a 10,000-partition topic is created as 5,000 and grown by
5,000, the same way in both modes."""


def create_topic(bootstrap: str, name: str, partitions: int, replication_factor: int,
                 timeout_s: float = 30.0) -> ErrorCode:
    """CreateTopics through the cluster's controller (more than PARTITIONS_PER_REQUEST partitions:
    CreateTopics of that many, then CreatePartitions of up to that many more at a time); the
    topic's error code (TOPIC_ALREADY_EXISTS after a retried request counts as created), or the
    first CreatePartitions error; raises on a connection/timeout error."""

    requests = max(1, -(-partitions // PARTITIONS_PER_REQUEST))

    async def create() -> ErrorCode:
        with trio.fail_after((timeout_s + 10) * requests):  # each request may take timeout_s
            async with AdminClient(bootstrap, request_timeout_ms=timeout_s * 1000) as admin:
                first = min(partitions, PARTITIONS_PER_REQUEST)
                result = await admin.create_topics([NewTopic(name, first, replication_factor)],
                                                   timeout_ms=int(timeout_s * 1000), raise_errors=False)
                code = result[name]
                count = first
                while count < partitions and code in (ErrorCode.none, ErrorCode.topic_already_exists):
                    count = min(partitions, count + PARTITIONS_PER_REQUEST)
                    grown = await admin.create_partitions({name: count}, timeout_ms=int(timeout_s * 1000),
                                                          raise_errors=False)
                    if grown[name] not in (ErrorCode.none, ErrorCode.invalid_partitions):
                        return grown[name]  # INVALID_PARTITIONS: a retried request already grew it
                return code
    return trio.run(create)


@attrs.define
class ComparedCluster:
    """One system's fresh cluster under ``base_dir``: ``system`` in SYSTEMS; 3 brokers (ids 1..3) and
    3 ZooKeeper nodes or 3 controllers (ids 3001..3003), on free ports."""

    system: str
    base_dir: Path
    brokers: int = 3
    cluster: Any = None

    def __attrs_post_init__(self) -> None:
        hosts = [f"127.0.0.{i}" for i in range(1, self.brokers + 1)]
        if self.system == "kafkalike-zk":
            self.cluster = LocalCluster(self.base_dir, brokers=self.brokers, zk_nodes=3,
                                        base_port=find_free_base_port(hosts),
                                        zk_base_port=find_free_base_port(["127.0.0.1", "127.0.0.2", "127.0.0.3"]))
        elif self.system == "kafkalike-kraft":
            self.cluster = KRaftCluster(self.base_dir, brokers=self.brokers, controllers=3,
                                        base_port=find_free_base_port(hosts),
                                        controller_port=find_free_base_port(["127.0.1.1", "127.0.1.2", "127.0.1.3"]))
        else:
            raise ValueError(f"unknown system {self.system!r}: choose from {', '.join(SYSTEMS)}")

    @property
    def kraft(self) -> bool:
        return self.system == "kafkalike-kraft"

    @property
    def broker_ids(self) -> list[int]:
        return list(range(1, self.brokers + 1))

    def address(self, broker_id: int) -> str:
        return str(self.cluster.broker_address(broker_id))

    def bootstrap(self, broker_ids: list[int] | None = None) -> str:
        return ",".join(self.address(i) for i in (broker_ids or self.broker_ids))

    def alive(self, node_id: int) -> bool:
        return bool(self.cluster.alive(node_id) if self.kraft else self.cluster.broker_alive(node_id))

    def live_brokers(self) -> list[int]:
        return [i for i in self.broker_ids if self.alive(i)]

    def start(self, timeout: float = 600.0) -> None:
        self.cluster.start(timeout=timeout)

    def stop(self) -> None:
        self.cluster.stop()

    def active_controller(self) -> int:
        """ZK mode: the broker id Metadata names as controller; KRaft: the quorum leader's node id."""
        if self.kraft:
            quorum = self.cluster.quorum()
            if quorum is None:
                raise CompareError("no controller answers DescribeQuorum as leader")
            return int(quorum.leader_id)
        for i in self.live_brokers():
            md = metadata_of(self.address(i), [])
            if md is not None and md.controller_id >= 0:
                return md.controller_id
        raise CompareError("no broker names a controller")

    def pid(self, node_id: int) -> int | None:
        return self.cluster.pid(node_id) if self.kraft else self.cluster.broker_pid(node_id)

    def kill(self, node_id: int) -> None:
        """kill -9 of one node (a broker, or with KRaft a controller)."""
        process.signal_pid(self.pid(node_id), signal.SIGKILL)  # type: ignore[arg-type]  # a live node has a pid

    def sigterm(self, node_id: int) -> None:
        process.signal_pid(self.pid(node_id), signal.SIGTERM)  # type: ignore[arg-type]  # a live node has a pid

    def restore(self, timeout: float = 600.0) -> None:
        """Start what is down and wait until every broker lists all brokers and leads ``TOPIC``."""
        if not self.kraft:
            self.cluster.start(timeout=timeout)  # waits out a killed broker's ZooKeeper session
            return
        restarted = [i for i in self.cluster.controller_ids + self.broker_ids if not self.cluster.alive(i)]
        for i in restarted:
            self.cluster.start_node(i)
        # the restarted broker itself must answer with every broker: the others may still list
        # its old incarnation (in controlled shutdown, or not fenced yet)
        wait_until(lambda: all(set(self.broker_ids) <= set(self.cluster.metadata_broker_ids(i))
                               for i in self.broker_ids), timeout, f"{self.system}: every broker back")

    def all_led(self, topic: str, partitions: int, brokers: list[int] | None = None,
                without: int | None = None) -> bool:
        """True when each of ``brokers`` (default: the live ones) answers Metadata with all
        ``partitions`` of ``topic`` led by a live broker other than ``without``."""
        for b in brokers if brokers is not None else self.live_brokers():
            md = metadata_of(self.address(b), [topic])
            info = md.topics.get(topic) if md is not None else None
            if info is None or len(info.partitions) != partitions:
                return False
            for p in info.partitions.values():
                if p.leader < 0 or p.leader == without or p.leader not in md.brokers:  # type: ignore[union-attr]
                    return False
        return True


def elect_preferred_leaders(c: ComparedCluster, partitions: int, timeout: float = 180.0) -> bool:
    """ElectLeaders (preferred, Kafka's election type 0) for every partition of ``TOPIC``, then wait
    until every broker's Metadata shows each partition led by its first replica: each fault starts
    from a balanced cluster, as after Kafka's auto.leader.rebalance. False (and a warning) if it
    did not balance within ``timeout`` s (the next fault's ``moved`` then says how many it hit)."""
    import datetime

    from kafkalike.client.kafka_client import KafkaClient

    async def elect() -> None:
        with trio.fail_after(60):
            async with KafkaClient(c.bootstrap(), client_id="kafkalike-compare", request_timeout_ms=30000) as client:
                conn = await client.controller_connection()
                await conn.call(ApiKey.ELECT_LEADERS, election_type=0, timeout=datetime.timedelta(seconds=30),
                                topic_partitions=[{"topic": TOPIC, "partitions": list(range(partitions))}])

    def balanced() -> bool:
        for b in c.broker_ids:
            md = metadata_of(c.address(b), [TOPIC])
            info = md.topics.get(TOPIC) if md is not None else None
            if info is None or any(not p.replicas or p.leader != p.replicas[0] for p in info.partitions.values()):
                return False
        return True

    if balanced():
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # a preferred replica still catching up is not in the ISR yet: the election of its
        # partitions fails (PREFERRED_LEADER_NOT_AVAILABLE) and is asked again
        try:
            trio.run(elect)
            wait_until(balanced, 5.0, f"{c.system}: preferred leaders of {TOPIC}")
            return True
        except Exception:  # noqa: BLE001 -- not yet: try again until the deadline
            continue
    log.warning("compare_rebalance_failed", system=c.system, timeout_s=timeout)
    return False


def _victim(c: ComparedCluster, partitions: int) -> int:
    """The broker a broker fault hits: of the brokers that are not the ZK controller (a broker
    fault, not a controller failover), the one leading the most partitions of ``TOPIC`` (after
    earlier faults leadership is uneven: kafkalike, like Kafka, moves it back only at
    auto.leader.rebalance's next check)."""
    avoid = -1 if c.kraft else c.active_controller()
    return max((i for i in c.broker_ids if i != avoid), key=lambda i: (_leads(c, i, partitions), i))


def _leads(c: ComparedCluster, broker_id: int, partitions: int) -> int:
    md = metadata_of(c.address(broker_id), [TOPIC])
    info = md.topics.get(TOPIC) if md is not None else None
    return 0 if info is None else sum(1 for p in info.partitions.values() if p.leader == broker_id)


def run_scenario(c: ComparedCluster, scenario: str, partitions: int, round_no: int,
                 timeout: float = 900.0) -> Measurement:
    """Run one round of ``scenario`` on the started cluster ``c`` whose ``TOPIC`` has
    ``partitions`` partitions; leave the cluster whole again. CompareError on a timeout."""
    if scenario in ("controller_failover", "broker_failure", "controlled_shutdown"):
        elect_preferred_leaders(c, partitions)
    if scenario == "controller_failover":
        victim = c.active_controller()
        name = f"compare-cf-{round_no}"
        t0 = time.time()
        c.kill(victim)

        def created() -> bool:
            live = c.live_brokers()
            try:
                code = create_topic(c.bootstrap(live), name, 1, 2, timeout_s=5.0)
            except Exception:  # noqa: BLE001 -- no controller yet: the request fails or times out
                return False
            if code not in (ErrorCode.none, ErrorCode.topic_already_exists):
                return False
            return any(c.all_led(name, 1, [b]) for b in live)
        wait_until(created, timeout, f"{c.system}: a topic created after the controller {victim} died")
        m = Measurement(scenario, time.time() - t0, t0, time.time(), node=victim)
        c.restore()
    elif scenario == "broker_failure":
        victim = _victim(c, partitions)
        moved = _leads(c, victim, partitions)
        t0 = time.time()
        c.kill(victim)
        survivors = [i for i in c.broker_ids if i != victim]
        wait_until(lambda: c.all_led(TOPIC, partitions, survivors, without=victim), timeout,
                   f"{c.system}: every partition led after broker {victim} died")
        m = Measurement(scenario, time.time() - t0, t0, time.time(), moved=moved, node=victim)
        c.restore()
        wait_until(lambda: c.all_led(TOPIC, partitions), timeout, f"{c.system}: {TOPIC} led after restore")
    elif scenario == "controlled_shutdown":
        victim = _victim(c, partitions)
        moved = _leads(c, victim, partitions)
        pid = c.pid(victim)
        t0 = time.time()
        c.sigterm(victim)
        wait_until(lambda: not process.is_alive(pid), timeout, f"{c.system}: broker {victim} exited after SIGTERM")
        m = Measurement(scenario, time.time() - t0, t0, time.time(), moved=moved, node=victim)
        c.restore()
        wait_until(lambda: c.all_led(TOPIC, partitions), timeout, f"{c.system}: {TOPIC} led after restore")
    elif scenario == "create_partitions":
        name = f"compare-create-{round_no}"
        t0 = time.time()
        code = create_topic(c.bootstrap(), name, partitions, 3, timeout_s=timeout)
        if code not in (ErrorCode.none, ErrorCode.topic_already_exists):
            raise CompareError(f"{c.system}: CreateTopics {name} answered {code.name}")
        wait_until(lambda: c.all_led(name, partitions, c.broker_ids), timeout,
                   f"{c.system}: {partitions} partitions of {name} led in every broker's Metadata")
        m = Measurement(scenario, time.time() - t0, t0, time.time())
    elif scenario == "metadata_propagation":
        name = f"compare-prop-{round_no}"
        t0 = time.time()
        code = create_topic(c.bootstrap(), name, 1, 3, timeout_s=60.0)
        if code not in (ErrorCode.none, ErrorCode.topic_already_exists):
            raise CompareError(f"{c.system}: CreateTopics {name} answered {code.name}")
        wait_until(lambda: c.all_led(name, 1, c.broker_ids), timeout,
                   f"{c.system}: {name} in every broker's Metadata")
        m = Measurement(scenario, time.time() - t0, t0, time.time())
    elif scenario == "cold_restart":
        c.stop()
        t0 = time.time()
        c.start(timeout=timeout)
        wait_until(lambda: c.all_led(TOPIC, partitions, c.broker_ids), timeout,
                   f"{c.system}: every partition led after a cold restart")
        m = Measurement(scenario, time.time() - t0, t0, time.time())
    else:
        raise ValueError(f"unknown scenario {scenario!r}: choose from {', '.join(SCENARIOS)}")
    log.info("compare_measured", system=c.system, scenario=scenario, partitions=partitions,
             round=round_no, seconds=round(m.seconds, 3), moved=m.moved, node=m.node)
    return m
