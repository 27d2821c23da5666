"""Broker metrics for Prometheus, named as the Prometheus JMX exporter's Kafka rules
(example_configs/kafka-2_0_0.yml, ``lowercaseOutputName: true``) render Kafka's MBeans.

What this module holds:

- ``RequestStats`` and ``BrokerTopicStats``: plain integer counters kept by KafkaApis on the
  request path (one dict update per request / per produced or fetched partition; no
  prometheus-client call there).
- ``BrokerMetricsCollector``: a prometheus-client custom collector that, at scrape time only,
  reads the state of the components it is GIVEN (replica manager, controller, group
  coordinator, the ZooKeeper client's statistics) and the counters above.
- ``MetricsServer``: a tiny HTTP/1.1 responder on a trio listener that answers
  ``GET /metrics`` with ``prometheus_client.generate_latest`` (no thread:
  prometheus-client's own ``start_http_server`` starts one, which the broker does not).

Name rendering (the JMX exporter's rules): ``kafka.<domain>:type=<T>,name=<N>`` with a
``Value`` attribute becomes the gauge ``kafka_<domain>_<t>_<n>``; a ``...PerSec`` meter's
``Count`` becomes the counter ``kafka_<domain>_<t>_<n without PerSec>_total``; extra MBean
keys become labels (``topic``, ``request``, ``delayedOperation``). docs/observability.md
maps every metric to its MBean.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import structlog
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
                                    SummaryMetricFamily)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from kafkalike.protocol.api_keys import api_name

log = structlog.get_logger(__name__)

#: upper bounds (ms) of the request total-time histogram buckets (+Inf is implied)
TOTAL_TIME_BUCKETS_MS: tuple[float, ...] = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)

#: Kafka's ControllerState.rateAndTimeMetricName for kafkalike's controller events
#: (ControllerState.scala: BrokerChange's timer is LeaderElectionRateAndTimeMs)
CONTROLLER_EVENT_TIMERS: dict[str, str] = {
    "BrokerChange": "leaderelectionrateandtimems",
    "BrokerModification": "leaderelectionrateandtimems",  # Kafka: state BrokerChange too
    "TopicChange": "topicchangerateandtimems",
    "PartitionModifications": "topicchangerateandtimems",
    "TopicDeletion": "topicdeletionrateandtimems",
    "TopicDeletionStopReplicaResponseReceived": "topicdeletionrateandtimems",
    "PartitionReassignment": "partitionreassignmentrateandtimems",
    "PartitionReassignmentIsrChange": "partitionreassignmentrateandtimems",
    "IsrChangeNotification": "isrchangerateandtimems",
    "AutoPreferredReplicaLeaderElection": "autoleaderbalancerateandtimems",
    "PreferredReplicaLeaderElection": "manualleaderbalancerateandtimems",
    "ControlledShutdown": "controlledshutdownrateandtimems",
    "Startup": "controllerchangerateandtimems",
    "ControllerChange": "controllerchangerateandtimems",
    "Reelect": "controllerchangerateandtimems",
    "Expire": "controllerchangerateandtimems",
}

#: ZooKeeper session states exported as kafka_server_sessionexpirelistener_sessionstate{state}
SESSION_STATES = ("CONNECTED", "SUSPENDED", "EXPIRED", "CLOSED")


class RequestStats:
    """Per-API request counts and total handling time (ms) in histogram buckets.

    ``record(api_key, elapsed_ms)`` is called once per request by KafkaApis.handle: one dict
    lookup, one bisect, three integer/float additions. Kafka's source: RequestChannel's
    RequestMetrics (kafka.network:type=RequestMetrics,name=RequestsPerSec|TotalTimeMs,
    request=<ApiKeys.name>); kafkalike's time is the handler's (parse to response object),
    Kafka's also counts queueing and the response send.
    """

    def __init__(self) -> None:
        #: api key -> [bucket counts (len(TOTAL_TIME_BUCKETS_MS) + 1, last = +Inf), ...]
        self.buckets: dict[int, list[int]] = {}
        #: api key -> total ms
        self.sum_ms: dict[int, float] = {}

    def record(self, api_key: int, elapsed_ms: float) -> None:
        """Count one request of ``api_key`` that took ``elapsed_ms`` milliseconds."""
        b = self.buckets.get(api_key)
        if b is None:
            b = self.buckets[api_key] = [0] * (len(TOTAL_TIME_BUCKETS_MS) + 1)
            self.sum_ms[api_key] = 0.0
        b[bisect.bisect_left(TOTAL_TIME_BUCKETS_MS, elapsed_ms)] += 1
        self.sum_ms[api_key] += elapsed_ms


class BrokerTopicStats:
    """Per-topic byte and message counters (Kafka's BrokerTopicStats: BytesInPerSec,
    MessagesInPerSec counted on the leader's append; BytesOutPerSec counted for consumer
    fetches, follower fetches excluded as in Kafka's KafkaApis.handleFetchRequest).

    The all-topics totals are the sums over topics at scrape time. Updated once per produced
    / fetched partition, never per record.
    """

    def __init__(self) -> None:
        self.bytes_in: dict[str, int] = {}
        self.messages_in: dict[str, int] = {}
        self.bytes_out: dict[str, int] = {}

    def record_in(self, topic: str, nbytes: int, messages: int) -> None:
        """A leader appended ``nbytes`` bytes holding ``messages`` records to ``topic``."""
        self.bytes_in[topic] = self.bytes_in.get(topic, 0) + nbytes
        self.messages_in[topic] = self.messages_in.get(topic, 0) + messages

    def record_out(self, topic: str, nbytes: int) -> None:
        """A consumer fetch returned ``nbytes`` bytes of ``topic``."""
        self.bytes_out[topic] = self.bytes_out.get(topic, 0) + nbytes


class BrokerMetricsCollector(Collector):
    """prometheus-client collector reading the broker's components at scrape time.

    Given: ``broker_id``; ``replica_manager`` (partitions, purgatories, fetcher manager);
    ``controller`` (KafkaController: statistics(), event_times, partition_state_machine);
    ``group_coordinator`` (its manager's groups and committed offsets, may be None);
    ``zk_statistics`` (a callable returning the ZooKeeper client's ZkClientStatistics or
    None before it exists); ``request_stats`` / ``topic_stats`` (the counters above);
    ``socket_server`` (SocketServer: open connections, queued.max.request.bytes pool; may be None).
    Never raises to the scrape for one component: a failing part is logged and skipped.
    """

    def __init__(self, *, broker_id: int, replica_manager: Any, controller: Any, group_coordinator: Any,
                 zk_statistics: Callable[[], Any], request_stats: RequestStats,
                 topic_stats: BrokerTopicStats, socket_server: Any = None) -> None:
        self.broker_id = broker_id
        self.replica_manager = replica_manager
        self.controller = controller
        self.group_coordinator = group_coordinator
        self.zk_statistics = zk_statistics
        self.request_stats = request_stats
        self.topic_stats = topic_stats
        self.socket_server = socket_server

    def describe(self) -> list[Any]:
        """No up-front description: collect() runs only at scrape time."""
        return []

    def collect(self) -> Iterator[Any]:
        """Every metric family, computed now (see docs/observability.md)."""
        for part in (self._replica_manager, self._controller, self._topics, self._requests,
                     self._network, self._zookeeper, self._consumer_lag):
            try:
                yield from part()
            except Exception as exc:  # a half-updated component must not break the scrape
                log.warning("metrics_collect_failed", part=part.__name__, error=repr(exc))

    # ---- kafka.server:type=ReplicaManager / DelayedOperationPurgatory / ReplicaFetcherManager
    def _replica_manager(self) -> Iterator[Any]:
        rm = self.replica_manager
        parts = list(rm.partitions.values())
        leaders = [p for p in parts if p.is_leader]
        urp = sum(1 for p in leaders if len(p.isr) < len(p.assigned_replicas))
        yield _gauge("kafka_server_replicamanager_underreplicatedpartitions",
                     "Partitions led here whose ISR is smaller than their replica set "
                     "(kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions)", urp)
        yield _gauge("kafka_server_replicamanager_partitioncount",
                     "Partitions hosted here (ReplicaManager PartitionCount)", len(parts))
        yield _gauge("kafka_server_replicamanager_leadercount",
                     "Partitions led here (ReplicaManager LeaderCount)", len(leaders))
        yield _gauge("kafka_server_replicamanager_underminisrpartitioncount",
                     "Partitions led here whose ISR is below min.insync.replicas (ReplicaManager "
                     "UnderMinIsrPartitionCount)",
                     sum(1 for p in leaders if len(p.isr) < rm.min_isr_of(p.tp.topic)))
        yield _counter("kafka_server_replicamanager_isrshrinks",
                       "ISR shrinks of partitions hosted here (ReplicaManager IsrShrinksPerSec)",
                       sum(p.isr_shrinks for p in parts))
        yield _counter("kafka_server_replicamanager_isrexpands",
                       "ISR expansions of partitions hosted here (ReplicaManager IsrExpandsPerSec)",
                       sum(p.isr_expands for p in parts))
        purgatory = GaugeMetricFamily(
            "kafka_server_delayedoperationpurgatory_purgatorysize",
            "Delayed operations waiting (kafka.server:type=DelayedOperationPurgatory,name=PurgatorySize,"
            "delayedOperation=...)", labels=["delayedOperation"])
        for name, p in (("Produce", rm.produce_purgatory), ("Fetch", rm.fetch_purgatory),
                        ("DeleteRecords", getattr(rm, "delete_records_purgatory", None))):
            if p is not None:
                purgatory.add_metric([name], p.delayed)
        yield purgatory
        max_lag = 0
        for fetcher in list(rm.fetcher_manager.fetchers.values()):
            for state in list(fetcher.partitions.values()):
                max_lag = max(max_lag, getattr(state, "lag", 0))
        lag = GaugeMetricFamily(
            "kafka_server_replicafetchermanager_maxlag",
            "Largest follower lag in messages, leader HW minus this replica's LEO at the last fetch "
            "(kafka.server:type=ReplicaFetcherManager,name=MaxLag,clientId=Replica)", labels=["clientId"])
        lag.add_metric(["Replica"], max_lag)
        yield lag
        size = GaugeMetricFamily("kafka_log_log_size",
                                 "Bytes of a partition's log here (kafka.log:type=Log,name=Size,topic,partition)",
                                 labels=["topic", "partition"])
        leo = GaugeMetricFamily("kafka_log_log_logendoffset",
                                "Log end offset (kafka.log:type=Log,name=LogEndOffset,topic,partition)",
                                labels=["topic", "partition"])
        start = GaugeMetricFamily("kafka_log_log_logstartoffset",
                                  "Log start offset (kafka.log:type=Log,name=LogStartOffset,topic,partition)",
                                  labels=["topic", "partition"])
        for p in parts:
            labels = [p.tp.topic, str(p.tp.partition)]
            log_ = p.log
            size.add_metric(labels, _log_size(log_))
            leo.add_metric(labels, log_.log_end_offset)
            start.add_metric(labels, log_.log_start_offset)
        yield size
        yield leo
        yield start
        quotas = getattr(rm, "replication_quotas", None)
        if quotas is not None:
            yield from _replication_quotas(quotas)

    # ---- kafka.controller:type=KafkaController / ControllerEventManager / ControllerStats
    def _controller(self) -> Iterator[Any]:
        c = self.controller
        if c is None:
            return
        stats = c.statistics()
        active = bool(stats.active)
        yield _gauge("kafka_controller_kafkacontroller_activecontrollercount",
                     "1 on the active controller, else 0 (KafkaController ActiveControllerCount)", int(active))
        # Kafka reports these only meaningfully on the active controller; others report 0
        yield _gauge("kafka_controller_kafkacontroller_offlinepartitionscount",
                     "Partitions without a live leader (KafkaController OfflinePartitionsCount)",
                     stats.offline_partitions if active else 0)
        yield _gauge("kafka_controller_kafkacontroller_globalpartitioncount",
                     "Partitions in the cluster (KafkaController GlobalPartitionCount)",
                     stats.partitions if active else 0)
        yield _gauge("kafka_controller_kafkacontroller_globaltopiccount",
                     "Topics in the cluster (KafkaController GlobalTopicCount)", stats.topics if active else 0)
        yield _gauge("kafka_controller_kafkacontroller_preferredreplicaimbalancecount",
                     "Partitions whose leader is not the preferred replica "
                     "(KafkaController PreferredReplicaImbalanceCount)",
                     stats.preferred_replica_imbalance if active else 0)
        yield _gauge("kafka_controller_kafkacontroller_activebrokercount",
                     "Live brokers the controller knows (KafkaController ActiveBrokerCount)",
                     len(stats.live_brokers) if active else 0)
        yield _gauge("kafka_controller_kafkacontroller_controllerepoch",
                     "kafkalike: the controller epoch this broker knows (/controller_epoch)", stats.epoch)
        yield _gauge("kafka_controller_controllereventmanager_eventqueuesize",
                     "Controller events waiting (ControllerEventManager EventQueueSize)", stats.event_queue_size)
        timers: dict[str, list[float]] = {}
        for event, (count, total_ms) in list(getattr(c, "event_times", {}).items()):
            name = CONTROLLER_EVENT_TIMERS.get(event)
            if name is not None:
                t = timers.setdefault(name, [0, 0.0])
                t[0] += count
                t[1] += total_ms
        # always expose the leader-election timer, even before the first BrokerChange
        timers.setdefault("leaderelectionrateandtimems", [0, 0.0])
        for name, (count, total_ms) in sorted(timers.items()):
            yield SummaryMetricFamily(
                f"kafka_controller_controllerstats_{name}",
                f"Controller events of this kind processed and their total time in ms "
                f"(kafka.controller:type=ControllerStats,name={name})",
                count_value=count, sum_value=total_ms)
        psm = getattr(c, "partition_state_machine", None)
        yield _counter("kafka_controller_controllerstats_uncleanleaderelections",
                       "Unclean leader elections by this broker's controller "
                       "(ControllerStats UncleanLeaderElectionsPerSec)",
                       getattr(psm, "unclean_elections", 0))

    # ---- kafka.server:type=BrokerTopicMetrics
    def _topics(self) -> Iterator[Any]:
        ts = self.topic_stats
        for attr, name, mbean in (("bytes_in", "bytesin", "BytesInPerSec"),
                                  ("bytes_out", "bytesout", "BytesOutPerSec"),
                                  ("messages_in", "messagesin", "MessagesInPerSec")):
            values = dict(getattr(ts, attr))
            fam = CounterMetricFamily(f"kafka_server_brokertopicmetrics_{name}",
                                      f"kafka.server:type=BrokerTopicMetrics,name={mbean}[,topic=...]; "
                                      f"no topic label = all topics", labels=["topic"])
            for topic, v in sorted(values.items()):
                fam.add_metric([topic], v)
            # the all-topics MBean (no topic key) renders as the same name without labels
            fam.samples.append(Sample(f"kafka_server_brokertopicmetrics_{name}_total", {}, sum(values.values())))
            yield fam

    # ---- kafka.network:type=RequestMetrics
    def _requests(self) -> Iterator[Any]:
        rs = self.request_stats
        reqs = CounterMetricFamily("kafka_network_requestmetrics_requests",
                                   "Requests handled (kafka.network:type=RequestMetrics,name=RequestsPerSec,"
                                   "request=...)", labels=["request"])
        hist = HistogramMetricFamily("kafka_network_requestmetrics_totaltimems",
                                     "Request handling time in ms (kafka.network:type=RequestMetrics,"
                                     "name=TotalTimeMs,request=...)", labels=["request"])
        for key, buckets in sorted(list(rs.buckets.items())):
            counts = list(buckets)
            name = api_name(key)
            total = sum(counts)
            reqs.add_metric([name], total)
            cumulative, acc = [], 0
            for bound, n in zip(TOTAL_TIME_BUCKETS_MS + (float("inf"),), counts):
                acc += n
                cumulative.append(("+Inf" if bound == float("inf") else _fmt(bound), acc))
            hist.add_metric([name], cumulative, sum_value=rs.sum_ms.get(key, 0.0))
        yield reqs
        yield hist

    # ---- kafka.network:type=SocketServer / socket-server-metrics
    def _network(self) -> Iterator[Any]:
        ss = self.socket_server
        if ss is None:
            return
        pool = ss.pool
        yield _gauge("kafka_network_socketserver_memorypoolused",
                     "Bytes of requests being received or waiting to be handled, counted against "
                     "queued.max.request.bytes (kafka.network:type=SocketServer,name=MemoryPoolUsed)", pool.used)
        if pool.bounded:
            yield _gauge("kafka_network_socketserver_memorypoolavailable",
                         "queued.max.request.bytes left (kafka.network:type=SocketServer,name=MemoryPoolAvailable)",
                         pool.available)
        yield _gauge("kafka_server_socket_server_metrics_connection_count",
                     "Open client and broker connections, all listeners (kafka.server:type=socket-server-metrics,"
                     "listener=...,networkProcessor=... connection-count, summed)", ss.open_connections)

    # ---- kafka.server:type=SessionExpireListener (the broker's ZooKeeper session)
    def _zookeeper(self) -> Iterator[Any]:
        stats = self.zk_statistics()
        state = GaugeMetricFamily("kafka_server_sessionexpirelistener_sessionstate",
                                  "1 for the broker's current ZooKeeper session state "
                                  "(kafka.server:type=SessionExpireListener,name=SessionState)",
                                  labels=["state"])
        current = stats.state.value if stats is not None else "CLOSED"
        for s in SESSION_STATES:
            state.add_metric([s], int(s == current))
        yield state
        yield _counter("kafka_server_sessionexpirelistener_zookeeperexpires",
                       "ZooKeeper session expirations (SessionExpireListener ZooKeeperExpiresPerSec)",
                       stats.expirations if stats is not None else 0)
        yield SummaryMetricFamily(
            "kafka_server_zookeeperclientmetrics_zookeeperrequestlatencyms",
            "ZooKeeper operations issued by this broker and their total time in ms "
            "(kafka.server:type=ZooKeeperClientMetrics,name=ZooKeeperRequestLatencyMs)",
            count_value=stats.calls if stats else 0,
            sum_value=getattr(stats, "request_ms_total", 0.0) if stats else 0.0)

    # ---- kafka_exporter's consumer-group lag, for the groups this broker coordinates
    def _consumer_lag(self) -> Iterator[Any]:
        lag = GaugeMetricFamily("kafka_consumergroup_lag",
                                "Log end offset (leader HW as known here) minus the committed offset, "
                                "for groups this broker coordinates (kafka_exporter)",
                                labels=["consumergroup", "topic", "partition"])
        current = GaugeMetricFamily("kafka_consumergroup_current_offset",
                                    "Committed offset (kafka_exporter)",
                                    labels=["consumergroup", "topic", "partition"])
        gc = self.group_coordinator
        manager = getattr(gc, "manager", None)
        if manager is not None:
            partitions = self.replica_manager.partitions
            for group_id, group in sorted(list(manager.groups.items())):
                if not manager.is_group_local(group_id):
                    continue
                for tp, om in sorted(list(group.offsets.items())):
                    labels = [group_id, tp.topic, str(tp.partition)]
                    current.add_metric(labels, om.offset)
                    p = partitions.get(tp)
                    if p is not None:  # the high watermark is known only for partitions hosted here
                        lag.add_metric(labels, max(0, p.high_watermark - om.offset))
        yield lag
        yield current


def _replication_quotas(quotas: Any) -> Iterator[Any]:
    """The replication throttles (KIP-73; broker/replication_quota_manager.py): Kafka's
    kafka.server:type=LeaderReplication / FollowerReplication byte-rate (throttled bytes/s over
    the quota window), and kafkalike's counters of throttled bytes and throttle decisions."""
    stats = {"leader": quotas.leader.statistics(), "follower": quotas.follower.statistics()}
    for kind, name in (("leader", "LeaderReplication"), ("follower", "FollowerReplication")):
        yield _gauge(f"kafka_server_{kind}replication_byte_rate",
                     f"Throttled replication bytes/s measured by the {kind} quota "
                     f"(kafka.server:type={name}, byte-rate)", stats[kind].rate)
    recorded = CounterMetricFamily("kafkalike_replication_throttled_bytes",
                                   "Bytes of throttled partitions recorded by a replication quota",
                                   labels=["replication"])
    decisions = CounterMetricFamily("kafkalike_replication_throttle_decisions",
                                    "Partitions left out of a read (leader) or fetch (follower) because the "
                                    "replication quota was exceeded", labels=["replication"])
    for kind, st in stats.items():
        recorded.add_metric([kind], st.recorded_bytes)
        decisions.add_metric([kind], st.throttled_decisions)
    yield recorded
    yield decisions


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _log_size(log_: Any) -> int:
    """UnifiedLog.size_in_bytes (Kafka's Log Size gauge: the sum of its segments' sizes)."""
    return int(log_.size_in_bytes)


class FrozenObjectsCollector(Collector):
    """``kafkalike_gc_frozen_objects_total``: objects the broker's GcPolicy
    (kafkalike.gc.freeze.interval.ms) has moved out of the garbage collector's view, summed over
    its passes (``frozen_total()``; not gc.get_freeze_count(), which walks every frozen object)."""

    def __init__(self, frozen_total: Callable[[], int]) -> None:
        self.frozen_total = frozen_total

    def collect(self) -> Iterator[Any]:
        yield _counter("kafkalike_gc_frozen_objects", "Objects frozen by the broker's garbage-collection "
                       "passes (gc.freeze; kafkalike.gc.freeze.interval.ms)", self.frozen_total())


def make_registry(collector: BrokerMetricsCollector,
                  gc_frozen_total: Callable[[], int] | None = None,
                  extra: Iterable[Any] = ()) -> CollectorRegistry:
    """A registry holding ``collector`` plus prometheus-client's process metrics
    (process_cpu_seconds_total, process_resident_memory_bytes, ...), its garbage-collector
    counters (python_gc_collections_total, ...), given ``gc_frozen_total``,
    kafkalike_gc_frozen_objects_total, and the ``extra`` collectors (objects with ``collect()``,
    e.g. client_quota_manager.QuotaMetricsCollector)."""
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    if gc_frozen_total is not None:
        registry.register(FrozenObjectsCollector(gc_frozen_total))
    for c in extra:
        registry.register(c)
    return registry


MAX_REQUEST_HEAD = 8192
READ_TIMEOUT_S = 10.0


class MetricsServer:
    """``GET /metrics`` over HTTP/1.1 on a trio listener (one response per connection,
    ``Connection: close``). Other paths answer 404, other methods 405, a head over 8 KiB or
    not complete within 10 s 400 / a closed connection; a bad client never reaches the broker.

    ``await nursery.start(server.serve)`` binds (host "" = every interface, port 0 = any free
    port) and reports the bound (host, port); OSError if the address is taken.
    """

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self.bound: tuple[str, int] | None = None
        self.scrapes = 0

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, report (host, port) through task_status, answer until cancelled."""
        listeners = await trio.open_tcp_listeners(self.port, host=self.host or None)
        sockname = listeners[0].socket.getsockname()
        self.bound = (sockname[0], sockname[1])
        log.info("metrics_listening", url=f"http://{self.bound[0]}:{self.bound[1]}/metrics")
        task_status.started(self.bound)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(READ_TIMEOUT_S):
                head = await _read_head(stream)
                if head is None:
                    await _respond(stream, 400, b"bad request\n")
                    return
                parts = head.split(b"\r\n", 1)[0].split()
                if len(parts) != 3:
                    await _respond(stream, 400, b"bad request\n")
                    return
                method, target = parts[0], parts[1].split(b"?", 1)[0]
                if target not in (b"/metrics", b"/"):
                    await _respond(stream, 404, b"not found; metrics are at /metrics\n")
                elif method not in (b"GET", b"HEAD"):
                    await _respond(stream, 405, b"method not allowed\n", extra=b"Allow: GET, HEAD\r\n")
                elif target == b"/":
                    await _respond(stream, 200, b"kafkalike broker metrics: /metrics\n")
                else:
                    started = time.perf_counter()
                    body = generate_latest(self.registry)
                    self.scrapes += 1
                    log.debug("metrics_scraped", bytes=len(body),
                              ms=round((time.perf_counter() - started) * 1000, 1))
                    await _respond(stream, 200, body if method == b"GET" else b"",
                                   content_type=CONTENT_TYPE_LATEST.encode(),
                                   length=len(body))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await stream.aclose()


async def _read_head(stream: trio.SocketStream) -> bytes | None:
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = await stream.receive_some(4096)
        if not chunk:
            return None
        buf += chunk
        if len(buf) > MAX_REQUEST_HEAD:
            return None
    return bytes(buf)


_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}


async def _respond(stream: trio.SocketStream, status: int, body: bytes, *,
                   content_type: bytes = b"text/plain; charset=utf-8", extra: bytes = b"",
                   length: int | None = None) -> None:
    head = (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n"
            % (status, _REASONS[status], content_type, len(body) if length is None else length, extra))
    await stream.send_all(head + body)
