"""A broker may register again at once after it was fenced (Kafka's BrokerHeartbeatManager.hasValidSession).

Kafka refuses a BrokerRegistration with DUPLICATE_BROKER_REGISTRATION only while another incarnation
of the broker holds a valid session: unfenced and heard from within ``broker.session.timeout.ms``.
A broker that finished a controlled shutdown is fenced (SHUTDOWN_NOW), so its next process registers
at once. These tests drive a ControllerState as the active controller does (operations return
records, the records are replayed at consecutive offsets) with a clock that never moves, so every
session stays within its timeout: only fencing can make the registration acceptable.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from kafkalike.client.messages import build_request
from kafkalike.kraft.controller_result import ControllerError
from kafkalike.kraft.quorum_controller import ControllerState, QuorumControllerConfig
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode

CLUSTER = "MkU3OEVBNTcwNTJENDM2Qg"


class _ActiveController:
    def __init__(self) -> None:
        self.state = ControllerState(QuorumControllerConfig(cluster_id=CLUSTER, session_timeout_ms=9000),
                                     clock=lambda: 0.0)
        self.state.cluster.activate()
        self.offset = 0
        self.commit([mr.FeatureLevelRecord(name="metadata.version", feature_level=21)])

    def commit(self, records: Sequence[mr.ApiMessage | mr.ApiMessageAndVersion]) -> None:
        for r in records:
            self.state.replay(r.message if isinstance(r, mr.ApiMessageAndVersion) else r, self.offset)
            self.offset += 1

    def register(self, broker_id: int, incarnation: uuid.UUID) -> int:
        request = build_request(62, 4, broker_id=broker_id, cluster_id=CLUSTER, incarnation_id=incarnation,
                                listeners=[], features=[{"name": "metadata.version", "min_supported_version": 1,
                                                         "max_supported_version": 21}], log_dirs=[uuid.uuid4()])
        result = self.state.cluster.register_broker(request, 4, self.offset, self.state.features.metadata_version)
        self.commit(result.records)
        return int(result.response)

    def heartbeat(self, broker_id: int, *, want_fence: bool = False, want_shut_down: bool = False) -> None:
        epoch = self.state.cluster.registrations[broker_id].epoch
        request = build_request(63, 1, broker_id=broker_id, broker_epoch=epoch, current_metadata_offset=self.offset,
                                want_fence=want_fence, want_shut_down=want_shut_down)
        self.commit(self.state.replication.process_broker_heartbeat(request).records)


def _running(controller: _ActiveController, broker_id: int) -> uuid.UUID:
    incarnation = uuid.uuid4()
    controller.register(broker_id, incarnation)
    controller.heartbeat(broker_id)  # caught up: unfenced
    assert controller.state.cluster.is_active(broker_id)
    return incarnation


def test_a_new_incarnation_is_refused_while_the_running_broker_holds_its_session() -> None:
    controller = _ActiveController()
    _running(controller, 1)
    with pytest.raises(ControllerError) as refused:
        controller.register(1, uuid.uuid4())
    assert refused.value.error is ErrorCode.duplicate_broker_registration


def test_a_broker_restarted_after_a_controlled_shutdown_registers_at_once() -> None:
    controller = _ActiveController()
    _running(controller, 1)
    _running(controller, 2)
    controller.heartbeat(1, want_shut_down=True)  # leads nothing: SHUTDOWN_NOW, fenced
    assert controller.state.cluster.registrations[1].fenced
    assert controller.state.cluster.has_valid_session(1) is False
    old_epoch = controller.state.cluster.registrations[1].epoch
    new_epoch = controller.register(1, uuid.uuid4())  # the clock has not moved: only fencing allows it
    assert new_epoch > old_epoch
    assert controller.state.cluster.registrations[1].epoch == new_epoch


def test_a_fenced_broker_may_register_with_a_new_incarnation() -> None:
    controller = _ActiveController()
    _running(controller, 1)
    controller.heartbeat(1, want_fence=True)
    assert controller.state.cluster.registrations[1].fenced
    controller.register(1, uuid.uuid4())
    assert controller.state.cluster.registrations[1].fenced  # registered fenced until it catches up
