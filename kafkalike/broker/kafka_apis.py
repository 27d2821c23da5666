"""KafkaApis: decode each request frame, dispatch it by API key, encode the response
(Kafka's kafka.server.KafkaApis).

Handlers are ``async def handler(header, request, conn) -> response | None``: ``response``
is the kio (or in-project) response entity of the request's version, or a ready chunk list;
None means no response (Produce with acks=0). Components register their handlers with
``register(api_key, handler)`` — the replica manager for Produce/Fetch/ListOffsets, the
group coordinator for the group APIs, and so on — so this module stays the dispatch table
plus the handlers that belong to no component (ApiVersions, Metadata, UpdateMetadata,
DescribeCluster).

Bad requests never crash the broker: an unknown API key, an unsupported version (other than
ApiVersions, which gets the KIP-511 fallback answer) or a malformed body closes that one
connection with one log line, as Kafka does.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from kafkalike.broker.socket_server import CloseConnection, ConnectionContext
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import (
    RequestHeader,
    api_versions_response,
    encode_api_versions_fallback,
    encode_response_chunks,
    parse_request,
)
from kafkalike.protocol.errors import (
    ErrorCode,
    MalformedFrameError,
    UnknownApiKeyError,
    UnsupportedVersionError,
)

if TYPE_CHECKING:
    from kafkalike.broker.kafka_server import KafkaServer

log = structlog.get_logger(__name__)

Handler = Callable[[RequestHeader, Any, ConnectionContext], Awaitable[Any]]


def build(cls: type, **values: Any) -> Any:
    """Make a kio entity of ``cls`` from ``values``, dropping the fields this version lacks.

    Lets one handler serve every version of an API: pass the union of fields, and each
    version's entity takes the ones it has. ``throttle_time`` defaults to 0 ms.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if "throttle_time" in fields and "throttle_time" not in values:
        values["throttle_time"] = datetime.timedelta(0)
    return cls(**{k: v for k, v in values.items() if k in fields})


def entity(parent: type, name: str) -> type:
    """The nested entity class ``name`` from the module of ``parent`` (same API version),
    e.g. ``entity(MetadataResponse_v12, "MetadataResponseTopic")``."""
    return getattr(sys.modules[parent.__module__], name)


def response_class_for(request: Any) -> type:
    """The response entity class matching a kio request entity (same API and version)."""
    module = sys.modules[type(request).__module__.replace(".request", ".response")]
    return next(getattr(module, n) for n in dir(module)
                if n.endswith("Response") and dataclasses.is_dataclass(getattr(module, n)))


class KafkaApis:
    """Request dispatch for one broker. ``handle`` is the SocketServer's RequestHandler."""

    def __init__(self, server: "KafkaServer") -> None:
        self.server = server
        self.handlers: dict[int, Handler] = {
            ApiKey.API_VERSIONS: self.handle_api_versions,
            ApiKey.METADATA: self.handle_metadata,
            ApiKey.UPDATE_METADATA: self.handle_update_metadata,
            ApiKey.DESCRIBE_CLUSTER: self.handle_describe_cluster,
        }

    def register(self, api_key: int, handler: Handler) -> None:
        """Route ``api_key`` to ``handler`` (replaces any earlier one)."""
        self.handlers[api_key] = handler

    async def handle(self, frame: memoryview, conn: ConnectionContext) -> Sequence[Any] | None:
        """Serve one request frame; returns response chunks or None (see module doc).

        Raises CloseConnection for an unknown API key, an unsupported version of anything
        but ApiVersions, a malformed request, or an API no component serves yet.
        """
        try:
            header, request = parse_request(frame)
        except UnsupportedVersionError as exc:
            if exc.api_key == ApiKey.API_VERSIONS:
                return [encode_api_versions_fallback(exc.correlation_id)]
            raise CloseConnection(f"unsupported version: {exc}") from None
        except UnknownApiKeyError as exc:
            raise CloseConnection(f"unknown api key: {exc}") from None
        except MalformedFrameError as exc:
            raise CloseConnection(f"malformed request: {exc}") from None
        handler = self.handlers.get(header.api_key)
        if handler is None:
            raise CloseConnection(f"{header.api_name} is not served by this broker yet")
        response = await handler(header, request, conn)
        if response is None:
            return None
        if isinstance(response, list):
            return response
        return encode_response_chunks(header, response)

    # ------------------------------------------------------------------ ApiVersions
    async def handle_api_versions(self, header: RequestHeader, request: Any,
                                  conn: ConnectionContext) -> Any:
        """ApiVersions v0-v3: the broker's version table (kafkalike.protocol.SUPPORTED_APIS)."""
        return api_versions_response(header.api_version)

    # ------------------------------------------------------------------ Metadata
    async def handle_metadata(self, header: RequestHeader, request: Any,
                              conn: ConnectionContext) -> Any:
        """Metadata v0-v12 from the metadata cache (Kafka protocol guide, Metadata).

        Unknown topics: auto-created when auto.create.topics.enable and the request allows it
        (v4+ allow_auto_topic_creation), answered LEADER_NOT_AVAILABLE meanwhile; otherwise
        UNKNOWN_TOPIC_OR_PARTITION. A partition whose leader is not alive: LEADER_NOT_AVAILABLE.
        Brokers are listed with their endpoint on the listener the request came on.
        """
        server = self.server
        cache = server.metadata_cache
        resp_cls = response_class_for(request)
        topic_cls = entity(resp_cls, "MetadataResponseTopic")
        part_cls = entity(resp_cls, "MetadataResponsePartition")
        broker_cls = entity(resp_cls, "MetadataResponseBroker")

        requested: list[str] | None
        if request.topics is None or (header.api_version == 0 and not request.topics):
            requested = None
        else:
            requested = [t.name for t in request.topics if t.name is not None]
        names = cache.topics() if requested is None else requested
        allow_auto = getattr(request, "allow_auto_topic_creation", True)

        topics = []
        for name in names:
            parts = cache.partitions_of(name)
            if not parts:
                error = ErrorCode.unknown_topic_or_partition
                if allow_auto and server.config["auto.create.topics.enable"] and server.auto_create_topic:
                    error = await server.auto_create_topic(name)
                topics.append(build(topic_cls, error_code=error, name=name, topic_id=None,
                                    is_internal=False, partitions=(),
                                    topic_authorized_operations=-2147483648))
                continue
            partitions = []
            for index, info in sorted(parts.items()):
                alive = info.leader in cache.brokers
                partitions.append(build(
                    part_cls,
                    error_code=ErrorCode.none if alive else ErrorCode.leader_not_available,
                    partition_index=index, leader_id=info.leader if alive else -1,
                    leader_epoch=info.leader_epoch, replica_nodes=info.replicas,
                    isr_nodes=info.isr, offline_replicas=info.offline_replicas))
            topics.append(build(topic_cls, error_code=ErrorCode.none, name=name,
                                topic_id=cache.topic_ids.get(name),
                                is_internal=name.startswith("__"), partitions=tuple(partitions),
                                topic_authorized_operations=-2147483648))
        brokers = []
        for node in cache.brokers.values():
            ep = node.endpoints.get(conn.listener_name)
            if ep is not None:
                brokers.append(build(broker_cls, node_id=node.id, host=ep[0], port=ep[1], rack=node.rack))
        return build(resp_cls, brokers=tuple(brokers), cluster_id=server.cluster_id,
                     controller_id=cache.controller_id if cache.controller_id is not None else -1,
                     topics=tuple(topics), cluster_authorized_operations=-2147483648)

    # ------------------------------------------------------------------ UpdateMetadata
    async def handle_update_metadata(self, header: RequestHeader, request: Any,
                                     conn: ConnectionContext) -> Any:
        """UpdateMetadata v0-v7 from the controller: STALE_CONTROLLER_EPOCH for an older
        controller, STALE_BROKER_EPOCH for a request meant for an earlier registration of
        this broker; otherwise the cache is replaced (Kafka's KafkaApis.handleUpdateMetadataRequest)."""
        from kafkalike.protocol.update_metadata import UpdateMetadataResponse

        server = self.server
        if request.controller_epoch < server.metadata_cache.controller_epoch:
            log.warning("stale_controller_epoch", api="UpdateMetadata",
                        request_epoch=request.controller_epoch,
                        current=server.metadata_cache.controller_epoch)
            return UpdateMetadataResponse(error_code=ErrorCode.stale_controller_epoch.value)
        if header.api_version >= 5 and 0 <= request.broker_epoch < server.broker_epoch:
            log.warning("stale_broker_epoch", api="UpdateMetadata",
                        request_epoch=request.broker_epoch, current=server.broker_epoch)
            return UpdateMetadataResponse(error_code=ErrorCode.stale_broker_epoch.value)
        deleted = server.metadata_cache.update(request, header.api_version)
        await server.on_metadata_update(deleted)
        return UpdateMetadataResponse(error_code=0)

    # ------------------------------------------------------------------ DescribeCluster
    async def handle_describe_cluster(self, header: RequestHeader, request: Any,
                                      conn: ConnectionContext) -> Any:
        """DescribeCluster v0-v1 (KIP-700): brokers on this listener, cluster id, controller."""
        cache = self.server.metadata_cache
        resp_cls = response_class_for(request)
        broker_cls = entity(resp_cls, "DescribeClusterBroker")
        brokers = []
        for node in cache.brokers.values():
            ep = node.endpoints.get(conn.listener_name)
            if ep is not None:
                brokers.append(build(broker_cls, broker_id=node.id, host=ep[0], port=ep[1], rack=node.rack))
        return build(resp_cls, error_code=ErrorCode.none, error_message=None, endpoint_type=1,
                     cluster_id=self.server.cluster_id or "",
                     controller_id=cache.controller_id if cache.controller_id is not None else -1,
                     brokers=tuple(brokers), cluster_authorized_operations=-2147483648)
