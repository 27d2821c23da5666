"""Record golden request frames from real Kafka clients into tests/data/golden/ (run by hand).

    .venv/bin/python tests/protocol/capture_golden.py [OUT_DIR]

A tiny plain-socket broker stand-in on 127.0.0.1 (a free port) answers with kafkalike's own
encoder: ApiVersions (our table, or the v0 fallback), Metadata (one broker: itself; one
topic "golden" with one partition), InitProducerId, Produce (offset 0). Every request frame
it receives is saved, size prefix included, as ``<client>-<label>-<ApiName>-v<N>.bin`` (the
first of each api/version per client run). Then it drives, one after the other:

- kafka-python 3.0 (KafkaProducer, uncompressed and gzip),
- confluent-kafka 2.16 / librdkafka (none, gzip, snappy, lz4, zstd),
- aiokafka 0.14 (uncompressed),
- kcat 1.7 / librdkafka 2.0 (if installed; uncompressed),

each sending one record: key b"golden-key", value b"golden-value-" * 40, header ("h", b"v"),
timestamp 1700000000000 ms. tests/protocol/test_protocol_golden.py decodes these files.
Stops its listener and every client it started before exiting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from kio.index import load_payload_module
from kio.static.constants import EntityType

from kafkalike.protocol import codec
from kafkalike.protocol.api_keys import ApiKey, api_name
from kafkalike.protocol.errors import ErrorCode, ProtocolError, UnsupportedApiError
from kafkalike.protocol.frame import FrameReader

TOPIC = "golden"
KEY = b"golden-key"
VALUE = b"golden-value-" * 40  # compressible: clients skip compression that does not pay
HEADERS = [("h", b"v")]
TIMESTAMP_MS = 1700000000000
TOPIC_ID = uuid.UUID("6f1d9a2c-0b5e-4c7a-9d3e-2a4b6c8d0e1f")


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


class GoldenBroker:
    """A listener that answers the first requests of a producer and saves every frame."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.label = "none"
        self.saved: set[str] = set()
        self.produced = threading.Event()
        self._stop = False
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def start_run(self, label: str) -> None:
        self.label = label
        self.produced.clear()

    def close(self) -> None:
        self._stop = True
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
        name = f"{self.label}-{api_name(header_key)}-v{version}.bin"
        if name not in self.saved:
            self.saved.add(name)
            (self.out_dir / name).write_bytes(len(body).to_bytes(4, "big") + body)

    def _serve(self, conn: socket.socket) -> None:
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
                            answer = codec.encode_api_versions_fallback(exc.correlation_id)
                        else:
                            return
                    if answer is None:
                        return
                    conn.sendall(answer)

    def _answer(self, body: bytes) -> bytes | None:
        header, request = codec.parse_request(body)
        if header.api_key == ApiKey.API_VERSIONS:
            response = codec.api_versions_response(header.api_version)
        elif header.api_key == ApiKey.METADATA:
            response = _metadata_response(header.api_version, self.port)
        elif header.api_key == ApiKey.INIT_PRODUCER_ID:
            response = _init_producer_id_response(header.api_version)
        elif header.api_key == ApiKey.PRODUCE:
            response = _produce_response(header.api_version, request)
            self.produced.set()
        else:
            return None
        return codec.encode_response(header, response)


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


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent.parent / "data" / "golden"
    out_dir.mkdir(parents=True, exist_ok=True)
    broker = GoldenBroker(out_dir)
    runs = [("kafka-python", lambda: _kafka_python(broker, None)),
            ("kafka-python-gzip", lambda: _kafka_python(broker, "gzip"))]
    runs += [(f"librdkafka-{c}", (lambda c=c: _confluent(broker, c)))
             for c in ("none", "gzip", "snappy", "lz4", "zstd")]
    runs += [("aiokafka", lambda: _aiokafka(broker)), ("kcat", lambda: _kcat(broker))]
    failures = 0
    try:
        for label, run in runs:
            broker.start_run(label)
            try:
                run()
                print(f"{label}: ok ({'produced' if broker.produced.is_set() else 'no produce'})")
            except Exception as exc:  # report and go on with the next client
                failures += 1
                print(f"{label}: FAILED {type(exc).__name__}: {exc}")
    finally:
        broker.close()
    for name in sorted(os.listdir(out_dir)):
        print("  ", name)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
