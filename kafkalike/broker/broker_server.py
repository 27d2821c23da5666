"""A KRaft broker process (Kafka 3.9's ``kafka.server.BrokerServer``): ``process.roles=broker``.

    kafkalike storage format -t CLUSTER_ID -c broker.properties
    kafkalike broker start --config broker.properties

with, e.g.::

    process.roles=broker
    node.id=4
    controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095
    controller.listener.names=CONTROLLER
    listeners=PLAINTEXT://127.0.0.1:9092
    log.dirs=/tmp/kraft-broker-4/logs
    metadata.log.dir=/tmp/kraft-broker-4/metadata

The data plane is the ZooKeeper mode's, built by the same code (``KafkaServer._start_serving`` and
``_build_components``: log manager, replica manager, fetch sessions, group and transaction
coordinators, KafkaApis, socket server); what differs is the control plane around it:

* no ZooKeeper: the components get a ``KRaftControlPlane`` where they would get the KafkaZkClient
  (ISR writes become AlterPartition, producer id blocks AllocateProducerIds, topic lookups and
  dynamic configs come from the metadata image), and a ``ForwardingManager`` as admin manager
  (CreateTopics, DeleteTopics, CreatePartitions, Incremental/AlterConfigs and ElectLeaders go to
  the active controller; topic creation by the coordinators and auto-creation too);
* the broker is an **observer** of ``__cluster_metadata`` (KafkaRaftClient with its node id, not
  a voter) whose ``MetadataLoader`` feeds the ``BrokerMetadataPublisher``: KRaft metadata cache,
  replica changes through the seam, coordinators' leadership;
* the ``BrokerLifecycleManager`` registers the broker and heartbeats; start-up waits until the
  controller says the broker caught up with the metadata log, publishes, then asks to be unfenced
  and waits until it is; SIGTERM is a controlled shutdown through heartbeats (``want_shut_down``
  until ``should_shut_down``, at most ``broker.session.timeout.ms``).

Start-up errors (``BrokerStartupError``, one line): not formatted (no meta.properties v1 in the
metadata dir), node id or cluster id mismatch, a controller role, ``metadata.log.dir`` inside
``log.dirs`` (kafkalike's LogManager would load ``__cluster_metadata-0`` as a partition; Kafka's
skips it), an ``authorizer.class.name`` other than Kafka's StandardAuthorizer (or the ZooKeeper
AclAuthorizer's name, taken as its alias; ACLs come from the image: standard_authorizer.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import structlog
import trio

from kafkalike.broker.auth_helper import AuthHelper, install
from kafkalike.broker.auto_topic_creation_manager import AutoTopicCreationManager
from kafkalike.broker.broker_lifecycle_manager import BrokerLifecycleManager
from kafkalike.broker.broker_metadata_publisher import BrokerMetadataPublisher, MetadataLoader
from kafkalike.broker.dynamic_broker_config import DynamicBrokerConfig
from kafkalike.broker.forwarding_manager import (ControllerUnavailableError, ForwardingManager, KRaftControlPlane,
                                                 NodeToControllerChannel, forwarding_error_response)
from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.kafka_server import BrokerStartupError, KafkaServer
from kafkalike.broker.kraft_metadata_cache import KRaftMetadataCache
from kafkalike.broker.kraft_scram_credentials import ImageScramCredentialStore
from kafkalike.broker.sasl_scram import ScramCredentialApis
from kafkalike.broker.standard_authorizer import KRAFT_AUTHORIZER_CLASSES, StandardAuthorizer
from kafkalike.broker.server import run_until_signal
from kafkalike.controller.state_change_logger import StateChangeLogger
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.entities import build, response_class_for
from kafkalike.raft.kafka_metadata_log import KafkaMetadataLog
from kafkalike.raft.kafka_raft_client import KafkaRaftClient, RaftConfig, parse_voters
from kafkalike.raft.quorum_state import QUORUM_STATE_FILE, FileQuorumStateStore, QuorumState
from kafkalike.storage.errors import StorageError
from kafkalike.storage.meta_properties import read_meta_properties_v1

log = structlog.get_logger(__name__)

__all__ = ["BrokerServer", "run_kraft_broker"]


class BrokerServer(KafkaServer):
    """One KRaft broker (see module doc). ``await server.run()`` starts it (``started`` is set
    once it is unfenced) and serves until ``request_shutdown()``. Besides KafkaServer's
    attributes: ``raft`` (the observer), ``loader``, ``publisher``, ``lifecycle``, ``channel``,
    ``control_plane``, ``forwarding``, ``request_processing_enabled`` (set once unfenced: until
    then requests other than ApiVersions wait, as in Kafka)."""

    def __init__(self, config: KafkaConfig, *, raft: KafkaRaftClient | None = None,
                 loader: MetadataLoader | None = None) -> None:
        """``raft`` and ``loader``: a combined node's (kafka_raft_server): the broker reads the
        metadata log through the controller's Raft client (a voter, already running, with
        ``loader`` among its listeners) instead of running an observer of its own."""
        super().__init__(config)
        self.broker_id = config.node_id
        self.metadata_cache: KRaftMetadataCache = KRaftMetadataCache(broker_id=self.broker_id)
        self.raft: KafkaRaftClient | None = raft
        self._shared_raft = raft is not None
        self.metadata_log: KafkaMetadataLog | None = None
        self.loader = loader or MetadataLoader()
        self.publisher: BrokerMetadataPublisher | None = None
        self.lifecycle: BrokerLifecycleManager | None = None
        self.channel: NodeToControllerChannel | None = None
        self.control_plane: KRaftControlPlane | None = None
        self.forwarding: ForwardingManager | None = None
        self.request_processing_enabled = trio.Event()

    @property
    def metadata_dir(self) -> Path:
        """metadata.log.dir (required outside log.dirs, see module doc)."""
        return Path(self.config["metadata.log.dir"] or self.config.log_dirs[0])

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start (no ZooKeeper), report ``started`` and task_status, serve until shutdown.
        Raises BrokerStartupError (one-line reason)."""
        await self._serve(task_status)

    def _check_config(self) -> tuple[dict[int, tuple[str, int]], str]:
        """The voters and the cluster id (from meta.properties); BrokerStartupError otherwise."""
        cfg = self.config
        if cfg.process_roles != frozenset({"broker"}):
            raise BrokerStartupError(f"process.roles={','.join(sorted(cfg.process_roles))}: BrokerServer runs "
                                     "process.roles=broker (a combined node runs as kafka_raft_server.KafkaRaftServer)")
        name = (cfg["authorizer.class.name"] or "").strip()
        if name and name not in KRAFT_AUTHORIZER_CLASSES:
            raise BrokerStartupError(f"authorizer.class.name={name}: a kafkalike KRaft broker provides "
                                     f"{KRAFT_AUTHORIZER_CLASSES[0]} only")
        log_dirs = {Path(d).resolve() for d in cfg.log_dirs}
        if not cfg["metadata.log.dir"] or Path(cfg["metadata.log.dir"]).resolve() in log_dirs:
            raise BrokerStartupError("set metadata.log.dir to a directory that is not one of log.dirs "
                                     "(kafkalike's LogManager would load __cluster_metadata-0 as a partition)")
        try:
            voters = parse_voters(cfg["controller.quorum.voters"])
        except ValueError as exc:
            raise BrokerStartupError(str(exc)) from None
        if self.broker_id in voters and not self._shared_raft:
            raise BrokerStartupError(f"node.id {self.broker_id} is a controller.quorum.voters id: a broker "
                                     "needs an id of its own")
        try:
            meta = read_meta_properties_v1(self.metadata_dir)
        except StorageError as exc:
            raise BrokerStartupError(str(exc)) from None
        if meta is None or not meta.cluster_id:
            raise BrokerStartupError(f"No `meta.properties` found in {self.metadata_dir} (have you run "
                                     "`kafkalike storage format` to format the directory?)")
        if meta.node_id is not None and meta.node_id != self.broker_id:
            raise BrokerStartupError(f"Stored node id {meta.node_id} doesn't match previous node id "
                                     f"{self.broker_id} in {self.metadata_dir}")
        return voters, meta.cluster_id

    def _log_dir_ids(self) -> list[uuid.UUID]:
        ids = []
        for d in self.config.log_dirs:
            try:
                meta = read_meta_properties_v1(Path(d))
            except StorageError:
                continue
            if meta is not None and meta.directory_id is not None:
                ids.append(meta.directory_id)
        return ids

    async def _startup(self, nursery: trio.Nursery) -> None:
        cfg = self.config
        voters, cluster_id = self._check_config()
        self.cluster_id = cluster_id
        structlog.contextvars.bind_contextvars(broker_id=self.broker_id)
        log.info("broker_starting", cluster_id=cluster_id, log_dirs=cfg.log_dirs, mode="kraft",
                 metadata_log_dir=str(self.metadata_dir), voters=sorted(voters))

        # the Raft observer (a combined node: the controller's voter) and the controller channel
        raft = self.raft if self._shared_raft else self._open_observer(voters, cluster_id)
        assert raft is not None
        channel = self.channel = NodeToControllerChannel(
            self.broker_id, voters, lambda: raft.leader_and_epoch().leader_id, nursery,
            request_timeout_ms=cfg["controller.quorum.request.timeout.ms"] * 5)
        self.control_plane = control_plane = KRaftControlPlane(self.broker_id, channel, lambda: self.loader.image,
                                                               lambda: self.broker_epoch)
        self._init_dynamic_config(control_plane)

        # the data plane: the ZooKeeper mode's construction over the KRaft control plane
        await self._start_serving(nursery, None, control_plane)
        self._rewire_for_kraft(nursery, control_plane, channel)
        self._hold_requests_until_unfenced()

        # metadata: publisher, loader, observer
        rm, group, txn = self.replica_manager, self.group_coordinator, self.transaction_coordinator
        self.publisher = BrokerMetadataPublisher(
            self.broker_id, rm, self.metadata_cache, cfg.inter_broker_listener_name,
            leadership_listeners=[group.on_leadership_change, txn.on_leadership_change],
            metadata_listeners=[self.on_metadata_update], dynamic_config=self.dynamic_config,
            client_quotas=self.client_quotas, authorizer=self.authorizer,
            state_change_logger=StateChangeLogger(self.broker_id, False, log=self.state_change_log))
        self.loader.publishers.append(self.publisher)
        await nursery.start(self.loader.run)
        if not self._shared_raft:
            await nursery.start(raft.run)

        # registration, catch-up, unfencing (Kafka's BrokerServer.startup)
        self.registration = self._registration()
        endpoints = [(e.listener_name, e.host, e.port, e.security_protocol) for e in self.registration.endpoints]
        lifecycle = self.lifecycle = BrokerLifecycleManager(
            self.broker_id, cluster_id, channel, lambda: endpoints, lambda: self.loader.image.offset,
            rack=cfg["broker.rack"], log_dirs=self._log_dir_ids(),
            heartbeat_interval_ms=cfg["broker.heartbeat.interval.ms"])
        await nursery.start(lifecycle.run)
        self.broker_epoch = lifecycle.broker_epoch
        log.info("broker_waiting_for_catch_up", broker_epoch=self.broker_epoch)
        await lifecycle.initial_catch_up.wait()
        await self.loader.wait_for_offset(self.loader.last_committed_offset)
        for hook in self.startup_hooks:
            await hook()
        lifecycle.set_ready_to_unfence()
        await lifecycle.unfenced.wait()
        self.request_processing_enabled.set()
        self.gc_policy.after_startup()
        await nursery.start(self.gc_policy.run)
        log.info("broker_started", broker_epoch=self.broker_epoch, metadata_offset=self.loader.image.offset,
                 endpoints=[f"{n}://{h}:{p}" for n, h, p, _ in endpoints])

    def _open_observer(self, voters: dict[int, tuple[str, int]], cluster_id: str) -> KafkaRaftClient:
        """The metadata log and a Raft observer of it feeding ``self.loader``."""
        cfg = self.config
        try:
            self.metadata_log = metadata_log = KafkaMetadataLog.open(self.metadata_dir)
        except StorageError as exc:
            raise BrokerStartupError(f"cannot open the metadata log in {self.metadata_dir}: {exc}") from None
        quorum = QuorumState(self.broker_id, set(voters), FileQuorumStateStore(metadata_log.dir / QUORUM_STATE_FILE))
        raft = self.raft = KafkaRaftClient(RaftConfig(
            node_id=self.broker_id, voters=voters, cluster_id=cluster_id,
            election_timeout_ms=cfg["controller.quorum.election.timeout.ms"],
            election_backoff_max_ms=cfg["controller.quorum.election.backoff.max.ms"],
            fetch_timeout_ms=cfg["controller.quorum.fetch.timeout.ms"],
            request_timeout_ms=cfg["controller.quorum.request.timeout.ms"],
            retry_backoff_ms=cfg["controller.quorum.retry.backoff.ms"]), metadata_log, quorum, self.loader)
        return raft

    def _create_authorizer(self) -> Any:
        """The StandardAuthorizer (ACLs from the image, CreateAcls / DeleteAcls to the controller
        through ``channel``) when ``authorizer.class.name`` names it, else None."""
        assert self.channel is not None, "the controller channel is made before the components"
        return StandardAuthorizer.from_kraft_config(self.config, self.channel)

    def _hold_requests_until_unfenced(self) -> None:
        """Requests other than ApiVersions wait for ``request_processing_enabled`` (set once the
        controller unfenced this broker), as Kafka 3.9's BrokerServer enables request processing only
        after unfencing. Without it a restarted broker answered Metadata from the metadata log on its
        disk, which may still list its previous incarnation as alive (in controlled shutdown), while
        the controller does not place replicas on it yet (issue 21)."""
        gate = self.request_processing_enabled

        def held(inner: Any) -> Any:
            async def handler(header: Any, request: Any, conn: Any) -> Any:
                await gate.wait()
                return await inner(header, request, conn)
            return handler
        apis = self.apis
        for key, inner in list(apis.handlers.items()):
            if key != ApiKey.API_VERSIONS:
                apis.handlers[key] = held(inner)

    def _init_dynamic_config(self, control_plane: KRaftControlPlane) -> None:
        """Dynamic broker configs: the ZooKeeper mode's DynamicBrokerConfig over the control plane,
        not initialized here (the image is not loaded yet): the metadata publisher reloads it
        from the image whenever ConfigRecords of the BROKER resource "" or this broker's id
        arrive, the first publish included (Kafka's DynamicConfigPublisher)."""
        zk_like: Any = control_plane  # the KafkaZkClient calls it makes, answered from the image
        self.dynamic_config = DynamicBrokerConfig(self.config, self.broker_id, zk_like)

    def _rewire_for_kraft(self, nursery: trio.Nursery, control_plane: KRaftControlPlane,
                          channel: NodeToControllerChannel) -> None:
        """After ``_build_components``: the admin manager becomes the ForwardingManager (DescribeConfigs
        still answered by the ZkAdminManager built over the control plane), topic creation of the
        coordinators and auto-creation go through it, ElectLeaders is forwarded, and the start-up /
        shutdown hooks are the data plane's only (no ZooKeeper controller, config-change watch,
        quota or ACL loaders)."""
        cfg = self.config
        rm, group, txn, apis = self.replica_manager, self.group_coordinator, self.transaction_coordinator, self.apis
        forwarding = self.forwarding = ForwardingManager(cfg, channel, self.metadata_cache, describe=self.admin_manager)
        admin: Any = forwarding  # the methods KafkaApis calls on ZkAdminManager
        self.admin_manager = admin
        apis.admin_manager = admin
        group.create_topic = forwarding.create_topic
        txn.admin_manager = forwarding
        self.auto_topic_creation_manager = AutoTopicCreationManager(forwarding.auto_create_topic,
                                                                    group.create_offsets_topic)
        apis.auto_create_topic = self.auto_topic_creation_manager.create_topic

        async def elect_leaders(header: Any, request: Any, conn: Any) -> Any:
            try:
                return await channel.send(request)
            except ControllerUnavailableError as exc:  # Kafka's ForwardingManager: REQUEST_TIMED_OUT
                log.warning("forward_failed", api=type(request).__name__, error=str(exc))
                return forwarding_error_response(request, exc.error_code, str(exc))
        apis.register(ApiKey.ELECT_LEADERS, elect_leaders)
        # DescribeQuorum is a broker API in KRaft mode, forwarded to the active controller
        apis.supported = {**apis.supported, ApiKey.DESCRIBE_QUORUM: DESCRIBE_QUORUM_VERSIONS}
        apis.register(ApiKey.DESCRIBE_QUORUM, lambda header, request, conn: describe_quorum(channel, request))
        # the ZooKeeper controller's reassignment handlers would wait on a controller never started
        apis.register(ApiKey.LIST_PARTITION_REASSIGNMENTS, forwarding.handle_list_partition_reassignments)
        apis.register(ApiKey.ALTER_PARTITION_REASSIGNMENTS, forwarding.handle_alter_partition_reassignments)
        # client quotas: written by the controller (ClientQuotaRecords), read from the image
        apis.register(ApiKey.ALTER_CLIENT_QUOTAS, forwarding.handle_alter_client_quotas)
        # SCRAM credentials: written by the controller, read from the image (authentication and
        # DescribeUserScramCredentials); new SASL connections use this store
        scram: Any = ImageScramCredentialStore(lambda: self.loader.image)  # ScramCredentialStore's methods
        self.scram_credentials = scram
        apis.register(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, ScramCredentialApis(scram).handle_describe)
        apis.register(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, forwarding.handle_alter_user_scram_credentials)
        if self.authorizer is not None:  # the handlers registered here, authorized as the others are
            self._authorize_rewired(apis, (ApiKey.ELECT_LEADERS, ApiKey.LIST_PARTITION_REASSIGNMENTS,
                                           ApiKey.ALTER_PARTITION_REASSIGNMENTS, ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS,
                                           ApiKey.ALTER_USER_SCRAM_CREDENTIALS))
        verifier = self.add_partitions_to_txn_manager
        self.startup_hooks = [
            rm.startup, group.startup,
            lambda: txn.startup(nursery, self.broker_id, control_plane, self.inter_broker.ssl_context,
                                self.inter_broker.sasl)]
        self.shutdown_hooks = [rm.shutdown, group.shutdown, txn.shutdown, verifier.shutdown]

    def _authorize_rewired(self, apis: Any, keys: tuple[int, ...]) -> None:
        """Wrap the handlers of ``keys`` (registered after KafkaServer installed authorization)
        with Kafka's per-API authorization (auth_helper.py), as the ZooKeeper mode's are."""
        class Only:  # install() wraps every handler it finds: show it these only
            handlers = {k: apis.handlers[k] for k in keys if k in apis.handlers}
            register = apis.register
        install(Only, AuthHelper(self.authorizer, self.metadata_cache.contains_topic))

    async def _controlled_shutdown(self) -> None:
        """Heartbeats with want_shut_down until the controller answers should_shut_down (it moved
        this broker's leaderships away), at most broker.session.timeout.ms; then the shutdown
        proceeds either way."""
        lifecycle = self.lifecycle
        if lifecycle is None or lifecycle.broker_epoch < 0:
            return
        started = trio.current_time()
        lifecycle.begin_controlled_shutdown()
        with trio.move_on_after(self.config["broker.session.timeout.ms"] / 1000):
            await lifecycle.controlled_shutdown_done.wait()
        log.info("controlled_shutdown_finished", succeeded=lifecycle.controlled_shutdown_done.is_set(),
                 elapsed_ms=round((trio.current_time() - started) * 1000))

    async def _close(self) -> None:
        if self.channel is not None:
            with trio.CancelScope(shield=True):
                await self.channel.aclose()
        if self.metadata_log is not None:
            try:
                self.metadata_log.close()
            except Exception:
                log.exception("metadata_log_close_failed")
        await super()._close()


DESCRIBE_QUORUM_VERSIONS = (0, 1)
"""DescribeQuorum versions a KRaft broker serves: the controllers' (kafkalike/raft: v0-1)."""


async def describe_quorum(channel: NodeToControllerChannel, request: Any) -> Any:
    """DescribeQuorum on a KRaft broker (Kafka 3.9's KafkaApis forwards it to the controller,
    ``forwardToControllerOrFail``; ``kafka-metadata-quorum.sh --bootstrap-server`` uses it): the
    active controller's answer, or, when no controller answers before the channel's deadline,
    REQUEST_TIMED_OUT as the top-level error with no topics (``DescribeQuorumRequest.getErrorResponse``).
    A ZooKeeper-mode broker does not serve it (nor does Kafka's)."""
    try:
        return await channel.send(request)
    except ControllerUnavailableError as exc:
        log.warning("forward_failed", api=type(request).__name__, error=str(exc))
        return build(response_class_for(request), error_code=exc.error_code, error_message=str(exc), topics=(),
                     nodes=())


async def run_kraft_broker(config: KafkaConfig) -> int:
    """Run one KRaft broker until SIGTERM or SIGINT; the exit code (0 clean, 1 when it cannot
    start, logged as one line ``broker_startup_failed``)."""

    server = BrokerServer(config)
    return await run_until_signal(server, BrokerStartupError, "broker_startup_failed", log)
