"""The transaction APIs' request handlers: kio request entity -> TransactionCoordinator call ->
kio response entity of the request's version (the transaction part of Kafka 3.9's KafkaApis:
handleInitProducerIdRequest, handleAddPartitionToTxnRequest, handleAddOffsetsToTxnRequest,
handleEndTxnRequest, handleDescribeTransactionsRequest, handleListTransactionsRequest, and
handleFindCoordinatorRequest for key type 1).

Versions (kafkalike.protocol.api_keys.SUPPORTED_APIS, as a Kafka 3.9 ZooKeeper-mode broker):
InitProducerId v0-v4, AddPartitionsToTxn v0-v4, AddOffsetsToTxn v0-v3, EndTxn v0-v3,
DescribeTransactions v0, ListTransactions v0-v1. Version rules applied here (Kafka's): an
InitProducerId without a transactional id goes to the idempotent handler it wraps;
PRODUCER_FENCED is answered INVALID_PRODUCER_EPOCH to InitProducerId before v4 and to
AddPartitionsToTxn / AddOffsetsToTxn / EndTxn before v2 (older clients do not know it);
AddPartitionsToTxn with partitions the broker's metadata does not know answers
UNKNOWN_TOPIC_OR_PARTITION for those and OPERATION_NOT_ATTEMPTED for the rest without
reaching the coordinator. FindCoordinator with key type 1 is answered here, every other key
type by the handler it wraps (the group coordinator's). AddPartitionsToTxn v4 (KIP-890 part 1,
broker-to-broker: Kafka's producers stop at v3) carries several transactions; each with
verify_only is answered from handle_verify_partitions_in_transaction (NONE / INVALID_TXN_STATE
per partition, nothing written), each without it is added as v3 would be.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import response_class
from kafkalike.protocol.entities import build, duration_ms, entity
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage import TopicPartition

if TYPE_CHECKING:
    from kafkalike.coordinator.transaction.transaction_coordinator import TransactionCoordinator

__all__ = ["TransactionApis", "register", "CONSUMER_OFFSETS_TOPIC"]

Handler = Callable[[Any, Any, Any], Awaitable[Any]]
CONSUMER_OFFSETS_TOPIC = "__consumer_offsets"
_TRANSACTION_KEY_TYPE = 1


def _fenced_as(error: ErrorCode, version: int, first_version_with_fenced: int) -> ErrorCode:
    if error == ErrorCode.producer_fenced and version < first_version_with_fenced:
        return ErrorCode.invalid_producer_epoch
    return error


def _ms_datetime(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)


class TransactionApis:
    """Handlers bound to one TransactionCoordinator. ``idempotent_init_producer_id``: the
    InitProducerId handler for producers without a transactional id; ``find_group_coordinator``:
    the FindCoordinator handler for other key types; ``offsets_partition_for(group_id)``: the
    group's __consumer_offsets partition (AddOffsetsToTxn)."""

    def __init__(self, coordinator: "TransactionCoordinator", idempotent_init_producer_id: Handler,
                 find_group_coordinator: Handler | None, offsets_partition_for: Callable[[str], int]) -> None:
        self.coordinator = coordinator
        self.idempotent_init_producer_id = idempotent_init_producer_id
        self.find_group_coordinator = find_group_coordinator
        self.offsets_partition_for = offsets_partition_for

    async def find_coordinator(self, header: Any, request: Any, conn: Any) -> Any:
        if int(getattr(request, "key_type", 0)) != _TRANSACTION_KEY_TYPE:
            if self.find_group_coordinator is None:
                cls = response_class(header.api_key, header.api_version)
                return build(cls, error_code=ErrorCode.coordinator_not_available, error_message=None,
                             node_id=-1, host="", port=-1)
            return await self.find_group_coordinator(header, request, conn)
        cls = response_class(header.api_key, header.api_version)
        result = await self.coordinator.find_coordinator(request.key, conn.listener_name)
        return build(cls, error_code=result.error,
                     error_message=result.message if result.error != ErrorCode.none else None,
                     node_id=result.node_id, host=result.host, port=result.port)

    async def init_producer_id(self, header: Any, request: Any, conn: Any) -> Any:
        if request.transactional_id is None:
            return await self.idempotent_init_producer_id(header, request, conn)
        v = header.api_version
        cls = response_class(header.api_key, v)
        expected = None
        pid = int(getattr(request, "producer_id", -1))
        if v >= 3 and pid != -1:
            expected = (pid, int(getattr(request, "producer_epoch", -1)))
        result = await self.coordinator.handle_init_producer_id(
            request.transactional_id, duration_ms(request.transaction_timeout), expected)
        return build(cls, error_code=_fenced_as(result.error, v, 4), producer_id=result.producer_id,
                     producer_epoch=result.producer_epoch)

    async def add_partitions_to_txn(self, header: Any, request: Any, conn: Any) -> Any:
        v = header.api_version
        cls = response_class(header.api_key, v)
        topic_cls = entity(cls, "AddPartitionsToTxnTopicResult")
        part_cls = entity(cls, "AddPartitionsToTxnPartitionResult")
        if v >= 4:
            return await self._add_partitions_to_txn_v4(request, cls, topic_cls, part_cls)
        wanted = [TopicPartition(t.name, int(p)) for t in request.v3_and_below_topics for p in t.partitions]
        unknown = {tp for tp in wanted if not self.coordinator.partition_exists(tp)}
        if unknown:
            errors = {tp: ErrorCode.unknown_topic_or_partition if tp in unknown else ErrorCode.operation_not_attempted
                      for tp in wanted}
        else:
            error = await self.coordinator.handle_add_partitions_to_transaction(
                request.v3_and_below_transactional_id, int(request.v3_and_below_producer_id),
                int(request.v3_and_below_producer_epoch), wanted)
            error = _fenced_as(error, v, 2)
            errors = {tp: error for tp in wanted}
        by_topic: dict[str, list[Any]] = {}
        for tp, e in errors.items():
            by_topic.setdefault(tp.topic, []).append(build(part_cls, partition_index=tp.partition,
                                                           partition_error_code=e))
        return build(cls, results_by_topic_v3_and_below=tuple(
            build(topic_cls, name=t, results_by_partition=tuple(ps)) for t, ps in by_topic.items()))

    async def _add_partitions_to_txn_v4(self, request: Any, cls: Any, topic_cls: Any, part_cls: Any) -> Any:
        """AddPartitionsToTxn v4 (KIP-890): one result per transaction of the request."""
        result_cls = entity(cls, "AddPartitionsToTxnResult")
        results = []
        for txn in request.transactions:
            wanted = [TopicPartition(t.name, int(p)) for t in txn.topics for p in t.partitions]
            unknown = {tp for tp in wanted if not self.coordinator.partition_exists(tp)}
            errors: dict[TopicPartition, ErrorCode]
            if unknown:
                errors = {tp: ErrorCode.unknown_topic_or_partition if tp in unknown
                          else ErrorCode.operation_not_attempted for tp in wanted}
            elif txn.verify_only:
                errors = self.coordinator.handle_verify_partitions_in_transaction(
                    txn.transactional_id, int(txn.producer_id), int(txn.producer_epoch), wanted)
            else:
                error = await self.coordinator.handle_add_partitions_to_transaction(
                    txn.transactional_id, int(txn.producer_id), int(txn.producer_epoch), wanted)
                errors = {tp: error for tp in wanted}
            by_topic: dict[str, list[Any]] = {}
            for tp, e in errors.items():
                by_topic.setdefault(tp.topic, []).append(build(part_cls, partition_index=tp.partition,
                                                               partition_error_code=e))
            results.append(build(result_cls, transactional_id=txn.transactional_id, topic_results=tuple(
                build(topic_cls, name=t, results_by_partition=tuple(ps)) for t, ps in by_topic.items())))
        return build(cls, error_code=ErrorCode.none, results_by_transaction=tuple(results))

    async def add_offsets_to_txn(self, header: Any, request: Any, conn: Any) -> Any:
        v = header.api_version
        cls = response_class(header.api_key, v)
        tp = TopicPartition(CONSUMER_OFFSETS_TOPIC, self.offsets_partition_for(request.group_id))
        error = await self.coordinator.handle_add_partitions_to_transaction(
            request.transactional_id, int(request.producer_id), int(request.producer_epoch), [tp])
        return build(cls, error_code=_fenced_as(error, v, 2))

    async def end_txn(self, header: Any, request: Any, conn: Any) -> Any:
        v = header.api_version
        cls = response_class(header.api_key, v)
        error = await self.coordinator.handle_end_transaction(
            request.transactional_id, int(request.producer_id), int(request.producer_epoch), bool(request.committed))
        return build(cls, error_code=_fenced_as(error, v, 2))

    async def describe_transactions(self, header: Any, request: Any, conn: Any) -> Any:
        cls = response_class(header.api_key, header.api_version)
        state_cls = entity(cls, "TransactionState")
        topic_cls = entity(cls, "TopicData")
        out = []
        for txn_id in request.transactional_ids:
            d = self.coordinator.handle_describe_transactions(txn_id)
            by_topic: dict[str, list[int]] = {}
            for tp in d.partitions:
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            out.append(build(state_cls, error_code=d.error, transactional_id=txn_id, transaction_state=d.state,
                             transaction_timeout=datetime.timedelta(milliseconds=d.timeout_ms),
                             transaction_start_time=_ms_datetime(d.start_timestamp_ms),
                             producer_id=d.producer_id, producer_epoch=d.producer_epoch,
                             topics=tuple(build(topic_cls, topic=t, partitions=tuple(ps))
                                          for t, ps in by_topic.items())))
        return build(cls, transaction_states=tuple(out))

    async def list_transactions(self, header: Any, request: Any, conn: Any) -> Any:
        cls = response_class(header.api_key, header.api_version)
        state_cls = entity(cls, "TransactionState")
        duration = int(getattr(request, "duration_filter", -1))
        error, unknown, listed = self.coordinator.handle_list_transactions(
            tuple(request.state_filters), tuple(int(p) for p in request.producer_id_filters), duration)
        return build(cls, error_code=error, unknown_state_filters=unknown, transaction_states=tuple(
            build(state_cls, transactional_id=t.transactional_id, producer_id=t.producer_id,
                  transaction_state=t.state) for t in listed))


def _follow(handler: Handler, after: Callable[[], None]) -> Handler:
    async def wrapped(header: Any, request: Any, conn: Any) -> Any:
        response = await handler(header, request, conn)
        after()
        return response
    # keep the markers other followers put on the handler they wrapped (GroupCoordinator
    # checks its own before wrapping again)
    for name, value in vars(handler).items() if hasattr(handler, "__dict__") else ():
        if name.endswith("_follows"):
            setattr(wrapped, name, value)
    wrapped._transaction_coordinator_follows = True  # type: ignore[attr-defined]  # a marker attribute on a function object
    return wrapped


def register(apis: Any, coordinator: "TransactionCoordinator", idempotent_init_producer_id: Handler,
             offsets_partition_for: Callable[[str], int]) -> TransactionApis:
    """Route the transaction APIs of ``apis`` (KafkaApis) to ``coordinator``: InitProducerId
    (wrapping ``idempotent_init_producer_id``), FindCoordinator (wrapping the handler
    registered now), AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, DescribeTransactions,
    ListTransactions; and make LeaderAndIsr / StopReplica call
    ``coordinator.on_leadership_change`` after they are handled."""
    handlers = TransactionApis(coordinator, idempotent_init_producer_id,
                               apis.handlers.get(ApiKey.FIND_COORDINATOR), offsets_partition_for)
    apis.register(ApiKey.FIND_COORDINATOR, handlers.find_coordinator)
    apis.register(ApiKey.INIT_PRODUCER_ID, handlers.init_producer_id)
    apis.register(ApiKey.ADD_PARTITIONS_TO_TXN, handlers.add_partitions_to_txn)
    apis.register(ApiKey.ADD_OFFSETS_TO_TXN, handlers.add_offsets_to_txn)
    apis.register(ApiKey.END_TXN, handlers.end_txn)
    apis.register(ApiKey.DESCRIBE_TRANSACTIONS, handlers.describe_transactions)
    apis.register(ApiKey.LIST_TRANSACTIONS, handlers.list_transactions)
    for key in (ApiKey.LEADER_AND_ISR, ApiKey.STOP_REPLICA):
        handler = apis.handlers.get(key)
        if handler is not None and not getattr(handler, "_transaction_coordinator_follows", False):
            apis.register(key, _follow(handler, coordinator.on_leadership_change))
    return handlers
