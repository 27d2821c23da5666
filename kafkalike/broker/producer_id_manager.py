"""ProducerIdManager and InitProducerId for idempotent producers (Kafka's ZkProducerIdManager
and the idempotent branch of TransactionCoordinator.handleInitProducerId).

Producer ids are handed out from blocks of 1000 claimed in ZooKeeper with a conditional write
on ``/latest_producer_id_block`` (``{"version":1,"broker":id,"block_start":"n","block_end":"m"}``),
so two brokers never hand out the same id. An idempotent producer (no transactional id) gets a
new producer id with epoch 0 on every InitProducerId, as Kafka answers it.

An InitProducerId carrying a transactional id goes to the transaction coordinator
(kafkalike.coordinator.transaction.transaction_apis wraps this handler and calls it only for
requests without one); ``generate_producer_id`` is also the coordinator's source of producer
ids for new transactional ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
import trio

from kafkalike.coordination.kafka_zk_client import KafkaZkClient
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.entities import build, response_class_for

if TYPE_CHECKING:
    from kafkalike.broker.socket_server import ConnectionContext
    from kafkalike.protocol.codec import RequestHeader

log = structlog.get_logger(__name__)


class ProducerIdManager:
    """Hands out producer ids (int64) from ZooKeeper-claimed blocks of 1000 (Kafka's
    ZkProducerIdManager(brokerId, zkClient)): ``broker_id`` is written into the block it
    claims, ``kafka_zk`` is the broker's KafkaZkClient."""

    def __init__(self, broker_id: int, kafka_zk: KafkaZkClient) -> None:
        self.broker_id = broker_id
        self.kafka_zk = kafka_zk
        self._next = 0
        self._end = -1  # inclusive end of the current block
        self._lock = trio.Lock()

    async def generate_producer_id(self) -> int:
        """The next unused producer id; claims a new block when the current one is spent.
        Raises the coordination layer's errors if ZooKeeper can't be written."""
        async with self._lock:
            if self._next > self._end:
                block = await self.kafka_zk.claim_producer_id_block(self.broker_id)
                self._next, self._end = block.block_start, block.block_end
                log.info("producer_id_block_claimed", start=block.block_start, end=block.block_end)
            pid = self._next
            self._next += 1
            return pid

    async def handle_init_producer_id(self, header: "RequestHeader", request: Any,
                                      conn: "ConnectionContext") -> Any:
        """InitProducerId v0-v4 (KIP-98, KIP-360): a new producer id with epoch 0 for an
        idempotent producer; INVALID_REQUEST for a transactional id (those are the transaction
        coordinator's, which wraps this handler);
        COORDINATOR_NOT_AVAILABLE if no block can be claimed from ZooKeeper."""

        resp_cls = response_class_for(request)
        if request.transactional_id is not None:
            return build(resp_cls, error_code=ErrorCode.invalid_request, producer_id=-1, producer_epoch=-1)
        try:
            pid = await self.generate_producer_id()
        except Exception as exc:
            log.warning("producer_id_unavailable", error=str(exc))
            return build(resp_cls, error_code=ErrorCode.coordinator_not_available, producer_id=-1,
                         producer_epoch=-1)
        return build(resp_cls, error_code=ErrorCode.none, producer_id=pid, producer_epoch=0)
