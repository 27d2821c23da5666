"""Client quotas as records (Kafka 3.9's ClientQuotaControlManager, KIP-546).

State (rebuilt by replay of ClientQuotaRecords): {entity: {quota key: value}}, an entity being
{(entity type, name or None = the default)} with types "user", "client-id" and "ip".

``alter_client_quotas`` (AlterClientQuotas v0-1) returns one ClientQuotaRecord per key that
changes (a set to a new value, or a removal of a key the entity has) and one answer per entry,
with Kafka's checks and messages (all INVALID_REQUEST): an empty entity, an unknown entity type,
a type given twice, an empty name, "ip" combined with user / client-id, an "ip" name that is not an
IP address, a key given twice, a key not valid for the entity's types, a value <= 0, a fractional
value for an integral key (producer_byte_rate, consumer_byte_rate, connection_creation_rate).
The records of all entries form one atomic batch (ControllerResult.atomicOf).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import attrs
import structlog

from kafkalike.kraft.controller_result import ControllerResult
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode

__all__ = ["ClientQuotaControlManager", "QuotaAlteration", "QuotaEntity", "USER", "CLIENT_ID", "IP"]

log = structlog.get_logger("kafkalike.kraft")

USER, CLIENT_ID, IP = "user", "client-id", "ip"
QuotaEntity = frozenset[tuple[str, "str | None"]]
"""{(entity type, name or None = the default)} (Kafka's ClientQuotaEntity)."""

# QuotaConfig.userAndClientQuotaConfigs() / ipConfigs(): key -> integral (LONG/INT) or DOUBLE
_USER_CLIENT_KEYS = {"producer_byte_rate": True, "consumer_byte_rate": True, "request_percentage": False,
                     "controller_mutation_rate": False}
_IP_KEYS = {"connection_creation_rate": True}
_INT_MAX = 2**31 - 1
_LONG_MAX = 2**63 - 1


@attrs.frozen
class QuotaAlteration:
    """One AlterClientQuotas entry: ``entity`` as given ((type, name) pairs, in request order)
    and ``ops`` (key, value, remove)."""

    entity: tuple[tuple[str, str | None], ...]
    ops: tuple[tuple[str, float, bool], ...]


class ClientQuotaControlManager:
    """See module doc."""

    def __init__(self) -> None:
        self.quotas: dict[QuotaEntity, dict[str, float]] = {}

    def replay(self, record: mr.ClientQuotaRecord) -> None:
        """Apply a committed ClientQuotaRecord."""
        entity = frozenset((e.entity_type, e.entity_name) for e in record.entity)
        if record.remove:
            values = self.quotas.get(entity)
            if values is not None:
                values.pop(record.key, None)
                if not values:
                    del self.quotas[entity]
        else:
            self.quotas.setdefault(entity, {})[record.key] = record.value
        log.info("client_quota_replayed", entity=sorted(entity, key=str), key=record.key,
                 value=None if record.remove else record.value)

    def reset(self) -> None:
        """Forget everything (before a snapshot is loaded)."""
        self.quotas.clear()

    def snapshot_records(self) -> list[mr.ApiMessage]:
        """The state as ClientQuotaRecords."""
        out: list[mr.ApiMessage] = []
        for entity in sorted(self.quotas, key=lambda e: sorted(e, key=str)):
            parts = tuple(mr.EntityData(t, n) for t, n in sorted(entity, key=str))
            out += [mr.ClientQuotaRecord(entity=parts, key=k, value=v) for k, v in sorted(self.quotas[entity].items())]
        return out

    def alter_client_quotas(self, alterations: Sequence[QuotaAlteration]) -> ControllerResult:
        """AlterClientQuotas (module doc); response [(error, message)] in request order."""
        records: list[mr.ApiMessage] = []
        answers: list[tuple[ErrorCode, str | None]] = []
        seen: set[QuotaEntity] = set()
        for alteration in alterations:
            entity = frozenset(alteration.entity)
            if entity in seen:
                answers.append((ErrorCode.invalid_request, f"Ignoring duplicate entity {_show(alteration.entity)}"))
                continue
            seen.add(entity)
            problem = self._validate(alteration)
            if problem is not None:
                answers.append((ErrorCode.invalid_request, problem))
                continue
            current = self.quotas.get(entity, {})
            parts = tuple(mr.EntityData(t, n) for t, n in alteration.entity)
            for key, value, remove in alteration.ops:
                if remove:
                    if key in current:
                        records.append(mr.ClientQuotaRecord(entity=parts, key=key, remove=True))
                elif current.get(key) != value:
                    records.append(mr.ClientQuotaRecord(entity=parts, key=key, value=value))
            answers.append((ErrorCode.none, None))
        return ControllerResult(tuple(records), answers)

    def _validate(self, alteration: QuotaAlteration) -> str | None:
        """Kafka's validateEntity, configKeysForEntityType and validateQuotaKeyValue: the
        message of the first problem, None when the entry may be applied."""
        if not alteration.entity:
            return "Invalid empty client quota entity"
        types: dict[str, str | None] = {}
        for etype, name in alteration.entity:
            if etype in types:
                return f"Invalid client quota entity, duplicate entity entry {etype}"
            if etype not in (USER, CLIENT_ID, IP):
                return f"Unhandled client quota entity type: {etype}"
            if name is not None and not name:
                return f"Empty {etype} not supported"
            types[etype] = name
        if IP in types:
            if USER in types or CLIENT_ID in types:
                return "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId"
            if not _is_ip(types[IP]):
                return f"{types[IP]} is not a valid IP or resolvable host."
            keys = _IP_KEYS
        else:
            keys = _USER_CLIENT_KEYS
        given: set[str] = set()
        for key, value, remove in alteration.ops:
            if key in given:
                return f"Duplicate quota key {key} not updating quota for this entity {_show(alteration.entity)}"
            given.add(key)
            if remove:
                continue
            if key not in keys:
                return f"Invalid configuration key {key}"
            if value <= 0.0:
                return f"Quota {key} must be greater than 0"
            if keys[key]:
                limit, kind = (_INT_MAX, "an INT") if key in _IP_KEYS else (_LONG_MAX, "a LONG")
                if value > limit:
                    return f"Proposed value for {key} is too large for {kind}."
                if abs(value % 1.0) > 1e-6:
                    return f"{key} cannot be a fractional value."
        return None


def _is_ip(name: str | None) -> bool:
    """An IP address, or None (the default ip entity). Kafka also accepts a resolvable host
    name (InetAddress.getByName); kafkalike's controller does no name lookups."""
    if name is None:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _show(entity: Sequence[tuple[str, str | None]]) -> str:
    """Kafka's ClientQuotaEntity.toString: ClientQuotaEntity(entries={user=alice})."""
    return "ClientQuotaEntity(entries={" + ", ".join(f"{t}={n}" for t, n in entity) + "})"
