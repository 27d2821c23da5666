"""SCRAM credentials as records (Kafka 3.9's ScramControlManager, KIP-554 in KRaft mode).

State (rebuilt by replay): {(user, mechanism type): ScramCredentialValue}; mechanism types are
Kafka's ScramMechanism ids, 1 SCRAM-SHA-256 and 2 SCRAM-SHA-512.

``alter_credentials`` (AlterUserScramCredentials v0): each user may appear once per request
(a second deletion or upsertion of the same user, whatever the mechanism, answers
DUPLICATE_RESOURCE "A user credential cannot be altered twice in the same request"); then
UNACCEPTABLE_CREDENTIAL ("Username must not be empty", "Too few iterations" below 4096, "Too many
iterations" above 16384), UNSUPPORTED_SASL_MECHANISM ("Unknown SCRAM mechanism"), RESOURCE_NOT_FOUND
("Attempt to delete a user credential that does not exist"). A deletion writes a
RemoveUserScramCredentialRecord; an upsertion a UserScramCredentialRecord with the salt, the
iterations and the keys RFC 5802 derives from the client's SaltedPassword (StoredKey =
H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key")): the
password never reaches the log. Answers: deletions, then upsertions, then the failed users.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import attrs
import structlog

from kafkalike.kraft.controller_result import ControllerResult
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode

__all__ = ["ScramControlManager", "ScramCredentialValue", "MECHANISMS", "MIN_ITERATIONS", "MAX_ITERATIONS"]

log = structlog.get_logger("kafkalike.kraft")

MECHANISMS = {1: "sha256", 2: "sha512"}
"""ScramMechanism type -> hashlib name (SCRAM-SHA-256, SCRAM-SHA-512)."""
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
_DUPLICATE = "A user credential cannot be altered twice in the same request"


@attrs.frozen
class ScramCredentialValue:
    """A stored credential: ``salt``, ``stored_key``, ``server_key`` (bytes), ``iterations``."""

    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


class ScramControlManager:
    """See module doc."""

    def __init__(self) -> None:
        self.credentials: dict[tuple[str, int], ScramCredentialValue] = {}

    def replay(self, record: mr.UserScramCredentialRecord | mr.RemoveUserScramCredentialRecord) -> None:
        """Apply a committed (Remove)UserScramCredentialRecord."""
        key = (record.name, record.mechanism)
        if isinstance(record, mr.RemoveUserScramCredentialRecord):
            self.credentials.pop(key, None)
            log.info("scram_credential_replayed", user=record.name, mechanism=record.mechanism, removed=True)
            return
        self.credentials[key] = ScramCredentialValue(record.salt, record.stored_key, record.server_key,
                                                     record.iterations)
        log.info("scram_credential_replayed", user=record.name, mechanism=record.mechanism, removed=False)

    def reset(self) -> None:
        """Forget everything (before a snapshot is loaded)."""
        self.credentials.clear()

    def snapshot_records(self) -> list[mr.ApiMessage]:
        """The state as UserScramCredentialRecords."""
        return [mr.UserScramCredentialRecord(name=user, mechanism=mech, salt=v.salt, stored_key=v.stored_key,
                                             server_key=v.server_key, iterations=v.iterations)
                for (user, mech), v in sorted(self.credentials.items())]

    def alter_credentials(self, deletions: Any, upsertions: Any) -> ControllerResult:
        """AlterUserScramCredentials (module doc): ``deletions`` items have name, mechanism;
        ``upsertions`` name, mechanism, iterations, salt, salted_password. Response
        [(user, error, message)]."""
        errors: dict[str, tuple[ErrorCode, str]] = {}
        to_delete: dict[str, Any] = {}
        to_upsert: dict[str, Any] = {}
        for d in deletions:
            if d.name in errors:
                continue
            if to_delete.pop(d.name, None) is not None:
                errors[d.name] = (ErrorCode.duplicate_resource, _DUPLICATE)
                continue
            problem = self._validate_deletion(d.name, int(d.mechanism))
            if problem is not None:
                errors[d.name] = problem
            else:
                to_delete[d.name] = d
        for u in upsertions:
            if u.name in errors:
                continue
            if to_delete.pop(u.name, None) is not None or to_upsert.pop(u.name, None) is not None:
                errors[u.name] = (ErrorCode.duplicate_resource, _DUPLICATE)
                continue
            problem = _validate_upsertion(u.name, int(u.mechanism), int(u.iterations))
            if problem is not None:
                errors[u.name] = problem
            else:
                to_upsert[u.name] = u
        records: list[mr.ApiMessage] = []
        answers: list[tuple[str, ErrorCode, str | None]] = []
        for name, d in to_delete.items():
            records.append(mr.RemoveUserScramCredentialRecord(name=name, mechanism=int(d.mechanism)))
            answers.append((name, ErrorCode.none, None))
        for name, u in to_upsert.items():
            digest = MECHANISMS[int(u.mechanism)]
            salted = bytes(u.salted_password)
            client_key = hmac.new(salted, b"Client Key", digest).digest()
            records.append(mr.UserScramCredentialRecord(
                name=name, mechanism=int(u.mechanism), salt=bytes(u.salt),
                stored_key=hashlib.new(digest, client_key).digest(),
                server_key=hmac.new(salted, b"Server Key", digest).digest(), iterations=int(u.iterations)))
            answers.append((name, ErrorCode.none, None))
        answers += [(name, error, message) for name, (error, message) in errors.items()]
        return ControllerResult(tuple(records), answers)

    def _validate_deletion(self, name: str, mechanism: int) -> tuple[ErrorCode, str] | None:
        problem = _validate_name_and_mechanism(name, mechanism)
        if problem is None and (name, mechanism) not in self.credentials:
            return ErrorCode.resource_not_found, "Attempt to delete a user credential that does not exist"
        return problem


def _validate_name_and_mechanism(name: str, mechanism: int) -> tuple[ErrorCode, str] | None:
    if not name:
        return ErrorCode.unacceptable_credential, "Username must not be empty"
    if mechanism not in MECHANISMS:
        return ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism"
    return None


def _validate_upsertion(name: str, mechanism: int, iterations: int) -> tuple[ErrorCode, str] | None:
    problem = _validate_name_and_mechanism(name, mechanism)
    if problem is not None:
        return problem
    if iterations < MIN_ITERATIONS:
        return ErrorCode.unacceptable_credential, "Too few iterations"
    if iterations > MAX_ITERATIONS:
        return ErrorCode.unacceptable_credential, "Too many iterations"
    return None
