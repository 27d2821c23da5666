"""One real broker process per test module, reached over its listeners: the start-up and
round-trip helpers the TLS and SASL listener tests share (tests/broker/test_ssl_listener.py,
tests/broker/test_sasl_listener.py). The process is ``python -m kafkalike.cli.main broker
start --config server.properties`` with its output in a log file, stopped by its pid."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 60.0


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def write_properties(path: Path, props: dict[str, str]) -> None:
    """``props`` as a Java properties file (key=value lines)."""
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))


def spawn(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start a broker process with ``config``; stdout and stderr go to ``log_path``."""
    with open(log_path, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "kafkalike.cli.main", "broker", "start",
                                 "--config", str(config)], stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM ``process`` and wait up to 30 s, then SIGKILL it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def api_versions_frame(correlation_id: int = 7) -> bytes:
    """A raw ApiVersions v0 request: size, api_key 18, version 0, correlation id, null client id."""
    return struct.pack(">ihhih", 10, 18, 0, correlation_id, -1)


def call_api_versions(sock: socket.socket | ssl.SSLSocket, correlation_id: int = 7) -> int:
    """Send ApiVersions v0 on sock and return the error code of the answer."""
    sock.sendall(api_versions_frame(correlation_id))
    buf = b""
    while len(buf) < 10:
        chunk = sock.recv(65536)
        assert chunk, "broker closed the connection"
        buf += chunk
    size, corr, error = struct.unpack(">iih", buf[:10])
    assert corr == correlation_id and size > 6
    return int(error)


def wait_port(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until ApiVersions on 127.0.0.1:``port`` (PLAINTEXT) answers NONE; AssertionError (with
    the log's tail) when the process exits or START_TIMEOUT_S passes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"broker exited {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if call_api_versions(s) == 0:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("broker did not answer in time")


def single_broker_properties(base: Path, zk_connect: str, name: str, plaintext_port: int, listeners: str,
                             **extra: str) -> dict[str, str]:
    """server.properties of broker 1 alone in a fresh chroot ``/kafkalike-<name>-<random>``
    with its logs under ``base``: a PLAINTEXT listener on ``plaintext_port`` (inter-broker)
    beside ``listeners`` (more listener URLs, comma-separated), offsets topic RF 1, no
    rebalance delay, no metrics endpoint; ``extra`` added (dots as in Kafka's keys)."""
    return {
        "broker.id": "1",
        "zookeeper.connect": f"{zk_connect}/kafkalike-{name}-{uuid.uuid4().hex[:10]}",
        "zookeeper.session.timeout.ms": "6000",
        "log.dirs": str(base / "logs"),
        "listeners": f"PLAINTEXT://127.0.0.1:{plaintext_port},{listeners}",
        "inter.broker.listener.name": "PLAINTEXT",
        "offsets.topic.replication.factor": "1",
        "group.initial.rebalance.delay.ms": "0",
        "kafkalike.metrics.port": "-1",
        **extra,
    }


def plaintext_broker_properties(base: Path, zookeeper_connect: str, port: int, **extra: str) -> dict[str, str]:
    """server.properties of broker 1 with only a PLAINTEXT listener on ``port``, its logs under
    ``base``, ``zookeeper_connect`` as given (the caller's chroot), offsets topic RF 1, no
    metrics endpoint; ``extra`` added (dots as in Kafka's keys)."""
    return {"broker.id": "1", "log.dirs": str(base / "logs"), "zookeeper.connect": zookeeper_connect,
            "listeners": f"PLAINTEXT://127.0.0.1:{port}", "offsets.topic.replication.factor": "1",
            "kafkalike.metrics.port": "-1", **extra}


@contextlib.contextmanager
def broker_process(base: Path, props: dict[str, str], plaintext_port: int
                   ) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A broker process run with ``props`` (written to base/server.properties, log in
    base/broker.log), answering on ``plaintext_port`` when the block starts; stopped when the
    block ends, also on error. Yields (process, log path)."""
    config = base / "server.properties"
    write_properties(config, props)
    log_path = base / "broker.log"
    process = spawn(config, log_path)
    try:
        wait_port(plaintext_port, process, log_path)
        yield process, log_path
    finally:
        stop(process)


def read_zk_json(zookeeper_connect: str, path: str) -> Any:
    """The JSON of znode ``path`` under ``zookeeper_connect`` (with its chroot), read after a
    sync on a fresh session (what a broker process wrote is there); NoNode if it is absent."""
    import json

    import trio

    from kafkalike.coordination import ZooKeeperClient

    async def read() -> Any:
        async with ZooKeeperClient(zookeeper_connect, session_timeout_ms=6000) as zk:
            return json.loads((await zk.get(path, sync=True))[0])
    return trio.run(read)


def mtls_certificates(base: Path, units: dict[str, str]) -> tuple[Path, Path, dict[str, tuple[Path, Path]]]:
    """A fresh test CA (trustme) under ``base``: the broker's key and certificate for
    127.0.0.1/localhost in one PEM (ssl.keystore.type=PEM), the CA certificate, and per client
    ``name`` in ``units`` a certificate with subject CN=<name>,OU=<unit>,O=kafkalike and its
    key. Returns (keystore path, CA path, {name: (cert path, key path)})."""
    import trustme

    ca = trustme.CA()
    keystore, ca_pem = base / "broker.pem", base / "ca.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(keystore))
    ca.cert_pem.write_to_path(str(ca_pem))
    certs: dict[str, tuple[Path, Path]] = {}
    for name, unit in units.items():
        leaf = ca.issue_cert(f"{name}.kafkalike.test", common_name=name, organization_name="kafkalike",
                             organization_unit_name=unit)
        cert, key = base / f"{name}-cert.pem", base / f"{name}-key.pem"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        certs[name] = (cert, key)
    return keystore, ca_pem, certs


def wait_for_controller(admin: Any, timeout_s: float) -> None:
    """Until confluent-kafka's ``admin`` (an AdminClient) sees a controller in Metadata (requests
    librdkafka sends to the controller, such as CreateAcls or AlterConfigs, need one), retrying
    while the broker does not answer yet; AssertionError "no controller elected" after
    ``timeout_s`` seconds."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if admin.list_topics(timeout=5).controller_id >= 0:
                return
        except KafkaException:  # not answering yet (a loaded machine)
            pass
        assert time.monotonic() < deadline, "no controller elected"
        time.sleep(0.2)


def confluent_round_trip(port: int, topic: str, n: int, padding: bytes = b"", **security: Any) -> list[bytes]:
    """confluent-kafka produces ``n`` records (value b"v%05d" % i + ``padding``, key b"k<i>")
    to partition 0 of ``topic`` on 127.0.0.1:``port`` with the ``security`` settings
    (librdkafka's keys), then a consumer assigned to it reads them back from offset 0 for up
    to 60 s; returns the values read."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    common = {"bootstrap.servers": f"127.0.0.1:{port}", **security}
    producer = Producer({**common, "linger.ms": 5})
    for i in range(n):
        producer.produce(topic, value=b"v%05d" % i + padding, key=b"k%d" % i)
    assert producer.flush(60) == 0
    consumer = Consumer({**common, "group.id": f"g-{topic}", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
    finally:
        consumer.close()
    return got


def kafka_python_round_trip(common: dict[str, object], topic: str, n: int,
                            value: Callable[[int], bytes]) -> list[bytes]:
    """kafka-python produces ``n`` records (``value(i)``) to ``topic`` with the client
    settings ``common`` (kafka-python's keyword names), then a consumer without group,
    assigned to partition 0 from offset 0, reads for up to 60 s; returns the values read."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(**common)
    try:
        for i in range(n):
            producer.send(topic, value=value(i))
        producer.flush(60)
    finally:
        producer.close()
    consumer = KafkaConsumer(**common, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < n and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(r.value for r in records)
    finally:
        consumer.close()
    return got
