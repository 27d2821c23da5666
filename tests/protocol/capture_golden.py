"""Record golden request frames from real Kafka clients into tests/data/golden/ (run by hand).

    .venv/bin/python tests/protocol/capture_golden.py [OUT_DIR] [--pcap FILE] [--table tshark]

A tiny plain-socket broker stand-in on 127.0.0.1 (a free port) answers with kafkalike's own
encoder: ApiVersions (our table, or the v0 fallback), Metadata (one broker: itself; one
topic "golden" with one partition), InitProducerId, Produce (offset 0), ListOffsets,
OffsetForLeaderEpoch, FindCoordinator, and Fetch (one stored batch served at offset 0 as a
FileRecords chunk sent with os.sendfile). Every request frame it receives is saved, size
prefix included, as ``<label>-<ApiName>-v<N>.bin`` (the first of each api/version per run).

Producers, each sending one record (key b"golden-key", value b"golden-value-" * 40,
header ("h", b"v"), timestamp 1700000000000 ms): kafka-python 3.0 (none, gzip),
confluent-kafka 2.16 / librdkafka (none, gzip, snappy, lz4, zstd), aiokafka 0.14, kcat 1.7 /
librdkafka 2.0 (if installed), Kafka 3.9's ConsoleProducer (all five codecs; when the jars
are in reference/lib or $KAFKALIKE_KAFKA_LIB). Consumers, each reading that record back from
a batch that kafkalike built with the codec in the label: kafka-python (gzip), librdkafka
(all five), aiokafka (lz4), kcat (snappy), Kafka 3.9's ConsoleConsumer (all five); and group
consumers (kafka-python, librdkafka, aiokafka, Java) that find the coordinator, join, sync,
fetch, commit and leave against a one-member group coordinator; and admin clients
(confluent-kafka, kafka-python, Kafka 3.9's command-line tools) creating, altering,
describing and deleting topics, configs and groups. A run fails unless the client delivered / received the
record. tests/protocol/test_protocol_golden.py decodes the saved files. With ``--pcap`` the
traffic is also recorded with dumpcap and checked with Wireshark's Kafka dissector (tshark):
no packet may be malformed. Stops its listener
and every client it started before exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from kio.index import load_payload_module
from kio.static.constants import EntityType

from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import (SUPPORTED_APIS, TSHARK_COMPATIBLE_APIS, ApiKey,
                                         api_name)
from kafkalike.protocol.errors import ErrorCode, ProtocolError, UnsupportedApiError
from kafkalike.protocol.fetch import FileRecords
from kafkalike.protocol.frame import FrameReader
from kafkalike.protocol.records import build_records_batch

TOPIC = "golden"
KEY = b"golden-key"
VALUE = b"golden-value-" * 40  # compressible: clients skip compression that does not pay
HEADERS = [("h", b"v")]
TIMESTAMP_MS = 1700000000000
TOPIC_ID = uuid.UUID("6f1d9a2c-0b5e-4c7a-9d3e-2a4b6c8d0e1f")


CLIENT_IDS = {"kafka-python": "golden-kafka-python", "librdkafka": "golden-librdkafka",
              "aiokafka": "golden-aiokafka", "kcat": "golden-kcat", "java": "golden-java"}


def _client_id_of(body: bytes) -> str | None:
    """The client id of a request frame body (header v1/v2), or None."""
    if len(body) < 10:
        return None
    n = int.from_bytes(body[8:10], "big", signed=True)
    if n < 0 or len(body) < 10 + n:
        return None
    return body[10:10 + n].decode("utf-8", "replace")


def _metadata_response(version: int, port: int) -> object:
    mod = load_payload_module(ApiKey.METADATA, version, EntityType.response)
    broker_kwargs = {"node_id": 0, "host": "127.0.0.1", "port": port}
    if version >= 1:
        broker_kwargs["rack"] = None
    part_kwargs = {"error_code": ErrorCode.none, "partition_index": 0, "leader_id": 0,
                   "replica_nodes": (0,), "isr_nodes": (0,)}
    if version >= 5:
        part_kwargs["offline_replicas"] = ()
    if version >= 7:
        part_kwargs["leader_epoch"] = 0
    topic_kwargs = {"error_code": ErrorCode.none, "name": TOPIC,
                    "partitions": (mod.MetadataResponsePartition(**part_kwargs),)}
    if version >= 1:
        topic_kwargs["is_internal"] = False
    if version >= 10:
        topic_kwargs["topic_id"] = TOPIC_ID
    if version >= 8:
        topic_kwargs["topic_authorized_operations"] = -2147483648
    kwargs = {"brokers": (mod.MetadataResponseBroker(**broker_kwargs),),
              "topics": (mod.MetadataResponseTopic(**topic_kwargs),)}
    if version >= 1:
        kwargs["controller_id"] = 0
    if version >= 2:
        kwargs["cluster_id"] = "golden-cluster-000000"
    if version >= 3:
        kwargs["throttle_time"] = datetime.timedelta(0)
    if 8 <= version <= 10:
        kwargs["cluster_authorized_operations"] = -2147483648
    return mod.MetadataResponse(**kwargs)


def _build(cls: type, **kwargs: object) -> object:
    """cls(**kwargs) keeping only the fields this version of the entity has."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in kwargs.items() if k in names})


def _produce_response(version: int, request: object) -> object:
    mod = load_payload_module(ApiKey.PRODUCE, version, EntityType.response)
    topics = []
    for topic in request.topic_data:  # type: ignore[attr-defined]
        parts = tuple(_build(mod.PartitionProduceResponse, index=p.index,
                             error_code=ErrorCode.none, base_offset=0, record_errors=())
                      for p in topic.partition_data)
        topics.append(mod.TopicProduceResponse(name=topic.name, partition_responses=parts))
    return mod.ProduceResponse(responses=tuple(topics), throttle_time=datetime.timedelta(0))


def _init_producer_id_response(version: int) -> object:
    mod = load_payload_module(ApiKey.INIT_PRODUCER_ID, version, EntityType.response)
    return mod.InitProducerIdResponse(throttle_time=datetime.timedelta(0),
                                      error_code=ErrorCode.none, producer_id=1000,
                                      producer_epoch=0)


def _list_offsets_response(version: int, request: object) -> object:
    mod = load_payload_module(ApiKey.LIST_OFFSETS, version, EntityType.response)
    topics = []
    for topic in request.topics:  # type: ignore[attr-defined]
        parts = tuple(_build(mod.ListOffsetsPartitionResponse, partition_index=p.partition_index,
                             error_code=ErrorCode.none, timestamp=-1,
                             offset=0 if p.timestamp == -2 else 1, leader_epoch=0)
                      for p in topic.partitions)
        topics.append(mod.ListOffsetsTopicResponse(name=topic.name, partitions=parts))
    return _build(mod.ListOffsetsResponse, throttle_time=datetime.timedelta(0),
                  topics=tuple(topics))


def _offset_for_leader_epoch_response(version: int, request: object) -> object:
    mod = load_payload_module(ApiKey.OFFSET_FOR_LEADER_EPOCH, version, EntityType.response)
    topics = []
    for topic in request.topics:  # type: ignore[attr-defined]
        parts = tuple(mod.EpochEndOffset(error_code=ErrorCode.none, partition=p.partition,
                                         leader_epoch=0, end_offset=1)
                      for p in topic.partitions)
        topics.append(mod.OffsetForLeaderTopicResult(topic=topic.topic, partitions=parts))
    return _build(mod.OffsetForLeaderEpochResponse, throttle_time=datetime.timedelta(0),
                  topics=tuple(topics))


# A one-member group coordinator, enough for a consumer to join, get partition 0, commit
# and leave: every JoinGroup makes its sender the leader of generation 1, SyncGroup hands
# the leader's own assignment back, commits are acknowledged, nothing was committed before.
_NO_ERROR = {"throttle_time": datetime.timedelta(0), "error_code": ErrorCode.none}


def _join_group(mod: Any, request: Any) -> Any:
    member_id = request.member_id or f"golden-member-{uuid.uuid4()}"
    protocol = request.protocols[0]
    member = _build(mod.JoinGroupResponseMember, member_id=member_id,
                    group_instance_id=getattr(request, "group_instance_id", None),
                    metadata=protocol.metadata)
    return _build(mod.JoinGroupResponse, **_NO_ERROR, generation_id=1,
                  protocol_type=request.protocol_type, protocol_name=protocol.name,
                  leader=member_id, skip_assignment=False, member_id=member_id,
                  members=(member,))


def _sync_group(mod: Any, request: Any) -> Any:
    mine = [a.assignment for a in request.assignments if a.member_id == request.member_id]
    return _build(mod.SyncGroupResponse, **_NO_ERROR,
                  protocol_type=getattr(request, "protocol_type", None),
                  protocol_name=getattr(request, "protocol_name", None),
                  assignment=mine[0] if mine else b"")


def _offset_fetch(mod: Any, request: Any) -> Any:
    topics = tuple(
        mod.OffsetFetchResponseTopic(name=t.name, partitions=tuple(
            _build(mod.OffsetFetchResponsePartition, partition_index=p, committed_offset=-1,
                   committed_leader_epoch=-1, metadata="", error_code=ErrorCode.none)
            for p in t.partition_indexes))
        for t in (request.topics or ()))
    return _build(mod.OffsetFetchResponse, **_NO_ERROR, topics=topics)


def _offset_commit(mod: Any, request: Any) -> Any:
    topics = tuple(
        mod.OffsetCommitResponseTopic(name=t.name, partitions=tuple(
            mod.OffsetCommitResponsePartition(partition_index=p.partition_index,
                                              error_code=ErrorCode.none)
            for p in t.partitions))
        for t in request.topics)
    return _build(mod.OffsetCommitResponse, throttle_time=datetime.timedelta(0), topics=topics)


def _leave_group(mod: Any, request: Any) -> Any:
    members = tuple(_build(mod.MemberResponse, member_id=m.member_id,
                           group_instance_id=m.group_instance_id, error_code=ErrorCode.none)
                    for m in getattr(request, "members", ()))
    return _build(mod.LeaveGroupResponse, **_NO_ERROR, members=members)


_GROUP_ANSWERS = {
    ApiKey.JOIN_GROUP: _join_group,
    ApiKey.SYNC_GROUP: _sync_group,
    ApiKey.HEARTBEAT: lambda mod, request: _build(mod.HeartbeatResponse, **_NO_ERROR),
    ApiKey.OFFSET_FETCH: _offset_fetch,
    ApiKey.OFFSET_COMMIT: _offset_commit,
    ApiKey.LEAVE_GROUP: _leave_group,
}


# Admin answers: every operation succeeds; describes return one entry per thing asked about.
def _create_topics(mod: Any, request: Any) -> Any:
    results = tuple(_build(mod.CreatableTopicResult, name=t.name, topic_id=TOPIC_ID,
                           error_code=ErrorCode.none, error_message=None,
                           topic_config_error_code=ErrorCode.none,
                           num_partitions=max(t.num_partitions, 1),
                           replication_factor=max(t.replication_factor, 1), configs=())
                    for t in request.topics)
    return _build(mod.CreateTopicsResponse, throttle_time=datetime.timedelta(0),
                  topics=results)


def _delete_topics(mod: Any, request: Any) -> Any:
    names = list(getattr(request, "topic_names", None) or
                 [t.name for t in getattr(request, "topics", ())])
    results = tuple(_build(mod.DeletableTopicResult, name=n, topic_id=None,
                           error_code=ErrorCode.none, error_message=None) for n in names)
    return _build(mod.DeleteTopicsResponse, throttle_time=datetime.timedelta(0),
                  responses=results)


def _create_partitions(mod: Any, request: Any) -> Any:
    results = tuple(_build(mod.CreatePartitionsTopicResult, name=t.name,
                           error_code=ErrorCode.none, error_message=None)
                    for t in request.topics)
    return _build(mod.CreatePartitionsResponse, throttle_time=datetime.timedelta(0),
                  results=results)


def _describe_configs(mod: Any, request: Any) -> Any:
    results = []
    for r in request.resources:
        config = _build(mod.DescribeConfigsResourceResult, name="cleanup.policy", value="delete",
                        read_only=False, is_default=True, config_source=5, is_sensitive=False,
                        synonyms=(), config_type=2, documentation=None)
        results.append(_build(mod.DescribeConfigsResult, error_code=ErrorCode.none,
                              error_message=None, resource_type=r.resource_type,
                              resource_name=r.resource_name, configs=(config,)))
    return _build(mod.DescribeConfigsResponse, throttle_time=datetime.timedelta(0),
                  results=tuple(results))


def _alter_configs(mod: Any, request: Any) -> Any:
    responses = tuple(_build(mod.AlterConfigsResourceResponse, error_code=ErrorCode.none,
                             error_message=None, resource_type=r.resource_type,
                             resource_name=r.resource_name) for r in request.resources)
    response_cls = getattr(mod, "AlterConfigsResponse", None) or \
        mod.IncrementalAlterConfigsResponse
    return _build(response_cls, throttle_time=datetime.timedelta(0), responses=responses)


def _list_groups(mod: Any, request: Any) -> Any:
    group = _build(mod.ListedGroup, group_id="golden-group", protocol_type="consumer",
                   group_state="Empty", group_type="classic")
    return _build(mod.ListGroupsResponse, **_NO_ERROR, groups=(group,))


def _describe_groups(mod: Any, request: Any) -> Any:
    groups = tuple(_build(mod.DescribedGroup, error_code=ErrorCode.none, group_id=g,
                          group_state="Empty", protocol_type="consumer", protocol_data="",
                          members=(), authorized_operations=-2147483648)
                   for g in request.groups)
    return _build(mod.DescribeGroupsResponse, throttle_time=datetime.timedelta(0),
                  groups=groups)


def _delete_groups(mod: Any, request: Any) -> Any:
    results = tuple(mod.DeletableGroupResult(group_id=g, error_code=ErrorCode.none)
                    for g in request.groups_names)
    return _build(mod.DeleteGroupsResponse, throttle_time=datetime.timedelta(0),
                  results=results)


def _describe_cluster_factory(port_of: Any) -> Any:
    def answer(mod: Any, request: Any) -> Any:
        broker = _build(mod.DescribeClusterBroker, broker_id=0, host="127.0.0.1",
                        port=port_of(), rack=None)
        return _build(mod.DescribeClusterResponse, **_NO_ERROR, error_message=None,
                      endpoint_type=1, cluster_id="golden-cluster-000000", controller_id=0,
                      brokers=(broker,), cluster_authorized_operations=-2147483648)
    return answer


_ADMIN_ANSWERS = {
    ApiKey.CREATE_TOPICS: _create_topics,
    ApiKey.DELETE_TOPICS: _delete_topics,
    ApiKey.CREATE_PARTITIONS: _create_partitions,
    ApiKey.DESCRIBE_CONFIGS: _describe_configs,
    ApiKey.ALTER_CONFIGS: _alter_configs,
    ApiKey.INCREMENTAL_ALTER_CONFIGS: _alter_configs,
    ApiKey.LIST_GROUPS: _list_groups,
    ApiKey.DESCRIBE_GROUPS: _describe_groups,
    ApiKey.DELETE_GROUPS: _delete_groups,
}


class GoldenBroker:
    """A listener that answers the first requests of a producer and saves every frame."""

    def __init__(self, out_dir: Path, supported: dict | None = None) -> None:
        self.out_dir = out_dir
        self.supported = SUPPORTED_APIS if supported is None else supported
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.label = "none"
        self.saved: set[str] = set()
        self.produced = threading.Event()
        self.batch_file = tempfile.TemporaryFile()
        self.batch_size = 0
        self.serve_codec(0)
        self._stop = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.live_connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def start_run(self, label: str) -> None:
        """Switch the file label, once the previous client's connections are gone (10 s)."""
        deadline = time.monotonic() + 10
        while self.live_connections and time.monotonic() < deadline:
            time.sleep(0.05)
        for conn in self._conns:  # stragglers: cut them so they cannot speak for the next run
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.label = label
        self.produced.clear()

    def serve_codec(self, compression: int) -> None:
        """Store the golden record as a batch with this codec (what Fetch will serve)."""
        batch = build_records_batch([(KEY, VALUE, tuple(HEADERS), TIMESTAMP_MS)],
                                    compression=compression, partition_leader_epoch=0)
        self.batch_file.seek(0)
        self.batch_file.truncate()
        self.batch_file.write(batch)
        self.batch_file.flush()
        self.batch_size = len(batch)

    def close(self) -> None:
        self._stop = True
        self.batch_file.close()
        self.sock.close()
        for conn in self._conns:
            try:
                conn.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _save(self, header_key: int, version: int, body: bytes) -> None:
        client_id = _client_id_of(body)
        expected = next((cid for prefix, cid in CLIENT_IDS.items()
                         if self.label.startswith(prefix + "-") or self.label == prefix), None)
        if client_id is not None and expected is not None and client_id != expected:
            return  # a previous client's straggler, not this run's
        name = f"{self.label}-{api_name(header_key)}-v{version}.bin"
        if name not in self.saved:
            self.saved.add(name)
            (self.out_dir / name).write_bytes(len(body).to_bytes(4, "big") + body)

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self.live_connections += 1
        try:
            self._serve_connection(conn)
        finally:
            with self._lock:
                self.live_connections -= 1

    def _serve_connection(self, conn: socket.socket) -> None:
        reader = FrameReader()
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                try:
                    reader.feed(data)
                except ProtocolError:
                    return
                while (frame := reader.next_frame()) is not None:
                    body = bytes(frame)
                    key = int.from_bytes(body[0:2], "big", signed=True)
                    version = int.from_bytes(body[2:4], "big", signed=True)
                    self._save(key, version, body)
                    try:
                        answer = self._answer(body)
                    except UnsupportedApiError as exc:
                        if exc.api_key == ApiKey.API_VERSIONS:
                            answer = [codec.encode_api_versions_fallback(exc.correlation_id,
                                                                      self.supported)]
                        else:
                            return
                    if answer is None:
                        return
                    try:
                        for chunk in answer:
                            if isinstance(chunk, FileRecords):
                                sent = 0
                                while sent < chunk.size:
                                    sent += os.sendfile(conn.fileno(), chunk.file.fileno(),
                                                        chunk.position + sent, chunk.size - sent)
                            else:
                                conn.sendall(chunk)
                    except OSError:  # the client went away
                        return

    def _answer(self, body: bytes) -> list | None:
        header, request = codec.parse_request(body, self.supported)
        if header.api_key == ApiKey.API_VERSIONS:
            response = codec.api_versions_response(header.api_version, self.supported)
        elif header.api_key == ApiKey.METADATA:
            response = _metadata_response(header.api_version, self.port)
        elif header.api_key == ApiKey.INIT_PRODUCER_ID:
            response = _init_producer_id_response(header.api_version)
        elif header.api_key == ApiKey.PRODUCE:
            response = _produce_response(header.api_version, request)
            self.produced.set()
        elif header.api_key == ApiKey.LIST_OFFSETS:
            response = _list_offsets_response(header.api_version, request)
        elif header.api_key == ApiKey.OFFSET_FOR_LEADER_EPOCH:
            response = _offset_for_leader_epoch_response(header.api_version, request)
        elif header.api_key == ApiKey.FIND_COORDINATOR:
            mod = load_payload_module(ApiKey.FIND_COORDINATOR, header.api_version,
                                      EntityType.response)
            response = _build(mod.FindCoordinatorResponse, throttle_time=datetime.timedelta(0),
                              error_code=ErrorCode.none, error_message=None, node_id=0,
                              host="127.0.0.1", port=self.port)
        elif header.api_key == ApiKey.FETCH:
            response = self._fetch_response(header.api_version, request)
        elif header.api_key in _GROUP_ANSWERS or header.api_key in _ADMIN_ANSWERS:
            mod = load_payload_module(header.api_key, header.api_version, EntityType.response)
            answer = _GROUP_ANSWERS.get(header.api_key) or _ADMIN_ANSWERS[header.api_key]
            response = answer(mod, request)
        elif header.api_key == ApiKey.DESCRIBE_CLUSTER:
            mod = load_payload_module(header.api_key, header.api_version, EntityType.response)
            response = _describe_cluster_factory(lambda: self.port)(mod, request)
        else:
            return None
        return codec.encode_response_chunks(header, response)

    def _fetch_response(self, version: int, request: object) -> object:
        """Serve the stored batch (a FileRecords slice, sent with os.sendfile) at offset 0."""
        mod = load_payload_module(ApiKey.FETCH, version, EntityType.response)
        topics = []
        served = False
        for topic in request.topics:  # type: ignore[attr-defined]
            parts = []
            for p in topic.partitions:
                records = b""  # as Kafka: empty, never null (Wireshark 4.0 chokes on null)
                if p.fetch_offset == 0:
                    records = FileRecords(self.batch_file, 0, self.batch_size)
                    served = True
                parts.append(_build(mod.PartitionData, partition_index=p.partition,
                                    error_code=ErrorCode.none, high_watermark=1,
                                    last_stable_offset=1, log_start_offset=0,
                                    aborted_transactions=None, preferred_read_replica=-1,
                                    records=records))
            topics.append(mod.FetchableTopicResponse(topic=topic.topic, partitions=tuple(parts)))
        if not served:  # nothing new: wait a little, as max_wait would
            time.sleep(0.1)
        return _build(mod.FetchResponse, throttle_time=datetime.timedelta(0),
                      error_code=ErrorCode.none, session_id=0, responses=tuple(topics))


def _kafka_python(broker: GoldenBroker, compression: str | None) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{broker.port}", acks=1,
                             compression_type=compression, linger_ms=0,
                             client_id="golden-kafka-python", enable_idempotence=False)
    try:
        producer.send(TOPIC, key=KEY, value=VALUE, headers=HEADERS, partition=0,
                      timestamp_ms=TIMESTAMP_MS).get(timeout=20)
    finally:
        producer.close(timeout=5)


def _confluent(broker: GoldenBroker, compression: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": f"127.0.0.1:{broker.port}",
                         "client.id": "golden-librdkafka", "compression.codec": compression,
                         "acks": 1, "linger.ms": 0, "enable.idempotence": False})
    producer.produce(TOPIC, key=KEY, value=VALUE, headers=HEADERS, partition=0,
                     timestamp=TIMESTAMP_MS)
    remaining = producer.flush(20)
    if remaining:
        raise RuntimeError("librdkafka did not deliver the golden record")


def _aiokafka(broker: GoldenBroker) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{broker.port}",
                                    client_id="golden-aiokafka", acks=1)
        await producer.start()
        try:
            await producer.send_and_wait(TOPIC, key=KEY, value=VALUE, headers=HEADERS,
                                         partition=0, timestamp_ms=TIMESTAMP_MS)
        finally:
            await producer.stop()

    asyncio.run(run())


def _kcat(broker: GoldenBroker) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        print("kcat not installed: skipped")
        return
    proc = subprocess.Popen(
        [kcat, "-P", "-b", f"127.0.0.1:{broker.port}", "-t", TOPIC, "-p", "0",
         "-K", ":", "-H", "h=v", "-X", "client.id=golden-kcat"],
        stdin=subprocess.PIPE)
    try:
        proc.communicate(KEY + b":" + VALUE + b"\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _expect(received: list) -> None:
    if received != [(KEY, VALUE)]:
        raise RuntimeError(f"consumer received {received!r}")


def _kafka_python_consumer(broker: GoldenBroker) -> None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{broker.port}", group_id=None,
                             client_id="golden-kafka-python", enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        consumer.assign([TopicPartition(TOPIC, 0)])
        received: list = []
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received += [(r.key, r.value) for r in records]
        _expect(received)
    finally:
        consumer.close()


def _confluent_consumer(broker: GoldenBroker) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{broker.port}",
                         "group.id": "golden", "client.id": "golden-librdkafka",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
        received: list = []
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                received.append((msg.key(), msg.value()))
        _expect(received)
    finally:
        consumer.close()


def _aiokafka_consumer(broker: GoldenBroker) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=f"127.0.0.1:{broker.port}",
                                    client_id="golden-aiokafka", group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(TOPIC, 0)])
            msg = await asyncio.wait_for(consumer.getone(), 20)
            _expect([(msg.key, msg.value)])
        finally:
            await consumer.stop()

    asyncio.run(run())


def _kcat_consumer(broker: GoldenBroker) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        print("kcat not installed: skipped")
        return
    out = subprocess.run(
        [kcat, "-C", "-b", f"127.0.0.1:{broker.port}", "-t", TOPIC, "-p", "0", "-o",
         "beginning", "-c", "1", "-e", "-f", "%k:%s\\n", "-X", "client.id=golden-kcat"],
        capture_output=True, timeout=30, check=True).stdout
    _expect([tuple(out.rstrip(b"\n").split(b":", 1))])


def _kafka_python_group(broker: GoldenBroker) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{broker.port}",
                             group_id="golden-group", client_id="golden-kafka-python",
                             enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        consumer.subscribe([TOPIC])
        received: list = []
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received += [(r.key, r.value) for r in records]
        _expect(received)
        consumer.commit()
    finally:
        consumer.close()


def _confluent_group(broker: GoldenBroker) -> None:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{broker.port}",
                         "group.id": "golden-group", "client.id": "golden-librdkafka",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([TOPIC])
        received: list = []
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                received.append((msg.key(), msg.value()))
                consumer.commit(message=msg, asynchronous=False)
        _expect(received)
    finally:
        consumer.close()


def _aiokafka_group(broker: GoldenBroker) -> None:
    from aiokafka import AIOKafkaConsumer

    async def run() -> None:
        consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=f"127.0.0.1:{broker.port}",
                                    client_id="golden-aiokafka", group_id="golden-group",
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            msg = await asyncio.wait_for(consumer.getone(), 30)
            _expect([(msg.key, msg.value)])
            await consumer.commit()
        finally:
            await consumer.stop()

    asyncio.run(run())


def _confluent_admin(broker: GoldenBroker) -> None:
    from confluent_kafka import ConsumerGroupState  # noqa: F401  (present in 2.x)
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, NewPartitions, NewTopic,
                                       ResourceType)

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{broker.port}",
                         "client.id": "golden-librdkafka"})

    def wait(futures: Any) -> None:
        for future in (futures.values() if isinstance(futures, dict) else [futures]):
            future.result(timeout=20)

    wait(admin.create_topics([NewTopic("golden-admin", num_partitions=3,
                                       replication_factor=1,
                                       config={"cleanup.policy": "compact"})]))
    wait(admin.create_partitions([NewPartitions("golden-admin", 6)]))
    resource = ConfigResource(ResourceType.TOPIC, "golden-admin")
    wait(admin.describe_configs([resource]))
    with warnings.catch_warnings():  # alter_configs is deprecated, but it is AlterConfigs
        warnings.simplefilter("ignore")
        wait(admin.alter_configs([ConfigResource(ResourceType.TOPIC, "golden-admin",
                                                 set_config={"cleanup.policy": "delete"})]))
    wait(admin.incremental_alter_configs([ConfigResource(
        ResourceType.TOPIC, "golden-admin", incremental_configs=[ConfigEntry(
            "retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])]))
    admin.list_consumer_groups().result(timeout=20)
    wait(admin.describe_consumer_groups(["golden-group"]))
    wait(admin.delete_consumer_groups(["golden-group"]))
    wait(admin.delete_topics(["golden-admin"]))


def _kafka_python_admin(broker: GoldenBroker) -> None:
    from kafka.admin import (ConfigResource, ConfigResourceType, KafkaAdminClient,
                             NewPartitions, NewTopic)

    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{broker.port}",
                             client_id="golden-kafka-python")
    try:
        admin.create_topics([NewTopic("golden-admin", 3, 1,
                                      topic_configs={"cleanup.policy": "compact"})])
        admin.create_partitions({"golden-admin": NewPartitions(6)})
        admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "golden-admin")])
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "golden-admin",
                                            configs={"cleanup.policy": "delete"})])
        admin.list_groups()
        admin.describe_groups(["golden-group"])
        admin.delete_groups(["golden-group"])
        admin.describe_cluster()
        admin.delete_topics(["golden-admin"])
    finally:
        admin.close()


def _java_admin(broker: GoldenBroker, lib: Path) -> None:
    bootstrap = ["--bootstrap-server", f"127.0.0.1:{broker.port}"]
    props = broker.out_dir / ".golden-java-admin.properties"
    props.write_text("client.id=golden-java\n")
    config = ["--command-config", str(props)]
    topic = "golden-admin"
    _java(lib, "org.apache.kafka.tools.TopicCommand",
          [*bootstrap, "--create", "--topic", topic, "--partitions", "3",
           "--replication-factor", "1", "--config", "cleanup.policy=compact", *config], None)
    _java(lib, "org.apache.kafka.tools.TopicCommand",
          [*bootstrap, "--alter", "--topic", "golden", "--partitions", "6", *config], None)
    _java(lib, "kafka.admin.ConfigCommand",
          [*bootstrap, "--describe", "--entity-type", "topics", "--entity-name", topic,
           *config], None)
    _java(lib, "kafka.admin.ConfigCommand",
          [*bootstrap, "--alter", "--entity-type", "topics", "--entity-name", topic,
           "--add-config", "retention.ms=1000", *config], None)
    _java(lib, "org.apache.kafka.tools.ClusterTool",
          ["cluster-id", *bootstrap, "--config", str(props)], None)
    group = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
    _java(lib, group, [*bootstrap, "--list", *config], None)
    _java(lib, group, [*bootstrap, "--describe", "--group", "golden-group", *config], None)
    _java(lib, group, [*bootstrap, "--delete", "--group", "golden-group", *config], None)
    _java(lib, "org.apache.kafka.tools.TopicCommand",
          [*bootstrap, "--delete", "--topic", "golden", *config], None)
    props.unlink()


def _kafka_lib() -> Path | None:
    """Kafka 3.9's jars (scripts/reference-kafka fetch puts them in reference/lib)."""
    lib = Path(os.environ.get("KAFKALIKE_KAFKA_LIB",
                              Path(__file__).parent.parent.parent / "reference" / "lib"))
    return lib if any(lib.glob("kafka-clients-*.jar")) else None


def _java(lib: Path, main_class: str, args: list[str], stdin: bytes | None) -> bytes:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java not installed")
    proc = subprocess.Popen([java, "-Xmx256m", "-cp", f"{lib}/*", main_class, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(stdin, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{main_class} exited {proc.returncode}: {err.decode()[-500:]}")
    return out


def _java_producer(broker: GoldenBroker, lib: Path, compression: str) -> None:
    _java(lib, "kafka.tools.ConsoleProducer",
          ["--bootstrap-server", f"127.0.0.1:{broker.port}", "--topic", TOPIC,
           "--compression-codec", compression,
           "--property", "parse.key=true", "--property", "key.separator=|",
           "--property", "parse.headers=true",
           "--producer-property", "client.id=golden-java", "--producer-property", "linger.ms=0"],
          b"h:v\t" + KEY + b"|" + VALUE + b"\n")
    if not broker.produced.is_set():
        raise RuntimeError("the Java producer sent no Produce request")


def _java_consumer(broker: GoldenBroker, lib: Path, group: bool = False) -> None:
    where = (["--group", "golden-group", "--consumer-property", "auto.offset.reset=earliest"]
             if group else ["--partition", "0", "--offset", "earliest"])
    out = _java(lib, "org.apache.kafka.tools.consumer.ConsoleConsumer",
                ["--bootstrap-server", f"127.0.0.1:{broker.port}", "--topic", TOPIC,
                 *where, "--max-messages", "1",
                 "--timeout-ms", "30000", "--property", "print.key=true",
                 "--property", "key.separator=|",
                 "--consumer-property", "client.id=golden-java"], None)
    _expect([tuple(out.strip().split(b"|", 1))])


def _start_dumpcap(port: int, pcap: Path) -> subprocess.Popen:
    dumpcap = shutil.which("dumpcap")
    if dumpcap is None:
        raise RuntimeError("dumpcap not installed (Debian package tshark)")
    proc = subprocess.Popen([dumpcap, "-q", "-i", "lo", "-f", f"tcp port {port}", "-w",
                             str(pcap)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(2)  # let the capture start
    return proc


def _stop_dumpcap(proc: subprocess.Popen) -> None:
    time.sleep(1)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_WIRESHARK_GAP = re.compile(
    r"Kafka (JoinGroup v[0-5]|SyncGroup v[0-3]|DescribeGroups v[0-4]|Unknown 60 v\d+) ")


def check_pcap(pcap: Path, port: int) -> tuple[int, int]:
    """(Kafka PDUs Wireshark decoded, malformed/error-level ones) in a capture."""
    base = ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},kafka"]
    total = subprocess.run([*base, "-Y", "kafka", "-T", "fields", "-e", "frame.number"],
                           capture_output=True, check=True, text=True).stdout.split()
    flagged = subprocess.run([*base, "-Y", "_ws.malformed || _ws.expert.severity >= error"],
                             capture_output=True, check=True, text=True).stdout.splitlines()
    # A client's ApiVersions v4 (newer than Wireshark 4.0 knows) and our v0-format answer to
    # it (KIP-511) are flagged "unsupported version" by design; anything else is a failure.
    by_design = [line for line in flagged if "ApiVersions v4" in line]
    wireshark_gap = [line for line in flagged if _WIRESHARK_GAP.search(line)]
    bad = [line for line in flagged if line not in by_design and line not in wireshark_gap]
    print(f"tshark: {len(by_design)} ApiVersions v4 exchanges flagged (newer than Wireshark "
          "4.0; answered with the v0 fallback)")
    print(f"tshark: {len(wireshark_gap)} PDUs flagged where Wireshark 4.0 falls short "
          "(group metadata of JoinGroup v0-5 / SyncGroup v0-3 / DescribeGroups v0-4, "
          "DescribeCluster unknown), clients' requests included")
    for line in bad[:20]:
        print("  tshark:", line)
    return len(total), len(bad)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?",
                        default=str(Path(__file__).parent.parent / "data" / "golden"))
    parser.add_argument("--pcap", help="also record the traffic with dumpcap and check it "
                                       "with Wireshark's Kafka dissector (tshark)")
    parser.add_argument("--table", choices=["supported", "tshark"], default="supported",
                        help="advertise SUPPORTED_APIS (default) or TSHARK_COMPATIBLE_APIS")
    args = parser.parse_args(argv[1:])
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    broker = GoldenBroker(out_dir, TSHARK_COMPATIBLE_APIS if args.table == "tshark" else None)
    dumpcap = _start_dumpcap(broker.port, Path(args.pcap)) if args.pcap else None
    runs = [("kafka-python", lambda: _kafka_python(broker, None)),
            ("kafka-python-gzip", lambda: _kafka_python(broker, "gzip"))]
    runs += [(f"librdkafka-{c}", (lambda c=c: _confluent(broker, c)))
             for c in ("none", "gzip", "snappy", "lz4", "zstd")]
    runs += [("aiokafka", lambda: _aiokafka(broker)), ("kcat", lambda: _kcat(broker)),
             ("librdkafka-admin", lambda: _confluent_admin(broker)),
             ("kafka-python-admin", lambda: _kafka_python_admin(broker))]
    consumers = [("kafka-python-consume-gzip", 1, lambda: _kafka_python_consumer(broker))]
    consumers += [(f"librdkafka-consume-{name}", c, (lambda: _confluent_consumer(broker)))
                  for c, name in enumerate(("none", "gzip", "snappy", "lz4", "zstd"))]
    consumers += [("aiokafka-consume-lz4", 3, lambda: _aiokafka_consumer(broker)),
                  ("kcat-consume-snappy", 2, lambda: _kcat_consumer(broker)),
                  ("kafka-python-group-none", 0, lambda: _kafka_python_group(broker)),
                  ("librdkafka-group-none", 0, lambda: _confluent_group(broker)),
                  ("aiokafka-group-none", 0, lambda: _aiokafka_group(broker))]
    lib = _kafka_lib()
    if lib is None:
        print("Kafka 3.9 jars not found (./scripts/reference-kafka fetch): Java skipped")
    else:
        runs += [(f"java-{name}", (lambda n=name: _java_producer(broker, lib, n)))
                 for name in ("none", "gzip", "snappy", "lz4", "zstd")]
        runs.append(("java-admin", lambda: _java_admin(broker, lib)))
        consumers += [(f"java-consume-{name}", c, (lambda: _java_consumer(broker, lib)))
                      for c, name in enumerate(("none", "gzip", "snappy", "lz4", "zstd"))]
        consumers.append(("java-group-none", 0, lambda: _java_consumer(broker, lib, True)))
    for label, compression, consume in consumers:
        runs.append((label, (lambda c=compression, f=consume: (broker.serve_codec(c), f()))))
    failures = 0
    try:
        for label, run in runs:
            broker.start_run(label)
            try:
                run()
                print(f"{label}: ok")
            except Exception as exc:  # report and go on with the next client
                failures += 1
                print(f"{label}: FAILED {type(exc).__name__}: {exc}")
    finally:
        broker.close()
        if dumpcap is not None:
            _stop_dumpcap(dumpcap)
    for name in sorted(os.listdir(out_dir)):
        print("  ", name)
    if args.pcap:
        decoded, bad = check_pcap(Path(args.pcap), broker.port)
        print(f"tshark: {decoded} Kafka packets decoded, {bad} malformed or in error")
        failures += bad > 0 or decoded == 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
