"""Brokers as the quorum controller knows them (Kafka's ClusterControlManager and BrokerHeartbeatManager).

* **Registration** (BrokerRegistration v0-4): a broker registers with its incarnation id, listeners,
  supported features and log dir ids; the controller writes a ``RegisterBrokerRecord`` whose
  ``broker_epoch`` is the offset that record gets in the metadata log (Kafka: the next write offset),
  registered **fenced**.
* **Heartbeats** (BrokerHeartbeat v0-1): each broker reports the metadata offset it has applied.
  The active controller keeps, in memory only, each broker's last contact (a trio clock, seconds)
  and that offset; a new active controller starts every session afresh. The next state of a broker
  follows Kafka 3.9's ``BrokerHeartbeatManager.calculateNextBrokerState``:

  ======================  ==========================================================================
  FENCED                  -> SHUTDOWN_NOW on wantShutDown; -> UNFENCED once its metadata offset has
                          reached its RegisterBrokerRecord's offset (and it does not wantFence)
  UNFENCED                -> FENCED on wantFence (SHUTDOWN_NOW with wantShutDown too); on wantShutDown
                          -> CONTROLLED_SHUTDOWN while it leads partitions, else SHUTDOWN_NOW
  CONTROLLED_SHUTDOWN     -> SHUTDOWN_NOW once it leads nothing and every active broker has applied
                          the offset where its controlled shutdown was recorded
  ======================  ==========================================================================

  A broker with no heartbeat for ``broker.session.timeout.ms`` (9000) is fenced.

State changes are ``BrokerRegistrationChangeRecord`` (fenced -1/1, inControlledShutdown 1), written
by the ReplicationControlManager together with the partition changes they cause.
Errors (ControllerError): INCONSISTENT_CLUSTER_ID, DUPLICATE_BROKER_REGISTRATION,
BROKER_ID_NOT_REGISTERED (a migrating ZooKeeper broker), UNSUPPORTED_VERSION (metadata.version),
INVALID_REGISTRATION (log dirs), STALE_BROKER_EPOCH.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import structlog
import trio

from kafkalike.kraft.controller_result import ControllerError, ControllerResult
from kafkalike.kraft.feature_control_manager import METADATA_VERSION
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode

__all__ = ["ClusterControlManager", "BrokerRegistration", "BrokerHeartbeatState", "BrokerControlState",
           "BrokerControlStates"]

log = structlog.get_logger("kafkalike.kraft")


@attrs.define
class BrokerRegistration:
    """A registered broker (Kafka's BrokerRegistration): ``epoch`` (= ``registered_offset``, the
    RegisterBrokerRecord's offset), listeners, features, rack, fencing state, log dir ids."""

    broker_id: int
    epoch: int
    incarnation_id: uuid.UUID
    listeners: tuple[mr.BrokerEndpoint, ...]
    features: tuple[mr.BrokerFeature, ...]
    rack: str | None
    fenced: bool
    in_controlled_shutdown: bool
    directories: tuple[uuid.UUID, ...]
    registered_offset: int


@attrs.define
class BrokerHeartbeatState:
    """The active controller's in-memory view of a broker's session: ``last_contact`` (trio clock,
    seconds), ``metadata_offset`` it reported, ``controlled_shutdown_offset`` (-1: none)."""

    broker_id: int
    last_contact: float
    metadata_offset: int = -1
    controlled_shutdown_offset: int = -1


class BrokerControlState(enum.Enum):
    """Kafka's BrokerControlState."""

    FENCED = (True, False, False)
    UNFENCED = (False, False, False)
    CONTROLLED_SHUTDOWN = (False, True, False)
    SHUTDOWN_NOW = (True, False, True)

    @property
    def fenced(self) -> bool:
        """The broker is (to be) fenced."""
        return self.value[0]

    @property
    def in_controlled_shutdown(self) -> bool:
        """The broker is (to be) in controlled shutdown."""
        return self.value[1]

    @property
    def should_shut_down(self) -> bool:
        """The broker may stop now."""
        return self.value[2]


@attrs.frozen
class BrokerControlStates:
    """A heartbeat's state transition (Kafka's BrokerControlStates)."""

    current: BrokerControlState
    next: BrokerControlState


def loop_time() -> float:
    """trio's clock (s), read on the event loop or from a worker thread that trio started
    (``trio.to_thread``: the quorum controller computes large operations, among them the fencing
    of a stale broker, off the loop). RuntimeError from any other thread."""
    try:
        return trio.current_time()
    except RuntimeError:  # not in the loop's thread: ask the loop
        return trio.from_thread.run_sync(trio.current_time)


class ClusterControlManager:
    """Registrations (replayed) and heartbeat sessions (active controller only). ``cluster_id``
    from meta.properties; ``session_timeout_ms`` broker.session.timeout.ms; ``clock`` in seconds."""

    def __init__(self, cluster_id: str, session_timeout_ms: int = 9000,
                 clock: Callable[[], float] = loop_time) -> None:
        self.cluster_id = cluster_id
        self.session_timeout_ms = session_timeout_ms
        self.clock = clock
        self.registrations: dict[int, BrokerRegistration] = {}
        self.heartbeats: dict[int, BrokerHeartbeatState] | None = None  # None: not the active controller

    # ------------------------------------------------------------------ replay

    def replay_register(self, record: mr.RegisterBrokerRecord, offset: int) -> None:
        """Apply a committed RegisterBrokerRecord at ``offset``."""
        self.registrations[record.broker_id] = BrokerRegistration(
            record.broker_id, record.broker_epoch, record.incarnation_id, record.end_points, record.features,
            record.rack, record.fenced, record.in_controlled_shutdown, tuple(record.log_dirs), offset)
        if self.heartbeats is not None:
            self.heartbeats[record.broker_id] = BrokerHeartbeatState(record.broker_id, self.clock())
        log.info("broker_registered", broker_id=record.broker_id, broker_epoch=record.broker_epoch,
                 incarnation_id=str(record.incarnation_id), fenced=record.fenced)

    def replay_change(self, record: mr.BrokerRegistrationChangeRecord, offset: int) -> None:
        """Apply a committed BrokerRegistrationChangeRecord (ignored, logged, for another epoch:
        Kafka's replay refuses a mismatched broker epoch)."""
        reg = self.registrations.get(record.broker_id)
        if reg is None or reg.epoch != record.broker_epoch:
            log.warning("broker_change_ignored", broker_id=record.broker_id, broker_epoch=record.broker_epoch,
                        registered_epoch=reg.epoch if reg else None)
            return
        if record.fenced == 1:
            reg.fenced = True
            reg.in_controlled_shutdown = False
            log.info("broker_fenced", broker_id=reg.broker_id, broker_epoch=reg.epoch, offset=offset)
        elif record.fenced == -1:
            reg.fenced = False
            log.info("broker_unfenced", broker_id=reg.broker_id, broker_epoch=reg.epoch, offset=offset)
        if record.in_controlled_shutdown == 1:
            reg.in_controlled_shutdown = True
            if self.heartbeats is not None and reg.broker_id in self.heartbeats:
                self.heartbeats[reg.broker_id].controlled_shutdown_offset = offset
            log.info("broker_in_controlled_shutdown", broker_id=reg.broker_id, broker_epoch=reg.epoch, offset=offset)

    def reset(self) -> None:
        """Forget everything (before a snapshot is loaded)."""
        self.registrations.clear()
        if self.heartbeats is not None:
            self.heartbeats.clear()

    # ------------------------------------------------------------------ sessions

    def activate(self) -> None:
        """This controller became active: every registered broker gets a fresh session (Kafka's
        ClusterControlManager.activate: heartbeat manager rebuilt, all touched now)."""
        now = self.clock()
        self.heartbeats = {b: BrokerHeartbeatState(b, now) for b in self.registrations}

    def deactivate(self) -> None:
        """No longer active: sessions are dropped."""
        self.heartbeats = None

    def has_valid_session(self, broker_id: int) -> bool:
        """The broker is unfenced and heartbeated within the session timeout (active controller only;
        Kafka's BrokerHeartbeatManager.hasValidSession: false for a fenced broker, so a broker that
        stopped after a controlled shutdown, or was fenced, may register again at once)."""
        reg = self.registrations.get(broker_id)
        if reg is None or reg.fenced:
            return False
        hb = (self.heartbeats or {}).get(broker_id)
        return hb is not None and self.clock() - hb.last_contact < self.session_timeout_ms / 1000

    def stale_brokers(self) -> list[int]:
        """Unfenced brokers (in controlled shutdown or not) whose session expired, oldest first."""
        if self.heartbeats is None:
            return []
        now = self.clock()
        stale = [(hb.last_contact, b) for b, hb in self.heartbeats.items()
                 if b in self.registrations and not self.registrations[b].fenced
                 and now - hb.last_contact >= self.session_timeout_ms / 1000]
        return [b for _t, b in sorted(stale)]

    def touch(self, broker_id: int, metadata_offset: int) -> None:
        """Record a heartbeat (in memory)."""
        if self.heartbeats is None:
            return
        hb = self.heartbeats.setdefault(broker_id, BrokerHeartbeatState(broker_id, self.clock()))
        hb.last_contact = self.clock()
        hb.metadata_offset = max(hb.metadata_offset, metadata_offset)

    # ------------------------------------------------------------------ queries

    def is_unfenced(self, broker_id: int) -> bool:
        """Registered and not fenced."""
        reg = self.registrations.get(broker_id)
        return reg is not None and not reg.fenced

    def is_active(self, broker_id: int) -> bool:
        """Registered, unfenced and not in controlled shutdown: may lead and join ISRs."""
        reg = self.registrations.get(broker_id)
        return reg is not None and not reg.fenced and not reg.in_controlled_shutdown

    def usable_brokers(self) -> list[int]:
        """Brokers new replicas may be placed on: active ones, by id."""
        return sorted(b for b in self.registrations if self.is_active(b))

    def default_dir(self, broker_id: int) -> uuid.UUID:
        """The log dir a new replica on ``broker_id`` goes to: its only dir, else unassigned
        (Kafka's ClusterDescriber.defaultDir; DirectoryId.UNASSIGNED is the zero Uuid)."""
        reg = self.registrations.get(broker_id)
        if reg is not None and len(reg.directories) == 1:
            return reg.directories[0]
        return mr.ZERO_UUID

    def check_broker_epoch(self, broker_id: int, broker_epoch: int) -> BrokerRegistration:
        """The registration of ``broker_id`` at ``broker_epoch``; ControllerError STALE_BROKER_EPOCH
        otherwise (Kafka's checkBrokerEpoch)."""
        reg = self.registrations.get(broker_id)
        if reg is None:
            raise ControllerError(ErrorCode.stale_broker_epoch, f"No broker registration found for broker {broker_id}")
        if reg.epoch != broker_epoch:
            raise ControllerError(ErrorCode.stale_broker_epoch,
                                  f"Expected broker epoch {reg.epoch}, but got broker epoch {broker_epoch}")
        return reg

    # ------------------------------------------------------------------ operations

    def register_broker(self, request: Any, version: int, next_offset: int,
                        metadata_version: int) -> ControllerResult:
        """BrokerRegistration: records [RegisterBrokerRecord] and as response the new broker epoch
        (``next_offset``, where the record will be written). See module doc for the errors."""
        if request.cluster_id != self.cluster_id:
            raise ControllerError(ErrorCode.inconsistent_cluster_id,
                                  f"Expected cluster ID {self.cluster_id}, but got cluster ID {request.cluster_id}")
        existing = self.registrations.get(request.broker_id)
        if existing is not None and self.has_valid_session(request.broker_id) and \
                existing.incarnation_id != request.incarnation_id:
            raise ControllerError(ErrorCode.duplicate_broker_registration,
                                  "Another broker is registered with that broker id.")
        if getattr(request, "is_migrating_zk_broker", False):
            raise ControllerError(ErrorCode.broker_id_not_registered,
                                  "Controller does not support registering ZK brokers.")
        log_dirs = tuple(d for d in getattr(request, "log_dirs", ()) if d is not None)
        if version >= 2:
            if not log_dirs:
                raise ControllerError(ErrorCode.invalid_registration, "No directories specified in request")
            if len(set(log_dirs)) != len(log_dirs):
                raise ControllerError(ErrorCode.invalid_registration, "Duplicate directory ID in request")
            if any(d.int < 100 for d in log_dirs):  # DirectoryId.reserved: UNASSIGNED, LOST, MIGRATING, ...
                raise ControllerError(ErrorCode.invalid_registration, "Reserved directory ID in request")
        features = {f.name: f for f in request.features}
        mv = features.get(METADATA_VERSION)
        lo, hi = (mv.min_supported_version, mv.max_supported_version) if mv is not None else (1, 7)
        if not lo <= metadata_version <= hi:
            raise ControllerError(ErrorCode.unsupported_version,
                                  f"Unable to register because the broker does not support version "
                                  f"{metadata_version} of metadata.version. It wants a version between {lo} and "
                                  f"{hi}, inclusive.")
        record = mr.RegisterBrokerRecord(
            broker_id=request.broker_id, is_migrating_zk_broker=False,
            incarnation_id=request.incarnation_id or mr.ZERO_UUID, broker_epoch=next_offset,
            end_points=tuple(mr.BrokerEndpoint(name=ln.name, host=ln.host, port=ln.port,
                                               security_protocol=ln.security_protocol) for ln in request.listeners),
            features=tuple(mr.BrokerFeature(name=f.name, min_supported_version=f.min_supported_version,
                                            max_supported_version=f.max_supported_version)
                           for f in request.features),
            rack=request.rack, fenced=True, in_controlled_shutdown=False, log_dirs=log_dirs)
        return ControllerResult((record,), next_offset)

    def calculate_next_broker_state(self, broker_id: int, request: Any,
                                    has_leaderships: Callable[[], bool]) -> BrokerControlStates:
        """Kafka 3.9's BrokerHeartbeatManager.calculateNextBrokerState (module doc's table)."""
        reg = self.registrations[broker_id]
        S = BrokerControlState
        current = S.FENCED if reg.fenced else S.CONTROLLED_SHUTDOWN if reg.in_controlled_shutdown else S.UNFENCED
        if current is S.FENCED:
            if request.want_shut_down:
                nxt = S.SHUTDOWN_NOW
            elif not request.want_fence and request.current_metadata_offset >= reg.registered_offset:
                nxt = S.UNFENCED
            else:
                nxt = S.FENCED
        elif current is S.UNFENCED:
            if request.want_fence:
                nxt = S.SHUTDOWN_NOW if request.want_shut_down else S.FENCED
            elif request.want_shut_down:
                nxt = S.CONTROLLED_SHUTDOWN if has_leaderships() else S.SHUTDOWN_NOW
            else:
                nxt = S.UNFENCED
        else:
            hb = (self.heartbeats or {}).get(broker_id)
            shutdown_offset = hb.controlled_shutdown_offset if hb is not None else -1
            if has_leaderships() or shutdown_offset < 0 or shutdown_offset > self.lowest_active_offset():
                nxt = S.CONTROLLED_SHUTDOWN
            else:
                nxt = S.SHUTDOWN_NOW
        return BrokerControlStates(current, nxt)

    def lowest_active_offset(self) -> int:
        """The lowest metadata offset any unfenced broker reported (Kafka's lowestActiveOffset);
        a very large number when there is none."""
        offsets = [hb.metadata_offset for b, hb in (self.heartbeats or {}).items() if self.is_unfenced(b)]
        return min(offsets) if offsets else 2**63 - 1
