"""Kafka client properties files (the ``--command-config FILE`` of Kafka's tools), read once
and turned into what each kind of client kafkalike runs needs.

- ``ClientProperties.load(path)``: the file's keys and values (Java properties syntax, read by
  ``broker.kafka_config.parse_properties``).
- ``.security_protocol``: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (Kafka's default PLAINTEXT).
- ``.librdkafka_config()``: the same settings in librdkafka's names, for confluent-kafka's
  Producer, Consumer and AdminClient (``sasl.jaas.config`` -> ``sasl.username`` /
  ``sasl.password``; a PEM ``ssl.truststore.location`` -> ``ssl.ca.location``; a PEM
  ``ssl.keystore.location`` -> ``ssl.certificate.location`` + ``ssl.key.location``).
- ``.kafkalike_security()``: (ssl.SSLContext | None, SaslClientConfig | None) for kafkalike's own
  ``KafkaConnection``.

It lives in ``cluster/`` because it uses the broker's properties parser and SslFactory-like
``client_context`` (``broker/``), and the tools above it (``demo/``, ``cli/``) share it.
Follows Kafka's client configuration reference (security.protocol, sasl.*, ssl.*) and
librdkafka's CONFIGURATION.md for the names it maps to.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

#: keys librdkafka understands under the same name as Kafka's Java client
_SAME_NAME = ("security.protocol", "sasl.username", "sasl.password", "ssl.ca.location",
              "ssl.certificate.location", "ssl.key.location", "ssl.key.password",
              "ssl.endpoint.identification.algorithm", "client.id")


class ClientPropertiesError(ValueError):
    """A client properties file that cannot be read or used; one line naming the file and key."""


@attrs.frozen
class ClientProperties:
    """A Kafka client properties file's settings: ``properties`` maps key -> value (strings,
    file order, a later key wins); ``source`` is where they came from (for messages)."""

    properties: Mapping[str, str]
    source: str = "<properties>"

    @classmethod
    def load(cls, path: str | Path) -> "ClientProperties":
        """Read a Java properties file. Raises ClientPropertiesError when it cannot be read or
        names an unknown security.protocol."""
        from kafkalike.broker.kafka_config import parse_properties

        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ClientPropertiesError(f"cannot read {path}: {exc.strerror}") from None
        return cls.of({key: value for _, key, value in parse_properties(text)}, str(path))

    @classmethod
    def of(cls, properties: Mapping[str, str], source: str = "<properties>") -> "ClientProperties":
        """From a mapping (checked as ``load`` checks a file)."""
        props = cls(dict(properties), source)
        if props.security_protocol not in SECURITY_PROTOCOLS:
            raise ClientPropertiesError(f"{source}: invalid value {props.properties['security.protocol']!r} for "
                                        f"configuration 'security.protocol': one of {', '.join(SECURITY_PROTOCOLS)}")
        return props

    @property
    def security_protocol(self) -> str:
        """security.protocol, upper case; Kafka's default PLAINTEXT."""
        return self.properties.get("security.protocol", "PLAINTEXT").strip().upper()

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def librdkafka_config(self) -> dict[str, Any]:
        """The settings in librdkafka's names (confluent-kafka's config dict). Raises
        ClientPropertiesError for a JAAS value without username/password or a JKS/PKCS12
        store (librdkafka reads PEM files; give ssl.truststore.type=PEM or ssl.ca.location)."""
        from kafkalike.client.sasl import JaasConfigError, SaslClientConfig

        p = self.properties
        out: dict[str, Any] = {k: p[k] for k in _SAME_NAME if k in p}
        out["security.protocol"] = self.security_protocol
        if self.uses_sasl:
            mechanism = p.get("sasl.mechanism", p.get("sasl.mechanisms", "GSSAPI")).strip().upper()
            out["sasl.mechanisms"] = mechanism
            if "sasl.jaas.config" in p:
                try:
                    sasl = SaslClientConfig.from_jaas(mechanism, p["sasl.jaas.config"])
                except JaasConfigError as exc:
                    raise ClientPropertiesError(f"{self.source}: {exc}") from None
                out["sasl.username"], out["sasl.password"] = sasl.username, sasl.password
        if self.uses_ssl:
            if "ssl.truststore.location" in p:
                self._need_pem("ssl.truststore")
                out["ssl.ca.location"] = p["ssl.truststore.location"]
            if "ssl.keystore.location" in p:
                self._need_pem("ssl.keystore")
                # a PEM keystore holds the private key and the certificate chain in one file
                out["ssl.certificate.location"] = p["ssl.keystore.location"]
                out["ssl.key.location"] = p["ssl.keystore.location"]
                if "ssl.key.password" in p:
                    out["ssl.key.password"] = p["ssl.key.password"]
        return out

    def _need_pem(self, store: str) -> None:
        kind = self.properties.get(f"{store}.type", "JKS").strip().upper()
        if kind != "PEM":
            raise ClientPropertiesError(f"{self.source}: {store}.type={kind}: librdkafka clients read PEM files "
                                        f"(set {store}.type=PEM)")

    def kafkalike_security(self) -> tuple[ssl.SSLContext | None, Any]:
        """(ssl_context, SaslClientConfig) for kafkalike's KafkaConnection; (None, None) for
        PLAINTEXT. Raises ClientPropertiesError naming the key."""
        from kafkalike.broker.ssl_factory import SslConfigError, client_context
        from kafkalike.client.sasl import JaasConfigError, SaslClientConfig

        try:
            sasl = SaslClientConfig.from_properties(dict(self.properties))
            ssl_context = None
            if self.uses_ssl:
                ssl_context = client_context({k: (k, v) for k, v in self.properties.items() if k.startswith("ssl.")})
        except (JaasConfigError, SslConfigError) as exc:
            raise ClientPropertiesError(f"{self.source}: {exc}") from None
        return ssl_context, sasl

    def bootstrap_servers_for(self, cluster: Any) -> str:
        """The LocalCluster listener these settings talk to: SASL_* -> its SASL listener, SSL ->
        its SSL listener, PLAINTEXT -> the PLAINTEXT one (``cluster up --security`` keeps it)."""
        if self.uses_sasl:
            return str(cluster.sasl_bootstrap_servers)
        if self.security_protocol == "SSL":
            return str(cluster.ssl_bootstrap_servers)
        return str(cluster.bootstrap_servers)
