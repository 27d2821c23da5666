"""A combined KRaft node (Kafka 3.9's ``kafka.server.KafkaRaftServer`` with
``process.roles=broker,controller``): one process runs the ControllerServer (a voter of the quorum)
and the BrokerServer, and the broker reads the metadata log through the controller's Raft client
(no second observer; Kafka's ``SharedServer`` owns the one RaftManager both use).

    kafkalike storage format -t CLUSTER_ID -c combined.properties
    kafkalike broker start --config combined.properties

with, e.g.::

    process.roles=broker,controller
    node.id=1
    controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.2:9093,3@127.0.0.3:9093
    listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
    controller.listener.names=CONTROLLER
    log.dirs=/tmp/kraft-combined-1/logs
    metadata.log.dir=/tmp/kraft-combined-1/metadata

Start-up: the checks Kafka's KafkaConfig makes for a combined node (``check_combined_config``), then
the controller (its Raft client delivers each committed batch to the QuorumController, then to
the broker's MetadataLoader, see ``RaftListeners``), then the broker over the same Raft client,
with the listeners that are not controller listeners. The broker registers, catches up and is
unfenced as a separate broker is. SIGTERM: the broker's controlled shutdown first, then the
controller (the Raft leader resigns), as Kafka's KafkaRaftServer shuts down broker then controller.

Start-up errors (``KafkaRaftServerStartupError``, one line): a bad combination of settings (below),
and every ControllerStartupError and BrokerStartupError.

kafkalike differs from Kafka in one point: ``metadata.log.dir`` must be set outside ``log.dirs``
(kafkalike's LogManager would load ``__cluster_metadata-0`` as a partition; Kafka's skips it).
"""

from __future__ import annotations

from typing import Any

import structlog
import trio

from kafkalike.broker.broker_metadata_publisher import MetadataLoader
from kafkalike.broker.broker_server import BrokerServer
from kafkalike.broker.controller_server import ControllerServer, ControllerStartupError
from kafkalike.broker.kafka_config import ConfigError, KafkaConfig
from kafkalike.broker.kafka_server import BrokerStartupError
from kafkalike.broker.server import run_until_signal
from kafkalike.raft.kafka_raft_client import parse_voters

__all__ = ["KafkaRaftServer", "KafkaRaftServerStartupError", "broker_config", "check_combined_config",
           "run_kafka_raft_server"]

log = structlog.get_logger("kafkalike.kraft")

COMBINED_ROLES = frozenset({"broker", "controller"})


class KafkaRaftServerStartupError(Exception):
    """The combined node cannot start; ``str(err)`` is one line saying why."""


def _controller_listener_names(config: KafkaConfig) -> list[str]:
    return [n.strip().upper() for n in config["controller.listener.names"] or () if n.strip()]


def check_combined_config(config: KafkaConfig) -> None:
    """Kafka 3.9's KafkaConfig validation for ``process.roles=broker,controller``; raises
    KafkaRaftServerStartupError (one line) when:

    * node.id is not among controller.quorum.voters (a controller role is a voter);
    * the first of controller.listener.names is not among ``listeners``;
    * advertised.listeners names a controller listener (clients reach brokers only);
    * inter.broker.listener.name is a controller listener;
    * no listener is left for the broker once the controller listeners are taken out.
    """
    if config.process_roles != COMBINED_ROLES:
        raise KafkaRaftServerStartupError(f"process.roles={','.join(sorted(config.process_roles))}: "
                                          "a combined node has process.roles=broker,controller")
    try:
        voters = parse_voters(config["controller.quorum.voters"])
    except ValueError as exc:
        raise KafkaRaftServerStartupError(str(exc)) from None
    if config.node_id not in voters:
        raise KafkaRaftServerStartupError(
            f"If process.roles contains the 'controller' role, the node id {config.node_id} must be included in "
            f"the set of voters controller.quorum.voters={sorted(voters)}")
    names = _controller_listener_names(config)
    listener_names = [e.listener_name.upper() for e in config.listeners]
    if not names or names[0] not in listener_names:
        raise KafkaRaftServerStartupError(
            "controller.listener.names must contain at least one value appearing in the 'listeners' "
            f"configuration when running the KRaft controller role (controller.listener.names={names}, "
            f"listeners={listener_names})")
    if config["advertised.listeners"] is not None:
        advertised = [e.listener_name.upper() for e in config.advertised_listeners]
        clash = sorted(set(advertised) & set(names))
        if clash:
            raise KafkaRaftServerStartupError(
                f"The advertised.listeners config must not contain KRaft controller listeners from "
                f"controller.listener.names ({clash}) when process.roles contains the broker role: clients "
                "send their requests to brokers, not to controllers")
    if config["inter.broker.listener.name"] and str(config["inter.broker.listener.name"]).upper() in names:
        raise KafkaRaftServerStartupError(
            f"inter.broker.listener.name={config['inter.broker.listener.name']} is a controller listener "
            "(controller.listener.names): brokers replicate over a broker listener")
    if not [n for n in listener_names if n not in names]:
        raise KafkaRaftServerStartupError(
            f"listeners={listener_names} holds only controller listeners: the broker role needs one of its own")


def broker_config(config: KafkaConfig) -> KafkaConfig:
    """The broker's view of a combined node's config: ``process.roles=broker`` and ``listeners``
    without the controller listeners (Kafka's BrokerServer binds only the non-controller
    listeners; advertised.listeners defaults to those). Raises KafkaRaftServerStartupError."""
    names = set(_controller_listener_names(config))
    raw = dict(config.originals)
    raw["process.roles"] = "broker"
    raw["listeners"] = ",".join(u.strip() for u in str(raw.get("listeners", "")).split(",")
                                if u.strip() and u.split("://", 1)[0].strip().upper() not in names)
    try:
        return KafkaConfig.from_mapping(raw)
    except ConfigError as exc:
        raise KafkaRaftServerStartupError(str(exc)) from None


class KafkaRaftServer:
    """One combined node (see module doc). ``run()`` serves until ``request_shutdown()``;
    ``controller_server`` and ``broker_server`` are its two halves (the broker's is set once the
    controller has started; ``broker_started`` is set once the broker is unfenced)."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.loader = MetadataLoader()
        self.controller_server = ControllerServer(config, extra_raft_listeners=(self.loader,))
        self.broker_server: BrokerServer | None = None
        self.broker_started = trio.Event()
        self._shutdown = trio.Event()

    def request_shutdown(self) -> None:
        """Stop: the broker (controlled shutdown), then the controller."""
        self._shutdown.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Check the config, start the controller then the broker; task_status.started() once the
        broker is unfenced; return after shutdown. Raises KafkaRaftServerStartupError."""
        check_combined_config(self.config)
        broker_cfg = broker_config(self.config)
        try:
            await self._run(broker_cfg, task_status)
        except (ControllerStartupError, BrokerStartupError) as exc:
            raise KafkaRaftServerStartupError(str(exc)) from None
        except BaseExceptionGroup as group:
            leaf = _first_leaf(group)
            if isinstance(leaf, (ControllerStartupError, BrokerStartupError)):
                raise KafkaRaftServerStartupError(str(leaf)) from None
            raise

    async def _run(self, broker_cfg: KafkaConfig, task_status: Any) -> None:
        controller_done, broker_done = trio.Event(), trio.Event()
        async with trio.open_nursery() as nursery:
            async def run_controller(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                try:
                    await self.controller_server.run(task_status=task_status)
                finally:
                    controller_done.set()

            async def run_broker(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                try:
                    await broker.run(task_status=task_status)
                finally:
                    broker_done.set()

            await nursery.start(run_controller)
            broker = self.broker_server = BrokerServer(broker_cfg, raft=self.controller_server.raft,
                                                       loader=self.loader)
            nursery.start_soon(run_broker)
            async with trio.open_nursery() as wait:  # unfenced, or asked to stop before
                async def until_started() -> None:
                    await broker.started.wait()
                    wait.cancel_scope.cancel()

                async def until_stopping() -> None:
                    await self._shutdown.wait()
                    wait.cancel_scope.cancel()
                wait.start_soon(until_started)
                wait.start_soon(until_stopping)
            if broker.started.is_set():
                self.broker_started.set()
                log.info("combined_node_started", node_id=self.node_id, controller_port=self.controller_server.port)
                task_status.started()
            await self._shutdown.wait()
            log.info("combined_node_stopping", node_id=self.node_id)
            broker.request_shutdown()
            await broker_done.wait()
            self.controller_server.request_shutdown()
            await controller_done.wait()
        log.info("combined_node_stopped", node_id=self.node_id)


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def run_kafka_raft_server(config: KafkaConfig) -> int:
    """Run one combined node until SIGTERM or SIGINT; the exit code (0 clean, 1 when it cannot
    start, logged as one line ``combined_node_startup_failed``)."""
    return await run_until_signal(KafkaRaftServer(config), KafkaRaftServerStartupError,
                                  "combined_node_startup_failed", log)
