"""SASL for kafkalike's client side, and Kafka's JAAS configuration syntax (KIP-43, KIP-84).

- ``parse_jaas_config(text)``: the value of ``sasl.jaas.config`` (or of a broker's
  ``listener.name.<listener>.<mechanism>.sasl.jaas.config``), e.g.
  ``org.apache.kafka.common.security.plain.PlainLoginModule required username="admin"
  password="admin-secret" user_alice="alice-secret";`` -> JaasConfig (login module, control
  flag, options). Follows Kafka's ``org.apache.kafka.common.security.JaasConfig``: exactly one
  login module, a control flag of required / requisite / sufficient / optional, options
  ``key=value`` where the value is a quoted string (backslash escapes) or a bare word, and a
  terminating ``;``. Raises JaasConfigError (one line).
- ``SaslClientConfig``: mechanism + username/password, from Kafka client properties
  (``sasl.mechanism``, ``sasl.jaas.config``; ``SaslClientConfig.from_properties``).
- ``authenticate(conn, config)``: the client half of the exchange on a KafkaConnection that has
  run ApiVersions: SaslHandshake v1, then SaslAuthenticate (v0-v2) rounds — one for PLAIN
  (RFC 4616: ``authzid NUL authcid NUL passwd``), two for SCRAM-SHA-256/512 (RFC 5802/7677,
  with ``scramp``; the server's signature is checked). Follows Kafka's SaslClientAuthenticator.
  Raises SaslAuthenticationError with the broker's error code and message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs
import scramp

from kafkalike.client.errors import KafkaError
from kafkalike.client.messages import build_request
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode

__all__ = ["JaasConfig", "JaasConfigError", "parse_jaas_config", "SaslClientConfig",
           "SaslAuthenticationError", "authenticate", "SASL_MECHANISMS", "PLAIN_LOGIN_MODULE",
           "SCRAM_LOGIN_MODULE"]

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
"""The mechanisms kafkalike speaks (Kafka also has GSSAPI and OAUTHBEARER)."""

PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"

_CONTROL_FLAGS = ("required", "requisite", "sufficient", "optional")
_TOKEN = re.compile(r'\s*(?:(?P<q>"(?:\\.|[^"\\])*")|(?P<semi>;)|(?P<eq>=)|(?P<w>[^\s=;"]+))')


class JaasConfigError(ValueError):
    """A JAAS configuration value Kafka would refuse; ``str(err)`` is one line."""


class SaslAuthenticationError(KafkaError):
    """The broker refused the SASL exchange: ``error_code`` is UNSUPPORTED_SASL_MECHANISM,
    ILLEGAL_SASL_STATE or SASL_AUTHENTICATION_FAILED, ``message`` the broker's text."""

    def __init__(self, error_code: ErrorCode | int, message: str) -> None:
        super().__init__(error_code, "SASL authentication", message)


@attrs.frozen
class JaasConfig:
    """One JAAS login module entry: ``login_module`` (Java class name), ``control_flag``,
    ``options`` (name -> string value, e.g. username, password, user_<name>)."""

    login_module: str
    control_flag: str
    options: Mapping[str, str]


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def parse_jaas_config(text: str, what: str = "sasl.jaas.config") -> JaasConfig:
    """Parse a JAAS config value (``what`` names the property in errors).

    Raises JaasConfigError: no login module, more than one (Kafka: "JAAS config property
    contains N login modules, should be 1 module"), a bad control flag, an option without a
    value, or a missing ``;``.
    """
    pos, tokens = 0, []
    text = text or ""
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise JaasConfigError(f"invalid value for configuration {what!r}: cannot parse at "
                                  f"character {pos}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind or "w")))
        pos = m.end()
    entries: list[JaasConfig] = []
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind != "w":
            raise JaasConfigError(f"invalid value for configuration {what!r}: expected a login "
                                  f"module class name, got {value!r}")
        module = value
        if i + 1 >= len(tokens) or tokens[i + 1][0] != "w" or tokens[i + 1][1].lower() not in _CONTROL_FLAGS:
            got = tokens[i + 1][1] if i + 1 < len(tokens) else "end of value"
            raise JaasConfigError(f"invalid value for configuration {what!r}: invalid control flag "
                                  f"{got!r} (expected one of {', '.join(_CONTROL_FLAGS)})")
        flag = tokens[i + 1][1].lower()
        i += 2
        options: dict[str, str] = {}
        while True:
            if i >= len(tokens):
                raise JaasConfigError(f"invalid value for configuration {what!r}: the login "
                                      "module entry must end with ';'")
            kind, value = tokens[i]
            if kind == "semi":
                i += 1
                break
            if kind != "w" or i + 2 >= len(tokens) or tokens[i + 1][0] != "eq" \
                    or tokens[i + 2][0] not in ("w", "q"):
                raise JaasConfigError(f"invalid value for configuration {what!r}: expected "
                                      f"option=value, got {value!r}")
            raw = tokens[i + 2][1]
            options[value] = _unquote(raw) if tokens[i + 2][0] == "q" else raw
            i += 3
        entries.append(JaasConfig(module, flag, options))
    if len(entries) != 1:
        raise JaasConfigError(f"invalid value for configuration {what!r}: JAAS config property "
                              f"contains {len(entries)} login modules, should be 1 module")
    return entries[0]


@attrs.frozen
class SaslClientConfig:
    """What a client needs to authenticate: ``mechanism`` (PLAIN, SCRAM-SHA-256,
    SCRAM-SHA-512), ``username``, ``password``."""

    mechanism: str
    username: str
    password: str = attrs.field(repr=False)

    @classmethod
    def from_jaas(cls, mechanism: str, jaas: str, what: str = "sasl.jaas.config") -> "SaslClientConfig":
        """From a mechanism and a JAAS value holding ``username`` and ``password`` options
        (PlainLoginModule or ScramLoginModule). Raises JaasConfigError naming ``what``."""
        mechanism = mechanism.upper()
        if mechanism not in SASL_MECHANISMS:
            raise JaasConfigError(f"invalid value {mechanism!r} for configuration 'sasl.mechanism': "
                                  f"kafkalike speaks {', '.join(SASL_MECHANISMS)}")
        entry = parse_jaas_config(jaas, what)
        username, password = entry.options.get("username"), entry.options.get("password")
        if username is None or password is None:
            raise JaasConfigError(f"invalid value for configuration {what!r}: the login module needs "
                                  "username and password options")
        return cls(mechanism, username, password)

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> "SaslClientConfig | None":
        """From Kafka client properties: None unless ``security.protocol`` is SASL_PLAINTEXT
        or SASL_SSL; then ``sasl.mechanism`` (Kafka's default GSSAPI is refused) and
        ``sasl.jaas.config`` are required. Raises JaasConfigError naming the key."""
        protocol = props.get("security.protocol", "PLAINTEXT").strip().upper()
        if not protocol.startswith("SASL_"):
            return None
        mechanism = props.get("sasl.mechanism", "GSSAPI").strip()
        jaas = props.get("sasl.jaas.config")
        if jaas is None:
            raise JaasConfigError("missing configuration 'sasl.jaas.config' (needed with "
                                  f"security.protocol={protocol})")
        return cls.from_jaas(mechanism, jaas)


def _error_message(response: Any) -> str:
    return getattr(response, "error_message", None) or ""


async def authenticate(conn: Any, config: SaslClientConfig) -> None:
    """Run the SASL exchange on ``conn`` (a kafkalike.client.connection.KafkaConnection that
    has run ApiVersions; typed Any as connection.py imports this module). SaslHandshake v1, then
    SaslAuthenticate at the highest common version (v0-v2).

    Raises SaslAuthenticationError (UNSUPPORTED_SASL_MECHANISM with the broker's list,
    SASL_AUTHENTICATION_FAILED with its message, or ILLEGAL_SASL_STATE), and the errors of
    KafkaConnection.send (ConnectionClosedError when the broker closes instead of answering).
    """
    version = conn.api_version(ApiKey.SASL_HANDSHAKE, max_version=1, min_version=1)
    handshake = await conn.send(build_request(ApiKey.SASL_HANDSHAKE, version, mechanism=config.mechanism))
    if handshake.error_code != ErrorCode.none:
        raise SaslAuthenticationError(
            handshake.error_code,
            f"{config.mechanism} is not enabled on {conn.host}:{conn.port} "
            f"(enabled: {', '.join(handshake.mechanisms)})")
    auth_version = conn.api_version(ApiKey.SASL_AUTHENTICATE, max_version=2)

    async def exchange(token: bytes) -> bytes:
        response = await conn.send(build_request(ApiKey.SASL_AUTHENTICATE, auth_version, auth_bytes=token))
        if response.error_code != ErrorCode.none:
            raise SaslAuthenticationError(response.error_code, _error_message(response))
        return bytes(response.auth_bytes)

    if config.mechanism == "PLAIN":
        await exchange(b"\0" + config.username.encode() + b"\0" + config.password.encode())
        return
    client = scramp.ScramClient([config.mechanism], config.username, config.password)
    server_first = await exchange(client.get_client_first().encode())
    try:
        client.set_server_first(server_first.decode())
        final = client.get_client_final()
    except scramp.ScramException as exc:
        raise SaslAuthenticationError(ErrorCode.sasl_authentication_failed, f"SCRAM: {exc}") from None
    server_final = await exchange(final.encode())
    try:
        client.set_server_final(server_final.decode())
    except scramp.ScramException as exc:
        raise SaslAuthenticationError(ErrorCode.sasl_authentication_failed,
                                      f"SCRAM: the broker's signature does not verify ({exc})") from None
