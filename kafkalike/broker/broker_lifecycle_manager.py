"""A KRaft broker's registration and heartbeats (Kafka 3.9's ``kafka.server.BrokerLifecycleManager``).

States (Kafka's ``BrokerState``), in order:

* ``STARTING``: BrokerRegistration (v3: node id, cluster id, a fresh incarnation id per process,
  listeners, supported features, rack, log dir ids) is sent until the controller accepts it; its
  answer gives the **broker epoch**. Heartbeats (BrokerHeartbeat v1, every
  ``broker.heartbeat.interval.ms``, with the broker's last committed metadata offset) ask to stay
  fenced (``want_fence``) until the controller answers ``is_caught_up``: ``initial_catch_up``
  is set and the broker enters ``RECOVERY``.
* ``RECOVERY``: fenced; the broker server publishes the metadata it has and calls
  ``set_ready_to_unfence()``; heartbeats stop asking to be fenced and the controller unfences the
  broker (``is_fenced`` false): ``RUNNING``.
* ``PENDING_CONTROLLED_SHUTDOWN``: ``begin_controlled_shutdown()`` (SIGTERM) makes heartbeats ask
  ``want_shut_down``; the controller moves leaderships away and answers ``should_shut_down``:
  ``SHUTTING_DOWN`` and ``controlled_shutdown_done`` is set.

A registration refused (DUPLICATE_BROKER_REGISTRATION while the previous process's session has not
expired, INCONSISTENT_CLUSTER_ID, ...) or a heartbeat refused is retried after a backoff that
doubles up to ``broker.heartbeat.interval.ms`` (Kafka: exponential backoff); NOT_CONTROLLER is
retried at once against the new leader (NodeToControllerChannel).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import structlog
import trio

from kafkalike.broker.forwarding_manager import (BROKER_HEARTBEAT, BROKER_REGISTRATION, ControllerUnavailableError,
                                                 NodeToControllerChannel)
from kafkalike.client.messages import build_request
from kafkalike.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

__all__ = ["BrokerLifecycleManager", "BrokerState", "METADATA_VERSION_RANGE"]

BROKER_REGISTRATION_VERSION = 3
BROKER_HEARTBEAT_VERSION = 1
METADATA_VERSION_RANGE = (1, 21)
"""metadata.version levels a kafkalike broker supports: 1 (3.0-IV1) to 21 (3.9-IV0), as Kafka 3.9's
broker registers them (MetadataVersion.MINIMUM_KRAFT_VERSION .. latestProduction)."""
SECURITY_PROTOCOL_IDS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}


class BrokerState(enum.Enum):
    """Kafka's BrokerState values a KRaft broker goes through."""

    NOT_RUNNING = 0
    STARTING = 1
    RECOVERY = 2
    RUNNING = 3
    PENDING_CONTROLLED_SHUTDOWN = 6
    SHUTTING_DOWN = 7


class BrokerLifecycleManager:
    """Registration and heartbeats of one broker (see module doc). ``broker_id``, ``cluster_id``;
    ``channel`` to the active controller; ``listeners()``: [(name, host, port, security protocol
    name)] as advertised (asked at registration time, after the listeners bound);
    ``metadata_offset()``: the broker's last committed metadata offset; ``rack``;
    ``log_dirs``: the log dirs' directory ids; times in ms. Start ``run`` in a nursery."""

    def __init__(self, broker_id: int, cluster_id: str, channel: NodeToControllerChannel,
                 listeners: Callable[[], Sequence[tuple[str, str, int, str]]], metadata_offset: Callable[[], int],
                 *, rack: str | None = None, log_dirs: Sequence[uuid.UUID] = (), heartbeat_interval_ms: int = 2000,
                 initial_backoff_ms: int = 100) -> None:
        self.broker_id = broker_id
        self.cluster_id = cluster_id
        self.channel = channel
        self.listeners = listeners
        self.metadata_offset = metadata_offset
        self.rack = rack
        self.log_dirs = tuple(log_dirs)
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.initial_backoff_ms = initial_backoff_ms
        self.incarnation_id = uuid.uuid4()
        self.state = BrokerState.NOT_RUNNING
        self.broker_epoch = -1
        self.is_fenced = True
        self.ready_to_unfence = False
        self.want_shut_down = False
        self.initial_catch_up = trio.Event()
        """Set when a heartbeat answer says the broker caught up with the metadata log."""
        self.unfenced = trio.Event()
        """Set when the controller first unfenced the broker."""
        self.controlled_shutdown_done = trio.Event()
        """Set when the controller answered should_shut_down."""
        self._wakeup = trio.Event()

    # ---------------------------------------------------------------- the broker server's calls
    def set_ready_to_unfence(self) -> None:
        """The broker has published the metadata it caught up with: stop asking to be fenced."""
        self.ready_to_unfence = True
        self._wakeup.set()

    def begin_controlled_shutdown(self) -> None:
        """Ask the controller (in the next heartbeat, sent at once) to move leaderships away."""
        if self.state in (BrokerState.PENDING_CONTROLLED_SHUTDOWN, BrokerState.SHUTTING_DOWN):
            return
        self.want_shut_down = True
        self._set_state(BrokerState.PENDING_CONTROLLED_SHUTDOWN)
        self._wakeup.set()

    # ---------------------------------------------------------------- the task
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Register, then heartbeat until cancelled; ``task_status.started()`` once registered."""
        self._set_state(BrokerState.STARTING)
        backoff = self.initial_backoff_ms
        while self.broker_epoch < 0:
            if await self._register():
                break
            await trio.sleep(backoff / 1000)
            backoff = min(backoff * 2, self.heartbeat_interval_ms)
        task_status.started()
        backoff = self.initial_backoff_ms
        while True:
            ok = await self._heartbeat()
            delay = self.heartbeat_interval_ms if ok else backoff
            backoff = self.initial_backoff_ms if ok else min(backoff * 2, self.heartbeat_interval_ms)
            with trio.move_on_after(delay / 1000):
                await self._wakeup.wait()
            self._wakeup = trio.Event()

    async def _register(self) -> bool:
        listeners = [{"name": name, "host": host, "port": port,
                      "security_protocol": SECURITY_PROTOCOL_IDS.get(protocol, 0)}
                     for name, host, port, protocol in self.listeners()]
        request = build_request(BROKER_REGISTRATION, BROKER_REGISTRATION_VERSION, broker_id=self.broker_id,
                                cluster_id=self.cluster_id, incarnation_id=self.incarnation_id, listeners=listeners,
                                features=[{"name": "metadata.version", "min_supported_version": METADATA_VERSION_RANGE[0],
                                           "max_supported_version": METADATA_VERSION_RANGE[1]}],
                                rack=self.rack, is_migrating_zk_broker=False, log_dirs=list(self.log_dirs))
        try:
            response = await self.channel.send(request)
        except ControllerUnavailableError as exc:
            log.warning("broker_registration_failed", error=str(exc))
            return False
        if response.error_code != ErrorCode.none:
            log.warning("broker_registration_refused", error=ErrorCode(response.error_code).name.upper())
            return False
        self.broker_epoch = int(response.broker_epoch)
        log.info("broker_registered", broker_epoch=self.broker_epoch, incarnation_id=str(self.incarnation_id))
        return True

    async def _heartbeat(self) -> bool:
        offset = self.metadata_offset()
        request = build_request(BROKER_HEARTBEAT, BROKER_HEARTBEAT_VERSION, broker_id=self.broker_id,
                                broker_epoch=self.broker_epoch, current_metadata_offset=offset,
                                want_fence=not self.ready_to_unfence,
                                want_shut_down=self.want_shut_down, offline_log_dirs=[])
        try:
            response = await self.channel.send(request, timeout_ms=self.heartbeat_interval_ms * 2)
        except ControllerUnavailableError as exc:
            log.warning("broker_heartbeat_failed", error=str(exc))
            return False
        if response.error_code != ErrorCode.none:
            log.warning("broker_heartbeat_refused", error=ErrorCode(response.error_code).name.upper(),
                        broker_epoch=self.broker_epoch)
            return False
        was_fenced, self.is_fenced = self.is_fenced, bool(response.is_fenced)
        if was_fenced != self.is_fenced:
            log.info("broker_fencing_changed", fenced=self.is_fenced, metadata_offset=offset)
        if response.is_caught_up and not self.initial_catch_up.is_set():
            log.info("broker_caught_up", metadata_offset=offset)
            self.initial_catch_up.set()
            if self.state is BrokerState.STARTING:
                self._set_state(BrokerState.RECOVERY)
        if not self.is_fenced and self.state in (BrokerState.STARTING, BrokerState.RECOVERY):
            self._set_state(BrokerState.RUNNING)
            self.unfenced.set()
        if self.want_shut_down and response.should_shut_down:
            self._set_state(BrokerState.SHUTTING_DOWN)
            self.controlled_shutdown_done.set()
        return True

    def _set_state(self, state: BrokerState) -> None:
        if state is not self.state:
            log.info("broker_state_changed", old=self.state.name, new=state.name)
            self.state = state
