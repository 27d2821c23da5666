"""SslFactory: Python ssl.SSLContexts built from Kafka's ssl.* broker properties.

Follows Kafka's ``org.apache.kafka.common.security.ssl.SslFactory`` /
``DefaultSslEngineFactory`` (clients/src/main/java/org/apache/kafka/common/security/ssl/):
a keystore (the broker's private key and certificate chain) and a truststore (the CAs whose
certificates are accepted), ``ssl.client.auth`` (none / requested / required),
``ssl.enabled.protocols`` and ``ssl.cipher.suites``. Store formats: PEM files, PEM inline
(KIP-651: ``ssl.keystore.certificate.chain`` + ``ssl.keystore.key``,
``ssl.truststore.certificates``) and PKCS12 (read with ``cryptography``). JKS — Kafka's
default type — can't be read from Python and is refused with a one-line error.

Python's ssl module loads a key only from a file: a PKCS12 or inline key is written to a
private temporary file (mode 0600, from mkstemp) and removed right after load_cert_chain.

Every problem raises SslConfigError, one line naming the property (with its
``listener.name.<name>.`` prefix when that is where it was set).
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any, Iterator

import attrs

__all__ = ["SslConfigError", "server_context", "client_context", "SslPrincipalMapper", "NoMatchingRule",
           "principal_from_peer_certificate"]

_TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


class SslConfigError(ValueError):
    """An ssl.* property can't be used (missing, unreadable, wrong password, unsupported
    type); ``str(err)`` is one line naming the property."""


SslSettings = Mapping[str, tuple[str, Any]]
"""{ssl key: (the property it came from, value)}: KafkaConfig.listener_ssl_config's shape."""


def _get(cfg: SslSettings, key: str) -> tuple[str, Any]:
    return cfg.get(key, (key, None))


def _error(prop: str, value: Any, why: str, secret: bool = False) -> SslConfigError:
    shown = "[hidden]" if secret else repr(value)
    return SslConfigError(f"invalid value {shown} for configuration {prop!r}: {why}")


@contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A temporary file (0600) holding data, removed when the block ends."""
    fd, path = tempfile.mkstemp(prefix="kafkalike-ssl-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        os.unlink(path)


def _read_pkcs12(prop: str, location: str, password: str | None) -> tuple[Any, Any, list[Any]]:
    from cryptography.hazmat.primitives.serialization import pkcs12
    try:
        with open(location, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise _error(prop, location, f"cannot read the file: {exc.strerror}") from None
    try:
        return pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise _error(prop, location, f"cannot load the PKCS12 store: {exc}") from None


def _load_keystore(ctx: ssl.SSLContext, cfg: SslSettings, required: bool) -> bool:
    """Load the key and certificate chain into ctx; False when no keystore is configured
    (an error if required)."""
    from cryptography.hazmat.primitives import serialization

    type_prop, store_type = _get(cfg, "ssl.keystore.type")
    loc_prop, location = _get(cfg, "ssl.keystore.location")
    chain_prop, chain = _get(cfg, "ssl.keystore.certificate.chain")
    key_prop, key = _get(cfg, "ssl.keystore.key")
    _, store_password = _get(cfg, "ssl.keystore.password")
    _, key_password = _get(cfg, "ssl.key.password")
    store_type = (store_type or "JKS").upper()
    if chain or key:
        if store_type != "PEM":
            raise _error(type_prop, store_type, "expected PEM when ssl.keystore.certificate.chain / "
                         "ssl.keystore.key are set")
        if not (chain and key):
            missing = key_prop if not key else chain_prop
            raise SslConfigError(f"missing configuration {missing!r}: ssl.keystore.certificate.chain "
                                 "and ssl.keystore.key go together")
        with _private_file((str(key).strip() + "\n" + str(chain).strip() + "\n").encode()) as path:
            try:
                ctx.load_cert_chain(path, password=key_password)
            except (ssl.SSLError, OSError) as exc:
                raise _error(key_prop, key, f"cannot load the PEM key and certificate chain: {exc}",
                             secret=True) from None
        return True
    if not location:
        if required:
            raise SslConfigError(f"missing configuration {loc_prop!r}: an SSL listener needs a keystore "
                                 "(or ssl.keystore.certificate.chain + ssl.keystore.key)")
        return False
    if store_type == "PEM":
        try:
            ctx.load_cert_chain(location, password=key_password)
        except FileNotFoundError:
            raise _error(loc_prop, location, "no such file") from None
        except (ssl.SSLError, OSError) as exc:
            raise _error(loc_prop, location, f"cannot load a PEM private key and certificate chain: "
                         f"{exc}") from None
        return True
    if store_type == "PKCS12":
        pkey, cert, extra = _read_pkcs12(loc_prop, location, store_password)
        if pkey is None or cert is None:
            raise _error(loc_prop, location, "the PKCS12 store holds no private key and certificate")
        pem = pkey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        for c in [cert, *extra]:
            pem += c.public_bytes(serialization.Encoding.PEM)
        with _private_file(pem) as path:
            ctx.load_cert_chain(path)
        return True
    raise _error(type_prop, store_type, "expected PEM or PKCS12 (kafkalike can't read JKS stores)")


def _load_truststore(ctx: ssl.SSLContext, cfg: SslSettings) -> bool:
    """Load the trusted CA certificates into ctx; False when no truststore is configured."""
    from cryptography.hazmat.primitives import serialization

    type_prop, store_type = _get(cfg, "ssl.truststore.type")
    loc_prop, location = _get(cfg, "ssl.truststore.location")
    certs_prop, certs = _get(cfg, "ssl.truststore.certificates")
    _, password = _get(cfg, "ssl.truststore.password")
    store_type = (store_type or "JKS").upper()
    if certs:
        try:
            ctx.load_verify_locations(cadata=str(certs))
        except (ssl.SSLError, ValueError) as exc:
            raise _error(certs_prop, certs, f"cannot load PEM certificates: {exc}", secret=True) from None
        return True
    if not location:
        return False
    if store_type == "PEM":
        try:
            ctx.load_verify_locations(cafile=location)
        except FileNotFoundError:
            raise _error(loc_prop, location, "no such file") from None
        except (ssl.SSLError, OSError) as exc:
            raise _error(loc_prop, location, f"cannot load PEM certificates: {exc}") from None
        return True
    if store_type == "PKCS12":
        _, cert, extra = _read_pkcs12(loc_prop, location, password)
        pems = "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                       for c in ([cert] if cert else []) + list(extra))
        if not pems:
            raise _error(loc_prop, location, "the PKCS12 store holds no certificate")
        ctx.load_verify_locations(cadata=pems)
        return True
    raise _error(type_prop, store_type, "expected PEM or PKCS12 (kafkalike can't read JKS stores)")


def _common(ctx: ssl.SSLContext, cfg: SslSettings) -> None:
    prop, enabled = _get(cfg, "ssl.enabled.protocols")
    versions = sorted(_TLS_VERSIONS[v] for v in (enabled or ["TLSv1.2", "TLSv1.3"]) if v in _TLS_VERSIONS)
    if not versions:
        raise _error(prop, enabled, "expected at least one of TLSv1.2, TLSv1.3")
    try:
        ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]
    except ValueError as exc:
        raise _error(prop, enabled, str(exc)) from None
    prop, ciphers = _get(cfg, "ssl.cipher.suites")
    if ciphers:
        try:
            ctx.set_ciphers(":".join(ciphers))
        except ssl.SSLError:
            raise _error(prop, ciphers, "no cipher suite OpenSSL knows") from None


def server_context(cfg: SslSettings) -> ssl.SSLContext:
    """The SSLContext of an SSL listener (Kafka's SslFactory in server mode).

    cfg: KafkaConfig.listener_ssl_config(listener). A keystore is required;
    ssl.client.auth=required needs a truststore (CERT_REQUIRED), requested -> CERT_OPTIONAL.
    Raises SslConfigError naming the property.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _common(ctx, cfg)
    _load_keystore(ctx, cfg, required=True)
    has_trust = _load_truststore(ctx, cfg)
    auth_prop, auth = _get(cfg, "ssl.client.auth")
    auth = (auth or "none").lower()
    if auth in ("required", "requested"):
        if not has_trust:
            raise SslConfigError(f"missing configuration 'ssl.truststore.location': {auth_prop}={auth} "
                                 "needs a truststore to check client certificates against")
        ctx.verify_mode = ssl.CERT_REQUIRED if auth == "required" else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_context(cfg: SslSettings) -> ssl.SSLContext:
    """A client SSLContext (Kafka's SslFactory in client mode): the truststore (else the
    system's CAs), the keystore when one is set (for ssl.client.auth=required servers),
    host name checking when ssl.endpoint.identification.algorithm is https (Kafka's default).
    Raises SslConfigError naming the property."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _common(ctx, cfg)
    if not _load_truststore(ctx, cfg):
        ctx.load_default_certs()
    _load_keystore(ctx, cfg, required=False)
    _, algorithm = _get(cfg, "ssl.endpoint.identification.algorithm")
    ctx.check_hostname = (algorithm or "").lower() == "https"
    return ctx


class NoMatchingRule(ValueError):
    """No ``ssl.principal.mapping.rules`` rule maps this subject (Kafka's
    SslPrincipalMapper.NoMatchingRule: the connection fails authentication)."""


# Kafka's SslPrincipalMapper.RULE_PATTERN: DEFAULT | RULE:pattern/replacement/[LU] | anything else
_RULE = r"(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?).*?|(.*)"
_RULE_SPLITTER = re.compile(r"\s*(" + _RULE.replace("(DEFAULT)", "(?:DEFAULT)").replace("([LU]?)", "(?:[LU]?)")
                            .replace("|(.*)", "|(?:.*)").replace("((?:", "(?:(?:") + r")\s*(?:,\s*|$)")
_RULE_PARSER = re.compile(_RULE)
_JAVA_GROUP_REF = re.compile(r"\\(.)|\$(\d+)")


@attrs.frozen
class SslPrincipalRule:
    """One rule: DEFAULT (``is_default``: the DN as it is) or ``RULE:pattern/replacement/[LU]``."""

    is_default: bool = False
    pattern: str = ""
    replacement: str = ""
    to_lower: bool = False
    to_upper: bool = False

    def apply(self, dn: str) -> str | None:
        """The name this rule maps ``dn`` to, or None when its pattern does not match the whole DN."""
        if self.is_default:
            return dn
        compiled = re.compile(self.pattern)
        if compiled.fullmatch(dn) is None:
            return None
        result = compiled.sub(lambda m: _java_replacement(self.replacement, m), dn)  # Java's replaceAll
        return result.lower() if self.to_lower else result.upper() if self.to_upper else result


def _java_replacement(replacement: str, m: re.Match[str]) -> str:
    """Java Matcher.appendReplacement: ``$n`` is group n (literal when there is no such group,
    as Kafka's escapeLiteralBackReferences makes it), ``\\x`` is x."""
    def one(ref: re.Match[str]) -> str:
        if ref.group(1) is not None:
            return ref.group(1)
        n = int(ref.group(2))
        return (m.group(n) or "") if n <= (m.re.groups or 0) else ref.group(0)
    return _JAVA_GROUP_REF.sub(one, replacement)


@attrs.frozen
class SslPrincipalMapper:
    """``ssl.principal.mapping.rules`` (KIP-371; Kafka's SslPrincipalMapper): rules tried in
    order on the client certificate's subject DN (RFC 2253), the first that matches gives the
    principal's name. ``RULE:pattern/replacement/`` with Java regex syntax (``$1`` references),
    an optional ``L`` / ``U`` to lower / upper-case the result; ``DEFAULT`` keeps the DN."""

    rules: tuple[SslPrincipalRule, ...] = (SslPrincipalRule(is_default=True),)

    @classmethod
    def from_rules(cls, text: str | None, prop: str = "ssl.principal.mapping.rules") -> "SslPrincipalMapper":
        """Parse the property's value (None: DEFAULT). Raises SslConfigError naming ``prop`` for a
        rule that does not parse or whose pattern is not a valid regex."""
        if text is None:
            return cls()
        rules = []
        for part in _split_rules(text):
            m = _RULE_PARSER.match(part)
            if m is None or m.end() != len(part) or m.group(5):
                raise _error(prop, text, f"invalid rule {part!r} (RULE:pattern/replacement/[LU] or DEFAULT)")
            if m.group(1):
                rules.append(SslPrincipalRule(is_default=True))
            elif m.group(2) is not None:
                try:
                    re.compile(m.group(2))
                except re.error as exc:
                    raise _error(prop, text, f"invalid pattern {m.group(2)!r}: {exc}") from None
                rules.append(SslPrincipalRule(False, m.group(2), m.group(3), m.group(4) == "L", m.group(4) == "U"))
        return cls(tuple(rules))

    def name(self, dn: str) -> str:
        """The principal name of subject ``dn``. Raises NoMatchingRule when no rule applies."""
        for rule in self.rules:
            name = rule.apply(dn)
            if name is not None:
                return name
        raise NoMatchingRule(f"No rules apply to {dn}, rules {[r.pattern or 'DEFAULT' for r in self.rules]}")


def _split_rules(text: str) -> list[str]:
    """SslPrincipalMapper.splitRules: the rules of a comma-separated list (commas inside a
    rule's pattern or replacement stay in it)."""
    return [m.group(1) for m in _RULE_SPLITTER.finditer(text.strip()) if m.group(1)]


def principal_from_peer_certificate(der: bytes | None, mapper: SslPrincipalMapper | None = None) -> str:
    """The KafkaPrincipal of a TLS connection (Kafka's DefaultKafkaPrincipalBuilder):
    ``User:`` + the client certificate's subject distinguished name in RFC 2253 order and form
    (most specific RDN first: ``User:CN=alice,OU=eng,O=Example,C=US``), as Java's
    X500Principal.getName() prints it, mapped by ``mapper`` (``ssl.principal.mapping.rules``;
    None: DEFAULT); ``User:ANONYMOUS`` when the client sent no certificate
    (``ssl.client.auth=none``, or ``requested`` and the client has none). ``der``: the peer
    certificate, DER bytes. Attributes outside RFC 4514's short names print as dotted OIDs
    (Java: the same OIDs, hex values ``#...``). Raises NoMatchingRule when no rule maps the DN."""
    if not der:
        return "User:ANONYMOUS"
    from cryptography import x509

    dn = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return "User:" + (mapper.name(dn) if mapper is not None else dn)
