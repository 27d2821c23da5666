"""SCRAM credentials: Kafka's format, their ZooKeeper home, and the two admin APIs.

Follows Kafka (KIP-84, KIP-554):

- ``ScramMechanism``: SCRAM-SHA-256 / SCRAM-SHA-512, with the type numbers of the
  AlterUserScramCredentials / DescribeUserScramCredentials protocol (1, 2; 0 = UNKNOWN) and
  Kafka's iteration bounds (ScramMechanism.minIterations 4096; ZkAdminManager refuses more than
  16384).
- ``ScramCredential`` and ``ScramFormatter`` (RFC 5802 section 3): SaltedPassword =
  PBKDF2-HMAC(password, salt, iterations); StoredKey = H(HMAC(SaltedPassword, "Client Key"));
  ServerKey = HMAC(SaltedPassword, "Server Key").
- ``credential_to_string`` / ``credential_from_string``: ScramCredentialUtils' text,
  ``salt=<base64>,stored_key=<base64>,server_key=<base64>,iterations=<n>``, the value under the
  mechanism's name in ``/config/users/<user>`` (``{"version":1,"config":{"SCRAM-SHA-256":
  "salt=...,stored_key=...,server_key=...,iterations=4096"}}``); user names in the znode path are
  Kafka's Sanitizer form (URL-encoded, ``*`` as %2A).
- ``ScramCredentialStore``: reads/writes those znodes through KafkaZkClient (writes post a
  ``/config/changes`` notification ``{"version":2,"entity_path":"users/<user>"}`` as Kafka's
  AdminZkClient.changeUserOrUserClientIdConfig). Unlike Kafka, which keeps every broker's
  CredentialCache current from the change notifications, kafkalike reads the user's znode at
  each SCRAM authentication (one ZooKeeper read per login; docs/security.md).
- ``ScramCredentialApis``: AlterUserScramCredentials v0 and DescribeUserScramCredentials v0
  with ZkAdminManager's checks and error messages.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs
import structlog

from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.errors import NoNode
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import RequestHeader
from kafkalike.protocol.entities import build, entity, response_class_for
from kafkalike.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kafkalike.broker.socket_server import ConnectionContext
    from kafkalike.coordination.kafka_zk_client import KafkaZkClient

log = structlog.get_logger(__name__)

__all__ = ["ScramMechanism", "ScramCredential", "ScramFormatter", "credential_to_string",
           "credential_from_string", "sanitize", "desanitize", "ScramCredentialStore",
           "ScramCredentialApis", "MAX_ITERATIONS", "ScramCredentialError"]

MAX_ITERATIONS = 16384
"""ZkAdminManager's upper bound for a credential's iterations ("Too many iterations")."""


class ScramCredentialError(ValueError):
    """A credential string or request Kafka would refuse; ``str(err)`` is one line."""


class ScramMechanism(enum.Enum):
    """Kafka's ScramMechanism: (mechanism name, hash name, protocol type, min iterations)."""

    SCRAM_SHA_256 = ("SCRAM-SHA-256", "sha256", 1)
    SCRAM_SHA_512 = ("SCRAM-SHA-512", "sha512", 2)

    @property
    def mechanism_name(self) -> str:
        return self.value[0]

    @property
    def hash_name(self) -> str:
        return self.value[1]

    @property
    def type(self) -> int:
        """The protocol's int8 (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512)."""
        return self.value[2]

    @property
    def min_iterations(self) -> int:
        return 4096

    @classmethod
    def for_name(cls, name: str) -> "ScramMechanism | None":
        return next((m for m in cls if m.mechanism_name == name), None)

    @classmethod
    def for_type(cls, type_: int) -> "ScramMechanism | None":
        return next((m for m in cls if m.type == type_), None)


@attrs.frozen
class ScramCredential:
    """A stored SCRAM credential (RFC 5802): salt, stored_key, server_key (bytes) and
    iterations. The password itself is never kept."""

    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


class ScramFormatter:
    """RFC 5802 key derivation for one mechanism (Kafka's ScramFormatter)."""

    def __init__(self, mechanism: ScramMechanism) -> None:
        self.mechanism = mechanism

    def hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, self.mechanism.hash_name).digest()

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.mechanism.hash_name, data).digest()

    def salted_password(self, password: str, salt: bytes, iterations: int) -> bytes:
        """Hi(password, salt, i): PBKDF2 with the mechanism's HMAC (RFC 5802 section 2.2)."""
        return hashlib.pbkdf2_hmac(self.mechanism.hash_name, password.encode(), salt, iterations)

    def credential_from_salted(self, salted_password: bytes, salt: bytes, iterations: int) -> ScramCredential:
        """The stored credential for a SaltedPassword (AlterUserScramCredentials sends this)."""
        client_key = self.hmac(salted_password, b"Client Key")
        server_key = self.hmac(salted_password, b"Server Key")
        return ScramCredential(salt, self.hash(client_key), server_key, iterations)

    def generate_credential(self, password: str, iterations: int, salt: bytes | None = None) -> ScramCredential:
        """A new credential for ``password``; the salt, when not given, is Kafka's
        ScramFormatter.secureRandomBytes: a random 130-bit number in base 36, as ASCII."""
        if salt is None:
            salt = _base36(secrets.randbits(130)).encode()
        return self.credential_from_salted(self.salted_password(password, salt, iterations), salt, iterations)


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def credential_to_string(credential: ScramCredential) -> str:
    """ScramCredentialUtils.credentialToString: ``salt=..,stored_key=..,server_key=..,iterations=n``
    (standard base64 with padding)."""
    b64 = base64.b64encode
    return (f"salt={b64(credential.salt).decode()},stored_key={b64(credential.stored_key).decode()},"
            f"server_key={b64(credential.server_key).decode()},iterations={credential.iterations}")


def credential_from_string(text: str) -> ScramCredential:
    """ScramCredentialUtils.credentialFromString; raises ScramCredentialError for anything
    but the four fields."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise ScramCredentialError(f"invalid SCRAM credential {text!r}: expected key=value pairs")
        fields[key] = value
    if set(fields) != {"salt", "stored_key", "server_key", "iterations"}:
        raise ScramCredentialError(f"invalid SCRAM credential: fields {sorted(fields)}, expected "
                                   "salt, stored_key, server_key, iterations")
    try:
        return ScramCredential(base64.b64decode(fields["salt"], validate=True),
                               base64.b64decode(fields["stored_key"], validate=True),
                               base64.b64decode(fields["server_key"], validate=True),
                               int(fields["iterations"]))
    except ValueError as exc:
        raise ScramCredentialError(f"invalid SCRAM credential: {exc}") from None


def sanitize(name: str) -> str:
    """Kafka's Sanitizer.sanitize: a user name as a znode name (URL-encoded; ``*`` -> %2A)."""
    return urllib.parse.quote(name, safe="*").replace("*", "%2A").replace("~", "%7E")


def desanitize(name: str) -> str:
    """Kafka's Sanitizer.desanitize."""
    return urllib.parse.unquote(name)


@attrs.define
class ScramCredentialStore:
    """SCRAM credentials in ``/config/users/<sanitized user>``. ``zk_client()`` returns the
    broker's KafkaZkClient (None before it is connected: reads find nothing)."""

    zk_client: Callable[[], "KafkaZkClient | None"]

    async def user_config(self, user: str) -> dict[str, str]:
        """The whole ``/config/users/<user>`` config ({} if absent)."""
        zk = self.zk_client()
        if zk is None:
            return {}
        return await zk.get_entity_config(zd.CONFIG_TYPE_USER, sanitize(user))

    async def credential(self, mechanism: ScramMechanism, user: str) -> ScramCredential | None:
        """The user's credential for ``mechanism``, None if absent or unreadable (logged)."""
        text = (await self.user_config(user)).get(mechanism.mechanism_name)
        if text is None:
            return None
        try:
            return credential_from_string(text)
        except ScramCredentialError as exc:
            log.warning("scram_credential_unreadable", user=user, mechanism=mechanism.mechanism_name,
                        error=str(exc))
            return None

    async def users(self) -> list[str]:
        """Every user with a znode under /config/users (desanitized)."""
        zk = self.zk_client()
        if zk is None:
            return []
        try:
            names = await zk.zk.get_children(zd.config_entity_type_path(zd.CONFIG_TYPE_USER))
        except NoNode:
            return []
        return [desanitize(n) for n in names]

    async def alter(self, user: str, upserts: dict[ScramMechanism, ScramCredential],
                    deletes: Iterable[ScramMechanism]) -> None:
        """Write the user's credentials (other keys of its config are kept) and post the
        change notification."""
        zk = self.zk_client()
        if zk is None:
            raise ScramCredentialError("not connected to ZooKeeper")
        config = await self.user_config(user)
        for mechanism in deletes:
            config.pop(mechanism.mechanism_name, None)
        for mechanism, credential in upserts.items():
            config[mechanism.mechanism_name] = credential_to_string(credential)
        await zk.set_entity_config(zd.CONFIG_TYPE_USER, sanitize(user), config)


def _credential_infos(config: dict[str, str]) -> list[tuple[ScramMechanism, int]]:
    out = []
    for mechanism in ScramMechanism:
        text = config.get(mechanism.mechanism_name)
        if text is not None:
            try:
                out.append((mechanism, credential_from_string(text).iterations))
            except ScramCredentialError:
                continue
    return out


@attrs.define
class ScramCredentialApis:
    """AlterUserScramCredentials v0 and DescribeUserScramCredentials v0 over a
    ScramCredentialStore (Kafka's ZkAdminManager.alterUserScramCredentials /
    describeUserScramCredentials). ``register(apis)`` routes both keys here."""

    store: ScramCredentialStore

    def register(self, apis: Any) -> None:
        """Route the two API keys to this object's handlers (KafkaApis.register)."""
        apis.register(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, self.handle_alter)
        apis.register(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, self.handle_describe)

    async def handle_alter(self, header: RequestHeader, request: Any, conn: "ConnectionContext") -> Any:
        """AlterUserScramCredentials v0 (KIP-554): one result per user named in the request.

        Errors per user (ZkAdminManager's messages): UNACCEPTABLE_CREDENTIAL ("Username must
        not be empty", "Too few iterations", "Too many iterations"), UNSUPPORTED_SASL_MECHANISM
        ("Unknown SCRAM mechanism"), DUPLICATE_RESOURCE (a user/mechanism altered twice),
        RESOURCE_NOT_FOUND (deleting a credential that does not exist).
        """
        resp_cls = response_class_for(request)
        result_cls = entity(resp_cls, "AlterUserScramCredentialsResult")
        users: list[str] = []
        for item in (*request.deletions, *request.upsertions):
            if item.name not in users:
                users.append(item.name)
        pairs = Counter((i.name, int(i.mechanism)) for i in (*request.deletions, *request.upsertions))
        errors: dict[str, tuple[ErrorCode, str]] = {}

        def fail(user: str, code: ErrorCode, message: str) -> None:
            errors.setdefault(user, (code, message))

        for item in (*request.deletions, *request.upsertions):
            if not item.name:
                fail(item.name, ErrorCode.unacceptable_credential, "Username must not be empty")
            elif ScramMechanism.for_type(int(item.mechanism)) is None:
                fail(item.name, ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism")
            elif pairs[(item.name, int(item.mechanism))] > 1:
                fail(item.name, ErrorCode.duplicate_resource,
                     "A user credential cannot be altered twice in the same request")
        for up in request.upsertions:
            mechanism = ScramMechanism.for_type(int(up.mechanism))
            if mechanism is None:
                continue
            if up.iterations < mechanism.min_iterations:
                fail(up.name, ErrorCode.unacceptable_credential, "Too few iterations")
            elif up.iterations > MAX_ITERATIONS:
                fail(up.name, ErrorCode.unacceptable_credential, "Too many iterations")
        for user in users:
            if user in errors:
                continue
            config = await self.store.user_config(user)
            deletes = [m for d in request.deletions if d.name == user
                       for m in [ScramMechanism.for_type(int(d.mechanism))] if m is not None]
            if any(m.mechanism_name not in config for m in deletes):
                fail(user, ErrorCode.resource_not_found,
                     "Attempt to delete a user credential that does not exist")
                continue
            upserts = {}
            for up in request.upsertions:
                mechanism = ScramMechanism.for_type(int(up.mechanism))
                if up.name == user and mechanism is not None:
                    upserts[mechanism] = ScramFormatter(mechanism).credential_from_salted(
                        bytes(up.salted_password), bytes(up.salt), int(up.iterations))
            try:
                await self.store.alter(user, upserts, deletes)
            except Exception as exc:  # ZooKeeper trouble: this user's result says so
                log.warning("scram_credential_alter_failed", user=user, error=str(exc))
                fail(user, ErrorCode.unknown_server_error, str(exc))
                continue
            log.info("scram_credential_altered", user=user,
                     upserted=[m.mechanism_name for m in upserts], deleted=[m.mechanism_name for m in deletes])
        results = [build(result_cls, user=user, error_code=errors.get(user, (ErrorCode.none, None))[0],
                         error_message=errors.get(user, (ErrorCode.none, None))[1]) for user in users]
        return build(resp_cls, results=tuple(results))

    async def handle_describe(self, header: RequestHeader, request: Any, conn: "ConnectionContext") -> Any:
        """DescribeUserScramCredentials v0: the mechanisms and iterations of each user named
        (null or empty: every user that has a credential). Per user RESOURCE_NOT_FOUND
        ("Attempt to describe a user credential that does not exist") or DUPLICATE_RESOURCE
        (a user named twice); the top-level error is NONE."""
        resp_cls = response_class_for(request)
        result_cls = entity(resp_cls, "DescribeUserScramCredentialsResult")
        info_cls = entity(resp_cls, "CredentialInfo")
        results = []
        names = [u.name for u in (request.users or ())]
        if not names:
            for user in sorted(await self.store.users()):
                infos = _credential_infos(await self.store.user_config(user))
                if infos:
                    results.append(build(result_cls, user=user, error_code=ErrorCode.none, error_message=None,
                                         credential_infos=tuple(build(info_cls, mechanism=m.type, iterations=i)
                                                                for m, i in infos)))
        else:
            counts = Counter(names)
            for user in dict.fromkeys(names):
                if counts[user] > 1:
                    results.append(build(result_cls, user=user, error_code=ErrorCode.duplicate_resource,
                                         error_message="Cannot describe SCRAM credentials for the same user "
                                                       "twice in a single request", credential_infos=()))
                    continue
                infos = _credential_infos(await self.store.user_config(user))
                if not infos:
                    results.append(build(result_cls, user=user, error_code=ErrorCode.resource_not_found,
                                         error_message="Attempt to describe a user credential that does not "
                                                       "exist", credential_infos=()))
                    continue
                results.append(build(result_cls, user=user, error_code=ErrorCode.none, error_message=None,
                                     credential_infos=tuple(build(info_cls, mechanism=m.type, iterations=i)
                                                            for m, i in infos)))
        return build(resp_cls, error_code=ErrorCode.none, error_message=None, results=tuple(results))
