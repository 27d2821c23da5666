"""SaslServerAuthenticator: the SASL exchange at the start of a SASL_PLAINTEXT / SASL_SSL
connection (Kafka's org.apache.kafka.common.security.authenticator.SaslServerAuthenticator;
KIP-43 SaslHandshake, KIP-152 SaslAuthenticate, KIP-84 SCRAM).

A connection of a SASL listener starts unauthenticated. SocketServer hands each request frame
to the connection's authenticator until ``complete``:

- state HANDSHAKE_OR_VERSIONS_REQUEST: ApiVersions (answered by the broker's request handler,
  as Kafka answers it before authentication) and SaslHandshake are accepted; any other request
  closes the connection with no answer ("Unexpected Kafka request of type X during SASL
  handshake", Kafka's InvalidRequestException). A mechanism not in the listener's
  ``sasl.enabled.mechanisms`` gets UNSUPPORTED_SASL_MECHANISM with the enabled list, then the
  connection is closed.
- state AUTHENTICATE: after SaslHandshake v1, SaslAuthenticate requests carry the tokens (any
  other request: ILLEGAL_SASL_STATE in that request's response, then closed); after v0, raw
  size-prefixed tokens (Kafka's pre-KIP-152 mode, still used by old clients). A failed
  exchange answers SASL_AUTHENTICATION_FAILED with Kafka's message and closes the connection,
  logging one ``sasl_authentication_failed`` line with the peer address.
- state COMPLETE: ``principal`` is ``User:<name>`` (Kafka's DefaultKafkaPrincipalBuilder) and
  is copied to the ConnectionContext; every further request goes to the request handler.
  session_lifetime_ms is 0 (connections.max.reauth.ms unset: no re-authentication).

Mechanisms: PLAIN (RFC 4616; users and passwords from the listener's JAAS config
``listener.name.<listener>.plain.sasl.jaas.config`` = PlainLoginModule with ``user_<name>=
"<password>"`` options, as Kafka's PlainServerCallbackHandler) and SCRAM-SHA-256 /
SCRAM-SHA-512 (RFC 5802/7677 through ``scramp``; credentials read from ZooKeeper's
``/config/users/<user>`` for each authentication, broker/sasl_scram.py).

Configuration (``listener_sasl_configs``): ``sasl.enabled.mechanisms`` (Kafka's default GSSAPI
is not served: start-up stops naming the key), per listener as
``listener.name.<listener>.sasl.enabled.mechanisms``; PLAIN needs the listener's JAAS config.
``inter_broker_sasl_client`` gives the broker's own credentials on a SASL inter-broker listener:
``sasl.mechanism.inter.broker.protocol`` (must be enabled there) and the ``username`` /
``password`` options of that listener's JAAS config for the mechanism, as Kafka's
SaslChannelBuilder in client mode.
"""

from __future__ import annotations

import datetime
import enum
import hmac
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import scramp
import structlog

from kafkalike.broker.sasl_scram import ScramCredentialStore, ScramFormatter, ScramMechanism
from kafkalike.broker.socket_server import ConnectionContext, RequestHandler
from kafkalike.client.sasl import (PLAIN_LOGIN_MODULE, SASL_MECHANISMS, SCRAM_LOGIN_MODULE, JaasConfigError,
                                   SaslClientConfig, parse_jaas_config)
from kafkalike.protocol.api_keys import ApiKey, api_name
from kafkalike.protocol.codec import RequestHeader, encode_response, parse_request
from kafkalike.protocol.entities import build, response_class_for
from kafkalike.protocol.errors import ErrorCode, ProtocolError

if TYPE_CHECKING:
    from kafkalike.broker.kafka_config import KafkaConfig

log = structlog.get_logger(__name__)

__all__ = ["SaslConfigError", "ListenerSaslConfig", "listener_sasl_configs", "inter_broker_sasl_client",
           "SaslServerAuthenticator", "AuthenticationStep", "SaslState", "register_authenticated_handlers",
           "PLAIN_INVALID_CREDENTIALS"]

PLAIN_INVALID_CREDENTIALS = "Authentication failed: Invalid username or password"
"""PlainSaslServer's message for a wrong password or an unknown user."""

_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
_API_KEY = struct.Struct(">h")


class SaslConfigError(ValueError):
    """A SASL setting the broker can't start with; ``str(err)`` is one line naming the key."""


@attrs.frozen
class ListenerSaslConfig:
    """The SASL settings of one listener: enabled mechanisms (in the configured order) and
    PLAIN's users (name -> password, from the JAAS ``user_<name>`` options)."""

    listener_name: str
    enabled_mechanisms: tuple[str, ...]
    plain_users: Mapping[str, str] = attrs.field(factory=dict, repr=False)


def _setting(cfg: "KafkaConfig", listener: str, key: str) -> tuple[str, Any]:
    """(the property it came from, value): ``listener.name.<listener>.<key>`` wins over ``key``."""
    prefixed = f"listener.name.{listener.lower()}.{key}"
    if prefixed in cfg.originals:
        return prefixed, cfg.values[prefixed]
    return key, cfg.values.get(key)


def _jaas(cfg: "KafkaConfig", listener: str, mechanism: str) -> tuple[str, str | None]:
    prop = f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config"
    return prop, (cfg.values[prop] if prop in cfg.originals else None)


def listener_sasl_configs(cfg: "KafkaConfig") -> dict[str, ListenerSaslConfig]:
    """{listener name: ListenerSaslConfig} for the SASL_PLAINTEXT / SASL_SSL listeners.

    Raises SaslConfigError naming the key: a mechanism kafkalike does not serve (GSSAPI,
    OAUTHBEARER, a typo) or no mechanism at all in sasl.enabled.mechanisms; PLAIN enabled
    without the listener's JAAS config, or with a JAAS value that does not parse or names
    another login module; an inter-broker SASL listener whose
    sasl.mechanism.inter.broker.protocol is not enabled on it.
    """
    out: dict[str, ListenerSaslConfig] = {}
    for ep in cfg.listeners:
        if ep.security_protocol not in _SASL_PROTOCOLS:
            continue
        name = ep.listener_name
        prop, mechanisms = _setting(cfg, name, "sasl.enabled.mechanisms")
        mechanisms = [m.strip() for m in (mechanisms or []) if m.strip()]
        if not mechanisms:
            raise SaslConfigError(f"invalid value for configuration {prop!r}: listener {name} is "
                                  f"{ep.security_protocol} and needs at least one SASL mechanism")
        for mechanism in mechanisms:
            if mechanism not in SASL_MECHANISMS:
                raise SaslConfigError(f"invalid value {mechanism!r} in configuration {prop!r}: kafkalike "
                                      f"serves {', '.join(SASL_MECHANISMS)}")
        plain_users: dict[str, str] = {}
        for mechanism in mechanisms:
            jaas_prop, jaas = _jaas(cfg, name, mechanism)
            if jaas is None:
                if mechanism == "PLAIN":
                    raise SaslConfigError(
                        f"missing configuration {jaas_prop!r}: listener {name} enables PLAIN, whose users "
                        f"come from {PLAIN_LOGIN_MODULE} user_<name>=\"<password>\" options")
                continue
            try:
                entry = parse_jaas_config(jaas, jaas_prop)
            except JaasConfigError as exc:
                raise SaslConfigError(str(exc)) from None
            module = PLAIN_LOGIN_MODULE if mechanism == "PLAIN" else SCRAM_LOGIN_MODULE
            if entry.login_module != module:
                raise SaslConfigError(f"invalid value for configuration {jaas_prop!r}: {mechanism} needs "
                                      f"{module}, got {entry.login_module}")
            if mechanism == "PLAIN":
                plain_users = {k[len("user_"):]: v for k, v in entry.options.items() if k.startswith("user_")}
        out[name] = ListenerSaslConfig(name, tuple(mechanisms), plain_users)
    inter = cfg.inter_broker_listener_name
    if inter in out:
        inter_broker_sasl_client(cfg, out)  # validates
    return out


def inter_broker_sasl_client(cfg: "KafkaConfig",
                             configs: Mapping[str, ListenerSaslConfig] | None = None) -> SaslClientConfig | None:
    """The broker's own SASL credentials for inter-broker connections (controller channel,
    replica fetchers, controlled shutdown), or None when the inter-broker listener is not
    SASL. Raises SaslConfigError naming the key (mechanism not enabled on that listener, no
    JAAS config with username and password for it)."""
    configs = listener_sasl_configs(cfg) if configs is None else configs
    inter = cfg.inter_broker_listener_name
    listener = configs.get(inter)
    if listener is None:
        return None
    mechanism = str(cfg["sasl.mechanism.inter.broker.protocol"])
    if mechanism not in listener.enabled_mechanisms:
        raise SaslConfigError(
            f"invalid value {mechanism!r} for configuration 'sasl.mechanism.inter.broker.protocol': "
            f"sasl.mechanism.inter.broker.protocol must be included in sasl.enabled.mechanisms of the "
            f"inter-broker listener {inter} ({', '.join(listener.enabled_mechanisms)})")
    jaas_prop, jaas = _jaas(cfg, inter, mechanism)
    if jaas is None:
        raise SaslConfigError(f"missing configuration {jaas_prop!r}: the inter-broker listener {inter} uses "
                              f"{mechanism}; its username and password options are the broker's credentials")
    try:
        return SaslClientConfig.from_jaas(mechanism, jaas, jaas_prop)
    except JaasConfigError as exc:
        raise SaslConfigError(str(exc)) from None


class SaslState(enum.Enum):
    """Kafka's SaslServerAuthenticator.SaslState (the states kafkalike uses)."""

    HANDSHAKE_OR_VERSIONS_REQUEST = "HANDSHAKE_OR_VERSIONS_REQUEST"
    AUTHENTICATE = "AUTHENTICATE"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


@attrs.frozen
class AuthenticationStep:
    """What one frame led to: ``response`` chunks to send (or None), and ``close`` — a reason
    to close the connection once the response is sent (None: keep going)."""

    response: Sequence[Any] | None
    close: str | None = None


class _AuthenticationFailed(Exception):
    """A failed exchange: ``str(exc)`` is the message the client gets."""


class _PlainServer:
    """RFC 4616 PLAIN against the listener's JAAS users (Kafka's PlainSaslServer)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = users
        self.username: str | None = None
        self.complete = False

    async def evaluate(self, token: bytes) -> bytes:
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise _AuthenticationFailed(f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(parts)}")
        authzid, username, password = (p.decode("utf-8", "replace") for p in parts)
        if not username:
            raise _AuthenticationFailed("Authentication failed: username not specified")
        if not password:
            raise _AuthenticationFailed("Authentication failed: password not specified")
        expected = self.users.get(username)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise _AuthenticationFailed(PLAIN_INVALID_CREDENTIALS)
        if authzid and authzid != username:
            raise _AuthenticationFailed("Authentication failed: Client requested an authorization id "
                                        "that is different from username")
        self.username, self.complete = username, True
        return b""


def _scram_username(client_first: str) -> str:
    """The ``n=`` attribute of a SCRAM client-first message, unescaped (=2C, =3D)."""
    parts = client_first.split(",")
    if len(parts) < 4:
        raise _AuthenticationFailed("malformed client-first message")
    for attr in parts[2:]:
        if attr.startswith("n="):
            return attr[2:].replace("=2C", ",").replace("=3D", "=")
    raise _AuthenticationFailed("no username in client-first message")


class _ScramServer:
    """SCRAM-SHA-256/512 server (RFC 5802) over scramp, credentials from ZooKeeper (Kafka's
    ScramSaslServer). Any failure reads as Kafka's generic invalid-credentials message."""

    def __init__(self, mechanism: ScramMechanism, store: ScramCredentialStore) -> None:
        self.mechanism = mechanism
        self.store = store
        self.username: str | None = None
        self.complete = False
        self._server: Any = None
        self._credential: Any = None
        self._client_first_bare = ""
        self._server_first = ""

    def _legacy_nonce_final(self, message: str) -> bytes | None:
        """The server-final message for a client-final whose nonce is the client nonce followed
        by the server's combined nonce (librdkafka before 2.6.1 prepends its nonce twice:
        confluentinc/librdkafka#4895); Kafka 3.8.1-3.9 accept a nonce that ends with the
        server's (ScramSaslServer, ``endsWith``), Kafka 4 only an equal one. None for any other
        message (scramp checks those). Raises _AuthenticationFailed for a wrong proof."""
        import base64

        attrs_ = dict(part.split("=", 1) for part in message.split(",") if "=" in part[:2])
        server_nonce = dict(part.split("=", 1) for part in self._server_first.split(",")).get("r", "")
        nonce = attrs_.get("r", "")
        if not server_nonce or nonce == server_nonce or not nonce.endswith(server_nonce) or "p" not in attrs_:
            return None
        without_proof = message[:message.rindex(",p=")]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        formatter = ScramFormatter(self.mechanism)
        cred = self._credential
        try:
            proof = base64.b64decode(attrs_["p"], validate=True)
        except ValueError:
            raise _AuthenticationFailed("proof is not base64") from None
        signature = formatter.hmac(cred.stored_key, auth_message)
        if len(proof) != len(signature):
            raise _AuthenticationFailed("proof has the wrong length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(formatter.hash(client_key), cred.stored_key):
            raise _AuthenticationFailed("invalid proof")
        return b"v=" + base64.b64encode(formatter.hmac(cred.server_key, auth_message))

    async def evaluate(self, token: bytes) -> bytes:
        try:
            message = token.decode("utf-8")
        except UnicodeDecodeError:
            raise _AuthenticationFailed("token is not UTF-8") from None
        try:
            if self._server is None:
                username = _scram_username(message)
                credential = await self.store.credential(self.mechanism, username)
                if credential is None:
                    raise _AuthenticationFailed(f"no {self.mechanism.mechanism_name} credential for the user")
                if credential.iterations < self.mechanism.min_iterations:
                    raise _AuthenticationFailed("too few iterations")
                auth_info = (credential.salt, credential.stored_key, credential.server_key, credential.iterations)
                self._server = scramp.ScramMechanism(self.mechanism.mechanism_name).make_server(
                    lambda _name: auth_info)
                self._server.set_client_first(message)
                self.username = username
                self._credential = credential
                self._client_first_bare = message.split(",", 2)[2]
                self._server_first = str(self._server.get_server_first())
                return self._server_first.encode()
            if self.complete:
                raise _AuthenticationFailed("unexpected token after the exchange completed")
            legacy = self._legacy_nonce_final(message)
            if legacy is not None:
                self.complete = True
                return legacy
            self._server.set_client_final(message)
            final = str(self._server.get_server_final()).encode()
            self.complete = True
            return final
        except scramp.ScramException as exc:
            raise _AuthenticationFailed(str(exc)) from None


class SaslServerAuthenticator:
    """The SASL state machine of one connection (see module doc).

    ``config``: the listener's ListenerSaslConfig; ``credentials``: SCRAM credentials;
    ``handler``: the broker's request handler (answers ApiVersions before authentication);
    ``supported``: the broker's API version table; ``conn``: the connection (its
    ``principal`` is set on success).
    """

    def __init__(self, config: ListenerSaslConfig, credentials: ScramCredentialStore, handler: RequestHandler,
                 supported: Mapping[int, tuple[int, int]], conn: ConnectionContext) -> None:
        self.config = config
        self.credentials = credentials
        self.handler = handler
        self.supported = dict(supported)
        self.conn = conn
        self.state = SaslState.HANDSHAKE_OR_VERSIONS_REQUEST
        self.mechanism: str | None = None
        self.principal: str | None = None
        self._kafka_headers = True
        self._server: _PlainServer | _ScramServer | None = None

    @property
    def complete(self) -> bool:
        """True once the client has authenticated."""
        return self.state == SaslState.COMPLETE

    async def authenticate(self, frame: memoryview) -> AuthenticationStep:
        """Handle one frame received before authentication completed."""
        if self.state == SaslState.AUTHENTICATE and not self._kafka_headers:
            return await self._raw_token(bytes(frame))
        if len(frame) < 2:
            return self._fail_closed("request shorter than its header")
        api_key = _API_KEY.unpack_from(frame, 0)[0]
        if self.state == SaslState.HANDSHAKE_OR_VERSIONS_REQUEST:
            if api_key == ApiKey.API_VERSIONS:
                return AuthenticationStep(await self.handler.handle(frame, self.conn))
            if api_key != ApiKey.SASL_HANDSHAKE:
                return self._fail_closed(f"Unexpected Kafka request of type {api_name(api_key)} during SASL handshake")
        try:
            header, request = parse_request(frame, self.supported)
        except ProtocolError as exc:
            return self._fail_closed(f"invalid request during SASL authentication: {exc}")
        if self.state == SaslState.HANDSHAKE_OR_VERSIONS_REQUEST:
            return self._handshake(header, request)
        if api_key != ApiKey.SASL_AUTHENTICATE:  # AUTHENTICATE state, Kafka headers
            message = f"Unexpected Kafka request of type {header.api_name} during SASL authentication."
            error = self._error_response(header, request, ErrorCode.illegal_sasl_state, message)
            return self._failed(error, message)
        return await self._sasl_authenticate(header, request)

    def _handshake(self, header: RequestHeader, request: Any) -> AuthenticationStep:
        mechanism = str(request.mechanism)
        resp_cls = response_class_for(request)
        enabled = tuple(self.config.enabled_mechanisms)
        if mechanism not in enabled:
            response = encode_response(header, build(resp_cls, error_code=ErrorCode.unsupported_sasl_mechanism,
                                                     mechanisms=enabled))
            return self._failed([response], f"Unsupported SASL mechanism {mechanism}")
        self.mechanism = mechanism
        self._kafka_headers = header.api_version >= 1
        scram = ScramMechanism.for_name(mechanism)
        self._server = _PlainServer(self.config.plain_users) if scram is None \
            else _ScramServer(scram, self.credentials)
        self.state = SaslState.AUTHENTICATE
        return AuthenticationStep([encode_response(header, build(resp_cls, error_code=ErrorCode.none,
                                                                 mechanisms=enabled))])

    async def _evaluate(self, token: bytes) -> tuple[bytes | None, str | None]:
        """(response token, None) or (None, the client-facing failure message)."""
        assert self._server is not None
        try:
            out = await self._server.evaluate(token)
        except _AuthenticationFailed as exc:
            if isinstance(self._server, _ScramServer):  # Kafka hides SaslException details
                log.info("sasl_scram_failed_detail", peer=self.conn.peer, reason=str(exc))
                return None, ("Authentication failed during authentication due to invalid credentials "
                              f"with SASL mechanism {self.mechanism}")
            return None, str(exc)
        if self._server.complete:
            self.state = SaslState.COMPLETE
            self.principal = f"User:{self._server.username}"
            self.conn.principal = self.principal
            log.info("sasl_authenticated", listener=self.conn.listener_name, peer=self.conn.peer,
                     mechanism=self.mechanism, principal=self.principal)
        return out, None

    async def _sasl_authenticate(self, header: RequestHeader, request: Any) -> AuthenticationStep:
        resp_cls = response_class_for(request)
        out, failure = await self._evaluate(bytes(request.auth_bytes))
        if failure is not None:
            response = encode_response(header, build(resp_cls, error_code=ErrorCode.sasl_authentication_failed,
                                                     error_message=failure, auth_bytes=b"",
                                                     session_lifetime=datetime.timedelta(0)))
            return self._failed([response], failure)
        return AuthenticationStep([encode_response(header, build(
            resp_cls, error_code=ErrorCode.none, error_message=None, auth_bytes=out or b"",
            session_lifetime=datetime.timedelta(0)))])

    async def _raw_token(self, token: bytes) -> AuthenticationStep:
        """SaslHandshake v0: tokens travel size-prefixed without Kafka headers; a failure
        can only close the connection."""
        out, failure = await self._evaluate(token)
        if failure is not None:
            return self._failed(None, failure)
        return AuthenticationStep(None if out is None else [struct.pack(">i", len(out)) + out])

    def _error_response(self, header: RequestHeader, request: Any, code: ErrorCode, message: str) -> list[Any]:
        resp_cls = response_class_for(request)
        return [encode_response(header, build(resp_cls, error_code=code, error_message=message, auth_bytes=b"",
                                              session_lifetime=datetime.timedelta(0)))]

    def _failed(self, response: Sequence[Any] | None, message: str) -> AuthenticationStep:
        self.state = SaslState.FAILED
        log.warning("sasl_authentication_failed", listener=self.conn.listener_name, peer=self.conn.peer,
                    mechanism=self.mechanism, error=message)
        return AuthenticationStep(response, close=message)

    def _fail_closed(self, message: str) -> AuthenticationStep:
        return self._failed(None, message)


def register_authenticated_handlers(apis: Any) -> None:
    """SaslHandshake / SaslAuthenticate on a connection that is not (or no longer) in the
    exchange — PLAINTEXT/SSL listeners, or after authentication — answer ILLEGAL_SASL_STATE,
    as Kafka's KafkaApis.handleSaslHandshakeRequest / handleSaslAuthenticateRequest."""

    async def handshake(header: RequestHeader, request: Any, conn: ConnectionContext) -> Any:
        return build(response_class_for(request), error_code=ErrorCode.illegal_sasl_state, mechanisms=())

    async def authenticate(header: RequestHeader, request: Any, conn: ConnectionContext) -> Any:
        return build(response_class_for(request), error_code=ErrorCode.illegal_sasl_state,
                     error_message="SaslAuthenticate request received after successful authentication",
                     auth_bytes=b"", session_lifetime=datetime.timedelta(0))

    apis.register(ApiKey.SASL_HANDSHAKE, handshake)
    apis.register(ApiKey.SASL_AUTHENTICATE, authenticate)
