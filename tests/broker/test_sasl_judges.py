"""Issue 19's independent judges that tests/broker/test_sasl_listener.py did not cover yet, on
its broker (PLAINTEXT + SASL_PLAINTEXT + SASL_SSL listeners; alice has SCRAM-SHA-256/512
credentials): kafka-python and aiokafka over SASL_SSL with SCRAM-SHA-512, kcat with
``-X security.protocol=SASL_SSL`` (its librdkafka 2.0.2 repeats the client nonce in the SCRAM
client-final message: Kafka 3.9 accepts that, so does kafkalike), and tshark decoding a
SASL_PLAINTEXT capture (ApiVersions, SaslHandshake clean; SaslAuthenticate named, though
Wireshark 4.0 flags its bytes field malformed on librdkafka's request as on our response). kcat and tshark tests skip when the tool
is missing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.broker.listener_helpers import kafka_python_round_trip
from tests.broker.test_sasl_cluster import HAVE_KAFKA, _java
from tests.broker.test_sasl_listener import ALICE_PASSWORD, SaslBroker, sasl_broker  # noqa: F401 (fixture)

sys.path.insert(0, str(Path(__file__).parents[1] / "protocol"))
import tshark_probe  # noqa: E402

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36


def test_kafka_python_over_sasl_ssl_with_scram_sha_512(sasl_broker: SaslBroker) -> None:  # noqa: F811
    common: dict[str, object] = {"bootstrap_servers": f"127.0.0.1:{sasl_broker.sasl_ssl_port}",
                                 "security_protocol": "SASL_SSL", "ssl_cafile": str(sasl_broker.ca_pem),
                                 "sasl_mechanism": "SCRAM-SHA-512",
                                 "sasl_plain_username": "alice", "sasl_plain_password": ALICE_PASSWORD}
    got = kafka_python_round_trip(common, "judge-kafka-python-ssl", 100, lambda i: b"k%03d" % i)
    assert got == [b"k%03d" % i for i in range(100)]


def test_aiokafka_over_sasl_ssl_with_scram_sha_512(sasl_broker: SaslBroker) -> None:  # noqa: F811
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.helpers import create_ssl_context

    topic = "judge-aiokafka-ssl"

    def common() -> dict[str, object]:
        return {"bootstrap_servers": f"127.0.0.1:{sasl_broker.sasl_ssl_port}", "security_protocol": "SASL_SSL",
                "ssl_context": create_ssl_context(cafile=str(sasl_broker.ca_pem)),
                "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "alice",
                "sasl_plain_password": ALICE_PASSWORD}

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(**common())
        await producer.start()
        try:
            for i in range(50):
                await producer.send_and_wait(topic, b"s%02d" % i, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(**common(), enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            got: list[bytes] = []
            while len(got) < 50:
                batch = await consumer.getmany(tp, timeout_ms=10000)
                assert batch, f"no records after {len(got)}"
                got += [m.value for m in batch[tp]]
            return got
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == [b"s%02d" % i for i in range(50)]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_produces_and_consumes_over_sasl_ssl(sasl_broker: SaslBroker) -> None:  # noqa: F811
    topic = f"judge-kcat-{uuid.uuid4().hex[:6]}"
    common = ["kcat", "-b", f"127.0.0.1:{sasl_broker.sasl_ssl_port}", "-X", "security.protocol=SASL_SSL",
              "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=alice",
              "-X", f"sasl.password={ALICE_PASSWORD}", "-X", f"ssl.ca.location={sasl_broker.ca_pem}"]
    lines = [f"kcat-{i}" for i in range(20)]
    produced = subprocess.run(common + ["-P", "-t", topic, "-p", "0"], input="\n".join(lines) + "\n",
                              capture_output=True, text=True, timeout=120)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(common + ["-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q"],
                              capture_output=True, text=True, timeout=120)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == lines


def test_kcat_with_a_wrong_password_is_refused(sasl_broker: SaslBroker) -> None:  # noqa: F811
    if shutil.which("kcat") is None:
        pytest.skip("kcat is not installed")
    done = subprocess.run(["kcat", "-b", f"127.0.0.1:{sasl_broker.sasl_ssl_port}", "-L", "-m", "10",
                           "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
                           "-X", "sasl.username=alice", "-X", "sasl.password=wrong",
                           "-X", f"ssl.ca.location={sasl_broker.ca_pem}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Authentication failed" in done.stderr or "authentication" in done.stderr.lower()


def test_tshark_decodes_a_sasl_plaintext_capture(sasl_broker: SaslBroker, tmp_path: Path) -> None:  # noqa: F811
    from confluent_kafka.admin import AdminClient

    if not tshark_probe.available():
        pytest.skip("tshark/dumpcap not installed")
    pcap = tmp_path / "sasl.pcapng"
    port = sasl_broker.sasl_port
    dumpcap = subprocess.Popen(["dumpcap", "-i", "lo", "-f", f"tcp port {port}", "-w", str(pcap)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            tshark_probe._wait_capturing(dumpcap)
        except RuntimeError as exc:
            pytest.skip(f"cannot capture on lo: {exc}")
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
                             "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice",
                             "sasl.password": ALICE_PASSWORD, "api.version.request": True})
        assert admin.list_topics(timeout=30).brokers
        time.sleep(1)  # (dumpcap writes what it captured)
    finally:
        tshark_probe.stop_capture(dumpcap)
    out = subprocess.run(["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},kafka", "-Y", "kafka",
                          "-T", "fields", "-E", "separator=|", "-e", "kafka.request_key", "-e", "kafka.correlation_id",
                          "-e", "_ws.malformed", "-e", "_ws.col.Info"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    keys = {int(k) for line in out.splitlines() for k in line.split("|")[0].split(",") if k.strip().isdigit()}
    assert {SASL_HANDSHAKE, SASL_AUTHENTICATE, 3} <= keys, out  # 3: the Metadata request after authenticating
    handshake = [line for line in out.splitlines() if "SaslHandshake" in line]
    assert len(handshake) >= 2 and not [line for line in handshake if line.split("|")[2]], out
    # Wireshark 4.0 names SaslAuthenticate v1 and its correlation ids but flags librdkafka's own
    # request as malformed too ("SASL Authentication Bytes: <MISSING>"): its dissector's limit
    assert "SaslAuthenticate v1 Request" in out and "SaslAuthenticate v1 Response" in out


@pytest.mark.skipif(not HAVE_KAFKA, reason="needs KAFKALIKE_KAFKA_LIB set to Kafka 3.9's jars "
                                            "(./scripts/reference-kafka fetch) and java")
def test_kafkas_console_producer_and_consumer_over_sasl_ssl_with_client_properties(
        sasl_broker: SaslBroker, tmp_path: Path) -> None:  # noqa: F811
    """Kafka 3.9's kafka-console-producer/consumer.sh with --producer.config / --consumer.config
    holding SASL_SSL + SCRAM-SHA-512 and a PEM truststore (Kafka's Java client, host name
    verification on)."""
    props = tmp_path / "alice.properties"
    props.write_text("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                     "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                     f'username="alice" password="{ALICE_PASSWORD}";\n'
                     f"ssl.truststore.type=PEM\nssl.truststore.location={sasl_broker.ca_pem}\n")
    bootstrap, topic = f"127.0.0.1:{sasl_broker.sasl_ssl_port}", "judge-java-sasl-ssl"
    out = _java("kafka.tools.ConsoleProducer", "--bootstrap-server", bootstrap, "--topic", topic,
                "--producer.config", str(props), stdin="one\ntwo\nthree\n")
    assert out.returncode == 0, out.stderr[-2000:]
    out = _java("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bootstrap,
                "--topic", topic, "--from-beginning", "--max-messages", "3", "--timeout-ms", "30000",
                "--consumer.config", str(props))
    assert out.stdout.split() == ["one", "two", "three"], out.stderr[-2000:]
