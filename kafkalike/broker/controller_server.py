"""A KRaft controller process (Kafka's ControllerServer): ``process.roles=controller``.

    kafkalike storage format -t CLUSTER_ID -c controller.properties
    kafkalike broker start --config controller.properties

with, e.g.::

    process.roles=controller
    node.id=1
    controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095
    listeners=CONTROLLER://127.0.0.1:9093
    controller.listener.names=CONTROLLER
    log.dirs=/tmp/kraft-controller-1

Start-up reads ``meta.properties`` of the metadata log dir (``metadata.log.dir``, else the first
log dir; written by ``kafkalike storage format``): its cluster id is the quorum's, its node id must
be ``node.id``. Then it opens ``__cluster_metadata-0``, runs the Raft voter (KafkaRaftClient) with
the QuorumController as its listener, and serves ControllerApis on the first listener named in
``controller.listener.names``. The bootstrap records come from ``bootstrap.checkpoint`` in that
dir. SIGTERM: the Raft leader resigns (EndQuorumEpoch), the log is flushed and closed.

Start-up errors (``ControllerStartupError``, one line): no meta.properties (not formatted), node id
mismatch, node.id not among the voters, no controller listener.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
import trio

from kafkalike.broker.controller_apis import ControllerApis
from kafkalike.broker.kafka_config import KafkaConfig
from kafkalike.broker.server import run_until_signal
from kafkalike.kraft.feature_control_manager import METADATA_VERSION, MV_3_9_IV0
from kafkalike.kraft.quorum_controller import QuorumController, QuorumControllerConfig
from kafkalike.protocol import metadata_records as mr
from kafkalike.raft.kafka_metadata_log import KafkaMetadataLog
from kafkalike.raft.kafka_raft_client import (Batch, KafkaRaftClient, LeaderAndEpoch, RaftClientListener, RaftConfig,
                                              parse_voters)
from kafkalike.raft.quorum_state import QUORUM_STATE_FILE, FileQuorumStateStore, QuorumState
from kafkalike.storage.errors import StorageError
from kafkalike.storage.meta_properties import read_meta_properties_v1
from kafkalike.storage.snapshots import read_snapshot

__all__ = ["ControllerServer", "ControllerStartupError", "RaftListeners", "run_controller", "BOOTSTRAP_FILE"]

log = structlog.get_logger("kafkalike.kraft")

BOOTSTRAP_FILE = "bootstrap.checkpoint"


class ControllerStartupError(Exception):
    """The controller cannot start; ``str(err)`` is one line saying why."""


class RaftListeners:
    """Several Raft listeners behind one (Kafka's KafkaRaftClient keeps a list of registered
    listeners): each committed batch, loaded snapshot and leader change goes to each, in order.
    A combined node (``process.roles=broker,controller``) registers the QuorumController and the
    broker's MetadataLoader on the one Raft client."""

    def __init__(self, listeners: Sequence[Any]) -> None:
        self.listeners = tuple(listeners)

    def handle_commit(self, batch: Batch) -> None:
        for listener in self.listeners:
            listener.handle_commit(batch)

    def handle_leader_change(self, leader: LeaderAndEpoch) -> None:
        for listener in self.listeners:
            listener.handle_leader_change(leader)

    def handle_load_snapshot(self, snapshot_id: Any, snapshot: Any) -> None:
        for listener in self.listeners:
            handle = getattr(listener, "handle_load_snapshot", None)
            if handle is not None:
                handle(snapshot_id, snapshot)


class ControllerServer:
    """One controller (see module doc). ``run()`` until ``request_shutdown()``.
    ``extra_raft_listeners``: listeners that get the metadata log's commits after the
    QuorumController (a combined node's broker MetadataLoader, see kafka_raft_server)."""

    def __init__(self, config: KafkaConfig, extra_raft_listeners: Sequence[RaftClientListener] = ()) -> None:
        self.config = config
        self._extra_listeners = tuple(extra_raft_listeners)
        self.node_id = config.node_id
        self._shutdown = trio.Event()
        self.raft: KafkaRaftClient | None = None
        self.controller: QuorumController | None = None
        self.port: int | None = None

    @property
    def metadata_dir(self) -> Path:
        """metadata.log.dir, else the first log dir."""
        return Path(self.config["metadata.log.dir"] or self.config.log_dirs[0])

    def request_shutdown(self) -> None:
        """Stop: resign if leader, close the log (run returns)."""
        self._shutdown.set()

    def _listener(self) -> tuple[str, int]:
        names = [n.strip().upper() for n in self.config["controller.listener.names"] or ()]
        for ep in self.config.listeners:
            if names and ep.listener_name.upper() == names[0]:
                return ep.host or "0.0.0.0", ep.port
        raise ControllerStartupError(f"controller.listener.names' first name {names[:1]} is not among the "
                                     f"listeners {[e.listener_name for e in self.config.listeners]}")

    def _bootstrap_records(self) -> tuple[mr.ApiMessageAndVersion | mr.ApiMessage, ...]:
        path = self.metadata_dir / BOOTSTRAP_FILE
        if path.exists():
            try:
                return read_snapshot(path).records
            except StorageError as exc:
                raise ControllerStartupError(f"cannot read {path}: {exc}") from None
        # Kafka: no bootstrap.checkpoint -> the release's default metadata.version
        return (mr.FeatureLevelRecord(name=METADATA_VERSION, feature_level=MV_3_9_IV0),)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start Raft, the controller and the listener; task_status.started(bound port); return on
        shutdown. Raises ControllerStartupError."""
        cfg = self.config
        meta = read_meta_properties_v1(self.metadata_dir)
        if meta is None or not meta.cluster_id:
            raise ControllerStartupError(f"No `meta.properties` found in {self.metadata_dir} (have you run "
                                         "`kafkalike storage format` to format the directory?)")
        if meta.node_id is not None and meta.node_id != self.node_id:
            raise ControllerStartupError(f"Stored node id {meta.node_id} doesn't match previous node id "
                                         f"{self.node_id} in {self.metadata_dir}")
        try:
            voters = parse_voters(cfg["controller.quorum.voters"])
        except ValueError as exc:
            raise ControllerStartupError(str(exc)) from None
        if self.node_id not in voters:
            raise ControllerStartupError(f"node.id {self.node_id} is not among controller.quorum.voters "
                                         f"{sorted(voters)}")
        host, port = self._listener()
        bootstrap = self._bootstrap_records()
        raft_config = RaftConfig(
            node_id=self.node_id, voters=voters, cluster_id=meta.cluster_id,
            election_timeout_ms=cfg["controller.quorum.election.timeout.ms"],
            election_backoff_max_ms=cfg["controller.quorum.election.backoff.max.ms"],
            fetch_timeout_ms=cfg["controller.quorum.fetch.timeout.ms"],
            request_timeout_ms=cfg["controller.quorum.request.timeout.ms"],
            retry_backoff_ms=cfg["controller.quorum.retry.backoff.ms"])
        metadata_log = KafkaMetadataLog.open(self.metadata_dir)
        try:
            quorum = QuorumState(self.node_id, set(voters), FileQuorumStateStore(metadata_log.dir / QUORUM_STATE_FILE))
            raft = self.raft = KafkaRaftClient(raft_config, metadata_log, quorum)
            controller = self.controller = QuorumController(raft, QuorumControllerConfig(
                cluster_id=meta.cluster_id, session_timeout_ms=cfg["broker.session.timeout.ms"],
                num_partitions=cfg["num.partitions"], default_replication_factor=cfg["default.replication.factor"],
                unclean_leader_election=cfg["unclean.leader.election.enable"],
                delete_topic_enable=cfg["delete.topic.enable"], idle_interval_ms=cfg["metadata.max.idle.interval.ms"],
                bootstrap_records=tuple(bootstrap),
                snapshot_bytes=cfg["metadata.log.max.record.bytes.between.snapshots"]))
            raft.listener = RaftListeners((controller, *self._extra_listeners)) if self._extra_listeners else controller
            async with trio.open_nursery() as nursery:
                await nursery.start(controller.run)
                await nursery.start(raft.run)
                try:
                    self.port = await nursery.start(ControllerApis(raft, controller).serve, host, port)
                except OSError as exc:
                    raise ControllerStartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
                log.info("controller_started", node_id=self.node_id, host=host, port=self.port,
                         cluster_id=meta.cluster_id, voters=sorted(voters), dir=str(self.metadata_dir))
                task_status.started(self.port)
                await self._shutdown.wait()
                log.info("controller_stopping", node_id=self.node_id)
                await raft.shutdown()
                nursery.cancel_scope.cancel()
        finally:
            metadata_log.close()
        log.info("controller_stopped", node_id=self.node_id)


async def run_controller(config: KafkaConfig) -> int:
    """Run one controller until SIGTERM or SIGINT; the process exit code (0 clean, 1 when it
    cannot start, logged as one line ``controller_startup_failed``)."""

    server = ControllerServer(config)
    return await run_until_signal(server, ControllerStartupError, "controller_startup_failed", log)
