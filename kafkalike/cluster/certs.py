"""Test certificates for ``kafkalike cluster up --security ssl``: a private CA and one
certificate per broker, made with ``cryptography`` (EC P-256, valid 365 days).

Files (PEM, under the cluster's ``ssl/`` directory): ``ca.pem`` (the CA certificate: the
clients' truststore), ``ca-key.pem`` (its key, 0600), ``broker-<id>.pem`` (0600: the broker's
private key followed by its certificate chain — a PEM keystore in Kafka's sense, KIP-651),
each broker certificate naming the broker's address as an IP subjectAltName (plus DNS
``localhost``), so clients that check host names (librdkafka's default
``ssl.endpoint.identification.algorithm=https``) accept it; ``<name>.pem`` (0600, same layout): a
client certificate ``CN=<name>`` (extendedKeyUsage clientAuth) for ``ssl.client.auth=required``
listeners, whose principal is then ``User:CN=<name>`` (Kafka's default
``ssl.principal.mapping.rules``). For local clusters only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ensure_ca(directory: Path) -> tuple[Path, Path]:
    """(ca.pem, ca-key.pem) in ``directory``, created if missing."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kafkalike local cluster CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def broker_subject(broker_id: int) -> str:
    """The subject DN of broker ``broker_id``'s certificate (RFC 4514, as Kafka's default
    principal builder names it: ``User:`` + this)."""
    return f"CN=kafkalike-broker-{broker_id}"


def ensure_broker_keystore(directory: Path, broker_id: int, host: str, *more_hosts: str) -> Path:
    """``broker-<id>.pem`` (key + certificate for ``host`` and ``more_hosts`` — IP addresses or
    DNS names, e.g. a compose service name — and DNS localhost, signed by the CA), created if missing."""
    san: list[x509.GeneralName] = []
    for h in (host, *more_hosts, "localhost"):
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            san.append(x509.DNSName(h))
    return _ensure_keystore(directory / f"broker-{broker_id}.pem", f"kafkalike-broker-{broker_id}", san,
                            server=True)


def ensure_client_keystore(directory: Path, name: str) -> Path:
    """``<name>.pem`` in ``directory``: a client's PEM keystore (key, certificate ``CN=<name>``
    with extendedKeyUsage clientAuth, CA certificate), signed by the CA; created if missing.
    ValueError for a name that is not a plain file name."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid client certificate name {name!r}")
    return _ensure_keystore(directory / f"{name}.pem", name, [], server=False)


def _ensure_keystore(path: Path, common_name: str, san: list[x509.GeneralName], server: bool) -> Path:
    directory = path.parent
    if path.exists():
        return path
    ca_cert_path, ca_key_path = ensure_ca(directory)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if not server:  # a broker certificate has no EKU: it serves and is the inter-broker client's
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private(path, _key_pem(key) + cert.public_bytes(serialization.Encoding.PEM)
                   + ca_cert.public_bytes(serialization.Encoding.PEM))
    return path
