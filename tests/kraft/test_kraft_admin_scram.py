"""SCRAM credentials in KRaft mode (KIP-554 as Kafka 3.9's ScramControlManager does it): the
controller turns AlterUserScramCredentials into (Remove)UserScramCredentialRecords with Kafka's
checks, the image keeps them, and a broker's ImageScramCredentialStore answers the SASL/SCRAM
authenticator and DescribeUserScramCredentials from the image."""

from __future__ import annotations

import os
from typing import Any

import trio

from kafkalike.broker.kraft_scram_credentials import ImageScramCredentialStore
from kafkalike.broker.sasl_scram import ScramCredentialApis, ScramFormatter, ScramMechanism
from kafkalike.client.messages import build_request
from kafkalike.image import MetadataDelta, MetadataImage
from kafkalike.image.metadata_image import MetadataProvenance
from kafkalike.kraft.quorum_controller import ControllerState
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from tests.kraft.test_controller_replay import CONFIG, _through_the_log

SHA256, SHA512 = 1, 2


def _alter(state: ControllerState, records: list[mr.ApiMessage], deletions: list[dict[str, Any]],
           upsertions: list[dict[str, Any]]) -> list[tuple[str, ErrorCode, str | None]]:
    request = build_request(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, deletions=deletions, upsertions=upsertions)
    result = state.scram.alter_credentials(request.deletions, request.upsertions)
    for r in result.records:
        assert isinstance(r, (mr.UserScramCredentialRecord, mr.RemoveUserScramCredentialRecord))
        state.replay(r, len(records))
        records.append(r)
    return list(result.response)


def _upsert(user: str, password: str, mechanism: int = SHA256, iterations: int = 4096) -> dict[str, Any]:
    salt = os.urandom(16)
    formatter = ScramFormatter(ScramMechanism.for_type(mechanism))  # type: ignore[arg-type]
    return {"name": user, "mechanism": mechanism, "iterations": iterations, "salt": salt,
            "salted_password": formatter.salted_password(password, salt, iterations)}


def test_credentials_become_records_holding_kafkas_derived_keys_and_never_the_password() -> None:
    state = ControllerState(CONFIG, clock=lambda: 0.0)
    records: list[mr.ApiMessage] = []
    alice = _upsert("alice", "alice-secret")
    assert _alter(state, records, [], [alice, _upsert("bob", "pw", SHA512, 8192)]) == [
        ("alice", ErrorCode.none, None), ("bob", ErrorCode.none, None)]
    record = records[0]
    assert isinstance(record, mr.UserScramCredentialRecord)
    expected = ScramFormatter(ScramMechanism.SCRAM_SHA_256).credential_from_salted(
        bytes(alice["salted_password"]), bytes(alice["salt"]), 4096)
    assert (record.salt, record.stored_key, record.server_key, record.iterations) == (
        expected.salt, expected.stored_key, expected.server_key, 4096)
    assert bytes(alice["salted_password"]) not in b"".join(mr.serialize_record(r) for r in records)

    assert _alter(state, records, [{"name": "bob", "mechanism": SHA512}], []) == [("bob", ErrorCode.none, None)]
    assert records[-1] == mr.RemoveUserScramCredentialRecord(name="bob", mechanism=SHA512)
    assert set(state.scram.credentials) == {("alice", SHA256)}
    replayed = ControllerState(CONFIG, clock=lambda: 0.0)
    for offset, r in enumerate(_through_the_log(records)):
        replayed.replay(r, offset)
    assert replayed.snapshot_records() == state.snapshot_records()


def test_bad_alterations_get_kafkas_errors_per_user_and_write_nothing() -> None:
    state = ControllerState(CONFIG, clock=lambda: 0.0)
    records: list[mr.ApiMessage] = []
    answers = _alter(state, records,
                     [{"name": "ghost", "mechanism": SHA256}, {"name": "", "mechanism": SHA256}],
                     [_upsert("twice", "a"), _upsert("twice", "b", SHA512), _upsert("few", "p", iterations=100),
                      _upsert("many", "p", iterations=20000),
                      {**_upsert("odd", "p"), "mechanism": 3}])
    assert sorted(answers) == sorted([
        ("ghost", ErrorCode.resource_not_found, "Attempt to delete a user credential that does not exist"),
        ("", ErrorCode.unacceptable_credential, "Username must not be empty"),
        ("twice", ErrorCode.duplicate_resource, "A user credential cannot be altered twice in the same request"),
        ("few", ErrorCode.unacceptable_credential, "Too few iterations"),
        ("many", ErrorCode.unacceptable_credential, "Too many iterations"),
        ("odd", ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism")])
    assert records == []


async def test_a_broker_authenticates_and_describes_from_the_images_credentials() -> None:
    state = ControllerState(CONFIG, clock=lambda: 0.0)
    records: list[mr.ApiMessage] = []
    _alter(state, records, [], [_upsert("alice", "alice-secret", SHA512, 8192)])
    delta = MetadataDelta(MetadataImage.EMPTY)
    for r in _through_the_log(records):
        delta.replay(r)
    assert delta.changed_scram_users == {"alice"}
    image = delta.apply(MetadataProvenance(len(records) - 1, 1, 0))
    store = ImageScramCredentialStore(lambda: image)

    credential = await store.credential(ScramMechanism.SCRAM_SHA_512, "alice")
    assert credential is not None and credential.iterations == 8192
    # the stored key is what SCRAM's server checks a client proof against (RFC 5802)
    formatter = ScramFormatter(ScramMechanism.SCRAM_SHA_512)
    salted = formatter.salted_password("alice-secret", credential.salt, 8192)
    assert formatter.credential_from_salted(salted, credential.salt, 8192) == credential
    assert await store.credential(ScramMechanism.SCRAM_SHA_256, "alice") is None

    apis = ScramCredentialApis(store)  # type: ignore[arg-type]
    request = build_request(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, users=None)
    described = await apis.handle_describe(None, request, None)  # type: ignore[arg-type]
    assert [(r.user, r.error_code, [(i.mechanism, i.iterations) for i in r.credential_infos])
            for r in described.results] == [("alice", ErrorCode.none, [(SHA512, 8192)])]
    await trio.lowlevel.checkpoint()
