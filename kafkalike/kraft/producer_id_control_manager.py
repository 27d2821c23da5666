"""Blocks of producer ids for the brokers (Kafka's ProducerIdControlManager, KIP-730).

AllocateProducerIds from a broker gets the next block of 1,000 ids; the block is handed out by a
ProducerIdsRecord whose ``next_producer_id`` is the first id after it, so a new active controller
that replayed the log never hands out an id twice.
"""

from __future__ import annotations

import attrs

from kafkalike.kraft.cluster_control_manager import ClusterControlManager
from kafkalike.kraft.controller_result import ControllerError, ControllerResult
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode

__all__ = ["ProducerIdControlManager", "ProducerIdsBlock", "BLOCK_SIZE"]

BLOCK_SIZE = 1000
"""Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE."""
_MAX = 2**63 - 1


@attrs.frozen
class ProducerIdsBlock:
    """The ids [``first_producer_id``, + ``size``) given to ``assigned_broker_id``."""

    assigned_broker_id: int
    first_producer_id: int
    size: int


class ProducerIdControlManager:
    """``next_producer_id``: the first id no block has included yet (0 on an empty log)."""

    def __init__(self, cluster: ClusterControlManager) -> None:
        self.cluster = cluster
        self.next_producer_id = 0

    def replay(self, record: mr.ProducerIdsRecord) -> None:
        """Apply a committed ProducerIdsRecord (ids never go back)."""
        self.next_producer_id = max(self.next_producer_id, record.next_producer_id)

    def generate_next_producer_id(self, broker_id: int, broker_epoch: int) -> ControllerResult:
        """The next block for ``broker_id`` (response: ProducerIdsBlock). Raises ControllerError
        STALE_BROKER_EPOCH (not registered or another epoch), UNKNOWN_SERVER_ERROR when the ids
        are exhausted (Kafka: "Exhausted all producerIds as the next block's end producerId is
        has exceeded the int64 type limit")."""
        self.cluster.check_broker_epoch(broker_id, broker_epoch)
        first = self.next_producer_id
        if first > _MAX - BLOCK_SIZE:
            raise ControllerError(ErrorCode.unknown_server_error,
                                  "Exhausted all producerIds as the next block's end producerId has exceeded "
                                  "the int64 type limit")
        record = mr.ProducerIdsRecord(broker_id=broker_id, broker_epoch=broker_epoch,
                                      next_producer_id=first + BLOCK_SIZE)
        return ControllerResult((record,), ProducerIdsBlock(broker_id, first, BLOCK_SIZE))
