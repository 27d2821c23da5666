"""FencedZkClient: KafkaZkClient as the controller and its state machines use it -- every
controller write first checks that this controller is still active, then runs behind the
controller-epoch check (Kafka's ``KafkaZkClient`` calls with ``expectedControllerEpochZkVersion``).

Kept apart from kafka_controller.py so that the components the controller builds
(PartitionStateMachine, ReplicaStateMachine, TopicDeletionManager) can name the type of the
client they receive without importing the controller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.errors import MultiOpFailed, NoNode
from kafkalike.coordination.kafka_zk_client import ControllerMoved, KafkaZkClient, UpdateLeaderAndIsrResult
from kafkalike.coordination.zk_data import TopicPartition
from kafkalike.coordination.zookeeper_client import CheckOp, DeleteOp, SetDataOp


class FencedZkClient:
    """``kzk`` with every controller write fenced twice: ``is_active()`` must be True (a
    resigned controller never writes; else ControllerMoved naming ``broker_id()``), and the
    write is a multi-op with a CheckOp on ``/controller_epoch``'s zkVersion (ControllerMoved
    when another controller was elected since). Reads (any other KafkaZkClient method) pass
    through. ``kzk`` may be None at construction (a broker's controller exists before the
    broker connects to ZooKeeper) and given later with ``attach``; using the client before
    that raises RuntimeError.
    """

    def __init__(self, kzk: KafkaZkClient | None, is_active: Callable[[], bool],
                 broker_id: Callable[[], int]) -> None:
        self._client = kzk
        self._is_active = is_active
        self._broker_id = broker_id

    def attach(self, kzk: KafkaZkClient) -> None:
        """Use ``kzk`` (over a started ZooKeeperClient) from now on."""
        self._client = kzk

    @property
    def _kzk(self) -> KafkaZkClient:
        if self._client is None:
            raise RuntimeError("the controller has no ZooKeeper client yet (KafkaController.attach)")
        return self._client

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never forward private names (copy/pickle probes, _kzk itself)
            raise AttributeError(name)
        return getattr(self._kzk, name)

    def _check(self) -> None:
        if not self._is_active():
            raise ControllerMoved(f"broker {self._broker_id()} is no longer the active controller")

    async def create_partition_state(self, *a: Any) -> int:
        self._check()
        return await self._kzk.create_partition_state(*a)

    async def update_partition_state_as_controller(self, *a: Any) -> int:
        self._check()
        return await self._kzk.update_partition_state_as_controller(*a)

    async def create_partition_states_many(self, *a: Any) -> dict[TopicPartition, int | BaseException]:
        self._check()
        return await self._kzk.create_partition_states_many(*a)

    async def update_leader_and_isr_many(self, *a: Any) -> UpdateLeaderAndIsrResult:
        self._check()
        return await self._kzk.update_leader_and_isr_many(*a)

    async def set_topic_assignment(self, *a: Any) -> int:
        self._check()
        return await self._kzk.set_topic_assignment(*a)

    async def delete_topic_znodes(self, *a: Any) -> None:
        self._check()
        await self._kzk.delete_topic_znodes(*a)

    async def delete_topic_znodes_many(self, *a: Any) -> None:
        self._check()
        await self._kzk.delete_topic_znodes_many(*a)

    async def guarded_delete(self, path: str, epoch_zk_version: int) -> None:
        """Delete ``path`` behind the epoch check; a missing node is fine. Raises ControllerMoved."""
        self._check()
        try:
            await self._kzk.zk.multi([CheckOp(zd.CONTROLLER_EPOCH_PATH, epoch_zk_version), DeleteOp(path)])
        except MultiOpFailed as exc:
            if exc.index == 0:
                raise ControllerMoved(f"/controller_epoch moved on; not deleting {path}") from None
            if not isinstance(exc.error, NoNode):
                raise

    async def guarded_set(self, path: str, data: bytes, epoch_zk_version: int) -> None:
        """Set ``path``'s data behind the epoch check. Raises ControllerMoved, or the set's error."""
        self._check()
        try:
            await self._kzk.zk.multi([CheckOp(zd.CONTROLLER_EPOCH_PATH, epoch_zk_version), SetDataOp(path, data)])
        except MultiOpFailed as exc:
            if exc.index == 0:
                raise ControllerMoved(f"/controller_epoch moved on; not writing {path}") from None
            raise exc.error from None
