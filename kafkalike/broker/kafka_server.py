"""KafkaServer: one broker process's start-up, registration and shutdown (Kafka's
kafka.server.KafkaServer, ZooKeeper mode).

Start-up, in Kafka's order:
  1. connect to ZooKeeper (creating the chroot if absent) and create Kafka's persistent
     top-level paths;
  2. read or create ``/cluster/id``;
  3. decide the broker id: broker.id, else the one in meta.properties, else a new one from
     ``/brokers/seqid`` (its version + reserved.broker.max.id, as Kafka generates ids);
  4. open the log dirs (LogManager: dir locks, meta.properties must name this broker and
     cluster, crash recovery); a foreign meta.properties stops start-up;
  5. bind the listeners (SocketServer);
  6. register the ephemeral ``/brokers/ids/<id>`` (version-5 JSON); its czxid is the broker
     epoch. A live broker already holding the id stops start-up (BrokerIdInUse);
  7. start the components that hang off the broker (controller election, replica manager...).

The components are built between steps 4 and 5, in dependency order, each from exactly what
it uses (``_build_components``; Kafka's KafkaServer.startup does the same): replica manager
(log manager, ZooKeeper client, metadata cache), fetch manager, admin manager, group
coordinator, producer-id manager, transaction coordinator, auto topic creation, and last
KafkaApis, which the socket server dispatches to. No component receives the server.
docs/architecture.md draws the graph.

While running, a ZooKeeper session expiry deletes the registration; on the new session the
broker registers again and gets a new broker epoch (``broker_reregistered``).
Shutdown (SIGTERM / SIGINT, or ``request_shutdown()``): a controlled shutdown first (the
controller moves this broker's leaderships away, controlled.shutdown.enable), then components
stop, the registration is deleted, logs are flushed and checkpointed with the clean-shutdown
marker, ZooKeeper closed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
import trio

from kafkalike.broker import sasl_server_authenticator as sasl
from kafkalike.broker.add_partitions_to_txn_manager import AddPartitionsToTxnManager
from kafkalike.broker.auto_topic_creation_manager import AutoTopicCreationManager
from kafkalike.broker.dynamic_broker_config import (ALTER_LOG_DIRS_RATE, FOLLOWER_THROTTLED_RATE,
                                                    LEADER_THROTTLED_RATE, DynamicBrokerConfig)
from kafkalike.broker.fetch_session import FetchManager, FetchSessionCache
from kafkalike.broker.gc_policy import GcPolicy
from kafkalike.broker.kafka_apis import KafkaApis
from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.metadata_cache import MetadataCache
from kafkalike.broker.producer_id_manager import ProducerIdManager
from kafkalike.broker.replica_fetcher import InterBrokerClientConfig
from kafkalike.broker.replica_manager import ReplicaManager
from kafkalike.broker.replication_quota_manager import ReplicationQuotas
from kafkalike.broker.sasl_scram import ScramCredentialApis, ScramCredentialStore
from kafkalike.broker.server import run_until_signal
from kafkalike.broker.socket_server import (BoundListener, SocketServer, check_connection_config,
                                            parse_per_ip_overrides)
from kafkalike.broker.ssl_factory import SslConfigError, SslPrincipalMapper, client_context, server_context
from kafkalike.broker.zk_admin_manager import ZkAdminManager
from kafkalike.coordination import CoordinationError, SessionState, ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.errors import NoNode
from kafkalike.coordination.kafka_zk_client import BrokerIdInUse, KafkaZkClient, default_acls
from kafkalike.coordination.zookeeper_client import ZkSaslCredentials, read_jaas_login
from kafkalike.coordinator import group_apis
from kafkalike.coordinator.group_coordinator import GroupCoordinator
from kafkalike.coordinator.offset_config import configs_from
from kafkalike.coordinator.transaction import transaction_apis
from kafkalike.coordinator.transaction.transaction_coordinator import TransactionCoordinator
from kafkalike.coordinator.transaction.transaction_state_manager import TRANSACTION_STATE_TOPIC, TransactionConfig
from kafkalike.controller.kafka_controller import KafkaController, send_controlled_shutdown
from kafkalike.controller.state_change_logger import STATE_CHANGE_LOG_FILE, StateChangeLog, StateChangeLogger
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.storage.checkpoints import read_meta_properties
from kafkalike.storage import TopicPartition
from kafkalike.storage.log_manager import LogManager

log = structlog.get_logger(__name__)


class BrokerStartupError(Exception):
    """Start-up cannot continue; ``str(err)`` is one line saying why."""


class KafkaServer:
    """One broker. ``await server.run()`` starts it and serves until shutdown is requested.

    Attributes, set by start-up (``_build_components``) unless noted: config, broker_id,
    cluster_id, broker_epoch, zk (ZooKeeperClient), kafka_zk (KafkaZkClient), log_manager,
    metadata_cache and controller (both from the constructor), replica_manager,
    fetch_manager, admin_manager, group_coordinator, producer_id_manager,
    transaction_coordinator, apis (KafkaApis), bound_listeners, nursery.
    """

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self.broker_id: int = config.broker_id
        self.cluster_id: str | None = None
        self.broker_epoch: int = -1
        self.zk: ZooKeeperClient | None = None
        self.kafka_zk: KafkaZkClient | None = None
        self.log_manager: LogManager | None = None
        self.metadata_cache = MetadataCache(broker_id=self.broker_id)
        self.socket_server: SocketServer | None = None
        self.bound_listeners: list[BoundListener] = []
        #: how the broker's own connections (controller channel, replica fetchers, controlled
        #: shutdown, transaction markers) use the inter-broker listener's SSL / SASL
        self.inter_broker = InterBrokerClientConfig()
        self.registration: zd.BrokerRegistration | None = None
        self.nursery: trio.Nursery | None = None
        self.started = trio.Event()
        self._shutdown = trio.Event()
        # run in order after the registration, in reverse order at shutdown (filled by
        # _build_components, in dependency order)
        self.startup_hooks: list[Callable[[], Awaitable[None]]] = []
        self.shutdown_hooks: list[Callable[[], Awaitable[None]]] = []
        self.metadata_listeners: list[Callable[[list[zd.TopicPartition]], Awaitable[None]]] = []
        # the controller (election, event queue), built from the config and the broker id; it is
        # started over the broker's ZooKeeper client by the start-up hook, stopped by the shutdown hook
        # Kafka's state-change.log, here in the first log dir (Kafka: next to server.log)
        self.state_change_log = StateChangeLog(Path(config.log_dirs[0]) / STATE_CHANGE_LOG_FILE)
        self.controller = KafkaController(self.broker_id, self.config, state_change_log=self.state_change_log)
        # SCRAM credentials in /config/users (SASL/SCRAM logins, Alter/DescribeUserScramCredentials)
        self.scram_credentials = ScramCredentialStore(lambda: self.kafka_zk)
        # Prometheus /metrics (kafkalike.metrics.port), started after the listeners bind
        self.metrics_server: Any = None
        # collect-then-gc.freeze() after start-up and every kafkalike.gc.freeze.interval.ms
        self.gc_policy = GcPolicy(config["kafkalike.gc.freeze.interval.ms"],
                                  config["kafkalike.gc.unfreeze.interval.ms"])

    def _build_components(self, nursery: trio.Nursery, log_manager: LogManager, zk: ZooKeeperClient,
                          kafka_zk: KafkaZkClient) -> None:
        """Build the broker's components in dependency order, each from what it uses (Kafka's
        KafkaServer.startup): replica manager, fetch sessions, admin manager, group
        coordinator, producer ids, transaction coordinator, auto topic creation, then the
        request handlers. Start-up and shutdown hooks are added in the same order."""
        cfg = self.config
        # KIP-890 part 1: leaders ask the transactional id's coordinator (the leader of its
        # __transaction_state partition) before a producer's first transactional write
        self.add_partitions_to_txn_manager = verifier = AddPartitionsToTxnManager(
            self.broker_id, self._transaction_coordinator_for,
            lambda b: self.metadata_cache.endpoint(b, cfg.inter_broker_listener_name), nursery,
            inter_broker=self.inter_broker,
            request_timeout_ms=TransactionConfig.from_broker_config(cfg).request_timeout_ms)
        # replication throttles (KIP-73): throttled replicas from topic configs, rates from the
        # dynamic broker configs
        dynamic = self.dynamic_config
        self.replication_quotas = rq = ReplicationQuotas.create(
            self.broker_id, int(cfg["replication.quota.window.num"]), float(cfg["replication.quota.window.size.seconds"]))

        def update_rates(_: KafkaConfig) -> None:
            rq.update_rates(dynamic.quota_rate(LEADER_THROTTLED_RATE), dynamic.quota_rate(FOLLOWER_THROTTLED_RATE),
                            dynamic.quota_rate(ALTER_LOG_DIRS_RATE))
        update_rates(cfg)
        self.replica_manager = rm = ReplicaManager(
            cfg, self.broker_id, log_manager, self.metadata_cache, kafka_zk, nursery,
            broker_epoch=lambda: self.broker_epoch, inter_broker=self.inter_broker,
            add_partitions_to_txn_manager=verifier if cfg["transaction.partition.verification.enable"] else None,
            replication_quotas=rq)
        # incremental fetch sessions (KIP-227), used by KafkaApis.handle_fetch
        self.fetch_manager = FetchManager(FetchSessionCache(int(cfg["max.incremental.fetch.session.cache.slots"])))
        self.admin_manager = admin = ZkAdminManager(cfg, self.broker_id, zk, kafka_zk, self.metadata_cache,
                                                    nursery, on_topic_config_change=rm.update_topic_config,
                                                    dynamic_config=dynamic)

        def reconfigure_admin(new: KafkaConfig) -> None:
            admin.config = new
            self.controller.config = new  # unclean.leader.election.enable's broker default
        reconfigure_admin(cfg)
        dynamic.reconfigurables += [rm.reconfigure, reconfigure_admin, update_rates]
        # group coordinator (__consumer_offsets) and the group APIs it serves
        offset_config, group_config = configs_from(cfg)
        self.group_coordinator = group = GroupCoordinator(
            self.broker_id, offset_config, group_config, replica_manager=rm,
            metadata_cache=self.metadata_cache, kafka_zk=kafka_zk, create_topic=admin.create_topic,
            nursery=nursery)
        # COMMIT/ABORT markers written to __consumer_offsets complete transactional offsets
        rm.txn_marker_listeners.append(group.on_txn_marker)
        # producer ids for idempotent producers (InitProducerId), from /latest_producer_id_block
        self.producer_id_manager = ProducerIdManager(self.broker_id, kafka_zk)
        # transaction coordinator (__transaction_state, KIP-98); it wraps InitProducerId
        # (idempotent producers keep the ProducerIdManager's) and FindCoordinator
        self.transaction_coordinator = txn = TransactionCoordinator(
            TransactionConfig.from_broker_config(cfg), replica_manager=rm,
            metadata_cache=self.metadata_cache, admin_manager=admin,
            generate_producer_id=self.producer_id_manager.generate_producer_id,
            inter_broker_listener=cfg.inter_broker_listener_name)
        self.auto_topic_creation_manager = AutoTopicCreationManager(admin.auto_create_topic,
                                                                    group.create_offsets_topic)
        self.metadata_listeners += [admin.on_metadata_update, group.on_partitions_deleted]

        self.apis = apis = KafkaApis(
            cfg, self.broker_id, self.cluster_id, metadata_cache=self.metadata_cache, log_manager=log_manager,
            replica_manager=rm, fetch_manager=self.fetch_manager, admin_manager=admin,
            controller=self.controller, auto_create_topic=self.auto_topic_creation_manager.create_topic,
            on_metadata_update=self.on_metadata_update,
            state_change_logger=StateChangeLogger(self.broker_id, False, log=self.state_change_log))
        apis.register(ApiKey.CONTROLLED_SHUTDOWN, self.controller.handle_controlled_shutdown)
        apis.register(ApiKey.ALTER_PARTITION_REASSIGNMENTS, self.controller.handle_alter_partition_reassignments)
        apis.register(ApiKey.LIST_PARTITION_REASSIGNMENTS, self.controller.handle_list_partition_reassignments)
        group.follow_leadership_requests(apis)
        group_apis.register(apis, group)
        apis.register(ApiKey.INIT_PRODUCER_ID, self.producer_id_manager.handle_init_producer_id)
        # SASL: SCRAM credentials (Alter/DescribeUserScramCredentials), and SaslHandshake /
        # SaslAuthenticate outside the exchange answering ILLEGAL_SASL_STATE
        ScramCredentialApis(self.scram_credentials).register(apis)
        sasl.register_authenticated_handlers(apis)
        transaction_apis.register(apis, txn, self.producer_id_manager.handle_init_producer_id,
                                  group.manager.partition_for)
        # ACLs (authorizer.class.name): CreateAcls / DescribeAcls / DeleteAcls, and every handler
        # above wrapped with Kafka's per-API authorization (acl_authorizer.py, auth_helper.py);
        # the authorizer loads /kafka-acl and follows its changes from the first start-up hook
        from kafkalike.broker.acl_apis import AclApis
        from kafkalike.broker.auth_helper import AuthHelper, install
        from kafkalike.broker.client_quota_manager import (ClientQuotaApis, ClientQuotaManager, fetch_record_bytes,
                                                           install_request_quota, install_throttling)
        # client quotas (/config/users|clients producer_byte_rate, consumer_byte_rate; KIP-546 APIs)
        self.client_quotas = quotas = ClientQuotaManager()
        muter = install_throttling(apis, quotas, fetch_record_bytes)
        ClientQuotaApis(quotas).register(apis)
        self.startup_hooks.append(lambda: quotas.start(zk, nursery))
        self.authorizer = authorizer = self._create_authorizer()
        AclApis(authorizer).register(apis)
        if authorizer is not None:
            install(apis, AuthHelper(authorizer, self.metadata_cache.contains_topic))
            self.startup_hooks.append(lambda: authorizer.start(zk, nursery))
        # request_percentage quotas: every handler (authorization included) timed, outermost
        install_request_quota(apis, quotas, muter)

        self.startup_hooks += [
            lambda: self.controller.start(nursery, zk, self.broker_id),
            rm.startup, admin.startup, group.startup,
            lambda: txn.startup(nursery, self.broker_id, kafka_zk, self.inter_broker.ssl_context,
                                self.inter_broker.sasl)]
        self.shutdown_hooks += [self.controller.stop, rm.shutdown, group.shutdown, txn.shutdown,
                                verifier.shutdown]

    def _transaction_coordinator_for(self, transactional_id: str) -> int:
        """The broker leading ``transactional_id``'s __transaction_state partition, -1 none."""
        txn = self.transaction_coordinator
        info = self.metadata_cache.partition(
            TopicPartition(TRANSACTION_STATE_TOPIC, txn.state_manager.partition_for(transactional_id)))
        return -1 if info is None else int(info.leader)

    # ------------------------------------------------------------------ lifecycle
    def request_shutdown(self) -> None:
        """Ask a running broker to shut down cleanly (what SIGTERM does)."""
        self._shutdown.set()

    def _create_authorizer(self) -> Any:
        """The authorizer ``authorizer.class.name`` names, or None (ZooKeeper mode: the
        AclAuthorizer; a KRaft broker overrides this). Raises BrokerStartupError for another class
        (e.g. Kafka's StandardAuthorizer, which needs KRaft mode)."""
        from kafkalike.broker.acl_authorizer import AclAuthorizer
        try:
            return AclAuthorizer.from_config(self.config)
        except ValueError as exc:
            raise BrokerStartupError(str(exc)) from None

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start the broker, report ``started`` (and task_status), serve until shutdown.

        Raises BrokerStartupError (one-line reason) when start-up cannot proceed.
        """
        cfg = self.config
        zk_sasl = zookeeper_sasl_credentials(cfg)
        if cfg["zookeeper.set.acl"] and zk_sasl is None:  # Kafka: a SecurityException at start-up
            raise BrokerStartupError("zookeeper.set.acl is true, but no ZooKeeper SASL login was configured: "
                                     "set kafkalike.zookeeper.jaas.config to a JAAS file with a Client section")
        zk = ZooKeeperClient(cfg.zookeeper_connect, session_timeout_ms=cfg.zookeeper_session_timeout_ms,
                             connection_timeout_ms=cfg.zookeeper_connection_timeout_ms,
                             name=f"broker-{self.broker_id}", sasl=zk_sasl,
                             acl_provider=functools.partial(default_acls, True) if cfg["zookeeper.set.acl"] else None)
        try:
            await zk.start()
        except Exception as exc:
            raise BrokerStartupError(
                f"cannot connect to ZooKeeper at {cfg.zookeeper_connect!r}: {exc}") from exc
        self.zk, self.kafka_zk = zk, KafkaZkClient(zk)
        await self._serve(task_status)

    async def _serve(self, task_status: Any) -> None:
        """Start the components (``_startup``), report ``started`` and ``task_status``, serve until
        ``request_shutdown()``, then controlled shutdown and stop; ``_close()`` always. A
        BrokerStartupError from start-up is raised alone (one-line reason), not in its group.
        Shared by KafkaServer (ZooKeeper mode) and BrokerServer (KRaft)."""
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                await self._startup(nursery)
                self.started.set()
                task_status.started(self)
                await self._shutdown.wait()
                log.info("shutdown_started")
                await self._controlled_shutdown()
                await self._shutdown_components()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            startup_errors = group.subgroup(BrokerStartupError)
            if startup_errors is not None:  # raise the one-line reason, not the group
                raise _first_leaf(startup_errors) from None
            raise
        finally:
            await self._close()

    async def _startup(self, nursery: trio.Nursery) -> None:
        cfg = self.config
        assert self.kafka_zk is not None
        await self.kafka_zk.create_top_level_paths()
        self.cluster_id = await self.kafka_zk.get_or_create_cluster_id()
        if self.broker_id < 0:
            self.broker_id = await self._generate_broker_id()
            self.metadata_cache.broker_id = self.broker_id
        structlog.contextvars.bind_contextvars(broker_id=self.broker_id)
        # dynamic broker configs (KIP-226): /config/brokers/<default> and /<id> over server.properties
        self.dynamic_config = DynamicBrokerConfig(cfg, self.broker_id, self.kafka_zk)
        self.config = cfg = await self.dynamic_config.initialize()
        for key in cfg.ignored_keys():
            log.info("config_ignored", key=key, reason="accepted for Kafka compatibility; no effect")
        log.info("broker_starting", cluster_id=self.cluster_id, log_dirs=cfg.log_dirs,
                 zookeeper=cfg.zookeeper_connect)

        await self._start_serving(nursery, self.zk, self.kafka_zk)

        self.registration = self._registration()
        try:
            self.broker_epoch = await self.kafka_zk.register_broker(self.registration)
        except BrokerIdInUse as exc:
            raise BrokerStartupError(str(exc)) from exc
        nursery.start_soon(self._watch_session)
        for hook in self.startup_hooks:
            await hook()
        # the objects of start-up (logs recovered, caches loaded) leave the collector's view
        self.gc_policy.after_startup()
        await nursery.start(self.gc_policy.run)
        log.info("broker_started", broker_epoch=self.broker_epoch,
                 endpoints=[e.connection_string for e in self.registration.endpoints])

    async def _start_serving(self, nursery: trio.Nursery, zk: Any, kafka_zk: Any) -> None:
        """Load the logs, build the components over the control plane's clients (ZooKeeper mode:
        the ZooKeeperClient and KafkaZkClient; KRaft's BrokerServer: None and its
        KRaftControlPlane), bind the listeners and serve /metrics. Shared by both modes."""
        cfg = self.config
        self.log_manager = LogManager(cfg.log_dirs)
        try:
            self.log_manager.startup(broker_id=self.broker_id, cluster_id=self.cluster_id)
        except Exception as exc:
            raise BrokerStartupError(str(exc)) from exc

        try:
            per_ip_overrides = parse_per_ip_overrides(cfg["max.connections.per.ip.overrides"])
            queued_max = cfg["queued.max.request.bytes"]
            if "queued.max.request.bytes" not in cfg.originals:  # kafkalike's default: fit the largest frame
                queued_max = max(queued_max, cfg["socket.request.max.bytes"])
            check_connection_config(cfg["max.connections.per.ip"], per_ip_overrides,
                                    queued_max, cfg["socket.request.max.bytes"])
        except ValueError as exc:
            raise BrokerStartupError(str(exc)) from None
        try:  # SSL listeners: a bad keystore / truststore stops start-up with one line naming the key
            ssl_contexts = {e.listener_name: server_context(cfg.listener_ssl_config(e.listener_name))
                            for e in cfg.listeners if e.security_protocol in ("SSL", "SASL_SSL")}
            principal_mappers = {}  # ssl.principal.mapping.rules per TLS listener (KIP-371)
            for name in ssl_contexts:
                prop, rules = cfg.listener_ssl_config(name)["ssl.principal.mapping.rules"]
                principal_mappers[name] = SslPrincipalMapper.from_rules(rules, prop)
            inter = cfg.inter_broker_listener_name
            inter_ssl = None
            if inter in ssl_contexts:  # Kafka: the inter-broker listener's ssl.* configs, client mode
                inter_ssl = client_context(cfg.listener_ssl_config(inter))
                self.controller.channel.ssl_context = inter_ssl
        except SslConfigError as exc:
            raise BrokerStartupError(str(exc)) from None
        try:  # SASL listeners: an unknown mechanism or a missing JAAS config stops start-up naming the key
            sasl_configs = sasl.listener_sasl_configs(cfg)
            inter_sasl = sasl.inter_broker_sasl_client(cfg, sasl_configs)
            self.controller.channel.sasl = inter_sasl
        except sasl.SaslConfigError as exc:
            raise BrokerStartupError(str(exc)) from None
        self.inter_broker = InterBrokerClientConfig(ssl_context=inter_ssl, sasl=inter_sasl)
        self._build_components(nursery, self.log_manager, zk, kafka_zk)
        authenticators = {
            name: (lambda conn, listener=listener: sasl.SaslServerAuthenticator(
                listener, self.scram_credentials, self.apis, self.apis.supported, conn))
            for name, listener in sasl_configs.items()}
        self.socket_server = SocketServer(
            [(e.listener_name, e.host, e.port) for e in cfg.listeners], self.apis,
            max_request_bytes=cfg["socket.request.max.bytes"], idle_ms=cfg["connections.max.idle.ms"],
            queued_max_request_bytes=queued_max,
            max_connections=cfg["max.connections"], max_connections_per_ip=cfg["max.connections.per.ip"],
            per_ip_overrides=per_ip_overrides, inter_broker_listener=cfg.inter_broker_listener_name,
            ssl_contexts=ssl_contexts, principal_mappers=principal_mappers, authenticators=authenticators,
            failed_authentication_delay_ms=cfg["connection.failed.authentication.delay.ms"],
            pipeline_produce=bool(cfg["kafkalike.produce.pipelining"]))
        try:
            self.bound_listeners = await nursery.start(self.socket_server.serve)
        except (OSError, BaseExceptionGroup) as exc:
            # serve binds inside its own nursery, so trio hands the OSError up in a group
            os_errors = exc if isinstance(exc, OSError) else exc.subgroup(OSError)
            if os_errors is None:
                raise
            bind_error = os_errors if isinstance(os_errors, OSError) else _first_leaf(os_errors)
            raise BrokerStartupError(
                f"cannot bind listeners {[e.connection_string for e in cfg.listeners]}: {bind_error}") from None

        await self._start_metrics(nursery)

    async def _start_metrics(self, nursery: trio.Nursery) -> None:
        """Serve /metrics (broker_metrics) on the first listener's host at kafkalike.metrics.port
        (-1: off). A port set in the config and taken stops start-up (BrokerStartupError); the
        default port taken (another broker on this host) is a warning and no endpoint."""
        port = self.config["kafkalike.metrics.port"]
        if port < 0:
            return
        from kafkalike.broker.broker_metrics import BrokerMetricsCollector, MetricsServer, make_registry

        collector = BrokerMetricsCollector(
            broker_id=self.broker_id, replica_manager=self.replica_manager, controller=self.controller,
            group_coordinator=self.group_coordinator,
            zk_statistics=lambda: self.zk.statistics() if self.zk is not None else None,
            request_stats=self.apis.request_stats, topic_stats=self.apis.topic_stats,
            socket_server=self.socket_server)
        host = self.config.listeners[0].host if self.config.listeners else ""
        from kafkalike.broker.client_quota_manager import QuotaMetricsCollector

        server = MetricsServer(make_registry(collector, lambda: self.gc_policy.frozen_total,
                                             extra=[QuotaMetricsCollector(self.client_quotas)]), host, port)
        try:
            await nursery.start(server.serve)
        except OSError as exc:
            if "kafkalike.metrics.port" in self.config.originals:
                raise BrokerStartupError(f"cannot bind kafkalike.metrics.port {host}:{port}: {exc}") from None
            log.warning("metrics_not_served", host=host, port=port, error=str(exc),
                        hint="set kafkalike.metrics.port (0 = any free port, -1 = off)")
            return
        self.metrics_server = server

    async def _generate_broker_id(self) -> int:
        """broker.id=-1: reuse the id in meta.properties, else take a new one from /brokers/seqid
        (its data version after a write, plus reserved.broker.max.id: Kafka's generateBrokerId)."""
        stored = {m.broker_id for d in self.config.log_dirs
                  if (m := read_meta_properties(Path(d))) is not None}
        if len(stored) > 1:
            raise BrokerStartupError(f"log dirs hold different broker ids {sorted(stored)} in meta.properties")
        if stored:
            return stored.pop()
        assert self.zk is not None
        await self.zk.ensure_path(zd.BROKER_SEQUENCE_ID_PATH)
        stat = await self.zk.set(zd.BROKER_SEQUENCE_ID_PATH, b"")
        return stat.version + int(self.config["reserved.broker.max.id"])

    def _registration(self) -> zd.BrokerRegistration:
        """The /brokers/ids/<id> content: advertised listeners, with bound ports for port 0
        and this broker's listener host (or 127.0.0.1) for an empty host."""
        bound = {b.listener_name: b for b in self.bound_listeners}
        endpoints = []
        for ep in self.config.advertised_listeners:
            b = bound.get(ep.listener_name)
            port = ep.port or (b.port if b else ep.port)
            host = ep.host or (b.host if b and b.host else "127.0.0.1")
            endpoints.append(zd.EndPoint(ep.listener_name, host, port, ep.security_protocol))
        return zd.BrokerRegistration(broker_id=self.broker_id, endpoints=tuple(endpoints),
                                     timestamp_ms=int(time.time() * 1000),
                                     rack=self.config["broker.rack"])

    async def _watch_session(self) -> None:
        """Re-register after a session expiry (new session => new broker epoch)."""
        assert self.zk is not None and self.kafka_zk is not None
        events = self.zk.session_events()
        async for ev in events:
            if ev.state is SessionState.EXPIRED:
                log.warning("zookeeper_session_expired")
            elif ev.state is SessionState.CONNECTED and ev.new_session and self.registration:
                self.registration = self._registration()
                try:
                    self.broker_epoch = await self.kafka_zk.register_broker(self.registration)
                except Exception as exc:  # keep trying on the next session event
                    log.error("broker_reregistration_failed", error=str(exc))
                    continue
                log.info("broker_reregistered", broker_epoch=self.broker_epoch)

    async def on_metadata_update(self, deleted: list[zd.TopicPartition]) -> None:
        """Called by KafkaApis after each UpdateMetadata; forwards to registered listeners."""
        for listener in self.metadata_listeners:
            await listener(deleted)

    async def _controlled_shutdown(self) -> None:
        """controlled.shutdown.enable: ask the controller to move this broker's leaderships
        away before anything stops (Kafka's KafkaServer.controlledShutdown), retrying
        controlled.shutdown.max.retries times; after that the shutdown proceeds anyway."""
        cfg = self.config
        if not cfg["controlled.shutdown.enable"] or self.kafka_zk is None or self.zk is None \
                or not self.zk.connected or self.broker_epoch < 0:
            return
        started = trio.current_time()
        ok = False
        try:
            ok = await send_controlled_shutdown(
                self.kafka_zk, self.broker_id, self.broker_epoch,
                listener_name=cfg.inter_broker_listener_name,
                max_retries=cfg["controlled.shutdown.max.retries"],
                retry_backoff_ms=cfg["controlled.shutdown.retry.backoff.ms"],
                request_timeout_ms=cfg["controller.socket.timeout.ms"],
                ssl_context=self.inter_broker.ssl_context, sasl=self.inter_broker.sasl)
        except Exception as exc:
            log.warning("controlled_shutdown_error", error=str(exc))
        log.info("controlled_shutdown_finished", succeeded=ok,
                 elapsed_ms=round((trio.current_time() - started) * 1000))

    async def _shutdown_components(self) -> None:
        for hook in reversed(self.shutdown_hooks):
            try:
                await hook()
            except Exception:
                log.exception("shutdown_hook_failed", hook=getattr(hook, "__qualname__", repr(hook)))
        if self.zk is not None and self.registration is not None and self.zk.connected:
            with trio.move_on_after(5):
                try:
                    await self.zk.delete(self.registration.path)
                    log.info("broker_deregistered")
                except NoNode:
                    pass
                except Exception as exc:
                    log.warning("broker_deregistration_failed", error=str(exc))

    async def _close(self) -> None:
        if self.log_manager is not None:
            try:
                self.log_manager.shutdown()
            except Exception:
                log.exception("log_manager_shutdown_failed")
        if self.zk is not None:
            with trio.CancelScope(shield=True):
                await self.zk.close()
        self.state_change_log.close()
        self.gc_policy.shutdown()
        log.info("broker_stopped")


def zookeeper_sasl_credentials(cfg: KafkaConfig) -> ZkSaslCredentials | None:
    """The broker's SASL login to ZooKeeper: the ``Client`` section of the JAAS file named by
    ``kafkalike.zookeeper.jaas.config``, else by ``-Djava.security.auth.login.config=`` in the
    KAFKA_OPTS environment variable (where Kafka's scripts pass it to the JVM); None if neither
    is set or the file has no Client section (Kafka then connects without SASL too).
    Raises BrokerStartupError for an unreadable file or a Client section without credentials."""
    try:
        return read_jaas_login(cfg["kafkalike.zookeeper.jaas.config"])
    except CoordinationError as exc:
        raise BrokerStartupError(str(exc)) from exc


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def run_broker(config: KafkaConfig) -> int:
    """Run one broker until SIGTERM or SIGINT; returns the process exit code (0 clean, 1 on a
    start-up error, which is logged as one line)."""
    if config.process_roles == frozenset({"controller"}):  # a KRaft controller process (issue 21)
        from kafkalike.broker.controller_server import run_controller

        return await run_controller(config)
    server = KafkaServer(config)
    return await run_until_signal(server, BrokerStartupError, "broker_startup_failed", log)
