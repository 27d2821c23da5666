"""Unit tests of the SASL pieces: Kafka's JAAS syntax, the SCRAM credential text stored in
/config/users (ScramCredentialUtils' format), and the server state machine's answers to
out-of-order or bad requests (driven in-process with real request frames)."""

from __future__ import annotations

import base64
import json
import re
import struct

import pytest
import scramp
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.broker.sasl_scram import (ScramCredentialStore, ScramFormatter, ScramMechanism, credential_from_string,
                                         credential_to_string, desanitize, sanitize)
from kafkalike.broker.sasl_server_authenticator import (ListenerSaslConfig, SaslServerAuthenticator, SaslState)
from kafkalike.broker.socket_server import ConnectionContext
from kafkalike.client.messages import build_request
from kafkalike.client.sasl import JaasConfigError, SaslClientConfig, parse_jaas_config
from kafkalike.coordination import zk_data as zd
from kafkalike.protocol.api_keys import SUPPORTED_APIS, ApiKey
from kafkalike.protocol.codec import decode_response, encode_request

KAFKA_DOC_PLAIN = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
                   'password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')


def test_jaas_parses_kafkas_documented_plain_example() -> None:
    entry = parse_jaas_config(KAFKA_DOC_PLAIN)
    assert entry.login_module == "org.apache.kafka.common.security.plain.PlainLoginModule"
    assert entry.control_flag == "required"
    assert dict(entry.options) == {"username": "admin", "password": "admin-secret",
                                   "user_admin": "admin-secret", "user_alice": "alice-secret"}


def test_jaas_quoted_values_keep_spaces_semicolons_and_escaped_quotes() -> None:
    entry = parse_jaas_config('x.Scram optional username=bob password="a; b \\"c\\"" tokenauth=true ;')
    assert entry.control_flag == "optional"
    assert dict(entry.options) == {"username": "bob", "password": 'a; b "c"', "tokenauth": "true"}


@pytest.mark.parametrize("text, pattern", [
    ("", r"contains 0 login modules, should be 1 module"),
    (KAFKA_DOC_PLAIN + " " + KAFKA_DOC_PLAIN, r"contains 2 login modules, should be 1 module"),
    ('a.B mandatory username="x";', r"invalid control flag 'mandatory'"),
    ('a.B required username="x"', r"must end with ';'"),
    ('a.B required username;', r"expected option=value, got 'username'"),
])
def test_jaas_errors_are_one_line_naming_the_property(text: str, pattern: str) -> None:
    with pytest.raises(JaasConfigError, match=r"configuration 'sasl.jaas.config'.*" + pattern):
        parse_jaas_config(text)


def test_client_properties_need_mechanism_and_jaas_for_sasl_protocols() -> None:
    assert SaslClientConfig.from_properties({"security.protocol": "SSL"}) is None
    cfg = SaslClientConfig.from_properties({
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                            'username="alice" password="alice-secret";'})
    assert cfg == SaslClientConfig("SCRAM-SHA-512", "alice", "alice-secret")
    with pytest.raises(JaasConfigError, match="'sasl.mechanism': kafkalike speaks"):
        SaslClientConfig.from_properties({"security.protocol": "SASL_PLAINTEXT", "sasl.jaas.config": KAFKA_DOC_PLAIN})


@pytest.mark.parametrize("mechanism", list(ScramMechanism))
def test_scram_credential_matches_an_independent_scram_implementation(mechanism: ScramMechanism) -> None:
    """StoredKey / ServerKey derived here equal scramp's for the same password, salt and
    iterations (RFC 5802 section 3)."""
    salt = b"NaCl-and-pepper"
    ours = ScramFormatter(mechanism).generate_credential("pencil", 4096, salt)
    theirs = scramp.ScramMechanism(mechanism.mechanism_name).make_auth_info("pencil", 4096, salt)
    assert (ours.salt, ours.stored_key, ours.server_key, ours.iterations) == tuple(theirs)


def test_credential_text_is_kafkas_scram_credential_utils_format() -> None:
    """``salt=<b64>,stored_key=<b64>,server_key=<b64>,iterations=<n>``, standard base64 with
    padding; the salt Kafka generates is a base-36 string's bytes; round trip."""
    cred = ScramFormatter(ScramMechanism.SCRAM_SHA_256).generate_credential("alice-secret", 8192)
    text = credential_to_string(cred)
    m = re.fullmatch(r"salt=([A-Za-z0-9+/=]+),stored_key=([A-Za-z0-9+/=]+),server_key=([A-Za-z0-9+/=]+),"
                     r"iterations=8192", text)
    assert m is not None, text
    assert re.fullmatch(rb"[0-9a-z]{20,26}", base64.b64decode(m.group(1)))
    assert len(base64.b64decode(m.group(2))) == 32 and len(base64.b64decode(m.group(3))) == 32
    assert credential_from_string(text) == cred
    znode = zd.ConfigEntity({"SCRAM-SHA-256": text}).to_json()
    assert json.loads(znode) == {"version": 1, "config": {"SCRAM-SHA-256": text}}


def test_user_names_in_znode_paths_are_sanitized_as_kafka_does() -> None:
    assert sanitize("alice") == "alice"
    assert sanitize("CN=alice,O=x") == "CN%3Dalice%2CO%3Dx"
    assert sanitize("*") == "%2A"
    assert desanitize(sanitize("user@example.com")) == "user@example.com"


def _frame(api_key: int, version: int, correlation_id: int, **fields: object) -> memoryview:
    data = encode_request(build_request(api_key, version, **fields), correlation_id=correlation_id, client_id="t")
    return memoryview(data)[4:]


def _authenticator() -> SaslServerAuthenticator:
    config = ListenerSaslConfig("SASL_PLAINTEXT", ("PLAIN", "SCRAM-SHA-256"), {"alice": "alice-secret"})
    return SaslServerAuthenticator(config, ScramCredentialStore(lambda: None), handler=None,  # type: ignore[arg-type]
                                   supported=SUPPORTED_APIS, conn=ConnectionContext("SASL_PLAINTEXT", ("127.0.0.1", 1), 1))


def _decode(chunks: list[bytes], api_key: int, version: int) -> object:
    data = b"".join(chunks)
    return decode_response(memoryview(data)[4:], api_key, version)[1]


async def test_state_machine_plain_success_sets_the_principal() -> None:
    auth = _authenticator()
    step = await auth.authenticate(_frame(ApiKey.SASL_HANDSHAKE, 1, 1, mechanism="PLAIN"))
    assert step.close is None and auth.state == SaslState.AUTHENTICATE
    step = await auth.authenticate(_frame(ApiKey.SASL_AUTHENTICATE, 2, 2, auth_bytes=b"\0alice\0alice-secret"))
    response = _decode(list(step.response or []), ApiKey.SASL_AUTHENTICATE, 2)
    assert response.error_code == 0 and response.session_lifetime.total_seconds() == 0  # type: ignore[attr-defined]
    assert auth.complete and auth.conn.principal == "User:alice"


async def test_state_machine_request_other_than_sasl_authenticate_gets_illegal_sasl_state() -> None:
    auth = _authenticator()
    await auth.authenticate(_frame(ApiKey.SASL_HANDSHAKE, 1, 1, mechanism="PLAIN"))
    step = await auth.authenticate(_frame(ApiKey.SASL_HANDSHAKE, 1, 2, mechanism="PLAIN"))
    assert step.close is not None and "Unexpected Kafka request of type SaslHandshake" in step.close
    assert auth.state == SaslState.FAILED


async def test_state_machine_unknown_scram_user_fails_with_kafkas_generic_message() -> None:
    auth = _authenticator()
    await auth.authenticate(_frame(ApiKey.SASL_HANDSHAKE, 1, 1, mechanism="SCRAM-SHA-256"))
    client_first = scramp.ScramClient(["SCRAM-SHA-256"], "nobody", "x").get_client_first()
    step = await auth.authenticate(_frame(ApiKey.SASL_AUTHENTICATE, 2, 2, auth_bytes=client_first.encode()))
    response = _decode(list(step.response or []), ApiKey.SASL_AUTHENTICATE, 2)
    assert response.error_code == 58  # type: ignore[attr-defined]
    assert response.error_message == ("Authentication failed during authentication due to invalid credentials "  # type: ignore[attr-defined]
                                      "with SASL mechanism SCRAM-SHA-256")
    assert step.close is not None


async def test_state_machine_plain_errors_use_kafkas_messages() -> None:
    for token, message in [(b"alice\0x", "Invalid SASL/PLAIN response: expected 3 tokens, got 2"),
                           (b"\0\0pw", "Authentication failed: username not specified"),
                           (b"\0alice\0", "Authentication failed: password not specified"),
                           (b"\0mallory\0alice-secret", "Authentication failed: Invalid username or password"),
                           (b"bob\0alice\0alice-secret", "Authentication failed: Client requested an authorization "
                                                         "id that is different from username")]:
        auth = _authenticator()
        await auth.authenticate(_frame(ApiKey.SASL_HANDSHAKE, 1, 1, mechanism="PLAIN"))
        step = await auth.authenticate(_frame(ApiKey.SASL_AUTHENTICATE, 1, 2, auth_bytes=token))
        assert _decode(list(step.response or []), ApiKey.SASL_AUTHENTICATE, 1).error_message == message  # type: ignore[attr-defined]
        assert step.close == message


def test_raw_frame_layout_of_handshake_request_is_kafkas() -> None:
    """SaslHandshake v1: api key 17, a v1 header, then the mechanism as a STRING."""
    frame = bytes(_frame(ApiKey.SASL_HANDSHAKE, 1, 9, mechanism="PLAIN"))
    assert struct.unpack(">hhi", frame[:8]) == (17, 1, 9)
    assert frame.endswith(b"\x00\x05PLAIN")


_HANDSHAKES = [bytes(_frame(ApiKey.SASL_HANDSHAKE, v, 1, mechanism=m)) for v in (0, 1)
               for m in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.binary(max_size=64),
    st.sampled_from(_HANDSHAKES),
    st.builds(lambda token: bytes(_frame(ApiKey.SASL_AUTHENTICATE, 2, 2, auth_bytes=token)),
              st.one_of(st.binary(max_size=40), st.sampled_from([b"n,,n=alice,r=abc", b"\0alice\0", b"y,,n=,r="]))),
    st.builds(lambda key, version, body: struct.pack(">hhih", key, version, 1, -1) + body,
              st.sampled_from([ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE, ApiKey.METADATA, 99]),
              st.integers(-1, 3), st.binary(max_size=48)),
), min_size=1, max_size=6))
async def test_fuzzed_sasl_exchange_never_raises_and_never_authenticates(frames: list[bytes]) -> None:
    """Random frames and garbled SaslHandshake / SaslAuthenticate requests: every step is an
    answer or a close (no exception escapes to the socket server), nothing authenticates,
    and once a step closed the state stays FAILED."""
    auth = _authenticator()
    for data in frames:
        if len(data) >= 2 and struct.unpack_from(">h", data)[0] == ApiKey.API_VERSIONS:
            continue  # answered by the broker's handler, not the authenticator
        step = await auth.authenticate(memoryview(data))
        assert not auth.complete
        if step.close is not None:
            assert auth.state == SaslState.FAILED
            break
